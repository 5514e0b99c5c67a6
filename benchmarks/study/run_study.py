"""Run (or resume) the sorting-impact study and commit its results under benchmarks/results/study/.

    python benchmarks/study/run_study.py [--config benchmarks/study/study.yaml] [--scheduler ADDRESS]

Writes benchmarks/results/study/: results.csv (one row per cell), results.json (with every
hardware report), summary.md (mean ± std over seeds per recording, codec point and sorter, plus the
hardware verdict rows of each codec point), report.html (the static report) and report.png (a
headless-Chromium screenshot of it). Working files (recordings, containers, sortings) stay in
benchmarks/work/study/.
"""

import argparse
import shutil
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def summary_markdown(table, planned_cells=None) -> str:
    from spikeinterface_vqcompress.report import summarize_study

    summary = summarize_study(table)
    status = f"{len(table)} of {planned_cells} planned cells finished" if planned_cells else f"{len(table)} cells"
    lines = ["# Sorting-impact study", "", f"**{status}** (a resumed run of `run_study.py` completes the rest). "
             "Locust and Open Ephys traces have no µV gain: their RMSE is in ADC units.", "",
             "Mean over sorter seeds (tridesclous2 seed 0; spykingcircus2 seeds 0, 1, 2). Score: accuracy against MEArec "
             "ground truth, or for real recordings agreement with the raw recording's sorting (same sorter and seed). "
             "Bit-exact rebuilds reuse the raw sorting. Ratio: every container byte against int16. Δ vs raw: mean over the "
             "seeds present of (score - raw recording's score with the same sorter and seed).", "",
             "| recording | codec | sorter | ratio | RMSE µV | score mean ± std (n) | Δ vs raw |", "|---|---|---|---|---|---|---|"]
    for row in summary.itertuples():
        rmse = "-" if row.rmse_uV != row.rmse_uV else f"{row.rmse_uV:.3g}"
        change = "-" if row.score_change != row.score_change else f"{row.score_change:+.3f}"
        score = "-" if row.score_mean != row.score_mean else f"{row.score_mean:.3f} ± {row.score_std:.3f} ({row.num_seeds})"
        lines.append(f"| {row.recording} | {row.codec} | {row.sorter} | {row.compression_ratio:.2f} | {rmse} | {score} | {change} |")
    lines += ["", "## Hardware verdicts (N1 budget: <= 1 Mbit/s, <= 1 ms, <= 10 mW per 1024 channels incl. radio)", "",
              "| recording | codec | Mbit/s per 1024 ch | link | latency ms | latency | mW per 1024 ch | power |", "|---|---|---|---|---|---|---|---|"]
    verdict = {True: "pass", False: "FAIL", None: "?"}
    coded = table[table["codec"] != "raw"].drop_duplicates(["recording", "codec"])
    for row in coded.itertuples():
        link, latency, power = row.hardware["verdicts"]
        lines.append(f"| {row.recording} | {row.codec} | {link['value']:.3g} | {verdict[link['pass']]} | {latency['value']:.3g} | "
                     f"{verdict[latency['pass']]} | {power['value']:.3g} | {verdict[power['pass']]} |")
    return "\n".join(lines) + "\n"


def missing_markdown(plan, table, failures_path) -> str:
    """The planned cells that have no row, and why when the run recorded it (a sorter that fails on a
    rebuilt recording is a result too); cells of an unfinished run are listed as not run."""
    import json
    import re

    finished = set(table["cell"])
    reasons = {}
    if Path(failures_path).is_file():
        for failure in json.loads(Path(failures_path).read_text())["failures"]:
            message = " ".join(failure["message"].split())
            reasons[re.sub(r"^(finish|sort)-", "", failure["task"])] = re.sub(r" on \S+ \(exit", " (exit", message)[:200]
    grouped = {}
    for cell in plan["cells"]:
        if cell["key"] in finished:
            continue
        codec = cell["key"].split("__")[1]
        reason = reasons.get(cell["key"], "not run (the run was stopped)")
        grouped.setdefault((cell["recording"], codec, cell["sorter"], reason), []).append(str(cell["seed"]))
    if not grouped:
        return ""
    lines = ["", f"## Planned cells without a row ({sum(len(seeds) for seeds in grouped.values())})", "",
             "| recording | codec point | sorter | seeds | why |", "|---|---|---|---|---|"]
    for (recording, codec, sorter, reason), seeds in sorted(grouped.items()):
        lines.append(f"| {recording} | {codec} | {sorter} | {', '.join(seeds)} | {reason} |")
    return "\n".join(lines) + "\n"


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", default=str(ROOT / "benchmarks" / "study" / "study.yaml"))
    parser.add_argument("--work", default=str(ROOT / "benchmarks" / "work" / "study"))
    parser.add_argument("--results", default=str(ROOT / "benchmarks" / "results" / "study"))
    parser.add_argument("--scheduler", default=None)
    parser.add_argument("--n-workers", type=int, default=2)
    parser.add_argument("--retry-failed", action="store_true", help="run again the cells that failed before")
    parser.add_argument("--skip-run", action="store_true", help="only rebuild the results from the finished cells")
    args = parser.parse_args(argv)

    from spikeinterface_vqcompress.report import build_report, find_browser, screenshot
    from spikeinterface_vqcompress.study import expand_study, load_study_config, read_study_results, refresh_hardware_reports, run_study, write_study_table

    work = Path(args.work)
    if not args.skip_run:
        run_study(load_study_config(args.config), work, scheduler=args.scheduler, n_workers=args.n_workers,
                  retry_failed=args.retry_failed)
    # hardware reports from the current profiles and energy model (points compressed by an earlier
    # version keep their bytes and encode times; only the report is rebuilt)
    refresh_hardware_reports(work)
    write_study_table(work)
    results = Path(args.results)
    results.mkdir(parents=True, exist_ok=True)
    for name in ("results.csv", "results.json", "study_config.json"):
        shutil.copy(work / name, results / name)
    if (work / "failures.json").is_file():
        shutil.copy(work / "failures.json", results / "failures.json")
    plan = expand_study(load_study_config(args.config))
    finished = read_study_results(work)
    (results / "summary.md").write_text(summary_markdown(finished, len(plan["cells"]))
                                        + missing_markdown(plan, finished, work / "failures.json"))
    page = build_report(work, output=results / "report.html")
    if find_browser() is not None:
        screenshot(page, results / "report.png", width=1400, height=5200)
    print(f"wrote {results}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
