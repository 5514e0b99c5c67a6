"""The package version (submodules import it from here, never from the package face)."""

__version__ = "0.2.0"
