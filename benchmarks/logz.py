"""log Z error against gradient evaluations for AIS, SMC and the paper's ladder on exact oracles.

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
    .venv/bin/python benchmarks/logz.py [--dims 2 64 784] [--seeds 2] [--table-only]

Targets: ``gauss:D`` and ``gmm:D:4`` (4 modes, weights 1:2:3:4, component covariance eigenvalues
uniform in 0.08..0.15) as noise-conditional energies on the drl:6 schedule (the T6 schedule of the
shipped models); exact log Z_0 = D/2 log 2 pi. All three methods get the same budget G of
evaluations of the learned levels (pilot runs included):

* ``ais``: ``logz.ais`` with its default transitions (2 MALA steps per bridge), 512 particles (128 at
  D = 784), the number of bridges set so that the run spends G gradients;
* ``smc``: BlackJAX adaptive tempered SMC (``logz.smc``), 512 particles (128 at D = 784); a probe run
  (1 MALA move per tempering step, counted) gives the number of tempering steps n, then
  ``num_mcmc_steps = G / (particles * n)``;
* ``ladder``: the paper's App. A.6 estimator with EXACT oracle samples of every level (its best case:
  progressive samples of the oracles would add bias), M = G / (2 T) samples per level, so it spends G
  energy evaluations (it needs no gradients; an evaluation is ~1/2 to 1/3 the cost of a gradient).

Runs append to benchmarks/results/logz.json (rows keyed by target, method, budget, seed) and
rewrite logz.md (the table) and logz.png (|error| against evaluations) from all rows there, so the
dimensions can run as separate processes.
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
SCHEDULE = "drl:6"
METHODS = ("ais", "smc", "ladder")

#: gradient budgets per dimension (D = 784: a reduced grid; one run of 2e6 takes ~25 min on one shared core)
BUDGETS = {2: [1e5, 4e5, 2e6], 64: [2e5, 6e5, 2e6], 784: [2e5, 2e6]}


#: set by --particles (AIS and SMC); None: the per-dimension default below
PARTICLES = None


def _default_particles(dim):
    return 128 if dim >= 784 else 512


def _particles(dim):
    return PARTICLES if PARTICLES is not None else _default_particles(dim)


#: set by --frame: the AIS coordinates ("fit": the default of logz.ais; "identity": y_t = c_t x)
FRAME = "fit"


def run_ais(e, key, budget):
    n = _particles(e.dim)
    T = e.num_levels
    pilot = logz.pilot_grad_count(e, frame=FRAME)
    bridges = max(4 * T, int((budget - pilot) / (4 * n)))  # a bridge: 2 MALA steps x 2 levels per particle
    return logz.ais(
        key, e, num_particles=n, num_bridges=bridges, batch_size=64 if e.dim >= 784 else None, frame=FRAME
    ), {"num_particles": n, "num_bridges": bridges, "frame": FRAME}


def run_smc(e, key, budget):
    n = _particles(e.dim)
    k_probe, k_run = jax.random.split(key)
    probe = logz.smc(k_probe, e, num_particles=128, num_mcmc_steps=1)
    n_temp = probe.meta["num_tempering_steps"]
    spent = probe.num_grad_evals
    steps = max(1, int(round((budget - spent) / (n * n_temp))))
    est = logz.smc(k_run, e, num_particles=n, num_mcmc_steps=steps, step_size=probe.meta["step_size"])
    grads = est.num_grad_evals + spent
    return _replace_cost(est, grads, est.num_energy_evals + probe.num_energy_evals), {
        "num_particles": n,
        "num_mcmc_steps": steps,
        "probe_tempering_steps": n_temp,
        "num_tempering_steps": est.meta["num_tempering_steps"],
    }


def run_ladder(e, key, budget):
    T = e.num_levels
    m = int(budget / (2 * T))
    samples = {t: _sample(e, jax.random.fold_in(key, t), m, t) for t in range(1, T)}
    return logz.ladder(key, e, samples=samples, num_samples=m, batch_size=256 if e.dim >= 784 else None), {
        "num_samples": m
    }


def _sample(e, key, m, t):
    """Exact oracle samples of level t, as a host array (n, D)."""
    return np.asarray(e.sample(key, m, t))


def _replace_cost(est, grads, evals):
    import dataclasses

    return dataclasses.replace(est, num_grad_evals=int(grads), num_energy_evals=int(evals))


RUNNERS = {"ais": run_ais, "smc": run_smc, "ladder": run_ladder}


def run_one(name, method, budget, seed):
    e = target(name, schedule=SCHEDULE)
    t0 = time.time()
    est, settings = RUNNERS[method](e, jax.random.key(seed), budget)
    exact = e.log_z(0)
    cost = max(est.num_grad_evals, est.num_energy_evals) if method == "ladder" else est.num_grad_evals
    return {
        "target": name,
        "schedule": SCHEDULE,
        "dim": e.dim,
        "method": method,
        "budget": float(budget),
        "seed": seed,
        "log_z": est.log_z,
        "exact": exact,
        "error": est.log_z - exact,
        "stderr": est.stderr,
        "ess": est.ess,
        "cost": int(cost),
        "grad_evals": est.num_grad_evals,
        "energy_evals": est.num_energy_evals,
        "settings": settings,
        "seconds": time.time() - t0,
    }


def _load(path):
    if os.path.exists(path):
        with open(path) as fh:
            rows = json.load(fh)
        return [r for r in rows if "cost" in r]
    return []


def _row_particles(r):
    n = r.get("settings", {}).get("num_particles")
    return n if r["method"] != "ladder" and n is not None else _default_particles(r["dim"])


def _row_frame(r):
    """AIS rows made before the fitted frame existed ran in the identity frame."""
    return r.get("settings", {}).get("frame", "identity") if r["method"] == "ais" else "-"


def _key(r):
    return (r["target"], r["method"], float(r["budget"]), int(r["seed"]), _row_particles(r), _row_frame(r))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--dims", type=int, nargs="+", default=[2, 64, 784])
    p.add_argument("--seeds", type=int, default=2)
    p.add_argument("--methods", nargs="+", default=list(METHODS), choices=METHODS)
    p.add_argument("--targets", nargs="+", default=["gauss", "gmm"], choices=["gauss", "gmm"])
    p.add_argument(
        "--budgets",
        type=float,
        nargs="+",
        default=None,
        help="gradient budgets (default: a per-dimension grid, BUDGETS)",
    )
    p.add_argument(
        "--particles",
        type=int,
        default=None,
        help="AIS/SMC particles (default 512, 128 at D = 784); rows with other counts are kept apart",
    )
    p.add_argument(
        "--frame",
        default="fit",
        choices=["fit", "identity"],
        help="AIS coordinates (default: fit, as logz.ais); rows of each frame are kept apart",
    )
    p.add_argument("--skip-done", action="store_true", help="skip rows already in logz.json")
    p.add_argument("--table-only", action="store_true", help="only rewrite logz.md / logz.png from logz.json")
    p.add_argument("--out", default=os.path.join(HERE, "results"))
    p.add_argument("--merge", nargs="*", default=[], help="also read rows from these JSON files (parallel runs)")
    args = p.parse_args(argv)
    global PARTICLES, FRAME
    PARTICLES, FRAME = args.particles, args.frame
    os.makedirs(args.out, exist_ok=True)
    jpath = os.path.join(args.out, "logz.json")
    if not args.table_only:
        print(
            f"{'target':>10} {'method':>6} {'budget':>8} {'cost':>9} {'log Z err':>10} {'stderr':>8} {'ESS':>7} {'s':>6}"
        )
        for d in args.dims:
            names = {"gauss": f"gauss:{d}", "gmm": f"gmm:{d}:4"}
            for name in (names[t] for t in args.targets):
                for budget in args.budgets or BUDGETS[d]:
                    for method in args.methods:
                        for seed in range(args.seeds):
                            dim = int(name.split(":")[1])
                            key = (
                                name,
                                method,
                                float(budget),
                                seed,
                                _particles(dim) if method != "ladder" else _default_particles(dim),
                                FRAME if method == "ais" else "-",
                            )
                            if args.skip_done and key in {_key(x) for x in _load(jpath)}:
                                continue
                            r = run_one(name, method, budget, seed)
                            print(
                                f"{name:>10} {method:>6} {budget:>8.0e} {r['cost']:>9.2e} {r['error']:>+10.4f} "
                                f"{r['stderr']:>8.4f} {r['ess']:>7.1f} {r['seconds']:>6.1f}",
                                flush=True,
                            )
                            rows = {_key(x): x for x in _load(jpath)}  # re-read: other processes append too
                            rows[_key(r)] = r
                            with open(jpath, "w") as fh:
                                json.dump(sorted(rows.values(), key=_key), fh, indent=1, default=float)
    rows = {_key(x): x for x in _load(jpath)}
    for extra in args.merge:
        rows.update({_key(x): x for x in _load(extra)})
    rows = sorted(rows.values(), key=_key)
    with open(jpath, "w") as fh:
        json.dump(rows, fh, indent=1, default=float)
    with open(os.path.join(args.out, "logz.md"), "w") as fh:
        fh.write(table(rows))
    plot(rows, os.path.join(args.out, "logz.png"))
    print(table(rows))
    print(f"wrote {jpath}, logz.md and logz.png")


def table(rows) -> str:
    """Markdown: one line per (target, method, budget); errors over seeds."""
    lines = [
        f"log Z_0 error on exact oracles ({SCHEDULE} schedule); cost = gradient evaluations of the learned "
        "levels (ladder: energy evaluations), pilots included; |err| over seeds.",
        "",
        "| target | method | budget | cost | seeds | mean err | max abs err | mean stderr | mean ESS | s/run |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    groups = {}
    for r in rows:
        groups.setdefault(
            (r["dim"], r["target"], float(r["budget"]), METHODS.index(r["method"]), _row_particles(r), _row_frame(r)),
            [],
        ).append(r)
    for (dim, name, budget, mi, n, frame), sel in sorted(groups.items()):
        notes = ([] if n == _default_particles(dim) else [f"{n} particles"]) + (
            ["identity frame"] if frame == "identity" else []
        )
        label = METHODS[mi] + (f" ({', '.join(notes)})" if notes else "")
        err = np.array([r["error"] for r in sel])
        se = [r["stderr"] for r in sel if r["stderr"] is not None and math.isfinite(r["stderr"])]
        lines.append(
            f"| {name} | {label} | {budget:.0e} | {np.mean([r['cost'] for r in sel]):.2e} | {len(sel)} | "
            f"{err.mean():+.4f} | {np.abs(err).max():.4f} | {f'{np.mean(se):.4f}' if se else '-'} | "
            f"{np.mean([r['ess'] for r in sel]):.0f} | {np.mean([r['seconds'] for r in sel]):.0f} |"
        )
    return "\n".join(lines) + "\n"


def plot(rows, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    import matplotlib.ticker

    names = sorted({r["target"] for r in rows}, key=lambda s: (int(s.split(":")[1]), s))
    if not names:
        return
    fig, axes = plt.subplots(1, len(names), figsize=(3.0 * len(names), 3.2), squeeze=False)
    for ax, name in zip(axes[0], names):
        series = [
            ("ais", "fit", "ais"),
            ("ais", "identity", "ais, identity frame"),
            ("smc", "-", "smc"),
            ("ladder", "-", "ladder"),
        ]
        for i, (method, frame, label) in enumerate(series):
            sel = [r for r in rows if r["target"] == name and r["method"] == method and _row_frame(r) == frame]
            if not sel:
                continue
            ax.loglog(
                [r["cost"] for r in sel],
                [abs(r["error"]) + 1e-4 for r in sel],
                "os^v"[i],
                color=f"C{i}",
                label=label,
                alpha=0.75,
                ms=4,
            )
        ax.axhline(0.05, color="k", ls=":", lw=1)
        ax.axvline(2e6, color="grey", ls=":", lw=0.8)
        ax.set_title(name, fontsize=9)
        ax.set_xlabel("evaluations (grad; ladder: energy)", fontsize=7)
        ax.tick_params(labelsize=7)
        ax.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    axes[0][0].set_ylabel("|log Z error| (nats)")
    axes[0][0].legend(fontsize=7)
    fig.suptitle(f"log Z on exact oracles, {SCHEDULE}; dotted: 0.05 nats, 2e6 evaluations", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


if __name__ == "__main__":
    main()
