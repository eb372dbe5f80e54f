"""``EBMPrior``: a learned (or analytic) noise-conditional energy as a normalised NumPyro density.

At level t the distribution is over the level's own variable x_t (data space at t = 0), related to
the model space of the energy by y_t = c_t x_t (c_0 = a = sqrt(1 - sigma_1^2), c_t = model_scales[t],
c_T = 1). By change of variable

    log p(x_t) = f(c_t x_t, t) - log Z_t + D log c_t.

See docs/logz.md for the derivation and docs/numpyro.md for usage.
"""

from __future__ import annotations

import math
import os

import jax
import jax.numpy as jnp
import numpy as np
from numpyro.distributions import Distribution, constraints

from ebm_ppl import checkpoint
from ebm_ppl.energy.base import level_scale, logdensity_fn
from ebm_ppl.energy.protocol import ExactSampler, KnownMoments, LoadedFromCheckpoint, check_energy

__all__ = ["EBMPrior", "MissingLogZError"]


class MissingLogZError(ValueError):
    """``log_prob`` was asked for but no log Z is known for the level."""


def _missing_message(source, level):
    where = source if isinstance(source, str) else "CKPT"
    return (
        f"no log Z is known for level {level} of this energy, so log_prob cannot be normalised. "
        f"Inside a NumPyro model run only by MCMC (NUTS, HMC: they need the density up to a constant), "
        f"pass `EBMPrior(..., log_z=0.0)`. For a normalised density store an estimate with "
        f"`ebm-ppl logz {where} --level {level} --write`, or in Python "
        f"`est = ebm_ppl.logz.ais(energy, jax.random.key(0), level={level})` and pass `EBMPrior(..., log_z=est)`; "
        f"unnormalized_log_prob(x) needs no log Z."
    )


class _Record:
    """Holds a value in a pytree's static data: compared and hashed by identity (the value, a dict
    or a dataclass, need not be hashable)."""

    __slots__ = ("value",)

    def __init__(self, value):
        self.value = value


class EBMPrior(Distribution):
    """A noise-conditional energy at one level as a NumPyro distribution.

    Args:
      ckpt_or_energy: a checkpoint folder (read now, as :meth:`from_checkpoint`), a bound energy
        loaded from one (``ebm_ppl.load(path)`` carries the folder's card: evaluation level, sampler
        settings, stored log Z), or any bound energy (``GaussianOracle``, ``MixtureOracle``, ...).
        Given an energy the constructor reads no file.
      noise_level: the level t (0 = the data); the variable is x_t with y_t = c_t x_t. ``None``
        (default): the level the model card chose on validation (``figures.json``'s
        ``evaluation_level``, see :func:`ebm_ppl.checkpoint.evaluation_level`) for a checkpoint,
        0 for any other energy. Which level is a density worth using is a property of the model:
        docs/models.md lists each shipped model's level and why.
      log_z: ``"cached"`` (the checkpoint's stored estimate for the level, or the energy's exact
        ``log_z(t)``), a float (``0.0`` is fine for MCMC-only use), or a
        :class:`ebm_ppl.logz.LogZEstimate` for this level.
      sampler: how ``sample`` draws: ``"auto"`` (exact for oracles that have ``sample``,
        progressive otherwise), ``"exact"`` or ``"progressive"``.
      progressive_kwargs: options of :func:`ebm_ppl.sampling.progressive.sample` (``inner``,
        ``num_inner_steps``, ``step_scale``, ...). ``None`` (default): the checkpoint's
        own sampler settings (``config.json``'s ``sampling``, e.g. one normal-approximation draw
        per level for a T1k model, see :func:`ebm_ppl.checkpoint.sampler_settings`), else the
        progressive sampler's defaults.

    ``sample`` draws x_t: exactly for oracles; for networks by progressive sampling (Gao et al.
    Alg. 2) from N(0, I) at level T down to level t with the settings above. ``log_prob`` is
    normalised; ``unnormalized_log_prob`` drops log Z. ``log_z_stderr`` holds the uncertainty of
    an estimated log Z (0 when exact) and ``log_z_reliable`` whether that estimate passed the
    importance-weight checks (docs/logz.md, "When is a log Z estimate reliable").
    """

    pytree_data_fields = ("energy", "_log_z")
    pytree_aux_fields = (
        "noise_level",
        "_log_z_record",
        "log_z_stderr",
        "log_z_reliable",
        "sampler",
        "_progressive",
        "source",
        "_scale",
    )

    def __init__(
        self,
        ckpt_or_energy,
        noise_level: int | None = None,
        log_z="cached",
        *,
        sampler: str = "auto",
        progressive_kwargs: dict | None = None,
        validate_args=None,
    ):
        energy = ckpt_or_energy
        if isinstance(ckpt_or_energy, (str, os.PathLike)):  # the only file access: a path is read here
            energy = checkpoint.load(os.fspath(ckpt_or_energy))
        check_energy(energy, "EBMPrior (a checkpoint path or a noise-conditional energy)")
        card = energy.checkpoint_card if isinstance(energy, LoadedFromCheckpoint) else None
        source = None if card is None else card.path
        T = energy.num_levels
        if noise_level is None:
            noise_level = 0 if card is None else card.evaluation_level
        if isinstance(noise_level, bool) or int(noise_level) != noise_level or not 0 <= int(noise_level) <= T:
            raise ValueError(f"noise_level must be an integer in 0..{T}, got {noise_level!r}")
        noise_level = int(noise_level)
        if sampler not in ("auto", "exact", "progressive"):
            raise ValueError(f"sampler must be 'auto', 'exact' or 'progressive', got {sampler!r}")
        if sampler == "exact" and not isinstance(energy, ExactSampler):
            raise ValueError("sampler='exact' needs an energy with an exact .sample (an oracle)")
        if progressive_kwargs is None and card is not None:
            progressive_kwargs = card.sampler_settings
        self.energy = energy
        self.noise_level = noise_level
        self.source = source
        self.sampler = sampler
        self._progressive = tuple(sorted((progressive_kwargs or {}).items()))
        self._scale = level_scale(energy, noise_level)
        value, stderr, reliable, info = self._resolve_log_z(log_z, card)
        self._log_z_record = _Record(info)
        self._log_z = None if value is None else jnp.asarray(value, jnp.float32)
        self.log_z_stderr = stderr
        self.log_z_reliable = reliable
        super().__init__(batch_shape=(), event_shape=tuple(energy.data_shape), validate_args=validate_args)

    @classmethod
    def from_checkpoint(cls, path, noise_level: int | None = None, log_z="cached", **kwargs) -> EBMPrior:
        """Read a checkpoint folder (:func:`ebm_ppl.checkpoint.load`: weights and card) and build its
        prior: the energy at the card's evaluation level (or ``noise_level``), normalised by the
        stored log Z of that level, sampled with the checkpoint's own settings. ``EBMPrior(path)``
        is the same call."""
        return cls(checkpoint.load(os.fspath(path)), noise_level, log_z, **kwargs)

    # -- log Z ------------------------------------------------------------------------------------
    def _resolve_log_z(self, log_z, card):
        """(value, stderr, reliable, info) of the log Z to use, info being the estimate's record
        (None when exact or given as a number); an unreliable estimate warns once here."""
        from ebm_ppl.logz import LogZEstimate, check_reliability  # lazy: keeps `import ebm_ppl` light

        t = self.noise_level
        where = f"EBMPrior({self.source or type(self.energy).__name__}, noise_level={t})"
        if isinstance(log_z, LogZEstimate):
            if log_z.level != t:
                try:
                    log_z = log_z.at_level(t)
                except KeyError:
                    raise ValueError(
                        f"the LogZEstimate is for level {log_z.level}, this prior is at level {t}"
                    ) from None
            return float(log_z.log_z), float(log_z.stderr), check_reliability(log_z, where), log_z
        if isinstance(log_z, dict) and "log_z" in log_z:
            stderr = float(log_z.get("stderr") or 0.0)
            return float(log_z["log_z"]), stderr, check_reliability(log_z, where), log_z
        if isinstance(log_z, str):
            if log_z != "cached":
                raise ValueError(f"log_z must be 'cached', a float or a LogZEstimate, got {log_z!r}")
            exact = self.energy.log_z(t)
            if exact is not None:
                return float(exact), 0.0, True, None
            entry = None if card is None else card.log_z(t)
            if entry is not None:
                reliable = check_reliability(entry, where)
                return float(entry["log_z"]), float(entry.get("stderr") or 0.0), reliable, entry
            return None, None, None, None
        if log_z is None:
            return None, None, None, None
        value = float(log_z)
        if not math.isfinite(value):
            raise ValueError(f"log_z must be finite, got {value}")
        return value, 0.0, True, None

    @property
    def log_z(self):
        """log Z_t of the energy at the level (model space), or None when unknown."""
        return self._log_z

    @property
    def log_z_info(self):
        """The record of an estimated log Z (the :class:`~ebm_ppl.logz.LogZEstimate` or the stored
        entry's dict, with its stderr, ESS and k-hat), None when exact, given as a number or unknown."""
        return self._log_z_record.value

    @property
    def has_log_z(self) -> bool:
        return self._log_z is not None

    # -- NumPyro interface ------------------------------------------------------------------------
    @constraints.dependent_property(is_discrete=False, event_dim=0)
    def support(self):
        return constraints.independent(constraints.real, len(self.event_shape))

    @property
    def scale(self) -> float:
        """c_t: model space y_t = c_t x."""
        return self._scale

    def unnormalized_log_prob(self, x):
        """f(c_t x, t) + D log c_t: log_prob without log Z, shape batch."""
        return logdensity_fn(self.energy, self.noise_level)(jnp.asarray(x))

    def log_prob(self, x):
        """Normalised log density of x at the level, shape ``batch`` for x of shape (*batch, *event)."""
        if self._log_z is None:
            raise MissingLogZError(_missing_message(self.source, self.noise_level))
        if self._validate_args:
            self._check_finite(x)
        return self.unnormalized_log_prob(x) - self._log_z

    def _check_finite(self, x):
        """validate_args: NaN/inf in a concrete x is an error (the shape is checked by the energy)."""
        if isinstance(x, jax.core.Tracer):
            return
        a = np.asarray(x)
        if not np.all(np.isfinite(a)):
            raise ValueError(
                f"EBMPrior.log_prob: x has {int(np.size(a) - np.isfinite(a).sum())} NaN or infinite "
                f"values (validate_args=True)"
            )

    def entropy(self):
        raise NotImplementedError(
            "the entropy of a learned energy has no closed form: estimate it as -mean(log_prob(samples)) "
            "from prior.sample(key, (n,)) (needs a stored log Z)"
        )

    def cdf(self, value):
        raise NotImplementedError(
            "an energy-based prior over images has no cumulative distribution function "
            "(there is no ordering of multivariate values); use log_prob or samples"
        )

    def icdf(self, q):
        raise NotImplementedError("an energy-based prior has no inverse CDF; draw with sample(key, shape)")

    def sample(self, key, sample_shape=()):
        sample_shape = tuple(sample_shape)
        n = int(math.prod(sample_shape))
        t, T = self.noise_level, self.energy.num_levels
        shape = tuple(self.energy.data_shape)
        use_exact = self.sampler == "exact" or (self.sampler == "auto" and isinstance(self.energy, ExactSampler))
        if t == T:
            x = jax.random.normal(key, (n,) + shape)
        elif use_exact:
            x = self.energy.sample(key, n, t) / self._scale
        else:
            x = _progressive_to_level(self.energy, key, n, t, dict(self._progressive))
        return x.reshape(sample_shape + shape)

    @property
    def progressive_kwargs(self) -> dict:
        """The options :meth:`sample` passes to :func:`ebm_ppl.sampling.progressive.sample` (the
        constructor's ``progressive_kwargs``, else the checkpoint card's sampler settings)."""
        return dict(self._progressive)

    @property
    def mean(self):
        if isinstance(self.energy, KnownMoments):
            return self.energy.mean(self.noise_level) / self._scale
        raise NotImplementedError("the mean of a learned energy is not known in closed form; sample it")

    @property
    def variance(self):
        if isinstance(self.energy, KnownMoments):
            return (jnp.diagonal(self.energy.covariance(self.noise_level)) / self._scale**2).reshape(self.event_shape)
        raise NotImplementedError("the variance of a learned energy is not known in closed form; sample it")

    def __repr__(self):
        lz = "unknown" if self._log_z is None else f"{float(self._log_z):.4f}"
        return f"EBMPrior({self.energy!r}, noise_level={self.noise_level}, log_z={lz})"


def _progressive_to_level(energy, key, n, level, kwargs):
    """Progressive samples of x_level (the level's own variable), shape (n, *data_shape).

    ``kwargs``: options of :func:`ebm_ppl.sampling.progressive.sample` (``inner``,
    ``num_inner_steps``, ``step_scale``, ``step_sizes``, ``start``, ...); without them its defaults
    (MALA, tuned steps). Compiled once per shapes and settings, the tuned steps cached per energy."""
    from ebm_ppl.sampling import progressive  # lazy: keeps `import ebm_ppl` light

    return progressive.sample(key, energy, n, level=level, **kwargs)
