"""The paper's ladder estimator of log Z over progressive samples (Gao et al. 2021, App. A.6)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl._jax_utils import rng_key_first
from ebm_ppl.logz.estimate import LogZEstimate, _weight_stats
from ebm_ppl.logz.path import _check_level, _dim, _log_z_top, _model_scales, as_energy
from ebm_ppl.logz.reliability import pareto_khat
from ebm_ppl.sampling import progressive

__all__ = ["ladder"]


@rng_key_first(1)
def ladder(
    rng_key,
    energy,
    *,
    level: int = 0,
    num_samples: int = 1024,
    samples: dict | None = None,
    inner: str = "langevin",
    num_inner_steps: int = 30,
    batch_size: int | None = None,
):
    """log Z_level = log Z_T + sum_t log mean_i exp(h_t(x_i) - h_{t+1}(x_i)) + D log c_level, x_i ~ level t+1.

    The paper's App. A.6 estimator, written on the diffusion's own scale x_t = y_t / c_t
    (h_t(x) = f(c_t x, t), whose normaliser is Z_t / c_t^D): in model space the levels' scales jump
    (c_{T-1} = 0.02 for drl:6) and the importance weights of N(0, I) samples for level T-1 collapse.

    Samples of level t+1 come from progressive sampling (Gao et al. 2021, Alg. 2) with the given inner
    sampler; level T is N(0, I), exactly. ``samples={t: (M, *data_shape) model-space samples}``
    replaces them (e.g. an oracle's exact samples). Each term is the log of an unbiased ratio
    estimate, so the sum is a stochastic lower bound (only if the samples are exact).
    """
    energy = as_energy(energy)
    level = _check_level(energy, level)
    T = energy.num_levels
    sched = energy.schedule
    k_top, k_prog = jax.random.split(rng_key)
    grads = 0
    if samples is None:
        samples = {T: jax.random.normal(k_top, (num_samples,) + tuple(energy.data_shape))}
        if level + 1 < T:
            bs = num_samples if batch_size is None else int(batch_size)
            trajs = []
            for i, first in enumerate(range(0, num_samples, bs)):
                n = min(bs, num_samples - first)
                traj = progressive.sample_trace(
                    jax.random.fold_in(k_prog, i), energy, n, inner=inner, num_inner_steps=num_inner_steps
                ).levels
                trajs.append(np.asarray(traj))
            traj = np.concatenate(trajs, axis=1)  # (T, M, ...) for t = T-1..0, diffusion scale
            for t in range(level + 1, T):
                samples[t] = jnp.asarray(traj[T - 1 - t] * sched.model_scales[t], jnp.float32)  # model space
            steps = num_inner_steps if inner == "langevin" else 1
            grads = num_samples * T * steps
    else:
        samples = dict(samples)
        samples.setdefault(T, jax.random.normal(k_top, (num_samples,) + tuple(energy.data_shape)))
    c = jnp.asarray(_model_scales(energy), jnp.float32)
    # the ratio on the diffusion's own scale x = y / c: h_t(x) = f(c_t x, t), Z^x_t = Z_t / c_t^D
    log_ratio = jax.jit(lambda e, x, t: e.log_density(c[t] * x, t) - e.log_density(c[t + 1] * x, t + 1))
    log_c = np.log(_model_scales(energy)) * _dim(energy)
    top = _log_z_top(energy)
    total, var, levels = top, 0.0, {}
    curve_terms: list[np.ndarray] = []
    n_min: int | None = None
    ess_min, khat_max = math.inf, math.nan
    for t in range(T - 1, level - 1, -1):
        x = jnp.asarray(samples[t + 1], jnp.float32) / c[t + 1]
        bs = 4096 if batch_size is None else int(batch_size)  # memory: oracles in high D build (n, D, D) terms
        lr = np.concatenate(
            [
                np.asarray(log_ratio(energy, x[i : i + bs], jnp.asarray(t, jnp.int32)), np.float64)
                for i in range(0, x.shape[0], bs)
            ]
        )
        lz, se, ess = _weight_stats(lr)
        total += lz
        var += se**2
        ess_min = min(ess_min, ess)
        khat = pareto_khat(lr)
        khat_max = khat if not math.isfinite(khat_max) else max(khat_max, khat)
        levels[t] = {"log_z": total + log_c[t], "stderr": math.sqrt(var), "ess": ess, "khat": khat}
        curve_terms.append(lr)
        n_min = lr.size if n_min is None else min(n_min, lr.size)
    assert n_min is not None  # the ladder has at least one level below the top
    ms = np.unique(np.geomspace(min(8, n_min), n_min, 12).astype(int))
    curve = [(int(m), float(top + log_c[level] + sum(_weight_stats(lr[:m])[0] for lr in curve_terms))) for m in ms]
    evals = int(grads + 2 * n_min * (T - level))
    total += log_c[level]
    return LogZEstimate(
        log_z=total,
        stderr=math.sqrt(var),
        ess=ess_min,
        num_energy_evals=evals,
        num_grad_evals=int(grads),
        curve=curve,
        method="ladder",
        level=level,
        lower=total,
        levels=levels,
        khat=khat_max,
        meta={"num_samples": int(n_min), "inner": inner, "num_inner_steps": num_inner_steps},
    )
