"""Deprecated: moved to :mod:`ebm_ppl.energy.network_energy` (beside :mod:`ebm_ppl.energy.networks`,
the Flax modules). Works for one release with a DeprecationWarning."""

from ebm_ppl._jax_utils import alias_moved_module

_moved = alias_moved_module("ebm_ppl.energy.network", "ebm_ppl.energy.network_energy")
NetworkEnergy = _moved.NetworkEnergy
__all__ = ["NetworkEnergy"]
