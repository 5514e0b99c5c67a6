"""E-Sort commands: ``vqcompress train esort`` and ``vqcompress esort RECORDING OUTPUT``."""

from __future__ import annotations

import json

from spikeinterface_vqcompress.esort.defaults import DEFAULT_THRESHOLD


def command_train_esort(args):
    from spikeinterface_vqcompress.esort.pretraining import PRETRAINING_STEPS, train_backbone

    steps = PRETRAINING_STEPS if args.steps is None else args.steps
    command = "vqcompress train esort" + (f" --steps {steps}" if steps != PRETRAINING_STEPS else "") + \
        (f" --seed {args.seed}" if args.seed else "")
    train_backbone(output_folder=args.output_folder, work_folder=args.work_folder, name=args.name, steps=steps,
                   seed=args.seed, num_threads=args.num_threads, device=args.device, command=command)


def command_esort(args):
    import spikeinterface.sorters as ss

    from spikeinterface_vqcompress.cli.common import load_with_ground_truth

    gate = {}
    if args.gate_threshold is not None:
        try:
            gate["gate_threshold"] = None if args.gate_threshold.lower() == "none" else float(args.gate_threshold)
        except ValueError:
            raise SystemExit(f"error: --gate-threshold must be a number of noise units or 'none', got {args.gate_threshold!r}")
    if args.gate_peak_sign is not None:
        gate["gate_peak_sign"] = args.gate_peak_sign
    if args.spatial_radius_um is not None:
        try:
            gate["spatial_radius_um"] = None if args.spatial_radius_um.lower() == "none" else float(args.spatial_radius_um)
        except ValueError:
            raise SystemExit(f"error: --spatial-radius-um must be a distance in um or 'none', got {args.spatial_radius_um!r}")
    elif gate.get("gate_threshold", 0.0) is None:
        gate["spatial_radius_um"] = None  # no gate: every window through the whole network
    if args.no_band_pass and args.band_pass:
        raise SystemExit("error: --band-pass and --no-band-pass contradict each other: give one (neither: band-pass "
                         "unless the recording is marked filtered)")
    if args.no_band_pass or args.band_pass:
        gate["apply_filter"] = bool(args.band_pass)
    recording, gt_sorting = load_with_ground_truth(args.input)
    params = {**gate, "num_spikes_per_unit": args.num_spikes_per_unit, "device": args.device, "threshold": args.threshold}
    # options left out keep the sorter's defaults (one place: ESortSorter._default_params)
    for name in ("label_sorter", "label_duration_s", "epochs", "max_steps", "stride"):
        if getattr(args, name) is not None:
            params[name] = getattr(args, name)
    if args.labels_from_ground_truth:
        if gt_sorting is None:
            raise SystemExit("error: --labels-from-ground-truth needs a MEArec .h5 recording")
        params.update(label_source="sorting", label_sorting_path=str(args.input))
    sorting = ss.run_sorter("esort", recording, folder=args.output, remove_existing_folder=args.overwrite,
                            verbose=True, **params)
    print(f"{len(sorting.unit_ids)} units, sorting in {args.output}/sorter_output/sorting")
    if gt_sorting is not None:
        from spikeinterface_vqcompress.evaluation.sorting import score_sorting

        print(json.dumps(score_sorting(gt_sorting, sorting), indent=2))


def add_cli_commands(commands, trainers):
    """Add ``esort`` to the top-level commands and ``esort`` to ``vqcompress train``."""
    train = trainers.add_parser("esort", help="pretrain the E-Sort backbone on simulated MEArec recordings")
    train.add_argument("--steps", type=int, default=None,
                       help="pretraining steps (batches of 256 windows; default: the shipped backbone's 12000)")
    train.add_argument("--seed", type=int, default=0, help="pretraining seed")
    train.add_argument("--num-threads", type=int, default=2, help="torch CPU threads")
    train.add_argument("--device", default="auto", help="torch device: auto (cuda if available), cpu, cuda, cuda:N")
    train.add_argument("--name", default="esort_backbone", help="name of the backbone file and model card")
    train.add_argument("--output-folder", default=None, help="default: the package's models folder")
    train.add_argument("--work-folder", default=None, help="where training recordings are simulated "
                                                           "(default: benchmarks/work/esort_training)")
    train.set_defaults(function=command_train_esort)

    sort = commands.add_parser("esort", help="sort a recording with E-Sort (labels from a sorter or ground truth)")
    sort.add_argument("input", help="a recording (any format load_recording reads; MEArec .h5 gives ground truth)")
    sort.add_argument("output", help="sorter folder")
    sort.add_argument("--label-sorter", default=None,
                      help="SpikeInterface sorter that labels the first seconds (default: the sorter's)")
    sort.add_argument("--label-duration-s", type=float, default=None,
                      help="seconds at the start labelled by the label sorter (default: the sorter's)")
    sort.add_argument("--num-spikes-per-unit", type=int, default=None,
                      help="fine-tune on each unit's first N labelled spikes (default: every labelled spike)")
    sort.add_argument("--labels-from-ground-truth", action="store_true",
                      help="benchmark mode: fine-tune on the MEArec ground truth's first spikes")
    sort.add_argument("--epochs", type=int, default=None, help="fine-tuning epochs (default: the sorter's, 60)")
    sort.add_argument("--max-steps", type=int, default=None,
                      help="at most this many fine-tuning optimiser steps (default: the sorter's)")
    sort.add_argument("--threshold", type=float, default=DEFAULT_THRESHOLD,
                      help=f"minimum smoothed probability of a spike (default: {DEFAULT_THRESHOLD})")
    sort.add_argument("--gate-threshold", default=None,
                      help="amplitude gate in noise units, or 'none' to run the network on every window "
                           "(default: the sorter's, 4)")
    sort.add_argument("--gate-peak-sign", default=None, choices=["neg", "pos", "both"],
                      help="which crossings open the gate: 'neg' (below -gate), 'pos' or 'both' "
                           "(default: the sorter's)")
    sort.add_argument("--spatial-radius-um", default=None,
                      help="local inference radius in um, or 'none' for the whole spatial layer (default: the "
                           "sorter's, 100; 'none' when --gate-threshold is none)")
    sort.add_argument("--stride", type=int, default=None,
                      help="run the network every STRIDE samples (default: the sorter's 'auto', every 0.125 ms and "
                           "at most 4 samples: 4 at 32 kHz, 2 at 20 kHz)")
    sort.add_argument("--no-band-pass", action="store_true",
                      help="the recording is already band-passed but not marked so: skip E-Sort's band-pass (by "
                           "default it band-passes unless the recording is marked filtered, e.g. a MEArec file)")
    sort.add_argument("--band-pass", action="store_true",
                      help="band-pass even a recording marked filtered")
    sort.add_argument("--device", default="auto", help="torch device: auto (cuda if available), cpu, cuda, cuda:N")
    sort.add_argument("--overwrite", action="store_true", help="replace the sorter folder if it exists")
    sort.set_defaults(function=command_esort)
