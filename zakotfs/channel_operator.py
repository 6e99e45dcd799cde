"""The time-varying channel as a basis expansion, applied matrix-free with FFTs.

Every channel this receiver handles (the paper's DD twisted convolution, the accurate
estimate, the emulator's exact paths) is written in one form, acting on one frame's
L = M N samples after CP removal (a circular channel):

    r[q] = sum_p b_p[q] * (c_p (*) s)[q],        (*) = circular convolution over L,

with P basis functions b_p (Doppler: complex exponentials, DPSS sequences or the exact
path phasors) and taps c_p (delay). With C_p = FFT(c_p) (unnormalised DFT):

    H s    = sum_p b_p  . IFFT(C_p . FFT(s))                   (1 FFT + P IFFTs)
    H^H r  = IFFT( sum_p conj(C_p) . FFT(conj(b_p) . r) )      (P FFTs + 1 IFFT)

The diagonal of the Gram matrix in the frequency domain (unitary DFT F) is

    P(f) = [F H^H H F^H]_{ff} = sum_{p,p'} conj(C_p(f)) G_{pp'} C_{p'}(f),
    G_{pp'} = mean_q conj(b_p[q]) b_{p'}[q],

the channel's power transfer function averaged over the frame; the equaliser uses it
as a preconditioner and for the post-equalisation SINR.

Since the Zak transform is unitary, the DD operator is H_DD = Z H Z^{-1}: the DD-domain
LMMSE and the time-domain LMMSE are the same estimator.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from channel_models.fractional_delay import fractional_delay_response
from dsp_kernels import cpu_cg, fft, ifft, xp_of
from dsp_kernels.fused import basis_project, basis_sum, matmul, taps_product, taps_reduce

from .config import FrameConfig

__all__ = ["ChannelOperator", "DelayAtoms", "fractional_delay_response", "periodic_sinc", "doppler_exponentials",
           "frozen_response"]


def periodic_sinc(x, L: int, xp=np):
    """The L-periodic band-limited pulse, the inverse DFT of ``fractional_delay_response``:

        (1/L) [ sum_{|f| < L/2} e^{j2pi f x/L} + cos(pi x) ]
          = [ sin(pi x (L-1)/L) / sin(pi x/L) + cos(pi x) ] / L           (even L),
          = sinc(x) / sinc(x/L)                                              (odd L),

    written with sinc so that integer x (0 -> 1, others -> 0) needs no special case."""
    x = xp.asarray(x, dtype=np.float64)
    if L % 2:
        return (xp.sinc(x) / xp.sinc(x / L)).astype(complex)
    core = (L - 1) / L * xp.sinc(x * (L - 1) / L) / xp.sinc(x / L)
    return ((core + xp.cos(np.pi * x) / L)).astype(complex)


def doppler_exponentials(frequencies, L: int, xp=np):
    """complex [..., L]: exp(j 2 pi nu q) for q in [0, L), nu in cycles per sample."""
    q = xp.arange(L)
    return xp.exp(2j * np.pi * xp.asarray(frequencies)[..., None] * q)


def frozen_response(basis, taps, times):
    """complex [..., P, L] b_p, [F, P, B] C_p at B DFT bins, int [S] instants -> complex [F, S, B]:
    G(q, f) = sum_p b_p[q] C_p(f), the channel's frequency response frozen at time q."""
    xp = xp_of(taps)
    basis_t = basis[..., xp.asarray(times)]                                          # [.., P, S]
    return matmul(basis_t.swapaxes(-1, -2), taps)


@dataclass
class ChannelOperator:
    """H for a batch of frames.

    Attributes
    ----------
    basis : complex [..., P, L]
        b_p[q]; leading axes broadcast against those of ``taps_fft``.
    taps_fft : complex [F, P, L]
        C_p(f) = FFT(c_p).
    gram : complex [..., P, P] or None
        G_pp' = mean_q conj(b_p[q]) b_p'[q], when the basis is a known constant (an
        estimator's DPSS or Doppler exponentials); None: computed from ``basis`` when needed.
    """

    basis: object
    taps_fft: object
    gram: object = None

    def __post_init__(self) -> None:
        if self.basis.shape[-2:] != self.taps_fft.shape[-2:]:
            raise ValueError(f"basis {self.basis.shape} and taps_fft {self.taps_fft.shape} "
                             "disagree on (P, L)")

    @property
    def L(self) -> int:
        return self.taps_fft.shape[-1]

    def apply(self, s):
        """complex [F, L] -> complex [F, L]: H s (a frame at a time in compiled code where
        ``compiled`` says so)."""
        spectrum = fft(s, axis=-1)
        if self.compiled(spectrum):
            return cpu_cg.apply(spectrum, self.taps_fft, self.basis)
        return basis_sum(self.basis, ifft(taps_product(self.taps_fft, spectrum), axis=-1))

    def compiled(self, frames) -> bool:
        """True where ``dsp_kernels.cpu_cg`` applies this operator to ``frames``: complex64 numpy
        arrays, one basis for all frames, and FFTW at hand."""
        return (isinstance(frames, np.ndarray) and frames.dtype == np.complex64 and isinstance(self.basis, np.ndarray)
                and self.basis.ndim == 2 and self.taps_fft.dtype == np.complex64 and cpu_cg.available())

    def adjoint(self, r):
        """complex [F, L] -> complex [F, L]: H^H r."""
        v = fft(self.basis.conj() * r[..., None, :], axis=-1)
        return ifft((self.taps_fft.conj() * v).sum(axis=-2), axis=-1)

    def basis_gram(self):
        """complex [..., P, P]: G_pp' (``gram``, or computed from the basis)."""
        if self.gram is not None:
            return self.gram
        xp = xp_of(self.basis)
        return xp.einsum("...pq,...rq->...pr", self.basis.conj(), self.basis) / self.L

    def normal(self, s, noise_var):
        """complex [F, L], float [F] N0 -> (H^H H + N0 I) s, as

            IFFT( sum_p conj(C_p) . FFT(conj(b_p) . y) + N0 FFT(s) ),  y = H s,

        with the basis steps and the tap sum fused (``dsp_kernels.fused``): 2 + 2P FFTs and
        three passes over [F, P, L]."""
        spectrum = fft(s, axis=-1)
        u = ifft(taps_product(self.taps_fft, spectrum), axis=-1)
        v = fft(basis_project(u, self.basis), axis=-1)
        return ifft(taps_reduce(self.taps_fft, v, spectrum, noise_var), axis=-1)

    def power_spectrum(self, stride: int = 1):
        """float [F, ceil(L / stride)]: P(f), the frame-averaged power transfer function (see
        module doc), at every ``stride``-th DFT bin."""
        taps = self.taps_fft[..., ::stride]
        weighted = (self.basis_gram()[..., :, :, None] * taps[..., None, :, :]).sum(axis=-2)
        return (taps.conj() * weighted).sum(axis=-2).real

    def local_response(self, times, n_bins: int):
        """complex [F, S, n_bins]: G(q, f) = sum_p b_p[q] C_p(f) at instants q = ``times`` [S]
        and ``n_bins`` DFT bins (every L / n_bins-th bin of C_p): the frequency response of
        the channel frozen at time q."""
        return frozen_response(self.basis, self.taps_fft[..., ::self.L // n_bins], times)

    def astype(self, dtype) -> "ChannelOperator":
        """The operator in ``dtype`` (no copy where it already is)."""
        gram = None if self.gram is None else self.gram.astype(dtype, copy=False)
        return ChannelOperator(self.basis.astype(dtype, copy=False), self.taps_fft.astype(dtype, copy=False), gram)

    # ---- constructors ---------------------------------------------------------------
    @classmethod
    def from_dd_taps(cls, config: FrameConfig, h, delays, dopplers) -> "ChannelOperator":
        """The paper's DD model: y[k,l] = sum h[d,m] e^{j2pi m (k-d)/MN} x_qp[k-d, l-m].

        Parameters
        ----------
        h : complex [F, D, P]
            h_eff for delays ``delays`` (int [D]) and Dopplers ``dopplers`` (int [P]).

        In time this is r[q] = sum h[d,m] e^{j2pi m (q-d)/MN} s[q-d] (circular), i.e.
        b_m[q] = e^{j2pi m q/MN} and c_m[d] = h[d,m] e^{-j2pi m d/MN}.
        """
        xp = xp_of(h)
        L = config.MN
        delays = xp.asarray(delays)
        dopplers = xp.asarray(dopplers)
        taps = xp.zeros(h.shape[:-2] + (dopplers.size, L), dtype=h.dtype)
        phase = xp.exp(-2j * np.pi * dopplers[None, :] * delays[:, None] / L)   # [D, P]
        taps[..., delays % L] = xp.swapaxes(h * phase, -1, -2)
        basis = doppler_exponentials(dopplers / L, L, xp).astype(h.dtype)
        # integer Doppler bins over a whole period: an orthonormal basis, G = I
        return cls(basis, fft(taps, axis=-1), xp.eye(dopplers.size, dtype=h.dtype))

    @classmethod
    def from_delay_doppler_atoms(cls, L: int, basis, amplitudes, delays, gram=None) -> "ChannelOperator":
        """``DelayAtoms(L, basis, amplitudes, delays, gram).operator()``."""
        return DelayAtoms(L, basis, amplitudes, delays, gram).operator()


@dataclass
class DelayAtoms:
    """A channel as J fractional-delay atoms, each with its own combination of the P basis
    functions (the accurate estimator's fit):

        c_p[d] = sum_j a_jp psinc_L(d - delta_j),   C_p(f) = sum_j a_jp e^{-j2pi f delta_j / L}.

    Attributes
    ----------
    L : int
    basis : complex [..., P, L]
    amplitudes : complex [F, J, P]
    delays : float [F, J] (samples)
    gram : complex [..., P, P] or None (the basis' G, if known)
    """

    L: int
    basis: object
    amplitudes: object
    delays: object
    gram: object = None

    def taps_fft(self, stride: int = 1):
        """complex [F, P, L / stride]: C_p(f) at every ``stride``-th DFT bin (stride divides L):
        the delay ramp on every stride-th bin of L is the ramp of L / stride bins."""
        if self.L % stride:
            raise ValueError(f"stride {stride} must divide L={self.L}")
        xp = xp_of(self.amplitudes)
        ramps = fractional_delay_response(self.delays, self.L // stride, xp, self.amplitudes.dtype)   # [F, J, B]
        return matmul(self.amplitudes.swapaxes(-1, -2), ramps)

    def taps(self, start: int, count: int):
        """complex [F, P, count]: c_p[d] for d = start ... start + count - 1 (circular)."""
        xp = xp_of(self.amplitudes)
        d = xp.arange(start, start + count, dtype=np.float64)
        atoms = periodic_sinc(d[None, None, :] - self.delays[..., None], self.L, xp)             # [F, J, count]
        return matmul(self.amplitudes.swapaxes(-1, -2), atoms.astype(self.amplitudes.dtype, copy=False))

    def operator(self) -> ChannelOperator:
        """The operator with all L taps' spectra."""
        return ChannelOperator(self.basis, self.taps_fft(), self.gram)

    def astype(self, dtype) -> "DelayAtoms":
        """The atoms with basis, amplitudes and Gram in ``dtype`` (delays stay float64)."""
        gram = None if self.gram is None else self.gram.astype(dtype, copy=False)
        return DelayAtoms(self.L, self.basis.astype(dtype, copy=False), self.amplitudes.astype(dtype, copy=False),
                          self.delays, gram)
