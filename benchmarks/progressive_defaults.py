"""Progressive sampling at its defaults against exact answers (issue 16 item 7).

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
    .venv/bin/python benchmarks/progressive_defaults.py [--langevin]
    # -> benchmarks/results/progressive_defaults.json and a table on stdout

* ncsn2 (default schedule drl:6): ``ebm-ppl sample --target ncsn2 --sampler progressive --n 5000
  --out FILE.npz`` run as written; weight of the (5, 5) mode = mean responsibility (exact 0.80).
* gmm:64:4 on the default schedule (drl:6) and on the sampler benchmark's drl:50:linear:
  ``progressive.sample(energy, key, 16000)`` laid out as 4 chains x 4000 draws; per coordinate
  z = (mean - exact mean) / MCSE, MCSE by ArviZ (``az.mcse(method="mean")``, which sees the
  duplicates of the tempered top level), reported max |z| over the 64 coordinates; mode weights.
``--langevin`` adds the same rows with ``inner="langevin"`` (the paper's K = 30, the old default).
"""

import argparse
import json
import os
import tempfile
import time

import arviz as az
import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl import target
from ebm_ppl.cli import main as cli_main
from ebm_ppl.sampling import progressive

OUT = os.path.join("benchmarks", "results", "progressive_defaults.json")


def ncsn2_cli(inner=None):
    e = target("ncsn2")
    with tempfile.TemporaryDirectory() as d:
        out = os.path.join(d, "s.npz")
        argv = ["sample", "--target", "ncsn2", "--sampler", "progressive", "--n", "5000", "--out", out]
        argv += ["--inner", inner] if inner else []
        t0 = time.time()
        assert cli_main(argv) == 0
        sec = time.time() - t0
        x = np.load(out)["samples"]
    w = float(np.asarray(e.responsibilities(e.to_model(jnp.asarray(x)))).mean(0)[1])
    return {
        "case": "ncsn2 CLI",
        "command": "ebm-ppl " + " ".join(argv[:-2]),
        "inner": inner or "default",
        "mode_weight": w,
        "exact": 0.8,
        "error": w - 0.8,
        "seconds": sec,
    }


def gmm64(schedule, inner=None, chains=4, draws=4000):
    e = target("gmm:64:4", schedule=schedule)
    n = chains * draws
    kw = {"inner": inner} if inner else {}
    t0 = time.time()
    x = np.asarray(jax.block_until_ready(progressive.sample(jax.random.key(0), e, n, **kw)))
    sec = time.time() - t0
    m = np.asarray(e.to_data(e.mean(0))).reshape(-1)
    ch = x.reshape(chains, draws, -1)
    mcse = np.array([float(az.mcse(ch[:, :, j], method="mean")) for j in range(ch.shape[-1])])
    z = (x.mean(0) - m) / mcse
    w = np.asarray(e.responsibilities(e.to_model(jnp.asarray(x)))).mean(0)
    return {
        "case": f"gmm:64:4 {e.schedule.name if hasattr(e.schedule, 'name') else schedule}",
        "schedule": schedule or "default (drl:6)",
        "inner": inner or "default",
        "n": n,
        "max_abs_z": float(np.nanmax(np.abs(z))),
        "finite": bool(np.all(np.isfinite(x))),
        "weights": w.tolist(),
        "exact_weights": np.asarray(e.weights).tolist(),
        "seconds": sec,
    }


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--langevin", action="store_true", help="also run the paper's inner='langevin'")
    p.add_argument("--out", default=OUT)
    a = p.parse_args()
    inners = [None] + (["langevin"] if a.langevin else [])
    rows = []
    for inner in inners:
        rows.append(ncsn2_cli(inner))
        print(rows[-1], flush=True)
        for sched in (None, "drl:50:linear"):
            rows.append(gmm64(sched, inner))
            print(rows[-1], flush=True)
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    tmp = a.out + ".tmp"
    with open(tmp, "w") as fh:
        json.dump({"rows": rows}, fh, indent=1)
    os.replace(tmp, a.out)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
