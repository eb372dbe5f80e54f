"""Progressive kernel: mode weights on ncsn2, exact conditionals, 64-D mixture, NumPyro kernel."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ebm_ppl import target
from ebm_ppl.sampling import long_run, progressive
from ebm_ppl.sampling.progressive import run as progressive_run
from ebm_ppl.sampling.progressive import tuning as progressive_tuning


def _frac_upper(x):
    return float(jnp.mean(x[:, 0] > 0))


def test_ncsn2_plain_langevin_wrong_progressive_right():
    # NCSN sec 3.2: weights 1/5 at (-5,-5) and 4/5 at (5,5). MC std of the fraction: sqrt(0.16/n).
    n = 1000
    std = np.sqrt(0.16 / n)
    e = target("ncsn2", schedule="drl:100:linear")
    # plain (unadjusted) Langevin on level 0 alone from a uniform init on [-8, 8]^2, 500 steps
    y = jax.random.uniform(jax.random.key(0), (n, 2), minval=-8.0, maxval=8.0)
    eps = 0.05

    def step(y, k):
        return y + eps * e.score(y, 0) + jnp.sqrt(2 * eps) * jax.random.normal(k, y.shape), None

    y, _ = jax.lax.scan(step, y, jax.random.split(jax.random.key(1), 500))
    plain = _frac_upper(y)
    assert abs(plain - 0.8) > 8 * std, plain  # stuck near the init's split (about 0.5)
    x = progressive.sample(
        jax.random.key(2),
        e,
        n,
        inner="mala",
        num_inner_steps=3,
        tune_kwargs=dict(num_chains=32, num_adapt=20, num_inner_steps=3),
    )
    prog = _frac_upper(x)
    assert abs(prog - 0.8) < 4 * std, prog


def test_langevin_reproduces_exact_gaussian_conditional():
    # p(y_t | x_{t+1}) of a Gaussian oracle is Gaussian (oracle.conditional). Unadjusted Langevin with
    # step h has stationary covariance C (I - h C^-1 / 4)^-1: relative bias h / (4 v_min) < 0.5% here.
    e = target("gauss:4")
    t = 1
    x_next = e.sample(jax.random.key(0), 1, t + 1)[0] / e.schedule.model_scales[t + 1]
    w, m, c = e.conditional(x_next, t)
    mean, cov = m[0], c[0]
    v_min = float(jnp.linalg.eigvalsh(cov)[0])
    h = 0.02 * v_min
    n, steps = 4000, 1500
    logd = progressive.conditional_log_density_fn(e, x_next, t)
    grad = jax.vmap(jax.grad(logd))

    def step(y, k):
        return y + 0.5 * h * grad(y) + jnp.sqrt(h) * jax.random.normal(k, y.shape), None

    y0 = jnp.broadcast_to(x_next, (n, 4))
    y, _ = jax.lax.scan(step, y0, jax.random.split(jax.random.key(1), steps))
    sd = jnp.sqrt(jnp.diag(cov))
    # mean: 4.5 MC standard errors (n independent chains)
    assert jnp.all(jnp.abs(y.mean(0) - mean) < 4.5 * sd / np.sqrt(n))
    # covariance entries: std of an entry ~ sqrt((C_ii C_jj + C_ij^2) / n); 4.5 of them + 1% bias
    emp = jnp.cov(y.T)
    se = jnp.sqrt((jnp.outer(jnp.diag(cov), jnp.diag(cov)) + cov**2) / n)
    assert jnp.all(jnp.abs(emp - cov) < 4.5 * se + 0.01 * jnp.abs(cov)), (emp, cov)


def _moment_errors(x, e):
    m = e.to_data(e.mean(0))
    c = e.covariance(0) / e.data_scale**2
    return float(jnp.linalg.norm(x.mean(0) - m)), float(jnp.linalg.norm(jnp.cov(x.T) - c) / jnp.linalg.norm(c))


@pytest.fixture(scope="module")
def gmm64():
    e = target("gmm:64:4", schedule="drl:50:linear")
    n = 256
    exact = e.sample_data(jax.random.key(99), n)
    return e, n, _moment_errors(exact, e)


def _check_mixture(x, e, n, ref, name):
    mean_err, cov_err = _moment_errors(x, e)
    # tolerance: twice the error of n exact draws (the Monte-Carlo error), plus a little
    assert mean_err < 2.0 * ref[0] + 0.05, (name, mean_err, ref)
    assert cov_err < 2.0 * ref[1] + 0.02, (name, cov_err, ref)
    w = np.asarray(e.responsibilities(e.to_model(x)).mean(0))
    wt = np.asarray(e.weights)
    assert np.all(np.abs(w - wt) < 4 * np.sqrt(wt * (1 - wt) / n)), (name, w, wt)


def test_gmm64_progressive_mala_and_long_run(gmm64):
    from ebm_ppl import diagnostics

    e, n, ref = gmm64
    x, _, info = progressive.sample_trace(
        jax.random.key(3),
        e,
        n,
        inner="mala",
        num_inner_steps=3,
        start="normal",
        tune_kwargs=dict(num_chains=16, num_adapt=20, num_inner_steps=3),
    )
    _check_mixture(x, e, n, ref, "mala")
    assert np.all(np.asarray(info.acceptance_rate) > 0.3)
    # R-hat on the energy: independent descents laid out as 4 chains x 64 draws
    energy = np.asarray(e.data_log_prob(x)).reshape(4, -1)
    s = diagnostics.summarize(diagnostics.to_datatree(np.asarray(x).reshape(4, -1, 64), energy=energy))
    assert s["energy"]["rhat"] < 1.01
    res = long_run.run(jax.random.key(4), e, n, steps_per_level=4, tune_kwargs=dict(num_chains=16, num_adapt=20))
    _check_mixture(res.samples, e, n, ref, "long-run")
    acc = np.asarray(res.acceptance_rate)
    assert np.mean((acc > 0.5) & (acc < 0.95)) > 0.9, acc


def test_kernel_api_and_errors():
    e = target("gauss:3")
    alg = progressive.as_top_level_api(e, "hmc", 2)
    state = alg.init(jnp.zeros(3))
    state, info = alg.step(jax.random.key(0), state)
    assert int(state.level) == e.num_levels - 1 and info.acceptance_rate.shape == ()
    with pytest.raises(ValueError, match="unknown inner"):
        progressive.build_kernel("gibbs")
    with pytest.raises(ValueError, match="step tuning"):
        progressive.tune_step_sizes(jax.random.key(0), e, "langevin")


def test_numpyro_progressive_kernel_through_arviz():
    import arviz as az
    import numpyro
    import numpyro.distributions as dist
    from numpyro.infer import MCMC

    from ebm_ppl.distribution import EBMPrior
    from ebm_ppl.sampling.numpyro_kernel import ProgressiveKernel

    e = target("gauss:3", schedule="drl:10:official")

    def model(y=None):
        x = numpyro.sample("x", EBMPrior(e))
        numpyro.sample("y", dist.Normal(x[0], 0.3), obs=y)

    kernel = ProgressiveKernel(model, inner="mala", num_inner_steps=3, tune_kwargs=dict(num_chains=8, num_adapt=10))
    mcmc = MCMC(kernel, num_warmup=0, num_samples=50, num_chains=2, progress_bar=False, chain_method="sequential")
    mcmc.run(jax.random.key(0), y=1.0)
    assert mcmc.get_samples()["x"].shape == (100, 3)
    idata = az.from_numpyro(mcmc)
    assert idata["posterior"]["x"].shape == (2, 50, 3)

    def bad(y=None):
        numpyro.sample("x", EBMPrior(e))
        numpyro.sample("z", dist.Normal(0, 1))

    with pytest.raises(ValueError, match="only latent site"):
        MCMC(ProgressiveKernel(bad), num_warmup=0, num_samples=2, progress_bar=False).run(jax.random.key(0))


def test_long_run_langevin_start_on_gaussian_and_errors():
    # start="langevin" (the T6 first draw: K official Langevin steps from x_{t+1}) then MH-corrected
    # HMC: the final samples must be those of the exact data law (gauss:8, drl:10:official).
    e = target("gauss:8", schedule="drl:10:official")
    n = 512
    res = long_run.run(
        jax.random.key(5),
        e,
        n,
        steps_per_level=6,
        start="langevin",
        num_start_steps=5,
        tune_kwargs=dict(num_chains=16, num_adapt=30, num_check=3),
    )
    x = np.asarray(res.samples)
    assert x.shape == (n, 8) and res.total_steps == 6 * e.num_levels and res.log_density.shape == (e.num_levels, n)
    acc = np.asarray(res.acceptance_rate)
    assert np.all((acc > 0.4) & (acc < 0.98)), acc
    m = np.asarray(e.to_data(e.mean(0)))
    c = np.asarray(e.covariance(0) / e.data_scale**2)
    # mean: 4.5 standard errors of n independent draws; variances: 4.5 sd of a sample variance (sqrt(2/n))
    assert np.all(np.abs(x.mean(0) - m) < 4.5 * np.sqrt(np.diag(c) / n)), (x.mean(0), m)
    assert np.all(np.abs(x.var(0) / np.diag(c) - 1) < 4.5 * np.sqrt(2 / n)), x.var(0) / np.diag(c)
    with pytest.raises(ValueError, match="start must be one of"):
        long_run.run(jax.random.key(0), e, 4, steps_per_level=2, start="bogus", step_sizes=np.ones(e.num_levels))
    with pytest.raises(ValueError, match="step_sizes must have shape"):
        long_run.run(jax.random.key(0), e, 4, steps_per_level=2, step_sizes=np.ones(3))


# --- defaults: MH-corrected inner sampler, compiled once -----------------------------------------


def _upper_mode_weight(e, x):
    return float(np.asarray(e.responsibilities(e.to_model(x))).mean(0)[1])


def test_default_sampler_gets_ncsn2_mode_weight_and_langevin_stays_the_papers_biased_option():
    # ncsn2 on its default schedule drl(6): exact weight 0.8 of the (5, 5) mode. n = 2000: binomial sd
    # 0.0089; the tempered top level resamples (descents exchangeable, not independent), so the
    # tolerance is 0.04 (4.5 binomial sd). The old default (the paper's K = 30 Langevin) gives 0.60.
    e = target("ncsn2")
    n = 2000
    x, _, info = progressive.sample_trace(jax.random.key(0), e, n)
    w = _upper_mode_weight(e, x)
    assert abs(w - 0.8) < 0.04, w
    assert int(info.top_level_stages) >= 1
    assert np.all(np.asarray(info.acceptance_rate) > 0.4)
    xl = progressive.sample(jax.random.key(0), e, n, inner="langevin")
    wl = _upper_mode_weight(e, xl)
    assert abs(wl - 0.8) > 0.1, wl  # the named paper option keeps its documented bias


def test_default_sampler_gmm64_means_within_five_standard_errors():
    # gmm:64:4 on drl(6), 1024 descents: every coordinate mean within 5 standard errors sd_j / sqrt(n)
    # of the exact mean (max of 64 |N(0,1)| exceeds 5 with probability 4e-5); weights within 4.5 sd.
    e = target("gmm:64:4")
    n = 1024
    x = np.asarray(progressive.sample(jax.random.key(1), e, n))
    m = np.asarray(e.to_data(e.mean(0))).reshape(-1)
    sd = np.sqrt(np.diag(np.asarray(e.covariance(0) / e.data_scale**2)))
    z = np.abs(x.mean(0) - m) / (sd / np.sqrt(n))
    assert z.max() < 5, z.max()
    w = np.asarray(e.responsibilities(e.to_model(jnp.asarray(x)))).mean(0)
    wt = np.asarray(e.weights)
    assert np.all(np.abs(w - wt) < 4.5 * np.sqrt(wt * (1 - wt) / n)), (w, wt)


def test_sample_compiles_once_and_tunes_once():
    # a second call with the same shapes and settings neither retraces nor reruns the pilot
    from ebm_ppl.distribution import EBMPrior
    from ebm_ppl.sampling import top_level

    e = target("gmm:4:2")
    progressive.sample(jax.random.key(0), e, 32)
    sizes = (
        progressive_run._level_step._cache_size(),
        progressive_tuning._tune_levels._cache_size(),
        top_level.tempered_top_level._cache_size(),
    )
    tuned = progressive_tuning._TUNED[id(e)][1].copy()
    for seed in (1, 2):
        progressive.sample(jax.random.key(seed), e, 32)
    assert (
        progressive_run._level_step._cache_size(),
        progressive_tuning._tune_levels._cache_size(),
        top_level.tempered_top_level._cache_size(),
    ) == sizes
    assert progressive_tuning._TUNED[id(e)][1].keys() == tuned.keys()
    prior = EBMPrior(e, sampler="progressive")
    a = prior.sample(jax.random.key(3), (8,))
    size = progressive_run._level_step._cache_size()
    b = prior.sample(jax.random.key(4), (8,))
    assert progressive_run._level_step._cache_size() == size and a.shape == b.shape == (8, 4)
    prior1 = EBMPrior(e, noise_level=1, sampler="progressive", progressive_kwargs={"inner": "langevin"})
    assert prior1.sample(jax.random.key(5), (3,)).shape == (3, 4)


def test_scan_or_loop_jits_a_module_level_step_once():
    from ebm_ppl import _jax_utils

    carry, ys = _jax_utils.scan_or_loop(_double, jnp.ones(3), jnp.arange(4.0))
    jitted = _jax_utils.cached_jit(_double)
    n = jitted._cache_size()
    _jax_utils.scan_or_loop(_double, jnp.zeros(3), jnp.arange(4.0))
    assert jitted._cache_size() == n == 1
    assert np.allclose(carry, 16.0) and ys.shape == (4, 3)


def _double(c, x):
    return 2.0 * c, c + x


def test_sample_argument_errors():
    e = target("gauss:3")
    with pytest.raises(ValueError, match="level must be"):
        progressive.sample(jax.random.key(0), e, 4, level=e.num_levels)
    with pytest.raises(ValueError, match="num_samples"):
        progressive.sample(jax.random.key(0), e, 0)
    with pytest.raises(ValueError, match="top_level"):
        progressive.sample(jax.random.key(0), e, 4, top_level="smc")


def test_sample_is_the_samples_of_sample_trace_and_the_old_flags_warn():
    """One result type per function: sample -> array, sample_trace -> ProgressiveTrace. The
    deprecated flags still give the old tuples, with the same draws."""
    e = target("gmm4")
    kw = dict(inner="normal", num_inner_steps=0)
    trace = progressive.sample_trace(jax.random.key(5), e, 64, **kw)
    assert isinstance(trace, progressive.ProgressiveTrace)
    assert trace.levels.shape == (e.num_levels, 64, 2) and trace.info.log_density.shape == (e.num_levels, 64)
    np.testing.assert_array_equal(np.asarray(trace.levels[-1]), np.asarray(trace.samples))
    x = progressive.sample(jax.random.key(5), e, 64, **kw)
    np.testing.assert_array_equal(np.asarray(x), np.asarray(trace.samples))
    with pytest.warns(DeprecationWarning, match="sample_trace"):
        x_old, levels_old, info_old = progressive.sample(
            jax.random.key(5), e, 64, return_levels=True, return_info=True, **kw
        )
    np.testing.assert_array_equal(np.asarray(levels_old), np.asarray(trace.levels))
    assert set(info_old) == {"step_sizes", "acceptance_rate", "log_density", "top_level_stages"}


def test_config_and_keywords_are_the_same_options():
    """ProgressiveConfig fields given as config= or as keywords give the same draws; a keyword
    overrides the config; an unknown keyword or a config of the wrong type is a TypeError."""
    e = target("gmm4")
    by_keywords = progressive.sample(jax.random.key(6), e, 32, inner="normal", num_inner_steps=0)
    config = progressive.ProgressiveConfig(inner="normal", num_inner_steps=0)
    by_config = progressive.sample(jax.random.key(6), e, 32, config=config)
    np.testing.assert_array_equal(np.asarray(by_config), np.asarray(by_keywords))
    overridden = progressive.sample(jax.random.key(6), e, 32, config=config._replace(inner="mala"), inner="normal")
    np.testing.assert_array_equal(np.asarray(overridden), np.asarray(by_keywords))
    with pytest.raises(TypeError, match="num_steps"):
        progressive.sample(jax.random.key(6), e, 32, num_steps=3)
    with pytest.raises(TypeError, match="ProgressiveConfig"):
        progressive.sample_trace(jax.random.key(6), e, 32, config={"inner": "normal"})
