"""Channel realisations: multipath paths with delays, gains and Doppler sinusoids.

A realisation (:class:`PathSet`) is P paths, each a sum of S complex sinusoids (S = 1: one
Doppler per path, the Zak-OTFS literature's model; S > 1: a Clarke/Jakes fading process):

    h_i(t) = sum_s amplitudes[i, s] exp(j 2 pi dopplers_hz[i, s] (t - delays_s[i]))
    r(t)   = sum_i h_i(t) s(t - delays_s[i]) + w(t)                    (t absolute, seconds)

The receiver sees one frame at a time on the frame's own clock, q = 0 at the first sample
after the cyclic prefix, absolute sample index t0 (:class:`FramePaths`, from
:meth:`PathSet.at_frame`):

    r[q] = sum_{i,s} amp[i, s] exp(j 2 pi doppler[i, s] q) s_bl(q - delay[i])

with delay in samples, doppler in cycles/sample and s_bl the band-limited interpolation of
the transmitted samples. That is the spec's r[q] = sum_i h_i e^{j2pi m_i (q - d_i)/(MN)}
s(q - d_i) with h_i e^{-j2pi m_i d_i/(MN)} = amp, m_i/(MN) = doppler.
"""
from __future__ import annotations

import math
import numbers
from dataclasses import dataclass

import numpy as np

from dsp_kernels import fft, ifft, xp_of

from .fractional_delay import _check_rolloff, circular_delay_response
from .profiles import PowerDelayProfile

__all__ = ["PathSet", "FramePaths", "draw_paths", "on_grid_paths", "apply_frame_circular",
           "check_cp", "DOPPLER_MODELS", "GAIN_MODELS"]

DOPPLER_MODELS = ("single", "jakes")
GAIN_MODELS = ("rayleigh", "fixed")


def _frozen_array(name: str, value, dtype) -> np.ndarray:
    try:
        arr = np.array(value, dtype=dtype)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be numeric array-like, got {value!r}") from None
    if not np.all(np.isfinite(arr)):
        raise ValueError(f"{name} must be finite, got {arr}")
    arr.setflags(write=False)
    return arr


def _cycles(x) -> np.ndarray:
    """exp(j 2 pi x) with x reduced modulo 1 first (keeps float64 phase exact for large x)."""
    return np.exp(2j * np.pi * np.mod(x, 1.0))


@dataclass(frozen=True, eq=False)
class PathSet:
    """One channel realisation on absolute time.

    Attributes
    ----------
    delays_s : float64 [P]
        Path delays tau_i in seconds.
    amplitudes : complex128 [P, S]
        Sinusoid amplitudes; a 1-D [P] input is read as S = 1.
    dopplers_hz : float64 [P, S]
        Sinusoid Doppler frequencies nu_{i,s} in Hz; a 1-D [P] input is read as S = 1.

    Notes
    -----
    h_i(t) = sum_s amplitudes[i, s] exp(j 2 pi dopplers_hz[i, s] (t - delays_s[i])).
    """

    delays_s: np.ndarray
    amplitudes: np.ndarray
    dopplers_hz: np.ndarray

    def __post_init__(self) -> None:
        delays = _frozen_array("delays_s", self.delays_s, np.float64)
        amplitudes = _frozen_array("amplitudes", self.amplitudes, np.complex128)
        dopplers = _frozen_array("dopplers_hz", self.dopplers_hz, np.float64)
        if delays.ndim != 1 or delays.size == 0:
            raise ValueError(f"delays_s must be a non-empty 1-D array, got shape {delays.shape}")
        if amplitudes.ndim == 1:
            amplitudes = _frozen_array("amplitudes", amplitudes[:, None], np.complex128)
        if dopplers.ndim == 1:
            dopplers = _frozen_array("dopplers_hz", dopplers[:, None], np.float64)
        if amplitudes.ndim != 2 or amplitudes.shape[0] != delays.size:
            raise ValueError(f"amplitudes must have shape [P={delays.size}, S], got {amplitudes.shape}")
        if dopplers.shape != amplitudes.shape:
            raise ValueError(f"dopplers_hz must have the shape of amplitudes {amplitudes.shape}, "
                             f"got {dopplers.shape}")
        object.__setattr__(self, "delays_s", delays)
        object.__setattr__(self, "amplitudes", amplitudes)
        object.__setattr__(self, "dopplers_hz", dopplers)

    @property
    def n_paths(self) -> int:
        return self.amplitudes.shape[0]

    @property
    def n_sinusoids(self) -> int:
        return self.amplitudes.shape[1]

    def gains(self, t_s) -> np.ndarray:
        """complex128 [P, T]: h_i(t) at the absolute times ``t_s`` (float [T], seconds)."""
        t = np.asarray(t_s, dtype=np.float64).reshape(-1)
        cycles = self.dopplers_hz[:, :, None] * (t[None, None, :] - self.delays_s[:, None, None])
        return np.sum(self.amplitudes[:, :, None] * _cycles(cycles), axis=1)

    def delayed(self, delay_s: float) -> "PathSet":
        """The same paths with every delay increased by ``delay_s`` (phases on the new delays)."""
        return PathSet(self.delays_s + delay_s, self.amplitudes, self.dopplers_hz)

    def frequency_shifted(self, shift_hz: float) -> "PathSet":
        """The paths seen through a carrier offset: h_i(t) multiplied by exp(j 2 pi shift t)."""
        amplitudes = self.amplitudes * _cycles(shift_hz * self.delays_s)[:, None]
        return PathSet(self.delays_s, amplitudes, self.dopplers_hz + shift_hz)

    def at_frame(self, t0: int, sample_rate: float, *, rolloff: float = 0.0) -> "FramePaths":
        """Truth for the frame whose q = 0 is absolute sample ``t0`` (see :class:`FramePaths`).

        delay = tau_i B, doppler = nu / B, amp = amplitudes exp(j 2 pi nu (t0 / B - tau_i)).
        """
        if not isinstance(t0, (numbers.Integral, np.integer)) or t0 < 0:
            raise ValueError(f"t0 must be a non-negative integer sample index, got {t0!r}")
        sample_rate = _check_rate(sample_rate)
        doppler = self.dopplers_hz / sample_rate
        cycles = doppler * float(t0) - self.dopplers_hz * self.delays_s[:, None]
        return FramePaths(delay=self.delays_s * sample_rate, amp=self.amplitudes * _cycles(cycles),
                          doppler=doppler, rolloff=rolloff)

    def to_dict(self) -> dict:
        """JSON-ready lists (complex split into real and imaginary parts)."""
        return {"delays_s": self.delays_s.tolist(), "amplitudes_re": self.amplitudes.real.tolist(),
                "amplitudes_im": self.amplitudes.imag.tolist(),
                "dopplers_hz": self.dopplers_hz.tolist()}

    @classmethod
    def from_dict(cls, data: dict) -> "PathSet":
        return cls(np.asarray(data["delays_s"]),
                   np.asarray(data["amplitudes_re"]) + 1j * np.asarray(data["amplitudes_im"]),
                   np.asarray(data["dopplers_hz"]))


@dataclass(frozen=True, eq=False)
class FramePaths:
    """Perfect channel knowledge for one frame, on the frame's clock (q = 0 after the CP).

    Attributes
    ----------
    delay : float64 [..., P]
        Path delay in samples, tau_i B (fractional).
    amp : complex128 [..., P, S]
        Sinusoid amplitude at q = 0 (Doppler phase up to the frame start included).
    doppler : float64 [..., P, S]
        Sinusoid Doppler in cycles/sample, nu / B (= Doppler bins / (M N)).
    rolloff : float
        Band edge a of the transmit/receive filter H_a (0: ideal band limit), see
        :mod:`channel_models.fractional_delay`.

    Notes
    -----
    r[q] = sum_{i,s} amp[i, s] e^{j 2 pi doppler[i, s] q} s_bl(q - delay[i]) with s_bl the
    transmitted samples interpolated by kappa_a. Leading batch axes (frames) come from
    :meth:`stack`.
    """

    delay: np.ndarray
    amp: np.ndarray
    doppler: np.ndarray
    rolloff: float = 0.0

    def __post_init__(self) -> None:
        delay = _frozen_array("delay", self.delay, np.float64)
        amp = _frozen_array("amp", self.amp, np.complex128)
        doppler = _frozen_array("doppler", self.doppler, np.float64)
        if amp.ndim < 2 or amp.shape[:-1] != delay.shape or amp.shape[-2] == 0:
            raise ValueError(f"amp must have shape [..., P, S] with delay [..., P]; got amp "
                             f"{amp.shape}, delay {delay.shape}")
        if doppler.shape != amp.shape:
            raise ValueError(f"doppler must have the shape of amp {amp.shape}, got {doppler.shape}")
        object.__setattr__(self, "delay", delay)
        object.__setattr__(self, "amp", amp)
        object.__setattr__(self, "doppler", doppler)
        object.__setattr__(self, "rolloff", _check_rolloff(self.rolloff))

    @property
    def n_paths(self) -> int:
        return self.amp.shape[-2]

    def gains(self, q) -> np.ndarray:
        """complex128 [..., P, Q]: sum_s amp e^{j 2 pi doppler q} at frame sample indices q [Q]."""
        q = np.asarray(q, dtype=np.float64).reshape(-1)
        return np.sum(self.amp[..., None] * _cycles(self.doppler[..., None] * q), axis=-2)

    def to_dict(self) -> dict:
        """JSON-ready lists (for HDF5, ``np.asarray`` each entry)."""
        return {"delay": self.delay.tolist(), "amp_re": self.amp.real.tolist(),
                "amp_im": self.amp.imag.tolist(), "doppler": self.doppler.tolist(),
                "rolloff": self.rolloff}

    @classmethod
    def from_dict(cls, data: dict) -> "FramePaths":
        missing = {"delay", "amp_re", "amp_im", "doppler"} - set(data)
        if missing:
            raise ValueError(f"frame paths dict lacks {', '.join(sorted(missing))}")
        return cls(delay=np.asarray(data["delay"]),
                   amp=np.asarray(data["amp_re"]) + 1j * np.asarray(data["amp_im"]),
                   doppler=np.asarray(data["doppler"]), rolloff=float(data.get("rolloff", 0.0)))

    @classmethod
    def stack(cls, frames) -> "FramePaths":
        """Frames of equal P, S and rolloff -> one FramePaths with a leading frame axis [F]."""
        frames = list(frames)
        if not frames:
            raise ValueError("frames must hold at least one FramePaths")
        if len({f.rolloff for f in frames}) != 1:
            raise ValueError("frames must share one rolloff")
        try:
            return cls(delay=np.stack([f.delay for f in frames]), amp=np.stack([f.amp for f in frames]),
                       doppler=np.stack([f.doppler for f in frames]), rolloff=frames[0].rolloff)
        except ValueError as exc:
            raise ValueError(f"frames must share their path and sinusoid counts: {exc}") from None


def _check_rate(sample_rate: float) -> float:
    if not (isinstance(sample_rate, numbers.Real) and math.isfinite(sample_rate) and sample_rate > 0):
        raise ValueError(f"sample_rate must be a positive number of Hz, got {sample_rate!r}")
    return float(sample_rate)


def draw_paths(profile: PowerDelayProfile, nu_max_hz: float, rng: np.random.Generator, *,
               doppler_model: str = "single", gain_model: str = "rayleigh",
               n_sinusoids: int = 16) -> PathSet:
    """Draw one realisation of ``profile`` with maximum Doppler ``nu_max_hz``.

    ``doppler_model="single"`` (S = 1): nu_i = nu_max cos(theta_i), theta_i ~ U[0, 2 pi);
    gain CN(0, p_i) (``gain_model="rayleigh"``) or sqrt(p_i) e^{j phi_i} (``"fixed"``).

    ``doppler_model="jakes"`` (S = ``n_sinusoids``): Clarke's model as the sum of sinusoids of
    Xiao, Zheng and Beaulieu (IEEE Trans. Wireless Commun. 5(12), 2006):
    amplitudes sqrt(p_i/S) e^{j phi_{i,s}}, nu_{i,s} = nu_max cos(alpha_{i,s}),
    alpha_{i,s} = (2 pi s - pi + theta_{i,s}) / S with theta, phi iid uniform. The arrival
    angles are uniform over the circle, so E[h_i(t + dt) h_i(t)^*] = p_i J0(2 pi nu_max dt)
    for any S; the gain is Rayleigh only as S grows (``gain_model`` must stay ``"rayleigh"``).
    """
    if not isinstance(profile, PowerDelayProfile):
        raise TypeError(f"profile must be a PowerDelayProfile, got {type(profile).__name__}")
    if not (isinstance(nu_max_hz, numbers.Real) and math.isfinite(nu_max_hz) and nu_max_hz >= 0):
        raise ValueError(f"nu_max_hz must be a finite number >= 0, got {nu_max_hz!r}")
    if not isinstance(rng, np.random.Generator):
        raise TypeError(f"rng must be a numpy.random.Generator, got {type(rng).__name__}")
    if doppler_model not in DOPPLER_MODELS:
        raise ValueError(f"doppler_model must be one of {', '.join(DOPPLER_MODELS)}, got {doppler_model!r}")
    if gain_model not in GAIN_MODELS:
        raise ValueError(f"gain_model must be one of {', '.join(GAIN_MODELS)}, got {gain_model!r}")
    p = profile.powers_linear
    P = p.size
    if doppler_model == "single":
        doppler = nu_max_hz * np.cos(rng.uniform(0, 2 * np.pi, P))
        if gain_model == "rayleigh":
            gain = np.sqrt(p / 2) * (rng.standard_normal(P) + 1j * rng.standard_normal(P))
        else:
            gain = np.sqrt(p) * np.exp(1j * rng.uniform(0, 2 * np.pi, P))
        return PathSet(np.asarray(profile.delays_s), gain[:, None], doppler[:, None])
    if gain_model != "rayleigh":
        raise ValueError("gain_model='fixed' needs doppler_model='single' "
                         "(a sum of sinusoids has a fading envelope)")
    if not isinstance(n_sinusoids, (numbers.Integral, np.integer)) or n_sinusoids < 1:
        raise ValueError(f"n_sinusoids must be a positive integer, got {n_sinusoids!r}")
    S = int(n_sinusoids)
    theta = rng.uniform(-np.pi, np.pi, (P, S))
    phi = rng.uniform(0, 2 * np.pi, (P, S))
    alpha = (2 * np.pi * np.arange(1, S + 1) - np.pi + theta) / S
    amplitudes = np.sqrt(p / S)[:, None] * np.exp(1j * phi)
    return PathSet(np.asarray(profile.delays_s), amplitudes, nu_max_hz * np.cos(alpha))


def on_grid_paths(h, d_samples, m_bins, config, *, t0: int | None = None) -> PathSet:
    """Paths given on the frame's clock as (gain, delay bins, Doppler bins), e.g. the golden vectors.

    Path i contributes h_i e^{j 2 pi m_i (q - d_i)/(MN)} s(q - d_i) to the frame whose q = 0 is
    absolute sample ``t0`` (default ``config.preamble_len + config.cp_len``: the first frame
    of a stream). Integer d, m are on the grid (h_eff[d, m] = h exactly); fractional values
    are accepted. tau = d / B, nu = m B / (M N), amplitude h e^{-j 2 pi m t0/(MN)}.
    """
    h = np.atleast_1d(np.asarray(h, dtype=np.complex128))
    d = np.atleast_1d(np.asarray(d_samples, dtype=np.float64))
    m = np.atleast_1d(np.asarray(m_bins, dtype=np.float64))
    if not (h.shape == d.shape == m.shape and h.ndim == 1):
        raise ValueError(f"h, d_samples and m_bins must be 1-D of one length, got shapes "
                         f"{h.shape}, {d.shape}, {m.shape}")
    if t0 is None:
        t0 = config.preamble_len + config.cp_len
    if not isinstance(t0, (numbers.Integral, np.integer)) or t0 < 0:
        raise ValueError(f"t0 must be a non-negative integer sample index, got {t0!r}")
    amplitudes = h * _cycles(-m * (float(t0) / config.MN))
    return PathSet(d / config.bandwidth, amplitudes, m * (config.bandwidth / config.MN))


def apply_frame_circular(frame_paths: FramePaths, s):
    """Reference: the channel acting circularly on one frame (a CP longer than the delays).

    Parameters
    ----------
    frame_paths : FramePaths
        Batch axes [...] broadcast against those of ``s``.
    s : complex [..., L]
        Frame samples q = 0 .. L-1 (numpy or CuPy).

    Returns
    -------
    complex [..., L] (complex64 for complex64 input, else complex128):
    r[q] = sum_{i,s} amp e^{j 2 pi doppler q} ifft(R_i . fft(s))[q], R_i the exact
    band-limited delay :func:`~channel_models.fractional_delay.circular_delay_response`.
    """
    if not isinstance(frame_paths, FramePaths):
        raise TypeError(f"frame_paths must be a FramePaths, got {type(frame_paths).__name__}")
    xp = xp_of(s)
    n = s.shape[-1]
    dtype = xp.result_type(s.dtype, xp.complex64)
    spectrum = fft(s.astype(xp.complex128), axis=-1)
    q = xp.arange(n, dtype=xp.float64)
    delay = xp.asarray(frame_paths.delay)
    amp = xp.asarray(frame_paths.amp)
    doppler = xp.asarray(frame_paths.doppler)
    out = None
    for i in range(frame_paths.n_paths):
        delayed = ifft(spectrum * circular_delay_response(n, delay[..., i], frame_paths.rolloff, xp=xp))
        cycles = xp.mod(doppler[..., i, :, None] * q, 1.0)
        gain = xp.sum(amp[..., i, :, None] * xp.exp(2j * math.pi * cycles), axis=-2)
        out = gain * delayed if out is None else out + gain * delayed
    return out.astype(dtype)


def check_cp(config, paths: PathSet) -> float:
    """Largest path delay in samples; ValueError when it exceeds ``config.cp_len``
    (the channel is then not circular on the frame)."""
    d_max = float(np.max(paths.delays_s)) * config.bandwidth
    if d_max > config.cp_len:
        raise ValueError(f"delay spread {d_max:.2f} samples exceeds cp_len {config.cp_len}")
    return d_max
