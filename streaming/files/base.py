"""What the sample file readers and writers share: the chunk size, the check of written
samples and of a stored frame configuration, and the reader's cursor."""
from __future__ import annotations

import json
from typing import Any, Iterator

import numpy as np

from zakotfs.config import FrameConfig

__all__ = ["DEFAULT_CHUNK", "MissingConfigError"]

DEFAULT_CHUNK = 1 << 16
"""Samples a file source returns per read."""


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


class _SampleFileReader:
    """What the file readers share: a cursor ``_pos`` over ``n_samples`` samples read in
    order by ``read``, iteration, and use as a context manager (``close`` on exit)."""

    _pos: int
    n_samples: int
    config_given: bool = False
    """True where ``config`` is the one the caller passed, not one the file stored."""

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
