"""3GPP TS 38.211 section 5.1 QAM mapping and max-log soft demapping.

Bits b(0) ... b(q-1) of a symbol: even bits set the in-phase amplitude, odd bits the
quadrature amplitude, each axis a Gray-coded PAM

    a(c_0 .. c_{h-1}) = (1 - 2 c_0) g_1,   g_j = 2^{h-j} - (1 - 2 c_j) g_{j+1},  g_h = 1,

scaled by 1/sqrt(2), 1/sqrt(10), 1/sqrt(42), 1/sqrt(170) for q = 2, 4, 6, 8 (unit average
energy). Because the mapping is separable per axis, max-log LLRs are computed per axis:

    LLR(b) = ( min_{a: b=1} (z - a)^2 - min_{a: b=0} (z - a)^2 ) / sigma^2

with z the in-phase (or quadrature) part of the equalised symbol and sigma^2 the
complex noise variance of that symbol. LLR > 0 means bit 0.
"""
from __future__ import annotations

from functools import lru_cache

import numpy as np

__all__ = ["MODULATIONS", "bits_per_symbol", "Constellation", "constellation"]

MODULATIONS = {"qpsk": 2, "16qam": 4, "64qam": 6, "256qam": 8}
_SCALE = {2: np.sqrt(2.0), 4: np.sqrt(10.0), 6: np.sqrt(42.0), 8: np.sqrt(170.0)}


def bits_per_symbol(modulation: str) -> int:
    try:
        return MODULATIONS[modulation]
    except KeyError:
        raise ValueError(f"modulation must be one of {', '.join(MODULATIONS)}, "
                         f"got {modulation!r}") from None


def _pam_amplitude(axis_bits: np.ndarray) -> np.ndarray:
    """int [..., h] axis bits c_0..c_{h-1} -> float [...] 38.211 PAM amplitude (unscaled)."""
    h = axis_bits.shape[-1]
    g = np.ones(axis_bits.shape[:-1])
    for j in range(h - 1, 0, -1):
        g = 2.0 ** (h - j) - (1 - 2 * axis_bits[..., j]) * g
    return (1 - 2 * axis_bits[..., 0]) * g


class Constellation:
    """One 38.211 QAM order.

    Attributes
    ----------
    q : int
        Bits per symbol.
    points : complex128 [2^q]
        ``points[i]`` is the symbol of the bit pattern whose binary digits are i, b(0) the MSB.
    levels : float64 [2^(q/2)]
        Per-axis amplitudes (scaled), ``levels[i]`` for axis bits = binary digits of i.
    level_bits : uint8 [2^(q/2), q/2]
        The axis bits of each level.
    """

    def __init__(self, modulation: str):
        self.name = modulation
        self.q = bits_per_symbol(modulation)
        h = self.q // 2
        scale = _SCALE[self.q]
        idx = np.arange(2 ** h)
        self.level_bits = ((idx[:, None] >> np.arange(h - 1, -1, -1)) & 1).astype(np.uint8)
        self.levels = _pam_amplitude(self.level_bits.astype(np.int64)) / scale
        all_bits = (np.arange(2 ** self.q)[:, None] >> np.arange(self.q - 1, -1, -1)) & 1
        self.points = (_pam_amplitude(all_bits[:, 0::2]) + 1j * _pam_amplitude(all_bits[:, 1::2])) / scale

    def map(self, bits: np.ndarray) -> np.ndarray:
        """uint8 [..., n q] bits -> complex128 [..., n] symbols."""
        bits = np.asarray(bits)
        if bits.shape[-1] % self.q:
            raise ValueError(f"bits: last axis {bits.shape[-1]} is not a multiple of q={self.q}")
        if bits.size and (bits.min() < 0 or bits.max() > 1):
            raise ValueError("bits must be 0 or 1")
        grouped = bits.reshape(bits.shape[:-1] + (-1, self.q)).astype(np.int64)
        index = grouped @ (1 << np.arange(self.q - 1, -1, -1))
        return self.points[index]

    def hard_bits(self, llr):
        """LLRs [..., n, q] -> uint8 hard decisions (LLR < 0 means 1)."""
        return (llr < 0).astype(np.uint8)


@lru_cache(maxsize=None)
def constellation(modulation: str) -> Constellation:
    """The :class:`Constellation` of ``modulation`` (``MODULATIONS``), built once."""
    return Constellation(modulation)
