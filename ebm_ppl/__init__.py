"""ebm_ppl: learned energy-based models as first-class probability densities in NumPyro."""

__version__ = "0.1.0"

from ebm_ppl import schedules
from ebm_ppl.energy import GaussianOracle, MixtureOracle, NetworkEnergy, target

__all__ = ["schedules", "GaussianOracle", "MixtureOracle", "NetworkEnergy", "target", "__version__"]
