"""The template cache: where it lives, its layout, its keys, and the h5 attributes it checks.

Cache layout, under ``cache_folder``::

    mearec-<version>_neuron-<version>/bbp/       copied cell models + compiled ``mods``
    mearec-<version>_neuron-<version>/cell_sets/ one folder of links per subset of cells
    intracellular/<key>/                         NEURON soma simulations, shared across probes
    templates/templates_<probe>_..._<key>.h5     finished template libraries
    work/                                        temporary folders (removed after each run)
    home/                                        HOME of the NEURON subprocess

Keys are sha256 hashes of every parameter that affects the cached result (see
:func:`_templates_cache_key` and :func:`_intracellular_cache_folder`); a template library is a hit
only when its ``"vqcompress_cache_key"`` attribute (:data:`CACHE_KEY_ATTRIBUTE`) equals the key.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import uuid
from pathlib import Path

from spikeinterface_vqcompress.groundtruth.parameters import _package_version

#: Bump when the way templates are generated changes, so that old cache entries are not reused.
CACHE_FORMAT_VERSION = 1

#: Root attribute of a cached template library holding its key (a hit only when it equals the key).
CACHE_KEY_ATTRIBUTE = "vqcompress_cache_key"

#: Template libraries shipped inside the package (used when their cache key matches; see its .json cards).
SHIPPED_TEMPLATES_FOLDER = Path(__file__).resolve().parents[1] / "data" / "templates"

#: The template parameters that affect the NEURON soma simulations (shared across probes).
_INTRACELLULAR_KEYS = ("sim_time", "target_spikes", "cut_out", "dt", "delay", "weights", "seed")


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


def _hash_parameters(parameters):
    text = json.dumps(parameters, sort_keys=True, default=str, separators=(",", ":"))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def _read_attribute(file_path, name):
    """A root attribute of an h5 file (str when stored as bytes), or None (no attribute, unreadable file)."""
    import h5py

    try:
        with h5py.File(file_path, "r") as file:
            value = file.attrs.get(name)
    except OSError:
        return None
    if isinstance(value, bytes):
        value = value.decode("utf-8")
    return value


# ----------------------------------------------------------------------------------------------
# template libraries
# ----------------------------------------------------------------------------------------------


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


def _templates_file(cache_folder, probe, cell_models, num_templates_per_cell, seed, drift, key):
    """Where the template library of this key is stored."""
    drift_label = "_drift" if drift else ""
    return (
        Path(cache_folder)
        / "templates"
        / f"templates_{probe}_{len(cell_models)}cells_{num_templates_per_cell}per_cell{drift_label}_seed{seed}_{key[:16]}.h5"
    )


def _is_cached(templates_file, key):
    return templates_file.is_file() and _read_attribute(templates_file, CACHE_KEY_ATTRIBUTE) == key


# ----------------------------------------------------------------------------------------------
# compiled cell models
# ----------------------------------------------------------------------------------------------


def _version_folder(cache_folder):
    import MEArec

    neuron_version = _package_version("NEURON") or "none"
    return Path(cache_folder) / f"mearec-{MEArec.__version__}_neuron-{neuron_version}"


def _compiled_cell_models_folder(cache_folder):
    """Where MEArec's BBP cell models are copied and their mechanisms compiled."""
    return _version_folder(cache_folder) / "bbp"


def _cell_set_path(cache_folder, cell_models):
    """Where the folder of links to a subset of cells (sorted names) is kept."""
    set_name = "cells-" + hashlib.sha256(",".join(cell_models).encode()).hexdigest()[:16]
    return _version_folder(cache_folder) / "cell_sets" / set_name


# ----------------------------------------------------------------------------------------------
# NEURON soma simulations
# ----------------------------------------------------------------------------------------------


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
