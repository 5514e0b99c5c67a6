"""Signed integers with a per-block table: what the spike codecs use for quantised features and indices.

:func:`encode_integers` zigzag-maps each value, codes its bit-length class with rANS under a table
fitted to this block (sent first: one byte per class, at most 18 classes) and appends the mantissa
bits below the leading one. Near a Laplacian or Golomb code for the peaked values of quantised
coefficients, with no table shipped. :func:`encode_indices` codes bounded indices with a per-block
table of their own counts when that is shorter than a flat table (one flag byte says which).
"""

from __future__ import annotations

import struct

import numpy as np

from spikeinterface_vqcompress.core.entropy.rans import _check_table, _encode, build_frequency_table, decode_symbols, encode_symbols
from spikeinterface_vqcompress.core.errors import CorruptDataError

#: Bit-length classes of a zigzag-mapped int16 value: 0 .. 17.
NUM_CLASSES = 18
_TABLE_PRECISION_BITS = 12


def _zigzag(values: np.ndarray) -> np.ndarray:
    values = values.astype(np.int64)
    return (values << 1) ^ (values >> 63)  # 2v for v >= 0, -2v - 1 below


def _unzigzag(mapped: np.ndarray) -> np.ndarray:
    return np.where(mapped % 2 == 0, mapped // 2, -(mapped + 1) // 2)


def _as_tables(table: np.ndarray) -> tuple[np.ndarray, int]:
    frequencies, precision_bits = _check_table(table)
    return frequencies[None, :], precision_bits


def _class_table(counts: np.ndarray) -> np.ndarray:
    return build_frequency_table(counts, _TABLE_PRECISION_BITS)


def encode_integers(values) -> bytes:
    """Code any integers within the int16 range (flattened): class table, rANS classes, mantissas."""
    values = np.asarray(values).ravel()
    if values.size and (values.min() < -32768 or values.max() > 32767):
        raise ValueError("encode_integers codes values within the int16 range")
    mapped = _zigzag(values)
    classes = np.frexp(mapped.astype(np.float64))[1].astype(np.int64)  # the bit length (0 for 0): exact below 2 ** 53
    counts = np.bincount(classes, minlength=NUM_CLASSES)
    # table sent as one byte per class: counts scaled to 1..255 (0 where unused)
    scaled = np.where(counts > 0, np.maximum(1, np.round(255 * counts / max(counts.max(), 1))), 0).astype(np.uint8)
    table = _class_table(np.maximum(scaled.astype(np.int64), 0)) if values.size else None
    class_stream = _encode(classes, *_as_tables(table)) if values.size else b""  # every class seen has a frequency >= 1
    lengths = np.maximum(classes - 1, 0)
    bits = _mantissa_bits(mapped, lengths)
    return scaled.tobytes() + struct.pack("<I", len(class_stream)) + class_stream + np.packbits(bits).tobytes()


def _mantissa_bits(mapped: np.ndarray, lengths: np.ndarray) -> np.ndarray:
    total = int(lengths.sum())
    if total == 0:
        return np.zeros(0, dtype=np.uint8)
    owner = np.repeat(np.arange(mapped.size), lengths)
    starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
    position = np.arange(total) - np.repeat(starts, lengths)  # 0 = most significant mantissa bit
    shift = np.repeat(lengths, lengths) - 1 - position
    return ((mapped[owner] >> shift) & 1).astype(np.uint8)


def decode_integers(data: bytes, count: int, name: str = "integers") -> np.ndarray:
    """Inverse of :func:`encode_integers` for ``count`` values (int64)."""
    if count == 0:
        return np.zeros(0, dtype=np.int64)
    if len(data) < NUM_CLASSES + 4:
        raise CorruptDataError(f"{name}: integer stream is truncated")
    scaled = np.frombuffer(data[:NUM_CLASSES], dtype=np.uint8).astype(np.int64)
    (length,) = struct.unpack_from("<I", data, NUM_CLASSES)
    start = NUM_CLASSES + 4
    if start + length > len(data) or scaled.sum() == 0:
        raise CorruptDataError(f"{name}: integer stream is truncated or damaged")
    classes = decode_symbols(data[start:start + length], _class_table(scaled), count)
    lengths = np.maximum(classes - 1, 0)
    bits = np.unpackbits(np.frombuffer(data[start + length:], dtype=np.uint8))
    total = int(lengths.sum())
    if total > bits.size or bits.size - total >= 8:
        raise CorruptDataError(f"{name}: mantissa bits do not match their classes; the data is damaged")
    mapped = np.where(classes > 0, 1 << np.maximum(classes - 1, 0), 0).astype(np.int64)
    if total:
        owner = np.repeat(np.arange(count), lengths)
        starts = np.concatenate([[0], np.cumsum(lengths)[:-1]])
        position = np.arange(total) - np.repeat(starts, lengths)
        shift = np.repeat(lengths, lengths) - 1 - position
        np.add.at(mapped, owner, bits[:total].astype(np.int64) << shift)
    return _unzigzag(mapped)


def _block_table(counts: np.ndarray) -> np.ndarray:
    """The table of a block's index counts: 16-bit precision, every symbol at least 1 (a rare symbol
    among thousands would otherwise round to frequency 0 and could not be coded)."""
    return build_frequency_table(counts, 16, minimum_frequency=1)


def encode_indices(indices, num_symbols: int) -> bytes:
    """Code indices in ``[0, num_symbols)``: a per-block table of their counts (sent) when shorter, else flat."""
    indices = np.asarray(indices, dtype=np.int64).ravel()
    precision = max(_TABLE_PRECISION_BITS, int(np.ceil(np.log2(max(num_symbols, 2)))) + 2)
    flat = encode_symbols(indices, build_frequency_table(np.ones(num_symbols, dtype=np.int64), precision))
    counts = np.bincount(indices, minlength=num_symbols)
    adaptive = b""
    if indices.size and counts.max() <= 32767:
        table_bytes = encode_integers(counts)
        adaptive = table_bytes + encode_symbols(indices, _block_table(counts))
        adaptive = struct.pack("<I", len(table_bytes)) + adaptive
    if adaptive and len(adaptive) < len(flat):
        return b"\x01" + adaptive
    return b"\x00" + flat


def decode_indices(data: bytes, count: int, num_symbols: int, name: str = "indices") -> np.ndarray:
    """Inverse of :func:`encode_indices`."""
    if not data:
        raise CorruptDataError(f"{name}: index stream is empty")
    precision = max(_TABLE_PRECISION_BITS, int(np.ceil(np.log2(max(num_symbols, 2)))) + 2)
    if data[0] == 0:
        indices = decode_symbols(data[1:], build_frequency_table(np.ones(num_symbols, dtype=np.int64), precision), count)
    elif data[0] == 1 and len(data) >= 5:
        (table_length,) = struct.unpack_from("<I", data, 1)
        counts = decode_integers(data[5:5 + table_length], num_symbols, name)
        if np.any(counts < 0) or counts.sum() == 0:
            raise CorruptDataError(f"{name}: index table is damaged")
        indices = decode_symbols(data[5 + table_length:], _block_table(counts), count)
    else:
        raise CorruptDataError(f"{name}: unknown index stream flag {data[0]}")
    if indices.size and indices.max() >= num_symbols:
        raise CorruptDataError(f"{name}: an index lies outside [0, {num_symbols})")
    return indices
