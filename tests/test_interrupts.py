"""Interrupted compresses (issue 30): SIGINT and SIGTERM clean up and say so in one line; after a
SIGKILL of the main process its workers exit, and the next compress to the same target sweeps the
dead run's temporary file. Real processes, real signals, a real 2-worker pool."""

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import psutil
import pytest

DURATION_S = 40  # 32 channels of noise: several seconds of broadband encoding on 2 workers


@pytest.fixture(scope="module")
def raw_input(tmp_path_factory):
    path = tmp_path_factory.mktemp("raw") / "input.dat"
    rng = np.random.default_rng(0)
    rng.normal(0, 30, (30000 * DURATION_S, 32)).astype(np.int16).tofile(path)
    return path


def _start(raw_input, output):
    command = [sys.executable, "-m", "spikeinterface_vqcompress.cli", "compress", str(raw_input), str(output),
               "--sampling-frequency", "30000", "--num-channels", "32", "--dtype", "int16", "--codec", "archive",
               "--n-jobs", "2", "--no-progress"]
    # a shell that runs the suite in the background starts it with SIGINT ignored, and a child
    # inherits that (Python then never raises KeyboardInterrupt): give the compress a terminal's default
    return subprocess.Popen(command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))


def _temporaries(folder: Path) -> list:
    return [path.name for path in folder.iterdir() if path.name.startswith(".")]


def _wait_for_workers(process, count=2, timeout_s=120):
    parent = psutil.Process(process.pid)
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        children = parent.children(recursive=True)
        if len(children) >= count and _temporaries(Path(process.args[5]).parent):
            time.sleep(1.0)  # inside the encoding loop
            return parent.children(recursive=True)
        if process.poll() is not None:
            pytest.fail(f"compress ended before it could be interrupted: {process.stderr.read()[-2000:]}")
        time.sleep(0.1)
    pytest.fail("the worker pool did not start")


@pytest.mark.parametrize("signal_number, exit_code, name", [(signal.SIGINT, 130, "Ctrl-C"),
                                                             (signal.SIGTERM, 143, "SIGTERM")])
def test_interrupt_removes_partial_output_and_says_so_in_one_line(raw_input, tmp_path, signal_number, exit_code, name):
    output = tmp_path / "out.vqc"
    process = _start(raw_input, output)
    workers = _wait_for_workers(process)
    process.send_signal(signal_number)
    _, stderr = process.communicate(timeout=120)
    assert process.returncode == exit_code, stderr[-2000:]
    assert stderr.strip().splitlines()[-1] == f"error: interrupted ({name}); partial outputs were removed"
    assert "Traceback" not in stderr
    assert not output.exists() and _temporaries(tmp_path) == []
    _, alive = psutil.wait_procs(workers, timeout=30)
    assert alive == []


def test_sigkill_leaves_no_idle_workers_and_the_next_run_sweeps_its_temporary(raw_input, tmp_path):
    output = tmp_path / "out.vqc"
    process = _start(raw_input, output)
    workers = _wait_for_workers(process)
    process.kill()
    process.communicate(timeout=60)
    _, alive = psutil.wait_procs(workers, timeout=30)  # they exit with their parent
    assert alive == []
    assert len(_temporaries(tmp_path)) == 1  # what a killed writer leaves, named with its pid and host
    short = tmp_path / "short.dat"
    np.fromfile(raw_input, dtype=np.int16, count=32 * 3000).tofile(short)
    result = subprocess.run([sys.executable, "-m", "spikeinterface_vqcompress.cli", "compress", str(short),
                             str(output), "--sampling-frequency", "30000", "--num-channels", "32", "--dtype", "int16",
                             "--codec", "archive", "--no-progress"], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr[-2000:]
    assert output.exists() and _temporaries(tmp_path) == []
    assert os.path.getsize(output) > 0
