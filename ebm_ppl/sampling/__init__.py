"""Samplers for noise-conditional energies.

* :mod:`progressive`: Algorithm 2 of Gao et al. (2021) as a BlackJAX-style kernel (Langevin,
  normal approximation, MALA, HMC, NUTS inner samplers; per-level tuned steps);
* :mod:`hmc`: BlackJAX HMC/NUTS on one level of an energy or on any NumPyro model;
* :mod:`long_run`: the long-run chains of section 4.2;
* :mod:`numpyro_kernel`: ``ProgressiveKernel``, a NumPyro ``MCMCKernel``.
"""

from ebm_ppl.sampling import hmc, long_run, progressive

__all__ = ["progressive", "hmc", "long_run", "ProgressiveKernel"]


def __getattr__(name):
    if name == "ProgressiveKernel":
        from ebm_ppl.sampling.numpyro_kernel import ProgressiveKernel

        return ProgressiveKernel
    raise AttributeError(name)
