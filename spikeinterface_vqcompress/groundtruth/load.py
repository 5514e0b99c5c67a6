"""Reading ground truth back: :func:`load_ground_truth` and :func:`read_ground_truth_metadata`."""

from __future__ import annotations

import json
import logging

from spikeinterface_vqcompress.groundtruth.cache import _read_attribute
from spikeinterface_vqcompress.groundtruth.parameters import (
    ANNOTATION_KEY,
    METADATA_ATTRIBUTE,
    TEMPLATES_SOURCE_FALLBACK,
)

logger = logging.getLogger(__name__)


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
