"""Digits test bits/dim of the shipped checkpoints beside classical baselines on the same split.

    .venv/bin/python benchmarks/bpd_digits.py [--models models/digits-t6 ...] [--level T] [--estimate-logz]

Baselines are fitted on the training split, their size chosen on validation: diagonal Gaussian, full
Gaussian (shrinkage chosen on validation), sklearn GaussianMixture (components and covariance type on
validation), KernelDensity (bandwidth on validation). Every model is scored with the same uniform
dequantisation (ebm_ppl.likelihood.bits_per_dim, levels 17, bins 2/17 on [-1, 1]). Checkpoints need a
stored log Z (``ebm-ppl logz CKPT --write``) or ``--estimate-logz`` (runs AIS, stores it); each is scored at
the noise level its card chose on validation (``checkpoint.evaluation_level``) unless ``--level`` is given.
Writes benchmarks/results/bpd_digits.json.
"""

from __future__ import annotations

import argparse
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np
import numpyro.distributions as dist

from ebm_ppl import data
from ebm_ppl.likelihood import bits_per_dim

HERE = os.path.dirname(os.path.abspath(__file__))


class _SklearnDensity:
    """log_prob through a fitted sklearn density (score_samples), flattening the event dims."""

    def __init__(self, model, event_shape):
        self.model, self.event_shape = model, tuple(event_shape)

    def log_prob(self, x):
        x = np.asarray(x, np.float64).reshape(len(x), -1)
        return jnp.asarray(self.model.score_samples(x))


def _flat(x):
    return np.asarray(x, np.float64).reshape(len(x), -1)


def _bpd(prior, x, seed=0):
    import jax as _jax

    class _NoJit:  # sklearn densities are not traceable: call log_prob eagerly
        def __init__(self, p):
            self.p, self.event_shape = p, p.event_shape

        def log_prob(self, v):
            return self.p.log_prob(v)

    if isinstance(prior, _SklearnDensity):
        key = _jax.random.key(seed)
        w = 2.0 / 17
        u = np.asarray(_jax.random.uniform(key, x.shape))
        lp = np.asarray(prior.log_prob(x + (u - 0.5) * w), np.float64)
        d = int(np.prod(x.shape[1:]))
        per = -(lp + d * math.log(w)) / (d * math.log(2))
        return float(per.mean()), float(per.std(ddof=1) / math.sqrt(len(per)))
    r = bits_per_dim(prior, x, _jax.random.key(seed), levels=17)
    return r.bpd, r.stderr


def dequantized(x, seed):
    u = np.random.default_rng(seed).uniform(size=x.shape)
    return x + (u - 0.5) * 2.0 / 17


def baselines(train, val, test):
    from sklearn.covariance import ShrunkCovariance
    from sklearn.mixture import GaussianMixture
    from sklearn.neighbors import KernelDensity

    shape = train.shape[1:]
    tr, va = _flat(dequantized(train, 1)), _flat(dequantized(val, 2))
    out = {}
    m, s = tr.mean(0), tr.std(0) + 1e-3
    diag = dist.Normal(jnp.asarray(m.reshape(shape)), jnp.asarray(s.reshape(shape))).to_event(len(shape))
    out["diag_gaussian"] = (diag, {})
    best = None
    for shrink in (0.0, 0.01, 0.03, 0.1, 0.3):
        sc = ShrunkCovariance(shrinkage=shrink).fit(tr)
        v = sc.score(va)
        if best is None or v > best[0]:
            best = (v, shrink, sc)
    cov = best[2].covariance_ + 1e-6 * np.eye(tr.shape[1])
    full = dist.MultivariateNormal(jnp.asarray(tr.mean(0)), jnp.asarray(cov))
    out["full_gaussian"] = (_Reshape(full, shape), {"shrinkage": best[1]})
    best = None
    for k in (5, 10, 20, 40, 80):
        for ct in ("full", "diag"):
            g = GaussianMixture(k, covariance_type=ct, reg_covar=1e-3, random_state=0, max_iter=300).fit(tr)
            v = g.score(va)
            if best is None or v > best[0]:
                best = (v, {"n_components": k, "covariance_type": ct}, g)
    out["gmm"] = (_SklearnDensity(best[2], shape), best[1])
    best = None
    for bw in (0.05, 0.08, 0.1, 0.12, 0.15, 0.2, 0.3):
        kde = KernelDensity(bandwidth=bw).fit(tr)
        v = kde.score(va)
        if best is None or v > best[0]:
            best = (v, {"bandwidth": bw}, kde)
    out["kde"] = (_SklearnDensity(best[2], shape), best[1])
    return out


class _Reshape:
    def __init__(self, d, shape):
        self.d, self.event_shape = d, tuple(shape)

    def log_prob(self, x):
        return self.d.log_prob(jnp.reshape(x, (x.shape[0], -1)))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--models", nargs="*", default=["models/digits-t6", "models/digits-dsm", "models/digits-t1k"])
    p.add_argument(
        "--level",
        type=int,
        default=None,
        help="noise level of every model's density (default: each card's evaluation_level)",
    )
    p.add_argument("--estimate-logz", action="store_true")
    p.add_argument("--out", default=os.path.join(HERE, "results", "bpd_digits.json"))
    args = p.parse_args(argv)
    train, val, test = (data.load("digits", s) for s in ("train", "validation", "test"))
    rows = {"uniform": {"bpd": math.log2(17), "stderr": 0.0}}
    for name, (model, chosen) in baselines(train, val, test).items():
        b, se = _bpd(model, test)
        rows[name] = {"bpd": b, "stderr": se, "chosen_on_validation": chosen}
    for path in args.models:
        if not os.path.isdir(path):
            rows[path] = {"missing": True}
            continue
        from ebm_ppl import EBMPrior, checkpoint, logz

        level = checkpoint.evaluation_level(path) if args.level is None else args.level
        if args.estimate_logz and checkpoint.load_logz(path, level) is None:
            est = logz.ais(jax.random.key(0), checkpoint.load(path), level=level)
            for t in est.levels:
                checkpoint.save_logz(path, est.at_level(t).to_json())
        prior = EBMPrior(path, noise_level=level)
        r = bits_per_dim(prior, test, jax.random.key(0), levels=17)
        stored = checkpoint.load_logz(path, level) or {}
        rows[path] = {
            "bpd": r.bpd,
            "stderr": r.stderr,
            "stderr_log_z": r.stderr_log_z,
            "level": level,
            "log_z": stored.get("log_z"),
            "log_z_weight_ess": stored.get("ess"),
            "log_z_num_particles": (stored.get("meta") or {}).get("num_particles"),
        }
    print(f"{'model':>24} {'test bits/dim':>14} {'stderr':>8}")
    for k, v in rows.items():
        if v.get("missing"):
            print(f"{k:>24}   (no checkpoint)")
        else:
            lvl = f"  (level {v['level']}, log Z weight ESS {v['log_z_weight_ess']:.1f})" if "level" in v else ""
            print(f"{k:>24} {v['bpd']:>14.3f} {v['stderr']:>8.3f}{lvl}")
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(rows, fh, indent=1, default=float)


if __name__ == "__main__":
    main()
