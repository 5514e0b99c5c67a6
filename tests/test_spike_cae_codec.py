"""The spike-cae recording codec: detection, background synthesis, bitstream, pipeline."""

import json

import numpy as np
import pytest

from spikeinterface_vqcompress.core.errors import CorruptDataError
from spikeinterface_vqcompress.core.registry import get_codec
from spikeinterface_vqcompress.core.codecs.spike_cae.background import BackgroundModel, estimate_background, synthesise_background
from spikeinterface_vqcompress.core.codecs.spike_cae.codec import decode_times, encode_times
from spikeinterface_vqcompress.core.entropy.rans import decode_with_tables, encode_with_tables
from spikeinterface_vqcompress.core.codecs.spike_cae.detection import DetectionParameters, StreamingSpikeDetector, detect_troughs, neighbour_order, neighbours_within

SAMPLING_FREQUENCY = 32000.0


def probe_locations(num_channels=16):
    """Two columns, 20 um pitch."""
    return np.array([[20.0 * (index % 2), 20.0 * (index // 2)] for index in range(num_channels)])


def synthetic_traces(num_samples=64000, num_channels=16, num_spikes=60, seed=0, amplitude=200.0, noise_std=10.0):
    """Filtered Gaussian noise + spikes with a known trough time and peak channel (int16)."""
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(seed)
    sos = butter(3, [300, 6000], btype="band", fs=SAMPLING_FREQUENCY, output="sos")
    noise = sosfilt(sos, rng.standard_normal((num_samples + 1000, num_channels)), axis=0)[1000:]
    noise *= noise_std / noise.std()
    locations = probe_locations(num_channels)
    t = np.arange(-20, 44)
    waveform = -np.exp(-0.5 * (t / 3.0) ** 2) + 0.3 * np.exp(-0.5 * ((t - 12) / 6.0) ** 2)
    waveform /= -waveform.min()
    times = np.sort(rng.choice(np.arange(100, num_samples - 100, 150), num_spikes, replace=False))
    channels = rng.integers(0, num_channels, num_spikes)
    traces = noise.copy()
    for time, channel in zip(times, channels):
        distances = np.linalg.norm(locations - locations[channel], axis=1)
        spatial = np.exp(-distances / 25.0)
        traces[time + t] += amplitude * waveform[:, None] * spatial[None, :]
    return np.round(traces).astype(np.int16), times, channels, locations


def test_neighbour_order_is_by_distance_with_ties_by_index():
    locations = probe_locations(6)
    order = neighbour_order(locations)
    assert order[0].tolist() == [0, 1, 2, 3, 4, 5]  # (0,0): (20,0)@20 and (0,20)@20 tie -> lower index first
    assert order[3][0] == 3
    distances = np.linalg.norm(locations[order[3]] - locations[3], axis=1)
    assert np.all(np.diff(distances) >= 0)
    table = neighbours_within(locations, 20.0)
    assert set(table[0][table[0] >= 0].tolist()) == {0, 1, 2}


def test_detection_finds_each_spike_once_at_its_trough_and_peak_channel():
    traces, times, channels, locations = synthetic_traces()
    parameters = DetectionParameters(threshold_sd=5.0)
    noise = np.median(np.abs(traces[::4]), axis=0) / 0.6745
    detected_times, detected_channels = detect_troughs(traces, noise, parameters, neighbours_within(locations, 50.0))
    assert len(detected_times) == len(times)
    assert np.all(np.abs(detected_times - times) <= 1)
    assert np.mean(detected_channels == channels) > 0.9


def test_exact_ties_close_in_space_and_time_report_one_spike():
    """Two equal troughs (integer samples) on neighbouring channels: the earliest, then lowest channel, wins;
    the same tie far apart on the probe is two spikes."""
    locations = np.array([[0.0, 20.0 * index] for index in range(8)])
    neighbours = neighbours_within(locations, 50.0)
    traces = np.zeros((200, 8), dtype=np.int16)
    traces[100, 3] = traces[100, 4] = -100  # same sample, neighbouring channels
    traces[150, 0] = traces[153, 1] = -100  # 3 samples apart, neighbouring channels
    traces[60, 0] = traces[60, 7] = -100    # same sample, 140 um apart: not neighbours
    parameters = DetectionParameters(threshold_sd=5.0, exclude_sweep_samples=8, radius_um=50.0)
    times, channels = detect_troughs(traces, np.full(8, 5.0), parameters, neighbours)
    assert list(zip(times.tolist(), channels.tolist())) == [(60, 0), (60, 7), (100, 3), (150, 0)]
    # the report window: only troughs inside [valid_start, valid_stop)
    times, channels = detect_troughs(traces, np.full(8, 5.0), parameters, neighbours, valid_start=61, valid_stop=150)
    assert list(zip(times.tolist(), channels.tolist())) == [(100, 3)]


def test_streaming_detection_matches_one_block_whatever_the_block_sizes():
    traces, times, _, locations = synthetic_traces(num_samples=40000, num_spikes=40, seed=1)
    parameters = DetectionParameters(threshold_sd=5.0, noise_smoothing=0.0)
    one = StreamingSpikeDetector(locations, 4, 64, 21, parameters)
    one.noise_levels = None
    times_one, channels_one, snippets_one = one.process(traces, final=True)
    streaming = StreamingSpikeDetector(locations, 4, 64, 21, parameters)
    # same noise levels in both runs so that only the block handling differs
    levels = one.noise_levels.copy()
    streaming._update_noise = lambda block: setattr(streaming, "noise_levels", levels)
    one_times = []
    rng = np.random.default_rng(3)
    start = 0
    collected_times, collected_channels, collected_snippets = [], [], []
    while start < traces.shape[0]:
        size = int(rng.integers(50, 3000))
        block = traces[start:start + size]
        final = start + size >= traces.shape[0]
        block_times, block_channels, block_snippets = streaming.process(block, final=final)
        collected_times.append(block_times)
        collected_channels.append(block_channels)
        collected_snippets.append(block_snippets)
        start += size
    one_times = np.concatenate(collected_times)
    assert one_times.tolist() == times_one.tolist()
    assert np.concatenate(collected_channels).tolist() == channels_one.tolist()
    assert np.array_equal(np.concatenate(collected_snippets), snippets_one)
    assert snippets_one.shape[1:] == (4, 64)
    # trough sits at sample 21 on the peak channel (channel 0 of the snippet)
    assert np.all(snippets_one[:, 0, 21] == snippets_one[:, 0, 5:40].min(axis=1))


def test_background_statistics_roundtrip_and_synthesis_match_level_and_spectrum():
    traces, _, _, _ = synthetic_traces(num_samples=64000, num_spikes=0, seed=2)
    model = estimate_background(traces, ar_order=6)
    data = model.to_bytes()
    assert len(data) == 3 + 16 * 7
    decoded = BackgroundModel.from_bytes(data, 16)
    synthetic = synthesise_background(decoded, 64000, seed=5)
    assert np.allclose(synthetic.std(axis=0), traces.std(axis=0), rtol=0.08)
    lag1_raw = np.mean(traces[1:] * traces[:-1].astype(float), axis=0) / traces.var(axis=0)
    lag1_synthetic = np.mean(synthetic[1:] * synthetic[:-1], axis=0) / synthetic.var(axis=0)
    assert np.allclose(lag1_raw, lag1_synthetic, atol=0.06)
    # white noise at the same level would have lag-1 correlation ~0: the spectrum is really modelled
    assert np.all(lag1_raw > 0.3)
    assert np.array_equal(synthetic, synthesise_background(decoded, 64000, seed=5))
    with pytest.raises(CorruptDataError):
        BackgroundModel.from_bytes(data[:-1], 16)
    # fitted on a subset of segments (cheaper encoder): same statistics within a few percent
    subset = estimate_background(traces, ar_order=6, max_samples=8192)
    assert np.allclose(subset.levels, model.levels, rtol=0.05)
    assert np.allclose(subset.reflection[:, 0], model.reflection[:, 0], atol=0.03)


def test_background_model_never_synthesises_silence_from_an_invalid_autocorrelation():
    """Lags measured over the samples left between spike windows need not form a positive-definite
    sequence; the Levinson recursion then met |k| >= 1 and clipped it to ~1, whose innovation is ~0: on
    a MEArec tuning recording one channel's background was silent for a whole 1-s chunk."""
    from spikeinterface_vqcompress.core.codecs.spike_cae.background import MAX_REFLECTION, levinson_durbin

    # [1, 0.9, 0] is not positive definite: step 2 would need k = 4.3
    reflection, error = levinson_durbin(np.array([1.0, 0.9, 0.0]), 2)
    assert np.allclose(reflection, [-0.9, 0.0]) and np.isclose(error, 0.19)
    reflection, error = levinson_durbin(np.array([1.0, 0.5, 0.25, 0.125]), 3)  # a valid AR(1): unchanged
    assert np.allclose(reflection, [-0.5, 0.0, 0.0]) and np.isclose(error, 0.75)
    # a stream written before the guard, holding a coefficient of 1 (code 127), still gets noise at its level
    model = BackgroundModel(levels=np.full(2, 20.0), reflection=np.array([[-0.8, 1.0], [0.3, -1.0]]), loadings=np.zeros((2, 0)))
    decoded = BackgroundModel.from_bytes(model.to_bytes(), 2)
    assert np.abs(decoded.reflection).max() <= MAX_REFLECTION
    synthetic = synthesise_background(decoded, 32000, seed=3)
    assert np.all(synthetic.std(axis=0) > 10.0)


def _numpy_background_moments(traces, ar_order, exclude_mask, max_samples):
    """The float32/float64 numpy arithmetic estimate_background did before its numba kernel."""
    from spikeinterface_vqcompress.core.codecs.spike_cae.background import _sample_segments

    x = _sample_segments(traces, max_samples).astype(np.float32)
    keep = np.ones_like(x) if exclude_mask is None else (~_sample_segments(exclude_mask, max_samples)).astype(np.float32)
    if x.ndim == 2:
        x, keep = x[None], keep[None]
    length = x.shape[1]
    x = x * keep
    mean = x.sum(axis=(0, 1)) / np.maximum(keep.sum(axis=(0, 1)), 1.0)
    x = (x - mean[None, None, :]) * keep
    lags = [(x[:, :length - lag] * x[:, lag:]).sum(axis=(0, 1), dtype=np.float64)
            / np.maximum((keep[:, :length - lag] * keep[:, lag:]).sum(axis=(0, 1), dtype=np.float64), 1.0)
            for lag in range(ar_order + 1)]
    return mean, np.array(lags)


@pytest.mark.parametrize("num_channels", [2, 5, 33])
def test_background_moments_kernel_does_numpys_arithmetic_exactly(num_channels):
    """The kernel's mean and autocorrelation equal numpy's bit for bit (whole block and segments, with and
    without excluded spike windows), so the statistics sent, and the bytes, did not change with it."""
    from spikeinterface_vqcompress.core.codecs.spike_cae.background import _background_moments, _sample_segments

    rng = np.random.default_rng(num_channels)
    traces = (rng.standard_normal((20000, num_channels)) * 25 + 3).astype(np.int16)
    mask = rng.random(traces.shape) < 0.15
    for max_samples in (None, 4096):
        for exclude in (None, mask):
            segments = _sample_segments(traces, max_samples)
            excluded = np.zeros((0, 0, 0), dtype=bool) if exclude is None else _sample_segments(exclude, max_samples)
            if segments.ndim == 2:
                segments, excluded = segments[None], (excluded if exclude is None else excluded[None])
            mean, autocorrelation = _background_moments(np.ascontiguousarray(segments), np.ascontiguousarray(excluded), 6)
            expected_mean, expected = _numpy_background_moments(traces, 6, exclude, max_samples)
            assert mean.dtype == np.float32 and np.array_equal(mean, expected_mean)
            assert np.array_equal(autocorrelation, expected)


def test_integer_medians_equal_numpys():
    """The front end's offsets and noise levels from exact integer medians are numpy's medians."""
    from spikeinterface_vqcompress.core.codecs.spike_cae.background import channel_offsets
    from spikeinterface_vqcompress.core.codecs.spike_cae.detection import MAD_TO_STD, estimate_noise_levels
    from spikeinterface_vqcompress.core.robust import twice_column_medians

    rng = np.random.default_rng(4)
    for rows in (1, 2, 7, 800, 801):
        block = (rng.standard_normal((rows, 6)) * 30 + rng.integers(-3000, 3000, 6)).astype(np.int16)
        assert np.array_equal(twice_column_medians(block), 2 * np.median(block.astype(np.float64), axis=0))
        assert np.array_equal(twice_column_medians(block[::3]), 2 * np.median(block[::3].astype(np.float64), axis=0))
        sample = np.abs(block[::8].astype(np.float32))
        assert np.array_equal(estimate_noise_levels(block), np.maximum(np.median(sample, axis=0).astype(np.float64) * MAD_TO_STD, 1e-6))
        sample = block[::8].astype(np.float32)
        median = np.median(sample, axis=0)
        noise = np.median(np.abs(sample - median[None, :]), axis=0) * 1.4826
        dead_zone = np.maximum(3.0 * 1.2533 * noise / np.sqrt(sample.shape[0]), 0.125 * noise)
        expected = np.where(np.abs(np.round(median)) <= dead_zone, 0, np.round(median)).astype(np.int16)
        assert np.array_equal(channel_offsets(block), expected)


def test_spatial_rank_reproduces_a_common_factor():
    rng = np.random.default_rng(0)
    common = rng.standard_normal((50000, 1))
    traces = (10 * (0.8 * common + 0.6 * rng.standard_normal((50000, 8)))).astype(np.float32)
    model = BackgroundModel.from_bytes(estimate_background(traces, ar_order=0, spatial_rank=1).to_bytes(), 8)
    synthetic = synthesise_background(model, 50000, seed=1)
    correlation = np.corrcoef(synthetic.T)[~np.eye(8, dtype=bool)].mean()
    assert 0.5 < correlation < 0.8  # true value 0.64


def test_time_and_index_streams_roundtrip():
    rng = np.random.default_rng(0)
    times = np.sort(np.concatenate([rng.integers(0, 32000, 200), [0, 0, 31999, 31999]]))
    assert decode_times(encode_times(times), times.size).tolist() == times.tolist()
    assert decode_times(encode_times(np.zeros(0, dtype=np.int64)), 0).size == 0
    from spikeinterface_vqcompress.core.entropy.rans import build_frequency_table

    tables = np.stack([build_frequency_table(rng.integers(0, 50, 128), 14) for _ in range(16)])
    indices = rng.integers(0, 128, (37, 16))
    assert np.array_equal(decode_with_tables(encode_with_tables(indices, tables), tables, 37), indices)
    with pytest.raises(CorruptDataError):
        decode_with_tables(encode_with_tables(indices, tables)[:-3], tables, 37)


def _numpy_recording(traces, locations):
    import spikeinterface.core as sc
    from probeinterface import Probe

    recording = sc.NumpyRecording(traces, sampling_frequency=SAMPLING_FREQUENCY)
    probe = Probe(ndim=2)
    probe.set_contacts(positions=locations, shapes="circle", shape_params={"radius": 5})
    probe.set_device_channel_indices(np.arange(len(locations)))
    recording.set_probe(probe)
    recording.set_channel_gains(0.195)
    recording.set_channel_offsets(0.0)
    return recording


def test_identity_codec_through_compress_keeps_snippets_and_flags_synthesised_background():
    import spikeinterface_vqcompress as vq

    traces, times, channels, locations = synthetic_traces(num_samples=64000, num_spikes=40, seed=4)
    recording = _numpy_recording(traces, locations)
    compressed = vq.compress(recording, codec="spike-cae", model="identity", threshold_sd=5.0, progress_bar=False)
    header_codec = compressed.container_header["codec"]
    assert header_codec["background"] == "synthesised"
    assert len(header_codec["channel_locations"]) == 16
    assert compressed.get_annotation("vqcompress_codec")["background"] == "synthesised"
    rebuilt = compressed.get_traces()
    # the middle of every snippet (taper excluded) is the raw signal, bit for bit
    for time, channel in zip(times, channels):
        if 1000 < time < 63000 and abs(time - 32000) > 100:
            assert np.array_equal(rebuilt[time - 10:time + 30, channel], traces[time - 10:time + 30, channel])
    # between spikes: synthesised noise at the right level, not the recorded samples
    quiet = slice(100, 140)
    assert not np.array_equal(rebuilt[quiet], traces[quiet])
    assert abs(rebuilt.std() / traces.std() - 1) < 0.15
    assert compressed.compression_ratio > 5


def test_codec_needs_geometry_and_rejects_damaged_chunks():
    traces, _, _, locations = synthetic_traces(num_samples=32000, num_spikes=10)
    codec = get_codec("spike-cae", model="identity")
    with pytest.raises(ValueError, match="channel_locations"):
        codec.encode(traces)
    codec = get_codec("spike-cae", model="identity", channel_locations=locations.tolist(), snippet_channels=4,
                      snippet_samples=64, trough_sample=21)
    data = codec.encode(traces)
    decoded = codec.decode(data, 32000, 16, np.int16)
    assert decoded.shape == (32000, 16) and decoded.dtype == np.int16
    assert np.array_equal(decoded, codec.decode(data, 32000, 16, np.int16))  # deterministic
    for damaged in (data[:-5], data[:20], data[:8] + bytes([data[8] ^ 0xFF]) + data[9:]):
        with pytest.raises(CorruptDataError):
            codec.decode(damaged, 32000, 16, np.int16)
    silent = np.zeros((5000, 16), dtype=np.int16)  # no spike at all
    assert np.array_equal(codec.decode(codec.encode(silent), 5000, 16, np.int16), silent)
    config = json.loads(json.dumps(codec.get_config()))
    assert get_codec(config).decode(data, 32000, 16, np.int16).tolist() == decoded.tolist()


def test_cae_codec_with_a_model_file_codes_indices_and_records_the_model(tmp_path):
    """An untrained small CAE from a weights file: the bitstream, the model hash and the byte count."""
    import torch

    import spikeinterface_vqcompress as vq
    from spikeinterface_vqcompress.core.codecs.spike_cae.model import SpikeCAE, save_spike_cae

    torch.manual_seed(0)
    model = SpikeCAE(num_channels=4, num_samples=64, hidden_channels=32, bottleneck_channels=16, groups=4, codebook_size=32)
    model.eval()
    path = save_spike_cae(model, tmp_path / "tiny.pt")
    traces, times, _, locations = synthetic_traces(num_samples=64000, num_spikes=40, seed=5)
    recording = _numpy_recording(traces, locations)
    compressed = vq.compress(recording, codec="spike-cae", model=str(path), threshold_sd=5.0, progress_bar=False)
    codec = compressed.codec
    assert compressed.container_header["model_sha256"] == codec.model_sha256
    assert codec.paste_mode == "add"
    rebuilt = compressed.get_traces()
    assert rebuilt.shape == traces.shape
    # 16 indices of log2(32) = 5 bits at most per spike, plus times, channels and background
    times_found, _, _, _ = codec.detect(traces[:32000])
    assert len(times_found) > 10
    assert compressed.encoded_nbytes < compressed.raw_nbytes / 100
    macs, parameters = codec.encoder_macs_per_snippet()
    first_layer = 4 * 32 * 64
    assert macs > first_layer and parameters > 4 * 32
    # decoding again from the same bytes in a fresh codec gives the same traces
    reloaded = get_codec(compressed.container_header["codec"])
    chunk = compressed._reader.decode_chunk(0, 0)
    assert np.array_equal(chunk, compressed.get_traces(start_frame=0, end_frame=32000))
    assert reloaded.model_sha256 == codec.model_sha256


def test_identity_codec_keeps_the_snippet_shape_it_was_given():
    from spikeinterface_vqcompress.core.codecs.spike_cae.codec import default_model

    traces, _, _, locations = synthetic_traces(num_samples=32000, num_spikes=10)
    recording = _numpy_recording(traces, locations)
    codec = get_codec("spike-cae", model="identity", snippet_samples=96).with_recording(recording)
    assert codec.snippet_shape() == (4, 96, 32)
    codec = get_codec("spike-cae", model="identity", snippet_samples=96, trough_sample=40).with_recording(recording)
    assert codec.snippet_shape() == (4, 96, 40)
    assert get_codec("spike-cae", model="identity").with_recording(recording).snippet_shape() == (4, 64, 21)
    # the default model follows the channel count (chosen on a tuning recording): 15 x 96 from 64 channels
    assert get_codec("spike-cae").with_recording(recording).params["model"] == "nn32-4x64-r2"
    assert default_model(32) == "nn32-4x64-r2" and default_model(64) == "np64-15x96"


def _shipped_default_nn32():
    from spikeinterface_vqcompress.core.codecs.spike_cae.codec import default_model
    from spikeinterface_vqcompress.core.codecs.spike_cae.model import available_spike_cae_models

    return default_model(32) in available_spike_cae_models()


@pytest.mark.skipif(not _shipped_default_nn32(), reason="the shipped 32-channel default spike CAE is not present")
def test_cae_codec_on_mearec_ground_truth(ground_truth_file):
    import spikeinterface.core as sc

    import spikeinterface_vqcompress as vq
    from spikeinterface_vqcompress.evaluation.metrics import spike_window_fidelity
    from spikeinterface_vqcompress.groundtruth import load_ground_truth

    recording, gt_sorting = load_ground_truth(ground_truth_file)
    recording, gt_sorting = recording.frame_slice(0, 4 * 32000), gt_sorting.frame_slice(0, 4 * 32000)
    compressed = vq.compress(recording, codec="spike-cae", progress_bar=False)
    assert compressed.container_header["codec"]["model"] == "nn32-4x64-r2"
    assert compressed.container_header["model_sha256"] == compressed.codec.model_sha256 is not None
    assert compressed.compression_ratio > 100  # vs int16, every byte of the container counted
    fidelity = spike_window_fidelity(recording, compressed, gt_sorting)
    assert fidelity["sndr_spike_db_mean"] > 2  # the spikes are there (synthesised noise around them)
    profile = compressed.codec.hardware_profile(32, 32000.0).to_dict()
    assert profile["operations_per_spike"]["mac"] > 16 * 256 * 64  # at least the CAE's first layer
    reloaded = sc.load(compressed.to_dict())
    assert np.array_equal(reloaded.get_traces(start_frame=0, end_frame=16000), compressed.get_traces(start_frame=0, end_frame=16000))


def test_cli_train_spike_cae_asks_for_training_data(tmp_path):
    from spikeinterface_vqcompress.cli.main import build_parser, main

    parser = build_parser()
    args = parser.parse_args(["train", "spike-cae", "--probe", "Neuropixels-64", "--output", str(tmp_path / "m.pt")])
    assert args.function.__name__ == "command_train_spike_cae"
    with pytest.raises(SystemExit, match="training data"):
        main(["train", "spike-cae", "--output", str(tmp_path / "m.pt")])
    with pytest.raises(SystemExit, match=r"\.pt"):
        main(["train", "spike-cae", "--seeds", "201", "--output", str(tmp_path / "m.json")])
    # a denoising model needs the noise-free twin of each given recording
    recording_file = tmp_path / "a.h5"
    recording_file.write_bytes(b"")
    with pytest.raises(SystemExit, match="--clean-recordings"):
        main(["train", "spike-cae", "--denoise", "--recordings", str(recording_file), "--output", str(tmp_path / "m.pt")])
    with pytest.raises(SystemExit, match="one noise-free twin per"):
        main(["train", "spike-cae", "--recordings", str(recording_file), "--clean-recordings", str(recording_file),
              str(recording_file), "--output", str(tmp_path / "m.pt")])
    assert not (tmp_path / "m.pt").exists()
