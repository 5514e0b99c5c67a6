"""The ``vqcompress`` command line (:func:`main`); each sub-command family has its own module."""

from spikeinterface_vqcompress.cli.main import main, parse_codec_argument

__all__ = ["main", "parse_codec_argument"]
