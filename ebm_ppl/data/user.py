"""User data: ``.npy`` / ``.npz`` files and folders of images, scaled to [-1, 1] and split with a
fixed seed (docs/data.md)."""

from __future__ import annotations

import functools
import os

import numpy as np

from ebm_ppl.data._common import DataError, _centres

__all__ = ["USER_SEED", "USER_FRACTIONS", "IMAGE_EXTENSIONS", "user_data"]

USER_SEED = 0
USER_FRACTIONS = (0.90, 0.05, 0.05)
IMAGE_EXTENSIONS = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


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
        raise DataError(f"{where}: expected (n, D), (n, H, W) or (n, H, W, C) data, got shape {arr.shape}")
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
                raise DataError(f"{where}: integer data in [{lo}, {hi}] is not 8-bit; pass levels=L for values 0..L-1")
            levels = 256
        if lo < 0 or hi > levels - 1:
            raise DataError(f"{where}: integer data in [{lo}, {hi}] does not fit levels={levels} (0..{levels - 1})")
        return _centres(arr, levels), levels
    if np.issubdtype(arr.dtype, np.floating):
        arr = arr.astype(np.float32)
        if not np.all(np.isfinite(arr)):
            raise DataError(f"{where}: the data contain NaN or infinite values")
        flo, fhi = float(arr.min()), float(arr.max())
        if flo < -1.0 - 1e-6 or fhi > 1.0 + 1e-6:
            raise DataError(
                f"{where}: float data must already lie in [-1, 1] (found [{flo:.4g}, {fhi:.4g}]); "
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


user_data = _user_data
