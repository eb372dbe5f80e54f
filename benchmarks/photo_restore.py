"""Restoration of whole held-out photos with the photo prior, beside classical baselines (issue 17, item 4).

    python benchmarks/photo_restore.py models/photo-dsm [--size 256] [--num-samples 4] [--tasks ...]

Test photos ``camera`` and ``astronaut`` (centre crops ``--size``; grey, [-1, 1]); validation photo
``coffee`` (the TV weights are tuned on its centre crop). Noise is drawn with a fixed seed per
(photo, task). Tasks (noise std on the 0-255 scale):

* ``denoise15``, ``denoise25``, ``denoise50``: y = x + sigma e;
* ``inpaint50``, ``inpaint80``: 50% / 80% of the pixels missing at random (mask seed 0), noise 1;
* ``box32``: a centred 32x32 block missing, noise 1;
* ``deblur``: Gaussian blur sd 1.6 px (reflect padding) plus noise 2.55.

Methods: our posterior (``ebm_ppl.inverse.images.sample_image_posterior``: mean, sd, samples), the
one-step Tweedie estimate of the model where the noise is one of its levels, BM3D and TV
(denoising), biharmonic inpainting and a normalised-convolution fill (inpainting), and the
stationary Gaussian (Wiener) prior fitted on the training photos (all tasks). PSNR and SSIM from
``skimage.metrics`` on [0, 1] (data_range 1, estimates clipped); coverage of the Gaussian central
intervals mean +- z sd at 50/90/95% over the missing pixels (inpainting) or all pixels.
Writes benchmarks/results/photo_restore.json / .md and one PNG panel per task
(benchmarks/results/photo_restore_<task>.png).
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
import zlib

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

import photo_baselines as pb  # noqa: E402

import ebm_ppl  # noqa: E402
from ebm_ppl.data import photos  # noqa: E402
from ebm_ppl.inverse import operators  # noqa: E402
from ebm_ppl.inverse.images import (  # noqa: E402
    fill_estimate,
    interval_coverage,
    matching_level,
    sample_image_posterior,
    tweedie_denoise,
)

RESULTS = os.path.join(os.path.dirname(__file__), "results")
TASKS = {
    "denoise15": ("denoise", 15.0),
    "denoise25": ("denoise", 25.0),
    "denoise50": ("denoise", 50.0),
    "inpaint50": ("inpaint:random0.5", 1.0),
    "inpaint80": ("inpaint:random0.8", 1.0),
    "box32": ("box32", 1.0),
    "deblur": ("blur:gauss1.6", 2.55),
}


def to255(s):
    return s / 255.0 * 2.0


def make_operator(kind, shape):
    if kind == "box32":
        H, W = shape[:2]
        mask = np.ones(shape, bool)
        mask[H // 2 - 16 : H // 2 + 16, W // 2 - 16 : W // 2 + 16] = False
        return operators.Inpaint(mask)
    return operators.from_name(kind, shape)[0]


def scores(est, truth):
    from skimage.metrics import peak_signal_noise_ratio, structural_similarity

    e = np.clip((np.asarray(est, np.float64).reshape(truth.shape) + 1) / 2, 0, 1)
    t = (truth + 1) / 2
    return {
        "psnr": float(peak_signal_noise_ratio(t, e, data_range=1.0)),
        "ssim": float(structural_similarity(t, e, data_range=1.0)),
    }


def run_task(task, name, x, energy, gauss, tv_weights, args, key):
    kind, s255 = TASKS[task]
    sigma = to255(s255)
    shape = x.shape + (1,)
    op = make_operator(kind, shape)
    rng = np.random.default_rng([zlib.crc32(name.encode()), zlib.crc32(task.encode())])
    obs = np.asarray(op(jnp.asarray(x[..., None]))) + sigma * rng.standard_normal(op.num_observations)
    obs = obs.astype(np.float32)
    obs_img = np.asarray(op.adjoint(jnp.asarray(obs)))[..., 0]
    out = {"task": task, "photo": name, "sigma255": s255, "methods": {}}
    est = {}
    missing = None
    t0 = time.time()
    if kind == "denoise":
        est["BM3D"] = pb.bm3d_denoise(obs_img, sigma)
        est["TV"] = pb.tv_denoise(obs_img, tv_weights[task])
        est["Gaussian (Wiener)"] = gauss.denoise(obs_img, sigma)
        lvl = matching_level(energy, sigma)
        if lvl is not None:
            est[f"Tweedie (level {lvl})"] = tweedie_denoise(energy, obs_img[..., None], lvl)[..., 0]
        init, start = None, None
    elif kind == "blur:gauss1.6":
        est["Gaussian (Wiener)"] = gauss.deblur(obs_img, np.asarray(op.kernel), sigma)
        init, start = obs_img[..., None], args.start_level
    else:
        mask = np.asarray(op.mask)[..., 0]
        missing = ~mask
        est["biharmonic"] = pb.biharmonic(obs_img, mask)
        est["Gaussian (Wiener)"] = gauss.inpaint(obs_img, mask, sigma)
        init = fill_estimate(op, obs)
        est["normalised-conv fill"] = init[..., 0]
        start = args.start_level
    out["baseline_s"] = time.time() - t0
    t0 = time.time()
    post = sample_image_posterior(
        key,
        energy,
        op,
        sigma,
        obs,
        num_samples=args.num_samples,
        init=init,
        start_level=start,
        stop_level=args.stop_level,
        tile=args.tile,
    )
    out["posterior_s"] = time.time() - t0
    est["EBM posterior mean"] = post.mean[..., 0]
    for m, e in est.items():
        out["methods"][m] = scores(e, x)
    cov = interval_coverage(post.mean[..., 0], post.sd[..., 0], x, mask=missing)
    out["methods"]["EBM posterior mean"].update({f"coverage{int(round(100 * k))}": v for k, v in cov.items()})
    out["posterior_info"] = post.info
    out["mean_sd"] = float(np.mean(post.sd if missing is None else post.sd[..., 0][missing]))
    return out, obs_img, est, post


def panel(task, rows, path):
    from matplotlib.figure import Figure

    ncol = max(len(r[2]) for r in rows) + 4
    fig = Figure(figsize=(2.0 * ncol, 2.2 * len(rows)))
    for i, (_name, x, est, obs_img, post, res) in enumerate(rows):
        items = [("truth", x), ("observation", obs_img)]
        items += [(f"{m}\n{res['methods'][m]['psnr']:.2f} dB", e) for m, e in est.items()]
        items += [("posterior sd", post.sd[..., 0]), ("sample", post.samples[0][..., 0])]
        for j, (title, img) in enumerate(items):
            ax = fig.add_subplot(len(rows), ncol, i * ncol + j + 1)
            if title == "posterior sd":
                ax.imshow(img, cmap="magma")
            else:
                ax.imshow(np.clip(img, -1, 1), cmap="gray", vmin=-1, vmax=1)
            ax.set_title(title if i == 0 or "dB" in title else "", fontsize=7)
            ax.axis("off")
    fig.suptitle(task, fontsize=9)
    fig.tight_layout()
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=80)
    os.replace(tmp, path)


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("model")
    ap.add_argument("--size", type=int, default=256)
    ap.add_argument("--num-samples", type=int, default=4)
    ap.add_argument("--start-level", type=int, default=17, help="start level of the non-denoising tasks")
    ap.add_argument("--stop-level", type=int, default=0)
    ap.add_argument("--tile", type=int, default=None)
    ap.add_argument("--tasks", nargs="+", default=list(TASKS))
    ap.add_argument("--photos", nargs="+", default=list(photos.PHOTO_SPLITS["test"]))
    ap.add_argument("--out", default=os.path.join(RESULTS, "photo_restore"))
    args = ap.parse_args(argv)
    energy = ebm_ppl.load(args.model)
    S = args.size
    train = [photos.to_data(photos.photo(p)) for p in photos.PHOTO_SPLITS["train"]]
    gauss = pb.StationaryGaussian(train, (S, S))
    val = photos.to_data(photos.centre_crop(photos.PHOTO_SPLITS["validation"][0], min(S, 256)))  # coffee is 400x600
    tv_weights = {}
    for task, (kind, s255) in TASKS.items():
        if kind == "denoise":
            noisy = val + to255(s255) * np.random.default_rng(99).standard_normal(val.shape)
            tv_weights[task] = pb.tune_tv(val, noisy)
    res = {
        "model": args.model,
        "size": S,
        "num_samples": args.num_samples,
        "start_level": args.start_level,
        "stop_level": args.stop_level,
        "tv_weights": tv_weights,
        "results": [],
        "command": "python benchmarks/photo_restore.py " + " ".join(sys.argv[1:] if argv is None else argv),
    }
    for task in args.tasks:
        rows = []
        for name in args.photos:
            x = photos.to_data(photos.centre_crop(name, S))
            out, obs_img, est, post = run_task(
                task,
                name,
                x,
                energy,
                gauss,
                tv_weights,
                args,
                jax.random.PRNGKey(zlib.crc32(f"{name}:{task}".encode())),
            )
            print(json.dumps(out), flush=True)
            res["results"].append(out)
            rows.append((name, x, est, obs_img, post, out))
            write(res, args.out)
        panel(task, rows, f"{args.out}_{task}.png")


def write(res, out):
    os.makedirs(os.path.dirname(out) or ".", exist_ok=True)
    tmp = out + ".json.tmp"
    with open(tmp, "w") as fh:
        json.dump(res, fh, indent=1)
    os.replace(tmp, out + ".json")
    lines = [
        f"Restoration of {res['size']}x{res['size']} centre crops (model {res['model']}, {res['num_samples']} "
        f"posterior samples, stop level {res['stop_level']}). PSNR (dB) / SSIM from skimage.metrics; coverage of "
        f"the EBM's 50/90/95% intervals. Written by `{res['command']}`.",
        "",
        "| task | photo | method | PSNR | SSIM | cov50 | cov90 | cov95 | time (s) |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for r in res["results"]:
        for m, v in r["methods"].items():
            ours = m == "EBM posterior mean"
            cov = [f"{v[k]:.3f}" if k in v else "" for k in ("coverage50", "coverage90", "coverage95")]
            t = f"{r['posterior_s']:.0f}" if ours else ""
            lines.append(
                f"| {r['task']} | {r['photo']} | {m} | {v['psnr']:.2f} | {v['ssim']:.3f} | {' | '.join(cov)} | {t} |"
            )
    tmp = out + ".md.tmp"
    with open(tmp, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, out + ".md")


if __name__ == "__main__":
    main()
