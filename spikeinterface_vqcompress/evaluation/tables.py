"""Markdown tables of evaluation results, and the short label of a codec config."""

from __future__ import annotations

import math


def codec_label(config: dict) -> str:
    """Short human label of a codec config: ``wavpack(bps=2.25)``.

    The codec's first parameter (its main knob) is always shown; other parameters left at their
    defaults, or None, are left out; long hashes are cut to 8 characters.
    """
    import inspect

    from spikeinterface_vqcompress.core.registry import get_codec_class

    try:
        signature = list(inspect.signature(get_codec_class(config["id"]).__init__).parameters.values())[1:]
        defaults = {parameter.name: parameter.default for parameter in signature[1:]}
    except (KeyError, ValueError):
        defaults = {}
    shown = []
    for key, value in config.items():
        if key == "id" or value is None or (key in defaults and defaults[key] == value):
            continue
        if isinstance(value, str) and len(value) > 16 and all(character in "0123456789abcdef" for character in value):
            value = value[:8]
        shown.append(f"{key}={value}")
    return f"{config['id']}({', '.join(shown)})" if shown else config["id"]


def _fmt(value, digits=2):
    if value is None:
        return "-"
    if isinstance(value, str):
        return value
    if isinstance(value, float) and math.isinf(value):
        return "exact"
    if isinstance(value, float) and math.isnan(value):
        return "-"
    return f"{value:.{digits}f}"


def _units(summary) -> str:
    """Units sorted and, in brackets, the false positive ones (unmatched to ground truth), mean over repeats."""
    if "num_sorted_units" not in summary:
        return "-"
    return f"{summary['num_sorted_units']:.1f} ({summary.get('num_false_positive', math.nan):.1f})"


def format_table(results: list[dict]) -> str:
    """A markdown table of evaluation results, one row per codec. The accuracy columns count only the
    ground-truth units; the last column shows the units a sorter cut that match none of them."""
    has_sorting = any("raw" in result for result in results)
    columns = ["codec", "lossless", "ratio", "ratio vs ADC", "bits/sample", "RMSE µV", "spike SNDR dB", "encode ×RT", "decode ×RT"]
    if has_sorting:
        columns += ["accuracy raw", "accuracy rebuilt", "Δ accuracy", "well detected raw→rebuilt",
                    "units sorted (false positive) raw→rebuilt"]
    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for result in results:
        sndr = result.get("sndr_spike_db_mean")
        if result.get("exact"):
            sndr = math.inf
        row = [
            result["codec"], "yes" if result["lossless"] else "no", _fmt(result["compression_ratio"]),
            f"{_fmt(result['compression_ratio_vs_adc'])} ({result['adc_bits']} bit)", _fmt(result["bits_per_sample"]),
            _fmt(result.get("rmse_uV"), 3) + ("" if result.get("units", "uV") == "uV" else " LSB"), _fmt(sndr, 1),
            _fmt(result["encode_speed_x_realtime"], 0), _fmt(result["decode_speed_x_realtime"], 0),
        ]
        if has_sorting and "raw" in result:
            raw, rebuilt = result["raw"], result["compressed"]
            spread = lambda summary: f" ± {summary['accuracy_mean_std']:.3f}" if summary["num_repeats"] > 1 else ""  # noqa: E731
            reused = " (= raw, bit-exact)" if result.get("sorting_reused_from_raw") else ""
            row += [
                f"{raw['accuracy_mean']:.3f}{spread(raw)}", f"{rebuilt['accuracy_mean']:.3f}{spread(rebuilt)}{reused}",
                f"{result['accuracy_change']:+.3f}", f"{raw['num_well_detected']:.1f} → {rebuilt['num_well_detected']:.1f}",
                f"{_units(raw)} → {_units(rebuilt)}",
            ]
        elif has_sorting:
            row += ["-"] * 5
        lines.append("| " + " | ".join(row) + " |")
    return "\n".join(lines)


def format_hardware_table(results: list[dict]) -> str:
    """A markdown table of the hardware reports of evaluation results: one row per codec, the
    N1-style verdicts (link, latency, power incl. radio) with their values."""
    lines = ["| codec | Mbit/s per 1024 ch | link | latency ms | latency | mW per 1024 ch (incl. radio) | power | host ×RT |",
             "|---|---|---|---|---|---|---|---|"]
    verdict = {True: "pass", False: "FAIL", None: "?"}
    for result in results:
        report = result.get("hardware")
        if not report:
            continue
        link, latency, power = report["verdicts"]
        lines.append(
            f"| {result['codec']} | {_fmt(link['value'], 3)} | {verdict[link['pass']]} | {_fmt(latency['value'], 3)} | "
            f"{verdict[latency['pass']]} | {_fmt(power['value'], 3)} | {verdict[power['pass']]} | {_fmt(report['host_realtime_factor'], 0)} |"
        )
    return "\n".join(lines)
