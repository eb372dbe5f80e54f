"""Energy networks: output shapes, ResBlock identity at init, config round trip, bound energy."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ebm_ppl.energy import NetworkEnergy
from ebm_ppl.energy.networks import ResBlock, build, config_of, init_variables
from ebm_ppl.schedules import drl


@pytest.mark.parametrize(
    "config, shape",
    [
        ({"name": "mlp", "width": 16, "depth": 2}, (2,)),
        ({"name": "mlp", "width": 16, "depth": 1, "activation": "leaky_relu", "spectral_norm": True}, (5,)),
        ({"name": "wrn", "width": 8, "channel_mults": [1, 2], "num_res_blocks": 1}, (8, 8, 1)),
        ({"name": "wrn", "width": 4, "channel_mults": [1, 2, 2], "num_res_blocks": 1}, (28, 28, 1)),
        ({"name": "wrn", "width": 4, "channel_mults": [1, 2, 2, 2], "num_res_blocks": 1}, (32, 32, 3)),
    ],
)
def test_output_shape_and_finite(config, shape):
    module = build(config)
    variables = init_variables(jax.random.PRNGKey(0), module, shape)
    if config.get("spectral_norm", config["name"] == "wrn"):
        assert "batch_stats" in variables
    y = jax.random.normal(jax.random.PRNGKey(1), (3,) + shape)
    t = jnp.array([0, 2, 5])
    out = module.apply(variables, y, t)
    assert out.shape == (3,)
    assert np.all(np.isfinite(out))
    # training mode updates the power-iteration statistics without changing shapes
    out2, upd = module.apply(variables, y, t, update_stats=True, mutable=["batch_stats"])
    assert out2.shape == (3,)
    assert build(config_of(module)) == module


def test_resblock_is_identity_at_init():
    block = ResBlock(6, spectral_norm=True)
    x = jax.random.normal(jax.random.PRNGKey(0), (2, 8, 8, 6))
    temb = jax.random.normal(jax.random.PRNGKey(1), (2, 16))
    variables = block.init(jax.random.PRNGKey(2), x, temb, update_stats=True)
    np.testing.assert_array_equal(np.asarray(block.apply(variables, x, temb)), np.asarray(x))
    # and it stops being the identity once the zero-initialised conv moves
    params = jax.tree_util.tree_map(lambda v: v, variables["params"])
    params["conv2"]["conv"]["kernel"] = params["conv2"]["conv"]["kernel"] + 0.01
    moved = block.apply({**variables, "params": params}, x, temb)
    assert float(jnp.max(jnp.abs(moved - x))) > 1e-3


def test_bad_configs():
    with pytest.raises(ValueError, match="unknown network"):
        build({"name": "transformer"})
    with pytest.raises(ValueError, match="no option"):
        build({"name": "mlp", "widht": 3})


def test_network_energy_binds_network():
    sched = drl(6)
    module = build({"name": "mlp", "width": 8, "depth": 1})
    variables = init_variables(jax.random.PRNGKey(0), module, (2,))
    energy = NetworkEnergy(module, variables, sched, (2,), base_variance=4.0)
    y = jax.random.normal(jax.random.PRNGKey(1), (4, 2))
    expected = module.apply(variables, y, jnp.full((4,), 3)) / sched.energy_scales[3] - jnp.sum(y**2, -1) / 8.0
    np.testing.assert_allclose(np.asarray(energy.log_density(y, 3)), np.asarray(expected), rtol=1e-5)
    assert energy.score(y, 0).shape == (4, 2)


def test_denoiser_energy_is_normalisable_by_construction():
    """f = -|y - g|^2 / 2 with |g| <= bound: never positive, and below the Gaussian envelope
    -(|y| - bound sqrt(D))^2 / 2 far from the data, whatever the weights."""
    import jax
    import jax.numpy as jnp

    from ebm_ppl.energy import networks

    module = networks.build({"name": "denoiser", "width": 16, "depth": 1, "temb_dim": 8})
    variables = networks.init_variables(jax.random.PRNGKey(0), module, (8, 8, 1))
    variables = jax.tree_util.tree_map(lambda p: 5.0 * p, variables)  # arbitrary, large weights
    y = 10.0 * jax.random.normal(jax.random.PRNGKey(1), (32, 8, 8, 1))
    out = module.apply(variables, y, jnp.zeros((32,), jnp.int32))
    assert out.shape == (32,)
    norms = jnp.sqrt(jnp.sum(y.reshape(32, -1) ** 2, -1))
    envelope = -0.5 * jnp.maximum(norms - 1.05 * 8.0, 0.0) ** 2
    assert bool(jnp.all(out <= 0.0)) and bool(jnp.all(out <= envelope + 1e-3))
    assert networks.config_of(module)["name"] == "denoiser"


@pytest.mark.parametrize(
    "config, shape",
    [
        ({"name": "wrn", "width": 8, "channel_mults": [1, 2], "num_res_blocks": 1, "spectral_norm": True}, (4, 4, 1)),
        ({"name": "mlp", "width": 8, "depth": 2, "temb_dim": 8, "spectral_norm": True}, (3,)),
    ],
)
def test_fold_spectral_norm_computes_the_same_function(config, shape):
    # the folded plain network (kernels divided by flax's sigma estimate once) equals the spectrally
    # normalised one to float rounding, with perturbed weights (so sigma != 1) and stats after an update
    from ebm_ppl.energy.networks import fold_spectral_norm

    module = build(config)
    v = init_variables(jax.random.PRNGKey(0), module, shape)
    noise = lambda a: 0.3 * jax.random.normal(jax.random.PRNGKey(a.size), a.shape)  # noqa: E731
    v = {**v, "params": jax.tree_util.tree_map(lambda a: a + noise(a), v["params"])}
    y = jax.random.normal(jax.random.PRNGKey(1), (5,) + shape)
    t = jnp.arange(5) % 4
    _, upd = module.apply(v, y, t, update_stats=True, mutable=["batch_stats"])
    v = {**v, **upd}
    plain, pv = fold_spectral_norm(module, v)
    assert not plain.spectral_norm and set(pv) == {"params"}
    ref = np.asarray(module.apply(v, y, t))
    np.testing.assert_allclose(np.asarray(plain.apply(pv, y, t)), ref, rtol=1e-5, atol=1e-6 * np.abs(ref).max())
    # without the fold the plain network differs (the check can fail)
    assert np.abs(np.asarray(plain.apply({"params": v["params"]}, y, t)) - ref).max() > 1e-3 * np.abs(ref).max()
    unchanged = build({"name": "mlp", "width": 8, "depth": 1})
    assert fold_spectral_norm(unchanged, {"params": {}}) == (unchanged, {"params": {}})
