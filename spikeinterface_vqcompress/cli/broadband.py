"""``vqcompress train broadband``: train the learned lossy mode (``broadband-rvq``).

::

    vqcompress train broadband --recordings a.h5 b.h5 --output my_rvq.pt
    vqcompress train broadband --probe Neuronexus-32 --seeds 211 212 --output my_rvq.pt

A trained model is used with ``compress(recording, codec="broadband-rvq", model="my_rvq.pt", num_stages=2)``
or ``vqcompress compress IN OUT.vqc --codec broadband-rvq:model=my_rvq.pt,num_stages=2``.
"""

from __future__ import annotations

import json
import sys

VALIDATION_SECONDS = 6.0


def load_training_arrays(paths, validation_seconds: float = VALIDATION_SECONDS):
    """int16 traces of each recording, split into (training, validation) lists of ``(traces, samples per
    second)``: the last ``validation_seconds`` of every recording are held out of the training crops."""
    import numpy as np

    from spikeinterface_vqcompress.readers import load_recording

    training, validation = [], []
    for path in paths:
        recording = load_recording(path)
        if recording.get_dtype() != np.int16:
            raise SystemExit(f"error: {path} is {recording.get_dtype()}, not int16; the codec codes int16 recordings "
                             "(convert with spikeinterface.preprocessing.scale_to_int16 first)")
        traces = recording.get_traces()
        fs = int(round(recording.sampling_frequency))
        cut = traces.shape[0] - int(validation_seconds * fs)
        if cut < 4 * fs:
            raise SystemExit(f"error: {path} is too short ({traces.shape[0] / fs:.1f} s); give at least "
                             f"{4 + validation_seconds:.0f} s per recording")
        training.append((traces[:cut], fs))
        validation.append((traces[cut:], fs))
    return training, validation


def command_train_broadband(args):
    from spikeinterface_vqcompress.cli.common import training_output_and_recordings
    from spikeinterface_vqcompress.core.weights import file_sha256
    from spikeinterface_vqcompress.core.codecs.broadband.rvq import DEFAULT_CONFIG, train_broadband_rvq, write_model_card

    output, recordings = training_output_and_recordings(args)
    training, validation = load_training_arrays(recordings)
    config = {key: getattr(args, key) for key in DEFAULT_CONFIG if getattr(args, key, None) is not None}
    command = getattr(args, "command_line", None) or "vqcompress " + " ".join(sys.argv[1:])
    model, frequencies, report = train_broadband_rvq(
        training, config=config, steps=args.steps, batch_size=args.batch_size, crop_samples=args.crop_samples,
        max_channels=args.max_channels, learning_rate=args.learning_rate, seed=args.seed, num_threads=args.num_threads,
        validation=validation, log=lambda message: print(message, flush=True))

    report = {"training": {"command": command, **report},
              "data": [{"source": str(path), "sha256": file_sha256(path),
                        "training_part": f"all but the last {VALIDATION_SECONDS:g} s (held out for validation)"}
                       for path in recordings]}
    write_model_card(model, frequencies, output, report)
    print(json.dumps({"output": str(output), "validation_rmse_noise_units": report["training"].get("validation_rmse_noise_units"),
                      "train_time_s": report["training"]["train_time_s"]}, indent=2))


def add_cli_commands(commands, trainers):
    from spikeinterface_vqcompress.core.codecs.broadband.defaults import DEFAULT_CONFIG

    train = trainers.add_parser("broadband", help="train the broadband codec's learned lossy mode (broadband-rvq)")
    train.add_argument("--recordings", nargs="+", help="int16 training recordings (MEArec .h5 or any format load_recording reads)")
    train.add_argument("--probe", default="Neuronexus-32", help="probe of simulated training recordings (with --seeds)")
    train.add_argument("--seeds", nargs="+", type=int, help="simulate one MEArec recording per seed (not the seeds you evaluate on)")
    train.add_argument("--num-units", type=int, default=20)
    train.add_argument("--duration-s", type=float, default=60.0)
    train.add_argument("--work-folder", default="vqcompress_training", help="where simulated recordings are kept")
    train.add_argument("--output", required=True, help="weights file (.pt); the model card .json goes next to it")
    train.add_argument("--overwrite", action="store_true")
    for key, value in DEFAULT_CONFIG.items():
        train.add_argument(f"--{key.replace('_', '-')}", dest=key, type=type(value), default=None,
                           help=f"model: {key} (default {value})")
    train.add_argument("--steps", type=int, default=1500)
    train.add_argument("--batch-size", type=int, default=8)
    train.add_argument("--crop-samples", type=int, default=2048)
    train.add_argument("--max-channels", type=int, default=32)
    train.add_argument("--learning-rate", type=float, default=2e-3)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--num-threads", type=int, default=None)
    train.set_defaults(function=command_train_broadband)
