"""Sorting and scoring against ground truth: run a seeded sorter, score it, summarise repeats."""

from __future__ import annotations

import time

import numpy as np

WELL_DETECTED_ACCURACY = 0.8


def score_sorting(gt_sorting, sorting, well_detected_accuracy: float = WELL_DETECTED_ACCURACY) -> dict:
    """Compare a sorting to ground truth: mean/median accuracy, precision, recall, unit counts."""
    from spikeinterface.comparison import compare_sorter_to_ground_truth

    comparison = compare_sorter_to_ground_truth(gt_sorting, sorting, exhaustive_gt=True)
    performance = comparison.get_performance(method="by_unit")
    return {
        "accuracy_mean": float(performance["accuracy"].mean()),
        "accuracy_median": float(performance["accuracy"].median()),
        "precision_mean": float(performance["precision"].mean()),
        "recall_mean": float(performance["recall"].mean()),
        "num_gt_units": int(len(gt_sorting.unit_ids)),
        "num_sorted_units": int(len(sorting.unit_ids)),
        "num_well_detected": int(comparison.count_well_detected_units(well_detected_accuracy)),
        "num_false_positive": int(comparison.count_false_positive_units()),
        "num_redundant": int(comparison.count_redundant_units()),
    }


def run_seeded_sorter(recording, sorter: str, seed: int | None, folder, sorter_params: dict | None = None,
                      job_kwargs: dict | None = None):
    """Run a SpikeInterface sorter into ``folder`` (replaced if present), seeded where it takes a seed.

    Returns
    -------
    sorting : BaseSorting
    sort_time_s : float
    """
    import spikeinterface.sorters as ss

    params = dict(sorter_params or {})
    default_params = ss.get_default_sorter_params(sorter)
    if seed is not None and "seed" in default_params:
        params["seed"] = int(seed)
    if job_kwargs and "job_kwargs" in default_params:
        params["job_kwargs"] = {**default_params.get("job_kwargs", {}), **job_kwargs}
    t0 = time.perf_counter()
    sorting = ss.run_sorter(sorter, recording, folder=str(folder), remove_existing_folder=True, verbose=False, **params)
    return sorting, time.perf_counter() - t0


def sort_and_score(recording, gt_sorting, sorter: str, seed: int | None, folder, sorter_params: dict | None = None,
                   job_kwargs: dict | None = None) -> dict:
    """Run a SpikeInterface sorter (seeded where it takes a seed) and score it."""
    sorting, sort_time_s = run_seeded_sorter(recording, sorter, seed, folder, sorter_params, job_kwargs)
    scores = score_sorting(gt_sorting, sorting)
    scores["sort_time_s"] = sort_time_s
    scores["seed"] = seed
    return scores


def summarize_repeats(repeats: list[dict]) -> dict:
    """Mean and spread over repeats of each score."""
    summary = {"num_repeats": len(repeats), "num_gt_units": repeats[0]["num_gt_units"]}
    for key in ("accuracy_mean", "accuracy_median", "precision_mean", "recall_mean", "num_sorted_units", "num_well_detected",
                "num_false_positive", "num_redundant", "sort_time_s"):
        values = np.array([repeat[key] for repeat in repeats], dtype=float)
        summary[key] = float(values.mean())
        summary[key + "_std"] = float(values.std())
    return summary
