"""Annealed importance sampling forwards (:func:`ais`, a stochastic lower bound), backwards from exact
samples (:func:`reverse_ais`, an upper bound) and both (:func:`bdmc`, the sandwich)."""

from __future__ import annotations

import dataclasses

import jax
import numpy as np

from ebm_ppl._jax_utils import rng_key_first, warn
from ebm_ppl.annealing_frames import from_model_batch, to_model_batch
from ebm_ppl.energy.protocol import ExactSampler
from ebm_ppl.logz.config import AnnealingConfig, PilotConfig, resolve_configs
from ebm_ppl.logz.estimate import LogZEstimate, _curve, _weight_stats
from ebm_ppl.logz.kernels import _run_path
from ebm_ppl.logz.path import AnnealingPath, _check_level, _grad_count, _log_z_top, _path_frame, _reverse, as_energy
from ebm_ppl.logz.pilot import pilot_path
from ebm_ppl.logz.reliability import check_reliability, pareto_khat

__all__ = ["ais", "reverse_ais", "bdmc"]


def _tune_path(rng_key, energy, level, config, pilot, batch_size, mesh, progress):
    """The pilot of ais, reverse_ais and bdmc: :func:`pilot_path` with their configs."""
    return pilot_path(
        rng_key,
        energy,
        level=level,
        config=config,
        pilot=pilot,
        batch_size=batch_size,
        mesh=mesh,
        progress=progress,
    )


def _stage(progress, name):
    """``progress(name, done, total)`` as a ``(done, total)`` callback, or None."""
    return None if progress is None else (lambda done, total: progress(name, done, total))


@rng_key_first(1)
def ais(
    rng_key,
    energy,
    *,
    level: int = 0,
    num_particles: int = 512,
    config: AnnealingConfig | None = None,
    pilot: PilotConfig | None = None,
    path: AnnealingPath | None = None,
    batch_size: int | None = None,
    data_shape=None,
    mesh=None,
    progress=None,
    return_samples: bool = False,
    **options,
):
    """Annealed importance sampling from N(0, I) (level T) down to ``level``.

    Args:
      energy: a noise-conditional energy, or a plain ``log_density(y)`` callable with ``data_shape``.
      rng_key: PRNG key.
      level: stop at this level; log Z of every level passed is in ``result.levels``.
      num_particles: independent AIS chains.
      config: an :class:`~ebm_ppl.logz.AnnealingConfig` (num_bridges, num_steps, transition,
        persistence, num_integration_steps, spacing, frame); ``pilot``: a
        :class:`~ebm_ppl.logz.PilotConfig` (pilot_particles, pilot_bridges_per_level,
        target_acceptance, ...). Any of their fields may be given as a keyword of its own instead,
        as below; a keyword overrides the NamedTuple's value.
      num_bridges: total bridges over all levels (default max(900, 4 per level)), placed by
        thermodynamic length measured in the pilot (``spacing="adaptive"``).
      num_steps: transition steps per bridge (each costs one gradient of each of the two levels).
      transition: ``"mala"`` (MH-adjusted Langevin, the algorithm of blackjax.mala; default),
        ``"hmc"`` (``num_integration_steps`` leapfrog steps, fresh momentum, step jittered per particle on
        [0.5, 1.5] eps, Metropolis-corrected) or ``"ghmc"`` (generalised HMC: one leapfrog step with
        persistent, partially refreshed momentum). On gmm:64:4 all three give the same stderr per
        gradient within noise (docs/logz.md, section 4).
      persistence: momentum persistence a of ghmc (p <- a p + sqrt(1 - a^2) xi).
      num_integration_steps: leapfrog steps per hmc step (each costs one gradient of each level of the bridge).
      path: a fixed :class:`AnnealingPath` (skips the pilot; its ``frame`` is used).
      frame: the per-level coordinates the particles move in (:mod:`ebm_ppl.annealing_frames`):
        ``"fit"`` (default: a Gaussian fitted to a first pilot's particles and carried to every
        level by the forward process), ``"identity"`` (y_t = c_t x), or a :class:`LevelFrame`, e.g.
        ``fit_frame(energy, held_out_data)``. Any fixed frame keeps the weights unbiased; a good one
        shortens the path (gmm:64:4 at 2e6 gradients: stderr 0.05 -> 0.015).
      pilot_particles, pilot_bridges_per_level, target_acceptance: the pilot run that tunes step sizes.
      batch_size: run particles in batches of this size (memory).
      return_samples: deprecated: return ``(estimate, samples, log_weights)`` (the estimate carries
        both as ``samples`` and ``log_weights``).
      mesh: a device mesh (:mod:`ebm_ppl.sharding`): particles split over its devices
        (``num_particles`` and ``batch_size`` multiples of its size); same estimate as one device.
      progress: optional ``progress(stage, done, total)`` callback (stages "frame pilot", "pilot",
        "anneal"; done/total count bridges x particle batches), e.g. to drive a progress bar.

    Returns a :class:`LogZEstimate` (``method="ais"``), ``lower`` = ``log_z`` (a stochastic lower
    bound), with the final particles (``samples``, model space at ``level``) and their
    ``log_weights``. The estimate carries the
    Pareto k-hat of its log weights; when it is unreliable (k-hat > 0.7 or ESS < 20,
    :mod:`ebm_ppl.logz.reliability`) an :class:`~ebm_ppl.logz.UnreliableLogZWarning` is emitted.
    """
    config, pilot = resolve_configs("logz.ais", config, pilot, options)
    energy = as_energy(energy, data_shape)
    level = _check_level(energy, level)
    T = energy.num_levels
    if mesh is not None:
        from ebm_ppl.sharding import check_divisible

        check_divisible(num_particles, mesh, "number of AIS particles")
        if batch_size is not None:
            check_divisible(min(int(batch_size), num_particles), mesh, "AIS batch_size")
    k_pilot, k_init, k_run = jax.random.split(rng_key, 3)
    pilot_grads, meta = 0, {}
    if path is None:
        path, pilot_grads, meta = _tune_path(k_pilot, energy, level, config, pilot, batch_size, mesh, progress)
    num_steps = config.num_steps
    y0 = jax.random.normal(k_init, (num_particles,) + tuple(energy.data_shape))
    y, inc, acc, _, _ = _run_path(
        energy, k_run, y0, path, num_steps, batch_size=batch_size, mesh=mesh, progress=_stage(progress, "anneal")
    )
    log_w = np.cumsum(inc.astype(np.float64), axis=0)  # (J, N), float64
    top = _log_z_top(energy)
    frame_used = _path_frame(energy, path)
    log_c = frame_used.log_det  # log Z_t = log Z^x_t + log |det A_t|
    levels = {}
    for j in np.flatnonzero(path.level_end):
        lz, se, ess = _weight_stats(log_w[j])
        t = int(path.t_lo[j])
        levels[t] = {"log_z": top + lz + log_c[t], "stderr": se, "ess": ess, "khat": pareto_khat(log_w[j])}
    final = log_w[-1]
    lz, se, ess = _weight_stats(final)
    lz += log_c[level]
    grads = _grad_count(path, T, num_steps, num_particles)[1] + pilot_grads
    meta.update(
        {
            "num_particles": num_particles,
            "num_bridges": int(len(path.beta)),
            "num_steps": num_steps,
            "transition": path.transition,
            "persistence": float(path.persistence),
            "num_leapfrog": int(path.num_leapfrog),
            "acceptance": float(np.mean(acc)),
            "pilot_grad_evals": int(pilot_grads),
            "devices": 1 if mesh is None else int(mesh.devices.size),
        }
    )
    est = LogZEstimate(
        log_z=top + lz,
        stderr=se,
        ess=ess,
        num_energy_evals=grads,
        num_grad_evals=grads,
        curve=_curve(final, top + log_c[level]),
        method="ais",
        level=level,
        lower=top + lz,
        levels=levels,
        meta=meta,
        khat=pareto_khat(final),
        log_weights=[float(v) for v in final],
        samples=np.asarray(to_model_batch(frame_used, y, level)),
    )
    check_reliability(est, "logz.ais")
    if return_samples:
        warn(
            "logz.ais(return_samples=True) is deprecated (a flag should not change the result's type): "
            "the estimate always carries the particles, use est.samples and est.log_weights",
            DeprecationWarning,
        )
        return est, est.samples, final
    return est


@rng_key_first(1)
def reverse_ais(
    rng_key,
    energy,
    samples,
    *,
    level: int = 0,
    config: AnnealingConfig | None = None,
    pilot: PilotConfig | None = None,
    path: AnnealingPath | None = None,
    batch_size: int | None = None,
    data_shape=None,
    mesh=None,
    progress=None,
    **options,
):
    """Reverse AIS from ``samples`` of level ``level`` (model space, shape (N, *data_shape)) up to N(0, I).

    With exact samples of exp f(., level) / Z (an oracle's ``sample``) the result is a stochastic
    *upper* bound on log Z_level: E[w] = Z_T / Z_level, so log Z_T - log mean w overestimates on
    average. Held-out data noised to the level are exact samples only if the model is the data law;
    then the figure is a heuristic upper bound. ``frame``, ``progress`` and the pilot options are those
    of :func:`ais`.
    """
    config, pilot = resolve_configs("logz.reverse_ais", config, pilot, options)
    energy = as_energy(energy, data_shape)
    level = _check_level(energy, level)
    T = energy.num_levels
    pilot_grads, meta = 0, {}
    k_pilot, k_run = jax.random.split(rng_key)
    if path is None:
        path, pilot_grads, meta = _tune_path(k_pilot, energy, level, config, pilot, batch_size, mesh, progress)
    num_steps = config.num_steps
    frame_used = _path_frame(energy, path)
    samples = from_model_batch(frame_used, samples, level)  # to the path's coordinates at the level
    rev, rev_start = _reverse(path)
    _, inc, acc, _, _ = _run_path(
        energy,
        k_run,
        samples,
        rev,
        num_steps,
        batch_size=batch_size,
        start=rev_start,
        mesh=mesh,
        progress=_stage(progress, "reverse anneal"),
    )
    log_w = np.sum(inc.astype(np.float64), axis=0)  # estimates log Z_T / Z_level
    lz, se, ess = _weight_stats(log_w)
    top = _log_z_top(energy)
    n = samples.shape[0]
    grads = _grad_count(rev, T, num_steps, n)[1] + pilot_grads
    meta.update(
        {
            "num_particles": int(n),
            "num_bridges": int(len(rev.beta)),
            "num_steps": num_steps,
            "acceptance": float(np.mean(acc)),
        }
    )
    log_det = float(frame_used.log_det[level])
    lz -= log_det
    est = LogZEstimate(
        log_z=top - lz,
        stderr=se,
        ess=ess,
        num_energy_evals=grads,
        num_grad_evals=grads,
        curve=_curve(log_w, top + log_det, -1.0),
        method="reverse_ais",
        level=level,
        upper=top - lz,
        meta=meta,
        khat=pareto_khat(log_w),
        log_weights=[float(v) for v in log_w],
    )
    check_reliability(est, "logz.reverse_ais")
    return est


@rng_key_first(1)
def bdmc(
    rng_key,
    energy,
    samples=None,
    *,
    level: int = 0,
    num_particles: int = 512,
    config: AnnealingConfig | None = None,
    pilot: PilotConfig | None = None,
    batch_size: int | None = None,
    mesh=None,
    progress=None,
    **options,
):
    """Bidirectional Monte Carlo: forward AIS (stochastic lower bound) and reverse AIS from
    ``samples`` of the level (stochastic upper bound) on the same tuned path (and ``frame``, see
    :func:`ais`). Without ``samples`` an oracle's exact ``energy.sample(rng_key, num_particles, level)`` is
    used. Returns a LogZEstimate with ``log_z`` the forward estimate, ``lower``/``upper`` the two sides
    and the gap in ``meta``."""
    config, pilot = resolve_configs("logz.bdmc", config, pilot, options)
    energy = as_energy(energy)
    level = _check_level(energy, level)
    k_pilot, k_fwd, k_rev, k_smp = jax.random.split(rng_key, 4)
    path, pilot_grads, meta = _tune_path(k_pilot, energy, level, config, pilot, batch_size, mesh, progress)
    num_steps = config.num_steps
    if samples is None:
        if not isinstance(energy, ExactSampler):
            raise ValueError(
                "bdmc needs exact samples of the level: pass samples=... (e.g. held-out data "
                "noised to the level), or use an oracle that has .sample"
            )
        samples = energy.sample(k_smp, num_particles, level)
    fwd = ais(
        k_fwd,
        energy,
        level=level,
        num_particles=num_particles,
        config=config,
        path=path,
        batch_size=batch_size,
        mesh=mesh,
        progress=progress,
    )
    rev = reverse_ais(
        k_rev,
        energy,
        samples,
        level=level,
        config=config,
        path=path,
        batch_size=batch_size,
        mesh=mesh,
        progress=progress,
    )
    grads = fwd.num_grad_evals + rev.num_grad_evals + pilot_grads
    meta.update(
        {
            "gap": rev.upper - fwd.lower,
            "reverse_stderr": rev.stderr,
            "reverse_ess": rev.ess,
            "reverse_khat": rev.khat,
            "num_particles": num_particles,
            "num_bridges": int(len(path.beta)),
            "num_steps": num_steps,
        }
    )
    return dataclasses.replace(
        fwd, method="bdmc", upper=rev.upper, lower=fwd.lower, num_grad_evals=grads, num_energy_evals=grads, meta=meta
    )
