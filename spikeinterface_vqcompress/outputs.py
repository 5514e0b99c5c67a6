"""Outputs that never look complete unless they are: atomic publication, and the ways back from a container.

Every file or folder the command line writes (a ``.vqc`` container, a plain binary file and its
SpikeGLX ``.meta``, a SpikeInterface binary folder, a zarr folder, a WAV file) is written under a
hidden temporary name beside its target and renamed onto the target only when it is complete; if
anything fails (a damaged chunk, a full disk, Ctrl-C) the temporary is removed and a previous
target is left as it was. Temporaries are named ``.{target name}.{random}.{pid}@{host}.tmp`` (+ the
target's suffix, e.g. ``.zarr``), so the next write to the same target removes those of writers that
were killed (:func:`~spikeinterface_vqcompress.core.container.sweep_stale_temporaries`).

:func:`check_output_path` applies the rules shared by the commands (never the input, never a
directory where a file goes, no silent replacement without ``overwrite``) and
:func:`write_recording_output` writes a recording in one of :data:`OUTPUT_FORMATS`:

==================  ==============================================================================
format              output
==================  ==============================================================================
``binary``          ONE plain file of interleaved samples in the stored dtype (``.bin``, ``.dat``,
                    ``.raw``: what SpikeGLX, CatGT and Kilosort read), and a SpikeGLX ``.meta``
                    beside a ``.bin`` when the recording came from SpikeGLX (see below)
``binary_folder``   a SpikeInterface binary folder (``recording.save(format="binary")``)
``zarr``            a SpikeInterface zarr folder (``.zarr`` is appended when the name lacks it)
``wav``             a 16-bit PCM WAV file (int16 recordings of one segment)
==================  ==============================================================================

The SpikeGLX ``.meta`` is written only when it can be exact: the recording carries the text of its
source's ``.meta`` (``load_recording`` of a SpikeGLX file annotates it as ``spikeglx_meta``, and the
container keeps annotations) and holds exactly the channels that file saved, as int16, in one
segment. The sizes, duration and SHA1 are rewritten for the new file. A Neuropixels (imec) stream read
by SpikeInterface lacks its sync channel, which the ``.meta`` describes and SpikeGLX readers expect as
the last channel, so no ``.meta`` is written for it (the reason is returned, and the original
``.meta`` text stays in the container header).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import secrets
from pathlib import Path

from spikeinterface_vqcompress.core.container import remove_path, sweep_stale_temporaries, temporary_name_parts
from spikeinterface_vqcompress.readers import SPIKEGLX_META_ANNOTATION

__all__ = [
    "OUTPUT_FORMATS",
    "OutputError",
    "PLAIN_BINARY_SUFFIXES",
    "SPIKEGLX_META_ANNOTATION",
    "atomic_outputs",
    "check_output_path",
    "output_target",
    "write_recording_output",
]

#: Output formats of :func:`write_recording_output` (``vqcompress decompress --format``).
OUTPUT_FORMATS = ("binary", "binary_folder", "zarr", "wav")
#: Names a plain binary file usually has.
PLAIN_BINARY_SUFFIXES = (".bin", ".dat", ".raw")
_FOLDER_FORMATS = ("binary_folder", "zarr")


class OutputError(ValueError):
    """An output refused before anything is written: the input itself, a directory where a file goes, an
    existing output without ``overwrite``, or a recording the format cannot hold. The message names the
    path and the fix."""


def _same_path(first: Path, second: Path) -> bool:
    if first.resolve() == second.resolve():
        return True
    try:
        return first.exists() and second.exists() and os.path.samefile(first, second)
    except OSError:
        return False


def output_target(output, format: str) -> Path:
    """The path ``format`` writes for the ``output`` a user gave: ``name.zarr`` for zarr, else ``output``."""
    output = Path(output)
    if format == "zarr" and output.suffix != ".zarr":
        return output.with_name(output.name + ".zarr")
    return output


def check_output_path(output, *, overwrite: bool = False, folder: bool = False, inputs=(), option: str = "--overwrite") -> Path:
    """Check an output path against the rules every command follows, before any work.

    Parameters
    ----------
    output : str | Path
        The path to write.
    overwrite : bool, default: False
        Replace an existing output (never the input, never a directory by a file).
    folder : bool, default: False
        Whether the output is a folder (zarr, binary folder) rather than a file.
    inputs : sequence of str | Path, default: ()
        The inputs of the command: the output may be none of them, even with ``overwrite``.
    option : str, default: "--overwrite"
        How the message names the way to allow a replacement.

    Returns
    -------
    output : Path

    Raises
    ------
    OutputError
        With a one-line message naming the path and the fix.
    """
    output = Path(output)
    for source in inputs:
        if _same_path(output, Path(source)):
            raise OutputError(f"{output} is the input; write to another path (an input is never replaced, "
                                  f"even with {option})")
    if not folder and output.is_dir():
        raise OutputError(f"{output} is a directory; give the output a file name (a path inside that "
                              "directory, or another one)")
    if output.exists() and not overwrite:
        raise OutputError(f"{output} exists; pass {option} to replace it")
    return output


def _publish(temporary: Path, target: Path):
    """Rename a complete ``temporary`` onto ``target`` (replacing a previous target)."""
    if temporary.is_file():
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
    if target.is_dir() and not target.is_symlink():
        # a folder cannot be replaced in one rename: move the old one aside, then drop it
        prefix, suffix = temporary_name_parts(target)
        aside = target.with_name(f"{prefix}{secrets.token_hex(4)}{suffix}")
        os.replace(target, aside)
        try:
            os.replace(temporary, target)
        except BaseException:
            os.replace(aside, target)
            raise
        remove_path(aside)
    else:
        if target.exists() and temporary.is_dir():
            target.unlink()
        os.replace(temporary, target)


@contextlib.contextmanager
def atomic_outputs(*targets, suffixes=None):
    """Write several outputs under temporary names and publish them together when all are complete.

    Parameters
    ----------
    *targets : str | Path
        The final paths (published in this order: put a sidecar such as a ``.meta`` last).
    suffixes : sequence of str | None, default: None
        A suffix each temporary name must end with (a writer that insists on ``.zarr``).

    Yields
    ------
    temporaries : list of Path
        One path per target, in the target's folder; nothing exists there yet: the writer creates
        it. On an exception every temporary is removed and the targets are left as they were.
    """
    targets = [Path(target) for target in targets]
    suffixes = list(suffixes) if suffixes is not None else [""] * len(targets)
    temporaries = []
    for target, suffix in zip(targets, suffixes):
        target.parent.mkdir(parents=True, exist_ok=True)
        sweep_stale_temporaries(target)
        prefix, name_suffix = temporary_name_parts(target, suffix)
        temporaries.append(target.with_name(f"{prefix}{secrets.token_hex(4)}{name_suffix}"))
    try:
        yield temporaries
        for temporary, target in zip(temporaries, targets):
            if temporary.exists():
                _publish(temporary, target)
    finally:
        for temporary in temporaries:
            if temporary.exists():
                remove_path(temporary)


# -- writers ------------------------------------------------------------------------------------------


def _write_plain_binary(recording, path: Path, **job_kwargs):
    from spikeinterface.core import write_binary_recording

    write_binary_recording(recording, file_paths=[path], dtype=recording.get_dtype(), add_file_extension=False,
                           **job_kwargs)


def _sha1_of_file(path: Path) -> str:
    digest = hashlib.sha1()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(16 * 1024 * 1024), b""):
            digest.update(block)
    return digest.hexdigest().upper()


def _meta_lines(text: str) -> list[tuple[str, str]]:
    pairs = []
    for line in text.splitlines():
        key, separator, value = line.partition("=")
        if separator:
            pairs.append((key, value))
    return pairs


def spikeglx_meta_problem(recording) -> str | None:
    """Why no exact SpikeGLX ``.meta`` can be written for ``recording`` (None: it can be)."""
    meta_text = recording.get_annotation(SPIKEGLX_META_ANNOTATION)
    if not isinstance(meta_text, str):
        return "the recording did not come from a SpikeGLX file"
    meta = dict(_meta_lines(meta_text))
    channel_map = meta.get("~snsChanMap", "")
    saved_names = [entry.split(";")[0] for entry in channel_map[1:-1].split(")(")[1:]] if channel_map else []
    names = [str(channel_id).split("#")[-1] for channel_id in recording.channel_ids]
    if recording.get_num_segments() != 1:
        return f"the recording has {recording.get_num_segments()} segments; a .meta describes one file"
    if str(recording.get_dtype()) != "int16":
        return f"the recording holds {recording.get_dtype()} samples; SpikeGLX files hold int16"
    if str(meta.get("nSavedChans")) != str(len(names)) or saved_names != names:
        missing = [name for name in saved_names if name not in names]
        detail = f", not {', '.join(missing)}" if missing else ""
        if any(name.startswith("SY") for name in missing):
            detail += " (SpikeInterface reads the sync channel as a separate stream)"
        return (f"the recording holds {len(names)} of the {meta.get('nSavedChans', '?')} channels the SpikeGLX "
                f"file saved{detail}; a .meta must describe every channel of the file")
    return None


def _spikeglx_meta_text(recording, binary_path: Path) -> str:
    """The source's ``.meta`` with the size, duration and checksum of the new ``binary_path``."""
    pairs = _meta_lines(recording.get_annotation(SPIKEGLX_META_ANNOTATION))
    num_samples = recording.get_num_samples(0)
    updated = {
        "fileSizeBytes": str(binary_path.stat().st_size),
        "fileTimeSecs": f"{num_samples / recording.sampling_frequency:.6f}",
    }
    if any(key == "fileSHA1" for key, _ in pairs):
        updated["fileSHA1"] = _sha1_of_file(binary_path)
    return "".join(f"{key}={updated.get(key, value)}\n" for key, value in pairs)


def _wav_problem(recording) -> str | None:
    if recording.get_num_segments() != 1:
        return (f"the recording holds {recording.get_num_segments()} segments; a WAV file holds one "
                "(write a binary folder or zarr instead: vqcompress decompress --format binary_folder)")
    if str(recording.get_dtype()) != "int16":
        return f"the recording holds {recording.get_dtype()} samples; WAV output needs int16"
    return None


def write_recording_output(recording, output, format: str = "binary", overwrite: bool = False, inputs=(),
                           **job_kwargs) -> dict:
    """Write ``recording`` to ``output`` in ``format``, atomically (see the module docstring).

    Parameters
    ----------
    recording : BaseRecording
        What to write (e.g. a container opened with ``read_compressed``).
    output : str | Path
        The file or folder to write (zarr: ``.zarr`` is appended when missing).
    format : str, default: "binary"
        One of :data:`OUTPUT_FORMATS`.
    overwrite : bool, default: False
        Replace an existing output.
    inputs : sequence of str | Path, default: ()
        The paths read to make ``recording``: never replaced.
    **job_kwargs
        ``n_jobs``, ``progress_bar``, ... for the decoding.

    Returns
    -------
    written : dict
        ``paths`` (the outputs published, data first) and ``note`` (why no ``.meta`` was written
        beside a ``.bin``, or None).

    Raises
    ------
    OutputError
        Before anything is written, for a refused path or a recording the format cannot hold.
    """
    if format not in OUTPUT_FORMATS:
        raise OutputError(f"unknown output format {format!r}; use one of {', '.join(OUTPUT_FORMATS)}")
    target = check_output_path(output_target(output, format), overwrite=overwrite, folder=format in _FOLDER_FORMATS,
                               inputs=inputs)
    note = None
    if format == "wav":
        problem = _wav_problem(recording)
        if problem:
            raise OutputError(f"cannot write {target} as WAV: {problem}")
        from spikeinterface_vqcompress.evaluation.wav_evaluation import write_wav

        traces = recording.get_traces(segment_index=0)  # damaged chunks raise here, before any file exists
        with atomic_outputs(target, suffixes=[".wav"]) as (temporary,):
            write_wav(temporary, recording.sampling_frequency, traces)
        return {"paths": [target], "note": None}

    if format == "binary":
        if recording.get_num_segments() != 1:
            raise OutputError(f"cannot write {target} as one plain binary file: the recording holds "
                             f"{recording.get_num_segments()} segments; use --format binary_folder or zarr")
        targets = [target]
        problem = spikeglx_meta_problem(recording)
        meta_target = target.with_suffix(".meta")
        if problem is None and target.suffix.lower() != ".bin":
            problem = f"SpikeGLX readers pair a .meta with a .bin file; name the output {target.with_suffix('.bin').name}"
        if problem is None:
            check_output_path(meta_target, overwrite=overwrite, inputs=inputs)
            targets.append(meta_target)
        elif recording.get_annotation(SPIKEGLX_META_ANNOTATION) is not None:
            note = f"no .meta written beside {target.name}: {problem}"
        with atomic_outputs(*targets) as temporaries:
            _write_plain_binary(recording, temporaries[0], **job_kwargs)
            if len(targets) == 2:
                temporaries[1].write_text(_spikeglx_meta_text(recording, temporaries[0]), encoding="utf-8")
        return {"paths": targets, "note": note}

    if format == "binary_folder":
        with atomic_outputs(target) as (temporary,):
            recording.save(format="binary", folder=temporary, **job_kwargs)
        return {"paths": [target], "note": None}

    # zarr: SpikeInterface writes to a name ending in .zarr
    with atomic_outputs(target, suffixes=[".zarr"]) as (temporary,):
        recording.save(format="zarr", folder=temporary, **job_kwargs)
    return {"paths": [target], "note": None}
