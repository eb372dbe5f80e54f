"""The top level of a progressive descent when it has no recovery term: adaptive tempered SMC.

When the schedule's top conditional is marginal (``conditional_sigmas[T-1] = inf``, e.g. ``drl(6)``),
the first level of a descent samples p_{T-1}(y) ∝ exp f(y, T-1) itself, from N(0, I) starts and with
nothing to hold the chains. A local MCMC chain cannot move mass between separated modes, so its mode
weights are those of the starts' basins, not the target's: on ``ncsn2`` (weights 0.2 / 0.8) MALA or
HMC with tuned steps ends at 0.72 whatever the number of inner steps.

:func:`tempered_top_level` moves the N(0, I) starts to p_{T-1} by BlackJAX's adaptive tempered SMC
(``blackjax.adaptive_tempered_smc``): intermediate densities N(y; 0, I)^{1 - beta} p_{T-1}(y)^beta,
each increment of beta chosen so that the weights' ESS stays at ``target_ess`` of the particles,
systematic resampling, ``num_mcmc_steps`` MALA moves per stage, and a final resampling; the
particles then carry the right mode weights. Resampled particles are duplicates until the inner
chain of the level moves them: the descents are exchangeable, no longer independent.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = ["has_marginal_top", "TopLevelInfo", "tempered_top_level"]


def has_marginal_top(energy) -> bool:
    """True when level T-1 has no recovery term (its conditional sigma is infinite)."""
    return bool(np.isinf(np.asarray(energy.schedule.conditional_sigmas, np.float64)[energy.num_levels - 1]))


class TopLevelInfo(NamedTuple):
    """num_stages: tempering stages run; log_evidence: the SMC estimate of log Z_{T-1} - log (2 pi)^{D/2}
    (the log normaliser of the N(0, I) start is left out)."""

    num_stages: jax.Array
    log_evidence: jax.Array


@functools.partial(jax.jit, static_argnames=("num_mcmc_steps", "target_ess", "log_likelihood_fn", "max_stages"))
def tempered_top_level(
    rng_key,
    energy,
    positions,
    step_size,
    *,
    num_mcmc_steps: int = 10,
    target_ess: float = 0.5,
    log_likelihood_fn: Callable | None = None,
    max_stages: int = 200,
):
    """Equally weighted particles of level T-1 from N(0, I) ``positions``, shape (n, *data_shape).

    Args:
      rng_key: PRNG key.
      energy: a noise-conditional energy; the target is exp(f(y, T-1) [+ log_likelihood_fn(y / c, T-1)]).
      positions: (n, *data_shape) draws of N(0, I) (the descents' x_T).
      step_size: the MALA step of BlackJAX (y + s grad + sqrt(2 s) e) at the target; intermediate
        densities are wider, so it is a safe step for every stage.
      num_mcmc_steps: MALA moves per stage. target_ess: fraction of n kept by each stage's weights.
      max_stages: stop after this many stages even if beta < 1 (reported in the info).

    Returns ``(particles (n, *data_shape), TopLevelInfo)``; compiled once per shapes and settings.
    """
    import blackjax
    from blackjax.smc import resampling

    t = energy.num_levels - 1
    c_t = float(np.asarray(energy.schedule.model_scales, np.float64)[t])

    def logprior(y):
        return -0.5 * jnp.sum(jnp.square(y))

    def loglik(y):
        value = energy.log_density(y, t)
        if log_likelihood_fn is not None:
            value = value + log_likelihood_fn(y / c_t, t)
        return value - logprior(y)

    smc = blackjax.adaptive_tempered_smc(
        logprior,
        loglik,
        blackjax.mcmc.mala.build_kernel(),
        blackjax.mcmc.mala.init,
        {"step_size": jnp.reshape(jnp.asarray(step_size, positions.dtype), (1,))},
        resampling.systematic,
        target_ess,
        num_mcmc_steps=num_mcmc_steps,
    )
    state = smc.init(positions)
    state = state._replace(tempering_param=jnp.zeros((), positions.dtype))
    k_run, k_final, k_perm = jax.random.split(rng_key, 3)

    def cond(carry):
        state, i, _ = carry
        return (state.tempering_param < 1.0) & (i < max_stages)

    def body(carry):
        state, i, log_evidence = carry
        state, info = smc.step(jax.random.fold_in(k_run, i), state)
        return state, i + 1, log_evidence + info.log_likelihood_increment

    state, stages, log_evidence = jax.lax.while_loop(
        cond, body, (state, jnp.zeros((), jnp.int32), jnp.zeros((), positions.dtype))
    )
    n = positions.shape[0]
    # systematic resampling keeps duplicates next to each other: shuffle so that any split of the
    # descents into chains (R-hat, ESS) sees exchangeable draws
    idx = jax.random.permutation(k_perm, resampling.systematic(k_final, state.weights, n))
    return state.particles[idx], TopLevelInfo(stages, log_evidence)
