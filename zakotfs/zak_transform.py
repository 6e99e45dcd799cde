"""Discrete Zak transform and its inverse (unitary), batched over leading axes.

Time index q = k + n M (delay fastest), k in [0, M), n in [0, N).

* inverse (DD -> time):  s[k + nM] = 1/sqrt(N) sum_l x[k, l] exp(+j 2 pi n l / N)
* forward (time -> DD):  y[k, l]  = 1/sqrt(N) sum_n r[k + nM] exp(-j 2 pi n l / N)

Both are N-point DFTs along Doppler; they work on numpy and CuPy arrays alike.
"""
from __future__ import annotations

from dsp_kernels import fft, ifft, xp_of

__all__ = ["inverse_zak", "zak"]


def inverse_zak(x):
    """complex [..., M, N] DD grid -> complex [..., M N] time samples."""
    xp = xp_of(x)
    *batch, M, N = x.shape
    s = ifft(x, axis=-1, norm="ortho")                     # [..., k, n]
    return xp.swapaxes(s, -1, -2).reshape(*batch, M * N)   # q = k + n M


def zak(r, M: int, N: int):
    """complex [..., M N] time samples -> complex [..., M, N] DD grid."""
    xp = xp_of(r)
    if r.shape[-1] != M * N:
        raise ValueError(f"zak: last axis has {r.shape[-1]} samples, expected M*N = {M * N}")
    grid = xp.swapaxes(r.reshape(*r.shape[:-1], N, M), -1, -2)   # [..., k, n]
    return fft(grid, axis=-1, norm="ortho")
