"""The compress -> rebuild -> sort -> compare pipeline.

``evaluate(recording, gt_sorting, codec, sorter, seeds)`` sorts the raw recording and the recording
rebuilt from the real compressed bytes with the same sorter and seeds, scores both against the
ground truth, and measures the ratio, the fidelity, the speed and the memory of the codec (the
measure step :func:`~spikeinterface_vqcompress.evaluation.measure.measure_codec`).
"""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import numpy as np

from spikeinterface_vqcompress.core.registry import get_codec
from spikeinterface_vqcompress.evaluation.measure import measure_codec
from spikeinterface_vqcompress.evaluation.sorting import sort_and_score, summarize_repeats
from spikeinterface_vqcompress.evaluation.tables import format_hardware_table, format_table
from spikeinterface_vqcompress.core.jsonio import write_json


def evaluate(recording, gt_sorting, codec="flac", sorter: str | None = "tridesclous2", seeds=(0,), codec_params=None,
             sorter_params=None, output_folder=None, adc_bits: int | None = None, chunk_duration_s: float | None = None,
             raw_scores: list[dict] | None = None, compute_fidelity: bool = True, reuse_raw_sorting_if_exact: bool = False,
             hardware_kwargs: dict | None = None, rebuilt_to_binary: bool = False, sorter_failure: str = "raise",
             **job_kwargs) -> dict:
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
    chunk_duration_s : float | None, default: None
        Container chunk duration; None: the codec's ``default_chunk_duration_s``.
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
        :func:`spikeinterface_vqcompress.core.hardware.hardware_report`).
    rebuilt_to_binary : bool, default: False
        Decode the rebuilt recording once into a binary folder under ``output_folder`` and sort that
        (removed afterwards). Sorters read their input several times; without it each read decodes
        the chunks again (a sorter on a 60 s MEArec recording: ~3 min instead of ~1). Needs disk for
        the decoded samples (the raw recording's size).
    sorter_failure : "raise" | "score-empty", default: "raise"
        What a sorter that fails on the *rebuilt* recording gives: its error ("raise"), or a run
        scored as a sorting with no unit, the error kept under the repeat's ``sorter_error``
        ("score-empty"; :func:`~spikeinterface_vqcompress.evaluation.sorting.sort_and_score`). A
        failure on the raw recording always raises.
    **job_kwargs
        ``n_jobs``, ``progress_bar``, ... for compression and sorting.

    Returns
    -------
    dict
        The measure row of :func:`~spikeinterface_vqcompress.evaluation.measure.measure_codec` (ratios,
        bytes, fidelity, times, memory, hardware report) and ``raw`` / ``compressed`` score summaries
        (mean and ``_std`` over seeds) with every repeat under ``repeats``.
    """
    codec_object = get_codec(codec, **(codec_params or {}))
    config = codec_object.get_config()
    temporary = output_folder is None
    output_folder = Path(tempfile.mkdtemp(prefix="vqcompress-evaluate-")) if temporary else Path(output_folder)
    output_folder.mkdir(parents=True, exist_ok=True)
    adc_bits = adc_bits or np.dtype(recording.get_dtype()).itemsize * 8
    try:
        result, compressed = measure_codec(recording, codec_object, gt_sorting=gt_sorting, chunk_duration_s=chunk_duration_s,
                                           adc_bits=adc_bits, compute_fidelity=compute_fidelity, hardware_kwargs=hardware_kwargs,
                                           **job_kwargs)
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
                rebuilt_folder = output_folder / f"{config['id']}_rebuilt_binary"
                if rebuilt_to_binary:  # decoded once here, not at every read of every sorter
                    compressed = compressed.save(folder=rebuilt_folder, overwrite=True, **sorter_job_kwargs)
                try:
                    compressed_scores = [
                        sort_and_score(compressed, gt_sorting, sorter, seed, output_folder / f"{config['id']}_{sorter}_seed{seed}",
                                       sorter_params, sorter_job_kwargs, sorter_failure=sorter_failure)
                        for seed in seeds
                    ]
                finally:
                    if rebuilt_to_binary:
                        shutil.rmtree(rebuilt_folder, ignore_errors=True)
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
                    hardware_kwargs=None, progress=None, rebuilt_to_binary: bool = False, sorter_failure: str = "raise",
                    **job_kwargs) -> list[dict]:
    """:func:`evaluate` for several codecs, sorting the raw recording only once per seed.

    Parameters
    ----------
    codecs : list of (str | dict | Codec)
        The codecs; a name uses the codec's default parameters, a dict is a full config.
    verbose : bool, default: False
        Print one line per finished step.
    progress : callable | None, default: None
        Called with that line after each step instead (the raw sorting, then each codec):
        ``1 + len(codecs)`` calls with a sorter and ground truth, ``len(codecs)`` without.
    Other parameters as in :func:`evaluate`.
    """
    import spikeinterface.sorters  # noqa: F401  (fail early if sorters are missing)

    output_folder = Path(output_folder) if output_folder is not None else Path(tempfile.mkdtemp(prefix="vqcompress-evaluate-"))
    report = progress if progress is not None else (lambda line: print(line, flush=True)) if verbose else None
    raw_scores = None
    if sorter is not None and gt_sorting is not None:
        sorter_job_kwargs = {key: value for key, value in job_kwargs.items() if key in ("n_jobs", "progress_bar")}
        raw_scores = [
            sort_and_score(recording, gt_sorting, sorter, seed, output_folder / f"raw_{sorter}_seed{seed}", sorter_params, sorter_job_kwargs)
            for seed in seeds
        ]
        if report is not None:
            accuracies = ", ".join(f"{scores['accuracy_mean']:.3f}" for scores in raw_scores)
            report(f"  raw recording sorted with {sorter}: mean accuracy {accuracies} "
                   f"({sum(scores['sort_time_s'] for scores in raw_scores):.0f} s)")
    results = []
    for codec in codecs:
        results.append(evaluate(recording, gt_sorting, codec=codec, sorter=sorter, seeds=seeds, sorter_params=sorter_params,
                                output_folder=output_folder / "runs", adc_bits=adc_bits, raw_scores=raw_scores,
                                reuse_raw_sorting_if_exact=reuse_raw_sorting_if_exact, hardware_kwargs=hardware_kwargs,
                                rebuilt_to_binary=rebuilt_to_binary, sorter_failure=sorter_failure, **job_kwargs))
        if report is not None:
            result = results[-1]
            line = f"  {result['codec']}: ratio {result['compression_ratio']:.2f}, RMSE {result.get('rmse_uV', float('nan')):.3f} uV"
            if "compressed" in result:
                reused = " (bit-exact: raw sorting reused)" if result.get("sorting_reused_from_raw") else ""
                line += f", mean accuracy {result['compressed']['accuracy_mean']:.3f}{reused}"
            report(line)
    shutil.rmtree(output_folder / "runs", ignore_errors=True)
    return results


def save_results(results, output_folder, name: str = "evaluation", metadata: dict | None = None) -> tuple[Path, Path]:
    """Write ``NAME.json`` (every figure) and ``NAME.md`` (the table) into ``output_folder``."""
    output_folder = Path(output_folder)
    output_folder.mkdir(parents=True, exist_ok=True)
    results = results if isinstance(results, list) else [results]
    payload = {"metadata": metadata or {}, "results": results}
    json_path = write_json(output_folder / f"{name}.json", payload)
    markdown_path = output_folder / f"{name}.md"
    header = ""
    if metadata:
        header = "\n".join(f"- {key}: {value}" for key, value in metadata.items()) + "\n\n"
    hardware = ""
    if any(result.get("hardware") for result in results):
        hardware = "\n## Hardware report (N1 budget: 1 Mbit/s, 1 ms, 10 mW per 1024 channels)\n\n" + format_hardware_table(results) + "\n"
    markdown_path.write_text(f"# {name}\n\n{header}{format_table(results)}\n{hardware}")
    return json_path, markdown_path
