"""Closed-form posteriors: the Gaussian-prior baseline and the exact posterior of a mixture oracle.

Baseline: fit N(m, C) to training data (sample mean, sample covariance + ``ridge`` I), then the
posterior of obs = A x + n, n ~ N(0, s^2 I) is Gaussian with

    S = A C A^T + s^2 I,   K = C A^T S^{-1},   mean = m + K (obs - A m),   cov = C - K A C,

the same covariance for every observation. Exact: a :class:`~ebm_ppl.energy.MixtureOracle` prior
gives a Gaussian-mixture posterior (:func:`ebm_ppl.energy.gaussian_mixture_posterior`, per
component the same Kalman update, weights proportional to w_k N(obs; A m_k, A C_k A^T + s^2 I)).
Per-pixel central intervals of a mixture are found by bisection on its marginal CDF.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np
from jax.scipy.special import ndtr, ndtri

from ebm_ppl.energy import gaussian_mixture_posterior

__all__ = [
    "GaussianPosterior",
    "MixturePosterior",
    "fit_gaussian",
    "gaussian_posterior",
    "exact_posterior",
    "mixture_quantiles",
]


class GaussianPosterior:
    """P Gaussian posteriors sharing one covariance: mean (P, *data_shape), cov (D, D)."""

    def __init__(self, mean, cov, data_shape):
        self.mean_flat = jnp.asarray(mean)
        self.cov = jnp.asarray(cov)
        self.data_shape = tuple(data_shape)

    @property
    def mean(self):
        return self.mean_flat.reshape((-1,) + self.data_shape)

    @property
    def std(self):
        sd = jnp.sqrt(jnp.maximum(jnp.diag(self.cov), 0.0))
        return jnp.broadcast_to(sd, self.mean_flat.shape).reshape((-1,) + self.data_shape)

    def interval(self, level: float = 0.9):
        z = float(ndtri((1 + level) / 2))
        return self.mean - z * self.std, self.mean + z * self.std

    def sample(self, key, n: int):
        """(P, n, *data_shape) draws."""
        L = jnp.linalg.cholesky(self.cov + 1e-9 * jnp.eye(self.cov.shape[0]))
        z = jax.random.normal(key, (self.mean_flat.shape[0], n, self.cov.shape[0]))
        return (self.mean_flat[:, None] + z @ L.T).reshape((self.mean_flat.shape[0], n) + self.data_shape)


class MixturePosterior:
    """P Gaussian-mixture posteriors: weights (P, K), means (P, K, D), covs (P, K, D, D)."""

    def __init__(self, weights, means, covs, data_shape):
        self.weights, self.means, self.covs = weights, means, covs
        self.data_shape = tuple(data_shape)

    @property
    def mean(self):
        return jnp.einsum("pk,pkd->pd", self.weights, self.means).reshape((-1,) + self.data_shape)

    @property
    def marginal_variances(self):
        return jnp.diagonal(self.covs, axis1=-2, axis2=-1)  # (P, K, D)

    @property
    def std(self):
        m = self.mean.reshape(self.means.shape[0], -1)
        second = jnp.einsum("pk,pkd->pd", self.weights, self.marginal_variances + self.means**2)
        return jnp.sqrt(jnp.maximum(second - m**2, 0.0)).reshape((-1,) + self.data_shape)

    def interval(self, level: float = 0.9):
        lo = mixture_quantiles(self.weights, self.means, self.marginal_variances, (1 - level) / 2)
        hi = mixture_quantiles(self.weights, self.means, self.marginal_variances, (1 + level) / 2)
        return lo.reshape((-1,) + self.data_shape), hi.reshape((-1,) + self.data_shape)

    def sample(self, key, n: int):
        """(P, n, *data_shape) exact draws."""
        P, K, D = self.means.shape
        k1, k2 = jax.random.split(key)
        comp = jax.random.categorical(k1, jnp.log(self.weights)[:, None, :], shape=(P, n))
        L = jnp.linalg.cholesky(self.covs + 1e-9 * jnp.eye(D))
        z = jax.random.normal(k2, (P, n, D))
        Lc = jnp.take_along_axis(L, comp[:, :, None, None], axis=1)  # (P, n, D, D)
        mc = jnp.take_along_axis(self.means, comp[:, :, None], axis=1)
        return (mc + jnp.einsum("pnij,pnj->pni", Lc, z)).reshape((P, n) + self.data_shape)


def fit_gaussian(x, ridge: float = 1e-3):
    """(mean (D,), cov (D, D)) of training data ``x`` (n, *data_shape); ``ridge`` is added to the
    covariance diagonal (digits have constant-background pixels with zero variance)."""
    x = np.asarray(x, np.float64).reshape(len(x), -1)
    if x.shape[0] < 2:
        raise ValueError("fitting a Gaussian needs at least 2 training examples")
    return jnp.asarray(x.mean(0), jnp.float32), jnp.asarray(
        np.cov(x, rowvar=False) + ridge * np.eye(x.shape[1]), jnp.float32
    )


def gaussian_posterior(mean, cov, operator, noise_std: float, observations) -> GaussianPosterior:
    """Closed-form posterior under the prior N(mean, cov) for every row of ``observations``."""
    A = jnp.asarray(operator.matrix(), jnp.float64 if jax.config.jax_enable_x64 else jnp.float32)
    obs = jnp.atleast_2d(jnp.asarray(observations))
    m = jnp.asarray(mean).reshape(-1)
    C = jnp.asarray(cov)
    S = A @ C @ A.T + noise_std**2 * jnp.eye(A.shape[0])
    CAt = C @ A.T
    K = jnp.linalg.solve(S, CAt.T).T  # C A^T S^-1 (S symmetric)
    post_mean = m + (obs - m @ A.T) @ K.T
    post_cov = C - K @ CAt.T
    post_cov = 0.5 * (post_cov + post_cov.T)
    return GaussianPosterior(post_mean, post_cov, operator.data_shape)


def exact_posterior(oracle, operator, noise_std: float, observations) -> MixturePosterior:
    """Exact posterior of data-space x under a mixture oracle's data law for every observation."""
    A = operator.matrix()
    covs = jnp.einsum("kij,kj,klj->kil", oracle.eigvecs, oracle.eigvals, oracle.eigvecs)
    R = noise_std**2 * jnp.eye(A.shape[0])
    obs = jnp.atleast_2d(jnp.asarray(observations))
    post = jax.vmap(lambda o: gaussian_mixture_posterior(oracle.weights, oracle.means, covs, A, R, o))(obs)
    weights, means, post_covs = post
    return MixturePosterior(weights, means, post_covs, operator.data_shape)


def mixture_quantiles(weights, means, variances, q: float, iterations: int = 60):
    """Per-coordinate quantile ``q`` of 1-D mixtures: weights (P, K), means/variances (P, K, D)
    -> (P, D), by bisection on the mixture CDF."""
    sd = jnp.sqrt(variances)
    lo = jnp.min(means - 10 * sd, axis=1)
    hi = jnp.max(means + 10 * sd, axis=1)

    def cdf(x):
        return jnp.einsum("pk,pkd->pd", weights, ndtr((x[:, None, :] - means) / sd))

    def body(_, bounds):
        lo, hi = bounds
        mid = 0.5 * (lo + hi)
        below = cdf(mid) < q
        return jnp.where(below, mid, lo), jnp.where(below, hi, mid)

    lo, hi = jax.lax.fori_loop(0, iterations, body, (lo, hi))
    return 0.5 * (lo + hi)
