"""Shared pieces of the data package: the split names, the errors, bin centres."""

from __future__ import annotations

import numpy as np

__all__ = ["SPLITS", "DataError", "UnknownDatasetError", "DataFileNotFoundError"]

SPLITS = ("train", "validation", "test", "all")


class DataError(ValueError):
    """Bad data set name, file or contents."""


class UnknownDatasetError(DataError):
    """The name is neither a built-in data set nor a path to user data."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """A user-data path that does not exist."""


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
    return split


def _centres(raw: np.ndarray, levels: int) -> np.ndarray:
    return ((raw.astype(np.float64) + 0.5) * (2.0 / levels) - 1.0).astype(np.float32)
