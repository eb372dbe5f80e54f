"""Drifting one-step sampler against NUTS and tempering samplers at matched evaluations.

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \
        .venv/bin/python benchmarks/drifting_hard.py --targets gmm40 manywell32

For each target (the harder benchmarks the drifting paper does not report):

* **drifting**: train the one-step sampler (mean-shift estimator) and count its energy
  evaluations, batch x L per update (forward passes only, no gradients);
* **NUTS** (BlackJAX, window adaptation): C chains from the same broad initial distribution as
  the generator's initial output, N(0, s^2 I), run until the gradient count matches; gmm40: 5,000
  chains, one draw each (the last); manywell32: 500 chains, the last 10 draws each (NUTS_KEEP);
* **tempering from N(0, I)**: for gmm40 (an exact noise-conditional oracle) the progressive sampler
  with MALA inner steps on the schedule ``ncsn:10:60:0.01`` (level 9 is x + 60 e, so N(0, I) at the
  top is right for a +-40 box); for manywell32 (a plain energy, no levels) annealed importance
  sampling with geometric bridges N(0, I) -> target (``ebm_ppl.logz.ais``, MALA), particles
  resampled by their final weights (multinomial) before evaluation.

The budgets are matched in *evaluations per run*: one energy evaluation or one gradient evaluation
counts 1 (a gradient costs 2-3 forward passes, so the count favours the gradient-based baselines).
Every sampler gives 5,000 samples, evaluated against 5,000 exact reference samples (seed 42):
RBF MMD^2 (median-distance bandwidth of the reference), and mode statistics:

* gmm40: modes with >= 5 samples (the reference has ~125 per mode), mode total variation;
* manywell32 (2^16 modes, 16 independent double-well pairs a_i): the exact right-well mass
  P(a_i > 0) from 1-D quadrature; per pair, whether the sampler's right-well fraction is within
  3 binomial standard errors of it ("pairs matched", out of 16); the mean absolute error of the
  16 fractions; distinct sign patterns hit (the reference hits ~4,800 of 65,536 with 5,000 draws);
  and the mean over pairs of the 2-D MMD^2 of (a_i, b_i) against the exact per-pair samples.

Writes benchmarks/results/drifting_hard.{json,md} and drifting_hard_<target>.png.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl import logz
from ebm_ppl.energy import target
from ebm_ppl.energy.plain import PlainEnergy
from ebm_ppl.metrics import median_bandwidth, mmd, reference_samples
from ebm_ppl.sampling import drifting as dr
from ebm_ppl.sampling import hmc, progressive

RESULTS = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results")
N_EVAL = 5000

# drifting configurations (ours; see docs/drifting.md)
CONFIGS = {
    # broad initial spread over the +-40 box, fixed bandwidth near the mode width (1.31), eta = sigma^2
    # (a step of one mean-shift displacement). Annealing sigma from 8 (eta scaled with sigma^2)
    # pulled the whole batch into two blobs in 600 updates (MMD^2 0.033; drifting_hard_gmm40_anneal.png)
    "gmm40": dict(init_scale=20.0, sigma=1.0, eta=1.0, num_perturbations=8, batch_size=1024),
    # the paper's fixed bandwidth (annealing from 1.5 sent every sample to the heavier right
    # well of each pair in a 50-update smoke run: one sign pattern out of 65,536)
    # eta = sigma^2 as for gmm40: with the paper's eta = sigma = 0.22 every sample ended in the right
    # well of every pair (one sign pattern; the step is 4.5 mean-shift displacements and overshoots)
    "manywell32": dict(init_scale=1.5, sigma=0.22, eta=0.0484, num_perturbations=8, batch_size=1024),
}
BROAD_INIT = {"gmm40": 20.0, "manywell32": 1.5}
# NUTS draws kept per chain (the last ones): one per chain on gmm40 (cheap 2-D trees); on manywell32
# the trees are deep, so 500 chains with 10 draws each get ~10x more steps per chain than 5,000 chains
NUTS_KEEP = {"gmm40": 1, "manywell32": 10}
# NUTS tree depth cap; on manywell32 no pilot (a 64-chain pilot with depth-10 trees alone ran past
# 5 minutes here): the run is sized with the 12.3 gradients per step measured in an earlier
# 153-step run at this cap
NUTS_MAX_DOUBLINGS = {"gmm40": 10, "manywell32": 6}
NUTS_GRADS_PER_STEP = {"manywell32": 12.3}


def _resample(key, x, log_w, n):
    w = np.exp(log_w - log_w.max())
    w = w / w.sum()
    idx = jax.random.choice(key, len(w), (n,), p=jnp.asarray(w))
    return x[np.asarray(idx)], float(1.0 / np.sum(w**2))


def exact_right_mass() -> float:
    """P(a > 0) of one many-well coordinate, float64 quadrature."""
    grid = np.linspace(-4.0, 4.0, 1 << 16)
    lf = -(grid**4) + 6 * grid**2 + 0.5 * grid
    f = np.exp(lf - lf.max())
    return float(f[grid > 0].sum() / f.sum())


def manywell_stats(x, ref, p_right: float) -> dict:
    x = np.asarray(x).reshape(len(x), 16, 2)
    ref = np.asarray(ref).reshape(len(ref), 16, 2)
    frac = (x[..., 0] > 0).mean(0)
    se = math.sqrt(p_right * (1 - p_right) / len(x))
    patterns = np.unique((x[..., 0] > 0).astype(np.int64) @ (2 ** np.arange(16)))
    pair_mmd = [float(mmd(x[:, i], ref[:, i], median_bandwidth(ref[:2000, i]))) for i in range(16)]
    return {
        "exact_right_mass": p_right,
        "right_mass_per_pair": [float(v) for v in frac],
        "pairs_matched": int(np.sum(np.abs(frac - p_right) <= 3 * se)),
        "right_mass_abs_error": float(np.mean(np.abs(frac - p_right))),
        "sign_patterns_hit": int(len(patterns)),
        "pair_mmd_mean": float(np.mean(pair_mmd)),
    }


def gmm40_stats(energy, x, ref) -> dict:
    lab = np.asarray(jnp.argmax(energy.responsibilities(energy.to_model(jnp.asarray(x, jnp.float32)), 0), -1))
    lab_r = np.asarray(jnp.argmax(energy.responsibilities(energy.to_model(jnp.asarray(ref, jnp.float32)), 0), -1))
    counts = np.bincount(lab, minlength=40)
    counts_r = np.bincount(lab_r, minlength=40)
    return {
        "modes_with_5": int(np.sum(counts >= 5)),
        "modes_hit": int(np.sum(counts >= 1)),
        "mode_tv": float(0.5 * np.abs(counts / counts.sum() - counts_r / counts_r.sum()).sum()),
        "mode_counts": counts.tolist(),
    }


def evaluate(name, energy, x, ref, p_right=None) -> dict:
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    finite = np.all(np.isfinite(x), -1)
    x = x[finite]
    ref = np.asarray(ref, np.float64).reshape(len(ref), -1)
    out = {"num_nonfinite": int((~finite).sum()), "mmd_bandwidth": median_bandwidth(ref[:2000])}
    out["mmd"] = float(mmd(x, ref, out["mmd_bandwidth"]))
    out["mean_error"] = float(np.linalg.norm(x.mean(0) - ref.mean(0)))
    if name == "gmm40":
        out.update(gmm40_stats(energy, x, ref))
    else:
        out.update(manywell_stats(x, ref, p_right))
    return out


def run_drifting(name, energy, steps, seed=0):
    cfg = dr.DriftingConfig(num_steps=steps, **CONFIGS[name])
    sampler, hist, _ = dr.train(jax.random.PRNGKey(seed), energy, cfg, chunk=50)
    k_gen, _ = jax.random.split(jax.random.PRNGKey(42))
    x = sampler.sample(k_gen, N_EVAL)
    t0 = time.perf_counter()
    jax.block_until_ready(sampler.sample(jax.random.PRNGKey(7), N_EVAL))
    evals = steps * cfg.batch_size * cfg.num_perturbations
    return x, {
        "energy_evals": int(evals),
        "grad_evals": 0,
        "evals": int(evals),
        "train_seconds": hist["seconds"],
        "sample_seconds_5000": time.perf_counter() - t0,
        "config": cfg.to_dict(),
    }


def run_nuts(name, energy, budget, seed=1, num_warmup=200):
    """N_EVAL chains; pilot a few chains to learn the gradients per step, then size the run."""
    # plain energies: model space is data space (before PLAIN_SCHEDULE was marked top-level-marginal,
    # level_log_density_fn(space="data") multiplied x by model_scales[0] = 0 for them)
    plain = isinstance(energy, PlainEnergy)
    logp = hmc.level_log_density_fn(energy, 0, "model" if plain else "data")
    s = BROAD_INIT[name]
    keep = NUTS_KEEP[name]
    chains = N_EVAL // keep
    k_init, k_pilot, k_run = jax.random.split(jax.random.PRNGKey(seed), 3)
    x0 = s * jax.random.normal(k_init, (chains,) + tuple(energy.data_shape))
    depth = NUTS_MAX_DOUBLINGS[name]
    if name in NUTS_GRADS_PER_STEP:
        per_step = NUTS_GRADS_PER_STEP[name]
    else:
        pilot = hmc.run_chains(k_pilot, logp, x0[:64], num_warmup=num_warmup, num_draws=20)
        per_step = float(np.mean(np.asarray(pilot.num_gradient_evaluations)))
    steps_total = max(2 * 10, int(budget / (chains * per_step)))
    warm = min(num_warmup, steps_total // 2)
    n_samp = max(keep, steps_total - warm)
    t0 = time.perf_counter()
    ch = hmc.run_chains(k_run, logp, x0, num_warmup=warm, num_draws=n_samp, max_num_doublings=depth)
    secs = time.perf_counter() - t0
    ngrad = np.asarray(ch.num_gradient_evaluations)
    grads = float(ngrad.sum()) + warm * chains * float(ngrad.mean())  # warm-up counted at the sampling rate
    x = np.asarray(ch.position[:, -keep:]).reshape((chains * keep,) + tuple(energy.data_shape))
    return x, {
        "energy_evals": 0,
        "grad_evals": int(grads),
        "evals": int(grads),
        "seconds": secs,
        "chains": chains,
        "draws_kept_per_chain": keep,
        "sized_for_grads_per_step": per_step,
        "max_num_doublings": depth,
        "warmup": warm,
        "samples_per_chain": n_samp,
        "grads_per_step": float(ngrad.mean()),
        "note": "gmm40: 64-chain sizing pilot not counted",
        "acceptance": float(np.mean(np.asarray(ch.acceptance_rate))),
        "init_std": s,
    }


def run_progressive(energy_name, budget, seed=2):
    energy = target(energy_name, schedule="ncsn:10:60:0.01")
    T = energy.num_levels
    k = max(1, int(budget / (N_EVAL * T)))
    t0 = time.perf_counter()
    x, _, info = progressive.sample_trace(
        jax.random.PRNGKey(seed), energy, N_EVAL, inner="mala", num_inner_steps=k, start="x_next"
    )
    x = np.asarray(x)
    grads = N_EVAL * T * k
    return x, {
        "energy_evals": 0,
        "grad_evals": int(grads),
        "evals": int(grads),
        "seconds": time.perf_counter() - t0,
        "schedule": energy.schedule.name,
        "inner": "mala",
        "inner_steps_per_level": k,
        "acceptance_per_level": [float(a) for a in np.asarray(info.acceptance_rate)],
        "note": "step-size tuning runs not counted",
    }


def run_ais(energy, budget, seed=3, num_steps=2):
    n = N_EVAL
    bridges = max(8, int(budget / (n * num_steps)))
    t0 = time.perf_counter()
    est = logz.ais(
        jax.random.PRNGKey(seed),
        energy,
        level=0,
        num_particles=n,
        num_bridges=bridges,
        num_steps=num_steps,
        batch_size=1000,
    )
    y, log_w = est.samples, est.log_weights
    x, ess = _resample(jax.random.PRNGKey(seed + 100), np.asarray(y), np.asarray(log_w, np.float64), N_EVAL)
    return x, {
        "energy_evals": int(est.num_energy_evals),
        "grad_evals": int(est.num_grad_evals),
        "evals": int(est.num_grad_evals),
        "seconds": time.perf_counter() - t0,
        "bridges": bridges,
        "mala_steps_per_bridge": num_steps,
        "weight_ess": ess,
        "log_z": est.log_z,
        "exact_log_z": energy.log_z(0),
    }


def plot(name, samples: dict, ref, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = list(samples.items()) + [("exact reference", ref)]
    fig, axes = plt.subplots(1, len(panels), figsize=(4 * len(panels), 4), squeeze=False)
    for ax, (lab, x) in zip(axes[0], panels):
        x = np.asarray(x).reshape(len(x), -1)
        ax.scatter(x[:, 0], x[:, 1], s=1, alpha=0.3, color="crimson")
        ax.set_title(lab, fontsize=9)
        lim = 45 if name == "gmm40" else 3.5
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_xlabel("x1" if name == "gmm40" else "a_1")
        ax.set_ylabel("x2" if name == "gmm40" else "b_1")
    fig.suptitle(f"{name}: 5,000 samples per method at matched evaluations")
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def run_target(name, steps):
    energy = target(name)
    _, k_ref = jax.random.split(jax.random.PRNGKey(42))
    ref = np.asarray(reference_samples(k_ref, energy, N_EVAL))
    p_right = exact_right_mass() if name == "manywell32" else None
    rows = []
    samples = {}
    print(f"== {name}: drifting", flush=True)
    x, meta = run_drifting(name, energy, steps)
    budget = meta["evals"]
    rows.append({"target": name, "method": "drifting (one step)", **meta, **evaluate(name, energy, x, ref, p_right)})
    samples["drifting"] = x
    print(rows[-1]["mmd"], flush=True)
    print(f"== {name}: NUTS at {budget:.3g} evaluations", flush=True)
    x, meta = run_nuts(name, energy, budget)
    rows.append({"target": name, "method": "NUTS", **meta, **evaluate(name, energy, x, ref, p_right)})
    samples["NUTS"] = x
    print(rows[-1]["mmd"], flush=True)
    if name == "gmm40":
        print(f"== {name}: progressive", flush=True)
        x, meta = run_progressive(name, budget)
        rows.append(
            {
                "target": name,
                "method": "progressive (MALA, ncsn:10:60:0.01)",
                **meta,
                **evaluate(name, energy, x, ref, p_right),
            }
        )
        samples["progressive"] = x
    else:
        print(f"== {name}: AIS", flush=True)
        x, meta = run_ais(energy, budget)
        rows.append(
            {
                "target": name,
                "method": "AIS N(0,I) -> target, resampled",
                **meta,
                **evaluate(name, energy, x, ref, p_right),
            }
        )
        samples["AIS (resampled)"] = x
    print(rows[-1]["mmd"], flush=True)
    plot(name, samples, ref, os.path.join(RESULTS, f"drifting_hard_{name}.png"))
    ref_stats = evaluate(name, energy, ref[: N_EVAL // 2], ref[N_EVAL // 2 :], p_right)
    rows.append({"target": name, "method": "exact (2,500 vs other 2,500)", "evals": None, **ref_stats})
    return rows


def table(rows) -> str:
    lines = [
        "| target | method | evaluations | MMD^2 | mode statistics | wall s |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if r["target"] == "gmm40":
            modes = f"{r['modes_with_5']}/40 modes with >= 5 samples, TV {r['mode_tv']:.3f}"
        else:
            modes = (
                f"{r['pairs_matched']}/16 pairs within 3 SE of P(a>0) = {r['exact_right_mass']:.4f}; "
                f"mean abs err {r['right_mass_abs_error']:.3f}; {r['sign_patterns_hit']} sign patterns; "
                f"pair MMD^2 {r['pair_mmd_mean']:.4f}"
            )
        ev = "-" if r.get("evals") is None else f"{r['evals']:.3g}"
        secs = r.get("train_seconds", r.get("seconds"))
        lines.append(
            f"| {r['target']} | {r['method']} | {ev} | {r['mmd']:.4f} | {modes} | {'-' if secs is None else f'{secs:.0f}'} |"
        )
    return "\n".join(lines)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--targets", nargs="+", default=["gmm40", "manywell32"])
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--tag", default="hard")
    args = ap.parse_args(argv)
    os.makedirs(RESULTS, exist_ok=True)
    path = os.path.join(RESULTS, f"drifting_{args.tag}.json")
    rows = []
    if os.path.exists(path):
        rows = [r for r in json.load(open(path)) if r["target"] not in args.targets]
    for name in args.targets:
        rows += run_target(name, args.steps)
        with open(path, "w") as f:
            json.dump(rows, f, indent=1)
    md = table(rows)
    print(md)
    with open(os.path.join(RESULTS, f"drifting_{args.tag}.md"), "w") as f:
        f.write(md + "\n")


if __name__ == "__main__":
    sys.exit(main())
