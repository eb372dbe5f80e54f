"""Helpers shared by the subcommands: resolving a checkpoint or a named target."""

from __future__ import annotations

import argparse

from ebm_ppl.cli import UsageError

__all__ = ["add_energy_arguments", "resolve_energy", "add_devices_arguments", "resolve_mesh"]


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


def add_devices_arguments(parser: argparse.ArgumentParser) -> None:
    """``--devices N`` (data-parallel over N devices, default all) and the multi-host options
    ``--coordinator HOST:PORT --num-processes P --process-id I`` (``jax.distributed.initialize``;
    see docs/scaling.md)."""
    parser.add_argument("--devices", type=int, default=None,
                        help="devices to split batches/chains/particles over (default: all devices JAX sees)")
    parser.add_argument("--coordinator", default=None,
                        help="multi-host: coordinator HOST:PORT for jax.distributed.initialize (same on every host)")
    parser.add_argument("--num-processes", type=int, default=None, help="multi-host: number of processes (hosts)")
    parser.add_argument("--process-id", type=int, default=None, help="multi-host: this process's index 0..P-1")


def resolve_mesh(args):
    """(mesh or None, number of devices) from ``--devices`` (and, first, the multi-host options).

    ``None`` stands for one device (the unsharded path). UsageError on a bad count."""
    from ebm_ppl import sharding

    multi = [getattr(args, k, None) for k in ("coordinator", "num_processes", "process_id")]
    if any(v is not None for v in multi):
        if multi[0] is None and (multi[1] or 1) > 1:
            raise UsageError("--num-processes > 1 needs --coordinator HOST:PORT")
        try:
            sharding.initialize_distributed(*multi)
        except (ValueError, RuntimeError) as err:
            raise UsageError(f"jax.distributed.initialize failed: {err}") from None
    devices = getattr(args, "devices", None)
    if devices is not None and devices < 1:
        raise UsageError(f"--devices must be >= 1, got {devices}")
    try:
        mesh = sharding.mesh_from_arg(devices)
    except ValueError as err:
        raise UsageError(f"--devices: {err}") from None
    return mesh, sharding.num_devices(mesh)
