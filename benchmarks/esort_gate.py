"""Choosing E-Sort's amplitude gate on training recordings (never on the recordings reported).

The sorting stage runs the network on every window (every ``stride`` samples). The amplitude gate
runs it only on windows centred near a sample where some channel's normalised trace crosses
``gate_threshold`` noise units (``detect_spikes(..., gate_threshold=..., gate_peak_sign=...)``):
below ``-gate_threshold`` ("neg"), or in absolute value ("both"). This script fine-tunes E-Sort once
per recording (shipped backbone, first N ground-truth spikes per unit) on MEArec recordings from the
backbone's training seeds (Neuronexus-32 seed 201, Neuropixels-64 seed 202) and sorts each with no
gate and with each gate setting, side by side in one run: accuracy, the share of windows the network
still sees, the share of them centred away from every ground-truth spike (opened by noise), and the
sort time.

Writes ``benchmarks/results/esort_gate.json`` and ``esort_gate.md``. Run::

    python benchmarks/esort_gate.py [--recordings NAME ...]
"""

from __future__ import annotations

import argparse
import sys
import time

from common import RESULTS, SPIKE_CAE_WORK, WORK, command_line, load_simulated, write_results

#: training recordings (the backbone's template and recording seeds; simulated when absent)
RECORDINGS = {
    "train_nn32_s201": {"path": SPIKE_CAE_WORK / "train_nn32_s201_u20_60s.h5",
                        "probe": "Neuronexus-32", "num_units": 20, "duration_s": 60.0, "seed": 201},
    "train_np64_s202": {"path": WORK / "train_np64_s202_u20_30s.h5",
                        "probe": "Neuropixels-64", "num_units": 20, "duration_s": 30.0, "seed": 202,
                        "num_templates_per_cell": 10},
}
GATES = [None, 3.0, 4.0, 5.0, 6.0]
MARGINS = [13, 8]
PEAK_SIGNS = ["both", "neg"]
#: a window run by the gate is "away from spikes" when its centre is farther than this from every
#: ground-truth spike (half the 60-sample window: the network cannot see that spike's trough)
AWAY_SAMPLES = 30


def gate_rows(recording, gt_sorting, name, spikes_per_unit, repeats, stride=2):
    """Fine-tune once, then sort in-memory band-passed traces with no gate and each gate setting."""
    import numpy as np
    import torch
    from spikeinterface.core import NumpyRecording

    from spikeinterface_vqcompress.esort import core
    from spikeinterface_vqcompress.esort.postprocessing import candidate_rows
    from spikeinterface_vqcompress.evaluation import score_sorting

    prepared = core.prepare_recording(recording)
    noise = core.noise_levels(prepared)
    labels = core.labels_from_sorting(gt_sorting, recording.get_num_samples(0), num_spikes_per_unit=spikes_per_unit)
    model, info = core.fine_tune_recording(prepared, noise, labels, seed=0)
    # the band-passed traces once in memory, so the times below are the network and post-processing only
    traces = prepared.get_traces(return_in_uV=False)
    in_memory = NumpyRecording([traces], recording.get_sampling_frequency())
    whole = torch.from_numpy(traces / noise[None, :])
    total_rows = (len(whole) - model.window_num_samples) // stride + 1
    spikes = np.sort(np.concatenate([gt_sorting.get_unit_spike_train(u) for u in gt_sorting.unit_ids]))
    rows = []
    settings = [(None, None, None)] + [(gate, margin, sign) for sign in PEAK_SIGNS for gate in GATES if gate is not None
                                       for margin in MARGINS]
    for gate, margin, sign in settings:
        times, sorting = [], None
        for _ in range(repeats):
            t0 = time.perf_counter()
            sorting = core.sort_recording(model, in_memory, noise, labels.unit_ids, stride=stride, device="cpu",
                                          gate_threshold=gate, gate_margin_samples=margin or 0,
                                          gate_peak_sign=sign or "both")
            times.append(time.perf_counter() - t0)
        if gate is None:
            run = torch.arange(total_rows)
        else:
            run = candidate_rows(whole, model.window_num_samples, stride, gate, margin, sign)
        centres = run.numpy() * stride + model.window_num_samples // 2
        nearest = np.clip(np.searchsorted(spikes, centres), 1, len(spikes) - 1)
        distance = np.minimum(np.abs(centres - spikes[nearest - 1]), np.abs(spikes[nearest] - centres))
        scores = score_sorting(gt_sorting, sorting)
        rows.append({"recording": name, "gate_threshold": gate, "gate_margin_samples": margin, "gate_peak_sign": sign,
                     "windows_share": len(run) / total_rows,
                     "windows_away_share": float(np.sum(distance > AWAY_SAMPLES)) / total_rows,
                     "sort_s_median": float(np.median(times)), "sort_s": times,
                     "accuracy_mean": scores["accuracy_mean"], "precision_mean": scores["precision_mean"],
                     "recall_mean": scores["recall_mean"], "num_well_detected": scores["num_well_detected"]})
        print(rows[-1], flush=True)
    meta = {"recording": name, "num_channels": recording.get_num_channels(), "duration_s": recording.get_total_duration(),
            "fine_tune_s": info["fine_tune_time_s"]}
    return rows, meta


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recordings", nargs="*", default=list(RECORDINGS), choices=list(RECORDINGS),
                        help="training recordings to run (simulated when absent)")
    parser.add_argument("--spikes-per-unit", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="sort passes per setting (the time is their median)")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)

    import torch

    import spikeinterface_vqcompress as vq

    torch.set_num_threads(args.threads)
    rows, recordings = [], []
    for name in args.recordings:
        spec = RECORDINGS[name]
        recording, gt_sorting = load_simulated(spec["path"], spec)
        new_rows, meta = gate_rows(recording, gt_sorting, name, args.spikes_per_unit, args.repeats)
        rows += new_rows
        recordings.append({**meta, "file": spec["path"].name, "probe": spec["probe"], "seed": spec["seed"]})
    payload = {"package_version": vq.__version__, "command": command_line("benchmarks/esort_gate.py", argv),
               "recordings": recordings, "spikes_per_unit": args.spikes_per_unit, "stride": 2,
               "threads": args.threads, "away_samples": AWAY_SAMPLES, "rows": rows}
    output = write_results(args.output, "esort_gate", payload).parent
    described = "; ".join(f"`{r['file']}` ({r['probe']}, {r['num_channels']} channels, seed {r['seed']}, "
                          f"{r['duration_s']:.0f} s)" for r in recordings)
    lines = ["# E-Sort amplitude gate, chosen on training recordings", "",
             f"Recordings (backbone training seeds, not reported elsewhere): {described}. Each fine-tuned once on the "
             f"first {args.spikes_per_unit} ground-truth spikes per unit; sort = network + smoothing + peak picking on "
             f"in-memory band-passed traces, stride 2, {args.threads} threads, median of {args.repeats} passes. "
             "Peak sign: which crossings open the gate ('both': |x| > gate, 'neg': x < -gate). Away from spikes: "
             f"windows run whose centre is > {AWAY_SAMPLES} samples from every ground-truth spike (opened by noise). "
             "Speed-up: ungated sort time / gated sort time, same recording, same run.", "",
             "| recording | gate (noise units) | peak sign | margin (samples) | windows run | away from spikes | accuracy | "
             "precision | recall | well-detected | sort s | speed-up |",
             "|---|---|---|---|---|---|---|---|---|---|---|---|"]
    ungated = {}
    for row in rows:
        ungated.setdefault(row["recording"], row["sort_s_median"])
        gate = row["gate_threshold"]
        lines.append(f"| {row['recording']} | {gate if gate is not None else 'none'} | {row['gate_peak_sign'] or '-'} | "
                     f"{row['gate_margin_samples'] if row['gate_margin_samples'] is not None else '-'} | "
                     f"{100 * row['windows_share']:.1f}% | {100 * row['windows_away_share']:.1f}% | "
                     f"{row['accuracy_mean']:.3f} | {row['precision_mean']:.3f} | "
                     f"{row['recall_mean']:.3f} | {row['num_well_detected']} | {row['sort_s_median']:.2f} | "
                     f"{ungated[row['recording']] / row['sort_s_median']:.1f}x |")
    (output / "esort_gate.md").write_text("\n".join(lines) + f"\n\nCommand: `{payload['command']}`\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
