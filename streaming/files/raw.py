"""Raw IQ files: :class:`RawIQReader` and :class:`RawIQWriter`.

Raw IQ files (a GNU Radio File Sink's ``.cfile``, UHD's ``rx_samples_to_file``): samples
and nothing else, so the frame configuration must be given; the sample format
(:mod:`streaming.sample_format`) comes from the suffix (``.cfile``/``.cf32``/``.fc32``,
``.ci16``/``.sc16``/``.cs16``, ``.ci8``/``.sc8``/``.cs8``) or is given (``.bin``, ``.dat``,
``.raw``, ``.iq``: cf32_le unless told).
"""
from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np

from zakotfs.config import FrameConfig

from ..sample_format import LevelMeter, SampleEncoder, SampleFormat, sample_format as _sample_format
from .base import DEFAULT_CHUNK, MissingConfigError, _as_samples, _check_chunk, _SampleFileReader

__all__ = ["RAW_SUFFIXES", "RawIQReader", "RawIQWriter"]

logger = logging.getLogger(__name__)


RAW_SUFFIXES = {".cfile": "cf32_le", ".cf32": "cf32_le", ".fc32": "cf32_le",
                ".ci16": "ci16_le", ".sc16": "ci16_le", ".cs16": "ci16_le",
                ".ci8": "ci8", ".sc8": "ci8", ".cs8": "ci8",
                ".bin": None, ".dat": None, ".raw": None, ".iq": None}
"""Raw IQ file suffixes and the sample format each implies (None: cf32_le unless given)."""


def _suffix_format(path: Path, sample_format: str | SampleFormat | None) -> SampleFormat:
    """The sample format of a raw file: given or from the suffix (``RAW_SUFFIXES``), cf32_le
    where neither says; a ``ValueError`` where they disagree."""
    implied = RAW_SUFFIXES.get(path.suffix.lower())
    fmt = _sample_format(sample_format or implied or "cf32_le")
    if implied is not None and fmt.name != implied:
        raise ValueError(f"{path}: the suffix {path.suffix!r} says {implied}, not "
                         f"{fmt.name}; rename the file (.bin takes any format) or drop the format")
    return fmt


class RawIQWriter:
    """Write complex samples to a raw IQ file, in the format its suffix implies
    (``RAW_SUFFIXES``; ``.cfile``: complex64 as GNU Radio's File Sink writes it).

    Parameters
    ----------
    path : str or PathLike
        Created (or truncated).
    sample_format : str, SampleFormat or None
        None: from the suffix, cf32_le where it implies none; one that contradicts the
        suffix is a ``ValueError``.
    full_scale : float or None
        Fixed point: the amplitude of the largest code (None: gain ranging,
        :mod:`streaming.sample_format`); ``.encoder`` counts the components that clip.

    The file holds samples only: a reader needs the frame configuration (``--preset`` /
    ``--grid``) and, for fixed point, nothing else (the scale does not matter to the
    receiver).
    """

    def __init__(self, path: str | os.PathLike, *, sample_format: str | SampleFormat | None = None,
                 full_scale: float | None = None):
        self.path = Path(path)
        self.encoder = SampleEncoder(_suffix_format(self.path, sample_format), full_scale)
        self.samples_written = 0
        self._file = open(self.path, "wb")

    def write(self, samples) -> None:
        """Append complex [n] samples."""
        if self._file is None:
            raise ValueError(f"{self.path}: the writer is closed")
        data = _as_samples(samples)
        self._file.write(self.encoder(data).tobytes())
        self.samples_written += data.size

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.close()


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
    whole one, with a warning; ``stats()["trailing_bytes"]`` counts the rest and
    ``damage`` (also in ``stats()``) says so (None for a sound file).
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
        self.sample_format = _suffix_format(self.path, sample_format)
        self.config, self.config_given = config, True
        self.sample_rate = float(sample_rate or config.bandwidth)
        self.chunk_samples = _check_chunk(chunk_samples, "chunk_samples")
        size = self.path.stat().st_size
        self.n_samples, self.trailing_bytes = divmod(size, self.sample_format.itemsize)
        self.damage = None
        if self.trailing_bytes:
            self.damage = (f"{size} bytes is not a whole number of {self.sample_format.name} samples; the last "
                           f"{self.trailing_bytes} bytes are ignored (a file cut short?)")
            logger.warning("%s: %s", self.path, self.damage)
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
                "damage": self.damage, **self.level.to_dict()}

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        self._pos = self.n_samples
