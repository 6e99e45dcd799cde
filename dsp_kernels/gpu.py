"""GPU backend: CuPy arrays, cuFFT (plans cached by CuPy), RawKernels from ``*.cu`` files."""
from __future__ import annotations

from functools import lru_cache
from importlib import resources

import cupy as cp
import numpy as np

from .arrays import fft, ifft

__all__ = ["GpuBackend"]


@lru_cache(maxsize=None)
def _kernel(file: str, name: str, device_id: int) -> cp.RawKernel:
    """Compile ``name`` from ``dsp_kernels/<file>`` once per device (CuPy caches the binary on disk)."""
    source = resources.files("dsp_kernels").joinpath(file).read_text()
    return cp.RawKernel(source, name, options=("-std=c++17",))


THREADS = 256


def launch(file: str, name: str, n: int, *args) -> None:
    """Kernel ``name`` of ``dsp_kernels/<file>`` over ``n`` elements, one thread each, on the
    current stream (so a CUDA graph captures it)."""
    _kernel(file, name, cp.cuda.Device().id)(((n + THREADS - 1) // THREADS,), (THREADS,), args)


@lru_cache(maxsize=None)
def _levels(modulation: str, device_id: int):
    """(levels float32 [L], level_bits uint8 [L, h]) of a constellation, on the device once."""
    from .qam import constellation

    c = constellation(modulation)
    return cp.asarray(c.levels, dtype=cp.float32), cp.asarray(np.ascontiguousarray(c.level_bits))


@lru_cache(maxsize=8)
def _psinc_table(W: int, resolution: int, L: int, device_id: int):
    """float32 [2R + 1, 2W - 1]: the candidate atoms of the delay fit (sparse_fit.cu), once."""
    K, n_taps = 2 * resolution + 1, 2 * W - 1
    table = cp.empty((K, n_taps), dtype=cp.float32)
    _kernel("sparse_fit.cu", "psinc_table", device_id)(
        ((K * n_taps + 255) // 256,), (256,), (np.int32(W), np.int32(resolution), np.int32(L), table))
    return table


@lru_cache(maxsize=None)
def _shared_budget(file: str, name: str, device_id: int) -> int:
    """Bytes of dynamic shared memory a block of kernel ``name`` may opt in to: the device's
    limit less the kernel's static shared arrays."""
    props = cp.cuda.runtime.getDeviceProperties(device_id)
    return int(props["sharedMemPerBlockOptin"]) - _kernel(file, name, device_id).shared_size_bytes


def _fit_placement(W: int, P: int, J: int, budget: int) -> tuple[int, int]:
    """(placement bits, dynamic shared bytes) of ``omp_delay_fit``: its scratch arrays, the
    residual (float2 [P, W], bit 1), the atoms (float64 [J, W], bit 2) and the coefficients
    (float2 [P, W], bit 4), in shared memory greedily in that order while they fit in
    ``budget`` bytes; the others stay in global memory."""
    placement, used = 0, 0
    for bit, size in ((1, 8 * P * W), (2, 8 * J * W), (4, 8 * P * W)):
        if used + size <= budget:
            placement, used = placement | bit, used + size
    return placement, used


class GpuBackend:
    name = "gpu"

    def __init__(self) -> None:
        props = cp.cuda.runtime.getDeviceProperties(cp.cuda.Device().id)
        name = props["name"]
        self.device = name.decode() if isinstance(name, bytes) else str(name)

    @property
    def xp(self):
        return cp

    def asarray(self, a, dtype=None):
        return cp.asarray(a, dtype=dtype)

    def asnumpy(self, a):
        return cp.asnumpy(a)

    fft = staticmethod(fft)
    ifft = staticmethod(ifft)

    def maxlog_llr(self, z, noise_var, constellation):
        """complex [..., n], noise variance (scalar or [..., n]) -> float32 [..., n, q]."""
        z = cp.asarray(z)
        flat = cp.ascontiguousarray(z.reshape(-1), dtype=cp.complex64)
        inv_var = cp.ascontiguousarray(
            cp.broadcast_to(1.0 / cp.asarray(noise_var, dtype=cp.float32), z.shape).reshape(-1))
        levels, level_bits = _levels(constellation.name, cp.cuda.Device().id)
        h = constellation.q // 2
        out = cp.empty((flat.size, constellation.q), dtype=cp.float32)
        launch("maxlog_llr.cu", "maxlog_llr", flat.size, flat, inv_var, levels, level_bits, np.int32(flat.size),
               np.int32(levels.size), np.int32(h), out)
        return out.reshape(z.shape + (constellation.q,))

    # ---- fused kernels of the accurate estimator (sparse_fit.cu); the CPU runs the
    # array code they replace (zakotfs.estimation), which is also their test reference
    MAX_ATOMS, MAX_BASIS, MAX_CANDIDATES = 24, 16, 256

    def sparse_path_fit(self, coeffs, floor, tau0: float, resolution: int, coarse_stride: int, n_paths: int,
                        lo: float, hi: float, L: int, tones, coarse, tone_ratio: int, rounds: int, final_rounds: int,
                        delay_steps, tone_half: int):
        """None: no kernel for ``AccurateEstimator.fit_paths`` yet (its array code runs)."""
        return None

    def atom_residual(self, coeffs, amplitudes, delays, tau0: float, L: int):
        """None: the array code of ``AccurateEstimator.select`` runs."""
        return None

    def data_leak(self, amplitudes, delays, gram, lags, weights, L: int):
        """None: the array code of ``AccurateEstimator.data_leak`` runs."""
        return None

    def sparse_delay_fit(self, coeffs, floor, tau0: float, resolution: int, coarse_stride: int, n_atoms: int,
                         lo: float, hi: float, L: int):
        """``AccurateEstimator.fit_delays`` in one launch (a thread block per frame).

        coeffs: complex [F, W, P] (taps tau0 ... tau0 + W - 1); floor: float [F]; candidate
        offsets (k - R) / R, R = ``resolution``, searched every ``coarse_stride``-th first.
        Returns (amplitudes complex128 [F, J, P],
        delays float64 [F, J], active bool [F, J]), J = n_atoms; None where the sizes exceed
        the kernel's limits.
        """
        F, W, P = coeffs.shape
        K = 2 * resolution + 1
        if n_atoms > self.MAX_ATOMS or P > self.MAX_BASIS or K > self.MAX_CANDIDATES:
            return None
        table = _psinc_table(W, resolution, L, cp.cuda.Device().id)
        coeffs = cp.ascontiguousarray(coeffs, dtype=cp.complex64)
        amplitudes = cp.empty((F, n_atoms, P), dtype=cp.complex128)
        delays = cp.empty((F, n_atoms), dtype=cp.float64)
        active = cp.empty((F, n_atoms), dtype=cp.bool_)
        residuals, coeffs_t = cp.empty((F, P, W), dtype=cp.complex64), cp.empty((F, P, W), dtype=cp.complex64)
        atoms = cp.empty((F, n_atoms, W), dtype=cp.float64)
        device = cp.cuda.Device().id
        kernel = _kernel("sparse_fit.cu", "omp_delay_fit", device)
        placement, shared_bytes = _fit_placement(W, P, n_atoms, _shared_budget("sparse_fit.cu", "omp_delay_fit", device))
        if kernel.max_dynamic_shared_size_bytes < shared_bytes:
            kernel.max_dynamic_shared_size_bytes = shared_bytes
        kernel((F,), (512,),
               (coeffs, cp.ascontiguousarray(floor, dtype=cp.float64), table, np.int32(resolution),
                np.int32(W), np.int32(P), np.int32(coarse_stride), np.int32(n_atoms), np.int32(L), np.float64(tau0),
                np.float64(lo), np.float64(hi), np.int32(placement), residuals, atoms, coeffs_t, amplitudes, delays,
                active),
               shared_mem=shared_bytes)
        return amplitudes, delays, active

    def atom_taps_fft(self, amplitudes, delays, L: int, dtype=np.complex64):
        """``ChannelOperator.from_delay_doppler_atoms``' taps: complex [F, J, P] amplitudes,
        float [F, J] delays -> complex64 [F, P, L] C_p(f) (whatever ``dtype``); None beyond
        the kernel's limits."""
        F, J, P = amplitudes.shape
        if P > self.MAX_BASIS:
            return None
        out = cp.empty((F, P, L), dtype=cp.complex64)
        launch("sparse_fit.cu", "atom_taps_fft", F * L, cp.ascontiguousarray(amplitudes, dtype=cp.complex128),
               cp.ascontiguousarray(delays, dtype=cp.float64), np.int32(J), np.int32(P), np.int32(L), np.int32(F), out)
        return out

    def synchronize(self) -> None:
        cp.cuda.get_current_stream().synchronize()
