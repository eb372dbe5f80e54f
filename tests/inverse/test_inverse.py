"""Inverse problems: operators (adjointness, matrices, parser), posteriors against exact answers."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ebm_ppl.energy import target
from ebm_ppl.inverse import (
    exact_posterior,
    fit_gaussian,
    from_name,
    gaussian_posterior,
    posterior_model,
    psnr,
    sample_posterior,
    ssim,
)
from ebm_ppl.inverse import operators as O
from ebm_ppl.inverse.metrics import coverage, sample_coverage

NAMES = ["inpaint:half", "inpaint:box", "inpaint:random0.5", "denoise:0.2", "blur:gauss1", "sr:2", "cs:0.3"]


@pytest.mark.parametrize("name", NAMES)
@pytest.mark.parametrize("shape", [(8, 8, 1), (64,), (4, 6, 2)])
def test_adjoint_and_matrix(name, shape):
    if name == "sr:2" and shape == (4, 6, 2):
        shape = (4, 6, 2)
    op, noise = from_name(name, shape, seed=3)
    k1, k2 = jax.random.split(jax.random.PRNGKey(0))
    x = jax.random.normal(k1, (5,) + shape)
    v = jax.random.normal(k2, (5, op.num_observations))
    lhs = jnp.sum(op(x) * v, axis=1)
    rhs = jnp.sum((x * op.adjoint(v)).reshape(5, -1), axis=1)
    np.testing.assert_allclose(lhs, rhs, rtol=1e-5, atol=1e-5)
    A = op.matrix()
    assert A.shape == (op.num_observations, op.dim)
    np.testing.assert_allclose(op(x), x.reshape(5, -1) @ A.T, atol=1e-5)
    np.testing.assert_allclose(op.adjoint(v).reshape(5, -1), v @ A, atol=1e-5)
    np.testing.assert_allclose(op.gram_scale, np.trace(np.asarray(A @ A.T)) / op.num_observations, rtol=1e-5)
    assert noise > 0


def test_blur_zero_padding_adjoint_and_kernel():
    k = O.gaussian_kernel(1.0)
    assert k.shape == (7, 7) and np.isclose(k.sum(), 1.0)
    for padding in ("zero", "reflect"):
        op = O.Blur(k, (8, 8), padding)
        A = np.asarray(op.matrix())
        v = np.random.default_rng(0).standard_normal((2, 64)).astype(np.float32)
        np.testing.assert_allclose(op.adjoint(v).reshape(2, -1), v @ A, atol=1e-5)
    # reflect padding preserves constants, zero padding darkens the border
    ones = jnp.ones((1, 8, 8))
    np.testing.assert_allclose(O.Blur(k, (8, 8), "reflect")(ones), 1.0, atol=1e-5)
    assert float(O.Blur(k, (8, 8), "zero")(ones)[0, 0]) < 0.7


def test_parser_semantics_and_errors():
    op, s = from_name("denoise:0.2", (8, 8, 1))
    assert isinstance(op, O.Denoise) and s == 0.2
    op, s = from_name("inpaint:random0.25", (8, 8, 1))
    assert op.num_observations == 64 - 16 and s == O.DEFAULT_NOISE_STD
    op, s = from_name("inpaint:half@0.1", (8, 8, 1))
    assert op.num_observations == 32 and s == 0.1 and bool(op.mask[0, 0, 0]) and not bool(op.mask[7, 0, 0])
    assert from_name("cs:0.3", (64,))[0].num_observations == 19
    assert from_name("sr:2", (8, 8, 1))[0].num_observations == 16
    for bad in ["inpaint:circle", "blur:box3", "sr:3", "cs:1.5", "warp:2", "denoise:0.2@-1"]:
        with pytest.raises(ValueError):
            from_name(bad, (8, 8, 1))
    with pytest.raises(ValueError):
        from_name("inpaint:half", (10,))  # not an image


def test_metrics():
    rng = np.random.default_rng(0)
    x = rng.uniform(-1, 1, (3, 8, 8, 1))
    assert np.all(psnr(x, x) > 100) and np.allclose(ssim(x, x), 1.0)
    noisy = x + 0.1 * rng.standard_normal(x.shape)
    np.testing.assert_allclose(psnr(noisy, x), 10 * np.log10(4 / np.mean((noisy - x).reshape(3, -1) ** 2, 1)))
    assert np.all(ssim(noisy, x) < 1.0)
    # samples from the right normal cover at the nominal rate (P * D = 6400 pixels, binomial sd <= 0.006)
    truth = rng.standard_normal((100, 64))
    samples = rng.standard_normal((100, 2000, 64))
    cov = sample_coverage(samples, truth)
    assert abs(cov[0.9] - 0.9) < 0.02 and abs(cov[0.5] - 0.5) < 0.03


def test_gaussian_baseline_matches_exact_one_component_posterior():
    orc = target("gauss:16")
    op, s = from_name("cs:0.5", orc.data_shape)
    obs = op(orc.sample_data(jax.random.PRNGKey(0), 4)) + s * jax.random.normal(jax.random.PRNGKey(1), (4, 8))
    cov = jnp.einsum("kij,kj,klj->kil", orc.eigvecs, orc.eigvals, orc.eigvecs)[0]
    g = gaussian_posterior(orc.means[0], cov, op, s, obs)
    ex = exact_posterior(orc, op, s, obs)
    np.testing.assert_allclose(g.mean, ex.mean, atol=2e-4)
    np.testing.assert_allclose(g.std, ex.std, atol=2e-4)
    lo, hi = g.interval(0.9)
    elo, ehi = ex.interval(0.9)
    np.testing.assert_allclose(lo, elo, atol=2e-3)
    np.testing.assert_allclose(hi, ehi, atol=2e-3)
    m, c = fit_gaussian(orc.sample_data(jax.random.PRNGKey(2), 20000))
    np.testing.assert_allclose(m, orc.means[0], atol=0.03)


@pytest.fixture(scope="module")
def small_problem():
    """gmm:16:3 prior, half-image inpainting of a 4x4 'image', 24 problems."""
    orc = target("gmm:16:3")
    op, s = from_name("inpaint:half", orc.data_shape)
    truths = orc.sample_data(jax.random.PRNGKey(1), 24)
    obs = op(truths) + s * jax.random.normal(jax.random.PRNGKey(2), (24, op.num_observations))
    res = sample_posterior(
        jax.random.PRNGKey(3), orc, op, s, obs, num_chains=4, num_warmup=60, num_draws=75, method="progressive"
    )
    return orc, op, s, truths, obs, res, exact_posterior(orc, op, s, obs)


def test_sampled_posterior_mean_matches_exact_mixture(small_problem):
    orc, op, s, truths, obs, res, ex = small_problem
    assert res.samples.shape == (24, 300, 16) and res.info["nuts_divergences"] == 0
    # MC error of a mean from 300 correlated draws (ESS >= 50 per pixel): <= std / sqrt(50) ~ 0.14 std
    z = (res.mean - ex.mean) / ex.std
    assert float(jnp.sqrt(jnp.mean(z**2))) < 0.2
    np.testing.assert_allclose(jnp.mean(res.std / ex.std), 1.0, atol=0.1)


def test_coverage_sanity(small_problem):
    orc, op, s, truths, obs, res, ex = small_problem
    cov = sample_coverage(res.samples, truths)
    exact90 = coverage(*ex.interval(0.9), truths)
    # 384 pixels in 24 problems: binomial sd 0.015; pixels within a problem correlate: allow 0.06
    assert abs(cov[0.9] - 0.9) < 0.06 and abs(exact90 - 0.9) < 0.06
    assert cov[0.5] < cov[0.9] < cov[0.95]
    # the warm start alone is far worse (the NUTS stage matters)
    warm_err = jnp.sqrt(jnp.mean(((res.warm_start.mean(1) - ex.mean) / ex.std) ** 2))
    assert float(warm_err) > 0.2


def test_posterior_model_numpyro_nuts_matches_exact():
    from numpyro.infer import MCMC, NUTS

    orc = target("gmm:16:3")
    op, s = from_name("denoise:0.3", orc.data_shape)
    x = orc.sample_data(jax.random.PRNGKey(5), 1)
    y = op(x[0]) + s * jax.random.normal(jax.random.PRNGKey(6), (op.num_observations,))
    mcmc = MCMC(NUTS(posterior_model(orc, op, s)), num_warmup=200, num_samples=600, progress_bar=False)
    mcmc.run(jax.random.PRNGKey(0), y=y)
    xs = mcmc.get_samples()["x"]
    ex = exact_posterior(orc, op, s, y[None])
    # 600 draws, ESS >= 150: MC error of each mean <= std / sqrt(150) ~ 0.08 std; max over 16 pixels < 0.35 std
    assert float(jnp.max(jnp.abs(xs.mean(0) - ex.mean[0]) / ex.std[0])) < 0.35
    with pytest.raises(ValueError):
        posterior_model(orc, from_name("denoise:0.1", (8, 8, 1))[0], 0.1)


def test_bad_observation_shape():
    orc = target("gmm:16:3")
    op, s = from_name("inpaint:half", orc.data_shape)
    with pytest.raises(ValueError, match="observations must have shape"):
        sample_posterior(jax.random.PRNGKey(0), orc, op, s, jnp.zeros((2, 5)))
