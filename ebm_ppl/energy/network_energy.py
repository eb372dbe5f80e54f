"""A Flax energy network bound to its variables: the neural implementation of the protocol.

    f(y, t) = net(y, t) / s_t^2  -  |y|^2 / (2 base_variance)

``s_t^2`` is ``schedule.energy_scales[t]`` (the official DRL code divides the network output by
the squared Langevin step size of the level). The optional Gaussian base term (``base_variance``,
``None`` to omit it as the official code does) makes every level normalisable whatever the
network does far from the data: a spectrally normalised network grows at most linearly, the base
term falls quadratically (see docs/models.md on energies that are not densities).
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

from ebm_ppl.energy.base import Energy, register_pytree
from ebm_ppl.schedules import Schedule

__all__ = ["NetworkEnergy"]


@register_pytree(data_fields=("variables",), static_fields=("module", "schedule", "data_shape", "base_variance"))
class NetworkEnergy(Energy):
    """A bound neural energy.

    Args:
      module: a Flax linen module, ``module.apply(variables, y, t) -> (B,)`` for y of shape
        (B, *data_shape) and integer t of shape (B,) (see :mod:`ebm_ppl.energy.networks`).
      variables: its variables (``{"params": ..., maybe "batch_stats": ...}``); the leaves.
      schedule: the schedule it was trained on.
      data_shape: shape of one example.
      base_variance: variance of the Gaussian base term, or None for none.
    """

    def __init__(self, module, variables, schedule: Schedule, data_shape, base_variance: float | None = None):
        self.module = module
        self.variables = variables
        self.schedule = schedule
        self.data_shape = tuple(int(s) for s in data_shape)
        self.base_variance = None if base_variance is None else float(base_variance)

    def __repr__(self):
        return f"NetworkEnergy({type(self.module).__name__}, data_shape={self.data_shape}, schedule={self.schedule.name!r})"

    def replace(self, **changes) -> NetworkEnergy:
        """A copy with some fields replaced (``variables=...`` for new parameters)."""
        fields = {n: getattr(self, n) for n in ("module", "variables", "schedule", "data_shape", "base_variance")}
        fields.update(changes)
        return NetworkEnergy(**fields)

    def network_output(self, y, t) -> jax.Array:
        """Raw net(y, t), shape ``batch``; y (*batch, *data_shape), t integer broadcastable to batch."""
        batch_shape = y.shape[: y.ndim - self.event_ndim]
        n = math.prod(batch_shape)
        y_flat = y.reshape((n,) + self.data_shape)
        t_flat = jnp.broadcast_to(jnp.asarray(t, jnp.int32), batch_shape).reshape(n)
        out = self.module.apply(self.variables, y_flat, t_flat)
        return out.reshape(batch_shape)

    def _learned_log_density(self, y, t):
        scales = jnp.asarray(self.schedule.energy_scales, y.dtype)
        f = self.network_output(y, t) / scales[t]
        if self.base_variance is not None:
            f = f - 0.5 * jnp.sum(jnp.square(y), axis=tuple(range(-self.event_ndim, 0))) / self.base_variance
        return f
