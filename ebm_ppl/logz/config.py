"""The options of annealed importance sampling as two NamedTuples: how the path anneals
(:class:`AnnealingConfig`) and how the pilot run tunes it (:class:`PilotConfig`).

:func:`~ebm_ppl.logz.ais`, :func:`~ebm_ppl.logz.reverse_ais`, :func:`~ebm_ppl.logz.bdmc`,
:func:`~ebm_ppl.logz.pilot_path` and :func:`~ebm_ppl.logz.pilot_grad_count` take ``config=`` and
``pilot=``; any field may also be given as a keyword of its own (``ais(key, e, num_bridges=1800)``
is ``ais(key, e, config=AnnealingConfig(num_bridges=1800))``), which overrides the NamedTuple's value.
"""

from __future__ import annotations

from typing import Any, NamedTuple

from ebm_ppl._jax_utils import RENAMED_KEYWORDS, resolve_option_groups

__all__ = ["AnnealingConfig", "PilotConfig", "resolve_configs"]

SPACINGS = ("adaptive", "uniform")


class AnnealingConfig(NamedTuple):
    """How AIS anneals from N(0, I) down to a level.

    Fields:
      num_bridges: total bridges over all levels (None: max(900, 4 per level)), placed by
        thermodynamic length measured in the pilot (``spacing="adaptive"``) or equally per level
        with equal beta steps (``"uniform"``).
      num_steps: transition steps per bridge (each costs one gradient of each of the two levels).
      transition: ``"mala"``, ``"hmc"`` or ``"ghmc"`` (:func:`ebm_ppl.logz.ais` explains each).
      persistence: momentum persistence of ghmc.
      num_integration_steps: leapfrog steps per hmc step.
      spacing: ``"adaptive"`` or ``"uniform"``.
      frame: ``"fit"``, ``"identity"`` or a :class:`~ebm_ppl.annealing_frames.LevelFrame`: the
        coordinates the path runs in.
    """

    num_bridges: int | None = None
    num_steps: int = 2
    transition: str = "mala"
    persistence: float = 0.9
    num_integration_steps: int = 1
    spacing: str = "adaptive"
    frame: Any = "fit"


class PilotConfig(NamedTuple):
    """The pilot run that tunes an annealing path (its samples are discarded).

    Fields:
      pilot_particles, pilot_bridges_per_level: size of the tuning pilot.
      target_acceptance: acceptance the pilot adapts step sizes to (None: 0.6 mala, 0.75 hmc,
        0.8 ghmc).
      init_step_size: first step size (None: 0.3 D^(-1/6)).
      min_bridges_per_level: floor on the bridges each level gets.
      frame_particles, frame_bridges_per_level: size of the first pilot that fits the frame
        (``frame="fit"`` only).
    """

    pilot_particles: int = 64
    pilot_bridges_per_level: int = 32
    target_acceptance: float | None = None
    init_step_size: float | None = None
    min_bridges_per_level: int = 4
    frame_particles: int = 256
    frame_bridges_per_level: int = 16


def resolve_configs(
    where: str,
    config: AnnealingConfig | None,
    pilot: PilotConfig | None,
    options: dict,
    default: AnnealingConfig | None = None,
) -> tuple[AnnealingConfig, PilotConfig]:
    """(config, pilot) with the keyword ``options`` (field names of either, or their deprecated
    spellings, which warn) applied; an unknown keyword raises the TypeError Python would.
    ``default``: the config used when ``config`` is None (default ``AnnealingConfig()``)."""
    if config is None:
        config = AnnealingConfig() if default is None else default
    config, pilot = resolve_option_groups(
        where, [(AnnealingConfig, config), (PilotConfig, pilot, "pilot")], options, RENAMED_KEYWORDS
    )
    if config.spacing not in SPACINGS:
        raise ValueError(f"{where}: spacing must be one of {SPACINGS}, got {config.spacing!r}")
    return config, pilot
