"""A static rANS coder over frozen integer frequency tables.

The coder follows the byte-wise rANS of F. Giesen ("Interleaved entropy coders", 2014): a 32-bit
state kept in ``[2**23, 2**31)``, renormalised one byte at a time. Every operation is integer
arithmetic on Python ints, so a bitstream decodes identically on every machine; nothing depends on
floating-point probabilities recomputed at decode time. The frequency table is a list of positive or
zero integers summing to exactly ``2 ** precision_bits``; it is frozen (stored with a model or in a
codec's config), never adapted while coding.

Bitstream: the rANS bytes, final state first (4 bytes, little-endian), then the renormalisation
bytes in decoding order. The encoder starts from the state ``2**23``, so a decoder that has read
every byte must end in that state: any other ending (or running out of bytes) means the data is
damaged, and :func:`decode_symbols` raises
:class:`~spikeinterface_vqcompress.core.errors.CorruptDataError`.

The coding loops are numba kernels on int64 states (about 10 ns per symbol; they were pure Python,
~1 µs per symbol: the same integer operations, the same bytes).

This module must not import spikeinterface.
"""

from __future__ import annotations

import numba
import numpy as np

from spikeinterface_vqcompress.core.errors import CorruptDataError

DEFAULT_PRECISION_BITS = 12
_STATE_LOWER_BOUND = 1 << 23
_MAX_PRECISION_BITS = 16


def _check_table(frequencies) -> tuple[np.ndarray, int]:
    """Validate a frozen table; return it as int64 and its precision in bits."""
    frequencies = np.asarray(frequencies)
    if frequencies.ndim != 1 or frequencies.size == 0:
        raise ValueError(f"frequencies must be a non-empty 1D array of integers, got shape {frequencies.shape}")
    if frequencies.dtype.kind not in "iu":
        raise TypeError(
            f"frequencies must be integers (a frozen table), got {frequencies.dtype}; "
            "build one from counts with build_frequency_table(counts)"
        )
    frequencies = frequencies.astype(np.int64)
    if np.any(frequencies < 0):
        raise ValueError("frequencies must be >= 0")
    total = int(frequencies.sum())
    precision_bits = total.bit_length() - 1
    if total <= 0 or (1 << precision_bits) != total or precision_bits > _MAX_PRECISION_BITS:
        raise ValueError(
            f"frequencies must sum to a power of two <= 2**{_MAX_PRECISION_BITS}, got a sum of {total}; "
            "build the table with build_frequency_table(counts, precision_bits)"
        )
    return frequencies, precision_bits


def build_frequency_table(counts, precision_bits: int = DEFAULT_PRECISION_BITS, minimum_frequency: int = 1) -> np.ndarray:
    """Turn symbol counts into a frozen integer table summing to ``2 ** precision_bits``.

    Deterministic integer arithmetic only: the same counts give the same table everywhere.

    Parameters
    ----------
    counts : array-like of int
        How often each symbol was seen (e.g. code usage on training data). Floats are rounded down.
    precision_bits : int, default: 12
        Table precision; the smallest probability the coder can express is ``2 ** -precision_bits``.
    minimum_frequency : int, default: 1
        Every symbol gets at least this frequency so that any symbol stays encodable; 0 allows
        symbols that can never be encoded.

    Returns
    -------
    np.ndarray
        int64 frequencies, one per symbol, summing to ``2 ** precision_bits``.
    """
    counts = np.floor(np.asarray(counts, dtype=np.float64)).astype(np.int64)
    if counts.ndim != 1 or counts.size == 0:
        raise ValueError("counts must be a non-empty 1D array")
    if np.any(counts < 0):
        raise ValueError("counts must be >= 0")
    if not 1 <= precision_bits <= _MAX_PRECISION_BITS:
        raise ValueError(f"precision_bits must be between 1 and {_MAX_PRECISION_BITS}, got {precision_bits}")
    total_frequency = 1 << precision_bits
    num_symbols = counts.size
    minimum_frequency = int(minimum_frequency)
    if num_symbols * minimum_frequency > total_frequency:
        raise ValueError(
            f"{num_symbols} symbols with a minimum frequency of {minimum_frequency} do not fit in 2**{precision_bits}; "
            "raise precision_bits"
        )
    if counts.sum() == 0:  # nothing seen: uniform
        counts = np.ones(num_symbols, dtype=np.int64)
    free = total_frequency - num_symbols * minimum_frequency
    total_count = int(counts.sum())
    # integer floor of the proportional share; Python ints avoid overflow
    shares = [(int(count) * free) // total_count for count in counts]
    frequencies = np.array(shares, dtype=np.int64) + minimum_frequency
    remainder = total_frequency - int(frequencies.sum())
    # give what rounding left to the most frequent symbols (ties: lowest index), one each, cyclically
    order = sorted(range(num_symbols), key=lambda index: (-int(counts[index]), index))
    position = 0
    while remainder > 0:
        index = order[position % num_symbols]
        if counts[index] > 0 or minimum_frequency > 0:
            frequencies[index] += 1
            remainder -= 1
        position += 1
    return frequencies


def encode_symbols(symbols, frequencies) -> bytes:
    """Encode integer symbols with a frozen frequency table.

    Parameters
    ----------
    symbols : array-like of int
        Values in ``[0, len(frequencies))`` whose frequency is > 0.
    frequencies : array-like of int
        Frozen table summing to a power of two (see :func:`build_frequency_table`).

    Returns
    -------
    bytes
        The rANS bitstream (at least 4 bytes).
    """
    frequencies, precision_bits = _check_table(frequencies)
    symbols = np.asarray(symbols).ravel()
    if symbols.size and symbols.dtype.kind not in "iu":
        raise TypeError(f"symbols must be integers, got {symbols.dtype}")
    symbols = symbols.astype(np.int64)
    if symbols.size and (symbols.min() < 0 or symbols.max() >= frequencies.size):
        raise ValueError(f"symbols must lie in [0, {frequencies.size}), got values in [{symbols.min()}, {symbols.max()}]")
    if symbols.size and np.any(frequencies[symbols] == 0):
        bad = int(symbols[frequencies[symbols] == 0][0])
        raise ValueError(f"symbol {bad} has frequency 0 in the table and cannot be encoded")
    return _encode(symbols, frequencies[None, :], precision_bits)


def decode_symbols(data: bytes, frequencies, count: int) -> np.ndarray:
    """Decode ``count`` symbols from a bitstream of :func:`encode_symbols`.

    Parameters
    ----------
    data : bytes
        The bitstream.
    frequencies : array-like of int
        The same frozen table the encoder used.
    count : int
        Number of symbols to decode (the caller knows it from its own framing).

    Returns
    -------
    np.ndarray
        int64 symbols.

    Raises
    ------
    CorruptDataError
        If the bytes run out, are left over, or the final state is not the encoder's initial one.
    """
    frequencies, precision_bits = _check_table(frequencies)
    count = int(count)
    if count < 0:
        raise ValueError(f"count must be >= 0, got {count}")
    data = bytes(data)
    if len(data) < 4:
        raise CorruptDataError(f"rANS stream of {len(data)} bytes is too short (at least 4 bytes expected)")
    state = int.from_bytes(data[:4], "little")
    if not _STATE_LOWER_BOUND <= state < (_STATE_LOWER_BOUND << 8):
        raise CorruptDataError("rANS stream starts with an impossible state; the data is damaged")
    tables = frequencies[None, :]
    symbols, status, remaining = _decode_kernel(np.frombuffer(data, dtype=np.uint8), _lookups(tables, precision_bits),
                                                tables, _starts(tables), precision_bits, count)
    if status == _TRUNCATED:
        raise CorruptDataError("rANS stream ended before all symbols were decoded; the data is truncated")
    if remaining:
        raise CorruptDataError(f"rANS stream has {remaining} unread bytes after {count} symbols; the data is damaged")
    if status == _BAD_END:
        raise CorruptDataError("rANS stream did not end in its initial state; the data is damaged")
    return symbols


def estimate_nbytes(symbols, frequencies) -> float:
    """Ideal size in bytes of ``symbols`` under the table (the coder adds at most ~4 bytes)."""
    frequencies, precision_bits = _check_table(frequencies)
    symbols = np.asarray(symbols, dtype=np.int64).ravel()
    bits = precision_bits * symbols.size - np.log2(frequencies[symbols].astype(np.float64)).sum()
    return float(bits / 8.0)


def encode_with_tables(symbols: np.ndarray, tables: np.ndarray) -> bytes:
    """rANS-encode ``symbols`` ``(n, k)`` where column ``j`` uses frozen table ``tables[j]``.

    Same bitstream conventions as :func:`encode_symbols` (which handles one table): one stream, one
    4-byte final state, symbols coded row by row.
    """
    symbols = np.asarray(symbols, dtype=np.int64)
    checked = [_check_table(row) for row in tables]
    precision_bits = checked[0][1]
    if any(bits != precision_bits for _, bits in checked):
        raise ValueError("every table must have the same precision")
    frequencies = np.stack([row for row, _ in checked])
    flat = symbols.reshape(-1)
    if flat.size:
        columns = np.arange(flat.size) % len(checked)
        zero = frequencies[columns, flat] == 0
        if zero.any():
            position = int(np.argmax(zero))
            raise ValueError(f"symbol {int(flat[position])} has frequency 0 in table {int(columns[position])}")
    return _encode(flat, frequencies, precision_bits)


def decode_with_tables(data: bytes, tables: np.ndarray, num_rows: int, name: str = "spike-cae") -> np.ndarray:
    """Inverse of :func:`encode_with_tables`: ``(num_rows, len(tables))`` int64 symbols (``name`` in errors)."""
    checked = [_check_table(row) for row in tables]
    precision_bits = checked[0][1]
    num_columns = len(checked)
    data = bytes(data)
    if len(data) < 4:
        raise CorruptDataError(f"{name}: code index stream is truncated")
    state = int.from_bytes(data[:4], "little")
    if not _STATE_LOWER_BOUND <= state < (_STATE_LOWER_BOUND << 8):
        raise CorruptDataError(f"{name}: code index stream starts with an impossible state; the data is damaged")
    frequencies = np.stack([row for row, _ in checked])
    count = int(num_rows) * num_columns
    symbols, status, remaining = _decode_kernel(np.frombuffer(data, dtype=np.uint8), _lookups(frequencies, precision_bits),
                                                frequencies, _starts(frequencies), precision_bits, count)
    if status == _TRUNCATED:
        raise CorruptDataError(f"{name}: code index stream ended early; the data is truncated")
    if remaining or status == _BAD_END:
        raise CorruptDataError(f"{name}: code index stream did not end cleanly; the data is damaged")
    return symbols.reshape(int(num_rows), num_columns)


# -- the coding loops (numba; every operation an integer one, as the pure-Python loops were) ---------------
_TRUNCATED, _BAD_END = 1, 2


def _starts(frequencies: np.ndarray) -> np.ndarray:
    """``(k, S)`` cumulative starts of ``(k, S)`` frozen tables."""
    return np.concatenate([np.zeros((frequencies.shape[0], 1), dtype=np.int64), np.cumsum(frequencies, axis=1)[:, :-1]], axis=1)


def _lookups(frequencies: np.ndarray, precision_bits: int) -> np.ndarray:
    """``(k, 2 ** precision_bits)`` slot -> symbol of each table."""
    return np.stack([np.repeat(np.arange(row.size), row) for row in frequencies]).reshape(len(frequencies), 1 << precision_bits)


def _encode(symbols: np.ndarray, frequencies: np.ndarray, precision_bits: int) -> bytes:
    """Symbol ``i`` of ``symbols`` coded with table ``i % k`` of ``(k, S)`` ``frequencies`` (all checked)."""
    state, output = _encode_kernel(np.ascontiguousarray(symbols, dtype=np.int64), frequencies, _starts(frequencies), precision_bits)
    return int(state).to_bytes(4, "little") + output.tobytes()


@numba.njit(cache=True)
def _encode_kernel(symbols, frequencies, starts, precision_bits):
    """rANS state after coding ``symbols`` backwards, and the renormalisation bytes in decoding order."""
    num_tables = frequencies.shape[0]
    output = np.empty(2 * symbols.size + 8, dtype=np.uint8)  # <= ceil(precision_bits / 8) <= 2 bytes per symbol
    position = output.size  # written backwards: the decoder reads them forwards
    state = np.int64(_STATE_LOWER_BOUND)
    upper_factor = np.int64((_STATE_LOWER_BOUND >> precision_bits) << 8)
    for index in range(symbols.size - 1, -1, -1):
        table = index % num_tables
        symbol = symbols[index]
        frequency = frequencies[table, symbol]
        state_limit = upper_factor * frequency
        while state >= state_limit:
            position -= 1
            output[position] = state & 0xFF
            state >>= 8
        state = ((state // frequency) << precision_bits) + (state % frequency) + starts[table, symbol]
    return state, output[position:]


@numba.njit(cache=True)
def _decode_kernel(data, lookups, frequencies, starts, precision_bits, count):
    """``count`` symbols (table ``i % k`` for symbol ``i``), a status (0, ``_TRUNCATED`` or ``_BAD_END``)
    and the number of bytes left unread. ``data`` holds at least the 4-byte initial state, already checked."""
    num_tables = frequencies.shape[0]
    symbols = np.zeros(count, dtype=np.int64)
    mask = (np.int64(1) << precision_bits) - 1
    state = np.int64(data[0]) | (np.int64(data[1]) << 8) | (np.int64(data[2]) << 16) | (np.int64(data[3]) << 24)
    position, size = 4, data.size
    for index in range(count):
        table = index % num_tables
        slot = state & mask
        symbol = lookups[table, slot]
        symbols[index] = symbol
        state = frequencies[table, symbol] * (state >> precision_bits) + slot - starts[table, symbol]
        while state < _STATE_LOWER_BOUND:
            if position >= size:
                return symbols, _TRUNCATED, 0
            state = (state << 8) | np.int64(data[position])
            position += 1
    return symbols, (0 if state == _STATE_LOWER_BOUND else _BAD_END), size - position
