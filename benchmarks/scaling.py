"""Throughput against the number of devices: training steps/s and progressive samples/s.

    python benchmarks/scaling.py [--devices 1 2 4] [--steps 20] [--samples 1024] [--tag cpu]

For each N the script re-executes itself in a subprocess with
``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (set before jax is imported; on a GPU
machine the real devices are used and N must not exceed them) and measures, after one
compiling call:

* train: ``--steps`` steps of the ``t6-2d`` training step (global batch 256, K = 30 Langevin
  steps, MLP width 128) data-parallel over a mesh of N devices (:func:`make_train_step` with
  ``mesh``), state replicated;
* sample: a progressive descent (Algorithm 2, 6 levels x 30 Langevin steps) of ``--samples``
  chains of the same network, chains split over the mesh.

Writes one table (stdout, and benchmarks/results/scaling_<tag>.json) and a PNG
(benchmarks/results/scaling_<tag>.png). On CPU, forced host devices share the same cores: the
figures show the overhead of partitioning, not a speed-up (see docs/scaling.md).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))


def worker(n: int, steps: int, num_samples: int) -> dict:
    import jax
    import jax.numpy as jnp
    import numpy as np

    from ebm_ppl import data as data_mod
    from ebm_ppl import sharding
    from ebm_ppl.energy import NetworkEnergy, networks
    from ebm_ppl.sampling import progressive
    from ebm_ppl.schedules import from_name
    from ebm_ppl.train import get_preset
    from ebm_ppl.train.loop import ema_variables, init_state, make_optimizer, make_train_step, sampling_options

    assert jax.device_count() >= n, f"{jax.device_count()} devices, asked for {n}"
    mesh = sharding.device_mesh(n) if n > 1 else None
    config = get_preset("t6-2d")
    x = data_mod.load("8gaussians", "train")
    module = networks.build(config["network"])
    tx = make_optimizer(config["optimizer"])
    state = init_state(jax.random.PRNGKey(0), module, tx, (2,))
    data = jnp.asarray(x)
    if mesh is not None:
        state, data = sharding.replicate(state, mesh), sharding.replicate(data, mesh)
    step = make_train_step(module, config, None, 0, mesh=mesh)
    t0 = time.perf_counter()
    state, m = step(state, data)
    jax.block_until_ready(state)
    compile_train = time.perf_counter() - t0
    t0 = time.perf_counter()
    for _ in range(steps):
        state, m = step(state, data)
    jax.block_until_ready(state)
    train_s = time.perf_counter() - t0

    schedule = from_name(config["schedule"])
    energy = NetworkEnergy(
        module, ema_variables(jax.tree_util.tree_map(np.asarray, state)), schedule, (2,), config.get("base_variance")
    )
    opts = sampling_options(schedule, config.get("sample", {}))
    kernel = progressive.build_kernel(opts["inner"], opts["num_inner_steps"], opts["step_scale"])
    steps_sz = progressive.default_step_sizes(energy, opts["inner"], opts["step_scale"])

    @jax.jit
    def descend(x_top, key):  # the body of progressive.sample, jitted once
        states = jax.vmap(lambda v: progressive.init(v, energy))(sharding.constrain_batch(x_top, mesh))

        def level(states, k):
            keys = sharding.constrain_batch(jax.random.split(k, num_samples), mesh)
            states, _ = jax.vmap(kernel, in_axes=(0, 0, None, None))(keys, states, energy, steps_sz)
            return states, None

        states, _ = jax.lax.scan(level, states, jax.random.split(key, energy.num_levels))
        return states.position

    x_top = sharding.maybe_shard_batch(jax.random.normal(jax.random.key(1), (num_samples, 2)), mesh, "samples")
    t0 = time.perf_counter()
    out = jax.block_until_ready(descend(x_top, jax.random.key(2)))
    compile_sample = time.perf_counter() - t0
    reps = 3
    t0 = time.perf_counter()
    for r in range(reps):
        out = jax.block_until_ready(descend(x_top, jax.random.key(3 + r)))
    sample_s = time.perf_counter() - t0
    return {
        "devices": n,
        "platform": jax.devices()[0].platform,
        "device_kind": jax.devices()[0].device_kind,
        "train_steps_per_s": steps / train_s,
        "train_examples_per_s": steps * config["batch_size"] / train_s,
        "train_compile_s": compile_train,
        "global_batch": config["batch_size"],
        "samples_per_s": reps * num_samples / sample_s,
        "sample_compile_s": compile_sample,
        "num_samples": num_samples,
        "sample_shards": len(out.addressable_shards),
        "final_loss_finite": bool(np.isfinite(float(m["loss"]))),
    }


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, nargs="+", default=[1, 2, 4])
    ap.add_argument("--steps", type=int, default=20, help="timed training steps per N")
    ap.add_argument("--samples", type=int, default=1024, help="chains of the progressive descent")
    ap.add_argument("--tag", default=None, help="results name (default: the platform)")
    ap.add_argument("--worker", type=int, default=None, help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker is not None:
        print("RESULT " + json.dumps(worker(args.worker, args.steps, args.samples)), flush=True)
        return
    rows = []
    for n in args.devices:
        env = dict(os.environ)
        flags = [
            f for f in env.get("XLA_FLAGS", "").split() if not f.startswith("--xla_force_host_platform_device_count")
        ]
        env["XLA_FLAGS"] = " ".join(flags + [f"--xla_force_host_platform_device_count={n}"])
        proc = subprocess.run(
            [
                sys.executable,
                os.path.abspath(__file__),
                "--worker",
                str(n),
                "--steps",
                str(args.steps),
                "--samples",
                str(args.samples),
            ],
            env=env,
            capture_output=True,
            text=True,
        )
        line = [l for l in proc.stdout.splitlines() if l.startswith("RESULT ")]
        if proc.returncode or not line:
            print(proc.stdout[-2000:], proc.stderr[-4000:], file=sys.stderr)
            raise SystemExit(f"worker for {n} devices failed")
        rows.append(json.loads(line[0][len("RESULT ") :]))
        r = rows[-1]
        print(f"N={n}: {r['train_steps_per_s']:.2f} steps/s, {r['samples_per_s']:.0f} samples/s", flush=True)
    base = rows[0]
    for r in rows:
        r["train_speedup"] = r["train_steps_per_s"] / base["train_steps_per_s"]
        r["sample_speedup"] = r["samples_per_s"] / base["samples_per_s"]
    tag = args.tag or rows[0]["platform"]
    print("\n| devices | train steps/s | speed-up | samples/s | speed-up | compile train / sample (s) |")
    print("|---|---|---|---|---|---|")
    for r in rows:
        print(
            f"| {r['devices']} | {r['train_steps_per_s']:.2f} | {r['train_speedup']:.2f} | {r['samples_per_s']:.0f} | "
            f"{r['sample_speedup']:.2f} | {r['train_compile_s']:.1f} / {r['sample_compile_s']:.1f} |"
        )
    out_dir = os.path.join(HERE, "results")
    os.makedirs(out_dir, exist_ok=True)
    meta = {
        "command": " ".join(["python", "benchmarks/scaling.py"] + sys.argv[1:]),
        "cpu_count": os.cpu_count(),
        "steps": args.steps,
        "samples": args.samples,
        "rows": rows,
    }
    with open(os.path.join(out_dir, f"scaling_{tag}.json"), "w") as fh:
        json.dump(meta, fh, indent=1)
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ns = [r["devices"] for r in rows]
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.2))
    for ax, key, label in (
        (axes[0], "train_steps_per_s", "t6-2d train steps/s (batch 256)"),
        (axes[1], "samples_per_s", f"progressive samples/s ({args.samples} chains)"),
    ):
        ax.plot(ns, [r[key] for r in rows], "o-", label="measured")
        ax.plot(ns, [base[key] * n for n in ns], "k--", lw=0.8, label="linear")
        ax.set_xlabel("devices")
        ax.set_xticks(ns)
        ax.set_title(label, fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle(f"{rows[0]['platform']} ({rows[0]['device_kind']}), {os.cpu_count()} cores", fontsize=9)
    fig.tight_layout()
    png = os.path.join(out_dir, f"scaling_{tag}.png")
    fig.savefig(png, dpi=120)
    print(f"\nwrote {png} and scaling_{tag}.json")


if __name__ == "__main__":
    main()
