"""Training callbacks: what the loop reports, and what is drawn from it (sample grids).

The loop calls each callback once per step with a :class:`TrainEvent`; a callback decides
itself what to do with it (most steps: nothing). ``train(..., callbacks=[...])`` adds yours to the
default :class:`SampleGrid` (``write_samples=True``). A callback that needs the model builds the
EMA energy with ``event.energy()``, which costs a device-to-host copy, so do it only on the steps
you act on. Example, losses into a list::

    losses = []
    train(x, config, out, callbacks=[lambda ev: ev.log and losses.append(ev.log["loss"])])
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from typing import NamedTuple

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl._jax_utils import rng_key_first
from ebm_ppl.plotting import save_samples
from ebm_ppl.sampling.progressive import sample
from ebm_ppl.train.objectives import resolve_step_scale

__all__ = ["TrainEvent", "Callback", "SampleGrid", "sampling_options", "save_samples_png"]


class TrainEvent(NamedTuple):
    """One step of training as callbacks see it.

    Fields: ``step`` (steps done), ``total`` (steps to reach), ``log`` (the log entry written at
    this step: loss, grad_norm, steps_per_s, wall_time_s; None between log steps),
    ``checkpointed`` (a checkpoint was written at this step), ``final`` (the last event of the run),
    ``out`` (the checkpoint folder), ``energy`` (a function returning the EMA model as a
    :class:`~ebm_ppl.energy.NetworkEnergy`, host copy)."""

    step: int
    total: int
    log: dict | None
    checkpointed: bool
    final: bool
    out: str
    energy: Callable


Callback = Callable[[TrainEvent], None]


def sampling_options(schedule, sample_cfg: dict) -> dict:
    """Keyword arguments of ``ebm_ppl.sampling.progressive.sample`` from a preset's ``sample``
    entry (``step_scale`` resolved to per-level multipliers, see ``resolve_step_scale``)."""
    scale = resolve_step_scale(schedule, sample_cfg.get("step_scale", 1.0))
    return {
        "inner": sample_cfg.get("inner", "langevin"),
        "num_inner_steps": int(sample_cfg.get("num_inner_steps", 30)),
        "step_scale": jnp.asarray(scale, jnp.float32) if np.ptp(scale) > 0 else float(scale[0]),
    }


@rng_key_first(1)
def save_samples_png(rng_key, energy, n: int, path: str, sample_cfg: dict, reference=None, title=None) -> np.ndarray:
    """Progressive samples of ``energy`` (data space) pictured at ``path``; returns the samples."""
    x = sample(rng_key, energy, n, **sampling_options(energy.schedule, sample_cfg))
    x = np.asarray(x)
    if x.ndim >= 3:
        x_plot = np.clip(x, -1.0, 1.0)
    else:
        x_plot = x
    save_samples(x_plot, path, title=title, reference=reference)
    return x


class SampleGrid:
    """Callback: a PNG of progressive samples of the EMA model every ``every`` steps and at the end
    (``samples/step_<s>.png`` and ``samples/latest.png`` under the checkpoint folder).

    Args:
      every: steps between grids (0: only at the end).
      num_samples: samples per grid.
      sample_cfg: the preset's ``sample`` entry (inner sampler, steps, step scale).
      seed: the grid's samples use ``fold_in(PRNGKey(seed + 1), 0)`` (the same draws each time).
      reference: 2-D data to draw beside the samples (None for images).
      name: the title's prefix.
    """

    def __init__(self, every: int, num_samples: int, sample_cfg: dict, seed: int, reference=None, name: str = "ebm"):
        self.every = int(every)
        self.num_samples = int(num_samples)
        self.sample_cfg = dict(sample_cfg)
        self.seed = int(seed)
        self.reference = reference
        self.name = name

    def __call__(self, event: TrainEvent) -> None:
        if not (event.final or (self.every and event.step % self.every == 0)):
            return
        if jax.process_index() != 0:  # multi-host: one writer
            return
        path = os.path.join(event.out, "samples", f"step_{event.step:07d}.png")
        key = jax.random.fold_in(jax.random.PRNGKey(self.seed + 1), 0)
        save_samples_png(
            key,
            event.energy(),
            self.num_samples,
            path,
            self.sample_cfg,
            reference=self.reference,
            title=f"{self.name} step {event.step}",
        )
        shutil.copyfile(path, os.path.join(event.out, "samples", "latest.png"))
