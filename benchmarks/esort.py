"""Benchmark of E-Sort against SpikeInterface sorters on held-out MEArec recordings (issue 6).

Recordings (never used for pretraining nor for choosing settings): the baselines' MEArec files,
``benchmarks/work/mearec_neuronexus32.h5`` (seed 101, 20 units, 30 s) and
``mearec_neuropixels64.h5`` (seed 102, 20 units, 30 s), simulated by ``benchmarks/baselines.py`` when
absent, ``mearec_neuropixels128.h5`` (seed 104, 20 units, 30 s, simulated here when absent), and the
study's drifting recording ``mearec_neuronexus32_drift.h5`` (seed 103, 8 units, 20 s,
rigid drift at 30 um/min; simulated here when absent). For each recording, in one run on the same CPU:

- tridesclous2, spykingcircus2, lupin, kilosort4 on the CPU (seed 0 where the sorter takes one,
  default parameters; kilosort4 with ``recommended_sorter_params``' probe geometry; it needs ``pip install kilosort``, GPL, used here only as a comparison
  and skipped when absent): accuracy, precision, recall,
  well-detected units (accuracy >= 0.8), wall time of ``run_sorter``;
- E-Sort fine-tuned on the first N ground-truth spikes of each unit (N = 3, 5, 9, 10, 15), with the
  shipped pretrained backbone ("transfer") and from random weights ("scratch"); fine-tuning time and
  sorting time (network + post-processing over the whole recording, band-pass included: the
  sorter's default FFT band-pass) apart;
  scored on the whole recording and on the part after the labelled period ("rest");
- E-Sort (transfer, N = 15) on the recording rebuilt from WavPack hybrid bps 2.25 bytes (our codecs:
  ``benchmarks/esort_codecs.py``);
- E-Sort with labels from tridesclous2 (its spikes in the first 10 s), the real-data mode.

Writes ``benchmarks/results/esort.json`` and ``esort.md`` after every row. Run::

    python benchmarks/esort.py                  # everything
    python benchmarks/esort.py --skip-sorters   # E-Sort rows only
    python benchmarks/esort.py --only mearec_neuronexus32 --sorters kilosort4 --add
                                                # add rows of one sorter to the saved ones
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from common import ESORT_RECORDINGS as RECORDINGS
from common import ESORT_STRIDE as STRIDE
from common import RESULTS, WORK, esort_row, sorter_row, write_results
from common import load_esort_recording as load_recording

SORTERS = ["tridesclous2", "spykingcircus2", "lupin", "kilosort4"]
SPIKES_PER_UNIT = [3, 5, 9, 10, 15]  # 9 = 40% fewer than 15 (and 3 than 5): the label-saving target
LABEL_SORTER_SECONDS = 10.0


def _accuracy(scores) -> str:
    text = f"{scores['accuracy_mean']:.3f}"
    if len(scores.get("accuracy_per_seed", [])) > 1:
        text += f" ± {scores['accuracy_std']:.3f}"
    return text


def _gate_sign(gated) -> str:
    """" (both)" for rows gated on |x| (the default before 'neg'), else nothing."""
    return " (both)" if gated.get("gate_peak_sign") == "both" else ""


def markdown(payload) -> str:
    rows = payload["rows"]
    lines = ["# E-Sort vs SpikeInterface sorters (held-out MEArec recordings)", "",
             payload["note"], "",
             "| recording | method | N/unit | accuracy (whole) | precision | recall | well-detected | accuracy (rest) "
             "| fine-tune s | sort s | gated: accuracy (whole) | gated: sort s |", "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        whole = row["whole"]
        rest = row.get("rest")
        gated = row.get("gated")
        lines.append(
            f"| {row['dataset']} | {row['method']} | {row.get('num_spikes_per_unit') or ''} | "
            f"{_accuracy(whole)} | {whole['precision_mean']:.3f} | {whole['recall_mean']:.3f} | "
            f"{whole['num_well_detected']:.3g}/{whole['num_gt_units']:g} | "
            f"{'' if rest is None else format(rest['accuracy_mean'], '.3f')} | "
            f"{'' if row.get('fine_tune_s') is None else format(row['fine_tune_s'], '.1f')} | {row['sort_s']:.1f} | "
            f"{'' if gated is None else _accuracy(gated['whole']) + _gate_sign(gated)} | "
            f"{'' if gated is None else format(gated['sort_s'], '.1f')} |")
    runs = {}
    for row in rows:
        run = row.get("run", {})
        text = f"`{run.get('command', payload['command'])}`" + (f" ({run['date']})" if run.get("date") else "")
        if "--add" in text:
            text += f" ({row['method']} rows)"
        runs.setdefault(row["dataset"], dict.fromkeys([]))[text] = None
    lines += ["", "Runs that made each recording's rows (rows added by `--add` are another run: compare their "
              "accuracy only, not their times): " + "; ".join(f"{name}: {' + '.join(texts)}" for name, texts in runs.items())]
    summary = payload.get("summary")
    if summary:
        lines += ["", "## Targets", ""]
        for item in summary:
            lines.append(f"- {item}")
    return "\n".join(lines) + "\n"


def summarize(rows):
    out = []
    for dataset in dict.fromkeys(row["dataset"] for row in rows):
        subset = [row for row in rows if row["dataset"] == dataset]
        sorters = [row for row in subset if row["method"] in SORTERS]
        transfer = {row["num_spikes_per_unit"]: row for row in subset if row["method"] == "esort-transfer"}
        scratch = {row["num_spikes_per_unit"]: row for row in subset if row["method"] == "esort-scratch"}
        if sorters and transfer:
            best = max(sorters, key=lambda row: row["whole"]["accuracy_mean"])
            for label, get in (("", lambda row: row["whole"]), ("gated ", lambda row: row.get("gated", {}).get("whole"))):
                scored = [row for row in transfer.values() if get(row) is not None]
                if not scored:
                    continue
                esort_best = max(scored, key=lambda row: get(row)["accuracy_mean"])
                gap = best["whole"]["accuracy_mean"] - get(esort_best)["accuracy_mean"]
                out.append(f"{dataset}: best SI sorter {best['method']} {best['whole']['accuracy_mean']:.3f}; {label}E-Sort "
                           f"(transfer, N={esort_best['num_spikes_per_unit']}) {get(esort_best)['accuracy_mean']:.3f}: "
                           f"gap {gap:+.3f} (target <= 0.02: {'met' if gap <= 0.02 else 'MISSED'})")
        circus = [row for row in sorters if row["method"] == "spykingcircus2"]
        if circus and transfer:
            for label, key in (("", lambda row: row["sort_s"]), ("gated ", lambda row: row.get("gated", {}).get("sort_s"))):
                times = [key(row) for row in transfer.values() if key(row) is not None]
                if not times:
                    continue
                sort_s = float(np.mean(times))
                speedup = circus[0]["sort_s"] / sort_s
                out.append(f"{dataset}: {label}E-Sort sorting stage {sort_s:.1f} s vs spykingcircus2 {circus[0]['sort_s']:.1f} s: "
                           f"{speedup:.1f}x (target >= 10x: {'met' if speedup >= 10 else 'MISSED'})")
        if transfer and scratch:
            best_scratch = max(row["whole"]["accuracy_mean"] for row in scratch.values())
            n_scratch = min(n for n, row in scratch.items() if row["whole"]["accuracy_mean"] >= best_scratch - 1e-9)
            reaching = [n for n, row in transfer.items() if row["whole"]["accuracy_mean"] >= best_scratch]
            if reaching:
                n_transfer = min(reaching)
                saving = 1 - n_transfer / n_scratch
                out.append(f"{dataset}: from scratch best accuracy {best_scratch:.3f} needs N={n_scratch}; transfer reaches "
                           f"it with N={n_transfer} ({100 * saving:.0f}% fewer labels; target >= 40%: "
                           f"{'met' if saving >= 0.4 else 'MISSED'})")
            else:
                out.append(f"{dataset}: transfer never reaches the from-scratch best {best_scratch:.3f} "
                           "(target MISSED)")
            pairs = []
            for n_s in sorted(scratch):
                accuracy = scratch[n_s]["whole"]["accuracy_mean"]
                reached = [n for n, row in transfer.items() if row["whole"]["accuracy_mean"] >= accuracy]
                pairs.append(f"scratch N={n_s} ({accuracy:.3f}) <- transfer "
                             + (f"N={min(reached)}" if reached else "never"))
            out.append(f"{dataset}: fewest labels with which transfer reaches each scratch row: " + "; ".join(pairs))
    return out


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--work-folder", default=str(WORK))
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--skip-sorters", action="store_true")
    parser.add_argument("--only", nargs="*", default=None, help="recording names to run")
    parser.add_argument("--sorters", nargs="*", default=SORTERS)
    parser.add_argument("--spikes-per-unit", nargs="*", type=int, default=SPIKES_PER_UNIT)
    parser.add_argument("--no-compressed", action="store_true", help="skip the WavPack-rebuilt row")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2],
                        help="fine-tuning seeds of the transfer / scratch rows (scores: mean and std over them)")
    parser.add_argument("--add", action="store_true",
                        help="with --only: keep the saved rows of those recordings and add (or replace) rows of --sorters only "
                             "(no E-Sort rows)")
    parser.add_argument("--label-cap", type=int, default=15,
                        help="labels from tridesclous2: at most this many spikes per unit (the sorter's num_spikes_per_unit)")
    args = parser.parse_args()
    if args.add and not args.only:
        parser.error("--add needs --only (the recordings whose saved rows get the added sorter rows)")
    import spikeinterface.sorters as ss
    import torch

    import spikeinterface_vqcompress as vq
    from spikeinterface_vqcompress.esort import core
    torch.set_num_threads(args.threads)
    work = Path(args.work_folder)
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    rows = []
    run = {"command": " ".join(sys.argv), "date": time.strftime("%Y-%m-%d %H:%M")}
    previous = output / "esort.json"
    if args.only and previous.is_file():
        # recordings not run now keep their rows from the run that made them (each row names its run;
        # every comparison in the summary is between rows of one recording, hence of one run)
        earlier = json.loads(previous.read_text())
        for row in earlier["rows"]:
            added_again = args.add and row["dataset"] in args.only and row["method"] in args.sorters
            if (args.add and not added_again) or row["dataset"] not in args.only:
                row.setdefault("run", {"command": earlier["command"]})
                if "gated" in row:  # rows made before the gate had a peak sign opened on |x| ("both")
                    row["gated"].setdefault("gate_peak_sign", "both")
                rows.append(row)
    payload = {"package_version": vq.__version__, "command": run["command"],
               "machine": "2-core CPU (shared machine: absolute times are noisy; ratios between rows of one run are "
                          "the fair comparison)",
               "esort_stride": STRIDE, "rows": rows,
               "note": (f"E-Sort rows: fine-tuned on the first N ground-truth spikes of each unit, once per "
                        f"fine-tuning seed {args.seeds} (transfer / scratch rows; the others seed 0): scores and times "
                        "are means over the seeds, accuracy as mean ± std; 'rest' scores only "
                        f"the part after the labelled period. Sort time: band-pass (zero-phase Butterworth, the "
                        f"esort sorter's default filter_method: by FFT until issue 31's speed work, a numba IIR kernel since) + network (windows every {STRIDE} "
                        "samples) + smoothing/peak picking over the whole recording, after fine-tuning. 'gated': the same "
                        "fine-tuned network sorted again with the esort sorter's amplitude gate (4 noise units, "
                        "benchmarks/esort_gate.py): the network runs only near samples below -4 noise units "
                        "(gate_peak_sign 'neg', the default now) or, where the gated column says 'both', near "
                        "samples beyond +/-4 (the default before). SI sorters: "
                        "run_sorter wall time, seed 0, default parameters except kilosort4's probe geometry (recommended_sorter_params: "
                        "dminx from the contact spacing, nblocks=0 at <= 64 channels; rows before issue 30 item 11 "
                        "ran its defaults). Well-detected: accuracy >= 0.8.")}

    def save():
        for row in rows:
            row.setdefault("run", run)
        payload["wall_time_s"] = time.perf_counter() - t_start
        payload["summary"] = summarize(rows)
        write_results(output, "esort", payload, lambda: markdown(payload) + f"\nWall time: {payload['wall_time_s']:.0f} s. "
                      f"Command: `{payload['command']}`\n")

    for spec in RECORDINGS:
        if args.only and spec["name"] not in args.only:
            continue
        recording, gt_sorting = load_recording(spec, work)
        num_samples = recording.get_num_samples(0)
        if args.add:
            for sorter in args.sorters:
                rows.append(sorter_row(ss, sorter, recording, gt_sorting, spec["name"], work)[0])
                save()
            continue
        for n in args.spikes_per_unit:
            labels = core.labels_from_sorting(gt_sorting, num_samples, num_spikes_per_unit=n)
            for pretrained, tag in (("esort_backbone", "esort-transfer"), (None, "esort-scratch")):
                rows.append(esort_row(recording, gt_sorting, labels, pretrained, spec["name"], tag, args.threads,
                                      seeds=args.seeds))
                save()
        tdc2_sorting = None
        if not args.skip_sorters:
            for sorter in args.sorters:
                if sorter not in ss.installed_sorters():
                    print(f"{sorter} is not installed: skipped", flush=True)
                    continue
                row, sorting = sorter_row(ss, sorter, recording, gt_sorting, spec["name"], work)
                if sorter == "tridesclous2":
                    tdc2_sorting = sorting
                rows.append(row)
                save()
        # on a recording rebuilt from WavPack hybrid bytes
        compressed = None if args.no_compressed else vq.compress(recording, codec="wavpack", bps=2.25, progress_bar=False)
        if compressed is not None:
            n = max(args.spikes_per_unit)
            labels = core.labels_from_sorting(gt_sorting, num_samples, num_spikes_per_unit=n)
            row = esort_row(compressed, gt_sorting, labels, "esort_backbone", spec["name"],
                            f"esort-transfer on wavpack bps 2.25 ({compressed.compression_ratio:.2f}x)", args.threads)
            row["compression_ratio"] = compressed.compression_ratio
            rows.append(row)
            save()
        # real-data mode: labels from tridesclous2's spikes in the first seconds
        if tdc2_sorting is not None:
            label_samples = int(LABEL_SORTER_SECONDS * recording.get_sampling_frequency())
            labels = core.labels_from_sorting(tdc2_sorting, num_samples, label_duration_samples=label_samples,
                                              num_spikes_per_unit=args.label_cap, min_spikes_per_unit=5)
            row = esort_row(recording, gt_sorting, labels, "esort_backbone", spec["name"],
                            f"esort-transfer, labels = tridesclous2's first {args.label_cap} spikes per unit in the first "
                            f"{LABEL_SORTER_SECONDS:.0f} s",
                            args.threads)
            row["note"] = ("tridesclous2 was run on the whole recording (the row above) and only its spikes in the "
                           "first seconds were used, instead of a separate run on the first seconds only")
            rows.append(row)
            save()
    save()
    print(markdown(payload))


if __name__ == "__main__":
    main()
