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

from typing import Any

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
    "num_devices",
    "check_divisible",
    "constrain_batch",
    "maybe_shard_batch",
    "to_host",
    "mesh_from_arg",
    "pad_batch",
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
        return _put(x, batch_sharding(mesh))

    return jax.tree_util.tree_map(place, tree)


def _put(x, sharding: NamedSharding):
    """``device_put``; with several processes, build the global array from the full value every
    process holds (same data, same keys on every host) with ``make_array_from_callback``."""
    if jax.process_count() == 1 or (isinstance(x, jax.Array) and not x.is_fully_addressable):
        return jax.device_put(x, sharding)
    host = np.asarray(x)
    return jax.make_array_from_callback(host.shape, sharding, lambda index: host[index])


def replicate(tree, mesh: Mesh):
    """Place every array of ``tree`` on every device of ``mesh``."""
    sharding = replicated_sharding(mesh)
    if jax.process_count() == 1:
        return jax.device_put(tree, sharding)
    return jax.tree_util.tree_map(lambda x: _put(x, sharding), tree)


def pad_to_multiple(n: int, mesh: Mesh | None) -> int:
    """The smallest multiple of the mesh size that is >= n (n itself without a mesh)."""
    k = num_devices(mesh)
    return -(-int(n) // k) * k


def devices_of(x) -> int:
    """How many devices hold a piece of array ``x``."""
    return len(x.sharding.device_set)


def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids=None,
) -> dict:
    """Multi-host start-up: ``jax.distributed.initialize`` with the given (or auto-detected) cluster.

    Call it once per process, before any other JAX call. With every argument None, JAX detects
    the cluster (SLURM, Open MPI, TPU pods, Kubernetes JobSets). Returns what was passed (for
    logging) and the resulting process index / count.
    """
    kwargs: dict[str, Any] = {
        "coordinator_address": coordinator_address,
        "num_processes": num_processes,
        "process_id": process_id,
    }
    if local_device_ids is not None:
        kwargs["local_device_ids"] = local_device_ids
    if num_processes is not None and int(num_processes) < 1:
        raise ValueError(f"num_processes must be >= 1, got {num_processes}")
    if process_id is not None and num_processes is not None and not 0 <= int(process_id) < int(num_processes):
        raise ValueError(f"process_id must be in 0..{int(num_processes) - 1}, got {process_id}")
    jax.distributed.initialize(**kwargs)
    return {**kwargs, "process_index": jax.process_index(), "process_count": jax.process_count()}


def num_devices(mesh: Mesh | None) -> int:
    """Devices in ``mesh`` (1 for ``None``: no sharding)."""
    return 1 if mesh is None else int(mesh.devices.size)


def check_divisible(n: int, mesh: Mesh | None, what: str = "items") -> None:
    """Raise a ValueError naming ``what`` unless ``n`` splits evenly over ``mesh``."""
    k = num_devices(mesh)
    if int(n) % k:
        lo, hi = (int(n) // k) * k, pad_to_multiple(n, mesh)
        raise ValueError(
            f"{what}: {n} cannot be split evenly over {k} devices; use a multiple of {k} "
            f"(e.g. {hi}{f' or {lo}' if lo else ''}) or fewer devices"
        )


def constrain_batch(tree, mesh: Mesh | None):
    """Inside ``jit``: constrain every array's leading axis to be split over ``mesh`` (no-op for
    ``None``). ``jax.lax.with_sharding_constraint`` with ``NamedSharding(mesh, P("batch"))``."""
    if mesh is None:
        return tree
    return jax.tree_util.tree_map(lambda x: jax.lax.with_sharding_constraint(x, batch_sharding(mesh)), tree)


def maybe_shard_batch(tree, mesh: Mesh | None, what: str = "items"):
    """:func:`shard_batch` with a clear error naming ``what`` when the leading axis does not divide;
    ``mesh=None`` returns ``tree`` unchanged (one device, nothing placed)."""
    if mesh is None:
        return tree
    for x in jax.tree_util.tree_leaves(tree):
        if np.ndim(x) == 0:
            raise ValueError(f"{what}: a scalar has no leading axis to split over devices")
        check_divisible(np.shape(x)[0], mesh, what)
    return shard_batch(tree, mesh)


def pad_batch(x, mesh: Mesh | None):
    """Pad the leading axis of array ``x`` (repeating its last row) to a multiple of the mesh size;
    returns (padded, original length)."""
    n = int(np.shape(x)[0])
    m = pad_to_multiple(n, mesh) if mesh is not None else n
    if m == n:
        return x, n
    x = jax.numpy.asarray(x)
    return jax.numpy.concatenate([x, jax.numpy.repeat(x[-1:], m - n, axis=0)]), n


def to_host(tree):
    """Numpy copies of (possibly sharded, possibly multi-host) arrays: a replicated array is read
    from this process's first shard; a sharded array that spans several processes is gathered."""

    def one(x):
        if not isinstance(x, jax.Array):
            return np.asarray(x)
        if x.is_fully_addressable:
            return np.asarray(x)
        if x.sharding.is_fully_replicated:
            return np.asarray(x.addressable_data(0))
        from jax.experimental import multihost_utils

        return np.asarray(multihost_utils.process_allgather(x, tiled=True))

    return jax.tree_util.tree_map(one, tree)


def mesh_from_arg(devices: int | None) -> Mesh | None:
    """The mesh a ``--devices N`` option asks for: ``None`` (default) means every device JAX sees
    (all local devices; after :func:`initialize_distributed`, every host's). A mesh of one device
    is returned as ``None`` so that the one-device code path is exactly the unsharded one."""
    n = len(jax.devices()) if devices is None else int(devices)
    mesh = device_mesh(n)
    return None if n == 1 else mesh
