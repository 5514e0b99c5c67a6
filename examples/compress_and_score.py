"""Compress a simulated ground-truth recording with WavPack hybrid and see what sorting loses.

Run: python examples/compress_and_score.py
"""

from spikeinterface_vqcompress.evaluation import evaluate, format_table
from spikeinterface_vqcompress.groundtruth import load_ground_truth, simulate_recording

path = simulate_recording("example_recording.h5", probe="Neuronexus-32", num_units=10, duration_s=30.0, seed=7,
                          num_templates_per_cell=10)
recording, gt_sorting = load_ground_truth(path)
result = evaluate(recording, gt_sorting, codec="wavpack", codec_params={"bps": 2.25}, sorter="tridesclous2", seeds=[0])
print(format_table([result]))
