"""Bridge transition kernels and the annealing loop: MALA, generalised HMC and HMC over a cached
pair of levels (a bridge costs one gradient of each of its two levels per step), scanned over bridges."""

from __future__ import annotations

import functools
import math
from typing import NamedTuple

import blackjax.mcmc.proposal as bj_proposal
import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl import sharding
from ebm_ppl._jax_utils import robbins_monro_increment
from ebm_ppl.annealing_frames import to_model
from ebm_ppl.energy.protocol import NetworkBacked
from ebm_ppl.logz.path import AnnealingPath, _path_frame

__all__ = ["ANNEAL_CHUNK", "TRANSITIONS"]


class _Cache(NamedTuple):
    y: jax.Array  # (N, *data_shape)
    f: jax.Array  # (N, 2): f(y, t_hi), f(y, t_lo)
    g: jax.Array  # (N, 2, *data_shape)
    p: jax.Array  # (N, *data_shape) momentum (ghmc only)


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


def _metropolis(key, log_ratio, proposed: _Cache, current: _Cache):
    """The accept step of the bridge kernels: BlackJAX's (``blackjax.mcmc.proposal.
    static_binomial_sampling``, the one every BlackJAX kernel in this library uses), vmapped over
    particles. Each particle takes its proposed cache with probability min(1, exp(log_ratio)), a
    non-finite ratio rejects; else it keeps ``current``. Returns (cache, mean acceptance)."""
    log_ratio = jnp.where(jnp.isfinite(log_ratio), log_ratio, -jnp.inf)
    keys = jax.random.split(key, log_ratio.shape[0])
    chosen, (accepted, _, _) = jax.vmap(bj_proposal.static_binomial_sampling)(keys, log_ratio, current, proposed)
    return _Cache(*chosen), jnp.mean(accepted.astype(jnp.float32))


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
    return _metropolis(k_acc, log_ratio, _Cache(prop, f_new, g_new, p), cache)


def _ghmc_step(key, cache: _Cache, beta, eps, evaluate, t_hi, t_lo, event_axes, persistence):
    """One generalised-HMC step (Horowitz 1991): partial momentum refresh
    p <- a p + sqrt(1 - a^2) xi, one leapfrog step, Metropolis test, momentum flip on rejection.
    It leaves pi(y) N(p; 0, I) invariant, so AIS weights (which depend on y only) stay unbiased;
    the persistent momentum makes the chain move ballistically across bridges."""
    k_ref, k_acc = jax.random.split(key)
    y, f, g, p = cache
    p = persistence * p + math.sqrt(1.0 - persistence**2) * jax.random.normal(k_ref, p.shape, p.dtype)
    p_half = p + 0.5 * eps * _mix_grad(g, beta)
    prop = y + eps * p_half
    f_new, g_new = evaluate(prop, t_hi, t_lo)
    p_new = p_half + 0.5 * eps * _mix_grad(g_new, beta)
    kin = lambda q: 0.5 * jnp.sum(jnp.square(q), axis=event_axes)  # noqa: E731
    log_ratio = _mix(f_new, beta) - _mix(f, beta) - kin(p_new) + kin(p)
    # on rejection the momentum flips (what keeps the persistent chain reversible)
    return _metropolis(k_acc, log_ratio, _Cache(prop, f_new, g_new, p_new), _Cache(y, f, g, -p))


def _hmc_step(key, cache: _Cache, beta, eps, evaluate, t_hi, t_lo, event_axes, num_leapfrog):
    """One HMC step (Duane et al. 1987; the algorithm of blackjax.hmc): fresh momentum p ~ N(0, I),
    ``num_leapfrog`` leapfrog steps of size eps, Metropolis test. It leaves pi(y) invariant; with a
    fixed (eps, L) it is a fixed kernel, so the AIS weights stay unbiased. Its moves are ballistic
    (distance ~ L eps), not diffusive (~ sqrt(L) eps) as L MALA steps, which is what reduces the lag
    of the particles behind the moving bridge in D >> 1."""
    k_mom, k_acc, k_jit = jax.random.split(key, 3)
    y, f, g, p0 = cache
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
    return _metropolis(k_acc, log_ratio, _Cache(prop, f_new, g_new, p0), cache)


def _anneal_body(
    energy, frame_arrays, num_steps, adapt, target_accept, adapt_gain, transition, persistence, num_leapfrog=1
):
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
            log_eps = log_eps + robbins_monro_increment(acc, target_accept, adapt_gain)
        return (cache, hi, lo, b, log_eps), (increment, acc, spread, step)

    return body


@jax.jit
def _anneal_start(energy, frame_arrays, key, y0, start):
    hi0, lo0, b0 = start
    f0, g0 = _pair_value_and_grad(energy, frame_arrays)(y0, hi0, lo0)
    return _Cache(y0, f0, g0, jax.random.normal(jax.random.fold_in(key, 1), y0.shape, y0.dtype))


@functools.partial(
    jax.jit, static_argnames=("num_steps", "adapt", "transition", "persistence", "unroll", "num_leapfrog")
)
def _anneal_chunk(
    energy,
    frame_arrays,
    carry,
    xs,
    target_accept,
    adapt_gain,
    *,
    num_steps,
    adapt,
    transition,
    persistence,
    unroll,
    num_leapfrog=1,
):
    """A run of bridges; the compilation is cached across calls (the energy is an argument)."""
    body = _anneal_body(
        energy, frame_arrays, num_steps, adapt, target_accept, adapt_gain, transition, persistence, num_leapfrog
    )
    return jax.lax.scan(body, carry, xs, unroll=unroll)


#: Bridges per jitted call of the annealing loop for network energies.
ANNEAL_CHUNK = 8


def _runs_on_network(energy) -> bool:
    """Network energies run ``ANNEAL_CHUNK`` unrolled bridges per call: XLA:CPU runs convolutions
    inside while loops on a slow path (see ``ebm_ppl._jax_utils.inner_unroll``). Analytic energies
    run the whole path in one rolled scan (one compilation, no per-chunk dispatch)."""
    return isinstance(energy, NetworkBacked)


def _anneal(
    energy,
    frame_arrays,
    key,
    y0,
    start,
    t_hi,
    t_lo,
    beta,
    eps,
    num_steps,
    adapt,
    target_accept,
    adapt_gain,
    transition="mala",
    persistence=0.9,
    num_leapfrog=1,
    progress=None,
):
    """Run bridges j = 1..J from ``y0`` ~ the start density ``start = (t_hi, t_lo, beta)``; returns
    (final positions, per-bridge increments (J, N), acceptance (J,), sd of f_lo - f_hi (J,), step
    sizes used (J,)). ``progress(bridges_done)`` is called after each jitted chunk (with it, analytic
    energies run in about 25 chunks instead of one; the result is the same)."""
    hi0, lo0, b0 = start
    cache = _anneal_start(energy, frame_arrays, key, y0, start)
    num_bridges = int(t_hi.shape[0])
    keys = jax.random.split(key, num_bridges)
    carry = (cache, hi0, lo0, jnp.asarray(b0, y0.dtype), jnp.log(eps[0]))
    unroll = _runs_on_network(energy)
    chunk = ANNEAL_CHUNK if unroll else _bucket(num_bridges, PATH_BUCKET)
    if progress is not None and not unroll:
        chunk = _bucket(-(-num_bridges // 25), ANNEAL_CHUNK)
    # every chunk has ``chunk`` bridges: the path is padded to a multiple of it with copies of its last
    # bridge. A copy adds exactly 0 to the log weights (same pair of levels, same beta: no reweighting)
    # and its moves leave the final bridge's density invariant, so the estimate is that of the path.
    padded = _bucket(num_bridges, chunk)
    pad_keys = jax.random.split(jax.random.fold_in(key, 0x5EED), max(padded - num_bridges, 1))
    keys = jnp.concatenate([keys, pad_keys[: padded - num_bridges]])
    xs = (keys,) + tuple(_pad_to(a, padded) for a in (t_hi, t_lo, beta, eps))
    outputs = []
    for first in range(0, padded, chunk):
        piece = jax.tree_util.tree_map(lambda a, first=first: a[first : first + chunk], xs)
        carry, out = _anneal_chunk(
            energy,
            frame_arrays,
            carry,
            piece,
            target_accept,
            adapt_gain,
            num_steps=num_steps,
            adapt=adapt,
            transition=transition,
            persistence=persistence,
            unroll=unroll,
            num_leapfrog=int(num_leapfrog),
        )
        outputs.append(out)
        if progress is not None:
            jax.block_until_ready(out)
            progress(min(first + chunk, num_bridges))
    inc, acc, spread, steps = (jnp.concatenate(parts)[:num_bridges] for parts in zip(*outputs))
    return carry[0].y, inc, acc, spread, steps


#: analytic energies run the whole path in one scan of a multiple of this many bridges (so runs
#: whose tuned paths differ in length, as adaptive spacing makes them, share one compilation; the
#: copies of the last bridge that pad it cost at most PATH_BUCKET - 1 bridges of moves)
PATH_BUCKET = 64


def _bucket(n: int, size: int) -> int:
    """The smallest multiple of ``size`` that is at least ``max(n, 1)``."""
    return max(-(-int(n) // int(size)), 1) * int(size)


def _pad_to(a, length: int):
    """``a`` (J, ...) padded to ``length`` rows by repeating its last row."""
    extra = length - a.shape[0]
    if extra == 0:
        return a
    return jnp.concatenate([a, jnp.repeat(a[-1:], extra, axis=0)])


TRANSITIONS = ("ghmc", "hmc", "mala")


def _run_path(
    energy,
    key,
    y0,
    path: AnnealingPath,
    num_steps,
    *,
    adapt=False,
    target_accept=0.65,
    adapt_gain=1.0,
    batch_size=None,
    start=None,
    mesh=None,
    progress=None,
):
    """Run ``path`` in batches of particles; returns (y, increments (J, N) float32, acc, spread, steps).

    ``progress(done, total)``: called as bridges x batches are done (None: silent).
    With a device ``mesh`` each batch whose size divides evenly is split over its devices."""
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
    num_batches, J = -(-n // batch_size), len(path.beta)
    for i, first in enumerate(range(0, n, batch_size)):
        k = jax.random.fold_in(key, i)
        yb = y0[first : first + batch_size]
        if mesh is not None and yb.shape[0] % sharding.num_devices(mesh) == 0:
            yb = sharding.shard_batch(yb, mesh)
        outs.append(
            _anneal(
                energy,
                frame_arrays,
                k,
                yb,
                start,
                *args,
                num_steps=num_steps,
                adapt=adapt,
                transition=path.transition,
                persistence=float(path.persistence),
                num_leapfrog=int(path.num_leapfrog),
                target_accept=target_accept,
                adapt_gain=adapt_gain,
                progress=None if progress is None else (lambda done, i=i: progress(i * J + done, num_batches * J)),
            )
        )
    y = jnp.concatenate([o[0] for o in outs])
    inc = np.concatenate([np.asarray(o[1]) for o in outs], axis=1)
    acc = np.mean([np.asarray(o[2]) for o in outs], axis=0)
    spread = np.mean([np.asarray(o[3]) for o in outs], axis=0)
    steps = np.asarray(outs[0][4])
    return y, inc, acc, spread, steps
