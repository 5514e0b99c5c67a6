"""``broadband``: our lossless / near-lossless codec (LPC + adaptive binary range coding), and
``broadband-rvq`` (learned convolutional transform + residual VQ)."""
