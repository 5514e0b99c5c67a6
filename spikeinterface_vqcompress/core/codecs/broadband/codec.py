"""The ``broadband`` codec: lossless or near-lossless coding of continuous int16 recordings.

Per chunk and channel the encoder detects the ADC value lattice (stored integers that use only some
levels, e.g. the Neuralink N1 files' 10-bit codes stretched to int16, ~64 apart: affine
``offset + spacing * k`` or a table of used levels sent as side information), fits a least-squares
predictor of the first difference (sent as Q12 integers), optionally runs normalised-LMS stages
(the first one sees the most correlated neighbouring channel, chosen from the data), and codes the
residual with an adaptive binary range coder whose contexts follow the recent residual energy.
Decoding uses integer arithmetic only: it is bit-exact and deterministic on every machine.

``max_error > 0`` is the near-lossless mode: the prediction residual is quantised with step
``2 * max_error + 1`` inside the prediction loop, so every decoded sample is within ``max_error``
stored units of the original (guaranteed, not statistical). ``noise_fill=True`` adds back noise of
the shape and level the quantiser removed (:mod:`.noise`); the bound becomes ``2 * max_error``.
``spike_error`` codes the samples around each channel's spike events within that tighter bound and
the rest within ``max_error`` (:mod:`.spikes`); ``lowpass_background`` then keeps only the low band of
that coarse background and synthesises the rest (bound ``3 * max_error`` there, :mod:`.noise`).

This module must not import spikeinterface.
"""

from __future__ import annotations

import logging
import os
import time

import numpy as np

from spikeinterface_vqcompress.core.codec import Codec, HardwareProfile, check_range
from spikeinterface_vqcompress.core.errors import CorruptDataError
from spikeinterface_vqcompress.core.codecs.broadband import noise
from spikeinterface_vqcompress.core.codecs.broadband.spikes import SpikeWindows, detect_events
from spikeinterface_vqcompress.core.codecs.broadband.chunk import decode_chunk, encode_chunk, read_chunk_header


logger = logging.getLogger(__name__)

_FIRST_USE_CHECKED = False


def kernels_compiled() -> bool:
    """Whether numba's on-disk cache already holds the broadband kernels.

    When it does not, the first encode or decode of the process compiles them: minutes of CPU on a
    fresh install (``scripts/setup.sh`` runs :func:`compile_kernels` so that users never wait).
    """
    from spikeinterface_vqcompress.core.codecs.broadband._kernel import code_samples

    try:
        return os.path.exists(code_samples._cache._cache_file._index_path)
    except AttributeError:  # another numba version: cannot tell, assume compiled
        return True


def compile_kernels() -> float:
    """Compile every broadband kernel (or load it from numba's cache) by coding small chunks in the
    lossless and near-lossless modes; returns the seconds it took."""
    start = time.perf_counter()
    ramp = (np.arange(4096, dtype=np.int64)[:, None] * np.array([[3, -5]]) % 211 - 105).astype(np.int16)
    for config in ({"max_error": 0}, {"max_error": 4}, {"max_error": 48, "noise_fill": True},
                   # spike windows (detection, masks), the low-pass background and the robust noise levels
                   {"max_error": 48, "spike_error": 4, "spike_spread": 1.0, "noise_fill": True, "lowpass_background": True}):
        codec = BroadbandCodec(**config)
        codec.decode(codec.encode(ramp), *ramp.shape, ramp.dtype)
    return time.perf_counter() - start


def _say_if_compiling():
    """Once per process: tell the user before numba's first compile, which looks like a hang."""
    global _FIRST_USE_CHECKED
    if _FIRST_USE_CHECKED:
        return
    _FIRST_USE_CHECKED = True
    if not kernels_compiled():
        logger.warning("broadband: compiling the codec's numba kernels on first use (a few minutes of CPU, once: "
                       "they are cached for later runs; scripts/setup.sh does this at install)")


def _normalise_stages(stages):
    if stages is None:
        return []
    if len(stages) > 8:
        raise ValueError(f"codec 'broadband': parameter 'stages' takes at most 8 adaptive stages, got {len(stages)}")
    normalised = []
    for stage in stages:
        if len(stage) != 2:
            raise ValueError(f"codec 'broadband': parameter 'stages' holds [order, rate] pairs (order 1-64, rate 1-24), "
                             f"got {stage!r}")
        order, rate = (int(value) for value in stage)
        if not (1 <= order <= 64 and 1 <= rate <= 24):
            raise ValueError(f"codec 'broadband': parameter 'stages' holds [order, rate] pairs with order between 1 and "
                             f"64 and rate between 1 and 24, got {list(stage)!r}")
        normalised.append([order, rate])
    return normalised


#: bisection steps of ``bits_per_sample``'s search, after the encode at ``max_error``
RATE_SEARCH_STEPS = 5


class BroadbandCodec(Codec):
    """Lossless (``max_error=0``) or near-lossless broadband codec for int16 recordings.

    Parameters
    ----------
    max_error : int, default: 0
        Largest absolute error per sample in stored units; 0 is lossless (bit-exact). The rate knob of
        the near-lossless mode. Channels whose stored values use a table of levels (e.g. 10-bit codes
        stretched to int16) are coded exactly when the step ``2 * max_error + 1`` could merge few
        levels and exact coding is smaller. Choosing it for spike sorting: the step is relative to
        the noise. Once ``max_error`` passes about the noise level of the stored traces (their median
        absolute deviation), most residuals quantise to zero and the decoded background loses its
        noise. The sorters' thresholds, set relative to that noise, then fall, and the sorters cut
        quantisation steps into extra units.
        On two held-out MEArec probes (0.195 µV per unit, noise MAD ~31 units):

        - ``max_error=16`` (12x): the same units as the raw recording.
        - ``32-48`` (19-33x): tridesclous2 and spykingcircus2 kept the ground-truth units' mean
          accuracy within 0.025 (about tridesclous2's own run-to-run spread), but sorted up to
          3x as many units.
        - ``56``: spykingcircus2 collapsed on one probe.

        See ``benchmarks/results/broadband.md``.
    lpc_order : int, default: 32
        Order of the least-squares predictor fitted per chunk and channel (0-64).
    stages : list of [order, rate] | None, default: None
        Adaptive normalised-LMS stages after the fixed predictor: ``order`` taps, step ``2 ** -rate``.
        The first stage also sees the reference channel's current and previous difference. None is
        the default: none (on N1 and MEArec data the fixed predictor alone codes as well or better; the
        cross-channel stage gained < 0.01 % on MEArec, whose noise is independent across channels).
    noise_fill : bool, default: False
        With ``max_error > 0``: the decoder adds noise of the shape and per-channel level that the
        quantiser removed, so that the decoded background keeps the original's noise level (the
        statistic the sorters' thresholds follow); side information ~140 bytes per second of 32
        channels. Every decoded sample is then within ``2 * max_error`` of the original (the
        quantiser's error plus noise of the same bound). See :mod:`.noise`.
    spike_error : int | None, default: None
        With ``max_error > 0``: the largest error inside spike windows (``0 <= spike_error <
        max_error``; None: no windows, one bound everywhere). Per chunk and channel the encoder finds
        where the 300 Hz high-passed trace falls below ``-spike_threshold`` noise levels; the samples
        from ``spike_before`` before to ``spike_after`` after each such event are coded within
        ``spike_error`` and with their own statistics, the rest within ``max_error`` (and noise-filled
        with ``noise_fill``). The events are sent in the chunk (a few bytes per event, counted in the
        ratio). The guaranteed bound is ``spike_error`` inside the windows and ``max_error`` (or ``2 *
        max_error`` with ``noise_fill``) elsewhere. See :mod:`.spikes`.
    spike_threshold : float, default: 3.5
        Detection threshold of the spike events, in noise levels (MAD / 0.6745 of the high-passed chunk).
    spike_before, spike_after : int, default: 30, 60
        Samples each window covers before and after its event (0-255; 1 and 2 ms at 30 kHz).
    spike_spread : float, default: 0.0
        In noise levels: each event also opens a window on every channel that falls below
        ``-spike_spread`` noise levels within 10 samples of it (the spike's weaker channels, found
        without the probe geometry); 0: each channel's own events only.
    bits_per_sample : float | None, default: None
        The rate knob: per chunk, the encoder picks the smallest bound (geometric search, up to 6
        encodes of the chunk) whose coded chunk fits this many bits per stored sample, all side
        information included (``16 / bits_per_sample`` is the ratio vs int16); ``max_error`` is then
        the largest bound it may choose, and the guaranteed one. Where even ``max_error`` does not fit,
        the chunk is coded at ``max_error`` and takes more. The bound chosen travels in each chunk.
        None: the bound is ``max_error`` everywhere.
    lowpass_background : bool, default: False
        With ``spike_error`` and ``noise_fill``: outside the spike windows the decoder keeps only the
        low band of the coded signal (below ~1/200 of the sampling rate) and synthesises the rest as
        noise of the measured shape and level. The coarse background's correction steps no longer
        reach the sorters as spike-like transients (the extra units that ``noise_fill`` alone leaves
        past ``max_error`` ~32); the spikes of units too weak to open a window on a channel are lost
        there. The bound outside the windows is ``3 * max_error``; the level synthesised is the
        removed noise's robust one (median absolute deviation, what sorters measure). See :mod:`.noise`.
    noise_neighbours : int, default: 0
        With ``noise_fill``: keep the background's correlation across channels. Each channel's
        synthetic noise is fitted (per chunk) as a combination of its ``noise_neighbours`` predecessors
        in channel order plus its own noise, ``2 * (noise_neighbours + 1)`` bytes per channel and chunk;
        channels ordered along the probe suit it best. Real recordings' backgrounds are correlated
        (neighbouring channels 0.2-0.5), simulated MEArec noise hardly (0.07). 0: independent channels.
    """

    codec_id = "broadband"
    lossless = True
    supported_dtypes = ("int16",)
    description = "our broadband codec: lattice + LPC/NLMS prediction + adaptive binary range coding; lossless or max-error"

    def __init__(self, max_error: int = 0, lpc_order: int = 32, stages: list[tuple[int, int]] | None = None,
                 noise_fill: bool = False, spike_error: int | None = None, spike_threshold: float = 3.5,
                 spike_before: int = 30, spike_after: int = 60, spike_spread: float = 0.0,
                 lowpass_background: bool = False, bits_per_sample: float | None = None, noise_neighbours: int = 0):
        max_error = int(max_error)
        check_range(self.codec_id, "max_error", max_error, 0, 4096, unit="stored units", note="0 is lossless")
        lpc_order = int(lpc_order)
        check_range(self.codec_id, "lpc_order", lpc_order, 0, 64, note="order of the least-squares predictor")
        if noise_fill not in (True, False, 0, 1):
            raise ValueError(f"codec 'broadband': parameter 'noise_fill' is true or false, got {noise_fill!r}")
        if noise_fill and max_error == 0:
            raise ValueError("codec 'broadband': noise_fill needs max_error > 0 (lossless coding loses no noise)")
        params = dict(max_error=max_error, lpc_order=lpc_order, stages=None if stages is None else _normalise_stages(stages))
        if noise_fill:  # absent when off: configs, and the hashes of containers written before, stay as they were
            params["noise_fill"] = True
        if spike_error is not None:  # likewise absent when off
            spike_error = int(spike_error)
            if max_error == 0:
                raise ValueError("codec 'broadband': spike_error needs max_error > 0 (lossless coding is exact everywhere)")
            check_range(self.codec_id, "spike_error", spike_error, 0, max_error - 1, unit="stored units",
                        note="the bound inside spike windows, below max_error")
            check_range(self.codec_id, "spike_threshold", float(spike_threshold), 0, 100, exclusive_minimum=True,
                        unit="noise levels")
            check_range(self.codec_id, "spike_before", int(spike_before), 0, 255, unit="samples")
            check_range(self.codec_id, "spike_after", int(spike_after), 0, 255, unit="samples")
            check_range(self.codec_id, "spike_spread", float(spike_spread), 0, 100, unit="noise levels",
                        note="0 is off")
            params.update(spike_error=spike_error, spike_threshold=float(spike_threshold),
                          spike_before=int(spike_before), spike_after=int(spike_after))
            if spike_spread:  # absent when off
                params["spike_spread"] = float(spike_spread)
        elif spike_spread:
            raise ValueError("codec 'broadband': spike_spread spreads spike windows: set spike_error too")
        if lowpass_background not in (True, False, 0, 1):
            raise ValueError(f"codec 'broadband': parameter 'lowpass_background' is true or false, got {lowpass_background!r}")
        if lowpass_background:
            if spike_error is None or not noise_fill:
                raise ValueError("codec 'broadband': lowpass_background needs spike windows and noise fill (set spike_error "
                                 "and noise_fill=True): without windows the low band alone would drop every spike")
            params["lowpass_background"] = True  # absent when off
        if isinstance(noise_neighbours, bool) or not isinstance(noise_neighbours, (int, np.integer)):
            raise ValueError(f"codec 'broadband': parameter 'noise_neighbours' is a whole number of channels "
                             f"(0-{noise.MAX_NEIGHBOURS}), got {noise_neighbours!r}")
        check_range(self.codec_id, "noise_neighbours", int(noise_neighbours), 0, noise.MAX_NEIGHBOURS, unit="channels",
                    note="0 is off")
        if noise_neighbours:  # absent when off
            if not noise_fill:
                raise ValueError("codec 'broadband': noise_neighbours correlates the noise fill across channels: set "
                                 "noise_fill=True too")
            params["noise_neighbours"] = int(noise_neighbours)
        if bits_per_sample is not None:  # absent when off
            if max_error == 0:
                raise ValueError("codec 'broadband': bits_per_sample needs max_error > 0, the largest bound it may choose "
                                 "(e.g. max_error=96, bits_per_sample=0.5)")
            check_range(self.codec_id, "bits_per_sample", float(bits_per_sample), 0, 16, exclusive_minimum=True,
                        unit="bits per stored sample", note="16 / the ratio vs int16")
            params["bits_per_sample"] = float(bits_per_sample)
        super().__init__(**params)
        self.lossless = max_error == 0

    def _stages_for(self, num_channels):
        stages = self.params["stages"]
        if stages is None:
            stages = []
        return tuple(tuple(stage) for stage in stages)

    def encode(self, traces):
        traces = np.ascontiguousarray(self.check_traces(traces))
        _say_if_compiling()
        windows = self._spike_windows(traces)
        # with the low-pass background the noise is measured on the original alone: once, whatever the bound
        fill = self._noise_side_information(traces, None, windows) if self.params.get("lowpass_background") else None
        if self.params.get("bits_per_sample") is None:
            return self._encode_at(traces, self.params["max_error"], windows, fill)
        return self._encode_to_rate(traces, windows, fill)

    def _spike_windows(self, traces):
        """The chunk's spike windows (:func:`.spikes.detect_events`), or None without ``spike_error``."""
        if self.params.get("spike_error") is None:
            return None
        events = detect_events(traces, self.params["spike_threshold"], spread_threshold=self.params.get("spike_spread", 0.0))
        return SpikeWindows(events, self.params["spike_error"], self.params["spike_before"], self.params["spike_after"])

    def _noise_side_information(self, traces, rebuilt, windows):
        """``(taps, levels, spatial)`` of the noise fill: measured on ``traces - rebuilt`` outside the spike
        windows, or with ``lowpass_background`` on the original's own high band (``rebuilt`` unused: the
        decoder keeps the coded background's low band, so measuring ``original - lowpass(coded)`` would
        count the coarse coder's slow drift a second time)."""
        background = None
        if windows is not None and windows.num_events:
            background = windows.mask(traces.shape[0]) == 0
        lowpass_background = bool(self.params.get("lowpass_background"))
        if lowpass_background:
            rebuilt = noise.lowpass(traces)
        return noise.side_information(traces, rebuilt, background, robust_level=lowpass_background,
                                      num_neighbours=self.params.get("noise_neighbours", 0))

    def _encode_to_rate(self, traces, windows, fill=None):
        """The chunk at the smallest bound (on a geometric search, at most ``RATE_SEARCH_STEPS`` + 1
        encodes) whose bytes fit ``bits_per_sample``; at ``max_error`` when even that does not fit.
        The choice depends on the chunk alone: the same bytes whatever the order chunks are coded in."""
        budget = self.params["bits_per_sample"] * traces.size / 8
        high = self.params["max_error"]
        best = self._encode_at(traces, high, windows, fill)
        if len(best) > budget:
            return best  # the bound is the cap: keep it, over the rate
        low = self.params.get("spike_error") or 0  # below the smallest bound allowed: treated as not fitting
        for _ in range(RATE_SEARCH_STEPS):
            if high - low <= 1:
                break
            middle = min(max(int(round(np.sqrt(max(low, 1) * high))), low + 1), high - 1)
            data = self._encode_at(traces, middle, windows, fill)
            if len(data) <= budget:
                best, high = data, middle
            else:
                low = middle
        return best

    def _encode_at(self, traces, max_error, windows, fill=None):
        """The chunk coded at ``max_error``; ``fill``: the noise fill's side information when it does not
        depend on the bound (low-pass background), else measured here."""
        arguments = (traces, max_error, self._stages_for(traces.shape[1]), self.params["lpc_order"])
        if not self.params.get("noise_fill"):
            return encode_chunk(*arguments, spike_windows=windows)
        core, rebuilt = encode_chunk(*arguments, return_reconstruction=True, spike_windows=windows)
        taps, levels, spatial = fill if fill is not None else self._noise_side_information(traces, rebuilt, windows)
        return noise.wrap(core, taps, levels, spatial, lowpass_background=bool(self.params.get("lowpass_background")))

    def decode(self, data, num_samples, num_channels, dtype):
        if self.params.get("noise_fill"):
            core, taps, levels, spatial, lowpass_background = noise.unwrap(data, num_channels, self.codec_id)
            traces, zone = self._decode_core(core, num_samples, num_channels, return_zone=True)
            max_error = read_chunk_header(core, self.codec_id)["max_error"]  # the chunk's own (bits_per_sample)
            # with the low-pass background: the low band plus noise of up to 3 max_error, kept within 2
            # max_error of the coded samples; spike windows keep their own (tighter) error, unfilled
            fill = noise.synthesise_rows(noise.seed_of(core), taps, levels, num_samples,
                                         (3 if lowpass_background else 1) * max_error, spatial)
            return noise.fill(traces, fill, zone, max_error, lowpass_background).astype(dtype, copy=False)
        return self._decode_core(data, num_samples, num_channels).astype(dtype, copy=False)

    def _decode_core(self, data, num_samples, num_channels, return_zone=False):
        header = read_chunk_header(data, self.codec_id)
        if header["num_samples"] != num_samples or header["num_channels"] != num_channels:
            raise CorruptDataError(
                f"{self.codec_id}: chunk holds {header['num_samples']} x {header['num_channels']} samples where the "
                f"container says {num_samples} x {num_channels}; the data is damaged"
            )
        _say_if_compiling()
        return decode_chunk(data, self.codec_id, return_zone=return_zone)

    @property
    def max_error(self) -> int:
        """Guaranteed largest absolute error per sample, in stored units (twice ``max_error`` with noise fill,
        three times with ``lowpass_background``)."""
        if self.params.get("lowpass_background"):
            return 3 * self.params["max_error"]
        return self.params["max_error"] * (2 if self.params.get("noise_fill") else 1)

    def hardware_profile(self, num_channels=1, sampling_frequency=30000.0):
        lpc_order = self.params["lpc_order"]
        stages = self._stages_for(num_channels)
        taps = sum(order for order, _ in stages) + (2 if num_channels > 1 and stages else 0)
        # prediction: lpc_order MACs + per adaptive tap 1 MAC (predict) + 1 MAC (update), 1 division
        # per stage; coding: ~7 binary decisions per sample on this data (unary length + mantissa
        # tree + sign), each ~2 compares, 3 adds, 2 shifts, 1 multiply and 2 memory accesses.
        decisions = 7
        operations = {
            "mac": lpc_order + 2 * taps + decisions,
            "add": 4 + 2 * len(stages) + 3 * decisions,
            "compare": 4 + 2 * decisions,
            "shift": 3 + taps + 2 * decisions,
            "memory_access": 2 * lpc_order + 3 * taps + 2 * decisions,
        }
        if stages:  # one integer division per adaptive stage, counted as a 32-step shift-subtract loop
            operations["add"] += 32 * len(stages)
            operations["shift"] += 32 * len(stages)
            operations["compare"] += 32 * len(stages)
        return HardwareProfile(
            operations_per_sample=operations,
            parameter_count=lpc_order + taps,
            parameter_bits=16,
            algorithmic_latency_samples=0,
            algorithmic_latency_chunks=1.0,
            buffer_samples_per_channel=lpc_order + max([order for order, _ in stages], default=0),
            notes=(
                "sample-by-sample encoder, but the LPC coefficients are fitted on the chunk being coded and sent "
                "ahead of it, so the encoder buffers one whole chunk (latency = one chunk); integer NLMS stages and an adaptive binary range "
                "coder; ~7 binary decisions per sample measured on N1 data (more on high-amplitude data); "
                "probability tables ~(52 x 25 x 4 + 52 x 8 x 128) x 32 bit shared by all channels"
            ),
        )
