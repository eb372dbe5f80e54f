"""Annealed progressive warm start for inverse problems (the ``"progressive"`` method of
:func:`ebm_ppl.inverse.sample_posterior`).

The progressive kernel of :mod:`ebm_ppl.sampling.progressive` runs from N(0, I) down to level 0;
at level t its conditional p(y_t | x_{t+1}) is multiplied by the *annealed likelihood* of the
level variable x_t = abar_t x_0 + sbar_t e (``log_likelihood_fn`` hook):

    log L_t(x_t) = -|obs - A x_t / abar_t|^2 / (2 v_t),   v_t = noise_std^2 + (sbar_t / abar_t)^2 g

(written for A A^T = g I; for general A the covariance noise_std^2 I + (sbar_t / abar_t)^2 A A^T is
applied through the eigendecomposition of A A^T, computed once; for M > 4096, A A^T is replaced by
g I). It is the likelihood of x_t if x_0 were x_t / abar_t minus independent noise: it ignores what
the prior says about x_0 given x_t, so the warm start is approximate (too wide, and mode weights
can be wrong for blur / downsampling / compressed sensing); NUTS at level 0 then targets the exact
posterior within modes. At level 0, abar_0 = 1 and sbar_0 = 0: the exact likelihood.
"""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl import sharding
from ebm_ppl._jax_utils import rng_key_first, scan_or_loop
from ebm_ppl.inverse.density import check_observations
from ebm_ppl.inverse.operators import Denoise, Inpaint
from ebm_ppl.sampling import progressive

__all__ = ["annealed_log_likelihood_fn", "progressive_posterior"]


def _gram_eigen(operator):
    """(eigenvalues, eigenvectors) of A A^T, or None where A A^T = I (masks, identity) or M is large."""
    if isinstance(operator, (Inpaint, Denoise)) or operator.num_observations > 4096:
        return None
    with jax.ensure_compile_time_eval():
        A = np.asarray(operator.matrix(), np.float64)
    lam, U = np.linalg.eigh(A @ A.T)
    return jnp.asarray(np.maximum(lam, 0.0), jnp.float32), jnp.asarray(U, jnp.float32)


def annealed_log_likelihood_fn(energy, operator, noise_std: float, obs) -> Callable:
    """``(x_t, t) -> log L_t(x_t)`` (see the module docstring), for one observation ``obs`` (M,).

    The covariance is noise_std^2 I + (sbar_t / abar_t)^2 A A^T, applied through the
    eigendecomposition of A A^T (exactly I for masks and the identity); for M > 4096 A A^T is
    replaced by ``operator.gram_scale`` I."""
    sched = energy.schedule
    T = sched.num_levels
    abar = jnp.asarray(sched.signal_scales[:T], jnp.float32)
    sbar = jnp.asarray(sched.noise_scales[:T], jnp.float32)
    noise_var = float(noise_std) ** 2
    eig = _gram_eigen(operator)
    g = float(operator.gram_scale) if eig is None else None

    def log_likelihood(x_t, t):
        ratio_sq = (sbar[t] / abar[t]) ** 2
        resid = obs - operator(x_t) / abar[t]
        if eig is None:
            return -0.5 * jnp.sum(jnp.square(resid)) / (noise_var + ratio_sq * g)
        lam, U = eig
        proj = U.T @ resid
        return -0.5 * jnp.sum(jnp.square(proj) / (noise_var + ratio_sq * lam))

    return log_likelihood


@rng_key_first(4)
def progressive_posterior(
    rng_key,
    energy,
    operator,
    noise_std: float,
    observations,
    *,
    num_chains: int = 8,
    inner: str = "mala",
    num_inner_steps: int = 20,
    step_sizes=None,
    start: str = "x_next",
    tune_chains: int = 32,
    mesh=None,
):
    """Stage 1: annealed progressive samples, shape (P, num_chains, *data_shape), and info.

    ``mesh``: split the P problems over a device mesh (:mod:`ebm_ppl.sharding`; P a multiple of
    its size).

    ``inner`` is any inner sampler of :mod:`ebm_ppl.sampling.progressive` (``"langevin"`` with the
    schedule's steps is the paper's sampler; ``"mala"`` (default) is MH-corrected with per-level
    steps tuned on a pilot run for the first problem and shared by all problems).
    """
    obs = check_observations(operator, observations)
    P = obs.shape[0]
    k_tune, k_run = jax.random.split(rng_key)

    def tune():  # on the first problem's likelihood (the levels' geometry is shared)
        lik0 = annealed_log_likelihood_fn(energy, operator, noise_std, obs[0])
        tuned, _ = progressive.tune_step_sizes(
            k_tune,
            energy,
            inner,
            num_chains=tune_chains,
            num_inner_steps=num_inner_steps,
            log_likelihood_fn=lik0,
            start=start,
        )
        return tuned

    steps = progressive.resolve_step_sizes(energy, inner, step_sizes, tune)
    shape = tuple(energy.data_shape)
    T = energy.num_levels

    def run(obs, keys):
        def init_problem(k):
            x_top = jax.random.normal(jax.random.split(k)[0], (num_chains,) + shape)
            return jax.vmap(lambda x: progressive.init(x, energy))(x_top)

        def level_problem(states, k, o):
            lik = annealed_log_likelihood_fn(energy, operator, noise_std, o)
            kernel = progressive.build_kernel(inner, num_inner_steps, log_likelihood_fn=lik, start=start)
            ks = jax.random.split(k, num_chains)
            states, info = jax.vmap(kernel, in_axes=(0, 0, None, None))(ks, states, energy, steps)
            return states, jnp.mean(info.acceptance_rate)

        def level(states, kk):  # every problem one level down: states (P, C, ...)
            return jax.vmap(level_problem)(states, jax.random.split(kk, obs.shape[0]), obs)

        states = jax.vmap(init_problem)(keys)
        k_levels = jax.random.fold_in(keys[0], 1)
        # one jitted level per dispatch outside a trace (fast convolutions on CPU), lax.scan inside one
        states, acc = scan_or_loop(level, states, jax.random.split(k_levels, T))
        return states.position, acc.T

    positions, acc = run(*sharding.maybe_shard_batch((obs, jax.random.split(k_run, P)), mesh, "number of problems"))
    info = {"progressive_step_sizes": steps, "progressive_acceptance": jnp.mean(acc, axis=0)[::-1]}
    return positions, info
