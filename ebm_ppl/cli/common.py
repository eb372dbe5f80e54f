"""Helpers shared by the subcommands: resolving a checkpoint or a named target."""

from __future__ import annotations

import argparse

from ebm_ppl.cli import UsageError

__all__ = ["add_energy_arguments", "resolve_energy"]


def add_energy_arguments(parser: argparse.ArgumentParser, *, required: bool = True) -> None:
    """``CKPT`` positional or ``--target NAME`` (with ``--schedule`` for targets)."""
    parser.add_argument("ckpt", nargs="?", help="checkpoint folder (see docs/checkpoints.md)")
    parser.add_argument("--target", help="a named analytic target instead of a checkpoint (e.g. gmm:64:4)")
    parser.add_argument("--schedule", default=None, help="schedule of a --target (default drl:6), e.g. drl:1000")
    parser.set_defaults(_energy_required=required)


def resolve_energy(args):
    """The bound energy named by ``args.ckpt`` or ``args.target``; UsageError on bad input."""
    from ebm_ppl.energy import target

    if args.ckpt and args.target:
        raise UsageError("give either a checkpoint or --target, not both")
    if args.target:
        try:
            return target(args.target, schedule=args.schedule)
        except ValueError as err:
            raise UsageError(str(err)) from None
    if args.ckpt:
        from ebm_ppl.checkpoint import CheckpointError, load

        try:
            return load(args.ckpt)
        except CheckpointError as err:
            raise UsageError(str(err)) from None
    if getattr(args, "_energy_required", True):
        raise UsageError("give a checkpoint folder or --target NAME")
    return None
