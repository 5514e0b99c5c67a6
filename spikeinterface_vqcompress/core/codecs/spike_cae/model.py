"""Deep compressive autoencoder for action-potential snippets (Wu, Zhao, Keefer & Yang, J. Neural Eng. 2018).

Model
-----
Input: aligned multichannel spike snippets ``(n, C, T)`` in uV, the trough (negative peak) of the
peak channel at sample :attr:`SpikeCAE.trough_sample`, channel 0 = peak channel, then neighbours
by increasing distance from it. Inside the model the snippets are z-scored per time sample (one
mean and one standard deviation per ``(channel, sample)``, stored as buffers fitted on training
data), as in the paper.

- Encoder: ``Conv1d(C -> 256, k=1) + BN + ReLU``; one ResNeXt bottleneck block
  (``256 -> 128 -> 256``, 32 groups, k=3) applied twice with *shared* weights, each application
  followed by ``MaxPool1d(2)``; ``Conv1d(256 -> 16, k=1)``. Latent ``16 x T/4``.
- Vector quantisation: each of the 16 latent channels' time vector (length ``T/4``) is one vector,
  quantised against one codebook of ``codebook_size`` vectors: 16 code indices per spike.
  Codebook updates: VQ-VAE codebook loss + commitment 0.15 with straight-through gradient, or EMA
  (decay 0.99) with k-means initialisation and dead-code restarts
  (:class:`~spikeinterface_vqcompress.core.nn.vq.VectorQuantizer`).
- Decoder (mirror): ``Conv1d(16 -> 256, k=1) + BN + ReLU``; twice (nearest upsampling x2, the
  shared decoder bottleneck block); ``Conv1d(256 -> C, k=1)``; de-normalisation.

Entropy coding of the indices: :meth:`SpikeCAE.frequency_tables` gives one frozen integer table
per latent position, built from index counts on the training data (buffer ``index_counts``), to be
used with :mod:`spikeinterface_vqcompress.core.entropy.rans`. The tables ship with the weights, so they
cost no bytes per snippet.

Shipped models (``spikeinterface_vqcompress/models/spike_cae_*.pt`` + JSON model cards) load with
:func:`load_spike_cae`; a weights file holds ``{"format": ..., "config": dict, "state_dict": dict}``
and is read with ``torch.load(..., weights_only=True)``.

This module must not import spikeinterface.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from spikeinterface_vqcompress.core import weights
from spikeinterface_vqcompress.core.entropy.rans import build_frequency_table
from spikeinterface_vqcompress.core.nn.vq import VectorQuantizer

#: Format tag stored in weights files written by :func:`save_spike_cae`.
WEIGHTS_FORMAT = "spike-cae-v1"

#: Names the weights files written before the vocabulary was made one use (stored name -> name now).
#: :func:`model_sha256` hashes the config under the stored names, so the hashes that containers
#: carry stay valid.
LEGACY_CONFIG_NAMES = {"num_codes": "codes_per_spike"}

DEFAULT_CONFIG = {
    "num_channels": 4,
    "num_samples": 64,
    "trough_sample": 21,
    "codes_per_spike": 16,
    "codebook_size": 128,
    "hidden_channels": 256,
    "bottleneck_channels": 128,
    "groups": 32,
    "kernel_size": 3,
    "num_pool": 2,
    "commitment_weight": 0.15,
    "use_ema": False,
    "ema_decay": 0.99,
    "dead_code_threshold": 0.0,
    "sampling_frequency_hz": 32000.0,
    "loss_domain": "relative",
}


class ResNeXtBottleneck(nn.Module):
    """ResNeXt bottleneck: 1x1 reduce, grouped k-conv, 1x1 expand (each with BN), identity shortcut."""

    def __init__(self, channels: int, bottleneck_channels: int, groups: int, kernel_size: int):
        super().__init__()
        if bottleneck_channels % groups:
            raise ValueError(f"bottleneck_channels ({bottleneck_channels}) must be divisible by groups ({groups})")
        if kernel_size % 2 == 0:
            raise ValueError(f"kernel_size must be odd, got {kernel_size}")
        self.reduce = nn.Conv1d(channels, bottleneck_channels, 1, bias=False)
        self.reduce_norm = nn.BatchNorm1d(bottleneck_channels)
        self.grouped = nn.Conv1d(bottleneck_channels, bottleneck_channels, kernel_size, padding=kernel_size // 2,
                                 groups=groups, bias=False)
        self.grouped_norm = nn.BatchNorm1d(bottleneck_channels)
        self.expand = nn.Conv1d(bottleneck_channels, channels, 1, bias=False)
        self.expand_norm = nn.BatchNorm1d(channels)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        y = F.relu(self.reduce_norm(self.reduce(x)))
        y = F.relu(self.grouped_norm(self.grouped(y)))
        y = self.expand_norm(self.expand(y))
        return F.relu(x + y)


def _fold_batch_norm(conv: nn.Conv1d, norm: nn.BatchNorm1d | None) -> tuple[torch.Tensor, torch.Tensor]:
    """Weight and bias of ``norm(conv(x))`` as one convolution (inference statistics)."""
    weight = conv.weight.detach()
    bias = conv.bias.detach() if conv.bias is not None else torch.zeros(weight.shape[0], dtype=weight.dtype)
    if norm is None:
        return weight.clone(), bias.clone()
    scale = norm.weight.detach() / torch.sqrt(norm.running_var + norm.eps)
    return weight * scale[:, None, None], (bias - norm.running_mean) * scale + norm.bias.detach()


class FoldedEncoder:
    """Inference-only copy of a :class:`SpikeCAE` encoder: the same function, fewer memory passes.

    Every batch norm is folded into the convolution before it, and the activations are kept
    time-major (``(n, T, C)``), so that each 1x1 convolution is one matrix product with its bias
    (``torch.addmm``) and ReLUs run in place; the grouped k-tap convolution and the max-pool work
    on the same layout. Snippets are processed ``micro_batch`` at a time so that the activations
    (``micro_batch x T x hidden_channels`` floats) stay in the CPU cache. The result equals
    :meth:`SpikeCAE.encode_latent` in eval mode up to float rounding (the folding reorders sums).

    Parameters
    ----------
    model : SpikeCAE
        The weights are copied: a later change to ``model`` needs a new ``FoldedEncoder``.
    micro_batch : int, default: 32
        Snippets per pass.
    """

    def __init__(self, model: "SpikeCAE", micro_batch: int = 32):
        with torch.no_grad():
            self.mean = model.mean_uV.detach().clone()
            self.inverse_std = 1.0 / model.std_uV.detach()
            weight, self.input_bias = _fold_batch_norm(model.encoder_input, model.encoder_input_norm)
            self.input_weight = weight[:, :, 0].t().contiguous()
            block = model.encoder_block
            weight, self.reduce_bias = _fold_batch_norm(block.reduce, block.reduce_norm)
            self.reduce_weight = weight[:, :, 0].t().contiguous()
            self.grouped_weight, self.grouped_bias = _fold_batch_norm(block.grouped, block.grouped_norm)
            weight, self.expand_bias = _fold_batch_norm(block.expand, block.expand_norm)
            self.expand_weight = weight[:, :, 0].t().contiguous()
            weight, self.output_bias = _fold_batch_norm(model.encoder_output, None)
            self.output_weight = weight[:, :, 0].t().contiguous()
        self.groups = block.grouped.groups
        self.padding = block.grouped.padding[0]
        self.num_pool = model.num_pool
        self.micro_batch = max(int(micro_batch), 1)

    def _linear(self, x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor) -> torch.Tensor:
        n, length, channels = x.shape
        return torch.addmm(bias, x.reshape(n * length, channels), weight).view(n, length, -1)

    def _latent(self, snippets_uV: torch.Tensor) -> torch.Tensor:
        x = ((snippets_uV - self.mean) * self.inverse_std).transpose(1, 2)  # (n, T, C)
        h = self._linear(x, self.input_weight, self.input_bias).relu_()
        for _ in range(self.num_pool):
            y = self._linear(h, self.reduce_weight, self.reduce_bias).relu_()
            y = F.conv1d(y.transpose(1, 2), self.grouped_weight, self.grouped_bias, padding=self.padding,
                         groups=self.groups).relu_().transpose(1, 2)
            y = self._linear(y, self.expand_weight, self.expand_bias)
            h = y.add_(h).relu_()
            n, length, channels = h.shape
            h = h.view(n, length // 2, 2, channels).amax(dim=2)
        return self._linear(h, self.output_weight, self.output_bias).transpose(1, 2)  # (n, codes_per_spike, code_dim)

    @torch.no_grad()
    def __call__(self, snippets_uV: torch.Tensor) -> torch.Tensor:
        """Continuous latent ``(n, codes_per_spike, code_dim)`` of float32 snippets ``(n, C, T)`` in uV."""
        parts = [self._latent(snippets_uV[start:start + self.micro_batch])
                 for start in range(0, snippets_uV.shape[0], self.micro_batch)]
        return torch.cat(parts) if len(parts) != 1 else parts[0]


class SpikeCAE(nn.Module):
    """Compressive autoencoder with a vector-quantised latent for aligned spike snippets.

    Parameters
    ----------
    num_channels : int, default: 4
        Channels per snippet (peak channel first, then neighbours by distance).
    num_samples : int, default: 64
        Samples per snippet; must be divisible by ``2 ** num_pool``.
    trough_sample : int | None, default: None
        Sample index of the trough on the peak channel; None for ``num_samples // 3``.
    codes_per_spike : int, default: 16
        Latent channels = code indices per spike.
    codebook_size : int, default: 128
        Codebook entries (128 in the paper for 4 x 64, 512 for Neuropixels 15 x 48).
    hidden_channels, bottleneck_channels, groups, kernel_size : int, default: 256, 128, 32, 3
        Width of the network and of the ResNeXt bottleneck.
    num_pool : int, default: 2
        Applications of the shared block, each followed by a x2 max-pool (x2 upsampling in the
        decoder); the latent vector length is ``num_samples / 2 ** num_pool``.
    commitment_weight : float, default: 0.15
        VQ-VAE commitment weight.
    use_ema : bool, default: False
        EMA codebook (decay ``ema_decay``, k-means init, dead-code restarts) instead of the
        codebook loss.
    ema_decay : float, default: 0.99
    dead_code_threshold : float, default: 0.0
        Restart codes used less than this (per batch, EMA usage); 0 disables.
    sampling_frequency_hz : float, default: 32000.0
        Sampling frequency the model was trained at (informative; callers resample if needed).
    loss_domain : "relative" | "normalized", default: "relative"
        Training reconstruction loss: "relative" = per-snippet ``||x - x_hat||^2 / ||x||^2`` in uV
        (the linear form of the per-snippet SNDR, what the benchmarks measure); "normalized" = MSE
        of the z-scored snippets. The input is z-scored per time sample either way (as in the paper).
    """

    def __init__(self, num_channels: int = 4, num_samples: int = 64, trough_sample: int | None = None,
                 codes_per_spike: int = 16, codebook_size: int = 128, hidden_channels: int = 256,
                 bottleneck_channels: int = 128, groups: int = 32, kernel_size: int = 3, num_pool: int = 2,
                 commitment_weight: float = 0.15, use_ema: bool = False, ema_decay: float = 0.99,
                 dead_code_threshold: float = 0.0, sampling_frequency_hz: float = 32000.0,
                 loss_domain: str = "relative"):
        super().__init__()
        self.num_channels = int(num_channels)
        self.num_samples = int(num_samples)
        self.num_pool = int(num_pool)
        if self.num_samples % (2 ** self.num_pool):
            raise ValueError(f"num_samples ({num_samples}) must be divisible by 2**num_pool ({2 ** num_pool})")
        self.trough_sample = int(self.num_samples // 3 if trough_sample is None else trough_sample)
        if not 0 <= self.trough_sample < self.num_samples:
            raise ValueError(f"trough_sample must lie in [0, {self.num_samples}), got {self.trough_sample}")
        self.codes_per_spike = int(codes_per_spike)
        self.codebook_size = int(codebook_size)
        self.code_dim = self.num_samples // (2 ** self.num_pool)
        self.hidden_channels = int(hidden_channels)
        self.bottleneck_channels = int(bottleneck_channels)
        self.groups = int(groups)
        self.kernel_size = int(kernel_size)
        self.commitment_weight = float(commitment_weight)
        self.use_ema = bool(use_ema)
        self.ema_decay = float(ema_decay)
        self.dead_code_threshold = float(dead_code_threshold)
        self.sampling_frequency_hz = float(sampling_frequency_hz)
        if loss_domain not in ("relative", "normalized"):
            raise ValueError(f"loss_domain must be 'relative' or 'normalized', got {loss_domain!r}")
        self.loss_domain = loss_domain

        # encoder
        self.encoder_input = nn.Conv1d(self.num_channels, self.hidden_channels, 1, bias=False)
        self.encoder_input_norm = nn.BatchNorm1d(self.hidden_channels)
        self.encoder_block = ResNeXtBottleneck(self.hidden_channels, self.bottleneck_channels, self.groups,
                                               self.kernel_size)
        self.encoder_output = nn.Conv1d(self.hidden_channels, self.codes_per_spike, 1)
        # quantiser
        self.quantizer = VectorQuantizer(self.codebook_size, self.code_dim, commitment_weight=self.commitment_weight,
                                         use_ema=self.use_ema, ema_decay=self.ema_decay, kmeans_init=True,
                                         dead_code_threshold=self.dead_code_threshold)
        # decoder
        self.decoder_input = nn.Conv1d(self.codes_per_spike, self.hidden_channels, 1, bias=False)
        self.decoder_input_norm = nn.BatchNorm1d(self.hidden_channels)
        self.decoder_block = ResNeXtBottleneck(self.hidden_channels, self.bottleneck_channels, self.groups,
                                               self.kernel_size)
        self.decoder_output = nn.Conv1d(self.hidden_channels, self.num_channels, 1)
        # normalisation (z-score per time sample) and code statistics for the entropy coder
        self.register_buffer("mean_uV", torch.zeros(self.num_channels, self.num_samples))
        self.register_buffer("std_uV", torch.ones(self.num_channels, self.num_samples))
        self.register_buffer("index_counts", torch.zeros(self.codes_per_spike, self.codebook_size, dtype=torch.float64))

    # -- configuration -----------------------------------------------------------------------------
    def config(self) -> dict:
        """JSON-able architecture and normalisation description (enough to rebuild the module)."""
        return {
            "num_channels": self.num_channels,
            "num_samples": self.num_samples,
            "trough_sample": self.trough_sample,
            "codes_per_spike": self.codes_per_spike,
            "codebook_size": self.codebook_size,
            "hidden_channels": self.hidden_channels,
            "bottleneck_channels": self.bottleneck_channels,
            "groups": self.groups,
            "kernel_size": self.kernel_size,
            "num_pool": self.num_pool,
            "commitment_weight": self.commitment_weight,
            "use_ema": self.use_ema,
            "ema_decay": self.ema_decay,
            "dead_code_threshold": self.dead_code_threshold,
            "sampling_frequency_hz": self.sampling_frequency_hz,
            "loss_domain": self.loss_domain,
            "normalization": "z-score per (channel, time sample) with stored buffers mean_uV / std_uV",
            "channel_order": "peak channel first, then neighbours by increasing distance from it",
            "alignment": "trough (negative peak) of the peak channel at trough_sample",
        }

    @classmethod
    def from_config(cls, config: dict) -> "SpikeCAE":
        """Build an untrained module from :meth:`config` (informative keys are ignored)."""
        keys = set(DEFAULT_CONFIG)
        config = {LEGACY_CONFIG_NAMES.get(key, key): value for key, value in config.items()}
        return cls(**{key: value for key, value in config.items() if key in keys})

    @property
    def bits_per_spike_fixed(self) -> float:
        """Bits per spike with fixed-length indices (``codes_per_spike * log2(codebook_size)``)."""
        return float(self.codes_per_spike * np.log2(self.codebook_size))

    @property
    def encoder_macs_per_snippet(self) -> int:
        """Multiply-accumulates of the encoder + nearest-code search for one snippet (BN folded)."""
        length = self.num_samples
        macs = self.num_channels * self.hidden_channels * length
        block = (self.hidden_channels * self.bottleneck_channels * 2
                 + (self.bottleneck_channels // self.groups) * self.bottleneck_channels * self.kernel_size)
        for _ in range(self.num_pool):
            macs += block * length
            length //= 2
        macs += self.hidden_channels * self.codes_per_spike * length
        macs += self.codes_per_spike * self.codebook_size * self.code_dim
        return int(macs)

    # -- normalisation -------------------------------------------------------------------------------
    @torch.no_grad()
    def set_normalization(self, snippets_uV) -> None:
        """Fit the per-(channel, sample) mean and standard deviation on training snippets ``(n, C, T)``."""
        snippets = torch.as_tensor(np.asarray(snippets_uV, dtype=np.float32))
        self._check_shape(snippets)
        self.mean_uV.copy_(snippets.mean(dim=0))
        self.std_uV.copy_(snippets.std(dim=0).clamp_min(1e-3))

    def normalize(self, snippets_uV: torch.Tensor) -> torch.Tensor:
        return (snippets_uV - self.mean_uV) / self.std_uV

    def denormalize(self, normalized: torch.Tensor) -> torch.Tensor:
        return normalized * self.std_uV + self.mean_uV

    def _check_shape(self, snippets) -> None:
        if snippets.ndim != 3 or tuple(snippets.shape[1:]) != (self.num_channels, self.num_samples):
            raise ValueError(
                f"snippets must have shape (n, {self.num_channels}, {self.num_samples}) (spikes, channels, samples), "
                f"got {tuple(snippets.shape)}; extract {self.num_channels} channels x {self.num_samples} samples "
                f"with the trough at sample {self.trough_sample}"
            )

    # -- network -----------------------------------------------------------------------------------
    def encode_latent(self, snippets_uV: torch.Tensor) -> torch.Tensor:
        """Continuous latent ``(n, codes_per_spike, code_dim)`` of snippets in uV ``(n, C, T)``."""
        x = self.normalize(snippets_uV)
        x = F.relu(self.encoder_input_norm(self.encoder_input(x)))
        for _ in range(self.num_pool):
            x = F.max_pool1d(self.encoder_block(x), 2)
        return self.encoder_output(x)

    def decode_latent(self, latent: torch.Tensor) -> torch.Tensor:
        """Snippets in uV ``(n, C, T)`` from a (quantised) latent ``(n, codes_per_spike, code_dim)``."""
        x = F.relu(self.decoder_input_norm(self.decoder_input(latent)))
        for _ in range(self.num_pool):
            x = self.decoder_block(F.interpolate(x, scale_factor=2, mode="nearest"))
        return self.denormalize(self.decoder_output(x))

    def forward(self, snippets_uV: torch.Tensor, target_uV: torch.Tensor | None = None) -> dict:
        """Training pass.

        Parameters
        ----------
        snippets_uV : torch.Tensor
            Input snippets ``(n, C, T)`` in uV.
        target_uV : torch.Tensor | None, default: None
            What the reconstruction is scored against: None for the input itself (the paper's
            autoencoder); the noise-free snippets at the same positions to train a denoising one.

        Returns
        -------
        dict
            ``reconstruction`` (uV), ``reconstruction_loss`` (see ``loss_domain``),
            ``codebook_loss``, ``commitment_loss``, ``loss`` (their sum), ``indices``, ``perplexity``.
        """
        latent = self.encode_latent(snippets_uV)
        quantized = self.quantizer(latent)
        reconstruction = self.decode_latent(quantized["quantized"])
        target = snippets_uV if target_uV is None else target_uV
        if self.loss_domain == "relative":
            # per-snippet relative squared error ||x - x_hat||^2 / ||x||^2: the linear form of the SNDR
            error = (reconstruction - target).pow(2).sum(dim=(1, 2))
            energy = target.pow(2).sum(dim=(1, 2)).clamp_min(1e-6)
            reconstruction_loss = (error / energy).mean()
        else:
            reconstruction_loss = F.mse_loss(self.normalize(reconstruction), self.normalize(target))
        loss = reconstruction_loss + quantized["codebook_loss"] + quantized["commitment_loss"]
        return {
            "reconstruction": reconstruction,
            "reconstruction_loss": reconstruction_loss,
            "codebook_loss": quantized["codebook_loss"],
            "commitment_loss": quantized["commitment_loss"],
            "loss": loss,
            "indices": quantized["indices"],
            "perplexity": quantized["perplexity"],
        }

    # -- numpy interface ---------------------------------------------------------------------------
    @torch.no_grad()
    def encode_indices(self, snippets_uV: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Code indices of aligned snippets.

        Parameters
        ----------
        snippets_uV : np.ndarray
            ``(n, num_channels, num_samples)`` float, in uV, trough of channel 0 at ``trough_sample``.
        batch_size : int, default: 4096
            Snippets per forward pass.

        Returns
        -------
        np.ndarray
            int64 ``(n, codes_per_spike)`` in ``[0, codebook_size)``.
        """
        snippets = np.asarray(snippets_uV, dtype=np.float32)
        self._check_shape(snippets)
        encoder = self.folded_encoder()
        out = np.empty((snippets.shape[0], self.codes_per_spike), dtype=np.int64)
        for start in range(0, snippets.shape[0], batch_size):
            batch = torch.from_numpy(np.ascontiguousarray(snippets[start:start + batch_size]))
            out[start:start + batch_size] = self.quantizer.quantize_indices(encoder(batch)).numpy()
        return out

    def folded_encoder(self) -> FoldedEncoder:
        """The eval-mode encoder with its batch norms folded (:class:`FoldedEncoder`), cached.

        The cache is rebuilt when any parameter or buffer has changed since (an optimiser step,
        ``load_state_dict``...: PyTorch counts in-place changes in each tensor's version), so that
        a streaming encoder calling :meth:`encode_indices` on every small block pays the folding once.
        """
        key = tuple((id(tensor), tensor._version) for tensor in (*self.parameters(), *self.buffers()))
        cached = getattr(self, "_folded_cache", None)
        if cached is None or cached[0] != key:
            cached = (key, FoldedEncoder(self))
            self._folded_cache = cached
        return cached[1]

    @torch.no_grad()
    def decode_indices(self, indices: np.ndarray, batch_size: int = 4096) -> np.ndarray:
        """Snippets in uV ``(n, num_channels, num_samples)`` float32 from indices ``(n, codes_per_spike)``."""
        indices = np.asarray(indices)
        if indices.ndim != 2 or indices.shape[1] != self.codes_per_spike:
            raise ValueError(f"indices must have shape (n, {self.codes_per_spike}), got {indices.shape}")
        if indices.size and (indices.min() < 0 or indices.max() >= self.codebook_size):
            raise ValueError(f"code indices must lie in [0, {self.codebook_size}), got [{indices.min()}, {indices.max()}]")
        was_training = self.training
        self.eval()
        try:
            out = np.empty((indices.shape[0], self.num_channels, self.num_samples), dtype=np.float32)
            for start in range(0, indices.shape[0], batch_size):
                batch = torch.from_numpy(indices[start:start + batch_size].astype(np.int64))
                out[start:start + batch_size] = self.decode_latent(self.quantizer.lookup(batch)).numpy()
        finally:
            self.train(was_training)
        return out

    def reconstruct(self, snippets_uV: np.ndarray) -> np.ndarray:
        """``decode_indices(encode_indices(snippets_uV))``."""
        return self.decode_indices(self.encode_indices(snippets_uV))

    # -- entropy-coding tables ---------------------------------------------------------------------
    @torch.no_grad()
    def set_index_counts(self, indices: np.ndarray) -> None:
        """Store per-position index counts ``(codes_per_spike, codebook_size)`` from training-data indices ``(n, codes_per_spike)``."""
        indices = np.asarray(indices, dtype=np.int64)
        counts = np.stack([np.bincount(indices[:, position], minlength=self.codebook_size)
                           for position in range(self.codes_per_spike)])
        self.index_counts.copy_(torch.from_numpy(counts.astype(np.float64)))

    def frequency_tables(self, precision_bits: int = 14, shared: bool = False) -> np.ndarray:
        """Frozen rANS tables built from :attr:`index_counts` (every index stays encodable).

        Parameters
        ----------
        precision_bits : int, default: 14
            Table precision (``2 ** precision_bits`` must exceed ``codebook_size``).
        shared : bool, default: False
            One table for all positions (rows identical) instead of one per latent position.

        Returns
        -------
        np.ndarray
            int64 ``(codes_per_spike, codebook_size)``; row ``k`` codes index ``k`` of every spike.
        """
        counts = self.index_counts.cpu().numpy()
        if shared:
            table = build_frequency_table(counts.sum(axis=0), precision_bits)
            return np.tile(table, (self.codes_per_spike, 1))
        return np.stack([build_frequency_table(row, precision_bits) for row in counts])


# -- saving, loading, identity ---------------------------------------------------------------------
def save_spike_cae(model: SpikeCAE, path, dtype: torch.dtype = torch.float16) -> Path:
    """Write ``{"format", "config", "state_dict"}`` (floating tensors cast to ``dtype``) to ``path``.

    float64 buffers (``index_counts``) are kept as they are: they are integers.
    """
    state_dict = {}
    for name, tensor in model.state_dict().items():
        tensor = tensor.detach().cpu()
        if tensor.dtype == torch.float32:
            tensor = tensor.to(dtype)
        state_dict[name] = tensor.clone()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save({"format": WEIGHTS_FORMAT, "config": model.config(), "state_dict": state_dict}, path)
    return path


def available_spike_cae_models() -> list[str]:
    """Names of the shipped models whose weights file is present."""
    return weights.shipped_models("spike-cae")


def _load_path(path) -> "SpikeCAE":
    payload = torch.load(path, map_location="cpu", weights_only=True)
    if not isinstance(payload, dict) or payload.get("format") != WEIGHTS_FORMAT:
        raise ValueError(f"{path} is not a spike CAE weights file (format {WEIGHTS_FORMAT!r} expected); "
                         "write one with save_spike_cae()")
    model = SpikeCAE.from_config(payload["config"])
    state_dict = {key: (value.float() if value.dtype in (torch.float16, torch.bfloat16) else value)
                  for key, value in payload["state_dict"].items()}
    model.load_state_dict(state_dict)
    model.eval()
    return model


def load_spike_cae(name_or_path=None, num_channels: int | None = None) -> SpikeCAE:
    """Load a shipped model by name or a weights file by path (``torch.load(weights_only=True)``).

    Parameters
    ----------
    name_or_path : str | Path | None, default: None
        A name from :func:`available_spike_cae_models` (e.g. "nn32-16x64"), or the path of a
        weights file written by :func:`save_spike_cae`. None picks the shipped default for
        ``num_channels``.
    num_channels : int | None, default: None
        Snippet channels; with ``name_or_path=None``, the shipped default of
        :func:`spikeinterface_vqcompress.core.weights.default_model` (4: "nn32-4x64-r2",
        15: "np64-15x96", 16: "nn32-16x96"). When given together with a model, it is checked
        against the model's.

    Returns
    -------
    SpikeCAE
        A new model in eval mode, float32, on the CPU. ``model.source`` is the name or path it came
        from and ``model.weights_file_sha256`` the sha256 of the weights file.
    """
    if name_or_path is None:
        if num_channels is None:
            raise ValueError("pass a model name or path, or num_channels to pick a shipped default")
        name_or_path = weights.default_model("spike-cae", num_channels=num_channels)
    name = str(name_or_path)
    path = weights.model_path("spike-cae", name)
    model = _load_path(path)
    if num_channels is not None and int(num_channels) != model.num_channels:
        raise ValueError(f"model {name!r} takes {model.num_channels} channels, not {num_channels}")
    model.source = name
    model.weights_file_sha256 = weights.file_sha256(path)
    return model


def _load_for_coding(path) -> tuple:
    model = _load_path(path)
    return model, model.frequency_tables(), model_sha256(model)


def cached_spike_cae(name_or_path) -> tuple:
    """``(model, frequency tables, model_sha256)`` of a shipped name or weights path, loaded once per
    process through the weights store (reloaded when the file changes). The model is shared: do not
    train it; use :func:`load_spike_cae` for a model of your own."""
    (model, tables, digest), file_digest = weights.load_cached("spike-cae", name_or_path, _load_for_coding)
    model.source = str(name_or_path)
    model.weights_file_sha256 = file_digest
    return model, tables, digest


def model_sha256(model: SpikeCAE) -> str:
    """Content hash of a model: its config (JSON, sorted keys) and every state_dict tensor as float32 bytes.

    Independent of how the weights were stored (the float16 weights loaded as float32 hash the same
    as the model they were loaded into); two models decode identically when their hashes agree.
    """
    digest = hashlib.sha256()
    stored_names = {name: legacy for legacy, name in LEGACY_CONFIG_NAMES.items()}
    config = {stored_names.get(key, key): value for key, value in model.config().items()}
    digest.update(json.dumps(config, sort_keys=True).encode())
    for name, tensor in sorted(model.state_dict().items()):
        tensor = tensor.detach().cpu()
        if tensor.is_floating_point() and tensor.dtype != torch.float64:
            tensor = tensor.float()
        digest.update(name.encode())
        digest.update(str(tensor.dtype).encode())
        digest.update(str(tuple(tensor.shape)).encode())
        digest.update(tensor.contiguous().numpy().tobytes())
    return digest.hexdigest()


def reduce_codebook(model: SpikeCAE, codebook_size: int, snippets_uV, seed: int = 0) -> SpikeCAE:
    """A copy of ``model`` with a smaller codebook, without retraining (a cheaper rate point).

    The new codebook is k-means (Lloyd, seeded) of the encoder's continuous latent vectors of
    ``snippets_uV`` (training snippets), initialised from and competing with nothing else: the encoder
    and decoder weights are unchanged, so the decoder sees vectors close to those it was trained on.
    Index counts for the entropy tables are recomputed on the same snippets.

    Parameters
    ----------
    model : SpikeCAE
    codebook_size : int
        New number of code vectors (fewer bits per index).
    snippets_uV : np.ndarray
        Training snippets ``(n, C, T)`` (never evaluation data).
    seed : int, default: 0

    Returns
    -------
    SpikeCAE
        In eval mode.
    """
    from spikeinterface_vqcompress.core.nn.vq import kmeans

    config = model.config()
    config["codebook_size"] = int(codebook_size)
    reduced = SpikeCAE.from_config(config)
    state = {key: value for key, value in model.state_dict().items()
             if not key.startswith("quantizer.") and key != "index_counts"}
    reduced.load_state_dict(state, strict=False)
    reduced.eval()
    model.eval()
    with torch.no_grad():
        snippets = torch.from_numpy(np.asarray(snippets_uV, dtype=np.float32))
        latent = torch.cat([model.encode_latent(snippets[start:start + 4096])
                            for start in range(0, len(snippets), 4096)]).reshape(-1, model.code_dim)
        generator = torch.Generator().manual_seed(seed)
        reduced.quantizer.codebook.data.copy_(kmeans(latent, int(codebook_size), num_iterations=25, generator=generator))
        reduced.quantizer.initialized.fill_(True)
    reduced.set_index_counts(reduced.encode_indices(np.asarray(snippets_uV, dtype=np.float32)))
    return reduced
