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
  background, and with the background's spatial correlation kept (``noise_neighbours``), on the real recordings.

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

Resumable: rows are written after each recording; a recording already in the results is skipped
(``--force`` runs it again). ::

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
"""

from __future__ import annotations

import argparse
import json
import time

import numpy as np

from common import RESULTS, SHARED_DATA, WORK, command_line, load_simulated, locust_recording, write_results

NAME = "storage_noise_fill"
TUNING = [{"name": "nn32_tuning_seed401", "probe": "Neuronexus-32", "num_units": 20, "duration_s": 60.0, "seed": 401,
           "templates_seed": 8, "num_templates_per_cell": 10}]
HELDOUT = [
    *({"name": f"nn32_seed{seed}", "probe": "Neuronexus-32", "num_units": 20, "duration_s": 60.0, "seed": seed,
       "templates_seed": 0, "num_templates_per_cell": 10} for seed in (301, 302, 303)),
    *({"name": f"np64_seed{seed}", "probe": "Neuropixels-64", "num_units": 20, "duration_s": 60.0, "seed": seed,
       "templates_seed": 7, "num_templates_per_cell": 10} for seed in (311, 312, 313)),
]
REAL = [{"name": "locust_tetrode"}, {"name": "openephys_16ch"}]
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
EXPERIMENTS = {
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


def load_real(name):
    """``(recording, None)`` of one of :data:`REAL` (None when its files are absent)."""
    if name == "locust_tetrode":
        return locust_recording(WORK / "storage_locust_binary", quick=False), None
    folder = SHARED_DATA / "openephys_legacy_16ch"
    if not folder.is_dir():
        return None, None
    import probeinterface as pi
    import spikeinterface.extractors as se

    recording = se.read_openephys(folder)
    probe = pi.generate_linear_probe(num_elec=recording.get_num_channels(), ypitch=25.0)
    probe.set_device_channel_indices(np.arange(recording.get_num_channels()))
    recording.set_probe(probe, in_place=True)
    return recording, None


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


def run_recording(spec, plan, n_jobs, experiment, point_indices=None, real=False):
    from spikeinterface_vqcompress import compress
    from spikeinterface_vqcompress.evaluation import codec_label, evaluate_codecs
    from spikeinterface_vqcompress.evaluation.sorting import run_seeded_sorter

    if real:
        recording, _ = load_real(spec["name"])
        if recording is None:
            print(f"{spec['name']}: not in {SHARED_DATA}, skipped")
            return []
    else:
        recording, gt_sorting = load_simulated(WORK / f"{spec['name']}.h5", spec)
    raw_mad = bandpassed_mad(recording)
    points, name = EXPERIMENTS[experiment]["points"], EXPERIMENTS[experiment]["name"]
    if point_indices:
        points = [points[index] for index in point_indices]
    if real:
        points = [scaled_to_noise(config, raw_mad) for config in points]
    signal = {}
    for config in points:
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
                                  n_jobs=n_jobs, progress_bar=False, verbose=True, rebuilt_to_binary=True)
        for config, result in zip(points, results):
            result.update(signal[codec_label(config)], recording=spec["name"], raw_mad=raw_mad,
                          scored_against=(f"the raw recording sorted by {sorter} seed {seeds[0]} (agreement; raw rows: "
                                          "raw vs raw)" if real else "ground truth"))
            rows.append(result)
        print(f"{spec['name']} {sorter}: {time.perf_counter() - t0:.0f} s", flush=True)
    return rows


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
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    experiment = EXPERIMENTS[args.experiment]
    path = RESULTS / f"{experiment['name']}.json"
    saved = json.loads(path.read_text()) if path.is_file() else {"rows": [], "commands": []}
    rows = saved["rows"]
    for spec in {"tuning": TUNING, "heldout": HELDOUT, "real": REAL}[args.stage]:
        if args.only and spec["name"] not in args.only:
            continue
        if any(row["recording"] == spec["name"] for row in rows) and not args.force:
            print(f"{spec['name']}: in the results already (--force runs it again)")
            continue
        new = run_recording(spec, parse_plan(args.plan), args.n_jobs, args.experiment, args.points, args.stage == "real")
        if not new:
            continue
        for row in new:
            row["stage"] = args.stage
        rows = [row for row in rows if row["recording"] != spec["name"]] + new
        commands = saved["commands"] + [command_line("benchmarks/storage_noise_fill.py", argv)]
        write_results(args.output, experiment["name"], {"rows": rows, "commands": commands},
                      markdown=lambda: markdown(rows, experiment["title"]))


if __name__ == "__main__":
    main()
