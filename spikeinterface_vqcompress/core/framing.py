"""Framing of multi-part chunk payloads: ``u32 count, u32 length * count, payloads``.

Every codec whose chunk holds several streams (side information, indices, ...) frames them with
:func:`pack_parts` and reads them back with :func:`unpack_parts`, which checks every length against
the buffer and raises :class:`~spikeinterface_vqcompress.core.errors.CorruptDataError` on damage.
"""

from __future__ import annotations

import struct

from spikeinterface_vqcompress.core.errors import CorruptDataError

_U32 = struct.Struct("<I")


def pack_parts(parts: list[bytes]) -> bytes:
    """Frame a list of byte strings as ``u32 count, u32 length * count, payloads``."""
    header = _U32.pack(len(parts)) + b"".join(_U32.pack(len(part)) for part in parts)
    return header + b"".join(parts)


def part_count(data: bytes, codec_id: str) -> int:
    """The number of parts a :func:`pack_parts` frame declares (for formats whose later versions add parts)."""
    if len(data) < 4:
        raise CorruptDataError(f"{codec_id}: chunk of {len(data)} bytes is too short to hold its stream table")
    return _U32.unpack_from(data, 0)[0]


def unpack_parts(data: bytes, expected_count: int, codec_id: str) -> list[bytes]:
    """Inverse of :func:`pack_parts`, with every length checked against the buffer."""
    data = memoryview(data)
    count = part_count(data, codec_id)
    if count != expected_count:
        raise CorruptDataError(f"{codec_id}: chunk holds {count} streams where {expected_count} are expected")
    table_end = 4 + 4 * count
    if len(data) < table_end:
        raise CorruptDataError(f"{codec_id}: chunk stream table is truncated")
    lengths = [_U32.unpack_from(data, 4 + 4 * i)[0] for i in range(count)]
    if table_end + sum(lengths) != len(data):
        raise CorruptDataError(
            f"{codec_id}: stream lengths add up to {table_end + sum(lengths)} bytes but the chunk has {len(data)}"
        )
    parts, position = [], table_end
    for length in lengths:
        parts.append(bytes(data[position : position + length]))
        position += length
    return parts
