"""The study runner on a Dask LocalCluster: a small grid, killed mid-way, resumed; then the report."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from spikeinterface_vqcompress.report import build_report, find_browser, screenshot
from spikeinterface_vqcompress.study import StudyConfigError, expand_study, load_study_config, read_study_results, refresh_hardware_reports


def _write_config(tmp_path, ground_truth_file):
    config = {
        "name": "tiny",
        "recordings": [{"name": "gt", "path": str(ground_truth_file), "format": "mearec"}],
        "codecs": [{"id": "flac"}, {"id": "bit-truncation", "num_bits": [4, 6]}],
        "sorters": [{"name": "simple", "seeds": [0]}],
    }
    path = tmp_path / "study.json"
    path.write_text(json.dumps(config))
    return path


def test_config_expands_rate_axes_and_bad_configs_are_named(tmp_path, ground_truth_file):
    config = load_study_config(_write_config(tmp_path, ground_truth_file))
    plan = expand_study(config)
    assert [point["id"] for point in plan["codec_points"]] == ["flac", "bit-truncation", "bit-truncation"]
    assert [point.get("num_bits") for point in plan["codec_points"]][1:] == [4, 6]
    assert len(plan["cells"]) == 4  # raw + 3 codec points, one sorter, one seed
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({**config, "codecs": [{"id": "nope"}]}))
    with pytest.raises(StudyConfigError, match="unknown codec 'nope'"):
        load_study_config(bad)
    bad.write_text(json.dumps({**config, "sorters": [{"name": "kilosort99"}]}))
    with pytest.raises(StudyConfigError, match="unknown sorter"):
        load_study_config(bad)


def test_a_resumed_study_skips_cells_that_failed_before_unless_asked(tmp_path, ground_truth_file):
    from spikeinterface_vqcompress.study import codec_key, pending_cells

    plan = expand_study(load_study_config(_write_config(tmp_path, ground_truth_file)))
    raw, flac, bits4, bits6 = (cell["key"] for cell in plan["cells"])
    folder = tmp_path / "study"
    (folder / "cells").mkdir(parents=True)
    (folder / "cells" / f"{flac}.json").write_text("{}")  # finished
    assert [cell["key"] for cell in pending_cells(plan, folder)[0]] == [raw, bits4, bits6]  # nothing failed yet
    failures = [{"task": f"finish-{bits4}", "error": "RuntimeError", "message": "simple failed on it\n(exit 1)"},
                {"task": f"compress-gt-{codec_key(plan['codec_points'][2])}", "error": "ValueError", "message": "no gain"}]
    (folder / "failures.json").write_text(json.dumps({"failures": failures}))
    pending, skipped = pending_cells(plan, folder)
    assert [cell["key"] for cell in pending] == [raw]
    assert skipped == {bits4: "RuntimeError: simple failed on it (exit 1)", bits6: "ValueError: no gain"}
    assert [cell["key"] for cell in pending_cells(plan, folder, retry_failed=True)[0]] == [raw, bits4, bits6]
    # a codec cell whose raw sorting failed is skipped with it (it is scored against the raw sorting)
    (folder / "failures.json").write_text(json.dumps({"failures": [{"task": f"sort-{raw}", "error": "E", "message": "m"}]}))
    pending, skipped = pending_cells(plan, folder)
    assert pending == [] and set(skipped) == {raw, bits4, bits6} and "raw recording's sorting failed" in skipped[bits6]


def _cell_files(folder):
    cells = folder / "cells"
    return {path.name: path.stat().st_mtime_ns for path in cells.glob("*.json")} if cells.is_dir() else {}


def test_study_resumes_after_being_killed_and_reports(tmp_path, ground_truth_file):
    config_path = _write_config(tmp_path, ground_truth_file)
    output = tmp_path / "study"
    command = [sys.executable, "-m", "spikeinterface_vqcompress.cli", "study", str(config_path), "--output", str(output)]
    # first run: killed (whole process group, workers included) as soon as one cell has finished
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    deadline = time.time() + 300
    while time.time() < deadline and not _cell_files(output) and process.poll() is None:
        time.sleep(0.5)
    os.killpg(process.pid, signal.SIGKILL)
    process.wait()
    before = _cell_files(output)
    assert 1 <= len(before) <= 4
    # second run: resumes, leaves the finished cells untouched, completes the grid
    completed = subprocess.run(command, capture_output=True, text=True, timeout=600)
    assert completed.returncode == 0, completed.stderr[-3000:]
    assert f"{len(before)} already finished" in completed.stdout
    after = _cell_files(output)
    assert len(after) == 4
    assert all(after[name] == mtime for name, mtime in before.items())
    table = read_study_results(output)
    assert set(table["codec_id"]) == {"raw", "flac", "bit-truncation"}
    assert (table["accuracy_mean"].between(0, 1)).all()
    coded = table[table["codec_id"] != "raw"]
    assert coded["hardware"].map(lambda report: len(report["verdicts"]) == 3).all()  # every row carries its report
    assert (coded.loc[coded["codec_id"] == "flac", "rmse_uV"] == 0).all()
    assert (output / "results.csv").is_file()

    # the reports are rebuilt from the kept bytes and encode times, here against a 1000x wider link
    from spikeinterface_vqcompress.core.hardware import Budget

    assert refresh_hardware_reports(output, budget=Budget(name="wide", link_bits_per_second=1e9)) == len(coded)
    refreshed = read_study_results(output)
    refreshed = refreshed[refreshed["codec_id"] != "raw"].set_index("cell").loc[coded["cell"]]
    np.testing.assert_allclose(refreshed["hw_link_Mbps_1024ch"], coded["hw_link_Mbps_1024ch"])  # same bytes
    assert refreshed["hw_link_pass"].all() and not coded["hw_link_pass"].any()
    assert (refreshed["hardware"].map(lambda report: report["verdicts"][0]["name"]).str.startswith("wide")).all()

    page = build_report(output)
    text = page.read_text()
    assert text.count("data:image/png;base64,") >= 4 and "Ratio–accuracy curves" in text and "Hardware budget" in text
    if find_browser() is None:
        pytest.skip("no headless browser here (scripts/setup.sh installs chromium)")
    image_path = screenshot(page, tmp_path / "page.png", width=1200, height=1600)
    from PIL import Image

    pixels = np.asarray(Image.open(image_path).convert("L"), dtype=float)
    assert pixels.shape == (1600, 1200)
    assert pixels.std() > 20  # not a blank page
    assert (pixels[:120] < 100).mean() > 0.002  # dark text (the title) in the top band


def test_hardware_bars_use_the_ground_truth_recording_with_most_codec_points():
    import matplotlib.pyplot as plt
    import pandas as pd

    from spikeinterface_vqcompress.report import _hardware_figure, _log_ratio_axis

    def hardware(link_mbps):
        return {"verdicts": [{"value": link_mbps, "limit": 1.0}, {"value": 2.0, "limit": 1.0}, {"value": 5.0, "limit": 10.0}]}

    rows = [("locust", "flac", False, 4, 9.0)]  # listed first, real data, fewer codec points
    rows += [("nn32", codec, True, 32, mbps) for codec, mbps in (("flac", 3.0), ("spike-cae", 0.5))]
    rows += [("np64", codec, True, 64, mbps) for codec, mbps in (("flac", 6.0), ("spike-cae", 0.7))]
    table = pd.DataFrame([{"recording": r, "codec": c, "ground_truth": g, "num_channels": n, "hardware": hardware(m)}
                          for r, c, g, n, m in rows])
    figure = _hardware_figure(table)
    ax = figure.axes[0]
    assert "nn32, 32 ch" in ax.get_title()
    assert [label.get_text() for label in ax.get_yticklabels()] == ["flac", "spike-cae"]
    link_bars = sorted(ax.patches[:2], key=lambda bar: bar.get_y())
    assert [bar.get_width() for bar in link_bars] == pytest.approx([3.0, 0.5])
    plt.close(figure)

    # a wide ratio range is labelled by decades only, a narrow one at 1-2-5
    figure, ax = plt.subplots()
    ax.plot([1.5, 2000], [0, 1])
    _log_ratio_axis(ax)
    ticks = [t for t in ax.get_xticks() if 1.5 <= t <= 2000]
    assert ticks == pytest.approx([10, 100, 1000])
    ax.set_xlim(1.5, 40)
    _log_ratio_axis(ax)
    assert 20 in [round(t) for t in ax.get_xticks()]
    plt.close(figure)
