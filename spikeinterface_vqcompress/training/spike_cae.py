"""Training the spike CAE on ground-truth snippets, and the snippet extraction it needs.

Training snippets come from MEArec ground truth: every ground-truth spike of every unit, cut on the
unit's peak channel (the most negative channel of its mean waveform) and its nearest neighbours by
distance (probe geometry), aligned so that the trough of the peak channel falls on the model's
``trough_sample``. The alignment mimics an implant-side detector: the spike time is moved to the
unit's mean trough and then to the local minimum of the (noisy) peak channel within
``align_radius`` samples.

Augmentation (training only): random time shifts of up to ``jitter_samples`` samples (snippets are
cut wider and cropped at random), random amplitude scaling in ``amplitude_range``.

Use training recordings only (the project's convention: seeds 201 Neuronexus-32, 202
Neuropixels-64, and other new seeds); never the evaluation recordings (seeds 0, 101, 102).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import torch

from spikeinterface_vqcompress.core.codecs.spike_cae.detection import extract_snippets as cut_snippets
from spikeinterface_vqcompress.core.codecs.spike_cae.detection import neighbour_channel_order
from spikeinterface_vqcompress.core.codecs.spike_cae.model import SpikeCAE, model_sha256, save_spike_cae
from spikeinterface_vqcompress.evaluation.metrics import snippet_sndr_db
from spikeinterface_vqcompress.core.jsonio import write_json

#: Samples on either side of a spike time used to estimate a unit's mean waveform.
_MEAN_WAVEFORM_HALF_WIDTH = 48


# -- snippet extraction (numpy) --------------------------------------------------------------------
def extract_snippets(traces_uV: np.ndarray, sample_indices, channel_indices, num_samples: int,
                     trough_sample: int) -> np.ndarray:
    """Cut float32 snippets ``(n, C, num_samples)`` with sample ``trough_sample`` at each ``sample_indices``.

    The encoder's cutter (:func:`~spikeinterface_vqcompress.core.codecs.spike_cae.detection.extract_snippets`)
    with a check that every snippet lies inside the traces (training never pads).

    Parameters
    ----------
    traces_uV : np.ndarray
        ``(num_total_samples, num_total_channels)``.
    sample_indices : array-like of int
        ``(n,)`` trough sample of each spike; snippets must fit inside the traces.
    channel_indices : array-like of int
        ``(n, C)`` channels of each snippet, or ``(C,)`` for all.
    num_samples, trough_sample : int
        Snippet length and position of the trough inside it.

    Returns
    -------
    np.ndarray
        float32 ``(n, C, num_samples)``.
    """
    sample_indices = np.asarray(sample_indices, dtype=np.int64)
    channel_indices = np.asarray(channel_indices, dtype=np.int64)
    if channel_indices.ndim == 1:
        channel_indices = np.broadcast_to(channel_indices, (sample_indices.size, channel_indices.size))
    starts = sample_indices - int(trough_sample)
    if sample_indices.size and (starts.min() < 0 or starts.max() + num_samples > traces_uV.shape[0]):
        raise ValueError("some snippets do not fit inside the traces; drop spikes closer than the snippet "
                         "length to the edges")
    snippets = cut_snippets(traces_uV, sample_indices, channel_indices, num_samples, trough_sample)
    return np.asarray(snippets, dtype=np.float32)


def _load_traces_uV(recording) -> np.ndarray:
    return np.asarray(recording.get_traces(segment_index=0, return_in_uV=True), dtype=np.float32)


def ground_truth_snippet_positions(recording, sorting, num_channels: int, num_samples: int, trough_sample: int,
                                   align_radius: int = 2, margin: int = 0, traces_uV: np.ndarray | None = None,
                                   max_spikes_per_unit: int | None = None, seed: int = 0) -> dict:
    """Where to cut aligned ground-truth snippets: trough samples, channel lists and units.

    Parameters
    ----------
    recording, sorting : BaseRecording, BaseSorting
        Ground truth (one segment is used).
    num_channels, num_samples, trough_sample : int
        Snippet shape and trough position.
    align_radius : int, default: 2
        After moving each spike to its unit's mean trough, move it to the minimum of the peak channel
        within this many samples (0 keeps the unit-level alignment).
    margin : int, default: 0
        Extra samples needed on both sides (for jitter augmentation); spikes too close to the edges
        are dropped.
    traces_uV : np.ndarray | None, default: None
        The traces in uV if already loaded.
    max_spikes_per_unit : int | None, default: None
        Random subset per unit.
    seed : int, default: 0
        Seed of that subset.

    Returns
    -------
    dict
        ``sample_indices`` (n,), ``channel_indices`` (n, C), ``unit_indices`` (n,), ``unit_ids``,
        ``peak_channels`` (per unit), ``traces_uV``.
    """
    if traces_uV is None:
        traces_uV = _load_traces_uV(recording)
    num_total_samples = traces_uV.shape[0]
    locations = recording.get_channel_locations()
    rng = np.random.default_rng(seed)
    half = _MEAN_WAVEFORM_HALF_WIDTH
    all_samples, all_channels, all_units, peak_channels = [], [], [], []
    for unit_index, unit_id in enumerate(sorting.unit_ids):
        spikes = np.asarray(sorting.get_unit_spike_train(unit_id, segment_index=0), dtype=np.int64)
        inside = spikes[(spikes >= half) & (spikes < num_total_samples - half)]
        if inside.size == 0:
            peak_channels.append(-1)
            continue
        subset = inside if inside.size <= 500 else rng.choice(inside, 500, replace=False)
        grid = subset[:, None] + np.arange(-half, half)[None, :]
        mean_waveform = traces_uV[grid].mean(axis=0)  # (2 * half, channels)
        peak_channel = int(np.argmin(mean_waveform.min(axis=0)))
        offset = int(np.argmin(mean_waveform[:, peak_channel])) - half
        peak_channels.append(peak_channel)
        troughs = spikes + offset
        lower = trough_sample + margin + align_radius
        upper = num_total_samples - (num_samples - trough_sample) - margin - align_radius
        troughs = troughs[(troughs >= lower) & (troughs <= upper)]
        if max_spikes_per_unit is not None and troughs.size > max_spikes_per_unit:
            troughs = np.sort(rng.choice(troughs, max_spikes_per_unit, replace=False))
        if align_radius > 0 and troughs.size:
            window = troughs[:, None] + np.arange(-align_radius, align_radius + 1)[None, :]
            troughs = troughs + np.argmin(traces_uV[window, peak_channel], axis=1) - align_radius
        channels = neighbour_channel_order(locations, peak_channel, num_channels)
        all_samples.append(troughs)
        all_channels.append(np.broadcast_to(channels, (troughs.size, num_channels)))
        all_units.append(np.full(troughs.size, unit_index, dtype=np.int64))
    return {
        "sample_indices": np.concatenate(all_samples) if all_samples else np.zeros(0, np.int64),
        "channel_indices": np.concatenate(all_channels) if all_channels else np.zeros((0, num_channels), np.int64),
        "unit_indices": np.concatenate(all_units) if all_units else np.zeros(0, np.int64),
        "unit_ids": list(sorting.unit_ids),
        "peak_channels": np.asarray(peak_channels, dtype=np.int64),
        "traces_uV": traces_uV,
    }


def _ground_truth_pair(recording_or_path):
    if isinstance(recording_or_path, (str, Path)):
        from spikeinterface_vqcompress.groundtruth import load_ground_truth

        return load_ground_truth(recording_or_path)
    return recording_or_path


def extract_ground_truth_snippets(recording_or_path, num_channels: int = 4, num_samples: int = 64,
                                  trough_sample: int | None = None, align_radius: int = 2, margin: int = 0,
                                  max_spikes_per_unit: int | None = None, seed: int = 0,
                                  clean_recording_or_path=None) -> dict:
    """Aligned ground-truth snippets of a MEArec file (or a ``(recording, sorting)`` pair).

    Parameters
    ----------
    recording_or_path : str | Path | tuple
        MEArec ``.h5`` file or ``(recording, sorting)``.
    num_channels, num_samples, trough_sample, align_radius, margin, max_spikes_per_unit, seed
        See :func:`ground_truth_snippet_positions`.
    clean_recording_or_path : str | Path | tuple | None, default: None
        The same recording simulated without noise (same seed: same units and spike trains); its
        snippets are cut at the positions found on the noisy one and returned as ``clean_snippets_uV``.

    Returns
    -------
    dict
        The dict of :func:`ground_truth_snippet_positions` plus ``snippets_uV``
        ``(n, C, num_samples + 2 * margin)`` (trough at ``trough_sample + margin``), without the traces.
    """
    recording, sorting = _ground_truth_pair(recording_or_path)
    trough_sample = num_samples // 3 if trough_sample is None else int(trough_sample)
    positions = ground_truth_snippet_positions(recording, sorting, num_channels, num_samples, trough_sample,
                                               align_radius=align_radius, margin=margin,
                                               max_spikes_per_unit=max_spikes_per_unit, seed=seed)
    traces_uV = positions.pop("traces_uV")
    positions["snippets_uV"] = extract_snippets(traces_uV, positions["sample_indices"], positions["channel_indices"],
                                                num_samples + 2 * margin, trough_sample + margin)
    positions["sampling_frequency_hz"] = float(recording.get_sampling_frequency())
    if clean_recording_or_path is not None:
        clean_recording, clean_sorting = _ground_truth_pair(clean_recording_or_path)
        if clean_recording.get_num_samples() != recording.get_num_samples() \
                or list(clean_sorting.unit_ids) != list(sorting.unit_ids) or not all(
                np.array_equal(sorting.get_unit_spike_train(unit_id, segment_index=0),
                               clean_sorting.get_unit_spike_train(unit_id, segment_index=0)) for unit_id in sorting.unit_ids):
            raise ValueError("the clean recording is not the noise-free twin of the noisy one (its length or spike "
                             "trains differ): simulate it with the same seed, units and duration and noise_level_uV=0")
        positions["clean_snippets_uV"] = extract_snippets(_load_traces_uV(clean_recording), positions["sample_indices"],
                                                          positions["channel_indices"], num_samples + 2 * margin,
                                                          trough_sample + margin)
    return positions


# -- metrics ----------------------------------------------------------------------------------------
# -- training ---------------------------------------------------------------------------------------
def _augment_batch(wide: torch.Tensor, num_samples: int, margin: int, jitter_samples: int,
                   amplitude_range, generator: torch.Generator) -> torch.Tensor:
    """Crop ``(b, C, num_samples + 2 margin)`` to ``num_samples`` with random shifts and scale amplitudes."""
    batch = wide.shape[0]
    if jitter_samples > 0:
        shifts = torch.randint(-jitter_samples, jitter_samples + 1, (batch,), generator=generator)
    else:
        shifts = torch.zeros(batch, dtype=torch.long)
    index = (margin + shifts)[:, None] + torch.arange(num_samples)[None, :]
    cropped = torch.gather(wide, 2, index[:, None, :].expand(-1, wide.shape[1], -1))
    if amplitude_range is not None:
        low, high = amplitude_range
        scale = low + (high - low) * torch.rand(batch, 1, 1, generator=generator)
        cropped = cropped * scale
    return cropped


def train_spike_cae(recordings, num_channels: int = 4, num_samples: int = 64, trough_sample: int | None = None,
                    codes_per_spike: int = 16, codebook_size: int = 128, use_ema: bool = False,
                    dead_code_threshold: float | None = None, epochs: int = 30, batch_size: int = 256,
                    learning_rate: float = 1e-3, jitter_samples: int = 2, jitter_probability: float = 0.5,
                    amplitude_range=(0.8, 1.25), align_radius: int = 2, validation_fraction: float = 0.1,
                    kmeans_reinit_steps=(200,), seed: int = 0, num_threads: int = 2, output_path=None, model_name: str | None = None,
                    command: str | None = None, log=print, model_kwargs: dict | None = None, clean_recordings=None):
    """Train a :class:`~spikeinterface_vqcompress.core.codecs.spike_cae.model.SpikeCAE` on ground-truth snippets.

    Parameters
    ----------
    recordings : list
        MEArec ``.h5`` paths or ``(recording, sorting)`` pairs (training data only).
    num_channels, num_samples : int, default: 4, 64
        Snippet shape (15, 48 for Neuropixels).
    trough_sample : int | None, default: None
        Trough position; None for ``num_samples // 3``.
    codes_per_spike, codebook_size : int, default: 16, 128
        Indices per spike and codebook entries.
    use_ema : bool, default: False
        EMA codebook (decay 0.99, k-means init, dead-code restarts) instead of the VQ-VAE codebook loss.
    dead_code_threshold : float | None, default: None
        Codes used fewer than this many times per batch (EMA usage) are restarted; None for 1.0 with
        EMA and 0.0 (off) without.
    epochs, batch_size, learning_rate : default: 30, 256, 1e-3
        Adam with a cosine learning-rate decay.
    jitter_samples : int, default: 2
        Random shifts of up to this many samples for a share ``jitter_probability`` of the batch.
    jitter_probability : float, default: 0.5
    amplitude_range : tuple | None, default: (0.8, 1.25)
        Random amplitude scaling; None disables it.
    align_radius : int, default: 2
        See :func:`ground_truth_snippet_positions`.
    validation_fraction : float, default: 0.1
        Share of snippets (random) held out for the validation SNDR.
    kmeans_reinit_steps : tuple of int, default: (200,)
        Training steps after which the codebook is re-initialised by k-means on the current encoder
        outputs (the first k-means runs on the untrained encoder, whose outputs move fast at first).
    seed : int, default: 0
    num_threads : int, default: 2
        ``torch.set_num_threads``.
    output_path : str | Path | None, default: None
        Where to save the weights (``.pt``; a ``.json`` model card is written next to it).
    model_name : str | None, default: None
        Name written in the model card.
    command : str | None, default: None
        Command line written in the model card.
    log : callable, default: print
        Progress messages.
    model_kwargs : dict | None, default: None
        Extra :class:`SpikeCAE` arguments (hidden_channels, ...).
    clean_recordings : list | None, default: None
        The noise-free twin of each training recording (same seed, ``noise_level_uV=0``), in the
        same order: the model is then trained to reconstruct the clean spike from the noisy input
        (a denoising autoencoder; the input, the normalisation and the codebook still come from the
        noisy snippets). None trains the paper's autoencoder, scored against its input.

    Returns
    -------
    model : SpikeCAE
        Trained, in eval mode, with normalisation and index counts set.
    report : dict
        Training summary (data, history, validation SNDR, timing); also the model card's content.
    """
    torch.set_num_threads(int(num_threads))
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    rng = np.random.default_rng(seed)
    trough_sample = num_samples // 3 if trough_sample is None else int(trough_sample)
    if dead_code_threshold is None:
        dead_code_threshold = 1.0 if use_ema else 0.0
    margin = int(jitter_samples)
    start_time = time.perf_counter()

    recordings = list(recordings)
    denoising = clean_recordings is not None
    clean_list = list(clean_recordings) if denoising else [None] * len(recordings)
    if len(clean_list) != len(recordings):
        raise ValueError(f"clean_recordings has {len(clean_list)} entries for {len(recordings)} recordings: "
                         "give the noise-free twin of each training recording, in the same order")
    wide_parts, clean_parts, data_description = [], [], []
    sampling_frequency = None
    for item, clean_item in zip(recordings, clean_list):
        extracted = extract_ground_truth_snippets(item, num_channels=num_channels, num_samples=num_samples,
                                                  trough_sample=trough_sample, align_radius=align_radius,
                                                  margin=margin, seed=seed, clean_recording_or_path=clean_item)
        wide_parts.append(extracted["snippets_uV"])
        clean_parts.append(extracted.get("clean_snippets_uV"))
        sampling_frequency = extracted["sampling_frequency_hz"]
        data_description.append({"source": str(item) if isinstance(item, (str, Path)) else "in-memory recording",
                                 "num_units": len(extracted["unit_ids"]), "num_snippets": int(extracted["snippets_uV"].shape[0])})
        if clean_item is not None:
            data_description[-1]["clean_target"] = str(clean_item) if isinstance(clean_item, (str, Path)) else "in-memory recording"
        log(f"extracted {extracted['snippets_uV'].shape[0]} snippets from {data_description[-1]['source']}")
    wide = np.concatenate(wide_parts).astype(np.float32)
    if wide.shape[0] < 2 * batch_size:
        raise ValueError(f"only {wide.shape[0]} training snippets; give longer or more recordings")
    # the clean target rides along as extra channels, so that augmentation shifts and scales both alike
    stacked = np.concatenate([wide, np.concatenate(clean_parts).astype(np.float32)], axis=1) if denoising else wide
    order = rng.permutation(wide.shape[0])
    num_validation = max(1, int(round(validation_fraction * wide.shape[0])))
    validation = wide[order[:num_validation], :, margin:margin + num_samples]
    validation_clean = stacked[order[:num_validation], num_channels:, margin:margin + num_samples] if denoising else None
    train_wide = torch.from_numpy(stacked[order[num_validation:]])
    num_train = train_wide.shape[0]

    model = SpikeCAE(num_channels=num_channels, num_samples=num_samples, trough_sample=trough_sample,
                     codes_per_spike=codes_per_spike, codebook_size=codebook_size, use_ema=use_ema,
                     dead_code_threshold=dead_code_threshold, sampling_frequency_hz=sampling_frequency or 32000.0,
                     **(model_kwargs or {}))
    model.set_normalization(train_wide[:, :num_channels, margin:margin + num_samples].numpy())
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    steps_per_epoch = num_train // batch_size
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, epochs * steps_per_epoch))
    # k-means initialisation of the codebook on encoder outputs of a large batch
    model.train()
    with torch.no_grad():
        init_batch = train_wide[torch.randperm(num_train, generator=generator)[:4096], :num_channels, margin:margin + num_samples]
        model.quantizer.initialize_from(model.encode_latent(init_batch), generator=generator)

    history = []
    global_step = 0
    reinit_steps = set(int(step) for step in (kmeans_reinit_steps or ()))
    for epoch in range(epochs):
        model.train()
        permutation = torch.randperm(num_train, generator=generator)
        totals = {"loss": 0.0, "reconstruction_loss": 0.0, "commitment_loss": 0.0, "codebook_loss": 0.0,
                  "perplexity": 0.0}
        for step in range(steps_per_epoch):
            batch_wide = train_wide[permutation[step * batch_size:(step + 1) * batch_size]]
            jitter = jitter_samples if torch.rand(1, generator=generator).item() < jitter_probability else 0
            batch = _augment_batch(batch_wide, num_samples, margin, jitter, amplitude_range, generator)
            output = model(batch[:, :num_channels], batch[:, num_channels:] if denoising else None)
            optimizer.zero_grad()
            output["loss"].backward()
            optimizer.step()
            scheduler.step()
            global_step += 1
            if global_step in reinit_steps:
                with torch.no_grad():
                    sample = train_wide[torch.randperm(num_train, generator=generator)[:4096], :num_channels, margin:margin + num_samples]
                    model.quantizer.initialize_from(model.encode_latent(sample), generator=generator)
            for key in totals:
                totals[key] += float(output[key].detach())
        entry = {key: value / max(steps_per_epoch, 1) for key, value in totals.items()}
        entry["epoch"] = epoch + 1
        entry["elapsed_s"] = time.perf_counter() - start_time
        if (epoch + 1) % 5 == 0 or epoch + 1 == epochs:
            model.eval()
            reconstruction = model.reconstruct(validation)
            sndr = snippet_sndr_db(validation, reconstruction)
            entry["validation_sndr_db_mean"] = float(sndr.mean())
            entry["validation_sndr_db_median"] = float(np.median(sndr))
            if denoising:
                entry["validation_sndr_clean_db_mean"] = float(snippet_sndr_db(validation_clean, reconstruction).mean())
        history.append(entry)
        log(json.dumps({key: round(value, 4) if isinstance(value, float) else value for key, value in entry.items()}))

    model.eval()
    train_plain = train_wide[:, :num_channels, margin:margin + num_samples].numpy()
    train_indices = model.encode_indices(train_plain)
    model.set_index_counts(train_indices)
    validation_indices = model.encode_indices(validation)
    validation_reconstruction = model.decode_indices(validation_indices)
    sndr = snippet_sndr_db(validation, validation_reconstruction)
    tables = model.frequency_tables()
    from spikeinterface_vqcompress.core.entropy.rans import estimate_nbytes

    validation_bits = sum(estimate_nbytes(validation_indices[:, position], tables[position]) * 8
                          for position in range(codes_per_spike)) / validation_indices.shape[0]
    training_s = time.perf_counter() - start_time
    report = {
        "name": model_name,
        "architecture": "Wu et al. 2018 deep compressive autoencoder (spikeinterface_vqcompress/spikecae/model.py)",
        "config": model.config(),
        "model_sha256": model_sha256(model),
        "parameter_count": int(sum(parameter.numel() for parameter in model.parameters())),
        "training": {
            "command": command,
            "data": data_description,
            "num_train_snippets": int(num_train),
            "num_validation_snippets": int(num_validation),
            "epochs": epochs,
            "batch_size": batch_size,
            "optimizer": f"Adam, learning rate {learning_rate}, cosine decay to 0",
            "augmentation": {"jitter_samples": jitter_samples, "jitter_probability": jitter_probability,
                             "amplitude_range": list(amplitude_range) if amplitude_range is not None else None},
            "align_radius": align_radius,
            "use_ema": use_ema,
            "dead_code_threshold": dead_code_threshold,
            "kmeans_reinit_steps": sorted(reinit_steps),
            "seed": seed,
            "torch_threads": num_threads,
            "training_s": round(training_s, 1),
            "final_epoch": history[-1] if history else None,
        },
        "validation": {
            "sndr_db_mean": float(sndr.mean()),
            "sndr_db_std": float(sndr.std()),
            "sndr_db_median": float(np.median(sndr)),
            "entropy_coded_bits_per_spike": float(validation_bits),
            "fixed_length_bits_per_spike": model.bits_per_spike_fixed,
            "codes_used": int((model.index_counts.sum(0) > 0).sum()),
            "note": "held-out snippets of the training recordings (random split), SNDR against the input snippet",
        },
    }
    report["training"]["target"] = "clean (noise-free twin recordings)" if denoising else "input"
    if denoising:
        report["validation"]["sndr_clean_db_mean"] = float(snippet_sndr_db(validation_clean, validation_reconstruction).mean())
    log(f"validation SNDR {sndr.mean():.2f} +/- {sndr.std():.2f} dB, {validation_bits:.1f} bits/spike entropy-coded, "
        f"{training_s:.0f} s")
    if output_path is not None:
        write_model_card(model, output_path, report)
    return model, report


def write_model_card(model: SpikeCAE, output_path, report: dict, dtype: torch.dtype = torch.float16) -> Path:
    """Save the weights (float16 by default) and a JSON card with the file's sha256 next to them."""
    from spikeinterface_vqcompress.core.weights import file_sha256

    output_path = Path(output_path)
    save_spike_cae(model, output_path, dtype=dtype)
    card = dict(report)
    card["weights_file"] = output_path.name
    card["weights_sha256"] = file_sha256(output_path)
    card["weights_nbytes"] = output_path.stat().st_size
    card["weights_dtype"] = f"{str(dtype).replace('torch.', '')} (cast to float32 on load)"
    from spikeinterface_vqcompress.core.codecs.spike_cae.model import load_spike_cae

    card["model_sha256"] = model_sha256(load_spike_cae(output_path))  # hash of the model as it loads
    write_json(output_path.with_suffix(".json"), card, fallback=str)
    return output_path
