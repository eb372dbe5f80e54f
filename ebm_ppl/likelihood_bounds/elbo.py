"""Variational lower bounds on log p(x) that need no log Z (see docs/likelihood.md).

Both bounds are for the *generative diffusion that uses the energy's gradient as its score*, not
for the EBM's own normalised level-0 density; they coincide when the score is exact.

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

Continuous time (``method="continuous"``; DSM over a continuum, Huang, Lim & Courville 2021)
---------------------------------------------------------------------------------------------
For the plug-in reverse SDE of the VP SDE (clock ``u``, see :mod:`.common`), the bound of their
Theorem (the implicit score-matching form, equal to Song et al. 2021's L^SM):

    log p(x_0) >= E log N(x(u_T); 0, I) - int_{u_min}^{u_T} E[ |s|^2 / 2 + div s + D / 2 ] du
                  + [decoder from u_min]

with ``x(u) = abar(u) x_0 + sbar(u) e``, ``div s`` by Hutchinson (Rademacher probe ``v``,
``v . (ds/dx) v``), ``u`` importance-sampled, and the explicit smallest time ``u_min`` handled by the
Gaussian decoder ``N(x_0; (x + sbar^2 s)/abar, sbar^2/abar^2)``, which contributes
``D log abar + (|e|^2 - |e + sbar s|^2)/2`` (zero when ``u_min = 0``: level 0 is the data).
"""

from __future__ import annotations

import functools
import math
import time

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl.likelihood_bounds.common import (
    ContinuousTime,
    LikelihoodEstimate,
    check_data,
    check_reference,
    flat_dim,
    score_function,
)

__all__ = ["elbo", "discrete_elbo", "continuous_elbo", "ELBO_METHODS", "KERNEL_VARIANCES"]

ELBO_METHODS = ("auto", "discrete", "continuous")


# ---------------------------------------------------------------------------------------------
# pieces kept separate so that tests can break them on purpose
# ---------------------------------------------------------------------------------------------
def _prior_cross_entropy(sq_norm_x0, abar_T, sbar2_T, dim):
    """E_{q(x_T | x_0)} log N(x_T; 0, I), float64."""
    return -0.5 * dim * math.log(2 * math.pi) - 0.5 * (abar_T**2 * sq_norm_x0 + dim * sbar2_T)


def _hutchinson_divergence(score_fn, x, u, probe):
    """(s, v . (ds/dx) v): the score and the Hutchinson estimate of its divergence."""
    s, jv = jax.jvp(lambda z: score_fn(z, u), (x,), (probe,))
    return s, jnp.sum(probe * jv)


def _gaussian_data_variance(x: np.ndarray) -> float:
    """Mean per-coordinate variance of the batch (1 for a single example): sets the proposals."""
    if x.shape[0] < 2:
        return 1.0
    return float(np.clip(np.mean(np.var(x.reshape(x.shape[0], -1), axis=0)), 1e-4, 1.0))


def _summarise(samples: np.ndarray):
    m = samples.shape[1]
    mean = samples.mean(axis=1)
    stderr = samples.std(axis=1, ddof=1) / math.sqrt(m) if m > 1 else np.full(samples.shape[0], np.nan)
    return mean, stderr


def _check_budget(num_samples, chunk):
    if int(num_samples) != num_samples or num_samples < 2:
        raise ValueError(f"num_samples must be an integer >= 2 (for a standard error), got {num_samples!r}")
    if int(chunk) != chunk or chunk < 1:
        raise ValueError(f"chunk must be a positive integer, got {chunk!r}")


# ---------------------------------------------------------------------------------------------
# discrete time
# ---------------------------------------------------------------------------------------------
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


def discrete_elbo(
    energy,
    key,
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
      key: PRNG key.
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
        key, k_pilot = jax.random.split(key)
        cv, pi = _pilot(energy, k_pilot, x, abar, sbar, weight, D, pi, cv)
        pilot_evals = min(32, x.shape[0]) * 8 * (min(48, T) + 1)
    samples = []
    remaining = int(num_samples)
    while remaining > 0:
        num = min(int(chunk), remaining)
        key, k_t, k_e = jax.random.split(key, 3)
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


# ---------------------------------------------------------------------------------------------
# continuous time
# ---------------------------------------------------------------------------------------------
def _time_bins(clock: ContinuousTime, u_min: float, data_variance: float, uniform_mix: float, min_bins: int = 512):
    """Bins over [u_min, u_T] (the level knots, each split evenly) with proposal masses ~ 1/V(u)."""
    T = clock.num_levels
    per = max(1, math.ceil(min_bins / T))
    edges = np.unique(np.concatenate([np.linspace(clock.knots[i], clock.knots[i + 1], per + 1) for i in range(T)]))
    edges = np.unique(np.concatenate([[u_min], edges[edges > u_min]]))
    width = np.diff(edges)
    mid = 0.5 * (edges[:-1] + edges[1:])
    V = np.exp(-mid) * data_variance + (1.0 - np.exp(-mid))
    mass = width / V
    mass = (1 - uniform_mix) * mass / mass.sum() + uniform_mix * width / width.sum()
    return edges[:-1], width, mass


@functools.partial(jax.jit, static_argnames=("num", "mode", "clock", "decoder"))
def _continuous_chunk(energy, reference, key, x0, lo, width, mass, u_min, num, mode, clock, decoder):
    """Per example and draw: u, 1/pi(u) and h = |s|^2/2 + v.(ds/dx)v at x(u); and the decoder's
    random part (|e'|^2 - |e' + sbar s|^2)/2 at u_min."""
    score_fn, _, _ = score_function(energy, clock, mode, reference)
    n = x0.shape[0]
    k_b, k_u, k_e, k_v, k_d = jax.random.split(key, 5)
    b = jax.random.choice(k_b, mass.shape[0], (n, num), p=mass)
    u = lo[b] + width[b] * jax.random.uniform(k_u, (n, num), x0.dtype)
    inv_pi = width[b] / mass[b]
    eps = jax.random.normal(k_e, (n, num) + x0.shape[1:], x0.dtype)
    probe = jax.random.rademacher(k_v, eps.shape, x0.dtype)

    def one(x0_i, e, v, ui):
        a, sb = jnp.exp(-0.5 * ui), jnp.sqrt(-jnp.expm1(-ui))
        s, div = _hutchinson_divergence(score_fn, a * x0_i + sb * e, ui, v)
        return 0.5 * jnp.sum(s**2) + div

    per_example = jax.vmap(one, in_axes=(None, 0, 0, 0))
    h = jax.vmap(per_example)(x0, eps, probe, u)
    if decoder:
        e_d = jax.random.normal(k_d, eps.shape, x0.dtype)
        a, sb = jnp.exp(-0.5 * u_min), jnp.sqrt(-jnp.expm1(-u_min))

        def dec(x0_i, e):
            s = score_fn(a * x0_i + sb * e, u_min)
            return 0.5 * (jnp.sum(e**2) - jnp.sum((e + sb * s) ** 2))

        d = jax.vmap(jax.vmap(dec, in_axes=(None, 0)))(x0, e_d)
    else:
        d = jnp.zeros_like(h)
    return inv_pi, h, d


def continuous_elbo(
    energy,
    key,
    x,
    *,
    num_samples: int = 256,
    chunk: int = 64,
    t_min: float = 0.0,
    score: str = "auto",
    reference=None,
    data_variance: float | None = None,
    uniform_mix: float = 0.1,
    _drop_prior: bool = False,
) -> LikelihoodEstimate:
    """Continuous-time ELBO of Huang, Lim & Courville (2021) for the plug-in reverse VP SDE.

    Args:
      energy, key, x: as :func:`discrete_elbo`.
      num_samples: draws (u, e, Rademacher probe) per example.
      t_min: smallest time as a continuous level in [0, T) (0: start at the data level);
        below it a Gaussian decoder is used (module docstring).
      score: ``"auto"`` | ``"exact"`` (oracles) | ``"interpolate"`` (between discrete levels,
        see :mod:`ebm_ppl.likelihood_bounds.common`).
      reference: Gaussian reference of the interpolated score (``gaussian_reference`` or data
        (m, *data_shape), e.g. the training split); None: N(0, I).
      data_variance, uniform_mix: shape the time proposal only (any value is unbiased).
    """
    start = time.perf_counter()
    x = check_data(energy, x, "elbo")
    _check_budget(num_samples, chunk)
    clock = ContinuousTime(energy.schedule)
    if not 0.0 <= float(t_min) < clock.num_levels:
        raise ValueError(f"t_min must lie in [0, {clock.num_levels}), got {t_min!r}")
    u_min = clock.u_of_level(float(t_min))
    _, evals_per_score, mode = score_function(energy, clock, score)
    D = flat_dim(energy)
    v = _gaussian_data_variance(x) if data_variance is None else float(data_variance)
    lo, width, mass = _time_bins(clock, u_min, v, uniform_mix)

    x64 = x.reshape(x.shape[0], -1).astype(np.float64)
    sq = np.sum(x64**2, axis=1)
    u_T = clock.u_max
    prior = np.zeros_like(sq) if _drop_prior else _prior_cross_entropy(sq, math.exp(-0.5 * u_T), -math.expm1(-u_T), D)
    decoder = D * (-0.5 * u_min) if u_min > 0 else 0.0  # D log abar(u_min)
    const = prior - 0.5 * D * (u_T - u_min) + decoder

    f32 = lambda a: jnp.asarray(a, jnp.float32)  # noqa: E731
    xj = jnp.asarray(x, jnp.float32)
    reference32 = check_reference(reference, energy, jnp.float32)
    samples = []
    remaining = int(num_samples)
    while remaining > 0:
        num = min(int(chunk), remaining)
        key, sub = jax.random.split(key)
        inv_pi, h, d = _continuous_chunk(
            energy,
            reference32,
            sub,
            xj,
            f32(lo),
            f32(width),
            f32(mass),
            jnp.float32(u_min),
            num,
            mode,
            clock,
            u_min > 0,
        )
        inv_pi, h, d = (np.asarray(a, np.float64) for a in (inv_pi, h, d))
        samples.append(const[:, None] - inv_pi * h + d)
        remaining -= num
    mean, stderr = _summarise(np.concatenate(samples, axis=1))
    # one score + one JVP per draw (+ one score for the decoder); interpolation doubles each
    per_draw = evals_per_score * (2 + (1 if u_min > 0 else 0))
    info = {
        "num_samples": int(num_samples),
        "t_min": float(t_min),
        "u_min": u_min,
        "score": mode,
        "reference": "N(0, I)" if reference is None else "gaussian",
        "data_variance": v,
    }
    return LikelihoodEstimate(
        mean, stderr, int(x.shape[0] * num_samples * per_draw), time.perf_counter() - start, "elbo-continuous", info
    )


# ---------------------------------------------------------------------------------------------
def _default_method(energy) -> str:
    name = getattr(energy.schedule, "name", "")
    return "continuous" if name.startswith("ncsn") else "discrete"


def elbo(energy, key, x, *, method: str = "auto", **budget) -> LikelihoodEstimate:
    """Per-example lower bounds on log p(x) in data space (nats), with standard errors.

    ``method="discrete"``: the normal-approximation chain's discrete-time bound (:func:`discrete_elbo`);
    ``"continuous"``: Huang et al. (2021)'s bound for the plug-in reverse SDE (:func:`continuous_elbo`);
    ``"auto"``: continuous for NCSN (DSM, continuum of levels) schedules, discrete otherwise.
    ``budget`` goes to the chosen function (``num_samples``, ``chunk``, ``t_min``, ``score``, ...);
    ``reference`` (the interpolated score's Gaussian reference) is dropped for the discrete bound,
    which evaluates the levels only.
    """
    if method not in ELBO_METHODS:
        raise ValueError(f"method must be one of {ELBO_METHODS}, got {method!r}")
    if method == "auto":
        method = _default_method(energy)
    fn = discrete_elbo if method == "discrete" else continuous_elbo
    if method == "discrete":
        budget.pop("reference", None)
    try:
        return fn(energy, key, x, **budget)
    except TypeError as err:
        if "unexpected keyword" in str(err):
            raise ValueError(f"elbo(method={method!r}): {err}") from None
        raise
