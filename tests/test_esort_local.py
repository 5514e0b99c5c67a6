"""E-Sort local inference: each gated window through the spatial layer of the channels near its spike."""

import numpy as np
import pytest
import torch

from spikeinterface_vqcompress.esort import core
from spikeinterface_vqcompress.esort.local import (channel_windows, forward_local, local_spatial, neighbour_mask,
                                                   window_centres)
from spikeinterface_vqcompress.esort.postprocessing import candidate_rows, detect_spikes
from conftest import trained_bn_model


def _column_probe(num_channels, pitch=20.0, seed=0):
    """A single-column probe whose channels are stored in a shuffled order."""
    rng = np.random.default_rng(seed)
    return np.stack([np.zeros(num_channels), rng.permutation(num_channels) * pitch], axis=1)


def test_channel_windows_hold_every_neighbour_in_a_depth_ordered_run():
    rng = np.random.default_rng(1)
    locations = np.stack([rng.choice([-16.0, 16.0], 40), rng.permutation(40) * 10.0], axis=1)
    order, start, width = channel_windows(locations, 35.0)
    assert sorted(order.tolist()) == list(range(40))
    assert np.all(np.diff(locations[order, 1]) >= 0)  # depth order
    distances = np.linalg.norm(locations[:, None] - locations[None], axis=2)
    for channel in range(40):
        run = set(order[start[channel]:start[channel] + width].tolist())
        assert set(np.flatnonzero(distances[channel] <= 35.0).tolist()) <= run
        assert 0 <= start[channel] <= 40 - width
    assert width < 40
    assert channel_windows(locations, 1e4)[2] == 40
    with pytest.raises(ValueError, match="radius must be > 0"):
        channel_windows(locations, 0.0)
    with pytest.raises(ValueError, match="channel_locations must be"):
        channel_windows(np.zeros(5), 10.0)


def test_local_inference_over_the_whole_probe_is_the_whole_network():
    num_channels = 12
    model = trained_bn_model(num_channels, 5, seed=2)
    locations = _column_probe(num_channels)
    traces = torch.randn(2000, num_channels)
    traces[500:510, 3] -= 8
    traces[900:905, 9] -= 6
    noise = torch.linspace(1.0, 3.0, num_channels)
    local = local_spatial(model, locations, 1e4, torch.rand(num_channels, 16))
    rows, centres = window_centres(traces * noise, 4.0 * noise, local.near, 60, 2, 8, "neg")
    assert torch.equal(torch.unique(rows), candidate_rows(traces, 60, 2, 4.0, 8, "neg"))  # the gate's own windows
    probabilities = forward_local(model, traces * noise, rows, centres, local, 1.0 / noise, stride=2, batch_size=7)
    torch.testing.assert_close(probabilities, model.forward_rows(traces, rows, stride=2), atol=1e-5, rtol=1e-4)


def test_local_inference_puts_far_channels_at_their_noise_mean():
    """The network on features whose channels outside the centre's run are replaced by the baseline."""
    num_channels = 10
    model = trained_bn_model(num_channels, 4, seed=3)
    locations = _column_probe(num_channels, seed=4)
    baseline = torch.rand(num_channels, 16)
    local = local_spatial(model, locations, 25.0, baseline)  # itself and the channels 20 um away
    assert local.width == 3
    traces = torch.randn(400, num_channels)
    rows = torch.tensor([0, 5, 17, 100, 170])
    centres = torch.tensor([4, 0, 9, 7, 4])
    probabilities = forward_local(model, traces, rows, centres, local, torch.ones(num_channels), stride=2)
    windows = torch.stack([traces[2 * row:2 * row + 60].t() for row in rows.tolist()])  # (B, C, W)
    with torch.no_grad():
        features = model.temporal(windows)  # (B, C, 16)
        for index, centre in enumerate(centres.tolist()):
            run = set(local.order[local.start[centre]:local.start[centre] + local.width].tolist())
            assert centre in run and len(run) == 3
            for channel in set(range(num_channels)) - run:
                features[index, channel] = baseline[channel]
        expected = torch.sigmoid(model.head(model.spatial(features)))
    torch.testing.assert_close(probabilities, expected, atol=1e-5, rtol=1e-4)


def test_window_centres_one_per_spike_and_one_per_distant_spike():
    locations = np.stack([np.zeros(16), np.arange(16) * 20.0], axis=1)
    near = neighbour_mask(locations, 50.0)
    traces = torch.zeros(600, 16)
    traces[200, 3], traces[200, 4], traces[201, 5] = -9.0, -6.0, -5.0  # one spike over three channels
    traces[400, 2], traces[401, 12] = -7.0, -5.0  # two spikes 200 um apart, together in a window
    rows, centres = window_centres(traces, torch.full((16,), 4.0), near, 60, 2, 8, "neg")
    pairs = set(zip(rows.tolist(), centres.tolist()))
    first = {row for row, centre in pairs if centre == 3}
    assert {centre for _, centre in pairs} == {2, 3, 12}  # channels 4 and 5 fold into channel 3's centre
    assert {row * 2 + 30 for row in first} == set(range(192, 210, 2))  # centres within 8 samples of 200 or 201
    both = {row for row, centre in pairs if centre == 2} & {row for row, centre in pairs if centre == 12}
    assert both  # a window holding both distant spikes is computed around each
    assert torch.equal(torch.unique(rows), candidate_rows(traces, 60, 2, 4.0, 8, "neg"))
    pos_rows, pos_centres = window_centres(-traces, torch.full((16,), 4.0), near, 60, 2, 8, "pos")
    assert set(zip(pos_rows.tolist(), pos_centres.tolist())) == pairs
    empty = window_centres(torch.zeros(600, 16), torch.full((16,), 4.0), near, 60, 2, 8, "both")
    assert len(empty[0]) == len(empty[1]) == 0


def test_detect_spikes_local_needs_the_gate_and_finds_the_whole_networks_spikes():
    num_channels = 8
    model = trained_bn_model(num_channels, 5, seed=1)
    rng = np.random.default_rng(0)
    noise = np.linspace(1.0, 2.0, num_channels).astype(np.float32)
    traces = (rng.normal(size=(20000, num_channels)) * noise).astype(np.float32)
    troughs = rng.choice(np.arange(100, 19900), 40, replace=False)
    traces[troughs, rng.integers(0, num_channels, 40)] = -8.0 * noise.max()

    def get(start, end):
        return traces[start:end]

    local = local_spatial(model, _column_probe(num_channels), 1e4, torch.rand(num_channels, 16))
    kwargs = dict(threshold=0.05, min_distance_samples=10, chunk_num_samples=4096, stride=2, gate_threshold=4.0)
    whole = detect_spikes(model, lambda s, e: traces[s:e] / noise, len(traces), **kwargs)
    for workers in (1, 2):
        samples, units = detect_spikes(model, get, len(traces), noise=noise, local=local, num_workers=workers, **kwargs)
        assert len(samples) > 0
        np.testing.assert_array_equal(samples, whole[0])
        np.testing.assert_array_equal(units, whole[1])
    with pytest.raises(ValueError, match="local inference needs the amplitude gate"):
        detect_spikes(model, get, len(traces), noise=noise, local=local, threshold=0.05)


def test_sort_recording_with_a_radius_keeps_the_spikes_of_the_whole_network(ground_truth_file):
    from spikeinterface_vqcompress.evaluation.sorting import score_sorting
    from spikeinterface_vqcompress.groundtruth import load_ground_truth

    recording, gt_sorting = load_ground_truth(ground_truth_file)
    prepared = core.prepare_recording(recording)
    noise = core.noise_levels(prepared)
    labels = core.labels_from_sorting(gt_sorting, recording.get_num_samples(0), num_spikes_per_unit=15)
    model, _ = core.fine_tune_recording(prepared, noise, labels, max_steps=100, seed=0, device="cpu")
    kwargs = dict(stride=2, gate_threshold=4.0, device="cpu")
    whole = core.sort_recording(model, prepared, noise, labels.unit_ids, **kwargs)
    local = core.build_local_spatial(model, prepared, noise, 60.0)
    assert local.width < recording.get_num_channels()
    near = core.sort_recording(model, prepared, noise, labels.unit_ids, spatial_radius_um=60.0, **kwargs)
    assert score_sorting(whole, near)["accuracy_mean"] > 0.9
    assert abs(score_sorting(gt_sorting, near)["accuracy_mean"] - score_sorting(gt_sorting, whole)["accuracy_mean"]) < 0.05


def test_sorter_names_a_bad_spatial_radius(tmp_path):
    import spikeinterface.sorters as ss
    from spikeinterface.core import generate_recording

    recording = generate_recording(num_channels=4, durations=[1.0], seed=0).save(folder=tmp_path / "recording")
    assert ss.get_default_sorter_params("esort")["spatial_radius_um"] == 100.0
    with pytest.raises(ValueError, match="spatial_radius_um must be a distance > 0"):
        ss.run_sorter("esort", recording, folder=tmp_path / "esort", spatial_radius_um=-5)
    with pytest.raises(ValueError, match="spatial_radius_um needs the amplitude gate"):
        ss.run_sorter("esort", recording, folder=tmp_path / "esort2", gate_threshold=None)
    assert not (tmp_path / "esort2" / "sorter_output" / "sorting").exists()


def test_sort_recording_without_channel_locations_runs_the_whole_network():
    from spikeinterface.core import NumpyRecording

    traces = np.random.default_rng(0).normal(size=(6000, 4)).astype(np.float32)
    traces[1000:1003, 1] = -9.0
    recording = NumpyRecording(traces, sampling_frequency=30000.0)  # no probe, no locations
    model = trained_bn_model(4, 2, seed=5)
    noise = np.ones(4, dtype=np.float32)
    kwargs = dict(threshold=0.05, gate_threshold=4.0, stride=2, device="cpu")
    local = core.sort_recording(model, recording, noise, [0, 1], spatial_radius_um=50.0, **kwargs)
    whole = core.sort_recording(model, recording, noise, [0, 1], **kwargs)
    np.testing.assert_array_equal(local.to_spike_vector(), whole.to_spike_vector())


def test_cli_names_a_bad_spatial_radius(tmp_path):
    from spikeinterface_vqcompress import cli

    with pytest.raises(SystemExit, match="--spatial-radius-um must be a distance in um or 'none', got 'far'"):
        cli.main(["esort", str(tmp_path / "missing.h5"), str(tmp_path / "out"), "--spatial-radius-um", "far"])


def test_torch_steps_for_gpus_match_the_numba_kernels(monkeypatch):
    """The crossings and the windows' samples, found in torch where the numba kernels cannot run (GPU
    tensors), give the same centres and probabilities (run here on the CPU)."""
    from spikeinterface_vqcompress.esort import local as local_module

    num_channels = 14
    model = trained_bn_model(num_channels, 3, seed=6)
    locations = _column_probe(num_channels, seed=2)
    layer = local_spatial(model, locations, 45.0, torch.rand(num_channels, 16))
    rng = np.random.default_rng(3)
    traces = torch.from_numpy(rng.normal(size=(3000, num_channels)).astype(np.float32) * 2.0)
    traces[rng.choice(2900, 25), torch.from_numpy(rng.integers(0, num_channels, 25))] = -12.0
    thresholds, scale = torch.full((num_channels,), 8.0), torch.full((num_channels,), 0.5)
    results = []
    for kernels in (True, False):
        monkeypatch.setattr(local_module, "_use_kernels", lambda device, kernels=kernels: kernels)
        for sign in ("neg", "both"):
            rows, centres = window_centres(traces, thresholds, layer.near, 60, 2, 8, sign)
            results.append((rows, centres, forward_local(model, traces, rows, centres, layer, scale, stride=2)))
    for (rows, centres, probabilities), (rows_torch, centres_torch, probabilities_torch) in zip(results[:2], results[2:]):
        assert len(rows) > 0
        assert torch.equal(rows, rows_torch) and torch.equal(centres, centres_torch)
        torch.testing.assert_close(probabilities, probabilities_torch, atol=1e-5, rtol=1e-4)


def test_local_inference_pays_only_where_it_halves_the_spatial_layer():
    from spikeinterface.core import NumpyRecording

    def recording_with(locations):
        recording = NumpyRecording(np.zeros((100, len(locations)), dtype=np.float32), sampling_frequency=30000.0)
        recording.set_channel_locations(locations)
        return recording

    long_probe = recording_with(np.stack([np.tile([0.0, 32.0], 32), np.repeat(np.arange(32) * 20.0, 2)], axis=1))
    short_probe = recording_with(np.stack([np.zeros(8), np.arange(8) * 25.0], axis=1))
    assert core.local_inference_pays(long_probe, 100.0)  # runs of ~22 of 64 channels
    assert not core.local_inference_pays(short_probe, 100.0)  # runs of all 8 channels: the whole probe
    assert core.local_inference_pays(short_probe, 30.0)  # runs of 3 of 8
    assert not core.local_inference_pays(long_probe, None)
    assert not core.local_inference_pays(NumpyRecording(np.zeros((100, 4), dtype=np.float32), 30000.0), 100.0)
