"""The footprint map of the spike codecs: every spike of a unit sent on the same channels."""

import numpy as np
import pytest

from spikeinterface_vqcompress.core.codecs.spike_cae.footprint import (MIN_SCORE, apply_footprint_map, check_footprint_map,
                                                                      learn_footprint_map)


def _two_units_and_a_stranger(seed=0):
    """Amplitude vectors (8 channels): unit A about as large on channels 2 and 3 (its peak channel
    alternates), unit B on channel 6, and spikes of an unseen unit on channel 0 only."""
    rng = np.random.default_rng(seed)
    a = np.array([0, 10, 100, 100, 30, 0, 0, 0], float)
    b = np.array([0, 0, 0, 0, 10, 40, 120, 40], float)
    unit_a = a + rng.normal(0, 6, (300, 8))
    unit_b = b + rng.normal(0, 6, (300, 8))
    stranger = np.array([150, 20, 0, 0, 0, 0, 0, 0], float) + rng.normal(0, 6, (20, 8))
    return np.abs(unit_a), np.abs(unit_b), np.abs(stranger)


def test_the_map_centres_every_spike_of_a_unit_on_one_channel():
    unit_a, unit_b, stranger = _two_units_and_a_stranger()
    peaks_a = unit_a.argmax(axis=1)
    assert 0.3 < np.mean(peaks_a == 2) < 0.7  # the peak channel alternates between 2 and 3
    footprint_map = learn_footprint_map(np.vstack([unit_a, unit_b]), num_clusters=4)
    centres_a = apply_footprint_map(footprint_map, unit_a, peaks_a)
    centres_b = apply_footprint_map(footprint_map, unit_b, unit_b.argmax(axis=1))
    assert np.bincount(centres_a).max() / len(centres_a) > 0.95
    assert set(np.unique(centres_a)) <= {2, 3}
    assert np.all(centres_b == 6)
    # a unit the map never saw keeps its own peak channel
    assert np.all(apply_footprint_map(footprint_map, stranger, stranger.argmax(axis=1)) == 0)
    # the same spikes give the same map (seeded)
    assert learn_footprint_map(np.vstack([unit_a, unit_b]), num_clusters=4) == footprint_map


def test_an_empty_map_and_no_spikes_change_nothing():
    assert learn_footprint_map(np.zeros((0, 8)), num_clusters=8) == {"channels": [], "templates": []}
    peaks = np.array([1, 5])
    assert np.array_equal(apply_footprint_map({"channels": [], "templates": []}, np.ones((2, 8)), peaks), peaks)
    assert 0 < MIN_SCORE < 1


def test_bad_maps_are_refused_with_what_to_do():
    assert check_footprint_map(None) is None
    with pytest.raises(ValueError, match="footprint_map must be"):
        check_footprint_map({"channels": [1]})
    with pytest.raises(ValueError, match="one each"):
        check_footprint_map({"channels": [1, 2], "templates": [[[1, 1.0]]]})
    with pytest.raises(ValueError, match="outside the 4 channels"):
        check_footprint_map({"channels": [7], "templates": [[[7, 1.0]]]}, num_channels=4)


def _generated_with_truth():
    from spikeinterface.core import NumpyRecording, generate_ground_truth_recording

    recording, sorting = generate_ground_truth_recording(
        durations=[10.0], sampling_frequency=30000.0, num_channels=32, num_units=10, seed=777,
        generate_probe_kwargs={"num_columns": 3, "xpitch": 18, "ypitch": 22, "contact_shapes": "circle",
                               "contact_shape_params": {"radius": 6}},
        generate_sorting_kwargs={"firing_rates": (2.0, 12.0), "refractory_period_ms": 4.0},
        noise_kwargs={"noise_levels": 5.0, "strategy": "on_the_fly"})
    traces = np.round(recording.get_traces() / 0.25).astype(np.int16)
    rebuilt = NumpyRecording([traces], sampling_frequency=30000.0)
    rebuilt.set_probe(recording.get_probe(), in_place=True)
    rebuilt.annotate(is_filtered=True)
    return rebuilt, sorting


def _centre_consistency(codec, recording, sorting):
    """Per ground-truth unit, the fraction of its detected spikes sent on its most common centre channel."""
    times, centres, _, _ = codec.detect(recording.get_traces())
    fractions = []
    for unit in sorting.unit_ids:
        train = sorting.get_unit_spike_train(unit)
        nearest = np.clip(np.searchsorted(times, train), 1, len(times) - 1)
        nearest = np.where(np.abs(times[nearest - 1] - train) < np.abs(times[nearest] - train), nearest - 1, nearest)
        matched = np.abs(times[nearest] - train) <= 5
        if matched.sum() >= 5:
            fractions.append(np.bincount(centres[nearest[matched]]).max() / matched.sum())
    return np.array(fractions)


def test_spike_vq_learns_the_map_and_sends_each_unit_on_fewer_footprints(tmp_path):
    import spikeinterface_vqcompress as vq
    from spikeinterface_vqcompress.core.registry import get_codec

    recording, sorting = _generated_with_truth()
    peak = get_codec({"id": "spike-vq"}).with_recording(recording)  # "peak" is the default
    learned = get_codec({"id": "spike-vq", "footprint": "learned"}).with_recording(recording)
    assert peak.params["footprint_map"] is None
    assert 0 < len(learned.params["footprint_map"]["channels"]) <= 32
    consistency_peak = _centre_consistency(peak, recording, sorting)
    consistency_learned = _centre_consistency(learned, recording, sorting)
    assert consistency_learned.mean() > consistency_peak.mean() + 0.05, (consistency_peak, consistency_learned)
    # the map travels in the configuration; the file alone decodes (the decoder needs no map)
    compressed = vq.compress(recording, codec={"id": "spike-vq", "footprint": "learned"}, file_path=tmp_path / "rec.vqc")
    assert compressed.codec.params["footprint_map"] == learned.params["footprint_map"]
    again = vq.read_compressed(tmp_path / "rec.vqc")
    np.testing.assert_array_equal(again.get_traces(), compressed.get_traces())


def test_the_footprint_parameter_is_checked():
    from spikeinterface_vqcompress.core.registry import get_codec

    with pytest.raises(ValueError, match="'footprint' must be one of"):
        get_codec({"id": "spike-vq", "footprint": "widest"})
    with pytest.raises(ValueError, match="outside the 2 channels"):
        get_codec({"id": "spike-pca", "channel_locations": [[0, 0], [0, 20]],
                   "footprint_map": {"channels": [5], "templates": [[[5, 1.0]]]}})
