"""Linear forward operators of inverse problems, with exact adjoints and dense matrices.

Every operator maps a data-space example ``x`` of shape ``data_shape`` (or a batch
``(*batch, *data_shape)``) to a flat observation vector of length ``num_observations`` (M):

    obs = A x + n,   n ~ N(0, noise_std^2 I_M).

Operators are small registered pytrees (their arrays are leaves), so they pass into ``jit`` and
``vmap``. Each one gives

* ``op(x)`` / ``op.forward(x)``: A x, shape (*batch, M);
* ``op.adjoint(v)``: A^T v, shape (*batch, *data_shape), exact (tested: <A x, v> = <x, A^T v>);
* ``op.matrix()``: the dense (M, D) matrix (for small D: exact posteriors and tests);
* ``op.gram_scale``: the mean eigenvalue of A A^T, trace(A A^T) / M (used by the annealed
  likelihood, see :mod:`ebm_ppl.inverse.posterior`);
* ``op.display(v)``: an image of an observation for panels (zeros where nothing is observed).

Image operators (box/half masks, blur, downsampling) read ``data_shape`` as (H, W, C), (H, W) or
(D,) with D a perfect square (then an s x s single-channel image), rows first.

Names (:func:`from_name`), with the default observation noise std used when none is given:

==================  ============================================================  ===========
name                operator                                                      noise std
==================  ============================================================  ===========
``inpaint:half``    observe the top half of the rows, recover the bottom half     0.05
``inpaint:box``     hide a centred (H/2 x W/2) box, observe the rest              0.05
``inpaint:randomP`` hide a random fraction P of the pixels (all channels)        0.05
``denoise:S``       identity; S is the noise std                                  S
``blur:gaussS``     Gaussian blur, std S pixels, kernel 2 ceil(3S)+1, reflect pad 0.05
``sr:F``            average pooling over F x F blocks (super-resolution xF)       0.05
``cs:R``            compressed sensing: M = round(R D) rows of N(0, 1/M) entries  0.05
==================  ============================================================  ===========

Random masks and sensing matrices are fixed by ``seed`` (default 0). A suffix ``@S`` overrides the
noise std, e.g. ``inpaint:half@0.1``.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl.energy.base import register_pytree
from ebm_ppl.inverse.masks import box_mask, gaussian_kernel, half_mask, image_shape, random_mask

__all__ = [
    "LinearOperator",
    "Inpaint",
    "Denoise",
    "Blur",
    "Downsample",
    "CompressedSensing",
    "from_name",
    "operator_names",
    "half_mask",
    "box_mask",
    "random_mask",
    "gaussian_kernel",
    "image_shape",
    "DEFAULT_NOISE_STD",
]

#: observation noise std of every operator whose name does not fix it (data in [-1, 1]).
DEFAULT_NOISE_STD = 0.05


def _batch_shape(x, data_shape):
    k = len(data_shape)
    if tuple(x.shape[x.ndim - k :]) != tuple(data_shape):
        raise ValueError(f"expected input of shape (*batch, {', '.join(map(str, data_shape))}), got {tuple(x.shape)}")
    return tuple(x.shape[: x.ndim - k])


class LinearOperator:
    """Base class: subclasses implement ``_forward_flat`` ((n, D) -> (n, M)) and
    ``_adjoint_flat`` ((n, M) -> (n, D)) and set ``data_shape`` and ``num_observations``."""

    data_shape: tuple[int, ...]
    num_observations: int

    @property
    def dim(self) -> int:
        return int(math.prod(self.data_shape))

    def _forward_flat(self, x: jax.Array) -> jax.Array:
        raise NotImplementedError(f"{type(self).__name__} does not implement _forward_flat")

    def _adjoint_flat(self, v: jax.Array) -> jax.Array:
        raise NotImplementedError(f"{type(self).__name__} does not implement _adjoint_flat")

    def forward(self, x) -> jax.Array:
        x = jnp.asarray(x)
        batch = _batch_shape(x, self.data_shape)
        out = self._forward_flat(x.reshape((-1, self.dim)))
        return out.reshape(batch + (self.num_observations,))

    __call__ = forward

    def adjoint(self, v) -> jax.Array:
        v = jnp.asarray(v)
        if v.ndim < 1 or v.shape[-1] != self.num_observations:
            raise ValueError(
                f"{type(self).__name__}.adjoint: expected (*batch, {self.num_observations}), got {tuple(v.shape)}"
            )
        batch = tuple(v.shape[:-1])
        out = self._adjoint_flat(v.reshape((-1, self.num_observations)))
        return out.reshape(batch + tuple(self.data_shape))

    def matrix(self) -> jax.Array:
        """Dense (M, D) matrix: column j is A e_j."""
        eye = jnp.eye(self.dim, dtype=jnp.float32)
        return self._forward_flat(eye).T

    @property
    def gram_scale(self) -> float:
        """trace(A A^T) / M, the mean eigenvalue of A A^T (1 for masks and the identity)."""
        with jax.ensure_compile_time_eval():
            return float(jnp.sum(jnp.square(self.matrix())) / self.num_observations)

    def display(self, v) -> jax.Array:
        """An image of observation ``v`` (*batch, M) for panels: the adjoint, rescaled where it
        shrinks (average pooling) so that grey levels read as data."""
        return self.adjoint(v)

    def __repr__(self):
        return f"{type(self).__name__}(data_shape={self.data_shape}, M={self.num_observations})"


@register_pytree(data_fields=("indices",), static_fields=("data_shape", "num_observations"))
class Inpaint(LinearOperator):
    """Observe the entries where ``mask`` is True: obs = x[mask] (flattened, row-major order)."""

    def __init__(self, mask):
        mask = np.asarray(mask, bool)
        if mask.ndim < 1 or not mask.any():
            raise ValueError("the inpainting mask must observe at least one entry")
        self.data_shape = tuple(mask.shape)
        self.indices = jnp.asarray(np.flatnonzero(mask.reshape(-1)), jnp.int32)
        self.num_observations = int(mask.sum())

    @property
    def mask(self) -> jax.Array:
        return jnp.zeros(self.dim, bool).at[self.indices].set(True).reshape(self.data_shape)

    def _forward_flat(self, x):
        return x[:, self.indices]

    def _adjoint_flat(self, v):
        return jnp.zeros((v.shape[0], self.dim), v.dtype).at[:, self.indices].set(v)

    @property
    def gram_scale(self) -> float:
        return 1.0

    def display(self, v):
        """The observed entries in place, NaN where nothing is observed."""
        return jnp.where(self.mask, self.adjoint(v), jnp.nan)


@register_pytree(data_fields=(), static_fields=("data_shape", "num_observations"))
class Denoise(LinearOperator):
    """The identity: obs = x + noise (flattened)."""

    def __init__(self, data_shape):
        self.data_shape = tuple(int(s) for s in data_shape)
        self.num_observations = int(math.prod(self.data_shape))

    def _forward_flat(self, x):
        return x

    def _adjoint_flat(self, v):
        return v

    @property
    def gram_scale(self) -> float:
        return 1.0


@register_pytree(data_fields=("kernel",), static_fields=("data_shape", "num_observations", "padding"))
class Blur(LinearOperator):
    """Same-size 2-D correlation of every channel with ``kernel`` (odd sizes):

        (A x)[i, j, c] = sum_{u, v} k[u, v] xp[i + u, j + v, c],  xp = pad(x, r)

    with ``padding="reflect"`` (mirror without repeating the edge, numpy's "reflect"; default) or
    ``"zero"``. The adjoint scatters with the same kernel and transposes the padding (for reflect,
    the mirrored border folds back onto the pixels it copied), so it is exact for both.
    """

    def __init__(self, kernel, data_shape, padding: str = "reflect"):
        kernel = np.asarray(kernel, np.float64)
        if kernel.ndim != 2 or kernel.shape[0] % 2 == 0 or kernel.shape[1] % 2 == 0:
            raise ValueError(f"blur kernel must be 2-D with odd sizes, got shape {kernel.shape}")
        if padding not in ("reflect", "zero"):
            raise ValueError(f"padding must be 'reflect' or 'zero', got {padding!r}")
        h, w, _ = image_shape(data_shape)
        ry, rx = kernel.shape[0] // 2, kernel.shape[1] // 2
        if padding == "reflect" and (ry >= h or rx >= w):
            raise ValueError(f"a {kernel.shape} kernel is too large to reflect-pad a {h}x{w} image")
        self.kernel = jnp.asarray(kernel, jnp.float32)
        self.data_shape = tuple(int(s) for s in data_shape)
        self.num_observations = int(math.prod(self.data_shape))
        self.padding = padding

    def _pad(self, img):
        ry, rx = self.kernel.shape[0] // 2, self.kernel.shape[1] // 2
        mode = "reflect" if self.padding == "reflect" else "constant"
        return jnp.pad(img, ((0, 0), (ry, ry), (rx, rx), (0, 0)), mode=mode)

    def _forward_flat(self, x):
        h, w, c = image_shape(self.data_shape)
        xp = self._pad(x.reshape(-1, h, w, c))
        kh, kw = self.kernel.shape
        out = jnp.zeros((x.shape[0], h, w, c), x.dtype)
        for u in range(kh):
            for v in range(kw):
                out = out + self.kernel[u, v] * xp[:, u : u + h, v : v + w, :]
        return out.reshape(x.shape[0], -1)

    def _adjoint_flat(self, v):
        h, w, c = image_shape(self.data_shape)
        kh, kw = self.kernel.shape
        img = v.reshape(-1, h, w, c)
        g = jnp.zeros((v.shape[0], h + kh - 1, w + kw - 1, c), v.dtype)
        for u in range(kh):
            for s in range(kw):
                g = g.at[:, u : u + h, s : s + w, :].add(self.kernel[u, s] * img)
        template = jnp.zeros((v.shape[0], h, w, c), v.dtype)
        (x,) = jax.linear_transpose(self._pad, template)(g)  # P^T: crop, fold mirrored borders back
        return x.reshape(v.shape[0], -1)


@register_pytree(data_fields=(), static_fields=("data_shape", "num_observations", "factor"))
class Downsample(LinearOperator):
    """Average pooling over non-overlapping ``factor`` x ``factor`` blocks (super-resolution).
    Adjoint: each low-resolution value copied to its block, divided by factor^2."""

    def __init__(self, data_shape, factor: int = 2):
        h, w, c = image_shape(data_shape)
        factor = int(factor)
        if factor < 1 or h % factor or w % factor:
            raise ValueError(f"downsampling factor {factor} must divide the image size {h}x{w}")
        self.data_shape = tuple(int(s) for s in data_shape)
        self.factor = factor
        self.num_observations = (h // factor) * (w // factor) * c

    def _forward_flat(self, x):
        h, w, c = image_shape(self.data_shape)
        f = self.factor
        img = x.reshape(-1, h // f, f, w // f, f, c)
        return jnp.mean(img, axis=(2, 4)).reshape(x.shape[0], -1)

    def _adjoint_flat(self, v):
        h, w, c = image_shape(self.data_shape)
        f = self.factor
        low = v.reshape(-1, h // f, 1, w // f, 1, c) / f**2
        return jnp.broadcast_to(low, (v.shape[0], h // f, f, w // f, f, c)).reshape(v.shape[0], -1)

    @property
    def gram_scale(self) -> float:
        return 1.0 / self.factor**2

    def display(self, v):
        return self.adjoint(v) * self.factor**2


@register_pytree(data_fields=("sensing_matrix",), static_fields=("data_shape", "num_observations"))
class CompressedSensing(LinearOperator):
    """obs = Phi x (flattened x) with Phi (M, D) of i.i.d. N(0, 1/M) entries, M < D allowed."""

    def __init__(self, data_shape, num_observations: int, seed: int = 0, matrix=None):
        self.data_shape = tuple(int(s) for s in data_shape)
        d = int(math.prod(self.data_shape))
        if matrix is None:
            m = int(num_observations)
            if m < 1:
                raise ValueError(f"compressed sensing needs at least one measurement, got {m}")
            matrix = np.random.default_rng(seed).standard_normal((m, d)) / math.sqrt(m)
        matrix = np.asarray(matrix, np.float64)
        if matrix.ndim != 2 or matrix.shape[1] != d:
            raise ValueError(f"sensing matrix must have shape (M, {d}), got {matrix.shape}")
        self.sensing_matrix = jnp.asarray(matrix, jnp.float32)
        self.num_observations = int(matrix.shape[0])

    def _forward_flat(self, x):
        return x @ self.sensing_matrix.T

    def _adjoint_flat(self, v):
        return v @ self.sensing_matrix

    def matrix(self):
        return self.sensing_matrix

    def display(self, v):
        # least-norm reconstruction Phi^+ v, a readable picture of what the measurements say
        pinv = jnp.linalg.pinv(self.sensing_matrix)
        batch = v.shape[:-1]
        return (v.reshape(-1, self.num_observations) @ pinv.T).reshape(batch + self.data_shape)


def operator_names() -> list[str]:
    return ["inpaint:half", "inpaint:box", "inpaint:randomP", "denoise:S", "blur:gaussS", "sr:F", "cs:R"]


def from_name(name: str, data_shape, seed: int = 0, noise_std: float | None = None):
    """Parse an operator name (see the module docstring) into ``(operator, noise_std)``.

    ``noise_std`` (or a ``@S`` suffix) overrides the default noise; ``seed`` fixes random masks
    and sensing matrices. Raises ValueError with the accepted names on bad input.
    """
    text = str(name).strip()
    if "@" in text:
        text, _, s = text.partition("@")
        try:
            noise_std = float(s) if noise_std is None else noise_std
        except ValueError:
            raise ValueError(f"bad noise std {s!r} in operator {name!r}") from None
    kind, _, arg = text.partition(":")
    usage = f"unknown operator {name!r}; expected one of {', '.join(operator_names())}"
    op: LinearOperator
    try:
        if kind == "inpaint":
            if arg == "half":
                op = Inpaint(half_mask(data_shape))
            elif arg == "box":
                op = Inpaint(box_mask(data_shape))
            elif arg.startswith("random"):
                op = Inpaint(random_mask(data_shape, float(arg[len("random") :] or 0.5), seed))
            else:
                raise ValueError(usage)
            default = DEFAULT_NOISE_STD
        elif kind == "denoise":
            default = float(arg) if arg else 0.1
            op = Denoise(data_shape)
        elif kind == "blur":
            if not arg.startswith("gauss"):
                raise ValueError(usage)
            op = Blur(gaussian_kernel(float(arg[len("gauss") :] or 1.0)), data_shape)
            default = DEFAULT_NOISE_STD
        elif kind == "sr":
            op = Downsample(data_shape, int(arg or 2))
            default = DEFAULT_NOISE_STD
        elif kind == "cs":
            ratio = float(arg or 0.3)
            if not 0 < ratio <= 1:
                raise ValueError(f"compressed-sensing ratio must lie in (0, 1], got {ratio}")
            d = int(math.prod(tuple(data_shape)))
            op = CompressedSensing(data_shape, max(1, int(round(ratio * d))), seed)
            default = DEFAULT_NOISE_STD
        else:
            raise ValueError(usage)
    except ValueError as err:
        msg = str(err)
        raise ValueError(msg if msg.startswith("unknown operator") else f"bad operator {name!r}: {msg}") from None
    noise = default if noise_std is None else float(noise_std)
    if not noise > 0:
        raise ValueError(f"the observation noise std must be positive, got {noise} (operator {name!r})")
    return op, noise
