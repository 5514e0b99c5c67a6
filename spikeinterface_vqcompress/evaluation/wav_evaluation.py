"""Evaluate a codec on a folder of WAV files (e.g. the Neuralink N1 files): real bytes, verification,
the metric suite of :mod:`~spikeinterface_vqcompress.evaluation.signal_metrics` and plots.

Each file is wrapped in a ``NumpyRecording`` and goes through the common measure step
(:func:`~spikeinterface_vqcompress.evaluation.measure.measure_codec`: our ``.vqc`` container in
memory, decoded from its bytes), so the size counted is every byte of the container a user would
store: header, chunk index, CRCs and payload. The ratio is the total size of the WAV files over
the total size of the containers (the challenge's rule: total bytes in over total bytes out).

Files up to ``MAX_SINGLE_CHUNK_S`` long are one container chunk (so a segmenting codec such as
``vqcae-hybrid`` sees the file as the paper did); longer files use chunks of about 10 s rounded to a
multiple of the codec's ``segment_num_samples`` where it has one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeinterface_vqcompress.evaluation.signal_metrics import METRIC_LABELS, signal_metrics, summarize
from spikeinterface_vqcompress.core.jsonio import write_json

MAX_SINGLE_CHUNK_S = 60.0
LONG_FILE_CHUNK_S = 10.0


def read_wav(path) -> tuple[int, np.ndarray]:
    """Read a WAV file as ``(sampling_frequency_Hz, traces (num_samples, num_channels))``."""
    from scipy.io import wavfile

    sampling_frequency, data = wavfile.read(path)
    data = np.asarray(data)
    if data.ndim == 1:
        data = data[:, None]
    if data.dtype != np.int16:
        raise TypeError(
            f"{path}: WAV samples are {data.dtype}; the codecs here take 16-bit PCM WAV files (int16). "
            "Convert it first, e.g. with sox IN.wav -b 16 OUT.wav"
        )
    return int(sampling_frequency), data


def write_wav(path, sampling_frequency: float, traces: np.ndarray):
    """Write ``traces`` (num_samples, num_channels) as a PCM WAV file (mono when one channel)."""
    from scipy.io import wavfile

    traces = np.asarray(traces)
    if traces.ndim == 2 and traces.shape[1] == 1:
        traces = traces[:, 0]
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    wavfile.write(path, int(round(sampling_frequency)), traces)


def chunk_duration_for(codec, num_samples: int, sampling_frequency: float) -> float:
    """Container chunk duration (s): the whole file when short, else ~10 s aligned to the codec's segments."""
    if num_samples <= MAX_SINGLE_CHUNK_S * sampling_frequency:
        return num_samples / sampling_frequency
    multiple = int(getattr(codec, "segment_num_samples", 1) or 1)
    chunk_num_samples = max(multiple, int(round(LONG_FILE_CHUNK_S * sampling_frequency / multiple)) * multiple)
    return chunk_num_samples / sampling_frequency


def traces_to_recording(traces: np.ndarray, sampling_frequency: float):
    from spikeinterface.core import NumpyRecording

    return NumpyRecording([np.ascontiguousarray(traces)], sampling_frequency=float(sampling_frequency))


def compress_traces(traces: np.ndarray, sampling_frequency: float, codec, warm_up: bool = False) -> tuple[dict, np.ndarray]:
    """Compress traces through the container and rebuild them from the bytes (the measure step).

    Returns
    -------
    row : dict
        The row of :func:`~spikeinterface_vqcompress.evaluation.measure.measure_codec`
        (``encoded_nbytes``: every byte of the container, ``payload_nbytes``: the codec's chunk
        bytes only, ``encode_time_s``, ``decode_time_s``, ``exact``, ...).
    reconstruction : np.ndarray
        The traces rebuilt from the bytes, ``(num_samples, num_channels)``.
    """
    from spikeinterface_vqcompress.core.registry import get_codec
    from spikeinterface_vqcompress.evaluation.measure import measure_codec

    codec = get_codec(codec)
    recording = traces_to_recording(traces, sampling_frequency)
    row, compressed = measure_codec(recording, codec, chunk_duration_s=chunk_duration_for(codec, traces.shape[0], sampling_frequency),
                                    warm_up=warm_up, progress_bar=False)
    return row, compressed.get_traces()


def evaluate_wav_files(files, codec, output_folder=None, plots: bool = True, log=print) -> dict:
    """Compress every file, check it, compute the metric suite; optionally write the report and plots.

    Parameters
    ----------
    files : list of str | Path
        WAV files (int16, mono or multichannel; each channel is scored separately).
    codec : str | dict | Codec
        The codec.
    output_folder : str | Path | None, default: None
        Write ``evaluation.json``, ``evaluation.md``, ``metric_distributions.png`` and
        ``waveform.png`` there.
    plots : bool, default: True
    log : callable, default: print

    Returns
    -------
    dict
        ``codec``, ``lossless``, ``verification``, ``totals`` (bytes, ratio, times), ``summary``
        (per metric: mean, median, std, min, max over channels of files) and ``files``.
    """
    from spikeinterface_vqcompress.core.registry import get_codec

    codec = get_codec(codec)
    files = [Path(path) for path in files]
    if not files:
        raise FileNotFoundError("no WAV files to evaluate; point at a folder holding *.wav files")
    per_file = []
    totals = {"num_files": len(files), "wav_nbytes": 0, "sample_nbytes": 0, "encoded_nbytes": 0, "payload_nbytes": 0,
              "num_samples": 0, "encode_time_s": 0.0, "decode_time_s": 0.0}
    max_abs_error = 0.0
    all_exact = True
    for number, path in enumerate(files):
        sampling_frequency, traces = read_wav(path)
        # one-off costs (numba compilation, a model's first forward pass) are kept out of the first file's times
        row, reconstruction = compress_traces(traces, sampling_frequency, codec, warm_up=number == 0)
        exact = bool(row["exact"])
        if codec.lossless and not exact:
            raise RuntimeError(f"codec {codec.codec_id} claims to be lossless but {path.name} did not decode bit-exactly")
        all_exact &= exact
        channels = []
        for channel in range(traces.shape[1]):
            metrics = signal_metrics(traces[:, channel], reconstruction[:, channel], sampling_frequency)
            channels.append(metrics)
            max_abs_error = max(max_abs_error, metrics["max_abs_error"])
        entry = {
            "file": path.name,
            "sampling_frequency": sampling_frequency,
            "num_samples": int(traces.shape[0]),
            "num_channels": int(traces.shape[1]),
            "wav_nbytes": path.stat().st_size,
            "encoded_nbytes": row["encoded_nbytes"],
            "payload_nbytes": row["payload_nbytes"],
            "ratio": path.stat().st_size / row["encoded_nbytes"],
            "encode_time_s": row["encode_time_s"],
            "decode_time_s": row["decode_time_s"],
            "exact": exact,
            "channels": channels,
        }
        per_file.append(entry)
        totals["wav_nbytes"] += entry["wav_nbytes"]
        totals["sample_nbytes"] += int(traces.nbytes)
        totals["encoded_nbytes"] += entry["encoded_nbytes"]
        totals["payload_nbytes"] += entry["payload_nbytes"]
        totals["num_samples"] += int(traces.size)
        totals["encode_time_s"] += entry["encode_time_s"]
        totals["decode_time_s"] += entry["decode_time_s"]
        if log:
            first = channels[0]
            log(f"[{number + 1}/{len(files)}] {path.name}: {entry['encoded_nbytes']} bytes (x{entry['ratio']:.2f}), "
                f"SNR {first['snr_db']:.2f} dB, SSIM {first['ssim']:.3f}")
    totals["ratio_wav_bytes"] = totals["wav_nbytes"] / totals["encoded_nbytes"]
    totals["ratio_sample_bytes"] = totals["sample_nbytes"] / totals["encoded_nbytes"]
    totals["ratio_payload_only"] = totals["wav_nbytes"] / max(totals["payload_nbytes"], 1)
    totals["bits_per_sample"] = 8.0 * totals["encoded_nbytes"] / totals["num_samples"]
    channel_metrics = [metrics for entry in per_file for metrics in entry["channels"]]
    summary = {key: summarize([metrics[key] for metrics in channel_metrics]) for key in METRIC_LABELS}
    summary["mse"] = summarize([metrics["mse"] for metrics in channel_metrics])
    pooled = {key: int(sum(metrics[key] for metrics in channel_metrics))
              for key in ("num_spikes_original", "num_spikes_reconstruction", "num_spikes_matched")}
    pooled["precision"] = pooled["num_spikes_matched"] / pooled["num_spikes_reconstruction"] if pooled["num_spikes_reconstruction"] else float("nan")
    pooled["recall"] = pooled["num_spikes_matched"] / pooled["num_spikes_original"] if pooled["num_spikes_original"] else float("nan")
    if codec.lossless or all_exact:
        verification = {"lossless": True, "exact": True, "text": f"lossless: all {len(files)} files decode bit-exactly"}
    else:
        verification = {"lossless": False, "exact": False, "max_abs_error": max_abs_error,
                        "text": f"lossy (not lossless): maximum absolute error {max_abs_error:.0f} stored units"}
    training_files = set(getattr(codec, "training_files", []) or [])
    overlap = sorted(path.name for path in files if path.name in training_files)
    report = {
        "training_files_evaluated": overlap,
        "codec": codec.get_config(),
        "codec_lossless": bool(codec.lossless),
        "model_sha256": codec.model_sha256,
        "verification": verification,
        "totals": totals,
        "spike_detection_pooled": pooled,
        "summary": summary,
        "metric_definitions": {key: label for key, label in METRIC_LABELS.items()},
        "files": per_file,
    }
    if output_folder is not None:
        output_folder = Path(output_folder)
        output_folder.mkdir(parents=True, exist_ok=True)
        paths = write_report(report, output_folder)
        if plots:
            paths.append(plot_metric_distributions(channel_metrics, output_folder / "metric_distributions.png",
                                                   title=_codec_title(report)))
            # the waveform plot shows the file of median SNR (first channel), rebuilt again from its bytes
            order = np.argsort([entry["channels"][0]["snr_db"] for entry in per_file], kind="stable")
            entry = per_file[int(order[len(order) // 2])]
            _, traces = read_wav(files[per_file.index(entry)])
            original = traces[:, 0]
            reconstruction = compress_traces(traces, entry["sampling_frequency"], codec)[1][:, 0]
            paths.append(plot_waveforms(original, reconstruction, entry["sampling_frequency"], output_folder / "waveform.png",
                                        title=f"{entry['file']} - {_codec_title(report)}"))
        report["output_files"] = [str(path) for path in paths]
    return report


def _codec_title(report) -> str:
    config = dict(report["codec"])
    name = config.pop("id")
    config.pop("model_sha256", None)
    return name + ("" if not config else " (" + ", ".join(f"{k}={v}" for k, v in config.items()) + ")")


def format_summary_table(report: dict) -> str:
    """The ratio, verification and metric table as markdown."""
    totals = report["totals"]
    lines = [
        f"codec: {_codec_title(report)}",
        f"files: {totals['num_files']}; WAV bytes {totals['wav_nbytes']:,} -> container bytes {totals['encoded_nbytes']:,}",
        f"compression ratio (total WAV bytes / total container bytes): {totals['ratio_wav_bytes']:.2f}x "
        f"({totals['bits_per_sample']:.4f} bits/sample; samples only: {totals['ratio_sample_bytes']:.2f}x; "
        f"codec payload only, without container header/index: {totals['ratio_payload_only']:.2f}x)",
        f"verification: {report['verification']['text']}",
    ]
    if report.get("training_files_evaluated"):
        lines.append(f"warning: {len(report['training_files_evaluated'])} of these files were used to train the model; "
                     "pass --held-out-only to score only files it never saw")
    lines += [
        "",
        "| metric | median | mean | std | min | max |",
        "|---|---|---|---|---|---|",
    ]
    for key, label in list(METRIC_LABELS.items()) + [("mse", "MSE (stored units^2)")]:
        stats = report["summary"][key]
        if stats["num_values"] and stats["num_infinite"] == stats["num_values"]:
            cells = ["inf (exact)"] * 5
            note = ""
        else:
            cells = [f"{stats[name]:.4g}" for name in ("median", "mean", "std", "min", "max")]
            note = f" ({stats['num_infinite']} exact: inf left out)" if stats["num_infinite"] else ""
        lines.append(f"| {label}{note} | " + " | ".join(cells) + " |")
    pooled = report["spike_detection_pooled"]
    lines += ["", f"spike detection pooled over files: {pooled['num_spikes_original']} spikes in the originals, "
              f"{pooled['num_spikes_reconstruction']} in the reconstructions, {pooled['num_spikes_matched']} matched: "
              f"precision {pooled['precision']:.3f}, recall {pooled['recall']:.3f}"]
    return "\n".join(lines)


def write_report(report: dict, output_folder) -> list[Path]:
    output_folder = Path(output_folder)
    json_path = write_json(output_folder / "evaluation.json", report)
    markdown_path = output_folder / "evaluation.md"
    markdown_path.write_text("# Codec evaluation on WAV files\n\n" + format_summary_table(report) + "\n")
    return [json_path, markdown_path]


def plot_metric_distributions(channel_metrics: list[dict], path, title: str = "") -> Path:
    """Histograms of each metric over files (as the paper's distribution plots)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    keys = list(METRIC_LABELS)
    figure, axes = plt.subplots(2, 4, figsize=(16, 7))
    for axis, key in zip(axes.ravel(), keys):
        values = np.asarray([metrics[key] for metrics in channel_metrics], dtype=np.float64)
        finite = values[np.isfinite(values)]
        if finite.size:
            axis.hist(finite, bins=min(30, max(5, finite.size // 2)), color="tab:blue", alpha=0.8)
            axis.axvline(np.median(finite), color="tab:red", linestyle="--", label=f"median {np.median(finite):.3g}")
            axis.legend(fontsize=8)
        else:
            axis.text(0.5, 0.5, "no finite values" + (" (exact)" if np.isinf(values).any() else " (e.g. nothing detected)"), ha="center", va="center",
                      transform=axis.transAxes)
        axis.set_title(METRIC_LABELS[key], fontsize=9)
        axis.set_ylabel("files")
    figure.suptitle(title)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)


def plot_waveforms(original: np.ndarray, reconstruction: np.ndarray, sampling_frequency: float, path, title: str = "") -> Path:
    """Original vs reconstructed: the whole signal and a 20 ms zoom on its largest negative spike."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from spikeinterface_vqcompress.evaluation.signal_metrics import bandpass

    original = np.asarray(original, dtype=np.float64)
    reconstruction = np.asarray(reconstruction, dtype=np.float64)
    time_s = np.arange(original.size) / sampling_frequency
    figure, axes = plt.subplots(2, 1, figsize=(14, 7))
    axes[0].plot(time_s, original, color="black", linewidth=0.4, label="original")
    axes[0].plot(time_s, reconstruction, color="tab:red", linewidth=0.6, alpha=0.8, label="reconstructed")
    axes[0].set_xlabel("time (s)")
    axes[0].set_ylabel("stored units")
    axes[0].legend(loc="upper right")
    axes[0].set_title(title)
    center = int(np.argmin(bandpass(original, sampling_frequency)))
    half = int(0.01 * sampling_frequency)
    window = slice(max(center - half, 0), min(center + half, original.size))
    axes[1].plot(time_s[window] * 1000.0, original[window], color="black", linewidth=1.0, label="original")
    axes[1].plot(time_s[window] * 1000.0, reconstruction[window], color="tab:red", linewidth=1.0, label="reconstructed")
    axes[1].set_xlabel("time (ms)")
    axes[1].set_ylabel("stored units")
    axes[1].set_title("20 ms around the largest negative spike (300-6000 Hz band) of the original")
    axes[1].legend(loc="upper right")
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
    return Path(path)
