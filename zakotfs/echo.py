"""Pilot echoes beyond the tap window: a channel longer than the guard, seen in the data.

The point pilot is a pulse train in time, a_p / sqrt(N) at q = k_p + nM. Seen as [N, M]
(q = k + nM), a path of gain h and delay d puts |h|^2 a_p^2 of energy into column
k = k_p + d, while data fill every column outside the guard with about N (G + N0) each (G
the channel's power, Es = 1). Inside the tap window that energy is the channel the
estimator fits. A path beyond the window lands in data columns: it spills data into the
window, degrades the estimate, and is invisible to the estimator, whose fit only sees more
noise. The column energies e[k] = sum_n |r[k + nM]|^2 show it: against the data columns'
mean, an echo stands out by |h|^2 a_p^2 / (N (G + N0)) = |h|^2 guard_bins / (G + N0) (the
default pilot energy): a path 20 dB under the channel at 12.8 times the mean at the paper
grid's 1275 guard bins, at 1.3 times at the demo grid's 127.

Per frame, among the columns ``ECHO_MARGIN`` samples or more beyond the tap window (the
fitted paths' sinc tails stay under the threshold there), an echo is a column whose
e[k] / mean exceeds the (1 - ``FALSE_ALARM`` / columns) quantile of chi^2(2N) / 2N (a data
column's energy over N Gaussian samples): a false alarm in about one frame in
1 / FALSE_ALARM. Two numbers: the delay of the farthest echo (what a guard must hold), and
the power of the strongest, the excess over the mean in its column and the two neighbours
(a fractional delay splits a path between two), relative to the energy in the tap window
less its noise (the fitted channel's), in dB.
"""
from __future__ import annotations

import numpy as np
from scipy.stats import chi2

from dsp_kernels import xp_of

from .config import FrameConfig

__all__ = ["PilotEchoes", "ECHO_MARGIN", "FALSE_ALARM"]

ECHO_MARGIN = 16
"""Samples beyond the tap window before columns are scanned: the sinc tail of a path at the
window's edge, |h|^2 / (pi^2 x^2) of it at x samples, is under the threshold from there
(a path of the whole channel's power: 0.04 % of it at 16 samples, 0.5 of the mean at the
paper grid against an excess of 1.2 that the threshold needs)."""

FALSE_ALARM = 1e-3
"""Probability that a frame with no echo reports one."""


class PilotEchoes:
    """complex [F, MN] frames (CP removed), float [F] N0 per sample -> float [F, 2]: the
    farthest echo's delay (samples from the pilot, in [-M/2, M/2)) and the strongest
    echo's power relative to the channel in the tap window (dB); NaN where no column
    passes the threshold."""

    def __init__(self, config: FrameConfig, xp=np):
        M, N = config.M, config.N
        self.M, self.N = M, N
        k = np.arange(M)
        delay = (k - config.pilot_k + M // 2) % M - M // 2
        first, last = config.guard_delay_range
        t_neg, t_pos = config.tap_window
        data = (k < first) | (k > last)
        window = (delay >= -t_neg) & (delay <= t_pos)
        scanned = (delay < -t_neg - ECHO_MARGIN) | (delay > t_pos + ECHO_MARGIN)
        self.threshold = float(chi2.isf(FALSE_ALARM / max(int(scanned.sum()), 1), 2 * N) / (2 * N))
        self.n_window = int(window.sum())
        self._delay = xp.asarray(delay.astype(np.float64))
        self._data = xp.asarray(data / max(int(data.sum()), 1))           # weights of the mean
        self._window = xp.asarray(window.astype(np.float64))
        self._scanned = xp.asarray(scanned)

    def __call__(self, r, noise_var):
        xp = xp_of(r)
        F = r.shape[0]
        e = (xp.abs(r.reshape(F, self.N, self.M)) ** 2).sum(axis=1).astype(np.float64)      # [F, M]
        mean = xp.maximum((e * self._data).sum(-1), 1e-30)                                   # [F]
        ratio = xp.where(self._scanned, e / mean[:, None], 0.0)
        flagged = ratio > self.threshold                                                      # [F, M]
        far = xp.argmax(xp.where(flagged, xp.abs(self._delay), -1.0), axis=-1)               # [F]
        k = xp.argmax(ratio, axis=-1)
        around = (k[:, None] + xp.arange(-1, 2)) % self.M                                     # [F, 3]
        excess = xp.maximum(xp.take_along_axis(e, around, -1) - mean[:, None], 0.0).sum(-1)
        inside = (e * self._window).sum(-1) - self.n_window * self.N * xp.asarray(noise_var, dtype=np.float64)
        power_db = 10 * xp.log10(xp.maximum(excess, 1e-30) / xp.maximum(inside, 1e-30))
        found = flagged.any(axis=-1)
        return xp.stack([xp.where(found, self._delay[far], np.nan), xp.where(found, power_db, np.nan)], axis=-1)
