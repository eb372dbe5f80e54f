"""log Z error against gradient evaluations for AIS, SMC and the paper's ladder on exact oracles.

    .venv/bin/python benchmarks/logz.py [--dims 2 64 784] [--seeds 2] [--quick]

Targets: ``gauss:D`` and ``gmm:D:4`` (4 modes, component variances 0.08..0.15) on the drl:6
schedule; exact log Z_0 = D/2 log 2 pi. Methods: ``ais`` (this package's default transitions, total
bridges varied), ``smc`` (BlackJAX adaptive tempered SMC, particles varied), ``ladder`` (App. A.6
with EXACT oracle samples of every level: its best case, since progressive samples of the oracles
are biased). Writes benchmarks/results/logz.json and logz.png and prints a table.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import time

import jax
import numpy as np

from ebm_ppl import logz
from ebm_ppl.energy import target

HERE = os.path.dirname(os.path.abspath(__file__))


def budgets(dim, quick):
    if dim >= 784:
        return {"ais": [(128, 150)], "smc": [256], "ladder": [2000]}
    if quick:
        return {"ais": [(256, 100), (512, 900)], "smc": [512], "ladder": [4000]}
    return {"ais": [(512, 100), (512, 300), (512, 900)], "smc": [256, 1024, 4096], "ladder": [1000, 10000, 100000]}


def run_one(name, method, budget, seed):
    e = target(name)
    key = jax.random.key(seed)
    t0 = time.time()
    if method == "ais":
        n, b = budget
        est = logz.ais(e, key, num_particles=n, num_bridges=b, batch_size=128 if e.dim >= 784 else None)
    elif method == "smc":
        est = logz.smc(e, key, num_particles=budget)
    else:
        samples = {t: e.sample(jax.random.fold_in(key, t), budget, t) for t in range(1, e.num_levels + 1)}
        est = logz.ladder(e, key, samples=samples)
    exact = e.log_z(0)
    return {"target": name, "method": method, "budget": budget, "seed": seed, "log_z": est.log_z,
            "exact": exact, "error": est.log_z - exact, "stderr": est.stderr, "ess": est.ess,
            "grad_evals": est.num_grad_evals, "energy_evals": est.num_energy_evals,
            "seconds": time.time() - t0}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dims", type=int, nargs="+", default=[2, 64])
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--quick", action="store_true")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    args = p.parse_args(argv)
    os.makedirs(args.out, exist_ok=True)
    rows = []
    print(f"{'target':>10} {'method':>6} {'budget':>10} {'grads':>9} {'log Z err':>10} {'stderr':>8} {'ESS':>7} {'s':>6}")
    for d in args.dims:
        for name in (f"gauss:{d}", f"gmm:{d}:4"):
            for method, bs in budgets(d, args.quick).items():
                for b in bs:
                    for seed in range(args.seeds):
                        r = run_one(name, method, b, seed)
                        rows.append(r)
                        print(f"{name:>10} {method:>6} {str(b):>10} {r['grad_evals']:>9.2e} {r['error']:>+10.4f} "
                              f"{r['stderr']:>8.4f} {r['ess']:>7.1f} {r['seconds']:>6.1f}", flush=True)
                        with open(os.path.join(args.out, "logz.json"), "w") as fh:
                            json.dump(rows, fh, indent=1, default=float)
    plot(rows, os.path.join(args.out, "logz.png"))
    print(f"wrote {args.out}/logz.json and logz.png")


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = sorted({r["target"] for r in rows}, key=lambda s: (int(s.split(":")[1]), s))
    fig, axes = plt.subplots(1, len(names), figsize=(3.2 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        for i, method in enumerate(("ais", "smc", "ladder")):
            sel = [r for r in rows if r["target"] == name and r["method"] == method]
            if not sel:
                continue
            cost = [max(r["grad_evals"], r["energy_evals"]) for r in sel]
            ax.loglog(cost, [abs(r["error"]) + 1e-4 for r in sel], "o", color=f"C{i}", label=method, alpha=0.8)
        ax.axhline(0.05, color="k", ls=":", lw=1)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("gradient (ladder: energy) evaluations", fontsize=8)
    axes[0][0].set_ylabel("|log Z error| (nats)")
    axes[0][0].legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
