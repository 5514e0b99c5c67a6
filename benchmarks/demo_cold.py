"""`vqcompress demo` from empty caches (issue 30: the main job on a fresh machine, goal <= 10 min on 2 cores).

Runs the demo in a new process with an empty template cache (``VQCOMPRESS_CACHE``), an empty numba
cache (``NUMBA_CACHE_DIR``: the broadband kernels compile, as they would had ``scripts/setup.sh`` not
compiled them) and a temporary HOME (MEArec's config), and records the wall time of each stage and
how many lines it printed.

    python benchmarks/demo_cold.py            # writes benchmarks/results/demo_cold.{json,md}
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import time

from common import RESULTS, command_line, write_results


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args(argv)
    with tempfile.TemporaryDirectory() as folder:
        env = {**os.environ, "VQCOMPRESS_CACHE": f"{folder}/cache", "NUMBA_CACHE_DIR": f"{folder}/numba",
               "HOME": f"{folder}/home", "XDG_CONFIG_HOME": f"{folder}/home/.config"}
        os.makedirs(env["HOME"], exist_ok=True)
        command = [sys.executable, "-m", "spikeinterface_vqcompress.cli", "demo", "--output", f"{folder}/demo"]
        start = time.perf_counter()
        process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env)
        stages, lines = [], []
        for line in process.stdout:
            lines.append(line.rstrip("\n"))
            if line.startswith("[") and "/3]" in line[:6]:
                stages.append({"stage": line.strip()[:90], "started_s": round(time.perf_counter() - start, 1)})
        process.wait()
        wall_s = time.perf_counter() - start
        children = resource.getrusage(resource.RUSAGE_CHILDREN)
    if process.returncode != 0:
        raise SystemExit("the demo failed:\n" + "\n".join(lines[-40:]))
    payload = {"command": command_line("benchmarks/demo_cold.py", argv), "wall_s": wall_s,
               "cpu_s": children.ru_utime + children.ru_stime, "printed_lines": len(lines), "stages": stages,
               "table": [line for line in lines if line.startswith("|")]}
    markdown = ["# `vqcompress demo` from empty caches", "",
                f"Wall {wall_s / 60:.1f} min, CPU {payload['cpu_s'] / 60:.1f} min (goal <= 10 min wall on 2 cores); "
                f"{len(lines)} lines printed. Empty template cache (the shipped library serves), empty numba cache "
                "(kernels compiled during the run).", "", "| stage | started at s |", "|---|---|"]
    markdown += [f"| {stage['stage']} | {stage['started_s']} |" for stage in stages]
    markdown += ["", *payload["table"]]
    write_results(RESULTS, "demo_cold", payload, markdown="\n".join(markdown) + "\n")
    print("\n".join(markdown))


if __name__ == "__main__":
    main()
