"""Classic baselines behind the common codec interface: zstd, FLAC, WavPack and bit truncation.

The figures every learned codec must beat (see FACTS.md): Blosc-zstd ~1.9x, FLAC in 2-channel
streams ~3.8x, WavPack lossless ~3.7x and hybrid ``bps=2.25`` ~7x on MEArec int16 recordings.
"""

from __future__ import annotations

import warnings

import numpy as np

from spikeinterface_vqcompress.core.codec import Codec, HardwareProfile, check_range
from spikeinterface_vqcompress.core.errors import CorruptDataError
from spikeinterface_vqcompress.core.framing import pack_parts, unpack_parts

def _run_decoder(codec_id: str, function, *args):
    """Call a third-party decoder, turning its failures into our CorruptDataError."""
    try:
        return function(*args)
    except CorruptDataError:
        raise
    except Exception as error:  # third-party decoders raise anything on bad input
        raise CorruptDataError(f"{codec_id}: the compressed data could not be decoded ({error})") from error


class ZstdCodec(Codec):
    """Zstandard on the raw little-endian samples (what SpikeInterface's Blosc-zstd default does,
    without the shuffle).

    Parameters
    ----------
    level : int, default: 5
        Zstandard compression level (1-22).
    """

    codec_id = "zstd"
    lossless = True
    supported_dtypes = ("int16", "int32", "uint16", "float32")
    description = "Zstandard, lossless, general purpose"

    def __init__(self, level: int = 5):
        level = int(level)
        check_range(self.codec_id, "level", level, 1, 22, note="Zstandard levels; higher is smaller and slower")
        super().__init__(level=level)
        import numcodecs

        self._zstd = numcodecs.Zstd(level=self.params["level"])

    def encode(self, traces):
        traces = self.check_traces(traces)
        return bytes(self._zstd.encode(np.ascontiguousarray(traces)))

    def decode(self, data, num_samples, num_channels, dtype):
        raw = _run_decoder(self.codec_id, self._zstd.decode, data)
        if len(raw) != num_samples * num_channels * np.dtype(dtype).itemsize:
            raise CorruptDataError(
                f"{self.codec_id}: decoded {len(raw)} bytes where {num_samples} x {num_channels} {np.dtype(dtype)} "
                "samples are expected; the data is damaged or truncated"
            )
        traces = np.frombuffer(raw, dtype=dtype)
        return self._check_decoded(traces, num_samples, num_channels, self.codec_id)

    def hardware_profile(self, num_channels=1, sampling_frequency=30000.0):
        # LZ77 match finding dominates: a handful of compares and memory accesses per byte.
        return HardwareProfile(
            operations_per_sample={"compare": 8, "memory_access": 6, "add": 4},
            buffer_samples_per_channel=65536 // max(num_channels, 1),
            algorithmic_latency_samples=65536 // max(num_channels, 1),
            notes="rough per-sample costs of an LZ77 + entropy coder over blocks of ~128 kB (64 k samples across channels)",
        )


class FlacCodec(Codec):
    """FLAC through flac-numcodecs, in streams of ``channel_chunk_size`` channels (FLAC's native
    channel coupling works on 2 channels; flac-numcodecs flattens wider blocks to mono).

    Parameters
    ----------
    level : int, default: 5
        FLAC compression level (0-8).
    channel_chunk_size : int, default: 2
        Channels per FLAC stream: 1 or 2.
    """

    codec_id = "flac"
    lossless = True
    supported_dtypes = ("int16",)
    description = "FLAC (linear prediction + Rice coding), lossless, 2-channel streams"

    def __init__(self, level: int = 5, channel_chunk_size: int = 2):
        level, channel_chunk_size = int(level), int(channel_chunk_size)
        check_range(self.codec_id, "level", level, 0, 8, note="FLAC levels; higher is smaller and slower")
        check_range(self.codec_id, "channel_chunk_size", channel_chunk_size, 1, 2, note="a FLAC stream carries 1 or 2 channels")
        super().__init__(level=level, channel_chunk_size=channel_chunk_size)
        from flac_numcodecs import Flac

        self._flac = Flac(level=self.params["level"])

    def _groups(self, num_channels):
        size = self.params["channel_chunk_size"]
        return [slice(start, min(start + size, num_channels)) for start in range(0, num_channels, size)]

    def encode(self, traces):
        traces = self.check_traces(traces)
        parts = [bytes(self._flac.encode(np.ascontiguousarray(traces[:, group]))) for group in self._groups(traces.shape[1])]
        return pack_parts(parts)

    def decode(self, data, num_samples, num_channels, dtype):
        groups = self._groups(num_channels)
        parts = unpack_parts(data, len(groups), self.codec_id)
        traces = np.empty((num_samples, num_channels), dtype=dtype)
        for group, part in zip(groups, parts):
            decoded = np.asarray(_run_decoder(self.codec_id, self._flac.decode, part))
            width = group.stop - group.start
            traces[:, group] = self._check_decoded(decoded.ravel(), num_samples, width, self.codec_id)
        return traces

    def hardware_profile(self, num_channels=1, sampling_frequency=30000.0):
        # level 5: LPC order up to 8 searched, Rice partitioning
        return HardwareProfile(
            operations_per_sample={"mac": 8 * 4, "add": 12, "compare": 8, "shift": 4},
            buffer_samples_per_channel=4608,
            algorithmic_latency_samples=4608,
            notes="FLAC level 5 encoder: LPC order <= 8 tried over a few orders, residual Rice coding; one block of 4608 samples latency",
        )


class WavPackCodec(Codec):
    """WavPack through wavpack-numcodecs: lossless, or hybrid lossy with ``bps`` bits per sample.

    Parameters
    ----------
    level : int, default: 2
        WavPack compression level (1-4).
    bps : float | None, default: None
        Bits per sample of the hybrid lossy mode (2.0-24; libwavpack codes values below 2.25 as
        2.25); None is lossless.
    """

    codec_id = "wavpack"
    supported_dtypes = ("int16",)
    description = "WavPack, lossless or hybrid lossy (bps)"

    def __init__(self, level: int = 2, bps: float | None = None):
        level = int(level)
        check_range(self.codec_id, "level", level, 1, 4, note="WavPack levels; higher is smaller and slower")
        if bps is not None and not 2.0 <= float(bps) <= 24.0:
            raise ValueError(f"codec 'wavpack': parameter 'bps' is the hybrid lossy mode's bits per sample and needs "
                             f"bps >= 2.0 and <= 24.0, got {bps!r}; use bps=None for lossless")
        super().__init__(level=level, bps=None if bps is None else float(bps))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            from wavpack_numcodecs import WavPack

            self._wavpack = WavPack(level=self.params["level"], bps=self.params["bps"], num_decoding_threads=1)
        self.lossless = bps is None

    #: Marker of a chunk stored as raw little-endian int16 (WavPack blocks start with b"wvpk").
    RAW_MARKER = b"raw2"

    def encode(self, traces):
        traces = self.check_traces(traces)
        try:
            return bytes(self._wavpack.encode(np.ascontiguousarray(traces)))
        except RuntimeError:
            # libwavpack refuses some short blocks (e.g. < ~64 samples on 4 channels, as a recording's last
            # chunk can be): store that chunk raw, exactly, behind a marker no WavPack block starts with
            return self.RAW_MARKER + np.ascontiguousarray(traces, dtype="<i2").tobytes()

    def decode(self, data, num_samples, num_channels, dtype):
        if bytes(data[:4]) == self.RAW_MARKER:
            if len(data) != 4 + 2 * num_samples * num_channels:
                raise CorruptDataError(f"{self.codec_id}: raw chunk of {len(data)} bytes where "
                                       f"{4 + 2 * num_samples * num_channels} are expected; the data is damaged")
            traces = np.frombuffer(data, dtype="<i2", offset=4).astype(dtype)
            return traces.reshape(num_samples, num_channels)
        if len(data) < 32:
            raise CorruptDataError(f"{self.codec_id}: chunk of {len(data)} bytes is too short to be a WavPack block")
        raw = _run_decoder(self.codec_id, self._wavpack.decode, data)
        traces = np.frombuffer(raw, dtype=dtype)
        return self._check_decoded(traces, num_samples, num_channels, self.codec_id)

    def hardware_profile(self, num_channels=1, sampling_frequency=30000.0):
        return HardwareProfile(
            operations_per_sample={"mac": 16, "add": 16, "compare": 6, "shift": 6},
            buffer_samples_per_channel=512,
            algorithmic_latency_samples=0,
            algorithmic_latency_chunks=1.0,
            notes="WavPack decorrelation passes (level 2: ~2-4 adaptive filter terms per sample) + adaptive Golomb "
                  "coding; each chunk is written as one WavPack block, so the encoder buffers one chunk",
        )


class BitTruncationCodec(Codec):
    """Drop the ``num_bits`` least significant bits (rounding to nearest), then code the rest
    losslessly with FLAC in 2-channel streams. Maximum error per sample: ``2 ** (num_bits - 1)``.

    Parameters
    ----------
    num_bits : int, default: 4
        Least significant bits removed (0-12).
    level : int, default: 5
        FLAC compression level of the lossless stage (0-8).
    """

    codec_id = "bit-truncation"
    lossless = False
    supported_dtypes = ("int16",)
    description = "LSB truncation (rounded) + FLAC"

    def __init__(self, num_bits: int = 4, level: int = 5):
        num_bits, level = int(num_bits), int(level)
        check_range(self.codec_id, "num_bits", num_bits, 0, 12, note="least significant bits removed; 0 is lossless")
        check_range(self.codec_id, "level", level, 0, 8, note="FLAC levels of the lossless stage")
        super().__init__(num_bits=num_bits, level=level)
        self._flac = FlacCodec(level=level, channel_chunk_size=2)
        self.lossless = self.params["num_bits"] == 0

    @property
    def max_error(self) -> int:
        """Largest absolute error per sample, in stored units."""
        num_bits = self.params["num_bits"]
        return 0 if num_bits == 0 else 2 ** (num_bits - 1)

    def encode(self, traces):
        traces = self.check_traces(traces)
        num_bits = self.params["num_bits"]
        if num_bits:
            half = 1 << (num_bits - 1)
            traces = ((traces.astype(np.int32) + half) >> num_bits).astype(np.int16)
        return self._flac.encode(traces)

    def decode(self, data, num_samples, num_channels, dtype):
        shifted = self._flac.decode(data, num_samples, num_channels, np.int16)
        num_bits = self.params["num_bits"]
        if not num_bits:
            return shifted.astype(dtype, copy=False)
        restored = shifted.astype(np.int32) << num_bits
        info = np.iinfo(np.dtype(dtype))
        return np.clip(restored, info.min, info.max).astype(dtype)

    def hardware_profile(self, num_channels=1, sampling_frequency=30000.0):
        flac = self._flac.hardware_profile(num_channels, sampling_frequency)
        operations = dict(flac.operations_per_sample)
        operations["add"] = operations.get("add", 0) + 1
        operations["shift"] = operations.get("shift", 0) + 1
        return HardwareProfile(
            operations_per_sample=operations,
            buffer_samples_per_channel=flac.buffer_samples_per_channel,
            algorithmic_latency_samples=flac.algorithmic_latency_samples,
            notes="one add and one shift per sample, then the FLAC encoder",
        )
