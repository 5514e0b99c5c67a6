"""Pure torch building blocks: vector quantizers and model definitions (no spikeinterface import)."""

from spikeinterface_vqcompress.core.nn.vq import VectorQuantizer

__all__ = ["VectorQuantizer"]
