"""A sampler's draws against exact reference samples, by the drifting paper's protocol (Cao, Yan &
Zhao, 2026): mean and covariance error, unbiased RBF MMD at the median-heuristic bandwidth of the
reference, mean energy, and for multi-modal targets mode coverage and the mode histogram's TV.

Works for any sampler's output (drifting, progressive, NUTS, ...); ``reference_samples`` draws the
exact samples of energies that have them (:class:`~ebm_ppl.energy.protocol.ExactSampler`).
"""

from __future__ import annotations

from typing import Any

import jax.numpy as jnp
import numpy as np

from ebm_ppl._jax_utils import rng_key_first
from ebm_ppl.energy.base import level_scale
from ebm_ppl.energy.protocol import ExactSampler, HasWells, mode_labels
from ebm_ppl.metrics.mmd import median_bandwidth, mmd
from ebm_ppl.sampling.drifting.scores import energy_function

__all__ = ["evaluate", "reference_samples", "BANDWIDTH_POINTS"]

#: Reference points the default MMD bandwidth is computed on (the first ones).
BANDWIDTH_POINTS = 2000


@rng_key_first(1)
def reference_samples(rng_key, energy, n: int, level: int = 0, space: str = "data"):
    """Exact samples of the level in the sampler's space, or None when the energy has none
    (trained networks: the caller may use a long-run or progressive sampler instead)."""
    if not isinstance(energy, ExactSampler):
        return None
    if space == "data" and level == 0:
        return energy.sample_data(rng_key, n)
    return energy.sample(rng_key, n, level) / level_scale(energy, level, space)


def evaluate(
    energy,
    samples,
    reference=None,
    *,
    level: int = 0,
    space: str = "data",
    bandwidth: float | None = None,
) -> dict:
    """The paper's figures for ``samples`` (n, *data_shape) against ``reference`` samples:
    ``mean_error`` (l2 of the mean difference), ``cov_error`` (Frobenius of the covariance
    difference), ``mmd`` (unbiased squared RBF MMD, bandwidth ``mmd_bandwidth``: the median
    pairwise distance of the reference unless given), ``mean_energy`` / ``reference_energy``
    (mean of E = -log p, normalised when log Z is known), and for multi-modal targets
    ``modes_covered`` / ``modes_in_reference`` / ``mode_tv`` (total variation between the mode
    histograms) and the per-mode counts of the generated samples (``mode_counts``, for up to 64 modes)."""
    E_fn = energy_function(energy, level, space)
    n = samples.shape[0]
    xs = np.asarray(samples, np.float64).reshape(n, -1)
    finite = np.all(np.isfinite(xs), -1)
    out: dict[str, Any] = {"num_samples": int(n), "num_nonfinite": int((~finite).sum())}
    xs = xs[finite]
    e_gen = np.asarray(E_fn(energy, jnp.asarray(xs, jnp.float32)))
    out["mean_energy"] = float(np.mean(e_gen))
    out["energy_normalised"] = energy.log_z(level) is not None
    if reference is not None:
        rs = np.asarray(reference, np.float64).reshape(reference.shape[0], -1)
        out["mean_error"] = float(np.linalg.norm(xs.mean(0) - rs.mean(0)))
        out["cov_error"] = float(
            np.linalg.norm(np.cov(xs.T).reshape(rs.shape[1], -1) - np.cov(rs.T).reshape(rs.shape[1], -1))
        )
        # the median heuristic on the first BANDWIDTH_POINTS reference points (as the paper's figures)
        h = median_bandwidth(rs[:BANDWIDTH_POINTS]) if bandwidth is None else float(bandwidth)
        out["mmd_bandwidth"] = h
        out["mmd"] = float(mmd(xs, rs, h))
        out["reference_energy"] = float(np.mean(np.asarray(E_fn(energy, jnp.asarray(rs, jnp.float32)))))
        if level == 0 and space == "data":
            labels_gen = mode_labels(energy, jnp.asarray(xs, jnp.float32).reshape((-1,) + tuple(energy.data_shape)))
            labels_ref = mode_labels(energy, jnp.asarray(rs, jnp.float32).reshape((-1,) + tuple(energy.data_shape)))
            if labels_gen is not None and labels_ref is not None:
                lab_g, lab_r = np.asarray(labels_gen), np.asarray(labels_ref)
                out["modes_covered"] = int(len(np.unique(lab_g)))
                out["modes_in_reference"] = int(len(np.unique(lab_r)))
                out["modes_total"] = int(energy.num_modes)
                keys = np.union1d(lab_g, lab_r)
                pg = np.array([(lab_g == k).mean() for k in keys])
                pr = np.array([(lab_r == k).mean() for k in keys])
                out["mode_tv"] = float(0.5 * np.abs(pg - pr).sum())
                if out["modes_total"] <= 64:
                    out["mode_counts"] = [int((lab_g == k).sum()) for k in range(out["modes_total"])]
                if isinstance(energy, HasWells):
                    wg = np.asarray(energy.well_signs(jnp.asarray(xs, jnp.float32))).mean(0)
                    wr = np.asarray(energy.well_signs(jnp.asarray(rs, jnp.float32))).mean(0)
                    out["well_occupancy_error"] = float(np.abs(wg - wr).mean())
    else:
        out.update(mean_error=None, cov_error=None, mmd=None, reference_energy=None)
    return out
