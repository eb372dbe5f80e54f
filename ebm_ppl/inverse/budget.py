"""Up-front cost of :func:`ebm_ppl.inverse.sample_posterior`: gradient counts times a measured
gradient cost, so that ``ebm-ppl solve`` can say how long it will take before it starts.

The count per stage (P problems, N particles, C chains, T levels, prior level l):

* prior particles (progressive sampler down to level l): P N (T - l) K gradients (K inner steps;
  one per level for the normal draw), plus the step-size pilot of the MH inner samplers;
* tempered SMC: I P N m (L + 1) (I tempering steps, m HMC moves of L leapfrog steps; I is not known
  in advance: :data:`SMC_STEPS_GUESS` typical, twice that as the bound);
* NUTS: P C (W + S) n, n the mean tree size: at most 2^d - 1 for d doublings (the bound; the
  typical figure uses the measured fraction :data:`NUTS_TREE_FRACTION` of it).

The gradient cost is measured on the energy itself (one jitted value-and-grad of the prior's log
density on a batch, after compilation). Compilation is not counted; the CLI prints it apart.
"""

from __future__ import annotations

import math
import time
from typing import NamedTuple

import jax
import jax.numpy as jnp

from ebm_ppl._jax_utils import resolve_options, warn
from ebm_ppl.inverse.density import default_inner, prior_log_density_fn
from ebm_ppl.inverse.posterior import PosteriorConfig, resolve_defaults

__all__ = ["CostEstimate", "gradient_seconds", "estimate_cost", "SMC_STEPS_GUESS", "NUTS_TREE_FRACTION"]

#: tempering steps of the adaptive SMC on the digits operators at target ESS 0.5 (measured 25-46)
SMC_STEPS_GUESS = 35
#: measured mean NUTS tree size over its maximum on digits-dsm (14.6 of 15 at 4 doublings)
NUTS_TREE_FRACTION = 1.0
#: step-size pilot of the MH inner samplers (:func:`ebm_ppl.sampling.progressive.tune_step_sizes`)
PILOT_CHAINS, PILOT_STEPS = 64, 60


class CostEstimate(NamedTuple):
    """seconds (typical) and seconds_max (bound) of the run, compile excluded; stage gradient
    counts; the measured seconds per particle gradient (unrolled; inside a loop, as NUTS runs)
    and the first call's seconds (compile)."""

    seconds: float
    seconds_max: float
    gradients: dict
    gradient_seconds: float
    loop_gradient_seconds: float
    compile_seconds: float


def gradient_seconds(energy, level: int = 0, batch: int = 256, repeats: int = 3, loop_steps: int = 4):
    """(seconds per particle gradient of the level-``level`` prior outside any loop, the same inside
    a rolled ``lax.scan`` (where NUTS's trees run; XLA:CPU's slow path for convolutions), seconds
    of the first call)."""
    log_prior = prior_log_density_fn(energy, level)
    grad = jax.vmap(jax.grad(log_prior))
    plain = jax.jit(grad)

    @jax.jit
    def looped(x):
        return jax.lax.scan(lambda y, _: (y - 1e-3 * grad(y), None), x, None, length=loop_steps)[0]

    x = jnp.zeros((batch, math.prod(energy.data_shape)), jnp.float32)
    t0 = time.perf_counter()
    jax.block_until_ready(plain(x))
    first = time.perf_counter() - t0
    jax.block_until_ready(looped(x))

    def best(fn, per):
        out = math.inf
        for i in range(repeats):
            t0 = time.perf_counter()
            jax.block_until_ready(fn(x + 0.01 * (i + 1)))
            out = min(out, time.perf_counter() - t0)
        return out / per

    return best(plain, batch), best(looped, batch * loop_steps), first


#: options of the SMC stage the cost model counts (given as ``smc_kwargs`` of the config)
SMC_COST_OPTIONS = ("num_mcmc_steps", "num_integration_steps", "num_final_steps")


def estimate_cost(
    energy,
    num_problems: int,
    *,
    level: int = 0,
    config: PosteriorConfig | None = None,
    per_gradient: tuple | None = None,
    **options,
) -> CostEstimate:
    """Gradient counts of the :func:`~ebm_ppl.inverse.sample_posterior` run with the same ``config``
    (its fields, given as ``config=`` or as keywords; the same defaults, resolved the same way:
    :func:`~ebm_ppl.inverse.posterior.resolve_defaults`) and its time from the measured gradient
    cost (``per_gradient``: the (seconds, seconds in a loop, first-call seconds) of
    :func:`gradient_seconds` to reuse). ``num_mcmc_steps=`` etc. as keywords of their own are the
    deprecated spelling of ``smc_kwargs``."""
    smc_given = {name: options.pop(name) for name in SMC_COST_OPTIONS if name in options}
    config = resolve_options("inverse.estimate_cost", PosteriorConfig, config, options, {"num_samples": "num_draws"})
    if smc_given:
        warn(
            f"inverse.estimate_cost: {', '.join(f'{k}=' for k in smc_given)} is deprecated; "
            "pass smc_kwargs={...} as sample_posterior takes them",
            DeprecationWarning,
        )
        config = config._replace(smc_kwargs={**(config.smc_kwargs or {}), **smc_given})
    config = resolve_defaults(config)
    method, num_particles, num_chains = config.method, config.num_particles, config.num_chains
    num_warmup, num_draws, max_num_doublings = config.num_warmup, config.num_draws, config.max_num_doublings
    num_inner_steps, inner = int(config.num_inner_steps or 0), config.inner
    smc = dict(config.smc_kwargs or {})
    num_mcmc_steps, num_integration_steps = smc["num_mcmc_steps"], smc["num_integration_steps"]
    num_final_steps = smc["num_final_steps"]
    P, T = int(num_problems), int(energy.num_levels)
    g, g_loop, first = per_gradient if per_gradient is not None else gradient_seconds(energy, level)
    grads, grads_max = {}, {}
    descent = T - int(level)
    if inner is None:
        inner, num_inner_steps = (
            default_inner(energy, num_inner_steps) if method != "progressive" else ("mala", num_inner_steps)
        )
    K = 1 if inner == "normal" else int(num_inner_steps)
    pilot = 0 if inner in ("normal", "langevin") else PILOT_CHAINS * PILOT_STEPS * descent
    if method == "progressive":
        grads["progressive"] = P * num_chains * descent * K + pilot
        grads_max["progressive"] = grads["progressive"]
        chains = num_chains
    else:
        grads["prior"] = P * num_particles * descent * K + pilot
        per_step = P * num_particles * (num_mcmc_steps * (num_integration_steps + 1) + 1)
        grads["smc"] = SMC_STEPS_GUESS * per_step + P * num_particles * num_final_steps * (num_integration_steps + 1)
        grads_max["prior"] = grads["prior"]
        grads_max["smc"] = 2 * grads["smc"]
        chains = num_chains if method == "smc+nuts" else 0
    tree = 2 ** int(max_num_doublings) - 1
    nuts = P * chains * (num_warmup + num_draws) if num_draws > 0 else 0
    grads["nuts"] = int(nuts * tree * NUTS_TREE_FRACTION)
    grads_max["nuts"] = nuts * tree

    def seconds(counts):
        return sum(v * (g_loop if k == "nuts" else g) for k, v in counts.items())

    return CostEstimate(seconds(grads), seconds(grads_max), {k: int(v) for k, v in grads.items()}, g, g_loop, first)
