"""Train the shipped spike CAE models (Wu et al. 2018) and write their weights + JSON model cards.

    python benchmarks/train_spike_cae.py --threads 1                     # every model below
    python benchmarks/train_spike_cae.py --model nn32-16x64 --threads 1  # one of them

Training data: MEArec recordings simulated here from the TRAINING template sets only
(Neuronexus-32 seed 201, Neuropixels-64 seed 202, 10 templates per cell), two recordings per probe
that differ in the number of units (hence in the units chosen and the spike trains). The evaluation
recordings (seeds 0, 101, 102) are never used. Working files: benchmarks/work/spike_cae/.
Outputs: spikeinterface_vqcompress/models/spike_cae_<probe>_<C>x<T>[_r2].{pt,json}. The shipped cards
were written with the defaults (each model's epochs, batch 64, learning rate 2e-3, seed 0) and ``--threads 1``.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from common import ROOT, training_recordings
from common import SPIKE_CAE_WORK as WORK

MODELS = ROOT / "spikeinterface_vqcompress" / "models"

#: The models this script trains (the first releases "nn32-4x64" and "np64-15x48", 2 and 1
#: epochs, stay shipped under their names so that containers they wrote keep decoding).
SHIPPED = {
    "nn32-4x64-r2": {"probe": "Neuronexus-32", "num_channels": 4, "num_samples": 64, "codebook_size": 128,
                     "epochs": 15, "file": "spike_cae_nn32_4x64_r2.pt"},
    # the paper's snippet shape at half the width (hidden 128, bottleneck 64 in 16 groups of 4): a quarter
    # of the encoder's multiply-accumulates, for the one-core real-time encoder target
    "nn32-4x64-w128": {"probe": "Neuronexus-32", "num_channels": 4, "num_samples": 64, "codebook_size": 128,
                       "epochs": 15, "file": "spike_cae_nn32_4x64_w128.pt",
                       "model_kwargs": {"hidden_channels": 128, "bottleneck_channels": 64, "groups": 16}},
    # the r2 configuration trained on five template libraries instead of one (8 epochs: ~1.8x r2's steps)
    "nn32-4x64-r3": {"probe": "Neuronexus-32", "training_set": "Neuronexus-32-five-libraries", "num_channels": 4,
                     "num_samples": 64, "codebook_size": 128, "epochs": 8, "file": "spike_cae_nn32_4x64_r3.pt"},
    "nn32-4x64-w128-r3": {"probe": "Neuronexus-32", "training_set": "Neuronexus-32-five-libraries", "num_channels": 4,
                          "num_samples": 64, "codebook_size": 128, "epochs": 8, "file": "spike_cae_nn32_4x64_w128_r3.pt",
                          "model_kwargs": {"hidden_channels": 128, "bottleneck_channels": 64, "groups": 16}},
    # r3 with twice the code indices (32 of 128, 224 fixed bits per spike): what the rest of the
    # 200x-against-10-bit link budget buys on the paper's snippet shape
    "nn32-4x64-c32": {"probe": "Neuronexus-32", "training_set": "Neuronexus-32-five-libraries", "num_channels": 4,
                      "num_samples": 64, "codebook_size": 128, "codes_per_spike": 32, "epochs": 8,
                      "file": "spike_cae_nn32_4x64_c32.pt"},
    # r3 trained as a denoising autoencoder: noisy snippets in, the noise-free twin recording's
    # snippets at the same positions as the target (the decoder pastes spikes on a synthesised
    # background, so the noise it would reproduce is noise the background already adds)
    "nn32-4x64-d3": {"probe": "Neuronexus-32", "training_set": "Neuronexus-32-five-libraries", "num_channels": 4,
                     "num_samples": 64, "codebook_size": 128, "epochs": 8, "denoise": True,
                     "file": "spike_cae_nn32_4x64_d3.pt"},
    "nn32-16x64": {"probe": "Neuronexus-32", "num_channels": 16, "num_samples": 64, "codebook_size": 512,
                   "epochs": 15, "file": "spike_cae_nn32_16x64.pt"},
    "nn32-16x96": {"probe": "Neuronexus-32", "num_channels": 16, "num_samples": 96, "codebook_size": 256,
                   "codes_per_spike": 32, "epochs": 12, "file": "spike_cae_nn32_16x96.pt"},
    "np64-15x96": {"probe": "Neuropixels-64", "num_channels": 15, "num_samples": 96, "codebook_size": 256,
                   "codes_per_spike": 32, "epochs": 12, "file": "spike_cae_np64_15x96.pt"},
}


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(SHIPPED) + ["all"], default="all")
    parser.add_argument("--epochs", type=int, default=None, help="epochs (default: the model's, as shipped)")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--learning-rate", type=float, default=2e-3)
    parser.add_argument("--use-ema", action="store_true", help="EMA codebook instead of the VQ-VAE codebook loss")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=2, help="torch threads")
    parser.add_argument("--output-folder", default=str(MODELS))
    args = parser.parse_args(argv)

    from spikeinterface_vqcompress.training.spike_cae import train_spike_cae

    def relative(paths):
        # the model card names its data relative to the checkout (the shipped command runs from its root)
        return [path.relative_to(ROOT) if Path.cwd() == ROOT else path for path in paths]

    names = sorted(SHIPPED) if args.model == "all" else [args.model]
    WORK.mkdir(parents=True, exist_ok=True)
    for name in names:
        spec = SHIPPED[name]
        epochs = args.epochs or spec["epochs"]
        command = f"python benchmarks/train_spike_cae.py --model {name} --epochs {epochs} " \
                  f"--batch-size {args.batch_size} --learning-rate {args.learning_rate} --seed {args.seed} --threads {args.threads}" + (" --use-ema" if args.use_ema else "")
        training_set = spec.get("training_set", spec["probe"])
        recordings = relative(training_recordings(training_set))
        clean_recordings = relative(training_recordings(training_set, clean=True)) if spec.get("denoise") else None
        train_spike_cae(recordings, num_channels=spec["num_channels"], num_samples=spec["num_samples"],
                        codebook_size=spec["codebook_size"], codes_per_spike=spec.get("codes_per_spike", 16), use_ema=args.use_ema, epochs=epochs,
                        batch_size=args.batch_size, learning_rate=args.learning_rate, seed=args.seed,
                        num_threads=args.threads, model_kwargs=spec.get("model_kwargs"),
                        output_path=Path(args.output_folder) / spec["file"], model_name=name, command=command,
                        clean_recordings=clean_recordings,
                        log=lambda message: print(message, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
