"""The fused equaliser steps on the CPU: Numba twins of ``fused.py``'s GPU kernels.

Each function makes one pass over its operands, where numpy would chain
temporaries (a product, a conjugate, a sum). The numpy expressions in ``fused.py`` are
their reference. Shapes: F frames, P basis functions, L samples; complex64 or complex128
C-contiguous arrays; ``basis`` [P, L] (shared by all frames) or [F, P, L].
"""
from __future__ import annotations

import numba
import numpy as np

__all__ = ["frequency_shift", "taps_product", "basis_sum", "basis_project", "taps_reduce", "real_dot", "cg_step", "xpby",
           "overlapped_windows", "overlap_add"]


ANCHOR = 64
"""``frequency_shift`` evaluates exp(j 2 pi c q) exactly every ANCHOR samples (float64) and by
complex rotation in between."""


@numba.njit(cache=True, fastmath=True)
def _frequency_shift(r, cycles, offset, out):
    F, L = r.shape
    for f in range(F):
        step = np.exp(2j * np.pi * cycles[f])
        phase = 1.0 + 0j
        for q in range(L):
            if q % ANCHOR == 0:
                turns = cycles[f] * q
                phase = np.exp(2j * np.pi * (turns - np.rint(turns)))
            out[f, q] = (r[f, q] - offset[f]) * phase
            phase *= step


def frequency_shift(r, cycles, offset):
    """complex [F, L], float64 [F] cycles per sample, complex [F] offset -> [F, L]:
    (r[f, q] - offset[f]) exp(j 2 pi cycles[f] q)."""
    out = np.empty_like(r)
    _frequency_shift(r, np.ascontiguousarray(cycles, dtype=np.float64),
                     np.ascontiguousarray(offset, dtype=r.dtype), out)
    return out


def _per_frame(basis, F):
    """[P, L] or [F, P, L] -> [F', P, L] and the stride of frames in it (0: shared)."""
    return (basis[None], 0) if basis.ndim == 2 else (basis, 1)


@numba.njit(cache=True, fastmath=True)
def _taps_product(taps, spectrum, out):
    F, P, L = taps.shape
    for fp in range(F * P):
        f, p = fp // P, fp % P
        for q in range(L):
            out[f, p, q] = taps[f, p, q] * spectrum[f, q]


def taps_product(taps, spectrum):
    """complex [F, P, L] C_p, [F, L] S -> [F, P, L]: C_p S."""
    out = np.empty(taps.shape, np.result_type(taps, spectrum))
    _taps_product(taps, spectrum, out)
    return out


@numba.njit(cache=True, fastmath=True)
def _basis_sum(basis, stride, u, out):
    F, P, L = u.shape
    for f in range(F):
        b = basis[f * stride]
        for q in range(L):
            out[f, q] = b[0, q] * u[f, 0, q]
        for p in range(1, P):
            for q in range(L):
                out[f, q] += b[p, q] * u[f, p, q]


def basis_sum(basis, u):
    """complex basis, [F, P, L] u -> [F, L]: sum_p b_p u_p."""
    b, stride = _per_frame(basis, u.shape[0])
    out = np.empty((u.shape[0], u.shape[2]), u.dtype)
    _basis_sum(b, stride, u, out)
    return out


@numba.njit(cache=True, fastmath=True)
def _basis_project(basis, stride, u, out):
    F, P, L = u.shape
    acc = np.empty(L, u.dtype)
    for f in range(F):
        b = basis[f * stride]
        for q in range(L):
            acc[q] = b[0, q] * u[f, 0, q]
        for p in range(1, P):
            for q in range(L):
                acc[q] += b[p, q] * u[f, p, q]
        for p in range(P):
            for q in range(L):
                out[f, p, q] = np.conj(b[p, q]) * acc[q]


def basis_project(u, basis):
    """complex [F, P, L] u -> [F, P, L]: conj(b_p) sum_r b_r u_r."""
    b, stride = _per_frame(basis, u.shape[0])
    out = np.empty_like(u)
    _basis_project(b, stride, u, out)
    return out


@numba.njit(cache=True, fastmath=True)
def _taps_reduce(taps, v, s, n0, out):
    F, P, L = v.shape
    for f in range(F):
        for q in range(L):
            out[f, q] = n0[f] * s[f, q]
        for p in range(P):
            for q in range(L):
                out[f, q] += np.conj(taps[f, p, q]) * v[f, p, q]


def taps_reduce(taps, v, s, noise_var):
    """complex [F, P, L] C_p, V_p, [F, L] S, float [F] N0 -> [F, L]: sum_p conj(C_p) V_p + N0 S."""
    out = np.empty(s.shape, v.dtype)
    _taps_reduce(taps, v, s, np.ascontiguousarray(noise_var, dtype=v.real.dtype), out)
    return out


@numba.njit(cache=True, fastmath=True)
def _real_dot(a, b, out):
    F, L = a.shape
    for f in range(F):
        acc = 0.0
        for q in range(L):
            acc += a[f, q].real * b[f, q].real + a[f, q].imag * b[f, q].imag
        out[f] = acc


def real_dot(a, b):
    """complex [F, L], [F, L] -> float64 [F]: Re sum_q conj(a[q]) b[q]."""
    out = np.empty(a.shape[0])
    _real_dot(a, b, out)
    return out


@numba.njit(cache=True, fastmath=True)
def _cg_step(x, res, p, Ap, alpha):
    F, L = x.shape
    for f in range(F):
        a = alpha[f]
        for q in range(L):
            x[f, q] += a * p[f, q]
            res[f, q] -= a * Ap[f, q]


def cg_step(x, res, p, Ap, alpha):
    """x += alpha p, res -= alpha Ap (alpha float [F]), in place; returns (x, res)."""
    _cg_step(x, res, p, Ap, np.ascontiguousarray(alpha, dtype=x.real.dtype))
    return x, res


@numba.njit(cache=True, fastmath=True)
def _xpby(x, p, beta, out):
    F, L = x.shape
    for f in range(F):
        for q in range(L):
            out[f, q] = x[f, q] + beta[f] * p[f, q]


def xpby(x, p, beta):
    """complex [F, L]: x + beta p (beta float [F])."""
    out = np.empty_like(x)
    _xpby(x, p, np.ascontiguousarray(beta, dtype=x.real.dtype), out)
    return out


@numba.njit(cache=True, fastmath=True)
def _overlapped_windows(v, window, S, out):
    F, L = v.shape
    h = L // S
    for fs in range(F * S):
        f, s = fs // S, fs % S
        for t in range(2 * h):
            out[f, s, t] = v[f, (s * h + t) % L] * window[t]


def overlapped_windows(v, segments: int, window):
    """complex [F, L] -> [F, S, 2h]: window s holds samples s h ... s h + 2h - 1 (circular)
    times ``window``."""
    F, L = v.shape
    out = np.empty((F, segments, 2 * (L // segments)), v.dtype)
    _overlapped_windows(v, window, segments, out)
    return out


@numba.njit(cache=True, fastmath=True)
def _overlap_add(y, window, out):
    F, S, two_h = y.shape
    h = two_h // 2
    for fs in range(F * S):
        f, s = fs // S, fs % S
        before = (s + S - 1) % S
        for t in range(h):
            out[f, s * h + t] = y[f, s, t] * window[t] + y[f, before, t + h] * window[t + h]


def overlap_add(y, window):
    """complex [F, S, 2h] -> [F, S h]: the windows times ``window``, added back in place."""
    F, S, two_h = y.shape
    out = np.empty((F, S * (two_h // 2)), y.dtype)
    _overlap_add(y, window, out)
    return out
