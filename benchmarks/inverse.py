"""Inverse-problem benchmarks (issues 5 and 18).

Part ``oracle``: a 64-D Gaussian-mixture oracle (gmm:64:4) as the prior, whose posterior under
every linear-Gaussian observation is an exact Gaussian mixture. For each operator, 200 problems
(truths drawn from the oracle): coverage of the sampled 50/90/95% intervals, the same for the exact
posterior and the Gaussian-prior baseline, and the RMSE of the sampled posterior mean against the
exact one.

Part ``digits``: a digits checkpoint (default models/digits-dsm at its card's evaluation level) on
100 test images for half-image inpainting, random-50% inpainting and denoising at 0.2: PSNR of the
posterior mean vs the Gaussian-prior baseline and 90% coverage.

Part ``budget``: the sampler budgets compared on 100 digits (inpaint:half) by cost (CPU seconds)
per effective sample; the defaults of ``sample_posterior`` / ``ebm-ppl solve`` come from it.

Every entry records wall and CPU seconds, problems per minute and effective samples per second
(bulk ESS of the NUTS chains, mean over pixels, times problems, over wall seconds).

    .venv/bin/python benchmarks/inverse.py --part oracle --particles 64 --mcmc-steps 5 --chains 8 \\
        --warmup 50 --samples 50 --inner-steps 20 --max-doublings 6
    .venv/bin/python benchmarks/inverse.py --part digits          # the defaults
    .venv/bin/python benchmarks/inverse.py --part budget
    .venv/bin/python benchmarks/inverse.py --part digits --table  # print the stored table only

Results: benchmarks/results/inverse_<part>.json (one entry per operator or budget, written as it
goes) and a Markdown table on stdout; PNGs under out/bench_inverse/.
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
#: budgets compared by ``--part budget`` (name -> overrides of the defaults)
BUDGETS = {
    "32p-8x(20+20)": dict(num_particles=32, num_chains=8, num_warmup=20, num_draws=20),
    "16p-4x(30+30)": dict(num_particles=16, num_chains=4, num_warmup=30, num_draws=30),
    "32p-smc-10final": dict(method="smc", num_particles=32, smc_kwargs={"num_final_steps": 10}),
    "64p-smc-10final": dict(method="smc", num_particles=64, smc_kwargs={"num_final_steps": 10}),
    "64p-16x(20+10)": dict(num_particles=64, num_chains=16, num_warmup=20, num_draws=10),
}
KEYS = [
    "level",
    "psnr",
    "baseline_psnr",
    "exact_psnr",
    "coverage50",
    "coverage90",
    "coverage95",
    "exact_coverage90",
    "baseline_coverage90",
    "mean_error",
    "mean_error_rel",
    "nuts_acceptance",
    "nuts_mean_integration_steps",
    "nuts_divergences",
    "mc_error_rel",
    "mc_error_chains_rel",
    "replicate_mean_error_rel",
    "smc_iterations",
    "smc_acceptance",
    "seconds",
    "cpu_seconds",
    "problems_per_minute",
    "ess_per_problem",
    "effective_samples_per_second",
]


def parse(argv):
    from ebm_ppl.inverse.posterior import DEFAULTS as D

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--part", choices=["oracle", "digits", "budget"], required=True)
    p.add_argument("--table", action="store_true", help="print the stored results as a Markdown table and exit")
    p.add_argument("--target", default="gmm:64:4")
    p.add_argument("--ckpt", default="models/digits-dsm")
    p.add_argument("--operators", default=None, help="comma-separated subset (budget: the budget names)")
    p.add_argument("--problems", type=int, default=None, help="200 (oracle) / 100 (digits, budget) by default")
    p.add_argument("--method", default="smc+nuts", choices=["smc", "smc+nuts", "progressive"])
    p.add_argument(
        "--level",
        "--prior-level",
        dest="level",
        type=int,
        default=None,
        help="prior level (default: the card's evaluation level; 0 for the oracle)",
    )
    p.add_argument("--particles", type=int, default=D["num_particles"])
    p.add_argument("--mcmc-steps", type=int, default=D["num_mcmc_steps"], help="SMC: HMC moves per tempering step")
    p.add_argument("--final-steps", type=int, default=0, help="SMC: HMC moves after lam = 1 (default 0; NUTS follows)")
    p.add_argument(
        "--replicate",
        action="store_true",
        help="oracle: run each posterior twice (independent prior particles) to estimate the Monte-Carlo error of the mean",
    )
    p.add_argument("--chains", type=int, default=D["num_chains"])
    p.add_argument("--warmup", type=int, default=D["num_warmup"])
    p.add_argument("--samples", type=int, default=D["num_draws"])
    p.add_argument("--inner-steps", type=int, default=D["num_inner_steps"])
    p.add_argument("--max-doublings", type=int, default=D["max_num_doublings"])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default="out/bench_inverse")
    p.add_argument("--results", default=None)
    return p.parse_args(argv)


def main(argv=None):
    args = parse(argv)
    results_path = args.results or os.path.join("benchmarks", "results", f"inverse_{args.part}.json")
    results = json.load(open(results_path)) if os.path.exists(results_path) else {}
    if args.table:
        print(table(results, args.part))
        return 0

    import jax
    import numpy as np

    from ebm_ppl.inverse import experiment, fit_gaussian
    from ebm_ppl.inverse.operators import from_name
    from ebm_ppl.inverse.posterior import resolve_prior

    key = jax.random.PRNGKey(args.seed)
    if args.part == "oracle":
        from ebm_ppl.energy import target

        energy = oracle = target(args.target)
        level = args.level or 0
        n = args.problems or 200
        truths = np.asarray(oracle.sample_data(jax.random.fold_in(key, 1), n))
        train = np.asarray(oracle.sample_data(jax.random.fold_in(key, 2), 2000))
        ops = ORACLE_OPERATORS
        source = args.target
    else:
        if not os.path.isdir(args.ckpt):
            print(f"checkpoint {args.ckpt} not found: train it first (see models/README or docs/inverse.md)")
            return 1
        from ebm_ppl import data

        (energy, level), oracle = resolve_prior(args.ckpt, args.level), None
        n = args.problems or 100
        truths = data.load("digits", "test")[:n]
        train = data.load("digits", "train")
        ops = DIGITS_OPERATORS if args.part == "digits" else ["inpaint:half"]
        source = f"digits test ({args.ckpt})"
    baseline = fit_gaussian(train)
    settings = dict(
        method=args.method,
        level=level,
        num_particles=args.particles,
        num_chains=args.chains,
        num_warmup=args.warmup,
        num_draws=args.samples,
        num_inner_steps=args.inner_steps,
        max_num_doublings=args.max_doublings,
        smc_kwargs={"num_mcmc_steps": args.mcmc_steps, "num_final_steps": args.final_steps},
    )
    runs = [(name, name, settings) for name in ops]
    if args.part == "budget":
        runs = [(b, "inpaint:half", {**settings, **over}) for b, over in BUDGETS.items()]
    if args.operators:
        wanted = args.operators.split(",")
        runs = [r for r in runs if r[0] in wanted] if args.part == "budget" else [(o, o, settings) for o in wanted]
    os.makedirs(os.path.dirname(results_path), exist_ok=True)
    for i, (entry, name, kwargs) in enumerate(runs):
        op, noise = from_name(name, energy.data_shape, seed=args.seed)
        t0 = time.time()
        rep = None
        if args.replicate and oracle is not None:
            rep = dict(kwargs)
        m, _ = experiment.run(
            jax.random.fold_in(key, 100 + (0 if args.part == "budget" else i)),
            energy,
            op,
            noise,
            truths,
            baseline=baseline,
            oracle=oracle,
            sampler_kwargs=kwargs,
            replicate_sampler_kwargs=rep,
            out_dir=os.path.join(args.out, args.part, entry.replace(":", "_")),
            title=f"{name} on {source}",
            progress=sys.stderr.isatty(),
        )
        m.pop("calibration", None)
        results[entry] = {
            "source": source,
            "operator": name,
            "problems": n,
            "level": level,
            "settings": _jsonable(kwargs),
            **m,
        }
        _atomic_json(results_path, results)
        print(
            entry,
            {k: (round(v, 4) if isinstance(v, float) else v) for k, v in m.items() if k in KEYS},
            f"{time.time() - t0:.0f}s",
            flush=True,
        )
    print(table(results, args.part))
    return 0


def _jsonable(kwargs):
    return {k: v for k, v in kwargs.items() if k not in ("mesh",)}


def _atomic_json(path, obj):
    tmp = path + ".tmp"
    with open(tmp, "w") as fh:
        json.dump(obj, fh, indent=1)
    os.replace(tmp, path)


def _throughput(r):
    eps = r.get("effective_samples_per_second")
    return (
        f"{r['seconds']:.0f} / {r['cpu_seconds']:.0f}" if "cpu_seconds" in r else f"{r['seconds']:.0f} / -",
        f"{r['problems_per_minute']:.1f}" if "problems_per_minute" in r else "-",
        f"{eps:.1f}" if eps is not None else "-",
    )


def table(results, part):
    if part == "oracle":
        head = (
            "| operator | noise | cov50 | cov90 | cov95 | exact cov90 | Gaussian cov90 | mean RMSE vs exact (/ post. std) "
            "| MC error (/ post. std) | PSNR EBM / exact / Gaussian |"
        )
        lines = [head, "|" + "---|" * 10]
        for name, r in results.items():
            mc = (
                f"{r['mc_error']:.4f} ({r['mc_error_rel']:.3f})"
                if "mc_error" in r
                else f"{r['mc_error_chains']:.4f} ({r['mc_error_chains_rel']:.3f}) chains"
                if "mc_error_chains" in r
                else "-"
            )
            lines.append(
                f"| {name} | {r['noise_std']:g} | {r['coverage50']:.3f} | {r['coverage90']:.3f} | {r['coverage95']:.3f} | "
                f"{r['exact_coverage90']:.3f} | {r['baseline_coverage90']:.3f} | {r['mean_error']:.4f} ({r['mean_error_rel']:.3f}) | "
                f"{mc} | {r['psnr']:.2f} / {r['exact_psnr']:.2f} / {r['baseline_psnr']:.2f} |"
            )
    elif part == "digits":
        head = (
            "| operator | noise | level | PSNR EBM | PSNR Gaussian | gain (dB) | SSIM EBM / Gaussian | cov50 / cov90 / cov95 EBM "
            "| cov90 Gaussian | wall / CPU s | problems/min | eff. samples/s |"
        )
        lines = [head, "|" + "---|" * 12]
        for name, r in results.items():
            lv = r.get("level", r.get("prior_level", 0))
            lines.append(
                f"| {name} | {r['noise_std']:g} | {lv} | {r['psnr']:.2f} | {r['baseline_psnr']:.2f} | "
                f"{r['psnr'] - r['baseline_psnr']:+.2f} | {r['ssim']:.3f} / {r['baseline_ssim']:.3f} | "
                f"{r['coverage50']:.3f} / {r['coverage90']:.3f} / {r['coverage95']:.3f} | {r['baseline_coverage90']:.3f} | "
                + " | ".join(_throughput(r))
                + " |"
            )
    else:
        head = (
            "| budget | PSNR gain (dB) | cov50 / cov90 / cov95 | wall / CPU s | problems/min | ESS per problem "
            "| eff. samples/s | CPU s per 1000 eff. samples |"
        )
        lines = [head, "|" + "---|" * 8]
        for name, r in results.items():
            ess = r.get("ess_per_problem")
            per_k = f"{1000 * r['cpu_seconds'] / (ess * r['num_problems']):.1f}" if ess else "-"
            lines.append(
                f"| {name} | {r['psnr'] - r['baseline_psnr']:+.2f} | "
                f"{r['coverage50']:.3f} / {r['coverage90']:.3f} / {r['coverage95']:.3f} | "
                + " | ".join(_throughput(r)[:2])
                + f" | {ess if ess else '-'} | {_throughput(r)[2]} | {per_k} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())
