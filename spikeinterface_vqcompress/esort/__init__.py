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

from spikeinterface_vqcompress.esort.model import ESortNet, geometry_fingerprint, resolve_device
from spikeinterface_vqcompress.esort.postprocessing import detect_spikes, pick_peaks, smooth_probabilities, triangular_kernel

__all__ = ["ESortNet", "geometry_fingerprint", "resolve_device", "detect_spikes", "pick_peaks",
           "smooth_probabilities", "triangular_kernel"]
