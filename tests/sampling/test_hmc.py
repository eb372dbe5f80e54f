"""BlackJAX HMC/NUTS on an energy level and on a NumPyro model with an EBMPrior."""

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl import target
from ebm_ppl.sampling import hmc


def test_nuts_on_gaussian_level_matches_exact_and_keeps_fields():
    from ebm_ppl import diagnostics

    e = target("gauss:8")
    ch = hmc.sample_level(jax.random.key(0), e, num_chains=4, num_warmup=200, num_draws=250)
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

    samples, ch = hmc.sample_numpyro_model(
        jax.random.key(0),
        model,
        y,
        num_chains=4,
        algorithm="hmc",
        num_integration_steps=8,
        num_warmup=300,
        num_draws=400,
    )
    xs = np.asarray(samples["x"]).reshape(-1, 3)
    post_cov = C - K @ C
    # posterior sd ~0.3; 1600 draws with ESS >~ 400: standard error <~ 0.015, tolerance ~6 of them
    assert np.all(np.abs(xs.mean(0) - post_mean) < 0.1)
    assert np.all(np.abs(xs.var(0) - np.diag(post_cov)) < 0.3 * np.diag(post_cov))
    assert float(np.mean(ch.acceptance_rate)) > 0.5


def test_nuts_gmm64_many_chains_from_exact_draws_mean_cov_weights():
    # NUTS does not jump between the modes of gmm:64:4 (means ~6.5 apart, sd ~0.35): mode weights are
    # carried by many chains started from exact draws (perturbed by N(0, 0.3^2 I), so that NUTS has
    # to contract them back onto their mode; the first half of the draws is discarded). Weights are
    # the mean responsibility (oracle.responsibilities) over all kept draws.
    import arviz as az

    e = target("gmm:64:4", schedule="drl:50:linear")
    C, N = 128, 80
    w_true = np.asarray(e.weights)
    x0 = e.sample_data(jax.random.key(7), C) + 0.3 * jax.random.normal(jax.random.key(9), (C, 64))
    ch = hmc.run_chains(
        jax.random.key(8), hmc.level_log_density_fn(e, 0, "data"), x0, algorithm="nuts", num_draws=N, step_size=0.25
    )
    assert int(ch.is_divergent.sum()) == 0 and float(ch.acceptance_rate.mean()) > 0.5
    pos = np.asarray(ch.position)[:, N // 2 :]
    resp = np.asarray(e.responsibilities(e.to_model(jnp.asarray(pos))))  # (C, N/2, K)
    mode = resp.argmax(-1)
    assert np.all(mode == mode[:, :1])  # no chain changes mode
    # weights: the C starts are C independent draws, so 4 binomial standard errors
    w = resp.mean((0, 1))
    assert np.all(np.abs(w - w_true) < 4 * np.sqrt(w_true * (1 - w_true) / C)), (w, w_true)
    # moments against the exact mixture with the chains' own mode counts (what remains is NUTS's
    # within-mode error): mean within 4 standard errors of C * N/2 / 10 effective draws (NUTS
    # autocorrelation ~10 at step 0.25), total variance within 5 % (relative sd of the trace
    # ~ sqrt(2 / (64 n_eff)) < 1 % here)
    counts = np.bincount(mode[:, 0], minlength=4) / C
    means, vecs, vals = np.asarray(e.means), np.asarray(e.eigvecs), np.asarray(e.eigvals)  # data space
    covs = np.einsum("kij,kj,klj->kil", vecs, vals, vecs)
    m_hat = counts @ means
    c_hat = (
        np.einsum("k,kij->ij", counts, covs) + np.einsum("k,ki,kj->ij", counts, means, means) - np.outer(m_hat, m_hat)
    )
    x = pos.reshape(-1, 64)
    n_eff = x.shape[0] / 10
    within = np.einsum("k,kij->ij", counts, covs)
    assert np.linalg.norm(x.mean(0) - m_hat) < 4 * np.sqrt(np.trace(within) / n_eff)
    assert abs(np.trace(np.cov(x.T)) / np.trace(c_hat) - 1) < 0.05, np.trace(np.cov(x.T)) / np.trace(c_hat)
    assert np.linalg.norm(np.cov(x.T) - c_hat) / np.linalg.norm(c_hat) < 0.15
    # within each mode the chains agree on the energy (rank R-hat over that mode's chains); across
    # modes they cannot (the log-density level differs by mode), which is why many chains are needed
    for k in range(4):
        assert float(az.rhat(np.asarray(ch.log_density)[:, N // 2 :][mode[:, 0] == k])) < 1.2
