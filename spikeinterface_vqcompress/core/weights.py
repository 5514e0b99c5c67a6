"""The one weights store: shipped model name -> file + sha256 + card, one cache, one default table.

CompressAI's ``zoo/`` is the model. Every learned codec and E-Sort resolve their weights here:

- :data:`SHIPPED_WEIGHTS`: per model family, name -> weights file in :data:`MODELS_FOLDER`. A
  retrained model gets a new name (``-r2`` ...): containers name their model and its sha256, so
  every model that wrote a container stays shipped and its containers keep decoding.
- Each shipped file has a JSON model card beside it (``<file stem>.json``: the training command,
  data and ``weights_sha256``); :func:`load_cached` checks the file against it.
- :data:`DEFAULT_MODELS` and :func:`default_model`: the one default-model table per family.

Nothing is downloaded: a name that is not shipped must be a path to a weights file.
"""

from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

from spikeinterface_vqcompress.core.errors import ModelMismatchError

#: Folder of the weights and model cards shipped inside the package.
MODELS_FOLDER = Path(__file__).resolve().parents[1] / "models"

#: Shipped weights by model family: name -> file name in :data:`MODELS_FOLDER`.
SHIPPED_WEIGHTS = {
    "spike-cae": {
        # first, under-trained releases (2 and 1 epochs): kept so that their containers decode
        "nn32-4x64": "spike_cae_nn32_4x64.pt",
        "np64-15x48": "spike_cae_np64_15x48.pt",
        "nn32-4x64-r2": "spike_cae_nn32_4x64_r2.pt",
        "nn32-16x64": "spike_cae_nn32_16x64.pt",
        "nn32-16x96": "spike_cae_nn32_16x96.pt",
        "np64-15x96": "spike_cae_np64_15x96.pt",
        # the paper shape at half the width (a quarter of the encoder MACs)
        "nn32-4x64-w128": "spike_cae_nn32_4x64_w128.pt",
        # the same two shapes trained on five template libraries (benchmarks/train_spike_cae.py)
        "nn32-4x64-r3": "spike_cae_nn32_4x64_r3.pt",
        "nn32-4x64-w128-r3": "spike_cae_nn32_4x64_w128_r3.pt",
        "nn32-4x64-c32": "spike_cae_nn32_4x64_c32.pt",
        # r3 trained to output the noise-free spike (denoising target)
        "nn32-4x64-d3": "spike_cae_nn32_4x64_d3.pt",
    },
    "vqcae-hybrid": {"vqcae_hybrid_n1": "vqcae_hybrid_n1.pt"},
    "broadband-rvq": {"broadband_rvq_mearec": "broadband_rvq_mearec.pt"},
    "esort": {"esort_backbone": "esort_backbone.pt"},
    # where spike-vq's online codebook starts (basis, stage-1 and residual codebooks; training/spike_vq.py)
    "spike-vq": {"nn-16x96": "spike_vq_prior_16x96.npz"},
}

#: What each family's models are called in messages.
FAMILY_LABELS = {"spike-cae": "spike CAE", "vqcae-hybrid": "vqcae-hybrid", "broadband-rvq": "broadband-rvq",
                 "esort": "E-Sort backbone", "spike-vq": "spike-vq prior"}

#: How to make a model of each family (named in errors).
TRAIN_HINTS = {
    "spike-cae": "train one with `vqcompress train spike-cae` or benchmarks/train_spike_cae.py",
    "vqcae-hybrid": "train one with benchmarks/train_vqcae_hybrid.py",
    "broadband-rvq": "train one with `vqcompress train broadband`",
    "esort": "train one with `vqcompress train esort`",
    "spike-vq": "train one with `python -m spikeinterface_vqcompress.training.spike_vq PATH.npz`",
}

#: The default model of each family. ``spike-cae`` has one per snippet shape and one per recording.
DEFAULT_MODELS = {
    "vqcae-hybrid": "vqcae_hybrid_n1",
    "broadband-rvq": "broadband_rvq_mearec",
    "esort": "esort_backbone",
    "spike-vq": "nn-16x96",
    # by the number of channels of a snippet (the analyzer extension picks by its sparsity)
    "spike-cae": {4: "nn32-4x64-r2", 15: "np64-15x96", 16: "nn32-16x96"},
}

#: ``spike-cae`` default by the number of channels of the recording: (at least, model).
SPIKE_CAE_DEFAULT_BY_RECORDING_CHANNELS = ((64, "np64-15x96"), (0, "nn32-4x64-r2"))

_CACHE: dict = {}
_CACHE_LOCK = threading.Lock()


def file_sha256(path) -> str:
    """sha256 of a file's bytes, read in 1 MiB blocks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def _check_family(family: str) -> dict:
    if family not in SHIPPED_WEIGHTS:
        raise ValueError(f"unknown model family {family!r}; families: {', '.join(SHIPPED_WEIGHTS)}")
    return SHIPPED_WEIGHTS[family]


def shipped_models(family: str) -> list[str]:
    """Names of the shipped models of ``family`` whose weights file is present."""
    return [name for name, file_name in _check_family(family).items() if (MODELS_FOLDER / file_name).is_file()]


def default_model(family: str, num_channels: int | None = None, recording_num_channels: int | None = None) -> str:
    """The default model of a family.

    Parameters
    ----------
    family : str
        ``"spike-cae"``, ``"vqcae-hybrid"``, ``"broadband-rvq"`` or ``"esort"``.
    num_channels : int | None, default: None
        ``spike-cae`` only: channels of a snippet (4, 15 or 16).
    recording_num_channels : int | None, default: None
        ``spike-cae`` only: channels of the recording to compress (>= 64: the Neuropixels model).
    """
    _check_family(family)
    default = DEFAULT_MODELS[family]
    if not isinstance(default, dict):
        return default
    if recording_num_channels is not None:
        for minimum, name in SPIKE_CAE_DEFAULT_BY_RECORDING_CHANNELS:
            if int(recording_num_channels) >= minimum:
                return name
    if num_channels is None:
        raise ValueError(f"{family}: pass num_channels (snippet channels, defaults for {sorted(default)}) "
                         "or recording_num_channels to pick a shipped default")
    if int(num_channels) not in default:
        raise ValueError(f"no shipped {FAMILY_LABELS[family]} for {num_channels}-channel snippets (shipped defaults: "
                         f"{default}); {TRAIN_HINTS[family]} and pass its path")
    return default[int(num_channels)]


def model_path(family: str, name_or_path) -> Path:
    """The weights file of a shipped model name, or ``name_or_path`` itself when it is a file."""
    shipped = _check_family(family)
    name = str(name_or_path)
    if name in shipped:
        path = MODELS_FOLDER / shipped[name]
        if not path.is_file():
            raise FileNotFoundError(f"the shipped {family} model {name!r} is missing ({path}); reinstall the "
                                    f"package or rebuild it ({TRAIN_HINTS[family]})")
        return path
    path = Path(name).expanduser()
    if path.is_file():
        return path.resolve()
    raise FileNotFoundError(
        f"{family} model {name!r} is neither a shipped model ({', '.join(shipped_models(family)) or 'none shipped'}) "
        f"nor a file; pass model=<name> or model=/path/to/weights.pt ({TRAIN_HINTS[family]})"
    )


def model_card(family: str, name_or_path) -> dict | None:
    """The JSON model card beside the weights (``<stem>.json``), or None when there is none."""
    card_path = model_path(family, name_or_path).with_suffix(".json")
    if not card_path.is_file():
        return None
    return json.loads(card_path.read_text())


def load_cached(family: str, name_or_path, loader):
    """``(loader(path), sha256 of the weights file)``, loaded once per process and file version.

    The cache key is the file's path, modification time and size, so a retrained file is reloaded.
    A shipped file whose model card names another ``weights_sha256`` raises
    :class:`~spikeinterface_vqcompress.core.errors.ModelMismatchError`.
    """
    path = model_path(family, name_or_path)
    stat = path.stat()
    key = (str(path), stat.st_mtime_ns, stat.st_size, loader)
    with _CACHE_LOCK:
        if key not in _CACHE:
            digest = file_sha256(path)
            card = path.with_suffix(".json")
            if card.is_file():
                expected = json.loads(card.read_text()).get("weights_sha256")
                if expected and expected != digest:
                    raise ModelMismatchError(
                        f"{path} does not match its model card {card.name} (sha256 {digest} != {expected}): the "
                        f"weights were changed; reinstall the package or retrain ({TRAIN_HINTS[family]})")
            _CACHE[key] = (loader(path), digest)
        return _CACHE[key]
