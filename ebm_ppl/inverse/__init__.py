"""Bayesian linear inverse problems with noise-conditional energies as priors.

    obs = A x + n,  n ~ N(0, noise_std^2 I),  x ~ EBMPrior(ckpt)

* :mod:`~ebm_ppl.inverse.operators`: inpainting, denoising, blur, downsampling, compressed
  sensing, with exact adjoints and dense matrices; :func:`from_name` parses ``inpaint:half``,
  ``denoise:0.2``, ``blur:gauss1``, ``sr:2``, ``cs:0.3``, ...
* :func:`posterior_model`: the NumPyro model ``model(y=None)``.
* :func:`sample_posterior`: likelihood-tempered SMC (BlackJAX, :func:`smc_posterior`) then NUTS, at
  the prior's evaluation level, many problems and chains at once; :func:`estimate_cost` says how
  long a run with the same config takes before it starts.
* :mod:`~ebm_ppl.inverse.reference`: Gaussian-prior baseline and exact mixture posteriors.
* :mod:`~ebm_ppl.inverse.metrics`: PSNR, SSIM, interval coverage, calibration curves.

See docs/inverse.md.
"""

from __future__ import annotations

from ebm_ppl.distribution import EBMPrior
from ebm_ppl.inverse.budget import CostEstimate, estimate_cost
from ebm_ppl.inverse.metrics import calibration_curve, coverage, psnr, sample_coverage, ssim
from ebm_ppl.inverse.operators import (
    Blur,
    CompressedSensing,
    Denoise,
    Downsample,
    Inpaint,
    LinearOperator,
    from_name,
)
from ebm_ppl.inverse.posterior import (
    PosteriorConfig,
    PosteriorResult,
    annealed_log_likelihood_fn,
    credible_interval,
    posterior_log_density_fn,
    sample_posterior,
)
from ebm_ppl.inverse.reference import exact_posterior, fit_gaussian, gaussian_posterior
from ebm_ppl.inverse.smc import SMCConfig, smc_posterior

__all__ = [
    "LinearOperator",
    "Inpaint",
    "Denoise",
    "Blur",
    "Downsample",
    "CompressedSensing",
    "from_name",
    "posterior_model",
    "as_prior",
    "sample_posterior",
    "PosteriorConfig",
    "PosteriorResult",
    "estimate_cost",
    "CostEstimate",
    "smc_posterior",
    "SMCConfig",
    "annealed_log_likelihood_fn",
    "posterior_log_density_fn",
    "credible_interval",
    "fit_gaussian",
    "gaussian_posterior",
    "exact_posterior",
    "psnr",
    "ssim",
    "coverage",
    "sample_coverage",
    "calibration_curve",
]


def as_prior(prior):
    """An :class:`ebm_ppl.distribution.EBMPrior` from an EBMPrior, a bound energy or a checkpoint
    path. Without a known log Z it uses log Z = 0: the posterior does not depend on it (only the
    model evidence does)."""
    if isinstance(prior, EBMPrior):
        return prior if prior.has_log_z else EBMPrior(prior.energy, prior.noise_level, log_z=0.0)
    dist = EBMPrior(prior)
    return dist if dist.has_log_z else EBMPrior(dist.energy, 0, log_z=0.0)


def posterior_model(prior, operator, noise_std: float):
    """NumPyro model ``model(y=None)``: ``x ~ prior``, ``y ~ Normal(A x, noise_std)`` (M
    independent entries). ``prior``: an EBMPrior, a bound energy or a checkpoint path. The same
    model by hand::

        def model(y=None):
            x = numpyro.sample("x", EBMPrior(ckpt))
            numpyro.sample("y", dist.Normal(A(x), noise_std).to_event(1), obs=y)
    """
    import numpyro
    import numpyro.distributions as dist

    prior = as_prior(prior)
    if tuple(prior.event_shape) != tuple(operator.data_shape):
        raise ValueError(f"operator acts on {operator.data_shape} but the prior's event shape is {prior.event_shape}")
    noise_std = float(noise_std)
    if not noise_std > 0:
        raise ValueError(f"noise_std must be positive, got {noise_std}")

    def model(y=None):
        x = numpyro.sample("x", prior)
        numpyro.sample("y", dist.Normal(operator(x), noise_std).to_event(1), obs=y)

    return model
