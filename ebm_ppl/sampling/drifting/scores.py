"""Drifting sampler: the energy at a level, the target- and sampler-side smoothed scores, the drift."""

from __future__ import annotations

from collections.abc import Callable

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl._jax_utils import rng_key_first
from ebm_ppl.energy.base import level_scale, logdensity_fn
from ebm_ppl.sampling.drifting.model import DriftingConfig


def energy_function(energy, level: int = 0, space: str = "data") -> Callable:
    """E(x) = -log p(x) of a bound energy at ``level``, for flat x of shape (..., D).

    Returns ``fn(energy, x_flat) -> (...)`` (the energy is an argument so it can be traced under
    jit). Normalised (exact -log p) when ``energy.log_z(level)`` is known, else up to a constant.
    See the module docstring for ``space``.
    """
    level = int(level)
    if not 0 <= level <= energy.num_levels:
        raise ValueError(f"level {level} out of range 0..{energy.num_levels}")
    c = level_scale(energy, level, space)
    if not c > 0:
        raise ValueError(f"level {level} has no data-space map (scale {c}); use space='model'")
    log_z = energy.log_z(level)
    log_z = 0.0 if log_z is None else float(log_z)
    data_shape = tuple(energy.data_shape)

    def fn(e, x_flat):
        return -logdensity_fn(e, level, space)(x_flat.reshape(x_flat.shape[:-1] + data_shape)) + log_z

    return fn


def level_bandwidths(energy) -> np.ndarray:
    """rho_t (t = 0..T-1): level t of a noise-conditional energy, divided by its signal scale, is the
    level-0 data variable x_0 smoothed by N(0, rho_t^2 I) (``schedule.marginal``: y_t = a_t x_0 +
    s_t e, rho_t = s_t / a_t). rho_0 = 0."""
    T = energy.num_levels
    return np.array([energy.schedule.marginal(t)[1] / energy.schedule.marginal(t)[0] for t in range(T)])


def level_score_function(energy) -> Callable:
    """``fn(energy, x_flat, t) -> (N, D)``: grad log (p_0 * phi_rho_t)(x) = a_t score(a_t x, t), the
    exact smoothed score of the level-0 data density at bandwidth rho_t when the energy is
    consistent across levels (oracles), the network's own estimate otherwise. ``t`` may be traced."""
    T = energy.num_levels
    scales = jnp.asarray([energy.schedule.marginal(t)[0] for t in range(T)], jnp.float32)
    data_shape = tuple(energy.data_shape)

    def fn(e, x_flat, t):
        a = scales[t]
        y = (a * x_flat).reshape(x_flat.shape[:-1] + data_shape)
        return (a * e.score(y, t)).reshape(x_flat.shape)

    return fn


def level_at(config: DriftingConfig, step, level_start: int):
    """The level used at update ``step`` by the ``"level"`` estimator (traceable int32): equal
    shares of the first ``anneal_fraction`` of the updates per level, level_start -> level_end."""
    n_levels = level_start - config.level_end + 1
    frac = jnp.clip(step / max(1.0, config.anneal_fraction * config.num_steps), 0.0, 1.0)
    idx = jnp.minimum(jnp.floor(frac * n_levels).astype(jnp.int32), n_levels - 1)
    return jnp.asarray(level_start, jnp.int32) - idx


# --------------------------------------------------------------------------------------------
# drift estimators (flat x of shape (N, D))
# --------------------------------------------------------------------------------------------
@rng_key_first(1)
def mean_shift_target_score(rng_key, E: Callable, x, sigma: float, num_perturbations: int):
    """Local importance-sampling mean shift: (sum_l softmax(-E(u_l)) u_l - x) / sigma^2, with
    u_l = x + sigma e_l. ``E`` maps (..., D) -> (...). Returns (N, D)."""
    eps = jax.random.normal(rng_key, (x.shape[0], num_perturbations, x.shape[-1]), x.dtype)
    u = x[:, None, :] + sigma * eps
    logw = -E(u)
    logw = jnp.where(jnp.isfinite(logw), logw, -jnp.inf)
    w = jax.nn.softmax(logw, axis=-1)
    return jnp.einsum("nl,nld->nd", w, sigma * eps) / sigma**2


def _truncated_cg(matvec, b, iters: int):
    """Solve A v = b by CG from v = 0 for ``iters`` steps, stopping at the first direction with
    p^T A p <= 0 (A not positive definite there) or a zero residual; returns the current iterate,
    or b itself when CG stopped before its first step."""

    def body(carry, _):
        v, r, p, rs, stop = carry
        Ap = matvec(p)
        pAp = jnp.vdot(p, Ap)
        stop = stop | (pAp <= 1e-12 * jnp.vdot(p, p)) | (rs <= 1e-30)
        alpha = jnp.where(stop, 0.0, rs / jnp.where(stop, 1.0, pAp))
        v = v + alpha * p
        r_new = r - alpha * Ap
        rs_new = jnp.vdot(r_new, r_new)
        p_new = r_new + (rs_new / jnp.where(stop, 1.0, rs)) * p
        keep = lambda new, old: jnp.where(stop, old, new)  # noqa: E731
        return (v, keep(r_new, r), keep(p_new, p), keep(rs_new, rs), stop), None

    carry = (jnp.zeros_like(b), b, b, jnp.vdot(b, b), jnp.asarray(False))
    (v, _, _, _, _), _ = jax.lax.scan(body, carry, None, length=iters)
    return jnp.where(jnp.vdot(v, v) == 0, b, v)


def curvature_target_score(E: Callable, x, sigma: float, cg_iters: int = 20):
    """Second-order target score -(I + sigma^2 H)^{-1} grad E at each row of x (N, D), by
    truncated CG on Hessian-vector products. Exact for a Gaussian target."""
    e_single = lambda v: E(v[None])[0]  # noqa: E731
    grad_e = jax.grad(e_single)

    def one(xi):
        g = grad_e(xi)
        hvp = lambda p: jax.jvp(grad_e, (xi,), (p,))[1]  # noqa: E731
        matvec = lambda p: p + sigma**2 * hvp(p)  # noqa: E731
        return -_truncated_cg(matvec, g, cg_iters)

    return jax.vmap(one)(x)


def batch_mean_shift_score(x, sigma: float, include_self: bool = True):
    """Sampler-side smoothed score by Gaussian mean shift over the batch x (N, D), self included
    (the exact score of the batch's Gaussian KDE) or left out (``include_self=False``: the
    leave-one-out KDE; both are consistent as N grows, but in high dimension with a bandwidth
    below the nearest-neighbour distance the self term takes all the weight and the sampler side
    vanishes, while the leave-one-out form keeps a repulsion from the nearest batch neighbours)."""
    sq = jnp.sum(x**2, -1)
    d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    logits = -d2 / (2 * sigma**2)
    if not include_self:
        logits = jnp.where(jnp.eye(x.shape[0], dtype=bool), -jnp.inf, logits)
    w = jax.nn.softmax(logits, axis=-1)
    return (w @ x - x) / sigma**2


@rng_key_first(1)
def drift(rng_key, E: Callable, x, config: DriftingConfig, sigma=None):
    """V(x) = eta (s_p(x) - s_q(x)) for the batch x (N, D); returns (V, s_p, s_q).
    ``sigma`` overrides ``config.sigma`` (bandwidth annealing)."""
    sigma = config.sigma if sigma is None else sigma
    if config.estimator == "level":
        raise ValueError("drift() has no 'level' estimator; use build_update(..., energy)")
    if config.estimator == "mean_shift":
        s_p = mean_shift_target_score(rng_key, E, x, sigma, config.num_perturbations)
    else:
        s_p = curvature_target_score(E, x, sigma, config.cg_iters)
    s_q = batch_mean_shift_score(x, sigma, config.sampler_include_self)
    eta = config.eta if sigma is config.sigma else config.eta_at(sigma)
    return eta * (s_p - s_q), s_p, s_q


def drift_loss(params, module, E, key, config: DriftingConfig, sigma=None):
    """Stop-gradient regression loss mean_i |x_i - sg(x_i + V_i)|^2 and diagnostics."""
    k_z, k_drift = jax.random.split(key)
    z = jax.random.normal(k_z, (config.batch_size, config.latent_dim))
    x = module.apply(params, z)
    x_flat = x.reshape(config.batch_size, -1)
    V, s_p, s_q = drift(k_drift, E, jax.lax.stop_gradient(x_flat), config, sigma)
    target = jax.lax.stop_gradient(x_flat + V)
    loss = jnp.mean(jnp.sum((x_flat - target) ** 2, -1))
    return loss, {"drift_norm": jnp.mean(jnp.sqrt(jnp.sum(V**2, -1))), "mean_energy": jnp.mean(E(x_flat))}
