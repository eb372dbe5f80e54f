"""Chains -> ArviZ DataTree, convergence figures (R-hat, bulk/tail ESS) and plots.

* :func:`to_datatree`: draws (chain, draw, *data_shape) and per-draw statistics to an ArviZ 1.x
  DataTree with groups ``posterior`` (``x`` plus ``energy`` and the random ``projection`` s) and
  ``sample_stats`` (``energy``, ``acceptance_rate``, ``step_size``, ``diverging``, ``tree_depth``
  where given). ``energy`` is the log density of the draw (an unnormalised log p, as BlackJAX
  reports it).
* :func:`summarize`: rank-normalised split R-hat and bulk/tail ESS over every pixel (max R-hat, min
  ESS and their quantiles) and on the energy and projections.
* :func:`plot_report`: trace and rank plots (arviz-plots) of the energy and a few fixed random
  projections; :func:`write_report` writes those PNGs and a JSON summary (``ebm-ppl diagnose``).
"""

from __future__ import annotations

import json
import os

import numpy as np

from ebm_ppl.plotting import atomic_savefig

__all__ = ["to_datatree", "random_projections", "summarize", "plot_report", "write_report"]


def random_projections(samples, num: int = 4, seed: int = 0) -> np.ndarray:
    """(chain, draw, num) projections of the flattened draws on ``num`` fixed random unit vectors."""
    x = np.asarray(samples)
    flat = x.reshape(x.shape[:2] + (-1,))
    rng = np.random.default_rng(seed)
    dirs = rng.standard_normal((flat.shape[-1], num))
    dirs /= np.linalg.norm(dirs, axis=0, keepdims=True)
    return flat @ dirs


def to_datatree(samples, sample_stats: dict | None = None, *, energy=None, num_projections: int = 4, seed: int = 0):
    """ArviZ DataTree from draws of shape (chain, draw, *data_shape).

    ``sample_stats`` maps names to (chain, draw) arrays (``step_size`` may be (chain,)); the
    names ``log_density``/``energy``, ``acceptance_rate``, ``step_size``, ``is_divergent``/
    ``diverging`` and ``tree_depth`` are recognised. ``energy`` (chain, draw) may be given directly.
    """
    import arviz as az

    x = np.asarray(samples)
    if x.ndim < 2:
        raise ValueError(f"samples must have shape (chain, draw, ...), got {x.shape}")
    c, n = x.shape[:2]
    stats = {}
    for key, value in (sample_stats or {}).items():
        v = np.asarray(value)
        name = {"log_density": "energy", "is_divergent": "diverging"}.get(key, key)
        if v.shape == (c,):
            v = np.broadcast_to(v[:, None], (c, n))
        if v.shape[:2] != (c, n):
            raise ValueError(f"sample_stats[{key!r}] must have shape ({c}, {n}), got {v.shape}")
        stats[name] = v
    if energy is not None:
        stats["energy"] = np.asarray(energy)
    posterior = {"x": x, "projection": random_projections(x, num_projections, seed)}
    if "energy" in stats:
        posterior["energy"] = np.asarray(stats["energy"], np.float64)
    dims = {"x": [f"x_dim_{i}" for i in range(x.ndim - 2)], "projection": ["projection_dim"]}
    return az.from_dict({"posterior": posterior, "sample_stats": stats}, dims=dims)


def _values(ds, name):
    return np.asarray(ds[name].values, np.float64).reshape(-1)


def summarize(dt) -> dict:
    """R-hat and bulk/tail ESS over all pixels, on the energy and on the projections."""
    import arviz as az

    post = dt["posterior"]
    rhat = az.rhat(dt)
    ess_bulk = az.ess(dt, method="bulk")
    ess_tail = az.ess(dt, method="tail")
    px_r, px_b, px_t = _values(rhat, "x"), _values(ess_bulk, "x"), _values(ess_tail, "x")
    q = [0.0, 0.05, 0.5, 0.95, 1.0]
    out = {
        "num_chains": int(post.sizes["chain"]),
        "num_draws": int(post.sizes["draw"]),
        "pixels": {
            "max_rhat": float(np.nanmax(px_r)),
            "min_ess_bulk": float(np.nanmin(px_b)),
            "min_ess_tail": float(np.nanmin(px_t)),
            "rhat_quantiles": dict(zip(map(str, q), np.nanquantile(px_r, q).tolist())),
            "ess_bulk_quantiles": dict(zip(map(str, q), np.nanquantile(px_b, q).tolist())),
            "ess_tail_quantiles": dict(zip(map(str, q), np.nanquantile(px_t, q).tolist())),
            "fraction_rhat_above_1.01": float(np.mean(px_r > 1.01)),
        },
        "projections": {
            "rhat": _values(rhat, "projection").tolist(),
            "ess_bulk": _values(ess_bulk, "projection").tolist(),
        },
    }
    if "energy" in post:
        out["energy"] = {
            "rhat": float(_values(rhat, "energy")[0]),
            "ess_bulk": float(_values(ess_bulk, "energy")[0]),
            "ess_tail": float(_values(ess_tail, "energy")[0]),
        }
    if "sample_stats" in dt.children:
        ss = dt["sample_stats"]
        for name in ("acceptance_rate", "step_size", "tree_depth"):
            if name in ss:
                out[f"mean_{name}"] = float(np.mean(ss[name].values))
        if "diverging" in ss:
            out["divergences"] = int(np.sum(ss["diverging"].values))
    return out


def plot_report(dt, out_dir: str, prefix: str = "") -> list[str]:
    """Trace and rank plots of the energy and the random projections; returns the PNG paths."""
    import arviz_plots as azp

    os.makedirs(out_dir, exist_ok=True)
    names = [v for v in ("energy", "projection") if v in dt["posterior"]]
    paths = []
    for kind, fn in (("trace", azp.plot_trace), ("rank", azp.plot_rank)):
        pc = fn(dt, var_names=names, backend="matplotlib")
        # arviz-plots draws through pyplot: save and release only its own figure, never the user's
        figure = pc.viz["figure"].item()
        paths.append(atomic_savefig(figure, os.path.join(out_dir, f"{prefix}{kind}.png"), dpi=90))
    return paths


def write_report(dt, out_dir: str, extra: dict | None = None, prefix: str = "") -> dict:
    """Write ``{prefix}trace.png``, ``{prefix}rank.png`` and ``{prefix}diagnostics.json``; return the summary."""
    summary = summarize(dt)
    if extra:
        summary.update(extra)
    summary["plots"] = plot_report(dt, out_dir, prefix)
    path = os.path.join(out_dir, f"{prefix}diagnostics.json")
    with open(path, "w") as fh:
        json.dump(summary, fh, indent=2)
    summary["json"] = path
    return summary
