"""The VQ-CAE hybrid ("Efficient Compression of Neural Recordings Using VQ-CAE"), rebuilt as described.

Model
-----
- VQ-VAE over one segment of ``segment_num_samples`` (8000) samples: MLP encoder
  8000 -> 512 -> 256 -> 8 (ReLU), a codebook of 128 x 8 (one index per segment), MLP decoder
  8 -> 256 -> 512 -> 8000 with a final tanh.
- CAE run on the VQ-VAE output: three stride-2 ``Conv1d`` (1 -> 16 -> 32 -> 16, kernel 4, padding 1,
  ReLU), mirrored ``ConvTranspose1d`` (16 -> 32 -> 16 -> 1) and a final tanh. Its latent is never
  transmitted: at decode time the CAE only post-filters the VQ-VAE's output (as in the paper's code).
- Loss: ``MSE_cae + alpha * (MSE_vq + codebook + commitment)``; Adam, learning rate 1e-3, batch 32,
  100 epochs in the paper.

Normalisation (the paper does not pin it down; this is ours, documented): each segment is mapped to
``[-1, 1]`` by its own minimum and maximum, ``y = (x - (max + min) / 2) / ((max - min) / 2)``; the
two integers ``min`` and ``max`` are the per-segment side information the codec transmits. The tail
of a signal shorter than a segment is padded by repeating its last sample (the pad is not counted in
min/max) and cut after decoding; the true length comes from the container.

This module must not import spikeinterface.
"""

from __future__ import annotations

import math
import time

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from spikeinterface_vqcompress.core.nn.vq import VectorQuantizer

DEFAULT_CONFIG = {
    "segment_num_samples": 8000,
    "hidden_sizes": [512, 256],
    "latent_dim": 8,
    "codebook_size": 128,
    "cae_channels": [16, 32, 16],
    "cae_kernel_size": 4,
    "commitment_weight": 0.25,
    "alpha": 1.0,
}


# -- segmentation and normalisation (numpy) ------------------------------------------------------------
def split_segments(signal: np.ndarray, segment_num_samples: int) -> np.ndarray:
    """Cut a 1D signal into ``ceil(n / segment_num_samples)`` rows, padding the tail by edge repetition."""
    signal = np.asarray(signal).ravel()
    num_samples = signal.size
    if num_samples == 0:
        return np.zeros((0, segment_num_samples), dtype=signal.dtype)
    num_segments = math.ceil(num_samples / segment_num_samples)
    padded = np.empty(num_segments * segment_num_samples, dtype=signal.dtype)
    padded[:num_samples] = signal
    padded[num_samples:] = signal[-1]
    return padded.reshape(num_segments, segment_num_samples)


def segment_extrema(signal: np.ndarray, segment_num_samples: int) -> tuple[np.ndarray, np.ndarray]:
    """Per-segment minimum and maximum over the real samples (not the padding) of a 1D signal."""
    signal = np.asarray(signal).ravel()
    starts = np.arange(0, signal.size, segment_num_samples)
    if starts.size == 0:
        empty = np.zeros(0, dtype=signal.dtype)
        return empty, empty
    return np.minimum.reduceat(signal, starts), np.maximum.reduceat(signal, starts)


def normalize_segments(segments: np.ndarray, minimum: np.ndarray, maximum: np.ndarray) -> np.ndarray:
    """Map each row to ``[-1, 1]`` with its ``minimum`` and ``maximum`` (float32; constant rows give 0)."""
    minimum = np.asarray(minimum, dtype=np.float64)[:, None]
    maximum = np.asarray(maximum, dtype=np.float64)[:, None]
    center = (maximum + minimum) / 2.0
    half_range = (maximum - minimum) / 2.0
    safe = np.where(half_range > 0, half_range, 1.0)
    normalized = (np.asarray(segments, dtype=np.float64) - center) / safe
    return np.clip(normalized, -1.0, 1.0).astype(np.float32)


def denormalize_segments(normalized: np.ndarray, minimum: np.ndarray, maximum: np.ndarray) -> np.ndarray:
    """Inverse of :func:`normalize_segments` (float64)."""
    minimum = np.asarray(minimum, dtype=np.float64)[:, None]
    maximum = np.asarray(maximum, dtype=np.float64)[:, None]
    return (maximum + minimum) / 2.0 + np.asarray(normalized, dtype=np.float64) * (maximum - minimum) / 2.0


def signals_to_training_segments(signals, segment_num_samples: int = 8000) -> np.ndarray:
    """Normalised segments ``(num_segments, segment_num_samples)`` of a list of 1D signals (training set)."""
    rows = []
    for signal in signals:
        segments = split_segments(signal, segment_num_samples)
        minimum, maximum = segment_extrema(signal, segment_num_samples)
        rows.append(normalize_segments(segments, minimum, maximum))
    return np.concatenate(rows) if rows else np.zeros((0, segment_num_samples), dtype=np.float32)


# -- the model --------------------------------------------------------------------------------------------
class VQCAEHybrid(nn.Module):
    """VQ-VAE (MLP, one code per segment) followed by a convolutional autoencoder post-filter.

    Parameters
    ----------
    segment_num_samples : int, default: 8000
    hidden_sizes : list of int, default: [512, 256]
        Encoder hidden widths (the decoder mirrors them).
    latent_dim : int, default: 8
    codebook_size : int, default: 128
    cae_channels : list of int, default: [16, 32, 16]
    cae_kernel_size : int, default: 4
        Kernel of the stride-2 convolutions (padding ``(k - 2) / 2`` so each halves the length exactly).
    commitment_weight : float, default: 0.25
    alpha : float, default: 1.0
        Weight of the VQ-VAE terms in the hybrid loss.
    """

    def __init__(self, segment_num_samples=8000, hidden_sizes=(512, 256), latent_dim=8, codebook_size=128,
                 cae_channels=(16, 32, 16), cae_kernel_size=4, commitment_weight=0.25, alpha=1.0):
        super().__init__()
        self.config = {
            "segment_num_samples": int(segment_num_samples),
            "hidden_sizes": [int(size) for size in hidden_sizes],
            "latent_dim": int(latent_dim),
            "codebook_size": int(codebook_size),
            "cae_channels": [int(channel) for channel in cae_channels],
            "cae_kernel_size": int(cae_kernel_size),
            "commitment_weight": float(commitment_weight),
            "alpha": float(alpha),
        }
        if segment_num_samples % (2 ** len(cae_channels)) != 0:
            raise ValueError(f"segment_num_samples must be divisible by {2 ** len(cae_channels)} for the CAE's stride-2 stages")
        if cae_kernel_size % 2 != 0:
            raise ValueError("cae_kernel_size must be even so that each stride-2 stage halves the length exactly")
        widths = [segment_num_samples, *hidden_sizes, latent_dim]
        encoder = []
        for index, (width_in, width_out) in enumerate(zip(widths[:-1], widths[1:])):
            encoder.append(nn.Linear(width_in, width_out))
            if index < len(widths) - 2:
                encoder.append(nn.ReLU())
        self.encoder = nn.Sequential(*encoder)
        self.quantizer = VectorQuantizer(codebook_size, latent_dim, commitment_weight=commitment_weight)
        decoder = []
        reversed_widths = widths[::-1]
        for index, (width_in, width_out) in enumerate(zip(reversed_widths[:-1], reversed_widths[1:])):
            decoder.append(nn.Linear(width_in, width_out))
            decoder.append(nn.ReLU() if index < len(widths) - 2 else nn.Tanh())
        self.decoder = nn.Sequential(*decoder)
        padding = (cae_kernel_size - 2) // 2
        channels = [1, *cae_channels]
        cae_encoder, cae_decoder = [], []
        for channel_in, channel_out in zip(channels[:-1], channels[1:]):
            cae_encoder += [nn.Conv1d(channel_in, channel_out, cae_kernel_size, stride=2, padding=padding), nn.ReLU()]
        reversed_channels = channels[::-1]
        for index, (channel_in, channel_out) in enumerate(zip(reversed_channels[:-1], reversed_channels[1:])):
            cae_decoder.append(nn.ConvTranspose1d(channel_in, channel_out, cae_kernel_size, stride=2, padding=padding))
            cae_decoder.append(nn.ReLU() if index < len(channels) - 2 else nn.Tanh())
        self.cae_encoder = nn.Sequential(*cae_encoder)
        self.cae_decoder = nn.Sequential(*cae_decoder)
        self.alpha = float(alpha)

    @property
    def segment_num_samples(self) -> int:
        return self.config["segment_num_samples"]

    @property
    def codebook_size(self) -> int:
        return self.config["codebook_size"]

    def post_filter(self, vq_output: torch.Tensor) -> torch.Tensor:
        """The CAE on ``(batch, segment_num_samples)`` VQ-VAE outputs."""
        return self.cae_decoder(self.cae_encoder(vq_output.unsqueeze(1))).squeeze(1)

    def forward(self, segments: torch.Tensor) -> dict:
        """Training pass on normalised segments ``(batch, segment_num_samples)``.

        Returns
        -------
        dict
            ``loss`` (the hybrid loss), its terms ``mse_cae``, ``mse_vq``, ``codebook_loss``,
            ``commitment_loss``, and ``reconstruction_vq``, ``reconstruction``, ``indices``,
            ``perplexity``.
        """
        latent = self.encoder(segments)
        quantized = self.quantizer(latent)
        reconstruction_vq = self.decoder(quantized["quantized"])
        reconstruction = self.post_filter(reconstruction_vq)
        mse_vq = F.mse_loss(reconstruction_vq, segments)
        mse_cae = F.mse_loss(reconstruction, segments)
        loss = mse_cae + self.alpha * (mse_vq + quantized["codebook_loss"] + quantized["commitment_loss"])
        return {
            "loss": loss,
            "mse_cae": mse_cae,
            "mse_vq": mse_vq,
            "codebook_loss": quantized["codebook_loss"],
            "commitment_loss": quantized["commitment_loss"],
            "perplexity": quantized["perplexity"],
            "reconstruction_vq": reconstruction_vq,
            "reconstruction": reconstruction,
            "indices": quantized["indices"],
        }

    @torch.no_grad()
    def encode_indices(self, segments: torch.Tensor) -> torch.Tensor:
        """Code index of each normalised segment ``(batch, segment_num_samples)`` -> ``(batch,)``."""
        return self.quantizer.quantize_indices(self.encoder(segments))

    @torch.no_grad()
    def decode_indices(self, indices: torch.Tensor, post_filter: bool = True) -> torch.Tensor:
        """Normalised segments rebuilt from code indices: VQ-VAE decoder, then (by default) the CAE."""
        output = self.decoder(self.quantizer.lookup(indices))
        return self.post_filter(output) if post_filter else output

    @classmethod
    def from_state_dict(cls, state_dict: dict, config: dict | None = None) -> "VQCAEHybrid":
        """Rebuild a model from its ``state_dict`` (float16 or float32 tensors) and its ``config``."""
        config = {("codebook_size" if key == "num_codes" else key): value for key, value in (config or {}).items()}
        model = cls(**{**DEFAULT_CONFIG, **config})  # weights written before the rename say "num_codes"
        state = {key: value.float() if value.is_floating_point() and key != "quantizer.usage_counts" else value
                 for key, value in state_dict.items()}
        model.load_state_dict(state)
        model.eval()
        return model


WEIGHTS_FORMAT = "vqcae-hybrid-weights/1"


def save_weights(model: VQCAEHybrid, index_frequencies, path, dtype=torch.float16) -> None:
    """Write a weights file the ``vqcae-hybrid`` codec loads with ``torch.load(weights_only=True)``.

    The file holds ``{"format", "config", "state_dict", "index_frequencies"}``: floating-point
    tensors in ``dtype`` (float16 by default, halving the ~34 MB of float32 weights), the code
    usage counts in float64 and the frozen integer table of the index coder.

    Parameters
    ----------
    model : VQCAEHybrid
    index_frequencies : array-like of int
        Frozen rANS table of the code indices (sums to a power of two).
    path : str | Path
    dtype : torch.dtype, default: torch.float16
    """
    from pathlib import Path

    state = {key: (value.to(dtype) if value.is_floating_point() and key != "quantizer.usage_counts" else value).contiguous()
             for key, value in model.state_dict().items()}
    payload = {
        "format": WEIGHTS_FORMAT,
        "config": dict(model.config),
        "state_dict": state,
        "index_frequencies": torch.as_tensor(np.asarray(index_frequencies, dtype=np.int32)),
    }
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(payload, path)


def count_parameters(model: nn.Module) -> int:
    return sum(parameter.numel() for parameter in model.parameters())


def train_vqcae(segments: np.ndarray, epochs: int = 100, batch_size: int = 32, learning_rate: float = 1e-3,
                seed: int = 0, config: dict | None = None, device: str = "cpu", log_every_epochs: int = 10,
                log=print) -> tuple[VQCAEHybrid, list[dict]]:
    """Train the hybrid on normalised segments with Adam, as in the paper.

    Parameters
    ----------
    segments : np.ndarray
        ``(num_segments, segment_num_samples)`` float32 in ``[-1, 1]`` (see :func:`signals_to_training_segments`).
    epochs : int, default: 100
    batch_size : int, default: 32
    learning_rate : float, default: 1e-3
    seed : int, default: 0
        Seeds the initial weights and the batch order.
    config : dict | None, default: None
        Model configuration overriding :data:`DEFAULT_CONFIG`.
    device : str, default: "cpu"
    log_every_epochs : int, default: 10
        Print the mean loss terms every so many epochs (0: silent).
    log : callable, default: print

    Returns
    -------
    model : VQCAEHybrid
        In eval mode; ``model.quantizer.usage_counts`` holds code usage over the last epoch.
    history : list of dict
        Mean loss terms per epoch.
    """
    torch.manual_seed(seed)
    generator = torch.Generator().manual_seed(seed)
    model = VQCAEHybrid(**{**DEFAULT_CONFIG, **(config or {})}).to(device)
    data = torch.as_tensor(np.asarray(segments, dtype=np.float32))
    if data.ndim != 2 or data.shape[1] != model.segment_num_samples:
        raise ValueError(f"segments must be (num_segments, {model.segment_num_samples}), got {tuple(data.shape)}")
    optimizer = torch.optim.Adam(model.parameters(), lr=learning_rate)
    history = []
    start = time.perf_counter()
    for epoch in range(epochs):
        model.train()
        if epoch == epochs - 1:
            model.quantizer.usage_counts.zero_()  # the frozen entropy table counts the final epoch's usage
        order = torch.randperm(data.shape[0], generator=generator)
        totals = {"loss": 0.0, "mse_cae": 0.0, "mse_vq": 0.0, "codebook_loss": 0.0, "commitment_loss": 0.0, "perplexity": 0.0}
        num_batches = 0
        for batch_start in range(0, data.shape[0], batch_size):
            batch = data[order[batch_start : batch_start + batch_size]].to(device)
            output = model(batch)
            optimizer.zero_grad()
            output["loss"].backward()
            optimizer.step()
            for key in totals:
                totals[key] += float(output[key].detach())
            num_batches += 1
        record = {key: value / max(num_batches, 1) for key, value in totals.items()}
        record["epoch"] = epoch + 1
        record["elapsed_s"] = time.perf_counter() - start
        history.append(record)
        if log_every_epochs and ((epoch + 1) % log_every_epochs == 0 or epoch == 0):
            log(f"epoch {epoch + 1}/{epochs}: loss {record['loss']:.5f} mse_cae {record['mse_cae']:.5f} "
                f"mse_vq {record['mse_vq']:.5f} perplexity {record['perplexity']:.1f} ({record['elapsed_s']:.0f} s)")
    model.eval()
    return model, history
