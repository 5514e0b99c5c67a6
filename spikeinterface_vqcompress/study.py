"""The sorting-impact study: recordings x codecs x rate points x sorters x seeds, on Dask.

A study is described by a config (JSON or YAML)::

    name: small
    recordings:                       # MEArec ground truth, or any recording load_recording reads
      - name: nn32
        mearec: {probe: Neuronexus-32, num_units: 10, duration_s: 20, seed: 101, num_templates_per_cell: 12}
      - name: demo                     # an existing MEArec file (ground truth used)
        path: recordings/demo.h5
        format: mearec
      - name: locust                   # real data: scored by agreement with the raw recording's sorting
        path: ../shared/data/locust_tetrode/locust_trial_01.raw
        format: binary
        kwargs: {sampling_frequency: 15000.0, num_channels: 4, dtype: int16}
        probe: tetrode                 # for files without a probe: tetrode, {linear_pitch_um: 25} or a JSON file
        optional: true                 # skipped (and said so) when the path is absent
    codecs:                            # a list value is a rate axis: one cell per value
      - {id: flac}
      - {id: wavpack, bps: [2.25, 3.0, 4.0]}
    sorters:
      - {name: tridesclous2, seeds: [0]}
      - {name: spykingcircus2, seeds: [0, 1, 2]}
    adc_bits: null                     # optional: ratio against this ADC depth too
    sorter_timeout_s: 900              # optional: a sorting past this is stopped and its row says so
    chunk_duration_s: null             # optional: container chunk (s); null: each codec's default

:func:`run_study` simulates the MEArec recordings, compresses each recording with each codec
point once (a real ``.vqc`` file), sorts the raw and every rebuilt recording with each sorter and
seed, and scores each sorting: against ground truth, or for recordings without ground truth by
agreement with the sorting of the raw recording by the same sorter and seed. The tasks run on Dask
distributed: a ``LocalCluster`` by default or an existing scheduler with standard workers
(``dask scheduler`` + ``dask worker``, daemonic worker processes are fine: each sorting runs in a
fresh interpreter, its output in ``logs/sort-CELL.log``). Every finished cell is written
atomically to ``cells/``; a study that is interrupted (killed, machine lost) resumes where it
stopped and recomputes nothing that finished. The tidy table (one row per cell, hardware report
included) is written to ``results.csv`` and ``results.json``.
"""

from __future__ import annotations

import copy
import hashlib
import itertools
import json
import os
import shutil
import time
import warnings
from pathlib import Path

import numpy as np

from spikeinterface_vqcompress.evaluation.tables import codec_label
from spikeinterface_vqcompress.core.jsonio import write_json

__all__ = ["load_study_config", "expand_study", "run_study", "read_study_results", "StudyConfigError"]

STUDY_FORMAT = "vqcompress-study-1"


class StudyConfigError(ValueError):
    """The study config is invalid; the message names the field and the fix."""


# -- config ------------------------------------------------------------------------------------------------------------
def load_study_config(path) -> dict:
    """Read a study config from a JSON or YAML file; relative recording paths are resolved against
    the config file's folder.

    Returns
    -------
    config : dict
        The validated config with ``config_folder`` set.
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"study config {path} does not exist")
    text = path.read_text()
    if path.suffix.lower() in (".yaml", ".yml"):
        import yaml

        config = yaml.safe_load(text)
    else:
        try:
            config = json.loads(text)
        except json.JSONDecodeError as error:
            raise StudyConfigError(f"{path} is not valid JSON ({error}); use .yaml/.yml for a YAML config") from error
    if not isinstance(config, dict):
        raise StudyConfigError(f"{path} must hold a mapping with 'recordings', 'codecs' and 'sorters'")
    config["config_folder"] = str(path.parent.absolute())
    return validate_study_config(config)


def validate_study_config(config: dict) -> dict:
    """Check a study config; raise :class:`StudyConfigError` naming the problem and the fix."""
    from spikeinterface_vqcompress.core.registry import available_codecs

    config = copy.deepcopy(config)
    for key in ("recordings", "codecs", "sorters"):
        if not config.get(key):
            raise StudyConfigError(f"the study config needs a non-empty '{key}' list")
    names = set()
    for index, recording in enumerate(config["recordings"]):
        if not isinstance(recording, dict) or "name" not in recording:
            raise StudyConfigError(f"recordings[{index}] needs a 'name'")
        if recording["name"] in names:
            raise StudyConfigError(f"two recordings are named {recording['name']!r}: names must be unique")
        names.add(recording["name"])
        if ("mearec" in recording) == ("path" in recording):
            raise StudyConfigError(f"recording {recording['name']!r} needs exactly one of 'mearec' (simulate) or 'path' (read)")
    for index, codec in enumerate(config["codecs"]):
        if not isinstance(codec, dict) or "id" not in codec:
            raise StudyConfigError(f"codecs[{index}] needs an 'id' (one of {available_codecs()})")
        if codec["id"] not in available_codecs():
            raise StudyConfigError(f"codecs[{index}]: unknown codec {codec['id']!r}; registered codecs: {available_codecs()}")
    import spikeinterface.sorters as ss

    for index, sorter in enumerate(config["sorters"]):
        if not isinstance(sorter, dict) or "name" not in sorter:
            raise StudyConfigError(f"sorters[{index}] needs a 'name'")
        if sorter["name"] not in ss.available_sorters():
            raise StudyConfigError(f"sorters[{index}]: unknown sorter {sorter['name']!r}; available: {ss.available_sorters()}")
        if sorter["name"] not in ss.installed_sorters():
            raise StudyConfigError(f"sorter {sorter['name']!r} is not installed here (installed: {ss.installed_sorters()})")
        sorter.setdefault("seeds", [0])
    return config


def _codec_points(codec: dict) -> list[dict]:
    """Expand list-valued parameters into one config per combination (the rate axis)."""
    keys = [key for key, value in codec.items() if key != "id" and isinstance(value, list)]
    if not keys:
        return [dict(codec)]
    points = []
    for values in itertools.product(*(codec[key] for key in keys)):
        point = dict(codec)
        point.update(dict(zip(keys, values)))
        points.append(point)
    return points


def _slug(text: str) -> str:
    keep = "".join(character if character.isalnum() or character in "-." else "-" for character in text)
    return "-".join(part for part in keep.split("-") if part)


def codec_key(config: dict | None) -> str:
    """File-system name of a codec point: readable label + short hash of the full config.

    The label leaves out parameters left at None and is cut to 64 characters (the hash keeps names
    unique), so that codecs with many parameters stay within file-name limits.
    """
    if config is None:
        return "raw"
    label = "_".join([config["id"]] + [f"{key}{value}" for key, value in sorted(config.items())
                                       if key != "id" and value is not None])
    digest = hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:8]
    return f"{_slug(label)[:64].rstrip('-')}-{digest}"


def expand_study(config: dict) -> dict:
    """The study's tasks: recordings, codec points and sorting cells (without running anything)."""
    from spikeinterface_vqcompress.core.registry import get_codec

    codec_points = []
    for codec in config["codecs"]:
        for point in _codec_points(codec):
            codec_points.append(get_codec(point).get_config())  # normalised config (defaults filled in)
    cells = []
    for recording in config["recordings"]:
        for codec in [None] + codec_points:
            for sorter in config["sorters"]:
                for seed in sorter["seeds"]:
                    key = f"{recording['name']}__{codec_key(codec)}__{sorter['name']}__seed{seed}"
                    cells.append({"key": key, "recording": recording["name"], "codec": codec, "sorter": sorter["name"],
                                  "sorter_params": sorter.get("params", {}), "seed": seed})
    return {"recordings": config["recordings"], "codec_points": codec_points, "cells": cells}


# -- tasks (module level so Dask workers can import them) --------------------------------------------------------------
def _read_point_stats(path: Path) -> dict:
    """The measure row of a codec point (``compressed/RECORDING/KEY.json``).

    Rows written before the one measure step kept the config under ``codec``; they are read as
    ``codec_config`` (and ``codec`` the label), so that an older study folder resumes unchanged.
    """
    stats = json.loads(Path(path).read_text())
    if isinstance(stats.get("codec"), dict):
        stats["codec_config"] = stats.pop("codec")
        stats["codec"] = codec_label(stats["codec_config"])
    return stats


def _recording_file(output_folder: Path, spec: dict) -> Path:
    return output_folder / "recordings" / f"{spec['name']}.h5"


def prepare_recording(spec: dict, output_folder: str, config_folder: str) -> dict:
    """Simulate a MEArec recording (unless already there) or check a recording path.

    Returns a description: name, how to load it, whether it has ground truth, its properties.
    """
    from spikeinterface_vqcompress.groundtruth import simulate_recording

    output_folder = Path(output_folder)
    if "mearec" in spec:
        path = _recording_file(output_folder, spec)
        if not path.is_file():  # simulate_recording writes atomically: a file that exists is complete
            path.parent.mkdir(parents=True, exist_ok=True)
            simulate_recording(path, **spec["mearec"])
        info = {"name": spec["name"], "path": str(path), "format": "mearec", "kwargs": {}, "ground_truth": True,
                "mearec": spec["mearec"]}
    else:
        path = Path(spec["path"])
        if not path.is_absolute():
            path = Path(config_folder) / path
        if not path.exists():
            if spec.get("optional"):
                return {"name": spec["name"], "skipped": f"{path} does not exist"}
            raise FileNotFoundError(f"recording {spec['name']!r}: {path} does not exist (mark it 'optional: true' to skip it)")
        is_mearec = spec.get("format") == "mearec"  # an existing MEArec file: its ground truth is used
        info = {"name": spec["name"], "path": str(path), "format": spec.get("format"), "kwargs": spec.get("kwargs", {}),
                "ground_truth": is_mearec, "probe": spec.get("probe")}
        if isinstance(info["probe"], str) and info["probe"] != "tetrode" and not Path(info["probe"]).is_absolute():
            info["probe"] = str(Path(config_folder) / info["probe"])
        if is_mearec:
            from spikeinterface_vqcompress.groundtruth import read_ground_truth_metadata

            try:
                info["mearec"] = read_ground_truth_metadata(path).get("parameters", {})
            except Exception:  # a MEArec file not written by this package: no parameters to show
                info["mearec"] = {}
    recording, _ = _load(info)
    info.update(num_channels=int(recording.get_num_channels()), sampling_frequency=float(recording.sampling_frequency),
                duration_s=float(recording.get_total_duration()), dtype=str(recording.get_dtype()))
    return info


def _load(info: dict):
    """(recording, gt_sorting or None) of a prepared recording."""
    from spikeinterface_vqcompress.groundtruth import load_ground_truth
    from spikeinterface_vqcompress.readers import load_recording

    if info["format"] == "mearec":
        return load_ground_truth(info["path"])
    recording = load_recording(info["path"], format=info["format"], **info["kwargs"])
    if info.get("probe") is not None:
        recording.set_probe(_make_probe(info["probe"], recording.get_num_channels()))  # in place
    return recording, None


def _make_probe(description, num_channels: int):
    """A probe for a recording whose file has none: "tetrode", {"linear_pitch_um": 25}, or a
    probeinterface JSON file."""
    import probeinterface as pi

    if description == "tetrode":
        if num_channels != 4:
            raise StudyConfigError(f"probe 'tetrode' needs 4 channels, the recording has {num_channels}")
        probe = pi.generate_tetrode()
    elif isinstance(description, dict) and "linear_pitch_um" in description:
        probe = pi.generate_linear_probe(num_elec=num_channels, ypitch=float(description["linear_pitch_um"]))
    elif isinstance(description, str) and Path(description).is_file():
        probe = pi.read_probeinterface(description).probes[0]
    else:
        raise StudyConfigError(f"unknown probe {description!r}: use 'tetrode', {{linear_pitch_um: 25}} or a probeinterface JSON file")
    probe.set_device_channel_indices(np.arange(num_channels))
    return probe


def compress_point(info: dict, codec: dict, output_folder: str, chunk_duration_s: float | None, adc_bits: int | None) -> dict:
    """Compress one recording with one codec point into ``compressed/``: the measure row
    (:func:`~spikeinterface_vqcompress.evaluation.measure.measure_codec`: ratio, speed, fidelity,
    hardware) with ``codec_key``, ``file`` and ``source_fingerprint``."""
    from spikeinterface_vqcompress.evaluation.measure import measure_codec
    from spikeinterface_vqcompress.recording import recording_fingerprint

    folder = Path(output_folder) / "compressed" / info["name"]
    key = codec_key(codec)
    stats_path = folder / f"{key}.json"
    recording, gt_sorting = _load(info)
    fingerprint = recording_fingerprint(recording)
    if stats_path.is_file():
        stats = _read_point_stats(stats_path)
        if stats.get("source_fingerprint") == fingerprint:
            return stats  # the same recording was compressed with this codec point by an earlier run
    folder.mkdir(parents=True, exist_ok=True)
    file_path = folder / f"{key}.vqc"
    # a container without its row is from a run that died before measuring it: measure_codec encodes
    # it again (for the timing)
    adc = adc_bits or np.dtype(recording.get_dtype()).itemsize * 8
    row, _ = measure_codec(recording, codec, gt_sorting=gt_sorting, file_path=file_path, chunk_duration_s=chunk_duration_s,
                           adc_bits=adc, n_jobs=1, progress_bar=False)
    stats = {"codec_key": key, "file": str(file_path), "source_fingerprint": fingerprint, **row}
    write_json(stats_path, stats, indent=1)
    return stats


def _sort_into_folder(cell: dict, info: dict, stats: dict | None, output_folder: str, result_file: str):
    """Sort one cell and save the sorting; runs in the cell's own interpreter (see `_sort_cell_main`)."""
    from spikeinterface.core import NumpySorting

    from spikeinterface_vqcompress.evaluation.sorting import run_seeded_sorter
    from spikeinterface_vqcompress.recording import read_compressed

    output_folder = Path(output_folder)
    recording, _ = _load(info)
    work = output_folder / "work" / cell["key"]
    decoded_folder = output_folder / "work" / f"{cell['key']}__decoded"
    try:
        source = recording
        if stats is not None:
            # decode the container once into a binary folder (it keeps probe and gains): sorters read
            # the traces several times, and a learned decoder costs seconds per chunk
            shutil.rmtree(decoded_folder, ignore_errors=True)
            source = read_compressed(stats["file"]).save(folder=decoded_folder, format="binary", n_jobs=1, progress_bar=False)
        sorting, sort_time_s = run_seeded_sorter(source, cell["sorter"], cell["seed"], work, cell.get("sorter_params"),
                                                 {"n_jobs": 1, "progress_bar": False})
    except Exception as error:  # the parent process only sees an exit code: leave it the reason
        reason = " ".join(str(error).split())
        Path(f"{result_file}.error").write_text(f"{type(error).__name__}: {reason[-500:]}")
        raise
    finally:
        shutil.rmtree(decoded_folder, ignore_errors=True)
    sorting_folder = output_folder / "sortings" / cell["key"]
    if sorting_folder.exists():
        shutil.rmtree(sorting_folder)
    with warnings.catch_warnings():  # the sorting is kept without its recording on purpose
        warnings.simplefilter("ignore")
        NumpySorting.from_sorting(sorting).save(folder=sorting_folder, format="numpy_folder")
    shutil.rmtree(work, ignore_errors=True)
    Path(result_file).write_text(json.dumps({"sort_time_s": sort_time_s, "sorting_folder": str(sorting_folder)}))


#: How often (seconds) a cell's sorting process checks that the process that started it is alive.
_PARENT_CHECK_INTERVAL_S = 1.0


def _exit_when_parent_dies(parent_pid: int):
    """Kill this process and its own children (its process group) once ``parent_pid`` is gone.

    A Dask worker that is killed (or a study stopped with ``kill -9``) must not leave a sorter
    running on: the sorting process is the leader of its own process group, so the sorter's
    workers go with it."""
    import signal
    import threading

    def watch():
        while os.getppid() == parent_pid:
            time.sleep(_PARENT_CHECK_INTERVAL_S)
        if hasattr(os, "killpg") and os.getpgid(0) == os.getpid():
            os.killpg(os.getpid(), signal.SIGKILL)
        os._exit(1)

    threading.Thread(target=watch, name="vqcompress-parent-watch", daemon=True).start()


def _sort_cell_main(job_file: str):
    """Entry point of a cell's sorting process (``python -c``): read the job file, sort, write the
    result file (or ``RESULT.error`` with the reason). The parent's pid is in the job: when the
    parent dies, this process and its children exit."""
    job = json.loads(Path(job_file).read_text())
    _exit_when_parent_dies(int(job["parent_pid"]))
    from spikeinterface.core import set_global_job_kwargs

    # one cell = one core, as the study's Dask workers have one thread each; the sorter may still
    # start processes of its own here (this is no daemonic multiprocessing child)
    set_global_job_kwargs(n_jobs=1, progress_bar=False)
    _sort_into_folder(job["cell"], job["info"], job["stats"], job["output_folder"], job["result_file"])


def _log_tail(log_path: Path, number_of_lines: int = 25) -> str:
    if not log_path.is_file():
        return "(no log)"
    lines = log_path.read_text(errors="replace").rstrip().splitlines()
    return "\n".join(lines[-number_of_lines:]) if lines else "(empty log)"


def _run_sorting_process(cell: dict, info: dict, stats: dict | None, output_folder: str, result_file: str,
                         timeout_s: float | None) -> int | None:
    """Run `_sort_into_folder` in a fresh Python interpreter (``subprocess``, not a multiprocessing
    child), its output in ``logs/sort-CELL.log`` of the study folder.

    A fresh interpreter is what lets a cell run on a standard ``dask worker``: its worker processes
    are daemonic and may not start multiprocessing children, but sorters (and a time limit) need
    processes of their own. The interpreter is the leader of a new process group: past
    ``timeout_s`` the whole group (the sorter's own workers included) is killed.

    Returns
    -------
    exit_code : int | None
        The process's exit code, or None when it was killed past ``timeout_s``.
    """
    import signal
    import subprocess
    import sys

    from spikeinterface_vqcompress.core.jsonio import json_value

    log_path = Path(output_folder) / "logs" / f"sort-{cell['key']}.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    job_file = Path(f"{result_file}.job.json")
    job = {"cell": cell, "info": info, "stats": stats, "output_folder": str(output_folder), "result_file": str(result_file),
           "parent_pid": os.getpid()}
    job_file.write_text(json.dumps(json_value(job, fallback=str)))
    environment = dict(os.environ)
    package_parent = str(Path(__file__).resolve().parents[1])  # importable whatever the worker's working folder
    environment["PYTHONPATH"] = package_parent + os.pathsep + environment.get("PYTHONPATH", "")
    environment.setdefault("MPLBACKEND", "Agg")
    command = [sys.executable, "-c", "import sys; from spikeinterface_vqcompress.study import _sort_cell_main; "
               "_sort_cell_main(sys.argv[1])", str(job_file)]
    with open(log_path, "w") as log:
        log.write(f"# {cell['sorter']} on {cell['key']}\n")
        log.flush()
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT, env=environment,
                                   start_new_session=hasattr(os, "killpg"))
        try:
            return process.wait(timeout=timeout_s)
        except subprocess.TimeoutExpired:
            return None
        finally:
            if process.poll() is None:  # past the time limit, or this thread was interrupted
                if hasattr(os, "killpg"):
                    try:
                        os.killpg(process.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                else:
                    process.kill()
                process.wait()


def sort_cell(cell: dict, info: dict, stats: dict | None, output_folder: str, timeout_s: float | None = None) -> dict:
    """Sort one (recording, codec point) with one sorter and seed; keep the sorting; score it when
    the recording has ground truth. Returns the cell's row (without agreement scores).

    The sorter runs in a fresh Python interpreter (`_run_sorting_process`), so that cells run on
    standard, daemonic Dask workers; its output goes to ``logs/sort-CELL.log`` in the study folder.
    With ``timeout_s`` that process is killed past the limit: the row then says ``sorting_error``
    (a codec can make a recording a sorter never finishes on; that is a result, not a reason to
    stall the study). A sorting that fails raises ``RuntimeError`` with the reason and the log's
    last lines."""
    import tempfile

    from spikeinterface.core import load

    from spikeinterface_vqcompress.evaluation.sorting import score_sorting

    row = {"cell": cell["key"], "recording": info["name"], "codec_id": "raw" if stats is None else stats["codec_config"]["id"],
           "codec": "raw" if stats is None else stats["codec"], "sorter": cell["sorter"], "seed": cell["seed"]}
    with tempfile.TemporaryDirectory() as folder:
        result_file = str(Path(folder) / "result.json")
        exit_code = _run_sorting_process(cell, info, stats, output_folder, result_file, timeout_s)
        if exit_code is None:
            shutil.rmtree(Path(output_folder) / "work" / cell["key"], ignore_errors=True)
            shutil.rmtree(Path(output_folder) / "work" / f"{cell['key']}__decoded", ignore_errors=True)
            row.update(sorting_error=f"{cell['sorter']} did not finish within {timeout_s:g} s", sort_time_s=float(timeout_s),
                       num_sorted_units=None, sorting_folder=None)
            return row
        if exit_code != 0 or not Path(result_file).is_file():
            log_path = Path(output_folder) / "logs" / f"sort-{cell['key']}.log"
            error_file = Path(f"{result_file}.error")
            reason = error_file.read_text() if error_file.is_file() else "no reason given (see the log)"
            raise RuntimeError(f"{cell['sorter']} failed on {cell['key']} (exit code {exit_code}): {reason}; "
                               f"log: {log_path}\nlast lines of the log:\n{_log_tail(log_path)}")
        result = json.loads(Path(result_file).read_text())
    sorting = load(result["sorting_folder"])
    row.update(sort_time_s=result["sort_time_s"], num_sorted_units=int(len(sorting.unit_ids)), sorting_folder=result["sorting_folder"])
    if info["ground_truth"]:
        _, gt_sorting = _load(info)
        row.update(score_sorting(gt_sorting, sorting))
    return row


def _sort_or_reuse_raw(cell: dict, info: dict, stats: dict, output_folder: str, raw_row: dict, timeout_s=None) -> dict:
    """The raw recording's sorting when the rebuilt samples are bit-identical, else a sorting."""
    if not stats.get("exact"):
        return sort_cell(cell, info, stats, output_folder, timeout_s)
    row = dict(raw_row, cell=cell["key"], codec_id=stats["codec_config"]["id"], codec=stats["codec"],
               sorting_reused_from_raw=True)
    return row


def agreement_with_raw(raw_sorting_folder: str, sorting_folder: str) -> dict:
    """Score a sorting of a rebuilt recording against the sorting of the raw recording (same sorter
    and seed) for recordings without ground truth: the raw sorting plays the ground truth."""
    from spikeinterface.core import load

    from spikeinterface_vqcompress.evaluation.sorting import score_sorting

    scores = score_sorting(load(raw_sorting_folder), load(sorting_folder))
    return {f"agreement_{key}": value for key, value in scores.items()}


def _hardware_columns(hardware: dict) -> dict:
    link, latency, power = hardware["verdicts"]
    return dict(hw_link_Mbps_1024ch=link["value"], hw_link_pass=link["pass"], hw_latency_ms=latency["value"],
                hw_latency_pass=latency["pass"], hw_power_mW_1024ch=power["value"], hw_power_pass=power["pass"],
                hw_host_realtime=hardware["host_realtime_factor"], hardware=hardware)


def refresh_hardware_reports(output_folder, **hardware_kwargs) -> int:
    """Recompute the hardware report of every codec point and finished cell of a study folder.

    The report depends only on the codec's hardware profile, the container's bytes and the encode
    time measured when the point was compressed (all kept), so it can be rebuilt without encoding or
    sorting again: after a change of a profile or of the energy model, or to price the study
    against another budget (``budget=``, ``energy_model=``, ``weight_bits=``...).

    Returns
    -------
    num_cells : int
        Cells whose hardware columns were rewritten.
    """
    from spikeinterface_vqcompress.recording import read_compressed

    output_folder = Path(output_folder)
    reports = {}
    for stats_path in sorted((output_folder / "compressed").glob("*/*.json")):
        stats = _read_point_stats(stats_path)
        if not Path(stats["file"]).is_file():
            continue
        container = read_compressed(stats["file"])
        container.encode_time_s = stats["encode_time_s"]
        stats["hardware"] = container.hardware_report(adc_bits=stats["adc_bits"], **hardware_kwargs).to_dict()
        write_json(stats_path, stats, indent=1)
        reports[(stats_path.parent.name, codec_key(stats["codec_config"]))] = stats["hardware"]
    count = 0
    for cell_path in sorted((output_folder / "cells").glob("*.json")):
        row = json.loads(cell_path.read_text())
        if not row.get("codec_config"):
            continue
        hardware = reports.get((row["recording"], codec_key(row["codec_config"])))
        if hardware is not None:
            row.update(_hardware_columns(hardware))
            write_json(cell_path, row, indent=1)
            count += 1
    return count


def _finish_cell(row: dict, info: dict, stats: dict | None, output_folder: str) -> dict:
    """Add the recording, codec, fidelity and hardware columns; write the cell atomically."""
    row = dict(row)
    row.update(
        probe=(info.get("mearec") or {}).get("probe", ""), num_channels=info["num_channels"],
        sampling_frequency=info["sampling_frequency"], duration_s=info["duration_s"],
        noise_level_uV=(info.get("mearec") or {}).get("noise_level_uV", 10.0 if info["ground_truth"] else None),
        drift=bool((info.get("mearec") or {}).get("drift", False)), recording_seed=(info.get("mearec") or {}).get("seed"),
        ground_truth=bool(info["ground_truth"]), recording_path=info["path"],
    )
    if stats is None:
        row.update(codec_config=None, lossless=True, compression_ratio=1.0, bits_per_sample=None, compression_ratio_vs_adc=None,
                   rmse_uV=0.0, exact=True)
    else:
        row.update(codec_config=stats["codec_config"], lossless=stats["lossless"], compression_ratio=stats["compression_ratio"],
                   bits_per_sample=stats["bits_per_sample"], compression_ratio_vs_adc=stats["compression_ratio_vs_adc"],
                   adc_bits=stats["adc_bits"], rmse_uV=stats.get("rmse_uV"), exact=stats.get("exact"),
                   sndr_spike_db_mean=stats.get("sndr_spike_db_mean"), encode_time_s=stats["encode_time_s"])
        row.update(_hardware_columns(stats["hardware"]))
    row["finished"] = time.strftime("%Y-%m-%dT%H:%M:%S")
    write_json(Path(output_folder) / "cells" / f"{row['cell']}.json", row, indent=1)
    return row


def _cell_path(output_folder: Path, key: str) -> Path:
    return output_folder / "cells" / f"{key}.json"


# -- the runner --------------------------------------------------------------------------------------------------------
def _make_client(scheduler, n_workers):
    import dask
    from distributed import Client, LocalCluster

    # the workers may be daemonic (the default of 'dask worker' and of LocalCluster): a cell's sorter runs in
    # a fresh interpreter (subprocess), which may start processes of its own (see _run_sorting_process).
    # No root-task queuing: compress tasks have no dependencies, so with queuing the scheduler holds them
    # back while the workers' queues are full of sort tasks, and a recording prepared late waits for all
    # the others. Without it, the workers run their tasks by the priorities given below.
    dask.config.set({"distributed.scheduler.worker-saturation": float("inf")})
    if scheduler:
        return Client(scheduler), None
    cluster = LocalCluster(n_workers=n_workers, threads_per_worker=1, processes=True, dashboard_address=None)
    return Client(cluster), cluster


def recorded_failures(output_folder) -> dict:
    """The cells whose last run failed, as ``{cell key: reason}``, from ``failures.json``.

    A failed compress task (``compress-RECORDING-CODEC``) is returned under its task name; `pending_cells`
    maps it to every cell of that recording and codec point.
    """
    path = Path(output_folder) / "failures.json"
    if not path.is_file():
        return {}
    reasons = {}
    for failure in json.loads(path.read_text())["failures"]:
        task = str(failure["task"])
        key = task.split("-", 1)[1] if task.startswith(("sort-", "finish-")) else task
        reasons[key] = f"{failure.get('error', 'Error')}: {' '.join(str(failure.get('message', '')).split())[:200]}"
    return reasons


def pending_cells(plan: dict, output_folder, retry_failed: bool = False) -> tuple[list, dict]:
    """Split the planned cells of a study folder into those to run and those skipped as failed before.

    Parameters
    ----------
    plan : dict
        From `expand_study`.
    output_folder : str | Path
        The study folder.
    retry_failed : bool, default: False
        Run again the cells whose failure an earlier run recorded. Most failures are deterministic
        (a sorter that crashes on a rebuilt recording, a codec that refuses an input), so a resumed
        study skips them by default and keeps their reasons on record.

    Returns
    -------
    pending : list of dict
        Cells without a result file (and, unless ``retry_failed``, without a recorded failure).
    skipped : dict
        ``{cell key: reason}`` of the cells left out because they failed before.
    """
    output_folder = Path(output_folder)
    failed = {} if retry_failed else recorded_failures(output_folder)
    pending, skipped = [], {}
    for cell in plan["cells"]:
        if _cell_path(output_folder, cell["key"]).is_file():
            continue
        compress_task = f"compress-{cell['recording']}-{codec_key(cell['codec'])}" if cell["codec"] is not None else None
        raw_key = f"{cell['recording']}__raw__{cell['sorter']}__seed{cell['seed']}"
        reason = failed.get(cell["key"]) or (failed.get(compress_task) if compress_task else None)
        if reason is None and cell["codec"] is not None and raw_key in skipped:
            reason = f"the raw recording's sorting failed before ({skipped[raw_key]})"
        if reason is not None:
            skipped[cell["key"]] = reason
        else:
            pending.append(cell)
    return pending, skipped


def run_study(config, output_folder, scheduler: str | None = None, n_workers: int = 2, verbose: bool = True,
              max_cells: int | None = None, retry_failed: bool = False):
    """Run (or resume) a study on Dask distributed.

    Parameters
    ----------
    config : dict | str | Path
        A config dict or the path of a JSON/YAML config (see the module docstring).
    output_folder : str | Path
        Study folder: ``recordings/``, ``compressed/``, ``sortings/``, ``cells/`` and the table.
        Running again with the same folder resumes: finished cells are read, not recomputed.
    scheduler : str | None, default: None
        Address of an existing Dask scheduler (``tcp://host:8786``); None starts a LocalCluster.
        Its workers may be standard ``dask worker`` processes (daemonic): sorters run in a fresh
        interpreter of their own. Every worker must see the study folder and the recordings at the
        same paths (one machine, or a shared file system).
    n_workers : int, default: 2
        Worker processes of the LocalCluster (one thread each; sorters run with ``n_jobs=1``).
    verbose : bool, default: True
        Print one line per finished cell.
    max_cells : int | None, default: None
        Stop after this many newly finished cells (the rest stays for a later resume).
    retry_failed : bool, default: False
        Also run the cells whose failure an earlier run recorded in ``failures.json`` (by default they
        are skipped and their reasons kept; see `pending_cells`).

    Returns
    -------
    table : pandas.DataFrame
        One row per finished cell (also written to ``results.csv`` / ``results.json``).
    """
    from distributed import as_completed

    if not isinstance(config, dict):
        config = load_study_config(config)
    else:
        config = validate_study_config({"config_folder": str(Path.cwd()), **config})
    output_folder = Path(output_folder).absolute()
    output_folder.mkdir(parents=True, exist_ok=True)
    config_path = output_folder / "study_config.json"
    previous = json.loads(config_path.read_text()) if config_path.is_file() else None
    write_json(config_path, {"format": STUDY_FORMAT, **config}, indent=1)
    if previous is not None and verbose:
        print(f"resuming the study in {output_folder}", flush=True)

    plan = expand_study(config)
    pending, skipped = pending_cells(plan, output_folder, retry_failed=retry_failed)
    done = len(plan["cells"]) - len(pending) - len(skipped)
    if verbose:
        print(f"{len(plan['cells'])} cells: {done} already finished, {len(pending)} to run"
              + (f", {len(skipped)} failed before and skipped (retry_failed=True runs them)" if skipped else ""), flush=True)
    if pending:
        client, cluster = _make_client(scheduler, n_workers)
        try:
            _run_pending(client, config, plan, pending, output_folder, verbose, max_cells, as_completed)
        finally:
            client.close()
            if cluster is not None:
                cluster.close()
    return write_study_table(output_folder, plan)


def _run_pending(client, config, plan, pending, output_folder, verbose, max_cells, as_completed):
    folder = str(output_folder)
    recordings = {spec["name"]: spec for spec in config["recordings"]}
    needed_recordings = sorted({cell["recording"] for cell in pending})
    prepare_keys = {f"prepare-{name}": name for name in needed_recordings}
    futures = as_completed([client.submit(prepare_recording, recordings[name], folder, config["config_folder"], key=key, pure=False,
                                          priority=30)
                            for key, name in prepare_keys.items()])
    chunk_duration_s = config.get("chunk_duration_s")  # None: each codec's default
    chunk_duration_s = None if chunk_duration_s is None else float(chunk_duration_s)
    adc_bits = config.get("adc_bits")
    finished, total, failures = 0, 0, []
    # failures recorded by earlier runs stay on record (with their reasons) until their cell is run
    # again: a resumed run that is stopped before retrying them must not lose them
    failures_path = Path(folder) / "failures.json"
    earlier = json.loads(failures_path.read_text())["failures"] if failures_path.is_file() else []
    succeeded: set = set()

    def write_failures():
        replaced = {failure["task"] for failure in failures} | succeeded
        kept = [failure for failure in earlier if failure["task"] not in replaced]
        write_json(failures_path, {"failures": kept + failures}, indent=1)

    first_sorter = config["sorters"][0]["name"]
    timeout_s = config.get("sorter_timeout_s")

    def priority(cell, info):
        # the first sorter's first seed on ground-truth recordings first: an interrupted study has the
        # headline column complete before the repeats (Dask runs higher priorities first)
        return (4 if cell["sorter"] == first_sorter else 0) + (2 if info["ground_truth"] else 0) - int(cell["seed"] or 0)

    def submit_recording(info):
        """Submit the compress, sort and finish tasks of one prepared recording; returns the finish futures."""
        compress_futures, sort_futures, finish = {}, {}, []
        for cell in (cell for cell in pending if cell["recording"] == info["name"]):
            rank = priority(cell, info)
            stats_future = None
            if cell["codec"] is not None:
                key = codec_key(cell["codec"])
                if key not in compress_futures:
                    compress_futures[key] = client.submit(compress_point, info, cell["codec"], folder, chunk_duration_s, adc_bits,
                                                          key=f"compress-{info['name']}-{key}", pure=False, priority=rank + 10)
                stats_future = compress_futures[key]
            raw_key = f"{cell['recording']}__raw__{cell['sorter']}__seed{cell['seed']}"
            raw_row = None
            if cell["codec"] is not None:
                raw_row = sort_futures[raw_key] if raw_key in sort_futures else json.loads(_cell_path(output_folder, raw_key).read_text())
            if raw_row is not None and config.get("reuse_raw_sorting_if_exact", True):
                # a bit-exact rebuild is the raw recording: sorting it again would only measure the
                # sorter's run-to-run variation (checked on the decoded samples, not assumed)
                sorted_future = client.submit(_sort_or_reuse_raw, cell, info, stats_future, folder, raw_row, timeout_s,
                                              key=f"sort-{cell['key']}", pure=False, priority=rank)
            else:
                sorted_future = client.submit(sort_cell, cell, info, stats_future, folder, timeout_s, key=f"sort-{cell['key']}", pure=False,
                                              priority=rank + (1 if cell["codec"] is None else 0))
            sort_futures[cell["key"]] = sorted_future
            if info["ground_truth"] or raw_row is None:
                finish.append(client.submit(_finish_cell, sorted_future, info, stats_future, folder, key=f"finish-{cell['key']}",
                                            pure=False, priority=rank + 20))
            else:
                finish.append(client.submit(_add_agreement_and_finish, sorted_future, raw_row, info, stats_future, folder,
                                            key=f"finish-{cell['key']}", pure=False, priority=rank + 20))
        return finish

    all_finish = []
    for future in futures:
        try:
            result = future.result()
        except Exception as error:  # one failing task must not lose the others: report it and go on
            message = str(error).strip().splitlines()
            reason = next((line for line in reversed(message) if "Error" in line), message[-1] if message else "")
            failures.append({"task": str(future.key), "error": type(error).__name__, "message": str(error)})
            write_failures()  # kept if the run is killed
            if verbose:
                print(f"FAILED {future.key}: {type(error).__name__}: {reason[:300]}", flush=True)
            continue
        if str(future.key) in prepare_keys:
            if "skipped" in result:
                if verbose:
                    print(f"recording {result['name']!r} skipped: {result['skipped']}", flush=True)
                continue
            new = submit_recording(result)
            total += len(new)
            all_finish.extend(new)
            futures.update(new)
            continue
        finished += 1
        succeeded.update({f"sort-{result['cell']}", f"finish-{result['cell']}"})
        if verbose:
            row = result
            score = row.get("accuracy_mean", row.get("agreement_accuracy_mean"))
            score_text = (f", {row['num_sorted_units']} units" if score is None
                          else f", {'accuracy' if 'accuracy_mean' in row else 'agreement'} {score:.3f}")
            if row.get("sorting_error"):
                score_text = f", {row['sorting_error']}"
            print(f"[{finished}/{total}] {row['recording']} | {row['codec']} | {row['sorter']} seed {row['seed']}: "
                  f"ratio {row['compression_ratio']:.2f}{score_text}", flush=True)
        if max_cells is not None and finished >= max_cells:
            for other in all_finish:
                other.cancel()
            break
    write_failures()


def _add_agreement_and_finish(row: dict, raw_row: dict, info: dict, stats: dict | None, output_folder: str) -> dict:
    row = dict(row)
    if row.get("sorting_folder") and raw_row.get("sorting_folder"):
        row.update(agreement_with_raw(raw_row["sorting_folder"], row["sorting_folder"]))
    return _finish_cell(row, info, stats, output_folder)


def read_study_results(output_folder):
    """The tidy table of a study folder (every finished cell), as a pandas DataFrame."""
    import pandas as pd

    output_folder = Path(output_folder)
    rows = [json.loads(path.read_text()) for path in sorted((output_folder / "cells").glob("*.json"))]
    if not rows:
        raise FileNotFoundError(f"{output_folder} has no finished cells (cells/*.json): run 'vqcompress study' first")
    for row in rows:  # labels from the stored config, so cells written by older versions read the same
        if isinstance(row.get("codec_config"), dict) and row["codec_config"]:
            row["codec"] = codec_label(row["codec_config"])
    return pd.DataFrame(rows)


def write_study_table(output_folder, plan: dict | None = None):
    """Write ``results.csv`` (flat columns) and ``results.json`` (with the hardware reports)."""
    output_folder = Path(output_folder)
    table = read_study_results(output_folder)
    if plan is not None:
        order = {cell["key"]: index for index, cell in enumerate(plan["cells"])}
        table = table.assign(_order=table["cell"].map(order).fillna(len(order))).sort_values("_order").drop(columns="_order")
    flat = table.drop(columns=[column for column in ("hardware", "codec_config") if column in table.columns])
    if "codec_config" in table.columns:
        flat = flat.assign(codec_config=table["codec_config"].map(lambda value: json.dumps(value) if value else ""))
    temporary = output_folder / "results.csv.tmp"
    flat.to_csv(temporary, index=False)
    os.replace(temporary, output_folder / "results.csv")
    write_json(output_folder / "results.json", {"format": STUDY_FORMAT, "rows": table.to_dict(orient="records")}, indent=1)
    return table
