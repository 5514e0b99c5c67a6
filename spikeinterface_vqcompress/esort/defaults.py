"""E-Sort's default sorting settings, each chosen on a tuning recording (no dependency, so that the
sorter, the core functions and the post-processing share one value without importing torch)."""

#: Minimum smoothed probability of a spike. Chosen on the tuning recording
#: (``benchmarks/esort_finetune.py``, ``benchmarks/results/esort_backbone_threshold.md``): with a few
#: labelled spikes per unit the network is under-confident, and 0.5 missed 2-4% of the spikes at a
#: precision of 0.999; 0.25 had the best mean accuracy over N = 5, 9, 10, 15, with and without the
#: pretrained backbone.
DEFAULT_THRESHOLD = 0.25

#: The sorter's amplitude gate (noise units), its half-width (samples) and the crossings that open
#: it, chosen on two training recordings (Neuronexus-32 seed 201, Neuropixels-64 seed 202) by
#: ``benchmarks/esort_gate.py`` (``benchmarks/results/esort_gate.md``): 4 noise units below zero
#: ("neg") runs 15-16% of the windows (26-29% with "both", which also opens on positive noise and
#: spike lobes) at the ungated accuracy (-0.001 on Neuronexus-32), 1.8-2x faster than "both"; a
#: 5-unit gate starts losing spikes, 6 loses units.
DEFAULT_GATE_THRESHOLD = 4.0
DEFAULT_GATE_MARGIN_SAMPLES = 8
DEFAULT_GATE_PEAK_SIGN = "neg"

#: Synthetic windows per real window in each fine-tuning batch (a unit's mean labelled waveform on a
#: random background window, ``training.TrainingSet.synthetic``). Chosen on the tuning recording
#: (``benchmarks/esort_finetune.py --experiment synthetic``, ``benchmarks/results/esort_synthetic.md``):
#: 1.0 raised the accuracy at every N, most with few labels, for the pretrained and the random backbone.
DEFAULT_SYNTHETIC_FRACTION = 1.0

#: Fine-tuning budget: at most this many optimiser steps (batches), whatever the number of labels
#: (None: every epoch runs to its end, as before issue 31: ~17 600 steps, 4 minutes, on 3000 labelled
#: spikes). Chosen on the tuning recording (``benchmarks/esort_budget.py``,
#: ``benchmarks/results/esort_budget.md``, Neuronexus-32 templates seed 8): 600 steps stayed within
#: 0.01 of 60 full epochs with every label source (ground truth, tridesclous2 or spykingcircus2 on
#: 10, 20 or 60 s) in 7-11 s of fine-tuning instead of 24-320 s; 300 lost 0.03 on spykingcircus2's
#: 10-s labels; capping the windows of each unit at 100 or 30 spikes lost up to 0.03 and gained nothing.
DEFAULT_MAX_STEPS = 600
#: Labelled spikes of each unit that make training windows (None: every one, up to 3000 in all).
DEFAULT_MAX_SPIKES_PER_UNIT = None

#: The label sorter and the seconds at the start it labels (real-data mode). Chosen on the same tuning
#: recording: spykingcircus2 on the first 10 s labels in ~4 s, and E-Sort fine-tuned on it (600 steps)
#: scored 0.913 against 0.914 with 60 epochs, where tridesclous2 on 10 s gave 0.807 and on 20 s 0.882.
DEFAULT_LABEL_SORTER = "spykingcircus2"
DEFAULT_LABEL_DURATION_S = 10.0

#: Local inference radius (um): each gated window through the spatial layer of the channels within it
#: of its centre channel, the others at their noise mean (``esort/local.py``). Chosen on the tuning
#: recordings (``benchmarks/esort_inference.py``, ``benchmarks/results/esort_inference.md``,
#: Neuronexus-32 templates seed 8 and Neuropixels-64 templates seed 102): the smallest radius within
#: 0.005 of the whole network's accuracy on both (50 um lost 0.03-0.09, 75 um 0.01-0.016).
DEFAULT_SPATIAL_RADIUS_UM = 100.0

#: ``stride="auto"``: the network runs every ``floor(AUTO_STRIDE_MS * fs)`` samples, at most
#: ``MAX_AUTO_STRIDE`` (4 at 32 kHz, 3 at 25-30 kHz, 2 at 20 kHz): spike times to 0.125 ms or better.
#: The label tolerance (+/-5 samples) makes a spike's probability plateau ~11 samples wide, so 4 still
#: samples it two or three times. Chosen on the tuning recordings (``benchmarks/esort_inference.py``,
#: ``benchmarks/results/esort_inference.md``, 32 kHz): 4 against 2 moved accuracy by -0.002 to +0.002
#: with and without the band-pass and local inference, and made the sorting stage 1.3-1.9x faster
#: (1.9x at 384 channels without the band-pass: 21.4x -> 39.8x real time).
AUTO_STRIDE_MS = 0.125
MAX_AUTO_STRIDE = 4


def auto_stride(sampling_frequency: float) -> int:
    """The ``stride="auto"`` of a recording sampled at ``sampling_frequency`` Hz (see :data:`AUTO_STRIDE_MS`)."""
    return max(1, min(MAX_AUTO_STRIDE, int(AUTO_STRIDE_MS * sampling_frequency / 1000.0)))
