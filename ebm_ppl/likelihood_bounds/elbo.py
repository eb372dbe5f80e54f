"""Variational lower bounds on log p(x) that need no log Z (see docs/likelihood.md).

Both bounds are for the *generative diffusion that uses the energy's gradient as its score*, not
for the EBM's own normalised level-0 density; they coincide when the score is exact.

Discrete time (``method="discrete"``; T6, T1k)
----------------------------------------------
Generative chain: ``x_T ~ N(0, I)``, then for ``t = T-1, ..., 0`` the T1k sampler

    y_t | x_{t+1} ~ N(x_{t+1} + sigma_{t+1}^2 grad f(x_{t+1}, t), sigma_{t+1}^2 I),   x_t = y_t / alpha_{t+1},

and ``x_0`` is the data. With the forward posterior ``q(y_t | x_{t+1}, x_0)`` (``y_t = alpha_{t+1} x_t``)
of mean ``x_{t+1} - sigma_{t+1}^2 e / sbar_{t+1}`` and variance ``r_t sigma_{t+1}^2``,
``r_t = 1 - sigma_{t+1}^2 / sbar_{t+1}^2``, where ``x_{t+1} = abar_{t+1} x_0 + sbar_{t+1} e``:

    log p(x_0) >= E_q log N(x_T; 0, I) + H[q(x_T | x_0)]                         (prior)
                  - sum_{t=1}^{T-1} D/2 (r_t - 1 - log r_t)                          (variances)
                  + D log alpha_1 - D/2 log(2 pi sigma_1^2)                          (decoder, data space)
                  - sum_{t=0}^{T-1} sigma_{t+1}^2 / 2  E_e |e / sbar_{t+1} + grad f(x_{t+1}, t)|^2.

The last sum (the only random part) is estimated by importance-sampling the level ``t`` with a
proposal proportional to its size under a Gaussian model of the data, and a control variate
``c_t (|e|^2 - D) / sbar^2`` (zero mean) that removes most of the noise at small ``sbar``.

Continuous time (``method="continuous"``; DSM over a continuum, Huang, Lim & Courville 2021)
---------------------------------------------------------------------------------------------
For the plug-in reverse SDE of the VP SDE (clock ``u``, see :mod:`.common`), the bound of their
Theorem (the implicit score-matching form, equal to Song et al. 2021's L^SM):

    log p(x_0) >= E log N(x(u_T); 0, I) - int_{u_min}^{u_T} E[ |s|^2 / 2 + div s + D / 2 ] du
                  + [decoder from u_min]

with ``x(u) = abar(u) x_0 + sbar(u) e``, ``div s`` by Hutchinson (Rademacher probe ``v``,
``v . (ds/dx) v``), ``u`` importance-sampled, and the explicit smallest time ``u_min`` handled by the
Gaussian decoder ``N(x_0; (x + sbar^2 s)/abar, sbar^2/abar^2)``, which contributes
``D log abar + (|e|^2 - |e + sbar s|^2)/2`` (zero when ``u_min = 0``: level 0 is the data).

The discrete bound lives in :mod:`.elbo_discrete`, the continuous one in :mod:`.elbo_continuous`;
:func:`elbo` picks one.
"""

from __future__ import annotations

from ebm_ppl.likelihood_bounds.common import LikelihoodEstimate
from ebm_ppl.likelihood_bounds.elbo_continuous import continuous_elbo
from ebm_ppl.likelihood_bounds.elbo_discrete import KERNEL_VARIANCES, discrete_elbo

__all__ = ["elbo", "discrete_elbo", "continuous_elbo", "ELBO_METHODS", "KERNEL_VARIANCES"]

ELBO_METHODS = ("auto", "discrete", "continuous")


def _default_method(energy) -> str:
    name = getattr(energy.schedule, "name", "")
    return "continuous" if name.startswith("ncsn") else "discrete"


def elbo(energy, key, x, *, method: str = "auto", **budget) -> LikelihoodEstimate:
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
        return fn(energy, key, x, **budget)
    except TypeError as err:
        if "unexpected keyword" in str(err):
            raise ValueError(f"elbo(method={method!r}): {err}") from None
        raise
