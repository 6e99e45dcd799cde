"""Carrier-frequency offset (CFO): estimated per frame from the pilot's pulse train, and
removed before the channel estimate.

A CFO nu_c between the transmitter's and the receiver's oscillators rotates the received
samples, r[q] -> e^{j2pi nu_c q/B} r[q]: a Doppler shift common to every path. The pilot
snapshots z[tau, n] (``zakotfs.estimation``) lie M samples apart, so consecutive ones turn
by 2 pi nu_c M / B = 2 pi nu_c / nu_p on top of the channel's own variation. No estimate
can tell nu_c from a Doppler shift common to the paths; what the channel estimate needs is
that the paths' Dopplers, offset included, fall inside its design band |nu| <= nu_d
(``max_doppler_hz``: the DPSS basis, the DD read-off). So the offset removed is the centre
of the band that holds most of the snapshots' energy: with the Doppler spectrum

    S(nu) = sum_tau |sum_n z[tau, n] e^{-j 2 pi nu n / nu_p}|^2      (OVERSAMPLE N bins),

    nu_hat = the middle of the run of c around argmax E(c) where E(c) >= (1 - PLATEAU) max E,
    E(c) = sum_{|nu - c| <= nu_d} S(nu)                                 (circular in nu_p).

A channel narrower than the band gives E a plateau; its middle centres the paths' Doppler
support in the band. The power-weighted mean Doppler (the pulse-pair estimate, used before)
does not: Veh-A's paths at up to 815 Hz have a centroid of up to about +-500 Hz, and
removing it pushed the far paths out of a 938 Hz band (paper grid, 24 dB, no offset: 9x
the bit errors on two of three realisations). The range is |nu_hat| < nu_p / 2 (7.5 kHz at
the paper's nu_p = 15 kHz): an offset beyond it aliases by a multiple of nu_p and must be
removed before the receiver (the preamble's coarse estimate, ``streaming.acquisition``,
sees it).

The paper's DD read-off models on-grid Dopplers: for it the estimate is rounded to whole
Doppler bins (``step_hz`` = 1/T), so that a channel on the grid stays on it.

A known offset (a crystal's, found once: the receiver's ``cfo_offset_hz``) is removed from
the snapshots first (``snapshot_rotation``); the estimate then reads what is left within
+-nu_p / 2 of it, so the known offset may be anything.
"""
from __future__ import annotations

import numpy as np

from dsp_kernels import fft, xp_of

from .config import FrameConfig
from .estimation import snapshot_index

__all__ = ["pilot_cfo", "snapshot_rotation"]


OVERSAMPLE = 16
"""Doppler spectrum bins per snapshot: the estimate's grid is nu_p / (OVERSAMPLE N), 29 Hz
on the demo and paper grids."""

PLATEAU = 1e-2
"""Band energies within this fraction of the largest count as its plateau (module doc)."""


def pilot_cfo(z, doppler_period_hz: float, band_hz: float, step_hz: float = 0.0):
    """complex [F, W, N] pilot snapshots -> float64 [F]: nu_hat in Hz, the centre of the
    +-``band_hz`` Doppler band that holds the most energy (module doc), rounded to a multiple
    of ``step_hz`` when it is > 0; 0 for a frame without signal."""
    xp = xp_of(z)
    F, _, N = z.shape
    n = OVERSAMPLE * N
    spectrum = (xp.abs(fft(z, axis=-1, n=n)) ** 2).sum(axis=1)                       # [F, n]
    half = min(int(band_hz / doppler_period_hz * n), (n - 1) // 2)
    wrapped = xp.concatenate([spectrum[:, n - half:], spectrum, spectrum[:, :half]], axis=-1)
    total = xp.concatenate([xp.zeros((F, 1)), xp.cumsum(wrapped, axis=-1)], axis=-1)
    energy = total[:, 2 * half + 1:] - total[:, :n]                                   # E(c), c = bin 0 .. n-1
    best = xp.argmax(energy, axis=-1)
    near = energy >= (1 - PLATEAU) * energy.max(axis=-1, keepdims=True)
    around = xp.take_along_axis(near, (best[:, None] + xp.arange(n)) % n, axis=-1)   # bin best + i
    ahead = xp.cumprod(around[:, 1:], axis=-1).sum(axis=-1)
    behind = xp.cumprod(around[:, ::-1][:, :-1], axis=-1).sum(axis=-1)
    middle = best + 0.5 * (ahead - behind)
    cfo = ((middle / n + 0.5) % 1.0 - 0.5) * doppler_period_hz
    return xp.rint(cfo / step_hz) * step_hz if step_hz > 0 else cfo


def snapshot_rotation(config: FrameConfig, offset_hz: float, xp=np, dtype=np.complex64):
    """complex [W, N]: exp(-j 2 pi offset q / B) at each pilot snapshot's sample q = k_p + tau
    + nM, which removes a known offset from the snapshots z[tau, n]."""
    q = snapshot_index(config).astype(np.float64)
    return xp.asarray(np.exp(-2j * np.pi * offset_hz / config.bandwidth * q), dtype=dtype)
