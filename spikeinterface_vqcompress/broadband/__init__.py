"""Our broadband codec (issue 5): lossless and near-lossless coding of continuous recordings.

- :class:`BroadbandCodec` (registry id ``broadband``): ``max_error=0`` lossless, bit-exact;
  ``max_error > 0`` near-lossless with that guaranteed bound per sample.
- :class:`BroadbandRVQCodec` (registry id ``broadband-rvq``): the learned lossy mode, a convolutional
  autoencoder over (channels, time) with residual vector quantisation; ``num_stages`` is the rate knob.
- :class:`Broadband` (numcodecs id ``vqcompress_broadband``, entry point ``numcodecs.codecs``): the
  lossless / near-lossless bitstream as a zarr compressor.
"""

from .codec import BroadbandCodec
from .chunk import decode_chunk, encode_chunk
from .lossy import BroadbandRVQCodec

__all__ = ["BroadbandCodec", "BroadbandRVQCodec", "decode_chunk", "encode_chunk"]
