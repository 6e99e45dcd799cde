"""Fused steps of the windowed channel operator (``zakotfs.windowed_operator``).

Each function is one pass over memory on the GPU (a RawKernel of ``windowed.cu``, for
complex64) and the same result in array code otherwise, which is also the reference the
kernels are tested against (``tests/dsp_kernels/test_windowed_kernels.py`` runs the CUDA
source on the CPU too). Shapes: F frames, K window polynomials phi [K, Lw], S windows of Lw
samples, L = S Lw; overlap-save blocks are [F, S, 2 Lw], and ``shift`` = d0 + Lw places
block w's input, s[w Lw - shift ... w Lw - shift + 2 Lw - 1] (circular).
"""
from __future__ import annotations

import sys

import numpy as np

from .arrays import is_gpu_array, xp_of

__all__ = ["window_gather", "window_sum", "window_weight", "window_reduce", "window_scatter"]

def _fused(a) -> bool:
    return is_gpu_array(a) and a.dtype == np.complex64


def _launch(name: str, n: int, *args) -> None:
    """One thread per output element of ``windowed.cu``'s kernel ``name``."""
    from .gpu import launch

    launch("windowed.cu", name, n, *args)


def window_gather(s, window: int, shift: int):
    """complex [F, L] -> [F, S, 2 Lw]: blocks[f, w, t] = s[f, (w Lw + t - shift) mod L]."""
    F, L = s.shape
    S = L // window
    if _fused(s):
        cp = sys.modules["cupy"]
        blocks = cp.empty((F, S, 2 * window), dtype=s.dtype)
        _launch("window_gather", blocks.size, cp.ascontiguousarray(s), blocks, np.int64(F), np.int64(S),
                np.int64(window), np.int64(shift))
        return blocks
    xp = xp_of(s)
    shifted = xp.roll(s, shift, axis=-1).reshape(F, S, window)
    return xp.concatenate([shifted, xp.roll(shifted, -1, axis=1)], axis=-1)


def window_sum(filtered, phi):
    """complex [F, K, S, 2 Lw] filter outputs, float [K, Lw] -> [F, L]:
    y[f, w Lw + m] = sum_k phi[k, m] filtered[f, k, w, m]."""
    F, K, S, two_lw = filtered.shape
    window = two_lw // 2
    if _fused(filtered):
        cp = sys.modules["cupy"]
        y = cp.empty((F, S * window), dtype=filtered.dtype)
        _launch("window_sum", y.size, cp.ascontiguousarray(filtered), cp.ascontiguousarray(phi, dtype=cp.float32), y,
                np.int64(F), np.int32(K), np.int64(S), np.int64(window))
        return y
    return (filtered[..., :window] * phi[:, None, :]).sum(axis=1).reshape(F, S * window)


def window_weight(r, phi):
    """complex [F, L], float [K, Lw] -> [F, K, S, 2 Lw]: phi[k, m] r[f, w Lw + m] in the first
    half of each block, zeros in the second (the adjoint's zero-padded FFT input)."""
    F, L = r.shape
    K, window = phi.shape
    S = L // window
    if _fused(r):
        cp = sys.modules["cupy"]
        out = cp.empty((F, K, S, 2 * window), dtype=r.dtype)
        _launch("window_weight", out.size, cp.ascontiguousarray(r), cp.ascontiguousarray(phi, dtype=cp.float32), out,
                np.int64(F), np.int32(K), np.int64(S), np.int64(window))
        return out
    xp = xp_of(r)
    out = xp.zeros((F, K, S, 2 * window), dtype=r.dtype)
    out[..., :window] = r.reshape(F, 1, S, window) * phi[:, None, :]
    return out


def window_reduce(g, z):
    """complex [F, K, S, 2 Lw] x2 -> [F, S, 2 Lw]: sum_k g_k z_k."""
    F, K, S, two_lw = z.shape
    if _fused(z):
        cp = sys.modules["cupy"]
        out = cp.empty((F, S, two_lw), dtype=z.dtype)
        _launch("window_reduce", out.size, cp.ascontiguousarray(g, dtype=z.dtype), cp.ascontiguousarray(z), out,
                np.int64(F), np.int32(K), np.int64(S), np.int64(two_lw // 2))
        return out
    return (g * z).sum(axis=1)


def window_scatter(y, shift: int, s=None, noise_var=None):
    """complex [F, S, 2 Lw] -> [F, L]: the adjoint of ``window_gather`` (overlap-add),
    plus noise_var[f] s[f, q] where ``s`` [F, L] and ``noise_var`` float [F] are given."""
    F, S, two_lw = y.shape
    window = two_lw // 2
    if _fused(y):
        cp = sys.modules["cupy"]
        out = cp.empty((F, S * window), dtype=y.dtype)
        dims = (np.int64(F), np.int64(S), np.int64(window), np.int64(shift))
        if s is None:
            _launch("window_scatter", out.size, cp.ascontiguousarray(y), out, *dims)
        else:
            _launch("window_scatter_add", out.size, cp.ascontiguousarray(y), cp.ascontiguousarray(s, dtype=y.dtype),
                    cp.ascontiguousarray(noise_var, dtype=cp.float32), out, *dims)
        return out
    xp = xp_of(y)
    added = (y[..., :window] + xp.roll(y[..., window:], 1, axis=1)).reshape(F, S * window)
    out = xp.roll(added, -shift, axis=-1)
    return out if s is None else out + noise_var[:, None] * s
