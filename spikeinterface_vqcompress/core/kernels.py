"""Every numba kernel of the package, compiled (or loaded from numba's on-disk cache) in one call.

``scripts/setup.sh`` runs :func:`compile_kernels` at install so that no user waits for numba on a
first compress: the broadband codec's kernels (minutes of CPU on a fresh machine), the rANS coder
every learned codec uses, the spike codecs' background moments, spike-vq's codeword search and the
zero-phase IIR filter of E-Sort's band-pass (seconds).
"""

from __future__ import annotations

import time

import numpy as np


def compile_kernels() -> float:
    """Compile or load every kernel by running it on small inputs; returns the seconds it took."""
    from spikeinterface_vqcompress.core.codecs.broadband.codec import compile_kernels as compile_broadband
    from spikeinterface_vqcompress.core.codecs.spike_cae.background import estimate_background
    from spikeinterface_vqcompress.core.codecs.spike_vq.quantiser import OnlineSpikeVQ
    from spikeinterface_vqcompress.core.entropy.rans import build_frequency_table, decode_symbols, encode_symbols
    from spikeinterface_vqcompress.core.filters import sos_filtfilt_detrended

    start = time.perf_counter()
    compile_broadband()
    table = build_frequency_table([3, 1, 4, 1])
    decode_symbols(encode_symbols([0, 1, 2, 3], table), table, 4)
    ramp = (np.arange(64, dtype=np.int16)[:, None] % 7 - 3) * np.array([[1, -1]], dtype=np.int16)
    estimate_background(ramp, 2)
    estimate_background(ramp, 2, exclude_mask=np.zeros(ramp.shape, dtype=bool))
    OnlineSpikeVQ(np.zeros((2, 9), dtype=np.float32), 4.0, 2.0, 0.125, residual_step=3.0, refine_step=1.0,
                  group_threshold=3.0, num_groups=3).encode(np.ones((3, 9), dtype=np.float32))
    sos_filtfilt_detrended(np.ones((8, 2), dtype=np.float32), np.array([[1.0, 0.0, 0.0, 1.0, 0.0, 0.0]]))
    return time.perf_counter() - start
