"""``ebm-ppl solve CKPT --image PATH.png --operator denoise:25``: restore a user's photo of any size.

Semantics (docs/images.md):

* By default the PNG is the **clean reference**: the tool simulates the observation itself
  (operator + Gaussian noise, ``--seed`` fixes noise and masks), restores it and reports PSNR, SSIM
  (``skimage.metrics``, [0, 1] scale) and the coverage of the 50/90/95% intervals against the
  reference. With ``--observed`` the PNG is the observation (denoising or deblurring only: there is
  no mask to know) and no scores are reported.
* Noise levels with ``--image`` are on the 0-255 scale: ``denoise:25`` is noise std 25/255 of the
  range (0.196 in the model's [-1, 1] units); ``@S`` or ``--noise-std S`` override (also 0-255).
  Defaults: 1 for inpainting, 2.55 for blur. Operators: ``denoise:S``, ``inpaint:randomP``,
  ``inpaint:box`` (the centred half-size box), ``inpaint:blockN`` (a centred N x N block),
  ``blur:gaussS``.
* Colour images are turned grey (BT.601 luma); the model is a grey-level prior.
* Memory: gradients are computed on overlapping tiles (``--tile``, default 256; exact, the energy
  is a sum of local terms) and chains run in chunks of ``--chain-chunk``, so any size fits.

Writes ``mean.png``, ``sd.png`` (scaled to its maximum, stated in the JSON), ``sample_<i>.png``,
``observation.png`` and ``figures.json`` into ``--out``.
"""

from __future__ import annotations

import json
import os
import time

from ebm_ppl.cli import UsageError

__all__ = ["add_image_arguments", "run_image", "read_grey", "write_png"]


def add_image_arguments(parser) -> None:
    g = parser.add_argument_group("whole images (--image; docs/images.md)")
    g.add_argument("--image", default=None, help="a PNG (any size) to restore with a fully convolutional photo prior")
    g.add_argument("--observed", action="store_true", help="the PNG is the observation (no clean reference, no scores)")
    g.add_argument("--image-samples", type=int, default=8, help="posterior samples (chains), default 8")
    g.add_argument("--tile", type=int, default=256, help="gradient tile size in pixels (default 256)")
    g.add_argument("--chain-chunk", type=int, default=4, help="chains per batch (default 4)")
    g.add_argument(
        "--start-level",
        type=int,
        default=None,
        help="level the non-denoising descent starts at (default: the model card's, else 17)",
    )
    g.add_argument(
        "--stop-level", type=int, default=None, help="level the descent stops at (default: the card's, else 0)"
    )


def read_grey(path: str):
    """A PNG/JPEG as grey uint8 (H, W) (BT.601 luma for colour; 16-bit scaled to 8)."""
    import numpy as np
    from skimage import io

    try:
        img = np.asarray(io.imread(path))
    except (OSError, ValueError) as err:
        raise UsageError(f"cannot read image {path}: {err}") from None
    if img.dtype == np.uint16:
        img = img / 257.0
    elif img.dtype == bool:
        img = img * 255.0
    elif img.dtype.kind == "f":
        img = img * (255.0 if img.max() <= 1.0 else 1.0)
    if img.ndim == 3:
        img = img[..., :3].astype(np.float64) @ np.asarray([0.299, 0.587, 0.114]) if img.shape[-1] >= 3 else img[..., 0]
    if img.ndim != 2 or min(img.shape) < 8:
        raise UsageError(f"image {path} has shape {img.shape}; expected a 2-D grey or RGB image of at least 8x8")
    return np.clip(np.rint(img), 0, 255).astype(np.uint8)


def write_png(path: str, img_uint8) -> None:
    """Atomic PNG write."""
    from skimage import io

    tmp = path[:-4] + ".tmp.png"
    io.imsave(tmp, img_uint8, check_contrast=False)
    os.replace(tmp, path)


def _operator(name: str, shape, seed: int, noise_255: float | None):
    import numpy as np

    from ebm_ppl.inverse import operators

    text, _, at = str(name).partition("@")
    kind, _, arg = text.partition(":")
    try:
        if at:
            noise_255 = float(at) if noise_255 is None else noise_255
        if kind == "inpaint" and arg.startswith("block"):
            n = int(arg[len("block") :] or 32)
            H, W = shape[:2]
            if not 0 < n < min(H, W):
                raise ValueError(f"block size {n} must be smaller than the image {H}x{W}")
            mask = np.ones(shape, bool)
            mask[H // 2 - n // 2 : H // 2 - n // 2 + n, W // 2 - n // 2 : W // 2 - n // 2 + n] = False
            op = operators.Inpaint(mask)
        elif kind in ("inpaint", "denoise", "blur"):
            op, _ = operators.from_name(text if kind != "denoise" else "denoise", shape, seed=seed)
        else:
            raise ValueError(
                f"--image supports denoise:S, inpaint:randomP, inpaint:box, inpaint:blockN, blur:gaussS; got {name!r}"
            )
    except ValueError as err:
        raise UsageError(str(err)) from None
    if noise_255 is None:
        noise_255 = float(arg) if kind == "denoise" and arg else (2.55 if kind == "blur" else 1.0)
    if not noise_255 > 0:
        raise UsageError(f"the noise std must be positive, got {noise_255}")
    return op, noise_255


def _card_levels(ckpt: str | None) -> dict:
    if not ckpt:
        return {}
    path = os.path.join(ckpt, "figures.json")
    try:
        with open(path) as fh:
            return json.load(fh).get("restoration_levels", {})
    except (OSError, ValueError):
        return {}


def run_image(args, energy) -> dict:
    """The ``--image`` path of ``ebm-ppl solve`` (see the module docstring); returns the figures."""
    import jax
    import jax.numpy as jnp
    import numpy as np
    from tqdm.auto import tqdm

    from ebm_ppl.data import photos
    from ebm_ppl.energy.protocol import receptive_field
    from ebm_ppl.inverse.images import fill_estimate, interval_coverage, sample_image_posterior
    from ebm_ppl.inverse.operators import Denoise, Inpaint

    if receptive_field(energy) is None:
        raise UsageError(
            "--image needs a fully convolutional photo prior (a checkpoint of network 'conv_denoiser', "
            "e.g. models/photo-dsm)"
        )
    if args.image_samples < 2:
        raise UsageError(f"--image-samples must be at least 2, got {args.image_samples}")
    raw = read_grey(args.image)
    x = photos.to_data(raw)
    shape = x.shape + (1,)
    op, noise_255 = _operator(args.operator, shape, args.seed, args.noise_std)
    sigma = noise_255 / 255.0 * 2.0
    if args.observed:
        if isinstance(op, Inpaint):
            raise UsageError("--observed works for denoising and deblurring only (an inpainting mask is unknown)")
        obs = x.reshape(-1)
    else:
        rng = np.random.default_rng(args.seed)
        obs = np.asarray(op(jnp.asarray(x[..., None]))) + sigma * rng.standard_normal(op.num_observations)
    obs = np.asarray(obs, np.float32)
    levels = _card_levels(args.ckpt)
    start = args.start_level if args.start_level is not None else levels.get("start_level", 17)
    stop = args.stop_level if args.stop_level is not None else levels.get("stop_level", 0)
    init = None if isinstance(op, Denoise) else fill_estimate(op, obs)
    bar = tqdm(total=None, desc="posterior", unit="grad")

    def progress(done, total):
        bar.total = total
        bar.n = done
        bar.refresh()

    t0 = time.time()
    post = sample_image_posterior(
        jax.random.PRNGKey(args.seed),
        energy,
        op,
        sigma,
        obs,
        num_samples=args.image_samples,
        chain_chunk=args.chain_chunk,
        tile=args.tile,
        init=init,
        start_level=start,
        stop_level=stop,
        callback=progress,
    )
    bar.close()
    wall = time.time() - t0
    os.makedirs(args.out, exist_ok=True)
    write_png(
        os.path.join(args.out, "observation.png"), photos.from_data(np.asarray(op.adjoint(jnp.asarray(obs)))[..., 0])
    )
    write_png(os.path.join(args.out, "mean.png"), photos.from_data(post.mean[..., 0]))
    sd_max = float(post.sd.max()) or 1.0
    write_png(
        os.path.join(args.out, "sd.png"), np.clip(np.rint(post.sd[..., 0] / sd_max * 255), 0, 255).astype(np.uint8)
    )
    for i, s in enumerate(post.samples[: min(4, len(post.samples))]):
        write_png(os.path.join(args.out, f"sample_{i}.png"), photos.from_data(s[..., 0]))
    fig = {
        "image": args.image,
        "shape": list(raw.shape),
        "operator": args.operator,
        "noise_std_255": noise_255,
        "seed": args.seed,
        "num_samples": args.image_samples,
        "posterior_s": wall,
        "sd_png_max": sd_max,
        "reference": "observation" if args.observed else "clean",
        **post.info,
    }
    if not args.observed:
        from skimage.metrics import peak_signal_noise_ratio, structural_similarity

        mask = ~np.asarray(op.mask)[..., 0] if isinstance(op, Inpaint) else None
        est = np.clip((post.mean[..., 0] + 1) / 2, 0, 1)
        ref = (x.astype(np.float64) + 1) / 2
        fig["psnr"] = float(peak_signal_noise_ratio(ref, est, data_range=1.0))
        fig["ssim"] = float(structural_similarity(ref, est, data_range=1.0))
        cov = interval_coverage(post.mean[..., 0], post.sd[..., 0], x, mask=mask)
        fig.update({f"coverage{int(round(100 * k))}": v for k, v in cov.items()})
        print(
            f"PSNR {fig['psnr']:.2f} dB, SSIM {fig['ssim']:.3f}, 90% coverage {fig['coverage90']:.3f} "
            f"({'missing' if mask is not None else 'all'} pixels); {wall:.0f} s; wrote {args.out}"
        )
    else:
        print(f"restored in {wall:.0f} s; wrote {args.out}")
    tmp = os.path.join(args.out, "figures.json.tmp")
    with open(tmp, "w") as fh:
        json.dump(fig, fh, indent=1)
    os.replace(tmp, os.path.join(args.out, "figures.json"))
    return fig
