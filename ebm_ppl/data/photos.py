"""The ``photos`` data set: grey natural photographs that ship inside scikit-image and scikit-learn.

Split **by photo**, never by crop (:data:`PHOTO_SPLITS`): ``camera`` and ``astronaut`` are the test
photos (the classic restoration images), ``coffee`` is validation, the rest train. Colour photos
become grey by ITU-R BT.601 luma (0.299 R + 0.587 G + 0.114 B, rounded to 0..255); 256 levels,
bin centres ``x = (v + 0.5) * 2 / 256 - 1`` in [-1, 1] as every quantised set here.

* :func:`photo` one whole photo (H, W) uint8; :func:`photo_names` the photos of a split;
* :func:`crops` ``n`` square crops of side ``size`` from a split's photos (H, W, 1 in [-1, 1]),
  drawn with a fixed seed per (split, size, n): photo chosen in proportion to its number of
  crop positions, position uniform; training crops also get a random flip / 90-degree rotation.
* :func:`centre_crop` the centred ``size`` x ``size`` window of a photo.

``ebm_ppl.data.load("photos", split)`` gives :data:`CROP_SIZE` x :data:`CROP_SIZE` crops
(:data:`CROP_SIZES` per split). The density benchmark draws its 8x8 patches and 32x32 crops with
:func:`crops` from the test photos (``seed`` :data:`PHOTOS_SEED`, see benchmarks/photo_density.py).

The older ``patches`` set (8x8 patches of scikit-learn's china and flower, split by column
region inside each photo) stays as it was; china and flower are training photos here.
"""

from __future__ import annotations

import functools
import zlib

import numpy as np

__all__ = [
    "PHOTO_SPLITS",
    "PHOTOS_SEED",
    "CROP_SIZE",
    "CROP_SIZES",
    "photo_names",
    "photo",
    "crops",
    "centre_crop",
    "to_data",
    "from_data",
]

GREY_WEIGHTS = (0.299, 0.587, 0.114)  # ITU-R BT.601 luma

#: split -> photos; scikit-image names, ``motorcycle_left/right`` from ``stereo_motorcycle``,
#: ``china`` / ``flower`` from scikit-learn's ``load_sample_images``.
PHOTO_SPLITS = {
    "train": (
        "chelsea",
        "rocket",
        "motorcycle_left",
        "motorcycle_right",
        "brick",
        "grass",
        "gravel",
        "coins",
        "moon",
        "china",
        "flower",
    ),
    "validation": ("coffee",),
    "test": ("camera", "astronaut"),
}
PHOTOS_SEED = 0
CROP_SIZE = 32
CROP_SIZES = {"train": 20000, "validation": 2000, "test": 2000}


def photo_names(split: str) -> tuple[str, ...]:
    """The photos of ``split`` (``train``, ``validation``, ``test`` or ``all``)."""
    if split == "all":
        return tuple(n for s in ("train", "validation", "test") for n in PHOTO_SPLITS[s])
    if split not in PHOTO_SPLITS:
        raise ValueError(f"unknown split {split!r}; splits are train, validation, test, all")
    return PHOTO_SPLITS[split]


def _grey(img: np.ndarray) -> np.ndarray:
    if img.ndim == 3:
        img = img[..., :3].astype(np.float64) @ np.asarray(GREY_WEIGHTS)
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


@functools.cache
def photo(name: str) -> np.ndarray:
    """Photo ``name`` in grey, (H, W) uint8 (read-only)."""
    import skimage.data as skd

    if name in ("motorcycle_left", "motorcycle_right"):
        left, right, _ = skd.stereo_motorcycle()
        img = left if name == "motorcycle_left" else right
    elif name in ("china", "flower"):
        from sklearn.datasets import load_sample_images

        imgs = load_sample_images()
        img = imgs.images[[f.rsplit("/", 1)[-1].split(".")[0] for f in imgs.filenames].index(name)]
    elif name in photo_names("all"):
        img = getattr(skd, name)()
    else:
        raise ValueError(f"unknown photo {name!r}; photos: {', '.join(photo_names('all'))}")
    out = _grey(np.asarray(img))
    out.setflags(write=False)
    return out


def to_data(raw: np.ndarray) -> np.ndarray:
    """uint8 grey levels 0..255 -> bin centres in [-1, 1] (float32)."""
    return ((np.asarray(raw, np.float64) + 0.5) * (2.0 / 256) - 1.0).astype(np.float32)


def from_data(x: np.ndarray) -> np.ndarray:
    """[-1, 1] values -> uint8 grey levels (the bin each value falls in, clipped)."""
    v = np.floor((np.asarray(x, np.float64) + 1.0) * 128.0)
    return np.clip(v, 0, 255).astype(np.uint8)


def centre_crop(name: str, size: int | None = 256) -> np.ndarray:
    """The centred ``size`` x ``size`` window of photo ``name`` (uint8); ``None``: the whole photo."""
    img = photo(name)
    if size is None:
        return np.array(img)
    h, w = img.shape
    if size > min(h, w):
        raise ValueError(f"photo {name!r} is {h}x{w}, smaller than the crop {size}")
    r, c = (h - size) // 2, (w - size) // 2
    return np.array(img[r : r + size, c : c + size])


@functools.lru_cache(maxsize=8)
def _crops_raw(split: str, size: int, n: int, seed: int) -> np.ndarray:
    names = photo_names(split)
    imgs = [photo(p) for p in names]
    counts = np.array([(im.shape[0] - size + 1) * (im.shape[1] - size + 1) for im in imgs], np.float64)
    if np.any(counts <= 0):
        raise ValueError(f"crop size {size} is larger than a photo of split {split!r}")
    rng = np.random.default_rng([seed, zlib.crc32(f"{split}:{size}".encode())])
    which = rng.choice(len(imgs), size=n, p=counts / counts.sum())
    out = np.empty((n, size, size), np.uint8)
    for i, p in enumerate(which):
        h, w = imgs[p].shape
        r, c = rng.integers(0, h - size + 1), rng.integers(0, w - size + 1)
        out[i] = imgs[p][r : r + size, c : c + size]
    if split == "train":  # dihedral augmentation: natural-image statistics are nearly invariant to it
        rot, flip = rng.integers(0, 4, n), rng.integers(0, 2, n)
        for i in range(n):
            a = np.rot90(out[i], rot[i])
            out[i] = a[:, ::-1] if flip[i] else a
    return out


def crops(split: str, size: int = CROP_SIZE, n: int | None = None, seed: int = PHOTOS_SEED) -> np.ndarray:
    """``n`` crops of side ``size`` from the photos of ``split``, float32 (n, size, size, 1) in [-1, 1]
    (bin centres; dequantise with ``ebm_ppl.data.dequantize(key, x, 256)``)."""
    if split == "all":
        return np.concatenate([crops(s, size, n, seed) for s in ("train", "validation", "test")])
    n = CROP_SIZES[split] if n is None else int(n)
    return to_data(_crops_raw(split, int(size), n, int(seed)))[..., None]
