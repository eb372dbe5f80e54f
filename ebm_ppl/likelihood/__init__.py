"""Likelihood of data under a prior (see docs/likelihood.md).

* :mod:`~ebm_ppl.likelihood.dequantised`: bits/dim of a prior with a log Z (AIS), uniform
  dequantisation, the log-Z part of the standard error (:func:`bits_per_dim`).
* :mod:`~ebm_ppl.likelihood.elbo` (:mod:`~ebm_ppl.likelihood.elbo_discrete`,
  :mod:`~ebm_ppl.likelihood.elbo_continuous`): the diffusion ELBOs, lower bounds that need no log Z.
* :mod:`~ebm_ppl.likelihood.ode`: the probability-flow ODE log-likelihood (an estimate, not a bound).
* :mod:`~ebm_ppl.likelihood.log_z_free`: bits/dim from the ELBO or the ODE, on the same footing as
  :func:`bits_per_dim`.
* :mod:`~ebm_ppl.likelihood.common`: the continuous clock and Gaussian reference they share.
"""

from ebm_ppl.likelihood.common import ContinuousTime, GaussianReference, LikelihoodEstimate, gaussian_reference
from ebm_ppl.likelihood.dequantised import BitsPerDim, bits_per_dim, data_facts
from ebm_ppl.likelihood.elbo import ELBO_METHODS, continuous_elbo, discrete_elbo, elbo
from ebm_ppl.likelihood.log_z_free import bits_per_dim_without_log_z, training_reference
from ebm_ppl.likelihood.ode import ode_log_prob

__all__ = [
    "BitsPerDim",
    "bits_per_dim",
    "data_facts",
    "elbo",
    "discrete_elbo",
    "continuous_elbo",
    "ode_log_prob",
    "bits_per_dim_without_log_z",
    "training_reference",
    "LikelihoodEstimate",
    "ContinuousTime",
    "ELBO_METHODS",
    "GaussianReference",
    "gaussian_reference",
]
