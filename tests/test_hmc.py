"""BlackJAX HMC/NUTS on an energy level and on a NumPyro model with an EBMPrior."""

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl import target
from ebm_ppl.sampling import hmc


def test_nuts_on_gaussian_level_matches_exact_and_keeps_fields():
    from ebm_ppl import diagnostics

    e = target("gauss:8")
    ch = hmc.sample_level(e, jax.random.key(0), num_chains=4, num_warmup=200, num_samples=250)
    assert ch.position.shape == (4, 250, 8)
    for f in ("log_density", "acceptance_rate", "is_divergent", "tree_depth", "num_gradient_evaluations"):
        assert getattr(ch, f).shape == (4, 250)
    assert ch.step_size.shape == (4,) and int(ch.is_divergent.sum()) == 0
    x = ch.position.reshape(-1, 8)
    m, c = e.to_data(e.mean(0)), e.covariance(0) / e.data_scale**2
    dt = diagnostics.to_datatree(ch.position, {"log_density": ch.log_density, "step_size": ch.step_size})
    s = diagnostics.summarize(dt)
    assert s["energy"]["rhat"] < 1.01 and s["pixels"]["max_rhat"] < 1.02
    ess = s["pixels"]["min_ess_bulk"]
    # mean within 4.5 MC standard errors using the measured ESS
    assert jnp.all(jnp.abs(x.mean(0) - m) < 4.5 * jnp.sqrt(jnp.diag(c) / ess))
    assert float(jnp.linalg.norm(jnp.cov(x.T) - c) / jnp.linalg.norm(c)) < 0.15


def test_hmc_on_numpyro_model_with_ebm_prior_conjugate_posterior():
    import numpyro
    import numpyro.distributions as dist

    from ebm_ppl.distribution import EBMPrior

    # prior x ~ N(mu, C) (a Gaussian oracle's data law), y = x + N(0, 0.5^2 I): posterior exact
    e = target("gauss:3")
    mu, C = np.asarray(e.to_data(e.mean(0))), np.asarray(e.covariance(0)) / e.data_scale**2
    y = np.array([0.5, -0.3, 0.2])
    R = 0.25 * np.eye(3)
    K = C @ np.linalg.inv(C + R)
    post_mean = mu + K @ (y - mu)

    def model(y):
        x = numpyro.sample("x", EBMPrior(e))
        numpyro.sample("y", dist.Normal(x, 0.5).to_event(1), obs=y)

    samples, ch = hmc.sample_numpyro_model(jax.random.key(0), model, y, num_chains=4, algorithm="hmc",
                                           num_integration_steps=8, num_warmup=300, num_samples=400)
    xs = np.asarray(samples["x"]).reshape(-1, 3)
    post_cov = C - K @ C
    # posterior sd ~0.3; 1600 draws with ESS >~ 400: standard error <~ 0.015, tolerance ~6 of them
    assert np.all(np.abs(xs.mean(0) - post_mean) < 0.1)
    assert np.all(np.abs(xs.var(0) - np.diag(post_cov)) < 0.3 * np.diag(post_cov))
    assert float(np.mean(ch.acceptance_rate)) > 0.5
