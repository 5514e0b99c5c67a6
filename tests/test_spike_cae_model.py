"""Spike CAE (Wu et al. 2018): model interface, shipped weights, training, baselines, analyzer extension."""

import json

import numpy as np
import pytest
import torch

from spikeinterface_vqcompress.core.weights import MODELS_FOLDER, SHIPPED_WEIGHTS
from spikeinterface_vqcompress.core.codecs.spike_cae.model import FoldedEncoder, SpikeCAE, available_spike_cae_models, load_spike_cae, model_sha256, save_spike_cae
from spikeinterface_vqcompress.core.codecs.spike_cae.detection import neighbour_channel_order
from spikeinterface_vqcompress.evaluation.metrics import snippet_sndr_db
from spikeinterface_vqcompress.training.spike_cae import extract_ground_truth_snippets, extract_snippets, train_spike_cae

SMALL = dict(hidden_channels=32, bottleneck_channels=16, groups=4)


def _synthetic_snippets(num_spikes=600, num_channels=4, num_samples=64, seed=0):
    rng = np.random.default_rng(seed)
    time = np.arange(num_samples)
    shapes = np.stack([-120 * np.exp(-((time - 21) / 3.0) ** 2) + 40 * np.exp(-((time - 30) / 6.0) ** 2),
                       -60 * np.exp(-((time - 21) / 2.0) ** 2) + 20 * np.exp(-((time - 27) / 4.0) ** 2)])
    kind = rng.integers(0, 2, num_spikes)
    gains = rng.uniform(0.3, 1.0, (num_spikes, num_channels, 1))
    gains[:, 0] = 1.0
    return (shapes[kind][:, None, :] * gains + rng.normal(0, 5, (num_spikes, num_channels, num_samples))).astype(np.float32)


# -- model interface ---------------------------------------------------------------------------------
def test_model_shapes_and_index_range():
    model = SpikeCAE(num_channels=4, num_samples=64, codebook_size=32, **SMALL)
    snippets = _synthetic_snippets(50)
    indices = model.encode_indices(snippets)
    assert indices.shape == (50, 16) and indices.dtype == np.int64
    assert indices.min() >= 0 and indices.max() < 32
    decoded = model.decode_indices(indices)
    assert decoded.shape == (50, 4, 64) and decoded.dtype == np.float32
    assert model.code_dim == 16 and model.trough_sample == 21
    json.dumps(model.config())  # JSON-able
    with pytest.raises(ValueError, match="shape"):
        model.encode_indices(snippets[:, :3])
    with pytest.raises(ValueError, match="indices must lie"):
        model.decode_indices(np.full((2, 16), 32))


@pytest.mark.parametrize("config", [dict(num_pool=2, kernel_size=3), dict(num_pool=3, kernel_size=5, num_samples=48)])
def test_folded_encoder_equals_the_module_in_eval_mode(config):
    """Batch norms folded, time-major layout, micro-batches: the same latent and the same indices."""
    config = {"num_channels": 4, "num_samples": 64, "codebook_size": 32, **SMALL, **config}
    torch.manual_seed(0)
    model = SpikeCAE(**config)
    snippets = _synthetic_snippets(203, num_samples=config["num_samples"])  # not a multiple of the micro-batch
    model.set_normalization(snippets)
    with torch.no_grad():  # non-trivial batch-norm statistics and affine terms
        for module in model.modules():
            if isinstance(module, torch.nn.BatchNorm1d):
                module.running_mean.uniform_(-0.5, 0.5)
                module.running_var.uniform_(0.5, 2.0)
                module.weight.uniform_(0.5, 1.5)
                module.bias.uniform_(-0.2, 0.2)
    model.train()  # the folded encoder uses the running statistics whatever the module's mode
    folded = FoldedEncoder(model, micro_batch=16)(torch.from_numpy(snippets))
    model.eval()
    with torch.no_grad():
        reference = model.encode_latent(torch.from_numpy(snippets))
    assert folded.shape == reference.shape
    torch.testing.assert_close(folded, reference, rtol=1e-4, atol=1e-4)
    model.train()
    indices = model.encode_indices(snippets)
    assert model.training  # encode_indices leaves the module's mode alone
    model.eval()
    with torch.no_grad():
        expected = model.quantizer.quantize_indices(reference).numpy()
    assert np.mean(indices == expected) > 0.999


def test_folded_encoder_cache_follows_weight_changes():
    model = SpikeCAE(num_channels=4, num_samples=64, codebook_size=32, **SMALL)
    snippets = _synthetic_snippets(40)
    first = model.folded_encoder()
    assert model.folded_encoder() is first  # unchanged weights: the cached copy
    with torch.no_grad():
        model.encoder_block.reduce.weight.mul_(-1.0)  # in place, as an optimiser step would
    second = model.folded_encoder()
    assert second is not first
    model.eval()
    with torch.no_grad():
        torch.testing.assert_close(second(torch.from_numpy(snippets)), model.encode_latent(torch.from_numpy(snippets)),
                                   rtol=1e-4, atol=1e-4)
    other = SpikeCAE(num_channels=4, num_samples=64, codebook_size=32, **SMALL)
    model.load_state_dict(other.state_dict())
    assert model.folded_encoder() is not second


def test_folded_encoder_on_a_shipped_model():
    model = load_spike_cae("nn32-4x64-r2")
    snippets = np.random.default_rng(1).normal(0, 30, (100, 4, 64)).astype(np.float32)
    with torch.no_grad():
        reference = model.encode_latent(torch.from_numpy(snippets))
    torch.testing.assert_close(FoldedEncoder(model)(torch.from_numpy(snippets)), reference, rtol=1e-4, atol=1e-4)


def test_paper_architecture_sizes():
    model = SpikeCAE(num_channels=15, num_samples=48, codebook_size=512)
    assert model.encoder_input.out_channels == 256
    assert model.encoder_block.reduce.out_channels == 128 and model.encoder_block.grouped.groups == 32
    assert model.encoder_output.out_channels == 16
    assert model.quantizer.codebook.shape == (512, 12)  # 16 vectors of length T/4 per spike
    latent = model.encode_latent(torch.zeros(2, 15, 48))
    assert latent.shape == (2, 16, 12)
    with pytest.raises(ValueError, match="divisible"):
        SpikeCAE(num_samples=50)


def test_save_load_roundtrip_and_hash(tmp_path):
    torch.manual_seed(0)
    model = SpikeCAE(codebook_size=16, **SMALL)
    model.set_normalization(_synthetic_snippets(200))
    model.set_index_counts(np.random.default_rng(0).integers(0, 16, (100, 16)))
    path = save_spike_cae(model, tmp_path / "model.pt", dtype=torch.float32)
    loaded = load_spike_cae(path)
    assert model_sha256(loaded) == model_sha256(model)
    snippets = _synthetic_snippets(20)
    model.eval()
    np.testing.assert_array_equal(loaded.encode_indices(snippets), model.encode_indices(snippets))
    tables = loaded.frequency_tables()
    assert tables.shape == (16, 16) and np.all(tables.sum(axis=1) == 2 ** 14) and np.all(tables > 0)
    # the file holds only tensors and plain values: weights_only loading works
    payload = torch.load(path, weights_only=True)
    assert payload["format"] == "spike-cae-v1"
    # a different model hashes differently
    other = SpikeCAE(codebook_size=16, **SMALL)
    assert model_sha256(other) != model_sha256(model)
    with pytest.raises(FileNotFoundError, match="neither a shipped"):
        load_spike_cae(tmp_path / "missing.pt")
    with pytest.raises(ValueError, match="no shipped spike CAE"):
        load_spike_cae(num_channels=7)


def test_shipped_models_present_with_cards():
    assert set(available_spike_cae_models()) == set(SHIPPED_WEIGHTS["spike-cae"])
    for name, file_name in SHIPPED_WEIGHTS["spike-cae"].items():
        path = MODELS_FOLDER / file_name
        card = json.loads(path.with_suffix(".json").read_text())
        import hashlib

        assert hashlib.sha256(path.read_bytes()).hexdigest() == card["weights_sha256"]
        assert path.stat().st_size < 2_000_000
        model = load_spike_cae(name)
        assert model_sha256(model) == card["model_sha256"]
        assert card["training"]["command"].startswith("python benchmarks/train_spike_cae.py")
    assert load_spike_cae(num_channels=4).num_channels == 4
    # 15 channels: the retrained np64-15x96 (0.1 picked the 1-epoch np64-15x48 here, issue 27)
    assert load_spike_cae(num_channels=15).num_samples == 96
    assert load_spike_cae("np64-15x48").codebook_size == 512


# -- snippet extraction -----------------------------------------------------------------------------
def test_neighbour_order_and_extraction():
    locations = np.array([[0, 0], [0, 20], [0, 40], [0, 60], [20, 0]], dtype=float)
    order = neighbour_channel_order(locations, 1, 3)
    assert order[0] == 1 and set(order[1:]) == {0, 2}
    traces = np.zeros((200, 5), dtype=np.float32)
    traces[100, 1] = -50
    snippets = extract_snippets(traces, [100], order[None, :], num_samples=64, trough_sample=21)
    assert snippets.shape == (1, 3, 64) and snippets[0, 0, 21] == -50 and np.count_nonzero(snippets) == 1
    with pytest.raises(ValueError, match="fit inside"):
        extract_snippets(traces, [5], order, num_samples=64, trough_sample=21)


def test_ground_truth_snippets_are_trough_aligned(ground_truth_file):
    extracted = extract_ground_truth_snippets(ground_truth_file, num_channels=4, num_samples=64)
    snippets = extracted["snippets_uV"]
    assert snippets.ndim == 3 and snippets.shape[1:] == (4, 64) and len(snippets) > 50
    # each spike was moved to the local minimum of its peak channel: sample 21 is (nearly always) the
    # minimum of channel 0 within +-2 samples (not always: the search window was centred on the unit's trough)
    window = snippets[:, 0, 19:24]
    assert np.mean(np.argmin(window, axis=1) == 2) > 0.9
    # per unit, the mean snippet has its trough at sample 21 on channel 0, the most negative channel
    for unit in np.unique(extracted["unit_indices"]):
        mean = snippets[extracted["unit_indices"] == unit].mean(axis=0)
        assert np.argmin(mean.min(axis=1)) == 0
        assert np.argmin(mean[0]) == 21


# -- training ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("use_ema", [False, True])
def test_training_learns(ground_truth_file, tmp_path, use_ema):
    output = tmp_path / "cae.pt"
    model, report = train_spike_cae([ground_truth_file], codebook_size=32, epochs=5, batch_size=64,
                                    learning_rate=3e-3, use_ema=use_ema, output_path=output, log=lambda _: None,
                                    model_kwargs=SMALL, num_threads=1)
    history = report["training"]["final_epoch"]
    assert history["epoch"] == 5
    assert report["validation"]["sndr_db_mean"] > 3.0
    assert report["validation"]["entropy_coded_bits_per_spike"] < 16 * 5  # below fixed-length 5 bits/index
    card = json.loads(output.with_suffix(".json").read_text())
    assert card["model_sha256"] == model_sha256(load_spike_cae(output))
    assert model.index_counts.sum() > 0


@pytest.fixture(scope="module")
def clean_twin_file(tmp_path_factory):
    """The noise-free twin of ``ground_truth_file`` (same seed, units and spike trains)."""
    from spikeinterface_vqcompress.groundtruth import simulate_recording

    from conftest import FAST_CELLS

    path = tmp_path_factory.mktemp("gt_clean") / "gt_clean.h5"
    return simulate_recording(path, probe="Neuronexus-32", num_units=5, duration_s=10.0, seed=11,
                              num_templates_per_cell=4, cell_models=FAST_CELLS, noise_level_uV=0.0)


def test_denoising_training_targets_the_clean_twin(ground_truth_file, clean_twin_file):
    extracted = extract_ground_truth_snippets(ground_truth_file, clean_recording_or_path=clean_twin_file, margin=2)
    noisy, clean = extracted["snippets_uV"], extracted["clean_snippets_uV"]
    assert clean.shape == noisy.shape
    # cut at the same positions: what separates them is the 10 uV noise, not a shifted spike
    residual_std = float((noisy - clean).std())
    assert 5.0 < residual_std < 15.0
    assert residual_std < 0.5 * float(np.abs(clean[:, 0, 23]).mean())
    model, report = train_spike_cae([ground_truth_file], clean_recordings=[clean_twin_file], codebook_size=32,
                                    epochs=5, batch_size=64, learning_rate=3e-3, log=lambda _: None,
                                    model_kwargs=SMALL, num_threads=1)
    assert report["training"]["target"].startswith("clean")
    assert report["training"]["data"][0]["clean_target"] == str(clean_twin_file)
    assert report["validation"]["sndr_clean_db_mean"] > 3.0
    # a recording that is not the twin (other spike trains) is refused, not paired by position
    import spikeinterface.core as si

    from spikeinterface_vqcompress.groundtruth import load_ground_truth

    clean_recording, clean_sorting = load_ground_truth(clean_twin_file)
    shifted = si.NumpySorting.from_unit_dict(
        {unit_id: clean_sorting.get_unit_spike_train(unit_id) + 7 for unit_id in clean_sorting.unit_ids},
        clean_sorting.get_sampling_frequency())
    with pytest.raises(ValueError, match="noise-free twin"):
        extract_ground_truth_snippets(ground_truth_file, clean_recording_or_path=(clean_recording, shifted))
    with pytest.raises(ValueError, match="noise-free twin of each"):
        train_spike_cae([ground_truth_file], clean_recordings=[clean_twin_file, clean_twin_file], log=lambda _: None)


# -- shipped model quality on unseen data -----------------------------------------------------------
def test_shipped_nn32_model_on_unseen_recording(ground_truth_file):
    model = load_spike_cae("nn32-4x64")
    extracted = extract_ground_truth_snippets(ground_truth_file, num_channels=4, num_samples=64,
                                              trough_sample=model.trough_sample)
    snippets = extracted["snippets_uV"]
    sndr = snippet_sndr_db(snippets, model.reconstruct(snippets))
    assert np.median(sndr) > 5.0
    # jittered input decodes worse than aligned input (the alignment matters) but stays usable
    shifted = np.roll(snippets, 6, axis=2)
    assert np.median(snippet_sndr_db(shifted, model.reconstruct(shifted))) < np.median(sndr)


# -- baselines --------------------------------------------------------------------------------------
def test_baseline_coders_roundtrip_from_bytes():
    from spikeinterface_vqcompress.evaluation.snippet_baselines import CSSnippetCoder, DWTSnippetCoder, PCASnippetCoder, cae_decode_payload, cae_payload

    train, test = _synthetic_snippets(500, seed=1), _synthetic_snippets(60, seed=2)
    results = {}
    for coder in [PCASnippetCoder(2, 20.0), PCASnippetCoder(6, 4.0), DWTSnippetCoder(6, 16.0), DWTSnippetCoder(24, 4.0),
                  CSSnippetCoder(16, 16.0, sparsity=4, basis="pca"), CSSnippetCoder(48, 4.0, sparsity=10, basis="dwt")]:
        coder.fit(train)
        data = coder.encode(test)
        decoded = coder.decode(data, len(test))
        assert decoded.shape == test.shape
        np.testing.assert_array_equal(decoded, coder.decode(coder.encode(test), len(test)))  # deterministic
        results[json.dumps(coder.config())] = (coder.payload_nbytes(test), snippet_sndr_db(test, decoded).mean())
    pca_low, pca_high = list(results.values())[:2]
    assert pca_high[0] > pca_low[0] and pca_high[1] > pca_low[1]  # more bytes, better fidelity
    dwt_low, dwt_high = list(results.values())[2:4]
    assert dwt_high[0] > dwt_low[0] and dwt_high[1] > dwt_low[1]
    model = SpikeCAE(codebook_size=16, **SMALL)
    model.set_normalization(train)
    model.eval()
    model.set_index_counts(model.encode_indices(train))
    data, indices = cae_payload(model, test)
    np.testing.assert_allclose(cae_decode_payload(model, data, len(test)), model.decode_indices(indices))


# -- analyzer extension -----------------------------------------------------------------------------
@pytest.mark.parametrize("sparse,format", [(False, "memory"), (True, "binary_folder"), (True, "zarr")])
def test_compressed_waveforms_extension(ground_truth_file, tmp_path, sparse, format):
    import spikeinterface.core as si

    import spikeinterface_vqcompress  # noqa: F401  registers the extension
    from spikeinterface_vqcompress.groundtruth import load_ground_truth

    recording, sorting = load_ground_truth(ground_truth_file)
    folder = {"memory": None, "binary_folder": tmp_path / "analyzer", "zarr": tmp_path / "analyzer.zarr"}[format]
    analyzer = si.create_sorting_analyzer(sorting, recording, sparse=sparse, format=format, folder=folder,
                                          return_in_uV=True)
    analyzer.compute("random_spikes", max_spikes_per_unit=40, seed=0)
    extension = analyzer.compute("compressed_waveforms", model="nn32-4x64")
    num_random = len(analyzer.get_extension("random_spikes").get_random_spikes())
    codes = extension.get_data()
    assert codes.shape == (num_random, 16) and codes.dtype == np.uint16
    unit_id = analyzer.unit_ids[0]
    waveforms = extension.get_waveforms_one_unit(unit_id, force_dense=True)
    assert waveforms.shape[1:] == (64, analyzer.get_num_channels())
    coded, channels = extension.get_coded_waveforms_one_unit(unit_id)
    assert coded.shape[1:] == (4, 64) and channels.shape[1] == 4
    # the decoded template follows the raw one on the coded channels
    sndr = extension.get_unit_sndr()
    assert set(sndr) == set(analyzer.unit_ids) and np.median(list(sndr.values())) > 5.0
    template_sndr = extension.get_template_sndr()
    assert np.median(list(template_sndr.values())) > 8.0  # averaging removes noise and coding error
    if sparse:
        sparse_waveforms = extension.get_waveforms_one_unit(unit_id)
        assert sparse_waveforms.shape[2] == analyzer.sparsity.unit_id_to_channel_indices[unit_id].size
    if folder is not None:
        reloaded = si.load_sorting_analyzer(folder)
        reloaded_extension = reloaded.get_extension("compressed_waveforms")
        np.testing.assert_array_equal(reloaded_extension.get_data(), codes)
        np.testing.assert_allclose(reloaded_extension.get_waveforms_one_unit(unit_id, force_dense=True), waveforms)
    # select, merge, split
    subset = analyzer.select_units(analyzer.unit_ids[:2])
    assert subset.get_extension("compressed_waveforms").get_data().shape[0] == \
        len(subset.get_extension("random_spikes").get_random_spikes())
    merged = analyzer.merge_units([list(analyzer.unit_ids[:2])], format="memory", sparsity_overlap=0.0)
    merged_extension = merged.get_extension("compressed_waveforms")
    assert merged_extension.get_templates(decoded=False).shape[0] == merged.get_num_units()
    assert merged_extension.get_data().shape[0] == len(merged.get_extension("random_spikes").get_random_spikes())
    spikes = analyzer.sorting.get_unit_spike_train(unit_id)
    halves = [np.arange(0, spikes.size, 2), np.arange(1, spikes.size, 2)]
    split = analyzer.split_units({unit_id: halves}, format="memory")
    split_extension = split.get_extension("compressed_waveforms")
    assert split_extension.get_data().shape[0] == num_random
    assert split.get_num_units() == analyzer.get_num_units() + 1
    for new_id in split.unit_ids:
        assert split_extension.get_waveforms_one_unit(new_id, force_dense=True).shape[1:] == (64, split.get_num_channels())
