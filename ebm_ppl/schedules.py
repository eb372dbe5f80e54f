"""Noise schedules of the diffusion that defines the noise-conditional energies.

A schedule with ``T`` levels describes the variance-preserving diffusion

    x_{t+1} = sqrt(1 - sigma_{t+1}^2) x_t + sigma_{t+1} e,      t = 0, ..., T-1,

and the scaled variables the energies model, ``y_t = sqrt(1 - sigma_{t+1}^2) x_t`` for
``t < T`` and ``y_T = x_T`` (the standard normal, by definition of level T).

When the last step destroys the signal (``sigma_T`` close to 1: the official T6 merge, T = 1 and
the NCSN ladder), the top learned level is a *marginal* EBM as in the official code
(``a_s_prev[-1] = 1``, no recovery term): ``y_{T-1} = x_{T-1}`` and p(y_{T-1} | x_T) is just
p(y_{T-1}); ``conditional_sigmas[T-1]`` is then ``inf`` so the recovery term vanishes.

``sigmas`` has length ``T + 1``. ``sigmas[t]`` for ``t >= 1`` is the per-step noise of the step
``x_{t-1} -> x_t``. ``sigmas[0]`` is the noise the official DRL code puts on the data to form
``x_0`` (``sqrt(beta_1) = 0.01``); ebm_ppl treats ``x_0`` as "the data" (the oracles define the
law of ``x_0`` directly) and only uses ``sigmas[0]`` in the official step-size rule.

All arrays are float64 NumPy arrays: a schedule is static configuration, hashable by its
name, and safe to close over in jitted code.
"""

from __future__ import annotations

import dataclasses
import functools
import math

import numpy as np

__all__ = ["Schedule", "drl", "ncsn", "from_name", "DRL_STEP_SIZE_SQUARE"]

#: ``b^2`` of the official DRL code: Langevin step size^2 = c_t^2 b^2 sigma_{t+1}^2.
DRL_STEP_SIZE_SQUARE = 2e-4
#: DDPM's linear betas, the base of every ``drl`` schedule.
DDPM_BETA_MIN, DDPM_BETA_MAX, DDPM_STEPS = 1e-4, 0.02, 1000
#: A last step with at least this variance makes the top learned level a marginal EBM (the official
#: T6 merge has sigma_6^2 = 0.9995; T1k's last step has 0.02).
TOP_MARGINAL_MIN_VARIANCE = 0.99
#: Largest per-step variance of a ``linear`` schedule (keeps c_{T-1} = sqrt(1 - sigma_T^2) >= 0.01).
MAX_STEP_VARIANCE = 1.0 - 1e-4
#: NCSN's annealed-Langevin base step (Song & Ermon 2019, Alg. 1): alpha_i = eps sigma_i^2 / sigma_L^2.
NCSN_EPS = 2e-5


@dataclasses.dataclass(frozen=True, eq=False)
class Schedule:
    """A diffusion over ``num_levels`` learned levels (level ``num_levels`` is N(0, I)).

    Attributes:
      name: how to rebuild it (``from_name(name)``), stored in checkpoints.
      sigmas: (T+1,) per-step noise; see the module docstring.
      langevin_step_sizes: (T,) squared Langevin step ``delta_t^2`` used at level t for the
        conditional ``p(y_t | x_{t+1})`` (the official rule for ``drl``, NCSN's for ``ncsn``).
      energy_scales: (T,) the divisor of the network output: log density = net(y, t) / scale_t.
      top_level_marginal: the top learned level models x_{T-1} itself with no recovery term.
    """

    name: str
    sigmas: np.ndarray
    langevin_step_sizes: np.ndarray
    energy_scales: np.ndarray
    top_level_marginal: bool = False

    def __post_init__(self):
        s = np.asarray(self.sigmas, np.float64)
        if s.ndim != 1 or s.size < 2:
            raise ValueError(f"schedule {self.name!r}: sigmas must have shape (T+1,), T >= 1; got {s.shape}")
        if not np.all((s > 0) & (s <= 1)):
            raise ValueError(f"schedule {self.name!r}: every sigma must lie in (0, 1]")
        for field in ("langevin_step_sizes", "energy_scales"):
            v = np.asarray(getattr(self, field), np.float64)
            if v.shape != (s.size - 1,) or not np.all(v > 0):
                raise ValueError(f"schedule {self.name!r}: {field} must be positive with shape ({s.size - 1},)")
            object.__setattr__(self, field, v)
        object.__setattr__(self, "sigmas", s)

    def __hash__(self):
        return hash(self.name)

    def __eq__(self, other):
        return (
            isinstance(other, Schedule)
            and self.name == other.name
            and np.array_equal(self.sigmas, other.sigmas)
            and self.top_level_marginal == other.top_level_marginal
        )

    def __repr__(self):
        return f"Schedule({self.name!r}, T={self.num_levels})"

    @property
    def num_levels(self) -> int:
        """T: the learned levels are 0..T-1, level T is the standard normal."""
        return self.sigmas.size - 1

    @functools.cached_property
    def alphas(self) -> np.ndarray:
        """(T+1,) per-step signal factors sqrt(1 - sigma_t^2)."""
        return np.sqrt(1.0 - self.sigmas**2)

    @functools.cached_property
    def signal_scales(self) -> np.ndarray:
        """(T+1,) abar_t = prod_{i=1..t} alpha_i: x_t = abar_t x_0 + noise_scales_t e."""
        return np.concatenate([[1.0], np.cumprod(self.alphas[1:])])

    @functools.cached_property
    def noise_scales(self) -> np.ndarray:
        """(T+1,) marginal noise std of x_t given x_0, sqrt(1 - abar_t^2)."""
        return np.sqrt(np.maximum(1.0 - self.signal_scales**2, 0.0))

    @functools.cached_property
    def model_scales(self) -> np.ndarray:
        """(T+1,) c_t with y_t = c_t x_t: alpha_{t+1} for t < T and 1 at level T (and 1 at
        level T-1 when the top level is marginal)."""
        scales = np.concatenate([self.alphas[1:], [1.0]])
        if self.top_level_marginal:
            scales[-2] = 1.0
        return scales

    @property
    def data_scale(self) -> float:
        """a = c_0: model space y_0 = a x_0 (the paper's change of variable, a = sqrt(1 - sigma_1^2))."""
        return float(self.model_scales[0])

    @functools.cached_property
    def conditional_sigmas(self) -> np.ndarray:
        """(T,) sigma_{t+1}: the width of the recovery term of p(y_t | x_{t+1}) (inf at a marginal top level)."""
        out = self.sigmas[1:].copy()
        if self.top_level_marginal:
            out[-1] = np.inf
        return out

    def marginal(self, t: int) -> tuple[float, float]:
        """(scale, std) with y_t = scale * x_0 + std * e exactly (level T: (0, 1) by definition)."""
        if t == self.num_levels:
            return 0.0, 1.0
        c = self.model_scales[t]
        return float(c * self.signal_scales[t]), float(c * self.noise_scales[t])

    def to_json(self) -> dict:
        return {"name": self.name, "num_levels": self.num_levels, "sigmas": self.sigmas.tolist()}


def _official_merge_sigmas(num_levels: int) -> np.ndarray | None:
    """The official DRL merge of DDPM's 1000 linear betas into T steps (None where it breaks)."""
    # T = 1 (the paper's short-run marginal baseline): one step from DDPM's step 0 to step 999.
    stride = DDPM_STEPS // ((num_levels - 1) * 2) if num_levels > 1 else DDPM_STEPS - 1
    if stride < 1 or (num_levels - 1) * stride >= DDPM_STEPS - 1:
        return None
    betas = np.linspace(DDPM_BETA_MIN, DDPM_BETA_MAX, DDPM_STEPS, dtype=np.float64)
    log_alpha = 0.5 * np.log1p(-betas)
    idx = np.concatenate([np.arange(num_levels) * stride, [DDPM_STEPS - 1]])
    csum = np.concatenate([[0.0], np.cumsum(log_alpha)])  # csum[k] = sum of the first k
    merged = np.concatenate([[csum[idx[0] + 1]], csum[idx[1:] + 1] - csum[idx[:-1] + 1]])
    return np.sqrt(-np.expm1(2.0 * merged))


def _linear_variance_sigmas(num_levels: int) -> np.ndarray:
    """T steps whose per-step variance sigma_t^2 grows linearly, the discretisation of DDPM's
    continuous linear schedule (beta(s) from 0.1 to 20 over s in [0, 1]): sigma_t^2 =
    (0.1 + 19.9 (t-1)/(T-1)) / T. At T = 1000 this is exactly DDPM's 1e-4 ... 0.02.
    ``sigmas[0] = sigma_1`` (the data noise of level 0, as DDPM's first step)."""
    lo, hi = DDPM_BETA_MIN * DDPM_STEPS, DDPM_BETA_MAX * DDPM_STEPS
    betas = (lo + (hi - lo) * np.arange(num_levels) / max(num_levels - 1, 1)) / num_levels
    # Below T = 20 the last steps would destroy the signal entirely (sigma = 1 makes y_{T-1} = 0):
    # cap the per-step variance so that the top learned level keeps a scale of at least 0.01.
    betas = np.minimum(betas, MAX_STEP_VARIANCE)
    return np.sqrt(np.concatenate([[betas[0]], betas]))


def _official_step_sizes(sigmas: np.ndarray, b_square: float) -> np.ndarray:
    """delta_t^2 = c_t^2 b^2 sigma_{t+1}^2 with c_t^2 = sigma_cum_t / sigma_cum_0, where sigma_cum
    is the official cumulative noise (it includes sigmas[0])."""
    alpha_cum = np.cumprod(np.sqrt(1.0 - sigmas**2))
    sigma_cum = np.sqrt(1.0 - alpha_cum**2)
    c_square = sigma_cum[:-1] / sigma_cum[0]
    return c_square * b_square * sigmas[1:] ** 2


@functools.lru_cache(maxsize=64)
def drl(num_levels: int, merge: str = "auto", b_square: float = DRL_STEP_SIZE_SQUARE) -> Schedule:
    """The diffusion-recovery-likelihood schedule with ``num_levels`` (T) levels.

    ``merge="official"`` merges DDPM's 1000 linear betas as the official code does (valid for
    T <= 500; ``drl(6).sigmas ~ [0.01, 0.3237, 0.5165, 0.6322, 0.7132, 0.7734, 0.9997]``);
    ``merge="linear"`` gives T steps with sigma_t^2 increasing linearly (``drl(1000)`` is DDPM's
    schedule exactly); ``"auto"`` takes the official merge where it exists. Step sizes and the
    energy divisor follow the official rule ``c_t^2 b^2 sigma_{t+1}^2``.
    """
    if int(num_levels) != num_levels or num_levels < 1:
        raise ValueError(f"drl schedule needs an integer number of levels >= 1, got {num_levels!r}")
    num_levels = int(num_levels)
    if merge not in ("auto", "official", "linear"):
        raise ValueError(f"merge must be 'auto', 'official' or 'linear', got {merge!r}")
    sigmas = None if merge == "linear" else _official_merge_sigmas(num_levels)
    if sigmas is None:
        if merge == "official":
            raise ValueError(f"the official merge formula is undefined for T={num_levels} (valid for 2 <= T <= 500)")
        sigmas, kind = _linear_variance_sigmas(num_levels), "linear"
    else:
        kind = "official"
    steps = _official_step_sizes(sigmas, b_square)
    name = f"drl:{num_levels}" if merge == "auto" else f"drl:{num_levels}:{kind}"
    return Schedule(
        name=name,
        sigmas=sigmas,
        langevin_step_sizes=steps,
        energy_scales=steps,
        top_level_marginal=_destroys_signal(sigmas),
    )


def _destroys_signal(sigmas: np.ndarray) -> bool:
    """The last step leaves x_T (nearly) independent of x_{T-1}: then the top level is marginal."""
    return bool(sigmas[-1] ** 2 >= TOP_MARGINAL_MIN_VARIANCE)


@functools.lru_cache(maxsize=64)
def ncsn(num_levels: int = 10, sigma_max: float = 1.0, sigma_min: float = 0.01) -> Schedule:
    """NCSN's geometric ladder (Song & Ermon 2019) written as a variance-preserving diffusion.

    Level t (t = 0..L-1) is the data at noise-to-signal ratio r_t, geometric from ``sigma_min``
    (t = 0) to ``sigma_max`` (t = L-1): the NCSN perturbation x + r_t e up to a scale, since
    y_t is proportional to x_0 + r_t e. Level L is N(0, I). The Langevin step at level t is NCSN's
    eps r_t^2 / r_0^2 (eps = 2e-5), rescaled to model space; the energy divisor is the marginal
    noise variance of y_t, so the network output is a score times sigma^2, as in NCSN.
    """
    if num_levels < 1 or not 0 < sigma_min <= sigma_max:
        raise ValueError("ncsn needs num_levels >= 1 and 0 < sigma_min <= sigma_max")
    ratios = np.geomspace(sigma_min, sigma_max, num_levels)
    # cumulative noise of x_t relative to the raw data, including the data noise sigmas[0]
    cum_noise = np.concatenate([ratios / np.sqrt(1 + ratios**2), [math.sqrt(1.0 - 1e-4)]])
    cum_signal_sq = 1.0 - cum_noise**2
    step_alpha_sq = cum_signal_sq[1:] / cum_signal_sq[:-1]
    sigmas = np.sqrt(np.concatenate([[cum_noise[0] ** 2], 1.0 - step_alpha_sq]))
    sched_tmp = Schedule(
        f"ncsn:{num_levels}:{sigma_max:g}:{sigma_min:g}",
        sigmas,
        np.ones(num_levels),
        np.ones(num_levels),
        top_level_marginal=True,
    )
    c = sched_tmp.model_scales[:-1] * np.sqrt(cum_signal_sq[:-1])  # y_t = c (x_raw + r_t e)
    steps = NCSN_EPS * ratios**2 / ratios[0] ** 2 * c**2
    energy_scales = (c * ratios) ** 2
    return Schedule(sched_tmp.name, sigmas, steps, energy_scales, top_level_marginal=True)


def from_name(name: str) -> Schedule:
    """Rebuild a schedule from its ``name``: ``drl:T``, ``drl:T:official|linear``, ``ncsn:L:max:min``."""
    parts = name.split(":")
    try:
        if parts[0] == "drl" and len(parts) in (2, 3):
            return drl(int(parts[1]), *(parts[2:] or ["auto"]))
        if parts[0] == "ncsn" and len(parts) == 4:
            return ncsn(int(parts[1]), float(parts[2]), float(parts[3]))
    except ValueError as err:
        raise ValueError(f"bad schedule name {name!r}: {err}") from None
    raise ValueError(f"unknown schedule {name!r}; expected 'drl:T', 'drl:T:official|linear' or 'ncsn:L:max:min'")
