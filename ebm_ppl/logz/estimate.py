"""The result type of every log Z estimator and the statistics of importance weights."""

from __future__ import annotations

import dataclasses
import json
import math

import numpy as np

from ebm_ppl._json import to_jsonable
from ebm_ppl.logz.reliability import pareto_khat, reliability, unreliable_note

__all__ = ["LogZEstimate"]


@dataclasses.dataclass(frozen=True)
class LogZEstimate:
    """An estimate of log Z at ``level`` (normaliser of ``energy.log_density(., level)``).

    Attributes:
      log_z: the estimate (float).
      stderr: its standard error (delta method over the importance weights) when :attr:`reliable`;
        otherwise only a lower bound on the error (``str(estimate)`` and ``to_json`` say so).
      ess: effective sample size of the final importance weights, (sum w)^2 / sum w^2.
      khat: Pareto k-hat of the final log weights (ArviZ's PSIS, :mod:`ebm_ppl.logz.reliability`);
        NaN when unknown (estimates stored before it existed, SMC).
      log_weights: the final log importance weights (N,) as a list of floats, or None.
      samples: the final particles (N, *data_shape) in model space at ``level`` (AIS: weight them by
        ``log_weights``; ladder: the level's samples), or None; not stored by ``to_json``.
      num_energy_evals, num_grad_evals: per-example evaluations of learned levels spent in total
        (pilot included; level T is closed form and not counted).
      curve: list of ``(num_samples, log_z)``: the estimate from the first m samples.
      method: "ais", "reverse_ais", "bdmc", "ladder" or "smc".
      level: the level t the estimate is for.
      lower, upper: the two sides of a sandwich where known (``lower`` is a stochastic lower bound,
        ``upper`` a stochastic upper bound), else None.
      levels: ``{t: {"log_z", "stderr", "ess", "khat"}}`` for every level the run passed.
      meta: budget and settings used.
    """

    log_z: float
    stderr: float
    ess: float
    num_energy_evals: int
    num_grad_evals: int
    curve: list
    method: str = "ais"
    level: int = 0
    lower: float | None = None
    upper: float | None = None
    levels: dict = dataclasses.field(default_factory=dict)
    meta: dict = dataclasses.field(default_factory=dict)
    khat: float = math.nan
    log_weights: list | None = dataclasses.field(default=None, repr=False, compare=False)
    samples: np.ndarray | None = dataclasses.field(default=None, repr=False, compare=False)

    @property
    def reliable(self) -> bool:
        """False when k-hat > 0.7 or the ESS is below the floor (:func:`ebm_ppl.logz.reliability.reliability`)."""
        return reliability(self.khat, self.ess, self.meta.get("num_particles"))[0]

    @property
    def reliability_note(self) -> str:
        """One sentence: why the estimate is (un)reliable and, if not, how to read its stderr."""
        ok, why = reliability(self.khat, self.ess, self.meta.get("num_particles"))
        return why if ok else f"UNRELIABLE ({why}): {unreliable_note(self.method)}"

    def __str__(self) -> str:
        head = f"log Z_{self.level} = {self.log_z:.4f}"
        if self.reliable:
            return f"{head} ± {self.stderr:.4f} (standard error; {self.method}, {self.reliability_note})"
        return f"{head}, error at least ± {self.stderr:.4f} ({self.method}; {self.reliability_note})"

    def to_json(self) -> dict:
        """A JSON-able dict (what checkpoints store), with ``reliable`` and the ``reliability`` sentence."""
        d = dataclasses.asdict(dataclasses.replace(self, samples=None))
        d.pop("samples")
        d["levels"] = {str(k): v for k, v in self.levels.items()}
        d["curve"] = [[int(m), float(v)] for m, v in self.curve]
        d["reliable"] = self.reliable
        d["reliability"] = self.reliability_note
        return to_jsonable(d)

    @classmethod
    def from_json(cls, d: dict) -> LogZEstimate:
        d = dict(d)
        names = {f.name for f in dataclasses.fields(cls)}
        d = {k: v for k, v in d.items() if k in names}
        d["levels"] = {int(k): v for k, v in d.get("levels", {}).items()}
        d["curve"] = [tuple(c) for c in d.get("curve", [])]
        d["khat"] = math.nan if d.get("khat") is None else float(d["khat"])  # stored before k-hat: unknown
        d.setdefault("num_energy_evals", 0)
        d.setdefault("num_grad_evals", 0)
        d.setdefault("stderr", math.nan)
        d.setdefault("ess", math.nan)
        return cls(**d)

    def dumps(self) -> str:
        return json.dumps(self.to_json())

    def at_level(self, t: int) -> LogZEstimate:
        """The estimate for another level this run passed (same budget fields, curve empty)."""
        t = int(t)
        if t == self.level:
            return self
        if t not in self.levels:
            raise KeyError(f"this {self.method} run did not pass level {t}; levels: {sorted(self.levels)}")
        e = self.levels[t]
        khat = e.get("khat")
        return dataclasses.replace(
            self,
            log_z=e["log_z"],
            stderr=e["stderr"],
            ess=e["ess"],
            level=t,
            curve=[],
            lower=None,
            upper=None,
            log_weights=None,
            samples=None,
            khat=math.nan if khat is None else float(khat),
        )


def _weight_stats(log_w: np.ndarray) -> tuple[float, float, float]:
    """(log mean w, delta-method stderr of it, ESS) in float64."""
    log_w = np.asarray(log_w, np.float64)
    n = log_w.size
    finite = np.isfinite(log_w)
    if not finite.any():
        return -math.inf, math.inf, 0.0
    m = np.max(log_w[finite])
    w = np.where(finite, np.exp(log_w - m), 0.0)
    mean = w.mean()
    log_mean = m + math.log(mean)
    rel = w / mean
    stderr = float(np.std(rel, ddof=1) / math.sqrt(n)) if n > 1 else math.inf
    ess = float(w.sum() ** 2 / np.sum(w**2))
    return float(log_mean), stderr, ess


def _level_row(log_w: np.ndarray, offset: float = 0.0, sign: float = 1.0) -> dict:
    """``{"log_z", "stderr", "ess", "khat"}`` of log weights ``log_w`` (log Z = offset + sign * log mean w)."""
    lz, se, ess = _weight_stats(log_w)
    return {"log_z": float(offset + sign * lz), "stderr": se, "ess": ess, "khat": pareto_khat(log_w)}


def _curve(log_w: np.ndarray, offset: float = 0.0, sign: float = 1.0, points: int = 12) -> list:
    n = log_w.size
    ms = np.unique(np.geomspace(min(8, n), n, points).astype(int))
    out = []
    for m in ms:
        v, _, _ = _weight_stats(log_w[:m])
        out.append((int(m), float(offset + sign * v)))
    return out
