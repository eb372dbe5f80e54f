"""Likelihood-tempered sequential Monte Carlo at level 0 (the posterior sampler that gets mode
weights right).

For one observation, the path of targets

    pi_lam(x) ∝ g(x) L(x)^lam,   g(x) = exp f(a x, 0) (the prior, data space),
    log L(x) = -|obs - A x|^2 / (2 noise_std^2),   lam: 0 -> 1,

starts at the prior and ends at the exact posterior. N particles per problem start from prior
samples (the progressive sampler, :mod:`ebm_ppl.sampling.progressive`, without likelihood) and
every step

1. picks the next exponent lam' by bisection so that the effective sample size of the
   incremental weights w_i = L(x_i)^(lam' - lam) is ``target_ess`` N (adaptive tempering,
   Jasra et al. 2011); lam' = 1 once that is reachable;
2. resamples (systematic) by those weights; log p(obs)/Z-ratio increments log mean w are summed
   (``log_evidence``: log of int g L dx / int g dx, a by-product);
3. moves every particle by ``num_mcmc_steps`` HMC transitions that leave pi_lam' invariant
   (Metropolis-corrected, ``num_integration_steps`` leapfrog steps, BlackJAX ``hmc``), with a
   per-problem dense inverse mass matrix = the shrunk covariance of the problem's particles and a
   per-problem step size adapted towards acceptance ``target_acceptance`` between steps.

Reweighting moves probability mass *between* modes in proportion to the likelihood, which local
MCMC cannot do; the moves only have to mix within modes. The exact-posterior mode weights are
recovered as long as every mode with posterior mass holds prior particles (N large enough
relative to the prior mode weights). After lam = 1, ``num_final_steps`` more moves decorrelate
the particles; they are the posterior samples.

Everything is batched over problems (``vmap``): one jitted step moves all P x N particles; the
Python loop stops when every problem has reached lam = 1.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

#: operators with M * D up to this many entries are applied as a dense matrix inside SMC
DENSE_LIMIT = 1 << 22

__all__ = ["SMCState", "smc_posterior", "prior_particles", "prior_log_density_fn", "prior_scale", "systematic_resample", "next_exponent"]


class SMCState(NamedTuple):
    """Particles (P, N, D) flat, exponent lam (P,), HMC step size (P,), log evidence (P,)."""

    particles: jax.Array
    lam: jax.Array
    step_size: jax.Array
    log_evidence: jax.Array


def next_exponent(loglik, lam, target_ess: float, iterations: int = 40):
    """Largest lam' in (lam, 1] whose incremental weights L^(lam' - lam) keep ESS >= target_ess N
    (bisection; ``loglik`` (N,)). Returns 1 when the whole remaining step keeps the ESS."""
    n = loglik.shape[0]
    ll = jnp.where(jnp.isfinite(loglik), loglik, -jnp.inf)

    def ess(delta):
        lw = delta * ll
        lw = lw - jnp.max(lw)
        w = jnp.exp(lw)
        return jnp.square(jnp.sum(w)) / jnp.sum(jnp.square(w)) / n

    remaining = 1.0 - lam

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        ok = ess(mid) >= target_ess
        return jnp.where(ok, mid, lo), jnp.where(ok, hi, mid)

    lo, _ = jax.lax.fori_loop(0, iterations, body, (jnp.zeros_like(lam), remaining))
    delta = jnp.where(ess(remaining) >= target_ess, remaining, lo)
    # always make progress (a floor of 1e-6 of the remaining path)
    delta = jnp.maximum(delta, 1e-6 * remaining)
    return jnp.minimum(lam + delta, 1.0)


def systematic_resample(key, log_weights):
    """Indices (N,) drawn by systematic resampling from normalised ``log_weights`` (N,)."""
    n = log_weights.shape[0]
    w = jax.nn.softmax(log_weights)
    cdf = jnp.cumsum(w)
    u = (jax.random.uniform(key, ()) + jnp.arange(n)) / n
    return jnp.clip(jnp.searchsorted(cdf, u), 0, n - 1)


def _shrunk_covariance(x, floor: float = 1e-6):
    """Covariance of particles x (N, D), shrunk towards its diagonal by D / (N - 1 + D)."""
    n, d = x.shape
    c = x - jnp.mean(x, axis=0)
    cov = c.T @ c / (n - 1)
    lam = d / (n - 1 + d)
    diag = jnp.maximum(jnp.diag(cov), floor)
    cov = (1 - lam) * cov + lam * jnp.diag(diag)
    return cov + floor * jnp.eye(d)


def prior_scale(energy, level: int = 0) -> float:
    """s_l with y_l = s_l u for the data-unit variable u = x_l / abar_l = x_0 + r_l e of level l
    (s_l = c_l abar_l; the data scale a at level 0)."""
    sched = energy.schedule
    if not 0 <= int(level) < energy.num_levels:
        raise ValueError(f"prior level must be in 0..{energy.num_levels - 1}, got {level}")
    return float(sched.model_scales[level] * sched.signal_scales[level])


def prior_log_density_fn(energy, level: int = 0):
    """u (data units, one example) -> log g_l(u) = f(s_l u, l) + D log s_l, the level-l density of
    u = x_0 + r_l e (r_l = sbar_l / abar_l): the data law smoothed by N(0, r_l^2 I); level 0 is
    the data law f(a x, 0) + D log a."""
    s = prior_scale(energy, level)
    shape = tuple(energy.data_shape)
    d_log_s = math.prod(shape) * math.log(s)

    def log_prior(u):
        return energy.log_density(s * u.reshape(shape), level) + d_log_s

    return log_prior


def prior_particles(energy, key, num: int, *, num_inner_steps: int = 20, inner: str = "mala", level: int = 0):
    """``num`` prior samples (num, *data_shape) of the data-unit variable of ``level`` (see
    :func:`prior_log_density_fn`) by the progressive sampler (MH-corrected inner chains with
    tuned steps) stopped at that level; exact draws for a mixture oracle would be
    ``oracle.sample_data``."""
    from ebm_ppl.sampling import progressive

    prior_scale(energy, level)  # validates the level
    if level == 0:
        return progressive.sample(energy, key, num, inner=inner, num_inner_steps=num_inner_steps)
    _, levels = progressive.sample(energy, key, num, inner=inner, num_inner_steps=num_inner_steps, return_levels=True)
    T = energy.num_levels
    return levels[T - 1 - level] / float(energy.schedule.signal_scales[level])


def smc_posterior(
    energy,
    operator,
    noise_std: float,
    observations,
    key,
    *,
    num_particles: int = 256,
    initial_particles=None,
    target_ess: float = 0.5,
    num_mcmc_steps: int = 5,
    num_integration_steps: int = 5,
    num_final_steps: int = 10,
    initial_step_size: float = 0.3,
    target_acceptance: float = 0.7,
    num_inner_steps: int = 20,
    max_iterations: int = 500,
    prior_level: int = 0,
    progress: bool = False,
):
    """Posterior particles (P, N, *data_shape) and info for every row of ``observations`` (P, M).

    ``initial_particles``: prior samples, (N, *shape) shared by all problems or (P, N, *shape);
    by default P x N progressive prior samples (:func:`prior_particles`).

    ``prior_level``: the prior is the level-l density of u = x_0 + r_l e (:func:`prior_log_density_fn`;
    0 = the data law). A learned energy can be a better density at a small l > 0 than at 0 (chosen on
    validation bits/dim); the posterior is then over the slightly smoothed u."""
    from ebm_ppl.inverse.posterior import _check_observations

    import blackjax.mcmc.hmc as bj_hmc

    obs = _check_observations(operator, observations)
    P = obs.shape[0]
    shape = tuple(energy.data_shape)
    D = math.prod(shape)
    if not 0 < target_ess < 1:
        raise ValueError(f"target_ess must lie in (0, 1), got {target_ess}")
    if num_particles < 4:
        raise ValueError(f"num_particles must be at least 4, got {num_particles}")
    k_prior, k_run = jax.random.split(key)
    if initial_particles is None:
        x0 = prior_particles(energy, k_prior, P * num_particles, num_inner_steps=num_inner_steps, level=prior_level)
        x0 = jnp.reshape(x0, (P, num_particles, D))
    else:
        x0 = jnp.asarray(initial_particles, jnp.float32)
        if x0.shape[-len(shape):] != shape or x0.ndim not in (len(shape) + 1, len(shape) + 2):
            raise ValueError(f"initial particles must have shape (N, *{shape}) or (P, N, *{shape}), got {x0.shape}")
        x0 = x0.reshape((-1,) + x0.shape[x0.ndim - len(shape) - 1 : x0.ndim - len(shape)] + (D,))
        x0 = jnp.broadcast_to(x0, (P,) + x0.shape[1:]) if x0.shape[0] == 1 else x0
        if x0.shape[0] != P:
            raise ValueError(f"initial particles for {x0.shape[0]} problems, but {P} observations")
        num_particles = x0.shape[1]
    N = num_particles
    inv_var = 1.0 / float(noise_std) ** 2
    kernel = bj_hmc.build_kernel()
    # small operators as a dense matrix: a matmul is far cheaper than e.g. a padded convolution on CPU
    A = None
    if operator.num_observations * D <= DENSE_LIMIT:
        with jax.ensure_compile_time_eval():
            A = jnp.asarray(operator.matrix(), jnp.float32)

    def forward(x):
        return A @ x if A is not None else operator(x.reshape(shape))

    def loglik(x, o):
        return -0.5 * inv_var * jnp.sum(jnp.square(o - forward(x)))

    log_prior = prior_log_density_fn(energy, prior_level)

    def move_problem(key, x, o, lam, eps, num_steps):
        """num_steps HMC transitions of all N particles of one problem on pi_lam."""
        imm = _shrunk_covariance(x)

        def logdensity(z):
            return log_prior(z) + lam * loglik(z, o)

        states = jax.vmap(lambda z: bj_hmc.init(z, logdensity))(x)

        def one(states, k):
            ks = jax.random.split(k, N)
            states, info = jax.vmap(lambda kk, s: kernel(kk, s, logdensity, eps, imm, num_integration_steps))(ks, states)
            return states, info.acceptance_rate

        states, acc = jax.lax.scan(one, states, jax.random.split(key, num_steps))
        return states.position, jnp.mean(acc)

    def adapt(eps, acc):
        return eps * jnp.exp(jnp.clip(2.0 * (acc - target_acceptance), -1.0, 0.7))

    @jax.jit
    def step(state: SMCState, key):
        def one(k, x, o, lam, eps, logz):
            k_res, k_move = jax.random.split(k)
            ll = jax.vmap(loglik, in_axes=(0, None))(x, o)
            lam_new = next_exponent(ll, lam, target_ess)
            lw = (lam_new - lam) * jnp.where(jnp.isfinite(ll), ll, -jnp.inf)
            logz = logz + jax.nn.logsumexp(lw) - jnp.log(N)
            idx = systematic_resample(k_res, lw)
            x = x[idx]
            x, acc = move_problem(k_move, x, o, lam_new, eps, num_mcmc_steps)
            return x, lam_new, adapt(eps, acc), logz, acc

        x, lam, eps, logz, acc = jax.vmap(one)(
            jax.random.split(key, P), state.particles, obs, state.lam, state.step_size, state.log_evidence)
        return SMCState(x, lam, eps, logz), acc

    @jax.jit
    def final(state: SMCState, key):
        def one(k, x, o, eps):
            return move_problem(k, x, o, 1.0, eps, num_final_steps)

        return jax.vmap(one)(jax.random.split(key, P), state.particles, obs, state.step_size)

    state = SMCState(x0, jnp.zeros((P,), jnp.float32), jnp.full((P,), initial_step_size, jnp.float32),
                     jnp.zeros((P,), jnp.float32))
    bar = _bar(progress)
    lam_path, accs = [], []
    it = 0
    while it < max_iterations:
        state, acc = step(state, jax.random.fold_in(k_run, it))
        it += 1
        lam_min = float(jnp.min(state.lam))
        lam_path.append(lam_min)
        accs.append(np.asarray(acc))
        bar.set_description(f"SMC lam_min={lam_min:.3g}")
        bar.update(1)
        if lam_min >= 1.0:
            break
    final_acc = None
    if num_final_steps > 0:
        x, final_acc = final(state, jax.random.fold_in(k_run, 10**6))
        state = state._replace(particles=x)
    bar.close()
    if float(jnp.min(state.lam)) < 1.0:
        raise RuntimeError(f"SMC did not reach lam = 1 in {max_iterations} steps (min lam {float(jnp.min(state.lam)):.3g})")
    info = {
        "smc_iterations": it,
        "smc_particles": N,
        "smc_acceptance": float(np.mean(np.stack(accs))),
        "smc_final_acceptance": None if final_acc is None else float(jnp.mean(final_acc)),
        "smc_step_size": state.step_size,
        "log_evidence": state.log_evidence,
        "prior_level": int(prior_level),
    }
    return state.particles.reshape((P, N) + shape), x0.reshape((P, N) + shape), info


def _bar(enabled):
    if enabled:
        from tqdm.auto import tqdm

        return tqdm(desc="SMC", leave=False)

    class _Null:
        def update(self, n):
            pass

        def set_description(self, s):
            pass

        def close(self):
            pass

    return _Null()
