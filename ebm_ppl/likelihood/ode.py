"""Probability-flow ODE log-likelihood (Song et al. 2021) with a Hutchinson trace.

On the clock ``u`` of :mod:`ebm_ppl.likelihood.common` (``u = -log abar^2``) the VP SDE's
probability-flow ODE is

    dx/du = F(x, u) = -(x + s(x, u)) / 2,          div F = -(D + div s) / 2,

and the instantaneous change of variables gives, along the solution from the data ``x(0) = x_0``
(level 0 is the data: ``abar = 1``) to ``u_T`` (level T),

    log p_ODE(x_0) = log N(x(u_T); 0, I) - 1/2 int_0^{u_T} (D + div s(x(u), u)) du.

``div s`` is estimated by ``v . (ds/dx) v`` with Rademacher probes ``v`` held fixed along the path
(FFJORD): each probe gives an unbiased estimate of log p_ODE; the probes share one trajectory (the
state carries one log-density increment per probe) and their spread gives the standard error.
``exact_trace=True`` uses the full Jacobian instead (D Jacobian-vector products; small D only).

Integrated in float64 by diffrax (Tsit5, PID step control, ``rtol``/``atol``, default 1e-5).
The score between discrete levels is exact for oracles and interpolated for networks
(:func:`ebm_ppl.likelihood.common.score_function`). The result estimates the density of the
ODE model, which equals the EBM's level-0 density only when the score is exact at every level.
"""

from __future__ import annotations

import functools
import math
import time

import diffrax
import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl._jax_utils import rng_key_first
from ebm_ppl.likelihood.common import (
    ContinuousTime,
    LikelihoodEstimate,
    check_data,
    check_reference,
    flat_dim,
    score_function,
)

__all__ = ["ode_log_prob"]


def _divergence_terms(score_fn, x, u, probes):
    """(s, per-probe v . (ds/dx) v): the score and the Hutchinson estimates for each probe."""
    s, lin = jax.linearize(lambda z: score_fn(z, u), x)
    jv = jax.vmap(lin)(probes)
    return s, jnp.sum(probes * jv, axis=tuple(range(1, probes.ndim)))


def _exact_divergence(score_fn, x, u):
    shape = x.shape
    D = x.size
    s, lin = jax.linearize(lambda z: score_fn(z, u), x)
    basis = jnp.eye(D, dtype=x.dtype).reshape((D,) + shape)
    jv = jax.vmap(lin)(basis).reshape(D, D)
    return s, jnp.trace(jv)[None]


def _standard_normal_log_density(x_flat):
    D = x_flat.shape[-1]
    return -0.5 * jnp.sum(x_flat**2, -1) - 0.5 * D * math.log(2 * math.pi)


@functools.partial(jax.jit, static_argnames=("clock", "mode", "exact_trace", "rtol", "atol", "max_steps"))
def _solve(energy, reference, x0, probes, clock, mode, exact_trace, rtol, atol, max_steps):
    score_fn, _, _ = score_function(energy, clock, mode, reference)
    n = x0.shape[0]
    D = math.prod(x0.shape[1:])

    def field(u, state, args):
        x, _ = state
        if exact_trace:
            s, div = jax.vmap(lambda xi: _exact_divergence(score_fn, xi, u))(x)
        else:
            s, div = jax.vmap(lambda xi, vi: _divergence_terms(score_fn, xi, u, vi))(x, probes)
        return -0.5 * (x + s), -0.5 * (D + div)

    num_traces = 1 if exact_trace else probes.shape[1]
    state0 = (x0, jnp.zeros((n, num_traces), x0.dtype))
    sol = diffrax.diffeqsolve(
        diffrax.ODETerm(field),
        diffrax.Tsit5(),
        t0=0.0,
        t1=clock.u_max,
        dt0=None,
        y0=state0,
        stepsize_controller=diffrax.PIDController(rtol=rtol, atol=atol),
        max_steps=max_steps,
        saveat=diffrax.SaveAt(t1=True),
        throw=False,
    )
    x_T, delta = sol.ys
    x_T, delta = x_T[-1], delta[-1]
    prior = _standard_normal_log_density(x_T.reshape(n, -1))
    return prior[:, None] + delta, sol.stats["num_steps"], sol.result == diffrax.RESULTS.successful


@rng_key_first(1)
def ode_log_prob(
    rng_key,
    energy,
    x,
    *,
    num_probes: int = 8,
    exact_trace: bool = False,
    rtol: float = 1e-5,
    atol: float = 1e-5,
    score: str = "auto",
    reference=None,
    batch_size: int = 256,
    max_steps: int = 4096,
) -> LikelihoodEstimate:
    """Per-example log-likelihood of the probability-flow ODE in data space (nats), with stderr.

    Args:
      energy: a noise-conditional energy (oracle or network).
      rng_key: PRNG key (the Rademacher probes).
      x: (n, *data_shape) data-space examples.
      num_probes: Hutchinson probes per example (>= 2 for a standard error), sharing one trajectory.
      exact_trace: exact divergence (D JVPs per evaluation) instead of probes; stderr is then 0
        (solver error only).
      rtol, atol: diffrax PID tolerances (float64 state).
      score: ``"auto"`` | ``"exact"`` (oracles) | ``"interpolate"``.
      reference: Gaussian reference of the interpolated score (:func:`gaussian_reference`, or data
        (m, *data_shape) whose moments are used, e.g. the training split); None: N(0, I).
      batch_size: examples per solve (they share adaptive steps).
    """
    start = time.perf_counter()
    x = check_data(energy, x, "ode_log_prob")
    if not exact_trace and (int(num_probes) != num_probes or num_probes < 2):
        raise ValueError(f"num_probes must be an integer >= 2 (for a standard error), got {num_probes!r}")
    if not (rtol > 0 and atol > 0):
        raise ValueError("rtol and atol must be positive")
    clock = ContinuousTime(energy.schedule)
    _, evals_per_score, mode = score_function(energy, clock, score)
    D = flat_dim(energy)
    n = x.shape[0]
    out, steps = [], []
    with jax.enable_x64(True):
        energy64 = jax.tree_util.tree_map(lambda a: jnp.asarray(a, jnp.float64), energy)
        reference64 = check_reference(reference, energy, jnp.float64)
        for lo in range(0, n, batch_size):
            xb = jnp.asarray(x[lo : lo + batch_size], jnp.float64)
            rng_key, sub = jax.random.split(rng_key)
            probes = jax.random.rademacher(sub, (xb.shape[0], int(num_probes)) + xb.shape[1:], jnp.float64)
            logp, nsteps, ok = _solve(
                energy64,
                reference64,
                xb,
                probes,
                clock,
                mode,
                bool(exact_trace),
                float(rtol),
                float(atol),
                int(max_steps),
            )
            if not bool(ok):
                raise RuntimeError(
                    f"ode_log_prob: diffrax did not reach u_T within max_steps={max_steps} "
                    f"(rtol={rtol}, atol={atol}); raise max_steps or loosen the tolerance"
                )
            out.append(np.asarray(logp, np.float64))
            steps.append(int(nsteps))
    samples = np.concatenate(out, axis=0)
    mean = samples.mean(1)
    stderr = np.zeros(n) if exact_trace else samples.std(1, ddof=1) / math.sqrt(samples.shape[1])
    # Tsit5: 6 field evaluations per step; each = one score (+ its linearisation) and one JVP per probe
    jvps = D if exact_trace else int(num_probes)
    evals = int(sum(s * 6 * min(batch_size, n) for s in steps) * evals_per_score * (1 + jvps))
    info = {
        "num_steps": steps,
        "rtol": rtol,
        "atol": atol,
        "num_probes": None if exact_trace else int(num_probes),
        "exact_trace": bool(exact_trace),
        "score": mode,
        "reference": "N(0, I)" if reference is None else "gaussian",
        "u_max": clock.u_max,
    }
    return LikelihoodEstimate(mean, stderr, evals, time.perf_counter() - start, "ode", info)
