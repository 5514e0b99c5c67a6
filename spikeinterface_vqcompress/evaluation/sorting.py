"""Sorting and scoring against ground truth: run a seeded sorter, score it, summarise repeats."""

from __future__ import annotations

import time

import numpy as np

WELL_DETECTED_ACCURACY = 0.8


def score_sorting(gt_sorting, sorting, well_detected_accuracy: float = WELL_DETECTED_ACCURACY) -> dict:
    """Compare a sorting to ground truth: mean/median accuracy, precision, recall, unit counts."""
    from spikeinterface.comparison import compare_sorter_to_ground_truth

    if len(sorting.unit_ids) == 0:  # nothing sorted (SpikeInterface's comparison cannot match an empty sorting)
        return {"accuracy_mean": 0.0, "accuracy_median": 0.0, "precision_mean": 0.0, "recall_mean": 0.0,
                "num_gt_units": int(len(gt_sorting.unit_ids)), "num_sorted_units": 0, "num_well_detected": 0,
                "num_false_positive": 0, "num_redundant": 0}
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


def median_lateral_spacing_um(recording) -> float | None:
    """The median distance between neighbouring contact columns of the recording's probe (None: one column)."""
    columns = np.unique(np.round(recording.get_channel_locations()[:, 0], 3))
    if len(columns) < 2:
        return None
    return float(np.median(np.diff(columns)))


def recommended_sorter_params(sorter: str, recording) -> dict:
    """Parameters a sorter's authors ask users to adapt to their probe and recording, for this recording.

    Only kilosort4 has any today (measured in ``benchmarks/results/kilosort4_settings.md``):

    - ``dminx``: the median lateral distance between contacts (Kilosort's documentation: the default
      32 um suits Neuropixels; for other geometries start from the median lateral spacing);
    - ``nblocks = 0`` (no drift correction) on probes of 64 channels or fewer, where Kilosort's
      documentation says the drift estimate is unlikely to be accurate. On a recording known to
      drift, pass ``sorter_params={"nblocks": 1}`` over it: on the 20-s drifting Neuronexus-32
      MEArec recording of ``benchmarks/esort.py`` kilosort4 scored 0.265 with ``nblocks = 0`` and
      0.337 with its default.

    Parameters
    ----------
    sorter : str
        SpikeInterface sorter name.
    recording : BaseRecording
        The recording to sort (its probe geometry and channel count decide).

    Returns
    -------
    dict
        Parameters to pass to ``run_sorter`` (empty for sorters run with their defaults).
    """
    if sorter != "kilosort4":
        return {}
    params = {}
    spacing = median_lateral_spacing_um(recording)
    if spacing is not None:
        params["dminx"] = spacing
    if recording.get_num_channels() <= 64:
        params["nblocks"] = 0
    return params


def run_seeded_sorter(recording, sorter: str, seed: int | None, folder, sorter_params: dict | None = None,
                      job_kwargs: dict | None = None, use_recommended: bool = True):
    """Run a SpikeInterface sorter into ``folder`` (replaced if present), seeded where it takes a seed.

    Parameters
    ----------
    recording : BaseRecording
    sorter : str
        SpikeInterface sorter name.
    seed : int | None
        The sorter's ``seed`` parameter, where it has one.
    folder : str | Path
        The sorter's output folder.
    sorter_params : dict | None, default: None
        Parameters of the sorter; they take precedence over the recommended ones.
    job_kwargs : dict | None, default: None
        The sorter's ``job_kwargs`` (``n_jobs``, ``progress_bar``), where it takes them.
    use_recommended : bool, default: True
        Start from :func:`recommended_sorter_params` (kilosort4's probe geometry settings).

    Returns
    -------
    sorting : BaseSorting
    sort_time_s : float
    """
    import spikeinterface.sorters as ss

    params = {**(recommended_sorter_params(sorter, recording) if use_recommended else {}), **(sorter_params or {})}
    default_params = ss.get_default_sorter_params(sorter)
    if seed is not None and "seed" in default_params:
        params["seed"] = int(seed)
    if job_kwargs and "job_kwargs" in default_params:
        params["job_kwargs"] = {**default_params.get("job_kwargs", {}), **job_kwargs}
    t0 = time.perf_counter()
    sorting = ss.run_sorter(sorter, recording, folder=str(folder), remove_existing_folder=True, verbose=False, **params)
    return sorting, time.perf_counter() - t0


def sort_and_score(recording, gt_sorting, sorter: str, seed: int | None, folder, sorter_params: dict | None = None,
                   job_kwargs: dict | None = None, sorter_failure: str = "raise") -> dict:
    """Run a SpikeInterface sorter (seeded where it takes a seed) and score it.

    ``sorter_failure``: "raise" (default) lets a failed sorter's error through; "score-empty" scores
    the run as a sorting with no unit (accuracy 0, no unit sorted) and records the error under
    ``sorter_error``: what a rebuilt recording that breaks the sorter (e.g. one so coarse that its
    clustering finds nothing) costs, without losing the other runs of a long benchmark.
    """
    import spikeinterface.core as sc
    from spikeinterface.sorters.utils.misc import SpikeSortingError

    if sorter_failure not in ("raise", "score-empty"):
        raise ValueError(f"sorter_failure must be 'raise' or 'score-empty', got {sorter_failure!r}")
    error = None
    t0 = time.perf_counter()
    try:
        sorting, sort_time_s = run_seeded_sorter(recording, sorter, seed, folder, sorter_params, job_kwargs)
    except SpikeSortingError as exception:
        if sorter_failure == "raise":
            raise
        lines = [line.strip() for line in str(exception).splitlines() if line.strip()]
        causes = [line for line in lines if not line.startswith("Spike sorting failed")]  # the sorter's own error
        error = (causes or lines or ["unknown error"])[-1][:300]
        sorting = sc.NumpySorting.from_unit_dict({}, sampling_frequency=recording.get_sampling_frequency())
        sort_time_s = time.perf_counter() - t0
    scores = score_sorting(gt_sorting, sorting)
    if error is not None:
        scores["sorter_error"] = error
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
    summary["num_sorter_errors"] = sum("sorter_error" in repeat for repeat in repeats)
    return summary
