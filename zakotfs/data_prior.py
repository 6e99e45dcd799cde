"""The LMMSE with the data-only prior: zero variance on the guard and the pilot.

In time (Z unitary, ``zakotfs.equalizer``) the data occupy the samples q whose delay bin
q mod M carries data: in each of the N blocks of M samples one cyclic segment of
M_d = M - guard_bins samples,

    q_{n,i} = nM + k_1 + 1 + i  (mod MN),   i < M_d,   k_1 the guard's last delay bin.

With D the mask of those samples the LMMSE of the data part r' = r - H s_p is

    (D H^H H D + N0 I) s = D H^H r',   s = D s,                                    (2)

where ``equalizer.cg_lmmse`` solves (1), which gives the guard unit variance. The guard
keeps the segments' responses apart, so D H^H H D is block diagonal but for the taps'
tails beyond the guard. The preconditioner is that block diagonal, each block inverted
exactly:

    A_n = H_n^H H_n + N0 I   [M_d, M_d],   H_n[t, i] = g[q_{n,0} + t, t - i],

g[q, tau] = sum_p b_p[q] c_p[tau] the channel's response at time q to a tap tau, for taps
tau = t - i in [lo, hi] (the tap window widened by SEGMENT_PAD samples each side; the
others dropped) and rows t in [lo, M_d - 1 + hi]. K fixed PCG iterations on (2) from zero
(``equalizer.pcg``); each costs a normal product and a [M_d, M_d] product per segment.

Bias: E[s_hat | s] = (I - N0 A^{-1}) s, so a time sample's bias is 1 - N0 [A_n^{-1}]_ii
(that of the block-diagonal system); a DD symbol at delay bin k is the unitary DFT over n of
the samples q_{n,i} of its segment position i, so its bias is their mean over n. The
unbiased symbols are x_hat / mu, each with error variance 1 / mu - 1.
"""
from __future__ import annotations

import numpy as np

from dsp_kernels import ifft, xp_of

from .channel_operator import ChannelOperator
from .config import FrameConfig
from .equalizer import CGResult, pcg

__all__ = ["DataSegments", "data_prior_lmmse", "SEGMENT_PAD", "DATA_PRIOR_ITERATIONS", "DATA_PRIOR_SEGMENT",
           "default_prior"]

SEGMENT_PAD = 8
"""Taps beyond the tap window, each side, that the segment inverses keep."""

DATA_PRIOR_ITERATIONS = 4
"""PCG iterations on (2) by default: the segment inverses leave only the tails to iterate on."""

DATA_PRIOR_SEGMENT = 64
"""The longest data segment M_d for which ``default_prior`` picks the data-only prior: its
inverses cost N M_d^3 / 3 and their products N M_d^2 an iteration per frame."""


def default_prior(config: FrameConfig, operator_window: int = 0) -> str:
    """"data" where the data segments are short (M_d <= DATA_PRIOR_SEGMENT) and the operator
    is frame-long, else "unit" (``equalizer.cg_lmmse``'s prior)."""
    return "data" if config.M - config.guard_bins <= DATA_PRIOR_SEGMENT and not operator_window else "unit"


class DataSegments:
    """The data segments' sample indices for one configuration on one backend (module doc).

    positions : int [N, M_d]      q_{n,i}
    mask : real [MN]              1 on the data samples, 0 on the guard and the pilot
    lag : int [T, M_d]            the tap t - i of row t (T = M_d - 1 + hi - lo + 1), kept
    inside : bool [T, M_d]        where lo <= t - i <= hi
    rows : int [N, T]             q_{n,0} + t, the rows of H_n
    symbol_position : int [n_data]  the segment position i of each data symbol (data_index order)
    """

    def __init__(self, config: FrameConfig, xp=np, real_dtype=np.float32, pad: int = SEGMENT_PAD):
        M, N, L = config.M, config.N, config.MN
        k_last = config.guard_delay_range[1]
        size = M - config.guard_bins
        t_neg, t_pos = config.tap_window
        lo, hi = -t_neg - pad, t_pos + pad
        first = (k_last + 1 + M * np.arange(N))[:, None]                                  # [N, 1]
        t = np.arange(lo, size + hi)                                                       # [T]
        lag = t[:, None] - np.arange(size)[None, :]                                        # [T, M_d]
        self.size = size
        self.positions = xp.asarray((first + np.arange(size)) % L)
        self.rows = xp.asarray((first + t) % L)
        self.lag = xp.asarray(lag % L)
        self.inside = xp.asarray((lag >= lo) & (lag <= hi))
        mask = np.zeros(L)
        mask[(first + np.arange(size)).ravel() % L] = 1
        self.mask = xp.asarray(mask, dtype=real_dtype)
        self.symbol_position = xp.asarray((config.data_index // N - k_last - 1) % M)

    def inverses(self, op: ChannelOperator, noise_var):
        """complex [F, N, M_d, M_d]: A_n^{-1} of each frame's segments (module doc)."""
        xp = xp_of(op.taps_fft)
        taps = ifft(op.taps_fft, axis=-1)[..., self.lag] * self.inside                     # [F, P, T, M_d]
        basis = op.basis[..., self.rows].transpose(*range(op.basis.ndim - 2), -1, -2, -3)  # [(F,) T, N, P]
        H = xp.matmul(basis, taps.transpose(0, 2, 1, 3))                                    # [F, T, N, M_d]
        H = H.transpose(0, 2, 1, 3)                                                         # [F, N, T, M_d]
        A = xp.matmul(H.conj().swapaxes(-1, -2), H)
        n0 = xp.asarray(noise_var, dtype=A.real.dtype)[:, None, None, None]
        return xp.linalg.inv(A + n0 * xp.eye(self.size, dtype=A.dtype))

    def precondition(self, inverses):
        """v -> the block-diagonal A^{-1} D v (zero off the data samples)."""
        xp = xp_of(inverses)

        def apply(v):
            out = xp.zeros_like(v)
            out[:, self.positions] = xp.matmul(inverses, v[:, self.positions][..., None])[..., 0]
            return out
        return apply

    def bias(self, inverses, noise_var):
        """float [F, n_data]: each data symbol's bias mu (module doc)."""
        xp = xp_of(inverses)
        diagonal = xp.diagonal(inverses, axis1=-2, axis2=-1).real.mean(axis=1)             # [F, M_d]
        n0 = xp.asarray(noise_var, dtype=diagonal.dtype)[:, None]
        return (1 - n0 * diagonal)[:, self.symbol_position]


def data_prior_lmmse(op: ChannelOperator, r, noise_var, iterations: int, segments: DataSegments):
    """Solve (2) for a batch of frames by K = ``iterations`` steps of PCG.

    op : ChannelOperator (F frames, frame-long)
    r : complex [F, L]     received frame minus the pilot's contribution
    noise_var : float [F]
    Returns (CGResult with s complex [F, L], zero off the data samples; mu float [F, n_data]).
    """
    inverses = segments.inverses(op, noise_var)
    mask = segments.mask
    result = pcg(lambda v: mask * op.normal(v, noise_var),
                 segments.precondition(inverses), mask * op.adjoint(r), iterations)
    return result, segments.bias(inverses, noise_var)
