"""Analytic oracles: Gaussian and Gaussian-mixture data distributions, exact at every level.

An oracle is defined by the law of the data x_0 (a mixture of K Gaussians in D dimensions).
Under the schedule's diffusion the level-t variable y_t = c_t (abar_t x_0 + sbar_t e) is again a
mixture with means c_t abar_t m_k and covariances c_t^2 (abar_t^2 C_k + sbar_t^2 I). The
unnormalised log density drops only the constant -D/2 log 2 pi, so ``log_z(t) = D/2 log 2 pi``
at every level, exactly, and the level-0 density mapped to data space is the data law itself.

Covariances are stored by their eigendecompositions C_k = U_k diag(lambda_k) U_k^T, so every level
shares U_k and costs O(K D^2) per evaluation in any dimension.
"""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl.energy.base import Energy, check_model_input, register_pytree
from ebm_ppl.schedules import Schedule

__all__ = ["MixtureOracle", "GaussianOracle", "gaussian_mixture_posterior", "mixture_log_prob"]


def _as_covariances(covs, k: int, d: int) -> np.ndarray:
    covs = np.asarray(covs, np.float64)
    if covs.ndim == 0:
        covs = np.broadcast_to(covs * np.eye(d), (k, d, d))
    elif covs.ndim == 1:  # one variance per component
        covs = covs[:, None, None] * np.eye(d)
    elif covs.ndim == 2:  # per-component diagonal
        covs = covs[:, :, None] * np.eye(d)
    if covs.shape != (k, d, d):
        raise ValueError(f"covariances must have shape ({k}, {d}, {d}) (or be variances), got {covs.shape}")
    if not np.allclose(covs, np.swapaxes(covs, -1, -2), atol=1e-10):
        raise ValueError("covariances must be symmetric")
    return covs


@register_pytree(data_fields=("log_weights", "means", "eigvecs", "eigvals"), static_fields=("schedule", "data_shape"))
class MixtureOracle(Energy):
    """Exact noise-conditional energy of the Gaussian-mixture data law sum_k w_k N(m_k, C_k).

    Args:
      weights: (K,) mixture weights summing to one.
      means: (K, D) component means of x_0.
      covs: (K, D, D) covariances, or (K, D) diagonals, (K,) variances, or one scalar variance.
      schedule: the diffusion schedule (:mod:`ebm_ppl.schedules`).
      data_shape: shape of one example, (D,) by default (any shape with D entries, e.g. (8, 8)).

    Leaves (float32): ``log_weights`` (K,), ``means`` (K, D), ``eigvecs`` (K, D, D), ``eigvals`` (K, D).
    """

    def __init__(self, weights, means, covs, schedule: Schedule, data_shape=None):
        means = np.atleast_2d(np.asarray(means, np.float64))
        k, d = means.shape
        weights = np.asarray(weights, np.float64).reshape(-1)
        if weights.shape != (k,) or np.any(weights < 0) or not np.isclose(weights.sum(), 1.0, atol=1e-6):
            raise ValueError(f"weights must be {k} non-negative numbers summing to 1, got {weights}")
        covs = _as_covariances(covs, k, d)
        eigvals, eigvecs = np.linalg.eigh(covs)
        if np.any(eigvals <= 0):
            raise ValueError("covariances must be positive definite")
        data_shape = (d,) if data_shape is None else tuple(int(s) for s in data_shape)
        if math.prod(data_shape) != d:
            raise ValueError(f"data_shape {data_shape} does not hold D={d} entries")
        if not isinstance(schedule, Schedule):
            raise TypeError(f"schedule must be an ebm_ppl.schedules.Schedule, got {type(schedule).__name__}")
        with np.errstate(divide="ignore"):
            log_w = np.log(weights)
        self.log_weights = jnp.asarray(log_w, jnp.float32)
        self.means = jnp.asarray(means, jnp.float32)
        self.eigvecs = jnp.asarray(eigvecs, jnp.float32)
        self.eigvals = jnp.asarray(eigvals, jnp.float32)
        self.schedule = schedule
        self.data_shape = data_shape

    def __repr__(self):
        return f"MixtureOracle(K={self.num_components}, data_shape={self.data_shape}, schedule={self.schedule.name!r})"

    # -- exact level-t parameters ----------------------------------------------------------
    @property
    def num_components(self) -> int:
        return int(self.means.shape[0])

    @property
    def weights(self) -> jax.Array:
        return jnp.exp(self.log_weights)

    def _level_coefficients(self, t):
        """(scale, noise_var) with y_t = scale * x_0 + sqrt(noise_var) e; level T gives (0, 1)."""
        sched = self.schedule
        scale = np.concatenate([sched.model_scales[:-1] * sched.signal_scales[:-1], [0.0]])
        noise = np.concatenate([(sched.model_scales[:-1] * sched.noise_scales[:-1]) ** 2, [1.0]])
        return jnp.asarray(scale, jnp.float32)[t], jnp.asarray(noise, jnp.float32)[t]

    def level_params(self, t):
        """Exact mixture at level t in model space: (weights (K,), means (K, D), eigvecs
        (K, D, D), eigvals (K, D)); the covariance of component k is U_k diag(eigvals_k) U_k^T."""
        scale, noise = self._level_coefficients(t)
        return self.weights, scale * self.means, self.eigvecs, scale**2 * self.eigvals + noise

    def level_covariances(self, t) -> jax.Array:
        """(K, D, D) component covariances at level t."""
        _, _, vecs, vals = self.level_params(t)
        return jnp.einsum("kij,kj,klj->kil", vecs, vals, vecs)

    def mean(self, t=0) -> jax.Array:
        """Exact mean of y_t, shape data_shape."""
        w, m, _, _ = self.level_params(t)
        return (w @ m).reshape(self.data_shape)

    def covariance(self, t=0) -> jax.Array:
        """Exact covariance of flattened y_t, shape (D, D)."""
        w, m, _, _ = self.level_params(t)
        mu = w @ m
        second = jnp.einsum("k,kij->ij", w, self.level_covariances(t)) + jnp.einsum("k,ki,kj->ij", w, m, m)
        return second - jnp.outer(mu, mu)

    def _component_log_densities(self, y_flat, t):
        """(*batch, K) log N(y; m_k, C_k) + log w_k, without the -D/2 log 2 pi constant."""
        _, m, vecs, vals = self.level_params(t)
        diff = y_flat[..., None, :] - m  # (..., K, D)
        proj = jnp.einsum("...kd,kde->...ke", diff, vecs)
        maha = jnp.sum(proj**2 / vals, axis=-1)
        return self.log_weights - 0.5 * maha - 0.5 * jnp.sum(jnp.log(vals), axis=-1)

    def _learned_log_density(self, y, t):
        y_flat = y.reshape(y.shape[: y.ndim - self.event_ndim] + (self.dim,))
        t = jnp.asarray(t)
        if t.ndim == 0:
            comp = self._component_log_densities(y_flat, t)
        else:  # a level per batch element
            comp = jax.vmap(self._component_log_densities)(
                y_flat.reshape(-1, self.dim), jnp.broadcast_to(t, y_flat.shape[:-1]).reshape(-1)
            ).reshape(y_flat.shape[:-1] + (self.num_components,))
        return jax.nn.logsumexp(comp, axis=-1)

    @property
    def num_modes(self) -> int:
        """K: each component is a mode (:class:`~ebm_ppl.energy.protocol.HasModes`)."""
        return self.num_components

    def modes(self, x) -> jax.Array:
        """Mode label of each data-space point (*batch, *data_shape): its most responsible component."""
        return jnp.argmax(self.responsibilities(self.to_model(x), 0), -1)

    def responsibilities(self, y, t=0) -> jax.Array:
        """(*batch, K) posterior probability of each component given y_t (mode assignment)."""
        y = check_model_input(y, self.data_shape, "MixtureOracle.responsibilities")
        y_flat = y.reshape(y.shape[: y.ndim - self.event_ndim] + (self.dim,))
        return jax.nn.softmax(self._component_log_densities(y_flat, t), axis=-1)

    def log_z(self, t) -> float:
        """Exact log normaliser of ``log_density(., t)``: D/2 log 2 pi at every level."""
        if not 0 <= int(t) <= self.num_levels:
            raise ValueError(f"level t={t} out of range 0..{self.num_levels}")
        return 0.5 * self.dim * math.log(2 * math.pi)

    def sample(self, key: jax.Array, n: int, t: int = 0) -> jax.Array:
        """Exact samples of y_t, shape (n, *data_shape)."""
        k_comp, k_noise = jax.random.split(key)
        w, m, vecs, vals = self.level_params(t)
        comp = jax.random.categorical(k_comp, jnp.log(w), shape=(n,))
        z = jax.random.normal(k_noise, (n, self.dim))
        scaled = jnp.sqrt(vals[comp]) * z  # (n, D) in each sample's own eigenbasis
        # one (D, D) basis per component, not a gathered (n, D, D) array (4.9 GB at n=2000, D=784)
        rotated = jnp.zeros_like(scaled)
        for k in range(vecs.shape[0]):
            rotated = jnp.where((comp == k)[:, None], scaled @ vecs[k].T, rotated)
        y = m[comp] + rotated
        return y.reshape((n,) + self.data_shape)

    def sample_data(self, key: jax.Array, n: int) -> jax.Array:
        """Exact samples of x_0 (data space), shape (n, *data_shape)."""
        return self.to_data(self.sample(key, n, 0))

    def data_log_prob(self, x) -> jax.Array:
        """Normalised log density of the data law at data-space x, shape ``batch``."""
        x = check_model_input(x, self.data_shape, "MixtureOracle.data_log_prob")
        x_flat = x.reshape(x.shape[: x.ndim - self.event_ndim] + (self.dim,))
        return mixture_log_prob(x_flat, self.weights, self.means, self.eigvecs, self.eigvals)

    def conditional(self, x_next, t):
        """The recovery conditional p(y_t | x_{t+1}) of one x_{t+1} (shape data_shape), exact:
        returns (weights (K,), means (K, D), covs (K, D, D)). Since x_{t+1} = y_t + sigma_{t+1} e,
        it is the posterior of y_t under an identity observation with noise sigma_{t+1}^2."""
        w, m, _, _ = self.level_params(t)
        sigma = float(self.schedule.conditional_sigmas[int(t)])
        if math.isinf(sigma):  # a marginal top level: no recovery term
            return w, m, self.level_covariances(t)
        eye = jnp.eye(self.dim)
        return gaussian_mixture_posterior(
            w, m, self.level_covariances(t), eye, sigma**2 * eye, jnp.reshape(x_next, (self.dim,))
        )


def mixture_log_prob(x_flat, weights, means, eigvecs, eigvals) -> jax.Array:
    """Normalised log density of a Gaussian mixture (covariances by eigendecomposition)."""
    d = means.shape[-1]
    diff = x_flat[..., None, :] - means
    proj = jnp.einsum("...kd,kde->...ke", diff, eigvecs)
    comp = (
        jnp.log(weights)
        - 0.5 * jnp.sum(proj**2 / eigvals, -1)
        - 0.5 * jnp.sum(jnp.log(eigvals), -1)
        - 0.5 * d * math.log(2 * math.pi)
    )
    return jax.nn.logsumexp(comp, axis=-1)


def gaussian_mixture_posterior(weights, means, covs, operator, noise_cov, observation):
    """Exact posterior of x ~ sum_k w_k N(m_k, C_k) given obs = A x + n, n ~ N(0, R).

    weights (K,), means (K, D), covs (K, D, D), operator A (M, D), noise_cov R (M, M),
    observation (M,). Returns (weights (K,), means (K, D), covs (K, D, D)) of the posterior
    mixture: per component the Kalman update, weights proportional to w_k N(obs; A m_k, A C_k A^T + R).
    """
    A = jnp.asarray(operator)
    S = jnp.einsum("md,kde,ne->kmn", A, covs, A) + noise_cov  # (K, M, M)
    chol = jnp.linalg.cholesky(S)
    resid = observation - means @ A.T  # (K, M)
    CAt = jnp.einsum("kde,me->kdm", covs, A)  # (K, D, M)
    sol_r = jax.vmap(lambda L, r: jax.scipy.linalg.cho_solve((L, True), r))(chol, resid)
    sol_AC = jax.vmap(lambda L, B: jax.scipy.linalg.cho_solve((L, True), B))(chol, jnp.swapaxes(CAt, 1, 2))
    post_means = means + jnp.einsum("kdm,km->kd", CAt, sol_r)
    post_covs = covs - jnp.einsum("kdm,kme->kde", CAt, sol_AC)
    post_covs = 0.5 * (post_covs + jnp.swapaxes(post_covs, 1, 2))
    log_evidence = -0.5 * jnp.sum(resid * sol_r, -1) - jnp.sum(jnp.log(jnp.diagonal(chol, axis1=1, axis2=2)), -1)
    post_w = jax.nn.softmax(jnp.log(weights) + log_evidence)
    return post_w, post_means, post_covs


@register_pytree(data_fields=("log_weights", "means", "eigvecs", "eigvals"), static_fields=("schedule", "data_shape"))
class GaussianOracle(MixtureOracle):
    """Exact noise-conditional energy of the Gaussian data law N(mean, cov): a one-component
    :class:`MixtureOracle`. ``cov`` may be (D, D), a (D,) diagonal or a scalar variance."""

    def __init__(self, mean, cov, schedule: Schedule, data_shape=None):
        mean = np.asarray(mean, np.float64).reshape(-1)
        cov = np.asarray(cov, np.float64)
        if cov.ndim == 0:
            cov = cov * np.eye(mean.size)
        elif cov.ndim == 1:
            cov = np.diag(cov)
        super().__init__(np.ones(1), mean[None], cov[None], schedule, data_shape)

    def __repr__(self):
        return f"GaussianOracle(data_shape={self.data_shape}, schedule={self.schedule.name!r})"
