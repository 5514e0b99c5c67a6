"""Compressors behind one interface (:class:`Codec`) and a registry by name."""

from .base import (
    Codec,
    CodecError,
    CorruptDataError,
    HardwareProfile,
    available_codecs,
    get_codec,
    get_codec_class,
    register_codec,
)
from . import classic  # noqa: F401  (registers the baselines)
from . import vqcae_hybrid  # noqa: F401  (registers vqcae-hybrid; weights load on first use)
from .. import broadband  # noqa: F401  (registers broadband: lossless / near-lossless)
from ..spikecae import codec as _spike_cae_codec  # noqa: F401,E402  (registers spike-cae; the CAE loads on first use)
from .classic import BitTruncationCodec, FlacCodec, WavPackCodec, ZstdCodec
