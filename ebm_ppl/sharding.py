"""Scale-out with JAX's own sharding: a 1-D device mesh, batch/chain/particle axes split over it.

Nothing here schedules work by hand. Arrays whose leading axis is a batch of independent items
(training examples, chains, AIS particles, images of an inverse problem) are placed with
``NamedSharding(mesh, P("batch"))``; parameters are replicated (``P()``). ``jax.jit`` then
partitions the computation (GSPMD): per-example work runs where its data lives and reductions
over the batch (a mean loss, its gradient) become all-reduces inserted by the compiler.

Multi-host: call :func:`initialize_distributed` (``jax.distributed.initialize``) on every host
before anything else; ``jax.devices()`` then lists every host's devices and the same mesh spans
them (see docs/scaling.md).
"""

from __future__ import annotations

import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

__all__ = [
    "BATCH_AXIS",
    "device_mesh",
    "batch_sharding",
    "replicated_sharding",
    "shard_batch",
    "replicate",
    "pad_to_multiple",
    "devices_of",
    "initialize_distributed",
]

BATCH_AXIS = "batch"


def device_mesh(num_devices: int | None = None) -> Mesh:
    """A 1-D mesh over the first ``num_devices`` devices (default: all, across hosts)."""
    devices = jax.devices()
    if num_devices is None:
        num_devices = len(devices)
    if not 1 <= int(num_devices) <= len(devices):
        raise ValueError(
            f"asked for {num_devices} devices but {len(devices)} are available "
            f"({devices[0].platform}); on CPU set XLA_FLAGS=--xla_force_host_platform_device_count=N"
        )
    return Mesh(np.array(devices[: int(num_devices)]), (BATCH_AXIS,))


def batch_sharding(mesh: Mesh) -> NamedSharding:
    """Leading axis split over the mesh, the rest replicated."""
    return NamedSharding(mesh, P(BATCH_AXIS))


def replicated_sharding(mesh: Mesh) -> NamedSharding:
    return NamedSharding(mesh, P())


def shard_batch(tree, mesh: Mesh):
    """Place every array of ``tree`` with its leading axis split over ``mesh``.

    The leading axis must be a multiple of the number of devices (see :func:`pad_to_multiple`).
    """
    n_dev = mesh.devices.size

    def place(x):
        x = jax.numpy.asarray(x)
        if x.ndim == 0 or x.shape[0] % n_dev:
            raise ValueError(
                f"cannot split a leading axis of {x.shape[0] if x.ndim else 'a scalar'} over {n_dev} devices; "
                f"use a multiple of {n_dev}"
            )
        return jax.device_put(x, batch_sharding(mesh))

    return jax.tree_util.tree_map(place, tree)


def replicate(tree, mesh: Mesh):
    """Place every array of ``tree`` on every device of ``mesh``."""
    return jax.device_put(tree, replicated_sharding(mesh))


def pad_to_multiple(n: int, mesh: Mesh) -> int:
    """The smallest multiple of the mesh size that is >= n."""
    k = mesh.devices.size
    return -(-int(n) // k) * k


def devices_of(x) -> int:
    """How many devices hold a piece of array ``x``."""
    return len(x.sharding.device_set)


def initialize_distributed(coordinator_address: str | None = None, num_processes: int | None = None,
                           process_id: int | None = None) -> None:
    """Multi-host start-up: ``jax.distributed.initialize`` with the given (or auto-detected) cluster."""
    jax.distributed.initialize(coordinator_address=coordinator_address, num_processes=num_processes,
                               process_id=process_id)
