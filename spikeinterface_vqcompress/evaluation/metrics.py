"""Fidelity metrics between a recording and its rebuilt version, computed chunk by chunk.

Pure numpy on traces; the recording-level helpers only call ``get_traces`` and so work on any
SpikeInterface recording without loading it whole.
"""

from __future__ import annotations

import numpy as np


def sndr_db(reference: np.ndarray, reconstruction: np.ndarray, axis=None, floor: float = 0.0) -> np.ndarray:
    """Signal-to-noise-and-distortion ratio ``20 log10(||x|| / ||x - x_hat||)`` in dB.

    Parameters
    ----------
    reference, reconstruction : np.ndarray
        Same shape.
    axis : int | tuple | None, default: None
        Axes reduced by the norms (None: all).
    floor : float, default: 0.0
        Lower bound of both norms (``1e-12`` keeps the result finite for exact or silent snippets).

    Returns
    -------
    np.ndarray | float
        inf where the reconstruction is exact.
    """
    reference = np.asarray(reference, dtype=np.float64)
    error = reference - np.asarray(reconstruction, dtype=np.float64)
    signal_norm = np.sqrt(np.sum(reference**2, axis=axis))
    error_norm = np.sqrt(np.sum(error**2, axis=axis))
    if floor > 0:
        signal_norm, error_norm = np.maximum(signal_norm, floor), np.maximum(error_norm, floor)
    with np.errstate(divide="ignore", invalid="ignore"):
        return 20.0 * np.log10(signal_norm / error_norm)


def snippet_sndr_db(reference: np.ndarray, reconstruction: np.ndarray) -> np.ndarray:
    """Per-snippet SNDR over channels and samples, in dB (norms floored at 1e-12: always finite).

    ``reference`` and ``reconstruction`` are ``(n, ...)``; returns ``(n,)`` float64.
    """
    reference = np.asarray(reference, dtype=np.float64).reshape(len(reference), -1)
    reconstruction = np.asarray(reconstruction, dtype=np.float64).reshape(len(reference), -1)
    return sndr_db(reference, reconstruction, axis=1, floor=1e-12)


def _gains(recording):
    if recording.has_scaleable_traces():
        return recording.get_channel_gains().astype(np.float64), "uV"
    return np.ones(recording.get_num_channels()), "stored units"


def _chunks(num_samples: int, chunk_num_samples: int):
    for start in range(0, num_samples, chunk_num_samples):
        yield start, min(start + chunk_num_samples, num_samples)


def compare_traces(recording, rebuilt, chunk_duration_s: float = 1.0) -> dict:
    """RMSE (µV), maximum absolute error and exactness of ``rebuilt`` against ``recording``.

    Returns
    -------
    dict
        ``rmse_uV``, ``max_abs_error_uV``, ``max_abs_error_stored`` (stored units), ``exact``,
        ``signal_rms_uV``, ``sndr_db`` (whole recording) and ``units`` (what uV means when the
        recording has no gains).
    """
    gains, units = _gains(recording)
    chunk_num_samples = max(int(chunk_duration_s * recording.sampling_frequency), 1)
    squared_error = 0.0
    squared_signal = 0.0
    count = 0
    max_error_stored = 0.0
    max_error_uV = 0.0
    for segment_index in range(recording.get_num_segments()):
        for start, stop in _chunks(recording.get_num_samples(segment_index), chunk_num_samples):
            original = recording.get_traces(segment_index=segment_index, start_frame=start, end_frame=stop).astype(np.float64)
            decoded = rebuilt.get_traces(segment_index=segment_index, start_frame=start, end_frame=stop).astype(np.float64)
            error = decoded - original
            if error.size:
                max_error_stored = max(max_error_stored, float(np.abs(error).max()))
                max_error_uV = max(max_error_uV, float(np.abs(error * gains).max()))
            squared_error += float(np.sum((error * gains) ** 2))
            squared_signal += float(np.sum((original * gains) ** 2))
            count += error.size
    rmse = np.sqrt(squared_error / max(count, 1))
    return {
        "rmse_uV": float(rmse),
        "max_abs_error_uV": max_error_uV,
        "max_abs_error_stored": max_error_stored,
        "exact": max_error_stored == 0.0,
        "signal_rms_uV": float(np.sqrt(squared_signal / max(count, 1))),
        "sndr_db": float(20 * np.log10(np.sqrt(squared_signal) / np.sqrt(squared_error))) if squared_error > 0 else float("inf"),
        "units": units,
    }


def _snippets(recording, rebuilt, segment_index, frames_of: dict, half: int, gains, block_samples: int = 65536):
    """``(originals, decoded)``: per unit, ``(num_spikes, 2 * half, num_channels)`` float64 snippets (in µV)
    around its frames, read block by block in time order so that every chunk of a compressed
    recording is decoded about once, whatever the number of units."""
    units = list(frames_of)
    if not units:
        return {}, {}
    owners = np.concatenate([np.full(frames_of[unit].size, index) for index, unit in enumerate(units)])
    frames = np.concatenate([frames_of[unit] for unit in units])
    order = np.argsort(frames, kind="stable")
    num_channels = recording.get_num_channels()
    originals = np.empty((frames.size, 2 * half, num_channels))
    decoded = np.empty_like(originals)
    position = 0
    while position < order.size:
        block_start = int(frames[order[position]]) - half
        last = int(np.searchsorted(frames[order], block_start + half + block_samples, side="right"))
        last = max(last, position + 1)
        block_end = int(frames[order[last - 1]]) + half
        blocks = [source.get_traces(segment_index=segment_index, start_frame=block_start, end_frame=block_end)
                  for source in (recording, rebuilt)]
        for slot in order[position:last]:
            offset = int(frames[slot]) - half - block_start
            originals[slot] = blocks[0][offset:offset + 2 * half]
            decoded[slot] = blocks[1][offset:offset + 2 * half]
        position = last
    originals *= gains
    decoded *= gains
    return ({unit: originals[owners == index] for index, unit in enumerate(units)},
            {unit: decoded[owners == index] for index, unit in enumerate(units)})


def spike_window_fidelity(recording, rebuilt, sorting, window_ms: float = 1.0, num_channels_per_unit: int = 4,
                          max_spikes_per_unit: int = 500, seed: int = 0) -> dict:
    """Fidelity where it matters for sorting: windows around ground-truth spikes.

    For each unit, the ``num_channels_per_unit`` channels of largest peak-to-peak mean waveform are
    kept; every (sampled) spike gives a snippet of ``±window_ms`` on those channels.

    Returns
    -------
    dict
        ``rmse_spike_windows_uV`` (over all snippets), ``sndr_spike_db_mean`` / ``_std`` /
        ``_median`` (per-snippet SNDR, finite snippets only; NaN when every snippet is exact),
        ``num_snippets``, ``exact_snippets``.
    """
    gains, _ = _gains(recording)
    half = max(int(round(window_ms * recording.sampling_frequency / 1000.0)), 1)
    rng = np.random.default_rng(seed)
    squared_error = 0.0
    count = 0
    sndrs = []
    num_snippets = 0
    exact_snippets = 0
    for segment_index in range(recording.get_num_segments()):
        num_samples = recording.get_num_samples(segment_index)
        sampled = {}  # unit -> its (sampled) spike frames, drawn in unit order
        for unit_id in sorting.unit_ids:
            frames = sorting.get_unit_spike_train(unit_id, segment_index=segment_index)
            frames = frames[(frames >= half) & (frames < num_samples - half)]
            if frames.size > max_spikes_per_unit:
                frames = np.sort(rng.choice(frames, max_spikes_per_unit, replace=False))
            if frames.size:
                sampled[unit_id] = frames
        originals_of, decoded_of = _snippets(recording, rebuilt, segment_index, sampled, half, gains)
        for unit_id in sampled:
            originals, decoded = originals_of[unit_id], decoded_of[unit_id]
            mean_waveform = originals.mean(axis=0)
            channels = np.argsort(np.ptp(mean_waveform, axis=0))[::-1][:num_channels_per_unit]
            originals = originals[:, :, channels]
            decoded = decoded[:, :, channels]
            error = decoded - originals
            squared_error += float(np.sum(error**2))
            count += error.size
            per_snippet = sndr_db(originals, decoded, axis=(1, 2))
            num_snippets += per_snippet.size
            exact_snippets += int(np.sum(np.isinf(per_snippet)))
            sndrs.append(per_snippet[np.isfinite(per_snippet)])
    sndrs = np.concatenate(sndrs) if sndrs else np.zeros(0)
    return {
        "rmse_spike_windows_uV": float(np.sqrt(squared_error / count)) if count else float("nan"),
        "sndr_spike_db_mean": float(np.mean(sndrs)) if sndrs.size else float("nan"),
        "sndr_spike_db_std": float(np.std(sndrs)) if sndrs.size else float("nan"),
        "sndr_spike_db_median": float(np.median(sndrs)) if sndrs.size else float("nan"),
        "num_snippets": int(num_snippets),
        "exact_snippets": int(exact_snippets),
    }
