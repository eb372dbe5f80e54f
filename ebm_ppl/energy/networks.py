"""Flax (linen) energy networks: ``module.apply(variables, y, t) -> (B,)``.

Both networks take ``y`` of shape (B, *data_shape) in model space and an integer level ``t`` of
shape (B,) and return the raw network output ``net(y, t)``; the bound energy
(:class:`ebm_ppl.energy.NetworkEnergy`) turns it into the log density
``net(y, t) / schedule.energy_scales[t] - |y|^2 / (2 base_variance)``.

* :class:`MLPEnergyNet` for vectors and 2-D data: sinusoidal time embedding, residual MLP,
  output = <act(h), Dense(temb)> (a dot product with a time projection, as the image network).
* :class:`WideResNetEnergyNet` for images (H, W, C), after Gao et al. (2021), Table 5, and the
  official code: 3x3 conv; ``num_res_blocks`` ResBlocks per resolution with 2x2 average-pool
  downsampling between resolutions; ResBlock = leakyReLU(0.2), conv3x3, + Dense(leakyReLU(temb)),
  leakyReLU, conv3x3 (zero-initialised) times a learned per-channel gain, + input (1x1 conv on
  the skip when the channel count changes); spectral normalisation of every conv / dense layer
  (power-iteration vectors live in the ``"batch_stats"`` collection); ReLU, global sum, dot with
  a time projection.

Spectral normalisation: ``apply(variables, y, t)`` uses the stored power-iteration vectors
(``update_stats=False``, the default); training calls
``apply(variables, y, t, update_stats=True, mutable=["batch_stats"])`` once per step.

``build(config)`` makes a module from a JSON-serialisable dict (stored in checkpoints),
``init_variables(module, key, data_shape)`` its variables.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Sequence
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp

from ebm_ppl._jax_utils import rng_key_first
from ebm_ppl.energy.conv_denoiser import ConvDenoiserEnergyNet
from ebm_ppl.energy.folding import TRANSPOSED, _conv_given_transpose, fold_spectral_norm
from ebm_ppl.schedules import from_name

__all__ = [
    "MLPEnergyNet",
    "WideResNetEnergyNet",
    "ResBlock",
    "timestep_embedding",
    "build",
    "init_variables",
    "config_of",
    "fold_spectral_norm",
    "NETWORKS",
]


def timestep_embedding(t: jax.Array, dim: int, max_period: float = 10000.0) -> jax.Array:
    """DDPM's sinusoidal embedding of integer levels ``t`` (B,) -> (B, dim)."""
    t = jnp.asarray(t, jnp.float32)
    half = dim // 2
    freqs = jnp.exp(-math.log(max_period) * jnp.arange(half, dtype=jnp.float32) / max(half - 1, 1))
    args = t[:, None] * freqs[None, :]
    emb = jnp.concatenate([jnp.sin(args), jnp.cos(args)], axis=-1)
    if dim % 2:
        emb = jnp.pad(emb, ((0, 0), (0, 1)))
    return emb


def _activation(name: str):
    if name == "leaky_relu":
        return lambda x: nn.leaky_relu(x, 0.2)
    if name == "swish":
        return nn.swish
    if name == "relu":
        return nn.relu
    raise ValueError(f"unknown activation {name!r}; choose leaky_relu, swish or relu")


class _Layer(nn.Module):
    """A Dense (``kernel_size=None``) or Conv layer, spectrally normalised when ``spectral_norm``.

    The inner layer is created here, so its parameters live under this module's name."""

    features: int
    kernel_size: tuple[int, ...] | None = None
    spectral_norm: bool = False
    zero_init: bool = False

    @nn.compact
    def __call__(self, x, update_stats: bool = False):
        kw: dict[str, Any] = {"kernel_init": nn.initializers.zeros} if self.zero_init else {}
        if self.kernel_size is not None and not self.spectral_norm and self.has_variable(TRANSPOSED, "conv"):
            p = self.variables["params"]["conv"]
            kt: Any = self.get_variable(TRANSPOSED, "conv")["kernel_t"]
            return _conv_given_transpose(x, p["kernel"], kt) + p["bias"]
        layer: nn.Module
        if self.kernel_size is None:
            layer = nn.Dense(self.features, name="dense", **kw)
        else:
            layer = nn.Conv(self.features, self.kernel_size, padding="SAME", name="conv", **kw)
        if self.spectral_norm:
            return nn.SpectralNorm(layer, name="sn")(x, update_stats=update_stats)
        return layer(x)


def _dense(features, sn, zero_init=False, name=None):
    return _Layer(features, None, sn, zero_init, name=name)


def _conv(features, size, sn, zero_init=False, name=None):
    return _Layer(features, (size, size), sn, zero_init, name=name)


class _TimeEmbedding(nn.Module):
    """Sinusoidal embedding then Dense, act, Dense (Table 5 (d))."""

    dim: int
    spectral_norm: bool = False
    activation: str = "leaky_relu"

    @nn.compact
    def __call__(self, t, update_stats: bool = False):
        act = _activation(self.activation)
        emb = timestep_embedding(t, self.dim)
        emb = _dense(self.dim * 4, self.spectral_norm)(emb, update_stats)
        emb = act(emb)
        return _dense(self.dim * 4, self.spectral_norm)(emb, update_stats)


def _residual_trunk(x, temb, width, depth, act, sn, update_stats):
    """Dense to ``width``, then ``depth`` residual blocks (act, Dense, + Dense(act(temb)), act,
    zero-initialised Dense). Called inside a compact ``__call__``: its layers belong to the caller."""
    h = _dense(width, sn)(x, update_stats)
    for _ in range(depth):
        r = _dense(width, sn)(act(h), update_stats)
        r = r + _dense(width, sn)(act(temb), update_stats)
        r = _dense(width, sn, zero_init=True)(act(r), update_stats)
        h = h + r
    return h


class MLPEnergyNet(nn.Module):
    """Residual MLP energy for flat or 2-D data.

    Attributes:
      width: hidden width.
      depth: number of residual blocks (each: act, Dense, + Dense(act(temb)), act, Dense).
      temb_dim: sinusoidal embedding size (the time MLP has 4x this width).
      activation: ``"swish"`` (default), ``"leaky_relu"`` or ``"relu"``.
      spectral_norm: spectrally normalise every Dense layer.
      zero_init_output: zero-initialise the time projection of the output, so the network is 0
        at initialisation (the conditional starts as its recovery term alone).
    """

    width: int = 128
    depth: int = 3
    temb_dim: int = 32
    activation: str = "swish"
    spectral_norm: bool = False
    zero_init_output: bool = False

    @nn.compact
    def __call__(self, y, t, update_stats: bool = False):
        act = _activation(self.activation)
        sn = self.spectral_norm
        h = y.reshape((y.shape[0], -1))
        temb = _TimeEmbedding(self.temb_dim, sn, self.activation)(t, update_stats)
        h = _residual_trunk(h, temb, self.width, self.depth, act, sn, update_stats)
        proj = _dense(self.width, sn, zero_init=self.zero_init_output)(act(temb), update_stats)
        return jnp.sum(act(h) * proj, axis=-1)


class ResBlock(nn.Module):
    """The paper's ResBlock (Table 5 (e)); identity at initialisation (zero second conv)."""

    channels: int
    spectral_norm: bool = True
    gain_init: float = 1.0

    @nn.compact
    def __call__(self, x, temb, update_stats: bool = False):
        act = lambda v: nn.leaky_relu(v, 0.2)  # noqa: E731
        sn = self.spectral_norm
        h = _conv(self.channels, 3, sn, name="conv1")(act(x), update_stats)
        h = h + _dense(self.channels, sn, name="temb_proj")(act(temb), update_stats)[:, None, None, :]
        h = _conv(self.channels, 3, sn, zero_init=True, name="conv2")(act(h), update_stats)
        gain = self.param("gain", nn.initializers.constant(self.gain_init), (self.channels,))
        h = h * gain
        if x.shape[-1] != self.channels:
            x = _conv(self.channels, 1, sn, name="skip")(x, update_stats)
        return x + h


class WideResNetEnergyNet(nn.Module):
    """Wide-ResNet energy for images (H, W, C), channel-last.

    Attributes:
      width: channels of the first resolution (the paper: 128).
      channel_mults: multiplier per resolution (the paper's 32x32: (1, 2, 2, 2) = 128/256/256/256);
        a 2x2 average pool sits between consecutive resolutions.
      num_res_blocks: N, ResBlocks per resolution (CIFAR-10: 8).
      spectral_norm: spectrally normalise all conv and dense layers (the paper does).
    """

    width: int = 128
    channel_mults: Sequence[int] = (1, 2, 2, 2)
    num_res_blocks: int = 2
    spectral_norm: bool = True

    @nn.compact
    def __call__(self, y, t, update_stats: bool = False):
        if y.ndim != 4:
            raise ValueError(f"WideResNetEnergyNet expects images (B, H, W, C), got shape {y.shape}")
        sn = self.spectral_norm
        temb = _TimeEmbedding(self.width, sn, "leaky_relu")(t, update_stats)
        h = _conv(self.width, 3, sn)(y, update_stats)
        for level, mult in enumerate(self.channel_mults):
            for _ in range(self.num_res_blocks):
                h = ResBlock(self.width * mult, sn)(h, temb, update_stats)
            if level < len(self.channel_mults) - 1:
                if h.shape[1] < 2 or h.shape[2] < 2:
                    raise ValueError(f"image too small for {len(self.channel_mults)} resolutions: {y.shape[1:]}")
                h = nn.avg_pool(h, (2, 2), (2, 2), padding="SAME" if h.shape[1] % 2 else "VALID")
        h = jnp.sum(nn.relu(h), axis=(1, 2))
        proj = _dense(h.shape[-1], sn)(nn.leaky_relu(temb, 0.2), update_stats)
        return jnp.sum(h * proj, axis=-1)


class DenoiserEnergyNet(nn.Module):
    """A normalisable energy by construction: net(y, t) = -|y - g(y, t)|^2 / 2 with a bounded
    denoiser g = bound * tanh(residual MLP). Divided by the level's energy scale (the marginal
    noise variance for the NCSN ladder) this is f(y, t) = -|y - g|^2 / (2 sigma_t^2) <= 0, which
    falls off like a Gaussian of width sigma_t far from [-bound, bound]^D: every level is
    normalisable whatever the weights (docs/models.md, docs/training.md), unlike a free-form net / s_t^2.

    Attributes:
      width, depth, temb_dim, activation: the residual MLP (as :class:`MLPEnergyNet`).
      bound: the denoiser's range (1.05: data lie in [-1, 1]).
      variance_schedule: None (the output is divided by the schedule's energy scale, which for
        the NCSN ladder is the marginal noise variance), or a schedule name (e.g. ``"drl:1000"``)
        whose energy scale is not that variance (``drl``: the official c_t^2 b^2 sigma_{t+1}^2):
        the output is then multiplied by energy_scales[t] / v_t, v_t = c_t^2 (1 - abar_t^2 +
        abar_t^2 sigma_0^2) the DSM noise variance of level t, so that again
        f(y, t) = -|y - g|^2 / (2 v_t).
    """

    width: int = 256
    depth: int = 3
    temb_dim: int = 32
    activation: str = "swish"
    bound: float = 1.05
    variance_schedule: str | None = None

    @nn.compact
    def __call__(self, y, t, update_stats: bool = False):
        act = _activation(self.activation)
        flat = y.reshape((y.shape[0], -1))
        temb = _TimeEmbedding(self.temb_dim, False, self.activation)(t, update_stats)
        h = _residual_trunk(flat, temb, self.width, self.depth, act, False, update_stats)
        g = self.bound * jnp.tanh(_dense(flat.shape[-1], False)(act(h), update_stats))
        out = -0.5 * jnp.sum(jnp.square(flat - g), axis=-1)
        if self.variance_schedule is not None:
            out = out * jnp.asarray(_variance_ratio(self.variance_schedule), out.dtype)[t]
        return out


def _variance_ratio(schedule_name: str):
    """energy_scales[t] / v_t of :class:`DenoiserEnergyNet` (NumPy, (T,))."""
    s = from_name(schedule_name)
    T = s.num_levels
    c, abar = s.model_scales[:T], s.signal_scales[:T]
    var = c**2 * (s.noise_scales[:T] ** 2 + (abar * s.sigmas[0]) ** 2)
    return s.energy_scales / var


NETWORKS = {
    "mlp": MLPEnergyNet,
    "wrn": WideResNetEnergyNet,
    "denoiser": DenoiserEnergyNet,
    "conv_denoiser": ConvDenoiserEnergyNet,
}


def build(config: dict) -> nn.Module:
    """A module from a JSON config ``{"name": "mlp"|"wrn"|"denoiser", **attributes}``."""
    config = dict(config)
    name = config.pop("name", None)
    if name not in NETWORKS:
        raise ValueError(f"unknown network {name!r}; choose one of {sorted(NETWORKS)}")
    cls = NETWORKS[name]
    fields = {f.name for f in dataclasses.fields(cls) if f.name not in ("parent", "name")}
    unknown = set(config) - fields
    if unknown:
        raise ValueError(f"network {name!r} has no option(s) {sorted(unknown)}; known: {sorted(fields)}")
    if "channel_mults" in config:
        config["channel_mults"] = tuple(int(m) for m in config["channel_mults"])
    return cls(**config)


def config_of(module: nn.Module) -> dict:
    """The JSON config that :func:`build` turns back into ``module``."""
    for name, cls in NETWORKS.items():
        if type(module) is cls:
            out: dict[str, Any] = {"name": name}
            for field in dataclasses.fields(cls):
                f = field.name
                if f in ("parent", "name"):
                    continue
                v = getattr(module, f)
                out[f] = list(v) if isinstance(v, tuple) else v
            return out
    raise ValueError(f"not an ebm_ppl energy network: {type(module).__name__}")


@rng_key_first(1)
def init_variables(rng_key: jax.Array, module: nn.Module, data_shape: Sequence[int]) -> dict[str, Any]:
    """Variables of ``module`` for examples of shape ``data_shape`` (``params`` and, with spectral
    normalisation, ``batch_stats``)."""
    y = jnp.zeros((1,) + tuple(int(s) for s in data_shape), jnp.float32)
    t = jnp.zeros((1,), jnp.int32)
    variables = module.init({"params": rng_key}, y, t, update_stats=True)
    return dict(variables)
