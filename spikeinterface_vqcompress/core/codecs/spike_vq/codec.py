"""``spike-vq`` and ``spike-pca``: spike snippets as learned features, background as noise statistics.

Both run the spike front end of :mod:`..spike_cae.frontend` (detection, snippets of
``snippet_channels`` channels by distance from the peak channel x 3.2 ms, times, channels,
synthesised background, offsets kept) and differ in how a snippet becomes bits. A snippet is projected,
channel by channel, on a temporal basis of ``M`` components and divided by the chunk's noise scale
``sigma`` (the standard deviation of the noise's own projections, :meth:`_SpikeFeatureCodec._noise_scale`,
sent as a float32): its features are ``snippet_channels x M`` numbers in which the noise has
variance 1. The decoder rebuilds the
snippet from its features and adds it to the synthesised background (the features keep the spike
and drop most of the snippet's noise, which the background puts back); where snippets overlap,
their average is added (paste mode "mix": each snippet also holds its neighbours' spikes, which
adding every snippet would double).

``spike-vq`` (:class:`SpikeVQCodec`): the shipped prior's temporal basis; features coded by the online
vector quantiser of :mod:`.quantiser` (a codebook learned from the spikes as they come, started
from the shipped prior, escapes for spikes no codeword fits, a dead-zone quantised residual whose
step is the rate knob). Causal: each spike is coded as soon as its snippet window closes; the
decoder replays the codebook updates.

``spike-pca`` (:class:`SpikePCACodec`): the floor ``spike-vq`` must beat. Per chunk, a temporal PCA
basis fitted on the chunk's own snippets (sent as float16 side information), and every coefficient
quantised with step ``step`` (noise standard deviations) and entropy-coded. It needs the whole
chunk before it codes (one chunk of latency).

Payload (framed by :func:`~spikeinterface_vqcompress.core.framing.pack_parts`):

- spike-vq: ``f32 sigma`` | codeword indices (:func:`~..entropy.integers.encode_indices`, codebook
  size + 1 symbols, the last one the escape) | residuals (:func:`~..entropy.integers.encode_integers`)
  | escape bases (indices, the last symbol "from zero") | escape differences (integers); with
  codeword refinement the first part is ``f32 sigma, f32 refine_step`` and a sixth part follows:
  ``u32 count`` and the count x features quantised codeword updates (integers). A five-part chunk
  (written without refinement, or by an earlier version) decodes as before.
- spike-pca: ``f32 sigma, u8 components`` | basis (float16, components x snippet samples) |
  coefficients (:func:`~..entropy.integers.encode_integers`)
"""

from __future__ import annotations

import struct
from typing import Literal

import numpy as np

from spikeinterface_vqcompress.core import weights
from spikeinterface_vqcompress.core.codec import HardwareProfile, check_range
from spikeinterface_vqcompress.core.codecs.spike_cae.frontend import (BANDPASS_ORDER, SpikeSnippetCodec, cannot_code, check_bandpass,
                                                                     fill_channel_locations, resolve_bandpass)
from spikeinterface_vqcompress.core.codecs.spike_cae.footprint import TEMPLATE_ENTRIES, amplitude_window, check_footprint_map
from spikeinterface_vqcompress.core.codecs.spike_vq.quantiser import OnlineSpikeVQ
from spikeinterface_vqcompress.core.entropy.integers import decode_indices, decode_integers, encode_indices, encode_integers
from spikeinterface_vqcompress.core.errors import CorruptDataError
from spikeinterface_vqcompress.core.framing import pack_parts, part_count, unpack_parts

#: Snippet duration and trough position of both codecs (the shipped prior's 96 samples at 30 kHz).
SNIPPET_DURATION_MS = 3.2
TROUGH_FRACTION = 1.0 / 3.0
_SIGMA = struct.Struct("<f")
_SIGMA_REFINED = struct.Struct("<ff")  # sigma, refine_step: a refined chunk (six parts)
_COUNT = struct.Struct("<I")
#: How the encoder picks the channels of each spike (the ``footprint`` parameter).
FOOTPRINTS = ("learned", "peak")
#: Largest stage-1 codebook (codewords past the prior's start empty and fill with the recording's units).
MAX_CODEBOOK_SIZE = 1024
_PCA_HEADER = struct.Struct("<fB")


def load_prior(name: str) -> tuple[dict, str]:
    """``({"basis", "codebook", "sampling_frequency", "num_channels"}, sha256)`` of a shipped prior
    (or a path to an ``.npz`` written by :mod:`spikeinterface_vqcompress.training.spike_vq`)."""

    def loader(path):
        with np.load(path) as archive:
            return {"basis": archive["basis"].astype(np.float32), "codebook": archive["codebook"].astype(np.float32),
                    "sampling_frequency": float(archive["sampling_frequency"]), "num_channels": int(archive["num_channels"])}

    return weights.load_cached("spike-vq", name, loader)


def resample_basis(basis: np.ndarray, num_samples: int) -> np.ndarray:
    """A ``(T, M)`` orthonormal temporal basis stretched to ``num_samples`` rows and orthonormalised again."""
    basis = np.asarray(basis, dtype=np.float64)
    if basis.shape[0] == num_samples:
        return basis.astype(np.float32)
    old = np.linspace(0.0, 1.0, basis.shape[0])
    new = np.linspace(0.0, 1.0, num_samples)
    stretched = np.stack([np.interp(new, old, column) for column in basis.T], axis=1)
    q, r = np.linalg.qr(stretched)
    return (q * np.sign(np.diag(r))[None, :]).astype(np.float32)


class _SpikeFeatureCodec(SpikeSnippetCodec):
    """Front-end parameters, snippet shape from the sampling rate, features in noise units."""

    # the front end's chunk format 2 (background statistics may carry the offsets), from the first version
    format_version = 2
    readable_format_versions = (2,)
    # what a chunk learns (spike-vq's codebook) or sends once (spike-pca's basis) serves its whole duration
    default_chunk_duration_s = 10.0

    def _front_end_params(self, threshold_sd, exclude_sweep_samples, radius_um, snippet_channels, snippet_samples,
                          trough_sample, ar_order, spatial_rank, taper_samples, channel_locations, background_samples,
                          bandpass_hz="auto", sampling_frequency=None, footprint="peak", footprint_map=None) -> dict:
        codec_id = self.codec_id
        if footprint not in FOOTPRINTS:
            raise ValueError(f"codec '{codec_id}': parameter 'footprint' must be one of {', '.join(map(repr, FOOTPRINTS))}, "
                             f"got {footprint!r}")
        footprint_map = check_footprint_map(footprint_map, None if channel_locations is None else len(channel_locations))
        bandpass_hz, sampling_frequency = check_bandpass(codec_id, bandpass_hz, sampling_frequency)
        check_range(codec_id, "threshold_sd", float(threshold_sd), 0, exclusive_minimum=True, unit="noise standard deviations")
        check_range(codec_id, "exclude_sweep_samples", int(exclude_sweep_samples), 0, unit="samples")
        check_range(codec_id, "radius_um", float(radius_um), 0, unit="um")
        check_range(codec_id, "snippet_channels", int(snippet_channels), 1, 64, note="channels per snippet")
        check_range(codec_id, "snippet_samples", None if snippet_samples is None else int(snippet_samples), 8, 1024,
                    allow_none=True, unit="samples")
        if trough_sample is not None:
            last = None if snippet_samples is None else int(snippet_samples) - 1
            check_range(codec_id, "trough_sample", int(trough_sample), 0, last, allow_none=True)
        check_range(codec_id, "ar_order", int(ar_order), 0, 32, note="AR order of the background spectrum")
        check_range(codec_id, "spatial_rank", int(spatial_rank), 0, 255, note="common factors of the background")
        check_range(codec_id, "taper_samples", int(taper_samples), 0, unit="samples")
        check_range(codec_id, "background_samples", None if background_samples is None else int(background_samples), 1,
                    allow_none=True, unit="samples per chunk")
        if channel_locations is not None:
            channel_locations = [[float(value) for value in location[:2]] for location in np.asarray(channel_locations).tolist()]
        return dict(threshold_sd=float(threshold_sd), exclude_sweep_samples=int(exclude_sweep_samples), radius_um=float(radius_um),
                    snippet_channels=int(snippet_channels),
                    snippet_samples=None if snippet_samples is None else int(snippet_samples),
                    trough_sample=None if trough_sample is None else int(trough_sample),
                    ar_order=int(ar_order), spatial_rank=int(spatial_rank), taper_samples=int(taper_samples),
                    channel_locations=channel_locations,
                    background_samples=None if background_samples is None else int(background_samples),
                    bandpass_hz=bandpass_hz, sampling_frequency=sampling_frequency, footprint=footprint,
                    footprint_map=footprint_map if footprint == "learned" else None)

    @property
    def params_for_copy(self) -> dict:
        return {key: value for key, value in self.params.items() if key not in ("background", "footprint_groups")}

    # -- the front end's contract --------------------------------------------------------------
    def snippet_shape(self):
        samples = self.params["snippet_samples"]
        if samples is None:
            raise ValueError(f"{self.codec_id}: snippet_samples is unset; compress a recording (its sampling rate sets it) "
                             f"or pass snippet_samples=... (96 at 30 kHz)")
        trough = self.params["trough_sample"]
        return self.params["snippet_channels"], samples, int(round(samples * TROUGH_FRACTION)) if trough is None else trough

    @property
    def paste_mode(self):
        return "mix"

    def with_recording(self, recording) -> "_SpikeFeatureCodec":
        """A copy with the channel locations and the snippet shape filled from a SpikeInterface recording.

        Everything missing is reported in one ValueError before any encoding: channel locations (a
        recording of one channel needs none) and int16 traces. The snippet spans 3.2 ms at the
        recording's rate (96 samples at 30 kHz), on ``min(snippet_channels, channels)`` channels. With
        ``footprint="learned"`` the footprint map is learned on the recording's first
        :data:`~..spike_cae.frontend.FOOTPRINT_LEARNING_S` seconds (detection and a k-means of the
        spikes' amplitudes across channels: about a second per 10 s of 32 channels).
        """
        params = self.params_for_copy
        num_channels = int(recording.get_num_channels())
        problems = fill_channel_locations(params, recording)
        problems.extend(self._dtype_problems(recording))
        if problems:
            raise cannot_code(self.codec_id, problems)
        resolve_bandpass(params, recording)
        codec = type(self)(**params)._shaped_for(num_channels, recording.get_sampling_frequency())
        if codec.params["footprint"] == "learned" and codec.params["footprint_map"] is None and num_channels > 1:
            codec = type(self)(**{**codec.params_for_copy, "footprint_map": codec.learn_footprint_map(recording)})
        return codec

    def _shaped_for(self, num_channels: int, sampling_frequency: float) -> "_SpikeFeatureCodec":
        """A copy with the snippet shape :meth:`with_recording` would give a recording of this size and rate."""
        params = self.params_for_copy
        params["snippet_channels"] = min(params["snippet_channels"], num_channels)
        if params["snippet_samples"] is None:
            params["snippet_samples"] = max(int(round(SNIPPET_DURATION_MS * 1e-3 * sampling_frequency)), 8)
        return type(self)(**params)

    def _model_problems(self, num_channels):
        if self.params["snippet_samples"] is None:
            return ["a snippet length: pass snippet_samples=... (96 at 30 kHz) or compress a recording, whose rate sets it"]
        return []

    # -- features ------------------------------------------------------------------------------------
    @staticmethod
    def _noise_scale(traces: np.ndarray, basis: np.ndarray, max_windows: int = 4096) -> float:
        """The noise's standard deviation *in feature space*, in trace units (float32-exact, >= 0.5).

        The chunk cut into snippet-long windows on every channel, projected on the basis; a robust
        variance of the coefficients (median of squares / 0.455, the median of chi-square with one
        degree of freedom, so the spikes in some windows barely move it). Band-passed noise puts
        more power on spike-shaped components than its sample MAD says (about 1.6 times the MAD's
        standard deviation on MEArec recordings): features in these units have noise variance 1.
        """
        length = basis.shape[0]
        windows = traces.shape[0] // length
        if windows == 0 or basis.shape[1] == 0:
            return 1.0
        num_channels = traces.shape[1]
        count = windows * num_channels  # window w of channel c is row w * num_channels + c
        chosen = np.linspace(0, count - 1, min(count, max_windows)).astype(np.int64)
        starts, channels = np.divmod(chosen, num_channels)
        rows = traces[starts[:, None] * length + np.arange(length)[None, :], channels[:, None]].astype(np.float32)
        variance = float(np.median((rows @ basis) ** 2)) / 0.4549364
        scale = np.sqrt(variance) if np.isfinite(variance) else 1.0
        return float(np.float32(max(scale, 0.5)))

    def _check_sigma(self, sigma: float) -> None:
        if not (np.isfinite(sigma) and 0.5 <= sigma < 1e6):
            raise CorruptDataError(f"{self.codec_id}: the chunk's noise level {sigma!r} is impossible; the data is damaged")

    @staticmethod
    def _features(snippets: np.ndarray, basis: np.ndarray, sigma: float) -> np.ndarray:
        """``(n, C, T)`` trace units -> ``(n, C * M)`` features in noise standard deviations."""
        scaled = snippets.astype(np.float32) / np.float32(sigma)
        return (scaled @ basis).reshape(len(snippets), snippets.shape[1] * basis.shape[1])

    def _snippets(self, features: np.ndarray, basis: np.ndarray, sigma: float) -> np.ndarray:
        channels, samples, _ = self.snippet_shape()
        return (features.reshape(len(features), channels, basis.shape[1]) @ basis.T) * np.float32(sigma)

    def _front_end_profile(self, per_spike: dict, parameter_count: int, latency_chunks: float, notes: str) -> HardwareProfile:
        channels, samples, trough = self.snippet_shape()
        window = 2 * self.params["exclude_sweep_samples"] + 1
        per_spike = dict(per_spike)
        per_spike["compare"] = per_spike.get("compare", 0) + window * 8
        per_spike["memory_access"] = per_spike.get("memory_access", 0) + channels * samples
        per_sample = {"compare": 1 + 1.0 / 8, "mac": self.params["ar_order"] + 1, "add": 1.0 / 8, "memory_access": 2}
        if self.params.get("footprint") == "learned":
            # the footprint map: the spike's peak-to-peak on its 2C nearest channels, then its cosine with the
            # clusters centred there (an implant scores the ~2C nearby ones, TEMPLATE_ENTRIES MACs each); the
            # map: a cluster per channel, TEMPLATE_ENTRIES weights and channel indices each
            width = 2 * channels
            span = sum(amplitude_window(samples)) + 1
            per_spike["compare"] += 2 * width * span
            per_spike["memory_access"] += width * span
            per_spike["mac"] = per_spike.get("mac", 0) + width + width * TEMPLATE_ENTRIES
            num_channels = len(self.params["channel_locations"] or ()) or width
            parameter_count += num_channels * (2 * TEMPLATE_ENTRIES + 1)
            notes = "footprint map: peak-to-peak on 2C channels and a cosine with the nearby clusters per spike; " + notes
        if isinstance(self.params.get("bandpass_hz"), list):  # the band-pass: BANDPASS_ORDER biquads, 5 MACs and 4 adds each
            per_sample["mac"] += 5 * BANDPASS_ORDER
            per_sample["add"] += 4 * BANDPASS_ORDER
            per_sample["memory_access"] += 2 * BANDPASS_ORDER
            notes = f"band-pass: {BANDPASS_ORDER} second-order sections per sample; " + notes
        return HardwareProfile(
            operations_per_sample=per_sample,
            operations_per_spike=per_spike, parameter_count=int(parameter_count), parameter_bits=8,
            algorithmic_latency_samples=int(samples - trough + self.params["exclude_sweep_samples"]),
            window_samples=int(samples - trough + self.params["exclude_sweep_samples"]),
            algorithmic_latency_chunks=latency_chunks,
            buffer_samples_per_channel=int(samples + 2 * self.params["exclude_sweep_samples"]),
            notes="detection: one compare per sample against k x a running MAD noise level (median on 1 sample in 8); "
                  "background: AR autocorrelation lags 0..p per sample; " + notes)


class SpikeVQCodec(_SpikeFeatureCodec):
    """Spikes as a codeword learned online from the recording's own spikes plus a quantised residual;
    background as noise statistics.

    Parameters
    ----------
    residual_step : float | None, default: 3.0
        Dead-zone quantiser step of each spike's residual from its codeword, in noise standard
        deviations: the rate knob (larger: fewer bits; None: no residual, a spike is its codeword).
    codebook_size : int, default: 256
        Codewords learned per chunk (the prior fills the first ones; the rest start empty).
    escape_threshold : float, default: 4.0
        A spike whose mean squared feature error to every codeword exceeds this (noise variances)
        is sent as an escape and becomes a codeword.
    escape_step : float, default: 2.0
        Dead-zone quantiser step of escape features, in noise standard deviations.
    learning_rate : float, default: 0.125
        Rate at which a codeword moves towards each decoded spike it codes (with a residual and no
        ``refine_step``).
    channel_escape_threshold : float | None, default: None
        Also an escape: a spike whose mean squared feature error to its nearest codeword exceeds this on
        any one channel (noise variances). The whole-snippet mean (``escape_threshold``) dilutes a
        difference that lies on a few channels: small units then share a codeword (on the tuning
        recording 12 of 20 units' spikes went mostly to a codeword they shared with other units), the
        coarse residual erases what tells them apart, and sorters merge them. None: off.
    refine_step : float | None, default: None
        Codeword refinement: the encoder sends each codeword's running-mean update after every batch of
        its spikes (4, then as many as it holds, at most 32), computed from the original features and
        dead-zone quantised with this step in units of the update's noise level (side information,
        counted in the ratio); the codewords become the means of their units' spikes instead of staying
        where a coarse residual leaves them. None: the EMA towards the decoded spikes.
    lenient_young_codewords : bool, default: False
        Scale both escape thresholds by ``(1 + 1/n) / (1 + 1/128)`` for a nearest codeword holding ``n``
        spikes (needs ``refine_step``, which counts them): a codeword born from one spike (an escape)
        carries that spike's noise, so a spike of its unit lies twice as far from it as from a settled
        one, and the fixed thresholds send most of a new unit's next spikes as escapes too. Encoder only:
        the stream is unchanged.
    prior : str, default: "nn-16x96"
        Shipped prior (temporal basis and starting codebook) or the path of one.
    threshold_sd, exclude_sweep_samples, radius_um, ar_order, spatial_rank, taper_samples, background_samples
        The spike front end's (see :class:`~..spike_cae.codec.SpikeCAECodec`).
    snippet_channels : int, default: 16
        Channels per snippet, by distance from the peak channel (fewer on smaller probes). More than
        the prior's start those channels' codewords at zero.
    snippet_samples, trough_sample : int | None, default: None
        Snippet shape; None: 3.2 ms at the recording's rate, trough at a third.
    channel_locations : list | None, default: None
        ``[[x, y], ...]`` in um; :func:`~spikeinterface_vqcompress.compress` fills it from the recording.
    bandpass_hz : "auto" | None | (float, float), default: "auto"
        Causal band-pass (2nd-order Butterworth) before detection; what is coded and rebuilt is the
        band-passed signal (offsets kept, the local field potential not). "auto": (300, 6000) Hz for a
        recording SpikeInterface does not mark ``is_filtered`` (raw broadband data), none for one it
        does (MEArec, band-passed recordings); resolved by :func:`~spikeinterface_vqcompress.compress`,
        and "auto" on bare traces means none.
    sampling_frequency : float | None, default: None
        Hz, for the band-pass; filled from the recording.
    footprint : {"peak", "learned"}, default: "peak"
        Which channels each spike is sent on: the ``snippet_channels`` nearest its peak channel
        ("peak"), or nearest the channel of its cluster in a footprint map learned by the encoder on
        the recording's first 10 s ("learned", :mod:`~..spike_cae.footprint`), so every spike of a unit
        is cut on the same channels (sorters split units whose cut changes from spike to spike). The
        decoder needs no map: each spike's channel is sent either way. "learned" is experimental: on the
        cut alone it removes the extra units, but with spike-vq's coding it cost accuracy on the
        tuning recording (docs/spike_vq.md, "The footprint map").
    footprint_map : dict | None, default: None
        The learned map (filled by :func:`~spikeinterface_vqcompress.compress`); None with
        ``footprint="learned"`` on bare traces centres on the peak channel.
    """

    codec_id = "spike-vq"
    description = "spike snippets -> codebook learned online from the recording's own spikes + quantised residual + synthesised background"

    def __init__(self, residual_step: float | None = 3.0, codebook_size: int = 256, escape_threshold: float = 4.0,
                 escape_step: float = 2.0, learning_rate: float = 0.125, channel_escape_threshold: float | None = None,
                 refine_step: float | None = None, lenient_young_codewords: bool = False,
                 prior: str = "nn-16x96", threshold_sd: float = 4.5,
                 exclude_sweep_samples: int = 8, radius_um: float = 50.0, snippet_channels: int = 16,
                 snippet_samples: int | None = None, trough_sample: int | None = None, ar_order: int = 6,
                 spatial_rank: int = 0, taper_samples: int = 4, channel_locations: list[list[float]] | None = None,
                 background_samples: int | None = None, bandpass_hz: Literal["auto"] | tuple[float, float] | None = "auto",
                 sampling_frequency: float | None = None, footprint: Literal["learned", "peak"] = "peak",
                 footprint_map: dict | None = None):
        codec_id = self.codec_id
        prior_data, self.model_sha256 = load_prior(str(prior))
        check_range(codec_id, "residual_step", None if residual_step is None else float(residual_step), 0, exclusive_minimum=True,
                    allow_none=True, unit="noise standard deviations")
        check_range(codec_id, "codebook_size", int(codebook_size), 1, MAX_CODEBOOK_SIZE, note="codewords")
        check_range(codec_id, "escape_threshold", float(escape_threshold), 0, exclusive_minimum=True, unit="noise variances")
        check_range(codec_id, "escape_step", float(escape_step), 0, exclusive_minimum=True, unit="noise standard deviations")
        check_range(codec_id, "learning_rate", float(learning_rate), 0, 1)
        check_range(codec_id, "channel_escape_threshold", None if channel_escape_threshold is None else float(channel_escape_threshold),
                    0, exclusive_minimum=True, allow_none=True, unit="noise variances")
        check_range(codec_id, "refine_step", None if refine_step is None else float(refine_step), 0, exclusive_minimum=True,
                    allow_none=True, unit="noise levels of the update")
        if lenient_young_codewords and refine_step is None:
            raise ValueError(f"{codec_id}: lenient_young_codewords needs refine_step (e.g. refine_step=1.0): the refinement "
                             "counts each codeword's spikes")
        front_end = self._front_end_params(threshold_sd, exclude_sweep_samples, radius_um, snippet_channels, snippet_samples,
                                           trough_sample, ar_order, spatial_rank, taper_samples, channel_locations,
                                           background_samples, bandpass_hz, sampling_frequency, footprint, footprint_map)
        super().__init__(residual_step=None if residual_step is None else float(residual_step), codebook_size=int(codebook_size),
                         escape_threshold=float(escape_threshold), escape_step=float(escape_step),
                         learning_rate=float(learning_rate),
                         channel_escape_threshold=None if channel_escape_threshold is None else float(channel_escape_threshold),
                         refine_step=None if refine_step is None else float(refine_step),
                         lenient_young_codewords=bool(lenient_young_codewords), prior=str(prior), **front_end, background="synthesised")
        self.params["footprint_groups"] = 1
        self._prior = prior_data

    informational_keys = ("background", "footprint_groups")

    def get_config(self):
        config = super().get_config()
        config.pop("footprint_groups", None)
        return config

    @property
    def num_components(self) -> int:
        return self._prior["basis"].shape[1]

    def _basis(self) -> np.ndarray:
        _, samples, _ = self.snippet_shape()
        return resample_basis(self._prior["basis"], samples)

    def _quantiser(self, refine_step: float | None = None) -> OnlineSpikeVQ:
        channels, _, _ = self.snippet_shape()
        components = self.num_components
        # the prior's features are (its channels, M) row-major, channels by distance from the peak: a
        # narrower snippet keeps the first channels, a wider one starts its outer channels at zero (the
        # codewords learn them from the recording's spikes)
        prior = self._prior["codebook"].reshape(len(self._prior["codebook"]), -1, components)[:, :channels]
        prior = np.pad(prior, ((0, 0), (0, channels - prior.shape[1]), (0, 0)))
        return OnlineSpikeVQ(prior.reshape(len(prior), channels * components), self.params["escape_threshold"],
                             self.params["escape_step"], self.params["learning_rate"], codebook_size=self.params["codebook_size"],
                             residual_step=self.params["residual_step"], refine_step=refine_step,
                             group_threshold=self.params.get("channel_escape_threshold"), num_groups=channels,
                             # encoder-only; a chunk decoded without refinement needs no leniency (and allows none)
                             lenient_young_codewords=bool(self.params.get("lenient_young_codewords")) and refine_step is not None)

    def _encode_payload(self, snippets, noise_levels, traces):
        basis = self._basis()
        sigma = self._noise_scale(traces, basis)
        refine_step = self.params.get("refine_step")
        quantiser = self._quantiser(refine_step)
        indices, residuals, bases, escapes, refinements, _ = quantiser.encode(self._features(snippets, basis, sigma))
        parts = [_SIGMA.pack(sigma), encode_indices(indices, quantiser.codebook_size + 1), encode_integers(residuals),
                 encode_indices(bases, quantiser.codebook_size + 1), encode_integers(escapes)]
        if refine_step is not None:  # the stream says it is refined, and with which step: the decoder needs no parameter
            parts[0] = _SIGMA_REFINED.pack(sigma, refine_step)
            parts.append(_COUNT.pack(len(refinements)) + encode_integers(refinements))
        return pack_parts(parts)

    def _decode_payload(self, payload, num_spikes, num_channels):
        refined = part_count(payload, self.codec_id) == 6
        parts = unpack_parts(payload, 6 if refined else 5, self.codec_id)
        header, index_bytes, residual_bytes, base_bytes, escape_bytes = parts[:5]
        if len(header) != (_SIGMA_REFINED if refined else _SIGMA).size:
            raise CorruptDataError(f"{self.codec_id}: payload header has the wrong size")
        sigma, refine_step = _SIGMA_REFINED.unpack(header) if refined else (_SIGMA.unpack(header)[0], None)
        self._check_sigma(sigma)
        if refine_step is not None and not (np.isfinite(refine_step) and 0 < refine_step < 1e3):
            raise CorruptDataError(f"{self.codec_id}: the chunk's refinement step {refine_step!r} is impossible; the data is damaged")
        quantiser = self._quantiser(refine_step)
        indices = decode_indices(index_bytes, num_spikes, quantiser.codebook_size + 1, self.codec_id)
        num_escapes = int((indices == quantiser.escape_symbol).sum())
        num_coded = 0 if self.params["residual_step"] is None else num_spikes - num_escapes
        width = quantiser.codebook.shape[1]
        residuals = decode_integers(residual_bytes, num_coded * width, self.codec_id).reshape(num_coded, width)
        bases = decode_indices(base_bytes, num_escapes, quantiser.codebook_size + 1, self.codec_id)
        escapes = decode_integers(escape_bytes, num_escapes * width, self.codec_id).reshape(num_escapes, width)
        refinements = None
        if refined:  # the updates' count leads their stream (it is known only by replaying the codebook)
            if len(parts[5]) < _COUNT.size:
                raise CorruptDataError(f"{self.codec_id}: the codeword refinements are truncated; the data is damaged")
            (count,) = _COUNT.unpack_from(parts[5])
            if count > num_spikes:
                raise CorruptDataError(f"{self.codec_id}: the chunk claims more codeword refinements than spikes; the data is damaged")
            refinements = decode_integers(parts[5][_COUNT.size:], count * width, self.codec_id).reshape(count, width)
        try:
            features = quantiser.decode(indices, residuals, bases, escapes, refinements)
        except ValueError as error:
            raise CorruptDataError(f"{self.codec_id}: the code indices do not fit the codebook ({error}); the data is damaged") from error
        return self._snippets(features, self._basis(), sigma)

    def hardware_profile(self, num_channels=1, sampling_frequency=30000.0):
        if self.params["snippet_samples"] is None:
            return self._shaped_for(num_channels, sampling_frequency).hardware_profile(num_channels, sampling_frequency)
        channels, samples, _ = self.snippet_shape()
        components = self.num_components
        width = channels * components
        codewords = self.params["codebook_size"]
        refined = self.params.get("refine_step") is not None
        learning = (f"the exact residual summed into its codeword's batch ({width} adds; each batch of 4-32 spikes "
                    f"ends with a running-mean update: {width} MACs and a dead-zone quantiser, counted per spike)"
                    if refined else f"one EMA codeword update of {width} features")
        return self._front_end_profile(
            {"mac": channels * samples * components + codewords * width + width,  # transform, search, EMA / refinement update
             "compare": codewords + width + (width if refined else 0),  # argmin; dead-zone quantiser(s)
             "add": (3 if refined else 2) * width},  # residual, codeword update (+ the batch sum)
            parameter_count=codewords * width * (2 if refined else 1) + samples * components, latency_chunks=0.0,
            notes=(f"per spike: projection on {components} temporal components per channel ({channels} x {samples} x "
                   f"{components} MACs), nearest-codeword search over {codewords} codewords of {width} features, the "
                   f"dead-zone quantised residual and {learning} (the online learning); codebook held at 8 bits "
                   f"({codewords * width} values{', and as many batch sums' if refined else ''}); rANS coding not counted"))


class SpikePCACodec(_SpikeFeatureCodec):
    """Spikes as quantised coefficients on a per-chunk PCA basis; background as noise statistics.

    Parameters
    ----------
    components : int, default: 12
        Temporal principal components per channel, fitted on each chunk's snippets and sent (float16).
    step : float, default: 2.0
        Quantisation step of the coefficients, in noise standard deviations: the rate knob.
    threshold_sd, exclude_sweep_samples, radius_um, snippet_channels, snippet_samples, trough_sample,
    ar_order, spatial_rank, taper_samples, channel_locations, background_samples, bandpass_hz, sampling_frequency,
    footprint, footprint_map
        As :class:`SpikeVQCodec`.
    """

    codec_id = "spike-pca"
    description = "spike snippets -> per-chunk PCA coefficients, quantised and entropy-coded + synthesised background"

    def __init__(self, components: int = 12, step: float = 2.0, threshold_sd: float = 4.5, exclude_sweep_samples: int = 8,
                 radius_um: float = 50.0, snippet_channels: int = 16, snippet_samples: int | None = None,
                 trough_sample: int | None = None, ar_order: int = 6, spatial_rank: int = 0, taper_samples: int = 4,
                 channel_locations: list[list[float]] | None = None, background_samples: int | None = None,
                 bandpass_hz: Literal["auto"] | tuple[float, float] | None = "auto",
                 sampling_frequency: float | None = None, footprint: Literal["learned", "peak"] = "peak",
                 footprint_map: dict | None = None):
        check_range(self.codec_id, "components", int(components), 1, 64, note="temporal components per channel")
        check_range(self.codec_id, "step", float(step), 0, exclusive_minimum=True, unit="noise standard deviations")
        front_end = self._front_end_params(threshold_sd, exclude_sweep_samples, radius_um, snippet_channels, snippet_samples,
                                           trough_sample, ar_order, spatial_rank, taper_samples, channel_locations,
                                           background_samples, bandpass_hz, sampling_frequency, footprint, footprint_map)
        super().__init__(components=int(components), step=float(step), **front_end, background="synthesised")
        self.params["footprint_groups"] = 1

    informational_keys = ("background", "footprint_groups")

    def get_config(self):
        config = super().get_config()
        config.pop("footprint_groups", None)
        return config

    def _encode_payload(self, snippets, noise_levels, traces):
        channels, samples, _ = self.snippet_shape()
        components = min(self.params["components"], samples)
        if len(snippets):
            rows = snippets.reshape(-1, samples).astype(np.float64)
            _, _, vt = np.linalg.svd(rows, full_matrices=False)
            components = min(components, vt.shape[0])
            basis16 = vt[:components].astype(np.float16)
        else:
            components, basis16 = 0, np.zeros((0, samples), dtype=np.float16)
        basis = basis16.astype(np.float32).T  # (T, M): what the decoder has
        sigma = self._noise_scale(traces, basis)
        coefficients = np.round(self._features(snippets, basis, sigma) / np.float32(self.params["step"])) if components else np.zeros(0)
        coefficients = np.clip(coefficients, -32768, 32767).astype(np.int64)
        return pack_parts([_PCA_HEADER.pack(sigma, components), basis16.astype("<f2").tobytes(), encode_integers(coefficients)])

    def _decode_payload(self, payload, num_spikes, num_channels):
        header, basis_bytes, coefficient_bytes = unpack_parts(payload, 3, self.codec_id)
        if len(header) != _PCA_HEADER.size:
            raise CorruptDataError(f"{self.codec_id}: payload header has the wrong size")
        sigma, components = _PCA_HEADER.unpack(header)
        self._check_sigma(sigma)
        channels, samples, _ = self.snippet_shape()
        if len(basis_bytes) != components * samples * 2:
            raise CorruptDataError(f"{self.codec_id}: the PCA basis holds {len(basis_bytes)} bytes where "
                                   f"{components * samples * 2} are expected")
        if components == 0:
            return np.zeros((num_spikes, channels, samples), dtype=np.float32)
        basis = np.frombuffer(basis_bytes, dtype="<f2").reshape(components, samples).astype(np.float32).T
        if not np.all(np.isfinite(basis)) or np.abs(basis).max() > 1.0:
            raise CorruptDataError(f"{self.codec_id}: the PCA basis is not an orthonormal basis; the data is damaged")
        coefficients = decode_integers(coefficient_bytes, num_spikes * channels * components, self.codec_id)
        features = coefficients.astype(np.float32).reshape(num_spikes, -1) * np.float32(self.params["step"])
        return self._snippets(features, basis, sigma)

    def hardware_profile(self, num_channels=1, sampling_frequency=30000.0):
        if self.params["snippet_samples"] is None:
            return self._shaped_for(num_channels, sampling_frequency).hardware_profile(num_channels, sampling_frequency)
        channels, samples, _ = self.snippet_shape()
        components = self.params["components"]
        return self._front_end_profile(
            {"mac": channels * samples * components * 2},  # projection + its share of the per-chunk covariance
            parameter_count=samples * components, latency_chunks=1.0,
            notes=(f"per spike: projection on {components} components per channel and the snippet's share of the "
                   f"covariance the chunk's PCA is fitted on (the eigen-decomposition once per chunk is not counted); "
                   f"one chunk of latency: the basis is fitted on the chunk it codes"))
