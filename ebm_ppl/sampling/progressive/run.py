"""Progressive descents: ``as_top_level_api`` and ``sample`` (compiled once per shapes and settings).
See :mod:`ebm_ppl.sampling.progressive`."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp

from ebm_ppl import sharding
from ebm_ppl._jax_utils import resolve_options, rng_key_first, scan_or_loop, warn
from ebm_ppl.sampling import top_level as _top
from ebm_ppl.sampling.progressive.kernel import (
    DEFAULT_INNER,
    MH_SAMPLERS,
    ProgressiveState,
    _check_inner,
    build_kernel,
    default_num_inner_steps,
    default_start,
    init,
)
from ebm_ppl.sampling.progressive.tuning import resolve_step_sizes, tuned_step_sizes

if TYPE_CHECKING:
    from jax.sharding import Mesh


def as_top_level_api(
    energy,
    inner: str = DEFAULT_INNER,
    num_inner_steps: int | None = None,
    step_sizes=None,
    *,
    step_scale: float = 1.0,
    num_integration_steps: int = 2,
    log_likelihood_fn: Callable | None = None,
    start: str = "x_next",
):
    """A BlackJAX ``SamplingAlgorithm(init, step)`` bound to ``energy``:
    ``init(position)`` puts a chain at level T, ``step(key, state)`` moves it one level down.
    Without ``step_sizes`` the MH samplers use the schedule's untuned steps (:func:`default_step_sizes`)."""
    from blackjax.base import SamplingAlgorithm

    kernel = build_kernel(
        inner,
        num_inner_steps,
        step_scale,
        num_integration_steps=num_integration_steps,
        log_likelihood_fn=log_likelihood_fn,
        start=start,
    )
    steps = None if step_sizes is None else jnp.asarray(step_sizes, jnp.float32)

    def init_fn(position, rng_key=None):
        return init(position, energy)

    def step_fn(rng_key, state):
        return kernel(rng_key, state, energy, steps)

    return SamplingAlgorithm(init_fn, step_fn)


class _RunSettings(NamedTuple):
    """Static settings of one descent (hashable: one compilation per distinct value and shapes)."""

    inner: str
    num_inner_steps: int
    step_scale: float
    num_integration_steps: int
    log_likelihood_fn: Callable | None
    start: str
    mesh: Mesh | None


@functools.partial(jax.jit, static_argnames=("settings",))
def _level_step(states, key, *, energy, steps, settings: _RunSettings):
    """All chains one level down (vmapped kernel); compiled once per shapes and settings."""
    kernel = build_kernel(
        settings.inner,
        settings.num_inner_steps,
        settings.step_scale,
        num_integration_steps=settings.num_integration_steps,
        log_likelihood_fn=settings.log_likelihood_fn,
        start=settings.start,
    )
    n = states.position.shape[0]
    keys = sharding.constrain_batch(jax.random.split(key, n), settings.mesh)
    states, info = jax.vmap(kernel, in_axes=(0, 0, None, None))(keys, states, energy, steps)
    return states, (states.position, info)


TOP_LEVEL = ("auto", "tempered", "normal")


class ProgressiveRunInfo(NamedTuple):
    """Figures of one descent: ``step_sizes`` (T,) used (None for untuned Langevin), per-level
    ``acceptance_rate`` (T - level,) and ``log_density`` (T - level, num_samples), both indexed by
    t - level, and ``top_level_stages`` (tempering stages of the top level, 0 if none)."""

    step_sizes: jax.Array | None
    acceptance_rate: jax.Array
    log_density: jax.Array
    top_level_stages: jax.Array


class ProgressiveTrace(NamedTuple):
    """What :func:`sample_trace` returns: ``samples`` (num_samples, *data_shape), the x_level
    reached; ``levels`` (T - level, num_samples, *data_shape), x_t at t = T-1, ..., level; ``info``."""

    samples: jax.Array
    levels: jax.Array
    info: ProgressiveRunInfo


class ProgressiveConfig(NamedTuple):
    """The options of :func:`sample` and :func:`sample_trace` (see :func:`sample_trace` for what
    each default means): the ``inner`` sampler and its ``num_inner_steps`` per level (None: 10 for
    MALA, :func:`default_num_inner_steps`), ``step_scale`` (a float or (T,) multipliers of the
    steps), per-level ``step_sizes`` (T,) (None: tuned, or the schedule's for Langevin),
    ``num_integration_steps`` (HMC), ``start`` of each level's chain (None: :func:`default_start`),
    ``tune_kwargs`` for :func:`tune_step_sizes`, and the ``top_level`` start."""

    inner: str = DEFAULT_INNER
    num_inner_steps: int | None = None
    step_scale: float = 1.0
    step_sizes: object = None
    num_integration_steps: int = 2
    start: str | None = None
    tune_kwargs: dict | None = None
    top_level: str = "auto"


@rng_key_first(1)
def sample_trace(
    rng_key: jax.Array,
    energy,
    num_samples: int,
    *,
    level: int = 0,
    config: ProgressiveConfig | None = None,
    log_likelihood_fn: Callable | None = None,
    mesh=None,
    **options,
) -> ProgressiveTrace:
    """Progressive samples of the data x_0 (data space) with every level visited and the run's figures.

    Defaults: ``inner="mala"`` with K = 10 (:func:`default_num_inner_steps`), each level's chain
    started at a normal-approximation draw, or x_{t+1} where that draw is absurd (``start="auto"``,
    see :func:`default_start`; ``"x_next"`` for langevin/normal), and per-level steps tuned by
    :func:`tune_step_sizes` (rng_key ``TUNE_SEED``, cached per energy object: a second call pays neither
    the pilot nor a compilation). ``inner="langevin"`` (K = 30, the schedule's steps times
    ``step_scale``) is the paper's Algorithm 2: unadjusted, biased on exact targets
    (docs/sampling.md: ncsn2 mode weight 0.60 against 0.80).

    ``top_level``: ``"auto"`` starts an MH-corrected descent from tempered SMC particles of level
    T-1 when that level has no recovery term (:mod:`ebm_ppl.sampling.top_level`); ``"tempered"``
    forces it there, ``"normal"`` keeps the plain N(0, I) start. ``level``: stop at x_level (the
    level's own variable) instead of x_0.

    With a device ``mesh`` (:mod:`ebm_ppl.sharding`) the samples are split over its devices
    (``num_samples`` must be a multiple of its size); the draws equal the one-device ones.

    Returns a :class:`ProgressiveTrace`: ``samples`` (num_samples, *data_shape), x_level; ``levels``
    (T - level, num_samples, *data_shape), x_t for every level visited, ordered t = T-1, ..., level;
    ``info`` (:class:`ProgressiveRunInfo`). For the MH-corrected inner samplers without
    ``step_sizes``, the steps are tuned first (``tune_kwargs`` for :func:`tune_step_sizes`).

    The options are the fields of :class:`ProgressiveConfig`, given as ``config=`` or as keywords
    of their own (a keyword overrides the config).
    """
    config = resolve_options("progressive.sample", ProgressiveConfig, config, options)
    inner, step_scale, step_sizes = config.inner, config.step_scale, config.step_sizes
    num_integration_steps, tune_kwargs, top_level = config.num_integration_steps, config.tune_kwargs, config.top_level
    num_inner_steps = default_num_inner_steps(inner) if config.num_inner_steps is None else config.num_inner_steps
    start = default_start(inner) if config.start is None else config.start
    _check_inner(inner, num_inner_steps, start)
    T = energy.num_levels
    if isinstance(num_samples, bool) or int(num_samples) != num_samples or num_samples < 1:
        raise ValueError(f"num_samples must be a positive integer, got {num_samples!r}")
    if isinstance(level, bool) or int(level) != level or not 0 <= level < T:
        raise ValueError(f"level must be an integer in 0..{T - 1}, got {level!r}")
    if top_level not in TOP_LEVEL:
        raise ValueError(f"top_level must be one of {TOP_LEVEL}, got {top_level!r}")
    num_samples, level = int(num_samples), int(level)
    k_top, k_init, k_run = jax.random.split(rng_key, 3)
    steps = resolve_step_sizes(
        energy,
        inner,
        step_sizes,
        lambda: tuned_step_sizes(
            energy,
            inner,
            num_integration_steps=num_integration_steps,
            log_likelihood_fn=log_likelihood_fn,
            start=start,
            tune_kwargs=tune_kwargs,
        ),
        step_scale,
    )
    if steps is not None and steps.shape != (T,):
        raise ValueError(f"step_sizes must have shape ({T},), got {steps.shape}")
    if mesh is not None:
        sharding.check_divisible(num_samples, mesh, "number of samples (chains)")
    x_top = jax.random.normal(k_init, (num_samples,) + tuple(energy.data_shape))
    tempered = top_level == "tempered" or (top_level == "auto" and inner in MH_SAMPLERS)
    stages = jnp.zeros((), jnp.int32)
    if tempered and _top.has_marginal_top(energy):
        if steps is None:
            raise ValueError("top_level='tempered' needs step sizes (an MH inner sampler or step_sizes)")
        # BlackJAX MALA step s (y + s grad + sqrt(2 s) e) = delta^2 / 2 = eps^2 / 2 (one leapfrog step)
        top_step = 0.5 * (steps[T - 1] if inner in ("mala", "langevin") else steps[T - 1] ** 2)
        x_top, top_info = _top.tempered_top_level(
            k_top, energy, x_top, top_step, num_mcmc_steps=int(num_inner_steps), log_likelihood_fn=log_likelihood_fn
        )
        stages = top_info.num_stages
    x_top = sharding.maybe_shard_batch(x_top, mesh)
    # step_scale (a float or per-level (T,) multipliers) is already in ``steps``
    settings = _RunSettings(
        inner, int(num_inner_steps), 1.0, int(num_integration_steps), log_likelihood_fn, start, mesh
    )
    states = ProgressiveState(x_top, jnp.full((num_samples,), T, jnp.int32))
    step = functools.partial(_level_step, energy=energy, steps=steps, settings=settings)
    # one jitted level per dispatch outside a trace (fast convolutions on CPU), lax.scan inside one
    states, (trajectory, info) = scan_or_loop(step, states, jax.random.split(k_run, T)[: T - level])
    run_info = ProgressiveRunInfo(
        step_sizes=steps,
        acceptance_rate=jnp.mean(info.acceptance_rate, axis=1)[::-1],
        log_density=info.log_density[::-1],
        top_level_stages=stages,
    )
    return ProgressiveTrace(states.position, trajectory, run_info)


@rng_key_first(1)
def sample(
    rng_key: jax.Array,
    energy,
    num_samples: int,
    *,
    level: int = 0,
    config: ProgressiveConfig | None = None,
    log_likelihood_fn: Callable | None = None,
    mesh=None,
    return_levels: bool = False,
    return_info: bool = False,
    **options,
):
    """Progressive samples of the data x_0 (data space), shape (num_samples, *data_shape): the
    ``samples`` of :func:`sample_trace` (every option is the same; see it for the defaults).

    ``return_levels`` / ``return_info`` (deprecated: a flag should not change the result's type) give
    the old tuples ``(x, levels)``, ``(x, info_dict)`` or ``(x, levels, info_dict)``; use
    :func:`sample_trace`, whose result always holds all three."""
    trace = sample_trace(
        rng_key,
        energy,
        num_samples,
        level=level,
        config=config,
        log_likelihood_fn=log_likelihood_fn,
        mesh=mesh,
        **options,
    )
    if not (return_levels or return_info):
        return trace.samples
    warn(
        "progressive.sample(return_levels=..., return_info=...) is deprecated: use progressive.sample_trace, "
        "which returns ProgressiveTrace(samples, levels, info)",
        DeprecationWarning,
    )
    out = (trace.samples, trace.levels) if return_levels else (trace.samples,)
    return out + (trace.info._asdict(),) if return_info else out
