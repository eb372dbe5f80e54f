"""The training loop: Adam with linear warm-up, global-norm clipping, EMA, NaN guard, checkpoints.

``train(x, config, out)`` trains an energy network on data ``x`` (n, *data_shape) in data space
([-1, 1], bin centres; dequantised here per batch) with a preset-like ``config`` (see
:mod:`ebm_ppl.train.presets`) and writes into the checkpoint directory ``out``:

* ``config.json``, ``params.msgpack`` (EMA weights), ``train_state.msgpack`` (see
  :mod:`ebm_ppl.checkpoint`), every ``ckpt_every`` steps and at the end;
* ``train_log.jsonl``: one JSON line per ``log_every`` steps (mean loss, gradient norm, steps/s);
* ``samples/step_<s>.png`` and ``samples/latest.png``: progressive samples of the EMA model, drawn
  by the :class:`~ebm_ppl.train.callbacks.SampleGrid` callback (``callbacks=`` adds others).

Determinism: step s uses ``fold_in(PRNGKey(seed), s)`` for its batch, dequantisation and
objective, and the whole state (raw and EMA variables, optimizer state, step) is checkpointed,
so resuming from step s reaches bit-identical parameters to an uninterrupted run.

NaN / divergence guard: a step whose loss, gradient norm or new parameters are not finite (or
whose |loss| exceeds ``max_abs_loss``) is not applied; training stops with
:class:`TrainingDiverged`, and the checkpoint on disk (the last periodic one) is left as it was.
"""

from __future__ import annotations

import json
import math
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl import checkpoint as ckpt
from ebm_ppl import sharding
from ebm_ppl._jax_utils import rng_key_first
from ebm_ppl._json import to_jsonable
from ebm_ppl.energy import NetworkEnergy, networks
from ebm_ppl.schedules import from_name
from ebm_ppl.train.callbacks import SampleGrid, TrainEvent, sampling_options
from ebm_ppl.train.objectives import resolve_step_scale
from ebm_ppl.train.step import learning_rate, make_optimizer, make_train_step

__all__ = [
    "train",
    "TrainingDiverged",
    "sampling_options",
    "make_optimizer",
    "learning_rate",
    "init_state",
    "make_train_step",
    "LOG_FILE",
]

LOG_FILE = "train_log.jsonl"


class TrainingDiverged(RuntimeError):
    """The NaN / divergence guard stopped training."""


@rng_key_first(2)
def init_state(rng_key, module, tx, data_shape) -> dict:
    """The training state: step, raw params, spectral-norm statistics, EMA params, optimizer state."""
    variables = networks.init_variables(rng_key, module, data_shape)
    params = variables["params"]
    return {
        "step": jnp.asarray(0, jnp.int32),
        "params": params,
        "batch_stats": variables.get("batch_stats", {}),
        "ema_params": jax.tree_util.tree_map(jnp.copy, params),
        "opt_state": tx.init(params),
    }


def _variables(params, batch_stats) -> dict:
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def ema_variables(state) -> dict:
    """The EMA copy as Flax variables (what sampling and checkpoints use)."""
    return _variables(state["ema_params"], state["batch_stats"])


def _check_compatible(saved: dict, config: dict, path: str):
    for field in ("network", "schedule", "objective", "base_variance"):
        if saved.get(field) != config.get(field) and not (field == "objective" and saved.get(field) is None):
            raise ValueError(
                f"{os.path.join(path, ckpt.CONFIG_FILE)}: cannot resume: {field} differs "
                f"(checkpoint {saved.get(field)!r}, requested {config.get(field)!r})"
            )


def _to_host(state):
    return sharding.to_host(state)


def train(
    x: np.ndarray,
    config: dict,
    out: str,
    *,
    data_info: dict | None = None,
    seed: int = 0,
    steps: int | None = None,
    resume: bool = False,
    progress: bool = True,
    write_samples: bool = True,
    mesh=None,
    callbacks=None,
) -> dict:
    """Train on ``x`` (n, *data_shape), data space) with ``config``; checkpoint into ``out``.

    Args:
      x: training data, bin centres in [-1, 1] (dequantised per batch when ``data_info`` gives a
        ``bin_width``).
      config: a preset dict (:func:`ebm_ppl.train.presets.get_preset`), possibly edited.
      out: checkpoint directory.
      data_info: ``ebm_ppl.data.info(name)`` (stored in the checkpoint; levels / scaling).
      seed: the training seed.
      steps: total number of steps to reach (default ``config["steps"]``).
      resume: continue from the checkpoint in ``out`` (its stored training config is used).
      progress: show a tqdm bar.
      write_samples: write sample-grid PNGs every ``sample_every`` steps and at the end (the
        :class:`~ebm_ppl.train.callbacks.SampleGrid` callback).
      callbacks: more callables ``callback(event: TrainEvent)``, called once per step after the
        update, the log line and the checkpoint (:mod:`ebm_ppl.train.callbacks`).
      mesh: a 1-D device mesh (:func:`ebm_ppl.sharding.device_mesh`) for data-parallel training:
        each step's batch is split over its devices, the state replicated (None: one device).
        The global batch, keys and checkpoints are those of the one-device run.

    Returns:
      a dict of figures: final_loss (mean over the last log interval), steps, steps_per_s,
      wall_time_s, out, diverged (False; divergence raises).

    Raises:
      TrainingDiverged: the NaN / divergence guard fired (message names the step and what is kept).
      ValueError: bad configuration, incompatible checkpoint for ``resume``.
    """
    x = np.asarray(x, np.float32)
    if x.ndim < 2 or x.shape[0] < 1:
        raise ValueError(f"training data must have shape (n, *data_shape), got {x.shape}")
    data_shape = tuple(x.shape[1:])
    info = dict(data_info or {"name": "array", "data_shape": data_shape, "levels": None})
    info.setdefault("data_shape", data_shape)
    if tuple(info["data_shape"]) != data_shape:
        raise ValueError(f"data_info says data_shape {tuple(info['data_shape'])} but the data have {data_shape}")
    config = to_jsonable(config, nonfinite_to_null=False, fallback=str)
    start_time = time.perf_counter()
    if resume:
        saved = ckpt.read_config(out)
        _check_compatible(saved, config, out)
        if saved.get("seed") is not None and int(saved["seed"]) != int(seed):
            raise ValueError(
                f"{out}: cannot resume: checkpoint was trained with seed {saved['seed']}, requested {seed}"
            )
        if tuple(saved["data_shape"]) != data_shape:
            raise ValueError(
                f"{out}: cannot resume: checkpoint data_shape {tuple(saved['data_shape'])} != {data_shape}"
            )
    total = int(steps if steps is not None else config["steps"])
    module = networks.build(config["network"])
    schedule = from_name(config["schedule"])
    tx = make_optimizer(config["optimizer"])
    state = init_state(jax.random.fold_in(jax.random.PRNGKey(seed), -1 & 0x7FFFFFFF), module, tx, data_shape)
    if resume:
        state = ckpt.load_train_state(out, state)
        state = jax.tree_util.tree_map(jnp.asarray, state)
    start = int(state["step"])
    step_fn = make_train_step(module, config, info, seed, mesh=mesh)
    data = jnp.asarray(x)
    if mesh is not None:
        from ebm_ppl import sharding

        state = sharding.replicate(state, mesh)
        data = sharding.replicate(data, mesh)
    os.makedirs(out, exist_ok=True)
    log_path = os.path.join(out, LOG_FILE)
    if not resume and os.path.exists(log_path):
        os.remove(log_path)
    log_every = max(int(config.get("log_every", 50)), 1)
    ckpt_every = int(config.get("ckpt_every", 0) or 0)
    sample_every = int(config.get("sample_every", 0) or 0)
    base_variance = config.get("base_variance")
    reference = x[: int(config.get("num_samples", 64))] if len(data_shape) == 1 and data_shape[0] == 2 else None
    prior_wall = 0.0
    if resume:
        prior_wall = float(ckpt.read_config(out).get("wall_time_s", 0.0) or 0.0)

    def save(state, wall):
        if mesh is not None:  # replicated over the mesh: numpy copies (gathered across hosts)
            state = _to_host(state)
        if jax.process_index() != 0:  # multi-host: one writer
            return
        ckpt.save(
            out,
            network=config["network"],
            variables=ema_variables(state),
            schedule=config["schedule"],
            data=info,
            step=int(state["step"]),
            base_variance=base_variance,
            objective=config["objective"],
            preset=config.get("preset"),
            train_state=state,
            extra={
                "seed": int(seed),
                "train": config,
                "wall_time_s": prior_wall + wall,
                "sampling": {
                    **config.get("sample", {}),
                    "step_scale": resolve_step_scale(
                        schedule, config.get("sample", {}).get("step_scale", 1.0)
                    ).tolist(),
                },
            },
        )

    def ema_energy(state):
        def build():
            host = state if mesh is None else _to_host(state)
            return NetworkEnergy(module, ema_variables(host), schedule, data_shape, base_variance)

        return build

    every_step = list(callbacks or ())
    if write_samples:
        every_step.insert(
            0,
            SampleGrid(
                sample_every,
                int(config.get("num_samples", 64)),
                config.get("sample", {}),
                seed,
                reference=reference,
                name=config.get("preset") or "ebm",
            ),
        )

    def report(state, step, log, checkpointed, final):
        event = TrainEvent(step, total, log, checkpointed, final, out, ema_energy(state))
        for callback in every_step:
            callback(event)

    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=total, initial=start, desc="train", unit="step", dynamic_ncols=True)
    losses, gnorms = [], []
    last_log_t, last_log_step = time.perf_counter(), start
    final_loss = math.nan
    t_loop = time.perf_counter()
    last_ckpt_step = start if resume else None
    try:
        for s in range(start, total):
            new_state, m = step_fn(state, data)
            if not bool(m["ok"]):
                kept = (
                    f"the checkpoint in {out} (step {last_ckpt_step}) is kept"
                    if last_ckpt_step is not None
                    else f"no checkpoint was written to {out} yet"
                )
                raise TrainingDiverged(
                    f"training diverged at step {s}: loss={float(m['loss']):.4g}, grad norm={float(m['grad_norm']):.4g} "
                    f"(non-finite or |loss| > {config.get('max_abs_loss')}); the update was not applied and "
                    f"{kept}. Try a smaller --lr, stronger grad_clip or a longer warm-up."
                )
            state = new_state
            losses.append(m["loss"])
            gnorms.append(m["grad_norm"])
            step = s + 1
            if bar is not None:
                bar.update(1)
            log_entry = None
            if step % log_every == 0 or step == total:
                now = time.perf_counter()
                mean_loss = float(np.mean(np.asarray(jax.device_get(losses))))
                entry = {
                    "step": step,
                    "loss": mean_loss,
                    "grad_norm": float(np.mean(np.asarray(jax.device_get(gnorms)))),
                    "steps_per_s": (step - last_log_step) / max(now - last_log_t, 1e-9),
                    "wall_time_s": prior_wall + now - start_time,
                }
                final_loss = mean_loss
                log_entry = entry
                with open(log_path, "a", encoding="utf-8") as fh:
                    fh.write(json.dumps(entry) + "\n")
                if bar is not None:
                    bar.set_postfix(loss=f"{mean_loss:.4g}")
                losses, gnorms = [], []
                last_log_t, last_log_step = now, step
            checkpointed = bool((ckpt_every and step % ckpt_every == 0) or step == total)
            if checkpointed:
                save(state, time.perf_counter() - start_time)
                last_ckpt_step = step
            report(state, step, log_entry, checkpointed, step == total)
    finally:
        if bar is not None:
            bar.close()
    if start >= total:  # resumed at the end: nothing ran, the callbacks still see the final state
        report(state, start, None, False, True)
    loop_time = time.perf_counter() - t_loop
    return {
        "out": out,
        "steps": total,
        "steps_run": total - start,
        "final_loss": final_loss,
        "steps_per_s": (total - start) / loop_time if total > start else None,
        "wall_time_s": time.perf_counter() - start_time,
        "preset": config.get("preset"),
        "diverged": False,
        "devices": 1 if mesh is None else int(mesh.devices.size),
    }


def state_leaves(state) -> list[np.ndarray]:
    """Flattened numpy leaves of a state (for bit-exact comparisons)."""
    return [np.asarray(v) for v in jax.tree_util.tree_leaves(state)]
