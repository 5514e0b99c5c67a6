"""MEArec ground truth: cached NEURON templates and seeded recordings, with a labelled fallback.

Templates are simulated locally with NEURON from the 13 Blue Brain Project cell models that ship
inside MEArec, and cached in a per-user folder (see :func:`default_cache_folder`) under a key that
is a sha256 of every parameter that affects them, so the same request never runs NEURON twice.
Recordings are made from them by MEArec's recording generator and saved as MEArec ``.h5`` files,
read back with ``spikeinterface.extractors.read_mearec`` (:func:`load_ground_truth`).

When NEURON cannot run, :func:`simulate_recording` can feed templates from SpikeInterface's
generator into MEArec's recording generator instead. That fallback is never silent: it raises a
:class:`GroundTruthFallbackWarning`, logs an error and is recorded in the file's metadata
(``"templates_source": "spikeinterface-fallback"``).

MEArec keeps its configuration in ``~/.config/mearec`` when its ``get_default_*`` helpers are used.
This module never calls them: every MEArec folder (cell models, compiled mechanisms, temporary
template folders, the folder its simulation writes ``tmp_params_path.yaml`` into) lives in the
cache folder, and the NEURON subprocess runs with ``HOME`` pointed inside the cache folder.

Cache layout, under ``cache_folder``::

    mearec-<version>_neuron-<version>/bbp/       copied cell models + compiled ``mods``
    mearec-<version>_neuron-<version>/cell_sets/ one folder of links per subset of cells
    intracellular/<key>/                         NEURON soma simulations, shared across probes
    templates/templates_<probe>_..._<key>.h5     finished template libraries
    work/                                        temporary folders (removed after each run)
    home/                                        HOME of the NEURON subprocess
"""

from __future__ import annotations

import contextlib
import hashlib
import importlib.metadata
import importlib.util
import io
import json
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
import warnings
from pathlib import Path

import numpy as np

logger = logging.getLogger(__name__)

#: Bump when the way templates are generated changes, so that old cache entries are not reused.
CACHE_FORMAT_VERSION = 1

#: Name of the h5 attribute (on the file root) holding this module's metadata as JSON.
METADATA_ATTRIBUTE = "vqcompress_groundtruth"

#: Recording annotation set by :func:`load_ground_truth`.
ANNOTATION_KEY = "vqcompress_groundtruth"

TEMPLATES_SOURCE_NEURON = "neuron"
TEMPLATES_SOURCE_FALLBACK = "spikeinterface-fallback"

#: The 13 Blue Brain Project layer-5 cell models shipped inside MEArec.
BBP_CELL_MODELS = (
    "L5_BP_bAC217_1",
    "L5_BTC_bAC217_1",
    "L5_ChC_cACint209_1",
    "L5_DBC_bAC217_1",
    "L5_LBC_bAC217_1",
    "L5_MC_bAC217_1",
    "L5_NBC_bAC217_1",
    "L5_NGC_bNAC219_1",
    "L5_SBC_bNAC219_1",
    "L5_STPC_cADpyr232_1",
    "L5_TTPC1_cADpyr232_1",
    "L5_TTPC2_cADpyr232_1",
    "L5_UTPC_cADpyr232_1",
)

#: Probes every installation accepts (all are defined by MEAutility itself).
REQUIRED_PROBES = ("Neuronexus-32", "Neuropixels-64", "Neuropixels-128", "tetrode")

DEFAULT_TEMPLATES_PER_CELL = 20

#: Recordings are stored as int16 with this gain (an Intan-like 0.195 uV per bit).
RECORDING_GAIN_UV = 0.195
RECORDING_DTYPE = "int16"

#: Drifting templates: each cell moves 20-40 um along the probe's z axis, nearly straight
#: (within ~8 degrees, so MEArec's 15 degree direction check keeps all of them), in 10 steps.
DRIFT_TEMPLATE_PARAMETERS = {
    "drift_steps": 10,
    "min_drift": 20,
    "max_drift": 45,
    "drift_xlim": [-2, 2],
    "drift_ylim": [-2, 2],
    "drift_zlim": [20, 40],
}

#: Drifting recordings: slow, rigid, triangular drift at 30 um/min over the templates' range.
DRIFT_RECORDING_PARAMETERS = {
    "drift_mode_speed": "slow",
    "drift_mode_probe": "rigid",
    "slow_drift_velocity": 30,
    "slow_drift_amplitude": None,
    "slow_drift_waveform": "triangluar",  # sic: MEArec's spelling
    "t_start_drift": 0,
    "t_end_drift": None,
    "preferred_dir": [0, 0, 1],
    "angle_tol": 15,
}

#: Share of inhibitory units in a recording (MEArec's default 7 excitatory / 3 inhibitory).
INHIBITORY_FRACTION = 0.3

_FALLBACK_CHOICES = ("auto", "never", "always")


class TemplateGenerationError(RuntimeError):
    """NEURON templates could not be generated (NEURON missing, mechanisms not compiling, crash)."""


class GroundTruthFallbackWarning(UserWarning):
    """Templates from SpikeInterface's generator were used instead of NEURON templates."""


# ----------------------------------------------------------------------------------------------
# folders, probes, versions
# ----------------------------------------------------------------------------------------------


def default_cache_folder() -> Path:
    """Return the per-user cache folder of this package.

    Returns
    -------
    cache_folder : Path
        ``$VQCOMPRESS_CACHE`` if set, else ``$XDG_CACHE_HOME/spikeinterface_vqcompress``, else
        ``~/.cache/spikeinterface_vqcompress``. It is not created here.
    """
    environment_folder = os.environ.get("VQCOMPRESS_CACHE")
    if environment_folder:
        return Path(environment_folder).expanduser()
    xdg_cache_home = os.environ.get("XDG_CACHE_HOME")
    if xdg_cache_home:
        return Path(xdg_cache_home).expanduser() / "spikeinterface_vqcompress"
    return Path.home() / ".cache" / "spikeinterface_vqcompress"


def available_probes() -> list[str]:
    """Return the probe names accepted by :func:`generate_templates` and :func:`simulate_recording`.

    Returns
    -------
    probe_names : list of str
        "Neuronexus-32", "Neuropixels-64", "Neuropixels-128" and "tetrode" first, then every other
        probe MEAutility defines (Neuropixels-384, Neuroseeker-128, square MEAs, ...).
    """
    import MEAutility as mu

    defined = set(mu.return_mea_list())
    missing = [name for name in REQUIRED_PROBES if name not in defined]
    if missing:  # every MEAutility release since 1.4 ships them; fail clearly if one disappears
        raise RuntimeError(f"MEAutility {_package_version('MEAutility')} does not define the probes {missing}")
    others = sorted(defined - set(REQUIRED_PROBES))
    return list(REQUIRED_PROBES) + others


def _check_probe(probe):
    probes = available_probes()
    if probe not in probes:
        raise ValueError(f"Unknown probe {probe!r}: choose one of {probes}")
    return probe


def _check_cell_models(cell_models):
    if cell_models is None:
        return sorted(BBP_CELL_MODELS)
    if isinstance(cell_models, str):
        cell_models = [cell_models]
    cell_models = sorted(set(str(name) for name in cell_models))
    unknown = [name for name in cell_models if name not in BBP_CELL_MODELS]
    if unknown or not cell_models:
        raise ValueError(f"Unknown cell models {unknown}: choose among {list(BBP_CELL_MODELS)}")
    return cell_models


def _package_version(distribution):
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return None


def _mearec_package_folder():
    specification = importlib.util.find_spec("MEArec")
    if specification is None or specification.origin is None:
        raise ImportError("MEArec is not installed: pip install 'mearec[templates]==1.11.0'")
    return Path(specification.origin).parent


def _load_mearec_default_parameters(kind):
    """Read MEArec's shipped default parameters without touching ``~/.config/mearec``."""
    from MEArec.tools import safe_yaml_load

    return safe_yaml_load(_mearec_package_folder() / "default_params" / f"{kind}_params.yaml")


def _hash_parameters(parameters):
    text = json.dumps(parameters, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _subprocess_environment(cache_folder):
    """Environment of MEArec/NEURON subprocesses: HOME inside the cache, nrnivmodl on the PATH."""
    environment = dict(os.environ)
    home = Path(cache_folder) / "home"
    home.mkdir(parents=True, exist_ok=True)
    environment["HOME"] = str(home)
    environment["XDG_CONFIG_HOME"] = str(home / ".config")
    scripts_folder = str(Path(sys.executable).parent)
    environment["PATH"] = scripts_folder + os.pathsep + environment.get("PATH", "")
    package_parent = str(Path(__file__).resolve().parents[1])
    environment["PYTHONPATH"] = package_parent + os.pathsep + environment.get("PYTHONPATH", "")
    environment.setdefault("MPLBACKEND", "Agg")
    return environment


def _find_nrnivmodl():
    """Path of NEURON's ``nrnivmodl``, looking next to the running interpreter first."""
    candidate = Path(sys.executable).parent / "nrnivmodl"
    if candidate.is_file():
        return str(candidate)
    return shutil.which("nrnivmodl")


def _neuron_problem():
    """Return why NEURON templates cannot be generated here, or None when they can."""
    for module_name, distribution in (("neuron", "NEURON"), ("LFPy", "LFPy")):
        if importlib.util.find_spec(module_name) is None:
            return f"the Python package {distribution!r} is not installed (pip install 'mearec[templates]')"
    if _find_nrnivmodl() is None:
        return "NEURON's 'nrnivmodl' compiler wrapper was not found next to Python nor on the PATH"
    return None


def _tail(text, number_of_characters=3000):
    return text if len(text) <= number_of_characters else "..." + text[-number_of_characters:]


# ----------------------------------------------------------------------------------------------
# NEURON templates
# ----------------------------------------------------------------------------------------------


def _template_parameters(probe, num_templates_per_cell, seed, drift):
    parameters = _load_mearec_default_parameters("templates")
    parameters.update(probe=probe, n=int(num_templates_per_cell), seed=int(seed), drifting=bool(drift))
    if drift:
        parameters.update(DRIFT_TEMPLATE_PARAMETERS)
    # MEArec's limits on the search, not part of the physics
    parameters.pop("timeout", None)
    parameters.pop("max_iterations", None)
    return parameters


_INTRACELLULAR_KEYS = ("sim_time", "target_spikes", "cut_out", "dt", "delay", "weights", "seed")


def _version_folder(cache_folder):
    import MEArec

    neuron_version = _package_version("NEURON") or "none"
    return Path(cache_folder) / f"mearec-{MEArec.__version__}_neuron-{neuron_version}"


def _compiled_library_exists(mods_folder):
    patterns = ("*/.libs/libnrnmech.*", "*/libnrnmech.*", "nrnmech.dll")
    return any(any(Path(mods_folder).glob(pattern)) for pattern in patterns)


def _prepare_cell_models(cache_folder, verbose=False):
    """Copy MEArec's cell models into the cache and compile their mechanisms once."""
    final_folder = _version_folder(cache_folder) / "bbp"
    if (final_folder / ".ready").is_file():
        return final_folder
    nrnivmodl = _find_nrnivmodl()
    if nrnivmodl is None:
        raise TemplateGenerationError(_neuron_problem())
    final_folder.parent.mkdir(parents=True, exist_ok=True)
    building_folder = final_folder.parent / f".bbp-building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    try:
        shutil.copytree(_mearec_package_folder() / "cell_models" / "bbp", building_folder)
        mods_folder = building_folder / "mods"
        mods_folder.mkdir()
        for cell_name in sorted(BBP_CELL_MODELS):
            for mod_file in sorted((building_folder / cell_name / "mechanisms").glob("*.mod")):
                if not (mods_folder / mod_file.name).is_file():
                    shutil.copy2(mod_file, mods_folder / mod_file.name)
        if verbose:
            print(f"Compiling NEURON mechanisms in {mods_folder}")
        completed = subprocess.run(
            [nrnivmodl],
            cwd=mods_folder,
            env=_subprocess_environment(cache_folder),
            capture_output=True,
            text=True,
        )
        if completed.returncode != 0 or not _compiled_library_exists(mods_folder):
            raise TemplateGenerationError(
                f"nrnivmodl failed to compile the BBP mechanisms (exit code {completed.returncode}):\n"
                + _tail(completed.stdout + completed.stderr)
            )
        (building_folder / ".ready").write_text("compiled\n")
        try:
            os.rename(building_folder, final_folder)
        except OSError:
            if not (final_folder / ".ready").is_file():  # a broken leftover: replace it
                shutil.rmtree(final_folder, ignore_errors=True)
                os.rename(building_folder, final_folder)
    finally:
        shutil.rmtree(building_folder, ignore_errors=True)
    return final_folder


def _cell_set_folder(cache_folder, cell_models, verbose=False):
    """A folder holding only the chosen cells (links into the compiled copy) and their ``mods``."""
    all_cells_folder = _prepare_cell_models(cache_folder, verbose=verbose)
    if list(cell_models) == sorted(BBP_CELL_MODELS):
        return all_cells_folder
    set_name = "cells-" + hashlib.sha256(",".join(cell_models).encode()).hexdigest()[:16]
    set_folder = _version_folder(cache_folder) / "cell_sets" / set_name
    if (set_folder / ".ready").is_file():
        return set_folder
    set_folder.parent.mkdir(parents=True, exist_ok=True)
    building_folder = set_folder.parent / f".{set_name}-building-{os.getpid()}-{uuid.uuid4().hex[:8]}"
    building_folder.mkdir()
    try:
        for name in [*cell_models, "mods"]:  # relative links: the cache folder can be moved
            target = os.path.relpath(all_cells_folder / name, building_folder)
            os.symlink(target, building_folder / name, target_is_directory=True)
        (building_folder / ".ready").write_text("\n".join(cell_models) + "\n")
        try:
            os.rename(building_folder, set_folder)
        except OSError:
            if not (set_folder / ".ready").is_file():
                shutil.rmtree(set_folder, ignore_errors=True)
                os.rename(building_folder, set_folder)
    finally:
        shutil.rmtree(building_folder, ignore_errors=True)
    return set_folder


def _intracellular_cache_folder(cache_folder, template_parameters):
    import MEArec

    key = _hash_parameters(
        {
            "format": CACHE_FORMAT_VERSION,
            "mearec": MEArec.__version__,
            "neuron": _package_version("NEURON"),
            "lfpy": _package_version("LFPy"),
            **{name: template_parameters[name] for name in _INTRACELLULAR_KEYS},
        }
    )
    return Path(cache_folder) / "intracellular" / key[:24]


def _intracellular_files(folder, cell_name):
    """The (imem, vmem) files MEArec saved for one cell, or None."""
    if not folder.is_dir():
        return None
    found = {}
    for kind in ("imem", "vmem"):
        matches = sorted(path for path in folder.glob(f"{kind}_*_{cell_name}.npy"))
        if len(matches) != 1:
            return None
        found[kind] = matches[0]
    return found["imem"], found["vmem"]


def _seed_intracellular_folder(work_intracellular_folder, cached_folder, cell_set_folder, cell_models, parameters):
    """Copy cached NEURON soma simulations where MEArec looks for them, so it skips them."""
    import yaml

    work_intracellular_folder.mkdir(parents=True, exist_ok=True)
    reused = []
    for cell_name in cell_models:
        files = _intracellular_files(cached_folder, cell_name)
        if files is None:
            continue
        for source in files:
            shutil.copy2(source, work_intracellular_folder / source.name)
        reused.append(cell_name)
    # MEArec discards the folder unless its intra_params.yaml matches what it is about to run
    intra_parameters = {name: parameters[name] for name in _INTRACELLULAR_KEYS}
    intra_parameters["cell_models_folder"] = str(Path(cell_set_folder).resolve())
    with open(work_intracellular_folder / "intra_params.yaml", "w") as file:
        yaml.dump(intra_parameters, file)
    return reused


def _store_intracellular_results(work_intracellular_folder, cached_folder, cell_models):
    cached_folder.mkdir(parents=True, exist_ok=True)
    for cell_name in cell_models:
        if _intracellular_files(cached_folder, cell_name) is not None:
            continue
        files = _intracellular_files(work_intracellular_folder, cell_name)
        if files is None:
            continue
        for source in files:
            temporary = cached_folder / f".{source.name}.{uuid.uuid4().hex[:8]}"
            shutil.copy2(source, temporary)
            os.replace(temporary, cached_folder / source.name)


def _template_worker_main(job_file):
    """Run MEArec's template generation for one job (called in a subprocess, cwd = work folder)."""
    import MEArec as mr

    with open(job_file) as file:
        job = json.load(file)
    n_jobs = int(job["n_jobs"])
    template_generator = mr.gen_templates(
        job["cell_set_folder"],
        params=job["parameters"],
        templates_tmp_folder=job["templates_work_folder"],
        parallel=n_jobs > 1,
        n_jobs=n_jobs,
        recompile=False,
        delete_tmp=True,
        verbose=bool(job["verbose"]),
    )
    celltypes = [str(name) for name in template_generator.celltypes]
    missing = sorted(set(job["cell_models"]) - set(celltypes))
    expected = int(job["parameters"]["n"]) * len(job["cell_models"])
    if missing or len(celltypes) != expected:
        counts = {name: celltypes.count(name) for name in job["cell_models"]}
        sys.stderr.write(f"MEArec produced {len(celltypes)} templates instead of {expected}: {counts}\n")
        sys.exit(3)
    mr.save_template_generator(template_generator, job["output_file"], verbose=False)


def _run_template_worker(job, work_folder, cache_folder, verbose):
    """Run :func:`_template_worker_main` in a fresh interpreter (NEURON state, chdir and
    ``sys.exit`` inside MEArec stay out of the caller's process)."""
    job_file = Path(work_folder) / "job.json"
    job_file.write_text(json.dumps(job, indent=1))
    command = [
        sys.executable,
        "-c",
        "import sys; from spikeinterface_vqcompress.groundtruth import _template_worker_main; "
        "_template_worker_main(sys.argv[1])",
        str(job_file),
    ]
    log_file = Path(work_folder) / "mearec_templates.log"
    with open(log_file, "w") as log:
        completed = subprocess.run(
            command,
            cwd=work_folder,
            env=_subprocess_environment(cache_folder),
            stdout=None if verbose else log,
            stderr=subprocess.STDOUT if not verbose else None,
        )
    if completed.returncode != 0 or not Path(job["output_file"]).is_file():
        log_text = log_file.read_text(errors="replace") if not verbose else "(output shown above)"
        raise TemplateGenerationError(
            f"MEArec/NEURON template generation failed (exit code {completed.returncode}):\n" + _tail(log_text)
        )


def _templates_cache_key(probe, cell_models, template_parameters):
    import MEArec
    import MEAutility as mu

    return _hash_parameters(
        {
            "format": CACHE_FORMAT_VERSION,
            "mearec": MEArec.__version__,
            "meautility": _package_version("MEAutility"),
            "neuron": _package_version("NEURON"),
            "lfpy": _package_version("LFPy"),
            "probe": probe,
            "probe_definition": mu.return_mea_info(probe),
            "cell_models": list(cell_models),
            "template_parameters": template_parameters,
        }
    )


def _read_attribute(file_path, name):
    import h5py

    try:
        with h5py.File(file_path, "r") as file:
            value = file.attrs.get(name)
    except OSError:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return value


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
    drift_label = "_drift" if drift else ""
    templates_file = (
        cache_folder
        / "templates"
        / f"templates_{probe}_{len(cell_models)}cells_{num_templates_per_cell}per_cell{drift_label}_seed{seed}_{key[:16]}.h5"
    )
    if templates_file.is_file() and _read_attribute(templates_file, "vqcompress_cache_key") == key:
        logger.debug("templates cache hit: %s", templates_file)
        return templates_file

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
            file.attrs["vqcompress_cache_key"] = key
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


# ----------------------------------------------------------------------------------------------
# fallback templates from SpikeInterface's generator
# ----------------------------------------------------------------------------------------------


def _binary_cell_types(cell_names):
    from MEArec.tools import get_binary_cat

    cell_types = _load_mearec_default_parameters("recordings")["cell_types"]
    return get_binary_cat(np.asarray(cell_names), cell_types["excitatory"], cell_types["inhibitory"])


def _fallback_template_generator(probe, num_templates_per_cell, cell_models, seed, drift):
    """A MEArec ``TemplateGenerator`` filled with templates from ``spikeinterface.core.generate_templates``.

    The library mirrors the NEURON one: ``num_templates_per_cell`` templates per requested cell, an
    excitatory ("fallback_PC") or inhibitory ("fallback_BC", narrower spikes) label following the
    cell's class, 32 kHz, 2 ms before and 5 ms after the peak, positions 10-80 um off the probe
    plane and up to 30 um beyond its edges, peak amplitudes within MEArec's selection window.
    """
    import MEAutility as mu
    from spikeinterface.core.generate import generate_templates as si_generate_templates

    template_defaults = _load_mearec_default_parameters("templates")
    recording_defaults = _load_mearec_default_parameters("recordings")["templates"]
    dt_ms = float(template_defaults["dt"])
    cut_out_ms = [float(value) for value in template_defaults["cut_out"]]
    sampling_frequency = 1000.0 / dt_ms
    minimum_amplitude_uV = float(recording_defaults["min_amp"]) * 1.1
    maximum_amplitude_uV = float(recording_defaults["max_amp"]) * 0.95
    overhang_um = float(template_defaults["overhang"])
    distance_range_um = [float(value) for value in template_defaults["xlim"]]

    probe_information = mu.return_mea_info(probe)
    positions = np.asarray(mu.return_mea(probe).positions, dtype=float)
    spans = np.ptp(positions, axis=0)
    normal_axis = int(np.argmin(spans))
    plane_axes = [axis for axis in range(3) if axis != normal_axis]
    channel_locations = positions[:, plane_axes]
    plane_minimum = channel_locations.min(axis=0) - overhang_um
    plane_maximum = channel_locations.max(axis=0) + overhang_um

    binary_types = _binary_cell_types(cell_models)
    labels = []
    for binary_type in binary_types:
        labels += ["fallback_PC" if binary_type == "E" else "fallback_BC"] * num_templates_per_cell
    labels = np.array(labels)
    num_templates = len(labels)

    if drift:
        drift_steps = int(DRIFT_TEMPLATE_PARAMETERS["drift_steps"])
        drift_minimum_um, drift_maximum_um = DRIFT_TEMPLATE_PARAMETERS["drift_zlim"]
    else:
        drift_steps = 1
    rng = np.random.default_rng(seed)
    templates, locations = [], []
    for label in labels:
        for _attempt in range(10000):
            location = np.zeros(3)
            location[plane_axes] = rng.uniform(plane_minimum, plane_maximum)
            location[normal_axis] = rng.uniform(*distance_range_um)
            inhibitory = label == "fallback_BC"
            unit_parameters = {
                "alpha": rng.uniform(100.0, 500.0),
                "depolarization_ms": rng.uniform(0.09, 0.14),
                "repolarization_ms": rng.uniform(0.25, 0.4) if inhibitory else rng.uniform(0.5, 0.8),
                "recovery_ms": rng.uniform(0.6, 1.0) if inhibitory else rng.uniform(1.0, 1.5),
                "positive_amplitude": rng.uniform(0.1, 0.25),
                "smooth_ms": rng.uniform(0.03, 0.07),
                "spatial_decay": rng.uniform(10.0, 45.0),
                "propagation_speed": rng.uniform(250.0, 350.0),
                "ellipse_shrink": rng.uniform(0.4, 1.0),
                "ellipse_angle": rng.uniform(0.0, 2 * np.pi),
                "spatial_power": rng.uniform(1.5, 2.5),
            }
            if drift:
                drift_um = rng.uniform(drift_minimum_um, drift_maximum_um)
                steps = np.zeros((drift_steps, 3))
                steps[:, 2] = np.linspace(0.0, drift_um, drift_steps)
                unit_locations = location[np.newaxis, :] + steps
            else:
                unit_locations = location[np.newaxis, :]
            si_locations = np.column_stack(
                [unit_locations[:, plane_axes[0]], unit_locations[:, plane_axes[1]], unit_locations[:, normal_axis]]
            )
            waveforms = si_generate_templates(
                channel_locations,
                si_locations,
                sampling_frequency,
                cut_out_ms[0],
                cut_out_ms[1],
                seed=int(rng.integers(2**31)),
                dtype="float32",
                unit_params={name: np.full(len(si_locations), value) for name, value in unit_parameters.items()},
            )
            waveforms = np.transpose(waveforms, (0, 2, 1))  # (steps, channels, samples) as MEArec
            peak_uV = np.abs(waveforms.min(axis=(1, 2)))
            if np.all(peak_uV > minimum_amplitude_uV) and np.all(peak_uV < maximum_amplitude_uV):
                break
        else:
            raise RuntimeError(f"could not place a fallback template on {probe} within the amplitude window")
        templates.append(waveforms if drift else waveforms[0])
        locations.append(unit_locations if drift else unit_locations[0])

    from MEArec import TemplateGenerator

    parameters = dict(template_defaults)
    parameters.update(
        probe=probe,
        n=int(num_templates_per_cell),
        seed=int(seed),
        drifting=bool(drift),
        rot="norot",
        templates_source=TEMPLATES_SOURCE_FALLBACK,
        generator="spikeinterface.core.generate_templates",
    )
    if drift:
        parameters.update(DRIFT_TEMPLATE_PARAMETERS)
    template_dictionary = {
        "templates": np.asarray(templates, dtype="float32"),
        "locations": np.asarray(locations, dtype=float),
        "rotations": np.zeros((num_templates, 3)),
        "celltypes": labels,
    }
    return TemplateGenerator(
        temp_dict=template_dictionary, info={"params": parameters, "electrodes": probe_information}
    )


# ----------------------------------------------------------------------------------------------
# recordings
# ----------------------------------------------------------------------------------------------


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


def _recording_parameters(template_generator, num_units, duration_s, noise_level_uV, drift, seed):
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
                seed=seed,
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
        templates_cache_key = _read_attribute(templates_file, "vqcompress_cache_key")
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
        template_generator = _fallback_template_generator(probe, num_templates_per_cell, cell_models, seed, drift)
        templates_source = TEMPLATES_SOURCE_FALLBACK

    parameters = _recording_parameters(template_generator, num_units, duration_s, noise_level_uV, drift, seed)
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


def read_ground_truth_metadata(file_path) -> dict:
    """Return the metadata :func:`simulate_recording` stored in a MEArec file.

    Parameters
    ----------
    file_path : str | Path
        A MEArec ``.h5`` file.

    Returns
    -------
    metadata : dict
        With at least "templates_source": "neuron", "spikeinterface-fallback" or, for files this
        package did not write, "unknown".
    """
    text = _read_attribute(file_path, METADATA_ATTRIBUTE)
    if text is None:
        return {"templates_source": "unknown", "fallback_reason": None, "parameters": None}
    return json.loads(text)


def load_ground_truth(file_path):
    """Read a MEArec file as a SpikeInterface recording and sorting, with this package's metadata.

    Parameters
    ----------
    file_path : str | Path
        A MEArec ``.h5`` file (from :func:`simulate_recording` or MEArec itself).

    Returns
    -------
    recording : BaseRecording
        ``read_mearec``'s recording, annotated with ``"vqcompress_groundtruth"``: the metadata
        dict of :func:`read_ground_truth_metadata` (includes "templates_source").
    sorting : BaseSorting
        The ground-truth sorting, with the same annotation.
    """
    from spikeinterface.extractors import read_mearec

    recording, sorting = read_mearec(file_path)
    metadata = read_ground_truth_metadata(file_path)
    recording.annotate(**{ANNOTATION_KEY: metadata})
    sorting.annotate(**{ANNOTATION_KEY: metadata})
    if metadata.get("templates_source") == TEMPLATES_SOURCE_FALLBACK:
        logger.warning("%s holds fallback (SpikeInterface-generated) templates, not NEURON ones", file_path)
    return recording, sorting
