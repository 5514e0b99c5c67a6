"""Helpers shared by the benchmark scripts.

The scripts run as ``python benchmarks/X.py``: Python puts the script's folder on the import path, so
they import this module as ``from common import ...`` (no path manipulation). Everything here uses
the package's public API only; imports of the package and of SpikeInterface happen inside the
functions, so that ``--help`` stays instant.

Sections: paths; results files; simulated recordings (cached in ``benchmarks/work/``) and real
data; E-Sort rows; spike-CAE snippets; stand-ins for codec internals the package does not expose.
"""

from __future__ import annotations

import math
import sys
import threading
import time
from pathlib import Path

import numpy as np

# -- paths ---------------------------------------------------------------------------------------
BENCHMARKS = Path(__file__).resolve().parent
ROOT = BENCHMARKS.parent  # the checkout
WORK = BENCHMARKS / "work"  # simulated recordings, sorter folders, caches (not committed)
RESULTS = BENCHMARKS / "results"  # committed results
SHARED_DATA = ROOT.parent / "shared" / "data"  # Neuralink N1 files, locust tetrode
SPIKE_CAE_WORK = WORK / "spike_cae"  # the spike CAE's training and snippet-evaluation recordings


# -- command line and results files ---------------------------------------------------------------
def codec_benchmark_parser(description: str):
    """An argument parser with the options the codec benchmarks share: ``--quick``, ``--n-jobs``,
    ``--work-folder`` and ``--output``."""
    import argparse

    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--work-folder", default=str(WORK))
    parser.add_argument("--output", default=str(RESULTS))
    return parser


def command_line(script: str, argv=None) -> str:
    """``script`` followed by the arguments it ran with (``argv``, or the command line's)."""
    return " ".join([script, *(sys.argv[1:] if argv is None else argv)])


def write_results(folder, stem: str, payload, markdown=None, fallback=None) -> Path:
    """Write ``folder/stem.json`` (the package's one JSON writer: atomic, inf/NaN as strings) and,
    when given, ``folder/stem.md``; returns the JSON path.

    ``markdown`` is the text as is, or a function returning it, called once the JSON is written (a
    table that fails to render does not lose the rows of a long run). ``fallback`` converts objects
    JSON does not know (``jsonio.json_value``).
    """
    from spikeinterface_vqcompress.core.jsonio import write_json

    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    path = write_json(folder / f"{stem}.json", payload, fallback=fallback)
    if markdown is not None:
        (folder / f"{stem}.md").write_text(markdown() if callable(markdown) else markdown)
    return path


# -- memory --------------------------------------------------------------------------------------
class PeakMemory:
    """Peak RSS of this process plus its children, sampled every 50 ms."""

    def __init__(self):
        import psutil

        self.process = psutil.Process()
        self.peak_MB = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _total_MB(self):
        total = self.process.memory_info().rss
        for child in self.process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except Exception:
                pass
        return total / 2**20

    def _run(self):
        while not self._stop.is_set():
            self.peak_MB = max(self.peak_MB, self._total_MB())
            self._stop.wait(0.05)

    def __enter__(self):
        self.peak_MB = self._total_MB()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


# -- recordings ----------------------------------------------------------------------------------
#: keys of a recording spec passed to ``simulate_recording`` when present
SIMULATION_KEYS = ("probe", "num_units", "duration_s", "seed", "templates_seed", "num_templates_per_cell", "drift", "noise_level_uV")

#: the held-out MEArec evaluation recordings (seeds no model of this package is trained on)
MEAREC_RECORDINGS = [
    {"name": "mearec_neuronexus32", "probe": "Neuronexus-32", "num_units": 20, "duration_s": 30.0, "seed": 101},
    {"name": "mearec_neuropixels64", "probe": "Neuropixels-64", "num_units": 20, "duration_s": 30.0, "seed": 102},
]
#: templates per cell of ``MEAREC_RECORDINGS`` (and of the specs that do not say)
TEMPLATES_PER_CELL = 12


def simulate_if_absent(path, spec: dict, overwrite: bool = False, **simulate_kwargs) -> Path:
    """``path``, simulated with MEArec from ``spec`` when the file is absent (or ``overwrite``).

    ``spec`` gives the parameters of ``simulate_recording`` among :data:`SIMULATION_KEYS` that it has;
    ``simulate_kwargs`` are added to (and replace) them.
    """
    path = Path(path)
    if overwrite or not path.is_file():
        from spikeinterface_vqcompress.groundtruth import simulate_recording

        path.parent.mkdir(parents=True, exist_ok=True)
        parameters = {key: spec[key] for key in SIMULATION_KEYS if key in spec}
        simulate_recording(path, **{**parameters, **simulate_kwargs})
    return path


def load_simulated(path, spec: dict, **simulate_kwargs):
    """``(recording, gt_sorting)`` of :func:`simulate_if_absent`."""
    from spikeinterface_vqcompress.groundtruth import load_ground_truth

    return load_ground_truth(simulate_if_absent(path, spec, **simulate_kwargs))


def sorter_plan(quick: bool):
    """``[(sorter, seeds)]`` of the codec benchmarks: tridesclous2 seed 0, spykingcircus2 seeds 0-2."""
    if quick:
        return [("tridesclous2", [0])]
    return [("tridesclous2", [0]), ("spykingcircus2", [0, 1, 2])]


def locust_recording(folder, quick: bool):
    """The locust tetrode trial (15 kHz, 4 channels, a standard tetrode's geometry: sorters need one)
    saved as a binary recording in ``folder``; the first 10 s with ``quick``; None when the file is absent."""
    file = SHARED_DATA / "locust_tetrode" / "locust_trial_01.raw"
    if not file.is_file():
        return None
    import spikeinterface.core as sc
    from probeinterface import generate_tetrode

    traces = np.fromfile(file, dtype="<i2").reshape(-1, 4)
    if quick:
        traces = traces[: 15000 * 10]
    recording = sc.NumpyRecording(traces, sampling_frequency=15000.0)
    tetrode = generate_tetrode()
    tetrode.set_device_channel_indices(np.arange(4))
    recording.set_probe(tetrode)
    return recording.save(folder=folder, overwrite=True, progress_bar=False)



#: the real recordings in ``../shared/data`` the codec benchmarks score as agreement with the raw sorting
REAL_RECORDINGS = [{"name": "locust_tetrode"}, {"name": "openephys_16ch"}]


def real_recording(name):
    """One of :data:`REAL_RECORDINGS` as a SpikeInterface recording with a probe, or None when its files
    are absent: the locust tetrode trial 01 (4 ch, 15 kHz, 28.8 s, saved as binary in ``benchmarks/work``)
    or the Open Ephys legacy recording (16 ch, 40 kHz, 3.3 s; a linear probe of 25 um pitch)."""
    if name == "locust_tetrode":
        return locust_recording(WORK / "storage_locust_binary", quick=False)
    if name != "openephys_16ch":
        raise ValueError(f"unknown real recording {name!r}; choose from {[spec['name'] for spec in REAL_RECORDINGS]}")
    folder = SHARED_DATA / "openephys_legacy_16ch"
    if not folder.is_dir():
        return None
    import probeinterface as pi
    import spikeinterface.extractors as se

    recording = se.read_openephys(folder)
    probe = pi.generate_linear_probe(num_elec=recording.get_num_channels(), ypitch=25.0)
    probe.set_device_channel_indices(np.arange(recording.get_num_channels()))
    recording.set_probe(probe, in_place=True)
    return recording

# -- E-Sort --------------------------------------------------------------------------------------
#: E-Sort's held-out recordings (never used for pretraining nor for choosing settings)
ESORT_RECORDINGS = [
    *MEAREC_RECORDINGS,
    {"name": "mearec_neuropixels128", "probe": "Neuropixels-128", "num_units": 20, "duration_s": 30.0, "seed": 104,
     "num_templates_per_cell": 8},
    # the study's drifting recording (benchmarks/study/study.yaml, nn32-drift): rigid drift at 30 um/min
    {"name": "mearec_neuronexus32_drift", "probe": "Neuronexus-32", "num_units": 8, "duration_s": 20.0, "seed": 103,
     "num_templates_per_cell": 4, "drift": True},
]
#: samples between the windows E-Sort's network sees when sorting
ESORT_STRIDE = 2


def load_esort_recording(spec, work_folder):
    """``(recording, gt_sorting)`` of one of :data:`ESORT_RECORDINGS`, simulated into ``work_folder`` when absent."""
    return load_simulated(Path(work_folder) / f"{spec['name']}.h5", spec,
                          num_templates_per_cell=spec.get("num_templates_per_cell", TEMPLATES_PER_CELL),
                          drift=spec.get("drift", False))


def score(gt_sorting, sorting, start_frame=0):
    """Scores against ground truth, from ``start_frame`` on."""
    from spikeinterface_vqcompress.evaluation import score_sorting

    if start_frame:
        gt_sorting = gt_sorting.frame_slice(start_frame, None)
        sorting = sorting.frame_slice(start_frame, None)
    return score_sorting(gt_sorting, sorting)


def mean_scores(scores):
    """Scores averaged over fine-tuning seeds (every numeric entry), with the accuracy's spread."""
    out = {key: float(np.mean([score[key] for score in scores])) for key in scores[0]}
    out["accuracy_std"] = float(np.std([score["accuracy_mean"] for score in scores]))
    out["accuracy_per_seed"] = [score["accuracy_mean"] for score in scores]
    return out


def esort_row(recording, gt_sorting, labels, pretrained, dataset, tag, threads, seeds=(0,)):
    """Fine-tune E-Sort once per seed, sort (ungated and gated) and score; scores and times are the
    mean over the seeds, the accuracy's std and per-seed values are kept."""
    import torch

    from spikeinterface_vqcompress.esort import core
    from spikeinterface_vqcompress.esort.defaults import DEFAULT_GATE_MARGIN_SAMPLES, DEFAULT_GATE_PEAK_SIGN, DEFAULT_GATE_THRESHOLD

    torch.set_num_threads(threads)
    t0 = time.perf_counter()
    prepared = core.prepare_recording(recording)
    noise = core.noise_levels(prepared, seed=0)
    prep_s = time.perf_counter() - t0
    runs = []
    for seed in seeds:
        model, info = core.fine_tune_recording(prepared, noise, labels, pretrained=pretrained, seed=seed)
        t0 = time.perf_counter()
        sorting = core.sort_recording(model, prepared, noise, labels.unit_ids, stride=ESORT_STRIDE)
        sort_s = time.perf_counter() - t0
        # the same fine-tuned network with the amplitude gate (the sorter's default), sorted right after
        t0 = time.perf_counter()
        gated = core.sort_recording(model, prepared, noise, labels.unit_ids, stride=ESORT_STRIDE,
                                    gate_threshold=DEFAULT_GATE_THRESHOLD, gate_margin_samples=DEFAULT_GATE_MARGIN_SAMPLES,
                                    gate_peak_sign=DEFAULT_GATE_PEAK_SIGN)
        gated_s = time.perf_counter() - t0
        runs.append({"seed": seed, "info": info, "sort_s": sort_s, "gated_s": gated_s,
                     "whole": score(gt_sorting, sorting), "rest": score(gt_sorting, sorting, labels.end_sample),
                     "gated_whole": score(gt_sorting, gated), "gated_rest": score(gt_sorting, gated, labels.end_sample)})
    row = {"dataset": dataset, "method": tag, "num_spikes_per_unit": labels.info["num_spikes_per_unit"],
           "pretrained": bool(pretrained), "transfer": runs[0]["info"]["transfer"], "seeds": list(seeds),
           "labelled_period_end_s": labels.end_sample / recording.get_sampling_frequency(),
           "noise_estimation_s": prep_s, "fine_tune_s": float(np.mean([r["info"]["fine_tune_time_s"] for r in runs])),
           "sort_s": float(np.mean([r["sort_s"] for r in runs])),
           "num_training_windows": runs[0]["info"]["num_training_windows"],
           "final_loss": float(np.mean([r["info"]["history"]["loss"][-1] for r in runs])),
           "whole": mean_scores([r["whole"] for r in runs]), "rest": mean_scores([r["rest"] for r in runs])}
    row["gated"] = {"gate_threshold": DEFAULT_GATE_THRESHOLD, "gate_margin_samples": DEFAULT_GATE_MARGIN_SAMPLES,
                    "gate_peak_sign": DEFAULT_GATE_PEAK_SIGN,
                    "sort_s": float(np.mean([r["gated_s"] for r in runs])),
                    "whole": mean_scores([r["gated_whole"] for r in runs]),
                    "rest": mean_scores([r["gated_rest"] for r in runs])}
    print(f"{dataset} {tag}: acc {row['whole']['accuracy_mean']:.3f} +/- {row['whole']['accuracy_std']:.3f} (rest "
          f"{row['rest']['accuracy_mean']:.3f}), fine-tune {row['fine_tune_s']:.0f} s, sort {row['sort_s']:.1f} s; "
          f"gated: acc {row['gated']['whole']['accuracy_mean']:.3f}, sort {row['gated']['sort_s']:.1f} s", flush=True)
    return row


def sorter_row(ss, sorter, recording, gt_sorting, dataset, work):
    """Run one SpikeInterface sorter (seed 0 where it takes one, default parameters): ``(row, sorting)``."""
    from spikeinterface_vqcompress.evaluation.sorting import run_seeded_sorter

    if sorter not in ss.installed_sorters():
        raise RuntimeError(f"{sorter} is not installed")
    sorting, elapsed = run_seeded_sorter(recording, sorter, 0, Path(work) / f"esort_bench_{dataset}_{sorter}")
    row = {"dataset": dataset, "method": sorter, "sort_s": elapsed, "whole": score(gt_sorting, sorting)}
    print(f"{dataset} {sorter}: acc {row['whole']['accuracy_mean']:.3f} in {elapsed:.0f} s", flush=True)
    return row, sorting


# -- spike CAE -----------------------------------------------------------------------------------
#: the spike CAE's training recordings, per training set (simulated from TRAINING template sets only)
SPIKE_CAE_TRAINING_RECORDINGS = {
    "Neuronexus-32": [
        {"name": "train_nn32_s201_u20_60s", "num_units": 20, "duration_s": 60.0, "seed": 201},
        {"name": "train_nn32_s201_u14_60s", "num_units": 14, "duration_s": 60.0, "seed": 201},
    ],
    # more template libraries (new seeds, never evaluated on): the CAE trained on one library's 34
    # units generalises poorly to unseen templates, so this set adds four libraries of 130 templates
    # (MEArec could not place 20 units 25 um apart from the library of seed 214: 14 units there)
    # (a set named other than its probe says the probe in each entry)
    "Neuronexus-32-five-libraries": [
        {"name": "train_nn32_s201_u20_60s", "probe": "Neuronexus-32", "num_units": 20, "duration_s": 60.0, "seed": 201},
        {"name": "train_nn32_s201_u14_60s", "probe": "Neuronexus-32", "num_units": 14, "duration_s": 60.0, "seed": 201},
        *({"name": f"train_nn32_s{seed}_u20_60s", "probe": "Neuronexus-32", "num_units": 20, "duration_s": 60.0,
           "seed": seed} for seed in (211, 212, 213)),
        {"name": "train_nn32_s214_u14_60s", "probe": "Neuronexus-32", "num_units": 14, "duration_s": 60.0, "seed": 214},
    ],
    "Neuropixels-64": [
        {"name": "train_np64_s202_u20_60s", "num_units": 20, "duration_s": 60.0, "seed": 202},
        {"name": "train_np64_s202_u14_60s", "num_units": 14, "duration_s": 60.0, "seed": 202},
    ],
}


def training_recordings(training_set: str, clean: bool = False) -> list[Path]:
    """Simulate (once) and return the recordings of a training set (a key of ``SPIKE_CAE_TRAINING_RECORDINGS``).

    ``clean=True`` gives their noise-free twins (same seed, units and spike trains; ``noise_level_uV=0``),
    the targets of a denoising model.
    """
    return [simulate_if_absent(SPIKE_CAE_WORK / f"{spec['name']}{'_clean' if clean else ''}.h5", spec,
                               probe=spec.get("probe", training_set), num_templates_per_cell=10, fallback="never",
                               **({"noise_level_uV": 0.0} if clean else {}))
            for spec in SPIKE_CAE_TRAINING_RECORDINGS[training_set]]


#: the snippet benchmarks' evaluation recordings (simulated twice: with noise, and clean)
SNIPPET_EVALUATION = [
    {"name": "nn32_seed0", "probe": "Neuronexus-32", "num_units": 10, "duration_s": 30.0, "seed": 0, "templates_per_cell": 10,
     "model": "nn32-4x64-r2"},
    {"name": "nn32_seed101", "probe": "Neuronexus-32", "num_units": 20, "duration_s": 30.0, "seed": 101,
     "templates_per_cell": 12, "model": "nn32-4x64-r2"},
    {"name": "np64_seed102", "probe": "Neuropixels-64", "num_units": 20, "duration_s": 30.0, "seed": 102,
     "templates_per_cell": 12, "model": "np64-15x48"},  # the paper shape on Neuropixels: not retrained yet
]


def simulate_snippet_recording(spec, noise_level_uV) -> Path:
    """One of :data:`SNIPPET_EVALUATION`, with noise (``noise_level_uV`` > 0) or clean (0); its path."""
    suffix = "" if noise_level_uV else "_clean"
    return simulate_if_absent(SPIKE_CAE_WORK / f"eval_{spec['name']}{suffix}.h5", spec,
                              num_templates_per_cell=spec["templates_per_cell"], noise_level_uV=noise_level_uV,
                              fallback="never")


def snippets_of(path, model, max_snippets, seed=0, margin=0):
    """Ground-truth snippets of a recording file cut for ``model``, and a seeded sorted choice of at
    most ``max_snippets`` of them: ``(extracted, keep)``."""
    from spikeinterface_vqcompress.training.spike_cae import extract_ground_truth_snippets

    extracted = extract_ground_truth_snippets(path, num_channels=model.num_channels, num_samples=model.num_samples,
                                              trough_sample=model.trough_sample, margin=margin)
    rng = np.random.default_rng(seed)
    keep = np.sort(rng.choice(len(extracted["snippets_uV"]), min(max_snippets, len(extracted["snippets_uV"])),
                              replace=False))
    return extracted, keep


def header_bytes_per_spike(sample_indices, num_channels):
    """Spike time (the spike-cae codec's encode_times) + peak channel bits, per spike."""
    times = np.sort(np.asarray(sample_indices, dtype=np.int64))
    try:
        from spikeinterface_vqcompress.core.codecs.spike_cae.codec import encode_times

        time_bytes = len(encode_times(times)) / max(times.size, 1)
        source = "spikecae.codec.encode_times"
    except Exception as error:  # the codec helper's module is missing or changed: fall back, and say so
        time_bytes = 2.0
        source = f"fixed 2 bytes (encode_times unavailable: {error})"
    return time_bytes + math.log2(num_channels) / 8.0, source


def summarize_snippets(payload_bytes, header_bytes, snippets, clean, decoded, num_channels, num_samples, encode_s=None):
    """Bytes per spike, ratios and SNDR (against the input, and the clean snippets when given) of one coded batch."""
    from spikeinterface_vqcompress.training.spike_cae import snippet_sndr_db

    raw16 = num_channels * num_samples * 2
    raw10 = num_channels * num_samples * 10 / 8
    sndr = snippet_sndr_db(snippets, decoded)
    result = {
        "payload_bytes_per_spike": float(payload_bytes),
        "total_bytes_per_spike": float(payload_bytes + header_bytes),
        "ratio_int16_payload_only": raw16 / payload_bytes,
        "ratio_int16_with_times": raw16 / (payload_bytes + header_bytes),
        "ratio_10bit_with_times": raw10 / (payload_bytes + header_bytes),
        "sndr_input_db_mean": float(sndr.mean()),
        "sndr_input_db_std": float(sndr.std()),
        "sndr_input_db_median": float(np.median(sndr)),
    }
    if clean is not None:
        sndr_clean = snippet_sndr_db(clean, decoded)
        result["sndr_clean_db_mean"] = float(sndr_clean.mean())
        result["sndr_clean_db_median"] = float(np.median(sndr_clean))
    if encode_s is not None:
        result["encode_s_per_1000_spikes"] = 1000 * encode_s / len(snippets)
    return result


def cae_point(model, snippets, clean, header_bytes):
    """A spike CAE's rate-distortion point from its real rANS bytes (one stream per code position)."""
    from spikeinterface_vqcompress.evaluation.snippet_baselines import cae_decode_payload, cae_payload, payload_nbytes

    start = time.perf_counter()
    data, _ = cae_payload(model, snippets)
    encode_s = time.perf_counter() - start
    decoded = cae_decode_payload(model, data, len(snippets))
    payload = payload_nbytes(data) / len(snippets)
    result = summarize_snippets(payload, header_bytes, snippets, clean, decoded, model.num_channels, model.num_samples,
                                encode_s)
    result["fixed_length_bits_per_spike"] = model.bits_per_spike_fixed
    return result
