"""Throughput table of docs/performance.md: gradients/s of each network, samples/s of each
sampler, AIS gradients/s against the bare network's gradient rate, compile (first-call) and
second-call times. CPU seconds (``time.process_time``, all threads) beside wall seconds.

Each section is a row group; rows of sections not run are kept from the previous file:

    .venv/bin/python benchmarks/performance.py --section gradients
    .venv/bin/python benchmarks/performance.py --section samplers --model models/digits-dsm
    .venv/bin/python benchmarks/performance.py --section ais --model models/digits-dsm
    # -> benchmarks/results/performance.json and benchmarks/results/performance.md

Gradient rate: ``jax.grad`` of sum_b f(y_b, t) in y for a batch (one forward + one backward per
example), jitted once; "gradients/s" counts examples. First call = trace + compile + run;
second call = run with a new input (must not recompile).
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time

import jax
import jax.numpy as jnp
import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
OUT_JSON = os.path.join(HERE, "results", "performance.json")
OUT_MD = os.path.join(HERE, "results", "performance.md")
MODELS = ["models/digits-dsm", "models/digits-t6", "models/digits-t1k", "models/checkerboard-t6"]


def _clock():
    return np.array([time.process_time(), time.perf_counter()])


def _timed(fn, *args):
    c = _clock()
    out = fn(*args)
    jax.block_until_ready(out)
    return out, _clock() - c


def _command(section, extra=""):
    return f".venv/bin/python benchmarks/performance.py --section {section}{extra}"


def _cifar_energy(blocks: int):
    from ebm_ppl.energy import NetworkEnergy, networks
    from ebm_ppl.schedules import from_name
    from ebm_ppl.train.presets import get_preset

    cfg = get_preset("t6-cifar")
    cfg["network"]["num_res_blocks"] = blocks
    module = networks.build(cfg["network"])
    variables = networks.init_variables(jax.random.PRNGKey(0), module, (32, 32, 3))
    return NetworkEnergy(module, variables, from_name(cfg["schedule"]), (32, 32, 3), cfg.get("base_variance"))


def gradient_row(name, energy, batch, reps, command):
    """First call, second call and steady-state rate of the y-gradient of a batch."""
    t = energy.num_levels // 2

    @jax.jit
    def grad(e, y):
        return jax.grad(lambda v: jnp.sum(e.log_density(v, t)))(y)

    @jax.jit
    def fwd(e, y):
        return e.log_density(y, t)

    shape = (batch,) + tuple(energy.data_shape)
    ys = [jax.random.normal(jax.random.PRNGKey(i), shape) for i in range(3)]
    _, first = _timed(grad, energy, ys[0])
    _, second = _timed(grad, energy, ys[1])
    _timed(fwd, energy, ys[0])
    c = _clock()
    for i in range(reps):
        out = grad(energy, ys[i % 3])
    jax.block_until_ready(out)
    g = (_clock() - c) / reps
    c = _clock()
    for i in range(reps):
        out = fwd(energy, ys[i % 3])
    jax.block_until_ready(out)
    f = (_clock() - c) / reps
    return {
        "row": f"gradient/{name}",
        "what": f"grad_y sum f(y, t={t}), batch {batch}",
        "batch": batch,
        "first_call_cpu_s": first[0],
        "first_call_wall_s": first[1],
        "second_call_cpu_s": second[0],
        "second_call_wall_s": second[1],
        "gradients_per_cpu_s": batch / g[0],
        "gradients_per_s_wall": batch / g[1],
        "forwards_per_cpu_s": batch / f[0],
        "cpu_s_per_batch_gradient": g[0],
        "command": command,
    }


def section_gradients(args):
    from ebm_ppl.checkpoint import load

    rows = []
    for path in args.models:
        name = os.path.basename(path.rstrip("/"))
        energy = load(path)
        batch = 64
        rows.append(gradient_row(name, energy, batch, args.reps, _command("gradients", f" --models {path}")))
        print(json.dumps(rows[-1]), flush=True)
    for blocks in args.cifar_blocks:
        rows.append(
            gradient_row(
                f"cifar-wrn-{blocks}blocks",
                _cifar_energy(blocks),
                8,
                max(2, args.reps // 10),
                _command("gradients", f" --models --cifar-blocks {blocks}"),
            )
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def section_samplers(args):
    from ebm_ppl.checkpoint import load
    from ebm_ppl.sampling import long_run, progressive

    rows = []
    for path in args.models:
        name = os.path.basename(path.rstrip("/"))
        energy = load(path)
        n = 64
        cmd = _command("samplers", f" --models {path}")

        # progressive Langevin (the training sampler, K = 30 per level), first and second call
        def prog(k, energy=energy, n=n):
            return progressive.sample(k, energy, n)

        _, first = _timed(prog, jax.random.key(0))
        _, second = _timed(prog, jax.random.key(1))
        grads = n * energy.num_levels * 30
        rows.append(
            {
                "row": f"sampler/progressive-langevin/{name}",
                "what": f"progressive.sample, {n} samples, K = 30",
                "first_call_cpu_s": first[0],
                "first_call_wall_s": first[1],
                "second_call_cpu_s": second[0],
                "second_call_wall_s": second[1],
                "samples_per_cpu_s": n / second[0],
                "samples_per_s_wall": n / second[1],
                "gradients_per_cpu_s": grads / second[0],
                "command": cmd,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
        # long run: HMC (2 leapfrog) at fixed steps, S = 10 per level, first and second call
        steps = progressive.default_step_sizes(energy, "hmc")
        S = 10

        def lr(k, energy=energy, n=n, S=S, steps=steps):
            return long_run.run(k, energy, n, steps_per_level=S, step_sizes=steps, start="x_next").samples

        _, first = _timed(lr, jax.random.key(0))
        _, second = _timed(lr, jax.random.key(1))
        grads = n * energy.num_levels * (S - 1) * 2  # one value-and-gradient per leapfrog step (L = 2)
        rows.append(
            {
                "row": f"sampler/long-run-hmc/{name}",
                "what": f"long_run.run, {n} chains, S = {S}, HMC L = 2",
                "first_call_cpu_s": first[0],
                "first_call_wall_s": first[1],
                "second_call_cpu_s": second[0],
                "second_call_wall_s": second[1],
                "samples_per_cpu_s": n / second[0],
                "samples_per_s_wall": n / second[1],
                "gradients_per_cpu_s": grads / second[0],
                "command": cmd,
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


def section_ais(args):
    from ebm_ppl import logz
    from ebm_ppl.checkpoint import load

    rows = []
    for path in args.models:
        name = os.path.basename(path.rstrip("/"))
        energy = load(path)
        n, bridges = 64, 200

        def run(k, energy=energy, n=n, bridges=bridges):
            return logz.ais(k, energy, num_particles=n, num_bridges=bridges, frame="identity")

        c = _clock()
        est = run(jax.random.key(0))
        first = _clock() - c
        c = _clock()
        est = run(jax.random.key(1))
        second = _clock() - c
        bare = gradient_row(name, energy, n, args.reps, "")
        rows.append(
            {
                "row": f"ais/{name}",
                "what": f"logz.ais, {n} particles, {bridges} bridges, MALA x2, identity frame",
                "first_call_cpu_s": first[0],
                "first_call_wall_s": first[1],
                "second_call_cpu_s": second[0],
                "second_call_wall_s": second[1],
                "num_grad_evals": int(est.num_grad_evals),
                "gradients_per_cpu_s": est.num_grad_evals / second[0],
                "bare_gradients_per_cpu_s": bare["gradients_per_cpu_s"],
                "ais_overhead": bare["gradients_per_cpu_s"] / (est.num_grad_evals / second[0]),
                "command": _command("ais", f" --models {path}"),
            }
        )
        print(json.dumps(rows[-1]), flush=True)
    return rows


SECTIONS = {"gradients": section_gradients, "samplers": section_samplers, "ais": section_ais}


def _markdown(rows) -> str:
    def f(v, p=3):
        return "" if v is None else (f"{v:.{p}g}" if isinstance(v, float) else str(v))

    lines = [
        "| row | what | first call CPU-s (wall) | second call CPU-s (wall) | rate | command |",
        "|---|---|---|---|---|---|",
    ]
    for r in rows:
        if "gradients_per_cpu_s" in r and r["row"].startswith("gradient/"):
            rate = f"{f(r['gradients_per_cpu_s'])} grad/CPU-s ({f(r['gradients_per_s_wall'])}/s wall); fwd {f(r['forwards_per_cpu_s'])}/CPU-s"
        elif r["row"].startswith("ais/"):
            rate = (
                f"{f(r['gradients_per_cpu_s'])} grad/CPU-s; bare {f(r['bare_gradients_per_cpu_s'])}; "
                f"overhead x{f(r['ais_overhead'])}"
            )
        else:
            rate = f"{f(r['samples_per_cpu_s'])} samples/CPU-s ({f(r['gradients_per_cpu_s'])} grad/CPU-s)"
        lines.append(
            f"| {r['row']} | {r['what']} | {f(r['first_call_cpu_s'])} ({f(r['first_call_wall_s'])}) | "
            f"{f(r['second_call_cpu_s'])} ({f(r['second_call_wall_s'])}) | {rate} | `{r['command']}` |"
        )
    return "\n".join(lines) + "\n"


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--section", choices=sorted(SECTIONS), action="append")
    p.add_argument("--models", nargs="*", default=None, help=f"checkpoint folders (default {MODELS})")
    p.add_argument(
        "--cifar-blocks", type=int, nargs="*", default=[], help="gradients: also the CIFAR WRN at these block counts"
    )
    p.add_argument("--reps", type=int, default=20, help="timed repetitions of the steady-state rates")
    args = p.parse_args()
    if args.models is None:
        args.models = MODELS
    rows = {}
    if os.path.exists(OUT_JSON):
        with open(OUT_JSON) as fh:
            rows = {r["row"]: r for r in json.load(fh).get("rows", [])}
    for name in args.section or ["gradients"]:
        for r in SECTIONS[name](args):
            rows[r["row"]] = r
    result = {
        "machine": {
            "platform": platform.platform(),
            "cpu_count": os.cpu_count(),
            "jax": jax.__version__,
            "backend": jax.default_backend(),
            "xla_flags": os.environ.get("XLA_FLAGS", ""),
        },
        "rows": sorted(rows.values(), key=lambda r: r["row"]),
    }
    os.makedirs(os.path.dirname(OUT_JSON), exist_ok=True)
    for path, text in ((OUT_JSON, json.dumps(result, indent=1)), (OUT_MD, _markdown(result["rows"]))):
        with open(path + ".tmp", "w") as fh:
            fh.write(text)
        os.replace(path + ".tmp", path)
    print(_markdown(result["rows"]))


if __name__ == "__main__":
    main()
