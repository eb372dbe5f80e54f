"""Drifting sampler: training state, the update step and the training loop."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ebm_ppl._jax_utils import rng_key_first
from ebm_ppl.sampling.drifting.model import DriftingConfig, make_generator
from ebm_ppl.sampling.drifting.sampler import DriftingSampler
from ebm_ppl.sampling.drifting.scores import (
    batch_mean_shift_score,
    drift_loss,
    energy_function,
    level_at,
    level_bandwidths,
    level_score_function,
)


class TrainState(NamedTuple):
    params: Any  # the generator's Flax variables
    opt_state: optax.OptState
    step: jax.Array


def _optimizer(config: DriftingConfig):
    if config.lr_schedule == "cosine":
        return optax.adam(optax.cosine_decay_schedule(config.learning_rate, max(1, config.num_steps), alpha=0.05))
    return optax.adam(config.learning_rate)


def init(key, config: DriftingConfig, data_shape) -> TrainState:
    """Initial generator parameters and Adam state."""
    module = make_generator(config, data_shape)
    params = module.init(key, jnp.zeros((1, config.latent_dim)))
    return TrainState(params, _optimizer(config).init(params), jnp.asarray(0, jnp.int32))


def _level_drift_loss(params, module, E, score_fn, energy, key, config: DriftingConfig, t, rho, eta):
    """The stop-gradient loss with the ``"level"`` target score at level t (bandwidth rho)."""
    z = jax.random.normal(key, (config.batch_size, config.latent_dim))
    x_flat = module.apply(params, z).reshape(config.batch_size, -1)
    xs = jax.lax.stop_gradient(x_flat)
    V = eta * (score_fn(energy, xs, t) - batch_mean_shift_score(xs, rho, config.sampler_include_self))
    target = jax.lax.stop_gradient(xs + V)
    loss = jnp.mean(jnp.sum((x_flat - target) ** 2, -1))
    return loss, {"drift_norm": jnp.mean(jnp.sqrt(jnp.sum(V**2, -1))), "mean_energy": jnp.mean(E(xs))}


def build_update(module, E_fn: Callable, config: DriftingConfig, energy=None) -> Callable:
    """``update(energy, state, key) -> (state, metrics)``: one drifting update (pure). The
    ``"level"`` estimator needs ``energy`` here (its schedule fixes the bandwidths)."""
    opt = _optimizer(config)
    if config.estimator == "level":
        if energy is None or energy.num_levels < 2:
            raise ValueError("the 'level' estimator needs a noise-conditional energy with >= 2 levels")
        T = energy.num_levels
        start = T - 1 if config.level_start is None else int(config.level_start)
        if not 1 <= config.level_end <= start <= T - 1:
            raise ValueError(f"need 1 <= level_end ({config.level_end}) <= level_start ({start}) <= {T - 1}")
        rhos = jnp.asarray(level_bandwidths(energy), jnp.float32)
        score_fn = level_score_function(energy)
        rho_end = float(level_bandwidths(energy)[config.level_end])

        def level_update(e, state: TrainState, key):
            E = lambda x: E_fn(e, x)  # noqa: E731
            t = level_at(config, state.step, start)
            rho = rhos[t]
            eta = (
                config.eta * (rho / rho_end) ** 2
                if config.eta_scales_with_sigma
                else jnp.asarray(config.eta, jnp.float32)
            )
            (loss, aux), grads = jax.value_and_grad(_level_drift_loss, has_aux=True)(
                state.params, module, E, score_fn, e, key, config, t, rho, eta
            )
            updates, opt_state = opt.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
            return TrainState(params, opt_state, state.step + 1), {"loss": loss, **aux}

        return level_update

    def update(energy, state: TrainState, key):
        E = lambda x: E_fn(energy, x)  # noqa: E731
        sigma = config.sigma_at(state.step)
        (loss, aux), grads = jax.value_and_grad(drift_loss, has_aux=True)(state.params, module, E, key, config, sigma)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, opt_state, state.step + 1), {"loss": loss, **aux}

    return update


@rng_key_first(1)
def train(
    rng_key,
    energy,
    config: DriftingConfig = DriftingConfig(),
    *,
    level: int = 0,
    space: str = "data",
    chunk: int = 100,
    progress: bool = True,
    state: TrainState | None = None,
):
    """Train a one-step sampler for ``energy`` at ``level``; returns (DriftingSampler, history).

    ``history`` holds per-chunk means of the loss (= eta^2 * mean |s_p - s_q|^2), the drift norm,
    and the mean energy of the batch, plus ``seconds``. Pass ``state`` to resume.
    """
    import time

    from tqdm.auto import tqdm

    E_fn = energy_function(energy, level, space)
    module = make_generator(config, energy.data_shape)
    k_init, k_train = jax.random.split(rng_key)
    if state is None:
        state = init(k_init, config, energy.data_shape)
    if config.estimator == "level" and (int(level) != 0 or space != "data"):
        raise ValueError("the 'level' estimator samples level 0 in data space only")
    update = build_update(module, E_fn, config, energy)

    @jax.jit
    def run_chunk(energy, state, keys):
        def body(s, k):
            return update(energy, s, k)

        state, metrics = jax.lax.scan(body, state, keys)
        return state, jax.tree_util.tree_map(jnp.mean, metrics)

    history: dict[str, Any] = {"step": [], "loss": [], "drift_norm": [], "mean_energy": []}
    remaining = int(config.num_steps)
    t0 = time.perf_counter()
    bar = tqdm(total=remaining, desc="drifting", disable=not progress, leave=False)
    keys_all = jax.random.split(k_train, max(remaining, 1))
    done = 0
    while done < remaining:
        n = min(chunk, remaining - done)
        state, m = run_chunk(energy, state, keys_all[done : done + n])
        done += n
        m = jax.device_get(m)
        if not np.isfinite(m["loss"]):
            bar.close()
            raise FloatingPointError(
                f"drifting loss became {m['loss']} at step {done}; lower sigma/eta or the learning rate"
            )
        history["step"].append(int(state.step))
        for k in ("loss", "drift_norm", "mean_energy"):
            history[k].append(float(m[k]))
        bar.set_postfix(loss=f"{m['loss']:.4g}", E=f"{m['mean_energy']:.3f}")
        bar.update(n)
    bar.close()
    history["seconds"] = time.perf_counter() - t0
    sampler = DriftingSampler(config, tuple(energy.data_shape), state.params, {"level": int(level), "space": space})
    return sampler, history, state
