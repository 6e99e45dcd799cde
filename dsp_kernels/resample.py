"""Band-limited time scaling of a block of samples (any array module).

For x [..., L] read as one period of a band-limited signal (its DFT X[k], k in
[-L/2, L/2) after ``fftshift``), ``TimeScale(L, a)`` evaluates it at the instants a m + b:

    y[m] = (1/L) sum_k X[k] exp(j 2 pi k (a m + b) / L),        m in [0, L),

(the offset b, a fraction of a sample or more, multiplies X[k] by exp(j 2 pi k b / L)).

This is a chirp-z transform of the spectrum, computed by Bluestein's identity
k m = (k^2 + m^2 - (m - k)^2) / 2: with c[n] = exp(j pi a n^2 / L),

    y[m] = (1/L) c[m] e^{-j 2 pi h a m / L} sum_k' (X'[k'] c[k']) conj(c[m - k']),   h = L // 2,

X' the shifted spectrum (k' = k + h), a linear convolution done with FFTs of
n_fft >= 2L - 1 points. The chirp's spectrum depends on (L, a) only and is made once. Cost
per call: one FFT of L points and two of n_fft, three elementwise passes.
"""
from __future__ import annotations

import numpy as np

from .arrays import fft, ifft

__all__ = ["TimeScale"]


class TimeScale:
    """y = x evaluated at a m (module doc), for blocks of ``L`` samples; a near 1.

    Parameters
    ----------
    L : int
    a : float
        The scale: a > 1 reads the block faster (a sampling clock that runs slow by a - 1).
    xp : numpy or cupy
    dtype : complex dtype of the constants and of the output
    """

    def __init__(self, L: int, a: float, xp=np, dtype=np.complex64):
        if L < 2 or not np.isfinite(a) or a <= 0:
            raise ValueError(f"TimeScale needs L >= 2 and a finite a > 0, got L={L}, a={a}")
        self.L, self.a = int(L), float(a)
        self.n_fft = 1 << (2 * self.L - 2).bit_length()
        n = np.arange(self.L, dtype=np.float64)
        turns = np.mod(self.a * n * n / (2 * self.L), 1.0)               # c[n] = exp(j 2 pi turns)
        chirp = np.exp(2j * np.pi * turns)
        kernel = np.zeros(self.n_fft, complex)                             # conj(c[n]), n in (-L, L)
        kernel[:self.L] = chirp.conj()
        kernel[self.n_fft - self.L + 1:] = chirp[1:][::-1].conj()
        h = self.L // 2
        post = chirp * np.exp(-2j * np.pi * np.mod(h * self.a * n / self.L, 1.0)) / self.L
        self._pre = xp.asarray(chirp, dtype=dtype)
        self._kernel_fft = xp.asarray(np.fft.fft(kernel), dtype=dtype)
        self._post = xp.asarray(post, dtype=dtype)
        self.xp = xp

    def __call__(self, x, offset: float = 0.0):
        """complex [..., L] -> complex [..., L]: y[m] = x(a m + offset)."""
        xp = self.xp
        if x.shape[-1] != self.L:
            raise ValueError(f"expected blocks of {self.L} samples, got {x.shape[-1]}")
        spectrum = xp.fft.fftshift(fft(x, axis=-1), axes=-1) * self._pre
        if offset:
            k = xp.arange(self.L) - self.L // 2
            spectrum = spectrum * xp.exp((2j * np.pi * offset / self.L) * k).astype(spectrum.dtype)
        convolved = ifft(fft(spectrum, axis=-1, n=self.n_fft) * self._kernel_fft, axis=-1)
        return (convolved[..., :self.L] * self._post).astype(self._post.dtype, copy=False)
