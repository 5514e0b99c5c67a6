"""The broadband chunk bitstream: header, side information, range-coded samples.

Layout of one chunk (all integers little-endian)::

    magic "VQBB" | version u8 | flags u8 | num_samples u32 | num_channels u16 | max_error u16
    | lpc_order u8 | num_stages u8 | (order u8, rate u8) * num_stages | crc32 u32 of the decoded int16 samples
    | (version 3 only) spike_error u16 | spike_before u8 | spike_after u8
    | range-coded payload

The range-coded payload holds, in order: per channel the value lattice (type 0 identity, 1 affine
``value = offset + spacing * k``, 2 table of used levels ``(index gap, value gap)``), then for
multi-channel chunks a flag and, when adaptive stages are used, the coding order and each channel's
reference channel, then per channel the Q12 predictor coefficients, then (version 2) per channel a
flag and, when set, the code-width table, then (version 3) per channel the spike events, then the
samples (:func:`._kernel.code_samples`). Every chunk is independent (random access by chunk).

Spike windows (version 3). A chunk may carry, per channel, a list of spike events (sample indices,
chosen by the encoder: :func:`.spikes.detect_events`). The samples from ``spike_before`` before to
``spike_after`` after each event of a channel form that channel's spike windows (zone 1): their
residuals are quantised with the step of ``spike_error`` instead of ``max_error`` and coded with
their own contexts. The bound is then ``spike_error`` inside the windows and ``max_error`` elsewhere.
Chunks without events are written as version 2, byte for byte as before.

Code widths (version 2). An ADC's codes are not equally wide (differential non-linearity): on the
N1 files some codes are hit 1.8x as often as their neighbours and others 0.4x, the same pattern in
every file. For a lossless channel of at most 4096 used codes the encoder estimates each code's
relative width (its count over the mean count of the 21 codes around it, sent as ``4 log2`` rounded
to -12..8, or "unused") and sends the table when the expected saving exceeds twice its cost. The
residual coder then weighs each binary decision among a few codes by the widths of the codes on
either side (:func:`._kernel.put_residual`). Version 1 chunks (no tables) still decode.

This module must not import spikeinterface.
"""

from __future__ import annotations

import math
import struct
import zlib

import numba
import numpy as np

from spikeinterface_vqcompress.core.errors import CorruptDataError
from spikeinterface_vqcompress.core.entropy.binary_range import decoder_init, encoder_flush, new_encoder_state
from spikeinterface_vqcompress.core.codecs.broadband._kernel import (code_samples, get_value, get_values, new_residual_model,
                                                                     put_value, put_values)
from spikeinterface_vqcompress.core.codecs.broadband.spikes import NO_ZONE, SpikeWindows, zone_mask

MAGIC = b"VQBB"
VERSION = 2
ZONED_VERSION = 3  # chunks with spike windows
READABLE_VERSIONS = (1, 2, 3)
_ZONE_HEADER = struct.Struct("<HBB")  # spike_error, spike_before, spike_after
_HEADER = struct.Struct("<4sBBIHH")
_CRC = struct.Struct("<I")
INT16_MIN, INT16_MAX = -32768, 32767
# decoding a sample costs at least one binary decision of >= log2(4096/4095) bits: a chunk of
# n bytes cannot hold more than ~22,900 samples per byte (refuse forged sizes beyond that)
MAX_SAMPLES_PER_BYTE = 23000
LATTICE_NONE, LATTICE_AFFINE, LATTICE_TABLE = 0, 1, 2
# code widths (version 2): symbol s = 1..21 is a relative width 2 ** ((s - 13) / 4), as Q6 integers; 0 an unused code
WIDTH_Q6 = np.array((0, 8, 10, 11, 13, 16, 19, 23, 27, 32, 38, 45, 54, 64, 76, 91, 108, 128, 152, 181, 215, 256), np.int64)
WIDTH_SYMBOL_ONE = 13
MAX_WIDTH_CODES = 4096
WIDTH_WINDOW = 21

PRESETS = {
    "fast": ((8, 8),),
    "default": ((32, 9), (16, 8), (2, 6)),
}


class _SideModel:
    """Adaptive models for the side information (separate from the sample models)."""

    def __init__(self):
        self.tables = new_residual_model()

    def put(self, rc, out, value, context=0):
        put_value(rc, out, *self.tables, context, int(value))

    def get(self, rc, data, context=0):
        return int(get_value(rc, data, *self.tables, context))

    def put_array(self, rc, out, values, context):
        """Code each of ``values`` in turn with ``context`` (the bits of as many :meth:`put`, in one call)."""
        put_values(rc, out, *self.tables, context, np.ascontiguousarray(values, dtype=np.int64))

    def get_array(self, rc, data, count, context):
        """``count`` values written by :meth:`put_array` (int64 array)."""
        return get_values(rc, data, *self.tables, context, int(count))


def _used_levels(column: np.ndarray) -> np.ndarray:
    """Sorted distinct values of an int16 column (a histogram: O(n), no sort)."""
    counts = np.bincount(column.astype(np.int64) - INT16_MIN, minlength=65536)
    return np.flatnonzero(counts).astype(np.int64) + INT16_MIN


def _analyse_lattice(column: np.ndarray, max_error: int, exact_tables: bool = False):
    """Choose the lattice of one channel: (type, parameters).

    A table of used levels codes the channel exactly. With ``max_error > 0`` it is chosen when the
    quantiser step ``2 * max_error + 1`` is no wider than the smallest gap (the step could not merge
    levels, so exact coding is the smaller stream), or always with ``exact_tables``.
    """
    probe = np.unique(column[:2048])
    if probe.size < 2 or np.diff(probe.astype(np.int64)).min() == 1:
        return LATTICE_NONE, None
    levels = _used_levels(column)
    gaps = np.diff(levels)
    spacing = int(np.gcd.reduce(gaps))
    if spacing >= 2:
        return LATTICE_AFFINE, (int(levels[0]), spacing)
    if levels.size * 8 < column.size and gaps.min() >= 2 and (exact_tables or gaps.min() >= 2 * max_error + 1):
        smallest = int(gaps.min())
        typical = float(gaps[gaps <= 1.5 * smallest].mean())
        index_gaps = np.maximum(1, np.rint(gaps / typical)).astype(np.int64)
        return LATTICE_TABLE, (levels, index_gaps, smallest)
    return LATTICE_NONE, None


def _to_domain(column, kind, parameters, max_error):
    """Coding-domain values, valid range and quantisation step of one channel."""
    column = column.astype(np.int64)
    if kind == LATTICE_NONE:
        return column, INT16_MIN, INT16_MAX, 2 * max_error + 1
    if kind == LATTICE_AFFINE:
        offset, spacing = parameters
        low = -((offset - INT16_MIN) // spacing)
        high = (INT16_MAX - offset) // spacing
        return (column - offset) // spacing, low, high, 2 * (max_error // spacing) + 1
    levels, index_gaps, _ = parameters
    indices = np.concatenate([[0], np.cumsum(index_gaps)])
    lookup = np.zeros(65536, dtype=np.int64)
    lookup[levels - INT16_MIN] = indices
    return lookup[column - INT16_MIN], 0, int(indices[-1]), 1


def _from_domain(values, kind, parameters, codec_id):
    if kind == LATTICE_NONE:
        return values
    if kind == LATTICE_AFFINE:
        offset, spacing = parameters
        return offset + spacing * values
    table = parameters
    rebuilt = table[values]
    if np.any(rebuilt == np.iinfo(np.int64).min):
        raise CorruptDataError(f"{codec_id}: decoded a level the chunk's value table does not hold; the data is damaged")
    return rebuilt


def _local_mean(values: np.ndarray) -> np.ndarray:
    """Mean over the ``WIDTH_WINDOW`` codes centred on each code (fewer at the ends)."""
    kernel = np.ones(WIDTH_WINDOW)
    return np.convolve(values, kernel, "same") / np.convolve(np.ones(values.size), kernel, "same")


def _code_widths(column: np.ndarray, step: int):
    """Code-width table of one coding-domain channel: ``(first code, symbols)``, or None when not worth it.

    A code's width is estimated as its count over the mean count of the codes around it; the table
    is sent only when the saving it predicts (``sum(count * log2(width / local mean width))`` bits)
    exceeds twice its own cost (the symbols' empirical entropy).
    """
    if step != 1 or column.size == 0:
        return None
    first = int(column.min())
    num_width_codes = int(column.max()) - first + 1
    if not 2 * WIDTH_WINDOW <= num_width_codes <= MAX_WIDTH_CODES or column.size < 16 * num_width_codes:
        return None
    counts = np.bincount(column - first, minlength=num_width_codes).astype(np.float64)
    used = counts > 0
    ratio = np.where(used, counts / np.maximum(_local_mean(counts), 1e-12), 1.0)
    symbols = np.where(used, np.clip(np.rint(4 * np.log2(ratio)), -12, 8) + WIDTH_SYMBOL_ONE, 0).astype(np.int64)
    widths = WIDTH_Q6[symbols].astype(np.float64)
    relative = widths[used] / _local_mean(widths)[used]
    saving_bits = float(np.sum(counts[used] * np.log2(relative)))
    _, frequencies = np.unique(symbols, return_counts=True)
    cost_bits = float(-np.sum(frequencies * np.log2(frequencies / num_width_codes))) + 64
    return (first, symbols) if saving_bits > 2 * cost_bits else None


def _widths_arrays(tables, num_channels):
    """Kernel arrays (cumulative widths, first code, number of codes) from per-channel tables or None."""
    longest = max((table[1].size for table in tables if table is not None), default=0)
    widths = np.zeros((num_channels, longest + 1), dtype=np.int64)
    start = np.zeros(num_channels, dtype=np.int64)
    length = np.zeros(num_channels, dtype=np.int64)
    for channel, table in enumerate(tables):
        if table is not None:
            first, symbols = table
            widths[channel, 1 : symbols.size + 1] = np.cumsum(WIDTH_Q6[symbols])
            start[channel], length[channel] = first, symbols.size
    return widths, start, length


def _coding_order(domain: np.ndarray):
    """Coding order and reference channels from the correlation of first differences (Prim's tree)."""
    num_channels = domain.shape[1]
    order = np.arange(num_channels, dtype=np.int64)
    reference = np.full(num_channels, -1, dtype=np.int64)
    if num_channels < 2:
        return order, reference
    sample = np.diff(domain[: min(domain.shape[0], 8192)].astype(np.float64), axis=0)
    if sample.shape[0] < 16:
        return order, reference
    sample -= sample.mean(axis=0)
    norms = np.sqrt((sample**2).sum(axis=0))
    norms[norms == 0] = np.inf
    correlation = np.abs(sample.T @ sample) / np.outer(norms, norms)
    np.fill_diagonal(correlation, -1.0)
    in_tree = np.zeros(num_channels, dtype=bool)
    in_tree[0] = True
    best = correlation[0].copy()
    best_from = np.zeros(num_channels, dtype=np.int64)
    order_list = [0]
    for _ in range(num_channels - 1):
        candidates = np.where(in_tree, -np.inf, best)
        channel = int(np.argmax(candidates))
        if best[channel] >= 0.2:
            reference[channel] = best_from[channel]
        in_tree[channel] = True
        order_list.append(channel)
        better = correlation[channel] > best
        best = np.where(better, correlation[channel], best)
        best_from = np.where(better, channel, best_from)
    return np.array(order_list, dtype=np.int64), reference


def _stages_array(stages):
    orders = np.array([order for order, _ in stages], dtype=np.int64)
    rates = np.array([rate for _, rate in stages], dtype=np.int64)
    return orders, rates


@numba.njit(cache=True)
def _difference_sums(values, lpc_order):
    """Exact integer sums of the first difference ``d`` of ``values`` for the autocorrelation method:
    ``sum(d[i] d[i + k])``, ``sum(d[: n - k])`` and ``sum(d[k:])`` for lags ``k = 0 .. lpc_order``."""
    n = values.size - 1
    d = np.empty(n, np.int64)
    for i in range(n):
        d[i] = values[i + 1] - values[i]
    products = np.zeros(lpc_order + 1, np.int64)
    heads = np.zeros(lpc_order + 1, np.int64)
    tails = np.zeros(lpc_order + 1, np.int64)
    total = np.int64(0)
    for i in range(n):
        total += d[i]
    for lag in range(lpc_order + 1):
        accumulator = np.int64(0)
        for i in range(n - lag):
            accumulator += d[i] * d[i + lag]
        products[lag] = accumulator
        head = total
        tail = total
        for i in range(lag):
            head -= d[n - 1 - i]
            tail -= d[i]
        heads[lag] = head
        tails[lag] = tail
    return products, heads, tails


def fit_lpc(values: np.ndarray, lpc_order: int, step: int = 1) -> np.ndarray:
    """Least-squares (autocorrelation method) predictor of the first difference, Q12 integers.

    With ``step > 1`` (near-lossless) the predictor runs on reconstructed samples, i.e. the signal
    plus white quantisation noise of variance ``(step**2 - 1) / 12``: that noise's autocorrelation
    (of its first difference) is added before solving, so the predictor does not amplify it.
    The sums are exact integers (|d| < 2**17 and fewer than 2**18 samples: no overflow), so the fit
    does not depend on the order of floating-point additions.
    """
    from scipy.linalg import solve_toeplitz

    values = np.ascontiguousarray(values[:262144], dtype=np.int64)
    size = values.size - 1
    if size <= 4 * lpc_order:
        return np.zeros(lpc_order, dtype=np.int64)
    products, heads, tails = _difference_sums(values, lpc_order)
    mean = float(heads[0]) / size
    counts = size - np.arange(lpc_order + 1)
    autocorrelation = products - mean * (heads + tails).astype(np.float64) + counts * mean * mean
    if autocorrelation[0] <= 0:
        return np.zeros(lpc_order, dtype=np.int64)
    autocorrelation /= size
    noise_variance = (step * step - 1) / 12.0
    autocorrelation[0] += 2 * noise_variance
    if lpc_order >= 1:
        autocorrelation[1] -= noise_variance
    autocorrelation[0] *= 1.0 + 1e-6
    try:
        coefficients = solve_toeplitz(autocorrelation[:lpc_order], autocorrelation[1 : lpc_order + 1])
    except np.linalg.LinAlgError:
        return np.zeros(lpc_order, dtype=np.int64)
    return np.clip(np.rint(coefficients * 4096), -32768, 32767).astype(np.int64)


def encode_chunk(traces: np.ndarray, max_error: int = 0, stages=PRESETS["default"], lpc_order: int = 32,
                 return_reconstruction: bool = False, spike_windows: SpikeWindows | None = None):
    """Encode an int16 chunk ``(num_samples, num_channels)``; ``max_error`` 0 is lossless.

    ``spike_windows`` (optional): per-channel spike events and the tighter bound inside their windows
    (:class:`.spikes.SpikeWindows`); a chunk with at least one event is written as version 3.

    Returns the bytes, or ``(bytes, reconstruction)`` with ``return_reconstruction`` (the int16
    samples the decoder will give back).
    """
    traces = np.asarray(traces)
    if traces.ndim == 1:
        traces = traces[:, None]
    if traces.dtype != np.int16:
        raise TypeError(f"broadband: encodes int16 samples, got {traces.dtype}; convert with recording.astype('int16')")
    num_samples, num_channels = traces.shape
    if num_channels > 65535 or num_samples >= 2**32:
        raise ValueError("broadband: a chunk holds at most 65535 channels and 2**32 - 1 samples; use smaller chunks")
    max_error = int(max_error)
    if not 0 <= max_error <= 4096:
        raise ValueError(f"broadband: max_error must be between 0 and 4096 stored units, got {max_error}")
    if spike_windows is not None:
        spike_windows.check(num_samples, num_channels, max_error)
        if spike_windows.num_events == 0:
            spike_windows = None
    columns = np.ascontiguousarray(traces.T)  # channel-major: the per-channel analysis reads rows, not strided columns
    data, rebuilt = _encode_chunk(traces, columns, max_error, stages, lpc_order, exact_tables=False, spike_windows=spike_windows)
    if max_error > 0 and num_samples and any(_exact_may_be_smaller(column, max_error) for column in columns):
        exact, exact_rebuilt = _encode_chunk(traces, columns, max_error, stages, lpc_order, exact_tables=True,
                                             spike_windows=spike_windows)
        if len(exact) < len(data):
            data, rebuilt = exact, exact_rebuilt
    return (data, rebuilt) if return_reconstruction else data


def _exact_may_be_smaller(column, max_error):
    """A table of levels whose smallest gap is below the quantiser step but above half of it: the step
    merges few levels, and coding the channel exactly may be the smaller stream (the N1 files at
    ``max_error=32``: exact 3.504 vs 3.464). The encoder then tries both."""
    kind, parameters = _analyse_lattice(column, max_error, exact_tables=True)
    return kind == LATTICE_TABLE and parameters[2] < 2 * max_error + 1 < 2 * parameters[2]


def _encode_chunk(traces, columns, max_error, stages, lpc_order, exact_tables, spike_windows=None):
    """Encode ``traces`` (num_samples, num_channels); ``columns`` is the same data channel-major."""
    num_samples, num_channels = traces.shape
    out = np.zeros(num_samples * num_channels * 6 + 64 * num_channels + 4096, dtype=np.uint8)
    rc = new_encoder_state()
    side = _SideModel()
    domain_rows = np.empty((num_channels, num_samples), dtype=np.int64)
    low = np.empty(num_channels, np.int64)
    high = np.empty(num_channels, np.int64)
    step = np.empty(num_channels, np.int64)
    zone_step = np.ones(num_channels, np.int64)
    lattices = []
    for channel in range(num_channels):
        kind, parameters = (_analyse_lattice(columns[channel], max_error, exact_tables) if num_samples
                              else (LATTICE_NONE, None))
        side.put(rc, out, kind, 0)
        if kind == LATTICE_AFFINE:
            side.put(rc, out, parameters[0], 1)
            side.put(rc, out, parameters[1], 2)
        elif kind == LATTICE_TABLE:
            levels, index_gaps, smallest = parameters
            side.put(rc, out, int(levels[0]), 1)
            side.put(rc, out, smallest, 2)
            side.put(rc, out, levels.size - 1, 3)
            value_gaps = np.diff(levels)
            for index_gap, value_gap in zip(index_gaps.tolist(), value_gaps.tolist()):
                side.put(rc, out, index_gap - 1, 4)
                side.put(rc, out, value_gap - index_gap * smallest, 5)
        lattices.append((kind, parameters))
        domain_rows[channel], low[channel], high[channel], step[channel] = _to_domain(columns[channel], kind, parameters, max_error)
        if spike_windows is not None:
            zone_step[channel] = _to_domain(columns[channel][:0], kind, parameters, spike_windows.spike_error)[3]
    identity = all(kind == LATTICE_NONE for kind, _ in lattices)  # the coding domain is the stored values
    # the kernel runs sample by sample across channels: (num_samples, num_channels), converted without a transpose
    domain = traces.astype(np.int64) if identity else np.ascontiguousarray(domain_rows.T)
    if stages and num_channels > 1:  # only the adaptive stages use a reference channel
        order, reference = _coding_order(domain)
    else:
        order, reference = np.arange(num_channels, dtype=np.int64), np.full(num_channels, -1, dtype=np.int64)
    if num_channels > 1:
        side.put(rc, out, 1 if stages else 0, 9)
    if stages and num_channels > 1:
        for position in range(1, num_channels):
            channel = order[position]
            side.put(rc, out, channel, 6)
            side.put(rc, out, reference[channel] + 1, 7)
    fixed_weights = np.zeros((num_channels, lpc_order), dtype=np.int64)
    if lpc_order:
        for channel in range(num_channels):
            fixed_weights[channel] = fit_lpc(domain_rows[channel], lpc_order, int(step[channel]))
            side.put_array(rc, out, fixed_weights[channel], 8)
    tables = [_code_widths(domain_rows[channel], int(step[channel])) for channel in range(num_channels)]
    for table in tables:
        side.put(rc, out, 0 if table is None else 1, 10)
        if table is not None:
            first, symbols = table
            side.put(rc, out, first, 11)
            side.put(rc, out, symbols.size - 1, 12)
            side.put_array(rc, out, symbols - WIDTH_SYMBOL_ONE, 13)
    zone = NO_ZONE
    if spike_windows is not None:
        for events in spike_windows.events:
            side.put(rc, out, len(events), 14)
            side.put_array(rc, out, np.diff(events, prepend=-1) - 1, 15)
        zone = spike_windows.mask(num_samples)
    orders, rates = _stages_array(stages)
    code_samples(False, domain, order, reference, low, high, step, zone, zone_step, fixed_weights, orders, rates,
                 *_widths_arrays(tables, num_channels), rc, out, *new_residual_model())
    size = encoder_flush(rc, out)
    if size > out.size:  # cannot happen with the bound above; refuse rather than emit a cut stream
        raise RuntimeError("broadband: internal output buffer overflow")
    if np.all(step == 1) and np.all(zone_step == 1):  # lossless: the reconstruction is the input
        rebuilt = traces
    elif identity:
        rebuilt = domain.astype(np.int16)
    else:
        rebuilt_rows = np.empty((num_channels, num_samples), dtype=np.int16)
        domain_rows = np.ascontiguousarray(domain.T)
        for channel, (kind, parameters) in enumerate(lattices):
            if kind == LATTICE_TABLE:
                levels, index_gaps, _ = parameters
                indices = np.concatenate([[0], np.cumsum(index_gaps)])
                table = np.full(int(indices[-1]) + 1, np.iinfo(np.int64).min, dtype=np.int64)
                table[indices] = levels
                parameters = table
            rebuilt_rows[channel] = _from_domain(domain_rows[channel], kind, parameters, "broadband")
        rebuilt = np.ascontiguousarray(rebuilt_rows.T)
    header = _HEADER.pack(MAGIC, VERSION if spike_windows is None else ZONED_VERSION, 0, num_samples, num_channels, max_error)
    header += bytes([lpc_order, len(stages)]) + b"".join(bytes([order, rate]) for order, rate in stages)
    header += _CRC.pack(zlib.crc32(rebuilt.tobytes()))
    if spike_windows is not None:
        header += _ZONE_HEADER.pack(spike_windows.spike_error, spike_windows.before, spike_windows.after)
    return header + out[:size].tobytes(), rebuilt


def read_chunk_header(data, codec_id: str = "broadband") -> dict:
    """Parse and validate a chunk header; return its fields and the payload offset."""
    data = bytes(data)
    if len(data) < _HEADER.size + 2 + _CRC.size:
        raise CorruptDataError(f"{codec_id}: chunk of {len(data)} bytes is too short to hold a broadband header")
    magic, version, flags, num_samples, num_channels, max_error = _HEADER.unpack_from(data, 0)
    if magic != MAGIC:
        raise CorruptDataError(f"{codec_id}: chunk does not start with the broadband magic bytes")
    if version not in READABLE_VERSIONS:
        raise CorruptDataError(f"{codec_id}: chunk format version {version} is not supported (this package reads "
                               f"{', '.join(map(str, READABLE_VERSIONS))}); upgrade spikeinterface-vqcompress")
    lpc_order = data[_HEADER.size]
    num_stages = data[_HEADER.size + 1]
    offset = _HEADER.size + 2
    if lpc_order > 64:
        raise CorruptDataError(f"{codec_id}: chunk header declares a predictor of order {lpc_order}; the data is damaged")
    if num_stages > 8 or len(data) < offset + 2 * num_stages + _CRC.size:
        raise CorruptDataError(f"{codec_id}: chunk header declares {num_stages} predictor stages; the data is damaged")
    stages = tuple((data[offset + 2 * i], data[offset + 2 * i + 1]) for i in range(num_stages))
    if any(order > 64 or rate > 24 for order, rate in stages):
        raise CorruptDataError(f"{codec_id}: chunk header holds an invalid predictor configuration; the data is damaged")
    offset += 2 * num_stages
    (crc,) = _CRC.unpack_from(data, offset)
    offset += _CRC.size
    spike_error = spike_before = spike_after = None
    if version >= ZONED_VERSION:
        if len(data) < offset + _ZONE_HEADER.size:
            raise CorruptDataError(f"{codec_id}: chunk of {len(data)} bytes is too short to hold its spike-window header")
        spike_error, spike_before, spike_after = _ZONE_HEADER.unpack_from(data, offset)
        offset += _ZONE_HEADER.size
        if spike_error > max_error:
            raise CorruptDataError(f"{codec_id}: chunk header fields are invalid; the data is damaged")
    if flags != 0 or num_channels == 0 and num_samples != 0 or max_error > 4096:
        raise CorruptDataError(f"{codec_id}: chunk header fields are invalid; the data is damaged")
    if num_samples * num_channels > (len(data) + 16) * MAX_SAMPLES_PER_BYTE:
        raise CorruptDataError(
            f"{codec_id}: chunk declares {num_samples} x {num_channels} samples, more than {len(data)} bytes can hold; "
            "the data is damaged or forged"
        )
    return {"version": version, "num_samples": num_samples, "num_channels": num_channels, "max_error": max_error,
            "stages": stages, "lpc_order": lpc_order, "spike_error": spike_error, "spike_before": spike_before,
            "spike_after": spike_after, "crc32": crc, "payload_offset": offset}


def decode_chunk(data, codec_id: str = "broadband", return_zone: bool = False):
    """Decode a chunk written by :func:`encode_chunk` into int16 ``(num_samples, num_channels)``.

    With ``return_zone``: ``(traces, zone)``, ``zone`` the uint8 spike-window mask of the chunk
    (1 inside a window; shape (0, 0) when the chunk has none).
    """
    header = read_chunk_header(data, codec_id)
    buffer = np.frombuffer(bytes(data), dtype=np.uint8).copy()  # writable: one kernel serves both directions
    num_samples, num_channels = header["num_samples"], header["num_channels"]
    max_error = header["max_error"]
    rc = decoder_init(buffer, header["payload_offset"])
    side = _SideModel()
    low = np.empty(num_channels, np.int64)
    high = np.empty(num_channels, np.int64)
    step = np.empty(num_channels, np.int64)
    zone_step = np.ones(num_channels, np.int64)
    spike_error = header["spike_error"]
    lattices = []
    for channel in range(num_channels):
        kind = side.get(rc, buffer, 0)
        if kind == LATTICE_NONE:
            parameters = None
            low[channel], high[channel], step[channel] = INT16_MIN, INT16_MAX, 2 * max_error + 1
            if spike_error is not None:
                zone_step[channel] = 2 * spike_error + 1
        elif kind == LATTICE_AFFINE:
            offset, spacing = side.get(rc, buffer, 1), side.get(rc, buffer, 2)
            if not (INT16_MIN <= offset <= INT16_MAX and 2 <= spacing <= 65535):
                raise CorruptDataError(f"{codec_id}: invalid value lattice in the chunk; the data is damaged")
            parameters = (offset, spacing)
            low[channel] = -((offset - INT16_MIN) // spacing)
            high[channel] = (INT16_MAX - offset) // spacing
            step[channel] = 2 * (max_error // spacing) + 1
            if spike_error is not None:
                zone_step[channel] = 2 * (spike_error // spacing) + 1
        elif kind == LATTICE_TABLE:
            first, smallest, count = side.get(rc, buffer, 1), side.get(rc, buffer, 2), side.get(rc, buffer, 3)
            if not (INT16_MIN <= first <= INT16_MAX and 2 <= smallest <= 65535 and 0 <= count <= 65535):
                raise CorruptDataError(f"{codec_id}: invalid value table in the chunk; the data is damaged")
            levels = [first]
            index = 0
            indices = [0]
            for _ in range(count):
                index_gap = side.get(rc, buffer, 4) + 1
                value_gap = side.get(rc, buffer, 5) + index_gap * smallest
                index += index_gap
                if index_gap < 1 or value_gap < 1 or index > 65535 or levels[-1] + value_gap > INT16_MAX or rc[3] > 8:
                    raise CorruptDataError(f"{codec_id}: invalid value table in the chunk; the data is damaged")
                levels.append(levels[-1] + value_gap)
                indices.append(index)
            table = np.full(index + 1, np.iinfo(np.int64).min, dtype=np.int64)
            table[np.array(indices)] = levels
            parameters = table
            low[channel], high[channel], step[channel] = 0, index, 1
        else:
            raise CorruptDataError(f"{codec_id}: unknown value lattice type {kind}; the data is damaged")
        lattices.append((kind, parameters))
        if rc[3] > 8:
            raise CorruptDataError(f"{codec_id}: chunk payload is truncated")
    order = np.arange(num_channels, dtype=np.int64)
    reference = np.full(num_channels, -1, dtype=np.int64)
    has_order = side.get(rc, buffer, 9) if num_channels > 1 else 0
    if has_order not in (0, 1):
        raise CorruptDataError(f"{codec_id}: invalid channel-order flag in the chunk; the data is damaged")
    if has_order:
        order[:] = 0
        seen = np.zeros(num_channels, dtype=bool)
        seen[0] = True
        for position in range(1, num_channels):
            channel = side.get(rc, buffer, 6)
            ref = side.get(rc, buffer, 7) - 1
            if not (0 <= channel < num_channels) or seen[channel] or not (-1 <= ref < num_channels) or (ref >= 0 and not seen[ref]):
                raise CorruptDataError(f"{codec_id}: invalid channel coding order in the chunk; the data is damaged")
            seen[channel] = True
            order[position] = channel
            reference[channel] = ref
    lpc_order = header["lpc_order"]
    fixed_weights = np.zeros((num_channels, lpc_order), dtype=np.int64)
    for channel in range(num_channels):
        coefficients = side.get_array(rc, buffer, lpc_order, 8)
        if lpc_order and not (-32768 <= coefficients.min() and coefficients.max() <= 32767):
            raise CorruptDataError(f"{codec_id}: invalid predictor coefficient in the chunk; the data is damaged")
        fixed_weights[channel] = coefficients
        if rc[3] > 8:
            raise CorruptDataError(f"{codec_id}: chunk payload is truncated")
    tables = [None] * num_channels
    for channel in range(num_channels if header["version"] >= 2 else 0):
        has_table = side.get(rc, buffer, 10)
        if has_table not in (0, 1) or has_table and step[channel] != 1:
            raise CorruptDataError(f"{codec_id}: invalid code-width flag in the chunk; the data is damaged")
        if has_table:
            first, num_width_codes = side.get(rc, buffer, 11), side.get(rc, buffer, 12) + 1
            if not (low[channel] <= first and 1 <= num_width_codes <= MAX_WIDTH_CODES and first + num_width_codes - 1 <= high[channel]):
                raise CorruptDataError(f"{codec_id}: invalid code-width table in the chunk; the data is damaged")
            symbols = side.get_array(rc, buffer, num_width_codes, 13) + WIDTH_SYMBOL_ONE
            if symbols.min() < 0 or symbols.max() >= WIDTH_Q6.size or rc[3] > 8:
                raise CorruptDataError(f"{codec_id}: invalid code-width table in the chunk; the data is damaged")
            tables[channel] = (first, symbols)
    zone = NO_ZONE
    if spike_error is not None:
        events = []
        for channel in range(num_channels):
            count = side.get(rc, buffer, 14)
            if not 0 <= count <= num_samples or rc[3] > 8:
                raise CorruptDataError(f"{codec_id}: invalid spike-event count in the chunk; the data is damaged")
            gaps = side.get_array(rc, buffer, count, 15) + 1
            channel_events = np.cumsum(gaps) - 1
            if count and (gaps.min() < 1 or channel_events[-1] >= num_samples):
                raise CorruptDataError(f"{codec_id}: invalid spike events in the chunk; the data is damaged")
            events.append(channel_events)
        zone = zone_mask(events, num_samples, header["spike_before"], header["spike_after"])
    orders, rates = _stages_array(header["stages"])
    values = np.zeros((num_samples, num_channels), dtype=np.int64)
    status = code_samples(True, values, order, reference, low, high, step, zone, zone_step, fixed_weights, orders, rates,
                          *_widths_arrays(tables, num_channels), rc, buffer, *new_residual_model())
    if status != 0:
        raise CorruptDataError(f"{codec_id}: decoded samples leave the valid range; the data is damaged")
    if rc[3] > 5:
        raise CorruptDataError(f"{codec_id}: chunk payload is truncated ({rc[3]} bytes missing)")
    if all(kind == LATTICE_NONE for kind, _ in lattices):
        traces = values.astype(np.int16)
    else:
        value_rows = np.ascontiguousarray(values.T)  # per-channel work on rows, not strided columns
        trace_rows = np.empty((num_channels, num_samples), dtype=np.int16)
        for channel, (kind, parameters) in enumerate(lattices):
            trace_rows[channel] = _from_domain(value_rows[channel], kind, parameters, codec_id)
        traces = np.ascontiguousarray(trace_rows.T)
    if zlib.crc32(traces.tobytes()) != header["crc32"]:
        raise CorruptDataError(f"{codec_id}: decoded samples do not match the chunk's CRC32; the data is damaged")
    return (traces, zone) if return_zone else traces


__all__ = ["encode_chunk", "decode_chunk", "read_chunk_header", "PRESETS", "MAGIC", "VERSION"]
_ = math  # noqa: F841
