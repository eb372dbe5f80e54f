"""Drifting one-step sampler under the paper's protocol (Cao, Yan & Zhao 2026, sec. 4).

    .venv/bin/python benchmarks/drifting.py --targets gmm4 double-well banana --steps 3000

Trains the paper's configuration (residual MLP, latent 32, width 256, 3 layers, batch 1024,
lr 1e-3, sigma = eta = 0.22, L = 256 mean-shift perturbations) for ``--steps`` updates on each
target, evaluates 5,000 generated against 5,000 exact reference samples (seed 42) and writes
benchmarks/results/drifting_<target>.json and .png, plus drifting_table.json/.md beside the
paper's numbers. ``--baselines`` adds NUTS (BlackJAX) and, for noise-conditional oracles, the
progressive sampler at matched energy-gradient evaluations.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import numpy as np

from ebm_ppl.energy import target
from ebm_ppl.metrics import evaluate_sampler, reference_samples
from ebm_ppl.plotting import plot_samples_over_energy
from ebm_ppl.sampling import drifting as dr

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")

PAPER = {
    "gmm4": {
        "mean_error": 0.0754,
        "cov_error": 0.0425,
        "mmd": 0.0020,
        "mean_energy": 1.0045,
        "reference_energy": 1.0263,
    },
    "double-well": {"mean_error": 0.0308, "cov_error": 0.0326, "mmd": 0.0014},
    "banana": {"mean_error": 0.0226, "mmd": 0.0019},
}


def run_target(
    name: str,
    steps: int,
    estimator: str,
    seed: int = 0,
    n_eval: int = 5000,
    sigma_start=None,
    suffix: str = "",
    **overrides,
) -> dict:
    energy = target(name)
    config = dr.DriftingConfig(num_steps=steps, estimator=estimator, sigma_start=sigma_start, **overrides)
    t0 = time.perf_counter()
    sampler, history, _ = dr.train(jax.random.PRNGKey(seed), energy, config, chunk=100)
    train_s = time.perf_counter() - t0
    k_gen, k_ref = jax.random.split(jax.random.PRNGKey(42))
    gen = sampler.sample(k_gen, n_eval)
    ref = reference_samples(k_ref, energy, n_eval)
    t1 = time.perf_counter()
    gen = jax.block_until_ready(sampler.sample(k_gen, n_eval))
    sample_s = time.perf_counter() - t1
    res = evaluate_sampler(energy, gen, ref)
    res.update(
        target=name,
        steps=steps,
        estimator=estimator,
        config=config.to_dict(),
        train_seconds=train_s,
        seconds_per_update=train_s / max(steps, 1),
        sample_seconds_5000=sample_s,
        energy_evaluations_per_update=config.batch_size * config.num_perturbations,
        loss_history=history["loss"][:: max(1, len(history["loss"]) // 50)],
        paper=PAPER.get(name),
    )
    sampler.save(os.path.join(RESULTS, f"drifting_{name}{suffix}_sampler"))
    plot_samples_over_energy(
        energy,
        gen,
        ref,
        os.path.join(RESULTS, f"drifting_{name}{suffix}.png"),
        sample_label="one-step drifting sampler",
        title=f"{name}: {steps} drifting updates ({estimator}{f', sigma annealed from {sigma_start:g}' if sigma_start else ''})",
    )
    with open(os.path.join(RESULTS, f"drifting_{name}{suffix}.json"), "w") as f:
        json.dump(res, f, indent=1)
    return res


def noise_floor(name: str, n: int = 5000, reps: int = 200) -> dict:
    """Mean and covariance errors of ``n`` exact draws against ``n`` other exact draws, ``reps`` times:
    what a perfect sampler scores under the protocol (its median, mean and 90% quantile)."""
    energy = target(name)
    mean_err, cov_err = [], []
    for i in range(reps):
        ka, kb = jax.random.split(jax.random.PRNGKey(1000 + i))
        a = np.asarray(reference_samples(ka, energy, n), np.float64).reshape(n, -1)
        b = np.asarray(reference_samples(kb, energy, n), np.float64).reshape(n, -1)
        mean_err.append(np.linalg.norm(a.mean(0) - b.mean(0)))
        cov_err.append(np.linalg.norm(np.cov(a.T) - np.cov(b.T)))
    summary = lambda v: {"median": float(np.median(v)), "mean": float(np.mean(v)), "q90": float(np.quantile(v, 0.9))}  # noqa: E731
    out = {"target": name, "n": n, "reps": reps, "mean_error": summary(mean_err), "cov_error": summary(cov_err)}
    paper = PAPER.get(name) or {}
    for k in ("mean_error", "cov_error"):
        if k in paper:
            out[k]["fraction_of_exact_below_paper"] = float(
                np.mean(np.array(mean_err if k == "mean_error" else cov_err) < paper[k])
            )
    return out


def table(rows: list[dict]) -> str:
    lines = [
        "| target | updates | mean l2 (ours / paper) | cov Fro (ours / paper) | MMD^2 (ours / paper) | mean E (ours / ref / paper) | modes | train s |",
        "|---|---|---|---|---|---|---|---|",
    ]
    fmt = lambda v: "-" if v is None else f"{v:.4f}"  # noqa: E731
    for r in rows:
        p = r.get("paper") or {}
        name = r["target"] + (
            f" (sigma annealed from {r['config']['sigma_start']:g})" if r["config"].get("sigma_start") else ""
        )
        name += ", cosine lr" if r["config"].get("lr_schedule") == "cosine" else ""
        name += f", batch {r['config']['batch_size']}" if r["config"].get("batch_size", 1024) != 1024 else ""
        modes = f"{r['modes_covered']}/{r['modes_in_reference']}" if "modes_covered" in r else "-"
        lines.append(
            f"| {name} | {r['steps']} | {fmt(r['mean_error'])} / {fmt(p.get('mean_error'))} | "
            f"{fmt(r['cov_error'])} / {fmt(p.get('cov_error'))} | {fmt(r['mmd'])} / {fmt(p.get('mmd'))} | "
            f"{fmt(r['mean_energy'])} / {fmt(r['reference_energy'])} / {fmt(p.get('mean_energy'))} | {modes} | {r['train_seconds']:.0f} |"
        )
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", nargs="+", default=["gmm4", "double-well", "banana"])
    ap.add_argument("--steps", type=int, default=10_000)
    ap.add_argument("--estimator", default="mean_shift", choices=dr.ESTIMATORS)
    ap.add_argument("--tag", default="table")
    ap.add_argument(
        "--sigma-start",
        type=float,
        default=None,
        help="anneal sigma from this value (our addition; default off = the paper)",
    )
    ap.add_argument("--lr-schedule", default="constant", choices=("constant", "cosine"))
    ap.add_argument("--batch-size", type=int, default=1024)
    ap.add_argument("--suffix", default=None, help="file suffix of the per-target outputs (default '' or '_anneal')")
    ap.add_argument(
        "--noise-floor",
        action="store_true",
        help="only the errors of exact draws against exact draws (drifting_noise_floor_<target>.json)",
    )
    args = ap.parse_args(argv)
    os.makedirs(RESULTS, exist_ok=True)
    if args.noise_floor:
        for name in args.targets:
            res = noise_floor(name)
            print(res, flush=True)
            with open(os.path.join(RESULTS, f"drifting_noise_floor_{name}.json"), "w") as f:
                json.dump(res, f, indent=1)
        return 0
    rows = []
    for name in args.targets:
        print(f"== {name}", flush=True)
        suffix = ("" if args.sigma_start is None else "_anneal") if args.suffix is None else args.suffix
        r = run_target(
            name,
            args.steps,
            args.estimator,
            sigma_start=args.sigma_start,
            suffix=suffix,
            lr_schedule=args.lr_schedule,
            batch_size=args.batch_size,
        )
        rows.append(r)
        print(
            {k: r[k] for k in ("mean_error", "cov_error", "mmd", "mean_energy", "reference_energy", "train_seconds")},
            flush=True,
        )
    md = table(rows)
    print(md)
    with open(os.path.join(RESULTS, f"drifting_{args.tag}.md"), "w") as f:
        f.write(md + "\n")
    with open(os.path.join(RESULTS, f"drifting_{args.tag}.json"), "w") as f:
        json.dump([{k: v for k, v in r.items() if k != "loss_history"} for r in rows], f, indent=1)


if __name__ == "__main__":
    sys.exit(main())
