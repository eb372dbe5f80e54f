"""Checkpoints: a directory holding a trained energy network (see docs/checkpoints.md).

    CKPT/
      config.json          format_version, package version, network config, schedule name,
                           data (name, data_shape, levels, scaling), objective, preset, step,
                           base_variance, training settings
      params.msgpack       the EMA variables (flax.serialization): what ``load`` binds
      train_state.msgpack  raw variables, EMA, optimizer state, step (resuming training)
      logz/level_<t>.json  cached log Z estimates with their metadata

Every file is written atomically (temp file in the same directory, then ``os.replace``); the
config is written last, so a directory whose ``config.json`` names step s holds step s's
parameters. ``load(path)`` returns an :class:`ebm_ppl.energy.NetworkEnergy` with the EMA weights;
``read_config(path)`` gives the config (data levels and scaling included). Problems raise
:class:`CheckpointError`, which names the file and the problem.
"""

from __future__ import annotations

from ebm_ppl.checkpoint.card import ModelCard, evaluation_level, load, read_card, sampler_settings
from ebm_ppl.checkpoint.files import (
    CONFIG_FILE,
    FORMAT_VERSION,
    LOGZ_DIR,
    PARAMS_FILE,
    TRAIN_STATE_FILE,
    CheckpointError,
    atomic_write_bytes,
    atomic_write_text,
    has_train_state,
    load_energy,
    load_train_state,
    load_variables,
    read_config,
    save,
    save_train_state,
)
from ebm_ppl.checkpoint.logz_cache import load_logz, lookup_logz, params_digest, read_logz_entries, save_logz

__all__ = [  # the facade: every name of files, logz_cache and card, and the file names
    "FORMAT_VERSION",
    "CheckpointError",
    "save",
    "load",
    "load_energy",
    "read_config",
    "load_variables",
    "save_train_state",
    "load_train_state",
    "has_train_state",
    "save_logz",
    "load_logz",
    "params_digest",
    "read_logz_entries",
    "lookup_logz",
    "ModelCard",
    "read_card",
    "evaluation_level",
    "sampler_settings",
    "atomic_write_bytes",
    "atomic_write_text",
    "CONFIG_FILE",
    "PARAMS_FILE",
    "TRAIN_STATE_FILE",
    "LOGZ_DIR",
]
