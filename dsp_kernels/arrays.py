"""Array-module dispatch: the same call on numpy (CPU) and CuPy (GPU) arrays.

``xp_of(*arrays)`` returns numpy or cupy. ``fft``/``ifft`` run cuFFT for CuPy input and, for
numpy input, FFTW through pyFFTW (plans cached per shape and dtype, ``FFT_PLANNER``) where it
is installed, else scipy.fft; both on ``fft_workers()`` threads. numpy in, numpy
out; no hidden host/device copies.
"""
from __future__ import annotations

import os
import sys

import numpy as np
import scipy.fft

try:
    import pyfftw
    import pyfftw.interfaces.cache
    import pyfftw.interfaces.scipy_fft as _fftw
except ImportError:                 # the plain scipy.fft path: slower, same results
    _fftw = None
else:
    pyfftw.interfaces.cache.enable()
    pyfftw.interfaces.cache.set_keepalive_time(3600.0)

__all__ = ["xp_of", "fft", "ifft", "is_gpu_array", "fft_library", "fft_workers", "set_fft_workers"]

FFT_PLANNER = "FFTW_ESTIMATE"
"""The array code's FFTW plans are chosen without timing them: the same in every process
and run, so a frame decodes to the same bits wherever it runs. (The compiled equaliser's
plans are timed once a machine and shared through wisdom: ``dsp_kernels.fftw``.)"""

_workers = 1


def fft_library() -> str:
    """The CPU FFT in use: ``"fftw"`` (pyFFTW) or ``"scipy"`` (pocketfft)."""
    return "scipy" if _fftw is None else "fftw"


def fft_workers() -> int:
    """Threads each CPU transform runs on."""
    return _workers


def set_fft_workers(n: int) -> None:
    """Run each CPU transform on ``n`` threads (1 where frames run in parallel processes)."""
    global _workers
    if not (isinstance(n, int) and n >= 1):
        raise ValueError(f"FFT workers must be a positive integer, got {n!r}")
    _workers = n


def is_gpu_array(a) -> bool:
    cupy = sys.modules.get("cupy")
    return cupy is not None and isinstance(a, cupy.ndarray)


def xp_of(*arrays):
    """numpy, or cupy when any argument is a CuPy array."""
    if any(is_gpu_array(a) for a in arrays):
        return sys.modules["cupy"]
    return np


def _cpu_transform(name: str, a, axis: int, norm: str | None, n: int | None):
    if _fftw is not None and a.dtype in (np.complex64, np.complex128):
        return getattr(_fftw, name)(a, n=n, axis=axis, norm=norm, workers=_workers, planner_effort=FFT_PLANNER)
    return getattr(scipy.fft, name)(a, n=n, axis=axis, norm=norm, workers=_workers)


def fft(a, axis: int = -1, norm: str | None = None, n: int | None = None):
    """The DFT along ``axis``, zero-padded or cut to ``n`` points when given."""
    if is_gpu_array(a):
        return sys.modules["cupy"].fft.fft(a, n=n, axis=axis, norm=norm)
    return _cpu_transform("fft", np.asarray(a), axis, norm, n)


def ifft(a, axis: int = -1, norm: str | None = None, n: int | None = None):
    """The inverse DFT along ``axis``, zero-padded or cut to ``n`` points when given."""
    if is_gpu_array(a):
        return sys.modules["cupy"].fft.ifft(a, n=n, axis=axis, norm=norm)
    return _cpu_transform("ifft", np.asarray(a), axis, norm, n)
