"""Encode and decode speed of the lossy storage modes on one core (issue 29: >= 30x real time for 32
channels on one core; FLAC ~36x / 53x), with where the time of the low-pass background setting goes.

Recording ``nn32_seed301`` (held-out Neuronexus-32, 32 kHz, the storage benchmarks' recording), the
first ``--seconds`` (default 8), coded in one-second chunks (the codecs' default) in this process on
one thread (numba kernels compiled and codecs warmed up before timing; BLAS limited to one thread).
Times are CPU time of the process (``time.process_time``): a shared machine slows wall-clock time,
CPU time less so. Every codec is timed in the same run, so the ratios between rows are the figures
to compare. The breakdown times the steps of ``broadband``'s low-pass background setting one by one
on the same chunks. Writes ``benchmarks/results/storage_speed.{json,md}``::

    python benchmarks/storage_speed.py
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from broadband import single_thread_speed
from common import RESULTS, WORK, command_line, load_simulated, write_results
from storage_noise_fill import HELDOUT, LOWPASS_POINTS

NAME = "storage_speed"
SPEC = next(spec for spec in HELDOUT if spec["name"] == "nn32_seed301")
TARGET_X_REALTIME = 30.0
POINTS = [
    {"id": "flac"},
    {"id": "wavpack", "bps": 2.25},
    {"id": "bit-truncation", "num_bits": 6},
    {"id": "broadband", "max_error": 16},  # the storage preset
    {"id": "broadband", "max_error": 48},
    {"id": "broadband", "max_error": 48, "noise_fill": True},
    LOWPASS_POINTS[3],  # the low-pass background setting G (storage_lowpass_background)
    {**LOWPASS_POINTS[3], "lpc_order": 8},
    LOWPASS_POINTS[2],  # 96/16: meets the accuracy / units targets on the Neuronexus-32 mean (storage_curve)
]


def breakdown(chunks, config, fs):
    """CPU seconds per second of recording of each step of the low-pass background setting."""
    from spikeinterface_vqcompress import get_codec
    from spikeinterface_vqcompress.core.codecs.broadband import noise
    from spikeinterface_vqcompress.core.codecs.broadband.chunk import decode_chunk, encode_chunk

    codec = get_codec(dict(config))
    p = codec.params
    totals = {}

    def timed(name, function):
        start = time.process_time()
        result = function()
        totals[name] = totals.get(name, 0.0) + time.process_time() - start
        return result

    for chunk in chunks:  # the codec's own steps, one at a time
        windows = timed("encode: spike detection", lambda: codec._spike_windows(chunk))
        timed("encode: prediction + range coding (encode_chunk)", lambda: encode_chunk(
            chunk, p["max_error"], (), p["lpc_order"], return_reconstruction=True, spike_windows=windows))
        timed("encode: noise measurement (low band, levels, spectrum)",
              lambda: codec._noise_side_information(chunk, None, windows))
        data = codec.encode(chunk)
        core, taps, levels, spatial, lowpass_background = noise.unwrap(data, chunk.shape[1])
        coded, zone = timed("decode: prediction + range decoding (decode_chunk)", lambda: decode_chunk(core, return_zone=True))
        timed("decode: noise synthesis and fill (low band, shaped noise)", lambda: noise.fill(
            coded, noise.synthesise_rows(noise.seed_of(core), taps, levels, chunk.shape[0], 3 * p["max_error"], spatial),
            zone, p["max_error"], lowpass_background))
        decoded = timed("decode: whole codec", lambda: codec.decode(data, *chunk.shape, chunk.dtype))
        assert decoded.shape == chunk.shape
    seconds = len(chunks) * chunks[0].shape[0] / fs
    return {name: value / seconds for name, value in totals.items()}


def markdown(payload) -> str:
    lines = ["# Lossy storage: encode and decode speed on one core", "",
             f"`{payload['command']}`. Recording {SPEC['name']} (Neuronexus-32, 32 kHz), first {payload['seconds']:.0f} s "
             "in one-second chunks, one thread, CPU time; all rows in one run. Target (issue 29): encode and decode "
             f">= {TARGET_X_REALTIME:.0f}x real time. x RT: seconds of recording per CPU second.", "",
             "| codec | ratio (these seconds) | encode x RT | decode x RT | target met |", "|---|---|---|---|---|"]
    for row in payload["rows"]:
        met = min(row["encode_speed_x_realtime_cpu"], row["decode_speed_x_realtime_cpu"]) >= TARGET_X_REALTIME
        lines.append(f"| {row['codec']} | {row['compression_ratio']:.1f} | {row['encode_speed_x_realtime_cpu']:.1f} | "
                     f"{row['decode_speed_x_realtime_cpu']:.1f} | {'yes' if met else 'no'} |")
    lines += ["", f"Where the time of `{payload['breakdown_codec']}` goes (CPU ms per second of recording):", "",
              "| step | ms per s | x RT alone |", "|---|---|---|"]
    for name, value in payload["breakdown_s_per_s"].items():
        lines.append(f"| {name} | {1000 * value:.0f} | {1 / value:.1f} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=8.0)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args(argv)
    from threadpoolctl import threadpool_limits

    from spikeinterface_vqcompress import get_codec
    from spikeinterface_vqcompress.evaluation import codec_label

    recording, _ = load_simulated(WORK / f"{SPEC['name']}.h5", SPEC)
    fs = recording.sampling_frequency
    traces = recording.get_traces(start_frame=0, end_frame=int(args.seconds * fs))
    chunk_num_samples = int(fs)
    chunks = [np.ascontiguousarray(traces[start:start + chunk_num_samples])
              for start in range(0, traces.shape[0], chunk_num_samples)]
    rows = []
    with threadpool_limits(1):
        for config in POINTS:
            codec = get_codec(dict(config))
            codec.decode(codec.encode(chunks[0]), *chunks[0].shape, chunks[0].dtype)  # compile / warm up
            speed = single_thread_speed(codec, traces, fs, chunk_num_samples)
            encoded = sum(len(codec.encode(chunk)) for chunk in chunks)
            rows.append({"codec": codec_label(config), "codec_config": config,
                         "compression_ratio": traces.nbytes / encoded, **speed})
            print(f"{rows[-1]['codec']}: {speed['encode_speed_x_realtime_cpu']:.1f}x / "
                  f"{speed['decode_speed_x_realtime_cpu']:.1f}x", flush=True)
        parts = breakdown(chunks, LOWPASS_POINTS[3], fs)
    payload = {"command": command_line("benchmarks/storage_speed.py", argv), "recording": SPEC, "seconds": args.seconds,
               "machine": "2-core CPU, one thread", "rows": rows, "breakdown_codec": codec_label(LOWPASS_POINTS[3]),
               "breakdown_s_per_s": parts}
    write_results(args.output, NAME, payload, markdown=lambda: markdown(payload))
    print(markdown(payload))


if __name__ == "__main__":
    main()
