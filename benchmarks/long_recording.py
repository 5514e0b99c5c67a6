"""Streaming compression of a long, wide binary recording, with peak memory recorded.

Generates a Neuropixels-sized binary recording on disk (int16, ``--num-channels`` x 30 kHz, noise
plus spikes from SpikeInterface's lazy generator, written chunk by chunk), compresses it to a
``.vqc`` file with ``n_jobs`` workers, decodes it back chunk by chunk and compares every sample,
and reads a random window to show that only the chunks it overlaps are decoded. The peak resident
memory of the process and its workers is sampled throughout.

Writes ``benchmarks/results/long_recording.json`` and ``.md``::

    python benchmarks/long_recording.py --duration-s 3600 --num-channels 384   # the full hour: ~83 GB on disk
    python benchmarks/long_recording.py --duration-s 300                          # what fits a small disk
"""

from __future__ import annotations

import argparse
import shutil
import sys
import threading
import time
from pathlib import Path

import numpy as np

from common import RESULTS, WORK, write_results


class PeakMemory:
    """Peak RSS of this process plus its children, sampled every 50 ms."""

    def __init__(self):
        import psutil

        self.process = psutil.Process()
        self.peak_MB = 0.0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _total_MB(self):
        total = self.process.memory_info().rss
        for child in self.process.children(recursive=True):
            try:
                total += child.memory_info().rss
            except Exception:
                pass
        return total / 2**20

    def _run(self):
        while not self._stop.is_set():
            self.peak_MB = max(self.peak_MB, self._total_MB())
            self._stop.wait(0.05)

    def __enter__(self):
        self.peak_MB = self._total_MB()
        self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        self._thread.join()


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--duration-s", type=float, default=3600.0)
    parser.add_argument("--num-channels", type=int, default=384)
    parser.add_argument("--codec", default="flac")
    parser.add_argument("--n-jobs", type=int, default=2)
    parser.add_argument("--work-folder", default=str(WORK / "long"))
    parser.add_argument("--output", default=str(RESULTS))
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()

    import spikeinterface.core as sc

    import spikeinterface_vqcompress as vq
    from spikeinterface_vqcompress.core.container import ContainerReader

    sampling_frequency = 30000.0
    work = Path(args.work_folder)
    shutil.rmtree(work, ignore_errors=True)
    work.mkdir(parents=True)
    free_GB = shutil.disk_usage(work).free / 1e9
    raw_GB = args.duration_s * sampling_frequency * args.num_channels * 2 / 1e9
    if raw_GB * 1.5 > free_GB:
        raise SystemExit(f"{raw_GB:.1f} GB of raw data (+ its compressed copy) does not fit in {free_GB:.1f} GB free: "
                         "lower --duration-s")

    generated = sc.generate_ground_truth_recording(
        durations=[args.duration_s], sampling_frequency=sampling_frequency, num_channels=args.num_channels,
        num_units=max(args.num_channels // 8, 4), seed=0, generate_sorting_kwargs={"firing_rates": 5.0},
    )[0]
    generated = sc.scale_to_int16(generated) if hasattr(sc, "scale_to_int16") else generated.astype("int16")
    job_kwargs = {"n_jobs": args.n_jobs, "chunk_duration": "1s", "progress_bar": False}
    t0 = time.perf_counter()
    binary = generated.save(folder=work / "raw", format="binary", **job_kwargs)
    generate_s = time.perf_counter() - t0

    with PeakMemory() as encode_memory:
        t0 = time.perf_counter()
        container = vq.write_compressed(binary, work / "long.vqc", codec=args.codec, n_jobs=args.n_jobs, progress_bar=False)
        encode_s = time.perf_counter() - t0

    num_samples = container.get_num_samples(0)
    chunk = int(sampling_frequency * 10)
    with PeakMemory() as decode_memory:
        t0 = time.perf_counter()
        max_error = 0
        for start in range(0, num_samples, chunk):
            end = min(start + chunk, num_samples)
            decoded = container.get_traces(start_frame=start, end_frame=end)
            original = binary.get_traces(start_frame=start, end_frame=end)
            max_error = max(max_error, int(np.abs(decoded.astype(np.int32) - original).max()))
        decode_compare_s = time.perf_counter() - t0

    reader = ContainerReader(work / "long.vqc")  # its own reader of the file, so the chunks it decodes can be counted
    decoded_chunks = []
    original_decode = reader.decode_chunk
    reader.decode_chunk = lambda s, c: decoded_chunks.append(c) or original_decode(s, c)
    start = num_samples // 2 + 123
    t0 = time.perf_counter()
    reader.get_traces(0, start, start + 3000)
    window_s = time.perf_counter() - t0

    result = {
        "duration_s": args.duration_s, "num_channels": args.num_channels, "sampling_frequency": sampling_frequency,
        "codec": container.codec.get_config(), "n_jobs": args.n_jobs,
        "raw_nbytes": container.raw_nbytes, "encoded_nbytes": container.encoded_nbytes,
        "compression_ratio": container.compression_ratio, "generate_s": generate_s,
        "encode_s": encode_s, "encode_speed_x_realtime": args.duration_s / encode_s,
        "encode_peak_memory_MB": encode_memory.peak_MB,
        "decode_and_compare_s": decode_compare_s, "decode_peak_memory_MB": decode_memory.peak_MB,
        "max_abs_error": max_error, "random_window_chunks_decoded": decoded_chunks,
        "random_window_s": window_s, "num_chunks": reader.num_chunks, "command": " ".join(sys.argv),
    }
    output = write_results(args.output, "long_recording", result).parent
    markdown = "\n".join([
        "# Long recording, streamed", "",
        f"{args.duration_s:.0f} s x {args.num_channels} channels x 30 kHz int16 ({container.raw_nbytes / 1e9:.2f} GB) "
        f"on disk, compressed with {args.codec} and {args.n_jobs} workers.", "",
        "| measure | value |", "|---|---|",
        f"| ratio | {container.compression_ratio:.3f} |",
        f"| encode | {encode_s:.0f} s ({args.duration_s / encode_s:.2f}x real time) |",
        f"| peak memory while encoding (process + workers) | {encode_memory.peak_MB:.0f} MB |",
        f"| decode + compare every sample | {decode_compare_s:.0f} s, max error {max_error} |",
        f"| peak memory while decoding | {decode_memory.peak_MB:.0f} MB |",
        f"| a 0.1 s window in the middle | {len(decoded_chunks)} of {reader.num_chunks} chunks decoded, {window_s * 1000:.0f} ms |",
    ])
    (output / "long_recording.md").write_text(markdown + "\n")
    print(markdown)
    if not args.keep:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
