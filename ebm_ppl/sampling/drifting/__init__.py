"""One-step sampler for any energy by drifting (Cao, Yan & Zhao, 2026).

A generator x = g_theta(z), z ~ N(0, I_latent), is trained so that its push-forward q_theta
follows p(x) = exp(-E(x)) / Z. Each update draws a batch x_i = g_theta(z_i), moves every sample
by the drift

    V(x) = eta * ( s_p(x) - s_q(x) ),   s_p = grad log (p * phi_sigma),  s_q = grad log (q * phi_sigma),

and regresses the generator onto the frozen targets: loss = mean_i |x_i - sg(x_i + V(x_i))|^2.

Target side s_p (from the energy only, no log Z):

* ``"mean_shift"`` (local importance sampling, L perturbations):
  u_l = x + sigma e_l, w_l = softmax_l(-E(u_l)), s_p(x) ~ (sum_l w_l u_l - x) / sigma^2;
* ``"curvature"`` (second order): s_p(x) ~ -(I + sigma^2 H(x))^{-1} grad E(x), with the linear
  system solved by conjugate gradients on Hessian-vector products (forward-over-reverse), so it
  never forms H and scales to any dimension. Where I + sigma^2 H is not positive definite along a
  CG direction (between modes) CG stops at its current iterate (truncated CG, as in trust-region
  Newton); if that happens at the first step the plain gradient -grad E is used.

Sampler side s_q (mini-batch Gaussian mean shift, the batch point itself included):
  s_q(x_i) = (sum_j K(x_j, x_i) x_j / sum_j K(x_j, x_i) - x_i) / sigma^2,  K = exp(-|.|^2 / 2 sigma^2).

Which energy: any bound energy at any level, E(x) = -log p. ``space="data"`` (default) works in
the data variable x_t = y_t / c_t (c_t = ``schedule.model_scales[t]``; at level 0, c_0 is the
energy's ``data_scale`` a, so x_0 is the data itself): E(x) = -f(c_t x, t) + log Z_t - D log c_t,
the exact negative log density of x when log Z_t is known (oracles, plain targets). ``space="model"``
uses y_t directly: E(y) = -f(y, t) + log Z_t. Unknown log Z only shifts E by a constant, which the
drift never sees. Plain targets have c_0 = 1 (model space = data space).

Everything is a pure function of explicit keys; :func:`train` runs jitted ``lax.scan`` chunks of
updates under a tqdm bar. :class:`DriftingSampler` bundles the trained generator
(``sample(key, n)``, ``save(path)``, ``DriftingSampler.load(path)``).

Modules: ``model`` (generators, :class:`DriftingConfig`), ``scores`` (energy at a level, target-
and sampler-side scores, the drift), ``training`` (state, update, loop), ``sampler``
(:class:`DriftingSampler` and its files); every name is importable from ``ebm_ppl.sampling.drifting``.
The paper's evaluation protocol is :mod:`ebm_ppl.metrics.sampler_evaluation` and its plot
:func:`ebm_ppl.plotting.plot_samples_over_energy` (the old names here warn for one release).
"""

from ebm_ppl._jax_utils import warn as _warn
from ebm_ppl.sampling.drifting.model import (
    ESTIMATORS,
    ConvGenerator,
    DriftingConfig,
    ResidualMLPGenerator,
    make_generator,
)
from ebm_ppl.sampling.drifting.sampler import DriftingSampler
from ebm_ppl.sampling.drifting.scores import (
    batch_mean_shift_score,
    curvature_target_score,
    drift,
    drift_loss,
    energy_function,
    level_at,
    level_bandwidths,
    level_score_function,
    mean_shift_target_score,
)
from ebm_ppl.sampling.drifting.training import TrainState, build_update, init, train

__all__ = [
    "DriftingConfig",
    "ResidualMLPGenerator",
    "ConvGenerator",
    "make_generator",
    "energy_function",
    "mean_shift_target_score",
    "curvature_target_score",
    "batch_mean_shift_score",
    "drift",
    "drift_loss",
    "level_bandwidths",
    "level_score_function",
    "level_at",
    "TrainState",
    "init",
    "build_update",
    "train",
    "DriftingSampler",
    "ESTIMATORS",
]

# Evaluation and its plot moved to their layers; the old names work for one release.
_MOVED = {
    "evaluate": "ebm_ppl.metrics.sampler_evaluation.evaluate",
    "reference_samples": "ebm_ppl.metrics.sampler_evaluation.reference_samples",
    "mmd": "ebm_ppl.metrics.mmd",
    "median_bandwidth": "ebm_ppl.metrics.median_bandwidth (of the first 2000 points)",
    "plot_samples": "ebm_ppl.plotting.plot_samples_over_energy",
}


def _first_points_bandwidth(x, max_points: int = 2000) -> float:
    from ebm_ppl.metrics import median_bandwidth

    return median_bandwidth(x[:max_points])


def _mmd_value(x, y, bandwidth: float) -> float:
    from ebm_ppl.metrics import mmd

    return float(mmd(x, y, bandwidth))


def _plot_samples(energy, samples, reference, path, **kwargs):
    from ebm_ppl.plotting import plot_samples_over_energy

    kwargs.setdefault("sample_label", "one-step drifting sampler")
    return plot_samples_over_energy(energy, samples, reference, path, **kwargs)


def __getattr__(name):
    if name not in _MOVED:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    _warn(
        f"ebm_ppl.sampling.drifting.{name} moved to {_MOVED[name]}; the old name goes in the next release",
        DeprecationWarning,
    )
    if name in ("evaluate", "reference_samples"):
        from ebm_ppl.metrics import sampler_evaluation

        return getattr(sampler_evaluation, name)
    return {"mmd": _mmd_value, "median_bandwidth": _first_points_bandwidth, "plot_samples": _plot_samples}[name]
