"""The paper's structured delay-Doppler model: a twisted convolution on the DD grid.

    y[k, l] = sum_p h_p e^{j 2 pi m_p (k - d_p)/(M N)} x_qp[k - d_p, l - m_p]

with integer taps (d_p, m_p) and x_qp the quasi-periodic extension
x_qp[k + n M, l + m N] = e^{j 2 pi n l / N} x[k, l]. This is a MODEL, not physics: it is
exact for on-grid paths sent with a cyclic prefix at least as long as the largest delay
(then it equals zak(r) for r from :class:`~channel_models.emulator.ChannelEmulator`), and
only an approximation for fractional delays or Dopplers (see the spec's measured facts).
"""
from __future__ import annotations

import math

import numpy as np

from dsp_kernels import xp_of

__all__ = ["dd_twisted_convolution"]


def dd_twisted_convolution(x, h, d, m):
    """Apply integer DD taps to a grid.

    Parameters
    ----------
    x : complex [..., M, N]
        DD grid (numpy or CuPy).
    h : complex [P]
        Tap gains h_eff[d_p, m_p].
    d, m : int [P]
        Delay and Doppler bins of each tap (any sign).

    Returns
    -------
    complex128 [..., M, N] (complex64 for complex64 input): y as in the module docstring.
    """
    xp = xp_of(x)
    h = np.atleast_1d(np.asarray(h, dtype=np.complex128))
    d = np.atleast_1d(np.asarray(d))
    m = np.atleast_1d(np.asarray(m))
    if not (h.shape == d.shape == m.shape and h.ndim == 1):
        raise ValueError(f"h, d and m must be 1-D of one length, got shapes {h.shape}, {d.shape}, {m.shape}")
    if not (np.issubdtype(d.dtype, np.integer) and np.issubdtype(m.dtype, np.integer)):
        raise ValueError(f"d and m must be integer bins, got dtypes {d.dtype}, {m.dtype}")
    if x.ndim < 2:
        raise ValueError(f"x must have shape [..., M, N], got {x.shape}")
    M, N = x.shape[-2:]
    k = np.arange(M)
    l = np.arange(N)
    y = xp.zeros(x.shape, dtype=xp.result_type(x.dtype, xp.complex64))
    for h_p, d_p, m_p in zip(h, d.tolist(), m.tolist()):
        wraps = (k - d_p) // M                                    # n in k - d = k' + n M
        phase = (m_p * (k - d_p) / (M * N))[:, None] + np.outer(wraps, l - m_p) / N
        factor = xp.asarray(h_p * np.exp(2j * math.pi * np.mod(phase, 1.0)))
        y += factor * xp.roll(x, (d_p, m_p), axis=(-2, -1))
    return y
