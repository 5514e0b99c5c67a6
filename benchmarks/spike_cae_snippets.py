"""Spike CAE (Wu et al. 2018) on spike snippets: rate-distortion against PCA, DWT and compressed
sensing at real bytes, robustness, and encoder throughput.

    python benchmarks/spike_cae_snippets.py            # full run (as committed)
    python benchmarks/spike_cae_snippets.py --quick    # few snippets, smoke test

Data
----
- Evaluation snippets (reported): ground-truth spikes of the evaluation recordings only: seed 0
  (Neuronexus-32, 10 units, 30 s, the demo), seed 101 (Neuronexus-32, 20 units, 30 s) and seed 102
  (Neuropixels-64, 20 units, 30 s), cut on the unit's peak channel + nearest channels (4 x 64 for
  Neuronexus, 15 x 48 for Neuropixels), trough-aligned (see spikecae/training.py). The same
  recordings simulated with noise_level_uV=0 (same seed: same units and spike trains) give the clean
  snippet at the same position: SNDR is reported against the input (noisy) snippet and against the
  clean one.
- Training / validation snippets (never the evaluation data): the baselines' PCA components,
  wavelet statistics and every frozen entropy table are fitted on the CAE's training recordings
  (seed 201 / 202); each baseline's operating points (Pareto front over its parameter grid) are
  chosen on a second training recording, then evaluated once on the evaluation snippets.

Bytes
-----
All sizes are real rANS bytes (spikeinterface_vqcompress.core.entropy.rans, frozen tables shipped with
the decoder) for one stream per coded batch of snippets (a rANS stream's 4-byte state amortised
over the batch, as when spikes are sent in frames). The "with times" sizes add, per spike, the spike
time and peak channel as the spike-cae recording codec sends them: its ``encode_times`` (delta times,
bit-length class + mantissa) on the recording's sorted spike train, and ``log2(num_channels)`` bits
for the peak channel. Ratios: raw snippet = C x T int16 samples (16 bits, the paper's convention)
and C x T x 10 bits (10-bit ADC).
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time

import numpy as np

from spikeinterface_vqcompress.evaluation.snippet_baselines import payload_nbytes

from common import RESULTS, SPIKE_CAE_TRAINING_RECORDINGS, SPIKE_CAE_WORK, cae_point, header_bytes_per_spike
from common import SNIPPET_EVALUATION as EVALUATION
from common import simulate_snippet_recording as simulate
from common import snippets_of, summarize_snippets, training_recordings, write_results

WORK = SPIKE_CAE_WORK

#: Cheaper CAE rate points: the shipped model with its codebook reduced by k-means (no retraining).
REDUCED_CODEBOOKS = {"nn32-4x64-r2": [8, 16, 32, 64], "np64-15x48": [16, 32, 64, 128, 256]}

TRAINING = {
    "nn32-4x64-r2": {"fit": "train_nn32_s201_u20_60s.h5", "select": "train_nn32_s201_u14_60s.h5"},
    "np64-15x48": {"fit": "train_np64_s202_u20_60s.h5", "select": "train_np64_s202_u14_60s.h5"},
}


def training_recording(name):
    path = WORK / name
    if not path.exists():
        for probe in SPIKE_CAE_TRAINING_RECORDINGS:
            if any(spec["name"] + ".h5" == name for spec in SPIKE_CAE_TRAINING_RECORDINGS[probe]):
                training_recordings(probe)
    return path


def pareto(points):
    """Indices of points (bytes, sndr) not dominated (fewer bytes and higher SNDR)."""
    order = sorted(range(len(points)), key=lambda index: (points[index][0], -points[index][1]))
    front, best = [], -np.inf
    for index in order:
        if points[index][1] > best:
            front.append(index)
            best = points[index][1]
    return front


def baseline_grid(num_channels, num_samples, quick):
    from spikeinterface_vqcompress.evaluation.snippet_baselines import CSSnippetCoder, DWTSnippetCoder, PCASnippetCoder

    size = num_channels * num_samples
    steps = [2.0, 4.0, 8.0, 16.0, 32.0] if not quick else [8.0, 32.0]
    grid = {"pca": [], "dwt": [], "cs": []}
    for components in ([1, 2, 3, 4, 6, 8, 12, 16, 24, 32] if not quick else [2, 6]):
        for step in steps:
            grid["pca"].append(PCASnippetCoder(components, step))
    for keep in ([2, 4, 8, 12, 16, 24, 32, 48] if not quick else [4, 16]):
        for step in steps[1:]:
            grid["dwt"].append(DWTSnippetCoder(keep, step))
    for measurements in ([8, 16, 32, 48, 64, 96] if not quick else [8, 24]):
        for step in steps[1:4]:
            for basis in ("pca", "dwt"):
                sparsity = max(1, measurements // 4)
                grid["cs"].append(CSSnippetCoder(measurements, step * math.sqrt(size / measurements) / 4,
                                                 sparsity=sparsity, basis=basis))
    return grid


def evaluate_coder(coder, snippets, clean, header_bytes, num_channels, num_samples):

    start = time.perf_counter()
    data = coder.encode(snippets)
    encode_s = time.perf_counter() - start
    decoded = coder.decode(data, len(snippets))
    payload = payload_nbytes(data) / len(snippets)
    return summarize_snippets(payload, header_bytes, snippets, clean, decoded, num_channels, num_samples, encode_s)


def robustness(model, coders, extracted, keep, traces_positions, clean_traces, quick):
    """SNDR vs input (and clean) under misalignment, amplitude scaling, extra noise, channel misassignment."""
    from spikeinterface_vqcompress.training.spike_cae import extract_snippets, neighbour_channel_order, snippet_sndr_db

    traces, locations = traces_positions
    samples = extracted["sample_indices"][keep]
    channels = extracted["channel_indices"][keep]
    num_samples, trough = model.num_samples, model.trough_sample
    margin = 8
    valid = (samples - trough - margin >= 0) & (samples + num_samples - trough + margin < traces.shape[0])
    samples, channels = samples[valid], channels[valid]

    def methods(snippets, clean):
        out = {"cae": (snippets, model.reconstruct(snippets))}
        for name, coder in coders.items():
            out[name] = (snippets, coder.decode(coder.encode(snippets), len(snippets)))
        return {name: {"sndr_input_db_mean": float(snippet_sndr_db(reference, decoded).mean()),
                       "sndr_clean_db_mean": float(snippet_sndr_db(clean, decoded).mean())}
                for name, (reference, decoded) in out.items()}

    results = {"jitter": {}, "amplitude": {}, "extra_noise": {}, "channel_misassignment": {}}
    rng = np.random.default_rng(0)
    for shift in ([0, 1, 2, 4, 8] if not quick else [0, 4]):
        signs = rng.choice([-1, 1], samples.size) * shift
        snippets = extract_snippets(traces, samples + signs, channels, num_samples, trough)
        clean = extract_snippets(clean_traces, samples + signs, channels, num_samples, trough)
        results["jitter"][f"+-{shift}"] = methods(snippets, clean)
    base = extract_snippets(traces, samples, channels, num_samples, trough)
    base_clean = extract_snippets(clean_traces, samples, channels, num_samples, trough)
    for scale in ([0.5, 0.75, 1.0, 1.5, 2.0] if not quick else [0.5, 2.0]):
        results["amplitude"][f"x{scale}"] = methods(base * scale, base_clean * scale)
    for sigma in ([5.0, 10.0, 20.0] if not quick else [10.0]):
        noisy = base + rng.normal(0, sigma, base.shape).astype(np.float32)
        results["extra_noise"][f"{sigma:g}uV"] = methods(noisy, base_clean)
    # drift proxy: the spike is cut around the peak channel's nearest neighbour (as if the unit had
    # moved by one electrode pitch and the detector picked the neighbour)
    shifted_channels = np.stack([neighbour_channel_order(locations, row[1], model.num_channels) for row in channels])
    moved = extract_snippets(traces, samples, shifted_channels, num_samples, trough)
    moved_clean = extract_snippets(clean_traces, samples, shifted_channels, num_samples, trough)
    results["channel_misassignment"]["peak=nearest neighbour"] = methods(moved, moved_clean)
    return results


def throughput(model, snippets, spikes_per_channel_per_s):
    import torch

    torch.set_num_threads(1)
    results = {}
    for batch in (1, 64, 1024):
        count = min(len(snippets), 2048 if batch > 1 else 256)
        data = np.resize(snippets, (count,) + snippets.shape[1:])
        model.encode_indices(data[:batch])  # warm-up
        start = time.process_time()  # one thread: CPU time, which other jobs on the host disturb less
        for begin in range(0, count, batch):
            model.encode_indices(data[begin:begin + batch])
        rate = count / (time.process_time() - start)
        results[f"batch_{batch}"] = {
            "snippets_per_s": rate,
            "channels_realtime_at_measured_rate": rate / spikes_per_channel_per_s,
            "channels_realtime_at_10Hz_per_channel": rate / 10.0,
        }
    torch.set_num_threads(2)
    return results


def best_within(points, bytes_per_spike, key="sndr_input_db_mean"):
    """Best SNDR among points whose payload is at most ``bytes_per_spike``; None if none is that small."""
    values = [point[key] for point in points if point["payload_bytes_per_spike"] <= bytes_per_spike]
    return float(max(values)) if values else None


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true")
    parser.add_argument("--max-snippets", type=int, default=2500)
    parser.add_argument("--extra-models", nargs="*", default=[],
                        help="name=path of extra CAE weights (rate variants), evaluated with their shipped family")
    parser.add_argument("--recordings", nargs="*", default=[spec["name"] for spec in EVALUATION],
                        help="subset of evaluation recordings")
    args = parser.parse_args(argv)
    import torch

    torch.set_num_threads(2)
    from spikeinterface_vqcompress.groundtruth import load_ground_truth
    from spikeinterface_vqcompress.core.codecs.spike_cae.model import load_spike_cae, model_sha256, reduce_codebook

    WORK.mkdir(parents=True, exist_ok=True)
    RESULTS.mkdir(parents=True, exist_ok=True)
    max_snippets = 300 if args.quick else args.max_snippets
    extra = dict(item.split("=", 1) for item in args.extra_models)
    import os

    output = {"description": __doc__.split("\n\n")[0], "quick": args.quick, "max_snippets": max_snippets,
              "load_average_at_start": os.getloadavg(), "recordings": {}}
    existing = RESULTS / f"spike_cae_snippets{'_quick' if args.quick else ''}.json"
    if existing.exists() and set(args.recordings) != {spec["name"] for spec in EVALUATION}:
        # a subset run adds to (and replaces its recordings in) the existing results
        previous = json.loads(existing.read_text())
        output["recordings"] = {name: entry for name, entry in previous.get("recordings", {}).items()
                                if name not in args.recordings}
    fitted = {}
    for spec in [spec for spec in EVALUATION if spec["name"] in args.recordings]:
        model = load_spike_cae(spec["model"])
        family = spec["model"]
        variants = {family: model}
        for name, path in extra.items():
            candidate = load_spike_cae(path)
            if (candidate.num_channels, candidate.num_samples) == (model.num_channels, model.num_samples):
                variants[name] = candidate
        # baselines: fit on training data, pick the Pareto configurations on another training recording
        if family not in fitted:
            fit_extracted, fit_keep = snippets_of(training_recording(TRAINING[family]["fit"]), model, 6000 if not args.quick else 800)
            select_extracted, select_keep = snippets_of(training_recording(TRAINING[family]["select"]), model,
                                                        1500 if not args.quick else 300, seed=1)
            train = fit_extracted["snippets_uV"][fit_keep]
            select = select_extracted["snippets_uV"][select_keep]
            chosen = {}
            for method, coders in baseline_grid(model.num_channels, model.num_samples, args.quick).items():
                points = []
                for coder in coders:
                    coder.fit(train)
                    result = evaluate_coder(coder, select, None, 0.0, model.num_channels, model.num_samples)
                    points.append((result["payload_bytes_per_spike"], result["sndr_input_db_mean"]))
                chosen[method] = [coders[index] for index in pareto(points)]
                print(f"{family} {method}: {len(chosen[method])} Pareto points of {len(coders)}", flush=True)
            reduced = {}
            for size in REDUCED_CODEBOOKS[family] if not args.quick else REDUCED_CODEBOOKS[family][:1]:
                reduced[f"{family} codebook reduced to {size}"] = reduce_codebook(model, size, train)
            fitted[family] = (chosen, reduced)
        chosen, reduced = fitted[family]
        variants.update(reduced)

        noisy_path, clean_path = simulate(spec, 10.0), simulate(spec, 0.0)
        recording, sorting = load_ground_truth(noisy_path)
        clean_recording, clean_sorting = load_ground_truth(clean_path)
        for unit_id in sorting.unit_ids[:3]:
            assert np.array_equal(sorting.get_unit_spike_train(unit_id), clean_sorting.get_unit_spike_train(unit_id)), \
                "the clean recording's spike trains differ from the noisy one's"
        extracted, keep = snippets_of(noisy_path, model, max_snippets)
        clean_traces = np.asarray(clean_recording.get_traces(return_in_uV=True), dtype=np.float32)
        from spikeinterface_vqcompress.training.spike_cae import extract_snippets

        snippets = extracted["snippets_uV"][keep]
        clean = extract_snippets(clean_traces, extracted["sample_indices"][keep], extracted["channel_indices"][keep],
                                 model.num_samples, model.trough_sample)
        header, header_source = header_bytes_per_spike(extracted["sample_indices"], recording.get_num_channels())
        entry = {"spec": spec, "num_snippets": int(len(snippets)), "header_bytes_per_spike": header,
                 "header_source": header_source, "methods": {}}
        for name, variant in variants.items():
            point = cae_point(variant, snippets, clean, header)
            point["model_sha256"] = model_sha256(variant)
            point["config"] = {"codes_per_spike": variant.codes_per_spike, "codebook_size": variant.codebook_size}
            entry["methods"].setdefault("cae", []).append(dict(point, model=name))
        for method, coders in chosen.items():
            entry["methods"][method] = []
            for coder in coders:
                point = evaluate_coder(coder, snippets, clean, header, model.num_channels, model.num_samples)
                point["config"] = coder.config()
                entry["methods"][method].append(point)
            entry["methods"][method].sort(key=lambda point: point["payload_bytes_per_spike"])
        # matched-rate comparison at the shipped CAE's rate
        cae_main = entry["methods"]["cae"][0]
        entry["matched_rate"] = []
        for cae in entry["methods"]["cae"]:
            matched = {"model": cae["model"], "payload_bytes_per_spike": cae["payload_bytes_per_spike"],
                       "cae_sndr_input_db_mean": cae["sndr_input_db_mean"],
                       "cae_sndr_clean_db_mean": cae["sndr_clean_db_mean"]}
            for method in chosen:
                for key in ("sndr_input_db_mean", "sndr_clean_db_mean"):
                    matched[f"{method}_{key}"] = best_within(entry["methods"][method], cae["payload_bytes_per_spike"], key)
            entry["matched_rate"].append(matched)
        # robustness: the CAE and each baseline at its Pareto point closest in bytes to the CAE
        closest = {}
        for method in chosen:
            points = entry["methods"][method]
            index = int(np.argmin([abs(p["payload_bytes_per_spike"] - cae_main["payload_bytes_per_spike"]) for p in points]))
            closest[method] = chosen[method][[json.dumps(c.config()) for c in chosen[method]].index(json.dumps(points[index]["config"]))]
        traces = np.asarray(recording.get_traces(return_in_uV=True), dtype=np.float32)
        entry["robustness"] = robustness(model, closest, extracted, keep, (traces, recording.get_channel_locations()),
                                         clean_traces, args.quick)
        entry["robustness_baseline_configs"] = {method: coder.config() for method, coder in closest.items()}
        spikes_per_channel_per_s = len(extracted["sample_indices"]) / recording.get_total_duration() / recording.get_num_channels()
        entry["throughput_one_thread"] = throughput(model, snippets, spikes_per_channel_per_s)
        entry["throughput_clock"] = "CPU time of the process"
        entry["spikes_per_channel_per_s"] = spikes_per_channel_per_s
        entry["encoder_macs_per_snippet"] = model.encoder_macs_per_snippet
        entry["encoder_gmacs_per_s_for_1024_channels"] = model.encoder_macs_per_snippet * 1024 * spikes_per_channel_per_s / 1e9
        output["recordings"][spec["name"]] = entry
        print(json.dumps({"recording": spec["name"], "matched_rate": entry["matched_rate"][0]}), flush=True)
        suffix = "_quick" if args.quick else ""
        write_results(RESULTS, f"spike_cae_snippets{suffix}", output, fallback=float)
    write_markdown(output, RESULTS / f"spike_cae_snippets{'_quick' if args.quick else ''}.md")
    plot(output, RESULTS / f"spike_cae_snippets{'_quick' if args.quick else ''}.png")
    return 0


def write_markdown(output, path):
    lines = ["# Spike CAE on snippets: rate-distortion vs PCA / DWT / CS (real bytes)", "",
             f"Machine load average at the start: {output['load_average_at_start']} (2 shared CPU cores; "
             "throughput numbers are depressed by other processes).", "",
             "Generated by `benchmarks/spike_cae_snippets.py`" + (" --quick" if output["quick"] else "") +
             f"; up to {output['max_snippets']} ground-truth snippets per evaluation recording. SNDR = "
             "20 log10(||x|| / ||x - x_hat||) per snippet, mean (± std for the CAE) over snippets, against the "
             "input (noisy) snippet and against the clean one (same recording simulated without noise). Ratios count "
             "real rANS payload bytes plus the spike time and peak channel (\"with times\"), vs int16 samples "
             "(paper convention) and vs 10-bit samples. Baseline operating points are chosen on training data.", ""]
    for name, entry in output["recordings"].items():
        spec = entry["spec"]
        lines += [f"## {name} ({spec['probe']}, seed {spec['seed']}, {entry['num_snippets']} snippets, "
                  f"time+channel {entry['header_bytes_per_spike']:.2f} B/spike)", "",
                  "| method | config | payload B/spike | ratio int16 (payload) | ratio int16 (with times) | "
                  "ratio 10-bit (with times) | SNDR vs input dB | SNDR vs clean dB |",
                  "|---|---|---|---|---|---|---|---|"]
        for method, points in entry["methods"].items():
            for point in points:
                config = point.get("model") or ", ".join(f"{k}={v}" for k, v in point["config"].items() if k != "coder")
                sndr = f"{point['sndr_input_db_mean']:.2f}" + (f" ± {point['sndr_input_db_std']:.2f}" if method == "cae" else "")
                lines.append(f"| {method} | {config} | {point['payload_bytes_per_spike']:.2f} | "
                             f"{point['ratio_int16_payload_only']:.1f} | {point['ratio_int16_with_times']:.1f} | "
                             f"{point['ratio_10bit_with_times']:.1f} | {sndr} | {point.get('sndr_clean_db_mean', float('nan')):.2f} |")
        lines += ["", "Matched rate: best SNDR (vs input / vs clean, dB) each baseline reaches with at most the CAE's payload bytes:", "",
                  "| CAE model | payload B/spike | CAE | PCA | DWT | CS |", "|---|---|---|---|---|---|"]
        for matched in entry["matched_rate"]:
            cells = []
            for method in ("cae", "pca", "dwt", "cs"):
                a, b = matched.get(f"{method}_sndr_input_db_mean"), matched.get(f"{method}_sndr_clean_db_mean")
                cells.append("none this small" if a is None else f"{a:.2f} / {b:.2f}")
            lines.append(f"| {matched['model']} | {matched['payload_bytes_per_spike']:.2f} | " + " | ".join(cells) + " |")
        lines.append("")
        lines += ["Robustness (SNDR vs input / vs clean, dB; baselines at their point nearest the CAE's rate):", "",
                  "| perturbation | " + " | ".join(entry["robustness"]["jitter"][next(iter(entry["robustness"]["jitter"]))]) + " |",
                  "|---|" + "---|" * len(entry["robustness"]["jitter"][next(iter(entry["robustness"]["jitter"]))])]
        for kind, cases in entry["robustness"].items():
            for case, methods in cases.items():
                lines.append(f"| {kind} {case} | " + " | ".join(
                    f"{values['sndr_input_db_mean']:.1f} / {values['sndr_clean_db_mean']:.1f}" for values in methods.values()) + " |")
        through = entry["throughput_one_thread"]
        lines += ["", f"Encoder throughput, one thread (torch, {entry.get('throughput_clock', 'wall time')}): " + "; ".join(
            f"{key}: {value['snippets_per_s']:.0f} snippets/s = {value['channels_realtime_at_measured_rate']:.0f} channels "
            f"at this recording's {entry['spikes_per_channel_per_s']:.1f} spikes/s/channel "
            f"({value['channels_realtime_at_10Hz_per_channel']:.0f} at 10 spikes/s/channel)"
            for key, value in through.items()),
            "", f"Encoder cost: {entry['encoder_macs_per_snippet'] / 1e6:.2f} M multiply-accumulates per snippet, i.e. "
            f"{entry['encoder_gmacs_per_s_for_1024_channels']:.1f} GMAC/s for 1024 channels at this recording's spike rate.", ""]
    path.write_text("\n".join(lines) + "\n")


def plot(output, path):
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return
    recordings = output["recordings"]
    figure, axes = plt.subplots(1, len(recordings), figsize=(5 * len(recordings), 4), squeeze=False)
    for axis, (name, entry) in zip(axes[0], recordings.items()):
        for method, points in entry["methods"].items():
            xs = [point["ratio_int16_with_times"] for point in points]
            ys = [point["sndr_input_db_mean"] for point in points]
            axis.plot(xs, ys, "o-" if method != "cae" else "*", label=method, markersize=10 if method == "cae" else 4)
        axis.set_xscale("log")
        axis.set_xlabel("compression ratio vs int16 (with spike times)")
        axis.set_ylabel("SNDR vs input (dB)")
        axis.axvline(40, color="gray", linestyle=":")
        axis.axhline(12, color="gray", linestyle=":")
        axis.set_title(name)
        axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=80)
    plt.close(figure)


if __name__ == "__main__":
    sys.exit(main())
