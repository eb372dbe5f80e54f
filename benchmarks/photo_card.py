"""Build the card of the photo prior from its training run and the two photo benchmarks.

    python benchmarks/photo_card.py models/photo-dsm

Reads ``config.json`` / ``train_log.jsonl`` of the checkpoint and benchmarks/results/photo_density.json
and photo_restore.json (written by benchmarks/photo_density.py and photo_restore.py); writes into the
checkpoint folder ``samples.png`` (16 unconditional 32x32 samples by the ancestral descent of the
ladder, seed 0), ``figures.json`` (density and restoration figures, the evaluation level, the
restoration levels the CLI uses), ``logz/level_<t>.json`` (log Z of the 32x32 density with k-hat)
and ``card.md``.
"""

from __future__ import annotations

import json
import os
import sys

import jax
import numpy as np

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import ebm_ppl  # noqa: E402
from ebm_ppl import checkpoint  # noqa: E402
from ebm_ppl.data import photos  # noqa: E402
from ebm_ppl.inverse.images import level_noise, score_fn  # noqa: E402

RESULTS = os.path.join(os.path.dirname(__file__), "results")


def unconditional_samples(energy, key, n=16, size=32):
    r = level_noise(energy)
    T = energy.num_levels
    score = jax.jit(score_fn(energy, (size, size, 1)))
    u = r[T - 1] * jax.random.normal(key, (n, size, size, 1))
    for lvl in range(T - 1, 0, -1):
        d = r[lvl] ** 2 - r[lvl - 1] ** 2
        u = (
            u
            + d * score(u, lvl)
            + np.sqrt(d * r[lvl - 1] ** 2 / r[lvl] ** 2) * jax.random.normal(jax.random.fold_in(key, lvl), u.shape)
        )
    return np.asarray(u + r[0] ** 2 * score(u, 0))


def save_grid(x, path):
    from matplotlib.figure import Figure

    n = len(x)
    k = int(np.ceil(np.sqrt(n)))
    fig = Figure(figsize=(k * 1.2, k * 1.2))
    for i in range(n):
        ax = fig.add_subplot(k, k, i + 1)
        ax.imshow(np.clip(x[i, ..., 0], -1, 1), cmap="gray", vmin=-1, vmax=1)
        ax.axis("off")
    tmp = path + ".tmp.png"
    fig.savefig(tmp, dpi=80)
    os.replace(tmp, path)


def main(argv=None):
    ckpt = (argv or sys.argv[1:])[0]
    energy = ebm_ppl.load(ckpt)
    with open(os.path.join(ckpt, "config.json")) as fh:
        cfg = json.load(fh)
    log = [json.loads(line) for line in open(os.path.join(ckpt, "train_log.jsonl"))]
    wall = sum(v["wall_time_s"] for v in _segments(log))
    save_grid(unconditional_samples(energy, jax.random.PRNGKey(0)), os.path.join(ckpt, "samples.png"))
    dens = json.load(open(os.path.join(RESULTS, "photo_density.json")))
    rest_path = os.path.join(RESULTS, "photo_restore.json")
    rest = json.load(open(rest_path)) if os.path.exists(rest_path) else None
    rows = {(r["dim"], r["method"].split(",")[0]): r for r in dens["rows"]}
    m64, m1024 = rows[(64, "photo prior (conv DSM)")], rows[(1024, "photo prior (conv DSM)")]
    fig = {
        "evaluation_level": int(m1024["level"]),
        "evaluation_level_8x8": int(m64["level"]),
        "test_bpd_8x8": m64["test_bpd"],
        "test_bpd_8x8_stderr": m64["test_se"],
        "validation_bpd_8x8": m64["validation_bpd"],
        "log_z_8x8": m64["log_z"],
        "test_bpd_32x32": m1024["test_bpd"],
        "test_bpd_32x32_stderr": m1024["test_se"],
        "validation_bpd_32x32": m1024["validation_bpd"],
        "log_z_32x32": m1024["log_z"],
        "baselines_test_bpd": {
            f"{r['dim']}:{r['method']}": r["test_bpd"] for r in dens["rows"] if "photo prior" not in r["method"]
        },
        "training_steps": int(cfg.get("step", log[-1]["step"])),
        "training_wall_s": wall,
        "density_command": dens["command"],
    }
    if rest:
        fig["restoration_levels"] = {"start_level": rest["start_level"], "stop_level": rest["stop_level"]}
        fig["restoration_command"] = rest["command"]
        fig["restoration"] = [
            {
                "task": r["task"],
                "photo": r["photo"],
                **r["methods"]["EBM posterior mean"],
                "posterior_s": r["posterior_s"],
            }
            for r in rest["results"]
        ]
    tmp = os.path.join(ckpt, "figures.json.tmp")
    with open(tmp, "w") as fh:
        json.dump(fig, fh, indent=1)
    os.replace(tmp, os.path.join(ckpt, "figures.json"))
    lz = m1024["log_z"]
    checkpoint.save_logz(ckpt, {"level": int(m1024["level"]), "method": "ais", "data_shape": [32, 32, 1], **lz})
    write_card(ckpt, cfg, fig, dens, rest)


def _segments(log):
    """Wall time of a run that was resumed: the sum of the last entry of every segment."""
    out, prev = [], None
    for v in log:
        if prev is not None and v["wall_time_s"] < prev["wall_time_s"]:
            out.append(prev)
        prev = v
    return out + [prev]


def write_card(ckpt, cfg, fig, dens, rest):
    name = os.path.basename(os.path.normpath(ckpt))
    lz8, lz32 = fig["log_z_8x8"], fig["log_z_32x32"]
    lines = [
        f"# {name}",
        "",
        "A fully convolutional prior of grey natural photographs: f(y, t) = -sum_p (y_p - g_p(y, t))^2 / (2 sigma_t^2), "
        "g a bounded 8-layer CNN denoiser (receptive field 17 px), so one network scores images of any size.",
        "",
        f"- data: `photos` (`ebm_ppl.data.photos`: train {', '.join(photos.PHOTO_SPLITS['train'])}; "
        "validation coffee; test camera, astronaut; split by photo)",
        f"- preset: `{cfg.get('preset', 'dsm-conv-photos')}`, schedule `{cfg['schedule']}`, objective DSM",
        f"- network: `{json.dumps(cfg['network'])}`",
        f"- trained {fig['training_steps']} steps of a {cfg.get('train', {}).get('steps')}-step cosine schedule (batch {cfg.get('train', {}).get('batch_size')}; stopped early for time), wall time {fig['training_wall_s'] / 60:.1f} min on the shared 2-core CPU",
        f"- evaluation level {fig['evaluation_level']} (32x32) / {fig['evaluation_level_8x8']} (8x8), chosen on the validation photo",
        f"- log Z, 8x8 inputs, level {fig['evaluation_level_8x8']}: {lz8['log_z']:.2f} ± {lz8['stderr']:.2f}, ESS {lz8['ess']:.1f} of {lz8['num_particles']}, "
        f"k-hat {lz8['khat']:.2f}{'' if lz8['reliable'] else ' (UNRELIABLE: the stderr is a lower bound, bits/dim optimistic)'}",
        f"- log Z, 32x32 inputs, level {fig['evaluation_level']}: {lz32['log_z']:.2f} ± {lz32['stderr']:.2f}, ESS {lz32['ess']:.1f} of {lz32['num_particles']}, "
        f"k-hat {lz32['khat']:.2f}{'' if lz32['reliable'] else ' (UNRELIABLE: the stderr is a lower bound, bits/dim optimistic)'}",
        "",
        "![samples](samples.png)",
        "",
        "Unconditional 32x32 samples (ancestral descent of the ladder from sigma 1.1, one gradient per level, seed 0). "
        "They look like high-contrast texture (gravel, grass), not like photographs: a 17-px receptive field and 2000 "
        "CPU steps make a local prior that is useful as a denoiser and a posterior for restoration, not a generator.",
        "",
        "## Held-out density (bits/dim, test photos)",
        "",
        f"Written by `{dens['command']}`.",
        "",
        "| D | method | test bits/dim | validation |",
        "|---|---|---|---|",
    ]
    for r in dens["rows"]:
        lines.append(
            f"| {r['dim']} | {r['method']} | {r['test_bpd']:.3f} ± {r['test_se']:.3f} | {r['validation_bpd']:.3f} |"
        )
    if rest:
        lines += [
            "",
            "## Restoration (posterior mean; camera and astronaut centre crops)",
            "",
            f"Written by `{rest['command']}`; full table with every baseline in benchmarks/results/photo_restore.md.",
            "",
            "| task | photo | PSNR | SSIM | cov50 | cov90 | cov95 | time (s) |",
            "|---|---|---|---|---|---|---|---|",
        ]
        for r in fig["restoration"]:
            lines.append(
                f"| {r['task']} | {r['photo']} | {r['psnr']:.2f} | {r['ssim']:.3f} | {r.get('coverage50', float('nan')):.3f} | "
                f"{r.get('coverage90', float('nan')):.3f} | {r.get('coverage95', float('nan')):.3f} | {r['posterior_s']:.0f} |"
            )
    lines += ["", f"Card written by `python benchmarks/photo_card.py {ckpt}`."]
    tmp = os.path.join(ckpt, "card.md.tmp")
    with open(tmp, "w") as fh:
        fh.write("\n".join(lines) + "\n")
    os.replace(tmp, os.path.join(ckpt, "card.md"))


if __name__ == "__main__":
    main()
