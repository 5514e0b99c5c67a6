"""Kilosort 4 on the CPU, configured as its authors intend for our probes and durations (issue 30, item 11).

Kilosort 4 scored 0.33-0.56 with SpikeInterface's default parameters on our 30-60 s MEArec
recordings. Its documentation names the settings to adapt to a probe and a recording: ``dminx``
("for other probe geometries, set it to the median lateral distance between contacts"; the
default 32 um is for Neuropixels), drift correction (``nblocks``; registration needs enough time and
channels to estimate motion, and MEArec's static recordings have none), and the clustering's
landmark subsampling (``cluster_downsampling``: every 20th spike by default, tuned for long
recordings with many spikes per unit). Each setting is measured here, alone and combined, on
**tuning** recordings never used for any reported figure:

- ``nn32_tuning_seed401`` (Neuronexus-32, 20 units, template library seed 8);
- ``np64_tuning_seed402`` (Neuropixels-64, 20 units, template library seed 7), simulated when absent;

their first 30 s (``--duration-s``), the duration of the held-out recordings of ``benchmarks/esort.py``.
``--stage heldout`` then checks the choice on two recordings nobody tuned on (the spike-vq benchmark's
``nn32_seed301`` and ``np64_seed311``, first 30 s): Kilosort's defaults against the recommended
settings, with tridesclous2 (seed 0) beside them.
Kilosort takes 4-8 min per 30 s run on these 2 cores, so the single-setting rows run only with
``--settings``.

The chosen combination is what :func:`spikeinterface_vqcompress.evaluation.sorting.recommended_sorter_params`
returns for kilosort4 (no drift correction + ``dminx`` on probes of 64 channels or fewer) (and so what every sorting of ours runs); ``benchmarks/esort.py --sorters
kilosort4 --add`` re-runs the held-out rows with it. Writes ``benchmarks/results/kilosort4_settings.{json,md}``
after every run (resumable: runs already saved are skipped)::

    python benchmarks/kilosort4_settings.py
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from common import RESULTS, WORK, command_line, load_simulated, score, write_results

NAME = "kilosort4_settings"
HELDOUT = [
    {"name": "nn32_seed301", "probe": "Neuronexus-32", "num_units": 20, "duration_s": 60.0, "seed": 301,
     "templates_seed": 0, "num_templates_per_cell": 10},
    {"name": "np64_seed311", "probe": "Neuropixels-64", "num_units": 20, "duration_s": 60.0, "seed": 311,
     "templates_seed": 7, "num_templates_per_cell": 10},
]
RECORDINGS = [
    {"name": "nn32_tuning_seed401", "probe": "Neuronexus-32", "num_units": 20, "duration_s": 60.0, "seed": 401,
     "templates_seed": 8, "num_templates_per_cell": 10},
    {"name": "np64_tuning_seed402", "probe": "Neuropixels-64", "num_units": 20, "duration_s": 60.0, "seed": 402,
     "templates_seed": 7, "num_templates_per_cell": 10},
]


def settings_for(name: str, recording) -> dict:
    """The kilosort4 parameters of a named setting on this recording."""
    from spikeinterface_vqcompress.evaluation.sorting import median_lateral_spacing_um

    dminx = {"dminx": median_lateral_spacing_um(recording)}
    from spikeinterface_vqcompress.evaluation.sorting import recommended_sorter_params

    if name == "recommended":
        return recommended_sorter_params("kilosort4", recording)
    return {
        "SpikeInterface defaults": {},
        "no drift correction": {"nblocks": 0},
        "dminx = lateral spacing": dminx,
        "no drift correction + dminx": {"nblocks": 0, **dminx},
        "no drift correction + dminx + all spikes as landmarks": {"nblocks": 0, **dminx, "cluster_downsampling": 1},
    }[name]


#: most informative first (the combination, then each part alone); ``recommended_sorter_params`` gives
#: "no drift correction + dminx" on these probes (64 channels or fewer)
SETTINGS = ["SpikeInterface defaults", "no drift correction + dminx", "no drift correction + dminx + all spikes as landmarks",
            "no drift correction", "dminx = lateral spacing"]
DEFAULT_SETTINGS = SETTINGS[:3]
HELDOUT_SETTINGS = ["SpikeInterface defaults", "recommended", "tridesclous2 seed 0 (reference)"]


def markdown(rows: list[dict]) -> str:
    lines = ["# Kilosort 4 settings (CPU)", "",
             "Kilosort 4.1.7 through SpikeInterface on the CPU, one run each (Kilosort is deterministic on a CPU for a "
             "given input; its own clustering seed stays at the default), on the first `duration` seconds of each "
             "recording. Tuning stage: the recordings the settings were chosen on, never reported elsewhere. "
             "Held-out stage: recordings nobody tuned on. On these probes (64 channels or fewer) "
             "`recommended_sorter_params('kilosort4', recording)` returns the \"no drift correction + dminx\" settings.", ""]
    for stage in ("tuning", "heldout"):
        stage_rows = [row for row in rows if row.get("stage", "tuning") == stage]
        if not stage_rows:
            continue
        lines += [f"## {'Tuning recordings' if stage == 'tuning' else 'Held-out recordings'}", "",
                  "| recording | duration | setting | parameters | accuracy | precision | recall | well detected | "
                  "units sorted (false positive) | sort s |", "|---|---|---|---|---|---|---|---|---|---|"]
        for row in stage_rows:
            s = row["scores"]
            lines.append(f"| {row['recording']} | {row.get('duration_s', 30):.0f} s | {row['setting']} | `{json.dumps(row['params'])}` | "
                         f"{s['accuracy_mean']:.3f} | {s['precision_mean']:.3f} | {s['recall_mean']:.3f} | "
                         f"{s['num_well_detected']}/{s['num_gt_units']} | {s['num_sorted_units']} ({s['num_false_positive']}) | "
                         f"{row['sort_s']:.0f} |")
        lines.append("")
    return "\n".join(lines)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=["tuning", "heldout"], default="tuning")
    parser.add_argument("--settings", nargs="+", default=None, choices=SETTINGS + HELDOUT_SETTINGS[1:])
    parser.add_argument("--duration-s", type=float, default=30.0)
    parser.add_argument("--recordings", nargs="+", default=None, help="names of the stage's recordings to run (default: all)")
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)

    from spikeinterface_vqcompress.evaluation.sorting import run_seeded_sorter

    path = RESULTS / f"{NAME}.json"
    rows = json.loads(path.read_text())["rows"] if path.is_file() else []
    settings = args.settings or (DEFAULT_SETTINGS if args.stage == "tuning" else HELDOUT_SETTINGS)
    for spec in RECORDINGS if args.stage == "tuning" else HELDOUT:
        if args.recordings and spec["name"] not in args.recordings:
            continue
        recording, gt_sorting = load_simulated(WORK / f"{spec['name']}.h5", spec)
        end_frame = int(args.duration_s * recording.sampling_frequency)
        recording, gt_sorting = recording.frame_slice(0, end_frame), gt_sorting.frame_slice(0, end_frame)
        for setting in settings:
            if any(row["recording"] == spec["name"] and row["setting"] == setting
                   and row.get("duration_s", 30.0) == args.duration_s for row in rows):
                continue
            t0 = time.perf_counter()
            if setting.startswith("tridesclous2"):
                params = {}
                sorting, sort_s = run_seeded_sorter(recording, "tridesclous2", 0, WORK / "ks4_settings" / f"{spec['name']}_tdc2",
                                                    job_kwargs={"n_jobs": 2, "progress_bar": False})
            else:
                params = settings_for(setting, recording)
                sorting, sort_s = run_seeded_sorter(recording, "kilosort4", None, WORK / "ks4_settings" / spec["name"],
                                                    sorter_params={**params, "progress_bar": False}, use_recommended=False)
            scores = score(gt_sorting, sorting)
            rows.append({"recording": spec["name"], "stage": args.stage, "duration_s": args.duration_s, "setting": setting, "params": params, "scores": scores,
                         "sort_s": sort_s, "command": command_line("benchmarks/kilosort4_settings.py", argv)})
            print(f"{spec['name']} {setting}: accuracy {scores['accuracy_mean']:.3f}, well detected "
                  f"{scores['num_well_detected']}, sorted {scores['num_sorted_units']} ({scores['num_false_positive']} FP) "
                  f"in {time.perf_counter() - t0:.0f} s", flush=True)
            write_results(args.output, NAME, {"rows": rows}, markdown=lambda: markdown(rows))


if __name__ == "__main__":
    main()
