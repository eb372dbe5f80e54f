"""Training objectives of diffusion recovery likelihood (Gao et al. 2021) and its baselines.

Every objective is a pure function

    loss_fn(log_density, params, x0, key, t=None, *, schedule, ...) -> (loss, aux)

* ``log_density(params, y, t) -> (B,)`` is the learned log density f(y, t) of level t in model
  space for a batch y (B, *data_shape) and integer levels t (B,). Any function works: a network
  (see :func:`network_log_density`) or an analytic energy (the tests use an oracle's exact
  energy times a scalar parameter).
* ``x0`` (B, *data_shape) is the (dequantised) data in model-ready scaling; training pairs are
  made from it with the schedule: x_t = abar_t x_0 + sqrt(1 - abar_t^2) e,
  x_{t+1} = alpha_{t+1} x_t + sigma_{t+1} e', y_t = c_t x_t (``schedule.model_scales``).
* ``t`` (B,) levels in 0..T-1, drawn uniformly from ``key`` when None.
* The gradient of ``loss`` in ``params`` is the objective's estimator; ``aux`` holds
  diagnostics (per-example levels, the positive/negative log densities).

Objectives:

(a) :func:`recovery_likelihood_loss`: K Langevin steps on the conditional
    p(y_t | x_{t+1}) ~ exp(f(y_t, t) - |x_{t+1} - y_t|^2 / (2 sigma_{t+1}^2)) from y = x_{t+1},
    y <- y + delta_t^2/2 grad_y log p + delta_t e, delta_t^2 = ``schedule.langevin_step_sizes[t]``;
    loss = mean_b  w_t s_t (f(y_neg) - f(y_pos)), w_t = sigma_1 / sigma_{t+1}, s_t =
    ``schedule.energy_scales[t]`` (so that s_t f is the raw network output, as in the official
    code), negatives under stop-gradient.
(b) :func:`normal_approx_loss` (T1k, K = 0): y_neg ~ N(x_{t+1} + sigma^2 grad f(x_{t+1}, t), sigma^2),
    sigma = sigma_{t+1}; same loss as (a).
(c) :func:`dsm_loss`: energy-parameterised denoising score matching (NCSN, sigma^2 weighting):
    y_t = m_t x_0 + s e (:func:`dsm_noise`), loss = mean_b 1/2 |s grad_y f(y_t, t) + e|^2.
(d) :func:`short_run_loss`: the T = 1, K = 180 short-run baseline of the paper's ablation: (a) on
    the one-level schedule ``drl(1)`` (x_1 is nearly N(0, I), so the 180 Langevin steps start
    from noise and the conditional is nearly the level-0 marginal).
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl._jax_utils import inner_unroll, rng_key_first
from ebm_ppl.schedules import Schedule

__all__ = [
    "OBJECTIVES",
    "make_pairs",
    "sample_levels",
    "langevin_conditional",
    "langevin_step_fn",
    "contrastive_loss",
    "recovery_likelihood_loss",
    "normal_approx_loss",
    "dsm_loss",
    "dsm_noise",
    "short_run_loss",
    "network_log_density",
    "resolve_step_scale",
    "get_objective",
]

LogDensity = Callable[[object, jax.Array, jax.Array], jax.Array]


def _bcast(v: jax.Array, like: jax.Array) -> jax.Array:
    """(B,) -> (B, 1, ..., 1) to broadcast against ``like`` (B, *data_shape)."""
    return v.reshape(v.shape + (1,) * (like.ndim - 1))


def _sum_event(v: jax.Array) -> jax.Array:
    return jnp.sum(v, axis=tuple(range(1, v.ndim)))


def _table(values, dtype) -> jax.Array:
    return jnp.asarray(values, dtype)


def network_log_density(module, schedule: Schedule, base_variance: float | None = None) -> LogDensity:
    """``log_density(variables, y, t)`` of a Flax energy network, the same function as
    :class:`ebm_ppl.energy.NetworkEnergy`: net(y, t) / energy_scales[t] - |y|^2 / (2 base_variance).
    Spectral-norm statistics are used as stored (``update_stats=False``)."""

    def log_density(variables, y, t):
        scales = _table(schedule.energy_scales, y.dtype)
        f = module.apply(variables, y, t) / scales[t]
        if base_variance is not None:
            f = f - 0.5 * _sum_event(jnp.square(y)) / base_variance
        return f

    return log_density


def resolve_step_scale(schedule: Schedule, step_scale) -> np.ndarray:
    """Per-level multipliers (T,) of ``schedule.langevin_step_sizes``: a number (all levels) or a
    sequence of T numbers."""
    T = schedule.num_levels
    arr = np.asarray(step_scale, np.float64)
    if arr.ndim == 0:
        return np.full(T, float(arr))
    if arr.shape != (T,):
        raise ValueError(f"step_scale must be a number or {T} numbers, got shape {arr.shape}")
    return arr


@rng_key_first(0)
def sample_levels(rng_key: jax.Array, batch_size: int, num_levels: int) -> jax.Array:
    """Levels t uniform in 0..T-1, shape (batch_size,), int32."""
    return jax.random.randint(rng_key, (batch_size,), 0, num_levels, dtype=jnp.int32)


@rng_key_first(0)
def make_pairs(rng_key: jax.Array, x0: jax.Array, t: jax.Array, schedule: Schedule):
    """(y_t, x_{t+1}) pairs of the diffusion from data ``x0`` at levels ``t``: y_t = c_t x_t."""
    k1, k2 = jax.random.split(rng_key)
    dt = x0.dtype
    abar = _bcast(_table(schedule.signal_scales, dt)[t], x0)
    noise = _bcast(_table(schedule.noise_scales, dt)[t], x0)
    x_t = abar * x0 + noise * jax.random.normal(k1, x0.shape, dt)
    alpha = _bcast(_table(schedule.alphas, dt)[t + 1], x0)
    sigma = _bcast(_table(schedule.sigmas, dt)[t + 1], x0)
    x_next = alpha * x_t + sigma * jax.random.normal(k2, x0.shape, dt)
    y_t = _bcast(_table(schedule.model_scales, dt)[t], x0) * x_t
    return y_t, x_next


def langevin_step_fn(
    log_density: LogDensity,
    params,
    x_next: jax.Array,
    t: jax.Array,
    *,
    schedule: Schedule,
    step_scale: float = 1.0,
    recovery: bool = True,
) -> Callable[[jax.Array, jax.Array], jax.Array]:
    """``step(y, key) -> y``: one Langevin step on p(y_t | x_{t+1}) (per-example t), the body of
    :func:`langevin_conditional`: y + delta_t^2/2 grad_y log p + delta_t e."""
    dt = x_next.dtype
    sigma = _bcast(_table(schedule.conditional_sigmas, dt)[t], x_next)
    step_sq = _bcast(_table(resolve_step_scale(schedule, step_scale) * schedule.langevin_step_sizes, dt)[t], x_next)

    def conditional(y):
        f = jnp.sum(log_density(params, y, t))
        if recovery:
            f = f - 0.5 * jnp.sum(jnp.square(x_next - y) / sigma**2)
        return f

    grad_fn = jax.grad(conditional)

    def step(y, k):
        noise = jax.random.normal(k, y.shape, dt)
        return y + 0.5 * step_sq * grad_fn(y) + jnp.sqrt(step_sq) * noise

    return step


def langevin_conditional(
    log_density: LogDensity,
    params,
    key: jax.Array,
    x_next: jax.Array,
    t: jax.Array,
    *,
    schedule: Schedule,
    num_steps: int,
    step_scale: float = 1.0,
    recovery: bool = True,
    init: jax.Array | None = None,
) -> jax.Array:
    """K Langevin steps on p(y_t | x_{t+1}) from y = x_{t+1} (or ``init``); per-example t.

    With ``recovery=False`` the recovery term is dropped (sampling the marginal of level t).
    """
    step = langevin_step_fn(log_density, params, x_next, t, schedule=schedule, step_scale=step_scale, recovery=recovery)
    y0 = x_next if init is None else init
    y, _ = jax.lax.scan(
        lambda y, k: (step(y, k), None),
        y0,
        jax.random.split(key, num_steps),
        unroll=inner_unroll(num_steps, x_next.ndim - 1),
    )
    return y


def contrastive_loss(log_density, params, y_pos, y_neg, t, schedule, output_reg=0.0):
    """mean_b w_t s_t (f(y_neg) - f(y_pos)), negatives under stop-gradient; with ``output_reg``
    > 0 plus output_reg * mean((s_t f_pos)^2 + (s_t f_neg)^2) (Du & Mordatch's regulariser on
    the raw network scale)."""
    dt = y_pos.dtype
    y_neg = jax.lax.stop_gradient(y_neg)
    sig = _table(schedule.sigmas, dt)
    scale = _table(schedule.energy_scales, dt)[t]
    weight = sig[1] / sig[t + 1] * scale
    f_pos = log_density(params, y_pos, t)
    f_neg = log_density(params, y_neg, t)
    loss = jnp.mean(weight * (f_neg - f_pos))
    if output_reg:
        loss = loss + output_reg * jnp.mean(jnp.square(scale * f_pos) + jnp.square(scale * f_neg))
    aux = {"t": t, "f_pos": f_pos, "f_neg": f_neg, "move": jnp.sqrt(_sum_event(jnp.square(y_neg - y_pos)))}
    return loss, aux


def _contrastive_pairs(key, x0, t, schedule):
    """(t, y_t, x_{t+1}, the key left for the negatives) of the contrastive objectives: levels drawn
    uniformly when ``t`` is None, then the training pairs."""
    k_t, k_pair, k_mc = jax.random.split(key, 3)
    if t is None:
        t = sample_levels(k_t, x0.shape[0], schedule.num_levels)
    y_pos, x_next = make_pairs(k_pair, x0, t, schedule)
    return t, y_pos, x_next, k_mc


def recovery_likelihood_loss(
    log_density: LogDensity,
    params,
    x0: jax.Array,
    key: jax.Array,
    t: jax.Array | None = None,
    *,
    schedule: Schedule,
    num_steps: int = 30,
    step_scale: float = 1.0,
    output_reg: float = 0.0,
):
    """(a) Diffusion recovery likelihood with K Langevin steps (T6: K = 30)."""
    t, y_pos, x_next, k_mc = _contrastive_pairs(key, x0, t, schedule)
    y_neg = langevin_conditional(
        log_density,
        jax.lax.stop_gradient(params),
        k_mc,
        x_next,
        t,
        schedule=schedule,
        num_steps=num_steps,
        step_scale=step_scale,
    )
    return contrastive_loss(log_density, params, y_pos, y_neg, t, schedule, output_reg)


def normal_approx_loss(
    log_density: LogDensity,
    params,
    x0: jax.Array,
    key: jax.Array,
    t: jax.Array | None = None,
    *,
    schedule: Schedule,
):
    """(b) T1k: negatives from the normal approximation N(x_{t+1} + s^2 grad f(x_{t+1}), s^2)."""
    t, y_pos, x_next, k_mc = _contrastive_pairs(key, x0, t, schedule)
    sigma = _bcast(_table(schedule.conditional_sigmas, x0.dtype)[t], x0)
    p = jax.lax.stop_gradient(params)
    score = jax.grad(lambda y: jnp.sum(log_density(p, y, t)))(x_next)
    y_neg = x_next + sigma**2 * score + sigma * jax.random.normal(k_mc, x0.shape, x0.dtype)
    return contrastive_loss(log_density, params, y_pos, y_neg, t, schedule)


def dsm_noise(schedule: Schedule):
    """(scale, std) per level for DSM: y_t = scale_t x_0 + std_t e with
    scale_t = c_t abar_t and std_t = c_t sqrt(1 - abar_t^2 + abar_t^2 sigma_0^2): the level's
    marginal noise plus the data noise ``sigmas[0]`` of the official code (level 0 carries no
    marginal noise of its own, so DSM there is defined at noise c_0 sigma_0)."""
    T = schedule.num_levels
    c = schedule.model_scales[:T]
    abar = schedule.signal_scales[:T]
    std = c * np.sqrt(schedule.noise_scales[:T] ** 2 + (abar * schedule.sigmas[0]) ** 2)
    return c * abar, std


def dsm_loss(
    log_density: LogDensity,
    params,
    x0: jax.Array,
    key: jax.Array,
    t: jax.Array | None = None,
    *,
    schedule: Schedule,
):
    """(c) Energy-parameterised denoising score matching, weight sigma^2 (NCSN)."""
    k_t, k_e = jax.random.split(key)
    if t is None:
        t = sample_levels(k_t, x0.shape[0], schedule.num_levels)
    dt = x0.dtype
    scale, std = (_table(v, dt)[t] for v in dsm_noise(schedule))
    e = jax.random.normal(k_e, x0.shape, dt)
    y = _bcast(scale, x0) * x0 + _bcast(std, x0) * e
    score = jax.grad(lambda v: jnp.sum(log_density(params, v, t)))(y)
    per_example = 0.5 * _sum_event(jnp.square(_bcast(std, x0) * score + e))
    return jnp.mean(per_example), {"t": t, "per_example": per_example}


def short_run_loss(
    log_density: LogDensity,
    params,
    x0: jax.Array,
    key: jax.Array,
    t: jax.Array | None = None,
    *,
    schedule: Schedule,
    num_steps: int = 180,
    step_scale: float = 1.0,
):
    """(d) The paper's T = 1, K = 180 short-run baseline: recovery likelihood on a one-level
    schedule (``drl(1)``: x_1 is nearly pure noise, sigma_1 = 0.99998, so the conditional is
    nearly the level-0 marginal and the 180 Langevin steps start from noise)."""
    if schedule.num_levels != 1:
        raise ValueError(f"the short-run baseline is defined for T = 1 (drl:1), got {schedule.name!r}")
    return recovery_likelihood_loss(
        log_density, params, x0, key, t, schedule=schedule, num_steps=num_steps, step_scale=step_scale
    )


#: name -> (loss function, names of the keyword options it takes besides ``schedule``)
OBJECTIVES = {
    "recovery_likelihood": (recovery_likelihood_loss, ("num_steps", "step_scale", "output_reg")),
    "normal_approx": (normal_approx_loss, ()),
    "dsm": (dsm_loss, ()),
    "short_run": (short_run_loss, ("num_steps", "step_scale")),
}


def get_objective(name: str, schedule: Schedule, **options) -> Callable:
    """``loss(log_density, params, x0, key) -> (loss, aux)`` for objective ``name`` with options."""
    if name not in OBJECTIVES:
        raise ValueError(f"unknown objective {name!r}; choose one of {sorted(OBJECTIVES)}")
    fn, allowed = OBJECTIVES[name]
    bad = set(options) - set(allowed)
    if bad:
        raise ValueError(f"objective {name!r} takes no option(s) {sorted(bad)}; it takes {list(allowed)}")
    if name == "normal_approx" and schedule.top_level_marginal:
        raise ValueError(
            f"the normal approximation needs small noise steps at every level; {schedule.name} ends with a "
            f"step of sigma {schedule.sigmas[-1]:.4f} (its top level is a marginal EBM): use a T1k schedule such as drl:1000"
        )

    def loss(log_density, params, x0, key, t=None):
        return fn(log_density, params, x0, key, t, schedule=schedule, **options)

    return loss
