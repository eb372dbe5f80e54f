"""Digits long-run must-show (Gao et al. 2021, section 4.2 / Fig. 7-8) on a shipped checkpoint.

Per level one normal-approximation draw, then S - 1 MH-corrected HMC transitions (2 leapfrog
steps) with per-level step sizes tuned on a pilot descent to acceptance 0.75 (range [0.6, 0.9]).
The same tuned steps and the same key are used at every S in ``--steps`` (1, 10, 100 steps per
level). For each S: the classifier Frechet distance to the digits test split (``ebm_ppl.data``
map x = (v + 0.5) 2/17 - 1, 360 images; ``ebm_ppl.metrics.frechet_distance``, the shipped digits
classifier's 64-d features; samples clipped to [-1, 1] as in the model cards, the raw figure is
reported too), the per-level acceptance and a sample grid. Pass if FD(S_max) <= 1.5 FD(1).

Also writes the Fig. 7 left/centre PNG (step size and acceptance per level) and an
``ebm-ppl diagnose``-style R-hat/ESS report (trace/rank PNGs + JSON) of the S_max samples laid out
as 4 chains of independent descents, with the level-0 energy f(y_0, 0).

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
    .venv/bin/python benchmarks/long_run_digits.py --ckpt models/digits-dsm --n 360
    # -> benchmarks/results/long_run_digits-dsm.json and benchmarks/results/long_run_digits-dsm/*.png
"""

import argparse
import json
import os
import time

import jax
import numpy as np
from tqdm import tqdm

from ebm_ppl import data, diagnostics, metrics
from ebm_ppl.checkpoint import load
from ebm_ppl.plotting import plot_step_sizes, save_image_grid
from ebm_ppl.sampling import long_run


def _figures(x, test):
    x = np.asarray(x, np.float64)
    finite = np.all(np.isfinite(x.reshape(len(x), -1)), axis=1)
    shown = np.clip(np.nan_to_num(x, nan=0.0), -1.0, 1.0)
    out = {
        "frechet_distance": float(metrics.frechet_distance(shown, test)),
        "frechet_distance_raw": float(metrics.frechet_distance(x[finite], test)) if finite.sum() > 2 else float("nan"),
        "fraction_finite": float(finite.mean()),
        "fraction_pixels_outside_1.2": float(np.mean(np.abs(x[finite]) > 1.2)) if finite.any() else 1.0,
        "pixel_mean": float(np.nanmean(x)),
        "pixel_std": float(np.nanstd(x)),
        "class_proportions": np.round(np.asarray(metrics.class_histogram(shown).proportions), 3).tolist(),
    }
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", default="models/digits-dsm")
    p.add_argument("--n", type=int, default=360, help="samples (360 = the test split size, as in the model cards)")
    p.add_argument("--steps", type=int, nargs="*", default=[1, 10, 100], help="steps per level S")
    p.add_argument("--sampler", default="hmc", choices=["hmc", "nuts"])
    p.add_argument(
        "--start",
        default="normal",
        choices=list(long_run.STARTS),
        help="first draw per level: normal approximation (the paper) or the model's Langevin short run",
    )
    p.add_argument("--start-steps", type=int, default=30, help="Langevin steps of --start langevin")
    p.add_argument("--start-step-scale", type=float, default=1.0, help="multiplies the schedule's Langevin steps")
    p.add_argument(
        "--step-sizes",
        type=float,
        nargs="*",
        default=None,
        help="per-level HMC steps (t = 0..T-1) from an earlier run's JSON; skips the pilot tuning",
    )
    p.add_argument(
        "--tune-levels",
        type=int,
        nargs="*",
        default=None,
        help="one number k: tune the step at k evenly spaced levels, several: at those levels, and "
        "interpolate log(eps / eps0) in between (T1k: 1000 levels); default every level",
    )
    p.add_argument("--pilot-chains", type=int, default=64)
    p.add_argument("--pilot-adapt", type=int, default=60)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", default=None, help="folder for PNGs (default benchmarks/results/long_run_<model>)")
    a = p.parse_args()
    name = os.path.basename(os.path.normpath(a.ckpt))
    tag = name + ("" if a.sampler == "hmc" else f"_{a.sampler}") + ("" if a.start == "normal" else f"_start-{a.start}")
    out_dir = a.out or os.path.join("benchmarks", "results", f"long_run_{tag}")
    os.makedirs(out_dir, exist_ok=True)
    energy = load(a.ckpt)
    test = data.load("digits", "test")
    k_tune, k_run = jax.random.split(jax.random.key(a.seed))

    t0 = time.time()
    start_kw = dict(start=a.start, num_start_steps=a.start_steps, start_step_scale=a.start_step_scale)
    tune_levels = None if not a.tune_levels else (a.tune_levels[0] if len(a.tune_levels) == 1 else a.tune_levels)
    if a.step_sizes:
        if len(a.step_sizes) != energy.num_levels:
            raise SystemExit(f"--step-sizes needs {energy.num_levels} numbers, got {len(a.step_sizes)}")
        steps, pilot_acc = np.asarray(a.step_sizes, np.float32), np.full(energy.num_levels, np.nan)
    else:
        steps, pilot_acc = long_run.tune(
            k_tune,
            energy,
            num_chains=a.pilot_chains,
            num_adapt=a.pilot_adapt,
            sampler=a.sampler,
            tune_levels=tune_levels,
            **start_kw,
        )
    steps = jax.block_until_ready(steps)
    tune_s = time.time() - t0
    tuned = np.flatnonzero(np.isfinite(np.asarray(pilot_acc)))
    print(
        f"tuned in {tune_s:.0f} s at levels {tuned.tolist()}: step sizes {np.round(np.asarray(steps)[tuned], 5).tolist()}, "
        f"pilot acceptance {np.round(np.asarray(pilot_acc)[tuned], 3).tolist()}",
        flush=True,
    )

    runs, results = {}, []
    for s in tqdm(sorted(a.steps), desc="long runs"):
        t0 = time.time()
        r = long_run.run(
            k_run, energy, a.n, steps_per_level=s, step_sizes=steps, sampler=a.sampler, progress=True, **start_kw
        )
        x = np.asarray(jax.block_until_ready(r.samples))
        sec = time.time() - t0
        fig = _figures(x, test)
        fig.update(
            seconds=sec,
            total_steps=r.total_steps,
            acceptance_by_level=np.round(np.asarray(r.acceptance_rate), 4).tolist(),
        )
        runs[s] = fig
        results.append(r)
        np.savez_compressed(os.path.join(out_dir, f"samples_S{s}.npz"), x=x.astype(np.float32))
        save_image_grid(
            np.clip(x[:64], -1, 1),
            os.path.join(out_dir, f"samples_S{s}.png"),
            title=f"{name}: {s} steps/level ({r.total_steps} total), FD {fig['frechet_distance']:.2f}",
        )
        acc_s = np.asarray(fig["acceptance_by_level"])
        tqdm.write(
            f"S={s}: FD {fig['frechet_distance']:.3f} (raw {fig['frechet_distance_raw']:.3f}), "
            f"acceptance by level {acc_s.tolist() if len(acc_s) <= 20 else (acc_s.min(), acc_s.max())}, "
            f"{sec:.0f} s"
        )

    last = results[-1]
    fig7 = plot_step_sizes(last, os.path.join(out_dir, "step_sizes.png"), energy)
    x_last = np.asarray(last.samples)
    c = 4
    m = c * (a.n // c)
    f0 = np.asarray(energy.log_density(energy.to_model(x_last[:m]), 0))
    dt = diagnostics.to_datatree(x_last[:m].reshape((c, m // c) + x_last.shape[1:]), energy=f0.reshape(c, -1))
    report = diagnostics.write_report(dt, out_dir, extra={"layout": f"{c} chains of independent long-run descents"})
    s_first, s_last = min(runs), max(runs)
    fd_first, fd_last = runs[s_first]["frechet_distance"], runs[s_last]["frechet_distance"]
    out = {
        "ckpt": a.ckpt,
        "schedule": energy.schedule.name,
        "sampler": a.sampler,
        "start": start_kw,
        "num_integration_steps": 2,
        "n": a.n,
        "reference": "digits test split (360), ebm_ppl.metrics.frechet_distance on samples clipped to [-1, 1]",
        "reference_fd_train360_vs_test": float(metrics.frechet_distance(data.load("digits", "train")[:360], test)),
        "step_sizes": np.asarray(steps).tolist(),
        "pilot_acceptance": [None if not np.isfinite(v) else float(v) for v in np.asarray(pilot_acc)],
        "tune_levels": tuned.tolist(),
        "tune_seconds": tune_s,
        "runs": {str(k): v for k, v in runs.items()},
        "ratio": fd_last / fd_first,
        "pass": bool(fd_last <= 1.5 * fd_first),
        "diagnostics": {k: report[k] for k in ("num_chains", "num_draws", "pixels", "energy", "layout") if k in report},
        "plots": [fig7] + report["plots"] + [os.path.join(out_dir, f"samples_S{s}.png") for s in runs],
        "command": f"benchmarks/long_run_digits.py --ckpt {a.ckpt} --n {a.n} --steps {' '.join(map(str, sorted(a.steps)))}"
        + (f" --sampler {a.sampler}" if a.sampler != "hmc" else "")
        + (
            f" --start {a.start} --start-steps {a.start_steps} --start-step-scale {a.start_step_scale}"
            if a.start != "normal"
            else ""
        )
        + (" --tune-levels " + " ".join(map(str, a.tune_levels)) if a.tune_levels else "")
        + (" --step-sizes " + " ".join(f"{v:.6g}" for v in a.step_sizes) if a.step_sizes else ""),
    }
    print(json.dumps({k: out[k] for k in ("ratio", "pass")}, indent=1))
    for s, v in runs.items():
        print(f"S={s}: FD {v['frechet_distance']:.3f}")
    path = os.path.join("benchmarks", "results", f"long_run_{tag}.json")
    with open(path, "w") as fh:
        json.dump(out, fh, indent=1)
    print("wrote", path)


if __name__ == "__main__":
    main()
