"""The channel a receiver sees, as one streaming stage: the sample-level emulator, then the
receiver's own sample clock and carrier offset.

The receiver's mixer turns the analogue signal, x(t) e^{j 2 pi nu t}, which its ADC samples
at instants (1 + epsilon) m, so output sample m is

    y[m] = x((1 + epsilon) m) e^{j 2 pi nu (1 + epsilon) m / B},

the carrier turned after the clock. Turning before the resampling would read the part of
the band that the offset pushes past B/2 as if it were at the other edge, and resample it
there.
"""
from __future__ import annotations

import numpy as np

from .emulator import ChannelEmulator
from .paths import PathSet
from .sample_clock import SampleClock

__all__ = ["ChannelStage"]


class ChannelStage:
    """``process(samples complex64 [n]) -> complex64 [m]`` and ``flush()``, as the emulator's:
    the emulator, then (``sco_ppm`` != 0) the receiver's sample clock and the carrier offset
    ``cfo_hz`` turned after it, its phase carried across calls.

    Build it with :meth:`from_paths`, which puts the carrier offset in the emulator where
    there is no clock offset and after the clock where there is one.
    """

    def __init__(self, emulator: ChannelEmulator, sco_ppm: float = 0.0, cfo_hz: float = 0.0):
        self.emulator = emulator
        self.clock = SampleClock(sco_ppm) if sco_ppm else None
        self._turns = cfo_hz * (1 + sco_ppm * 1e-6) / emulator.sample_rate     # cycles per output sample
        self._n_out = 0

    @classmethod
    def from_paths(cls, paths: PathSet, sample_rate: float, *, snr_db: float | None, seed: int | None,
                   cfo_hz: float = 0.0, sco_ppm: float = 0.0, timing_offset: float = 0.0,
                   dc_offset: complex = 0.0, xp=np) -> "ChannelStage":
        """The stage of ``paths`` at ``sample_rate`` (Hz), Es/N0 ``snr_db`` (dB), carrier offset
        ``cfo_hz`` (Hz), the receiver's clock ``sco_ppm`` (its period 1 + ppm x 1e-6 times the
        transmitter's), ``timing_offset`` (samples) and ``dc_offset`` (relative amplitude)."""
        after_clock = bool(sco_ppm)
        emulator = ChannelEmulator(paths, sample_rate, snr_db=snr_db, seed=seed,
                                   cfo_hz=0.0 if after_clock else cfo_hz, timing_offset=timing_offset,
                                   dc_offset=dc_offset, xp=xp)
        return cls(emulator, sco_ppm, cfo_hz if after_clock else 0.0)

    def _turn(self, out: np.ndarray) -> np.ndarray:
        """The clock's output turned by the carrier offset, the phase carried across calls."""
        if self._turns:
            m = np.arange(self._n_out, self._n_out + out.size, dtype=np.float64)
            out = out * np.exp(2j * np.pi * np.mod(self._turns * m, 1.0)).astype(np.complex64)
        self._n_out += out.size
        return out

    def process(self, samples: np.ndarray) -> np.ndarray:
        out = self.emulator.process(samples)
        return out if self.clock is None else self._turn(self.clock.process(out))

    def flush(self) -> np.ndarray:
        out = self.emulator.flush()
        if self.clock is None:
            return out
        return self._turn(np.concatenate([self.clock.process(out), self.clock.flush()]))
