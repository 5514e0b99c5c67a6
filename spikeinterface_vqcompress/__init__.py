"""spikeinterface-vqcompress: compression of extracellular recordings as SpikeInterface steps.

Compress any recording SpikeInterface reads with a registered codec, rebuild it lazily from the real
compressed bytes, sort it and measure what the compression cost against ground truth.
"""

__version__ = "0.1.0"

from .codecs import (  # noqa: E402
    Codec,
    CodecError,
    CorruptDataError,
    HardwareProfile,
    available_codecs,
    get_codec,
    register_codec,
)
from .preprocessing import (  # noqa: E402
    CompressedRecording,
    ContainerRecording,
    compress,
    read_compressed,
    write_compressed,
)


def _register_with_spikeinterface():
    """Make SpikeInterface's preprocessing pipeline know ``compress`` (idempotent)."""
    from spikeinterface.preprocessing import pipeline, preprocessing_classes

    pipeline.pp_names_to_functions["compress"] = compress
    preprocessing_classes.preprocessor_dict["CompressedRecording"] = compress
    preprocessing_classes._all_preprocesser_dict[CompressedRecording] = compress


_register_with_spikeinterface()
from .spikecae.extension import ComputeCompressedWaveforms, compute_compressed_waveforms  # noqa: E402,F401  registers "compressed_waveforms"
from .esort import sorter as _esort_sorter  # noqa: E402,F401  registers the "esort" sorter

__all__ = [
    "__version__",
    "Codec",
    "CodecError",
    "CorruptDataError",
    "HardwareProfile",
    "available_codecs",
    "get_codec",
    "register_codec",
    "CompressedRecording",
    "ContainerRecording",
    "compress",
    "read_compressed",
    "write_compressed",
]
