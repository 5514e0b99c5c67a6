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


def _stated_bound(codec):
    """The largest error per sample the codec promises (None: lossy without a bound)."""
    if codec.lossless:
        return 0
    bound = getattr(codec, "max_error", None)
    return codec.get_config().get("max_error") if bound is None else bound


def _chunk(codec):
    """The test chunk: 3200 x 4 samples, 6400 for vqcae-hybrid (which codes 8000-sample segments)."""
    return SOURCE[:6400 if codec.codec_id == "vqcae-hybrid" else 3200]


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
    chunk = _chunk(codec)
    num_samples = len(chunk)
    data = codec.encode(chunk)
    assert isinstance(data, bytes) and 0 < len(data)
    decoded = codec.decode(data, num_samples, chunk.shape[1], chunk.dtype)
    assert decoded.shape == chunk.shape and decoded.dtype == chunk.dtype
    error = np.abs(decoded.astype(np.int64) - chunk.astype(np.int64)).max()
    if codec.lossless:
        assert error == 0
    else:
        assert len(data) < chunk.nbytes
        bound = _stated_bound(codec)
        if bound is not None:  # near-lossless: the promised bound per sample
            assert 0 < error <= bound
    assert codec.encode(chunk) == data  # deterministic
    np.testing.assert_array_equal(codec.decode(data, num_samples, chunk.shape[1], chunk.dtype), decoded)


@pytest.mark.parametrize("file_name", POINTS)
def test_truncated_bytes_raise_corrupt_data_error(file_name):
    codec = _codec_of(file_name)
    chunk = _chunk(codec)
    num_samples = len(chunk)
    data = codec.encode(chunk)
    for cut in (0, 3, len(data) // 3, len(data) // 2, len(data) - 2):
        with pytest.raises(CorruptDataError):
            codec.decode(data[:cut], num_samples, chunk.shape[1], chunk.dtype)


# flac_numcodecs' FlacNumpyDecoder lacks the ``_event`` that pyflac's error callback sets: on damaged FLAC
# frames that callback fails inside libFLAC (printed, ignored) before our decoder raises CorruptDataError.
@pytest.mark.filterwarnings("ignore::pytest.PytestUnraisableExceptionWarning")
@pytest.mark.parametrize("file_name", POINTS)
def test_flipped_bytes_raise_corrupt_data_error_or_decode_to_the_chunk_shape(file_name):
    """Inside a codec a flip may leave a well-formed chunk (the container's CRC catches those), but
    a decoder never answers damage with an unrelated exception or an array of another shape."""
    codec = _codec_of(file_name)
    chunk = _chunk(codec)
    data = codec.encode(chunk)
    for position in sorted(set(np.linspace(0, len(data) - 1, 10).astype(int).tolist())):
        for mask in (0x01, 0xFF):
            damaged = bytearray(data)
            damaged[position] ^= mask
            try:
                decoded = codec.decode(bytes(damaged), len(chunk), chunk.shape[1], chunk.dtype)
            except CorruptDataError:
                continue
            assert decoded.shape == chunk.shape and decoded.dtype == chunk.dtype, (position, mask)


@pytest.mark.parametrize("file_name", POINTS)
def test_any_memory_layout_encodes_to_the_same_bytes(file_name):
    codec = _codec_of(file_name)
    chunk = _chunk(codec)
    data = codec.encode(chunk)
    assert codec.encode(np.asfortranarray(chunk)) == data
    assert codec.encode(np.repeat(chunk, 2, axis=0)[::2]) == data  # strided rows
    assert codec.encode(np.concatenate([chunk, chunk[:, :1]], axis=1)[:, :-1]) == data  # a column slice


@pytest.mark.parametrize("file_name", POINTS)
def test_short_chunks_round_trip(file_name):
    """A container's last chunk is usually shorter than the others, down to one sample (libwavpack
    refuses blocks of a few tens of samples: the wavpack codec stores those raw)."""
    codec = _codec_of(file_name)
    bound = _stated_bound(codec)
    for num_samples in (1, 7, 123):
        chunk = SOURCE[:num_samples]
        decoded = codec.decode(codec.encode(chunk), num_samples, chunk.shape[1], chunk.dtype)
        assert decoded.shape == chunk.shape and decoded.dtype == chunk.dtype, num_samples
        if bound is not None:
            assert np.abs(decoded.astype(np.int64) - chunk).max() <= bound, num_samples


@pytest.mark.parametrize("file_name", POINTS)
def test_flipped_bytes_in_a_container_raise_corrupt_data_error(file_name):
    """A flip that leaves a chunk well-formed can decode to other samples inside the codec; the
    container's per-chunk CRC is what guarantees that damage is never a silent wrong answer."""
    original = (FIXTURES / file_name).read_bytes()
    reader = ContainerReader(FIXTURES / file_name)
    reader.get_traces()  # the undamaged file decodes
    # magic, version, header length, header, footer, index; then spread over header, payloads and index
    positions = {0, 9, 12, 17, len(original) - 1, len(original) - 40}
    positions |= set(np.linspace(20, len(original) - 1, 12).astype(int).tolist())
    for position in sorted(positions):
        for mask in (0x01, 0x5A):
            damaged = bytearray(original)
            damaged[position] ^= mask
            with pytest.raises(CorruptDataError):
                ContainerReader(bytes(damaged)).get_traces()
    with pytest.raises(CorruptDataError):
        ContainerReader(original[:-1])


@pytest.mark.parametrize("file_name", POINTS)
def test_committed_fixture_decodes_as_committed(file_name):
    entry = MANIFEST["files"][file_name]
    reader = ContainerReader(FIXTURES / file_name)
    # the header records the config the fixture was written with (plus the resolved parameters)
    assert {key: reader.header["codec"].get(key) for key in entry["codec"]} == entry["codec"]
    decoded = reader.get_traces()
    assert decoded.shape == tuple(MANIFEST["shape"]) and decoded.dtype == np.int16
    if entry["integer_decoder"]:
        assert hashlib.sha256(decoded.tobytes()).hexdigest() == entry["decoded_sha256"]
    else:
        expected = np.load(FIXTURES / entry["decoded_file"])
        assert np.abs(decoded.astype(np.int64) - expected.astype(np.int64)).max() <= 1
