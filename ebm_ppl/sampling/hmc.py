"""BlackJAX HMC / NUTS on one level of an energy, or on any NumPyro model (EBMPrior included).

* :func:`level_log_density_fn` gives the log density of level t of an energy, in model space
  (y_t, unnormalised f(y, t)) or in data space (x_t = y_t / c_t: f(c_t x, t) + D log c_t,
  which at t = 0 is the data density g(x_0) = a^D p(a x_0) up to log Z).
* :func:`run_chains` runs C chains (``vmap``) of HMC or NUTS: per-chain window adaptation
  (step size and diagonal mass matrix, BlackJAX ``window_adaptation``), then a ``lax.scan`` of
  draws keeping ``log_density``, ``acceptance_rate``, ``step_size``, ``is_divergent``,
  ``tree_depth`` (NUTS: number of trajectory doublings) and ``num_gradient_evaluations``.
* :func:`sample_numpyro_model` does the same on a NumPyro model through
  ``numpyro.infer.util.initialize_model`` (unconstrained potential, then constrained samples).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp

from ebm_ppl import sharding
from ebm_ppl._jax_utils import renamed_keywords, rng_key_first
from ebm_ppl.energy.base import level_scale, logdensity_fn
from ebm_ppl.sampling import progressive

__all__ = ["Chains", "level_log_density_fn", "run_chains", "sample_level", "sample_numpyro_model"]


class Chains(NamedTuple):
    """Draws of C chains: ``position`` (C, N, *shape) (a pytree for NumPyro models), and per draw
    (C, N): ``log_density``, ``acceptance_rate``, ``is_divergent``, ``tree_depth``,
    ``num_gradient_evaluations``; ``step_size`` (C,), ``inverse_mass_matrix`` (C, D)."""

    position: Any
    log_density: jax.Array
    acceptance_rate: jax.Array
    is_divergent: jax.Array
    tree_depth: jax.Array
    num_gradient_evaluations: jax.Array
    step_size: jax.Array
    inverse_mass_matrix: jax.Array


def level_log_density_fn(
    energy, t: int = 0, space: str = "data", log_likelihood_fn: Callable | None = None
) -> Callable:
    """x -> log density of level t for one example (shape data_shape), plus an optional
    ``log_likelihood_fn(x, t)`` (x in the chosen space)."""
    prior = logdensity_fn(energy, t, space)

    def logdensity(x):
        value = prior(x)
        if log_likelihood_fn is not None:
            value = value + log_likelihood_fn(x, t)
        return value

    return logdensity


@rng_key_first(0)
def run_chains(
    rng_key: jax.Array,
    logdensity_fn: Callable,
    initial_positions,
    *,
    algorithm: str = "nuts",
    num_warmup: int = 500,
    num_draws: int = 500,
    num_integration_steps: int = 2,
    target_acceptance: float = 0.8,
    step_size: float | None = None,
    inverse_mass_matrix=None,
    max_num_doublings: int = 10,
    mesh=None,
    **deprecated,
) -> Chains:
    """C chains of BlackJAX ``hmc`` or ``nuts`` from ``initial_positions`` (leading axis C).

    With a device ``mesh`` (:mod:`ebm_ppl.sharding`) the chains are split over its devices (C
    must be a multiple of its size); each device runs its own chains, the results are those of
    one device.

    With ``step_size`` given, no adaptation is run (``inverse_mass_matrix`` defaults to ones);
    otherwise each chain runs ``window_adaptation`` for ``num_warmup`` steps.
    """
    num_draws = renamed_keywords("hmc.run_chains", deprecated, {"num_samples": "num_draws"}).get("num_draws", num_draws)
    import blackjax
    from jax.flatten_util import ravel_pytree

    if algorithm not in ("nuts", "hmc"):
        raise ValueError(f"algorithm must be 'nuts' or 'hmc', got {algorithm!r}")
    alg = blackjax.nuts if algorithm == "nuts" else blackjax.hmc
    extra = (
        {"max_num_doublings": max_num_doublings}
        if algorithm == "nuts"
        else {"num_integration_steps": num_integration_steps}
    )
    leaves = jax.tree_util.tree_leaves(initial_positions)
    num_chains = leaves[0].shape[0]
    dim = ravel_pytree(jax.tree_util.tree_map(lambda v: v[0], initial_positions))[0].size

    def one_chain(rng_key, position):
        k_warm, k_run = jax.random.split(rng_key)
        if step_size is None:
            warmup = blackjax.window_adaptation(alg, logdensity_fn, target_acceptance_rate=target_acceptance, **extra)
            (state, params), _ = warmup.run(k_warm, position, num_steps=num_warmup)
            eps, imm = params["step_size"], params["inverse_mass_matrix"]
        else:
            eps = jnp.asarray(step_size, jnp.float32)
            imm = jnp.ones(dim) if inverse_mass_matrix is None else jnp.asarray(inverse_mass_matrix)
            state = alg.init(position, logdensity_fn)
        sampler = alg(logdensity_fn, step_size=eps, inverse_mass_matrix=imm, **extra)

        def draw(state, k):
            state, info = sampler.step(k, state)
            depth = getattr(info, "num_trajectory_expansions", jnp.zeros((), jnp.int32))
            stats = (
                state.logdensity,
                info.acceptance_rate,
                info.is_divergent,
                depth,
                info.num_integration_steps,
            )
            return state, (state.position, stats)

        _, (positions, stats) = jax.lax.scan(draw, state, jax.random.split(k_run, num_draws))
        return positions, stats, eps, imm

    keys = jax.random.split(rng_key, num_chains)
    if mesh is not None:
        keys, initial_positions = sharding.maybe_shard_batch((keys, initial_positions), mesh, "number of chains")
    positions, (logd, acc, div, depth, ngrad), eps, imm = jax.jit(jax.vmap(one_chain))(keys, initial_positions)
    return Chains(positions, logd, acc, div, depth, ngrad, eps, imm)


@rng_key_first(1)
def sample_level(
    rng_key: jax.Array,
    energy,
    *,
    t: int = 0,
    space: str = "data",
    num_chains: int = 4,
    init: str = "level",
    log_likelihood_fn: Callable | None = None,
    **kwargs,
) -> Chains:
    """:func:`run_chains` on level t of ``energy``. Chains start from progressive-normal draws
    of that level (``init="level"``: one normal-approximation descent T -> t, cheap and close to
    the target) or N(0, I) (``init="normal"``)."""
    k_init, k_run = jax.random.split(rng_key)
    shape = (num_chains,) + tuple(energy.data_shape)
    if init == "normal":
        x0 = jax.random.normal(k_init, shape)
    elif init == "level":
        levels = progressive.sample_trace(
            k_init, energy, num_chains, inner="normal", num_inner_steps=0, mesh=kwargs.get("mesh")
        ).levels
        x_t = levels[energy.num_levels - 1 - int(t)] if int(t) < energy.num_levels else jax.random.normal(k_init, shape)
        x0 = x_t if space == "data" else x_t * level_scale(energy, t)
    else:
        raise ValueError(f"init must be 'level' or 'normal', got {init!r}")
    logdensity = level_log_density_fn(energy, t, space, log_likelihood_fn)
    return run_chains(k_run, logdensity, x0, **kwargs)


@rng_key_first(0)
def sample_numpyro_model(
    rng_key: jax.Array,
    model: Callable,
    *model_args,
    num_chains: int = 4,
    model_kwargs: dict | None = None,
    **kwargs,
):
    """BlackJAX HMC/NUTS on a NumPyro model (any sites numpyro can reparametrise, EBMPrior
    sites included). Returns ``(samples, chains)``: ``samples`` a dict site -> (C, N, *shape)
    of constrained values (latent sites and deterministic sites), ``chains`` the raw
    :class:`Chains` in unconstrained space."""
    from numpyro.infer.util import initialize_model

    model_kwargs = model_kwargs or {}
    k_init, k_run = jax.random.split(rng_key)
    keys = jax.random.split(k_init, num_chains)
    param_info, potential_fn, postprocess_fn, _ = initialize_model(
        keys, model, model_args=model_args, model_kwargs=model_kwargs, dynamic_args=True
    )
    potential = potential_fn(*model_args, **model_kwargs)
    postprocess = postprocess_fn(*model_args, **model_kwargs)
    chains = run_chains(k_run, lambda z: -potential(z), param_info.z, **kwargs)
    samples = jax.vmap(jax.vmap(postprocess))(chains.position)
    return samples, chains
