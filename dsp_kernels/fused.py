"""Fused elementwise steps of the CG-LMMSE equaliser and of the LLR output.

Each function is one pass over memory on the GPU (a CuPy ElementwiseKernel or
ReductionKernel, compiled once) and on the CPU (a Numba kernel of ``cpu_fused`` for
C-contiguous complex arrays), and the same expression in array code otherwise, which is
also the reference both are tested against (and what other dtypes than complex64 run on
the GPU). Shapes: F frames, P basis functions, L samples; ``basis`` is
[P, L] (shared by all frames) or [F, P, L].
"""
from __future__ import annotations

import sys
from functools import lru_cache

import numpy as np

from . import cpu_fused
from .arrays import is_gpu_array, xp_of

__all__ = ["real_dot", "frame_mean", "cg_step", "xpby", "taps_product", "basis_sum", "basis_project", "taps_reduce",
           "split_last",
           "overlapped_windows", "overlap_add", "matmul", "capturable_matmul", "quantize_llr", "frequency_shift"]

PARTS = 256
"""Long reductions run in two stages over ``split_last``'s parts: a reduction of L samples
into one value per frame would otherwise run in a single thread block (CuPy gives each
output one block), latency-bound at a few tens of GB/s."""


def split_last(a):
    """[..., L] -> [..., B, L / B] view, B = gcd(L, PARTS): reduce over the last axis, then the
    parts, to keep every multiprocessor busy when there are few frames."""
    parts = np.gcd(a.shape[-1], PARTS)
    return a.reshape(a.shape[:-1] + (parts, a.shape[-1] // parts))


def _fused(a) -> bool:
    return is_gpu_array(a) and a.dtype == np.complex64


def _compiled(*arrays) -> bool:
    """True where the CPU's Numba kernel takes these operands: numpy, C-contiguous, complex."""
    return all(isinstance(a, np.ndarray) and a.flags.c_contiguous and a.dtype.kind == "c" for a in arrays)


@lru_cache(maxsize=None)
def _gpu_kernels():
    cp = sys.modules["cupy"]
    return {
        "real_dot": cp.ReductionKernel(
            "T a, T b", "float32 y", "a.real() * b.real() + a.imag() * b.imag()", "a + b", "y = a", "0",
            "zakotfs_real_dot"),
        "cg_step": cp.ElementwiseKernel(
            "T p, T Ap, float32 alpha", "T x, T res", "x = x + alpha * p; res = res - alpha * Ap",
            "zakotfs_cg_step"),
        "xpby": cp.ElementwiseKernel("T x, T p, float32 beta", "T out", "out = x + beta * p", "zakotfs_xpby"),
        "basis_project": cp.ElementwiseKernel(
            "raw T u, raw T basis, int32 P, int64 L, int64 basis_stride", "raw T v",
            """
            const long long f = i / L, l = i % L;
            const T* b = &basis[f * basis_stride + l];
            const T* uf = &u[f * P * L + l];
            T y = T(0, 0);
            for (int p = 0; p < P; ++p) y += b[p * L] * uf[p * L];
            for (int p = 0; p < P; ++p) v[(f * P + p) * L + l] = conj(b[p * L]) * y;
            """, "zakotfs_basis_project"),
        "taps_reduce": cp.ElementwiseKernel(
            "raw T taps, raw T v, raw T s, raw float32 n0, int32 P, int64 L", "raw T w",
            """
            const long long f = i / L, l = i % L;
            T acc = n0[f] * s[i];
            for (int p = 0; p < P; ++p) acc += conj(taps[(f * P + p) * L + l]) * v[(f * P + p) * L + l];
            w[i] = acc;
            """, "zakotfs_taps_reduce"),
        "quantize_llr": cp.ElementwiseKernel(
            "float32 llr, float32 inv_step", "int8 q", "q = (signed char)fminf(fmaxf(rintf(llr * inv_step), -127.0f), 127.0f)",
            "zakotfs_quantize_llr"),
        "overlapped_windows": cp.ElementwiseKernel(
            "raw T v, raw float32 window, int64 S, int64 h", "T out",
            """
            const long long L = S * h, f = i / (2 * L), t = i % (2 * h), s = (i / (2 * h)) % S;
            out = v[f * L + (s * h + t) % L] * window[t];
            """, "zakotfs_overlapped_windows"),
        "overlap_add": cp.ElementwiseKernel(
            "raw T y, raw float32 window, int64 S, int64 h", "T out",
            """
            const long long L = S * h, f = i / L, q = i % L, s = q / h, t = q % h;
            const long long before = (s + S - 1) % S;
            out = y[(f * S + s) * 2 * h + t] * window[t] + y[(f * S + before) * 2 * h + t + h] * window[t + h];
            """, "zakotfs_overlap_add"),
    }


def real_dot(a, b):
    """complex [F, L], [F, L] -> float [F]: Re sum_q conj(a[q]) b[q] per frame."""
    if _fused(a):
        return _gpu_kernels()["real_dot"](split_last(a), split_last(b), axis=-1).sum(axis=-1)
    if _compiled(a, b):
        return cpu_fused.real_dot(a, b)
    return (a.conj() * b).real.sum(axis=-1)


def frame_mean(a):
    """[F, ...] -> [F]: the mean over all but the first axis, in two stages (``split_last``)."""
    flat = a.reshape(a.shape[0], -1)
    return split_last(flat).sum(axis=-1).sum(axis=-1) / flat.shape[-1]


def quantize_llr(llr, step: float):
    """float32 LLRs [...] -> int8 codes [...]: q = clip(rint(LLR / step), -127, 127), so that
    LLR ~ q step (rounded in float32 on both backends: the same codes)."""
    inv_step = np.float32(1 / step)
    if is_gpu_array(llr) and llr.dtype == np.float32:
        return _gpu_kernels()["quantize_llr"](llr, inv_step)
    xp = xp_of(llr)
    return xp.clip(xp.rint(llr.astype(np.float32, copy=False) * inv_step), -127, 127).astype(np.int8)


def frequency_shift(r, cycles, offset=None):
    """complex [F, L], float64 [F] cycles per sample, complex [F] offset (or None: 0) ->
    complex [F, L]: (r[f, q] - offset[f]) exp(j 2 pi cycles[f] q). On the GPU one pass of
    ``frequency_shift.cu`` (complex64), on the CPU of ``cpu_fused.frequency_shift``."""
    xp = xp_of(r)
    cycles = xp.asarray(cycles, dtype=np.float64)
    if _fused(r):
        from .gpu import launch

        offset = xp.zeros(r.shape[0], r.dtype) if offset is None else xp.ascontiguousarray(offset, dtype=r.dtype)
        out = xp.empty_like(r)
        launch("frequency_shift.cu", "frequency_shift", r.size, xp.ascontiguousarray(r), cycles, offset, out,
               np.int64(r.shape[-1]), np.int64(r.size))
        return out
    if _compiled(r):
        return cpu_fused.frequency_shift(r, cycles, np.zeros(r.shape[0], r.dtype) if offset is None else offset)
    q = xp.arange(r.shape[-1], dtype=np.float64)
    r = r if offset is None else r - offset[:, None]
    return r * xp.exp(2j * np.pi * (cycles[:, None] * q)).astype(r.dtype, copy=False)


def cg_step(x, res, p, Ap, alpha):
    """x + alpha p, res - alpha Ap (alpha float [F]); on the GPU x and res are updated in place."""
    if _fused(x):
        _gpu_kernels()["cg_step"](p, Ap, alpha.astype(np.float32, copy=False)[:, None], x, res)
        return x, res
    if _compiled(x, res, p, Ap):
        return cpu_fused.cg_step(x, res, p, Ap, alpha)
    return x + alpha[:, None] * p, res - alpha[:, None] * Ap


def xpby(x, p, beta):
    """complex [F, L]: x + beta p (beta float [F])."""
    if _fused(x):
        return _gpu_kernels()["xpby"](x, p, beta.astype(np.float32, copy=False)[:, None])
    if _compiled(x, p):
        return cpu_fused.xpby(x, p, beta)
    return x + beta[:, None] * p


def taps_product(taps_fft, spectrum):
    """complex [F, P, L] taps C_p, [F, L] spectrum S -> [F, P, L]: C_p S (H's delay step)."""
    if _compiled(taps_fft, spectrum):
        return cpu_fused.taps_product(taps_fft, spectrum)
    return taps_fft * spectrum[..., None, :]


def basis_sum(basis, u):
    """complex [P, L] or [F, P, L] basis, [F, P, L] u -> [F, L]: sum_p b_p u_p (H's Doppler step)."""
    if _compiled(basis, u):
        return cpu_fused.basis_sum(basis, u)
    return (basis * u).sum(axis=-2)


def basis_project(u, basis):
    """complex [F, P, L] -> [F, P, L]: v_p = conj(b_p) * sum_r b_r u_r (the basis-weighted sum of
    H's output, spread back onto the basis for H^H)."""
    if _fused(u):
        F, P, L = u.shape
        basis = sys.modules["cupy"].ascontiguousarray(basis, dtype=u.dtype)
        v = sys.modules["cupy"].empty_like(u)
        _gpu_kernels()["basis_project"](u, basis, np.int32(P), np.int64(L),
                                        np.int64(0 if basis.ndim == 2 else P * L), v, size=F * L)
        return v
    if _compiled(u, basis):
        return cpu_fused.basis_project(u, basis)
    return basis.conj() * (basis * u).sum(axis=-2, keepdims=True)


def taps_reduce(taps_fft, v, s, noise_var):
    """complex [F, P, L] taps C_p, [F, P, L] spectra V_p, [F, L] spectrum S, float [F] N0
    -> complex [F, L]: sum_p conj(C_p) V_p + N0 S."""
    if _fused(v):
        cp = sys.modules["cupy"]
        F, P, L = v.shape
        w = cp.empty((F, L), dtype=v.dtype)
        _gpu_kernels()["taps_reduce"](cp.ascontiguousarray(taps_fft, dtype=v.dtype), v, s,
                                      cp.ascontiguousarray(noise_var, dtype=np.float32), np.int32(P),
                                      np.int64(L), w, size=F * L)
        return w
    if _compiled(taps_fft, v, s):
        return cpu_fused.taps_reduce(taps_fft, v, s, noise_var)
    return (taps_fft.conj() * v).sum(axis=-2) + noise_var[:, None] * s


def overlapped_windows(v, segments: int, window):
    """complex [F, L] -> [F, S, 2h] (h = L / S): window s holds samples s h ... s h + 2h - 1
    (circular) times ``window`` (float32 [2h])."""
    F, L = v.shape
    h = L // segments
    if _fused(v):
        cp = sys.modules["cupy"]
        out = cp.empty((F, segments, 2 * h), dtype=v.dtype)
        return _gpu_kernels()["overlapped_windows"](v, window, np.int64(segments), np.int64(h), out)
    if _compiled(v):
        return cpu_fused.overlapped_windows(v, segments, np.ascontiguousarray(window))
    xp = np if not is_gpu_array(v) else sys.modules["cupy"]
    blocks = v.reshape(F, segments, h)
    return xp.concatenate([blocks, xp.roll(blocks, -1, axis=1)], axis=-1) * window


def overlap_add(y, window):
    """complex [F, S, 2h] -> [F, S h]: the windows times ``window``, added back in place (the
    adjoint of ``overlapped_windows``)."""
    F, S, two_h = y.shape
    h = two_h // 2
    if _fused(y):
        cp = sys.modules["cupy"]
        out = cp.empty((F, S * h), dtype=y.dtype)
        return _gpu_kernels()["overlap_add"](y, window, np.int64(S), np.int64(h), out)
    if _compiled(y):
        return cpu_fused.overlap_add(y, np.ascontiguousarray(window))
    xp = np if not is_gpu_array(y) else sys.modules["cupy"]
    y = y * window
    return (y[..., :h] + xp.roll(y[..., h:], 1, axis=1)).reshape(F, S * h)


SHORT_INNER = 32
"""Largest inner dimension J that ``matmul`` gives the one-pass kernel (``matmul.cu``, a loop
over J per output element); longer ones go to ``capturable_matmul``."""


def matmul(a, b):
    """complex [..., I, J] @ [..., J, K] -> [..., I, K], batch axes broadcast: BLAS on the CPU;
    on the GPU one pass of ``matmul.cu`` (complex64, J <= SHORT_INNER), else
    ``capturable_matmul`` (CuPy will not capture cuBLAS in a CUDA graph)."""
    if not is_gpu_array(a):
        return np.matmul(a, b)
    if a.dtype == b.dtype == np.complex64 and a.shape[-1] <= SHORT_INNER:
        return _short_matmul(a, b)
    return capturable_matmul(a, b)


def _short_matmul(a, b):
    """``matmul`` in one launch of ``batched_matmul``: each operand contiguous over the
    broadcast batch, or one matrix for all (batch stride 0)."""
    cp = sys.modules["cupy"]
    from .gpu import launch

    (I, J), K = a.shape[-2:], b.shape[-1]
    batch = np.broadcast_shapes(a.shape[:-2], b.shape[:-2])
    n = int(np.prod(batch, dtype=np.int64))

    def operand(m):
        if int(np.prod(m.shape[:-2], dtype=np.int64)) == 1:
            return cp.ascontiguousarray(m), 0
        m = cp.ascontiguousarray(cp.broadcast_to(m, batch + m.shape[-2:]))
        return m, m.shape[-2] * m.shape[-1]
    (a, a_stride), (b, b_stride) = operand(a), operand(b)
    out = cp.empty(batch + (I, K), dtype=np.complex64)
    launch("matmul.cu", "batched_matmul", out.size, a, b, out, np.int64(n), np.int64(I), np.int64(J), np.int64(K),
           np.int64(a_stride), np.int64(b_stride))
    return out


def capturable_matmul(a, b):
    """``a @ b`` in elementwise array code, which a CUDA graph can capture (CuPy will not
    capture cuBLAS): J rank-one updates for a short J, else one broadcast product reduced
    over J. Any array module."""
    if a.shape[-1] > 16:
        return (a[..., :, :, None] * b[..., None, :, :]).sum(axis=-2)
    out = a[..., :, 0, None] * b[..., 0, None, :]
    for j in range(1, a.shape[-1]):
        out += a[..., :, j, None] * b[..., j, None, :]
    return out
