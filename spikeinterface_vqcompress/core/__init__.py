"""The core: everything that compresses and decompresses, without SpikeInterface.

``codec`` (the contract), ``errors``, ``registry`` (codec id -> class, presets, entry points),
``framing``, ``weights`` (the shipped models), ``container`` (.vqc files), ``hardware`` (energy
model and report), ``threads``, ``entropy/`` (rANS with frozen tables, adaptive binary range
coder), ``nn/`` (torch modules), ``codecs/`` (one module or folder per codec family).
Nothing below this package imports spikeinterface.
"""
