"""CPU time of the convolutions of the CIFAR energy network (one 3x3 conv, 32x32x128 -> 128, batch 8)
in XLA:CPU: forward, forward + input gradient, forward + weight gradient, and the same FLOPs as
one matmul or as im2col + dot (docs/performance.md, section 3). Writes benchmarks/results/conv_ops.json.

    XLA_FLAGS="--xla_cpu_multi_thread_eigen=false intra_op_parallelism_threads=1" .venv/bin/python benchmarks/conv_ops.py
"""

import json
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

RESULTS = {}
B, H, C, O = 8, 32, 128, 128
x = jax.random.normal(jax.random.key(0), (B, H, H, C))
w = jax.random.normal(jax.random.key(1), (3, 3, C, O)) * 0.03
dn = ("NHWC", "HWIO", "NHWC")


def conv(x, w):
    return jax.lax.conv_general_dilated(x, w, (1, 1), "SAME", dimension_numbers=dn)


def im2col(x, w):
    p = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    cols = jnp.concatenate([p[:, i : i + H, j : j + H, :] for i in range(3) for j in range(3)], axis=-1)  # B,H,W,9C
    return cols.reshape(B * H * H, 9 * C) @ w.reshape(9 * C, O)


def shifted(x, w):  # sum of 9 matmuls on shifted inputs
    p = jnp.pad(x, ((0, 0), (1, 1), (1, 1), (0, 0)))
    out = 0
    for i in range(3):
        for j in range(3):
            out = out + jnp.einsum("bhwc,co->bhwo", p[:, i : i + H, j : j + H, :], w[i, j])
    return out


flops = 2 * B * H * H * C * O * 9


def bench(name, f, *a, n=20):
    f = jax.jit(f)
    r = f(*a)
    jax.block_until_ready(r)
    c0 = time.process_time()
    w0 = time.perf_counter()
    for _ in range(n):
        r = f(*a)
    jax.block_until_ready(r)
    c = (time.process_time() - c0) / n
    RESULTS[name] = {"cpu_ms": c * 1e3, "gflops_fwd_equiv": flops / c / 1e9}
    print(
        f"{name:28s} {c * 1e3:8.1f} ms cpu  {flops / c / 1e9:6.1f} GFLOP/s(fwd-equiv)  wall {(time.perf_counter() - w0) / n * 1e3:.1f} ms",
        flush=True,
    )


assert np.abs(conv(x, w) - im2col(x, w).reshape(B, H, H, O)).max() < 1e-3
bench("conv fwd", conv, x, w)
bench("im2col fwd", im2col, x, w)
bench("shifted fwd", shifted, x, w)
bench("conv dx", lambda x, w: jax.grad(lambda x: jnp.sum(conv(x, w) ** 2))(x), x, w)
bench("im2col dx", lambda x, w: jax.grad(lambda x: jnp.sum(im2col(x, w) ** 2))(x), x, w)
bench("conv dw", lambda x, w: jax.grad(lambda w: jnp.sum(conv(x, w) ** 2))(w), x, w)
bench(
    "matmul same flops",
    lambda a, b: a @ b,
    jax.random.normal(jax.random.key(2), (B * H * H, 9 * C)),
    jax.random.normal(jax.random.key(3), (9 * C, O)),
)
out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "results", "conv_ops.json")
with open(out + ".tmp", "w") as fh:
    json.dump({"shape": [B, H, H, C, O], "xla_flags": os.environ.get("XLA_FLAGS", ""), "ops": RESULTS}, fh, indent=1)
os.replace(out + ".tmp", out)
