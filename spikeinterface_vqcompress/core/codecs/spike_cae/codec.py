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

import zlib

import numpy as np

from spikeinterface_vqcompress.core import weights
from spikeinterface_vqcompress.core.codec import HardwareProfile, check_range
from spikeinterface_vqcompress.core.errors import CorruptDataError
from spikeinterface_vqcompress.core.threads import single_torch_thread
from spikeinterface_vqcompress.core.entropy.rans import decode_with_tables, encode_with_tables
# re-exported: the front end's helpers were first written here
from spikeinterface_vqcompress.core.codecs.spike_cae.frontend import (TIME_CLASS_COUNTS, TIME_CLASS_TABLE, SpikeSnippetCodec,  # noqa: F401
                                                                     cannot_code, decode_times, encode_times,
                                                                     fill_channel_locations, recording_channel_locations, taper_window, uniform_table)

#: Chunk format written: 2 carries the per-channel offsets in the background statistics.
FORMAT_VERSION = 2
#: Chunk formats read (1: before the offsets; decoded with offset 0).
READABLE_FORMAT_VERSIONS = (1, 2)

#: A CAE model accepts recordings sampled within this factor of the rate it was trained at (a snippet
#: then spans within 25 % of the duration the model learnt).
SAMPLING_FREQUENCY_RATIO_LIMIT = 1.25



def default_model(num_channels: int) -> str:
    """The shipped model ``compress()`` uses for a recording of ``num_channels`` channels.

    Below 64 channels "nn32-4x64-r2", chosen on a tuning recording (Neuronexus-32 seed 203, neither
    trained on nor reported; docs/spike_cae.md) by the mean accuracy of tridesclous2 and
    spykingcircus2; from 64 channels "np64-15x96" (see
    :data:`spikeinterface_vqcompress.core.weights.SPIKE_CAE_DEFAULT_BY_RECORDING_CHANNELS`).
    """
    return weights.default_model("spike-cae", recording_num_channels=num_channels)


class SpikeCAECodec(SpikeSnippetCodec):
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
    format_version = FORMAT_VERSION
    readable_format_versions = READABLE_FORMAT_VERSIONS
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
        problems = fill_channel_locations(params, recording)
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
        problems.extend(self._dtype_problems(recording))
        if problems:
            raise cannot_code(self.codec_id, problems)
        return type(self)(**params)

    def _model_problems(self, num_channels):
        if not self.is_identity and self.params["gain_to_uV"] is None:
            return ["a gain to uV (the CAE works in uV): pass gain_to_uV=..., or compress a recording with channel gains"]
        return []

    def _encode_payload(self, snippets, noise_levels, traces):
        if self.is_identity:
            return zlib.compress(np.ascontiguousarray(snippets, dtype="<i2").tobytes(), 6)
        channels, samples, _ = self.snippet_shape()
        grouped = snippets.reshape(-1, channels, samples).astype(np.float32) * self.params["gain_to_uV"]
        indices = self.model.encode_indices(grouped) if len(grouped) else np.zeros((0, self.model.codes_per_spike), dtype=np.int64)
        return encode_with_tables(indices, self._tables)

    def _decode_payload(self, payload, num_spikes, num_channels):
        channels, samples, _ = self.snippet_shape()
        num_groups = self.params["footprint_groups"]
        if self.is_identity:
            try:
                raw = zlib.decompress(payload)
            except zlib.error as error:
                raise CorruptDataError(f"spike-cae: snippet payload could not be decompressed ({error})") from error
            expected = num_spikes * num_groups * channels * samples * 2
            if len(raw) != expected:
                raise CorruptDataError(f"spike-cae: snippet payload holds {len(raw)} bytes where {expected} are expected")
            return np.frombuffer(raw, dtype="<i2").reshape(num_spikes, num_groups * channels, samples).astype(np.float32)
        indices = decode_with_tables(payload, self._tables if self._tables is not None else self.model.frequency_tables(),
                                     num_spikes * num_groups)
        with single_torch_thread():
            decoded = self.model.decode_indices(indices) if len(indices) else np.zeros((0, channels, samples), dtype=np.float32)
        return decoded.reshape(num_spikes, num_groups * channels, samples) / self.params["gain_to_uV"]

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
            window_samples=int(samples - trough + self.params["exclude_sweep_samples"]),
            buffer_samples_per_channel=int(samples + 2 * self.params["exclude_sweep_samples"]),
            notes=("detection: one compare per sample against k x a running MAD noise level (median on 1 sample in 8), "
                   "locally exclusive suppression only at threshold crossings; background: AR autocorrelation lags 0..p "
                   "per sample; per spike: CAE encoder multiply-accumulates counted from the model's layers with forward "
                   "hooks, plus the nearest-codeword search (16 x codebook x code_dim MACs); rANS coding not counted "
                   "(a few operations per symbol). Per-chunk background fit (Levinson-Durbin) is negligible."),
        )
