"""ebm_ppl.agreement: the sampler-vs-density checks go green on exact samplers and red on wrong ones."""

import jax
import numpy as np
import pytest

from ebm_ppl import EBMPrior, agreement, schedules
from ebm_ppl.energy import GaussianOracle

MEAN = np.array([0.3, -0.2])
COV = np.array([[0.20, 0.06], [0.06, 0.10]])


@pytest.fixture(scope="module")
def gauss_prior():
    return EBMPrior(GaussianOracle(MEAN, COV, schedules.drl(6)))


def test_histogram_tv_of_exact_draws_sits_at_its_null(gauss_prior):
    """Exact draws: TV is a draw from the null (mean ~0.06 at 4000 draws in 0.2 cells over this
    Gaussian, sd ~0.005 from 20 null draws): within 4 null sds of its mean. All mass in bounds."""
    r = agreement.histogram_tv_2d(jax.random.key(0), gauss_prior, num_samples=4000)
    assert abs(r.mass_in_bounds - 1.0) < 1e-3
    assert r.fraction_in_bounds == 1.0
    assert 0.02 < r.null_tv < 0.12
    assert abs(r.tv - r.null_tv) < 4 * r.null_tv_sd + 0.01


def test_histogram_tv_flags_a_sampler_that_draws_another_law(gauss_prior):
    """Draws from N(mean + 0.3, cov): the histograms differ by far more than the null."""
    rng = np.random.default_rng(1)
    wrong = rng.multivariate_normal(MEAN + 0.3, COV, size=4000)
    r = agreement.histogram_tv_2d(jax.random.key(0), gauss_prior, samples=wrong)
    assert r.tv > r.null_tv + 0.2


def test_histogram_tv_rejects_bad_grids(gauss_prior):
    with pytest.raises(ValueError, match="multiple of grid_spacing"):
        agreement.histogram_tv_2d(jax.random.key(0), gauss_prior, cell=0.03, grid_spacing=0.02)


def test_mmd_permutation_test_has_a_calibrated_null_and_power():
    """Same law: p-values of 40 independent tests are roughly uniform (mean 0.5 +- 0.05 for 40
    draws of U(0,1), sd 0.29/sqrt(40) = 0.046; bound at 2.2 sd). Shifted law: p at its floor."""
    rng = np.random.default_rng(0)
    ps = [
        agreement.mmd_permutation_test(
            jax.random.key(i), rng.normal(size=(60, 3)), rng.normal(size=(60, 3)), num_permutations=99
        ).p_value
        for i in range(40)
    ]
    assert abs(np.mean(ps) - 0.5) < 0.1
    r = agreement.mmd_permutation_test(
        jax.random.key(0), rng.normal(size=(60, 3)), rng.normal(size=(60, 3)) + 0.8, num_permutations=99
    )
    assert r.p_value == pytest.approx(0.01)


def test_mcmc_on_log_prob_agrees_with_an_exact_sampler_and_not_with_a_wrong_one(gauss_prior):
    """Exact draws as the 'sampler': NUTS chains started there stay (R-hat ~1, no MMD signal). A
    sampler that draws too wide (covariance x4, as an over-smoothed sampler does): the chains
    contract onto the density and their last states no longer match fresh draws (p at its floor).
    Chains cannot move mass between well-separated modes, so this check does not see wrong mode
    weights: that is what the 2-D histogram and the digits class histogram are for."""
    good = agreement.mcmc_agreement(
        jax.random.key(0), gauss_prior, num_chains=128, num_warmup=100, num_draws=100, num_permutations=99
    )
    assert good.rhat < 1.02
    assert good.test.p_value > 0.01
    assert abs(good.mean_log_prob_end - good.mean_log_prob_start) < 0.3  # both ~ E[log p] (sd 1/sqrt(128))

    wide = EBMPrior(GaussianOracle(MEAN, 4 * COV, schedules.drl(6)))

    class Mismatched:
        """log_prob of N(mean, cov), sample of N(mean, 4 cov)."""

        event_shape = gauss_prior.event_shape
        unnormalized_log_prob = staticmethod(gauss_prior.unnormalized_log_prob)
        sample = staticmethod(wide.sample)

    bad = agreement.mcmc_agreement(
        jax.random.key(0), Mismatched(), num_chains=128, num_warmup=100, num_draws=100, num_permutations=99
    )
    assert bad.test.p_value <= 0.02
    assert bad.mean_log_prob_end - bad.mean_log_prob_start > 1.0  # E log p: -1.5 + c at cov, -6 + c at 4 cov
