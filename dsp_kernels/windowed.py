"""Fused steps of the windowed channel operator (``zakotfs.windowed_operator``).

Each function is one pass over memory on the GPU (a RawKernel of ``windowed.cu``, for
complex64) and the same result in array code otherwise, which is also the reference the
kernels are tested against (``tests/dsp_kernels/test_windowed_kernels.py`` runs the CUDA
source on the CPU too). Shapes: F frames, K window polynomials phi [K, Lw], S windows of Lw
samples, L = S Lw; overlap-save blocks are [F, S, B], B = Lw + V with the overlap V <= Lw,
and ``shift`` = d0 + V places block w's input, s[w Lw - shift ... w Lw - shift + B - 1]
(circular).
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


def window_gather(s, window: int, block: int, shift: int):
    """complex [F, L] -> [F, S, B]: blocks[f, w, t] = s[f, (w Lw + t - shift) mod L], t < B."""
    F, L = s.shape
    S = L // window
    if _fused(s):
        cp = sys.modules["cupy"]
        blocks = cp.empty((F, S, block), dtype=s.dtype)
        _launch("window_gather", blocks.size, cp.ascontiguousarray(s), blocks, np.int64(F), np.int64(S),
                np.int64(window), np.int64(block), np.int64(shift))
        return blocks
    xp = xp_of(s)
    shifted = xp.roll(s, shift, axis=-1).reshape(F, S, window)
    return xp.concatenate([shifted, xp.roll(shifted, -1, axis=1)[..., :block - window]], axis=-1)


def window_sum(filtered, phi):
    """complex [F, K, S, B] filter outputs, float [K, Lw] -> [F, L]:
    y[f, w Lw + m] = sum_k phi[k, m] filtered[f, k, w, m]."""
    F, K, S, block = filtered.shape
    window = phi.shape[-1]
    if _fused(filtered):
        cp = sys.modules["cupy"]
        y = cp.empty((F, S * window), dtype=filtered.dtype)
        _launch("window_sum", y.size, cp.ascontiguousarray(filtered), cp.ascontiguousarray(phi, dtype=cp.float32), y,
                np.int64(F), np.int32(K), np.int64(S), np.int64(window), np.int64(block))
        return y
    return (filtered[..., :window] * phi[:, None, :]).sum(axis=1).reshape(F, S * window)


def window_weight(r, phi, block: int):
    """complex [F, L], float [K, Lw] -> [F, K, S, B]: phi[k, m] r[f, w Lw + m] in the first Lw
    samples of each block, zeros in the rest (the adjoint's zero-padded FFT input)."""
    F, L = r.shape
    K, window = phi.shape
    S = L // window
    if _fused(r):
        cp = sys.modules["cupy"]
        out = cp.empty((F, K, S, block), dtype=r.dtype)
        _launch("window_weight", out.size, cp.ascontiguousarray(r), cp.ascontiguousarray(phi, dtype=cp.float32), out,
                np.int64(F), np.int32(K), np.int64(S), np.int64(window), np.int64(block))
        return out
    xp = xp_of(r)
    out = xp.zeros((F, K, S, block), dtype=r.dtype)
    out[..., :window] = r.reshape(F, 1, S, window) * phi[:, None, :]
    return out


def window_reduce(g, z):
    """complex [F, K, S, B] x2 -> [F, S, B]: sum_k g_k z_k."""
    F, K, S, block = z.shape
    if _fused(z):
        cp = sys.modules["cupy"]
        out = cp.empty((F, S, block), dtype=z.dtype)
        _launch("window_reduce", out.size, cp.ascontiguousarray(g, dtype=z.dtype), cp.ascontiguousarray(z), out,
                np.int64(F), np.int32(K), np.int64(S), np.int64(block))
        return out
    return (g * z).sum(axis=1)


def window_scatter(y, window: int, shift: int, s=None, noise_var=None):
    """complex [F, S, B] -> [F, L]: the adjoint of ``window_gather`` (overlap-add),
    plus noise_var[f] s[f, q] where ``s`` [F, L] and ``noise_var`` float [F] are given."""
    F, S, block = y.shape
    if _fused(y):
        cp = sys.modules["cupy"]
        out = cp.empty((F, S * window), dtype=y.dtype)
        dims = (np.int64(F), np.int64(S), np.int64(window), np.int64(block), np.int64(shift))
        if s is None:
            _launch("window_scatter", out.size, cp.ascontiguousarray(y), out, *dims)
        else:
            _launch("window_scatter_add", out.size, cp.ascontiguousarray(y), cp.ascontiguousarray(s, dtype=y.dtype),
                    cp.ascontiguousarray(noise_var, dtype=cp.float32), out, *dims)
        return out
    xp = xp_of(y)
    added = y[..., :window].copy()
    added[..., :block - window] += xp.roll(y[..., window:], 1, axis=1)
    added = added.reshape(F, S * window)
    out = xp.roll(added, -shift, axis=-1)
    return out if s is None else out + noise_var[:, None] * s
