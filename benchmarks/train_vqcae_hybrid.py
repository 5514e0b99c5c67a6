"""Train the VQ-CAE hybrid on Neuralink N1 files and write the shipped weights + model card.

    python benchmarks/train_vqcae_hybrid.py                       # 100 epochs, as the paper
    python benchmarks/train_vqcae_hybrid.py --epochs 2 --output /tmp/model   # a quick try

Split (deterministic, by file): the ``*.wav`` names of ``--data`` sorted, the first 70 % train, the
rest are held out (never trained on; the reproduction benchmark evaluates only those). Seed 0.

Weights are stored as float16 (8.5 M parameters: ~17 MB instead of ~34 MB in float32); the
metrics in the card are measured with exactly those float16 weights (cast back to float32 on load).
The frozen integer frequency table of the code indices (for the rANS coder) is built from the code
usage of the trained model on the training files.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from common import ROOT, SHARED_DATA, command_line

if TYPE_CHECKING:
    from spikeinterface_vqcompress.core.nn.vqcae import VQCAEHybrid

DEFAULT_DATA = SHARED_DATA / "neuralink_n1"
DEFAULT_OUTPUT = ROOT / "spikeinterface_vqcompress" / "models" / "vqcae_hybrid_n1"
TRAIN_FRACTION = 0.7


def split_files(folder, train_fraction: float = TRAIN_FRACTION) -> tuple[list[Path], list[Path]]:
    """Sorted ``*.wav`` files of ``folder``: the first ``train_fraction`` train, the rest held out."""
    files = sorted(Path(folder).glob("*.wav"))
    if not files:
        raise FileNotFoundError(f"no .wav files in {folder}; pass --data with the Neuralink N1 folder")
    num_train = int(round(train_fraction * len(files)))
    return files[:num_train], files[num_train:]


def read_wav(path) -> tuple[int, np.ndarray]:
    from scipy.io import wavfile

    sampling_frequency, signal = wavfile.read(path)
    return int(sampling_frequency), np.asarray(signal)


def sha256_of(path) -> str:
    from spikeinterface_vqcompress.core.weights import file_sha256

    return file_sha256(path)


def save_model(model: VQCAEHybrid, index_frequencies: np.ndarray, path) -> str:
    """float16 weights + config + frozen index table; returns the file's sha256."""
    from spikeinterface_vqcompress.core.nn.vqcae import save_weights

    save_weights(model, index_frequencies, path)
    return sha256_of(path)


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default=str(DEFAULT_DATA))
    parser.add_argument("--output", default=str(DEFAULT_OUTPUT), help="path without extension: writes .pt and .json")
    parser.add_argument("--epochs", type=int, default=100)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--learning-rate", type=float, default=1e-3)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    import torch

    from spikeinterface_vqcompress.core.entropy import build_frequency_table
    from spikeinterface_vqcompress.core.nn.vqcae import VQCAEHybrid, count_parameters, signals_to_training_segments, train_vqcae
    from spikeinterface_vqcompress.core.jsonio import write_json

    torch.set_num_threads(args.threads)

    train_files, test_files = split_files(args.data)
    signals = []
    sampling_frequency = None
    for path in train_files:
        sampling_frequency, signal = read_wav(path)
        signals.append(signal)
    segments = signals_to_training_segments(signals, 8000)
    print(f"{len(train_files)} training files ({len(test_files)} held out), {segments.shape[0]} segments of 8000 samples")
    start = time.perf_counter()
    model, history = train_vqcae(segments, epochs=args.epochs, batch_size=args.batch_size,
                                 learning_rate=args.learning_rate, seed=args.seed)
    training_s = time.perf_counter() - start
    # round to the shipped precision, then count code usage on the training segments with it
    model = VQCAEHybrid.from_state_dict({key: value.half() if value.is_floating_point() and key != "quantizer.usage_counts"
                                         else value for key, value in model.state_dict().items()}, model.config)
    with torch.no_grad():
        indices = model.encode_indices(torch.as_tensor(segments)).numpy()
    counts = np.bincount(indices, minlength=model.codebook_size)
    index_frequencies = build_frequency_table(counts, precision_bits=12)
    output = Path(args.output)
    weights_path = output.with_suffix(".pt")
    digest = save_model(model, index_frequencies, weights_path)
    card = {
        "name": output.name,
        "codec": "vqcae-hybrid",
        "description": "VQ-CAE hybrid rebuilt from 'Efficient Compression of Neural Recordings Using VQ-CAE', "
                       "trained on Neuralink N1 files (see spikeinterface_vqcompress/core/nn/vqcae.py)",
        "weights_file": weights_path.name,
        "weights_sha256": digest,
        "weights_dtype": "float16 (cast to float32 on load)",
        "weights_nbytes": weights_path.stat().st_size,
        "parameter_count": count_parameters(model),
        "config": model.config,
        "normalization": "per segment: y = (x - (max+min)/2) / ((max-min)/2), min and max (int16) sent as side information",
        "training": {
            "command": command_line("python benchmarks/train_vqcae_hybrid.py", argv),
            "data": "Neuralink Compression Challenge N1 files (../shared/data/neuralink_n1), 19531 Hz, int16 holding 10-bit codes",
            "split_rule": f"sorted file names, first {TRAIN_FRACTION:.0%} train, rest held out",
            "train_files": [path.name for path in train_files],
            "held_out_files": [path.name for path in test_files],
            "num_segments": int(segments.shape[0]),
            "epochs": args.epochs,
            "batch_size": args.batch_size,
            "optimizer": f"Adam, learning rate {args.learning_rate}",
            "seed": args.seed,
            "torch_threads": args.threads,
            "training_s": round(training_s, 1),
            "final_epoch": {key: round(value, 6) for key, value in history[-1].items()},
            "codes_used_on_training_files": int((counts > 0).sum()),
        },
        "sampling_frequency": sampling_frequency,
        "held_out_metrics": None,
    }
    card_path = output.with_suffix(".json")
    write_json(card_path, card)
    print(f"wrote {weights_path} ({weights_path.stat().st_size / 1e6:.1f} MB, sha256 {digest[:12]}...) and {card_path} "
          f"in {training_s:.0f} s of training; {card['training']['codes_used_on_training_files']} codes used")


if __name__ == "__main__":
    main()
