"""Spike windows for the near-lossless broadband mode (``broadband``, ``spike_error=...``).

Sorters look at two things in a recording: the background, whose noise level sets their detection
thresholds, and the few milliseconds around each spike, whose shape sets their clusters. A uniform
``max_error`` spends its bits evenly on both. Spike windows let the encoder spend them where the
sorter looks: per channel it finds the spike events (:func:`detect_events`), and the samples from
``before`` before to ``after`` after each event (the channel's *spike windows*) are coded within the
tight ``spike_error``, the rest within the loose ``max_error`` (with ``noise_fill``, the loose part's
quantised-away noise is put back, :mod:`.noise`). The events travel in the chunk (version 3, see
:mod:`.chunk`), so the decoder rebuilds the same windows; detection is the encoder's choice and does
not have to be reproduced.

This module must not import spikeinterface.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numba
import numpy as np

from spikeinterface_vqcompress.core.filters import sosfilt_rows
from spikeinterface_vqcompress.core.robust import float_median

#: the kernel's "no spike windows" mask
NO_ZONE = np.zeros((0, 0), dtype=np.uint8)


@dataclass
class SpikeWindows:
    """Per-channel spike events of one chunk and the bound inside their windows.

    Parameters
    ----------
    events : list of int64 arrays
        Per channel, sorted distinct sample indices of its spike events.
    spike_error : int
        Largest error per sample inside the windows (stored units), ``<= max_error``.
    before, after : int
        Samples before and after each event that its window covers (0-255).
    """

    events: list
    spike_error: int
    before: int
    after: int
    _mask: np.ndarray | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def num_events(self) -> int:
        return int(sum(len(channel_events) for channel_events in self.events))

    def mask(self, num_samples: int) -> np.ndarray:
        """:func:`zone_mask` of these events, computed once (the encoder and the noise fill both need it)."""
        if self._mask is None or self._mask.shape[0] != num_samples:
            self._mask = zone_mask(self.events, num_samples, self.before, self.after)
        return self._mask

    def check(self, num_samples: int, num_channels: int, max_error: int):
        if len(self.events) != num_channels:
            raise ValueError(f"broadband: spike events for {len(self.events)} channels, the chunk has {num_channels}")
        if not 0 <= self.spike_error <= max_error:
            raise ValueError(f"broadband: spike_error must be between 0 and max_error ({max_error}), got {self.spike_error}")
        if not (0 <= self.before <= 255 and 0 <= self.after <= 255):
            raise ValueError(f"broadband: spike windows reach 0-255 samples before and after an event, got "
                             f"{self.before} and {self.after}")
        for channel_events in self.events:
            channel_events = np.asarray(channel_events)
            if channel_events.size and (channel_events[0] < 0 or channel_events[-1] >= num_samples
                                        or np.any(np.diff(channel_events) < 1)):
                raise ValueError("broadband: spike events must be sorted, distinct sample indices inside the chunk")


def zone_mask(events, num_samples: int, before: int, after: int) -> np.ndarray:
    """``(num_samples, num_channels)`` uint8: 1 within ``[event - before, event + after]`` of a channel's events."""
    num_channels = len(events)
    counts = np.array([len(channel_events) for channel_events in events], dtype=np.int64)
    flat = (np.concatenate([np.asarray(channel_events, dtype=np.int64) for channel_events in events]) if num_channels
            else np.zeros(0, np.int64))
    return _zone_mask(flat, counts, int(num_samples), int(before), int(after))


@numba.njit(cache=True)
def _zone_mask(events, counts, num_samples, before, after):
    mask = np.zeros((num_samples, counts.size), np.uint8)
    position = 0
    for channel in range(counts.size):
        for i in range(position, position + counts[channel]):
            for t in range(max(events[i] - before, 0), min(events[i] + after + 1, num_samples)):
                mask[t, channel] = 1
        position += counts[channel]
    return mask


def detect_events(traces: np.ndarray, threshold: float, sampling_frequency: float = 30000.0,
                  spread_threshold: float = 0.0, spread_samples: int = 10) -> list:
    """Per-channel spike events of a chunk: where its high-passed trace falls below ``-threshold`` noise levels.

    The trace is high-passed (2nd-order Butterworth, 300 Hz, causal, as an implant would), its noise
    level is the median absolute deviation / 0.6745 over the chunk, and each run of samples below
    ``-threshold`` noise levels gives one event at its first sample.

    With ``spread_threshold > 0`` an event also goes to every other channel whose trace falls below
    ``-spread_threshold`` noise levels within ``spread_samples`` of it: the same spike's weaker
    channels (which a sorter's features use), found without the probe geometry.

    Numba kernels (:func:`_detect`; the high-pass in float64 with SciPy's operation order,
    :func:`..filters.sosfilt_rows`; the medians :func:`..robust.float_median`): the same events as
    ``scipy.signal.sosfilt`` and ``np.median`` give, bit for bit, in 40-60 % of their time.

    Parameters
    ----------
    traces : array (num_samples, num_channels)
    threshold : float
        In noise levels (below the sorters' usual 4-5, so that a spike's weaker channels are kept too).
    sampling_frequency : float, default: 30000.0
        Only sets the high-pass corner (300 Hz); the codec itself does not know it.
    spread_threshold : float, default: 0.0
        In noise levels; 0: no spreading.
    spread_samples : int, default: 10

    Returns
    -------
    list of int64 arrays
    """
    import scipy.signal

    num_samples, num_channels = traces.shape
    if num_samples < 64 or num_channels == 0:
        return [np.zeros(0, dtype=np.int64) for _ in range(num_channels)]
    sos = scipy.signal.butter(2, min(300.0, 0.4 * sampling_frequency), btype="highpass", fs=sampling_frequency, output="sos")
    traces = np.asarray(traces)
    if traces.dtype.kind == "f":  # filtered in float64 from float32 samples, as SciPy would
        traces = traces.astype(np.float32)
    events, counts = _detect(traces, np.ascontiguousarray(sos[0], dtype=np.float64), float(threshold),
                             float(spread_threshold), int(spread_samples))
    return np.split(events, np.cumsum(counts)[:-1])


#: samples of the high-pass filter's start-up transient, set to zero before the noise level is measured
_STARTUP_SAMPLES = 32


@numba.njit(cache=True)
def _detect(traces, section, threshold, spread_threshold, spread_samples):
    """:func:`detect_events` on ``(num_samples, num_channels)`` traces with the biquad ``section``
    (``b0 b1 b2 a0 a1 a2``, ``a0 == 1``); returns the events of every channel in turn and their counts."""
    num_samples, num_channels = traces.shape
    rows = sosfilt_rows(traces, section)  # one contiguous row per channel for the medians and scans
    rows[:, :_STARTUP_SAMPLES] = 0.0  # the start-up transient is not measured
    deviations = np.empty(num_samples)
    scratch = np.empty(num_samples)
    starts = np.zeros((num_channels, num_samples), np.bool_)
    any_start = np.zeros(num_samples, np.bool_)
    spread_limits = np.empty(num_channels)
    for channel in range(num_channels):
        row = rows[channel]
        centre = float_median(row, scratch)
        for t in range(num_samples):
            deviations[t] = np.abs(row[t] - centre)
        noise = max(float_median(deviations, scratch) / 0.6745, 1e-6)
        limit = -threshold * noise
        spread_limits[channel] = -spread_threshold * noise
        was_below = False
        for t in range(num_samples):
            below = row[t] < limit
            if below and not was_below:
                starts[channel, t] = True
                any_start[t] = True
            was_below = below
    if spread_threshold > 0:
        times = np.flatnonzero(any_start)
        weak = np.zeros(num_samples + 1, np.int64)  # weak[t + 1]: samples at or before t below the spread limit
        for channel in range(num_channels):
            row = rows[channel]
            limit = spread_limits[channel]
            for t in range(num_samples):
                weak[t + 1] = weak[t] + (1 if row[t] < limit else 0)
            for t in times:
                if weak[min(t + spread_samples, num_samples - 1) + 1] > weak[max(t - spread_samples, 0)]:
                    starts[channel, t] = True
    counts = np.zeros(num_channels, np.int64)
    for channel in range(num_channels):
        counts[channel] = np.count_nonzero(starts[channel])
    events = np.empty(counts.sum(), np.int64)
    position = 0
    for channel in range(num_channels):
        for t in range(num_samples):
            if starts[channel, t]:
                events[position] = t
                position += 1
    return events, counts
