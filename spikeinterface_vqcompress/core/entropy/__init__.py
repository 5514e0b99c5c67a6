"""Exact entropy coding with frozen integer frequency tables (no spikeinterface import)."""

from spikeinterface_vqcompress.core.entropy.rans import DEFAULT_PRECISION_BITS, build_frequency_table, decode_symbols, encode_symbols, estimate_nbytes

__all__ = ["DEFAULT_PRECISION_BITS", "build_frequency_table", "decode_symbols", "encode_symbols", "estimate_nbytes"]
