"""The ``ebm-ppl`` command.

Each subcommand lives in its own module ``ebm_ppl.cli.<name>`` exposing

* ``HELP``: one line;
* ``add_arguments(parser)``: its options (``--json`` is added for every command);
* ``run(args) -> dict``: does the work, prints human-readable progress, returns the figures.

With ``--json`` the returned dict is printed as one JSON object on the last line of stdout.
A :class:`UsageError` (bad data set name, missing checkpoint, ...) prints one line to stderr and
exits with code 2; nothing from deep inside JAX reaches the user for bad input.

Run from the command line (``argv`` None), the command turns on JAX's persistent compilation
cache in ``~/.cache/ebm_ppl/jax`` (``$XDG_CACHE_HOME/ebm_ppl/jax``; another folder with
``EBM_PPL_CACHE_DIR=/path``, off with ``EBM_PPL_CACHE_DIR=off``; see
:func:`ebm_ppl.cli.common.enable_compilation_cache`), so that a second run skips its compile.
"""

from __future__ import annotations

import argparse
import importlib
import json
import sys

from ebm_ppl._json import to_jsonable

__all__ = ["main", "UsageError", "SUBCOMMANDS"]

#: subcommand name -> module under ebm_ppl.cli
SUBCOMMANDS = {
    "train": "train",
    "sample": "sample",
    "demo": "demo",
    "logz": "logz",
    "bpd": "bpd",
    "diagnose": "diagnose",
    "solve": "solve",
    "distill": "distill",
}


class UsageError(Exception):
    """Bad input from the user: reported as one line, exit code 2."""


class _Parser(argparse.ArgumentParser):
    """argparse that reports a bad option as one line (no usage block), exit code 2."""

    def error(self, message):
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _available():
    mods = {}
    for name, module in SUBCOMMANDS.items():
        try:
            mods[name] = importlib.import_module(f"ebm_ppl.cli.{module}")
        except ModuleNotFoundError as err:
            if err.name != f"ebm_ppl.cli.{module}":
                raise
    return mods


def build_parser() -> tuple[argparse.ArgumentParser, dict]:
    parser = _Parser(prog="ebm-ppl", description="Energy-based models as NumPyro densities.")
    sub = parser.add_subparsers(dest="command", required=True)
    mods = _available()
    for name, mod in mods.items():
        p = sub.add_parser(name, help=mod.HELP, description=mod.HELP)
        mod.add_arguments(p)
        p.add_argument("--json", action="store_true", help="print one JSON object with the figures as the last line")
    return parser, mods


def main(argv=None) -> int:
    parser, mods = build_parser()
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # --help, or a bad option already reported on one line
        return int(exc.code or 0)
    if argv is None:  # the ebm-ppl command itself (not a call from Python or the tests)
        from ebm_ppl.cli.common import enable_compilation_cache

        enable_compilation_cache()
    try:
        result = mods[args.command].run(args)
    except UsageError as err:
        print(f"ebm-ppl {args.command}: error: {err}", file=sys.stderr)
        return 2
    if args.json:
        print(json.dumps(to_jsonable(result or {})))
    return 0


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
