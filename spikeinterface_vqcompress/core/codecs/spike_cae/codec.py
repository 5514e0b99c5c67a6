"""``spike-cae``: a recording codec that sends spikes as code indices and the rest as noise statistics.

Encoder (per container chunk, what an implant would run per block; see :mod:`.detection`):
detection (running noise level, negative threshold, locally exclusive troughs on the probe geometry)
-> snippets cut around each trough (peak channel first, then neighbours by distance)
-> the spike CAE's encoder and vector quantiser (:mod:`.model`, 16 indices per spike)
-> rANS with the frozen per-position tables shipped with the model (code indices), a frozen table
for the delta-coded spike times (bit-length class, then raw mantissa bits) and a flat table for the
peak channels; plus the background statistics of :mod:`.background` (level and AR spectrum per
channel).

Decoder: synthesised background (deterministic, seeded from the chunk) + every decoded snippet
placed at its time and channels with a raised-cosine taper (added to the background for the CAE,
whose output is a denoised spike; blended in place of the background for raw snippets).

``model="identity"`` sends the raw int16 snippets (zlib) instead of CAE indices: it measures what
detection and background synthesis alone cost the sorting, separately from the CAE.

The rebuilt recording is *not* the recorded one between spikes: the config says
``"background": "synthesised"`` and the container header carries it.

The recording's DC offset (e.g. ~2048 units of unsigned ADC data stored as int16) is kept: the
encoder measures each channel's median (:func:`.background.channel_offsets`), subtracts it before
detection, snippets and background statistics, and sends it as an int16 per channel in the
background statistics (2 bytes per channel per chunk, counted in the chunk's bytes; nothing when
every offset is 0); the decoder adds it back after pasting the spikes.

What the codec needs from a recording (channel locations, a gain to uV, enough channels for the
snippet shape, a sampling rate near the model's, int16 traces) is checked in one place,
:meth:`SpikeCAECodec.with_recording`, before any encoding: one ValueError lists everything missing
and how to give it.

Chunk layout (all little-endian), framed by :func:`~spikeinterface_vqcompress.core.framing.pack_parts`:

0. ``u8 format version, u8 flags, u16 reserved, u32 number of spikes, u32 background seed``
   (format 2: the background statistics may carry the offsets; format 1 chunks, written before
   the offsets existed, still decode, with offset 0)
1. background statistics (:meth:`.background.BackgroundModel.to_bytes`)
2. spike times: rANS of the bit-length classes of the time deltas, then their mantissa bits
3. peak channels: rANS, flat table over the channels
4. payload: rANS of the code indices (one frozen table per latent position), or zlib'd int16
   snippets for ``model="identity"``
"""

from __future__ import annotations

import struct
import zlib

import numpy as np

from spikeinterface_vqcompress.core import weights
from spikeinterface_vqcompress.core.codec import Codec, HardwareProfile, check_range
from spikeinterface_vqcompress.core.errors import CorruptDataError
from spikeinterface_vqcompress.core.framing import pack_parts, unpack_parts
from spikeinterface_vqcompress.core.threads import single_torch_thread
from spikeinterface_vqcompress.core.entropy.rans import build_frequency_table, decode_symbols, decode_with_tables, encode_symbols, encode_with_tables
from spikeinterface_vqcompress.core.codecs.spike_cae.background import (BackgroundModel, channel_offsets, estimate_background, remove_offsets,
                                                                       spike_window_mask, synthesise_background)
from spikeinterface_vqcompress.core.codecs.spike_cae.detection import DetectionParameters, StreamingSpikeDetector, neighbour_order

#: Chunk format written: 2 carries the per-channel offsets in the background statistics.
FORMAT_VERSION = 2
#: Chunk formats read (1: before the offsets; decoded with offset 0).
READABLE_FORMAT_VERSIONS = (1, 2)
_CHUNK_HEADER = struct.Struct("<BBHII")

#: A CAE model accepts recordings sampled within this factor of the rate it was trained at (a snippet
#: then spans within 25 % of the duration the model learnt).
SAMPLING_FREQUENCY_RATIO_LIMIT = 1.25


def _recording_channel_locations(recording):
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


def _cannot_code(problems, what="compress this recording") -> ValueError:
    """One ValueError listing every missing piece, numbered when there are several."""
    if len(problems) == 1:
        return ValueError(f"spike-cae cannot {what}; it needs {problems[0]}")
    listed = "; ".join(f"({number}) {problem}" for number, problem in enumerate(problems, 1))
    return ValueError(f"spike-cae cannot {what}; it needs {listed}")

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
        raise CorruptDataError("spike-cae: spike-time stream is truncated")
    (length,) = struct.unpack_from("<I", data, 0)
    if 4 + length > len(data):
        raise CorruptDataError("spike-cae: spike-time stream is truncated")
    classes = decode_symbols(data[4:4 + length], TIME_CLASS_TABLE, count)
    bits = np.unpackbits(np.frombuffer(data[4 + length:], dtype=np.uint8)).tolist()
    needed = int(np.maximum(classes - 1, 0).sum())
    if needed > len(bits) or len(bits) - needed >= 8:
        raise CorruptDataError("spike-cae: spike-time mantissas do not match their classes; the data is damaged")
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


def default_model(num_channels: int) -> str:
    """The shipped model ``compress()`` uses for a recording of ``num_channels`` channels.

    Below 64 channels "nn32-4x64-r2", chosen on a tuning recording (Neuronexus-32 seed 203, neither
    trained on nor reported; docs/spike_cae.md) by the mean accuracy of tridesclous2 and
    spykingcircus2; from 64 channels "np64-15x96" (see
    :data:`spikeinterface_vqcompress.core.weights.SPIKE_CAE_DEFAULT_BY_RECORDING_CHANNELS`).
    """
    return weights.default_model("spike-cae", recording_num_channels=num_channels)


class SpikeCAECodec(Codec):
    """Spike snippets through the deep compressive autoencoder (Wu et al. 2018), background as
    noise statistics.

    Parameters
    ----------
    model : str | None, default: None
        A shipped spike CAE name (``spikecae.model.SHIPPED_MODELS``), a weights path, "identity"
        (raw int16 snippets, to measure the detection and background stages alone) or None for the
        shipped default of the recording's channel count (:func:`default_model`: "np64-15x96"
        from 64 channels, "nn32-4x64-r2" below; chosen when the recording is known).
    threshold_sd : float, default: 4.5
        Detection threshold in noise standard deviations (noise from the running MAD / 0.6745).
        Containers written before 0.2 call it ``threshold``; they still decode.
    exclude_sweep_samples : int, default: 8
        Half-width (samples) of the non-maximum suppression window; smaller keeps more overlapping
        spikes.
    radius_um : float, default: 50.0
        Spatial radius of the non-maximum suppression.
    footprint_groups : int, default: 1
        Channel groups sent per spike: group ``g`` holds the channels ranked ``g*C .. (g+1)*C - 1``
        by distance from the peak channel (``C`` = snippet channels). More groups widen the spatial
        footprint at the cost of more bits.
    ar_order : int, default: 6
        AR order of the background spectrum (0: white noise at the measured level).
    spatial_rank : int, default: 0
        Common factors of the background's channel correlation.
    paste : str, default: "auto"
        "add" (decoded snippet added to the background: right for the CAE's denoised output),
        "replace" (blended in place of the background: right for raw snippets) or "auto".
    taper_samples : int, default: 4
        Raised-cosine ramp at both ends of a pasted snippet.
    snippet_channels, snippet_samples, trough_sample : int | None, default: None
        Snippet shape for ``model="identity"`` (taken from the model otherwise; default 4 x 64,
        trough at 21, or 15 x 48 trough at 16 for probes of 64 channels or more).
    channel_locations : list | None, default: None
        ``[[x, y], ...]`` in um; :func:`~spikeinterface_vqcompress.compress` fills it from the
        recording.
    gain_to_uV : float | None, default: None
        Trace units to uV (the CAE works in uV); filled from the recording by ``compress``.
    background_samples : int | None, default: None
        Fit the background statistics on about this many samples per chunk (evenly spaced
        512-sample segments) instead of all of them: cheaper for the encoder (see the throughput
        benchmark); None uses the whole chunk.
    """

    codec_id = "spike-cae"
    lossless = False
    supported_dtypes = ("int16",)
    description = "spike snippets -> VQ compressive autoencoder indices + synthesised background (Wu et al. 2018)"

    def __init__(self, model: str | None = None, threshold_sd: float = 4.5, exclude_sweep_samples: int = 8,
                 radius_um: float = 50.0, footprint_groups: int = 1, ar_order: int = 6, spatial_rank: int = 0,
                 paste: str = "auto", taper_samples: int = 4, snippet_channels: int | None = None,
                 snippet_samples: int | None = None, trough_sample: int | None = None,
                 channel_locations: list[list[float]] | None = None, gain_to_uV: float | None = None,
                 background_samples: int | None = None):
        codec_id = self.codec_id
        if paste not in ("auto", "add", "replace"):
            raise ValueError(f"codec 'spike-cae': parameter 'paste' must be one of 'auto', 'add', 'replace', got {paste!r}")
        check_range(codec_id, "threshold_sd", float(threshold_sd), 0, exclusive_minimum=True, unit="noise standard deviations")
        check_range(codec_id, "exclude_sweep_samples", int(exclude_sweep_samples), 0, unit="samples")
        check_range(codec_id, "radius_um", float(radius_um), 0, unit="um")
        check_range(codec_id, "footprint_groups", int(footprint_groups), 1, note="channel groups sent per spike")
        check_range(codec_id, "ar_order", int(ar_order), 0, 32, note="AR order of the background spectrum")
        check_range(codec_id, "spatial_rank", int(spatial_rank), 0, 255, note="common factors of the background")
        check_range(codec_id, "taper_samples", int(taper_samples), 0, unit="samples")
        for name, value in (("snippet_channels", snippet_channels), ("snippet_samples", snippet_samples)):
            check_range(codec_id, name, None if value is None else int(value), 1, allow_none=True)
        if trough_sample is not None:
            last = None if snippet_samples is None else int(snippet_samples) - 1
            check_range(codec_id, "trough_sample", int(trough_sample), 0, last, allow_none=True,
                        note="a sample inside the snippet" if last is not None else "")
        if gain_to_uV is not None and not (np.isfinite(float(gain_to_uV)) and float(gain_to_uV) != 0):
            raise ValueError(f"codec 'spike-cae': parameter 'gain_to_uV' must be a non-zero number of uV per trace unit "
                             f"or None (filled from the recording), got {gain_to_uV!r}")
        check_range(codec_id, "background_samples", None if background_samples is None else int(background_samples), 1,
                    allow_none=True, unit="samples per chunk")
        if channel_locations is not None:
            channel_locations = [[float(value) for value in location[:2]] for location in np.asarray(channel_locations).tolist()]
        super().__init__(
            model=None if model is None else str(model), threshold_sd=float(threshold_sd),
            exclude_sweep_samples=int(exclude_sweep_samples), radius_um=float(radius_um),
            footprint_groups=int(footprint_groups), ar_order=int(ar_order), spatial_rank=int(spatial_rank), paste=paste,
            taper_samples=int(taper_samples),
            snippet_channels=None if snippet_channels is None else int(snippet_channels),
            snippet_samples=None if snippet_samples is None else int(snippet_samples),
            trough_sample=None if trough_sample is None else int(trough_sample),
            channel_locations=channel_locations, gain_to_uV=None if gain_to_uV is None else float(gain_to_uV),
            background_samples=None if background_samples is None else int(background_samples),
            background="synthesised",
        )
        self._model = None
        self._tables = None
        if self.params["model"] not in (None, "identity"):
            self.model_sha256 = self._load_model_hash()

    # Codec.from_config: the config's "background": "synthesised" is for information only, and
    # containers written before 0.2 call threshold_sd "threshold".
    informational_keys = ("background",)
    renamed_parameters = {"threshold": "threshold_sd"}

    # -- model ---------------------------------------------------------------------------------
    @property
    def is_identity(self) -> bool:
        return self.params["model"] == "identity"

    def _load_model_hash(self):
        from spikeinterface_vqcompress.core.codecs.spike_cae.model import cached_spike_cae

        return cached_spike_cae(self.params["model"])[2]

    @property
    def model(self):
        """The spike CAE (loaded once), or None for ``model="identity"``."""
        if self.is_identity:
            return None
        if self._model is None:
            name = self.params["model"]
            if name is None:
                raise ValueError("spike-cae: no model chosen; pass model=... or let compress() pick the default for the probe")
            from spikeinterface_vqcompress.core.codecs.spike_cae.model import cached_spike_cae

            self._model, self._tables, _ = cached_spike_cae(name)
        return self._model

    def snippet_shape(self) -> tuple[int, int, int]:
        """``(channels, samples, trough_sample)`` of one snippet group."""
        if self.is_identity:
            channels = self.params["snippet_channels"] or 4
            samples = self.params["snippet_samples"] or 64
            trough = self.params["trough_sample"]
            return channels, samples, samples // 3 if trough is None else trough
        model = self.model
        return model.num_channels, model.num_samples, model.trough_sample

    @property
    def paste_mode(self) -> str:
        if self.params["paste"] != "auto":
            return self.params["paste"]
        return "replace" if self.is_identity else "add"

    # -- the recording's context ---------------------------------------------------------------
    def with_recording(self, recording) -> "SpikeCAECodec":
        """A copy with ``channel_locations``, ``gain_to_uV`` and (if unset) the default model filled
        from a SpikeInterface recording; ``compress()`` calls it before encoding anything.

        Everything the codec needs and the recording lacks is checked here and reported in one
        ValueError that lists each missing piece and how to give it: channel locations (a probe;
        a recording of one channel needs none), a gain to uV (CAE models), at least
        ``snippet channels x footprint_groups`` channels, a sampling rate within a factor
        :data:`SAMPLING_FREQUENCY_RATIO_LIMIT` of the one the model was trained at (CAE models)
        and int16 traces.
        """
        params = dict(self.params)
        params.pop("background", None)
        num_channels = int(recording.get_num_channels())
        problems = []
        if params["channel_locations"] is None:
            locations = _recording_channel_locations(recording)
            if locations is None:
                problems.append("channel locations: the recording has no probe; attach one (recording.set_probe(probe) "
                                "with probeinterface, or recording.set_dummy_probe_from_locations([[x_um, y_um], ...])) "
                                "or pass channel_locations=[[x_um, y_um], ...]")
            else:
                params["channel_locations"] = locations
        elif len(params["channel_locations"]) != num_channels:
            problems.append(f"one channel location per channel: channel_locations has {len(params['channel_locations'])} "
                            f"for the recording's {num_channels} channels; pass one [x_um, y_um] per channel")
        if params["model"] is None:
            params["model"] = default_model(num_channels)
        identity = params["model"] == "identity"
        gains = np.asarray(recording.get_channel_gains(), dtype=float) if recording.has_scaleable_traces() else None
        if params["gain_to_uV"] is None and gains is not None and np.allclose(gains, gains[0]):
            params["gain_to_uV"] = float(gains[0])  # informative for model="identity", which codes trace units
        elif params["gain_to_uV"] is None and not identity:
            if gains is None:
                problems.append("a gain to uV (the CAE works in uV): the recording has no channel gains; set them "
                                "(recording.set_channel_gains(uV_per_unit), e.g. 0.195 for Intan) or pass gain_to_uV=...")
            else:
                problems.append(f"one gain to uV for every channel (the recording's gains range from {gains.min():g} to "
                                f"{gains.max():g} uV per unit): scale the recording to one gain first or pass gain_to_uV=...")
        groups = params["footprint_groups"]
        if identity:  # fill only what the caller left unset
            shape = (15, 48, 16) if num_channels >= 64 else (4, 64, 21)
            shape = (min(shape[0], max(num_channels // groups, 1)), *shape[1:])  # a small recording gets narrower snippets
            if params["snippet_samples"] is not None and params["trough_sample"] is None:
                shape = (*shape[:2], params["snippet_samples"] // 3)
            for key, value in zip(("snippet_channels", "snippet_samples", "trough_sample"), shape):
                if params[key] is None:
                    params[key] = value
            snippet_channels, needed_for = params["snippet_channels"], f"snippet_channels={params['snippet_channels']}"
        else:
            from spikeinterface_vqcompress.core.codecs.spike_cae.model import cached_spike_cae

            model = cached_spike_cae(params["model"])[0]
            snippet_channels, needed_for = model.num_channels, f"model {params['model']}"
            trained_hz, sampling_frequency = float(model.sampling_frequency_hz), float(recording.sampling_frequency)
            if not 1 / SAMPLING_FREQUENCY_RATIO_LIMIT <= sampling_frequency / trained_hz <= SAMPLING_FREQUENCY_RATIO_LIMIT:
                problems.append(
                    f"a sampling rate near the {trained_hz:g} Hz {needed_for} was trained at "
                    f"({trained_hz / SAMPLING_FREQUENCY_RATIO_LIMIT:g} to {trained_hz * SAMPLING_FREQUENCY_RATIO_LIMIT:g} Hz; "
                    f"the recording has {sampling_frequency:g} Hz, so a {model.num_samples}-sample snippet would span "
                    f"{1000 * model.num_samples / sampling_frequency:.2f} ms instead of {1000 * model.num_samples / trained_hz:.2f} ms): "
                    f"resample it (spikeinterface.preprocessing.resample(recording, {trained_hz:g})) or use model='identity'")
        needed = snippet_channels * groups
        if needed > num_channels:
            per_group = f" ({snippet_channels}-channel snippets x footprint_groups={groups})" if groups > 1 else ""
            problems.append(f"at least {needed} channels for {needed_for}{per_group} (the recording has {num_channels}): use a "
                            f"recording with more channels, " + ("lower footprint_groups or snippet_channels, " if identity else
                                                                  "model='identity' (raw snippets of any width), ")
                            + "or a codec that needs no geometry (codec='archive' or 'storage')")
        dtype = np.dtype(recording.get_dtype())
        if dtype.name not in self.supported_dtypes:
            problems.append(f"int16 traces (the recording's are {dtype.name}): spikeinterface.preprocessing.scale_to_int16(recording), "
                            f"or recording.astype('int16') for data already in integer units")
        if problems:
            raise _cannot_code(problems)
        return type(self)(**params)

    def _check_ready(self, num_channels: int, what: str = "code these traces"):
        """The checks of :meth:`with_recording` for a codec configured by hand, on ``num_channels`` channels."""
        problems = []
        locations = self.params["channel_locations"]
        if locations is None:
            problems.append("channel locations: pass channel_locations=[[x_um, y_um], ...], or compress a recording with "
                            "a probe through spikeinterface_vqcompress.compress(recording, codec='spike-cae'), which fills them")
        elif len(locations) != num_channels:
            problems.append(f"one channel location per channel: channel_locations has {len(locations)} for the "
                            f"{num_channels} channels of the traces")
        if not self.is_identity and self.params["gain_to_uV"] is None:
            problems.append("a gain to uV (the CAE works in uV): pass gain_to_uV=..., or compress a recording with channel gains")
        channels, _, _ = self.snippet_shape()
        groups = self.params["footprint_groups"]
        if channels * groups > num_channels:
            problems.append(f"at least {channels * groups} channels ({channels}-channel snippets x footprint_groups={groups}; "
                            f"the traces have {num_channels}): lower footprint_groups, use model='identity' with fewer "
                            f"snippet_channels, or a codec that needs no geometry (codec='archive' or 'storage')")
        if problems:
            raise _cannot_code(problems, what)

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
        return self._detect(remove_offsets(traces, channel_offsets(traces)))

    def _detect(self, centred: np.ndarray):
        """Detection on a chunk whose offsets are removed."""
        channels, samples, trough = self.snippet_shape()
        parameters = DetectionParameters(threshold_sd=self.params["threshold_sd"], exclude_sweep_samples=self.params["exclude_sweep_samples"],
                                         radius_um=self.params["radius_um"])
        detector = StreamingSpikeDetector(self.params["channel_locations"], channels * self.params["footprint_groups"], samples,
                                          trough, parameters)
        times, peak_channels, snippets = detector.process(centred, final=True)
        return times, peak_channels, snippets, detector.noise_levels

    def encode(self, traces):
        traces = self.check_traces(traces)
        num_samples, num_channels = traces.shape
        self._check_ready(num_channels, "encode")
        offsets = channel_offsets(traces)
        traces = remove_offsets(traces, offsets)  # detection, snippets and background see a zero-median signal
        times, peak_channels, snippets, _ = self._detect(traces)
        channels, samples, trough = self.snippet_shape()
        groups = self._groups(num_channels)[peak_channels].reshape(len(times), channels * self.params["footprint_groups"])  # (n, G*C)
        mask = spike_window_mask(num_samples, num_channels, times, groups, -trough, samples)
        background = estimate_background(traces, self.params["ar_order"], self.params["spatial_rank"], exclude_mask=mask,
                                         max_samples=self.params["background_samples"])
        background.offsets = offsets
        if self.is_identity:
            payload = zlib.compress(np.ascontiguousarray(snippets, dtype="<i2").tobytes(), 6)
        else:
            num_groups = self.params["footprint_groups"]
            grouped = snippets.reshape(len(times) * num_groups, channels, samples).astype(np.float32) * self.params["gain_to_uV"]
            indices = self.model.encode_indices(grouped) if len(grouped) else np.zeros((0, self.model.codes_per_spike), dtype=np.int64)
            payload = encode_with_tables(indices, self._tables)
        seed = zlib.crc32(times.astype("<i8").tobytes() + payload) & 0xFFFFFFFF
        header = _CHUNK_HEADER.pack(FORMAT_VERSION, 0, 0, len(times), seed)
        return pack_parts([header, background.to_bytes(), encode_times(times),
                           encode_symbols(peak_channels, uniform_table(num_channels)), payload])

    def decode(self, data, num_samples, num_channels, dtype):
        header, background_bytes, time_bytes, channel_bytes, payload = unpack_parts(data, 5, self.codec_id)
        if len(header) != _CHUNK_HEADER.size:
            raise CorruptDataError("spike-cae: chunk header has the wrong size")
        version, _flags, _reserved, num_spikes, seed = _CHUNK_HEADER.unpack(header)
        if version not in READABLE_FORMAT_VERSIONS:
            raise CorruptDataError(f"spike-cae: chunk format version {version} is not supported (this version reads "
                                   f"{', '.join(map(str, READABLE_FORMAT_VERSIONS))}); the data is damaged or needs a newer package")
        self._check_ready(num_channels, "decode")
        if num_spikes > num_samples * num_channels:
            raise CorruptDataError("spike-cae: the chunk claims more spikes than samples")
        background = BackgroundModel.from_bytes(background_bytes, num_channels, allow_offsets=version >= 2)
        times = decode_times(time_bytes, num_spikes)
        peak_channels = decode_symbols(channel_bytes, uniform_table(num_channels), num_spikes)
        if num_spikes and (times[-1] >= num_samples or peak_channels.max() >= num_channels):
            raise CorruptDataError("spike-cae: spike times or channels fall outside the chunk; the data is damaged")
        channels, samples, trough = self.snippet_shape()
        num_groups = self.params["footprint_groups"]
        if self.is_identity:
            try:
                raw = zlib.decompress(payload)
            except zlib.error as error:
                raise CorruptDataError(f"spike-cae: snippet payload could not be decompressed ({error})") from error
            expected = num_spikes * num_groups * channels * samples * 2
            if len(raw) != expected:
                raise CorruptDataError(f"spike-cae: snippet payload holds {len(raw)} bytes where {expected} are expected")
            snippets = np.frombuffer(raw, dtype="<i2").reshape(num_spikes, num_groups * channels, samples).astype(np.float32)
        else:
            indices = decode_with_tables(payload, self._tables if self._tables is not None else self.model.frequency_tables(),
                                         num_spikes * num_groups)
            with single_torch_thread():
                decoded = self.model.decode_indices(indices) if len(indices) else np.zeros((0, channels, samples), dtype=np.float32)
            snippets = decoded.reshape(num_spikes, num_groups * channels, samples) / self.params["gain_to_uV"]
        traces = synthesise_background(background, num_samples, seed)
        groups = self._groups(num_channels)[peak_channels].reshape(num_spikes, channels * num_groups)
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
        blend = np.minimum(denominator[touched], 1.0)
        output[touched] = (1 - blend) * output[touched] + blend * numerator[touched] / denominator[touched]
        return output.reshape(num_samples, num_channels)

    # -- hardware --------------------------------------------------------------------------------
    def encoder_macs_per_snippet(self) -> tuple[int, int]:
        """Multiply-accumulates and parameters of the CAE encoder + nearest-code search for one snippet
        group, counted from the model's layers (0, 0 for ``model="identity"``)."""
        if self.is_identity:
            return 0, 0
        import torch

        model = self.model
        macs = [0]
        used = {}

        def hook(module, inputs, output):
            if isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d)):
                out_length = output.shape[-1]
                macs[0] += module.out_channels * (module.in_channels // module.groups) * module.kernel_size[0] * out_length
                used[id(module)] = module
            elif isinstance(module, torch.nn.Linear):
                macs[0] += module.in_features * module.out_features
                used[id(module)] = module

        handles = [module.register_forward_hook(hook) for module in model.modules()
                   if isinstance(module, (torch.nn.Conv1d, torch.nn.ConvTranspose1d, torch.nn.Linear))]
        try:
            with torch.no_grad():
                model.encode_latent(torch.zeros(1, model.num_channels, model.num_samples))
        finally:
            for handle in handles:
                handle.remove()
        code_dim = getattr(model, "code_dim", model.num_samples // 4)
        search = model.codes_per_spike * model.codebook_size * code_dim  # nearest codeword, squared distances
        parameters = sum(parameter.numel() for module in used.values() for parameter in module.parameters())
        parameters += model.codebook_size * code_dim
        return macs[0] + search, parameters

    def hardware_profile(self, num_channels=1, sampling_frequency=30000.0):
        if self.params["model"] is None:  # the default model compress() would pick for this channel count
            params = {key: value for key, value in self.params.items() if key != "background"}
            params["model"] = default_model(num_channels)
            return type(self)(**params).hardware_profile(num_channels, sampling_frequency)
        channels, samples, trough = self.snippet_shape()
        macs, parameters = self.encoder_macs_per_snippet()
        groups = self.params["footprint_groups"]
        ar_order = self.params["ar_order"]
        window = 2 * self.params["exclude_sweep_samples"] + 1
        return HardwareProfile(
            operations_per_sample={
                "compare": 1 + 1.0 / 8,  # threshold; strided noise median (selection) on 1 sample in 8
                "mac": ar_order + 1,  # background autocorrelation lags 0..p
                "add": 1.0 / 8,
                "memory_access": 2,
            },
            operations_per_spike={
                "mac": groups * macs,
                # suppression window over ~8 neighbours; minimum of the code search (every code of every position)
                "compare": window * 8 + groups * (0 if self.is_identity else self.model.codes_per_spike * self.model.codebook_size),
                "memory_access": groups * channels * samples,
            },
            parameter_count=int(parameters),
            parameter_bits=8,
            algorithmic_latency_samples=int(samples - trough + self.params["exclude_sweep_samples"]),
            buffer_samples_per_channel=int(samples + 2 * self.params["exclude_sweep_samples"]),
            notes=("detection: one compare per sample against k x a running MAD noise level (median on 1 sample in 8), "
                   "locally exclusive suppression only at threshold crossings; background: AR autocorrelation lags 0..p "
                   "per sample; per spike: CAE encoder multiply-accumulates counted from the model's layers with forward "
                   "hooks, plus the nearest-codeword search (16 x codebook x code_dim MACs); rANS coding not counted "
                   "(a few operations per symbol). Per-chunk background fit (Levinson-Durbin) is negligible."),
        )
