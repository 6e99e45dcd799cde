"""LMMSE equalisation: branchless preconditioned conjugate gradient, and the dense reference.

Model after pilot cancellation, per frame, in time (Z unitary, so DD and time are the same):

    r' = r - H s_p = H s_d + w.

The data occupy, in time, the samples q whose delay bin q mod M carries data (the guard
spans all Doppler bins of its delay bins); D is the mask of those samples. The LMMSE with
the exact prior (unit variance on the data, zero on the guard and the pilot) solves

    (D H^H H D + N0 I) s = D H^H r',   s = D s,                                (1)

then x_hat = Z s_hat at the data positions (``cg_lmmse`` with ``mask`` = D). Without the
mask, (1) gives the guard samples unit variance as well: the "unit" prior, which the
preconditioner below inverts almost exactly (relative error 1e-6 after 4 iterations,
where the masked system stands at 1e-2 after 8), and which costs where the guard is a
large part of the grid (``default_prior``). The masked system's residual after 12
iterations is enough for the decisions: PCG with the masked preconditioner D M D makes
the exact LMMSE's bit errors within a few percent (``tests/zakotfs/test_equalizer.py``).

``cg_lmmse`` runs a fixed number K of preconditioned CG iterations on (1), no
data-dependent control flow (so it can be captured in a CUDA graph), started from zero:
its first step is the preconditioner's one-shot estimate M b, scaled to minimise the
A-norm error, and each step costs one product with the normal matrix. The preconditioner is a local Fourier inverse: the
frame-averaged diagonal 1 / (P(f) + N0) fails under Doppler (relative residual 1e-2
after 8 iterations at 1 Doppler bin), and block-diagonal inverses in frequency leave an
outlier eigenvalue at every block edge; windows short enough for the channel to look
time-invariant do not.

Bias and SINR, unit prior (the average of the LMMSE's per-symbol values): every DD symbol is spread
over the whole time-frequency plane, so its bias is the plane's average of the local
per-frequency gain,

    mu = mean_{q, f} |G(q, f)|^2 / (|G(q, f)|^2 + N0),    SINR = mu / (1 - mu),

with G(q, f) the channel's frequency response at time q (``local_power``: S instants, 2h
bins); the unbiased symbols x_hat / mu have error variance 1 / SINR. For a time-invariant
channel this is mean_f P(f) / (P(f) + N0), exact when the DFT diagonalises the Gram matrix.
Under Doppler the frame-averaged P(f) is not enough: |G|^2 / (|G|^2 + N0) is concave, so
averaging the power first overstates mu where nulls move. Measured on the demo grid
(Veh-A at 0.87 Doppler bins, 20 dB, perfect CSI, CG converged), the frame-averaged formula
overstated the measured SINR by 1.6 to 3.9 dB; the mean of the local gains predicts it
(``tests/zakotfs/test_equalizer.py``). The SINR scales the symbols and the LLRs. The data
prior uses the same mu, which understates its SINR (the guard's unknowns are gone), so its
LLRs err on the side of caution; mu read from one frame's solution (E|x_hat_i|^2 = mu_i for
any LMMSE of unit-power symbols) errs either way by more (docs/status.md).
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from dsp_kernels import cpu_cg, fft, ifft, xp_of
from dsp_kernels.fused import cg_step, frame_mean, overlap_add, overlapped_windows, real_dot, xpby

from .channel_operator import ChannelOperator

__all__ = ["CGResult", "cg_lmmse", "pcg", "default_prior", "data_mask", "PRIORS", "DATA_PRIOR_GUARD",
           "local_fourier_preconditioner", "preconditioner_weights", "local_power",
           "default_segments", "dense_lmmse",
           "lmmse_bias", "spectrum_stride"]


def default_segments(L: int, taps: int, doppler_bins: float) -> int:
    """Preconditioner windows for a channel of ``taps`` delay taps and Doppler up to
    ``doppler_bins`` (nu_max T).

    A window of 2h samples errs at its circular edges, where the channel's response crosses
    them (less, the longer the window), and by the Doppler phase inside it,
    2 pi nu_max 2h / B = 2 pi doppler_bins 2h / L (more, the longer the window). With the
    window-averaged power of ``local_fourier_preconditioner``, the best window is the
    longest whose Doppler phase stays within DOPPLER_PHASE = 0.4 rad. Measured with
    ``python -m bench.cg_tuning residual`` (worst CG residual after 12 iterations, Veh-A,
    ``accurate`` estimate):
    - paper grid, 28 dB, 3.5 bins (design 4 bins): windows of 8192 (0.34 rad) 4.5e-4,
      4096 2.1e-3, 2048 1.4e-2;
    - paper grid, 20 dB, 1.74 bins: 8192, 4096 and 2048 all within 1.8e-5 to 4.3e-5;
    - demo grid, 28 dB, 3.5 bins: 256 (0.34 rad) 6.0e-8, 512 3.9e-7, 1024 2.7e-6.
    Windows are kept at least twice the tap window (h >= taps) and at least 2 per frame.
    """
    h = 1
    while L % (4 * h) == 0 and L // (2 * h) >= 2 and 2 * np.pi * doppler_bins * 4 * h / L <= DOPPLER_PHASE:
        h *= 2
    while h < taps and L % (4 * h) == 0 and L // (2 * h) >= 2:
        h *= 2
    return L // h


DOPPLER_PHASE = 0.4
"""Largest Doppler phase (radians) across a preconditioner window, see ``default_segments``."""


@dataclass
class CGResult:
    s: object               # complex [F, L] estimate of the data part of the time signal
    residual: object        # float [F]: ||b - A s|| / ||b|| after the last iteration


def local_power(op: ChannelOperator, segments: int):
    """float [F, S, 2h]: |G(q_m, f)|^2, the channel's power response at the instants
    q_m = m h + h/2 (m < S, h = L / S) on 2h DFT bins (every S/2-th bin;
    ``ChannelOperator.local_response``): what the preconditioner and the bias read."""
    xp = xp_of(op.basis)
    L = op.L
    h = L // segments
    if L % segments or L % (2 * h):
        raise ValueError(f"segments={segments}: both L/S and 2L/S must divide the frame length L={L}")
    if 2 * h > L:
        raise ValueError(f"segments={segments} is too few: windows of 2L/S exceed L={L}")
    instants = (xp.arange(segments) * h + h // 2) % L
    return xp.abs(op.local_response(instants, 2 * h)) ** 2


def preconditioner_weights(op: ChannelOperator, noise_var, segments: int, power=None):
    """(D float [F, S, 2h], W float [2h]): the local Fourier preconditioner's inverse power
    spectra 1 / ((|G_j|^2 + N0) 2h) (with the inverse FFT's 1 / 2h) and its window
    (``local_fourier_preconditioner``), in the operator's real dtype."""
    xp = xp_of(op.basis)
    h = op.L // segments
    power = local_power(op, segments) if power is None else power                    # [F, S, 2h]
    power = 0.5 * (power + xp.roll(power, -1, axis=1))                 # window j: instants j, j + 1
    n0 = xp.asarray(noise_var)[:, None, None]
    real = op.basis.real.dtype
    inverse = (1.0 / ((power + n0) * (2 * h))).astype(real)
    window = xp.sin(np.pi * (xp.arange(2 * h) + 0.5) / (2 * h)).astype(real)
    return inverse, window


def local_fourier_preconditioner(op: ChannelOperator, noise_var, segments: int, power=None):
    """v -> sum_j W_j F_j^H (|G_j|^2 + N0)^{-1} F_j W_j v, an SPD approximate inverse of
    H^H H + N0 I.

    The frame is cut into ``segments`` overlapping windows of 2h samples (h = L / S, hop h,
    circular), W_j = sin(pi (t + 1/2) / 2h) so that sum_j W_j^2 = 1. Doppler makes H^H H
    banded in frequency rather than diagonal; over a window of 2L / S samples the Doppler
    phase moves by only 4 pi nu T / S, so each window is nearly circulant while the frame
    as a whole is not. |G_j(f)|^2 is the window's W^2-weighted mean of the channel's power
    response |G(q, f)|^2 (``ChannelOperator.local_response``), the diagonal of the window's
    Gram matrix in its Fourier basis, by a two-point quadrature at t = h/2 and 3h/2 (equal
    weights; the instants are shared with the neighbouring windows).

    ``power``: ``local_power(op, segments)``, if already computed.

    The mean matters where paths of different Doppler cancel: the null of G(q, f) moves
    during a window, and the response frozen at the centre puts it there at full depth.
    Measured at the paper grid, 28 dB, Veh-A at 3.5 Doppler bins (perfect CSI, 3
    realisations): the worst residual after 12 iterations fell from 1.7e-2 to 1.8e-3 at
    S = 512, and to 3.3e-4 at S = 256; at 0 Doppler the two are alike.
    """
    inverse, window = preconditioner_weights(op, noise_var, segments, power)

    def apply(v):
        spectra = fft(overlapped_windows(v, segments, window), axis=-1)
        spectra *= inverse
        return overlap_add(ifft(spectra, axis=-1, norm="forward"), window)
    return apply


PRIORS = ("data", "unit")

DATA_PRIOR_GUARD = 0.1
"""``default_prior`` picks the data prior where the guard holds at least this fraction of
the delay bins."""


def default_prior(config) -> str:
    """"data" where the guard is at least DATA_PRIOR_GUARD of the delay bins (there the
    unit prior costs; measured in docs/status.md), else "unit" (one product with the mask
    less an iteration, the least work)."""
    return "data" if config.guard_bins >= DATA_PRIOR_GUARD * config.M else "unit"


def data_mask(config, xp=np, dtype=np.float32):
    """real [MN]: D, 1 on the samples q whose delay bin q mod M carries data, else 0."""
    return xp.asarray(np.tile(config.delay_is_data, config.N), dtype=dtype)


def cg_lmmse(op: ChannelOperator, r, noise_var, iterations: int = 4,
             segments: int = 32, power=None, mask=None) -> CGResult:
    """Solve (1) for a batch of frames by K = ``iterations`` steps of PCG.

    Parameters
    ----------
    op : ChannelOperator (F frames)
    r : complex [F, L]   received frame minus the pilot's contribution
    noise_var : float [F]
    segments : int       preconditioner windows, see ``local_fourier_preconditioner``
    power : float [F, S, 2h] or None   ``local_power(op, segments)``, if already computed
    mask : real [L] or None   D (``data_mask``): the data prior; None: the unit prior

    With the mask, the normal products are D (H^H H + N0 I) and the preconditioner D M: the
    right-hand side D H^H r' and so every residual and search direction stay on the data
    samples, where the iteration is PCG on (1) with the preconditioner D M D.

    On the CPU, complex64 frames with a frame-long operator run compiled a frame at a time
    (``dsp_kernels.cpu_cg``, the same iterations); this array code is its reference.
    """
    xp = xp_of(r)
    n0 = xp.asarray(noise_var, dtype=r.real.dtype)
    if isinstance(op, ChannelOperator) and op.compiled(r):
        ones = np.ones(op.L, np.float32) if mask is None else mask
        x, relative = cpu_cg.pcg(r, op.taps_fft, op.basis, n0, *preconditioner_weights(op, n0, segments, power),
                                 iterations, ones)
        return CGResult(x, relative)
    precondition = local_fourier_preconditioner(op, n0, segments, power)
    if mask is None:
        return pcg(lambda v: op.normal(v, n0), precondition, op.adjoint(r), iterations)
    return pcg(lambda v: mask * op.normal(v, n0), lambda v: mask * precondition(v), mask * op.adjoint(r), iterations)


def pcg(normal, precondition, b, iterations: int) -> CGResult:
    """K = ``iterations`` steps of preconditioned CG on A s = b from s = 0, no data-dependent
    control flow: ``normal`` v -> A v (Hermitian positive definite), ``precondition``
    v -> M v (an approximate inverse of A, Hermitian positive definite), b complex [F, L]."""
    xp = xp_of(b)
    tiny = xp.finfo(b.real.dtype).tiny
    x = xp.zeros_like(b)
    res = b.copy()
    z = precondition(res)
    p = z
    rz = real_dot(res, z)
    for _ in range(iterations):
        Ap = normal(p)
        alpha = rz / xp.maximum(real_dot(p, Ap), tiny)
        x, res = cg_step(x, res, p, Ap, alpha)
        z = precondition(res)
        rz_next = real_dot(res, z)
        p = xpby(z, p, rz_next / xp.maximum(rz, tiny))
        rz = rz_next
    return CGResult(x, xp.sqrt(real_dot(res, res) / xp.maximum(real_dot(b, b), tiny)))


def spectrum_stride(segments: int) -> int:
    """The DFT-bin stride of the local responses that the equaliser reads (``local_power``:
    2h = 2L/S bins, every S/2-th)."""
    return max(1, segments // 2)


def lmmse_bias(power, noise_var):
    """float [F]: mu = mean over instants q and bins f of |G(q, f)|^2 / (|G(q, f)|^2 + N0),
    ``power`` = ``local_power`` [F, S, 2h] (module doc)."""
    xp = xp_of(power)
    n0 = xp.asarray(noise_var)[:, None, None]
    return frame_mean(power / (power + n0))


def dense_lmmse(H: np.ndarray, y: np.ndarray, noise_var: float, *, bias: bool = False):
    """Exact LMMSE for small problems: x_hat = (H^H H + N0 I)^{-1} H^H y (Cholesky).

    H: complex [n_obs, n_x], y: complex [n_obs]. Returns x_hat [n_x], and with ``bias`` also
    mu [n_x], mu_i = [(H^H H + N0 I)^{-1} H^H H]_ii = 1 - N0 [(H^H H + N0 I)^{-1}]_ii.
    """
    import scipy.linalg

    A = H.conj().T @ H + noise_var * np.eye(H.shape[1])
    factor = scipy.linalg.cho_factor(A)
    x_hat = scipy.linalg.cho_solve(factor, H.conj().T @ y)
    if not bias:
        return x_hat
    mu = 1 - noise_var * np.real(np.diag(scipy.linalg.cho_solve(factor, np.eye(A.shape[0]))))
    return x_hat, mu
