"""Shared pieces of the log Z-free likelihoods: the result type, input checks, and the
continuous-time view of a discrete schedule (time map, score at any noise level).

Continuous time
---------------
A schedule's discrete diffusion ``x_{t+1} = alpha_{t+1} x_t + sigma_{t+1} e`` is embedded in the
variance-preserving SDE ``dx = -beta(tau) x / 2 dtau + sqrt(beta(tau)) dW`` with ``beta`` constant on
each interval ``(t, t+1)``: ``beta = -log(1 - sigma_{t+1}^2)``. Then ``x(tau = t)`` has exactly the
law of ``x_t`` and the integrated rate

    u(tau) = int_0^tau beta = -log abar(tau)^2,     abar(u) = exp(-u/2),   sbar(u)^2 = 1 - exp(-u)

is piecewise linear in ``tau`` with knots ``u_t = -2 log abar_t``. Every continuous-time quantity
below uses ``u`` as its clock (``dx = -x/2 du + dW_u``): the drift is then smooth even where ``beta``
jumps between levels.

Score at any ``u``
------------------
* Oracles (:class:`~ebm_ppl.energy.oracles.MixtureOracle`): exact. ``x(u)`` is the mixture with
  means ``abar m_k`` and covariances ``abar^2 C_k + sbar^2 I``.
* Any other energy (a network with discrete levels): for ``u_k <= u <= u_{k+1}`` with weight
  ``w = (u - u_k) / (u_{k+1} - u_k)``,

      s(x, u) = (1 - w) s_k(x / r_k) / r_k + w s_{k+1}(x / r_{k+1}) / r_{k+1},    r_j = abar(u) / abar_j,

  where ``s_j(x) = c_j grad f(c_j x, j)`` is level ``j``'s score in the diffusion's own scale
  (``y_j = c_j x_j``; ``s_T(x) = -x``). Each level's score is evaluated at ``x`` rescaled to that
  level's signal scale, and the two are mixed linearly in ``u``; the result is exact at every level
  and costs two score evaluations. It is an approximation between levels (fine for T1k, where a
  step changes ``sbar^2`` by a fraction 1/t; coarse for T6).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "LikelihoodEstimate",
    "ContinuousTime",
    "check_data",
    "flat_dim",
    "score_function",
    "SCORE_MODES",
]

SCORE_MODES = ("auto", "exact", "interpolate")


class LikelihoodEstimate(NamedTuple):
    """Per-example estimates of log p(x) in data space (nats).

    Attributes:
      log_prob: (n,) float64 estimate (a lower bound in expectation for ELBOs).
      stderr: (n,) float64 Monte Carlo standard error of each entry.
      num_grad_evals: score (gradient) evaluations spent; a Jacobian-vector product of the score
        (one Hutchinson probe) counts as one more.
      wall_time: seconds.
      method: ``"elbo-discrete"``, ``"elbo-continuous"`` or ``"ode"``.
      info: method-specific figures (budget used, solver steps, ...).
    """

    log_prob: np.ndarray
    stderr: np.ndarray
    num_grad_evals: int
    wall_time: float
    method: str
    info: dict


def check_data(energy, x, where: str) -> np.ndarray:
    """Validate a batch of data-space examples: shape (n, *data_shape), floating, finite."""
    for attr in ("schedule", "data_shape", "score", "num_levels"):
        if not hasattr(energy, attr):
            raise TypeError(f"{where}: expected a noise-conditional energy (ebm_ppl.energy protocol), got {type(energy).__name__}")
    arr = np.asarray(x)
    if not np.issubdtype(arr.dtype, np.floating):
        raise TypeError(f"{where}: x must be a floating-point array, got dtype {arr.dtype}")
    shape = tuple(energy.data_shape)
    if arr.ndim != len(shape) + 1 or tuple(arr.shape[1:]) != shape:
        raise ValueError(f"{where}: x must have shape (n, {', '.join(map(str, shape))}), got {arr.shape}")
    if arr.shape[0] < 1:
        raise ValueError(f"{where}: x is empty")
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{where}: x contains NaN or infinite values")
    return arr


def flat_dim(energy) -> int:
    return int(math.prod(energy.data_shape))


class ContinuousTime:
    """The continuous-time VP SDE matched to ``schedule`` (see the module docstring)."""

    def __init__(self, schedule):
        self.schedule = schedule
        sig2 = schedule.sigmas[1:] ** 2
        self.knots = np.concatenate([[0.0], np.cumsum(-np.log1p(-sig2))])  # u_t, t = 0..T
        self.num_levels = schedule.num_levels

    def __hash__(self):
        return hash(("ContinuousTime", self.schedule))

    def __eq__(self, other):
        return isinstance(other, ContinuousTime) and other.schedule == self.schedule

    @property
    def u_max(self) -> float:
        return float(self.knots[-1])

    def u_of_level(self, tau: float) -> float:
        """u at the continuous level ``tau`` in [0, T] (linear between knots)."""
        if not 0.0 <= tau <= self.num_levels:
            raise ValueError(f"level {tau} out of range 0..{self.num_levels}")
        return float(np.interp(tau, np.arange(self.num_levels + 1), self.knots))

    @staticmethod
    def abar(u):
        return jnp.exp(-0.5 * u)

    @staticmethod
    def sbar2(u):
        return -jnp.expm1(-u)


def _is_oracle(energy) -> bool:
    from ebm_ppl.energy.oracles import MixtureOracle

    return isinstance(energy, MixtureOracle)


def _exact_oracle_score(energy, x, u):
    """Exact score of x(u) for a mixture oracle; x of shape data_shape, u scalar."""
    shape = x.shape
    xf = x.reshape(-1)
    a = jnp.exp(-0.5 * u)
    s2 = -jnp.expm1(-u)

    def log_p(v):
        diff = v[None, :] - a * energy.means
        proj = jnp.einsum("kd,kde->ke", diff, energy.eigvecs)
        vals = a**2 * energy.eigvals + s2
        comp = energy.log_weights - 0.5 * jnp.sum(proj**2 / vals, -1) - 0.5 * jnp.sum(jnp.log(vals), -1)
        return jax.nn.logsumexp(comp)

    return jax.grad(log_p)(xf).reshape(shape)


def _interpolated_score(energy, clock: ContinuousTime, x, u):
    """Score of x(u) from the two neighbouring levels (module docstring); x of data_shape."""
    T = clock.num_levels
    knots = jnp.asarray(clock.knots, x.dtype)
    c = jnp.asarray(energy.schedule.model_scales, x.dtype)
    log_abar = jnp.asarray(-0.5 * clock.knots, x.dtype)
    k = jnp.clip(jnp.searchsorted(knots, u, side="right") - 1, 0, T - 1)
    w = jnp.clip((u - knots[k]) / (knots[k + 1] - knots[k]), 0.0, 1.0)

    def level_score(j):
        r = jnp.exp(-0.5 * u - log_abar[j])
        z = c[j] * x / r
        return c[j] * energy.score(z, j) / r

    return (1.0 - w) * level_score(k) + w * level_score(k + 1)


def score_function(energy, clock: ContinuousTime, mode: str = "auto"):
    """``(score(x, u), evals_per_call)``: the x-space score of x(u) for one example x
    (shape data_shape) and scalar u. ``mode``: ``"exact"`` (oracles only), ``"interpolate"``
    (any energy) or ``"auto"`` (exact for oracles)."""
    if mode not in SCORE_MODES:
        raise ValueError(f"score must be one of {SCORE_MODES}, got {mode!r}")
    if mode == "auto":
        mode = "exact" if _is_oracle(energy) else "interpolate"
    if mode == "exact":
        if not _is_oracle(energy):
            raise ValueError("score='exact' needs an analytic oracle (MixtureOracle/GaussianOracle); use 'interpolate'")
        return (lambda x, u: _exact_oracle_score(energy, x, u)), 1, mode
    return (lambda x, u: _interpolated_score(energy, clock, x, u)), 2, mode
