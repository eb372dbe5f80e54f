"""Sample-quality metrics: RBF-kernel MMD, and for digits a Frechet distance in the features of a
small shipped classifier, its predictions and the class histogram of samples.

MMD (:func:`mmd`): the unbiased U-statistic estimate of the *squared* maximum mean discrepancy
with the Gaussian (RBF) kernel ``k(a, b) = exp(-|a - b|^2 / (2 h^2))``,

    MMD^2_u = 1/(m(m-1)) sum_{i!=j} k(x_i, x_j) + 1/(n(n-1)) sum_{i!=j} k(y_i, y_j)
              - 2/(mn) sum_{i,j} k(x_i, y_j),

which has expectation exactly MMD^2 (so it is ~0, and can be negative, for two samples of the
same law). Bandwidth ``h`` defaults to the median heuristic: the median pairwise Euclidean
distance of the pooled sample (on at most 2000 points drawn with a fixed seed). Inputs are
flattened to (n, D); kernel sums are computed in float64 blocks, so 5000 x 5000 is cheap.

Digits classifier: an MLP 64 -> 256 -> 64 -> 10 (ReLU), trained on the digits *training* split
only (uniform dequantisation + Gaussian pixel noise augmentation) by
:func:`train_digits_classifier` / ``benchmarks/train_digits_classifier.py``; weights in
``ebm_ppl/assets/digits_classifier.msgpack`` and its figures in ``digits_classifier.json``.
:func:`digits_features` returns the 64-dimensional penultimate (post-ReLU) layer and
:func:`frechet_distance` the Frechet distance between Gaussians fitted to the features of two
sets, ``|mu1 - mu2|^2 + Tr(S1 + S2 - 2 (S1 S2)^(1/2))`` (as FID, on a different network).
Inputs are data-space images in [-1, 1] of shape (n, 8, 8, 1), (n, 8, 8) or (n, 64).
"""

from __future__ import annotations

import functools
import json
import os
import warnings
from typing import NamedTuple

import flax.linen as nn
import numpy as np

__all__ = [
    "MMDResult",
    "mmd",
    "median_bandwidth",
    "mmd2_null_expectation",
    "sample_quality_2d",
    "DigitsClassifier",
    "ClassHistogram",
    "load_digits_classifier",
    "train_digits_classifier",
    "digits_features",
    "predict_digits",
    "digits_accuracy",
    "class_histogram",
    "gaussian_frechet",
    "frechet_distance",
    "DIGITS_FEATURE_DIM",
]

ASSETS = os.path.join(os.path.dirname(__file__), "assets")
CLASSIFIER_WEIGHTS = os.path.join(ASSETS, "digits_classifier.msgpack")
CLASSIFIER_CARD = os.path.join(ASSETS, "digits_classifier.json")

DIGITS_HIDDEN = (256, 64)
DIGITS_FEATURE_DIM = DIGITS_HIDDEN[-1]


# --------------------------------------------------------------------------------------------
# MMD


class MMDResult(NamedTuple):
    """Unbiased squared-MMD estimate and the RBF bandwidth h it used (``float(result)`` is mmd2)."""

    mmd2: float
    bandwidth: float
    n_x: int
    n_y: int

    def __float__(self) -> float:
        return float(self.mmd2)


def _flat(x, where: str) -> np.ndarray:
    a = np.asarray(x, np.float64)
    if a.ndim == 1:
        raise ValueError(f"{where}: expected samples of shape (n, ...), got shape {a.shape}")
    a = a.reshape(a.shape[0], -1)
    if a.shape[0] < 2:
        raise ValueError(f"{where}: need at least 2 samples, got {a.shape[0]}")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{where}: samples contain NaN or infinite values")
    return a


def _sq_dists(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    d = (a * a).sum(1)[:, None] + (b * b).sum(1)[None, :] - 2.0 * a @ b.T
    return np.maximum(d, 0.0)


def median_bandwidth(x, y=None, *, max_points: int = 2000, seed: int = 0) -> float:
    """Median heuristic: median pairwise Euclidean distance of the pooled sample (distinct pairs)."""
    z = _flat(x, "x") if y is None else np.concatenate([_flat(x, "x"), _flat(y, "y")])
    if len(z) > max_points:
        z = z[np.random.default_rng(seed).choice(len(z), max_points, replace=False)]
    d = _sq_dists(z, z)[np.triu_indices(len(z), 1)]
    h = float(np.sqrt(np.median(d)))
    if not h > 0:
        raise ValueError("median heuristic bandwidth is 0 (most samples coincide); pass bandwidth=")
    return h


def _kernel_sum(a, b, gamma, block, exclude_diagonal=False) -> float:
    total = 0.0
    for i in range(0, len(a), block):
        k = np.exp(-gamma * _sq_dists(a[i : i + block], b))
        if exclude_diagonal:
            rows = np.arange(k.shape[0])
            k[rows, rows + i] = 0.0
        total += float(k.sum())
    return total


def mmd(x, y, bandwidth: float | None = None, *, unbiased: bool = True, block: int = 1024) -> MMDResult:
    """Unbiased estimate of the squared RBF-kernel MMD between samples ``x`` (m, ...) and ``y`` (n, ...).

    ``k(a, b) = exp(-|a - b|^2 / (2 h^2))`` with ``h = bandwidth``, or the median heuristic on the
    pooled sample when None (see :func:`median_bandwidth`). Returns :class:`MMDResult`
    ``(mmd2, bandwidth, n_x, n_y)``; ``mmd2`` is a U-statistic, unbiased, so it may be slightly
    negative when the laws agree (its standard deviation is O(1/n) then). ``unbiased=False``
    gives the biased V-statistic instead (diagonal terms kept, divided by m^2 and n^2): always
    >= 0, with expectation MMD^2 + O(1/m + 1/n), handy for ratios such as "model vs held-out
    within 2x of data vs held-out".
    """
    a, b = _flat(x, "x"), _flat(y, "y")
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and y have different dimensions: {a.shape[1]} and {b.shape[1]}")
    h = median_bandwidth(a, b) if bandwidth is None else float(bandwidth)
    if not h > 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    gamma = 1.0 / (2.0 * h * h)
    m, n = len(a), len(b)
    if unbiased:
        kxx = _kernel_sum(a, a, gamma, block, exclude_diagonal=True) / (m * (m - 1))
        kyy = _kernel_sum(b, b, gamma, block, exclude_diagonal=True) / (n * (n - 1))
    else:
        kxx = _kernel_sum(a, a, gamma, block) / (m * m)
        kyy = _kernel_sum(b, b, gamma, block) / (n * n)
    kxy = _kernel_sum(a, b, gamma, block) / (m * n)
    return MMDResult(float(kxx + kyy - 2.0 * kxy), h, m, n)


def mmd2_null_expectation(
    reference,
    m: int,
    n: int | None = None,
    bandwidth: float | None = None,
    *,
    max_points: int = 4000,
    block: int = 1024,
) -> float:
    """Expected biased (V-statistic) MMD^2 between two independent samples of sizes ``m`` and ``n``
    (default ``m``) of one law, estimated from draws ``reference`` of that law:

        E[MMD^2_b] = (1/m + 1/n) (k(0) - E k(x, x')) = (1/m + 1/n) (1 - E k(x, x')),

    with E k(x, x') (x, x' independent) by the U-statistic over ``reference`` (its first
    ``max_points`` rows). This is the value "MMD between two independent data draws of the same
    size" fluctuates around: at 2000 vs 2000 on 8gaussians one draw's V-statistic scatters by
    about its own size at the median bandwidth (docs/metrics.md), so ratios use this expectation.
    ``bandwidth`` None: the median heuristic on ``reference``.
    """
    r = _flat(reference, "reference")[: int(max_points)]
    n = m if n is None else n
    if m < 1 or n < 1:
        raise ValueError(f"sample sizes must be >= 1, got m={m}, n={n}")
    h = median_bandwidth(r) if bandwidth is None else float(bandwidth)
    if not h > 0:
        raise ValueError(f"bandwidth must be > 0, got {bandwidth}")
    N = len(r)
    ek = _kernel_sum(r, r, 1.0 / (2.0 * h * h), block, exclude_diagonal=True) / (N * (N - 1))
    return float((1.0 / m + 1.0 / n) * (1.0 - ek))


def _bandwidth_tag(h) -> str:
    return "median" if h is None else f"h{float(h):g}"


def sample_quality_2d(
    samples, name: str | None = None, *, held_out=None, reference=None, n: int = 2000, bandwidths=(None, 0.1)
) -> dict:
    """Sample quality of 2-D samples (data space) against held-out data, as a ratio to the null.

    ``held_out`` (default: the first ``n`` test points of the built-in 2-D set ``name``) is
    compared with the first ``n`` samples; ``reference`` (default: ``name``'s validation split) is
    a second, independent draw of the data. For each bandwidth in ``bandwidths`` (None: the median
    heuristic on the data, the same h for every figure), with RBF kernels and the biased
    V-statistic (>= 0; see :func:`mmd`):

    * ``mmd2_model_heldout``: MMD^2(samples[:n], held_out);
    * ``mmd2_data_data``: MMD^2(reference[:n], held_out), one draw of the null;
    * ``mmd2_null``: its expectation (1/m + 1/n)(1 - E k) (:func:`mmd2_null_expectation`, E k
      over all of ``reference``), the noise-free null of the same sizes;
    * ``mmd_ratio``: mmd2_model_heldout / mmd2_null (1 for a perfect sampler, in expectation);
      ``mmd_ratio_draw``: mmd2_model_heldout / mmd2_data_data.

    Returns ``{tag: {...figures, "bandwidth": h}}`` with tags ``"median"``, ``"h0.1"``, ... plus
    ``"n_samples"`` and ``"n_held_out"``.
    """
    if held_out is None or reference is None:
        if name is None:
            raise ValueError("sample_quality_2d needs a data set name or both held_out= and reference=")
        from ebm_ppl import data as data_mod

        if held_out is None:
            held_out = data_mod.load(name, "test")[:n]
        if reference is None:
            reference = data_mod.load(name, "validation")
    x = _flat(samples, "samples")[:n]
    ho = _flat(held_out, "held_out")[:n]
    ref = _flat(reference, "reference")
    if x.shape[1] != ho.shape[1] or ref.shape[1] != ho.shape[1]:
        raise ValueError(f"dimensions differ: samples {x.shape[1]}, held_out {ho.shape[1]}, reference {ref.shape[1]}")
    out: dict = {"n_samples": len(x), "n_held_out": len(ho)}
    for bw in bandwidths:
        h = median_bandwidth(ref[: len(ho)], ho) if bw is None else float(bw)
        model = mmd(x, ho, h, unbiased=False).mmd2
        draw = mmd(ref[: len(ho)], ho, h, unbiased=False).mmd2
        null = mmd2_null_expectation(ref, len(x), len(ho), h)
        out[_bandwidth_tag(bw)] = {
            "bandwidth": h,
            "mmd2_model_heldout": model,
            "mmd2_data_data": draw,
            "mmd2_null": null,
            "mmd_ratio": model / null,
            "mmd_ratio_draw": model / draw if draw > 0 else float("inf"),
        }
    return out


# --------------------------------------------------------------------------------------------
# the digits classifier


class _DigitsMLP(nn.Module):
    """MLP on flattened 8x8 digits; returns (logits, penultimate features)."""

    hidden: tuple = DIGITS_HIDDEN
    classes: int = 10

    @nn.compact
    def __call__(self, x):
        h = x.reshape((x.shape[0], -1))
        for i, w in enumerate(self.hidden):
            h = nn.relu(nn.Dense(w, name=f"dense{i}")(h))
        return nn.Dense(self.classes, name="head")(h), h


def _mlp_module():
    return _DigitsMLP()


def _as_digits(x, where: str = "x") -> np.ndarray:
    a = np.asarray(x, np.float32)
    if a.ndim == 2 and a.shape[1] == 64:
        pass
    elif a.ndim == 3 and a.shape[1:] == (8, 8):
        pass
    elif a.ndim == 4 and a.shape[1:] == (8, 8, 1):
        pass
    else:
        raise ValueError(f"{where}: expected digits of shape (n, 8, 8, 1), (n, 8, 8) or (n, 64), got {a.shape}")
    if a.shape[0] == 0:
        raise ValueError(f"{where}: no samples")
    if not np.all(np.isfinite(a)):
        raise ValueError(f"{where}: samples contain NaN or infinite values")
    return a.reshape(a.shape[0], 64)


class DigitsClassifier(NamedTuple):
    """The loaded classifier: its parameters and card (figures from training)."""

    params: dict
    card: dict

    def logits_and_features(self, x, batch: int = 4096):
        x = _as_digits(x)
        outs = [_apply(self.params, x[i : i + batch]) for i in range(0, len(x), batch)]
        return np.concatenate([o[0] for o in outs]), np.concatenate([o[1] for o in outs])


@functools.lru_cache(maxsize=1)
def _jitted_apply():
    import jax

    module = _mlp_module()
    return jax.jit(lambda p, x: module.apply({"params": p}, x))


def _apply(params, x):
    logits, feats = _jitted_apply()(params, x)
    return np.asarray(logits, np.float64), np.asarray(feats, np.float64)


@functools.lru_cache(maxsize=1)
def load_digits_classifier(path: str | None = None) -> DigitsClassifier:
    """Load the shipped digits classifier (or one written by :func:`train_digits_classifier`)."""
    from flax import serialization

    path = path or CLASSIFIER_WEIGHTS
    card_path = os.path.splitext(path)[0] + ".json"
    if not os.path.exists(path):
        raise FileNotFoundError(
            f"digits classifier weights not found: {path} (rebuild with benchmarks/train_digits_classifier.py)"
        )
    with open(path, "rb") as f:
        blob = f.read()
    try:
        params = serialization.msgpack_restore(blob)
    except Exception as e:  # noqa: BLE001
        raise ValueError(f"{path}: not a valid classifier weight file ({e})") from None
    card = {}
    if os.path.exists(card_path):
        with open(card_path) as f:
            card = json.load(f)
    return DigitsClassifier(params, card)


def train_digits_classifier(
    *,
    steps: int = 4000,
    batch_size: int = 128,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-4,
    noise_std: float = 0.15,
    seed: int = 0,
    out: str | None = None,
    progress: bool = False,
) -> tuple[DigitsClassifier, dict]:
    """Train the digits MLP on the digits training split (deterministic given ``seed``).

    Augmentation, per example: uniform dequantisation within the bin, then Gaussian pixel noise of
    standard deviation ``s ~ U(0, noise_std)``, so samples that carry sampler noise classify well.
    AdamW with cosine decay. Writes ``out`` (``.msgpack``) and its ``.json`` card when given.
    Returns the classifier and the card (train/validation/test accuracy, settings).
    """
    import jax
    import jax.numpy as jnp
    import optax
    from flax import serialization

    from ebm_ppl import data

    lv = data.info("digits")["levels"]
    w = 2.0 / lv
    xtr = jnp.asarray(data.load("digits", "train").reshape(-1, 64))
    ytr = jnp.asarray(data.labels("digits", "train"))
    module = _mlp_module()
    key = jax.random.key(seed)
    key, k0 = jax.random.split(key)
    params = module.init(k0, xtr[:1])["params"]
    sched = optax.cosine_decay_schedule(learning_rate, steps)
    opt = optax.adamw(sched, weight_decay=weight_decay)
    opt_state = opt.init(params)

    def loss_fn(p, x, y):
        logits, _ = module.apply({"params": p}, x)
        return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    @jax.jit
    def step(p, s, k):
        k1, k2, k3, k4 = jax.random.split(k, 4)
        idx = jax.random.randint(k1, (batch_size,), 0, xtr.shape[0])
        x = xtr[idx] + (jax.random.uniform(k2, (batch_size, 64)) - 0.5) * w
        sd = jax.random.uniform(k3, (batch_size, 1)) * noise_std
        x = x + sd * jax.random.normal(k4, (batch_size, 64))
        loss, g = jax.value_and_grad(loss_fn)(p, x, ytr[idx])
        upd, s = opt.update(g, s, p)
        return optax.apply_updates(p, upd), s, loss

    it = range(steps)
    if progress:
        from tqdm import tqdm

        it = tqdm(it, desc="digits classifier")
    for _ in it:
        key, k = jax.random.split(key)
        params, opt_state, loss = step(params, opt_state, k)

    params = jax.tree_util.tree_map(lambda a: np.asarray(a, np.float32), params)
    clf = DigitsClassifier(params, {})
    card = {
        "architecture": f"MLP 64 -> {' -> '.join(map(str, DIGITS_HIDDEN))} -> 10, ReLU",
        "feature_dim": DIGITS_FEATURE_DIM,
        "trained_on": "digits train split (1200 images, ebm_ppl.data split seed 0)",
        "augmentation": f"uniform dequantisation (bin width 2/{lv}) + Gaussian noise std ~ U(0, {noise_std})",
        "steps": steps,
        "batch_size": batch_size,
        "optimizer": f"adamw lr {learning_rate} cosine decay, weight decay {weight_decay}",
        "seed": seed,
        "final_loss": float(loss),
    }
    for split in ("train", "validation", "test"):
        card[f"{split}_accuracy"] = digits_accuracy(split, classifier=clf)
    # Robustness: test split dequantised and with Gaussian pixel noise (fixed seed).
    xte = data.load("digits", "test").reshape(-1, 64)
    yte = data.labels("digits", "test")
    rng = np.random.default_rng(1)
    for sd in (0.05, 0.1, 0.2):
        xn = xte + (rng.uniform(size=xte.shape) - 0.5) * w + sd * rng.normal(size=xte.shape)
        card[f"test_accuracy_dequantised_noise_{sd}"] = float(np.mean(predict_digits(xn, classifier=clf) == yte))
    clf = DigitsClassifier(params, card)
    if out is not None:
        os.makedirs(os.path.dirname(os.path.abspath(out)), exist_ok=True)
        tmp = out + ".tmp"
        with open(tmp, "wb") as fb:
            fb.write(serialization.msgpack_serialize(params))
        os.replace(tmp, out)
        card_path = os.path.splitext(out)[0] + ".json"
        with open(card_path + ".tmp", "w") as f:
            json.dump(card, f, indent=2)
            f.write("\n")
        os.replace(card_path + ".tmp", card_path)
    return clf, card


def _clf(classifier):
    return load_digits_classifier() if classifier is None else classifier


def digits_features(x, *, classifier: DigitsClassifier | None = None) -> np.ndarray:
    """Penultimate-layer features (n, 64), float64, of digits images in [-1, 1]."""
    return _clf(classifier).logits_and_features(x)[1]


def predict_digits(x, *, classifier: DigitsClassifier | None = None, return_probs: bool = False):
    """Predicted classes (int64, (n,)) of digits images in [-1, 1]; with ``return_probs`` also the softmax."""
    logits = _clf(classifier).logits_and_features(x)[0]
    pred = logits.argmax(1).astype(np.int64)
    if not return_probs:
        return pred
    z = logits - logits.max(1, keepdims=True)
    p = np.exp(z)
    return pred, p / p.sum(1, keepdims=True)


def digits_accuracy(split: str = "test", *, classifier: DigitsClassifier | None = None) -> float:
    """Accuracy of the classifier on a digits split (bin centres, no noise)."""
    from ebm_ppl import data

    pred = predict_digits(data.load("digits", split), classifier=classifier)
    return float(np.mean(pred == data.labels("digits", split)))


class ClassHistogram(NamedTuple):
    """Predicted-class counts and proportions of a set of digits samples."""

    counts: np.ndarray  # (10,) int64
    proportions: np.ndarray  # (10,) float64
    entropy_bits: float  # entropy of the proportions (log2 10 = 3.32 when balanced)


def class_histogram(x, *, classifier: DigitsClassifier | None = None) -> ClassHistogram:
    """How many samples the classifier assigns to each digit 0..9."""
    pred = predict_digits(x, classifier=classifier)
    counts = np.bincount(pred, minlength=10).astype(np.int64)
    p = counts / counts.sum()
    nz = p[p > 0]
    return ClassHistogram(counts, p, float(-(nz * np.log2(nz)).sum()))


def gaussian_frechet(mu1, cov1, mu2, cov2) -> float:
    """Frechet (2-Wasserstein^2) distance between N(mu1, cov1) and N(mu2, cov2)."""
    from scipy import linalg

    mu1, mu2 = np.asarray(mu1, np.float64), np.asarray(mu2, np.float64)
    cov1, cov2 = np.atleast_2d(cov1).astype(np.float64), np.atleast_2d(cov2).astype(np.float64)
    with warnings.catch_warnings():  # singular products (dead features) are expected and harmless
        warnings.simplefilter("ignore", linalg.LinAlgWarning)
        covmean = linalg.sqrtm(cov1 @ cov2)
        if not np.all(np.isfinite(covmean)):
            eps = 1e-6 * np.eye(len(cov1))
            covmean = linalg.sqrtm((cov1 + eps) @ (cov2 + eps))
    covmean = np.real(covmean)
    d = float(((mu1 - mu2) ** 2).sum() + np.trace(cov1) + np.trace(cov2) - 2.0 * np.trace(covmean))
    return max(d, 0.0)


def frechet_distance(x, y, *, classifier: DigitsClassifier | None = None) -> float:
    """Frechet distance between digits sets ``x`` and ``y`` in the classifier's 64-d features.

    ``|mu_x - mu_y|^2 + Tr(S_x + S_y - 2 (S_x S_y)^(1/2))`` with sample means and covariances
    (``np.cov``, ddof 1). Like FID it is biased upwards for small sets; compare figures computed
    with the same sample sizes (docs/metrics.md gives reference values).
    """
    fx = digits_features(x, classifier=classifier)
    fy = digits_features(y, classifier=classifier)
    if len(fx) < 2 or len(fy) < 2:
        raise ValueError("frechet_distance needs at least 2 samples in each set")
    return gaussian_frechet(fx.mean(0), np.cov(fx, rowvar=False), fy.mean(0), np.cov(fy, rowvar=False))
