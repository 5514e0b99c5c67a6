"""Benchmark of the classic baselines through the full pipeline (issue: end-to-end pipeline).

For every baseline codec: ratio from the real container bytes, fidelity, encode/decode speed and
sorting accuracy (tridesclous2 seed 0 once, spykingcircus2 with three seeds) on

- two MEArec recordings simulated here (Neuronexus-32 and Neuropixels-64, 20 units, 30 s; seeds that
  no model in this package is trained on),
- ``../shared/data/neuralink_n1`` (100 N1 files; total-bytes ratio as the challenge scores it),
- ``../shared/data/locust_tetrode`` (no ground truth: the sorting of the rebuilt recording is scored
  against the sorting of the raw recording with the same sorter and seed, i.e. agreement).

Writes ``benchmarks/results/baselines.json`` and ``baselines.md``. Run::

    python benchmarks/baselines.py            # everything (~40 min on 2 cores)
    python benchmarks/baselines.py --quick    # short recordings, TDC2 only (smoke run)
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np

from common import (MEAREC_RECORDINGS, SHARED_DATA, TEMPLATES_PER_CELL, codec_benchmark_parser, load_simulated,
                    locust_recording, sorter_plan, write_results)

CODECS = [
    {"id": "zstd"},
    {"id": "flac"},
    {"id": "wavpack"},
    {"id": "wavpack", "bps": 3.0},
    {"id": "wavpack", "bps": 2.25},
    {"id": "bit-truncation", "num_bits": 4},
    {"id": "bit-truncation", "num_bits": 6},
]


def run_mearec(spec, work_folder, quick, n_jobs):
    from spikeinterface_vqcompress.evaluation import evaluate_codecs

    # simulated again on every run (the --quick run writes a 10-s recording under the same name)
    recording, gt_sorting = load_simulated(work_folder / f"{spec['name']}.h5", spec, overwrite=True,
                                           duration_s=10.0 if quick else spec["duration_s"],
                                           num_templates_per_cell=TEMPLATES_PER_CELL, n_jobs=n_jobs, verbose=True)
    rows = []
    for sorter, seeds in sorter_plan(quick):
        t0 = time.perf_counter()
        results = evaluate_codecs(recording, gt_sorting, CODECS, sorter=sorter, seeds=seeds,
                                  output_folder=work_folder / f"{spec['name']}_{sorter}", adc_bits=16,
                                  reuse_raw_sorting_if_exact=True, n_jobs=n_jobs, progress_bar=False)
        for result in results:
            result["dataset"] = spec["name"]
        rows.extend(results)
        print(f"{spec['name']} {sorter}: {time.perf_counter() - t0:.0f} s", flush=True)
    return rows


def run_neuralink(quick):
    """Total-bytes ratio over the N1 files, each file its own container (as the challenge scores)."""
    from scipy.io import wavfile
    import spikeinterface.core as sc

    from spikeinterface_vqcompress import compress
    from spikeinterface_vqcompress.evaluation import codec_label

    folder = SHARED_DATA / "neuralink_n1"
    if not folder.is_dir():
        print("skipping neuralink_n1: folder absent")
        return []
    files = sorted(folder.glob("*.wav"))[: 10 if quick else None]
    rows = []
    for config in CODECS:
        total_wav_bytes = total_encoded = total_samples = 0
        squared_error = 0.0
        max_error = 0
        encode_s = decode_s = duration_s = 0.0
        for file in files:
            sampling_frequency, samples = wavfile.read(file)
            recording = sc.NumpyRecording(samples[:, None], sampling_frequency=float(sampling_frequency))
            compressed = compress(recording, codec=config, chunk_duration_s=10.0, adc_bits=10, progress_bar=False)
            t0 = time.perf_counter()
            decoded = compressed.get_traces()[:, 0]
            decode_s += time.perf_counter() - t0
            encode_s += compressed.encode_time_s
            duration_s += samples.size / sampling_frequency
            error = decoded.astype(np.int64) - samples
            squared_error += float(np.sum(error.astype(float) ** 2))
            max_error = max(max_error, int(np.abs(error).max()))
            total_wav_bytes += file.stat().st_size
            total_encoded += compressed.encoded_nbytes
            total_samples += samples.size
        rows.append({
            "dataset": "neuralink_n1", "codec": codec_label(config), "codec_config": config,
            "num_files": len(files), "total_wav_bytes": total_wav_bytes, "encoded_nbytes": total_encoded,
            "compression_ratio": total_wav_bytes / total_encoded,
            "compression_ratio_vs_adc": 10 * total_samples / (8 * total_encoded),
            "bits_per_sample": 8 * total_encoded / total_samples,
            "rmse_stored": float(np.sqrt(squared_error / total_samples)), "max_abs_error_stored": max_error,
            "exact": max_error == 0, "encode_speed_x_realtime": duration_s / encode_s,
            "decode_speed_x_realtime": duration_s / decode_s,
        })
        print(f"neuralink_n1 {codec_label(config)}: ratio {rows[-1]['compression_ratio']:.3f}", flush=True)
    return rows


def run_locust(work_folder, quick, n_jobs):
    from spikeinterface_vqcompress.evaluation import evaluate_codecs
    from spikeinterface_vqcompress.evaluation.sorting import run_seeded_sorter

    recording = locust_recording(work_folder / "locust_binary", quick)
    if recording is None:
        print("skipping locust_tetrode: file absent")
        return []
    rows = []
    for sorter, seeds in sorter_plan(quick):
        # the reference: the raw recording sorted with the same sorter and the first seed
        reference, _ = run_seeded_sorter(recording, sorter, seeds[0], work_folder / f"locust_reference_{sorter}")
        results = evaluate_codecs(recording, reference, CODECS, sorter=sorter, seeds=seeds,
                                  output_folder=work_folder / f"locust_{sorter}", adc_bits=16,
                                  reuse_raw_sorting_if_exact=True, n_jobs=n_jobs, progress_bar=False)
        for result in results:
            result["dataset"] = "locust_tetrode"
            result["scored_against"] = f"raw recording sorted by {sorter} seed {seeds[0]} (agreement, no ground truth)"
        rows.extend(results)
    return rows


def markdown(rows) -> str:
    from spikeinterface_vqcompress.evaluation import format_table

    lines = ["# Baseline codecs through the full pipeline", "",
             "Ratios from the real container bytes (header, index, CRCs included). Lossless rows are verified "
             "bit-exact; their sorting is the raw one (identical input). Accuracy: mean over ground-truth units; "
             "± is the spread over sorter seeds.", ""]
    for dataset in dict.fromkeys(row["dataset"] for row in rows):
        subset = [row for row in rows if row["dataset"] == dataset]
        if dataset == "neuralink_n1":
            lines += [f"## {dataset} ({subset[0]['num_files']} files, total-bytes ratio vs the .wav files)", "",
                      "| codec | ratio (wav bytes) | ratio vs 10-bit ADC | bits/sample | RMSE (LSB) | max error (LSB) | encode ×RT | decode ×RT |",
                      "|---|---|---|---|---|---|---|---|"]
            for row in subset:
                lines.append(f"| {row['codec']} | {row['compression_ratio']:.3f} | {row['compression_ratio_vs_adc']:.3f} | "
                             f"{row['bits_per_sample']:.3f} | {row['rmse_stored']:.2f} | {row['max_abs_error_stored']} | "
                             f"{row['encode_speed_x_realtime']:.0f} | {row['decode_speed_x_realtime']:.0f} |")
            lines.append("")
            continue
        for sorter in dict.fromkeys(row.get("sorter") for row in subset):
            rows_sorter = [row for row in subset if row.get("sorter") == sorter]
            note = rows_sorter[0].get("scored_against", "ground truth")
            lines += [f"## {dataset}, {sorter} (scored against {note})", "", format_table(rows_sorter), ""]
    return "\n".join(lines)


def main():
    parser = codec_benchmark_parser(__doc__)
    parser.add_argument("--only", nargs="*", default=None, help="datasets to run: mearec_neuronexus32 mearec_neuropixels64 neuralink_n1 locust_tetrode")
    args = parser.parse_args()
    work_folder = Path(args.work_folder)
    work_folder.mkdir(parents=True, exist_ok=True)
    wanted = set(args.only) if args.only else None
    t0 = time.perf_counter()
    from spikeinterface_vqcompress import __version__

    output = Path(args.output)
    name = "baselines_quick" if args.quick else "baselines"
    rows = []

    def save():
        """Write what is finished so far (the run is long: partial results survive an interruption)."""
        payload = {"package_version": __version__, "command": " ".join(sys.argv), "wall_time_s": time.perf_counter() - t0,
                   "machine": "2-core CPU, 24 GiB (project CI machine)", "rows": rows}
        write_results(output, name, payload, lambda: markdown(rows) + f"\n\nWall time so far: {payload['wall_time_s']:.0f} s. "
                      f"Command: `{payload['command']}`\n")

    if wanted is None or "neuralink_n1" in wanted:
        rows += run_neuralink(args.quick)
        save()
    if wanted is None or "locust_tetrode" in wanted:
        rows += run_locust(work_folder, args.quick, args.n_jobs)
        save()
    for spec in MEAREC_RECORDINGS:
        if wanted is None or spec["name"] in wanted:
            rows += run_mearec(spec, work_folder, args.quick, args.n_jobs)
            save()
    print(markdown(rows))


if __name__ == "__main__":
    main()
