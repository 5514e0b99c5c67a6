"""The static rANS coder with frozen integer tables: exact round trips, sizes near the entropy,
a bitstream fixed forever, and damage detection."""

import ast
from pathlib import Path

import numpy as np
import pytest

from spikeinterface_vqcompress.core.errors import CorruptDataError
from spikeinterface_vqcompress.core.entropy import build_frequency_table, decode_symbols, encode_symbols, estimate_nbytes

PACKAGE = Path(__file__).resolve().parents[1] / "spikeinterface_vqcompress"


def test_random_tables_round_trip_exactly():
    rng = np.random.default_rng(0)
    for _ in range(60):
        num_symbols = int(rng.integers(1, 300))
        precision_bits = int(rng.integers(9, 17))
        counts = rng.integers(0, 1000, num_symbols) * (rng.random(num_symbols) < 0.7)
        frequencies = build_frequency_table(counts, precision_bits=precision_bits)
        symbols = rng.choice(num_symbols, size=int(rng.integers(0, 3000)), p=frequencies / frequencies.sum())
        data = encode_symbols(symbols, frequencies)
        decoded = decode_symbols(data, frequencies, symbols.size)
        assert decoded.dtype == np.int64
        np.testing.assert_array_equal(decoded, symbols)


def test_size_is_close_to_the_ideal_code_length():
    rng = np.random.default_rng(1)
    frequencies = build_frequency_table([900, 60, 30, 10], precision_bits=12)
    symbols = rng.choice(4, size=20000, p=frequencies / frequencies.sum())
    data = encode_symbols(symbols, frequencies)
    ideal = estimate_nbytes(symbols, frequencies)
    assert ideal < len(data) <= ideal + 8
    assert len(data) < 20000 * 2 / 8  # far below the 2 bits/symbol of a flat code


def test_edge_cases():
    frequencies = build_frequency_table([3, 1], precision_bits=4)
    assert encode_symbols([], frequencies) == (1 << 23).to_bytes(4, "little")
    assert decode_symbols(encode_symbols([], frequencies), frequencies, 0).size == 0
    # one-symbol alphabet: nothing but the final state is needed
    single = np.array([1 << 12])
    data = encode_symbols(np.zeros(1000, dtype=int), single)
    assert len(data) == 4
    np.testing.assert_array_equal(decode_symbols(data, single, 1000), np.zeros(1000))
    # the largest precision and extreme skew
    skewed = build_frequency_table([10**9, 1], precision_bits=16)
    assert skewed.tolist() == [65535, 1]
    symbols = np.array([1] * 50 + [0] * 50)
    np.testing.assert_array_equal(decode_symbols(encode_symbols(symbols, skewed), skewed, 100), symbols)


def test_frequency_table_is_frozen_integers_and_deterministic():
    counts = [50, 30, 10, 5, 3, 1, 1, 0]
    frequencies = build_frequency_table(counts, precision_bits=12)
    assert frequencies.dtype == np.int64 and int(frequencies.sum()) == 4096
    assert frequencies.tolist() == [2046, 1228, 410, 206, 123, 41, 41, 1]  # fixed forever
    assert np.all(frequencies >= 1)
    assert build_frequency_table(np.zeros(4), 8).tolist() == [64, 64, 64, 64]
    assert build_frequency_table([5, 0, 5], 8, minimum_frequency=0)[1] == 0
    with pytest.raises(ValueError, match="raise precision_bits"):
        build_frequency_table(np.ones(300), precision_bits=8)


def test_bitstream_is_fixed_forever():
    """A committed fixture: this table and these symbols must keep giving exactly these bytes."""
    frequencies = build_frequency_table([50, 30, 10, 5, 3, 1, 1, 0], 12)
    symbols = np.array([0, 1, 2, 3, 4, 5, 6, 7, 0, 0, 1, 0, 2, 3, 0, 1])
    assert encode_symbols(symbols, frequencies).hex() == "d1b0e87193f7ffc0af1a"
    np.testing.assert_array_equal(decode_symbols(bytes.fromhex("d1b0e87193f7ffc0af1a"), frequencies, 16), symbols)


def test_long_streams_keep_their_bytes():
    """Hashes of 20 000 symbols (one table) and 3000 x 3 symbols (three tables) written by the pure-Python
    coder before the loops moved to numba: the kernels must write the same bytes, and read them back."""
    import hashlib

    from spikeinterface_vqcompress.core.entropy.rans import decode_with_tables, encode_with_tables

    rng = np.random.default_rng(2026)
    table = build_frequency_table(rng.integers(0, 40, 50), 12)
    symbols = rng.choice(np.nonzero(table)[0], size=20000)
    data = encode_symbols(symbols, table)
    assert hashlib.sha256(data).hexdigest() == "e841a255100d7ddd47235f7304a0a792f196f7cbfb76d3f72905c3db002bda29"
    np.testing.assert_array_equal(decode_symbols(data, table, symbols.size), symbols)
    tables = np.stack([build_frequency_table(rng.integers(1, 40, 50), 12) for _ in range(3)])
    rows = rng.integers(0, 50, (3000, 3))
    data = encode_with_tables(rows, tables)
    assert hashlib.sha256(data).hexdigest() == "012270a7d671279e7635df6b008b394dc9afe91926cff85f150f802ba0c6b38b"
    np.testing.assert_array_equal(decode_with_tables(data, tables, 3000), rows)
    with pytest.raises(CorruptDataError, match="ended early"):
        decode_with_tables(data[:-2], tables, 3000)
    with pytest.raises(ValueError, match="frequency 0 in table 1"):
        encode_with_tables(np.array([[0, 7]]), np.stack([tables[0], build_frequency_table(np.arange(50) != 7, 12, minimum_frequency=0)]))


def test_invalid_input_raises_clear_errors():
    frequencies = build_frequency_table([1, 1, 0], 8, minimum_frequency=0)
    with pytest.raises(ValueError, match="frequency 0"):
        encode_symbols([2], frequencies)
    with pytest.raises(ValueError, match="must lie in"):
        encode_symbols([3], frequencies)
    with pytest.raises(TypeError, match="integers"):
        encode_symbols([0], np.array([0.5, 0.5]))
    with pytest.raises(ValueError, match="power of two"):
        encode_symbols([0], np.array([3, 4]))


def test_damaged_streams_raise_corrupt_data_error():
    rng = np.random.default_rng(3)
    frequencies = build_frequency_table(rng.integers(1, 100, 128), 12)
    symbols = rng.choice(128, size=400, p=frequencies / frequencies.sum())
    data = encode_symbols(symbols, frequencies)
    with pytest.raises(CorruptDataError):
        decode_symbols(data[:-1], frequencies, symbols.size)  # truncated
    with pytest.raises(CorruptDataError):
        decode_symbols(data + b"\x00", frequencies, symbols.size)  # trailing bytes
    with pytest.raises(CorruptDataError):
        decode_symbols(data[:3], frequencies, symbols.size)
    with pytest.raises(CorruptDataError):
        decode_symbols(data, frequencies, symbols.size + 5)  # asks for more than is there
    for position in rng.choice(len(data), size=40, replace=False):
        damaged = bytearray(data)
        damaged[position] ^= 1 << int(rng.integers(8))
        with pytest.raises(CorruptDataError):
            decode_symbols(bytes(damaged), frequencies, symbols.size)


def test_entropy_and_nn_do_not_import_spikeinterface():
    for folder in ("entropy", "nn"):
        for path in (PACKAGE / folder).glob("*.py"):
            tree = ast.parse(path.read_text())
            for node in ast.walk(tree):
                if isinstance(node, ast.Import):
                    names = [alias.name for alias in node.names]
                elif isinstance(node, ast.ImportFrom):
                    names = [node.module or ""]
                else:
                    continue
                assert not any(name.split(".")[0] == "spikeinterface" for name in names), f"{path} imports {names}"


@pytest.mark.parametrize("weighted", [False, True])
def test_binary_range_coder_round_trips_skewed_bits(weighted):
    """The adaptive binary coder (state tuples, branch-free updates): exact round trip of skewed bits
    in several contexts, with or without (random, so wrong) prior weights; without them, at close
    to the bits' entropy; a cut stream is flagged by the overrun count instead of decoding past the end."""
    from spikeinterface_vqcompress.core.entropy.binary_range import decode_bit_weighted, decoder_init, encode_bit_weighted, encoder_flush, load_state, new_encoder_state, new_probabilities, store_state

    rng = np.random.default_rng(3)
    num_bits = 20000
    contexts = rng.integers(0, 4, num_bits)
    bits = (rng.random(num_bits) < np.array([0.02, 0.3, 0.5, 0.9])[contexts]).astype(np.int64)
    weights = (np.where(rng.random((num_bits, 2)) < 0.5, 1, rng.integers(1, 5000, (num_bits, 2))) if weighted
               else np.ones((num_bits, 2), dtype=np.int64))
    out = np.zeros(num_bits, dtype=np.uint8)
    probabilities = new_probabilities(4)
    rc = new_encoder_state()
    state = load_state(rc)
    for bit, context, (w0, w1) in zip(bits.tolist(), contexts.tolist(), weights.tolist()):
        state = encode_bit_weighted(state, out, probabilities, context, bit, w0, w1)
    store_state(rc, state)
    size = encoder_flush(rc, out)
    entropy_bits = sum(
        np.count_nonzero(contexts == c) * (-(p * np.log2(p) + (1 - p) * np.log2(1 - p)))
        for c, p in enumerate([0.02, 0.3, 0.5, 0.9]))
    if not weighted:
        assert entropy_bits < size * 8 < 1.02 * entropy_bits + 64

    def decode(data):
        probabilities = new_probabilities(4)
        rc = decoder_init(data, 0)
        state = load_state(rc)
        decoded = []
        for context, (w0, w1) in zip(contexts.tolist(), weights.tolist()):
            state, bit = decode_bit_weighted(state, data, probabilities, context, w0, w1)
            decoded.append(bit)
        return np.array(decoded), state[3]

    decoded, overrun = decode(out[:size].copy())
    np.testing.assert_array_equal(decoded, bits)
    assert overrun <= 5
    _, overrun = decode(out[: size // 2].copy())
    assert overrun > 5
