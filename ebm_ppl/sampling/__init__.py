"""Samplers for noise-conditional energies."""

from ebm_ppl.sampling import progressive

__all__ = ["progressive"]
