"""The study on a real ``dask scheduler`` + ``dask worker`` pair (standard, daemonic worker processes),
and the sorting process each cell runs in: its error, its time limit, its exit with its parent."""

import json
import os
import signal
import subprocess
import sys
import time

import psutil
import pytest

from spikeinterface_vqcompress.study import (
    expand_study,
    load_study_config,
    prepare_recording,
    read_study_results,
    sort_cell,
)


def _write_config(tmp_path, ground_truth_file, **extra):
    config = {
        "name": "tiny-dask",
        "recordings": [{"name": "gt", "path": str(ground_truth_file), "format": "mearec"}],
        "codecs": [{"id": "bit-truncation", "num_bits": 4}],
        "sorters": [{"name": "simple", "seeds": [0]}],
        **extra,
    }
    path = tmp_path / "study.json"
    path.write_text(json.dumps(config))
    return path


def _stop(process, timeout_s=20.0):
    """SIGTERM the process group of ``process``, then SIGKILL it past ``timeout_s``."""
    if process is None:
        return
    for sig, wait_s in ((signal.SIGTERM, timeout_s), (signal.SIGKILL, 10.0)):
        try:
            os.killpg(process.pid, sig)
        except ProcessLookupError:
            pass
        try:
            process.wait(timeout=wait_s)
            break
        except subprocess.TimeoutExpired:
            continue
    # the group may outlive its leader (the nanny's worker): make sure nothing of it is left
    try:
        os.killpg(process.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def _environment():
    environment = dict(os.environ)
    environment.pop("DASK_DISTRIBUTED__WORKER__DAEMON", None)  # a standard worker: daemonic processes
    return environment


def test_study_runs_on_a_standard_dask_worker(tmp_path, ground_truth_file):
    from distributed import Client

    config_path = _write_config(tmp_path, ground_truth_file, sorter_timeout_s=600)  # a time limit: a process per sort
    scheduler_file = tmp_path / "scheduler.json"
    scheduler = worker = None
    try:
        scheduler = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_scheduler", "--host", "127.0.0.1", "--port", "0", "--no-dashboard",
             "--scheduler-file", str(scheduler_file)],
            cwd=tmp_path, env=_environment(), stdout=open(tmp_path / "scheduler.log", "w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        deadline = time.time() + 60
        while time.time() < deadline and not (scheduler_file.is_file() and scheduler_file.stat().st_size):
            assert scheduler.poll() is None, (tmp_path / "scheduler.log").read_text()[-2000:]
            time.sleep(0.2)
        address = json.loads(scheduler_file.read_text())["address"]
        assert address.startswith("tcp://127.0.0.1:")
        worker = subprocess.Popen(
            [sys.executable, "-m", "distributed.cli.dask_worker", "--scheduler-file", str(scheduler_file), "--nworkers", "1",
             "--nthreads", "1", "--host", "127.0.0.1", "--no-dashboard", "--local-directory", str(tmp_path / "dask")],
            cwd=tmp_path, env=_environment(), stdout=open(tmp_path / "worker.log", "w"), stderr=subprocess.STDOUT,
            start_new_session=True)
        with Client(address, timeout=60) as client:
            client.wait_for_workers(1, timeout=120)
            # the point of the test: the worker processes are daemonic (the 'dask worker' default)
            daemonic = client.run(lambda: __import__("multiprocessing").current_process().daemon)
            assert list(daemonic.values()) == [True]

        output = tmp_path / "study"
        completed = subprocess.run(
            [sys.executable, "-m", "spikeinterface_vqcompress.cli", "study", str(config_path), "--output", str(output),
             "--scheduler", address],
            capture_output=True, text=True, timeout=480, env=_environment())
        assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
        assert "FAILED" not in completed.stdout, completed.stdout[-3000:]
        table = read_study_results(output)
        assert sorted(table["codec_id"]) == ["bit-truncation", "raw"]
        assert table["accuracy_mean"].between(0, 1).all()
        assert "sorting_error" not in table.columns or table["sorting_error"].isna().all()
        assert json.loads((output / "failures.json").read_text())["failures"] == []
        assert len(list((output / "logs").glob("sort-*.log"))) == 2  # each sorting's output, kept
    finally:
        _stop(worker)
        _stop(scheduler)


@pytest.fixture
def raw_cell(tmp_path, ground_truth_file):
    config = load_study_config(_write_config(tmp_path, ground_truth_file))
    cell = expand_study(config)["cells"][0]
    assert cell["codec"] is None
    info = prepare_recording(config["recordings"][0], str(tmp_path / "study"), config["config_folder"])
    return cell, info, tmp_path / "study"


def test_a_failing_sorting_says_why_and_shows_its_log(raw_cell):
    cell, info, output = raw_cell
    cell = dict(cell, sorter_params={"no_such_parameter": 3})
    with pytest.raises(RuntimeError) as raised:
        sort_cell(cell, info, None, str(output))
    message = str(raised.value)
    first_line = message.splitlines()[0]
    assert first_line.startswith(f"simple failed on {cell['key']} (exit code 1): ")
    assert "no_such_parameter" in first_line and f"log: {output / 'logs' / ('sort-' + cell['key'] + '.log')}" in first_line
    assert "last lines of the log:" in message and "Traceback" in message  # the child's traceback, from its log


def test_a_sorting_past_its_time_limit_is_stopped_with_its_processes(raw_cell):
    cell, info, output = raw_cell
    before = {child.pid for child in psutil.Process().children(recursive=True)}
    started = time.perf_counter()
    row = sort_cell(cell, info, None, str(output), timeout_s=1.0)
    assert time.perf_counter() - started < 15
    assert row["sorting_error"] == "simple did not finish within 1 s" and row["sorting_folder"] is None
    assert {child.pid for child in psutil.Process().children(recursive=True)} <= before
    assert not (output / "work" / cell["key"]).exists()


def test_the_sorting_process_exits_when_its_parent_is_killed(raw_cell, tmp_path):
    cell, info, output = raw_cell
    arguments = tmp_path / "arguments.json"
    result_file = tmp_path / "result.json"
    arguments.write_text(json.dumps({"cell": cell, "info": info, "output_folder": str(output), "result_file": str(result_file)}))
    parent = subprocess.Popen(
        [sys.executable, "-c", "import json, sys; from spikeinterface_vqcompress.study import _run_sorting_process; "
         "a = json.load(open(sys.argv[1])); _run_sorting_process(a['cell'], a['info'], None, a['output_folder'], a['result_file'], None)",
         str(arguments)])
    try:
        deadline = time.time() + 60
        children = []
        while time.time() < deadline and not children and parent.poll() is None:
            children = psutil.Process(parent.pid).children()
            time.sleep(0.1)
        assert len(children) == 1, "the sorting process did not start"
        sorting_process = children[0]
        time.sleep(1.0)
        parent.kill()  # SIGKILL: no clean-up of its own
        parent.wait(timeout=10)
        gone, alive = psutil.wait_procs([sorting_process], timeout=15)
        assert not alive, "the sorting process outlived its parent"
        assert not result_file.is_file()  # it was stopped, not left to finish
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()
