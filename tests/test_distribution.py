"""EBMPrior: exact normalisation on Gaussian oracles, NumPyro / BlackJAX integration, errors."""

import jax
import jax.numpy as jnp
import numpy as np
import numpyro
import pytest
from numpyro.infer import MCMC, NUTS, Predictive
from numpyro.infer.util import initialize_model, log_density
from scipy import stats

from ebm_ppl import EBMPrior, schedules
from ebm_ppl.distribution import MissingLogZError
from ebm_ppl.energy import GaussianOracle, MixtureOracle

MEAN = np.array([0.3, -0.2])
COV = np.array([[0.20, 0.06], [0.06, 0.10]])


@pytest.fixture(scope="module")
def oracle():
    return GaussianOracle(MEAN, COV, schedules.drl(6))


def test_log_prob_is_the_exact_gaussian_density_under_jit_and_vmap(oracle):
    prior = EBMPrior(oracle)
    x = np.random.default_rng(0).normal(size=(50, 2)).astype(np.float32) * 0.5
    exact = stats.multivariate_normal(MEAN, COV).logpdf(x)
    np.testing.assert_allclose(prior.log_prob(x), exact, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(jax.jit(lambda p, v: p.log_prob(v))(prior, x), exact, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(jax.vmap(prior.log_prob)(x), exact, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("level", [2, 6])
def test_log_prob_at_a_noise_level_is_the_exact_marginal(oracle, level):
    """x_t = abar_t x_0 + sbar_t e is Gaussian with mean abar m, cov abar^2 C + sbar^2 I (T: N(0, I))."""
    sched = oracle.schedule
    prior = EBMPrior(oracle, noise_level=level)
    ab, sb = sched.signal_scales[level], sched.noise_scales[level]
    mean, cov = (ab * MEAN, ab**2 * COV + sb**2 * np.eye(2)) if level < 6 else (np.zeros(2), np.eye(2))
    x = np.random.default_rng(1).normal(size=(20, 2)).astype(np.float32)
    np.testing.assert_allclose(prior.log_prob(x), stats.multivariate_normal(mean, cov).logpdf(x), rtol=1e-5, atol=1e-4)


def test_distribution_is_a_pytree_with_declared_shapes(oracle):
    prior = EBMPrior(
        MixtureOracle([0.5, 0.5], [[0, 0, 0, 0.0], [1, 1, 1, 1.0]], 0.1, schedules.drl(6), data_shape=(2, 2))
    )
    assert prior.event_shape == (2, 2) and prior.batch_shape == ()
    assert prior.support.event_dim == 2
    leaves, tree = jax.tree_util.tree_flatten(prior)
    again = jax.tree_util.tree_unflatten(tree, leaves)
    x = jnp.zeros((3, 2, 2))
    np.testing.assert_allclose(again.log_prob(x), prior.log_prob(x))
    assert prior.sample(jax.random.key(0), (5, 3)).shape == (5, 3, 2, 2)
    assert jax.jit(lambda k: prior.sample(k, (4,)))(jax.random.key(1)).shape == (4, 2, 2)


def test_missing_log_z_raises_with_instructions_and_unnormalised_still_works(oracle):
    class NoLogZ(GaussianOracle):
        def log_z(self, t):
            return None

    e = NoLogZ(MEAN, COV, schedules.drl(6))
    prior = EBMPrior(e)
    x = jnp.zeros(2)
    assert np.isfinite(prior.unnormalized_log_prob(x))
    with pytest.raises(MissingLogZError, match="ebm-ppl logz .* --write"):
        prior.log_prob(x)
    exact = stats.multivariate_normal(MEAN, COV).logpdf(np.zeros(2))
    np.testing.assert_allclose(EBMPrior(e, log_z=oracle.log_z(0)).log_prob(x), exact, rtol=1e-5)
    with pytest.raises(ValueError, match="noise_level"):
        EBMPrior(oracle, noise_level=7)


def test_numpyro_nuts_predictive_log_density_and_blackjax_agree(oracle):
    """NUTS on x ~ EBMPrior(oracle): 4 chains x 1000 draws; mean tolerance 5 standard errors with
    an ESS of >= 1000 per coordinate (sd <= 0.45, so 5 * 0.45 / sqrt(1000) = 0.07), covariance
    entries within 0.04 (sd of a sample covariance with n_eff = 1000 is <= 0.2 * 0.45 / sqrt(1000) * 3)."""
    import blackjax

    def model():
        numpyro.sample("x", EBMPrior(oracle))

    mcmc = MCMC(
        NUTS(model), num_warmup=300, num_samples=1000, num_chains=4, chain_method="vectorized", progress_bar=False
    )
    mcmc.run(jax.random.key(0))
    xs = np.asarray(mcmc.get_samples()["x"])
    np.testing.assert_allclose(xs.mean(0), MEAN, atol=0.07)
    np.testing.assert_allclose(np.cov(xs.T), COV, atol=0.04)

    lp, _ = log_density(model, (), {}, {"x": jnp.asarray(MEAN)})
    np.testing.assert_allclose(lp, stats.multivariate_normal(MEAN, COV).logpdf(MEAN), rtol=1e-5)

    prior_draws = Predictive(model, num_samples=4000)(jax.random.key(1))["x"]
    assert prior_draws.shape == (4000, 2)
    np.testing.assert_allclose(np.asarray(prior_draws).mean(0), MEAN, atol=0.05)

    info = initialize_model(jax.random.key(2), model)
    potential = info.potential_fn
    logdensity = lambda p: -potential(p)  # noqa: E731
    warmup = blackjax.window_adaptation(blackjax.nuts, logdensity)
    (state, params), _ = warmup.run(jax.random.key(3), info.param_info.z, num_steps=300)
    kernel = jax.jit(blackjax.nuts(logdensity, **params).step)

    def one(state, k):
        state, _ = kernel(k, state)
        return state, state.position["x"]

    _, bj = jax.lax.scan(one, state, jax.random.split(jax.random.key(4), 4000))
    bj = np.asarray(bj)
    np.testing.assert_allclose(bj.mean(0), MEAN, atol=0.07)
    np.testing.assert_allclose(np.cov(bj.T), COV, atol=0.04)


def test_prior_from_a_loaded_energy_reads_no_file(tmp_path):
    """EBMPrior(energy) is pure: the card (level, sampler settings, stored log Z) travels with the
    loaded energy, so the folder can be gone by the time the prior is built."""
    import shutil

    import ebm_ppl
    from ebm_ppl import checkpoint

    folder = tmp_path / "digits-dsm"
    shutil.copytree("models/digits-dsm", folder)
    energy = ebm_ppl.load(folder)
    expected = EBMPrior.from_checkpoint(folder)
    shutil.rmtree(folder)
    prior = EBMPrior(energy)
    assert prior.noise_level == expected.noise_level == 2
    assert float(prior.log_z) == float(expected.log_z) == pytest.approx(-68.1594, abs=1e-4)
    assert prior.log_z_info["level"] == 2 and prior.log_z_stderr == expected.log_z_stderr
    assert prior.progressive_kwargs == expected.progressive_kwargs
    with pytest.raises(checkpoint.CheckpointError):
        EBMPrior(folder)
