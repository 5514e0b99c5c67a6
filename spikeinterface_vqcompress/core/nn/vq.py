"""A small, generic vector quantizer: nearest-code lookup, VQ-VAE losses, straight-through gradient,
optional EMA codebook updates with k-means initialisation and dead-code restarts.

Input vectors live in the last dimension: ``z`` of shape ``(..., code_dim)`` gives indices of shape
``(...)``. Distances are squared Euclidean; ties go to the lowest index (``torch.argmin``).

References: van den Oord et al. 2017 (VQ-VAE: codebook and commitment losses, straight-through);
Razavi et al. 2019 (EMA codebook updates, decay 0.99).

This module must not import spikeinterface.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn import functional as F


def nearest_code_indices(vectors: torch.Tensor, codebook: torch.Tensor) -> torch.Tensor:
    """Index of the nearest codebook row (squared Euclidean) for every row of ``vectors``.

    Parameters
    ----------
    vectors : torch.Tensor
        ``(num_vectors, code_dim)``.
    codebook : torch.Tensor
        ``(codebook_size, code_dim)``.

    Returns
    -------
    torch.Tensor
        int64 ``(num_vectors,)``.
    """
    distances = (
        vectors.pow(2).sum(dim=1, keepdim=True)
        - 2.0 * vectors @ codebook.t()
        + codebook.pow(2).sum(dim=1).unsqueeze(0)
    )
    return torch.argmin(distances, dim=1)


def kmeans(vectors: torch.Tensor, codebook_size: int, num_iterations: int = 20, generator: torch.Generator | None = None) -> torch.Tensor:
    """Plain Lloyd k-means, seeded from ``codebook_size`` distinct random rows (with replacement if fewer rows)."""
    num_vectors = vectors.shape[0]
    if num_vectors >= codebook_size:
        chosen = torch.randperm(num_vectors, generator=generator)[:codebook_size]
    else:
        chosen = torch.randint(num_vectors, (codebook_size,), generator=generator)
    centroids = vectors[chosen].clone()
    for _ in range(num_iterations):
        assignment = nearest_code_indices(vectors, centroids)
        sums = torch.zeros_like(centroids).index_add_(0, assignment, vectors)
        counts = torch.bincount(assignment, minlength=codebook_size).to(vectors.dtype)
        used = counts > 0
        centroids[used] = sums[used] / counts[used].unsqueeze(1)
    return centroids


class VectorQuantizer(nn.Module):
    """Codebook of ``codebook_size`` vectors of ``code_dim`` values.

    Parameters
    ----------
    codebook_size : int
        Codebook size (indices are ``0 .. codebook_size - 1``).
    code_dim : int
        Length of each code vector.
    commitment_weight : float, default: 0.25
        Weight ``beta`` of the commitment loss ``||z - sg(e)||^2``.
    use_ema : bool, default: False
        Update the codebook by exponential moving averages of assigned vectors instead of the
        codebook loss (the codebook loss is then reported as 0).
    ema_decay : float, default: 0.99
        Decay of the EMA statistics.
    kmeans_init : bool, default: False
        Initialise the codebook by k-means on the first training batch.
    dead_code_threshold : float, default: 0.0
        In training, codes whose EMA usage (in vectors per batch) falls below this are restarted on
        random vectors of the current batch; 0 disables restarts.
    epsilon : float, default: 1e-5
        Laplace smoothing of EMA counts.
    """

    def __init__(self, codebook_size: int, code_dim: int, commitment_weight: float = 0.25, use_ema: bool = False,
                 ema_decay: float = 0.99, kmeans_init: bool = False, dead_code_threshold: float = 0.0,
                 epsilon: float = 1e-5):
        super().__init__()
        self.codebook_size = int(codebook_size)
        self.code_dim = int(code_dim)
        self.commitment_weight = float(commitment_weight)
        self.use_ema = bool(use_ema)
        self.ema_decay = float(ema_decay)
        self.dead_code_threshold = float(dead_code_threshold)
        self.epsilon = float(epsilon)
        codebook = torch.empty(self.codebook_size, self.code_dim).uniform_(-1.0 / self.codebook_size, 1.0 / self.codebook_size)
        if self.use_ema:
            self.register_buffer("codebook", codebook)
            self.register_buffer("ema_counts", torch.ones(self.codebook_size))
            self.register_buffer("ema_sums", codebook.clone())
        else:
            self.codebook = nn.Parameter(codebook)
        self.register_buffer("initialized", torch.tensor(not kmeans_init))
        # usage of each code in training (for the entropy coder's frozen table)
        self.register_buffer("usage_counts", torch.zeros(self.codebook_size, dtype=torch.float64))

    # -- lookup ------------------------------------------------------------------------------------
    def quantize_indices(self, z: torch.Tensor) -> torch.Tensor:
        """Nearest-code indices of ``z`` shaped ``(..., code_dim)`` -> ``(...)``."""
        flat = z.reshape(-1, self.code_dim)
        return nearest_code_indices(flat, self.codebook.detach()).reshape(z.shape[:-1])

    def lookup(self, indices: torch.Tensor) -> torch.Tensor:
        """Code vectors of ``indices`` ``(...)`` -> ``(..., code_dim)``."""
        indices = torch.as_tensor(indices, dtype=torch.long, device=self.codebook.device)
        if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= self.codebook_size):
            raise ValueError(f"code indices must lie in [0, {self.codebook_size})")
        return F.embedding(indices, self.codebook)

    # -- training helpers ------------------------------------------------------------------------
    @torch.no_grad()
    def initialize_from(self, vectors: torch.Tensor, generator: torch.Generator | None = None):
        """k-means initialisation of the codebook on ``vectors`` ``(num_vectors, code_dim)``."""
        centroids = kmeans(vectors.detach().reshape(-1, self.code_dim).float(), self.codebook_size, generator=generator)
        self.codebook.data.copy_(centroids)
        if self.use_ema:
            self.ema_sums.copy_(centroids)
            self.ema_counts.fill_(1.0)
        self.initialized.fill_(True)

    @torch.no_grad()
    def _ema_update(self, flat: torch.Tensor, indices: torch.Tensor):
        counts = torch.bincount(indices, minlength=self.codebook_size).to(flat.dtype)
        sums = torch.zeros(self.codebook_size, flat.shape[1], dtype=flat.dtype, device=flat.device).index_add_(0, indices, flat)
        self.ema_counts.mul_(self.ema_decay).add_(counts, alpha=1 - self.ema_decay)
        self.ema_sums.mul_(self.ema_decay).add_(sums, alpha=1 - self.ema_decay)
        total = self.ema_counts.sum()
        smoothed = (self.ema_counts + self.epsilon) / (total + self.codebook_size * self.epsilon) * total
        self.codebook.copy_(self.ema_sums / smoothed.unsqueeze(1))

    @torch.no_grad()
    def _restart_dead_codes(self, flat: torch.Tensor, counts: torch.Tensor):
        if self.use_ema:
            usage = self.ema_counts
        else:
            usage = counts.to(flat.dtype)
        dead = torch.nonzero(usage < self.dead_code_threshold).ravel()
        if dead.numel() == 0 or flat.shape[0] == 0:
            return
        replacement = flat[torch.randint(flat.shape[0], (dead.numel(),), device=flat.device)]
        self.codebook.data[dead] = replacement
        if self.use_ema:
            self.ema_sums[dead] = replacement
            self.ema_counts[dead] = 1.0

    # -- forward ---------------------------------------------------------------------------------
    def forward(self, z: torch.Tensor) -> dict:
        """Quantize ``z`` ``(..., code_dim)``.

        Returns
        -------
        dict
            ``quantized`` (straight-through: forward values are the codes, gradients flow to ``z``),
            ``indices``, ``codebook_loss`` (``||sg(z) - e||^2``; 0 with EMA), ``commitment_loss``
            (``beta * ||z - sg(e)||^2``) and ``perplexity`` of the code usage in this batch.
        """
        flat = z.reshape(-1, self.code_dim)
        if self.training and not bool(self.initialized):
            self.initialize_from(flat)
        indices = nearest_code_indices(flat.detach(), self.codebook.detach())
        counts = torch.bincount(indices, minlength=self.codebook_size)
        if self.training:
            self.usage_counts += counts.to(torch.float64)
            if self.use_ema:
                self._ema_update(flat.detach(), indices)
        codes = F.embedding(indices, self.codebook)
        if self.use_ema:
            codebook_loss = torch.zeros((), device=z.device)
        else:
            codebook_loss = F.mse_loss(codes, flat.detach())
        commitment_loss = self.commitment_weight * F.mse_loss(flat, codes.detach())
        quantized = flat + (codes - flat).detach()
        probabilities = counts.to(flat.dtype) / max(flat.shape[0], 1)
        perplexity = torch.exp(-(probabilities * torch.log(probabilities + 1e-10)).sum())
        if self.training and self.dead_code_threshold > 0:
            self._restart_dead_codes(flat.detach(), counts)
        return {
            "quantized": quantized.reshape(z.shape),
            "indices": indices.reshape(z.shape[:-1]),
            "codebook_loss": codebook_loss,
            "commitment_loss": commitment_loss,
            "perplexity": perplexity.detach(),
        }
