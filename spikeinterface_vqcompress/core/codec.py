"""The one interface every compressor implements: :class:`Codec`, and :class:`HardwareProfile`.

A codec turns one chunk of traces, shaped ``(num_samples, num_channels)``, into bytes and back.
Everything needed to decode a chunk besides its shape and dtype (which the container stores) is
either in those bytes or in the codec's JSON config, so a ratio computed from ``len(bytes)`` plus
the container's header is exact.

The contract (what a codec must do; ``tests/test_codec_conformance.py`` checks every registered one):

- ``codec_id`` is the registry name; ``get_config()`` returns ``{"id": codec_id, **params}`` with
  JSON values only, and ``type(codec).from_config(codec.get_config())`` rebuilds an equal codec.
- ``encode(traces)`` takes one chunk ``(num_samples, num_channels)`` of a dtype in
  ``supported_dtypes`` and returns ``bytes``; ``decode(data, num_samples, num_channels, dtype)``
  returns that chunk: exactly when ``lossless``, within ``max_error`` when the codec states one.
- Truncated or malformed bytes raise :class:`~spikeinterface_vqcompress.core.errors.CorruptDataError`
  (never an unrelated exception); a flip that leaves a chunk well-formed is caught by the
  container's per-chunk CRC, so damage is never a silent wrong answer. Other weights than the ones
  the data names raise :class:`~spikeinterface_vqcompress.core.errors.ModelMismatchError`.
- Encoding and decoding are deterministic across machines (no recomputed floating-point
  probabilities in the bitstream).

This module must not import spikeinterface: codecs are usable without it.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field

import numpy as np

from spikeinterface_vqcompress.core.errors import CorruptDataError


@dataclass
class HardwareProfile:
    """What a hardware report needs to know about a codec's encoder.

    Parameters
    ----------
    operations_per_sample : dict, default: {}
        Operations per input sample (per channel), keyed by kind: ``"mac"`` (multiply-accumulate),
        ``"add"``, ``"compare"``, ``"shift"``, ``"memory_access"``. This set is closed: the energy
        model prices exactly these kinds, and an unknown kind raises ``ValueError`` in the report.
    operations_per_spike : dict, default: {}
        Operations per detected spike (snippet codecs), same keys.
    parameter_count : int, default: 0
        Number of learned or stored parameters the encoder needs.
    parameter_bits : int, default: 0
        Bits per parameter at the precision the encoder would run.
    algorithmic_latency_samples : int, default: 0
        Samples the encoder must buffer before it can emit the code for a sample.
    algorithmic_latency_chunks : float, default: 0
        Whole chunks the encoder must see first (an encoder that fits side information, such as
        predictor coefficients, on the chunk it codes has one chunk of latency). The report turns it
        into time with the chunk duration of the run.
    buffer_samples_per_channel : int, default: 0
        Working memory of the encoder in samples per channel.
    notes : str, default: ""
        How the figures were counted.
    """

    operations_per_sample: dict = field(default_factory=dict)
    operations_per_spike: dict = field(default_factory=dict)
    parameter_count: int = 0
    parameter_bits: int = 0
    algorithmic_latency_samples: int = 0
    algorithmic_latency_chunks: float = 0.0
    buffer_samples_per_channel: int = 0
    notes: str = ""

    def to_dict(self) -> dict:
        return asdict(self)


class Codec:
    """Base class of all compressors.

    Subclasses set ``codec_id`` (the registry name), ``lossless`` and ``supported_dtypes``, store
    their constructor arguments (JSON values only) and implement :meth:`encode` and :meth:`decode`.

    Parameters
    ----------
    **params
        The codec's parameters; every one must be a JSON value so that the config stored in a
        container rebuilds the same codec.
    """

    codec_id: str = ""
    lossless: bool = False
    supported_dtypes: tuple = ("int16",)
    description: str = ""
    # sha256 of the model weights the codec needs, if any (stored in the container header)
    model_sha256: str | None = None

    def __init__(self, **params):
        self.params = dict(params)
        json.dumps(self.params)  # fail early on non-JSON parameters

    # -- configuration ---------------------------------------------------------------------
    def get_config(self) -> dict:
        """Return the JSON config that rebuilds this codec: ``{"id": codec_id, **params}``."""
        return {"id": self.codec_id, **self.params}

    @classmethod
    def from_config(cls, config: dict) -> "Codec":
        config = dict(config)
        config.pop("id", None)
        return cls(**config)

    def __repr__(self):
        params = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"{type(self).__name__}({params})"

    # -- the work ----------------------------------------------------------------------------
    def check_traces(self, traces: np.ndarray) -> np.ndarray:
        """Validate a chunk before encoding: 2D, supported dtype, finite values."""
        traces = np.asarray(traces)
        if traces.ndim != 2:
            raise ValueError(
                f"{self.codec_id}: traces must be 2D (num_samples, num_channels), got shape {traces.shape}"
            )
        if traces.shape[1] == 0:
            raise ValueError(f"{self.codec_id}: the recording has zero channels; select at least one channel")
        if traces.dtype.name not in self.supported_dtypes:
            raise TypeError(
                f"codec '{self.codec_id}' encodes {', '.join(self.supported_dtypes)} traces, got {traces.dtype}. "
                "Convert the recording first, e.g. spikeinterface.preprocessing.scale_to_int16(recording) "
                "or recording.astype('int16') for data already in integer units."
            )
        if traces.dtype.kind == "f" and not np.all(np.isfinite(traces)):
            raise ValueError(
                f"{self.codec_id}: traces contain NaN or inf values; clean or interpolate them before compressing"
            )
        return traces

    def encode(self, traces: np.ndarray) -> bytes:
        """Compress one chunk of traces shaped ``(num_samples, num_channels)`` into bytes."""
        raise NotImplementedError

    def decode(self, data: bytes, num_samples: int, num_channels: int, dtype) -> np.ndarray:
        """Rebuild a chunk of ``(num_samples, num_channels)`` traces of ``dtype`` from bytes."""
        raise NotImplementedError

    def hardware_profile(self, num_channels: int = 1, sampling_frequency: float = 30000.0) -> HardwareProfile:
        """Encoder operation counts, parameters and latency for the hardware report."""
        return HardwareProfile()

    # -- helpers shared by codecs --------------------------------------------------------------
    @staticmethod
    def _check_decoded(traces: np.ndarray, num_samples: int, num_channels: int, codec_id: str) -> np.ndarray:
        if traces.size != num_samples * num_channels:
            raise CorruptDataError(
                f"{codec_id}: decoded {traces.size} values where the container says "
                f"{num_samples} samples x {num_channels} channels; the data is damaged or truncated"
            )
        return traces.reshape(num_samples, num_channels)
