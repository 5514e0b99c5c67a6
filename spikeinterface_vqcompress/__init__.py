"""spikeinterface-vqcompress: compression of extracellular recordings as SpikeInterface steps.

Compress any recording SpikeInterface reads with a registered codec or a preset (``archive``,
``storage``, ``implant``), rebuild it lazily from the real compressed bytes, sort it and measure
what the compression cost against ground truth.

Two layers. :mod:`spikeinterface_vqcompress.core` (codecs, registry, container, entropy coding,
weights, hardware model) needs only numpy, torch and numba and imports without SpikeInterface.
The plugin layer (:mod:`.recording`, :mod:`.readers`, :mod:`.extension`, :mod:`.esort`,
:mod:`.evaluation`, :mod:`.study`, :mod:`.cli`) needs SpikeInterface; when it is installed,
importing this package registers ``compress``, ``compressed_waveforms`` and the ``esort`` sorter
with SpikeInterface (:mod:`.plugin`).
"""

from spikeinterface_vqcompress._version import __version__
from spikeinterface_vqcompress.core.codec import Codec, HardwareProfile
from spikeinterface_vqcompress.core.errors import CodecError, CorruptDataError, ModelMismatchError
from spikeinterface_vqcompress.core.registry import available_codecs, available_presets, get_codec, register_codec

#: Names of the plugin layer served by this package (they need SpikeInterface): name -> module.
_PLUGIN_NAMES = {
    "CompressedRecording": "spikeinterface_vqcompress.recording",
    "ContainerRecording": "spikeinterface_vqcompress.recording",
    "compress": "spikeinterface_vqcompress.recording",
    "read_compressed": "spikeinterface_vqcompress.recording",
    "write_compressed": "spikeinterface_vqcompress.recording",
    "load_recording": "spikeinterface_vqcompress.readers",
    "compute_compressed_waveforms": "spikeinterface_vqcompress.extension",
}

try:
    import spikeinterface  # noqa: F401
except ImportError as error:  # the core still works
    _SPIKEINTERFACE_ERROR = error
else:
    _SPIKEINTERFACE_ERROR = None
    from spikeinterface_vqcompress import plugin  # noqa: F401  (registers with SpikeInterface)


def __getattr__(name):
    if name in _PLUGIN_NAMES:
        if _SPIKEINTERFACE_ERROR is not None:
            raise ImportError(
                f"spikeinterface_vqcompress.{name} needs SpikeInterface, which could not be imported "
                f"({_SPIKEINTERFACE_ERROR}); install it with `pip install spikeinterface`, or use the core "
                "(spikeinterface_vqcompress.get_codec) on numpy arrays"
            ) from _SPIKEINTERFACE_ERROR
        import importlib

        return getattr(importlib.import_module(_PLUGIN_NAMES[name]), name)
    raise AttributeError(f"module 'spikeinterface_vqcompress' has no attribute {name!r}")


__all__ = [
    "__version__",
    "Codec",
    "CodecError",
    "CorruptDataError",
    "ModelMismatchError",
    "HardwareProfile",
    "available_codecs",
    "available_presets",
    "get_codec",
    "register_codec",
    *_PLUGIN_NAMES,
]
