"""``ebm-ppl demo``: the main job on the embedded default, the density-first digits model.

    ebm-ppl demo [--out out/demo] [--ckpt models/digits-dsm] [--n 100] [--n-inpaint 8] [--seed 0]

The model is ``EBMPrior(ckpt)``: the level its card chose on validation, normalised by the log Z
stored there, sampled with the checkpoint's own settings (one distribution: its card measures
that the samples follow the density). An unreliable stored log Z is announced in one warning line.

1. samples of the prior -> ``samples.png``;
2. sample quality: Frechet distance to the test split in the shipped digits classifier's features
   (and the train-vs-test reference), the class histogram of the samples;
3. test bits/dim (uniform dequantisation, 17 levels) of the same prior;
4. half-image inpainting of a few test digits with the same prior and the posterior sampler's
   defaults (``ebm_ppl.inverse``), beside the Gaussian-prior baseline -> ``inpainting/panel.png``.

Everything lands in ``--out`` with ``demo.json``. About two minutes on 2 CPU cores. The model is
found in ``$EBM_PPL_MODELS``, the repository's ``models/``, or the copy of ``digits-dsm`` packaged
with ebm_ppl (so the demo also runs from an installed wheel).
"""

from __future__ import annotations

import json
import os
import time
import warnings

from ebm_ppl.cli import UsageError

HELP = "sample, score and inpaint with the shipped digits prior; PNGs and a JSON in out/demo"
DEFAULT_MODEL = "digits-dsm"
_PACKAGED = os.path.join(os.path.dirname(os.path.dirname(os.path.abspath(__file__))), "assets", "models")


def default_model_dir(name: str = DEFAULT_MODEL) -> str:
    """``$EBM_PPL_MODELS/<name>``, else the repository's ``models/<name>``, else the copy packaged
    with ebm_ppl (``ebm_ppl/assets/models/<name>``, shipped in the wheel)."""
    if os.environ.get("EBM_PPL_MODELS"):
        return os.path.normpath(os.path.join(os.environ["EBM_PPL_MODELS"], name))
    repo = os.path.normpath(os.path.join(os.path.dirname(__file__), "..", "..", "models", name))
    if os.path.isdir(repo):
        return repo
    return os.path.join(_PACKAGED, name)


def add_arguments(parser):
    parser.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    parser.add_argument("--ckpt", default=None, help=f"digits checkpoint (default: the shipped {DEFAULT_MODEL})")
    parser.add_argument("--n", type=int, default=100, help="number of samples (default 100)")
    parser.add_argument("--n-inpaint", type=int, default=8, help="test digits to inpaint (default 8; 0 skips)")
    parser.add_argument("--seed", type=int, default=0)


def _step(message):
    print(f"[demo] {message}", flush=True)


def run(args):
    import jax
    import numpy as np

    from ebm_ppl import checkpoint, data, metrics
    from ebm_ppl.distribution import EBMPrior, MissingLogZError
    from ebm_ppl.likelihood import bits_per_dim
    from ebm_ppl.logz import UnreliableLogZWarning
    from ebm_ppl.plotting import save_image_grid

    ckpt = args.ckpt or default_model_dir()
    if args.n < 2:
        raise UsageError(f"--n must be at least 2, got {args.n}")
    if args.n_inpaint < 0:
        raise UsageError(f"--n-inpaint must be >= 0, got {args.n_inpaint}")
    try:
        config = checkpoint.read_config(ckpt)
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", UnreliableLogZWarning)
            prior = EBMPrior(ckpt)
    except checkpoint.CheckpointError as err:
        raise UsageError(str(err)) from None
    for w in caught:
        print(f"warning: {w.message}", flush=True)
    data_name = (config.get("data") or {}).get("name", "digits")
    if data_name != "digits":
        raise UsageError(f"the demo expects a digits checkpoint; {ckpt} was trained on {data_name!r}")
    os.makedirs(args.out, exist_ok=True)
    key = jax.random.key(args.seed)
    k_sample, k_bpd, k_inpaint = jax.random.split(key, 3)
    result = {
        "checkpoint": os.path.abspath(ckpt),
        "preset": config.get("preset"),
        "train_steps": config.get("step"),
        "level": prior.noise_level,
        "sampler": dict(prior._progressive),
        "log_z": None if prior.log_z is None else float(prior.log_z),
        "log_z_stderr": prior.log_z_stderr,
        "log_z_reliable": prior.log_z_reliable,
        "warnings": [str(w.message) for w in caught],
    }
    t_start = time.time()

    _step(f"{args.n} samples of EBMPrior({ckpt}) at level {prior.noise_level} (the card's evaluation level)")
    t0 = time.time()
    samples = np.asarray(jax.block_until_ready(prior.sample(k_sample, (args.n,))))
    result["sampling_seconds"] = round(time.time() - t0, 1)
    shown = np.clip(samples, -1.0, 1.0)
    result["samples_png"] = save_image_grid(
        shown,
        os.path.join(args.out, "samples.png"),
        title=f"{args.n} samples, {os.path.basename(ckpt)} level {prior.noise_level}",
    )
    np.savez_compressed(os.path.join(args.out, "samples.npz"), samples=samples)

    _step("sample quality in the digits classifier's features")
    test = data.load("digits", "test")
    train = data.load("digits", "train")
    result["frechet_distance_test"] = float(metrics.frechet_distance(shown, test))
    result["frechet_distance_train_vs_test"] = float(metrics.frechet_distance(train[: len(test)], test))
    hist = metrics.class_histogram(shown)
    result["class_proportions"] = np.round(np.asarray(hist.proportions), 3).tolist()
    result["class_entropy_bits"] = float(hist.entropy_bits)
    result["fraction_outside_data_range"] = float(np.mean(np.abs(samples) > 1.0))

    _step(f"test bits/dim of the same prior (log Z stored by AIS, level {prior.noise_level})")
    try:
        bpd = bits_per_dim(prior, test, k_bpd)
        result["test_bpd"] = float(bpd.bpd)
        result["test_bpd_stderr"] = float(bpd.stderr)
    except MissingLogZError as err:
        result["test_bpd"] = None
        result["test_bpd_note"] = str(err)

    if args.n_inpaint > 0:
        _step(f"half-image inpainting of {args.n_inpaint} test digits (EBM prior vs Gaussian prior)")
        from ebm_ppl.inverse import experiment, fit_gaussian
        from ebm_ppl.inverse.operators import from_name

        operator, noise_std = from_name("inpaint:half", prior.energy.data_shape)
        inpaint, _ = experiment.run(
            k_inpaint,
            prior.energy,
            operator,
            noise_std,
            test[: args.n_inpaint],
            baseline=fit_gaussian(train),
            out_dir=os.path.join(args.out, "inpainting"),
            title="half-image inpainting, test digits",
        )
        keep = (
            "psnr",
            "ssim",
            "coverage50",
            "coverage90",
            "coverage95",
            "baseline_psnr",
            "baseline_coverage90",
            "panel_png",
            "calibration_png",
            "seconds",
        )
        result["inpainting"] = {k: inpaint[k] for k in keep if k in inpaint}

    result["wall_time_s"] = round(time.time() - t_start, 1)
    path = os.path.join(args.out, "demo.json")
    with open(path + ".tmp", "w") as fh:
        json.dump(result, fh, indent=2)
    os.replace(path + ".tmp", path)
    _step(f"wrote {args.out}/samples.png, demo.json" + (", inpainting/panel.png" if args.n_inpaint > 0 else ""))
    summary = {
        k: result.get(k) for k in ("level", "frechet_distance_test", "frechet_distance_train_vs_test", "test_bpd")
    }
    if "inpainting" in result:
        summary.update({f"inpaint_{k}": result["inpainting"].get(k) for k in ("psnr", "baseline_psnr", "coverage90")})
    print(json.dumps(summary))
    return result
