"""Test bits/dim of every shipped digits model by AIS, ELBO and the probability-flow ODE.

    .venv/bin/python benchmarks/likelihood.py [--models models/... ...] [--n 360] [--samples 256]
        [--probes 4] [--rtol 1e-5] [--oracles]

AIS: ebm_ppl.likelihood.bits_per_dim(EBMPrior(ckpt)) with the stored log Z (EBM's own normalised
level-0 density). ELBO and ODE: ebm_ppl.likelihood.bits_per_dim_without_log_z (density of the
diffusion that uses the model's score; no log Z). Same split, dequantisation (17 levels, bins 2/17)
and data-space map. Each row: bits/dim, standard error (over examples; Monte Carlo part separately),
wall time, score evaluations. With no digits checkpoint under models/ (or with --oracles) it runs on
the oracles gmm:16:3 and gmm:64:4 (T1k schedule, 200 points of their data law, continuous data), whose
exact bits/dim are known. Writes benchmarks/results/likelihood_{digits,oracles}.{json,png}.
"""

from __future__ import annotations

import argparse
import glob
import json
import math
import os
import time

import jax
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))


def _ais_row(prior, x, key, levels):
    from ebm_ppl.likelihood import bits_per_dim

    start = time.perf_counter()
    r = bits_per_dim(prior, x, key, levels=levels)
    return {
        "bpd": r.bpd,
        "stderr": r.stderr,
        "stderr_mc": r.stderr_log_z,
        "wall_time": time.perf_counter() - start,
        "num_grad_evals": getattr(prior, "log_z_grad_evals", None),
    }


def _bound_rows(energy, x, key, levels, args, reference=None):
    from ebm_ppl.likelihood import bits_per_dim_without_log_z
    from ebm_ppl.likelihood.elbo import _default_method

    rows = {}
    # the ELBO for the schedule (discrete for drl, continuous for ncsn), plus the continuous
    # one where that is not it (the discrete bound is meaningless over T6's top step)
    elbos = [("elbo", _default_method(energy))]
    if elbos[0][1] != "continuous":
        elbos.append(("elbo_continuous", "continuous"))
    keys = jax.random.split(key, len(elbos) + 1)
    jobs = [(name, "elbo", k, {"elbo_method": m, "num_samples": args.samples}) for (name, m), k in zip(elbos, keys)]
    jobs.append(
        (
            "ode",
            "ode",
            keys[-1],
            {"num_probes": args.probes, "rtol": args.rtol, "atol": args.rtol, "max_steps": args.ode_max_steps},
        )
    )
    for name, method, k, budget in jobs:
        if reference is not None:  # elbo() drops it for the discrete bound, which has no interpolation
            budget["reference"] = reference
        try:
            r = bits_per_dim_without_log_z(k, energy, x, method=method, levels=levels, **budget)
        except RuntimeError as err:  # an ODE that does not reach u_T within max_steps (a stiff score)
            rows[name] = {"error": str(err)}
            print(f"  {name:15s} failed: {err}", flush=True)
            continue
        rows[name] = {k_: r[k_] for k_ in ("bpd", "stderr", "stderr_mc", "wall_time", "num_grad_evals", "method")}
        print(
            f"  {name:15s} {r['bpd']:.4f} ± {r['stderr']:.4f} (MC {r['stderr_mc']:.4f})  "
            f"{r['wall_time']:.1f} s  {r['num_grad_evals']} score evals",
            flush=True,
        )
    return rows


def run_models(paths, args):
    from ebm_ppl import checkpoint, data
    from ebm_ppl.distribution import EBMPrior, MissingLogZError
    from ebm_ppl.likelihood import training_reference

    x = data.load("digits", "test")[: args.n]
    levels = data.info("digits")["levels"]
    reference = training_reference("digits")  # of the interpolated score
    results = {}
    for path in paths:
        print(path, flush=True)
        energy = checkpoint.load(path)
        key = jax.random.key(args.seed)
        row = {}
        try:
            level = checkpoint.evaluation_level(path)
            row["ais"] = _ais_row(EBMPrior(path, noise_level=level), x, key, levels)
            row["ais"]["level"] = level
            print(f"  ais   {row['ais']['bpd']:.4f} ± {row['ais']['stderr']:.4f}", flush=True)
        except MissingLogZError as err:
            row["ais"] = {"error": str(err)}
            print(f"  ais   skipped: {err}")
        row.update(_bound_rows(energy, x, key, levels, args, reference))
        results[os.path.basename(path.rstrip("/"))] = row
    return results, {"data": "digits", "split": "test", "n": int(x.shape[0]), "levels": levels}


def run_oracles(args):
    from ebm_ppl.distribution import EBMPrior
    from ebm_ppl.energy import target
    from ebm_ppl.schedules import drl

    results = {}
    for name in ("gmm:16:3", "gmm:64:4"):
        print(name, flush=True)
        oracle = target(name, schedule=drl(1000))
        x = np.asarray(oracle.sample_data(jax.random.PRNGKey(0), 200))
        row = {"exact (AIS stand-in: exact log Z)": _ais_row(EBMPrior(oracle), x, jax.random.key(args.seed), None)}
        print(f"  exact {row['exact (AIS stand-in: exact log Z)']['bpd']:.4f}", flush=True)
        row.update(_bound_rows(oracle, x, jax.random.key(args.seed), None, args))
        results[name] = row
    return results, {"data": "oracle data law", "n": 200, "levels": None, "schedule": "drl:1000"}


def plot(results, meta, path):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    models = list(results)
    methods = sorted({m for r in results.values() for m in r})
    fig, ax = plt.subplots(figsize=(1.8 + 1.6 * len(models), 3.4))
    width = 0.8 / max(len(methods), 1)
    for j, m in enumerate(methods):
        xs, ys, es = [], [], []
        for i, name in enumerate(models):
            r = results[name].get(m, {})
            if "bpd" in r:
                xs.append(i + (j - (len(methods) - 1) / 2) * width)
                ys.append(r["bpd"])
                es.append(r["stderr"])
        ax.bar(xs, ys, width, yerr=es, capsize=3, label=m.split(" ")[0])
    ax.set_xticks(range(len(models)), models, rotation=15)
    ax.set_ylabel("bits / dim (lower is better)")
    ax.set_title(f"{meta['data']}: AIS vs ELBO vs ODE")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*", default=None)
    p.add_argument("--n", type=int, default=360, help="test examples (digits: 360 in the split)")
    p.add_argument("--samples", type=int, default=256)
    p.add_argument("--probes", type=int, default=4)
    p.add_argument("--rtol", type=float, default=1e-5)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--ode-max-steps", type=int, default=4096, help="solver steps before the ODE row is given up")
    p.add_argument("--oracles", action="store_true")
    args = p.parse_args(argv)
    paths = (
        args.models if args.models is not None else sorted(glob.glob(os.path.join(HERE, "..", "models", "*digits*")))
    )
    paths = [q for q in paths if os.path.isdir(q)]
    if paths and not args.oracles:
        results, meta = run_models(paths, args)
    else:
        print("no digits checkpoints under models/: running on the oracles", flush=True)
        results, meta = run_oracles(args)
    meta.update(
        {
            "samples": args.samples,
            "probes": args.probes,
            "rtol": args.rtol,
            "seed": args.seed,
            "device": str(jax.devices()[0]),
        }
    )
    os.makedirs(os.path.join(HERE, "results"), exist_ok=True)
    out = os.path.join(HERE, "results", "likelihood_" + ("oracles" if meta["levels"] is None else "digits"))
    with open(out + ".json", "w") as f:
        json.dump(
            {"meta": meta, "results": results},
            f,
            indent=1,
            default=lambda o: None if isinstance(o, float) and not math.isfinite(o) else str(o),
        )
    plot(results, meta, out + ".png")
    print("wrote", out + ".json", out + ".png")


if __name__ == "__main__":
    main()
