"""Hardware report: figures computed from the codec's profile, the real bytes and a cited energy table."""

import numpy as np
import pytest
import spikeinterface.core as sc
import torch

from spikeinterface_vqcompress import cli, compress, get_codec
from spikeinterface_vqcompress.core.hardware import HOROWITZ_45NM, N1_BUDGET, RADIOS, Budget, EnergyModel, HardwareReport, count_module_operations, hardware_report


def _noise_recording(num_channels=8, duration_s=2.0, fs=30000.0):
    traces = (np.random.default_rng(0).normal(size=(int(duration_s * fs), num_channels)) * 30).astype("int16")
    return sc.NumpyRecording(traces, fs)


def test_count_module_operations_counts_multiply_accumulates_of_the_real_layers():
    model = torch.nn.Sequential(torch.nn.Conv1d(4, 8, kernel_size=3), torch.nn.Flatten(), torch.nn.Linear(8 * 18, 5))
    counts = count_module_operations(model, torch.zeros(2, 4, 20))
    # conv: 18 outputs x 8 channels x (4 inputs x 3 taps); linear: 5 outputs x 144 inputs
    assert counts["mac"] == 18 * 8 * 4 * 3 + 5 * 144
    assert counts["add"] == 18 * 8 + 5  # one bias add per output element
    assert counts["parameter_count"] == sum(p.numel() for p in model.parameters())


def test_report_figures_follow_from_profile_bytes_and_energy_table():
    codec = get_codec("flac")
    fs, num_channels, duration_s, nbytes = 30000.0, 32, 10.0, 1_250_000
    report = hardware_report(codec, num_channels, fs, adc_bits=10, compressed_nbytes=nbytes, duration_s=duration_s,
                             encode_time_s=2.0, num_chunks=10)
    profile = codec.hardware_profile(num_channels, fs)
    assert report.raw_bits_per_second == num_channels * fs * 10
    assert report.compressed_bits_per_second == pytest.approx(8 * nbytes / duration_s)
    assert report.compression_ratio_vs_adc == pytest.approx(num_channels * fs * 10 / (8 * nbytes / duration_s))
    assert report.link_bits_per_second == pytest.approx(1e6 * 32 / 1024)
    expected_compute_pJ = sum(count * fs * HOROWITZ_45NM.operation_pJ(kind, 16) for kind, count in profile.operations_per_sample.items())
    assert report.compute_power_uW_per_channel == pytest.approx(expected_compute_pJ * 1e-6)
    radio_pJ = RADIOS["inductive-impedance-modulation"]["pJ_per_bit"]
    assert report.radio_power_uW_per_channel == pytest.approx(8 * nbytes / duration_s / num_channels * radio_pJ * 1e-6)
    assert report.power_mW_1024ch == pytest.approx(report.power_uW_per_channel * 1024 / 1000)
    assert report.algorithmic_latency_ms == pytest.approx(1000 * profile.algorithmic_latency_samples / fs)
    assert report.host_realtime_factor == pytest.approx(5.0) and report.host_chunk_latency_ms == pytest.approx(200.0)
    link, latency, power = report.verdicts
    assert link["pass"] is False and link["value"] == pytest.approx(8 * nbytes / duration_s / 32 * 1024 / 1e6)
    assert latency["pass"] is (report.algorithmic_latency_ms <= 1.0)
    assert power["pass"] is (report.power_mW_1024ch <= 10.0)
    # a bigger link makes the link verdict pass; the sources are named in the report
    generous = hardware_report(codec, num_channels, fs, adc_bits=10, compressed_nbytes=nbytes, duration_s=duration_s,
                               budget=Budget(name="wired", link_bits_per_second=1e9))
    assert generous.verdicts[0]["pass"] is True
    text = report.to_markdown()
    assert "Horowitz" in text and "Sarpeshkar" in text and "| N1 latency" in text
    assert HardwareReport.from_dict(report.to_dict()).to_dict() == report.to_dict()


def test_event_codecs_are_judged_after_their_window_with_the_measured_processing():
    """spike-vq waits for each snippet to end (the window, stated) and buffers nothing after it: the latency
    verdict is the measured per-spike processing; spike-pca also waits for its chunk (its basis): it fails."""
    fs = 20000.0
    vq_codec = get_codec({"id": "spike-vq", "snippet_samples": 64, "channel_locations": [[0.0, 20.0 * i] for i in range(32)]})
    profile = vq_codec.hardware_profile(32, fs)
    window_ms = 1000 * profile.window_samples / fs
    assert profile.window_samples == profile.algorithmic_latency_samples > 0
    report = hardware_report(vq_codec, 32, fs, compressed_nbytes=1000, duration_s=10.0, event_processing_s=2e-4)
    latency = report.verdicts[1]
    assert report.window_ms == pytest.approx(window_ms) and report.algorithmic_latency_ms == pytest.approx(window_ms)
    assert latency["value"] == pytest.approx(0.2) and latency["pass"] is True
    assert f"after a {window_ms:.3g} ms event window, processing included" in latency["name"]
    slow = hardware_report(vq_codec, 32, fs, compressed_nbytes=1000, duration_s=10.0, event_processing_s=1.5e-3)
    assert slow.verdicts[1]["pass"] is False and slow.latency_after_window_ms == pytest.approx(1.5)
    pca = hardware_report(get_codec({"id": "spike-pca", "snippet_samples": 64, "channel_locations": [[0.0, 20.0 * i] for i in range(32)]}),
                          32, fs, compressed_nbytes=1000, duration_s=10.0, num_chunks=1)
    assert pca.latency_after_window_ms == pytest.approx(10000.0) and pca.verdicts[1]["pass"] is False
    assert f"event window {window_ms:.4g} ms" in report.to_markdown() and "0.2 ms per event" in report.to_markdown()


def test_energy_model_is_overridable_and_rejects_unknown_radios():
    cheaper = EnergyModel(radio="ir-uwb-28nm", energy_scale=0.5)
    assert cheaper.radio_energy_pJ_per_bit == 5.8
    assert cheaper.operation_pJ("mac", 8) == pytest.approx(0.5 * (0.2 + 0.03))
    custom = EnergyModel(radio="custom", radio_pJ_per_bit=1000.0, radio_source="my bench measurement")
    assert custom.radio_reference == "my bench measurement"
    with pytest.raises(ValueError, match="unknown radio 'bluetooth'"):
        EnergyModel(radio="bluetooth")
    with pytest.raises(ValueError, match="radio_pJ_per_bit"):
        EnergyModel(radio="custom")
    with pytest.raises(ValueError, match="unknown operation kind"):
        HOROWITZ_45NM.operation_pJ("divide")
    # SRAM energy grows with memory size and is clamped at the ends of the table
    assert HOROWITZ_45NM.sram_access_pJ(100) == 10.0 < HOROWITZ_45NM.sram_access_pJ(16 * 1024) < 20.0
    assert HOROWITZ_45NM.sram_access_pJ(1e9) == 100.0
    assert EnergyModel.from_dict(cheaper.to_dict()) == cheaper


def test_compressed_recording_carries_its_report_from_real_bytes(tmp_path, capsys):
    recording = _noise_recording()
    compressed = compress(recording, codec="bit-truncation", num_bits=4, file_path=tmp_path / "x.vqc", adc_bits=12,
                          n_jobs=1, progress_bar=False)
    report = compressed.hardware_report()
    duration = recording.get_total_duration()
    assert report.adc_bits == 12
    assert report.compressed_bits_per_second == pytest.approx(8 * compressed.encoded_nbytes / duration)
    assert report.host_realtime_factor == pytest.approx(duration / compressed.encode_time_s)
    assert report.budget["name"] == N1_BUDGET.name and report.budget["max_power_mW"] == 10.0
    assert cli.main(["info", str(tmp_path / "x.vqc")]) == 0
    output = capsys.readouterr().out
    assert "Hardware report: bit-truncation" in output and "N1 power incl. radio" in output
