"""Drifting sampler: evaluation under the paper's protocol (MMD, moments, modes) and its plot."""

from __future__ import annotations

from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl.energy.base import level_scale
from ebm_ppl.sampling.drifting.scores import energy_function


def _local_mmd(x, y, bandwidth: float, block: int = 2500) -> float:
    """Unbiased squared MMD with k(a, b) = exp(-|a - b|^2 / (2 h^2)), blocked to bound memory."""
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.float32)

    @jax.jit
    def ksum(a, b):
        sa, sb = jnp.sum(a**2, -1), jnp.sum(b**2, -1)
        d2 = jnp.maximum(sa[:, None] + sb[None, :] - 2 * a @ b.T, 0.0)
        return jnp.sum(jnp.exp(-d2 / (2 * bandwidth**2)))

    def total(a, b):
        return sum(
            float(ksum(a[i : i + block], b[j : j + block]))
            for i in range(0, len(a), block)
            for j in range(0, len(b), block)
        )

    n, m = len(x), len(y)
    kxx = (total(x, x) - n) / (n * (n - 1))
    kyy = (total(y, y) - m) / (m * (m - 1))
    kxy = total(x, y) / (n * m)
    return kxx + kyy - 2 * kxy


def mmd(x, y, bandwidth: float) -> float:
    """Squared RBF MMD (unbiased); uses ``ebm_ppl.metrics.mmd`` when that module provides one."""
    try:
        from ebm_ppl import metrics  # another session's module

        if hasattr(metrics, "mmd"):
            return float(metrics.mmd(x, y, bandwidth=bandwidth))
    except ImportError:
        pass
    return _local_mmd(x, y, bandwidth)


def median_bandwidth(x, max_points: int = 2000) -> float:
    """Median pairwise distance of (the first ``max_points`` of) x: the RBF bandwidth we report."""
    x = np.asarray(x, np.float64)[:max_points]
    d = np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0.0))
    return float(np.median(d[np.triu_indices(len(x), 1)]))


def reference_samples(energy, key, n: int, level: int = 0, space: str = "data"):
    """Exact samples of the level in the sampler's space, or None when the energy has none
    (trained networks: the caller may use a long-run or progressive sampler instead)."""
    if space == "data" and level == 0 and hasattr(energy, "sample_data"):
        return energy.sample_data(key, n)
    if hasattr(energy, "sample"):
        return energy.sample(key, n, level) / level_scale(energy, level, space)
    return None


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
    from ebm_ppl.energy.plain import mode_labels

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
        h = median_bandwidth(rs) if bandwidth is None else float(bandwidth)
        out["mmd_bandwidth"] = h
        out["mmd"] = float(mmd(xs, rs, h))
        out["reference_energy"] = float(np.mean(np.asarray(E_fn(energy, jnp.asarray(rs, jnp.float32)))))
        if level == 0 and space == "data":
            lab_g = mode_labels(energy, jnp.asarray(xs, jnp.float32).reshape((-1,) + tuple(energy.data_shape)))
            lab_r = mode_labels(energy, jnp.asarray(rs, jnp.float32).reshape((-1,) + tuple(energy.data_shape)))
            if lab_g is not None:
                lab_g, lab_r = np.asarray(lab_g), np.asarray(lab_r)
                out["modes_covered"] = int(len(np.unique(lab_g)))
                out["modes_in_reference"] = int(len(np.unique(lab_r)))
                out["modes_total"] = int(getattr(energy, "num_modes", getattr(energy, "num_components", 0)))
                keys = np.union1d(lab_g, lab_r)
                pg = np.array([(lab_g == k).mean() for k in keys])
                pr = np.array([(lab_r == k).mean() for k in keys])
                out["mode_tv"] = float(0.5 * np.abs(pg - pr).sum())
                if out["modes_total"] <= 64:
                    out["mode_counts"] = [int((lab_g == k).sum()) for k in range(out["modes_total"])]
                if hasattr(energy, "well_signs"):
                    wg = np.asarray(energy.well_signs(jnp.asarray(xs, jnp.float32))).mean(0)
                    wr = np.asarray(energy.well_signs(jnp.asarray(rs, jnp.float32))).mean(0)
                    out["well_occupancy_error"] = float(np.abs(wg - wr).mean())
    else:
        out.update(mean_error=None, cov_error=None, mmd=None, reference_energy=None)
    return out


def plot_samples(
    energy, samples, reference, path: str, *, level: int = 0, space: str = "data", title: str = ""
) -> None:
    """PNG of generated and reference samples over contours of E (first two coordinates; for
    D > 2 the contours are of E with the other coordinates at the reference mean)."""
    from ebm_ppl.plotting import atomic_savefig, new_figure

    E_fn = energy_function(energy, level, space)
    xs = np.asarray(samples, np.float64).reshape(samples.shape[0], -1)
    pool = xs if reference is None else np.concatenate([xs, np.asarray(reference).reshape(len(reference), -1)])
    pool = pool[np.all(np.isfinite(pool), -1)]
    lo, hi = np.percentile(pool[:, :2], 0.5, 0), np.percentile(pool[:, :2], 99.5, 0)
    pad = 0.15 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    g0, g1 = np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200)
    G0, G1 = np.meshgrid(g0, g1)
    base = pool.mean(0) if reference is None else np.asarray(reference).reshape(len(reference), -1).mean(0)
    grid = np.tile(base, (G0.size, 1))
    grid[:, 0], grid[:, 1] = G0.ravel(), G1.ravel()
    Z = np.asarray(E_fn(energy, jnp.asarray(grid, jnp.float32))).reshape(G0.shape)
    panels = [("one-step drifting sampler", xs)] + (
        [] if reference is None else [("reference", np.asarray(reference).reshape(len(reference), -1))]
    )
    fig = new_figure(figsize=(5 * len(panels), 4.6))
    axes = fig.subplots(1, len(panels), squeeze=False)
    levels = np.percentile(Z[np.isfinite(Z)], np.linspace(1, 60, 12))
    for ax, (name, pts) in zip(axes[0], panels):
        ax.contour(G0, G1, Z, levels=np.unique(levels), cmap="viridis", linewidths=0.8)
        ax.scatter(pts[:, 0], pts[:, 1], s=1.5, alpha=0.35, color="crimson")
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_title(name)
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    atomic_savefig(fig, path, dpi=110)
