"""ebm_ppl: learned energy-based models as first-class probability densities in NumPyro.

The public API:

* energies: :func:`load` (a checkpoint), :func:`target` (a named analytic target),
  :class:`GaussianOracle`, :class:`MixtureOracle`, :class:`NetworkEnergy`, :mod:`schedules`;
* the NumPyro distribution :class:`EBMPrior` and :func:`bits_per_dim`;
* submodules: ``ebm_ppl.logz`` (AIS, ladder, SMC), ``ebm_ppl.likelihood`` (bits/dim, ELBO, ODE),
  ``ebm_ppl.sampling`` (progressive, HMC/NUTS, long-run, drifting), ``ebm_ppl.inverse``,
  ``ebm_ppl.diagnostics``, ``ebm_ppl.data``, ``ebm_ppl.metrics``, ``ebm_ppl.train``,
  ``ebm_ppl.sharding``.
"""

from ebm_ppl import schedules
from ebm_ppl._version import __version__
from ebm_ppl.checkpoint import CheckpointError, load, read_config
from ebm_ppl.distribution import EBMPrior
from ebm_ppl.energy import GaussianOracle, MixtureOracle, NetworkEnergy, target
from ebm_ppl.likelihood import bits_per_dim

__all__ = [
    "__version__",
    "schedules",
    "load",
    "read_config",
    "CheckpointError",
    "target",
    "GaussianOracle",
    "MixtureOracle",
    "NetworkEnergy",
    "EBMPrior",
    "bits_per_dim",
]
