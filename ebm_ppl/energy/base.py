"""The noise-conditional energy protocol every model, oracle and plain target implements.

A *bound energy* (parameters included) exposes

* ``log_density(y, t)``: the unnormalised log density f(y_t, t) of level ``t`` in model space,
  for ``t = 0..T-1``; level ``T`` is the standard normal exactly (``-|y|^2 / 2``, log Z_T =
  D/2 log 2 pi). ``y`` has shape ``(*batch, *data_shape)``, ``t`` an integer or an integer
  array broadcastable to ``batch``; the result has shape ``batch``.
* ``score(y, t)``: its gradient in ``y``, shape of ``y``.
* ``schedule`` (:class:`ebm_ppl.schedules.Schedule`), ``data_shape``, ``num_levels``.
* the map between data space and model space, ``y_0 = a x_0`` with ``a = sqrt(1 - sigma_1^2)``:
  ``to_model(x)``, ``to_data(y)``, ``data_scale``.

:func:`logdensity_fn` is what samplers, estimators and the NumPyro distribution consume: the
density of one level in data space (x_t = y_t / c_t, c_t = ``schedule.model_scales[t]``) is
``f(c_t x, t) + D log c_t``; the rule is written here once (:func:`level_scale` gives c_t).

Energies are registered pytrees: their arrays (network parameters, oracle moments) are leaves,
their configuration is static, so they pass through ``jit``, ``vmap`` and ``lax.scan``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl.schedules import Schedule

__all__ = [
    "Energy",
    "register_pytree",
    "standard_normal_log_density",
    "check_model_input",
    "level_scale",
    "logdensity_fn",
]

SPACES = ("data", "model")


def register_pytree(*, data_fields: tuple[str, ...], static_fields: tuple[str, ...]):
    """Class decorator: register ``cls`` as a pytree whose ``data_fields`` attributes are leaves
    and ``static_fields`` are auxiliary data. Unflattening bypasses ``__init__`` (so validation
    in ``__init__`` never sees tracers or placeholder leaves)."""

    def wrap(cls):
        def flatten(obj):
            return tuple(getattr(obj, n) for n in data_fields), tuple(getattr(obj, n) for n in static_fields)

        def unflatten(aux, children):
            obj = object.__new__(cls)
            for n, v in zip(data_fields, children):
                object.__setattr__(obj, n, v)
            for n, v in zip(static_fields, aux):
                object.__setattr__(obj, n, v)
            return obj

        jax.tree_util.register_pytree_node(cls, flatten, unflatten)
        cls._data_fields, cls._static_fields = tuple(data_fields), tuple(static_fields)
        return cls

    return wrap


def standard_normal_log_density(y: jax.Array, event_ndim: int) -> jax.Array:
    """Unnormalised N(0, I) log density -|y|^2/2 summed over the last ``event_ndim`` axes."""
    return -0.5 * jnp.sum(jnp.square(y), axis=tuple(range(-event_ndim, 0)))


def level_scale(energy, level: int, space: str = "data") -> float:
    """c with y_t = c x for level ``level`` in 0..T: ``schedule.model_scales[level]`` in ``"data"``
    space (c_0 = a, the data scale; c_T = 1), 1 in ``"model"`` space."""
    if space not in SPACES:
        raise ValueError(f"space must be 'data' or 'model', got {space!r}")
    if not 0 <= int(level) <= energy.num_levels:
        raise ValueError(f"level {level} out of range 0..{energy.num_levels}")
    return 1.0 if space == "model" else float(energy.schedule.model_scales[int(level)])


def logdensity_fn(energy, level: int, space: str = "data"):
    """``x -> log density of level ``level`` at x`` (unnormalised: log Z_level not subtracted), for x of
    shape (*batch, *data_shape) and a result of shape ``batch``. ``"data"`` space: the law of
    x_t = y_t / c_t, ``f(c_t x, t) + D log c_t``; ``"model"`` space: ``f(y, t)``. Works for any object
    of the energy protocol (``log_density``, ``schedule``, ``num_levels``, ``dim``)."""
    c = level_scale(energy, level, space)
    log_jacobian = energy.dim * math.log(c)
    t = int(level)

    def logdensity(x):
        return energy.log_density(c * x, t) + log_jacobian

    return logdensity


def check_model_input(y, data_shape: tuple[int, ...], where: str) -> jax.Array:
    """Validate that ``y`` is a floating array of shape (*batch, *data_shape); return it as jax."""
    dtype = getattr(y, "dtype", None)
    if dtype is None:
        y = np.asarray(y)
        dtype = y.dtype
    if not jnp.issubdtype(dtype, jnp.floating):
        raise TypeError(f"{where}: expected a floating-point array, got dtype {dtype}")
    shape = tuple(jnp.shape(y))
    k = len(data_shape)
    if len(shape) < k or shape[len(shape) - k :] != tuple(data_shape):
        raise ValueError(f"{where}: expected shape (*batch, {', '.join(map(str, data_shape))}), got {shape}")
    return jnp.asarray(y)


class Energy:
    """Base class of bound noise-conditional energies (see the module docstring).

    Subclasses are registered with :func:`register_pytree`, hold ``schedule`` and ``data_shape``
    as static fields and implement ``_learned_log_density(y, t)`` for ``y`` of shape (*batch, *data_shape) and an
    integer ``t`` in ``0..T-1`` (possibly traced, broadcastable to ``batch``).
    """

    schedule: Schedule
    data_shape: tuple[int, ...]

    # -- protocol -------------------------------------------------------------------------
    @property
    def num_levels(self) -> int:
        return self.schedule.num_levels

    @property
    def event_ndim(self) -> int:
        return len(self.data_shape)

    @property
    def dim(self) -> int:
        """D, the number of scalars in one example."""
        return int(math.prod(self.data_shape))

    @property
    def data_scale(self) -> float:
        """a = sqrt(1 - sigma_1^2) with y_0 = a x_0."""
        return self.schedule.data_scale

    def logdensity_fn(self, level: int, space: str = "data"):
        """:func:`logdensity_fn` of this energy: ``x -> f(c_t x, t) + D log c_t`` (data space)."""
        return logdensity_fn(self, level, space)

    def to_model(self, x: jax.Array) -> jax.Array:
        """Data space -> model space at level 0: y_0 = a x_0."""
        return self.data_scale * x

    def to_data(self, y: jax.Array) -> jax.Array:
        """Model space at level 0 -> data space: x_0 = y_0 / a."""
        return y / self.data_scale

    def log_density(self, y, t) -> jax.Array:
        """Unnormalised log density f(y, t), shape ``batch``; t = T gives -|y|^2/2."""
        y = check_model_input(y, self.data_shape, f"{type(self).__name__}.log_density")
        t = jnp.asarray(t)
        if not jnp.issubdtype(t.dtype, jnp.integer):
            raise TypeError(f"{type(self).__name__}.log_density: the level t must be an integer, got {t.dtype}")
        T = self.num_levels
        if t.ndim == 0 and not isinstance(t, jax.core.Tracer):
            level = int(t)
            if not 0 <= level <= T:
                raise ValueError(f"level t={level} out of range 0..{T}")
            if level == T:
                return standard_normal_log_density(y, self.event_ndim)
            return self._learned_log_density(y, t)
        learned = self._learned_log_density(y, jnp.clip(t, 0, T - 1))
        top = standard_normal_log_density(y, self.event_ndim)
        return jnp.where(t >= T, top, learned)

    def score(self, y, t) -> jax.Array:
        """grad_y f(y, t), the shape of ``y``."""
        y = check_model_input(y, self.data_shape, f"{type(self).__name__}.score")
        return jax.grad(lambda v: jnp.sum(self.log_density(v, t)))(y)

    def value_and_score(self, y, t) -> tuple[jax.Array, jax.Array]:
        """(f(y, t), grad_y f(y, t)) in one pass."""
        y = check_model_input(y, self.data_shape, f"{type(self).__name__}.value_and_score")
        value, pullback = jax.vjp(lambda v: self.log_density(v, t), y)
        return value, pullback(jnp.ones_like(value))[0]

    def log_z(self, t: int):
        """log Z_t when it is known exactly (oracles; level T for everyone), else ``None``."""
        if int(t) == self.num_levels:
            return 0.5 * self.dim * math.log(2 * math.pi)
        return None

    def _learned_log_density(self, y, t):  # pragma: no cover - abstract
        raise NotImplementedError
