"""CPU backend: numpy arrays, planned FFTs (``arrays.fft``), Numba kernels (cached on disk)."""
from __future__ import annotations

import os
import platform

import numba
import numpy as np

from . import cpu_fit
from .arrays import fft, ifft

__all__ = ["CpuBackend"]


@numba.njit(cache=True)
def _maxlog_llr(z_re, z_im, inv_var, levels, level_bits, out):
    """Per-axis max-log LLR, see ``zakotfs.modulation``. out: float32 [n, 2h]."""
    n = z_re.shape[0]
    n_levels, h = level_bits.shape
    for i in range(n):
        for axis in range(2):
            x = z_re[i] if axis == 0 else z_im[i]
            for j in range(h):
                d0 = np.inf
                d1 = np.inf
                for m in range(n_levels):
                    d = (x - levels[m]) ** 2
                    if level_bits[m, j]:
                        d1 = min(d1, d)
                    else:
                        d0 = min(d0, d)
                out[i, 2 * j + axis] = (d1 - d0) * inv_var[i]


class CpuBackend:
    name = "cpu"

    def __init__(self) -> None:
        self.workers = os.cpu_count() or 1
        self.device = f"CPU {platform.machine()}, {self.workers} cores"

    @property
    def xp(self):
        return np

    def asarray(self, a, dtype=None):
        return np.asarray(a, dtype=dtype)

    def asnumpy(self, a):
        return np.asarray(a)

    fft = staticmethod(fft)
    ifft = staticmethod(ifft)

    def maxlog_llr(self, z, noise_var, constellation):
        """complex [..., n] equalised symbols, noise variance (scalar or [..., n])
        -> float32 [..., n, q] max-log LLRs (positive: bit 0)."""
        z = np.asarray(z)
        inv_var = np.broadcast_to(1.0 / np.asarray(noise_var, dtype=np.float64), z.shape)
        flat = z.reshape(-1)
        out = np.empty((flat.size, constellation.q), dtype=np.float32)
        _maxlog_llr(np.ascontiguousarray(flat.real, dtype=np.float64),
                    np.ascontiguousarray(flat.imag, dtype=np.float64),
                    np.ascontiguousarray(inv_var.reshape(-1)),
                    constellation.levels, constellation.level_bits, out)
        return out.reshape(z.shape + (constellation.q,))

    def sparse_delay_fit(self, coeffs, floor, tau0: float, resolution: int, coarse_stride: int, n_atoms: int,
                         lo: float, hi: float, L: int):
        """``AccurateEstimator.fit_delays`` as one compiled loop a frame (``cpu_fit.omp_delay_fit``;
        the arguments and results of ``GpuBackend.sparse_delay_fit``)."""
        return cpu_fit.omp_delay_fit(coeffs, floor, tau0, resolution, coarse_stride, n_atoms, lo, hi, L)

    def sparse_path_fit(self, coeffs, floor, tau0: float, resolution: int, coarse_stride: int, n_paths: int,
                        lo: float, hi: float, L: int, tones, coarse, tone_ratio: int, rounds: int, final_rounds: int,
                        delay_steps, tone_half: int):
        """``AccurateEstimator.fit_paths`` as one compiled loop a frame (``cpu_fit.omp_path_fit``)."""
        return cpu_fit.omp_path_fit(coeffs, floor, tau0, resolution, coarse_stride, n_paths, lo, hi, L, tones, coarse,
                                    tone_ratio, rounds, final_rounds, delay_steps, tone_half)

    def atom_residual(self, coeffs, amplitudes, delays, tau0: float, L: int):
        """float64 [F]: the residual energy of delay atoms on the tap coefficients
        (``cpu_fit.atom_residual``)."""
        return cpu_fit.atom_residual(coeffs, amplitudes, delays, tau0, L)

    def data_leak(self, amplitudes, delays, gram, lags, weights, L: int):
        """float64 [F]: the data's predicted power in the pilot's snapshots
        (``cpu_fit.data_leak``)."""
        return cpu_fit.data_leak(amplitudes, delays, gram, lags, weights, L)

    def atom_taps_fft(self, amplitudes, delays, L: int, dtype=np.complex64):
        """complex [F, J, P] amplitudes, float [F, J] delays -> complex [F, P, L] C_p(f) in
        ``dtype`` (``cpu_fit.atom_taps_fft``)."""
        return cpu_fit.atom_taps_fft(amplitudes, delays, L, dtype)

    def synchronize(self) -> None:
        pass
