"""The discrete-time diffusion ELBO (:func:`discrete_elbo`; see :mod:`.elbo` and docs/likelihood.md).

Discrete time (``method="discrete"``; T6, T1k)
----------------------------------------------
Generative chain: ``x_T ~ N(0, I)``, then for ``t = T-1, ..., 0`` the T1k sampler

    y_t | x_{t+1} ~ N(x_{t+1} + sigma_{t+1}^2 grad f(x_{t+1}, t), sigma_{t+1}^2 I),   x_t = y_t / alpha_{t+1},

and ``x_0`` is the data. With the forward posterior ``q(y_t | x_{t+1}, x_0)`` (``y_t = alpha_{t+1} x_t``)
of mean ``x_{t+1} - sigma_{t+1}^2 e / sbar_{t+1}`` and variance ``r_t sigma_{t+1}^2``,
``r_t = 1 - sigma_{t+1}^2 / sbar_{t+1}^2``, where ``x_{t+1} = abar_{t+1} x_0 + sbar_{t+1} e``:

    log p(x_0) >= E_q log N(x_T; 0, I) + H[q(x_T | x_0)]                         (prior)
                  - sum_{t=1}^{T-1} D/2 (r_t - 1 - log r_t)                          (variances)
                  + D log alpha_1 - D/2 log(2 pi sigma_1^2)                          (decoder, data space)
                  - sum_{t=0}^{T-1} sigma_{t+1}^2 / 2  E_e |e / sbar_{t+1} + grad f(x_{t+1}, t)|^2.

The last sum (the only random part) is estimated by importance-sampling the level ``t`` with a
proposal proportional to its size under a Gaussian model of the data, and a control variate
``c_t (|e|^2 - D) / sbar^2`` (zero mean) that removes most of the noise at small ``sbar``.
"""

from __future__ import annotations

import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl._jax_utils import rng_key_first
from ebm_ppl.likelihood.common import (
    LikelihoodEstimate,
    _check_budget,
    _gaussian_data_variance,
    _prior_cross_entropy,
    _summarise,
    check_data,
    flat_dim,
)

__all__ = ["discrete_elbo", "KERNEL_VARIANCES"]

KERNEL_VARIANCES = ("matched", "sampler")


def _kernel_kappa(schedule, kernel_variance: str) -> np.ndarray:
    """kappa_t with reverse-kernel variance kappa_t sigma_{t+1}^2, t = 0..T-1."""
    if kernel_variance == "sampler":
        return np.ones(schedule.num_levels)
    if kernel_variance == "matched":
        return 1.0 - schedule.sigmas[1:] ** 2
    raise ValueError(f"kernel_variance must be one of {KERNEL_VARIANCES}, got {kernel_variance!r}")


def _discrete_tables(schedule, data_variance: float, uniform_mix: float, kappa: np.ndarray):
    """Per reverse kernel t = 0..T-1: abar_{t+1}, sbar_{t+1}, weight sigma_{t+1}^2/(2 kappa_t),
    control-variate coefficient c_t, proposal pi_t; plus the deterministic variance sum
    sum_{t>=1} (r_t/kappa_t - 1 - log(r_t/kappa_t))."""
    sig2 = schedule.sigmas[1:] ** 2
    abar = schedule.signal_scales[1:]
    sbar2 = schedule.noise_scales[1:] ** 2
    weight = 0.5 * sig2 / kappa
    v = data_variance
    V = abar**2 * v + sbar2
    cv = (abar**2 * v / V) ** 2
    size = weight * abar**2 * v / (sbar2 * V)  # E|e/sbar + s|^2 * weight for N(., v I) data, per dim
    pi = size / size.sum()
    pi = (1 - uniform_mix) * pi + uniform_mix / pi.size
    rho = sig2[1:] / sbar2[1:]  # t = 1..T-1: r = 1 - rho
    k = kappa[1:]
    ratio_m1 = (1.0 - rho - k) / k  # r/kappa - 1, exact for kappa = 1
    variance_sum = float(np.sum(ratio_m1 - np.log1p(ratio_m1)))
    return abar, np.sqrt(sbar2), weight, cv, pi, variance_sum


@functools.partial(jax.jit, static_argnames=("n", "num", "stratified"))
def _sample_levels(key, p, n, num, stratified=False):
    """(n, num) levels from the proposal p; ``stratified``: one draw per equal-mass stratum."""
    if not stratified:
        return jax.random.choice(key, p.shape[0], (n, num), p=p)
    u = (jnp.arange(num) + jax.random.uniform(key, (n, num))) / num
    cdf = jnp.cumsum(p)
    return jnp.clip(jnp.searchsorted(cdf / cdf[-1], u), 0, p.shape[0] - 1)


@functools.partial(jax.jit, static_argnames=("antithetic",))
def _discrete_pieces(energy, key, x0, t, abar, sbar, antithetic=False):
    """For examples x0 (n, ...) and levels t (n, m): with x_{t+1} = abar x0 + sbar e and
    s = grad f(x_{t+1}, t), return |e|^2, e.s and |s|^2, each (n, m). ``antithetic``: the second
    half of the draws uses -e and the levels of the first half."""
    n, num = t.shape
    if antithetic:
        half = jax.random.normal(key, (n, num // 2) + x0.shape[1:], x0.dtype)
        eps = jnp.concatenate([half, -half], axis=1)  # t must repeat its first half
    else:
        eps = jax.random.normal(key, (n, num) + x0.shape[1:], x0.dtype)
    axes = tuple(range(2, eps.ndim))
    expand = (...,) + (None,) * (eps.ndim - 2)
    x_next = abar[t][expand] * x0[:, None] + sbar[t][expand] * eps
    flat = x_next.reshape((n * num,) + x0.shape[1:])
    score = energy.score(flat, t.reshape(-1)).reshape(x_next.shape)
    return jnp.sum(eps**2, axes), jnp.sum(eps * score, axes), jnp.sum(score**2, axes)


def _terms(pieces, t, weight, sbar, D):
    """(R, Z): R = weight |e/sbar + s|^2 (the random part), Z = weight (|e|^2 - D)/sbar^2 (mean 0)."""
    e2, cross, s2 = (np.asarray(a, np.float64) for a in pieces)
    w, sb = weight[t], sbar[t]
    return w * (e2 / sb**2 + 2.0 * cross / sb + s2), w * (e2 - D) / sb**2


def _pilot(energy, key, x, abar, sbar, weight, D, gaussian_pi, gaussian_cv, num_examples=32, num_noise=8, num_grid=48):
    """Per-level control-variate coefficients and a level proposal from a small pilot run on a grid
    of levels (interpolated in between): c_t = Cov(R, Z)/Var(Z) and pi_t ~ sqrt(E[(R - c Z)^2]).
    Independent of the main draws, so the final estimate stays unbiased."""
    T = abar.shape[0]
    grid = np.unique(np.concatenate([[0], np.round(np.geomspace(1, T, num_grid)).astype(int) - 1]))
    sub = x[: min(num_examples, x.shape[0])]
    m = sub.shape[0]
    t = np.repeat(grid[None, :], num_noise, axis=0).reshape(1, -1).repeat(m, axis=0)  # (m, G*num_noise)
    pieces = _discrete_pieces(
        energy,
        key,
        jnp.asarray(sub, jnp.float32),
        jnp.asarray(t, jnp.int32),
        jnp.asarray(abar, jnp.float32),
        jnp.asarray(sbar, jnp.float32),
    )
    R, Z = _terms(pieces, t, weight, sbar, D)
    G = grid.size
    R = R.reshape(m, num_noise, G).transpose(2, 0, 1).reshape(G, -1)
    Z = Z.reshape(m, num_noise, G).transpose(2, 0, 1).reshape(G, -1)
    Zc = Z - Z.mean(1, keepdims=True)
    c_grid = np.clip(np.sum((R - R.mean(1, keepdims=True)) * Zc, 1) / np.maximum(np.sum(Zc**2, 1), 1e-300), 0.0, 1.0)
    rms_grid = np.sqrt(np.mean((R - c_grid[:, None] * Z) ** 2, axis=1)) + 1e-12
    levels = np.arange(T)
    cv = np.interp(levels, grid, c_grid)
    rms = np.exp(np.interp(levels, grid, np.log(rms_grid)))
    pi = rms / rms.sum()
    if not np.all(np.isfinite(pi)):
        return gaussian_cv, gaussian_pi
    return cv, 0.9 * pi + 0.1 * gaussian_pi


@rng_key_first(1)
def discrete_elbo(
    rng_key,
    energy,
    x,
    *,
    num_samples: int = 256,
    chunk: int = 64,
    data_variance: float | None = None,
    uniform_mix: float = 0.1,
    kernel_variance: str = "matched",
    pilot: bool = True,
    stratified: bool = False,
    antithetic: bool = False,
    _drop_prior: bool = False,
) -> LikelihoodEstimate:
    """Discrete-time ELBO of the normal-approximation (T1k-sampler) chain; see the module docstring.

    Args:
      energy: a noise-conditional energy (oracle or network).
      rng_key: PRNG key.
      x: (n, *data_shape) data-space examples.
      num_samples: Monte Carlo draws (level, noise) per example.
      chunk: draws per example per compiled call (memory: n * chunk score evaluations at once).
      data_variance: per-coordinate data variance of the Gaussian model that shapes the level
        proposal and the control variate (default: the batch's); any value gives an unbiased estimate.
      uniform_mix: weight of the uniform distribution in the level proposal.
      stratified: one level per equal-mass stratum of the proposal within each chunk (the
        reported standard error then ignores the gain: conservative).
      antithetic: pair every noise e with -e at the same level (num_samples counts evaluations;
        each pair is one sample for the standard error).
      pilot: tune the level proposal and the control variate by a small pilot run (recommended).
      kernel_variance: variance of the reverse kernels: ``"sampler"`` is sigma_{t+1}^2, the DRL
        normal approximation exactly as :mod:`ebm_ppl.sampling.progressive` samples it;
        ``"matched"`` (default) is alpha_{t+1}^2 sigma_{t+1}^2, the exact reverse variance where
        the level is N(0, I). Same means. With an exact score on T1k, "sampler" is looser by about
        sum_t sigma_t^4 / 4 = 0.033 nats per dimension (docs/likelihood.md).
    """
    start = time.perf_counter()
    x = check_data(energy, x, "elbo")
    _check_budget(num_samples, chunk)
    if antithetic and (num_samples % 2 or chunk % 2 or num_samples < 4):
        raise ValueError("with antithetic=True, num_samples (>= 4) and chunk must be even")
    sched = energy.schedule
    D = flat_dim(energy)
    T = sched.num_levels
    v = _gaussian_data_variance(x) if data_variance is None else float(data_variance)
    kappa = _kernel_kappa(sched, kernel_variance)
    abar, sbar, weight, cv, pi, variance_sum = _discrete_tables(sched, v, uniform_mix, kappa)

    # deterministic part, float64
    x64 = x.reshape(x.shape[0], -1).astype(np.float64)
    sq = np.sum(x64**2, axis=1)
    abar_T, sbar2_T = float(sched.signal_scales[T]), float(sched.noise_scales[T] ** 2)
    prior = np.zeros_like(sq) if _drop_prior else _prior_cross_entropy(sq, abar_T, sbar2_T, D)
    entropy_T = 0.5 * D * math.log(2 * math.pi * math.e * sbar2_T)
    sigma1 = float(sched.sigmas[1])
    decoder = D * math.log(sched.data_scale) - 0.5 * D * math.log(2 * math.pi * kappa[0] * sigma1**2)
    const = prior + entropy_T - 0.5 * D * variance_sum + decoder

    # random part: pilot for the proposal and control variate, then the main draws
    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    xj = jnp.asarray(x, jnp.float32)
    pilot_evals = 0
    if pilot:
        rng_key, k_pilot = jax.random.split(rng_key)
        cv, pi = _pilot(energy, k_pilot, x, abar, sbar, weight, D, pi, cv)
        pilot_evals = min(32, x.shape[0]) * 8 * (min(48, T) + 1)
    samples = []
    remaining = int(num_samples)
    while remaining > 0:
        num = min(int(chunk), remaining)
        rng_key, k_t, k_e = jax.random.split(rng_key, 3)
        if antithetic:
            t = _sample_levels(k_t, f32(pi), x.shape[0], num // 2, stratified)
            t = jnp.concatenate([t, t], axis=1)
        else:
            t = _sample_levels(k_t, f32(pi), x.shape[0], num, stratified)
        pieces = _discrete_pieces(energy, k_e, xj, t, f32(abar), f32(sbar), antithetic)
        t = np.asarray(t)
        R, Z = _terms(pieces, t, weight, sbar, D)
        est = const[:, None] - (R - cv[t] * Z) / pi[t]
        if antithetic:  # one sample per (e, -e) pair
            est = 0.5 * (est[:, : num // 2] + est[:, num // 2 :])
        samples.append(est)
        remaining -= num
    mean, stderr = _summarise(np.concatenate(samples, axis=1))
    info = {
        "num_samples": int(num_samples),
        "data_variance": v,
        "num_levels": T,
        "kernel_variance": kernel_variance,
        "score_evals_per_example": int(num_samples),
    }
    return LikelihoodEstimate(
        mean, stderr, int(x.shape[0] * num_samples) + pilot_evals, time.perf_counter() - start, "elbo-discrete", info
    )
