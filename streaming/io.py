"""One way in and one way out for samples, whatever carries them: :func:`open_source` and
:func:`open_sink` over HDF5 files, SigMF recordings, raw IQ files (sources) and ZeroMQ
endpoints.

A source has ``read() -> complex64 [n] | None``, ``config`` (FrameConfig or None),
``sample_rate``, ``eof`` (True once a file is exhausted; never for ZeroMQ, where None means
"nothing within the timeout"), ``stats()`` and ``close()``; ``realtime=True`` paces a file
at its sample rate. A sink has ``write(complex [n])`` and ``close()``; a file sink also keeps
the transmitted bits (``write_truth_bits``) and, HDF5, the channel's truth
(``write_channel_truth``).
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path
from typing import Protocol

import numpy as np

from zakotfs.config import FrameConfig

from .files import (DEFAULT_CHUNK, RAW_SUFFIXES, IQReader, IQWriter, RawIQReader, RawIQWriter, SigMFReader,
                    SigMFWriter)
from .sample_format import SampleFormat
from .zmq_io import IQSink, IQSource, is_endpoint

__all__ = ["SampleSource", "ZmqSampleSource", "PacedSource", "RecordingSource", "open_source", "open_sink"]


class SampleSource(Protocol):
    """What :func:`open_source` returns and the pipeline runner reads. A source that knows
    of samples lost in transport also has ``missing() -> int``: how many the sender made
    before the samples of the last ``read`` that never arrived."""

    config: FrameConfig | None
    sample_rate: float | None

    @property
    def eof(self) -> bool: ...

    def read(self) -> np.ndarray | None: ...

    def stats(self) -> dict: ...

    def close(self) -> None: ...


class ZmqSampleSource:
    """:class:`~streaming.zmq_io.IQSource` as a :class:`SampleSource` (``config`` as given)."""

    def __init__(self, source: IQSource, config: FrameConfig | None = None):
        self.source = source
        self.config = config
        self.sample_rate = None if config is None else config.bandwidth
        self._missing = 0

    @property
    def eof(self) -> bool:
        return False

    def read(self) -> np.ndarray | None:
        chunk = self.source.recv_chunk()
        if chunk is None:
            return None
        self._missing = chunk.missing
        return chunk.samples

    def missing(self) -> int:
        """Samples lost in transport (pass_tags offsets) just before the last read's."""
        return self._missing

    def silence(self) -> str:
        """What the connections say about a source that received nothing
        (``IQSource.silence``)."""
        return self.source.silence()

    def stats(self) -> dict:
        return {**self.source.stats.to_dict(), **self.source.level.to_dict()}

    def close(self) -> None:
        self.source.close()


class PacedSource:
    """Deliver a file source's chunks no faster than its sample rate (``--realtime``).

    After k samples have been delivered, the next chunk is returned no earlier than
    ``t0 + k / sample_rate`` (t0 = first read), so the average rate equals the sample rate
    and bursts are one chunk long.
    """

    def __init__(self, source, sample_rate: float | None = None):
        rate = sample_rate if sample_rate is not None else source.sample_rate
        if rate is None or not rate > 0:
            raise ValueError(f"sample_rate must be positive to pace a source, got {rate!r}")
        self.source = source
        self.sample_rate = float(rate)
        self.config = source.config
        self._t0 = None
        self._delivered = 0

    @property
    def eof(self) -> bool:
        return self.source.eof

    @property
    def config_given(self) -> bool:
        """The paced file's ``config_given``."""
        return getattr(self.source, "config_given", False)

    @property
    def truth_bits(self) -> np.ndarray | None:
        """The paced file's ``truth_bits`` (None if it has none)."""
        return getattr(self.source, "truth_bits", None)

    def read(self) -> np.ndarray | None:
        now = time.perf_counter()
        if self._t0 is None:
            self._t0 = now
        due = self._t0 + self._delivered / self.sample_rate
        if due > now:
            time.sleep(due - now)
        data = self.source.read()
        if data is not None:
            self._delivered += data.size
        return data

    def stats(self) -> dict:
        return self.source.stats()

    def close(self) -> None:
        self.source.close()


def open_source(path_or_endpoint: str | os.PathLike, *, config: FrameConfig | None = None,
                realtime: bool = False, chunk_samples: int = DEFAULT_CHUNK,
                pattern: str = "sub", sample_format: str | SampleFormat | None = None,
                **zmq_options) -> SampleSource:
    """Open an HDF5 file, a SigMF recording, a raw IQ file or a ZeroMQ endpoint as a sample
    source.

    Parameters
    ----------
    path_or_endpoint : str or PathLike
        ``*.h5``/``*.hdf5``; ``*.sigmf-meta``/``*.sigmf-data``; a raw IQ file
        (``RAW_SUFFIXES``); ``tcp://``, ``ipc://`` or ``inproc://`` address.
    config : FrameConfig or None
        Files: overrides the stored configuration (required for SigMF without one and for
        raw files). ZeroMQ: carried as ``.config`` (None if not given: the stream carries none).
    sample_format : str, SampleFormat or None
        ZeroMQ and raw files: ``cf32_le`` (None: the default; a raw file's suffix),
        ``ci16_le`` or ``ci8``. HDF5 and SigMF files say their own.
    realtime : bool
        Files only: pace reads at the sample rate.
    chunk_samples : int
        Files: samples per read.
    pattern, **zmq_options
        ZeroMQ: passed to :class:`~streaming.zmq_io.IQSource`.
    """
    text = os.fspath(path_or_endpoint)
    if is_endpoint(text):
        if realtime:
            raise ValueError("realtime pacing applies to files; a ZeroMQ stream is paced by its sender")
        return ZmqSampleSource(IQSource(text, pattern, sample_format=sample_format or "cf32_le", **zmq_options),
                               config)
    if zmq_options:
        raise ValueError(f"options {', '.join(sorted(zmq_options))} apply to ZeroMQ endpoints, "
                         f"not to the file {text!r}")
    suffix = Path(text).suffix.lower()
    if suffix in RAW_SUFFIXES:
        source = RawIQReader(text, config=config, sample_format=sample_format, chunk_samples=chunk_samples)
    elif sample_format is not None:
        raise ValueError(f"{text}: the sample format applies to ZeroMQ and raw IQ files; an HDF5 or SigMF "
                         f"file says its own")
    elif suffix in (".h5", ".hdf5"):
        source = IQReader(text, config=config, chunk_samples=chunk_samples)
    elif suffix in (".sigmf-meta", ".sigmf-data"):
        source = SigMFReader(text, config=config, chunk_samples=chunk_samples)
    else:
        raise ValueError(f"path_or_endpoint {text!r}: expected a .h5/.hdf5 file, a .sigmf-meta "
                         f"recording, a raw IQ file ({', '.join(RAW_SUFFIXES)}) or a tcp://, ipc:// or "
                         f"inproc:// endpoint")
    return PacedSource(source) if realtime else source


class RecordingSource:
    """A sample source that also writes what it reads to ``writer`` (``write(samples)``,
    ``close()``: an :class:`~streaming.files.IQWriter` recording, replayable as a source)."""

    def __init__(self, source, writer):
        self.source, self.writer = source, writer
        self.config = source.config
        self.sample_rate = getattr(source, "sample_rate", None)

    @property
    def eof(self) -> bool:
        return self.source.eof

    def read(self) -> np.ndarray | None:
        samples = self.source.read()
        if samples is not None:
            self.writer.write(samples)
        return samples

    def missing(self) -> int:
        """The source's samples lost in transport before the last read's (not in the
        recording, which holds what came)."""
        return self.source.missing() if hasattr(self.source, "missing") else 0

    def silence(self) -> str:
        """The source's account of why nothing came, where it has one (ZeroMQ)."""
        return self.source.silence() if hasattr(self.source, "silence") else ""

    def stats(self) -> dict:
        return self.source.stats()

    def close(self) -> None:
        self.writer.close()
        self.source.close()


def open_sink(target: str | os.PathLike, config: FrameConfig, *, pattern: str = "pub",
              sample_format: str = "cf32_le", full_scale: float | None = None, pass_tags: bool = False):
    """Open a sample sink by the target's suffix: an HDF5 file (``*.h5``/``*.hdf5``,
    complex64 only), a SigMF recording (``*.sigmf-meta``/``*.sigmf-data``), a raw IQ file
    (``RAW_SUFFIXES``: ``.cfile`` complex64, ``.sc16`` int16 pairs, ...) or a ZeroMQ
    endpoint, which binds (``pattern`` ``pub`` or ``push``, gr-zeromq ``pass_tags`` headers
    on request).

    ``sample_format``: ``cf32_le``, or ``ci16_le`` / ``ci8`` codes at ``full_scale`` (the
    amplitude of the largest code; None: ranged from the signal, :mod:`streaming.sample_format`);
    a raw file with a fixed-point suffix takes the suffix's format where ``sample_format`` is
    the default. Returns an :class:`~streaming.files.IQWriter`,
    :class:`~streaming.files.SigMFWriter`, :class:`~streaming.files.RawIQWriter` or
    :class:`~streaming.zmq_io.IQSink`, each with ``write(samples)`` and ``close()``."""
    if full_scale is not None and not (math.isfinite(full_scale) and full_scale > 0):
        raise ValueError(f"full_scale must be a positive amplitude, got {full_scale}")
    text = os.fspath(target)
    encoding = {"sample_format": sample_format, "full_scale": full_scale}
    if is_endpoint(text):
        return IQSink(text, pattern, bind=True, pass_tags=pass_tags, **encoding)
    if text.endswith((".h5", ".hdf5")):
        if sample_format != "cf32_le":
            raise ValueError(f"target {text}: an HDF5 sample file holds complex64; sample_format {sample_format} "
                             f"needs a ZeroMQ endpoint or FILE.sigmf-meta")
        return IQWriter(text, config)
    if text.endswith((".sigmf-meta", ".sigmf-data")):
        return SigMFWriter(text, config, **encoding)
    suffix = Path(text).suffix.lower()
    if suffix in RAW_SUFFIXES:
        implied = RAW_SUFFIXES[suffix]
        return RawIQWriter(text, sample_format=implied if implied and sample_format == "cf32_le" else sample_format,
                           full_scale=full_scale)
    raise ValueError(f"target {text!r}: expected FILE.h5, FILE.sigmf-meta, a raw IQ file "
                     f"({', '.join(RAW_SUFFIXES)}) or a tcp:// / ipc:// endpoint")
