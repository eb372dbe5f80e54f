"""Long run with steps tuned on a subset of levels (T1k): log-linear interpolation in between."""

import jax
import numpy as np
import pytest

from ebm_ppl import target
from ebm_ppl.sampling import long_run, progressive


def test_tune_subset_of_levels_interpolates_log_step_and_samples_exactly():
    e = target("gauss:8", schedule="drl:50:linear")
    T = e.num_levels
    steps, acc = long_run.tune(jax.random.key(0), e, num_chains=16, num_adapt=30, num_check=3, tune_levels=5)
    steps, acc = np.asarray(steps, np.float64), np.asarray(acc)
    tuned = [0, 12, 24, 37, 49]  # round(linspace(0, 49, 5))
    assert sorted(np.flatnonzero(np.isfinite(acc)).tolist()) == tuned
    assert np.all((acc[tuned] > 0.5) & (acc[tuned] < 0.95)), acc[tuned]
    # between tuned levels log(eps / eps0) is linear in t (eps0: the schedule's initial steps)
    r = np.log(steps / np.asarray(progressive.default_step_sizes(e, "hmc"), np.float64))
    for a, b in zip(tuned[:-1], tuned[1:]):
        t = np.arange(a, b + 1)
        np.testing.assert_allclose(r[t], r[a] + (t - a) / (b - a) * (r[b] - r[a]), rtol=0, atol=1e-5)
    # the interpolated steps keep every level's acceptance in range, and the samples are exact
    n = 512
    res = long_run.run(jax.random.key(1), e, n, steps_per_level=3, step_sizes=steps)
    run_acc = np.asarray(res.acceptance_rate)
    assert np.all((run_acc > 0.5) & (run_acc < 0.97)), run_acc
    x = np.asarray(res.samples)
    m = np.asarray(e.to_data(e.mean(0)))
    c = np.asarray(e.covariance(0) / e.data_scale**2)
    # mean: 4.5 standard errors of n independent draws; variances: 4.5 sd of a sample variance
    assert np.all(np.abs(x.mean(0) - m) < 4.5 * np.sqrt(np.diag(c) / n)), (x.mean(0), m)
    assert np.all(np.abs(x.var(0) / np.diag(c) - 1) < 4.5 * np.sqrt(2 / n)), x.var(0) / np.diag(c)
    # an explicit list of levels; bad input names the problem
    s2, a2 = long_run.tune(jax.random.key(0), e, num_chains=8, num_adapt=5, num_check=1, tune_levels=[0, T - 1])
    assert np.isfinite(np.asarray(a2)).sum() == 2 and np.all(np.isfinite(np.asarray(s2)))
    with pytest.raises(ValueError, match="tune_levels must be levels"):
        long_run.tune(jax.random.key(0), e, num_chains=4, num_adapt=1, tune_levels=[0, T])
    with pytest.raises(ValueError, match="tune_levels must be >= 1"):
        long_run.tune(jax.random.key(0), e, num_chains=4, num_adapt=1, tune_levels=0)


def test_denoiser_variance_schedule_divides_by_the_dsm_variance():
    # f = net / energy_scales[t] must be -|y - g|^2 / (2 v_t), v_t = c_t^2 (1 - abar_t^2 + abar_t^2 sigma_0^2)
    from ebm_ppl.energy import networks
    from ebm_ppl.schedules import drl

    s = drl(1000)
    plain = networks.build({"name": "denoiser", "width": 16, "depth": 1, "temb_dim": 8})
    scaled = networks.build(
        {"name": "denoiser", "width": 16, "depth": 1, "temb_dim": 8, "variance_schedule": "drl:1000"}
    )
    assert networks.config_of(scaled)["variance_schedule"] == "drl:1000"
    v = networks.init_variables(jax.random.key(0), plain, (8, 8, 1))
    y = jax.random.normal(jax.random.key(1), (3, 8, 8, 1))
    t = np.array([0, 500, 999])
    half_sq = np.asarray(plain.apply(v, y, t))  # -|y - g|^2 / 2 (same parameters)
    f = np.asarray(scaled.apply(v, y, t)) / s.energy_scales[t]
    var = s.model_scales[t] ** 2 * (s.noise_scales[t] ** 2 + (s.signal_scales[t] * s.sigmas[0]) ** 2)
    np.testing.assert_allclose(f, half_sq / var, rtol=1e-4)
    assert abs(var[0] - 1e-4 * s.model_scales[0] ** 2) < 1e-9  # level 0: the data noise sigma_0 = 0.01


def test_long_run_compiles_once_per_energy_structure():
    # module-level jits taking the energy as an argument: a second run on a freshly built energy of
    # the same structure (new parameters, new key) traces and compiles nothing new
    from ebm_ppl.energy import NetworkEnergy, networks
    from ebm_ppl.schedules import drl

    def energy(seed):
        m = networks.build({"name": "mlp", "width": 8, "depth": 1, "temb_dim": 8})
        return NetworkEnergy(m, networks.init_variables(jax.random.key(seed), m, (3,)), drl(3), (3,), 1.0)

    def sizes():
        return [f._cache_size() for f in (long_run._first, long_run._move, long_run._logd)]

    kw = dict(steps_per_level=3, step_sizes=[0.05] * 3, start="langevin", num_start_steps=2)
    r1 = long_run.run(jax.random.key(0), energy(0), 4, **kw)
    before = sizes()
    r2 = long_run.run(jax.random.key(1), energy(1), 4, **kw)
    assert sizes() == before
    assert not np.allclose(np.asarray(r1.samples), np.asarray(r2.samples))


def test_config_tuning_and_keywords_are_the_same_options():
    """LongRunConfig / LongRunTuning fields as configs or keywords give the same steps and draws;
    run's tune_kwargs reach tune; run_growing shares one tuning across its runs."""
    e = target("gauss:3", schedule="drl:4:official")
    tuning = long_run.LongRunTuning(num_chains=8, num_adapt=5, num_check=1)
    config = long_run.LongRunConfig(start="langevin", num_start_steps=2)
    s_kw, a_kw = long_run.tune(
        jax.random.key(0), e, start="langevin", num_start_steps=2, num_chains=8, num_adapt=5, num_check=1
    )
    s_cfg, a_cfg = long_run.tune(jax.random.key(0), e, config=config, tuning=tuning)
    np.testing.assert_array_equal(np.asarray(s_cfg), np.asarray(s_kw))
    r_kw = long_run.run(
        jax.random.key(2), e, 8, steps_per_level=3, tune_kwargs=tuning._asdict(), start="langevin", num_start_steps=2
    )
    r_cfg = long_run.run(
        jax.random.key(2), e, 8, steps_per_level=3, config=config._replace(tune_kwargs=tuning._asdict())
    )
    np.testing.assert_array_equal(np.asarray(r_cfg.samples), np.asarray(r_kw.samples))
    growing = long_run.run_growing(
        jax.random.key(2), e, 8, (1, 3), config=config._replace(tune_kwargs=tuning._asdict())
    )
    assert [r.total_steps for r in growing] == [4, 12]
    np.testing.assert_array_equal(np.asarray(growing[0].step_sizes), np.asarray(growing[1].step_sizes))
    with pytest.raises(TypeError, match="num_leapfrog_steps"):
        long_run.run(jax.random.key(0), e, 4, num_leapfrog_steps=3)
    with pytest.raises(TypeError, match="tuning must be a LongRunTuning"):
        long_run.tune(jax.random.key(0), e, tuning={"num_chains": 4})
