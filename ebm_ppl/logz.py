"""Estimators of the log normaliser log Z_t of a noise-conditional energy (see docs/logz.md).

Every estimator is called as ``estimator(energy, key, **budget)`` and returns a
:class:`LogZEstimate`. ``energy`` follows the protocol of :mod:`ebm_ppl.energy.base` (a checkpoint's
network, an oracle) or is a plain callable ``log_density(y)`` with ``data_shape=...`` given, which is
treated as a one-level energy whose level 1 is N(0, I) (geometric tempering from the standard normal).

* :func:`ais`: annealed importance sampling (Neal 2001) from N(0, I) = level T down through the
  learned levels, with geometric bridges ``(1 - beta) f(y, t+1) + beta f(y, t)`` between consecutive
  levels and Metropolis-adjusted Langevin transitions, in per-level coordinates fitted by a first
  pilot (:mod:`ebm_ppl.annealing_frames`). Step sizes and the bridge positions come from a separate
  pilot run and are then fixed, so the weights are unbiased for Z at every level passed.
* :func:`reverse_ais`: the same path run backwards from exact samples (an oracle) or from held-out
  data noised to the level: a stochastic *upper* bound on log Z.
* :func:`bdmc`: both directions, the bidirectional Monte Carlo sandwich (Grosse et al. 2015).
* :func:`ladder`: the paper's App. A.6 estimator over progressive samples.
* :func:`smc`: BlackJAX adaptive tempered SMC from N(0, I), the baseline.

Particles are on the leading axis (``vmap``), bridges in one ``lax.scan``; log weights are returned
per bridge in float32 and summed on the host in float64.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import math
from typing import Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl.annealing_frames import (LevelFrame, check_frame, fit_frame, from_model_batch, identity_frame, to_model,
                                      to_model_batch)
from ebm_ppl.energy.base import register_pytree, standard_normal_log_density

__all__ = [
    "LogZEstimate",
    "ais",
    "reverse_ais",
    "bdmc",
    "ladder",
    "smc",
    "as_energy",
    "AnnealingPath",
    "pilot_path",
    "pilot_grad_count",
    "LevelFrame",
    "fit_frame",
    "identity_frame",
]


# --------------------------------------------------------------------------------------------
# result type
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class LogZEstimate:
    """An estimate of log Z at ``level`` (normaliser of ``energy.log_density(., level)``).

    Attributes:
      log_z: the estimate (float).
      stderr: its standard error (delta method over the importance weights).
      ess: effective sample size of the final importance weights, (sum w)^2 / sum w^2.
      num_energy_evals, num_grad_evals: per-example evaluations of learned levels spent in total
        (pilot included; level T is closed form and not counted).
      curve: list of ``(num_samples, log_z)``: the estimate from the first m samples.
      method: "ais", "reverse_ais", "bdmc", "ladder" or "smc".
      level: the level t the estimate is for.
      lower, upper: the two sides of a sandwich where known (``lower`` is a stochastic lower bound,
        ``upper`` a stochastic upper bound), else None.
      levels: ``{t: {"log_z", "stderr", "ess"}}`` for every level the run passed.
      meta: budget and settings used.
    """

    log_z: float
    stderr: float
    ess: float
    num_energy_evals: int
    num_grad_evals: int
    curve: list
    method: str = "ais"
    level: int = 0
    lower: float | None = None
    upper: float | None = None
    levels: dict = dataclasses.field(default_factory=dict)
    meta: dict = dataclasses.field(default_factory=dict)

    def to_json(self) -> dict:
        """A JSON-able dict (what checkpoints store)."""
        d = dataclasses.asdict(self)
        d["levels"] = {str(k): v for k, v in self.levels.items()}
        d["curve"] = [[int(m), float(v)] for m, v in self.curve]
        return _jsonable(d)

    @classmethod
    def from_json(cls, d: dict) -> "LogZEstimate":
        d = dict(d)
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        d["levels"] = {int(k): v for k, v in d.get("levels", {}).items()}
        d["curve"] = [tuple(c) for c in d.get("curve", [])]
        return cls(**d)

    def dumps(self) -> str:
        return json.dumps(self.to_json())

    def at_level(self, t: int) -> "LogZEstimate":
        """The estimate for another level this run passed (same budget fields, curve empty)."""
        t = int(t)
        if t == self.level:
            return self
        if t not in self.levels:
            raise KeyError(f"this {self.method} run did not pass level {t}; levels: {sorted(self.levels)}")
        e = self.levels[t]
        return dataclasses.replace(self, log_z=e["log_z"], stderr=e["stderr"], ess=e["ess"], level=t,
                                   curve=[], lower=None, upper=None)


def _jsonable(obj):
    if isinstance(obj, dict):
        return {str(k): _jsonable(v) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [_jsonable(v) for v in obj]
    if isinstance(obj, (np.generic, np.ndarray)):
        return _jsonable(obj.tolist())
    if isinstance(obj, float) and not math.isfinite(obj):
        return None
    return obj


def _weight_stats(log_w: np.ndarray) -> tuple[float, float, float]:
    """(log mean w, delta-method stderr of it, ESS) in float64."""
    log_w = np.asarray(log_w, np.float64)
    n = log_w.size
    finite = np.isfinite(log_w)
    if not finite.any():
        return -math.inf, math.inf, 0.0
    m = np.max(log_w[finite])
    w = np.where(finite, np.exp(log_w - m), 0.0)
    mean = w.mean()
    log_mean = m + math.log(mean)
    rel = w / mean
    stderr = float(np.std(rel, ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    ess = float(w.sum() ** 2 / np.sum(w**2))
    return float(log_mean), stderr, ess


def _curve(log_w: np.ndarray, offset: float = 0.0, sign: float = 1.0, points: int = 12) -> list:
    n = log_w.size
    ms = np.unique(np.geomspace(min(8, n), n, points).astype(int))
    out = []
    for m in ms:
        v, _, _ = _weight_stats(log_w[:m])
        out.append((int(m), float(offset + sign * v)))
    return out


# --------------------------------------------------------------------------------------------
# plain energies
# --------------------------------------------------------------------------------------------
@register_pytree(data_fields=(), static_fields=("fn", "data_shape"))
class _PlainEnergy:
    """A plain log density ``fn(y)`` seen as a one-level energy: level 0 = fn, level 1 = N(0, I)."""

    num_levels = 1

    def __init__(self, fn, data_shape):
        self.fn = fn
        self.data_shape = tuple(int(s) for s in data_shape)

    @property
    def event_ndim(self):
        return len(self.data_shape)

    @property
    def dim(self):
        return int(math.prod(self.data_shape))

    def log_density(self, y, t):
        top = standard_normal_log_density(y, self.event_ndim)
        batch = y.shape[: y.ndim - self.event_ndim]
        flat = y.reshape((-1,) + self.data_shape)
        val = jax.vmap(self.fn)(flat).reshape(batch)
        return jnp.where(jnp.asarray(t) >= 1, top, val)

    def log_z(self, t):
        return 0.5 * self.dim * math.log(2 * math.pi) if int(t) == 1 else None


def as_energy(energy, data_shape=None):
    """``energy`` itself if it follows the protocol; a plain callable with ``data_shape`` wrapped."""
    if hasattr(energy, "log_density") and hasattr(energy, "num_levels"):
        return energy
    if callable(energy):
        if data_shape is None:
            raise ValueError("a plain log-density function needs data_shape=(...) to define its space")
        return _PlainEnergy(energy, data_shape)
    raise TypeError(f"expected a noise-conditional energy or a log-density callable, got {type(energy).__name__}")


def _check_level(energy, level):
    level = int(level)
    if not 0 <= level < energy.num_levels:
        raise ValueError(f"level must be in 0..{energy.num_levels - 1}, got {level}")
    return level


def _log_z_top(energy) -> float:
    return 0.5 * int(math.prod(energy.data_shape)) * math.log(2 * math.pi)


# --------------------------------------------------------------------------------------------
# annealing path and the MALA transition
# --------------------------------------------------------------------------------------------
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


class _Cache(NamedTuple):
    y: jax.Array  # (N, *data_shape)
    f: jax.Array  # (N, 2): f(y, t_hi), f(y, t_lo)
    g: jax.Array  # (N, 2, *data_shape)
    p: jax.Array  # (N, *data_shape) momentum (ghmc only)


def _model_scales(energy) -> np.ndarray:
    """(T+1,) c_t with y_t = c_t x_t (ones for a plain energy)."""
    sched = getattr(energy, "schedule", None)
    if sched is None:
        return np.ones(energy.num_levels + 1)
    return np.asarray(sched.model_scales, np.float64)


def _pair_value_and_grad(energy, frame_arrays):
    """Values and gradients of h_t(x) = f(offset_t + A_t x, t) at two levels: the annealing runs in
    per-level coordinates x where every level has mean ~0 and covariance ~I (the identity frame:
    y_t = c_t x, the diffusion's own scale), not in the model space whose scale jumps between levels."""

    def one(x, t):
        return jax.value_and_grad(lambda v: energy.log_density(to_model(frame_arrays, v, t), t))(x)

    def pair(y, t_hi, t_lo):
        return jax.vmap(one, in_axes=(None, 0))(y, jnp.stack([t_hi, t_lo]))

    return jax.vmap(pair, in_axes=(0, None, None))


def _mix(f, beta):
    return (1.0 - beta) * f[:, 0] + beta * f[:, 1]


def _mix_grad(g, beta):
    return (1.0 - beta) * g[:, 0] + beta * g[:, 1]


def _mala_step(key, cache: _Cache, beta, eps, evaluate, t_hi, t_lo, event_axes):
    """One MH-corrected Langevin step (the algorithm of blackjax.mala, written over the cached
    pair of levels so a bridge costs one gradient of each level per step)."""
    k_prop, k_acc = jax.random.split(key)
    y, f, g, p = cache
    grad = _mix_grad(g, beta)
    noise = jax.random.normal(k_prop, y.shape, y.dtype)
    prop = y + 0.5 * eps**2 * grad + eps * noise
    f_new, g_new = evaluate(prop, t_hi, t_lo)
    grad_new = _mix_grad(g_new, beta)
    fwd = -0.5 * jnp.sum(jnp.square(prop - y - 0.5 * eps**2 * grad), axis=event_axes) / eps**2
    bwd = -0.5 * jnp.sum(jnp.square(y - prop - 0.5 * eps**2 * grad_new), axis=event_axes) / eps**2
    log_ratio = _mix(f_new, beta) - _mix(f, beta) + bwd - fwd
    log_ratio = jnp.where(jnp.isfinite(log_ratio), log_ratio, -jnp.inf)
    accept = jnp.log(jax.random.uniform(k_acc, log_ratio.shape)) < log_ratio
    bshape = (-1,) + (1,) * len(event_axes)
    y = jnp.where(accept.reshape(bshape), prop, y)
    f = jnp.where(accept[:, None], f_new, f)
    g = jnp.where(accept.reshape((-1, 1) + (1,) * len(event_axes)), g_new, g)
    return _Cache(y, f, g, p), jnp.mean(accept.astype(jnp.float32))


def _ghmc_step(key, cache: _Cache, beta, eps, evaluate, t_hi, t_lo, event_axes, persistence):
    """One generalised-HMC step (Horowitz 1991): partial momentum refresh
    p <- a p + sqrt(1 - a^2) xi, one leapfrog step, Metropolis test, momentum flip on rejection.
    It leaves pi(y) N(p; 0, I) invariant, so AIS weights (which depend on y only) stay unbiased;
    the persistent momentum makes the chain move ballistically across bridges."""
    k_ref, k_acc = jax.random.split(key)
    y, f, g, p = cache
    bshape = (-1,) + (1,) * len(event_axes)
    p = persistence * p + math.sqrt(1.0 - persistence**2) * jax.random.normal(k_ref, p.shape, p.dtype)
    p_half = p + 0.5 * eps * _mix_grad(g, beta)
    prop = y + eps * p_half
    f_new, g_new = evaluate(prop, t_hi, t_lo)
    p_new = p_half + 0.5 * eps * _mix_grad(g_new, beta)
    kin = lambda q: 0.5 * jnp.sum(jnp.square(q), axis=event_axes)  # noqa: E731
    log_ratio = _mix(f_new, beta) - _mix(f, beta) - kin(p_new) + kin(p)
    log_ratio = jnp.where(jnp.isfinite(log_ratio), log_ratio, -jnp.inf)
    accept = jnp.log(jax.random.uniform(k_acc, log_ratio.shape)) < log_ratio
    y = jnp.where(accept.reshape(bshape), prop, y)
    p = jnp.where(accept.reshape(bshape), p_new, -p)
    f = jnp.where(accept[:, None], f_new, f)
    g = jnp.where(accept.reshape((-1, 1) + (1,) * len(event_axes)), g_new, g)
    return _Cache(y, f, g, p), jnp.mean(accept.astype(jnp.float32))


def _hmc_step(key, cache: _Cache, beta, eps, evaluate, t_hi, t_lo, event_axes, num_leapfrog):
    """One HMC step (Duane et al. 1987; the algorithm of blackjax.hmc): fresh momentum p ~ N(0, I),
    ``num_leapfrog`` leapfrog steps of size eps, Metropolis test. It leaves pi(y) invariant; with a
    fixed (eps, L) it is a fixed kernel, so the AIS weights stay unbiased. Its moves are ballistic
    (distance ~ L eps), not diffusive (~ sqrt(L) eps) as L MALA steps, which is what reduces the lag
    of the particles behind the moving bridge in D >> 1."""
    k_mom, k_acc, k_jit = jax.random.split(key, 3)
    y, f, g, p0 = cache
    bshape = (-1,) + (1,) * len(event_axes)
    gshape = (-1, 1) + (1,) * len(event_axes)
    p = jax.random.normal(k_mom, y.shape, y.dtype)
    # step size jittered per particle, uniform on [0.5, 1.5] eps: a fixed mixture of pi-invariant kernels
    # (still unbiased) that breaks the resonance of fixed L eps on near-Gaussian targets (L eps near a
    # half period maps y to its mirror image and leaves the radius, which the weights depend on, stuck)
    eps = eps * jax.random.uniform(k_jit, (y.shape[0],) + (1,) * len(event_axes), y.dtype, 0.5, 1.5)
    kin = lambda q: 0.5 * jnp.sum(jnp.square(q), axis=event_axes)  # noqa: E731

    def leap(state, _):
        q, mom, fq, gq = state
        mom = mom + 0.5 * eps * _mix_grad(gq, beta)
        q = q + eps * mom
        fq, gq = evaluate(q, t_hi, t_lo)
        mom = mom + 0.5 * eps * _mix_grad(gq, beta)
        return (q, mom, fq, gq), None

    (prop, p_new, f_new, g_new), _ = jax.lax.scan(leap, (y, p, f, g), None, length=num_leapfrog)
    log_ratio = _mix(f_new, beta) - _mix(f, beta) - kin(p_new) + kin(p)
    log_ratio = jnp.where(jnp.isfinite(log_ratio), log_ratio, -jnp.inf)
    accept = jnp.log(jax.random.uniform(k_acc, log_ratio.shape)) < log_ratio
    y = jnp.where(accept.reshape(bshape), prop, y)
    f = jnp.where(accept[:, None], f_new, f)
    g = jnp.where(accept.reshape(gshape), g_new, g)
    return _Cache(y, f, g, p0), jnp.mean(accept.astype(jnp.float32))


def _anneal_body(energy, frame_arrays, num_steps, adapt, target_accept, adapt_gain, transition, persistence,
                 num_leapfrog=1):
    """The scan body of one bridge: reweight to the bridge, then ``num_steps`` MCMC moves."""
    evaluate = _pair_value_and_grad(energy, frame_arrays)
    event_axes = tuple(range(1, 1 + len(energy.data_shape)))

    def body(carry, xs):
        cache, hi_prev, lo_prev, beta_prev, log_eps = carry
        key_j, hi, lo, b, eps_j = xs
        pi_prev = _mix(cache.f, beta_prev)
        refresh = (hi != hi_prev) | (lo != lo_prev)
        f, g = jax.lax.cond(refresh, lambda c: evaluate(c.y, hi, lo), lambda c: (c.f, c.g), cache)
        cache = _Cache(cache.y, f, g, cache.p)
        increment = _mix(f, b) - pi_prev
        spread = jnp.std(f[:, 1] - f[:, 0])
        step = jnp.exp(log_eps) if adapt else eps_j

        def mcmc(c, k):
            if transition == "ghmc":
                return _ghmc_step(k, c, b, step, evaluate, hi, lo, event_axes, persistence)
            if transition == "hmc":
                return _hmc_step(k, c, b, step, evaluate, hi, lo, event_axes, num_leapfrog)
            return _mala_step(k, c, b, step, evaluate, hi, lo, event_axes)

        cache, acc = jax.lax.scan(mcmc, cache, jax.random.split(key_j, num_steps), unroll=True)
        acc = jnp.mean(acc)
        if adapt:
            log_eps = log_eps + adapt_gain * (acc - target_accept)
        return (cache, hi, lo, b, log_eps), (increment, acc, spread, step)

    return body


@jax.jit
def _anneal_start(energy, frame_arrays, key, y0, start):
    hi0, lo0, b0 = start
    f0, g0 = _pair_value_and_grad(energy, frame_arrays)(y0, hi0, lo0)
    return _Cache(y0, f0, g0, jax.random.normal(jax.random.fold_in(key, 1), y0.shape, y0.dtype))


@functools.partial(jax.jit, static_argnames=("num_steps", "adapt", "transition", "persistence", "unroll",
                                             "num_leapfrog"))
def _anneal_chunk(energy, frame_arrays, carry, xs, target_accept, adapt_gain, *, num_steps, adapt, transition,
                  persistence, unroll, num_leapfrog=1):
    """A run of bridges; the compilation is cached across calls (the energy is an argument)."""
    body = _anneal_body(energy, frame_arrays, num_steps, adapt, target_accept, adapt_gain, transition, persistence,
                        num_leapfrog)
    return jax.lax.scan(body, carry, xs, unroll=unroll)


#: Bridges per jitted call of the annealing loop for network energies.
ANNEAL_CHUNK = 8


def _runs_on_network(energy) -> bool:
    """Network energies run ``ANNEAL_CHUNK`` unrolled bridges per call: XLA:CPU runs convolutions
    inside while loops on a slow path (see ``ebm_ppl._jax_utils.inner_unroll``). Analytic energies
    run the whole path in one rolled scan (one compilation, no per-chunk dispatch)."""
    from ebm_ppl.energy.network import NetworkEnergy

    return isinstance(energy, NetworkEnergy)


def _anneal(energy, frame_arrays, key, y0, start, t_hi, t_lo, beta, eps, num_steps, adapt, target_accept,
            adapt_gain, transition="mala", persistence=0.9, num_leapfrog=1):
    """Run bridges j = 1..J from ``y0`` ~ the start density ``start = (t_hi, t_lo, beta)``; returns
    (final positions, per-bridge increments (J, N), acceptance (J,), sd of f_lo - f_hi (J,), step
    sizes used (J,))."""
    hi0, lo0, b0 = start
    cache = _anneal_start(energy, frame_arrays, key, y0, start)
    keys = jax.random.split(key, t_hi.shape[0])
    carry = (cache, hi0, lo0, jnp.asarray(b0, y0.dtype), jnp.log(eps[0]))
    xs = (keys, t_hi, t_lo, beta, eps)
    unroll = _runs_on_network(energy)
    chunk = ANNEAL_CHUNK if unroll else max(int(t_hi.shape[0]), 1)
    outputs = []
    for first in range(0, t_hi.shape[0], chunk):
        piece = jax.tree_util.tree_map(lambda a: a[first : first + chunk], xs)
        carry, out = _anneal_chunk(energy, frame_arrays, carry, piece, target_accept, adapt_gain, num_steps=num_steps,
                                   adapt=adapt, transition=transition, persistence=persistence,
                                   unroll=unroll, num_leapfrog=int(num_leapfrog))
        outputs.append(out)
    inc, acc, spread, steps = (jnp.concatenate(parts) for parts in zip(*outputs))
    return carry[0].y, inc, acc, spread, steps


TRANSITIONS = ("ghmc", "hmc", "mala")


def _run_path(energy, key, y0, path: AnnealingPath, num_steps, *, adapt=False, target_accept=0.65,
              adapt_gain=1.0, batch_size=None, start=None, mesh=None):
    """Run ``path`` in batches of particles; returns (y, increments (J, N) float32, acc, spread, steps).

    With a device ``mesh`` each batch whose size divides evenly is split over its devices."""
    from ebm_ppl import sharding

    n = y0.shape[0]
    batch_size = n if batch_size is None else min(int(batch_size), n)
    args = (
        jnp.asarray(path.t_hi, jnp.int32),
        jnp.asarray(path.t_lo, jnp.int32),
        jnp.asarray(path.beta, jnp.float32),
        jnp.asarray(path.step_sizes, jnp.float32),
    )
    if start is None:
        start = (int(path.t_hi[0]), int(path.t_lo[0]), 0.0)
    start = (jnp.asarray(start[0], jnp.int32), jnp.asarray(start[1], jnp.int32), jnp.asarray(start[2], jnp.float32))
    frame_arrays = _path_frame(energy, path).arrays()
    outs = []
    for i, first in enumerate(range(0, n, batch_size)):
        k = jax.random.fold_in(key, i)
        yb = y0[first : first + batch_size]
        if mesh is not None and yb.shape[0] % sharding.num_devices(mesh) == 0:
            yb = sharding.shard_batch(yb, mesh)
        outs.append(_anneal(energy, frame_arrays, k, yb, start, *args, num_steps=num_steps, adapt=adapt,
                            transition=path.transition, persistence=float(path.persistence),
                            num_leapfrog=int(path.num_leapfrog),
                            target_accept=target_accept, adapt_gain=adapt_gain))
    y = jnp.concatenate([o[0] for o in outs])
    inc = np.concatenate([np.asarray(o[1]) for o in outs], axis=1)
    acc = np.mean([np.asarray(o[2]) for o in outs], axis=0)
    spread = np.mean([np.asarray(o[3]) for o in outs], axis=0)
    steps = np.asarray(outs[0][4])
    return y, inc, acc, spread, steps


def _uniform_path(energy, level, bridges_per_level, step_size, transition="mala", persistence=0.9, num_leapfrog=1,
                  frame=None):
    T = energy.num_levels
    his, los, betas, ends = [], [], [], []
    for t in range(T - 1, level - 1, -1):
        b = np.arange(1, bridges_per_level + 1) / bridges_per_level
        his += [t + 1] * bridges_per_level
        los += [t] * bridges_per_level
        betas += list(b)
        ends += [False] * (bridges_per_level - 1) + [True]
    J = len(his)
    return AnnealingPath(np.array(his), np.array(los), np.array(betas), np.full(J, step_size), np.array(ends),
                         transition, persistence, int(num_leapfrog), frame)


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


def pilot_path(energy, key, *, level=0, num_bridges=None, num_steps=2, pilot_particles=64,
               pilot_bridges_per_level=32, target_accept=None, init_step_size=None, min_bridges_per_level=4,
               spacing="adaptive", batch_size=None, transition="mala", persistence=0.9, num_leapfrog=1, mesh=None,
               frame="identity", frame_particles=256, frame_bridges_per_level=16):
    """Tune an :class:`AnnealingPath` by a pilot run (its samples are then discarded).

    The pilot runs ``pilot_bridges_per_level`` uniform bridges per level with the step size adapted
    on the fly towards ``target_accept``, and records the spread sd_beta(f(., t) - f(., t+1)) along the
    path. The returned path has ``num_bridges`` bridges placed at equal increments of the
    thermodynamic length int sd d beta (``spacing="adaptive"``; ``"uniform"``: equal per level, equal
    beta steps) with the pilot's step sizes, interpolated, FIXED.

    ``frame``: the coordinates the path runs in (:mod:`ebm_ppl.annealing_frames`): ``"identity"``
    (y_t = c_t x), a :class:`LevelFrame`, or ``"fit"``: a first pilot in the identity frame, a
    Gaussian fitted to its ``frame_particles`` final particles (:func:`fit_frame`; that pilot runs
    ``frame_bridges_per_level``), then the tuning pilot in that frame (about 3x the pilot cost; on
    gmm:64:4 it cuts the AIS variance ~10x at the same budget, docs/logz.md section 4).
    Returns (path, pilot gradient count, meta).
    """
    energy = as_energy(energy)
    opts = dict(level=level, num_bridges=num_bridges, num_steps=num_steps, pilot_particles=pilot_particles,
                pilot_bridges_per_level=pilot_bridges_per_level, target_accept=target_accept,
                init_step_size=init_step_size, min_bridges_per_level=min_bridges_per_level, spacing=spacing,
                batch_size=batch_size, transition=transition, persistence=persistence, num_leapfrog=num_leapfrog,
                mesh=mesh)
    if isinstance(frame, str) and frame == "fit":
        k_fit, k_tune = jax.random.split(key)
        fit_opts = dict(opts, pilot_particles=frame_particles, pilot_bridges_per_level=frame_bridges_per_level)
        _, fit_grads, _, y_pilot = _pilot(energy, k_fit, identity_frame(energy), **fit_opts)
        samples = np.asarray(y_pilot, np.float64) * _model_scales(energy)[level]  # identity frame: y = c x
        fitted = fit_frame(energy, samples, level)
        path, grads, meta, _ = _pilot(energy, k_tune, fitted, **opts)
        meta.update({"frame": fitted.describe(), "frame_pilot_grad_evals": int(fit_grads)})
        return path, grads + fit_grads, meta
    path, grads, meta, _ = _pilot(energy, key, _resolve_frame(energy, frame), **opts)
    return path, grads, meta


def pilot_grad_count(energy, *, level=0, num_steps=2, pilot_particles=64, pilot_bridges_per_level=32,
                     frame="fit", frame_particles=256, frame_bridges_per_level=16, transition="mala",
                     num_leapfrog=1) -> int:
    """Gradient evaluations :func:`pilot_path` spends with these options (to split a budget)."""
    energy = as_energy(energy)
    T = energy.num_levels

    def one(bridges, particles):
        path = _uniform_path(energy, level, bridges, 1.0, transition, num_leapfrog=num_leapfrog)
        return _grad_count(path, T, num_steps, particles)[1]

    grads = one(pilot_bridges_per_level, pilot_particles)
    if isinstance(frame, str) and frame == "fit":
        grads += one(frame_bridges_per_level, frame_particles)
    return int(grads)


def _pilot(energy, key, frame: LevelFrame, *, level, num_bridges, num_steps, pilot_particles, pilot_bridges_per_level,
           target_accept, init_step_size, min_bridges_per_level, spacing, batch_size, transition, persistence,
           num_leapfrog, mesh):
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
    y_final, _, acc, spread, steps = _run_path(energy, k_run, y0, pilot, num_steps, adapt=True,
                                         target_accept=target_accept, batch_size=batch_size, mesh=mesh)
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
    path = AnnealingPath(np.array(his), np.array(los), np.array(betas), np.exp(log_steps), np.array(ends),
                         transition, persistence, int(num_leapfrog), frame)
    meta = {"pilot_acceptance": float(np.mean(acc)), "bridges_per_level": counts.tolist(),
            "thermodynamic_length": float(seg_len.sum()), "thermodynamic_length_per_level": seg_len.tolist()}
    return path, pilot_grads, meta, y_final


def _dim(energy):
    return int(math.prod(energy.data_shape))


def _default_bridges(num_segments):
    return max(900, 4 * num_segments)


# --------------------------------------------------------------------------------------------
# AIS, reverse AIS, BDMC
# --------------------------------------------------------------------------------------------
def ais(energy, key, *, level: int = 0, num_particles: int = 512, num_bridges: int | None = None,
        num_steps: int = 2, transition: str = "mala", persistence: float = 0.9, num_leapfrog: int = 1,
        path: AnnealingPath | None = None,
        pilot_particles: int = 64, pilot_bridges_per_level: int = 32, target_accept: float | None = None,
        spacing: str = "adaptive", batch_size: int | None = None, data_shape=None, return_samples: bool = False,
        mesh=None, frame="fit"):
    """Annealed importance sampling from N(0, I) (level T) down to ``level``.

    Args:
      energy: a noise-conditional energy, or a plain ``log_density(y)`` callable with ``data_shape``.
      key: PRNG key.
      level: stop at this level; log Z of every level passed is in ``result.levels``.
      num_particles: independent AIS chains.
      num_bridges: total bridges over all levels (default max(900, 4 per level)), placed by
        thermodynamic length measured in the pilot (``spacing="adaptive"``).
      num_steps: transition steps per bridge (each costs one gradient of each of the two levels).
      transition: ``"mala"`` (MH-adjusted Langevin, the algorithm of blackjax.mala; default),
        ``"hmc"`` (``num_leapfrog`` leapfrog steps, fresh momentum, step jittered per particle on
        [0.5, 1.5] eps, Metropolis-corrected) or ``"ghmc"`` (generalised HMC: one leapfrog step with
        persistent, partially refreshed momentum). On gmm:64:4 all three give the same stderr per
        gradient within noise (docs/logz.md, section 4).
      persistence: momentum persistence a of ghmc (p <- a p + sqrt(1 - a^2) xi).
      num_leapfrog: leapfrog steps per hmc step (each costs one gradient of each level of the bridge).
      path: a fixed :class:`AnnealingPath` (skips the pilot; its ``frame`` is used).
      frame: the per-level coordinates the particles move in (:mod:`ebm_ppl.annealing_frames`):
        ``"fit"`` (default: a Gaussian fitted to a first pilot's particles and carried to every
        level by the forward process), ``"identity"`` (y_t = c_t x), or a :class:`LevelFrame`, e.g.
        ``fit_frame(energy, held_out_data)``. Any fixed frame keeps the weights unbiased; a good one
        shortens the path (gmm:64:4 at 2e6 gradients: stderr 0.05 -> 0.015).
      pilot_particles, pilot_bridges_per_level, target_accept: the pilot run that tunes step sizes.
      batch_size: run particles in batches of this size (memory).
      return_samples: also return the final particles (N, *data_shape) and their log weights.
      mesh: a device mesh (:mod:`ebm_ppl.sharding`): particles split over its devices
        (``num_particles`` and ``batch_size`` multiples of its size); same estimate as one device.

    Returns a :class:`LogZEstimate` (``method="ais"``), ``lower`` = ``log_z`` (a stochastic lower
    bound), or ``(estimate, samples, log_weights)`` with ``return_samples``.
    """
    energy = as_energy(energy, data_shape)
    level = _check_level(energy, level)
    T = energy.num_levels
    if mesh is not None:
        from ebm_ppl.sharding import check_divisible

        check_divisible(num_particles, mesh, "number of AIS particles")
        if batch_size is not None:
            check_divisible(min(int(batch_size), num_particles), mesh, "AIS batch_size")
    k_pilot, k_init, k_run = jax.random.split(key, 3)
    pilot_grads, meta = 0, {}
    if path is None:
        path, pilot_grads, meta = pilot_path(energy, k_pilot, level=level, num_bridges=num_bridges,
                                             num_steps=num_steps, pilot_particles=pilot_particles,
                                             pilot_bridges_per_level=pilot_bridges_per_level,
                                             target_accept=target_accept, spacing=spacing,
                                             batch_size=batch_size, transition=transition, persistence=persistence,
                                             num_leapfrog=num_leapfrog, mesh=mesh, frame=frame)
    y0 = jax.random.normal(k_init, (num_particles,) + tuple(energy.data_shape))
    y, inc, acc, _, _ = _run_path(energy, k_run, y0, path, num_steps, batch_size=batch_size, mesh=mesh)
    log_w = np.cumsum(inc.astype(np.float64), axis=0)  # (J, N), float64
    top = _log_z_top(energy)
    frame_used = _path_frame(energy, path)
    log_c = frame_used.log_det  # log Z_t = log Z^x_t + log |det A_t|
    levels = {}
    for j in np.flatnonzero(path.level_end):
        lz, se, ess = _weight_stats(log_w[j])
        t = int(path.t_lo[j])
        levels[t] = {"log_z": top + lz + log_c[t], "stderr": se, "ess": ess}
    final = log_w[-1]
    lz, se, ess = _weight_stats(final)
    lz += log_c[level]
    grads = _grad_count(path, T, num_steps, num_particles)[1] + pilot_grads
    meta.update({"num_particles": num_particles, "num_bridges": int(len(path.beta)), "num_steps": num_steps,
                 "transition": path.transition, "persistence": float(path.persistence),
                 "num_leapfrog": int(path.num_leapfrog), "acceptance": float(np.mean(acc)),
                 "pilot_grad_evals": int(pilot_grads), "devices": 1 if mesh is None else int(mesh.devices.size)})
    est = LogZEstimate(log_z=top + lz, stderr=se, ess=ess, num_energy_evals=grads, num_grad_evals=grads,
                       curve=_curve(final, top + log_c[level]), method="ais", level=level, lower=top + lz, levels=levels,
                       meta=meta)
    if return_samples:
        return est, to_model_batch(frame_used, y, level), final
    return est


def reverse_ais(energy, key, samples, *, level: int = 0, path: AnnealingPath | None = None,
                num_bridges: int | None = None, num_steps: int = 2, transition: str = "mala",
                persistence: float = 0.9, num_leapfrog: int = 1, pilot_particles: int = 64,
                pilot_bridges_per_level: int = 32,
                target_accept: float | None = None, spacing: str = "adaptive", batch_size: int | None = None,
                data_shape=None, mesh=None, frame="fit"):
    """Reverse AIS from ``samples`` of level ``level`` (model space, shape (N, *data_shape)) up to N(0, I).

    With exact samples of exp f(., level) / Z (an oracle's ``sample``) the result is a stochastic
    *upper* bound on log Z_level: E[w] = Z_T / Z_level, so log Z_T - log mean w overestimates on
    average. Held-out data noised to the level are exact samples only if the model is the data law;
    then the figure is a heuristic upper bound. ``frame`` and the pilot options are those of :func:`ais`.
    """
    energy = as_energy(energy, data_shape)
    level = _check_level(energy, level)
    T = energy.num_levels
    pilot_grads, meta = 0, {}
    k_pilot, k_run = jax.random.split(key)
    if path is None:
        path, pilot_grads, meta = pilot_path(energy, k_pilot, level=level, num_bridges=num_bridges,
                                             num_steps=num_steps, pilot_particles=pilot_particles,
                                             pilot_bridges_per_level=pilot_bridges_per_level,
                                             target_accept=target_accept, spacing=spacing,
                                             batch_size=batch_size, transition=transition, persistence=persistence,
                                             num_leapfrog=num_leapfrog, mesh=mesh, frame=frame)
    frame_used = _path_frame(energy, path)
    samples = from_model_batch(frame_used, samples, level)  # to the path's coordinates at the level
    rev, rev_start = _reverse(path)
    _, inc, acc, _, _ = _run_path(energy, k_run, samples, rev, num_steps, batch_size=batch_size, start=rev_start,
                                  mesh=mesh)
    log_w = np.sum(inc.astype(np.float64), axis=0)  # estimates log Z_T / Z_level
    lz, se, ess = _weight_stats(log_w)
    top = _log_z_top(energy)
    n = samples.shape[0]
    grads = _grad_count(rev, T, num_steps, n)[1] + pilot_grads
    meta.update({"num_particles": int(n), "num_bridges": int(len(rev.beta)), "num_steps": num_steps,
                 "acceptance": float(np.mean(acc))})
    log_det = float(frame_used.log_det[level])
    lz -= log_det
    return LogZEstimate(log_z=top - lz, stderr=se, ess=ess, num_energy_evals=grads, num_grad_evals=grads,
                        curve=_curve(log_w, top + log_det, -1.0), method="reverse_ais", level=level, upper=top - lz,
                        meta=meta)


def _reverse(path: AnnealingPath):
    """Densities pi_0..pi_J of ``path`` run backwards: start pi_J, bridges pi_{J-1}, ..., pi_0.
    The transition at pi_j keeps its forward step size (pi_0 takes bridge 1's)."""
    hi = np.concatenate([[path.t_hi[0]], path.t_hi])
    lo = np.concatenate([[path.t_lo[0]], path.t_lo])
    b = np.concatenate([[0.0], path.beta])
    eps = np.concatenate([[path.step_sizes[0]], path.step_sizes])
    start = (int(hi[-1]), int(lo[-1]), float(b[-1]))
    r = slice(len(hi) - 2, None, -1)
    return AnnealingPath(hi[r], lo[r], b[r], eps[r], np.zeros(len(hi) - 1, bool), path.transition,
                         path.persistence, path.num_leapfrog, path.frame), start


def bdmc(energy, key, samples=None, *, level: int = 0, num_particles: int = 512, num_bridges: int | None = None,
         num_steps: int = 2, batch_size: int | None = None, mesh=None, frame="fit", **pilot):
    """Bidirectional Monte Carlo: forward AIS (stochastic lower bound) and reverse AIS from
    ``samples`` of the level (stochastic upper bound) on the same tuned path (and ``frame``, see
    :func:`ais`). Without ``samples`` an oracle's exact ``energy.sample(key, num_particles, level)`` is
    used. Returns a LogZEstimate with ``log_z`` the forward estimate, ``lower``/``upper`` the two sides
    and the gap in ``meta``."""
    energy = as_energy(energy)
    level = _check_level(energy, level)
    k_pilot, k_fwd, k_rev, k_smp = jax.random.split(key, 4)
    path, pilot_grads, meta = pilot_path(energy, k_pilot, level=level, num_bridges=num_bridges,
                                         num_steps=num_steps, batch_size=batch_size, mesh=mesh, frame=frame, **pilot)
    if samples is None:
        if not hasattr(energy, "sample"):
            raise ValueError("bdmc needs exact samples of the level: pass samples=... (e.g. held-out data "
                             "noised to the level), or use an oracle that has .sample")
        samples = energy.sample(k_smp, num_particles, level)
    fwd = ais(energy, k_fwd, level=level, num_particles=num_particles, num_steps=num_steps, path=path,
              batch_size=batch_size, mesh=mesh)
    rev = reverse_ais(energy, k_rev, samples, level=level, num_steps=num_steps, path=path, batch_size=batch_size,
                      mesh=mesh)
    grads = fwd.num_grad_evals + rev.num_grad_evals + pilot_grads
    meta.update({"gap": rev.upper - fwd.lower, "reverse_stderr": rev.stderr, "reverse_ess": rev.ess,
                 "num_particles": num_particles, "num_bridges": int(len(path.beta)), "num_steps": num_steps})
    return dataclasses.replace(fwd, method="bdmc", upper=rev.upper, lower=fwd.lower, num_grad_evals=grads,
                               num_energy_evals=grads, meta=meta)


# --------------------------------------------------------------------------------------------
# the paper's ladder (App. A.6)
# --------------------------------------------------------------------------------------------
def ladder(energy, key, *, level: int = 0, num_samples: int = 1024, samples: dict | None = None,
           inner: str = "langevin", num_inner_steps: int = 30, batch_size: int | None = None):
    """log Z_level = log Z_T + sum_t log mean_i exp(h_t(x_i) - h_{t+1}(x_i)) + D log c_level, x_i ~ level t+1.

    The paper's App. A.6 estimator, written on the diffusion's own scale x_t = y_t / c_t
    (h_t(x) = f(c_t x, t), whose normaliser is Z_t / c_t^D): in model space the levels' scales jump
    (c_{T-1} = 0.02 for drl:6) and the importance weights of N(0, I) samples for level T-1 collapse.

    Samples of level t+1 come from progressive sampling (Gao et al. 2021, Alg. 2) with the given inner
    sampler; level T is N(0, I), exactly. ``samples={t: (M, *data_shape) model-space samples}``
    replaces them (e.g. an oracle's exact samples). Each term is the log of an unbiased ratio
    estimate, so the sum is a stochastic lower bound (only if the samples are exact).
    """
    from ebm_ppl.sampling import progressive

    energy = as_energy(energy)
    level = _check_level(energy, level)
    T = energy.num_levels
    sched = energy.schedule if hasattr(energy, "schedule") else None
    k_top, k_prog = jax.random.split(key)
    grads = 0
    if samples is None:
        samples = {T: jax.random.normal(k_top, (num_samples,) + tuple(energy.data_shape))}
        if level + 1 < T:
            if sched is None:
                raise ValueError("ladder needs a schedule (levels) to sample progressively")
            bs = num_samples if batch_size is None else int(batch_size)
            trajs = []
            for i, first in enumerate(range(0, num_samples, bs)):
                n = min(bs, num_samples - first)
                _, traj = progressive.sample(energy, jax.random.fold_in(k_prog, i), n, inner=inner,
                                             num_inner_steps=num_inner_steps, return_levels=True)
                trajs.append(np.asarray(traj))
            traj = np.concatenate(trajs, axis=1)  # (T, M, ...) for t = T-1..0, diffusion scale
            for t in range(level + 1, T):
                samples[t] = jnp.asarray(traj[T - 1 - t] * sched.model_scales[t], jnp.float32)  # model space
            steps = num_inner_steps if inner == "langevin" else 1
            grads = num_samples * T * steps
    else:
        samples = dict(samples)
        samples.setdefault(T, jax.random.normal(k_top, (num_samples,) + tuple(energy.data_shape)))
    c = jnp.asarray(_model_scales(energy), jnp.float32)
    # the ratio on the diffusion's own scale x = y / c: h_t(x) = f(c_t x, t), Z^x_t = Z_t / c_t^D
    log_ratio = jax.jit(lambda e, x, t: e.log_density(c[t] * x, t) - e.log_density(c[t + 1] * x, t + 1))
    log_c = np.log(_model_scales(energy)) * _dim(energy)
    top = _log_z_top(energy)
    total, var, levels = top, 0.0, {}
    curve_terms, n_min, ess_min = [], None, math.inf
    for t in range(T - 1, level - 1, -1):
        x = jnp.asarray(samples[t + 1], jnp.float32) / c[t + 1]
        bs = 4096 if batch_size is None else int(batch_size)  # memory: oracles in high D build (n, D, D) terms
        lr = np.concatenate([np.asarray(log_ratio(energy, x[i : i + bs], jnp.asarray(t, jnp.int32)), np.float64)
                             for i in range(0, x.shape[0], bs)])
        lz, se, ess = _weight_stats(lr)
        total += lz
        var += se**2
        ess_min = min(ess_min, ess)
        levels[t] = {"log_z": total + log_c[t], "stderr": math.sqrt(var), "ess": ess}
        curve_terms.append(lr)
        n_min = lr.size if n_min is None else min(n_min, lr.size)
    ms = np.unique(np.geomspace(min(8, n_min), n_min, 12).astype(int))
    curve = [(int(m), float(top + log_c[level] + sum(_weight_stats(lr[:m])[0] for lr in curve_terms))) for m in ms]
    evals = int(grads + 2 * n_min * (T - level))
    total += log_c[level]
    return LogZEstimate(log_z=total, stderr=math.sqrt(var), ess=ess_min, num_energy_evals=evals,
                        num_grad_evals=int(grads), curve=curve, method="ladder", level=level, lower=total,
                        levels=levels, meta={"num_samples": int(n_min), "inner": inner,
                                             "num_inner_steps": num_inner_steps})


# --------------------------------------------------------------------------------------------
# BlackJAX adaptive tempered SMC (baseline)
# --------------------------------------------------------------------------------------------
def smc(energy, key, *, level: int = 0, num_particles: int = 1024, num_mcmc_steps: int = 4,
        target_ess: float = 0.5, step_size: float | None = None, max_steps: int = 1000, data_shape=None,
        mesh=None):
    """Adaptive tempered SMC (BlackJAX) from the prior N(0, I) to exp f(., level), MALA moves with a
    fixed step size ``step_size`` in BlackJAX's convention (proposal y + h grad + sqrt(2 h) xi; default:
    h = eps^2 / 2 from a short AIS pilot at the level). log Z = log Z_T + sum of
    the log-likelihood increments (the prior is normalised, the likelihood is f - log N(0, I))."""
    import blackjax
    from blackjax.smc import resampling

    energy = as_energy(energy, data_shape)
    level = _check_level(energy, level)
    T = energy.num_levels
    D = _dim(energy)
    axes = tuple(range(-len(energy.data_shape), 0))
    k_pilot, k_init, k_run = jax.random.split(key, 3)
    pilot_grads = 0
    if step_size is None:
        path, pilot_grads, _ = pilot_path(energy, k_pilot, level=level, num_bridges=8 * (T - level),
                                          pilot_particles=32, pilot_bridges_per_level=8)
        # the pilot's MALA step is the proposal noise std eps in the diffusion scale x; BlackJAX's MALA
        # proposes y + h grad + sqrt(2 h) xi in model space y = c x, so h = (c eps)^2 / 2
        step_size = 0.5 * float(_model_scales(energy)[level] * path.step_sizes[-1]) ** 2
    top = _log_z_top(energy)

    def logprior(y):
        return -0.5 * jnp.sum(jnp.square(y), axis=axes) - top

    def loglik(y):
        return energy.log_density(y, level) - logprior(y)

    algo = blackjax.adaptive_tempered_smc(
        logprior, loglik, blackjax.mala.build_kernel(), blackjax.mala.init,
        {"step_size": jnp.array([step_size])}, resampling.systematic, target_ess, num_mcmc_steps=num_mcmc_steps,
    )
    from ebm_ppl import sharding

    # particles split over the mesh (None: one device); resampling gathers across devices (compiler)
    y_init = sharding.maybe_shard_batch(jax.random.normal(k_init, (num_particles,) + tuple(energy.data_shape)),
                                        mesh, "number of SMC particles")
    state = algo.init(y_init)
    step = jax.jit(algo.step)
    log_z, n_steps = 0.0, 0
    while float(state.tempering_param) < 1.0 and n_steps < max_steps:
        k_run, sub = jax.random.split(k_run)
        state, info = step(sub, state)
        log_z += float(info.log_likelihood_increment)
        n_steps += 1
    learned = int(level < T)
    # per step: the likelihood at every particle (ESS solve + reweighting), MALA: one gradient per move
    grads = num_particles * n_steps * num_mcmc_steps * learned + pilot_grads
    evals = grads + num_particles * n_steps * learned
    w = np.asarray(state.weights, np.float64)
    ess = float(1.0 / np.sum(w**2))
    return LogZEstimate(log_z=float(log_z), stderr=math.nan, ess=ess, num_energy_evals=int(evals),
                        num_grad_evals=int(grads), curve=[(num_particles, float(log_z))], method="smc", level=level,
                        meta={"num_particles": num_particles, "num_tempering_steps": n_steps,
                              "num_mcmc_steps": num_mcmc_steps, "step_size": step_size,
                              "finished": float(state.tempering_param) >= 1.0})
