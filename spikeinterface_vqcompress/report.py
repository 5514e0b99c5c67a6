"""A static HTML report of a study (``vqcompress report STUDY_FOLDER``).

One self-contained page (images embedded, no server, no scripts): ratio-accuracy curves per sorter,
rate-distortion curves, waveform overlays of raw and rebuilt traces around ground-truth spikes,
hardware budget bars, a summary table and the full tidy table. :func:`screenshot` renders the page
in a real headless browser (Chromium) to check that it displays.
"""

from __future__ import annotations

import base64
import html
import io
import json
import shutil
import subprocess
import time
from pathlib import Path

import numpy as np

__all__ = ["build_report", "screenshot", "find_browser", "summarize_study"]

_BROWSERS = ("chromium", "chromium-browser", "google-chrome", "google-chrome-stable", "chrome")


def _figure_to_html(figure, alt: str) -> str:
    import matplotlib.pyplot as plt

    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=110, bbox_inches="tight")
    plt.close(figure)
    encoded = base64.b64encode(buffer.getvalue()).decode("ascii")
    return f'<img alt="{html.escape(alt)}" src="data:image/png;base64,{encoded}">'


def _score_column(table):
    """Accuracy against ground truth where there is one, else agreement with the raw sorting."""
    score = table["accuracy_mean"] if "accuracy_mean" in table.columns else np.full(len(table), np.nan)
    if "agreement_accuracy_mean" in table.columns:
        score = np.where(np.isfinite(np.asarray(score, dtype=float)), score, table["agreement_accuracy_mean"])
    return np.asarray(score, dtype=float)


def summarize_study(table):
    """Mean and spread over sorter seeds for each (recording, codec point, sorter).

    Returns
    -------
    summary : pandas.DataFrame
    """
    import pandas as pd

    table = table.assign(score=_score_column(table))
    raw_scores = table[table["codec"] == "raw"].groupby(["recording", "sorter"])["score"].mean()
    groups = table.groupby(["recording", "codec", "codec_id", "sorter"], sort=False)
    summary = groups.agg(
        compression_ratio=("compression_ratio", "first"),
        compression_ratio_vs_adc=("compression_ratio_vs_adc", "first"),
        rmse_uV=("rmse_uV", "first"),
        score_mean=("score", "mean"),
        score_std=("score", "std"),
        num_seeds=("seed", "count"),
        ground_truth=("ground_truth", "first"),
        sort_time_s=("sort_time_s", "mean"),
    ).reset_index()
    summary["score_std"] = summary["score_std"].fillna(0.0)
    # paired with the raw recording's sorting of the same sorter and seed: seeds still missing from a
    # point (an unfinished study) do not bias its change
    raw_by_seed = table[table["codec"] == "raw"].set_index(["recording", "sorter", "seed"])["score"]
    paired = table.assign(raw_score=[raw_by_seed.get((row.recording, row.sorter, row.seed), np.nan)
                                     for row in table.itertuples()])
    change = (paired["score"] - paired["raw_score"]).groupby([paired[key] for key in ("recording", "codec", "codec_id", "sorter")],
                                                             sort=False).mean()
    summary["score_change"] = [
        change.get((row.recording, row.codec, row.codec_id, row.sorter), np.nan) for row in summary.itertuples()
    ]
    if summary["score_change"].isna().any():  # no raw sorting for that seed: fall back to the raw mean
        fallback = [row.score_mean - raw_scores.get((row.recording, row.sorter), np.nan) for row in summary.itertuples()]
        summary["score_change"] = summary["score_change"].fillna(pd.Series(fallback, index=summary.index))
    for column in ("hw_link_pass", "hw_latency_pass", "hw_power_pass", "hw_link_Mbps_1024ch", "hw_latency_ms", "hw_power_mW_1024ch"):
        if column in table.columns:
            summary[column] = groups[column].first().values
    return summary


def _log_ratio_axis(ax):
    """Log ratio axis labelled 1×, 2×, 5×, 10×…; past two decades only the powers of ten are labelled,
    so that the labels of a wide range (lossless to 2000×) do not run into each other."""
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    ax.set_xscale("log")
    low, high = ax.get_xlim()
    wide = low > 0 and high / low > 100
    ax.xaxis.set_major_locator(LogLocator(base=10, subs=(1.0,) if wide else (1.0, 2.0, 5.0)))
    ax.xaxis.set_major_formatter(FuncFormatter(lambda value, _: f"{value:g}×"))
    ax.xaxis.set_minor_formatter(NullFormatter())


def _ratio_accuracy_figure(summary, sorter):
    import matplotlib.pyplot as plt

    recordings = list(dict.fromkeys(summary["recording"]))
    figure, axes = plt.subplots(1, len(recordings), figsize=(4.6 * len(recordings), 3.6), squeeze=False)
    for ax, recording in zip(axes[0], recordings):
        part = summary[(summary["recording"] == recording) & (summary["sorter"] == sorter)]
        raw = part[part["codec"] == "raw"]
        if len(raw):
            mean, std = float(raw["score_mean"].iloc[0]), float(raw["score_std"].iloc[0])
            ax.axhspan(mean - std, mean + std, color="0.85")
            ax.axhline(mean, color="k", linewidth=1, label="raw")
        for codec_id, group in part[part["codec"] != "raw"].groupby("codec_id", sort=False):
            group = group.sort_values("compression_ratio")
            ax.errorbar(group["compression_ratio"], group["score_mean"], yerr=group["score_std"], marker="o", capsize=3,
                        label=codec_id)
        has_gt = bool(part["ground_truth"].any()) if len(part) else True
        _log_ratio_axis(ax)
        ax.set_xlabel("compression ratio (vs stored dtype, all bytes)")
        ax.set_ylabel("mean accuracy vs ground truth" if has_gt else "agreement with raw sorting")
        ax.set_title(recording, fontsize=10)
        ax.set_ylim(-0.02, 1.02)
        ax.grid(alpha=0.3)
    axes[0][-1].legend(fontsize=7, loc="lower left")
    figure.suptitle(f"{sorter}: what compression costs the sorting (mean ± std over seeds)", fontsize=11)
    return figure


def _rate_distortion_figure(summary):
    import matplotlib.pyplot as plt

    recordings = list(dict.fromkeys(summary["recording"]))
    figure, axes = plt.subplots(1, len(recordings), figsize=(4.6 * len(recordings), 3.4), squeeze=False)
    points = summary.drop_duplicates(["recording", "codec"])
    for ax, recording in zip(axes[0], recordings):
        part = points[(points["recording"] == recording) & (points["codec"] != "raw")]
        for codec_id, group in part.groupby("codec_id", sort=False):
            group = group.sort_values("compression_ratio")
            rmse = np.maximum(group["rmse_uV"].astype(float).values, 1e-3)  # lossless: plotted at the floor
            ax.plot(group["compression_ratio"], rmse, marker="o", label=codec_id)
        _log_ratio_axis(ax)
        ax.set_yscale("log")
        ax.set_xlabel("compression ratio")
        ax.set_ylabel("RMSE (µV; lossless at 0.001)")
        ax.set_title(recording, fontsize=10)
        ax.grid(alpha=0.3, which="both")
    axes[0][-1].legend(fontsize=7)
    figure.suptitle("rate–distortion", fontsize=11)
    return figure


def _hardware_figure(table):
    import matplotlib.pyplot as plt

    rows = table[table["codec"] != "raw"]
    rows = rows[rows["hardware"].notna()] if "hardware" in rows.columns else rows.iloc[0:0]
    if not len(rows):
        return None
    # one recording for every bar: the one with the most codec points, ground truth first (the
    # synthetic reference probe, not whichever recording the table happens to list first)
    coverage = rows.groupby("recording").agg(points=("codec", "nunique"), gt=("ground_truth", "any")) if "ground_truth" in rows.columns \
        else rows.groupby("recording").agg(points=("codec", "nunique")).assign(gt=False)
    best = max(sorted(coverage.index), key=lambda name: (coverage.loc[name, "points"], bool(coverage.loc[name, "gt"])))  # ties: first by name
    rows = rows[rows["recording"] == best].drop_duplicates("codec")
    names = ["link", "latency", "power incl. radio"]
    figure, ax = plt.subplots(figsize=(8, 0.45 * len(rows) * 3 + 1.2))
    positions = np.arange(len(rows))
    height = 0.27
    colors = {0: "tab:blue", 1: "tab:orange", 2: "tab:purple"}
    for index, name in enumerate(names):
        fractions = []
        for hardware in rows["hardware"]:
            verdict = hardware["verdicts"][index]
            fractions.append(np.nan if verdict["value"] is None else max(verdict["value"] / verdict["limit"], 1e-4))
        ax.barh(positions + (index - 1) * height, np.nan_to_num(fractions, nan=0.0), height=height, color=colors[index], label=name)
    ax.axvline(1.0, color="k", linestyle="--", linewidth=1)
    ax.set_yticks(positions, list(rows["codec"]), fontsize=8)
    ax.set_xscale("log")
    ax.set_xlabel("share of the N1 budget (1 = limit; left of the line passes)")
    ax.legend(fontsize=8, loc="lower right")
    ax.set_title(f"hardware budget ({rows['recording'].iloc[0]}, {int(rows['num_channels'].iloc[0])} ch, scaled to 1024 ch)", fontsize=10)
    ax.invert_yaxis()
    return figure


def _waveform_figure(study_folder: Path, table):
    """Raw vs rebuilt traces around the largest ground-truth unit's spike, one panel per codec
    family at its most compressed point."""
    import matplotlib.pyplot as plt

    from spikeinterface_vqcompress.groundtruth import load_ground_truth
    from spikeinterface_vqcompress.recording import read_compressed

    gt_rows = table[(table["ground_truth"] == True) & (table["codec"] != "raw")]  # noqa: E712
    if not len(gt_rows):
        return None
    recording_name = gt_rows["recording"].iloc[0]
    paths = table[table["recording"] == recording_name]["recording_path"].dropna() if "recording_path" in table.columns else []
    recording_file = Path(paths.iloc[0]) if len(paths) else None
    if recording_file is None or not recording_file.is_file():
        return None
    recording, gt_sorting = load_ground_truth(recording_file)
    points = gt_rows[gt_rows["recording"] == recording_name].sort_values("compression_ratio").drop_duplicates("codec_id", keep="last")
    fs = recording.sampling_frequency
    half = int(round(2e-3 * fs))
    # the unit and channel with the largest trough: a well-defined spike to look at
    best = None
    for unit_id in gt_sorting.unit_ids:
        train = gt_sorting.get_unit_spike_train(unit_id)
        train = train[(train > half) & (train < recording.get_num_samples() - half)]
        if len(train) == 0:
            continue
        frame = int(train[len(train) // 2])
        snippet = recording.get_traces(start_frame=frame - half, end_frame=frame + half, return_in_uV=True)
        channel = int(np.argmin(snippet.min(axis=0)))
        depth = float(-snippet[:, channel].min())
        if best is None or depth > best[0]:
            best = (depth, unit_id, frame, channel)
    if best is None:
        return None
    _, unit_id, frame, channel = best
    time_ms = (np.arange(-half, half) / fs) * 1e3
    raw = recording.get_traces(start_frame=frame - half, end_frame=frame + half, return_in_uV=True)[:, channel]
    figure, axes = plt.subplots(1, len(points), figsize=(3.2 * len(points), 2.8), squeeze=False, sharey=True)
    for ax, row in zip(axes[0], points.itertuples()):
        vqc = study_folder / "compressed" / recording_name / f"{Path(row.cell.split('__')[1]).name}.vqc"
        ax.plot(time_ms, raw, color="k", linewidth=1.2, label="raw")
        if vqc.is_file():
            rebuilt = read_compressed(vqc).get_traces(start_frame=frame - half, end_frame=frame + half, return_in_uV=True)[:, channel]
            ax.plot(time_ms, rebuilt, color="tab:red", linewidth=1, label="rebuilt")
        ax.set_title(f"{row.codec}\n{row.compression_ratio:.1f}x", fontsize=8)
        ax.set_xlabel("ms")
    axes[0][0].set_ylabel(f"µV (unit {unit_id}, channel {channel})")
    axes[0][0].legend(fontsize=7)
    figure.suptitle(f"{recording_name}: a ground-truth spike, raw and rebuilt (most compressed point of each codec)", fontsize=10)
    figure.tight_layout(rect=(0, 0, 1, 0.86))
    return figure


def _summary_html(summary) -> str:
    verdict = {True: "pass", False: "FAIL"}
    lines = ["<table><thead><tr><th>recording</th><th>codec</th><th>sorter</th><th>ratio</th><th>RMSE µV</th>"
             "<th>score (mean ± std, seeds)</th><th>Δ vs raw</th><th>link</th><th>latency</th><th>power</th></tr></thead><tbody>"]
    for row in summary.itertuples():
        def cell(value, digits=3):
            return "–" if value is None or (isinstance(value, float) and not np.isfinite(value)) else f"{value:.{digits}g}"

        hardware = [verdict.get(getattr(row, name, None), "–") if row.codec != "raw" else "–"
                    for name in ("hw_link_pass", "hw_latency_pass", "hw_power_pass")]
        css = ' class="bad"' if np.isfinite(row.score_change) and row.score_change < -0.02 else ""
        lines.append(
            f"<tr{css}><td>{html.escape(row.recording)}</td><td>{html.escape(row.codec)}</td><td>{html.escape(row.sorter)}</td>"
            f"<td>{cell(row.compression_ratio)}</td><td>{cell(row.rmse_uV)}</td>"
            f"<td>{cell(row.score_mean)} ± {cell(row.score_std, 2)} ({row.num_seeds})</td><td>{cell(row.score_change, 2)}</td>"
            + "".join(f"<td>{value}</td>" for value in hardware) + "</tr>"
        )
    lines.append("</tbody></table>")
    return "\n".join(lines)


_STYLE = """
body { font-family: sans-serif; margin: 2em; color: #222; max-width: 1400px; }
h1 { font-size: 1.6em; } h2 { font-size: 1.25em; border-bottom: 1px solid #ccc; padding-bottom: .2em; margin-top: 1.6em; }
table { border-collapse: collapse; font-size: 0.85em; margin: .5em 0; }
th, td { border: 1px solid #ccc; padding: 3px 7px; text-align: right; }
th { background: #f0f0f0; } td:nth-child(-n+3) { text-align: left; }
tr.bad td { background: #fde8e8; }
img { max-width: 100%; margin: .4em 0; }
.note { color: #555; font-size: .9em; }
details { margin-top: 1em; }
"""


def build_report(study_folder, output=None, title: str | None = None) -> Path:
    """Write the study's HTML report.

    Parameters
    ----------
    study_folder : str | Path
        A folder written by :func:`spikeinterface_vqcompress.study.run_study`.
    output : str | Path | None, default: None
        The HTML file; None for ``STUDY_FOLDER/report.html``.
    title : str | None
        Page title; None for the study's name.

    Returns
    -------
    path : Path
    """
    import matplotlib

    matplotlib.use("Agg")
    from spikeinterface_vqcompress.study import read_study_results

    study_folder = Path(study_folder)
    table = read_study_results(study_folder)
    config_path = study_folder / "study_config.json"
    config = json.loads(config_path.read_text()) if config_path.is_file() else {}
    title = title or f"Sorting-impact study: {config.get('name', study_folder.name)}"
    summary = summarize_study(table)

    sections = [f"<h1>{html.escape(title)}</h1>",
                f"<p class='note'>{len(table)} cells ({table['recording'].nunique()} recordings, {table['codec'].nunique()} codec points "
                f"incl. raw, sorters: {', '.join(sorted(table['sorter'].unique()))}); generated {time.strftime('%Y-%m-%d %H:%M')}. "
                "Scores: mean accuracy against MEArec ground truth; for real recordings without ground truth, "
                "agreement (accuracy) with the sorting of the raw recording by the same sorter and seed. "
                "Ratios count every byte of the container.</p>"]
    sections.append("<h2>Ratio–accuracy curves</h2>")
    for sorter in sorted(summary["sorter"].unique()):
        sections.append(_figure_to_html(_ratio_accuracy_figure(summary, sorter), f"ratio-accuracy {sorter}"))
    sections.append("<h2>Rate–distortion</h2>")
    sections.append(_figure_to_html(_rate_distortion_figure(summary), "rate-distortion"))
    waveform = _waveform_figure(study_folder, table)
    if waveform is not None:
        sections.append("<h2>Waveforms</h2>")
        sections.append(_figure_to_html(waveform, "waveform overlays"))
    hardware = _hardware_figure(table)
    if hardware is not None:
        sections.append("<h2>Hardware budget (N1: 1 Mbit/s, 1 ms, 10 mW per 1024 channels)</h2>")
        sections.append(_figure_to_html(hardware, "hardware budget"))
        first = table[(table["codec"] != "raw") & table["hardware"].notna()].drop_duplicates("codec")
        energy = first["hardware"].iloc[0]["energy_model"] if len(first) else None
        if energy:
            sections.append(f"<p class='note'>Energy model: {html.escape(energy['source'])}. Radio {energy['radio_energy_pJ_per_bit']:.3g} pJ/bit: "
                            f"{html.escape(energy['radio_reference'])}. Estimates for a dedicated digital encoder, not a chip measurement.</p>")
    sections.append("<h2>Summary (mean over seeds)</h2>")
    sections.append(_summary_html(summary))
    columns = [column for column in ("recording", "codec", "sorter", "seed", "compression_ratio", "rmse_uV", "accuracy_mean",
                                     "precision_mean", "recall_mean", "num_well_detected", "agreement_accuracy_mean",
                                     "num_sorted_units", "sort_time_s", "hw_link_Mbps_1024ch", "hw_latency_ms",
                                     "hw_power_mW_1024ch") if column in table.columns]
    sections.append("<details><summary>Every cell (the tidy table; also results.csv)</summary>")
    sections.append(table[columns].to_html(index=False, float_format=lambda value: f"{value:.4g}", na_rep="–", border=0))
    sections.append("</details>")
    page = (f"<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'><title>{html.escape(title)}</title>"
            f"<style>{_STYLE}</style></head><body>\n" + "\n".join(sections) + "\n</body></html>\n")
    output = Path(output) if output is not None else study_folder / "report.html"
    output.parent.mkdir(parents=True, exist_ok=True)
    temporary = output.with_name(output.name + ".tmp")
    temporary.write_text(page, encoding="utf-8")
    temporary.replace(output)
    return output


def find_browser() -> str | None:
    """Path of a Chromium-family browser on this machine, or None."""
    for name in _BROWSERS:
        path = shutil.which(name)
        if path:
            return path
    return None


def screenshot(html_path, png_path, width: int = 1400, height: int = 3000, browser: str | None = None,
               timeout_s: float = 120.0) -> Path:
    """Render a page in headless Chromium and save a screenshot.

    Raises
    ------
    RuntimeError
        When no browser is installed (install Debian's ``chromium``) or it fails to render.
    """
    browser = browser or find_browser()
    if browser is None:
        raise RuntimeError("no headless browser found: install one (Debian: apt-get install chromium) or pass browser=")
    html_path = Path(html_path).absolute()
    png_path = Path(png_path).absolute()
    png_path.parent.mkdir(parents=True, exist_ok=True)
    if png_path.exists():
        png_path.unlink()
    command = [browser, "--headless", "--no-sandbox", "--disable-gpu", "--hide-scrollbars", "--disable-dev-shm-usage",
               f"--window-size={int(width)},{int(height)}", f"--screenshot={png_path}", html_path.as_uri()]
    completed = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    if not png_path.is_file():
        raise RuntimeError(f"{browser} did not write a screenshot (exit {completed.returncode}): {completed.stderr[-2000:]}")
    return png_path
