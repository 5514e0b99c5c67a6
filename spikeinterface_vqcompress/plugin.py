"""Every SpikeInterface registration of the package, in one place.

SpikeInterface 0.105 has no plugin entry points, so the package adds itself to SpikeInterface's
explicit tables when it is imported (:func:`register`, idempotent):

- the preprocessing step ``compress`` (``apply_preprocessing_pipeline``, ``si.load`` of a
  :class:`~spikeinterface_vqcompress.recording.CompressedRecording`);
- the analyzer extension ``compressed_waveforms``;
- the sorter ``esort``.

The core (:mod:`spikeinterface_vqcompress.core`) never imports this module.
"""

from __future__ import annotations

from spikeinterface.core.sortinganalyzer import register_result_extension
from spikeinterface.preprocessing import pipeline, preprocessing_classes
from spikeinterface.sorters import sorterlist

from spikeinterface_vqcompress.esort.sorter import ESortSorter
from spikeinterface_vqcompress.extension import ComputeCompressedWaveforms
from spikeinterface_vqcompress.recording import CompressedRecording, compress


def register() -> None:
    """Add ``compress``, ``compressed_waveforms`` and ``esort`` to SpikeInterface (idempotent)."""
    pipeline.pp_names_to_functions["compress"] = compress
    preprocessing_classes.preprocessor_dict["CompressedRecording"] = compress
    preprocessing_classes._all_preprocesser_dict[CompressedRecording] = compress
    register_result_extension(ComputeCompressedWaveforms)
    if ESortSorter not in sorterlist.sorter_full_list:
        sorterlist.sorter_full_list.append(ESortSorter)
    sorterlist.sorter_dict[ESortSorter.sorter_name] = ESortSorter


register()
