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
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
from typing import Callable, NamedTuple

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import serialization

from ebm_ppl.checkpoint import atomic_write_bytes

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
    "TrainState",
    "init",
    "build_update",
    "train",
    "DriftingSampler",
    "ESTIMATORS",
]

ESTIMATORS = ("mean_shift", "curvature", "level")


# --------------------------------------------------------------------------------------------
# generators
# --------------------------------------------------------------------------------------------
class ResidualMLPGenerator(nn.Module):
    """x = g(z) = init_scale * W z + MLP(z): a first dense layer to ``width``, ``depth - 1``
    residual dense layers (``depth`` hidden layers in all), a zero-initialised linear read-out to
    prod(data_shape), plus a learned linear skip W from the latent (initialised with unit output
    variance), reshaped to ``data_shape``. At initialisation x ~ N(0, init_scale^2 W W^T): spread
    over the target's support rather than collapsed near one point (the local drift cannot move
    mass between far-apart modes, so the initial spread sets the mode balance)."""

    data_shape: tuple[int, ...]
    width: int = 256
    depth: int = 3
    init_scale: float = 1.0

    @nn.compact
    def __call__(self, z):
        d = int(math.prod(self.data_shape))
        h = nn.silu(nn.Dense(self.width)(z))
        for _ in range(self.depth - 1):
            h = h + nn.silu(nn.Dense(self.width)(h))
        out = nn.Dense(d, kernel_init=nn.initializers.zeros)(h)
        skip = nn.Dense(d, use_bias=False, kernel_init=nn.initializers.normal(1.0 / math.sqrt(z.shape[-1])))(z)
        return (out + self.init_scale * skip).reshape(z.shape[:-1] + tuple(self.data_shape))


class ConvGenerator(nn.Module):
    """A small convolutional generator for images of shape (H, W) or (H, W, C): a dense layer to
    a (ceil(H/4), ceil(W/4), width) grid, then ``depth`` blocks of (x2 nearest upsampling until
    the size is reached, 3x3 conv, SiLU), a final resize to (H, W) and a zero-initialised 3x3
    conv to C channels, plus the same linear latent skip as the MLP (``init_scale``)."""

    data_shape: tuple[int, ...]
    width: int = 64
    depth: int = 2
    init_scale: float = 1.0

    @nn.compact
    def __call__(self, z):
        h_out, w_out = self.data_shape[0], self.data_shape[1]
        c_out = self.data_shape[2] if len(self.data_shape) == 3 else 1
        batch = z.shape[:-1]
        z = z.reshape((-1, z.shape[-1]))
        h0, w0 = max(1, -(-h_out // 4)), max(1, -(-w_out // 4))
        h = nn.silu(nn.Dense(h0 * w0 * self.width)(z)).reshape((-1, h0, w0, self.width))
        for _ in range(self.depth):
            if h.shape[1] < h_out or h.shape[2] < w_out:
                h = jax.image.resize(h, (h.shape[0], min(2 * h.shape[1], h_out), min(2 * h.shape[2], w_out), h.shape[3]), "nearest")
            h = h + nn.silu(nn.Conv(self.width, (3, 3))(h))
        if h.shape[1:3] != (h_out, w_out):
            h = jax.image.resize(h, (h.shape[0], h_out, w_out, h.shape[3]), "nearest")
        out = nn.Conv(c_out, (3, 3), kernel_init=nn.initializers.zeros)(h).reshape(batch + tuple(self.data_shape))
        d = int(math.prod(self.data_shape))
        skip = nn.Dense(d, use_bias=False, kernel_init=nn.initializers.normal(1.0 / math.sqrt(z.shape[-1])))(z)
        return out + self.init_scale * skip.reshape(batch + tuple(self.data_shape))


def make_generator(config: "DriftingConfig", data_shape) -> nn.Module:
    data_shape = tuple(int(s) for s in data_shape)
    if config.arch == "mlp":
        return ResidualMLPGenerator(data_shape, config.width, config.depth, config.init_scale)
    if config.arch == "conv":
        if len(data_shape) not in (2, 3):
            raise ValueError(f"the conv generator needs image data of shape (H, W) or (H, W, C), got {data_shape}")
        return ConvGenerator(data_shape, config.width, config.depth, config.init_scale)
    raise ValueError(f"unknown generator architecture {config.arch!r}; choose 'mlp' or 'conv'")


# --------------------------------------------------------------------------------------------
# configuration
# --------------------------------------------------------------------------------------------
@dataclasses.dataclass(frozen=True)
class DriftingConfig:
    """Hyper-parameters; the defaults are the paper's (sec. 4.1).

    latent_dim, width, depth, arch: the generator (``"mlp"`` residual MLP or ``"conv"``);
    init_scale: std of the generator's initial output (see :class:`ResidualMLPGenerator`).
    sigma: Gaussian smoothing bandwidth (target and sampler side). eta: drift step.
    sigma_start, anneal_fraction: optional bandwidth annealing (our addition, off by default):
    sigma decays geometrically from ``sigma_start`` to ``sigma`` over the first
    ``anneal_fraction`` of the updates, then stays at ``sigma``. A wide early kernel lets the drift
    compare mass *between* modes; the paper's fixed small sigma only sees each mode's local shape.
    eta_scales_with_sigma: while annealing, use eta_t = eta * (sigma_t / sigma)^2, so the drift
    eta (s_p - s_q) = eta / sigma^2 (m_p - m_q) (mean-shift form) keeps the same step in units of
    the mean-shift displacement at every bandwidth (with a fixed eta a wide early kernel would
    barely move the samples).
    estimator: ``"mean_shift"`` (L = ``num_perturbations``), ``"curvature"`` (``cg_iters``) or
    ``"level"`` (noise-conditional energies only, target level 0 in data space): the smoothed target
    score at bandwidth rho_t is the energy's own score at level t (see
    :func:`level_score_function`); sigma then follows the levels from ``level_start`` (default the
    top learned level) down to ``level_end`` over the first ``anneal_fraction`` of the updates
    (``sigma``, ``sigma_start`` ignored; ``eta`` is the step at ``level_end``).
    lr_schedule: ``"constant"`` (the paper) or ``"cosine"`` (decay to 5% of ``learning_rate`` over
    ``num_steps``; our addition, to shrink the optimiser noise in the final samples).
    sampler_include_self: the sampler-side mean shift includes each batch point itself (default,
    the paper's batch KDE) or leaves it out (see :func:`batch_mean_shift_score`).
    batch_size, learning_rate, num_steps: Adam on the stop-gradient loss.
    """

    latent_dim: int = 32
    width: int = 256
    depth: int = 3
    arch: str = "mlp"
    init_scale: float = 1.0
    sigma: float = 0.22
    eta: float = 0.22
    sigma_start: float | None = None
    anneal_fraction: float = 0.8
    eta_scales_with_sigma: bool = False
    estimator: str = "mean_shift"
    num_perturbations: int = 256
    cg_iters: int = 20
    batch_size: int = 1024
    learning_rate: float = 1e-3
    num_steps: int = 10_000
    level_start: int | None = None
    level_end: int = 1
    sampler_include_self: bool = True
    lr_schedule: str = "constant"

    def __post_init__(self):
        if self.lr_schedule not in ("constant", "cosine"):
            raise ValueError(f"lr_schedule must be 'constant' or 'cosine', got {self.lr_schedule!r}")
        if self.estimator not in ESTIMATORS:
            raise ValueError(f"unknown estimator {self.estimator!r}; choose one of {ESTIMATORS}")
        for name in ("latent_dim", "width", "depth", "num_perturbations", "cg_iters", "batch_size"):
            if int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.sigma_start is not None and not float(self.sigma_start) > 0:
            raise ValueError(f"sigma_start must be positive, got {self.sigma_start}")
        if not 0 < float(self.anneal_fraction) <= 1:
            raise ValueError(f"anneal_fraction must lie in (0, 1], got {self.anneal_fraction}")
        if self.num_steps < 0:
            raise ValueError(f"num_steps must be >= 0, got {self.num_steps}")
        for name in ("sigma", "eta", "learning_rate", "init_scale"):
            if not float(getattr(self, name)) > 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    def eta_at(self, sigma):
        """The drift step at bandwidth ``sigma`` (traceable)."""
        if not self.eta_scales_with_sigma:
            return jnp.asarray(self.eta, jnp.float32)
        return jnp.asarray(self.eta, jnp.float32) * (sigma / self.sigma) ** 2

    def sigma_at(self, step):
        """The bandwidth at update ``step`` (traceable)."""
        if self.sigma_start is None:
            return jnp.asarray(self.sigma, jnp.float32)
        frac = jnp.clip(step / max(1.0, self.anneal_fraction * self.num_steps), 0.0, 1.0)
        return jnp.asarray(self.sigma_start, jnp.float32) * (self.sigma / self.sigma_start) ** frac


# --------------------------------------------------------------------------------------------
# energies
# --------------------------------------------------------------------------------------------
def _level_scale(energy, level: int, space: str) -> float:
    if space == "model":
        return 1.0
    if space != "data":
        raise ValueError(f"space must be 'data' or 'model', got {space!r}")
    if level == 0:
        return float(energy.data_scale)
    if level == energy.num_levels:
        return 1.0
    return float(energy.schedule.model_scales[level])


def energy_function(energy, level: int = 0, space: str = "data") -> Callable:
    """E(x) = -log p(x) of a bound energy at ``level``, for flat x of shape (..., D).

    Returns ``fn(energy, x_flat) -> (...)`` (the energy is an argument so it can be traced under
    jit). Normalised (exact -log p) when ``energy.log_z(level)`` is known, else up to a constant.
    See the module docstring for ``space``.
    """
    level = int(level)
    if not 0 <= level <= energy.num_levels:
        raise ValueError(f"level {level} out of range 0..{energy.num_levels}")
    c = _level_scale(energy, level, space)
    if not c > 0:
        raise ValueError(f"level {level} has no data-space map (scale {c}); use space='model'")
    log_z = energy.log_z(level)
    const = (0.0 if log_z is None else float(log_z)) - energy.dim * math.log(c)
    data_shape = tuple(energy.data_shape)

    def fn(e, x_flat):
        y = (c * x_flat).reshape(x_flat.shape[:-1] + data_shape)
        return -e.log_density(y, level) + const

    return fn


def level_bandwidths(energy) -> np.ndarray:
    """rho_t (t = 0..T-1): level t of a noise-conditional energy, divided by its signal scale, is the
    level-0 data variable x_0 smoothed by N(0, rho_t^2 I) (``schedule.marginal``: y_t = a_t x_0 +
    s_t e, rho_t = s_t / a_t). rho_0 = 0."""
    T = energy.num_levels
    return np.array([energy.schedule.marginal(t)[1] / energy.schedule.marginal(t)[0] for t in range(T)])


def level_score_function(energy) -> Callable:
    """``fn(energy, x_flat, t) -> (N, D)``: grad log (p_0 * phi_rho_t)(x) = a_t score(a_t x, t), the
    exact smoothed score of the level-0 data density at bandwidth rho_t when the energy is
    consistent across levels (oracles), the network's own estimate otherwise. ``t`` may be traced."""
    T = energy.num_levels
    scales = jnp.asarray([energy.schedule.marginal(t)[0] for t in range(T)], jnp.float32)
    data_shape = tuple(energy.data_shape)

    def fn(e, x_flat, t):
        a = scales[t]
        y = (a * x_flat).reshape(x_flat.shape[:-1] + data_shape)
        return (a * e.score(y, t)).reshape(x_flat.shape)

    return fn


def level_at(config: "DriftingConfig", step, level_start: int):
    """The level used at update ``step`` by the ``"level"`` estimator (traceable int32): equal
    shares of the first ``anneal_fraction`` of the updates per level, level_start -> level_end."""
    n_levels = level_start - config.level_end + 1
    frac = jnp.clip(step / max(1.0, config.anneal_fraction * config.num_steps), 0.0, 1.0)
    idx = jnp.minimum(jnp.floor(frac * n_levels).astype(jnp.int32), n_levels - 1)
    return jnp.asarray(level_start, jnp.int32) - idx


# --------------------------------------------------------------------------------------------
# drift estimators (flat x of shape (N, D))
# --------------------------------------------------------------------------------------------
def mean_shift_target_score(E: Callable, key, x, sigma: float, num_perturbations: int):
    """Local importance-sampling mean shift: (sum_l softmax(-E(u_l)) u_l - x) / sigma^2, with
    u_l = x + sigma e_l. ``E`` maps (..., D) -> (...). Returns (N, D)."""
    eps = jax.random.normal(key, (x.shape[0], num_perturbations, x.shape[-1]), x.dtype)
    u = x[:, None, :] + sigma * eps
    logw = -E(u)
    logw = jnp.where(jnp.isfinite(logw), logw, -jnp.inf)
    w = jax.nn.softmax(logw, axis=-1)
    return jnp.einsum("nl,nld->nd", w, sigma * eps) / sigma**2


def _truncated_cg(matvec, b, iters: int):
    """Solve A v = b by CG from v = 0 for ``iters`` steps, stopping at the first direction with
    p^T A p <= 0 (A not positive definite there) or a zero residual; returns the current iterate,
    or b itself when CG stopped before its first step."""

    def body(carry, _):
        v, r, p, rs, stop = carry
        Ap = matvec(p)
        pAp = jnp.vdot(p, Ap)
        stop = stop | (pAp <= 1e-12 * jnp.vdot(p, p)) | (rs <= 1e-30)
        alpha = jnp.where(stop, 0.0, rs / jnp.where(stop, 1.0, pAp))
        v = v + alpha * p
        r_new = r - alpha * Ap
        rs_new = jnp.vdot(r_new, r_new)
        p_new = r_new + (rs_new / jnp.where(stop, 1.0, rs)) * p
        keep = lambda new, old: jnp.where(stop, old, new)  # noqa: E731
        return (v, keep(r_new, r), keep(p_new, p), keep(rs_new, rs), stop), None

    carry = (jnp.zeros_like(b), b, b, jnp.vdot(b, b), jnp.asarray(False))
    (v, _, _, _, _), _ = jax.lax.scan(body, carry, None, length=iters)
    return jnp.where(jnp.vdot(v, v) == 0, b, v)


def curvature_target_score(E: Callable, x, sigma: float, cg_iters: int = 20):
    """Second-order target score -(I + sigma^2 H)^{-1} grad E at each row of x (N, D), by
    truncated CG on Hessian-vector products. Exact for a Gaussian target."""
    e_single = lambda v: E(v[None])[0]  # noqa: E731
    grad_e = jax.grad(e_single)

    def one(xi):
        g = grad_e(xi)
        hvp = lambda p: jax.jvp(grad_e, (xi,), (p,))[1]  # noqa: E731
        matvec = lambda p: p + sigma**2 * hvp(p)  # noqa: E731
        return -_truncated_cg(matvec, g, cg_iters)

    return jax.vmap(one)(x)


def batch_mean_shift_score(x, sigma: float, include_self: bool = True):
    """Sampler-side smoothed score by Gaussian mean shift over the batch x (N, D), self included
    (the exact score of the batch's Gaussian KDE) or left out (``include_self=False``: the
    leave-one-out KDE; both are consistent as N grows, but in high dimension with a bandwidth
    below the nearest-neighbour distance the self term takes all the weight and the sampler side
    vanishes, while the leave-one-out form keeps a repulsion from the nearest batch neighbours)."""
    sq = jnp.sum(x**2, -1)
    d2 = jnp.maximum(sq[:, None] + sq[None, :] - 2 * x @ x.T, 0.0)
    logits = -d2 / (2 * sigma**2)
    if not include_self:
        logits = jnp.where(jnp.eye(x.shape[0], dtype=bool), -jnp.inf, logits)
    w = jax.nn.softmax(logits, axis=-1)
    return (w @ x - x) / sigma**2


def drift(E: Callable, key, x, config: DriftingConfig, sigma=None):
    """V(x) = eta (s_p(x) - s_q(x)) for the batch x (N, D); returns (V, s_p, s_q).
    ``sigma`` overrides ``config.sigma`` (bandwidth annealing)."""
    sigma = config.sigma if sigma is None else sigma
    if config.estimator == "level":
        raise ValueError("drift() has no 'level' estimator; use build_update(..., energy)")
    if config.estimator == "mean_shift":
        s_p = mean_shift_target_score(E, key, x, sigma, config.num_perturbations)
    else:
        s_p = curvature_target_score(E, x, sigma, config.cg_iters)
    s_q = batch_mean_shift_score(x, sigma, config.sampler_include_self)
    eta = config.eta if sigma is config.sigma else config.eta_at(sigma)
    return eta * (s_p - s_q), s_p, s_q


def drift_loss(params, module, E, key, config: DriftingConfig, sigma=None):
    """Stop-gradient regression loss mean_i |x_i - sg(x_i + V_i)|^2 and diagnostics."""
    k_z, k_drift = jax.random.split(key)
    z = jax.random.normal(k_z, (config.batch_size, config.latent_dim))
    x = module.apply(params, z)
    x_flat = x.reshape(config.batch_size, -1)
    V, s_p, s_q = drift(E, k_drift, jax.lax.stop_gradient(x_flat), config, sigma)
    target = jax.lax.stop_gradient(x_flat + V)
    loss = jnp.mean(jnp.sum((x_flat - target) ** 2, -1))
    return loss, {"drift_norm": jnp.mean(jnp.sqrt(jnp.sum(V**2, -1))), "mean_energy": jnp.mean(E(x_flat))}


# --------------------------------------------------------------------------------------------
# training
# --------------------------------------------------------------------------------------------
class TrainState(NamedTuple):
    params: dict
    opt_state: optax.OptState
    step: jax.Array


def _optimizer(config: DriftingConfig):
    if config.lr_schedule == "cosine":
        return optax.adam(optax.cosine_decay_schedule(config.learning_rate, max(1, config.num_steps), alpha=0.05))
    return optax.adam(config.learning_rate)


def init(key, config: DriftingConfig, data_shape) -> TrainState:
    """Initial generator parameters and Adam state."""
    module = make_generator(config, data_shape)
    params = module.init(key, jnp.zeros((1, config.latent_dim)))
    return TrainState(params, _optimizer(config).init(params), jnp.asarray(0, jnp.int32))


def _level_drift_loss(params, module, E, score_fn, energy, key, config: DriftingConfig, t, rho, eta):
    """The stop-gradient loss with the ``"level"`` target score at level t (bandwidth rho)."""
    z = jax.random.normal(key, (config.batch_size, config.latent_dim))
    x_flat = module.apply(params, z).reshape(config.batch_size, -1)
    xs = jax.lax.stop_gradient(x_flat)
    V = eta * (score_fn(energy, xs, t) - batch_mean_shift_score(xs, rho, config.sampler_include_self))
    target = jax.lax.stop_gradient(xs + V)
    loss = jnp.mean(jnp.sum((x_flat - target) ** 2, -1))
    return loss, {"drift_norm": jnp.mean(jnp.sqrt(jnp.sum(V**2, -1))), "mean_energy": jnp.mean(E(xs))}


def build_update(module, E_fn: Callable, config: DriftingConfig, energy=None) -> Callable:
    """``update(energy, state, key) -> (state, metrics)``: one drifting update (pure). The
    ``"level"`` estimator needs ``energy`` here (its schedule fixes the bandwidths)."""
    opt = _optimizer(config)
    if config.estimator == "level":
        if energy is None or energy.num_levels < 2:
            raise ValueError("the 'level' estimator needs a noise-conditional energy with >= 2 levels")
        T = energy.num_levels
        start = T - 1 if config.level_start is None else int(config.level_start)
        if not 1 <= config.level_end <= start <= T - 1:
            raise ValueError(f"need 1 <= level_end ({config.level_end}) <= level_start ({start}) <= {T - 1}")
        rhos = jnp.asarray(level_bandwidths(energy), jnp.float32)
        score_fn = level_score_function(energy)
        rho_end = float(level_bandwidths(energy)[config.level_end])

        def level_update(e, state: TrainState, key):
            E = lambda x: E_fn(e, x)  # noqa: E731
            t = level_at(config, state.step, start)
            rho = rhos[t]
            eta = config.eta * (rho / rho_end) ** 2 if config.eta_scales_with_sigma else jnp.asarray(config.eta, jnp.float32)
            (loss, aux), grads = jax.value_and_grad(_level_drift_loss, has_aux=True)(
                state.params, module, E, score_fn, e, key, config, t, rho, eta)
            updates, opt_state = opt.update(grads, state.opt_state, state.params)
            params = optax.apply_updates(state.params, updates)
            return TrainState(params, opt_state, state.step + 1), {"loss": loss, **aux}

        return level_update

    def update(energy, state: TrainState, key):
        E = lambda x: E_fn(energy, x)  # noqa: E731
        sigma = config.sigma_at(state.step)
        (loss, aux), grads = jax.value_and_grad(drift_loss, has_aux=True)(state.params, module, E, key, config, sigma)
        updates, opt_state = opt.update(grads, state.opt_state, state.params)
        params = optax.apply_updates(state.params, updates)
        return TrainState(params, opt_state, state.step + 1), {"loss": loss, **aux}

    return update


def train(
    energy,
    key,
    config: DriftingConfig = DriftingConfig(),
    *,
    level: int = 0,
    space: str = "data",
    chunk: int = 100,
    progress: bool = True,
    state: TrainState | None = None,
):
    """Train a one-step sampler for ``energy`` at ``level``; returns (DriftingSampler, history).

    ``history`` holds per-chunk means of the loss (= eta^2 * mean |s_p - s_q|^2), the drift norm,
    and the mean energy of the batch, plus ``seconds``. Pass ``state`` to resume.
    """
    import time

    from tqdm.auto import tqdm

    E_fn = energy_function(energy, level, space)
    module = make_generator(config, energy.data_shape)
    k_init, k_train = jax.random.split(key)
    if state is None:
        state = init(k_init, config, energy.data_shape)
    if config.estimator == "level" and (int(level) != 0 or space != "data"):
        raise ValueError("the 'level' estimator samples level 0 in data space only")
    update = build_update(module, E_fn, config, energy)

    @jax.jit
    def run_chunk(energy, state, keys):
        def body(s, k):
            return update(energy, s, k)

        state, metrics = jax.lax.scan(body, state, keys)
        return state, jax.tree_util.tree_map(jnp.mean, metrics)

    history = {"step": [], "loss": [], "drift_norm": [], "mean_energy": []}
    remaining = int(config.num_steps)
    t0 = time.perf_counter()
    bar = tqdm(total=remaining, desc="drifting", disable=not progress, leave=False)
    keys_all = jax.random.split(k_train, max(remaining, 1))
    done = 0
    while done < remaining:
        n = min(chunk, remaining - done)
        state, m = run_chunk(energy, state, keys_all[done : done + n])
        done += n
        m = jax.device_get(m)
        if not np.isfinite(m["loss"]):
            bar.close()
            raise FloatingPointError(f"drifting loss became {m['loss']} at step {done}; lower sigma/eta or the learning rate")
        history["step"].append(int(state.step))
        for k in ("loss", "drift_norm", "mean_energy"):
            history[k].append(float(m[k]))
        bar.set_postfix(loss=f"{m['loss']:.4g}", E=f"{m['mean_energy']:.3f}")
        bar.update(n)
    bar.close()
    history["seconds"] = time.perf_counter() - t0
    sampler = DriftingSampler(config, tuple(energy.data_shape), state.params, {"level": int(level), "space": space})
    return sampler, history, state


# --------------------------------------------------------------------------------------------
# the trained sampler
# --------------------------------------------------------------------------------------------
class DriftingSampler:
    """A trained one-step sampler: ``sample(key, n)`` returns (n, *data_shape) in the space it was
    trained in (data space at the level, by default). ``meta`` records level, space, target."""

    FORMAT = "ebm_ppl.drifting/1"

    def __init__(self, config: DriftingConfig, data_shape, params, meta: dict | None = None):
        self.config = config
        self.data_shape = tuple(int(s) for s in data_shape)
        self.params = params
        self.meta = dict(meta or {})
        self.module = make_generator(config, self.data_shape)
        self._apply = jax.jit(self.module.apply)

    def __repr__(self):
        return f"DriftingSampler(data_shape={self.data_shape}, arch={self.config.arch!r}, meta={self.meta})"

    def sample(self, key, n: int, batch: int = 8192) -> jax.Array:
        """n one-step samples (one forward pass each)."""
        z = jax.random.normal(key, (int(n), self.config.latent_dim))
        outs = [self._apply(self.params, z[i : i + batch]) for i in range(0, int(n), batch)]
        return jnp.concatenate(outs, 0) if outs else jnp.zeros((0,) + self.data_shape)

    def save(self, path: str) -> None:
        """Write ``path/sampler.json`` and ``path/params.msgpack`` atomically (temp file + rename)."""
        os.makedirs(path, exist_ok=True)
        atomic_write_bytes(os.path.join(path, "params.msgpack"), serialization.to_bytes(jax.device_get(self.params)))
        card = {"format": self.FORMAT, "config": self.config.to_dict(), "data_shape": list(self.data_shape), "meta": self.meta}
        atomic_write_bytes(os.path.join(path, "sampler.json"), json.dumps(card, indent=2).encode())

    @classmethod
    def load(cls, path: str) -> "DriftingSampler":
        """Read a sampler written by :meth:`save`; ValueError naming the problem on bad input."""
        card_path = os.path.join(path, "sampler.json")
        if not os.path.isfile(card_path):
            raise ValueError(f"{path!r} is not a drifting sampler folder (no sampler.json)")
        with open(card_path) as f:
            card = json.load(f)
        if card.get("format") != cls.FORMAT:
            raise ValueError(f"{card_path}: unknown format {card.get('format')!r} (expected {cls.FORMAT!r})")
        config = DriftingConfig(**card["config"])
        data_shape = tuple(card["data_shape"])
        template = make_generator(config, data_shape).init(jax.random.PRNGKey(0), jnp.zeros((1, config.latent_dim)))
        with open(os.path.join(path, "params.msgpack"), "rb") as f:
            params = serialization.from_bytes(template, f.read())
        return cls(config, data_shape, params, card.get("meta"))


# --------------------------------------------------------------------------------------------
# evaluation (the paper's protocol)
# --------------------------------------------------------------------------------------------
def _local_mmd(x, y, bandwidth: float, block: int = 2500) -> float:
    """Unbiased squared MMD with k(a, b) = exp(-|a - b|^2 / (2 h^2)), blocked to bound memory."""
    x = jnp.asarray(x, jnp.float32)
    y = jnp.asarray(y, jnp.float32)

    @jax.jit
    def ksum(a, b):
        sa, sb = jnp.sum(a**2, -1), jnp.sum(b**2, -1)
        d2 = jnp.maximum(sa[:, None] + sb[None, :] - 2 * a @ b.T, 0.0)
        return jnp.sum(jnp.exp(-d2 / (2 * bandwidth**2)))

    def total(a, b):
        return sum(float(ksum(a[i : i + block], b[j : j + block])) for i in range(0, len(a), block) for j in range(0, len(b), block))

    n, m = len(x), len(y)
    kxx = (total(x, x) - n) / (n * (n - 1))
    kyy = (total(y, y) - m) / (m * (m - 1))
    kxy = total(x, y) / (n * m)
    return kxx + kyy - 2 * kxy


def mmd(x, y, bandwidth: float) -> float:
    """Squared RBF MMD (unbiased); uses ``ebm_ppl.metrics.mmd`` when that module provides one."""
    try:
        from ebm_ppl import metrics  # another session's module

        if hasattr(metrics, "mmd"):
            return float(metrics.mmd(x, y, bandwidth=bandwidth))
    except ImportError:
        pass
    return _local_mmd(x, y, bandwidth)


def median_bandwidth(x, max_points: int = 2000) -> float:
    """Median pairwise distance of (the first ``max_points`` of) x: the RBF bandwidth we report."""
    x = np.asarray(x, np.float64)[:max_points]
    d = np.sqrt(np.maximum(((x[:, None, :] - x[None, :, :]) ** 2).sum(-1), 0.0))
    return float(np.median(d[np.triu_indices(len(x), 1)]))


def reference_samples(energy, key, n: int, level: int = 0, space: str = "data"):
    """Exact samples of the level in the sampler's space, or None when the energy has none
    (trained networks: the caller may use a long-run or progressive sampler instead)."""
    if space == "data" and level == 0 and hasattr(energy, "sample_data"):
        return energy.sample_data(key, n)
    if hasattr(energy, "sample"):
        return energy.sample(key, n, level) / _level_scale(energy, level, space)
    return None


def evaluate(
    energy,
    samples,
    reference=None,
    *,
    level: int = 0,
    space: str = "data",
    bandwidth: float | None = None,
) -> dict:
    """The paper's figures for ``samples`` (n, *data_shape) against ``reference`` samples:
    ``mean_error`` (l2 of the mean difference), ``cov_error`` (Frobenius of the covariance
    difference), ``mmd`` (unbiased squared RBF MMD, bandwidth ``mmd_bandwidth``: the median
    pairwise distance of the reference unless given), ``mean_energy`` / ``reference_energy``
    (mean of E = -log p, normalised when log Z is known), and for multi-modal targets
    ``modes_covered`` / ``modes_in_reference`` / ``mode_tv`` (total variation between the mode
    histograms) and the per-mode counts of the generated samples (``mode_counts``, for up to 64 modes)."""
    from ebm_ppl.energy.plain import mode_labels

    E_fn = energy_function(energy, level, space)
    n = samples.shape[0]
    xs = np.asarray(samples, np.float64).reshape(n, -1)
    finite = np.all(np.isfinite(xs), -1)
    out = {"num_samples": int(n), "num_nonfinite": int((~finite).sum())}
    xs = xs[finite]
    e_gen = np.asarray(E_fn(energy, jnp.asarray(xs, jnp.float32)))
    out["mean_energy"] = float(np.mean(e_gen))
    out["energy_normalised"] = energy.log_z(level) is not None
    if reference is not None:
        rs = np.asarray(reference, np.float64).reshape(reference.shape[0], -1)
        out["mean_error"] = float(np.linalg.norm(xs.mean(0) - rs.mean(0)))
        out["cov_error"] = float(np.linalg.norm(np.cov(xs.T).reshape(rs.shape[1], -1) - np.cov(rs.T).reshape(rs.shape[1], -1)))
        h = median_bandwidth(rs) if bandwidth is None else float(bandwidth)
        out["mmd_bandwidth"] = h
        out["mmd"] = float(mmd(xs, rs, h))
        out["reference_energy"] = float(np.mean(np.asarray(E_fn(energy, jnp.asarray(rs, jnp.float32)))))
        if level == 0 and space == "data":
            lab_g = mode_labels(energy, jnp.asarray(xs, jnp.float32).reshape((-1,) + tuple(energy.data_shape)))
            lab_r = mode_labels(energy, jnp.asarray(rs, jnp.float32).reshape((-1,) + tuple(energy.data_shape)))
            if lab_g is not None:
                lab_g, lab_r = np.asarray(lab_g), np.asarray(lab_r)
                out["modes_covered"] = int(len(np.unique(lab_g)))
                out["modes_in_reference"] = int(len(np.unique(lab_r)))
                out["modes_total"] = int(getattr(energy, "num_modes", getattr(energy, "num_components", 0)))
                keys = np.union1d(lab_g, lab_r)
                pg = np.array([(lab_g == k).mean() for k in keys])
                pr = np.array([(lab_r == k).mean() for k in keys])
                out["mode_tv"] = float(0.5 * np.abs(pg - pr).sum())
                if out["modes_total"] <= 64:
                    out["mode_counts"] = [int((lab_g == k).sum()) for k in range(out["modes_total"])]
                if hasattr(energy, "well_signs"):
                    wg = np.asarray(energy.well_signs(jnp.asarray(xs, jnp.float32))).mean(0)
                    wr = np.asarray(energy.well_signs(jnp.asarray(rs, jnp.float32))).mean(0)
                    out["well_occupancy_error"] = float(np.abs(wg - wr).mean())
    else:
        out.update(mean_error=None, cov_error=None, mmd=None, reference_energy=None)
    return out


def plot_samples(energy, samples, reference, path: str, *, level: int = 0, space: str = "data", title: str = "") -> None:
    """PNG of generated and reference samples over contours of E (first two coordinates; for
    D > 2 the contours are of E with the other coordinates at the reference mean)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    E_fn = energy_function(energy, level, space)
    xs = np.asarray(samples, np.float64).reshape(samples.shape[0], -1)
    pool = xs if reference is None else np.concatenate([xs, np.asarray(reference).reshape(len(reference), -1)])
    pool = pool[np.all(np.isfinite(pool), -1)]
    lo, hi = np.percentile(pool[:, :2], 0.5, 0), np.percentile(pool[:, :2], 99.5, 0)
    pad = 0.15 * (hi - lo)
    lo, hi = lo - pad, hi + pad
    g0, g1 = np.linspace(lo[0], hi[0], 200), np.linspace(lo[1], hi[1], 200)
    G0, G1 = np.meshgrid(g0, g1)
    base = (pool.mean(0) if reference is None else np.asarray(reference).reshape(len(reference), -1).mean(0))
    grid = np.tile(base, (G0.size, 1))
    grid[:, 0], grid[:, 1] = G0.ravel(), G1.ravel()
    Z = np.asarray(E_fn(energy, jnp.asarray(grid, jnp.float32))).reshape(G0.shape)
    panels = [("one-step drifting sampler", xs)] + ([] if reference is None else [("reference", np.asarray(reference).reshape(len(reference), -1))])
    fig, axes = plt.subplots(1, len(panels), figsize=(5 * len(panels), 4.6), squeeze=False)
    levels = np.percentile(Z[np.isfinite(Z)], np.linspace(1, 60, 12))
    for ax, (name, pts) in zip(axes[0], panels):
        ax.contour(G0, G1, Z, levels=np.unique(levels), cmap="viridis", linewidths=0.8)
        ax.scatter(pts[:, 0], pts[:, 1], s=1.5, alpha=0.35, color="crimson")
        ax.set_xlim(lo[0], hi[0])
        ax.set_ylim(lo[1], hi[1])
        ax.set_title(name)
        ax.set_xlabel("x1")
        ax.set_ylabel("x2")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
