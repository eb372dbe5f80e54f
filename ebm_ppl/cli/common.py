"""Helpers shared by the subcommands: resolving a checkpoint or a named target, checking numbers.

Numeric options: pass one of the argparse ``type=`` checkers below (``positive_int``,
``non_negative_int``, ``positive_float``, ``non_negative_float``, ``probability``,
``open_probability``, or ``number(kind, low=..., high=...)`` for other ranges). A bad value then
fails at parse time with one line naming the option and the rule, exit code 2, before any JAX work::

    parser.add_argument("--steps", type=positive_int, default=None)
    # ebm-ppl logz: error: argument --steps: must be an integer >= 1, got '-2'

For a value that is only known after parsing (a preset's default, a combination of options) use
``check_number("--steps", value, int, low=1)``, which raises :class:`UsageError` with the same text.
"""

from __future__ import annotations

import argparse
import math
import os

from ebm_ppl.cli import UsageError

__all__ = [
    "add_energy_arguments",
    "resolve_energy",
    "add_devices_arguments",
    "resolve_mesh",
    "number",
    "check_number",
    "positive_int",
    "non_negative_int",
    "positive_float",
    "non_negative_float",
    "probability",
    "open_probability",
    "one_line_warnings",
    "progress_bar",
    "compilation_cache_dir",
    "enable_compilation_cache",
    "CACHE_ENV",
]

#: environment variable naming the persistent compilation cache folder ("off" switches it off)
CACHE_ENV = "EBM_PPL_CACHE_DIR"
_OFF = ("", "0", "off", "none", "false", "no")


def compilation_cache_dir() -> str | None:
    """The folder of the persistent compilation cache: ``$EBM_PPL_CACHE_DIR``, else
    ``$XDG_CACHE_HOME/ebm_ppl/jax``, else ``~/.cache/ebm_ppl/jax``; None when ``EBM_PPL_CACHE_DIR``
    is ``off`` (or ``0``, ``none``, ``false``, ``no``, empty)."""
    env = os.environ.get(CACHE_ENV)
    if env is not None:
        return None if env.strip().lower() in _OFF else os.path.expanduser(env)
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "ebm_ppl", "jax")


def enable_compilation_cache(path: str | None = None, *, min_compile_time_secs: float = 1.0) -> str | None:
    """Turn on JAX's persistent compilation cache in ``path`` (default :func:`compilation_cache_dir`).

    Compiled programs that took at least ``min_compile_time_secs`` to compile are written there and
    read back by later processes with the same program, shapes, JAX version and machine, so a
    second ``ebm-ppl train`` or ``sample`` skips its compile (docs/performance.md has the figures).
    Returns the folder, or None when switched off (``EBM_PPL_CACHE_DIR=off``), when the user set
    ``jax_compilation_cache_dir`` (``JAX_COMPILATION_CACHE_DIR``) themselves (theirs is kept), or
    when the folder cannot be created. The ``ebm-ppl`` command calls it at start-up; the library
    never does."""
    import jax

    if jax.config.jax_compilation_cache_dir:
        return None
    folder = path if path is not None else compilation_cache_dir()
    if folder is None:
        return None
    try:
        os.makedirs(folder, exist_ok=True)
    except OSError:
        return None
    jax.config.update("jax_compilation_cache_dir", folder)
    jax.config.update("jax_persistent_cache_min_compile_time_secs", float(min_compile_time_secs))
    jax.config.update("jax_persistent_cache_min_entry_size_bytes", 0)
    return folder


def _rule(kind, low, high, low_open, high_open) -> str:
    noun = "an integer" if kind is int else "a finite number"
    parts = []
    if low is not None:
        parts.append(f"{'>' if low_open else '>='} {low}")
    if high is not None:
        parts.append(f"{'<' if high_open else '<='} {high}")
    return f"must be {noun}" + (f" {' and '.join(parts)}" if parts else "")


def _parse_checked(text, kind, low, high, low_open, high_open):
    """``(value, None)`` or ``(None, message)``."""
    rule = _rule(kind, low, high, low_open, high_open)
    try:
        value = kind(text) if isinstance(text, str) else text
        if kind is int and (isinstance(value, bool) or not float(value).is_integer()):
            raise ValueError
        value = kind(value)
    except (TypeError, ValueError, OverflowError):
        return None, f"{rule}, got {text!r}"
    if kind is float and not math.isfinite(value):
        return None, f"{rule}, got {text!r}"
    if low is not None and (value <= low if low_open else value < low):
        return None, f"{rule}, got {text!r}"
    if high is not None and (value >= high if high_open else value > high):
        return None, f"{rule}, got {text!r}"
    return value, None


def number(kind=int, *, low=None, high=None, low_open: bool = False, high_open: bool = False):
    """An argparse ``type=`` callable parsing ``kind`` (int or float; floats must be finite) within
    ``[low, high]`` (``low_open``/``high_open`` exclude the bound). A bad value raises
    ``argparse.ArgumentTypeError``, which argparse reports as one line with exit code 2."""
    if kind not in (int, float):
        raise ValueError(f"kind must be int or float, got {kind!r}")

    def parse(text):
        value, msg = _parse_checked(text, kind, low, high, low_open, high_open)
        if msg is not None:
            raise argparse.ArgumentTypeError(msg)
        return value

    parse.__name__ = _rule(kind, low, high, low_open, high_open).replace("must be ", "")
    return parse


def check_number(name: str, value, kind=int, *, low=None, high=None, low_open: bool = False, high_open: bool = False):
    """``value`` parsed as ``kind`` within the bounds (as :func:`number`), or :class:`UsageError`
    ``"<name>: must be ..., got ..."``. ``None`` passes through (an option left at its default)."""
    if value is None:
        return None
    value, msg = _parse_checked(value, kind, low, high, low_open, high_open)
    if msg is not None:
        raise UsageError(f"{name}: {msg}")
    return value


#: integer >= 1 (counts: steps, samples, bridges, devices)
positive_int = number(int, low=1)
#: integer >= 0 (seeds, levels, optional counts where 0 means "none")
non_negative_int = number(int, low=0)
#: finite float > 0 (step sizes, learning rates, temperatures)
positive_float = number(float, low=0, low_open=True)
#: finite float >= 0
non_negative_float = number(float, low=0)
#: finite float in [0, 1]
probability = number(float, low=0, high=1)
#: finite float in (0, 1) (target acceptance rates, quantile levels)
open_probability = number(float, low=0, high=1, low_open=True, high_open=True)


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
    parser.add_argument(
        "--devices",
        type=int,
        default=None,
        help="devices to split batches/chains/particles over (default: all devices JAX sees)",
    )
    parser.add_argument(
        "--coordinator",
        default=None,
        help="multi-host: coordinator HOST:PORT for jax.distributed.initialize (same on every host)",
    )
    parser.add_argument(
        "--num-processes", type=positive_int, default=None, help="multi-host: number of processes (hosts)"
    )
    parser.add_argument(
        "--process-id", type=non_negative_int, default=None, help="multi-host: this process's index 0..P-1"
    )


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


class one_line_warnings:
    """Context manager: warnings of ``categories`` raised inside are printed to stderr as one line
    each, ``ebm-ppl COMMAND: warning: MESSAGE`` (no source line), once per distinct message; the
    messages are kept in ``.messages`` (e.g. for the --json result). ``same(message)``: the key under
    which two messages count as one (default the message itself)."""

    def __init__(self, command: str, *categories, same=None):
        self.command = command
        self.categories = categories or (Warning,)
        self.messages: list[str] = []
        self._same = same or (lambda msg: msg)  # key under which two messages count as one

    def __enter__(self):
        import warnings

        self._ctx = warnings.catch_warnings(record=True)
        self._caught = self._ctx.__enter__()
        warnings.simplefilter("always")
        return self

    def __exit__(self, *exc):
        import sys
        import warnings

        self._ctx.__exit__(*exc)
        for w in self._caught:
            if not issubclass(w.category, self.categories):
                warnings.warn_explicit(w.message, w.category, w.filename, w.lineno)  # others: as usual
                continue
            msg = " ".join(str(w.message).split())
            if self._same(msg) not in {self._same(m) for m in self.messages}:
                self.messages.append(msg)
                print(f"ebm-ppl {self.command}: warning: {msg}", file=sys.stderr, flush=True)
        return False


def progress_bar(enabled: bool, desc: str = ""):
    """A ``progress(stage, done, total)`` callback drawing a tqdm bar on stderr, and a ``close()``;
    ``(None, no-op)`` when not ``enabled`` (e.g. under --json)."""
    if not enabled:
        return None, (lambda: None)
    from tqdm.auto import tqdm

    bar = tqdm(total=1, desc=desc, leave=False, dynamic_ncols=True)
    current = [None]

    def update(stage, done, total):
        if current[0] != (stage, total):
            current[0] = (stage, total)
            bar.reset(total=total)
            bar.set_description(f"{desc}{stage}")
        bar.n = done
        bar.refresh()

    return update, bar.close
