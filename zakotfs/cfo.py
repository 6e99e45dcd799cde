"""Carrier-frequency offset (CFO): estimated per frame from the pilot's pulse train, and
removed before the channel estimate.

A CFO nu_c between the transmitter's and the receiver's oscillators rotates the received
samples, r[q] -> e^{j2pi nu_c q/B} r[q]: a Doppler shift common to every path. The pilot
snapshots z[tau, n] (``zakotfs.estimation``) lie M samples apart, so consecutive ones turn
by 2 pi nu_c M / B = 2 pi nu_c / nu_p on top of the channel's own variation. The pulse-pair
(lag-one autocorrelation) estimate

    nu_hat = nu_p / (2 pi) arg sum_tau sum_{n < N-1} conj(z[tau, n]) z[tau, n+1]

returns nu_c plus the channel's Doppler centroid (the power-weighted mean Doppler of its
paths, zero for a symmetric Doppler spectrum). Removing both centres the channel in the
estimator's Doppler band, which is what the DPSS basis and the DD read-off need. The range
is |nu_hat| < nu_p / 2 (7.5 kHz at the paper's nu_p = 15 kHz): an offset beyond it aliases
by a multiple of nu_p and must be removed before the receiver (the preamble's coarse
estimate, ``streaming.acquisition``, sees it).

The paper's DD read-off models on-grid Dopplers: for it the estimate is rounded to whole
Doppler bins (``step_hz`` = 1/T), so that a channel on the grid stays on it.

A known offset (a crystal's, found once: the receiver's ``cfo_offset_hz``) is removed from
the snapshots first (``snapshot_rotation``); the pulse-pair then reads what is left within
+-nu_p / 2 of it, so the known offset may be anything.
"""
from __future__ import annotations

import numpy as np

from dsp_kernels import xp_of

from .config import FrameConfig
from .estimation import snapshot_index

__all__ = ["pilot_cfo", "snapshot_rotation"]


def pilot_cfo(z, doppler_period_hz: float, step_hz: float = 0.0):
    """complex [F, W, N] pilot snapshots -> float64 [F]: nu_hat in Hz (module doc), rounded
    to a multiple of ``step_hz`` when it is > 0; 0 for a frame without signal (N < 2 or
    all-zero snapshots)."""
    xp = xp_of(z)
    lag_one = (z[..., :-1].conj() * z[..., 1:]).sum(axis=(-1, -2))
    cfo = xp.angle(lag_one).astype(np.float64) * (doppler_period_hz / (2 * np.pi))
    return xp.rint(cfo / step_hz) * step_hz if step_hz > 0 else cfo


def snapshot_rotation(config: FrameConfig, offset_hz: float, xp=np, dtype=np.complex64):
    """complex [W, N]: exp(-j 2 pi offset q / B) at each pilot snapshot's sample q = k_p + tau
    + nM, which removes a known offset from the snapshots z[tau, n]."""
    q = snapshot_index(config).astype(np.float64)
    return xp.asarray(np.exp(-2j * np.pi * offset_hz / config.bandwidth * q), dtype=dtype)
