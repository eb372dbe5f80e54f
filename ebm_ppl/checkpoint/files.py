"""Checkpoint files: the format, atomic writes, saving and loading an energy and its training
state (the layout is in :mod:`ebm_ppl.checkpoint`)."""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from typing import Any

import jax
import numpy as np
from flax import serialization

from ebm_ppl._json import to_jsonable
from ebm_ppl._version import __version__
from ebm_ppl.energy import NetworkEnergy
from ebm_ppl.schedules import from_name

__all__ = [
    "FORMAT_VERSION",
    "CheckpointError",
    "save",
    "load_energy",
    "read_config",
    "load_variables",
    "save_train_state",
    "load_train_state",
    "has_train_state",
    "atomic_write_bytes",
    "atomic_write_text",
]

FORMAT_VERSION = 1
CONFIG_FILE = "config.json"
PARAMS_FILE = "params.msgpack"
TRAIN_STATE_FILE = "train_state.msgpack"
LOGZ_DIR = "logz"


class CheckpointError(ValueError):
    """A missing, truncated, corrupt or mismatched checkpoint; the message names the file."""


# -- atomic writes ---------------------------------------------------------------------------
def atomic_write_bytes(path: str, data: bytes) -> str:
    """Write ``data`` to ``path`` via a temp file in the same directory and ``os.replace``."""
    directory = os.path.dirname(os.path.abspath(path)) or "."
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix="." + os.path.basename(path) + ".", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return path


def atomic_write_text(path: str, text: str) -> str:
    return atomic_write_bytes(path, text.encode("utf-8"))


def save(
    path: str,
    *,
    network: dict,
    variables: dict,
    schedule: str,
    data: dict,
    step: int,
    base_variance: float | None,
    objective: dict | None = None,
    preset: str | None = None,
    train_state: Any = None,
    extra: dict | None = None,
) -> str:
    """Write a checkpoint directory.

    Args:
      path: the directory (created if needed).
      network: the network's JSON config (``ebm_ppl.energy.networks.config_of(module)``).
      variables: the variables bound by ``load`` (the EMA copy when training).
      schedule: the schedule name (``Schedule.name``).
      data: data facts, at least ``name`` and ``data_shape``; ``levels``, ``low``/``high``,
        ``bin_width``, ``raw_to_data`` (``ebm_ppl.data.info``) are kept when given.
      step: training step of these parameters.
      base_variance: the Gaussian base term of the bound energy (None for none).
      objective: ``{"name": ..., **options}``.
      preset: preset name, if any.
      train_state: a pytree to resume training from (written to ``train_state.msgpack``).
      extra: more JSON-serialisable fields (training settings, wall time, ...).
    """
    if "data_shape" not in data or "name" not in data:
        raise ValueError("checkpoint data info needs at least 'name' and 'data_shape'")
    os.makedirs(path, exist_ok=True)
    params_bytes = serialization.to_bytes(jax.device_get(variables))
    atomic_write_bytes(os.path.join(path, PARAMS_FILE), params_bytes)
    if train_state is not None:
        atomic_write_bytes(os.path.join(path, TRAIN_STATE_FILE), serialization.to_bytes(jax.device_get(train_state)))
    keep = ("name", "kind", "data_shape", "dim", "levels", "low", "high", "bin_width", "raw_to_data", "sizes", "source")
    data_out = {k: data[k] for k in keep if k in data}
    data_out["data_shape"] = [int(s) for s in data["data_shape"]]
    config = {
        "format_version": FORMAT_VERSION,
        "package": "ebm_ppl",
        "package_version": __version__,
        "network": dict(network),
        "schedule": str(schedule),
        "data": data_out,
        "data_shape": data_out["data_shape"],
        "objective": objective,
        "preset": preset,
        "step": int(step),
        "base_variance": None if base_variance is None else float(base_variance),
        "params_sha256": hashlib.sha256(params_bytes).hexdigest(),
    }
    if extra:
        config.update({k: v for k, v in extra.items() if k not in config})
    atomic_write_text(
        os.path.join(path, CONFIG_FILE), json.dumps(to_jsonable(config, nonfinite_to_null=False), indent=2) + "\n"
    )
    return path


# -- reading ---------------------------------------------------------------------------------
def _check_dir(path) -> str:
    path = os.fspath(path)
    if not os.path.isdir(path):
        if os.path.exists(path):
            raise CheckpointError(f"{path}: not a checkpoint directory (it is a file)")
        raise CheckpointError(f"{path}: checkpoint directory not found")
    return path


def read_config(path) -> dict:
    """The checkpoint's ``config.json`` as a dict (validated format version and fields)."""
    path = _check_dir(path)
    cfile = os.path.join(path, CONFIG_FILE)
    if not os.path.isfile(cfile):
        raise CheckpointError(f"{cfile}: missing (not a checkpoint directory?)")
    try:
        with open(cfile, encoding="utf-8") as fh:
            config = json.load(fh)
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{cfile}: corrupt JSON ({err})") from None
    if not isinstance(config, dict):
        raise CheckpointError(f"{cfile}: expected a JSON object")
    version = config.get("format_version")
    if version != FORMAT_VERSION:
        raise CheckpointError(
            f"{cfile}: unknown checkpoint format_version {version!r} (this ebm_ppl reads version {FORMAT_VERSION})"
        )
    for field in ("network", "schedule", "data_shape", "step"):
        if field not in config:
            raise CheckpointError(f"{cfile}: missing field {field!r}")
    return config


def _restore_bytes(fname: str) -> Any:
    if not os.path.isfile(fname):
        raise CheckpointError(f"{fname}: missing")
    with open(fname, "rb") as fh:
        data = fh.read()
    if not data:
        raise CheckpointError(f"{fname}: empty file (truncated?)")
    try:
        return serialization.msgpack_restore(data)
    except Exception as err:  # msgpack raises several types on truncated / garbage input
        raise CheckpointError(f"{fname}: truncated or corrupt parameter file ({type(err).__name__}: {err})") from None


def _path_str(path) -> str:
    return "/".join(str(getattr(k, "key", getattr(k, "idx", k))) for k in path)


def _check_against(template, restored, fname: str):
    """Shapes and tree of ``restored`` must match ``template`` (a pytree of ShapeDtypeStruct)."""
    flat_t = {_path_str(p): v for p, v in jax.tree_util.tree_flatten_with_path(template)[0]}
    try:
        flat_r = {_path_str(p): v for p, v in jax.tree_util.tree_flatten_with_path(restored)[0]}
    except Exception as err:  # pragma: no cover - defensive
        raise CheckpointError(f"{fname}: unreadable parameter tree ({err})") from None
    missing = sorted(set(flat_t) - set(flat_r))
    unexpected = sorted(set(flat_r) - set(flat_t))
    if missing or unexpected:
        parts = []
        if missing:
            parts.append(f"missing {missing[:3]}{' ...' if len(missing) > 3 else ''}")
        if unexpected:
            parts.append(f"unexpected {unexpected[:3]}{' ...' if len(unexpected) > 3 else ''}")
        raise CheckpointError(f"{fname}: parameters do not match the architecture in config.json ({'; '.join(parts)})")
    for k, spec in flat_t.items():
        got = np.shape(flat_r[k])
        if tuple(got) != tuple(spec.shape):
            raise CheckpointError(
                f"{fname}: shape mismatch with the architecture in config.json at {k}: file has {tuple(got)}, "
                f"network expects {tuple(spec.shape)}"
            )
        if not np.all(np.isfinite(flat_r[k])):
            raise CheckpointError(f"{fname}: non-finite values in {k}")


def _module_and_template(config: dict, path: str):
    from ebm_ppl.energy import networks  # lazy: the Flax modules stay out of `import ebm_ppl`

    cfile = os.path.join(path, CONFIG_FILE)
    try:
        module = networks.build(config["network"])
    except (ValueError, TypeError) as err:
        raise CheckpointError(f"{cfile}: bad network config ({err})") from None
    data_shape = tuple(int(s) for s in config["data_shape"])
    try:
        template = jax.eval_shape(lambda k: networks.init_variables(k, module, data_shape), jax.random.key(0))
    except Exception as err:
        raise CheckpointError(f"{cfile}: network config cannot take data of shape {data_shape} ({err})") from None
    return module, template, data_shape


def load_variables(path) -> tuple[Any, dict, dict]:
    """(module, EMA variables, config) of a checkpoint, validated against its architecture."""
    config = read_config(path)
    module, template, _ = _module_and_template(config, path)
    fname = os.path.join(path, PARAMS_FILE)
    restored = _restore_bytes(fname)
    _check_against(template, restored, fname)
    variables = jax.tree_util.tree_map(lambda s, v: np.asarray(v, s.dtype), template, restored)
    return module, variables, config


def load_energy(path):
    """The checkpoint's bound energy (EMA weights): a :class:`ebm_ppl.energy.NetworkEnergy`, without
    its card (:func:`ebm_ppl.checkpoint.load` attaches that)."""
    module, variables, config = load_variables(path)
    try:
        schedule = from_name(config["schedule"])
    except ValueError as err:
        raise CheckpointError(f"{os.path.join(path, CONFIG_FILE)}: {err}") from None
    variables = jax.tree_util.tree_map(jax.numpy.asarray, variables)
    energy = NetworkEnergy(module, variables, schedule, tuple(config["data_shape"]), config.get("base_variance"))
    return energy


def has_train_state(path) -> bool:
    return os.path.isfile(os.path.join(os.fspath(path), TRAIN_STATE_FILE))


def save_train_state(path, state) -> str:
    return atomic_write_bytes(os.path.join(path, TRAIN_STATE_FILE), serialization.to_bytes(jax.device_get(state)))


def load_train_state(path, target):
    """Restore the training state into the structure of ``target`` (shapes checked)."""
    _check_dir(path)
    fname = os.path.join(path, TRAIN_STATE_FILE)
    restored = _restore_bytes(fname)
    template = serialization.to_state_dict(target)
    template = jax.tree_util.tree_map(lambda v: jax.ShapeDtypeStruct(np.shape(v), np.asarray(v).dtype), template)
    _check_against(template, restored, fname)
    return serialization.from_state_dict(target, restored)
