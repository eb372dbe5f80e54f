"""When a log Z estimate can be trusted: Pareto k-hat of its log weights and an ESS floor.

An importance-sampling estimate log mean_i w_i with weights of heavy right tail is biased low and its
delta-method standard error std(w / mean w) / sqrt(N) (which cannot exceed about 1 nat) understates the
error: on log-normal weights, N = 256, intervals of +-3 stderr cover the truth 94% of the time at
Var(log w) = 4, 76% at 9 and 49% at 16, and the estimate is biased by -0.06, -0.41 and -1.45 nats
(docs/logz.md, section 5; ``benchmarks/logz_lognormal.py``). The rule (Vehtari et al. 2024, "Pareto
smoothed importance sampling"):

* ``khat``: the shape of a generalised Pareto distribution fitted to the largest weights (ArviZ's
  PSIS); above :data:`KHAT_MAX` = 0.7 the mean of the weights is not estimable from N of them;
* ``ess`` = (sum w)^2 / sum w^2 below :data:`ESS_FLOOR` = 20 is unreliable whatever k-hat says;
* an estimate stored before k-hat existed ("khat unknown") is judged by the ESS floor alone.

An unreliable estimate is a stochastic lower bound (AIS, the ladder; reverse AIS: an upper bound) and
its stderr is a lower bound on its error, not a standard error. :func:`check_reliability` emits one
:class:`UnreliableLogZWarning` line for it.
"""

from __future__ import annotations

import math
import warnings

import numpy as np

from ebm_ppl._jax_utils import warn

__all__ = ["KHAT_MAX", "ESS_FLOOR", "UnreliableLogZWarning", "pareto_khat", "reliability", "check_reliability"]

#: above this Pareto k-hat an importance-sampling estimate is unreliable (Vehtari et al. 2024)
KHAT_MAX = 0.7
#: below this weight ESS an estimate is unreliable (and the only rule when k-hat is unknown)
ESS_FLOOR = 20.0


class UnreliableLogZWarning(UserWarning):
    """A log Z estimate whose importance weights are too heavy-tailed (k-hat > 0.7) or too few
    (ESS below the floor): its stderr is a lower bound on the error, not a standard error."""


def pareto_khat(log_weights) -> float:
    """Pareto k-hat of the weights exp(``log_weights``) (N,), by ArviZ's PSIS (``r_eff = 1``:
    independent particles). NaN when it cannot be fitted (fewer than 10 finite weights, all equal).

    ArviZ's ``psislw`` takes minus the log ratios (its LOO convention: log-likelihoods), hence the sign.
    """
    lw = np.asarray(log_weights, np.float64).reshape(-1)
    lw = lw[np.isfinite(lw)]
    if lw.size < 10 or np.ptp(lw) == 0.0:
        return math.nan
    from arviz_stats.base import array_stats

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # ArviZ warns on its own about large k; we report it
        try:
            _, khat = array_stats.psislw(-lw, r_eff=1.0)
        except ValueError:  # "All tail values are the same"
            return math.nan
    khat = float(np.asarray(khat))
    return khat if math.isfinite(khat) else math.nan


def _number(value) -> float:
    try:
        out = float(value)
    except (TypeError, ValueError):
        return math.nan
    return out


def reliability(khat, ess, num_particles=None) -> tuple[bool, str]:
    """``(reliable, reason)`` for an estimate with these statistics (``khat`` NaN/None: unknown)."""
    khat, ess = _number(khat), _number(ess)
    of = f" of {int(num_particles)}" if num_particles else ""
    reasons = []
    if math.isfinite(khat) and khat > KHAT_MAX:
        reasons.append(f"Pareto k-hat {khat:.2f} > {KHAT_MAX}")
    if not math.isfinite(ess) or ess < ESS_FLOOR:
        reasons.append(f"weight ESS {ess:.1f}{of} < {ESS_FLOOR:g}")
    if reasons:
        return False, "; ".join(reasons)
    k = f"k-hat {khat:.2f}" if math.isfinite(khat) else "k-hat unknown"
    return True, f"{k}, ESS {ess:.0f}{of}"


def _bound_word(method) -> str:
    return "upper" if method == "reverse_ais" else "lower"


def unreliable_note(method) -> str:
    """The sentence that replaces "standard error" for an unreliable estimate."""
    return (
        f"stderr is a lower bound on the error, not a standard error; log Z is a stochastic {_bound_word(method)} bound"
    )


def _entry_stats(entry) -> tuple[float, float, int | None, int, str]:
    """(khat, ess, num_particles, level, method) of a LogZEstimate or a stored entry (dict).

    An entry derived from another level's run (``derived_from_level``, see
    :func:`ebm_ppl.checkpoint.load_logz`) takes k-hat from that run's ``levels`` row for its level,
    never the run's own k-hat; a row without one is "k-hat unknown"."""
    if isinstance(entry, dict):
        get = entry.get
        meta = get("meta") or {}
        level = int(get("level") or 0)
        khat = get("khat")
        if get("derived_from_level") is not None:
            row = (get("levels") or {}).get(str(level)) or (get("levels") or {}).get(level) or {}
            khat = row.get("khat")
        return _number(khat), _number(get("ess")), meta.get("num_particles"), level, get("method") or "ais"
    meta = getattr(entry, "meta", {}) or {}
    return (
        _number(getattr(entry, "khat", math.nan)),
        _number(entry.ess),
        meta.get("num_particles"),
        int(entry.level),
        entry.method,
    )


def check_reliability(entry_or_estimate, where: str, *, stacklevel: int | None = None) -> bool:
    """True when the log Z estimate (a :class:`~ebm_ppl.logz.LogZEstimate` or a stored entry dict,
    :func:`ebm_ppl.checkpoint.load_logz`) is reliable; otherwise warn once, in one line, with an
    :class:`UnreliableLogZWarning` saying ``where`` it was used, why, and what to do, and return False.

    Exact log Z (``None`` passed, or an entry with neither ESS nor stderr) is reliable. The warning
    points at the first line outside the ebm_ppl package (the user's call); ``stacklevel`` is kept
    for compatibility and no longer used."""
    if entry_or_estimate is None:
        return True
    khat, ess, n, level, method = _entry_stats(entry_or_estimate)
    if (
        isinstance(entry_or_estimate, dict)
        and entry_or_estimate.get("ess") is None
        and not entry_or_estimate.get("stderr")
    ):
        return True  # a value given by hand / exact: nothing to judge
    ok, why = reliability(khat, ess, n)
    if not ok:
        warn(
            f"{where}: log Z of level {level} ({method}) is unreliable ({why}): {unreliable_note(method)}; "
            f"re-estimate it with more particles and bridges (ebm-ppl logz CKPT --level {level} "
            f"--samples N --bridges B --write) or use a level whose log Z is reliable",
            UnreliableLogZWarning,
        )
    return ok
