"""Choosing E-Sort's fine-tuning settings on a tuning recording (never on the recordings reported).

Transfer learning should need fewer labelled spikes than training from scratch (issue 6: the
from-scratch accuracy with >= 40% fewer labels). With few labels, how fast the pretrained backbone
may move decides how much of the pretraining survives. This script fine-tunes E-Sort on the first
N ground-truth spikes per unit of a MEArec recording whose templates and seed (0) differ from the
backbone's (201, 202) and from the benchmark's (101, 102), with several settings and fine-tuning
seeds, side by side in one run, and scores the gated sort of the whole recording.

Writes ``benchmarks/results/esort_finetune.json`` and ``esort_finetune.md``. Run::

    python benchmarks/esort_finetune.py
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
DEFAULT_RECORDING = HERE / "work" / "esort_tune_nn32_seed0.h5"
#: settings compared: name -> (pretrained, fine_tune_recording keyword arguments)
VARIANTS = {
    "scratch": (None, {}),
    "transfer, backbone lr = head lr (1e-3)": ("esort_backbone", {}),
    "transfer, backbone lr 1e-4": ("esort_backbone", {"backbone_learning_rate": 1e-4}),
    "transfer, backbone frozen": ("esort_backbone", {"backbone_learning_rate": 0.0}),
    "transfer, backbone lr 1e-4, 40 epochs": ("esort_backbone", {"backbone_learning_rate": 1e-4, "epochs": 40}),
    "transfer, 40 epochs": ("esort_backbone", {"epochs": 40}),
    "scratch, 40 epochs": (None, {"epochs": 40}),
    "transfer, 60 epochs": ("esort_backbone", {"epochs": 60}),
    "scratch, 60 epochs": (None, {"epochs": 60}),
}
SPIKES_PER_UNIT = [5, 9, 10, 15]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--recording", default=str(DEFAULT_RECORDING),
                        help="a MEArec file off the backbone's and the benchmark's seeds (simulated, seed 0, when absent)")
    parser.add_argument("--spikes-per-unit", type=int, nargs="*", default=SPIKES_PER_UNIT)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1], help="fine-tuning seeds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--output", default=str(HERE / "results"))
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    import spikeinterface_vqcompress as vq
    from spikeinterface_vqcompress.esort import core
    from spikeinterface_vqcompress.esort.sorter import DEFAULT_GATE_MARGIN_SAMPLES, DEFAULT_GATE_THRESHOLD
    from spikeinterface_vqcompress.evaluation.pipeline import score_sorting
    from spikeinterface_vqcompress.groundtruth import load_ground_truth, simulate_recording

    torch.set_num_threads(args.threads)
    path = Path(args.recording)
    if not path.is_file():
        simulate_recording(path, probe="Neuronexus-32", num_units=20, duration_s=30.0, seed=0, num_templates_per_cell=10)
    recording, gt_sorting = load_ground_truth(path)
    prepared = core.prepare_recording(recording)
    noise = core.noise_levels(prepared)
    num_samples = recording.get_num_samples(0)
    t_start = time.perf_counter()
    rows = []
    for n in args.spikes_per_unit:
        labels = core.labels_from_sorting(gt_sorting, num_samples, num_spikes_per_unit=n)
        for name, (pretrained, kwargs) in VARIANTS.items():
            accuracies, times = [], []
            for seed in args.seeds:
                model, info = core.fine_tune_recording(prepared, noise, labels, pretrained=pretrained, seed=seed, **kwargs)
                sorting = core.sort_recording(model, prepared, noise, labels.unit_ids, stride=2,
                                              gate_threshold=DEFAULT_GATE_THRESHOLD,
                                              gate_margin_samples=DEFAULT_GATE_MARGIN_SAMPLES)
                accuracies.append(score_sorting(gt_sorting, sorting)["accuracy_mean"])
                times.append(info["fine_tune_time_s"])
            rows.append({"num_spikes_per_unit": n, "variant": name, "accuracy": accuracies,
                         "accuracy_mean": float(np.mean(accuracies)), "accuracy_std": float(np.std(accuracies)),
                         "fine_tune_s": float(np.median(times))})
            print(f"N={n} {name}: {np.mean(accuracies):.3f} +/- {np.std(accuracies):.3f}", flush=True)

    payload = {"package_version": vq.__version__, "command": " ".join(["benchmarks/esort_finetune.py", *sys.argv[1:]]),
               "recording": str(path.relative_to(HERE.parent)) if path.is_relative_to(HERE.parent) else str(path),
               "seeds": args.seeds, "rows": rows, "wall_time_s": time.perf_counter() - t_start}
    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    (output / "esort_finetune.json").write_text(json.dumps(payload, indent=2))
    lines = ["# E-Sort fine-tuning settings (tuning recording, never reported)", "",
             f"Recording `{payload['recording']}` (MEArec Neuronexus-32, 20 units, 30 s, templates and seed 0: "
             "off the backbone's and the benchmark's seeds). Fine-tuned on each unit's first N ground-truth spikes, "
             "sorted with the sorter's default gate; mean accuracy over the whole recording, mean +/- std over "
             f"fine-tuning seeds {args.seeds}. Command: `{payload['command']}`.", "",
             "| variant | " + " | ".join(f"N = {n}" for n in args.spikes_per_unit) + " |",
             "|---|" + "---|" * len(args.spikes_per_unit)]
    for name in VARIANTS:
        cells = [next(f"{r['accuracy_mean']:.3f} +/- {r['accuracy_std']:.3f}" for r in rows
                      if r["variant"] == name and r["num_spikes_per_unit"] == n) for n in args.spikes_per_unit]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    lines += ["", f"Wall time: {payload['wall_time_s']:.0f} s."]
    (output / "esort_finetune.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
