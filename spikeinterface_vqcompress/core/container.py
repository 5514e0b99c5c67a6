"""The on-disk (and in-memory) container of a compressed recording.

Layout, all integers little-endian (format version 2.0)::

    offset  size  field
    0       8     magic  b"\\x89VQC\\r\\n\\x1a\\n"
    8       2     format version, major
    10      2     format version, minor
    12      4     header length H in bytes
    16      H     header: UTF-8 JSON (see below), raw-deflate compressed with the preset dictionary
                  ``HEADER_DICTIONARY`` (version 2.0; 1.0: the JSON itself)
    16+H    4     CRC32 of bytes 8 .. 16+H (versions, length and header)
    20+H    ...   chunk payloads, back to back, each exactly as the codec returned it
    I       48*N  chunk index, one record per chunk, ``<IIQIQQII``:
                  segment index, chunk index within the segment, first frame, number of frames,
                  payload offset (from the file start), payload length, payload CRC32, reserved (0)
    end-32  32    footer ``<QQII8s``: index offset I, number of chunks N, CRC32 of the index,
                  reserved (0), end magic b"VQCEND\\x00\\x00"

The JSON header holds everything needed to decode besides the payloads: ``codec`` (the codec's
config, ``{"id": ..., params}``), ``model_sha256`` (or null), ``sampling_frequency``,
``num_channels``, ``channel_ids``, ``dtype``, ``gains_to_uV``, ``offsets_to_uV``, ``probe``
(probeinterface dict or null), ``segments`` (list of ``{"num_samples": n}``), ``chunk_num_samples``,
``adc_bits`` (or null), ``package_version`` and free ``annotations``.

Every byte of the container counts in the compression ratio: ``nbytes`` is the whole file. That is
why version 2.0 deflates the header: on a 5-s single-channel Neuralink N1 file the JSON (564 bytes)
was 1 % of the file; deflated against the dictionary of common keys it takes 86. Readers read 1.x
and 2.x; the dictionary is part of the format and never changes.
Readers check the magic, the version, the CRCs and every size against the file before allocating,
so damaged or forged bytes raise :class:`~spikeinterface_vqcompress.core.errors.CorruptDataError`.

This module must not import spikeinterface.
"""

from __future__ import annotations

import io
import json
import os
import re
import socket
import struct
import tempfile
import zlib
from collections import OrderedDict
from pathlib import Path

import numpy as np

from spikeinterface_vqcompress.core.errors import ContainerVersionError, CorruptDataError, ModelMismatchError
from spikeinterface_vqcompress.core.registry import get_codec
from spikeinterface_vqcompress.core.threads import prepare_worker

MAGIC = b"\x89VQC\r\n\x1a\n"
END_MAGIC = b"VQCEND\x00\x00"
FORMAT_VERSION = (2, 0)
READABLE_MAJOR_VERSIONS = (1, 2)
FILE_EXTENSION = ".vqc"

_PREAMBLE = struct.Struct("<8sHHI")
_CRC = struct.Struct("<I")
_INDEX_RECORD = struct.Struct("<IIQIQQII")
_FOOTER = struct.Struct("<QQII8s")

MAX_HEADER_NBYTES = 64 * 1024 * 1024
#: Preset deflate dictionary of the 2.0 header (frozen: every 2.0 file needs these exact bytes).
HEADER_DICTIONARY = (
    b'"contact_plane_axes": [[[1.0, 0.0], [0.0, 1.0]], [[1.0, 0.0], [0.0, 1.0]], "contact_positions": '
    b'[[0.0, 0.0], "contact_shape_params": [{"radius": 5.0}, {"radius": 6.0}], "contact_shapes": ["cir'
    b'cle", "square", "rect"], "device_channel_indices": [0, 1, 2, 3], "ndim": 2, "planar_contour": nu'
    b'll, "shank_ids": ["", ""], "si_units": "um"}], "specification": "probeinterface", "version": "0.'
    b'2.2"}, "probe_ids": ["0"], "probes": [{"annotations": {"model_name": "", "manufacturer": ""}, "c'
    b'ontact_annotations": {}, "contact_ids": ["0", "1", "2", "3"], "vqcompress_groundtruth": {"mearec'
    b'_seeds": , "templates_source": "neuron"}, {"id": "flac"}, {"id": "wavpack", "bps": }, {"id": "zs'
    b'td", "level": }, {"id": "spike-cae", "model": {"id": "vqcae-hybrid"}, {"id": "broadband-rvq", "n'
    b'um_stages": }, {"id": "bit-truncation", "num_bits": "gains_to_uV": [0.195, 0.195], "offsets_to_u'
    b'V": [0.0, 0.0], "channel_ids": ["0", "1", "2", "3"], {"adc_bits": null, "annotations": {"is_filt'
    b'ered": false}, "channel_ids": [0], "chunk_num_samples": , "codec": {"id": "broadband", "lpc_orde'
    b'r": 32, "max_error": 0, "stages": null}, "dtype": "int16", "gains_to_uV": null, "lossless": true'
    b', "model_sha256": null, "num_channels": 1, "offsets_to_uV": null, "package": "spikeinterface-vqc'
    b'ompress", "package_version": "0.1.0", "probe": null, "sampling_frequency": , "segments": [{"num_'
    b'samples": , "t_start": 0.0}], "source_fingerprint": "'
)
MAX_CHUNK_DECODED_NBYTES = 2 * 1024**3


def _crc32(*buffers) -> int:
    crc = 0
    for buffer in buffers:
        crc = zlib.crc32(buffer, crc)
    return crc & 0xFFFFFFFF


def encode_header(header: dict) -> bytes:
    """The header bytes of a container of the current format: deflated sorted-keys JSON."""
    text = json.dumps(header, sort_keys=True).encode("utf-8")
    if len(text) > MAX_HEADER_NBYTES:
        raise ValueError(f"container header of {len(text)} bytes exceeds {MAX_HEADER_NBYTES}")
    compressor = zlib.compressobj(9, zlib.DEFLATED, -15, 9, zlib.Z_DEFAULT_STRATEGY, HEADER_DICTIONARY)
    return compressor.compress(text) + compressor.flush()


def decode_header(header_bytes: bytes, major_version: int, name: str = "container") -> dict:
    """The header dict from its bytes in a container of format ``major_version`` (1 or 2)."""
    if major_version >= 2:
        inflater = zlib.decompressobj(-15, HEADER_DICTIONARY)
        try:
            text = inflater.decompress(header_bytes, MAX_HEADER_NBYTES)
        except zlib.error as error:
            raise CorruptDataError(f"{name}: header does not inflate ({error}); the file is damaged") from error
        if inflater.unconsumed_tail or not inflater.eof or inflater.unused_data:
            raise CorruptDataError(f"{name}: header is truncated, too large or followed by stray bytes; the file is damaged")
    else:
        text = header_bytes
    try:
        header = json.loads(text.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise CorruptDataError(f"{name}: header is not valid JSON ({error})") from error
    if not isinstance(header, dict):
        raise CorruptDataError(f"{name}: header is not a JSON object")
    return header


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# -- temporary files of atomic writes -------------------------------------------------------------
# An output is written under a hidden temporary name beside its target and renamed onto it only when
# complete. The name says which process wrote it, ``.{target name}.{random}.{pid}@{host}.tmp`` (plus
# the target's suffix for folders whose writer insists on one, e.g. ``.zarr``), so that the next
# write to the same target can remove the temporaries of writers that died (SIGKILL, power loss)
# without touching those of a writer still running.


def _host_name() -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "_", socket.gethostname()) or "host"


def temporary_name_parts(target, suffix: str = "") -> tuple[str, str]:
    """``(prefix, suffix)`` of the hidden temporary names of ``target`` written by this process.

    A name is ``prefix + random + suffix``, e.g. ``tempfile.mkstemp(prefix=..., suffix=...)``:
    ``.{name}.`` and ``.{pid}@{host}.tmp{suffix}``.
    """
    target = Path(target)
    return f".{target.name}.", f".{os.getpid()}@{_host_name()}.tmp{suffix}"


def _process_is_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # alive, owned by another user
        return True
    except OSError:
        return True
    return True


def stale_temporaries(target) -> list[Path]:
    """The temporaries of ``target`` left by writers on this host that are no longer running.

    Only names written by :func:`temporary_name_parts` count; a temporary of a running process (or
    one written on another host, e.g. on a shared file system) is never listed.
    """
    target = Path(target)
    folder = target.parent
    if not folder.is_dir():
        return []
    pattern = re.compile(rf"^\.{re.escape(target.name)}\.[A-Za-z0-9_]+\.(?P<pid>\d+)@(?P<host>.+)\.tmp(\.[A-Za-z0-9]+)?$")
    host = _host_name()
    stale = []
    for entry in folder.iterdir():
        match = pattern.match(entry.name)
        if match is None or match["host"] != host:
            continue
        pid = int(match["pid"])
        if pid != os.getpid() and not _process_is_alive(pid):
            stale.append(entry)
    return sorted(stale)


def remove_path(path) -> None:
    """Remove a file, link or folder tree if it exists (no error if it is already gone)."""
    import shutil

    path = Path(path)
    try:
        if path.is_dir() and not path.is_symlink():
            shutil.rmtree(path, ignore_errors=True)
        else:
            path.unlink(missing_ok=True)
    except OSError:
        pass


def sweep_stale_temporaries(target) -> list[Path]:
    """Remove the stale temporaries of ``target`` (see :func:`stale_temporaries`); returns them."""
    removed = stale_temporaries(target)
    for path in removed:
        remove_path(path)
    return removed


class ContainerWriter:
    """Write a container chunk by chunk, atomically.

    With a ``file_path`` the bytes go to a temporary file beside it, which is flushed, synced and
    renamed onto ``file_path`` only when :meth:`close` completes; on error the temporary file is
    removed, and any previous file at ``file_path`` is untouched. A process that dies without
    cleaning up (SIGKILL) leaves ``.{name}.{random}.{pid}@{host}.tmp``, which the next writer of the
    same ``file_path`` removes (:func:`sweep_stale_temporaries`). Without a ``file_path`` the
    container is built in memory and :meth:`close` returns its bytes.

    Parameters
    ----------
    header : dict
        The JSON header (see the module docstring).
    file_path : str | Path | None, default: None
        Where to write; None keeps the container in memory.
    """

    def __init__(self, header: dict, file_path=None):
        self.header = header
        self.file_path = None if file_path is None else Path(file_path)
        self._index = []
        self._temporary_path = None
        if self.file_path is None:
            self._stream = io.BytesIO()
        else:
            if self.file_path.is_dir():
                raise IsADirectoryError(
                    f"{self.file_path} is a directory; give the container a file path (e.g. {self.file_path / 'recording.vqc'})"
                )
            self.file_path.parent.mkdir(parents=True, exist_ok=True)
            sweep_stale_temporaries(self.file_path)
            prefix, suffix = temporary_name_parts(self.file_path)
            handle, temporary = tempfile.mkstemp(prefix=prefix, suffix=suffix, dir=self.file_path.parent)
            self._temporary_path = Path(temporary)
            os.fchmod(handle, 0o666 & ~_current_umask())  # mkstemp creates 0600: give the file the usual permissions
            self._stream = os.fdopen(handle, "wb")
        header_bytes = encode_header(header)
        preamble = _PREAMBLE.pack(MAGIC, *FORMAT_VERSION, len(header_bytes))
        self._stream.write(preamble)
        self._stream.write(header_bytes)
        self._stream.write(_CRC.pack(_crc32(preamble[8:], header_bytes)))
        self._position = len(preamble) + len(header_bytes) + _CRC.size
        self._closed = False

    def write_chunk(self, segment_index: int, chunk_index: int, start_frame: int, num_frames: int, payload: bytes):
        """Append one encoded chunk; chunks must come in segment then time order."""
        payload = bytes(payload)
        self._stream.write(payload)
        self._index.append(
            (segment_index, chunk_index, start_frame, num_frames, self._position, len(payload), _crc32(payload), 0)
        )
        self._position += len(payload)

    def close(self):
        """Write the index and footer; publish the file (or return the bytes in memory)."""
        index_bytes = b"".join(_INDEX_RECORD.pack(*record) for record in self._index)
        index_offset = self._position
        self._stream.write(index_bytes)
        self._stream.write(_FOOTER.pack(index_offset, len(self._index), _crc32(index_bytes), 0, END_MAGIC))
        self._closed = True
        if self.file_path is None:
            return self._stream.getvalue()
        try:
            self._stream.flush()
            os.fsync(self._stream.fileno())
            self._stream.close()
            os.replace(self._temporary_path, self.file_path)
        except BaseException:
            self._stream.close()
            self._temporary_path.unlink(missing_ok=True)  # never leave a complete file under a hidden name
            raise
        return self.file_path

    def abort(self):
        """Drop what was written; a previous file at ``file_path`` stays as it was."""
        if self._closed:
            return
        self._closed = True
        self._stream.close()
        if self._temporary_path is not None and self._temporary_path.exists():
            self._temporary_path.unlink()

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, traceback):
        if exc_type is not None:
            self.abort()
        return False


class ContainerReader:
    """Random access to the chunks of a container in a file or in memory.

    Parameters
    ----------
    source : str | Path | bytes
        A file path or the container's bytes.
    cache_num_chunks : int, default: 2
        Decoded chunks kept in memory (consecutive ``get_traces`` calls often share a chunk).
    """

    def __init__(self, source, cache_num_chunks: int = 2):
        if isinstance(source, (bytes, bytearray, memoryview)):
            self.file_path = None
            self._buffer = bytes(source)
            self.nbytes = len(self._buffer)
        else:
            self.file_path = Path(source)
            if not self.file_path.is_file():
                raise FileNotFoundError(f"compressed recording not found: {self.file_path}")
            self._buffer = None
            self.nbytes = self.file_path.stat().st_size
        self._read_header_and_index()
        self.codec = get_codec(self.header["codec"])
        expected_sha256 = self.header.get("model_sha256")
        if expected_sha256 and self.codec.model_sha256 != expected_sha256:
            raise ModelMismatchError(
                f"{self._name} was encoded with a model of sha256 {expected_sha256}, but codec "
                f"'{self.codec.codec_id}' now loads a model of sha256 {self.codec.model_sha256}. Decoding with "
                "another model would give wrong traces: install the package version that wrote the file or pass "
                "the original model file in the codec config."
            )
        self._cache = OrderedDict()
        self._cache_num_chunks = cache_num_chunks

    # -- raw access ------------------------------------------------------------------------------
    def _read(self, offset: int, nbytes: int) -> bytes:
        if offset < 0 or nbytes < 0 or offset + nbytes > self.nbytes:
            raise CorruptDataError(
                f"{self._name}: a read of {nbytes} bytes at {offset} runs past the end ({self.nbytes} bytes); "
                "the file is truncated or damaged"
            )
        if self._buffer is not None:
            return self._buffer[offset : offset + nbytes]
        with open(self.file_path, "rb") as handle:
            handle.seek(offset)
            data = handle.read(nbytes)
        if len(data) != nbytes:
            raise CorruptDataError(f"{self._name}: short read; the file changed or is truncated")
        return data

    @property
    def _name(self):
        return str(self.file_path) if self.file_path is not None else "in-memory container"

    def _read_header_and_index(self):
        minimum = _PREAMBLE.size + _CRC.size + _FOOTER.size
        if self.nbytes < minimum:
            raise CorruptDataError(
                f"{self._name}: {self.nbytes} bytes is too short to be a vqcompress container (truncated file?)"
            )
        magic, major, minor, header_nbytes = _PREAMBLE.unpack(self._read(0, _PREAMBLE.size))
        if magic != MAGIC:
            raise CorruptDataError(f"{self._name}: not a vqcompress container (bad magic bytes)")
        if major > max(READABLE_MAJOR_VERSIONS):
            raise ContainerVersionError(
                f"{self._name}: container format {major}.{minor} is newer than this package reads "
                f"({', '.join(f'{v}.x' for v in READABLE_MAJOR_VERSIONS)}); upgrade spikeinterface-vqcompress"
            )
        if major not in READABLE_MAJOR_VERSIONS:
            raise CorruptDataError(f"{self._name}: container format {major}.{minor} never existed; the file is damaged")
        if header_nbytes > min(MAX_HEADER_NBYTES, self.nbytes - minimum):
            raise CorruptDataError(f"{self._name}: header length {header_nbytes} is impossible for this file")
        header_bytes = self._read(_PREAMBLE.size, header_nbytes)
        (header_crc,) = _CRC.unpack(self._read(_PREAMBLE.size + header_nbytes, _CRC.size))
        preamble_tail = struct.pack("<HHI", major, minor, header_nbytes)
        if _crc32(preamble_tail, header_bytes) != header_crc:
            raise CorruptDataError(f"{self._name}: header CRC mismatch; the file is damaged")
        self.header = decode_header(header_bytes, major, self._name)
        self.format_version = (major, minor)
        self.data_offset = _PREAMBLE.size + header_nbytes + _CRC.size

        index_offset, num_chunks, index_crc, reserved, end_magic = _FOOTER.unpack(
            self._read(self.nbytes - _FOOTER.size, _FOOTER.size)
        )
        if end_magic != END_MAGIC or reserved != 0:
            raise CorruptDataError(
                f"{self._name}: end marker missing; the file is truncated or was not completely written"
            )
        index_nbytes = num_chunks * _INDEX_RECORD.size
        if index_offset < self.data_offset or index_offset + index_nbytes != self.nbytes - _FOOTER.size:
            raise CorruptDataError(f"{self._name}: chunk index position is inconsistent with the file size")
        index_bytes = self._read(index_offset, index_nbytes)
        if _crc32(index_bytes) != index_crc:
            raise CorruptDataError(f"{self._name}: chunk index CRC mismatch; the file is damaged")
        records = [_INDEX_RECORD.unpack_from(index_bytes, i * _INDEX_RECORD.size) for i in range(num_chunks)]
        self._validate(records, index_offset)

    def _validate(self, records, index_offset):
        header = self.header
        try:
            self.num_channels = int(header["num_channels"])
            self.dtype = np.dtype(header["dtype"])
            self.sampling_frequency = float(header["sampling_frequency"])
            segment_lengths = [int(segment["num_samples"]) for segment in header["segments"]]
            header["codec"]["id"]
        except (KeyError, TypeError, ValueError) as error:
            raise CorruptDataError(f"{self._name}: header lacks a required field ({error})") from error
        if self.num_channels <= 0 or len(header.get("channel_ids", [])) != self.num_channels:
            raise CorruptDataError(f"{self._name}: header channel count and channel ids disagree")
        self.segment_lengths = segment_lengths
        self.chunks = [[] for _ in segment_lengths]  # per segment: (start, stop, offset, nbytes, crc)
        expected_offset = self.data_offset
        for segment_index, chunk_index, start, num_frames, offset, nbytes, crc, _ in records:
            if segment_index >= len(segment_lengths):
                raise CorruptDataError(f"{self._name}: chunk refers to segment {segment_index} that does not exist")
            chunks = self.chunks[segment_index]
            previous_stop = chunks[-1][1] if chunks else 0
            if chunk_index != len(chunks) or start != previous_stop or num_frames == 0:
                raise CorruptDataError(f"{self._name}: chunk index is out of order or has gaps")
            if offset != expected_offset or offset + nbytes > index_offset:
                raise CorruptDataError(f"{self._name}: chunk payload position is inconsistent")
            if num_frames * self.num_channels * self.dtype.itemsize > MAX_CHUNK_DECODED_NBYTES:
                raise CorruptDataError(f"{self._name}: chunk of {num_frames} frames exceeds the decoding limit")
            chunks.append((start, start + num_frames, offset, nbytes, crc))
            expected_offset = offset + nbytes
        for segment_index, (chunks, length) in enumerate(zip(self.chunks, segment_lengths)):
            covered = chunks[-1][1] if chunks else 0
            if covered != length:
                raise CorruptDataError(
                    f"{self._name}: segment {segment_index} has {length} samples but its chunks cover {covered}; "
                    "the file is incomplete"
                )
        self._chunk_starts = [np.array([chunk[0] for chunk in chunks], dtype=np.int64) for chunks in self.chunks]

    # -- decoding --------------------------------------------------------------------------------
    @property
    def num_chunks(self) -> int:
        return sum(len(chunks) for chunks in self.chunks)

    def read_chunk_bytes(self, segment_index: int, chunk_index: int) -> bytes:
        """The payload of one chunk, CRC-checked."""
        start, stop, offset, nbytes, crc = self.chunks[segment_index][chunk_index]
        payload = self._read(offset, nbytes)
        if _crc32(payload) != crc:
            raise CorruptDataError(
                f"{self._name}: CRC mismatch in chunk {chunk_index} of segment {segment_index} "
                f"(frames {start}-{stop}); the compressed data is damaged"
            )
        return payload

    def decode_chunk(self, segment_index: int, chunk_index: int) -> np.ndarray:
        key = (segment_index, chunk_index)
        if key in self._cache:
            self._cache.move_to_end(key)
            return self._cache[key]
        start, stop = self.chunks[segment_index][chunk_index][:2]
        payload = self.read_chunk_bytes(segment_index, chunk_index)
        prepare_worker()  # a forked reader (a sorter's chunk worker): torch on one thread, exit with the parent
        traces = self.codec.decode(payload, stop - start, self.num_channels, self.dtype)
        self._cache[key] = traces
        while len(self._cache) > self._cache_num_chunks:
            self._cache.popitem(last=False)
        return traces

    def get_traces(self, segment_index: int = 0, start_frame: int = 0, end_frame: int | None = None, channel_indices=None):
        """Decode ``[start_frame, end_frame)`` of a segment, reading only the chunks it overlaps."""
        length = self.segment_lengths[segment_index]
        end_frame = length if end_frame is None else min(int(end_frame), length)
        start_frame = max(int(start_frame), 0)
        if channel_indices is None:
            channel_indices = slice(None)
        if end_frame <= start_frame:
            return np.zeros((0, self.num_channels), dtype=self.dtype)[:, channel_indices]
        starts = self._chunk_starts[segment_index]
        first = int(np.searchsorted(starts, start_frame, side="right") - 1)
        last = int(np.searchsorted(starts, end_frame - 1, side="right") - 1)
        pieces = []
        for chunk_index in range(first, last + 1):
            chunk_start, chunk_stop = self.chunks[segment_index][chunk_index][:2]
            traces = self.decode_chunk(segment_index, chunk_index)
            pieces.append(traces[max(start_frame, chunk_start) - chunk_start : min(end_frame, chunk_stop) - chunk_start, channel_indices])
        return pieces[0].copy() if len(pieces) == 1 else np.concatenate(pieces, axis=0)

    def verify(self):
        """Check every chunk's CRC; raises CorruptDataError at the first damaged chunk."""
        for segment_index, chunks in enumerate(self.chunks):
            for chunk_index in range(len(chunks)):
                self.read_chunk_bytes(segment_index, chunk_index)

    def __getstate__(self):
        state = self.__dict__.copy()
        state["_cache"] = OrderedDict()
        return state
