"""gr-zeromq ``pass_tags`` headers: the absolute stream offset of a message's first sample
and its stream tags (PMT-serialised, :mod:`streaming.pmt`), host-endian, a big-endian header
recognised by its magic."""
from __future__ import annotations

import struct
from dataclasses import dataclass
from typing import Any, Iterable

from ..pmt import PmtError, PmtReader, pmt_serialize

__all__ = ["Tag", "encode_tag_header", "decode_tag_header", "looks_like_tag_header", "TAG_HEADER_MAGIC",
           "TAG_HEADER_VERSION"]

TAG_HEADER_MAGIC = 0x5FF0
TAG_HEADER_VERSION = 1
_HEADER_LE = struct.Struct("<HBQQ")
_HEADER_BE = struct.Struct(">HBQQ")
_MAGIC_LE = struct.pack("<H", TAG_HEADER_MAGIC)
_MAGIC_BE = struct.pack(">H", TAG_HEADER_MAGIC)


@dataclass(frozen=True)
class Tag:
    """A GNU Radio stream tag. ``offset`` is absolute (stream index of the tagged sample)."""

    offset: int
    key: Any
    value: Any
    srcid: Any = False


def looks_like_tag_header(buf) -> bool:
    """Whether the bytes ``buf`` start with a pass_tags header's magic (either byte order)
    and version."""
    return len(buf) >= 3 and buf[2] == TAG_HEADER_VERSION and buf[:2] in (_MAGIC_LE, _MAGIC_BE)


def encode_tag_header(offset: int, tags: Iterable[Tag] = ()) -> bytes:
    """The gr-zeromq pass_tags header (little-endian) for a message starting at ``offset``."""
    tags = list(tags)
    out = bytearray(_HEADER_LE.pack(TAG_HEADER_MAGIC, TAG_HEADER_VERSION, int(offset), len(tags)))
    for tag in tags:
        out += struct.pack("<Q", int(tag.offset))
        for part in (tag.key, tag.value, tag.srcid):
            out += pmt_serialize(part)
    return bytes(out)


def decode_tag_header(buf) -> tuple[int, tuple[Tag, ...], int, str]:
    """Parse a pass_tags header at the start of ``buf``.

    Returns
    -------
    offset : int
        Absolute stream index of the first sample of the message.
    tags : tuple of Tag
    header_len : int
        Bytes the header occupies; the samples follow.
    byteorder : str
        ``"<"`` or ``">"``, the host order of the sender (read from the magic).

    Raises :class:`PmtError` (a ValueError) on a bad magic, version or truncated header.
    """
    view = memoryview(buf).cast("B")
    if len(view) < _HEADER_LE.size:
        raise PmtError(f"message of {len(view)} bytes is shorter than a pass_tags header "
                       f"({_HEADER_LE.size} bytes)")
    if view[:2] == _MAGIC_LE:
        order, header, u64 = "<", _HEADER_LE, struct.Struct("<Q")
    elif view[:2] == _MAGIC_BE:
        order, header, u64 = ">", _HEADER_BE, struct.Struct(">Q")
    else:
        raise PmtError(f"bad pass_tags magic {bytes(view[:2]).hex()}")
    _, version, offset, ntags = header.unpack_from(view)
    if version != TAG_HEADER_VERSION:
        raise PmtError(f"pass_tags header version {version}, expected {TAG_HEADER_VERSION}")
    reader = PmtReader(view, header.size)
    if ntags * (u64.size + 3) > len(view) - reader.pos:
        raise PmtError(f"truncated: {ntags} tags announced in {len(view) - reader.pos} bytes")
    tags = []
    for _ in range(ntags):
        (tag_offset,) = u64.unpack(reader.take(u64.size))
        key, value, srcid = reader.read(), reader.read(), reader.read()
        tags.append(Tag(tag_offset, key, value, srcid))
    return offset, tuple(tags), reader.pos, order
