"""sample_posterior / ebm-ppl solve: the prior's level, compile-once caching, the cost estimate and
bad numeric arguments (oracle-based where a number is checked)."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ebm_ppl.energy import MixtureOracle, target
from ebm_ppl.inverse import exact_posterior, from_name, sample_posterior
from ebm_ppl.inverse import nuts as nuts_mod
from ebm_ppl.inverse import smc as smc_mod
from ebm_ppl.inverse.budget import estimate_cost
from ebm_ppl.inverse.posterior import resolve_prior


def _smoothed(orc, level):
    """The oracle's level-l density of u = x_0 + r_l e in data units: covariances + r_l^2 I."""
    r2 = float(orc.schedule.noise_scales[level] / orc.schedule.signal_scales[level]) ** 2
    v, lam = np.asarray(orc.eigvecs, np.float64), np.asarray(orc.eigvals, np.float64)
    covs = np.einsum("kij,kj,klj->kil", v, lam, v)
    covs = 0.5 * (covs + np.swapaxes(covs, -1, -2)) + r2 * np.eye(covs.shape[-1])
    return MixtureOracle(np.asarray(orc.weights), np.asarray(orc.means), covs, orc.schedule, orc.data_shape), r2


@pytest.fixture(scope="module")
def level_problem():
    """gmm:16:3 prior used at level 2 (smoothing r_2^2 ~ 0.1), half inpainting, 16 problems."""
    orc = target("gmm:16:3")
    smooth, r2 = _smoothed(orc, 2)
    op, s = from_name("inpaint:half", orc.data_shape)
    truths = smooth.sample_data(jax.random.PRNGKey(1), 16)
    obs = op(truths) + s * jax.random.normal(jax.random.PRNGKey(2), (16, op.num_observations))
    res = sample_posterior(
        jax.random.PRNGKey(3),
        orc,
        op,
        s,
        obs,
        level=2,
        num_particles=32,
        num_chains=8,
        num_warmup=30,
        num_draws=40,
        num_inner_steps=5,
    )
    return orc, smooth, r2, op, s, truths, obs, res


def test_level_posterior_matches_exact_smoothed_mixture(level_problem):
    orc, smooth, r2, op, s, truths, obs, res = level_problem
    assert r2 > 0.05 and res.info["prior_level"] == 2 and res.samples.shape == (16, 320, 16)
    ex = exact_posterior(smooth, op, s, obs)
    # 320 draws of 8 chains (ESS >= ~60 per pixel): MC error of a mean <= std / sqrt(60) ~ 0.13 std
    z = (res.mean - ex.mean) / ex.std
    assert float(jnp.sqrt(jnp.mean(z**2))) < 0.2
    np.testing.assert_allclose(float(jnp.mean(res.std / ex.std)), 1.0, atol=0.1)
    # the level-0 posterior is a different answer: narrower (no smoothing) by a clear margin
    ex0 = exact_posterior(orc, op, s, obs)
    assert float(jnp.mean(ex0.std / ex.std)) < 0.9


def test_compiled_once_across_calls(level_problem):
    orc, smooth, r2, op, s, truths, obs, res = level_problem
    kw = dict(level=2, num_particles=32, num_chains=8, num_warmup=30, num_draws=40, num_inner_steps=5)
    before = (smc_mod._smc_step._cache_size(), nuts_mod._warm_block._cache_size(), nuts_mod._draw_block._cache_size())
    again = sample_posterior(jax.random.PRNGKey(9), orc, op, s, obs + 0.01, **kw)
    after = (smc_mod._smc_step._cache_size(), nuts_mod._warm_block._cache_size(), nuts_mod._draw_block._cache_size())
    assert after == before and np.all(np.isfinite(np.asarray(again.samples)))


def test_resolve_prior_defaults_to_card_level():
    from ebm_ppl.checkpoint import evaluation_level

    energy, level = resolve_prior("models/digits-dsm")
    assert level == evaluation_level("models/digits-dsm") == 2 and energy.num_levels == 10
    assert resolve_prior("models/digits-dsm", 0)[1] == 0
    orc = target("gmm:16:3")
    assert resolve_prior(orc) == (orc, 0)


def test_smc_kwargs_prior_level_still_accepted_and_checked(level_problem):
    orc, smooth, r2, op, s, truths, obs, res = level_problem
    with pytest.raises(ValueError, match="disagree"):
        sample_posterior(jax.random.PRNGKey(0), orc, op, s, obs, level=1, smc_kwargs={"prior_level": 2})
    with pytest.raises(ValueError, match="progressive"):
        sample_posterior(jax.random.PRNGKey(0), orc, op, s, obs, level=1, method="progressive")
    with pytest.raises(ValueError, match="prior level must be in"):
        sample_posterior(jax.random.PRNGKey(0), orc, op, s, obs, level=6)


def test_cost_estimate_counts():
    orc = target("gmm:16:3")  # drl:6
    est = estimate_cost(
        orc,
        10,
        level=2,
        num_particles=16,
        num_chains=4,
        num_warmup=30,
        num_draws=30,
        max_num_doublings=4,
        num_inner_steps=10,
        smc_kwargs={"num_mcmc_steps": 2, "num_integration_steps": 5},
        per_gradient=(1e-6, 2e-6, 0.0),
    )
    from ebm_ppl.inverse import budget

    assert est.gradients["prior"] == 10 * 16 * 4 * 10 + budget.PILOT_CHAINS * budget.PILOT_STEPS * 4
    assert est.gradients["smc"] == budget.SMC_STEPS_GUESS * 10 * 16 * (2 * 6 + 1)
    assert est.gradients["nuts"] == 10 * 4 * 60 * 15
    assert est.seconds == pytest.approx(
        (est.gradients["prior"] + est.gradients["smc"]) * 1e-6 + est.gradients["nuts"] * 2e-6
    )
    assert est.seconds <= est.seconds_max


def test_cost_estimate_counts_the_run_sample_posterior_makes_by_default():
    """No options: the counts of sample_posterior's defaults (DEFAULTS, method smc+nuts, no final
    SMC moves before NUTS); the SMC options as keywords of their own are the deprecated spelling."""
    from ebm_ppl.inverse import budget
    from ebm_ppl.inverse.posterior import DEFAULTS

    orc = target("gmm:16:3")  # drl:6
    est = estimate_cost(orc, 10, per_gradient=(1e-6, 2e-6, 0.0))
    N, C, K = DEFAULTS["num_particles"], DEFAULTS["num_chains"], DEFAULTS["num_inner_steps"]
    assert est.gradients["prior"] == 10 * N * 6 * K + budget.PILOT_CHAINS * budget.PILOT_STEPS * 6
    per_move = DEFAULTS["num_mcmc_steps"] * (DEFAULTS["num_integration_steps"] + 1) + 1
    assert est.gradients["smc"] == budget.SMC_STEPS_GUESS * 10 * N * per_move
    tree = 2 ** DEFAULTS["max_num_doublings"] - 1
    assert est.gradients["nuts"] == 10 * C * (DEFAULTS["num_warmup"] + DEFAULTS["num_draws"]) * tree
    with pytest.warns(DeprecationWarning, match="smc_kwargs"):
        old = estimate_cost(orc, 10, num_mcmc_steps=3, per_gradient=(1e-6, 2e-6, 0.0))
    new = estimate_cost(orc, 10, smc_kwargs={"num_mcmc_steps": 3}, per_gradient=(1e-6, 2e-6, 0.0))
    assert old.gradients == new.gradients and new.gradients["smc"] > est.gradients["smc"]
    with pytest.raises(ValueError, match="unknown posterior method 'bogus'"):
        estimate_cost(orc, 10, method="bogus", per_gradient=(1e-6, 2e-6, 0.0))


@pytest.mark.parametrize(
    "extra, message",
    [
        (["--chains", "0"], "--chains must be at least 2"),
        (["--n-images", "0"], "--n-images must be at least 1"),
        (["--noise-std", "nan"], "--noise-std must be a positive number"),
        (["--noise-std", "-0.1"], "--noise-std must be a positive number"),
        (["--max-doublings", "0"], "--max-doublings must be at least 1"),
        (["--particles", "2"], "--particles must be at least 4"),
        (["--level", "-1"], "--level must be non-negative"),
        (["--level", "9"], "--level must be in 0..5"),
        (["--warmup", "-3"], "--warmup must be non-negative"),
        (["--inner-steps", "0"], "--inner-steps must be at least 1"),
        (["--level", "1", "--method", "progressive"], "--level > 0 needs"),
    ],
)
def test_solve_rejects_bad_numbers_with_one_line(capsys, extra, message):
    from ebm_ppl.cli import main

    rc = main(["solve", "--target", "gmm:16:3", "--operator", "inpaint:half", *extra])
    err = capsys.readouterr().err.strip().splitlines()
    assert rc == 2 and len(err) == 1 and message in err[0], err


def test_solve_end_to_end_json(tmp_path, capsys):
    from ebm_ppl.cli import main

    out = tmp_path / "solve"
    rc = main(
        [
            "solve",
            "--target",
            "gmm:16:3",
            "--operator",
            "denoise:0.5",
            "--n-images",
            "6",
            "--particles",
            "8",
            "--warmup",
            "10",
            "--samples",
            "10",
            "--inner-steps",
            "3",
            "--out",
            str(out),
            "--json",
        ]
    )
    assert rc == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert any(line.startswith("estimated sampling time") for line in lines)
    metrics = json.loads(lines[-1])
    assert metrics["level"] == 0 and metrics["num_problems"] == 6 and metrics["estimated_seconds"] > 0
    assert json.loads((out / "metrics.json").read_text())["psnr"] == metrics["psnr"]


def test_sample_posterior_options_as_a_config_or_as_keywords_are_the_same_run():
    """PosteriorConfig fields given as config= or as keywords: the same draws; num_samples= (the old
    per-chain name) warns and means num_draws; unknown keywords raise."""
    from ebm_ppl.inverse import PosteriorConfig
    from ebm_ppl.inverse.operators import Inpaint

    orc = target("gmm:4:2")
    op, s = Inpaint([True, True, False, False]), 0.1
    obs = jnp.zeros((2, 2))
    cfg = PosteriorConfig(method="progressive", num_chains=4, num_inner_steps=2, num_draws=0)
    a = sample_posterior(jax.random.PRNGKey(3), orc, op, s, obs, config=cfg)
    b = sample_posterior(
        jax.random.PRNGKey(3), orc, op, s, obs, method="progressive", num_chains=4, num_inner_steps=2, num_draws=0
    )
    np.testing.assert_array_equal(np.asarray(a.samples), np.asarray(b.samples))
    with pytest.warns(DeprecationWarning, match="num_samples= is deprecated; use num_draws="):
        c = sample_posterior(jax.random.PRNGKey(3), orc, op, s, obs, config=cfg._replace(num_draws=5), num_samples=0)
    np.testing.assert_array_equal(np.asarray(c.samples), np.asarray(a.samples))
    with pytest.raises(TypeError, match="unexpected keyword argument 'num_particle'"):
        sample_posterior(jax.random.PRNGKey(3), orc, op, s, obs, num_particle=16)
