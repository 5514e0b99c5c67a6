"""The learned lossy mode of the broadband codec (``broadband-rvq``): conv autoencoder + residual VQ.

Bitstream of one chunk ``(num_samples, num_channels)``, framed with
:func:`~spikeinterface_vqcompress.core.framing.pack_parts` into ``1 + num_stages`` parts:

1. side information: the per-channel offset (int16) and noise scale (float16), little-endian,
   4 bytes per channel (see :func:`.rvq.normalisation`);
2. one part per RVQ stage: the code indices of every (channel, latent step), channel-major,
   rANS-coded with that stage's frozen integer frequency table from the weights file.

The latent has one vector per channel every ``2 ** num_down`` samples (8 by default), so one stage
of 256 codes costs at most 1 bit per sample before entropy coding: ``num_stages`` is the rate knob
(1 stage ≈ 20× against int16 on MEArec, each further stage ≈ one more bit per 8 samples). A chunk
whose length is not a multiple of the stride is padded by repeating its last sample and cut after
decoding. Everything needed to decode is in the bytes or in the shipped weights, whose sha256 is
stored in the codec config (and container header) and checked on load. Decoding runs in float32:
deterministic on one machine; across machines a float difference can in rare cases move a rounded
sample by one unit.

This module must not import spikeinterface.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from spikeinterface_vqcompress.core.codec import Codec, HardwareProfile, check_range
from spikeinterface_vqcompress.core.errors import CorruptDataError, ModelMismatchError
from spikeinterface_vqcompress.core.framing import pack_parts, unpack_parts
from spikeinterface_vqcompress.core.threads import single_torch_thread
from spikeinterface_vqcompress.core import weights

DEFAULT_MODEL = weights.default_model("broadband-rvq")


def load_broadband_model(model: str = DEFAULT_MODEL):
    """Load (once per process) ``(BroadbandRVQ, index_frequencies (stages, codes), sha256)``."""
    from spikeinterface_vqcompress.core.codecs.broadband.rvq import load_weights

    (network, frequencies), digest = weights.load_cached("broadband-rvq", model, load_weights)
    return network, frequencies, digest


class BroadbandRVQCodec(Codec):
    """Learned lossy broadband codec: conv encoder over (channels, time), residual VQ, rANS.

    Parameters
    ----------
    num_stages : int, default: 1
        RVQ stages sent (the rate knob): 1 is the smallest (about 1 bit per 8 samples per channel
        before entropy coding), up to the model's trained number of stages.
    model : str, default: "broadband_rvq_mearec"
        Shipped model name (``spikeinterface_vqcompress/models/<name>.pt``) or a weights file path.
    model_sha256 : str | None, default: None
        Expected sha256 of the weights. None: computed from the file and stored in the config, so a
        container records exactly which weights decode it; a mismatch raises an error.
    """

    codec_id = "broadband-rvq"
    lossless = False
    supported_dtypes = ("int16",)
    description = "our broadband learned lossy codec: conv autoencoder over channels x time + residual VQ + rANS"

    def __init__(self, num_stages: int = 1, model: str = DEFAULT_MODEL, model_sha256: str | None = None):
        network, frequencies, digest = load_broadband_model(str(model))
        if model_sha256 is not None and model_sha256 != digest:
            raise ModelMismatchError(
                f"broadband-rvq model '{model}' has sha256 {digest[:16]}... but {str(model_sha256)[:16]}... is required "
                "(the data was encoded with other weights); install the package version that wrote it or pass the matching model file"
            )
        num_stages = int(num_stages)
        check_range(self.codec_id, "num_stages", num_stages, 1, network.config["num_stages"],
                    note=f"the RVQ stages model '{model}' was trained with")
        super().__init__(num_stages=num_stages, model=str(model), model_sha256=digest)
        self.network = network
        self.index_frequencies = frequencies
        self.model_sha256 = digest
        self.model_card = weights.model_card("broadband-rvq", str(model))

    @property
    def training_files(self) -> list[str]:
        """Names of the files the model was trained on (from its model card; empty if unknown)."""
        return [Path(item["source"]).name for item in (self.model_card or {}).get("data", [])]

    def encode_indices(self, traces: np.ndarray):
        """``(indices (channels, steps, stages) int64, offset int16 (channels,), scale float16 (channels,))``."""
        import torch

        from spikeinterface_vqcompress.core.codecs.broadband.rvq import normalisation

        traces = self.check_traces(traces)
        offset, scale = normalisation(traces)
        x = (traces.astype(np.float32) - offset) / scale.astype(np.float32)
        with torch.no_grad():
            indices = self.network.encode_indices(torch.from_numpy(np.ascontiguousarray(x.T))[None], self.params["num_stages"])
        return indices[0].numpy(), offset, scale

    def encode(self, traces):
        from spikeinterface_vqcompress.core.entropy import encode_symbols

        indices, offset, scale = self.encode_indices(traces)
        side_information = offset.astype("<i2").tobytes() + scale.astype("<f2").tobytes()
        streams = [encode_symbols(indices[..., stage].ravel(), self.index_frequencies[stage])
                   for stage in range(indices.shape[-1])]
        return pack_parts([side_information, *streams])

    def decode(self, data, num_samples, num_channels, dtype):
        import torch

        from spikeinterface_vqcompress.core.entropy import decode_symbols

        if np.dtype(dtype) != np.int16:
            raise TypeError(f"{self.codec_id} decodes int16 traces, the container asks for {dtype}")
        num_stages = self.params["num_stages"]
        parts = unpack_parts(data, 1 + num_stages, self.codec_id)
        if len(parts[0]) != 4 * num_channels:
            raise CorruptDataError(f"{self.codec_id}: side information of {len(parts[0])} bytes where {4 * num_channels} "
                                   "are expected; the data is damaged or truncated")
        offset = np.frombuffer(parts[0][:2 * num_channels], dtype="<i2").astype(np.float32)
        scale = np.frombuffer(parts[0][2 * num_channels:], dtype="<f2").astype(np.float32)
        if not np.all(np.isfinite(scale)) or np.any(scale < 1.0):
            raise CorruptDataError(f"{self.codec_id}: a channel scale is not a finite value >= 1; the data is damaged")
        steps = self.network.padded_length(num_samples) // self.network.stride
        indices = np.stack([decode_symbols(stream, self.index_frequencies[stage], num_channels * steps)
                            for stage, stream in enumerate(parts[1:])], axis=-1).reshape(num_channels, steps, num_stages)
        with torch.no_grad(), single_torch_thread():
            normalised = self.network.decode_indices(torch.from_numpy(indices)[None], int(num_samples))[0].numpy()
        values = normalised.T * scale + offset
        traces = np.clip(np.rint(values), -32768, 32767).astype(np.int16)
        return np.ascontiguousarray(traces)

    def hardware_profile(self, num_channels=1, sampling_frequency=30000.0):
        macs = self.network.encoder_macs_per_sample(self.params["num_stages"])
        parameters = sum(p.numel() for p in self.network.encoder.parameters())
        parameters += sum(q.codebook.numel() for q in self.network.quantizers[:self.params["num_stages"]])
        return HardwareProfile(
            operations_per_sample={"mac": macs, "add": 4.0, "compare": 4.0, "memory_access": macs},
            parameter_count=int(parameters),
            parameter_bits=8,
            algorithmic_latency_samples=self.network.receptive_field_samples(),
            algorithmic_latency_chunks=1.0,
            buffer_samples_per_channel=2 * self.network.receptive_field_samples(),
            notes=("conv encoder MACs counted layer by layer at their output rate + the RVQ nearest-code search "
                   "(stages x codes x latent_dim per latent step); the per-channel offset and noise scale are measured on "
                   "the chunk being coded and sent ahead of it, so the encoder buffers one chunk (a running estimate "
                   "would remove that); rANS coding adds a few operations per latent step"),
        )
