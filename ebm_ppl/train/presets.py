"""Training presets: JSON-serialisable dicts that say everything the loop needs.

Keys: ``network`` (``ebm_ppl.energy.networks.build`` config), ``schedule`` (name),
``objective`` (``{"name": ..., **options}``, see :mod:`ebm_ppl.train.objectives`),
``base_variance`` (the Gaussian base term of the bound energy), ``optimizer`` (Adam ``lr``,
``beta1``, ``beta2``, linear ``warmup`` steps, global-norm ``grad_clip`` or None, ``ema_decay``),
``batch_size``, ``steps``, ``log_every``, ``ckpt_every``, ``sample_every``, ``num_samples``
(the sample grid), ``sample`` (progressive sampler options), ``max_abs_loss`` (divergence guard),
``data`` (the data set it was sized for) and ``description``.

The CPU presets are sized for 2 cores: ``t6-2d`` trains 8gaussians in a couple of minutes,
``t6-digits`` a reasonable 8x8 digits model in about 10-15 minutes. ``t6-cifar`` is the paper's
CIFAR-10 setting (Gao et al. 2021, Tables 5 and 6) for users with a GPU and CIFAR-10 arrays.
"""

from __future__ import annotations

import copy

__all__ = ["PRESETS", "get_preset", "preset_names", "DEFAULT_BASE_VARIANCE"]

#: Variance of the Gaussian base term -|y|^2 / (2 base_variance) of our presets: it makes every
#: level normalisable whatever the network does far from the data, and is wide beside the data
#: (model space lies within [-1, 1] per coordinate), so it hardly touches the fit.
DEFAULT_BASE_VARIANCE = 4.0

_COMMON = {
    "base_variance": DEFAULT_BASE_VARIANCE,
    "max_abs_loss": 1e8,
    "log_every": 50,
    "sample": {"inner": "langevin", "num_inner_steps": 30},
}


#: the small spectrally normalised WRN and the Adam settings every 8x8-digits preset starts from
#: (presets are deep-copied by get_preset, so sharing these dicts here is safe)
_DIGITS_WRN = {"name": "wrn", "width": 32, "channel_mults": [1, 2], "num_res_blocks": 1, "spectral_norm": True}
_DIGITS_ADAM = {"lr": 5e-4, "beta1": 0.9, "beta2": 0.999, "warmup": 200, "grad_clip": 1.0, "ema_decay": 0.999}


def _denoiser_2d(schedule: str, description: str) -> dict:
    """A 2-D bounded-denoiser DSM preset on ``schedule`` (the network divides by that schedule's
    DSM variance when it is a ``drl`` one, whose energy scale is not that variance)."""
    network = {"name": "denoiser", "width": 256, "depth": 3, "temb_dim": 32, "activation": "swish"}
    if schedule.startswith("drl:"):
        network["variance_schedule"] = schedule
    return {
        **_COMMON,
        "description": description,
        "data": "checkerboard",
        "network": network,
        "schedule": schedule,
        "objective": {"name": "dsm"},
        "base_variance": None,
        "optimizer": {
            "lr": 1e-3,
            "beta1": 0.9,
            "beta2": 0.999,
            "warmup": 100,
            "grad_clip": 1.0,
            "ema_decay": 0.995,
            "decay_steps": 6000,
            "final_lr_fraction": 0.02,
        },
        "batch_size": 512,
        "steps": 6000,
        "ckpt_every": 1000,
        "sample_every": 3000,
        "num_samples": 1000,
        "sample": {"inner": "mala", "num_inner_steps": 100, "step_scale": 1.0},
    }


PRESETS: dict[str, dict] = {
    "t6-2d": {
        **_COMMON,
        "description": "T6 recovery likelihood (K=30) for 2-D data; residual MLP, a couple of minutes on CPU",
        "data": "8gaussians",
        "network": {
            "name": "mlp",
            "width": 128,
            "depth": 3,
            "temb_dim": 32,
            "activation": "leaky_relu",
            "spectral_norm": True,
            "zero_init_output": True,
        },
        "schedule": "drl:6",
        "objective": {"name": "recovery_likelihood", "num_steps": 30, "output_reg": 0.01},
        # cosine decay of the rate to 2% over the 3000 steps: at a constant 1e-3 the raw parameters
        # jitter (a constant-rate run's raw parameters sample at ~50x the null MMD^2) and the EMA 0.995
        # copy still carries some of it (level 0's log density is net / 2.1e-5, so tiny output noise
        # moves it): modes ~10% too wide and 4% of samples between modes, MMD ratio 3-4 at h = 0.1;
        # with the decay 1.0-1.8 (two seeds). Measured in docs/training.md ("Sample quality on 8gaussians").
        "optimizer": {
            "lr": 1e-3,
            "beta1": 0.9,
            "beta2": 0.999,
            "warmup": 100,
            "grad_clip": 1.0,
            "ema_decay": 0.995,
            "decay_steps": 3000,
            "final_lr_fraction": 0.02,
        },
        "batch_size": 256,
        "steps": 3000,
        "ckpt_every": 500,
        "sample_every": 1000,
        "num_samples": 1000,
    },
    "t6-denoiser-2d": _denoiser_2d(
        "drl:6",
        "density first on 2-D data: the six T6 levels (drl:6) with a bounded-denoiser energy "
        "f = -|y - 1.05 tanh(MLP)|^2 / (2 v_t) trained by DSM on the marginal score, so every level's "
        "exp f is a normalisable density that its progressive sampler draws (issue 16)",
    ),
    "dsm-denoiser-2d": _denoiser_2d(
        "ncsn:12:1.0:0.01",
        "density first on 2-D data: bounded-denoiser energy, DSM on a geometric NCSN ladder "
        "1.0..0.01 (L=12), annealed progressive sampling with MH-corrected steps",
    ),
    "t6-ncsn-denoiser-2d": _denoiser_2d(
        "ncsn:6:1.0:0.03",
        "the shipped 2-D model (checkerboard-t6): six levels on a geometric ladder 1.0..0.03 (ratio 2 between "
        "levels, so each level's sampler starts close to its density), bounded-denoiser energy trained by DSM "
        "on the marginal score; drl:6 jumps from 0.32 to 0.01, too coarse for 2-D data (issue 16)",
    ),
    "t6-digits": {
        **_COMMON,
        "description": "T6 recovery likelihood (K=30) for 8x8 digits; small spectrally normalised WRN",
        "data": "digits",
        "network": _DIGITS_WRN,
        "schedule": "drl:6",
        "objective": {"name": "recovery_likelihood", "num_steps": 30, "output_reg": 0.01},
        "optimizer": _DIGITS_ADAM,
        "batch_size": 64,
        "steps": 4000,
        "ckpt_every": 500,
        "sample_every": 500,
        "num_samples": 64,
    },
    "t1k-digits": {
        **_COMMON,
        "description": "T1k normal approximation (K=0), recovery-likelihood gradient, 8x8 digits",
        "data": "digits",
        "network": _DIGITS_WRN,
        "schedule": "drl:1000",
        "objective": {"name": "normal_approx"},
        "optimizer": _DIGITS_ADAM,
        "batch_size": 64,
        "steps": 20000,
        "ckpt_every": 1000,
        "sample_every": 5000,
        "num_samples": 64,
        "sample": {"inner": "normal", "num_inner_steps": 1, "step_scale": 1.0},
    },
    "dsm-digits": {
        **_COMMON,
        "description": "energy-parameterised denoising score matching (NCSN ladder 1.5..0.05, L=10), 8x8 digits",
        "data": "digits",
        "network": _DIGITS_WRN,
        "schedule": "ncsn:10:1.5:0.05",
        "objective": {"name": "dsm"},
        "optimizer": _DIGITS_ADAM,
        "batch_size": 128,
        "steps": 10000,
        "ckpt_every": 1000,
        "sample_every": 2500,
        "num_samples": 64,
        "sample": {"inner": "langevin", "num_inner_steps": 100, "step_scale": 5.0},
    },
    "dsm-denoiser-digits": {
        **_COMMON,
        "description": "density first: bounded-denoiser energy f = -|y - 1.05 tanh(MLP)|^2 / (2 sigma^2), "
        "DSM on the NCSN ladder 1.5..0.05 (L=10), 8x8 digits (docs/models.md)",
        "data": "digits",
        "network": {"name": "denoiser", "width": 256, "depth": 3, "temb_dim": 32, "activation": "swish"},
        "schedule": "ncsn:10:1.5:0.05",
        "objective": {"name": "dsm"},
        "base_variance": None,
        "optimizer": {**_DIGITS_ADAM, "lr": 1e-3},
        "batch_size": 128,
        "steps": 6000,
        "ckpt_every": 1000,
        "sample_every": 2000,
        "num_samples": 64,
        "sample": {"inner": "langevin", "num_inner_steps": 100, "step_scale": 5.0},
    },
    "t1k-denoiser-digits": {
        **_COMMON,
        "description": "CPU-sized T1k for 8x8 digits: bounded-denoiser energy f = -|y - 1.05 tanh(MLP)|^2 / (2 v_t) "
        "(v_t the level's DSM noise variance), DSM on grad f over the 1000 drl levels "
        "(the paper's other T1k objective, docs/training.md); sampled by the normal approximation",
        "data": "digits",
        "network": {
            "name": "denoiser",
            "width": 256,
            "depth": 3,
            "temb_dim": 32,
            "activation": "swish",
            "variance_schedule": "drl:1000",
        },
        "schedule": "drl:1000",
        "objective": {"name": "dsm"},
        "base_variance": None,
        "optimizer": {**_DIGITS_ADAM, "lr": 1e-3},
        "batch_size": 128,
        "steps": 20000,
        "ckpt_every": 1000,
        "sample_every": 5000,
        "num_samples": 64,
        "sample": {"inner": "normal", "num_inner_steps": 1, "step_scale": 1.0},
    },
    "dsm-conv-photos": {
        **_COMMON,
        "description": "fully convolutional bounded-denoiser energy f = -sum_p (y_p - g_p)^2 / (2 sigma^2) "
        "(g = 1.05 tanh(y + CNN), 8 3x3 convs, 32 channels, receptive field 17), DSM on a "
        "28-level NCSN ladder 1.109..0.0103 with ratio 2^(1/4) (holds sigma 0.196 and 0.392, "
        "i.e. noise 25 and 50 on 0-255), 32x32 crops of the photos set; ~50 min on 2 shared CPU cores",
        "data": "photos",
        "network": {
            "name": "conv_denoiser",
            "num_levels": 28,
            "width": 32,
            "num_blocks": 3,
            "emb_dim": 32,
            "bound": 1.05,
        },
        "schedule": "ncsn:28:1.10919:0.0103051",
        "objective": {"name": "dsm"},
        "base_variance": None,
        "optimizer": {
            "lr": 2e-3,
            "beta1": 0.9,
            "beta2": 0.999,
            "warmup": 100,
            "grad_clip": 1.0,
            "ema_decay": 0.999,
            "decay_steps": 3000,
            "final_lr_fraction": 0.05,
        },
        "batch_size": 16,
        "steps": 3000,
        "ckpt_every": 250,
        "sample_every": 100000,
        "num_samples": 16,
        "sample": {"inner": "langevin", "num_inner_steps": 20, "step_scale": 5.0},
    },
    "short-run-digits": {
        **_COMMON,
        "description": "the paper's T=1, K=180 short-run baseline (recovery likelihood on drl:1), 8x8 digits",
        "data": "digits",
        "network": _DIGITS_WRN,
        "schedule": "drl:1",
        "objective": {"name": "short_run", "num_steps": 180},
        "optimizer": _DIGITS_ADAM,
        "batch_size": 64,
        "steps": 3000,
        "ckpt_every": 500,
        "sample_every": 1000,
        "num_samples": 64,
        "sample": {"inner": "langevin", "num_inner_steps": 180, "step_scale": 1.0},
    },
    "t6-cifar": {
        **_COMMON,
        "description": "the paper's CIFAR-10 T6 setting (N=8, 128/256/256/256, batch 256, Adam 1e-4, 240k steps); GPU",
        "data": None,
        "network": {
            "name": "wrn",
            "width": 128,
            "channel_mults": [1, 2, 2, 2],
            "num_res_blocks": 8,
            "spectral_norm": True,
        },
        "schedule": "drl:6",
        "objective": {"name": "recovery_likelihood", "num_steps": 30},
        "optimizer": {"lr": 1e-4, "beta1": 0.9, "beta2": 0.999, "warmup": 1000, "grad_clip": None, "ema_decay": 0.999},
        "batch_size": 256,
        "steps": 240000,
        "log_every": 100,
        "ckpt_every": 5000,
        "sample_every": 15000,
        "num_samples": 64,
    },
}


def preset_names() -> list[str]:
    return sorted(PRESETS)


def get_preset(name: str) -> dict:
    """A deep copy of preset ``name`` (ValueError listing the presets if unknown)."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; presets: {', '.join(preset_names())}")
    out = copy.deepcopy(PRESETS[name])
    out["preset"] = name
    return out
