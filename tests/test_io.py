"""load_recording: exact round trips through formats written here, the real Open Ephys legacy data, errors."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest

from spikeinterface_vqcompress.readers import FORMAT_GUESSING_RULES, guess_format, load_recording, supported_formats

SHARED_DATA = Path(__file__).resolve().parents[1].parent / "shared" / "data"
OPENEPHYS_LEGACY_FOLDER = SHARED_DATA / "openephys_legacy_16ch"

NUM_CHANNELS = 6
SAMPLING_FREQUENCY_HZ = 20000.0
NUM_SAMPLES = 20000  # 1 s


def _random_traces(num_samples: int = NUM_SAMPLES, num_channels: int = NUM_CHANNELS, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(-3000, 3000, size=(num_samples, num_channels), dtype=np.int16)


def _assert_round_trip(recording, traces, sampling_frequency_hz, gains_to_uV=None):
    assert recording.get_num_segments() == 1
    assert recording.get_num_channels() == traces.shape[1]
    assert recording.get_sampling_frequency() == sampling_frequency_hz
    assert recording.get_num_samples() == traces.shape[0]
    read_traces = recording.get_traces()
    assert read_traces.dtype == traces.dtype
    np.testing.assert_array_equal(read_traces, traces)
    if gains_to_uV is not None:
        np.testing.assert_allclose(recording.get_channel_gains(), gains_to_uV, rtol=1e-12)
        np.testing.assert_array_equal(recording.get_channel_offsets(), 0.0)


def _load_both_ways(path, format_name, **kwargs):
    """Load with format= given, and guessed; check the guess; return both recordings."""
    assert guess_format(path) == format_name
    return load_recording(path, format=format_name, **kwargs), load_recording(path, **kwargs)


# --------------------------------------------------------------------------------------------------
# Writers of small recordings
# --------------------------------------------------------------------------------------------------


def _write_nix(file_path: Path, traces: np.ndarray, sampling_frequency_hz: float) -> None:
    import neo
    import quantities as pq

    signal = neo.AnalogSignal(traces, units="mV", sampling_rate=sampling_frequency_hz * pq.Hz, name="signals")
    block = neo.Block(name="block")
    segment = neo.Segment(name="segment")
    segment.analogsignals.append(signal)
    block.segments.append(segment)
    with neo.NixIO(str(file_path), mode="ow") as io:
        io.write_block(block)


def _write_spikeglx_nidq(folder: Path, traces: np.ndarray, sampling_frequency_hz: float, range_max_V: float) -> Path:
    """A SpikeGLX NI-DAQ stream of analog (XA) channels, as Neo's SpikeGLXRawIO parses it."""
    folder.mkdir(parents=True)
    bin_path = folder / "test_g0_t0.nidq.bin"
    traces.astype("<i2").tofile(bin_path)
    num_channels = traces.shape[1]
    channel_map = f"(0,0,{num_channels},0,0)" + "".join(f"(XA{c};{c}:{c})" for c in range(num_channels))
    meta = {
        "typeThis": "nidq",
        "fileName": str(bin_path),
        "fileSizeBytes": bin_path.stat().st_size,
        "firstSample": 0,
        "nSavedChans": num_channels,
        "niSampRate": sampling_frequency_hz,
        "niAiRangeMax": range_max_V,
        "niAiRangeMin": -range_max_V,
        "niMNGain": 200,
        "niMAGain": 1,
        "niXDChans1": "",
        "snsMnMaXaDw": f"0,0,{num_channels},0",
        "snsSaveChanSubset": "all",
        "~snsChanMap": channel_map,
    }
    bin_path.with_suffix(".meta").write_text("".join(f"{key}={value}\n" for key, value in meta.items()))
    return bin_path


def _write_openephys_binary(folder: Path, traces: np.ndarray, sampling_frequency_hz: float, bit_volts: float) -> Path:
    """Open Ephys GUI >= 0.6 binary layout: Record Node/experiment/recording/continuous/<stream>/."""
    recording_folder = folder / "Record Node 101" / "experiment1" / "recording1"
    stream_folder_name = "Acquisition_Board-100.Rhythm Data"
    stream_folder = recording_folder / "continuous" / stream_folder_name
    stream_folder.mkdir(parents=True)
    num_samples, num_channels = traces.shape
    first_sample_number = 0
    traces.astype("<i2").tofile(stream_folder / "continuous.dat")
    sample_numbers = np.arange(first_sample_number, first_sample_number + num_samples, dtype=np.int64)
    np.save(stream_folder / "sample_numbers.npy", sample_numbers)
    np.save(stream_folder / "timestamps.npy", sample_numbers / sampling_frequency_hz)
    structure = {
        "GUI version": "0.6.7",
        "continuous": [
            {
                "folder_name": stream_folder_name + "/",
                "sample_rate": sampling_frequency_hz,
                "source_processor_name": "Acquisition Board",
                "source_processor_id": 100,
                "stream_name": "Rhythm Data",
                "recorded_processor": "Acquisition Board",
                "recorded_processor_id": 100,
                "num_channels": num_channels,
                "channels": [
                    {
                        "channel_name": f"CH{c + 1}",
                        "description": "headstage data channel",
                        "identifier": "genericdata.continuous",
                        "history": "Acquisition Board",
                        "bit_volts": bit_volts,
                        "units": "uV",
                    }
                    for c in range(num_channels)
                ],
            }
        ],
        "events": [],
        "spikes": [],
    }
    (recording_folder / "structure.oebin").write_text(json.dumps(structure, indent=2))
    return recording_folder / "structure.oebin"


def _write_neuroscope(dat_path: Path, traces: np.ndarray, sampling_frequency_hz: float, voltage_range_V: float,
                      amplification: float) -> Path:
    traces.astype("<i2").tofile(dat_path)
    channels = "".join(f'<channel skip="0">{c}</channel>' for c in range(traces.shape[1]))
    dat_path.with_suffix(".xml").write_text(
        "<?xml version='1.0'?>\n"
        '<parameters version="1.0">\n'
        "  <acquisitionSystem>\n"
        "    <nBits>16</nBits>\n"
        f"    <nChannels>{traces.shape[1]}</nChannels>\n"
        f"    <samplingRate>{sampling_frequency_hz:g}</samplingRate>\n"
        f"    <voltageRange>{voltage_range_V:g}</voltageRange>\n"
        f"    <amplification>{amplification:g}</amplification>\n"
        "    <offset>0</offset>\n"
        "  </acquisitionSystem>\n"
        f"  <anatomicalDescription><channelGroups><group>{channels}</group></channelGroups></anatomicalDescription>\n"
        "</parameters>\n"
    )
    return dat_path


def _numpy_recording(traces, sampling_frequency_hz, gain_to_uV=0.195):
    from spikeinterface.core import NumpyRecording

    recording = NumpyRecording(traces, sampling_frequency=sampling_frequency_hz)
    recording.set_channel_gains(gain_to_uV)
    recording.set_channel_offsets(0.0)
    return recording


# --------------------------------------------------------------------------------------------------
# Round trips
# --------------------------------------------------------------------------------------------------


def test_nix_round_trip(tmp_path):
    traces = _random_traces(seed=1)
    file_path = tmp_path / "recording.nix"
    _write_nix(file_path, traces, SAMPLING_FREQUENCY_HZ)
    for recording in _load_both_ways(file_path, "nix"):
        _assert_round_trip(recording, traces, SAMPLING_FREQUENCY_HZ, gains_to_uV=np.full(NUM_CHANNELS, 1000.0))


def test_spikeglx_round_trip(tmp_path):
    traces = _random_traces(seed=2)
    range_max_V = 5.0
    bin_path = _write_spikeglx_nidq(tmp_path / "spikeglx", traces, SAMPLING_FREQUENCY_HZ, range_max_V)
    gains_to_uV = np.full(NUM_CHANNELS, range_max_V / 32768 * 1e6)
    # the folder, the .bin file and the .meta file (the stream is then selected from the meta)
    for path in (bin_path.parent, bin_path, bin_path.with_suffix(".meta")):
        for recording in _load_both_ways(path, "spikeglx"):
            _assert_round_trip(recording, traces, SAMPLING_FREQUENCY_HZ, gains_to_uV)
            assert recording.stream_id == "nidq"

    import spikeinterface.extractors as se

    direct = se.read_spikeglx(bin_path.parent, stream_id="nidq")
    np.testing.assert_array_equal(direct.get_traces(), traces)


def test_openephys_binary_round_trip(tmp_path):
    traces = _random_traces(seed=3)
    bit_volts = 0.195
    oebin_path = _write_openephys_binary(tmp_path / "openephys", traces, SAMPLING_FREQUENCY_HZ, bit_volts)
    for path in (tmp_path / "openephys", oebin_path):
        for recording in _load_both_ways(path, "openephysbinary"):
            _assert_round_trip(recording, traces, SAMPLING_FREQUENCY_HZ, np.full(NUM_CHANNELS, bit_volts))
    # the generic "openephys" name picks binary from the folder contents
    _assert_round_trip(load_recording(tmp_path / "openephys", format="openephys"), traces, SAMPLING_FREQUENCY_HZ)


def test_neuroscope_round_trip(tmp_path):
    traces = _random_traces(seed=4)
    voltage_range_V, amplification = 20.0, 1000.0
    dat_path = _write_neuroscope(
        tmp_path / "session.dat", traces, SAMPLING_FREQUENCY_HZ, voltage_range_V, amplification
    )
    # Neo: gain in mV = range_V * 1000 / 2**16 / amplification
    gains_to_uV = np.full(NUM_CHANNELS, voltage_range_V * 1e6 / 2**16 / amplification)
    for path in (dat_path, dat_path.with_suffix(".xml"), tmp_path):
        for recording in _load_both_ways(path, "neuroscope"):
            _assert_round_trip(recording, traces, SAMPLING_FREQUENCY_HZ, gains_to_uV)


def test_spikeinterface_binary_folder_round_trip(tmp_path):
    traces = _random_traces(seed=5)
    _numpy_recording(traces, SAMPLING_FREQUENCY_HZ).save(folder=tmp_path / "saved", format="binary", verbose=False)
    folder = tmp_path / "saved"
    assert guess_format(folder) == "si"
    for recording in (
        load_recording(folder),
        load_recording(folder, format="si"),
        load_recording(folder, format="binary"),
        load_recording(folder, format="binaryfolder"),
        load_recording(folder / "si_folder.json"),
    ):
        _assert_round_trip(recording, traces, SAMPLING_FREQUENCY_HZ, np.full(NUM_CHANNELS, 0.195))


def test_headerless_binary_round_trip(tmp_path):
    traces = _random_traces(seed=6)
    file_path = tmp_path / "traces.raw"
    traces.tofile(file_path)
    binary_kwargs = dict(sampling_frequency=SAMPLING_FREQUENCY_HZ, num_channels=NUM_CHANNELS, dtype="int16")
    for recording in _load_both_ways(file_path, "binary", **binary_kwargs):
        _assert_round_trip(recording, traces, SAMPLING_FREQUENCY_HZ)
    with pytest.raises(ValueError, match="sampling_frequency") as error:
        load_recording(file_path)
    assert "num_channels" in str(error.value) and "dtype" in str(error.value)


def test_zarr_round_trip(tmp_path):
    traces = _random_traces(seed=7)
    folder = tmp_path / "saved.zarr"
    _numpy_recording(traces, SAMPLING_FREQUENCY_HZ).save(folder=folder, format="zarr", verbose=False)
    for recording in _load_both_ways(folder, "zarr"):
        _assert_round_trip(recording, traces, SAMPLING_FREQUENCY_HZ, np.full(NUM_CHANNELS, 0.195))


def test_vqc_container_round_trip(tmp_path):
    assert "vqc" in supported_formats()
    assert guess_format(tmp_path / "not_written_yet.vqc") == "vqc"
    try:
        from spikeinterface_vqcompress.recording import write_compressed
    except ImportError:
        pytest.skip("spikeinterface_vqcompress.recording is not available")
    traces = _random_traces(seed=8)
    file_path = tmp_path / "recording.vqc"
    write_compressed(_numpy_recording(traces, SAMPLING_FREQUENCY_HZ), file_path, codec="flac")
    for recording in _load_both_ways(file_path, "vqc"):
        _assert_round_trip(recording, traces, SAMPLING_FREQUENCY_HZ, np.full(NUM_CHANNELS, 0.195))


# --------------------------------------------------------------------------------------------------
# Real data
# --------------------------------------------------------------------------------------------------


def test_real_openephys_legacy_recording():
    if not OPENEPHYS_LEGACY_FOLDER.is_dir():
        pytest.skip(f"{OPENEPHYS_LEGACY_FOLDER} is absent")
    import spikeinterface.extractors as se

    assert guess_format(OPENEPHYS_LEGACY_FOLDER) == "openephyslegacy"
    recording = load_recording(OPENEPHYS_LEGACY_FOLDER)
    assert recording.get_num_channels() == 16
    assert recording.get_sampling_frequency() == 40000.0
    assert recording.get_total_duration() == pytest.approx(3.3, abs=0.1)

    direct = se.read_openephys(OPENEPHYS_LEGACY_FOLDER)
    assert type(recording) is type(direct)
    np.testing.assert_array_equal(recording.channel_ids, direct.channel_ids)
    np.testing.assert_array_equal(recording.get_channel_gains(), direct.get_channel_gains())
    np.testing.assert_array_equal(recording.get_traces(), direct.get_traces())

    one_file = next(OPENEPHYS_LEGACY_FOLDER.glob("*.continuous"))
    by_file = load_recording(one_file, format="openephys_legacy")
    assert by_file.get_num_channels() == 16


# --------------------------------------------------------------------------------------------------
# Errors and the table
# --------------------------------------------------------------------------------------------------


def test_unknown_format_name(tmp_path):
    file_path = tmp_path / "traces.raw"
    _random_traces(100).tofile(file_path)
    with pytest.raises(ValueError) as error:
        load_recording(file_path, format="not-a-format")
    message = str(error.value)
    assert "not-a-format" in message and str(file_path) in message and "format=" in message
    assert all(name in message for name in ("spikeglx", "nix", "zarr", "vqc", "binary"))


def test_unguessable_path(tmp_path):
    file_path = tmp_path / "mystery.qwerty"
    file_path.write_bytes(b"\x00" * 64)
    folder = tmp_path / "empty_folder"
    folder.mkdir()
    for path in (file_path, folder):
        assert guess_format(path) is None
        with pytest.raises(ValueError) as error:
            load_recording(path)
        message = str(error.value)
        assert str(path) in message and "could not guess" in message.lower() and "format=" in message
        assert all(name in message for name in ("openephyslegacy", "neuroscope", "mearec", "nwb", "si"))


def test_missing_path(tmp_path):
    missing = tmp_path / "does_not_exist.nix"
    with pytest.raises(FileNotFoundError, match="does_not_exist.nix"):
        load_recording(missing)
    with pytest.raises(FileNotFoundError, match="does_not_exist.nix"):
        load_recording(missing, format="nix")


def test_supported_formats_and_table():
    names = supported_formats()
    assert names == sorted(names)
    expected = ("spikeglx", "openephysbinary", "openephyslegacy", "openephys", "nix", "neuroscope", "intan")
    expected += ("blackrock", "binary", "zarr", "nwb", "mearec", "si", "vqc")
    for name in expected:
        assert name in names
    assert "numpy" not in names
    assert {rule.format_name for rule in FORMAT_GUESSING_RULES} <= set(names)


def test_hdf5_sniffing(tmp_path):
    import h5py

    mearec_like = tmp_path / "simulated.h5"
    with h5py.File(mearec_like, "w") as file:
        file.create_dataset("recordings", data=np.zeros((2, 2)))
        file.create_group("spiketrains")
        file.create_dataset("channel_positions", data=np.zeros((2, 3)))
    assert guess_format(mearec_like) == "mearec"

    nwb_like = tmp_path / "session.h5"
    with h5py.File(nwb_like, "w") as file:
        file.attrs["nwb_version"] = "2.7.0"
    assert guess_format(nwb_like) == "nwb"

    plain = tmp_path / "other.h5"
    with h5py.File(plain, "w") as file:
        file.create_dataset("x", data=np.zeros(3))
    assert guess_format(plain) is None


def test_neo_fallback_and_foreign_json(tmp_path):
    (tmp_path / "session.rhd").write_bytes(b"")
    assert guess_format(tmp_path / "session.rhd") == "intan"  # from Neo's extension table
    foreign_json = tmp_path / "info.json"
    foreign_json.write_text('{"sampling_rate": 15000}')
    assert guess_format(foreign_json) != "si"  # (Neo's table maps any .json to NeuroNexus)
