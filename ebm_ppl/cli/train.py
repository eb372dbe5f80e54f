"""``ebm-ppl train``: train a noise-conditional energy by diffusion recovery likelihood."""

from __future__ import annotations

import os

from ebm_ppl.cli import UsageError
from ebm_ppl.cli.common import (
    add_devices_arguments,
    non_negative_int,
    number,
    positive_float,
    positive_int,
    resolve_mesh,
)

HELP = "train an energy network (diffusion recovery likelihood and baselines) into a checkpoint folder"


def add_arguments(parser):
    from ebm_ppl.train.presets import preset_names

    parser.add_argument(
        "--data", required=True, help="a built-in data set (digits, 8gaussians, ...) or a .npy/.npz/image folder path"
    )
    parser.add_argument(
        "--preset",
        default=None,
        help=f"training preset: {', '.join(preset_names())} (default: t6-2d for 2-D data, t6-digits otherwise)",
    )
    parser.add_argument(
        "--steps", type=non_negative_int, default=None, help="total training steps (default: the preset's)"
    )
    parser.add_argument("--out", required=True, help="checkpoint folder to write (config.json, params, samples, log)")
    parser.add_argument("--resume", action="store_true", help="continue the run in --out (same seed: bit-identical)")
    parser.add_argument("--seed", type=int, default=0, help="training seed (default 0)")
    parser.add_argument("--batch-size", type=positive_int, default=None, help="override the preset's batch size")
    parser.add_argument("--lr", type=positive_float, default=None, help="override the preset's learning rate")
    parser.add_argument(
        "--levels", type=number(int, low=2), default=None, help="user data: quantisation levels (default 256)"
    )
    parser.add_argument("--no-samples", action="store_true", help="skip the sample-grid PNGs")
    parser.add_argument("--quiet", action="store_true", help="no progress bar")
    parser.add_argument(
        "--no-eval",
        action="store_true",
        help="built-in 2-D data: skip the closing sample-quality check (samples vs held-out "
        "data, MMD as a ratio to the data-vs-data MMD)",
    )
    parser.add_argument(
        "--eval-samples",
        type=number(int, low=10),
        default=2000,
        help="samples (and held-out points) of the closing 2-D check (default 2000)",
    )
    add_devices_arguments(parser)


def run(args) -> dict:
    from ebm_ppl import data as data_mod
    from ebm_ppl.checkpoint import CheckpointError, read_config
    from ebm_ppl.train import TrainingDiverged, get_preset, train

    try:
        info = data_mod.info(args.data, levels=args.levels) if args.levels else data_mod.info(args.data)
        x = data_mod.load(args.data, "train", levels=args.levels) if args.levels else data_mod.load(args.data, "train")
    except data_mod.DataError as err:
        raise UsageError(str(err)) from None
    if args.resume:
        try:
            saved = read_config(args.out)
        except CheckpointError as err:
            raise UsageError(f"--resume: {err}") from None
        config = saved.get("train")
        if not config:
            raise UsageError(f"--resume: {args.out} holds no training config (not written by ebm-ppl train)")
        if args.preset and config.get("preset") not in (None, args.preset):
            raise UsageError(
                f"--resume: {args.out} was trained with preset {config.get('preset')!r}, not {args.preset!r}"
            )
    else:
        name = args.preset or (
            "t6-2d" if tuple(info["data_shape"]) == (2,) or len(info["data_shape"]) == 1 else "t6-digits"
        )
        try:
            config = get_preset(name)
        except ValueError as err:
            raise UsageError(str(err)) from None
        if os.path.exists(os.path.join(args.out, "config.json")):
            raise UsageError(
                f"{args.out} already holds a checkpoint; use --resume to continue it or choose another --out"
            )
    if args.batch_size is not None:
        config["batch_size"] = args.batch_size
    if args.lr is not None:
        config["optimizer"]["lr"] = args.lr
    mesh, n_dev = resolve_mesh(args)
    if config["batch_size"] % n_dev:
        raise UsageError(
            f"batch size {config['batch_size']} cannot be split over {n_dev} devices; "
            f"give --batch-size a multiple of {n_dev} or fewer --devices"
        )
    net = config["network"]
    if net["name"] == "wrn" and len(info["data_shape"]) != 3:
        raise UsageError(
            f"preset {config.get('preset')!r} needs images (H, W, C); data {args.data!r} has shape {tuple(info['data_shape'])}"
        )
    try:
        result = train(
            x,
            config,
            args.out,
            data_info=info,
            seed=args.seed,
            steps=args.steps,
            resume=args.resume,
            progress=not args.quiet,
            write_samples=not args.no_samples,
            mesh=mesh,
        )
    except TrainingDiverged as err:
        import sys

        print(f"ebm-ppl train: error: {err}", file=sys.stderr)
        raise SystemExit(1) from None
    except ValueError as err:
        raise UsageError(str(err)) from None
    result["data"] = info["name"]
    result["devices"] = n_dev
    print(
        f"trained {result['steps_run']} steps ({result['steps']} total) in {result['wall_time_s']:.1f} s; "
        f"final loss {result['final_loss']:.4g}; checkpoint in {args.out}"
    )
    if not args.no_eval and args.data in data_mod.TWO_D_NAMES:
        from ebm_ppl.train.evaluate import flat_figures, model_sample_quality_2d

        scatter = None if args.no_samples else os.path.join(args.out, "samples", "quality.png")
        _, figures = model_sample_quality_2d(
            args.out, None, args.data, n=args.eval_samples, key=args.seed, scatter=scatter
        )
        result.update(flat_figures(figures))
        # headline: the worse of the two bandwidths (the coarse median h and the mode-resolving 0.1)
        result["mmd_ratio"] = max(figures["median"]["mmd_ratio"], figures["h0.1"]["mmd_ratio"])
        med, fine = figures["median"], figures["h0.1"]
        print(
            f"sample quality ({args.eval_samples} samples vs {args.eval_samples} test points, biased MMD^2): "
            f"ratio to the data-vs-data "
            f"null {med['mmd_ratio']:.2f} at the median h={med['bandwidth']:.3f}, {fine['mmd_ratio']:.2f} at h=0.1"
        )
    return result
