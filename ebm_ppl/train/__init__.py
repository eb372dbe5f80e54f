"""Training: objectives of diffusion recovery likelihood, the loop and its callbacks, presets."""

from ebm_ppl.train.callbacks import SampleGrid, TrainEvent
from ebm_ppl.train.loop import TrainingDiverged, train
from ebm_ppl.train.objectives import (
    OBJECTIVES,
    dsm_loss,
    get_objective,
    make_pairs,
    network_log_density,
    normal_approx_loss,
    recovery_likelihood_loss,
    short_run_loss,
)
from ebm_ppl.train.presets import PRESETS, get_preset, preset_names

__all__ = [
    "OBJECTIVES",
    "PRESETS",
    "SampleGrid",
    "TrainEvent",
    "TrainingDiverged",
    "dsm_loss",
    "get_objective",
    "get_preset",
    "make_pairs",
    "network_log_density",
    "normal_approx_loss",
    "preset_names",
    "recovery_likelihood_loss",
    "short_run_loss",
    "train",
]
