"""Does ``broadband-rvq`` earn its place? (issue 29, item 4)

The learned lossy mode (conv transform + residual VQ, :mod:`spikeinterface_vqcompress.core.codecs.broadband.rvq_codec`)
must be faster than real time on 32 channels on one core and above the LPC modes of ``broadband`` on
the ratio-accuracy curve, or leave the defaults, the demo and the study. This benchmark puts it next to
the LPC modes on one held-out recording, in one run:

- speed: encode and decode, one thread (``torch.set_num_threads(1)``, numba kernels compiled before
  timing), CPU time of this process over the first 4 s, one-second chunks (the codecs' default);
- ratio vs int16 over the whole recording;
- sorting (``--plan``, default tridesclous2 seeds 0-1 and spykingcircus2 seed 0): mean accuracy, units
  sorted and false-positive units, raw and rebuilt in the same run.

Recording: ``nn32_seed301`` (Neuronexus-32, 20 units, 60 s; the storage benchmark's held-out recording,
never used for training broadband-rvq, whose model was trained on seed-201/202 recordings, nor for
tuning the LPC points). Writes ``benchmarks/results/broadband_rvq_place.{json,md}``::

    python benchmarks/broadband_rvq_place.py
    python benchmarks/broadband_rvq_place.py --no-sort       # speed and ratio only (a minute)
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from broadband import single_thread_speed
from common import RESULTS, WORK, command_line, load_simulated, write_results
from storage_noise_fill import HELDOUT, LOWPASS_POINTS, parse_plan

NAME = "broadband_rvq_place"
SPEC = next(spec for spec in HELDOUT if spec["name"] == "nn32_seed301")
POINTS = [
    {"id": "broadband-rvq", "num_stages": 1},
    {"id": "broadband-rvq", "num_stages": 2},
    {"id": "broadband", "max_error": 16},  # the storage preset
    LOWPASS_POINTS[3],                      # the low-pass background setting (storage_lowpass_background)
]
SPEED_SECONDS = 4.0


def speeds(recording, points):
    """Single-thread encode/decode multiples of real time of each point (first ``SPEED_SECONDS``)."""
    import torch

    from spikeinterface_vqcompress import get_codec
    from spikeinterface_vqcompress.evaluation import codec_label

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        fs = recording.sampling_frequency
        traces = recording.get_traces(start_frame=0, end_frame=int(SPEED_SECONDS * fs))
        out = {}
        for config in points:
            codec = get_codec(dict(config))
            codec.encode(np.ascontiguousarray(traces[: int(fs)]))  # compile kernels / load weights before timing
            out[codec_label(config)] = single_thread_speed(codec, traces, fs, int(fs))
        return out
    finally:
        torch.set_num_threads(threads)


def markdown(rows, command) -> str:
    lines = ["# broadband-rvq against the LPC modes of broadband", "",
             f"`{command}`. Recording {SPEC['name']} (held-out Neuronexus-32, 20 units, 60 s). Speed: one thread, CPU "
             "time, multiples of real time for 32 channels. Accuracy and units (false positive): mean over the seeds, "
             "raw -> rebuilt, raw sorted in the same run.", "",
             "| codec | ratio | encode x RT | decode x RT | sorter (seeds) | accuracy raw -> rebuilt | units raw -> rebuilt |",
             "|---|---|---|---|---|---|---|"]
    for row in rows:
        raw, rebuilt = row.get("raw"), row.get("compressed")
        sorting = ("| - | - | -" if raw is None else
                   f"| {row['sorter']} ({','.join(map(str, row['seeds']))}) | {raw['accuracy_mean']:.3f} -> "
                   f"{rebuilt['accuracy_mean']:.3f} | {raw['num_sorted_units']:.1f} ({raw['num_false_positive']:.1f}) -> "
                   f"{rebuilt['num_sorted_units']:.1f} ({rebuilt['num_false_positive']:.1f})")
        lines.append(f"| {row['codec']} | {row['compression_ratio']:.1f} | {row['encode_speed_x_realtime_cpu']:.2f} | "
                     f"{row['decode_speed_x_realtime_cpu']:.2f} {sorting} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--plan", nargs="+", default=["tridesclous2:0,1", "spykingcircus2:0"],
                        help="SORTER:SEED,SEED ... (default: tridesclous2 seeds 0-1, spykingcircus2 seed 0)")
    parser.add_argument("--no-sort", action="store_true", help="speed and ratio only")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    from spikeinterface_vqcompress import compress
    from spikeinterface_vqcompress.evaluation import codec_label, evaluate_codecs

    t0 = time.perf_counter()
    recording, gt_sorting = load_simulated(WORK / f"{SPEC['name']}.h5", SPEC)
    speed = speeds(recording, POINTS)
    rows = []
    if args.no_sort:
        for config in POINTS:
            compressed = compress(recording, codec=config, progress_bar=False, n_jobs=args.n_jobs)
            rows.append({"codec": codec_label(config), "codec_config": config,
                         "compression_ratio": compressed.compression_ratio, **speed[codec_label(config)]})
    else:
        for sorter, seeds in parse_plan(args.plan):
            results = evaluate_codecs(recording, gt_sorting, POINTS, sorter=sorter, seeds=seeds,
                                      output_folder=WORK / f"{NAME}_{sorter}", adc_bits=16, n_jobs=args.n_jobs,
                                      progress_bar=False, verbose=True, rebuilt_to_binary=True)
            for config, result in zip(POINTS, results):
                result.update(speed[codec_label(config)], recording=SPEC["name"])
                rows.append(result)
    command = command_line("benchmarks/broadband_rvq_place.py", argv)
    payload = {"command": command, "wall_time_s": time.perf_counter() - t0, "recording": SPEC,
               "machine": "2-core CPU shared with other jobs, no GPU", "rows": rows}
    write_results(args.output, NAME, payload, markdown=lambda: markdown(rows, command))
    print(markdown(rows, command))


if __name__ == "__main__":
    main()
