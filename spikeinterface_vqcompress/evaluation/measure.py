"""The one measure step: compress -> decode from the real bytes -> fidelity -> hardware report.

:func:`measure_codec` builds the row that ``evaluate``, the sorting-impact study and the WAV
evaluation all start from, with one name per quantity:

=========================== ===============================================================================
``codec``                   short label (:func:`~spikeinterface_vqcompress.evaluation.tables.codec_label`)
``codec_config``            the codec's full config
``lossless``                the codec's claim (``exact`` is what was measured)
``num_channels``            channels of the recording
``sampling_frequency``      Hz
``duration_s``              total duration of the recording
``dtype``                   stored dtype
``raw_nbytes``              bytes of the traces at the stored dtype
``encoded_nbytes``          bytes of the whole container (header, index, CRCs, payload): the size counted
``payload_nbytes``          bytes of the codec's chunks only (without the container's header and index)
``compression_ratio``       ``raw_nbytes / encoded_nbytes``
``adc_bits``                ADC bit depth the ratio below is against
``compression_ratio_vs_adc`` ``adc_bits / bits_per_sample``
``bits_per_sample``         container bits per sample per channel
``encode_time_s``           wall time of the encoding
``encode_peak_memory_MB``   peak resident memory added while encoding
``hardware_profile``        the codec's :class:`~spikeinterface_vqcompress.core.codec.HardwareProfile`
``hardware``                its hardware report from these bytes and this encode time
``decode_time_s``           wall time to decode every chunk from the bytes
``decode_peak_memory_MB``   peak resident memory added while decoding
``encode_speed_x_realtime`` ``duration_s / encode_time_s``
``decode_speed_x_realtime`` ``duration_s / decode_time_s``
fidelity                    with ``compute_fidelity``: :func:`~spikeinterface_vqcompress.evaluation.metrics.compare_traces`
                            (``rmse_uV``, ``max_abs_error_uV``, ``max_abs_error_stored``, ``exact``,
                            ``signal_rms_uV``, ``sndr_db``, ``units``) and, with a ground-truth sorting,
                            :func:`~spikeinterface_vqcompress.evaluation.metrics.spike_window_fidelity`
                            (``rmse_spike_windows_uV``, ``sndr_spike_db_mean`` / ``_std`` / ``_median``,
                            ``num_snippets``, ``exact_snippets``)
=========================== ===============================================================================
"""

from __future__ import annotations

import math
import threading
import time
from contextlib import contextmanager

import numpy as np

from spikeinterface_vqcompress.core.registry import get_codec
from spikeinterface_vqcompress.evaluation.metrics import compare_traces, spike_window_fidelity
from spikeinterface_vqcompress.evaluation.tables import codec_label


@contextmanager
def measure_peak_memory(interval_s: float = 0.01):
    """Sample this process's resident memory in a thread; yields a dict filled on exit with
    ``peak_MB`` (highest RSS seen) and ``delta_MB`` (peak minus RSS at entry)."""
    import psutil

    process = psutil.Process()
    result = {"start_MB": process.memory_info().rss / 2**20}
    peak = [result["start_MB"]]
    stop = threading.Event()

    def sample():
        while not stop.is_set():
            peak[0] = max(peak[0], process.memory_info().rss / 2**20)
            stop.wait(interval_s)

    thread = threading.Thread(target=sample, daemon=True)
    thread.start()
    try:
        yield result
    finally:
        stop.set()
        thread.join()
        peak[0] = max(peak[0], process.memory_info().rss / 2**20)
        result["peak_MB"] = peak[0]
        result["delta_MB"] = peak[0] - result["start_MB"]


def measure_decode(compressed) -> dict:
    """Decode every chunk of a compressed recording from its bytes; time and peak memory.

    The reader's chunk cache is emptied first (nothing decoded earlier is counted); the chunks
    decoded last stay cached for the reads that follow (the fidelity metrics).
    """
    reader = compressed._reader
    reader._cache.clear()
    with measure_peak_memory() as memory:
        t0 = time.perf_counter()
        for segment_index, chunks in enumerate(reader.chunks):
            for chunk_index in range(len(chunks)):
                reader.decode_chunk(segment_index, chunk_index)
        decode_time_s = time.perf_counter() - t0
    return {"decode_time_s": decode_time_s, "decode_peak_memory_MB": memory["delta_MB"]}


def _warm_up(codec, recording, chunk_duration_s: float | None) -> None:
    """Encode and decode the first chunk once before the timed run.

    One-off costs are not the codec's speed: numba compiles the broadband kernels on their first
    use (about a minute on a new machine, before its on-disk cache exists), and a model's first
    forward pass allocates its buffers. The chunk is the one the timed run encodes first.
    """
    from spikeinterface_vqcompress.recording import chunk_duration_for_codec, codec_for_recording

    codec = codec_for_recording(codec, recording)
    chunk_duration_s = chunk_duration_for_codec(codec, chunk_duration_s)
    num_samples = min(max(int(round(chunk_duration_s * recording.sampling_frequency)), 1), recording.get_num_samples(0))
    traces = recording.get_traces(segment_index=0, start_frame=0, end_frame=num_samples)
    codec.decode(codec.encode(traces), traces.shape[0], traces.shape[1], traces.dtype)


def measure_codec(recording, codec, gt_sorting=None, file_path=None, chunk_duration_s: float | None = None,
                  adc_bits: int | None = None, compute_fidelity: bool = True, warm_up: bool = True,
                  hardware_kwargs: dict | None = None, **job_kwargs):
    """Compress a recording, decode it from the real bytes, and measure size, speed, memory,
    fidelity and the hardware report.

    Parameters
    ----------
    recording : BaseRecording
        The raw recording.
    codec : str | dict | Codec
        Codec id, preset, config or instance.
    gt_sorting : BaseSorting | None, default: None
        Ground truth: adds the spike-window fidelity.
    file_path : str | Path | None, default: None
        Keep the container in this file (any file already there is replaced); None keeps it in memory.
    chunk_duration_s : float | None, default: None
        Container chunk duration; None: the codec's ``default_chunk_duration_s``.
    adc_bits : int | None, default: None
        ADC bit depth, declared in the container when given; the ratio against the ADC and the
        hardware report use it, else the stored dtype's bit depth.
    compute_fidelity : bool, default: True
        Compare the rebuilt traces with the raw ones (RMSE, exactness, SNDR, spike windows).
    warm_up : bool, default: True
        Encode and decode the first chunk once before the timed run (numba compilation and a
        model's first forward pass are not the codec's speed).
    hardware_kwargs : dict | None, default: None
        Options of the hardware report (``budget``, ``energy_model``, ``weight_bits``, ...; see
        :func:`spikeinterface_vqcompress.core.hardware.hardware_report`).
    **job_kwargs
        ``n_jobs``, ``progress_bar``, ... for the encoding.

    Returns
    -------
    row : dict
        The measurements (keys in the module docstring).
    compressed : CompressedRecording
        The recording rebuilt from the bytes (for sorting it, plotting it, or reading its file).
    """
    from pathlib import Path

    from spikeinterface_vqcompress.recording import compress, forget_in_memory_containers

    codec_object = get_codec(codec)
    config = codec_object.get_config()
    num_channels = int(recording.get_num_channels())
    resolved_adc_bits = int(adc_bits or np.dtype(recording.get_dtype()).itemsize * 8)
    if file_path is not None and Path(file_path).exists():
        Path(file_path).unlink()  # a file already there would be reused without encoding (and timing) it
    if warm_up:
        _warm_up(codec_object, recording, chunk_duration_s)
    forget_in_memory_containers()  # a measurement encodes (and times) the recording, never reuses bytes kept in memory
    with measure_peak_memory() as encode_memory:
        compressed = compress(recording, codec=config, file_path=file_path, chunk_duration_s=chunk_duration_s,
                              adc_bits=adc_bits, **job_kwargs)
    row = {
        "codec": codec_label(config),
        "codec_config": config,
        "lossless": bool(codec_object.lossless),
        "num_channels": num_channels,
        "sampling_frequency": float(recording.sampling_frequency),
        "duration_s": float(recording.get_total_duration()),
        "dtype": str(recording.get_dtype()),
        "raw_nbytes": int(compressed.raw_nbytes),
        "encoded_nbytes": int(compressed.encoded_nbytes),
        "payload_nbytes": int(sum(chunk[3] for chunks in compressed._reader.chunks for chunk in chunks)),
        "compression_ratio": float(compressed.compression_ratio),
        "adc_bits": resolved_adc_bits,
        "compression_ratio_vs_adc": float(compressed.compression_ratio_vs_adc(resolved_adc_bits)),
        "bits_per_sample": float(compressed.bits_per_sample),
        "encode_time_s": float(compressed.encode_time_s),
        "encode_peak_memory_MB": float(encode_memory["delta_MB"]),
        "hardware_profile": codec_object.hardware_profile(num_channels, recording.sampling_frequency).to_dict(),
        "hardware": compressed.hardware_report(adc_bits=resolved_adc_bits, **(hardware_kwargs or {})).to_dict(),
    }
    row.update(measure_decode(compressed))
    duration_s = row["duration_s"]
    row["encode_speed_x_realtime"] = duration_s / row["encode_time_s"] if row["encode_time_s"] else math.inf
    row["decode_speed_x_realtime"] = duration_s / row["decode_time_s"] if row["decode_time_s"] else math.inf
    if compute_fidelity:
        row.update(compare_traces(recording, compressed))
        if gt_sorting is not None:
            row.update(spike_window_fidelity(recording, compressed, gt_sorting))
    return row, compressed
