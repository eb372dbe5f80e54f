"""The pilot run that tunes an annealing path: step sizes and bridge positions (thermodynamic length)."""

from __future__ import annotations

import jax
import numpy as np

from ebm_ppl._jax_utils import rng_key_first
from ebm_ppl.annealing_frames import LevelFrame, fit_frame, identity_frame
from ebm_ppl.logz.config import AnnealingConfig, PilotConfig, resolve_configs
from ebm_ppl.logz.kernels import TRANSITIONS, _run_path
from ebm_ppl.logz.path import (
    AnnealingPath,
    _default_bridges,
    _dim,
    _grad_count,
    _model_scales,
    _resolve_frame,
    _uniform_path,
    as_energy,
)

__all__ = ["pilot_path", "pilot_grad_count"]


@rng_key_first(1)
def pilot_path(
    rng_key,
    energy,
    *,
    level=0,
    config: AnnealingConfig | None = None,
    pilot: PilotConfig | None = None,
    batch_size=None,
    mesh=None,
    progress=None,
    **options,
):
    """Tune an :class:`AnnealingPath` by a pilot run (its samples are then discarded).

    The pilot runs ``pilot.pilot_bridges_per_level`` uniform bridges per level with the step size
    adapted on the fly towards ``pilot.target_acceptance``, and records the spread
    sd_beta(f(., t) - f(., t+1)) along the path. The returned path has ``config.num_bridges`` bridges
    placed at equal increments of the thermodynamic length int sd d beta (``spacing="adaptive"``;
    ``"uniform"``: equal per level, equal beta steps) with the pilot's step sizes, interpolated, FIXED.

    ``config`` (:class:`~ebm_ppl.logz.AnnealingConfig`; here its frame defaults to ``"identity"``)
    and ``pilot`` (:class:`~ebm_ppl.logz.PilotConfig`); any of their fields may be passed as a keyword.
    ``frame``: the coordinates the path runs in (:mod:`ebm_ppl.annealing_frames`): ``"identity"``
    (y_t = c_t x), a :class:`LevelFrame`, or ``"fit"``: a first pilot in the identity frame, a
    Gaussian fitted to its ``frame_particles`` final particles (:func:`fit_frame`; that pilot runs
    ``frame_bridges_per_level``), then the tuning pilot in that frame (about 3x the pilot cost; on
    gmm:64:4 it cuts the AIS variance ~10x at the same budget, docs/logz.md section 4).
    ``progress(stage, done, total)``: optional callback (stages "frame pilot", "pilot").
    Returns (path, pilot gradient count, meta).
    """
    config, pilot = resolve_configs(
        "logz.pilot_path", config, pilot, options, default=AnnealingConfig(frame="identity")
    )
    energy = as_energy(energy)
    opts = dict(
        level=level,
        num_bridges=config.num_bridges,
        num_steps=config.num_steps,
        pilot_particles=pilot.pilot_particles,
        pilot_bridges_per_level=pilot.pilot_bridges_per_level,
        target_accept=pilot.target_acceptance,
        init_step_size=pilot.init_step_size,
        min_bridges_per_level=pilot.min_bridges_per_level,
        spacing=config.spacing,
        batch_size=batch_size,
        transition=config.transition,
        persistence=config.persistence,
        num_leapfrog=config.num_integration_steps,
        mesh=mesh,
    )
    frame = config.frame
    stage = (lambda name: None) if progress is None else (lambda name: lambda d, t: progress(name, d, t))
    if isinstance(frame, str) and frame == "fit":
        k_fit, k_tune = jax.random.split(rng_key)
        fit_opts = dict(
            opts, pilot_particles=pilot.frame_particles, pilot_bridges_per_level=pilot.frame_bridges_per_level
        )
        _, fit_grads, _, y_pilot = _pilot(
            energy, k_fit, identity_frame(energy), **fit_opts, progress=stage("frame pilot")
        )
        samples = np.asarray(y_pilot, np.float64) * _model_scales(energy)[level]  # identity frame: y = c x
        fitted = fit_frame(energy, samples, level)
        path, grads, meta, _ = _pilot(energy, k_tune, fitted, **opts, progress=stage("pilot"))
        meta.update({"frame": fitted.describe(), "frame_pilot_grad_evals": int(fit_grads)})
        return path, grads + fit_grads, meta
    path, grads, meta, _ = _pilot(energy, rng_key, _resolve_frame(energy, frame), **opts, progress=stage("pilot"))
    return path, grads, meta


def pilot_grad_count(
    energy,
    *,
    level=0,
    config: AnnealingConfig | None = None,
    pilot: PilotConfig | None = None,
    **options,
) -> int:
    """Gradient evaluations :func:`pilot_path` spends with these options (to split a budget); the
    frame defaults to ``"fit"``, as in :func:`~ebm_ppl.logz.ais`."""
    config, pilot = resolve_configs("logz.pilot_grad_count", config, pilot, options)
    energy = as_energy(energy)
    T = energy.num_levels

    def one(bridges, particles):
        path = _uniform_path(energy, level, bridges, 1.0, config.transition, num_leapfrog=config.num_integration_steps)
        return _grad_count(path, T, config.num_steps, particles)[1]

    grads = one(pilot.pilot_bridges_per_level, pilot.pilot_particles)
    if isinstance(config.frame, str) and config.frame == "fit":
        grads += one(pilot.frame_bridges_per_level, pilot.frame_particles)
    return int(grads)


def _pilot(
    energy,
    key,
    frame: LevelFrame,
    *,
    level,
    num_bridges,
    num_steps,
    pilot_particles,
    pilot_bridges_per_level,
    target_accept,
    init_step_size,
    min_bridges_per_level,
    spacing,
    batch_size,
    transition,
    persistence,
    num_leapfrog,
    mesh,
    progress=None,
):
    """One pilot run in ``frame``; returns (path, gradient count, meta, final particles in the frame)."""
    T = energy.num_levels
    L = T - level
    if num_bridges is None:
        num_bridges = _default_bridges(L)
    num_bridges = max(int(num_bridges), L * min_bridges_per_level)
    if init_step_size is None:
        init_step_size = 0.3 * _dim(energy) ** (-1.0 / 6.0)
    P = int(pilot_bridges_per_level)
    if transition not in TRANSITIONS:
        raise ValueError(f"transition must be one of {TRANSITIONS}, got {transition!r}")
    if target_accept is None:
        target_accept = {"ghmc": 0.8, "hmc": 0.75}.get(transition, 0.6)
    pilot = _uniform_path(energy, level, P, init_step_size, transition, persistence, num_leapfrog, frame)
    k_init, k_run = jax.random.split(key)
    y0 = jax.random.normal(k_init, (pilot_particles,) + tuple(energy.data_shape))
    y_final, _, acc, spread, steps = _run_path(
        energy,
        k_run,
        y0,
        pilot,
        num_steps,
        adapt=True,
        target_accept=target_accept,
        batch_size=batch_size,
        mesh=mesh,
        progress=progress,
    )
    pilot_grads = _grad_count(pilot, T, num_steps, pilot_particles)[1]
    u_pilot = np.repeat(np.arange(L), P) + np.tile(np.arange(1, P + 1) / P, L)
    spread = np.where(np.isfinite(spread), spread, np.nanmax(np.where(np.isfinite(spread), spread, 0)) + 1.0)
    seg_len = (spread.reshape(L, P) / P).sum(axis=1) + 1e-12
    if spacing == "uniform":
        counts = np.full(L, max(num_bridges // L, min_bridges_per_level))
    elif spacing == "adaptive":
        counts = np.maximum(min_bridges_per_level, np.round(num_bridges * seg_len / seg_len.sum()).astype(int))
    else:
        raise ValueError(f"spacing must be 'adaptive' or 'uniform', got {spacing!r}")
    his, los, betas, ends, us = [], [], [], [], []
    for k in range(L):
        t = T - 1 - k
        B = int(counts[k])
        if spacing == "adaptive":
            sd = spread.reshape(L, P)[k]
            grid = np.concatenate([[0.0], np.arange(1, P + 1) / P])
            cum = np.concatenate([[0.0], np.cumsum(sd / P)]) + grid * 1e-9
            b = np.interp(np.arange(1, B + 1) / B * cum[-1], cum, grid)
            b[-1] = 1.0
        else:
            b = np.arange(1, B + 1) / B
        his += [t + 1] * B
        los += [t] * B
        betas += list(b)
        ends += [False] * (B - 1) + [True]
        us += list(k + b)
    log_steps = np.interp(np.array(us), u_pilot, np.log(steps))
    path = AnnealingPath(
        np.array(his),
        np.array(los),
        np.array(betas),
        np.exp(log_steps),
        np.array(ends),
        transition,
        persistence,
        int(num_leapfrog),
        frame,
    )
    meta = {
        "pilot_acceptance": float(np.mean(acc)),
        "bridges_per_level": counts.tolist(),
        "thermodynamic_length": float(seg_len.sum()),
        "thermodynamic_length_per_level": seg_len.tolist(),
    }
    return path, pilot_grads, meta, y_final
