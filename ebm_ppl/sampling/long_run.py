"""Long-run chains on the recovery conditionals (Gao et al. 2021, section 4.2 and App. C.2).

At each level t = T-1..0, from x_{t+1}: one normal-approximation draw
N(x_{t+1} + sigma^2 grad f(x_{t+1}), sigma^2) (counted as one sampling step), then S - 1 HMC
transitions of 2 leapfrog steps on p(y_t | x_{t+1}), with a per-level step size adapted on a pilot
run so that the acceptance rate lies in [0.6, 0.9] (target 0.75); NUTS with the same step sizes
is the check of App. C.2. Total sampling steps: T * S (T = 1000, S = 100 gives the paper's 100k).

This is the progressive kernel with ``inner="hmc"`` (or ``"nuts"``) and ``start="normal"``;
the module adds the pilot tuning, the runs at growing S and the Fig. 7 / Fig. 8 style outputs.
"""

from __future__ import annotations

from typing import Callable, NamedTuple, Sequence

import jax
import jax.numpy as jnp
import numpy as np

from ebm_ppl.sampling import progressive

__all__ = ["LongRunResult", "tune", "run", "run_growing", "plot_step_sizes"]

ACCEPTANCE_RANGE = (0.6, 0.9)


class LongRunResult(NamedTuple):
    """samples (n, *data_shape) in data space; step_sizes, acceptance_rate (T,) by level;
    steps_per_level S; total_steps T * S; log_density (T, n) of the final y_t per level."""

    samples: jax.Array
    step_sizes: jax.Array
    acceptance_rate: jax.Array
    steps_per_level: int
    total_steps: int
    log_density: jax.Array


def tune(
    energy,
    key: jax.Array,
    *,
    num_chains: int = 64,
    num_adapt: int = 60,
    num_integration_steps: int = 2,
    target_acceptance: float = 0.75,
    log_likelihood_fn: Callable | None = None,
):
    """Per-level HMC step sizes (T,) and the pilot acceptance (T,), tuned as in section 4.2."""
    return progressive.tune_step_sizes(
        energy, key, "hmc", num_chains=num_chains, num_adapt=num_adapt, num_inner_steps=10,
        target_acceptance=target_acceptance, num_integration_steps=num_integration_steps,
        log_likelihood_fn=log_likelihood_fn, start="normal",
    )


def run(
    energy,
    key: jax.Array,
    num_samples: int,
    *,
    steps_per_level: int = 100,
    step_sizes=None,
    sampler: str = "hmc",
    num_integration_steps: int = 2,
    log_likelihood_fn: Callable | None = None,
    tune_kwargs: dict | None = None,
    mesh=None,
) -> LongRunResult:
    """One long run: per level one normal draw + ``steps_per_level - 1`` HMC (or NUTS) steps.

    ``mesh``: split the ``num_samples`` chains over a device mesh (:mod:`ebm_ppl.sharding`)."""
    if steps_per_level < 1:
        raise ValueError(f"steps_per_level must be >= 1, got {steps_per_level}")
    if sampler not in ("hmc", "nuts"):
        raise ValueError(f"sampler must be 'hmc' or 'nuts', got {sampler!r}")
    k_tune, k_run = jax.random.split(key)
    if step_sizes is None and steps_per_level > 1:
        step_sizes, _ = tune(energy, k_tune, num_integration_steps=num_integration_steps,
                             log_likelihood_fn=log_likelihood_fn, **(tune_kwargs or {}))
    if steps_per_level == 1:
        x, info = progressive.sample(energy, k_run, num_samples, inner="normal", num_inner_steps=0,
                                     log_likelihood_fn=log_likelihood_fn, return_info=True, mesh=mesh)
        steps = jnp.zeros(energy.num_levels) if step_sizes is None else jnp.asarray(step_sizes)
    else:
        x, info = progressive.sample(
            energy, k_run, num_samples, inner=sampler, num_inner_steps=steps_per_level - 1,
            step_sizes=step_sizes, num_integration_steps=num_integration_steps,
            log_likelihood_fn=log_likelihood_fn, start="normal", return_info=True, mesh=mesh,
        )
        steps = info["step_sizes"]
    return LongRunResult(x, steps, info["acceptance_rate"], int(steps_per_level),
                         int(steps_per_level * energy.num_levels), info["log_density"])


def run_growing(
    energy,
    key: jax.Array,
    num_samples: int,
    steps_per_level: Sequence[int] = (1, 10, 100),
    **kwargs,
) -> list[LongRunResult]:
    """Long runs with the same tuned steps and the same key at growing S (the paper's Fig. 8:
    1k, 10k, 100k total steps at T = 1000)."""
    k_tune, k_run = jax.random.split(key)
    step_sizes = kwargs.pop("step_sizes", None)
    if step_sizes is None:
        tk = {k: kwargs[k] for k in ("num_integration_steps", "log_likelihood_fn") if k in kwargs}
        step_sizes, _ = tune(energy, k_tune, **tk, **(kwargs.pop("tune_kwargs", None) or {}))
    return [run(energy, k_run, num_samples, steps_per_level=s, step_sizes=step_sizes, **kwargs) for s in steps_per_level]


def plot_step_sizes(result: LongRunResult, path: str, energy=None) -> str:
    """The paper's Fig. 7 left and centre: HMC step size and acceptance rate per level."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    levels = np.arange(len(result.step_sizes))
    fig, (a, b) = plt.subplots(1, 2, figsize=(9, 3.2))
    a.plot(levels, np.asarray(result.step_sizes))
    a.set_xlabel("level t")
    a.set_ylabel("HMC step size")
    a.set_yscale("log")
    b.plot(levels, np.asarray(result.acceptance_rate))
    b.axhspan(*ACCEPTANCE_RANGE, color="tab:green", alpha=0.15, label="[0.6, 0.9]")
    b.set_ylim(0, 1.02)
    b.set_xlabel("level t")
    b.set_ylabel("acceptance rate")
    b.legend(loc="lower right")
    title = f"long run: {result.steps_per_level} steps/level"
    if energy is not None:
        title += f", schedule {energy.schedule.name}"
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return path
