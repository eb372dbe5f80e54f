"""The jitted training step, compiled once per (network, objective, optimizer, shapes).

``make_train_step(module, config, data_info, seed, mesh)`` returns a :class:`TrainStep`, a
callable ``step(state, data) -> (state, metrics)``. Its compiled pieces are module-level
``jax.jit`` functions whose static argument is a hashable :class:`StepSpec` (the JSON of the
network, schedule, objective and optimizer, batch size, ...), so a second ``train`` call, or a
second ``make_train_step``, with the same settings and shapes reuses the compiled code.

Two structures compute the same step (same keys, same arithmetic up to float reassociation):

* ``langevin_chunk=None`` (``"fused"``): one jit holding the whole step, the K Langevin steps of
  the recovery-likelihood objective unrolled inside it (compile time grows with K);
* ``langevin_chunk=k`` (the default for objectives with Langevin negatives, k =
  :data:`DEFAULT_LANGEVIN_CHUNK`): three jits: ``_begin`` (batch, dequantisation, spectral-norm
  power iteration, training pairs), ``_langevin`` (k Langevin steps, unrolled), called K / k
  times from Python, and ``_finish`` (contrastive loss, gradient, Adam, EMA, NaN guard).
  XLA:CPU then compiles one network gradient per piece instead of K + 1, and no convolution
  sits inside a while loop (XLA:CPU's slow path, see ``ebm_ppl._jax_utils.inner_unroll``).
  Measured in docs/performance.md.

Spectral norm: one power-iteration step per training step (in ``_begin``), as before.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from typing import TYPE_CHECKING, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from ebm_ppl import sharding
from ebm_ppl._jax_utils import inner_unroll
from ebm_ppl.energy import networks
from ebm_ppl.schedules import from_name
from ebm_ppl.train import objectives as obj

if TYPE_CHECKING:
    import flax.linen as nn
    from jax.sharding import Mesh

    from ebm_ppl.schedules import Schedule

__all__ = ["StepSpec", "TrainStep", "make_train_step", "make_optimizer", "learning_rate", "DEFAULT_LANGEVIN_CHUNK"]

#: Langevin steps per compiled call of the split step (see the module docstring)
DEFAULT_LANGEVIN_CHUNK = 1

#: objectives whose negatives come from K Langevin steps (they can run split)
_LANGEVIN_OBJECTIVES = ("recovery_likelihood", "short_run")


def learning_rate(opt: dict):
    """The learning rate of optimizer config ``opt``: a number, or ``count -> lr`` with a linear
    warm-up over ``warmup`` steps (lr * min((count + 1) / warmup, 1)) and, with ``decay_steps`` > 0,
    a cosine decay from lr to ``final_lr_fraction`` * lr (default 0) over the first ``decay_steps``
    steps, flat after them. Built from optax's ``linear_schedule`` and ``cosine_decay_schedule``
    (their product: the decay starts at step 0, under the warm-up, as it always did here; optax's
    ``warmup_cosine_decay_schedule`` starts it after the warm-up)."""
    lr, warmup = float(opt["lr"]), int(opt.get("warmup", 0))
    decay_steps = int(opt.get("decay_steps") or 0)
    final = float(opt.get("final_lr_fraction", 0.0))
    if warmup <= 0 and decay_steps <= 0:
        return lr
    # lr (count + 1) / warmup up to count = warmup - 1, then lr
    warm = (
        optax.linear_schedule(lr / max(warmup, 1), lr, max(warmup - 1, 0))
        if warmup > 0
        else optax.constant_schedule(lr)
    )
    if decay_steps <= 0:
        return warm
    decay = optax.cosine_decay_schedule(1.0, decay_steps, alpha=final)
    return lambda count: warm(count) * decay(count)


def make_optimizer(opt: dict) -> optax.GradientTransformation:
    """Adam(lr, beta1, beta2) at :func:`learning_rate` (linear warm-up over ``warmup`` steps,
    optional cosine decay over ``decay_steps``), after global-norm clipping at ``grad_clip``
    (None: no clipping)."""
    schedule = learning_rate(opt)
    parts = []
    if opt.get("grad_clip") is not None:
        parts.append(optax.clip_by_global_norm(float(opt["grad_clip"])))
    parts.append(optax.adam(schedule, b1=float(opt.get("beta1", 0.9)), b2=float(opt.get("beta2", 0.999))))
    return optax.chain(*parts)


class StepSpec(NamedTuple):
    """Everything static about a training step (hashable: the jit cache key)."""

    network: str  # JSON of the network config
    schedule: str
    objective: str  # JSON of the objective config (name + options)
    optimizer: str  # JSON of the optimizer config
    base_variance: float | None
    batch_size: int
    max_abs_loss: float
    bin_width: float | None
    mesh: Mesh | None


def _spec(config: dict, data_info: dict | None, mesh) -> StepSpec:
    dump = lambda v: json.dumps(v, sort_keys=True, default=list)  # noqa: E731
    bv = config.get("base_variance")
    bw = None if not data_info else data_info.get("bin_width")
    return StepSpec(
        dump(config["network"]),
        str(config["schedule"]),
        dump(config["objective"]),
        dump(config["optimizer"]),
        None if bv is None else float(bv),
        int(config["batch_size"]),
        float(config.get("max_abs_loss") or np.inf),
        None if bw is None else float(bw),
        mesh,
    )


class _Parts(NamedTuple):
    module: nn.Module
    schedule: Schedule
    objective_name: str
    objective_options: dict
    log_density: Callable
    plain_log_density: Callable  # of the module with spectral norm folded (networks.fold_spectral_norm)
    tx: optax.GradientTransformation
    ema_decay: float
    has_sn: bool


def _parts(spec: StepSpec) -> _Parts:
    """The Python objects a spec stands for (built at trace time only)."""
    net_cfg = json.loads(spec.network)
    module = networks.build(net_cfg)
    schedule = from_name(spec.schedule)
    options = json.loads(spec.objective)
    name = options.pop("name")
    opt = json.loads(spec.optimizer)
    has_sn = bool(net_cfg.get("spectral_norm", False))
    plain = module.clone(spectral_norm=False) if has_sn else module
    return _Parts(
        module,
        schedule,
        name,
        options,
        obj.network_log_density(module, schedule, spec.base_variance),
        obj.network_log_density(plain, schedule, spec.base_variance),
        make_optimizer(opt),
        float(opt.get("ema_decay", 0.999)),
        has_sn,
    )


def _variables(params, batch_stats) -> dict:
    return {"params": params, "batch_stats": batch_stats} if batch_stats else {"params": params}


def _all_finite(tree) -> jax.Array:
    leaves = [jnp.all(jnp.isfinite(x)) for x in jax.tree_util.tree_leaves(tree)]
    return jnp.all(jnp.stack(leaves)) if leaves else jnp.asarray(True)


def _prepare(spec: StepSpec, p: _Parts, seed_key, state, data):
    """Batch, dequantisation, the power-iteration step: (x0, k_obj, batch_stats)."""
    key = jax.random.fold_in(seed_key, state["step"])
    k_idx, k_deq, k_obj, k_sn = jax.random.split(key, 4)
    idx = jax.random.randint(k_idx, (spec.batch_size,), 0, data.shape[0])
    x0 = sharding.constrain_batch(data[idx], spec.mesh)
    if spec.bin_width is not None:
        x0 = x0 + (jax.random.uniform(k_deq, x0.shape, x0.dtype) - 0.5) * spec.bin_width
    batch_stats = state["batch_stats"]
    if p.has_sn:  # one power-iteration step per training step
        t_sn = jax.random.randint(k_sn, (spec.batch_size,), 0, p.schedule.num_levels)
        _, upd = p.module.apply(
            _variables(state["params"], batch_stats), x0, t_sn, update_stats=True, mutable=["batch_stats"]
        )
        batch_stats = upd["batch_stats"]
    return x0, k_obj, batch_stats


def _apply_update(spec: StepSpec, p: _Parts, state, batch_stats, loss, grads):
    """Adam, EMA and the NaN guard: (new state, metrics). The guard is not optax's
    ``apply_if_finite``: a rejected step here also keeps the EMA, the step count and the power-
    iteration vectors, and a finite but exploding loss (``|loss| >= max_abs_loss``) is rejected too."""
    updates, opt_state = p.tx.update(grads, state["opt_state"], state["params"])
    params = optax.apply_updates(state["params"], updates)
    grad_norm = optax.tree.norm(grads)
    ok = jnp.isfinite(loss) & jnp.isfinite(grad_norm) & (jnp.abs(loss) < spec.max_abs_loss) & _all_finite(params)
    d = p.ema_decay
    ema = jax.tree_util.tree_map(lambda e, q: d * e + (1.0 - d) * q, state["ema_params"], params)
    new = {
        "step": state["step"] + 1,
        "params": params,
        "batch_stats": batch_stats,
        "ema_params": ema,
        "opt_state": opt_state,
    }
    new = jax.tree_util.tree_map(lambda a, b: jnp.where(ok, a, b), new, state)
    return new, {"loss": loss, "grad_norm": grad_norm, "ok": ok}


def _langevin_options(p: _Parts):
    o = p.objective_options
    default_k = 180 if p.objective_name == "short_run" else 30
    return int(o.get("num_steps", default_k)), o.get("step_scale", 1.0), float(o.get("output_reg", 0.0) or 0.0)


def _begin_fn(spec: StepSpec, seed_key, state, data):
    """Part 1: (batch_stats, folded variables, t, y_pos, x_next, Langevin keys (K, ...)).

    The folded variables (:func:`ebm_ppl.energy.networks.fold_spectral_norm`) are what the K
    Langevin steps use: the spectral norm of every kernel is applied once per training step."""
    p = _parts(spec)
    x0, k_obj, batch_stats = _prepare(spec, p, seed_key, state, data)
    num_steps, _, _ = _langevin_options(p)
    if p.objective_name == "short_run" and p.schedule.num_levels != 1:
        raise ValueError(f"the short-run baseline is defined for T = 1 (drl:1), got {p.schedule.name!r}")
    # the key use of objectives.recovery_likelihood_loss
    k_t, k_pair, k_mc = jax.random.split(k_obj, 3)
    t = obj.sample_levels(k_t, x0.shape[0], p.schedule.num_levels)
    y_pos, x_next = obj.make_pairs(k_pair, x0, t, p.schedule)
    _, folded = networks.fold_spectral_norm(p.module, _variables(state["params"], batch_stats), transposed_kernels=True)
    return batch_stats, folded, t, y_pos, x_next, jax.random.split(k_mc, num_steps)


def _langevin_fn(spec: StepSpec, length: int, folded, y, keys, start, x_next, t):
    """Part 2: ``length`` Langevin steps from ``y`` with the folded network, on keys
    ``keys[start:start + length]`` (``start`` traced: one compiled program serves every chunk);
    unrolled up to ``inner_unroll``'s bound, as ``objectives.langevin_conditional``."""
    p = _parts(spec)
    _, step_scale, _ = _langevin_options(p)
    step = obj.langevin_step_fn(p.plain_log_density, folded, x_next, t, schedule=p.schedule, step_scale=step_scale)
    keys = jax.lax.dynamic_slice_in_dim(keys, start, length)
    unroll = inner_unroll(length, y.ndim - 1)
    if unroll is True:  # a Python loop: lax.scan(unroll=True) of length 1 still emits a while loop
        for i in range(length):
            y = step(y, keys[i])
        return y
    y, _ = jax.lax.scan(lambda y, k: (step(y, k), None), y, keys, unroll=unroll)
    return y


def _finish_fn(spec: StepSpec, state, batch_stats, t, y_pos, y_neg):
    """Part 3: contrastive loss, its gradient (through the spectral norm), the update."""
    p = _parts(spec)
    _, _, output_reg = _langevin_options(p)

    def loss_fn(params):
        return obj.contrastive_loss(
            p.log_density, _variables(params, batch_stats), y_pos, y_neg, t, p.schedule, output_reg
        )

    (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    return _apply_update(spec, p, state, batch_stats, loss, grads)


def _fused_fn(spec: StepSpec, seed_key, state, data):
    """The whole step in one program (the three parts in a row, or the objective's loss)."""
    p = _parts(spec)
    if p.objective_name in _LANGEVIN_OBJECTIVES:
        batch_stats, folded, t, y_pos, x_next, keys = _begin_fn(spec, seed_key, state, data)
        y_neg = _langevin_fn(spec, keys.shape[0], folded, x_next, keys, 0, x_next, t)
        return _finish_fn(spec, state, batch_stats, t, y_pos, y_neg)
    x0, k_obj, batch_stats = _prepare(spec, p, seed_key, state, data)
    objective = obj.get_objective(p.objective_name, p.schedule, **p.objective_options)

    def loss_fn(params):
        return objective(p.log_density, _variables(params, batch_stats), x0, k_obj)

    (loss, _), grads = jax.value_and_grad(loss_fn, has_aux=True)(state["params"])
    return _apply_update(spec, p, state, batch_stats, loss, grads)


def _replicated_out(fn):
    """jit of ``fn(spec, ...)`` with the outputs replicated over ``spec.mesh`` when there is one."""
    plain = jax.jit(fn, static_argnums=(0,))

    def out_shardings_for(spec):
        return sharding.replicated_sharding(spec.mesh)

    cache = {}

    def call(spec, *args):
        if spec.mesh is None:
            return plain(spec, *args)
        if spec.mesh not in cache:
            cache[spec.mesh] = jax.jit(fn, static_argnums=(0,), out_shardings=out_shardings_for(spec))
        return cache[spec.mesh](spec, *args)

    call.plain = plain
    call.cache = cache
    return call


_fused = _replicated_out(_fused_fn)
_finish = _replicated_out(_finish_fn)
_begin = jax.jit(_begin_fn, static_argnums=(0,))
_langevin = jax.jit(_langevin_fn, static_argnums=(0, 1))


def compiled_counts() -> dict:
    """Number of compiled variants of each piece (for compile-count tests)."""

    def size(f):
        return f._cache_size()

    return {
        "fused": size(_fused.plain) + sum(size(f) for f in _fused.cache.values()),
        "begin": size(_begin),
        "langevin": size(_langevin),
        "finish": size(_finish.plain) + sum(size(f) for f in _finish.cache.values()),
    }


class TrainStep:
    """``step(state, data) -> (state, metrics)`` (see the module docstring); ``lower(state, data)``
    lowers the fused one-jit form (for memory analysis)."""

    def __init__(self, spec: StepSpec, seed_key, langevin_chunk: int | None):
        self.spec = spec
        self.seed_key = seed_key
        name = json.loads(spec.objective)["name"]
        self.langevin_chunk = (
            None if langevin_chunk is None or name not in _LANGEVIN_OBJECTIVES else int(langevin_chunk)
        )

    def __call__(self, state, data):
        spec = self.spec
        if self.langevin_chunk is None:
            return _fused(spec, self.seed_key, state, data)
        batch_stats, folded, t, y_pos, x_next, keys = _begin(spec, self.seed_key, state, data)
        y, k, K = x_next, self.langevin_chunk, keys.shape[0]
        for i in range(0, K, k):
            y = _langevin(spec, min(k, K - i), folded, y, keys, np.int32(i), x_next, t)
        return _finish(spec, state, batch_stats, t, y_pos, y)

    def lower(self, state, data):
        if self.spec.mesh is None:
            return _fused.plain.lower(self.spec, self.seed_key, state, data)

        fn = jax.jit(_fused_fn, static_argnums=(0,), out_shardings=sharding.replicated_sharding(self.spec.mesh))
        return fn.lower(self.spec, self.seed_key, state, data)


def make_train_step(
    module,
    config: dict,
    data_info: dict | None,
    seed: int,
    mesh=None,
    *,
    langevin_chunk: int | None = DEFAULT_LANGEVIN_CHUNK,
) -> TrainStep:
    """``step(state, data) -> (state, metrics)``; ``data`` is the full training array.

    ``module`` must be ``networks.build(config["network"])`` (the step rebuilds it from the
    config, which is what makes the compiled code reusable). ``langevin_chunk``: Langevin steps
    per compiled call (None: one fused jit; see the module docstring).

    With a device ``mesh`` (:func:`ebm_ppl.sharding.device_mesh`), the gathered batch is
    constrained to ``NamedSharding(mesh, P("batch"))`` (split over the devices) and the state is
    kept replicated: the compiler partitions the per-example work and inserts the all-reduce of
    the mean loss and its gradient. Keys and batch indices do not depend on the mesh, so the
    result equals the one-device step up to float reduction order. ``batch_size`` must be a
    multiple of the mesh size.
    """
    if mesh is not None:
        sharding.check_divisible(int(config["batch_size"]), mesh, "batch_size")
    if networks.config_of(module) != networks.config_of(networks.build(config["network"])):
        raise ValueError("make_train_step: module differs from networks.build(config['network'])")
    if langevin_chunk is not None and int(langevin_chunk) < 1:
        raise ValueError(f"langevin_chunk must be >= 1 or None, got {langevin_chunk}")
    o = dict(config["objective"])
    obj.get_objective(o.pop("name"), from_name(config["schedule"]), **o)  # validates name and options now
    return TrainStep(_spec(config, data_info, mesh), jax.random.PRNGKey(seed), langevin_chunk)
