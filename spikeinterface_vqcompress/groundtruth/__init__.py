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
This package never calls them: every MEArec folder (cell models, compiled mechanisms, temporary
template folders, the folder its simulation writes ``tmp_params_path.yaml`` into) lives in the
cache folder, and the NEURON subprocess runs with ``HOME`` pointed inside the cache folder.

Modules, each with one job:

- :mod:`.parameters`: the fixed choices (cells, probes, drift, recording format, file labels),
  MEArec's shipped defaults, probe and cell-model checks
- :mod:`.errors`: :class:`TemplateGenerationError`, :class:`GroundTruthFallbackWarning`
- :mod:`.cache`: the cache folder, its layout and keys, the h5 attribute a hit is checked on
- :mod:`.neuron`: is NEURON usable here, subprocess environment, compiled BBP mechanisms
- :mod:`.worker`: the template subprocess (job file in, templates file out)
- :mod:`.templates`: :func:`generate_templates` (NEURON, cached)
- :mod:`.fallback`: templates from SpikeInterface's generator when NEURON cannot run
- :mod:`.simulate`: :func:`simulate_recording`
- :mod:`.load`: :func:`load_ground_truth`, :func:`read_ground_truth_metadata`
"""

from spikeinterface_vqcompress.groundtruth.cache import CACHE_FORMAT_VERSION, CACHE_KEY_ATTRIBUTE, default_cache_folder
from spikeinterface_vqcompress.groundtruth.errors import GroundTruthFallbackWarning, TemplateGenerationError
from spikeinterface_vqcompress.groundtruth.load import load_ground_truth, read_ground_truth_metadata
from spikeinterface_vqcompress.groundtruth.parameters import (
    ANNOTATION_KEY,
    BBP_CELL_MODELS,
    DEFAULT_TEMPLATES_PER_CELL,
    DRIFT_RECORDING_PARAMETERS,
    DRIFT_TEMPLATE_PARAMETERS,
    INHIBITORY_FRACTION,
    METADATA_ATTRIBUTE,
    RECORDING_DTYPE,
    RECORDING_GAIN_UV,
    REQUIRED_PROBES,
    TEMPLATES_SOURCE_FALLBACK,
    TEMPLATES_SOURCE_NEURON,
    available_probes,
)
from spikeinterface_vqcompress.groundtruth.simulate import simulate_recording
from spikeinterface_vqcompress.groundtruth.templates import generate_templates

# Private helpers that esort.pretraining and the tests reach through the package; they are
# looked up (and must be monkeypatched) in their submodules, not here.
from spikeinterface_vqcompress.groundtruth.cache import _templates_cache_key
from spikeinterface_vqcompress.groundtruth.neuron import _neuron_problem
from spikeinterface_vqcompress.groundtruth.simulate import recording_parameters
from spikeinterface_vqcompress.groundtruth.templates import _template_parameters

__all__ = [
    "ANNOTATION_KEY",
    "BBP_CELL_MODELS",
    "CACHE_FORMAT_VERSION",
    "CACHE_KEY_ATTRIBUTE",
    "DEFAULT_TEMPLATES_PER_CELL",
    "DRIFT_RECORDING_PARAMETERS",
    "DRIFT_TEMPLATE_PARAMETERS",
    "GroundTruthFallbackWarning",
    "INHIBITORY_FRACTION",
    "METADATA_ATTRIBUTE",
    "RECORDING_DTYPE",
    "RECORDING_GAIN_UV",
    "REQUIRED_PROBES",
    "TEMPLATES_SOURCE_FALLBACK",
    "TEMPLATES_SOURCE_NEURON",
    "TemplateGenerationError",
    "available_probes",
    "default_cache_folder",
    "generate_templates",
    "load_ground_truth",
    "read_ground_truth_metadata",
    "simulate_recording",
]
