"""Sample quality of 2-D samples against held-out data: MMD^2 as a ratio to the MMD^2 between two
independent data draws of the same sizes (:func:`sample_quality_2d`)."""

from __future__ import annotations

from ebm_ppl.metrics.mmd import _flat, median_bandwidth, mmd, mmd2_null_expectation

__all__ = ["sample_quality_2d"]


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
