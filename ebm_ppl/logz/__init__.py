"""Estimators of the log normaliser log Z_t of a noise-conditional energy (see docs/logz.md).

Every estimator is called as ``estimator(rng_key, energy, **budget)`` and returns a
:class:`LogZEstimate`. ``energy`` follows the protocol of :mod:`ebm_ppl.energy.base` (a checkpoint's
network, an oracle) or is a plain callable ``log_density(y)`` with ``data_shape=...`` given, which is
treated as a one-level energy whose level 1 is N(0, I) (geometric tempering from the standard normal).

* :func:`ais`: annealed importance sampling (Neal 2001) from N(0, I) = level T down through the
  learned levels, with geometric bridges ``(1 - beta) f(y, t+1) + beta f(y, t)`` between consecutive
  levels and Metropolis-adjusted Langevin transitions, in per-level coordinates fitted by a first
  pilot (:mod:`ebm_ppl.annealing_frames`). Step sizes and the bridge positions come from a separate
  pilot run and are then fixed, so the weights are unbiased for Z at every level passed.
* :func:`reverse_ais`: the same path run backwards from exact samples (an oracle) or from held-out
  data noised to the level: a stochastic *upper* bound on log Z.
* :func:`bdmc`: both directions, the bidirectional Monte Carlo sandwich (Grosse et al. 2015).
* :func:`ladder`: the paper's App. A.6 estimator over progressive samples.
* :func:`smc`: BlackJAX adaptive tempered SMC from N(0, I), the baseline.

Particles are on the leading axis (``vmap``), bridges in one ``lax.scan``; log weights are returned
per bridge in float32 and summed on the host in float64.

Modules: :mod:`.estimate` (result type, weight statistics), :mod:`.reliability`
(Pareto k-hat, the ESS floor, :class:`UnreliableLogZWarning`), :mod:`.path` (annealing path, plain
energies, frames glue), :mod:`.kernels` (bridge transitions, the annealing loop), :mod:`.pilot` (path
tuning), :mod:`.annealed` (ais, reverse_ais, bdmc),
:mod:`.ladder_estimator`, :mod:`.tempered_smc`.
"""

from ebm_ppl.annealing_frames import LevelFrame, fit_frame, identity_frame
from ebm_ppl.logz.annealed import ais, bdmc, reverse_ais
from ebm_ppl.logz.config import AnnealingConfig, PilotConfig
from ebm_ppl.logz.estimate import LogZEstimate
from ebm_ppl.logz.ladder_estimator import ladder
from ebm_ppl.logz.path import AnnealingPath, as_energy
from ebm_ppl.logz.pilot import pilot_grad_count, pilot_path
from ebm_ppl.logz.reliability import ESS_FLOOR, KHAT_MAX, UnreliableLogZWarning, check_reliability, pareto_khat
from ebm_ppl.logz.tempered_smc import smc

__all__ = [
    "AnnealingConfig",
    "PilotConfig",
    "LogZEstimate",
    "ais",
    "reverse_ais",
    "bdmc",
    "ladder",
    "smc",
    "as_energy",
    "AnnealingPath",
    "pilot_path",
    "pilot_grad_count",
    "LevelFrame",
    "fit_frame",
    "identity_frame",
    "UnreliableLogZWarning",
    "check_reliability",
    "pareto_khat",
    "KHAT_MAX",
    "ESS_FLOOR",
]
