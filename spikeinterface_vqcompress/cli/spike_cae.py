"""``vqcompress train spike-cae`` and ``vqcompress spike-cae-detect``.

::

    vqcompress train spike-cae --probe Neuronexus-32 --seeds 201 --output my_cae.pt
    vqcompress train spike-cae --recordings a.h5 b.h5 --num-channels 4 --num-samples 64 --output my_cae.pt
    vqcompress train spike-cae --probe Neuronexus-32 --seeds 201 --denoise --output my_denoising_cae.pt
    vqcompress spike-cae-detect RECORDING.h5 --threshold 4.5          # what the encoder would send

A trained model is used with ``compress(recording, codec="spike-cae", model="my_cae.pt")`` or
``vqcompress compress IN OUT.vqc --codec spike-cae:model=my_cae.pt``.
"""

from __future__ import annotations

import json
import sys

#: Snippet shape (channels, samples) and codebook size by probe, as in Wu et al. 2018.
PROBE_DEFAULTS = {
    "Neuronexus-32": {"num_channels": 4, "num_samples": 64, "codebook_size": 128},
    "Neuropixels-64": {"num_channels": 15, "num_samples": 48, "codebook_size": 512},
}


def command_train_spike_cae(args):
    from spikeinterface_vqcompress.cli.common import existing_paths, simulated_training_recording, training_output_and_recordings
    from spikeinterface_vqcompress.training.spike_cae import train_spike_cae

    defaults = PROBE_DEFAULTS.get(args.probe, PROBE_DEFAULTS["Neuronexus-32"])
    num_channels = args.num_channels or defaults["num_channels"]
    num_samples = args.num_samples or defaults["num_samples"]
    codebook_size = args.codebook_size or defaults["codebook_size"]
    clean_recordings = existing_paths(args.clean_recordings, "clean recordings")
    if clean_recordings and len(clean_recordings) != len(args.recordings or []):
        raise SystemExit(f"error: --clean-recordings needs one noise-free twin per --recordings file "
                         f"({len(clean_recordings)} for {len(args.recordings or [])})")
    if args.denoise and args.recordings and not clean_recordings:
        raise SystemExit("error: --denoise with --recordings needs --clean-recordings (the same recordings simulated "
                         "with noise_level_uV=0); or train on --seeds, whose twins are simulated here")
    simulate_kwargs = {"num_templates_per_cell": args.num_templates_per_cell, "n_jobs": args.n_jobs}
    output, recordings = training_output_and_recordings(args, **simulate_kwargs)
    if args.denoise and not clean_recordings:
        clean_recordings = [simulated_training_recording(args, seed, suffix="_clean", noise_level_uV=0.0, **simulate_kwargs)
                            for seed in args.seeds]
    command = getattr(args, "command_line", None) or "vqcompress " + " ".join(sys.argv[1:])
    model, report = train_spike_cae(
        [str(path) for path in recordings], num_channels=num_channels, num_samples=num_samples, codebook_size=codebook_size,
        use_ema=args.use_ema, epochs=args.epochs, batch_size=args.batch_size, learning_rate=args.learning_rate,
        seed=args.seed, num_threads=args.num_threads, output_path=output, model_name=output.stem, command=command,
        log=lambda message: print(message, flush=True),
        clean_recordings=[str(path) for path in clean_recordings] or None,
    )
    summary = {key: report[key] for key in ("validation", "num_train_snippets", "train_time_s") if key in report}
    print(json.dumps({"output": str(output), **summary}, indent=2, default=str))


def command_detect(args):
    import numpy as np

    from spikeinterface_vqcompress.core.registry import get_codec
    from spikeinterface_vqcompress.readers import load_recording

    recording = load_recording(args.input)
    codec = get_codec("spike-cae", model="identity", threshold_sd=args.threshold,
                      exclude_sweep_samples=args.exclude_sweep_samples, radius_um=args.radius_um).with_recording(recording)
    chunk = int(recording.sampling_frequency)
    counts = np.zeros(recording.get_num_channels(), dtype=np.int64)
    total, noise = 0, []
    for start in range(0, recording.get_num_samples(), chunk):
        traces = recording.get_traces(start_frame=start, end_frame=min(start + chunk, recording.get_num_samples()))
        times, channels, _, levels = codec.detect(traces)
        counts += np.bincount(channels, minlength=counts.size)
        total += len(times)
        noise.append(levels)
    duration_s = recording.get_total_duration()
    print(json.dumps({"spikes": int(total), "spikes_per_s": total / duration_s,
                      "spikes_per_channel_per_s": (counts / duration_s).round(2).tolist(),
                      "noise_std_per_channel": np.mean(noise, axis=0).round(2).tolist()}, indent=2))


def add_cli_commands(commands, trainers):
    """Add ``train spike-cae`` (under ``trainers``) and ``spike-cae-detect`` (under ``commands``)."""
    train = trainers.add_parser("spike-cae", help="train a spike-snippet VQ compressive autoencoder (Wu et al. 2018)",
                                description="Train a spike CAE on ground-truth snippets of MEArec recordings.")
    train.add_argument("--probe", default="Neuronexus-32", help="MEArec probe of simulated training data; also picks the "
                       "default snippet shape (Neuronexus-32: 4 x 64, codebook 128; Neuropixels-64: 15 x 48, codebook 512)")
    train.add_argument("--seeds", type=int, nargs="*", default=[], help="template/recording seeds of simulated training "
                       "recordings (never the seeds you evaluate on)")
    train.add_argument("--recordings", nargs="*", default=[], help="MEArec .h5 files to train on instead of simulating")
    train.add_argument("--num-units", type=int, default=20)
    train.add_argument("--duration-s", type=float, default=60.0)
    train.add_argument("--num-templates-per-cell", type=int, default=10)
    train.add_argument("--work-folder", default="spike_cae_training", help="where simulated recordings go")
    train.add_argument("--num-channels", type=int, default=None)
    train.add_argument("--num-samples", type=int, default=None)
    train.add_argument("--codebook-size", type=int, default=None)
    train.add_argument("--use-ema", action="store_true", help="EMA codebook instead of the VQ-VAE codebook loss")
    train.add_argument("--denoise", action="store_true", help="train to output the noise-free spike: with --seeds, each "
                       "recording's noise-free twin (noise_level_uV=0) is simulated as the target")
    train.add_argument("--clean-recordings", nargs="*", default=[], help="noise-free twins of --recordings, in order "
                       "(the targets of a denoising model; implies --denoise)")
    train.add_argument("--epochs", type=int, default=12)
    train.add_argument("--batch-size", type=int, default=256)
    train.add_argument("--learning-rate", type=float, default=1e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--num-threads", type=int, default=2)
    train.add_argument("--n-jobs", type=int, default=1)
    train.add_argument("--output", required=True, help="weights file (.pt); a JSON model card is written next to it")
    train.add_argument("--overwrite", action="store_true")
    train.set_defaults(function=command_train_spike_cae)

    detect = commands.add_parser("spike-cae-detect", help="run the spike-cae encoder's detection on a recording and "
                                 "report spike rates and noise levels")
    detect.add_argument("input", help="any recording SpikeInterface/Neo reads (format guessed from the path)")
    detect.add_argument("--threshold", type=float, default=4.5,
                        help="detection threshold in noise standard deviations (default: 4.5)")
    detect.add_argument("--exclude-sweep-samples", type=int, default=8)
    detect.add_argument("--radius-um", type=float, default=50.0)
    detect.set_defaults(function=command_detect)
