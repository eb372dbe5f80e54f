"""Built-in data sets, user data, scaling to [-1, 1] and uniform dequantisation.

Every data set is returned in *data space*: float32 arrays of shape ``(n, *data_shape)`` with
values in [-1, 1]. Multiplying by the schedule's data scale ``a`` (model space ``y_0 = a x_0``)
is the energy's job (``energy.to_model``); dequantisation is a separate, explicit step
(:func:`dequantize`), so ``load`` is deterministic.

Scaling convention for quantised data (``levels = L``): the interval [-1, 1] is cut into L bins
of width ``2 / L``; raw value ``v`` in ``0 .. L-1`` owns the bin ``[-1 + 2v/L, -1 + 2(v+1)/L)``
and ``load`` returns its centre

    x = (v + 1/2) * 2 / L - 1.

Uniform dequantisation adds ``(u - 1/2) * 2 / L`` with ``u ~ U(0, 1)`` per coordinate, i.e.
``x = (v + u) * 2 / L - 1``, which fills each bin exactly and never leaves [-1, 1]. A continuous
density ``p`` on [-1, 1]^D then bounds the discrete log-likelihood of the bins:
``log P(v) >= E_u log p(x) + D log(2 / L)`` and bits/dim is
``-(log p(x) + D log(2/L)) / (D log 2)`` (:func:`log_prob_to_bits_per_dim`); the uniform density on the cube
gives exactly ``log2(L)`` bits/dim.

Data sets (``names()``): ``digits``, ``patches``, ``photos`` and the 2-D sets ``checkerboard``,
``8gaussians``, ``moons``, ``rings``, ``swissroll``, ``pinwheel``. Anything else that is a path
(``.npy``, ``.npz`` or a folder of images) is user data. See docs/data.md.

Modules: :mod:`~ebm_ppl.data.builtin` (built-in sets), :mod:`~ebm_ppl.data.photos` (the photos set),
:mod:`~ebm_ppl.data.user` (user files and folders), :mod:`~ebm_ppl.data.quantise` (bins,
dequantisation, bits/dim), :mod:`~ebm_ppl.data.api` (``load``, ``info``, ``labels``).
"""

from __future__ import annotations

from ebm_ppl.data import photos
from ebm_ppl.data._common import SPLITS, DataError, DataFileNotFoundError, UnknownDatasetError
from ebm_ppl.data.api import info, labels, load
from ebm_ppl.data.builtin import (
    DIGITS_SEED,
    DIGITS_SIZES,
    GREY_WEIGHTS,
    PATCH_SIZE,
    PATCHES_COLUMNS,
    PATCHES_SEED,
    PATCHES_SIZES,
    TWO_D_NAMES,
    TWO_D_SEED,
    TWO_D_SIZES,
    is_builtin,
    names,
    sample_2d,
)
from ebm_ppl.data.quantise import bin_width, bits_per_dim, dequantize, log_prob_to_bits_per_dim, to_raw
from ebm_ppl.data.user import IMAGE_EXTENSIONS, USER_FRACTIONS, USER_SEED

__all__ = [
    "DataError",
    "UnknownDatasetError",
    "DataFileNotFoundError",
    "SPLITS",
    "names",
    "info",
    "load",
    "labels",
    "sample_2d",
    "bin_width",
    "dequantize",
    "to_raw",
    "log_prob_to_bits_per_dim",
    "bits_per_dim",
    "is_builtin",
    "photos",
    "DIGITS_SEED",
    "DIGITS_SIZES",
    "GREY_WEIGHTS",
    "PATCH_SIZE",
    "PATCHES_COLUMNS",
    "PATCHES_SEED",
    "PATCHES_SIZES",
    "TWO_D_NAMES",
    "TWO_D_SEED",
    "TWO_D_SIZES",
    "IMAGE_EXTENSIONS",
    "USER_FRACTIONS",
    "USER_SEED",
]
