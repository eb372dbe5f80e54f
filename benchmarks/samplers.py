"""Sampler benchmark: ESS per gradient evaluation and per second for NUTS, HMC, progressive MALA
and progressive Langevin / normal on the oracles and a digits checkpoint, in one table; plus an
accuracy check on a 64-D mixture oracle (exact mean, covariance and mode weights).

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
    .venv/bin/python benchmarks/samplers.py --targets gauss:16 gmm:16:4 --ckpt models/digits-dsm \\
        --chains 4 --draws 200 --accuracy gmm:64:4
    # -> benchmarks/results/samplers.json (rows + accuracy) and a Markdown table on stdout

ESS table. NUTS and HMC (8 leapfrog steps) run 4 chains on level 0 in data space from
progressive-normal draws of that level, with BlackJAX window adaptation (``--draws`` warm-up
steps, not counted) then ``--draws`` draws; ESS = min(bulk ESS over coordinates, bulk ESS of the
energy) (ArviZ, rank-normalised). Progressive samples are independent descents: their ESS is
computed the same way with the n = chains * draws samples laid out as chains (so it is ~n when
they are exchangeable), gradients n * T * max(K, 1) (+ the pilot tuning for MALA: 64 chains *
T * (50 + 10)). Seconds are wall time on a shared 2-core CPU including compilation.

Accuracy block (``--accuracy``, a MixtureOracle target). Progressive MALA (K = 3, normal start),
long run (S = 10: one normal draw + 9 HMC steps of 2 leapfrog steps per level) and NUTS. NUTS
cannot jump between the separated modes, so it runs ``--nuts-chains`` chains from exact draws
(the mode counts are then those of the starts; NUTS must keep each chain a draw of its mode).
Mean error |mean - exact| and relative covariance error |cov - exact|_F / |exact|_F are compared
with the same errors of sets of n exact draws (20 sets): tolerance = their mean + 4 sd. Mode
weights = mean responsibility (``oracle.responsibilities``) over all draws; tolerance 4 binomial
standard errors sqrt(w (1 - w) / n) with n the number of independent samples (chains for NUTS).
Energy R-hat: descents laid out as 4 chains; NUTS over all chains and within the chains of each mode.
"""

import argparse
import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np
from tqdm import tqdm

from ebm_ppl import diagnostics, target
from ebm_ppl.sampling import hmc, long_run, progressive

OUT = os.path.join("benchmarks", "results", "samplers.json")


def _ess(chains, energy):
    s = diagnostics.summarize(diagnostics.to_datatree(np.asarray(chains), energy=np.asarray(energy)))
    return min(s["pixels"]["min_ess_bulk"], s["energy"]["ess_bulk"]), s["energy"]["rhat"]


def bench(energy, name, chains, draws, bar):
    rows = []
    for alg, kw in (("nuts", {}), ("hmc", {"num_integration_steps": 8})):
        bar.set_postfix_str(f"{name} {alg}")
        t0 = time.time()
        ch = hmc.sample_level(
            jax.random.key(0), energy, num_chains=chains, algorithm=alg, num_warmup=draws, num_draws=draws, **kw
        )
        jax.block_until_ready(ch.position)
        sec = time.time() - t0
        ess, rhat = _ess(ch.position, ch.log_density)
        grads = float(np.sum(ch.num_gradient_evaluations))
        rows.append(
            dict(
                target=name,
                sampler=alg,
                ess=ess,
                rhat_energy=rhat,
                grads=grads,
                seconds=sec,
                acceptance=float(np.mean(ch.acceptance_rate)),
                divergences=int(np.sum(ch.is_divergent)),
            )
        )
        bar.update()
    n = chains * draws
    T = energy.num_levels
    for inner, k in (("mala", 10), ("langevin", 30), ("normal", 0)):
        bar.set_postfix_str(f"{name} progressive-{inner}")
        t0 = time.time()
        x = progressive.sample(jax.random.key(1), energy, n, inner=inner, num_inner_steps=k)
        jax.block_until_ready(x)
        sec = time.time() - t0
        logd = energy.log_density(energy.to_model(x), 0)
        ess, rhat = _ess(np.asarray(x).reshape((chains, draws) + x.shape[1:]), np.asarray(logd).reshape(chains, draws))
        grads = n * T * max(k, 1) + (64 * T * 60 if inner == "mala" else 0)
        rows.append(
            dict(
                target=name, sampler=f"progressive-{inner}", ess=ess, rhat_energy=rhat, grads=float(grads), seconds=sec
            )
        )
        bar.update()
    for r in rows:
        r["ess_per_grad"] = r["ess"] / r["grads"]
        r["ess_per_second"] = r["ess"] / r["seconds"]
    return rows


def _moments(x, e):
    m = np.asarray(e.to_data(e.mean(0))).reshape(-1)
    c = np.asarray(e.covariance(0) / e.data_scale**2)
    x = np.asarray(x).reshape(len(x), -1)
    return float(np.linalg.norm(x.mean(0) - m)), float(np.linalg.norm(np.cov(x.T) - c) / np.linalg.norm(c))


def _exact_tolerance(e, n, reps=20, seed=100):
    ex = np.asarray(e.sample_data(jax.random.key(seed), reps * n)).reshape((reps, n, -1))
    errs = np.array([_moments(s, e) for s in ex])
    return (errs.mean(0) + 4 * errs.std(0)).tolist(), errs.mean(0).tolist()


def _weights(e, x, n_indep):
    resp = np.asarray(e.responsibilities(e.to_model(jnp.asarray(x))))
    w = resp.reshape(-1, resp.shape[-1]).mean(0)
    wt = np.asarray(e.weights)
    z = np.abs(w - wt) / np.sqrt(wt * (1 - wt) / n_indep)
    return resp, w.tolist(), float(z.max())


def accuracy(name, schedule, n, nuts_chains, nuts_draws, bar):
    import arviz as az

    e = target(name, schedule=schedule)
    out = {"target": name, "schedule": schedule, "exact_weights": np.asarray(e.weights).tolist(), "rows": []}
    tol_n, typ_n = _exact_tolerance(e, n)
    tol_c, typ_c = _exact_tolerance(e, nuts_chains)

    def row(sampler, x, sec, grads, n_indep, tol, typ, extra):
        mean_err, cov_err = _moments(np.asarray(x).reshape(-1, e.dim), e)
        _, w, z = _weights(e, x, n_indep)
        r = dict(
            sampler=sampler,
            n_independent=n_indep,
            mean_error=mean_err,
            cov_error=cov_err,
            tolerance=tol,
            typical_exact_error=typ,
            weights=w,
            max_weight_z=z,
            seconds=sec,
            grads=grads,
            ok=bool(mean_err < tol[0] and cov_err < tol[1] and z < 4),
            **extra,
        )
        out["rows"].append(r)
        bar.update()

    bar.set_postfix_str(f"{name} progressive-mala")
    t0 = time.time()
    x, _, info = progressive.sample_trace(jax.random.key(3), e, n, inner="mala", num_inner_steps=3, start="normal")
    x = np.asarray(jax.block_until_ready(x))
    f = np.asarray(e.data_log_prob(x)).reshape(4, -1)
    rh = diagnostics.summarize(diagnostics.to_datatree(x.reshape(4, -1, e.dim), energy=f))["energy"]["rhat"]
    row(
        "progressive-mala (K=3)",
        x,
        time.time() - t0,
        float(n * e.num_levels * 4),
        n,
        tol_n,
        typ_n,
        {"rhat_energy": rh, "acceptance_min": float(np.min(info.acceptance_rate))},
    )

    bar.set_postfix_str(f"{name} long-run")
    t0 = time.time()
    res = long_run.run(jax.random.key(4), e, n, steps_per_level=10)
    x = np.asarray(jax.block_until_ready(res.samples))
    f = np.asarray(e.data_log_prob(x)).reshape(4, -1)
    rh = diagnostics.summarize(diagnostics.to_datatree(x.reshape(4, -1, e.dim), energy=f))["energy"]["rhat"]
    acc = np.asarray(res.acceptance_rate)
    row(
        "long-run (S=10, HMC 2 leapfrog)",
        x,
        time.time() - t0,
        float(n * e.num_levels * (1 + 9 * 2)),
        n,
        tol_n,
        typ_n,
        {"rhat_energy": rh, "acceptance_range": [float(acc.min()), float(acc.max())]},
    )

    bar.set_postfix_str(f"{name} nuts")
    t0 = time.time()
    x0 = e.sample_data(jax.random.key(7), nuts_chains)
    ch = hmc.run_chains(
        jax.random.key(8),
        hmc.level_log_density_fn(e, 0, "data"),
        x0,
        algorithm="nuts",
        num_warmup=nuts_draws,
        num_draws=nuts_draws,
    )
    pos = np.asarray(jax.block_until_ready(ch.position))
    resp = np.asarray(e.responsibilities(e.to_model(jnp.asarray(pos))))
    mode = resp.argmax(-1)
    energy = np.asarray(ch.log_density)
    within = {int(k): float(az.rhat(energy[mode[:, 0] == k])) for k in np.unique(mode[:, 0])}
    row(
        f"nuts ({nuts_chains} chains from exact draws, {nuts_draws} draws)",
        pos,
        time.time() - t0,
        float(np.sum(ch.num_gradient_evaluations)),
        nuts_chains,
        tol_c,
        typ_c,
        {
            "rhat_energy": float(az.rhat(energy)),
            "rhat_energy_within_mode": within,
            "chains_switching_mode": int(np.sum(np.any(mode != mode[:, :1], axis=1))),
            "acceptance": float(np.mean(ch.acceptance_rate)),
            "divergences": int(np.sum(ch.is_divergent)),
        },
    )
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--targets", nargs="*", default=["gauss:16", "gmm:16:4"])
    p.add_argument("--schedule", default="drl:50:linear")
    p.add_argument("--ckpt", nargs="*", default=["models/digits-dsm"])
    p.add_argument("--chains", type=int, default=4)
    p.add_argument("--draws", type=int, default=200)
    p.add_argument("--accuracy", default="gmm:64:4", help="MixtureOracle target for the accuracy block ('' to skip)")
    p.add_argument("--accuracy-n", type=int, default=512)
    p.add_argument("--nuts-chains", type=int, default=128)
    p.add_argument("--nuts-draws", type=int, default=500)
    p.add_argument("--out", default=OUT)
    a = p.parse_args()
    energies = [(name, target(name, schedule=a.schedule)) for name in a.targets]
    if a.ckpt:
        from ebm_ppl.checkpoint import load

        energies += [(os.path.basename(os.path.normpath(c)), load(c)) for c in a.ckpt]
    rows, acc = [], None
    with tqdm(total=5 * len(energies) + (3 if a.accuracy else 0), desc="samplers") as bar:
        for name, e in energies:
            rows += bench(e, name, a.chains, a.draws, bar)
        if a.accuracy:
            acc = accuracy(a.accuracy, a.schedule, a.accuracy_n, a.nuts_chains, a.nuts_draws, bar)
    print("| target | sampler | ESS | gradients | ESS/grad | ESS/s | s | R-hat(energy) |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['target']} | {r['sampler']} | {r['ess']:.0f} | {r['grads']:.3g} | {r['ess_per_grad']:.2e} | "
            f"{r['ess_per_second']:.2f} | {r['seconds']:.0f} | {r['rhat_energy']:.3f} |"
        )
    if acc:
        print(
            f"\naccuracy on {acc['target']} ({acc['schedule']}), exact weights {np.round(acc['exact_weights'], 3).tolist()}"
        )
        print("| sampler | mean err (tol) | cov err (tol) | weights | max weight z | R-hat(energy) | ok |")
        print("|---|---|---|---|---|---|---|")
        for r in acc["rows"]:
            print(
                f"| {r['sampler']} | {r['mean_error']:.3f} ({r['tolerance'][0]:.3f}) | {r['cov_error']:.3f} "
                f"({r['tolerance'][1]:.3f}) | {np.round(r['weights'], 3).tolist()} | {r['max_weight_z']:.2f} | "
                f"{r['rhat_energy']:.4f} | {r['ok']} |"
            )
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    with open(a.out, "w") as fh:
        json.dump({"config": vars(a), "rows": rows, "accuracy": acc}, fh, indent=1)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
