"""Recovery of zakotfs HDF5 sample files that were cut short or never closed.

A file whose writer was killed, whose disk filled, or whose copy broke off may no longer
open with HDF5. :class:`streaming.files.IQReader` then asks :func:`probe_damaged`, in a
child process (HDF5 may abort on such a file), what survives:
- the root attributes that can be read;
- the intact leading chunks of ``/iq``, stored wholly inside the real file size;
- the intact rows of ``/truth/bits``;
- the ``/truth/channel`` records.

:class:`RepairedView` presents the file to h5py at its recorded size, zero-filled past
the real end. For an unclosed file it also carries a superblock with the "open for write"
flags cleared and its lookup3 checksum recomputed, as ``h5clear -s`` would write it.
"""
from __future__ import annotations

import io
import json
import os
import struct
import sys
from pathlib import Path

import h5py
import numpy as np

__all__ = ["HDF5_SIGNATURE", "lookup3", "read_superblock", "RepairedView", "intact_chunks",
           "probe_damaged", "probe_main"]


HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"


def lookup3(data: bytes, initval: int = 0) -> int:
    """Bob Jenkins' lookup3 ``hashlittle``, HDF5's metadata checksum (H5_checksumlookup3)."""
    mask = 0xFFFFFFFF

    def rot(x: int, k: int) -> int:
        return ((x << k) | (x >> (32 - k))) & mask

    length = len(data)
    a = b = c = (0xDEADBEEF + length + initval) & mask
    if length == 0:
        return c
    padded = data + bytes(-length % 12)
    words = struct.unpack(f"<{len(padded) // 4}I", padded)
    blocks = (length - 1) // 12                          # all but the last (1..12 byte) block
    for i in range(blocks):
        a = (a + words[3 * i]) & mask
        b = (b + words[3 * i + 1]) & mask
        c = (c + words[3 * i + 2]) & mask
        a = (a - c) & mask; a ^= rot(c, 4); c = (c + b) & mask        # noqa: E702 (mix)
        b = (b - a) & mask; b ^= rot(a, 6); a = (a + c) & mask        # noqa: E702
        c = (c - b) & mask; c ^= rot(b, 8); b = (b + a) & mask        # noqa: E702
        a = (a - c) & mask; a ^= rot(c, 16); c = (c + b) & mask       # noqa: E702
        b = (b - a) & mask; b ^= rot(a, 19); a = (a + c) & mask       # noqa: E702
        c = (c - b) & mask; c ^= rot(b, 4); b = (b + a) & mask        # noqa: E702
    a = (a + words[3 * blocks]) & mask
    b = (b + words[3 * blocks + 1]) & mask
    c = (c + words[3 * blocks + 2]) & mask
    c ^= b; c = (c - rot(b, 14)) & mask                                # noqa: E702 (final)
    a ^= c; a = (a - rot(c, 11)) & mask                                # noqa: E702
    b ^= a; b = (b - rot(a, 25)) & mask                                # noqa: E702
    c ^= b; c = (c - rot(b, 16)) & mask                                # noqa: E702
    a ^= c; a = (a - rot(c, 4)) & mask                                 # noqa: E702
    b ^= a; b = (b - rot(a, 14)) & mask                                # noqa: E702
    c ^= b; c = (c - rot(b, 24)) & mask                                # noqa: E702
    return c


def read_superblock(path: Path) -> tuple[int, bytes, int] | None:
    """(offset, superblock with the write-access flags cleared, stored end of file) of a
    version 2/3 HDF5 superblock, or None for older versions.

    A writer killed before ``close`` leaves the "open for write" consistency flags set and
    HDF5 then refuses to open the file; a read-only view with them cleared (checksum
    recomputed) lets what was flushed be read, as ``h5clear -s`` would on a copy.
    """
    with open(path, "rb") as fh:
        size = os.fstat(fh.fileno()).st_size
        base = 0
        while base + 12 <= size:                        # at 0, 512, 1024, 2048, ...
            fh.seek(base)
            head = fh.read(12)
            if head[:8] == HDF5_SIGNATURE:
                break
            base = 512 if base == 0 else 2 * base
        else:
            return None
        version, offset_size = head[8], head[9]
        if version not in (2, 3) or offset_size not in (4, 8):
            return None
        fh.seek(base)
        block = bytearray(fh.read(12 + 4 * offset_size + 4))
    if len(block) < 12 + 4 * offset_size + 4 or \
            lookup3(bytes(block[:-4])) != int.from_bytes(block[-4:], "little"):
        return None
    eof = int.from_bytes(block[12 + 2 * offset_size:12 + 3 * offset_size], "little")
    block[11] = 0
    block[-4:] = lookup3(bytes(block[:-4])).to_bytes(4, "little")
    return base, bytes(block), eof


class RepairedView(io.RawIOBase):
    """Read-only view of a damaged file: zeros past its real end up to ``size`` (a truncated
    file whose superblock records a larger end) and ``patch`` bytes laid over it."""

    def __init__(self, path: Path, size: int, patch: tuple[int, bytes] | None = None):
        super().__init__()
        self._file = open(path, "rb")
        self.real_size = os.fstat(self._file.fileno()).st_size
        self._size = max(size, self.real_size)
        self._patch = patch
        self._pos = 0

    def readable(self) -> bool:
        return True

    def seekable(self) -> bool:
        return True

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        base = {io.SEEK_SET: 0, io.SEEK_CUR: self._pos, io.SEEK_END: self._size}[whence]
        self._pos = base + offset
        return self._pos

    def tell(self) -> int:
        return self._pos

    def readinto(self, buffer) -> int:
        view = memoryview(buffer).cast("B")
        start = self._pos
        n = max(0, min(len(view), self._size - start))
        got = 0
        if start < self.real_size:
            self._file.seek(start)
            got = self._file.readinto(view[:min(n, self.real_size - start)]) or 0
        view[got:n] = bytes(n - got)
        if self._patch is not None:
            at, data = self._patch
            lo, hi = max(start, at), min(start + n, at + len(data))
            if lo < hi:
                view[lo - start:hi - start] = data[lo - at:hi - at]
        self._pos += n
        return n

    def close(self) -> None:
        self._file.close()
        super().close()


def intact_chunks(dset: h5py.Dataset, real_size: int) -> tuple[list, str | None]:
    """Leading chunks of ``dset`` (along axis 0, in order, no gap) stored wholly inside the
    first ``real_size`` bytes, and a note if the chunk index itself is damaged."""
    stored, note = [], None
    try:                                               # one pass over the chunk index
        dset.id.chunk_iter(stored.append)
    except (OSError, RuntimeError, ValueError) as exc:
        note = f"chunk index of {dset.name} damaged ({exc})"
    step, intact, out = dset.chunks[0], 0, []
    for info in sorted(stored, key=lambda c: c.chunk_offset[0]):
        if info.chunk_offset[0] != intact or info.byte_offset + info.size > real_size:
            break
        out.append(info)
        intact += step
    return out, note


def probe_damaged(path: str, size: int, patch: tuple[int, bytes] | None, workdir: str) -> dict:
    """What survives of a damaged zakotfs HDF5 file (run in a child process).

    Returns the root attributes that can be read, the intact leading chunks of ``/iq`` as
    ``[byte_offset, n_samples]`` in sample order (the first and last checked against h5py's
    decoding), the readable ``/truth/channel`` records, and saves the intact leading rows of
    ``/truth/bits`` to ``workdir/bits.npy``.
    """
    out: dict = {"attrs": {}, "chunks": [], "channel": None, "bits_rows": 0, "notes": []}
    raw = RepairedView(Path(path), size, patch)
    try:
        with h5py.File(raw, "r") as f:
            for key in ("zakotfs_config", "sample_rate", "format_version"):
                try:
                    value = f.attrs[key]
                    out["attrs"][key] = value.item() if isinstance(value, np.generic) else value
                except (KeyError, OSError, RuntimeError):
                    pass
            iq = f["iq"]
            if iq.ndim != 1 or iq.dtype != np.complex64 or iq.chunks is None:
                out["notes"].append(f"/iq is {iq.dtype} {iq.shape}, not 1-D chunked complex64")
                return out
            chunks, note = intact_chunks(iq, raw.real_size)
            out["notes"] += [note] if note else []
            total, intact = int(iq.shape[0]), 0
            for info in chunks:
                count = min(iq.chunks[0], total - intact)
                if count <= 0 or info.size != 8 * iq.chunks[0]:
                    break
                out["chunks"].append([int(info.byte_offset), int(count)])
                intact += count
            ends = [(0, *out["chunks"][0]), (intact - out["chunks"][-1][1], *out["chunks"][-1])
                    ] if out["chunks"] else []
            for first, byte_offset, count in ends:      # stored as plain little-endian complex64?
                raw.seek(byte_offset)
                if not np.array_equal(np.frombuffer(raw.read(8 * count), "<c8"),
                                      iq[first:first + count], equal_nan=True):
                    out["chunks"] = []
                    out["notes"].append("/iq chunks are not stored as plain complex64")
                    break
            if "truth/bits" in f:
                bits = f["truth/bits"]
                chunks, note = intact_chunks(bits, raw.real_size)
                rows = min(len(chunks) * bits.chunks[0], bits.shape[0])
                if rows:
                    np.save(Path(workdir) / "bits.npy", bits[:rows])
                out["bits_rows"] = rows
                if rows < bits.shape[0]:
                    out["notes"].append(f"/truth/bits: {rows} of {bits.shape[0]} rows intact")
            if "truth/channel" in f:
                try:
                    out["channel"] = [r.decode("utf-8") if isinstance(r, bytes) else r
                                      for r in f["truth/channel"][()]]
                except (OSError, RuntimeError, UnicodeDecodeError) as exc:
                    out["notes"].append(f"/truth/channel unreadable ({exc})")
    except (OSError, RuntimeError, KeyError, ValueError) as exc:
        out["notes"].append(str(exc))
    finally:
        raw.close()
    return out


def probe_main() -> None:
    """Child-process entry of :func:`probe_damaged`: argv path, size, patch offset and hex
    (or -1 and ""), work directory; JSON to stdout."""
    at, data = int(sys.argv[3]), bytes.fromhex(sys.argv[4])
    print(json.dumps(probe_damaged(sys.argv[1], int(sys.argv[2]),
                                    (at, data) if at >= 0 else None, sys.argv[5])))
