"""Compress any recording SpikeInterface reads into a .vqc file and read it back lazily.

Run: python examples/compress_any_recording.py PATH_TO_RECORDING [codec]
"""

import sys

import numpy as np

import spikeinterface_vqcompress as vq
from spikeinterface_vqcompress.readers import load_recording

recording = load_recording(sys.argv[1])
codec = sys.argv[2] if len(sys.argv) > 2 else "flac"
container = vq.write_compressed(recording, "compressed.vqc", codec=codec, n_jobs=2)
print(f"{codec}: ratio {container.compression_ratio:.2f}, {container.bits_per_sample:.2f} bits/sample")
window = container.get_traces(start_frame=0, end_frame=1000)  # decodes only the first chunk
if container.codec.lossless:
    assert np.array_equal(window, recording.get_traces(start_frame=0, end_frame=1000))
