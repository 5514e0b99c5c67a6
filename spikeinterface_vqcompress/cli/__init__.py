"""The ``vqcompress`` command line (:func:`main`); each sub-command family has its own module."""

from spikeinterface_vqcompress.cli.main import main

__all__ = ["main"]
