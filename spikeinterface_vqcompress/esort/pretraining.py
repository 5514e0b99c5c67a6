"""How the shipped E-Sort backbone is made: training recordings, pretraining, weights + model card.

Training data (never the tuning or evaluation seeds 0 / 101 / 102 / 103 / 104): MEArec recordings
simulated from the template libraries of seed 201 (Neuronexus-32) and seed 202 (Neuropixels-64),
10 templates per cell, several recording seeds each (:data:`TRAINING_RECORDINGS`). Each recording is labelled with
*all* its ground-truth spikes; each gets its own head; the temporal layers are shared by all, the
spatial layer by all recordings of one probe geometry.

``vqcompress train esort`` runs :func:`train_backbone`.
"""

from __future__ import annotations

import hashlib
import platform
import sys
import time
from pathlib import Path

import numpy as np
import torch

from spikeinterface_vqcompress.core.jsonio import write_json
from spikeinterface_vqcompress.esort.model import backbone_state, geometry_fingerprint

#: (probe, templates seed, recording seed, number of units, duration in s)
#: Five recordings per template library (the extra recording seeds draw other cells and templates
#: from it: more variety for the same NEURON cost).
TRAINING_RECORDINGS = (
    ("Neuronexus-32", 201, 201, 20, 30.0),
    ("Neuronexus-32", 201, 2011, 15, 30.0),
    ("Neuronexus-32", 201, 2012, 15, 30.0),
    ("Neuronexus-32", 201, 2013, 15, 30.0),
    ("Neuronexus-32", 201, 2014, 15, 30.0),
    ("Neuropixels-64", 202, 202, 20, 30.0),
    ("Neuropixels-64", 202, 2021, 15, 30.0),
    ("Neuropixels-64", 202, 2022, 15, 30.0),
    ("Neuropixels-64", 202, 2023, 15, 30.0),
    ("Neuropixels-64", 202, 2024, 15, 30.0),
)
#: Pretraining steps (batches of 256 windows): chosen on the tuning recording
#: (benchmarks/results/esort_backbone_threshold.md); 800 steps on 4 recordings transferred less.
PRETRAINING_STEPS = 12000
#: Held out from pretraining, used to choose fine-tuning settings (never the evaluation seeds).
VALIDATION_RECORDINGS = (("Neuronexus-32", 201, 2019, 20, 30.0),)
TEMPLATES_PER_CELL = 10
EVALUATION_SEEDS = (0, 101, 102, 103, 104)


def simulate_training_recording(file_path, probe, templates_seed, recording_seed, num_units, duration_s,
                                num_templates_per_cell=TEMPLATES_PER_CELL, verbose=False):
    """A MEArec recording from the (cached) template library of ``templates_seed``, spikes/noise from ``recording_seed``.

    ``groundtruth.simulate_recording`` ties both seeds together; here several recordings share one
    template library, so pretraining data can grow without running NEURON again.
    """
    import MEArec as mr

    from spikeinterface_vqcompress import groundtruth
    from spikeinterface_vqcompress.groundtruth.simulate import recording_parameters

    if templates_seed in EVALUATION_SEEDS or recording_seed in EVALUATION_SEEDS:
        raise ValueError(f"seeds {EVALUATION_SEEDS} are reserved for evaluation")
    file_path = Path(file_path)
    if file_path.is_file():
        return file_path
    if templates_seed == recording_seed:
        return groundtruth.simulate_recording(file_path, probe=probe, num_units=num_units, duration_s=duration_s,
                                              seed=templates_seed, num_templates_per_cell=num_templates_per_cell,
                                              verbose=verbose)
    templates_file = groundtruth.generate_templates(probe=probe, num_templates_per_cell=num_templates_per_cell,
                                                    seed=templates_seed, verbose=verbose)
    template_generator = mr.load_templates(templates_file, return_h5_objects=False)
    parameters = recording_parameters(template_generator, num_units, duration_s, 10.0, False,
                                                   recording_seed)
    file_path.parent.mkdir(parents=True, exist_ok=True)
    temporary = file_path.with_name(file_path.stem + ".partial.h5")
    import shutil
    import tempfile

    buffers = Path(tempfile.mkdtemp(prefix=".mearec-", dir=file_path.parent))
    try:
        generator = mr.gen_recordings(params=parameters, tempgen=template_generator, verbose=verbose,
                                      tmp_mode="memmap", tmp_folder=buffers, n_jobs=0)
        mr.save_recording_generator(generator, temporary, verbose=False, include_spike_traces=False)
        del generator
        temporary.replace(file_path)
    finally:
        shutil.rmtree(buffers, ignore_errors=True)
    return file_path


def training_set_from_file(file_path, seed=0):
    """Read a MEArec file and label all of it with its ground truth."""
    from spikeinterface.extractors import read_mearec

    from spikeinterface_vqcompress.esort import core

    recording, sorting = read_mearec(file_path)
    prepared = core.prepare_recording(recording, filter_method="sosfiltfilt")  # as the shipped backbone was trained
    noise = core.noise_levels(prepared, seed=seed)
    labels = core.labels_from_sorting(sorting, recording.get_num_samples(0))
    training_set = core.training_set_from_recording(prepared, noise, labels, seed=seed)
    return training_set, geometry_fingerprint(prepared.get_channel_locations())


def _sha256(path):
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def train_backbone(output_folder=None, work_folder=None, name="esort_backbone", steps=PRETRAINING_STEPS,
                   batch_size=256, learning_rate=1e-3, seed=0, num_threads=2, recordings=TRAINING_RECORDINGS,
                   device="auto", verbose=True, command=None):
    """Simulate the training recordings (if missing), pretrain, write ``<name>.pt`` and ``<name>.json``.

    Parameters
    ----------
    output_folder : str | Path | None, default: None
        Where the weights and model card go (None: the package's ``models`` folder).
    work_folder : str | Path | None, default: None
        Where the training recordings are simulated (None: ``benchmarks/work/esort_training``).
    name : str, default: "esort_backbone"
    steps, batch_size, learning_rate, seed
        Pretraining settings (see ``training.pretrain``).
    num_threads : int, default: 2
        torch CPU threads.
    recordings : sequence of tuples
        ``(probe, templates_seed, recording_seed, num_units, duration_s)`` of each training recording.
    device : str, default: "auto"
    verbose : bool, default: True
    command : str | None
        The command line recorded in the model card.

    Returns
    -------
    weights_path : Path
    """
    from spikeinterface_vqcompress.core.weights import MODELS_FOLDER
    from spikeinterface_vqcompress.esort.model import resolve_device
    from spikeinterface_vqcompress.esort.training import pretrain

    torch.set_num_threads(int(num_threads))
    output_folder = Path(output_folder) if output_folder else MODELS_FOLDER
    work_folder = Path(work_folder) if work_folder else Path(__file__).resolve().parents[2] / "benchmarks" / "work" / "esort_training"
    t0 = time.perf_counter()
    training_sets, fingerprints, data = [], [], []
    for probe, templates_seed, recording_seed, num_units, duration_s in recordings:
        file_path = work_folder / f"train_{probe}_t{templates_seed}_r{recording_seed}_{num_units}u.h5"
        simulate_training_recording(file_path, probe, templates_seed, recording_seed, num_units, duration_s)
        training_set, fingerprint = training_set_from_file(file_path, seed=seed)
        training_sets.append(training_set)
        fingerprints.append(fingerprint)
        data.append({"probe": probe, "templates_seed": templates_seed, "recording_seed": recording_seed,
                     "num_units": num_units, "duration_s": duration_s,
                     "num_templates_per_cell": TEMPLATES_PER_CELL, "geometry_fingerprint": fingerprint,
                     "num_windows": len(training_set)})
        if verbose:
            print(f"training set {file_path.name}: {len(training_set)} windows, {fingerprint}", flush=True)
    simulation_s = time.perf_counter() - t0
    temporal, spatial_layers, history = pretrain(training_sets, fingerprints, steps=steps, batch_size=batch_size,
                                                 learning_rate=learning_rate, seed=seed,
                                                 device=resolve_device(device), verbose=verbose)
    probes = {fp: next(d["probe"] for d in data if d["geometry_fingerprint"] == fp) for fp in spatial_layers}
    state = backbone_state(temporal, spatial_layers, metadata={"probes": probes})
    output_folder.mkdir(parents=True, exist_ok=True)
    weights_path = output_folder / f"{name}.pt"
    torch.save(state, weights_path)
    card = {
        "name": name,
        "description": "E-Sort backbone (Han & Wang, arXiv 2409.13067, rebuilt): per-channel temporal layers "
                       "60->8->16 (BN+ReLU, shared by every channel and every probe) + one spatial layer "
                       "16*C->256 (BN+ReLU) per training probe geometry. Heads are not shipped.",
        "weights_file": weights_path.name,
        "weights_sha256": _sha256(weights_path),
        "weights_nbytes": weights_path.stat().st_size,
        "weights_dtype": "float16 (cast to float32 on load)",
        "spatial_layers": probes,
        "transfer_rule": "temporal layers always; a spatial layer only to a recording whose geometry fingerprint "
                         "(channel count + contact positions) matches; otherwise a new spatial layer is learned",
        "training": {
            "command": command or "vqcompress train esort",
            "data": data,
            "labels": "every ground-truth spike of each training recording (window positive when a spike is centred "
                      "within +/-5 samples); preprocessing: band-pass 300-6000 Hz, division by per-channel MAD noise",
            "steps": steps, "batch_size": batch_size, "optimizer": f"Adam, learning rate {learning_rate}",
            "seed": seed, "torch_threads": num_threads, "simulation_and_loading_s": round(simulation_s, 1),
            "pretraining_s": round(history["training_time_s"], 1),
            "loss_last": history["loss"][-1] if history["loss"] else None,
            "loss_history": {"step": history["step"], "loss": [round(v, 5) for v in history["loss"]]},
            "evaluation_seeds_excluded": list(EVALUATION_SEEDS),
        },
        "versions": {"torch": torch.__version__, "python": platform.python_version(),
                     "numpy": np.__version__},
        "argv": sys.argv,
    }
    write_json(output_folder / f"{name}.json", card)
    if verbose:
        print(f"wrote {weights_path} ({card['weights_nbytes']} bytes) in {time.perf_counter() - t0:.0f} s", flush=True)
    return weights_path
