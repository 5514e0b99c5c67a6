"""Pure torch building blocks: vector quantizers and model definitions (no spikeinterface import)."""

from .vq import VectorQuantizer

__all__ = ["VectorQuantizer"]
