"""First use of a fresh install: seconds from ``import`` to the first compressed recording (issue 30).

Each case runs in a new Python process with its own numba cache folder (``NUMBA_CACHE_DIR``), so
"cold" really is a fresh install's first call:

- ``cold``: an empty cache, no warm-up: the first ``compress`` compiles the broadband kernels;
- ``after setup``: the same empty cache warmed by what ``scripts/setup.sh`` runs at install
  (``compile_kernels()``), then a new process compresses;
- ``warm``: a second new process on that cache.

The recording is 2 s x 32 channels of int16 noise; the codec is the ``archive`` preset (broadband
lossless). Also recorded: whether the cold process announced the compile before it started.

    python benchmarks/first_use.py            # writes benchmarks/results/first_use.{json,md}
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from common import RESULTS, command_line, write_results

FIRST_COMPRESS = r"""
import json, time
start = time.perf_counter()
import numpy as np
from spikeinterface.core import NumpyRecording
import spikeinterface_vqcompress as vq
imported = time.perf_counter()
traces = np.random.default_rng(0).normal(0, 30, (60000, 32)).astype(np.int16)
compressed = vq.compress(NumpyRecording(traces, 30000.0), codec="archive", progress_bar=False)
assert np.array_equal(compressed.get_traces(), traces)
done = time.perf_counter()
print(json.dumps({"import_s": imported - start, "first_compress_s": done - imported, "total_s": done - start}))
"""

WARM_UP = ("from spikeinterface_vqcompress.core.kernels import compile_kernels; "
           "print(compile_kernels())")


def run(code: str, cache_folder: str) -> tuple[dict, str, float]:
    env = {**os.environ, "NUMBA_CACHE_DIR": cache_folder}
    start = time.perf_counter()
    result = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True)
    return result.stdout, result.stderr, time.perf_counter() - start


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    rows = []
    with tempfile.TemporaryDirectory() as cold_cache, tempfile.TemporaryDirectory() as setup_cache:
        out, err, wall = run(FIRST_COMPRESS, cold_cache)
        rows.append({"case": "cold (fresh cache, no warm-up)", **json.loads(out.strip().splitlines()[-1]),
                     "wall_s": wall, "announced_compile": "compiling the codec's numba kernels" in err})
        out, err, wall = run(WARM_UP, setup_cache)
        rows.append({"case": "setup.sh warm-up (compile_kernels)", "total_s": wall, "wall_s": wall})
        for case in ("first compress after setup", "warm (second process)"):
            out, err, wall = run(FIRST_COMPRESS, setup_cache)
            rows.append({"case": case, **json.loads(out.strip().splitlines()[-1]), "wall_s": wall,
                         "announced_compile": "compiling the codec's numba kernels" in err})
    lines = ["# First use: import to first compressed recording (2 s x 32 ch int16, `archive`)", "",
             "Each row is a new Python process with its own numba cache folder; seconds of wall time on the",
             "project's 2-core machine.", "",
             "| case | import s | first compress s | process wall s | compile announced |", "|---|---|---|---|---|"]
    for row in rows:
        lines.append(f"| {row['case']} | {row.get('import_s', float('nan')):.1f} | "
                     f"{row.get('first_compress_s', float('nan')):.1f} | {row['wall_s']:.1f} | "
                     f"{row.get('announced_compile', '-')} |")
    write_results(RESULTS, "first_use", {"command": command_line("benchmarks/first_use.py", argv), "rows": rows},
                  markdown="\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
