"""The one rescaling rule: the data-space density of level t is f(c_t x, t) + D log c_t, and for an
oracle it is the exact, normalised density of x_t = y_t / c_t once log Z_t is subtracted."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from ebm_ppl.energy import level_scale, logdensity_fn, target


@pytest.mark.parametrize("level", [0, 3, 6])
def test_data_space_density_is_the_exact_normal_density_of_x_t(level):
    """gauss:4 on drl:6: level t of the oracle is N(m_t, S_t) in model space, so x_t = y_t / c_t is
    N(m_t / c_t, S_t / c_t^2). The D log c_t term makes the data-space density share log Z_t with
    the model-space one, so logdensity_fn - log Z_t must equal that log density pointwise (float32
    arithmetic: 1e-4). Dropping the Jacobian term misses by D log c_t (0.22 at level 0)."""
    from scipy.stats import multivariate_normal

    oracle = target("gauss:4")
    c = level_scale(oracle, level)
    mean = np.asarray(oracle.mean(level), np.float64) / c
    cov = np.asarray(oracle.covariance(level), np.float64) / c**2
    x = np.asarray(jax.random.normal(jax.random.key(level), (50, oracle.dim))) + mean
    exact = multivariate_normal(mean, cov).logpdf(x)
    got = np.asarray(logdensity_fn(oracle, level)(x.astype(np.float32)), np.float64) - oracle.log_z(level)
    np.testing.assert_allclose(got, exact, rtol=1e-4, atol=1e-4)


def test_model_space_is_the_energy_and_bad_arguments_are_named():
    oracle = target("gauss:4")
    y = jax.random.normal(jax.random.key(0), (5, oracle.dim))
    np.testing.assert_allclose(logdensity_fn(oracle, 2, "model")(y), oracle.log_density(y, 2), rtol=1e-6)
    np.testing.assert_allclose(
        oracle.logdensity_fn(2)(y),
        oracle.log_density(level_scale(oracle, 2) * y, 2) + 4 * np.log(level_scale(oracle, 2)),
        rtol=1e-6,
    )
    with pytest.raises(ValueError, match="space must be"):
        logdensity_fn(oracle, 0, "latent")
    with pytest.raises(ValueError, match="out of range"):
        logdensity_fn(oracle, oracle.num_levels + 1)
