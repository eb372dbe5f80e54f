"""Digits bits/dim of a checkpoint at every noise level, the level chosen on validation.

    .venv/bin/python benchmarks/bpd_levels.py models/digits-dsm [--particles 256 --bridges 600]

One AIS run from N(0, I) down to level 0 gives log Z_t at every level it passes (with its weight
ESS). Any level's normalised density is a valid density for dequantised data (DESIGN.md section
7), so each level gives a bits/dim figure; the level is chosen on the validation split and the
test figure is reported at that level only. Writes benchmarks/results/bpd_levels_<name>.json.

With --write it also stores log Z of every scored level in the checkpoint (``logz/``) and records
the chosen level and its figures in the card's ``figures.json`` (``evaluation_level``, which
``benchmarks/bpd_digits.py``, ``ebm-ppl demo`` and ``checkpoint.evaluation_level`` read).
"""

import argparse
import json
import os

import jax

import ebm_ppl
from ebm_ppl import data, logz
from ebm_ppl.distribution import EBMPrior


def main():
    p = argparse.ArgumentParser()
    p.add_argument("ckpt")
    p.add_argument("--particles", type=int, default=256)
    p.add_argument("--bridges", type=int, default=600)
    p.add_argument("--write", action="store_true", help="store log Z of the chosen level in the checkpoint")
    p.add_argument(
        "--every",
        type=int,
        default=1,
        help="score levels 0, K, 2K, ... and T-1 only (T1k: 1000 levels); --write then stores the chosen level",
    )
    p.add_argument(
        "--reuse-logz",
        action="store_true",
        help="take log Z of every level from the checkpoint's stored level-0 AIS run (logz/level_0.json, "
        "e.g. written by models/build_zoo.py) instead of a new AIS run",
    )
    args = p.parse_args()
    energy = ebm_ppl.load(args.ckpt)
    if args.reuse_logz:
        from ebm_ppl import checkpoint

        stored = checkpoint.load_logz(args.ckpt, 0)
        if stored is None:
            raise SystemExit(f"--reuse-logz: {args.ckpt} has no stored level-0 log Z (logz/level_0.json)")
        est = logz.LogZEstimate.from_json(stored)
        args.particles = est.meta.get("num_particles", args.particles)
        args.bridges = est.meta.get("num_bridges", args.bridges)
    else:
        est = logz.ais(jax.random.key(0), energy, level=0, num_particles=args.particles, num_bridges=args.bridges)
    T = energy.num_levels
    scored = sorted(set(range(0, T, max(args.every, 1))) | {T - 1})
    val, test = data.load("digits", "validation"), data.load("digits", "test")
    rows = []
    for t in scored:
        e = est.at_level(t)
        prior = EBMPrior(energy, noise_level=t, log_z=e)
        v = ebm_ppl.bits_per_dim(prior, val, jax.random.key(1), levels=17)
        rows.append(
            {
                "level": t,
                "log_z": e.log_z,
                "log_z_stderr": e.stderr,
                "ess": e.ess,
                "validation_bpd": float(v.bpd),
                "validation_stderr": float(v.stderr),
            }
        )
        print(
            f"level {t}: log Z {e.log_z:.2f} +- {e.stderr:.2f} (ESS {e.ess:.1f}/{args.particles}) "
            f"validation {v.bpd:.3f} +- {v.stderr:.3f} bits/dim",
            flush=True,
        )
    best = min(rows, key=lambda r: r["validation_bpd"])
    prior = EBMPrior(energy, noise_level=best["level"], log_z=est.at_level(best["level"]))
    tb = ebm_ppl.bits_per_dim(prior, test, jax.random.key(2), levels=17)
    train = ebm_ppl.bits_per_dim(prior, data.load("digits", "train"), jax.random.key(3), levels=17)
    out = {
        "checkpoint": args.ckpt,
        "ais": {"particles": args.particles, "bridges": args.bridges, "num_grad_evals": est.num_grad_evals},
        "levels": rows,
        "chosen_level": best["level"],
        "test_bpd": float(tb.bpd),
        "test_stderr": float(tb.stderr),
        "test_stderr_log_z": float(tb.stderr_log_z),
        "train_bpd": float(train.bpd),
    }
    print(json.dumps({k: out[k] for k in ("chosen_level", "test_bpd", "test_stderr", "train_bpd")}))
    if args.write:
        from ebm_ppl import checkpoint

        for t in range(energy.num_levels) if args.every <= 1 else [best["level"]]:
            checkpoint.save_logz(args.ckpt, est.at_level(t).to_json())
        record_in_card(args.ckpt, out)
    name = os.path.basename(os.path.normpath(args.ckpt))
    os.makedirs("benchmarks/results", exist_ok=True)
    with open(f"benchmarks/results/bpd_levels_{name}.json", "w") as fh:
        json.dump(out, fh, indent=2)


def record_in_card(ckpt, out):
    """Put the chosen level and its figures (and the level-0 figures, which the card's table shows)
    into ``CKPT/figures.json``, written atomically; other figures are kept."""
    from ebm_ppl import checkpoint

    fname = os.path.join(ckpt, "figures.json")
    figures = {}
    if os.path.isfile(fname):
        with open(fname, encoding="utf-8") as fh:
            figures = json.load(fh)
    by_level = {row["level"]: row for row in out["levels"]}
    chosen = by_level[out["chosen_level"]]
    figures.update(
        {
            "evaluation_level": out["chosen_level"],
            "test_bpd_at_evaluation_level": out["test_bpd"],
            "test_bpd_stderr_at_evaluation_level": out["test_stderr"],
            "train_bpd_at_evaluation_level": out["train_bpd"],
            "validation_bpd_at_evaluation_level": chosen["validation_bpd"],
            "ais_weight_ess_at_evaluation_level": chosen["ess"],
            "ais_num_particles": out["ais"]["particles"],
        }
    )
    if 0 in by_level:  # level-0 figures from the same AIS run (the stored log Z_0)
        figures.update(
            {
                "validation_bpd": by_level[0]["validation_bpd"],
                "validation_bpd_stderr": by_level[0]["validation_stderr"],
                "ais_weight_ess": by_level[0]["ess"],
            }
        )
        for stale in ("test_bpd", "test_bpd_stderr"):  # scored with an older log Z_0
            figures.pop(stale, None)
    checkpoint.atomic_write_text(fname, json.dumps(figures, indent=2) + "\n")


if __name__ == "__main__":
    main()
