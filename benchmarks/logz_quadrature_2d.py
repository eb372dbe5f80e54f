"""AIS log Z of a trained 2-D model against grid quadrature (issue: |difference| <= 0.02 nats).

    .venv/bin/python benchmarks/logz_quadrature_2d.py models/checkerboard-t6 [--half-width 10] [--points 2001]

Integrates exp f(y, 0) on a uniform grid over [-w, w]^2 in model space (trapezoid rule, log-sum-exp
in float64), beside the AIS estimate stored in the checkpoint (and a fresh one). Writes JSON to
benchmarks/results/logz_quadrature_<name>.json.
"""

import argparse
import json
import math
import os

import jax
import jax.numpy as jnp
import numpy as np

import ebm_ppl
from ebm_ppl import checkpoint, logz


def grid_log_z(energy, half_width: float, points: int, level: int = 0, batch: int = 200_000) -> float:
    axis = np.linspace(-half_width, half_width, points)
    h = axis[1] - axis[0]
    grid = np.stack(np.meshgrid(axis, axis, indexing="ij"), -1).reshape(-1, 2).astype(np.float32)
    f = jax.jit(lambda y: energy.log_density(y, level))
    logf = np.concatenate([np.asarray(f(jnp.asarray(grid[i : i + batch])), np.float64) for i in range(0, len(grid), batch)])
    logf = logf.reshape(points, points)
    w = np.ones(points)
    w[0] = w[-1] = 0.5  # trapezoid weights
    logw = np.log(np.outer(w, w)) + 2 * math.log(h)
    total = logf + logw
    m = total.max()
    return float(m + math.log(np.exp(total - m).sum())), float(np.exp(logf[[0, -1], :].max() - logf.max()))


def main():
    p = argparse.ArgumentParser()
    p.add_argument("ckpt")
    p.add_argument("--half-width", type=float, default=10.0)
    p.add_argument("--points", type=int, default=2001)
    args = p.parse_args()
    energy = ebm_ppl.load(args.ckpt)
    quad, edge = grid_log_z(energy, args.half_width, args.points)
    quad_coarse, _ = grid_log_z(energy, args.half_width, (args.points + 1) // 2)
    stored = checkpoint.load_logz(args.ckpt, 0)
    fresh = logz.ais(energy, jax.random.key(7), num_particles=1024, num_bridges=600)
    out = {
        "checkpoint": args.ckpt,
        "quadrature_log_z": quad,
        "quadrature_half_grid_log_z": quad_coarse,
        "grid": {"half_width": args.half_width, "points": args.points, "edge_density_ratio": edge},
        "ais_stored": None if stored is None else {k: stored[k] for k in ("log_z", "stderr", "ess")},
        "ais_fresh": {"log_z": fresh.log_z, "stderr": fresh.stderr, "ess": fresh.ess, "num_grad_evals": fresh.num_grad_evals},
    }
    out["difference_stored"] = None if stored is None else stored["log_z"] - quad
    out["difference_fresh"] = fresh.log_z - quad
    name = os.path.basename(os.path.normpath(args.ckpt))
    os.makedirs("benchmarks/results", exist_ok=True)
    with open(f"benchmarks/results/logz_quadrature_{name}.json", "w") as fh:
        json.dump(out, fh, indent=2)
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
