"""Variational lower bounds on log p(x) that need no log Z (see docs/likelihood.md).

Both bounds are for the *generative diffusion that uses the energy's gradient as its score*, not
for the EBM's own normalised level-0 density; they coincide when the score is exact.

* :func:`discrete_elbo` (:mod:`.elbo_discrete`; T6, T1k): the bound of the discrete generative
  chain that samples by the normal approximation, levels importance-sampled with a control variate;
* :func:`continuous_elbo` (:mod:`.elbo_continuous`; DSM over a continuum): Huang, Lim & Courville
  (2021)'s bound for the plug-in reverse SDE, divergence by Hutchinson, with a Gaussian decoder.

:func:`elbo` picks one (``method="auto"``: continuous for NCSN schedules). Each module states its
equations.
"""

from __future__ import annotations

from ebm_ppl._jax_utils import rng_key_first
from ebm_ppl.likelihood.common import LikelihoodEstimate
from ebm_ppl.likelihood.elbo_continuous import continuous_elbo
from ebm_ppl.likelihood.elbo_discrete import KERNEL_VARIANCES, discrete_elbo

__all__ = ["elbo", "discrete_elbo", "continuous_elbo", "ELBO_METHODS", "KERNEL_VARIANCES"]

ELBO_METHODS = ("auto", "discrete", "continuous")


def _default_method(energy) -> str:
    name = getattr(energy.schedule, "name", "")
    return "continuous" if name.startswith("ncsn") else "discrete"


@rng_key_first(1)
def elbo(rng_key, energy, x, *, method: str = "auto", **budget) -> LikelihoodEstimate:
    """Per-example lower bounds on log p(x) in data space (nats), with standard errors.

    ``method="discrete"``: the normal-approximation chain's discrete-time bound (:func:`discrete_elbo`);
    ``"continuous"``: Huang et al. (2021)'s bound for the plug-in reverse SDE (:func:`continuous_elbo`);
    ``"auto"``: continuous for NCSN (DSM, continuum of levels) schedules, discrete otherwise.
    ``budget`` goes to the chosen function (``num_samples``, ``chunk``, ``t_min``, ``score``, ...);
    ``reference`` (the interpolated score's Gaussian reference) is dropped for the discrete bound,
    which evaluates the levels only.
    """
    if method not in ELBO_METHODS:
        raise ValueError(f"method must be one of {ELBO_METHODS}, got {method!r}")
    if method == "auto":
        method = _default_method(energy)
    fn = discrete_elbo if method == "discrete" else continuous_elbo
    if method == "discrete":
        budget.pop("reference", None)
    try:
        return fn(rng_key, energy, x, **budget)
    except TypeError as err:
        if "unexpected keyword" in str(err):
            raise ValueError(f"elbo(method={method!r}): {err}") from None
        raise
