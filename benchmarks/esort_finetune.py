"""Choosing E-Sort's fine-tuning settings on a tuning recording (never on the recordings reported).

Transfer learning should need fewer labelled spikes than training from scratch (issue 6: the
from-scratch accuracy with >= 40% fewer labels). With few labels, how fast the pretrained backbone
may move decides how much of the pretraining survives. This script fine-tunes E-Sort on the first
N ground-truth spikes per unit of a MEArec recording whose templates and seed (0) differ from the
backbone's (201, 202) and from the benchmark's (101, 102), with several settings and fine-tuning
seeds, side by side in one run, and scores the gated sort of the whole recording.

Three experiments, each with its own results:

- ``--experiment schedule``: learning rates, frozen backbone, epochs (chose 60 epochs and one learning
  rate for head and backbone; run before synthetic windows existed, hence without them);
  ``benchmarks/results/esort_finetune.{json,md}``;
- ``--experiment synthetic``: synthetic windows per real window in each batch (0, 0.5, 1.0; chose
  1.0), with the pretrained and the random backbone; ``benchmarks/results/esort_synthetic.{json,md}``;
- ``--experiment backbone`` (default): how the backbone is pretrained (the first shipped one, 4
  recordings x 800 steps; 4 recordings x 4000 steps; the shipped one, 10 recordings x 12000 steps,
  each trained here into ``benchmarks/work/esort_backbones/``) and the sorting probability threshold
  (chose 0.25 and the shipped backbone); ``benchmarks/results/esort_backbone_threshold.{json,md}``.

Run::

    python benchmarks/esort_finetune.py
    python benchmarks/esort_finetune.py --experiment schedule
    python benchmarks/esort_finetune.py --experiment synthetic
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from common import RESULTS, ROOT, WORK, command_line, simulate_if_absent, write_results

DEFAULT_RECORDING = WORK / "esort_tune_nn32_seed0.h5"
#: the tuning recording (templates and seed 0: off the backbone's and the benchmark's seeds)
TUNING_RECORDING = {"probe": "Neuronexus-32", "num_units": 20, "duration_s": 30.0, "seed": 0, "num_templates_per_cell": 10}
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
#: the synthetic-window experiment: name -> (pretrained, fine_tune_recording keyword arguments)
SYNTHETIC_VARIANTS = {
    f"{tag}, synthetic fraction {fraction}": (pretrained, {"synthetic_fraction": fraction})
    for pretrained, tag in (("esort_backbone", "transfer"), (None, "scratch")) for fraction in (0.0, 0.5, 1.0)
}
SPIKES_PER_UNIT = [5, 9, 10, 15]
THRESHOLDS = [0.5, 0.35, 0.3, 0.25, 0.2]
#: backbones compared: name -> (number of TRAINING_RECORDINGS used per probe, pretraining steps); None: the shipped one
BACKBONES = {
    "first shipped backbone: 2 recordings per probe, 800 steps": (2, 800),
    "2 recordings per probe, 4000 steps": (2, 4000),
    "shipped backbone: 5 recordings per probe, 12000 steps": None,
}


def backbone_variants(work_folder):
    """Train the compared backbones (when absent) and return name -> (pretrained, fine-tune kwargs)."""
    from spikeinterface_vqcompress.esort import pretraining

    variants = {"scratch": (None, {})}
    for name, spec in BACKBONES.items():
        if spec is None:
            variants[f"transfer, {name}"] = ("esort_backbone", {})
            continue
        per_probe, steps = spec
        probes = dict.fromkeys(rec[0] for rec in pretraining.TRAINING_RECORDINGS)
        recordings = []
        for probe in probes:
            recordings += [rec for rec in pretraining.TRAINING_RECORDINGS if rec[0] == probe][:per_probe]
        tag = f"backbone_{per_probe}per_probe_{steps}steps"
        path = Path(work_folder) / f"{tag}.pt"
        if not path.is_file():
            pretraining.train_backbone(output_folder=work_folder, name=tag, steps=steps, recordings=recordings,
                                       verbose=False, command=f"benchmarks/esort_finetune.py ({name})")
        variants[f"transfer, {name}"] = (str(path), {})
    return variants


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--experiment", choices=["backbone", "schedule", "synthetic"], default="backbone")
    parser.add_argument("--recording", default=str(DEFAULT_RECORDING),
                        help="a MEArec file off the backbone's and the benchmark's seeds (simulated, seed 0, when absent)")
    parser.add_argument("--spikes-per-unit", type=int, nargs="*", default=SPIKES_PER_UNIT)
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1], help="fine-tuning seeds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--work-folder", default=str(WORK / "esort_backbones"),
                        help="where the compared backbones are trained (--experiment backbone)")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    import spikeinterface_vqcompress as vq
    from spikeinterface_vqcompress.esort import core
    from spikeinterface_vqcompress.esort.defaults import DEFAULT_GATE_MARGIN_SAMPLES, DEFAULT_GATE_THRESHOLD, DEFAULT_THRESHOLD
    from spikeinterface_vqcompress.evaluation import score_sorting
    from spikeinterface_vqcompress.groundtruth import load_ground_truth

    torch.set_num_threads(args.threads)
    path = simulate_if_absent(args.recording, TUNING_RECORDING)
    if args.experiment == "backbone":
        variants, thresholds, stem = backbone_variants(args.work_folder), THRESHOLDS, "esort_backbone_threshold"
    elif args.experiment == "schedule":
        variants, thresholds, stem = VARIANTS, [0.5], "esort_finetune"
    else:
        variants, thresholds, stem = SYNTHETIC_VARIANTS, [DEFAULT_THRESHOLD], "esort_synthetic"
    if args.experiment != "synthetic":  # both ran before synthetic windows existed
        variants = {name: (pretrained, {"synthetic_fraction": 0.0, **kwargs})
                    for name, (pretrained, kwargs) in variants.items()}
    # all three experiments ran before the fine-tuning step budget (benchmarks/esort_budget.py): every
    # epoch runs to its end, so that the epochs they compare mean what they meant
    variants = {name: (pretrained, {"max_steps": None, **kwargs}) for name, (pretrained, kwargs) in variants.items()}
    recording, gt_sorting = load_ground_truth(path)
    prepared = core.prepare_recording(recording)
    noise = core.noise_levels(prepared)
    num_samples = recording.get_num_samples(0)
    t_start = time.perf_counter()
    rows = []
    for n in args.spikes_per_unit:
        labels = core.labels_from_sorting(gt_sorting, num_samples, num_spikes_per_unit=n)
        for name, (pretrained, kwargs) in variants.items():
            accuracies, times = {threshold: [] for threshold in thresholds}, []
            for seed in args.seeds:
                model, info = core.fine_tune_recording(prepared, noise, labels, pretrained=pretrained, seed=seed, **kwargs)
                times.append(info["fine_tune_time_s"])
                for threshold in thresholds:  # the same fine-tuned network, sorted at each threshold
                    sorting = core.sort_recording(model, prepared, noise, labels.unit_ids, stride=2, threshold=threshold,
                                                  gate_threshold=DEFAULT_GATE_THRESHOLD,
                                                  gate_margin_samples=DEFAULT_GATE_MARGIN_SAMPLES)
                    accuracies[threshold].append(score_sorting(gt_sorting, sorting)["accuracy_mean"])
            for threshold in thresholds:
                values = accuracies[threshold]
                rows.append({"num_spikes_per_unit": n, "variant": name, "threshold": threshold, "accuracy": values,
                             "accuracy_mean": float(np.mean(values)), "accuracy_std": float(np.std(values)),
                             "fine_tune_s": float(np.median(times))})
                print(f"N={n} {name}, threshold {threshold}: {np.mean(values):.3f} +/- {np.std(values):.3f}", flush=True)

    payload = {"package_version": vq.__version__,
               "command": command_line("benchmarks/esort_finetune.py", argv),
               "recording": str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else str(path),
               "experiment": args.experiment, "seeds": args.seeds, "rows": rows,
               "wall_time_s": time.perf_counter() - t_start}
    output = write_results(args.output, stem, payload).parent
    title = {"backbone": "E-Sort backbone pretraining and sorting threshold",
             "schedule": "E-Sort fine-tuning settings (without synthetic windows)",
             "synthetic": "E-Sort synthetic windows in fine-tuning"}[args.experiment]
    lines = [f"# {title} (tuning recording, never reported)", "",
             f"Recording `{payload['recording']}` (MEArec Neuronexus-32, 20 units, 30 s, templates and seed 0: "
             "off the backbone's and the benchmark's seeds). Fine-tuned on each unit's first N ground-truth spikes, "
             "sorted with the sorter's default gate; mean accuracy over the whole recording, mean +/- std over "
             f"fine-tuning seeds {args.seeds}. Command: `{payload['command']}`.", "",
             "| variant | threshold | " + " | ".join(f"N = {n}" for n in args.spikes_per_unit) + " | mean | fine-tune s at N = "
             + "/".join(str(n) for n in args.spikes_per_unit) + " |",
             "|---|---|" + "---|" * (len(args.spikes_per_unit) + 2)]
    for name in variants:
        for threshold in thresholds:
            selected = [next(r for r in rows if r["variant"] == name and r["threshold"] == threshold
                             and r["num_spikes_per_unit"] == n) for n in args.spikes_per_unit]
            cells = [f"{r['accuracy_mean']:.3f} +/- {r['accuracy_std']:.3f}" for r in selected]
            mean = np.mean([r["accuracy_mean"] for r in selected])
            times = "/".join(f"{r['fine_tune_s']:.0f}" for r in selected)
            lines.append(f"| {name} | {threshold} | " + " | ".join(cells) + f" | {mean:.3f} | {times} |")
    lines += ["", f"Wall time: {payload['wall_time_s']:.0f} s."]
    (output / f"{stem}.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
