"""The energy protocol as typing Protocols, with the optional capabilities code may rely on.

Every sampler and estimator takes a :class:`NoiseConditionalEnergy`: the base class
:class:`ebm_ppl.energy.Energy` implements it, and so may any object of the user's with the same
members. What only some energies can do is a *capability*, a Protocol of its own, tested with
``isinstance`` (never by probing attributes by hand or by testing for a concrete class):

* :class:`ExactSampler`: ``sample(rng_key, n, t)`` (model space y_t) and ``sample_data(rng_key, n)``
  (oracles, plain targets);
* :class:`KnownMoments`: ``mean(t)``, ``covariance(t)`` in model space (oracles, banana);
* :class:`HasModes`: ``num_modes`` and ``modes(x)``, an integer label per data point (mixtures, wells);
* :class:`HasWells`: ``well_signs(x)``, which well each coordinate pair is in (many-well);
* :class:`ExactRecovery`: ``conditional(x_next, t)``, the exact p(y_t | x_{t+1}) (oracles);
* :class:`GaussianMixtureParameters`: ``log_weights``, ``means``, ``eigvecs``, ``eigvals`` of a
  level-0 Gaussian mixture, so every noised level has a closed form (oracles);
* :class:`NetworkBacked`: ``module`` and ``variables``, a bound Flax network (trained models).

A known log Z is not a capability of the class but of a level: ``energy.log_z(t)`` returns the
exact value or ``None`` (:func:`known_log_z`). A fully convolutional network (one that can be
evaluated on images of any size and tiled) is a :class:`NetworkBacked` energy whose module is a
:class:`FullyConvolutionalModule` (:func:`receptive_field`).
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import jax

from ebm_ppl.schedules import Schedule

__all__ = [
    "NoiseConditionalEnergy",
    "ExactSampler",
    "KnownMoments",
    "HasModes",
    "HasWells",
    "ExactRecovery",
    "GaussianMixtureParameters",
    "NetworkBacked",
    "FullyConvolutionalModule",
    "LoadedFromCheckpoint",
    "check_energy",
    "known_log_z",
    "mode_labels",
    "receptive_field",
]


@runtime_checkable
class NoiseConditionalEnergy(Protocol):
    """A bound noise-conditional energy (see :mod:`ebm_ppl.energy.base` for the semantics)."""

    schedule: Schedule
    data_shape: tuple[int, ...]

    @property
    def num_levels(self) -> int: ...

    @property
    def dim(self) -> int: ...

    @property
    def data_scale(self) -> float: ...

    def log_density(self, y, t) -> jax.Array: ...

    def score(self, y, t) -> jax.Array: ...

    def log_z(self, t) -> float | None: ...


@runtime_checkable
class ExactSampler(Protocol):
    """Exact draws: ``sample(rng_key, n, t)`` of y_t, shape (n, *data_shape); ``sample_data(rng_key,
    n)`` of the data x_0."""

    def sample(self, rng_key, n: int, t: int = 0) -> jax.Array: ...

    def sample_data(self, rng_key, n: int) -> jax.Array: ...


@runtime_checkable
class KnownMoments(Protocol):
    """Closed-form mean (D,) and covariance (D, D) of y_t."""

    def mean(self, t: int = 0) -> jax.Array: ...

    def covariance(self, t: int = 0) -> jax.Array: ...


@runtime_checkable
class HasModes(Protocol):
    """A notion of modes: ``modes(x)`` labels data-space points (n, *data_shape) with integers in
    ``0..num_modes - 1``."""

    num_modes: int

    def modes(self, x) -> jax.Array: ...


@runtime_checkable
class HasWells(Protocol):
    """Wells per coordinate pair: ``well_signs(x)`` is (n, D/2) booleans (the many-well targets)."""

    def well_signs(self, x) -> jax.Array: ...


@runtime_checkable
class ExactRecovery(Protocol):
    """The exact recovery conditional p(y_t | x_{t+1}) as a Gaussian mixture (weights, means, covs)."""

    def conditional(self, x_next, t) -> tuple[jax.Array, jax.Array, jax.Array]: ...


@runtime_checkable
class GaussianMixtureParameters(Protocol):
    """Level 0 is a Gaussian mixture with these parameters (model space; covariances by eigen-
    decomposition ``eigvecs diag(eigvals) eigvecs^T``): any noised level has a closed form."""

    log_weights: jax.Array  # (K,)
    means: jax.Array  # (K, D)
    eigvecs: jax.Array  # (K, D, D)
    eigvals: jax.Array  # (K, D)


@runtime_checkable
class NetworkBacked(Protocol):
    """A Flax module bound to its variables (evaluation cost is a network's, not a formula's)."""

    module: Any
    variables: Any


@runtime_checkable
class FullyConvolutionalModule(Protocol):
    """A network module that runs on images of any size, with the receptive field of one output."""

    @property
    def receptive_field(self) -> int: ...


@runtime_checkable
class LoadedFromCheckpoint(Protocol):
    """An energy read from a checkpoint folder: its path and card (:class:`ebm_ppl.checkpoint.ModelCard`)."""

    checkpoint_path: str
    checkpoint_card: Any


def check_energy(energy, where: str) -> None:
    """Raise a TypeError naming ``where`` unless ``energy`` follows :class:`NoiseConditionalEnergy`."""
    if not isinstance(energy, NoiseConditionalEnergy):
        raise TypeError(
            f"{where}: expected a noise-conditional energy (ebm_ppl.energy protocol: log_density, score, "
            f"log_z, schedule, data_shape, num_levels), got {type(energy).__name__}"
        )


def known_log_z(energy, t: int) -> float | None:
    """The exact log Z of level ``t`` when the energy knows it, else None."""
    value = energy.log_z(t)
    return None if value is None else float(value)


def mode_labels(energy, x) -> jax.Array | None:
    """Integer mode label of each data-space point (n, *data_shape), or None when the energy has
    fewer than two modes or no notion of them."""
    if isinstance(energy, HasModes) and int(energy.num_modes) > 1:
        return energy.modes(x)
    return None


def receptive_field(energy) -> int | None:
    """Receptive field in pixels of a fully convolutional network energy, else None."""
    if isinstance(energy, NetworkBacked) and isinstance(energy.module, FullyConvolutionalModule):
        return int(energy.module.receptive_field)
    return None
