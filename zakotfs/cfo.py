"""Carrier-frequency offset (CFO): estimated per frame from the pilot's pulse train, and
removed before the channel estimate.

A CFO nu_c between the transmitter's and the receiver's oscillators rotates the received
samples, r[q] -> e^{j2pi nu_c q/B} r[q]: a Doppler shift common to every path. The pilot
snapshots z[tau, n] (``zakotfs.estimation``) lie M samples apart, so consecutive ones turn
by 2 pi nu_c M / B = 2 pi nu_c / nu_p on top of the channel's own variation. No estimate
can tell nu_c from a Doppler shift common to the paths; what the channel estimate needs is
that the paths' Dopplers, offset included, fall inside its design band |nu| <= nu_d
(``max_doppler_hz``: the DPSS basis, the DD read-off). Two readings of the snapshots:

- the pulse-pair (lag-one autocorrelation) estimate, the power-weighted mean Doppler,

      nu_pp = nu_p / (2 pi) arg sum_tau sum_{n < N-1} conj(z[tau, n]) z[tau, n+1];

- the band energy E(c) = sum_{|nu - c| <= nu_d} S(nu) (circular in nu_p) of the Doppler
  spectrum S(nu) = sum_tau |sum_n z[tau, n] e^{-j 2 pi nu n / nu_p}|^2 (OVERSAMPLE N bins;
  the box's DFT is ``doppler_band``), and its plateau: the run of c around argmax E where
  E(c) >= (1 - PLATEAU) max E, the offsets that keep the paths in the band (to the
  spectrum's resolution: its sidelobes ripple E, which the tolerance absorbs).

nu_hat is nu_pp moved to the nearest point of the plateau. The pulse-pair alone pushed
Veh-A's far paths out of the band: their centroid lies up to about +-500 Hz off the
middle of their support (paper grid, 938 Hz band, 24 dB, no offset, three realisations:
955 / 968 / 10081 bit errors against 105 / 105 / 9171 uncorrected; held in the plateau,
105 / 105 / 9212). The plateau's middle alone moves with the spectrum's edges, which a
sample-clock offset smears before its resampling (demo, 100 ppm undone: 51 % more errors
than the clean link, against 17 % with the pulse-pair); inside the plateau the pulse-pair
is kept. The range is |nu_hat| < nu_p / 2 (7.5 kHz at the paper's nu_p = 15 kHz): an
offset beyond it aliases by a multiple of nu_p and must be removed before the receiver
(the preamble's coarse estimate, ``streaming.acquisition``, sees it).

The paper's DD read-off models on-grid Dopplers: for it the estimate is rounded to whole
Doppler bins (``step_hz`` = 1/T), so that a channel on the grid stays on it.

A known offset (a crystal's, found once: the receiver's ``cfo_offset_hz``) is removed from
the snapshots first (``snapshot_rotation``); the estimate then reads what is left within
+-nu_p / 2 of it, so the known offset may be anything.
"""
from __future__ import annotations

import numpy as np

from dsp_kernels import fft, ifft, xp_of

from .config import FrameConfig
from .estimation import snapshot_index

__all__ = ["pilot_cfo", "doppler_band", "snapshot_rotation"]


OVERSAMPLE = 16
"""Doppler spectrum bins per snapshot: the plateau's grid is nu_p / (OVERSAMPLE N), 29 Hz
on the demo and paper grids."""

PLATEAU = 1e-2
"""Band energies within this fraction of the largest form the plateau (module doc)."""


def doppler_band(n_snapshots: int, doppler_period_hz: float, band_hz: float) -> np.ndarray:
    """complex128 [OVERSAMPLE N]: the DFT of the circular box |nu| <= ``band_hz`` on the
    Doppler spectrum's grid, which sums S into E by one circular convolution (module doc)."""
    n = OVERSAMPLE * n_snapshots
    half = min(int(band_hz / doppler_period_hz * n), (n - 1) // 2)
    box = np.zeros(n)
    box[:half + 1] = box[n - half:] = 1.0
    return np.fft.fft(box)


def pilot_cfo(z, doppler_period_hz: float, band, step_hz: float = 0.0):
    """complex [F, W, N] pilot snapshots, complex [OVERSAMPLE N] ``doppler_band`` -> float64
    [F]: nu_hat in Hz (module doc), the pulse-pair estimate moved into the plateau of the
    band energy, rounded to a multiple of ``step_hz`` when it is > 0; 0 for a frame without
    signal."""
    xp = xp_of(z)
    n = OVERSAMPLE * z.shape[-1]
    lag_one = (z[..., :-1].conj() * z[..., 1:]).sum(axis=(-1, -2))
    pulse_pair = xp.angle(lag_one).astype(np.float64) / (2 * np.pi) * n                  # in bins
    spectrum = (xp.abs(fft(z, axis=-1, n=n)) ** 2).sum(axis=1)                           # S [F, n]
    energy = ifft(fft(spectrum, axis=-1) * band, axis=-1).real                            # E(c), c = bin 0 .. n-1
    best = xp.argmax(energy, axis=-1)
    near = energy >= (1 - PLATEAU) * energy.max(axis=-1, keepdims=True)
    around = xp.take_along_axis(near, (best[:, None] + xp.arange(n)) % n, axis=-1)       # bin best + i, i < n
    flat = around.all(axis=-1)                                                            # no signal: E constant
    ahead = xp.where(flat, n - 1, xp.argmin(around, axis=-1) - 1)
    behind = xp.where(flat, 0, xp.argmin(around[:, ::-1], axis=-1))
    offset = (pulse_pair - best + n / 2) % n - n / 2                                       # nu_pp - best, circular
    cfo = (((best + xp.clip(offset, -behind, ahead)) / n + 0.5) % 1.0 - 0.5) * doppler_period_hz
    return xp.rint(cfo / step_hz) * step_hz if step_hz > 0 else cfo


def snapshot_rotation(config: FrameConfig, offset_hz: float, xp=np, dtype=np.complex64):
    """complex [W, N]: exp(-j 2 pi offset q / B) at each pilot snapshot's sample q = k_p + tau
    + nM, which removes a known offset from the snapshots z[tau, n]."""
    q = snapshot_index(config).astype(np.float64)
    return xp.asarray(np.exp(-2j * np.pi * offset_hz / config.bandwidth * q), dtype=dtype)
