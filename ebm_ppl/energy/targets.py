"""Named analytic targets, usable wherever a checkpoint is (``--target NAME``).

Noise-conditional oracles (exact at every level of any schedule):

* ``ncsn2``: NCSN's 2-D mixture 1/5 N((-5,-5), I) + 4/5 N((5,5), I) (Song & Ermon 2019, sec. 3.2);
* ``gmm4``: the drifting paper's symmetric 4-mode mixture, modes (+-1.5, +-1.5), std 0.2 each;
* ``gauss:D``: a fixed correlated Gaussian in D dimensions (mean uniform in [-0.5, 0.5], covariance
  eigenvalues geometric from 0.05 to 1, random rotation; seeded by D);
* ``gmm:D:K``: a fixed K-mode mixture in D dimensions (means uniform in [-1, 1]^D, weights
  proportional to 1..K, each covariance a random rotation of eigenvalues uniform in [0.08, 0.15];
  seeded by D and K).

Plain energies with no levels (:mod:`ebm_ppl.energy.plain`): ``double-well[:A]``, ``banana``,
``gmm40``, ``funnel10``, ``manywell32``.

The table of built-in targets is written out in ``_BUILTIN``; a user adds their own with
:func:`register_target`.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ebm_ppl import schedules
from ebm_ppl.energy.oracles import GaussianOracle, MixtureOracle
from ebm_ppl.energy.plain import Banana, DoubleWell, Funnel, ManyWell, gmm40
from ebm_ppl.schedules import Schedule

__all__ = ["target", "register_target", "target_names", "DEFAULT_TARGET_SCHEDULE"]

#: Schedule of a target built without one: the paper's T6.
DEFAULT_TARGET_SCHEDULE = "drl:6"

_USER: dict[str, tuple[Callable, str]] = {}


def register_target(prefix: str, factory: Callable, usage: str | None = None) -> None:
    """Register a user's ``factory(args: list[str], schedule) -> energy`` under ``prefix``; the name
    ``prefix:a:b`` passes ``["a", "b"]``. ``usage`` is shown in error messages. A built-in prefix
    cannot be replaced."""
    if prefix in _BUILTIN:
        raise ValueError(f"{prefix!r} is a built-in target and cannot be re-registered")
    _USER[prefix] = (factory, usage or prefix)


def _registry() -> dict[str, tuple[Callable, str]]:
    return {**_BUILTIN, **_USER}


def target_names() -> list[str]:
    """The usage strings of every target: the built-in ones, then those registered by the user."""
    return [usage for _, usage in _registry().values()]


def target(name: str, schedule: Schedule | None = None):
    """The named analytic target bound to ``schedule`` (default ``drl(6)``)."""
    if schedule is None:
        schedule = schedules.from_name(DEFAULT_TARGET_SCHEDULE)
    elif isinstance(schedule, str):
        schedule = schedules.from_name(schedule)
    prefix, *args = str(name).split(":")
    registry = _registry()
    if prefix not in registry:
        raise ValueError(f"unknown target {name!r}; known targets: {', '.join(target_names())}")
    factory, usage = registry[prefix]
    try:
        return factory(args, schedule)
    except (ValueError, TypeError) as err:
        raise ValueError(f"bad target {name!r} (usage: {usage}): {err}") from None


def _no_args(name, args):
    if args:
        raise ValueError(f"{name} takes no arguments")


def _positive_ints(args, count):
    if len(args) != count:
        raise ValueError(f"expected {count} integer argument(s)")
    values = [int(a) for a in args]
    if any(v < 1 for v in values):
        raise ValueError("arguments must be positive integers")
    return values


def _random_rotation(rng: np.random.Generator, d: int) -> np.ndarray:
    q, r = np.linalg.qr(rng.standard_normal((d, d)))
    return q * np.sign(np.diag(r))


def _ncsn2(args, schedule):
    _no_args("ncsn2", args)
    return MixtureOracle([0.2, 0.8], [[-5.0, -5.0], [5.0, 5.0]], 1.0, schedule)


def _gmm4(args, schedule):
    _no_args("gmm4", args)
    means = [[-1.5, -1.5], [-1.5, 1.5], [1.5, -1.5], [1.5, 1.5]]
    return MixtureOracle(np.full(4, 0.25), means, 0.2**2, schedule)


def _gauss(args, schedule):
    (d,) = _positive_ints(args, 1)
    rng = np.random.default_rng(1000 + d)
    mean = rng.uniform(-0.5, 0.5, d)
    rot = _random_rotation(rng, d)
    cov = (rot * np.geomspace(0.05, 1.0, d)) @ rot.T
    return GaussianOracle(mean, cov, schedule)


def _gmm(args, schedule):
    d, k = _positive_ints(args, 2)
    rng = np.random.default_rng(2000 + 97 * d + k)
    means = rng.uniform(-1.0, 1.0, (k, d))
    weights = np.arange(1, k + 1, dtype=np.float64)
    covs = []
    for _ in range(k):
        rot = _random_rotation(rng, d)
        covs.append((rot * rng.uniform(0.08, 0.15, d)) @ rot.T)
    return MixtureOracle(weights / weights.sum(), means, np.stack(covs), schedule)


def _double_well(args, schedule):
    if len(args) > 1:
        raise ValueError("expected at most one argument (the barrier height)")
    return DoubleWell(float(args[0])) if args else DoubleWell()


def _banana(args, schedule):
    _no_args("banana", args)
    return Banana()


def _gmm40(args, schedule):
    _no_args("gmm40", args)
    return gmm40(schedule)


def _funnel10(args, schedule):
    _no_args("funnel10", args)
    return Funnel(10)


def _manywell32(args, schedule):
    _no_args("manywell32", args)
    return ManyWell(32)


#: Every built-in target: prefix -> (factory(args, schedule), usage). Written out here, not filled
#: as a side effect of imports; :func:`register_target` adds a user's targets beside these.
_BUILTIN: dict[str, tuple[Callable, str]] = {
    "ncsn2": (_ncsn2, "ncsn2"),
    "gmm4": (_gmm4, "gmm4"),
    "gauss": (_gauss, "gauss:D"),
    "gmm": (_gmm, "gmm:D:K"),
    "double-well": (_double_well, "double-well[:A]"),
    "banana": (_banana, "banana"),
    "gmm40": (_gmm40, "gmm40"),
    "funnel10": (_funnel10, "funnel10"),
    "manywell32": (_manywell32, "manywell32"),
}
