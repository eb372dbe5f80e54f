"""Sample-quality metrics: RBF-kernel MMD, a sampler's draws against exact reference samples
(:func:`evaluate_sampler`, the drifting paper's protocol), and for digits a Frechet distance in the features of a
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

# the classifier's file paths: importable, not in __all__ (they differ between installs)
from ebm_ppl.metrics.digits import CLASSIFIER_CARD as CLASSIFIER_CARD
from ebm_ppl.metrics.digits import CLASSIFIER_WEIGHTS as CLASSIFIER_WEIGHTS
from ebm_ppl.metrics.digits import (
    DIGITS_FEATURE_DIM,
    ClassHistogram,
    DigitsClassifier,
    class_histogram,
    digits_accuracy,
    digits_features,
    frechet_distance,
    gaussian_frechet,
    load_digits_classifier,
    predict_digits,
    train_digits_classifier,
)
from ebm_ppl.metrics.mmd import MMDResult, median_bandwidth, mmd, mmd2_null_expectation
from ebm_ppl.metrics.sample_quality import sample_quality_2d
from ebm_ppl.metrics.sampler_evaluation import evaluate as evaluate_sampler
from ebm_ppl.metrics.sampler_evaluation import reference_samples

__all__ = [
    "MMDResult",
    "mmd",
    "median_bandwidth",
    "mmd2_null_expectation",
    "sample_quality_2d",
    "evaluate_sampler",
    "reference_samples",
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
