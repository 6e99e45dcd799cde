"""DC offset (a zero-IF front end's carrier leakage): detected per frame in the pilot's
guard and removed before anything else reads the frame.

A constant c added to the received samples is, after the forward Zak transform, sqrt(N) c
on every delay bin of Doppler bin 0: all its energy lands on 1/N of the DD cells, the
data there and the pilot's guard, where the channel estimate reads it as a static tap at
every delay. At 20 dB below the signal it multiplied the errors by 15 on the demo grid.

The guard's noise-only samples, r[k_p + tau + nM] for tau in [max_delay - g_neg, -1]
(after the data's delay spread, before the channel's first path), hold c + noise + the
tails of the pilot's response, which turn with e^{j2pi n l_p/N}. Their DFT over the N
periods, S[tau, b], puts c at bin 0 (N c) and the tails near bin l_p, so

    c_hat = mean_tau S[tau, 0] / N,     var(c_hat) = N0 / n_s      (n_s = taus x N samples),

and N0 = median |S|^2 / (N ln 2) over all the cells (exponential with mean N N0 where only
noise is: the median ignores the DC column and the pilot's few bins). Subtracting an
estimate that was not needed would put its error on the Doppler-0 cells, N times its power
there, so c_hat is removed only where it is detected: |c_hat|^2 > DETECTION x N0 / n_s.
"""
from __future__ import annotations

import numpy as np

from dsp_kernels import fft, xp_of

from .config import FrameConfig

__all__ = ["DETECTION", "noise_only_index", "dc_estimate"]

DETECTION = 8.0
"""|c_hat|^2 / (N0 / n_s) above which an offset is removed: exponential(1) under no offset, a
false alarm in e^-8 = 3e-4 of the frames (which then carry an error N0 / n_s at Doppler 0)."""


def noise_only_index(config: FrameConfig) -> np.ndarray:
    """int [T, N]: the samples k_p + tau + nM (CP removed) with tau in [max_delay - g_neg, -1],
    n in [0, N); no rows when the guard leaves none or the pilot sits at Doppler bin 0 (its
    tails would share bin 0 with the offset)."""
    taus = np.arange(config.max_delay - config.guard_neg, 0)
    if config.pilot_l % config.N == 0:
        taus = taus[:0]
    return config.pilot_k + taus[:, None] + config.M * np.arange(config.N)[None, :]


def dc_estimate(r, index):
    """complex [F, MN] frames, int [T, N] ``noise_only_index`` -> complex [F]: c_hat where it
    is detected (module doc), else 0."""
    xp = xp_of(r)
    T, N = index.shape
    if T == 0 or N < 2:
        return xp.zeros(r.shape[0], dtype=r.dtype)
    spectrum = fft(r[:, index], axis=-1)                                  # [F, T, N]
    c = spectrum[..., 0].mean(axis=-1) / N
    n0 = xp.median((xp.abs(spectrum) ** 2).reshape(r.shape[0], -1), axis=-1) / (N * np.log(2))
    return xp.where(xp.abs(c) ** 2 * (T * N) > DETECTION * n0, c, 0).astype(r.dtype)
