"""E-Sort: an end-to-end neural-network spike sorter, as the SpikeInterface sorter ``esort``.

After Han & Wang (arXiv 2409.13067), rebuilt from the paper's description: a per-channel temporal
MLP shared by every channel, a spatial layer over all channels and one sigmoid output per unit,
pretrained on simulated MEArec recordings and fine-tuned on a few labelled spikes per unit.

- :mod:`.model`: the network and backbone files (pure torch);
- :mod:`.training`: training sets with masked labels, fine-tuning and multi-probe pretraining;
- :mod:`.postprocessing`: smoothing + threshold + local-maximum peak picking, streamed in chunks;
- :mod:`.core`: the steps on SpikeInterface recordings;
- :mod:`.sorter`: ``ESortSorter`` (``run_sorter("esort", recording)``);
- :mod:`.pretraining`: how the shipped backbone is made (``vqcompress train esort``).
"""

_LAZY = {
    "ESortNet": "spikeinterface_vqcompress.esort.model",
    "geometry_fingerprint": "spikeinterface_vqcompress.esort.model",
    "resolve_device": "spikeinterface_vqcompress.esort.model",
    "detect_spikes": "spikeinterface_vqcompress.esort.postprocessing",
    "pick_peaks": "spikeinterface_vqcompress.esort.postprocessing",
    "smooth_probabilities": "spikeinterface_vqcompress.esort.postprocessing",
    "triangular_kernel": "spikeinterface_vqcompress.esort.postprocessing",
}


def __getattr__(name):
    # torch is imported when a model or the post-processing is first used, not by registering the sorter
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'spikeinterface_vqcompress.esort' has no attribute {name!r}")


__all__ = list(_LAZY)
