"""NEURON template libraries: :func:`generate_templates`, cached, simulated in a subprocess when missing."""

from __future__ import annotations

import json
import logging
import os
import shutil
import tempfile
import time
from pathlib import Path

from spikeinterface_vqcompress.groundtruth.cache import (
    SHIPPED_TEMPLATES_FOLDER,
    CACHE_KEY_ATTRIBUTE,
    _intracellular_cache_folder,
    _is_cached,
    _seed_intracellular_folder,
    _store_intracellular_results,
    _templates_cache_key,
    _templates_file,
    default_cache_folder,
)
from spikeinterface_vqcompress.groundtruth.errors import TemplateGenerationError
from spikeinterface_vqcompress.groundtruth.neuron import _cell_set_folder, _neuron_problem
from spikeinterface_vqcompress.groundtruth.parameters import (
    DEFAULT_TEMPLATES_PER_CELL,
    DRIFT_TEMPLATE_PARAMETERS,
    TEMPLATES_SOURCE_NEURON,
    _check_cell_models,
    _check_probe,
    _load_mearec_default_parameters,
)
from spikeinterface_vqcompress.groundtruth.worker import _run_template_worker

logger = logging.getLogger(__name__)


def _template_parameters(probe, num_templates_per_cell, seed, drift):
    parameters = _load_mearec_default_parameters("templates")
    parameters.update(probe=probe, n=int(num_templates_per_cell), seed=int(seed), drifting=bool(drift))
    if drift:
        parameters.update(DRIFT_TEMPLATE_PARAMETERS)
    # MEArec's limits on the search, not part of the physics
    parameters.pop("timeout", None)
    parameters.pop("max_iterations", None)
    return parameters


def generate_templates(
    probe="Neuronexus-32",
    num_templates_per_cell=DEFAULT_TEMPLATES_PER_CELL,
    cell_models=None,
    seed=0,
    cache_folder=None,
    n_jobs=1,
    verbose=False,
    drift=False,
) -> Path:
    """Simulate MEArec templates with NEURON, or return them from the cache.

    The result is cached under a sha256 of every parameter that affects it (probe and its
    definition, cells, templates per cell, seed, drift, MEArec's template parameters, MEArec /
    NEURON / LFPy versions). A second call with the same parameters returns the cached file without
    running NEURON. The file is written under a temporary name and renamed, so a cached file is
    always complete. NEURON soma simulations are cached too and reused across probes.

    Parameters
    ----------
    probe : str, default: "Neuronexus-32"
        A probe name from :func:`available_probes`.
    num_templates_per_cell : int, default: 20
        Templates (cell positions and rotations) per cell model.
    cell_models : list of str | None, default: None
        Subset of the 13 BBP cell models shipped with MEArec (see ``BBP_CELL_MODELS``); None for all.
        Fewer cells are faster (the NEURON soma simulation of one cell takes 5-30 s).
    seed : int, default: 0
        Seed of the NEURON input noise and of the cell positions and rotations.
    cache_folder : str | Path | None, default: None
        Cache folder; None for :func:`default_cache_folder`.
    n_jobs : int, default: 1
        Cells simulated in parallel (one process each); 1 runs them one after the other.
    verbose : bool, default: False
        Show MEArec's and NEURON's output.
    drift : bool, default: False
        Simulate drifting templates (each cell at ``DRIFT_TEMPLATE_PARAMETERS["drift_steps"]``
        positions along the probe), needed for drifting recordings.

    Returns
    -------
    templates_file : Path
        The MEArec templates ``.h5`` file (``MEArec.load_templates`` reads it).

    Raises
    ------
    TemplateGenerationError
        When NEURON is missing, the mechanisms do not compile or the simulation fails.
    """
    probe = _check_probe(probe)
    cell_models = _check_cell_models(cell_models)
    num_templates_per_cell = int(num_templates_per_cell)
    if num_templates_per_cell < 1:
        raise ValueError("num_templates_per_cell must be at least 1")
    cache_folder = Path(cache_folder) if cache_folder is not None else default_cache_folder()
    template_parameters = _template_parameters(probe, num_templates_per_cell, seed, drift)
    key = _templates_cache_key(probe, cell_models, template_parameters)
    templates_file = _templates_file(cache_folder, probe, cell_models, num_templates_per_cell, seed, drift, key)
    if _is_cached(templates_file, key):
        logger.debug("templates cache hit: %s", templates_file)
        return templates_file
    shipped = SHIPPED_TEMPLATES_FOLDER / templates_file.name
    if _is_cached(shipped, key):  # the library the demo uses ships with the package (templates are data)
        logger.debug("templates shipped with the package: %s", shipped)
        return shipped

    problem = _neuron_problem()
    if problem is not None:
        raise TemplateGenerationError(f"NEURON templates cannot be generated: {problem}")

    start_time = time.perf_counter()
    cell_set_folder = _cell_set_folder(cache_folder, cell_models, verbose=verbose)
    work_root = cache_folder / "work"
    work_root.mkdir(parents=True, exist_ok=True)
    work_folder = Path(tempfile.mkdtemp(prefix=f"templates-{key[:12]}-", dir=work_root))
    try:
        templates_work_folder = work_folder / "templates"
        intracellular_cache = _intracellular_cache_folder(cache_folder, template_parameters)
        reused = _seed_intracellular_folder(
            templates_work_folder / "intracellular",
            intracellular_cache,
            cell_set_folder,
            cell_models,
            template_parameters,
        )
        logger.info(
            "simulating %d x %d MEArec templates on %s with NEURON (soma simulations reused for %d cells)",
            len(cell_models),
            num_templates_per_cell,
            probe,
            len(reused),
        )
        output_file = work_folder / "templates.h5"
        job = {
            "cell_set_folder": str(cell_set_folder),
            "cell_models": cell_models,
            "parameters": template_parameters,
            "templates_work_folder": str(templates_work_folder),
            "output_file": str(output_file),
            "n_jobs": int(n_jobs),
            "verbose": bool(verbose),
        }
        _run_template_worker(job, work_folder, cache_folder, verbose)
        _store_intracellular_results(templates_work_folder / "intracellular", intracellular_cache, cell_models)

        import h5py

        elapsed_s = time.perf_counter() - start_time
        with h5py.File(output_file, "a") as file:
            file.attrs[CACHE_KEY_ATTRIBUTE] = key
            file.attrs["vqcompress_parameters"] = json.dumps(
                {
                    "probe": probe,
                    "num_templates_per_cell": num_templates_per_cell,
                    "cell_models": cell_models,
                    "seed": int(seed),
                    "drift": bool(drift),
                    "template_parameters": template_parameters,
                    "generation_time_s": elapsed_s,
                    "soma_simulations_reused": reused,
                },
                default=str,
            )
            file.attrs["templates_source"] = TEMPLATES_SOURCE_NEURON
        templates_file.parent.mkdir(parents=True, exist_ok=True)
        os.replace(output_file, templates_file)
        logger.info("templates generated in %.1f s: %s", elapsed_s, templates_file)
    finally:
        shutil.rmtree(work_folder, ignore_errors=True)
    return templates_file
