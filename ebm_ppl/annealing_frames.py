"""Per-level affine coordinates for annealing through the levels of a noise-conditional energy.

AIS runs in coordinates x with y_t = offset_t + A_t x at level t, so that every level it passes has
roughly zero mean and unit covariance; log Z_t = log Z^x_t + log |det A_t| (docs/logz.md, section 2).

* :func:`identity_frame`: A_t = c_t I (``schedule.model_scales``), no offset: the diffusion's own scale.
* :func:`fit_frame`: a Gaussian fitted to samples of one level and carried to every level by the
  forward process y_t = s_t x_0 + n_t e (``schedule.marginal``), so the frames of consecutive levels
  share their basis and their estimation error.

A_t = b_t (I - U U^T) + U diag(a_t) U^T with U (D, k) orthonormal: k leading directions with their own
variances a_t^2, one variance b_t^2 for the rest. Applying it costs O(D k). The fit is split-sample:
U comes from the principal directions of one half of the samples, the variances along U and in its
complement from the other half, so they are unbiased for the fixed U (the leading eigenvalues of a
sample covariance are inflated, and with N < D a residual-trace bulk estimate collapses).
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

__all__ = [
    "LevelFrame",
    "identity_frame",
    "fit_frame",
    "check_frame",
    "to_model",
    "from_model",
    "to_model_batch",
    "from_model_batch",
]


class LevelFrame(NamedTuple):
    """y_t = offset[t] + bulk[t] x + U ((leading[t] - bulk[t]) * U^T x), flattened over the data axes.

    offset: (T+1, D); bulk: (T+1,); leading: (T+1, k); basis U: (D, k); log_det: (T+1,) float64,
    log |det A_t|. Level T is the identity (the annealing starts from N(0, I) there).
    """

    offset: np.ndarray
    bulk: np.ndarray
    leading: np.ndarray
    basis: np.ndarray
    log_det: np.ndarray

    @property
    def num_directions(self) -> int:
        """k, the number of leading directions with their own variance."""
        return int(self.basis.shape[1])

    def arrays(self):
        """The float32 arrays the jitted annealing loop takes: (offset, bulk, leading, basis)."""
        return tuple(jnp.asarray(a, jnp.float32) for a in (self.offset, self.bulk, self.leading, self.basis))

    def describe(self) -> dict:
        """JSON-able summary: k, and level 0's standard deviations (bulk, largest and smallest leading)."""
        lead = np.asarray(self.leading[0])
        return {
            "num_directions": self.num_directions,
            "bulk_std_level0": float(self.bulk[0]),
            "leading_std_level0": [float(lead.max()), float(lead.min())] if lead.size else [],
        }


def _levels(energy) -> int:
    return int(energy.num_levels)


def _dim(energy) -> int:
    return int(math.prod(energy.data_shape))


def identity_frame(energy) -> LevelFrame:
    """A_t = c_t I with c_t the schedule's model scales (ones for an energy without a schedule)."""
    T, D = _levels(energy), _dim(energy)
    sched = getattr(energy, "schedule", None)
    c = np.ones(T + 1) if sched is None else np.asarray(sched.model_scales, np.float64)
    return LevelFrame(np.zeros((T + 1, D)), c.copy(), np.zeros((T + 1, 0)), np.zeros((D, 0)), D * np.log(c))


def _marginals(energy) -> tuple[np.ndarray, np.ndarray]:
    """(T+1,) signal and noise scales with y_t = s_t x_0 + n_t e; level T is (0, 1)."""
    T = _levels(energy)
    sched = getattr(energy, "schedule", None)
    if sched is None:  # a plain energy: level 0 is the target itself, level 1 is N(0, I)
        return np.array([1.0, 0.0]), np.array([0.0, 1.0])
    pairs = np.array([sched.marginal(t) for t in range(T + 1)], np.float64)
    return pairs[:, 0], pairs[:, 1]


def _split_covariance(samples: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Mean (D,), basis U (D, k), variances along U (k,), mean variance in U's complement of
    ``samples`` (N, D): U = the principal directions of the first half (k = min(N/2 - 1, D - 1)),
    the variances from the second half."""
    n, d = samples.shape
    half = n // 2
    first, second = samples[:half], samples[half:]
    _, _, vt = np.linalg.svd(first - first.mean(axis=0), full_matrices=False)
    k = min(half - 1, d - 1)
    basis = vt[:k].T
    centred = second - second.mean(axis=0)
    along = centred @ basis
    lead = np.sum(along**2, axis=0) / (centred.shape[0] - 1)
    rest = (np.sum(centred**2) - np.sum(along**2)) / (centred.shape[0] - 1) / (d - k)
    return samples.mean(axis=0), basis, lead, float(rest)


def fit_frame(energy, samples, level: int = 0, *, min_variance: float = 1e-6) -> LevelFrame:
    """Fit per-level coordinates to ``samples`` of level ``level`` (model space, (N, *data_shape)).

    The data law x_0 is given the Gaussian moments implied by the samples (split-sample, see the
    module docstring; level > 0: the
    forward noise n_level^2 is subtracted and the scale s_level divided out, variances floored at
    ``min_variance``); level t then gets mean s_t mu and covariance s_t^2 Sigma + n_t^2 I. Any
    approximate samples do (a pilot run's, held-out data noised to the level): the frame only changes
    the path, the AIS weights stay unbiased for every fixed frame.
    """
    T, D = _levels(energy), _dim(energy)
    arr = np.asarray(samples, np.float64)
    if arr.ndim < 1 or arr.shape[1:] != tuple(energy.data_shape):
        raise ValueError(f"fit_frame: samples must have shape (N, *{tuple(energy.data_shape)}), got {arr.shape}")
    if arr.shape[0] < 8:
        raise ValueError(f"fit_frame: need at least 8 samples, got {arr.shape[0]}")
    arr = arr.reshape(arr.shape[0], D)
    if not np.all(np.isfinite(arr)):
        raise ValueError("fit_frame: samples contain NaN or inf (did the pilot run diverge?)")
    signal, noise = _marginals(energy)
    if not 0 <= level < T or signal[level] <= 0:
        raise ValueError(f"fit_frame: level must be in 0..{T - 1} with a data component, got {level}")
    mean, basis, leading_var, bulk = _split_covariance(arr)
    s_l, n_l = signal[level], noise[level]
    mean0 = mean / s_l
    leading0 = np.maximum((leading_var - n_l**2) / s_l**2, min_variance)
    bulk0 = max((bulk - n_l**2) / s_l**2, min_variance)
    leading_std = np.sqrt(signal[:, None] ** 2 * leading0[None, :] + noise[:, None] ** 2)
    bulk_std = np.sqrt(signal**2 * bulk0 + noise**2)
    k = basis.shape[1]
    log_det = np.log(leading_std).sum(axis=1) + (D - k) * np.log(bulk_std)
    return check_frame(energy, LevelFrame(signal[:, None] * mean0[None, :], bulk_std, leading_std, basis, log_det))


def check_frame(energy, frame: LevelFrame) -> LevelFrame:
    """Validate shapes and that level T is the identity; returns ``frame``."""
    T, D = _levels(energy), _dim(energy)
    if not isinstance(frame, LevelFrame):
        raise TypeError(f"expected a LevelFrame, got {type(frame).__name__}")
    k = frame.basis.shape[1] if np.ndim(frame.basis) == 2 else -1
    shapes = {"offset": (T + 1, D), "bulk": (T + 1,), "leading": (T + 1, k), "basis": (D, k), "log_det": (T + 1,)}
    for name, shape in shapes.items():
        if np.shape(getattr(frame, name)) != shape:
            raise ValueError(
                f"LevelFrame.{name} must have shape {shape} for this energy, got {np.shape(getattr(frame, name))}"
            )
    if not (np.allclose(frame.offset[T], 0) and np.isclose(frame.bulk[T], 1) and np.allclose(frame.leading[T], 1)):
        raise ValueError("LevelFrame: level T must be the identity (annealing starts from N(0, I) there)")
    if np.any(np.asarray(frame.bulk) <= 0) or np.any(np.asarray(frame.leading) <= 0):
        raise ValueError("LevelFrame: scales must be positive")
    return frame


def to_model(frame_arrays, x: jax.Array, t) -> jax.Array:
    """Model-space y_t of one frame point x (shape data_shape) at level t (traced int allowed)."""
    offset, bulk, leading, basis = frame_arrays
    v = x.reshape(-1)
    y = offset[t] + bulk[t] * v + basis @ ((leading[t] - bulk[t]) * (basis.T @ v))
    return y.reshape(x.shape)


def from_model(frame_arrays, y: jax.Array, t) -> jax.Array:
    """Frame coordinates x of model-space points y (shape (N, *data_shape)) at level t."""
    offset, bulk, leading, basis = frame_arrays
    n = y.shape[0]
    v = y.reshape(n, -1) - offset[t]
    x = v / bulk[t] + ((v @ basis) * (1.0 / leading[t] - 1.0 / bulk[t])) @ basis.T
    return x.reshape(y.shape)


def to_model_batch(frame: LevelFrame, x, t: int) -> jax.Array:
    """Model-space points (N, *data_shape) of frame points ``x`` (N, *data_shape) at level ``t``."""
    arrays = frame.arrays()
    return jax.vmap(lambda v: to_model(arrays, v, t))(jnp.asarray(x, jnp.float32))


def from_model_batch(frame: LevelFrame, y, t: int) -> jax.Array:
    """Frame points (N, *data_shape) of model-space points ``y`` (N, *data_shape) at level ``t``."""
    return from_model(frame.arrays(), jnp.asarray(y, jnp.float32), t)
