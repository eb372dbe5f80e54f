"""The digits EBM distilled into a one-step sampler: Frechet distance and samples per second.

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
        .venv/bin/python benchmarks/drifting_digits.py --ckpt models/digits-dsm --steps 3000

Distils the level-0 density (data space, 8x8 digits in [-1, 1]) of a shipped noise-conditional
model with the ``"level"`` drift estimator: the target-side smoothed score at bandwidth rho_t is
the model's own score at level t, annealed over the model's levels from ``--level-start`` to
``--level-end``; sampler side the batch Gaussian mean shift at the same rho_t. Generator: the
residual MLP on 64 dims (``--arch conv`` for the convolutional one). Then

* one-step: 360 samples (the size of the test split), wall time of a jitted forward pass;
* progressive: 360 samples with the checkpoint's own sampling options (as in models/build_zoo.py);

and both are scored by the classifier Frechet distance against the digits test split
(``ebm_ppl.metrics.frechet_distance``); train[:360] vs test gives the data-to-data floor.
Writes benchmarks/results/drifting_digits.{json,md,png}.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import numpy as np

from ebm_ppl import checkpoint, data, metrics
from ebm_ppl.plotting import save_image_grid
from ebm_ppl.sampling import drifting as dr
from ebm_ppl.sampling import progressive
from ebm_ppl.train.loop import sampling_options

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
N = 360


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--ckpt", default="models/digits-dsm")
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch-size", type=int, default=256)
    ap.add_argument("--arch", default="mlp", choices=("mlp", "conv"))
    ap.add_argument("--level-start", type=int, default=None)
    ap.add_argument("--level-end", type=int, default=1)
    ap.add_argument("--eta", type=float, default=None, help="drift step at level_end (default rho_end^2)")
    ap.add_argument("--lr", type=float, default=1e-3)
    ap.add_argument("--tag", default="digits")
    ap.add_argument("--leave-one-out", action="store_true", help="sampler-side mean shift without the point itself")
    args = ap.parse_args(argv)

    energy = checkpoint.load(args.ckpt)
    rhos = dr.level_bandwidths(energy)
    eta = float(rhos[args.level_end] ** 2) if args.eta is None else args.eta
    width = 512 if args.arch == "mlp" else 64
    cfg = dr.DriftingConfig(
        latent_dim=64,
        width=width,
        depth=3,
        arch=args.arch,
        init_scale=0.6,
        estimator="level",
        level_start=args.level_start,
        level_end=args.level_end,
        eta=eta,
        eta_scales_with_sigma=True,
        batch_size=args.batch_size,
        learning_rate=args.lr,
        num_steps=args.steps,
        sampler_include_self=not args.leave_one_out,
    )
    print(f"rho_t = {np.round(rhos, 4).tolist()}; eta at level {args.level_end} = {eta:.4g}", flush=True)
    sampler, hist, _ = dr.train(jax.random.PRNGKey(0), energy, cfg, chunk=50)
    tag = f"drifting_{args.tag}"
    sampler.save(os.path.join(RESULTS, f"{tag}_sampler"))

    test = data.load("digits", "test")
    train_split = data.load("digits", "train")

    # one-step: compile, then time
    key = jax.random.PRNGKey(42)
    jax.block_until_ready(sampler.sample(key, N))
    t0 = time.perf_counter()
    reps = 20
    for i in range(reps):
        x_one = jax.block_until_ready(sampler.sample(jax.random.fold_in(key, i), N))
    one_s = (time.perf_counter() - t0) / reps
    x_one = np.clip(np.asarray(sampler.sample(key, N)), -1, 1)

    # progressive with the checkpoint's own options (compile excluded by a warm-up of the same shape)
    opts = sampling_options(energy.schedule, energy_config(args.ckpt).get("sampling") or {})
    jax.block_until_ready(progressive.sample(jax.random.PRNGKey(1), energy, N, **opts))
    t0 = time.perf_counter()
    x_prog = np.asarray(jax.block_until_ready(progressive.sample(jax.random.PRNGKey(0), energy, N, **opts)))
    prog_s = time.perf_counter() - t0
    x_prog = np.clip(x_prog, -1, 1)

    fd_one = float(metrics.frechet_distance(x_one, test))
    fd_prog = float(metrics.frechet_distance(x_prog, test))
    fd_data = float(metrics.frechet_distance(train_split[:N], test))
    hist_one = metrics.class_histogram(x_one)
    # nearest training image distance (memorisation check)
    tr = train_split.reshape(len(train_split), -1)
    nn_one = float(np.median(np.min(((x_one.reshape(N, -1)[:, None] - tr[None]) ** 2).sum(-1), 1) ** 0.5))
    nn_prog = float(np.median(np.min(((x_prog.reshape(N, -1)[:, None] - tr[None]) ** 2).sum(-1), 1) ** 0.5))
    nn_test = float(np.median(np.min(((test.reshape(len(test), -1)[:, None] - tr[None]) ** 2).sum(-1), 1) ** 0.5))

    res = {
        "ckpt": args.ckpt,
        "config": cfg.to_dict(),
        "level_bandwidths": rhos.tolist(),
        "train_seconds": hist["seconds"],
        "final_loss": hist["loss"][-1],
        "one_step": {
            "frechet_distance_test": fd_one,
            "seconds_per_360": one_s,
            "samples_per_second": N / one_s,
            "class_proportions": [float(v) for v in np.asarray(hist_one.proportions)]
            if hasattr(hist_one, "proportions")
            else None,
            "median_nn_train_distance": nn_one,
        },
        "progressive": {
            "frechet_distance_test": fd_prog,
            "seconds_per_360": prog_s,
            "samples_per_second": N / prog_s,
            "options": {k: (v if isinstance(v, (int, float, str, type(None))) else str(v)) for k, v in opts.items()},
            "median_nn_train_distance": nn_prog,
        },
        "train360_vs_test_frechet": fd_data,
        "test_median_nn_train_distance": nn_test,
    }
    print(
        json.dumps(
            {k: v for k, v in res.items() if k in ("one_step", "progressive", "train360_vs_test_frechet")}, indent=1
        )
    )
    with open(os.path.join(RESULTS, f"{tag}.json"), "w") as f:
        json.dump(res, f, indent=1)
    md = "\n".join(
        [
            "| sampler | classifier FD vs test (360) | samples / s (CPU, 360 per call) | median distance to nearest train image | training |",
            "|---|---|---|---|---|",
            f"| one-step drifting ({args.arch}, {args.steps} updates{', leave-one-out sampler side' if args.leave_one_out else ''}) | {fd_one:.2f} | {N / one_s:.0f} | {nn_one:.2f} | {hist['seconds']:.0f} s |",
            f"| progressive ({args.ckpt}, own options) | {fd_prog:.2f} | {N / prog_s:.1f} | {nn_prog:.2f} | - |",
            f"| train[:360] vs test (floor) | {fd_data:.2f} | - | {nn_test:.2f} (test) | - |",
        ]
    )
    print(md)
    with open(os.path.join(RESULTS, f"{tag}.md"), "w") as f:
        f.write(md + "\n")
    grid = np.concatenate([x_one[:50], x_prog[:50]])
    save_image_grid(
        grid,
        os.path.join(RESULTS, f"{tag}.png"),
        title=f"top 5 rows: one-step drifting (FD {fd_one:.1f}); bottom: progressive (FD {fd_prog:.1f})",
        ncols=10,
    )


def energy_config(ckpt):
    with open(os.path.join(ckpt, "config.json")) as f:
        return json.load(f)


if __name__ == "__main__":
    sys.exit(main())
