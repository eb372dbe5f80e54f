"""ebm_ppl.metrics: MMD, the shipped digits classifier, Frechet distance, class histogram."""

import math

import numpy as np
import pytest

from ebm_ppl import data, metrics


def _naive_mmd2(x, y, h):
    k = lambda a, b: np.exp(-((a[:, None, :] - b[None, :, :]) ** 2).sum(-1) / (2 * h * h))
    m, n = len(x), len(y)
    kxx, kyy = k(x, x), k(y, y)
    return (
        (kxx.sum() - np.trace(kxx)) / (m * (m - 1)) + (kyy.sum() - np.trace(kyy)) / (n * (n - 1)) - 2 * k(x, y).mean()
    )


def test_mmd_matches_naive_formula_with_blocks():
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(70, 3)), rng.normal(size=(50, 3)) + 0.3
    r = metrics.mmd(x, y, bandwidth=0.8, block=16)  # several blocks, ragged last one
    assert r.bandwidth == 0.8 and (r.n_x, r.n_y) == (70, 50)
    assert r.mmd2 == pytest.approx(_naive_mmd2(x, y, 0.8), rel=1e-10)
    assert float(r) == r.mmd2
    # images are flattened
    r2 = metrics.mmd(x.reshape(70, 3, 1), y.reshape(50, 3, 1), bandwidth=0.8)
    assert r2.mmd2 == pytest.approx(r.mmd2, rel=1e-12)
    # median heuristic: median pairwise distance of the pooled sample
    z = np.concatenate([x, y])
    d = np.sqrt(((z[:, None] - z[None]) ** 2).sum(-1))[np.triu_indices(120, 1)]
    assert metrics.mmd(x, y).bandwidth == pytest.approx(np.median(d), rel=1e-9)
    # biased V-statistic is >= the U-statistic's diagonal-free version and non-negative
    assert metrics.mmd(x, y, bandwidth=0.8, unbiased=False).mmd2 > 0


def test_mmd_unbiased_against_closed_form():
    # x ~ N(0, I_2), y ~ N(m, I_2), RBF bandwidth h: E k = (h^2/(h^2+2))^(D/2) exp(-|m|^2 / (2(h^2+2))),
    # so MMD^2 = (h^2/(h^2+2)) * 2 * (1 - exp(-|m|^2/(2(h^2+2)))) = 0.10250 for |m| = 1, h = 1.
    exact = (1 / 3) * 2 * (1 - math.exp(-1 / 6))
    rng = np.random.default_rng(1)
    reps = [
        metrics.mmd(rng.normal(size=(400, 2)), rng.normal(size=(400, 2)) + [1.0, 0.0], bandwidth=1.0).mmd2
        for _ in range(10)
    ]
    mean, sd = np.mean(reps), np.std(reps, ddof=1)
    # tolerance: 4 standard errors of the mean of 10 replicates (sd ~ 0.008 here)
    assert abs(mean - exact) < 4 * sd / math.sqrt(10)


def test_mmd_same_law_near_zero_different_law_positive():
    # Same law: the U-statistic has mean 0; 20 replicates of 8gaussians 300 vs 300 with a fixed
    # bandwidth, mean within 4 standard errors of 0.
    reps = [
        metrics.mmd(
            data.sample_2d("8gaussians", 2 * i, 300), data.sample_2d("8gaussians", 2 * i + 1, 300), bandwidth=0.5
        ).mmd2
        for i in range(20)
    ]
    sd = np.std(reps, ddof=1)
    assert abs(np.mean(reps)) < 4 * sd / math.sqrt(20)
    # Different laws (8gaussians vs rings, same bandwidth): far above the null spread (sd ~ 0.0024).
    diff = metrics.mmd(data.sample_2d("8gaussians", 100, 300), data.sample_2d("rings", 101, 300), bandwidth=0.5).mmd2
    assert diff > 10 * sd


def test_mmd_errors():
    with pytest.raises(ValueError, match="dimensions"):
        metrics.mmd(np.zeros((5, 2)), np.zeros((5, 3)))
    with pytest.raises(ValueError, match="NaN"):
        metrics.mmd(np.full((5, 2), np.nan), np.zeros((5, 2)))


def test_shipped_classifier_accuracy_and_size():
    import os

    assert os.path.getsize(metrics.CLASSIFIER_WEIGHTS) < 1_000_000
    acc = metrics.digits_accuracy("test")
    assert acc >= 0.95
    assert metrics.load_digits_classifier().card["test_accuracy"] == pytest.approx(acc)


def test_classifier_inputs_and_histogram():
    x = data.load("digits", "test")
    p4 = metrics.predict_digits(x)
    np.testing.assert_array_equal(p4, metrics.predict_digits(x.reshape(-1, 64)))
    np.testing.assert_array_equal(p4, metrics.predict_digits(x[..., 0]))
    pred, probs = metrics.predict_digits(x, return_probs=True)
    np.testing.assert_allclose(probs.sum(1), 1.0, atol=1e-9)
    f = metrics.digits_features(x)
    assert f.shape == (360, metrics.DIGITS_FEATURE_DIM)
    h = metrics.class_histogram(x)
    assert h.counts.sum() == 360 and h.proportions.sum() == pytest.approx(1.0)
    true = np.bincount(data.labels("digits", "test"), minlength=10)
    assert np.abs(h.counts - true).sum() <= 2 * 0.05 * 360  # at most 5% misclassified
    with pytest.raises(ValueError, match="8, 8, 1"):
        metrics.predict_digits(np.zeros((3, 28, 28, 1)))


def test_gaussian_frechet_closed_form():
    # 1-D: (m1 - m2)^2 + (s1 - s2)^2
    assert metrics.gaussian_frechet([0.0], [[4.0]], [1.0], [[1.0]]) == pytest.approx(1 + 1)
    # diagonal: sum over coordinates
    d = metrics.gaussian_frechet(np.zeros(2), np.diag([1.0, 9.0]), np.ones(2), np.diag([4.0, 1.0]))
    assert d == pytest.approx(2 + 1 + 4)


def test_frechet_distance_scale():
    tr, te = data.load("digits", "train"), data.load("digits", "test")
    assert metrics.frechet_distance(te, te) < 1e-6
    fd_tt = metrics.frechet_distance(tr[:360], te)
    noise = np.random.default_rng(0).uniform(-1, 1, te.shape)
    fd_noise = metrics.frechet_distance(noise, te)
    assert fd_tt < 0.05 * fd_noise
    # a Gaussian fitted to the training pixels is clearly worse than real held-out digits
    flat = tr.reshape(1200, 64).astype(np.float64)
    g = np.random.default_rng(0).multivariate_normal(flat.mean(0), np.cov(flat, rowvar=False), 360)
    assert metrics.frechet_distance(g, te) > 1.8 * fd_tt
