"""Sample files: HDF5, SigMF and raw IQ readers and writers.

HDF5 layout (format version 1)
------------------------------
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

SigMF: ``NAME.sigmf-meta`` + ``NAME.sigmf-data`` (cf32_le, or ci16_le / ci8), written and
read with the ``sigmf`` package; the frame configuration is the global key
``zakotfs:config`` (declared in ``core:extensions``).

Raw IQ files (a GNU Radio File Sink's ``.cfile``, UHD's ``rx_samples_to_file``): samples
and nothing else, so the frame configuration must be given; the sample format
(:mod:`streaming.sample_format`) comes from the suffix (``.cfile``/``.cf32``/``.fc32``,
``.ci16``/``.sc16``/``.cs16``, ``.ci8``/``.sc8``/``.cs8``) or is given (``.bin``, ``.dat``,
``.raw``, ``.iq``: cf32_le unless told).
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
import warnings
from pathlib import Path
from typing import Any, Iterator

import h5py
import numpy as np

from zakotfs.config import FrameConfig

from .hdf5_recovery import read_superblock
from .sample_format import SAMPLE_FORMATS, LevelMeter, SampleEncoder, SampleFormat, sample_format as _sample_format

__all__ = ["FORMAT_VERSION", "MissingConfigError", "IQWriter", "IQReader", "SigMFWriter", "SigMFReader", "write_sigmf", "RawIQReader",
           "RAW_SUFFIXES"]

logger = logging.getLogger(__name__)

FORMAT_VERSION = 1
SIGMF_EXTENSION = {"name": "zakotfs", "version": "1.0.0", "optional": True}
DEFAULT_CHUNK = 1 << 16
"""Samples a file source returns per read."""
# HDF5 1.10 file format: its chunk index for an unlimited dimension (extensible array) is
# written in step with the data at each flush, so a cut-short file keeps most of its index.
_LIBVER = ("v110", "v110")


class MissingConfigError(ValueError):
    """The input carries no frame configuration (a raw IQ file, a SigMF recording from
    another tool) and none was given."""


def _check_chunk(value: int, name: str) -> int:
    if not isinstance(value, (int, np.integer)) or value <= 0:
        raise ValueError(f"{name} must be a positive int, got {value!r}")
    return int(value)


def _as_samples(samples) -> np.ndarray:
    data = np.asarray(samples)
    if data.ndim != 1:
        raise ValueError(f"samples must be 1-D, got shape {data.shape}")
    if not (np.iscomplexobj(data) or data.size == 0):
        raise ValueError(f"samples must be complex, got {data.dtype}")
    return data.astype(np.complex64, copy=False)


def _config_from(value: Any, where: str) -> FrameConfig:
    try:
        data = json.loads(value) if isinstance(value, (str, bytes)) else dict(value)
        return FrameConfig.from_dict(data)
    except (ValueError, TypeError) as exc:
        raise ValueError(f"{where}: the stored frame configuration is invalid ({exc})") from None


# ---------------------------------------------------------------------------------------------
# channel-truth JSON (complex numbers and arrays)
# ---------------------------------------------------------------------------------------------
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


# ---------------------------------------------------------------------------------------------
# HDF5
# ---------------------------------------------------------------------------------------------
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


class _SampleFileReader:
    """What the file readers share: a cursor ``_pos`` over ``n_samples`` samples read in
    order by ``read``, iteration, and use as a context manager (``close`` on exit)."""

    _pos: int
    n_samples: int

    @property
    def position(self) -> int:
        """Index of the next sample ``read`` returns."""
        return self._pos

    @property
    def eof(self) -> bool:
        return self._pos >= self.n_samples

    def __iter__(self) -> Iterator[np.ndarray]:
        while (chunk := self.read()) is not None:
            yield chunk

    def __enter__(self):
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
            self.config = config
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
        package_root = str(Path(__file__).resolve().parents[1])
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



# ---------------------------------------------------------------------------------------------
# SigMF
# ---------------------------------------------------------------------------------------------
def _sigmf_paths(path: str | os.PathLike) -> tuple[Path, Path]:
    """(meta, data) paths from ``NAME``, ``NAME.sigmf-meta`` or ``NAME.sigmf-data``."""
    path = Path(path)
    if path.suffix in (".sigmf-meta", ".sigmf-data"):
        path = path.with_suffix("")
    return path.with_name(path.name + ".sigmf-meta"), path.with_name(path.name + ".sigmf-data")


class SigMFWriter:
    """Write a SigMF recording in streaming fashion; metadata written on close.

    Parameters
    ----------
    path : str or PathLike
        ``NAME``, ``NAME.sigmf-meta`` or ``NAME.sigmf-data``; both files are (re)created.
    config : FrameConfig
        Stored as the global ``zakotfs:config`` (a JSON object).
    sample_rate : float or None
        Hz; default ``config.bandwidth``.
    frequency : float or None
        Centre frequency for the capture segment (``core:frequency``).
    description : str or None
    sample_format : str or SampleFormat
        ``core:datatype``: ``cf32_le`` (default), ``ci16_le`` or ``ci8``.
    full_scale : float or None
        Fixed point: the amplitude of the largest code (None: gain ranging, 3 dB over
        the largest I or Q written so far; :mod:`streaming.sample_format`); ``.encoder``
        holds it and counts the components that clip.
    """

    def __init__(self, path: str | os.PathLike, config: FrameConfig, *,
                 sample_rate: float | None = None, frequency: float | None = None,
                 description: str | None = None, sample_format: str | SampleFormat = "cf32_le",
                 full_scale: float | None = None):
        if not isinstance(config, FrameConfig):
            raise TypeError(f"config must be a FrameConfig, got {type(config).__name__}")
        rate = config.bandwidth if sample_rate is None else float(sample_rate)
        if not (np.isfinite(rate) and rate > 0):
            raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
        self.meta_path, self.data_path = _sigmf_paths(path)
        self.config = config
        self.sample_rate = rate
        self.frequency = frequency
        self.description = description or f"zakotfs {config.summary()}"
        self.samples_written = 0
        self.encoder = SampleEncoder(sample_format, full_scale)
        self._annotations: list[tuple[int, int | None, dict]] = []
        self._data = open(self.data_path, "wb")

    def write(self, samples) -> None:
        """Append complex [n] samples (in the recording's sample format)."""
        if self._data is None:
            raise ValueError(f"{self.data_path}: the writer is closed")
        data = _as_samples(samples)
        self._data.write(self.encoder(data).tobytes())
        self.samples_written += data.size

    def annotate(self, start: int, length: int | None = None, label: str | None = None,
                 **fields) -> None:
        """Add an annotation (e.g. one per frame); extra ``fields`` keys must be namespaced
        (``"zakotfs:seq"``)."""
        for key in fields:
            if ":" not in key:
                raise ValueError(f"annotation field {key!r} must be namespaced, e.g. 'zakotfs:{key}'")
        meta = dict(fields)
        if label is not None:
            meta["core:label"] = label
        self._annotations.append((int(start), None if length is None else int(length), meta))

    def close(self) -> None:
        """Close the data file and write the ``.sigmf-meta`` (validated by the sigmf package)."""
        if self._data is None:
            return
        self._data.close()
        self._data = None
        from sigmf import SigMFFile

        meta = SigMFFile(data_file=str(self.data_path), global_info={
            "core:datatype": self.encoder.format.name,
            "core:sample_rate": self.sample_rate,
            "core:description": self.description,
            "core:extensions": [dict(SIGMF_EXTENSION)],
            "zakotfs:config": self.config.to_dict(),
        })
        capture = {} if self.frequency is None else {"core:frequency": float(self.frequency)}
        meta.add_capture(0, metadata=capture)
        for start, length, fields in self._annotations:
            meta.add_annotation(start, length, metadata=fields)
        meta.tofile(str(self.meta_path.with_suffix("")), overwrite=True)

    def __enter__(self) -> "SigMFWriter":
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def write_sigmf(path: str | os.PathLike, samples, config: FrameConfig, **kwargs) -> Path:
    """One-shot :class:`SigMFWriter`: write complex [n] ``samples``; returns the meta path."""
    with SigMFWriter(path, config, **kwargs) as writer:
        writer.write(samples)
    return writer.meta_path


class SigMFReader(_SampleFileReader):
    """Read a SigMF recording in chunks as complex64.

    Parameters
    ----------
    path : str or PathLike
        ``NAME``, ``NAME.sigmf-meta`` or ``NAME.sigmf-data``.
    config : FrameConfig or None
        Required when the metadata has no ``zakotfs:config``; overrides it otherwise.
    chunk_samples : int
    verify_checksum : bool
        Check ``core:sha512`` against the data file (reads the whole file once).

    Any complex single-channel SigMF datatype is accepted (fixed point is scaled to
    [-1, 1) by the sigmf package).
    """

    def __init__(self, path: str | os.PathLike, *, config: FrameConfig | None = None,
                 chunk_samples: int = DEFAULT_CHUNK, verify_checksum: bool = True):
        from sigmf import sigmffile
        from sigmf.error import SigMFError

        self.meta_path, self.data_path = _sigmf_paths(path)
        self.chunk_samples = _check_chunk(chunk_samples, "chunk_samples")
        for p in (self.meta_path, self.data_path):
            if not p.is_file():
                raise FileNotFoundError(f"{p}: no such file (a SigMF recording needs "
                                        f"{self.meta_path.name} and {self.data_path.name})")
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore")
                self._meta = sigmffile.fromfile(str(self.meta_path), skip_checksum=not verify_checksum)
        except (SigMFError, ValueError, OSError) as exc:
            hint = "; verify_checksum=False reads it anyway" if "hash" in str(exc).lower() else ""
            raise ValueError(f"{self.meta_path}: cannot read SigMF recording ({exc}){hint}") from None
        datatype = self._meta.get_global_field("core:datatype")
        if not str(datatype).startswith("c") or self._meta.get_global_field("core:num_channels", 1) != 1:
            raise ValueError(f"{self.meta_path}: core:datatype {datatype!r} with "
                             f"{self._meta.get_global_field('core:num_channels', 1)} channels; "
                             f"expected single-channel complex samples (cf32_le)")
        stored = self._meta.get_global_field("zakotfs:config")
        if config is not None:
            if not isinstance(config, FrameConfig):
                raise TypeError(f"config must be a FrameConfig or None, got {type(config).__name__}")
            if stored is not None and _config_from(stored, str(self.meta_path)) != config:
                logger.warning("%s: the given config overrides a different stored zakotfs:config",
                               self.meta_path)
            self.config = config
        elif stored is not None:
            self.config = _config_from(stored, str(self.meta_path))
        else:
            raise MissingConfigError(f"{self.meta_path}: the SigMF metadata has no zakotfs:config; pass "
                             f"config=FrameConfig(...) (on the command line --preset/--grid) "
                             f"to say how the samples are framed")
        rate = self._meta.get_global_field("core:sample_rate")
        self.sample_rate = float(rate or self.config.bandwidth)
        if not np.isclose(self.sample_rate, self.config.bandwidth):
            logger.warning("%s: core:sample_rate %g differs from the config bandwidth %g",
                           self.meta_path, self.sample_rate, self.config.bandwidth)
        self.n_samples = int(self._meta.sample_count)
        self.level = LevelMeter(datatype) if datatype in SAMPLE_FORMATS else None      # others: not metered
        self._pos = 0

    @property
    def annotations(self) -> list[dict]:
        return self._meta.get_annotations()

    def read(self, n: int | None = None) -> np.ndarray | None:
        """complex64 [<= n] next samples (default ``chunk_samples``), or None at the end."""
        n = self.chunk_samples if n is None else _check_chunk(n, "n")
        if self.eof:
            return None
        count = min(n, self.n_samples - self._pos)
        data = self._meta.read_samples(self._pos, count)
        self._pos += count
        samples = np.asarray(data, dtype=np.complex64).reshape(-1)
        if self.level is not None:
            self.level(samples)
        return samples

    def stats(self) -> dict:
        level = self.level.to_dict() if self.level is not None else {
            "sample_format": self._meta.get_global_field("core:datatype")}
        return {"samples_read": self._pos, "n_samples": self.n_samples, **level}

    def close(self) -> None:
        self._pos = self.n_samples


RAW_SUFFIXES = {".cfile": "cf32_le", ".cf32": "cf32_le", ".fc32": "cf32_le",
                ".ci16": "ci16_le", ".sc16": "ci16_le", ".cs16": "ci16_le",
                ".ci8": "ci8", ".sc8": "ci8", ".cs8": "ci8",
                ".bin": None, ".dat": None, ".raw": None, ".iq": None}
"""Raw IQ file suffixes and the sample format each implies (None: cf32_le unless given)."""


class RawIQReader(_SampleFileReader):
    """Read a raw IQ file (samples only, no metadata) in chunks as complex64.

    Parameters
    ----------
    path : str or PathLike
    config : FrameConfig
        How the samples are framed (a raw file cannot say).
    sample_format : str, SampleFormat or None
        None: from the suffix (``RAW_SUFFIXES``), cf32_le where it implies none. A format
        that contradicts the suffix is an error.
    chunk_samples : int
    sample_rate : float or None
        Hz; default ``config.bandwidth``.

    A file cut inside a sample (its size not a whole number of items) is read up to the last
    whole one, with a warning; ``stats()["trailing_bytes"]`` counts the rest.
    """

    def __init__(self, path: str | os.PathLike, *, config: FrameConfig | None,
                 sample_format: str | SampleFormat | None = None, chunk_samples: int = DEFAULT_CHUNK,
                 sample_rate: float | None = None):
        self.path = Path(path)
        if not self.path.is_file():
            raise FileNotFoundError(f"{self.path}: no such file")
        if not isinstance(config, FrameConfig):
            raise MissingConfigError(f"{self.path}: a raw IQ file carries no frame configuration; pass "
                             f"config=FrameConfig(...) (on the command line --preset/--grid)")
        implied = RAW_SUFFIXES.get(self.path.suffix.lower())
        self.sample_format = _sample_format(sample_format or implied or "cf32_le")
        if implied is not None and self.sample_format.name != implied:
            raise ValueError(f"{self.path}: the suffix {self.path.suffix!r} says {implied}, not "
                             f"{self.sample_format.name}; rename the file (.bin takes any format) or drop the format")
        self.config = config
        self.sample_rate = float(sample_rate or config.bandwidth)
        self.chunk_samples = _check_chunk(chunk_samples, "chunk_samples")
        size = self.path.stat().st_size
        self.n_samples, self.trailing_bytes = divmod(size, self.sample_format.itemsize)
        if self.trailing_bytes:
            logger.warning("%s: %d bytes is not a whole number of %s samples; the last %d bytes are "
                           "ignored (a file cut short?)", self.path, size, self.sample_format.name,
                           self.trailing_bytes)
        self.level = LevelMeter(self.sample_format)
        self._file = open(self.path, "rb")
        self._pos = 0

    def read(self, n: int | None = None) -> np.ndarray | None:
        """complex64 [<= n] next samples (default ``chunk_samples``), or None at the end."""
        n = self.chunk_samples if n is None else _check_chunk(n, "n")
        if self.eof or self._file is None:
            return None
        itemsize = self.sample_format.itemsize
        data = self._file.read(min(n, self.n_samples - self._pos) * itemsize)
        count = len(data) // itemsize                        # fewer if the file shrank meanwhile
        if not count:
            self._pos = self.n_samples
            return None
        self._pos += count
        samples = self.sample_format.decode(data[:count * itemsize])
        self.level(samples)
        return samples

    def stats(self) -> dict:
        return {"samples_read": self._pos, "n_samples": self.n_samples, "trailing_bytes": self.trailing_bytes,
                **self.level.to_dict()}

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._pos = self.n_samples
