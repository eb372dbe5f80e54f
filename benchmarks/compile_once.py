"""First and second call of ``EBMPrior(ckpt).sample(key, (64,))`` in a fresh process (issue 18 item 1).

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" \\
    .venv/bin/python benchmarks/compile_once.py [--ckpt models/digits-dsm] [--n 64]
    # -> benchmarks/results/compile_once.json

Each case runs in its own Python process (nothing compiled before): the prior is built, then
``sample`` is called twice with different keys (results blocked on). Cases: the progressive
defaults (no ``progressive_kwargs``: MALA K = 10, tuned steps) and the checkpoint's own sampler
settings (``sampling`` in its config.json, passed as ``progressive_kwargs``). Wall and process CPU
seconds of each call; the second call must cost at most 10% of the first.
"""

import argparse
import json
import os
import subprocess
import sys

OUT = os.path.join("benchmarks", "results", "compile_once.json")

CHILD = r"""
import json, sys, time
import jax
from ebm_ppl import checkpoint
from ebm_ppl.distribution import EBMPrior
from ebm_ppl.train.loop import sampling_options
ckpt, n, which = sys.argv[1], int(sys.argv[2]), sys.argv[3]
kwargs = {}
if which == "checkpoint":
    cfg = checkpoint.read_config(ckpt).get("sampling") or {}
    kwargs = sampling_options(checkpoint.load(ckpt).schedule, cfg)
prior = EBMPrior(ckpt, sampler="progressive")
out = {"case": which, "progressive_kwargs": {k: (v if isinstance(v, (int, float, str)) else list(map(float, v)))
                                             for k, v in kwargs.items()}, "calls": []}
from ebm_ppl.distribution import _progressive_to_level
for seed in (0, 1):
    w0, c0 = time.perf_counter(), time.process_time()
    if kwargs:  # the checkpoint's settings, as EBMPrior passes them once it reads them (issue 16 item 2)
        x = jax.block_until_ready(_progressive_to_level(prior.energy, jax.random.key(seed), n, 0, kwargs))
    else:
        x = jax.block_until_ready(prior.sample(jax.random.key(seed), (n,)))
    out["calls"].append({"wall_s": time.perf_counter() - w0, "cpu_s": time.process_time() - c0})
out["shape"] = list(x.shape)
print("RESULT " + json.dumps(out))
"""


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--ckpt", default="models/digits-dsm")
    p.add_argument("--n", type=int, default=64)
    p.add_argument("--cases", nargs="+", default=["checkpoint", "defaults"])
    p.add_argument("--out", default=OUT)
    a = p.parse_args()
    rows = []
    for case in a.cases:
        res = subprocess.run([sys.executable, "-c", CHILD, a.ckpt, str(a.n), case], capture_output=True, text=True)
        line = [ln for ln in res.stdout.splitlines() if ln.startswith("RESULT ")]
        if res.returncode or not line:
            raise SystemExit(f"case {case} failed:\n{res.stderr[-3000:]}")
        r = json.loads(line[0][7:])
        first, second = r["calls"]
        r.update(
            ckpt=a.ckpt,
            n=a.n,
            second_over_first_wall=second["wall_s"] / first["wall_s"],
            second_over_first_cpu=second["cpu_s"] / first["cpu_s"],
        )
        rows.append(r)
        print(
            f"{case:10s} first {first['wall_s']:.2f} s wall / {first['cpu_s']:.2f} s CPU, second "
            f"{second['wall_s']:.2f} s / {second['cpu_s']:.2f} s: ratio {r['second_over_first_wall']:.3f} wall, "
            f"{r['second_over_first_cpu']:.3f} CPU",
            flush=True,
        )
    os.makedirs(os.path.dirname(a.out) or ".", exist_ok=True)
    tmp = a.out + ".tmp"
    with open(tmp, "w") as fh:
        json.dump({"rows": rows}, fh, indent=1)
    os.replace(tmp, a.out)
    print("wrote", a.out)


if __name__ == "__main__":
    main()
