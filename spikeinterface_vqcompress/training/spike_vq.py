"""Train the ``spike-vq`` prior: a temporal basis and the codebook the online learning starts from.

The prior is only where the online codebook starts; the codec learns each recording's units as it
codes them. It is trained on recordings that no benchmark reports: SpikeInterface's own ground-truth
generator (analytic templates, white noise; no MEArec template library), 32 channels on three
columns, at 30 kHz. Detection and snippets are the codec's own front end.

    python -m spikeinterface_vqcompress.training.spike_vq spikeinterface_vqcompress/models/spike_vq_prior_16x96.npz

writes the ``.npz`` and its JSON card (command, data, versions, sha256) beside it.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import numpy as np

#: The prior's training data: SpikeInterface generator seeds (never used by a benchmark).
TRAINING_SEEDS = (9001, 9002, 9003, 9004)


def training_recording(seed: int, duration_s: float = 60.0, num_units: int = 20, num_channels: int = 32):
    """An int16 ground-truth recording from SpikeInterface's generator (noise 5 uV = 20 units)."""
    from spikeinterface.core import NumpyRecording, generate_ground_truth_recording

    recording, _ = generate_ground_truth_recording(
        durations=[duration_s], sampling_frequency=30000.0, num_channels=num_channels, num_units=num_units, seed=seed,
        generate_probe_kwargs={"num_columns": 3, "xpitch": 18, "ypitch": 22, "contact_shapes": "circle",
                               "contact_shape_params": {"radius": 6}},
        generate_sorting_kwargs={"firing_rates": (2.0, 12.0), "refractory_period_ms": 4.0},
        noise_kwargs={"noise_levels": 5.0, "strategy": "on_the_fly"})
    gain = 0.25  # uV per unit
    traces = np.round(recording.get_traces() / gain).astype(np.int16)
    rebuilt = NumpyRecording([traces], sampling_frequency=30000.0)
    rebuilt = rebuilt.set_probe(recording.get_probe()) or rebuilt
    rebuilt.set_channel_gains(gain)
    rebuilt.set_channel_offsets(0.0)
    rebuilt.annotate(is_filtered=bool(recording.get_annotation("is_filtered")))  # band-limited already: no band-pass
    return rebuilt


def collect_snippets(recording, snippet_channels: int = 16, snippet_samples: int = 96, block_s: float = 1.0):
    """Normalised snippets ``(n, C, T)`` (each block's snippets over the median of its channels' noise
    levels: for the generator's white noise, the scale the codec measures in feature space), cut by
    the codec's front end."""
    from spikeinterface_vqcompress.core.codecs.spike_vq.codec import SpikePCACodec

    # centred on each spike's peak channel, as the shipped prior was trained (its card's sha256 holds)
    codec = SpikePCACodec(snippet_channels=snippet_channels, snippet_samples=snippet_samples, footprint="peak").with_recording(recording)
    block = int(block_s * recording.get_sampling_frequency())
    collected = []
    for start in range(0, recording.get_num_samples(), block):
        traces = recording.get_traces(start_frame=start, end_frame=min(start + block, recording.get_num_samples()))
        _, _, snippets, noise_levels = codec.detect(traces)
        collected.append(snippets.astype(np.float32) / max(float(np.median(noise_levels)), 0.5))
    return np.concatenate(collected)


def train_prior(output_path, seeds=TRAINING_SEEDS, components: int = 12, codebook_size: int = 64, snippet_channels: int = 16,
                snippet_samples: int = 96) -> dict:
    """Fit the basis (temporal PCA of every channel's snippet) and the starting codebook (k-means of
    the features); write them.

    Returns
    -------
    card : dict
        The JSON card written beside the weights.
    """
    from spikeinterface_vqcompress.core.codecs.spike_vq.quantiser import kmeans
    from spikeinterface_vqcompress.core.weights import file_sha256

    snippets = np.concatenate([collect_snippets(training_recording(seed), snippet_channels, snippet_samples) for seed in seeds])
    rows = snippets.reshape(-1, snippet_samples).astype(np.float64)
    _, _, vt = np.linalg.svd(rows, full_matrices=False)
    basis = vt[:components].T.astype(np.float32)  # (T, M)
    features = (snippets @ basis).reshape(len(snippets), -1)
    codebook = kmeans(features, codebook_size, seed=0)
    nearest = np.argmin(((features[:, None, :] - codebook[None]) ** 2).sum(axis=2), axis=1)
    arrays = {"basis": basis, "codebook": codebook, "sampling_frequency": np.array(30000.0),
              "num_channels": np.array(snippet_channels)}
    output_path = Path(output_path)
    output_path.parent.mkdir(parents=True, exist_ok=True)
    np.savez(output_path, **arrays)
    import spikeinterface

    card = {
        "family": "spike-vq",
        "command": "python -m spikeinterface_vqcompress.training.spike_vq " + str(output_path),
        "data": (f"SpikeInterface generate_ground_truth_recording seeds {list(seeds)}: 60 s, 20 units, 32 channels on 3 "
                 f"columns (18 x 22 um), 30 kHz, white noise 5 uV, int16 at 0.25 uV per unit; no MEArec template"),
        "snippets": int(len(snippets)), "snippet_channels": snippet_channels, "snippet_samples": snippet_samples,
        "components": components, "codebook_size": codebook_size,
        "explained_variance_of_basis": float((features ** 2).sum() / (snippets.astype(np.float64) ** 2).sum()),
        "kmeans_mse_per_feature": float(((features - codebook[nearest]) ** 2).mean()),
        "versions": {"numpy": np.__version__, "spikeinterface": spikeinterface.__version__},
        "weights_sha256": file_sha256(output_path),
    }
    output_path.with_suffix(".json").write_text(json.dumps(card, indent=2) + "\n")
    return card


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output", help="the .npz to write (its JSON card goes beside it)")
    args = parser.parse_args(argv)
    card = train_prior(args.output)
    json.dump(card, sys.stdout, indent=2)
    print()


if __name__ == "__main__":
    main()
