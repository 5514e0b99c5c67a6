"""spike-vq (online-learned residual VQ) and spike-pca (per-chunk PCA): the quantiser, the integer
coder they share, and the codecs on a real SpikeInterface ground-truth recording."""

import numpy as np
import pytest

from spikeinterface_vqcompress.core.codecs.spike_vq.quantiser import OnlineSpikeVQ, kmeans
from spikeinterface_vqcompress.core.entropy.integers import decode_indices, decode_integers, encode_indices, encode_integers
from spikeinterface_vqcompress.core.errors import CorruptDataError


def clustered_features(num_spikes=600, num_features=24, num_units=5, seed=0, appear_at=None):
    """Features of ``num_units`` units (noise variance 1); unit 0 only after ``appear_at`` spikes."""
    rng = np.random.default_rng(seed)
    means = rng.normal(0, 6, (num_units, num_features)).astype(np.float32)
    labels = rng.integers(0, num_units, num_spikes)
    if appear_at is not None:
        labels[:appear_at] = rng.integers(1, num_units, appear_at)
    return (means[labels] + rng.normal(0, 1, (num_spikes, num_features))).astype(np.float32), labels, means


def new_quantiser(num_features=24, residual_step=2.0, rng_seed=1, learning_rate=0.125, codebook_size=16, refine_step=None):
    prior = np.random.default_rng(rng_seed).normal(0, 1, (8, num_features)).astype(np.float32)
    return OnlineSpikeVQ(prior, escape_threshold=4.0, escape_step=1.0, learning_rate=learning_rate,
                         codebook_size=codebook_size, residual_step=residual_step, refine_step=refine_step)


@pytest.mark.parametrize("residual_step,refine_step", [(None, None), (1.0, None), (3.0, None), (3.0, 1.0), (None, 1.0)])
def test_decoder_replays_the_encoders_codebook_exactly(residual_step, refine_step):
    features, _, _ = clustered_features()
    encoder = new_quantiser(residual_step=residual_step, refine_step=refine_step)
    indices, residuals, bases, escapes, refinements, decoded = encoder.encode(features)
    decoder = new_quantiser(residual_step=residual_step, refine_step=refine_step)
    replayed = decoder.decode(indices, residuals, bases, escapes, refinements)
    np.testing.assert_array_equal(replayed, decoded)  # bit-identical: the decoder tracks the same codebook
    np.testing.assert_array_equal(decoder.codebook, encoder.codebook)
    assert len(residuals) == (0 if residual_step is None else len(features) - len(escapes))
    assert (len(refinements) > 0) == (refine_step is not None)


def test_refinement_makes_each_codeword_the_mean_of_its_units_spikes():
    """A coarse residual (dead zone of 3 noise SD) leaves the codewords biased; the refinement,
    computed from the original features, brings them to the units' means."""
    features, labels, means = clustered_features(num_spikes=1500)
    errors = {}
    for refine_step in (None, 1.0):
        quantiser = new_quantiser(residual_step=3.0, refine_step=refine_step)
        indices = quantiser.encode(features)[0]
        tail = np.arange(1000, 1500)
        coded = tail[indices[tail] != quantiser.escape_symbol]
        errors[refine_step] = ((quantiser.codebook[indices[coded]] - means[labels[coded]]) ** 2).mean()
    # a codeword holding ~100 spikes is the mean to ~0.1 noise SD; without refinement it keeps its bias
    assert errors[1.0] < 0.05 and errors[1.0] < 0.25 * errors[None], errors


def test_a_channel_escape_threshold_keeps_units_that_differ_on_one_channel_apart():
    """Two units that differ by 2.5 noise SD on the 4 features of one channel of six: the whole-snippet
    mean squared error (about 1 + 0.5) lets one codeword code both, and a residual step of 3 erases the
    difference; the per-channel error (about 1 + 3 on that channel) sends the second unit's first spike
    as an escape, and from then on each unit has its own codeword."""
    rng = np.random.default_rng(4)
    first = np.zeros(24, dtype=np.float32)
    first[:4] = 8.0
    second = first.copy()
    second[4:8] += 2.5  # channel 1 only
    labels = rng.integers(0, 2, 400)
    features = (np.stack([first, second])[labels] + rng.normal(0, 1, (400, 24))).astype(np.float32)
    prior = first[None, :].copy()
    shared = {}
    for threshold in (None, 3.0):
        quantiser = OnlineSpikeVQ(prior, escape_threshold=4.0, escape_step=1.0, learning_rate=0.125, codebook_size=8,
                                  residual_step=3.0, refine_step=1.0, group_threshold=threshold, num_groups=6)
        indices, *_ = quantiser.encode(features)
        tail = slice(200, None)
        majority = [np.bincount(indices[tail][labels[tail] == unit]).argmax() for unit in (0, 1)]
        shared[threshold] = majority[0] == majority[1]
    assert shared == {None: True, 3.0: False}


def test_lenient_young_codewords_code_a_new_units_next_spikes_by_index():
    """A codeword born from one spike carries that spike's noise: the next spikes of its unit lie
    about 2 noise variances per feature from it, past a threshold of 1.5, so many escape too and the
    unit keeps replacing codewords. Scaled by (1 + 1/n), the young codeword takes more of them (half
    the escapes), and the decoder still replays the stream bit for bit (the test is the encoder's alone)."""
    rng = np.random.default_rng(5)
    mean = np.zeros(24, dtype=np.float32)
    mean[:8] = 6.0
    features = (mean + rng.normal(0, 1, (200, 24))).astype(np.float32)
    prior = np.zeros((1, 24), dtype=np.float32)
    escapes = {}
    for lenient in (False, True):
        kwargs = dict(escape_threshold=1.5, escape_step=1.0, learning_rate=0.125, codebook_size=8, residual_step=3.0,
                      refine_step=1.0, lenient_young_codewords=lenient)
        encoder = OnlineSpikeVQ(prior, **kwargs)
        indices, residuals, bases, escaped, refinements, decoded = encoder.encode(features)
        replayed = OnlineSpikeVQ(prior, **kwargs).decode(indices, residuals, bases, escaped, refinements)
        np.testing.assert_array_equal(replayed, decoded)
        escapes[lenient] = len(escaped)
    assert escapes[False] >= 2 * escapes[True], escapes  # 23 against 11 here
    with pytest.raises(ValueError, match="needs refine_step"):
        OnlineSpikeVQ(prior, 1.5, 1.0, 0.125, residual_step=3.0, lenient_young_codewords=True)


def test_refinement_batches_follow_the_spike_count():
    from spikeinterface_vqcompress.core.codecs.spike_vq.quantiser import MAX_HELD, batch_size, refinement_scale

    assert [batch_size(held) for held in (1, 4, 5, 10, 20, 40, 500)] == [4, 4, 5, 10, 20, 32, 32]
    weight, unit = refinement_scale(1, 4)
    assert weight == np.float32(0.8) and unit == np.float32(0.4)
    assert refinement_scale(10 * MAX_HELD, 32) == refinement_scale(MAX_HELD, 32)  # old spikes fade: drift is followed


def test_a_refined_stream_missing_its_updates_is_refused():
    features, _, _ = clustered_features(num_spikes=200)
    indices, residuals, bases, escapes, refinements, _ = new_quantiser(refine_step=1.0).encode(features)
    with pytest.raises(ValueError, match="refinements"):
        new_quantiser(refine_step=1.0).decode(indices, residuals, bases, escapes, refinements[:-1])


def test_a_unit_that_appears_gets_a_codeword_at_its_first_spike_and_is_coded_by_index_after():
    features, labels, _ = clustered_features(appear_at=300)
    quantiser = new_quantiser()
    indices, _, _, escapes, _, _ = quantiser.encode(features)
    unit_spikes = np.flatnonzero(labels == 0)
    assert indices[unit_spikes[0]] == quantiser.escape_symbol  # a new unit: escape
    assert np.mean(indices[unit_spikes[3:]] != quantiser.escape_symbol) > 0.95  # then its codeword
    # five units: a handful of escapes, not one per spike
    assert 5 <= len(escapes) <= 20, len(escapes)


def test_online_learning_pulls_the_codewords_to_the_units():
    features, labels, means = clustered_features(num_spikes=1500)
    learning, frozen = new_quantiser(), new_quantiser(learning_rate=0.0)
    decoded_learning = learning.encode(features)[-1]
    decoded_frozen = frozen.encode(features)[-1]
    tail = slice(1000, None)
    error_learning = ((decoded_learning[tail] - means[labels[tail]]) ** 2).mean()
    error_frozen = ((decoded_frozen[tail] - means[labels[tail]]) ** 2).mean()
    assert error_learning < 0.6 * error_frozen, (error_learning, error_frozen)


def test_coarser_residual_steps_send_fewer_nonzero_values():
    features, _, _ = clustered_features()
    nonzero = [np.count_nonzero(new_quantiser(residual_step=step).encode(features)[1]) for step in (1.0, 2.0, 4.0)]
    assert nonzero[0] > nonzero[1] > nonzero[2]


def test_damaged_streams_are_refused_by_the_quantiser():
    features, _, _ = clustered_features(num_spikes=50)
    indices, residuals, bases, escapes, _, _ = new_quantiser().encode(features)
    with pytest.raises(ValueError, match="more escapes announced"):
        new_quantiser().decode(indices, residuals, bases[:0], escapes[:0])
    bad = indices.copy()
    bad[0] = 15  # an empty slot at the first spike
    with pytest.raises(ValueError, match="empty"):
        new_quantiser().decode(bad, residuals, bases, escapes)


def test_kmeans_finds_separated_clusters():
    features, labels, means = clustered_features(num_spikes=500, num_units=4)
    centres = kmeans(features, 4, seed=0)
    distances = ((centres[:, None, :] - means[None]) ** 2).sum(axis=2)
    assert sorted(np.argmin(distances, axis=1).tolist()) == [0, 1, 2, 3]


@pytest.mark.parametrize("values", [np.zeros(0, dtype=np.int64), np.array([0]), np.array([-32768, 32767, 0, -1, 1]),
                                    np.round(np.random.default_rng(0).laplace(0, 3, 4000)).astype(np.int64)])
def test_integer_coder_round_trips(values):
    data = encode_integers(values)
    np.testing.assert_array_equal(decode_integers(data, values.size), values)


def test_integer_coder_spends_about_the_entropy_on_laplacian_values():
    values = np.round(np.random.default_rng(1).laplace(0, 3, 20000)).astype(np.int64)
    counts = np.bincount(values - values.min())
    probabilities = counts[counts > 0] / values.size
    entropy_bits = -(probabilities * np.log2(probabilities)).sum()
    assert 8 * len(encode_integers(values)) / values.size < entropy_bits + 0.35


def test_index_coder_round_trips_and_uses_the_block_table_when_shorter():
    rng = np.random.default_rng(2)
    peaked = np.minimum(rng.geometric(0.3, 3000) - 1, 64)
    data = encode_indices(peaked, 65)
    assert data[0] == 1 and len(data) < 3000 * np.log2(65) / 8 * 0.7
    np.testing.assert_array_equal(decode_indices(data, 3000, 65), peaked)
    flat = rng.integers(0, 65, 20)
    np.testing.assert_array_equal(decode_indices(encode_indices(flat, 65), 20, 65), flat)
    with pytest.raises(CorruptDataError):
        decode_integers(encode_integers(np.arange(100))[:10], 100)


# -- the codecs on a recording ------------------------------------------------------------------------
@pytest.fixture(scope="module")
def generated():
    """A 10 s, 32-channel int16 recording from SpikeInterface's generator and its ground truth."""
    from spikeinterface_vqcompress.training.spike_vq import training_recording

    return training_recording(777, duration_s=10.0, num_units=10)


@pytest.mark.parametrize("config", [{"id": "spike-vq", "residual_step": None}, {"id": "spike-vq"},
                                    {"id": "spike-vq", "refine_step": 1.0}, {"id": "spike-pca", "step": 1.0}])
def test_spike_codecs_rebuild_the_spikes_from_the_real_bytes(generated, config, tmp_path):
    import spikeinterface_vqcompress as vq
    from spikeinterface_vqcompress.core.codecs.spike_cae.detection import estimate_noise_levels

    compressed = vq.compress(generated, codec=config, file_path=tmp_path / "rec.vqc")
    rebuilt = compressed.get_traces()
    raw = generated.get_traces()
    assert rebuilt.shape == raw.shape and rebuilt.dtype == np.int16
    assert compressed.compression_ratio > 100  # every container byte counted
    # the big spikes are where they were, at about their depth; the noise level is kept
    noise = estimate_noise_levels(raw)
    trough_channel = np.argmin(raw.min(axis=0))
    troughs = np.flatnonzero(raw[:, trough_channel] < -8 * noise[trough_channel])
    assert len(troughs) > 5
    ratio = rebuilt[troughs, trough_channel].astype(float) / raw[troughs, trough_channel]
    assert 0.6 < np.median(ratio) < 1.4, np.median(ratio)
    rebuilt_noise = estimate_noise_levels(rebuilt)
    assert np.allclose(np.median(rebuilt_noise), np.median(noise), rtol=0.15)
    # the file alone rebuilds the same traces, and its size is the ratio's
    again = vq.read_compressed(tmp_path / "rec.vqc")
    np.testing.assert_array_equal(again.get_traces(), rebuilt)
    assert (tmp_path / "rec.vqc").stat().st_size == compressed.encoded_nbytes


def test_a_finer_residual_step_costs_more_bits_and_fits_the_spikes_better(generated):
    import spikeinterface_vqcompress as vq

    raw = generated.get_traces().astype(float)
    results = []
    for step in (None, 1.0):
        compressed = vq.compress(generated, codec={"id": "spike-vq", "residual_step": step})
        rebuilt = compressed.get_traces().astype(float)
        spikes = np.abs(raw) > 100  # large deflections only (noise is 20 units)
        results.append((compressed.encoded_nbytes, np.sqrt(((rebuilt - raw)[spikes] ** 2).mean())))
    (bytes_coarse, error_coarse), (bytes_fine, error_fine) = results
    assert bytes_fine > bytes_coarse
    assert error_fine < error_coarse


def test_spike_vq_on_a_tetrode_uses_the_channels_it_has(generated):
    import spikeinterface_vqcompress as vq

    tetrode = generated.select_channels(generated.channel_ids[:4])
    compressed = vq.compress(tetrode, codec="spike-vq")
    assert compressed.codec.params["snippet_channels"] == 4
    assert compressed.get_traces().shape == (tetrode.get_num_samples(), 4)


def test_spike_vq_snippets_wider_than_the_prior_send_the_outer_channels(generated):
    """The shipped prior covers 16 channels; a 32-channel snippet starts its outer channels' codewords at
    zero and learns them, so a spike's far channels are rebuilt instead of left to the background."""
    import spikeinterface_vqcompress as vq

    raw = generated.get_traces().astype(float)
    errors, sizes = {}, {}
    for channels in (16, 32):
        compressed = vq.compress(generated, codec={"id": "spike-vq", "residual_step": 1.0, "snippet_channels": channels})
        assert compressed.codec.params["snippet_channels"] == channels
        rebuilt = compressed.get_traces().astype(float)
        # the spikes' far parts: samples where raw swings beyond 3 noise levels (20 units) but not beyond 6
        far = (np.abs(raw) > 60) & (np.abs(raw) < 120)
        errors[channels] = np.sqrt(((rebuilt - raw)[far] ** 2).mean())
        sizes[channels] = compressed.encoded_nbytes
    assert errors[32] < errors[16], errors
    assert sizes[32] > sizes[16]


def test_spike_vq_without_a_probe_says_what_is_missing():
    from spikeinterface.core import NumpyRecording

    import spikeinterface_vqcompress as vq

    recording = NumpyRecording(np.zeros((3000, 8), dtype=np.int16), sampling_frequency=30000.0)
    with pytest.raises(ValueError, match="spike-vq cannot compress this recording; it needs channel locations"):
        vq.compress(recording, codec="spike-vq")


def test_damaged_spike_vq_payload_is_reported(generated):
    from spikeinterface_vqcompress import get_codec

    codec = get_codec("spike-vq").with_recording(generated)
    traces = generated.get_traces(end_frame=30000)
    data = bytearray(codec.encode(traces))
    assert codec.decode(bytes(data), 30000, 32, np.int16).shape == (30000, 32)
    with pytest.raises(CorruptDataError):
        codec.decode(bytes(data[: len(data) // 2]), 30000, 32, np.int16)


def test_spike_vq_parameters_are_checked():
    from spikeinterface_vqcompress import get_codec

    with pytest.raises(ValueError, match="codec 'spike-vq': parameter 'residual_step' must be > 0"):
        get_codec("spike-vq", residual_step=0)
    with pytest.raises(ValueError, match="codec 'spike-vq': parameter 'codebook_size' must be between 1 and 1024"):
        get_codec("spike-vq", codebook_size=2000)
    with pytest.raises(ValueError, match="codec 'spike-pca': parameter 'step' must be > 0"):
        get_codec("spike-pca", step=0)
    with pytest.raises(ValueError, match="spike-vq: lenient_young_codewords needs refine_step"):
        get_codec("spike-vq", lenient_young_codewords=True)
    with pytest.raises(ValueError, match="parameter 'lenient_young_codewords' must be true or false"):
        get_codec("spike-vq", refine_step=1.0, lenient_young_codewords="yes")


def test_hardware_profile_counts_the_online_learning():
    from spikeinterface_vqcompress import get_codec

    profile = get_codec("spike-vq").hardware_profile(num_channels=1024, sampling_frequency=20000.0)
    assert profile.algorithmic_latency_chunks == 0  # causal
    assert profile.operations_per_spike["mac"] > 256 * 16 * 12  # projection + search + update
    assert profile.parameter_count >= 256 * 16 * 12
    assert get_codec("spike-pca").hardware_profile(32, 30000.0).algorithmic_latency_chunks == 1


@pytest.mark.parametrize("codec_id,params", [("spike-vq", {}), ("spike-vq", {"refine_step": 1.0}), ("spike-pca", {})])
def test_mutated_payloads_raise_only_our_error(generated, codec_id, params):
    from spikeinterface_vqcompress import get_codec

    codec = get_codec(codec_id, **params).with_recording(generated)
    traces = generated.get_traces(end_frame=15000)
    data = codec.encode(traces)
    rng = np.random.default_rng(3)
    for _ in range(150):
        mutated = bytearray(data)
        for position in rng.integers(0, len(data), rng.integers(1, 4)):
            mutated[position] = int(rng.integers(0, 256))
        try:
            decoded = codec.decode(bytes(mutated), 15000, 32, np.int16)
        except CorruptDataError:
            continue
        assert decoded.shape == (15000, 32) and decoded.dtype == np.int16


def test_spike_codecs_default_to_ten_second_chunks_and_a_given_duration_wins(generated):
    import spikeinterface_vqcompress as vq

    rate = generated.get_sampling_frequency()
    assert vq.compress(generated, codec="spike-vq").container_header["chunk_num_samples"] == int(10 * rate)
    assert vq.compress(generated, codec="spike-vq", chunk_duration_s=2.0).container_header["chunk_num_samples"] == int(2 * rate)
    assert vq.compress(generated, codec="flac").container_header["chunk_num_samples"] == int(rate)


def test_index_coder_keeps_a_rare_symbol_among_many_spikes():
    indices = np.zeros(30000, dtype=np.int64)
    indices[::3] = 5
    indices[7] = 64  # one use among 30000: a 12-bit table would round it to frequency 0
    np.testing.assert_array_equal(decode_indices(encode_indices(indices, 257), 30000, 257), indices)


@pytest.mark.parametrize("num_features", [3, 8, 100, 128, 129, 192, 300, 1000])
def test_codeword_search_kernel_is_numpys_float32_mean_bit_for_bit(num_features):
    """The encoder's search kernel gives exactly ((codebook - v) ** 2).mean(1) (numpy's pairwise order),
    so a codeword choice never depends on which of the two computed it."""
    from spikeinterface_vqcompress.core.codecs.spike_vq.quantiser import _mean_squared_errors, _pairwise_plan

    rng = np.random.default_rng(num_features)
    codebook = (rng.standard_normal((64, num_features)) * rng.uniform(0.1, 40)).astype(np.float32)
    plan = _pairwise_plan(num_features)
    partial = np.empty((len(plan), 64), dtype=np.float32)
    errors = np.empty(64, dtype=np.float32)
    for _ in range(20):
        vector = (rng.standard_normal(num_features) * 3).astype(np.float32)
        _mean_squared_errors(np.ascontiguousarray(codebook.T), vector, plan, partial, errors)
        assert np.array_equal(errors, ((codebook - vector) ** 2).mean(axis=1))


def _with_field_potential(recording, amplitude=400.0, offset=2000):
    """``recording`` as raw broadband data: a slow (7 Hz) wave of ``amplitude`` units and a DC
    ``offset`` added, no ``is_filtered`` annotation (what a headerless or Open Ephys file gives)."""
    from spikeinterface.core import NumpyRecording

    traces = recording.get_traces().astype(np.float64)
    time_s = np.arange(traces.shape[0]) / recording.get_sampling_frequency()
    phase = np.linspace(0, np.pi / 2, traces.shape[1])[None, :]
    traces += amplitude * np.sin(2 * np.pi * 7.0 * time_s[:, None] + phase) + offset
    raw = NumpyRecording(np.round(traces).astype(np.int16), sampling_frequency=recording.get_sampling_frequency())
    raw.set_probe(recording.get_probe(), in_place=True)
    return raw


def test_spike_vq_band_passes_raw_broadband_data_before_detection(generated):
    """A field potential 20x the noise hides the spikes from a threshold on the raw signal; "auto"
    band-passes a recording not marked filtered, finds about the spikes of the clean recording, keeps the
    offset and drops the slow wave; a filtered recording (the generator's) is coded as before."""
    import spikeinterface_vqcompress as vq
    from spikeinterface_vqcompress import get_codec

    assert generated.get_annotation("is_filtered")
    assert get_codec("spike-vq").with_recording(generated).params["bandpass_hz"] is None
    raw = _with_field_potential(generated)
    auto = get_codec("spike-vq").with_recording(raw)
    assert auto.params["bandpass_hz"] == [300.0, 6000.0] and auto.params["sampling_frequency"] == raw.get_sampling_frequency()
    unfiltered = get_codec("spike-vq", bandpass_hz=None).with_recording(raw)
    clean = get_codec("spike-vq", bandpass_hz=(300, 6000)).with_recording(generated)  # the same filter, no slow wave
    head = slice(0, int(5 * raw.get_sampling_frequency()))
    found = {name: len(codec.detect(recording.get_traces()[head])[0])
             for name, codec, recording in (("auto", auto, raw), ("none", unfiltered, raw), ("clean", clean, generated))}
    assert found["none"] < 0.5 * found["clean"], found
    assert 0.9 * found["clean"] < found["auto"] < 1.1 * found["clean"], found

    compressed = vq.compress(raw, codec="spike-vq")
    assert compressed.codec.params["bandpass_hz"] == [300.0, 6000.0]  # stored: the file says what was coded
    rebuilt = compressed.get_traces().astype(np.float64)
    np.testing.assert_allclose(np.median(rebuilt, axis=0), 2000, atol=40)  # the offset is kept
    slow = np.abs(np.fft.rfft(rebuilt - rebuilt.mean(axis=0), axis=0))
    slow_raw = np.abs(np.fft.rfft(raw.get_traces().astype(np.float64) - 2000, axis=0))
    band = slice(int(6 * raw.get_total_duration()), int(8 * raw.get_total_duration()) + 1)  # 6-8 Hz bins
    assert slow[band].max() < 0.05 * slow_raw[band].max()  # the field potential is not coded


def test_spike_vq_band_pass_parameters_are_checked():
    from spikeinterface_vqcompress import get_codec

    with pytest.raises(ValueError, match="parameter 'bandpass_hz' needs 0 < low < high"):
        get_codec("spike-vq", bandpass_hz=(6000, 300))
    with pytest.raises(ValueError, match="parameter 'bandpass_hz' upper edge 20000 Hz must be below the Nyquist"):
        get_codec("spike-pca", bandpass_hz=(300, 20000), sampling_frequency=30000)
    with pytest.raises(ValueError, match="parameter 'bandpass_hz' must be"):
        get_codec("spike-vq", bandpass_hz="on")
