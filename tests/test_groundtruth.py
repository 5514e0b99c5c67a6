"""Tests of the MEArec ground-truth module: template cache, seeded recordings, labelled fallback."""

import json
import logging
import os
import pwd
import time
import warnings
from pathlib import Path

import h5py
import numpy as np
import pytest

from spikeinterface_vqcompress import groundtruth
from spikeinterface_vqcompress.groundtruth import GroundTruthFallbackWarning, TemplateGenerationError, available_probes, default_cache_folder, generate_templates, load_ground_truth, simulate_recording

# Fast cells (NEURON soma simulation + 4 extracellular templates: a few seconds each); one
# excitatory (pyramidal) cell so that recordings get both excitatory and inhibitory units.
FAST_CELLS = ["L5_BTC_bAC217_1", "L5_DBC_bAC217_1", "L5_MC_bAC217_1", "L5_STPC_cADpyr232_1"]
TEMPLATES_PER_CELL = 4
PROBE = "Neuronexus-32"

_REAL_HOME = Path(pwd.getpwuid(os.getuid()).pw_dir)
_REAL_MEAREC_CONFIG = _REAL_HOME / ".config" / "mearec"
_REAL_MEAREC_CONFIG_EXISTED = _REAL_MEAREC_CONFIG.exists()


def _neuron_usable():
    return groundtruth._neuron_problem() is None


requires_neuron = pytest.mark.skipif(not _neuron_usable(), reason="NEURON/LFPy not installed")


@pytest.fixture(scope="session")
def cache_folder(tmp_path_factory):
    return tmp_path_factory.mktemp("vqcompress-cache")


@pytest.fixture(scope="session")
def neuron_templates(cache_folder):
    """NEURON templates generated once for the session (about 40 s on 2 cores)."""
    start = time.perf_counter()
    path = generate_templates(
        probe=PROBE,
        num_templates_per_cell=TEMPLATES_PER_CELL,
        cell_models=FAST_CELLS,
        seed=0,
        cache_folder=cache_folder,
    )
    return path, time.perf_counter() - start


def _simulate(file_path, cache_folder, **kwargs):
    arguments = dict(
        probe=PROBE,
        num_units=4,
        duration_s=5.0,
        noise_level_uV=10.0,
        seed=0,
        num_templates_per_cell=TEMPLATES_PER_CELL,
        cell_models=FAST_CELLS,
        cache_folder=cache_folder,
    )
    arguments.update(kwargs)
    return simulate_recording(file_path, **arguments)


def _traces_and_spikes(file_path):
    recording, sorting = load_ground_truth(file_path)
    traces = recording.get_traces(return_in_uV=False)
    spikes = {unit_id: sorting.get_unit_spike_train(unit_id) for unit_id in sorting.unit_ids}
    return traces, spikes


# ------------------------------------------------------------------------------------------------


def test_default_cache_folder_precedence(monkeypatch, tmp_path):
    monkeypatch.setenv("VQCOMPRESS_CACHE", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert default_cache_folder() == tmp_path / "explicit"
    monkeypatch.delenv("VQCOMPRESS_CACHE")
    assert default_cache_folder() == tmp_path / "xdg" / "spikeinterface_vqcompress"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert default_cache_folder() == Path.home() / ".cache" / "spikeinterface_vqcompress"


def test_available_probes_channel_counts():
    import MEAutility as mu

    probes = available_probes()
    expected_channels = {"Neuronexus-32": 32, "Neuropixels-64": 64, "Neuropixels-128": 128, "tetrode": 4}
    for name, number_of_channels in expected_channels.items():
        assert name in probes
        assert mu.return_mea(name).positions.shape == (number_of_channels, 3)


def test_invalid_arguments(tmp_path):
    with pytest.raises(ValueError, match="Unknown probe"):
        simulate_recording(tmp_path / "a.h5", probe="Utah-96", fallback="always")
    with pytest.raises(ValueError, match="fallback"):
        simulate_recording(tmp_path / "a.h5", fallback="sometimes")
    with pytest.raises(ValueError, match=r"\.h5"):
        simulate_recording(tmp_path / "a.nwb", fallback="always")
    with pytest.raises(ValueError, match="Unknown cell models"):
        generate_templates(cell_models=["L5_XX_1"], cache_folder=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_cache_key_covers_parameters():
    base = groundtruth._template_parameters(PROBE, 4, 0, False)
    key = groundtruth._templates_cache_key(PROBE, FAST_CELLS, base)
    assert key == groundtruth._templates_cache_key(PROBE, list(FAST_CELLS), dict(base))
    variants = [
        groundtruth._templates_cache_key("tetrode", FAST_CELLS, groundtruth._template_parameters("tetrode", 4, 0, False)),
        groundtruth._templates_cache_key(PROBE, FAST_CELLS, groundtruth._template_parameters(PROBE, 5, 0, False)),
        groundtruth._templates_cache_key(PROBE, FAST_CELLS, groundtruth._template_parameters(PROBE, 4, 1, False)),
        groundtruth._templates_cache_key(PROBE, FAST_CELLS, groundtruth._template_parameters(PROBE, 4, 0, True)),
        groundtruth._templates_cache_key(PROBE, FAST_CELLS[:3], base),
    ]
    assert len({key, *variants}) == 1 + len(variants)


@requires_neuron
def test_neuron_templates_generated_and_cached(neuron_templates, cache_folder, monkeypatch):
    import MEArec

    path, first_call_s = neuron_templates
    assert path.is_file() and path.parent == cache_folder / "templates"
    template_generator = MEArec.load_templates(path, return_h5_objects=False)
    assert template_generator.templates.shape[:2] == (len(FAST_CELLS) * TEMPLATES_PER_CELL, 32)
    assert sorted(set(template_generator.celltypes)) == sorted(FAST_CELLS)
    with h5py.File(path, "r") as file:
        assert file.attrs["templates_source"] == "neuron"
    # no half-written files, no work folders left behind
    assert [p.name for p in (cache_folder / "templates").iterdir()] == [path.name]
    assert list((cache_folder / "work").iterdir()) == []

    # a second call is a cache hit: nothing runs, the file is untouched
    modification_time = path.stat().st_mtime_ns

    def must_not_run(*args, **kwargs):
        raise AssertionError("templates were regenerated")

    monkeypatch.setattr(groundtruth.templates, "_run_template_worker", must_not_run)
    start = time.perf_counter()
    again = generate_templates(
        probe=PROBE,
        num_templates_per_cell=TEMPLATES_PER_CELL,
        cell_models=list(reversed(FAST_CELLS)),  # order does not matter
        seed=0,
        cache_folder=cache_folder,
    )
    assert again == path
    assert time.perf_counter() - start < 2.0 < first_call_s
    assert path.stat().st_mtime_ns == modification_time


@requires_neuron
def test_neuron_recording_reads_back_and_is_reproducible(neuron_templates, cache_folder, tmp_path):
    first = _simulate(tmp_path / "first.h5", cache_folder)
    second = _simulate(tmp_path / "second.h5", cache_folder)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["first.h5", "second.h5"]  # no temporary leftovers

    recording, sorting = load_ground_truth(first)
    assert recording.get_num_channels() == 32
    assert recording.get_sampling_frequency() == 32000.0
    assert recording.get_total_duration() == pytest.approx(5.0)
    assert recording.get_dtype() == np.int16
    assert np.allclose(recording.get_channel_gains(), groundtruth.RECORDING_GAIN_UV)
    assert len(sorting.unit_ids) == 4
    assert sum(len(sorting.get_unit_spike_train(u)) for u in sorting.unit_ids) > 10

    metadata = recording.get_annotation("vqcompress_groundtruth")
    assert metadata["templates_source"] == "neuron"
    assert metadata["fallback_reason"] is None
    assert metadata["templates_file"] == str(neuron_templates[0])
    assert metadata["parameters"]["cell_models"] == sorted(FAST_CELLS)
    assert metadata["num_excitatory_units"] >= 1 and metadata["num_inhibitory_units"] >= 1
    assert sorting.get_annotation("vqcompress_groundtruth") == metadata

    traces_first, spikes_first = _traces_and_spikes(first)
    traces_second, spikes_second = _traces_and_spikes(second)
    np.testing.assert_array_equal(traces_first, traces_second)
    assert spikes_first.keys() == spikes_second.keys()
    for unit_id in spikes_first:
        np.testing.assert_array_equal(spikes_first[unit_id], spikes_second[unit_id])
    # band-passed signal with spikes above the noise
    assert abs(float(np.mean(traces_first))) < 5
    assert np.abs(traces_first).max() * groundtruth.RECORDING_GAIN_UV > 50


def test_fallback_always_warns_logs_and_is_recorded(tmp_path, caplog):
    caplog.set_level(logging.ERROR, logger="spikeinterface_vqcompress.groundtruth")
    with pytest.warns(GroundTruthFallbackWarning, match="FALLBACK"):
        path = _simulate(tmp_path / "fallback.h5", tmp_path / "cache", fallback="always", num_units=5)
    assert any("FALLBACK" in record.getMessage() for record in caplog.records)
    assert not (tmp_path / "cache" / "templates").exists()  # NEURON was not asked for

    with h5py.File(path, "r") as file:
        assert file.attrs["vqcompress_templates_source"] == "spikeinterface-fallback"
        stored = json.loads(file.attrs["vqcompress_groundtruth"])
    assert stored["templates_source"] == "spikeinterface-fallback"
    assert "always" in stored["fallback_reason"]

    recording, sorting = load_ground_truth(path)
    assert recording.get_num_channels() == 32
    assert recording.get_total_duration() == pytest.approx(5.0)
    assert len(sorting.unit_ids) == 5
    assert recording.get_annotation("vqcompress_groundtruth") == stored


def test_fallback_seeds(tmp_path):
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", GroundTruthFallbackWarning)
        paths = [
            _simulate(tmp_path / f"{name}.h5", tmp_path / "cache", fallback="always", probe="tetrode", num_units=3, seed=seed)
            for name, seed in (("a", 3), ("b", 3), ("c", 4))
        ]
    (traces_a, spikes_a), (traces_b, spikes_b), (traces_c, spikes_c) = map(_traces_and_spikes, paths)
    assert traces_a.shape == (5 * 32000, 4)
    np.testing.assert_array_equal(traces_a, traces_b)
    for unit_id in spikes_a:
        np.testing.assert_array_equal(spikes_a[unit_id], spikes_b[unit_id])
    assert not np.array_equal(traces_a, traces_c)


def test_auto_falls_back_loudly_when_neuron_cannot_run(tmp_path, monkeypatch):
    monkeypatch.setattr(groundtruth.templates, "_neuron_problem", lambda: "NEURON disabled by the test")
    with pytest.warns(GroundTruthFallbackWarning, match="NEURON disabled by the test"):
        path = _simulate(tmp_path / "auto.h5", tmp_path / "cache", fallback="auto", num_units=3)
    recording, _ = load_ground_truth(path)
    metadata = recording.get_annotation("vqcompress_groundtruth")
    assert metadata["templates_source"] == "spikeinterface-fallback"
    assert "NEURON disabled by the test" in metadata["fallback_reason"]


def test_never_raises_when_neuron_cannot_run(tmp_path, monkeypatch):
    monkeypatch.setattr(groundtruth.templates, "_neuron_problem", lambda: "NEURON disabled by the test")
    with warnings.catch_warnings():
        warnings.simplefilter("error", GroundTruthFallbackWarning)
        with pytest.raises(TemplateGenerationError, match="fallback='never'"):
            _simulate(tmp_path / "never.h5", tmp_path / "cache", fallback="never")
    assert not (tmp_path / "never.h5").exists()


def test_fallback_drift(tmp_path):
    with pytest.warns(GroundTruthFallbackWarning):
        path = _simulate(tmp_path / "drift.h5", tmp_path / "cache", fallback="always", drift=True, num_units=4)
    recording, sorting = load_ground_truth(path)
    assert recording.get_num_channels() == 32 and len(sorting.unit_ids) == 4
    assert recording.get_annotation("vqcompress_groundtruth")["parameters"]["drift"] is True
    with h5py.File(path, "r") as file:
        assert "drift_list" in file
        drift_vector_um = np.asarray(file["drift_list/0/drift_vector_um"])
        assert file["templates"].ndim == 5  # units, drift steps, jitters, channels, samples
    assert np.ptp(drift_vector_um) > 1.0


@requires_neuron
def test_nothing_written_to_home(neuron_templates, cache_folder):
    # conftest points HOME at a temporary folder; MEArec must not even write there
    assert Path.home() != _REAL_HOME
    assert not (Path.home() / ".config" / "mearec").exists()
    assert _REAL_MEAREC_CONFIG.exists() == _REAL_MEAREC_CONFIG_EXISTED
    # MEArec/NEURON ran with their HOME inside the cache folder
    assert (cache_folder / "home").is_dir()
    assert any((cache_folder / "intracellular").iterdir())


@pytest.mark.slow
@requires_neuron
def test_neuron_drift_recording(cache_folder, tmp_path):
    path = _simulate(tmp_path / "drift.h5", cache_folder, drift=True, num_units=3, num_templates_per_cell=3)
    recording, sorting = load_ground_truth(path)
    assert recording.get_annotation("vqcompress_groundtruth")["templates_source"] == "neuron"
    with h5py.File(path, "r") as file:
        assert file["templates"].ndim == 5


@pytest.mark.slow
@requires_neuron
def test_neuron_templates_independent_of_cache_state(neuron_templates, tmp_path):
    """A fresh cache (no reused soma simulations) and two parallel jobs give the same templates."""
    import MEArec

    fresh = generate_templates(
        probe=PROBE,
        num_templates_per_cell=TEMPLATES_PER_CELL,
        cell_models=FAST_CELLS,
        seed=0,
        cache_folder=tmp_path / "fresh-cache",
        n_jobs=2,
    )
    reference = MEArec.load_templates(neuron_templates[0], return_h5_objects=False)
    again = MEArec.load_templates(fresh, return_h5_objects=False)
    np.testing.assert_allclose(again.templates, reference.templates)
    np.testing.assert_allclose(again.locations, reference.locations)


@pytest.mark.slow
@requires_neuron
def test_full_default_library_recording(tmp_path):
    """All 13 cells x 20 templates (about 3 minutes of NEURON with 2 jobs), 30 s, 10 units."""
    path = simulate_recording(tmp_path / "full.h5", cache_folder=tmp_path / "cache", fallback="never", n_jobs=2)
    recording, sorting = load_ground_truth(path)
    assert recording.get_num_channels() == 32 and len(sorting.unit_ids) == 10
    assert recording.get_total_duration() == pytest.approx(30.0)
