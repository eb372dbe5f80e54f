"""What a model folder says beyond its weights: the evaluation level its card chose on validation
(``figures.json``) and its own sampler settings (``config.json``'s ``sampling``)."""

from __future__ import annotations

import json
import os

from ebm_ppl.checkpoint.files import CheckpointError, read_config

__all__ = ["evaluation_level", "sampler_settings"]


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
