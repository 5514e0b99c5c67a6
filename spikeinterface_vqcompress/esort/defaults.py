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
