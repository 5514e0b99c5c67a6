"""Fuzz the container reader and every registered codec's decoder with random and mutated bytes.

A case passes when decoding either succeeds (a codec payload without its container CRC may decode
to other samples: that is what the container CRC is for) or raises the package's own
``CorruptDataError``; it fails on any other exception, on a case using more than ``--case-timeout-s``
CPU seconds or ``--case-wall-timeout-s`` wall-clock seconds (hang) or on resident memory growing past ``--memory-limit-MB`` (a forged size
honoured). Container cases must always raise ``CorruptDataError`` (every mutation is detected).

Writes ``benchmarks/results/fuzz.json`` and ``fuzz.md``::

    python benchmarks/fuzz.py --cases 100000
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import time
import warnings

import numpy as np

from common import RESULTS, write_results


class CaseTimeout(Exception):
    pass


def _alarm(signum, frame):
    raise CaseTimeout()


#: What a codec needs besides the traces (compress() fills these in from the recording).
_LINEAR_4 = [[0.0, 0.0], [0.0, 25.0], [0.0, 50.0], [0.0, 75.0]]
CODEC_PARAMS = {
    "spike-cae": {"model": "nn32-4x64", "gain_to_uV": 0.195, "channel_locations": _LINEAR_4},
    "spike-vq": {"channel_locations": _LINEAR_4, "snippet_channels": 4, "snippet_samples": 96},
    "spike-pca": {"channel_locations": _LINEAR_4, "snippet_channels": 4, "snippet_samples": 96},
}


def make_samples(codec_ids):
    import spikeinterface_vqcompress as vq
    from spikeinterface_vqcompress.core.container import ContainerReader, ContainerWriter

    rng = np.random.default_rng(0)
    traces = rng.normal(size=(2000, 4)) * 40
    spike = -np.exp(-0.5 * ((np.arange(40) - 12) / 3.0) ** 2) * 600  # a few spikes, so snippet codecs have codes
    for start in (150, 700, 1300, 1800):
        traces[start:start + 40] += spike[:, None] * np.array([1.0, 0.6, 0.3, 0.1])
    traces = traces.astype(np.int16)
    samples = {}
    for codec_id in codec_ids:
        codec = vq.get_codec(codec_id, **CODEC_PARAMS.get(codec_id, {}))
        payload = codec.encode(traces)
        header = {"codec": codec.get_config(), "num_channels": 4, "channel_ids": [0, 1, 2, 3], "dtype": "int16",
                  "sampling_frequency": 1000.0, "segments": [{"num_samples": 2000}], "model_sha256": codec.model_sha256}
        writer = ContainerWriter(header)
        writer.write_chunk(0, 0, 0, 1000, codec.encode(traces[:1000]))
        writer.write_chunk(0, 1, 1000, 1000, codec.encode(traces[1000:]))
        container = writer.close()
        # warm up: load models and compile numba kernels now, so the per-case time limit measures decoding only
        codec.decode(payload, 2000, 4, np.int16)
        ContainerReader(container).get_traces(0)
        samples[codec_id] = (codec, payload, container)
    return samples


def mutate(data: bytes, rng) -> bytes:
    data = bytearray(data)
    kind = rng.integers(5)
    if kind == 0 or len(data) == 0:  # random bytes
        return rng.integers(0, 256, size=rng.integers(0, 4096), dtype=np.uint8).tobytes()
    if kind == 1:  # byte substitutions
        for _ in range(rng.integers(1, 16)):
            data[rng.integers(len(data))] = rng.integers(256)
    elif kind == 2:  # truncation
        data = data[: rng.integers(len(data))]
    elif kind == 3:  # insertion
        position = rng.integers(len(data) + 1)
        data[position:position] = rng.integers(0, 256, size=rng.integers(1, 64), dtype=np.uint8).tobytes()
    else:  # single bit flip
        data[rng.integers(len(data))] ^= 1 << rng.integers(8)
    return bytes(data)


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--cases", type=int, default=100000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--case-timeout-s", type=float, default=5.0,
                        help="CPU seconds one case may use (a spinning decoder); CPU time, so a loaded machine does not "
                             "turn slow cases into hangs")
    parser.add_argument("--case-wall-timeout-s", type=int, default=120,
                        help="wall-clock seconds one case may take (a decoder blocked without using CPU)")
    parser.add_argument("--memory-limit-MB", type=float, default=1024.0)
    parser.add_argument("--output", default=str(RESULTS))
    args = parser.parse_args()

    import psutil

    import spikeinterface_vqcompress as vq
    from spikeinterface_vqcompress.core.errors import CorruptDataError
    from spikeinterface_vqcompress.core.container import ContainerReader

    warnings.simplefilter("ignore")
    # libFLAC reports decoding errors on stderr through a callback: keep the log readable
    devnull = os.open(os.devnull, os.O_WRONLY)
    saved_stderr = os.dup(2)
    os.dup2(devnull, 2)

    codec_ids = vq.available_codecs()
    samples = make_samples(codec_ids)
    rng = np.random.default_rng(args.seed)
    process = psutil.Process()
    baseline_MB = process.memory_info().rss / 2**20
    signal.signal(signal.SIGALRM, _alarm)
    signal.signal(signal.SIGPROF, _alarm)
    counts = {}
    failures = []
    t0 = time.perf_counter()
    for case in range(args.cases):
        codec_id = codec_ids[case % len(codec_ids)]
        codec, payload, container = samples[codec_id]
        # alternate the target per round over the codecs, so every codec gets both kinds of case
        # whatever the number of codecs (with "case % 2" an even count would give each codec one kind)
        target = "container" if (case // len(codec_ids)) % 2 == 0 else "codec"
        data = mutate(container if target == "container" else payload, rng)
        key = f"{target}:{codec_id}"
        entry = counts.setdefault(key, {"cases": 0, "corrupt_data_error": 0, "decoded": 0, "failures": 0})
        entry["cases"] += 1
        outcome = None
        signal.setitimer(signal.ITIMER_PROF, args.case_timeout_s)  # process CPU time, all threads
        signal.alarm(args.case_wall_timeout_s)
        try:
            if target == "container":
                if data == container:
                    outcome = "decoded"
                else:
                    reader = ContainerReader(data)
                    reader.get_traces(0)
                    outcome = "undetected"
            else:
                codec.decode(data, 2000, 4, np.int16)
                outcome = "decoded"
        except CorruptDataError:
            outcome = "corrupt_data_error"
        except CaseTimeout:
            outcome = "hang"
        except Exception as error:  # noqa: BLE001 - that is what we are counting
            outcome = f"{type(error).__name__}: {error}"[:200]
        finally:
            signal.setitimer(signal.ITIMER_PROF, 0)
            signal.alarm(0)
        if outcome in ("corrupt_data_error", "decoded"):
            entry[outcome] += 1
        else:
            entry["failures"] += 1
            failures.append({"case": case, "target": key, "outcome": outcome})
        if case % 1000 == 0:
            grown = process.memory_info().rss / 2**20 - baseline_MB
            if grown > args.memory_limit_MB:
                failures.append({"case": case, "target": key, "outcome": f"memory grew by {grown:.0f} MB"})
    elapsed = time.perf_counter() - t0
    os.dup2(saved_stderr, 2)

    total_failures = len(failures)
    result = {"cases": args.cases, "seed": args.seed, "failures": total_failures, "elapsed_s": elapsed,
              "peak_rss_growth_MB": process.memory_info().rss / 2**20 - baseline_MB, "per_target": counts,
              "first_failures": failures[:50], "command": " ".join(sys.argv)}
    output = write_results(args.output, "fuzz", result).parent
    lines = ["# Fuzzing the container and the codec decoders", "",
             f"{args.cases} cases (seed {args.seed}) in {elapsed:.0f} s: **{total_failures} failures** "
             "(any exception other than CorruptDataError, a hang, or memory growth).", "",
             "Container cases must raise CorruptDataError (mutation detected); codec cases may also decode "
             "(a bare codec payload has no CRC: the container's CRC32 is what detects damage).", "",
             "| target | cases | CorruptDataError | decoded | failures |", "|---|---|---|---|---|"]
    for key, entry in sorted(counts.items()):
        lines.append(f"| {key} | {entry['cases']} | {entry['corrupt_data_error']} | {entry['decoded']} | {entry['failures']} |")
    (output / "fuzz.md").write_text("\n".join(lines) + "\n")
    print("\n".join(lines))
    return 0 if total_failures == 0 else 1


if __name__ == "__main__":
    sys.exit(main())
