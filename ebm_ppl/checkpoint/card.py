"""What a model folder says beyond its weights: the evaluation level its card chose on validation
(``figures.json``), its own sampler settings (``config.json``'s ``sampling``) and its cached log Z
estimates, read together into a :class:`ModelCard` by :func:`read_card`."""

from __future__ import annotations

import json
import os
from typing import NamedTuple

from ebm_ppl.checkpoint.files import CheckpointError, load_energy, read_config
from ebm_ppl.checkpoint.logz_cache import lookup_logz, read_logz_entries

__all__ = ["load", "ModelCard", "read_card", "evaluation_level", "sampler_settings"]


class ModelCard(NamedTuple):
    """A checkpoint's card, read once (:func:`read_card`): what :class:`ebm_ppl.EBMPrior` needs
    beyond the weights, so that building a prior from a loaded energy reads no file.

    Fields: ``path`` (the folder), ``evaluation_level`` (the level chosen on validation),
    ``sampler_settings`` (keyword arguments of the progressive sampler), ``log_z_entries`` (the
    cached estimates made for these parameters, by level)."""

    path: str
    evaluation_level: int
    sampler_settings: dict
    log_z_entries: dict

    def log_z(self, level: int) -> dict | None:
        """The cached estimate of ``level`` (see :func:`ebm_ppl.checkpoint.lookup_logz`), or None."""
        return lookup_logz(self.log_z_entries, level)


def read_card(path) -> ModelCard:
    """Read a checkpoint folder's :class:`ModelCard` (figures.json, config.json, logz/)."""
    path = os.fspath(path)
    return ModelCard(path, evaluation_level(path, default=0), sampler_settings(path), read_logz_entries(path))


def evaluation_level(path, default: int | None = 0) -> int:
    """The noise level a model card chose on validation for the checkpoint's density
    (``figures.json``'s ``evaluation_level``; 0 when the card names none). A missing card gives
    ``default``, or raises ``FileNotFoundError`` when ``default`` is None."""
    fname = os.path.join(os.fspath(path), "figures.json")
    if not os.path.isfile(fname):
        if default is None:
            raise FileNotFoundError(f"{fname}: no model card figures")
        return int(default)
    try:
        with open(fname, encoding="utf-8") as fh:
            return int(json.load(fh).get("evaluation_level", 0))
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{fname}: corrupt JSON ({err})") from None


def sampler_settings(path) -> dict:
    """The checkpoint's own progressive-sampler settings (``config.json``'s ``sampling``, written by
    the training run that made it), as keyword arguments of
    :func:`ebm_ppl.sampling.progressive.build_kernel`: ``inner``, ``num_inner_steps`` and
    ``step_scale`` (a float, or a tuple with one multiplier per level). ``{}`` when the config
    names none (the sampler's defaults then apply)."""
    cfg = read_config(path).get("sampling") or {}
    out: dict = {}
    if "inner" in cfg:
        out["inner"] = str(cfg["inner"])
    if "num_inner_steps" in cfg:
        out["num_inner_steps"] = int(cfg["num_inner_steps"])
    if "step_scale" in cfg:
        scale = cfg["step_scale"]
        if isinstance(scale, (list, tuple)):
            scale = tuple(float(v) for v in scale)
            if len(set(scale)) == 1:
                scale = scale[0]
        out["step_scale"] = float(scale) if not isinstance(scale, tuple) else scale
    return out


def load(path):
    """The checkpoint's bound energy (EMA weights, a :class:`ebm_ppl.energy.NetworkEnergy`) with
    ``checkpoint_path`` and its ``checkpoint_card`` (:class:`ModelCard`) read now, so that
    ``EBMPrior(load(path))`` reads no file. They are not pytree fields: a copy made by a jax
    transformation has neither, and acts as a bare energy. The card is a snapshot: a log Z stored
    after loading is seen by the next ``load`` (or ``EBMPrior(path)``)."""
    energy = load_energy(path)
    object.__setattr__(energy, "checkpoint_path", os.fspath(path))
    object.__setattr__(energy, "checkpoint_card", read_card(path))
    return energy
