"""Closed-form AWGN bit error rate of the 38.211 QAM orders with nearest-point decisions.

Per axis the symbol is a Gray PAM level a_i with noise of variance N0/2 (N0 = complex noise
variance, Es = 1). With decision boundaries at the midpoints b_r between sorted levels,

    P_b = 1/(h L) sum_i sum_r P(z in region r | a_i) * d_H(bits(r), bits(a_i)),
    P(z in [b_r, b_{r+1}) | a) = Q((b_r - a)/s) - Q((b_{r+1} - a)/s),  s = sqrt(N0/2),

which is exact (no union bound). Both axes have the same statistics.
"""
from __future__ import annotations

import numpy as np
from scipy.special import erfc

from .modulation import constellation

__all__ = ["awgn_ber", "qfunc"]


def qfunc(x):
    return 0.5 * erfc(np.asarray(x) / np.sqrt(2.0))


def awgn_ber(modulation: str, snr_db):
    """Bit error rate at data Es/N0 = ``snr_db`` (scalar or array) on AWGN."""
    c = constellation(modulation)
    order = np.argsort(c.levels)
    levels, bits = c.levels[order], c.level_bits[order].astype(int)
    h, L = bits.shape[1], levels.size
    edges = np.concatenate([[-np.inf], (levels[1:] + levels[:-1]) / 2, [np.inf]])
    hamming = (bits[:, None, :] != bits[None, :, :]).sum(-1)           # [sent, region]
    s = np.sqrt(10 ** (-np.asarray(snr_db, dtype=float) / 10) / 2)[..., None, None]
    lo = (edges[None, :-1] - levels[:, None])                            # [sent, region]
    hi = (edges[None, 1:] - levels[:, None])
    p_region = qfunc(lo / s) - qfunc(hi / s)
    return (p_region * hamming).sum((-1, -2)) / (h * L)
