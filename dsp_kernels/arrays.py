"""Array-module dispatch: the same call on numpy (CPU) and CuPy (GPU) arrays.

``xp_of(*arrays)`` returns numpy or cupy; ``fft``/``ifft`` use scipy.fft on all cores for
numpy input and cuFFT for CuPy input. numpy in, numpy out; no hidden host/device copies.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import scipy.fft

__all__ = ["xp_of", "fft", "ifft", "is_gpu_array"]

_WORKERS = os.cpu_count() or 1


def is_gpu_array(a) -> bool:
    cupy = sys.modules.get("cupy")
    return cupy is not None and isinstance(a, cupy.ndarray)


def xp_of(*arrays):
    """numpy, or cupy when any argument is a CuPy array."""
    if any(is_gpu_array(a) for a in arrays):
        return sys.modules["cupy"]
    return np


def fft(a, axis: int = -1, norm: str | None = None, n: int | None = None):
    """The DFT along ``axis``, zero-padded or cut to ``n`` points when given."""
    if is_gpu_array(a):
        return sys.modules["cupy"].fft.fft(a, n=n, axis=axis, norm=norm)
    return scipy.fft.fft(a, n=n, axis=axis, norm=norm, workers=_WORKERS)


def ifft(a, axis: int = -1, norm: str | None = None, n: int | None = None):
    """The inverse DFT along ``axis``, zero-padded or cut to ``n`` points when given."""
    if is_gpu_array(a):
        return sys.modules["cupy"].fft.ifft(a, n=n, axis=axis, norm=norm)
    return scipy.fft.ifft(a, n=n, axis=axis, norm=norm, workers=_WORKERS)
