"""The package version (one place: the root and checkpoint configs read it here)."""

__version__ = "0.1.0"
