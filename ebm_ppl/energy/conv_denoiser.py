"""A fully convolutional, noise-conditional, normalisable energy for images of any size.

:class:`ConvDenoiserEnergyNet` is the convolutional sibling of the ``denoiser`` network
(:class:`ebm_ppl.energy.networks.DenoiserEnergyNet`): a bounded denoiser
``g(y, t) = bound * tanh(y + CNN(y, t))`` and the network output

    net(y, t) = -1/2 sum_{pixels p} (y_p - g_p(y, t))^2        (B,)

Divided by the level's energy scale (the NCSN ladder's marginal noise variance s_t^2) this is
``f(y, t) = -|y - g|^2 / (2 s_t^2) <= 0``, normalisable at every level whatever the weights
(docs/models.md). ``g_p`` depends on the pixels within the receptive field of ``p`` only
(``4 num_blocks + 5`` pixels wide, 3x3 convolutions, no pooling, no global term), so the
energy is a sum of local terms: one network scores 8x8 patches, 32x32 crops or whole photos, and
:meth:`ConvDenoiserEnergyNet.local_terms` returns the per-pixel terms (B, H, W).

Level conditioning: a learned embedding per integer level (``num_levels`` rows) gives a per-channel
scale and shift of every hidden layer (FiLM). Borders are zero-padded ("SAME").
"""

from __future__ import annotations

import flax.linen as nn
import jax.numpy as jnp

__all__ = ["ConvDenoiserEnergyNet", "receptive_field"]


def receptive_field(num_blocks: int) -> int:
    """Width in pixels of the window one pixel's term depends on: 2 num_blocks + 2 convolutions
    of 3x3, each widening it by 2."""
    return 4 * num_blocks + 5


class ConvDenoiserEnergyNet(nn.Module):
    """Fully convolutional bounded-denoiser energy for images (B, H, W, C), channel-last.

    Attributes:
      num_levels: rows of the level embedding (the schedule's number of levels).
      width: hidden channels.
      num_blocks: residual blocks (act, 3x3 conv, FiLM from the level, act, 3x3 conv).
      emb_dim: level-embedding size.
      bound: the denoiser's range (1.05: data lie in [-1, 1]).
    """

    num_levels: int = 28
    width: int = 32
    num_blocks: int = 3
    emb_dim: int = 32
    bound: float = 1.05

    @property
    def receptive_field(self) -> int:
        """Width in pixels of the window one pixel's term depends on (:func:`receptive_field`)."""
        return receptive_field(self.num_blocks)

    @nn.compact
    def denoise(self, y, t):
        """g(y, t), same shape as ``y`` (B, H, W, C)."""
        if y.ndim != 4:
            raise ValueError(f"ConvDenoiserEnergyNet expects images (B, H, W, C), got shape {y.shape}")
        emb = nn.Embed(self.num_levels, self.emb_dim, name="level_embedding")(jnp.asarray(t, jnp.int32))
        emb = nn.swish(nn.Dense(self.emb_dim, name="level_mlp")(emb))
        h = nn.Conv(self.width, (3, 3), padding="SAME", name="conv_in")(y)
        for i in range(self.num_blocks):
            film = nn.Dense(2 * self.width, name=f"film_{i}")(emb)[:, None, None, :]
            scale, shift = jnp.split(film, 2, axis=-1)
            r = nn.Conv(self.width, (3, 3), padding="SAME", name=f"conv_{i}a")(nn.swish(h))
            r = r * (1.0 + scale) + shift
            r = nn.Conv(self.width, (3, 3), padding="SAME", name=f"conv_{i}b")(nn.swish(r))
            h = h + r
        out = nn.Conv(y.shape[-1], (3, 3), padding="SAME", kernel_init=nn.initializers.zeros, name="conv_out")(
            nn.swish(h)
        )
        return self.bound * jnp.tanh(y + out)

    def local_terms(self, y, t):
        """Per-pixel terms -1/2 sum_channels (y - g)^2, shape (B, H, W); they sum to ``__call__``."""
        g = self.denoise(y, t)
        return -0.5 * jnp.sum(jnp.square(y - g), axis=-1)

    def __call__(self, y, t, update_stats: bool = False):
        del update_stats  # no spectral normalisation here
        return jnp.sum(self.local_terms(y, t), axis=(1, 2))
