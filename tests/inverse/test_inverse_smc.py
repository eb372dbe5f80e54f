"""Likelihood-tempered SMC posterior: mode weights, means and evidence against an exact mixture posterior."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ebm_ppl.energy import MixtureOracle, target
from ebm_ppl.inverse import exact_posterior
from ebm_ppl.inverse.operators import Denoise
from ebm_ppl.inverse.smc import next_exponent, smc_posterior, systematic_resample


@pytest.fixture(scope="module")
def two_modes():
    """Two components 11 within-std apart in 4-D (no local sampler crosses), prior weights 0.3 / 0.7,
    denoising at noise 1: posterior mode weights vary from problem to problem."""
    D = 4
    orc = MixtureOracle(
        [0.3, 0.7],
        np.stack([-1.5 * np.ones(D), 1.5 * np.ones(D)]),
        np.stack([0.3 * np.eye(D)] * 2),
        target("gmm:16:3").schedule,
        data_shape=(D,),
    )
    op, s = Denoise((D,)), 1.0
    P, N = 12, 256
    truths = orc.sample_data(jax.random.PRNGKey(0), P)
    obs = op(truths) + s * jax.random.normal(jax.random.PRNGKey(1), (P, D))
    init = orc.sample_data(jax.random.PRNGKey(2), P * N).reshape(P, N, D)  # exact prior particles
    x, _, info = smc_posterior(jax.random.PRNGKey(3), orc, op, s, obs, initial_particles=init, num_final_steps=5)
    return orc, op, s, obs, x, info, exact_posterior(orc, op, s, obs)


def test_smc_mode_weights_and_means_match_exact(two_modes):
    orc, op, s, obs, x, info, ex = two_modes
    w_exact = np.asarray(ex.weights[:, 1])
    assert np.ptp(w_exact) > 0.5  # the weights vary from problem to problem
    frac = np.asarray(jnp.mean(jnp.mean(x, axis=-1) > 0, axis=1))
    # 256 particles (ESS >= ~128 after resampling): sd of a fraction <= sqrt(0.25 / 128) = 0.044; allow 0.15
    np.testing.assert_allclose(frac, w_exact, atol=0.15)
    assert float(np.sqrt(np.mean((frac - w_exact) ** 2))) < 0.07
    # posterior means (mostly driven by the mode weights): RMS error over the RMS posterior std
    rel = jnp.sqrt(jnp.mean((x.mean(1) - ex.mean) ** 2)) / jnp.sqrt(jnp.mean(ex.std**2))
    assert float(rel) < 0.15
    assert info["smc_iterations"] >= 2


def test_smc_log_evidence_matches_exact(two_modes):
    orc, op, s, obs, x, info, ex = two_modes
    D = 4
    # exact log int g(x) L(x) dx with L = exp(-|obs - x|^2 / (2 s^2)) unnormalised:
    # log sum_k w_k N(obs; m_k, C_k + s^2 I) + D/2 log(2 pi s^2)
    var = 0.3 + s**2
    comp = -0.5 * np.sum((np.asarray(obs)[:, None, :] - np.asarray(orc.means)[None]) ** 2, -1) / var - 0.5 * D * np.log(
        2 * np.pi * var
    )
    exact = np.log(np.exp(comp) @ np.array([0.3, 0.7])) + 0.5 * D * np.log(2 * np.pi * s**2)
    # SMC log-evidence, 256 particles, ~5 tempering steps at ESS 0.5: variance ~ sum_t 1/ESS_t ~ 5/128,
    # sd ~ 0.2 per problem; over 12 problems the RMS error stays below 0.3 and the mean error (bias) below 0.15
    err = np.asarray(info["log_evidence"]) - exact
    assert float(np.sqrt(np.mean(err**2))) < 0.3 and abs(float(np.mean(err))) < 0.15 and np.max(np.abs(err)) < 0.6


def test_tempering_and_resampling_helpers():
    ll = jnp.asarray(np.random.default_rng(0).normal(size=1000) * 30.0)
    lam = next_exponent(ll, jnp.asarray(0.0), 0.5)
    w = jnp.exp(lam * (ll - ll.max()))
    ess = float(w.sum() ** 2 / jnp.sum(w**2) / 1000)
    assert 0 < float(lam) < 1 and abs(ess - 0.5) < 0.01
    assert float(next_exponent(jnp.zeros(10), jnp.asarray(0.2), 0.5)) == 1.0  # flat likelihood: straight to 1
    idx = systematic_resample(jax.random.PRNGKey(0), jnp.log(jnp.asarray([0.5, 0.25, 0.25, 0.0])))
    assert sorted(np.asarray(idx).tolist()) == [0, 0, 1, 2]


def test_smc_config_keywords_and_the_old_level_spelling_agree(two_modes):
    """SMCConfig fields as config= or keywords give the same particles; prior_level= warns and
    means level=; an unknown option is a TypeError."""
    from ebm_ppl.inverse.smc import SMCConfig

    orc, op, s, obs, *_ = two_modes
    init = orc.sample_data(jax.random.PRNGKey(2), 3 * 16).reshape(3, 16, 4)
    small = dict(initial_particles=init, num_mcmc_steps=1, num_final_steps=0)
    x_kw, _, info = smc_posterior(jax.random.PRNGKey(4), orc, op, s, obs[:3], level=1, **small)
    config = SMCConfig(num_mcmc_steps=1, num_final_steps=0)
    x_cfg, _, _ = smc_posterior(
        jax.random.PRNGKey(4), orc, op, s, obs[:3], level=1, config=config, initial_particles=init
    )
    np.testing.assert_array_equal(np.asarray(x_cfg), np.asarray(x_kw))
    with pytest.warns(DeprecationWarning, match="prior_level= is deprecated; use level="):
        x_old, _, _ = smc_posterior(jax.random.PRNGKey(4), orc, op, s, obs[:3], prior_level=1, **small)
    np.testing.assert_array_equal(np.asarray(x_old), np.asarray(x_kw))
    assert info["level"] == info["prior_level"] == 1
    with pytest.raises(TypeError, match="num_moves"):
        smc_posterior(jax.random.PRNGKey(4), orc, op, s, obs[:3], num_moves=2, initial_particles=init)
