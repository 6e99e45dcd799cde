"""The accurate estimator's fused kernels on the CPU: Numba twins of ``sparse_fit.cu``.

``omp_delay_fit``  ``AccurateEstimator.fit_delays`` (``zakotfs.estimation``, the array code
                   and the reference) for each frame in one compiled loop: per iteration
                   the tap of largest residual energy in [lo, hi], the matched-filter
                   score sum_p |a^H R_p|^2 / |a|^2 of candidate delays
                   tau0 + peak + (k - R) / R (clipped to [lo, hi]) on the coarse grid
                   k = 0, stride, ..., 2R and then strictly between the best coarse point's
                   neighbours, a new atom active while its score exceeds the frame's floor
                   (and the previous atom was active), and the active atoms refitted by
                   ridge least squares (A^T A + 1e-9 trace(A^T A) I) X = A^T C (Cholesky).
                   The fit of a frame ends at its first inactive atom; later delays repeat
                   that atom's, as in the GPU kernel.
``atom_taps_fft``  C_p(f) = sum_j a_jp exp(-j 2 pi nu(f) delta_j / L) (cos(pi delta_j) at the
                   Nyquist bin of an even L), nu(f) the DFT frequency of bin f (fftfreq
                   order): ``DelayAtoms.taps_fft``. Atoms of zero amplitude are skipped;
                   the phases are computed in float64 (``BLOCK``), the sum in the output's
                   precision.
"""
from __future__ import annotations

from functools import lru_cache

import numba
import numpy as np

__all__ = ["omp_delay_fit", "atom_taps_fft"]

RIDGE = 1e-9
"""The refit's ridge, relative to trace(A^T A) (``AccurateEstimator._refit``)."""


@numba.njit(cache=True, inline="always")
def _periodic_sinc(x, L):
    """``zakotfs.channel_operator.periodic_sinc`` for one real x (float64)."""
    t = x / L
    den = 1.0 if t == 0.0 else np.sin(np.pi * t) / (np.pi * t)
    if L % 2:
        num = 1.0 if x == 0.0 else np.sin(np.pi * x) / (np.pi * x)
        return num / den
    y = x * (L - 1.0) / L
    core = 1.0 if y == 0.0 else np.sin(np.pi * y) / (np.pi * y)
    return (L - 1.0) / L * core / den + np.cos(np.pi * x) / L


@numba.njit(cache=True)
def _best_candidate(first, step, count, peak, residual, tau0, R, L, lo, hi, atom, table):
    """(k, delay, score) of the best of ``count`` candidates k_i = clip(first + i step, 0, 2R)
    at delay clip(tau0 + peak + (k_i - R) / R, lo, hi); ties to the first. An unclipped
    candidate's atom is read from ``table`` (``psinc_table``), a clipped one's computed.
    ``atom``: float64 [W] scratch."""
    W, P = residual.shape
    best_k, best_delay, best_score = 0, 0.0, -1.0
    for i in range(count):
        k = min(max(first + i * step, 0), 2 * R)
        shifted = tau0 + peak + (k - R) / R
        delay = min(max(shifted, lo), hi)
        energy = 0.0
        if delay == shifted:
            offset = W - 1 - peak
            for w in range(W):
                a = table[k, w + offset]
                atom[w] = a
                energy += a * a
        else:
            for w in range(W):
                a = _periodic_sinc(tau0 + w - delay, L)
                atom[w] = a
                energy += a * a
        score = 0.0
        for p in range(P):
            re = 0.0
            im = 0.0
            for w in range(W):
                re += atom[w] * residual[w, p].real
                im += atom[w] * residual[w, p].imag
            score += re * re + im * im
        score /= energy
        if score > best_score:
            best_k, best_delay, best_score = k, delay, score
    return best_k, best_delay, best_score


@numba.njit(cache=True)
def _psinc_table(W, R, L):
    table = np.empty((2 * R + 1, 2 * W - 1))
    for k in range(2 * R + 1):
        for n in range(2 * W - 1):
            table[k, n] = _periodic_sinc(n - (W - 1) - (k - R) / R, L)
    return table


@lru_cache(maxsize=8)
def psinc_table(W: int, R: int, L: int) -> np.ndarray:
    """float64 [2R + 1, 2W - 1]: periodic_sinc(n - (W - 1) - (k - R) / R, L), the candidate
    atoms of the delay fit wherever the candidate is not clipped (a shift of these; the
    GPU's ``psinc_table``), made once."""
    return _psinc_table(W, R, L)


@numba.njit(cache=True)
def _ridge_solve(gram, rhs, n, chol, sol):
    """sol[:n] = (gram[:n, :n] + RIDGE trace I)^{-1} rhs[:n] by Cholesky (gram real SPD,
    rhs complex [n, P]); ``chol`` float64 [J, J] scratch."""
    trace = 0.0
    for i in range(n):
        trace += gram[i, i]
    for c in range(n):
        for r in range(c, n):
            v = gram[r, c] + (RIDGE * trace if r == c else 0.0)
            for m in range(c):
                v -= chol[r, m] * chol[c, m]
            if r == c:
                chol[c, c] = np.sqrt(v)
            else:
                chol[r, c] = v / chol[c, c]
    P = rhs.shape[1]
    for p in range(P):
        for r in range(n):                       # forward: L y = b
            v = rhs[r, p]
            for m in range(r):
                v -= chol[r, m] * sol[m, p]
            sol[r, p] = v / chol[r, r]
        for r in range(n - 1, -1, -1):           # backward: L^T x = y
            v = sol[r, p]
            for m in range(r + 1, n):
                v -= chol[m, r] * sol[m, p]
            sol[r, p] = v / chol[r, r]


@numba.njit(cache=True)
def _omp_delay_fit(coeffs, floor, tau0, R, stride, L, lo, hi, table, amplitudes, delays, active):
    F, W, P = coeffs.shape
    J = delays.shape[1]
    for f in range(F):
        C = coeffs[f].astype(np.complex128)                  # [W, P]
        residual = C.copy()
        A = np.zeros((J, W))
        gram = np.zeros((J, J))
        chol = np.zeros((J, J))
        rhs = np.zeros((J, P), np.complex128)
        sol = np.zeros((J, P), np.complex128)
        atom = np.empty(W)
        n = 0
        for j in range(J):
            best_e, best_w = -1.0, 0
            for w in range(W):
                if tau0 + w < lo or tau0 + w > hi:
                    continue
                e = 0.0
                for p in range(P):
                    e += residual[w, p].real ** 2 + residual[w, p].imag ** 2
                if e > best_e:
                    best_e, best_w = e, w
            kc, _, _ = _best_candidate(0, stride, 2 * R // stride + 1, best_w, residual, tau0, R, L, lo, hi, atom,
                                       table)
            _, delay, score = _best_candidate(kc - stride + 1, 1, 2 * stride - 1, best_w, residual, tau0, R, L,
                                              lo, hi, atom, table)
            if not (score > floor[f]):
                for i in range(j, J):
                    delays[f, i] = delay
                    active[f, i] = False
                break
            delays[f, j] = delay
            active[f, j] = True
            for w in range(W):
                A[j, w] = _periodic_sinc(tau0 + w - delay, L)
            for t in range(j + 1):
                x = 0.0
                for w in range(W):
                    x += A[t, w] * A[j, w]
                gram[t, j] = x
                gram[j, t] = x
            for p in range(P):
                acc = 0j
                for w in range(W):
                    acc += A[j, w] * C[w, p]
                rhs[j, p] = acc
            n = j + 1
            _ridge_solve(gram, rhs, n, chol, sol)
            for w in range(W):
                for p in range(P):
                    v = C[w, p]
                    for m in range(n):
                        v -= A[m, w] * sol[m, p]
                    residual[w, p] = v
        for j in range(J):
            for p in range(P):
                amplitudes[f, j, p] = sol[j, p] if j < n else 0j


def omp_delay_fit(coeffs, floor, tau0: float, resolution: int, coarse_stride: int, n_atoms: int,
                  lo: float, hi: float, L: int):
    """complex [F, W, P] tap coefficients (taps tau0 ... tau0 + W - 1), float [F] score floors
    -> (amplitudes complex128 [F, J, P], delays float64 [F, J], active bool [F, J]),
    J = ``n_atoms`` (module doc)."""
    coeffs = np.ascontiguousarray(coeffs)
    F, _, P = coeffs.shape
    amplitudes = np.zeros((F, n_atoms, P), np.complex128)
    delays = np.zeros((F, n_atoms))
    active = np.zeros((F, n_atoms), np.bool_)
    table = psinc_table(coeffs.shape[1], int(resolution), int(L))
    _omp_delay_fit(coeffs, np.ascontiguousarray(floor, dtype=np.float64), float(tau0), int(resolution),
                   int(coarse_stride), int(L), float(lo), float(hi), table, amplitudes, delays, active)
    return amplitudes, delays, active


BLOCK = 64
"""``atom_taps_fft`` forms exp(-j 2 pi f delta / L) as coarse[f // BLOCK] x fine[f % BLOCK]
(2 L / BLOCK exact exponentials a delay and L products, float64)."""


@numba.njit(cache=True, fastmath=True)
def _atom_taps_fft(amplitudes, delays, out):
    F, J, P = amplitudes.shape
    L = out.shape[2]
    blocks = -(-L // BLOCK)
    fine = np.empty(BLOCK, np.complex128)
    coarse = np.empty(blocks, np.complex128)
    ramp = np.empty(blocks * BLOCK, np.complex128)
    narrow = np.empty(L, out.dtype)
    for f in range(F):
        acc = out[f]
        acc[:] = 0
        for j in range(J):
            a = amplitudes[f, j].astype(out.dtype)
            if np.all(a == 0):
                continue
            d = delays[f, j]
            for k in range(BLOCK):
                fine[k] = np.exp(-2j * np.pi * (d * k / L))
            for m in range(blocks):
                turns = d * (m * BLOCK) / L
                coarse[m] = np.exp(-2j * np.pi * (turns - np.rint(turns)))
            for m in range(blocks):
                for k in range(BLOCK):
                    ramp[m * BLOCK + k] = coarse[m] * fine[k]
            negative = np.exp(2j * np.pi * (d - np.rint(d)))      # nu = f - L from f = L // 2 + 1 on
            for b in range(L // 2 + 1, L):
                ramp[b] *= negative
            if L % 2 == 0:
                ramp[L // 2] = np.cos(np.pi * d)
            for b in range(L):
                narrow[b] = ramp[b]
            for p in range(P):
                for b in range(L):
                    acc[p, b] += a[p] * narrow[b]


def atom_taps_fft(amplitudes, delays, L: int, dtype=np.complex64):
    """complex [F, J, P] amplitudes, float [F, J] delays (samples) -> complex [F, P, L] C_p(f)
    (module doc)."""
    amplitudes = np.ascontiguousarray(amplitudes, dtype=np.complex128)
    out = np.empty((amplitudes.shape[0], amplitudes.shape[2], L), dtype)
    _atom_taps_fft(amplitudes, np.ascontiguousarray(delays, dtype=np.float64), out)
    return out
