"""How honest is the importance-sampling stderr? Log-normal weights, where the truth is known.

    .venv/bin/python benchmarks/logz_lognormal.py [--num-particles 256] [--reps 20000] [--khat-reps 2000]

log w ~ N(-s^2 / 2, s^2), so E[w] = 1 and log Z = 0 exactly. For each Var(log w) = s^2 the script
draws ``--reps`` sets of N weights and reports what :func:`ebm_ppl.logz` would: the estimate
log mean w, its delta-method stderr std(w / mean w) / sqrt(N), the ESS; the coverage of the
+-2 and +-3 stderr intervals, the bias (mean estimate), and, on ``--khat-reps`` of the sets, the
Pareto k-hat (ArviZ's PSIS) with the fraction of sets the reliability rule of
:mod:`ebm_ppl.logz.reliability` flags (k-hat > 0.7 or ESS < 20) and the coverage among the sets it
keeps. Writes benchmarks/results/logz_lognormal.json and .md (the table of docs/logz.md, section 5).
tests/logz/test_logz.py reproduces the N = 256 figures at Var = 4, 9, 16 with fewer draws.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys

import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from ebm_ppl.logz import ESS_FLOOR, KHAT_MAX, pareto_khat  # noqa: E402

VARIANCES = (1.0, 2.0, 4.0, 6.0, 9.0, 16.0)


def simulate(var: float, num_particles: int, reps: int, rng: np.random.Generator, chunk: int = 2000) -> dict:
    """Coverage, bias and ESS of the AIS-style estimate on log-normal weights (vectorised)."""
    lz, se, ess = [], [], []
    for first in range(0, reps, chunk):
        m = min(chunk, reps - first)
        lw = rng.normal(-var / 2, math.sqrt(var), (m, num_particles))
        top = lw.max(axis=1, keepdims=True)
        w = np.exp(lw - top)
        mean = w.mean(axis=1)
        lz.append(top[:, 0] + np.log(mean))
        se.append(np.std(w / mean[:, None], axis=1, ddof=1) / math.sqrt(num_particles))
        ess.append(w.sum(axis=1) ** 2 / np.sum(w**2, axis=1))
    lz, se, ess = (np.concatenate(a) for a in (lz, se, ess))
    return {"log_z": lz, "stderr": se, "ess": ess}


def summarise(var, sims, khat_reps, rng, num_particles) -> dict:
    lz, se, ess = sims["log_z"], sims["stderr"], sims["ess"]
    n = lz.size
    cov3 = np.abs(lz) <= 3 * se
    row = {
        "var_log_w": var,
        "num_particles": num_particles,
        "reps": n,
        "coverage_2se": float(np.mean(np.abs(lz) <= 2 * se)),
        "coverage_3se": float(cov3.mean()),
        "coverage_3se_mcse": float(math.sqrt(cov3.mean() * (1 - cov3.mean()) / n)),
        "bias": float(lz.mean()),
        "bias_mcse": float(lz.std(ddof=1) / math.sqrt(n)),
        "median_stderr": float(np.median(se)),
        "median_ess": float(np.median(ess)),
    }
    k = min(khat_reps, n)
    lw = rng.normal(-var / 2, math.sqrt(var), (k, num_particles))
    khat = np.array([pareto_khat(v) for v in lw])
    top = lw.max(axis=1, keepdims=True)
    w = np.exp(lw - top)
    mean = w.mean(axis=1)
    est = top[:, 0] + np.log(mean)
    sek = np.std(w / mean[:, None], axis=1, ddof=1) / math.sqrt(num_particles)
    essk = w.sum(axis=1) ** 2 / np.sum(w**2, axis=1)
    flag_k = khat > KHAT_MAX
    flag = flag_k | (essk < ESS_FLOOR)
    kept = ~flag
    row.update(
        {
            "khat_reps": k,
            "mean_khat": float(np.mean(khat)),
            "flagged_by_khat": float(flag_k.mean()),
            "flagged": float(flag.mean()),
            "coverage_3se_kept": float(np.mean(np.abs(est[kept]) <= 3 * sek[kept])) if kept.any() else None,
            "silent_miss": float(np.mean(kept & (np.abs(est) > 3 * sek))),
        }
    )
    return row


def table(rows) -> str:
    head = (
        "| Var(log w) | +-2 se cover | +-3 se cover | bias (nats) | median ESS | mean k-hat | flagged k>0.7 "
        "| flagged (rule) | +-3 se cover, kept | silent miss |\n|---|---|---|---|---|---|---|---|---|---|\n"
    )
    lines = []
    for r in rows:
        kept = "-" if r["coverage_3se_kept"] is None else f"{r['coverage_3se_kept']:.2f}"
        lines.append(
            f"| {r['var_log_w']:g} | {r['coverage_2se']:.3f} | {r['coverage_3se']:.3f} +- "
            f"{r['coverage_3se_mcse']:.3f} | {r['bias']:+.3f} +- {r['bias_mcse']:.3f} | {r['median_ess']:.1f} "
            f"| {r['mean_khat']:.2f} | {r['flagged_by_khat']:.2f} | {r['flagged']:.2f} | {kept} "
            f"| {r['silent_miss']:.3f} |"
        )
    return head + "\n".join(lines) + "\n"


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--num-particles", type=int, default=256)
    p.add_argument("--reps", type=int, default=20000)
    p.add_argument("--khat-reps", type=int, default=2000)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results"))
    args = p.parse_args(argv)
    rng = np.random.default_rng(args.seed)
    rows = []
    for var in VARIANCES:
        rows.append(
            summarise(var, simulate(var, args.num_particles, args.reps, rng), args.khat_reps, rng, args.num_particles)
        )
        print(json.dumps(rows[-1]), flush=True)
    md = (
        f"Log-normal weights, N = {args.num_particles}, {args.reps} sets per row ({args.khat_reps} for k-hat); "
        f"`benchmarks/logz_lognormal.py --num-particles {args.num_particles} --reps {args.reps} "
        f"--khat-reps {args.khat_reps} --seed {args.seed}`\n\n" + table(rows)
    )
    os.makedirs(args.out, exist_ok=True)
    stem = "logz_lognormal" if args.num_particles == 256 else f"logz_lognormal_n{args.num_particles}"
    for ext, text in (("json", json.dumps({"args": vars(args), "rows": rows}, indent=1) + "\n"), ("md", md)):
        path = os.path.join(args.out, f"{stem}.{ext}")
        with open(path + ".tmp", "w") as fh:
            fh.write(text)
        os.replace(path + ".tmp", path)
    print(md)


if __name__ == "__main__":
    main()
