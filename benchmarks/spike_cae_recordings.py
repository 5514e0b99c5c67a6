"""Benchmark of the ``spike-cae`` recording codec: bits on the link vs spike sorting (issue 3).

Stages (each appends to ``benchmarks/results/spike_cae_recordings.json`` and rewrites the markdown):

``ablation``
    Design of the detection and background stages with the *identity* snippet coder (raw int16
    snippets, no CAE) so that their sorting loss is separated from the CAE's; on a TRAINING
    recording (Neuronexus-32, templates seed 201, 20 units, 30 s), never on the evaluation data.
``evaluate``
    The ratio-accuracy curve with the CAE on the evaluation recordings: the demo recording
    (Neuronexus-32, 10 units, seed 0), ``benchmarks/work/mearec_neuronexus32.h5`` (seed 101) and
    ``mearec_neuropixels64.h5`` (seed 102); tridesclous2 seed 0, and spykingcircus2 seeds 0-2 for the
    main operating point when ``--sc2`` is given. Ratios from the real container bytes (header with
    geometry and codec config, chunk index, times, channels, noise statistics, code indices),
    against int16 and against a 10-bit ADC.
``select``
    Choice of the default NN32 model (``spikecae.codec.default_model``) among the shipped CAE models
    on a TUNING recording (Neuronexus-32, seed 203, 20 units, 30 s) that is neither a CAE training
    recording (seed 201) nor an evaluation recording; run once per sorter (``--sorter`` /
    ``--seeds``).
``throughput``
    Encoder front end (detection + snippet cut + background statistics) on one core for 1024
    channels x 20 kHz (the Neuronexus-32 training recording tiled to 1024 channels on a 32 x 32
    grid), and the CAE encoder per spike.

Run::

    python benchmarks/spike_cae_recordings.py --stage ablation
    python benchmarks/spike_cae_recordings.py --stage evaluate [--sc2]
    python benchmarks/spike_cae_recordings.py --stage select [--sorter spykingcircus2 --seeds 0 1 2]
    python benchmarks/spike_cae_recordings.py --stage throughput
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
import time
from pathlib import Path

import numpy as np

from common import RESULTS, load_simulated, write_results
from spikeinterface_vqcompress.core.codecs.spike_cae.codec import uniform_table
from common import WORK as BENCHMARK_WORK

WORK = BENCHMARK_WORK / "spike_cae_codec"
NAME = "spike_cae_recordings"

TRAIN_RECORDING = {"name": "nn32_seed201_train", "probe": "Neuronexus-32", "num_units": 20, "duration_s": 30.0, "seed": 201,
                   "num_templates_per_cell": 10}
TUNING_RECORDING = {"name": "nn32_seed203_tuning", "probe": "Neuronexus-32", "num_units": 20, "duration_s": 30.0, "seed": 203,
                    "num_templates_per_cell": 10}
EVALUATION_RECORDINGS = [
    {"name": "nn32_seed0_demo", "path": WORK / "nn32_seed0_demo.h5", "probe": "Neuronexus-32", "num_units": 10, "duration_s": 30.0,
     "seed": 0, "num_templates_per_cell": 10},
    {"name": "mearec_neuronexus32", "path": BENCHMARK_WORK / "mearec_neuronexus32.h5", "probe": "Neuronexus-32", "num_units": 20,
     "duration_s": 30.0, "seed": 101, "num_templates_per_cell": 12},
    {"name": "mearec_neuropixels64", "path": BENCHMARK_WORK / "mearec_neuropixels64.h5", "probe": "Neuropixels-64", "num_units": 20,
     "duration_s": 30.0, "seed": 102, "num_templates_per_cell": 12},
]

ABLATION = [
    ("reference: threshold 4.5, NMS +-8 samples / 50 um, 1 group, AR(6), replace", {}),
    ("white background (AR order 0)", {"ar_order": 0}),
    ("threshold 4.0", {"threshold": 4.0}),
    ("threshold 5.5", {"threshold": 5.5}),
    ("NMS +-16 samples", {"exclude_sweep_samples": 16}),
    ("2 channel groups (8 channels)", {"footprint_groups": 2}),
    ("3 channel groups (12 channels)", {"footprint_groups": 3}),
    ("threshold 4.0 + 2 groups", {"threshold": 4.0, "footprint_groups": 2}),
    ("4 channel groups (16 channels, to 100 um)", {"footprint_groups": 4}),
    ("4 groups, 96-sample snippets (trough at 32)", {"footprint_groups": 4, "snippet_samples": 96, "trough_sample": 32}),
    ("threshold 4.0 + 4 groups", {"threshold": 4.0, "footprint_groups": 4}),
    ("4 groups, NMS +-4 samples", {"footprint_groups": 4, "exclude_sweep_samples": 4}),
    ("6 channel groups (24 channels)", {"footprint_groups": 6}),
]

#: The same stages with the CAE in place of the raw snippets (TRAINING recording): what the CAE adds.
CAE_ABLATION = [
    ("CAE nn32-16x64 (16 channels x 64 samples)", {"model": "nn32-16x64"}),
    ("CAE nn32-16x96 (16 channels x 96 samples, 32 codes of 256)", {"model": "nn32-16x96"}),
    ("CAE nn32-4x64-r2 (4 channels x 64, the paper's shape)", {"model": "nn32-4x64-r2"}),
]


def load(spec):
    return load_simulated(spec.get("path") or WORK / f"{spec['name']}.h5", spec)


class Results:
    """Incremental JSON + markdown writer."""

    def __init__(self, path_json: Path):
        self.path = path_json
        self.payload = json.loads(path_json.read_text()) if path_json.exists() else {"rows": [], "throughput": None}

    def add(self, row):
        if self.path.exists():  # another run may have written meanwhile (notes, other stages): merge
            on_disk = json.loads(self.path.read_text())
            self.payload = {**on_disk, **{key: value for key, value in self.payload.items() if key not in ("rows", "notes", "throughput")}}
        key = (row["stage"], row["dataset"], row["label"], row.get("sorter"))
        self.payload["rows"] = [r for r in self.payload["rows"] if (r["stage"], r["dataset"], r["label"], r.get("sorter")) != key]
        self.payload["rows"].append(row)
        self.save()

    def save(self):
        write_results(self.path.parent, self.path.stem, self.payload, lambda: markdown(self.payload))


def summarise(result, label, stage, dataset, spikes_per_s=None):
    row = {
        "stage": stage, "dataset": dataset, "label": label, "codec": result["codec"], "codec_config": result["codec_config"],
        "encoded_nbytes": result["encoded_nbytes"], "compression_ratio_vs_int16": result["compression_ratio"],
        "compression_ratio_vs_10bit_adc": result["compression_ratio"] * 10 / 16, "bits_per_sample": result["bits_per_sample"],
        "kbit_per_s": result["encoded_nbytes"] * 8 / result["duration_s"] / 1000, "encode_speed_x_realtime": result["encode_speed_x_realtime"],
        "decode_speed_x_realtime": result["decode_speed_x_realtime"], "sndr_spike_db_mean": result.get("sndr_spike_db_mean"),
        "num_channels": result["num_channels"], "duration_s": result["duration_s"],
        "hardware_profile": result.get("hardware_profile"),
    }
    if "raw" in result:
        row.update(sorter=result["sorter"], seeds=result["seeds"], accuracy_raw=result["raw"]["accuracy_mean"],
                   accuracy_rebuilt=result["compressed"]["accuracy_mean"], accuracy_rebuilt_std=result["compressed"]["accuracy_mean_std"],
                   accuracy_change=result["accuracy_change"], recall_rebuilt=result["compressed"]["recall_mean"],
                   precision_rebuilt=result["compressed"]["precision_mean"], well_detected_raw=result["raw"]["num_well_detected"],
                   well_detected_rebuilt=result["compressed"]["num_well_detected"], repeats=result["compressed"]["repeats"],
                   raw_repeats=result["raw"]["repeats"])
    if spikes_per_s is not None:
        row["detected_spikes_per_s"] = spikes_per_s
    return row


def count_spikes(recording, config):
    from spikeinterface_vqcompress.core.registry import get_codec

    codec = get_codec(config).with_recording(recording)
    total = 0
    for start in range(0, recording.get_num_samples(), int(recording.sampling_frequency)):
        traces = recording.get_traces(start_frame=start, end_frame=min(start + int(recording.sampling_frequency), recording.get_num_samples()))
        total += len(codec.detect(traces)[0])
    return total / recording.get_total_duration()


def run_configs(results, recording, gt_sorting, dataset, stage, configs, sorter, seeds, raw_scores, n_jobs):
    from spikeinterface_vqcompress.core.registry import get_codec
    from spikeinterface_vqcompress.evaluation import evaluate

    for label, config in configs:
        t0 = time.perf_counter()
        # one folder per dataset and configuration: runs of this script in parallel never share a sorter folder
        folder = WORK / "runs" / dataset / hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]
        result = evaluate(recording, gt_sorting, codec=config, sorter=sorter, seeds=seeds, output_folder=folder,
                          adc_bits=16, raw_scores=raw_scores, n_jobs=n_jobs, progress_bar=False)
        row = summarise(result, label, stage, dataset, count_spikes(recording, config))
        codec = get_codec(config).with_recording(recording)
        if not codec.is_identity:
            from spikeinterface_vqcompress.core.weights import MODELS_FOLDER, SHIPPED_WEIGHTS

            card = MODELS_FOLDER / SHIPPED_WEIGHTS["spike-cae"].get(codec.params["model"], "none.pt")
            card = card.with_suffix(".json")
            row["model"] = {"name": codec.params["model"], "model_sha256": codec.model_sha256,
                            "card_name": json.loads(card.read_text()).get("name") if card.exists() else None}
        results.add(row)
        print(f"{dataset} {label}: ratio {row['compression_ratio_vs_int16']:.1f} (int16), {row['kbit_per_s']:.1f} kbit/s, "
              f"accuracy {row.get('accuracy_raw', float('nan')):.3f} -> {row.get('accuracy_rebuilt', float('nan')):.3f} "
              f"({time.perf_counter() - t0:.0f} s)", flush=True)


#: Reuse raw sortings from benchmarks/results/baselines.json (``--reuse-baseline-raw``); off by default
#: so that raw and rebuilt recordings are sorted in the same run, on the same machine.
REUSE_BASELINE_RAW_SORTS = False


def raw_sort(recording, gt_sorting, dataset, sorter, seeds, n_jobs):
    from spikeinterface_vqcompress.evaluation import sort_and_score

    cache = WORK / f"raw_scores_{dataset}_{sorter}_{'-'.join(map(str, seeds))}.json"
    if cache.exists():
        return json.loads(cache.read_text())
    baselines = RESULTS / "baselines.json"
    if REUSE_BASELINE_RAW_SORTS and baselines.exists():  # the same raw recording, sorter and seeds were sorted by benchmarks/baselines.py
        for row in json.loads(baselines.read_text())["rows"]:
            if row.get("dataset") == dataset and row.get("sorter") == sorter and "raw" in row:
                repeats = [repeat for repeat in row["raw"]["repeats"] if repeat["seed"] in seeds]
                if sorted(repeat["seed"] for repeat in repeats) == sorted(seeds):
                    print(f"{dataset} raw {sorter}: reusing benchmarks/results/baselines.json", flush=True)
                    return [dict(repeat, reused_from="benchmarks/results/baselines.json") for repeat in repeats]
    scores = [sort_and_score(recording, gt_sorting, sorter, seed, WORK / "runs" / f"raw_{dataset}_{sorter}_{seed}",
                             job_kwargs={"n_jobs": n_jobs, "progress_bar": False}) for seed in seeds]
    cache.write_text(json.dumps(scores))
    print(f"{dataset} raw {sorter}: {[round(s['accuracy_mean'], 3) for s in scores]}", flush=True)
    return scores


def stage_ablation(results, n_jobs, only=None):
    recording, gt_sorting = load(TRAIN_RECORDING)
    raw_scores = raw_sort(recording, gt_sorting, TRAIN_RECORDING["name"], "tridesclous2", [0], n_jobs)
    configs = [(label, {"id": "spike-cae", "model": "identity", **params}) for label, params in ABLATION]
    configs += [(label, {"id": "spike-cae", **params}) for label, params in CAE_ABLATION]
    if only:
        configs = [configs[index] for index in only]
    run_configs(results, recording, gt_sorting, TRAIN_RECORDING["name"], "ablation", configs, "tridesclous2", [0], raw_scores, n_jobs)


def stage_select(results, n_jobs, sorter, seeds, points=None):
    recording, gt_sorting = load(TUNING_RECORDING)
    raw_scores = raw_sort(recording, gt_sorting, TUNING_RECORDING["name"], sorter, seeds, n_jobs)
    configs = [(label, {"id": "spike-cae", **params}) for label, params in (points or CAE_ABLATION)]
    run_configs(results, recording, gt_sorting, TUNING_RECORDING["name"], "select", configs, sorter, seeds, raw_scores, n_jobs)


def parse_points(texts):
    points = []
    for text in texts:
        label, _, params = text.partition("=")
        points.append((label, json.loads(params)))
    return points


def stage_evaluate(results, n_jobs, points, datasets, sorter, seeds):
    for spec in EVALUATION_RECORDINGS:
        if datasets and spec["name"] not in datasets:
            continue
        recording, gt_sorting = load(spec)
        raw_scores = raw_sort(recording, gt_sorting, spec["name"], sorter, seeds, n_jobs)
        configs = [(label, {"id": "spike-cae", **params}) for label, params in points]
        run_configs(results, recording, gt_sorting, spec["name"], "evaluate", configs, sorter, seeds, raw_scores, n_jobs)


def stage_throughput(results):
    """Encoder front end on one core: 1024 channels x 20 kHz, 5 s of data."""
    import threadpoolctl

    from spikeinterface_vqcompress.core.codecs.spike_cae.background import estimate_background
    from spikeinterface_vqcompress.core.codecs.spike_cae.detection import DetectionParameters, StreamingSpikeDetector

    recording, _ = load(TRAIN_RECORDING)
    sampling_frequency = 20000
    duration_s = 5
    source = recording.get_traces(start_frame=0, end_frame=sampling_frequency * duration_s)  # 32 ch, read as if 20 kHz
    traces = np.ascontiguousarray(np.tile(source, (1, 32)))  # (100000, 1024)
    x, y = np.meshgrid(np.arange(32) * 20.0, np.arange(32) * 20.0)
    locations = np.stack([x.ravel(), y.ravel()], axis=1)
    rows = {}
    with threadpoolctl.threadpool_limits(1):
        for label, snippet_channels, snippet_samples, trough in (("4 x 64", 4, 64, 21), ("15 x 48", 15, 48, 16)):
            detector = StreamingSpikeDetector(locations, snippet_channels, snippet_samples, trough, DetectionParameters(noise_smoothing=0.95))
            block = sampling_frequency // 100  # 10 ms blocks, as an implant would stream
            t0 = time.process_time()
            count = 0
            for start in range(0, traces.shape[0], block):
                times, channels, snippets = detector.process(traces[start:start + block], final=start + block >= traces.shape[0])
                count += len(times)
            detection_s = time.process_time() - t0
            chunk = sampling_frequency  # background statistics once per second of data
            mask = np.zeros((chunk, traces.shape[1]), dtype=bool)
            background_seconds = {}
            for max_samples in (None, 8192, 4096):
                t0 = time.process_time()
                for start in range(0, traces.shape[0], chunk):
                    estimate_background(traces[start:start + chunk], ar_order=6, exclude_mask=mask, max_samples=max_samples)
                background_seconds[str(max_samples or "all")] = time.process_time() - t0
            background_s = background_seconds["8192"]
            rows[label] = {"detection_s": detection_s, "background_stats_s": background_s, "data_s": duration_s,
                           "detected_spikes": count, "spikes_per_s": count / duration_s, "background_stats_s_by_samples": background_seconds,
                           "background_samples_assumed": 8192,
                           "realtime_factor_detection": duration_s / detection_s,
                           "realtime_factor_front_end": duration_s / (detection_s + background_s), "block_ms": 10}
            print(label, rows[label], flush=True)
        # CAE encoder per spike on one thread: the shipped encode_indices (FoldedEncoder: batch norms
        # folded, time-major) beside the nn.Module forward it replaces, interleaved; then the entropy
        # coding of one second of spikes (indices, times, peak channels) at the measured spike rate
        import torch

        torch.set_num_threads(1)
        from spikeinterface_vqcompress.core.entropy.rans import encode_symbols
        from spikeinterface_vqcompress.core.codecs.spike_cae.codec import encode_times, encode_with_tables
        from spikeinterface_vqcompress.core.codecs.spike_cae.model import available_spike_cae_models, load_spike_cae

        spikes_per_s = rows["4 x 64"]["spikes_per_s"]
        cae = {}
        for name in available_spike_cae_models():
            model = load_spike_cae(name)
            snippets = np.random.default_rng(0).normal(0, 20, (2000, model.num_channels, model.num_samples)).astype(np.float32)
            batch = torch.from_numpy(snippets)
            model.encode_indices(snippets[:100])
            folded, module = [], []
            for _ in range(3):
                t0 = time.process_time()
                model.encode_indices(snippets, batch_size=500)
                folded.append((time.process_time() - t0) / len(snippets))
                t0 = time.process_time()
                with torch.no_grad():
                    for begin in range(0, len(snippets), 500):
                        model.quantizer.quantize_indices(model.encode_latent(batch[begin:begin + 500]))
                module.append((time.process_time() - t0) / len(snippets))
            count = int(round(spikes_per_s))
            indices = model.encode_indices(np.resize(snippets, (count,) + snippets.shape[1:]))
            times = np.sort(np.random.default_rng(1).choice(sampling_frequency, count, replace=False))
            channels = np.random.default_rng(2).integers(0, 1024, count)
            tables = model.frequency_tables()
            t0 = time.process_time()
            encode_with_tables(indices, tables)
            encode_times(times)
            encode_symbols(channels, uniform_table(1024))
            entropy_s = time.process_time() - t0
            per_spike = float(np.median(folded))
            cae[name] = {"encode_s_per_spike": per_spike, "spikes_per_s_one_core": 1 / per_spike,
                         "module_forward_s_per_spike": float(np.median(module)),
                         "entropy_coding_s_per_s_of_data": entropy_s,
                         "encoder_macs_per_snippet": model.encoder_macs_per_snippet, "repeats": 3}
            print(name, cae[name], flush=True)
    front = rows["4 x 64"]
    if results.path.exists():  # other stages may have added rows while this one ran: keep them
        results.payload = {**json.loads(results.path.read_text()), "command_last": results.payload.get("command_last")}
    combined = {}
    for name, figures in cae.items():
        # CPU seconds per second of data: detection + background statistics + CAE at the measured rate + entropy coding
        total = (front["detection_s"] + front["background_stats_s"]) / front["data_s"] \
            + front["spikes_per_s"] * figures["encode_s_per_spike"] + figures["entropy_coding_s_per_s_of_data"]
        combined[name] = 1.0 / total
    results.payload["throughput"] = {
        "channels": 1024, "sampling_frequency": sampling_frequency, "front_end": rows, "cae_encoder": cae,
        "note": ("one thread (threadpoolctl + torch.set_num_threads(1)), CPU time of this process (time.process_time, which other jobs on the host disturb less than the wall clock); numpy on this host CPU; the 1024 channels are the "
                 "32-channel training recording tiled 32 times on a 32 x 32 grid of 20 um pitch, so the spike rate per "
                 "channel is that of MEArec's Neuronexus-32 recording. CAE times: median of 3 interleaved repeats of "
                 "2000 snippets in batches of 500, encode_indices (the shipped path) beside the nn.Module forward. "
                 "Whole encoder: the 4 x 64 front end (detection + background statistics), the CAE at the measured "
                 "spike rate and the rANS coding of that second's indices, times and peak channels"),
        "combined_realtime_factor": combined,
    }
    results.save()


def _fmt(value, digits=3):
    if value is None or (isinstance(value, str)):
        return "-" if value is None else value
    return f"{value:.{digits}f}"


def markdown(payload) -> str:
    lines = ["# spike-cae: spikes as CAE code indices + synthesised background", "",
             "Ratios from the real container bytes (header with probe geometry and codec config, chunk index, spike times, "
             "channels, background statistics, code indices), 1 s chunks coded independently. `vs 10-bit ADC` = ratio against "
             "the bits a 10-bit ADC would emit (the int16 ratio x 10/16). Accuracy: mean ground-truth accuracy, "
             "tridesclous2 seed 0 unless said; `±` is the spread over seeds.", ""]
    rows = payload["rows"]
    for stage, title in (("ablation", "Ablation of detection/background with the identity snippet coder (raw int16 snippets, "
                                      "TRAINING recording NN32 seed 201, 20 units)"),
                         ("select", "Choice of the default model, TUNING recording NN32 seed 203 (not trained on, not reported as evaluation)"),
                         ("evaluate", "Evaluation recordings with the CAE")):
        stage_rows = [row for row in rows if row["stage"] == stage]
        if not stage_rows:
            continue
        lines += [f"## {title}", ""]
        for dataset in dict.fromkeys(row["dataset"] for row in stage_rows):
            for sorter in dict.fromkeys(row.get("sorter") for row in stage_rows if row["dataset"] == dataset):
                subset = [row for row in stage_rows if row["dataset"] == dataset and row.get("sorter") == sorter]
                lines += [f"### {dataset}, {sorter}", "",
                          "| configuration | ratio vs int16 | vs 10-bit ADC | kbit/s | spikes/s sent | spike SNDR dB | accuracy raw | accuracy rebuilt | Δ | recall | precision | well detected raw→rebuilt |",
                          "|---|---|---|---|---|---|---|---|---|---|---|---|"]
                for row in subset:
                    std = row.get("accuracy_rebuilt_std")
                    spread = f" ± {std:.3f}" if std and len(row.get("seeds", [])) > 1 else ""
                    lines.append(
                        f"| {row['label']} | {row['compression_ratio_vs_int16']:.1f} | {row['compression_ratio_vs_10bit_adc']:.1f} | "
                        f"{row['kbit_per_s']:.1f} | {_fmt(row.get('detected_spikes_per_s'), 0)} | {_fmt(row.get('sndr_spike_db_mean'), 1)} | "
                        f"{_fmt(row.get('accuracy_raw'))} | {_fmt(row.get('accuracy_rebuilt'))}{spread} | {_fmt(row.get('accuracy_change'))} | "
                        f"{_fmt(row.get('recall_rebuilt'))} | {_fmt(row.get('precision_rebuilt'))} | "
                        f"{_fmt(row.get('well_detected_raw'), 0)} → {_fmt(row.get('well_detected_rebuilt'), 0)} |")
                lines.append("")
    if payload.get("notes"):
        lines += ["## Notes", ""] + [f"- {note}" for note in payload["notes"]] + [""]
    throughput = payload.get("throughput")
    if throughput:
        lines += ["## Encoder throughput, one core, 1024 channels x 20 kHz", "", throughput["note"], "",
                  "| snippet | detection ×RT | detection + background stats (8192 samples/s) ×RT | background stats CPU s per s: all / 8192 / 4096 samples | spikes/s (1024 ch) |", "|---|---|---|---|---|"]
        for label, figures in throughput["front_end"].items():
            by = figures.get("background_stats_s_by_samples", {})
            per_s = " / ".join(f"{by[key] / figures['data_s']:.2f}" for key in ("all", "8192", "4096") if key in by)
            lines.append(f"| {label} | {figures['realtime_factor_detection']:.2f} | {figures['realtime_factor_front_end']:.2f} | "
                         f"{per_s} | {figures['spikes_per_s']:.0f} |")
        lines.append("")
        lines += ["| CAE model | encoder MACs per spike | encode_indices µs per spike | nn.Module forward µs per spike | spikes/s on one core | entropy coding CPU s per s | whole encoder ×RT |",
                  "|---|---|---|---|---|---|---|"]
        combined = throughput.get("combined_realtime_factor", {})
        for name, figures in throughput.get("cae_encoder", {}).items():
            module_us = figures.get("module_forward_s_per_spike")
            lines.append(f"| {name} | {_fmt(figures.get('encoder_macs_per_snippet'), 0)} | {figures['encode_s_per_spike'] * 1e6:.0f} | "
                         f"{_fmt(None if module_us is None else module_us * 1e6, 0)} | "
                         f"{figures['spikes_per_s_one_core']:.0f} | {_fmt(figures.get('entropy_coding_s_per_s_of_data'))} | "
                         f"{_fmt(combined.get(name), 2)} |")
        lines.append("")
    return "\n".join(lines)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=["ablation", "select", "evaluate", "throughput"], required=True)
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--only", type=int, nargs="*", help="ablation rows to run (indices)")
    parser.add_argument("--point", action="append", default=[],
                        help='evaluate / select: LABEL={"threshold": 4.5, ...} codec parameters (repeatable; '
                             'select defaults to the CAE ablation models)')
    parser.add_argument("--datasets", nargs="*", default=None)
    parser.add_argument("--sorter", default="tridesclous2")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0])
    parser.add_argument("--reuse-baseline-raw", action="store_true",
                        help="reuse the raw sortings of benchmarks/results/baselines.json instead of sorting again")
    args = parser.parse_args()
    global REUSE_BASELINE_RAW_SORTS
    REUSE_BASELINE_RAW_SORTS = args.reuse_baseline_raw
    import torch

    torch.set_num_threads(2)
    WORK.mkdir(parents=True, exist_ok=True)
    results = Results(RESULTS / f"{NAME}.json")
    results.payload["command_last"] = " ".join(sys.argv)
    if args.stage == "ablation":
        stage_ablation(results, args.n_jobs, args.only)
    elif args.stage == "select":
        stage_select(results, args.n_jobs, args.sorter, args.seeds, parse_points(args.point))
    elif args.stage == "evaluate":
        points = parse_points(args.point) or [("default", {})]
        stage_evaluate(results, args.n_jobs, points, args.datasets, args.sorter, args.seeds)
    else:
        stage_throughput(results)


if __name__ == "__main__":
    main()
