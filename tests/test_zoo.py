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
    assert prior.progressive_kwargs == checkpoint.sampler_settings(path)


TWO_D = [n for n in MODELS if json.load(open(os.path.join(_path(n), "config.json"))).get("data_shape") == [2]]


@pytest.mark.parametrize("name", TWO_D)
def test_2d_model_samples_follow_its_density_and_beat_the_uniform(name):
    """EBMPrior(path) at its default level: the histogram of 2000 `sample` draws (0.2 cells) against
    exp(log_prob) integrated over the same cells (0.02 grid on [-3, 3]^2). At these settings an exact
    sampler of checkerboard-t6's density scores TV 0.081 (sd 0.006, `null_tv`) and its sampler 0.100;
    samples of level 2 (sigma 0.13) scored against the level-0 density give 0.189, and the old
    checkerboard model 0.98, so the 0.15 bound (the issue's) fails a sampler one blur too coarse.
    Test data must score above the uniform density on [-1, 1]^2 (-log 4 nats per point)."""
    import jax

    from ebm_ppl import agreement, data

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        prior = EBMPrior(_path(name))
    tv = agreement.histogram_tv_2d(jax.random.key(0), prior, num_samples=2000, cell=0.2, num_null=10)
    assert tv.null_tv < 0.1, f"{name}: an exact sampler would score {tv.null_tv:.3f}; the bound needs more draws"
    assert tv.tv <= 0.15, f"{name}: TV(samples, density) = {tv.tv:.3f} (exact sampler {tv.null_tv:.3f})"
    assert tv.mass_in_bounds == pytest.approx(1.0, abs=0.02), "log Z does not normalise the density on the grid"
    test = data.load(json.load(open(os.path.join(_path(name), "config.json")))["data"]["name"], "test")[:2000]
    nats, _ = agreement.log_likelihood_per_point(prior, np.asarray(test))
    assert nats > -np.log(4.0)
