"""Digits long-run must-show: Frechet distance (classifier features) of long-run samples after
S = 1 (one normal draw per level) and S = 100 steps per level; pass if FD(100) <= 1.5 FD(1).
Also writes the Fig. 7 step-size/acceptance PNG, sample grids and an R-hat/ESS report.

    .venv/bin/python benchmarks/long_run_digits.py --ckpt models/digits-t6 --n 500 --out benchmarks/long_run_digits
"""

import argparse
import json
import os

import jax
import numpy as np

from ebm_ppl import diagnostics
from ebm_ppl.checkpoint import load
from ebm_ppl.metrics import frechet_distance
from ebm_ppl.plotting import save_image_grid
from ebm_ppl.sampling import long_run


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--ckpt", default="models/digits-t6")
    p.add_argument("--n", type=int, default=500)
    p.add_argument("--steps", type=int, nargs="*", default=[1, 10, 100])
    p.add_argument("--out", default="benchmarks/long_run_digits")
    a = p.parse_args()
    os.makedirs(a.out, exist_ok=True)
    energy = load(a.ckpt)
    from sklearn.datasets import load_digits

    real = load_digits().images / 16.0 * 2 - 1  # [-1, 1], the data scaling of ebm_ppl.data
    results = long_run.run_growing(energy, jax.random.key(0), a.n, a.steps)
    figures = {}
    for r in results:
        x = np.asarray(r.samples).reshape((a.n,) + tuple(energy.data_shape))
        figures[r.steps_per_level] = float(frechet_distance(x.reshape(a.n, 8, 8), real))
        save_image_grid(x[:64].reshape(64, 8, 8), os.path.join(a.out, f"samples_S{r.steps_per_level}.png"),
                        title=f"{r.total_steps} total steps")
    long_run.plot_step_sizes(results[-1], os.path.join(a.out, "step_sizes.png"), energy)
    last = np.asarray(results[-1].samples)
    c = 4
    dt = diagnostics.to_datatree(last[: c * (a.n // c)].reshape((c, a.n // c) + last.shape[1:]),
                                 energy=np.asarray(results[-1].log_density[0][: c * (a.n // c)]).reshape(c, -1))
    report = diagnostics.write_report(dt, a.out)
    s_first, s_last = min(figures), max(figures)
    out = {"frechet": figures, "ratio": figures[s_last] / figures[s_first],
           "pass": figures[s_last] <= 1.5 * figures[s_first],
           "acceptance": np.asarray(results[-1].acceptance_rate).tolist(), "rhat_energy": report["energy"]["rhat"]}
    print(json.dumps(out, indent=1))
    json.dump(out, open(os.path.join(a.out, "summary.json"), "w"), indent=1)


if __name__ == "__main__":
    main()
