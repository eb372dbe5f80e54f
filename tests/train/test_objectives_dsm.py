"""The DSM objective on a Gaussian oracle, where its expectation has a closed form.

Data x_0 ~ N(0, v I_D); DSM at level t draws y = a x_0 + s e (a, s = ``dsm_noise``) and scores an
energy f by 1/2 |s grad f(y) + e|^2. For f with score -y / lam,

    E[loss] = D/2 [ s^2 a^2 v / lam^2 + (1 - s^2 / lam)^2 ],

minimised at lam = a^2 v + s^2, the variance of y, where it equals D/2 a^2 v / (a^2 v + s^2). That
y is the level-t marginal of a Gaussian oracle with data variance v + sigma_0^2 (the data noise of
the official code), so the oracle's own log density is the minimiser. Tolerances: 4 Monte Carlo
standard errors of the batch mean (sd(per-example loss) / sqrt(B)), fixed seeds.
"""

import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from ebm_ppl import schedules
from ebm_ppl.energy import GaussianOracle
from ebm_ppl.train.objectives import dsm_loss, dsm_noise

D, V, B = 3, 0.25, 40000


def _expected(a, s, lam):
    return 0.5 * D * (s**2 * a**2 * V / lam**2 + (1 - s**2 / lam) ** 2)


@pytest.mark.parametrize("level", range(6))
def test_dsm_expectation_on_a_gaussian_oracle(level):
    sched = schedules.drl(6)
    oracle = GaussianOracle(np.zeros(D), V + sched.sigmas[0] ** 2, sched)
    scale, std = dsm_noise(sched)
    a, s = float(scale[level]), float(std[level])
    marginal = a**2 * V + s**2
    # the oracle's level density is exactly N(0, marginal I): the DSM noise matches the oracle's levels
    assert abs(float(oracle.covariance(level)[0, 0]) - marginal) <= 1e-5 * marginal

    def log_density(kappa, y, t):  # f / kappa: score -y / (kappa * marginal)
        return oracle.log_density(y, t) / kappa

    x0 = math.sqrt(V) * jax.random.normal(jax.random.key(level), (B, D))
    t = jnp.full((B,), level, jnp.int32)
    means = {}
    for kappa in (0.5, 1.0, 2.0):
        loss, aux = dsm_loss(log_density, kappa, x0, jax.random.key(100 + level), t, schedule=sched)
        per = np.asarray(aux["per_example"], np.float64)
        tol = 4 * per.std() / math.sqrt(B)
        exact = _expected(a, s, kappa * marginal)
        assert abs(float(loss) - exact) <= tol + 1e-4 * exact, (kappa, float(loss), exact, tol)
        means[kappa] = (float(loss), tol)
    # the oracle's score is the minimiser: D/2 a^2 v / marginal, below both perturbed energies
    assert abs(_expected(a, s, marginal) - 0.5 * D * a**2 * V / marginal) < 1e-12
    for kappa in (0.5, 2.0):
        gap = _expected(a, s, kappa * marginal) - _expected(a, s, marginal)
        assert gap > 0 and means[kappa][0] - means[1.0][0] > 0.5 * gap
