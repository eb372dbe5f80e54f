"""Built-in data sets: ``digits``, ``patches``, ``photos`` (see :mod:`ebm_ppl.data.photos`) and the
2-D sets. ``load_builtin(name, split)`` / ``info_builtin(name)`` are what :func:`ebm_ppl.data.load`
and :func:`ebm_ppl.data.info` call for them."""

from __future__ import annotations

import functools
import math
import zlib

import numpy as np

from ebm_ppl.data import photos
from ebm_ppl.data._common import DataError, UnknownDatasetError, _centres

__all__ = ["names", "is_builtin", "sample_2d", "load_builtin", "info_builtin", "TWO_D_NAMES"]

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


_DESCRIPTIONS = {
    "digits": "scikit-learn load_digits: 1797 handwritten digits, 8x8 grey, 17 levels",
    "patches": "8x8 grey patches of scikit-learn's two sample photos (china, flower), 256 levels",
    "photos": "32x32 grey crops of natural photos from scikit-image and scikit-learn, split by photo "
    "(test: camera, astronaut; validation: coffee), 256 levels",
    "checkerboard": "2-D checkerboard, 8 squares of side 0.5 on [-1, 1]^2",
    "8gaussians": "2-D mixture of 8 Gaussians (std 0.0884) on a circle of radius 0.707",
    "moons": "2-D two moons (scikit-learn's construction, noise 0.1, scaled by 2/3)",
    "rings": "2-D four concentric rings of radii 0.25, 0.5, 0.75, 1 (noise std 0.02)",
    "swissroll": "2-D swiss roll (t cos t, t sin t)/14, t in [1.5pi, 4.5pi], noise std 0.5/14",
    "pinwheel": "2-D pinwheel with 5 arms (FFJORD's construction, scaled by 1/2)",
}


def names() -> list[str]:
    """The built-in data sets."""
    return ["digits", "patches", "photos", *TWO_D_NAMES]


def is_builtin(name: str) -> bool:
    return isinstance(name, str) and name in names()


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
    corners = []  # (photo, row, col) of the top-left corner; the patch lies inside [c0, c1)
    for p, img in enumerate(photos):
        rows = np.arange(img.shape[0] - k + 1)
        cols = np.arange(c0, c1 - k + 1)
        rr, cc = np.meshgrid(rows, cols, indexing="ij")
        corners.append(np.stack([np.full(rr.size, p), rr.ravel(), cc.ravel()], 1))
    positions = np.concatenate(corners)
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
        raise UnknownDatasetError(f"{name!r} is not a 2-D data set; 2-D data sets: {', '.join(TWO_D_NAMES)}")
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


def load_builtin(key: str, split: str) -> np.ndarray:
    """Split ``split`` of built-in data set ``key`` (float32 in [-1, 1])."""
    if key == "digits":
        return _digits(split)
    if key == "patches":
        return _patches(split)
    if key == "photos":
        return photos.crops(split)
    return _two_d(key, split)


def info_builtin(key: str) -> dict:
    """The set-specific facts of :func:`ebm_ppl.data.info` for built-in data set ``key``."""
    if key == "digits":
        d = dict(
            kind="image",
            data_shape=(8, 8, 1),
            levels=17,
            sizes=dict(DIGITS_SIZES),
            seed=DIGITS_SEED,
            source="sklearn.datasets.load_digits",
        )
    elif key == "patches":
        d = dict(
            kind="image",
            data_shape=(8, 8, 1),
            levels=256,
            sizes=dict(PATCHES_SIZES),
            seed=PATCHES_SEED,
            source="sklearn.datasets.load_sample_images (china.jpg, flower.jpg), grey = "
            f"{GREY_WEIGHTS[0]} R + {GREY_WEIGHTS[1]} G + {GREY_WEIGHTS[2]} B",
            columns=dict(PATCHES_COLUMNS),
        )
    elif key == "photos":
        d = dict(
            kind="image",
            data_shape=(photos.CROP_SIZE, photos.CROP_SIZE, 1),
            levels=256,
            sizes=dict(photos.CROP_SIZES),
            seed=photos.PHOTOS_SEED,
            source="skimage.data and sklearn load_sample_images, grey by BT.601 luma",
            photos={s: list(photos.PHOTO_SPLITS[s]) for s in photos.PHOTO_SPLITS},
        )
    else:
        d = dict(
            kind="2d",
            data_shape=(2,),
            levels=None,
            sizes=dict(TWO_D_SIZES),
            seed=TWO_D_SEED,
            source="synthetic (numpy PCG64, seeded per split)",
        )
    d["description"] = _DESCRIPTIONS[key]
    return d
