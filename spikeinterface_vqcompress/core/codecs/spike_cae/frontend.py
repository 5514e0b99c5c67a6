"""The front end shared by the spike codecs (``spike-cae``, ``spike-vq``, ``spike-pca``).

Encoder, per container chunk (what an implant would run per block; see :mod:`.detection`): the
channel offsets (median) removed, an optional causal band-pass (``bandpass_hz``: "auto" band-passes a
recording that SpikeInterface does not mark as filtered, so the local field potential goes), detection (running noise level, negative threshold, locally
exclusive troughs on the probe geometry), snippets cut around each trough (centre channel first, then
neighbours by distance; the centre is the peak channel, or with a footprint map of :mod:`.footprint`
the channel of the spike's cluster, so a unit's spikes are cut on the same channels), the background statistics of :mod:`.background` (level and AR spectrum per
channel, offsets); the snippets go to the codec's payload coder (:meth:`SpikeSnippetCodec._encode_payload`).

Decoder: synthesised background (deterministic, seeded from the chunk) + every decoded snippet placed
at its time and channels with a raised-cosine taper, added to the background (a denoised snippet:
CAE, VQ, PCA reconstructions) or blended in place of it (raw snippets), then the offsets added back.

Chunk layout (all little-endian), framed by :func:`~spikeinterface_vqcompress.core.framing.pack_parts`:

0. ``u8 format version, u8 flags, u16 reserved, u32 number of spikes, u32 background seed``
1. background statistics (:meth:`.background.BackgroundModel.to_bytes`)
2. spike times: rANS of the bit-length classes of the time deltas, then their mantissa bits
3. centre channels: rANS, flat table over the channels
4. payload: the codec's (:meth:`SpikeSnippetCodec._encode_payload`)
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from spikeinterface_vqcompress.core.codec import Codec
from spikeinterface_vqcompress.core.errors import CorruptDataError
from spikeinterface_vqcompress.core.framing import pack_parts, unpack_parts
from spikeinterface_vqcompress.core.entropy.rans import build_frequency_table, decode_symbols, encode_symbols
from spikeinterface_vqcompress.core.codecs.spike_cae.background import (BackgroundModel, channel_offsets, estimate_background, remove_offsets,
                                                                       spike_window_mask, synthesise_background)
from spikeinterface_vqcompress.core.codecs.spike_cae.detection import (DetectionParameters, StreamingSpikeDetector, extract_snippets,
                                                                      neighbour_order)
from spikeinterface_vqcompress.core.codecs.spike_cae.footprint import (amplitude_window, apply_footprint_map, learn_footprint_map,
                                                                      spike_amplitudes)

_CHUNK_HEADER = struct.Struct("<BBHII")
#: Seconds at the start of a recording the footprint map is learned on.
FOOTPRINT_LEARNING_S = 10.0


def recording_channel_locations(recording):
    """``[[x_um, y_um], ...]`` of a SpikeInterface recording, or None when it has no probe/locations.

    A recording of one channel needs no geometry: it gets ``[[0.0, 0.0]]``.
    """
    try:
        locations = np.asarray(recording.get_channel_locations(), dtype=float)
    except (ValueError, AttributeError, KeyError, TypeError):
        locations = None
    if locations is None or locations.ndim != 2 or locations.shape[0] != recording.get_num_channels():
        return [[0.0, 0.0]] if recording.get_num_channels() == 1 else None
    return locations[:, :2].tolist()


def fill_channel_locations(params: dict, recording) -> list[str]:
    """Fill ``params["channel_locations"]`` from the recording when unset; the problems found (messages)."""
    num_channels = int(recording.get_num_channels())
    if params["channel_locations"] is None:
        locations = recording_channel_locations(recording)
        if locations is None:
            return ["channel locations: the recording has no probe; attach one (recording.set_probe(probe) "
                    "with probeinterface, or recording.set_dummy_probe_from_locations([[x_um, y_um], ...])) "
                    "or pass channel_locations=[[x_um, y_um], ...]"]
        params["channel_locations"] = locations
    elif len(params["channel_locations"]) != num_channels:
        return [f"one channel location per channel: channel_locations has {len(params['channel_locations'])} "
                f"for the recording's {num_channels} channels; pass one [x_um, y_um] per channel"]
    return []


def cannot_code(codec_id: str, problems, what="compress this recording") -> ValueError:
    """One ValueError listing every missing piece, numbered when there are several."""
    if len(problems) == 1:
        return ValueError(f"{codec_id} cannot {what}; it needs {problems[0]}")
    listed = "; ".join(f"({number}) {problem}" for number, problem in enumerate(problems, 1))
    return ValueError(f"{codec_id} cannot {what}; it needs {listed}")

#: Frozen prior of the bit length of spike-time deltas (exponential gaps of mean 4 to 20000
#: samples, mixed). Integers, so the table is identical on every machine.
TIME_CLASS_COUNTS = [299, 262, 435, 627, 755, 791, 792, 790, 787, 781, 768, 743, 695, 609, 468, 280, 103, 15,
                     1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1]
TIME_CLASS_TABLE = build_frequency_table(TIME_CLASS_COUNTS, 12)


def encode_times(times: np.ndarray) -> bytes:
    """Sorted sample indices -> rANS(bit length of each delta) + packed mantissa bits."""
    times = np.asarray(times, dtype=np.int64)
    deltas = np.diff(np.concatenate([[0], times]))
    if deltas.size and deltas.min() < 0:
        raise ValueError("spike times must be sorted")
    classes = np.array([int(delta).bit_length() for delta in deltas.tolist()], dtype=np.int64)
    if classes.size and classes.max() >= len(TIME_CLASS_COUNTS):
        raise ValueError("a chunk longer than 2**32 samples cannot be coded; use shorter chunks")
    bits = []
    for delta, length in zip(deltas.tolist(), classes.tolist()):
        if length > 1:  # the leading 1 is implied
            bits.extend((delta >> shift) & 1 for shift in range(length - 2, -1, -1))
    class_stream = encode_symbols(classes, TIME_CLASS_TABLE)
    return struct.pack("<I", len(class_stream)) + class_stream + np.packbits(np.array(bits, dtype=np.uint8)).tobytes()


def decode_times(data: bytes, count: int) -> np.ndarray:
    """Inverse of :func:`encode_times`."""
    if len(data) < 4:
        raise CorruptDataError("spike codec: spike-time stream is truncated")
    (length,) = struct.unpack_from("<I", data, 0)
    if 4 + length > len(data):
        raise CorruptDataError("spike codec: spike-time stream is truncated")
    classes = decode_symbols(data[4:4 + length], TIME_CLASS_TABLE, count)
    bits = np.unpackbits(np.frombuffer(data[4 + length:], dtype=np.uint8)).tolist()
    needed = int(np.maximum(classes - 1, 0).sum())
    if needed > len(bits) or len(bits) - needed >= 8:
        raise CorruptDataError("spike codec: spike-time mantissas do not match their classes; the data is damaged")
    deltas, position = [], 0
    for length in classes.tolist():
        if length == 0:
            deltas.append(0)
            continue
        value = 1
        for _ in range(length - 1):
            value = (value << 1) | bits[position]
            position += 1
        deltas.append(value)
    return np.cumsum(np.asarray(deltas, dtype=np.int64))


#: the band of the front end's causal band-pass where ``bandpass_hz="auto"`` meets an unfiltered recording
DEFAULT_BANDPASS_HZ = (300.0, 6000.0)
#: order of that Butterworth band-pass (second-order sections; an implant's analogue front end is ~2nd order)
BANDPASS_ORDER = 2


def check_bandpass(codec_id: str, bandpass_hz, sampling_frequency):
    """``bandpass_hz`` as stored: "auto", None or ``[low, high]`` in Hz (0 < low < high), and the
    sampling rate as a float or None; a ValueError naming the codec and the parameter otherwise."""
    if sampling_frequency is not None:
        sampling_frequency = float(sampling_frequency)
        if not sampling_frequency > 0:
            raise ValueError(f"codec '{codec_id}': parameter 'sampling_frequency' must be > 0 Hz, got {sampling_frequency:g}")
    if bandpass_hz is None or (isinstance(bandpass_hz, str) and bandpass_hz == "auto"):
        return bandpass_hz, sampling_frequency
    try:
        low, high = (float(value) for value in bandpass_hz)
    except (TypeError, ValueError):
        raise ValueError(f"codec '{codec_id}': parameter 'bandpass_hz' must be \"auto\", None or (low_hz, high_hz), "
                         f"got {bandpass_hz!r}") from None
    if not 0 < low < high:
        raise ValueError(f"codec '{codec_id}': parameter 'bandpass_hz' needs 0 < low < high, got ({low:g}, {high:g})")
    if sampling_frequency is not None and high >= sampling_frequency / 2:
        raise ValueError(f"codec '{codec_id}': parameter 'bandpass_hz' upper edge {high:g} Hz must be below the Nyquist "
                         f"frequency ({sampling_frequency / 2:g} Hz)")
    return [low, high], sampling_frequency


def resolve_bandpass(params: dict, recording) -> None:
    """Fill ``params["bandpass_hz"]`` ("auto": None for a recording annotated ``is_filtered`` by
    SpikeInterface, as MEArec's and band-passed ones are; otherwise :data:`DEFAULT_BANDPASS_HZ`, the upper
    edge kept below 0.45 of the rate) and ``params["sampling_frequency"]`` from a recording."""
    sampling_frequency = float(recording.get_sampling_frequency())
    if isinstance(params["bandpass_hz"], str) and params["bandpass_hz"] == "auto":
        low, high = DEFAULT_BANDPASS_HZ
        params["bandpass_hz"] = None if recording.get_annotation("is_filtered") else [low, min(high, 0.45 * sampling_frequency)]
    if params["bandpass_hz"] is not None and params.get("sampling_frequency") is None:
        params["sampling_frequency"] = sampling_frequency


def causal_bandpass(traces: np.ndarray, bandpass_hz, sampling_frequency: float) -> np.ndarray:
    """``traces`` (offsets removed) through a causal Butterworth band-pass, rounded back to int16.

    What an implant's front end would do before detection: the encoder codes (and the decoder
    rebuilds) the band-passed signal, so the local field potential below ``bandpass_hz[0]`` is not
    kept, while the channel offsets are (they are removed before and added back after). The filter
    starts each chunk in its steady state for the chunk's first sample.
    """
    from scipy.signal import butter, sosfilt, sosfilt_zi

    sos = butter(BANDPASS_ORDER, bandpass_hz, btype="band", fs=sampling_frequency, output="sos")
    block = np.asarray(traces, dtype=np.float32)
    state = sosfilt_zi(sos)[:, :, None] * block[:1][None, :, :] if block.shape[0] else None
    filtered = sosfilt(sos, block, axis=0, zi=state)[0] if state is not None else block
    info = np.iinfo(np.int16)
    return np.clip(np.round(filtered), info.min, info.max).astype(np.int16)


def taper_window(num_samples: int, taper_samples: int) -> np.ndarray:
    """1 in the middle, raised-cosine ramps of ``taper_samples`` at both ends (float32)."""
    window = np.ones(num_samples, dtype=np.float32)
    if taper_samples > 0:
        ramp = 0.5 - 0.5 * np.cos(np.pi * (np.arange(taper_samples) + 1) / (taper_samples + 1))
        window[:taper_samples] = ramp
        window[num_samples - taper_samples:] = ramp[::-1]
    return window


def uniform_table(num_symbols: int) -> np.ndarray:
    precision_bits = max(12, int(np.ceil(np.log2(max(num_symbols, 2)))) + 1)
    return build_frequency_table(np.ones(num_symbols, dtype=np.int64), precision_bits)


class SpikeSnippetCodec(Codec):
    """Base of the spike codecs: detection, snippets, times, channels and the synthesised background.

    A subclass sets :attr:`format_version` / :attr:`readable_format_versions`, stores the front-end
    parameters (``threshold_sd``, ``exclude_sweep_samples``, ``radius_um``, ``footprint_groups``,
    ``ar_order``, ``spatial_rank``, ``taper_samples``, ``channel_locations``,
    ``background_samples``) in ``self.params`` and implements :meth:`snippet_shape`,
    :attr:`paste_mode`, :meth:`_encode_payload` and :meth:`_decode_payload`;
    :meth:`_model_problems` adds what its coder needs to the up-front checks.
    """

    lossless = False
    supported_dtypes = ("int16",)
    #: Chunk format written, and the ones read.
    format_version = 2
    readable_format_versions = (2,)

    def snippet_shape(self) -> tuple[int, int, int]:
        """``(channels, samples, trough_sample)`` of one snippet group."""
        raise NotImplementedError

    @property
    def paste_mode(self) -> str:
        """"add" (decoded snippet added to the background), "mix" (added, but where snippets overlap their
        average is added: each snippet holds its neighbours' spikes too, which adding them all would
        double) or "replace" (blended in place of the background)."""
        raise NotImplementedError

    def _encode_payload(self, snippets: np.ndarray, noise_levels: np.ndarray, traces: np.ndarray) -> bytes:
        """Code ``snippets`` ``(n, groups * C, T)`` int16 (offsets removed) into the chunk's payload;
        ``noise_levels`` are the detector's per channel, ``traces`` the chunk (offsets removed)."""
        raise NotImplementedError

    def _decode_payload(self, payload: bytes, num_spikes: int, num_channels: int) -> np.ndarray:
        """Inverse of :meth:`_encode_payload`: ``(n, groups * C, T)`` float snippets in trace units."""
        raise NotImplementedError

    def _dtype_problems(self, recording) -> list[str]:
        """The traces' dtype, when the codec does not take it (a message, for :func:`cannot_code`)."""
        dtype = np.dtype(recording.get_dtype())
        if dtype.name in self.supported_dtypes:
            return []
        return [f"int16 traces (the recording's are {dtype.name}): spikeinterface.preprocessing.scale_to_int16(recording), "
                f"or recording.astype('int16') for data already in integer units"]

    def _model_problems(self, num_channels: int) -> list[str]:
        """What the payload coder still needs before it can code ``num_channels`` channels (messages)."""
        return []

    def _check_ready(self, num_channels: int, what: str = "code these traces"):
        """The checks of :meth:`with_recording` for a codec configured by hand, on ``num_channels`` channels."""
        problems = []
        locations = self.params["channel_locations"]
        if locations is None:
            problems.append("channel locations: pass channel_locations=[[x_um, y_um], ...], or compress a recording with "
                            "a probe through spikeinterface_vqcompress.compress(recording, codec=...), which fills them")
        elif len(locations) != num_channels:
            problems.append(f"one channel location per channel: channel_locations has {len(locations)} for the "
                            f"{num_channels} channels of the traces")
        problems.extend(self._model_problems(num_channels))
        channels, _, _ = self.snippet_shape()
        groups = self.params["footprint_groups"]
        if channels * groups > num_channels:
            problems.append(f"at least {channels * groups} channels ({channels}-channel snippets x footprint_groups={groups}; "
                            f"the traces have {num_channels}): lower footprint_groups, use model='identity' with fewer "
                            f"snippet_channels, or a codec that needs no geometry (codec='archive' or 'storage')")
        if problems:
            raise cannot_code(self.codec_id, problems, what)

    def _groups(self, num_channels: int):
        """Per peak channel, the ``footprint_groups`` channel groups: ``(num_channels, groups, C)``."""
        channels, _, _ = self.snippet_shape()
        groups = self.params["footprint_groups"]
        order = neighbour_order(self.params["channel_locations"])[:, : channels * groups]
        return order.reshape(num_channels, groups, channels)

    # -- encode / decode -------------------------------------------------------------------------
    def detect(self, traces: np.ndarray):
        """Run the encoder's detection on one chunk: ``(times, peak_channels, snippets, noise_levels)``
        with snippets ``(n, groups * C, T)`` in trace units (int16) less each channel's offset
        (:func:`.background.channel_offsets`)."""
        traces = self.check_traces(traces)
        self._check_ready(traces.shape[1])
        return self._detect(self._bandpassed(remove_offsets(traces, channel_offsets(traces))))

    def _bandpassed(self, centred: np.ndarray) -> np.ndarray:
        """The chunk through the front end's causal band-pass when ``bandpass_hz`` is set (and resolved:
        "auto" left unresolved, as for a codec used on bare traces, means none)."""
        bandpass = self.params.get("bandpass_hz")
        if bandpass is None or isinstance(bandpass, str):
            return centred
        if self.params.get("sampling_frequency") is None:
            raise ValueError(f"{self.codec_id}: bandpass_hz={bandpass} needs sampling_frequency=...; compress a recording "
                             f"(its rate fills it) or pass it")
        return causal_bandpass(centred, bandpass, self.params["sampling_frequency"])

    def _detect(self, centred: np.ndarray, use_footprint_map: bool = True):
        """Detection on a chunk whose offsets are removed (spikes centred by the footprint map when the
        codec has one and ``use_footprint_map``, else on their peak channels)."""
        channels, samples, trough = self.snippet_shape()
        parameters = DetectionParameters(threshold_sd=self.params["threshold_sd"], exclude_sweep_samples=self.params["exclude_sweep_samples"],
                                         radius_um=self.params["radius_um"])
        detector = StreamingSpikeDetector(self.params["channel_locations"], channels * self.params["footprint_groups"], samples,
                                          trough, parameters)
        times, peak_channels, snippets = detector.process(centred, final=True)
        footprint_map = self.params.get("footprint_map") if use_footprint_map else None
        if footprint_map is not None and len(times):
            centres = apply_footprint_map(footprint_map, self._amplitudes(centred, times, peak_channels), peak_channels)
            moved = centres != peak_channels
            if moved.any():
                groups = self._groups(centred.shape[1])[centres[moved]].reshape(int(moved.sum()), -1)
                snippets[moved] = extract_snippets(centred, times[moved], groups, samples, trough)
            peak_channels = centres
        return times, peak_channels, snippets, detector.noise_levels

    def _amplitudes(self, centred: np.ndarray, times: np.ndarray, peak_channels: np.ndarray) -> np.ndarray:
        """:func:`.footprint.spike_amplitudes` over each spike's ``2 x`` snippet channels nearest its peak."""
        channels, samples, _ = self.snippet_shape()
        width = min(2 * channels * self.params["footprint_groups"], centred.shape[1])
        neighbourhoods = neighbour_order(self.params["channel_locations"])[peak_channels, :width]
        return spike_amplitudes(centred, times, neighbourhoods, amplitude_window(samples))

    def learn_footprint_map(self, recording, learning_s: float = FOOTPRINT_LEARNING_S) -> dict:
        """The footprint map (:mod:`.footprint`) of ``recording``, learned on its first ``learning_s`` seconds.

        Parameters
        ----------
        recording : BaseRecording
            The recording about to be encoded (its first segment is read).
        learning_s : float, default: FOOTPRINT_LEARNING_S
            Seconds read from the start (the whole segment when shorter).

        Returns
        -------
        dict
            The ``footprint_map`` parameter: one cluster per channel at most.
        """
        end = min(int(round(learning_s * recording.get_sampling_frequency())), recording.get_num_samples(segment_index=0))
        traces = self.check_traces(recording.get_traces(start_frame=0, end_frame=end, segment_index=0))
        self._check_ready(traces.shape[1])
        centred = self._bandpassed(remove_offsets(traces, channel_offsets(traces)))
        times, peak_channels, _, _ = self._detect(centred, use_footprint_map=False)
        return learn_footprint_map(self._amplitudes(centred, times, peak_channels), num_clusters=traces.shape[1],
                                   peak_channels=peak_channels)

    def encode(self, traces):
        traces = self.check_traces(traces)
        num_samples, num_channels = traces.shape
        self._check_ready(num_channels, "encode")
        offsets = channel_offsets(traces)
        traces = remove_offsets(traces, offsets)  # detection, snippets and background see a zero-median signal
        traces = self._bandpassed(traces)
        times, peak_channels, snippets, noise_levels = self._detect(traces)
        channels, samples, trough = self.snippet_shape()
        groups = self._groups(num_channels)[peak_channels].reshape(len(times), channels * self.params["footprint_groups"])  # (n, G*C)
        mask = spike_window_mask(num_samples, num_channels, times, groups, -trough, samples)
        background = estimate_background(traces, self.params["ar_order"], self.params["spatial_rank"], exclude_mask=mask,
                                         max_samples=self.params["background_samples"])
        background.offsets = offsets
        payload = self._encode_payload(snippets, noise_levels, traces)
        seed = zlib.crc32(times.astype("<i8").tobytes() + payload) & 0xFFFFFFFF
        header = _CHUNK_HEADER.pack(self.format_version, 0, 0, len(times), seed)
        return pack_parts([header, background.to_bytes(), encode_times(times),
                           encode_symbols(peak_channels, uniform_table(num_channels)), payload])

    def decode(self, data, num_samples, num_channels, dtype):
        name = self.codec_id
        header, background_bytes, time_bytes, channel_bytes, payload = unpack_parts(data, 5, name)
        if len(header) != _CHUNK_HEADER.size:
            raise CorruptDataError(f"{name}: chunk header has the wrong size")
        version, _flags, _reserved, num_spikes, seed = _CHUNK_HEADER.unpack(header)
        if version not in self.readable_format_versions:
            raise CorruptDataError(f"{name}: chunk format version {version} is not supported (this version reads "
                                   f"{', '.join(map(str, self.readable_format_versions))}); the data is damaged or needs a newer package")
        self._check_ready(num_channels, "decode")
        if num_spikes > num_samples * num_channels:
            raise CorruptDataError(f"{name}: the chunk claims more spikes than samples")
        background = BackgroundModel.from_bytes(background_bytes, num_channels, allow_offsets=version >= 2)
        times = decode_times(time_bytes, num_spikes)
        peak_channels = decode_symbols(channel_bytes, uniform_table(num_channels), num_spikes)
        if num_spikes and (times[-1] >= num_samples or peak_channels.max() >= num_channels):
            raise CorruptDataError(f"{name}: spike times or channels fall outside the chunk; the data is damaged")
        channels, samples, trough = self.snippet_shape()
        snippets = self._decode_payload(payload, num_spikes, num_channels)
        traces = synthesise_background(background, num_samples, seed)
        groups = self._groups(num_channels)[peak_channels].reshape(num_spikes, channels * self.params["footprint_groups"])
        traces = self._paste(traces, times, groups, snippets, trough)
        info = np.iinfo(np.dtype(dtype))
        if background.has_offsets:  # added in integers: a recording at an offset decodes as the same one at 0, shifted
            shifted = np.round(traces).astype(np.int64) + background.offsets.astype(np.int64)[None, :]
            return np.clip(shifted, info.min, info.max).astype(dtype)
        return np.clip(np.round(traces), info.min, info.max).astype(dtype)

    def _paste(self, traces, times, groups, snippets, trough):
        """Place snippets ``(n, K, T)`` at ``times`` on channels ``groups`` ``(n, K)``."""
        if len(times) == 0:
            return traces
        num_samples, num_channels = traces.shape
        length = snippets.shape[2]
        window = taper_window(length, self.params["taper_samples"])
        sample_index = times[:, None] - trough + np.arange(length)[None, :]  # (n, T)
        inside = (sample_index >= 0) & (sample_index < num_samples)
        flat = (sample_index[:, None, :] * num_channels + groups[:, :, None])  # (n, K, T)
        weights = np.broadcast_to((window[None, :] * inside)[:, None, :], flat.shape)
        select = weights > 0
        flat, weights, values = flat[select], weights[select], snippets[select]
        if self.paste_mode == "add":
            np.add.at(traces.reshape(-1), flat, weights * values)
            return traces
        numerator = np.zeros(traces.size, dtype=np.float64)
        denominator = np.zeros(traces.size, dtype=np.float64)
        np.add.at(numerator, flat, weights * values)
        np.add.at(denominator, flat, weights)
        touched = denominator > 0
        output = traces.reshape(-1).astype(np.float64)
        if self.paste_mode == "mix":  # overlapping snippets averaged (each holds its neighbours' spikes), then added
            output[touched] += numerator[touched] / np.maximum(denominator[touched], 1.0)
            return output.reshape(num_samples, num_channels)
        blend = np.minimum(denominator[touched], 1.0)
        output[touched] = (1 - blend) * output[touched] + blend * numerator[touched] / denominator[touched]
        return output.reshape(num_samples, num_channels)

