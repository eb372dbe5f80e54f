"""Noise-conditional energies: the protocol and its capabilities, analytic oracles, named targets and networks."""

from ebm_ppl.energy.base import (
    Energy,
    check_model_input,
    level_scale,
    logdensity_fn,
    register_pytree,
    standard_normal_log_density,
)
from ebm_ppl.energy.network_energy import NetworkEnergy
from ebm_ppl.energy.oracles import GaussianOracle, MixtureOracle, gaussian_mixture_posterior, mixture_log_prob
from ebm_ppl.energy.protocol import (
    ExactRecovery,
    ExactSampler,
    GaussianMixtureParameters,
    HasModes,
    HasWells,
    KnownMoments,
    LoadedFromCheckpoint,
    NetworkBacked,
    NoiseConditionalEnergy,
    check_energy,
    mode_labels,
)
from ebm_ppl.energy.targets import register_target, target, target_names

__all__ = [
    "NoiseConditionalEnergy",
    "ExactSampler",
    "KnownMoments",
    "HasModes",
    "HasWells",
    "ExactRecovery",
    "GaussianMixtureParameters",
    "NetworkBacked",
    "LoadedFromCheckpoint",
    "check_energy",
    "mode_labels",
    "Energy",
    "NetworkEnergy",
    "GaussianOracle",
    "MixtureOracle",
    "gaussian_mixture_posterior",
    "mixture_log_prob",
    "target",
    "target_names",
    "register_target",
    "register_pytree",
    "check_model_input",
    "standard_normal_log_density",
    "level_scale",
    "logdensity_fn",
]
