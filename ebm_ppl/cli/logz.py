"""``ebm-ppl logz CKPT|--target NAME``: estimate log Z, plot its convergence, optionally store it."""

from __future__ import annotations

import os

from ebm_ppl.cli import UsageError
from ebm_ppl.cli.common import (
    add_devices_arguments,
    add_energy_arguments,
    non_negative_int,
    number,
    one_line_warnings,
    positive_int,
    progress_bar,
    resolve_energy,
    resolve_mesh,
)
from ebm_ppl.energy.protocol import ExactSampler

HELP = "estimate log Z of a checkpoint or target (AIS, ladder or SMC); --write stores it in the checkpoint"

METHODS = ("ais", "bdmc", "ladder", "smc")
#: --write stores one file per level passed up to this many levels (drl:6, ncsn:10); beyond, one file
MAX_LEVEL_FILES = 64


def add_arguments(parser):
    add_energy_arguments(parser)
    parser.add_argument("--method", choices=METHODS, default="ais", help="estimator (default ais)")
    parser.add_argument("--level", type=non_negative_int, default=0, help="noise level t (default 0: the data)")
    parser.add_argument("--samples", type=number(int, low=2), default=None, help="particles / samples M (>= 2)")
    parser.add_argument("--bridges", type=positive_int, default=None, help="AIS: total geometric bridges")
    parser.add_argument("--steps", type=positive_int, default=None, help="AIS: MALA steps per bridge")
    parser.add_argument(
        "--frame",
        choices=("fit", "identity"),
        default="fit",
        help="AIS/BDMC coordinates: fit (default; per-level frames fitted by a pilot) or identity",
    )
    parser.add_argument("--seed", type=non_negative_int, default=0)
    parser.add_argument("--write", action="store_true", help="store the estimate in the checkpoint")
    parser.add_argument(
        "--out", default=None, help="convergence-curve PNG (default logz_<method>.png next to the checkpoint, or ./)"
    )
    add_devices_arguments(parser)


def _estimate(energy, args, mesh=None, progress=None):
    import jax

    from ebm_ppl import logz

    key = jax.random.key(args.seed)
    kw = {"level": args.level, "mesh": mesh}
    if args.method in ("ais", "bdmc"):
        kw["progress"] = progress
        if args.samples:
            kw["num_particles"] = args.samples
        if args.bridges:
            kw["num_bridges"] = args.bridges
        if args.steps:
            kw["num_steps"] = args.steps
        kw["frame"] = args.frame
        if args.method == "bdmc" and not isinstance(energy, ExactSampler):
            raise UsageError("--method bdmc needs exact samples: use it with --target oracles")
        return (logz.ais if args.method == "ais" else logz.bdmc)(key, energy, **kw)
    if args.method == "ladder":
        kw.pop("mesh")  # the ladder runs unsharded
        return logz.ladder(key, energy, num_samples=args.samples or 1024, **kw)
    return logz.smc(key, energy, num_particles=args.samples or 1024, **kw)


def plot_curve(est, path, exact=None):
    import numpy as np

    from ebm_ppl.plotting import atomic_savefig, new_figure

    fig = new_figure(figsize=(5, 3.5))
    ax = fig.subplots()
    m = np.array([c[0] for c in est.curve])
    v = np.array([c[1] for c in est.curve])
    ax.semilogx(m, v, "o-", label=f"{est.method} estimate")
    if est.upper is not None and est.lower is not None:
        ax.axhspan(est.lower, est.upper, color="C1", alpha=0.2, label="BDMC sandwich")
    if exact is not None:
        ax.axhline(exact, color="k", ls="--", label="exact")
    ax.set_xlabel("number of samples")
    ax.set_ylabel(f"log Z_{est.level}")
    if est.reliable:
        ax.set_title(f"{est.method}: {est.log_z:.3f} ± {est.stderr:.3f} (ESS {est.ess:.0f})")
    else:
        ax.set_title(f"{est.method}: {est.log_z:.3f}, UNRELIABLE (ESS {est.ess:.0f}, k-hat {est.khat:.2f})")
    ax.legend(fontsize=8)
    fig.tight_layout()
    return atomic_savefig(fig, path, dpi=120)


def _ranges(levels) -> str:
    """[0, 1, 2, 5] -> '0-2, 5'."""
    parts: list[list[int]] = []
    levels = sorted(levels)
    for t in levels:
        if parts and t == parts[-1][1] + 1:
            parts[-1][1] = t
        else:
            parts.append([t, t])
    return ", ".join(f"{a}" if a == b else f"{a}-{b}" for a, b in parts)


def run(args):
    energy = resolve_energy(args)
    if not 0 <= args.level < energy.num_levels:
        raise UsageError(f"--level must be in 0..{energy.num_levels - 1}")
    if args.write and not args.ckpt:
        raise UsageError("--write needs a checkpoint (targets know their exact log Z)")
    mesh, n_dev = resolve_mesh(args)
    if args.method == "ladder":
        mesh, n_dev = None, 1
    else:
        n = args.samples or (512 if args.method in ("ais", "bdmc") else 1024)
        if n % n_dev:
            raise UsageError(f"--samples {n} cannot be split over {n_dev} devices; use a multiple of {n_dev}")
    print(f"estimating log Z_{args.level} of {energy!r} by {args.method} on {n_dev} device(s) ...", flush=True)
    progress, close = progress_bar(not getattr(args, "json", False), "log Z: ")
    from ebm_ppl.logz import UnreliableLogZWarning

    with one_line_warnings("logz", UnreliableLogZWarning) as caught:
        try:
            est = _estimate(energy, args, mesh, progress)
        finally:
            close()
    exact = energy.log_z(args.level)
    out = args.out or os.path.join(args.ckpt or ".", f"logz_{args.method}_level{args.level}.png")
    plot_curve(est, out, exact)
    cost = f"{est.num_grad_evals:.3g} gradient evaluations"
    line = (
        f"{est} ({cost})"
        if not est.reliable
        else f"log Z_{args.level} = {est.log_z:.4f} ± {est.stderr:.4f} (standard error; ESS {est.ess:.1f}, k-hat {est.khat:.2f}, {cost})"
    )
    print(line + (f"; exact {exact:.4f}" if exact is not None else ""))
    print(f"convergence curve: {out}")
    result = {
        "log_z": est.log_z,
        "stderr": est.stderr,
        "ess": est.ess,
        "khat": est.khat,
        "reliable": est.reliable,
        "reliability": est.reliability_note,
        "level": est.level,
        "method": est.method,
        "num_grad_evals": est.num_grad_evals,
        "lower": est.lower,
        "upper": est.upper,
        "exact": exact,
        "png": out,
        "levels": est.levels,
        "devices": n_dev,
        "warnings": caught.messages,
    }
    if args.write:
        from ebm_ppl import checkpoint

        # one file per level passed; with many levels (T1k) only the estimated level's file, whose
        # levels table checkpoint.load_logz reads for the others (a file each would be quadratic)
        passed = sorted(est.levels) if est.method in ("ais", "ladder") else []
        stored = passed if 0 < len(passed) <= MAX_LEVEL_FILES else [est.level]
        for t in stored:
            entry = est.at_level(t).to_json()
            entry["seed"] = args.seed
            checkpoint.save_logz(args.ckpt, entry)
        print(
            f"stored log Z of level(s) {_ranges(stored)} in {args.ckpt}"
            + (f" (levels {_ranges(passed)} readable from its table)" if stored != passed and passed else "")
        )
        result["written"] = True
    return result
