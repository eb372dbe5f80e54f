"""Training throughput: CPU seconds and wall seconds per step, and time to the first step
(compile + one step), of the t6-digits preset and of the paper's CIFAR train step (32x32x3,
batch 8, T6, K = 30 Langevin steps, spectral norm, channels 128/256/256/256) at 2 and 8 residual
blocks per resolution (8 = the t6-cifar preset). CPU seconds (``time.process_time``, all threads
of this process) are the stable figure on a shared machine; wall seconds vary with the load.

Each case is one entry of benchmarks/results/train_throughput.json (entries of other cases
already in the file are kept, so cases can be run one at a time):

    .venv/bin/python benchmarks/train_throughput.py --case digits --steps 20
    .venv/bin/python benchmarks/train_throughput.py --case cifar2 --steps 3
    .venv/bin/python benchmarks/train_throughput.py --case cifar8 --steps 2
    .venv/bin/python benchmarks/train_throughput.py --case cifar2 --structure split,fused  # side by side
    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" ... # 1 thread

``--structure split`` (default) is the library's step (``langevin_chunk=1``: begin, K Langevin
calls, finish; see ebm_ppl/train/step.py); ``fused`` the whole step in one jit with the K steps
unrolled; ``chunkN`` N Langevin steps per call. Reference (issue 18, official TensorFlow code on
this machine, CPU-s): 2 blocks 10.4-10.8 per step, 24 to the first step; 8 blocks 39.7-41.3 per
step, 86 to the first step.
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
from ebm_ppl.train.loop import init_state, make_optimizer
from ebm_ppl.train.presets import get_preset
from ebm_ppl.train.step import compiled_counts, make_train_step

REFERENCE_TF = {  # issue 18: official TensorFlow code, same machine, CPU-s
    "cifar2": {"cpu_s_per_step": [10.4, 10.8], "first_step_cpu_s": 24.0},
    "cifar8": {"cpu_s_per_step": [39.7, 41.3], "first_step_cpu_s": 86.0},
}
CASES = {  # name -> (preset, data shape, batch size, quantisation levels, residual blocks or None)
    "digits": ("t6-digits", (8, 8, 1), None, 17, None),
    "cifar2": ("t6-cifar", (32, 32, 3), 8, 256, 2),
    "cifar8": ("t6-cifar", (32, 32, 3), 8, 256, 8),
}


def _chunk(structure: str):
    if structure == "fused":
        return None
    if structure == "split":
        return 1
    if structure.startswith("chunk"):
        return int(structure[5:])
    raise SystemExit(f"--structure must be split, fused or chunkN, got {structure!r}")


def _clock():
    return time.process_time(), time.perf_counter()


def measure(case: str, steps: int, structures: list[str]) -> list[dict]:
    """One entry per structure; with several, the timed steps are interleaved (structure A, B, A,
    B, ...) so that all see the same machine load."""
    preset, shape, batch, levels, blocks = CASES[case]
    cfg = get_preset(preset)
    if batch is not None:
        cfg["batch_size"] = batch
    if blocks is not None:
        cfg["network"]["num_res_blocks"] = blocks
    module = networks.build(cfg["network"])
    state0 = init_state(jax.random.PRNGKey(0), module, make_optimizer(cfg["optimizer"]), shape)
    data = jax.random.uniform(jax.random.PRNGKey(1), (max(cfg["batch_size"] * 4, 64),) + shape, minval=-1, maxval=1)
    jax.block_until_ready((state0, data))
    steps_fn, states, first, per_cpu, per_wall, loss = {}, {}, {}, {}, {}, {}
    for st in structures:
        steps_fn[st] = make_train_step(module, cfg, {"bin_width": 2.0 / levels}, 0, langevin_chunk=_chunk(st))
        c0, w0 = _clock()
        states[st], m = steps_fn[st](state0, data)
        jax.block_until_ready(states[st])
        c1, w1 = _clock()
        first[st], per_cpu[st], per_wall[st], loss[st] = (c1 - c0, w1 - w0), [], [], float(m["loss"])
    for _ in range(steps):
        for st in structures:
            c0, w0 = _clock()
            states[st], m = steps_fn[st](states[st], data)
            jax.block_until_ready(states[st])
            c1, w1 = _clock()
            per_cpu[st].append(c1 - c0)
            per_wall[st].append(w1 - w0)
            loss[st] = float(m["loss"])
    n_params = int(sum(np.size(v) for v in jax.tree_util.tree_leaves(state0["params"])))
    outs = []
    for st in structures:
        out = {
            "case": case,
            "preset": preset,
            "structure": st,
            "interleaved_with": [s for s in structures if s != st],
            "network": cfg["network"],
            "data_shape": list(shape),
            "batch_size": cfg["batch_size"],
            "langevin_steps": cfg["objective"].get("num_steps"),
            "num_params": n_params,
            "timed_steps": steps,
            "first_step_cpu_s": first[st][0],
            "first_step_wall_s": first[st][1],
            "cpu_s_per_step": float(np.median(per_cpu[st])) if per_cpu[st] else None,
            "cpu_s_per_step_all": per_cpu[st],
            "wall_s_per_step": float(np.median(per_wall[st])) if per_wall[st] else None,
            "wall_s_per_step_all": per_wall[st],
            "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0,
            "final_loss": loss[st],
            "compiled": compiled_counts(),
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
        }
        if case in REFERENCE_TF and out["cpu_s_per_step"]:
            ref = REFERENCE_TF[case]
            out["reference_tf"] = ref
            out["ratio_cpu_per_step_to_tf"] = out["cpu_s_per_step"] / float(np.mean(ref["cpu_s_per_step"]))
            out["ratio_first_step_to_tf"] = first[st][0] / ref["first_step_cpu_s"]
        outs.append(out)
    return outs


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--case", choices=sorted(CASES), action="append", help="case(s) to run (default: digits, cifar2)")
    p.add_argument("--steps", type=int, default=3, help="timed steps after the first")
    p.add_argument(
        "--structure",
        default="split",
        help="split (default), fused or chunkN; several comma-separated: timed steps interleaved",
    )
    p.add_argument("--out", default=os.path.join(os.path.dirname(__file__), "results", "train_throughput.json"))
    args = p.parse_args()
    results = {}
    if os.path.exists(args.out):
        with open(args.out) as fh:
            results = json.load(fh)
        results = {k: v for k, v in results.items() if isinstance(v, dict) and "case" in v}
    results["machine"] = {
        "platform": platform.platform(),
        "cpu_count": os.cpu_count(),
        "backend": jax.default_backend(),
        "jax": jax.__version__,
        "devices": [str(d) for d in jax.devices()],
    }
    for case in args.case or ["digits", "cifar2"]:
        for entry in measure(case, args.steps, args.structure.split(",")):
            results[f"{case}/{entry['structure']}"] = entry
            print(
                json.dumps(
                    {
                        k: entry[k]
                        for k in (
                            "case",
                            "structure",
                            "first_step_cpu_s",
                            "first_step_wall_s",
                            "cpu_s_per_step",
                            "wall_s_per_step",
                        )
                    }
                ),
                flush=True,
            )
        os.makedirs(os.path.dirname(os.path.abspath(args.out)), exist_ok=True)
        tmp = args.out + ".tmp"
        with open(tmp, "w") as fh:
            json.dump(results, fh, indent=1)
        os.replace(tmp, args.out)


if __name__ == "__main__":
    main()
