"""Load any recording SpikeInterface can read through one function, guessing the format from the path.

``load_recording(path, format=None, **kwargs)`` dispatches to SpikeInterface's readers: every
Neo-based format (SpikeGLX, Open Ephys, NIX, Neuroscope, Intan, Blackrock, ...), headerless binary,
SpikeInterface binary and zarr folders, NWB, MEArec, and this package's own compressed container
(``.vqc``). ``format`` is one of :func:`supported_formats`; when it is ``None`` the format is guessed
from the path with the rules below, tried in order, first match wins.

Format guessing table (:data:`FORMAT_GUESSING_RULES` holds it as data):

======================  ==============================================================================
format                  the path is ...
======================  ==============================================================================
``vqc``                 a file or folder named ``*.vqc`` (this package's compressed container)
``si``                  a ``.json`` file written by SpikeInterface, a ``.pkl`` / ``.pickle`` file, or a
                        folder holding ``si_folder.json`` or ``binary.json`` (as written by
                        ``recording.save(format="binary")``)
``zarr``                a folder named ``*.zarr`` or holding ``.zgroup`` / ``zarr.json``
``nwb``                 a ``.nwb`` file, or an HDF5 file with an ``nwb_version`` attribute
``nix``                 a ``.nix`` file, or an HDF5 file whose ``format`` attribute is ``"nix"``
``mearec``              an HDF5 file (``.h5`` / ``.hdf5``) holding ``recordings`` and ``spiketrains`` or
                        ``channel_positions``
``maxwell``             an HDF5 file holding ``wells`` or both ``mapping`` and ``sig``
``mcsh5``               an HDF5 file holding ``Data/Recording_0``
``spikeglx``            a ``.bin`` or ``.meta`` file with its ``.meta`` / ``.bin`` twin beside it (the
                        stream of that file is selected), or a folder with such a pair anywhere below
``openephysbinary``     a ``structure.oebin`` file (its folder is read), or a folder with a
                        ``structure.oebin`` anywhere below
``openephyslegacy``     a ``.continuous`` file (its folder is read), or a folder holding ``.continuous``
                        files or ``structure.openephys``
``neuroscope``          a ``.dat`` / ``.lfp`` / ``.eeg`` file with a ``.xml`` of the same name beside it,
                        that ``.xml`` itself, or a folder holding exactly one such pair
``binary``              any other ``.raw`` / ``.bin`` / ``.dat`` file: headerless, so ``sampling_frequency``,
                        ``num_channels`` and ``dtype`` must be passed as keyword arguments (and
                        ``file_offset``, in bytes, when the samples follow a header)
``wav``                 a ``.wav`` file (PCM; its channels and sampling rate; memory-mapped, not loaded)
(Neo's own guess)       anything else: ``neo.rawio.get_rawio`` guesses from the file extensions, and the
                        guess is used when exactly one Neo reader matches and SpikeInterface wraps it
======================  ==============================================================================

When nothing matches, :func:`load_recording` raises a ``ValueError`` that lists the supported
formats and asks for ``format=``.

A SpikeGLX recording is annotated with the text of its ``.meta`` file (annotation ``spikeglx_meta``):
a container keeps annotations, so ``vqcompress decompress --format binary`` can write the ``.meta``
of the rebuilt ``.bin`` (see :mod:`spikeinterface_vqcompress.outputs`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Callable

__all__ = [
    "FORMAT_GUESSING_RULES",
    "guess_format",
    "load_recording",
    "normalize_format_name",
    "supported_formats",
]

# Readers of ``recording_extractor_full_dict`` that do not read a path: NumpyRecording takes arrays,
# the IBL reader takes a session id and downloads.
_NOT_PATH_READERS = ("numpy", "ibl")

# Formats handled here rather than by ``recording_extractor_full_dict``.
_OWN_FORMATS = ("si", "vqc", "openephys", "wav")

# Other spellings accepted for ``format=`` (compared after lower-casing and dropping "_", "-", " ").
_FORMAT_ALIASES = {
    "spikeinterface": "si",
    "json": "si",
    "hdf5nwb": "nwb",
    "neuropixels": "spikeglx",
    "openephysbinaryformat": "openephysbinary",
    "vqcompress": "vqc",
    "wave": "wav",
}

_HEADERLESS_BINARY_SUFFIXES = (".raw", ".bin", ".dat")
_NEUROSCOPE_DATA_SUFFIXES = (".dat", ".lfp", ".eeg")
_HDF5_SUFFIXES = (".h5", ".hdf5", ".hdf")
_BINARY_REQUIRED_KWARGS = ("sampling_frequency", "num_channels", "dtype")
#: The recording annotation holding the text of a SpikeGLX source's ``.meta`` file.
SPIKEGLX_META_ANNOTATION = "spikeglx_meta"


# --------------------------------------------------------------------------------------------------
# Readers
# --------------------------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _spikeinterface_readers() -> dict[str, Callable]:
    """Name -> reader for every path-based recording reader of ``spikeinterface.extractors``."""
    from spikeinterface.extractors import recording_extractor_full_dict
    from spikeinterface.extractors.neoextractors import (
        MEArecRecordingExtractor,
        OpenEphysBinaryRecordingExtractor,
        OpenEphysLegacyRecordingExtractor,
        read_openephys,
    )

    readers = {
        name: reader for name, reader in recording_extractor_full_dict.items() if name not in _NOT_PATH_READERS
    }
    # The full dict maps both Open Ephys names to ``read_openephys`` (which picks by folder contents)
    # and "mearec" to ``read_mearec`` (which returns a (recording, sorting) pair): use the classes.
    readers["openephysbinary"] = OpenEphysBinaryRecordingExtractor
    readers["openephyslegacy"] = OpenEphysLegacyRecordingExtractor
    readers["openephys"] = read_openephys
    readers["mearec"] = MEArecRecordingExtractor
    return readers


def supported_formats() -> list[str]:
    """Names accepted by ``load_recording(..., format=name)``.

    Returns
    -------
    format_names : list of str
        Sorted format names: every path-based SpikeInterface recording reader (all Neo-based
        formats, ``binary``, ``binaryfolder``, ``zarr``, ``nwb``, ``mearec``, ...), plus ``openephys``
        (legacy or binary, chosen from the folder), ``si`` (anything ``spikeinterface.load`` reads)
        and ``vqc`` (this package's compressed container).
    """
    return sorted(set(_spikeinterface_readers()) | set(_OWN_FORMATS))


def normalize_format_name(format_name: str) -> str:
    """The canonical name of a format name or alias (case, "_", "-", " " and "." ignored), e.g.
    ``"SpikeGLX"`` and ``"neuropixels"`` -> ``"spikeglx"``; whether it is supported is not checked."""
    key = str(format_name).lower()
    for character in ("_", "-", " ", "."):
        key = key.replace(character, "")
    return _FORMAT_ALIASES.get(key, key)


# --------------------------------------------------------------------------------------------------
# Format guessing
# --------------------------------------------------------------------------------------------------


def _hdf5_layout(path: Path) -> tuple[set, dict] | None:
    """Top-level names and attributes of an HDF5 file, or None if it is not one."""
    if not path.is_file():
        return None
    try:
        import h5py

        if not h5py.is_hdf5(path):
            return None
        with h5py.File(path, "r") as file:
            names = set(file.keys())
            if "Data" in names and isinstance(file["Data"], h5py.Group):
                names |= {f"Data/{name}" for name in file["Data"].keys()}
            attributes = {}
            for key, value in file.attrs.items():
                if isinstance(value, bytes):
                    value = value.decode(errors="replace")
                attributes[key] = value
            return names, attributes
    except Exception:  # unreadable or locked file: let the other rules decide
        return None


def _is_hdf5_with(predicate: Callable[[set, dict], bool]) -> Callable[[Path], bool]:
    def rule(path: Path) -> bool:
        layout = _hdf5_layout(path)
        return layout is not None and bool(predicate(*layout))

    return rule


def _spikeglx_pairs_below(folder: Path) -> list[Path]:
    pairs = []
    for root, _, file_names in os.walk(folder):
        for file_name in file_names:
            if file_name.endswith(".meta") and (Path(root) / file_name).with_suffix(".bin").is_file():
                pairs.append(Path(root) / file_name)
    return pairs


def _is_spikeglx(path: Path) -> bool:
    if path.is_file():
        twin = {".bin": ".meta", ".meta": ".bin"}.get(path.suffix.lower())
        return twin is not None and path.with_suffix(twin).is_file()
    return path.is_dir() and len(_spikeglx_pairs_below(path)) > 0


def _is_openephys_binary(path: Path) -> bool:
    if path.is_file():
        return path.name == "structure.oebin"
    if not path.is_dir():
        return False
    return any("structure.oebin" in file_names for _, _, file_names in os.walk(path))


def _is_openephys_legacy(path: Path) -> bool:
    if path.is_file():
        return path.suffix == ".continuous"
    if not path.is_dir():
        return False
    return (path / "structure.openephys").is_file() or any(path.glob("*.continuous"))


def _neuroscope_pairs_in(folder: Path) -> list[tuple[Path, Path]]:
    pairs = []
    for xml_path in sorted(folder.glob("*.xml")):
        for suffix in _NEUROSCOPE_DATA_SUFFIXES:
            if xml_path.with_suffix(suffix).is_file():
                pairs.append((xml_path.with_suffix(suffix), xml_path))
                break
    return pairs


def _is_neuroscope(path: Path) -> bool:
    if path.is_file():
        suffix = path.suffix.lower()
        if suffix in _NEUROSCOPE_DATA_SUFFIXES:
            return path.with_suffix(".xml").is_file()
        if suffix == ".xml":
            return any(path.with_suffix(data_suffix).is_file() for data_suffix in _NEUROSCOPE_DATA_SUFFIXES)
        return False
    return path.is_dir() and len(_neuroscope_pairs_in(path)) == 1


def _is_spikeinterface_json(path: Path) -> bool:
    """A JSON file written by SpikeInterface starts with its "class" and "module" keys."""
    try:
        with open(path, encoding="utf8", errors="replace") as file:
            head = file.read(4096)
    except OSError:
        return False
    return '"class"' in head and "spikeinterface" in head


def _is_spikeinterface_folder_or_file(path: Path) -> bool:
    if path.is_file():
        suffix = path.suffix.lower()
        return suffix in (".pkl", ".pickle") or (suffix == ".json" and _is_spikeinterface_json(path))
    return path.is_dir() and ((path / "si_folder.json").is_file() or (path / "binary.json").is_file())


def _is_zarr(path: Path) -> bool:
    if path.suffix.lower() == ".zarr":
        return True
    return path.is_dir() and ((path / ".zgroup").is_file() or (path / "zarr.json").is_file())


@dataclass(frozen=True)
class FormatGuessingRule:
    """One row of the format guessing table.

    Parameters
    ----------
    format_name : str
        The format chosen when the rule matches (a name of :func:`supported_formats`).
    description : str
        What the path looks like, in words.
    matches : callable
        ``matches(path) -> bool`` for an existing ``pathlib.Path``.
    """

    format_name: str
    description: str
    matches: Callable[[Path], bool]


#: The format guessing table, tried in order (first match wins); see the module docstring.
FORMAT_GUESSING_RULES: tuple[FormatGuessingRule, ...] = (
    FormatGuessingRule("vqc", "file or folder named *.vqc", lambda path: path.suffix.lower() == ".vqc"),
    FormatGuessingRule(
        "si",
        "SpikeInterface .json, .pkl file, or folder with si_folder.json or binary.json",
        _is_spikeinterface_folder_or_file,
    ),
    FormatGuessingRule("zarr", "folder named *.zarr or holding .zgroup/zarr.json", _is_zarr),
    FormatGuessingRule("nwb", ".nwb file", lambda path: path.suffix.lower() == ".nwb"),
    FormatGuessingRule("nix", ".nix file", lambda path: path.suffix.lower() == ".nix"),
    FormatGuessingRule(
        "mearec",
        "HDF5 file with 'recordings' and 'spiketrains' or 'channel_positions'",
        _is_hdf5_with(lambda names, _: "recordings" in names and bool({"spiketrains", "channel_positions"} & names)),
    ),
    FormatGuessingRule(
        "nwb", "HDF5 file with an 'nwb_version' attribute", _is_hdf5_with(lambda _, attrs: "nwb_version" in attrs)
    ),
    FormatGuessingRule(
        "nix",
        "HDF5 file whose 'format' attribute is 'nix'",
        _is_hdf5_with(lambda _, attrs: attrs.get("format") == "nix"),
    ),
    FormatGuessingRule(
        "maxwell",
        "HDF5 file with 'wells', or with 'mapping' and 'sig'",
        _is_hdf5_with(lambda names, _: "wells" in names or {"mapping", "sig"} <= names),
    ),
    FormatGuessingRule(
        "mcsh5", "HDF5 file with 'Data/Recording_0'", _is_hdf5_with(lambda names, _: "Data/Recording_0" in names)
    ),
    FormatGuessingRule("spikeglx", ".bin/.meta pair (file or anywhere below a folder)", _is_spikeglx),
    FormatGuessingRule(
        "openephysbinary", "structure.oebin file, or folder with structure.oebin anywhere below", _is_openephys_binary
    ),
    FormatGuessingRule(
        "openephyslegacy",
        ".continuous file, or folder with .continuous files or structure.openephys",
        _is_openephys_legacy,
    ),
    FormatGuessingRule(
        "neuroscope",
        ".dat/.lfp/.eeg with a same-named .xml beside it (or that .xml, or a folder with one pair)",
        _is_neuroscope,
    ),
    FormatGuessingRule(
        "binary",
        "other .raw/.bin/.dat file (headerless: pass sampling_frequency, num_channels, dtype)",
        lambda path: path.is_file() and path.suffix.lower() in _HEADERLESS_BINARY_SUFFIXES,
    ),
    FormatGuessingRule("wav", ".wav file (PCM)", lambda path: path.is_file() and path.suffix.lower() == ".wav"),
)


def _guess_with_neo(path: Path) -> str | None:
    """Neo's extension-based guess, mapped to the SpikeInterface reader that wraps that Neo reader."""
    try:
        from neo.rawio import get_rawio

        rawio_class = get_rawio(path)
    except Exception:
        return None
    if rawio_class is None:
        return None
    for format_name, reader in _spikeinterface_readers().items():
        if getattr(reader, "NeoRawIOClass", None) == rawio_class.__name__:
            return format_name
    return None


def guess_format(path: str | os.PathLike) -> str | None:
    """Guess the recording format of an existing path.

    Parameters
    ----------
    path : str or Path
        A recording file or folder.

    Returns
    -------
    format_name : str or None
        A name of :func:`supported_formats`, or None when no rule of :data:`FORMAT_GUESSING_RULES`
        matches and Neo's own guess does not name exactly one reader SpikeInterface wraps.
    """
    path = Path(path)
    for rule in FORMAT_GUESSING_RULES:
        if rule.matches(path):
            return rule.format_name
    return _guess_with_neo(path)


# --------------------------------------------------------------------------------------------------
# Loading
# --------------------------------------------------------------------------------------------------


def _formats_message() -> str:
    return "Supported formats: " + ", ".join(supported_formats()) + "."


def _spikeglx_stream_id(meta_path: Path) -> str | None:
    """The Neo stream id (e.g. "imec0.ap", "nidq") of one SpikeGLX .meta file."""
    try:
        from neo.rawio.spikeglxrawio import extract_stream_info, read_meta_file

        return extract_stream_info(meta_path, read_meta_file(meta_path))["stream_name"]
    except Exception:
        return None


def _reader_arguments(format_name: str, path: Path, kwargs: dict) -> tuple[Path, dict]:
    """Turn the path the user gave into the path the reader wants, plus implied keyword arguments.

    Keyword arguments the user passed always win over implied ones.
    """
    implied = {}
    if format_name == "spikeglx" and path.is_file():
        # Neo's SpikeGLX reader is folder based: read the folder and select this file's stream.
        meta_path = path.with_suffix(".meta")
        stream_id = _spikeglx_stream_id(meta_path)
        if stream_id is not None and "stream_name" not in kwargs:
            implied["stream_id"] = stream_id
        path = path.parent
    elif format_name in ("openephysbinary", "openephyslegacy", "openephys") and path.is_file():
        path = path.parent
    elif format_name == "neuroscope":
        if path.is_dir():
            pairs = _neuroscope_pairs_in(path)
            if len(pairs) == 1:
                path, xml_path = pairs[0]
                implied["xml_file_path"] = xml_path
        elif path.suffix.lower() == ".xml":
            xml_path = path
            for suffix in _NEUROSCOPE_DATA_SUFFIXES:
                if path.with_suffix(suffix).is_file():
                    path = path.with_suffix(suffix)
                    break
            implied["xml_file_path"] = xml_path
    return path, {**implied, **kwargs}


def _read_wav(path: Path, kwargs: dict):
    """A PCM WAV file as a one-segment recording (memory-mapped: long files are not loaded)."""
    from scipy.io import wavfile
    from spikeinterface.core import NumpyRecording

    if kwargs:
        raise TypeError(f"a WAV file takes no reader arguments (got {', '.join(sorted(kwargs))}): its header gives "
                        "the sampling rate, channel count and sample type")
    try:
        sampling_frequency, data = wavfile.read(path, mmap=True)
    except ValueError as error:
        raise ValueError(f"{path} is not a PCM WAV file scipy reads ({error})") from error
    if data.ndim == 1:
        data = data[:, None]
    return NumpyRecording([data], sampling_frequency=float(sampling_frequency))


def _check_binary_size(path: Path, kwargs: dict):
    """A headerless file must hold a whole number of samples of ``num_channels`` x ``dtype``."""
    import numpy as np

    try:
        num_channels = int(kwargs["num_channels"])
        itemsize = np.dtype(kwargs["dtype"]).itemsize
    except (TypeError, ValueError) as error:
        raise ValueError(f"invalid num_channels or dtype for {path}: {error}") from None
    if num_channels <= 0:
        raise ValueError(f"num_channels must be positive, got {num_channels}")
    if not path.is_file():
        return
    offset = int(kwargs.get("file_offset", 0) or 0)
    data_nbytes = path.stat().st_size - offset
    frame_nbytes = num_channels * itemsize
    if data_nbytes <= 0 or data_nbytes % frame_nbytes:
        raise ValueError(
            f"{path} holds {path.stat().st_size} bytes{f' ({data_nbytes} after an offset of {offset})' if offset else ''}, "
            f"not a whole number of samples of {num_channels} channels x {np.dtype(kwargs['dtype']).name} "
            f"({frame_nbytes} bytes each); check the channel count, the dtype and the offset"
        )


def _spikeglx_meta_text(recording) -> str | None:
    """The text of the ``.meta`` file of a one-segment SpikeGLX recording's stream, or None."""
    try:
        infos = [info for info in recording.neo_reader.signals_info_list if info["stream_name"] == recording.stream_id]
    except AttributeError:
        return None
    if len(infos) != 1:
        return None
    try:
        return Path(infos[0]["meta_file"]).read_text(encoding="utf-8", errors="replace")
    except OSError:
        return None


def _read(format_name: str, path: Path, kwargs: dict, guessed: bool):
    if format_name == "wav":
        return _read_wav(path, kwargs)
    if format_name == "vqc":
        from spikeinterface_vqcompress.recording import read_compressed

        return read_compressed(path, **kwargs)
    if format_name == "si":
        from spikeinterface.core import load

        if Path(path).is_file():
            # JSON files saved by SpikeInterface hold paths relative to their folder.
            kwargs = {"base_folder": True, **kwargs}
        return load(path, **kwargs)
    if format_name == "binary":
        if path.is_dir() and ((path / "binary.json").is_file() or (path / "si_folder.json").is_file()):
            from spikeinterface.core import load

            return load(path, **kwargs)
        missing = [name for name in _BINARY_REQUIRED_KWARGS if name not in kwargs]
        if missing:
            how = "guessed from the extension" if guessed else "requested"
            raise ValueError(
                f"{path} is read as headerless binary ({how}), which needs the keyword arguments "
                f"{', '.join(_BINARY_REQUIRED_KWARGS)}; missing: {', '.join(missing)}. Pass them, e.g. "
                f"load_recording(path, format='binary', sampling_frequency=30000.0, num_channels=32, "
                f"dtype='int16'), or pass another format=. {_formats_message()}"
            )
        _check_binary_size(path, kwargs)
    recording = _spikeinterface_readers()[format_name](path, **kwargs)
    if format_name == "spikeglx":
        meta_text = _spikeglx_meta_text(recording)
        if meta_text is not None:
            recording.annotate(**{SPIKEGLX_META_ANNOTATION: meta_text})
    return recording


def load_recording(path: str | os.PathLike, format: str | None = None, **kwargs):
    """Read a recording in any format SpikeInterface reads, guessing the format from the path.

    Parameters
    ----------
    path : str or Path
        The recording file or folder (for folder-based formats, e.g. SpikeGLX and Open Ephys, a file
        of the recording is accepted too and its folder is read; for SpikeGLX its stream is selected).
    format : str or None, default: None
        One of :func:`supported_formats` (case, "_" and "-" are ignored). If None, the format is guessed
        with :data:`FORMAT_GUESSING_RULES`, then Neo's extension-based guess.
    **kwargs
        Passed to the reader, e.g. ``stream_id`` / ``stream_name`` for multi-stream Neo formats, or
        ``sampling_frequency``, ``num_channels``, ``dtype`` (and optionally ``gain_to_uV``,
        ``offset_to_uV``, ``file_offset`` in bytes) for headerless binary files. A ``.wav`` file
        takes none: its header has them.

    Returns
    -------
    recording : BaseRecording
        The lazily loaded recording.

    Raises
    ------
    FileNotFoundError
        If ``path`` does not exist.
    ValueError
        If ``format`` is not a supported name, or it is None and the format cannot be guessed (the
        message lists the supported formats and asks for ``format=``), or a headerless binary file
        lacks ``sampling_frequency``, ``num_channels`` or ``dtype``, or its size is not a whole
        number of samples of them.
    TypeError
        If the path holds a SpikeInterface object that is not a recording.
    """
    from spikeinterface.core import BaseRecording

    path_text = os.fspath(path)
    is_remote = "://" in path_text
    path = Path(path_text).expanduser() if not is_remote else path_text
    if not is_remote and not path.exists():
        raise FileNotFoundError(f"No recording at {path}: the path does not exist.")

    if format is None:
        format_name = ("zarr" if str(path).rstrip("/").endswith(".zarr") else None) if is_remote else guess_format(path)
        if format_name is None:
            raise ValueError(
                f"Could not guess the recording format of {path}. Pass format=<name> to load_recording. "
                f"{_formats_message()}"
            )
        guessed = True
    else:
        format_name = normalize_format_name(format)
        if format_name not in supported_formats():
            raise ValueError(
                f"Unknown recording format {format!r} for {path}. Pass one of the supported names as format=. "
                f"{_formats_message()}"
            )
        guessed = False

    if not is_remote:
        path, kwargs = _reader_arguments(format_name, path, kwargs)
    try:
        recording = _read(format_name, path, kwargs, guessed)
    except Exception as error:
        if guessed and hasattr(error, "add_note"):
            error.add_note(f"load_recording guessed format '{format_name}' for {path}; pass format= to override.")
        raise

    if isinstance(recording, tuple):  # readers returning (recording, sorting)
        recording = recording[0]
    if not isinstance(recording, BaseRecording):
        raise TypeError(f"{path} holds a {type(recording).__name__}, not a recording.")
    return recording
