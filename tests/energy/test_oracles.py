"""Analytic oracles: exact normalisers, samples, conditionals and the data-space map."""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from scipy import stats

from ebm_ppl import schedules
from ebm_ppl.energy import GaussianOracle, MixtureOracle, gaussian_mixture_posterior, target

WEIGHTS = [0.2, 0.5, 0.3]
MEANS = [[-1.0, 0.5], [1.2, -0.3], [0.1, 1.4]]
COVS = [[[0.3, 0.1], [0.1, 0.2]], [[0.1, -0.05], [-0.05, 0.4]], [[0.05, 0.0], [0.0, 0.05]]]


def _mixture(schedule=None):
    return MixtureOracle(WEIGHTS, MEANS, COVS, schedule or schedules.drl(6))


def _quadrature_log_z(energy, t, points=801, width=9.0):
    """log of the integral of exp f(., t) on a grid covering mean +- width * max std."""
    mean = np.asarray(energy.mean(t), np.float64)
    std = math.sqrt(float(np.max(np.linalg.eigvalsh(np.asarray(energy.covariance(t), np.float64)))))
    axes = [np.linspace(m - width * std, m + width * std, points) for m in mean]
    grid = np.stack(np.meshgrid(*axes, indexing="ij"), -1).reshape(-1, 2)
    logf = np.asarray(energy.log_density(jnp.asarray(grid, jnp.float32), t), np.float64).reshape(points, points)
    shift = logf.max()
    integral = np.trapezoid(np.trapezoid(np.exp(logf - shift), axes[1], axis=1), axes[0])
    return shift + math.log(integral)


@pytest.mark.parametrize("schedule_name", ["drl:6", "ncsn:10:1:0.01"])
def test_mixture_log_z_matches_quadrature_at_every_level(schedule_name):
    oracle = _mixture(schedules.from_name(schedule_name))
    for t in range(oracle.num_levels + 1):
        assert _quadrature_log_z(oracle, t) == pytest.approx(oracle.log_z(t), abs=1e-4), f"level {t}"


def test_mixture_log_z_t1k_selected_levels():
    oracle = _mixture(schedules.drl(1000))
    for t in [0, 1, 10, 250, 700, 999, 1000]:
        assert _quadrature_log_z(oracle, t) == pytest.approx(oracle.log_z(t), abs=1e-4), f"level {t}"


def test_level_top_is_standard_normal():
    oracle = _mixture()
    y = jax.random.normal(jax.random.PRNGKey(0), (7, 2))
    np.testing.assert_allclose(oracle.log_density(y, 6), -0.5 * jnp.sum(y**2, -1), rtol=1e-6)
    assert oracle.log_z(6) == pytest.approx(math.log(2 * math.pi))


def test_level_zero_mapped_to_data_space_is_the_data_law():
    oracle = _mixture()
    x = jax.random.normal(jax.random.PRNGKey(1), (50, 2))
    a = oracle.data_scale
    via_level0 = oracle.log_density(oracle.to_model(x), 0) - oracle.log_z(0) + 2 * math.log(a)
    exact = np.log(sum(w * stats.multivariate_normal(m, c).pdf(np.asarray(x)) for w, m, c in zip(WEIGHTS, MEANS, COVS)))
    np.testing.assert_allclose(via_level0, exact, atol=2e-5)
    np.testing.assert_allclose(oracle.data_log_prob(x), exact, atol=2e-5)


@pytest.mark.parametrize("t", [0, 2, 5])
def test_exact_samples_match_closed_form_moments(t):
    oracle = _mixture()
    n = 200_000
    y = np.asarray(oracle.sample(jax.random.PRNGKey(t), n, t), np.float64)
    cov = np.asarray(oracle.covariance(t), np.float64)
    # mean: standard error sqrt(diag(cov)/n); allow 4 standard errors
    np.testing.assert_allclose(y.mean(0), oracle.mean(t), atol=4 * np.sqrt(np.diag(cov).max() / n))
    # covariance: entrywise standard error <= sqrt(E[(y_i y_j)^2]/n) ~ 2 var / sqrt(n) for these laws
    np.testing.assert_allclose(np.cov(y.T), cov, atol=4 * 2 * np.diag(cov).max() / math.sqrt(n))
    # mode weights at level 0 (well separated enough: responsibilities sum to the weights)
    if t == 0:
        resp = np.asarray(oracle.responsibilities(jnp.asarray(y[:20000], jnp.float32), 0)).mean(0)
        np.testing.assert_allclose(resp, WEIGHTS, atol=4 * math.sqrt(0.25 / 20000))


def test_gaussian_oracle_conditional_is_closed_form():
    # p(y_t | x_{t+1}) for a Gaussian oracle: N(m', C') with C' = (C^-1 + I/s^2)^-1
    mean, cov = np.array([0.3, -0.2]), np.array([[0.5, 0.2], [0.2, 0.3]])
    oracle = GaussianOracle(mean, cov, schedules.drl(6))
    t, x_next = 2, jnp.array([0.4, 0.1])
    w, m, c = oracle.conditional(x_next, t)
    level_mean = np.asarray(oracle.mean(t), np.float64)
    level_cov = np.asarray(oracle.covariance(t), np.float64)
    s2 = oracle.schedule.conditional_sigmas[t] ** 2
    post_cov = np.linalg.inv(np.linalg.inv(level_cov) + np.eye(2) / s2)
    post_mean = post_cov @ (np.linalg.solve(level_cov, level_mean) + np.asarray(x_next) / s2)
    np.testing.assert_allclose(w, [1.0])
    np.testing.assert_allclose(m[0], post_mean, atol=1e-5)
    np.testing.assert_allclose(c[0], post_cov, atol=1e-6)


def test_mixture_posterior_weights_match_bayes_rule():
    w, m, c = gaussian_mixture_posterior(
        jnp.array(WEIGHTS),
        jnp.array(MEANS),
        jnp.array(COVS),
        jnp.array([[1.0, 0.0]]),
        jnp.array([[0.1]]),
        jnp.array([0.9]),
    )
    evidence = [wk * stats.norm(mk[0], math.sqrt(ck[0][0] + 0.1)).pdf(0.9) for wk, mk, ck in zip(WEIGHTS, MEANS, COVS)]
    np.testing.assert_allclose(w, np.array(evidence) / sum(evidence), rtol=1e-5)


def test_log_density_jit_vmap_and_traced_levels():
    oracle = target("gmm:16:3")
    y = oracle.sample(jax.random.PRNGKey(2), 8, 0)
    levels = jnp.array([0, 1, 2, 3, 4, 5, 6, 0])
    per_level = jnp.stack([oracle.log_density(y[i], int(levels[i])) for i in range(8)])
    np.testing.assert_allclose(jax.jit(lambda e, v, t: e.log_density(v, t))(oracle, y, levels), per_level, rtol=1e-5)
    np.testing.assert_allclose(jax.vmap(oracle.log_density)(y, levels), per_level, rtol=1e-5)


def test_score_is_gradient_of_exact_gaussian_log_density():
    mean, cov = np.array([0.3, -0.2]), np.array([[0.5, 0.2], [0.2, 0.3]])
    oracle = GaussianOracle(mean, cov, schedules.drl(6))
    y = jnp.array([[0.1, 0.4], [-0.5, 0.0]])
    expected = -(np.asarray(y) - np.asarray(oracle.mean(3))) @ np.linalg.inv(
        np.asarray(oracle.covariance(3), np.float64)
    )
    np.testing.assert_allclose(oracle.score(y, 3), expected, rtol=1e-4)


def test_bad_inputs_raise_clear_errors():
    oracle = _mixture()
    with pytest.raises(ValueError, match=r"expected shape \(\*batch, 2\)"):
        oracle.log_density(jnp.zeros((3, 5)), 0)
    with pytest.raises(TypeError, match="floating-point"):
        oracle.log_density(np.zeros((3, 2), np.int32), 0)
    with pytest.raises(ValueError, match="out of range"):
        oracle.log_density(jnp.zeros((3, 2)), 7)
    with pytest.raises(ValueError, match="weights"):
        MixtureOracle([0.5, 0.6], MEANS[:2], COVS[:2], schedules.drl(6))
    with pytest.raises(ValueError, match="positive definite"):
        GaussianOracle([0.0, 0.0], [[1.0, 2.0], [2.0, 1.0]], schedules.drl(6))


@pytest.mark.parametrize("name", ["ncsn2", "gmm4", "gauss:3", "gmm:8:4"])
def test_named_targets(name):
    oracle = target(name)
    assert oracle.num_levels == 6
    assert np.isfinite(np.asarray(oracle.log_density(oracle.sample(jax.random.PRNGKey(0), 4, 0), 0))).all()


def test_named_target_parameters():
    ncsn2 = target("ncsn2")
    np.testing.assert_allclose(ncsn2.weights, [0.2, 0.8], rtol=1e-6)
    np.testing.assert_allclose(ncsn2.means, [[-5, -5], [5, 5]])
    gmm4 = target("gmm4")
    np.testing.assert_allclose(gmm4.eigvals, 0.04, rtol=1e-5)
    assert target("gmm:64:4", schedule="drl:1000").num_levels == 1000


@pytest.mark.parametrize("bad", ["nosuch", "gmm:2", "gauss:0", "ncsn2:3"])
def test_unknown_or_malformed_targets(bad):
    with pytest.raises(ValueError, match="target"):
        target(bad)


@pytest.mark.parametrize("schedule_name", ["drl:6", "ncsn:10:1:0.01"])
def test_levels_are_the_forward_diffusion_of_the_data(schedule_name):
    """Push exact data draws through x_{t+1} = sqrt(1 - s^2) x_t + s e step by step; y_t = c_t x_t
    must have the oracle's level-t mean and covariance (4 standard errors)."""
    oracle = _mixture(schedules.from_name(schedule_name))
    sched = oracle.schedule
    n = 200_000
    rng = np.random.default_rng(0)
    x = np.asarray(oracle.sample_data(jax.random.PRNGKey(3), n), np.float64)
    for t in range(oracle.num_levels):
        if t > 0:
            x = sched.alphas[t] * x + sched.sigmas[t] * rng.standard_normal(x.shape)
        y = sched.model_scales[t] * x
        cov = np.asarray(oracle.covariance(t), np.float64)
        scale = np.diag(cov).max()
        np.testing.assert_allclose(y.mean(0), oracle.mean(t), atol=4 * math.sqrt(scale / n), err_msg=f"level {t}")
        np.testing.assert_allclose(np.cov(y.T), cov, atol=8 * scale / math.sqrt(n), err_msg=f"level {t}")
