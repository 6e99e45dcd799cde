"""Kernels behind one small interface: ``Backend`` (numpy/Numba on the CPU, CuPy on the GPU).

The algorithms in ``zakotfs`` are written once against ``Backend``: array module ``xp``,
FFTs, transfers and the few hand-written kernels (max-log LLR).
"""
from .arrays import fft, ifft, is_gpu_array, xp_of
from .backend import Backend, BackendError, get_backend, gpu_available

__all__ = ["Backend", "BackendError", "get_backend", "gpu_available", "xp_of", "fft", "ifft", "is_gpu_array"]
