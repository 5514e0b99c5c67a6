"""The broadband codec's learned lossy mode (``broadband-rvq``): real bytes, the rate knob, training."""

import json

import numpy as np
import pytest

import spikeinterface_vqcompress as vq
from spikeinterface_vqcompress.core.codecs.broadband.rvq_codec import BroadbandRVQCodec, load_broadband_model
from spikeinterface_vqcompress.core.codecs.broadband.rvq import BroadbandRVQ, normalisation, train_broadband_rvq
from spikeinterface_vqcompress.core.errors import CorruptDataError
from spikeinterface_vqcompress.core.weights import file_sha256


@pytest.fixture(scope="module")
def one_second(ground_truth_file):
    from spikeinterface_vqcompress.groundtruth import load_ground_truth

    recording, _ = load_ground_truth(ground_truth_file)
    return recording.frame_slice(0, int(recording.sampling_frequency))


def test_rate_knob_trades_bytes_for_error_on_a_held_out_recording(one_second, tmp_path):
    """The conftest recording (templates seed 11) is not one the shipped model was trained on."""
    raw = one_second.get_traces().astype(np.float64)
    results = []
    for num_stages in (1, 2, 4):
        compressed = vq.compress(one_second, codec="broadband-rvq", num_stages=num_stages,
                                 file_path=tmp_path / f"s{num_stages}.vqc", progress_bar=False)
        decoded = compressed.get_traces()
        assert decoded.dtype == np.int16 and decoded.shape == raw.shape
        rmse = float(np.sqrt(np.mean((decoded - raw) ** 2)))
        results.append((compressed.compression_ratio, rmse))
    ratios, errors = zip(*results)
    assert ratios[0] > ratios[1] > ratios[2] > 2.0  # every byte of the container counted
    assert ratios[0] > 15.0
    assert errors[0] > errors[1] > errors[2]
    noise = float(np.median(np.abs(raw - np.median(raw, axis=0))) / 0.6745)
    assert errors[2] < 0.8 * noise  # four stages keep more than the noise-free waveform


def test_spikes_survive_one_stage(one_second, ground_truth_file):
    """At the smallest rate the ground-truth spikes are still there: the template peak on its best
    channel keeps most of its amplitude in the decoded traces."""
    from spikeinterface_vqcompress.groundtruth import load_ground_truth

    _, sorting = load_ground_truth(ground_truth_file)
    raw = one_second.get_traces().astype(np.float64)
    decoded = vq.compress(one_second, codec="broadband-rvq", num_stages=1, progress_bar=False).get_traces().astype(np.float64)
    kept = []
    for unit in sorting.unit_ids:
        train = sorting.get_unit_spike_train(unit)
        train = train[(train > 30) & (train < raw.shape[0] - 30)]
        if len(train) < 3:
            continue
        windows = np.stack([raw[t - 30:t + 30] for t in train]).mean(axis=0)
        channel = int(np.argmax(np.ptp(windows, axis=0)))
        rebuilt = np.stack([decoded[t - 30:t + 30, channel] for t in train]).mean(axis=0)
        kept.append(np.ptp(rebuilt) / np.ptp(windows[:, channel]))
    assert len(kept) >= 3
    assert np.median(kept) > 0.6


def test_damaged_bytes_and_wrong_weights_are_named(one_second):
    codec = vq.get_codec("broadband-rvq", num_stages=2)
    traces = one_second.get_traces()[:4000]
    data = codec.encode(traces)
    decoded = codec.decode(data, 4000, traces.shape[1], "int16")
    assert decoded.shape == (4000, traces.shape[1])
    with pytest.raises(CorruptDataError):
        codec.decode(data[:-7], 4000, traces.shape[1], "int16")
    with pytest.raises(CorruptDataError):
        codec.decode(data, 4000, traces.shape[1] + 1, "int16")  # side information of another channel count
    with pytest.raises(CorruptDataError, match="sha256"):
        vq.get_codec({**codec.get_config(), "model_sha256": "0" * 64})
    with pytest.raises(ValueError, match="num_stages"):
        vq.get_codec("broadband-rvq", num_stages=9)
    with pytest.raises(FileNotFoundError, match="vqcompress train broadband"):
        vq.get_codec("broadband-rvq", model="no-such-model")
    profile = codec.hardware_profile(32, 32000.0)
    assert profile.operations_per_sample["mac"] == pytest.approx(codec.network.encoder_macs_per_sample(2))
    assert profile.algorithmic_latency_chunks == 1.0


def test_model_takes_any_channel_count_and_pads_odd_lengths():
    import torch

    model = BroadbandRVQ(hidden_channels=4, latent_dim=2, num_down=2, codebook_size=8, num_stages=2)
    model.eval()
    for channels, samples in ((1, 37), (3, 64), (7, 101)):
        x = torch.randn(1, channels, samples)
        indices = model.encode_indices(x, 2)
        assert indices.shape == (1, channels, -(-samples // 4), 2)
        assert model.decode_indices(indices, samples).shape == (1, channels, samples)


def test_normalisation_is_what_the_decoder_receives():
    traces = (np.random.default_rng(0).normal(size=(3000, 3)) * [5.0, 40.0, 0.1] + [100, -7, 3]).astype(np.int16)
    offset, scale = normalisation(traces)
    assert offset.dtype == np.int16 and scale.dtype == np.float16
    assert offset.tolist() == pytest.approx([100, -7, 3], abs=2)
    assert float(scale[1]) == pytest.approx(40.0, rel=0.1)
    assert float(scale[2]) == 1.0  # a flat channel is floored at one stored unit, never 0


def test_training_writes_weights_that_the_codec_loads(tmp_path):
    from spikeinterface_vqcompress.core.codecs.broadband.rvq import write_model_card

    rng = np.random.default_rng(1)
    traces = (rng.normal(size=(6000, 4)) * 30).astype(np.int16)
    config = {"hidden_channels": 4, "latent_dim": 2, "num_down": 2, "codebook_size": 16, "num_stages": 2}
    model, frequencies, report = train_broadband_rvq([(traces, 1000)], config=config, steps=4, batch_size=2,
                                                     crop_samples=256, validation=[(traces[-2000:], 1000)], log=lambda _: None)
    assert frequencies.shape == (2, 16) and (frequencies.sum(axis=1) == 4096).all() and (frequencies > 0).all()
    assert set(report["validation_rmse_noise_units"]) == {"1", "2"}
    path = write_model_card(model, frequencies, tmp_path / "tiny.pt", {"training": report})
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["weights_sha256"] == file_sha256(path) and card["config"]["codebook_size"] == 16
    codec = BroadbandRVQCodec(num_stages=2, model=str(path))
    assert codec.model_sha256 == card["weights_sha256"]
    encoded = codec.encode(traces[:1000])
    assert codec.decode(encoded, 1000, 4, "int16").shape == (1000, 4)
    np.testing.assert_array_equal(load_broadband_model(str(path))[1], frequencies)


def test_cli_trains_a_model(tmp_path, ground_truth_file):
    from spikeinterface_vqcompress.cli.main import main

    output = tmp_path / "cli.pt"
    args = ["train", "broadband", "--recordings", str(ground_truth_file), "--steps", "2", "--batch-size", "2",
            "--crop-samples", "256", "--hidden-channels", "4", "--codebook-size", "16", "--num-stages", "2",
            "--output", str(output)]
    assert main(args) in (0, None)
    card = json.loads(output.with_suffix(".json").read_text())
    assert card["training"]["command"] == "vqcompress " + " ".join(args)
    assert card["data"][0]["sha256"] == file_sha256(ground_truth_file)
    with pytest.raises(SystemExit, match="exists"):
        main(args)
