"""Codecs, the container and CompressedRecording: round trips, damage detection, laziness, provenance."""

import json
import subprocess
import sys
import zlib

import numpy as np
import pytest
import spikeinterface as si
import spikeinterface.core as sc

import spikeinterface_vqcompress as vq
from spikeinterface_vqcompress.core.container import ContainerReader, ContainerWriter, FORMAT_VERSION
from spikeinterface_vqcompress.core.errors import CorruptDataError

LOSSLESS = [("zstd", {}), ("flac", {}), ("flac", {"channel_chunk_size": 1}), ("wavpack", {}), ("bit-truncation", {"num_bits": 0})]
LOSSY = [("wavpack", {"bps": 2.25}), ("bit-truncation", {"num_bits": 3})]


@pytest.fixture(scope="module")
def recording(tmp_path_factory):
    """A small int16 ground-truth-like recording with spikes, a probe and gains, saved to binary."""
    rec, _ = sc.generate_ground_truth_recording(durations=[3.0, 1.3], num_channels=7, num_units=4, seed=3)
    rec = sc.scale_to_int16(rec) if hasattr(sc, "scale_to_int16") else rec
    rec = rec.astype("int16") if rec.get_dtype() != np.int16 else rec
    return rec.save(folder=tmp_path_factory.mktemp("rec") / "binary", progress_bar=False)


def _all_traces(recording):
    return [recording.get_traces(segment_index=index) for index in range(recording.get_num_segments())]


@pytest.mark.parametrize("name,params", LOSSLESS)
def test_lossless_codecs_are_bit_exact(recording, name, params):
    compressed = vq.compress(recording, name, progress_bar=False, **params)
    assert compressed.codec.lossless
    for original, decoded in zip(_all_traces(recording), _all_traces(compressed)):
        assert decoded.dtype == np.int16
        np.testing.assert_array_equal(decoded, original)
    assert compressed.compression_ratio > 1.0
    # the ratio counts the whole container, header and index included
    assert compressed.encoded_nbytes == len(compressed.get_compressed_bytes())
    assert compressed.compression_ratio == pytest.approx(compressed.raw_nbytes / compressed.encoded_nbytes)


@pytest.mark.parametrize("name,params", LOSSY)
def test_lossy_codecs_have_bounded_error(recording, name, params):
    compressed = vq.compress(recording, name, progress_bar=False, **params)
    assert not compressed.codec.lossless
    original = recording.get_traces(segment_index=0).astype(int)
    decoded = compressed.get_traces(segment_index=0).astype(int)
    error = np.abs(decoded - original)
    assert error.max() > 0
    if name == "bit-truncation":
        assert error.max() <= compressed.codec.max_error
    lossless = vq.compress(recording, "wavpack", progress_bar=False)
    assert compressed.encoded_nbytes < lossless.encoded_nbytes


@pytest.mark.parametrize("chunk_duration_s", [0.25, 1.0, 10.0])
def test_get_traces_is_chunk_invariant(recording, chunk_duration_s):
    compressed = vq.compress(recording, "flac", chunk_duration_s=chunk_duration_s, progress_bar=False)
    full = compressed.get_traces(segment_index=0)
    rng = np.random.default_rng(0)
    num_samples = recording.get_num_samples(0)
    for _ in range(20):
        start, end = sorted(rng.integers(0, num_samples, size=2))
        np.testing.assert_array_equal(compressed.get_traces(segment_index=0, start_frame=start, end_frame=end), full[start:end])
    np.testing.assert_array_equal(compressed.get_traces(segment_index=0, channel_ids=recording.channel_ids[[4, 1]]), full[:, [4, 1]])
    # the same data read through SpikeInterface's own chunking
    pieces = [compressed.get_traces(segment_index=0, start_frame=start, end_frame=min(start + 777, num_samples)) for start in range(0, num_samples, 777)]
    np.testing.assert_array_equal(np.concatenate(pieces), full)


def test_parallel_encoding_gives_identical_bytes(recording, tmp_path):
    serial = vq.compress(recording, "wavpack", bps=3.0, n_jobs=1, progress_bar=False)
    parallel = vq.compress(recording, "wavpack", bps=3.0, n_jobs=2, progress_bar=False)
    assert serial.get_compressed_bytes() == parallel.get_compressed_bytes()


def test_reads_only_the_chunks_it_needs(recording, tmp_path):
    path = tmp_path / "rec.vqc"
    container = vq.write_compressed(recording, path, codec="flac", chunk_duration_s=0.5, progress_bar=False)
    reader = container._reader
    decoded = []
    original_decode = reader.decode_chunk

    def counting_decode(segment_index, chunk_index):
        decoded.append((segment_index, chunk_index))
        return original_decode(segment_index, chunk_index)

    reader.decode_chunk = counting_decode
    sampling_frequency = recording.sampling_frequency
    container.get_traces(segment_index=0, start_frame=int(1.1 * sampling_frequency), end_frame=int(1.4 * sampling_frequency))
    assert decoded == [(0, 2)]


def test_file_round_trip_keeps_metadata(recording, tmp_path):
    path = tmp_path / "rec.vqc"
    container = vq.write_compressed(recording, path, codec="wavpack", progress_bar=False)
    assert path.is_file() and container.encoded_nbytes == path.stat().st_size
    reopened = vq.read_compressed(path)
    assert reopened.get_num_segments() == 2
    assert list(reopened.channel_ids) == list(recording.channel_ids)
    assert reopened.sampling_frequency == recording.sampling_frequency
    np.testing.assert_allclose(reopened.get_channel_gains(), recording.get_channel_gains())
    np.testing.assert_allclose(reopened.get_channel_locations(), recording.get_channel_locations())
    for original, decoded in zip(_all_traces(recording), _all_traces(reopened)):
        np.testing.assert_array_equal(decoded, original)
    header = reopened.container_header
    assert header["codec"] == {"id": "wavpack", "level": 2, "bps": None}
    assert header["dtype"] == "int16" and header["segments"][1]["num_samples"] == recording.get_num_samples(1)


def test_flipped_bit_anywhere_is_detected(recording, tmp_path):
    path = tmp_path / "rec.vqc"
    vq.write_compressed(recording, path, codec="flac", chunk_duration_s=1.0, progress_bar=False)
    data = bytearray(path.read_bytes())
    rng = np.random.default_rng(1)
    positions = list(rng.integers(0, len(data), size=40)) + [0, 9, 20, len(data) - 1, len(data) // 2]
    for position in positions:
        for bit in (0, 5):
            damaged = bytearray(data)
            damaged[position] ^= 1 << bit
            with pytest.raises(CorruptDataError):
                reader = ContainerReader(bytes(damaged))
                reader.verify()


def test_damaged_chunk_gives_clear_error_on_read(recording, tmp_path):
    path = tmp_path / "rec.vqc"
    vq.write_compressed(recording, path, codec="flac", progress_bar=False)
    reader = ContainerReader(path)
    start, stop, offset, nbytes, crc = reader.chunks[0][1]
    data = bytearray(path.read_bytes())
    data[offset + nbytes // 2] ^= 0xFF
    path.write_bytes(bytes(data))
    damaged = vq.read_compressed(path)  # header and index are intact: opening works
    with pytest.raises(CorruptDataError, match="CRC mismatch in chunk 1 of segment 0"):
        damaged.get_traces(segment_index=0)
    # chunks that are intact still decode
    assert damaged.get_traces(segment_index=0, start_frame=0, end_frame=10).shape == (10, 7)


def test_truncated_and_foreign_files_are_rejected(recording, tmp_path):
    path = tmp_path / "rec.vqc"
    vq.write_compressed(recording, path, codec="zstd", progress_bar=False)
    data = path.read_bytes()
    for length in (0, 10, 100, len(data) // 2, len(data) - 1):
        with pytest.raises(CorruptDataError):
            ContainerReader(data[:length])
    with pytest.raises(CorruptDataError, match="not a vqcompress container"):
        ContainerReader(b"RIFF" + data[4:])
    with pytest.raises(FileNotFoundError):
        vq.read_compressed(tmp_path / "missing.vqc")


def test_newer_version_and_unknown_codec_are_explained(tmp_path):
    header = {"codec": {"id": "zstd", "level": 1}, "num_channels": 1, "channel_ids": [0], "dtype": "int16",
              "sampling_frequency": 1000.0, "segments": [{"num_samples": 4}]}
    codec = vq.get_codec("zstd", level=1)
    writer = ContainerWriter(header)
    writer.write_chunk(0, 0, 0, 4, codec.encode(np.arange(4, dtype=np.int16)[:, None]))
    data = bytearray(writer.close())
    np.testing.assert_array_equal(ContainerReader(bytes(data)).get_traces()[:, 0], np.arange(4))
    newer = bytearray(data)
    newer[8:10] = (FORMAT_VERSION[0] + 1).to_bytes(2, "little")
    with pytest.raises(CorruptDataError, match="newer than this package reads"):
        ContainerReader(bytes(newer))
    header_unknown = dict(header, codec={"id": "no-such-codec"})
    writer = ContainerWriter(header_unknown)
    writer.write_chunk(0, 0, 0, 4, b"xx")
    with pytest.raises(ValueError, match="unknown codec 'no-such-codec'"):
        ContainerReader(writer.close())


def test_failed_write_leaves_previous_file_intact(recording, tmp_path):
    path = tmp_path / "rec.vqc"
    vq.write_compressed(recording, path, codec="flac", progress_bar=False)
    before = path.read_bytes()
    float_recording = recording.astype("float32")
    with pytest.raises(TypeError, match="encodes int16"):
        vq.write_compressed(float_recording, path, codec="flac", progress_bar=False)
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["rec.vqc"]


def test_bad_input_errors_name_the_fix(recording):
    with pytest.raises(ValueError, match="unknown codec 'nope'.*Registered codecs"):
        vq.compress(recording, "nope")
    with pytest.raises(TypeError, match="scale_to_int16"):
        vq.compress(recording.astype("float32"), "wavpack", progress_bar=False)
    nan_traces = np.zeros((100, 2), dtype="float32")
    nan_traces[5, 1] = np.nan
    with pytest.raises(ValueError, match="NaN"):
        vq.get_codec("zstd").encode(nan_traces)
    with pytest.raises(ValueError, match="bps >= 2.0"):
        vq.get_codec("wavpack", bps=1.0)


def test_provenance_reloads_in_memory_and_in_a_fresh_process(recording, tmp_path):
    compressed = vq.compress(recording, "wavpack", bps=2.5, progress_bar=False)
    reloaded = si.load(compressed.to_dict())
    np.testing.assert_array_equal(reloaded.get_traces(segment_index=1), compressed.get_traces(segment_index=1))
    json_path = tmp_path / "compressed.json"
    compressed.dump_to_json(json_path)
    file_based = vq.write_compressed(recording, tmp_path / "rec.vqc", codec="flac", progress_bar=False)
    file_json = tmp_path / "container.json"
    file_based.dump_to_json(file_json)
    expected = tmp_path / "expected.npy"
    np.save(expected, compressed.get_traces(segment_index=0))
    script = f"""
import numpy as np, spikeinterface as si
rec = si.load({str(json_path)!r})
assert type(rec).__name__ == "CompressedRecording", type(rec)
np.testing.assert_array_equal(rec.get_traces(segment_index=0), np.load({str(expected)!r}))
container = si.load({str(file_json)!r})
assert type(container).__name__ == "ContainerRecording"
assert container.get_num_samples(0) == rec.get_num_samples(0)
print("ok")
"""
    # a fresh interpreter that never imported the package: SpikeInterface imports it by dotted path
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300)
    assert output.returncode == 0, output.stderr
    assert output.stdout.strip().endswith("ok")


def test_pickled_copy_and_reload_decode_without_encoding_again(recording):
    """What worker processes receive (a sorter's, a job's): the encoded bytes, not a recipe to encode."""
    import pickle

    from spikeinterface_vqcompress import recording as recording_module

    recording_module.forget_in_memory_containers()  # earlier tests encoded this recording with this codec
    compressed = vq.compress(recording, "wavpack", bps=2.5, progress_bar=False)
    assert compressed.encode_time_s > 0
    copy = pickle.loads(pickle.dumps(compressed))
    assert copy.encode_time_s == 0.0 and copy.encoded_nbytes == compressed.encoded_nbytes
    np.testing.assert_array_equal(copy.get_traces(segment_index=1), compressed.get_traces(segment_index=1))
    assert "container" not in compressed.to_dict()["kwargs"] and "container" not in copy.to_dict()["kwargs"]
    # a reload from the provenance in this process (run_sorter dumps to JSON and loads back) decodes the
    # same in-memory bytes; elsewhere, or once forgotten, it rebuilds them from the parent
    reloaded = si.load(compressed.to_dict())
    assert reloaded.encode_time_s == 0.0 and reloaded.encoded_nbytes == compressed.encoded_nbytes
    recording_module.forget_in_memory_containers()
    assert si.load(compressed.to_dict()).encode_time_s > 0
    other = vq.compress(recording, "flac", progress_bar=False)
    with pytest.raises(ValueError, match="not this recording encoded with this codec"):
        vq.CompressedRecording(recording, codec="wavpack", codec_params={"bps": 2.5}, container=other._reader._buffer)


def test_reuses_matching_file_and_reencodes_on_change(recording, tmp_path):
    path = tmp_path / "cached.vqc"
    first = vq.compress(recording, "flac", file_path=path, progress_bar=False)
    assert first.encode_time_s > 0
    second = vq.compress(recording, "flac", file_path=path, progress_bar=False)
    assert second.encode_time_s == 0.0  # reused
    third = vq.compress(recording, "wavpack", file_path=path, progress_bar=False)
    assert third.encode_time_s > 0 and third.container_header["codec"]["id"] == "wavpack"


def test_registered_in_preprocessing_pipeline(recording, tmp_path):
    from spikeinterface.preprocessing import apply_preprocessing_pipeline
    from spikeinterface.preprocessing.pipeline import get_preprocessing_list_from_file

    compressed = apply_preprocessing_pipeline(recording, [{"name": "compress", "params": {"codec": "bit-truncation", "num_bits": 2}}])
    assert type(compressed).__name__ == "CompressedRecording"
    assert np.abs(compressed.get_traces(segment_index=0).astype(int) - recording.get_traces(segment_index=0)).max() <= 2
    # SpikeInterface recovers the step from a saved provenance and replays it
    provenance = tmp_path / "provenance.json"
    compressed.dump_to_json(provenance)
    steps = get_preprocessing_list_from_file(provenance)
    replayed = apply_preprocessing_pipeline(recording, steps)
    np.testing.assert_array_equal(replayed.get_traces(segment_index=1), compressed.get_traces(segment_index=1))


def test_registry_lists_baselines():
    names = vq.available_codecs()
    for name in ("zstd", "flac", "wavpack", "bit-truncation"):
        assert name in names
    config = vq.get_codec("wavpack", bps=2.25).get_config()
    assert json.loads(json.dumps(config)) == config
    assert vq.get_codec(config).get_config() == config
    profile = vq.get_codec("flac").hardware_profile(32, 30000.0)
    assert profile.operations_per_sample and profile.algorithmic_latency_samples > 0


def test_header_crc_covers_version_and_length():
    header = {"codec": {"id": "zstd", "level": 1}, "num_channels": 1, "channel_ids": [0], "dtype": "int16",
              "sampling_frequency": 1000.0, "segments": [{"num_samples": 4}]}
    writer = ContainerWriter(header)
    writer.write_chunk(0, 0, 0, 4, vq.get_codec("zstd", level=1).encode(np.zeros((4, 1), dtype=np.int16)))
    data = bytearray(writer.close())
    header_length = int.from_bytes(data[12:16], "little")
    stored_crc = int.from_bytes(data[16 + header_length : 20 + header_length], "little")
    assert stored_crc == zlib.crc32(bytes(data[8 : 16 + header_length]))


def test_header_is_deflated_and_format_1_still_reads(monkeypatch):
    """Format 2.0 deflates the JSON header against a frozen dictionary (on a single-channel N1-like
    file the JSON was ~1 % of the file); 1.0 files (plain JSON) still read; a damaged or oversized
    deflated header is refused."""
    import json
    import struct
    import zlib

    from spikeinterface_vqcompress.core import container

    header = {"adc_bits": None, "annotations": {"is_filtered": False}, "channel_ids": [0], "chunk_num_samples": 195310,
              "codec": {"id": "broadband", "lpc_order": 32, "max_error": 0, "stages": None}, "dtype": "int16",
              "gains_to_uV": None, "lossless": True, "model_sha256": None, "num_channels": 1, "offsets_to_uV": None,
              "package": "spikeinterface-vqcompress", "package_version": "0.1.0", "probe": None,
              "sampling_frequency": 19531.0, "segments": [{"num_samples": 98721, "t_start": 0.0}],
              "source_fingerprint": "f3167025211772cfc34d788ae385b50ec37902d97fb6d58a30719930dab94b95"}
    encoded = container.encode_header(header)
    assert len(encoded) < 0.2 * len(json.dumps(header, sort_keys=True))
    assert container.decode_header(encoded, 2) == header
    payload = vq.get_codec("broadband").encode(np.arange(98721, dtype=np.int16)[:, None] % 7)
    writer = ContainerWriter(header)
    writer.write_chunk(0, 0, 0, 98721, payload)
    data = writer.close()
    reader = ContainerReader(data)
    assert reader.format_version == FORMAT_VERSION == (2, 0)
    assert reader.nbytes - len(payload) < 200  # everything besides the payload
    # the same container in format 1.0: plain JSON header
    text = json.dumps(header, sort_keys=True).encode()
    preamble = struct.pack("<8sHHI", container.MAGIC, 1, 0, len(text))
    old = bytearray(preamble + text + struct.pack("<I", zlib.crc32(preamble[8:] + text)))
    offset = len(old)
    old += payload
    index = struct.pack("<IIQIQQII", 0, 0, 0, 98721, offset, len(payload), zlib.crc32(payload), 0)
    old += index + struct.pack("<QQII8s", offset + len(payload), 1, zlib.crc32(index), 0, container.END_MAGIC)
    old_reader = ContainerReader(bytes(old))
    assert old_reader.format_version == (1, 0) and old_reader.header == header
    np.testing.assert_array_equal(old_reader.get_traces(), reader.get_traces())
    with pytest.raises(CorruptDataError, match="does not inflate|truncated"):
        container.decode_header(encoded[: len(encoded) // 2], 2)
    with pytest.raises(CorruptDataError, match="does not inflate"):
        container.decode_header(b"\xff" * 40, 2)
    with pytest.raises(CorruptDataError, match="not valid JSON"):
        container.decode_header(text[:-1], 1)
    monkeypatch.setattr(container, "MAX_HEADER_NBYTES", 100)  # a header that inflates past the limit
    with pytest.raises(CorruptDataError, match="too large"):
        container.decode_header(encoded, 2)
