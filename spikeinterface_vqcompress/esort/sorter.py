"""The ``esort`` SpikeInterface sorter (registered on ``import spikeinterface_vqcompress``).

::

    import spikeinterface.sorters as ss
    import spikeinterface_vqcompress  # registers "esort"

    sorting = ss.run_sorter("esort", recording, folder="esort_output")               # labels from spykingcircus2
    sorting = ss.run_sorter("esort", recording, folder="esort_output",                # benchmark mode
                            label_source="sorting", label_sorting_path="gt.h5", num_spikes_per_unit=10)

The sorter writes into ``<folder>/sorter_output``: ``sorting/`` (the result), ``model.pt`` (the
fine-tuned network's state dict), ``labels_sorting/`` (the labels it was fine-tuned on, when a
conventional sorter made them) and ``esort_info.json`` (times of each stage, the transfer report and
the training loss).
"""

from __future__ import annotations

import time
from pathlib import Path

from spikeinterface.sorters import BaseSorter

from spikeinterface_vqcompress.esort.defaults import (DEFAULT_GATE_MARGIN_SAMPLES, DEFAULT_GATE_PEAK_SIGN, DEFAULT_GATE_THRESHOLD,
                                                      DEFAULT_LABEL_DURATION_S, DEFAULT_LABEL_SORTER, DEFAULT_MAX_SPIKES_PER_UNIT,
                                                      DEFAULT_MAX_STEPS, DEFAULT_SPATIAL_RADIUS_UM, DEFAULT_SYNTHETIC_FRACTION,
                                                      DEFAULT_THRESHOLD)


class ESortSorter(BaseSorter):
    """E-Sort: a neural network mapping a multichannel window to "a spike of unit k is here".

    A pretrained backbone (temporal layers shared by every channel + a spatial layer) gets a new
    head, fine-tuned on labelled spikes from the beginning of the recording; the labels come from a
    conventional SpikeInterface sorter run on the first ``label_duration_s`` seconds (default 10 s of
    spykingcircus2) or from a given sorting (ground truth in benchmarks). The network then runs over
    the whole recording and each unit's probability trace is smoothed (17-point triangular kernel),
    thresholded and peak-picked, in chunks.
    """

    sorter_name = "esort"
    compatible_with_parallel = {"loky": True, "multiprocessing": True, "threading": False}
    requires_locations = False
    handle_multi_segment = True

    _default_params = {
        "label_source": "sorter",
        "label_sorter": DEFAULT_LABEL_SORTER,
        "label_sorter_params": {},
        "label_sorting_path": None,
        "label_duration_s": DEFAULT_LABEL_DURATION_S,
        "num_spikes_per_unit": None,
        "min_spikes_per_unit": 5,
        "pretrained": "esort_backbone",
        "transfer_spatial": "auto",
        "epochs": 60,
        "batch_size": 256,
        "learning_rate": 1e-3,
        "backbone_learning_rate": None,
        "synthetic_fraction": DEFAULT_SYNTHETIC_FRACTION,
        "max_steps": DEFAULT_MAX_STEPS,
        "max_spikes_per_unit": DEFAULT_MAX_SPIKES_PER_UNIT,
        "apply_filter": "auto",
        "freq_min": 300.0,
        "freq_max": 6000.0,
        "filter_method": "iir",
        "threshold": DEFAULT_THRESHOLD,
        "smoothing_kernel_size": 17,
        "min_distance_ms": 0.3,
        "chunk_duration_s": 2.0,
        "stride": "auto",
        "gate_threshold": DEFAULT_GATE_THRESHOLD,
        "gate_margin_samples": DEFAULT_GATE_MARGIN_SAMPLES,
        "gate_peak_sign": DEFAULT_GATE_PEAK_SIGN,
        "inference_dtype": "float32",
        "spatial_radius_um": DEFAULT_SPATIAL_RADIUS_UM,
        "num_workers": "auto",
        "device": "auto",
        "num_threads": None,
        "seed": 0,
    }

    _params_description = {
        "label_source": "'sorter': labels from `label_sorter` run on the first `label_duration_s` seconds (real data); "
                        "'sorting': labels from the sorting saved at `label_sorting_path` (e.g. ground truth)",
        "label_sorter": "SpikeInterface sorter that labels the first `label_duration_s` seconds (label_source='sorter'; "
                        "spykingcircus2: chosen on a tuning recording, benchmarks/results/esort_budget.md)",
        "label_sorter_params": "Parameters passed to `label_sorter`",
        "label_sorting_path": "Sorting used as labels when label_source='sorting': a SpikeInterface sorting folder/file "
                              "(si.load) or a MEArec .h5 file (its ground truth)",
        "label_duration_s": "Labels are taken from the first `label_duration_s` seconds of segment 0 (10: chosen on a "
                            "tuning recording; lengthen it for sparse firing, units with fewer than "
                            "`min_spikes_per_unit` labelled spikes are left out)",
        "num_spikes_per_unit": "Labelled spikes per unit used for fine-tuning (the first N); None: every spike of the "
                               "label period",
        "min_spikes_per_unit": "Label units with fewer spikes are left out",
        "pretrained": "Backbone: a shipped name ('esort_backbone'), a path to a .pt file, or None to train from scratch",
        "transfer_spatial": "'auto': reuse the backbone's spatial layer when the probe geometry matches one it was "
                            "trained on; False: always learn a new spatial layer (temporal layers always transfer)",
        "epochs": "Fine-tuning epochs over the labelled windows (60: chosen on a tuning recording, "
                  "benchmarks/results/esort_finetune.md; with few labels an epoch is only a few steps)",
        "batch_size": "Fine-tuning batch size",
        "learning_rate": "Adam learning rate of the new head",
        "backbone_learning_rate": "Adam learning rate of the backbone during fine-tuning (None: learning_rate, 0: frozen)",
        "synthetic_fraction": "Synthetic windows (a unit's mean labelled waveform added to a random background "
                              "window of the label period, shifted and scaled at random) per real window in each "
                              "fine-tuning batch; 0: none (1.0: chosen on a tuning recording, "
                              "benchmarks/results/esort_synthetic.md)",
        "max_steps": "At most this many fine-tuning optimiser steps in all (None: `epochs` full passes); bounds the "
                     "fine-tuning time whatever the number of labels (benchmarks/results/esort_budget.md)",
        "max_spikes_per_unit": "At most this many labelled spikes of each unit make training windows (None: no cap; "
                               "every labelled spike still counts as a label)",
        "apply_filter": "Band-pass the recording (freq_min-freq_max) before everything: True, False, or 'auto' "
                        "(band-pass unless the recording is marked filtered, `recording.is_filtered()`: MEArec "
                        "files and SpikeInterface's bandpass_filter output are; filtering them again only costs time, "
                        "at 384 channels most of the sorting stage's)",
        "freq_min": "High-pass cut-off in Hz",
        "freq_max": "Low-pass cut-off in Hz",
        "filter_method": "'iir': zero-phase Butterworth band-pass, sosfiltfilt's sections in a numba kernel (fastest); "
                         "'fft': the same filter by FFT (~3x slower at 384 channels); 'sosfiltfilt': SpikeInterface's "
                         "bandpass_filter (the same filter, 1.8-2.5x slower than 'fft')",
        "threshold": "Minimum smoothed probability of a spike (0.25: chosen on a tuning recording, "
                     "benchmarks/results/esort_backbone_threshold.md)",
        "smoothing_kernel_size": "Length (odd, samples) of the triangular kernel smoothing each probability trace",
        "min_distance_ms": "Two spikes of one unit are at least this far apart (peak-picking neighbourhood)",
        "chunk_duration_s": "Duration of the chunks the network and post-processing stream over",
        "stride": "The network runs on windows centred every `stride` samples (1: every sample, exact but twice "
                  "the compute; the +/-5-sample label tolerance makes 2-4 lose almost nothing); 'auto': every "
                  "0.125 ms, at most 4 samples (4 at 32 kHz, 3 at 30 kHz, 2 at 20 kHz; chosen on tuning recordings, "
                  "benchmarks/results/esort_inference.md)",
        "gate_threshold": "Amplitude gate in noise units: the network runs only on windows centred within "
                          "`gate_margin_samples` of a sample where some channel crosses it (`gate_peak_sign`; None: "
                          "every window)",
        "gate_margin_samples": "Half-width in samples of the amplitude gate around each supra-threshold sample",
        "gate_peak_sign": "Which crossings open the amplitude gate, as SpikeInterface's peak_sign: 'neg' (below "
                          "-gate_threshold: spike troughs), 'pos' (above it) or 'both' (either); 'neg' chosen on "
                          "training recordings, benchmarks/results/esort_gate.md",
        "inference_dtype": "Precision of the network's spatial layer when sorting: 'float32' or 'bfloat16' (faster on "
                           "CPUs with AVX512-BF16 or AMX and on GPUs; benchmarks/results/esort_inference.md)",
        "spatial_radius_um": "Local inference: each gated window goes through the spatial layer of the channels within "
                             "this radius of its centre channel (a run of channels in depth order), the others at "
                             "their noise mean; used where those runs are at most half of the channels (64 channels "
                             "and up on Neuropixels); 100: chosen on tuning recordings, "
                             "benchmarks/results/esort_inference.md (None: always the whole spatial layer; needs the "
                             "gate and channel locations)",
        "num_workers": "Chunks sorted at once, each in a thread with one torch thread ('auto': torch's thread count on "
                       "a CPU, at most 8; 1 on a GPU); the spikes do not depend on it",
        "device": "torch device: 'auto' (cuda if available, else cpu), 'cpu', 'cuda', 'cuda:N'",
        "num_threads": "torch CPU threads (None: leave torch's setting)",
        "seed": "Seed of the training and of the label sorter (when it takes one)",
    }

    sorter_description = __doc__

    installation_mesg = "E-Sort ships with spikeinterface-vqcompress (needs torch): pip install spikeinterface-vqcompress"

    @classmethod
    def is_installed(cls):
        try:
            import torch  # noqa: F401
        except ImportError:
            return False
        return True

    @classmethod
    def get_sorter_version(cls):
        from spikeinterface_vqcompress._version import __version__

        return __version__

    @classmethod
    def _check_params(cls, recording, output_folder, params):
        if params["label_source"] not in ("sorter", "sorting"):
            raise ValueError(f"label_source must be 'sorter' or 'sorting', got {params['label_source']!r}")
        if params["label_source"] == "sorting" and not params["label_sorting_path"]:
            raise ValueError("label_source='sorting' needs label_sorting_path (a saved sorting or a MEArec .h5 file)")
        if params["smoothing_kernel_size"] % 2 == 0:
            raise ValueError("smoothing_kernel_size must be odd (17 by default)")
        from spikeinterface_vqcompress.esort.core import check_filter_method

        check_filter_method(params["filter_method"])
        from spikeinterface_vqcompress.esort.core import resolve_apply_filter, resolve_stride

        resolve_apply_filter(recording, params["apply_filter"])
        resolve_stride(params["stride"], recording.get_sampling_frequency())
        from spikeinterface_vqcompress.esort.postprocessing import check_gate_peak_sign, check_local_gate, check_num_workers

        check_gate_peak_sign(params["gate_peak_sign"])
        check_num_workers(params["num_workers"])
        from spikeinterface_vqcompress.esort.model import check_inference_dtype

        check_inference_dtype(params["inference_dtype"])
        radius = params["spatial_radius_um"]
        if radius is not None:
            if not isinstance(radius, (int, float)) or isinstance(radius, bool) or not radius > 0:
                raise ValueError(f"spatial_radius_um must be a distance > 0 in um or None (the whole spatial layer), "
                                 f"got {radius!r}")
        check_local_gate(radius is not None, params["gate_threshold"])
        return params

    @classmethod
    def _check_apply_filter_in_params(cls, params):
        return params["apply_filter"] is True  # "auto" never filters a recording marked filtered

    @classmethod
    def _setup_recording(cls, recording, sorter_output_folder, params, verbose):
        pass  # the recording is read from its provenance (spikeinterface_recording.json / .pickle)

    @classmethod
    def _run_from_folder(cls, sorter_output_folder, params, verbose):
        import torch

        from spikeinterface_vqcompress.esort import core

        sorter_output_folder = Path(sorter_output_folder)
        if params["num_threads"]:
            torch.set_num_threads(int(params["num_threads"]))
        recording = cls.load_recording_from_folder(sorter_output_folder.parent, with_warnings=False)
        info = {"params": params}
        t_start = time.perf_counter()

        # 1. labels
        t0 = time.perf_counter()
        sampling_frequency = recording.get_sampling_frequency()
        num_samples = recording.get_num_samples(segment_index=0)
        label_samples = min(num_samples, int(round(params["label_duration_s"] * sampling_frequency)))
        if params["label_source"] == "sorting":
            label_sorting = _load_label_sorting(params["label_sorting_path"])
        else:
            label_sorting = _run_label_sorter(recording, label_samples, params, sorter_output_folder, verbose)
        labels = core.labels_from_sorting(label_sorting, num_samples, num_spikes_per_unit=params["num_spikes_per_unit"],
                                          label_duration_samples=label_samples,
                                          min_spikes_per_unit=params["min_spikes_per_unit"])
        info["label_time_s"] = time.perf_counter() - t0
        info["labels"] = {**labels.info, "unit_ids": [str(unit) for unit in labels.unit_ids],
                          "labelled_period_end_s": labels.end_sample / sampling_frequency}

        # 2. preprocessing + fine-tuning
        t0 = time.perf_counter()
        apply_filter = core.resolve_apply_filter(recording, params["apply_filter"])
        stride = core.resolve_stride(params["stride"], sampling_frequency)
        info.update(apply_filter=apply_filter, stride=stride)
        prepared = core.prepare_recording(recording, apply_filter, params["freq_min"], params["freq_max"],
                                          filter_method=params["filter_method"])
        noise = core.noise_levels(prepared, seed=params["seed"])
        info["noise_time_s"] = time.perf_counter() - t0
        model, fine_tune_info = core.fine_tune_recording(
            prepared, noise, labels, pretrained=params["pretrained"], transfer_spatial=params["transfer_spatial"],
            epochs=params["epochs"], batch_size=params["batch_size"], learning_rate=params["learning_rate"],
            backbone_learning_rate=params["backbone_learning_rate"], synthetic_fraction=params["synthetic_fraction"],
            max_steps=params["max_steps"], max_spikes_per_unit=params["max_spikes_per_unit"],
            device=params["device"], seed=params["seed"],
            verbose=verbose)
        info.update(fine_tune_info)
        torch.save({"config": model.config, "state_dict": model.state_dict(), "unit_ids": [str(u) for u in labels.unit_ids],
                    "noise_levels": torch.from_numpy(noise)}, sorter_output_folder / "model.pt")

        # 3. sorting
        t0 = time.perf_counter()
        min_distance_samples = max(1, int(round(params["min_distance_ms"] * sampling_frequency / 1000)))
        spatial_radius_um = core.resolve_spatial_radius(prepared, params["spatial_radius_um"])
        info["spatial_radius_um"] = spatial_radius_um
        sorting = core.sort_recording(model, prepared, noise, labels.unit_ids, threshold=params["threshold"],
                                      kernel_size=params["smoothing_kernel_size"],
                                      min_distance_samples=min_distance_samples,
                                      chunk_duration_s=params["chunk_duration_s"], stride=stride,
                                      device=params["device"], gate_threshold=params["gate_threshold"],
                                      gate_margin_samples=params["gate_margin_samples"],
                                      gate_peak_sign=params["gate_peak_sign"],
                                      inference_dtype=params["inference_dtype"],
                                      num_workers=params["num_workers"],
                                      spatial_radius_um=spatial_radius_um)
        info["sort_time_s"] = time.perf_counter() - t0
        info["total_time_s"] = time.perf_counter() - t_start
        info["num_spikes"] = int(sum(len(sorting.get_unit_spike_train(u, segment_index=s))
                                     for u in sorting.unit_ids for s in range(sorting.get_num_segments())))
        sorting.save(folder=sorter_output_folder / "sorting", overwrite=True)
        from spikeinterface_vqcompress.core.jsonio import write_json

        write_json(sorter_output_folder / "esort_info.json", info)
        if verbose:
            print(f"E-Sort: {len(labels.unit_ids)} units, {info['num_spikes']} spikes; labels {info['label_time_s']:.1f} s, "
                  f"fine-tuning {info['fine_tune_time_s']:.1f} s, sorting {info['sort_time_s']:.1f} s")

    @classmethod
    def _get_result_from_folder(cls, sorter_output_folder):
        from spikeinterface.core import load

        return load(Path(sorter_output_folder) / "sorting")


def _load_label_sorting(path):
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"label_sorting_path {path} does not exist")
    if path.suffix in (".h5", ".hdf5"):
        from spikeinterface.extractors import read_mearec

        return read_mearec(path)[1]
    from spikeinterface.core import load

    return load(path)


def _run_label_sorter(recording, label_samples, params, sorter_output_folder, verbose):
    """Run the conventional sorter on the first ``label_samples`` samples of segment 0."""
    import spikeinterface.sorters as ss
    from spikeinterface.core import select_segment_recording

    if params["label_sorter"] == "esort":
        raise ValueError("label_sorter cannot be 'esort' itself")
    head = recording
    if recording.get_num_segments() > 1:
        head = select_segment_recording(recording, 0)
    head = head.frame_slice(start_frame=0, end_frame=label_samples)
    sorter_params = dict(params["label_sorter_params"] or {})
    if "seed" in ss.get_default_sorter_params(params["label_sorter"]) and "seed" not in sorter_params:
        sorter_params["seed"] = params["seed"]
    sorting = ss.run_sorter(params["label_sorter"], head, folder=str(sorter_output_folder / "label_sorter"),
                            remove_existing_folder=True, verbose=verbose, **sorter_params)
    return sorting.save(folder=sorter_output_folder / "labels_sorting", overwrite=True)
