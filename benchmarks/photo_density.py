"""Density of held-out photo patches: bits/dim of the photo prior beside baselines fitted on the same
training patches (issue 17, item 3).

    python benchmarks/photo_density.py models/photo-dsm [--particles8 256 --bridges8 600 ...]

Data (``ebm_ppl.data.photos``, split by photo, seed ``PHOTOS_SEED`` = 0): training 8x8 patches and
32x32 crops from the training photos, validation from ``coffee``, test from ``camera`` and
``astronaut`` (``photos.crops(split, size, n)``); one uniform dequantisation per example (key 0).

* D = 64 (8x8 patches): the model at its evaluation level (chosen on the validation photo among
  ``--levels``; level l is the density of x + r_l e, a valid dequantisation bound at every level)
  with log Z of every level from one AIS run on 8x8 inputs; a 200-component GaussianMixture (full covariances; the patch prior of EPLL, Zoran
  and Weiss 2011), a full Gaussian and the uniform density (8 bits/dim), fitted on 20000 training
  patches.
* D = 1024 (32x32 crops): the model (log Z by AIS on 32x32 inputs) against the full Gaussian.

Each model log Z comes with its AIS weight ESS and Pareto k-hat (ArviZ PSIS; k-hat > 0.7: the
estimate is unreliable and the bits/dim figure optimistic by an unknown amount). Bits/dim are
-(log p(x) + D log(2/256)) / (D log 2) with the standard error over test examples.
Writes benchmarks/results/photo_density.json and .md.
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

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import ebm_ppl  # noqa: E402
from ebm_ppl import data  # noqa: E402
from ebm_ppl.data import photos  # noqa: E402
from ebm_ppl.inverse.smc import prior_scale  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "results")


def dequantised(x, seed=0):
    return np.asarray(data.dequantize(jax.random.PRNGKey(seed), x, 256))


def bpd_stats(log_p, dim):
    b = data.log_prob_to_bits_per_dim(np.asarray(log_p), dim, 256)
    return float(np.mean(b)), float(np.std(b, ddof=1) / math.sqrt(len(b)))


def gaussian_logpdf(train_flat, test_flat):
    from scipy.stats import multivariate_normal

    mu = train_flat.mean(0)
    cov = np.cov(train_flat, rowvar=False) + 1e-6 * np.eye(train_flat.shape[1])
    return multivariate_normal(mu, cov).logpdf(test_flat)


def model_log_p(energy, x, level, log_z, batch=256):
    """Data-space log density of level ``level`` at x (N, H, W, 1): f(s x, l) + D log s - log Z."""
    e = energy.replace(data_shape=tuple(x.shape[1:]))
    s = prior_scale(energy, level)
    D = int(np.prod(x.shape[1:]))
    f = jax.jit(lambda y: e.log_density(s * y, level))
    out = np.concatenate([np.asarray(f(jnp.asarray(x[i : i + batch]))) for i in range(0, len(x), batch)])
    return out + D * math.log(s) - log_z


def model_logz(energy, shape, key, particles, bridges):
    """One AIS run from the top level down to level 0: {level: figures} for every level."""
    from ebm_ppl import logz

    e = energy.replace(data_shape=shape)
    t0 = time.time()
    est = logz.ais(
        key,
        e,
        level=0,
        num_particles=particles,
        num_bridges=bridges,
        pilot_particles=min(64, particles),
        frame="identity",
    )
    wall = time.time() - t0
    out = {}
    for lvl in sorted(est.levels):
        el = est.at_level(lvl)
        out[int(lvl)] = {
            "log_z": float(el.log_z),
            "stderr": float(el.stderr),
            "ess": float(el.ess),
            "khat": float(el.khat),
            "reliable": bool(el.reliable),
            "num_particles": particles,
            "num_bridges": bridges,
            "num_grad_evals": int(est.num_grad_evals),
            "wall_s": wall,
        }
    return out


def model_rows(energy, dim, va, te, lz, levels, batch):
    """Validation bits/dim at each candidate level; the test figure at the best one."""
    val = {lvl: bpd_stats(model_log_p(energy, va, lvl, lz[lvl]["log_z"], batch), dim)[0] for lvl in levels}
    best = min(val, key=val.get)
    m, se = bpd_stats(model_log_p(energy, te, best, lz[best]["log_z"], batch), dim)
    return {
        "dim": dim,
        "method": f"photo prior (conv DSM), level {best}",
        "test_bpd": m,
        "test_se": se,
        "validation_bpd": val[best],
        "validation_by_level": val,
        "level": best,
        "log_z": lz[best],
    }


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument(
        "--levels",
        type=int,
        nargs="+",
        default=[0, 2, 4, 6, 8],
        help="candidate evaluation levels (chosen on the validation photo)",
    )
    ap.add_argument("--particles8", type=int, default=256)
    ap.add_argument("--bridges8", type=int, default=600)
    ap.add_argument("--particles32", type=int, default=64)
    ap.add_argument("--bridges32", type=int, default=300)
    ap.add_argument("--n-test8", type=int, default=2000)
    ap.add_argument("--n-test32", type=int, default=500)
    ap.add_argument("--gmm-components", type=int, default=200)
    ap.add_argument("--gmm-train", type=int, default=20000, help="training patches of the GMM (default all 20000)")
    ap.add_argument("--gmm-iter", type=int, default=100, help="EM iterations at most (default 100)")
    ap.add_argument("--out", default=os.path.join(RESULTS, "photo_density"))
    args = ap.parse_args(argv)
    energy = ebm_ppl.load(args.model)
    rows, t_all = [], time.time()
    from ebm_ppl.inverse.images import level_noise

    res = {
        "model": args.model,
        "candidate_levels": args.levels,
        "seed": photos.PHOTOS_SEED,
        "noise_r": {lvl: float(level_noise(energy)[lvl]) for lvl in args.levels},
        "rows": rows,
        "command": "python benchmarks/photo_density.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }

    # ---- D = 64
    tr8 = dequantised(photos.crops("train", 8, 20000), 1).reshape(20000, -1)
    va8 = dequantised(photos.crops("validation", 8, args.n_test8), 2)
    te8 = dequantised(photos.crops("test", 8, args.n_test8), 3)
    D = 64
    rows.append({"dim": D, "method": "uniform", "test_bpd": 8.0, "test_se": 0.0, "validation_bpd": 8.0})
    for name, (tst, val) in {
        "full Gaussian": (
            gaussian_logpdf(tr8, te8.reshape(len(te8), -1)),
            gaussian_logpdf(tr8, va8.reshape(len(va8), -1)),
        )
    }.items():
        m, se = bpd_stats(tst, D)
        rows.append({"dim": D, "method": name, "test_bpd": m, "test_se": se, "validation_bpd": bpd_stats(val, D)[0]})
    from sklearn.mixture import GaussianMixture

    t0 = time.time()
    gmm = GaussianMixture(
        args.gmm_components, covariance_type="full", max_iter=args.gmm_iter, random_state=0, reg_covar=1e-6
    )
    gmm.fit(tr8[: args.gmm_train])
    m, se = bpd_stats(gmm.score_samples(te8.reshape(len(te8), -1)), D)
    rows.append(
        {
            "dim": D,
            "method": f"GMM-{args.gmm_components}",
            "test_bpd": m,
            "test_se": se,
            "validation_bpd": bpd_stats(gmm.score_samples(va8.reshape(len(va8), -1)), D)[0],
            "fit_s": time.time() - t0,
            "converged": bool(gmm.converged_),
            "em_iterations": int(gmm.n_iter_),
            "train_patches": int(min(args.gmm_train, len(tr8))),
        }
    )
    print(rows[-1], flush=True)
    lz = model_logz(energy, (8, 8, 1), jax.random.PRNGKey(10), args.particles8, args.bridges8)
    print("log Z 8x8", lz, flush=True)
    rows.append(model_rows(energy, D, va8, te8, lz, args.levels, 256))
    print(rows[-1], flush=True)

    # ---- D = 1024
    D = 1024
    tr32 = dequantised(photos.crops("train", 32, 20000), 4).reshape(20000, -1)
    va32 = dequantised(photos.crops("validation", 32, args.n_test32), 5)
    te32 = dequantised(photos.crops("test", 32, args.n_test32), 6)
    rows.append({"dim": D, "method": "uniform", "test_bpd": 8.0, "test_se": 0.0, "validation_bpd": 8.0})
    m, se = bpd_stats(gaussian_logpdf(tr32, te32.reshape(len(te32), -1)), D)
    rows.append(
        {
            "dim": D,
            "method": "full Gaussian",
            "test_bpd": m,
            "test_se": se,
            "validation_bpd": bpd_stats(gaussian_logpdf(tr32, va32.reshape(len(va32), -1)), D)[0],
        }
    )
    lz = model_logz(energy, (32, 32, 1), jax.random.PRNGKey(11), args.particles32, args.bridges32)
    print("log Z 32x32", lz, flush=True)
    rows.append(model_rows(energy, D, va32, te32, lz, args.levels, 64))
    res["wall_s"] = time.time() - t_all
    write(res, args.out)


def write(res, out):
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    tmp = out + ".json.tmp"
    with open(tmp, "w") as fh:
        json.dump(res, fh, indent=1)
    os.replace(tmp, out + ".json")
    lines = [
        f"Bits/dim of held-out photo patches (test photos camera + astronaut, validation coffee; model "
        f"{res['model']}; its evaluation level chosen on validation among {res['candidate_levels']}, noise r = "
        f"{res['noise_r']}). Written by `{res['command']}`.",
        "",
        "| D | method | test bits/dim | validation bits/dim | log Z (ESS, k-hat) |",
        "|---|---|---|---|---|",
    ]
    for r in res["rows"]:
        lz = r.get("log_z")
        lzs = (
            ""
            if not lz
            else (
                f"{lz['log_z']:.2f} ± {lz['stderr']:.2f} (ESS {lz['ess']:.1f}/{lz['num_particles']}, "
                f"k-hat {lz['khat']:.2f}{'' if lz['reliable'] else ', UNRELIABLE: stderr is a lower bound'})"
            )
        )
        lines.append(
            f"| {r['dim']} | {r['method']} | {r['test_bpd']:.3f} ± {r['test_se']:.3f} | "
            f"{r['validation_bpd']:.3f} | {lzs} |"
        )
    lines.append("")
    lines.append(f"Total wall time {res.get('wall_s', 0) / 60:.1f} min on the shared 2-core CPU.")
    tmp = out + ".md.tmp"
    with open(tmp, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, out + ".md")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
