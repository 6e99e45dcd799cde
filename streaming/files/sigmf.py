"""SigMF recordings: :class:`SigMFWriter`, :func:`write_sigmf` and :class:`SigMFReader`.

SigMF: ``NAME.sigmf-meta`` + ``NAME.sigmf-data`` (cf32_le, or ci16_le / ci8), written and
read with the ``sigmf`` package; the frame configuration is the global key
``zakotfs:config`` (declared in ``core:extensions``).
"""
from __future__ import annotations

import logging
import os
import warnings
from pathlib import Path

import numpy as np

from zakotfs.config import FrameConfig

from ..sample_format import SAMPLE_FORMATS, LevelMeter, SampleEncoder, SampleFormat
from .base import DEFAULT_CHUNK, MissingConfigError, _as_samples, _check_chunk, _config_from, _SampleFileReader

__all__ = ["SigMFWriter", "SigMFReader", "write_sigmf", "SIGMF_EXTENSION"]

logger = logging.getLogger(__name__)

SIGMF_EXTENSION = {"name": "zakotfs", "version": "1.0.0", "optional": True}


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
    recover : bool
        A data file that does not match its ``core:sha512`` (cut short, or changed since it
        was written): True (default) reads it anyway, logs a warning naming the file and sets
        :attr:`damage`; False raises ValueError.

    ``damage`` (also in ``stats()``): what is wrong with the recording, None when it is sound.

    Any complex single-channel SigMF datatype is accepted (fixed point is scaled to
    [-1, 1) by the sigmf package).
    """

    def __init__(self, path: str | os.PathLike, *, config: FrameConfig | None = None,
                 chunk_samples: int = DEFAULT_CHUNK, verify_checksum: bool = True, recover: bool = True):
        from sigmf.error import SigMFError

        self.meta_path, self.data_path = _sigmf_paths(path)
        self.chunk_samples = _check_chunk(chunk_samples, "chunk_samples")
        for p in (self.meta_path, self.data_path):
            if not p.is_file():
                raise FileNotFoundError(f"{p}: no such file (a SigMF recording needs "
                                        f"{self.meta_path.name} and {self.data_path.name})")
        self.damage: str | None = None
        try:
            self._meta = self._open(verify_checksum)
        except (SigMFError, ValueError, OSError) as exc:
            if "hash" not in str(exc).lower():
                raise ValueError(f"{self.meta_path}: cannot read SigMF recording ({exc})") from None
            self.damage = (f"{self.data_path.name} does not match its core:sha512: cut short or changed since "
                           f"it was written")
            if not recover:
                raise ValueError(f"{self.meta_path}: cannot read SigMF recording ({self.damage}; "
                                 f"SigMFReader(..., recover=True) reads it anyway)") from None
            self._meta = self._open(False)
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
            self.config, self.config_given = config, True
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
        trailing = self.data_path.stat().st_size % self._meta.get_sample_size()
        if trailing:
            self.damage = (self.damage + "; " if self.damage else "") + \
                f"the last {trailing} bytes are not a whole sample (ignored)"
        if self.damage:
            logger.warning("%s: damaged SigMF recording (%s); reading its %d whole samples",
                           self.meta_path, self.damage, self.n_samples)
        self.level = LevelMeter(datatype) if datatype in SAMPLE_FORMATS else None      # others: not metered
        self._pos = 0

    def _open(self, verify_checksum: bool):
        from sigmf import sigmffile
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            return sigmffile.fromfile(str(self.meta_path), skip_checksum=not verify_checksum)

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
        return {"samples_read": self._pos, "n_samples": self.n_samples, "damage": self.damage, **level}

    def close(self) -> None:
        self._pos = self.n_samples
