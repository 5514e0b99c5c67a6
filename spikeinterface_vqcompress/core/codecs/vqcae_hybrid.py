"""The VQ-CAE hybrid as a codec (``vqcae-hybrid``): one 7-bit code per 8000-sample segment.

Bitstream of one chunk ``(num_samples, num_channels)``, framed with :func:`pack_parts`:

1. the code indices of every segment, channel after channel, rANS-coded with the frozen integer
   frequency table shipped in the weights file (``index_frequencies``);
2. the side information: per segment, its minimum and maximum as little-endian int16
   (``int16[num_channels, num_segments, 2]``), 4 bytes per segment. They set the per-segment
   normalisation to ``[-1, 1]`` the tanh decoder needs (see :mod:`spikeinterface_vqcompress.core.nn.vqcae`).

Each channel is split into ``ceil(num_samples / 8000)`` segments; a shorter tail is padded by
repeating its last sample and cut after decoding (the chunk length comes from the container). So use
container chunks that are multiples of 8000 samples (``vqcompress encode`` does) to avoid a padded
segment per chunk. Decoding runs the VQ-VAE decoder on the codes, then the CAE post-filter, then
undoes the normalisation and rounds to the integer dtype. The CAE latent is never transmitted: the CAE
is a post-filter, exactly as in the paper.

Everything needed to decode is in the bytes or in the shipped model, whose sha256 is stored in the
codec config and in the container header and checked on load. Decoding is deterministic on one
machine; across machines, float32 differences could in rare cases change an encoder's argmin or a
rounded output sample by one unit.
"""

from __future__ import annotations

import numpy as np

from spikeinterface_vqcompress.core import weights
from spikeinterface_vqcompress.core.codec import Codec, HardwareProfile
from spikeinterface_vqcompress.core.errors import CorruptDataError, ModelMismatchError
from spikeinterface_vqcompress.core.framing import pack_parts, unpack_parts
from spikeinterface_vqcompress.core.threads import single_torch_thread

DEFAULT_MODEL = weights.default_model("vqcae-hybrid")


def _load_weights(path):
    import torch

    from spikeinterface_vqcompress.core.nn.vqcae import WEIGHTS_FORMAT, VQCAEHybrid

    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise CorruptDataError(f"{path} is not a vqcae-hybrid weights file (format 'vqcae-hybrid-weights/1')")
    network = VQCAEHybrid.from_state_dict(payload["state_dict"], payload["config"])
    return network, np.asarray(payload["index_frequencies"].numpy(), dtype=np.int64)


def load_vqcae_model(model: str = DEFAULT_MODEL):
    """Load (once per process) a hybrid model: ``(VQCAEHybrid, index_frequencies, sha256)``.

    Uses ``torch.load(weights_only=True)``: only tensors and plain containers are read.
    """
    (network, frequencies), digest = weights.load_cached("vqcae-hybrid", model, _load_weights)
    return network, frequencies, digest


def load_model_card(model: str = DEFAULT_MODEL) -> dict | None:
    """The JSON model card beside the weights (``<name>.json``), or None when there is none."""
    return weights.model_card("vqcae-hybrid", model)


class VQCAEHybridCodec(Codec):
    """The VQ-CAE hybrid (MLP VQ-VAE, one code per 8000-sample segment, CAE post-filter), lossy.

    Parameters
    ----------
    model : str, default: "vqcae_hybrid_n1"
        Shipped model name (``spikeinterface_vqcompress/models/<name>.pt``) or a path to a weights file.
    model_sha256 : str | None, default: None
        Expected sha256 of the weights file. None: computed from the file and stored in the config,
        so a container records exactly which weights decode it; a mismatch raises an error.
    post_filter : bool, default: True
        Run the CAE post-filter after the VQ-VAE decoder (the paper's hybrid); False gives the
        VQ-VAE output alone.
    """

    codec_id = "vqcae-hybrid"
    lossless = False
    supported_dtypes = ("int16",)
    description = "VQ-CAE hybrid (paper rebuild): one 7-bit code + min/max per 8000-sample segment"

    def __init__(self, model: str = DEFAULT_MODEL, model_sha256: str | None = None, post_filter: bool = True):
        network, frequencies, digest = load_vqcae_model(str(model))
        if model_sha256 is not None and model_sha256 != digest:
            raise ModelMismatchError(
                f"vqcae-hybrid model '{model}' has sha256 {digest[:16]}... but {str(model_sha256)[:16]}... is required "
                "(the data was encoded with other weights); install the package version that wrote it or pass the matching model file"
            )
        super().__init__(model=str(model), model_sha256=digest, post_filter=bool(post_filter))
        self.network = network
        self.index_frequencies = frequencies
        self.model_sha256 = digest
        self.segment_num_samples = network.segment_num_samples
        self.model_card = load_model_card(str(model))

    @property
    def training_files(self) -> list[str]:
        """Names of the files the model was trained on (from its model card; empty if unknown)."""
        return list(((self.model_card or {}).get("training") or {}).get("train_files") or [])

    def _segments(self, traces: np.ndarray):
        from spikeinterface_vqcompress.core.nn.vqcae import normalize_segments, segment_extrema, split_segments

        rows, extrema = [], []
        for channel in range(traces.shape[1]):
            signal = traces[:, channel]
            minimum, maximum = segment_extrema(signal, self.segment_num_samples)
            rows.append(normalize_segments(split_segments(signal, self.segment_num_samples), minimum, maximum))
            extrema.append(np.stack([minimum, maximum], axis=1))
        return np.concatenate(rows), np.stack(extrema)

    def encode_indices(self, traces: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Code indices ``(num_channels, num_segments)`` and extrema ``(num_channels, num_segments, 2)``."""
        import torch

        traces = self.check_traces(traces)
        segments, extrema = self._segments(traces)
        with torch.no_grad():
            indices = self.network.encode_indices(torch.from_numpy(segments)).numpy()
        return indices.reshape(traces.shape[1], -1), extrema

    def encode(self, traces):
        from spikeinterface_vqcompress.core.entropy import encode_symbols

        indices, extrema = self.encode_indices(traces)
        index_stream = encode_symbols(indices.ravel(), self.index_frequencies)
        side_information = np.ascontiguousarray(extrema, dtype="<i2").tobytes()
        return pack_parts([index_stream, side_information])

    def decode(self, data, num_samples, num_channels, dtype):
        import torch

        from spikeinterface_vqcompress.core.entropy import decode_symbols
        from spikeinterface_vqcompress.core.nn.vqcae import denormalize_segments

        if np.dtype(dtype) != np.int16:
            raise TypeError(f"{self.codec_id} decodes int16 traces, the container asks for {dtype}")
        num_segments = -(-int(num_samples) // self.segment_num_samples)
        index_stream, side_information = unpack_parts(data, 2, self.codec_id)
        expected = num_channels * num_segments * 2 * 2
        if len(side_information) != expected:
            raise CorruptDataError(
                f"{self.codec_id}: side information of {len(side_information)} bytes where {expected} are expected; "
                "the data is damaged or truncated"
            )
        extrema = np.frombuffer(side_information, dtype="<i2").reshape(num_channels, num_segments, 2)
        if np.any(extrema[..., 0] > extrema[..., 1]):
            raise CorruptDataError(f"{self.codec_id}: a segment minimum exceeds its maximum; the data is damaged")
        indices = decode_symbols(index_stream, self.index_frequencies, num_channels * num_segments)
        with torch.no_grad(), single_torch_thread():
            normalized = self.network.decode_indices(torch.from_numpy(indices), post_filter=self.params["post_filter"]).numpy()
        values = denormalize_segments(normalized, extrema[..., 0].ravel(), extrema[..., 1].ravel())
        values = values.reshape(num_channels, num_segments * self.segment_num_samples)[:, :num_samples]
        info = np.iinfo(np.int16)
        traces = np.clip(np.rint(values), info.min, info.max).astype(np.int16).T
        return np.ascontiguousarray(traces)

    def hardware_profile(self, num_channels=1, sampling_frequency=30000.0):
        config = self.network.config
        widths = [config["segment_num_samples"], *config["hidden_sizes"], config["latent_dim"]]
        macs_per_segment = sum(a * b for a, b in zip(widths[:-1], widths[1:])) + config["codebook_size"] * config["latent_dim"]
        encoder_parameters = sum(parameter.numel() for parameter in self.network.encoder.parameters())
        encoder_parameters += config["codebook_size"] * config["latent_dim"]
        return HardwareProfile(
            operations_per_sample={"mac": macs_per_segment / config["segment_num_samples"], "compare": 3.0,
                                   "memory_access": macs_per_segment / config["segment_num_samples"]},
            parameter_count=int(encoder_parameters),
            parameter_bits=16,
            algorithmic_latency_samples=config["segment_num_samples"],
            buffer_samples_per_channel=config["segment_num_samples"],
            notes="MLP encoder 8000->512->256->8 once per segment (+128x8 nearest-code search), min/max tracking per sample; "
                  "the weights (~4.2 M for the encoder) are far beyond an implant's memory budget",
        )
