"""Per-level step sizes of the MH inner samplers: the pilot descent and its cache.
See :mod:`ebm_ppl.sampling.progressive`."""

from __future__ import annotations

import functools
import weakref
from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ebm_ppl._jax_utils import inner_unroll, rng_key_first, robbins_monro_increment
from ebm_ppl.sampling.progressive.kernel import (
    DEFAULT_TARGET_ACCEPTANCE,
    MH_SAMPLERS,
    _check_inner,
    _level_constants,
    _one_move,
    _start_point,
    conditional_log_density_fn,
    default_step_sizes,
)

#: the pilot tuning's key: the tuned steps are a function of the energy and the settings only
TUNE_SEED = 0


class _TuneSettings(NamedTuple):
    """The static settings of the pilot (hashable: one compilation per distinct value)."""

    inner: str
    num_chains: int
    num_adapt: int
    num_inner_steps: int
    target: float
    num_integration_steps: int
    log_likelihood_fn: Callable | None
    start: str


@functools.partial(jax.jit, static_argnames=("settings",))
def _tune_levels(energy, key, init_steps, settings: _TuneSettings):
    """The pilot descent of :func:`tune_step_sizes`; compiled once per shapes and settings."""
    move = _one_move(settings.inner, settings.num_integration_steps)
    ll, n = settings.log_likelihood_fn, settings.num_chains
    k_init, k_run = jax.random.split(key)
    x = jax.random.normal(k_init, (n,) + tuple(energy.data_shape))
    # langevin/mala steps are squared: adapt the log of the step itself (factor 2 in log space)
    power = 2.0 if settings.inner == "mala" else 1.0

    def level(x, inputs):
        t, k = inputs
        k_start, k_adapt, k_move = jax.random.split(k, 3)

        def batch_move(key, y, step):
            keys = jax.random.split(key, n)
            return jax.vmap(lambda kk, yy, xn: move(kk, yy, conditional_log_density_fn(energy, xn, t, ll), step))(
                keys, y, x
            )

        y = jax.vmap(
            lambda kk, xn: _start_point(
                kk, energy, xn, t, ll, settings.start, conditional_log_density_fn(energy, xn, t, ll)
            )
        )(jax.random.split(k_start, n), x)

        def adapt(carry, inp):
            y, log_step = carry
            i, kk = inp
            y, acc = batch_move(kk, y, jnp.exp(log_step))
            acc = jnp.nan_to_num(jnp.mean(acc))
            log_step = log_step + robbins_monro_increment(acc, settings.target, 2.0 * power, i)
            return (y, log_step), acc

        (y, log_step), _ = jax.lax.scan(
            adapt,
            (y, jnp.log(init_steps[t])),
            (jnp.arange(settings.num_adapt), jax.random.split(k_adapt, settings.num_adapt)),
        )
        step = jnp.exp(log_step)

        def run(y, kk):
            y, acc = batch_move(kk, y, step)
            return y, jnp.mean(acc)

        y, accs = jax.lax.scan(
            run,
            y,
            jax.random.split(k_move, settings.num_inner_steps),
            unroll=inner_unroll(settings.num_inner_steps, len(energy.data_shape)),
        )
        _, c_t = _level_constants(energy, t, y.dtype)
        return y / c_t, (step, jnp.mean(accs))

    levels = jnp.arange(energy.num_levels - 1, -1, -1)
    _, (steps, accs) = jax.lax.scan(level, x, (levels, jax.random.split(k_run, energy.num_levels)))
    return steps[::-1], accs[::-1]


@rng_key_first(1)
def tune_step_sizes(
    rng_key: jax.Array,
    energy,
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
    the acceptance being the pilot's mean over those last transitions. Compiled once per energy
    type, shapes and settings.
    """
    if inner not in MH_SAMPLERS:
        raise ValueError(f"step tuning needs an MH-corrected inner sampler {MH_SAMPLERS}, got {inner!r}")
    _check_inner(inner, num_inner_steps, start)
    for name, value in (("num_chains", num_chains), ("num_adapt", num_adapt)):
        if int(value) < 1:
            raise ValueError(f"{name} must be a positive integer, got {value}")
    target = DEFAULT_TARGET_ACCEPTANCE[inner] if target_acceptance is None else float(target_acceptance)
    if not 0.0 < target < 1.0:
        raise ValueError(f"target_acceptance must lie in (0, 1), got {target}")
    init_steps = (
        default_step_sizes(energy, inner)
        if initial_step_sizes is None
        else jnp.asarray(initial_step_sizes, jnp.float32)
    )
    settings = _TuneSettings(
        inner,
        int(num_chains),
        int(num_adapt),
        int(num_inner_steps),
        target,
        int(num_integration_steps),
        log_likelihood_fn,
        start,
    )
    return _tune_levels(energy, rng_key, init_steps, settings)


#: tuned steps per energy object: id(energy) -> (weak reference, {settings: steps})
_TUNED: dict[int, tuple[Any, dict[Any, Any]]] = {}


def _forget(energy_id: int):
    """The weakref callback that drops an energy's cached step sizes when it is collected."""

    def callback(_ref):
        _TUNED.pop(energy_id, None)

    return callback


def tuned_step_sizes(
    energy,
    inner: str,
    *,
    num_integration_steps: int = 2,
    log_likelihood_fn=None,
    start: str = "x_next",
    tune_kwargs: dict | None = None,
) -> jax.Array:
    """:func:`tune_step_sizes` with the fixed key ``TUNE_SEED``, cached per energy object and settings
    (a pure function of both, so the cache changes no result). Shape (T,)."""
    kwargs = dict(tune_kwargs or {})
    try:
        settings = (inner, int(num_integration_steps), log_likelihood_fn, start, tuple(sorted(kwargs.items())))
        hash(settings)
    except TypeError:  # unhashable tune_kwargs (e.g. initial_step_sizes as an array): no caching
        settings = None
    entry = _TUNED.get(id(energy))
    if entry is not None and entry[0]() is not energy:
        entry = None
    if settings is not None and entry is not None and settings in entry[1]:
        return entry[1][settings]
    steps, _ = tune_step_sizes(
        jax.random.key(TUNE_SEED),
        energy,
        inner,
        num_integration_steps=num_integration_steps,
        log_likelihood_fn=log_likelihood_fn,
        start=start,
        **kwargs,
    )
    if settings is not None:
        try:
            ref = weakref.ref(energy, _forget(id(energy)))
        except TypeError:
            return steps
        if entry is None:
            entry = _TUNED[id(energy)] = (ref, {})
        entry[1][settings] = steps
    return steps


def resolve_step_sizes(energy, inner: str, step_sizes, tune: Callable[[], object], step_scale: float = 1.0):
    """The per-level step sizes a descent uses, (T,) float32, or None for the ``"normal"`` inner
    sampler (it takes no step): ``step_sizes`` when given; else ``tune()`` for the MH-corrected
    samplers (``MH_SAMPLERS``); else the paper's defaults (:func:`default_step_sizes`) times
    ``step_scale``."""
    if step_sizes is None and inner in MH_SAMPLERS:
        step_sizes = tune()
    elif step_sizes is None and inner != "normal":
        step_sizes = default_step_sizes(energy, inner, step_scale)
    return None if step_sizes is None else jnp.asarray(step_sizes, jnp.float32)
