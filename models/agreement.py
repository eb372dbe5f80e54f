"""Is a shipped model one distribution? Sampler vs density at the level EBMPrior uses, and the
held-out log-likelihood beside baselines; written onto the model's card.

    .venv/bin/python models/agreement.py checkerboard-t6 [--choose-level] [--write]
    .venv/bin/python models/agreement.py digits-dsm [--write] [--chains 256 --draws 400]

2-D models (``ebm_ppl.agreement.histogram_tv_2d``): total variation between a histogram of 4000
``EBMPrior(path).sample`` draws (0.2 cells) and ``exp(log_prob)`` integrated over the same cells
from a 0.02 grid over [-3, 3]^2, beside the TV an exact sampler of the density gets (null); test
log-likelihood in nats per point beside the uniform density on [-1, 1]^2 and a GaussianMixture
fitted on the training split (components chosen on validation). ``--choose-level`` first scores
every level with a stored log Z on the validation split and makes the best one the card's
``evaluation_level`` (the level ``EBMPrior(path)`` uses).

Image models (``ebm_ppl.agreement.mcmc_agreement``): NUTS chains on ``log_prob`` started from
``EBMPrior(path).sample`` draws, ArviZ R-hat of the log density, an RBF-MMD permutation test of the
chains' last states against fresh draws, and for digits the Frechet distance in the shipped
classifier's features (end vs fresh, beside fresh vs a second fresh set: the null); test bits/dim
at the evaluation level beside the baselines of ``benchmarks/bpd_digits.py`` (same split).

``--write`` puts the figures under ``agreement`` in the card's ``figures.json`` (atomic write) and
rewrites the card's "One distribution" section; without it the figures are only printed.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time

import jax
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)
SECTION = "## One distribution: sampler, density and held-out likelihood"


def _gmm_baseline_2d(train, val, test):
    from sklearn.mixture import GaussianMixture

    best = None
    for k in (4, 8, 16, 32, 64):
        gm = GaussianMixture(k, covariance_type="full", random_state=0, max_iter=300).fit(train)
        v = float(gm.score(val))
        if best is None or v > best[0]:
            best = (v, k, gm)
    lp = best[2].score_samples(test)
    return {
        "nats_per_point": float(lp.mean()),
        "stderr": float(lp.std(ddof=1) / math.sqrt(len(lp))),
        "n_components_chosen_on_validation": best[1],
    }


def _choose_level_2d(path, data_name):
    from ebm_ppl import EBMPrior, agreement, checkpoint, data

    val = data.load(data_name, "validation")
    energy = checkpoint.load(path)
    rows = {}
    for t in range(energy.num_levels):
        if checkpoint.load_logz(path, t) is None:
            continue
        prior = EBMPrior(energy, noise_level=t)
        mean, se = agreement.log_likelihood_per_point(prior, val)
        rows[t] = {"validation_nats_per_point": mean, "stderr": se, "log_z_reliable": prior.log_z_reliable}
        print(f"[agreement] level {t}: validation {mean:.4f} +- {se:.4f} nats/point", flush=True)
    usable = {t: r for t, r in rows.items() if r["log_z_reliable"]}
    if not usable:
        raise SystemExit(f"{path}: no level has a reliable stored log Z; run `ebm-ppl logz {path} --write` first")
    best = max(usable, key=lambda t: usable[t]["validation_nats_per_point"])
    return best, rows


def check_2d(path, name, config, key, choose_level):
    from ebm_ppl import EBMPrior, agreement, data

    data_name = config["data"]["name"]
    figures = {}
    if choose_level:
        level, rows = _choose_level_2d(path, data_name)
        figures["validation_by_level"] = {str(t): r for t, r in rows.items()}
        _write_evaluation_level(path, level)
    prior = EBMPrior(path)
    tv = agreement.histogram_tv_2d(key, prior, num_samples=4000)
    test = data.load(data_name, "test")
    mean, se = agreement.log_likelihood_per_point(prior, test)
    figures.update(
        {
            "level": prior.noise_level,
            "sampler": dict(prior._progressive),
            "tv_samples_vs_density": tv.tv,
            "tv_null_exact_sampler": tv.null_tv,
            "tv_null_sd": tv.null_tv_sd,
            "tv_cell": tv.cell,
            "tv_grid_spacing": tv.grid_spacing,
            "tv_num_samples": tv.num_samples,
            "density_mass_in_bounds": tv.mass_in_bounds,
            "sample_fraction_in_bounds": tv.fraction_in_bounds,
            "test_nats_per_point": mean,
            "test_nats_per_point_stderr": se,
            "baseline_uniform_nats_per_point": -math.log(4.0),
            "baseline_gmm": _gmm_baseline_2d(data.load(data_name, "train"), data.load(data_name, "validation"), test),
            "log_z_reliable": prior.log_z_reliable,
        }
    )
    figures["passes"] = bool(tv.tv <= 0.15 and mean > -math.log(4.0))
    return figures


def check_images(path, name, config, key, chains, warmup, draws):
    from ebm_ppl import EBMPrior, agreement, metrics

    prior = EBMPrior(path)
    t0 = time.time()
    r = agreement.mcmc_agreement(key, prior, num_chains=chains, num_warmup=warmup, num_draws=draws)
    figures = {
        "level": prior.noise_level,
        "sampler": {k: (list(v) if isinstance(v, tuple) else v) for k, v in prior._progressive},
        "mcmc": f"BlackJAX NUTS on log_prob, {chains} chains from sample() draws, {warmup} warm-up + {draws} draws",
        "rhat_log_density": r.rhat,
        "ess_bulk_log_density": r.ess_bulk,
        "nuts_acceptance": r.acceptance,
        "mean_log_prob_start": r.mean_log_prob_start,
        "mean_log_prob_end": r.mean_log_prob_end,
        "mmd2_end_vs_fresh": r.test.mmd2,
        "mmd2_null_mean": r.test.null_mean,
        "mmd2_null_sd": r.test.null_sd,
        "mmd_p_value": r.test.p_value,
        "mmd_bandwidth": r.test.bandwidth,
        "mmd_permutations": r.test.num_permutations,
        "seconds": time.time() - t0,
    }
    data_name = config["data"]["name"]
    if data_name == "digits":
        second = np.asarray(prior.sample(jax.random.fold_in(key, 7), (chains,)))
        clip = lambda v: np.clip(v, -1, 1)  # noqa: E731
        figures["frechet_end_vs_fresh"] = float(metrics.frechet_distance(clip(r.end), clip(r.fresh)))
        figures["frechet_null_fresh_vs_fresh"] = float(metrics.frechet_distance(clip(second), clip(r.fresh)))
        figures["class_proportions_end"] = np.round(
            np.asarray(metrics.class_histogram(clip(r.end)).proportions), 3
        ).tolist()
        figures["class_proportions_fresh"] = np.round(
            np.asarray(metrics.class_histogram(clip(r.fresh)).proportions), 3
        ).tolist()
        bpd_file = os.path.join(ROOT, "benchmarks", "results", "bpd_digits.json")
        with open(bpd_file) as fh:
            table = json.load(fh)
        mine = table.get(f"models/{name}", {})
        figures["test_bpd"] = mine.get("bpd")
        figures["test_bpd_stderr"] = mine.get("stderr")
        figures["test_bpd_level"] = mine.get("level")
        figures["baselines_bpd"] = {
            k: table[k]["bpd"] for k in ("uniform", "diag_gaussian", "full_gaussian", "kde", "gmm") if k in table
        }
        figures["bpd_source"] = "benchmarks/bpd_digits.py (benchmarks/results/bpd_digits.json)"
    figures["passes"] = bool(r.rhat < 1.01 and r.test.p_value > 0.01)
    return figures


def _figures_path(path):
    return os.path.join(path, "figures.json")


def _read_figures(path):
    f = _figures_path(path)
    return json.load(open(f)) if os.path.isfile(f) else {}


def _write_figures(path, figures):
    from ebm_ppl.checkpoint import atomic_write_text

    atomic_write_text(_figures_path(path), json.dumps(figures, indent=1) + "\n")


def _write_evaluation_level(path, level):
    figures = _read_figures(path)
    figures["evaluation_level"] = int(level)
    _write_figures(path, figures)


def _fmt(v):
    if isinstance(v, float):
        return f"{v:.4g}"
    return json.dumps(v) if isinstance(v, (dict, list)) else str(v)


def _card_section(name, figures):
    lines = [
        SECTION,
        "",
        f"Written by `.venv/bin/python models/agreement.py {name} --write` "
        "(`ebm_ppl.agreement`; docs/models.md explains each check).",
        "",
        "| figure | value |",
        "|---|---|",
    ]
    for k, v in figures.items():
        if k == "validation_by_level":
            continue
        lines.append(f"| {k} | {_fmt(v)} |")
    if "validation_by_level" in figures:
        lines += [
            "",
            "Validation log-likelihood by level (nats per point; the best reliable level is the "
            "card's `evaluation_level`):",
            "",
            "| level | validation | stderr | log Z reliable |",
            "|---|---|---|---|",
        ]
        for t, r in figures["validation_by_level"].items():
            lines.append(f"| {t} | {r['validation_nats_per_point']:.4f} | {r['stderr']:.4f} | {r['log_z_reliable']} |")
    return "\n".join(lines) + "\n"


def _write_card(path, name, figures):
    from ebm_ppl.checkpoint import atomic_write_text

    card = os.path.join(path, "card.md")
    text = open(card).read() if os.path.isfile(card) else f"# {name}\n"
    if SECTION in text:
        head, rest = text.split(SECTION, 1)
        nxt = rest.find("\n## ")
        tail = rest[nxt + 1 :] if nxt >= 0 else ""
        text = head + _card_section(name, figures) + ("\n" + tail if tail else "")
    else:
        text = text.rstrip("\n") + "\n\n" + _card_section(name, figures)
    atomic_write_text(card, text)


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("name", help="a folder under models/")
    p.add_argument("--choose-level", action="store_true", help="2-D: choose the evaluation level on validation first")
    p.add_argument("--write", action="store_true", help="store the figures in figures.json and the card")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--chains", type=int, default=256)
    p.add_argument("--warmup", type=int, default=200)
    p.add_argument("--draws", type=int, default=400)
    args = p.parse_args(argv)
    from ebm_ppl import checkpoint

    path = os.path.join(HERE, args.name)
    config = checkpoint.read_config(path)
    key = jax.random.key(args.seed)
    if tuple(config["data_shape"]) == (2,):
        figures = check_2d(path, args.name, config, key, args.choose_level)
    else:
        figures = check_images(path, args.name, config, key, args.chains, args.warmup, args.draws)
    print(json.dumps(figures, indent=1, default=float))
    if args.write:
        all_figures = _read_figures(path)
        all_figures["agreement"] = figures
        _write_figures(path, all_figures)
        _write_card(path, args.name, figures)
    return 0 if figures["passes"] else 1


if __name__ == "__main__":
    sys.exit(main())
