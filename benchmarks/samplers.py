"""ESS per gradient evaluation and per second for NUTS, HMC, MALA-progressive and progressive
(Langevin / normal) on the oracles (and a checkpoint if given). One table, stdout + JSON.

    .venv/bin/python benchmarks/samplers.py [--targets gauss:16 gmm:16:4] [--ckpt models/digits-t6]
                                           [--chains 4] [--draws 200] [--out benchmarks/samplers.json]

MCMC (NUTS, HMC with 8 leapfrog steps) runs on level 0 in data space: ESS is the minimum bulk ESS
over coordinates and energy (ArviZ), gradients counted from BlackJAX's num_integration_steps
(warm-up excluded). Progressive samples are independent descents, so their ESS is the number of
samples n (checked by the R-hat/ESS of the draws laid out as chains) and their gradient count is
n * T * K (+ the pilot tuning for MALA).
"""

import argparse
import json
import time

import jax
import numpy as np

from ebm_ppl import diagnostics, target
from ebm_ppl.sampling import hmc, progressive


def _ess(chains, energy):
    s = diagnostics.summarize(diagnostics.to_datatree(np.asarray(chains), energy=np.asarray(energy)))
    return min(s["pixels"]["min_ess_bulk"], s["energy"]["ess_bulk"])


def bench(energy, name, chains, draws):
    rows = []
    for alg, kw in (("nuts", {}), ("hmc", {"num_integration_steps": 8})):
        t0 = time.time()
        ch = hmc.sample_level(energy, jax.random.key(0), num_chains=chains, algorithm=alg,
                              num_warmup=draws, num_samples=draws, **kw)
        jax.block_until_ready(ch.position)
        sec = time.time() - t0
        ess = _ess(ch.position, ch.log_density)
        grads = float(np.sum(ch.num_gradient_evaluations))
        rows.append(dict(target=name, sampler=alg, ess=ess, grads=grads, seconds=sec))
    n = chains * draws
    T = energy.num_levels
    for inner, k in (("mala", 10), ("langevin", 30), ("normal", 0)):
        t0 = time.time()
        x = progressive.sample(energy, jax.random.key(1), n, inner=inner, num_inner_steps=k)
        jax.block_until_ready(x)
        sec = time.time() - t0
        logd = energy.log_density(energy.to_model(x), 0)
        ess = _ess(np.asarray(x).reshape((chains, draws) + x.shape[1:]), np.asarray(logd).reshape(chains, draws))
        grads = n * T * max(k, 1) + (64 * T * 60 if inner == "mala" else 0)
        rows.append(dict(target=name, sampler=f"progressive-{inner}", ess=ess, grads=float(grads), seconds=sec))
    for r in rows:
        r["ess_per_grad"] = r["ess"] / r["grads"]
        r["ess_per_second"] = r["ess"] / r["seconds"]
    return rows


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--targets", nargs="*", default=["gauss:16", "gmm:16:4"])
    p.add_argument("--schedule", default="drl:50:linear")
    p.add_argument("--ckpt", default=None)
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--out", default="benchmarks/samplers.json")
    a = p.parse_args()
    rows = []
    for name in a.targets:
        rows += bench(target(name, schedule=a.schedule), name, a.chains, a.draws)
    if a.ckpt:
        from ebm_ppl.checkpoint import load

        rows += bench(load(a.ckpt), a.ckpt, a.chains, a.draws)
    print(f"{'target':<14}{'sampler':<22}{'ESS':>8}{'grads':>12}{'ESS/grad':>12}{'ESS/s':>10}{'s':>8}")
    for r in rows:
        print(f"{r['target']:<14}{r['sampler']:<22}{r['ess']:>8.0f}{r['grads']:>12.0f}{r['ess_per_grad']:>12.2e}"
              f"{r['ess_per_second']:>10.1f}{r['seconds']:>8.1f}")
    with open(a.out, "w") as fh:
        json.dump(rows, fh, indent=1)


if __name__ == "__main__":
    main()
