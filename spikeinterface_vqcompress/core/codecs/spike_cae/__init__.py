"""``spike-cae``: spike detection on the implant, snippets through the deep compressive autoencoder
of Wu et al. 2018, background sent as noise statistics."""
