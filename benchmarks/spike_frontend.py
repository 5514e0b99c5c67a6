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
from spike_vq import label

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


DECOMPOSITION = "spike_frontend_decomposition"
#: snippet shapes the decomposition takes ("channels x samples"), the default first
DECOMPOSITION_SHAPES = {"16x96": VARIANTS["16 ch x 96 samples (the default shape at 32 kHz)"],
                        "32x96": VARIANTS["32 ch x 96 samples (every channel)"],
                        "16x160": VARIANTS["16 ch x 160 samples (5 ms)"]}
#: the variants whose background is the recorded one (the synthesis, and its fix, do not touch them)
CUT_ONLY = ("raw", "cut only", "new noise realisation", "cut only, centred on the unit's template peak",
            "cut only, learned footprint map")
#: the 2 x 2 of what the front end changes (noise, spikes) and the checks beside it: name -> description
DECOMPOSITION_VARIANTS = {
    "raw": "recorded noise, every spike",
    "cut only": "recorded noise, spikes only inside the transmitted windows (the front end's cut, true background)",
    "noise model only": "synthesised background everywhere, every spike (the background model, nothing cut)",
    "front end": "synthesised background, spikes only inside the transmitted windows (what the codec decodes)",
    "noise model only, high-passed": "the synthesised background high-passed at 300 Hz (3rd order, zero phase) "
                                     "everywhere, every spike: is it the background's power below 300 Hz?",
    "noise model only, one model": "a background synthesised from one model fitted on the whole recording (between "
                                    "the same windows) instead of one per chunk, every spike: is it the re-estimation?",
    "new noise realisation": "the recorded noise with its phases randomised (same spectrum per channel, another draw), "
                             "every spike: the control for 'noise model only'",
    "cut only, centred on the unit's template peak": "as 'cut only', each detected spike's window centred on the peak "
                                                     "channel of its ground-truth unit's template (an oracle: every "
                                                     "spike of a unit cut on the same channels)",
    "cut only, learned footprint map": "as 'cut only', each spike's window centred by the footprint map the encoder "
                                       "learns on the first 10 s (footprint='learned', no ground truth)",
}


def _cut_weights(codec, recording, chunk: int, centres=None) -> np.ndarray:
    """The paste weights of the windows ``codec`` sends (1 inside, the taper at the ends, 0 outside),
    chunk by chunk; ``centres(start, times, channels)`` may move each spike's centre channel."""
    channels, samples, trough = codec.snippet_shape()
    weights = np.zeros((recording.get_num_samples(), recording.get_num_channels()))
    for start in range(0, recording.get_num_samples(), chunk):
        block = recording.get_traces(start_frame=start, end_frame=min(start + chunk, recording.get_num_samples()))
        times, centre, _, _ = codec.detect(block)
        if centres is not None:
            centre = centres(start, times, centre)
        groups = codec._groups(block.shape[1])[centre].reshape(len(times), -1)
        weights[start:start + len(block)] = codec._paste(np.zeros(block.shape), times, groups,
                                                         np.ones((len(times), groups.shape[1], samples), np.float32), trough)
    return weights


def template_peak_centres(gt_sorting, clean: np.ndarray, tolerance: int = 10):
    """``centres(start, times, channels)`` for :func:`_cut_weights`: a spike within ``tolerance`` samples of
    a ground-truth spike is centred on that unit's template peak channel (the mean of its first 300
    spikes in the recording simulated without noise), any other keeps its channel."""
    spike_times, peak = [], []
    for unit in gt_sorting.unit_ids:
        train = gt_sorting.get_unit_spike_train(unit)
        inside = train[(train > 50) & (train < len(clean) - 60)][:300]
        template = clean[inside[:, None] + np.arange(-30, 60)[None, :]].mean(axis=0)
        spike_times.append(train)
        peak.append(np.full(len(train), int(np.argmax(np.abs(template).max(axis=0)))))
    order = np.argsort(np.concatenate(spike_times), kind="stable")
    spike_times, peak = np.concatenate(spike_times)[order], np.concatenate(peak)[order]

    def centres(start, times, channels):
        if len(times) == 0:
            return channels
        absolute = times + start
        after = np.clip(np.searchsorted(spike_times, absolute), 1, len(spike_times) - 1)
        nearest = np.where(np.abs(spike_times[after - 1] - absolute) < np.abs(spike_times[after] - absolute), after - 1, after)
        return np.where(np.abs(spike_times[nearest] - absolute) <= tolerance, peak[nearest], channels)

    return centres


def decomposition_traces(recording, spikes, shape: dict, gt_sorting=None) -> dict:
    """The recordings of :data:`DECOMPOSITION_VARIANTS` as int16 traces.

    ``spikes`` is the same MEArec recording simulated without noise (same seeds, same spike trains), so
    ``raw - spikes`` is the recorded noise. The identity spike codec (raw snippets) runs chunk by chunk
    as ``compress`` runs it; its decoder's synthesised background and its paste weights (1 inside a
    window, the taper at its ends, 0 outside) are kept, and the variants are mixed from them.
    """
    from scipy.signal import butter, sosfiltfilt

    import spikeinterface_vqcompress.core.codecs.spike_cae.frontend as frontend
    from spikeinterface_vqcompress.core.codecs.spike_cae.background import channel_offsets, estimate_background, remove_offsets
    from spikeinterface_vqcompress.core.registry import get_codec

    codec = get_codec({"id": "spike-cae", "model": "identity", **shape}).with_recording(recording)
    chunk = int(round(recording.get_sampling_frequency() * codec.default_chunk_duration_s))
    raw = recording.get_traces().astype(np.float64)
    clean = spikes.get_traces().astype(np.float64)
    outputs = {name: np.zeros(raw.shape, np.float64) for name in DECOMPOSITION_VARIANTS}
    captured = {}
    synthesise, paste = frontend.synthesise_background, codec._paste

    def keep_background(background, num_samples, seed):
        captured["background"] = synthesise(background, num_samples, seed)
        return captured["background"].copy()

    def keep_weights(traces, times, groups, snippets, trough):
        captured["weights"] = paste(np.zeros_like(traces), times, groups, np.ones(snippets.shape, np.float32), trough)
        return paste(traces, times, groups, snippets, trough)

    frontend.synthesise_background, codec._paste = keep_background, keep_weights
    phase_rng = np.random.default_rng(12345)
    sent = np.zeros(raw.shape, dtype=bool)
    high_pass = butter(3, 300, btype="high", fs=recording.get_sampling_frequency(), output="sos")
    try:
        for start in range(0, raw.shape[0], chunk):
            block = recording.get_traces(start_frame=start, end_frame=min(start + chunk, raw.shape[0]))
            decoded = codec.decode(codec.encode(block), block.shape[0], block.shape[1], block.dtype)
            part = slice(start, start + block.shape[0])
            weights, background = captured["weights"], captured["background"] + channel_offsets(block)[None, :]
            noise = raw[part] - clean[part]
            outputs["raw"][part] = raw[part]
            outputs["cut only"][part] = (1 - weights) * noise + weights * raw[part]
            outputs["noise model only"][part] = clean[part] + background
            outputs["front end"][part] = decoded
            outputs["noise model only, high-passed"][part] = clean[part] + sosfiltfilt(high_pass, captured["background"], axis=0)
            spectrum = np.fft.rfft(noise, axis=0)
            phases = np.exp(2j * np.pi * phase_rng.random(spectrum.shape))
            phases[0] = 1.0  # the mean stays
            outputs["new noise realisation"][part] = clean[part] + np.fft.irfft(spectrum * phases, n=noise.shape[0], axis=0)
            sent[part] = weights > 0
    finally:
        frontend.synthesise_background = synthesise
    whole = recording.get_traces()
    offsets = channel_offsets(whole)
    model = estimate_background(remove_offsets(whole, offsets), codec.params["ar_order"], codec.params["spatial_rank"],
                                exclude_mask=sent)
    outputs["noise model only, one model"] = clean + frontend.synthesise_background(model, raw.shape[0], 7) + offsets[None, :]
    noise = raw - clean
    if gt_sorting is not None:  # the same cut with every spike of a unit on the same channels: ground truth, then the map
        weights = _cut_weights(codec, recording, chunk, template_peak_centres(gt_sorting, clean))
        outputs["cut only, centred on the unit's template peak"] = (1 - weights) * noise + weights * raw
        codec.params["footprint_map"] = codec.learn_footprint_map(recording)
        weights = _cut_weights(codec, recording, chunk)
        outputs["cut only, learned footprint map"] = (1 - weights) * noise + weights * raw
    return {name: np.clip(np.round(traces), -32768, 32767).astype(np.int16) for name, traces in outputs.items()}


def run_decomposition(args) -> dict:
    """Which of the front end's two changes makes the junk units: the cut or the background model."""
    import spikeinterface.core as sc

    from spikeinterface_vqcompress.core.codecs.spike_cae.background import MAX_REFLECTION
    from spikeinterface_vqcompress.evaluation.sorting import run_seeded_sorter, score_sorting

    work = WORK / NAME / "decomposition"
    recording, gt_sorting = load_simulated(WORK / f"{TUNING['name']}.h5", TUNING)
    spikes, gt_clean = load_simulated(WORK / f"{TUNING['name']}_without_noise.h5", TUNING, noise_level_uV=0.0)
    for unit in gt_sorting.unit_ids:
        if not np.array_equal(gt_sorting.get_unit_spike_train(unit), gt_clean.get_unit_spike_train(unit)):
            raise RuntimeError("the recording simulated without noise has other spike trains: MEArec's seeds did not carry over")
    fs = recording.get_sampling_frequency()
    raw_mad = band_mad(recording.get_traces(), fs)
    path = RESULTS / f"{DECOMPOSITION}.json"
    saved = json.loads(path.read_text()) if path.is_file() and not args.force else {}
    rows = saved.get("rows", [])
    done = {(row["variant"], row.get("shape", "16x96"), row["seed"]) for row in rows
            if row.get("max_reflection") == MAX_REFLECTION or row["variant"] in CUT_ONLY}
    payload = {"commands": saved.get("commands", []) + [command_line("benchmarks/spike_frontend.py", args.argv)],
               "recording": TUNING, "shapes": DECOMPOSITION_SHAPES, "variants": DECOMPOSITION_VARIANTS, "rows": rows,
               "codec_rows": saved.get("codec_rows", [])}
    for shape in args.shapes:
        names = [name for name in args.variants if shape == "16x96" or name != "raw"]  # raw once
        if all((name, shape, seed) in done for name in names for seed in args.seeds):
            continue
        variants = decomposition_traces(recording, spikes, DECOMPOSITION_SHAPES[shape], gt_sorting)
        for name in names:
            traces = variants[name]
            target = sc.NumpyRecording(traces, sampling_frequency=fs)
            target.set_probe(recording.get_probe(), in_place=True)
            target = target.save(folder=work / f"{shape}_{name.replace(' ', '_')}", overwrite=True, progress_bar=False)
            mad = band_mad(traces, fs) / raw_mad
            for seed in args.seeds:
                if (name, shape, seed) in done:
                    continue
                print(shape, name, "seed", seed, flush=True)
                sorting, elapsed = run_seeded_sorter(target, "tridesclous2", seed, work / "sorter",
                                                     job_kwargs={"n_jobs": 2, "progress_bar": False})
                rows.append({"variant": name, "shape": shape, "seed": seed, "max_reflection": MAX_REFLECTION,
                             **score_sorting(gt_sorting, sorting),
                             "band_mad_ratio_mean": float(mad.mean()), "band_mad_ratio_min": float(mad.min()),
                             "sort_s": elapsed})
                write_results(RESULTS, DECOMPOSITION, payload, markdown=lambda: decomposition_markdown(payload))
    return payload


def run_codecs(args) -> dict:
    """Codec settings on the tuning recording (the footprint choice of issue 28 item 3), beside raw."""
    import spikeinterface_vqcompress as vq
    from spikeinterface_vqcompress.core.codecs.spike_cae.background import MAX_REFLECTION
    from spikeinterface_vqcompress.evaluation.sorting import run_seeded_sorter, score_sorting

    work = WORK / NAME / "codecs"
    recording, gt_sorting = load_simulated(WORK / f"{TUNING['name']}.h5", TUNING)
    path = RESULTS / f"{DECOMPOSITION}.json"
    payload = json.loads(path.read_text())
    payload.setdefault("codec_rows", [])
    payload["commands"] = payload.get("commands", []) + [command_line("benchmarks/spike_frontend.py", args.argv)]
    rows = payload["codec_rows"]
    for config in map(json.loads, args.codecs):
        name = label(config)
        compressed = vq.compress(recording, codec=config, progress_bar=False)
        target = compressed.save(folder=work / "rebuilt", overwrite=True, progress_bar=False)
        for seed in args.seeds:
            if any(row["codec"] == name and row["seed"] == seed for row in rows):
                continue
            print(name, "seed", seed, flush=True)
            sorting, elapsed = run_seeded_sorter(target, "tridesclous2", seed, work / "sorter",
                                                 job_kwargs={"n_jobs": 2, "progress_bar": False})
            rows.append({"codec": name, "config": config, "seed": seed, "max_reflection": MAX_REFLECTION,
                         "ratio_int16": compressed.compression_ratio, **score_sorting(gt_sorting, sorting), "sort_s": elapsed})
            write_results(RESULTS, DECOMPOSITION, payload, markdown=lambda: decomposition_markdown(payload))
    return payload


def _scores(rows) -> str:
    """``accuracy | units sorted | false-positive units`` cells, each mean ± std over ``rows`` (the seeds)."""
    cells = []
    for key, digits in (("accuracy_mean", 3), ("num_sorted_units", 1), ("num_false_positive", 1)):
        values = np.array([row[key] for row in rows], dtype=float)
        cells.append(f"{values.mean():.{digits}f} ± {values.std():.{digits}f}")
    return " | ".join(cells)


def decomposition_markdown(payload) -> str:
    seeds = sorted({row["seed"] for row in payload["rows"]})
    lines = ["# The spike front end taken apart: the cut against the background model (tuning recording)", "",
             "The tuning recording (MEArec Neuronexus-32, templates seed 8, recording seed 401) was simulated a second time "
             "without noise (same seeds: the same spike trains, checked), so raw minus that is the recorded noise. The "
             "identity spike codec (raw snippets of the shape given, channels x samples, 1-s chunks; 16 x 96 is the "
             "default) gives the transmitted windows and the "
             "synthesised background; the recordings mix them (the 2 x 2 of what the front end changes, and a control: another draw of the recorded noise). "
             f"tridesclous2, seeds {', '.join(map(str, seeds))}; mean ± std over seeds. 'Before the AR fix': the "
             "background's AR fit on the samples between windows (an autocorrelation that need not be positive "
             "definite) could end in a reflection coefficient of 1, a channel's background silent or too quiet for a "
             "chunk; 'AR guard': the recursion stops before |k| reaches 0.999 (background.MAX_REFLECTION).", "",
             "Commands (the rows of each add up): " + "; ".join(f"`{command}`" for command in payload["commands"]) + ".", "",
             "| variant | snippet shape | what it holds | band-passed MAD / raw (mean, lowest) | accuracy | units sorted | false-positive units | runs |",
             "|---|---|---|---|---|---|---|---|"]
    groups = [(shape, name, guard) for shape in payload["shapes"] for name in payload["variants"]
              for guard in ((None,) if name in CUT_ONLY else (None, 0.999))]
    for shape, name, guard in groups:
        rows = [row for row in payload["rows"] if row["variant"] == name and row.get("shape", "16x96") == shape
                and (name in CUT_ONLY or row.get("max_reflection") == guard)]
        if not rows:
            continue
        variant = name if name in CUT_ONLY else f"{name}, " + ("AR guard (after the fix)" if guard else "before the AR fix")
        lines.append(f"| {variant} | {shape if name != 'raw' else ''} | {payload['variants'][name]} | {rows[0]['band_mad_ratio_mean']:.3f}, {rows[0]['band_mad_ratio_min']:.3f} | "
                     f"{_scores(rows)} | {len(rows)} |")
    codec_rows = payload.get("codec_rows", [])
    if codec_rows:
        lines += ["", "Codec settings on the same recording (the real bytes decoded; tridesclous2, same seeds; raw: the first row "
                  "above):", "", "| codec | ratio vs int16 | accuracy | units sorted | false-positive units | runs |", "|---|---|---|---|---|---|"]
        for name in dict.fromkeys(row["codec"] for row in codec_rows):
            rows = [row for row in codec_rows if row["codec"] == name]
            lines.append(f"| {name} | {rows[0]['ratio_int16']:.0f} | {_scores(rows)} | {len(rows)} |")
    return "\n".join(lines) + "\n"


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
    parser.add_argument("--experiment", choices=["shapes", "decomposition", "codecs"], default="shapes",
                        help="shapes: the snippet shapes (one seed); decomposition: the cut against the background model")
    parser.add_argument("--seeds", type=int, nargs="*", default=[0, 1, 2], help="tridesclous2 seeds (decomposition)")
    parser.add_argument("--force", action="store_true", help="decomposition: measure again rows already saved")
    parser.add_argument("--codecs", nargs="*", default=[], help="codecs: codec configs as JSON")
    parser.add_argument("--shapes", nargs="*", default=["16x96"], choices=list(DECOMPOSITION_SHAPES),
                        help="decomposition: snippet shapes (channels x samples)")
    parser.add_argument("--variants", nargs="*", default=list(DECOMPOSITION_VARIANTS), choices=list(DECOMPOSITION_VARIANTS),
                        help="decomposition: which of the four recordings to sort")
    args = parser.parse_args(argv)
    args.argv = argv
    if args.experiment == "decomposition":
        run_decomposition(args)
        return
    if args.experiment == "codecs":
        if not args.codecs:
            parser.error("--experiment codecs needs --codecs CONFIG_JSON [...]")
        run_codecs(args)
        return
    if args.render:
        payload = json.loads((RESULTS / f"{NAME}.json").read_text())
        write_results(RESULTS, NAME, payload, markdown=lambda: markdown(payload))
        return
    run(argv)


if __name__ == "__main__":
    main()
