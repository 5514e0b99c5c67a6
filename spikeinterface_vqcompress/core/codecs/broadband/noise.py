"""Noise fill for the near-lossless broadband mode (``broadband``, ``noise_fill=True``).

Past about the noise level, ``max_error`` quantises most prediction residuals of the background to
zero: the decoded background loses its noise (band-passed MAD 30 -> 18 units at ``max_error=48`` on a
MEArec Neuronexus-32 recording), the sorters' noise-relative thresholds follow it down, and they cut
quantisation steps into extra units. Noise fill puts the lost noise back, as parametric noise
substitution: the encoder measures what the quantiser removed, ``e = original - rebuilt`` (bounded by
``max_error``): its power spectrum (pooled over channels, 33 frequency bins) as one zero-phase 32-tap
shaping filter per chunk, and its standard deviation per channel; ~140 bytes per second of 32
channels, 0.2 % of a 30x stream. The decoder adds noise of that shape and level, clipped to
``+/- max_error`` like ``e`` itself.

Matching the level of ``e`` rather than the variance the decoded signal lacks is measured, not
assumed: the quantised reconstruction keeps most of the variance (in rare large steps) while its
background loses most of its noise, so a variance match leaves the background MAD where it was
(17.6 of 30.5 at ``max_error=48`` on a MEArec Neuronexus-32 chunk) where matching ``e`` restores it
(29.6). On strongly low-passed data it adds more high-frequency noise than the original had (``e`` is
whiter than the signal).

Everything at decode is exact integer arithmetic (a counter-based hash for white noise, an integer
convolution, numba kernels that make, shape, scale and add the noise in one pass per step), so
noise-filled chunks decode to the same samples on every machine. The noise is seeded by the chunk's
own checksum: it is fixed by the bytes, not drawn at each read.

``lowpass_background`` (with spike windows, :mod:`.spikes`): outside the windows the decoder keeps
only the low band of the coded signal (below ~1/200 of the sampling rate: three centred running
means of 51 samples, exact integers) and synthesises everything above it, measured as
``original - lowpass(original)`` (not ``original - lowpass(rebuilt)``: the coarse coder's error drifts
slowly, the decoder keeps that drift in the low band, and measuring it into the fill too raised the
decoded noise level by a quarter on a background with sparse large events). Past the noise level the near-lossless background is a predictor
running free between rare correction steps of ``2 * max_error + 1``, and each step rings through
the predictor as a spike-like transient: with noise added on top (``noise_fill`` alone) the
sorters still cut those into units (tridesclous2 24 -> 46 units at 34x on a MEArec Neuronexus-32
tuning recording); with the low band only they do not (26). The synthetic sum is kept within ``2 *
max_error`` of the coded samples, so the bound is ``3 * max_error`` there.

``noise_neighbours=K`` (format 2, flag bit 1) keeps the background's spatial correlation, which real
recordings have and independent per-channel noise does not (band-passed neighbouring-channel
correlation of the quiet samples: locust tetrode 0.21, Open Ephys 16 ch 0.47, MEArec 0.07; with
independent fill 0.04-0.08 everywhere): the encoder fits, on the normalised removed noise, each
channel on its ``K`` predecessors in channel order (least squares, Q12 coefficients and the
innovation's gain, ``2 (K + 1)`` bytes per channel, ``K`` at most the channels - 1), and the decoder builds each channel's noise as
that combination of the previous channels' synthetic noise plus its own shaped white noise, in exact
integers. With ``lowpass_background`` the level sent is the removed noise's robust level (median
absolute deviation / 0.6745, what sorters measure) rather than its standard deviation, which a
real background's sub-threshold spikes inflate.

What it costs: the decoded samples are no longer within ``max_error`` of the original but within
``2 * max_error`` (the quantiser's error plus noise of the same bound); the noise is statistically
like what was lost, not the lost samples themselves.
"""

from __future__ import annotations

import math
import struct
import zlib

import numba
import numpy as np

from spikeinterface_vqcompress.core.errors import CorruptDataError
from spikeinterface_vqcompress.core.robust import twice_median_kernel

MAGIC = b"BBNF"
VERSION = 1
#: version 2 adds a flags byte after the header; bit 0: low-pass background
LOWPASS_VERSION = 2
READABLE_VERSIONS = (1, 2)
_FLAG_LOWPASS = 1
#: flag bit 1 (format 2): spatial noise model (``noise_neighbours``) after the levels
_FLAG_SPATIAL = 2
_KNOWN_FLAGS = _FLAG_LOWPASS | _FLAG_SPATIAL
#: the largest ``noise_neighbours``
MAX_NEIGHBOURS = 16
SPATIAL_FRACTION_BITS = 12
#: fewest background samples a channel's spatial fit needs (fewer: its noise stays independent)
_MIN_FIT_SAMPLES = 256
#: the low-pass of ``lowpass_background``: three passes of a centred running mean of this many samples
LOWPASS_WIDTH = 51
LOWPASS_PASSES = 3
NUM_TAPS = 32
FFT_SIZE = 64
TAP_FRACTION_BITS = 12
LEVEL_FRACTION_BITS = 4  # the per-channel level is sent in 1/16 stored units
_HEADER = struct.Struct("<4sBBI")  # magic, version, number of taps, length of the wrapped chunk
#: standard deviation of the sum of four uniform bytes (Irwin-Hall, n = 4: sqrt(4 * (256 ** 2 - 1) / 12)), rounded
_WHITE_STD = 148


def white_noise(seed: int, num_samples: int, num_channels: int) -> np.ndarray:
    """``(num_channels, num_samples)`` int64 near-Gaussian integers (sums of four uniform bytes, centred;
    std ~``_WHITE_STD``), a function of ``seed`` only: one 64-bit hash gives two samples
    (:func:`_white_value`; the decoder makes the same samples on the fly, :func:`_shaped_noise`)."""
    return _white_rows(_seed_base(seed), int(num_channels), int(num_samples))


def _seed_base(seed: int) -> np.uint64:
    return np.uint64((int(seed) << 32) & 0xFFFFFFFFFFFFFFFF)


@numba.njit(cache=True, inline="always")
def _white_value(base, j):
    """Value ``j`` of the row-major ``(channel, sample)`` white noise of ``base = seed << 32``: half ``j % 2``
    (low 32 bits first, as little-endian) of the SplitMix64 finaliser of counter ``base + j // 2``
    (wrapping arithmetic), as the sum of its four bytes minus 510."""
    z = base + np.uint64(j >> 1)
    z = z * np.uint64(0x9E3779B97F4A7C15)
    z = (z ^ (z >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    z = z ^ (z >> np.uint64(31))
    if j & 1:
        z = z >> np.uint64(32)
    word = z & np.uint64(0xFFFFFFFF)
    pairs = (word & np.uint64(0x00FF00FF)) + ((word >> np.uint64(8)) & np.uint64(0x00FF00FF))  # two sums of two bytes
    return np.int64(pairs & np.uint64(0xFFFF)) + np.int64(pairs >> np.uint64(16)) - 510


@numba.njit(cache=True)
def _white_rows(base, num_channels, num_samples):
    white = np.empty((num_channels, num_samples), np.int64)
    for channel in range(num_channels):
        for i in range(num_samples):
            white[channel, i] = _white_value(base, channel * num_samples + i)
    return white


def _power_spectrum(traces: np.ndarray) -> np.ndarray:
    """Power spectrum (``FFT_SIZE // 2 + 1`` bins) of ``traces``, averaged over Hann-windowed segments and channels."""
    num_samples, num_channels = traces.shape
    num_segments = num_samples // FFT_SIZE
    segments = traces[: num_segments * FFT_SIZE].reshape(num_segments, FFT_SIZE, num_channels)
    segments = segments - segments.mean(axis=1, keepdims=True)
    window = np.hanning(FFT_SIZE)[None, :, None]
    return np.mean(np.abs(np.fft.rfft(segments * window, axis=1)) ** 2, axis=(0, 2))


def _shape_filter(error: np.ndarray) -> np.ndarray:
    """Q12 taps (unit energy) of the zero-phase filter whose power response is the spectrum of ``error``
    (pooled over channels)."""
    taps = np.zeros(NUM_TAPS)
    taps[NUM_TAPS // 2] = 1.0  # white, when the chunk is too short to measure a spectrum
    if error.shape[0] >= 4 * FFT_SIZE:
        spectrum = _power_spectrum(error)
        if spectrum.sum() > 0:
            response = np.fft.fftshift(np.fft.irfft(np.sqrt(spectrum), n=FFT_SIZE))
            centre = FFT_SIZE // 2
            taps = response[centre - NUM_TAPS // 2: centre + NUM_TAPS // 2] * np.hanning(NUM_TAPS + 2)[1:-1]
    taps = taps / np.sqrt(np.sum(taps ** 2))
    return np.clip(np.round(taps * (1 << TAP_FRACTION_BITS)), -32768, 32767).astype(np.int16)


class SpatialModel:
    """Each channel's noise as a combination of its ``K`` predecessors' (channel order) plus its own
    innovation: ``coefficients`` (``(num_channels, K)`` int16 Q12, predecessor ``c - 1`` first) and
    ``gains`` (uint16 Q12, the innovation's share of the standard deviation)."""

    def __init__(self, coefficients: np.ndarray, gains: np.ndarray):
        self.coefficients = np.asarray(coefficients, dtype=np.int64)
        self.gains = np.asarray(gains, dtype=np.int64)

    @property
    def num_neighbours(self) -> int:
        return self.coefficients.shape[1]

    @classmethod
    def fit(cls, error: np.ndarray, where: np.ndarray | None, num_neighbours: int) -> "SpatialModel":
        """Least-squares fit on ``error`` (``(num_samples, num_channels)``), each channel normalised
        to unit variance, on the samples where the channel and its predecessors are all in ``where``."""
        num_samples, num_channels = error.shape
        coefficients = np.zeros((num_channels, num_neighbours))
        gains = np.ones(num_channels)
        scale = error.std(axis=0) if where is None else np.sqrt(
            np.sum(np.where(where, error, 0.0) ** 2, axis=0) / np.maximum(where.sum(axis=0), 1))
        normalised = error / np.where(scale > 0, scale, 1.0)
        for channel in range(1, num_channels):
            order = min(num_neighbours, channel)
            columns = list(range(channel - 1, channel - 1 - order, -1))
            rows = slice(None) if where is None else where[:, [channel] + columns].all(axis=1)
            target, predictors = normalised[rows, channel], normalised[rows][:, columns]
            if target.size < _MIN_FIT_SAMPLES or scale[channel] == 0 or np.any(scale[columns] == 0):
                continue
            solution, *_ = np.linalg.lstsq(predictors, target, rcond=None)
            solution = np.clip(solution, -7.9, 7.9)
            residual = target - predictors @ solution
            coefficients[channel, :order] = solution
            gains[channel] = np.sqrt(np.clip(np.mean(residual ** 2) / max(np.mean(target ** 2), 1e-12), 0.0, 1.0))
        one = 1 << SPATIAL_FRACTION_BITS
        return cls(np.round(coefficients * one).astype(np.int16), np.round(gains * one).astype(np.uint16))

    def to_bytes(self) -> bytes:
        return (bytes([self.num_neighbours]) + self.coefficients.astype("<i2").tobytes()
                + self.gains.astype("<u2").tobytes())

    @classmethod
    def from_bytes(cls, data: bytes, offset: int, num_channels: int, codec_id: str) -> "SpatialModel":
        if offset >= len(data):
            raise CorruptDataError(f"{codec_id}: noise-filled chunk lacks its spatial noise model; the data is damaged")
        num_neighbours = data[offset]
        expected = offset + 1 + 2 * num_channels * (num_neighbours + 1)
        if not 1 <= num_neighbours <= MAX_NEIGHBOURS or len(data) != expected:
            raise CorruptDataError(f"{codec_id}: noise-filled chunk's spatial model ({num_neighbours} neighbours, "
                                   f"{len(data) - offset} bytes) does not fit its layout; the data is damaged")
        coefficients = np.frombuffer(data, dtype="<i2", count=num_channels * num_neighbours, offset=offset + 1)
        gains = np.frombuffer(data, dtype="<u2", count=num_channels, offset=offset + 1 + 2 * coefficients.size)
        return cls(coefficients.reshape(num_channels, num_neighbours), gains)

    def mix(self, innovations: np.ndarray) -> np.ndarray:
        """``(num_channels, num_samples)`` int64 innovations -> correlated noise of the same scale, exact integers."""
        mixed = np.empty_like(innovations)
        for channel in range(innovations.shape[0]):
            total = self.gains[channel] * innovations[channel]
            for lag in range(1, min(self.num_neighbours, channel) + 1):
                if self.coefficients[channel, lag - 1]:
                    total = total + self.coefficients[channel, lag - 1] * mixed[channel - lag]
            mixed[channel] = np.floor_divide(total + (1 << (SPATIAL_FRACTION_BITS - 1)), 1 << SPATIAL_FRACTION_BITS)
        return mixed


def side_information(original: np.ndarray, rebuilt: np.ndarray, where: np.ndarray | None = None,
                     robust_level: bool = False, num_neighbours: int = 0):
    """``(taps, levels, spatial)``: the removed noise's shape (int16 Q12), per-channel level (uint16, 1/16
    units) and spatial model (:class:`SpatialModel` with ``num_neighbours``, else None), measured on
    ``original - rebuilt``.

    ``where`` (optional, bool like the traces): only these samples are filled, so only they are
    measured (the spectrum from the error with the others set to zero, scaled back by the fraction kept).
    ``robust_level``: the level is the median absolute deviation / 0.6745 instead of the standard deviation
    (of integer traces: the codec's int16 samples and their integer reconstructions).
    """
    num_neighbours = min(num_neighbours, original.shape[1] - 1)  # a channel has at most num_channels - 1 predecessors
    if robust_level:  # integer samples: exact medians from histograms (numpy's float medians cost 30x more)
        levels, masked = _robust_measurements(original, rebuilt, where)
        if num_neighbours <= 0:  # the kernel's error, unfilled samples zeroed, is all the spectrum needs
            return _shape_filter(masked), _quantised_levels(levels), None
    error = original.astype(np.float64) - rebuilt.astype(np.float64)
    spatial = SpatialModel.fit(error, where, num_neighbours) if num_neighbours > 0 else None
    if where is None:
        taps = _shape_filter(error)
        if not robust_level:
            levels = error.std(axis=0)
    else:
        error = np.where(where, error, 0.0)
        taps = _shape_filter(error)
        if not robust_level:
            kept = np.maximum(where.sum(axis=0), 1)
            mean = error.sum(axis=0) / kept
            levels = np.sqrt(np.maximum((error ** 2).sum(axis=0) / kept - mean ** 2, 0.0))
    return taps, _quantised_levels(levels), spatial


def _quantised_levels(levels):
    return np.clip(np.round(levels * (1 << LEVEL_FRACTION_BITS)), 0, 65535).astype(np.uint16)


def _robust_levels(error: np.ndarray, where: np.ndarray | None = None) -> np.ndarray:
    """Per-channel median absolute deviation / 0.6745 of integer ``error`` (``(num_samples, num_channels)``),
    over the samples in ``where`` when given (0 for a channel with none)."""
    return _robust_measurements(error, None, where)[0]


def _robust_measurements(original: np.ndarray, rebuilt: np.ndarray | None, where: np.ndarray | None):
    """``(levels, error)``: :func:`_robust_levels` of the integer ``original - rebuilt`` (``rebuilt`` None:
    zero) and that error as float64 ``(num_samples, num_channels)`` with the samples outside ``where`` set
    to zero, in one pass over the chunk (no float copies of it)."""
    original = np.asarray(original)
    rebuilt_rows = np.zeros((0, 0), np.int64) if rebuilt is None else np.ascontiguousarray(np.asarray(rebuilt, np.int64).T)
    if where is None:
        return _robust_kernel(original, rebuilt_rows, np.ones((1, 1), np.bool_), False)
    return _robust_kernel(original, rebuilt_rows, np.asarray(where, dtype=np.bool_), True)


@numba.njit(cache=True)
def _robust_kernel(original, rebuilt_rows, where, use_where):
    num_samples, num_channels = original.shape
    subtract = rebuilt_rows.shape[0] > 0
    masked = np.zeros((num_samples, num_channels))
    kept = np.empty((num_channels, num_samples), np.int64)  # per channel, its measured samples in turn
    counts = np.zeros(num_channels, np.int64)
    for t in range(num_samples):
        for channel in range(num_channels):
            if not use_where or where[t, channel]:
                error = np.int64(original[t, channel]) - (rebuilt_rows[channel, t] if subtract else 0)
                masked[t, channel] = error
                kept[channel, counts[channel]] = error
                counts[channel] += 1
    levels = np.zeros(num_channels)
    for channel in range(num_channels):
        if counts[channel]:
            row = kept[channel, : counts[channel]]
            centre = twice_median_kernel(row)
            for i in range(row.size):  # twice |e - median|: integers
                row[i] = abs(2 * row[i] - centre)
            levels[channel] = twice_median_kernel(row) / 4 / 0.6745
    return levels, masked


def lowpass(traces: np.ndarray) -> np.ndarray:
    """The low band of ``(num_samples, num_channels)`` integer traces, int64, exact on every machine.

    ``LOWPASS_PASSES`` centred running means of ``LOWPASS_WIDTH`` samples (edges repeated), summed in
    int64 and divided once, rounded: a sinc-cubed response, -3 dB at ~0.005 of the sampling rate
    (154 Hz at 30 kHz; 0.24 at 300 Hz), below -40 dB from 0.02 of it (600 Hz) on.
    """
    return lowpass_rows(traces).T


def lowpass_rows(traces: np.ndarray) -> np.ndarray:
    """:func:`lowpass` channel-major: ``(num_channels, num_samples)`` int64."""
    rows = np.array(np.asarray(traces).T, dtype=np.int64, order="C")  # one row per channel: contiguous sums
    if rows.shape[1]:
        _lowpass_rows(rows)
    return rows


_LOWPASS_DENOMINATOR = LOWPASS_WIDTH ** LOWPASS_PASSES


@numba.njit(cache=True)
def _lowpass_rows(rows):
    """In place: each row's ``LOWPASS_PASSES`` centred sums of ``LOWPASS_WIDTH`` samples (the row's first
    and last values repeated beyond its ends; exact int64, |sum| < 2 ** 15 * 51 ** 3 < 2 ** 33), divided
    by ``LOWPASS_WIDTH ** LOWPASS_PASSES`` and rounded (floor of ``sum + denominator // 2``). The
    constants are compiled in (a division by a constant is a multiplication)."""
    half = LOWPASS_WIDTH // 2
    passes = LOWPASS_PASSES
    denominator = _LOWPASS_DENOMINATOR
    num_channels, num_samples = rows.shape
    width = 2 * half + 1
    padded = np.empty(num_samples + 2 * half, np.int64)
    for channel in range(num_channels):
        row = rows[channel]
        for _ in range(passes):
            padded[:half] = row[0]
            padded[half:half + num_samples] = row
            padded[half + num_samples:] = row[num_samples - 1]
            total = np.int64(0)
            for k in range(width):
                total += padded[k]
            row[0] = total
            for i in range(1, num_samples):
                total += padded[i + width - 1] - padded[i - 1]
                row[i] = total
        for i in range(num_samples):
            row[i] = (row[i] + denominator // 2) // denominator


def wrap(core: bytes, taps: np.ndarray, levels: np.ndarray, spatial: SpatialModel | None = None,
         lowpass_background: bool = False) -> bytes:
    """The noise-filled chunk: header (and flags, with ``lowpass_background`` or a spatial model), the
    near-lossless chunk, taps, levels (and the spatial model)."""
    flags = (_FLAG_LOWPASS if lowpass_background else 0) | (_FLAG_SPATIAL if spatial is not None else 0)
    if flags:
        head = _HEADER.pack(MAGIC, LOWPASS_VERSION, len(taps), len(core)) + bytes([flags])
    else:  # version 1, byte for byte as before
        head = _HEADER.pack(MAGIC, VERSION, len(taps), len(core))
    tail = b"" if spatial is None else spatial.to_bytes()
    return head + core + taps.astype("<i2").tobytes() + levels.astype("<u2").tobytes() + tail


def unwrap(data: bytes, num_channels: int, codec_id: str = "broadband"):
    """``(core, taps, levels, spatial, lowpass_background)`` of a noise-filled chunk (``spatial`` a
    :class:`SpatialModel` or None); damaged layouts raise :class:`CorruptDataError`."""
    data = bytes(data)
    if len(data) < _HEADER.size:
        raise CorruptDataError(f"{codec_id}: noise-filled chunk is truncated")
    magic, version, num_taps, core_length = _HEADER.unpack_from(data)
    if magic != MAGIC:
        raise CorruptDataError(f"{codec_id}: chunk lacks the noise-fill marker; the data is damaged "
                               "or was written without noise_fill")
    if version not in READABLE_VERSIONS:
        raise CorruptDataError(f"{codec_id}: noise-fill format {version} is not readable by this version; upgrade")
    start = _HEADER.size + (1 if version >= LOWPASS_VERSION else 0)
    flags = data[_HEADER.size] if version >= LOWPASS_VERSION and len(data) > _HEADER.size else 0
    if flags & ~_KNOWN_FLAGS:
        raise CorruptDataError(f"{codec_id}: noise-filled chunk has unknown flags {flags:#04x}; the data is damaged "
                               "or was written by a newer version")
    expected = start + core_length + 2 * num_taps + 2 * num_channels
    if num_taps == 0 or len(data) < expected or (len(data) != expected and not flags & _FLAG_SPATIAL):
        raise CorruptDataError(f"{codec_id}: noise-filled chunk has {len(data)} bytes where its header implies {expected}; "
                               "the data is damaged")
    core = data[start:start + core_length]
    taps = np.frombuffer(data, dtype="<i2", count=num_taps, offset=start + core_length).astype(np.int64)
    levels = np.frombuffer(data, dtype="<u2", count=num_channels, offset=start + core_length + 2 * num_taps).astype(np.int64)
    spatial = SpatialModel.from_bytes(data, expected, num_channels, codec_id) if flags & _FLAG_SPATIAL else None
    return core, taps, levels, spatial, bool(flags & _FLAG_LOWPASS)


def synthesise(seed: int, taps: np.ndarray, levels: np.ndarray, num_samples: int, max_error: int,
               spatial: SpatialModel | None = None) -> np.ndarray:
    """The noise to add, ``(num_samples, num_channels)`` int64, within ``+/- max_error`` (correlated
    across channels by ``spatial`` when given).

    Exact on every machine: the white noise is integer (:func:`white_noise`), and the shaping filter
    and the level are integer arithmetic (numba kernels: the same samples as a float64 ``np.convolve``
    of these integers, whose partial sums stay below 2 ** 53).
    """
    return synthesise_rows(seed, taps, levels, num_samples, max_error, spatial).T


def synthesise_rows(seed: int, taps: np.ndarray, levels: np.ndarray, num_samples: int, max_error: int,
                    spatial: SpatialModel | None = None) -> np.ndarray:
    """:func:`synthesise` channel-major: ``(num_channels, num_samples)`` int64."""
    taps = np.ascontiguousarray(taps, dtype=np.int64)
    levels = np.ascontiguousarray(levels, dtype=np.int64)
    num_channels = len(levels)
    shaped = _shaped_noise(_seed_base(seed), taps, num_channels, int(num_samples))
    if spatial is not None:  # int64 throughout: |shaped| < 2 ** 29, Q12 sums of <= 17 terms stay below 2 ** 47
        shaped = spatial.mix(shaped)
    norm = math.isqrt(int(np.sum(taps * taps))) or 1
    return _scaled(shaped, levels, _WHITE_STD * norm * (1 << LEVEL_FRACTION_BITS), int(max_error))


@numba.njit(cache=True)
def _shaped_noise(base, taps, num_channels, num_samples):
    """``(num_channels, num_samples)`` int64: :func:`white_noise` ``(base = seed << 32)`` convolved with
    ``taps`` (``np.convolve(..., mode="valid")``), the white samples made on the fly."""
    margin = taps.size - 1
    length = num_samples + margin
    shaped = np.empty((num_channels, num_samples), np.int64)
    white = np.empty(length, np.int64)
    flipped = taps[::-1].copy()
    for channel in range(num_channels):
        for i in range(length):
            white[i] = _white_value(base, channel * length + i)
        for i in range(num_samples):
            total = np.int64(0)
            for k in range(margin + 1):
                total += white[i + k] * flipped[k]
            shaped[channel, i] = total
    return shaped


@numba.njit(cache=True)
def _scaled(shaped, levels, denominator, bound):
    """``floor((shaped * level + denominator // 2) / denominator)`` per channel, clipped to ``+/- bound``."""
    num_channels, num_samples = shaped.shape
    out = np.empty((num_channels, num_samples), np.int64)
    half = denominator // 2
    for channel in range(num_channels):
        level = levels[channel]
        for i in range(num_samples):
            value = (shaped[channel, i] * level + half) // denominator
            out[channel, i] = min(max(value, -bound), bound)
    return out


def fill(traces: np.ndarray, noise_rows: np.ndarray, zone: np.ndarray, max_error: int, lowpass_background: bool) -> np.ndarray:
    """The decoded chunk: coded ``traces`` (``(num_samples, num_channels)`` int16) plus the noise
    ``noise_rows`` (:func:`synthesise_rows`) outside the spike windows ``zone`` (shape (0, 0): none),
    int16. With ``lowpass_background`` the low band of ``traces`` plus the noise, kept within ``2 *
    max_error`` of ``traces``."""
    low = lowpass_rows(traces) if lowpass_background else np.zeros((0, 0), np.int64)
    return _fill(traces, noise_rows, zone, int(max_error), bool(lowpass_background), low)


@numba.njit(cache=True)
def _fill(traces, noise_rows, zone, max_error, lowpass_background, low):
    num_samples, num_channels = traces.shape
    out = np.empty((num_samples, num_channels), np.int16)
    zoned = zone.shape[0] > 0
    for t in range(num_samples):
        for channel in range(num_channels):
            coded = np.int64(traces[t, channel])
            if zoned and zone[t, channel]:
                value = coded  # spike windows keep their own (tighter) error, unfilled
            elif lowpass_background:
                value = min(max(low[channel, t] + noise_rows[channel, t], coded - 2 * max_error), coded + 2 * max_error)
            else:
                value = coded + noise_rows[channel, t]
            out[t, channel] = min(max(value, -32768), 32767)
    return out


def seed_of(core: bytes) -> int:
    """The chunk's noise seed: a checksum of its near-lossless bytes."""
    return zlib.crc32(core)
