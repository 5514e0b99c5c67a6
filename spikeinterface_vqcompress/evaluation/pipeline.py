"""The compress -> rebuild -> sort -> compare pipeline.

``evaluate(recording, gt_sorting, codec, sorter, seeds)`` sorts the raw recording and the recording
rebuilt from the real compressed bytes with the same sorter and seeds, scores both against the
ground truth, and measures the ratio, the fidelity, the speed and the memory of the codec.
"""

from __future__ import annotations

import json
import math
import shutil
import tempfile
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import numpy as np

from spikeinterface_vqcompress.core.registry import get_codec
from spikeinterface_vqcompress.evaluation.metrics import compare_traces, spike_window_fidelity

WELL_DETECTED_ACCURACY = 0.8


@contextmanager
def measure_peak_memory(interval_s: float = 0.01):
    """Sample this process's resident memory in a thread; yields a dict filled on exit with
    ``peak_MB`` (highest RSS seen) and ``delta_MB`` (peak minus RSS at entry)."""
    import psutil

    process = psutil.Process()
    result = {"start_MB": process.memory_info().rss / 2**20}
    peak = [result["start_MB"]]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], process.memory_info().rss / 2**20)
            stop.wait(interval_s)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()
        peak[0] = max(peak[0], process.memory_info().rss / 2**20)
        result["peak_MB"] = peak[0]
        result["delta_MB"] = peak[0] - result["start_MB"]


def score_sorting(gt_sorting, sorting, well_detected_accuracy: float = WELL_DETECTED_ACCURACY) -> dict:
    """Compare a sorting to ground truth: mean/median accuracy, precision, recall, unit counts."""
    from spikeinterface.comparison import compare_sorter_to_ground_truth

    comparison = compare_sorter_to_ground_truth(gt_sorting, sorting, exhaustive_gt=True)
    performance = comparison.get_performance(method="by_unit")
    return {
        "accuracy_mean": float(performance["accuracy"].mean()),
        "accuracy_median": float(performance["accuracy"].median()),
        "precision_mean": float(performance["precision"].mean()),
        "recall_mean": float(performance["recall"].mean()),
        "num_gt_units": int(len(gt_sorting.unit_ids)),
        "num_sorted_units": int(len(sorting.unit_ids)),
        "num_well_detected": int(comparison.count_well_detected_units(well_detected_accuracy)),
        "num_false_positive": int(comparison.count_false_positive_units()),
        "num_redundant": int(comparison.count_redundant_units()),
    }


def run_seeded_sorter(recording, sorter: str, seed: int | None, folder, sorter_params: dict | None = None,
                      job_kwargs: dict | None = None):
    """Run a SpikeInterface sorter into ``folder`` (replaced if present), seeded where it takes a seed.

    Returns
    -------
    sorting : BaseSorting
    sort_time_s : float
    """
    import spikeinterface.sorters as ss

    params = dict(sorter_params or {})
    default_params = ss.get_default_sorter_params(sorter)
    if seed is not None and "seed" in default_params:
        params["seed"] = int(seed)
    if job_kwargs and "job_kwargs" in default_params:
        params["job_kwargs"] = {**default_params.get("job_kwargs", {}), **job_kwargs}
    t0 = time.perf_counter()
    sorting = ss.run_sorter(sorter, recording, folder=str(folder), remove_existing_folder=True, verbose=False, **params)
    return sorting, time.perf_counter() - t0


def sort_and_score(recording, gt_sorting, sorter: str, seed: int | None, folder, sorter_params: dict | None = None,
                   job_kwargs: dict | None = None) -> dict:
    """Run a SpikeInterface sorter (seeded where it takes a seed) and score it."""
    sorting, sort_time_s = run_seeded_sorter(recording, sorter, seed, folder, sorter_params, job_kwargs)
    scores = score_sorting(gt_sorting, sorting)
    scores["sort_time_s"] = sort_time_s
    scores["seed"] = seed
    return scores


def summarize_repeats(repeats: list[dict]) -> dict:
    """Mean and spread over repeats of each score."""
    summary = {"num_repeats": len(repeats), "num_gt_units": repeats[0]["num_gt_units"]}
    for key in ("accuracy_mean", "accuracy_median", "precision_mean", "recall_mean", "num_sorted_units", "num_well_detected",
                "num_false_positive", "num_redundant", "sort_time_s"):
        values = np.array([repeat[key] for repeat in repeats], dtype=float)
        summary[key] = float(values.mean())
        summary[key + "_std"] = float(values.std())
    return summary


def measure_decode(compressed) -> dict:
    """Decode every chunk of a compressed recording from its bytes; time and peak memory."""
    reader = compressed._reader
    reader._cache.clear()
    with measure_peak_memory() as memory:
        t0 = time.perf_counter()
        for segment_index, chunks in enumerate(reader.chunks):
            for chunk_index in range(len(chunks)):
                reader.decode_chunk(segment_index, chunk_index)
        decode_time_s = time.perf_counter() - t0
    reader._cache.clear()
    return {"decode_time_s": decode_time_s, "decode_peak_memory_MB": memory["delta_MB"]}


def codec_label(config: dict) -> str:
    """Short human label of a codec config: ``wavpack(bps=2.25)``.

    The codec's first parameter (its main knob) is always shown; other parameters left at their
    defaults, or None, are left out; long hashes are cut to 8 characters.
    """
    import inspect

    from spikeinterface_vqcompress.core.registry import get_codec_class

    try:
        signature = list(inspect.signature(get_codec_class(config["id"]).__init__).parameters.values())[1:]
        defaults = {parameter.name: parameter.default for parameter in signature[1:]}
    except (KeyError, ValueError):
        defaults = {}
    shown = []
    for key, value in config.items():
        if key == "id" or value is None or (key in defaults and defaults[key] == value):
            continue
        if isinstance(value, str) and len(value) > 16 and all(character in "0123456789abcdef" for character in value):
            value = value[:8]
        shown.append(f"{key}={value}")
    return f"{config['id']}({', '.join(shown)})" if shown else config["id"]


def _warm_up(codec, recording, chunk_duration_s: float) -> None:
    """Encode and decode the first chunk once before the timed run.

    One-off costs are not the codec's speed: numba compiles the broadband kernels on their first
    use (about a minute on a new machine, before its on-disk cache exists), and a model's first
    forward pass allocates its buffers. The chunk is the one the timed run encodes first.
    """
    from spikeinterface_vqcompress.recording import codec_for_recording

    codec = codec_for_recording(codec, recording)
    num_samples = min(max(int(round(chunk_duration_s * recording.sampling_frequency)), 1), recording.get_num_samples(0))
    traces = recording.get_traces(segment_index=0, start_frame=0, end_frame=num_samples)
    codec.decode(codec.encode(traces), traces.shape[0], traces.shape[1], traces.dtype)


def evaluate(recording, gt_sorting, codec="flac", sorter: str | None = "tridesclous2", seeds=(0,), codec_params=None,
             sorter_params=None, output_folder=None, adc_bits: int | None = None, chunk_duration_s: float = 1.0,
             raw_scores: list[dict] | None = None, compute_fidelity: bool = True, reuse_raw_sorting_if_exact: bool = False,
             hardware_kwargs: dict | None = None, **job_kwargs) -> dict:
    """Compress, rebuild, sort and score against ground truth; raw recording alongside.

    Parameters
    ----------
    recording : BaseRecording
        The raw recording (e.g. from :func:`~spikeinterface_vqcompress.groundtruth.load_ground_truth`).
    gt_sorting : BaseSorting
        Its ground truth.
    codec : str | dict | Codec, default: "flac"
        The codec to evaluate.
    sorter : str | None, default: "tridesclous2"
        SpikeInterface sorter name; None skips sorting (ratio and fidelity only).
    seeds : sequence of int, default: (0,)
        One sorting per seed, on the raw and on the rebuilt recording (repeats give the spread).
    codec_params : dict | None, default: None
        Parameters of the codec when given by name.
    sorter_params : dict | None, default: None
        Extra sorter parameters.
    output_folder : str | Path | None, default: None
        Where sorter folders and ``evaluation.json`` go; None uses a temporary folder.
    adc_bits : int | None, default: None
        ADC bit depth for the ratio against the ADC; default: the stored dtype's bits.
    chunk_duration_s : float, default: 1.0
        Container chunk duration.
    raw_scores : list of dict | None, default: None
        Scores of the raw recording computed earlier (same sorter and seeds), to sort it once for
        several codecs.
    compute_fidelity : bool, default: True
        Compute RMSE and spike-window SNDR.
    reuse_raw_sorting_if_exact : bool, default: False
        When the rebuilt traces are verified bit-identical to the raw ones, report the raw sorting's
        scores instead of sorting again (flagged ``sorting_reused_from_raw`` in the result).
    hardware_kwargs : dict | None, default: None
        Options of the hardware report (``budget``, ``energy_model``, ``weight_bits``, ...; see
        :func:`spikeinterface_vqcompress.hardware.hardware_report`).
    **job_kwargs
        ``n_jobs``, ``progress_bar``, ... for compression and sorting.

    Returns
    -------
    dict
        One flat result: ratios, bytes, fidelity, times, memory, and ``raw`` / ``compressed`` score
        summaries (mean and ``_std`` over seeds) with every repeat under ``repeats``.
    """
    from spikeinterface_vqcompress.recording import compress

    codec_object = get_codec(codec, **(codec_params or {}))
    config = codec_object.get_config()
    label = codec_label(config)
    temporary = output_folder is None
    output_folder = Path(tempfile.mkdtemp(prefix="vqcompress-evaluate-")) if temporary else Path(output_folder)
    output_folder.mkdir(parents=True, exist_ok=True)
    adc_bits = adc_bits or np.dtype(recording.get_dtype()).itemsize * 8
    try:
        _warm_up(codec_object, recording, chunk_duration_s)
        with measure_peak_memory() as encode_memory:
            compressed = compress(recording, codec=config, chunk_duration_s=chunk_duration_s, adc_bits=adc_bits, **job_kwargs)
        result = {
            "codec": label,
            "codec_config": config,
            "lossless": bool(codec_object.lossless),
            "num_channels": int(recording.get_num_channels()),
            "sampling_frequency": float(recording.sampling_frequency),
            "duration_s": float(recording.get_total_duration()),
            "dtype": str(recording.get_dtype()),
            "raw_nbytes": int(compressed.raw_nbytes),
            "encoded_nbytes": int(compressed.encoded_nbytes),
            "compression_ratio": float(compressed.compression_ratio),
            "adc_bits": int(adc_bits),
            "compression_ratio_vs_adc": float(compressed.compression_ratio_vs_adc(adc_bits)),
            "bits_per_sample": float(compressed.bits_per_sample),
            "encode_time_s": float(compressed.encode_time_s),
            "encode_peak_memory_MB": float(encode_memory["delta_MB"]),
            "hardware_profile": codec_object.hardware_profile(recording.get_num_channels(), recording.sampling_frequency).to_dict(),
            "hardware": compressed.hardware_report(adc_bits=adc_bits, **(hardware_kwargs or {})).to_dict(),
        }
        result.update(measure_decode(compressed))
        duration_s = result["duration_s"]
        result["encode_speed_x_realtime"] = duration_s / result["encode_time_s"] if result["encode_time_s"] else math.inf
        result["decode_speed_x_realtime"] = duration_s / result["decode_time_s"] if result["decode_time_s"] else math.inf
        if compute_fidelity:
            result.update(compare_traces(recording, compressed))
            if gt_sorting is not None:
                result.update(spike_window_fidelity(recording, compressed, gt_sorting))
        if sorter is not None and gt_sorting is not None:
            sorter_job_kwargs = {key: value for key, value in job_kwargs.items() if key in ("n_jobs", "progress_bar")}
            if raw_scores is None:
                raw_scores = [
                    sort_and_score(recording, gt_sorting, sorter, seed, output_folder / f"raw_{sorter}_seed{seed}", sorter_params, sorter_job_kwargs)
                    for seed in seeds
                ]
            if reuse_raw_sorting_if_exact and result.get("exact"):
                # bit-identical input: sorting it again would only measure the sorter's own run-to-run
                # variation, not an effect of the compression
                compressed_scores = [dict(scores, reused_from_raw=True) for scores in raw_scores]
            else:
                compressed_scores = [
                    sort_and_score(compressed, gt_sorting, sorter, seed, output_folder / f"{config['id']}_{sorter}_seed{seed}",
                                   sorter_params, sorter_job_kwargs)
                    for seed in seeds
                ]
            result["sorting_reused_from_raw"] = bool(reuse_raw_sorting_if_exact and result.get("exact"))
            result["sorter"] = sorter
            result["seeds"] = [int(seed) for seed in seeds]
            result["raw"] = {**summarize_repeats(raw_scores), "repeats": raw_scores}
            result["compressed"] = {**summarize_repeats(compressed_scores), "repeats": compressed_scores}
            result["accuracy_change"] = result["compressed"]["accuracy_mean"] - result["raw"]["accuracy_mean"]
        return result
    finally:
        if temporary:
            shutil.rmtree(output_folder, ignore_errors=True)


def evaluate_codecs(recording, gt_sorting, codecs, sorter="tridesclous2", seeds=(0,), output_folder=None,
                    sorter_params=None, adc_bits=None, reuse_raw_sorting_if_exact=False, verbose=False,
                    hardware_kwargs=None, **job_kwargs) -> list[dict]:
    """:func:`evaluate` for several codecs, sorting the raw recording only once per seed.

    Parameters
    ----------
    codecs : list of (str | dict | Codec)
        The codecs; a name uses the codec's default parameters, a dict is a full config.
    verbose : bool, default: False
        Print one line per finished step.
    Other parameters as in :func:`evaluate`.
    """
    import spikeinterface.sorters  # noqa: F401  (fail early if sorters are missing)

    output_folder = Path(output_folder) if output_folder is not None else Path(tempfile.mkdtemp(prefix="vqcompress-evaluate-"))
    raw_scores = None
    if sorter is not None and gt_sorting is not None:
        sorter_job_kwargs = {key: value for key, value in job_kwargs.items() if key in ("n_jobs", "progress_bar")}
        raw_scores = [
            sort_and_score(recording, gt_sorting, sorter, seed, output_folder / f"raw_{sorter}_seed{seed}", sorter_params, sorter_job_kwargs)
            for seed in seeds
        ]
        if verbose:
            accuracies = ", ".join(f"{scores['accuracy_mean']:.3f}" for scores in raw_scores)
            print(f"  raw recording sorted with {sorter}: mean accuracy {accuracies} "
                  f"({sum(scores['sort_time_s'] for scores in raw_scores):.0f} s)", flush=True)
    results = []
    for codec in codecs:
        results.append(evaluate(recording, gt_sorting, codec=codec, sorter=sorter, seeds=seeds, sorter_params=sorter_params,
                                output_folder=output_folder / "runs", adc_bits=adc_bits, raw_scores=raw_scores,
                                reuse_raw_sorting_if_exact=reuse_raw_sorting_if_exact, hardware_kwargs=hardware_kwargs,
                                **job_kwargs))
        if verbose:
            result = results[-1]
            line = f"  {result['codec']}: ratio {result['compression_ratio']:.2f}, RMSE {result.get('rmse_uV', float('nan')):.3f} uV"
            if "compressed" in result:
                reused = " (bit-exact: raw sorting reused)" if result.get("sorting_reused_from_raw") else ""
                line += f", mean accuracy {result['compressed']['accuracy_mean']:.3f}{reused}"
            print(line, flush=True)
    shutil.rmtree(output_folder / "runs", ignore_errors=True)
    return results


def _json_default(value):
    if isinstance(value, (np.integer,)):
        return int(value)
    if isinstance(value, (np.floating,)):
        return float(value)
    if isinstance(value, Path):
        return str(value)
    raise TypeError(f"not JSON serializable: {type(value).__name__}")


def _clean_floats(value):
    """JSON has no inf/NaN: write them as strings "inf"/"nan" so every reader parses the file."""
    if isinstance(value, float) and not math.isfinite(value):
        return "inf" if value > 0 else ("-inf" if value < 0 else "nan")
    if isinstance(value, dict):
        return {key: _clean_floats(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_clean_floats(item) for item in value]
    return value


def _fmt(value, digits=2):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isinf(value):
        return "exact"
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"


def _units(summary) -> str:
    """Units sorted and, in brackets, the false positive ones (unmatched to ground truth), mean over repeats."""
    if "num_sorted_units" not in summary:
        return "-"
    return f"{summary['num_sorted_units']:.1f} ({summary.get('num_false_positive', math.nan):.1f})"


def format_table(results: list[dict]) -> str:
    """A markdown table of evaluation results, one row per codec. The accuracy columns count only the
    ground-truth units; the last column shows the units a sorter cut that match none of them."""
    has_sorting = any("raw" in result for result in results)
    columns = ["codec", "lossless", "ratio", f"ratio vs ADC", "bits/sample", "RMSE µV", "spike SNDR dB", "encode ×RT", "decode ×RT"]
    if has_sorting:
        columns += ["accuracy raw", "accuracy rebuilt", "Δ accuracy", "well detected raw→rebuilt",
                    "units sorted (false positive) raw→rebuilt"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for result in results:
        sndr = result.get("sndr_spike_db_mean")
        if result.get("exact"):
            sndr = math.inf
        row = [
            result["codec"], "yes" if result["lossless"] else "no", _fmt(result["compression_ratio"]),
            f"{_fmt(result['compression_ratio_vs_adc'])} ({result['adc_bits']} bit)", _fmt(result["bits_per_sample"]),
            _fmt(result.get("rmse_uV"), 3) + ("" if result.get("units", "uV") == "uV" else " LSB"), _fmt(sndr, 1), _fmt(result["encode_speed_x_realtime"], 0),
            _fmt(result["decode_speed_x_realtime"], 0),
        ]
        if has_sorting and "raw" in result:
            raw, rebuilt = result["raw"], result["compressed"]
            spread = lambda summary: f" ± {summary['accuracy_mean_std']:.3f}" if summary["num_repeats"] > 1 else ""  # noqa: E731
            reused = " (= raw, bit-exact)" if result.get("sorting_reused_from_raw") else ""
            row += [
                f"{raw['accuracy_mean']:.3f}{spread(raw)}", f"{rebuilt['accuracy_mean']:.3f}{spread(rebuilt)}{reused}",
                f"{result['accuracy_change']:+.3f}", f"{raw['num_well_detected']:.1f} → {rebuilt['num_well_detected']:.1f}",
                f"{_units(raw)} → {_units(rebuilt)}",
            ]
        elif has_sorting:
            row += ["-"] * 5
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def format_hardware_table(results: list[dict]) -> str:
    """A markdown table of the hardware reports of evaluation results: one row per codec, the
    N1-style verdicts (link, latency, power incl. radio) with their values."""
    lines = ["| codec | Mbit/s per 1024 ch | link | latency ms | latency | mW per 1024 ch (incl. radio) | power | host ×RT |",
             "|---|---|---|---|---|---|---|---|"]
    verdict = {True: "pass", False: "FAIL", None: "?"}
    for result in results:
        report = result.get("hardware")
        if not report:
            continue
        link, latency, power = report["verdicts"]
        lines.append(
            f"| {result['codec']} | {_fmt(link['value'], 3)} | {verdict[link['pass']]} | {_fmt(latency['value'], 3)} | "
            f"{verdict[latency['pass']]} | {_fmt(power['value'], 3)} | {verdict[power['pass']]} | {_fmt(report['host_realtime_factor'], 0)} |"
        )
    return "\n".join(lines)


def save_results(results, output_folder, name: str = "evaluation", metadata: dict | None = None) -> tuple[Path, Path]:
    """Write ``NAME.json`` (every figure) and ``NAME.md`` (the table) into ``output_folder``."""
    output_folder = Path(output_folder)
    output_folder.mkdir(parents=True, exist_ok=True)
    results = results if isinstance(results, list) else [results]
    payload = {"metadata": metadata or {}, "results": results}
    json_path = output_folder / f"{name}.json"
    json_path.write_text(json.dumps(_clean_floats(payload), indent=2, default=_json_default))
    markdown_path = output_folder / f"{name}.md"
    header = ""
    if metadata:
        header = "\n".join(f"- {key}: {value}" for key, value in metadata.items()) + "\n\n"
    hardware = ""
    if any(result.get("hardware") for result in results):
        hardware = "\n## Hardware report (N1 budget: 1 Mbit/s, 1 ms, 10 mW per 1024 channels)\n\n" + format_hardware_table(results) + "\n"
    markdown_path.write_text(f"# {name}\n\n{header}{format_table(results)}\n{hardware}")
    return json_path, markdown_path
