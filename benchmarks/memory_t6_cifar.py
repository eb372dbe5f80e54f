"""Memory per device of the ``t6-cifar`` training step (batch 256, CIFAR-10 shapes), from XLA.

    python benchmarks/memory_t6_cifar.py [--devices N] [--batch 256] [--out benchmarks/results/memory_t6_cifar.json]

Compiles (never runs) the jitted training step of :func:`ebm_ppl.train.make_train_step` on
abstract inputs (``jax.ShapeDtypeStruct``: no data, no parameters allocated) and reads
``compiled.memory_analysis()``: arguments (state + data set), outputs, temporaries (activations
kept for the backward pass, Langevin chain buffers) per device. With ``--devices N > 1`` it
re-executes itself with ``XLA_FLAGS=--xla_force_host_platform_device_count=N`` (CPU) and the
batch is split over a mesh of N devices. Figures are XLA:CPU's buffer assignment; a GPU build
schedules differently (cuDNN workspaces, fusion), so treat them as an estimate within ~2x.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import subprocess
import sys
import time


def main():
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--devices", type=int, default=1)
    ap.add_argument("--batch", type=int, default=256)
    ap.add_argument("--dataset-size", type=int, default=50000, help="images held (replicated) on each device")
    ap.add_argument("--preset", default="t6-cifar")
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    flag = f"--xla_force_host_platform_device_count={args.devices}"
    if args.devices > 1 and flag not in os.environ.get("XLA_FLAGS", ""):
        env = dict(os.environ, XLA_FLAGS=(os.environ.get("XLA_FLAGS", "") + " " + flag).strip(), JAX_PLATFORMS="cpu")
        sys.exit(subprocess.call([sys.executable] + sys.argv, env=env))

    import jax
    import jax.numpy as jnp

    from ebm_ppl import sharding
    from ebm_ppl.energy import networks
    from ebm_ppl.train import get_preset
    from ebm_ppl.train.loop import init_state, make_optimizer, make_train_step

    config = get_preset(args.preset)
    config["batch_size"] = args.batch
    data_shape = (32, 32, 3)
    module = networks.build(config["network"])
    tx = make_optimizer(config["optimizer"])
    state_shape = jax.eval_shape(lambda k: init_state(k, module, tx, data_shape), jax.random.PRNGKey(0))
    n_params = sum(math.prod(x.shape) for x in jax.tree_util.tree_leaves(state_shape["params"]))
    mesh = sharding.device_mesh(args.devices) if args.devices > 1 else None
    step = make_train_step(module, config, {"bin_width": 2 / 256}, 0, mesh=mesh)
    data = jax.ShapeDtypeStruct((args.dataset_size,) + data_shape, jnp.float32)
    if mesh is not None:
        rep = sharding.replicated_sharding(mesh)
        state_shape = jax.tree_util.tree_map(
            lambda s: jax.ShapeDtypeStruct(s.shape, s.dtype, sharding=rep), state_shape
        )
        data = jax.ShapeDtypeStruct(data.shape, data.dtype, sharding=rep)
    t0 = time.time()
    compiled = step.lower(state_shape, data).compile()
    seconds = time.time() - t0
    ma = compiled.memory_analysis()
    gib = 2.0**30
    figures = {
        k: getattr(ma, k)
        for k in (
            "argument_size_in_bytes",
            "output_size_in_bytes",
            "temp_size_in_bytes",
            "alias_size_in_bytes",
            "generated_code_size_in_bytes",
        )
    }
    data_bytes = args.dataset_size * math.prod(data_shape) * 4
    result = {
        "preset": args.preset,
        "devices": args.devices,
        "global_batch": args.batch,
        "per_device_batch": args.batch // args.devices,
        "num_params": int(n_params),
        "params_mib": n_params * 4 / 2**20,
        "state_mib (params, EMA, Adam m and v)": 4 * n_params * 4 / 2**20,
        "dataset_gib_replicated": data_bytes / gib,
        **{k: v for k, v in figures.items()},
        "temp_gib": figures["temp_size_in_bytes"] / gib,
        "total_gib_per_device": (
            figures["argument_size_in_bytes"]
            + figures["output_size_in_bytes"]
            + figures["temp_size_in_bytes"]
            - figures["alias_size_in_bytes"]
        )
        / gib,
        "total_gib_per_device_without_dataset": (
            figures["argument_size_in_bytes"]
            + figures["output_size_in_bytes"]
            + figures["temp_size_in_bytes"]
            - figures["alias_size_in_bytes"]
            - data_bytes
        )
        / gib,
        "compile_seconds": seconds,
        "backend": jax.default_backend(),
    }
    print(json.dumps(result, indent=1))
    if args.out:
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        with open(args.out, "w") as fh:
            json.dump(result, fh, indent=1)


if __name__ == "__main__":
    main()
