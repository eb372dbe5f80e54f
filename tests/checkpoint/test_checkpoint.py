"""Checkpoint format: bit-exact round trip, clear errors naming the file, log Z cache."""

import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import ebm_ppl
from ebm_ppl import checkpoint as ck
from ebm_ppl.energy import NetworkEnergy
from ebm_ppl.energy.networks import build, config_of, init_variables
from ebm_ppl.schedules import drl

NET = {"name": "wrn", "width": 4, "channel_mults": [1, 2], "num_res_blocks": 1, "spectral_norm": True}
DATA = {"name": "digits", "data_shape": (8, 8, 1), "levels": 17, "low": -1.0, "high": 1.0, "bin_width": 2 / 17}


@pytest.fixture
def saved(tmp_path):
    module = build(NET)
    variables = init_variables(jax.random.PRNGKey(0), module, (8, 8, 1))
    # make the parameters non-trivial
    variables = jax.tree_util.tree_map(
        lambda v: v + 0.01 * jnp.arange(v.size, dtype=v.dtype).reshape(v.shape), variables
    )
    path = str(tmp_path / "ckpt")
    ck.save(
        path,
        network=config_of(module),
        variables=variables,
        schedule="drl:6",
        data=DATA,
        step=7,
        base_variance=4.0,
        objective={"name": "recovery_likelihood"},
        preset="t6-digits",
    )
    return path, module, variables


def test_round_trip_is_bit_exact(saved):
    path, module, variables = saved
    energy = ebm_ppl.load(path)
    assert isinstance(energy, NetworkEnergy)
    for a, b in zip(jax.tree_util.tree_leaves(variables), jax.tree_util.tree_leaves(energy.variables)):
        assert np.array_equal(np.asarray(a), np.asarray(b))
    assert energy.schedule == drl(6) and energy.data_shape == (8, 8, 1) and energy.base_variance == 4.0
    y = jax.random.normal(jax.random.PRNGKey(1), (2, 8, 8, 1))
    ref = NetworkEnergy(module, variables, drl(6), (8, 8, 1), 4.0)
    assert np.array_equal(np.asarray(energy.log_density(y, 2)), np.asarray(ref.log_density(y, 2)))
    cfg = ck.read_config(path)
    assert cfg["data"]["levels"] == 17 and cfg["step"] == 7 and cfg["format_version"] == ck.FORMAT_VERSION
    assert not [f for f in os.listdir(path) if f.endswith(".tmp")]


def test_truncated_params_names_the_file(saved):
    path = saved[0]
    fname = os.path.join(path, "params.msgpack")
    data = open(fname, "rb").read()
    open(fname, "wb").write(data[: len(data) // 2])
    with pytest.raises(ck.CheckpointError, match="params.msgpack.*(truncated|corrupt)"):
        ck.load(path)


def test_missing_and_mismatched(saved, tmp_path):
    path = saved[0]
    with pytest.raises(ck.CheckpointError, match="not found"):
        ck.load(str(tmp_path / "nope"))
    cfile = os.path.join(path, "config.json")
    cfg = json.load(open(cfile))
    cfg["network"]["width"] = 6
    json.dump(cfg, open(cfile, "w"))
    with pytest.raises(ck.CheckpointError, match="params.msgpack: shape mismatch"):
        ck.load(path)
    cfg["format_version"] = 99
    json.dump(cfg, open(cfile, "w"))
    with pytest.raises(ck.CheckpointError, match="config.json: unknown checkpoint format_version 99"):
        ck.load(path)
    os.remove(os.path.join(path, "params.msgpack"))
    cfg["format_version"] = ck.FORMAT_VERSION
    json.dump(cfg, open(cfile, "w"))
    with pytest.raises(ck.CheckpointError, match="params.msgpack: missing"):
        ck.load(path)
    assert issubclass(ck.CheckpointError, ValueError)


def test_logz_cache(saved):
    path = saved[0]
    assert ck.load_logz(path, 0) is None
    ck.save_logz(path, {"level": 0, "log_z": -12.5, "method": "ais", "ess": 30.0})
    entry = ck.load_logz(path, 0)
    assert entry["log_z"] == -12.5 and entry["method"] == "ais" and entry["checkpoint_step"] == 7
    # a level with no file of its own comes from the levels table of the costliest run that passed it
    table = {3: {"log_z": -4.0, "stderr": 0.1, "ess": 50.0}, 2: {"log_z": -7.0, "stderr": 0.2, "ess": 40.0}}
    ck.save_logz(path, {"level": 2, "log_z": -7.0, "num_grad_evals": 10, "levels": table, "curve": [[1, 2]]})
    ck.save_logz(
        path,
        {"level": 1, "log_z": -9.0, "num_grad_evals": 99, "levels": {3: {"log_z": -3.9, "stderr": 0.05, "ess": 80.0}}},
    )
    derived = ck.load_logz(path, 3)
    assert derived["log_z"] == -3.9 and derived["level"] == 3 and derived["derived_from_level"] == 1
    assert derived["curve"] == [] and derived["ess"] == 80.0
    assert ck.load_logz(path, 2)["log_z"] == -7.0 and "derived_from_level" not in ck.load_logz(path, 2)
    assert ck.load_logz(path, 4) is None
    # new parameters make the cached value stale
    fname = os.path.join(path, "params.msgpack")
    data = bytearray(open(fname, "rb").read())
    data[-1] ^= 1
    open(fname, "wb").write(bytes(data))
    assert ck.load_logz(path, 0) is None
