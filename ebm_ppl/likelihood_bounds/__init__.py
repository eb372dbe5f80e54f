"""Deprecated: moved to :mod:`ebm_ppl.likelihood` (its ODE is an estimate, not a bound).

``ebm_ppl.likelihood_bounds`` and its submodules keep working for one release with a
DeprecationWarning; ``likelihood_bounds.bpd`` is now :mod:`ebm_ppl.likelihood.log_z_free`.
"""

from ebm_ppl._jax_utils import alias_moved_module

_moved = alias_moved_module(
    "ebm_ppl.likelihood_bounds",
    "ebm_ppl.likelihood",
    {name: name for name in ("common", "elbo", "elbo_continuous", "elbo_discrete", "ode")} | {"bpd": "log_z_free"},
)
globals().update({name: getattr(_moved, name) for name in _moved.__all__})
__all__ = list(_moved.__all__)
