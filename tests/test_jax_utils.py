"""Deprecation shims: the PRNG key first (``rng_key``), old call forms and moved modules warn for one release."""

from __future__ import annotations

import jax
import numpy as np
import pytest

from ebm_ppl._jax_utils import ArgumentOrderWarning, is_prng_key
from ebm_ppl.energy import target
from ebm_ppl.inverse.experiment import observe
from ebm_ppl.inverse.operators import Denoise
from ebm_ppl.metrics import reference_samples


def test_is_prng_key_knows_both_kinds_of_key_and_nothing_else():
    assert is_prng_key(jax.random.key(0)) and is_prng_key(jax.random.PRNGKey(0))
    assert is_prng_key(jax.random.split(jax.random.key(0))[1])
    assert not is_prng_key(target("gmm4")) and not is_prng_key(np.zeros(2)) and not is_prng_key(3)
    assert not is_prng_key(np.zeros(2, np.uint32).reshape(1, 2))


def test_old_argument_order_and_old_keyword_warn_and_give_the_same_draws():
    energy, key = target("gmm4"), jax.random.key(7)
    new = np.asarray(reference_samples(key, energy, 50))
    with pytest.warns(ArgumentOrderWarning, match=r"reference_samples\(rng_key, \.\.\.\)"):
        old = np.asarray(reference_samples(energy, key, 50))
    with pytest.warns(ArgumentOrderWarning, match="key= is deprecated"):
        by_name = np.asarray(reference_samples(energy, key=key, n=50))
    np.testing.assert_array_equal(new, old)
    np.testing.assert_array_equal(new, by_name)
    other = np.asarray(reference_samples(jax.random.key(8), energy, 50))
    assert not np.array_equal(new, other)  # the comparison can fail
    with pytest.raises(TypeError, match="both rng_key= and its old name key="):
        reference_samples(energy=energy, n=5, key=key, rng_key=key)


def test_a_key_that_was_last_moves_to_the_front():
    truths, key = np.zeros((3, 4), np.float32), jax.random.key(1)
    new = np.asarray(observe(key, Denoise((4,)), 0.5, truths))
    with pytest.warns(ArgumentOrderWarning):
        old = np.asarray(observe(Denoise((4,)), 0.5, truths, key))
    np.testing.assert_array_equal(new, old)
    assert new.std() > 0.3


def _fresh_import(name):
    """Import ``name`` as if for the first time (drop it and its submodules from sys.modules)."""
    import importlib
    import sys

    for loaded in [m for m in sys.modules if m == name or m.startswith(name + ".")]:
        del sys.modules[loaded]
    return importlib.import_module(name)


def test_moved_modules_keep_their_old_import_paths_for_one_release():
    import importlib

    import ebm_ppl.energy.network_energy as network_energy
    import ebm_ppl.likelihood as likelihood
    import ebm_ppl.likelihood.log_z_free as log_z_free
    import ebm_ppl.likelihood.ode as ode

    with pytest.warns(DeprecationWarning, match="moved to ebm_ppl.likelihood;"):
        old = _fresh_import("ebm_ppl.likelihood_bounds")
    assert old.ode_log_prob is likelihood.ode_log_prob and old.elbo is likelihood.elbo
    assert importlib.import_module("ebm_ppl.likelihood_bounds.ode") is ode
    assert importlib.import_module("ebm_ppl.likelihood_bounds.bpd") is log_z_free
    with pytest.warns(DeprecationWarning, match="moved to ebm_ppl.energy.network_energy"):
        old_network = _fresh_import("ebm_ppl.energy.network")
    assert old_network.NetworkEnergy is network_energy.NetworkEnergy
