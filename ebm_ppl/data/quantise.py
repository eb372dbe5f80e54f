"""Quantisation: bin widths, uniform dequantisation, raw levels and bits/dim (scaling convention
in :mod:`ebm_ppl.data`)."""

from __future__ import annotations

import math

import numpy as np

from ebm_ppl._jax_utils import rng_key_first, warn
from ebm_ppl.data._common import DataError
from ebm_ppl.data.api import info

__all__ = ["bin_width", "dequantize", "to_raw", "log_prob_to_bits_per_dim", "bits_per_dim"]


def _levels_of(info_or_levels) -> int | None:
    if isinstance(info_or_levels, dict):
        return info_or_levels.get("levels")
    if isinstance(info_or_levels, str):
        return info(info_or_levels)["levels"]
    return None if info_or_levels is None else int(info_or_levels)


def bin_width(info_or_levels) -> float | None:
    """Width ``2 / levels`` of a quantisation bin in data space (None for continuous data).

    Accepts an :func:`info` dict, a data set name, or the number of levels.
    """
    lv = _levels_of(info_or_levels)
    return None if lv is None else 2.0 / lv


@rng_key_first(0)
def dequantize(rng_key, x, info_or_levels):
    """Uniform dequantisation: ``x + (u - 1/2) * bin_width`` with ``u ~ U(0, 1)`` per coordinate.

    ``x`` holds bin centres from :func:`load` (any shape); the result fills each bin uniformly
    and stays in [-1, 1]. Continuous data (levels None) come back unchanged. Returns a JAX array.
    """
    import jax
    import jax.numpy as jnp

    w = bin_width(info_or_levels)
    x = jnp.asarray(x, jnp.float32)
    if w is None:
        return x
    u = jax.random.uniform(rng_key, x.shape, jnp.float32)
    return x + (u - 0.5) * w


def to_raw(x, info_or_levels) -> np.ndarray:
    """Data-space values back to raw integer levels ``0 .. levels-1`` (the bin each value falls in)."""
    lv = _levels_of(info_or_levels)
    if lv is None:
        raise DataError("to_raw needs quantised data (levels is None)")
    v = np.floor((np.asarray(x, np.float64) + 1.0) * lv / 2.0)
    return np.clip(v, 0, lv - 1).astype(np.int64)


def log_prob_to_bits_per_dim(log_prob, dim: int, info_or_levels) -> np.ndarray:
    """Bits/dim of the discrete data from a continuous log density on data space [-1, 1]^D.

    ``log_prob`` is ``log p(x)`` at dequantised points (in nats, the density in *data* space; an
    energy's model-space density ``p_y`` converts by ``log p(x) = log p_y(a x) + D log a``). The
    bin volume ``(2 / levels)^D`` turns it into a bound on the probability of the bin:

        bits/dim = -(log p(x) + D log(2 / levels)) / (D log 2).

    For continuous data (levels None) it is ``-log p(x) / (D log 2)``.
    """
    lv = _levels_of(info_or_levels)
    lp = np.asarray(log_prob, np.float64)
    vol = 0.0 if lv is None else dim * math.log(2.0 / lv)
    return -(lp + vol) / (dim * math.log(2.0))


def bits_per_dim(log_prob, dim: int, info_or_levels) -> np.ndarray:
    """Deprecated name of :func:`log_prob_to_bits_per_dim` (it converts a log density; the estimate
    of a prior's bits/dim is :func:`ebm_ppl.bits_per_dim`)."""
    warn(
        "ebm_ppl.data.bits_per_dim is now data.log_prob_to_bits_per_dim (ebm_ppl.bits_per_dim estimates a "
        "prior's bits/dim); the old name goes in the next release",
        DeprecationWarning,
    )
    return log_prob_to_bits_per_dim(log_prob, dim, info_or_levels)
