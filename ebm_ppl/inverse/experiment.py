"""One inverse-problem experiment end to end: observe truths, sample posteriors, score them.

Used by ``ebm-ppl solve`` and ``benchmarks/inverse.py``.
"""

from __future__ import annotations

import os
import time

import jax
import numpy as np

from ebm_ppl._jax_utils import rng_key_first
from ebm_ppl.inverse import metrics as M
from ebm_ppl.inverse.operators import image_shape
from ebm_ppl.inverse.posterior import sample_posterior
from ebm_ppl.inverse.reference import exact_posterior, gaussian_posterior
from ebm_ppl.plotting import atomic_savefig

__all__ = ["observe", "run", "save_panel"]


@rng_key_first(3)
def observe(rng_key, operator, noise_std: float, truths):
    """obs = A x + noise_std e for every truth (P, *data_shape) -> (P, M)."""
    clean = operator(truths)
    return clean + noise_std * jax.random.normal(rng_key, clean.shape, clean.dtype)


def _cpu_seconds():
    """CPU seconds (user + system, all threads) of this process so far."""
    import resource

    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


def _scores(prefix, mean, interval_fn, truths, data_range):
    out = {
        f"{prefix}psnr": float(np.mean(M.psnr(mean, truths, data_range))),
        f"{prefix}ssim": float(np.mean(M.ssim(mean, truths, data_range))),
    }
    for lv in (0.5, 0.9, 0.95):
        out[f"{prefix}coverage{int(round(lv * 100))}"] = M.coverage(*interval_fn(lv), truths)
    return out


@rng_key_first(4)
def run(
    rng_key,
    energy,
    operator,
    noise_std: float,
    truths,
    *,
    baseline=None,
    oracle=None,
    data_range: float = 2.0,
    sampler_kwargs: dict | None = None,
    out_dir: str | None = None,
    title: str = "",
    progress: bool = False,
    replicate_sampler_kwargs: dict | None = None,
):
    """Solve P problems with truths (P, *data_shape); return (metrics dict, arrays dict).

    ``baseline``: (mean, cov) of a Gaussian prior fitted to training data (adds ``baseline_*``).
    ``oracle``: a MixtureOracle whose data law is the true prior (adds ``exact_*`` and
    ``mean_error``: RMSE of the sampled posterior mean against the exact one, and
    ``mean_error_rel``: that RMSE over the RMS exact posterior std). With ``out_dir``, writes
    panel.png, calibration.png.

    ``replicate_sampler_kwargs`` (with ``oracle``): run the sampler a second time, independently
    (another rng_key, these kwargs), and add ``mc_error`` / ``mc_error_rel``: the Monte-Carlo error
    of one run's posterior mean, estimated as RMS(mean_1 - mean_2) / sqrt(2) (relative: over the
    RMS exact posterior std). ``mean_error`` near ``mc_error`` means no detectable bias."""
    truths = jax.numpy.asarray(truths, jax.numpy.float32)
    k_obs, k_post = jax.random.split(rng_key)
    obs = observe(k_obs, operator, noise_std, truths)
    t0, c0 = time.time(), _cpu_seconds()
    res = sample_posterior(k_post, energy, operator, noise_std, obs, progress=progress, **(sampler_kwargs or {}))
    samples = np.asarray(res.samples)
    seconds, cpu = time.time() - t0, _cpu_seconds() - c0
    truths_np = np.asarray(truths)
    quant_cache = {}

    def ebm_interval(lv):
        if lv not in quant_cache:
            quant_cache[lv] = np.quantile(samples, [(1 - lv) / 2, (1 + lv) / 2], axis=1)
        return quant_cache[lv][0], quant_cache[lv][1]

    P = int(truths.shape[0])
    out = {
        "num_problems": P,
        "noise_std": float(noise_std),
        "seconds": round(seconds, 1),
        "cpu_seconds": round(cpu, 1),
        "problems_per_minute": round(60.0 * P / seconds, 2),
    }
    S = res.info.get("nuts_draws_per_chain")
    if S and S >= 4:
        ess = M.effective_sample_size(samples, S)
        out["ess_per_problem"] = round(float(np.mean(ess)), 1)  # mean over pixels
        out["ess_min_pixel_median"] = round(float(np.median(ess.min(axis=1))), 1)
        out["effective_samples_per_second"] = round(float(np.mean(ess)) * P / seconds, 2)
    out.update(_scores("", res.mean, ebm_interval, truths_np, data_range))
    out.update({k: v for k, v in res.info.items() if np.ndim(v) == 0})
    curves = {"EBM posterior": M.calibration_curve(ebm_interval, truths_np)}
    arrays = {
        "truths": truths_np,
        "observations": np.asarray(obs),
        "mean": np.asarray(res.mean),
        "std": np.asarray(res.std),
        "samples": samples[:, :: max(1, samples.shape[1] // 16)],
    }
    if baseline is not None:
        prior_mean, prior_cov = baseline
        g = gaussian_posterior(prior_mean, prior_cov, operator, noise_std, obs)
        out.update(_scores("baseline_", g.mean, g.interval, truths_np, data_range))
        curves["Gaussian prior"] = M.calibration_curve(g.interval, truths_np)
        arrays["baseline_mean"] = np.asarray(g.mean)
    if oracle is not None:
        ex = exact_posterior(oracle, operator, noise_std, obs)
        out.update(_scores("exact_", ex.mean, ex.interval, truths_np, data_range))
        err = np.asarray(res.mean) - np.asarray(ex.mean)
        out["mean_error"] = float(np.sqrt(np.mean(err**2)))
        out["mean_error_rel"] = float(out["mean_error"] / np.sqrt(np.mean(np.asarray(ex.std) ** 2)))
        if replicate_sampler_kwargs is not None:
            rep = sample_posterior(
                jax.random.fold_in(k_post, 1),
                energy,
                operator,
                noise_std,
                obs,
                progress=progress,
                **replicate_sampler_kwargs,
            )
            diff = np.asarray(res.mean) - np.asarray(rep.mean)
            out["mc_error"] = float(np.sqrt(np.mean(diff**2) / 2))
            out["mc_error_rel"] = float(out["mc_error"] / np.sqrt(np.mean(np.asarray(ex.std) ** 2)))
            err2 = np.asarray(rep.mean) - np.asarray(ex.mean)
            out["replicate_mean_error_rel"] = float(
                np.sqrt(np.mean(err2**2)) / np.sqrt(np.mean(np.asarray(ex.std) ** 2))
            )
        S = res.info.get("nuts_draws_per_chain")
        if S and samples.shape[1] // S >= 2:  # chains as batches: MC error of the mean from between-chain spread
            C = samples.shape[1] // S
            chain_means = samples.reshape((samples.shape[0], C, S) + samples.shape[2:]).mean(axis=2)
            out["mc_error_chains"] = float(np.sqrt(np.mean(chain_means.var(axis=1, ddof=1) / C)))
            out["mc_error_chains_rel"] = float(out["mc_error_chains"] / np.sqrt(np.mean(np.asarray(ex.std) ** 2)))
        curves["exact posterior"] = M.calibration_curve(ex.interval, truths_np)
        arrays["exact_mean"] = np.asarray(ex.mean)
    out["calibration"] = {
        name: {"levels": lv.tolist(), "coverage": cov.round(4).tolist()} for name, (lv, cov) in curves.items()
    }
    if out_dir:
        os.makedirs(out_dir, exist_ok=True)
        out["calibration_png"] = M.save_calibration_plot(curves, os.path.join(out_dir, "calibration.png"), title)
        out["panel_png"] = save_panel(operator, arrays, os.path.join(out_dir, "panel.png"), title)
    return out, arrays


def save_panel(operator, arrays, path: str, title: str = "", max_rows: int = 6, num_samples: int = 3) -> str:
    """Rows: problems; columns: truth, observation, [baseline mean], posterior mean, std, samples."""
    import matplotlib
    from matplotlib.figure import Figure

    truths = arrays["truths"]
    shape = truths.shape[1:]
    h, w, c = image_shape(shape)
    rows = min(max_rows, truths.shape[0])
    obs_img = np.asarray(operator.display(arrays["observations"][:rows]))
    cols = [("truth", truths[:rows]), ("observation", obs_img)]
    if "baseline_mean" in arrays:
        cols.append(("Gaussian-prior mean", arrays["baseline_mean"][:rows]))
    if "exact_mean" in arrays:
        cols.append(("exact mean", arrays["exact_mean"][:rows]))
    cols.append(("posterior mean", arrays["mean"][:rows]))
    cols.append(("posterior std", arrays["std"][:rows]))
    for j in range(min(num_samples, arrays["samples"].shape[1])):
        cols.append((f"sample {j + 1}", arrays["samples"][:rows, j]))
    fig = Figure(figsize=(1.25 * len(cols), 1.3 * rows + 0.4))
    axes = fig.subplots(rows, len(cols), squeeze=False)
    cmap = matplotlib.colormaps["gray"].with_extremes(bad=(0.85, 0.3, 0.3))
    for j, (name, imgs) in enumerate(cols):
        for i in range(rows):
            img = np.asarray(imgs[i], np.float64).reshape(h, w, c)
            img = img[..., 0] if c == 1 else np.clip((img + 1) / 2, 0, 1)
            ax = axes[i, j]
            if name == "posterior std":
                ax.imshow(img, cmap="magma", vmin=0, vmax=max(float(np.nanmax(arrays["std"][:rows])), 1e-6))
            elif c == 1:
                ax.imshow(np.ma.masked_invalid(img), cmap=cmap, vmin=-1, vmax=1)
            else:
                ax.imshow(np.nan_to_num(img, nan=0.5))
            ax.set_xticks([])
            ax.set_yticks([])
            if i == 0:
                ax.set_title(name, fontsize=7)
    if title:
        fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    return atomic_savefig(fig, path, dpi=110)
