"""The broadband codec as a numcodecs codec, for ``recording.save(format="zarr", compressor=...)``.

Registered through the ``numcodecs.codecs`` entry point (id ``vqcompress_broadband``), so a process
that never imports this package still reads the zarr arrays: numcodecs finds the codec by its id.
The config holds only JSON values needed to decode (in fact the chunk bytes are self-describing:
shape, ``max_error`` and predictor configuration are in each chunk's header).

This module must not import spikeinterface.
"""

from __future__ import annotations

import numpy as np
from numcodecs.abc import Codec as _NumcodecsCodec
from numcodecs.compat import ensure_contiguous_ndarray, ndarray_copy

from spikeinterface_vqcompress.core.codecs.broadband.chunk import decode_chunk, encode_chunk


class Broadband(_NumcodecsCodec):
    """Lossless or near-lossless broadband compression of int16 chunks (numcodecs interface).

    Parameters
    ----------
    max_error : int, default: 0
        Largest absolute error per sample in stored units; 0 is lossless.
    lpc_order : int, default: 32
        Order of the least-squares predictor fitted per chunk and channel.
    stages : list of [order, rate] | None, default: None
        Adaptive NLMS stages after the fixed predictor (see ``BroadbandCodec``).

    Notes
    -----
    A chunk shaped ``(num_samples, num_channels, ...)`` is coded as ``num_samples`` rows of the
    flattened trailing dimensions; a 1D chunk as one channel. Only int16 is accepted.
    """

    codec_id = "vqcompress_broadband"

    def __init__(self, max_error: int = 0, lpc_order: int = 32, stages=None):
        from spikeinterface_vqcompress.core.codecs.broadband.codec import BroadbandCodec  # validates the parameters the same way

        BroadbandCodec(max_error=max_error, lpc_order=lpc_order, stages=stages)
        self.max_error = int(max_error)
        self.lpc_order = int(lpc_order)
        self.stages = None if stages is None else [[int(order), int(rate)] for order, rate in stages]

    def get_config(self):
        return {"id": self.codec_id, "max_error": self.max_error, "lpc_order": self.lpc_order, "stages": self.stages}

    def encode(self, buf):
        array = np.asarray(buf)
        if array.dtype != np.int16:
            raise TypeError(f"{self.codec_id} encodes int16 arrays, got {array.dtype}; save the recording as int16")
        array = np.ascontiguousarray(array)
        if array.ndim == 0:
            array = array.reshape(1, 1)
        elif array.ndim == 1:
            array = array[:, None]
        else:
            array = array.reshape(array.shape[0], -1)
        stages = tuple(tuple(stage) for stage in (self.stages or []))
        return encode_chunk(array, self.max_error, stages, self.lpc_order)

    def decode(self, buf, out=None):
        data = ensure_contiguous_ndarray(buf).view(np.uint8).tobytes()
        traces = decode_chunk(data, self.codec_id)
        if out is not None:
            out_array = ensure_contiguous_ndarray(out)
            if out_array.nbytes != traces.nbytes:
                from spikeinterface_vqcompress.core.errors import CorruptDataError

                raise CorruptDataError(
                    f"{self.codec_id}: chunk decodes to {traces.nbytes} bytes but the output buffer holds {out_array.nbytes}"
                )
            return ndarray_copy(traces.reshape(-1), out)
        return traces

    def __repr__(self):
        return f"Broadband(max_error={self.max_error}, lpc_order={self.lpc_order}, stages={self.stages})"
