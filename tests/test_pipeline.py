"""End to end: a small MEArec ground-truth recording through a codec, a real sorter and the CLI."""

import json

import numpy as np
import pytest

from spikeinterface_vqcompress import cli
from spikeinterface_vqcompress.evaluation import evaluate, format_table, save_results
from spikeinterface_vqcompress.groundtruth import load_ground_truth

# ground_truth_file: the session's small MEArec recording (tests/conftest.py)

def test_evaluate_scores_raw_and_rebuilt_with_a_real_sorter(ground_truth_file, tmp_path):
    recording, gt_sorting = load_ground_truth(ground_truth_file)
    result = evaluate(recording, gt_sorting, codec="wavpack", codec_params={"bps": 3.0}, sorter="tridesclous2",
                      seeds=[0], output_folder=tmp_path / "evaluation", n_jobs=1, progress_bar=False)
    assert result["codec_config"] == {"id": "wavpack", "level": 2, "bps": 3.0}
    assert result["compression_ratio"] > 3.0 and not result["exact"]
    # every evaluation carries its hardware report, computed from the same real bytes
    hardware = result["hardware"]
    assert hardware["compressed_bits_per_second"] == pytest.approx(8 * result["encoded_nbytes"] / result["duration_s"])
    assert [row["name"].split(" (")[0] for row in hardware["verdicts"]] == ["N1 link", "N1 latency", "N1 power incl. radio"]
    assert result["encoded_nbytes"] * result["compression_ratio"] == pytest.approx(result["raw_nbytes"])
    # MEArec int16 gain is 0.195 uV: a hybrid WavPack error of a few uV, far below the ~10 uV noise
    assert 0 < result["rmse_uV"] < 10
    assert np.isfinite(result["sndr_spike_db_mean"]) and result["sndr_spike_db_mean"] > 5
    raw, rebuilt = result["raw"], result["compressed"]
    assert raw["num_gt_units"] == 5
    # tridesclous2 finds most units of an easy 5-unit recording, raw and rebuilt
    assert raw["accuracy_mean"] > 0.6 and rebuilt["accuracy_mean"] > 0.6
    assert abs(result["accuracy_change"]) < 0.2
    assert result["encode_speed_x_realtime"] > 1 and result["decode_speed_x_realtime"] > 1
    json_path, markdown_path = save_results([result], tmp_path / "report")
    saved = json.loads(json_path.read_text())
    assert saved["results"][0]["compressed"]["repeats"][0]["seed"] == 0
    assert "wavpack(level=2, bps=3.0)" in markdown_path.read_text()


def test_lossless_reuses_raw_sorting_only_when_verified_exact(ground_truth_file):
    recording, gt_sorting = load_ground_truth(ground_truth_file)
    fake_raw = [{"accuracy_mean": 0.5, "accuracy_median": 0.5, "precision_mean": 0.5, "recall_mean": 0.5,
                 "num_gt_units": 5, "num_sorted_units": 5, "num_well_detected": 2, "num_false_positive": 0,
                 "num_redundant": 0, "sort_time_s": 1.0, "seed": 0}]
    result = evaluate(recording, gt_sorting, codec="flac", sorter="tridesclous2", seeds=[0], raw_scores=fake_raw,
                      reuse_raw_sorting_if_exact=True, progress_bar=False)
    assert result["exact"] and result["sorting_reused_from_raw"]
    assert result["compressed"]["accuracy_mean"] == 0.5
    assert "(= raw, bit-exact)" in format_table([result])


def test_rebuilt_to_binary_sorts_the_decoded_samples_once_written(ground_truth_file, tmp_path):
    recording, gt_sorting = load_ground_truth(ground_truth_file)
    fake_raw = [{"accuracy_mean": 0.5, "accuracy_median": 0.5, "precision_mean": 0.5, "recall_mean": 0.5,
                 "num_gt_units": 5, "num_sorted_units": 5, "num_well_detected": 2, "num_false_positive": 0,
                 "num_redundant": 0, "sort_time_s": 1.0, "seed": 0}]
    folder = tmp_path / "evaluation"
    result = evaluate(recording, gt_sorting, codec="broadband", codec_params={"max_error": 4}, sorter="tridesclous2",
                      seeds=[0], raw_scores=fake_raw, output_folder=folder, rebuilt_to_binary=True, n_jobs=1,
                      progress_bar=False)
    assert not result["exact"] and result["compressed"]["accuracy_mean"] > 0.6  # sorted for real
    # the sorter read a binary folder of the decoded samples, removed once sorted
    provenance = (folder / "broadband_tridesclous2_seed0" / "spikeinterface_recording.json").read_text()
    assert "broadband_rebuilt_binary" in provenance and "BinaryFolderRecording" in provenance
    assert not (folder / "broadband_rebuilt_binary").exists()


def test_cli_compress_info_decompress_and_damage(ground_truth_file, tmp_path, capsys):
    output = tmp_path / "gt.vqc"
    assert cli.main(["compress", str(ground_truth_file), str(output), "--codec", "flac", "--no-progress"]) == 0
    assert "ratio" in capsys.readouterr().out
    assert cli.main(["info", str(output), "--verify", "--json"]) == 0
    info = json.loads(capsys.readouterr().out)
    assert info["codec"]["id"] == "flac" and info["lossless"] and info["num_channels"] == 32
    assert info["verified"] == "every chunk CRC32 matches"
    assert cli.main(["decompress", str(output), str(tmp_path / "rebuilt"), "--format", "binary_folder", "--no-progress"]) == 0
    import spikeinterface as si

    rebuilt = si.load(tmp_path / "rebuilt")
    recording, _ = load_ground_truth(ground_truth_file)
    np.testing.assert_array_equal(rebuilt.get_traces(), recording.get_traces())
    # one flipped byte: a clear error and a non-zero exit, never garbage
    data = bytearray(output.read_bytes())
    data[len(data) // 3] ^= 0x10
    output.write_bytes(bytes(data))
    assert cli.main(["info", str(output), "--verify"]) == 2
    assert "damaged" in capsys.readouterr().err


def test_cli_evaluate_without_sorting(ground_truth_file, tmp_path, capsys):
    assert cli.main(["evaluate", str(ground_truth_file), "--codec", "bit-truncation:num_bits=3", "--codec", "zstd",
                     "--no-sort", "--output", str(tmp_path / "out"), "--no-progress"]) == 0
    printed = capsys.readouterr().out
    assert "bit-truncation(num_bits=3)" in printed and "zstd(level=5)" in printed
    saved = json.loads((tmp_path / "out" / "evaluation.json").read_text())
    rows = {row["codec_config"]["id"]: row for row in saved["results"]}
    assert rows["zstd"]["exact"] and not rows["bit-truncation"]["exact"]
    assert rows["bit-truncation"]["max_abs_error_stored"] <= 4


def test_cli_rejects_bad_codec_parameters():
    with pytest.raises(SystemExit, match="name=value"):
        cli.parse_codec_argument("wavpack:bps")
    with pytest.raises(SystemExit, match="unknown codec"):
        cli.parse_codec_argument("mp3")


def test_cli_codec_parameters_take_lists_and_none():
    config = cli.parse_codec_argument("spike-vq", ["bandpass_hz=[300,5000]", "residual_step=None"])
    assert config["bandpass_hz"] == [300.0, 5000.0] and config["residual_step"] is None
    assert cli.parse_codec_argument("spike-pca", ["bandpass_hz=null"])["bandpass_hz"] is None


def test_kilosort4_gets_the_geometry_settings_its_authors_ask_for():
    import spikeinterface.core as sc
    from probeinterface import generate_linear_probe, generate_multi_columns_probe

    from spikeinterface_vqcompress.evaluation.sorting import recommended_sorter_params

    recording = sc.generate_recording(num_channels=32, durations=[1.0], seed=0)
    three_columns = generate_multi_columns_probe(num_columns=3, num_contact_per_column=[10, 11, 11], xpitch=18, ypitch=25)
    three_columns.set_device_channel_indices(np.arange(32))
    recording.set_probe(three_columns, in_place=True)
    assert recommended_sorter_params("kilosort4", recording) == {"dminx": 18.0, "nblocks": 0}
    assert recommended_sorter_params("tridesclous2", recording) == {}
    wide = sc.generate_recording(num_channels=128, durations=[1.0], seed=0)
    linear = generate_linear_probe(num_elec=128, ypitch=20)
    linear.set_device_channel_indices(np.arange(128))
    wide.set_probe(linear, in_place=True)
    assert recommended_sorter_params("kilosort4", wide) == {}  # one column, more than 64 channels: Kilosort's defaults


def test_spike_window_fidelity_reads_each_stretch_once_whatever_the_units():
    """Spike-window fidelity reads the recordings block by block in time order: a slow decoder
    (learned codecs decode ~1 s per second) is asked for each stretch about once, not once per spike."""
    import spikeinterface.core as sc

    from spikeinterface_vqcompress import compress
    from spikeinterface_vqcompress.evaluation.metrics import spike_window_fidelity

    generated, gt_sorting = sc.generate_ground_truth_recording(durations=[20.0], num_channels=8, num_units=6, seed=3)
    recording = sc.NumpyRecording(np.round(generated.get_traces() * 20).astype(np.int16), generated.sampling_frequency)
    recording.set_channel_gains(0.05)
    recording.set_channel_offsets(0)
    rebuilt = compress(recording, codec={"id": "broadband", "max_error": 8}, progress_bar=False)
    calls = []
    original_get_traces = rebuilt.get_traces

    def counting_get_traces(*args, **kwargs):
        calls.append(kwargs.get("end_frame", 0) - kwargs.get("start_frame", 0))
        return original_get_traces(*args, **kwargs)

    rebuilt.get_traces = counting_get_traces
    result = spike_window_fidelity(recording, rebuilt, gt_sorting, max_spikes_per_unit=50)
    assert result["num_snippets"] == 300 and result["exact_snippets"] == 0
    assert 0 < result["rmse_spike_windows_uV"] <= 8 * 0.05  # within the bound, in µV
    read = sum(calls)
    assert len(calls) <= 10 and read <= 1.1 * recording.get_num_samples()  # 300 spikes: a few blocks, each sample ~once


def test_a_sorter_that_fails_on_a_rebuilt_recording_scores_empty_when_asked(tmp_path):
    # spykingcircus2 fails outright on a silent recording (its clustering finds nothing to match):
    # "score-empty" keeps a long benchmark going and records the run as a sorting with no unit
    import spikeinterface.core as sc
    from spikeinterface.sorters.utils.misc import SpikeSortingError

    from spikeinterface_vqcompress.evaluation.sorting import sort_and_score, summarize_repeats

    recording, gt_sorting = sc.generate_ground_truth_recording(durations=[3.0], num_channels=4, num_units=2, seed=0)
    silent = sc.NumpyRecording(np.zeros((recording.get_num_samples(), 4), np.float32), recording.sampling_frequency)
    silent.set_probe(recording.get_probe(), in_place=True)
    silent = silent.save(folder=tmp_path / "silent", progress_bar=False)
    scores = sort_and_score(silent, gt_sorting, "spykingcircus2", 0, tmp_path / "sc2", sorter_failure="score-empty")
    assert scores["accuracy_mean"] == 0 and scores["num_sorted_units"] == 0 and scores["num_gt_units"] == 2
    assert scores["sorter_error"] and not scores["sorter_error"].startswith("Spike sorting failed")
    assert summarize_repeats([scores])["num_sorter_errors"] == 1
    with pytest.raises(SpikeSortingError):
        sort_and_score(silent, gt_sorting, "spykingcircus2", 0, tmp_path / "sc2_raise")
    with pytest.raises(ValueError, match="sorter_failure"):
        sort_and_score(silent, gt_sorting, "spykingcircus2", 0, tmp_path / "bad", sorter_failure="ignore")
