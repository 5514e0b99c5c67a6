"""Our broadband codec (issue 5): lossless and near-lossless coding of continuous recordings.

- :class:`BroadbandCodec` (registry id ``broadband``): ``max_error=0`` lossless, bit-exact;
  ``max_error > 0`` near-lossless with that guaranteed bound per sample.
- :class:`Broadband` (numcodecs id ``vqcompress_broadband``, entry point ``numcodecs.codecs``): the
  same bitstream as a zarr compressor.

Not done yet: the learned lossy mode (convolutional encoder + residual vector quantisation).
"""

from .codec import BroadbandCodec
from .chunk import decode_chunk, encode_chunk

__all__ = ["BroadbandCodec", "decode_chunk", "encode_chunk"]
