"""The shipped digits classifier (MLP 64 -> 256 -> 64 -> 10) and what is measured in its features:
predictions, accuracy, class histograms and the Frechet distance between two sets of images."""

from __future__ import annotations

import functools
import json
import os
import warnings
from typing import NamedTuple

import flax.linen as nn
import numpy as np

from ebm_ppl import data

ASSETS = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets")
CLASSIFIER_WEIGHTS = os.path.join(ASSETS, "digits_classifier.msgpack")
CLASSIFIER_CARD = os.path.join(ASSETS, "digits_classifier.json")

DIGITS_HIDDEN = (256, 64)
DIGITS_FEATURE_DIM = DIGITS_HIDDEN[-1]


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
