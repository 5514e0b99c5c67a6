"""Hostile input: fuzzed containers and payloads, every single-bit flip, forged headers, killed writers."""

import json
import os
import signal
import struct
import subprocess
import sys
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import spikeinterface_vqcompress as vq
from spikeinterface_vqcompress.core.errors import CorruptDataError
from spikeinterface_vqcompress.core.container import FORMAT_VERSION, MAGIC, ContainerReader, ContainerWriter, encode_header
from spikeinterface_vqcompress.core.errors import ModelMismatchError

BASELINES = [("zstd", {}), ("flac", {}), ("wavpack", {}), ("wavpack", {"bps": 2.5}), ("bit-truncation", {"num_bits": 3}),
             ("broadband", {}), ("broadband", {"max_error": 4})]


def small_container(codec="zstd", num_samples=300, num_channels=3, chunk_num_samples=100, **params):
    rng = np.random.default_rng(0)
    traces = (rng.normal(size=(num_samples, num_channels)) * 40).astype(np.int16)
    codec = vq.get_codec(codec, **params)
    header = {"codec": codec.get_config(), "num_channels": num_channels, "channel_ids": list(range(num_channels)),
              "dtype": "int16", "sampling_frequency": 1000.0, "segments": [{"num_samples": num_samples}],
              "model_sha256": None}
    writer = ContainerWriter(header)
    for chunk_index, start in enumerate(range(0, num_samples, chunk_num_samples)):
        stop = min(start + chunk_num_samples, num_samples)
        writer.write_chunk(0, chunk_index, start, stop - start, codec.encode(traces[start:stop]))
    return writer.close(), traces


def read_all(data):
    reader = ContainerReader(data)
    return reader.get_traces(0)


def test_every_single_bit_flip_is_detected():
    data, traces = small_container("zstd", num_samples=120, num_channels=2, chunk_num_samples=60)
    np.testing.assert_array_equal(read_all(data), traces)
    assert len(data) < 2000
    undetected = []
    for position in range(len(data)):
        for bit in range(8):
            damaged = bytearray(data)
            damaged[position] ^= 1 << bit
            try:
                read_all(bytes(damaged))
            except CorruptDataError:
                continue
            undetected.append((position, bit))
    assert undetected == []


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(min_size=0, max_size=4096))
def test_random_bytes_never_crash_the_reader(data):
    with pytest.raises(CorruptDataError):
        read_all(MAGIC + data if len(data) % 2 else data)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data())
def test_mutated_containers_raise_only_our_error(draw):
    codec, params = draw.draw(st.sampled_from(BASELINES))
    data, traces = small_container(codec, **params)
    damaged = bytearray(data)
    mutation = draw.draw(st.sampled_from(["flip", "truncate", "insert", "splice"]))
    if mutation == "flip":
        for position in draw.draw(st.lists(st.integers(0, len(data) - 1), min_size=1, max_size=8)):
            damaged[position] ^= draw.draw(st.integers(1, 255))
    elif mutation == "truncate":
        damaged = damaged[: draw.draw(st.integers(0, len(data) - 1))]
    elif mutation == "insert":
        position = draw.draw(st.integers(0, len(data)))
        damaged[position:position] = draw.draw(st.binary(min_size=1, max_size=64))
    else:
        start = draw.draw(st.integers(0, len(data) - 1))
        damaged[start:] = draw.draw(st.binary(max_size=512))
    if bytes(damaged) == data:
        return
    with pytest.raises(CorruptDataError):
        read_all(bytes(damaged))


def _forge(header: dict, payloads=(b"",), index_records=None, num_chunks=None):
    """A container whose header and index CRCs are valid but whose contents lie."""
    header_bytes = encode_header(header)
    preamble = struct.pack("<8sHHI", MAGIC, *FORMAT_VERSION, len(header_bytes))
    body = preamble + header_bytes + struct.pack("<I", zlib.crc32(preamble[8:] + header_bytes))
    offset = len(body)
    records = []
    for chunk_index, payload in enumerate(payloads):
        records.append((0, chunk_index, 0, 1 << 31, offset, len(payload), zlib.crc32(payload), 0))
        body += payload
        offset += len(payload)
    records = index_records if index_records is not None else records
    index = b"".join(struct.pack("<IIQIQQII", *record) for record in records)
    footer = struct.pack("<QQII8s", offset, len(records) if num_chunks is None else num_chunks, zlib.crc32(index), 0, b"VQCEND\x00\x00")
    return body + index + footer


def test_forged_sizes_are_checked_before_allocating():
    header = {"codec": {"id": "zstd", "level": 1}, "num_channels": 4096, "channel_ids": list(range(4096)),
              "dtype": "int16", "sampling_frequency": 1.0, "segments": [{"num_samples": 1 << 31}]}
    # a chunk claiming 2**31 frames x 4096 channels: refused from the index, nothing decoded
    with pytest.raises(CorruptDataError, match="exceeds the decoding limit"):
        ContainerReader(_forge(header, payloads=[b"x" * 10]))
    # an index claiming 10**12 chunks in a small file
    with pytest.raises(CorruptDataError, match="inconsistent"):
        ContainerReader(_forge(header, payloads=[b"x"], num_chunks=10**12))
    # a header length larger than the file
    data = bytearray(_forge(header))
    data[12:16] = struct.pack("<I", 2**31)
    with pytest.raises(CorruptDataError, match="impossible"):
        ContainerReader(bytes(data))


def test_forged_payload_length_mismatch_is_caught_by_the_codec():
    """A payload whose CRC was forged to match still cannot yield the wrong number of samples."""
    codec = vq.get_codec("zstd", level=1)
    payload = codec.encode(np.zeros((10, 1), dtype=np.int16))  # 10 samples, container says 20
    header = {"codec": codec.get_config(), "num_channels": 1, "channel_ids": [0], "dtype": "int16",
              "sampling_frequency": 1.0, "segments": [{"num_samples": 20}]}
    writer = ContainerWriter(header)
    writer.write_chunk(0, 0, 0, 20, payload)
    with pytest.raises(CorruptDataError, match="damaged or truncated"):
        read_all(writer.close())


def test_model_hash_mismatch_is_refused():
    header = {"codec": {"id": "zstd", "level": 1}, "num_channels": 1, "channel_ids": [0], "dtype": "int16",
              "sampling_frequency": 1.0, "segments": [{"num_samples": 4}], "model_sha256": "ab" * 32}
    writer = ContainerWriter(header)
    writer.write_chunk(0, 0, 0, 4, vq.get_codec("zstd", level=1).encode(np.zeros((4, 1), dtype=np.int16)))
    with pytest.raises(ModelMismatchError, match="sha256"):
        ContainerReader(writer.close())


WRITER_SCRIPT = """
import sys, time
import numpy as np
import spikeinterface.core as sc
from spikeinterface_vqcompress.recording import encode_recording

traces = (np.random.default_rng(0).normal(size=(20000 * 20, 4)) * 30).astype("int16")
recording = sc.NumpyRecording(traces, sampling_frequency=20000.0)
read_traces = recording.get_traces

def slow_get_traces(*args, **kwargs):
    time.sleep(0.5)  # a slow source, so that the parent can kill us mid-way
    return read_traces(*args, **kwargs)

recording.get_traces = slow_get_traces  # n_jobs=1: the encoder reads through this very object
print("started", flush=True)
encode_recording(recording, "flac", file_path=sys.argv[1], chunk_duration_s=0.5, n_jobs=1, progress_bar=False)
print("finished", flush=True)
"""


@pytest.mark.parametrize("previous_file", [False, True])
def test_killed_writer_leaves_nothing_or_the_previous_file(tmp_path, previous_file):
    path = tmp_path / "out.vqc"
    if previous_file:
        rng = np.random.default_rng(1)
        import spikeinterface.core as sc

        previous = sc.NumpyRecording((rng.normal(size=(5000, 4)) * 30).astype("int16"), sampling_frequency=20000.0)
        vq.write_compressed(previous, path, codec="zstd", progress_bar=False)
        before = path.read_bytes()
    script = tmp_path / "writer.py"
    script.write_text(WRITER_SCRIPT)
    process = subprocess.Popen([sys.executable, str(script), str(path)], stdout=subprocess.PIPE, text=True)
    assert process.stdout.readline().strip() == "started"
    deadline = time.monotonic() + 120
    temporary = []
    while time.monotonic() < deadline:  # wait until a few chunks are in the temporary file
        temporary = [p for p in tmp_path.iterdir() if p.name.endswith(".tmp")]
        if temporary and temporary[0].stat().st_size > 20000:
            break
        time.sleep(0.1)
    assert temporary, "the writer should be writing to a temporary file"
    assert process.poll() is None, "the writer finished before it could be killed"
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    if previous_file:
        assert path.read_bytes() == before
        np.testing.assert_array_equal(vq.read_compressed(path).get_traces(), previous.get_traces())
    else:
        assert not path.exists()
    # the leftover temporary file is never mistaken for a container
    for leftover in tmp_path.glob("*.tmp"):
        with pytest.raises(CorruptDataError):
            ContainerReader(leftover)


def test_zero_channel_and_empty_recordings_are_refused():
    import spikeinterface.core as sc

    recording = sc.NumpyRecording(np.zeros((100, 2), dtype="int16"), sampling_frequency=1000.0)
    with pytest.raises(ValueError, match="zero channels"):
        vq.compress(recording.select_channels([]), "zstd", progress_bar=False)
    empty = sc.NumpyRecording(np.zeros((0, 2), dtype="int16"), sampling_frequency=1000.0)
    with pytest.raises(ValueError, match="no samples"):
        vq.compress(empty, "zstd", progress_bar=False)


def test_channel_subset_and_multi_segment_round_trip():
    import spikeinterface.core as sc

    rng = np.random.default_rng(2)
    segments = [(rng.normal(size=(n, 5)) * 30).astype("int16") for n in (1234, 4321)]
    recording = sc.NumpyRecording(segments, sampling_frequency=10000.0)
    subset = recording.select_channels(recording.channel_ids[[0, 3]])
    compressed = vq.compress(subset, "flac", chunk_duration_s=0.05, progress_bar=False)
    for segment_index, traces in enumerate(segments):
        np.testing.assert_array_equal(compressed.get_traces(segment_index=segment_index), traces[:, [0, 3]])


# -- committed files of every codec: the same samples on any machine, with any later version ----------
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _codec_fixtures():
    import importlib.util

    spec = importlib.util.spec_from_file_location("codec_fixtures", FIXTURES / "codec_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_committed_containers_of_every_codec_decode_the_same():
    import hashlib

    fixtures = _codec_fixtures()
    manifest = json.loads((FIXTURES / "codec_manifest.json").read_text())
    source = fixtures.fixture_input()
    assert hashlib.sha256(source.tobytes()).hexdigest() == manifest["input_sha256"]  # the input rebuilds exactly
    covered = {entry["codec"]["id"] for entry in manifest["files"].values()}
    assert covered == set(vq.available_codecs()), "add the new codec to tests/fixtures/codec_fixtures.py and rerun it"
    formats = set()
    for name, entry in manifest["files"].items():
        recording = vq.read_compressed(FIXTURES / name)
        formats.add(recording._reader.format_version)
        assert entry.get("container_format", "1.0") == ".".join(map(str, recording._reader.format_version)), name
        decoded = recording.get_traces()
        assert list(decoded.shape) == manifest["shape"], name
        assert recording.get_traces(start_frame=1000, end_frame=1100).tolist() == decoded[1000:1100].tolist(), name
        if entry["integer_decoder"]:
            assert hashlib.sha256(decoded.tobytes()).hexdigest() == entry["decoded_sha256"], name
        else:  # float32 torch layers: exact on the machine that wrote the file, within 1 LSB elsewhere
            expected = np.load(FIXTURES / entry["decoded_file"])
            difference = np.abs(decoded.astype(np.int64) - expected.astype(np.int64))
            assert difference.max() <= 1, name
            assert np.count_nonzero(difference) <= 1e-3 * difference.size, name
        if vq.get_codec(entry["codec"]).lossless:
            np.testing.assert_array_equal(decoded, source)
        else:
            assert not np.array_equal(decoded, source), name  # a lossy fixture that decodes exactly tests nothing
    assert {(1, 0), (2, 0)} <= formats, "every container format this package reads needs a committed fixture"


def test_written_files_get_the_usual_permissions(tmp_path):
    """The atomic writer's temporary file starts as 0600: the published file must follow the umask."""
    mask = os.umask(0o022)
    try:
        vq.write_compressed(_numpy_recording(), tmp_path / "out.vqc", codec="zstd", progress_bar=False)
        assert (os.stat(tmp_path / "out.vqc").st_mode & 0o777) == 0o644
    finally:
        os.umask(mask)


def _numpy_recording():
    from spikeinterface.core import NumpyRecording

    traces = (np.random.default_rng(0).normal(size=(1000, 2)) * 40).astype(np.int16)
    return NumpyRecording(traces, sampling_frequency=1000.0)


FORKED_TORCH_SCRIPT = """
import sys
import numpy as np
import torch
from spikeinterface.core import NumpyRecording

import spikeinterface_vqcompress as vq

torch.set_num_threads(2)
a = torch.randn(512, 512)
(a @ a).sum(), torch.randn(400000).exp().sum()  # the parent has run torch on two threads
traces = np.random.default_rng(0).normal(0, 60, (19531, 3)).astype(np.int16)
recording = NumpyRecording([traces], sampling_frequency=19531.0)
job = dict(n_jobs=2, mp_context="fork", progress_bar=False)
compressed = vq.compress(recording, codec="vqcae-hybrid", chunk_duration_s=0.25, **job)  # encodes in forked workers
saved = compressed.save(folder=sys.argv[1], **job)  # decodes in forked workers
assert np.array_equal(saved.get_traces(), compressed.get_traces())
print("done")
"""


def test_learned_codec_in_forked_workers_after_the_parent_ran_torch(tmp_path):
    """A forked worker whose parent already ran torch on several threads used to hang in its first torch
    operation (OpenMP is not fork-safe); the container limits torch to one thread in workers."""
    import subprocess
    import sys

    script = tmp_path / "forked.py"
    script.write_text(FORKED_TORCH_SCRIPT)
    try:
        result = subprocess.run([sys.executable, str(script), str(tmp_path / "saved")], capture_output=True, text=True,
                                timeout=240)
    except subprocess.TimeoutExpired:
        pytest.fail("encoding or decoding with a learned codec in forked workers hung")
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stdout.strip().endswith("done")
