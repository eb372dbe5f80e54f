"""NUTS at the prior's level for many problems and chains at once (BlackJAX), compiled once.

Stage 2 of :func:`ebm_ppl.inverse.sample_posterior`: from ``initial_positions`` (P, C, *shape),
NUTS on the exact posterior of every problem,

    log p(x | obs) = log g_l(x) - |obs - A x|^2 / (2 noise_std^2) + const,

(g_l: :func:`ebm_ppl.inverse.smc.prior_log_density_fn`, level 0 = the data law). The P x C chains
are one ``vmap``; the step size is adapted per problem by dual averaging on the mean acceptance of
its C chains during ``num_warmup`` steps (discarded), then frozen. The blocks of steps are
module-level ``jax.jit`` functions taking the energy and the operator as arguments, so a second
call with the same shapes and settings compiles nothing.
"""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import blackjax.mcmc.hmc as bj_hmc
import blackjax.mcmc.nuts as bj_nuts
import jax
import jax.numpy as jnp
import numpy as np
from blackjax.adaptation.step_size import dual_averaging_adaptation

from ebm_ppl import sharding
from ebm_ppl._jax_utils import renamed_keywords, rng_key_first
from ebm_ppl.inverse.density import check_observations, pooled_covariance, posterior_log_density_fn

__all__ = ["NUTSConfig", "nuts_posterior"]


class NUTSConfig(NamedTuple):
    """Static settings (hashable: part of the compiled blocks' cache key)."""

    num_chains: int
    max_num_doublings: int = 6
    target_acceptance: float = 0.8
    level: int = 0


def _logdensity_for(energy, operator, noise_std, obs, level):
    shape = tuple(energy.data_shape)
    ld = posterior_log_density_fn(energy, operator, noise_std, obs, level)
    return lambda x: ld(x.reshape(shape))


def _step_all(energy, operator, noise_std, flat_obs, imm, keys, states, step_per_chain, config, mesh):
    kernel = bj_nuts.build_kernel()

    def one(k, s, o, eps):
        ld = _logdensity_for(energy, operator, noise_std, o, config.level)
        return kernel(k, s, ld, eps, imm, config.max_num_doublings)

    keys, states = sharding.constrain_batch((keys, states), mesh)
    return jax.vmap(one)(keys, states, flat_obs, step_per_chain)


@functools.partial(jax.jit, static_argnames=("config", "mesh"))
def _init_states(energy, operator, noise_std, flat_obs, x_flat, config, mesh=None):
    def init(x, o):
        return bj_hmc.init(x, _logdensity_for(energy, operator, noise_std, o, config.level))

    return jax.vmap(init)(x_flat, flat_obs)


@functools.partial(jax.jit, static_argnames=("config", "mesh"))
def _warm_block(energy, operator, noise_std, flat_obs, imm, states, da_state, keys, config, mesh=None):
    """len(keys) adaptation steps of every chain; returns ((states, da_state), (acceptance, steps))."""
    _, da_update, _ = dual_averaging_adaptation(config.target_acceptance)
    C = config.num_chains
    P = flat_obs.shape[0] // C

    def body(carry, k):
        states, da_state = carry
        eps = jnp.repeat(jnp.exp(da_state.log_step_size), C)
        states, info = _step_all(
            energy, operator, noise_std, flat_obs, imm, jax.random.split(k, P * C), states, eps, config, mesh
        )
        acc = jnp.nan_to_num(info.acceptance_rate.reshape(P, C)).mean(axis=1)
        da_state = jax.vmap(da_update)(da_state, acc)
        return (states, da_state), (acc, info.num_integration_steps.reshape(P, C).mean(1))

    return jax.lax.scan(body, (states, da_state), keys)


@functools.partial(jax.jit, static_argnames=("config", "mesh"))
def _draw_block(energy, operator, noise_std, flat_obs, imm, states, eps, keys, config, mesh=None):
    """len(keys) kept steps of every chain; returns (states, (positions, (acceptance, steps, divergent)))."""
    n = flat_obs.shape[0]

    def body(states, k):
        states, info = _step_all(
            energy, operator, noise_std, flat_obs, imm, jax.random.split(k, n), states, eps, config, mesh
        )
        stats = (info.acceptance_rate, info.num_integration_steps, info.is_divergent)
        return states, (states.position, stats)

    return jax.lax.scan(body, states, keys)


def _blocks(total: int, block: int):
    done = 0
    while done < total:
        n = min(block, total - done)
        yield n
        done += n


@rng_key_first(5)
def nuts_posterior(
    rng_key,
    energy,
    operator,
    noise_std: float,
    observations,
    initial_positions,
    *,
    num_warmup: int = 100,
    num_draws: int = 100,
    inverse_mass_matrix=None,
    initial_step_size: float = 0.5,
    target_acceptance: float = 0.8,
    max_num_doublings: int = 6,
    progress=False,
    block: int = 25,
    mesh=None,
    level: int = 0,
    **deprecated,
):
    """NUTS from ``initial_positions`` (P, C, *data_shape).

    Returns (samples (P, C * num_draws, *data_shape), info). ``inverse_mass_matrix``: (D,) or
    (D, D) shared by all problems (default: the pooled within-problem covariance of the starts).
    ``progress``: False, True (a tqdm bar) or an open bar to advance by one per step.
    ``mesh``: split the P * C chains (problem-major) over a device mesh (P a multiple of its size).
    ``level``: the prior's noise level (:func:`~ebm_ppl.inverse.density.prior_log_density_fn`)."""
    renamed = renamed_keywords(
        "inverse.nuts_posterior", deprecated, {"num_samples": "num_draws", "prior_level": "level"}
    )
    num_draws, level = renamed.get("num_draws", num_draws), renamed.get("level", level)
    obs = check_observations(operator, observations)
    x0 = jnp.asarray(initial_positions, jnp.float32)
    P, C = x0.shape[:2]
    shape = tuple(energy.data_shape)
    if x0.shape != (P, C) + shape or P != obs.shape[0]:
        raise ValueError(f"initial positions must have shape ({obs.shape[0]}, C, {shape}), got {x0.shape}")
    if num_warmup < 0 or num_draws < 0:
        raise ValueError(f"num_warmup and num_draws must be non-negative, got {num_warmup}, {num_draws}")
    if max_num_doublings < 1:
        raise ValueError(f"max_num_doublings must be at least 1, got {max_num_doublings}")
    imm = pooled_covariance(x0) if inverse_mass_matrix is None else jnp.asarray(inverse_mass_matrix, jnp.float32)
    D = math.prod(shape)
    if imm.shape not in ((D,), (D, D)):
        raise ValueError(f"inverse mass matrix must have shape ({D},) or ({D}, {D}), got {imm.shape}")
    config = NUTSConfig(int(C), int(max_num_doublings), float(target_acceptance), int(level))
    da_init, _, da_final = dual_averaging_adaptation(config.target_acceptance)
    flat_obs = jnp.repeat(obs, C, axis=0)
    if mesh is not None:
        sharding.check_divisible(P, mesh, "number of problems")
        flat_obs = sharding.shard_batch(flat_obs, mesh)
    noise = jnp.float32(noise_std)
    common = (energy, operator, noise, flat_obs)
    states = _init_states(*common, sharding.maybe_shard_batch(x0.reshape(P * C, -1), mesh), config, mesh)
    da_state = jax.vmap(da_init)(jnp.full((P,), initial_step_size, jnp.float32))
    k_warm, k_draw = jax.random.split(rng_key)
    bar, own_bar = _progress(num_warmup + num_draws, "NUTS", progress)
    warm_acc = []
    for i, n in enumerate(_blocks(num_warmup, block)):
        keys = jax.random.split(jax.random.fold_in(k_warm, i), n)
        (states, da_state), (acc, _) = _warm_block(*common, imm, states, da_state, keys, config, mesh)
        warm_acc.append(acc)
        bar.update(n)
    step_size = jax.vmap(da_final)(da_state) if num_warmup > 0 else jnp.full((P,), initial_step_size)
    eps = jnp.repeat(step_size, C)
    draws, accs, nsteps, divs = [], [], [], []
    for i, n in enumerate(_blocks(num_draws, block)):
        keys = jax.random.split(jax.random.fold_in(k_draw, i), n)
        states, (pos, (acc, ns, dv)) = _draw_block(*common, imm, states, eps, keys, config, mesh)
        draws.append(np.asarray(pos))
        accs.append(np.asarray(acc))
        nsteps.append(np.asarray(ns))
        divs.append(np.asarray(dv))
        bar.update(n)
    if own_bar:
        bar.close()
    pos = np.concatenate(draws, axis=0) if draws else np.zeros((0, P * C, D), np.float32)  # (S, P*C, D)
    S = pos.shape[0]
    samples = pos.reshape(S, P, C, D).transpose(1, 2, 0, 3).reshape((P, C * S) + shape)
    info = {
        "nuts_step_size": step_size,
        "nuts_acceptance": float(np.mean(np.concatenate(accs))) if accs else float("nan"),
        "nuts_mean_integration_steps": float(np.mean(np.concatenate(nsteps))) if nsteps else float("nan"),
        "nuts_divergences": int(np.sum(np.concatenate(divs))) if divs else 0,
        "nuts_draws_per_chain": S,
        "inverse_mass_matrix_kind": "dense" if imm.ndim == 2 else "diag",
    }
    return jnp.asarray(samples), info


def _progress(total, desc, enabled):
    """(bar, owned): a new tqdm bar for ``enabled=True``, the given bar, or a silent stand-in."""
    if enabled is True:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, leave=False), True
    if enabled:
        return enabled, False

    class _Null:
        def update(self, n):
            pass

        def close(self):
            pass

    return _Null(), False
