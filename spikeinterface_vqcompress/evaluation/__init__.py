"""Evaluation: the measure step, sorting and scoring, the compress -> sort -> compare pipeline, tables.

- :mod:`.measure`: :func:`measure_codec`, the one compress -> decode -> fidelity -> hardware row
- :mod:`.sorting`: seeded sorter runs and scores against ground truth
- :mod:`.pipeline`: :func:`evaluate` / :func:`evaluate_codecs` and :func:`save_results`
- :mod:`.tables`: markdown tables and codec labels
- :mod:`.metrics`, :mod:`.signal_metrics`: fidelity metrics; :mod:`.wav_evaluation`: folders of WAV files
"""

from spikeinterface_vqcompress.evaluation.measure import measure_codec
from spikeinterface_vqcompress.evaluation.metrics import compare_traces, sndr_db, spike_window_fidelity
from spikeinterface_vqcompress.evaluation.pipeline import evaluate, evaluate_codecs, save_results
from spikeinterface_vqcompress.evaluation.sorting import score_sorting, sort_and_score
from spikeinterface_vqcompress.evaluation.tables import codec_label, format_hardware_table, format_table
