import numpy as np
import pytest

from ebm_ppl import schedules


def test_drl6_reproduces_official_merge():
    s = schedules.drl(6)
    expected = [0.01, 0.3237, 0.5165, 0.6322, 0.7132, 0.7734, 0.9997]
    np.testing.assert_allclose(s.sigmas, expected, atol=6e-5)
    assert s.num_levels == 6
    assert s.data_scale == pytest.approx(np.sqrt(1 - 0.32368022**2), rel=1e-7)


def test_drl6_official_step_sizes():
    # delta_t^2 = c_t^2 b^2 sigma_{t+1}^2, c_t^2 = sigma_cum_t / sigma_cum_0, b^2 = 2e-4
    s = schedules.drl(6)
    alpha_cum = np.cumprod(np.sqrt(1 - s.sigmas**2))
    sigma_cum = np.sqrt(1 - alpha_cum**2)
    for t in range(6):
        expected = sigma_cum[t] / sigma_cum[0] * 2e-4 * s.sigmas[t + 1] ** 2
        assert s.langevin_step_sizes[t] == pytest.approx(expected, rel=1e-12)
    assert s.langevin_step_sizes[0] == pytest.approx(2e-4 * 0.32368022**2, rel=1e-6)
    np.testing.assert_array_equal(s.energy_scales, s.langevin_step_sizes)


def test_drl1000_is_ddpm_linear_variance():
    s = schedules.drl(1000)
    betas = np.linspace(1e-4, 0.02, 1000)
    np.testing.assert_allclose(s.sigmas[1:] ** 2, betas, rtol=1e-12)
    assert s.sigmas[0] == pytest.approx(0.01)
    # sigma_t^2 increases linearly
    np.testing.assert_allclose(np.diff(s.sigmas[1:] ** 2), np.diff(betas)[0], rtol=1e-9)
    assert s.noise_scales[-1] == pytest.approx(1.0, abs=1e-4)
    assert np.all(np.isfinite(s.langevin_step_sizes)) and np.all(s.langevin_step_sizes > 0)


@pytest.mark.parametrize("T", [1, 2, 3, 10, 100, 500, 501, 777, 2000])
def test_drl_any_T(T):
    s = schedules.drl(T)
    assert s.sigmas.shape == (T + 1,)
    assert np.all(np.diff(s.noise_scales) > 0)  # noise grows level by level
    assert s.noise_scales[-1] > 0.99
    assert schedules.from_name(s.name) == s


def test_official_merge_refuses_where_undefined():
    with pytest.raises(ValueError, match="official merge"):
        schedules.drl(1000, merge="official")


def test_ncsn_ladder_is_geometric_in_noise_to_signal():
    s = schedules.ncsn(10, 1.0, 0.01)
    # y_t is proportional to x_raw + r_t e with r_t geometric; levels t >= 1 are exact
    cum = np.sqrt(1 - np.cumprod(1 - s.sigmas**2))
    ratios = cum / np.sqrt(1 - cum**2)
    np.testing.assert_allclose(ratios[:10], np.geomspace(0.01, 1.0, 10), rtol=1e-10)
    # NCSN step: eps * r_t^2 / r_0^2 in the raw scale
    raw_steps = s.langevin_step_sizes / (s.model_scales[:-1] ** 2 * (1 - cum[:-1] ** 2))
    np.testing.assert_allclose(raw_steps, 2e-5 * ratios[:10] ** 2 / 0.01**2, rtol=1e-10)
    assert schedules.from_name(s.name) == s


@pytest.mark.parametrize("bad", ["drl", "drl:x", "nope:3", "ncsn:1:2"])
def test_bad_schedule_names(bad):
    with pytest.raises(ValueError):
        schedules.from_name(bad)


@pytest.mark.parametrize("T", [1, 5, 20, 39])
def test_linear_schedule_never_destroys_the_top_level(T):
    s = schedules.drl(T, merge="linear")
    assert np.all(s.model_scales >= 0.01 - 1e-12)
    assert np.all(np.isfinite(s.langevin_step_sizes))
