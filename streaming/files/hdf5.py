"""zakotfs HDF5 sample files: :class:`IQWriter` and :class:`IQReader`.

Layout (format version 1)
-------------------------
* ``/iq``: complex64 [n_samples] (HDF5 compound {r, i}, as h5py writes complex), chunked
  (``chunk_samples``), resizable; written in append fashion.
* File format HDF5 1.10 (``libver="v110"``, readable by HDF5 >= 1.10): the writer flushes
  every ``flush_interval_s``, and a file cut short (disk full, copy interrupted, writer
  killed) keeps the chunk index of what was flushed, so :class:`IQReader` gives back the
  intact prefix of ``/iq``.
* root attributes: ``sample_rate`` (Hz, float), ``zakotfs_config`` (``FrameConfig.to_json()``),
  ``format_version`` (int).
* ``/truth/bits``: uint8 [frames, bits_per_frame], one row per transmitted frame.
* ``/truth/channel`` (optional): one JSON string per frame (path gains, delays, Dopplers,
  ...); complex values are stored as ``{"re": ..., "im": ...}`` and come back complex.
"""
from __future__ import annotations

import json
import logging
import os
import re
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import h5py
import numpy as np

from zakotfs.config import FrameConfig

from ..hdf5_recovery import read_superblock
from .base import DEFAULT_CHUNK, _as_samples, _check_chunk, _config_from, _SampleFileReader

__all__ = ["FORMAT_VERSION", "IQWriter", "IQReader"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
# HDF5 1.10 file format: its chunk index for an unlimited dimension (extensible array) is
# written in step with the data at each flush, so a cut-short file keeps most of its index.
_LIBVER = ("v110", "v110")


# channel-truth JSON (complex numbers and arrays)
def _truth_default(obj):
    if isinstance(obj, np.ndarray):
        if np.iscomplexobj(obj):
            return {"re": obj.real.tolist(), "im": obj.imag.tolist()}
        return obj.tolist()
    if isinstance(obj, (complex, np.complexfloating)):
        return {"re": float(obj.real), "im": float(obj.imag)}
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def _truth_hook(obj: dict):
    if set(obj) == {"re", "im"}:
        return np.asarray(obj["re"]) + 1j * np.asarray(obj["im"])
    return obj


class IQWriter:
    """Write a zakotfs HDF5 sample file in streaming fashion.

    Parameters
    ----------
    path : str or PathLike
        Created (or truncated).
    config : FrameConfig
        Stored as the ``zakotfs_config`` attribute.
    sample_rate : float or None
        Hz; default ``config.bandwidth``.
    chunk_samples : int
        Chunk length of ``/iq`` (the unit a truncated file is recovered in).
    flush_interval_s : float
        Flush HDF5 metadata at least this often while writing (0: after every write), so
        that a file cut short or a writer killed without ``close`` leaves the samples up to
        the last flush readable.
    truth_compression : str or None
        h5py compression of ``/truth/bits`` ("gzip" level 1 by default: 0/1 bytes shrink ~8x).

    Use as a context manager: ``close`` (also on exceptions, KeyboardInterrupt included)
    flushes everything written.
    """

    def __init__(self, path: str | os.PathLike, config: FrameConfig, *,
                 sample_rate: float | None = None, chunk_samples: int = DEFAULT_CHUNK,
                 flush_interval_s: float = 1.0, truth_compression: str | None = "gzip"):
        if not isinstance(config, FrameConfig):
            raise TypeError(f"config must be a FrameConfig, got {type(config).__name__}")
        rate = config.bandwidth if sample_rate is None else float(sample_rate)
        if not (np.isfinite(rate) and rate > 0):
            raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
        self.path = Path(path)
        self.config = config
        self.flush_interval_s = float(flush_interval_s)
        self._truth_compression = truth_compression
        self._file = h5py.File(self.path, "w", libver=_LIBVER)
        try:
            self._file.attrs["sample_rate"] = rate
            self._file.attrs["zakotfs_config"] = config.to_json()
            self._file.attrs["format_version"] = FORMAT_VERSION
            self._iq = self._file.create_dataset(
                "iq", shape=(0,), maxshape=(None,), dtype=np.complex64,
                chunks=(_check_chunk(chunk_samples, "chunk_samples"),))
        except BaseException:
            self._file.close()
            raise
        self._bits = None
        self._channel = None
        self._last_flush = time.monotonic()

    @property
    def samples_written(self) -> int:
        return int(self._iq.shape[0])

    @property
    def frames_written(self) -> int:
        """Rows of ``/truth/bits``."""
        return 0 if self._bits is None else int(self._bits.shape[0])

    @staticmethod
    def _append(dset: h5py.Dataset, rows: np.ndarray) -> None:
        n0 = dset.shape[0]
        dset.resize((n0 + rows.shape[0],) + dset.shape[1:])
        try:
            dset[n0:] = rows
        except BaseException:          # an interrupted write leaves no half-written rows
            dset.resize((n0,) + dset.shape[1:])
            raise

    def _maybe_flush(self) -> None:
        if time.monotonic() - self._last_flush >= self.flush_interval_s:
            self.flush()

    def write(self, samples) -> None:
        """Append complex [n] samples to ``/iq`` (converted to complex64)."""
        self._check_open()
        data = _as_samples(samples)
        if data.size:
            self._append(self._iq, data)
            self._maybe_flush()

    def write_truth_bits(self, bits) -> None:
        """Append uint8 [F, bits_per_frame] transmitted payload bits to ``/truth/bits``."""
        self._check_open()
        bits = np.atleast_2d(np.asarray(bits))
        bpf = self.config.bits_per_frame
        if bits.ndim != 2 or bits.shape[1] != bpf:
            raise ValueError(f"bits must be [frames, {bpf}] (bits_per_frame), got shape {bits.shape}")
        if self._bits is None:
            self._bits = self._file.create_dataset(
                "truth/bits", shape=(0, bpf), maxshape=(None, bpf), dtype=np.uint8,
                chunks=(1, bpf), compression=self._truth_compression,
                compression_opts=1 if self._truth_compression == "gzip" else None)
        self._append(self._bits, bits.astype(np.uint8, copy=False))
        self._maybe_flush()

    def write_channel_truth(self, frames: list[dict]) -> None:
        """Append one JSON record per frame to ``/truth/channel``.

        frames : list of dict — e.g. ``{"gains": complex [P], "delays_s": float [P],
        "dopplers_hz": float [P]}``; ndarrays, numpy scalars and complex values are allowed.
        """
        self._check_open()
        if isinstance(frames, dict):
            raise TypeError("frames must be a list of dicts (one per frame), got a single dict")
        records = np.array([json.dumps(f, default=_truth_default) for f in frames], dtype=object)
        if self._channel is None:
            self._channel = self._file.create_dataset(
                "truth/channel", shape=(0,), maxshape=(None,),
                dtype=h5py.string_dtype("utf-8"), chunks=(64,))
        if records.size:
            self._append(self._channel, records)
            self._maybe_flush()

    def flush(self) -> None:
        self._check_open()
        self._file.flush()
        self._last_flush = time.monotonic()

    def _check_open(self) -> None:
        if self._file is None:
            raise ValueError(f"{self.path}: the writer is closed")

    def close(self) -> None:
        if self._file is not None:
            try:
                self._file.flush()
            finally:
                self._file.close()
                self._file = None

    def __enter__(self) -> "IQWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


class IQReader(_SampleFileReader):
    """Read a zakotfs HDF5 sample file in chunks.

    Parameters
    ----------
    path : str or PathLike
    config : FrameConfig or None
        Overrides (or stands in for a missing) ``zakotfs_config`` attribute.
    chunk_samples : int
        Default length of :meth:`read`.
    recover : bool
        A truncated file (disk full, copy cut short, writer killed): True (default) reads
        what survived, logs a warning naming the file and sets :attr:`damage`; reads then
        return the intact prefix of ``/iq``; ``truth_bits`` keeps its intact leading rows.
        False raises OSError instead.
    probe_timeout_s : float
        A truncated file is examined in a child process (HDF5 may crash or loop on damaged
        metadata); this bounds it.

    Attributes
    ----------
    config : FrameConfig
    sample_rate : float
    n_samples : int — readable samples (the intact prefix of a damaged file)
    damage : str or None — what is wrong with the file, None when it is sound

    Raises FileNotFoundError, OSError (not HDF5, unreadable, truncated with
    ``recover=False`` or with nothing recoverable) or ValueError (not a zakotfs file, no
    configuration); every message names the file.
    """

    def __init__(self, path: str | os.PathLike, *, config: FrameConfig | None = None,
                 chunk_samples: int = DEFAULT_CHUNK, recover: bool = True,
                 probe_timeout_s: float = 30.0):
        self.path = Path(path)
        self.chunk_samples = _check_chunk(chunk_samples, "chunk_samples")
        if config is not None and not isinstance(config, FrameConfig):
            raise TypeError(f"config must be a FrameConfig or None, got {type(config).__name__}")
        self.damage: str | None = None
        self._file = None          # h5py.File of a sound file
        self._raw = None           # plain file object and intact chunks of a damaged one
        self._chunks: list[tuple[int, int, int]] = []
        self._truth_bits = None    # what a damaged file's /truth kept
        self._channel_records = None
        self._pos = 0
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such file")
        try:
            self._file = h5py.File(self.path, "r")
        except OSError as exc:
            self._open_damaged(str(exc), config, recover, probe_timeout_s)
            return
        try:
            self._read_header(config)
        except (OSError, RuntimeError, KeyError) as exc:       # h5py on damaged metadata
            self.close()
            raise OSError(f"{self.path}: unreadable HDF5 metadata ({exc})") from None
        except BaseException:
            self.close()
            raise

    def _set_config(self, config: FrameConfig | None, stored, sample_rate) -> None:
        if config is not None:
            self.config, self.config_given = config, True
        elif stored is not None:
            self.config = _config_from(stored, str(self.path))
        else:
            raise ValueError(f"{self.path}: no zakotfs_config attribute; pass "
                             f"config=FrameConfig(...) to read it{self._damage_note()}")
        self.sample_rate = float(self.config.bandwidth if sample_rate is None else sample_rate)

    def _read_header(self, config: FrameConfig | None) -> None:
        if "iq" not in self._file:
            raise ValueError(f"{self.path}: no /iq dataset, not a zakotfs sample file")
        iq = self._file["iq"]
        if iq.ndim != 1 or iq.dtype != np.complex64:
            raise ValueError(f"{self.path}: /iq must be 1-D complex64, got {iq.dtype} {iq.shape}")
        attrs = self._file.attrs
        version = int(attrs.get("format_version", 0))
        if version > FORMAT_VERSION:
            raise ValueError(f"{self.path}: format_version {version} is newer than this reader "
                             f"({FORMAT_VERSION})")
        self._set_config(config, attrs.get("zakotfs_config"), attrs.get("sample_rate"))
        self._iq = iq
        self.n_samples = int(iq.shape[0])

    def _open_damaged(self, error: str, config: FrameConfig | None, recover: bool,
                      timeout_s: float) -> None:
        """A truncated file, or one its writer never closed: read what survived."""
        actual = self.path.stat().st_size
        truncated = re.search(r"truncated file: eof = (\d+).*stored_eof = (\d+)", error)
        unclosed = "already open for write" in error
        if not (truncated or unclosed):
            raise OSError(f"{self.path}: cannot open as HDF5 ({error})")
        superblock = read_superblock(self.path)
        stored = int(truncated.group(2)) if truncated else (superblock[2] if superblock else actual)
        if unclosed and superblock is None:
            raise OSError(f"{self.path}: the writer never closed this HDF5 file and its superblock "
                          f"cannot be read; try h5clear -s on a copy ({error})")
        parts = []
        if stored > actual:
            parts.append(f"truncated: {actual} of {stored} bytes")
        if unclosed:
            parts.append("not closed by its writer (killed?)")
        self.damage = "; ".join(parts)
        if not recover:
            raise OSError(f"{self.path}: damaged HDF5 file ({self.damage}); "
                          f"IQReader(..., recover=True) reads the intact part")
        patch = superblock[:2] if unclosed else None
        package_root = str(Path(__file__).resolve().parents[2])
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(
            filter(None, [package_root, os.environ.get("PYTHONPATH")])))
        with tempfile.TemporaryDirectory(prefix="zakotfs-probe-") as workdir:
            try:
                child = subprocess.run(
                    [sys.executable, "-c", "from streaming.hdf5_recovery import probe_main; probe_main()",
                     str(self.path), str(stored), str(patch[0] if patch else -1),
                     patch[1].hex() if patch else "", workdir],
                    capture_output=True, text=True, timeout=timeout_s, env=env)
                probe = json.loads(child.stdout) if child.returncode == 0 else None
            except subprocess.TimeoutExpired:
                probe, child = None, None
            if probe is not None and probe["bits_rows"]:
                self._truth_bits = np.load(Path(workdir) / "bits.npy")
        self._channel_records = None if probe is None else probe["channel"]
        if probe is None:
            why = (f"examining it took over {timeout_s:g} s" if child is None
                   else f"HDF5 failed on it (exit {child.returncode})")
            raise OSError(f"{self.path}: damaged HDF5 file ({self.damage}); {why}, "
                          f"nothing recoverable")
        for note in probe["notes"]:
            self.damage += f"; {note}"
        attrs = probe["attrs"]
        if attrs.get("format_version", 0) > FORMAT_VERSION:
            raise ValueError(f"{self.path}: format_version {attrs['format_version']} is newer "
                             f"than this reader ({FORMAT_VERSION})")
        self._set_config(config, attrs.get("zakotfs_config"), attrs.get("sample_rate"))
        start = 0
        for byte_offset, count in probe["chunks"]:
            self._chunks.append((start, byte_offset, count))
            start += count
        self.n_samples = start
        if self.n_samples == 0:
            raise OSError(f"{self.path}: damaged HDF5 file ({self.damage}), no samples recoverable")
        self.damage += f"; the first {self.n_samples} samples are intact"
        logger.warning("%s: damaged HDF5 file (%s)", self.path, self.damage)
        self._raw = open(self.path, "rb")

    def _damage_note(self) -> str:
        return f" [{self.damage}]" if self.damage else ""

    def read(self, n: int | None = None) -> np.ndarray | None:
        """complex64 [<= n] next samples (default ``chunk_samples``), or None at the end.

        A read error in a damaged region ends the stream: it is logged, noted in
        :attr:`damage`, and what was read before stays valid.
        """
        n = self.chunk_samples if n is None else _check_chunk(n, "n")
        if self.eof:
            return None
        stop = min(self._pos + n, self.n_samples)
        try:
            data = self._iq[self._pos:stop] if self._raw is None else self._read_raw(self._pos, stop)
        except (OSError, RuntimeError) as exc:
            self.damage = (self.damage + "; " if self.damage else "") + \
                f"read error at sample {self._pos} ({exc})"
            logger.warning("%s: %s; the stream ends there", self.path, self.damage)
            self.n_samples = self._pos
            return None
        self._pos = stop
        return data

    def _read_raw(self, start: int, stop: int) -> np.ndarray:
        """Samples [start, stop) of a damaged file from its intact chunks' bytes."""
        out = np.empty(stop - start, np.complex64)
        for first, byte_offset, count in self._chunks:
            lo, hi = max(start, first), min(stop, first + count)
            if lo < hi:
                self._raw.seek(byte_offset + 8 * (lo - first))
                out[lo - start:hi - start] = np.fromfile(self._raw, "<c8", hi - lo)
        return out

    def seek(self, position: int) -> None:
        if not 0 <= position <= self.n_samples:
            raise ValueError(f"position must lie in [0, {self.n_samples}], got {position}")
        self._pos = int(position)

    @property
    def truth_bits(self) -> np.ndarray | None:
        """uint8 [frames, bits_per_frame] from ``/truth/bits`` (of a damaged file: its intact
        leading rows), or None when absent or unreadable."""
        if self._file is None:
            return self._truth_bits
        return self._read_optional("truth/bits")

    @property
    def channel_truth(self) -> list[dict] | None:
        """Per-frame dicts from ``/truth/channel`` (complex values restored), or None."""
        records = self._channel_records if self._file is None else self._read_optional("truth/channel")
        if records is None:
            return None
        return [json.loads(r.decode("utf-8") if isinstance(r, bytes) else r, object_hook=_truth_hook)
                for r in records]

    def _read_optional(self, name: str):
        if self._file is None or name not in self._file:
            return None
        try:
            return self._file[name][()]
        except (OSError, RuntimeError) as exc:
            logger.warning("%s: /%s unreadable (%s)", self.path, name, exc)
            return None

    def stats(self) -> dict:
        return {"samples_read": self._pos, "n_samples": self.n_samples, "damage": self.damage}

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        if self._raw is not None:
            self._raw.close()
            self._raw = None
