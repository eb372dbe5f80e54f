"""Long-run chains on the recovery conditionals (Gao et al. 2021, section 4.2 and App. C.2).

At each level t = T-1..0, from x_{t+1}: a first draw (``start``), counted as one sampling step,
then S - 1 MH-corrected HMC transitions of 2 leapfrog steps on p(y_t | x_{t+1}) with a per-level
step size adapted on a pilot descent so that the acceptance rate lies in [0.6, 0.9] (target
0.75); NUTS with the same step sizes is the check of App. C.2. Total sampling steps T * S
(T = 1000, S = 100 gives the paper's 100k).

First draw per level (``start``):

* ``"normal"`` (the paper, T1k): one draw of the normal approximation
  N(x_{t+1} + sigma^2 grad f(x_{t+1}), sigma^2). Good when sigma_{t+1} is small (many levels); with
  a few big steps it is poor: on ``drl:6`` digits (sigma_1 = 0.32 and f = net / s_t^2 very sharp)
  the mean x + sigma^2 grad f overshoots by orders of magnitude (pixels ~1e7);
* ``"langevin"``: ``num_start_steps`` unadjusted Langevin steps from y = x_{t+1} with the schedule's
  steps delta_t^2 (times ``start_step_scale``): Algorithm 2, i.e. the T6 model's own sampler;
* ``"x_next"``: y = x_{t+1}.

The levels and the MCMC steps run as Python loops over one jitted batched step (XLA:CPU runs
convolutions inside while loops on a slow path, see ``ebm_ppl._jax_utils.inner_unroll``), so a
long run of a convolutional energy costs what its gradients cost.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable, Sequence
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl import sharding
from ebm_ppl._jax_utils import (
    inner_unroll,
    resolve_option_groups,
    resolve_options,
    rng_key_first,
    robbins_monro_increment,
    warn,
)
from ebm_ppl.energy.base import level_scale
from ebm_ppl.sampling import progressive
from ebm_ppl.sampling.progressive import kernel as progressive_kernel

__all__ = [
    "LongRunConfig",
    "LongRunTuning",
    "LongRunResult",
    "STARTS",
    "tune",
    "run",
    "run_growing",
    "plot_step_sizes",
]

ACCEPTANCE_RANGE = (0.6, 0.9)
STARTS = ("normal", "langevin", "x_next")


class LongRunConfig(NamedTuple):
    """The chains' settings, shared by :func:`run` and :func:`tune`: the MCMC ``sampler`` ("hmc" or
    "nuts") with ``num_integration_steps`` leapfrog steps (HMC), each level's first draw
    (``start``, :data:`STARTS`; ``num_start_steps`` Langevin steps at ``start_step_scale`` times the
    schedule's for ``"langevin"``); for :func:`run` also the per-level ``step_sizes`` (T,) (None:
    tuned by :func:`tune`) and ``tune_kwargs`` (the fields of :class:`LongRunTuning`)."""

    sampler: str = "hmc"
    num_integration_steps: int = 2
    start: str = "normal"
    num_start_steps: int = 30
    start_step_scale: float = 1.0
    step_sizes: object = None
    tune_kwargs: dict | None = None


class LongRunTuning(NamedTuple):
    """The pilot of :func:`tune`: ``num_chains`` chains, ``num_adapt`` adapting and ``num_check``
    checking transitions per level at ``target_acceptance``, from ``initial_step_sizes`` (T,)
    (None: the schedule's), at the levels ``tune_levels`` (None: all; see :func:`tune`)."""

    num_chains: int = 64
    num_adapt: int = 60
    num_check: int = 10
    target_acceptance: float = 0.75
    initial_step_sizes: object = None
    tune_levels: object = None


class LongRunResult(NamedTuple):
    """samples (n, *data_shape) in data space; step_sizes, acceptance_rate (T,) by level (mean
    acceptance of the S - 1 MCMC steps; 1 when S = 1); steps_per_level S; total_steps T * S;
    log_density (T, n) of the conditional log p(y_t | x_{t+1}) at the final y_t per level."""

    samples: jax.Array
    step_sizes: jax.Array
    acceptance_rate: jax.Array
    steps_per_level: int
    total_steps: int
    log_density: jax.Array


def _check(energy, sampler, start, num_start_steps):
    if sampler not in ("hmc", "nuts"):
        raise ValueError(f"sampler must be 'hmc' or 'nuts', got {sampler!r}")
    if start not in STARTS:
        raise ValueError(f"start must be one of {STARTS}, got {start!r}")
    if start == "langevin" and int(num_start_steps) < 1:
        raise ValueError(f"num_start_steps must be >= 1 for start='langevin', got {num_start_steps}")


@functools.partial(jax.jit, static_argnames=("start", "num_start_steps", "log_likelihood_fn"))
def _first(energy, keys, x_next, t, start_step_scale, *, start, num_start_steps, log_likelihood_fn):
    """The first draw of level t for a batch of chains (see ``start`` in the module docstring)."""

    def one(key, x_next):
        if start == "normal":
            return progressive_kernel._normal_draw(key, energy, x_next, t, log_likelihood_fn)
        if start == "x_next":
            return x_next
        grad = jax.grad(progressive.conditional_log_density_fn(energy, x_next, t, log_likelihood_fn))
        h = (start_step_scale * jnp.asarray(energy.schedule.langevin_step_sizes, x_next.dtype)[t]).astype(x_next.dtype)

        def body(y, k):
            return y + 0.5 * h * grad(y) + jnp.sqrt(h) * jax.random.normal(k, y.shape, y.dtype), None

        y, _ = jax.lax.scan(
            body,
            x_next,
            jax.random.split(key, num_start_steps),
            unroll=inner_unroll(num_start_steps, len(energy.data_shape)),
        )
        return y

    return jax.vmap(one)(keys, x_next)


@functools.partial(jax.jit, static_argnames=("sampler", "num_integration_steps", "log_likelihood_fn"))
def _move(energy, keys, y, x_next, t, step, *, sampler, num_integration_steps, log_likelihood_fn):
    """One MCMC transition (HMC or NUTS) of every chain on its conditional p(y_t | x_{t+1})."""
    one_move = progressive_kernel._one_move(sampler, num_integration_steps)

    def one(key, y, x_next):
        return one_move(key, y, progressive.conditional_log_density_fn(energy, x_next, t, log_likelihood_fn), step)

    return jax.vmap(one)(keys, y, x_next)


@functools.partial(jax.jit, static_argnames=("log_likelihood_fn",))
def _logd(energy, y, x_next, t, *, log_likelihood_fn):
    return jax.vmap(lambda y, x: progressive.conditional_log_density_fn(energy, x, t, log_likelihood_fn)(y))(y, x_next)


def _chain_fns(energy, config: LongRunConfig, log_likelihood_fn):
    """Batched ``first(keys, x_next, t)``, ``move(keys, y, x_next, t, step)``, ``logd(y, x_next, t)``
    for the chains of ``config`` (checked here; module-level jitted functions: compiled once per
    energy structure and options)."""
    sampler, start, num_start_steps = config.sampler, config.start, config.num_start_steps
    num_integration_steps = config.num_integration_steps
    _check(energy, sampler, start, num_start_steps)
    scale = jnp.float32(config.start_step_scale)

    def first(keys, x_next, t):
        return _first(
            energy,
            keys,
            x_next,
            jnp.int32(t),
            scale,
            start=start,
            num_start_steps=int(num_start_steps),
            log_likelihood_fn=log_likelihood_fn,
        )

    def move(keys, y, x_next, t, step):
        return _move(
            energy,
            keys,
            y,
            x_next,
            jnp.int32(t),
            jnp.asarray(step, jnp.float32),
            sampler=sampler,
            num_integration_steps=int(num_integration_steps),
            log_likelihood_fn=log_likelihood_fn,
        )

    def logd(y, x_next, t):
        return _logd(energy, y, x_next, jnp.int32(t), log_likelihood_fn=log_likelihood_fn)

    return first, move, logd


def _scale(energy, t):
    return level_scale(energy, t)


@rng_key_first(1)
def tune(
    rng_key: jax.Array,
    energy,
    *,
    config: LongRunConfig | None = None,
    tuning: LongRunTuning | None = None,
    log_likelihood_fn: Callable | None = None,
    **options,
):
    """Per-level step sizes (T,) and the pilot acceptance (T,), tuned as in section 4.2.

    A pilot descent of ``num_chains`` chains: at each level t = T-1..0 the first draw (``start``),
    then ``num_adapt`` transitions adapting log eps by Robbins-Monro,
    log eps <- log eps + 2 (acc - target) / (i + 1)^0.6 (acc: mean over the pilot chains), from the
    schedule's sqrt(delta_t^2); then ``num_check`` transitions at the tuned step, whose mean
    acceptance is returned, move the pilot on to level t - 1.

    ``tune_levels``: None tunes every level. With many levels (T1k) an int k tunes k levels
    evenly spaced over 0..T-1 (a sequence: those levels) and the others get log(eps_t / eps0_t)
    interpolated linearly in t between them, eps0 the initial steps (``initial_step_sizes``, by
    default the schedule's sqrt(delta_t^2) ~ c_t sigma_{t+1}, which carries the fast change of
    the recovery width near t = 0; the tuned steps are otherwise smooth, log-linear in t in the
    paper's Fig. 7); the pilot takes only the first draw at an untuned level, whose pilot
    acceptance is NaN.

    The options are the fields of :class:`LongRunConfig` (the chains) and :class:`LongRunTuning`
    (the pilot), given as ``config=`` / ``tuning=`` or as keywords (a keyword overrides them)."""
    config, tuning = resolve_option_groups(
        "long_run.tune", [(LongRunConfig, config), (LongRunTuning, tuning, "tuning")], options
    )
    num_chains, num_adapt, num_check = tuning.num_chains, tuning.num_adapt, tuning.num_check
    target_acceptance, initial_step_sizes = tuning.target_acceptance, tuning.initial_step_sizes
    first, move, _ = _chain_fns(energy, config, log_likelihood_fn)
    init = progressive.default_step_sizes(energy, "hmc") if initial_step_sizes is None else initial_step_sizes
    init = np.asarray(init, np.float64)
    T = energy.num_levels
    tuned = _tune_levels(tuning.tune_levels, T)
    k_init, k_run = jax.random.split(rng_key)
    x = jax.random.normal(k_init, (num_chains,) + tuple(energy.data_shape))
    steps, accs = np.full(T, np.nan), np.full(T, np.nan)
    for t, k in zip(range(T - 1, -1, -1), jax.random.split(k_run, T)):
        k_first, k_adapt, k_check = jax.random.split(k, 3)
        y = first(jax.random.split(k_first, num_chains), x, t)
        if t not in tuned:
            x = y / _scale(energy, t)
            continue
        log_step = math.log(init[t])
        for i, kk in enumerate(jax.random.split(k_adapt, num_adapt)):
            y, acc = move(jax.random.split(kk, num_chains), y, x, t, jnp.float32(math.exp(log_step)))
            a = float(jnp.nan_to_num(jnp.mean(acc)))
            log_step += robbins_monro_increment(a, target_acceptance, 2.0, i)
        step = jnp.float32(math.exp(log_step))
        check = []
        for kk in jax.random.split(k_check, num_check):
            y, acc = move(jax.random.split(kk, num_chains), y, x, t, step)
            check.append(jnp.mean(acc))
        steps[t], accs[t] = float(step), float(jnp.mean(jnp.stack(check))) if check else float("nan")
        x = y / _scale(energy, t)
    if len(tuned) < T:
        at = np.asarray(sorted(tuned))
        steps = init * np.exp(np.interp(np.arange(T), at, np.log(steps[at] / init[at])))
    return jnp.asarray(steps, jnp.float32), jnp.asarray(accs, jnp.float32)


def _tune_levels(tune_levels, T: int) -> set:
    """The levels :func:`tune` adapts a step at (see its ``tune_levels``)."""
    if tune_levels is None:
        return set(range(T))
    if np.ndim(tune_levels) == 0:
        k = int(tune_levels)
        if k < 1:
            raise ValueError(f"tune_levels must be >= 1, got {tune_levels}")
        return set(np.unique(np.round(np.linspace(0, T - 1, min(k, T))).astype(int)).tolist())
    levels = sorted({int(t) for t in tune_levels})
    if not levels or levels[0] < 0 or levels[-1] >= T:
        raise ValueError(f"tune_levels must be levels in 0..{T - 1}, got {list(tune_levels)}")
    return set(levels)


@rng_key_first(1)
def run(
    rng_key: jax.Array,
    energy,
    num_samples: int,
    *,
    steps_per_level: int = 100,
    config: LongRunConfig | None = None,
    log_likelihood_fn: Callable | None = None,
    mesh=None,
    progress: bool = False,
    **options,
) -> LongRunResult:
    """One long run: per level the first draw (``start``) + ``steps_per_level - 1`` HMC (or NUTS)
    steps at the per-level ``step_sizes`` (tuned by :func:`tune` with the same ``start`` when None).

    ``mesh``: split the ``num_samples`` chains over a device mesh (:mod:`ebm_ppl.sharding`). The
    options are the fields of :class:`LongRunConfig`, given as ``config=`` or as keywords."""
    config = resolve_options("long_run.run", LongRunConfig, config, options)
    if steps_per_level < 1:
        raise ValueError(f"steps_per_level must be >= 1, got {steps_per_level}")
    first, move, logd = _chain_fns(energy, config, log_likelihood_fn)
    T = energy.num_levels
    k_tune, k_init, k_run = jax.random.split(rng_key, 3)
    step_sizes = config.step_sizes
    if step_sizes is None and steps_per_level > 1:
        step_sizes, _ = tune(
            k_tune, energy, config=config, log_likelihood_fn=log_likelihood_fn, **(config.tune_kwargs or {})
        )
    steps = jnp.zeros(T, jnp.float32) if step_sizes is None else jnp.asarray(step_sizes, jnp.float32)
    if steps.shape != (T,):
        raise ValueError(f"step_sizes must have shape ({T},), got {steps.shape}")
    if mesh is not None:
        sharding.check_divisible(num_samples, mesh, "number of samples (chains)")
    x = sharding.maybe_shard_batch(jax.random.normal(k_init, (num_samples,) + tuple(energy.data_shape)), mesh)
    accs = np.ones(T)
    logds: list[Any] = [None] * T
    levels = range(T - 1, -1, -1)
    if progress:
        from tqdm import tqdm

        levels = tqdm(levels, desc=f"long run S={steps_per_level}", leave=False)
    level_keys = jax.random.split(k_run, T)
    for t in levels:
        k_first, k_move = jax.random.split(level_keys[T - 1 - t])
        y = first(jax.random.split(k_first, num_samples), x, t)
        acc_sum: Any = 0.0
        for kk in jax.random.split(k_move, steps_per_level - 1) if steps_per_level > 1 else []:
            y, acc = move(jax.random.split(kk, num_samples), y, x, t, steps[t])
            acc_sum = acc_sum + jnp.mean(acc)
        if steps_per_level > 1:
            accs[t] = float(acc_sum) / (steps_per_level - 1)
        logds[t] = logd(y, x, t)
        x = y / _scale(energy, t)
    return LongRunResult(
        x, steps, jnp.asarray(accs, jnp.float32), int(steps_per_level), int(steps_per_level * T), jnp.stack(logds)
    )


@rng_key_first(1)
def run_growing(
    rng_key: jax.Array,
    energy,
    num_samples: int,
    steps_per_level: Sequence[int] = (1, 10, 100),
    *,
    config: LongRunConfig | None = None,
    log_likelihood_fn: Callable | None = None,
    mesh=None,
    progress: bool = False,
    **options,
) -> list[LongRunResult]:
    """Long runs with the same tuned steps and the same rng_key at growing S (the paper's Fig. 8:
    1k, 10k, 100k total steps at T = 1000). Options as :func:`run`."""
    config = resolve_options("long_run.run_growing", LongRunConfig, config, options)
    k_tune, k_run = jax.random.split(rng_key)
    if config.step_sizes is None:
        steps, _ = tune(
            k_tune, energy, config=config, log_likelihood_fn=log_likelihood_fn, **(config.tune_kwargs or {})
        )
        config = config._replace(step_sizes=steps)
    return [
        run(
            k_run,
            energy,
            num_samples,
            steps_per_level=s,
            config=config,
            log_likelihood_fn=log_likelihood_fn,
            mesh=mesh,
            progress=progress,
        )
        for s in steps_per_level
    ]


def plot_step_sizes(result: LongRunResult, path: str, energy=None) -> str:
    """Deprecated: use :func:`ebm_ppl.plotting.plot_step_sizes` (plots live in the plotting layer)."""

    from ebm_ppl.plotting import plot_step_sizes as _plot

    warn(
        "ebm_ppl.sampling.long_run.plot_step_sizes moved to ebm_ppl.plotting.plot_step_sizes; "
        "this alias goes in the next release",
        DeprecationWarning,
    )
    return _plot(result, path, energy, ACCEPTANCE_RANGE)
