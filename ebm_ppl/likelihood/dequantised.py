"""Bits per dimension of data under a prior with a log Z, with uniform dequantisation.

For data quantised into L levels on [-1, 1] (bins of width w = 2 / L, see :mod:`ebm_ppl.data`), a
continuous density p on data space bounds the probability of each bin (Jensen):

    log P(bin of x) = log int_bin p  >=  E_u[log p(x + u)] + D log w,   u ~ U(-w/2, w/2)^D,

so bits/dim = -(log p(x~) + D log w) / (D ln 2), averaged over examples and dequantisation draws,
is an upper bound (in expectation) on the model's discrete code length. The uniform density on
[-1, 1]^D gives exactly log2(L). For continuous data (no levels) it is -log p(x) / (D ln 2).

With an estimated log Z the figure inherits its uncertainty: log p = f - log Z + D log c, so the
log-Z part of the standard error is stderr(log Z) / (D ln 2) (the same shift for every example).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl import checkpoint

__all__ = ["BitsPerDim", "bits_per_dim", "data_facts"]


class BitsPerDim(NamedTuple):
    """bpd: mean bits/dim; stderr: total standard error (data and log Z combined in quadrature);
    stderr_data: over the examples (and dequantisation draws); stderr_log_z: from log Z alone;
    per_example: (N,) bits/dim of each example (averaged over its dequantisation draws);
    levels, bin_width: the quantisation used (None for continuous data); log_z_reliable: False when
    the prior's estimated log Z is unreliable (:func:`ebm_ppl.logz.check_reliability`; then ``stderr``
    is a lower bound on the error and ``bpd`` optimistic), True when judged reliable, None when the
    prior says nothing about its log Z."""

    bpd: float
    stderr: float
    stderr_data: float
    stderr_log_z: float
    per_example: np.ndarray
    levels: int | None
    bin_width: float | None
    log_z_reliable: bool | None = None

    def to_json(self) -> dict:
        return {
            "bpd": self.bpd,
            "stderr": self.stderr,
            "stderr_data": self.stderr_data,
            "stderr_log_z": self.stderr_log_z,
            "levels": self.levels,
            "bin_width": self.bin_width,
            "num_examples": int(self.per_example.size),
            "log_z_reliable": self.log_z_reliable,
        }


def data_facts(prior=None, data_name: str | None = None) -> dict | None:
    """The data facts (``levels``, ``bin_width``, ``low``/``high``) of a prior's checkpoint or a data
    set name; None when neither says."""
    if data_name is not None:
        from ebm_ppl import data as data_mod  # lazy: the data sets stay out of `import ebm_ppl`

        return data_mod.info(data_name)
    source = getattr(prior, "source", None)
    if source is not None:
        return dict(checkpoint.read_config(source).get("data") or {}) or None
    return None


def _log_z_reliable(prior) -> bool | None:
    """Judge the prior's log Z (one :class:`~ebm_ppl.logz.UnreliableLogZWarning` line if unreliable):
    the estimate or stored entry an :class:`ebm_ppl.EBMPrior` holds as ``log_z_info``; None when
    there is nothing to judge (exact or hand-given log Z, another NumPyro distribution)."""
    from ebm_ppl.logz import check_reliability  # lazy: logz stays out of `import ebm_ppl`

    info = getattr(prior, "log_z_info", None)  # any NumPyro distribution is accepted here
    if info is None:
        return None
    return check_reliability(info, "bits_per_dim")


def bits_per_dim(
    prior,
    data,
    key=None,
    *,
    levels: int | None | str = "auto",
    bin_width: float | None = None,
    data_name: str | None = None,
    num_dequantizations: int = 1,
    batch_size: int = 1024,
    log_z_stderr: float | None = None,
    mesh=None,
    progress=None,
) -> BitsPerDim:
    """Bits per dimension of ``data`` (data space, shape (N, *event_shape)) under ``prior``.

    Args:
      prior: anything with ``log_prob(x)`` over the data's event shape (an :class:`EBMPrior`, a
        NumPyro distribution).
      data: (N, *event_shape) quantised data at bin centres (:func:`ebm_ppl.data.load`), or
        continuous data.
      key: PRNG key for the dequantisation noise (default ``jax.random.key(0)``).
      levels: quantisation levels; ``"auto"`` reads them from ``data_name`` or the prior's
        checkpoint config; ``None`` means continuous data (no dequantisation).
      bin_width: bin width in data space (default ``2 / levels``, the :mod:`ebm_ppl.data` scaling).
      num_dequantizations: dequantisation draws per example.
      log_z_stderr: the stderr of log Z (default: ``prior.log_z_stderr`` if it has one).
      mesh: a device mesh (:mod:`ebm_ppl.sharding`): each batch is split over its devices (the
        last batch padded to a multiple of its size, the padding dropped); same figures.
      progress: optional ``progress(done, total)`` called after each batch (e.g. a progress bar).

    An unreliable estimated log Z (k-hat > 0.7 or ESS < 20, :mod:`ebm_ppl.logz.reliability`) gives one
    :class:`~ebm_ppl.logz.UnreliableLogZWarning` line and ``log_z_reliable=False`` in the result.
    """
    x = np.asarray(data, np.float32)
    event_shape = tuple(getattr(prior, "event_shape", x.shape[1:]))
    if x.ndim != len(event_shape) + 1 or x.shape[1:] != event_shape:
        raise ValueError(f"data must have shape (N, {', '.join(map(str, event_shape))}), got {x.shape}")
    n = x.shape[0]
    dim = int(math.prod(event_shape))
    if isinstance(levels, str):
        if levels != "auto":
            raise ValueError(f"levels must be an int, None or 'auto', got {levels!r}")
        facts = data_facts(prior, data_name)
        levels = None if facts is None else facts.get("levels")
        if bin_width is None and facts is not None and facts.get("bin_width") is not None:
            bin_width = float(facts["bin_width"])
    if levels is not None:
        levels = int(levels)
        if bin_width is None:
            bin_width = 2.0 / levels
    elif bin_width is not None:
        raise ValueError("bin_width given without levels")
    key = jax.random.key(0) if key is None else key
    log_prob = jax.jit(lambda v: prior.log_prob(v))  # closure: any traceable log_prob, pytree or not
    totals = np.zeros(n, np.float64)
    for r in range(int(num_dequantizations)):
        kr = jax.random.fold_in(key, r)
        for i, first in enumerate(range(0, n, batch_size)):
            xb = jnp.asarray(x[first : first + batch_size])
            if bin_width is not None:
                u = jax.random.uniform(jax.random.fold_in(kr, i), xb.shape, jnp.float32)
                xb = xb + (u - 0.5) * bin_width
            if mesh is not None:
                from ebm_ppl import sharding

                xp, m = sharding.pad_batch(xb, mesh)
                lp = np.asarray(sharding.to_host(log_prob(sharding.shard_batch(xp, mesh))), np.float64)[:m]
            else:
                lp = np.asarray(log_prob(xb), np.float64)
            totals[first : first + batch_size] += lp
            if progress is not None:
                num_batches = -(-n // batch_size)
                progress(r * num_batches + i + 1, int(num_dequantizations) * num_batches)
    mean_lp = totals / num_dequantizations
    vol = 0.0 if bin_width is None else dim * math.log(bin_width)
    per_example = -(mean_lp + vol) / (dim * math.log(2.0))
    bpd = float(per_example.mean())
    se_data = float(per_example.std(ddof=1) / math.sqrt(n)) if n > 1 else math.nan
    if log_z_stderr is None:
        log_z_stderr = getattr(prior, "log_z_stderr", None) or 0.0
    se_z = float(log_z_stderr) / (dim * math.log(2.0))
    return BitsPerDim(
        bpd, float(math.hypot(se_data, se_z)), se_data, se_z, per_example, levels, bin_width, _log_z_reliable(prior)
    )
