"""Noise fill and spike windows for lossy storage (issue 29): do they keep the sorters' units?

Past about the noise MAD, ``broadband``'s ``max_error`` quantises the background to near silence, the
sorters' noise-relative thresholds fall with it and they cut extra units. ``noise_fill=True`` adds
back noise of the removed shape and level (``spikeinterface_vqcompress/core/codecs/broadband/noise.py``).
Experiments (``--experiment``):

- ``noise-fill`` (``results/storage_noise_fill``): each ``max_error`` with and without noise fill;
- ``spike-windows`` (``results/storage_spike_windows``): spike windows (``spike_error``, the samples
  around each channel's spike events coded tighter, :mod:`spikeinterface_vqcompress.core.codecs.broadband.spikes`)
  with a loose, noise-filled background, against the uniform bound at the same ratios;
- ``lowpass-background`` (``results/storage_lowpass_background``): the same windows with only the low band
  of the coarse background kept and the rest synthesised (``lowpass_background``), against noise fill
  on the coarse background; windows spread to the spikes' weaker channels (``spike_spread``);
- ``lowpass-spatial`` (``results/storage_lowpass_spatial``): the low-pass background setting again, with the
  encoder's noise measured on the original's high band (after ``storage_lowpass_background`` was measured),
  with and without ``noise_neighbours=8``;
- ``storage-preset`` (``results/storage_preset_real``, stage ``real``): the ``storage`` preset as users get it
  (a preset carries no bound to scale);
- ``real-bounds`` (``results/storage_real_bounds``, stage ``real``): the uniform bound at about half and one
  noise level against tight spike windows (``spike_error`` ~0.25 noise levels) with and without the low-pass
  background, and with the background's spatial correlation kept (``noise_neighbours``), on the real recordings;
- ``curve`` (``results/storage_curve``, ``.png``): the ratio-accuracy curve of every lossy mode (the uniform
  bound, noise fill, spike windows with the low-pass background at three rates) next to WavPack hybrid
  (bps 3 and 2.25, WavPack's floor: 2.0 codes the same bytes) and bit truncation (5-8 bits dropped), in
  one run per recording, on one plot.

Every point is measured in one run per recording, raw sorted in the same run:

- ratio vs int16; band-passed (300-6000 Hz) noise MAD of the decoded recording / the raw one (the
  statistic sorters' thresholds follow); maximum error;
- tridesclous2 and spykingcircus2 (seeds in ``--plan``): mean accuracy, units sorted, false-positive units.

Stages (``--stage``):

- ``tuning``: ``nn32_tuning_seed401`` (Neuronexus-32, 20 units, 60 s, template library seed 8), the
  recording settings are chosen on; never reported as an evaluation;
- ``heldout``: the spike-vq benchmark's held-out recordings (``nn32_seed301-303``, ``np64_seed311-313``,
  never used for tuning anything here);
- ``real``: the real recordings in ``../shared/data`` (locust tetrode trial 01, 4 ch, 15 kHz, 28.8 s; Open Ephys
  16 ch, 40 kHz, 3.3 s). No ground truth: each sorter's run on the raw recording with its first seed is the
  reference, and every run (raw and rebuilt, each seed of ``--plan``) is scored as agreement with it; the raw
  rows are then the sorter's own raw-vs-raw agreement, the ceiling. The bounds of each point (``max_error``,
  ``spike_error``), set in stored units on the tuning recording, are scaled by the recording's noise level
  (band-passed MAD) over the tuning recording's (:data:`TUNING_NOISE`): real recordings' noise in stored
  units differs 2-6x from MEArec's (locust ~52, Open Ephys ~195, MEArec ~30).

Resumable: rows are written after each recording and sorter; a recording's sorter already in the results
is skipped (``--force`` runs the recording again). A sorter that fails on a rebuilt recording (spykingcircus2
finds nothing to cluster in 8 dropped bits) is scored as a sorting with no unit, its error kept. ::

    python benchmarks/storage_noise_fill.py --stage tuning
    python benchmarks/storage_noise_fill.py --experiment spike-windows --stage tuning
    python benchmarks/storage_noise_fill.py --experiment lowpass-background --stage tuning
    python benchmarks/storage_noise_fill.py --stage heldout --plan tridesclous2:0,1,2 spykingcircus2:0,1,2
    python benchmarks/storage_noise_fill.py --experiment lowpass-background --stage heldout --points 3 \
        --plan tridesclous2:0 spykingcircus2:0
    python benchmarks/storage_noise_fill.py --experiment lowpass-background --stage real --points 3 \
        --plan tridesclous2:0,1 spykingcircus2:0,1
    python benchmarks/storage_noise_fill.py --experiment lowpass-spatial --stage heldout --only nn32_seed301
    python benchmarks/storage_noise_fill.py --experiment real-bounds --stage real --plan tridesclous2:0,1 spykingcircus2:0,1
    python benchmarks/storage_noise_fill.py --experiment curve --stage heldout --plan tridesclous2:0,1 spykingcircus2:0,1,2
    python benchmarks/storage_noise_fill.py --experiment curve --render   # markdown and plot from the JSON
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np

from common import REAL_RECORDINGS, RESULTS, SHARED_DATA, WORK, command_line, load_simulated, real_recording, write_results

NAME = "storage_noise_fill"
TUNING = [{"name": "nn32_tuning_seed401", "probe": "Neuronexus-32", "num_units": 20, "duration_s": 60.0, "seed": 401,
           "templates_seed": 8, "num_templates_per_cell": 10}]
HELDOUT = [
    *({"name": f"nn32_seed{seed}", "probe": "Neuronexus-32", "num_units": 20, "duration_s": 60.0, "seed": seed,
       "templates_seed": 0, "num_templates_per_cell": 10} for seed in (301, 302, 303)),
    *({"name": f"np64_seed{seed}", "probe": "Neuropixels-64", "num_units": 20, "duration_s": 60.0, "seed": seed,
       "templates_seed": 7, "num_templates_per_cell": 10} for seed in (311, 312, 313)),
]
REAL = REAL_RECORDINGS
#: band-passed noise level (stored units) of the tuning recording, where the points' bounds were chosen
TUNING_NOISE = 30.5
POINTS = [{"id": "broadband", "max_error": max_error, **({"noise_fill": True} if fill else {})}
          for max_error in (32, 48, 64) for fill in (False, True)]
SPIKE_WINDOW_POINTS = [
    {"id": "broadband", "max_error": 48, "noise_fill": True},  # the uniform bound at ~30x
    {"id": "broadband", "max_error": 64, "spike_error": 8, "noise_fill": True},
    {"id": "broadband", "max_error": 96, "spike_error": 8, "noise_fill": True},
    {"id": "broadband", "max_error": 96, "spike_error": 16, "noise_fill": True},
    {"id": "broadband", "max_error": 96, "spike_error": 16},  # the same windows, background not filled
]
LOWPASS_POINTS = [
    {"id": "broadband", "max_error": 96, "spike_error": 8, "noise_fill": True},  # noise fill on the coarse background
    {"id": "broadband", "max_error": 96, "spike_error": 8, "noise_fill": True, "lowpass_background": True},
    {"id": "broadband", "max_error": 96, "spike_error": 16, "noise_fill": True, "lowpass_background": True,
     "spike_spread": 2.5, "spike_before": 20, "spike_after": 45},
    {"id": "broadband", "max_error": 96, "spike_error": 24, "noise_fill": True, "lowpass_background": True,
     "spike_spread": 2.0, "spike_before": 15, "spike_after": 40},
]
#: for the real recordings (bounds scaled by their noise level, :func:`scaled_to_noise`): the uniform bound at
#: about half and one noise level (the ``storage`` preset's 16 and twice it, in the tuning recording's units)
#: next to the spike-window modes
REAL_POINTS = [
    {"id": "broadband", "max_error": 16},
    {"id": "broadband", "max_error": 32},
    {"id": "broadband", "max_error": 96, "spike_error": 8, "noise_fill": True, "lowpass_background": True,
     "spike_spread": 2.0, "spike_before": 15, "spike_after": 40},
    {"id": "broadband", "max_error": 96, "spike_error": 8, "noise_fill": True, "spike_spread": 2.0, "spike_before": 15,
     "spike_after": 40},
    # the same with the background's correlation across channels kept (noise_neighbours)
    {"id": "broadband", "max_error": 96, "spike_error": 8, "noise_fill": True, "lowpass_background": True,
     "spike_spread": 2.0, "spike_before": 15, "spike_after": 40, "noise_neighbours": 8},
    {**LOWPASS_POINTS[3], "noise_neighbours": 8},
]
#: one ratio-accuracy curve per lossy mode, next to the anchors (WavPack hybrid, bit truncation), in one run
CURVE_POINTS = [
    *({"id": "wavpack", "bps": bps} for bps in (3.0, 2.25)),  # 2.0 gives 2.25's bytes (7.03x, the same RMSE)
    *({"id": "bit-truncation", "num_bits": num_bits} for num_bits in (5, 6, 7, 8)),
    *({"id": "broadband", "max_error": max_error} for max_error in (16, 32, 48)),
    {"id": "broadband", "max_error": 48, "noise_fill": True},
    LOWPASS_POINTS[2],
    LOWPASS_POINTS[3],
    {**LOWPASS_POINTS[3], "max_error": 160, "spike_error": 40},
]
EXPERIMENTS = {
    "curve": {"name": "storage_curve", "points": CURVE_POINTS,
              "title": "Ratio against sorting: every lossy mode next to WavPack hybrid and bit truncation (one run)"},
    "noise-fill": {"name": NAME, "points": POINTS, "title": "Noise fill for lossy storage (broadband)"},
    "spike-windows": {"name": "storage_spike_windows", "points": SPIKE_WINDOW_POINTS,
                      "title": "Spike windows for lossy storage (broadband)"},
    "lowpass-background": {"name": "storage_lowpass_background", "points": LOWPASS_POINTS,
                           "title": "Low-pass background for lossy storage (broadband)"},
    "lowpass-spatial": {"name": "storage_lowpass_spatial",
                        "points": [LOWPASS_POINTS[3], {**LOWPASS_POINTS[3], "noise_neighbours": 8}],
                        "title": "Low-pass background after the noise-level fix, with and without noise_neighbours (broadband)"},
    "storage-preset": {"name": "storage_preset_real", "points": [{"id": "storage"}],
                       "title": "The storage preset (broadband max_error=16, not scaled) on real recordings"},
    "real-bounds": {"name": "storage_real_bounds", "points": REAL_POINTS,
                    "title": "Uniform bound and spike windows on real recordings (broadband)"},
}


def spike_window_fraction(recording, config, duration_s: float = 10.0) -> float | None:
    """Fraction of the first seconds' samples inside spike windows (None without ``spike_error``)."""
    if config.get("spike_error") is None:
        return None
    from spikeinterface_vqcompress.core.codecs.broadband.spikes import detect_events, zone_mask

    fs = recording.sampling_frequency
    chunk = int(fs)  # the codec's default chunk: one second
    fractions = []
    for start in range(0, int(min(duration_s * fs, recording.get_num_samples(0))) - chunk + 1, chunk):
        traces = recording.get_traces(start_frame=start, end_frame=start + chunk)
        events = detect_events(traces, config.get("spike_threshold", 3.5), fs, spread_threshold=config.get("spike_spread", 0.0))
        fractions.append(zone_mask(events, chunk, config.get("spike_before", 30), config.get("spike_after", 60)).mean())
    return float(np.mean(fractions))


def bandpassed_mad(recording, duration_s: float = 10.0) -> float:
    """Median over channels of the 300-6000 Hz band-passed noise level (MAD / 0.6745) of the first seconds."""
    import scipy.signal

    fs = recording.sampling_frequency
    traces = recording.get_traces(start_frame=0, end_frame=int(min(duration_s * fs, recording.get_num_samples(0)))).astype(float)
    sos = scipy.signal.butter(3, [300, min(6000, 0.45 * fs)], btype="band", fs=fs, output="sos")
    filtered = scipy.signal.sosfiltfilt(sos, traces, axis=0)
    return float(np.median(np.median(np.abs(filtered - np.median(filtered, axis=0)), axis=0) / 0.6745))


def scaled_to_noise(config, noise, reference_noise=TUNING_NOISE):
    """``config`` with its bounds (``max_error``, ``spike_error``) scaled by ``noise / reference_noise``."""
    config = dict(config)
    for key in ("max_error", "spike_error"):
        if config.get(key):
            config[key] = max(1, int(round(config[key] * noise / reference_noise)))
    return config


def parse_plan(items):
    plan = []
    for item in items:
        sorter, _, seeds = item.partition(":")
        plan.append((sorter, [int(seed) for seed in seeds.split(",")] if seeds else [0]))
    return plan


def run_recording(spec, plan, n_jobs, experiment, point_indices=None, real=False, signal=None):
    """Rows of one recording: every point of the experiment, sorted with each ``(sorter, seeds)`` of
    ``plan``; returns ``(rows, signal)`` (``signal``: per point, the decoded noise level and spike-window
    fraction, measured when not given, so that a resumed run measures it once). A sorter that fails on a
    rebuilt recording is scored as a sorting with no unit (its error kept in the repeat)."""
    from spikeinterface_vqcompress import compress
    from spikeinterface_vqcompress.evaluation import codec_label, evaluate_codecs
    from spikeinterface_vqcompress.evaluation.sorting import run_seeded_sorter

    if real:
        recording = real_recording(spec["name"])
        if recording is None:
            print(f"{spec['name']}: not in {SHARED_DATA}, skipped")
            return [], signal
    else:
        recording, gt_sorting = load_simulated(WORK / f"{spec['name']}.h5", spec)
    raw_mad = bandpassed_mad(recording)
    points, name = EXPERIMENTS[experiment]["points"], EXPERIMENTS[experiment]["name"]
    if point_indices:
        points = [points[index] for index in point_indices]
    if real:
        points = [scaled_to_noise(config, raw_mad) for config in points]
    signal = {} if signal is None else signal
    for config in points:
        if codec_label(config) not in signal:
            compressed = compress(recording, codec=config, progress_bar=False)
            signal[codec_label(config)] = {"mad_ratio": bandpassed_mad(compressed) / raw_mad,
                                           "spike_window_fraction": spike_window_fraction(recording, config)}
    rows = []
    for sorter, seeds in plan:
        t0 = time.perf_counter()
        if real:  # the reference: the raw recording sorted by the same sorter with its first seed
            gt_sorting = run_seeded_sorter(recording, sorter, seeds[0], WORK / f"{name}_{spec['name']}_{sorter}_reference")[0]
        results = evaluate_codecs(recording, gt_sorting, points, sorter=sorter, seeds=seeds,
                                  output_folder=WORK / f"{name}_{spec['name']}_{sorter}", adc_bits=16,
                                  n_jobs=n_jobs, progress_bar=False, verbose=True, rebuilt_to_binary=True,
                                  sorter_failure="score-empty")
        for config, result in zip(points, results):
            result.update(signal[codec_label(config)], recording=spec["name"], raw_mad=raw_mad,
                          scored_against=(f"the raw recording sorted by {sorter} seed {seeds[0]} (agreement; raw rows: "
                                          "raw vs raw)" if real else "ground truth"))
            rows.append(result)
        print(f"{spec['name']} {sorter}: {time.perf_counter() - t0:.0f} s", flush=True)
    return rows, signal


def markdown(rows, title) -> str:
    lines = [f"# {title}", "",
             "Each row: one recording, one sorter (mean over its seeds; raw sorted in the same run). MAD: band-passed "
             "noise level of the decoded recording / the raw one. Windows: fraction of the samples inside spike windows "
             "(first 10 s). Units: sorted (false positive), raw -> rebuilt. Real recordings (no ground truth): accuracy is the "
             "agreement with the raw recording's sorting by the same sorter's first seed, so the raw column is the sorter's "
             "raw-vs-raw agreement (its ceiling), and false positive means no match in that sorting; bounds scaled by the "
             "recording's noise level.", "",
             "| recording | sorter (seeds) | codec | ratio | MAD / raw | windows | max error | accuracy raw -> rebuilt | units raw -> rebuilt |",
             "|---|---|---|---|---|---|---|---|---|"]
    for row in rows:
        raw, rebuilt = row["raw"], row["compressed"]
        fraction = row.get("spike_window_fraction")
        lines.append(
            f"| {row['recording']} | {row['sorter']} ({','.join(map(str, row['seeds']))}) | {row['codec']} | "
            f"{row['compression_ratio']:.1f} | {row['mad_ratio']:.2f} | {'' if fraction is None else f'{fraction:.3f}'} | "
            f"{row.get('max_abs_error_stored', float('nan')):.0f} | "
            f"{raw['accuracy_mean']:.3f} -> {rebuilt['accuracy_mean']:.3f} | "
            f"{raw['num_sorted_units']:.1f} ({raw['num_false_positive']:.1f}) -> "
            f"{rebuilt['num_sorted_units']:.1f} ({rebuilt['num_false_positive']:.1f}) |")
    return "\n".join(lines) + "\n"


def curve_family(config: dict) -> str:
    """The lossy mode a point of :data:`CURVE_POINTS` belongs to (one line on the plot)."""
    if config["id"] == "wavpack":
        return "WavPack hybrid (bps)"
    if config["id"] == "bit-truncation":
        return "bit truncation (bits dropped)"
    if config.get("lowpass_background"):
        return "broadband spike windows + low-pass background"
    if config.get("noise_fill"):
        return "broadband max_error + noise fill"
    return "broadband max_error"


def probe_of(recording: str) -> str:
    """The probe part of a held-out recording's name (``nn32_seed301`` -> ``nn32``): targets are per probe."""
    return recording.split("_seed")[0]


def curve_summary(rows) -> list[dict]:
    """Per probe, point and sorter, over the probe's recordings: ratio, accuracy change and unit counts
    (means of the recordings' seed means) and the spread of the accuracy change across recordings."""
    groups = {}
    for row in rows:
        groups.setdefault((probe_of(row["recording"]), row["sorter"], row["codec"]), []).append(row)
    summary = []
    for (probe, sorter, codec), group in groups.items():
        change = np.array([row["compressed"]["accuracy_mean"] - row["raw"]["accuracy_mean"] for row in group])
        mean = lambda side, key: float(np.mean([row[side][key] for row in group]))  # noqa: E731
        summary.append({
            "probe": probe, "sorter": sorter, "codec": codec, "family": curve_family(group[0]["codec_config"]),
            "recordings": sorted(row["recording"] for row in group),
            "seeds": group[0]["seeds"], "compression_ratio": float(np.mean([row["compression_ratio"] for row in group])),
            "accuracy_change": float(change.mean()), "accuracy_change_min": float(change.min()),
            "accuracy_change_max": float(change.max()),
            "units_raw": mean("raw", "num_sorted_units"), "units_rebuilt": mean("compressed", "num_sorted_units"),
            "false_positive_raw": mean("raw", "num_false_positive"),
            "false_positive_rebuilt": mean("compressed", "num_false_positive"),
        })
    return sorted(summary, key=lambda item: (item["probe"], item["sorter"], item["family"], item["compression_ratio"]))


def curve_markdown(rows, title) -> str:
    lines = [f"# {title}", "",
             "Held-out MEArec recordings, the raw recording sorted in the same run. Per probe, point and sorter, over the "
             "probe's recordings listed: ratio vs int16, accuracy change (rebuilt - raw, mean of each recording's seed mean; "
             "[lowest, highest] recording), units sorted and false-positive units (raw -> rebuilt). Targets (issue 29): "
             ">= 30x, accuracy within 0.01, units within +10 %, false positives <= raw + 2. Plot: `storage_curve.png`.", "",
             "| probe | sorter (seeds) | mode | codec | recordings | ratio | accuracy change | units raw -> rebuilt | FP raw -> rebuilt |",
             "|---|---|---|---|---|---|---|---|---|"]
    for item in curve_summary(rows):
        lines.append(
            f"| {item['probe']} | {item['sorter']} ({','.join(map(str, item['seeds']))}) | {item['family']} | {item['codec']} | "
            f"{len(item['recordings'])} | {item['compression_ratio']:.1f} | {item['accuracy_change']:+.3f} "
            f"[{item['accuracy_change_min']:+.3f}, {item['accuracy_change_max']:+.3f}] | "
            f"{item['units_raw']:.1f} -> {item['units_rebuilt']:.1f} | "
            f"{item['false_positive_raw']:.1f} -> {item['false_positive_rebuilt']:.1f} |")
    return "\n".join(lines) + "\n\n" + markdown(rows, "Per recording")


#: the accuracy axis of the curve's plot stops here; points below are drawn on it with their value
CURVE_FLOOR = -0.15


def plot_curve(rows, path):
    """One figure: per sorter (rows), accuracy change and units sorted (rebuilt / raw) against the ratio
    vs int16, one line per lossy mode; the targets shaded."""
    import matplotlib
    import matplotlib.ticker

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    summary = curve_summary(rows)
    panels = sorted({(item["probe"], item["sorter"]) for item in summary})
    families = sorted({item["family"] for item in summary})
    markers = dict(zip(families, "osD^v<>"))
    figure, axes = plt.subplots(len(panels), 2, figsize=(12, 4 * len(panels)), squeeze=False)
    for axis_row, (probe, sorter) in zip(axes, panels):
        for family in families:
            points = [item for item in summary if item["sorter"] == sorter and item["probe"] == probe and item["family"] == family]
            ratios = [item["compression_ratio"] for item in points]
            change = np.array([item["accuracy_change"] for item in points])
            spread = np.array([[item["accuracy_change"] - item["accuracy_change_min"] for item in points],
                               [item["accuracy_change_max"] - item["accuracy_change"] for item in points]])
            shown = np.maximum(change, CURVE_FLOOR)  # a collapse (e.g. a sorter that finds nothing) sits on the floor
            line = axis_row[0].errorbar(ratios, shown, yerr=np.where(change > CURVE_FLOOR, spread, 0), marker=markers[family],
                                        capsize=3, label=family)
            for ratio, value in zip(ratios, change):
                if value < CURVE_FLOOR:
                    axis_row[0].annotate(f"{value:+.2f}", (ratio, CURVE_FLOOR), textcoords="offset points", xytext=(0, 6),
                                         ha="center", fontsize=7, color=line[0].get_color())
            axis_row[1].plot(ratios, [item["units_rebuilt"] / item["units_raw"] for item in points],
                             marker=markers[family], label=family)
        recordings = len(points[0]["recordings"]) if points else 0
        axis_row[0].axhspan(-0.01, 0.01, color="green", alpha=0.1)
        axis_row[0].set_ylabel(f"{sorter}: accuracy change")
        axis_row[1].axhspan(0.0, 1.10, color="green", alpha=0.1)
        axis_row[1].set_ylabel(f"{sorter}: units sorted, rebuilt / raw")
        highest = max([item["accuracy_change_max"] for item in summary if (item["probe"], item["sorter"]) == (probe, sorter)],
                      default=0.0)
        axis_row[0].set_ylim(CURVE_FLOOR - 0.01, max(0.06, highest + 0.02))
        for axis in axis_row:
            axis.set_xscale("log")
            axis.set_xticks([5, 7, 10, 15, 20, 30, 40, 50])
            axis.xaxis.set_major_formatter(matplotlib.ticker.ScalarFormatter())
            axis.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
            axis.axvline(30, color="grey", linestyle=":")
            axis.set_xlabel("compression ratio vs int16")
            axis.grid(alpha=0.3)
        axis_row[0].set_title(f"{probe}, {sorter}: {recordings} held-out recording{'' if recordings == 1 else 's'} (bars: lowest-highest)")
    axes[0][1].legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=90)
    plt.close(figure)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--experiment", choices=sorted(EXPERIMENTS), default="noise-fill")
    parser.add_argument("--stage", choices=["tuning", "heldout", "real"], default="tuning")
    parser.add_argument("--plan", nargs="+", default=["tridesclous2:0,1", "spykingcircus2:0"],
                        help="SORTER:SEED,SEED ... (default: tridesclous2 seeds 0-1, spykingcircus2 seed 0)")
    parser.add_argument("--only", nargs="+", default=None, help="recording names of the stage to run")
    parser.add_argument("--points", nargs="+", type=int, default=None,
                        help="indices of the experiment's points to run (default: all)")
    parser.add_argument("--force", action="store_true")
    parser.add_argument("--render", action="store_true", help="only rewrite the markdown (and plot) from the JSON")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    experiment = EXPERIMENTS[args.experiment]
    path = RESULTS / f"{experiment['name']}.json"
    saved = json.loads(path.read_text()) if path.is_file() else {"rows": [], "commands": []}
    rows = saved["rows"]
    if args.render:
        _write(args, experiment, rows, saved["commands"])
        return
    for spec in {"tuning": TUNING, "heldout": HELDOUT, "real": REAL}[args.stage]:
        if args.only and spec["name"] not in args.only:
            continue
        if args.force:
            rows = [row for row in rows if row["recording"] != spec["name"]]
        signal = None
        for sorter, seeds in parse_plan(args.plan):  # saved after each sorter: a resumed run skips the points done
            points = _missing_points(experiment, args.points, args.stage, [
                row for row in rows if row["recording"] == spec["name"] and row["sorter"] == sorter])
            if not points:
                print(f"{spec['name']} {sorter}: in the results already (--force runs it again)")
                continue
            new, signal = run_recording(spec, [(sorter, seeds)], args.n_jobs, args.experiment, points,
                                        args.stage == "real", signal)
            if not new:
                break
            for row in new:
                row["stage"] = args.stage
            rows = rows + new
            command = command_line("benchmarks/storage_noise_fill.py", argv)
            if command not in saved["commands"]:
                saved["commands"] = saved["commands"] + [command]
            _write(args, experiment, rows, saved["commands"])


def _missing_points(experiment, point_indices, stage, done_rows) -> list:
    """Indices of the experiment's points (``point_indices``, default all) with no row in ``done_rows``
    (one recording and sorter); on real recordings, whose points are scaled to their noise, all of them
    unless some row is there."""
    from spikeinterface_vqcompress.evaluation import codec_label

    indices = list(range(len(experiment["points"]))) if point_indices is None else list(point_indices)
    if stage == "real":
        return [] if done_rows else indices
    done = [_label_key(row["codec"]) for row in done_rows]

    def measured(index):  # a row's label may also spell out defaults the point leaves out
        name, parameters = _label_key(codec_label(experiment["points"][index]))
        return any(name == row_name and parameters <= row_parameters for row_name, row_parameters in done)

    return [index for index in indices if not measured(index)]


def _label_key(label: str):
    """A codec label's name and set of ``key=value`` parameters, whatever their order."""
    name, _, parameters = label.partition("(")
    return name, frozenset(item.strip() for item in parameters.rstrip(")").split(",") if item.strip())


def _write(args, experiment, rows, commands):
    """The experiment's JSON and markdown (and, for the curve, its plot)."""
    render = curve_markdown if args.experiment == "curve" else markdown
    write_results(args.output, experiment["name"], {"rows": rows, "commands": commands},
                  markdown=lambda: render(rows, experiment["title"]))
    if args.experiment == "curve":
        plot_curve(rows, Path(args.output) / f"{experiment['name']}.png")


if __name__ == "__main__":
    main()
