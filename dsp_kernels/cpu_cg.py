"""The CG-LMMSE equaliser compiled for the CPU: every iteration of every frame in one call.

The array code (``zakotfs.equalizer.cg_lmmse`` with ``ChannelOperator`` and the local
Fourier preconditioner) is the reference; this is the same algorithm, a frame at a time, so
that a frame's working arrays (P x L complex64) stay in the core's cache, with the FFTs run
by FFTW plans from compiled code (``fftw``) and the elementwise steps fused around them.
Per frame, with C_p the taps' spectra, b_p the basis (shared by all frames), N0 its noise
variance, W_j the preconditioner's windows and D_j their inverse power spectra:

    H^H r          = IFFT( sum_p conj(C_p) FFT(conj(b_p) r) )
    (H^H H + N0) s = IFFT( sum_p conj(C_p) FFT(conj(b_p) y) + N0 FFT(s) ),
                     y = sum_p b_p IFFT(C_p FFT(s))
    M v            = sum_j W_j IFFT_2h( D_j FFT_2h(W_j v) )    (unnormalised IFFT_2h: D_j holds 1/2h)

then K preconditioned CG steps from x_0 = 0, as ``cg_lmmse``, with the data mask m
(``cg_lmmse``'s ``mask``; all ones for the unit prior) on H^H r, on every normal product
and on every preconditioned residual. Dot products accumulate in float64. Inputs are
complex64 (basis [P, L], taps [F, P, L], received [F, L]), float32 N0 [F], D [F, S, 2h],
window [2h] and mask [L].
"""
from __future__ import annotations

import numba
import numpy as np

from . import fftw
from .fftw import BACKWARD, FORWARD, execute_dft

__all__ = ["available", "pcg", "apply"]

TINY = float(np.finfo(np.float32).tiny)


def available() -> bool:
    """True where the compiled equaliser can run (FFTW's library found)."""
    return fftw.available()


@numba.njit(cache=True, inline="always")
def _execute(plans, i, src, dst):
    """Transform ``src`` into ``dst`` by plan ``plans[i]`` (``plans[0]``: FFTW's execute)."""
    execute_dft(plans[0], plans[i], src, dst)


@numba.njit(cache=True, fastmath=True)
def _dot(a, b):
    acc = 0.0
    for q in range(a.size):
        acc += a[q].real * b[q].real + a[q].imag * b[q].imag
    return acc


@numba.njit(cache=True, fastmath=True)
def _tap_sum(taps, spectra, out, L):
    """out = sum_p conj(C_p) V_p (added to out), then the inverse transform's 1 / L left to the caller."""
    P = taps.shape[0]
    for p in range(P):
        for q in range(L):
            out[q] += np.conj(taps[p, q]) * spectra[p, q]


@numba.njit(cache=True, fastmath=True)
def _adjoint(r, taps, basis, out, scratch, plans):
    """out = H^H r (one frame)."""
    P, L = basis.shape
    rows_a, rows_b, one_a, one_b = scratch
    for p in range(P):
        for q in range(L):
            rows_a[p, q] = np.conj(basis[p, q]) * r[q]
    _execute(plans, 3, rows_a.ctypes.data, rows_b.ctypes.data)
    one_a[:] = 0
    _tap_sum(taps, rows_b, one_a, L)
    _execute(plans, 2, one_a.ctypes.data, one_b.ctypes.data)
    inv = np.float32(1.0 / L)
    for q in range(L):
        out[q] = one_b[q] * inv


@numba.njit(cache=True, fastmath=True)
def _normal(s, taps, basis, n0, mask, out, scratch, plans):
    """out = m (H^H H + N0 I) s (one frame)."""
    P, L = basis.shape
    rows_a, rows_b, one_a, one_b = scratch
    one_a[:] = s
    _execute(plans, 1, one_a.ctypes.data, one_b.ctypes.data)          # S = FFT(s)
    for p in range(P):
        for q in range(L):
            rows_a[p, q] = taps[p, q] * one_b[q]
    _execute(plans, 4, rows_a.ctypes.data, rows_b.ctypes.data)        # L u_p
    inv = np.float32(1.0 / L)
    for q in range(L):
        one_a[q] = basis[0, q] * rows_b[0, q]
    for p in range(1, P):
        for q in range(L):
            one_a[q] += basis[p, q] * rows_b[p, q]
    for p in range(P):
        for q in range(L):
            rows_a[p, q] = np.conj(basis[p, q]) * one_a[q] * inv
    _execute(plans, 3, rows_a.ctypes.data, rows_b.ctypes.data)        # V_p
    for q in range(L):
        one_a[q] = n0 * one_b[q]
    _tap_sum(taps, rows_b, one_a, L)
    _execute(plans, 2, one_a.ctypes.data, one_b.ctypes.data)
    for q in range(L):
        out[q] = one_b[q] * (inv * mask[q])


@numba.njit(cache=True, fastmath=True)
def _apply(spectra, taps, basis, out, rows_a, rows_b, plans):
    """out[f] = H s_f = sum_p b_p IFFT(C_p S_f) for every frame (S_f = FFT(s_f) given)."""
    F, P, L = taps.shape
    inv = np.float32(1.0 / L)
    for f in range(F):
        for p in range(P):
            for q in range(L):
                rows_a[p, q] = taps[f, p, q] * spectra[f, q]
        _execute(plans, 1, rows_a.ctypes.data, rows_b.ctypes.data)
        for q in range(L):
            out[f, q] = basis[0, q] * rows_b[0, q]
        for p in range(1, P):
            for q in range(L):
                out[f, q] += basis[p, q] * rows_b[p, q]
        for q in range(L):
            out[f, q] *= inv


def apply(spectra, taps_fft, basis):
    """complex64 [F, L] spectra S_f = FFT(s_f), [F, P, L] C_p, [P, L] b_p -> complex64 [F, L]
    H s_f = sum_p b_p IFFT(C_p S_f), a frame at a time (``ChannelOperator.apply``)."""
    F, P, L = taps_fft.shape
    out = np.empty((F, L), np.complex64)
    _apply(np.ascontiguousarray(spectra, dtype=np.complex64), np.ascontiguousarray(taps_fft, dtype=np.complex64),
           np.ascontiguousarray(basis, dtype=np.complex64), out, fftw.aligned((P, L)), fftw.aligned((P, L)),
           np.array([fftw.EXECUTE, fftw.plan(L, P, BACKWARD)], dtype=np.uint64))
    return out


@numba.njit(cache=True, fastmath=True)
def _precondition(v, inverse, window, mask, out, windows_a, windows_b, plans):
    """out = m M v (module doc; one frame): windows s h ... s h + 2h - 1 (circular) times the
    window, their spectra times D, inverse transforms, overlap-added times the window."""
    S, two_h = inverse.shape
    h = two_h // 2
    L = S * h
    for s in range(S - 1):
        base = s * h
        for t in range(two_h):
            windows_a[s, t] = v[base + t] * window[t]
    for t in range(h):                                  # the last window wraps to the start
        windows_a[S - 1, t] = v[L - h + t] * window[t]
        windows_a[S - 1, t + h] = v[t] * window[t + h]
    _execute(plans, 5, windows_a.ctypes.data, windows_b.ctypes.data)
    for s in range(S):
        for t in range(two_h):
            windows_b[s, t] *= inverse[s, t]
    _execute(plans, 6, windows_b.ctypes.data, windows_a.ctypes.data)
    for s in range(S):
        before = (s + S - 1) % S
        for t in range(h):
            out[s * h + t] = (windows_a[s, t] * window[t] + windows_a[before, t + h] * window[t + h]) * mask[s * h + t]


@numba.njit(cache=True, fastmath=True)
def _pcg(r, taps, basis, n0, inverse, window, iterations, mask, x_out, relative, plans, rows_a, rows_b, one_a,
         one_b, windows_a, windows_b):
    F, L = r.shape
    scratch = (rows_a, rows_b, one_a, one_b)
    b = np.empty(L, np.complex64)
    res = np.empty(L, np.complex64)
    z = np.empty(L, np.complex64)
    p = np.empty(L, np.complex64)
    Ap = np.empty(L, np.complex64)
    for f in range(F):
        x = x_out[f]
        _adjoint(r[f], taps[f], basis, b, scratch, plans)
        for q in range(L):
            b[q] *= mask[q]
        x[:] = 0
        res[:] = b
        _precondition(res, inverse[f], window, mask, z, windows_a, windows_b, plans)
        p[:] = z
        rz = _dot(res, z)
        for _ in range(iterations):
            _normal(p, taps[f], basis, n0[f], mask, Ap, scratch, plans)
            alpha = np.float32(rz / max(_dot(p, Ap), TINY))
            for q in range(L):
                x[q] += alpha * p[q]
                res[q] -= alpha * Ap[q]
            _precondition(res, inverse[f], window, mask, z, windows_a, windows_b, plans)
            rz_next = _dot(res, z)
            beta = np.float32(rz_next / max(rz, TINY))
            for q in range(L):
                p[q] = z[q] + beta * p[q]
            rz = rz_next
        relative[f] = np.sqrt(_dot(res, res) / max(_dot(b, b), TINY))


def pcg(r, taps_fft, basis, noise_var, inverse, window, iterations: int, mask):
    """complex64 [F, L] right-hand frames (received minus pilot), [F, P, L] C_p, [P, L] b_p,
    float [F] N0, float32 [F, S, 2h] D (with 1 / 2h), [2h] window, K iterations, float
    [L] data mask (ones: the unit prior) ->
    (complex64 [F, L] solutions, float64 [F] relative residuals ||b - A x|| / ||b||)."""
    F, L = r.shape
    P = basis.shape[0]
    S, two_h = inverse.shape[1:]
    plans = np.array([fftw.EXECUTE, fftw.plan(L, 1, FORWARD), fftw.plan(L, 1, BACKWARD), fftw.plan(L, P, FORWARD),
                      fftw.plan(L, P, BACKWARD), fftw.plan(two_h, S, FORWARD), fftw.plan(two_h, S, BACKWARD)],
                     dtype=np.uint64)
    x = np.empty((F, L), np.complex64)
    relative = np.empty(F)
    _pcg(np.ascontiguousarray(r, dtype=np.complex64), np.ascontiguousarray(taps_fft, dtype=np.complex64),
         np.ascontiguousarray(basis, dtype=np.complex64), np.ascontiguousarray(noise_var, dtype=np.float32),
         np.ascontiguousarray(inverse, dtype=np.float32), np.ascontiguousarray(window, dtype=np.float32),
         int(iterations), np.ascontiguousarray(mask, dtype=np.float32), x, relative, plans, fftw.aligned((P, L)), fftw.aligned((P, L)), fftw.aligned((L,)),
         fftw.aligned((L,)), fftw.aligned((S, two_h)), fftw.aligned((S, two_h)))
    return x, relative
