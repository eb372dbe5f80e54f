"""Build (or finish) the model zoo: train, estimate log Z, picture, score, write the card.

    .venv/bin/python models/build_zoo.py [checkerboard-t6] [digits-t6] [--runs runs]

Each model trains into ``runs/<name>`` (resumable: run the script again after an interruption),
then its checkpoint is copied to ``models/<name>`` with

* ``logz/``: an AIS estimate of log Z_0 (``ebm-ppl logz --write``), so ``EBMPrior`` is normalised;
* ``samples.png``: progressive samples with the checkpoint's own sampler settings;
* ``card.md``: data, preset, steps, wall time, the sample grid and the sample-quality figures
  (2-D: RBF MMD to held-out data as a ratio to the MMD between two data draws; digits: Frechet distance
  in the shipped classifier's features and test bits/dim beside the baselines).

The optimizer state (``train_state.msgpack``) is left in ``runs/``: the shipped folder holds the
EMA parameters only, which is all ``ebm_ppl.load`` and ``EBMPrior`` need.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import time

import jax
import numpy as np

import ebm_ppl
from ebm_ppl import checkpoint, data, logz, metrics
from ebm_ppl.plotting import save_image_grid
from ebm_ppl.sampling import progressive
from ebm_ppl.train.evaluate import flat_figures, model_sample_quality_2d
from ebm_ppl.train.loop import sampling_options

HERE = os.path.dirname(os.path.abspath(__file__))

ZOO = {
    # six-level geometric (NCSN) ladder with a bounded-denoiser DSM loss: the drl:6 recovery-likelihood
    # model it replaced put 98.5% of level 0's mass near two points (TV 0.98 between sampler and density)
    "checkerboard-t6": {"data": "checkerboard", "preset": "t6-ncsn-denoiser-2d", "steps": 6000},
    "digits-t6": {"data": "digits", "preset": "t6-digits", "steps": 5000},
    "digits-dsm": {"data": "digits", "preset": "dsm-denoiser-digits", "steps": 6000},
    # T1k (1000 levels): AIS needs at least 4 bridges per level, so 4000 bridges and a 4-per-level pilot
    "digits-t1k": {
        "data": "digits",
        "preset": "t1k-denoiser-digits",
        "steps": 20000,
        "ais": dict(num_particles=256, num_bridges=4000, pilot_bridges_per_level=4),
    },
}
#: AIS budget for the shipped log Z (per model kind).
AIS_BUDGET = {
    "2d": dict(num_particles=1024, num_bridges=600),
    "image": dict(num_particles=256, num_bridges=240),
}


def train(name: str, spec: dict, runs: str) -> str:
    out = os.path.join(runs, name)
    args = [
        "train",
        "--data",
        spec["data"],
        "--preset",
        spec["preset"],
        "--steps",
        str(spec["steps"]),
        "--out",
        out,
        "--quiet",
    ]
    if os.path.exists(os.path.join(out, checkpoint.CONFIG_FILE)):
        args.append("--resume")
    from ebm_ppl.cli import main

    code = main(args)
    if code:
        raise SystemExit(f"training {name} failed with exit code {code}")
    return out


def ship(run_dir: str, name: str) -> str:
    dest = os.path.join(HERE, name)
    os.makedirs(dest, exist_ok=True)
    for item in os.listdir(run_dir):
        if item in ("train_state.msgpack",):
            continue
        src = os.path.join(run_dir, item)
        if os.path.isdir(src):
            shutil.copytree(src, os.path.join(dest, item), dirs_exist_ok=True)
        else:
            shutil.copy2(src, os.path.join(dest, item))
    return dest


def score_2d(energy, config, dest, data_name):
    """2000 progressive samples (the checkpoint's sampler, key 0) against 2000 test points:
    biased MMD^2 at h = 0.1 and the median h, with the data-vs-data null and their ratio
    (:func:`ebm_ppl.train.evaluate.model_sample_quality_2d`); the scatter goes to ``samples.png``."""
    _, figures = model_sample_quality_2d(
        energy,
        config.get("sampling") or {},
        data_name,
        n=2000,
        key=0,
        scatter=os.path.join(dest, "samples.png"),
        title=f"{data_name}: 2000 progressive samples",
    )
    return flat_figures(figures)


def score_digits(energy, config, dest, prior, name):
    opts = sampling_options(energy.schedule, config.get("sampling") or {})
    x = np.asarray(progressive.sample(jax.random.key(0), energy, 360, **opts))
    shown = np.clip(x, -1, 1)
    save_image_grid(shown[:100], os.path.join(dest, "samples.png"), title=f"{name}: progressive samples")
    test = data.load("digits", "test")
    train_split = data.load("digits", "train")
    out = {
        "frechet_distance_test": float(metrics.frechet_distance(shown, test)),
        "frechet_distance_train360_vs_test": float(metrics.frechet_distance(train_split[:360], test)),
        "class_proportions": np.round(np.asarray(metrics.class_histogram(shown).proportions), 3).tolist(),
    }
    for split in ("validation", "test"):
        bpd = ebm_ppl.bits_per_dim(prior, data.load("digits", split), jax.random.key(1))
        out[f"{split}_bpd"] = float(bpd.bpd)
        out[f"{split}_bpd_stderr"] = float(bpd.stderr)
    return out


def write_card(dest, name, spec, config, log_z, figures, seconds):
    train_info = config.get("train") or {}
    lines = [
        f"# {name}",
        "",
        f"- data: `{spec['data']}` (train split; `ebm_ppl.data.info('{spec['data']}')`)",
        f"- preset: `{spec['preset']}`, schedule `{config['schedule']}`, objective `{config['objective']}`",
        f"- network: `{json.dumps(config['network'])}`, base variance {config.get('base_variance')}",
        f"- steps: {config.get('step')}, training wall time {config.get('wall_time_s', train_info.get('wall_time_s', 'n/a'))} s "
        f"(2 CPU cores, shared)",
        f"- log Z_0 (AIS): {log_z.log_z:.3f} +- {log_z.stderr:.3f}, weight ESS {log_z.ess:.1f} of "
        f"{log_z.meta.get('num_particles', 'n/a')} ({log_z.meta.get('num_bridges', 'n/a')} bridges), "
        f"{log_z.num_grad_evals:.3g} gradient evaluations",
        f"- card built in {seconds:.0f} s by `models/build_zoo.py`",
        "",
        "![samples](samples.png)",
        "",
        "## Sample quality",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    for k, v in figures.items():
        lines.append(f"| {k} | {v if not isinstance(v, float) else f'{v:.4g}'} |")
    lines += ["", "Reproduce: `.venv/bin/python models/build_zoo.py " + name + "`", ""]
    with open(os.path.join(dest, "card.md.tmp"), "w") as fh:
        fh.write("\n".join(lines))
    os.replace(os.path.join(dest, "card.md.tmp"), os.path.join(dest, "card.md"))


def build(name: str, runs: str) -> dict:
    spec = ZOO[name]
    t0 = time.time()
    run_dir = train(name, spec, runs)
    dest = ship(run_dir, name)
    energy = ebm_ppl.load(dest)
    config = checkpoint.read_config(dest)
    kind = "2d" if len(energy.data_shape) == 1 else "image"
    print(f"[zoo] {name}: AIS log Z", flush=True)
    est = logz.ais(jax.random.key(0), energy, **spec.get("ais", AIS_BUDGET[kind]))
    checkpoint.save_logz(dest, est.to_json() if hasattr(est, "to_json") else est)
    print(f"[zoo] {name}: log Z {est.log_z:.3f} +- {est.stderr:.3f} (ESS {est.ess:.1f})", flush=True)
    if kind == "2d":
        figures = score_2d(energy, config, dest, spec["data"])
    else:
        figures = score_digits(energy, config, dest, ebm_ppl.EBMPrior(dest), name)
    figures["ais_weight_ess"] = float(est.ess)
    write_card(dest, name, spec, config, est, figures, time.time() - t0)
    with open(os.path.join(dest, "figures.json"), "w") as fh:
        json.dump(figures, fh, indent=2)
    print(json.dumps({name: figures}), flush=True)
    return figures


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("names", nargs="*", default=list(ZOO), help=f"models to build (default: {' '.join(ZOO)})")
    parser.add_argument("--runs", default="runs", help="training folder (resumable)")
    args = parser.parse_args()
    for name in args.names:
        if name not in ZOO:
            raise SystemExit(f"unknown zoo model {name!r}; known: {', '.join(ZOO)}")
        build(name, args.runs)


if __name__ == "__main__":
    main()
