"""The multi-device checks of tests/test_sharding.py, run in ONE subprocess with forced host devices.

XLA_FLAGS must be set before jax is imported, and the pytest process has imported jax already, so
test_sharding.py runs ``python tests/_sharding_checks.py OUTDIR`` with
``XLA_FLAGS=--xla_force_host_platform_device_count=4``. Each check prints one JSON line
``{"check": name, ...figures}``; any failed assertion exits non-zero with the traceback.

Usage: XLA_FLAGS=--xla_force_host_platform_device_count=4 python tests/_sharding_checks.py OUTDIR [CHECK ...]
"""

from __future__ import annotations

import contextlib
import io
import json
import math
import os
import sys
import time

import jax
import numpy as np


def emit(name, **figures):
    print(json.dumps({"check": name, **figures}), flush=True)


def cli_json(argv):
    """Run ``ebm-ppl ARGV --json`` in this process (one start-up for every check); its JSON dict."""
    from ebm_ppl.cli import main

    buf = io.StringIO()
    with contextlib.redirect_stdout(buf):
        rc = main(list(argv) + ["--json"])
    assert rc == 0, (argv, rc, buf.getvalue()[-2000:])
    return json.loads(buf.getvalue().strip().splitlines()[-1])


def one_per_device(x, n):
    """Every device of the mesh holds exactly one row of ``x``."""
    shards = x.addressable_shards
    assert len(shards) == n, f"{len(shards)} shards for {n} devices"
    assert len({s.device for s in shards}) == n
    assert all(s.data.shape[0] == 1 for s in shards), [s.data.shape for s in shards]
    assert sorted(s.index[0].start for s in shards) == list(range(n))
    return True


def check_devices():
    assert jax.device_count() == 4 and jax.process_count() == 1, (jax.device_count(), jax.process_count())
    emit("devices", device_count=jax.device_count(), process_count=jax.process_count())


def check_train(out):
    """--devices 4 and --devices 1 give the same energy (within float reduction order)."""
    from ebm_ppl import load
    from ebm_ppl.distribution import EBMPrior

    res = {}
    for n in (1, 4):
        d = os.path.join(out, f"train_d{n}")
        t0 = time.time()
        r = cli_json(
            [
                "train",
                "--data",
                "8gaussians",
                "--preset",
                "t6-2d",
                "--steps",
                "15",
                "--seed",
                "0",
                "--devices",
                str(n),
                "--out",
                d,
                "--no-samples",
                "--no-eval",
                "--quiet",
            ]
        )
        assert r["devices"] == n, r
        res[n] = (d, time.time() - t0)
    pts = np.asarray(jax.random.normal(jax.random.key(5), (64, 2))) * 1.5
    f1 = np.asarray(EBMPrior(res[1][0], log_z=0.0).unnormalized_log_prob(pts))
    f4 = np.asarray(EBMPrior(res[4][0], log_z=0.0).unnormalized_log_prob(pts))
    rel = float(np.max(np.abs(f4 - f1) / np.maximum(np.abs(f1), 1e-6)))
    assert np.all(np.isfinite(f1)) and np.ptp(f1) > 1.0, "energy did not train"
    assert rel < 1e-3, f"energies differ: max relative difference {rel}"
    energy = load(res[4][0])  # the --out folder is a checkpoint ebm_ppl.load accepts
    assert tuple(energy.data_shape) == (2,)
    with open(os.path.join(res[1][0], "config.json")) as fh1, open(os.path.join(res[4][0], "config.json")) as fh4:
        c1, c4 = json.load(fh1), json.load(fh4)
    assert sorted(c1) == sorted(c4), "checkpoint formats differ"
    emit("train", max_rel_diff=rel, seconds_1=res[1][1], seconds_4=res[4][1])


def check_ais(out):
    """AIS on gmm:16:4 over 4 devices: within 3 stderr of the exact log Z, reports devices: 4,
    and its stderr is honest (the same estimate and stderr as one device; the stderr and ESS
    recomputed from the final weights agree with the reported ones)."""
    from ebm_ppl import logz
    from ebm_ppl.energy import target

    e = target("gmm:16:4")
    exact = float(e.log_z(0))
    r = cli_json(
        [
            "logz",
            "--target",
            "gmm:16:4",
            "--samples",
            "128",
            "--bridges",
            "300",
            "--frame",
            "identity",
            "--seed",
            "0",
            "--devices",
            "4",
            "--out",
            os.path.join(out, "logz.png"),
        ]
    )
    assert r["devices"] == 4, r
    z = (r["log_z"] - exact) / r["stderr"]
    assert abs(z) < 3, f"AIS {r['log_z']} +- {r['stderr']} vs exact {exact}: {z:.2f} stderr"
    assert 0 < r["stderr"] < 0.5 and r["ess"] > 5, r
    # the same run on one device: identical up to float reduction order
    one = logz.ais(jax.random.key(0), e, num_particles=128, num_bridges=300, frame="identity")
    log_w = one.log_weights
    assert abs(one.log_z - r["log_z"]) < 1e-3 * max(1.0, abs(exact)), (one.log_z, r["log_z"])
    assert abs(one.stderr - r["stderr"]) < 0.05 * one.stderr + 1e-4
    # honesty of the stderr: recomputed independently from the final log weights (delta method,
    # sd(w) / (sqrt(M) mean w)); a bridge-starved run (ESS ~ 1) would report a tiny stderr
    w = np.exp(np.asarray(log_w, np.float64) - np.max(log_w))
    se = float(np.std(w, ddof=1) / (math.sqrt(w.size) * w.mean()))
    ess = float(w.sum() ** 2 / np.sum(w**2))
    assert abs(se - r["stderr"]) < 0.05 * se, (se, r["stderr"])
    assert ess > 5 and abs(ess - r["ess"]) < 0.05 * ess, (ess, r["ess"])
    zs = [z]
    emit(
        "ais", log_z=r["log_z"], stderr=r["stderr"], exact=exact, ess=r["ess"], z_scores=zs, one_device_log_z=one.log_z
    )


def check_chains():
    """4 chains on 4 devices: one chain per device (progressive, NUTS/HMC, long-run, SMC particles)."""
    from ebm_ppl.energy import target
    from ebm_ppl.sampling import hmc, long_run, progressive
    from ebm_ppl.sharding import device_mesh

    mesh = device_mesh(4)
    e = target("gmm:2:3")
    key = jax.random.key(0)
    x = progressive.sample(key, e, 4, num_inner_steps=5, mesh=mesh)
    one_per_device(x, 4)
    x1 = progressive.sample(key, e, 4, num_inner_steps=5)
    assert np.allclose(np.asarray(x), np.asarray(x1), atol=1e-5), "sharded draws differ from one device"
    ch = hmc.sample_level(key, e, num_chains=4, algorithm="hmc", num_draws=10, step_size=0.1, init="normal", mesh=mesh)
    one_per_device(ch.position, 4)
    lr = long_run.run(key, e, 4, steps_per_level=3, step_sizes=np.full(e.num_levels, 0.1), mesh=mesh)
    one_per_device(lr.samples, 4)
    try:
        progressive.sample(key, e, 6, num_inner_steps=2, mesh=mesh)
        raise AssertionError("6 chains on 4 devices should be refused")
    except ValueError as err:
        assert "multiple of 4" in str(err), err
    # the CLI: 4 chains, JSON reports 4 devices
    r = cli_json(
        [
            "sample",
            "--target",
            "gmm:2:3",
            "--sampler",
            "progressive",
            "--n",
            "4",
            "--steps",
            "5",
            "--devices",
            "4",
            "--out",
            os.path.join(OUT, "s.npz"),
        ]
    )
    assert r["devices"] == 4 and r["finite"], r
    emit(
        "chains",
        shard_shape=list(x.addressable_shards[0].data.shape),
        devices=[str(s.device) for s in x.addressable_shards],
    )


def check_bpd_and_solve(out):
    """bits/dim batches (padded to a multiple of 4) and inverse-problem batches over 4 devices."""
    from ebm_ppl.distribution import EBMPrior
    from ebm_ppl.energy import target
    from ebm_ppl.inverse import sample_posterior
    from ebm_ppl.inverse.operators import from_name
    from ebm_ppl.likelihood import bits_per_dim
    from ebm_ppl.sharding import device_mesh

    mesh = device_mesh(4)
    e = target("gmm:4:2")
    prior = EBMPrior(e, log_z=float(e.log_z(0)))
    x = np.asarray(e.sample_data(jax.random.key(1), 10))  # 10: padded to 12 over 4 devices
    a = bits_per_dim(prior, x, jax.random.key(2), levels=None, mesh=mesh)
    b = bits_per_dim(prior, x, jax.random.key(2), levels=None)
    assert abs(a.bpd - b.bpd) < 1e-5 and a.per_example.shape == (10,), (a.bpd, b.bpd)
    op, noise = from_name("denoise:0.3", e.data_shape, seed=0)
    obs = op.forward(jax.numpy.asarray(x[:4])) + 0.3 * jax.random.normal(jax.random.key(3), (4, op.dim))
    res = sample_posterior(
        jax.random.key(4),
        e,
        op,
        noise,
        obs,
        num_chains=2,
        num_warmup=2,
        num_draws=2,
        num_inner_steps=3,
        max_num_doublings=2,
        mesh=mesh,
    )
    assert res.warm_start.shape[0] == 4 and np.all(np.isfinite(np.asarray(res.samples)))
    one_per_device(res.warm_start, 4)
    emit("bpd_solve", bpd_4=a.bpd, bpd_1=b.bpd)


if __name__ == "__main__":
    OUT = sys.argv[1]
    wanted = set(sys.argv[2:]) or {"devices", "chains", "ais", "bpd_solve", "train"}
    os.makedirs(OUT, exist_ok=True)
    t_all = time.time()
    for name, fn in (
        ("devices", check_devices),
        ("chains", check_chains),
        ("ais", lambda: check_ais(OUT)),
        ("bpd_solve", lambda: check_bpd_and_solve(OUT)),
        ("train", lambda: check_train(OUT)),
    ):
        if name in wanted:
            t0 = time.time()
            fn()
            emit("timing", what=name, seconds=round(time.time() - t0, 2))
    emit("done", seconds=round(time.time() - t_all, 2))
    assert math.isfinite(time.time())
