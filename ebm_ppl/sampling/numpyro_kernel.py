"""``ProgressiveKernel``: the progressive diffusion-recovery sampler as a NumPyro ``MCMCKernel``.

    MCMC(ProgressiveKernel(model), num_warmup=0, num_samples=N).run(key, *args)

runs on a NumPyro model whose one latent site is an :class:`ebm_ppl.distribution.EBMPrior`
(any number of observed sites; deterministic sites allowed). Each MCMC sample is one full
progressive descent from x_T ~ N(0, I) down to that site's noise level, so samples are
independent (there is no warm-up to do). The observed sites enter every level as the extra
log-likelihood term ``log_likelihood_fn(x_t, t)``: their log probability with the prior site set
to x_t (the site's own data-space variable at level t). That is exact at the final level and a
guide above it (as NCSN's inpainting); see docs/sampling.md.
"""

from __future__ import annotations

from typing import NamedTuple

import jax
import jax.numpy as jnp
from numpyro.infer.mcmc import MCMCKernel

from ebm_ppl.distribution import EBMPrior
from ebm_ppl.sampling import progressive

__all__ = ["ProgressiveKernel", "ProgressiveKernelState"]


class ProgressiveKernelState(NamedTuple):
    """z: {site: x} (the sample); rng_key; acceptance_rate (mean over levels and inner steps);
    log_density: the conditional log density at the final level."""

    z: dict
    rng_key: jax.Array
    acceptance_rate: jax.Array
    log_density: jax.Array


def _find_prior_site(model, model_args, model_kwargs, key):
    from numpyro import handlers

    tr = handlers.trace(handlers.seed(model, key)).get_trace(*model_args, **model_kwargs)
    priors = [
        n for n, s in tr.items() if s["type"] == "sample" and isinstance(s["fn"], EBMPrior) and not s["is_observed"]
    ]
    others = [n for n, s in tr.items() if s["type"] == "sample" and not s["is_observed"] and n not in priors]
    if len(priors) != 1 or others:
        raise ValueError(
            "ProgressiveKernel needs a model whose only latent site is one EBMPrior; found EBMPrior "
            f"sites {priors} and other latent sites {others} (use ebm_ppl.sampling.hmc for general models)"
        )
    return priors[0], tr[priors[0]]["fn"]


class ProgressiveKernel(MCMCKernel):
    """NumPyro kernel: one progressive descent per sample on the model's EBMPrior site.

    Args:
      model: a NumPyro model with one latent ``EBMPrior`` site.
      inner, num_inner_steps, step_sizes, num_integration_steps, start: as in
        :func:`ebm_ppl.sampling.progressive.build_kernel`; MH inner samplers without
        ``step_sizes`` are tuned at ``init`` on a pilot (``tune_kwargs``).
    """

    sample_field = "z"

    def __init__(
        self,
        model,
        *,
        inner: str = "mala",
        num_inner_steps: int = 10,
        step_sizes=None,
        num_integration_steps: int = 2,
        start: str = "x_next",
        tune_kwargs: dict | None = None,
    ):
        if inner not in progressive.INNER_SAMPLERS:
            raise ValueError(f"unknown inner sampler {inner!r}; choose one of {progressive.INNER_SAMPLERS}")
        self._model = model
        self.inner, self.num_inner_steps, self.start = inner, num_inner_steps, start
        self.step_sizes = step_sizes
        self.num_integration_steps = num_integration_steps
        self.tune_kwargs = dict(tune_kwargs or {})
        self._site = self._prior = self._descend = None

    @property
    def model(self):
        return self._model

    @property
    def default_fields(self):
        return ("z",)

    def _log_likelihood_fn(self, model_args, model_kwargs):
        from numpyro import handlers

        site, model = self._site, self._model

        def log_likelihood(x_t, t):
            tr = handlers.trace(
                handlers.substitute(handlers.seed(model, jax.random.key(0)), data={site: x_t})
            ).get_trace(*model_args, **model_kwargs)
            total = jnp.zeros(())
            for s in tr.values():
                if s["type"] == "sample" and s["is_observed"]:
                    total = total + jnp.sum(s["fn"].log_prob(s["value"]))
            return total

        return log_likelihood

    def init(self, rng_key, num_warmup, init_params, model_args, model_kwargs):
        model_kwargs = model_kwargs or {}
        k_trace, k_tune, k_state = jax.random.split(rng_key, 3)
        self._site, self._prior = _find_prior_site(self._model, model_args, model_kwargs, k_trace)
        energy, level = self._prior.energy, self._prior.noise_level
        loglik = self._log_likelihood_fn(model_args, model_kwargs)
        has_obs = True
        steps = self.step_sizes
        if steps is None and self.inner in progressive.MH_SAMPLERS:
            steps, _ = progressive.tune_step_sizes(
                k_tune,
                energy,
                self.inner,
                num_inner_steps=self.num_inner_steps,
                num_integration_steps=self.num_integration_steps,
                log_likelihood_fn=loglik if has_obs else None,
                start=self.start,
                **self.tune_kwargs,
            )
        elif steps is None and self.inner != "normal":
            steps = progressive.default_step_sizes(energy, self.inner)
        steps = None if steps is None else jnp.asarray(steps, jnp.float32)
        self.step_sizes = steps
        kernel = progressive.build_kernel(
            self.inner,
            self.num_inner_steps,
            num_integration_steps=self.num_integration_steps,
            log_likelihood_fn=loglik,
            start=self.start,
        )
        num_steps = energy.num_levels - level

        def descend(key):
            k0, k1 = jax.random.split(key)
            state = progressive.init(jax.random.normal(k0, tuple(energy.data_shape)), energy)

            def body(state, k):
                state, info = kernel(k, state, energy, steps)
                return state, info

            state, info = jax.lax.scan(body, state, jax.random.split(k1, num_steps))
            return state.position, jnp.mean(info.acceptance_rate), info.log_density[-1]

        self._descend = descend
        x, acc, logd = descend(k_state)
        return ProgressiveKernelState({self._site: x}, k_state, acc, logd)

    def sample(self, state, model_args, model_kwargs):
        rng_key, k = jax.random.split(state.rng_key)
        x, acc, logd = self._descend(k)
        return ProgressiveKernelState({self._site: x}, rng_key, acc, logd)

    def get_diagnostics_str(self, state):
        return f"acc. prob={float(state.acceptance_rate):.2f}"
