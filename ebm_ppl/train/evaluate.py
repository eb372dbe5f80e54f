"""Sample quality of a trained 2-D model, as ``ebm-ppl train`` reports it and the zoo cards show it.

:func:`model_sample_quality_2d` draws ``n`` progressive samples with the checkpoint's own sampler
settings (the preset's ``sample`` block, stored as ``sampling`` in ``config.json``) and compares
them with the first ``n`` test points of the data set by :func:`ebm_ppl.metrics.sample_quality_2d`
(biased RBF MMD^2 at the median bandwidth and at h = 0.1, each as a ratio to the expected MMD^2
between two independent data draws of the same sizes). See docs/training.md.
"""

from __future__ import annotations

import jax
import numpy as np

from ebm_ppl import checkpoint, data, metrics
from ebm_ppl.sampling import progressive
from ebm_ppl.train.loop import sampling_options

__all__ = ["model_sample_quality_2d", "sample_quality_2d", "flat_figures"]


def model_sample_quality_2d(
    energy,
    sample_cfg: dict | None,
    name: str,
    *,
    n: int = 2000,
    key=0,
    bandwidths=(None, 0.1),
    scatter: str | None = None,
    title: str | None = None,
):
    """``(samples (n, 2), figures)`` for the energy (a checkpoint path or a loaded energy).

    ``sample_cfg``: the preset's ``sample`` block (or the checkpoint's ``sampling`` entry); when
    ``energy`` is a path and ``sample_cfg`` is None, the checkpoint's. ``key``: int seed or JAX key
    of the sampler. ``scatter``: write a PNG of the samples over the held-out points there.
    """
    if isinstance(energy, str):
        if sample_cfg is None:
            sample_cfg = checkpoint.read_config(energy).get("sampling") or {}
        energy = checkpoint.load(energy)
    key = jax.random.key(key) if isinstance(key, (int, np.integer)) else key
    opts = sampling_options(energy.schedule, sample_cfg or {})
    x = np.asarray(progressive.sample(key, energy, int(n), **opts))
    figures = metrics.sample_quality_2d(x, name, n=int(n), bandwidths=bandwidths)
    if scatter is not None:
        from ebm_ppl.plotting import save_scatter

        q = figures.get("h0.1") or next(v for v in figures.values() if isinstance(v, dict))
        label = title or f"{name}: {len(x)} progressive samples"
        save_scatter(
            x,
            scatter,
            title=f"{label}\nMMD ratio {q['mmd_ratio']:.2f} (h={q['bandwidth']:g})",
            reference=data.load(name, "test")[: int(n)],
        )
    return x, figures


def sample_quality_2d(*args, **kwargs):
    """Deprecated name of :func:`model_sample_quality_2d` (``ebm_ppl.metrics.sample_quality_2d``
    scores given samples; this draws them from a model first)."""
    from ebm_ppl._jax_utils import warn

    warn(
        "ebm_ppl.train.evaluate.sample_quality_2d is now model_sample_quality_2d "
        "(metrics.sample_quality_2d scores samples you give it); the old name goes in the next release",
        DeprecationWarning,
    )
    return model_sample_quality_2d(*args, **kwargs)


def flat_figures(figures: dict) -> dict:
    """``{"median": {...}, "h0.1": {...}}`` -> ``{"mmd_ratio_median": ..., "mmd_ratio_h0.1": ...}``
    (for JSON one-liners and cards)."""
    out = {}
    for tag, val in figures.items():
        if isinstance(val, dict):
            for k, v in val.items():
                out[f"{k if k != 'bandwidth' else 'mmd_bandwidth'}_{tag}"] = v
        else:
            out[tag] = val
    return out
