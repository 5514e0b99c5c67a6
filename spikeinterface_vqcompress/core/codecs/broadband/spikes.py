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

import numpy as np

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
    cover = np.zeros((num_channels, num_samples + 1), dtype=np.int32)  # +1 at each window's start, -1 after its end
    for channel, channel_events in enumerate(events):
        channel_events = np.asarray(channel_events, dtype=np.int64)
        if channel_events.size:
            cover[channel] = (np.bincount(np.maximum(channel_events - before, 0), minlength=num_samples + 1)
                              - np.bincount(np.minimum(channel_events + after + 1, num_samples), minlength=num_samples + 1))
    inside = np.cumsum(cover[:, :num_samples], axis=1, dtype=np.int32) > 0
    return np.ascontiguousarray(inside.T).view(np.uint8)


def detect_events(traces: np.ndarray, threshold: float, sampling_frequency: float = 30000.0,
                  spread_threshold: float = 0.0, spread_samples: int = 10) -> list:
    """Per-channel spike events of a chunk: where its high-passed trace falls below ``-threshold`` noise levels.

    The trace is high-passed (2nd-order Butterworth, 300 Hz, causal, as an implant would), its noise
    level is the median absolute deviation / 0.6745 over the chunk, and each run of samples below
    ``-threshold`` noise levels gives one event at its first sample.

    With ``spread_threshold > 0`` an event also goes to every other channel whose trace falls below
    ``-spread_threshold`` noise levels within ``spread_samples`` of it: the same spike's weaker
    channels (which a sorter's features use), found without the probe geometry.

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
    if num_samples < 64:
        return [np.zeros(0, dtype=np.int64) for _ in range(num_channels)]
    sos = scipy.signal.butter(2, min(300.0, 0.4 * sampling_frequency), btype="highpass", fs=sampling_frequency, output="sos")
    # channel-major (one contiguous row per channel): the filter and the medians run along rows
    rows = scipy.signal.sosfilt(sos, np.ascontiguousarray(traces.T, dtype=np.float32), axis=1)
    rows[:, :32] = 0  # the filter's start-up transient
    noise = np.maximum(np.median(np.abs(rows - np.median(rows, axis=1, keepdims=True)), axis=1) / 0.6745, 1e-6)
    filtered = rows.T
    below = filtered < -threshold * noise
    starts = below & ~np.vstack([np.zeros((1, num_channels), dtype=bool), below[:-1]])
    if spread_threshold > 0:
        times = np.flatnonzero(starts.any(axis=1))  # every sample where some channel has an event
        weak = filtered < -spread_threshold * noise
        # each channel below -spread_threshold within +- spread_samples of such a time gets an event there
        near = np.zeros((times.size, num_channels), dtype=bool)
        for lag in range(-spread_samples, spread_samples + 1):
            near |= weak[np.clip(times + lag, 0, num_samples - 1)]
        starts[times] |= near
    return [np.flatnonzero(starts[:, channel]).astype(np.int64) for channel in range(num_channels)]
