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
``-(log p(x) + D log(2/L)) / (D log 2)`` (:func:`bits_per_dim`); the uniform density on the cube
gives exactly ``log2(L)`` bits/dim.

Data sets (``names()``): ``digits``, ``patches`` and the 2-D sets ``checkerboard``,
``8gaussians``, ``moons``, ``rings``, ``swissroll``, ``pinwheel``. Anything else that is a path
(``.npy``, ``.npz`` or a folder of images) is user data. See docs/data.md.
"""

from __future__ import annotations

import functools
import math
import os
import zlib
from typing import Any

import numpy as np

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
    "bits_per_dim",
    "is_builtin",
]

SPLITS = ("train", "validation", "test", "all")

DIGITS_SEED = 0
DIGITS_SIZES = {"train": 1200, "validation": 237, "test": 360}

PATCHES_SEED = 0
PATCH_SIZE = 8
PATCHES_SIZES = {"train": 20000, "validation": 2000, "test": 2000}
# Column ranges of each 640-pixel-wide photo owned by each split (disjoint regions: patches of
# different splits never share a pixel).
PATCHES_COLUMNS = {"train": (0, 512), "validation": (512, 576), "test": (576, 640)}
GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma

TWO_D_SEED = 0
TWO_D_SIZES = {"train": 20000, "validation": 5000, "test": 5000}
TWO_D_NAMES = ("checkerboard", "8gaussians", "moons", "rings", "swissroll", "pinwheel")

USER_SEED = 0
USER_FRACTIONS = (0.90, 0.05, 0.05)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


class DataError(ValueError):
    """Bad data set name, file or contents."""


class UnknownDatasetError(DataError):
    """The name is neither a built-in data set nor a path to user data."""


class DataFileNotFoundError(DataError, FileNotFoundError):
    """A user-data path that does not exist."""


# --------------------------------------------------------------------------------------------
# registry


_DESCRIPTIONS = {
    "digits": "scikit-learn load_digits: 1797 handwritten digits, 8x8 grey, 17 levels",
    "patches": "8x8 grey patches of scikit-learn's two sample photos (china, flower), 256 levels",
    "checkerboard": "2-D checkerboard, 8 squares of side 0.5 on [-1, 1]^2",
    "8gaussians": "2-D mixture of 8 Gaussians (std 0.0884) on a circle of radius 0.707",
    "moons": "2-D two moons (scikit-learn's construction, noise 0.1, scaled by 2/3)",
    "rings": "2-D four concentric rings of radii 0.25, 0.5, 0.75, 1 (noise std 0.02)",
    "swissroll": "2-D swiss roll (t cos t, t sin t)/14, t in [1.5pi, 4.5pi], noise std 0.5/14",
    "pinwheel": "2-D pinwheel with 5 arms (FFJORD's construction, scaled by 1/2)",
}


def names() -> list[str]:
    """The built-in data sets."""
    return ["digits", "patches", *TWO_D_NAMES]


def is_builtin(name: str) -> bool:
    return isinstance(name, str) and name in names()


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


def _check_split(split: str) -> str:
    if split not in SPLITS:
        raise DataError(f"unknown split {split!r}; splits are {', '.join(SPLITS)}")
    return split


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


def _centres(raw: np.ndarray, levels: int) -> np.ndarray:
    return ((raw.astype(np.float64) + 0.5) * (2.0 / levels) - 1.0).astype(np.float32)


# --------------------------------------------------------------------------------------------
# digits


@functools.lru_cache(maxsize=1)
def _digits_all() -> tuple[np.ndarray, np.ndarray, dict[str, np.ndarray]]:
    from sklearn.datasets import load_digits

    d = load_digits()
    raw = np.rint(d.images).astype(np.int64)  # (1797, 8, 8), values 0..16
    x = _centres(raw, 17)[..., None]  # (1797, 8, 8, 1)
    y = np.asarray(d.target, np.int64)
    perm = np.random.default_rng(DIGITS_SEED).permutation(len(x))
    a = DIGITS_SIZES["train"]
    b = a + DIGITS_SIZES["validation"]
    idx = {"train": perm[:a], "validation": perm[a:b], "test": perm[b:], "all": np.arange(len(x))}
    return x, y, idx


def _digits(split):
    x, _, idx = _digits_all()
    return x[idx[split]]


def labels(name: str, split: str = "train") -> np.ndarray:
    """Class labels (int64, shape (n,)) of a labelled data set (only ``digits``), aligned with ``load``."""
    _check_split(split)
    kind, key = _resolve(name)
    if key != "digits":
        raise DataError(f"data set {name!r} has no labels (only 'digits' does)")
    _, y, idx = _digits_all()
    return y[idx[split]]


# --------------------------------------------------------------------------------------------
# patches


@functools.lru_cache(maxsize=1)
def _grey_photos() -> list[np.ndarray]:
    from sklearn.datasets import load_sample_images

    out = []
    for img in load_sample_images().images:  # china, flower: (427, 640, 3) uint8
        grey = img.astype(np.float64) @ np.asarray(GREY_WEIGHTS)
        out.append(np.clip(np.rint(grey), 0, 255).astype(np.uint8))
    return out


@functools.lru_cache(maxsize=4)
def _patches_split(split: str) -> np.ndarray:
    photos = _grey_photos()
    n = PATCHES_SIZES[split]
    c0, c1 = PATCHES_COLUMNS[split]
    k = PATCH_SIZE
    positions = []  # (photo, row, col) of the top-left corner; the patch lies inside [c0, c1)
    for p, img in enumerate(photos):
        rows = np.arange(img.shape[0] - k + 1)
        cols = np.arange(c0, c1 - k + 1)
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        positions.append(np.stack([np.full(rr.size, p), rr.ravel(), cc.ravel()], 1))
    positions = np.concatenate(positions)
    seed = [PATCHES_SEED, zlib.crc32(split.encode())]
    choice = np.random.default_rng(seed).choice(len(positions), size=n, replace=False)
    raw = np.empty((n, k, k), np.uint8)
    for i, (p, r, c) in enumerate(positions[choice]):
        raw[i] = photos[p][r : r + k, c : c + k]
    return _centres(raw, 256)[..., None]


def _patches(split):
    if split == "all":
        return np.concatenate([_patches_split(s) for s in ("train", "validation", "test")])
    return _patches_split(split)


# --------------------------------------------------------------------------------------------
# 2-D sets (numpy generators: deterministic given the seed, independent of JAX)


def _gen_checkerboard(rng, n):
    x1 = rng.uniform(-2, 2, n)
    x2 = rng.uniform(0, 1, n) - 2 * rng.integers(0, 2, n) + np.floor(x1) % 2
    return np.stack([x1, x2], 1) / 2.0


def _gen_8gaussians(rng, n):
    ang = np.arange(8) * (np.pi / 4)
    centres = np.stack([np.cos(ang), np.sin(ang)], 1) / math.sqrt(2)
    k = rng.integers(0, 8, n)
    return centres[k] + rng.normal(size=(n, 2)) * (0.5 / (4 * math.sqrt(2)))


def _gen_moons(rng, n):
    upper = rng.integers(0, 2, n).astype(bool)
    th = rng.uniform(0, np.pi, n)
    x = np.where(upper, np.cos(th), 1 - np.cos(th))
    y = np.where(upper, np.sin(th), 0.5 - np.sin(th))
    pts = np.stack([x, y], 1) + rng.normal(size=(n, 2)) * 0.1
    return (pts * 2 + np.array([-1.0, -0.2])) / 3.0


def _gen_rings(rng, n):
    r = (rng.integers(0, 4, n) + 1) * 0.25
    th = rng.uniform(0, 2 * np.pi, n)
    return np.stack([r * np.cos(th), r * np.sin(th)], 1) + rng.normal(size=(n, 2)) * 0.02


def _gen_swissroll(rng, n):
    t = 1.5 * np.pi * (1 + 2 * rng.uniform(size=n))
    pts = np.stack([t * np.cos(t), t * np.sin(t)], 1) + rng.normal(size=(n, 2)) * 0.5
    return pts / 14.0


def _gen_pinwheel(rng, n):
    radial_std, tangential_std, arms, rate = 0.3, 0.1, 5, 0.25
    rads = np.linspace(0, 2 * np.pi, arms, endpoint=False)
    f = rng.normal(size=(n, 2)) * np.array([radial_std, tangential_std])
    f[:, 0] += 1.0
    ang = rads[rng.integers(0, arms, n)] + rate * np.exp(f[:, 0])
    c, s = np.cos(ang), np.sin(ang)
    pts = np.stack([f[:, 0] * c - f[:, 1] * s, f[:, 0] * s + f[:, 1] * c], 1)
    return pts / 2.0


_GENERATORS = {
    "checkerboard": _gen_checkerboard,
    "8gaussians": _gen_8gaussians,
    "moons": _gen_moons,
    "rings": _gen_rings,
    "swissroll": _gen_swissroll,
    "pinwheel": _gen_pinwheel,
}


def _rng_from(key_or_seed) -> np.random.Generator:
    if isinstance(key_or_seed, (int, np.integer)):
        return np.random.default_rng(int(key_or_seed))
    if isinstance(key_or_seed, np.random.Generator):
        return key_or_seed
    import jax

    key = key_or_seed
    if jax.dtypes.issubdtype(getattr(key, "dtype", None), jax.dtypes.prng_key):
        key = jax.random.key_data(key)
    words = np.asarray(key, dtype=np.uint32).ravel().tolist()
    return np.random.default_rng(words)


def sample_2d(name: str, key_or_seed, n: int) -> np.ndarray:
    """``n`` fresh draws (float32, (n, 2)) of a 2-D data set; ``key_or_seed``: int seed or JAX key."""
    if name not in _GENERATORS:
        raise UnknownDatasetError(
            f"{name!r} is not a 2-D data set; 2-D data sets: {', '.join(TWO_D_NAMES)}"
        )
    n = int(n)
    if n < 0:
        raise DataError(f"n must be >= 0, got {n}")
    return _GENERATORS[name](_rng_from(key_or_seed), n).astype(np.float32)


@functools.lru_cache(maxsize=32)
def _two_d_split(name: str, split: str) -> np.ndarray:
    seed = [TWO_D_SEED, zlib.crc32(name.encode()), zlib.crc32(split.encode())]
    return sample_2d(name, np.random.default_rng(seed), TWO_D_SIZES[split])


def _two_d(name, split):
    if split == "all":
        return np.concatenate([_two_d_split(name, s) for s in ("train", "validation", "test")])
    return _two_d_split(name, split)


# --------------------------------------------------------------------------------------------
# user data


def _canonical_shape(arr: np.ndarray, where: str) -> np.ndarray:
    if arr.ndim < 2:
        raise DataError(f"{where}: expected an array of shape (n, ...) with n examples, got shape {arr.shape}")
    if arr.shape[0] == 0:
        raise DataError(f"{where}: the array is empty (shape {arr.shape})")
    if arr.ndim == 3:  # (n, H, W) grey images
        arr = arr[..., None]
    if arr.ndim == 4 and arr.shape[1] in (1, 3) and arr.shape[3] not in (1, 3):  # channel-first
        arr = np.transpose(arr, (0, 2, 3, 1))
    if arr.ndim > 4:
        raise DataError(
            f"{where}: expected (n, D), (n, H, W) or (n, H, W, C) data, got shape {arr.shape}"
        )
    if any(s == 0 for s in arr.shape[1:]):
        raise DataError(f"{where}: bad shape {arr.shape}")
    return arr


def _scale(arr: np.ndarray, levels: int | None, where: str) -> tuple[np.ndarray, int | None]:
    if arr.dtype == np.bool_:
        arr = arr.astype(np.uint8)
        levels = 2 if levels is None else levels
    if np.issubdtype(arr.dtype, np.integer):
        lo, hi = int(arr.min()), int(arr.max())
        if levels is None:
            if lo < 0 or hi > 255:
                raise DataError(
                    f"{where}: integer data in [{lo}, {hi}] is not 8-bit; pass levels=L for values 0..L-1"
                )
            levels = 256
        if lo < 0 or hi > levels - 1:
            raise DataError(f"{where}: integer data in [{lo}, {hi}] does not fit levels={levels} (0..{levels - 1})")
        return _centres(arr, levels), levels
    if np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
        if not np.all(np.isfinite(arr)):
            raise DataError(f"{where}: the data contain NaN or infinite values")
        lo, hi = float(arr.min()), float(arr.max())
        if lo < -1.0 - 1e-6 or hi > 1.0 + 1e-6:
            raise DataError(
                f"{where}: float data must already lie in [-1, 1] (found [{lo:.4g}, {hi:.4g}]); "
                "pass integer raw values (e.g. uint8) or rescale"
            )
        return np.clip(arr, -1.0, 1.0), levels
    raise DataError(f"{where}: unsupported dtype {arr.dtype}")


def _read_image(path: str) -> np.ndarray:
    try:
        from PIL import Image
    except ImportError:  # pragma: no cover - PIL ships with matplotlib
        import matplotlib.image as mpimg

        img = mpimg.imread(path)
        if img.dtype != np.uint8:
            img = np.clip(np.rint(img * 255), 0, 255).astype(np.uint8)
        if img.ndim == 3 and img.shape[2] == 4:
            img = img[..., :3]
        return img
    with Image.open(path) as im:
        if im.mode in ("L", "1", "P") and not (im.mode == "P" and "transparency" in im.info):
            im2 = im.convert("L") if im.mode != "P" else im.convert("RGB")
        elif im.mode in ("I;16", "I", "F"):
            im2 = im.convert("L")
        else:
            im2 = im.convert("RGB")
        return np.asarray(im2, np.uint8)


def _read_folder(path: str) -> np.ndarray:
    files = sorted(f for f in os.listdir(path) if f.lower().endswith(IMAGE_EXTENSIONS))
    if not files:
        raise DataError(f"{path}: folder has no images ({', '.join(IMAGE_EXTENSIONS)})")
    imgs = []
    for f in files:
        try:
            img = _read_image(os.path.join(path, f))
        except Exception as e:  # noqa: BLE001 - report which file is bad
            raise DataError(f"{os.path.join(path, f)}: cannot read image ({e})") from None
        imgs.append(img)
    any_rgb = any(im.ndim == 3 for im in imgs)
    if any_rgb:
        imgs = [np.repeat(im[..., None], 3, -1) if im.ndim == 2 else im for im in imgs]
    else:
        imgs = [im[..., None] for im in imgs]
    first = imgs[0].shape
    for f, im in zip(files, imgs):
        if im.shape != first:
            raise DataError(
                f"{os.path.join(path, f)}: image size {im.shape[:2]} differs from {files[0]} {first[:2]}; "
                "all images in a folder must have the same size"
            )
    return np.stack(imgs)


_SPLIT_KEYS = {
    "train": ("train", "x_train", "train_x", "images_train", "train_images"),
    "validation": ("validation", "val", "valid", "x_val", "x_valid", "x_validation"),
    "test": ("test", "x_test", "test_x", "images_test", "test_images"),
}


def _seeded_split(n: int, seed: int, fractions=USER_FRACTIONS) -> dict[str, np.ndarray]:
    if n < 3:
        raise DataError(f"need at least 3 examples to split into train/validation/test, got {n}")
    n_val = max(1, int(round(fractions[1] * n)))
    n_test = max(1, int(round(fractions[2] * n)))
    n_train = n - n_val - n_test
    perm = np.random.default_rng(seed).permutation(n)
    return {
        "train": perm[:n_train],
        "validation": perm[n_train : n_train + n_val],
        "test": perm[n_train + n_val :],
    }


@functools.lru_cache(maxsize=8)
def _user(path: str, mtime: float, levels: int | None) -> tuple[dict[str, np.ndarray], int | None, str]:
    del mtime  # part of the cache key only
    if os.path.isdir(path):
        raw = {"all": _canonical_shape(_read_folder(path), path)}
        source = "image folder"
    elif path.lower().endswith(".npy"):
        try:
            arr = np.load(path, allow_pickle=False)
        except Exception as e:  # noqa: BLE001
            raise DataError(f"{path}: cannot read .npy file ({e})") from None
        raw = {"all": _canonical_shape(np.asarray(arr), path)}
        source = ".npy"
    elif path.lower().endswith(".npz"):
        try:
            with np.load(path, allow_pickle=False) as z:
                arrays = {k: np.asarray(z[k]) for k in z.files}
        except Exception as e:  # noqa: BLE001
            raise DataError(f"{path}: cannot read .npz file ({e})") from None
        if not arrays:
            raise DataError(f"{path}: the .npz file holds no arrays")
        found = {s: next((k for k in keys if k in arrays), None) for s, keys in _SPLIT_KEYS.items()}
        if found["train"] is not None and found["test"] is not None:
            raw = {s: _canonical_shape(arrays[k], f"{path}[{k}]") for s, k in found.items() if k is not None}
            source = ".npz with " + "/".join(k for k in found.values() if k is not None)
        else:
            key = next((k for k in ("x", "images", "data", "X") if k in arrays), next(iter(arrays)))
            raw = {"all": _canonical_shape(arrays[key], f"{path}[{key}]")}
            source = f".npz key {key!r}"
    else:
        raise DataError(f"{path}: user data must be a .npy or .npz file or a folder of images")

    shapes = {s: a.shape[1:] for s, a in raw.items()}
    if len(set(shapes.values())) > 1:
        raise DataError(f"{path}: splits have different example shapes {shapes}")

    # Common levels across splits: integer arrays decide it unless given.
    scaled, lv = {}, levels
    for s, a in raw.items():
        scaled[s], got = _scale(a, levels if levels is not None else lv, f"{path} ({s})")
        lv = got if lv is None else lv
    if levels is None and any(np.issubdtype(a.dtype, np.floating) for a in raw.values()):
        if any(not np.issubdtype(a.dtype, np.floating) for a in raw.values()):
            raise DataError(f"{path}: mixes integer and float splits")
    levels = lv

    if "all" in scaled:
        x = scaled["all"]
        idx = _seeded_split(len(x), USER_SEED)
        out = {s: x[i] for s, i in idx.items()}
        out["all"] = x
    else:
        out = dict(scaled)
        if "validation" not in out:
            tr = out["train"]
            n_val = max(1, int(round(USER_FRACTIONS[1] / USER_FRACTIONS[0] * len(tr))))
            if len(tr) - n_val < 1:
                raise DataError(f"{path}: the train split is too small to hold out a validation split")
            perm = np.random.default_rng(USER_SEED).permutation(len(tr))
            out["validation"] = tr[perm[:n_val]]
            out["train"] = tr[np.sort(perm[n_val:])]
        out["all"] = np.concatenate([out["train"], out["validation"], out["test"]])
    for v in out.values():
        v.setflags(write=False)
    return out, levels, source


def _user_data(path: str, levels: int | None):
    if levels is not None:
        levels = int(levels)
        if levels < 2:
            raise DataError(f"levels must be >= 2, got {levels}")
    return _user(path, os.path.getmtime(path), levels)


# --------------------------------------------------------------------------------------------
# public API


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
        if key == "digits":
            x = _digits(split)
        elif key == "patches":
            x = _patches(split)
        else:
            x = _two_d(key, split)
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
        if key == "digits":
            d = dict(kind="image", data_shape=(8, 8, 1), levels=17, sizes=dict(DIGITS_SIZES), seed=DIGITS_SEED,
                     source="sklearn.datasets.load_digits")
        elif key == "patches":
            d = dict(kind="image", data_shape=(8, 8, 1), levels=256, sizes=dict(PATCHES_SIZES), seed=PATCHES_SEED,
                     source="sklearn.datasets.load_sample_images (china.jpg, flower.jpg), grey = "
                            f"{GREY_WEIGHTS[0]} R + {GREY_WEIGHTS[1]} G + {GREY_WEIGHTS[2]} B",
                     columns=dict(PATCHES_COLUMNS))
        else:
            d = dict(kind="2d", data_shape=(2,), levels=None, sizes=dict(TWO_D_SIZES), seed=TWO_D_SEED,
                     source="synthetic (numpy PCG64, seeded per split)")
        d["description"] = _DESCRIPTIONS[key]
        name_out = key
    else:
        out, lv, source = _user_data(key, levels)
        d = dict(kind="user", data_shape=tuple(out["train"].shape[1:]), levels=lv, seed=USER_SEED,
                 sizes={s: int(len(out[s])) for s in ("train", "validation", "test")}, source=source,
                 description=f"user data from {key}")
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


def _levels_of(info_or_levels) -> int | None:
    if isinstance(info_or_levels, dict):
        return info_or_levels.get("levels")
    if isinstance(info_or_levels, str):
        return info(info_or_levels)["levels"]
    return None if info_or_levels is None else int(info_or_levels)


def bin_width(info_or_levels) -> float | None:
    """Width ``2 / levels`` of a quantisation bin in data space (None for continuous data).

    Accepts an :func:`info` dict, a data set name, or the number of levels.
    """
    lv = _levels_of(info_or_levels)
    return None if lv is None else 2.0 / lv


def dequantize(key, x, info_or_levels):
    """Uniform dequantisation: ``x + (u - 1/2) * bin_width`` with ``u ~ U(0, 1)`` per coordinate.

    ``x`` holds bin centres from :func:`load` (any shape); the result fills each bin uniformly
    and stays in [-1, 1]. Continuous data (levels None) come back unchanged. Returns a JAX array.
    """
    import jax
    import jax.numpy as jnp

    w = bin_width(info_or_levels)
    x = jnp.asarray(x, jnp.float32)
    if w is None:
        return x
    u = jax.random.uniform(key, x.shape, jnp.float32)
    return x + (u - 0.5) * w


def to_raw(x, info_or_levels) -> np.ndarray:
    """Data-space values back to raw integer levels ``0 .. levels-1`` (the bin each value falls in)."""
    lv = _levels_of(info_or_levels)
    if lv is None:
        raise DataError("to_raw needs quantised data (levels is None)")
    v = np.floor((np.asarray(x, np.float64) + 1.0) * lv / 2.0)
    return np.clip(v, 0, lv - 1).astype(np.int64)


def bits_per_dim(log_prob, dim: int, info_or_levels) -> np.ndarray:
    """Bits/dim of the discrete data from a continuous log density on data space [-1, 1]^D.

    ``log_prob`` is ``log p(x)`` at dequantised points (in nats, the density in *data* space; an
    energy's model-space density ``p_y`` converts by ``log p(x) = log p_y(a x) + D log a``). The
    bin volume ``(2 / levels)^D`` turns it into a bound on the probability of the bin:

        bits/dim = -(log p(x) + D log(2 / levels)) / (D log 2).

    For continuous data (levels None) it is ``-log p(x) / (D log 2)``.
    """
    lv = _levels_of(info_or_levels)
    lp = np.asarray(log_prob, np.float64)
    vol = 0.0 if lv is None else dim * math.log(2.0 / lv)
    return -(lp + vol) / (dim * math.log(2.0))
