"""spike-vq against spike-pca and spike-cae on held-out MEArec recordings (issue 28).

Every recording here is held out: its template library and seed were never used to train the
``spike-vq`` prior (SpikeInterface's generator, ``training/spike_vq.py``) or to tune a parameter
(SpikeInterface-generated recordings, ``--stage tune``).

- Neuronexus-32: the template library shipped for the demo (13 BBP cells x 10, templates seed 0),
  recordings seeds 301-303; Neuropixels-64: a library of templates seed 7, recordings seeds 311-313.
  20 units, 60 s each.
- ``curve``: every rate point of ``spike-vq``, ``spike-pca`` and the ``spike-cae`` default, raw in
  the same run, tridesclous2 seed 0 (``--sorters`` / ``--seeds`` for more); ratio at 60 s and on
  the first 30 s (side information amortises with time).
- ``repeat``: the chosen point (``--point``) and raw with more sorter seeds.
- ``real``: the real recordings in ``../shared/data`` (locust tetrode trial 01, 4 ch, 15 kHz, 28.8 s;
  Open Ephys 16 ch, 40 kHz, 3.3 s), every curve point; no ground truth, so each sorter's sorting of the
  raw recording with its first seed is the reference and every run (raw and rebuilt, each seed) is
  scored as agreement with it: the raw rows of the other seeds are the sorter's own repeatability, the
  ceiling. A codec that cannot code a recording is listed with its error.
- ``tune``: SpikeInterface-generated tuning recordings (never reported as evaluation).

Rows are appended to ``benchmarks/results/spike_vq.json`` as they finish (the run resumes where it
stopped); ``spike_vq.md`` and ``spike_vq.png`` are rewritten from all rows.

    python benchmarks/spike_vq.py --stage curve
    python benchmarks/spike_vq.py --stage repeat --sorters tridesclous2 spykingcircus2 --seeds 0 1 2
    python benchmarks/spike_vq.py --stage real --sorters tridesclous2 spykingcircus2 --seeds 0 1 2
    python benchmarks/spike_vq.py --stage real --point '{"id": "spike-vq", ...}' --sorters ... --seeds ...
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from common import REAL_RECORDINGS, RESULTS, WORK, command_line, load_simulated, real_recording, write_results

NAME = "spike_vq"
RESULTS_JSON = RESULTS / f"{NAME}.json"

NN32 = [{"name": f"nn32_seed{seed}", "probe": "Neuronexus-32", "num_units": 20, "duration_s": 60.0, "seed": seed,
         "templates_seed": 0, "num_templates_per_cell": 10} for seed in (301, 302, 303)]
NP64 = [{"name": f"np64_seed{seed}", "probe": "Neuropixels-64", "num_units": 20, "duration_s": 60.0, "seed": seed,
         "templates_seed": 7, "num_templates_per_cell": 10} for seed in (311, 312, 313)]
RECORDINGS = [spec for pair in zip(NN32, NP64) for spec in pair]  # interleaved: a partial run covers both probes

CURVE_POINTS = [
    {"id": "spike-vq", "residual_step": 3.0},
    {"id": "spike-vq", "residual_step": 2.0},
    {"id": "spike-vq", "residual_step": 1.0},
    {"id": "spike-pca", "step": 2.0},
    {"id": "spike-cae"},
]


def label(config: dict) -> str:
    return config["id"] + "(" + ", ".join(f"{key}={value}" for key, value in config.items() if key != "id") + ")"


def load_rows() -> list[dict]:
    if RESULTS_JSON.is_file():
        return json.loads(RESULTS_JSON.read_text())["rows"]
    return []


def save(rows, argv):
    write_results(RESULTS, NAME, {"command": command_line("benchmarks/spike_vq.py", argv), "rows": rows},
                  markdown=lambda: markdown(rows))
    try:
        plot(rows)
    except Exception as error:  # a plot must not lose the rows
        print(f"plot failed: {error}")


def ratio_row(recording, config, duration_s=None) -> dict:
    """Ratios from the real container bytes, encode speed and spike counts (no sorting)."""
    import spikeinterface_vqcompress as vq

    if duration_s is not None:
        recording = recording.frame_slice(0, int(duration_s * recording.get_sampling_frequency()))
    start = time.perf_counter()
    compressed = vq.compress(recording, codec=config, progress_bar=False)
    encode_s = time.perf_counter() - start
    duration = recording.get_num_samples() / recording.get_sampling_frequency()
    return {"ratio_int16": compressed.compression_ratio, "ratio_adc10": compressed.compression_ratio * 10 / 16,
            "bandpass_hz": compressed.codec.get_config().get("bandpass_hz"),
            "kbit_per_s": 8 * compressed.encoded_nbytes / duration / 1000, "encode_x_realtime": duration / encode_s,
            "duration_s": duration, "bytes": compressed.encoded_nbytes}


def sort_row(recording, gt_sorting, config, sorter, seed, work) -> dict:
    import spikeinterface_vqcompress as vq
    from spikeinterface_vqcompress.evaluation.sorting import sort_and_score

    target = recording if config is None else vq.compress(recording, codec=config, progress_bar=False)
    return sort_and_score(target, gt_sorting, sorter, seed, work / "sorter", job_kwargs={"n_jobs": 2, "progress_bar": False})


def run(points, sorters, seeds, argv, recordings=RECORDINGS, with_ratios=True, rerun=False):
    rows = load_rows()
    if rerun:  # the points' rows of these recordings, sorters and seeds are measured again (raw rows stay)
        names = {spec["name"] for spec in recordings}
        labels = {label(config) for config in points}
        rows = [row for row in rows if not (row["recording"] in names and row["codec"] in labels
                                            and (row["kind"] != "sorting" or (row.get("sorter") in sorters and row.get("seed") in seeds)))]
    done = {(row["recording"], row["codec"], row.get("sorter"), row.get("seed"), row["kind"]) for row in rows}
    work = WORK / NAME
    for spec in recordings:
        path = WORK / f"{spec['name']}.h5"
        recording, gt_sorting = load_simulated(path, spec)
        for config in [None, *points]:
            name = "raw" if config is None else label(config)
            if config is not None and with_ratios:
                for kind, duration in (("ratio_60s", None), ("ratio_30s", 30.0)):
                    if (spec["name"], name, None, None, kind) not in done:
                        rows.append({"recording": spec["name"], "probe": spec["probe"], "codec": name, "config": config,
                                     "kind": kind, **ratio_row(recording, config, duration)})
                        done.add((spec["name"], name, None, None, kind))
                        save(rows, argv)
            for sorter in sorters:
                for seed in seeds:
                    key = (spec["name"], name, sorter, seed, "sorting")
                    if key in done:
                        continue
                    print(f"{spec['name']} {name} {sorter} seed {seed}", flush=True)
                    scores = sort_row(recording, gt_sorting, config, sorter, seed, work)
                    rows.append({"recording": spec["name"], "probe": spec["probe"], "codec": name, "config": config,
                                 "kind": "sorting", "sorter": sorter, "seed": seed, **scores})
                    done.add(key)
                    save(rows, argv)
    return rows



def run_real(points, sorters, seeds, argv):
    """The ``real`` stage: rows of the real recordings, scored against each sorter's raw sorting with
    ``seeds[0]`` (the reference, sorted once into ``benchmarks/work/spike_vq/``)."""
    from spikeinterface.sorters import read_sorter_folder
    from spikeinterface_vqcompress.evaluation.sorting import run_seeded_sorter

    rows = load_rows()
    done = {(row["recording"], row["codec"], row.get("sorter"), row.get("seed"), row["kind"]) for row in rows}
    work = WORK / NAME
    for spec in REAL_RECORDINGS:
        recording = real_recording(spec["name"])
        if recording is None:
            print(f"{spec['name']}: not in ../shared/data, skipped")
            continue
        usable = []
        for config in points:
            name = label(config)
            if (spec["name"], name, None, None, "ratio_60s") not in done:
                try:  # the whole recording (the key keeps the simulated rows' name)
                    row = ratio_row(recording, config)
                except ValueError as error:  # e.g. spike-cae without a gain to uV: a result too
                    row = {"error": " ".join(str(error).split())[:400]}
                rows.append({"recording": spec["name"], "probe": spec["name"], "codec": name, "config": config,
                             "kind": "ratio_60s", "real": True, **row})
                done.add((spec["name"], name, None, None, "ratio_60s"))
                save(rows, argv)
            ratio = next(row for row in rows if row["recording"] == spec["name"] and row["codec"] == name
                         and row["kind"] == "ratio_60s")
            if "error" not in ratio:
                usable.append(config)
        for sorter in sorters:
            reference = None
            for config in [None, *usable]:
                name = "raw" if config is None else label(config)
                for seed in seeds:
                    key = (spec["name"], name, sorter, seed, "sorting")
                    if key in done:
                        continue
                    if reference is None:  # sorted once: a resumed run scores against the same reference
                        folder = work / f"{spec['name']}_{sorter}_reference"
                        reference = (read_sorter_folder(folder) if (folder / "spikeinterface_log.json").is_file() else
                                     run_seeded_sorter(recording, sorter, seeds[0], folder,
                                                       job_kwargs={"n_jobs": 2, "progress_bar": False})[0])
                    print(f"{spec['name']} {name} {sorter} seed {seed}", flush=True)
                    scores = sort_row(recording, reference, config, sorter, seed, work)
                    rows.append({"recording": spec["name"], "probe": spec["name"], "codec": name, "config": config,
                                 "kind": "sorting", "real": True, "reference_seed": seeds[0], "sorter": sorter, "seed": seed,
                                 **scores})
                    done.add(key)
                    save(rows, argv)
    return rows

def hardware(argv):
    """The encoder at 1024 channels x 20 kHz on one core, and the N1 verdict rows from its real bytes.

    The 1024 channels are the first 10 s of nn32_seed301 tiled 32 times on a 32 x 32 grid of 20 um
    pitch, each tile shifted in time by a different offset (circularly), read as 20 kHz (so the spike
    rate per channel is MEArec's Neuronexus-32 one); one 10 s
    chunk through the codec's own encode(), one thread, CPU time of this process. The latency row is
    judged after the snippet window closes (the window is stated): nothing is buffered past it, so
    the latency is the time to code a spike, measured as the per-spike stages' CPU time (features,
    online codebook search and update, residual, their rANS coding: the payload after detection)
    over the spikes, on one host core, without queueing.
    """
    import threadpoolctl

    import spikeinterface_vqcompress as vq
    from spikeinterface_vqcompress.core.codecs.spike_cae.background import channel_offsets, remove_offsets
    from spikeinterface_vqcompress.core.hardware import hardware_report

    spec = RECORDINGS[0]
    recording, _ = load_simulated(WORK / f"{spec['name']}.h5", spec)
    sampling_frequency, duration_s = 20000, 10
    first = recording.get_traces(end_frame=sampling_frequency * duration_s)
    # tile k shifted by k x 0.31 s (circularly): tiles 20 um apart hold no simultaneous identical spikes,
    # which locally exclusive detection would merge (the unshifted tiling kept about half the spikes)
    traces = np.ascontiguousarray(np.concatenate([np.roll(first, k * 6203, axis=0) for k in range(32)], axis=1))
    x, y = np.meshgrid(np.arange(32) * 20.0, np.arange(32) * 20.0)
    locations = np.stack([x.ravel(), y.ravel()], axis=1).tolist()
    rows = []
    from spikeinterface_vqcompress.core.registry import PRESETS

    for config in ({"id": "spike-vq"}, {"id": "spike-vq", "background_samples": 8192}, {"id": "spike-vq", "residual_step": None},
                   PRESETS["implant"].config):
        codec = vq.get_codec({**config, "channel_locations": locations, "snippet_samples": 64})
        with threadpoolctl.threadpool_limits(1):
            start = time.process_time()
            payload = codec.encode(traces)
            encode_cpu_s = time.process_time() - start
            # the per-spike stages alone (features, online codebook, residuals, their entropy coding), after detection
            _, _, snippets, noise_levels = codec.detect(traces)
            centred = remove_offsets(traces, channel_offsets(traces))
            start = time.process_time()
            codec._encode_payload(snippets, noise_levels, centred)
            spike_stage_cpu_s = time.process_time() - start
        spikes = len(snippets)
        report = hardware_report(codec, num_channels=1024, sampling_frequency=sampling_frequency, adc_bits=10,
                                 compressed_nbytes=len(payload), duration_s=duration_s, encode_time_s=encode_cpu_s, num_chunks=1,
                                 event_rate_hz_per_channel=spikes / duration_s / 1024, event_processing_s=spike_stage_cpu_s / spikes)
        rows.append({"config": config, "payload_bytes": len(payload), "encode_cpu_s": encode_cpu_s, "spikes": spikes,
                     "spike_stage_cpu_s": spike_stage_cpu_s, "realtime_factor_one_core": duration_s / encode_cpu_s,
                     "report": report.to_dict(), "verdicts": report.verdict_table()})
        print(label(config), f"{duration_s / encode_cpu_s:.2f}x real time", report.verdict_table(), flush=True)
    payload = {"command": command_line("benchmarks/spike_vq.py", argv), "rows": rows, "note": hardware.__doc__}
    lines = ["# spike-vq at 1024 channels x 20 kHz: encoder speed on one core and the N1 budget", "", hardware.__doc__.strip(), "",
             "Bytes are the chunk payloads (the container adds a header and an index: 0.1 % here).", ""]
    for row in rows:
        lines += [f"## {label(row['config'])}", "",
                  f"encoder {row['realtime_factor_one_core']:.2f}x real time on one core; {row['payload_bytes']} bytes for 10 s; "
                  f"{row['spikes']} spikes, the per-spike stages {1e6 * row['spike_stage_cpu_s'] / row['spikes']:.0f} us per spike "
                  f"(mean, one core; the snippet window {row['report']['window_ms']:.2f} ms)", "",
                  row["verdicts"], ""]
    write_results(RESULTS, f"{NAME}_hardware", payload, markdown="\n".join(lines))


# -- tables and plot ---------------------------------------------------------------------------------
def summary(rows):
    """Per (probe, codec, sorter): mean over recordings and seeds of raw and rebuilt scores, paired."""
    sorting = [row for row in rows if row["kind"] == "sorting" and not row.get("real")]
    raw = {(row["recording"], row["sorter"], row["seed"]): row for row in sorting if row["codec"] == "raw"}
    table = {}
    for row in sorting:
        if row["codec"] == "raw" or (row["recording"], row["sorter"], row["seed"]) not in raw:
            continue
        base = raw[(row["recording"], row["sorter"], row["seed"])]
        entry = table.setdefault((row["probe"], row["codec"], row["sorter"]), {"pairs": [], "config": row["config"]})
        entry["pairs"].append((base, row))
    ratios = {}
    for row in rows:
        if row["kind"] == "ratio_60s" and not row.get("real"):
            ratios.setdefault((row["probe"], row["codec"]), []).append(row)
    ratios30 = {}
    for row in rows:
        if row["kind"] == "ratio_30s":
            ratios30.setdefault((row["probe"], row["codec"]), []).append(row["ratio_int16"])
    out = []
    for (probe, codec, sorter), entry in sorted(table.items()):
        pairs = entry["pairs"]
        raw_accuracy = np.array([base["accuracy_mean"] for base, _ in pairs])
        rebuilt_accuracy = np.array([row["accuracy_mean"] for _, row in pairs])
        ratio_rows = ratios.get((probe, codec), [])
        out.append({
            "probe": probe, "codec": codec, "config": entry["config"], "sorter": sorter, "runs": len(pairs),
            "recordings": len({row["recording"] for _, row in pairs}),
            "ratio_int16": float(np.mean([r["ratio_int16"] for r in ratio_rows])) if ratio_rows else float("nan"),
            "ratio_int16_30s": float(np.mean(ratios30.get((probe, codec), [np.nan]))),
            "encode_x_realtime": float(np.mean([r["encode_x_realtime"] for r in ratio_rows])) if ratio_rows else float("nan"),
            "accuracy_raw": float(raw_accuracy.mean()), "accuracy_rebuilt": float(rebuilt_accuracy.mean()),
            "delta": float((rebuilt_accuracy - raw_accuracy).mean()), "delta_std": float((rebuilt_accuracy - raw_accuracy).std()),
            "precision": float(np.mean([row["precision_mean"] for _, row in pairs])),
            "recall": float(np.mean([row["recall_mean"] for _, row in pairs])),
            "units_raw": float(np.mean([base["num_sorted_units"] for base, _ in pairs])),
            "units_rebuilt": float(np.mean([row["num_sorted_units"] for _, row in pairs])),
            "fp_raw": float(np.mean([base["num_false_positive"] for base, _ in pairs])),
            "fp_rebuilt": float(np.mean([row["num_false_positive"] for _, row in pairs])),
        })
    return out


def markdown(rows) -> str:
    lines = ["# spike-vq, spike-pca, spike-cae on held-out MEArec recordings", "",
             "Recordings never used to train the spike-vq prior or to tune any parameter: Neuronexus-32 (the demo's "
             "template library, recording seeds 301-303) and Neuropixels-64 (template seed 7, recording seeds 311-313), "
             "20 units, 60 s. Ratios from the real container bytes (header, index, times, channels, background "
             "statistics, codes, escapes: everything the decoder reads), each codec's default chunk (10 s for spike-vq and spike-pca, 1 s for spike-cae), chunks coded independently; "
             "`vs 10-bit ADC` = int16 ratio x 10/16. Accuracy: mean ground-truth accuracy, raw and rebuilt sorted in "
             "the same run with the same seed, averaged over recordings and seeds (`runs`); Δ ± spread over the runs. "
             "FP = false-positive units.", ""]
    lines += ["| probe | codec | sorter | runs | ratio vs int16 (60 s) | vs 10-bit ADC | ratio 30 s | encode ×RT | "
              "accuracy raw | rebuilt | Δ | precision | recall | units raw → rebuilt | FP raw → rebuilt |",
              "|---|---|---|---|---|---|---|---|---|---|---|---|---|---|---|"]
    for entry in summary(rows):
        lines.append(f"| {entry['probe']} | {entry['codec']} | {entry['sorter']} | {entry['runs']} | {entry['ratio_int16']:.0f} | "
                     f"{entry['ratio_int16'] * 10 / 16:.0f} | {entry['ratio_int16_30s']:.0f} | {entry['encode_x_realtime']:.0f} | "
                     f"{entry['accuracy_raw']:.3f} | {entry['accuracy_rebuilt']:.3f} | {entry['delta']:+.3f} ± {entry['delta_std']:.3f} | "
                     f"{entry['precision']:.3f} | {entry['recall']:.3f} | {entry['units_raw']:.1f} → {entry['units_rebuilt']:.1f} | "
                     f"{entry['fp_raw']:.1f} → {entry['fp_rebuilt']:.1f} |")
    lines += real_markdown(rows)
    return "\n".join(lines) + "\n"



def real_markdown(rows) -> list[str]:
    """Lines of the real recordings' table (empty without real rows)."""
    sorting = [row for row in rows if row["kind"] == "sorting" and row.get("real")]
    if not sorting:
        return []
    lines = ["", "## Real recordings (agreement with the raw sorting)", "",
             "No ground truth: each sorter's sorting of the raw recording with its first seed is the reference, and each "
             "run is scored against it (accuracy of the reference's units). `raw, other seeds`: the raw recording sorted "
             "with the other seeds, the sorter's own repeatability (the ceiling); rebuilt: mean ± spread over every seed "
             "(the first seed's rebuilt run is the same sorter run as the reference, on the rebuilt recording). Units: "
             "the reference's → mean of the runs; unmatched: units with no match in the reference. Ratio: the whole "
             "recording's container vs int16.", "",
             "| recording | sorter | codec | band-pass Hz | ratio vs int16 | seeds | agreement | units | unmatched units |",
             "|---|---|---|---|---|---|---|---|---|"]
    ratios = {(row["recording"], row["codec"]): row for row in rows if row["kind"] == "ratio_60s" and row.get("real")}
    groups = {}
    for row in sorting:
        groups.setdefault((row["recording"], row["sorter"]), {}).setdefault(row["codec"], []).append(row)
    for (recording, sorter), codecs in sorted(groups.items()):
        raw = codecs.get("raw", [])
        reference_seed = raw[0]["reference_seed"] if raw else None
        reference_units = next((row["num_sorted_units"] for row in raw if row["seed"] == reference_seed), float("nan"))
        others = [row for row in raw if row["seed"] != reference_seed]
        if others:
            agreement = np.array([row["accuracy_mean"] for row in others])
            lines.append(f"| {recording} | {sorter} | raw, other seeds | | 1 | {','.join(str(row['seed']) for row in others)} | "
                         f"{agreement.mean():.3f} ± {agreement.std():.3f} | {reference_units:.0f} → "
                         f"{np.mean([row['num_sorted_units'] for row in others]):.1f} | "
                         f"{np.mean([row['num_false_positive'] for row in others]):.1f} |")
        for codec, runs in sorted(codecs.items()):
            if codec == "raw":
                continue
            agreement = np.array([row["accuracy_mean"] for row in runs])
            ratio = ratios.get((recording, codec), {}).get("ratio_int16", float("nan"))
            band = ratios.get((recording, codec), {}).get("bandpass_hz")
            band = "none" if band is None else f"{band[0]:g}-{band[1]:g}"
            lines.append(f"| {recording} | {sorter} | {codec} | {band} | {ratio:.0f} | {','.join(str(row['seed']) for row in runs)} | "
                         f"{agreement.mean():.3f} ± {agreement.std():.3f} | {reference_units:.0f} → "
                         f"{np.mean([row['num_sorted_units'] for row in runs]):.1f} | "
                         f"{np.mean([row['num_false_positive'] for row in runs]):.1f} |")
    for (recording, codec), row in sorted(ratios.items()):
        if "error" in row:
            lines.append(f"\n`{codec}` cannot code {recording}: {row['error']}")
    return lines

def plot(rows):
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    entries = summary(rows)
    probes = sorted({entry["probe"] for entry in entries})
    sorters = sorted({entry["sorter"] for entry in entries})
    if not entries:
        return
    figure, axes = plt.subplots(len(sorters), len(probes), figsize=(6 * len(probes), 4 * len(sorters)), squeeze=False)
    for row_index, sorter in enumerate(sorters):
        for column, probe in enumerate(probes):
            axis = axes[row_index][column]
            for family, marker in (("spike-vq", "o-"), ("spike-pca", "s--"), ("spike-cae", "^")):
                points = sorted([(entry["ratio_int16"] * 10 / 16, entry["delta"]) for entry in entries
                                 if entry["probe"] == probe and entry["sorter"] == sorter and entry["codec"].startswith(family + "(")])
                if points:
                    axis.plot(*zip(*points), marker, label=family)
            axis.axhline(-0.02, color="grey", linestyle=":", label="target: -0.02")
            axis.axvline(200, color="grey", linestyle="-.", label="target: 200x vs 10 bit")
            axis.set_xscale("log")
            axis.set_xlabel("ratio vs 10-bit ADC")
            axis.set_ylabel("Δ mean accuracy (rebuilt - raw)")
            axis.set_title(f"{probe}, {sorter}")
            axis.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(RESULTS / f"{NAME}.png", dpi=100)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--stage", choices=["curve", "repeat", "real", "table", "hardware"], default="curve")
    parser.add_argument("--sorters", nargs="+", default=["tridesclous2"])
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--point", default=None,
                        help="JSON config of the point to repeat (repeat stage) or to add to the real recordings (real stage)")
    parser.add_argument("--recordings", nargs="+", default=None, help="names of the recordings to run (default: all)")
    parser.add_argument("--rerun", action="store_true",
                        help="repeat stage: measure the point's rows again (ratios and these sorters' seeds) after a codec change")
    args = parser.parse_args(argv)
    recordings = [spec for spec in RECORDINGS if args.recordings is None or spec["name"] in args.recordings]
    if args.stage == "table":
        save(load_rows(), argv)
    elif args.stage == "hardware":
        hardware(argv)
    elif args.stage == "curve":
        run(CURVE_POINTS, args.sorters, args.seeds, argv, recordings)
    elif args.stage == "real":  # every curve point, or only --point (e.g. a preset chosen after the curve)
        run_real([json.loads(args.point)] if args.point else CURVE_POINTS, args.sorters, args.seeds, argv)
    else:
        run([json.loads(args.point)], args.sorters, args.seeds, argv, recordings, with_ratios=True, rerun=args.rerun)


if __name__ == "__main__":
    main()
