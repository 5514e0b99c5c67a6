"""The background between spikes, rebuilt at the decoder from transmitted noise statistics.

The spike-snippet codec transmits spikes, not the samples between them. The decoder fills the rest
of the recording with *synthesised* noise that matches, per channel, what the encoder measured:

- the level: the standard deviation of the samples outside the detected spike windows, quantised
  to 1/16 octave (one byte per channel);
- the spectrum: an all-pole (AR) model of order ``ar_order`` fitted with Levinson-Durbin on the
  same samples, sent as reflection coefficients quantised in the arcsine domain (one byte each;
  every quantised value gives a stable filter; ``|k|`` stays below :data:`MAX_REFLECTION`, where the
  recursion stops on an estimate that is not positive definite);
- optionally, the spatial correlation: ``spatial_rank`` common factors of the AR innovations
  (a low-rank channel covariance), one byte per channel and factor. MEArec noise is independent
  across channels (measured mean |correlation| 0.04 on a Neuronexus-32 recording), so the codec
  leaves it off by default;
- the DC offset: the per-channel median of the block (:func:`channel_offsets`; 0 when it is
  below an eighth of the noise level), an int16 per channel (two bytes) sent only when one of
  them is not zero. Unsigned ADC data stored as int16 sits at ~2048 units; the encoder
  subtracts the offset before detection and the decoder adds it back after the spikes are
  pasted (:func:`synthesise_background` itself is zero-mean).

The synthesised samples are not the recorded ones: a recording rebuilt this way is flagged as
such (``"background": "synthesised"`` in the codec config stored in the container header, and a
``vqcompress_synthesised_background`` annotation on the rebuilt recording).

No spikeinterface import here. The background's moments are one numba kernel (:func:`_background_moments`).
"""

from __future__ import annotations

import struct
from dataclasses import dataclass

import numba
import numpy as np

from spikeinterface_vqcompress.core.errors import CorruptDataError
from spikeinterface_vqcompress.core.robust import twice_row_medians

_LEVEL_STEPS_PER_OCTAVE = 16
_LEVEL_OFFSET_OCTAVES = 4  # level code 0 is 2**-4 units
_REFLECTION_SCALE = 127.0
_HEADER = struct.Struct("<BBB")  # ar_order, spatial_rank, flags (chunk format 1: always 0)
#: Flag of :data:`_HEADER`: per-channel int16 offsets follow the loadings.
FLAG_OFFSETS = 0x01


@dataclass
class BackgroundModel:
    """Per-channel noise statistics (already quantised when decoded from bytes).

    Attributes
    ----------
    levels : np.ndarray
        ``(num_channels,)`` standard deviation of the background, in trace units.
    reflection : np.ndarray
        ``(num_channels, ar_order)`` reflection coefficients in (-1, 1).
    loadings : np.ndarray
        ``(num_channels, spatial_rank)`` loadings of the common factors on the unit-variance
        innovations (rows with squared norm < 1).
    offsets : np.ndarray | None, default: None
        ``(num_channels,)`` int16 DC offset of each channel in trace units (the block's median),
        added back by the decoder; None means 0 on every channel (and costs no byte).
    """

    levels: np.ndarray
    reflection: np.ndarray
    loadings: np.ndarray
    offsets: np.ndarray | None = None

    @property
    def num_channels(self) -> int:
        return int(self.levels.shape[0])

    # -- bytes ------------------------------------------------------------------------------
    @property
    def has_offsets(self) -> bool:
        """True when some channel has a non-zero offset (then the offsets are sent)."""
        return self.offsets is not None and bool(np.any(np.asarray(self.offsets) != 0))

    def to_bytes(self) -> bytes:
        """Quantise and serialise: ``3 + num_channels * (1 + ar_order + spatial_rank)`` bytes, plus
        ``2 * num_channels`` (int16 offsets) when an offset is not zero."""
        ar_order = self.reflection.shape[1]
        rank = self.loadings.shape[1]
        level_codes = np.clip(np.round((np.log2(np.maximum(self.levels, 1e-9)) + _LEVEL_OFFSET_OCTAVES) * _LEVEL_STEPS_PER_OCTAVE), 0, 255).astype(np.uint8)
        reflection_codes = np.clip(np.round(np.arcsin(np.clip(self.reflection, -1, 1)) / (np.pi / 2) * _REFLECTION_SCALE), -127, 127).astype(np.int8)
        loading_codes = np.clip(np.round(self.loadings * 127.0), -127, 127).astype(np.int8)
        flags = FLAG_OFFSETS if self.has_offsets else 0
        data = _HEADER.pack(ar_order, rank, flags) + level_codes.tobytes() + reflection_codes.tobytes() + loading_codes.tobytes()
        if flags & FLAG_OFFSETS:
            data += np.asarray(self.offsets, dtype="<i2").tobytes()
        return data

    @classmethod
    def from_bytes(cls, data: bytes, num_channels: int, allow_offsets: bool = True) -> "BackgroundModel":
        """Inverse of :meth:`to_bytes` (raises :class:`CorruptDataError` on a size mismatch).

        ``allow_offsets=False`` reads the statistics of chunk format 1, written before the offsets
        existed (their flags byte is always 0; the offsets are 0).
        """
        if len(data) < _HEADER.size:
            raise CorruptDataError("spike-cae: background statistics are truncated")
        ar_order, rank, flags = _HEADER.unpack_from(data, 0)
        if flags & ~(FLAG_OFFSETS if allow_offsets else 0):
            raise CorruptDataError(f"spike-cae: background statistics carry unknown flags {flags:#04x}; the data is damaged")
        expected = _HEADER.size + num_channels * (1 + ar_order + rank) + (2 * num_channels if flags & FLAG_OFFSETS else 0)
        if len(data) != expected:
            raise CorruptDataError(f"spike-cae: background statistics hold {len(data)} bytes where {expected} are expected")
        position = _HEADER.size
        level_codes = np.frombuffer(data, dtype=np.uint8, count=num_channels, offset=position)
        position += num_channels
        reflection_codes = np.frombuffer(data, dtype=np.int8, count=num_channels * ar_order, offset=position).reshape(num_channels, ar_order)
        position += num_channels * ar_order
        loading_codes = np.frombuffer(data, dtype=np.int8, count=num_channels * rank, offset=position).reshape(num_channels, rank)
        levels = 2.0 ** (level_codes.astype(np.float64) / _LEVEL_STEPS_PER_OCTAVE - _LEVEL_OFFSET_OCTAVES)
        # streams written before MAX_REFLECTION may hold coefficients up to 1 (no innovation: silence)
        reflection = np.clip(np.sin(reflection_codes.astype(np.float64) / _REFLECTION_SCALE * (np.pi / 2)),
                             -MAX_REFLECTION, MAX_REFLECTION)
        loadings = loading_codes.astype(np.float64) / 127.0
        offsets = None
        if flags & FLAG_OFFSETS:
            position += num_channels * rank
            offsets = np.frombuffer(data, dtype="<i2", count=num_channels, offset=position).astype(np.int16)
        return cls(levels=levels, reflection=reflection, loadings=loadings, offsets=offsets)


def channel_offsets(traces: np.ndarray, stride: int = 8, dead_zone_standard_errors: float = 3.0,
                    dead_zone_noise_fraction: float = 0.125) -> np.ndarray:
    """The DC offset of each channel of a block: the median of every ``stride``-th sample, rounded,
    as int16 ``(num_channels,)`` (0 for an empty block).

    A median, not a mean: the spikes (large, one-signed troughs) do not pull it. An offset within
    ``dead_zone_standard_errors`` standard errors of the median (``1.2533 * noise / sqrt(n)``, the
    noise from the MAD) or within ``dead_zone_noise_fraction`` of the noise level is 0: it is lost
    in the noise, and sending it would cost 2 bytes per channel for nothing. A band-passed
    recording (medians of -2 to +1 units under ~30 units of noise on MEArec data) then sends no
    offset at all, while the ~2048 units of unsigned ADC data stored as int16 are kept.
    """
    sample = np.asarray(traces)[:: max(int(stride), 1)]
    if sample.shape[0] == 0:
        return np.zeros(np.asarray(traces).shape[1], dtype=np.int16)
    if sample.dtype.kind in "iu":  # exact integer medians (what np.median gives in float32, without its sorts)
        rows = np.ascontiguousarray(np.ascontiguousarray(sample).T)  # one row per channel
        twice = twice_row_medians(rows)
        deviations = np.abs(2 * rows.astype(np.int64) - twice[:, None])  # 2 |x - median|
        median = (twice / 2).astype(np.float32)
        noise = (twice_row_medians(deviations) / 4).astype(np.float32) * 1.4826
    else:
        sample = sample.astype(np.float32)
        median = np.median(sample, axis=0)
        noise = np.median(np.abs(sample - median[None, :]), axis=0) * 1.4826
    dead_zone = np.maximum(dead_zone_standard_errors * 1.2533 * noise / np.sqrt(sample.shape[0]), dead_zone_noise_fraction * noise)
    offsets = np.round(median)
    offsets[np.abs(offsets) <= dead_zone] = 0
    return np.clip(offsets, -32768, 32767).astype(np.int16)


def remove_offsets(traces: np.ndarray, offsets: np.ndarray) -> np.ndarray:
    """``traces - offsets`` per channel, in the dtype of ``traces`` (int16 saturates at its range)."""
    traces = np.asarray(traces)
    if not np.any(offsets):
        return traces
    if traces.dtype.kind in "iu":
        info = np.iinfo(traces.dtype)
        offsets = np.asarray(offsets, dtype=np.int64)
        if traces.shape[0] and (traces.min(axis=0) - offsets >= info.min).all() and (traces.max(axis=0) - offsets <= info.max).all():
            return traces - offsets.astype(traces.dtype)[None, :]  # cannot overflow: stay in the trace dtype
        centred = traces.astype(np.int32) - offsets.astype(np.int32)[None, :]
        return np.clip(centred, info.min, info.max).astype(traces.dtype)
    return traces - np.asarray(offsets, dtype=traces.dtype)[None, :]


#: the largest |reflection coefficient| the background model uses: an order whose coefficient would
#: reach it (an autocorrelation estimate that is not positive definite, as gapped data can give) ends
#: the recursion, and the decoder clips older streams to it (a coefficient of 1 synthesised silence)
MAX_REFLECTION = 0.999


def levinson_durbin(autocorrelation: np.ndarray, order: int) -> tuple[np.ndarray, float]:
    """Reflection coefficients and prediction-error power from autocorrelation lags ``0..order``.

    The autocorrelation of samples left between spike windows is estimated over the pairs of kept
    samples, which need not be positive definite: where a step would need ``|k| >= MAX_REFLECTION``
    the recursion stops and the higher coefficients stay 0 (the model of the order before, which is
    valid), instead of a coefficient of ~1 whose innovation is ~0 (a silent background).
    """
    r = np.asarray(autocorrelation, dtype=np.float64)
    if r[0] <= 0:
        return np.zeros(order), 0.0
    a = np.zeros(order + 1)
    a[0] = 1.0
    error = r[0]
    reflection = np.zeros(order)
    for i in range(1, order + 1):
        accumulator = r[i] + np.dot(a[1:i], r[i - 1:0:-1])
        k = -accumulator / error
        if not abs(k) < MAX_REFLECTION:
            break
        reflection[i - 1] = k
        a[1:i] = a[1:i] + k * a[i - 1:0:-1]
        a[i] = k
        error *= 1.0 - k * k
    return reflection, error


def reflection_to_polynomial(reflection: np.ndarray) -> np.ndarray:
    """Step-up recursion: reflection coefficients -> ``[1, a_1, ..., a_p]`` of ``A(z)``."""
    a = np.array([1.0])
    for k in reflection:
        extended = np.concatenate([a, [0.0]])
        a = extended + k * extended[::-1]
    return a


def spike_window_mask(num_samples: int, num_channels: int, times, channel_groups, start_offset: int, length: int) -> np.ndarray:
    """Boolean ``(num_samples, num_channels)`` mask of the samples covered by spike snippets."""
    mask = np.zeros((num_samples, num_channels), dtype=bool)
    times = np.asarray(times, dtype=np.int64)
    if times.size == 0:
        return mask
    sample_index = times[:, None] + start_offset + np.arange(length)[None, :]
    sample_index = np.clip(sample_index, 0, num_samples - 1)
    channel_groups = np.asarray(channel_groups, dtype=np.int64)
    mask[sample_index[:, None, :], channel_groups[:, :, None]] = True
    return mask


def _sample_segments(array: np.ndarray, max_samples: int, segment_samples: int = 512) -> np.ndarray:
    """Evenly spaced segments of ``segment_samples`` rows covering about ``max_samples`` rows, stacked."""
    num_samples = array.shape[0]
    if max_samples is None or num_samples <= max_samples:
        return array
    num_segments = max(int(max_samples) // segment_samples, 1)
    starts = np.linspace(0, num_samples - segment_samples, num_segments).astype(np.int64)
    return np.stack([array[start:start + segment_samples] for start in starts])


def estimate_background(traces: np.ndarray, ar_order: int = 6, spatial_rank: int = 0, exclude_mask: np.ndarray | None = None,
                        max_samples: int | None = None) -> BackgroundModel:
    """Fit the background statistics of one block.

    Parameters
    ----------
    traces : np.ndarray
        ``(num_samples, num_channels)`` block.
    ar_order : int, default: 6
        Order of the per-channel AR spectrum model (0: white noise at the right level).
    spatial_rank : int, default: 0
        Number of common factors modelling the correlation between channels.
    exclude_mask : np.ndarray | None, default: None
        True where samples belong to transmitted spikes (left out of the statistics).
    max_samples : int | None, default: None
        Fit on evenly spaced 512-sample segments covering about this many samples instead of the
        whole block (cheaper for an implant; the statistics of 8192 samples are within ~1-2%).

    Returns
    -------
    BackgroundModel
    """
    num_channels = traces.shape[1]
    x = _sample_segments(np.asarray(traces), max_samples)
    excluded = np.zeros((0, 0, 0), dtype=bool) if exclude_mask is None else _sample_segments(np.asarray(exclude_mask, dtype=bool), max_samples)
    if x.ndim == 2:  # one segment: the whole block
        x, excluded = x[None], excluded[None] if exclude_mask is not None else excluded
    mean, autocorrelation = _background_moments(np.ascontiguousarray(x), np.ascontiguousarray(excluded), int(ar_order))
    levels = np.sqrt(np.maximum(autocorrelation[0], 1e-12))
    reflection = np.zeros((num_channels, ar_order))
    for channel in range(num_channels):
        reflection[channel], _ = levinson_durbin(autocorrelation[:, channel], ar_order)
    loadings = np.zeros((num_channels, spatial_rank))
    if spatial_rank > 0:
        from scipy.signal import lfilter

        keep = np.ones(x.shape, dtype=np.float32) if exclude_mask is None else (~excluded).astype(np.float32)
        x = ((x.astype(np.float32) - mean[None, None, :]) * keep).reshape(-1, num_channels)
        keep = keep.reshape(-1, num_channels)

        innovations = np.empty_like(x)
        for channel in range(num_channels):
            polynomial = reflection_to_polynomial(reflection[channel])
            innovations[:, channel] = lfilter(polynomial, [1.0], x[:, channel])
        valid = keep.all(axis=1)
        innovations = innovations[valid]
        innovations /= np.maximum(innovations.std(axis=0), 1e-9)[None, :]
        covariance = np.cov(innovations.T) if innovations.shape[0] > 1 else np.eye(num_channels)
        eigenvalues, eigenvectors = np.linalg.eigh(covariance)
        order = np.argsort(eigenvalues)[::-1]
        eigenvalues, eigenvectors = eigenvalues[order], eigenvectors[:, order]
        floor = float(np.mean(eigenvalues[spatial_rank:])) if spatial_rank < num_channels else 0.0
        loadings = eigenvectors[:, :spatial_rank] * np.sqrt(np.maximum(eigenvalues[:spatial_rank] - floor, 0.0))[None, :]
        norms = np.sqrt((loadings ** 2).sum(axis=1))
        loadings = loadings / np.maximum(norms / 0.95, 1.0)[:, None]  # keep some independent noise on every channel
    return BackgroundModel(levels=levels, reflection=reflection, loadings=loadings)


@numba.njit(cache=True)
def _background_moments(segments, excluded, ar_order):
    """Per-channel mean (float32) and autocorrelation lags ``0..ar_order`` (float64 ``(ar_order + 1, C)``)
    of ``(S, L, C)`` segments over the samples not ``excluded`` (an empty array: none excluded).

    The arithmetic numpy does on the float32 segments, in its order (each channel's sums run over
    the samples in sequence): the mean a float32 sum of the kept samples over their float32 count;
    lag ``k`` the float64 sum, over the pairs of kept samples ``k`` apart within a segment, of the
    float32 product of the centred samples, divided by the number of pairs (at least 1). One pass
    per segment, no ``(S, L, C)`` temporaries (numpy needed ~800 MB per lag on 10 s x 1024 ch).
    """
    num_segments, length, num_channels = segments.shape
    masked = excluded.size > 0
    one, zero = np.float32(1.0), np.float32(0.0)
    total = np.zeros(num_channels, dtype=np.float32)
    count = np.zeros(num_channels, dtype=np.float32)
    for segment in range(num_segments):
        for sample in range(length):
            for channel in range(num_channels):
                keep = zero if masked and excluded[segment, sample, channel] else one
                total[channel] += np.float32(segments[segment, sample, channel]) * keep
                count[channel] += keep
    mean = np.empty(num_channels, dtype=np.float32)
    for channel in range(num_channels):
        mean[channel] = total[channel] / max(count[channel], one)
    products = np.zeros((ar_order + 1, num_channels))
    pairs = np.zeros((ar_order + 1, num_channels))
    for segment in range(num_segments):  # branch-free inner loops (an excluded sample is 0, as in numpy): vectorised
        for lag in range(min(ar_order + 1, length)):
            for sample in range(length - lag):
                for channel in range(num_channels):
                    keep_first = zero if masked and excluded[segment, sample, channel] else one
                    keep_second = zero if masked and excluded[segment, sample + lag, channel] else one
                    first = (np.float32(segments[segment, sample, channel]) - mean[channel]) * keep_first
                    second = (np.float32(segments[segment, sample + lag, channel]) - mean[channel]) * keep_second
                    products[lag, channel] += np.float64(np.float32(first * second))
                    pairs[lag, channel] += np.float64(keep_first * keep_second)
    for lag in range(ar_order + 1):
        for channel in range(num_channels):
            products[lag, channel] /= max(pairs[lag, channel], 1.0)
    return mean, products


def synthesise_background(model: BackgroundModel, num_samples: int, seed: int, warmup_samples: int = 256) -> np.ndarray:
    """Draw ``(num_samples, num_channels)`` float32 noise with the model's level, spectrum and
    spatial correlation. Deterministic for a given ``seed`` (numpy PCG64)."""
    from scipy.signal import lfilter

    num_channels = model.num_channels
    rng = np.random.Generator(np.random.PCG64(int(seed)))
    total = num_samples + warmup_samples
    white = rng.standard_normal((total, num_channels), dtype=np.float32)
    rank = model.loadings.shape[1]
    if rank:
        factors = rng.standard_normal((total, rank), dtype=np.float32)
        common_power = (model.loadings ** 2).sum(axis=1)
        white = white * np.sqrt(np.maximum(1.0 - common_power, 0.0)).astype(np.float32)[None, :] + factors @ model.loadings.T.astype(np.float32)
    output = np.empty((num_samples, num_channels), dtype=np.float32)
    for channel in range(num_channels):
        reflection = model.reflection[channel]
        polynomial = reflection_to_polynomial(reflection)
        innovation_std = model.levels[channel] * np.sqrt(np.prod(1.0 - reflection ** 2))
        filtered = lfilter([innovation_std], polynomial, white[:, channel])
        output[:, channel] = filtered[warmup_samples:]
    return output
