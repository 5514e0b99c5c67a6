"""Spike-snippet VQ compressive autoencoder (Wu et al. 2018) and the ``spike-cae`` recording codec.

- :mod:`.detection`: the implant-side encoder front end (running noise level, threshold,
  locally exclusive troughs on the probe geometry, snippet extraction), streaming.
- :mod:`.background`: noise statistics sent instead of the samples between spikes, and the
  decoder's synthesis of that background.
- :mod:`.codec`: the ``spike-cae`` codec registered in the codec registry.
- :mod:`.model`, :mod:`.training`: the autoencoder and its training (they import torch; loaded on
  first use).
"""

from .background import BackgroundModel, estimate_background, synthesise_background
from .codec import SpikeCAECodec
from .detection import DetectionParameters, StreamingSpikeDetector, detect_troughs, extract_snippets, neighbour_order

_LAZY = {
    "SpikeCAE": "model",
    "load_spike_cae": "model",
    "available_spike_cae_models": "model",
    "model_sha256": "model",
    "train_spike_cae": "training",
}


def __getattr__(name):
    if name in _LAZY:
        import importlib

        module = importlib.import_module(f"{__name__}.{_LAZY[name]}")
        return getattr(module, name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


__all__ = [
    "BackgroundModel",
    "DetectionParameters",
    "SpikeCAECodec",
    "StreamingSpikeDetector",
    "detect_troughs",
    "estimate_background",
    "extract_snippets",
    "neighbour_order",
    "synthesise_background",
    *_LAZY,
]
