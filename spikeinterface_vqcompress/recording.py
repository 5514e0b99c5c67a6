"""Compression as a SpikeInterface step: ``compress()``, ``CompressedRecording`` and the file API.

``compress(recording, codec="wavpack", bps=2.25)`` encodes the recording chunk by chunk (in parallel
with ``n_jobs``) into a real container (in memory, or in a file with ``file_path=``) and returns a
lazy recording whose ``get_traces`` decodes only the chunks it needs from those bytes.
``write_compressed`` / ``read_compressed`` store and open ``.vqc`` files.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import OrderedDict
from pathlib import Path

import numpy as np
from spikeinterface.core import BaseRecording, BaseRecordingSegment
from spikeinterface.core.job_tools import TimeSeriesChunkExecutor, fix_job_kwargs, split_job_kwargs
from spikeinterface.preprocessing.basepreprocessor import BasePreprocessor

from spikeinterface_vqcompress._version import __version__
from spikeinterface_vqcompress.core.registry import get_codec
from spikeinterface_vqcompress.core.threads import prepare_worker
from spikeinterface_vqcompress.core.container import ContainerReader, ContainerWriter
from spikeinterface_vqcompress.core.jsonio import json_value

DEFAULT_CHUNK_DURATION_S = 1.0

#: In-memory containers of this process, by (source fingerprint, codec config, chunk length): a
#: recording rebuilt from its provenance in the same process (SpikeInterface's ``run_sorter`` dumps the
#: recording to JSON and loads it back) decodes these bytes instead of encoding its parent again.
_RECENT_CONTAINERS: "OrderedDict[tuple, bytes]" = OrderedDict()
_RECENT_CONTAINERS_MAX_BYTES = 2 * 2**30


def _json_safe(value):
    """Keep only what JSON can hold (annotations may carry numpy values or objects)."""
    try:
        return json_value(value, fallback=lambda item: item.tolist() if hasattr(item, "tolist") else str(item))
    except (TypeError, ValueError):
        return None


def recording_fingerprint(recording: BaseRecording) -> str:
    """A sha256 of what identifies a recording: its provenance dict, shape and sampling rate."""
    description = {
        "sampling_frequency": recording.sampling_frequency,
        "channel_ids": [str(channel_id) for channel_id in recording.channel_ids],
        "num_samples": [recording.get_num_samples(segment_index) for segment_index in range(recording.get_num_segments())],
        "dtype": str(recording.get_dtype()),
    }
    if recording.check_serializability("json"):
        description["provenance"] = recording.to_dict(recursive=True, include_annotations=False, include_properties=False)
    else:
        # in-memory data: its provenance would hold every sample; hash the edges of each segment instead
        digest = hashlib.sha256()
        for segment_index in range(recording.get_num_segments()):
            num_samples = recording.get_num_samples(segment_index)
            for start, end in ((0, min(1024, num_samples)), (max(num_samples - 1024, 0), num_samples)):
                digest.update(np.ascontiguousarray(recording.get_traces(segment_index=segment_index, start_frame=start, end_frame=end)).tobytes())
        description["provenance"] = {"class": type(recording).__name__, "edge_samples_sha256": digest.hexdigest()}
    text = json.dumps(description, sort_keys=True, default=lambda item: item.tolist() if hasattr(item, "tolist") else str(item))
    return hashlib.sha256(text.encode()).hexdigest()


def build_header(recording: BaseRecording, codec, chunk_num_samples: int, adc_bits: int | None = None) -> dict:
    """The container header describing ``recording`` encoded with ``codec``."""
    if recording.get_num_channels() == 0:
        raise ValueError("the recording has zero channels; select at least one channel before compressing")
    header = {
        "package": "spikeinterface-vqcompress",
        "package_version": __version__,
        "codec": codec.get_config(),
        "lossless": bool(codec.lossless),
        "model_sha256": codec.model_sha256,
        "sampling_frequency": float(recording.sampling_frequency),
        "num_channels": int(recording.get_num_channels()),
        "channel_ids": [channel_id.item() if hasattr(channel_id, "item") else channel_id for channel_id in recording.channel_ids],
        "dtype": str(recording.get_dtype()),
        "gains_to_uV": None,
        "offsets_to_uV": None,
        "probe": None,
        "segments": [
            {"num_samples": int(recording.get_num_samples(segment_index)), "t_start": recording.get_start_time(segment_index) if recording.has_time_vector(segment_index) is False else None}
            for segment_index in range(recording.get_num_segments())
        ],
        "chunk_num_samples": int(chunk_num_samples),
        "adc_bits": None if adc_bits is None else int(adc_bits),
        "source_fingerprint": recording_fingerprint(recording),
        "annotations": _json_safe({key: recording.get_annotation(key) for key in recording.get_annotation_keys()}) or {},
    }
    if recording.has_scaleable_traces():
        header["gains_to_uV"] = [float(gain) for gain in recording.get_channel_gains()]
        header["offsets_to_uV"] = [float(offset) for offset in recording.get_channel_offsets()]
    if recording.has_probe():
        header["probe"] = _json_safe(recording.get_probegroup().to_dict(array_as_list=True))
    json.dumps(header)
    return header


def codec_for_recording(codec, recording, **codec_params):
    """The codec instance for ``recording``: :func:`get_codec`, then the probe geometry and gains filled in
    for codecs that need them (``with_recording``, spike-cae).

    This is where such a codec meets the recording, before any encoding: ``with_recording`` checks
    everything the codec needs from it (spike-cae: channel locations, a gain to uV, enough channels,
    a sampling rate near its model's, int16 traces) and raises one ValueError that lists each
    missing piece and how to give it.
    """
    codec = get_codec(codec, **codec_params)
    if hasattr(codec, "with_recording"):
        codec = codec.with_recording(recording)
    return codec


# -- parallel encoding (module-level functions so process pools can pickle them) ---------------------
def _init_encode_worker(recording, codec_config):
    return {"recording": recording, "codec": get_codec(codec_config)}


def _encode_chunk(segment_index, start_frame, end_frame, worker_dict):
    prepare_worker()  # torch on one thread (a forked worker must not hang), exit with the parent
    traces = worker_dict["recording"].get_traces(segment_index=segment_index, start_frame=start_frame, end_frame=end_frame)
    return segment_index, start_frame, end_frame, worker_dict["codec"].encode(traces)


def chunk_duration_for_codec(codec, chunk_duration_s: float | None = None) -> float:
    """``chunk_duration_s``, or the codec's :attr:`~spikeinterface_vqcompress.core.codec.Codec.default_chunk_duration_s` when None."""
    if chunk_duration_s is not None:
        return float(chunk_duration_s)
    return float(getattr(codec, "default_chunk_duration_s", DEFAULT_CHUNK_DURATION_S))


def encode_recording(recording: BaseRecording, codec, file_path=None, chunk_duration_s: float | None = None,
                     adc_bits: int | None = None, **job_kwargs):
    """Encode a whole recording into a container, chunk by chunk.

    Parameters
    ----------
    recording : BaseRecording
        The recording to compress (any number of segments).
    codec : str | dict | Codec
        The codec, by registry name, config dict or instance.
    file_path : str | Path | None, default: None
        Write the container there (atomically); None keeps it in memory.
    chunk_duration_s : float | None, default: None
        Duration of one container chunk, the unit of random access; None: the codec's
        ``default_chunk_duration_s`` (1 s; 10 s for ``spike-vq``, which learns within a chunk).
    adc_bits : int | None, default: None
        Bit depth of the ADC that produced the data, for the ratio against the ADC.
    **job_kwargs
        ``n_jobs``, ``progress_bar``, ``pool_engine``, ``mp_context``, ``max_threads_per_worker``.

    Returns
    -------
    source : bytes | Path
        The container's bytes, or its path.
    encode_time_s : float
        Wall time of the encoding.
    """
    codec = codec_for_recording(codec, recording)
    chunk_duration_s = chunk_duration_for_codec(codec, chunk_duration_s)
    chunk_num_samples = max(int(round(chunk_duration_s * recording.sampling_frequency)), 1)
    header = build_header(recording, codec, chunk_num_samples, adc_bits=adc_bits)
    job_kwargs = fix_job_kwargs({key: value for key, value in job_kwargs.items() if key not in ("chunk_size", "chunk_duration", "chunk_memory", "total_memory")})
    slices = []
    for segment_index in range(recording.get_num_segments()):
        num_samples = recording.get_num_samples(segment_index)
        if num_samples == 0:
            raise ValueError(f"segment {segment_index} of the recording has no samples; remove it before compressing")
        slices.extend((segment_index, start, min(start + chunk_num_samples, num_samples)) for start in range(0, num_samples, chunk_num_samples))

    chunk_counts = {}
    t0 = time.perf_counter()
    writer = ContainerWriter(header, file_path=file_path)
    with writer:
        def gather(result):
            segment_index, start_frame, end_frame, payload = result
            chunk_index = chunk_counts.get(segment_index, 0)
            chunk_counts[segment_index] = chunk_index + 1
            writer.write_chunk(segment_index, chunk_index, start_frame, end_frame - start_frame, payload)

        executor = TimeSeriesChunkExecutor(
            recording, _encode_chunk, _init_encode_worker, (recording, codec.get_config()),
            gather_func=gather, job_name=f"compress with {codec.codec_id}", **job_kwargs,
        )
        executor.run(slices=slices)
        source = writer.close()
    return source, time.perf_counter() - t0


class CompressedRecordingSegment(BaseRecordingSegment):
    """One segment decoded lazily from a container."""

    def __init__(self, reader: ContainerReader, segment_index: int, times_kwargs: dict):
        BaseRecordingSegment.__init__(self, **times_kwargs)
        self._reader = reader
        self._segment_index = segment_index

    def get_num_samples(self):
        return self._reader.segment_lengths[self._segment_index]

    def get_traces(self, start_frame, end_frame, channel_indices):
        return self._reader.get_traces(self._segment_index, start_frame, end_frame, channel_indices)


class _CompressionStatsMixin:
    """Exact byte accounting shared by both compressed recording classes."""

    @property
    def encoded_nbytes(self) -> int:
        """Bytes of the whole container: header, index, footer and every chunk."""
        return self._reader.nbytes

    @property
    def raw_nbytes(self) -> int:
        """Bytes of the uncompressed traces at the stored dtype."""
        return sum(self._reader.segment_lengths) * self._reader.num_channels * self._reader.dtype.itemsize

    @property
    def compression_ratio(self) -> float:
        """Uncompressed bytes (stored dtype) / container bytes."""
        return self.raw_nbytes / self.encoded_nbytes

    @property
    def bits_per_sample(self) -> float:
        """Container bits per sample per channel."""
        return 8.0 * self.encoded_nbytes / (sum(self._reader.segment_lengths) * self._reader.num_channels)

    def compression_ratio_vs_adc(self, adc_bits: int | None = None) -> float | None:
        """Ratio against a ``adc_bits``-bit ADC (default: the bit depth declared when encoding)."""
        adc_bits = adc_bits or self._reader.header.get("adc_bits")
        if not adc_bits:
            return None
        return adc_bits / self.bits_per_sample

    @property
    def codec(self):
        return self._reader.codec

    def hardware_report(self, **kwargs):
        """What this codec costs an implant, from this recording's real bytes and encoding time.

        Parameters
        ----------
        **kwargs
            Passed to :func:`spikeinterface_vqcompress.core.hardware.hardware_report` (``budget``,
            ``energy_model``, ``weight_bits``, ``event_rate_hz_per_channel``, ``adc_bits``...).
            ``adc_bits`` defaults to the bit depth declared when encoding, else the stored dtype's.

        Returns
        -------
        report : HardwareReport
        """
        from spikeinterface_vqcompress.core.hardware import hardware_report

        reader = self._reader
        num_samples = sum(reader.segment_lengths)
        kwargs.setdefault("adc_bits", reader.header.get("adc_bits") or reader.dtype.itemsize * 8)
        encode_time_s = getattr(self, "encode_time_s", None) or None
        kwargs.setdefault("event_rate_hz_per_channel", reader.header.get("event_rate_hz_per_channel"))
        return hardware_report(
            reader.codec, num_channels=reader.num_channels, sampling_frequency=reader.sampling_frequency,
            compressed_nbytes=reader.nbytes, duration_s=num_samples / reader.sampling_frequency,
            encode_time_s=encode_time_s, num_chunks=reader.num_chunks, **kwargs,
        )

    @property
    def container_header(self) -> dict:
        return self._reader.header

    def get_compressed_bytes(self) -> bytes:
        """The container exactly as stored."""
        return self._reader._read(0, self._reader.nbytes)

    def _add_segments(self, times_kwargs_list):
        for segment_index, times_kwargs in enumerate(times_kwargs_list):
            self.add_recording_segment(CompressedRecordingSegment(self._reader, segment_index, times_kwargs))


def _remember_container(key: tuple, data: bytes) -> None:
    """Keep ``data`` in :data:`_RECENT_CONTAINERS` (least recently added dropped first, 2 GiB at most)."""
    _RECENT_CONTAINERS[key] = data
    _RECENT_CONTAINERS.move_to_end(key)
    while sum(len(value) for value in _RECENT_CONTAINERS.values()) > _RECENT_CONTAINERS_MAX_BYTES and len(_RECENT_CONTAINERS) > 1:
        _RECENT_CONTAINERS.popitem(last=False)


def forget_in_memory_containers() -> None:
    """Drop the in-memory containers kept for reloads in this process (the next ``compress`` encodes)."""
    _RECENT_CONTAINERS.clear()


class CompressedRecording(BasePreprocessor, _CompressionStatsMixin):
    """A recording rebuilt from the real compressed bytes of its parent.

    The parent is encoded once, at construction, chunk by chunk (``n_jobs`` in parallel); ``get_traces``
    then decodes from the container only the chunks a window needs. The result serializes with its
    parent and codec config: ``si.load(compressed.to_dict())`` encodes again (codecs are deterministic),
    or reuses ``file_path`` when it holds the same parent encoded with the same codec, or, in the
    process that encoded it, the in-memory container (what a sorter's reload from JSON gets).

    Parameters
    ----------
    recording : BaseRecording
        The recording to compress.
    codec : str | dict, default: "flac"
        Codec registry name or config dict (``{"id": "wavpack", "bps": 2.25}``).
    codec_params : dict | None, default: None
        Codec parameters when ``codec`` is a name.
    file_path : str | Path | None, default: None
        Keep the container in this file instead of memory.
    chunk_duration_s : float | None, default: None
        Container chunk duration: the unit of random access; None: the codec's ``default_chunk_duration_s``.
    adc_bits : int | None, default: None
        Bit depth of the ADC, for the ratio against the ADC.
    job_kwargs : dict | None, default: None
        ``n_jobs``, ``progress_bar``, ... for the encoding (not stored in the provenance).
    container : bytes | None, default: None
        The container of ``recording`` already encoded with ``codec`` (how a pickled copy travels to
        worker processes: they decode it and never encode again); not stored in the provenance.

    Attributes
    ----------
    compression_ratio, bits_per_sample, encoded_nbytes, raw_nbytes, encode_time_s
    """

    def __init__(self, recording, codec="flac", codec_params=None, file_path=None,
                 chunk_duration_s=None, adc_bits=None, job_kwargs=None, container=None):
        codec_object = codec_for_recording(codec, recording, **(codec_params or {}))
        chunk_duration_s = chunk_duration_for_codec(codec_object, chunk_duration_s)
        BasePreprocessor.__init__(self, recording)
        reader = None
        chunk_num_samples = max(int(round(chunk_duration_s * recording.sampling_frequency)), 1)
        fingerprint = recording_fingerprint(recording)
        memory_key = (fingerprint, json.dumps(codec_object.get_config(), sort_keys=True), chunk_num_samples)
        if container is None and file_path is None:
            container = _RECENT_CONTAINERS.get(memory_key)
        source = container if container is not None else file_path if file_path is not None and Path(file_path).is_file() else None
        if source is not None:
            reader = ContainerReader(source)
            same = (
                reader.header.get("codec") == codec_object.get_config()
                and reader.header.get("source_fingerprint") == fingerprint
                and reader.header.get("chunk_num_samples") == chunk_num_samples
            )
            if not same and container is not None:
                raise ValueError("CompressedRecording: the container given is not this recording encoded with this codec "
                                 "and chunk duration; pass container=None to encode the recording")
            if not same:
                reader = None
        self.encode_time_s = 0.0
        if reader is None:
            source, self.encode_time_s = encode_recording(
                recording, codec_object, file_path=file_path, chunk_duration_s=chunk_duration_s,
                adc_bits=adc_bits, **(job_kwargs or {}),
            )
            reader = ContainerReader(source)
            if file_path is None:
                _remember_container(memory_key, source)
        self._reader = reader
        self._add_segments([segment.get_times_kwargs() for segment in recording._recording_segments])
        self.annotate(vqcompress_codec=codec_object.get_config(), vqcompress_lossless=bool(codec_object.lossless))
        self._kwargs = dict(
            recording=recording,
            codec=codec_object.get_config(),
            codec_params=None,
            file_path=None if file_path is None else str(Path(file_path).absolute()),
            chunk_duration_s=chunk_duration_s,
            adc_bits=adc_bits,
        )

    def __reduce__(self):
        # SpikeInterface pickles an extractor as its provenance, which for an in-memory container
        # means encoding the parent again in every worker that receives it (a sorter's, a job's):
        # a pickled copy carries the encoded bytes instead, and only decodes
        state = self.to_dict()
        if self._reader.file_path is None:
            state["kwargs"] = {**state["kwargs"], "container": self._reader._buffer}  # a copy: to_dict() shares _kwargs
        return (self.from_dict, (state,))


class ContainerRecording(BaseRecording, _CompressionStatsMixin):
    """A recording read lazily from a ``.vqc`` container file.

    Parameters
    ----------
    file_path : str | Path
        The container.
    """

    def __init__(self, file_path):
        reader = ContainerReader(file_path)
        header = reader.header
        BaseRecording.__init__(self, header["sampling_frequency"], header["channel_ids"], header["dtype"])
        self._reader = reader
        self._add_segments(
            [{"sampling_frequency": header["sampling_frequency"], "t_start": segment.get("t_start")} for segment in header["segments"]]
        )
        if header.get("gains_to_uV") is not None:
            self.set_channel_gains(header["gains_to_uV"])
            self.set_channel_offsets(header["offsets_to_uV"])
        if header.get("probe") is not None:
            from probeinterface import ProbeGroup

            probegroup = ProbeGroup.from_dict(header["probe"])
            self.set_probegroup(probegroup)
        for key, value in (header.get("annotations") or {}).items():
            self.annotate(**{key: value})
        self.annotate(vqcompress_codec=header["codec"], vqcompress_lossless=header.get("lossless"))
        self._kwargs = dict(file_path=str(Path(file_path).absolute()))


def compress(recording, codec="flac", file_path=None, chunk_duration_s=None, adc_bits=None,
             codec_params=None, **kwargs):
    """Compress a recording and return it rebuilt, lazily, from the real compressed bytes.

    Parameters
    ----------
    recording : BaseRecording | dict
        Any SpikeInterface recording (or a dict of them, as from ``split_by``).
    codec : str | dict | Codec, default: "flac"
        Registered codec name (see :func:`~spikeinterface_vqcompress.available_codecs`), config dict
        or instance.
    file_path : str | Path | None, default: None
        Keep the container in this file (written atomically) instead of memory.
    chunk_duration_s : float | None, default: None
        Container chunk duration; None: the codec's ``default_chunk_duration_s``.
    adc_bits : int | None, default: None
        ADC bit depth, for the ratio against the ADC.
    codec_params : dict | None, default: None
        Codec parameters, as an alternative to passing them as keywords.
    **kwargs
        Codec parameters (``bps=2.25``) and job kwargs (``n_jobs``, ``progress_bar``).

    Returns
    -------
    CompressedRecording
    """
    if isinstance(recording, dict):
        return {key: compress(value, codec=codec, file_path=None if file_path is None else Path(file_path).with_suffix(f".{key}.vqc"),
                              chunk_duration_s=chunk_duration_s, adc_bits=adc_bits, codec_params=codec_params, **kwargs)
                for key, value in recording.items()}
    params, job_kwargs = split_job_kwargs(kwargs)
    params.update(codec_params or {})
    codec_config = get_codec(codec, **params).get_config()
    return CompressedRecording(recording, codec=codec_config, file_path=file_path,
                               chunk_duration_s=chunk_duration_s, adc_bits=adc_bits, job_kwargs=job_kwargs)


def write_compressed(recording, file_path, codec="flac", chunk_duration_s=None, adc_bits=None, **kwargs):
    """Compress ``recording`` into the container file ``file_path`` (atomically) and open it.

    Parameters are those of :func:`compress`; ``file_path`` is required.

    Returns
    -------
    ContainerRecording
        The recording read back from the file.
    """
    codec_params, job_kwargs = split_job_kwargs(kwargs)
    codec = get_codec(codec, **codec_params)
    _, encode_time_s = encode_recording(recording, codec, file_path=file_path, chunk_duration_s=chunk_duration_s,
                                        adc_bits=adc_bits, **job_kwargs)
    container = ContainerRecording(file_path)
    container.encode_time_s = encode_time_s
    return container


def read_compressed(file_path) -> ContainerRecording:
    """Open a ``.vqc`` container as a lazy SpikeInterface recording."""
    return ContainerRecording(file_path)
