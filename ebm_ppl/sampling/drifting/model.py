"""Drifting sampler: generator networks and the hyper-parameters (:class:`DriftingConfig`)."""

from __future__ import annotations

import dataclasses
import math

import flax.linen as nn
import jax
import jax.numpy as jnp

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
                h = jax.image.resize(
                    h, (h.shape[0], min(2 * h.shape[1], h_out), min(2 * h.shape[2], w_out), h.shape[3]), "nearest"
                )
            h = h + nn.silu(nn.Conv(self.width, (3, 3))(h))
        if h.shape[1:3] != (h_out, w_out):
            h = jax.image.resize(h, (h.shape[0], h_out, w_out, h.shape[3]), "nearest")
        out = nn.Conv(c_out, (3, 3), kernel_init=nn.initializers.zeros)(h).reshape(batch + tuple(self.data_shape))
        d = int(math.prod(self.data_shape))
        skip = nn.Dense(d, use_bias=False, kernel_init=nn.initializers.normal(1.0 / math.sqrt(z.shape[-1])))(z)
        return out + self.init_scale * skip.reshape(batch + tuple(self.data_shape))


def make_generator(config: DriftingConfig, data_shape) -> nn.Module:
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
