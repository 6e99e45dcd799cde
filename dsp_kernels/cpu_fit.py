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
``omp_path_fit``   ``AccurateEstimator.fit_paths`` (the array code and the reference) for
                   each frame in one compiled loop: paths (a delay atom times one Doppler
                   tone), the same searches, refinements and stopping rule; the refit solves
                   the complex Hermitian normal equations (Cholesky, ridge 1e-9 trace). The
                   fit of a frame ends at its first inactive path (no GPU kernel yet: the
                   GPU runs the array code).
``atom_residual``  sum |C - sum_j a(delta_j) x_j^T|^2 a frame: ``AccurateEstimator.select``'s
                   residual energies.
``data_leak``      sum_t s(t) sum_pq conj(A_p(t)) G_pq A_q(t), A_p(t) = sum_j a_jp
                   psinc(t - delta_j) at integer lags t: ``AccurateEstimator.data_leak``.
                   For integer t, psinc(t - delta) = (-1)^(t+1) sin(pi delta) cot(pi (t -
                   delta) / L) / L (even L; 1 / sin for odd L), and the factor (-1)^(t+1),
                   common to the atoms, leaves |A(t)|^2: one trigonometric function a lag and
                   atom. Lags of zero weight and atoms of zero amplitude are skipped.
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

__all__ = ["omp_delay_fit", "omp_path_fit", "atom_residual", "data_leak", "atom_taps_fft"]

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


ATOM_STEPS = 64
"""``omp_path_fit`` reads an atom's values from a table at steps 1 / ATOM_STEPS sample where
the delay lies on that grid (the searches' candidates do: 1 / resolution steps, 1/64 in the
refinements, the integer ends of the fit range), else computes it."""


@numba.njit(cache=True)
def _fine_psinc_table(W, L):
    half = (W + 1) * ATOM_STEPS
    table = np.empty(2 * half + 1)
    for i in range(2 * half + 1):
        table[i] = _periodic_sinc((i - half) / ATOM_STEPS, L)
    return table


@lru_cache(maxsize=8)
def fine_psinc_table(W: int, L: int) -> np.ndarray:
    """float64 [2 (W + 1) ATOM_STEPS + 1]: periodic_sinc(i / ATOM_STEPS, L), made once."""
    return _fine_psinc_table(W, L)


@numba.njit(cache=True)
def _fill_atom(out, tau0, delay, L, table):
    """out[w] = periodic_sinc(tau0 + w - delay, L), w < out.size: read from ``table`` at
    stride ATOM_STEPS where tau0 - delay lies on its grid, else computed -> sum out[w]^2."""
    W = out.size
    half = (table.size - 1) // 2
    m = (tau0 - delay) * ATOM_STEPS
    i = int(np.floor(m + 0.5))
    energy = 0.0
    if m == i and -half <= i and i + (W - 1) * ATOM_STEPS <= half:
        for w in range(W):
            a = table[i + w * ATOM_STEPS + half]
            out[w] = a
            energy += a * a
    else:
        for w in range(W):
            a = _periodic_sinc(tau0 + w - delay, L)
            out[w] = a
            energy += a * a
    return energy


@numba.njit(cache=True)
def _hermitian_solve(gram, rhs, n, chol, sol):
    """sol[:n] = (gram[:n, :n] + RIDGE trace I)^{-1} rhs[:n] by Cholesky (gram complex
    Hermitian positive definite [K, K], rhs complex [K]); ``chol`` complex [K, K] scratch."""
    trace = 0.0
    for i in range(n):
        trace += gram[i, i].real
    for c in range(n):
        for r in range(c, n):
            v = gram[r, c] + (RIDGE * trace if r == c else 0.0)
            for m in range(c):
                v -= chol[r, m] * np.conj(chol[c, m])
            if r == c:
                chol[c, c] = np.sqrt(v.real)
            else:
                chol[r, c] = v / chol[c, c].real
    for r in range(n):                           # forward: L y = b
        v = rhs[r]
        for m in range(r):
            v -= chol[r, m] * sol[m]
        sol[r] = v / chol[r, r].real
    for r in range(n - 1, -1, -1):               # backward: L^H x = y
        v = sol[r]
        for m in range(r + 1, n):
            v -= np.conj(chol[m, r]) * sol[m]
        sol[r] = v / chol[r, r].real


@numba.njit(cache=True)
def _path_refit(C, n, tau0, L, fine, tones, delays, index, A, gram, rhs, chol, h, residual):
    """Least squares of the first n paths' amplitudes h; A (their atoms) and the residual
    C - sum_k h_k a_k d_k^T updated."""
    W, P = C.shape
    for j in range(n):
        _fill_atom(A[j], tau0, delays[j], L, fine)
    for j in range(n):
        for m in range(n):
            aa = 0.0
            for w in range(W):
                aa += A[j, w] * A[m, w]
            dd = 0j
            for p in range(P):
                dd += np.conj(tones[p, index[j]]) * tones[p, index[m]]
            gram[j, m] = aa * dd
        acc = 0j
        for w in range(W):
            s = 0j
            for p in range(P):
                s += C[w, p] * np.conj(tones[p, index[j]])
            acc += A[j, w] * s
        rhs[j] = acc
    _hermitian_solve(gram, rhs, n, chol, h)
    residual[:, :] = C
    for j in range(n):
        for p in range(P):
            hd = h[j] * tones[p, index[j]]
            for w in range(W):
                residual[w, p] -= A[j, w] * hd


@numba.njit(cache=True)
def _path_round(n, tau0, L, fine, lo, hi, tones, delay_steps, tone_half, delays, index, A, h, residual,
                new_delays, new_index, y, x, atom):
    """One refinement of the first n paths, all from the same residual (``fit_paths``) ->
    whether any moved (if none did, the fit is at a fixed point of the refinement and the
    rounds left would change nothing). Path j's own contribution h_j a_j d_j^T is added back
    in the projections: a_j^T R + h_j |a_j|^2 d_j and R d^* + h_j (d_j . d^*) a_j."""
    W, P = residual.shape
    G = tones.shape[1]
    for j in range(n):
        energy = 0.0
        for w in range(W):
            energy += A[j, w] * A[j, w]
        for p in range(P):
            acc = 0j
            for w in range(W):
                acc += A[j, w] * residual[w, p]
            y[p] = acc + h[j] * energy * tones[p, index[j]]
        best_s, best_i = -1.0, 0
        for t in range(-tone_half, tone_half + 1):
            i = min(max(index[j] + t, 0), G - 1)
            acc = 0j
            for p in range(P):
                acc += y[p] * np.conj(tones[p, i])
            s = acc.real ** 2 + acc.imag ** 2
            if s > best_s:
                best_s, best_i = s, i
        cross = 0j
        for p in range(P):
            cross += tones[p, index[j]] * np.conj(tones[p, best_i])
        cross *= h[j]
        for w in range(W):
            acc = 0j
            for p in range(P):
                acc += residual[w, p] * np.conj(tones[p, best_i])
            x[w] = acc + cross * A[j, w]
        best_s, best_d = -1.0, 0.0
        for c in range(delay_steps.size):
            d = min(max(delays[j] + delay_steps[c], lo), hi)
            energy = _fill_atom(atom, tau0, d, L, fine)
            acc = 0j
            for w in range(W):
                acc += atom[w] * x[w]
            s = (acc.real ** 2 + acc.imag ** 2) / energy
            if s > best_s:
                best_s, best_d = s, d
        new_delays[j] = best_d
        new_index[j] = best_i
    moved = False
    for j in range(n):
        moved |= delays[j] != new_delays[j] or index[j] != new_index[j]
        delays[j] = new_delays[j]
        index[j] = new_index[j]
    return moved


@numba.njit(cache=True)
def _omp_path_fit(coeffs, floor, tau0, R, stride, L, lo, hi, table, fine_table, tones, coarse, ratio, rounds,
                  final_rounds, delay_steps, tone_half, amplitudes, delays_out, active):
    F, W, P = coeffs.shape
    K = delays_out.shape[1]
    Gc = coarse.shape[0]
    G = tones.shape[1]
    for f in range(F):
        C = coeffs[f].astype(np.complex128)
        residual = C.copy()
        A = np.zeros((K, W))
        gram = np.zeros((K, K), np.complex128)
        chol = np.zeros((K, K), np.complex128)
        rhs = np.zeros(K, np.complex128)
        h = np.zeros(K, np.complex128)
        delays = np.zeros(K)
        index = np.zeros(K, np.int64)
        new_delays = np.zeros(K)
        new_index = np.zeros(K, np.int64)
        x = np.empty((W, 1), np.complex128)
        xr = np.empty(W, np.complex128)
        y = np.empty(P, np.complex128)
        atom = np.empty(W)
        n = 0
        for k in range(K):
            best_e, best_w, best_g = -1.0, 0, 0
            for w in range(W):
                if tau0 + w < lo or tau0 + w > hi:
                    continue
                for g in range(Gc):
                    acc = 0j
                    for p in range(P):
                        acc += residual[w, p] * np.conj(tones[p, coarse[g]])
                    e = acc.real ** 2 + acc.imag ** 2
                    if e > best_e:
                        best_e, best_w, best_g = e, w, g
            for w in range(W):
                acc = 0j
                for p in range(P):
                    acc += residual[w, p] * np.conj(tones[p, coarse[best_g]])
                x[w, 0] = acc
            kc, _, _ = _best_candidate(0, stride, 2 * R // stride + 1, best_w, x, tau0, R, L, lo, hi, atom, table)
            _, delay, _ = _best_candidate(kc - stride + 1, 1, 2 * stride - 1, best_w, x, tau0, R, L, lo, hi, atom,
                                          table)
            _fill_atom(atom, tau0, delay, L, fine_table)
            for p in range(P):
                acc = 0j
                for w in range(W):
                    acc += atom[w] * residual[w, p]
                y[p] = acc
            best_s, fine = -1.0, 0
            for t in range(1 - ratio, ratio):
                i = min(max(coarse[best_g] + t, 0), G - 1)
                acc = 0j
                for p in range(P):
                    acc += y[p] * np.conj(tones[p, i])
                s = acc.real ** 2 + acc.imag ** 2
                if s > best_s:
                    best_s, fine = s, i
            for w in range(W):
                acc = 0j
                for p in range(P):
                    acc += residual[w, p] * np.conj(tones[p, fine])
                x[w, 0] = acc
            peak = int(np.floor(delay + 0.5) - tau0)
            kc, _, _ = _best_candidate(0, stride, 2 * R // stride + 1, peak, x, tau0, R, L, lo, hi, atom, table)
            _, delay, _ = _best_candidate(kc - stride + 1, 1, 2 * stride - 1, peak, x, tau0, R, L, lo, hi, atom,
                                          table)
            energy = _fill_atom(atom, tau0, delay, L, fine_table)
            acc = 0j
            for w in range(W):
                acc += atom[w] * x[w, 0]
            score = (acc.real ** 2 + acc.imag ** 2) / energy
            if not (score > floor[f]):
                for i in range(k, K):
                    delays_out[f, i] = delay
                break
            delays[k] = delay
            index[k] = fine
            n = k + 1
            _path_refit(C, n, tau0, L, fine_table, tones, delays, index, A, gram, rhs, chol, h, residual)
            for _ in range(rounds):
                if not _path_round(n, tau0, L, fine_table, lo, hi, tones, delay_steps, tone_half, delays, index, A, h,
                                   residual, new_delays, new_index, y, xr, atom):
                    break
                _path_refit(C, n, tau0, L, fine_table, tones, delays, index, A, gram, rhs, chol, h, residual)
        for _ in range(final_rounds):
            if not _path_round(n, tau0, L, fine_table, lo, hi, tones, delay_steps, tone_half, delays, index, A, h,
                               residual, new_delays, new_index, y, xr, atom):
                break
            _path_refit(C, n, tau0, L, fine_table, tones, delays, index, A, gram, rhs, chol, h, residual)
        for j in range(K):
            active[f, j] = j < n
            if j < n:
                delays_out[f, j] = delays[j]
            for p in range(P):
                amplitudes[f, j, p] = h[j] * tones[p, index[j]] if j < n else 0j


def omp_path_fit(coeffs, floor, tau0: float, resolution: int, coarse_stride: int, n_paths: int,
                 lo: float, hi: float, L: int, tones, coarse, tone_ratio: int, rounds: int, final_rounds: int,
                 delay_steps, tone_half: int):
    """complex [F, W, P] tap coefficients (taps tau0 ... tau0 + W - 1), float [F] score floors,
    complex [P, G] unit tones d(nu) and int [Gc] their coarse columns
    -> (amplitudes complex128 [F, K, P] = h_k d(nu_k), delays float64 [F, K], active bool
    [F, K]), K = ``n_paths``: ``AccurateEstimator.fit_paths`` a frame at a time."""
    coeffs = np.ascontiguousarray(coeffs)
    F, _, P = coeffs.shape
    amplitudes = np.zeros((F, n_paths, P), np.complex128)
    delays = np.zeros((F, n_paths))
    active = np.zeros((F, n_paths), np.bool_)
    table = psinc_table(coeffs.shape[1], int(resolution), int(L))
    _omp_path_fit(coeffs, np.ascontiguousarray(floor, dtype=np.float64), float(tau0), int(resolution),
                  int(coarse_stride), int(L), float(lo), float(hi), table, fine_psinc_table(coeffs.shape[1], int(L)),
                  np.ascontiguousarray(tones, dtype=np.complex128), np.ascontiguousarray(coarse, dtype=np.int64),
                  int(tone_ratio), int(rounds), int(final_rounds), np.ascontiguousarray(delay_steps, dtype=np.float64),
                  int(tone_half), amplitudes, delays, active)
    return amplitudes, delays, active


@numba.njit(cache=True)
def _atom_residual(coeffs, amplitudes, delays, tau0, L, fine, out):
    F, W, P = coeffs.shape
    J = delays.shape[1]
    atom = np.empty(W)
    residual = np.empty((W, P), np.complex128)
    for f in range(F):
        for w in range(W):
            for p in range(P):
                residual[w, p] = coeffs[f, w, p]
        for j in range(J):
            if np.all(amplitudes[f, j] == 0):
                continue
            _fill_atom(atom, tau0, delays[f, j], L, fine)
            for w in range(W):
                for p in range(P):
                    residual[w, p] -= atom[w] * amplitudes[f, j, p]
        acc = 0.0
        for w in range(W):
            for p in range(P):
                acc += residual[w, p].real ** 2 + residual[w, p].imag ** 2
        out[f] = acc


@numba.njit(cache=True)
def _data_leak(amplitudes, delays, gram, lags, weights, L, out):
    F, J, P = amplitudes.shape
    A = np.empty(P, np.complex128)
    live = np.empty(J, np.bool_)
    sin_delay = np.empty(J)
    for f in range(F):
        for j in range(J):
            live[j] = not np.all(amplitudes[f, j] == 0)
            sin_delay[j] = np.sin(np.pi * delays[f, j])
        acc = 0.0
        for i in range(lags.size):
            if weights[i] == 0.0:
                continue
            A[:] = 0
            for j in range(J):
                if not live[j]:
                    continue
                x = lags[i] - delays[f, j]
                if x == 0.0:
                    atom = 1.0 if int(lags[i]) % 2 else -1.0          # 1 / (-1)^(t + 1)
                elif L % 2:
                    atom = sin_delay[j] / (L * np.sin(np.pi * x / L))
                else:
                    atom = sin_delay[j] / (L * np.tan(np.pi * x / L))
                for p in range(P):
                    A[p] += atom * amplitudes[f, j, p]
            power = 0.0
            for p in range(P):
                for q in range(P):
                    power += (np.conj(A[p]) * gram[p, q] * A[q]).real
            acc += weights[i] * power
        out[f] = acc


def data_leak(amplitudes, delays, gram, lags, weights, L: int):
    """complex [F, J, P] amplitudes, float [F, J] delays, complex [P, P] basis Gram matrix,
    float [T] integer lags, float [T] their weights -> float64 [F]: ``AccurateEstimator.data_leak``."""
    out = np.empty(amplitudes.shape[0])
    _data_leak(np.ascontiguousarray(amplitudes, dtype=np.complex128), np.ascontiguousarray(delays, dtype=np.float64),
               np.ascontiguousarray(gram, dtype=np.complex128), np.ascontiguousarray(lags, dtype=np.float64),
               np.ascontiguousarray(weights, dtype=np.float64), int(L), out)
    return out


def atom_residual(coeffs, amplitudes, delays, tau0: float, L: int):
    """complex [F, W, P] tap coefficients (taps tau0 ... tau0 + W - 1), complex [F, J, P]
    amplitudes, float [F, J] delays -> float64 [F]: sum |C - sum_j a(delta_j) x_j^T|^2,
    a the periodic-sinc atoms (``AccurateEstimator.select``). Atoms of zero amplitude are
    skipped."""
    coeffs = np.ascontiguousarray(coeffs)
    out = np.empty(coeffs.shape[0])
    _atom_residual(coeffs, np.ascontiguousarray(amplitudes, dtype=np.complex128),
                   np.ascontiguousarray(delays, dtype=np.float64), float(tau0), int(L),
                   fine_psinc_table(coeffs.shape[1], int(L)), out)
    return out
