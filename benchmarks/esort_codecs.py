"""E-Sort on recordings rebuilt by our codecs (issue 6): how much of E-Sort's accuracy each codec keeps.

For each held-out MEArec recording (``benchmarks/work/mearec_neuronexus32.h5``, seed 101, and
``mearec_neuropixels64.h5``, seed 102; never used for pretraining nor for choosing any setting),
the recording is compressed by each codec point (real bytes, in memory), and E-Sort is fine-tuned
(shipped backbone, the first N ground-truth spikes per unit, fine-tuning seeds 0-2) and sorted on
the REBUILT recording, side by side with the raw recording in the same run. Ratios are every
container byte against int16. Scores: mean ground-truth accuracy over the whole recording, mean ±
std over the fine-tuning seeds; ``gated`` is the sorter's default (amplitude-gated) sorting.

Writes ``benchmarks/results/esort_codecs.{json,md}``::

    python benchmarks/esort_codecs.py                       # ~25 min on 2 cores
    python benchmarks/esort_codecs.py --only mearec_neuronexus32 --spikes-per-unit 9
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

from common import ESORT_RECORDINGS as RECORDINGS
from common import RESULTS, WORK, command_line, esort_row, write_results
from common import load_esort_recording as load_recording

DATASETS = ["mearec_neuronexus32", "mearec_neuropixels64"]
#: codec points: None is the raw recording
CODECS = [
    None,
    {"id": "wavpack", "bps": 2.25},
    {"id": "broadband", "max_error": 8},
    {"id": "broadband", "max_error": 24},
    {"id": "broadband", "max_error": 48},
    {"id": "broadband-rvq", "num_stages": 2},
    {"id": "broadband-rvq", "num_stages": 1},
    {"id": "spike-cae"},
]


def _label(config: dict) -> str:
    """The codec label of a container's codec config, without the probe geometry it carries."""
    from spikeinterface_vqcompress.evaluation import codec_label

    return codec_label({key: value for key, value in config.items() if key != "channel_locations"})


def markdown(payload) -> str:
    lines = ["# E-Sort on recordings rebuilt by our codecs (held-out MEArec recordings)", "", payload["note"], "",
             "| recording | codec | ratio vs int16 | N/unit | E-Sort accuracy | Δ vs raw | gated accuracy | gated Δ vs raw | precision | recall |",
             "|---|---|---|---|---|---|---|---|---|---|"]
    raw = {(row["dataset"], row["num_spikes_per_unit"]): row for row in payload["rows"] if row["codec_config"] is None}
    for row in payload["rows"]:
        reference = raw.get((row["dataset"], row["num_spikes_per_unit"]))
        whole, gated = row["whole"], row["gated"]["whole"]
        change = "" if reference is None else f"{whole['accuracy_mean'] - reference['whole']['accuracy_mean']:+.3f}"
        gated_change = ("" if reference is None
                        else f"{gated['accuracy_mean'] - reference['gated']['whole']['accuracy_mean']:+.3f}")
        ratio = "1 (raw)" if row["codec_config"] is None else f"{row['compression_ratio']:.1f}"
        lines.append(f"| {row['dataset']} | {row['codec']} | {ratio} | {row['num_spikes_per_unit']} | "
                     f"{whole['accuracy_mean']:.3f} ± {whole['accuracy_std']:.3f} | {change} | "
                     f"{gated['accuracy_mean']:.3f} ± {gated['accuracy_std']:.3f} | {gated_change} | "
                     f"{whole['precision_mean']:.3f} | {whole['recall_mean']:.3f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work-folder", default=str(WORK))
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--only", nargs="*", default=DATASETS, help="recording names")
    parser.add_argument("--spikes-per-unit", type=int, nargs="*", default=[15])
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="fine-tuning seeds")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--resume", action="store_true", help="keep the rows already in esort_codecs.json")
    args = parser.parse_args(argv)

    import spikeinterface_vqcompress as vq
    from spikeinterface_vqcompress.esort import core

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    t_start = time.perf_counter()
    payload = {"package_version": vq.__version__,
               "command": command_line("benchmarks/esort_codecs.py", argv),
               "machine": "2-core CPU, shared", "rows": [],
               "note": (f"E-Sort (shipped backbone) fine-tuned on the first N ground-truth spikes per unit of the rebuilt "
                        f"recording, fine-tuning seeds {args.seeds}: accuracy as mean ± std over the seeds; the raw "
                        "recording's rows come from the same run. Ratio: every container byte against int16.")}
    rows = payload["rows"]
    previous = output / "esort_codecs.json"
    if args.resume and previous.is_file():  # rows of an interrupted run with the same seeds are kept
        rows += [row for row in json.loads(previous.read_text())["rows"] if row["seeds"] == args.seeds]

    def save():
        payload["wall_time_s"] = time.perf_counter() - t_start
        write_results(output, "esort_codecs", payload, lambda: markdown(payload) + f"\nWall time: {payload['wall_time_s']:.0f} s. "
                      f"Command: `{payload['command']}`\n")

    for spec in RECORDINGS:
        if spec["name"] not in args.only:
            continue
        recording, gt_sorting = load_recording(spec, args.work_folder)
        for config in CODECS:
            def kept(n):
                return any(row["dataset"] == spec["name"] and row["codec_config"] == config
                           and row["num_spikes_per_unit"] == n for row in rows)

            todo = [n for n in args.spikes_per_unit if not kept(n)]
            if not todo:
                print(f"{spec['name']} {config}: kept from the interrupted run", flush=True)
                continue
            if config is None:
                rebuilt, label, extra = recording, "raw", {"compression_ratio": 1.0}
            else:
                compressed = vq.compress(recording, codec=dict(config), progress_bar=False)
                label = _label(compressed.container_header["codec"])
                extra = {"compression_ratio": float(compressed.compression_ratio),
                         "encoded_nbytes": int(compressed.encoded_nbytes)}
                # decoded once into memory (the same samples E-Sort would otherwise read lazily, many times over)
                rebuilt = compressed.save(format="memory", n_jobs=1, progress_bar=False)
            for n in todo:
                labels = core.labels_from_sorting(gt_sorting, recording.get_num_samples(0), num_spikes_per_unit=n)
                row = esort_row(rebuilt, gt_sorting, labels, "esort_backbone", spec["name"], f"esort-transfer on {label}",
                                args.threads, seeds=args.seeds)
                row.update(codec=label, codec_config=config, **extra)
                rows.append(row)
                save()
    save()
    print(markdown(payload))


if __name__ == "__main__":
    main()
