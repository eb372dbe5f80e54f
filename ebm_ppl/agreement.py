"""Do a prior's sampler and its density describe the same distribution?

``EBMPrior.sample`` draws by progressive sampling, ``EBMPrior.log_prob`` is the level's energy
normalised by its log Z. Nothing in training forces the two to agree (docs/models.md: the
2-D T6 model's level-0 density put 98.5% of its mass near two points while its sampler drew the
checkerboard). Two checks, both against a null that says what a perfect sampler would score:

* 2-D (:func:`histogram_tv_2d`): total variation between a histogram of ``sample`` draws and the
  density, evaluated on a fine grid, normalised over it and summed into the histogram's cells.
  The null is the TV of an equally large sample drawn from the gridded density itself.
* any dimension (:func:`mcmc_agreement`): chains of BlackJAX NUTS on ``log_prob`` itself, started
  from progressive draws; if the sampler is right they start in equilibrium and stay there.
  Checked by ArviZ R-hat of the log density across chains and by a kernel two-sample test (RBF
  MMD, permutation null) between the chains' last states and fresh progressive draws.
"""

from __future__ import annotations

import math
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl._jax_utils import rng_key_first
from ebm_ppl.metrics.mmd import _sq_dists, median_bandwidth
from ebm_ppl.sampling.hmc import run_chains

__all__ = ["HistogramTV", "histogram_tv_2d", "TwoSampleTest", "mmd_permutation_test", "MCMCAgreement", "mcmc_agreement"]


class HistogramTV(NamedTuple):
    """``tv``: TV(sample histogram, density); ``null_tv``: mean TV of exact draws from the gridded
    density of the same size (the floor set by Monte Carlo noise), ``null_tv_sd`` its spread;
    ``mass_in_bounds``: the density's mass inside the grid by the stored log Z (1 for a correctly
    normalised density with its mass inside); ``fraction_in_bounds``: of the samples."""

    tv: float
    null_tv: float
    null_tv_sd: float
    mass_in_bounds: float
    fraction_in_bounds: float
    num_samples: int
    cell: float
    grid_spacing: float
    bounds: tuple


def _log_prob_rows(prior, x, chunk: int) -> np.ndarray:
    """``prior.log_prob`` of the rows of ``x`` (n, *event) in jitted chunks, float64 (n,)."""
    fn = jax.jit(prior.log_prob)
    x = np.asarray(x, np.float32)
    return np.concatenate([np.asarray(fn(jnp.asarray(x[i : i + chunk]))) for i in range(0, len(x), chunk)]).astype(
        np.float64
    )


def _grid_log_density(prior, lo, hi, spacing, chunk=65536):
    centres = np.arange(lo + spacing / 2, hi, spacing)
    xx, yy = np.meshgrid(centres, centres, indexing="ij")
    pts = np.stack([xx.ravel(), yy.ravel()], 1)
    return _log_prob_rows(prior, pts, chunk).reshape(len(centres), len(centres))


def _tv(counts, probs):
    return 0.5 * float(np.abs(counts / counts.sum() - probs).sum())


@rng_key_first(1)
def histogram_tv_2d(
    rng_key,
    prior,
    *,
    num_samples: int = 4000,
    cell: float = 0.2,
    grid_spacing: float = 0.02,
    bounds: tuple = (-3.0, 3.0),
    num_null: int = 20,
    samples=None,
) -> HistogramTV:
    """TV between ``num_samples`` draws of ``prior.sample`` (or the given ``samples``, (n, 2))
    binned in square cells of side ``cell``, and the density ``exp(prior.log_prob)`` integrated
    over the same cells on a grid of spacing ``grid_spacing`` and normalised over ``bounds``.

    The cell is coarser than the density grid on purpose: the TV of an empirical histogram
    against the truth grows with the number of cells (4000 exact draws of a density spread over
    an area 2 score TV ~ 0.45 in 0.02 cells, ~ 0.04 in 0.2 cells), so ``null_tv`` reports the
    value an exact sampler would get at these settings."""
    lo, hi = map(float, bounds)
    k = int(round(cell / grid_spacing))
    if k < 1 or abs(k * grid_spacing - cell) > 1e-9 * max(cell, 1.0):
        raise ValueError(f"cell ({cell}) must be a whole multiple of grid_spacing ({grid_spacing})")
    n_fine = int(round((hi - lo) / grid_spacing))
    if n_fine % k:
        raise ValueError(f"the bounds {bounds} must hold a whole number of cells of side {cell}")
    if tuple(prior.event_shape) != (2,):
        raise ValueError(f"histogram_tv_2d needs a 2-D prior, got event shape {prior.event_shape}")
    logp = _grid_log_density(prior, lo, hi, grid_spacing)
    mass_fine = np.exp(logp) * grid_spacing**2
    mass_in_bounds = float(mass_fine.sum())
    n_cells = n_fine // k
    probs = mass_fine.reshape(n_cells, k, n_cells, k).sum((1, 3))
    probs = probs / probs.sum()
    k_draw, k_null = jax.random.split(rng_key)
    x = np.asarray(prior.sample(k_draw, (num_samples,)) if samples is None else samples, np.float64)
    inside = np.all((x >= lo) & (x < hi), axis=1)
    counts, _, _ = np.histogram2d(x[inside, 0], x[inside, 1], bins=n_cells, range=[[lo, hi], [lo, hi]])
    # the samples outside the grid count as mass the density does not have there
    tv = 0.5 * float(np.abs(counts / len(x) - probs).sum()) + 0.5 * float((~inside).mean())
    rng = np.random.default_rng(int(jax.random.randint(k_null, (), 0, 2**31 - 1)))
    nulls = [
        _tv(rng.multinomial(len(x), probs.ravel()).reshape(probs.shape).astype(float), probs) for _ in range(num_null)
    ]
    return HistogramTV(
        tv,
        float(np.mean(nulls)),
        float(np.std(nulls)),
        mass_in_bounds,
        float(inside.mean()),
        int(len(x)),
        float(cell),
        float(grid_spacing),
        (lo, hi),
    )


class TwoSampleTest(NamedTuple):
    """RBF-MMD two-sample test: the unbiased MMD^2, its permutation null (mean, sd) and the
    p-value (fraction of permutations at least as large, with the +1 correction)."""

    mmd2: float
    null_mean: float
    null_sd: float
    p_value: float
    bandwidth: float
    num_permutations: int


@rng_key_first(2)
def mmd_permutation_test(
    rng_key, x, y, *, num_permutations: int = 200, bandwidth: float | None = None
) -> TwoSampleTest:
    """Permutation test of "x and y come from one law" with the unbiased RBF MMD^2 statistic
    (bandwidth: median heuristic on the pooled sample when None). x (m, ...), y (n, ...)."""
    a = np.asarray(x, np.float64).reshape(len(x), -1)
    b = np.asarray(y, np.float64).reshape(len(y), -1)
    if a.shape[1] != b.shape[1]:
        raise ValueError(f"x and y have different dimensions: {a.shape[1]} and {b.shape[1]}")
    z = np.concatenate([a, b])
    h = median_bandwidth(z) if bandwidth is None else float(bandwidth)
    kern = np.exp(-_sq_dists(z, z) / (2.0 * h * h))
    np.fill_diagonal(kern, 0.0)
    m, n = len(a), len(b)

    def stat(idx):
        ix, iy = idx[:m], idx[m:]
        kxx = kern[np.ix_(ix, ix)].sum() / (m * (m - 1))
        kyy = kern[np.ix_(iy, iy)].sum() / (n * (n - 1))
        kxy = kern[np.ix_(ix, iy)].sum() / (m * n)
        return kxx + kyy - 2.0 * kxy

    observed = stat(np.arange(m + n))
    rng = np.random.default_rng(int(jax.random.randint(rng_key, (), 0, 2**31 - 1)))
    null = np.array([stat(rng.permutation(m + n)) for _ in range(num_permutations)])
    p = (1.0 + float((null >= observed).sum())) / (num_permutations + 1.0)
    return TwoSampleTest(float(observed), float(null.mean()), float(null.std()), p, h, int(num_permutations))


class MCMCAgreement(NamedTuple):
    """``rhat``: ArviZ rank-normalised R-hat of the log density across chains; ``ess_bulk`` its
    bulk ESS; ``test``: :class:`TwoSampleTest` of the chains' last states against fresh
    ``sample`` draws; ``mean_log_prob_start`` / ``mean_log_prob_end``: the unnormalised log
    density averaged over chains at the first and last draw (a drift between them says the
    chains left where the sampler put them); ``acceptance``: mean NUTS acceptance; ``start``,
    ``end``, ``fresh``: the three sets of draws (data space)."""

    rhat: float
    ess_bulk: float
    test: TwoSampleTest
    mean_log_prob_start: float
    mean_log_prob_end: float
    acceptance: float
    num_chains: int
    num_draws: int
    start: np.ndarray
    end: np.ndarray
    fresh: np.ndarray


@rng_key_first(1)
def mcmc_agreement(
    rng_key, prior, *, num_chains: int = 256, num_warmup: int = 200, num_draws: int = 400, num_permutations: int = 200
) -> MCMCAgreement:
    """Run ``num_chains`` BlackJAX NUTS chains (window adaptation for ``num_warmup`` steps, then
    ``num_draws`` draws) on ``prior.unnormalized_log_prob`` from ``prior.sample`` draws, and
    compare their last states with ``num_chains`` fresh ``prior.sample`` draws."""
    import arviz as az

    k_start, k_fresh, k_run, k_test = jax.random.split(rng_key, 4)
    start = prior.sample(k_start, (num_chains,))
    fresh = np.asarray(prior.sample(k_fresh, (num_chains,)))
    shape = tuple(prior.event_shape)
    flat = start.reshape(num_chains, -1)

    def logdensity(z):
        return prior.unnormalized_log_prob(z.reshape(shape))

    chains = run_chains(k_run, logdensity, flat, algorithm="nuts", num_warmup=num_warmup, num_draws=num_draws)
    logd = np.asarray(chains.log_density, np.float64)
    rhat = float(az.rhat(logd))
    ess = float(az.ess(logd, method="bulk"))
    end = np.asarray(chains.position[:, -1]).reshape((num_chains,) + shape)
    test = mmd_permutation_test(k_test, end, fresh, num_permutations=num_permutations)
    start_lp = float(np.mean(np.asarray(jax.vmap(logdensity)(flat))))
    return MCMCAgreement(
        rhat,
        ess,
        test,
        start_lp,
        float(logd[:, -1].mean()),
        float(np.mean(chains.acceptance_rate)),
        int(num_chains),
        int(num_draws),
        np.asarray(start).reshape((num_chains,) + shape),
        end,
        fresh,
    )


def log_likelihood_per_point(prior, x, *, chunk: int = 4096) -> tuple[float, float]:
    """Mean and standard error of ``prior.log_prob`` over the rows of ``x`` (nats per point)."""
    lp = _log_prob_rows(prior, x, chunk)
    return float(lp.mean()), float(lp.std(ddof=1) / math.sqrt(len(lp)))
