"""BlackJAX adaptive tempered SMC from N(0, I): the baseline estimator of log Z."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl import sharding
from ebm_ppl._jax_utils import rng_key_first
from ebm_ppl.logz.estimate import LogZEstimate
from ebm_ppl.logz.path import _check_level, _log_z_top, _model_scales, as_energy
from ebm_ppl.logz.pilot import pilot_path

__all__ = ["smc"]


@rng_key_first(1)
def smc(
    rng_key,
    energy,
    *,
    level: int = 0,
    num_particles: int = 1024,
    num_mcmc_steps: int = 4,
    target_ess: float = 0.5,
    step_size: float | None = None,
    max_steps: int = 1000,
    data_shape=None,
    mesh=None,
):
    """Adaptive tempered SMC (BlackJAX) from the prior N(0, I) to exp f(., level), MALA moves with a
    fixed step size ``step_size`` in BlackJAX's convention (proposal y + h grad + sqrt(2 h) xi; default:
    h = eps^2 / 2 from a short AIS pilot at the level). log Z = log Z_T + sum of
    the log-likelihood increments (the prior is normalised, the likelihood is f - log N(0, I))."""
    import blackjax
    from blackjax.smc import resampling

    energy = as_energy(energy, data_shape)
    level = _check_level(energy, level)
    T = energy.num_levels
    axes = tuple(range(-len(energy.data_shape), 0))
    k_pilot, k_init, k_run = jax.random.split(rng_key, 3)
    pilot_grads = 0
    if step_size is None:
        path, pilot_grads, _ = pilot_path(
            k_pilot, energy, level=level, num_bridges=8 * (T - level), pilot_particles=32, pilot_bridges_per_level=8
        )
        # the pilot's MALA step is the proposal noise std eps in the diffusion scale x; BlackJAX's MALA
        # proposes y + h grad + sqrt(2 h) xi in model space y = c x, so h = (c eps)^2 / 2
        step_size = 0.5 * float(_model_scales(energy)[level] * path.step_sizes[-1]) ** 2
    top = _log_z_top(energy)

    def logprior(y):
        return -0.5 * jnp.sum(jnp.square(y), axis=axes) - top

    def loglik(y):
        return energy.log_density(y, level) - logprior(y)

    algo = blackjax.adaptive_tempered_smc(
        logprior,
        loglik,
        blackjax.mala.build_kernel(),
        blackjax.mala.init,
        {"step_size": jnp.array([step_size])},
        resampling.systematic,
        target_ess,
        num_mcmc_steps=num_mcmc_steps,
    )

    # particles split over the mesh (None: one device); resampling gathers across devices (compiler)
    y_init = sharding.maybe_shard_batch(
        jax.random.normal(k_init, (num_particles,) + tuple(energy.data_shape)), mesh, "number of SMC particles"
    )
    state = algo.init(y_init)
    step = jax.jit(algo.step)
    log_z, n_steps = 0.0, 0
    while float(state.tempering_param) < 1.0 and n_steps < max_steps:
        k_run, sub = jax.random.split(k_run)
        state, info = step(sub, state)
        log_z += float(info.log_likelihood_increment)
        n_steps += 1
    learned = int(level < T)
    # per step: the likelihood at every particle (ESS solve + reweighting), MALA: one gradient per move
    grads = num_particles * n_steps * num_mcmc_steps * learned + pilot_grads
    evals = grads + num_particles * n_steps * learned
    w = np.asarray(state.weights, np.float64)
    ess = float(1.0 / np.sum(w**2))
    return LogZEstimate(
        log_z=float(log_z),
        stderr=math.nan,
        ess=ess,
        num_energy_evals=int(evals),
        num_grad_evals=int(grads),
        curve=[(num_particles, float(log_z))],
        method="smc",
        level=level,
        meta={
            "num_particles": num_particles,
            "num_tempering_steps": n_steps,
            "num_mcmc_steps": num_mcmc_steps,
            "step_size": step_size,
            "finished": float(state.tempering_param) >= 1.0,
        },
    )
