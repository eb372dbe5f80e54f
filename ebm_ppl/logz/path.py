"""Annealing paths and their glue: plain log densities seen as one-level energies, the path type,
the per-level frames (:mod:`ebm_ppl.annealing_frames`), uniform and reversed paths, and gradient counts."""

from __future__ import annotations

import math
from typing import NamedTuple

import numpy as np

from ebm_ppl.annealing_frames import LevelFrame, check_frame, identity_frame
from ebm_ppl.energy.plain import FunctionEnergy
from ebm_ppl.energy.protocol import NoiseConditionalEnergy

__all__ = ["AnnealingPath", "as_energy"]


def as_energy(energy, data_shape=None):
    """``energy`` itself if it follows the protocol; a plain callable with ``data_shape`` wrapped."""
    if isinstance(energy, NoiseConditionalEnergy):
        return energy
    if callable(energy):
        if data_shape is None:
            raise ValueError("a plain log-density function needs data_shape=(...) to define its space")
        return FunctionEnergy(energy, data_shape)
    raise TypeError(f"expected a noise-conditional energy or a log-density callable, got {type(energy).__name__}")


def _check_level(energy, level):
    level = int(level)
    if not 0 <= level < energy.num_levels:
        raise ValueError(f"level must be in 0..{energy.num_levels - 1}, got {level}")
    return level


def _log_z_top(energy) -> float:
    return 0.5 * int(math.prod(energy.data_shape)) * math.log(2 * math.pi)


class AnnealingPath(NamedTuple):
    """Bridges j = 1..J of a path; bridge j has density (1 - beta_j) f(., t_hi_j) + beta_j f(., t_lo_j).

    The start (j = 0) is level ``t_hi[0]`` (beta = 0). ``step_sizes`` are MALA step sizes (std of
    the proposal noise), fixed. ``level_end[j]`` is True where bridge j is exactly level t_lo_j.
    ``frame`` gives the coordinates x the particles move in, y_t = offset_t + A_t x
    (:mod:`ebm_ppl.annealing_frames`; None: the identity frame y_t = c_t x).
    """

    t_hi: np.ndarray
    t_lo: np.ndarray
    beta: np.ndarray
    step_sizes: np.ndarray
    level_end: np.ndarray
    transition: str = "mala"
    persistence: float = 0.9
    num_leapfrog: int = 1
    frame: LevelFrame | None = None


def _path_frame(energy, path: AnnealingPath) -> LevelFrame:
    return identity_frame(energy) if path.frame is None else path.frame


def _model_scales(energy) -> np.ndarray:
    """(T+1,) c_t with y_t = c_t x_t (ones for a plain energy)."""
    return np.asarray(energy.schedule.model_scales, np.float64)


def _uniform_path(
    energy, level, bridges_per_level, step_size, transition="mala", persistence=0.9, num_leapfrog=1, frame=None
):
    T = energy.num_levels
    his, los, betas, ends = [], [], [], []
    for t in range(T - 1, level - 1, -1):
        b = np.arange(1, bridges_per_level + 1) / bridges_per_level
        his += [t + 1] * bridges_per_level
        los += [t] * bridges_per_level
        betas += list(b)
        ends += [False] * (bridges_per_level - 1) + [True]
    J = len(his)
    return AnnealingPath(
        np.array(his),
        np.array(los),
        np.array(betas),
        np.full(J, step_size),
        np.array(ends),
        transition,
        persistence,
        int(num_leapfrog),
        frame,
    )


def _grad_count(path: AnnealingPath, T: int, num_steps: int, num_particles: int) -> tuple[int, int]:
    """(energy evals, gradient evals) of learned levels for a run of ``path``."""
    learned = (path.t_hi < T).astype(int) + (path.t_lo < T).astype(int)
    prev_hi = np.concatenate([[path.t_hi[0]], path.t_hi[:-1]])
    prev_lo = np.concatenate([[path.t_lo[0]], path.t_lo[:-1]])
    refresh = (path.t_hi != prev_hi) | (path.t_lo != prev_lo)
    per = learned * num_steps * (int(path.num_leapfrog) if path.transition == "hmc" else 1) + refresh * learned
    start = learned[0] if len(learned) else 0  # the evaluation at the start density
    grads = int((per.sum() + start) * num_particles)
    return grads, grads


def _resolve_frame(energy, frame):
    """A :class:`LevelFrame` for ``frame`` = None / "identity" / a LevelFrame; "fit" is resolved by the pilot."""
    if frame is None or (isinstance(frame, str) and frame == "identity"):
        return identity_frame(energy)
    if isinstance(frame, LevelFrame):
        return check_frame(energy, frame)
    raise ValueError(f"frame must be 'fit', 'identity' or a LevelFrame (logz.fit_frame), got {frame!r}")


def _dim(energy):
    return int(math.prod(energy.data_shape))


def _default_bridges(num_segments):
    return max(900, 4 * num_segments)


def _reverse(path: AnnealingPath):
    """Densities pi_0..pi_J of ``path`` run backwards: start pi_J, bridges pi_{J-1}, ..., pi_0.
    The transition at pi_j keeps its forward step size (pi_0 takes bridge 1's)."""
    hi = np.concatenate([[path.t_hi[0]], path.t_hi])
    lo = np.concatenate([[path.t_lo[0]], path.t_lo])
    b = np.concatenate([[0.0], path.beta])
    eps = np.concatenate([[path.step_sizes[0]], path.step_sizes])
    start = (int(hi[-1]), int(lo[-1]), float(b[-1]))
    r = slice(len(hi) - 2, None, -1)
    return AnnealingPath(
        hi[r],
        lo[r],
        b[r],
        eps[r],
        np.zeros(len(hi) - 1, bool),
        path.transition,
        path.persistence,
        path.num_leapfrog,
        path.frame,
    ), start
