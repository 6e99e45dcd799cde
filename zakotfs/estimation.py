"""Channel estimation from the embedded point pilot.

The pilot is a pulse train in time: s_p[k_p + nM] = (a_p / sqrt(N)) e^{j2pi n l_p/N}.
Received samples r[k_p + tau + nM] for taps tau in the window [-t_neg, t_pos + b]
(``tap_window``: ``FrameConfig.tap_window`` and the receiver's timing back-off b) hold no
data, so the normalised snapshots

    z[tau, n] = r[k_p + tau + nM] * sqrt(N) / a_p * e^{-j2pi n l_p / N}  ~  g[k_p + tau + nM, tau]

sample the channel impulse response g[q, tau] (r[q] = sum_tau g[q, tau] s[q - tau]) at N
instants per tap. Two estimators read them:

``paper``  The model-free DD read-off (spec): h_eff[d, m] = (1/N) sum_n z[d, n] e^{-j2pi nm/N}
           e^{-j2pi m k_p/MN}, for |m| <= m_max, cells under a noise threshold set to 0,
           giving the paper's structured sparse DD operator.
``accurate`` A physical model. Time variation: each tap is fitted by least squares to P
           discrete prolate spheroidal sequences b_p[q] (bandwidth nu_max, the frame's
           true sample instants). Delay: the coefficient profiles c_p[tau] are fitted
           jointly by a sparse sum of band-limited (periodic-sinc) atoms at fractional
           delays delta_j (orthogonal matching pursuit with a fine local delay search),
           so the operator keeps each path's full sinc tails instead of truncating them to
           the guard window (the spec's measured -26 dB limit). By default
           (``path_fit``) a second fit models each atom as one path, a fractional delay
           times one Doppler tone with one complex amplitude where a delay atom has P
           (``AccurateEstimator.fit_paths``), and each frame keeps the fit of smaller
           Akaike criterion (``AccurateEstimator.select``).

Noise: ``paper`` takes the median of |y|^2 over the guard's noise-only DD cells (taps
left of the channel), ``accurate`` the residual of its DPSS fit less the data's leak into
the snapshots (the data beyond the guard reach them through the channel's sinc tails, white
across n like the noise; ``AccurateEstimator.data_leak`` predicts their power from the fitted
channel); both in N0 per sample.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache

import numpy as np
from scipy.signal.windows import dpss

from dsp_kernels import Backend, fft, get_backend, xp_of

from .channel_operator import ChannelOperator, DelayAtoms, periodic_sinc
from .config import FrameConfig

__all__ = ["ChannelEstimate", "pilot_snapshots", "snapshot_index", "SnapshotReader", "PaperEstimator", "AccurateEstimator",
           "periodic_sinc", "dpss_basis", "dpss_count", "tap_window", "fit_range", "tone_table", "FIT_EDGE"]


@dataclass
class ChannelEstimate:
    """What the equaliser needs: the operator and the noise variance per sample [F]."""

    operator: ChannelOperator       # or DelayAtoms (AccurateEstimator.fit)
    noise_var: object
    n_components: object = None     # int [F]: taps (paper) or delay atoms (accurate) kept
    delay_span: object = None       # float [F, 2]: first and last delay (samples) of the atoms kept (accurate), NaN where none


def tap_window(config: FrameConfig, backoff: int = 0) -> tuple[int, int]:
    """(t_neg, t_pos + backoff): the taps a receiver that reads each frame ``backoff`` samples
    into its cyclic prefix estimates. Read early, the channel and the data-free samples after
    the pilot appear ``backoff`` taps later, so the window reaches that much further; its
    start stays, so that a frame placed up to ``backoff`` samples late keeps its first path
    in the window (``receiver.default_backoff``)."""
    t_neg, t_pos = config.tap_window
    return t_neg, t_pos + backoff


def snapshot_index(config: FrameConfig, backoff: int = 0) -> np.ndarray:
    """int [W, N]: sample index k_p + tau + nM of each snapshot, tau in ``tap_window``."""
    t_neg, t_pos = tap_window(config, backoff)
    taus = np.arange(-t_neg, t_pos + 1)
    return config.pilot_k + taus[:, None] + config.M * np.arange(config.N)[None, :]


class SnapshotReader:
    """Precomputed gather of the pilot snapshots z[tau, n] (module doc) for one backend."""

    def __init__(self, config: FrameConfig, xp=np, dtype=np.complex128, backoff: int = 0):
        self.index = xp.asarray(snapshot_index(config, backoff))
        derotate = np.exp(-2j * np.pi * np.arange(config.N) * config.pilot_l / config.N)
        self.scale = xp.asarray(derotate * np.sqrt(config.N) / config.pilot_amplitude, dtype=dtype)

    def __call__(self, r, offset=None):
        """complex [F, MN] received frame (CP removed), complex [F] constant to remove from it
        (or None) -> complex [F, W, N]."""
        z = r[..., self.index]
        return (z if offset is None else z - offset[:, None, None]) * self.scale


def pilot_snapshots(config: FrameConfig, r):
    """complex [F, MN] received frame (CP removed) -> complex [F, W, N] snapshots z[tau, n]."""
    return SnapshotReader(config, xp_of(r), r.dtype)(r)


def guard_noise_variance(config: FrameConfig, z):
    """float [F]: N0 from the DD read-off cells of taps [max_delay - g_neg + 1, -1].

    These delay bins lie between the data leaking in from before the guard and the
    channel's causal response; |y|^2 there is exponential with mean N0, so
    N0 = median / ln 2 is robust to the few cells hit by sinc tails.
    """
    xp = xp_of(z)
    t_neg, _ = config.tap_window
    first = max(0, t_neg + config.max_delay - config.guard_neg + 1)
    cells = fft(z[..., first:t_neg, :], axis=-1, norm="ortho")     # y / (a_p / sqrt(N))
    power = xp.abs(cells.reshape(cells.shape[0], -1)) ** 2
    return xp.median(power, axis=-1) / np.log(2) * (config.pilot_amplitude ** 2 / config.N)


FIT_EDGE = 2.0
"""Samples at each end of the tap window where the delay fit puts no atom
(``AccurateEstimator.fit_delays``)."""


def fit_range(config: FrameConfig, backoff: int = 0) -> tuple[float, float]:
    """[lo, hi]: the delays (samples) the accurate estimator's atoms may take, ``tap_window``
    less FIT_EDGE samples at each end."""
    t_neg, t_pos = tap_window(config, backoff)
    return float(-t_neg + FIT_EDGE), float(t_pos - FIT_EDGE)


def dpss_count(nw: float, L: int) -> int:
    """P = ceil(2 nw) + 3 DPSS functions for time-bandwidth nw (at most L - 1; 1 for nw <= 0,
    the constant): with the 3 beyond the Shannon number a tone anywhere in the band is
    represented to -50 dB (``AccurateEstimator``)."""
    return 1 if nw <= 0 else min(int(np.ceil(2 * nw)) + 3, L - 1)


COARSE_STEPS = 4
"""The delay fit's first search grid, in steps a sample. The matched-filter score of one
path is a sinc^2 in the candidate's delay (main lobe +-1 sample, side lobes under 5 %), so
its best point on the coarse grid lies within a coarse step of the fine maximum: 9 + 15
candidates find what 65 do at delay_resolution 32 (the same delays on 168 demo and paper
frames at 10, 20 and 30 dB)."""


@lru_cache(maxsize=16)
def dpss_basis(L: int, nw: float, P: int) -> np.ndarray:
    """complex128 [P, L]: DPSS of half-bandwidth nw / L, scaled to mean |b|^2 = 1."""
    if nw <= 0:
        return np.ones((1, L), complex)
    return dpss(L, nw, P).reshape(P, L).astype(complex) * np.sqrt(L)


LEAK_LAGS = 64
"""The largest lag (samples) at which ``AccurateEstimator.data_leak`` counts the channel's
power (at most M): a periodic-sinc atom's power falls as 1 / (pi t)^2, so the lags beyond
add little to the N0 estimate (docs/status.md)."""

LEAK_FLOOR = 0.5
"""N0 is the snapshots' residual variance less the data's predicted leak, at least this
fraction of it: a frame's leak depends on its data, which the prediction averages, and an
N0 read low makes its LLRs overconfident."""

TONE_STEPS = 256
"""The path fit's Doppler grid: steps a Doppler bin (1 / T, T the frame). A tone half a
step (1 / 512 bin) off the grid loses about (pi / 512)^2 / 3 ~ 1e-5 of its energy."""

COARSE_TONE_STEPS = 4
"""The path fit's first Doppler grid, in steps a bin: a tone's matched-filter score is a
Dirichlet kernel^2 in the candidate's Doppler (main lobe +-1 bin), so its best coarse point
lies within a coarse step of the fine maximum."""

PATH_ROUNDS, FINAL_ROUNDS = 1, 8
"""Local refinements of every path after each new path, and after the last."""

REFINE_DELAYS = 9
"""A refinement's delay candidates: 9 from -1/16 to 1/16 sample around each path's delay."""

REFINE_TONES = 8
"""A refinement's Doppler candidates: the path's tone +- 8 fine steps (1/32 bin)."""


@lru_cache(maxsize=16)
def tone_table(L: int, nw: float, P: int) -> tuple[np.ndarray, np.ndarray]:
    """(complex128 [P, G] d(nu), int [Gc] coarse columns): the DPSS coefficients
    d_p(nu) = (1/L) sum_q b_p[q]^* e^{j2pi nu q / L} of the tones nu = i / TONE_STEPS
    bins, |i| <= ceil(nw TONE_STEPS), each column scaled to unit norm; and the columns on
    the coarse grid (every TONE_STEPS / COARSE_TONE_STEPS-th, the centre among them)."""
    basis = dpss_basis(L, nw, P)
    half = int(np.ceil(nw * TONE_STEPS))
    bins = np.arange(-half, half + 1) / TONE_STEPS
    q = np.arange(L)
    table = np.empty((P, bins.size), complex)
    for start in range(0, bins.size, 64):
        chunk = bins[start:start + 64]
        table[:, start:start + 64] = basis.conj() @ np.exp(2j * np.pi * chunk[:, None] * q[None, :] / L).T / L
    table /= np.linalg.norm(table, axis=0)
    ratio = TONE_STEPS // COARSE_TONE_STEPS
    coarse = half + ratio * np.arange(-(half // ratio), half // ratio + 1)
    return table, coarse


class PaperEstimator:
    """Model-free DD read-off with a noise threshold (the reference paper's estimator).

    Parameters
    ----------
    config : FrameConfig
    max_doppler_hz : float
        Doppler bins |m| <= ceil(max_doppler_hz T) + 1 are read off (the +1 keeps most of
        the fractional-Doppler leakage).
    threshold : float
        Cells with |h_eff|^2 < threshold * N0 / a_p^2 are set to zero.
    backoff : int
        The receiver's timing back-off (``tap_window``).
    """

    def __init__(self, config: FrameConfig, max_doppler_hz: float = 1000.0, threshold: float = 9.0,
                 *, backend: Backend | None = None, dtype=np.complex128, backoff: int = 0):
        xp = (backend or get_backend("cpu")).xp
        self.config = config
        self.threshold = threshold
        self.snapshots = SnapshotReader(config, xp, dtype, backoff)
        m_max = min(int(np.ceil(max_doppler_hz * config.frame_time)) + 1, config.N // 2)
        self.dopplers = np.arange(-m_max, m_max + 1) if 2 * m_max + 1 <= config.N \
            else np.arange(-(config.N // 2), config.N - config.N // 2)
        t_neg, t_pos = tap_window(config, backoff)
        self.delays = np.arange(-t_neg, t_pos + 1)
        self._delays, self._dopplers = xp.asarray(self.delays), xp.asarray(self.dopplers)
        self._bins = xp.asarray(self.dopplers % config.N)
        self._twist = xp.asarray(np.exp(-2j * np.pi * self.dopplers * config.pilot_k / config.MN), dtype=dtype)

    def read_off(self, r):
        """complex [F, MN] -> (h_eff [F, D, P] thresholded, N0 [F]) for ``self.delays`` x
        ``self.dopplers``."""
        c, xp = self.config, xp_of(r)
        z = self.snapshots(r)
        noise_var = guard_noise_variance(c, z)
        dd = fft(z, axis=-1) / c.N                                        # [F, W, N], bin m mod N
        h = dd[..., self._bins] * self._twist                              # [F, W, P]
        floor = self.threshold * noise_var / c.pilot_amplitude ** 2
        return xp.where(xp.abs(h) ** 2 >= floor[:, None, None], h, 0), noise_var

    def __call__(self, r) -> ChannelEstimate:
        """complex [F, MN] -> ChannelEstimate."""
        h, noise_var = self.read_off(r)
        op = ChannelOperator.from_dd_taps(self.config, h, self._delays, self._dopplers)
        return ChannelEstimate(op, noise_var, (h != 0).sum(axis=(-1, -2)))


class AccurateEstimator:
    """DPSS time variation x sparse fractional-delay atoms (see module doc).

    Parameters
    ----------
    config : FrameConfig
    max_doppler_hz : float
        Design Doppler nu_max; P = ceil(2 nu_max T) + 3 DPSS functions (measured: a tone
        anywhere in the band is then represented to -50 dB; with + 1 only to -20 dB).
    n_atoms : int
        Upper bound on the delay atoms fitted per frame (the fit stops at the noise floor).
    delay_resolution : int
        Fine delay search step 1 / delay_resolution samples around each coarse peak.
    path_fit : bool or None
        Also fit paths (delay x Doppler tone, ``fit_paths``), and keep per frame whichever
        of the two fits ``select`` prefers; otherwise the delay atoms alone (``fit_delays``).
        None: where the backend fits paths in compiled code (the CPU; on the GPU the array
        code would add its launches to every frame).
    n_paths : int
        Upper bound on the paths fitted per frame (``path_fit``).
    backoff : int
        The receiver's timing back-off (``tap_window``).
    """

    def __init__(self, config: FrameConfig, max_doppler_hz: float = 1000.0, n_atoms: int = 16,
                 delay_resolution: int = 32, *, path_fit: bool | None = None, n_paths: int = 24,
                 backend: Backend | None = None, dtype=np.complex128, backoff: int = 0):
        self.backend = backend or get_backend("cpu")
        self.config = c = config
        self.xp = xp = self.backend.xp
        self.snapshots = SnapshotReader(c, xp, dtype, backoff)
        nw = max_doppler_hz * c.frame_time
        self.P = dpss_count(nw, c.N)
        self.basis = dpss_basis(c.MN, nw, self.P)                               # [P, L]
        idx = snapshot_index(c, backoff)                                       # [W, N]
        sampled = self.basis[:, idx].transpose(1, 2, 0)                         # [W, N, P]
        self.pinv = np.linalg.pinv(sampled)                                     # [W, P, N]
        self.coeff_gain = float(np.mean((np.abs(self.pinv) ** 2).sum(-1)))     # var(c) / var(z)
        self.sampled = sampled
        t_neg, t_pos = tap_window(c, backoff)
        self.taus = np.arange(-t_neg, t_pos + 1).astype(float)
        self.n_atoms = min(n_atoms, self.taus.size)
        self.delay_resolution = delay_resolution
        self.offsets = np.arange(-delay_resolution, delay_resolution + 1) / delay_resolution
        self.coarse_stride = max(delay_resolution // COARSE_STEPS, 1)
        self.edge = FIT_EDGE
        self.fit_range = fit_range(c, backoff)
        W = self.taus.size
        self.floor_factor = self.P + 4 * np.sqrt(self.P) + 2 * np.log(W)     # see fit_delays
        self.path_fit = self.backend.name == "cpu" if path_fit is None else bool(path_fit)
        self.n_paths = int(n_paths)
        self.tones, self.coarse_tones = tone_table(c.MN, nw, self.P)
        n_fit = int(((self.taus >= self.fit_range[0]) & (self.taus <= self.fit_range[1])).sum())
        self.path_floor_factor = np.log(n_fit * self.coarse_tones.size) + 7.0      # see fit_paths
        # the same constants on the backend, once
        self._pinv = xp.asarray(self.pinv, dtype=dtype)
        self._sampled = xp.asarray(sampled, dtype=dtype)
        self._basis = xp.asarray(self.basis, dtype=dtype)
        self.gram = self.basis.conj() @ self.basis.T / c.MN                              # [P, P]
        self._gram = xp.asarray(self.gram, dtype=dtype)
        self._taus = xp.asarray(self.taus)
        self._offsets = xp.asarray(self.offsets)
        self._fit_taps = xp.asarray((self.taus >= self.fit_range[0]) & (self.taus <= self.fit_range[1]))
        lags = np.arange(-min(c.M, LEAK_LAGS), min(c.M, LEAK_LAGS) + 1)
        data_bin = c.delay_is_data[(c.pilot_k + self.taus.astype(int)[:, None] - lags[None, :]) % c.M]   # [W, T]
        self.leak_lags, self.leak_weights = lags.astype(float), data_bin.mean(axis=0)
        self._leak_lags = xp.asarray(self.leak_lags)
        self._leak_weights = xp.asarray(self.leak_weights)
        self._tones = xp.asarray(self.tones)
        self._coarse_tones = xp.asarray(self.coarse_tones)
        ratio = TONE_STEPS // COARSE_TONE_STEPS
        self._detect_steps = xp.arange(1 - ratio, ratio)
        self._tone_steps = xp.arange(-REFINE_TONES, REFINE_TONES + 1)
        self._delay_steps = xp.asarray(np.linspace(-1 / 16, 1 / 16, REFINE_DELAYS))

    @property
    def operator_basis(self):
        """The DPSS basis b_p [P, L] (on the backend, the receiver's dtype) that every
        estimate's operator carries: one object, so that what depends on it alone is
        computed once (``Receiver``'s windowed-operator coefficients)."""
        return self._basis

    def _atoms(self, delays, xp):
        """complex [..., W, J]: periodic-sinc atoms at ``delays`` [..., J] on the tap window."""
        return periodic_sinc(self._taus[:, None] - delays[..., None, :], self.config.MN, xp)

    def fit_delays(self, coeffs, coeff_var):
        """complex [F, W, P] tap coefficients, their noise variance [F]
        -> (amplitudes [F, J, P], delays [F, J]).

        Joint OMP over the fit's range [lo, hi], the window less ``edge`` samples each side
        (an atom centred at the window's edge is half unobserved, so a small residual there
        buys it a large, unconstrained amplitude; measured: a spurious path of 0.05 power,
        operator NMSE -13 dB). Each iteration:

        1. the tap of largest residual energy in [lo, hi]. A path beyond them is fitted as
           well as an atom at the edge can; were its taps picked, their candidates would
           all clip to the edge and score nothing, ending the fit before the other paths (a
           -20 dB path 1.6 samples beyond the demo grid's edge: 12382 bit errors against
           5519 with its taps passed over, 1068 with perfect CSI);
        2. its delay by the matched-filter score sum_p |a^H R_p|^2 / |a|^2 within a sample
           of it: on a grid of COARSE_STEPS a sample, then on the fine grid 1 /
           delay_resolution strictly between the best coarse point's neighbours;
        3. all atoms refitted by least squares.

        An atom whose score is within the noise (chi-square with 2P degrees of freedom,
        maximised over the window: t = P + 4 sqrt(P) + 2 ln W times the coefficient
        variance) switches that frame's fit off for the rest of the loop: inactive atoms are
        held at zero by a large ridge, so noise never enters as pairs of close atoms with
        opposite amplitudes. Shapes and iteration count are fixed.
        """
        xp = xp_of(coeffs)
        F = coeffs.shape[0]
        delays = xp.zeros((F, 0))
        active = xp.ones((F, 0), dtype=bool)
        residual = coeffs
        amplitudes = None
        R, stride = self.delay_resolution, self.coarse_stride
        fine = xp.arange(1 - stride, stride)                       # between the coarse neighbours
        floor = self.floor_factor * coeff_var                                           # [F]
        for _ in range(self.n_atoms):
            energy = xp.where(self._fit_taps, (xp.abs(residual) ** 2).sum(-1), -1.0)    # [F, W]
            peak = self._taus[xp.argmax(energy, axis=-1)]                                # [F]
            coarse, _ = self._best_offset(residual, peak, xp.arange(0, 2 * R + 1, stride)[None])
            candidate, score = self._best_offset(residual, peak, xp.clip(coarse[:, None] + fine, 0, 2 * R))
            still = (score > floor) & (active[:, -1] if active.shape[1] else True)
            delays = xp.concatenate([delays, self._candidates(peak, candidate[:, None])], axis=1)
            active = xp.concatenate([active, still[:, None]], axis=1)
            amplitudes, residual = self._refit(coeffs, delays, active, xp)
        return amplitudes, delays, active

    def _candidates(self, peak, k):
        """float [F], int [F, K] -> float [F, K]: the candidate delays peak + (k - R) / R,
        kept ``edge`` samples inside the window."""
        return xp_of(peak).clip(peak[:, None] + self._offsets[k], *self.fit_range)

    def _best_offset(self, residual, peak, k):
        """complex [F, W, P] residual, float [F] peak tap, int [F or 1, K] offset indices ->
        (int [F] the best k, float [F] its score): the matched-filter score
        sum_p |a^H R_p|^2 / |a|^2 of the atoms a at ``_candidates(peak, k)``."""
        xp = xp_of(residual)
        k = xp.broadcast_to(k, (peak.shape[0], k.shape[-1]))
        atoms = self._atoms(self._candidates(peak, k), xp)                               # [F, W, K]
        score = (xp.abs(xp.einsum("fwk,fwp->fkp", atoms.conj(), residual)) ** 2).sum(-1)
        score = score / (xp.abs(atoms) ** 2).sum(1)
        best = xp.argmax(score, axis=-1)
        frames = xp.arange(peak.shape[0])
        return k[frames, best], score[frames, best]

    def _refit(self, coeffs, delays, active, xp):
        """Least squares over the active atoms; inactive ones get a ridge of 1e9 x trace."""
        atoms = self._atoms(delays, xp).astype(coeffs.dtype)                          # [F, W, J]
        gram = xp.einsum("fwj,fwk->fjk", atoms.conj(), atoms)
        scale = xp.trace(gram, axis1=1, axis2=2).real[:, None]                          # [F, 1]
        ridge = xp.where(active, 1e-9, 1e9) * scale
        gram = gram + ridge[..., None] * xp.eye(gram.shape[-1])[None]
        amplitudes = xp.linalg.solve(gram, xp.einsum("fwj,fwp->fjp", atoms.conj(), coeffs))
        amplitudes = amplitudes * active[..., None]
        return amplitudes, coeffs - xp.einsum("fwj,fjp->fwp", atoms, amplitudes)

    def fit_paths(self, coeffs, coeff_var):
        """complex [F, W, P] tap coefficients, their noise variance [F]
        -> (amplitudes complex128 [F, K, P], delays [F, K], active [F, K]), K = ``n_paths``.

        The path model: a path is a periodic-sinc atom a(delta) on the taps times one
        Doppler tone, whose DPSS coefficients d(nu) (``tone_table``, unit norm) it carries,

            C[tau, p] = sum_k h_k a_tau(delta_k) d_p(nu_k),

        one complex amplitude h_k a path where a delay atom has P. Each of the K iterations:

        1. the cell (tap in [lo, hi], coarse tone) of largest |R d(nu)^*|^2;
        2. the delay by the delay fit's search (``fit_delays``, step 2) on R d(nu)^*, the
           tone on the fine grid strictly between the coarse neighbours on a(delta)^T R,
           then the delay again on R d(nu)^* at the fine tone;
        3. the paths' amplitudes by least squares, then PATH_ROUNDS refinements: every path,
           its own contribution added back to the residual, moves to the best of its tone
           +- REFINE_TONES fine steps and then of REFINE_DELAYS delays within 1/16 sample
           (all paths at once), and the amplitudes are refitted. FINAL_ROUNDS more follow
           the last iteration.

        The fit stops as ``fit_delays`` does, at the first path whose score
        |a^T R d^*|^2 / |a|^2 is within the noise: an exponential variable maximised over
        the fit's taps x coarse tones, floor ``path_floor_factor`` = ln(taps x tones) + 7
        times the coefficient variance. Inactive paths are held at zero by a large ridge
        and move no more; shapes and iteration count are fixed.
        """
        xp = xp_of(coeffs)
        coeffs = coeffs.astype(np.complex128)
        F, W, P = coeffs.shape
        G = self._tones.shape[1]
        frames = xp.arange(F)
        delays = xp.zeros((F, 0))
        index = xp.zeros((F, 0), dtype=xp.int64)
        active = xp.ones((F, 0), dtype=bool)
        floor = self.path_floor_factor * coeff_var
        residual = coeffs
        coarse = self._tones[:, self._coarse_tones]                                     # [P, Gc]
        for k in range(self.n_paths):
            cells = xp.einsum("fwp,pg->fwg", residual, coarse.conj())                  # [F, W, Gc]
            energy = xp.where(self._fit_taps[:, None], xp.abs(cells) ** 2, -1.0).reshape(F, -1)
            best = xp.argmax(energy, axis=-1)
            tap, tone = best // coarse.shape[1], best % coarse.shape[1]
            delay = self._search_delay(cells[frames, :, tone][..., None], self._taus[tap])
            projected = xp.einsum("fw,fwp->fp", self._atoms(delay[:, None], xp)[..., 0].real, residual)
            candidates = xp.clip(self._coarse_tones[tone][:, None] + self._detect_steps, 0, G - 1)   # [F, C]
            score = xp.abs(xp.einsum("fp,pfc->fc", projected, self._tones[:, candidates].conj())) ** 2
            fine = candidates[frames, xp.argmax(score, axis=-1)]
            along = xp.einsum("fwp,pf->fw", residual, self._tones[:, fine].conj())            # [F, W]
            delay = self._search_delay(along[..., None], xp.floor(delay + 0.5))
            atom = self._atoms(delay[:, None], xp)[..., 0].real
            score = xp.abs((atom * along).sum(-1)) ** 2 / (atom ** 2).sum(-1)
            still = (score > floor) & (active[:, -1] if active.shape[1] else True)
            delays = xp.concatenate([delays, delay[:, None]], axis=1)
            index = xp.concatenate([index, fine[:, None]], axis=1)
            active = xp.concatenate([active, still[:, None]], axis=1)
            h = self._path_refit(coeffs, delays, index, active)
            for round_ in range(PATH_ROUNDS + (FINAL_ROUNDS if k == self.n_paths - 1 else 0)):
                moving = active & (still[:, None] if round_ < PATH_ROUNDS else True)
                delays, index = self._path_round(coeffs, delays, index, h, moving)
                h = self._path_refit(coeffs, delays, index, active)
            residual = coeffs - self._path_model(delays, index, h)
        amplitudes = xp.einsum("pfk,fk->fkp", self._tones[:, index], h)
        return amplitudes, delays, active

    def _search_delay(self, residual, peak):
        """complex [F, W, P'], float [F] tap -> float [F]: the delay fit's search (coarse grid,
        then the fine one between the best coarse point's neighbours) around ``peak``."""
        xp = xp_of(residual)
        R, stride = self.delay_resolution, self.coarse_stride
        coarse, _ = self._best_offset(residual, peak, xp.arange(0, 2 * R + 1, stride)[None])
        k, _ = self._best_offset(residual, peak, xp.clip(coarse[:, None] + xp.arange(1 - stride, stride), 0, 2 * R))
        return self._candidates(peak, k[:, None])[:, 0]

    def _path_model(self, delays, index, h):
        """complex [F, W, P]: sum_k h_k a(delta_k) d(nu_k)^T."""
        xp = xp_of(delays)
        return xp.einsum("fwk,pfk,fk->fwp", self._atoms(delays, xp).real, self._tones[:, index], h)

    def _path_refit(self, coeffs, delays, index, active):
        """complex [F, K]: least squares of the paths' amplitudes; inactive ones get a ridge
        of 1e9 x trace (active ones 1e-9 x trace)."""
        xp = xp_of(coeffs)
        atoms = self._atoms(delays, xp).real                                            # [F, W, K]
        tones = self._tones[:, index]                                                   # [P, F, K]
        gram = xp.einsum("fwj,fwk->fjk", atoms, atoms) * xp.einsum("pfj,pfk->fjk", tones.conj(), tones)
        rhs = xp.einsum("fwj,fwp,pfj->fj", atoms, coeffs, tones.conj())
        scale = xp.trace(gram, axis1=1, axis2=2).real[:, None]
        gram = gram + (xp.where(active, 1e-9, 1e9) * scale)[..., None] * xp.eye(gram.shape[-1])[None]
        return xp.linalg.solve(gram, rhs[..., None])[..., 0] * active

    def _path_round(self, coeffs, delays, index, h, moving):
        """One refinement of every path where ``moving`` [F, K] (``fit_paths``, step 3) ->
        (delays, tone indices). Path k's own contribution h_k a_k d_k^T is added back to the
        residual R in its projections: a_k^T R + h_k |a_k|^2 d_k on the tones, and
        R d^* + h_k (d_k . d^*) a_k on the delays."""
        xp = xp_of(coeffs)
        G = self._tones.shape[1]
        atoms = self._atoms(delays, xp).real                                            # [F, W, K]
        tones = self._tones[:, index]                                                   # [P, F, K]
        residual = coeffs - xp.einsum("fwk,pfk,fk->fwp", atoms, tones, h)
        projected = xp.einsum("fwk,fwp->fkp", atoms, residual) \
            + (h * (atoms ** 2).sum(1))[..., None] * tones.transpose(1, 2, 0)
        candidates = xp.clip(index[..., None] + self._tone_steps, 0, G - 1)              # [F, K, C]
        score = xp.abs(xp.einsum("fkp,pfkc->fkc", projected, self._tones[:, candidates].conj())) ** 2
        fine = xp.take_along_axis(candidates, xp.argmax(score, axis=-1)[..., None], -1)[..., 0]
        new = self._tones[:, fine].conj()                                               # [P, F, K]
        along = xp.einsum("fwp,pfk->fkw", residual, new) \
            + (h * (tones * new).sum(0))[..., None] * atoms.transpose(0, 2, 1)          # [F, K, W]
        shifted = xp.clip(delays[..., None] + self._delay_steps, *self.fit_range)        # [F, K, C]
        cand_atoms = periodic_sinc(self._taus[None, None, None, :] - shifted[..., None], self.config.MN, xp).real
        score = xp.abs(xp.einsum("fkcw,fkw->fkc", cand_atoms, along)) ** 2 / (cand_atoms ** 2).sum(-1)
        delay = xp.take_along_axis(shifted, xp.argmax(score, axis=-1)[..., None], -1)[..., 0]
        return xp.where(moving, delay, delays), xp.where(moving, fine, index)

    def select(self, coeffs, coeff_var, atoms, paths):
        """The delay fit ``atoms`` and the path fit ``paths`` ((amplitudes [F, J, P], delays
        [F, J], active [F, J]) each) -> the one of smaller Akaike criterion a frame,

            AIC = sum |C - model|^2 / coeff_var + real parameters

        (2P + 1 a delay atom: P complex coefficients and a delay; 4 a path: an amplitude, a
        delay and a Doppler), both padded with inactive atoms to the larger J. Where a
        path's Doppler is a spread rather than a tone (a Jakes spectrum), the path fit needs
        many tones for it and the delay fit's criterion can be the smaller."""
        xp = xp_of(coeffs)
        var = xp.maximum(coeff_var.astype(np.float64), 1e-300)                          # 0 on a zero frame

        def criterion(fit, parameters):
            amplitudes, delays, active = fit
            energy = self.backend.atom_residual(coeffs, amplitudes, delays, self.taus[0], self.config.MN)
            if energy is None:
                model = xp.einsum("fwj,fjp->fwp", self._atoms(delays, xp).real, amplitudes)
                energy = (xp.abs(coeffs - model) ** 2).sum(axis=(1, 2))
            return energy / var + parameters * active.sum(-1)

        use = criterion(paths, 4) <= criterion(atoms, 2 * self.P + 1)                  # [F]
        J = max(atoms[1].shape[1], paths[1].shape[1])

        def pad(x):
            return xp.concatenate([x, xp.zeros((x.shape[0], J - x.shape[1]) + x.shape[2:], x.dtype)], axis=1)

        return tuple(xp.where(use.reshape((-1,) + (1,) * (a.ndim - 1)), pad(b), pad(a)) for a, b in zip(atoms, paths))

    def fit(self, r) -> ChannelEstimate:
        """complex [F, MN] -> ChannelEstimate whose ``operator`` is the fitted ``DelayAtoms``
        (no taps over the whole frame yet): the delay fit and, with ``path_fit``, the path
        fit, of which ``select`` keeps one a frame. Where the backend has the fused kernels
        (``sparse_delay_fit``: a launch on the GPU, a compiled loop on the CPU;
        ``sparse_path_fit``: a compiled loop on the CPU) the fits run there; otherwise as
        the array code of ``fit_delays`` and ``fit_paths``."""
        c, be = self.config, self.backend
        z = self.snapshots(r)                                                          # [F, W, N]
        coeffs = (self._pinv[None] * z[:, :, None, :]).sum(axis=-1)                    # [F, W, P]
        # snapshot noise from the DPSS fit residual (W (N - P) degrees of freedom)
        fitted = (self._sampled[None] * coeffs[:, :, None, :]).sum(axis=-1)            # [F, W, N]
        W, N = z.shape[-2:]
        snap_var = (be.xp.abs(z - fitted) ** 2).sum(axis=(-1, -2)) / (W * (N - self.P))    # [F]
        coeff_var = snap_var * self.coeff_gain
        lo, hi = self.fit_range
        fit = be.sparse_delay_fit(coeffs, self.floor_factor * coeff_var, self.taus[0], self.delay_resolution,
                                  self.coarse_stride, self.n_atoms, lo, hi, c.MN)
        amplitudes, delays, active = fit or self.fit_delays(coeffs, coeff_var)
        if self.path_fit:
            fit = be.sparse_path_fit(coeffs, self.path_floor_factor * coeff_var, self.taus[0], self.delay_resolution,
                                     self.coarse_stride, self.n_paths, lo, hi, c.MN, self._tones, self._coarse_tones,
                                     TONE_STEPS // COARSE_TONE_STEPS, PATH_ROUNDS, FINAL_ROUNDS, self._delay_steps,
                                     REFINE_TONES)
            paths = fit or self.fit_paths(coeffs, coeff_var)
            amplitudes, delays, active = self.select(coeffs, coeff_var, (amplitudes, delays, active), paths)
        atoms = DelayAtoms(c.MN, self._basis, amplitudes, delays, self._gram)
        residual_var = snap_var * c.pilot_amplitude ** 2 / c.N
        noise_var = be.xp.maximum(residual_var - self.data_leak(amplitudes, delays), LEAK_FLOOR * residual_var)
        span = be.xp.stack([be.xp.where(active, delays, np.inf).min(-1), be.xp.where(active, delays, -np.inf).max(-1)], -1)
        return ChannelEstimate(atoms, noise_var, active.sum(-1),
                               be.xp.where(be.xp.isfinite(span), span, np.nan))

    def data_leak(self, amplitudes, delays):
        """float [F]: the data's mean power in the pilot's snapshots through the fitted
        channel, sum_t P(t) s(t): P(t) = sum_pp' conj(A_p(t)) G_pp' A_p'(t) the channel's
        power at lag t (A_p(t) = sum_j a_jp psinc(t - delta_j), |t| <= LEAK_LAGS), s(t) the
        fraction of the window's taps tau for which the sample t before them carries data.
        Compiled where the backend has it (``data_leak``: the CPU)."""
        leak = self.backend.data_leak(amplitudes, delays, self.gram, self.leak_lags, self.leak_weights, self.config.MN)
        if leak is not None:
            return leak
        xp = xp_of(amplitudes)
        atoms = periodic_sinc(self._leak_lags[None, :, None] - delays[:, None, :], self.config.MN, xp)   # [F, T, J]
        A = xp.einsum("ftj,fjp->ftp", atoms.astype(amplitudes.dtype), amplitudes)                      # [F, T, P]
        power = xp.einsum("ftp,pq,ftq->ft", A.conj(), self._gram, A).real
        return power @ self._leak_weights

    def __call__(self, r) -> ChannelEstimate:
        """complex [F, MN] -> ChannelEstimate with the ``ChannelOperator``: ``fit``, then the
        taps' spectra over the whole frame (the backend's ``atom_taps_fft``, else
        ``DelayAtoms.operator``)."""
        est = self.fit(r)
        atoms = est.operator
        taps_fft = self.backend.atom_taps_fft(atoms.amplitudes, atoms.delays, atoms.L, atoms.basis.dtype)
        op = atoms.operator() if taps_fft is None else ChannelOperator(atoms.basis, taps_fft, atoms.gram)
        return ChannelEstimate(op, est.noise_var, est.n_components, est.delay_span)
