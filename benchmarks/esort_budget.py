"""E-Sort's fine-tuning budget and label source: accuracy against time (issue 31, items 1 and 2).

Fine-tuning used to run 60 epochs over every window of up to 3000 labelled spikes: with a label
sorter's labels of 20 s of Neuronexus-32 that is ~17 000 optimiser steps (~9 minutes on 2 CPU
cores), ten times more than with 10 ground-truth spikes per unit, for no measured gain. This script
fine-tunes E-Sort with bounded budgets (a number of optimiser steps, a cap on the labelled spikes of
each unit that make windows, a frozen backbone) and with labels from the label sorter run on fewer
seconds, side by side in one run with today's setting, and scores the sorter's gated sort of the
whole recording against ground truth.

``--stage tuning`` (default) runs on the tuning recording only (``nn32_tuning_seed401``: MEArec
Neuronexus-32, templates seed 8, never used to pretrain the backbone or for a reported figure):
``benchmarks/results/esort_budget.{json,md}``. Label sortings (tridesclous2 or spykingcircus2 on
the first 10 or 20 seconds) are cached in ``benchmarks/work/esort_budget/`` with their run time, so
the script resumes; rows already in the results file are kept unless ``--force``.

``--stage heldout`` is the end-to-end comparison on the held-out recordings (MEArec Neuronexus-32
seeds 301-303, templates seed 0; Neuropixels-64 seeds 311-313, templates seed 7; 20 units, 60 s;
never used for these choices): per recording, side by side in one run,

- the ``esort`` sorter with its defaults through ``run_sorter`` (label sorter, fine-tuning and
  sorting: the user's wall time), fine-tuning seeds ``--seeds``;
- spykingcircus2 and tridesclous2 on the whole recording (seed 0; recommended settings);
- today's E-Sort (before issue 31): tridesclous2's labels of the whole 60 s (the run above, so its
  label time is that run's) and 60 epochs over every window, seed 0 only, on one recording per
  probe (``--today-recordings``: its fine-tuning takes minutes).

Writes ``benchmarks/results/esort_e2e.{json,md}``, one row per recording and method, resumable.

``--stage neuropixels`` is the same comparison at Neuropixels scale (issue 31, item 3): a MEArec
Neuropixels-384 recording (30 units, 60 s, templates and seeds 321, simulated into
``benchmarks/work/`` when absent), E-Sort against spykingcircus2, tridesclous2, lupin and kilosort4,
every method's wall time and peak memory: ``benchmarks/results/esort_np384.{json,md}``.

    python benchmarks/esort_budget.py
    python benchmarks/esort_budget.py --variants "600 steps"
    python benchmarks/esort_budget.py --stage heldout
    python benchmarks/esort_budget.py --stage heldout --rerun-methods esort spykingcircus2 tridesclous2
    python benchmarks/esort_budget.py --stage neuropixels
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from common import RESULTS, WORK, PeakMemory, command_line, load_simulated, score, write_results

RECORDINGS = {"nn32_tuning_seed401": WORK / "nn32_tuning_seed401.h5"}
#: held-out recordings (simulated by benchmarks/spike_vq.py's held-out stage into benchmarks/work/)
HELDOUT = ["nn32_seed301", "nn32_seed302", "nn32_seed303", "np64_seed311", "np64_seed312", "np64_seed313"]
HELDOUT_SORTERS = ["spykingcircus2", "tridesclous2"]
#: variant name -> fine_tune_recording keyword arguments ("today": the setting before issue 31)
VARIANTS = {
    "today (60 epochs, every window)": {},
    "150 steps": {"max_steps": 150},
    "300 steps": {"max_steps": 300},
    "600 steps": {"max_steps": 600},
    "1200 steps": {"max_steps": 1200},
    "300 steps, <= 100 spikes per unit": {"max_steps": 300, "max_spikes_per_unit": 100},
    "600 steps, <= 100 spikes per unit": {"max_steps": 600, "max_spikes_per_unit": 100},
    "600 steps, <= 30 spikes per unit": {"max_steps": 600, "max_spikes_per_unit": 30},
    "600 steps, frozen backbone": {"max_steps": 600, "backbone_learning_rate": 0.0},
    "300 steps, learning rate 3e-3": {"max_steps": 300, "learning_rate": 3e-3},
}
#: label sources: name -> (sorter, value): ground truth's first N spikes per unit ("gt"), or a sorter on the first S seconds
LABEL_SOURCES = {
    "ground truth, 10 spikes per unit": ("gt", 10),
    "tridesclous2, first 60 s": ("tridesclous2", 60.0),
    "tridesclous2, first 20 s": ("tridesclous2", 20.0),
    "tridesclous2, first 10 s": ("tridesclous2", 10.0),
    "spykingcircus2, first 60 s": ("spykingcircus2", 60.0),
    "spykingcircus2, first 20 s": ("spykingcircus2", 20.0),
    "spykingcircus2, first 10 s": ("spykingcircus2", 10.0),
}
SLOW_VARIANT = "today (60 epochs, every window)"


def label_sorting(recording, sorter, seconds, folder):
    """``sorter`` (seed 0) on the first ``seconds`` of ``recording``, cached in ``folder``: ``(sorting, time_s)``."""
    import spikeinterface as si

    from spikeinterface_vqcompress.evaluation.sorting import run_seeded_sorter

    folder = Path(folder)
    saved, meta = folder / "sorting", folder / "label_time.json"
    if saved.is_dir() and meta.is_file():
        return si.load(saved), json.loads(meta.read_text())["label_time_s"]
    head = recording.frame_slice(0, int(round(seconds * recording.get_sampling_frequency())))
    sorting, elapsed = run_seeded_sorter(head, sorter, 0, folder / "sorter")
    sorting = sorting.save(folder=saved, overwrite=True)
    meta.write_text(json.dumps({"label_time_s": elapsed}))
    return sorting, elapsed


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=["tuning", "heldout", "neuropixels"], default="tuning")
    parser.add_argument("--recording", default="nn32_tuning_seed401", choices=sorted(RECORDINGS),
                        help="the tuning recording (--stage tuning)")
    parser.add_argument("--recordings", nargs="*", default=None,
                        help="the recordings of --stage heldout (default: the six held-out ones) or neuropixels")
    parser.add_argument("--sorters", nargs="*", default=None,
                        help="the sorters beside esort (--stage heldout: spykingcircus2 tridesclous2; "
                             "--stage neuropixels: also lupin kilosort4)")
    parser.add_argument("--today-recordings", nargs="*", default=["nn32_seed301", "np64_seed311"],
                        help="held-out recordings on which today's E-Sort also runs (minutes each)")
    parser.add_argument("--variants", nargs="*", default=list(VARIANTS), help="a subset of the variants (names)")
    parser.add_argument("--labels", nargs="*", default=list(LABEL_SOURCES), help="a subset of the label sources")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1], help="fine-tuning seeds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--force", action="store_true", help="measure rows already in the results file again")
    parser.add_argument("--rerun-methods", nargs="*", default=None,
                        help="end-to-end stages: measure these methods' rows again (e.g. esort spykingcircus2 "
                             "tridesclous2), keeping the others'")
    parser.add_argument("--work-folder", default=str(WORK / "esort_budget"))
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    for name in args.variants:
        if name not in VARIANTS:
            parser.error(f"unknown variant {name!r}; choose from {list(VARIANTS)}")
    for name in args.labels:
        if name not in LABEL_SOURCES:
            parser.error(f"unknown label source {name!r}; choose from {list(LABEL_SOURCES)}")

    import torch

    import spikeinterface_vqcompress as vq
    from spikeinterface_vqcompress.esort import core
    from spikeinterface_vqcompress.esort.defaults import DEFAULT_GATE_MARGIN_SAMPLES, DEFAULT_GATE_PEAK_SIGN, DEFAULT_GATE_THRESHOLD
    from spikeinterface_vqcompress.groundtruth import load_ground_truth

    torch.set_num_threads(args.threads)
    if args.stage in ("heldout", "neuropixels"):
        return heldout(args, argv)
    path = RECORDINGS[args.recording]
    recording, gt_sorting = load_ground_truth(path)
    results_path = Path(args.output) / "esort_budget.json"
    payload = json.loads(results_path.read_text()) if results_path.is_file() else {"rows": []}
    rows = [row for row in payload["rows"] if not args.force or row["recording"] != args.recording]
    done = {(row["recording"], row["labels"], row["variant"]) for row in rows}
    t_start = time.perf_counter()
    prepared = core.prepare_recording(recording)
    noise = core.noise_levels(prepared, seed=0)
    num_samples = recording.get_num_samples(0)
    label_rows = {row["labels"]: row for row in payload.get("label_rows", []) if row["recording"] == args.recording}
    for label_name in args.labels:
        kind, value = LABEL_SOURCES[label_name]
        if kind == "gt":
            labels = core.labels_from_sorting(gt_sorting, num_samples, num_spikes_per_unit=value)
            label_time_s = 0.0
        else:
            folder = Path(args.work_folder) / args.recording / f"{kind}_{value:g}s"
            sorting, label_time_s = label_sorting(recording, kind, value, folder)
            labels = core.labels_from_sorting(sorting, num_samples, label_duration_samples=int(round(
                value * recording.get_sampling_frequency())), min_spikes_per_unit=5)
            label_rows[label_name] = {"recording": args.recording, "labels": label_name, "label_time_s": label_time_s,
                                      "num_label_units": len(labels.unit_ids),
                                      "num_labelled_spikes": int(sum(labels.info["num_labelled_spikes"])),
                                      "label_sorter_scores": score(gt_sorting.frame_slice(0, labels.end_sample),
                                                                   sorting.frame_slice(0, labels.end_sample))}
            print(f"{label_name}: {len(labels.unit_ids)} units, {label_rows[label_name]['num_labelled_spikes']} spikes, "
                  f"{label_time_s:.0f} s", flush=True)
        for variant in args.variants:
            if (args.recording, label_name, variant) in done:
                continue
            seeds = args.seeds[:1] if variant == SLOW_VARIANT and kind != "gt" else args.seeds
            runs = []
            for seed in seeds:
                model, info = core.fine_tune_recording(prepared, noise, labels, seed=seed, **VARIANTS[variant])
                t0 = time.perf_counter()
                sorting = core.sort_recording(model, prepared, noise, labels.unit_ids, stride=2,
                                              gate_threshold=DEFAULT_GATE_THRESHOLD,
                                              gate_margin_samples=DEFAULT_GATE_MARGIN_SAMPLES,
                                              gate_peak_sign=DEFAULT_GATE_PEAK_SIGN)
                runs.append({"seed": seed, "fine_tune_s": info["fine_tune_time_s"], "sort_s": time.perf_counter() - t0,
                             "num_steps": info["history"]["num_steps"], "num_windows": info["num_training_windows"],
                             **score(gt_sorting, sorting)})
            row = {"recording": args.recording, "labels": label_name, "variant": variant, "kwargs": VARIANTS[variant],
                   "label_time_s": label_time_s, "runs": runs}
            for key in ("accuracy_mean", "num_well_detected", "num_false_positive", "num_sorted_units", "fine_tune_s",
                        "sort_s", "num_steps"):
                row[key] = float(np.mean([run[key] for run in runs]))
            row["accuracy_std"] = float(np.std([run["accuracy_mean"] for run in runs]))
            rows.append(row)
            print(f"{label_name} | {variant}: acc {row['accuracy_mean']:.3f} +/- {row['accuracy_std']:.3f}, "
                  f"{row['num_well_detected']:.1f} well, {row['num_false_positive']:.1f} FP, "
                  f"{row['num_steps']:.0f} steps, fine-tune {row['fine_tune_s']:.1f} s", flush=True)
            payload = {"package_version": vq.__version__, "command": command_line("benchmarks/esort_budget.py", argv),
                       "seeds": args.seeds, "threads": args.threads, "rows": rows,
                       "label_rows": sorted(label_rows.values(), key=lambda r: (r["recording"], r["labels"]))}
            write_results(args.output, "esort_budget", payload, markdown=markdown(payload))
    print(f"wall time {time.perf_counter() - t_start:.0f} s")


#: --stage neuropixels: a 384-channel Neuropixels recording (templates and seeds never used for pretraining
#: or for choosing settings), simulated into benchmarks/work/ when absent
NEUROPIXELS = {"np384_seed321": {"probe": "Neuropixels-384", "num_units": 30, "duration_s": 60.0, "seed": 321,
                                 "num_templates_per_cell": 10}}
NEUROPIXELS_SORTERS = ["spykingcircus2", "tridesclous2", "lupin", "kilosort4"]
#: what the results file of each end-to-end stage says about its recordings
STAGE_NOTES = {
    "heldout": "MEArec Neuronexus-32 (seeds 301-303, templates seed 0) and Neuropixels-64 (seeds 311-313, templates "
               "seed 7), 20 units, 60 s, never used to choose E-Sort's settings.",
    "neuropixels": "MEArec Neuropixels-384 (384 channels, recording and templates seed 321, 10 templates per cell, "
                   "30 units: 40 could not be placed 25 um apart from the library, 60 s, 32 kHz), never used to pretrain E-Sort's backbone or to choose its settings. "
                   "kilosort4 with its defaults and the recommended `dminx` (CPU torch).",
}


def _scored(row, gt_sorting, sorting):
    """``row`` with the accuracy and unit counts of ``sorting`` against the ground truth."""
    scores = score(gt_sorting, sorting)
    row.update({key: scores[key] for key in ("accuracy_mean", "num_well_detected", "num_false_positive", "num_sorted_units")})
    return row


def _end_to_end_recording(stage, name):
    """``(recording, gt_sorting)`` of a recording of an end-to-end stage."""
    from spikeinterface_vqcompress.groundtruth import load_ground_truth

    if stage == "neuropixels":
        return load_simulated(WORK / f"{name}.h5", NEUROPIXELS[name])
    return load_ground_truth(WORK / f"{name}.h5")


def heldout(args, argv):
    """End to end, side by side: the esort sorter, the other sorters, today's E-Sort (``--stage heldout``
    on the held-out recordings, ``--stage neuropixels`` on the 384-channel one); every row with its wall
    time and the peak memory of the process and its children."""
    import spikeinterface.sorters as ss

    import spikeinterface_vqcompress as vq
    from spikeinterface_vqcompress.esort import core
    from spikeinterface_vqcompress.esort.defaults import DEFAULT_GATE_MARGIN_SAMPLES, DEFAULT_GATE_PEAK_SIGN, DEFAULT_GATE_THRESHOLD
    from spikeinterface_vqcompress.evaluation.sorting import run_seeded_sorter

    neuropixels = args.stage == "neuropixels"
    stem = "esort_np384" if neuropixels else "esort_e2e"
    recordings = args.recordings or (list(NEUROPIXELS) if neuropixels else HELDOUT)
    sorters = args.sorters or (NEUROPIXELS_SORTERS if neuropixels else HELDOUT_SORTERS)
    today_recordings = [] if neuropixels else args.today_recordings
    results_path = Path(args.output) / f"{stem}.json"
    payload = json.loads(results_path.read_text()) if results_path.is_file() and not args.force else {"rows": []}
    rows = [row for row in payload["rows"]
            if row["method"] not in (args.rerun_methods or ()) or row["recording"] not in recordings]
    done = {(row["recording"], row["method"], row["seed"]) for row in rows}
    defaults = ss.get_default_sorter_params("esort")

    def save():
        out = {"package_version": vq.__version__, "command": command_line("benchmarks/esort_budget.py", argv),
               "stage": args.stage, "note": STAGE_NOTES[args.stage], "threads": args.threads,
               "esort_defaults": {k: defaults[k] for k in (
                   "label_sorter", "label_duration_s", "epochs", "max_steps", "max_spikes_per_unit")}, "rows": rows}
        write_results(args.output, stem, out, markdown=e2e_markdown(out))

    def measured(row, run):
        """``row`` with ``run()``'s sorting scored, its wall time and peak memory."""
        with PeakMemory() as memory:
            t0 = time.perf_counter()
            sorting = run()
            row["total_s"] = time.perf_counter() - t0
        row["peak_memory_MB"] = memory.peak_MB
        return sorting

    # warm-up (not timed): the first run of a sorter in a process compiles its numba kernels
    recording, _ = _end_to_end_recording(args.stage, recordings[0])
    head = recording.frame_slice(0, int(5 * recording.get_sampling_frequency()))
    for sorter in sorters:
        if sorter != "kilosort4":  # no numba; its first run compiles nothing
            run_seeded_sorter(head, sorter, 0, Path(args.work_folder) / "warmup" / sorter)
    ss.run_sorter("esort", head, folder=str(Path(args.work_folder) / "warmup" / "esort"), remove_existing_folder=True,
                  verbose=False, num_threads=args.threads)
    for name in recordings:
        recording, gt_sorting = _end_to_end_recording(args.stage, name)
        info_row = {"recording": name, "num_channels": recording.get_num_channels(),
                    "duration_s": recording.get_total_duration(), "num_units": len(gt_sorting.unit_ids)}
        work = Path(args.work_folder) / name
        sortings = {}
        today = name in today_recordings and (name, "today's E-Sort", 0) not in done
        for sorter in sorters:
            if (name, sorter, 0) in done and not (sorter == "tridesclous2" and today):
                continue
            row = {**info_row, "method": sorter, "seed": 0}
            sorting = measured(row, lambda: run_seeded_sorter(recording, sorter, 0, work / sorter)[0])
            sortings[sorter] = (sorting, row["total_s"])
            if (name, sorter, 0) not in done:
                rows.append(_scored(row, gt_sorting, sorting))
                print(f"{name} {sorter}: acc {row['accuracy_mean']:.3f} in {row['total_s']:.0f} s, "
                      f"{row['peak_memory_MB']:.0f} MB", flush=True)
                save()
        for seed in args.seeds:
            if (name, "esort", seed) in done:
                continue
            folder = work / f"esort_seed{seed}"
            row = {**info_row, "method": "esort", "seed": seed}
            sorting = measured(row, lambda: ss.run_sorter("esort", recording, folder=str(folder), remove_existing_folder=True,
                                                          verbose=False, seed=seed, num_threads=args.threads))
            info = json.loads((folder / "sorter_output" / "esort_info.json").read_text())
            row.update({"label_s": info["label_time_s"], "fine_tune_s": info["fine_tune_time_s"],
                        "sort_s": info["sort_time_s"], "num_label_units": len(info["labels"]["unit_ids"])})
            rows.append(_scored(row, gt_sorting, sorting))
            print(f"{name} esort seed {seed}: acc {row['accuracy_mean']:.3f} in {row['total_s']:.0f} s "
                  f"(sort {row['sort_s']:.1f} s), {row['peak_memory_MB']:.0f} MB", flush=True)
            save()
        if today:
            label_sorting, label_s = sortings["tridesclous2"]
            t0 = time.perf_counter()
            prepared = core.prepare_recording(recording)
            noise = core.noise_levels(prepared, seed=0)
            labels = core.labels_from_sorting(label_sorting, recording.get_num_samples(0), min_spikes_per_unit=5)
            model, info = core.fine_tune_recording(prepared, noise, labels, seed=0, max_steps=None, max_spikes_per_unit=None)
            t1 = time.perf_counter()
            sorting = core.sort_recording(model, prepared, noise, labels.unit_ids, stride=2,
                                          gate_threshold=DEFAULT_GATE_THRESHOLD, gate_margin_samples=DEFAULT_GATE_MARGIN_SAMPLES,
                                          gate_peak_sign=DEFAULT_GATE_PEAK_SIGN)
            rows.append(_scored({**info_row, "method": "today's E-Sort", "seed": 0,
                                 "total_s": label_s + time.perf_counter() - t0, "label_s": label_s,
                                 "fine_tune_s": info["fine_tune_time_s"], "sort_s": time.perf_counter() - t1,
                                 "num_label_units": len(labels.unit_ids)}, gt_sorting, sorting))
            print(f"{name} today's E-Sort: acc {rows[-1]['accuracy_mean']:.3f} in {rows[-1]['total_s']:.0f} s", flush=True)
            save()


def e2e_markdown(payload) -> str:
    rows = payload["rows"]
    methods = list(dict.fromkeys(["esort", "spykingcircus2", "tridesclous2", *(row["method"] for row in rows)]))
    memory = any("peak_memory_MB" in row for row in rows)
    d = payload["esort_defaults"]
    lines = ["# E-Sort end to end vs the sorters (" + ("384-channel Neuropixels" if payload.get("stage") == "neuropixels"
                                                       else "held-out recordings") + ")", "",
             payload.get("note", STAGE_NOTES["heldout"]) + " `esort`: `run_sorter('esort')` with its "
             f"defaults (labels: {d['label_sorter']} on the first {d['label_duration_s']:g} s; fine-tuning: at most "
             f"{d['max_steps']} steps, " + ("every labelled spike makes windows" if d['max_spikes_per_unit'] is None else
                                 f"at most {d['max_spikes_per_unit']} labelled spikes per unit make windows") + "), "
             "wall time of the whole call, fine-tuning seeds as listed; `sort s` is its inference alone (band-pass, "
             "network, peaks), `x RT` the recording's duration over it. The other sorters: seed 0, the whole "
             "recording, recommended settings. Today's E-Sort (before issue 31): tridesclous2's labels of the whole "
             "recording (its time counted), 60 epochs over every window, seed 0. "
             + ("Peak memory: resident set of the process and its children, sampled every 50 ms. " if memory else "")
             + f"Torch on {payload['threads']} threads, 2 CPU cores. Command: `{payload['command']}`.", "",
             "| recording | method | seeds | accuracy | well detected | sorted units | false-positive units | total s "
             "| labels s | fine-tune s | sort s | x RT | vs spykingcircus2 time |" + (" peak memory MB |" if memory else ""),
             "|---|---|---|---|---|---|---|---|---|---|---|---|---|" + ("---|" if memory else "")]
    recordings = list(dict.fromkeys(row["recording"] for row in rows))
    for name in recordings:
        sc2 = [row["total_s"] for row in rows if row["recording"] == name and row["method"] == "spykingcircus2"]
        for method in methods:
            selected = [row for row in rows if row["recording"] == name and row["method"] == method]
            if not selected:
                continue
            mean = lambda k: np.mean([row[k] for row in selected])  # noqa: E731
            cell = lambda k, fmt: format(mean(k), fmt) if k in selected[0] else ""  # noqa: E731
            accuracy = [row["accuracy_mean"] for row in selected]
            ratio = f"{mean('total_s') / np.mean(sc2):.2f}x" if sc2 else ""
            duration = selected[0].get("duration_s", 60.0)
            realtime = f"{duration / mean('sort_s'):.1f}" if "sort_s" in selected[0] else ""
            lines.append(f"| {name} | {method} | {','.join(str(row['seed']) for row in selected)} | "
                         f"{np.mean(accuracy):.3f} +/- {np.std(accuracy):.3f} | {mean('num_well_detected'):.1f} | "
                         f"{mean('num_sorted_units'):.1f} | {mean('num_false_positive'):.1f} | {mean('total_s'):.0f} | "
                         f"{cell('label_s', '.0f')} | {cell('fine_tune_s', '.1f')} | {cell('sort_s', '.1f')} | {realtime} | "
                         f"{ratio} |" + (f" {cell('peak_memory_MB', '.0f')} |" if memory else ""))
    probes = list(dict.fromkeys(name.split("_")[0] for name in recordings))
    per_probe = len(recordings) > len(probes)  # a probe with several recordings
    if per_probe:
        lines += ["", "Per probe (mean over its recordings of each recording's mean; the time ratio is of the mean times):", "",
                  "| probe | method | accuracy | well detected | false-positive units | total s | vs spykingcircus2 time |",
                  "|---|---|---|---|---|---|---|"]
    for probe in probes if per_probe else []:
        names = [name for name in recordings if name.startswith(probe)]
        per = {}
        for method in methods:
            selected = {name: [row for row in rows if row["recording"] == name and row["method"] == method]
                        for name in names}
            selected = {name: rows_ for name, rows_ in selected.items() if rows_}
            if selected:
                per[method] = {k: float(np.mean([np.mean([row[k] for row in rows_]) for rows_ in selected.values()]))
                               for k in ("accuracy_mean", "num_well_detected", "num_false_positive", "total_s")}
                per[method]["names"] = sorted(selected)
        for method, values in per.items():
            sc2 = per.get("spykingcircus2")
            ratio = ""
            if sc2 and values["names"] == sc2["names"]:
                ratio = f"{values['total_s'] / sc2['total_s']:.2f}x"
            lines.append(f"| {probe} ({len(values['names'])} recording{'s' if len(values['names']) > 1 else ''}) | {method} | {values['accuracy_mean']:.3f} | "
                         f"{values['num_well_detected']:.1f} | {values['num_false_positive']:.1f} | {values['total_s']:.0f} | "
                         f"{ratio} |")
    return "\n".join(lines) + "\n"


def markdown(payload) -> str:
    lines = ["# E-Sort fine-tuning budget and label source (tuning recording, never reported)", "",
             "MEArec Neuronexus-32 `nn32_tuning_seed401` (20 units, 60 s, templates seed 8: off the backbone's "
             "pretraining). Fine-tuned with each budget, sorted with the sorter's defaults (gate 4 noise units, "
             "stride 2) and scored against ground truth over the whole recording; mean +/- std over fine-tuning "
             f"seeds {payload['seeds']} (today's setting on sorter labels: seed {payload['seeds'][0]} only, it takes "
             f"minutes). Torch on {payload['threads']} threads. Command: `{payload['command']}`.", "",
             "Label sources (the label sorter scored on its own labelled period; label times are one run each, the "
             "first run of each sorter in the process includes compiling its numba kernels, so "
             "`benchmarks/results/esort_e2e.md` times warm runs instead):", "",
             "| labels | units | labelled spikes | label sorter accuracy | label time s |", "|---|---|---|---|---|"]
    for row in payload["label_rows"]:
        lines.append(f"| {row['labels']} | {row['num_label_units']} | {row['num_labelled_spikes']} | "
                     f"{row['label_sorter_scores']['accuracy_mean']:.3f} | {row['label_time_s']:.0f} |")
    lines += ["", "| labels | fine-tuning | accuracy | well detected | false-positive units | steps | fine-tune s | sort s |",
              "|---|---|---|---|---|---|---|---|"]
    for row in payload["rows"]:
        lines.append(f"| {row['labels']} | {row['variant']} | {row['accuracy_mean']:.3f} +/- {row['accuracy_std']:.3f} | "
                     f"{row['num_well_detected']:.1f} | {row['num_false_positive']:.1f} | {row['num_steps']:.0f} | "
                     f"{row['fine_tune_s']:.1f} | {row['sort_s']:.1f} |")
    return "\n".join(lines) + "\n"


if __name__ == "__main__":
    main()
