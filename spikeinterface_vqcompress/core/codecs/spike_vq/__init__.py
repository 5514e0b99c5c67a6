"""``spike-vq`` (online-learned residual VQ of spike features) and ``spike-pca`` (per-chunk PCA), on the spike
front end of :mod:`..spike_cae.frontend`."""
