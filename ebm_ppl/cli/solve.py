"""``ebm-ppl solve``: posterior sampling for an inverse problem with an EBM (or oracle) prior.

The prior's level defaults to the model card's ``evaluation_level`` (``--level`` overrides it);
the sampler budget defaults to :data:`ebm_ppl.inverse.posterior.DEFAULTS`. Before sampling it
prints a time estimate (measured gradient cost times the run's gradient count); tqdm bars show the
stages (off under ``--json``).

The truths come from :func:`load_truths` (a data set's split, or an oracle's exact draws); whole
user photos (``--image``) go to :mod:`ebm_ppl.cli.solve_image`.
"""

from __future__ import annotations

import json
import math
import os

from ebm_ppl.cli import UsageError
from ebm_ppl.cli.common import add_devices_arguments, add_energy_arguments, resolve_energy, resolve_mesh
from ebm_ppl.cli.solve_image import add_image_arguments, run_image
from ebm_ppl.energy.protocol import ExactSampler

HELP = "solve an inverse problem (inpainting, denoising, blur, super-resolution, compressed sensing) with calibrated uncertainty"


def _defaults():
    from ebm_ppl.inverse.posterior import DEFAULTS

    return DEFAULTS


def add_arguments(parser):
    d = _defaults()
    add_energy_arguments(parser)
    parser.add_argument(
        "--operator",
        required=True,
        help="inpaint:half | inpaint:box | inpaint:randomP | denoise:S | blur:gaussS | sr:F | cs:R  (suffix @S sets the noise std)",
    )
    parser.add_argument(
        "--noise-std", type=float, default=None, help="observation noise std (default: from the operator name)"
    )
    parser.add_argument(
        "--data",
        default="digits",
        help="data set of the truths (test split) and the Gaussian baseline (train split); ignored with --target",
    )
    parser.add_argument("--split", default="test", help="split the truths come from (default test)")
    parser.add_argument("--n-images", type=int, default=16, help="number of problems (default 16)")
    parser.add_argument("--out", default="out/solve", help="output folder (panel.png, calibration.png, metrics.json)")
    parser.add_argument(
        "--method",
        default="smc+nuts",
        choices=["smc+nuts", "smc", "progressive"],
        help="posterior sampler: smc+nuts (default: likelihood-tempered SMC, then NUTS from its "
        "particles), smc (the SMC particles) or progressive (annealed progressive warm start, then NUTS; level 0)",
    )
    parser.add_argument(
        "--level",
        "--prior-level",
        dest="level",
        type=int,
        default=None,
        help="noise level of the prior's density (default: the model card's evaluation_level; 0 for --target)",
    )
    parser.add_argument(
        "--particles",
        type=int,
        default=d["num_particles"],
        help=f"SMC particles per problem (default {d['num_particles']})",
    )
    parser.add_argument(
        "--mcmc-steps",
        type=int,
        default=d["num_mcmc_steps"],
        help=f"SMC: HMC moves per tempering step (default {d['num_mcmc_steps']})",
    )
    parser.add_argument(
        "--chains", type=int, default=d["num_chains"], help=f"NUTS chains per problem (default {d['num_chains']})"
    )
    parser.add_argument(
        "--warmup", type=int, default=d["num_warmup"], help=f"NUTS adaptation steps (default {d['num_warmup']})"
    )
    parser.add_argument(
        "--samples",
        type=int,
        default=d["num_draws"],
        help=f"NUTS draws kept per chain (default {d['num_draws']}; 0 = the starts are the samples)",
    )
    parser.add_argument(
        "--inner",
        default=None,
        help="inner sampler of the progressive sampler (default mala; normal for priors with >= 100 levels)",
    )
    parser.add_argument(
        "--inner-steps",
        type=int,
        default=None,
        help=f"inner steps per level of the progressive sampler (default {d['num_inner_steps']}; 20 for --method progressive)",
    )
    parser.add_argument(
        "--max-doublings",
        type=int,
        default=d["max_num_doublings"],
        help=f"NUTS maximum tree doublings (default {d['max_num_doublings']})",
    )
    parser.add_argument("--seed", type=int, default=0)
    add_devices_arguments(parser)
    add_image_arguments(parser)  # --image: whole photos (cli/solve_image.py, docs/images.md)


def check_arguments(args):
    """One clear UsageError (exit code 2) for a bad number, before anything is loaded."""

    def need(ok, msg):
        if not ok:
            raise UsageError(msg)

    need(args.n_images >= 1, f"--n-images must be at least 1, got {args.n_images}")
    need(args.chains >= 2, f"--chains must be at least 2, got {args.chains}")
    need(args.warmup >= 0, f"--warmup must be non-negative, got {args.warmup}")
    need(args.samples >= 0, f"--samples must be non-negative, got {args.samples}")
    need(args.max_doublings >= 1, f"--max-doublings must be at least 1, got {args.max_doublings}")
    need(args.mcmc_steps >= 1, f"--mcmc-steps must be at least 1, got {args.mcmc_steps}")
    need(args.inner_steps is None or args.inner_steps >= 1, f"--inner-steps must be at least 1, got {args.inner_steps}")
    need(args.level is None or args.level >= 0, f"--level must be non-negative, got {args.level}")
    if args.noise_std is not None:
        need(
            math.isfinite(args.noise_std) and args.noise_std > 0,
            f"--noise-std must be a positive number, got {args.noise_std}",
        )
    if args.method != "progressive":
        need(
            args.particles >= max(4, args.chains) or (args.method == "smc" and args.particles >= 4),
            f"--particles must be at least 4 and at least --chains ({args.chains}), got {args.particles}",
        )
    if args.level and args.method == "progressive":
        raise UsageError("--level > 0 needs --method smc or smc+nuts (the progressive warm start samples level 0)")


def load_truths(args, energy, k_truth, k_train):
    """(truths (n, *shape), training examples for the Gaussian baseline, source name, oracle or None)."""
    import numpy as np

    if args.target:
        if not isinstance(energy, ExactSampler):
            raise UsageError(f"--target {args.target} is not a mixture oracle (no exact samples)")
        truths = np.asarray(energy.sample_data(k_truth, args.n_images))
        train = np.asarray(energy.sample_data(k_train, 2000))
        return truths, train, f"target {args.target}", energy
    from ebm_ppl import data

    try:
        truths = data.load(args.data, args.split)
        train = data.load(args.data, "train")
    except (ValueError, FileNotFoundError) as err:
        raise UsageError(str(err)) from None
    if tuple(truths.shape[1:]) != tuple(energy.data_shape):
        raise UsageError(
            f"data {args.data!r} has examples of shape {truths.shape[1:]} but the checkpoint models {energy.data_shape}"
        )
    if args.n_images > len(truths):
        raise UsageError(f"--n-images {args.n_images} exceeds the {len(truths)} images of {args.data}:{args.split}")
    return truths[: args.n_images], train, f"{args.data}:{args.split}", None


def resolve_level(args, energy):
    """--level, else the card's evaluation level (0 for --target); UsageError when out of range."""
    level = args.level
    if level is None:
        level = 0
        if args.ckpt and args.method != "progressive":
            from ebm_ppl.checkpoint import CheckpointError, evaluation_level

            try:
                level = evaluation_level(args.ckpt)
            except CheckpointError as err:
                raise UsageError(str(err)) from None
    if not 0 <= level < energy.num_levels:
        raise UsageError(f"--level must be in 0..{energy.num_levels - 1} for this prior, got {level}")
    return level


def sampler_settings(args, level, mesh, n_dev):
    kwargs = dict(
        num_chains=args.chains,
        num_warmup=args.warmup,
        num_draws=args.samples,
        inner=args.inner,
        num_inner_steps=args.inner_steps,
        max_num_doublings=args.max_doublings,
        mesh=mesh,
        method=args.method,
        level=level,
    )
    if args.method != "progressive":
        if mesh is not None and n_dev > 1:
            raise UsageError("--method smc/smc+nuts runs on one device; use --method progressive with --devices")
        kwargs.update(mesh=None, num_particles=args.particles, smc_kwargs={"num_mcmc_steps": args.mcmc_steps})
    return kwargs


def print_estimate(energy, n, kwargs):
    """Print the time estimate (and return it as a dict for the metrics)."""
    from ebm_ppl.inverse.budget import estimate_cost

    options = {k: v for k, v in kwargs.items() if k not in ("mesh", "level")}
    est = estimate_cost(energy, n, level=kwargs["level"], **options)
    print(
        f"estimated sampling time: {_fmt(est.seconds)} (at most {_fmt(est.seconds_max)}) plus compilation, from "
        f"{sum(est.gradients.values()):.3g} particle gradients at {est.gradient_seconds * 1e6:.0f} us each "
        f"({est.loop_gradient_seconds * 1e6:.0f} us inside NUTS's loops)",
        flush=True,
    )
    return {
        "estimated_seconds": round(est.seconds, 3),
        "estimated_seconds_max": round(est.seconds_max, 3),
        "estimated_gradients": est.gradients,
    }


def _fmt(seconds):
    return f"{seconds:.0f} s" if seconds < 120 else f"{seconds / 60:.1f} min"


def run(args):
    import time

    import jax

    from ebm_ppl.inverse import experiment, fit_gaussian
    from ebm_ppl.inverse.operators import from_name

    if args.image:  # whole photos with a fully convolutional prior
        return run_image(args, resolve_energy(args))
    check_arguments(args)
    energy = resolve_energy(args)
    level = resolve_level(args, energy)
    mesh, n_dev = resolve_mesh(args)
    if args.n_images % n_dev:
        raise UsageError(
            f"--n-images {args.n_images} cannot be split over {n_dev} devices; use a multiple of {n_dev} "
            f"or --devices {max(d for d in range(1, n_dev + 1) if args.n_images % d == 0)}"
        )
    try:
        operator, noise_std = from_name(args.operator, energy.data_shape, seed=args.seed, noise_std=args.noise_std)
    except ValueError as err:
        raise UsageError(str(err)) from None
    key = jax.random.PRNGKey(args.seed)
    k_truth, k_train, k_run = jax.random.split(key, 3)
    truths, train, source, oracle = load_truths(args, energy, k_truth, k_train)
    sampler_kwargs = sampler_settings(args, level, mesh, n_dev)
    title = f"{args.operator} (noise {noise_std:g}) on {source}, prior level {level}"
    print(f"solving {args.n_images} problems: {title}", flush=True)
    estimate = print_estimate(energy, args.n_images, sampler_kwargs)
    t0 = time.time()
    try:
        metrics, _ = experiment.run(
            k_run,
            energy,
            operator,
            noise_std,
            truths,
            baseline=fit_gaussian(train),
            oracle=oracle,
            sampler_kwargs=sampler_kwargs,
            out_dir=args.out,
            title=title,
            progress=not args.json,
        )
    except ValueError as err:
        raise UsageError(str(err)) from None
    metrics = {
        "operator": args.operator,
        "source": source,
        "level": level,
        **metrics,
        "devices": n_dev,
        "total_seconds": round(time.time() - t0, 1),
        **estimate,
    }
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "metrics.json")
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(metrics, fh, indent=1)
    os.replace(tmp, path)
    print(
        f"PSNR {metrics['psnr']:.2f} dB (Gaussian prior {metrics['baseline_psnr']:.2f}), "
        f"90% coverage {metrics['coverage90']:.3f} (Gaussian prior {metrics['baseline_coverage90']:.3f}); wrote {path}"
    )
    return metrics
