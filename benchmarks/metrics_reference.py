"""Reference values for the sample-quality metrics (the figures in docs/metrics.md).

    .venv/bin/python benchmarks/metrics_reference.py [--out out/metrics_reference.json]

Frechet distances in the shipped digits classifier's 64-d features between digits splits and
simple baselines, and RBF MMD^2 between independent draws of the same law, so that a model's
figure can be read against them. All seeds fixed.
"""

import argparse
import json
import os
import time

import numpy as np

from ebm_ppl import data, metrics


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--out", default="out/metrics_reference.json")
    args = ap.parse_args()
    t0 = time.time()
    rng = np.random.default_rng(0)
    tr, va, te = (data.load("digits", s) for s in ("train", "validation", "test"))
    n = len(te)
    flat = tr.reshape(len(tr), -1).astype(np.float64)
    mu, cov = flat.mean(0), np.cov(flat, rowvar=False)
    gauss = rng.multivariate_normal(mu, cov, size=n).reshape(n, 8, 8, 1)
    gauss_clip = np.clip(gauss, -1, 1)
    uniform = rng.uniform(-1, 1, size=(n, 8, 8, 1))
    sub = tr[rng.choice(len(tr), n, replace=False)]
    deq = np.asarray(data.dequantize(__import__("jax").random.key(0), sub, "digits"))
    noisy = np.clip(sub + 0.1 * rng.normal(size=sub.shape), -1, 1)
    fd = {
        "test_vs_test": metrics.frechet_distance(te, te),
        "train1200_vs_test360": metrics.frechet_distance(tr, te),
        "train360_vs_test360": metrics.frechet_distance(sub, te),
        "validation237_vs_test360": metrics.frechet_distance(va, te),
        "train360_dequantised_vs_test360": metrics.frechet_distance(deq, te),
        "train360_plus_noise0.1_vs_test360": metrics.frechet_distance(noisy, te),
        "gaussian_fit_to_train360_vs_test360": metrics.frechet_distance(gauss, te),
        "gaussian_fit_clipped360_vs_test360": metrics.frechet_distance(gauss_clip, te),
        "uniform_noise360_vs_test360": metrics.frechet_distance(uniform, te),
    }
    hist = metrics.class_histogram(gauss)
    a = data.sample_2d("8gaussians", 1, 2000)
    b = data.sample_2d("8gaussians", 2, 2000)
    m = metrics.mmd(a, b)
    m_ref = metrics.mmd(data.load("8gaussians", "train")[:2000], data.load("8gaussians", "test")[:2000])
    mmd_dig = metrics.mmd(sub, te)
    mmd_gauss = metrics.mmd(gauss, te)
    null = {}
    for label, kw in (
        ("unbiased_median", {}),
        ("biased_median", {"unbiased": False}),
        ("unbiased_h0.1", {"bandwidth": 0.1}),
    ):
        r = [
            metrics.mmd(
                data.sample_2d("8gaussians", 2 * i + 10, 2000), data.sample_2d("8gaussians", 2 * i + 11, 2000), **kw
            ).mmd2
            for i in range(20)
        ]
        null[label] = {"mean": float(np.mean(r)), "sd": float(np.std(r, ddof=1))}
    res = {
        "frechet_distance": fd,
        "gaussian_fit_class_histogram": hist.counts.tolist(),
        "mmd": {
            "8gaussians_seed1_2000_vs_seed2_2000": m._asdict(),
            "8gaussians_train2000_vs_test2000": m_ref._asdict(),
            "digits_train360_vs_test360": mmd_dig._asdict(),
            "digits_gaussian_fit360_vs_test360": mmd_gauss._asdict(),
            "8gaussians_same_law_2000_vs_2000_20_replicates": null,
        },
        "classifier": metrics.load_digits_classifier().card,
        "wall_time_s": round(time.time() - t0, 1),
    }
    os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
    with open(args.out, "w") as f:
        json.dump(res, f, indent=2)
    print(json.dumps({k: res[k] for k in ("frechet_distance", "gaussian_fit_class_histogram", "mmd")}, indent=2))


if __name__ == "__main__":
    main()
