"""Per-signal fidelity metrics for 1D recordings such as the Neuralink N1 files.

Two families, computed on one channel's original ``x`` and reconstruction ``y`` (stored units):

The paper's metrics ("Efficient Compression of Neural Recordings Using VQ-CAE"):

- ``snr_db``: ``10 log10(sum x^2 / sum (x - y)^2)`` on the stored values, DC included (a signal with a
  large offset gets credit for its offset: sending only the mean already scores ~2 dB on N1 files).
- ``mse_normalized``: MSE after mapping both signals with the original's minimum and maximum to
  ``[-1, 1]``, ``(v - (max + min) / 2) / ((max - min) / 2)``. The paper's MSE (0.0126) is on data
  scaled for a tanh decoder; this is our reading of it, consistent with its PSNR: ``10 log10(2^2 /
  0.0126) = 25.0 dB`` against the 25.2 dB it reports.
- ``psnr_signal_peak_db``: ``10 log10((max x - min x)^2 / MSE)``, peak = the original's peak-to-peak
  range (equivalently ``10 log10(4 / mse_normalized)``): the paper's PSNR.
- ``psnr_full_scale_db``: ``10 log10(full_scale^2 / MSE)`` with ``full_scale`` the dtype's range
  (65535 for int16): what an engineer quoting ADC full scale would report. Higher than the above.
- ``ssim``: :func:`skimage.metrics.structural_similarity` on the two normalised 1D signals, uniform
  7-sample window, ``data_range=2`` (the normalised range), no Gaussian weighting.

What matters for neural data (action potentials are what sorting uses):

- The original and reconstruction are band-passed (300-6000 Hz, 3rd-order Butterworth, zero phase,
  upper edge capped at 0.45 x the sampling rate). The noise level is ``median(|f|) / 0.6745`` of the
  filtered original; spikes are negative threshold crossings below ``-threshold_sigma`` x noise
  (local minima, one per ``dead_time_ms``).
- ``spike_sndr_db``: :func:`~spikeinterface_vqcompress.evaluation.metrics.sndr_db` of the filtered
  signals over ``±window_ms`` around every spike detected in the original.
- ``detection_precision`` / ``detection_recall``: spikes detected in the filtered reconstruction
  with the **original's** absolute threshold (a fixed detector; re-estimating the threshold on a
  smoothed reconstruction would shrink it to nothing), matched to the original's within
  ``tolerance_ms``. No spike in the original gives NaN recall.
"""

from __future__ import annotations

import numpy as np

from spikeinterface_vqcompress.evaluation.metrics import sndr_db

SSIM_WINDOW_SAMPLES = 7


def normalize_by_original(original: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Map ``values`` with the original's minimum and maximum to ``[-1, 1]`` (float64)."""
    original = np.asarray(original, dtype=np.float64)
    minimum, maximum = original.min(), original.max()
    half_range = (maximum - minimum) / 2.0 or 1.0
    return (np.asarray(values, dtype=np.float64) - (maximum + minimum) / 2.0) / half_range


def bandpass(signal: np.ndarray, sampling_frequency: float, band_Hz=(300.0, 6000.0)) -> np.ndarray:
    """Zero-phase 3rd-order Butterworth band-pass (upper edge capped at 0.45 x sampling rate)."""
    from scipy.signal import butter, sosfiltfilt

    low, high = band_Hz
    high = min(high, 0.45 * sampling_frequency)
    sos = butter(3, [low, high], btype="bandpass", fs=sampling_frequency, output="sos")
    signal = np.asarray(signal, dtype=np.float64)
    if signal.size <= 3 * (2 * sos.shape[0] + 1):
        return signal - signal.mean()
    return sosfiltfilt(sos, signal)


def detect_negative_peaks(filtered: np.ndarray, threshold: float, dead_time_samples: int) -> np.ndarray:
    """Sample indices of local minima below ``-threshold``, at most one per ``dead_time_samples``
    (the deepest wins, greedily)."""
    filtered = np.asarray(filtered, dtype=np.float64)
    if filtered.size < 3:
        return np.zeros(0, dtype=np.int64)
    inner = filtered[1:-1]
    candidates = np.nonzero((inner < -threshold) & (inner <= filtered[:-2]) & (inner < filtered[2:]))[0] + 1
    if candidates.size == 0:
        return candidates.astype(np.int64)
    order = candidates[np.argsort(filtered[candidates], kind="stable")]
    taken = np.zeros(filtered.size, dtype=bool)
    kept = []
    for index in order:
        start, stop = max(index - dead_time_samples, 0), index + dead_time_samples + 1
        if not taken[start:stop].any():
            kept.append(index)
            taken[index] = True
    return np.sort(np.asarray(kept, dtype=np.int64))


def match_events(reference: np.ndarray, detected: np.ndarray, tolerance_samples: int) -> int:
    """Number of one-to-one matches within ``tolerance_samples`` (greedy in time order)."""
    reference = np.sort(np.asarray(reference))
    detected = np.sort(np.asarray(detected))
    matched, j = 0, 0
    used = np.zeros(detected.size, dtype=bool)
    for event in reference:
        while j < detected.size and detected[j] < event - tolerance_samples:
            j += 1
        k = j
        while k < detected.size and detected[k] <= event + tolerance_samples:
            if not used[k]:
                used[k] = True
                matched += 1
                break
            k += 1
    return matched


def signal_metrics(original: np.ndarray, reconstruction: np.ndarray, sampling_frequency: float,
                   full_scale: float | None = None, threshold_sigma: float = 4.5, window_ms: float = 1.0,
                   tolerance_ms: float = 0.5, dead_time_ms: float = 1.0) -> dict:
    """The paper's metrics and the spike metrics of one 1D signal (see the module docstring).

    Parameters
    ----------
    original, reconstruction : np.ndarray
        1D signals of the same length, stored units.
    sampling_frequency : float
        In Hz.
    full_scale : float | None, default: None
        Peak of the full-scale PSNR; None uses the original dtype's range (65535 for int16).
    threshold_sigma : float, default: 4.5
        Detection threshold in noise standard deviations (MAD estimate).
    window_ms : float, default: 1.0
        Half width of the spike windows of ``spike_sndr_db``.
    tolerance_ms : float, default: 0.5
        Largest time difference for a detected spike to match an original one.
    dead_time_ms : float, default: 1.0
        At most one spike per this interval.

    Returns
    -------
    dict
        ``snr_db``, ``mse``, ``mse_normalized``, ``psnr_signal_peak_db``, ``psnr_full_scale_db``,
        ``ssim``, ``max_abs_error``, ``exact``, ``spike_sndr_db``, ``num_spikes_original``,
        ``num_spikes_reconstruction``, ``num_spikes_matched``, ``detection_precision``, ``detection_recall``.
    """
    from skimage.metrics import structural_similarity

    original_array = np.asarray(original)
    x = original_array.astype(np.float64).ravel()
    y = np.asarray(reconstruction, dtype=np.float64).ravel()
    if x.shape != y.shape:
        raise ValueError(f"original and reconstruction differ in length: {x.size} vs {y.size}")
    if full_scale is None:
        if original_array.dtype.kind in "iu":
            info = np.iinfo(original_array.dtype)
            full_scale = float(info.max) - float(info.min)
        else:
            full_scale = float(x.max() - x.min()) or 1.0
    error = x - y
    mse = float(np.mean(error**2))
    with np.errstate(divide="ignore"):
        snr_db = float(10.0 * np.log10(np.sum(x**2) / np.sum(error**2))) if mse > 0 else float("inf")
    x_normalized = normalize_by_original(x, x)
    y_normalized = normalize_by_original(x, y)
    mse_normalized = float(np.mean((x_normalized - y_normalized) ** 2))
    peak_to_peak = float(x.max() - x.min())
    psnr_signal_peak_db = float(10.0 * np.log10(peak_to_peak**2 / mse)) if mse > 0 else float("inf")
    psnr_full_scale_db = float(10.0 * np.log10(full_scale**2 / mse)) if mse > 0 else float("inf")
    if x.size >= SSIM_WINDOW_SAMPLES:
        ssim = float(structural_similarity(x_normalized, y_normalized, data_range=2.0, win_size=SSIM_WINDOW_SAMPLES))
    else:
        ssim = float("nan")

    filtered_x = bandpass(x, sampling_frequency)
    filtered_y = bandpass(y, sampling_frequency)
    noise = float(np.median(np.abs(filtered_x)) / 0.6745)
    threshold = threshold_sigma * noise
    dead_time = max(int(round(dead_time_ms * sampling_frequency / 1000.0)), 1)
    spikes_x = detect_negative_peaks(filtered_x, threshold, dead_time) if threshold > 0 else np.zeros(0, dtype=np.int64)
    spikes_y = detect_negative_peaks(filtered_y, threshold, dead_time) if threshold > 0 else np.zeros(0, dtype=np.int64)
    half_window = max(int(round(window_ms * sampling_frequency / 1000.0)), 1)
    if spikes_x.size:
        mask = np.zeros(x.size, dtype=bool)
        for index in spikes_x:
            mask[max(index - half_window, 0) : index + half_window + 1] = True
        spike_sndr_db = float(sndr_db(filtered_x[mask], filtered_y[mask]))
    else:
        spike_sndr_db = float("nan")
    tolerance = max(int(round(tolerance_ms * sampling_frequency / 1000.0)), 0)
    matched = match_events(spikes_x, spikes_y, tolerance)
    return {
        "snr_db": snr_db,
        "mse": mse,
        "mse_normalized": mse_normalized,
        "psnr_signal_peak_db": psnr_signal_peak_db,
        "psnr_full_scale_db": psnr_full_scale_db,
        "ssim": ssim,
        "max_abs_error": float(np.max(np.abs(error))) if error.size else 0.0,
        "exact": bool(np.array_equal(x, y)),
        "spike_sndr_db": spike_sndr_db,
        "noise_sigma": noise,
        "num_spikes_original": int(spikes_x.size),
        "num_spikes_reconstruction": int(spikes_y.size),
        "num_spikes_matched": int(matched),
        "detection_precision": float(matched / spikes_y.size) if spikes_y.size else float("nan"),
        "detection_recall": float(matched / spikes_x.size) if spikes_x.size else float("nan"),
    }


METRIC_LABELS = {
    "snr_db": "SNR (dB, stored values, DC included)",
    "psnr_signal_peak_db": "PSNR, peak = signal peak-to-peak (dB, paper)",
    "psnr_full_scale_db": "PSNR, peak = int16 full scale (dB)",
    "mse_normalized": "MSE on [-1, 1]-normalised signal (paper)",
    "ssim": "SSIM (skimage, 7-sample window, data range 2)",
    "spike_sndr_db": "spike-window SNDR (dB, 300-6000 Hz)",
    "detection_precision": "threshold-crossing precision",
    "detection_recall": "threshold-crossing recall",
}


def summarize(values) -> dict:
    """Mean, median, standard deviation, minimum and maximum of the finite values (NaN if none).

    Infinite values (exact reconstructions) are counted in ``num_infinite`` and left out.
    """
    values = np.asarray([value for value in values if value is not None], dtype=np.float64)
    finite = values[np.isfinite(values)]
    result = {"num_values": int(values.size), "num_infinite": int(np.isinf(values).sum())}
    if finite.size == 0:
        result.update(mean=float("nan"), median=float("nan"), std=float("nan"), min=float("nan"), max=float("nan"))
    else:
        result.update(mean=float(finite.mean()), median=float(np.median(finite)), std=float(finite.std()),
                      min=float(finite.min()), max=float(finite.max()))
    return result
