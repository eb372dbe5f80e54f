"""Image geometry and the fixed ingredients of the image operators: observation masks and blur
kernels (NumPy arrays; :mod:`ebm_ppl.inverse.operators` builds operators from them)."""

from __future__ import annotations

import math

import numpy as np

__all__ = ["image_shape", "half_mask", "box_mask", "random_mask", "gaussian_kernel"]


def image_shape(data_shape) -> tuple[int, int, int]:
    """(H, W, C) of a data shape: (H, W, C), (H, W) -> C = 1, (D,) with D = s^2 -> (s, s, 1)."""
    data_shape = tuple(int(s) for s in data_shape)
    if len(data_shape) == 3:
        return data_shape
    if len(data_shape) == 2:
        return data_shape + (1,)
    if len(data_shape) == 1:
        s = math.isqrt(data_shape[0])
        if s * s == data_shape[0]:
            return (s, s, 1)
    raise ValueError(f"an image operator needs data of shape (H, W[, C]) or (s*s,); got {data_shape}")


def half_mask(data_shape) -> np.ndarray:
    """Boolean mask (True = observed) of the top half of the rows."""
    h, w, c = image_shape(data_shape)
    m = np.zeros((h, w, c), bool)
    m[: h // 2] = True
    return m.reshape(data_shape)


def box_mask(data_shape) -> np.ndarray:
    """Boolean mask observing everything but a centred (H/2 x W/2) box."""
    h, w, c = image_shape(data_shape)
    m = np.ones((h, w, c), bool)
    m[h // 4 : h // 4 + h // 2, w // 4 : w // 4 + w // 2] = False
    return m.reshape(data_shape)


def random_mask(data_shape, missing_fraction: float, seed: int = 0) -> np.ndarray:
    """Boolean mask hiding round(missing_fraction * pixels) pixels chosen at random (all channels)."""
    if not 0.0 <= missing_fraction < 1.0:
        raise ValueError(f"the missing fraction must lie in [0, 1), got {missing_fraction}")
    data_shape = tuple(data_shape)
    try:
        h, w, c = image_shape(data_shape)
    except ValueError:
        h, w, c = 1, int(math.prod(data_shape)), 1
    rng = np.random.default_rng(seed)
    n_pix = h * w
    hidden = rng.permutation(n_pix)[: int(round(missing_fraction * n_pix))]
    m = np.ones(n_pix, bool)
    m[hidden] = False
    return np.repeat(m.reshape(h, w, 1), c, axis=2).reshape(data_shape)


def gaussian_kernel(sigma: float, radius: int | None = None) -> np.ndarray:
    """Normalised 2-D Gaussian kernel of std ``sigma`` pixels, size 2 radius + 1
    (radius = ceil(3 sigma) by default)."""
    if sigma <= 0:
        raise ValueError(f"blur sigma must be positive, got {sigma}")
    radius = int(math.ceil(3 * sigma)) if radius is None else int(radius)
    r = np.arange(-radius, radius + 1, dtype=np.float64)
    g = np.exp(-0.5 * (r / sigma) ** 2)
    k = np.outer(g, g)
    return k / k.sum()
