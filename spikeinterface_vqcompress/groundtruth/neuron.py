"""NEURON on this machine: is it usable, the environment of its subprocesses, the compiled BBP mechanisms.

The cell models shipped inside MEArec are copied into the cache once and their mechanisms compiled
there with ``nrnivmodl`` (:func:`_prepare_cell_models`); a subset of cells is a folder of links
into that copy (:func:`_cell_set_folder`). Subprocesses run with ``HOME`` inside the cache folder.
"""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import uuid
from pathlib import Path

from spikeinterface_vqcompress.groundtruth.cache import _cell_set_path, _compiled_cell_models_folder
from spikeinterface_vqcompress.groundtruth.errors import TemplateGenerationError
from spikeinterface_vqcompress.groundtruth.parameters import BBP_CELL_MODELS, _mearec_package_folder

#: The folder that holds the ``spikeinterface_vqcompress`` package (put on the subprocesses' PYTHONPATH).
_PACKAGE_PARENT = Path(__file__).resolve().parents[2]


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


def _subprocess_environment(cache_folder):
    """Environment of MEArec/NEURON subprocesses: HOME inside the cache, nrnivmodl on the PATH."""
    environment = dict(os.environ)
    home = Path(cache_folder) / "home"
    home.mkdir(parents=True, exist_ok=True)
    environment["HOME"] = str(home)
    environment["XDG_CONFIG_HOME"] = str(home / ".config")
    scripts_folder = str(Path(sys.executable).parent)
    environment["PATH"] = scripts_folder + os.pathsep + environment.get("PATH", "")
    environment["PYTHONPATH"] = str(_PACKAGE_PARENT) + os.pathsep + environment.get("PYTHONPATH", "")
    environment.setdefault("MPLBACKEND", "Agg")
    return environment


def _tail(text, number_of_characters=3000):
    return text if len(text) <= number_of_characters else "..." + text[-number_of_characters:]


def _compiled_library_exists(mods_folder):
    patterns = ("*/.libs/libnrnmech.*", "*/libnrnmech.*", "nrnmech.dll")
    return any(any(Path(mods_folder).glob(pattern)) for pattern in patterns)


def _prepare_cell_models(cache_folder, verbose=False):
    """Copy MEArec's cell models into the cache and compile their mechanisms once."""
    final_folder = _compiled_cell_models_folder(cache_folder)
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
    set_folder = _cell_set_path(cache_folder, cell_models)
    set_name = set_folder.name
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
