"""Reproduction of the VQ-CAE hybrid on the Neuralink N1 files, next to honest baselines.

Held-out files only: the split of ``benchmarks/train_vqcae_hybrid.py`` (sorted names, first 70 %
train), read back from the shipped model card so the two can never disagree.

Rows
----
- ``vqcae-hybrid``: the shipped model through our container. Ratio three ways: every container byte
  (ours), the codec payload only (rANS indices + per-segment min/max), and the paper's way (bz2 of
  the code indices only, one byte each, per file; plus the bare 7-bit index count).
- ``vqcae-hybrid, VQ-VAE only``: the same codes without the CAE post-filter.
- ``segment min/max only``: sends only the per-segment side information the hybrid also sends
  (4 bytes per 8000 samples) and rebuilds each segment as its midpoint: what the network adds on top.
- ``mean only``: each file's mean (2 bytes + 4 bytes of length).
- ``downsample by k``: zero-phase FIR decimation by k, int16 samples (raw, and zstd-19), polyphase
  upsampling back.
- ``flac``, ``wavpack`` lossless, ``wavpack`` hybrid (bps 2.25), ``zstd``: our codecs through the
  container.
- our broadband codec: pending (it does not exist yet).

Metrics: the paper's (SNR, PSNR with the signal peak-to-peak as peak, MSE on [-1, 1]-normalised
signals, SSIM) and ours (PSNR at int16 full scale, spike-window SNDR, threshold-crossing
precision/recall); see :mod:`spikeinterface_vqcompress.evaluation.signal_metrics`.

    python benchmarks/vqcae_reproduction.py [--max-files N]
"""

from __future__ import annotations

import argparse
import bz2
import time
from pathlib import Path

import numpy as np

from common import RESULTS, ROOT, SHARED_DATA, write_results

DATA = SHARED_DATA / "neuralink_n1"
CARD = ROOT / "spikeinterface_vqcompress" / "models" / "vqcae_hybrid_n1.json"

PAPER = {"ratio": 393.86, "snr_db": 1.19, "psnr_db": 25.2, "mse": 0.0126, "ssim": 0.450, "bytes_per_file": 503}
SUMMARY_KEYS = ["snr_db", "psnr_signal_peak_db", "mse_normalized", "ssim", "psnr_full_scale_db", "spike_sndr_db",
                "detection_precision", "detection_recall"]


def summarize_rows(per_file_metrics: list[dict]) -> dict:
    from spikeinterface_vqcompress.evaluation.signal_metrics import summarize

    summary = {key: summarize([metrics[key] for metrics in per_file_metrics]) for key in SUMMARY_KEYS}
    matched = sum(metrics["num_spikes_matched"] for metrics in per_file_metrics)
    detected = sum(metrics["num_spikes_reconstruction"] for metrics in per_file_metrics)
    original = sum(metrics["num_spikes_original"] for metrics in per_file_metrics)
    summary["pooled_detection"] = {"num_spikes_original": original, "num_spikes_reconstruction": detected, "num_spikes_matched": matched,
                                   "precision": matched / detected if detected else float("nan"),
                                   "recall": matched / original if original else float("nan")}
    return summary


def run_signal_baseline(name, files, rebuild, note) -> dict:
    """A baseline outside the codec registry: ``rebuild(signal, fs) -> (nbytes, reconstruction)``."""
    from spikeinterface_vqcompress.evaluation.signal_metrics import signal_metrics
    from spikeinterface_vqcompress.evaluation.wav_evaluation import read_wav

    metrics, nbytes, wav_nbytes = [], 0, 0
    for path in files:
        sampling_frequency, traces = read_wav(path)
        signal = traces[:, 0]
        size, reconstruction = rebuild(signal, sampling_frequency)
        nbytes += size
        wav_nbytes += path.stat().st_size
        metrics.append(signal_metrics(signal, reconstruction, sampling_frequency))
    return {"name": name, "note": note, "wav_nbytes": wav_nbytes, "nbytes": nbytes, "ratio": wav_nbytes / nbytes,
            "lossless": False, "summary": summarize_rows(metrics)}


def run_codec(name, files, codec, note="", output_folder=None) -> dict:
    from spikeinterface_vqcompress.evaluation.wav_evaluation import evaluate_wav_files

    report = evaluate_wav_files(files, codec, output_folder=output_folder, plots=output_folder is not None, log=None)
    metrics = [entry["channels"][0] for entry in report["files"]]
    totals = report["totals"]
    return {"name": name, "note": note, "codec": report["codec"], "wav_nbytes": totals["wav_nbytes"],
            "nbytes": totals["encoded_nbytes"], "payload_nbytes": totals["payload_nbytes"],
            "ratio": totals["ratio_wav_bytes"], "ratio_payload_only": totals["ratio_payload_only"],
            "lossless": report["verification"]["lossless"], "verification": report["verification"]["text"],
            "encode_s": totals["encode_time_s"], "decode_s": totals["decode_time_s"], "summary": summarize_rows(metrics)}


def read_num_samples(path) -> int:
    from spikeinterface_vqcompress.evaluation.wav_evaluation import read_wav

    return read_wav(path)[1].shape[0]


def mean_only(signal, sampling_frequency):
    mean = int(np.rint(signal.astype(np.float64).mean()))
    return 2 + 4, np.full(signal.shape, mean, dtype=np.int16)


def segment_midpoint(signal, sampling_frequency, segment_num_samples=8000):
    from spikeinterface_vqcompress.core.nn.vqcae import segment_extrema

    minimum, maximum = segment_extrema(signal, segment_num_samples)
    midpoint = (minimum.astype(np.float64) + maximum) / 2.0
    reconstruction = np.repeat(midpoint, segment_num_samples)[: signal.size]
    return 4 * minimum.size, np.rint(reconstruction).astype(np.int16)


def make_downsampler(factor: int, use_zstd: bool):
    def rebuild(signal, sampling_frequency):
        from scipy.signal import decimate, resample_poly

        low = signal.astype(np.float64)
        remaining = factor
        while remaining > 1:  # decimate in stages of at most 8 (scipy's advice for FIR decimation)
            step = 8 if remaining % 8 == 0 else remaining
            low = decimate(low, step, ftype="fir", zero_phase=True)
            remaining //= step
        stored = np.clip(np.rint(low), -32768, 32767).astype("<i2")
        if use_zstd:
            import numcodecs

            nbytes = len(numcodecs.Zstd(level=19).encode(stored)) + 4
        else:
            nbytes = stored.nbytes + 4
        rebuilt = resample_poly(stored.astype(np.float64), factor, 1)[: signal.size]
        if rebuilt.size < signal.size:
            rebuilt = np.concatenate([rebuilt, np.full(signal.size - rebuilt.size, rebuilt[-1] if rebuilt.size else 0.0)])
        return nbytes, np.clip(np.rint(rebuilt), -32768, 32767).astype(np.int16)

    return rebuild


def vqcae_paper_bytes(files, codec) -> dict:
    """The paper's byte count: bz2 of the code indices (one byte each) per file; and bare 7-bit indices."""
    from spikeinterface_vqcompress.evaluation.wav_evaluation import read_wav

    import io

    bz2_nbytes, npy_bz2_nbytes, index_bits, num_indices, wav_nbytes = 0, 0, 0, 0, 0
    bits_per_index = int(np.ceil(np.log2(codec.network.codebook_size)))
    for path in files:
        _, traces = read_wav(path)
        indices, _ = codec.encode_indices(traces)
        bz2_nbytes += len(bz2.compress(indices.astype(np.uint8).tobytes(), 9))
        buffer = io.BytesIO()
        np.save(buffer, indices.astype(np.int64).ravel())  # a framing a Python script would likely write
        npy_bz2_nbytes += len(bz2.compress(buffer.getvalue(), 9))
        index_bits += bits_per_index * indices.size
        num_indices += indices.size
        wav_nbytes += path.stat().st_size
    return {"bz2_nbytes": bz2_nbytes, "ratio_bz2_indices": wav_nbytes / bz2_nbytes,
            "npy_bz2_nbytes": npy_bz2_nbytes, "ratio_npy_bz2_indices": wav_nbytes / npy_bz2_nbytes,
            "index_nbytes": index_bits / 8.0, "ratio_index_bits": wav_nbytes / (index_bits / 8.0),
            "indices_per_file": num_indices / len(files), "bits_per_index": bits_per_index}


def fmt(value, digits=3):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if not np.isfinite(value):
        return "inf" if value > 0 else "n/a"
    return f"{value:.{digits}g}" if abs(value) < 1000 else f"{value:,.0f}"


def median(summary, key):
    stats = summary[key]
    if stats["num_values"] and stats["num_infinite"] == stats["num_values"]:
        return float("inf")
    return stats["median"]


def verdict(result) -> list[str]:
    """Plain sentences comparing the measured figures with the paper's, built from the numbers."""
    rows = {row["name"]: row for row in result["rows"]}
    hybrid = result["rows"][0]
    mean = rows["mean only"]
    midpoint = rows["segment min/max only (the hybrid's side information, no network)"]
    down = rows["downsample x256, zstd-19"]
    paper_way = result["vqcae_paper_way"]
    snr = median(hybrid["summary"], "snr_db")
    lines = [
        f"- Ratio: counting every byte a user stores (our container), the hybrid reaches {hybrid['ratio']:.0f}x, "
        f"{'below' if hybrid['ratio'] < PAPER['ratio'] else 'above'} the reported 393.86x; its codec payload alone (entropy-coded "
        f"indices + 4 bytes of min/max per segment) is {hybrid['ratio_payload_only']:.0f}x, and the paper's count (bz2 of the "
        f"indices alone) gives {paper_way['ratio_bz2_indices']:.0f}x ({paper_way['bz2_nbytes'] / result['num_files']:.0f} bytes/file; "
        f"{paper_way['npy_bz2_nbytes'] / result['num_files']:.0f} bytes/file with .npy framing). The reported 393.86x (~503 bytes/file) "
        "is thus a statement about framing overhead, not about the signal: any of these counts ignores that 13 indices "
        "cannot carry the waveform.",
        f"- Fidelity: median SNR {snr:.2f} dB (paper 1.19 dB), PSNR {median(hybrid['summary'], 'psnr_signal_peak_db'):.1f} dB "
        f"(paper 25.2), MSE {median(hybrid['summary'], 'mse_normalized'):.4f} (paper 0.0126), SSIM "
        f"{median(hybrid['summary'], 'ssim'):.3f} (paper 0.450). Sending only each file's mean (6 bytes) gives a median SNR of "
        f"{median(mean['summary'], 'snr_db'):.2f} dB and SSIM {median(mean['summary'], 'ssim'):.3f}: on SNR the hybrid "
        f"{'does not beat' if snr <= median(mean['summary'], 'snr_db') else 'beats'} it, on SSIM it "
        f"{'does not beat' if median(hybrid['summary'], 'ssim') <= median(mean['summary'], 'ssim') else 'beats'} it. Its side information alone "
        f"(per-segment midpoints, no network) gives {median(midpoint['summary'], 'snr_db'):.2f} dB.",
        f"- At a comparable ratio ({down['ratio']:.0f}x), plain downsampling by 256 + zstd gives SNR "
        f"{median(down['summary'], 'snr_db'):.2f} dB, PSNR {median(down['summary'], 'psnr_signal_peak_db'):.1f} dB, SSIM "
        f"{median(down['summary'], 'ssim'):.3f}: better than the hybrid on every metric the paper reports.",
        f"- For neural data the hybrid keeps nothing: spike-window SNDR {median(hybrid['summary'], 'spike_sndr_db'):.2f} dB, "
        f"{hybrid['summary']['pooled_detection']['num_spikes_reconstruction']} threshold crossings detected in the reconstructions "
        f"against {hybrid['summary']['pooled_detection']['num_spikes_original']} in the originals (recall "
        f"{hybrid['summary']['pooled_detection']['recall']:.2f}). WavPack hybrid at ~7x keeps recall "
        f"{rows['wavpack hybrid bps=2.25 (lossy)']['summary']['pooled_detection']['recall']:.2f}; the lossless codecs keep everything "
        "and are what the challenge asks for.",
    ]
    return lines


def to_markdown(result) -> str:
    vq = result["vqcae_paper_way"]
    lines = [
        "# VQ-CAE hybrid on Neuralink N1: reproduction against baselines",
        "",
        f"Held-out files: {result['num_files']} of {result['num_files_total']} (split by file: sorted names, first 70 % train; "
        f"the model never saw these). Model `{result['model']}` sha256 `{result['model_sha256'][:16]}...`, "
        f"{result['training_epochs']} epochs. Medians over files; ratio = total WAV bytes / total compressed bytes.",
        "",
        "## Paper vs measured (vqcae-hybrid, held-out files)",
        "",
        "| | paper | measured here |",
        "|---|---|---|",
    ]
    row = result["rows"][0]
    summary = row["summary"]
    lines += [
        f"| compression ratio, every container byte (ours) | 393.86 | {row['ratio']:.1f} |",
        f"| compression ratio, codec payload (indices + min/max) | - | {row['ratio_payload_only']:.1f} |",
        f"| compression ratio, paper's way (bz2 of indices only) | 393.86 (~503 bytes/file) | {vq['ratio_bz2_indices']:.1f} "
        f"({vq['bz2_nbytes'] / result['num_files']:.0f} bytes/file) |",
        f"| compression ratio, bz2 of the indices saved as an int64 .npy array | - | {vq['ratio_npy_bz2_indices']:.1f} "
        f"({vq['npy_bz2_nbytes'] / result['num_files']:.0f} bytes/file) |",
        f"| compression ratio, bare {vq['bits_per_index']}-bit indices ({vq['indices_per_file']:.1f} per file) | - | {vq['ratio_index_bits']:,.0f} |",
        f"| SNR (dB) | 1.19 | {fmt(median(summary, 'snr_db'))} |",
        f"| PSNR (dB, peak = signal peak-to-peak) | 25.2 | {fmt(median(summary, 'psnr_signal_peak_db'))} |",
        f"| MSE ([-1, 1]-normalised) | 0.0126 | {fmt(median(summary, 'mse_normalized'))} |",
        f"| SSIM | 0.450 | {fmt(median(summary, 'ssim'))} |",
        f"| spike-window SNDR (dB) | not reported | {fmt(median(summary, 'spike_sndr_db'))} |",
        f"| spike detection precision / recall (pooled) | not reported | {fmt(summary['pooled_detection']['precision'])} / "
        f"{fmt(summary['pooled_detection']['recall'])} |",
        f"| mean-only baseline SNR (dB) | - | {fmt(median(result['rows'][3]['summary'], 'snr_db'))} |",
        f"| encode / decode time per 8000-sample segment (s) | 0.11 / 0.12 | {row['encode_s_per_segment']:.4f} / "
        f"{row['decode_s_per_segment']:.4f} (CPU, 1 thread, whole pipeline incl. container) |",
        "",
        "## Verdict",
        "",
        *verdict(result),
        "",
        "## All rows",
        "",
        "| method | ratio | SNR dB | PSNR dB (signal peak) | MSE (norm.) | SSIM | PSNR dB (full scale) | spike SNDR dB | det. precision | det. recall | lossless |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in result["rows"]:
        if row.get("pending"):
            lines.append(f"| {row['name']} | pending | - | - | - | - | - | - | - | - | - |")
            continue
        summary = row["summary"]
        pooled = summary["pooled_detection"]
        lines.append(
            f"| {row['name']} | {row['ratio']:.2f} | {fmt(median(summary, 'snr_db'))} | {fmt(median(summary, 'psnr_signal_peak_db'))} | "
            f"{fmt(median(summary, 'mse_normalized'))} | {fmt(median(summary, 'ssim'))} | {fmt(median(summary, 'psnr_full_scale_db'))} | "
            f"{fmt(median(summary, 'spike_sndr_db'))} | {fmt(pooled['precision'])} | {fmt(pooled['recall'])} | "
            f"{'yes (verified)' if row['lossless'] else 'no'} |"
        )
    lines += ["", "Notes:", ""]
    for row in result["rows"]:
        if row.get("note"):
            lines.append(f"- **{row['name']}**: {row['note']}")
    lines += ["", *result["notes"]]
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DATA))
    parser.add_argument("--max-files", type=int, default=None)
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--model", default="vqcae_hybrid_n1", help="shipped model name or weights path (with its .json card beside it)")
    args = parser.parse_args(argv)

    import torch

    torch.set_num_threads(1)
    from spikeinterface_vqcompress.core.codecs.vqcae_hybrid import load_model_card
    from spikeinterface_vqcompress.core.registry import get_codec

    card = load_model_card(args.model)
    if card is None:
        raise FileNotFoundError(f"model {args.model} has no model card (.json beside the weights); the held-out split is read from it")
    held_out = card["training"]["held_out_files"]
    all_files = sorted(Path(args.data).glob("*.wav"))
    files = [path for path in all_files if path.name in set(held_out)]
    if set(card["training"]["train_files"]) & {path.name for path in files}:
        raise RuntimeError("a training file is in the evaluation set")
    if args.max_files:
        files = files[: args.max_files]
    start = time.perf_counter()
    codec = get_codec("vqcae-hybrid", model=args.model)
    rows = []
    output = Path(args.output)
    rows.append(run_codec("vqcae-hybrid (shipped model)", files, codec,
                          "ratio counts every container byte (its JSON header, ~0.8 kB per file, dominates); see the payload "
                          "and paper ratios above. Histograms and a waveform plot: vqcae_reproduction_plots/",
                          output_folder=output / "vqcae_reproduction_plots"))
    num_segments = sum(-(-read_num_samples(path) // 8000) for path in files)
    rows[0]["encode_s_per_segment"] = rows[0]["encode_s"] / num_segments
    rows[0]["decode_s_per_segment"] = rows[0]["decode_s"] / num_segments
    rows.append(run_codec("vqcae-hybrid, VQ-VAE only (no CAE post-filter)", files, {"id": "vqcae-hybrid", "model": args.model, "post_filter": False}))
    rows.append(run_signal_baseline("segment min/max only (the hybrid's side information, no network)", files, segment_midpoint,
                                    "4 bytes per 8000 samples; each segment rebuilt as its midpoint (max+min)/2; bytes = payload only"))
    rows.append(run_signal_baseline("mean only", files, mean_only, "each file's mean: 2 bytes + 4 bytes of length"))
    for factor in (4, 16, 64, 256):
        rows.append(run_signal_baseline(f"downsample x{factor}, raw int16", files, make_downsampler(factor, False),
                                        "FIR decimation (zero phase), polyphase upsampling back; bytes = int16 samples + 4"))
    for factor in (16, 256):
        rows.append(run_signal_baseline(f"downsample x{factor}, zstd-19", files, make_downsampler(factor, True),
                                        "as the raw row, samples compressed with zstd level 19"))
    rows.append(run_codec("flac (lossless)", files, {"id": "flac"}))
    rows.append(run_codec("wavpack (lossless)", files, {"id": "wavpack"}))
    rows.append(run_codec("zstd (lossless)", files, {"id": "zstd"}))
    rows.append(run_codec("wavpack hybrid bps=2.25 (lossy)", files, {"id": "wavpack", "bps": 2.25}))
    rows.append({"name": "our broadband codec at matched bytes", "pending": True,
                 "note": "pending: the broadband learned codec does not exist yet in this package"})
    paper_way = vqcae_paper_bytes(files, codec)
    notes = [
        "Reading the table:",
        "",
        "- The paper's SNR counts the DC offset of the N1 signals as signal. Sending only each file's mean "
        "(6 bytes) already gives the SNR in the 'mean only' row; sending only the hybrid's side information "
        "(per-segment min/max, no network) gives the 'segment min/max only' row.",
        "- The paper's 393.86x comes from ~503 bytes per file: bz2 framing around ~13 seven-bit indices. "
        "Its CAE latent is never transmitted (the CAE only post-filters the decoded signal), as here.",
        "- FLAC reaches only ~1.5x on these files because the 10-bit codes are stretched to int16 (steps of ~64); "
        "the challenge this method targets is lossless.",
        "- Spike metrics: 300-6000 Hz band, threshold 4.5 x MAD noise of the original, the original's threshold "
        "reused on the reconstruction, matching tolerance 0.5 ms; files without spikes give no recall.",
    ]
    result = {
        "model": codec.params["model"], "model_sha256": codec.model_sha256,
        "training_epochs": card["training"]["epochs"], "num_files": len(files), "num_files_total": len(all_files),
        "files": [path.name for path in files], "paper": PAPER, "vqcae_paper_way": paper_way, "rows": rows,
        "notes": notes, "elapsed_s": time.perf_counter() - start,
    }
    from spikeinterface_vqcompress.core.jsonio import write_json

    write_results(output, "vqcae_reproduction", result)
    markdown = to_markdown(result)
    (output / "vqcae_reproduction.md").write_text(markdown)
    print(markdown)
    # the model card's held-out metrics come from this run
    if not args.max_files and args.model == "vqcae_hybrid_n1":
        vq_summary = rows[0]["summary"]
        card["held_out_metrics"] = {
            "source": "benchmarks/vqcae_reproduction.py (benchmarks/results/vqcae_reproduction.json)",
            "num_files": len(files),
            "ratio_container_bytes": rows[0]["ratio"],
            "ratio_payload_only": rows[0]["ratio_payload_only"],
            "ratio_paper_way_bz2_indices": paper_way["ratio_bz2_indices"],
            "median": {key: median(vq_summary, key) for key in SUMMARY_KEYS},
            "pooled_detection": vq_summary["pooled_detection"],
        }
        write_json(CARD, card)


if __name__ == "__main__":
    main()
