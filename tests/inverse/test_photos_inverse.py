"""Whole-image posteriors (ebm_ppl.inverse.images): tiling, the ancestral sampler on a Gaussian prior
with exact scores, coverage, the fill estimate and the --image CLI helpers (fast, tiny inputs)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ebm_ppl.energy import NetworkEnergy, networks
from ebm_ppl.inverse import images, operators
from ebm_ppl.inverse.smc import prior_scale
from ebm_ppl.schedules import from_name

SCHED = "ncsn:28:1.10919:0.0103051"


class GaussianPixels:
    """Every pixel i.i.d. N(0, tau^2): level l of u = x + r_l e is N(0, tau^2 + r_l^2) exactly."""

    def __init__(self, tau, data_shape=(32, 32, 1)):
        self.tau, self.data_shape = tau, tuple(data_shape)
        self.schedule = from_name(SCHED)
        self.num_levels = self.schedule.num_levels
        self.r = images.level_noise(self)
        self.s = np.array([prior_scale(self, l) for l in range(self.num_levels)])

    def replace(self, data_shape):
        return GaussianPixels(self.tau, data_shape)

    def score(self, y, t):
        s, r = jnp.asarray(self.s, jnp.float32)[t], jnp.asarray(self.r, jnp.float32)[t]
        return -y / (s**2 * (self.tau**2 + r**2))


def test_level_noise_holds_the_denoising_levels():
    e = GaussianPixels(0.3)
    for s255, lvl in ((25, 17), (50, 21)):
        assert images.matching_level(e, s255 / 255 * 2) == lvl
    assert images.matching_level(e, 15 / 255 * 2) == 14  # r_14 = 0.1166 against 0.1176 (0.9%)
    assert images.matching_level(e, 0.3) is None


@pytest.mark.parametrize("tau", [0.1, 0.5])
def test_denoising_posterior_on_gaussian_prior(tau):
    """Exact scores: the posterior mean is exact (each ancestral step's mean is Tweedie's), so over
    1024 independent pixels x 16 chains the mean of the sample means matches tau^2/(tau^2+s^2) y to
    Monte Carlo error; the sd brackets the exact sd between eta = 0 and eta = 1."""
    e = GaussianPixels(tau)
    sigma = 25 / 255 * 2
    op = operators.Denoise((32, 32, 1))
    rng = np.random.default_rng(0)
    x = tau * rng.standard_normal((32, 32, 1))
    y = (x + sigma * rng.standard_normal(x.shape)).astype(np.float32)
    exact_mean = tau**2 / (tau**2 + sigma**2) * y
    exact_sd = np.sqrt(tau**2 * sigma**2 / (tau**2 + sigma**2))
    sds = {}
    for eta in (0.0, 1.0):
        post = images.sample_image_posterior(
            jax.random.PRNGKey(1), e, op, sigma, y.reshape(-1), num_samples=16, eta=eta
        )
        assert post.info["start_level"] == 17 and not post.info["likelihood_annealed"]
        rms_err = float(np.sqrt(np.mean((post.mean - exact_mean) ** 2)))
        mc = float(np.sqrt(np.mean(post.sd**2) / 16))  # Monte Carlo error of a mean of 16 samples
        assert rms_err < 1.25 * mc, (eta, rms_err, mc)  # 1024 pixels: the rms of MC errors is within ~5% of mc
        sds[eta] = float(np.sqrt(np.mean(post.sd**2)))
    assert sds[0.0] < exact_sd * 1.05 and sds[1.0] > exact_sd * 0.95, (sds, exact_sd)
    assert sds[0.0] < sds[1.0]


def test_interval_coverage_gaussian():
    rng = np.random.default_rng(0)
    mean = rng.standard_normal(40000)
    sd = np.exp(rng.standard_normal(40000))
    truth = mean + sd * rng.standard_normal(40000)
    cov = images.interval_coverage(mean, sd, truth)
    for lv in (0.5, 0.9, 0.95):  # 3 binomial standard errors at n = 40000
        assert abs(cov[lv] - lv) < 3 * np.sqrt(lv * (1 - lv) / 40000)
    half = images.interval_coverage(mean, sd / 2, truth)
    assert half[0.9] < 0.75  # intervals half as wide cover ~0.59: the test sees a wrong sd
    assert images.interval_coverage(mean, sd, truth, mask=np.arange(40000) < 10)[0.9] in {i / 10 for i in range(11)}


@pytest.fixture(scope="module")
def tiny_energy():
    net = networks.build({"name": "conv_denoiser", "num_levels": 28, "width": 4, "num_blocks": 1, "emb_dim": 4})
    v = jax.jit(net.init)({"params": jax.random.PRNGKey(0)}, jnp.zeros((1, 8, 8, 1)), jnp.zeros((1,), jnp.int32))
    leaves, tree = jax.tree_util.tree_flatten(v)
    rng = np.random.default_rng(1)
    leaves = [np.asarray(a) + 0.3 * rng.standard_normal(a.shape).astype(np.float32) for a in leaves]
    return NetworkEnergy(net, jax.tree_util.tree_unflatten(tree, leaves), from_name(SCHED), (8, 8, 1))


def test_tiled_score_equals_whole_image(tiny_energy):
    shape = (45, 38, 1)  # not a multiple of the tile: ragged last tiles, windows clamped at the borders
    u = jax.random.uniform(jax.random.PRNGKey(2), (2,) + shape, minval=-1, maxval=1)
    whole = jax.jit(images.score_fn(tiny_energy, shape))(u, 3)
    tiled = images.tiled(tiny_energy, shape, 8)(u, 3)  # receptive field 9: windows 8 + 2 x 8 = 24
    np.testing.assert_allclose(np.asarray(tiled), np.asarray(whole), rtol=1e-4, atol=1e-4 * float(jnp.abs(whole).max()))


def test_sample_image_posterior_shapes_and_inpainting_path(tiny_energy):
    shape = (12, 10, 1)
    op = operators.Inpaint(operators.random_mask(shape, 0.5, 0))
    x = np.linspace(-0.5, 0.5, 120, dtype=np.float32).reshape(shape)
    obs = np.asarray(op(jnp.asarray(x)))
    init = images.fill_estimate(op, obs)
    m = np.asarray(op.mask)
    np.testing.assert_allclose(init[m], x[m], atol=1e-6)
    assert np.all(np.abs(init[~m]) <= 0.5 + 1e-6)  # a local mean of observed values
    post = images.sample_image_posterior(
        jax.random.PRNGKey(0),
        tiny_energy,
        op,
        0.01,
        obs,
        num_samples=3,
        chain_chunk=2,
        init=init,
        start_level=5,
        stop_level=1,
    )
    assert post.mean.shape == shape and post.sd.shape == shape and post.samples.shape == (3,) + shape
    assert post.info["gradients_per_sample"] == 5 and post.info["likelihood_annealed"]
    with pytest.raises(ValueError, match="stop_level"):
        images.sample_image_posterior(jax.random.PRNGKey(0), tiny_energy, op, 0.01, obs, start_level=3, stop_level=4)


def test_cli_operator_parsing_and_png_roundtrip(tmp_path):
    from ebm_ppl.cli import UsageError
    from ebm_ppl.cli.solve_image import _operator, read_grey, write_png

    op, noise = _operator("denoise:25", (16, 16, 1), 0, None)
    assert isinstance(op, operators.Denoise) and noise == 25.0
    op, noise = _operator("inpaint:block4@2", (16, 16, 1), 0, None)
    assert noise == 2.0 and int(np.sum(~np.asarray(op.mask))) == 16
    with pytest.raises(UsageError, match="supports"):
        _operator("cs:0.3", (16, 16, 1), 0, None)
    img = (np.arange(256).reshape(16, 16)).astype(np.uint8)
    write_png(str(tmp_path / "a.png"), img)
    np.testing.assert_array_equal(read_grey(str(tmp_path / "a.png")), img)
    with pytest.raises(UsageError, match="cannot read"):
        read_grey(str(tmp_path / "missing.png"))
