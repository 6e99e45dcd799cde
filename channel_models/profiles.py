"""Power-delay profiles (tapped-delay-line tables) and the Doppler of a moving terminal.

A profile is a list of path delays tau_i (s) and mean powers P_i (dB). Linear powers are
normalised, p_i = 10^(P_i/10) / sum_j 10^(P_j/10), so a channel drawn from a profile has unit
mean energy. Built-in tables:

* ITU-R M.1225 (1997), Annex 2, Tables 3 (pedestrian) and 4 (vehicular), channel A and B:
  ``ped-a``, ``ped-b``, ``veh-a``, ``veh-b``.
* 3GPP TS 36.104, Annex B.2 (Tables B.2-2, B.2-3, B.2-4): ``epa``, ``eva``, ``etu``.

A user profile is a JSON file ``{"name": str, "delays_ns": [...], "powers_db": [...]}``.
"""
from __future__ import annotations

import json
import math
import numbers
from dataclasses import dataclass
from pathlib import Path

import numpy as np

__all__ = ["PowerDelayProfile", "PROFILES", "load_profile", "doppler_from_speed",
           "SPEED_OF_LIGHT"]

SPEED_OF_LIGHT = 299_792_458.0  # m/s


@dataclass(frozen=True)
class PowerDelayProfile:
    """Mean power per path of a multipath channel.

    Parameters
    ----------
    name : str
        Label (used in reports).
    delays_s : tuple of float
        Path delays tau_i in seconds, ``>= 0``, in non-decreasing order; length P >= 1.
    powers_db : tuple of float
        Mean path powers in dB (relative; normalised in :attr:`powers_linear`); length P.
    """

    name: str
    delays_s: tuple
    powers_db: tuple

    def __post_init__(self) -> None:
        if not isinstance(self.name, str) or not self.name:
            raise ValueError(f"name must be a non-empty string, got {self.name!r}")
        delays = _float_tuple("delays_s", self.delays_s)
        powers = _float_tuple("powers_db", self.powers_db)
        if len(delays) != len(powers):
            raise ValueError(f"delays_s has {len(delays)} entries but powers_db has {len(powers)}")
        if min(delays) < 0:
            raise ValueError(f"delays_s must be >= 0, got {delays}")
        if any(b < a for a, b in zip(delays, delays[1:])):
            raise ValueError(f"delays_s must be in non-decreasing order, got {delays}")
        object.__setattr__(self, "delays_s", delays)
        object.__setattr__(self, "powers_db", powers)

    @property
    def n_paths(self) -> int:
        return len(self.delays_s)

    @property
    def powers_linear(self) -> np.ndarray:
        """float64 [P]: p_i = 10^(P_i/10) normalised to sum 1."""
        p = 10.0 ** (np.asarray(self.powers_db) / 10.0)
        return p / p.sum()

    @property
    def max_delay_s(self) -> float:
        return self.delays_s[-1]

    @property
    def mean_delay_s(self) -> float:
        """sum_i p_i tau_i."""
        return float(self.powers_linear @ np.asarray(self.delays_s))

    @property
    def delay_spread_s(self) -> float:
        """RMS delay spread sqrt(sum_i p_i tau_i^2 - (sum_i p_i tau_i)^2) in seconds."""
        tau = np.asarray(self.delays_s)
        p = self.powers_linear
        return float(math.sqrt(max(p @ tau**2 - (p @ tau) ** 2, 0.0)))

    def to_dict(self) -> dict:
        """The JSON form read by :func:`load_profile` (delays in ns)."""
        return {"name": self.name, "delays_ns": [d * 1e9 for d in self.delays_s],
                "powers_db": list(self.powers_db)}


def _float_tuple(key: str, values) -> tuple:
    try:
        out = tuple(float(v) for v in values)
    except (TypeError, ValueError):
        raise ValueError(f"{key} must be a sequence of numbers, got {values!r}") from None
    if not out:
        raise ValueError(f"{key} must hold at least one path")
    if not all(math.isfinite(v) for v in out):
        raise ValueError(f"{key} must be finite, got {out}")
    return out


def _table(name: str, delays_ns, powers_db) -> PowerDelayProfile:
    return PowerDelayProfile(name, tuple(d * 1e-9 for d in delays_ns), tuple(powers_db))


PROFILES: dict[str, PowerDelayProfile] = {
    "veh-a": _table("ITU-R M.1225 Vehicular-A",
                    (0, 310, 710, 1090, 1730, 2510), (0.0, -1.0, -9.0, -10.0, -15.0, -20.0)),
    "veh-b": _table("ITU-R M.1225 Vehicular-B",
                    (0, 300, 8900, 12900, 17100, 20000), (-2.5, 0.0, -12.8, -10.0, -25.2, -16.0)),
    "ped-a": _table("ITU-R M.1225 Pedestrian-A",
                    (0, 110, 190, 410), (0.0, -9.7, -19.2, -22.8)),
    "ped-b": _table("ITU-R M.1225 Pedestrian-B",
                    (0, 200, 800, 1200, 2300, 3700), (0.0, -0.9, -4.9, -8.0, -7.8, -23.9)),
    "epa": _table("3GPP EPA", (0, 30, 70, 90, 110, 190, 410),
                  (0.0, -1.0, -2.0, -3.0, -8.0, -17.2, -20.8)),
    "eva": _table("3GPP EVA", (0, 30, 150, 310, 370, 710, 1090, 1730, 2510),
                  (0.0, -1.5, -1.4, -3.6, -0.6, -9.1, -7.0, -12.0, -16.9)),
    "etu": _table("3GPP ETU", (0, 50, 120, 200, 230, 500, 1600, 2300, 5000),
                  (-1.0, -1.0, -1.0, 0.0, 0.0, 0.0, -3.0, -5.0, -7.0)),
}


def load_profile(name_or_path: str | Path) -> PowerDelayProfile:
    """A built-in profile by key (see :data:`PROFILES`) or a user JSON file.

    The file holds ``{"name": str, "delays_ns": [float], "powers_db": [float]}``.
    """
    if isinstance(name_or_path, str) and name_or_path.lower() in PROFILES:
        return PROFILES[name_or_path.lower()]
    path = Path(name_or_path)
    if not path.is_file():
        raise ValueError(f"profile {str(name_or_path)!r} is neither a built-in profile "
                         f"({', '.join(PROFILES)}) nor a JSON file")
    try:
        data = json.loads(path.read_text())
    except json.JSONDecodeError as exc:
        raise ValueError(f"profile file {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(data, dict):
        raise ValueError(f"profile file {str(path)!r} must hold a JSON object")
    missing = {"delays_ns", "powers_db"} - set(data)
    if missing:
        raise ValueError(f"profile file {str(path)!r} lacks {', '.join(sorted(missing))}; "
                         "expected keys name, delays_ns, powers_db")
    delays_ns = _float_tuple("delays_ns", data["delays_ns"])
    return _table(str(data.get("name", path.stem)), delays_ns, data["powers_db"])


def doppler_from_speed(speed_kmh: float, fc_hz: float) -> float:
    """Maximum Doppler shift nu_max = v f_c / c in Hz, v = speed_kmh / 3.6 m/s."""
    if not (isinstance(speed_kmh, numbers.Real) and math.isfinite(speed_kmh) and speed_kmh >= 0):
        raise ValueError(f"speed_kmh must be a finite number >= 0, got {speed_kmh!r}")
    if not (isinstance(fc_hz, numbers.Real) and math.isfinite(fc_hz) and fc_hz > 0):
        raise ValueError(f"fc_hz must be a finite carrier frequency > 0, got {fc_hz!r}")
    return speed_kmh / 3.6 * fc_hz / SPEED_OF_LIGHT
