"""E-Sort on SpikeInterface recordings: preprocessing, labels, fine-tuning, sorting, shipped backbones.

The steps, as the ``esort`` sorter runs them (each usable on its own)::

    prepared = prepare_recording(recording)                       # float32, optional band-pass
    noise = noise_levels(prepared)                                # per-channel MAD noise
    labels = labels_from_sorting(label_sorting, ...)              # first N spikes per unit
    model, info = fine_tune_recording(prepared, noise, labels)    # new head on the shipped backbone
    sorting = sort_recording(model, prepared, noise, labels.unit_ids)
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from spikeinterface_vqcompress.core import weights
from spikeinterface_vqcompress.esort.defaults import (DEFAULT_GATE_PEAK_SIGN, DEFAULT_MAX_SPIKES_PER_UNIT, DEFAULT_MAX_STEPS,
                                                      DEFAULT_SYNTHETIC_FRACTION, DEFAULT_THRESHOLD, auto_stride)
from spikeinterface_vqcompress.esort.model import (WINDOW_NUM_SAMPLES, ESortNet, check_inference_dtype, geometry_fingerprint, load_backbone_into,
                                                   resolve_device)
from spikeinterface_vqcompress.esort.local import channel_windows
from spikeinterface_vqcompress.esort.postprocessing import detect_spikes
from spikeinterface_vqcompress.esort.training import TrainingSet, fine_tune

DEFAULT_BACKBONE = weights.default_model("esort")


# -- shipped backbone --------------------------------------------------------------------------------


def backbone_path(name_or_path: str | Path = DEFAULT_BACKBONE) -> Path:
    """Resolve a shipped backbone name or a path to a ``.pt`` file (through the weights store)."""
    return weights.model_path("esort", name_or_path)


def _load_state(path) -> dict:
    return torch.load(path, map_location="cpu", weights_only=True)


def load_backbone(name_or_path: str | Path = DEFAULT_BACKBONE) -> dict:
    """Read a backbone state dict (``torch.load(weights_only=True)``), once per process and file.

    A shipped backbone has a model card whose ``weights_sha256`` must match the file (else
    :class:`~spikeinterface_vqcompress.core.errors.ModelMismatchError`).
    """
    return weights.load_cached("esort", name_or_path, _load_state)[0]


# -- recording side ----------------------------------------------------------------------------------
FILTER_METHODS = ("fft", "iir", "sosfiltfilt")


def check_filter_method(filter_method: str) -> str:
    """``filter_method`` if it is one of :data:`FILTER_METHODS`, else a ValueError naming the choices."""
    if filter_method not in FILTER_METHODS:
        raise ValueError(f"filter_method must be one of {FILTER_METHODS}, got {filter_method!r}")
    return filter_method


def resolve_apply_filter(recording, apply_filter) -> bool:
    """Whether E-Sort band-passes ``recording``: ``apply_filter`` itself, or for "auto" whether the
    recording is not marked filtered (``recording.is_filtered()``: MEArec files and the output of
    SpikeInterface's filters are)."""
    if apply_filter == "auto":
        return not recording.is_filtered()
    if apply_filter not in (True, False):
        raise ValueError(f"apply_filter must be True, False or 'auto' (band-pass unless the recording is marked "
                         f"filtered), got {apply_filter!r}")
    return bool(apply_filter)


def resolve_stride(stride, sampling_frequency: float) -> int:
    """The network's stride in samples: ``stride`` itself, or for "auto" every 0.125 ms, at most 4 samples
    (:func:`~spikeinterface_vqcompress.esort.defaults.auto_stride`). A stride must divide the window."""
    if stride == "auto":
        return auto_stride(sampling_frequency)
    if isinstance(stride, bool) or not isinstance(stride, (int, np.integer)) or stride < 1 \
            or WINDOW_NUM_SAMPLES % stride:
        divisors = ", ".join(str(d) for d in range(1, WINDOW_NUM_SAMPLES + 1) if WINDOW_NUM_SAMPLES % d == 0)
        raise ValueError(f"stride must be 'auto' or a number of samples that divides the network's "
                         f"{WINDOW_NUM_SAMPLES}-sample window ({divisors}), got {stride!r}")
    return int(stride)


def prepare_recording(recording, apply_filter: bool = True, freq_min: float = 300.0, freq_max: float = 6000.0,
                      filter_method: str = "iir", num_workers: int | None = None):
    """The recording E-Sort sees: float32, band-passed ``freq_min``-``freq_max`` Hz if ``apply_filter``.

    ``filter_method``: "iir" (:func:`~spikeinterface_vqcompress.esort.filtering.iir_bandpass_filter`,
    the default: sosfiltfilt's sections in a numba kernel, ~3x faster than "fft" per chunk at 384
    channels), "fft" (:func:`~spikeinterface_vqcompress.esort.filtering.fft_bandpass_filter`, 1.8-2.5x
    faster than "sosfiltfilt") or "sosfiltfilt" (SpikeInterface's ``bandpass_filter``,
    with which the shipped backbone was pretrained). All are the same zero-phase order-5 Butterworth
    band-pass; they differ by < 1e-3 noise units inside the recording and by < 1 noise unit in its
    first and last 10 ms (each pads the edges its own way). ``num_workers``: threads of each FFT
    (None: torch's thread count, ``torch.get_num_threads()``, the threads the network runs on).
    """
    check_filter_method(filter_method)
    if apply_filter:
        if filter_method == "fft":
            from spikeinterface_vqcompress.esort.filtering import fft_bandpass_filter

            workers = torch.get_num_threads() if num_workers is None else int(num_workers)
            return fft_bandpass_filter(recording, freq_min=freq_min, freq_max=freq_max, dtype="float32",
                                       workers=workers)
        if filter_method == "iir":
            from spikeinterface_vqcompress.esort.filtering import iir_bandpass_filter

            return iir_bandpass_filter(recording, freq_min=freq_min, freq_max=freq_max, dtype="float32")
        from spikeinterface.preprocessing import bandpass_filter

        return bandpass_filter(recording, freq_min=freq_min, freq_max=freq_max, dtype="float32")
    return recording.astype("float32") if recording.get_dtype() != np.float32 else recording


def noise_levels(recording, seed: int = 0) -> np.ndarray:
    """Per-channel noise (MAD / 0.6745) of a prepared recording, in its own units, never 0."""
    from spikeinterface.core import get_noise_levels

    levels = np.asarray(get_noise_levels(recording, return_in_uV=False, method="mad",
                                         random_slices_kwargs={"seed": seed}, progress_bar=False), dtype=np.float32)
    return np.where(levels > 0, levels, 1.0).astype(np.float32)


def normalised_traces(recording, noise, start_frame, end_frame, segment_index=0) -> np.ndarray:
    """``(end - start, C)`` float32 traces divided by the per-channel noise."""
    traces = recording.get_traces(segment_index=segment_index, start_frame=start_frame, end_frame=end_frame,
                                  return_in_uV=False)
    return (np.asarray(traces, dtype=np.float32) / noise[None, :]).astype(np.float32, copy=False)


@dataclass
class Labels:
    """Labelled spikes for fine-tuning: per unit, its spikes and the end of its labelled period."""

    unit_ids: list
    spike_trains: list
    known_until: np.ndarray
    info: dict = field(default_factory=dict)

    @property
    def end_sample(self) -> int:
        """End of the labelled part of the recording (the latest ``known_until``)."""
        return int(np.max(self.known_until)) if len(self.known_until) else 0


def labels_from_sorting(sorting, num_samples: int, num_spikes_per_unit: int | None = None,
                        label_duration_samples: int | None = None, min_spikes_per_unit: int = 3,
                        segment_index: int = 0, margin_samples: int = 6) -> Labels:
    """Turn a sorting (ground truth, or a conventional sorter's output) into E-Sort labels.

    Parameters
    ----------
    sorting : BaseSorting
        Where the labels come from; its spikes are trusted as complete within the labelled period.
    num_samples : int
        Number of samples of the recording segment.
    num_spikes_per_unit : int | None, default: None
        Keep each unit's first N spikes; its labelled period then ends just after its N-th spike
        (``+ margin_samples``). None keeps every spike of the labelled period.
    label_duration_samples : int | None, default: None
        Only spikes before this sample count (None: the whole segment).
    min_spikes_per_unit : int, default: 3
        Units with fewer labelled spikes are left out (they cannot be learned).
    segment_index : int, default: 0
    margin_samples : int, default: 6

    Returns
    -------
    labels : Labels
    """
    limit = int(num_samples if label_duration_samples is None else min(label_duration_samples, num_samples))
    unit_ids, trains, known_until, dropped = [], [], [], []
    for unit_id in sorting.unit_ids:
        train = np.asarray(sorting.get_unit_spike_train(unit_id, segment_index=segment_index), dtype=np.int64)
        train = np.sort(train[train < limit])
        end = limit
        if num_spikes_per_unit is not None and len(train) > num_spikes_per_unit:
            train = train[:num_spikes_per_unit]
            end = min(int(train[-1]) + margin_samples, limit)
        if len(train) < min_spikes_per_unit:
            dropped.append(unit_id)
            continue
        unit_ids.append(unit_id)
        trains.append(train)
        known_until.append(end)
    info = {"num_spikes_per_unit": num_spikes_per_unit, "label_duration_samples": limit,
            "dropped_units": [str(unit) for unit in dropped],
            "num_labelled_spikes": [int(len(train)) for train in trains]}
    return Labels(unit_ids, trains, np.asarray(known_until, dtype=np.int64), info)


def training_set_from_recording(prepared, noise, labels: Labels, seed: int = 0, extra_samples: int = 64,
                                **training_set_kwargs) -> TrainingSet:
    """Load the labelled period of segment 0 into memory and build its :class:`TrainingSet`."""
    if not labels.unit_ids:
        raise ValueError("no labelled unit: the label sorting found no unit with enough spikes in the label period; "
                         "lengthen label_duration_s or lower min_spikes_per_unit")
    end = min(labels.end_sample + extra_samples, prepared.get_num_samples(segment_index=0))
    traces = normalised_traces(prepared, noise, 0, end)
    return TrainingSet(traces, labels.spike_trains, labels.known_until, seed=seed, **training_set_kwargs)


def build_model(prepared, num_units: int, pretrained=DEFAULT_BACKBONE, transfer_spatial="auto"):
    """A new :class:`ESortNet` for ``prepared``, its backbone copied from ``pretrained`` (None: random).

    Returns
    -------
    model : ESortNet
    transfer : dict
        What was copied (see ``load_backbone_into``), with the recording's geometry fingerprint.
    """
    model = ESortNet(prepared.get_num_channels(), num_units)
    fingerprint = geometry_fingerprint(prepared.get_channel_locations())
    transfer = {"temporal": False, "spatial": False}
    if pretrained:
        transfer = load_backbone_into(model, load_backbone(pretrained), fingerprint, transfer_spatial)
    transfer["fingerprint"] = fingerprint
    transfer["pretrained"] = str(pretrained) if pretrained else None
    return model, transfer


def fine_tune_recording(prepared, noise, labels: Labels, pretrained=DEFAULT_BACKBONE, transfer_spatial="auto",
                        epochs: int = 60, batch_size: int = 256, learning_rate: float = 1e-3,
                        backbone_learning_rate: float | None = None, synthetic_fraction: float = DEFAULT_SYNTHETIC_FRACTION,
                        max_steps: int | None = DEFAULT_MAX_STEPS, max_spikes_per_unit: int | None = DEFAULT_MAX_SPIKES_PER_UNIT,
                        device="auto", seed: int = 0, verbose: bool = False):
    """Build the network for ``prepared`` and fine-tune it on ``labels``.

    ``max_steps`` bounds the optimiser steps (:func:`~spikeinterface_vqcompress.esort.training.fine_tune`)
    and ``max_spikes_per_unit`` the labelled spikes of each unit that make training windows
    (:class:`~spikeinterface_vqcompress.esort.training.TrainingSet`), so that the fine-tuning time
    does not grow with the number of labels; the other parameters are :func:`fine_tune`'s.

    Returns
    -------
    model : ESortNet
    info : dict
        Transfer report, training history and times.
    """
    torch.manual_seed(seed)
    device = resolve_device(device)
    t0 = time.perf_counter()
    training_set = training_set_from_recording(prepared, noise, labels, seed=seed,
                                               max_spikes_per_unit=max_spikes_per_unit)
    model, transfer = build_model(prepared, len(labels.unit_ids), pretrained, transfer_spatial)
    history = fine_tune(model, training_set, epochs=epochs, batch_size=batch_size, learning_rate=learning_rate,
                        backbone_learning_rate=backbone_learning_rate, synthetic_fraction=synthetic_fraction,
                        max_steps=max_steps, device=device, seed=seed, verbose=verbose)
    info = {"transfer": transfer, "history": history, "device": str(device),
            "fine_tune_time_s": time.perf_counter() - t0, "num_units": len(labels.unit_ids),
            "num_training_windows": len(training_set)}
    return model, info


def _channel_locations(recording):
    """The recording's channel locations, or None when it has none (no probe: local inference is off)."""
    try:
        return recording.get_channel_locations()
    except Exception:  # SpikeInterface raises when no probe or location is attached
        return None


def _local_run_width(recording, radius_um: float | None) -> int | None:
    """Channels in each local-inference run at ``radius_um`` on ``recording`` (None without a radius or
    channel locations)."""
    locations = _channel_locations(recording) if radius_um is not None else None
    return None if locations is None else channel_windows(locations, radius_um)[2]


def local_inference_pays(recording, radius_um: float | None) -> bool:
    """Whether local inference at ``radius_um`` at least halves the spatial layer on ``recording``: its
    runs of channels (:func:`~spikeinterface_vqcompress.esort.local.channel_windows`) are at most half
    of its channels. Below that, gathering the runs costs more than the smaller layer saves
    (Neuronexus-32 at 100 um: runs of 25 of 32 channels, 70x real time against 88x for the whole
    network, ``benchmarks/results/esort_inference.md``). False without a radius or channel locations."""
    width = _local_run_width(recording, radius_um)
    return width is not None and 2 * width <= recording.get_num_channels()


def resolve_spatial_radius(recording, radius_um: float | None) -> float | None:
    """The sorter's local-inference radius on ``recording``: ``radius_um`` where local inference pays
    (:func:`local_inference_pays`: at least halves the spatial layer, so not on 32-channel probes), else
    None (the whole spatial layer)."""
    return radius_um if local_inference_pays(recording, radius_um) else None


def build_local_spatial(model: ESortNet, prepared, noise, radius_um: float, num_slices: int = 20,
                        slice_duration_s: float = 0.1, dtype=torch.float32):
    """The :class:`~spikeinterface_vqcompress.esort.local.LocalSpatial` layer of ``model`` on ``prepared``.

    Neighbourhoods: runs of channels in depth order holding those within ``radius_um`` of each
    channel (:func:`~spikeinterface_vqcompress.esort.local.channel_windows`). The far
    channels' mean features: over windows of noise (no sample within 30 samples of a crossing of 4
    noise units of either sign on any channel), every 10th sample of ``num_slices`` slices of
    ``slice_duration_s`` evenly spaced over segment 0.
    """
    from spikeinterface_vqcompress.esort.local import local_spatial, noise_baseline
    from spikeinterface_vqcompress.esort.postprocessing import candidate_rows

    window = model.window_num_samples
    num_samples = prepared.get_num_samples(segment_index=0)
    length = min(num_samples, max(window + 10, int(slice_duration_s * prepared.get_sampling_frequency())))
    starts = np.unique(np.linspace(0, num_samples - length, num_slices).astype(np.int64))
    sums, count = 0.0, 0
    for start in starts:
        traces = torch.from_numpy(normalised_traces(prepared, noise, int(start), int(start) + length))
        all_rows = torch.arange(0, len(traces) - window + 1, 10)
        gated = candidate_rows(traces, window, 1, 4.0, 30, "both")
        rows = all_rows[~torch.isin(all_rows, gated)]
        if len(rows):
            sums = sums + noise_baseline(model, traces, rows) * len(rows)
            count += len(rows)
    if count == 0:
        raise ValueError("no window of noise to estimate the far channels' features from (every window of the "
                         "slices read crosses 4 noise units): use spatial_radius_um=None")
    return local_spatial(model, prepared.get_channel_locations(), radius_um, (sums / count).float(), dtype=dtype)


def sort_recording(model: ESortNet, prepared, noise, unit_ids, threshold: float = DEFAULT_THRESHOLD,
                   kernel_size: int = 17, min_distance_samples: int = 10, chunk_duration_s: float = 2.0,
                   stride: int = 1, device="auto",
                   gate_threshold: float | None = None, gate_margin_samples: int = 8,
                   gate_peak_sign: str = DEFAULT_GATE_PEAK_SIGN, inference_dtype: str = "float32",
                   num_workers: int | str = "auto", spatial_radius_um: float | None = None):
    """Sort every segment of ``prepared`` with a fine-tuned network; returns a ``NumpySorting``.

    The post-processing parameters and the amplitude gate (``gate_threshold`` in noise units, None:
    the network runs on every window; ``gate_peak_sign``: which crossings open it; ``inference_dtype``:
    the spatial layer's precision; ``num_workers``: chunks sorted at once, "auto" one per torch
    thread on a CPU) are those of
    :func:`~spikeinterface_vqcompress.esort.postprocessing.detect_spikes`. ``spatial_radius_um``: local
    inference (:mod:`~spikeinterface_vqcompress.esort.local`), each window through the spatial layer
    of the channels within this radius of its centre channels (None, or a radius whose runs of
    channels hold the whole probe: the whole layer).
    """
    from spikeinterface.core import NumpySorting

    device = resolve_device(device)
    local = None
    width = _local_run_width(prepared, spatial_radius_um)
    if width is not None and width < prepared.get_num_channels():  # else the runs are the whole probe
        local = build_local_spatial(model.cpu().eval(), prepared, noise, spatial_radius_um,
                                    dtype=check_inference_dtype(inference_dtype)).to(device)
    model = model.to(device).eval()
    sampling_frequency = prepared.get_sampling_frequency()
    chunk_num_samples = max(1024, int(chunk_duration_s * sampling_frequency))
    unit_ids = np.asarray(unit_ids)
    samples_list, labels_list = [], []
    for segment_index in range(prepared.get_num_segments()):
        num_samples = prepared.get_num_samples(segment_index=segment_index)

        def get(start, end, segment_index=segment_index):
            return prepared.get_traces(segment_index=segment_index, start_frame=start, end_frame=end,
                                       return_in_uV=False)

        samples, units = detect_spikes(model, get, num_samples, threshold=threshold, kernel_size=kernel_size,
                                       min_distance_samples=min_distance_samples,
                                       chunk_num_samples=chunk_num_samples, stride=stride, device=device,
                                       gate_threshold=gate_threshold, gate_margin_samples=gate_margin_samples,
                                       gate_peak_sign=gate_peak_sign, inference_dtype=inference_dtype,
                                       num_workers=num_workers, noise=noise, local=local)
        samples_list.append(samples)
        labels_list.append(unit_ids[units] if len(units) else np.zeros(0, dtype=unit_ids.dtype))
    return NumpySorting.from_samples_and_labels(samples_list, labels_list, sampling_frequency, unit_ids=list(unit_ids))
