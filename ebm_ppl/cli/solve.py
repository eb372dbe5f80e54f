"""``ebm-ppl solve``: posterior sampling for an inverse problem with an EBM (or oracle) prior."""

from __future__ import annotations

import json
import os

from ebm_ppl.cli import UsageError
from ebm_ppl.cli.common import add_devices_arguments, add_energy_arguments, resolve_energy, resolve_mesh
from ebm_ppl.cli.solve_image import add_image_arguments, run_image

HELP = "solve an inverse problem (inpainting, denoising, blur, super-resolution, compressed sensing) with calibrated uncertainty"


def add_arguments(parser):
    add_energy_arguments(parser)
    parser.add_argument("--operator", required=True,
                        help="inpaint:half | inpaint:box | inpaint:randomP | denoise:S | blur:gaussS | sr:F | cs:R  (suffix @S sets the noise std)")
    parser.add_argument("--noise-std", type=float, default=None, help="observation noise std (default: from the operator name)")
    parser.add_argument("--data", default="digits", help="data set of the truths (test split) and the Gaussian baseline (train split); ignored with --target")
    parser.add_argument("--split", default="test", help="split the truths come from (default test)")
    parser.add_argument("--n-images", type=int, default=16, help="number of problems (default 16)")
    parser.add_argument("--out", default="out/solve", help="output folder (panel.png, calibration.png, metrics.json)")
    parser.add_argument("--method", default="smc+nuts", choices=["smc+nuts", "smc", "progressive"],
                        help="posterior sampler: smc+nuts (default: likelihood-tempered SMC at level 0, then NUTS from its "
                             "particles), smc (the SMC particles) or progressive (annealed progressive warm start, then NUTS)")
    parser.add_argument("--particles", type=int, default=64, help="SMC particles per problem (default 64)")
    parser.add_argument("--prior-level", type=int, default=0,
                        help="SMC methods: use the energy's level-l density as the prior (default 0, the data law)")
    parser.add_argument("--chains", type=int, default=8, help="chains per problem (default 8)")
    parser.add_argument("--warmup", type=int, default=100, help="NUTS adaptation steps (default 100)")
    parser.add_argument("--samples", type=int, default=100, help="NUTS draws kept per chain (default 100; 0 = progressive only)")
    parser.add_argument("--inner", default="mala", help="inner sampler of the progressive warm start (default mala)")
    parser.add_argument("--inner-steps", type=int, default=20, help="inner steps per level (default 20)")
    parser.add_argument("--max-doublings", type=int, default=6, help="NUTS maximum tree doublings (default 6)")
    parser.add_argument("--seed", type=int, default=0)
    add_devices_arguments(parser)
    add_image_arguments(parser)  # --image: whole photos (cli/solve_image.py, docs/images.md)


def run(args):
    import jax
    import numpy as np

    from ebm_ppl.inverse import experiment, fit_gaussian
    from ebm_ppl.inverse.operators import from_name

    if args.image:  # whole photos with a fully convolutional prior
        return run_image(args, resolve_energy(args))
    if args.n_images < 1:
        raise UsageError(f"--n-images must be at least 1, got {args.n_images}")
    if args.chains < 2:
        raise UsageError(f"--chains must be at least 2, got {args.chains}")
    if args.warmup < 0 or args.samples < 0:
        raise UsageError("--warmup and --samples must be non-negative")
    if args.method != "progressive" and args.particles < max(4, args.chains):
        raise UsageError(f"--particles must be at least 4 and at least --chains, got {args.particles}")
    if args.prior_level and args.method == "progressive":
        raise UsageError("--prior-level needs --method smc or smc+nuts")
    energy = resolve_energy(args)
    mesh, n_dev = resolve_mesh(args)
    if args.n_images % n_dev:
        raise UsageError(f"--n-images {args.n_images} cannot be split over {n_dev} devices; use a multiple of {n_dev} "
                         f"or --devices {max(d for d in range(1, n_dev + 1) if args.n_images % d == 0)}")
    try:
        operator, noise_std = from_name(args.operator, energy.data_shape, seed=args.seed, noise_std=args.noise_std)
    except ValueError as err:
        raise UsageError(str(err)) from None
    key = jax.random.PRNGKey(args.seed)
    k_truth, k_train, k_run = jax.random.split(key, 3)
    oracle = None
    if args.target:
        if not hasattr(energy, "sample_data"):
            raise UsageError(f"--target {args.target} is not a mixture oracle (no exact samples)")
        oracle = energy
        truths = np.asarray(oracle.sample_data(k_truth, args.n_images))
        train = np.asarray(oracle.sample_data(k_train, 2000))
        source = f"target {args.target}"
    else:
        from ebm_ppl import data

        try:
            truths = data.load(args.data, args.split)
            train = data.load(args.data, "train")
        except (ValueError, FileNotFoundError) as err:
            raise UsageError(str(err)) from None
        if tuple(truths.shape[1:]) != tuple(energy.data_shape):
            raise UsageError(f"data {args.data!r} has examples of shape {truths.shape[1:]} but the checkpoint models {energy.data_shape}")
        if args.n_images > len(truths):
            raise UsageError(f"--n-images {args.n_images} exceeds the {len(truths)} images of {args.data}:{args.split}")
        truths = truths[: args.n_images]
        source = f"{args.data}:{args.split}"
    sampler_kwargs = dict(num_chains=args.chains, num_warmup=args.warmup, num_samples=args.samples,
                          inner=args.inner, num_inner_steps=args.inner_steps, max_num_doublings=args.max_doublings,
                          mesh=mesh, method=args.method)
    if args.method != "progressive":
        if mesh is not None and n_dev > 1:
            raise UsageError("--method smc/smc+nuts runs on one device; use --method progressive with --devices")
        sampler_kwargs.update(mesh=None, num_particles=args.particles, smc_kwargs={"prior_level": args.prior_level})
    title = f"{args.operator} (noise {noise_std:g}) on {source}"
    print(f"solving {args.n_images} problems: {title}", flush=True)
    try:
        metrics, _ = experiment.run(
            energy, operator, noise_std, truths, k_run, baseline=fit_gaussian(train), oracle=oracle,
            sampler_kwargs=sampler_kwargs, out_dir=args.out, title=title, progress=True,
        )
    except ValueError as err:
        raise UsageError(str(err)) from None
    metrics = {"operator": args.operator, "source": source, **metrics, "devices": n_dev}
    os.makedirs(args.out, exist_ok=True)
    path = os.path.join(args.out, "metrics.json")
    with open(path, "w") as fh:
        json.dump(metrics, fh, indent=1)
    print(f"PSNR {metrics['psnr']:.2f} dB (Gaussian prior {metrics['baseline_psnr']:.2f}), "
          f"90% coverage {metrics['coverage90']:.3f} (Gaussian prior {metrics['baseline_coverage90']:.3f}); wrote {path}")
    return metrics
