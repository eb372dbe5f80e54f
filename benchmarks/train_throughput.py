"""Training throughput: steps/s and peak memory of the t6-digits preset and of the t6-cifar
network at batch 8 (a few steps on this machine). Writes benchmarks/results/train_throughput.json.

    .venv/bin/python benchmarks/train_throughput.py [--steps N] [--cifar-steps N]
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import time

import jax
import numpy as np

from ebm_ppl.energy import networks
from ebm_ppl.train.loop import init_state, make_optimizer, make_train_step
from ebm_ppl.train.presets import get_preset


def _peak_rss_mib() -> float:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0  # Linux: KiB


def _device_peak_mib():
    try:
        stats = jax.devices()[0].memory_stats() or {}
        return stats.get("peak_bytes_in_use", 0) / 2**20 or None
    except Exception:
        return None


def measure(name: str, data_shape, batch_size: int, steps: int, levels=None) -> dict:
    cfg = get_preset(name)
    cfg["batch_size"] = batch_size
    module = networks.build(cfg["network"])
    tx = make_optimizer(cfg["optimizer"])
    state = init_state(module, tx, jax.random.PRNGKey(0), data_shape)
    info = {"data_shape": data_shape, "bin_width": None if levels is None else 2.0 / levels}
    step_fn = make_train_step(module, cfg, info, seed=0)
    data = jax.random.uniform(jax.random.PRNGKey(1), (max(batch_size * 4, 64),) + tuple(data_shape), minval=-1, maxval=1)
    t0 = time.perf_counter()
    state, m = step_fn(state, data)
    jax.block_until_ready(m["loss"])
    compile_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        state, m = step_fn(state, data)
    jax.block_until_ready(m["loss"])
    dt = time.perf_counter() - t0
    n_params = int(sum(np.size(v) for v in jax.tree_util.tree_leaves(state["params"])))
    return {
        "preset": name, "network": cfg["network"], "data_shape": list(data_shape), "batch_size": batch_size,
        "langevin_steps": cfg["objective"].get("num_steps"), "num_params": n_params, "timed_steps": steps,
        "compile_and_first_step_s": compile_s, "steps_per_s": steps / dt, "s_per_step": dt / steps,
        "peak_rss_mib": _peak_rss_mib(), "device_peak_mib": _device_peak_mib(), "final_loss": float(m["loss"]),
    }


def main():
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--steps", type=int, default=20, help="timed steps for t6-digits")
    p.add_argument("--cifar-steps", type=int, default=2, help="timed steps for the t6-cifar network")
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "train_throughput.json"))
    args = p.parse_args()
    results = {
        "machine": {"platform": platform.platform(), "cpu_count": os.cpu_count(), "backend": jax.default_backend(),
                    "devices": [str(d) for d in jax.devices()]},
        "t6-digits": measure("t6-digits", (8, 8, 1), get_preset("t6-digits")["batch_size"], args.steps, levels=17),
        "t6-cifar@batch8": measure("t6-cifar", (32, 32, 3), 8, args.cifar_steps, levels=256),
    }
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w") as fh:
        json.dump(results, fh, indent=2)
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
