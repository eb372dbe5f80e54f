"""Small JAX helpers shared across modules."""

from __future__ import annotations

#: Inner MCMC loops up to this length are fully unrolled.
MAX_FULL_UNROLL = 64


def inner_unroll(num_steps: int) -> int | bool:
    """``unroll`` for the ``lax.scan`` of a short inner MCMC loop (K Langevin/MALA steps).

    XLA:CPU runs convolutions inside a while loop on a slow path: 30 Langevin steps of the digits
    network took 2.9 s as a rolled scan and 0.25 s unrolled (benchmarks/train_throughput.py). Short
    loops are unrolled fully; long ones stay rolled to keep compile time bounded.
    """
    return True if int(num_steps) <= MAX_FULL_UNROLL else 1
