"""Choosing E-Sort's amplitude gate on a training recording (never on the recordings reported).

The sorting stage runs the network on every window (every ``stride`` samples). The amplitude gate
runs it only on windows centred near a sample where some channel's normalised trace exceeds
``gate_threshold`` noise units (``detect_spikes(..., gate_threshold=...)``). This script fine-tunes
E-Sort once (shipped backbone, first N ground-truth spikes per unit) on a MEArec recording from the
backbone's training seeds and sorts it with no gate and with each gate setting, side by side in one
run: accuracy, the share of windows the network still sees, and the sort time.

Writes ``benchmarks/results/esort_gate.json`` and ``esort_gate.md``. Run::

    python benchmarks/esort_gate.py [--recording benchmarks/work/spike_cae/train_nn32_s201_u20_60s.h5]
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_RECORDING = HERE / "work" / "spike_cae" / "train_nn32_s201_u20_60s.h5"
GATES = [None, 3.0, 4.0, 5.0, 6.0]
MARGINS = [13, 8]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recording", default=str(DEFAULT_RECORDING),
                        help="a MEArec file from the training seeds (simulated with seed 201 when absent)")
    parser.add_argument("--spikes-per-unit", type=int, default=15)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=3, help="sort passes per setting (the time is their median)")
    parser.add_argument("--output", default=str(HERE / "results"))
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    import spikeinterface_vqcompress as vq
    from spikeinterface_vqcompress.esort import core
    from spikeinterface_vqcompress.esort.postprocessing import candidate_rows
    from spikeinterface_vqcompress.evaluation.pipeline import score_sorting
    from spikeinterface_vqcompress.groundtruth import load_ground_truth, simulate_recording

    torch.set_num_threads(args.threads)
    path = Path(args.recording)
    if not path.is_file():
        simulate_recording(path, probe="Neuronexus-32", num_units=20, duration_s=60.0, seed=201)
    recording, gt_sorting = load_ground_truth(path)
    prepared = core.prepare_recording(recording)
    noise = core.noise_levels(prepared)
    labels = core.labels_from_sorting(gt_sorting, recording.get_num_samples(0), num_spikes_per_unit=args.spikes_per_unit)
    model, info = core.fine_tune_recording(prepared, noise, labels, seed=0)
    # the band-passed traces once in memory, so the times below are the network and post-processing only
    from spikeinterface.core import NumpyRecording

    traces = prepared.get_traces(return_in_uV=False)
    in_memory = NumpyRecording([traces], recording.get_sampling_frequency())
    stride = 2
    whole = torch.from_numpy(traces / noise[None, :])
    total_rows = (len(whole) - model.window_num_samples) // stride + 1
    rows = []
    for gate in GATES:
        for margin in (MARGINS if gate is not None else [None]):
            times, sorting = [], None
            for _ in range(args.repeats):
                t0 = time.perf_counter()
                sorting = core.sort_recording(model, in_memory, noise, labels.unit_ids, stride=stride, device="cpu",
                                              gate_threshold=gate, gate_margin_samples=margin or 0)
                times.append(time.perf_counter() - t0)
            share = 1.0 if gate is None else len(candidate_rows(whole, model.window_num_samples, stride, gate, margin)) / total_rows
            scores = score_sorting(gt_sorting, sorting)
            rows.append({"gate_threshold": gate, "gate_margin_samples": margin, "windows_share": share,
                         "sort_s_median": float(np.median(times)), "sort_s": times,
                         "accuracy_mean": scores["accuracy_mean"], "precision_mean": scores["precision_mean"],
                         "recall_mean": scores["recall_mean"], "num_well_detected": scores["num_well_detected"]})
            print(rows[-1], flush=True)
    ungated = rows[0]
    payload = {"package_version": vq.__version__, "command": " ".join(["benchmarks/esort_gate.py"] + (argv or sys.argv[1:])),
               "recording": str(path.name), "spikes_per_unit": args.spikes_per_unit, "stride": stride,
               "threads": args.threads, "duration_s": recording.get_total_duration(),
               "fine_tune_s": info["fine_tune_time_s"], "rows": rows}
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "esort_gate.json").write_text(json.dumps(payload, indent=2))
    lines = ["# E-Sort amplitude gate, chosen on a training recording", "",
             f"Recording `{path.name}` (backbone training seed, not reported elsewhere), {payload['duration_s']:.0f} s, "
             f"fine-tuned once on the first {args.spikes_per_unit} ground-truth spikes per unit; sort = network + "
             f"smoothing + peak picking on in-memory band-passed traces, stride {stride}, {args.threads} threads, "
             f"median of {args.repeats} passes. Speed-up: ungated sort time / gated sort time, same run.", "",
             "| gate (noise units) | margin (samples) | windows run | accuracy | precision | recall | well-detected | sort s | speed-up |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['gate_threshold'] if row['gate_threshold'] is not None else 'none'} | "
                     f"{row['gate_margin_samples'] if row['gate_margin_samples'] is not None else '-'} | "
                     f"{100 * row['windows_share']:.1f}% | {row['accuracy_mean']:.3f} | {row['precision_mean']:.3f} | "
                     f"{row['recall_mean']:.3f} | {row['num_well_detected']} | {row['sort_s_median']:.2f} | "
                     f"{ungated['sort_s_median'] / row['sort_s_median']:.1f}x |")
    (output / "esort_gate.md").write_text("\n".join(lines) + f"\n\nCommand: `{payload['command']}`\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    sys.exit(main())
