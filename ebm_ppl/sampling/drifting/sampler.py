"""Drifting sampler: :class:`DriftingSampler`, the trained generator, with its save / load."""

from __future__ import annotations

import json
import os

import jax
import jax.numpy as jnp
from flax import serialization

from ebm_ppl.checkpoint import atomic_write_bytes
from ebm_ppl.sampling.drifting.model import DriftingConfig, make_generator


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
        card = {
            "format": self.FORMAT,
            "config": self.config.to_dict(),
            "data_shape": list(self.data_shape),
            "meta": self.meta,
        }
        atomic_write_bytes(os.path.join(path, "sampler.json"), json.dumps(card, indent=2).encode())

    @classmethod
    def load(cls, path: str) -> DriftingSampler:
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
