"""E-Sort: network, post-processing, training sets, backbone transfer and the ``esort`` sorter."""

import json

import numpy as np
import pytest
import torch

import spikeinterface_vqcompress  # noqa: F401  registers "esort"
from spikeinterface_vqcompress.core.weights import file_sha256
from spikeinterface_vqcompress.esort import core
from spikeinterface_vqcompress.esort.model import ESortNet, SpatialLayer, TemporalLayers, backbone_state, geometry_fingerprint, load_backbone_into, resolve_device
from spikeinterface_vqcompress.esort.postprocessing import candidate_rows, detect_spikes, pick_peaks, smooth_probabilities, triangular_kernel
from spikeinterface_vqcompress.esort.training import TrainingSet, fine_tune
from conftest import trained_bn_model


def test_resolve_device():
    assert resolve_device("cpu").type == "cpu"
    assert resolve_device("auto").type == ("cuda" if torch.cuda.is_available() else "cpu")
    with pytest.raises(ValueError, match="device"):
        resolve_device("not-a-device")


@pytest.mark.parametrize("num_channels", [1, 7, 32])
@pytest.mark.parametrize("stride", [1, 2, 3])
def test_forward_traces_matches_window_forward(num_channels, stride):
    model = trained_bn_model(num_channels, 4)
    traces = torch.randn(700, num_channels)
    probabilities = model.forward_traces(traces, stride=stride)
    starts = range(0, 700 - 60 + 1, stride)
    windows = torch.stack([traces[start:start + 60].t() for start in starts])
    with torch.no_grad():
        expected = torch.sigmoid(model(windows))
    assert probabilities.shape == expected.shape
    torch.testing.assert_close(probabilities, expected, atol=1e-5, rtol=1e-4)


def test_forward_traces_rejects_bad_stride():
    model = trained_bn_model(2, 1)
    with pytest.raises(ValueError, match="stride"):
        model.forward_traces(torch.randn(200, 2), stride=7)


def test_triangular_kernel_and_smoothing():
    kernel = triangular_kernel(17)
    assert kernel.shape == (17,) and torch.isclose(kernel.sum(), torch.tensor(1.0))
    assert kernel[8] == kernel.max() and torch.equal(kernel, kernel.flip(0))
    with pytest.raises(ValueError, match="odd"):
        triangular_kernel(16)
    probabilities = torch.zeros(100, 2)
    probabilities[50, 0] = 1.0
    smoothed = smooth_probabilities(probabilities, kernel, padding=True)
    assert smoothed.shape == (100, 2)
    torch.testing.assert_close(smoothed[42:59, 0], kernel.flip(0))
    assert smooth_probabilities(probabilities, kernel).shape == (84, 2)


def test_pick_peaks_threshold_distance_and_plateaus():
    trace = torch.zeros(200, 2)
    trace[50, 0] = 0.9          # a peak
    trace[55, 0] = 0.8          # too close to the larger one
    trace[120, 0] = 0.4         # below threshold
    trace[150:154, 1] = 0.7     # a plateau: one peak, at its first row
    rows, units = pick_peaks(trace, threshold=0.5, min_distance_samples=10)
    assert rows.tolist() == [40, 140]  # relative to row d = 10
    assert units.tolist() == [0, 1]


def test_detect_spikes_finds_planted_units_and_is_chunk_invariant():
    """A network whose output follows a planted pattern: spikes found where planted, for any chunking."""
    model = trained_bn_model(3, 5, seed=1)
    rng = np.random.default_rng(0)
    traces = rng.normal(size=(20000, 3)).astype(np.float32)
    threads_before = torch.get_num_threads()

    def get(start, end):
        return traces[start:end]

    results = []
    for chunk in (997, 4096, 50000):
        for stride in (1, 2):
            samples, units = detect_spikes(model, get, len(traces), threshold=0.05, min_distance_samples=10,
                                           chunk_num_samples=chunk, stride=stride)
            results.append((stride, samples, units))
            assert np.all(np.diff(samples) >= 0) and len(samples) > 0
            assert samples.min() >= 0 and samples.max() < len(traces)
    for chunk, workers in ((997, 3), (4096, "auto")):  # chunks side by side in threads: the same spikes, in order
        samples, units = detect_spikes(model, get, len(traces), threshold=0.05, min_distance_samples=10,
                                       chunk_num_samples=chunk, stride=2, gate_threshold=1.0, num_workers=workers)
        gated = detect_spikes(model, get, len(traces), threshold=0.05, min_distance_samples=10,
                              chunk_num_samples=chunk, stride=2, gate_threshold=1.0, num_workers=1)
        assert len(samples) > 0
        np.testing.assert_array_equal(samples, gated[0])
        np.testing.assert_array_equal(units, gated[1])
    assert torch.get_num_threads() == threads_before  # restored after the threads
    for stride in (1, 2):
        same = [(s, u) for st, s, u in results if st == stride]
        for samples, units in same[1:]:
            np.testing.assert_array_equal(samples, same[0][0])
            np.testing.assert_array_equal(units, same[0][1])
    with pytest.raises(ValueError, match="num_workers must be"):
        detect_spikes(model, get, len(traces), num_workers="two")


@pytest.mark.parametrize("stride", [1, 2])
def test_forward_rows_matches_forward_traces(stride):
    model = trained_bn_model(5, 3)
    traces = torch.randn(900, 5)
    rows = torch.tensor([0, 3, 4, 100, (900 - 60) // stride])
    torch.testing.assert_close(model.forward_rows(traces, rows, stride=stride, batch_size=2),
                               model.forward_traces(traces, stride=stride)[rows], atol=1e-5, rtol=1e-4)


def test_forward_rows_gathers_windows_of_the_right_samples():
    """Each row is the window starting at ``row * stride``: the same as running the network on it."""
    model = trained_bn_model(6, 4, seed=3)
    traces = torch.randn(700, 6)
    rows = torch.tensor([0, 1, 57, 58, 320])
    windows = torch.stack([traces[2 * row:2 * row + 60].t() for row in rows.tolist()])  # (B, C, W)
    torch.testing.assert_close(model.forward_rows(traces, rows, stride=2, batch_size=3),
                               torch.sigmoid(model(windows)), atol=1e-5, rtol=1e-4)


def test_bfloat16_spatial_layer_moves_probabilities_by_thousandths():
    model = trained_bn_model(32, 5, seed=1)
    traces = torch.randn(2000, 32)
    rows = torch.arange(0, (2000 - 60) // 2 + 1, 3)
    exact = model.forward_rows(traces, rows, stride=2)
    fast = model.forward_rows(traces, rows, stride=2, dtype="bfloat16")
    assert fast.dtype == torch.float32
    difference = (fast - exact).abs().max().item()
    assert 0 < difference < 0.02  # bfloat16 keeps 8 bits of mantissa: close, but not the same numbers
    torch.testing.assert_close(model.forward_traces(traces, stride=2, dtype="bfloat16")[rows], fast, atol=0.02, rtol=0)
    with pytest.raises(ValueError, match="inference dtype must be one of"):
        model.forward_rows(traces, rows, stride=2, dtype="float16")


def test_amplitude_gate_selects_windows_around_large_samples():
    traces = torch.zeros(1000, 4)
    traces[300, 2] = -6.0  # one large sample on one channel
    traces[700, 0] = 3.0  # below the gate
    rows = candidate_rows(traces, window_num_samples=60, stride=2, gate_threshold=4.0, margin_samples=13)
    centres = rows * 2 + 30
    assert centres.tolist() == list(range(288, 314, 2))  # centres within 13 samples of sample 300
    assert len(candidate_rows(traces, 60, 2, 10.0, 13)) == 0
    # the peak sign picks which crossings open the gate
    traces[500, 1] = 5.0
    near = {sign: set((candidate_rows(traces, 60, 2, 4.0, 3, peak_sign=sign) * 2 + 30).tolist())
            for sign in ("neg", "pos", "both")}
    assert near["neg"] == {298, 300, 302} and near["pos"] == {498, 500, 502}
    assert near["both"] == near["neg"] | near["pos"]
    with pytest.raises(ValueError, match="gate_peak_sign must be one of"):
        candidate_rows(traces, 60, 2, 4.0, 3, peak_sign="negative")


def test_gated_detection_runs_the_network_only_near_large_samples():
    """A gate below every sample keeps every window (same spikes as no gate); a real gate keeps only
    the spikes near supra-threshold samples, and those are the ungated spikes there."""
    model = trained_bn_model(3, 5, seed=1)
    rng = np.random.default_rng(0)
    traces = rng.normal(size=(20000, 3)).astype(np.float32)
    traces[rng.choice(20000, 30, replace=False), 1] = -8.0  # troughs: the default gate opens below -gate

    def get(start, end):
        return traces[start:end]

    kwargs = dict(threshold=0.05, min_distance_samples=10, chunk_num_samples=4096, stride=2)
    ungated = detect_spikes(model, get, len(traces), **kwargs)
    for gate in (None, -1.0):
        samples, units = detect_spikes(model, get, len(traces), gate_threshold=gate, **kwargs)
        np.testing.assert_array_equal(samples, ungated[0])
        np.testing.assert_array_equal(units, ungated[1])
    samples, units = detect_spikes(model, get, len(traces), gate_threshold=6.0, gate_margin_samples=13, **kwargs)
    large = np.flatnonzero(np.abs(traces).max(axis=1) > 6.0)
    assert 0 < len(samples) < len(ungated[0])
    assert np.all(np.min(np.abs(samples[:, None] - large[None, :]), axis=1) <= 13 + 8 + 10)
    # a spike whose smoothing support (+/- 8 samples) lies inside the gate keeps its smoothed value, and
    # zeroed windows only lower its neighbours (probabilities are >= 0): it is found exactly as ungated
    distance = np.min(np.abs(ungated[0][:, None] - large[None, :]), axis=1)
    inside = distance <= 13 - 8
    found = set(zip(samples.tolist(), units.tolist()))
    assert inside.any() and all((s, u) in found for s, u in zip(ungated[0][inside].tolist(), ungated[1][inside].tolist()))


def test_training_set_labels_and_mask():
    traces = np.zeros((1000, 2), dtype=np.float32)
    trains = [np.array([100, 300, 500]), np.array([200])]
    known_until = [400, 1000]
    training_set = TrainingSet(traces, trains, known_until, seed=0)
    labels, mask = training_set.label(np.array([100, 105, 106, 296, 500, 205, 900]))
    np.testing.assert_array_equal(labels[:, 0], [1, 1, 0, 1, 1, 0, 0])
    np.testing.assert_array_equal(labels[:, 1], [0, 0, 0, 0, 0, 1, 0])
    # unit 0 is only known before sample 400: the windows at 500 and 900 do not count for it
    np.testing.assert_array_equal(mask[:, 0], [1, 1, 1, 1, 0, 1, 0])
    assert mask[:, 1].all()
    windows = training_set.windows(np.arange(4))
    assert windows.shape == (4, 2, 60)
    assert training_set.labels[:, 0].sum() > 0 and (training_set.centres >= 30).all()


def test_synthetic_windows_add_the_mean_waveform_at_the_labelled_shift():
    """Noise-free traces: a synthetic window is the background window plus the unit's mean waveform,
    shifted by a known amount; labelled positive only within the tolerance, near miss beyond it."""
    num_samples, num_channels = 4000, 3
    traces = np.zeros((num_samples, num_channels), dtype=np.float32)
    shape = -np.exp(-0.5 * ((np.arange(40) - 20) / 2.0) ** 2).astype(np.float32)
    trains = [np.array([500, 1000, 1500]), np.array([2500])]
    for unit, train in enumerate(trains):
        for spike in train:
            traces[spike - 20:spike + 20, unit] += (unit + 1) * shape
    training_set = TrainingSet(traces, trains, [3000, 3000], seed=0, min_random=100)
    # the mean waveform of unit 0, near_miss (20) samples wider on each side, peaks at the centre of its span
    template = training_set.templates[0].numpy()
    assert template.shape == (num_channels, 60 + 40)
    assert np.argmin(template[0]) == 20 + 30 and np.allclose(template[1:], 0)
    rng = np.random.default_rng(1)
    windows, labels, mask = training_set.synthetic(400, rng, amplitude_jitter=0.0)
    assert windows.shape == (400, num_channels, 60) and labels.shape == mask.shape == (400, 2)
    # where the background window holds no spike, the planted trough's position gives the shift
    checked = {"within": 0, "beyond": 0}
    for window, label in zip(windows.numpy(), labels.numpy()):
        peak_channel = int(np.argmin(window.min(axis=1)))
        planted = window[peak_channel]
        one_trough = np.count_nonzero(planted < -0.5 * (peak_channel + 1)) in range(1, 6)  # half the trough
        if not one_trough or np.count_nonzero(window.min(axis=1) < -0.5) > 1:
            continue  # no spike, or two (one of the background): the shift is ambiguous
        shift = int(np.argmin(planted)) - 30
        assert label[peak_channel] == (abs(shift) <= 5)
        checked["within" if abs(shift) <= 5 else "beyond"] += 1
    assert min(checked.values()) > 50
    assert mask.numpy().min() == 1.0  # the background period is fully labelled for both units
    positives = labels.numpy().max(axis=1) > 0
    assert 0.3 < positives.mean() < 0.8  # half positives by default, plus background spikes
    # amplitudes: unit 1's waveform is twice unit 0's
    troughs = windows.numpy().min(axis=2)
    assert np.isclose(troughs[:, 1].min(), -2.0, atol=1e-4)
    single = np.isclose(troughs[:, 0], -1.0, atol=1e-4) | (troughs[:, 0] > -0.999)
    assert single.mean() > 0.9  # the rest: a planted unit-0 spike overlapping one in the background
    with pytest.raises(ValueError, match="synthetic_fraction"):
        fine_tune(ESortNet(num_channels, 2), training_set, epochs=1, synthetic_fraction=-1)


def _planted_units(num_samples=16000, num_channels=4, num_spikes=40, seed=0):
    """Noise traces with two units of distinct waveforms on channels 0 and 2: ``(traces, trains)``."""
    rng = np.random.default_rng(seed)
    traces = rng.normal(size=(num_samples, num_channels)).astype(np.float32)
    shape = -8 * np.exp(-0.5 * ((np.arange(60) - 30) / 3.0) ** 2)
    trains = [np.sort(rng.choice(np.arange(100, num_samples - 200, 200), num_spikes, replace=False)) + offset
              for offset in (0, 100)]
    for unit, train in enumerate(trains):
        for spike in train:
            traces[spike - 30:spike + 30, unit * 2] += shape
    return traces, trains


def _assert_finds_planted_units(model, traces, trains):
    samples, units = detect_spikes(model, lambda a, b: traces[a:b], len(traces), stride=2)
    for unit, train in enumerate(trains):
        found = samples[units == unit]
        distance = np.abs(found[:, None] - train[None, :]).min(axis=1)
        recall = np.mean(np.abs(train[:, None] - found[None, :]).min(axis=1) <= 5)
        assert recall > 0.9 and np.mean(distance <= 5) > 0.9


def test_fine_tune_learns_a_planted_waveform():
    """Two units with distinct waveforms on different channels, noise elsewhere: learned from 15 spikes each."""
    traces, trains = _planted_units()
    labelled = [train[:15] for train in trains]
    known = [int(train[14]) + 6 for train in trains]
    training_set = TrainingSet(traces, labelled, known, seed=0, min_random=500)
    model = ESortNet(traces.shape[1], 2)
    history = fine_tune(model, training_set, epochs=15, seed=0)
    assert history["loss"][-1] < history["loss"][0]
    _assert_finds_planted_units(model, traces, trains)


def test_fine_tune_budget_bounds_steps_and_windows_and_still_learns():
    """Many labels (every spike of 32 s at 30 kHz-like density): the step budget and the per-unit cap
    bound the work, whatever the number of labels, and the planted units are still learned."""
    traces, trains = _planted_units(num_samples=60000, num_spikes=250, seed=1)
    known = [len(traces)] * 2
    full = TrainingSet(traces, trains, known, seed=0, min_random=500)
    capped = TrainingSet(traces, trains, known, seed=0, min_random=500, max_spikes_per_unit=20)
    np.testing.assert_array_equal(full.num_window_spikes, [250, 250])
    np.testing.assert_array_equal(capped.num_window_spikes, [20, 20])
    np.testing.assert_array_equal(capped.num_labelled_spikes, [250, 250])
    assert len(capped) < len(full) / 5
    # labels stay complete: a window on any spike of a unit (drawn or not) is positive for it
    labels, mask = capped.label(trains[0])
    assert labels[:, 0].all() and mask.all()
    model = ESortNet(traces.shape[1], 2)
    history = fine_tune(model, full, epochs=30, batch_size=64, max_steps=80, seed=0)
    assert history["num_steps"] == 80 and len(history["loss"]) < 30
    _assert_finds_planted_units(model, traces, trains)
    # without a budget, the epochs run to the end: more steps than the budget
    batches = len(capped) // 64 + (len(capped) % 64 >= 2)  # a last batch of one window is skipped (BatchNorm)
    assert fine_tune(ESortNet(traces.shape[1], 2), capped, epochs=2, batch_size=64, seed=0)["num_steps"] == 2 * batches
    with pytest.raises(ValueError, match="max_steps"):
        fine_tune(model, full, max_steps=0)
    with pytest.raises(ValueError, match="max_spikes_per_unit"):
        TrainingSet(traces, trains, known, max_spikes_per_unit=0)


def test_backbone_transfer_rules(tmp_path):
    locations_a = np.c_[np.zeros(4), np.arange(4) * 20.0]
    locations_b = np.c_[np.zeros(4), np.arange(4) * 25.0]
    fingerprint_a = geometry_fingerprint(locations_a)
    assert fingerprint_a == geometry_fingerprint(locations_a + 0.01)
    assert fingerprint_a != geometry_fingerprint(locations_b)
    temporal = TemporalLayers()
    spatial = SpatialLayer(4)
    torch.nn.init.constant_(spatial.linear.weight, 0.25)
    state = backbone_state(temporal, {fingerprint_a: spatial})
    torch.save(state, tmp_path / "backbone.pt")
    loaded = torch.load(tmp_path / "backbone.pt", weights_only=True)
    model = ESortNet(4, 3)
    report = load_backbone_into(model, loaded, fingerprint_a)
    assert report["temporal"] and report["spatial"]
    assert torch.allclose(model.spatial.linear.weight, torch.full_like(model.spatial.linear.weight, 0.25))
    torch.testing.assert_close(model.temporal.linear1.weight, temporal.linear1.weight.half().float())
    other = ESortNet(4, 3)
    report = load_backbone_into(other, loaded, geometry_fingerprint(locations_b))
    assert report["temporal"] and not report["spatial"]
    assert not torch.allclose(other.spatial.linear.weight, torch.full_like(other.spatial.linear.weight, 0.25))
    with pytest.raises(ValueError, match="no spatial layer"):
        load_backbone_into(ESortNet(4, 3), loaded, geometry_fingerprint(locations_b), transfer_spatial=True)
    # a different channel count still gets the temporal layers
    report = load_backbone_into(ESortNet(9, 2), loaded, geometry_fingerprint(np.zeros((9, 2))))
    assert report["temporal"] and not report["spatial"]


def test_shipped_backbone_matches_its_model_card():
    path = core.backbone_path("esort_backbone")
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["weights_sha256"] == file_sha256(path)
    assert path.stat().st_size < 2_000_000
    assert card["training"]["command"].startswith("vqcompress train esort")
    state = core.load_backbone("esort_backbone")
    assert any(key.startswith("temporal.") for key in state)
    from spikeinterface_vqcompress.esort import pretraining

    reserved = pretraining.EVALUATION_SEEDS
    assert {0, 101, 102, 103, 104} <= set(reserved)  # the tuning recording's and every benchmark recording's seed
    assert all(d["templates_seed"] not in reserved and d["recording_seed"] not in reserved
               for d in card["training"]["data"])
    # the card describes what `vqcompress train esort` trains now
    assert [(d["probe"], d["templates_seed"], d["recording_seed"], d["num_units"], d["duration_s"])
            for d in card["training"]["data"]] == [tuple(r) for r in pretraining.TRAINING_RECORDINGS]
    assert card["training"]["steps"] == pretraining.PRETRAINING_STEPS
    with pytest.raises(FileNotFoundError, match="esort_backbone"):
        core.backbone_path("no-such-backbone")


def test_tampered_backbone_is_refused(tmp_path):
    source = core.backbone_path("esort_backbone")
    copy = tmp_path / "esort_copy.pt"
    data = bytearray(source.read_bytes())
    data[len(data) // 2] ^= 0xFF
    copy.write_bytes(bytes(data))
    card = json.loads(source.with_suffix(".json").read_text())
    copy.with_suffix(".json").write_text(json.dumps(card))
    with pytest.raises(ValueError, match="does not match its model card"):
        core.load_backbone(copy)


def test_sorter_is_registered():
    import spikeinterface.sorters as ss

    assert "esort" in ss.available_sorters()
    assert "esort" in ss.installed_sorters()
    defaults = ss.get_default_sorter_params("esort")
    descriptions = ss.get_sorter_params_description("esort")
    assert set(defaults) == set(descriptions)
    assert defaults["label_sorter"] == "spykingcircus2" and defaults["device"] == "auto"
    assert defaults["gate_threshold"] == 4.0 and defaults["gate_margin_samples"] == 8
    assert defaults["gate_peak_sign"] == "neg"
    assert defaults["threshold"] == 0.25
    assert defaults["inference_dtype"] == "float32" and defaults["num_workers"] == "auto"
    assert defaults["apply_filter"] == "auto" and defaults["stride"] == "auto"


def test_auto_band_pass_and_stride_follow_the_recording():
    """'auto' band-passes only a recording not marked filtered, and runs the network every 0.125 ms
    (at most 4 samples); bad values are named."""
    from spikeinterface.core import NumpyRecording
    from spikeinterface.preprocessing import bandpass_filter

    raw = NumpyRecording(np.random.default_rng(0).normal(size=(15000, 2)).astype("float32"), 30000.0)
    assert core.resolve_apply_filter(raw, "auto") is True
    assert core.resolve_apply_filter(bandpass_filter(raw), "auto") is False
    assert core.resolve_apply_filter(bandpass_filter(raw), True) is True
    assert core.resolve_apply_filter(raw, False) is False
    with pytest.raises(ValueError, match="apply_filter must be True, False or 'auto'"):
        core.resolve_apply_filter(raw, "yes")
    assert [core.resolve_stride("auto", fs) for fs in (8000.0, 20000.0, 25000.0, 30000.0, 32000.0, 48000.0)] == \
        [1, 2, 3, 3, 4, 4]
    assert core.resolve_stride(3, 32000.0) == 3
    for bad in (7, 0, 2.0, True, "two"):
        with pytest.raises(ValueError, match="stride must be 'auto' or a number of samples that divides"):
            core.resolve_stride(bad, 32000.0)


def test_sorter_names_a_bad_gate_peak_sign(tmp_path):
    import spikeinterface.sorters as ss
    from spikeinterface.core import generate_recording

    recording = generate_recording(num_channels=4, durations=[1.0], seed=0).save(folder=tmp_path / "recording")
    with pytest.raises(ValueError, match="gate_peak_sign must be one of"):
        ss.run_sorter("esort", recording, folder=tmp_path / "esort", gate_peak_sign="negative")
    assert not (tmp_path / "esort" / "sorter_output" / "sorting").exists()
    with pytest.raises(ValueError, match="inference dtype must be one of"):
        ss.run_sorter("esort", recording, folder=tmp_path / "esort2", inference_dtype="half")
    assert not (tmp_path / "esort2" / "sorter_output" / "sorting").exists()
    with pytest.raises(ValueError, match="num_workers must be 'auto' or a positive integer"):
        ss.run_sorter("esort", recording, folder=tmp_path / "esort3", num_workers=0)
    with pytest.raises(ValueError, match="stride must be 'auto' or a number of samples that divides"):
        ss.run_sorter("esort", recording, folder=tmp_path / "esort4", stride=7)
    with pytest.raises(ValueError, match="apply_filter must be True, False or 'auto'"):
        ss.run_sorter("esort", recording, folder=tmp_path / "esort5", apply_filter="yes")


def test_cli_names_a_bad_gate_threshold(tmp_path):
    from spikeinterface_vqcompress import cli

    with pytest.raises(SystemExit, match="--gate-threshold must be a number of noise units or 'none', got 'loud'"):
        cli.main(["esort", str(tmp_path / "missing.h5"), str(tmp_path / "out"), "--gate-threshold", "loud"])
    with pytest.raises(SystemExit, match="--band-pass and --no-band-pass contradict each other"):
        cli.main(["esort", str(tmp_path / "missing.h5"), str(tmp_path / "out"), "--band-pass", "--no-band-pass"])


def test_run_sorter_esort_with_ground_truth_labels(ground_truth_file, tmp_path):
    import spikeinterface.sorters as ss

    from spikeinterface_vqcompress.evaluation.sorting import score_sorting
    from spikeinterface_vqcompress.groundtruth import load_ground_truth

    recording, gt_sorting = load_ground_truth(ground_truth_file)
    folder = tmp_path / "esort"
    sorting = ss.run_sorter("esort", recording, folder=folder, label_source="sorting",
                            label_sorting_path=str(ground_truth_file), num_spikes_per_unit=15, epochs=10,
                            num_threads=2)
    scores = score_sorting(gt_sorting, sorting)
    assert scores["accuracy_mean"] > 0.7, scores
    assert set(sorting.unit_ids) <= set(gt_sorting.unit_ids)
    info = json.loads((folder / "sorter_output" / "esort_info.json").read_text())
    assert info["sort_time_s"] > 0 and info["fine_tune_time_s"] > 0
    assert info["transfer"]["temporal"] is True
    again = ss.read_sorter_folder(folder)
    assert len(again.to_spike_vector()) == len(sorting.to_spike_vector()) > 0
    with pytest.raises(Exception, match="label_sorting_path"):
        ss.run_sorter("esort", recording, folder=tmp_path / "bad", label_source="sorting")


def test_run_sorter_esort_real_data_mode_defaults(ground_truth_file, tmp_path):
    """The real-data mode with the sorter's defaults: labels from spykingcircus2 on the first 10 s,
    fine-tuning bounded by the step budget, whatever the number of labels."""
    import spikeinterface.sorters as ss

    from spikeinterface_vqcompress.esort.defaults import DEFAULT_LABEL_SORTER, DEFAULT_MAX_STEPS
    from spikeinterface_vqcompress.evaluation.sorting import score_sorting
    from spikeinterface_vqcompress.groundtruth import load_ground_truth

    recording, gt_sorting = load_ground_truth(ground_truth_file)
    params = ss.get_default_sorter_params("esort")
    assert params["label_sorter"] == DEFAULT_LABEL_SORTER and params["max_steps"] == DEFAULT_MAX_STEPS
    sorting = ss.run_sorter("esort", recording, folder=tmp_path / "esort", max_steps=40, num_threads=2)
    output = tmp_path / "esort" / "sorter_output"
    assert (output / "labels_sorting").is_dir()
    info = json.loads((output / "esort_info.json").read_text())
    assert info["params"]["label_sorter"] == DEFAULT_LABEL_SORTER
    # a MEArec file is marked filtered: "auto" does not band-pass it again; 0.125 ms at its rate
    assert recording.is_filtered() and info["apply_filter"] is False
    assert info["stride"] == min(4, int(recording.get_sampling_frequency() / 8000))
    assert info["history"]["num_steps"] == 40  # hundreds of labelled spikes: many more batches than that
    assert info["num_training_windows"] > 40 * 256
    assert len(sorting.unit_ids) >= 1
    assert score_sorting(gt_sorting, sorting)["accuracy_mean"] > 0.5
