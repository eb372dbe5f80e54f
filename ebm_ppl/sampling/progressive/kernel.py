"""Progressive kernel: the recovery conditional, inner moves, chain starts and ``build_kernel``
(one level down). See :mod:`ebm_ppl.sampling.progressive`."""

from __future__ import annotations

from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl._jax_utils import inner_unroll

INNER_SAMPLERS = ("langevin", "normal", "mala", "hmc", "nuts")
MH_SAMPLERS = ("mala", "hmc", "nuts")
#: default acceptance targets of the pilot tuning
DEFAULT_TARGET_ACCEPTANCE = {"mala": 0.6, "hmc": 0.75, "nuts": 0.8}
#: the default inner sampler: MH-corrected, steps tuned per level (the paper's "langevin" is biased)
DEFAULT_INNER = "mala"
#: inner transitions per level K when none is given: the paper's 30 for langevin, 10 for the MH samplers
_DEFAULT_K = {"langevin": 30, "normal": 1, "mala": 10, "hmc": 10, "nuts": 10}


def default_start(inner: str) -> str:
    """Where each level's chain starts when none is given: ``"auto"`` (the normal-approximation draw,
    or x_{t+1} where that draw is absurd, then MH moves) for the MH samplers,
    ``"x_next"`` (Algorithm 2) otherwise. On gmm:64:4 (drl:50:linear) MALA K = 10 from x_next keeps
    acceptance at 0.07-0.5 and mode weights 0.14 / 0.36 for 0.1 / 0.4; from the normal draw
    acceptance is 0.57-0.74 and the weights are right. The normal draw alone is poor on coarse
    learned levels (digits-t6: overshoots to 1e7), where ``"auto"`` keeps x_{t+1}."""
    return "auto" if inner in MH_SAMPLERS else "x_next"


def default_num_inner_steps(inner: str) -> int:
    """K when none is given: 30 for ``"langevin"`` (the paper), 10 for the MH-corrected samplers."""
    return _DEFAULT_K.get(inner, 10)


class ProgressiveState(NamedTuple):
    """position: x_t in the diffusion's own scale, shape data_shape; level: t (int32 scalar)."""

    position: jax.Array
    level: jax.Array


class ProgressiveInfo(NamedTuple):
    """Per level: the conditional log density at the final y_t, the mean squared move and the
    mean MH acceptance probability of the inner chain (1 for the unadjusted samplers)."""

    log_density: jax.Array
    mean_square_move: jax.Array
    acceptance_rate: jax.Array = jnp.float32(1.0)


def recovery_log_density(energy, y, x_next, t, sigma) -> jax.Array:
    """f(y, t) - |x_next - y|^2 / (2 sigma^2), the unnormalised log p(y_t | x_{t+1})."""
    axes = tuple(range(-energy.event_ndim, 0))
    return energy.log_density(y, t) - 0.5 * jnp.sum(jnp.square(x_next - y), axis=axes) / sigma**2


def _level_constants(energy, t, dtype):
    sched = energy.schedule
    sigma = jnp.asarray(sched.conditional_sigmas, dtype)[t]
    c_t = jnp.asarray(sched.model_scales, dtype)[t]
    return sigma, c_t


def conditional_log_density_fn(energy, x_next, t, log_likelihood_fn: Callable | None = None) -> Callable:
    """y -> log p(y_t | x_{t+1}) (+ log_likelihood_fn(y / c_t, t)), a scalar for one example."""
    sigma, c_t = _level_constants(energy, t, x_next.dtype)

    def logdensity(y):
        value = recovery_log_density(energy, y, x_next, t, sigma)
        if log_likelihood_fn is not None:
            value = value + log_likelihood_fn(y / c_t, t)
        return value

    return logdensity


def default_step_sizes(energy, inner: str = "langevin", step_scale: float = 1.0) -> jax.Array:
    """(T,) per-level steps: the schedule's delta_t^2 (times ``step_scale``) for langevin/mala,
    its square root for hmc/nuts (one leapfrog step of size eps equals a Langevin step eps^2)."""
    steps = step_scale * np.asarray(energy.schedule.langevin_step_sizes, np.float64)
    if inner in ("hmc", "nuts"):
        steps = np.sqrt(steps)
    return jnp.asarray(steps, jnp.float32)


def init(position: jax.Array, energy) -> ProgressiveState:
    """A chain at level T holding ``position`` (normally a N(0, I) draw)."""
    return ProgressiveState(jnp.asarray(position), jnp.asarray(energy.num_levels, jnp.int32))


def _one_move(inner: str, num_integration_steps: int) -> Callable:
    """move(key, y, logdensity, step) -> (y_new, acceptance): one inner transition."""
    import blackjax.mcmc.hmc as bj_hmc
    import blackjax.mcmc.mala as bj_mala
    import blackjax.mcmc.nuts as bj_nuts

    if inner == "langevin":

        def move(key, y, logdensity, step):
            grad = jax.grad(logdensity)(y)
            noise = jax.random.normal(key, y.shape, y.dtype)
            return y + 0.5 * step * grad + jnp.sqrt(step) * noise, jnp.ones((), y.dtype)

    elif inner == "mala":
        kernel = bj_mala.build_kernel()

        def move(key, y, logdensity, step):
            state, info = kernel(key, bj_mala.init(y, logdensity), logdensity, 0.5 * step)
            return state.position, info.acceptance_rate

    elif inner in ("hmc", "nuts"):
        kernel = bj_hmc.build_kernel() if inner == "hmc" else bj_nuts.build_kernel()
        init_fn = bj_hmc.init

        def move(key, y, logdensity, step):
            imm = jnp.ones(y.size, y.dtype)
            extra = (num_integration_steps,) if inner == "hmc" else ()
            state, info = kernel(key, init_fn(y, logdensity), logdensity, step, imm, *extra)
            return state.position, info.acceptance_rate

    else:  # pragma: no cover - validated by callers
        raise ValueError(inner)
    return move


def _check_inner(inner, num_inner_steps, start):
    if not isinstance(inner, str) or inner not in INNER_SAMPLERS:
        raise ValueError(f"unknown inner sampler {inner!r}; choose one of {INNER_SAMPLERS}")
    if isinstance(num_inner_steps, bool) or int(num_inner_steps) != num_inner_steps:
        raise ValueError(f"num_inner_steps must be an integer, got {num_inner_steps!r}")
    if num_inner_steps < 1 and inner != "normal":
        raise ValueError(f"num_inner_steps must be >= 1 for {inner!r}, got {num_inner_steps}")
    if start not in STARTS:
        raise ValueError(f"start must be one of {STARTS}, got {start!r}")


STARTS = ("x_next", "normal", "auto")


def _start_point(key, energy, x_next, t, log_likelihood_fn, start, logdensity):
    """y0 of a level's inner chain: x_{t+1}, a normal-approximation draw, or (``"auto"``) the normal
    draw unless it is absurd: non-finite, or further from x_{t+1} than 10 sigma sqrt(D) + 10 (a draw
    moves about sigma sqrt(D)). A function of the pair only, so the MH chain still targets the
    conditional; it discards normal draws that overshoot (coarse learned levels: digits-t6 to 1e7)."""
    del logdensity
    if start == "x_next":
        return x_next
    y = _normal_draw(key, energy, x_next, t, log_likelihood_fn)
    if start == "normal":
        return y
    sigma, _ = _level_constants(energy, t, x_next.dtype)
    sigma = jnp.where(jnp.isinf(sigma), jnp.zeros_like(sigma), sigma)
    limit = 10.0 * sigma * np.sqrt(float(np.prod(energy.data_shape))) + 10.0
    ok = jnp.all(jnp.isfinite(y)) & (jnp.sqrt(jnp.sum(jnp.square(y - x_next))) <= limit)
    return jnp.where(ok, y, x_next)


def _normal_draw(key, energy, x_next, t, log_likelihood_fn):
    """The normal approximation N(x_{t+1} + sigma^2 grad log p(y)|_{y = x_{t+1}}, sigma^2).

    At a marginal top level (sigma = inf, no recovery term) there is no normal approximation:
    the draw is x_{t+1} itself, the N(0, I) start of that level's chain."""
    sigma, c_t = _level_constants(energy, t, x_next.dtype)
    sigma = jnp.where(jnp.isinf(sigma), jnp.zeros_like(sigma), sigma)

    def marginal(y):
        value = energy.log_density(y, t)
        if log_likelihood_fn is not None:
            value = value + log_likelihood_fn(y / c_t, t)
        return value

    mean = x_next + sigma**2 * jax.grad(marginal)(x_next)
    return mean + sigma * jax.random.normal(key, x_next.shape, x_next.dtype)


def build_kernel(
    inner: str = DEFAULT_INNER,
    num_inner_steps: int | None = None,
    step_scale: float = 1.0,
    *,
    num_integration_steps: int = 2,
    log_likelihood_fn: Callable | None = None,
    start: str = "x_next",
) -> Callable:
    """Kernel ``kernel(key, state, energy, step_sizes=None) -> (state, info)``, one level down.

    Args:
      inner: one of :data:`INNER_SAMPLERS`.
      num_inner_steps: K, inner transitions per level (ignored by ``"normal"``; default
        :func:`default_num_inner_steps`).
      step_scale: multiplies the default steps (used when ``step_sizes`` is None).
      num_integration_steps: leapfrog steps per HMC transition.
      log_likelihood_fn: optional ``(x_t, t) -> scalar`` added to every conditional (inverse problems).
      start: ``"x_next"`` (Alg. 2), ``"normal"`` (a normal-approximation draw first, section 4.2) or
        ``"auto"`` (the normal draw unless absurd, see :func:`_start_point`).
    """
    num_inner_steps = default_num_inner_steps(inner) if num_inner_steps is None else num_inner_steps
    _check_inner(inner, num_inner_steps, start)
    num_inner_steps = int(num_inner_steps)
    move = None if inner == "normal" else _one_move(inner, num_integration_steps)

    def kernel(key, state: ProgressiveState, energy, step_sizes=None):
        t = state.level - 1
        x_next = state.position
        _, c_t = _level_constants(energy, t, x_next.dtype)
        logdensity = conditional_log_density_fn(energy, x_next, t, log_likelihood_fn)
        k_start, k_run = jax.random.split(key)
        y0 = _start_point(
            k_start, energy, x_next, t, log_likelihood_fn, "normal" if inner == "normal" else start, logdensity
        )
        if inner == "normal":
            y, acc = y0, jnp.ones((), x_next.dtype)
        else:
            steps = default_step_sizes(energy, inner, step_scale) if step_sizes is None else step_sizes
            step = jnp.asarray(steps, x_next.dtype)[t]

            def one(y, k):
                y, a = move(k, y, logdensity, step)
                return y, a

            y, accs = jax.lax.scan(
                one,
                y0,
                jax.random.split(k_run, num_inner_steps),
                unroll=inner_unroll(num_inner_steps, len(energy.data_shape)),
            )
            acc = jnp.mean(accs)
        info = ProgressiveInfo(logdensity(y), jnp.mean(jnp.square(y - x_next)), acc)
        return ProgressiveState(y / c_t, t), info

    return kernel
