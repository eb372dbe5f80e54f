"""Progressive sampling (Gao et al. 2021, Algorithm 2) as a BlackJAX-style kernel.

Start at x_T ~ N(0, I). For t = T-1, ..., 0 sample the recovery conditional

    p(y_t | x_{t+1})  proportional to  exp(f(y_t, t) - |x_{t+1} - y_t|^2 / (2 sigma_{t+1}^2))
                                        [ * exp(log_likelihood_fn(y_t / c_t, t)) ]

then set x_t = y_t / c_t (c_t = sqrt(1 - sigma_{t+1}^2)). One kernel step moves one level down.

Inner samplers (``inner``; default ``"mala"`` with K = 10 and per-level steps tuned on a pilot):

* ``"langevin"``: the paper (biased, see docs/sampling.md): K unadjusted steps y <- y + delta_t^2/2 grad + delta_t e, with the
  official delta_t^2 = b^2 c_t^2 sigma_{t+1}^2 (``schedule.langevin_step_sizes``, eq. 17);
* ``"normal"``: the T1k normal approximation N(x_{t+1} + sigma^2 grad f(x_{t+1}), sigma^2), K = 0;
* ``"mala"``: K Metropolis-adjusted Langevin steps (BlackJAX ``mala``), same delta_t^2 convention;
* ``"hmc"``: K HMC transitions of ``num_integration_steps`` leapfrog steps of size eps_t (BlackJAX ``hmc``);
* ``"nuts"``: K NUTS transitions with step eps_t (BlackJAX ``nuts``), the paper's App. C.2 check.

Where the inner chain starts (``start``): ``"x_next"`` (Algorithm 2: y = x_{t+1}), ``"normal"``
(one normal-approximation draw first, the long-run sampler of section 4.2) or ``"auto"`` (the
normal draw unless absurd, then x_{t+1}; the default of the MH samplers in :func:`sample`).

Step sizes are per level, shape (T,): for langevin/mala the squared step delta_t^2, for
hmc/nuts the leapfrog step eps_t. With exact oracle energies the official Langevin steps are
unstable at the top levels of ``drl(6)`` (level 5: variance ~5e-4 but delta^2 = 0.0192), so for
exact targets use an MH-corrected inner sampler with steps from :func:`tune_step_sizes`.

Where the top level has no recovery term (``conditional_sigmas[T-1] = inf``, e.g. ``drl(6)``), an
MH-corrected descent starts from adaptive tempered SMC particles of that level
(:mod:`ebm_ppl.sampling.top_level`, ``top_level="auto"``), since no local chain gets its mode weights right.

Positions are single examples (shape ``data_shape``); ``jax.vmap`` runs many chains.
:func:`sample` compiles once per shapes and settings (module-level jit, the energy an argument) and
caches the tuned step sizes per energy object.
"""

from ebm_ppl.sampling.progressive.kernel import (
    DEFAULT_INNER,
    DEFAULT_TARGET_ACCEPTANCE,
    INNER_SAMPLERS,
    MH_SAMPLERS,
    STARTS,
    ProgressiveInfo,
    ProgressiveState,
    build_kernel,
    conditional_log_density_fn,
    default_num_inner_steps,
    default_start,
    default_step_sizes,
    init,
    recovery_log_density,
)
from ebm_ppl.sampling.progressive.run import (
    TOP_LEVEL,
    ProgressiveConfig,
    ProgressiveRunInfo,
    ProgressiveTrace,
    as_top_level_api,
    sample,
    sample_trace,
)
from ebm_ppl.sampling.progressive.tuning import TUNE_SEED, resolve_step_sizes, tune_step_sizes, tuned_step_sizes

__all__ = [
    "ProgressiveState",
    "ProgressiveInfo",
    "recovery_log_density",
    "conditional_log_density_fn",
    "default_step_sizes",
    "init",
    "build_kernel",
    "tune_step_sizes",
    "tuned_step_sizes",
    "resolve_step_sizes",
    "as_top_level_api",
    "sample",
    "sample_trace",
    "ProgressiveTrace",
    "ProgressiveConfig",
    "ProgressiveRunInfo",
    "INNER_SAMPLERS",
    "MH_SAMPLERS",
    "STARTS",
    "TOP_LEVEL",
    "DEFAULT_INNER",
    "DEFAULT_TARGET_ACCEPTANCE",
    "TUNE_SEED",
    "default_num_inner_steps",
    "default_start",
]
