"""Posterior sampling for linear inverse problems with a noise-conditional energy as the prior.

Model (data space): x ~ p_0 (the energy's level-0 density mapped to data, g(x) = a^D p(a x)),
obs = A x + n, n ~ N(0, noise_std^2 I).

Default (``method="smc+nuts"``): likelihood-tempered SMC at level 0 (:mod:`ebm_ppl.inverse.smc`),
which gets the posterior mode weights right, then NUTS (stage 2 below) from its particles. The
original path (``method="progressive"``), two stages, many chains per problem, many problems at
once (everything is ``vmap``-ed):

1. **Annealed progressive descent** (warm start). The progressive kernel of
   :mod:`ebm_ppl.sampling.progressive` runs from N(0, I) down to level 0; at level t its
   conditional p(y_t | x_{t+1}) is multiplied by the *annealed likelihood* of the level variable
   x_t = abar_t x_0 + sbar_t e (``log_likelihood_fn`` hook):

       log L_t(x_t) = -|obs - A x_t / abar_t|^2 / (2 v_t),   v_t = noise_std^2 + (sbar_t / abar_t)^2 g

   (written for A A^T = g I; see below for general A). Since A x_t / abar_t = A x_0 + (sbar_t /
   abar_t) A e, this is the law of the observation given x_0 with the level's noise pushed
   through A; the covariance used is noise_std^2 I + (sbar_t / abar_t)^2 A A^T (through the
   eigendecomposition of A A^T, computed once; A A^T = I for masks and the identity, where this is
   the soft version of NCSN's inpainting, which re-imposes the observed pixels noised to the
   current level; for M > 4096, A A^T is replaced by g I). It is the likelihood of x_t if x_0
   were x_t / abar_t minus independent noise, i.e. it ignores what the prior says about x_0 given
   x_t: an approximation of the true p(obs | x_t) = int p(obs | x_0) p(x_0 | x_t) dx_0. Every
   other step is exact: since obs and x_{t+1} are independent given y_t, p(y_t | x_{t+1}, obs) is
   proportional to p(y_t | x_{t+1}) p(obs | y_t), so with the true p(obs | x_t) and exact inner
   sampling each level would hold the exact p(x_t | obs). At level 0, abar_0 = 1 and sbar_0 = 0: the exact
   likelihood.
2. **NUTS at level 0** (BlackJAX), warm-started from stage 1, on the exact posterior

       log p(x | obs) = f(a x, 0) - |obs - A x|^2 / (2 noise_std^2) + const.

   The step size is adapted per problem by dual averaging over all of its chains (target
   acceptance 0.8), then frozen; the inverse mass matrix is the pooled within-problem covariance
   of the warm starts (dense, shrunk to its diagonal when there are few chains), or one given.

Stage 2 targets the exact posterior: whatever stage 1 gets wrong only costs mixing time, except
mode weights (NUTS rarely jumps between well-separated posterior modes, so their weights come from
stage 1).
"""

from __future__ import annotations

import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl._jax_utils import scan_or_loop

__all__ = [
    "PosteriorResult",
    "annealed_log_likelihood_fn",
    "posterior_log_density_fn",
    "progressive_posterior",
    "nuts_posterior",
    "sample_posterior",
    "pooled_covariance",
    "POSTERIOR_METHODS",
]

#: posterior samplers of :func:`sample_posterior`
POSTERIOR_METHODS = ("smc", "smc+nuts", "progressive")


class PosteriorResult(NamedTuple):
    """Posterior draws of P problems.

    samples: (P, N, *data_shape) pooled over chains (N = chains x draws);
    warm_start: (P, C, *data_shape) the annealed progressive samples (stage 1);
    mean, std: (P, *data_shape) posterior mean and per-pixel standard deviation;
    info: dict of diagnostics (step sizes, acceptance, tree sizes, divergences).
    """

    samples: jax.Array
    warm_start: jax.Array
    mean: jax.Array
    std: jax.Array
    info: dict

    def interval(self, level: float = 0.9):
        """Central credible interval per pixel: (lower, upper), each (P, *data_shape)."""
        return credible_interval(self.samples, level)


def credible_interval(samples, level: float = 0.9, axis: int = 1):
    """Central ``level`` interval of ``samples`` along ``axis`` by empirical quantiles."""
    if not 0 < level < 1:
        raise ValueError(f"credible level must lie in (0, 1), got {level}")
    q = np.quantile(np.asarray(samples), [(1 - level) / 2, (1 + level) / 2], axis=axis)
    return q[0], q[1]


def _check_observations(operator, observations):
    obs = jnp.asarray(observations, jnp.float32)
    if obs.ndim == 1:
        obs = obs[None]
    if obs.ndim != 2 or obs.shape[1] != operator.num_observations:
        raise ValueError(
            f"observations must have shape (P, {operator.num_observations}) for {operator!r}, got {tuple(jnp.shape(observations))}"
        )
    return obs


def _gram_eigen(operator):
    """(eigenvalues, eigenvectors) of A A^T, or None where A A^T = I (masks, identity) or M is large."""
    from ebm_ppl.inverse.operators import Denoise, Inpaint

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


def posterior_log_density_fn(energy, operator, noise_std: float, obs, prior_level: int = 0) -> Callable:
    """x (data space, one example) -> f(a x, 0) - |obs - A x|^2 / (2 noise_std^2).

    ``prior_level`` l > 0: the prior is the level-l density of x_0 + r_l e instead
    (:func:`ebm_ppl.inverse.smc.prior_log_density_fn`)."""
    inv_var = 1.0 / float(noise_std) ** 2
    if prior_level:
        from ebm_ppl.inverse.smc import prior_log_density_fn

        log_prior = prior_log_density_fn(energy, prior_level)
    else:

        def log_prior(x):
            return energy.log_density(energy.to_model(x), 0)

    def logdensity(x):
        prior = log_prior(x)
        return prior - 0.5 * inv_var * jnp.sum(jnp.square(obs - operator(x)))

    return logdensity


def _blocks(total: int, block: int):
    done = 0
    while done < total:
        n = min(block, total - done)
        yield n
        done += n


def progressive_posterior(
    energy,
    operator,
    noise_std: float,
    observations,
    key,
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
    from ebm_ppl import sharding
    from ebm_ppl.sampling import progressive

    obs = _check_observations(operator, observations)
    P = obs.shape[0]
    k_tune, k_run = jax.random.split(key)
    if step_sizes is None and inner in progressive.MH_SAMPLERS:
        lik0 = annealed_log_likelihood_fn(energy, operator, noise_std, obs[0])
        step_sizes, _ = progressive.tune_step_sizes(
            energy, k_tune, inner, num_chains=tune_chains, num_inner_steps=num_inner_steps,
            log_likelihood_fn=lik0, start=start,
        )
    elif step_sizes is None and inner != "normal":
        step_sizes = progressive.default_step_sizes(energy, inner)
    steps = None if step_sizes is None else jnp.asarray(step_sizes, jnp.float32)
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

    from ebm_ppl import sharding

    positions, acc = run(*sharding.maybe_shard_batch((obs, jax.random.split(k_run, P)), mesh, "number of problems"))
    info = {"progressive_step_sizes": steps, "progressive_acceptance": jnp.mean(acc, axis=0)[::-1]}
    return positions, info


def pooled_covariance(chains, kind: str = "auto", floor: float = 1e-6):
    """Pooled within-problem covariance of ``chains`` (P, C, *data_shape) -> (D,) or (D, D).

    ``kind``: ``"diag"``, ``"dense"`` or ``"auto"`` (dense when P (C - 1) >= 2 D). A dense estimate
    is shrunk towards its diagonal by D / (dof + D)."""
    x = np.asarray(chains, np.float64)
    P, C = x.shape[:2]
    x = x.reshape(P, C, -1)
    D = x.shape[-1]
    if C < 2:
        raise ValueError("a pooled covariance needs at least 2 chains per problem")
    centred = x - x.mean(axis=1, keepdims=True)
    dof = P * (C - 1)
    if kind == "auto":
        kind = "dense" if dof >= 2 * D else "diag"
    var = np.maximum(np.sum(centred**2, axis=(0, 1)) / dof, floor)
    if kind == "diag":
        return jnp.asarray(var, jnp.float32)
    if kind != "dense":
        raise ValueError(f"mass matrix kind must be 'diag', 'dense' or 'auto', got {kind!r}")
    cov = np.einsum("pci,pcj->ij", centred, centred) / dof
    lam = D / (dof + D)
    cov = (1 - lam) * cov + lam * np.diag(np.diag(cov))
    cov[np.diag_indices(D)] = np.maximum(np.diag(cov), floor)
    return jnp.asarray(cov, jnp.float32)


def nuts_posterior(
    energy,
    operator,
    noise_std: float,
    observations,
    initial_positions,
    key,
    *,
    num_warmup: int = 100,
    num_samples: int = 100,
    inverse_mass_matrix=None,
    initial_step_size: float = 0.5,
    target_acceptance: float = 0.8,
    max_num_doublings: int = 6,
    progress: bool = False,
    block: int = 25,
    mesh=None,
    prior_level: int = 0,
):
    """Stage 2: NUTS at level 0 from ``initial_positions`` (P, C, *data_shape).

    Returns (samples (P, C * num_samples, *data_shape), info). The step size is adapted per
    problem by dual averaging on the mean acceptance of its C chains during ``num_warmup`` steps
    (those draws are discarded), then frozen. ``mesh``: split the P * C chains (problem-major)
    over a device mesh (P a multiple of its size)."""
    from ebm_ppl import sharding

    import blackjax.mcmc.hmc as bj_hmc
    import blackjax.mcmc.nuts as bj_nuts
    from blackjax.adaptation.step_size import dual_averaging_adaptation

    obs = _check_observations(operator, observations)
    x0 = jnp.asarray(initial_positions, jnp.float32)
    P, C = x0.shape[:2]
    shape = tuple(energy.data_shape)
    if x0.shape != (P, C) + shape or P != obs.shape[0]:
        raise ValueError(f"initial positions must have shape ({obs.shape[0]}, C, {shape}), got {x0.shape}")
    imm = pooled_covariance(x0) if inverse_mass_matrix is None else jnp.asarray(inverse_mass_matrix, jnp.float32)
    D = math.prod(shape)
    if imm.shape not in ((D,), (D, D)):
        raise ValueError(f"inverse mass matrix must have shape ({D},) or ({D}, {D}), got {imm.shape}")

    kernel = bj_nuts.build_kernel()
    da_init, da_update, da_final = dual_averaging_adaptation(target_acceptance)
    flat_obs = jnp.repeat(obs, C, axis=0)
    if mesh is not None:
        sharding.check_divisible(P, mesh, "number of problems")
        flat_obs = sharding.shard_batch(flat_obs, mesh)

    def logdensity_for(o):
        ld = posterior_log_density_fn(energy, operator, noise_std, o, prior_level)
        return lambda x: ld(x.reshape(shape))

    def init_state(x, o):
        return bj_hmc.init(x.reshape(-1), logdensity_for(o))

    def step_all(keys, states, step_per_chain):
        def one(k, s, o, eps):
            return kernel(k, s, logdensity_for(o), eps, imm, max_num_doublings)

        keys, states = sharding.constrain_batch((keys, states), mesh)
        return jax.vmap(one)(keys, states, flat_obs, step_per_chain)

    @jax.jit
    def warm(states, da_state, keys):
        def body(carry, k):
            states, da_state = carry
            eps = jnp.repeat(jnp.exp(da_state.log_step_size), C)
            states, info = step_all(jax.random.split(k, P * C), states, eps)
            acc = jnp.nan_to_num(info.acceptance_rate.reshape(P, C)).mean(axis=1)
            da_state = jax.vmap(da_update)(da_state, acc)
            return (states, da_state), (acc, info.num_integration_steps.reshape(P, C).mean(1))

        return jax.lax.scan(body, (states, da_state), keys)

    @jax.jit
    def draw(states, eps, keys):
        def body(states, k):
            states, info = step_all(jax.random.split(k, P * C), states, eps)
            stats = (info.acceptance_rate, info.num_integration_steps, info.is_divergent)
            return states, (states.position, stats)

        return jax.lax.scan(body, states, keys)

    states = jax.jit(jax.vmap(init_state))(sharding.maybe_shard_batch(x0.reshape(P * C, -1), mesh), flat_obs)
    da_state = jax.vmap(da_init)(jnp.full((P,), initial_step_size, jnp.float32))
    k_warm, k_draw = jax.random.split(key)
    bar = _progress(num_warmup + num_samples, "NUTS", progress)
    warm_acc, warm_steps = [], []
    for i, n in enumerate(_blocks(num_warmup, block)):
        (states, da_state), (acc, nsteps) = warm(states, da_state, jax.random.split(jax.random.fold_in(k_warm, i), n))
        warm_acc.append(acc)
        warm_steps.append(nsteps)
        bar.update(n)
    step_size = jax.vmap(da_final)(da_state) if num_warmup > 0 else jnp.full((P,), initial_step_size)
    eps = jnp.repeat(step_size, C)
    draws, accs, nsteps, divs = [], [], [], []
    for i, n in enumerate(_blocks(num_samples, block)):
        states, (pos, (acc, ns, dv)) = draw(states, eps, jax.random.split(jax.random.fold_in(k_draw, i), n))
        draws.append(np.asarray(pos))
        accs.append(np.asarray(acc))
        nsteps.append(np.asarray(ns))
        divs.append(np.asarray(dv))
        bar.update(n)
    bar.close()
    pos = np.concatenate(draws, axis=0)  # (S, P*C, D)
    S = pos.shape[0]
    samples = pos.reshape(S, P, C, D).transpose(1, 2, 0, 3).reshape((P, C * S) + shape)
    info = {
        "nuts_step_size": step_size,
        "nuts_acceptance": float(np.mean(np.concatenate(accs))),
        "nuts_mean_integration_steps": float(np.mean(np.concatenate(nsteps))),
        "nuts_divergences": int(np.sum(np.concatenate(divs))),
        "nuts_draws_per_chain": S,
        "inverse_mass_matrix_kind": "dense" if imm.ndim == 2 else "diag",
    }
    return jnp.asarray(samples), info


def _progress(total, desc, enabled):
    if enabled:
        from tqdm.auto import tqdm

        return tqdm(total=total, desc=desc, leave=False)

    class _Null:
        def update(self, n):
            pass

        def close(self):
            pass

    return _Null()


def sample_posterior(
    energy,
    operator,
    noise_std: float,
    observations,
    key,
    *,
    num_chains: int = 8,
    num_warmup: int = 100,
    num_samples: int = 100,
    inner: str = "mala",
    num_inner_steps: int = 20,
    step_sizes=None,
    start: str = "x_next",
    inverse_mass_matrix=None,
    max_num_doublings: int = 6,
    target_acceptance: float = 0.8,
    progress: bool = False,
    mesh=None,
    method: str | None = None,
    num_particles: int = 64,
    smc_kwargs: dict | None = None,
) -> PosteriorResult:
    """Posterior samples for every row of ``observations`` (P, M).

    ``method`` (None: ``"smc+nuts"`` on one device, ``"progressive"`` with a device ``mesh``, since
    the SMC path is not sharded):

    * ``"smc+nuts"``: likelihood-tempered SMC at level 0 (:mod:`ebm_ppl.inverse.smc`)
      from ``num_particles`` progressive prior samples per problem (it gets the posterior mode
      weights right), then NUTS (``num_warmup``, ``num_samples``) from ``num_chains`` of its
      particles per problem (``warm_start``; inverse mass matrix: the pooled particle covariance),
      which fixes the within-mode spread that resampling degeneracy shrinks.
    * ``"smc"``: the SMC particles themselves are the samples (``warm_start`` holds the prior
      particles); pass ``smc_kwargs={"num_final_steps": ...}`` to decorrelate them.
    * ``"progressive"``: annealed progressive warm start (``num_chains`` per problem), then NUTS
      at level 0 (``num_warmup`` adaptation steps, ``num_samples`` kept draws per chain);
      ``num_samples=0`` returns the warm starts alone. Cheaper, but NUTS never changes modes, so
      the posterior mode weights are those of the approximate warm start.
    """
    obs = _check_observations(operator, observations)
    if tuple(operator.data_shape) != tuple(energy.data_shape):
        raise ValueError(f"operator acts on {operator.data_shape} but the prior's data shape is {energy.data_shape}")
    if method is None:
        method = "progressive" if mesh is not None else "smc+nuts"
    prior_level = int((smc_kwargs or {}).get("prior_level", 0))
    if prior_level and method == "progressive":
        raise ValueError("a prior level > 0 needs method='smc' or 'smc+nuts' (smc_kwargs={'prior_level': l})")
    if method not in POSTERIOR_METHODS:
        raise ValueError(f"unknown posterior method {method!r}; choose one of {POSTERIOR_METHODS}")
    k_prog, k_nuts = jax.random.split(key)
    if method in ("smc", "smc+nuts"):
        from ebm_ppl.inverse.smc import smc_posterior

        if mesh is not None:
            raise ValueError("method='smc' runs on one device; use method='progressive' with a mesh")
        particles, prior_x, info = smc_posterior(
            energy, operator, noise_std, obs, k_prog, num_particles=num_particles,
            num_inner_steps=num_inner_steps, progress=progress, **(smc_kwargs or {}),
        )
        info["method"] = method
        if method == "smc":
            return PosteriorResult(particles, prior_x, jnp.mean(particles, axis=1), jnp.std(particles, axis=1), info)
        if num_chains > particles.shape[1]:
            raise ValueError(f"num_chains {num_chains} exceeds the {particles.shape[1]} SMC particles")
        pick = jax.vmap(lambda k: jax.random.choice(k, particles.shape[1], (num_chains,), replace=False))(
            jax.random.split(jax.random.fold_in(k_nuts, 1), obs.shape[0]))
        warm = jnp.take_along_axis(particles, pick.reshape(pick.shape + (1,) * (particles.ndim - 2)), axis=1)
        if inverse_mass_matrix is None:
            inverse_mass_matrix = pooled_covariance(particles)
    else:
        warm, info = progressive_posterior(
            energy, operator, noise_std, obs, k_prog, num_chains=num_chains, inner=inner,
            num_inner_steps=num_inner_steps, step_sizes=step_sizes, start=start, mesh=mesh,
        )
        info["method"] = method
    if num_samples > 0:
        samples, nuts_info = nuts_posterior(
            energy, operator, noise_std, obs, warm, k_nuts, num_warmup=num_warmup, num_samples=num_samples,
            inverse_mass_matrix=inverse_mass_matrix, max_num_doublings=max_num_doublings,
            target_acceptance=target_acceptance, progress=progress, mesh=mesh, prior_level=prior_level,
        )
        info.update(nuts_info)
    else:
        samples = warm
    return PosteriorResult(samples, warm, jnp.mean(samples, axis=1), jnp.std(samples, axis=1), info)
