"""Bits/dim from the log Z-free likelihoods, with the same uniform dequantisation and data-space
map as :func:`ebm_ppl.likelihood.bits_per_dim` (so the AIS, ELBO and ODE figures share one table)."""

from __future__ import annotations

import math

import jax
import numpy as np

from ebm_ppl._jax_utils import rng_key_first
from ebm_ppl.likelihood.common import gaussian_reference
from ebm_ppl.likelihood.elbo import elbo
from ebm_ppl.likelihood.ode import ode_log_prob

__all__ = ["bits_per_dim_without_log_z", "training_reference", "METHODS"]

METHODS = ("elbo", "ode")


def training_reference(name: str):
    """Gaussian reference of the interpolated score for data set ``name``: the moments of its
    training split after the uniform dequantisation used here (covariance + bin_width^2 / 12)."""
    from ebm_ppl import data  # lazy: the data sets stay out of `import ebm_ppl`

    bin_width = data.info(name).get("bin_width")
    return gaussian_reference(data.load(name, "train"), noise_var=bin_width**2 / 12 if bin_width else 0.0)


@rng_key_first(2)
def bits_per_dim_without_log_z(
    rng_key,
    energy,
    data,
    *,
    method: str = "elbo",
    levels: int | None = None,
    bin_width: float | None = None,
    elbo_method: str = "auto",
    **budget,
) -> dict:
    """Bits/dim of ``data`` (N, *data_shape), dequantised uniformly within bins of width
    ``bin_width`` (default 2/levels; none for continuous data), by ``method`` = ``"elbo"`` (an upper
    bound on bits/dim in expectation) or ``"ode"`` (an estimate). ``budget`` goes to the estimator.

    Returns a dict: bpd, stderr (over examples; includes the Monte Carlo noise), stderr_mc (the
    Monte Carlo part alone), per_example, num_grad_evals, wall_time, method and the estimator info.
    """
    if method not in METHODS:
        raise ValueError(f"method must be one of {METHODS}, got {method!r}")
    x = np.asarray(data, np.float32)
    if levels is not None and bin_width is None:
        bin_width = 2.0 / int(levels)
    k_deq, k_est = jax.random.split(rng_key)
    if bin_width is not None:
        x = x + (np.asarray(jax.random.uniform(k_deq, x.shape), np.float32) - 0.5) * bin_width
    if method == "elbo":
        est = elbo(k_est, energy, x, method=elbo_method, **budget)
    else:
        est = ode_log_prob(k_est, energy, x, **budget)
    dim = int(math.prod(x.shape[1:]))
    vol = 0.0 if bin_width is None else dim * math.log(bin_width)
    scale = 1.0 / (dim * math.log(2.0))
    per_example = -(est.log_prob + vol) * scale
    n = per_example.size
    return {
        "bpd": float(per_example.mean()),
        "stderr": float(per_example.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan,
        "stderr_mc": float(np.sqrt(np.sum(est.stderr**2)) / n * scale),
        "per_example": per_example,
        "num_grad_evals": est.num_grad_evals,
        "wall_time": est.wall_time,
        "method": est.method,
        "levels": levels,
        "bin_width": bin_width,
        "info": est.info,
    }
