"""The 2-D sample-quality figures: the null expectation of the biased MMD^2 and the ratio report."""

import math

import numpy as np
import pytest

from ebm_ppl import data, metrics


def test_null_expectation_two_points_exact():
    # E k over the distinct pairs of {(0,0), (1,0)} is exp(-1/2) at h = 1:
    # E[MMD^2_b] = (1/4 + 1/4) (1 - exp(-1/2))
    ref = np.array([[0.0, 0.0], [1.0, 0.0]])
    got = metrics.mmd2_null_expectation(ref, 4, bandwidth=1.0)
    assert got == pytest.approx(0.5 * (1.0 - math.exp(-0.5)), rel=1e-12)
    got = metrics.mmd2_null_expectation(ref, 2, 8, bandwidth=1.0)
    assert got == pytest.approx((1 / 2 + 1 / 8) * (1.0 - math.exp(-0.5)), rel=1e-12)


def test_null_expectation_gaussian_oracle_and_v_statistic_mean():
    # x, x' ~ N(0, s^2 I_2): E exp(-|x - x'|^2 / (2 h^2)) = h^2 / (h^2 + 2 s^2) exactly.
    s, h, m = 0.3, 0.2, 100
    exact = (2.0 / m) * (1.0 - h * h / (h * h + 2 * s * s))  # 0.01723...
    rng = np.random.default_rng(0)
    est = metrics.mmd2_null_expectation(rng.normal(size=(4000, 2)) * s, m, bandwidth=h)
    # E k = 0.1818; the U-statistic over 4000 points has sd ~ 0.004 of it (a few 1e-3 relative
    # of 1 - E k): 2 % is > 5 sd
    assert est == pytest.approx(exact, rel=0.02)
    # and it is the mean of the biased V-statistic over independent same-law pairs
    vs = [
        metrics.mmd(rng.normal(size=(m, 2)) * s, rng.normal(size=(m, 2)) * s, h, unbiased=False).mmd2
        for _ in range(200)
    ]
    se = np.std(vs) / math.sqrt(len(vs))
    assert abs(np.mean(vs) - exact) < 4 * se, (np.mean(vs), exact, se)


def test_sample_quality_2d_exact_cases():
    held = data.sample_2d("8gaussians", 1, 300)
    ref = data.sample_2d("8gaussians", 2, 600)
    q = metrics.sample_quality_2d(held, held_out=held, reference=ref, n=300)
    assert q["n_samples"] == 300 and q["n_held_out"] == 300
    for tag in ("median", "h0.1"):
        assert q[tag]["mmd2_model_heldout"] == pytest.approx(0.0, abs=1e-12)
        assert q[tag]["mmd_ratio"] == pytest.approx(0.0, abs=1e-9)
    assert q["h0.1"]["bandwidth"] == 0.1
    assert q["median"]["bandwidth"] == pytest.approx(metrics.median_bandwidth(ref[:300], held))
    # the reference's own first 300 points: model figure == the data-data draw, ratio_draw 1
    q = metrics.sample_quality_2d(ref, held_out=held, reference=ref, n=300)
    for tag in ("median", "h0.1"):
        f = q[tag]
        assert f["mmd2_model_heldout"] == pytest.approx(f["mmd2_data_data"], rel=1e-12)
        assert f["mmd_ratio_draw"] == pytest.approx(1.0, rel=1e-12)
        assert f["mmd2_null"] == pytest.approx(metrics.mmd2_null_expectation(ref, 300, 300, f["bandwidth"]), rel=1e-12)
    # a sample off by one mode width is far from the null at h = 0.1
    q = metrics.sample_quality_2d(ref + 0.09, held_out=held, reference=ref, n=300)
    assert q["h0.1"]["mmd_ratio"] > 3


def test_sample_quality_2d_builtin_split_and_errors():
    test = data.load("8gaussians", "test")
    q = metrics.sample_quality_2d(test[:200], "8gaussians", n=200, bandwidths=(0.1,))
    assert set(q) == {"n_samples", "n_held_out", "h0.1"}
    assert q["h0.1"]["mmd2_model_heldout"] == pytest.approx(0.0, abs=1e-12)
    with pytest.raises(ValueError, match="name"):
        metrics.sample_quality_2d(test[:10])
    with pytest.raises(ValueError, match="NaN"):
        metrics.sample_quality_2d(np.full((10, 2), np.nan), "8gaussians", n=10)
