"""Training of the shipped models from simulated ground truth (needs SpikeInterface and MEArec)."""
