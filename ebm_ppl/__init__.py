"""ebm_ppl: learned energy-based models as first-class probability densities in NumPyro."""

__version__ = "0.1.0"

from ebm_ppl import schedules
from ebm_ppl.energy import GaussianOracle, MixtureOracle, NetworkEnergy, target

__all__ = ["schedules", "GaussianOracle", "MixtureOracle", "NetworkEnergy", "target", "__version__"]

from ebm_ppl.distribution import EBMPrior  # noqa: E402
from ebm_ppl.likelihood import bits_per_dim  # noqa: E402

__all__ += ["EBMPrior", "bits_per_dim"]

from ebm_ppl.checkpoint import CheckpointError, load, read_config  # noqa: E402

__all__ += ["load", "read_config", "CheckpointError"]
