"""The codec conformance kit (numcodecs' ``tests/common.py`` is the model): every registered codec
must pass the same checks. A new codec gets its committed fixture (``tests/fixtures/codec_fixtures.py``)
and is then checked here without a line of its own.

Each codec is configured from the header of its committed fixture container, so the learned and
probe-aware codecs (spike-cae needs channel locations and a gain) run with a complete config.
"""

import hashlib
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from spikeinterface_vqcompress.core.container import ContainerReader
from spikeinterface_vqcompress.core.errors import CorruptDataError
from spikeinterface_vqcompress.core.registry import available_codecs, get_codec, get_codec_class

FIXTURES = Path(__file__).resolve().parent / "fixtures"
MANIFEST = json.loads((FIXTURES / "codec_manifest.json").read_text())


def _fixture_input() -> np.ndarray:
    sys.path.insert(0, str(FIXTURES))
    try:
        import codec_fixtures
    finally:
        sys.path.remove(str(FIXTURES))
    return codec_fixtures.fixture_input()


SOURCE = _fixture_input()
POINTS = sorted(MANIFEST["files"])


def _codec_of(file_name: str):
    return get_codec(ContainerReader(FIXTURES / file_name).header["codec"])


def test_every_registered_codec_has_a_conformance_point():
    assert {MANIFEST["files"][name]["codec"]["id"] for name in POINTS} == set(available_codecs())


@pytest.mark.parametrize("file_name", POINTS)
def test_config_round_trip(file_name):
    codec = _codec_of(file_name)
    config = codec.get_config()
    assert config["id"] == codec.codec_id and codec.codec_id in available_codecs()
    assert json.loads(json.dumps(config)) == config  # JSON values only
    rebuilt = type(codec).from_config(config)
    assert rebuilt.get_config() == config
    assert get_codec(config).get_config() == config
    assert get_codec_class(codec.codec_id) is type(codec)


@pytest.mark.parametrize("file_name", POINTS)
def test_chunk_round_trip_exact_or_within_the_stated_bound(file_name):
    codec = _codec_of(file_name)
    num_samples = 6400 if codec.codec_id == "vqcae-hybrid" else 3200  # vqcae-hybrid codes 8000-sample segments
    chunk = SOURCE[:num_samples]
    data = codec.encode(chunk)
    assert isinstance(data, bytes) and 0 < len(data)
    decoded = codec.decode(data, num_samples, chunk.shape[1], chunk.dtype)
    assert decoded.shape == chunk.shape and decoded.dtype == chunk.dtype
    error = np.abs(decoded.astype(np.int64) - chunk.astype(np.int64)).max()
    if codec.lossless:
        assert error == 0
    else:
        assert len(data) < chunk.nbytes
        max_error = codec.get_config().get("max_error")
        if max_error is not None:  # near-lossless: the promised bound per sample
            assert error <= max_error
    assert codec.encode(chunk) == data  # deterministic
    np.testing.assert_array_equal(codec.decode(data, num_samples, chunk.shape[1], chunk.dtype), decoded)


@pytest.mark.parametrize("file_name", POINTS)
def test_truncated_bytes_raise_corrupt_data_error(file_name):
    codec = _codec_of(file_name)
    num_samples = 6400 if codec.codec_id == "vqcae-hybrid" else 3200
    chunk = SOURCE[:num_samples]
    data = codec.encode(chunk)
    for cut in (0, 3, len(data) // 2):
        with pytest.raises(CorruptDataError):
            codec.decode(data[:cut], num_samples, chunk.shape[1], chunk.dtype)


@pytest.mark.parametrize("file_name", POINTS)
def test_flipped_bytes_in_a_container_raise_corrupt_data_error(file_name):
    """A flip that leaves a chunk well-formed can decode to other samples inside the codec; the
    container's per-chunk CRC is what guarantees that damage is never a silent wrong answer."""
    original = (FIXTURES / file_name).read_bytes()
    reader = ContainerReader(FIXTURES / file_name)
    reader.get_traces()  # the undamaged file decodes
    header_end = len(original) // 4  # past the preamble and header of these small files
    for position in np.linspace(header_end, len(original) - 1, 5).astype(int):
        damaged = bytearray(original)
        damaged[position] ^= 0x5A
        with pytest.raises(CorruptDataError):
            ContainerReader(bytes(damaged)).get_traces()


@pytest.mark.parametrize("file_name", POINTS)
def test_committed_fixture_decodes_as_committed(file_name):
    entry = MANIFEST["files"][file_name]
    decoded = ContainerReader(FIXTURES / file_name).get_traces()
    if entry["integer_decoder"]:
        assert hashlib.sha256(decoded.tobytes()).hexdigest() == entry["decoded_sha256"]
    else:
        expected = np.load(FIXTURES / entry["decoded_file"])
        assert np.abs(decoded.astype(np.int64) - expected.astype(np.int64)).max() <= 1
