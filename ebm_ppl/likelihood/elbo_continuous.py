"""The continuous-time diffusion ELBO (:func:`continuous_elbo`; see :mod:`.elbo` and docs/likelihood.md).

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

from ebm_ppl._jax_utils import rng_key_first
from ebm_ppl.likelihood.common import (
    ContinuousTime,
    LikelihoodEstimate,
    _check_budget,
    _gaussian_data_variance,
    _prior_cross_entropy,
    _summarise,
    check_data,
    check_reference,
    flat_dim,
    score_function,
)

__all__ = ["continuous_elbo"]


def _hutchinson_divergence(score_fn, x, u, probe):
    """(s, v . (ds/dx) v): the score and the Hutchinson estimate of its divergence."""
    s, jv = jax.jvp(lambda z: score_fn(z, u), (x,), (probe,))
    return s, jnp.sum(probe * jv)


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


@rng_key_first(1)
def continuous_elbo(
    rng_key,
    energy,
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
      energy, rng_key, x: as :func:`discrete_elbo`.
      num_samples: draws (u, e, Rademacher probe) per example.
      t_min: smallest time as a continuous level in [0, T) (0: start at the data level);
        below it a Gaussian decoder is used (module docstring).
      score: ``"auto"`` | ``"exact"`` (oracles) | ``"interpolate"`` (between discrete levels,
        see :mod:`ebm_ppl.likelihood.common`).
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
        rng_key, sub = jax.random.split(rng_key)
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
