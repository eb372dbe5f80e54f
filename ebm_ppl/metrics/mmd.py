"""RBF-kernel MMD between samples and its null expectation (the 2-D sample-quality figures built on
them are :mod:`ebm_ppl.metrics.sample_quality`).

:func:`mmd` is the unbiased U-statistic estimate of the *squared* maximum mean discrepancy with the
Gaussian (RBF) kernel ``k(a, b) = exp(-|a - b|^2 / (2 h^2))``; the bandwidth defaults to the median
heuristic (:func:`median_bandwidth`). Kernel sums run in float64 blocks."""

from __future__ import annotations

from typing import NamedTuple

import numpy as np


class MMDResult(NamedTuple):
    """Unbiased squared-MMD estimate and the RBF bandwidth h it used (``float(result)`` is mmd2)."""

    mmd2: float
    bandwidth: float
    n_x: int
    n_y: int

    def __float__(self) -> float:
        return float(self.mmd2)


def _flat(x, where: str) -> np.ndarray:
    a = np.asarray(x, np.float64)
    if a.ndim == 1:
        raise ValueError(f"{where}: expected samples of shape (n, ...), got shape {a.shape}")
    a = a.reshape(a.shape[0], -1)
    if a.shape[0] < 2:
        raise ValueError(f"{where}: need at least 2 samples, got {a.shape[0]}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{where}: samples contain NaN or infinite values")
    return a


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def median_bandwidth(x, y=None, *, max_points: int = 2000, seed: int = 0) -> float:
    """Median heuristic: median pairwise Euclidean distance of the pooled sample (distinct pairs)."""
    z = _flat(x, "x") if y is None else np.concatenate([_flat(x, "x"), _flat(y, "y")])
    if len(z) > max_points:
        z = z[np.random.default_rng(seed).choice(len(z), max_points, replace=False)]
    d = _sq_dists(z, z)[np.triu_indices(len(z), 1)]
    h = float(np.sqrt(np.median(d)))
    if not h > 0:
        raise ValueError("median heuristic bandwidth is 0 (most samples coincide); pass bandwidth=")
    return h


def _kernel_sum(a, b, gamma, block, exclude_diagonal=False) -> float:
    total = 0.0
    for i in range(0, len(a), block):
        k = np.exp(-gamma * _sq_dists(a[i : i + block], b))
        if exclude_diagonal:
            rows = np.arange(k.shape[0])
            k[rows, rows + i] = 0.0
        total += float(k.sum())
    return total


def mmd(x, y, bandwidth: float | None = None, *, unbiased: bool = True, block: int = 1024) -> MMDResult:
    """Unbiased estimate of the squared RBF-kernel MMD between samples ``x`` (m, ...) and ``y`` (n, ...).

    ``k(a, b) = exp(-|a - b|^2 / (2 h^2))`` with ``h = bandwidth``, or the median heuristic on the
    pooled sample when None (see :func:`median_bandwidth`). Returns :class:`MMDResult`
    ``(mmd2, bandwidth, n_x, n_y)``; ``mmd2`` is a U-statistic, unbiased, so it may be slightly
    negative when the laws agree (its standard deviation is O(1/n) then). ``unbiased=False``
    gives the biased V-statistic instead (diagonal terms kept, divided by m^2 and n^2): always
    >= 0, with expectation MMD^2 + O(1/m + 1/n), handy for ratios such as "model vs held-out
    within 2x of data vs held-out".
    """
    a, b = _flat(x, "x"), _flat(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and y have different dimensions: {a.shape[1]} and {b.shape[1]}")
    h = median_bandwidth(a, b) if bandwidth is None else float(bandwidth)
    if not h > 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    gamma = 1.0 / (2.0 * h * h)
    m, n = len(a), len(b)
    if unbiased:
        kxx = _kernel_sum(a, a, gamma, block, exclude_diagonal=True) / (m * (m - 1))
        kyy = _kernel_sum(b, b, gamma, block, exclude_diagonal=True) / (n * (n - 1))
    else:
        kxx = _kernel_sum(a, a, gamma, block) / (m * m)
        kyy = _kernel_sum(b, b, gamma, block) / (n * n)
    kxy = _kernel_sum(a, b, gamma, block) / (m * n)
    return MMDResult(float(kxx + kyy - 2.0 * kxy), h, m, n)


def mmd2_null_expectation(
    reference,
    m: int,
    n: int | None = None,
    bandwidth: float | None = None,
    *,
    max_points: int = 4000,
    block: int = 1024,
) -> float:
    """Expected biased (V-statistic) MMD^2 between two independent samples of sizes ``m`` and ``n``
    (default ``m``) of one law, estimated from draws ``reference`` of that law:

        E[MMD^2_b] = (1/m + 1/n) (k(0) - E k(x, x')) = (1/m + 1/n) (1 - E k(x, x')),

    with E k(x, x') (x, x' independent) by the U-statistic over ``reference`` (its first
    ``max_points`` rows). This is the value "MMD between two independent data draws of the same
    size" fluctuates around: at 2000 vs 2000 on 8gaussians one draw's V-statistic scatters by
    about its own size at the median bandwidth (docs/metrics.md), so ratios use this expectation.
    ``bandwidth`` None: the median heuristic on ``reference``.
    """
    r = _flat(reference, "reference")[: int(max_points)]
    n = m if n is None else n
    if m < 1 or n < 1:
        raise ValueError(f"sample sizes must be >= 1, got m={m}, n={n}")
    h = median_bandwidth(r) if bandwidth is None else float(bandwidth)
    if not h > 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    N = len(r)
    ek = _kernel_sum(r, r, 1.0 / (2.0 * h * h), block, exclude_diagonal=True) / (N * (N - 1))
    return float((1.0 / m + 1.0 / n) * (1.0 - ek))
