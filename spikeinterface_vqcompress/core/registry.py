"""The codec registry: codec id -> ``"module:Class"``, loaded on first use; presets by purpose.

A leaf module (numcodecs' ``registry.py`` and CompressAI's ``registry/`` are the model): it imports
no codec. The built-in codecs are a lazy table of import paths; a third-party package registers
its own in the ``spikeinterface_vqcompress.codecs`` entry-point group of its ``pyproject.toml``::

    [project.entry-points."spikeinterface_vqcompress.codecs"]
    my-codec = "my_package.my_module:MyCodec"

and a script may call :func:`register_codec` with a class at run time. Presets name a codec and
its parameters by what they are for (``archive``, ``storage``, ``implant``); they resolve to a
plain codec config, which is what a container records.
"""

from __future__ import annotations

import importlib
import threading
from dataclasses import dataclass

#: Entry-point group third-party packages register codecs in.
ENTRY_POINT_GROUP = "spikeinterface_vqcompress.codecs"

#: The built-in codecs: id -> "module:Class" (imported on first use).
BUILTIN_CODECS = {
    "zstd": "spikeinterface_vqcompress.core.codecs.classic:ZstdCodec",
    "flac": "spikeinterface_vqcompress.core.codecs.classic:FlacCodec",
    "wavpack": "spikeinterface_vqcompress.core.codecs.classic:WavPackCodec",
    "bit-truncation": "spikeinterface_vqcompress.core.codecs.classic:BitTruncationCodec",
    "broadband": "spikeinterface_vqcompress.core.codecs.broadband.codec:BroadbandCodec",
    "broadband-rvq": "spikeinterface_vqcompress.core.codecs.broadband.rvq_codec:BroadbandRVQCodec",
    "vqcae-hybrid": "spikeinterface_vqcompress.core.codecs.vqcae_hybrid:VQCAEHybridCodec",
    "spike-cae": "spikeinterface_vqcompress.core.codecs.spike_cae.codec:SpikeCAECodec",
    "spike-vq": "spikeinterface_vqcompress.core.codecs.spike_vq.codec:SpikeVQCodec",
    "spike-pca": "spikeinterface_vqcompress.core.codecs.spike_vq.codec:SpikePCACodec",
}


@dataclass(frozen=True)
class Preset:
    """A codec setting named by its purpose.

    Parameters
    ----------
    name : str
        The preset's name (``"storage"``).
    config : dict
        The codec config it resolves to, ``{"id": codec_id, **params}``.
    purpose : str
        One line: what it is for.
    measured : str
        One line: its measured ratio and sorting cost, with where it was measured.
    """

    name: str
    config: dict
    purpose: str
    measured: str


#: Presets by purpose. The codec issues move these mappings as better settings are measured.
PRESETS = {
    "archive": Preset(
        "archive",
        {"id": "broadband", "max_error": 0},
        "best lossless: bit-exact archive of any int16 recording",
        "3.52x on 150 Neuralink N1 files (zip 2.2x, best public entry 3.46x); 3.9-4.0x on MEArec int16 (FLAC 3.8x)",
    ),
    "storage": Preset(
        "storage",
        {"id": "broadband", "max_error": 16},
        "recommended sorting-safe lossy storage (every sample within 16 LSB)",
        "11.1x on a held-out Neuronexus-32 MEArec recording: tridesclous2 0.947 -> 0.936, "
        "false-positive units 3 -> 3.5 (seeds 0-1); real recordings, agreement with the raw sorting "
        "(spykingcircus2 seeds 0-1, raw-vs-raw -> rebuilt): locust tetrode 5.6x 0.925 -> 0.895, Open Ephys "
        "16 ch 6.7x 0.710 -> 0.682 (benchmarks/results/storage_preset_real.md)",
    ),
    "implant": Preset(
        "implant",
        {"id": "spike-vq", "residual_step": 3.0, "refine_step": 1.0, "channel_escape_threshold": 4.0},
        "N1-budget implant link: spikes as codewords learned on the probe (refined to their units' means) + coarse residual, "
        "background as noise statistics",
        "597x / 1013x vs int16 on held-out MEArec Neuronexus-32 / Neuropixels-64 (3 recordings each, "
        "benchmarks/results/spike_vq.md): tridesclous2 (seeds 0-1) -0.072 / -0.020, spykingcircus2 (seeds 0-2) -0.017 / +0.021 "
        "mean accuracy, false-positive units 3.0 -> 9.3 / 3.2 -> 8.3 with tridesclous2 (it does not keep sorting yet: junk "
        "units; without refinement 701x / 1287x, tridesclous2 -0.151 / -0.063); "
        "at 1024 ch every N1 row passes (link 0.94 Mbit/s), encoder 1.2-1.4x real time on one core (benchmarks/results/spike_vq_hardware.md)",
    ),
}

_RUNTIME: dict[str, type] = {}
_LOADED: dict[str, type] = {}
_ENTRY_POINTS: dict[str, object] | None = None
_LOCK = threading.RLock()


def _entry_points() -> dict:
    global _ENTRY_POINTS
    if _ENTRY_POINTS is None:
        from importlib.metadata import entry_points

        _ENTRY_POINTS = {entry.name: entry for entry in entry_points(group=ENTRY_POINT_GROUP)}
    return _ENTRY_POINTS


def register_codec(cls: type) -> type:
    """Register a codec class under ``cls.codec_id`` at run time (usable as a decorator).

    Built-in codecs are in :data:`BUILTIN_CODECS` and installed packages use the entry-point group
    :data:`ENTRY_POINT_GROUP`; this is for codecs defined in a script or a notebook.
    """
    codec_id = getattr(cls, "codec_id", "")
    if not codec_id:
        raise ValueError(f"{cls.__name__} has no codec_id; set the class attribute codec_id = 'my-codec'")
    if codec_id in PRESETS:
        raise ValueError(f"codec id '{codec_id}' is a preset name; choose another codec_id")
    with _LOCK:
        existing = _RUNTIME.get(codec_id) or _LOADED.get(codec_id)
        if existing is None and (codec_id in BUILTIN_CODECS or codec_id in _entry_points()):
            existing = get_codec_class(codec_id)
        if existing is not None and existing is not cls and existing.__qualname__ != cls.__qualname__:
            raise ValueError(f"codec id '{codec_id}' is already registered by {existing.__name__}")
        _RUNTIME[codec_id] = cls
    return cls


def available_codecs() -> list[str]:
    """Ids of every codec: built-in, registered through entry points or at run time."""
    return sorted(set(BUILTIN_CODECS) | set(_entry_points()) | set(_RUNTIME))


def available_presets() -> dict[str, Preset]:
    """The presets by purpose (name -> :class:`Preset`)."""
    return dict(PRESETS)


def _import_target(codec_id: str, target: str) -> type:
    module_name, _, class_name = target.partition(":")
    cls = getattr(importlib.import_module(module_name), class_name)
    if getattr(cls, "codec_id", None) != codec_id:
        raise ValueError(f"{target} is registered as codec '{codec_id}' but its codec_id is {cls.codec_id!r}")
    return cls


def get_codec_class(codec_id: str) -> type:
    """The codec class registered under ``codec_id`` (imported on first use)."""
    if codec_id in _RUNTIME:
        return _RUNTIME[codec_id]
    if codec_id in _LOADED:
        return _LOADED[codec_id]
    if codec_id in BUILTIN_CODECS:
        cls = _import_target(codec_id, BUILTIN_CODECS[codec_id])
    elif codec_id in _entry_points():
        cls = _entry_points()[codec_id].load()
        if getattr(cls, "codec_id", None) != codec_id:
            raise ValueError(f"entry point '{codec_id}' of group {ENTRY_POINT_GROUP} loads {cls!r} whose codec_id "
                             f"is {getattr(cls, 'codec_id', None)!r}")
    elif codec_id in PRESETS:
        return get_codec_class(PRESETS[codec_id].config["id"])
    else:
        raise ValueError(
            f"unknown codec '{codec_id}'. Registered codecs: {', '.join(available_codecs())}; "
            f"presets: {', '.join(PRESETS)}. "
            "A file written by a newer version of spikeinterface-vqcompress may need an upgrade."
        )
    with _LOCK:
        _LOADED[codec_id] = cls
    return cls


def resolve_config(codec, **params) -> dict:
    """The plain codec config ``{"id": ..., **params}`` for a codec id, preset name or config dict.

    A preset's parameters come first; ``params`` override them.
    """
    if isinstance(codec, dict):
        config = dict(codec)
        if "id" not in config:
            raise ValueError(f"a codec config needs an 'id' (one of {', '.join(available_codecs())}), got {codec}")
    elif isinstance(codec, str):
        config = {"id": codec}
    else:
        raise TypeError(f"codec must be a name, a preset, a config dict or a Codec, got {type(codec).__name__}")
    if config["id"] in PRESETS:
        preset = dict(PRESETS[config.pop("id")].config)
        preset.update(config)
        config = preset
    config.update(params)
    return config


def get_codec(codec, **params):
    """A codec instance from a codec id or preset (+ parameters), a config dict or an instance.

    Parameters
    ----------
    codec : str | dict | Codec
        Codec id (``"wavpack"``), preset (``"storage"``), a config ``{"id": "wavpack", "bps": 2.25}``
        or a codec instance (returned as is).
    **params
        Parameters passed to the codec's constructor (they override a preset's).

    Raises
    ------
    ValueError
        For an unknown codec, or a parameter the codec does not have, of the wrong type or out of
        its range: one line naming the codec, the parameter, the value and what is accepted (the
        codec's ``from_config`` checks names and types with
        :func:`~spikeinterface_vqcompress.core.codec.check_parameters`, its constructor the range).
    """
    if hasattr(codec, "encode") and hasattr(codec, "get_config") and not isinstance(codec, (str, dict)):
        if params:
            raise ValueError("pass parameters either in the codec instance or as keywords, not both")
        return codec
    config = resolve_config(codec, **params)
    return get_codec_class(config["id"]).from_config(config)
