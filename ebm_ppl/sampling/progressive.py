"""Progressive sampling (Gao et al. 2021, Algorithm 2) as a BlackJAX-style kernel.

Start at x_T ~ N(0, I). For t = T-1, ..., 0 sample the recovery conditional

    p(y_t | x_{t+1})  proportional to  exp(f(y_t, t) - |x_{t+1} - y_t|^2 / (2 sigma_{t+1}^2))

from y_t = x_{t+1}, then set x_t = y_t / sqrt(1 - sigma_{t+1}^2). One kernel step moves one level
down. Inner samplers: ``"langevin"`` (the paper: K unadjusted steps of size b c_t sigma_{t+1},
eq. 17) and ``"normal"`` (the T1k normal approximation N(x_{t+1} + sigma^2 grad f, sigma^2), K = 0).

Positions are single examples (shape ``data_shape``); ``jax.vmap`` runs many chains.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp

__all__ = [
    "ProgressiveState",
    "ProgressiveInfo",
    "recovery_log_density",
    "init",
    "build_kernel",
    "sample",
    "INNER_SAMPLERS",
]

INNER_SAMPLERS = ("langevin", "normal")


class ProgressiveState(NamedTuple):
    """position: x_t in the diffusion's own scale, shape data_shape; level: t (int32 scalar)."""

    position: jax.Array
    level: jax.Array


class ProgressiveInfo(NamedTuple):
    """Per level: the recovery log density at the final y_t and the mean squared move."""

    log_density: jax.Array
    mean_square_move: jax.Array


def recovery_log_density(energy, y, x_next, t, sigma) -> jax.Array:
    """f(y, t) - |x_next - y|^2 / (2 sigma^2), the unnormalised log p(y_t | x_{t+1})."""
    axes = tuple(range(-energy.event_ndim, 0))
    return energy.log_density(y, t) - 0.5 * jnp.sum(jnp.square(x_next - y), axis=axes) / sigma**2


def init(position: jax.Array, energy) -> ProgressiveState:
    """A chain at level T holding ``position`` (normally a N(0, I) draw)."""
    return ProgressiveState(jnp.asarray(position), jnp.asarray(energy.num_levels, jnp.int32))


def build_kernel(inner: str = "langevin", num_inner_steps: int = 30, step_scale: float = 1.0) -> Callable:
    """Kernel ``kernel(key, state, energy) -> (state, info)`` that moves one level down.

    Args:
      inner: ``"langevin"`` or ``"normal"``.
      num_inner_steps: K, Langevin steps per level (ignored by ``"normal"``).
      step_scale: multiplies the schedule's squared Langevin step sizes.
    """
    if inner not in INNER_SAMPLERS:
        raise ValueError(f"unknown inner sampler {inner!r}; choose one of {INNER_SAMPLERS}")
    if num_inner_steps < 1 and inner == "langevin":
        raise ValueError("num_inner_steps must be >= 1 for Langevin")

    def kernel(key, state: ProgressiveState, energy):
        sched = energy.schedule
        t = state.level - 1
        x_next = state.position
        sigma = jnp.asarray(sched.conditional_sigmas, x_next.dtype)[t]
        c_t = jnp.asarray(sched.model_scales, x_next.dtype)[t]
        conditional = lambda y: recovery_log_density(energy, y, x_next, t, sigma)  # noqa: E731

        if inner == "normal":
            mean = x_next + sigma**2 * energy.score(x_next, t)
            y = mean + sigma * jax.random.normal(key, x_next.shape, x_next.dtype)
        else:
            step_sq = step_scale * jnp.asarray(sched.langevin_step_sizes, x_next.dtype)[t]

            def one_step(y, k):
                grad = jax.grad(conditional)(y)
                noise = jax.random.normal(k, y.shape, y.dtype)
                return y + 0.5 * step_sq * grad + jnp.sqrt(step_sq) * noise, None

            y, _ = jax.lax.scan(one_step, x_next, jax.random.split(key, num_inner_steps))
        info = ProgressiveInfo(conditional(y), jnp.mean(jnp.square(y - x_next)))
        return ProgressiveState(y / c_t, t), info

    return kernel


def sample(
    energy,
    key: jax.Array,
    num_samples: int,
    *,
    inner: str = "langevin",
    num_inner_steps: int = 30,
    step_scale: float = 1.0,
    return_levels: bool = False,
):
    """Progressive samples of the data x_0 (data space), shape (num_samples, *data_shape).

    With ``return_levels=True`` also returns x_t for every level, shape
    (T, num_samples, *data_shape), ordered t = T-1, ..., 0.
    """
    kernel = build_kernel(inner, num_inner_steps, step_scale)
    k_init, k_run = jax.random.split(key)
    x_top = jax.random.normal(k_init, (num_samples,) + tuple(energy.data_shape))
    states = jax.vmap(lambda x: init(x, energy))(x_top)

    def level_step(states, k):
        keys = jax.random.split(k, num_samples)
        states, _ = jax.vmap(kernel, in_axes=(0, 0, None))(keys, states, energy)
        return states, states.position

    states, trajectory = jax.lax.scan(level_step, states, jax.random.split(k_run, energy.num_levels))
    return (states.position, trajectory) if return_levels else states.position
