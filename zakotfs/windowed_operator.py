"""The channel operator applied window by window: short FFTs instead of frame-long ones.

``ChannelOperator`` applies r[q] = sum_p b_p[q] (c_p (*) s)[q] with FFTs of the whole frame,
L = M N points, 2 + 2P of them per normal-equation product. Over a window of Lw output
samples the basis functions change little (a Doppler phase of theta = 2 pi nu_max Lw
radians), so inside window w the channel is a short polynomial in time of K LTI filters:

    g(q, d) = sum_p b_p[q] c_p[d]  ~  sum_k phi_k[m] g_{k,w}[d],      q = w Lw + m,
    g_{k,w}[d] = sum_p beta_{p,k,w} c_p[d],   beta_{p,k,w} = sum_m phi_k[m] b_p[w Lw + m],

with phi_k [K, Lw] the discrete polynomials of degree < K, orthonormal over the window
(``window_polynomials``; beta is the least-squares fit of b_p on window w). The taps are
kept on a support of V + 1 delays [d0, d0 + V] around the channel's tap window (the overlap
V <= Lw), so each window is an overlap-save block of B = Lw + V samples: with X = FFT_B of
the B input samples ending where window w ends, and G'_{k,w} = FFT_B of g_{k,w}[d0 + V + n]
placed at n = -V ... 0 (mod B; so the valid outputs come first),

    (H s)[w Lw + m] = sum_k phi_k[m] IFFT_B(G'_{k,w} X_w)[m],                   m < Lw,
    H^H r           = scatter-add over w of IFFT_B(sum_k conj(G'_{k,w}) FFT_B(phi_k r_w)),

(FFT_B of a length-Lw input: zero-padded at the end). A normal product costs 2 + 2K FFTs of
B points per window of Lw, (2 + 2K) (B / Lw) L points of FFT in all against (2 + 2P) L at
P = 8, in transforms short enough to run in one pass, and reads 2K (B / Lw) L coefficients
instead of 4P L. Every pass over blocks scales with B / Lw too: an overlap of Lw / 2
instead of Lw is a quarter less work.

The approximation has two errors (``window_error``): the polynomial fit of the Doppler
phase, theta^4 / 720 for K = 2 (theta = 2 pi nu_max Lw radians across a window), and the
delay taps' periodic-sinc tails cut at a margin of A = (V - taps) / 2 delays, at most
1 / (pi^2 A) of a path's power (a half-sample delay at the edge of the tap window).
``default_window`` picks the window and ``window_overlap`` the overlap with the least work
that keeps both under ``WINDOW_ERROR_DB``, or none: then the receiver keeps the exact
operator. What else the equaliser reads of the channel once a frame (its local responses)
comes from C_p on every ``bin_stride``-th DFT bin.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property

import numpy as np

from dsp_kernels import fft, ifft, xp_of
from dsp_kernels.fused import matmul
from dsp_kernels.windowed import window_gather, window_reduce, window_scatter, window_sum, window_weight

from .channel_operator import ChannelOperator, DelayAtoms, frozen_response

__all__ = ["WindowedOperator", "window_polynomials", "window_coefficients", "window_error", "window_overlap",
           "default_window", "WINDOW_ERROR_DB"]

WINDOW_ERROR_DB = -40.0
"""Largest predicted operator error (power relative to the channel's) that ``default_window``
accepts: 20 dB under the noise at 20 dB SNR, the accurate estimator's own floor."""

ORDER = 2
"""K: the channel inside a window is its value and its slope (theta^4 / 720 error against
theta^2 / 12 for K = 1: -71 dB against -32 dB at the paper grid's 4096-sample windows)."""


def window_polynomials(window: int, order: int = ORDER) -> np.ndarray:
    """float64 [K, Lw]: phi_k[m], the polynomials of degree k < K in m, orthonormal over
    m in [0, Lw) (QR of the Vandermonde matrix of the centred, scaled instants)."""
    t = (np.arange(window) - (window - 1) / 2) / window
    q, r = np.linalg.qr(t[:, None] ** np.arange(order))
    return (q * np.sign(np.diag(r))).T


def window_coefficients(basis, polynomials):
    """complex [..., P, L] b_p, float [K, Lw] phi_k -> complex [..., P, K, S]:
    beta_{p,k,w} = sum_m phi_k[m] b_p[w Lw + m], the least-squares fit of b_p on window w
    (phi orthonormal). It depends on the basis only: a receiver computes it once."""
    Lw, L = polynomials.shape[-1], basis.shape[-1]
    windows = basis.reshape(basis.shape[:-1] + (L // Lw, Lw))                   # [.., P, S, Lw]
    return matmul(polynomials.astype(basis.dtype), windows.swapaxes(-1, -2))


def window_error(window: int, overlap: int, taps: int, doppler_phase: float, order: int = ORDER) -> float:
    """Predicted relative error power of the windowed operator (module doc): the polynomial
    fit of a Doppler phase of ``doppler_phase`` = theta radians across a window of Lw, plus
    the sinc tails beyond the margin (V - taps) / 2 of an overlap V."""
    margin = (overlap - taps) / 2
    if margin < 1:
        return np.inf
    if order not in (1, 2):
        raise ValueError(f"the error model covers orders 1 and 2, got {order}")
    fit = doppler_phase ** 2 / 12 if order == 1 else doppler_phase ** 4 / 720
    return fit + 1 / (np.pi ** 2 * margin)


OVERLAP_FRACTIONS = (8, 4, 2, 1)
"""V = Lw / 8, Lw / 4, Lw / 2 or Lw: blocks of B = 9, 5, 3 or 2 times a power of two, sizes
the FFT libraries transform fast."""


def window_overlap(L: int, window: int, taps: int, doppler_bins: float) -> int:
    """V for windows of Lw = ``window`` samples in a frame of L: the smallest of Lw / 8, Lw / 4,
    Lw / 2 whose ``window_error`` (Doppler up to ``doppler_bins`` = nu_max T) is under
    WINDOW_ERROR_DB, else Lw (the caller's window then exceeds the limit; ``default_window``
    never picks one that does)."""
    limit = 10 ** (WINDOW_ERROR_DB / 10)
    theta = 2 * np.pi * doppler_bins * window / L
    for fraction in OVERLAP_FRACTIONS[:-1]:
        if window % fraction == 0 and window_error(window, window // fraction, taps, theta) <= limit:
            return window // fraction
    return window


def default_window(L: int, taps: int, doppler_bins: float, min_windows: int = 8) -> int:
    """Lw for a frame of L samples, ``taps`` delay taps and Doppler up to ``doppler_bins``
    (nu_max T): among the powers of two with at least ``min_windows`` windows a frame whose
    ``window_error`` is under WINDOW_ERROR_DB (at ``window_overlap``'s V), the one of least
    work per sample, B / Lw = 1 + V / Lw (then the shorter block); 0 (use the exact operator)
    if none."""
    limit = 10 ** (WINDOW_ERROR_DB / 10)
    best, best_cost = 0, (np.inf, np.inf)
    window = 2
    while window <= L // min_windows:
        overlap = window_overlap(L, window, taps, doppler_bins)
        theta = 2 * np.pi * doppler_bins * window / L
        cost = ((window + overlap) / window, window + overlap)
        if L % window == 0 and window_error(window, overlap, taps, theta) <= limit and cost < best_cost:
            best, best_cost = window, cost
        window *= 2
    return best


@dataclass
class WindowedOperator:
    """H as K LTI filters per window of Lw samples (module doc).

    Attributes
    ----------
    response : complex [F, K, S, B]
        G'_{k,w} / B, S = L / Lw windows, B = Lw + V: the inverse FFT's 1 / B is folded in once,
        so that the inverse FFTs of ``apply`` and ``adjoint`` run unscaled (``norm="forward"``;
        on the GPU a scaled one is a further pass over its output, 7 % of the chain's time).
    polynomials : float [K, Lw]
        phi_k.
    delay_start : int
        d0, the first delay of the taps' support [d0, d0 + V].
    basis : complex [..., P, L]
        The channel's b_p.
    spectra : complex [F, P, L / bin_stride]
        C_p at every ``bin_stride``-th DFT bin: what the local responses (preconditioner and
        bias, ``zakotfs.equalizer.local_power``) read.
    bin_stride : int
    """

    response: object
    polynomials: object
    delay_start: int
    basis: object
    spectra: object
    bin_stride: int

    @property
    def L(self) -> int:
        return self.basis.shape[-1]

    @cached_property
    def response_conj(self):
        """conj(G'_{k,w}), made once per operator rather than in every adjoint (every CG
        iteration)."""
        return self.response.conj()

    @property
    def window(self) -> int:
        """Lw."""
        return self.polynomials.shape[-1]

    @property
    def block(self) -> int:
        """B = Lw + V, the overlap-save block."""
        return self.response.shape[-1]

    @classmethod
    def from_operator(cls, op: ChannelOperator, polynomials, delay_start: int, overlap: int,
                      bin_stride: int = 1, beta=None) -> "WindowedOperator":
        """Fit ``op`` per window (module doc): its taps c_p = IFFT(C_p) on [d0, d0 + V].

        polynomials : float [K, Lw] (``window_polynomials``, on op's backend)
        beta : ``window_coefficients(op.basis, polynomials)`` where already known (a
            receiver's basis is a constant), else computed here
        """
        xp = xp_of(op.taps_fft)
        support = xp.arange(delay_start, delay_start + overlap + 1) % op.L
        taps = ifft(op.taps_fft, axis=-1)[..., support]                          # [F, P, V + 1]
        return cls._fit(op.basis, taps, op.taps_fft[..., ::bin_stride], polynomials, delay_start, bin_stride, beta)

    @classmethod
    def from_atoms(cls, atoms: DelayAtoms, polynomials, delay_start: int, overlap: int, bin_stride: int = 1,
                   beta=None) -> "WindowedOperator":
        """Fit a channel given as delay atoms per window: its taps on [d0, d0 + V] evaluated
        from the atoms directly, with no transform of the frame's length (``beta`` as in
        ``from_operator``)."""
        return cls._fit(atoms.basis, atoms.taps(delay_start, overlap + 1), atoms.taps_fft(bin_stride), polynomials,
                        delay_start, bin_stride, beta)

    @classmethod
    def _fit(cls, basis, taps, spectra, polynomials, delay_start: int, bin_stride: int,
             beta=None) -> "WindowedOperator":
        """taps: complex [F, P, V + 1] c_p[d0 ... d0 + V] -> the operator (module doc)."""
        xp = xp_of(taps)
        Lw, L, V = polynomials.shape[-1], basis.shape[-1], taps.shape[-1] - 1
        if L % Lw or L // Lw < 2:
            raise ValueError(f"window {Lw} must divide the frame length L={L} at least twice")
        if not 0 < V <= Lw:
            raise ValueError(f"the overlap {V} must lie in 1 ... Lw={Lw}")
        block = Lw + V
        placed = xp.zeros(taps.shape[:-1] + (block,), dtype=taps.dtype)          # delays d0 + V + n, n = -V ... 0
        placed[..., -V:] = taps[..., :V]
        placed[..., 0] = taps[..., V]
        spectrum = fft(placed, axis=-1)                                         # [F, P, B]
        beta = window_coefficients(basis, polynomials) if beta is None else beta      # [.., P, K, S]
        F, P, K, S = spectrum.shape[0], spectrum.shape[1], polynomials.shape[0], L // Lw
        beta = xp.broadcast_to(beta, (F, P, K, S)).reshape(F, P, K * S)
        response = matmul(beta.swapaxes(-1, -2), spectrum / block).reshape(F, K, S, block)
        dtype = basis.dtype
        return cls(response.astype(dtype, copy=False), polynomials.astype(basis.real.dtype, copy=False),
                   delay_start, basis, spectra.astype(dtype, copy=False), bin_stride)

    @property
    def shift(self) -> int:
        """d0 + V: block w's input starts at sample w Lw - shift."""
        return self.delay_start + self.block - self.window

    def apply(self, s):
        """complex [F, L] -> complex [F, L]: H s."""
        spectrum = fft(window_gather(s, self.window, self.block, self.shift), axis=-1)     # [F, S, B]
        return window_sum(ifft(self.response * spectrum[:, None], axis=-1, norm="forward"), self.polynomials)

    def adjoint(self, r, s=None, noise_var=None):
        """complex [F, L] -> complex [F, L]: H^H r (+ noise_var[f] s where given)."""
        spectra = fft(window_weight(r, self.polynomials, self.block), axis=-1)            # [F, K, S, B]
        blocks = ifft(window_reduce(self.response_conj, spectra), axis=-1, norm="forward")    # [F, S, B]
        return window_scatter(blocks, self.window, self.shift, s, noise_var)

    def normal(self, s, noise_var):
        """complex [F, L], float [F] N0 -> (H^H H + N0 I) s."""
        return self.adjoint(self.apply(s), s, noise_var)

    def _spectra(self, stride: int):
        """C_p at every ``stride``-th DFT bin, from ``spectra``."""
        if stride % self.bin_stride:
            raise ValueError(f"C_p is kept at every {self.bin_stride}-th bin; stride {stride} is not a multiple")
        return self.spectra[..., ::stride // self.bin_stride]

    def local_response(self, times, n_bins: int):
        """complex [F, S, n_bins]: G(q, f) (``ChannelOperator.local_response``)."""
        return frozen_response(self.basis, self._spectra(self.L // n_bins), times)
