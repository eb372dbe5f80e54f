"""``ebm-ppl demo``: the main job on the embedded default, the shipped digits model.

    ebm-ppl demo [--out out/demo] [--ckpt models/digits-t6] [--n 100] [--seed 0]

1. progressive samples (Algorithm 2, the checkpoint's own sampler settings) -> ``samples.png``;
2. sample quality: Frechet distance to the test split in the shipped digits classifier's features
   (and the train-vs-test reference), the class histogram of the samples;
3. test bits/dim (uniform dequantisation, 17 levels) of the density-first model ``models/digits-dsm``
   at its evaluation level chosen on validation, with the log Z stored by AIS: the T6 model samples
   well but AIS weights collapse on it, so its bits/dim is not reported (see its card);
4. half-image inpainting of a few test digits with the EBM prior (the annealed progressive
   sampler, 32 chains a digit), beside the Gaussian-prior baseline -> ``inpainting/panel.png``.

Everything lands in ``--out`` with ``demo.json``. About two minutes on 2 CPU cores.
"""

from __future__ import annotations

import json
import os
import time

from ebm_ppl.cli import UsageError

HELP = "sample the shipped digits model, score it, inpaint a few digits; PNGs and a JSON in out/demo"


def default_model_dir(name: str = "digits-t6") -> str:
    """``$EBM_PPL_MODELS/<name>`` or the repository's ``models/<name>``."""
    root = os.environ.get("EBM_PPL_MODELS") or os.path.join(os.path.dirname(__file__), "..", "..", "models")
    return os.path.normpath(os.path.join(root, name))


def add_arguments(parser):
    parser.add_argument("--out", default="out/demo", help="output folder (default out/demo)")
    parser.add_argument("--ckpt", default=None, help="digits checkpoint (default: the shipped models/digits-t6)")
    parser.add_argument("--density-ckpt", default=None,
                        help="checkpoint whose test bits/dim is reported (default: the shipped models/digits-dsm)")
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
    from ebm_ppl.plotting import save_image_grid
    from ebm_ppl.sampling import progressive
    from ebm_ppl.train.loop import sampling_options

    ckpt = args.ckpt or default_model_dir()
    density_ckpt = args.density_ckpt or default_model_dir("digits-dsm")
    if args.n < 2:
        raise UsageError(f"--n must be at least 2, got {args.n}")
    try:
        energy = checkpoint.load(ckpt)
        config = checkpoint.read_config(ckpt)
    except checkpoint.CheckpointError as err:
        raise UsageError(str(err)) from None
    data_name = (config.get("data") or {}).get("name", "digits")
    if data_name != "digits":
        raise UsageError(f"the demo expects a digits checkpoint; {ckpt} was trained on {data_name!r}")
    os.makedirs(args.out, exist_ok=True)
    key = jax.random.key(args.seed)
    k_sample, k_bpd, k_inpaint = jax.random.split(key, 3)
    result = {"checkpoint": os.path.abspath(ckpt), "preset": config.get("preset"), "train_steps": config.get("step")}
    t_start = time.time()

    _step(f"progressive sampling of {args.n} digits from {ckpt}")
    options = sampling_options(energy.schedule, config.get("sampling") or {})
    t0 = time.time()
    samples = np.asarray(jax.block_until_ready(progressive.sample(energy, k_sample, args.n, **options)))
    result["sampling_seconds"] = round(time.time() - t0, 1)
    shown = np.clip(samples, -1.0, 1.0)
    result["samples_png"] = save_image_grid(shown, os.path.join(args.out, "samples.png"),
                                            title=f"{args.n} progressive samples ({config.get('preset')})")
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

    _step(f"test bits/dim of the density-first model {density_ckpt} (log Z stored by AIS)")
    try:
        level = checkpoint.evaluation_level(density_ckpt, default=None)
        prior = EBMPrior(density_ckpt, noise_level=level)
        bpd = bits_per_dim(prior, test, k_bpd)
        result["density_model"] = {
            "checkpoint": os.path.abspath(density_ckpt), "level": level, "test_bpd": float(bpd.bpd),
            "test_bpd_stderr": float(bpd.stderr), "log_z": float(prior.log_z),
            "log_z_stderr": float(prior.log_z_stderr or 0.0),
        }
        result["test_bpd"] = float(bpd.bpd)
    except (MissingLogZError, checkpoint.CheckpointError, OSError) as err:
        result["test_bpd"] = None
        result["test_bpd_note"] = str(err)

    if args.n_inpaint > 0:
        _step(f"half-image inpainting of {args.n_inpaint} test digits (EBM prior vs Gaussian prior)")
        from ebm_ppl.inverse import experiment, fit_gaussian
        from ebm_ppl.inverse.operators import from_name

        operator, noise_std = from_name("inpaint:half", energy.data_shape)
        inpaint, _ = experiment.run(
            energy, operator, noise_std, test[: args.n_inpaint], k_inpaint, baseline=fit_gaussian(train),
            # the paper's inpainting: the annealed progressive sampler with the checkpoint's Langevin
            # steps, 32 chains per digit (NUTS refinement is `ebm-ppl solve`'s job)
            sampler_kwargs=dict(method="progressive", num_chains=32, num_samples=0, inner=options["inner"],
                                num_inner_steps=options["num_inner_steps"]),
            out_dir=os.path.join(args.out, "inpainting"), title="half-image inpainting, test digits",
        )
        keep = ("psnr", "ssim", "coverage50", "coverage90", "coverage95", "baseline_psnr", "baseline_coverage90",
                "panel_png", "calibration_png", "seconds")
        result["inpainting"] = {k: inpaint[k] for k in keep if k in inpaint}

    result["wall_time_s"] = round(time.time() - t_start, 1)
    path = os.path.join(args.out, "demo.json")
    with open(path + ".tmp", "w") as fh:
        json.dump(result, fh, indent=2)
    os.replace(path + ".tmp", path)
    _step(f"wrote {args.out}/samples.png, demo.json" + (", inpainting/panel.png" if args.n_inpaint > 0 else ""))
    summary = {k: result.get(k) for k in ("frechet_distance_test", "frechet_distance_train_vs_test", "test_bpd")}
    print(json.dumps(summary))
    return result
