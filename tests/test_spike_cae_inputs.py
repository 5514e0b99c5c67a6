"""spike-cae meets a recording: one up-front error for everything it lacks, and the DC offset kept.

Real codec, real bytes: recordings go through ``compress``/``write_compressed`` and the chunks are
decoded from the bytes written.
"""

import functools
import json
from pathlib import Path

import numpy as np
import pytest
import spikeinterface.core as sc

import spikeinterface_vqcompress as vq
from spikeinterface_vqcompress.core.codecs.spike_cae.background import BackgroundModel, channel_offsets, estimate_background
from spikeinterface_vqcompress.core.container import ContainerReader
from spikeinterface_vqcompress.core.errors import CorruptDataError
from spikeinterface_vqcompress.core.framing import pack_parts, unpack_parts
from spikeinterface_vqcompress.core.registry import get_codec
from spikeinterface_vqcompress.recording import codec_for_recording

SAMPLING_FREQUENCY = 32000.0
OFFSET = 2056  # unsigned 12-bit ADC data stored as int16 sits near 2048
FIXTURES = Path(__file__).resolve().parent / "fixtures"


@functools.lru_cache(maxsize=None)
def band_passed_spikes(num_samples=64000, num_channels=32, num_spikes=200, seed=0):
    """Band-passed noise (10 units rms, median 0) plus spikes of 200 units, int16, on a 2-column probe."""
    from scipy.signal import butter, sosfilt

    rng = np.random.default_rng(seed)
    sos = butter(3, [300, 6000], btype="band", fs=SAMPLING_FREQUENCY, output="sos")
    noise = sosfilt(sos, rng.standard_normal((num_samples + 1000, num_channels)), axis=0)[1000:]
    traces = noise * 10.0 / noise.std()
    locations = np.array([[20.0 * (index % 2), 20.0 * (index // 2)] for index in range(num_channels)])
    t = np.arange(-20, 44)
    waveform = -np.exp(-0.5 * (t / 3.0) ** 2) + 0.3 * np.exp(-0.5 * ((t - 12) / 6.0) ** 2)
    waveform /= -waveform.min()
    times = np.sort(rng.choice(np.arange(100, num_samples - 100, 150), num_spikes, replace=False))
    for time, channel in zip(times, rng.integers(0, num_channels, num_spikes)):
        spatial = np.exp(-np.linalg.norm(locations - locations[channel], axis=1) / 25.0)
        traces[time + t] += 200.0 * waveform[:, None] * spatial[None, :]
    return np.round(traces).astype(np.int16), locations


def recording_of(traces, locations=None, gain=0.195, sampling_frequency=SAMPLING_FREQUENCY):
    recording = sc.NumpyRecording(traces, sampling_frequency=sampling_frequency)
    if locations is not None:
        recording.set_dummy_probe_from_locations(np.asarray(locations))
    if gain is not None:
        recording.set_channel_gains(gain)
        recording.set_channel_offsets(0.0)
    return recording


# -- one up-front error --------------------------------------------------------------------------
def test_a_recording_without_probe_gain_or_channels_gets_one_error_naming_each(tmp_path):
    traces = (np.random.default_rng(0).normal(0, 20, (64000, 2)) + OFFSET).astype(np.int16)
    output = tmp_path / "out.vqc"
    with pytest.raises(ValueError) as raised:
        vq.write_compressed(recording_of(traces, gain=None), output, codec="spike-cae", progress_bar=False)
    message = str(raised.value)
    assert "\n" not in message
    assert message.startswith("spike-cae cannot compress this recording; it needs (1) channel locations: the recording "
                              "has no probe; attach one (recording.set_probe(probe) with probeinterface")
    assert "or pass channel_locations=[[x_um, y_um], ...]" in message
    assert ("(2) a gain to uV (the CAE works in uV): the recording has no channel gains; set them "
            "(recording.set_channel_gains(uV_per_unit)" in message and "or pass gain_to_uV=..." in message)
    assert "(3) at least 4 channels for model nn32-4x64-r2 (the recording has 2)" in message
    assert "model='identity'" in message and "codec='archive' or 'storage'" in message
    assert list(tmp_path.iterdir()) == []  # raised before anything was written

    # the case: 1 channel, no probe, no gain, 32 kHz (one channel needs no geometry)
    one_channel = recording_of(traces[:, :1], gain=None)
    with pytest.raises(ValueError) as raised:
        vq.compress(one_channel, codec="spike-cae", progress_bar=False)
    message = str(raised.value)
    assert message == ("spike-cae cannot compress this recording; it needs (1) a gain to uV (the CAE works in uV): the "
                       "recording has no channel gains; set them (recording.set_channel_gains(uV_per_unit), e.g. 0.195 "
                       "for Intan) or pass gain_to_uV=...; (2) at least 4 channels for model nn32-4x64-r2 (the recording "
                       "has 1): use a recording with more channels, model='identity' (raw snippets of any width), or a "
                       "codec that needs no geometry (codec='archive' or 'storage')")


def test_sampling_rate_dtype_gains_and_footprint_are_checked_up_front():
    traces, locations = band_passed_spikes()
    recording = recording_of(traces[:2000].astype(np.float32), locations, sampling_frequency=20000.0)
    recording.set_channel_gains(np.linspace(0.1, 0.2, 32))
    with pytest.raises(ValueError) as raised:
        codec_for_recording("spike-cae", recording)
    message = str(raised.value)
    assert "(1) one gain to uV for every channel (the recording's gains range from 0.1 to 0.2 uV per unit)" in message
    assert ("(2) a sampling rate near the 32000 Hz model nn32-4x64-r2 was trained at (25600 to 40000 Hz; the recording "
            "has 20000 Hz, so a 64-sample snippet would span 3.20 ms instead of 2.00 ms): resample it "
            "(spikeinterface.preprocessing.resample(recording, 32000)) or use model='identity'") in message
    assert "(3) int16 traces (the recording's are float32): spikeinterface.preprocessing.scale_to_int16(recording)" in message

    wide = recording_of(traces[:2000], locations)
    with pytest.raises(ValueError, match=r"needs at least 36 channels for model nn32-4x64-r2 \(4-channel snippets x "
                                         r"footprint_groups=9\) \(the recording has 32\)"):
        codec_for_recording("spike-cae", wide, footprint_groups=9)
    # 30 kHz (Neuropixels) is close enough to the 32 kHz of the models
    assert codec_for_recording("spike-cae", recording_of(traces[:2000], locations, sampling_frequency=30000.0)).params["model"] == "nn32-4x64-r2"
    # raw snippets need no gain and no particular rate; a small recording gets narrower snippets
    identity = codec_for_recording("spike-cae", recording_of(traces[:2000, :3], locations[:3], gain=None, sampling_frequency=20000.0),
                                   model="identity")
    assert identity.snippet_shape() == (3, 64, 21) and identity.params["gain_to_uV"] is None


def test_a_codec_configured_by_hand_lists_every_missing_piece_at_encode():
    codec = get_codec("spike-cae", model="nn32-4x64-r2")
    with pytest.raises(ValueError) as raised:
        codec.encode(np.zeros((1000, 2), dtype=np.int16))
    message = str(raised.value)
    assert message.startswith("spike-cae cannot encode; it needs (1) channel locations: pass channel_locations=[[x_um, y_um], ...]")
    assert "(2) a gain to uV (the CAE works in uV): pass gain_to_uV=..." in message
    assert "(3) at least 4 channels (4-channel snippets x footprint_groups=1; the traces have 2)" in message


# -- the DC offset ---------------------------------------------------------------------------------
@pytest.mark.parametrize("model", [None, "identity"])
def test_a_recording_at_an_offset_rebuilds_at_that_offset(model):
    traces, locations = band_passed_spikes()
    assert not np.any(channel_offsets(traces))  # the offset-free twin sends no offset,
    assert not np.any(channel_offsets(traces + np.int16(1)))  # nor one lost in the noise (1 unit under 10 rms)
    shifted = traces + np.int16(OFFSET)
    plain = vq.compress(recording_of(traces, locations), codec="spike-cae", model=model, progress_bar=False)
    at_offset = vq.compress(recording_of(shifted, locations), codec="spike-cae", model=model, progress_bar=False)
    rebuilt = at_offset.get_traces()
    input_mean, rebuilt_mean = shifted.mean(axis=0), rebuilt.mean(axis=0)
    assert np.abs(rebuilt_mean - input_mean).max() < 3, (rebuilt_mean - input_mean)
    # the offset is removed before detection: the same spikes, the same samples, shifted by the offset
    np.testing.assert_array_equal(rebuilt.astype(np.int64) - OFFSET, plain.get_traces().astype(np.int64))
    # its cost: one int16 per channel per chunk, in the chunk's bytes
    codec = at_offset.codec
    assert len(codec.encode(shifted[:32000])) - len(codec.encode(traces[:32000])) == 2 * 32
    chunk = at_offset._reader.read_chunk_bytes(0, 0)
    assert unpack_parts(chunk, 5, "spike-cae")[0][0] == 2  # chunk format 2


def test_per_channel_offsets_of_both_signs_and_a_single_channel_without_probe():
    traces, locations = band_passed_spikes()
    offsets = (np.arange(32) * 150 - 2400).astype(np.int16)  # -2400 .. +2250
    shifted = traces + offsets[None, :]
    compressed = vq.compress(recording_of(shifted, locations), codec="spike-cae", model="identity", progress_bar=False)
    rebuilt = compressed.get_traces()
    assert np.abs(rebuilt.mean(axis=0) - shifted.mean(axis=0)).max() < 3
    # one channel, no probe, no gain: raw snippets need neither
    single = vq.compress(recording_of(shifted[:, :1], gain=None), codec="spike-cae", model="identity", progress_bar=False)
    assert abs(single.get_traces().mean() - shifted[:, 0].mean()) < 3


def test_background_statistics_carry_the_offsets_only_when_they_are_not_zero():
    traces, _ = band_passed_spikes()
    model = estimate_background(traces, ar_order=6)
    assert len(model.to_bytes()) == 3 + 32 * 7  # no offset: no byte
    model.offsets = np.full(32, OFFSET, dtype=np.int16)
    data = model.to_bytes()
    assert len(data) == 3 + 32 * 7 + 2 * 32
    assert BackgroundModel.from_bytes(data, 32).offsets.tolist() == [OFFSET] * 32
    with pytest.raises(CorruptDataError):  # chunk format 1 never carried offsets
        BackgroundModel.from_bytes(data, 32, allow_offsets=False)
    with pytest.raises(CorruptDataError):
        BackgroundModel.from_bytes(data[:-2], 32)


def test_chunk_format_1_of_the_committed_fixture_still_decodes_with_offset_zero():
    name = "codec_spike_cae.vqc"
    entry = json.loads((FIXTURES / "codec_manifest.json").read_text())["files"][name]
    reader = ContainerReader(FIXTURES / name)
    codec = reader.codec
    chunk = reader.read_chunk_bytes(0, 0)
    header, background, times, channels, payload = unpack_parts(chunk, 5, "spike-cae")
    assert header[0] == 1  # written before the offsets
    decoded = vq.read_compressed(FIXTURES / name).get_traces()
    expected = np.load(FIXTURES / entry["decoded_file"])
    assert np.abs(decoded.astype(np.int64) - expected.astype(np.int64)).max() <= 1  # float decoder: 1 LSB across machines
    num_samples = reader.chunks[0][0][1] - reader.chunks[0][0][0]
    np.testing.assert_array_equal(codec.decode(chunk, num_samples, 4, np.int16), decoded[:num_samples])
    # a format-1 chunk whose background flags claim offsets, and an unknown format, are refused
    flagged = background[:2] + bytes([1]) + background[3:] + np.full(4, OFFSET, dtype="<i2").tobytes()
    with pytest.raises(CorruptDataError, match="unknown flags"):
        codec.decode(pack_parts([header, flagged, times, channels, payload]), num_samples, 4, np.int16)
    with pytest.raises(CorruptDataError, match="chunk format version 3 is not supported"):
        codec.decode(pack_parts([bytes([3]) + header[1:], background, times, channels, payload]), num_samples, 4, np.int16)
