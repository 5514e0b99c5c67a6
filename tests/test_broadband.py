"""The broadband codec: bit-exact lossless, guaranteed near-lossless bound, value lattices, damaged
data, committed bitstreams that must decode forever, and the numcodecs/zarr codec."""

import hashlib
import json
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import spikeinterface_vqcompress as vq
from spikeinterface_vqcompress.core.codecs.broadband.codec import BroadbandCodec
from spikeinterface_vqcompress.core.codecs.broadband.chunk import decode_chunk, encode_chunk
from spikeinterface_vqcompress.core.codecs.broadband.numcodec import Broadband
from spikeinterface_vqcompress.core.errors import CorruptDataError

FIXTURES = Path(__file__).resolve().parent / "fixtures"


def _noise_traces(num_samples=4000, num_channels=4, seed=0, scale=40.0):
    """Band-limited noise with a few spikes: something a predictor can work on."""
    rng = np.random.default_rng(seed)
    white = rng.normal(size=(num_samples + 8, num_channels))
    smooth = sum(white[i : i + num_samples] for i in range(8)) / np.sqrt(8)
    traces = smooth * scale
    for start in rng.integers(0, num_samples - 40, size=10):
        traces[start : start + 30] -= 300 * np.hanning(30)[:, None] * rng.uniform(0.2, 1.0, num_channels)
    return np.round(traces).astype(np.int16)


def _n1_like(num_samples=20000, seed=1):
    """10-bit codes stretched to int16 with a non-integer spacing (~64.06) and an offset."""
    rng = np.random.default_rng(seed)
    codes = np.clip(np.round(np.cumsum(rng.normal(size=num_samples)) * 0.3 + rng.normal(size=num_samples) * 4) + 512, 0, 1023)
    return (np.floor((codes - 512) * 64.0625 + 0.5) + 33).astype(np.int16)[:, None], codes.astype(np.int16)[:, None]


@pytest.mark.parametrize("num_channels", [1, 4])
def test_lossless_round_trip_is_bit_exact(num_channels):
    traces = _noise_traces(num_channels=num_channels)
    codec = BroadbandCodec()
    data = codec.encode(traces)
    decoded = codec.decode(data, *traces.shape, np.int16)
    np.testing.assert_array_equal(decoded, traces)
    assert len(data) < traces.nbytes / 2


@pytest.mark.parametrize("traces", [
    np.zeros((0, 3), np.int16),
    np.zeros((1, 1), np.int16),
    np.full((500, 2), -32768, np.int16),
    np.tile(np.array([[-32768, 32767]], np.int16), (300, 1)),
    np.random.default_rng(2).integers(-32768, 32768, size=(700, 3)).astype(np.int16),
], ids=["empty", "one-sample", "constant-min", "extremes", "uniform-random"])
def test_lossless_edge_cases(traces):
    data = encode_chunk(traces)
    np.testing.assert_array_equal(decode_chunk(data), traces)


@pytest.mark.parametrize("max_error", [1, 4, 31, 200])
def test_near_lossless_bound_is_guaranteed(max_error):
    traces = _noise_traces(num_channels=3, seed=max_error)
    traces[:50, 0] = 32767  # at the int16 edges the bound must hold too
    traces[50:100, 1] = -32768
    codec = BroadbandCodec(max_error=max_error)
    assert not codec.lossless and codec.max_error == max_error
    data = codec.encode(traces)
    decoded = codec.decode(data, *traces.shape, np.int16)
    error = np.abs(decoded.astype(int) - traces.astype(int))
    assert error.max() <= max_error
    assert error.max() > 0
    assert len(data) < len(BroadbandCodec().encode(traces))


def _mad(traces):
    """Noise level per channel (median absolute deviation, robust to the spikes), median over channels."""
    traces = traces.astype(float)
    return float(np.median(np.median(np.abs(traces - np.median(traces, axis=0)), axis=0)))


def test_noise_fill_restores_the_noise_level_at_the_same_rate():
    traces = _noise_traces(num_samples=16000, num_channels=4, seed=5, scale=30.0)
    plain, filled = BroadbandCodec(max_error=48), BroadbandCodec(max_error=48, noise_fill=True)
    plain_bytes, filled_bytes = plain.encode(traces), filled.encode(traces)
    plain_out = plain.decode(plain_bytes, *traces.shape, np.int16)
    filled_out = filled.decode(filled_bytes, *traces.shape, np.int16)
    raw = _mad(traces)
    assert _mad(plain_out) < 0.7 * raw  # the quantiser shaved the noise off
    assert 0.85 * raw < _mad(filled_out) < 1.15 * raw  # noise fill puts it back
    assert len(filled_bytes) - len(plain_bytes) == 10 + 2 * 32 + 2 * 4  # header, taps, one level per channel
    error = np.abs(filled_out.astype(int) - traces.astype(int))
    assert filled.max_error == 96 and error.max() <= 96
    # integer-only decode: the same samples at every read, and from a fresh codec object
    np.testing.assert_array_equal(BroadbandCodec(max_error=48, noise_fill=True).decode(filled_bytes, *traces.shape, np.int16),
                                  filled_out)
    assert filled.get_config()["noise_fill"] is True and "noise_fill" not in plain.get_config()


def _spiky_traces(num_samples=30000, num_channels=6, seed=3):
    """White noise (std 30) with up to 60 large spikes on the first three channels."""
    rng = np.random.default_rng(seed)
    traces = rng.normal(0, 30, (num_samples, num_channels))
    lags = np.arange(-30, 60)
    shape = -400 * np.exp(-0.5 * (lags / 6.0) ** 2) + 150 * np.exp(-0.5 * ((lags - 20) / 10.0) ** 2)
    slots = np.arange(100, num_samples - 100, 150)
    times = np.sort(rng.choice(slots, min(60, slots.size // 2), replace=False))
    for time in times:
        traces[time - 30 : time + 60, :3] += shape[:, None] * np.array([1.0, 0.8, 0.6])
    return np.round(traces).astype(np.int16), times


def test_spike_windows_hold_the_tight_bound_where_the_spikes_are():
    from spikeinterface_vqcompress.core.codecs.broadband.spikes import detect_events, zone_mask

    traces, times = _spiky_traces()
    uniform, windowed = BroadbandCodec(max_error=48), BroadbandCodec(max_error=48, spike_error=6)
    uniform_bytes, windowed_bytes = uniform.encode(traces), windowed.encode(traces)
    assert windowed_bytes[4] == 3 and uniform_bytes[4] == 2  # only chunks with windows use the new version
    decoded = windowed.decode(windowed_bytes, *traces.shape, np.int16)
    error = np.abs(decoded.astype(int) - traces)
    zone = zone_mask(detect_events(traces, 3.5), traces.shape[0], 30, 60).astype(bool)
    # every spike's trough on its three channels lies in a window, and the windows are a small part of the chunk
    assert zone[times[:, None], np.arange(3)[None, :]].all()
    assert 0.01 < zone.mean() < 0.15
    assert error[zone].max() <= 6 and error.max() <= 48 and error[~zone].max() > 6
    uniform_error = np.abs(uniform.decode(uniform_bytes, *traces.shape, np.int16).astype(int) - traces)
    spikes = (times[:, None] + np.arange(-30, 60)[None, :]).ravel()
    assert error[spikes, :3].std() < 0.3 * uniform_error[spikes, :3].std()  # the spikes come back much closer
    assert len(windowed_bytes) < 1.5 * len(uniform_bytes)  # at a fraction of the cost of coding everything at 6
    assert len(windowed_bytes) < 0.5 * len(BroadbandCodec(max_error=6).encode(traces))
    config = windowed.get_config()
    assert config["spike_error"] == 6 and "spike_error" not in uniform.get_config()
    # with noise fill: the background is filled, the windows are not
    filled = BroadbandCodec(max_error=48, spike_error=6, noise_fill=True)
    filled_out = filled.decode(filled.encode(traces), *traces.shape, np.int16)
    filled_error = np.abs(filled_out.astype(int) - traces)
    assert filled_error[zone].max() <= 6 and filled_error.max() <= 96
    assert _mad(filled_out[:, 3:]) > 0.85 * _mad(traces[:, 3:]) > _mad(decoded[:, 3:])


def test_lowpass_background_keeps_the_windows_and_drops_the_correction_steps():
    from spikeinterface_vqcompress.core.codecs.broadband.spikes import detect_events, zone_mask

    traces, _ = _spiky_traces()
    zone = zone_mask(detect_events(traces, 3.5), traces.shape[0], 30, 60).astype(bool)
    outputs = {}
    for lowpass in (False, True):
        codec = BroadbandCodec(max_error=96, spike_error=6, noise_fill=True, lowpass_background=lowpass)
        data = codec.encode(traces)
        assert data[4] == (2 if lowpass else 1)  # the noise-fill format: version 1 stays byte for byte as it was
        out = outputs[lowpass] = codec.decode(data, *traces.shape, np.int16)
        error = np.abs(out.astype(int) - traces)
        assert error[zone].max() <= 6 and error.max() <= codec.max_error == (288 if lowpass else 192)
        assert 0.85 < _mad(out[:, 3:]) / _mad(traces[:, 3:]) < 1.15  # the background keeps its noise level
        np.testing.assert_array_equal(BroadbandCodec(max_error=96, spike_error=6, noise_fill=True,
                                                     lowpass_background=lowpass).decode(data, *traces.shape, np.int16), out)
    # channels 3-5 hold white noise (std 30) only: no sample reaches 4.5 noise levels in the original; the
    # coarse background's correction steps (+/- 193) do, noise added or not; its low band plus noise does not
    def loud(out):
        return int((np.abs(out[:, 3:].astype(int)) > 135).sum())
    assert loud(traces) == 0 and loud(outputs[False]) > 30 and loud(outputs[True]) <= 2
    lowpass_config = BroadbandCodec(max_error=96, spike_error=6, noise_fill=True, lowpass_background=True).get_config()
    assert lowpass_config["lowpass_background"] is True
    assert "lowpass_background" not in BroadbandCodec(max_error=96, spike_error=6, noise_fill=True).get_config()


def test_lowpass_background_errors_are_clear():
    for parameters in ({"max_error": 32, "noise_fill": True}, {"max_error": 32, "spike_error": 4}):
        with pytest.raises(ValueError, match="lowpass_background needs spike windows and noise fill"):
            BroadbandCodec(lowpass_background=True, **parameters)
    with pytest.raises(ValueError, match="'lowpass_background' is true or false"):
        BroadbandCodec(max_error=32, spike_error=4, noise_fill=True, lowpass_background="yes")
    traces, _ = _spiky_traces(num_samples=6000)
    codec = BroadbandCodec(max_error=32, spike_error=4, noise_fill=True, lowpass_background=True)
    data = codec.encode(traces)
    for position, value, message in ((10, 0x80, "unknown flags"), (4, 9, "not readable by this version")):
        damaged = bytearray(data)
        damaged[position] = value
        with pytest.raises(CorruptDataError, match=message):
            codec.decode(bytes(damaged), *traces.shape, np.int16)
    with pytest.raises(CorruptDataError, match="damaged"):
        codec.decode(data[:-1], *traces.shape, np.int16)


def _correlated_background(num_samples=30000, num_channels=6, seed=7, share=0.6):
    """Gaussian noise (std ~30) whose neighbouring channels correlate: each channel mixes its own
    noise with a shared component travelling along the channel order (a real background's pattern)."""
    rng = np.random.default_rng(seed)
    own = rng.normal(size=(num_samples, num_channels))
    common = rng.normal(size=(num_samples, num_channels + 2))
    shared = (common[:, :-2] + common[:, 1:-1] + common[:, 2:]) / np.sqrt(3)  # neighbours share two of three
    return np.round(30 * (np.sqrt(1 - share) * own + np.sqrt(share) * shared)).astype(np.int16)


def _neighbour_correlation(traces):
    correlation = np.corrcoef(traces.astype(float).T)
    return float(np.mean(np.diag(correlation, 1)))


def test_noise_neighbours_keep_the_background_correlation_across_channels():
    traces = _correlated_background()
    raw = _neighbour_correlation(traces)  # 0.6 * 2/3 = 0.4 by construction
    outputs = {}
    for neighbours in (0, 3):
        codec = BroadbandCodec(max_error=96, noise_fill=True, noise_neighbours=neighbours)
        data = codec.encode(traces)
        out = outputs[neighbours] = codec.decode(data, *traces.shape, np.int16)
        assert data[4] == (2 if neighbours else 1)  # format 1 byte for byte without it
        assert np.abs(out.astype(int) - traces).max() <= codec.max_error == 192
        assert 0.85 < _mad(out) / _mad(traces) < 1.15  # the level is kept either way
        np.testing.assert_array_equal(BroadbandCodec(max_error=96, noise_fill=True, noise_neighbours=neighbours)
                                      .decode(data, *traces.shape, np.int16), out)
    assert 0.35 < raw < 0.45
    assert _neighbour_correlation(outputs[0]) < raw - 0.2  # independent fill loses it
    # the spatial model keeps most of it (the coarse reconstruction under the fill is uncorrelated: 0.31 of 0.40)
    assert 0.7 * raw < _neighbour_correlation(outputs[3]) < raw + 0.05
    assert BroadbandCodec(max_error=96, noise_fill=True, noise_neighbours=3).get_config()["noise_neighbours"] == 3
    assert "noise_neighbours" not in BroadbandCodec(max_error=96, noise_fill=True).get_config()


def test_noise_neighbours_with_lowpass_background_and_its_errors():
    traces = _correlated_background(num_samples=12000)
    traces[1000:1090, :3] += (-400 * np.hanning(90)[:, None]).astype(np.int16)  # one spike: a window
    codec = BroadbandCodec(max_error=96, spike_error=8, noise_fill=True, lowpass_background=True, noise_neighbours=4)
    data = codec.encode(traces)
    assert data[4] == 2 and data[10] == 3  # low-pass and spatial flags
    out = codec.decode(data, *traces.shape, np.int16)
    assert np.abs(out.astype(int) - traces).max() <= 288
    assert _neighbour_correlation(out[2000:]) > _neighbour_correlation(traces[2000:]) - 0.1
    for parameters, message in (({"max_error": 32}, "set noise_fill=True too"),
                                ({"max_error": 32, "noise_fill": True, "noise_neighbours": 17}, "noise_neighbours"),
                                ({"max_error": 32, "noise_fill": True, "noise_neighbours": 2.5}, "whole number")):
        with pytest.raises(ValueError, match=message):
            BroadbandCodec(**{"noise_neighbours": 2, **parameters})
    for damaged in (data[:-1], data + b"\0"):  # the spatial model's layout is checked
        with pytest.raises(CorruptDataError, match="damaged"):
            codec.decode(damaged, *traces.shape, np.int16)
    unflagged = bytearray(data)
    unflagged[10] = 1  # the spatial flag cleared: the extra bytes no longer fit the layout
    with pytest.raises(CorruptDataError, match="damaged"):
        codec.decode(bytes(unflagged), *traces.shape, np.int16)


def test_lowpass_background_fills_at_the_robust_noise_level():
    # a background with sparse large events (a real background's sub-threshold spikes): its standard
    # deviation is well above its robust level, which is what the sorters' thresholds follow
    rng = np.random.default_rng(11)
    traces = rng.normal(0, 30, (30000, 4))
    for start in rng.integers(0, 29900, size=600):
        traces[start:start + 20] += rng.choice([-1, 1]) * 90 * np.hanning(20)[:, None]
    traces = np.round(traces).astype(np.int16)
    assert traces.std() > 1.2 * _mad(traces)
    codec = BroadbandCodec(max_error=96, spike_error=8, spike_threshold=6.0, noise_fill=True, lowpass_background=True)
    out = codec.decode(codec.encode(traces), *traces.shape, np.int16)
    assert 0.85 < _mad(out) / _mad(traces) < 1.15


def test_robust_levels_equal_numpy_s_median_absolute_deviation():
    from spikeinterface_vqcompress.core.codecs.broadband.noise import _robust_levels

    rng = np.random.default_rng(5)
    error = np.round(rng.standard_t(3, (5001, 5)) * 40).astype(np.int64)  # odd and even counts, heavy tails
    where = rng.random(error.shape) < 0.7
    where[:, 4] = False  # a channel with no background sample
    expected_all = np.median(np.abs(error - np.median(error, axis=0)), axis=0) / 0.6745
    np.testing.assert_array_equal(_robust_levels(error), expected_all)
    for channel in range(4):
        kept = error[where[:, channel], channel].astype(np.float64)
        expected = np.median(np.abs(kept - np.median(kept))) / 0.6745
        assert _robust_levels(error, where)[channel] == expected
    assert _robust_levels(error, where)[4] == 0


def test_side_information_arrays_code_the_same_bits_as_values_one_by_one():
    from spikeinterface_vqcompress.core.codecs.broadband.chunk import _SideModel
    from spikeinterface_vqcompress.core.entropy.binary_range import decoder_init, encoder_flush, new_encoder_state

    values = np.random.default_rng(2).integers(-5000, 5000, size=300)
    streams = []
    for batched in (False, True):
        rc, out, side = new_encoder_state(), np.zeros(4096, np.uint8), _SideModel()
        if batched:
            side.put_array(rc, out, values, 15)
        else:
            for value in values.tolist():
                side.put(rc, out, value, 15)
        streams.append(out[:encoder_flush(rc, out)].tobytes())
    assert streams[0] == streams[1]
    buffer = np.frombuffer(streams[1], np.uint8).copy()
    np.testing.assert_array_equal(_SideModel().get_array(decoder_init(buffer, 0), buffer, values.size, 15), values)


def test_spike_spread_opens_windows_on_a_spike_s_weaker_channels():
    from spikeinterface_vqcompress.core.codecs.broadband.spikes import detect_events, zone_mask

    rng = np.random.default_rng(3)
    traces = rng.normal(0, 30, (30000, 6))  # channel 0: 60 large spikes; 1: the same at 0.3; 2-5: noise only
    lags = np.arange(-30, 60)
    shape = -400 * np.exp(-0.5 * (lags / 6.0) ** 2) + 150 * np.exp(-0.5 * ((lags - 20) / 10.0) ** 2)
    times = np.arange(200, 29800, 500)
    for time in times:
        traces[time - 30 : time + 60, :2] += shape[:, None] * np.array([1.0, 0.3])
    traces = np.round(traces).astype(np.int16)
    own = zone_mask(detect_events(traces, 3.5), 30000, 30, 60).astype(bool)
    spread = zone_mask(detect_events(traces, 3.5, spread_threshold=2.0), 30000, 30, 60).astype(bool)
    assert own[times, 0].all() and own[times, 1].mean() < 0.5  # the weak channel rarely crosses on its own
    assert spread[times, 1].all() and (spread >= own).all()  # spread: every spike's weak channel is covered
    assert spread[:, 2:].mean() < 0.25  # noise-only channels join only by chance coincidence
    codec = BroadbandCodec(max_error=48, spike_error=4, spike_spread=2.0)
    error = np.abs(codec.decode(codec.encode(traces), *traces.shape, np.int16).astype(int) - traces)
    assert error[spread].max() <= 4 and error.max() <= 48
    assert codec.get_config()["spike_spread"] == 2.0
    assert "spike_spread" not in BroadbandCodec(max_error=48, spike_error=4).get_config()


def test_bits_per_sample_picks_the_smallest_bound_that_fits():
    from spikeinterface_vqcompress.core.codecs.broadband.chunk import read_chunk_header

    traces = _noise_traces(num_samples=8000, num_channels=4, seed=5, scale=30.0)
    for bits, noise_fill in ((2.0, False), (0.8, True)):
        codec = BroadbandCodec(max_error=96, bits_per_sample=bits, noise_fill=noise_fill)
        data = codec.encode(traces)
        core = data[10:] if noise_fill else data  # past the noise-fill header
        chosen = read_chunk_header(core)["max_error"]
        assert 8 * len(data) <= bits * traces.size and 1 < chosen < 96  # it fits, below the cap
        tighter = BroadbandCodec(max_error=int(0.75 * chosen), noise_fill=noise_fill).encode(traces)
        assert 8 * len(tighter) > bits * traces.size  # and a clearly smaller bound would not
        decoded = codec.decode(data, *traces.shape, np.int16)
        assert np.abs(decoded.astype(int) - traces).max() <= (2 if noise_fill else 1) * chosen <= codec.max_error
        # the decoder needs nothing but the chunk: the codec without the knob reads it the same
        np.testing.assert_array_equal(BroadbandCodec(max_error=96, noise_fill=noise_fill).decode(data, *traces.shape, np.int16),
                                      decoded)
    # a rate the cap cannot reach: coded at the cap, over the rate, the bound kept
    capped = BroadbandCodec(max_error=8, bits_per_sample=0.1).encode(traces)
    assert read_chunk_header(capped)["max_error"] == 8 and 8 * len(capped) > 0.1 * traces.size
    assert BroadbandCodec(max_error=8, bits_per_sample=0.1).get_config()["bits_per_sample"] == 0.1
    assert "bits_per_sample" not in BroadbandCodec(max_error=8).get_config()
    with pytest.raises(ValueError, match="bits_per_sample needs max_error > 0"):
        BroadbandCodec(bits_per_sample=1.0)
    with pytest.raises(ValueError, match="'bits_per_sample'"):
        BroadbandCodec(max_error=8, bits_per_sample=0)


def test_lowpass_is_exact_integer_running_means():
    from spikeinterface_vqcompress.core.codecs.broadband.noise import lowpass

    traces = np.random.default_rng(4).integers(-32768, 32768, size=(700, 3))
    expected = traces.astype(float).T
    for _ in range(3):  # three centred running means of 51 samples, edges repeated
        expected = np.stack([np.convolve(np.pad(row, 25, mode="edge"), np.ones(51), mode="valid") for row in expected])
    np.testing.assert_array_equal(lowpass(traces), np.floor(expected.T / 51 ** 3 + 0.5).astype(np.int64))
    assert (lowpass(np.full((200, 2), -7)) == -7).all()


def test_spike_window_chunks_reject_damage_and_bad_parameters():
    traces, _ = _spiky_traces(num_samples=6000)
    with pytest.raises(ValueError, match="spike_error needs max_error > 0"):
        BroadbandCodec(spike_error=2)
    with pytest.raises(ValueError, match="'spike_error'.*between 0 and 15"):
        BroadbandCodec(max_error=16, spike_error=16)
    with pytest.raises(ValueError, match="'spike_after'.*between 0 and 255"):
        BroadbandCodec(max_error=16, spike_error=2, spike_after=300)
    data = BroadbandCodec(max_error=32, spike_error=4).encode(traces)
    for position in (len(data) // 3, len(data) // 2, len(data) - 5):
        damaged = bytearray(data)
        damaged[position] ^= 0x5A
        with pytest.raises(CorruptDataError):
            BroadbandCodec(max_error=32, spike_error=4).decode(bytes(damaged), *traces.shape, np.int16)
    # the decoder needs nothing from the codec's parameters: a plain near-lossless codec reads the chunk
    np.testing.assert_array_equal(BroadbandCodec(max_error=32).decode(data, *traces.shape, np.int16),
                                  BroadbandCodec(max_error=32, spike_error=4).decode(data, *traces.shape, np.int16))


def test_noise_fill_errors_are_clear():
    with pytest.raises(ValueError, match="noise_fill needs max_error > 0"):
        BroadbandCodec(noise_fill=True)
    codec = BroadbandCodec(max_error=16, noise_fill=True)
    traces = _noise_traces(num_samples=2000, num_channels=2)
    data = bytearray(codec.encode(traces))
    with pytest.raises(CorruptDataError, match="without noise_fill"):
        codec.decode(BroadbandCodec(max_error=16).encode(traces), *traces.shape, np.int16)
    with pytest.raises(CorruptDataError, match="damaged"):
        codec.decode(bytes(data[:-3]), *traces.shape, np.int16)
    data[20] ^= 0xFF  # inside the wrapped chunk: its CRC catches it
    with pytest.raises(CorruptDataError):
        codec.decode(bytes(data), *traces.shape, np.int16)


def test_near_lossless_rate_falls_with_max_error():
    traces = _noise_traces(num_channels=2)
    sizes = [len(encode_chunk(traces, max_error=max_error)) for max_error in (0, 2, 8, 32)]
    assert sizes == sorted(sizes, reverse=True)
    assert sizes[-1] < sizes[0] / 3


def test_lattice_of_stretched_codes_costs_what_the_codes_cost():
    stretched, codes = _n1_like()
    stretched_bytes = len(encode_chunk(stretched))
    codes_bytes = len(encode_chunk(codes))
    np.testing.assert_array_equal(decode_chunk(encode_chunk(stretched)), stretched)
    # the level table is side information: a few hundred bytes at most
    assert stretched_bytes < codes_bytes + 300
    # without lattice detection the ~64-apart levels would cost ~6 more bits per sample
    assert stretched_bytes < stretched.size * 16 / 8 / 2
    # a max_error below half the level spacing cannot merge levels: the chunk is coded exactly (and smaller)
    bounded = encode_chunk(stretched, max_error=16)
    np.testing.assert_array_equal(decode_chunk(bounded), stretched)
    assert len(bounded) == stretched_bytes
    # with a step wider than the gaps the encoder keeps the smaller of the quantised and the exact stream
    for max_error in (32, 40):
        lossy = encode_chunk(stretched, max_error=max_error)
        assert len(lossy) <= stretched_bytes
        assert np.abs(decode_chunk(lossy).astype(int) - stretched).max() <= max_error


def _unequal_codes(num_samples=40000, seed=2):
    """An ADC with unequally wide codes (differential non-linearity): widths 0.5, 1 and 1.5 of the mean."""
    rng = np.random.default_rng(seed)
    signal = np.cumsum(rng.normal(size=num_samples)) * 0.5 + rng.normal(size=num_samples) * 30
    signal -= signal.mean()
    edges = np.cumsum(np.tile([4.0, 8.0, 12.0, 8.0], 200)) - 3200.0
    return np.searchsorted(edges, 8 * signal).astype(np.int16)[:, None]


def test_code_width_table_exploits_unequal_adc_codes(monkeypatch):
    from spikeinterface_vqcompress.core.codecs.broadband import chunk

    codes = _unequal_codes()
    with_table = encode_chunk(codes)
    np.testing.assert_array_equal(decode_chunk(with_table), codes)
    assert chunk._code_widths(codes[:, 0].astype(np.int64), 1) is not None
    monkeypatch.setattr(chunk, "_code_widths", lambda column, step: None)
    without_table = encode_chunk(codes)
    np.testing.assert_array_equal(decode_chunk(without_table), codes)
    # widths 0.5 / 1 / 1.5 / 1 are worth ~0.09 bit per sample at most (measured: 0.07, table included)
    assert (len(without_table) - len(with_table)) * 8 / codes.size > 0.04


def test_code_width_table_is_not_sent_for_equal_codes():
    from spikeinterface_vqcompress.core.codecs.broadband import chunk

    rng = np.random.default_rng(3)
    equal = np.round(rng.normal(size=40000) * 30).astype(np.int64)  # a uniform quantiser: no pattern to send
    assert chunk._code_widths(equal, 1) is None
    assert chunk._code_widths(_unequal_codes()[:, 0].astype(np.int64), 3) is None  # near-lossless: never


def test_older_and_newer_chunk_versions():
    traces = _noise_traces(num_channels=1)
    data = bytearray(encode_chunk(traces))
    assert data[4] == 2  # this package writes format version 2 (3 with spike windows) and reads 1-3 (tested by the fixtures)
    data[4] = 4
    with pytest.raises(CorruptDataError, match="version 4 is not supported.*upgrade"):
        decode_chunk(bytes(data))


def test_affine_lattice_and_near_lossless_on_it():
    traces = (_noise_traces(num_channels=2) // 4 * 4 + 2).astype(np.int16)  # spacing 4, offset 2
    exact = encode_chunk(traces)
    np.testing.assert_array_equal(decode_chunk(exact), traces)
    assert len(exact) < len(encode_chunk((traces // 4).astype(np.int16))) + 40
    decoded = decode_chunk(encode_chunk(traces, max_error=8)).astype(int)
    assert np.abs(decoded - traces).max() <= 8
    assert np.all((decoded - 2) % 4 == 0)  # rebuilt on the lattice


def test_through_compress_and_container(tmp_path):
    import spikeinterface.core as sc

    traces = _noise_traces(num_samples=9000, num_channels=5)
    recording = sc.NumpyRecording(traces, sampling_frequency=3000.0)
    compressed = vq.compress(recording, "broadband", chunk_duration_s=1.0, progress_bar=False)
    np.testing.assert_array_equal(compressed.get_traces(), traces)
    # random access: one chunk in the middle
    np.testing.assert_array_equal(compressed.get_traces(start_frame=4100, end_frame=4200), traces[4100:4200])
    assert compressed.compression_ratio > vq.compress(recording, "zstd", progress_bar=False).compression_ratio
    vq.write_compressed(recording, tmp_path / "b.vqc", codec={"id": "broadband", "max_error": 6})
    rebuilt = vq.read_compressed(tmp_path / "b.vqc").get_traces()
    assert np.abs(rebuilt.astype(int) - traces).max() <= 6


def test_damaged_chunks_raise_corrupt_data_error_or_decode_exactly():
    traces = _noise_traces(num_samples=1500, num_channels=3)
    data = encode_chunk(traces)
    rng = np.random.default_rng(5)
    raised = 0
    for case in range(150):
        mutated = bytearray(data)
        kind = case % 3
        if kind == 0:
            mutated[rng.integers(len(mutated))] ^= 1 << rng.integers(8)
        elif kind == 1:
            mutated = mutated[: rng.integers(len(mutated))]
        else:
            mutated[rng.integers(len(mutated))] = rng.integers(256)
        try:
            decoded = decode_chunk(bytes(mutated))
        except CorruptDataError:
            raised += 1
        else:  # the chunk's CRC32 guarantees an undetected change decodes to the original
            np.testing.assert_array_equal(decoded, traces)
    assert raised > 100


def test_forged_sizes_are_refused_without_allocating():
    data = bytearray(encode_chunk(_noise_traces(num_samples=200, num_channels=2)))
    data[6:10] = (2**32 - 1).to_bytes(4, "little")  # num_samples
    with pytest.raises(CorruptDataError, match="more than"):
        decode_chunk(bytes(data))
    with pytest.raises(CorruptDataError):
        decode_chunk(b"VQBB")
    with pytest.raises(CorruptDataError):
        BroadbandCodec().decode(encode_chunk(_noise_traces(100, 2)), 99, 2, np.int16)


def _fixture_input(version=1):
    import importlib.util

    spec = importlib.util.spec_from_file_location("broadband_fixtures", FIXTURES / "broadband_fixtures.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.INPUTS[version]()


@pytest.mark.parametrize("version", [1, 2, 3])
def test_committed_bitstreams_decode_to_the_committed_output(version):
    manifest = json.loads((FIXTURES / f"broadband_v{version}_manifest.json").read_text())
    traces = _fixture_input(version)
    assert hashlib.sha256(traces.tobytes()).hexdigest() == manifest["input_sha256"]
    for name, entry in manifest["files"].items():
        decoded = decode_chunk((FIXTURES / name).read_bytes())
        assert list(decoded.shape) == manifest["shape"]
        assert hashlib.sha256(decoded.tobytes()).hexdigest() == entry["decoded_sha256"]
        assert np.abs(decoded.astype(int) - traces.astype(int)).max() <= entry["max_error"]


def test_numcodecs_codec_config_and_round_trip():
    import numcodecs

    codec = numcodecs.get_codec({"id": "vqcompress_broadband", "max_error": 0})
    assert isinstance(codec, Broadband)
    config = codec.get_config()
    assert json.loads(json.dumps(config)) == config
    traces = _noise_traces(num_samples=1000, num_channels=3)
    decoded = codec.decode(codec.encode(traces))
    np.testing.assert_array_equal(np.asarray(decoded).reshape(traces.shape), traces)
    out = np.empty_like(traces)
    codec.decode(codec.encode(traces), out=out)
    np.testing.assert_array_equal(out, traces)
    with pytest.raises(TypeError, match="int16"):
        codec.encode(traces.astype(np.float32))


def test_zarr_save_and_fresh_process_reads_without_importing_the_package(tmp_path):
    import spikeinterface.core as sc

    traces = _noise_traces(num_samples=6000, num_channels=4)
    recording = sc.NumpyRecording(traces, sampling_frequency=3000.0)
    folder = tmp_path / "rec.zarr"
    recording.save(format="zarr", folder=folder, compressor=Broadband(), progress_bar=False)
    expected = hashlib.sha256(traces.tobytes()).hexdigest()
    script = (
        "import sys, hashlib, zarr, numpy as np\n"
        "assert 'spikeinterface_vqcompress' not in sys.modules\n"
        f"root = zarr.open({str(folder)!r}, mode='r')\n"
        "array = root['traces_seg0']  # numcodecs finds the codec through its entry point\n"
        "print(array.compressor.codec_id)\n"
        "print(hashlib.sha256(np.ascontiguousarray(array[:]).tobytes()).hexdigest())\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    codec_id, digest = result.stdout.split()
    assert codec_id == "vqcompress_broadband"
    assert digest == expected


def test_registered_and_hardware_profile():
    assert "broadband" in vq.available_codecs()
    codec = vq.get_codec({"id": "broadband", "max_error": 2})
    assert codec.get_config() == {"id": "broadband", "max_error": 2, "lpc_order": 32, "stages": None}
    profile = codec.hardware_profile(num_channels=32)
    assert profile.operations_per_sample["mac"] >= 32
    assert profile.algorithmic_latency_samples == 0 and profile.algorithmic_latency_chunks == 1
    import spikeinterface.core as sc

    recording = sc.NumpyRecording(_noise_traces(num_samples=3000, num_channels=2), sampling_frequency=3000.0)
    for stages in (None, [[4, 6]]):  # every operation kind must be one the hardware report prices
        compressed = vq.compress(recording, "broadband", stages=stages, progress_bar=False)
        report = compressed.hardware_report()
        assert report.operations_per_second_per_channel["mac"] > 0
        # the predictor is fitted on the chunk it codes: one chunk of latency, in ms of this run's chunks
        assert report.algorithmic_latency_ms == pytest.approx(1000.0)
    half_chunks = vq.compress(recording, "broadband", chunk_duration_s=0.5, progress_bar=False).hardware_report()
    assert half_chunks.algorithmic_latency_ms == pytest.approx(500.0)
    assert not half_chunks.verdicts[1]["pass"]
    with pytest.raises(ValueError, match="max_error"):
        BroadbandCodec(max_error=-1)
    with pytest.raises(ValueError, match="stage"):
        BroadbandCodec(stages=[[0, 5]])


def test_a_cold_numba_cache_is_announced_before_the_compile(tmp_path):
    """Issue 30: the first use on a fresh install compiles the kernels for minutes; it must say so
    first. An empty numba cache folder stands for the fresh install (nothing is compiled here)."""
    import subprocess
    import sys

    code = ("import logging\n"
            "from spikeinterface_vqcompress.core.codecs.broadband import codec\n"
            "assert not codec.kernels_compiled()\n"
            "codec._say_if_compiling()\n"
            "codec._say_if_compiling()\n")
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                            env={**__import__("os").environ, "NUMBA_CACHE_DIR": str(tmp_path)})
    assert result.returncode == 0, result.stderr[-2000:]
    assert result.stderr.count("compiling the codec's numba kernels on first use") == 1  # once per process


def test_robust_median_kernels_equal_numpy_s_medians():
    from spikeinterface_vqcompress.core.robust import float_median, twice_median

    rng = np.random.default_rng(11)
    scratch = np.empty(40000)
    for trial in range(120):
        size = int(rng.integers(1, 40000)) if trial % 5 else int(rng.integers(4096, 4200))
        kind = trial % 4
        if kind == 0:
            values = rng.normal(size=size) * 30
        elif kind == 1:  # a few levels: ties everywhere, the sampled bracket cannot split them
            values = rng.integers(-3, 4, size).astype(np.float64)
        elif kind == 2:
            values = np.sort(rng.standard_t(2, size))
        else:
            values = np.abs(rng.standard_cauchy(size))
        assert float_median(values, scratch) == np.median(values)
        integers = np.round(values).astype(np.int64)
        assert twice_median(integers) == 2 * np.median(integers)


def _reference_events(traces, threshold, sampling_frequency, spread_threshold, spread_samples=10):
    """detect_events as its docstring defines it, in plain SciPy / numpy (the kernel must match it)."""
    import scipy.signal

    num_samples, num_channels = traces.shape
    sos = scipy.signal.butter(2, min(300.0, 0.4 * sampling_frequency), btype="highpass", fs=sampling_frequency, output="sos")
    rows = scipy.signal.sosfilt(sos, np.ascontiguousarray(traces.T, dtype=np.float32), axis=1)
    rows[:, :32] = 0
    noise = np.maximum(np.median(np.abs(rows - np.median(rows, axis=1, keepdims=True)), axis=1) / 0.6745, 1e-6)
    filtered = rows.T
    below = filtered < -threshold * noise
    starts = below & ~np.vstack([np.zeros((1, num_channels), dtype=bool), below[:-1]])
    if spread_threshold > 0:
        times = np.flatnonzero(starts.any(axis=1))
        weak = filtered < -spread_threshold * noise
        near = np.zeros((times.size, num_channels), dtype=bool)
        for lag in range(-spread_samples, spread_samples + 1):
            near |= weak[np.clip(times + lag, 0, num_samples - 1)]
        starts[times] |= near
    return [np.flatnonzero(starts[:, channel]) for channel in range(num_channels)]


def test_spike_events_and_windows_equal_their_numpy_definitions():
    from spikeinterface_vqcompress.core.codecs.broadband.spikes import detect_events, zone_mask

    rng = np.random.default_rng(12)
    traces = _spiky_traces(8000, 6, seed=12)[0]
    total = 0
    for threshold, spread, sampling_frequency in ((3.5, 0.0, 30000.0), (3.5, 2.0, 30000.0), (3.0, 1.0, 15000.0)):
        for chunk in (traces, traces[:700, :1], traces[:3000, 2:5]):
            events = detect_events(chunk, threshold, sampling_frequency, spread)
            expected = _reference_events(chunk, threshold, sampling_frequency, spread)
            assert len(events) == chunk.shape[1]
            total += sum(map(len, events))
            for found, wanted in zip(events, expected):
                assert found.dtype == np.int64 and np.array_equal(found, wanted)
            mask = zone_mask(events, chunk.shape[0], 5, 9)
            wanted_mask = np.zeros(chunk.shape, dtype=np.uint8)
            for channel, channel_events in enumerate(events):
                for event in channel_events:
                    wanted_mask[max(event - 5, 0): event + 10, channel] = 1
            assert mask.dtype == np.uint8 and mask.flags.c_contiguous and np.array_equal(mask, wanted_mask)
    assert total > 100


def test_noise_synthesis_equals_its_numpy_definition():
    from spikeinterface_vqcompress.core.codecs.broadband import noise

    rng = np.random.default_rng(13)
    taps = rng.integers(-3000, 4000, noise.NUM_TAPS)
    levels = rng.integers(0, 9000, 5)
    for seed, num_samples, bound in ((7, 3001, 96), (2 ** 32 - 1, 64, 5), (123456, 1, 1000)):
        white = noise.white_noise(seed, num_samples + taps.size - 1, levels.size).astype(np.float64)
        shaped = np.array([np.convolve(row, taps.astype(np.float64), mode="valid") for row in white]).astype(np.int64)
        denominator = noise._WHITE_STD * int(np.sqrt(np.sum(taps * taps))) * 16
        expected = np.clip(np.floor_divide(shaped * levels[:, None] + denominator // 2, denominator), -bound, bound).T
        assert np.array_equal(noise.synthesise(seed, taps, levels, num_samples, bound), expected)
