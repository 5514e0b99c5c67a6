"""Seeded MEArec recordings: :func:`simulate_recording`, from NEURON templates or the labelled fallback."""

from __future__ import annotations

import contextlib
import io
import json
import logging
import os
import shutil
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np

from spikeinterface_vqcompress.groundtruth.cache import CACHE_KEY_ATTRIBUTE, _read_attribute
from spikeinterface_vqcompress.groundtruth.errors import GroundTruthFallbackWarning, TemplateGenerationError
from spikeinterface_vqcompress.groundtruth.fallback import _fallback_template_generator
from spikeinterface_vqcompress.groundtruth.parameters import (
    DEFAULT_TEMPLATES_PER_CELL,
    DRIFT_RECORDING_PARAMETERS,
    DRIFT_TEMPLATE_PARAMETERS,
    INHIBITORY_FRACTION,
    METADATA_ATTRIBUTE,
    RECORDING_DTYPE,
    RECORDING_GAIN_UV,
    TEMPLATES_SOURCE_FALLBACK,
    TEMPLATES_SOURCE_NEURON,
    _FALLBACK_CHOICES,
    _check_cell_models,
    _check_probe,
    _load_mearec_default_parameters,
    _package_version,
)
from spikeinterface_vqcompress.groundtruth.templates import generate_templates

logger = logging.getLogger(__name__)


def _derived_seeds(seed):
    values = np.random.SeedSequence(int(seed)).generate_state(4)
    names = ("spiketrains", "templates", "convolution", "noise")
    return {name: int(value % (2**31 - 1)) + 1 for name, value in zip(names, values)}


def _unit_counts(template_generator, num_units, recording_parameters, drift):
    """Split ``num_units`` into excitatory and inhibitory units that the library can provide."""
    from MEArec.tools import get_binary_cat

    cell_types = recording_parameters["cell_types"]
    binary = get_binary_cat(
        np.asarray(template_generator.celltypes), cell_types["excitatory"], cell_types["inhibitory"]
    )
    templates = np.asarray(template_generator.templates)
    if drift:
        peak_uV = np.abs(templates.min(axis=(1, 2, 3)))
    else:
        peak_uV = np.abs(templates.reshape(len(templates), -1).min(axis=1))
    limits = recording_parameters["templates"]
    usable = (peak_uV > limits["min_amp"]) & (peak_uV < limits["max_amp"])
    available_excitatory = int(np.sum(usable & (binary == "E")))
    available_inhibitory = int(np.sum(usable & (binary == "I")))
    if available_excitatory + available_inhibitory < num_units:
        raise ValueError(
            f"the template library has only {available_excitatory + available_inhibitory} templates with a "
            f"peak between {limits['min_amp']} and {limits['max_amp']} uV, fewer than num_units={num_units}: "
            "use more templates per cell or more cell models"
        )
    num_inhibitory = int(round(INHIBITORY_FRACTION * num_units))
    num_inhibitory = min(max(num_inhibitory, num_units - available_excitatory), available_inhibitory)
    return num_units - num_inhibitory, num_inhibitory


def recording_parameters(template_generator, num_units, duration_s, noise_level_uV, drift, seed):
    parameters = _load_mearec_default_parameters("recordings")
    parameters["seeds"] = _derived_seeds(seed)
    parameters["spiketrains"]["duration"] = float(duration_s)
    parameters["spiketrains"]["t_start"] = 0
    number_excitatory, number_inhibitory = _unit_counts(template_generator, num_units, parameters, drift)
    parameters["spiketrains"]["n_exc"] = number_excitatory
    parameters["spiketrains"]["n_inh"] = number_inhibitory
    recordings = parameters["recordings"]
    recordings.update(
        dtype=RECORDING_DTYPE,
        gain=RECORDING_GAIN_UV,
        noise_level=float(noise_level_uV),
        filter=True,
        drifting=bool(drift),
    )
    if drift:
        recordings.update(DRIFT_RECORDING_PARAMETERS)
    return parameters


def _ensure_parent_folder(file_path):
    folder = Path(file_path).parent
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def simulate_recording(
    file_path,
    probe="Neuronexus-32",
    num_units=10,
    duration_s=30.0,
    noise_level_uV=10.0,
    drift=False,
    seed=0,
    num_templates_per_cell=None,
    cell_models=None,
    cache_folder=None,
    fallback="auto",
    verbose=False,
    n_jobs=1,
    templates_seed=None,
) -> Path:
    """Simulate a MEArec ground-truth recording and save it as a MEArec ``.h5`` file.

    Templates come from :func:`generate_templates` (NEURON, cached). The recording is int16 with a
    gain of 0.195 uV, band-passed 300-6000 Hz (MEArec's default filter), 32 kHz, with MEArec's
    default firing rates (7:3 excitatory:inhibitory). Every random step is seeded from ``seed``:
    the same arguments give the same traces and spike trains. The file is written under a temporary
    name and renamed. Its root attribute ``"vqcompress_groundtruth"`` holds, as JSON, the parameters
    and ``"templates_source"``: ``"neuron"`` or ``"spikeinterface-fallback"``.

    Parameters
    ----------
    file_path : str | Path
        Output file; must end in ``.h5`` or ``.hdf5``. Overwritten if it exists.
    probe : str, default: "Neuronexus-32"
        A probe name from :func:`available_probes`.
    num_units : int, default: 10
        Number of ground-truth units.
    duration_s : float, default: 30.0
        Duration in seconds.
    noise_level_uV : float, default: 10.0
        Standard deviation of the added (uncorrelated, then filtered) noise in uV.
    drift : bool, default: False
        Slow rigid drift (``DRIFT_RECORDING_PARAMETERS``) from drifting templates.
    seed : int, default: 0
        Seed of the templates (positions, NEURON input) and of the recording.
    num_templates_per_cell : int | None, default: None
        Templates per cell model in the library units are drawn from; None for 20.
    cell_models : list of str | None, default: None
        Subset of the 13 BBP cell models; None for all.
    cache_folder : str | Path | None, default: None
        Template cache folder; None for :func:`default_cache_folder`.
    fallback : "auto" | "never" | "always", default: "auto"
        "auto": use templates from SpikeInterface's generator when NEURON templates cannot be
        generated, with a :class:`GroundTruthFallbackWarning` and an error logged. "never": raise
        :class:`TemplateGenerationError` instead. "always": use the fallback templates (warns too).
    verbose : bool, default: False
        Show MEArec's output.
    n_jobs : int, default: 1
        Cells simulated in parallel when NEURON templates have to be generated.
    templates_seed : int | None, default: None
        Seed of the template library when it differs from ``seed`` (a new recording drawn from an
        existing library, e.g. the one shipped for the demo: ``templates_seed=0`` on Neuronexus-32
        with 10 templates per cell); None uses ``seed``.

    Returns
    -------
    file_path : Path
        The written MEArec file, readable with :func:`load_ground_truth` or ``read_mearec``.
    """
    import h5py
    import MEArec as mr

    file_path = Path(file_path)
    if file_path.suffix not in (".h5", ".hdf5"):
        raise ValueError(f"file_path must end in .h5 or .hdf5, got {file_path.name!r}")
    if fallback not in _FALLBACK_CHOICES:
        raise ValueError(f"fallback must be one of {_FALLBACK_CHOICES}, got {fallback!r}")
    probe = _check_probe(probe)
    cell_models = _check_cell_models(cell_models)
    num_units = int(num_units)
    if num_units < 1:
        raise ValueError("num_units must be at least 1")
    if not duration_s > 0:
        raise ValueError("duration_s must be positive")
    num_templates_per_cell = int(num_templates_per_cell or DEFAULT_TEMPLATES_PER_CELL)
    seed = int(seed)
    templates_seed = seed if templates_seed is None else int(templates_seed)
    drift = bool(drift)
    start_time = time.perf_counter()

    templates_file = None
    templates_cache_key = None
    fallback_reason = None
    if fallback == "always":
        fallback_reason = "fallback='always' was requested"
    else:
        try:
            templates_file = generate_templates(
                probe=probe,
                num_templates_per_cell=num_templates_per_cell,
                cell_models=cell_models,
                seed=templates_seed,
                cache_folder=cache_folder,
                n_jobs=n_jobs,
                verbose=verbose,
                drift=drift,
            )
        except TemplateGenerationError as error:
            if fallback == "never":
                raise TemplateGenerationError(
                    f"{error}\nNEURON templates are required (fallback='never'); install "
                    "'mearec[templates]==1.11.0' (NEURON 8.2) and a C compiler, or pass fallback='auto'."
                ) from error
            fallback_reason = str(error)

    if fallback_reason is None:
        template_generator = mr.load_templates(templates_file, return_h5_objects=False)
        templates_cache_key = _read_attribute(templates_file, CACHE_KEY_ATTRIBUTE)
        templates_source = TEMPLATES_SOURCE_NEURON
    else:
        message = (
            "GROUND-TRUTH FALLBACK: MEArec NEURON templates are NOT used for "
            f"{file_path.name}; its units are synthetic templates from "
            "spikeinterface.core.generate_templates fed into MEArec's recording generator. "
            f"Reason: {fallback_reason}. This is recorded in the file's '{METADATA_ATTRIBUTE}' "
            f"metadata as templates_source='{TEMPLATES_SOURCE_FALLBACK}'."
        )
        warnings.warn(message, GroundTruthFallbackWarning, stacklevel=2)
        logger.error(message)
        template_generator = _fallback_template_generator(probe, num_templates_per_cell, cell_models, templates_seed, drift)
        templates_source = TEMPLATES_SOURCE_FALLBACK

    parameters = recording_parameters(template_generator, num_units, duration_s, noise_level_uV, drift, seed)
    output_folder = _ensure_parent_folder(file_path)
    temporary_folder = Path(tempfile.mkdtemp(prefix=f".{file_path.stem}-mearec-", dir=output_folder))
    temporary_file = temporary_folder / "recording.h5"
    try:
        output = io.StringIO()
        redirect = contextlib.nullcontext() if verbose else contextlib.redirect_stdout(output)
        with redirect:
            try:
                recording_generator = mr.gen_recordings(
                    params=parameters,
                    tempgen=template_generator,
                    verbose=verbose,
                    tmp_mode="memmap",
                    tmp_folder=temporary_folder / "buffers",
                    n_jobs=0,
                )
            except RuntimeError as error:
                if "could not be selected" in str(error):
                    raise ValueError(
                        f"MEArec could not place {num_units} units at least "
                        f"{parameters['templates']['min_dist']} um apart with a peak within "
                        f"[{parameters['templates']['min_amp']}, {parameters['templates']['max_amp']}] uV "
                        "from this template library: use more templates per cell or fewer units"
                    ) from error
                raise
            mr.save_recording_generator(recording_generator, temporary_file, verbose=False, include_spike_traces=False)
        gain_to_uV = float(recording_generator.gain_to_uV)
        num_channels = int(np.asarray(recording_generator.recordings).shape[1])
        del recording_generator  # releases the memmap buffers
        metadata = {
            "templates_source": templates_source,
            "fallback_reason": fallback_reason,
            "parameters": {
                "probe": probe,
                "num_units": num_units,
                "duration_s": float(duration_s),
                "noise_level_uV": float(noise_level_uV),
                "drift": drift,
                "seed": seed,
                "templates_seed": templates_seed,
                "num_templates_per_cell": num_templates_per_cell,
                "cell_models": cell_models,
                "fallback": fallback,
            },
            "num_channels": num_channels,
            "num_excitatory_units": parameters["spiketrains"]["n_exc"],
            "num_inhibitory_units": parameters["spiketrains"]["n_inh"],
            "mearec_seeds": parameters["seeds"],
            "dtype": RECORDING_DTYPE,
            "gain_to_uV": gain_to_uV,
            "drift_recording_parameters": DRIFT_RECORDING_PARAMETERS if drift else None,
            "drift_template_parameters": DRIFT_TEMPLATE_PARAMETERS if drift else None,
            "templates_file": str(templates_file) if templates_file is not None else None,
            "templates_cache_key": templates_cache_key,
            "versions": {
                "spikeinterface_vqcompress": _own_version(),
                "mearec": mr.__version__,
                "meautility": _package_version("MEAutility"),
                "neuron": _package_version("NEURON"),
                "spikeinterface": _package_version("spikeinterface"),
            },
            "generation_time_s": time.perf_counter() - start_time,
        }
        with h5py.File(temporary_file, "a") as file:
            file.attrs[METADATA_ATTRIBUTE] = json.dumps(metadata, default=str)
            file.attrs["vqcompress_templates_source"] = templates_source
        os.replace(temporary_file, file_path)
    finally:
        shutil.rmtree(temporary_folder, ignore_errors=True)
    logger.info(
        "MEArec recording (%s templates) written in %.1f s: %s",
        templates_source,
        metadata["generation_time_s"],
        file_path,
    )
    return file_path


def _own_version():
    from spikeinterface_vqcompress._version import __version__

    return __version__
