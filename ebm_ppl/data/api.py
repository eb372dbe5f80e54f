"""``load``, ``info`` and ``labels``: the public entry points over built-in and user data."""

from __future__ import annotations

import math
import os
from typing import Any

import numpy as np

from ebm_ppl.data._common import DataError, DataFileNotFoundError, UnknownDatasetError, _check_split
from ebm_ppl.data.builtin import _digits_all, info_builtin, load_builtin, names
from ebm_ppl.data.user import USER_SEED, _user_data

__all__ = ["load", "info", "labels"]


def _unknown(name) -> UnknownDatasetError:
    return UnknownDatasetError(
        f"unknown data set {name!r}; known data sets: {', '.join(names())} "
        "(or a path to a .npy/.npz file or a folder of images)"
    )


def _looks_like_path(name: str) -> bool:
    return (
        os.sep in name
        or "/" in name
        or name.lower().endswith((".npy", ".npz"))
        or name.startswith(".")
        or os.path.exists(name)
    )


def _resolve(name) -> tuple[str, str]:
    """('builtin', name) or ('user', absolute path); raises the documented errors."""
    if isinstance(name, os.PathLike):
        name = os.fspath(name)
    if not isinstance(name, str) or not name:
        raise _unknown(name)
    if name in names():
        return "builtin", name
    if _looks_like_path(name):
        path = os.path.abspath(os.path.expanduser(name))
        if not os.path.exists(path):
            raise DataFileNotFoundError(f"data file not found: {name}")
        return "user", path
    raise _unknown(name)


def labels(name: str, split: str = "train") -> np.ndarray:
    """Class labels (int64, shape (n,)) of a labelled data set (only ``digits``), aligned with ``load``."""
    _check_split(split)
    kind, key = _resolve(name)
    if key != "digits":
        raise DataError(f"data set {name!r} has no labels (only 'digits' does)")
    _, y, idx = _digits_all()
    return y[idx[split]]


def load(name: str, split: str = "train", *, levels: int | None = None) -> np.ndarray:
    """A data set's split, float32 of shape ``(n, *data_shape)`` in [-1, 1] (bin centres, not dequantised).

    Args:
      name: a built-in name (see :func:`names`) or a path to a ``.npy``/``.npz`` file or an image
        folder.
      split: ``"train"``, ``"validation"``, ``"test"`` or ``"all"`` (train + validation + test).
      levels: user data only: quantisation levels of integer raw values 0..levels-1 (default 256
        for 8-bit data), or of float data already in [-1, 1] given as bin centres.

    Raises:
      UnknownDatasetError: unknown name (the message lists the data sets).
      DataFileNotFoundError: a path that does not exist.
      DataError: unreadable file, bad shape, empty folder, values out of range.
    """
    _check_split(split)
    kind, key = _resolve(name)
    if kind == "builtin":
        if levels is not None:
            raise DataError(f"levels applies to user data only, not to the built-in data set {key!r}")
        x = load_builtin(key, split)
        return np.array(x, np.float32, copy=True)
    out, _, _ = _user_data(key, levels)
    return np.array(out[split], np.float32, copy=True)


def info(name: str, *, levels: int | None = None) -> dict[str, Any]:
    """Facts about a data set.

    Keys: ``name``, ``kind`` (``"image"``, ``"2d"`` or ``"user"``), ``data_shape`` (tuple),
    ``dim``, ``levels`` (int, or None for continuous data), ``low`` / ``high`` (the data range,
    -1.0 / 1.0; exact for quantised data, nominal for the 2-D sets whose tails pass it slightly,
    see ``bounded``), ``bin_width`` (``2 / levels`` or None), ``raw_to_data`` (the formula),
    ``sizes`` (examples per split), ``seed``, ``source``, ``description``.
    """
    kind, key = _resolve(name)
    base = {"low": -1.0, "high": 1.0}
    if kind == "builtin":
        d = info_builtin(key)
        name_out = key
    else:
        out, lv, source = _user_data(key, levels)
        d = dict(
            kind="user",
            data_shape=tuple(out["train"].shape[1:]),
            levels=lv,
            seed=USER_SEED,
            sizes={s: int(len(out[s])) for s in ("train", "validation", "test")},
            source=source,
            description=f"user data from {key}",
        )
        name_out = key
    d["sizes"]["all"] = sum(d["sizes"][s] for s in ("train", "validation", "test"))
    d.update(base)
    d["name"] = name_out
    d["dim"] = int(math.prod(d["data_shape"]))
    d["bin_width"] = None if d["levels"] is None else 2.0 / d["levels"]
    # Quantised data lie in [low, high] exactly; continuous (2-D) sets only roughly (tails).
    d["bounded"] = d["levels"] is not None
    d["raw_to_data"] = None if d["levels"] is None else f"x = (v + 0.5) * 2 / {d['levels']} - 1"
    return d
