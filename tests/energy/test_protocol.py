"""The energy Protocol, its capabilities and the explicit table of named targets."""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ebm_ppl import EBMPrior
from ebm_ppl.energy import protocol, target, target_names
from ebm_ppl.energy.plain import FunctionEnergy
from ebm_ppl.energy.targets import register_target

# what each built-in target can do: (exact sampler, moments, modes, wells, exact recovery, mixture)
CAPABILITIES = {
    "ncsn2": (True, True, True, False, True, True),
    "gauss:3": (True, True, True, False, True, True),
    "gmm:4:3": (True, True, True, False, True, True),
    "banana": (True, True, False, False, False, False),
    "double-well": (True, False, True, False, False, False),
    "manywell32": (True, False, True, True, False, False),
    "funnel10": (True, False, False, False, False, False),
}


@pytest.mark.parametrize("name", sorted(CAPABILITIES))
def test_each_target_declares_its_capabilities(name):
    energy = target(name)
    assert isinstance(energy, protocol.NoiseConditionalEnergy)
    found = tuple(
        isinstance(energy, cap)
        for cap in (
            protocol.ExactSampler,
            protocol.KnownMoments,
            protocol.HasModes,
            protocol.HasWells,
            protocol.ExactRecovery,
            protocol.GaussianMixtureParameters,
        )
    )
    assert found == CAPABILITIES[name]
    assert not isinstance(energy, protocol.NetworkBacked)
    assert protocol.receptive_field(energy) is None


def test_mode_labels_of_mixtures_and_wells():
    ncsn2 = target("ncsn2")
    x = jnp.array([[-5.0, -5.0], [5.0, 5.0], [4.0, 6.0]])
    np.testing.assert_array_equal(np.asarray(protocol.mode_labels(ncsn2, x)), [0, 1, 1])
    assert protocol.mode_labels(target("gauss:2"), x) is None  # one component: no modes
    wells = target("double-well")
    assert int(wells.num_modes) == 2
    assert protocol.mode_labels(target("funnel10"), jnp.zeros((3, 10))) is None


def test_check_energy_names_the_caller_and_the_protocol():
    with pytest.raises(TypeError, match=r"my_fn: expected a noise-conditional energy .* got dict"):
        protocol.check_energy({}, "my_fn")
    with pytest.raises(TypeError, match="EBMPrior"):
        EBMPrior(object())


def test_a_users_log_density_function_is_a_plain_energy():
    energy = FunctionEnergy(lambda x: -0.5 * jnp.sum(x**2) / 4.0, (3,))
    assert isinstance(energy, protocol.NoiseConditionalEnergy)
    assert not isinstance(energy, protocol.ExactSampler)
    y = jnp.ones((5, 3))
    np.testing.assert_allclose(np.asarray(energy.log_density(y, 0)), np.full(5, -3 / 8), rtol=1e-6)
    np.testing.assert_allclose(np.asarray(energy.log_density(y, 1)), np.full(5, -1.5), rtol=1e-6)
    assert energy.log_z(0) is None
    with pytest.raises(TypeError, match="callable"):
        FunctionEnergy(3.0, (3,))


def test_banana_moments_reach_the_distribution_at_both_levels():
    banana = target("banana")
    np.testing.assert_allclose(np.asarray(EBMPrior(banana).variance), [1.0, 2.25], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(EBMPrior(banana, 1).variance), [1.0, 1.0], rtol=1e-6)
    np.testing.assert_allclose(np.asarray(EBMPrior(banana).mean), [0.0, 0.0], atol=0)


def test_the_target_table_is_explicit_and_users_add_to_it():
    names = target_names()
    assert names[:4] == ["ncsn2", "gmm4", "gauss:D", "gmm:D:K"]
    assert {"double-well[:A]", "banana", "gmm40", "funnel10", "manywell32"} <= set(names)
    with pytest.raises(ValueError, match="built-in"):
        register_target("banana", lambda args, schedule: None)
    register_target("test-shifted-gauss", lambda args, schedule: target("gauss:2", schedule), "test-shifted-gauss")
    try:
        assert "test-shifted-gauss" in target_names()
        energy = target("test-shifted-gauss")
        assert energy.dim == 2
    finally:
        from ebm_ppl.energy import targets

        targets._USER.pop("test-shifted-gauss")
    with pytest.raises(ValueError, match="unknown target 'nope'"):
        target("nope")


def test_exact_samples_have_the_stated_moments():
    """The ExactSampler of gauss:3 at level 0: sample mean within 5 standard errors of the mean."""
    energy = target("gauss:3")
    y = np.asarray(energy.sample(jax.random.key(0), 20000, 0), np.float64)
    mean = np.asarray(energy.mean(0))
    sd = np.sqrt(np.diag(np.asarray(energy.covariance(0))))
    assert np.all(np.abs(y.mean(0) - mean) < 5 * sd / np.sqrt(20000))
