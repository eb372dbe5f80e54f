"""Likelihoods that need no log Z: the diffusion ELBOs and the probability-flow ODE
(see docs/likelihood.md). Re-exported by :mod:`ebm_ppl.likelihood`."""

from ebm_ppl.likelihood_bounds.common import ContinuousTime, GaussianReference, LikelihoodEstimate, gaussian_reference
from ebm_ppl.likelihood_bounds.elbo import ELBO_METHODS, continuous_elbo, discrete_elbo, elbo

__all__ = [
    "elbo",
    "discrete_elbo",
    "continuous_elbo",
    "LikelihoodEstimate",
    "ContinuousTime",
    "ELBO_METHODS",
    "GaussianReference",
    "gaussian_reference",
]
from ebm_ppl.likelihood_bounds.ode import ode_log_prob  # noqa: E402

__all__ += ["ode_log_prob"]
from ebm_ppl.likelihood_bounds.bpd import bits_per_dim_without_log_z, training_reference  # noqa: E402

__all__ += ["bits_per_dim_without_log_z", "training_reference"]
