"""Frame configuration: the one object transmitter, channel and receiver share.

Conventions are those of ``shared/spec/signal-model.md``:

* M delay bins, N Doppler bins, sample rate = bandwidth B, delay period
  tau_p = M / B, Doppler period nu_p = B / M, frame time T = M N / B.
* Point pilot at (k_p, l_p) with amplitude a_p. Guard delay bins
  k_p - g_neg ... k_p + g_pos over all N Doppler bins carry no data; data fill
  every other position in order k ascending, l fastest (flat index k N + l).
* Default pilot energy |a_p|^2 = (number of guard positions) * Es, Es = 1.
* On the wire a frame is ``preamble + CP + s[0 .. MN-1]``.
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, field, fields

import numpy as np

from .modulation import MODULATIONS, bits_per_symbol

__all__ = ["FrameConfig", "PRESETS", "preset", "design", "parse_grid"]


@dataclass(frozen=True)
class FrameConfig:
    """Zak-OTFS frame configuration.

    Parameters
    ----------
    M, N : int
        Delay and Doppler bins.
    bandwidth : float
        Bandwidth B in Hz, equal to the complex sample rate.
    modulation : str
        ``qpsk``, ``16qam``, ``64qam`` or ``256qam`` (3GPP TS 38.211 5.1).
    cp_len : int
        Cyclic-prefix length in samples (0 allowed: the channel is then not circular).
    guard_neg, guard_pos : int
        Guard delay bins before and after the pilot delay bin.
    max_delay : int or None
        Largest channel delay (samples) the guard is designed for. The receiver
        estimates taps in ``tap_window``; default ``min(guard_neg, guard_pos) * 3 // 4``.
    pilot_k, pilot_l : int or None
        Pilot position, default (M // 2, N // 2).
    pilot_amplitude : float or None
        a_p, default sqrt(number of guard positions).
    preamble_len : int
        Zadoff-Chu preamble before each frame, for acquisition in a stream (0: none).
    """

    M: int
    N: int
    bandwidth: float
    modulation: str = "16qam"
    cp_len: int = 0
    guard_neg: int = 0
    guard_pos: int = 0
    max_delay: int | None = None
    pilot_k: int | None = None
    pilot_l: int | None = None
    pilot_amplitude: float | None = None
    preamble_len: int = 0
    name: str = field(default="custom", compare=False)

    def __post_init__(self) -> None:
        for key in ("M", "N"):
            value = getattr(self, key)
            if not isinstance(value, (int, np.integer)) or value <= 0:
                raise ValueError(f"{key} must be a positive integer, got {value!r}")
        if not (isinstance(self.bandwidth, (int, float)) and math.isfinite(self.bandwidth)
                and self.bandwidth > 0):
            raise ValueError(f"bandwidth must be a positive number of Hz, got {self.bandwidth!r}")
        if self.modulation not in MODULATIONS:
            raise ValueError(f"modulation must be one of {', '.join(MODULATIONS)}, "
                             f"got {self.modulation!r}")
        for key in ("cp_len", "guard_neg", "guard_pos", "preamble_len"):
            value = getattr(self, key)
            if not isinstance(value, (int, np.integer)) or value < 0:
                raise ValueError(f"{key} must be a non-negative integer, got {value!r}")
        if self.cp_len > self.M * self.N:
            raise ValueError(f"cp_len={self.cp_len} is longer than the frame (MN={self.M * self.N})")
        set_ = lambda k, v: object.__setattr__(self, k, v)  # noqa: E731 (frozen dataclass)
        if self.pilot_k is None:
            set_("pilot_k", self.M // 2)
        if self.pilot_l is None:
            set_("pilot_l", self.N // 2)
        if not 0 <= self.pilot_k < self.M:
            raise ValueError(f"pilot_k={self.pilot_k} is outside the delay grid [0, {self.M})")
        if not 0 <= self.pilot_l < self.N:
            raise ValueError(f"pilot_l={self.pilot_l} is outside the Doppler grid [0, {self.N})")
        if self.pilot_k - self.guard_neg < 0 or self.pilot_k + self.guard_pos >= self.M:
            raise ValueError(
                f"guard [{self.pilot_k - self.guard_neg}, {self.pilot_k + self.guard_pos}] "
                f"(pilot_k={self.pilot_k}, guard_neg={self.guard_neg}, guard_pos={self.guard_pos}) "
                f"does not fit in the delay grid [0, {self.M})")
        if self.guard_bins == self.M:
            raise ValueError("the guard covers the whole delay grid: no room for data")
        if self.max_delay is None:
            set_("max_delay", min(self.guard_neg, self.guard_pos) * 3 // 4)
        if not 0 <= self.max_delay <= min(self.guard_neg, self.guard_pos):
            raise ValueError(f"max_delay={self.max_delay} must lie in "
                             f"[0, min(guard_neg, guard_pos)={min(self.guard_neg, self.guard_pos)}]")
        if self.pilot_amplitude is None:
            set_("pilot_amplitude", math.sqrt(self.guard_bins * self.N))
        if not (math.isfinite(self.pilot_amplitude) and self.pilot_amplitude > 0):
            raise ValueError(f"pilot_amplitude must be positive, got {self.pilot_amplitude!r}")

    # ---- grid -----------------------------------------------------------------------------
    @property
    def MN(self) -> int:
        return self.M * self.N

    @property
    def tau_p(self) -> float:
        """Delay period M / B in seconds."""
        return self.M / self.bandwidth

    @property
    def nu_p(self) -> float:
        """Doppler period B / M in Hz."""
        return self.bandwidth / self.M

    @property
    def frame_time(self) -> float:
        """T = M N / B in seconds (the payload part of a frame)."""
        return self.MN / self.bandwidth

    @property
    def delay_step(self) -> float:
        return 1.0 / self.bandwidth

    @property
    def doppler_step(self) -> float:
        return 1.0 / self.frame_time

    # ---- pilot, guard, data ---------------------------------------------------------------
    @property
    def guard_bins(self) -> int:
        """Number of guard delay bins, the pilot's own bin included."""
        return self.guard_neg + self.guard_pos + 1

    @property
    def guard_delay_range(self) -> tuple[int, int]:
        """First and last guard delay bin (inclusive)."""
        return self.pilot_k - self.guard_neg, self.pilot_k + self.guard_pos

    @property
    def tap_window(self) -> tuple[int, int]:
        """(t_neg, t_pos): the receiver estimates channel taps tau in [-t_neg, t_pos].

        Received samples k_p + tau + nM are free of data for tau in
        [max_delay - guard_neg, guard_pos]; the window keeps that width and centres the
        spare margin on both sides of [0, max_delay].
        """
        width = min(self.guard_neg, self.guard_pos)
        t_neg = (width - self.max_delay) // 2
        return t_neg, width - t_neg

    @property
    def data_mask(self) -> np.ndarray:
        """bool [M, N]: True where a data symbol sits."""
        mask = np.ones((self.M, self.N), dtype=bool)
        k0, k1 = self.guard_delay_range
        mask[k0:k1 + 1, :] = False
        return mask

    @property
    def delay_is_data(self) -> np.ndarray:
        """bool [M]: True for delay bins that carry data (every Doppler bin of them)."""
        return self.data_mask[:, 0].copy()

    @property
    def data_index(self) -> np.ndarray:
        """int64 [n_data]: flat indices k N + l of the data positions, in placement order."""
        return np.flatnonzero(self.data_mask.ravel())

    @property
    def n_data(self) -> int:
        return (self.M - self.guard_bins) * self.N

    @property
    def bits_per_symbol(self) -> int:
        return bits_per_symbol(self.modulation)

    @property
    def bits_per_frame(self) -> int:
        return self.n_data * self.bits_per_symbol

    # ---- wire ---------------------------------------------------------------------------
    @property
    def samples_per_frame(self) -> int:
        """Samples on the wire per frame: preamble + CP + MN."""
        return self.preamble_len + self.cp_len + self.MN

    @property
    def wire_time(self) -> float:
        return self.samples_per_frame / self.bandwidth

    @property
    def throughput_bps(self) -> float:
        """Data bits per frame over the frame time MN/B (the paper's figure)."""
        return self.bits_per_frame / self.frame_time

    @property
    def throughput_wire_bps(self) -> float:
        """Data bits per frame over the wire time (MN + cp_len + preamble_len)/B."""
        return self.bits_per_frame / self.wire_time

    # ---- JSON ---------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "FrameConfig":
        known = {f.name for f in fields(cls)}
        unknown = set(data) - known
        if unknown:
            raise ValueError(f"unknown frame configuration keys: {', '.join(sorted(unknown))}")
        return cls(**data)

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> "FrameConfig":
        return cls.from_dict(json.loads(text))

    def replace(self, **changes) -> "FrameConfig":
        """A copy with ``changes``; pilot amplitude and max_delay are re-derived unless given."""
        data = self.to_dict()
        if "guard_neg" in changes or "guard_pos" in changes or "N" in changes:
            data["pilot_amplitude"] = None
            data["max_delay"] = None
        if "M" in changes:
            data["pilot_k"] = None
        if "N" in changes:
            data["pilot_l"] = None
        data.update(changes)
        return FrameConfig.from_dict(data)

    def summary(self) -> str:
        return (f"{self.name}: grid {self.M}x{self.N}, {self.bandwidth / 1e6:g} MHz, {self.modulation}, "
                f"cp {self.cp_len}, guard -{self.guard_neg}/+{self.guard_pos}, "
                f"T {self.frame_time * 1e3:.4g} ms, {self.bits_per_frame} bits/frame, "
                f"{self.throughput_bps / 1e6:.2f} Mbps ({self.throughput_wire_bps / 1e6:.2f} on the wire)")


def design(M: int, N: int, bandwidth: float | None = None, modulation: str = "16qam", *,
           delay_spread_s: float = 2.51e-6, margin: int | None = None, name: str = "custom",
           **changes) -> FrameConfig:
    """A configuration whose guard, CP and preamble fit a channel of ``delay_spread_s``
    (default: Vehicular-A, 2.51 us).

    bandwidth defaults to M x 15 kHz (nu_p = 15 kHz, the reference paper's numerology);
    max_delay = ceil(delay_spread B); a symmetric guard of max_delay + margin delay bins on
    each side (margin default max(16, max_delay // 30): the estimator's window keeps half of
    it on each side of the channel, for fractional-delay tails); CP = guard rounded up to 16;
    a 256-sample preamble (128 below 2^18 samples a frame).
    """
    bandwidth = M * 15e3 if bandwidth is None else bandwidth
    if not (isinstance(bandwidth, (int, float)) and bandwidth > 0):
        raise ValueError(f"bandwidth must be a positive number of Hz, got {bandwidth!r}")
    max_delay = math.ceil(delay_spread_s * bandwidth)
    margin = max(16, max_delay // 30) if margin is None else margin
    guard = max_delay + margin
    if 2 * guard + 1 >= M:
        raise ValueError(f"grid M={M} is too small for a {delay_spread_s * 1e6:g} us delay spread at "
                         f"{bandwidth / 1e6:g} MHz: the guard needs {2 * guard + 1} of the M delay bins "
                         f"(lower --bandwidth or raise M)")
    params = dict(M=M, N=N, bandwidth=float(bandwidth), modulation=modulation,
                  cp_len=-(-guard // 16) * 16, guard_neg=guard, guard_pos=guard,
                  max_delay=max_delay, preamble_len=256 if M * N >= 1 << 18 else 128, name=name)
    params.update(changes)
    return FrameConfig(**params)


PRESETS = {
    # 906.52 Mbps in the paper <=> 1275 guard delay bins = 2 x 637 + 1 (Veh-A spread 617
    # samples at 245.76 MHz plus a 20-sample margin).
    "paper": lambda: design(16384, 32, 245.76e6, "16qam", margin=20, name="paper"),
    # The paper's numerology (nu_p = 15 kHz) at 1/16 of its bandwidth: small enough for a
    # CPU; Veh-A spread 39 samples, 815 Hz = 0.87 Doppler bins.
    "demo": lambda: design(1024, 16, 15.36e6, "16qam", margin=24, cp_len=96, name="demo"),
    # Dense reference checks (the spec's M = 64, N = 32 measurements).
    "tiny": lambda: FrameConfig(M=64, N=32, bandwidth=3.84e6, modulation="16qam", cp_len=16,
                                guard_neg=14, guard_pos=14, max_delay=10, preamble_len=64,
                                name="tiny"),
}


def preset(name: str, **changes) -> FrameConfig:
    """A named configuration (``paper``, ``demo``, ``tiny``), optionally changed."""
    if name not in PRESETS:
        raise ValueError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    config = PRESETS[name]()
    return config.replace(**changes) if changes else config


def parse_grid(text: str) -> tuple[int, int]:
    """``"16384x32"`` -> (16384, 32)."""
    try:
        m_text, n_text = text.lower().split("x")
        M, N = int(m_text), int(n_text)
    except ValueError:
        raise ValueError(f"grid must look like MxN (e.g. 16384x32), got {text!r}") from None
    if M <= 0 or N <= 0:
        raise ValueError(f"grid must have positive M and N, got {text!r}")
    return M, N
