"""Progressive sampling (Gao et al. 2021, Algorithm 2) as a BlackJAX-style kernel.

Start at x_T ~ N(0, I). For t = T-1, ..., 0 sample the recovery conditional

    p(y_t | x_{t+1})  proportional to  exp(f(y_t, t) - |x_{t+1} - y_t|^2 / (2 sigma_{t+1}^2))
                                        [ * exp(log_likelihood_fn(y_t / c_t, t)) ]

then set x_t = y_t / c_t (c_t = sqrt(1 - sigma_{t+1}^2)). One kernel step moves one level down.

Inner samplers (``inner``):

* ``"langevin"``: the paper: K unadjusted steps y <- y + delta_t^2/2 grad + delta_t e, with the
  official delta_t^2 = b^2 c_t^2 sigma_{t+1}^2 (``schedule.langevin_step_sizes``, eq. 17);
* ``"normal"``: the T1k normal approximation N(x_{t+1} + sigma^2 grad f(x_{t+1}), sigma^2), K = 0;
* ``"mala"``: K Metropolis-adjusted Langevin steps (BlackJAX ``mala``), same delta_t^2 convention;
* ``"hmc"``: K HMC transitions of ``num_integration_steps`` leapfrog steps of size eps_t (BlackJAX ``hmc``);
* ``"nuts"``: K NUTS transitions with step eps_t (BlackJAX ``nuts``), the paper's App. C.2 check.

Where the inner chain starts (``start``): ``"x_next"`` (Algorithm 2: y = x_{t+1}) or ``"normal"``
(one normal-approximation draw first, the long-run sampler of section 4.2).

Step sizes are per level, shape (T,): for langevin/mala the squared step delta_t^2, for
hmc/nuts the leapfrog step eps_t. With exact oracle energies the official Langevin steps are
unstable at the top levels of ``drl(6)`` (level 5: variance ~5e-4 but delta^2 = 0.0192), so for
exact targets use an MH-corrected inner sampler with steps from :func:`tune_step_sizes`.

Positions are single examples (shape ``data_shape``); ``jax.vmap`` runs many chains.
"""

from __future__ import annotations

from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl._jax_utils import inner_unroll, scan_or_loop

__all__ = [
    "ProgressiveState",
    "ProgressiveInfo",
    "recovery_log_density",
    "conditional_log_density_fn",
    "default_step_sizes",
    "init",
    "build_kernel",
    "tune_step_sizes",
    "as_top_level_api",
    "sample",
    "INNER_SAMPLERS",
]

INNER_SAMPLERS = ("langevin", "normal", "mala", "hmc", "nuts")
MH_SAMPLERS = ("mala", "hmc", "nuts")
#: default acceptance targets of the pilot tuning
DEFAULT_TARGET_ACCEPTANCE = {"mala": 0.6, "hmc": 0.75, "nuts": 0.8}


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
    if inner not in INNER_SAMPLERS:
        raise ValueError(f"unknown inner sampler {inner!r}; choose one of {INNER_SAMPLERS}")
    if num_inner_steps < 1 and inner != "normal":
        raise ValueError(f"num_inner_steps must be >= 1 for {inner!r}, got {num_inner_steps}")
    if start not in ("x_next", "normal"):
        raise ValueError(f"start must be 'x_next' or 'normal', got {start!r}")


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
    inner: str = "langevin",
    num_inner_steps: int = 30,
    step_scale: float = 1.0,
    *,
    num_integration_steps: int = 2,
    log_likelihood_fn: Callable | None = None,
    start: str = "x_next",
) -> Callable:
    """Kernel ``kernel(key, state, energy, step_sizes=None) -> (state, info)``, one level down.

    Args:
      inner: one of :data:`INNER_SAMPLERS`.
      num_inner_steps: K, inner transitions per level (ignored by ``"normal"``).
      step_scale: multiplies the default steps (used when ``step_sizes`` is None).
      num_integration_steps: leapfrog steps per HMC transition.
      log_likelihood_fn: optional ``(x_t, t) -> scalar`` added to every conditional (inverse problems).
      start: ``"x_next"`` (Alg. 2) or ``"normal"`` (a normal-approximation draw first, section 4.2).
    """
    _check_inner(inner, num_inner_steps, start)
    move = None if inner == "normal" else _one_move(inner, num_integration_steps)

    def kernel(key, state: ProgressiveState, energy, step_sizes=None):
        t = state.level - 1
        x_next = state.position
        _, c_t = _level_constants(energy, t, x_next.dtype)
        logdensity = conditional_log_density_fn(energy, x_next, t, log_likelihood_fn)
        k_start, k_run = jax.random.split(key)
        if inner == "normal" or start == "normal":
            y0 = _normal_draw(k_start, energy, x_next, t, log_likelihood_fn)
        else:
            y0 = x_next
        if inner == "normal":
            y, acc = y0, jnp.ones((), x_next.dtype)
        else:
            steps = default_step_sizes(energy, inner, step_scale) if step_sizes is None else step_sizes
            step = jnp.asarray(steps, x_next.dtype)[t]

            def one(y, k):
                y, a = move(k, y, logdensity, step)
                return y, a

            y, accs = jax.lax.scan(one, y0, jax.random.split(k_run, num_inner_steps),
                unroll=inner_unroll(num_inner_steps, len(energy.data_shape)))
            acc = jnp.mean(accs)
        info = ProgressiveInfo(logdensity(y), jnp.mean(jnp.square(y - x_next)), acc)
        return ProgressiveState(y / c_t, t), info

    return kernel


def tune_step_sizes(
    energy,
    key: jax.Array,
    inner: str = "mala",
    *,
    num_chains: int = 64,
    num_adapt: int = 50,
    num_inner_steps: int = 10,
    target_acceptance: float | None = None,
    num_integration_steps: int = 2,
    log_likelihood_fn: Callable | None = None,
    start: str = "x_next",
    initial_step_sizes=None,
):
    """Per-level step sizes tuned on a pilot progressive descent of ``num_chains`` chains.

    At each level t = T-1..0 the pilot chains start as the run would (``start``), then
    ``num_adapt`` inner transitions adapt log step by Robbins-Monro,
    log eps <- log eps + 2 (acc - target) / (i + 1)^0.6 (acc = mean acceptance over the pilot
    chains), starting from :func:`default_step_sizes`; then ``num_inner_steps`` transitions at the
    tuned step move the pilot to the next level. Returns ``(step_sizes (T,), acceptance (T,))``,
    the acceptance being the pilot's mean over those last transitions.
    """
    if inner not in MH_SAMPLERS:
        raise ValueError(f"step tuning needs an MH-corrected inner sampler {MH_SAMPLERS}, got {inner!r}")
    _check_inner(inner, num_inner_steps, start)
    target = DEFAULT_TARGET_ACCEPTANCE[inner] if target_acceptance is None else float(target_acceptance)
    move = _one_move(inner, num_integration_steps)
    init_steps = default_step_sizes(energy, inner) if initial_step_sizes is None else jnp.asarray(initial_step_sizes)
    T = energy.num_levels
    k_init, k_run = jax.random.split(key)
    x = jax.random.normal(k_init, (num_chains,) + tuple(energy.data_shape))
    # langevin/mala steps are squared: adapt the log of the step itself (factor 2 in log space)
    power = 2.0 if inner == "mala" else 1.0

    def level(x, inputs):
        t, k = inputs
        k_start, k_adapt, k_move = jax.random.split(k, 3)

        def batch_move(key, y, step):
            keys = jax.random.split(key, num_chains)
            return jax.vmap(
                lambda kk, yy, xn: move(kk, yy, conditional_log_density_fn(energy, xn, t, log_likelihood_fn), step)
            )(keys, y, x)

        if start == "normal":
            keys = jax.random.split(k_start, num_chains)
            y = jax.vmap(lambda kk, xn: _normal_draw(kk, energy, xn, t, log_likelihood_fn))(keys, x)
        else:
            y = x

        def adapt(carry, inp):
            y, log_step = carry
            i, kk = inp
            y, acc = batch_move(kk, y, jnp.exp(log_step))
            acc = jnp.nan_to_num(jnp.mean(acc))
            log_step = log_step + 2.0 * power * (acc - target) / (i + 1.0) ** 0.6
            return (y, log_step), acc

        (y, log_step), _ = jax.lax.scan(
            adapt, (y, jnp.log(init_steps[t])), (jnp.arange(num_adapt), jax.random.split(k_adapt, num_adapt))
        )
        step = jnp.exp(log_step)

        def run(y, kk):
            y, acc = batch_move(kk, y, step)
            return y, jnp.mean(acc)

        y, accs = jax.lax.scan(run, y, jax.random.split(k_move, num_inner_steps),
            unroll=inner_unroll(num_inner_steps, len(energy.data_shape)))
        _, c_t = _level_constants(energy, t, y.dtype)
        return y / c_t, (step, jnp.mean(accs))

    levels = jnp.arange(T - 1, -1, -1)
    _, (steps, accs) = jax.jit(lambda x, ks: jax.lax.scan(level, x, (levels, ks)))(x, jax.random.split(k_run, T))
    return steps[::-1], accs[::-1]


def as_top_level_api(
    energy,
    inner: str = "langevin",
    num_inner_steps: int = 30,
    step_sizes=None,
    *,
    step_scale: float = 1.0,
    num_integration_steps: int = 2,
    log_likelihood_fn: Callable | None = None,
    start: str = "x_next",
):
    """A BlackJAX ``SamplingAlgorithm(init, step)`` bound to ``energy``:
    ``init(position)`` puts a chain at level T, ``step(key, state)`` moves it one level down."""
    from blackjax.base import SamplingAlgorithm

    kernel = build_kernel(
        inner, num_inner_steps, step_scale,
        num_integration_steps=num_integration_steps, log_likelihood_fn=log_likelihood_fn, start=start,
    )
    steps = None if step_sizes is None else jnp.asarray(step_sizes, jnp.float32)

    def init_fn(position, rng_key=None):
        return init(position, energy)

    def step_fn(rng_key, state):
        return kernel(rng_key, state, energy, steps)

    return SamplingAlgorithm(init_fn, step_fn)


def sample(
    energy,
    key: jax.Array,
    num_samples: int,
    *,
    inner: str = "langevin",
    num_inner_steps: int = 30,
    step_scale: float = 1.0,
    return_levels: bool = False,
    step_sizes=None,
    num_integration_steps: int = 2,
    log_likelihood_fn: Callable | None = None,
    start: str = "x_next",
    return_info: bool = False,
    tune_kwargs: dict | None = None,
    mesh=None,
):
    """Progressive samples of the data x_0 (data space), shape (num_samples, *data_shape).

    With a device ``mesh`` (:mod:`ebm_ppl.sharding`) the samples are split over its devices
    (``num_samples`` must be a multiple of its size); the draws equal the one-device ones.

    With ``return_levels=True`` also returns x_t for every level, shape
    (T, num_samples, *data_shape), ordered t = T-1, ..., 0. For the MH-corrected inner samplers
    without ``step_sizes``, the steps are tuned first by :func:`tune_step_sizes` (``tune_kwargs``).
    With ``return_info=True`` the last element returned is a dict with ``step_sizes`` (T,) and
    the per-level ``acceptance_rate`` (T,) and ``log_density`` (T, num_samples), indexed by level t.
    """
    _check_inner(inner, num_inner_steps, start)
    k_tune, k_init, k_run = jax.random.split(key, 3)
    if step_sizes is None and inner in MH_SAMPLERS:
        step_sizes, _ = tune_step_sizes(
            energy, k_tune, inner, num_integration_steps=num_integration_steps,
            log_likelihood_fn=log_likelihood_fn, start=start, **(tune_kwargs or {}),
        )
    elif step_sizes is None and inner != "normal":
        step_sizes = default_step_sizes(energy, inner, step_scale)
    steps = None if step_sizes is None else jnp.asarray(step_sizes, jnp.float32)
    if steps is not None and steps.shape != (energy.num_levels,):
        raise ValueError(f"step_sizes must have shape ({energy.num_levels},), got {steps.shape}")
    kernel = build_kernel(
        inner, num_inner_steps, step_scale,
        num_integration_steps=num_integration_steps, log_likelihood_fn=log_likelihood_fn, start=start,
    )
    from ebm_ppl import sharding

    if mesh is not None:
        sharding.check_divisible(num_samples, mesh, "number of samples (chains)")
    x_top = sharding.maybe_shard_batch(jax.random.normal(k_init, (num_samples,) + tuple(energy.data_shape)), mesh)

    def run(x_top, k_run, steps):
        states = jax.vmap(lambda x: init(x, energy))(sharding.constrain_batch(x_top, mesh))

        def level_step(states, k):
            keys = sharding.constrain_batch(jax.random.split(k, num_samples), mesh)
            states, info = jax.vmap(kernel, in_axes=(0, 0, None, None))(keys, states, energy, steps)
            return states, (states.position, info)

        # one jitted level per dispatch outside a trace (fast convolutions on CPU), lax.scan inside one
        return scan_or_loop(level_step, states, jax.random.split(k_run, energy.num_levels))

    states, (trajectory, info) = run(x_top, k_run, steps)
    out = (states.position, trajectory) if return_levels else (states.position,)
    if return_info:
        out = out + (
            {
                "step_sizes": steps,
                "acceptance_rate": jnp.mean(info.acceptance_rate, axis=1)[::-1],
                "log_density": info.log_density[::-1],
            },
        )
    return out[0] if len(out) == 1 else out
