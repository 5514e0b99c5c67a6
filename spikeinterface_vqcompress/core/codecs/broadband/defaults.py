"""Defaults of the broadband family that must be readable without torch (the CLI builds its options
from them)."""

#: Architecture of the ``broadband-rvq`` model (:class:`.rvq.BroadbandRVQ`).
DEFAULT_CONFIG = {
    "hidden_channels": 24,
    "latent_dim": 16,
    "num_down": 3,
    "codebook_size": 256,
    "num_stages": 4,
    "time_kernel": 5,
    "commitment_weight": 0.1,
}
