"""The fixed choices of the ground truth, MEArec's shipped defaults, and which probes and cells are accepted.

Every constant the other modules share lives here: the cell models, the probes, the recording
format, the drift parameters, the labels written into files. MEArec's default parameters are read
from its package folder, never from ``~/.config/mearec``.
"""

from __future__ import annotations

import importlib.metadata
import importlib.util
from pathlib import Path

#: Name of the h5 attribute (on the file root) holding this package's metadata as JSON.
METADATA_ATTRIBUTE = "vqcompress_groundtruth"

#: Recording annotation set by :func:`~spikeinterface_vqcompress.groundtruth.load_ground_truth`.
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
