"""The photos data set and the fully convolutional denoiser energy (fast: tiny untrained nets)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ebm_ppl import data
from ebm_ppl.data import photos
from ebm_ppl.energy import networks
from ebm_ppl.energy.conv_denoiser import ConvDenoiserEnergyNet, receptive_field


def test_split_is_by_photo():
    s = photos.PHOTO_SPLITS
    assert s["test"] == ("camera", "astronaut")
    assert len(s["validation"]) == 1
    sets = [set(s[k]) for k in ("train", "validation", "test")]
    assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])


def test_crops_deterministic_range_and_from_split_photos():
    a = photos.crops("test", 8, 50)
    b = photos.crops("test", 8, 50)
    np.testing.assert_array_equal(a, b)
    assert a.shape == (50, 8, 8, 1) and a.dtype == np.float32
    assert a.min() >= -1 and a.max() <= 1
    # every test crop occurs in camera or astronaut (exact pixel match somewhere)
    raw = photos.from_data(a[:5, ..., 0])
    imgs = [photos.photo(n) for n in photos.PHOTO_SPLITS["test"]]
    for patch in raw:
        found = False
        for img in imgs:
            win = np.lib.stride_tricks.sliding_window_view(img, (8, 8))
            if np.any(np.all(win == patch, axis=(2, 3))):
                found = True
                break
        assert found


def test_load_registry_and_info():
    assert "photos" in data.names()
    facts = data.info("photos")
    assert facts["levels"] == 256 and facts["data_shape"] == (32, 32, 1)
    assert facts["photos"]["test"] == ["camera", "astronaut"]
    x = data.load("photos", "validation")
    assert x.shape == (2000, 32, 32, 1)


def test_to_from_data_roundtrip():
    v = np.arange(256, dtype=np.uint8)
    np.testing.assert_array_equal(photos.from_data(photos.to_data(v)), v)


def test_centre_crop():
    c = photos.centre_crop("camera", 256)
    assert c.shape == (256, 256) and c.dtype == np.uint8
    np.testing.assert_array_equal(c, photos.photo("camera")[128:384, 128:384])
    with pytest.raises(ValueError, match="smaller than the crop"):
        photos.centre_crop("camera", 1024)


@pytest.fixture(scope="module")
def tiny_net():
    net = networks.build({"name": "conv_denoiser", "num_levels": 4, "width": 4, "num_blocks": 1, "emb_dim": 4})
    variables = jax.jit(net.init)(
        {"params": jax.random.PRNGKey(0)}, jnp.zeros((1, 8, 8, 1)), jnp.zeros((1,), jnp.int32)
    )
    # the output conv is zero-initialised: perturb every parameter so the test sees a real network
    leaves, tree = jax.tree_util.tree_flatten(variables)
    rng = np.random.default_rng(1)
    leaves = [np.asarray(x) + 0.3 * rng.standard_normal(x.shape).astype(np.float32) for x in leaves]
    return net, jax.tree_util.tree_unflatten(tree, leaves)


def _both(net):
    return jax.jit(lambda v, y, t: (net.apply(v, y, t), net.apply(v, y, t, method=ConvDenoiserEnergyNet.local_terms)))


def test_network_config_roundtrip(tiny_net):
    net, _ = tiny_net
    assert networks.build(networks.config_of(net)) == net


def test_any_size_and_sum_of_local_terms(tiny_net):
    net, v = tiny_net
    t = jnp.array([2])
    for shape in [(8, 8), (32, 32), (13, 21)]:
        y = jax.random.uniform(jax.random.PRNGKey(2), (1, *shape, 1), minval=-1, maxval=1)
        out, terms = _both(net)(v, y, t)
        assert out.shape == (1,) and terms.shape == (1, *shape)
        np.testing.assert_allclose(float(out[0]), float(jnp.sum(terms)), rtol=1e-5)
        assert float(out[0]) <= 0.0  # f = -|y - g|^2 / 2 <= 0


def test_local_terms_depend_on_receptive_field_only(tiny_net):
    """A pixel's term computed on the whole image equals the one computed on a tile that holds its
    receptive field (away from the borders): the energy of a W x H image is a sum of local terms."""
    net, v = tiny_net
    rf = receptive_field(net.num_blocks)  # 9 for one block
    half = rf // 2
    y = jax.random.uniform(jax.random.PRNGKey(3), (1, 30, 30, 1), minval=-1, maxval=1)
    t = jnp.array([1])
    terms = jax.jit(lambda y: net.apply(v, y, t, method=ConvDenoiserEnergyNet.local_terms)[0])
    full = terms(y)
    r0, c0 = 10, 12
    tile = y[:, r0 - half : r0 + half + 5, c0 - half : c0 + half + 5]  # pixels (r0..r0+4, c0..c0+4) inside
    local = terms(tile)
    np.testing.assert_allclose(
        np.asarray(local[half : half + 5, half : half + 5]),
        np.asarray(full[r0 : r0 + 5, c0 : c0 + 5]),
        rtol=1e-5,
        atol=1e-6,
    )
    # and a tile one pixel too small differs (the receptive field is not smaller than stated)
    small = y[:, r0 - half + 1 : r0 + half + 1, c0 - half + 1 : c0 + half + 1]
    lt = terms(small)
    assert abs(float(lt[half - 1, half - 1]) - float(full[r0, c0])) > 1e-6


def test_rejects_non_images(tiny_net):
    net, v = tiny_net
    with pytest.raises(ValueError, match="expects images"):
        net.apply(v, jnp.zeros((1, 64)), jnp.array([0]))
