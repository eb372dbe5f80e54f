"""Posterior sampling for linear inverse problems with a noise-conditional energy as the prior.

Model (data units): u ~ g_l (the energy's level-l density of u = x_0 + r_l e; level 0 is the data
law g(x) = a^D p(a x)), obs = A u + n, n ~ N(0, noise_std^2 I). The level defaults to the model
card's ``evaluation_level`` (the level whose density validated best) when the prior is given as a
checkpoint path, to an :class:`~ebm_ppl.distribution.EBMPrior`'s own level, and to 0 for a bare
energy.

Methods of :func:`sample_posterior` (``method``):

* ``"smc+nuts"`` (default): likelihood-tempered SMC (:mod:`ebm_ppl.inverse.smc`, BlackJAX's
  adaptive tempered SMC vmapped over problems), which gets the posterior mode weights right, then
  NUTS (:mod:`ebm_ppl.inverse.nuts`) from ``num_chains`` of its particles per problem, which
  repairs the within-mode spread that resampling shrinks.
* ``"smc"``: the SMC particles themselves.
* ``"progressive"``: annealed progressive warm start (:mod:`ebm_ppl.inverse.warmstart`), then
  NUTS; level 0 only, shardable over a device mesh; mode weights come from the approximate warm
  start.

Every stage is batched over problems and chains (``vmap``) and its jitted functions live at
module level, so repeated calls with the same shapes and settings do not recompile.
"""

from __future__ import annotations

import os
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl._jax_utils import resolve_options, rng_key_first, warn
from ebm_ppl.inverse import smc as smc_mod
from ebm_ppl.inverse.density import (
    check_observations,
    pooled_covariance,
    posterior_log_density_fn,
    prior_log_density_fn,
)
from ebm_ppl.inverse.nuts import nuts_posterior
from ebm_ppl.inverse.warmstart import annealed_log_likelihood_fn, progressive_posterior

__all__ = [
    "PosteriorConfig",
    "PosteriorResult",
    "annealed_log_likelihood_fn",
    "posterior_log_density_fn",
    "prior_log_density_fn",
    "progressive_posterior",
    "nuts_posterior",
    "sample_posterior",
    "resolve_defaults",
    "resolve_prior",
    "pooled_covariance",
    "credible_interval",
    "POSTERIOR_METHODS",
    "DEFAULTS",
]

#: posterior samplers of :func:`sample_posterior`
POSTERIOR_METHODS = ("smc", "smc+nuts", "progressive")

#: default budget of :func:`sample_posterior` and ``ebm-ppl solve``, chosen by measured cost per
#: effective sample on 100 digits (``benchmarks/inverse.py --part budget``; docs/inverse.md)
DEFAULTS = dict(
    num_particles=32,
    num_mcmc_steps=2,
    num_integration_steps=5,
    num_chains=8,
    num_warmup=20,
    num_draws=20,
    max_num_doublings=4,
    num_inner_steps=10,
)

_check_observations = check_observations  # the former private name


class PosteriorResult(NamedTuple):
    """Posterior draws of P problems.

    samples: (P, N, *data_shape) pooled over chains (N = chains x draws);
    warm_start: (P, C, *data_shape) where the chains started (SMC particles or progressive draws);
    mean, std: (P, *data_shape) posterior mean and per-pixel standard deviation;
    info: dict of diagnostics (level, step sizes, acceptance, tree sizes, divergences).
    """

    samples: jax.Array
    warm_start: jax.Array
    mean: jax.Array
    std: jax.Array
    info: dict

    def interval(self, level: float = 0.9):
        """Central credible interval per pixel: (lower, upper), each (P, *data_shape)."""
        return credible_interval(self.samples, level)


def credible_interval(samples, level: float = 0.9, axis: int = 1):
    """Central ``level`` interval of ``samples`` along ``axis`` by empirical quantiles."""
    if not 0 < level < 1:
        raise ValueError(f"credible level must lie in (0, 1), got {level}")
    q = np.quantile(np.asarray(samples), [(1 - level) / 2, (1 + level) / 2], axis=axis)
    return q[0], q[1]


def resolve_prior(prior, level: int | None = None):
    """(energy, level) from a checkpoint path, an EBMPrior or a bound energy.

    ``level=None``: the card's ``evaluation_level`` for a path, the EBMPrior's noise level, 0 for
    a bare energy."""
    if isinstance(prior, (str, os.PathLike)):
        from ebm_ppl.checkpoint import evaluation_level, load

        return load(prior), evaluation_level(prior) if level is None else int(level)
    if hasattr(prior, "energy") and hasattr(prior, "noise_level"):  # an EBMPrior
        return prior.energy, int(prior.noise_level) if level is None else int(level)
    return prior, 0 if level is None else int(level)


class PosteriorConfig(NamedTuple):
    """The options of :func:`sample_posterior` (defaults: :data:`DEFAULTS`, the measured budget).

    Fields: ``method`` (None: ``"smc+nuts"``, or ``"progressive"`` with a device mesh), SMC
    ``num_particles`` per problem and ``smc_kwargs`` for :func:`~ebm_ppl.inverse.smc.smc_posterior`,
    NUTS ``num_chains`` per problem, ``num_warmup``, ``num_draws`` per chain (0: the warm starts are
    the samples), ``max_num_doublings``, ``target_acceptance``; the progressive prior draws'
    ``num_inner_steps`` (None: 10, 20 for the progressive warm start), ``inner``, ``step_sizes`` and
    ``start``."""

    method: str | None = None
    num_particles: int = DEFAULTS["num_particles"]
    num_chains: int = DEFAULTS["num_chains"]
    num_warmup: int = DEFAULTS["num_warmup"]
    num_draws: int = DEFAULTS["num_draws"]
    max_num_doublings: int = DEFAULTS["max_num_doublings"]
    target_acceptance: float = 0.8
    num_inner_steps: int | None = None
    inner: str | None = None
    step_sizes: object = None
    start: str = "x_next"
    smc_kwargs: dict | None = None


def resolve_defaults(config: PosteriorConfig, mesh=None) -> PosteriorConfig:
    """``config`` with what :func:`sample_posterior` decides at run time filled in: the ``method``
    (``"smc+nuts"``, or ``"progressive"`` with a device ``mesh``), ``num_inner_steps`` (10; 20 for
    the progressive warm start) and the SMC options in ``smc_kwargs`` (``num_mcmc_steps``,
    ``num_integration_steps`` from :data:`DEFAULTS`; ``num_final_steps`` 0 when NUTS follows,
    else 10). The cost estimate (:func:`~ebm_ppl.inverse.budget.estimate_cost`) counts this config.
    An unknown ``method`` is a ValueError here, for both."""
    if config.method is not None and config.method not in POSTERIOR_METHODS:
        raise ValueError(f"unknown posterior method {config.method!r}; choose one of {POSTERIOR_METHODS}")
    method = config.method or ("progressive" if mesh is not None else "smc+nuts")
    num_inner_steps = config.num_inner_steps
    if num_inner_steps is None:
        num_inner_steps = DEFAULTS["num_inner_steps"] if method != "progressive" else 20
    smc_kwargs = {
        "num_mcmc_steps": DEFAULTS["num_mcmc_steps"],
        "num_integration_steps": DEFAULTS["num_integration_steps"],
        "num_final_steps": 0 if method == "smc+nuts" and config.num_draws > 0 else 10,
        **(config.smc_kwargs or {}),
    }
    return config._replace(method=method, num_inner_steps=num_inner_steps, smc_kwargs=smc_kwargs)


@rng_key_first(4)
def sample_posterior(
    rng_key,
    energy,
    operator,
    noise_std: float,
    observations,
    *,
    level: int | None = None,
    config: PosteriorConfig | None = None,
    inverse_mass_matrix=None,
    progress=False,
    mesh=None,
    **options,
) -> PosteriorResult:
    """Posterior samples for every row of ``observations`` (P, M).

    ``energy``: a bound energy, an :class:`~ebm_ppl.distribution.EBMPrior` or a checkpoint path;
    ``level``: the prior's noise level (default: see :func:`resolve_prior`; the card's evaluation
    level for a path). ``method`` (None: ``"smc+nuts"`` on one device, ``"progressive"`` with a
    device ``mesh``, since the SMC path is not sharded): see the module docstring.

    ``num_particles`` SMC particles per problem (prior draws by the progressive sampler with
    ``num_inner_steps`` inner steps per level, default 10; 20 for the progressive warm start); ``smc_kwargs`` go to
    :func:`ebm_ppl.inverse.smc.smc_posterior` (``num_mcmc_steps``, ``num_final_steps``,
    ``initial_particles``, ...). NUTS: ``num_chains`` chains per problem, ``num_warmup``
    adaptation steps, ``num_draws`` kept draws per chain (0: the starts are the samples).
    ``inner``: the progressive sampler's inner sampler (None: MALA, or the normal approximation
    for priors with 100 levels or more, :func:`~ebm_ppl.inverse.density.default_inner`).
    ``progress``: tqdm bars for the stages. The options are the fields of :class:`PosteriorConfig`,
    given as ``config=`` or as keywords of their own (a keyword overrides the config).

    Why the default method depends on ``mesh``: the SMC path runs on one device (its resampling and
    tempering are per problem, not sharded), so with a device mesh the sharded progressive warm
    start is the default.
    """
    config = resolve_options(
        "inverse.sample_posterior", PosteriorConfig, config, options, renames={"num_samples": "num_draws"}
    )

    energy, level = resolve_prior(energy, level)
    smc_kwargs = dict(config.smc_kwargs or {})
    if "prior_level" in smc_kwargs:  # the former spelling
        warn("inverse.sample_posterior: smc_kwargs prior_level is deprecated; use level=", DeprecationWarning)
        legacy = int(smc_kwargs.pop("prior_level"))
        if level and legacy != level:
            raise ValueError(f"level {level} and smc_kwargs prior_level {legacy} disagree")
        level = legacy
    config = resolve_defaults(config._replace(smc_kwargs=smc_kwargs), mesh)
    method, num_particles, num_chains = config.method, config.num_particles, config.num_chains
    num_warmup, num_draws, max_num_doublings = config.num_warmup, config.num_draws, config.max_num_doublings
    target_acceptance, num_inner_steps, inner = config.target_acceptance, config.num_inner_steps, config.inner
    step_sizes, start, smc_kwargs = config.step_sizes, config.start, dict(config.smc_kwargs or {})
    obs = check_observations(operator, observations)
    if tuple(operator.data_shape) != tuple(energy.data_shape):
        raise ValueError(f"operator acts on {operator.data_shape} but the prior's data shape is {energy.data_shape}")
    if level and method == "progressive":
        raise ValueError(
            f"method='progressive' samples the level-0 posterior only; got level {level} "
            "(use method='smc' or 'smc+nuts', or level=0)"
        )
    smc_mod.prior_scale(energy, level)  # validates the level
    for name, v in (("num_chains", num_chains), ("num_particles", num_particles)):
        if int(v) < 1:
            raise ValueError(f"{name} must be at least 1, got {v}")
    k_prog, k_nuts = jax.random.split(rng_key)
    if method in ("smc", "smc+nuts"):
        if mesh is not None:
            raise ValueError("method='smc' runs on one device; use method='progressive' with a mesh")
        particles, prior_x, info = smc_mod.smc_posterior(
            k_prog,
            energy,
            operator,
            noise_std,
            obs,
            num_particles=num_particles,
            num_inner_steps=num_inner_steps,
            inner=inner,
            level=level,
            progress=progress,
            **smc_kwargs,
        )
        info["method"] = method
        if method == "smc":
            return PosteriorResult(particles, prior_x, jnp.mean(particles, axis=1), jnp.std(particles, axis=1), info)
        if num_chains > particles.shape[1]:
            raise ValueError(f"num_chains {num_chains} exceeds the {particles.shape[1]} SMC particles")
        pick = jax.vmap(lambda k: jax.random.choice(k, particles.shape[1], (num_chains,), replace=False))(
            jax.random.split(jax.random.fold_in(k_nuts, 1), obs.shape[0])
        )
        warm = jnp.take_along_axis(particles, pick.reshape(pick.shape + (1,) * (particles.ndim - 2)), axis=1)
        if inverse_mass_matrix is None:
            inverse_mass_matrix = pooled_covariance(particles)
    else:
        warm, info = progressive_posterior(
            k_prog,
            energy,
            operator,
            noise_std,
            obs,
            num_chains=num_chains,
            inner=inner or "mala",
            num_inner_steps=num_inner_steps,
            step_sizes=step_sizes,
            start=start,
            mesh=mesh,
        )
        info["method"] = method
        info["level"] = info["prior_level"] = 0
    if num_draws > 0:
        samples, nuts_info = nuts_posterior(
            k_nuts,
            energy,
            operator,
            noise_std,
            obs,
            warm,
            num_warmup=num_warmup,
            num_draws=num_draws,
            inverse_mass_matrix=inverse_mass_matrix,
            max_num_doublings=max_num_doublings,
            target_acceptance=target_acceptance,
            progress=progress,
            mesh=mesh,
            level=level,
        )
        info.update(nuts_info)
    else:
        samples = warm
    return PosteriorResult(samples, warm, jnp.mean(samples, axis=1), jnp.std(samples, axis=1), info)
