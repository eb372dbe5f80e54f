"""The posterior log density of a linear inverse problem and the small helpers every sampler of
:mod:`ebm_ppl.inverse` shares (no sampler here: the bottom of the package's import order).

    log p(u | obs) = log g_l(u) - |obs - A u|^2 / (2 noise_std^2) + const,

g_l the level-l density of u = x_0 + r_l e (r_l = sbar_l / abar_l) in data units; level 0 is the
data law itself.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import jax.numpy as jnp
import numpy as np

from ebm_ppl._jax_utils import renamed_keywords
from ebm_ppl.energy.base import logdensity_fn

#: priors with this many levels or more draw their prior particles by the normal approximation
#: (one draw per level, as DRL's T = 1000 models are sampled); fewer levels: MALA with tuned steps
MANY_LEVELS = 100

__all__ = [
    "default_inner",
    "MANY_LEVELS",
    "check_observations",
    "prior_scale",
    "prior_log_density_fn",
    "posterior_log_density_fn",
    "pooled_covariance",
]


def check_observations(operator, observations):
    """``observations`` as float32 (P, M); ValueError naming the expected shape otherwise."""
    obs = jnp.asarray(observations, jnp.float32)
    if obs.ndim == 1:
        obs = obs[None]
    if obs.ndim != 2 or obs.shape[1] != operator.num_observations:
        raise ValueError(
            f"observations must have shape (P, {operator.num_observations}) for {operator!r}, got {tuple(jnp.shape(observations))}"
        )
    return obs


def default_inner(energy, num_inner_steps: int = 10):
    """(inner sampler, inner steps per level) of the progressive prior draws: ``("normal", 1)`` for
    a prior with :data:`MANY_LEVELS` levels or more (975 MALA levels would cost ~100x more for
    nothing: adjacent levels are close), else ``("mala", num_inner_steps)``."""
    if energy.num_levels >= MANY_LEVELS:
        return "normal", 1
    return "mala", int(num_inner_steps)


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
    prior_scale(energy, level)  # validates the level
    abar = float(energy.schedule.signal_scales[level])  # u = x_l / abar_l, x_l the data-space variable
    shape = tuple(energy.data_shape)
    data_density = logdensity_fn(energy, level)
    d_log_abar = math.prod(shape) * math.log(abar)

    def log_prior(u):
        return data_density(abar * u.reshape(shape)) + d_log_abar

    return log_prior


def posterior_log_density_fn(energy, operator, noise_std, obs, level: int = 0, **deprecated) -> Callable:
    """x (data units, one example) -> log g_l(x) - |obs - A x|^2 / (2 noise_std^2), up to a constant
    (level 0: f(a x, 0) + const). ``prior_level=`` is the deprecated spelling of ``level``."""
    level = renamed_keywords("inverse.posterior_log_density_fn", deprecated, {"prior_level": "level"}).get(
        "level", level
    )
    inv_var = 1.0 / jnp.square(noise_std)
    log_prior = prior_log_density_fn(energy, level)

    def logdensity(x):
        return log_prior(x) - 0.5 * inv_var * jnp.sum(jnp.square(obs - operator(x)))

    return logdensity


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
