"""Reconstruction and calibration metrics for inverse problems.

* PSNR: 10 log10(R^2 / MSE) per image, R = ``data_range`` (2 for data in [-1, 1]).
* SSIM (Wang et al. 2004) with an 8x8-friendly window: a 3x3 uniform window, no padding (so a
  8x8 image gives 6x6 local windows), C1 = (0.01 R)^2, C2 = (0.03 R)^2, per channel, averaged.
  (The usual 11x11 Gaussian window does not fit an 8x8 image.) Vectors of D = s^2 entries are
  read as s x s images.
* Coverage of central credible intervals: the fraction of (problem, pixel) pairs whose true value
  lies in the interval. For a correct posterior and truths drawn from the prior this is the
  nominal level exactly (averaged over the prior), which is what a calibration curve checks.
"""

from __future__ import annotations

import numpy as np

from ebm_ppl.inverse.operators import image_shape
from ebm_ppl.plotting import atomic_savefig

__all__ = [
    "psnr",
    "ssim",
    "coverage",
    "sample_coverage",
    "calibration_curve",
    "save_calibration_plot",
    "CALIBRATION_LEVELS",
]

#: nominal levels of the calibration curve
CALIBRATION_LEVELS = (0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


def _per_image(x, data_shape):
    x = np.asarray(x, np.float64)
    k = len(data_shape)
    return x.reshape((-1,) + tuple(x.shape[x.ndim - k :]))


def psnr(estimate, truth, data_range: float = 2.0) -> np.ndarray:
    """PSNR in dB of each image: arrays (P, *data_shape) -> (P,)."""
    est, tru = np.asarray(estimate, np.float64), np.asarray(truth, np.float64)
    if est.shape != tru.shape:
        raise ValueError(f"estimate {est.shape} and truth {tru.shape} differ in shape")
    mse = np.mean((est - tru).reshape(len(tru), -1) ** 2, axis=1)
    return 10.0 * np.log10(data_range**2 / np.maximum(mse, 1e-12))


def ssim(estimate, truth, data_range: float = 2.0, window: int = 3) -> np.ndarray:
    """Mean SSIM of each image (3x3 uniform window, valid positions only): (P, *shape) -> (P,)."""
    est, tru = np.asarray(estimate, np.float64), np.asarray(truth, np.float64)
    if est.shape != tru.shape:
        raise ValueError(f"estimate {est.shape} and truth {tru.shape} differ in shape")
    h, w, c = image_shape(est.shape[1:])
    if h < window or w < window:
        raise ValueError(f"SSIM window {window} is larger than the {h}x{w} image")
    a, b = est.reshape(-1, h, w, c), tru.reshape(-1, h, w, c)
    c1, c2 = (0.01 * data_range) ** 2, (0.03 * data_range) ** 2

    def box(z):
        out = np.zeros((z.shape[0], h - window + 1, w - window + 1, c))
        for u in range(window):
            for v in range(window):
                out += z[:, u : u + h - window + 1, v : v + w - window + 1]
        return out / window**2

    mu_a, mu_b = box(a), box(b)
    var_a = box(a * a) - mu_a**2
    var_b = box(b * b) - mu_b**2
    cov = box(a * b) - mu_a * mu_b
    s = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)) / ((mu_a**2 + mu_b**2 + c1) * (var_a + var_b + c2))
    return s.reshape(len(s), -1).mean(axis=1)


def coverage(lower, upper, truth) -> float:
    """Fraction of entries with lower <= truth <= upper."""
    lo, hi, t = (np.asarray(v, np.float64) for v in (lower, upper, truth))
    return float(np.mean((lo <= t) & (t <= hi)))


def sample_coverage(samples, truth, levels=(0.5, 0.9, 0.95)) -> dict:
    """{level: coverage} of central intervals from posterior ``samples`` (P, N, *shape)."""
    s = np.asarray(samples, np.float64)
    qs = sorted({q for lv in levels for q in ((1 - lv) / 2, (1 + lv) / 2)})
    quant = dict(zip(qs, np.quantile(s, qs, axis=1)))
    return {lv: coverage(quant[(1 - lv) / 2], quant[(1 + lv) / 2], truth) for lv in levels}


def calibration_curve(interval_fn, truth, levels=CALIBRATION_LEVELS):
    """(levels, coverages) with ``interval_fn(level) -> (lower, upper)``."""
    return np.asarray(levels), np.asarray([coverage(*interval_fn(lv), truth) for lv in levels])


def save_calibration_plot(curves: dict, path: str, title: str | None = None) -> str:
    """Plot {name: (levels, coverages)} against the diagonal and save a PNG."""
    from matplotlib.figure import Figure

    fig = Figure(figsize=(4.2, 4.0))
    ax = fig.subplots()
    ax.plot([0, 1], [0, 1], color="0.6", lw=1, ls="--", label="ideal")
    for name, (lv, cov) in curves.items():
        ax.plot(lv, cov, marker="o", ms=3, label=name)
    ax.set_xlabel("nominal coverage of central interval")
    ax.set_ylabel("empirical coverage")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left", fontsize=8)
    if title:
        ax.set_title(title, fontsize=9)
    fig.tight_layout()
    return atomic_savefig(fig, path, dpi=120)


def effective_sample_size(samples, num_draws_per_chain: int) -> np.ndarray:
    """Bulk ESS (ArviZ, rank-normalised split R-hat machinery) of every pixel of every problem:
    ``samples`` (P, C * S, *shape) with chains contiguous blocks of S draws -> (P, D)."""
    import arviz as az

    x = np.asarray(samples, np.float64)
    P, n = x.shape[:2]
    S = int(num_draws_per_chain)
    if S < 4 or n % S:
        raise ValueError(f"need chains of at least 4 draws dividing {n}, got {S}")
    chains = x.reshape(P, n // S, S, -1)
    return np.stack([np.asarray(az.ess(np.ascontiguousarray(chains[p]), method="bulk")) for p in range(P)])
