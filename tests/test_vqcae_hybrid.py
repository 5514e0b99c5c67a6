"""The VQ-CAE hybrid: quantizer, model, codec, shipped weights, metrics and the encode/decode/eval CLI."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from spikeinterface_vqcompress.core.errors import CorruptDataError
from spikeinterface_vqcompress.core.registry import available_codecs, get_codec
from spikeinterface_vqcompress.core.entropy import build_frequency_table
from spikeinterface_vqcompress.evaluation.signal_metrics import signal_metrics
from spikeinterface_vqcompress.core.nn.vq import VectorQuantizer, nearest_code_indices
from spikeinterface_vqcompress.core.nn.vqcae import VQCAEHybrid, save_weights, signals_to_training_segments, split_segments, train_vqcae

N1_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "neuralink_n1"
MODELS = Path(__file__).resolve().parents[1] / "spikeinterface_vqcompress" / "models"
TINY_CONFIG = {"segment_num_samples": 64, "hidden_sizes": [32, 16], "latent_dim": 4, "codebook_size": 8, "cae_channels": [4, 8, 4]}
SAMPLING_FREQUENCY = 19531

torch.set_num_threads(1)


def synthetic_signal(num_samples, seed):
    """An N1-like int16 signal: offset, slow oscillation, noise, spikes, on a grid of 64."""
    rng = np.random.default_rng(seed)
    time_s = np.arange(num_samples) / SAMPLING_FREQUENCY
    signal = 800 + 600 * np.sin(2 * np.pi * 7 * time_s + seed) + 150 * rng.standard_normal(num_samples)
    for start in rng.integers(20, num_samples - 40, size=num_samples // 2000):
        signal[start : start + 20] -= 2500 * np.hanning(20)
    return (np.rint(signal / 64) * 64).astype(np.int16)


@pytest.fixture(scope="module")
def tiny_model_path(tmp_path_factory):
    signals = [synthetic_signal(4000, seed) for seed in range(4)]
    segments = signals_to_training_segments(signals, TINY_CONFIG["segment_num_samples"])
    model, history = train_vqcae(segments, epochs=2, batch_size=32, seed=0, config=TINY_CONFIG, log_every_epochs=0)
    assert len(history) == 2 and all(np.isfinite(record["loss"]) for record in history)
    with torch.no_grad():
        counts = np.bincount(model.encode_indices(torch.as_tensor(segments)).numpy(), minlength=TINY_CONFIG["codebook_size"])
    path = tmp_path_factory.mktemp("model") / "tiny.pt"
    save_weights(model, build_frequency_table(counts, 12), path)
    return path


# -- quantizer and model -----------------------------------------------------------------------------
def test_vector_quantizer_nearest_code_losses_and_straight_through():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(16, 3, commitment_weight=0.25)
    z = torch.randn(5, 7, 3, requires_grad=True)
    output = quantizer(z)
    brute = torch.cdist(z.detach().reshape(-1, 3), quantizer.codebook.detach()).argmin(1)
    assert torch.equal(output["indices"].reshape(-1), brute)
    assert torch.equal(nearest_code_indices(z.detach().reshape(-1, 3), quantizer.codebook.detach()), brute)
    np.testing.assert_allclose(output["quantized"].detach().numpy(), quantizer.lookup(output["indices"]).detach().numpy(), atol=1e-6)
    output["quantized"].sum().backward()
    np.testing.assert_allclose(z.grad.numpy(), np.ones(z.shape))  # straight-through: identity gradient
    assert float(output["commitment_loss"].detach()) > 0 and float(output["codebook_loss"].detach()) > 0
    with pytest.raises(ValueError, match="code indices"):
        quantizer.lookup(torch.tensor([16]))


def test_ema_quantizer_kmeans_init_and_dead_code_restart():
    torch.manual_seed(0)
    quantizer = VectorQuantizer(8, 2, use_ema=True, kmeans_init=True, dead_code_threshold=0.5)
    data = torch.cat([torch.randn(100, 2) * 0.1 + 5, torch.randn(100, 2) * 0.1 - 5])
    quantizer.train()
    output = quantizer(data)
    assert bool(quantizer.initialized)
    assert float(output["codebook_loss"]) == 0.0
    # k-means init puts codes on both clusters
    codebook = quantizer.codebook
    assert (codebook[:, 0] > 3).any() and (codebook[:, 0] < -3).any()
    before = quantizer.codebook.clone()
    quantizer.ema_counts[0] = 0.0  # a dead code is restarted on a data vector
    quantizer._restart_dead_codes(data, torch.zeros(8))
    assert not torch.equal(before[0], quantizer.codebook[0])
    assert torch.min(torch.cdist(quantizer.codebook[:1], data)) < 1e-6


def test_full_size_model_matches_the_paper_architecture():
    model = VQCAEHybrid()
    linear_shapes = [tuple(layer.weight.shape) for layer in model.encoder if isinstance(layer, torch.nn.Linear)]
    assert linear_shapes == [(512, 8000), (256, 512), (8, 256)]
    decoder_shapes = [tuple(layer.weight.shape) for layer in model.decoder if isinstance(layer, torch.nn.Linear)]
    assert decoder_shapes == [(256, 8), (512, 256), (8000, 512)]
    assert isinstance(model.decoder[-1], torch.nn.Tanh) and isinstance(model.cae_decoder[-1], torch.nn.Tanh)
    assert tuple(model.quantizer.codebook.shape) == (128, 8)
    conv_channels = [(layer.in_channels, layer.out_channels, layer.stride[0]) for layer in model.cae_encoder if isinstance(layer, torch.nn.Conv1d)]
    assert conv_channels == [(1, 16, 2), (16, 32, 2), (32, 16, 2)]
    output = model(torch.rand(2, 8000) * 2 - 1)
    assert {"loss", "mse_cae", "mse_vq", "codebook_loss", "commitment_loss"} <= set(output)
    assert output["reconstruction"].shape == (2, 8000) and output["indices"].shape == (2,)
    expected = output["mse_cae"] + 1.0 * (output["mse_vq"] + output["codebook_loss"] + output["commitment_loss"])
    assert torch.allclose(output["loss"], expected)


def test_segmentation_pads_the_tail_by_repetition():
    segments = split_segments(np.arange(10, dtype=np.int16), 4)
    assert segments.shape == (3, 4)
    np.testing.assert_array_equal(segments[-1], [8, 9, 9, 9])


def test_tiny_model_rebuilds_from_its_state_dict(tiny_model_path):
    payload = torch.load(tiny_model_path, weights_only=True)
    model = VQCAEHybrid.from_state_dict(payload["state_dict"], payload["config"])
    assert model.config["segment_num_samples"] == 64
    segments = torch.as_tensor(signals_to_training_segments([synthetic_signal(640, 9)], 64))
    indices = model.encode_indices(segments)
    assert indices.shape == (10,) and int(indices.max()) < 8
    rebuilt = model.decode_indices(indices)
    assert rebuilt.shape == (10, 64) and float(rebuilt.abs().max()) <= 1.0


# -- the codec ---------------------------------------------------------------------------------------
def test_codec_round_trip_multichannel_with_tail(tiny_model_path):
    assert "vqcae-hybrid" in available_codecs()
    codec = get_codec("vqcae-hybrid", model=str(tiny_model_path))
    config = codec.get_config()
    json.dumps(config)
    assert config["model_sha256"] == hashlib.sha256(tiny_model_path.read_bytes()).hexdigest() == codec.model_sha256
    traces = np.stack([synthetic_signal(1000, 1), synthetic_signal(1000, 2), np.full(1000, -640, np.int16)], axis=1)
    data = codec.encode(traces)
    assert data == codec.encode(traces)  # deterministic bytes
    decoded = codec.decode(data, 1000, 3, "int16")
    assert decoded.shape == (3 * 0 + 1000, 3) and decoded.dtype == np.int16
    np.testing.assert_array_equal(decoded, codec.decode(data, 1000, 3, "int16"))
    np.testing.assert_array_equal(decoded[:, 2], -640)  # a constant channel comes back exactly (min == max)
    # every decoded value lies within its segment's [min, max] (tanh output times the half range)
    for channel in range(2):
        for start in range(0, 1000, 64):
            original = traces[start : start + 64, channel]
            assert original.min() <= decoded[start : start + 64, channel].min()
            assert decoded[start : start + 64, channel].max() <= original.max()
    # 16 segments per channel: ~3 bits per index (8 codes) + 4 bytes of min/max each + framing
    assert 3 * 16 * 4 < len(data) < 3 * 16 * 4 + 3 * 16 + 40


def test_codec_rejects_damage_and_other_weights(tiny_model_path):
    codec = get_codec("vqcae-hybrid", model=str(tiny_model_path))
    traces = synthetic_signal(640, 3)[:, None]
    data = codec.encode(traces)
    with pytest.raises(CorruptDataError):
        codec.decode(data[:-2], 640, 1, "int16")
    with pytest.raises(CorruptDataError):
        codec.decode(data, 700, 1, "int16")  # one segment more than encoded
    with pytest.raises(CorruptDataError, match="sha256"):
        get_codec("vqcae-hybrid", model=str(tiny_model_path), model_sha256="0" * 64)
    with pytest.raises(FileNotFoundError, match="shipped model"):
        get_codec("vqcae-hybrid", model="no_such_model")


def test_multichannel_recording_through_compressed_recording(tiny_model_path):
    from spikeinterface.core import NumpyRecording

    import spikeinterface_vqcompress as vq
    from spikeinterface_vqcompress.evaluation import compare_traces

    traces = np.stack([synthetic_signal(3000, seed) for seed in range(4)], axis=1)
    recording = NumpyRecording([traces], sampling_frequency=SAMPLING_FREQUENCY)
    compressed = vq.compress(recording, codec="vqcae-hybrid", model=str(tiny_model_path), chunk_duration_s=640 / SAMPLING_FREQUENCY,
                             progress_bar=False)
    rebuilt = compressed.get_traces()
    assert rebuilt.shape == traces.shape
    assert compressed.encoded_nbytes == len(compressed.get_compressed_bytes())
    assert compressed.compression_ratio == pytest.approx(traces.nbytes / compressed.encoded_nbytes)
    assert compressed.container_header["model_sha256"] == compressed.codec.model_sha256
    fidelity = compare_traces(recording, compressed)
    assert not fidelity["exact"] and np.isfinite(fidelity["rmse_uV"])


# -- the shipped model ---------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def shipped_card():
    card_path = MODELS / "vqcae_hybrid_n1.json"
    if not card_path.exists():
        pytest.fail("the shipped model card models/vqcae_hybrid_n1.json is missing")
    return json.loads(card_path.read_text())


def test_shipped_model_matches_its_card(shipped_card):
    weights = MODELS / shipped_card["weights_file"]
    assert weights.stat().st_size < 20 * 1024 * 1024
    assert hashlib.sha256(weights.read_bytes()).hexdigest() == shipped_card["weights_sha256"]
    codec = get_codec("vqcae-hybrid")
    assert codec.model_sha256 == shipped_card["weights_sha256"]
    assert codec.network.config == shipped_card["config"]
    assert set(shipped_card["training"]["train_files"]).isdisjoint(shipped_card["training"]["held_out_files"])
    assert shipped_card["training"]["epochs"] == 100


def test_shipped_model_through_the_container_is_deterministic(tmp_path):
    from spikeinterface.core import NumpyRecording

    from spikeinterface_vqcompress import read_compressed, write_compressed

    traces = synthetic_signal(20000, 5)[:, None]
    recording = NumpyRecording([traces], sampling_frequency=SAMPLING_FREQUENCY)
    first = write_compressed(recording, tmp_path / "a.vqc", codec="vqcae-hybrid", chunk_duration_s=16000 / SAMPLING_FREQUENCY, progress_bar=False)
    second = write_compressed(recording, tmp_path / "b.vqc", codec="vqcae-hybrid", chunk_duration_s=16000 / SAMPLING_FREQUENCY, progress_bar=False)
    assert (tmp_path / "a.vqc").read_bytes() == (tmp_path / "b.vqc").read_bytes()
    decoded = read_compressed(tmp_path / "a.vqc").get_traces()
    np.testing.assert_array_equal(decoded, second.get_traces())
    assert first.encoded_nbytes == (tmp_path / "a.vqc").stat().st_size
    assert decoded.shape == traces.shape and not np.array_equal(decoded, traces)


# -- metrics -------------------------------------------------------------------------------------------
def test_signal_metrics_exact_mean_and_spikes():
    signal = synthetic_signal(20000, 7)
    exact = signal_metrics(signal, signal, SAMPLING_FREQUENCY)
    assert exact["exact"] and exact["snr_db"] == np.inf and exact["ssim"] == pytest.approx(1.0)
    assert exact["num_spikes_original"] >= 5
    assert exact["detection_precision"] == 1.0 and exact["detection_recall"] == 1.0
    mean = np.full_like(signal, int(np.rint(signal.mean())))
    metrics = signal_metrics(signal, mean, SAMPLING_FREQUENCY)
    x = signal.astype(float)
    assert metrics["snr_db"] == pytest.approx(10 * np.log10(np.sum(x**2) / np.sum((x - mean) ** 2)))
    assert metrics["mse_normalized"] == pytest.approx(metrics["mse"] / ((x.max() - x.min()) / 2) ** 2)
    assert metrics["psnr_signal_peak_db"] == pytest.approx(10 * np.log10(4 / metrics["mse_normalized"]))
    assert metrics["psnr_full_scale_db"] == pytest.approx(10 * np.log10(65535**2 / metrics["mse"]))
    assert metrics["detection_recall"] == 0.0 and metrics["spike_sndr_db"] == pytest.approx(0.0, abs=0.5)


# -- command line ------------------------------------------------------------------------------------
def write_wavs(folder, count=3, num_samples=9000):
    from scipy.io import wavfile

    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for seed in range(count):
        path = folder / f"file_{seed}.wav"
        wavfile.write(path, SAMPLING_FREQUENCY, synthetic_signal(num_samples, seed))
        paths.append(path)
    return paths


def test_cli_encode_decode_and_eval_on_wav_files(tmp_path, tiny_model_path, capsys):
    from scipy.io import wavfile

    from spikeinterface_vqcompress.cli.main import main

    paths = write_wavs(tmp_path / "wavs")
    assert main(["encode", str(paths[0]), str(tmp_path / "a.vqc"), "--codec", "flac"]) == 0
    assert main(["decode", str(tmp_path / "a.vqc"), str(tmp_path / "a.wav")]) == 0
    rate, decoded = wavfile.read(tmp_path / "a.wav")
    assert rate == SAMPLING_FREQUENCY
    np.testing.assert_array_equal(decoded, wavfile.read(paths[0])[1])  # lossless through the CLI

    assert main(["encode", str(paths[1]), str(tmp_path / "b.vqc"), "--codec", "vqcae-hybrid", "--param", f"model={tiny_model_path}"]) == 0
    assert main(["decode", str(tmp_path / "b.vqc"), str(tmp_path / "b.wav")]) == 0
    _, lossy = wavfile.read(tmp_path / "b.wav")
    assert lossy.shape == (9000,) and lossy.dtype == np.int16

    output = tmp_path / "report"
    assert main(["eval", str(tmp_path / "wavs"), "--codec", "vqcae-hybrid", "--param", f"model={tiny_model_path}",
                 "--output", str(output), "--quiet"]) == 0
    printed = capsys.readouterr().out
    assert "compression ratio" in printed and "lossy (not lossless): maximum absolute error" in printed
    assert "SSIM" in printed and "spike-window SNDR" in printed
    report = json.loads((output / "evaluation.json").read_text())
    totals = report["totals"]
    assert totals["ratio_wav_bytes"] == pytest.approx(sum(path.stat().st_size for path in paths) / totals["encoded_nbytes"])
    assert report["verification"]["lossless"] is False
    for name in ("evaluation.md", "metric_distributions.png", "waveform.png"):
        assert (output / name).stat().st_size > 1000

    assert main(["eval", str(tmp_path / "wavs"), "--codec", "flac", "--output", str(tmp_path / "flac"), "--quiet", "--no-plots"]) == 0
    flac = json.loads((tmp_path / "flac" / "evaluation.json").read_text())
    assert flac["verification"] == {"lossless": True, "exact": True, "text": "lossless: all 3 files decode bit-exactly"}


@pytest.mark.skipif(not N1_DATA.is_dir(), reason="the Neuralink N1 files (../shared/data/neuralink_n1) are absent")
def test_cli_eval_on_two_n1_files_with_the_shipped_model(tmp_path, capsys):
    from spikeinterface_vqcompress.cli.main import main

    card = json.loads((MODELS / "vqcae_hybrid_n1.json").read_text())
    list_path = tmp_path / "files.txt"
    list_path.write_text("\n".join(card["training"]["held_out_files"][:2]))
    assert main(["eval", str(N1_DATA), "--codec", "vqcae-hybrid", "--files-from", str(list_path), "--output", str(tmp_path / "n1"),
                 "--quiet"]) == 0
    report = json.loads((tmp_path / "n1" / "evaluation.json").read_text())
    assert report["totals"]["num_files"] == 2
    assert 100 < report["totals"]["ratio_wav_bytes"] < 1000
    assert report["model_sha256"] == card["weights_sha256"]
    assert (tmp_path / "n1" / "waveform.png").exists()
    assert report["training_files_evaluated"] == []
    # --held-out-only leaves the training files out by itself
    assert main(["eval", str(N1_DATA), "--codec", "vqcae-hybrid", "--held-out-only", "--max-files", "1", "--no-plots",
                 "--output", str(tmp_path / "n1b"), "--quiet"]) == 0
    held_out = json.loads((tmp_path / "n1b" / "evaluation.json").read_text())
    assert held_out["files"][0]["file"] in card["training"]["held_out_files"]
