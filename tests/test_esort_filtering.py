"""E-Sort's FFT band-pass against SpikeInterface's ``bandpass_filter`` (sosfiltfilt)."""

import numpy as np
import pytest

from spikeinterface_vqcompress.esort import core
from spikeinterface_vqcompress.esort.filtering import (FFTBandpassFilterRecording, IIRBandpassFilterRecording, fft_bandpass_filter,
                                                       iir_bandpass_filter)

FILTERS = {"fft": fft_bandpass_filter, "iir": iir_bandpass_filter}


@pytest.fixture(scope="module")
def recording():
    from spikeinterface.core import generate_recording

    # white noise plus a slow offset and drift per channel: the band-pass must remove both
    base = generate_recording(num_channels=6, sampling_frequency=30000.0, durations=[4.0], seed=3)
    from spikeinterface.core import NumpyRecording

    traces = base.get_traces().astype(np.float64)
    t = np.arange(len(traces))[:, None] / 30000.0
    traces = traces * 20 + 500 * np.sin(2 * np.pi * 2.0 * t + np.arange(6)) + 1000
    return NumpyRecording(traces.astype(np.int16), sampling_frequency=30000.0)


@pytest.mark.parametrize("method", sorted(FILTERS))
def test_matches_sosfiltfilt_inside_the_recording(recording, method):
    from spikeinterface.preprocessing import bandpass_filter

    reference = bandpass_filter(recording, freq_min=300.0, freq_max=6000.0, dtype="float32")
    fast = FILTERS[method](recording)
    noise = np.median(np.abs(reference.get_traces(start_frame=10000, end_frame=100000)), axis=0) / 0.6745
    num_samples = recording.get_num_samples()
    for start, end in [(30000, 60000), (45000, 45001), (1000, 119000)]:
        a = reference.get_traces(start_frame=start, end_frame=end)
        b = fast.get_traces(start_frame=start, end_frame=end)
        assert b.shape == a.shape and b.dtype == np.float32
        assert np.max(np.abs(a - b) / noise) < 1e-3
    # the recording's edges: odd reflection instead of sosfiltfilt's padding, a difference of < 1 noise unit
    # that is gone 10 ms in
    for start, end in [(0, 3000), (num_samples - 3000, num_samples)]:
        difference = np.abs(reference.get_traces(start_frame=start, end_frame=end)
                            - fast.get_traces(start_frame=start, end_frame=end)) / noise
        assert difference.max() < 1.0
        inner = difference[300:] if start == 0 else difference[:-300]
        assert inner.max() < 1e-2


@pytest.mark.parametrize("method", sorted(FILTERS))
def test_chunks_stitch_into_the_whole(recording, method):
    fast = FILTERS[method](recording)
    whole = fast.get_traces()
    pieces = np.concatenate([fast.get_traces(start_frame=s, end_frame=min(s + 7001, recording.get_num_samples()))
                             for s in range(0, recording.get_num_samples(), 7001)])
    assert np.all(np.isfinite(whole))
    np.testing.assert_allclose(pieces, whole, atol=1e-3 * np.std(whole))
    # the band-pass removed the offset and the 2 Hz sine
    assert abs(np.mean(whole)) < 0.05 * np.std(whole)


def test_provenance_rebuilds_and_bad_arguments_are_named(recording, tmp_path):
    from spikeinterface.core import load

    fast = fft_bandpass_filter(recording, freq_min=400.0, freq_max=5000.0, workers=2)
    rebuilt = load(fast.to_dict())
    assert isinstance(rebuilt, FFTBandpassFilterRecording) and rebuilt._kwargs["workers"] == 2
    np.testing.assert_array_equal(rebuilt.get_traces(end_frame=5000), fast.get_traces(end_frame=5000))
    # the FFT's thread count does not change the result beyond float32 rounding
    np.testing.assert_allclose(fft_bandpass_filter(recording, freq_min=400.0, freq_max=5000.0).get_traces(end_frame=5000),
                               fast.get_traces(end_frame=5000), atol=1e-4 * np.std(fast.get_traces(end_frame=5000)))
    with pytest.raises(ValueError, match="workers must be a positive"):
        fft_bandpass_filter(recording, workers=0)
    with pytest.raises(ValueError, match="Nyquist"):
        fft_bandpass_filter(recording, freq_max=20000.0)
    with pytest.raises(ValueError, match="float32 or float64"):
        fft_bandpass_filter(recording, dtype="int16")
    with pytest.raises(ValueError, match="filter_method"):
        core.prepare_recording(recording, filter_method="butter")
    assert isinstance(core.prepare_recording(recording, filter_method="fft"), FFTBandpassFilterRecording)
    iir = core.prepare_recording(recording)  # the default
    assert isinstance(iir, IIRBandpassFilterRecording)
    rebuilt = load(iir.to_dict())
    assert isinstance(rebuilt, IIRBandpassFilterRecording)
    np.testing.assert_array_equal(rebuilt.get_traces(end_frame=5000), iir.get_traces(end_frame=5000))
    with pytest.raises(ValueError, match="Nyquist"):
        iir_bandpass_filter(recording, freq_max=20000.0)


def test_sorter_names_a_bad_filter_method(recording, tmp_path):
    import spikeinterface.sorters as ss

    import spikeinterface_vqcompress  # noqa: F401  registers "esort"

    assert ss.get_default_sorter_params("esort")["filter_method"] == "iir"
    with pytest.raises(ValueError, match="filter_method"):
        ss.run_sorter("esort", recording.save(folder=tmp_path / "recording"), folder=tmp_path / "esort",
                      filter_method="butter")
    assert not (tmp_path / "esort" / "sorter_output" / "sorting").exists()


def test_core_kernel_is_sosfilt_forward_then_backward_from_zero_state():
    """The numba kernel against scipy's sosfilt (zero state) run forward, then on the reversed output."""
    from scipy.signal import iirfilter, sosfilt

    from spikeinterface_vqcompress.core.filters import sos_filtfilt_detrended

    rng = np.random.default_rng(4)
    x = (rng.normal(size=(3000, 5)) * 30 + np.linspace(0, 400, 3000)[:, None] + 50).astype(np.float32)
    sos = iirfilter(5, [300.0, 6000.0], fs=30000.0, btype="bandpass", ftype="butter", output="sos")
    line = x[:1].astype(np.float64) + np.arange(3000)[:, None] / 2999 * (x[-1:].astype(np.float64) - x[:1])
    expected = sosfilt(sos, sosfilt(sos, x - line, axis=0)[::-1], axis=0)[::-1]
    got = x.copy()
    sos_filtfilt_detrended(got, sos)
    np.testing.assert_allclose(got, expected, atol=1e-4 * np.std(expected))
    assert np.abs(got).mean() < np.abs(x).mean() / 3  # the offset and the ramp are gone
