"""Zero-phase Butterworth band-pass by FFT or by a numba IIR kernel: E-Sort's fast stand-ins for ``bandpass_filter``.

SpikeInterface's ``bandpass_filter`` runs ``scipy.signal.sosfiltfilt`` (a Butterworth filter forward
then backward) over each chunk and its margins. Forward-backward filtering multiplies the spectrum by
``|H(f)|^2``, so the same result (to within float32 rounding and edge handling) is one real FFT per
chunk (in overlapping blocks of 8192 frames), a product and an inverse FFT: 1.8-2.5x faster than
``bandpass_filter`` over 2 s chunks of 32-128-channel MEArec recordings
(``benchmarks/results/esort_speed.md``). Inside a recording the two differ by < 1e-3 noise units
(at most 3.5e-4 there); in its first and last 10 ms, which each pads its own way, by less than one
(``tests/test_esort_filtering.py``).

:class:`IIRBandpassFilterRecording` runs the same second-order sections as ``sosfiltfilt`` forward
then backward over each chunk and the same margins, in one numba kernel that keeps the sections'
state in float64 and runs every channel of a sample side by side (SIMD over channels): at 384
channels about 3x faster than the FFT product per 2 s chunk (0.12 s against 0.40 s of one core;
``benchmarks/results/esort_inference.md``), and within float32 rounding of ``sosfiltfilt`` on the same samples.
"""

from __future__ import annotations

import numpy as np
from spikeinterface.core import get_chunk_with_margin
from spikeinterface.preprocessing.basepreprocessor import BasePreprocessor, BasePreprocessorSegment

from spikeinterface_vqcompress.core.filters import sos_filtfilt_detrended


def butterworth_gain(frequencies: np.ndarray, sampling_frequency: float, freq_min: float, freq_max: float,
                     filter_order: int) -> np.ndarray:
    """``|H(f)|^2`` at ``frequencies`` (Hz) of scipy's ``iirfilter(filter_order, [freq_min, freq_max],
    btype="bandpass", ftype="butter")``: the gain of that filter applied forward and backward."""
    from scipy.signal import iirfilter, sosfreqz

    sos = iirfilter(filter_order, [freq_min, freq_max], fs=sampling_frequency, btype="bandpass", ftype="butter",
                    output="sos")
    _, response = sosfreqz(sos, worN=np.asarray(frequencies, dtype=np.float64), fs=sampling_frequency)
    return np.abs(response) ** 2


class FFTBandpassFilterRecording(BasePreprocessor):
    """Zero-phase Butterworth band-pass of a recording, applied in the frequency domain.

    The result matches ``spikeinterface.preprocessing.bandpass_filter(recording, freq_min, freq_max,
    filter_order=filter_order)`` (``sosfiltfilt``) away from the recording's first and last
    10 ms or so, where this filter extends the signal by odd reflection instead (the two differ
    there by less than one noise unit).

    Parameters
    ----------
    recording : BaseRecording
        The recording to filter.
    freq_min, freq_max : float, default: 300.0, 6000.0
        Band edges in Hz (``0 < freq_min < freq_max < sampling_frequency / 2``).
    filter_order : int, default: 5
        Order of the Butterworth filter before it is doubled by the forward-backward gain.
    margin_ms : float | "auto", default: "auto"
        Samples read on each side of a chunk so that the FFT's circular wrap-around stays out of it;
        "auto": 5 periods of ``freq_min``, as ``bandpass_filter`` does.
    dtype : "float32" | "float64", default: "float32"
        The dtype of the returned traces.
    workers : int, default: 1
        Threads of each FFT (``scipy.fft``'s ``workers``). Keep 1 when SpikeInterface already runs
        chunks in parallel (``n_jobs > 1``).

    Returns
    -------
    FFTBandpassFilterRecording
        A lazy recording; ``si.load`` rebuilds it from its provenance.
    """

    #: the segment class (None: the FFT one; :class:`IIRBandpassFilterRecording` sets its own)
    _segment_class = None

    def __init__(self, recording, freq_min: float = 300.0, freq_max: float = 6000.0, filter_order: int = 5,
                 margin_ms="auto", dtype="float32", workers: int = 1):
        sampling_frequency = recording.get_sampling_frequency()
        if not 0 < freq_min < freq_max < sampling_frequency / 2:
            raise ValueError(f"need 0 < freq_min < freq_max < sampling_frequency / 2, got freq_min={freq_min}, "
                             f"freq_max={freq_max} at {sampling_frequency} Hz: choose a band below the Nyquist "
                             "frequency")
        dtype = np.dtype(dtype)
        if dtype not in (np.float32, np.float64):
            raise ValueError(f"dtype must be float32 or float64, got {dtype}: filtered traces are not integers")
        if margin_ms == "auto":
            margin_ms = 5 * 1000.0 / freq_min
        margin = int(np.ceil(float(margin_ms) * sampling_frequency / 1000.0))
        workers = int(workers)
        if workers < 1:
            raise ValueError(f"workers must be a positive number of threads, got {workers}")
        BasePreprocessor.__init__(self, recording, dtype=dtype)
        for parent_segment in recording._recording_segments:
            self.add_recording_segment((self._segment_class or _FFTBandpassSegment)(
                parent_segment, sampling_frequency, freq_min, freq_max, int(filter_order), margin, dtype, workers))
        self._kwargs = dict(recording=recording, freq_min=float(freq_min), freq_max=float(freq_max),
                            filter_order=int(filter_order), margin_ms=float(margin_ms), dtype=dtype.str,
                            workers=workers)


_FRAMES_PER_FFT = 8192


class _FFTBandpassSegment(BasePreprocessorSegment):
    def __init__(self, parent_segment, sampling_frequency, freq_min, freq_max, filter_order, margin, dtype, workers):
        BasePreprocessorSegment.__init__(self, parent_segment)
        self.workers = workers
        self.sampling_frequency = sampling_frequency
        self.band = (freq_min, freq_max, filter_order)
        self.margin = margin
        self.dtype = dtype
        self._gains = {}  # FFT length -> (n // 2 + 1, 1) float32 array

    def _gain(self, num_fft: int) -> np.ndarray:
        if num_fft not in self._gains:
            frequencies = np.fft.rfftfreq(num_fft, 1.0 / self.sampling_frequency)
            gain = butterworth_gain(frequencies, self.sampling_frequency, *self.band)
            self._gains[num_fft] = gain.astype(np.float32)[:, None]
        return self._gains[num_fft]

    def get_traces(self, start_frame, end_frame, channel_indices):
        traces, left, right = get_chunk_with_margin(self.parent_recording_segment, start_frame, end_frame,
                                                    channel_indices, self.margin)
        x = np.array(traces, dtype=np.float32)  # (L, C), a copy we own
        if len(x) == 0:
            return np.zeros((0, x.shape[1]), dtype=self.dtype)
        # at the recording's edges, extend by odd reflection (as sosfiltfilt pads)
        pad_left = min(self.margin - left, len(x) - 1)
        pad_right = min(self.margin - right, len(x) - 1)
        if pad_left > 0 or pad_right > 0:
            x = np.concatenate([2 * x[:1] - x[1:pad_left + 1][::-1], x,
                                2 * x[-1:] - x[len(x) - 1 - pad_right:len(x) - 1][::-1]])
        first = max(pad_left, 0) + left  # the requested frames are x[first:first + num_frames]
        return self._band_pass(x, first, end_frame - start_frame)

    def _band_pass(self, x: np.ndarray, first: int, num_frames: int) -> np.ndarray:
        """Frames ``first .. first + num_frames`` of ``x`` (``(L, C)`` float32, overwritten) band-passed."""
        out = np.empty((num_frames, x.shape[1]), dtype=self.dtype)
        # overlap-save: each block of output frames is filtered from itself and `margin` samples on
        # each side; blocks of 8k frames keep each FFT in the CPU cache (1.35x faster than one FFT
        # over a 2 s chunk of 128 channels, interleaved repeats)
        block = max(_FRAMES_PER_FFT, 4 * self.margin)
        for begin in range(0, num_frames, block):
            stop = min(begin + block, num_frames)
            low = max(first + begin - self.margin, 0)
            high = min(first + stop + self.margin, len(x))
            filtered = self._filter(x[low:high].copy())
            out[begin:stop] = filtered[first + begin - low:first + stop - low]
        return out

    def _filter(self, x: np.ndarray) -> np.ndarray:
        """Band-pass ``x`` (``(L, C)`` float32, overwritten) by one FFT product, after removing the line
        through its first and last samples (its periodic extension then has no jump; the band-pass
        removes a line anyway: zero gain at 0 Hz, and a smooth ramp has no band power)."""
        from scipy import fft

        length = len(x)
        x -= x[:1] + np.linspace(0.0, 1.0, length, dtype=np.float32)[:, None] * (x[-1:] - x[:1])
        # scipy's pocketfft keeps float32 as complex64; on a 2 s, 128-channel chunk it was ~1.25x faster
        # than torch.fft with the same number of threads
        num_fft = fft.next_fast_len(length, real=True)
        spectrum = fft.rfft(x, n=num_fft, axis=0, overwrite_x=True, workers=self.workers)
        spectrum *= self._gain(num_fft)
        return fft.irfft(spectrum, n=num_fft, axis=0, overwrite_x=True, workers=self.workers)


class _IIRBandpassSegment(_FFTBandpassSegment):
    def __init__(self, parent_segment, sampling_frequency, freq_min, freq_max, filter_order, margin, dtype, workers):
        from scipy.signal import iirfilter

        _FFTBandpassSegment.__init__(self, parent_segment, sampling_frequency, freq_min, freq_max, filter_order, margin,
                                     dtype, workers)
        self.sos = iirfilter(filter_order, [freq_min, freq_max], fs=sampling_frequency, btype="bandpass",
                             ftype="butter", output="sos").astype(np.float64)

    def _band_pass(self, x, first, num_frames):
        sos_filtfilt_detrended(x, self.sos)
        return x[first:first + num_frames].astype(self.dtype, copy=False)


class IIRBandpassFilterRecording(FFTBandpassFilterRecording):
    """Zero-phase Butterworth band-pass of a recording: ``sosfiltfilt``'s sections in a numba kernel.

    The same filter and parameters as :class:`FFTBandpassFilterRecording` (``workers`` is not used:
    the kernel runs on the calling thread, and releases the GIL so that chunks can run side by side
    in threads). Inside the recording it matches ``bandpass_filter`` (``sosfiltfilt``) within float32
    rounding; in its first and last 10 ms, padded by odd reflection, by less than one noise unit.
    """

    _segment_class = _IIRBandpassSegment


def fft_bandpass_filter(recording, freq_min: float = 300.0, freq_max: float = 6000.0, filter_order: int = 5,
                        margin_ms="auto", dtype="float32", workers: int = 1) -> FFTBandpassFilterRecording:
    """Zero-phase Butterworth band-pass by FFT; see :class:`FFTBandpassFilterRecording`."""
    return FFTBandpassFilterRecording(recording, freq_min=freq_min, freq_max=freq_max, filter_order=filter_order,
                                      margin_ms=margin_ms, dtype=dtype, workers=workers)


def iir_bandpass_filter(recording, freq_min: float = 300.0, freq_max: float = 6000.0, filter_order: int = 5,
                        margin_ms="auto", dtype="float32") -> IIRBandpassFilterRecording:
    """Zero-phase Butterworth band-pass by a numba ``sosfiltfilt``; see :class:`IIRBandpassFilterRecording`."""
    return IIRBandpassFilterRecording(recording, freq_min=freq_min, freq_max=freq_max, filter_order=filter_order,
                                      margin_ms=margin_ms, dtype=dtype)
