"""Inverse-problem benchmarks (issue 5).

Part 1 (``--part oracle``): a 64-D Gaussian-mixture oracle (gmm:64:4) as the prior, whose
posterior under every linear-Gaussian observation is an exact Gaussian mixture. For each operator,
>= 200 problems (truths drawn from the oracle): coverage of the sampled 50/90/95% intervals (goal:
90% within 0.03 of 0.90), the same for the exact posterior and the Gaussian-prior baseline, and
the RMSE of the sampled posterior mean against the exact one.

Part 2 (``--part digits``): the digits checkpoint (models/digits-t6) on >= 100 test images for
half-image inpainting, random-50% inpainting and denoising at 0.2: PSNR of the posterior mean vs
the Gaussian-prior baseline (goal >= 2 dB better) and 90% coverage (goal in [0.85, 0.95]).

    .venv/bin/python benchmarks/inverse.py --part oracle
    .venv/bin/python benchmarks/inverse.py --part digits --ckpt models/digits-t6

Results: benchmarks/results/inverse_<part>.json (one entry per operator, written as it goes) and
a Markdown table on stdout; PNGs under out/bench_inverse/.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))

ORACLE_OPERATORS = ["inpaint:half", "inpaint:box", "inpaint:random0.5", "denoise:0.2", "blur:gauss1", "sr:2", "cs:0.3"]
DIGITS_OPERATORS = ["inpaint:half", "inpaint:random0.5", "denoise:0.2"]
KEYS = ["psnr", "baseline_psnr", "exact_psnr", "coverage50", "coverage90", "coverage95", "exact_coverage90",
        "baseline_coverage90", "mean_error", "mean_error_rel", "nuts_acceptance", "nuts_mean_integration_steps",
        "nuts_divergences", "mc_error_rel", "mc_error_chains_rel", "replicate_mean_error_rel", "smc_iterations", "smc_acceptance", "seconds"]


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["oracle", "digits"], required=True)
    p.add_argument("--target", default="gmm:64:4")
    p.add_argument("--ckpt", default="models/digits-dsm")
    p.add_argument("--operators", default=None, help="comma-separated subset")
    p.add_argument("--problems", type=int, default=None, help="200 (oracle) / 100 (digits) by default")
    p.add_argument("--method", default="smc+nuts", choices=["smc", "smc+nuts", "progressive"],
                   help="posterior sampler (default smc+nuts: likelihood-tempered SMC at level 0, then NUTS from its particles)")
    p.add_argument("--particles", type=int, default=64, help="SMC particles per problem (default 64)")
    p.add_argument("--mcmc-steps", type=int, default=5, help="SMC: HMC moves per tempering step (default 5)")
    p.add_argument("--final-steps", type=int, default=0, help="SMC: HMC moves after lam = 1 (default 0; NUTS follows)")
    p.add_argument("--prior-level", type=int, default=0, help="SMC: prior = the level-l density of the energy (default 0, the data law)")
    p.add_argument("--replicate", action="store_true",
                   help="oracle: run each posterior twice (independent prior particles) to estimate the Monte-Carlo error of the mean")
    p.add_argument("--chains", type=int, default=8)
    p.add_argument("--warmup", type=int, default=50)
    p.add_argument("--samples", type=int, default=50)
    p.add_argument("--inner-steps", type=int, default=20)
    p.add_argument("--max-doublings", type=int, default=6, help="NUTS maximum tree doublings (default 6)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="out/bench_inverse")
    p.add_argument("--results", default=None)
    args = p.parse_args(argv)

    import jax
    import numpy as np

    from ebm_ppl.inverse import experiment, fit_gaussian
    from ebm_ppl.inverse.operators import from_name

    key = jax.random.PRNGKey(args.seed)
    if args.part == "oracle":
        from ebm_ppl.energy import target

        energy = oracle = target(args.target)
        n = args.problems or 200
        truths = np.asarray(oracle.sample_data(jax.random.fold_in(key, 1), n))
        train = np.asarray(oracle.sample_data(jax.random.fold_in(key, 2), 2000))
        ops = ORACLE_OPERATORS
        source = args.target
    else:
        if not os.path.isdir(args.ckpt):
            print(f"checkpoint {args.ckpt} not found: train it first (see models/README or docs/inverse.md)")
            return 1
        from ebm_ppl import checkpoint, data

        energy, oracle = checkpoint.load(args.ckpt), None
        n = args.problems or 100
        truths = data.load("digits", "test")[:n]
        train = data.load("digits", "train")
        ops = DIGITS_OPERATORS
        source = f"digits test ({args.ckpt})"
    if args.operators:
        ops = args.operators.split(",")
    baseline = fit_gaussian(train)
    results_path = args.results or os.path.join("benchmarks", "results", f"inverse_{args.part}.json")
    os.makedirs(os.path.dirname(results_path), exist_ok=True)
    results = json.load(open(results_path)) if os.path.exists(results_path) else {}
    settings = dict(method=args.method, num_chains=args.chains, num_warmup=args.warmup, num_samples=args.samples,
                    num_inner_steps=args.inner_steps, max_num_doublings=args.max_doublings)
    if args.method != "progressive":
        from ebm_ppl.inverse.smc import prior_particles

        # prior particles do not depend on the observation: one progressive draw serves every operator
        t0 = time.time()
        pool = prior_particles(energy, jax.random.fold_in(key, 3), n * args.particles, num_inner_steps=args.inner_steps,
                               level=args.prior_level)
        pool = np.asarray(pool).reshape((n, args.particles) + tuple(energy.data_shape))
        print(f"{n} x {args.particles} progressive prior particles in {time.time() - t0:.0f}s", flush=True)
        settings.update(num_particles=args.particles, smc_mcmc_steps=args.mcmc_steps, smc_final_steps=args.final_steps,
                        smc_prior_level=args.prior_level)
    for i, name in enumerate(ops):
        op, noise = from_name(name, energy.data_shape, seed=args.seed)
        t0 = time.time()
        kwargs = {k: v for k, v in settings.items() if not k.startswith("smc_")}
        if args.method != "progressive":
            kwargs["smc_kwargs"] = dict(initial_particles=pool, num_mcmc_steps=args.mcmc_steps,
                                        num_final_steps=args.final_steps, prior_level=args.prior_level)
        rep = None
        if args.replicate and oracle is not None:
            rep = dict(kwargs)
            if args.method != "progressive":  # problem p gets problem p+1's prior particles: independent of run 1
                rep["smc_kwargs"] = dict(kwargs["smc_kwargs"], initial_particles=np.roll(pool, 1, axis=0))
        m, _ = experiment.run(energy, op, noise, truths, jax.random.fold_in(key, 100 + i), baseline=baseline,
                              oracle=oracle, sampler_kwargs=kwargs, replicate_sampler_kwargs=rep,
                              out_dir=os.path.join(args.out, args.part, name.replace(":", "_")),
                              title=f"{name} on {source}", progress=True)
        m.pop("calibration", None)
        results[name] = {"source": source, "problems": n, "settings": settings, **m}
        with open(results_path, "w") as fh:
            json.dump(results, fh, indent=1)
        print(name, {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items() if k in KEYS},
              f"{time.time() - t0:.0f}s", flush=True)
    print(table(results, args.part))
    return 0


def table(results, part):
    if part == "oracle":
        head = ("| operator | noise | cov50 | cov90 | cov95 | exact cov90 | Gaussian cov90 | mean RMSE vs exact (/ post. std) "
                "| MC error (/ post. std) | PSNR EBM / exact / Gaussian |")
        lines = [head, "|" + "---|" * 10]
        for name, r in results.items():
            mc = (f"{r['mc_error']:.4f} ({r['mc_error_rel']:.3f})" if "mc_error" in r else
                  f"{r['mc_error_chains']:.4f} ({r['mc_error_chains_rel']:.3f}) chains" if "mc_error_chains" in r else "-")
            lines.append(
                f"| {name} | {r['noise_std']:g} | {r['coverage50']:.3f} | {r['coverage90']:.3f} | {r['coverage95']:.3f} | "
                f"{r['exact_coverage90']:.3f} | {r['baseline_coverage90']:.3f} | {r['mean_error']:.4f} ({r['mean_error_rel']:.3f}) | "
                f"{mc} | {r['psnr']:.2f} / {r['exact_psnr']:.2f} / {r['baseline_psnr']:.2f} |")
    else:
        head = "| operator | noise | PSNR EBM | PSNR Gaussian | gain (dB) | SSIM EBM / Gaussian | cov90 EBM | cov90 Gaussian |"
        lines = [head, "|" + "---|" * 8]
        for name, r in results.items():
            lines.append(
                f"| {name} | {r['noise_std']:g} | {r['psnr']:.2f} | {r['baseline_psnr']:.2f} | {r['psnr'] - r['baseline_psnr']:+.2f} | "
                f"{r['ssim']:.3f} / {r['baseline_ssim']:.3f} | {r['coverage90']:.3f} | {r['baseline_coverage90']:.3f} |")
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
