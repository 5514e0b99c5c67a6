"""The spike codecs' front end alone: raw snippets pasted on the synthesised background (issue 28, item 3).

Where do the extra units come from when the snippets themselves are exact? ``spike-cae`` with
``model="identity"`` sends the raw detected snippets (int16) and the background statistics, so
every difference from raw is the front end's: what is cut (the snippet's channels and samples) and
what replaces the rest (the synthesised background). Tuning recording only (MEArec Neuronexus-32,
templates seed 8, recording seed 401: never reported as evaluation); tridesclous2 seed 0, raw
sorted in the same run.

Per variant: the snippet shape, the fraction of samples sent, the band-passed (300-6000 Hz, what
the sorters threshold on) noise level of the rebuilt recording over the raw one (mean and lowest
channel), accuracy, units sorted and false-positive units, and what the false-positive units are:
split-off clusters of transmitted spikes (their rebuilt amplitude equals the raw one at the same
times) or artefacts of the rebuild (rebuilt amplitude well above the raw one).

    python benchmarks/spike_frontend.py
"""

from __future__ import annotations

import argparse
import json

import numpy as np

from common import RESULTS, WORK, command_line, load_simulated, write_results

NAME = "spike_frontend"
TUNING = {"name": "nn32_tuning_seed401", "probe": "Neuronexus-32", "num_units": 20, "duration_s": 60.0, "seed": 401,
          "templates_seed": 8, "num_templates_per_cell": 10}
VARIANTS = {
    "16 ch x 96 samples (the default shape at 32 kHz)": {"snippet_channels": 16, "snippet_samples": 96, "trough_sample": 32},
    "32 ch x 96 samples (every channel)": {"snippet_channels": 32, "snippet_samples": 96, "trough_sample": 32},
    "16 ch x 160 samples (5 ms)": {"snippet_channels": 16, "snippet_samples": 160, "trough_sample": 48},
}


def band_mad(traces: np.ndarray, sampling_frequency: float) -> np.ndarray:
    """Per-channel MAD / 0.6745 after a 300-6000 Hz band-pass (what sorters threshold on)."""
    from scipy.signal import butter, sosfiltfilt

    sos = butter(3, [300, 6000], btype="band", fs=sampling_frequency, output="sos")
    filtered = sosfiltfilt(sos, traces.astype(np.float64), axis=0)
    return np.median(np.abs(filtered - np.median(filtered, axis=0)), axis=0) / 0.6745


def false_positive_kinds(sorting, comparison, rebuilt_traces, raw_traces) -> dict:
    """False-positive units split by what they hold: transmitted spikes (rebuilt amplitude within 10 %
    of the raw one at the same times) or rebuild artefacts (rebuilt amplitude above 1.5x the raw one)."""
    num_samples = raw_traces.shape[0]
    kinds = {"split_off": 0, "artefact": 0, "other": 0, "units": []}
    for unit in comparison.get_false_positive_units():
        train = sorting.get_unit_spike_train(unit)
        train = train[(train > 40) & (train < num_samples - 60)]
        if train.size == 0:
            kinds["other"] += 1
            continue
        window = train[:, None] + np.arange(-30, 60)[None, :]
        rebuilt = rebuilt_traces[window].mean(axis=0)
        channel = int(np.argmax(np.abs(rebuilt).max(axis=0)))
        rebuilt_amplitude = float(np.abs(rebuilt[:, channel]).max())
        raw_amplitude = float(np.abs(raw_traces[window].mean(axis=0)[:, channel]).max())
        kind = ("split_off" if abs(rebuilt_amplitude - raw_amplitude) <= 0.1 * raw_amplitude
                else "artefact" if rebuilt_amplitude > 1.5 * raw_amplitude else "other")
        kinds[kind] += 1
        kinds["units"].append({"unit": str(unit), "spikes": int(train.size), "rebuilt_amplitude": rebuilt_amplitude,
                               "raw_amplitude": raw_amplitude, "kind": kind})
    return kinds


def run(argv=None) -> dict:
    import spikeinterface.core as sc
    from spikeinterface.comparison import compare_sorter_to_ground_truth

    import spikeinterface_vqcompress as vq
    from spikeinterface_vqcompress.evaluation.sorting import run_seeded_sorter, score_sorting

    work = WORK / NAME
    recording, gt_sorting = load_simulated(WORK / f"{TUNING['name']}.h5", TUNING)
    fs = recording.get_sampling_frequency()
    raw_traces = recording.get_traces()
    raw_mad = band_mad(raw_traces, fs)
    targets = {"raw": (recording, None)}
    for label, shape in VARIANTS.items():
        config = {"id": "spike-cae", "model": "identity", **shape}
        rebuilt = vq.compress(recording, codec=config, progress_bar=False)
        targets[label] = (rebuilt.save(folder=work / f"rebuilt_{shape['snippet_channels']}x{shape['snippet_samples']}",
                                       overwrite=True, progress_bar=False), {**shape, "ratio": rebuilt.compression_ratio})
    rows = []
    for label, (target, shape) in targets.items():
        print(label, flush=True)
        folder = work / f"sorter_{len(rows)}"
        sorting, _ = run_seeded_sorter(target, "tridesclous2", 0, folder, job_kwargs={"n_jobs": 2, "progress_bar": False})
        scores = score_sorting(gt_sorting, sorting)
        traces = target.get_traces()
        mad = band_mad(traces, fs) / raw_mad
        comparison = compare_sorter_to_ground_truth(gt_sorting, sorting, exhaustive_gt=True)
        row = {"variant": label, **(shape or {}), **scores, "band_mad_ratio_mean": float(mad.mean()),
               "band_mad_ratio_min": float(mad.min())}
        if shape is not None:
            row["false_positive_kinds"] = false_positive_kinds(sorting, comparison, traces, raw_traces)
        rows.append(row)
    payload = {"command": command_line("benchmarks/spike_frontend.py", argv), "recording": TUNING, "sorter": "tridesclous2 seed 0",
               "rows": rows, "note": __doc__}
    write_results(RESULTS, NAME, payload, markdown=lambda: markdown(payload))
    return payload


def markdown(payload) -> str:
    lines = ["# The spike front end alone: raw snippets on the synthesised background (tuning recording)", "",
             " ".join(__doc__.split("\n\n")[1].split()), "", f"Command: `{payload['command']}`.", "",
             "| variant | ratio vs int16 | band-passed MAD rebuilt / raw (mean, lowest channel) | accuracy | units | false-positive units | of which split-off / artefact |",
             "|---|---|---|---|---|---|---|"]
    for row in payload["rows"]:
        kinds = row.get("false_positive_kinds")
        lines.append(f"| {row['variant']} | {row.get('ratio', float('nan')):.1f} | {row['band_mad_ratio_mean']:.3f}, {row['band_mad_ratio_min']:.3f} | "
                     f"{row['accuracy_mean']:.3f} | {row['num_sorted_units']} | {row['num_false_positive']} | "
                     + (f"{kinds['split_off']} / {kinds['artefact']}" if kinds else "") + " |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--render", action="store_true", help="only rewrite the markdown from the JSON")
    args = parser.parse_args(argv)
    if args.render:
        payload = json.loads((RESULTS / f"{NAME}.json").read_text())
        write_results(RESULTS, NAME, payload, markdown=lambda: markdown(payload))
        return
    run(argv)


if __name__ == "__main__":
    main()
