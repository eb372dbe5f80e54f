"""Every shipped model loads, its stored log Z belongs to its parameters, and EBMPrior(path) uses
the card's level, that level's stored log Z and the checkpoint's own sampler settings."""

from __future__ import annotations

import glob
import json
import os
import warnings

import numpy as np
import pytest

from ebm_ppl import EBMPrior, checkpoint

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
MODELS = sorted(
    os.path.basename(os.path.dirname(p)) for p in glob.glob(os.path.join(ROOT, "models", "*", "config.json"))
)


def _path(name):
    return os.path.join(ROOT, "models", name)


def _figures(name):
    with open(os.path.join(_path(name), "figures.json")) as fh:
        return json.load(fh)


@pytest.mark.parametrize("name", MODELS)
def test_model_loads_and_its_stored_log_z_matches_its_parameters(name):
    path = _path(name)
    energy = checkpoint.load(path)
    assert energy.checkpoint_path == path
    digest = checkpoint.params_digest(path)
    files = sorted(glob.glob(os.path.join(path, "logz", "level_*.json")))
    assert files, f"{name}: no stored log Z"
    for f in files:
        with open(f) as fh:
            entry = json.load(fh)
        assert entry["params_sha256"] == digest, f"{f} was made for other parameters"
        assert np.isfinite(entry["log_z"])
    level = checkpoint.evaluation_level(path)
    assert 0 <= level < energy.num_levels
    assert checkpoint.load_logz(path, level) is not None, f"{name}: no log Z for its evaluation level {level}"


@pytest.mark.parametrize("name", MODELS)
def test_prior_uses_the_cards_level_log_z_and_sampler(name):
    path = _path(name)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prior = EBMPrior(path)
        again = EBMPrior(checkpoint.load(path))
    level = checkpoint.evaluation_level(path)
    assert prior.noise_level == again.noise_level == level
    entry = checkpoint.load_logz(path, level)
    assert float(prior.log_z) == pytest.approx(entry["log_z"], rel=1e-6)
    assert float(again.log_z) == float(prior.log_z)
    assert dict(prior._progressive) == checkpoint.sampler_settings(path)
