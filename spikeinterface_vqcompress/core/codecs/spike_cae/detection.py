"""The encoder side of the spike-snippet codec, as an implant would run it.

Stages, all vectorised numpy and all streaming-friendly (their state is carried across blocks by
:class:`StreamingSpikeDetector`):

1. optional causal band-pass (second-order-section IIR, state carried across blocks); MEArec
   recordings are already band-passed, so the codec skips it by default;
2. a running per-channel noise level: the median of ``|x|`` over every ``noise_stride``-th sample of
   a block, divided by 0.6745 (MAD of a zero-median signal), smoothed across blocks;
3. negative threshold detection at ``threshold_sd`` x noise, per channel;
4. local minima in time, then spatial-temporal non-maximum suppression: a trough survives only if
   no sample within ``exclude_sweep_samples`` on a channel within ``radius_um`` is deeper
   ("locally exclusive" detection, the rule SpikeInterface's peak detection uses);
5. alignment: the surviving point is the trough on the peak channel, so snippets are cut with the
   trough at a fixed sample;
6. extraction of a multichannel snippet: the peak channel first, then its neighbours by increasing
   distance on the probe (ties broken by channel index).

Only the sparse set of threshold crossings is touched after step 3, so the cost per sample is a
couple of comparisons plus the strided noise estimate; see ``benchmarks/spike_cae_recordings.py``
for the measured throughput.

This module does not import spikeinterface: channel geometry is a ``(num_channels, 2)`` array
(``recording.get_channel_locations()``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from spikeinterface_vqcompress.core.robust import twice_column_medians

#: MAD to standard deviation of a Gaussian.
MAD_TO_STD = 1.0 / 0.6745


def _check_locations(channel_locations) -> np.ndarray:
    locations = np.asarray(channel_locations, dtype=np.float64)
    if locations.ndim != 2 or locations.shape[0] == 0:
        raise ValueError(f"channel_locations must be a (num_channels, 2) array, got shape {locations.shape}")
    return locations


def _by_distance(locations: np.ndarray, channel: int) -> np.ndarray:
    """Every channel sorted by distance from ``channel`` (itself first, ties by channel index).

    Distances are rounded to 1e-6 um so that equal distances computed in different orders compare
    equal: the one rule of channel order for the encoder, training and the analyzer extension.
    """
    distances = np.round(np.linalg.norm(locations - locations[int(channel)], axis=1), 6)
    return np.lexsort((np.arange(locations.shape[0]), distances)).astype(np.int64)


def neighbour_channel_order(channel_locations, peak_channel: int, num_channels: int) -> np.ndarray:
    """Peak channel first, then the others by increasing distance from it (ties by channel index).

    Parameters
    ----------
    channel_locations : array-like
        ``(num_total_channels, 2 or 3)`` positions in um.
    peak_channel : int
        Index of the peak channel.
    num_channels : int
        How many channels to return.

    Returns
    -------
    np.ndarray
        int64 ``(num_channels,)`` channel indices (the first ``num_channels`` of
        :func:`neighbour_order`'s row ``peak_channel``).
    """
    locations = _check_locations(channel_locations)
    if num_channels > locations.shape[0]:
        raise ValueError(f"the probe has {locations.shape[0]} channels, fewer than num_channels={num_channels}")
    return _by_distance(locations, peak_channel)[:num_channels]


def neighbour_order(channel_locations) -> np.ndarray:
    """Every channel's channels sorted by distance from it (itself first, ties by channel index).

    Parameters
    ----------
    channel_locations : array-like, shape (num_channels, 2 or 3)
        Channel positions in um.

    Returns
    -------
    np.ndarray
        int64 array ``(num_channels, num_channels)``; row ``c`` starts with ``c``.
    """
    locations = _check_locations(channel_locations)
    num_channels = locations.shape[0]
    order = np.empty((num_channels, num_channels), dtype=np.int64)
    for channel in range(num_channels):
        order[channel] = _by_distance(locations, channel)
    return order


def neighbours_within(channel_locations, radius_um: float) -> np.ndarray:
    """Channels within ``radius_um`` of each channel, padded with -1.

    Returns
    -------
    np.ndarray
        int64 ``(num_channels, max_neighbours)``, each row sorted by distance, itself first.
    """
    locations = np.asarray(channel_locations, dtype=np.float64)
    distances = np.linalg.norm(locations[:, None, :] - locations[None, :, :], axis=-1)
    order = neighbour_order(locations)
    counts = (distances <= radius_um).sum(axis=1)
    width = int(counts.max())
    table = np.full((locations.shape[0], width), -1, dtype=np.int64)
    for channel in range(locations.shape[0]):
        table[channel, : counts[channel]] = order[channel, : counts[channel]]
    return table


@dataclass
class DetectionParameters:
    """What the detector needs (all JSON values, stored in the codec config).

    Parameters
    ----------
    threshold_sd : float, default: 4.5
        Detection threshold in noise standard deviations (negative crossings).
    exclude_sweep_samples : int, default: 8
        Half-width in samples of the temporal window of the non-maximum suppression.
    radius_um : float, default: 50.0
        Radius of the spatial neighbourhood of the non-maximum suppression.
    noise_stride : int, default: 8
        Noise estimate on every ``noise_stride``-th sample of a block.
    noise_smoothing : float, default: 0.5
        Weight of the previous estimate when a new block updates the running noise level (0: use
        each block's own estimate; the first block always uses its own).
    """

    threshold_sd: float = 4.5
    exclude_sweep_samples: int = 8
    radius_um: float = 50.0
    noise_stride: int = 8
    noise_smoothing: float = 0.5


def estimate_noise_levels(traces: np.ndarray, stride: int = 8) -> np.ndarray:
    """Per-channel noise standard deviation from the MAD of every ``stride``-th sample (float64)."""
    sample = np.asarray(traces[:: max(int(stride), 1)])
    if sample.shape[0] == 0:
        return np.ones(traces.shape[1])
    if sample.dtype.kind in "iu":  # exact integer median of |x| (np.median's value, without its sorts)
        levels = twice_column_medians(np.abs(sample.astype(np.int32))) / 2 * MAD_TO_STD
    else:
        levels = np.median(np.abs(sample.astype(np.float32)), axis=0).astype(np.float64) * MAD_TO_STD
    return np.maximum(levels, 1e-6)


def detect_troughs(traces: np.ndarray, noise_levels: np.ndarray, parameters: DetectionParameters,
                   neighbours: np.ndarray, valid_start: int = 0, valid_stop: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Threshold + locally exclusive trough detection on one block.

    Parameters
    ----------
    traces : np.ndarray
        ``(num_samples, num_channels)`` block, any real dtype (int16 is compared in int16).
    noise_levels : np.ndarray
        Per-channel noise standard deviation in the units of ``traces``.
    parameters : DetectionParameters
        Threshold and suppression windows.
    neighbours : np.ndarray
        Output of :func:`neighbours_within` for ``parameters.radius_um``.
    valid_start, valid_stop : int
        Only troughs with ``valid_start <= time < valid_stop`` are returned (the rest of the block is
        context for the suppression window).

    Returns
    -------
    times, channels : np.ndarray
        int64 sample index (in the block) and peak channel of each detected spike, sorted by time.
    """
    num_samples, num_channels = traces.shape
    valid_stop = num_samples if valid_stop is None else valid_stop
    thresholds = parameters.threshold_sd * np.asarray(noise_levels, dtype=np.float64)
    # only samples that can be reported (and have a sample on each side) are compared
    first, stop = max(int(valid_start), 1), min(int(valid_stop), num_samples - 1)
    candidates = traces[first:max(stop, first)]
    if traces.dtype.kind in "iu":
        limits = (-np.ceil(thresholds)).astype(traces.dtype)  # x <= -ceil(thr)  <=>  x < -thr for integers (thr not integer)
        below = candidates <= limits[None, :]
    else:
        below = candidates < -thresholds[None, :]
    times, channels = np.nonzero(below)
    times += first
    if times.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    values = traces[times, channels]
    # local minimum in time (first sample of a flat trough)
    keep = (values <= traces[times - 1, channels]) & (values < traces[times + 1, channels])
    times, channels, values = times[keep], channels[keep], values[keep]
    if times.size == 0:
        empty = np.zeros(0, dtype=np.int64)
        return empty, empty
    # locally exclusive: no deeper sample within +-sweep samples on any channel within radius
    sweep = int(parameters.exclude_sweep_samples)
    offsets = np.arange(-sweep, sweep + 1)
    window_times = np.clip(times[:, None] + offsets[None, :], 0, num_samples - 1)  # (n, W)
    neighbour_rows = neighbours[channels]  # (n, K), -1 padded
    padded = neighbour_rows < 0
    neighbour_rows = np.where(padded, channels[:, None], neighbour_rows)
    window = traces[window_times[:, :, None], neighbour_rows[:, None, :]]  # (n, W, K)
    window_min = window.min(axis=(1, 2))
    survivors = values <= window_min
    times, channels, values = times[survivors], channels[survivors], values[survivors]
    # ties (equal integer values close in space and time): keep the earliest, then the lowest channel
    if times.size > 1:
        order = np.lexsort((channels, times))
        times, channels, values = times[order], channels[order], values[order]
        first, second = _tied_pairs(times, values, channels, neighbours, sweep)
        if first.size:
            keep = np.ones(times.size, dtype=bool)
            for index, other in zip(first.tolist(), second.tolist()):  # in order: a removed trough removes nothing
                if keep[index]:
                    keep[other] = False
            times, channels = times[keep], channels[keep]
    return times.astype(np.int64), channels.astype(np.int64)


def _tied_pairs(times, values, channels, neighbours, sweep):
    """The pairs ``(i, j)``, ``i < j``, of time-sorted troughs within ``sweep`` samples of each other,
    of equal value, and on neighbouring channels, ordered by ``i`` then ``j`` (int64 arrays).

    Candidates are searched among troughs of the same value only (sorted by value, then time): on
    1024 channels most troughs close in time differ in value, and pairing them first cost ~1 s per 10 s.
    """
    empty = np.zeros(0, dtype=np.int64)
    _, rank = np.unique(values, return_inverse=True)  # equal values, equal rank (any dtype)
    keys = rank.reshape(-1).astype(np.int64) * (int(times[-1]) + int(sweep) + 1) + times
    by_value = np.argsort(keys, kind="stable")  # by value, then time
    keys = keys[by_value]
    ends = np.searchsorted(keys, keys + sweep, side="right")
    counts = ends - np.arange(keys.size) - 1
    total = int(counts.sum())
    if total == 0:
        return empty, empty
    left = np.repeat(np.arange(keys.size), counts)
    right = left + 1 + np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts)
    first, second = by_value[left], by_value[right]
    near = (neighbours[channels[first]] == channels[second][:, None]).any(axis=1)
    first, second = first[near], second[near]
    order = np.lexsort((second, first))
    return first[order], second[order]


def extract_snippets(traces: np.ndarray, times: np.ndarray, channel_groups: np.ndarray, num_samples: int,
                     trough_sample: int, fill_value=0) -> np.ndarray:
    """Cut ``(n, num_snippet_channels, num_samples)`` snippets with the trough at ``trough_sample``.

    Parameters
    ----------
    traces : np.ndarray
        ``(num_samples_block, num_channels)`` block.
    times : np.ndarray
        Trough sample of each spike in the block.
    channel_groups : np.ndarray
        ``(n, num_snippet_channels)`` channels of each snippet (peak channel first).
    num_samples : int
        Snippet length.
    trough_sample : int
        Sample of the snippet where the trough sits.
    fill_value : scalar, default: 0
        Value of samples outside the block.

    Returns
    -------
    np.ndarray
        Snippets, same dtype as ``traces``.
    """
    times = np.asarray(times, dtype=np.int64)
    channel_groups = np.asarray(channel_groups, dtype=np.int64)
    if times.size == 0:
        return np.zeros((0, channel_groups.shape[1] if channel_groups.ndim == 2 else 0, num_samples), dtype=traces.dtype)
    sample_index = times[:, None] - int(trough_sample) + np.arange(num_samples)[None, :]  # (n, T)
    inside = (sample_index >= 0) & (sample_index < traces.shape[0])
    clipped = np.clip(sample_index, 0, traces.shape[0] - 1)
    snippets = traces[clipped[:, None, :], channel_groups[:, :, None]]  # (n, C, T)
    if not inside.all():
        snippets = np.where(inside[:, None, :], snippets, np.asarray(fill_value, dtype=traces.dtype))
    return snippets


class StreamingSpikeDetector:
    """Detect and cut spike snippets from consecutive blocks of one stream, with carried state.

    Parameters
    ----------
    channel_locations : array-like
        ``(num_channels, 2)`` positions in um.
    num_snippet_channels : int
        Channels per snippet (peak channel + nearest neighbours).
    num_snippet_samples : int
        Samples per snippet.
    trough_sample : int
        Sample of the snippet holding the trough.
    parameters : DetectionParameters | None, default: None
        Detection parameters.
    bandpass_sos : np.ndarray | None, default: None
        Second-order sections of a causal IIR filter applied first (``scipy.signal.butter(...,
        output="sos")``); None for already band-passed input.

    Notes
    -----
    A spike is reported once, by the block in which its full snippet and suppression window are
    available: the detector keeps the last ``num_snippet_samples + exclude_sweep_samples`` samples of
    the previous block. Times are absolute sample indices of the stream.
    """

    def __init__(self, channel_locations, num_snippet_channels: int, num_snippet_samples: int, trough_sample: int,
                 parameters: DetectionParameters | None = None, bandpass_sos=None):
        self.parameters = parameters or DetectionParameters()
        self.channel_locations = np.asarray(channel_locations, dtype=np.float64)
        num_channels = self.channel_locations.shape[0]
        if num_snippet_channels > num_channels:
            raise ValueError(f"snippets of {num_snippet_channels} channels need at least as many channels; the probe has {num_channels}")
        self.snippet_channels = neighbour_order(self.channel_locations)[:, :num_snippet_channels]
        self.neighbours = neighbours_within(self.channel_locations, self.parameters.radius_um)
        self.num_snippet_samples = int(num_snippet_samples)
        self.trough_sample = int(trough_sample)
        self.bandpass_sos = None if bandpass_sos is None else np.asarray(bandpass_sos, dtype=np.float64)
        self._filter_state = None
        self.noise_levels = None
        self._tail = None
        self._tail_start = 0  # absolute index of the first sample of the tail
        self._next_valid = 0  # absolute index from which troughs have not been reported yet

    @property
    def _lookback(self) -> int:
        return self.trough_sample + self.parameters.exclude_sweep_samples + 1

    @property
    def _lookahead(self) -> int:
        return self.num_snippet_samples - self.trough_sample + self.parameters.exclude_sweep_samples + 1

    def _filter(self, block):
        if self.bandpass_sos is None:
            return block
        from scipy.signal import sosfilt, sosfilt_zi

        block = np.asarray(block, dtype=np.float32)
        if self._filter_state is None:
            zi = sosfilt_zi(self.bandpass_sos)  # (sections, 2)
            self._filter_state = np.repeat(zi[:, :, None], block.shape[1], axis=2) * block[0][None, None, :]
        filtered, self._filter_state = sosfilt(self.bandpass_sos, block, axis=0, zi=self._filter_state)
        return filtered.astype(np.float32)

    def _update_noise(self, block):
        levels = estimate_noise_levels(block, self.parameters.noise_stride)
        if self.noise_levels is None:
            self.noise_levels = levels
        else:
            weight = self.parameters.noise_smoothing
            self.noise_levels = weight * self.noise_levels + (1 - weight) * levels

    def process(self, block: np.ndarray, final: bool = False):
        """Feed one block ``(num_samples, num_channels)``; return the spikes it completes.

        Parameters
        ----------
        block : np.ndarray
            The next samples of the stream.
        final : bool, default: False
            True for the last block: report the spikes up to its end (snippets padded with 0).

        Returns
        -------
        times : np.ndarray
            Absolute trough samples.
        channels : np.ndarray
            Peak channels.
        snippets : np.ndarray
            ``(n, num_snippet_channels, num_snippet_samples)`` in the (filtered) block's units.
        """
        block = self._filter(np.asarray(block))
        self._update_noise(block)
        if self._tail is None:
            buffer, buffer_start = block, self._tail_start
        else:
            buffer = np.concatenate([self._tail, block], axis=0)
            buffer_start = self._tail_start
        buffer_stop = buffer_start + buffer.shape[0]
        valid_stop = buffer_stop if final else buffer_stop - self._lookahead
        times, channels = detect_troughs(buffer, self.noise_levels, self.parameters, self.neighbours,
                                         valid_start=max(self._next_valid - buffer_start, 0),
                                         valid_stop=max(valid_stop - buffer_start, 0))
        snippets = extract_snippets(buffer, times, self.snippet_channels[channels], self.num_snippet_samples, self.trough_sample)
        self._next_valid = max(valid_stop, self._next_valid)
        keep_from = max(min(self._next_valid - self._lookback, buffer_stop), buffer_start)
        self._tail = buffer[keep_from - buffer_start:]
        self._tail_start = keep_from
        return times + buffer_start, channels, snippets
