"""``ebm-ppl sample``: draw samples from a checkpoint or a named target.

    ebm-ppl sample CKPT|--target NAME --sampler progressive|nuts|hmc|long-run
                   [--chains C] [--steps N] [--n N] --out FILE.png|FILE.npz [--json]

* ``progressive``: Algorithm 2; ``--inner mala|hmc|nuts|langevin|normal`` (default ``mala``: MH-corrected,
  steps tuned per level, each level started at a normal-approximation draw, tempered SMC at a top
  level without recovery term; ``langevin`` is the paper's K = 30 unadjusted run, biased: ncsn2
  mode weight 0.60 for 0.80), ``--steps`` inner steps per level (default: 30 for langevin, 10
  otherwise), ``--n`` samples (descents).
* ``nuts`` / ``hmc``: BlackJAX on level ``--level`` (default 0) in data space, ``--chains`` chains,
  ``--steps`` draws each after as many warm-up steps (window adaptation).
* ``long-run``: section 4.2: per level a normal draw then ``--steps`` - 1 HMC steps (2 leapfrog).

The .npz holds ``samples`` (n, *data_shape) in data space, and ``chains`` (C, N, *data_shape)
plus per-draw statistics (``log_density``, ``acceptance_rate``, ...) for ``ebm-ppl diagnose``.
A .png shows a sample grid (images) or a scatter (2-D).
"""

from __future__ import annotations

import os
import time
from typing import Any

from ebm_ppl.cli import UsageError
from ebm_ppl.cli.common import add_devices_arguments, add_energy_arguments, resolve_energy, resolve_mesh

HELP = "draw samples (progressive, NUTS, HMC or long-run chains) to a .npz or a .png"
SAMPLERS = ("progressive", "nuts", "hmc", "long-run")


def add_arguments(parser):
    add_energy_arguments(parser)
    parser.add_argument("--sampler", default="progressive", choices=SAMPLERS)
    parser.add_argument(
        "--inner",
        default="mala",
        help="progressive inner sampler: mala (default, MH-corrected, tuned steps)|hmc|nuts|"
        "langevin (the paper's K=30 unadjusted run: biased, see docs/sampling.md)|normal",
    )
    parser.add_argument(
        "--chains", type=int, default=4, help="chains (nuts/hmc); rows of the diagnostics layout otherwise"
    )
    parser.add_argument(
        "--steps",
        type=int,
        default=None,
        help="inner steps per level (progressive, long-run) or draws per chain (nuts, hmc)",
    )
    parser.add_argument("--warmup", type=int, default=None, help="warm-up steps for nuts/hmc (default: --steps)")
    parser.add_argument("--n", type=int, default=64, help="number of samples written")
    parser.add_argument("--level", type=int, default=0, help="level t sampled by nuts/hmc (0 = the data)")
    parser.add_argument(
        "--start",
        default="normal",
        choices=["normal", "langevin", "x_next"],
        help="long-run: first draw per level (normal approximation, or the schedule's Langevin "
        "short run of 30 steps for models with few levels such as drl:6)",
    )
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", required=True, help="FILE.npz or FILE.png")
    add_devices_arguments(parser)


def _positive(name, value):
    if value is not None and value < 1:
        raise UsageError(f"--{name} must be a positive integer, got {value}")


def draw(
    energy,
    sampler: str,
    *,
    n: int,
    chains: int,
    steps: int | None,
    inner: str = "mala",
    warmup: int | None = None,
    level: int = 0,
    seed: int = 0,
    mesh=None,
    start: str = "normal",
    progress: bool = False,
) -> dict:
    """The work of the command, as a library call: returns a dict of numpy arrays and figures.

    ``mesh``: split the samples / chains over a device mesh (:mod:`ebm_ppl.sharding`);
    ``progress``: a tqdm bar over the levels of the long run."""
    import jax
    import numpy as np

    from ebm_ppl.sampling import hmc, long_run, progressive

    key = jax.random.key(seed)
    out: dict = {}
    if sampler == "progressive":
        if inner not in progressive.INNER_SAMPLERS:
            raise UsageError(f"unknown --inner {inner!r}; choose one of {', '.join(progressive.INNER_SAMPLERS)}")
        trace = progressive.sample_trace(key, energy, n, inner=inner, num_inner_steps=steps, mesh=mesh)
        out.update(
            samples=np.asarray(trace.samples),
            step_sizes=trace.info.step_sizes,
            level_acceptance=trace.info.acceptance_rate,
            final_log_density=np.asarray(trace.info.log_density[0]),
        )
    elif sampler == "long-run":
        res = long_run.run(key, energy, n, steps_per_level=steps or 100, mesh=mesh, start=start, progress=progress)
        out.update(
            samples=np.asarray(res.samples),
            step_sizes=np.asarray(res.step_sizes),
            level_acceptance=np.asarray(res.acceptance_rate),
            total_steps=res.total_steps,
            final_log_density=np.asarray(res.log_density[0]),
        )
    else:
        if not 0 <= level < energy.num_levels:
            raise UsageError(f"--level must be in 0..{energy.num_levels - 1}, got {level}")
        s = steps or 500
        ch = hmc.sample_level(
            key, energy, t=level, num_chains=chains, algorithm=sampler, num_warmup=warmup or s, num_draws=s, mesh=mesh
        )
        flat = np.asarray(ch.position).reshape((-1,) + tuple(energy.data_shape))
        out.update(
            samples=flat[-n:],
            chains=np.asarray(ch.position),
            log_density=np.asarray(ch.log_density),
            acceptance_rate=np.asarray(ch.acceptance_rate),
            is_divergent=np.asarray(ch.is_divergent),
            tree_depth=np.asarray(ch.tree_depth),
            step_size=np.asarray(ch.step_size),
            num_gradient_evaluations=int(np.sum(ch.num_gradient_evaluations)),
        )
    if "chains" not in out:  # independent draws: lay them out as (chains, n / chains)
        c = max(1, min(chains, n))
        m = n // c
        out["chains"] = out["samples"][: c * m].reshape((c, m) + out["samples"].shape[1:])
        out["log_density"] = out["final_log_density"][: c * m].reshape(c, m)
    return out


def run(args) -> dict:
    for name in ("chains", "steps", "n", "warmup"):
        _positive(name, getattr(args, name))
    ext = os.path.splitext(args.out)[1].lower()
    if ext not in (".npz", ".png"):
        raise UsageError(f"--out must end in .npz or .png, got {args.out!r}")
    energy = resolve_energy(args)
    mesh, n_dev = resolve_mesh(args)
    split = args.chains if args.sampler in ("nuts", "hmc") else args.n
    if split % n_dev:
        what = "--chains" if args.sampler in ("nuts", "hmc") else "--n"
        raise UsageError(
            f"{what} {split} cannot be split over {n_dev} devices; use a multiple of {n_dev} "
            f"or --devices {max(d for d in range(1, n_dev + 1) if split % d == 0)}"
        )
    import numpy as np

    t0 = time.time()
    out = draw(
        energy,
        args.sampler,
        n=args.n,
        chains=args.chains,
        steps=args.steps,
        inner=args.inner,
        warmup=args.warmup,
        level=args.level,
        seed=args.seed,
        mesh=mesh,
        start=getattr(args, "start", "normal"),
        progress=not getattr(args, "json", False),
    )
    seconds = time.time() - t0
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    if ext == ".npz":
        arrays: dict[str, Any] = {k: np.asarray(v) for k, v in out.items()}
        np.savez(args.out, **arrays)
    else:
        from ebm_ppl.plotting import save_samples

        try:
            save_samples(out["samples"], args.out, title=f"{args.sampler} ({args.target or args.ckpt})")
        except ValueError as err:
            raise UsageError(f"{err}; write a .npz instead") from None
    x = np.asarray(out["samples"])
    print(f"wrote {len(x)} samples to {args.out} ({seconds:.1f} s)")
    result = {
        "out": args.out,
        "sampler": args.sampler,
        "n": int(len(x)),
        "seconds": seconds,
        "finite": bool(np.all(np.isfinite(x))),
        "mean_abs": float(np.mean(np.abs(x))),
        "devices": n_dev,
    }
    if "level_acceptance" in out:
        result["level_acceptance"] = np.asarray(out["level_acceptance"]).tolist()
    if "step_sizes" in out and out["step_sizes"] is not None:
        result["step_sizes"] = np.asarray(out["step_sizes"]).tolist()
    if "acceptance_rate" in out:
        result["mean_acceptance"] = float(np.mean(out["acceptance_rate"]))
        result["divergences"] = int(np.sum(out["is_divergent"]))
    return result
