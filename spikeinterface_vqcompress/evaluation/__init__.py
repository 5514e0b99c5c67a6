"""Metrics and the compress -> sort -> compare pipeline."""

from spikeinterface_vqcompress.evaluation.metrics import compare_traces, sndr_db, spike_window_fidelity
from spikeinterface_vqcompress.evaluation.pipeline import evaluate, evaluate_codecs, format_hardware_table, format_table, save_results, score_sorting, sort_and_score
