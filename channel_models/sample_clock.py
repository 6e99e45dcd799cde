"""A receiver's sample clock that runs off the transmitter's, on a stream.

The receiver's ADC samples at (1 + epsilon) times the transmitter's period (epsilon = ppm x
1e-6): output sample m is the input stream read at instant p_m = (1 + epsilon) m. The input
is band-limited interpolated window by window: the outputs m0 ... m0 + B - 1 come from the
input samples w0 ... w0 + L - 1, w0 = floor(p_m0) - K, read as one period of a band-limited
signal at (1 + epsilon) j + (p_m0 - w0) (``dsp_kernels.resample.TimeScale``). The K samples
kept on each side of what a block reads put the window's edges, where the periodic reading
is wrong, K samples away: an error near 1 / (pi^2 K) of the signal's power, as the
emulator's fractional delays (K = 4096: about -43 dB). The output does not depend on how
the input is cut into chunks.
"""
from __future__ import annotations

import math

import numpy as np

from dsp_kernels.resample import TimeScale

from .emulator import DEFAULT_HALF_LEN

__all__ = ["SampleClock"]


class SampleClock:
    """``process(chunk)`` -> the samples of the slow (ppm > 0) or fast clock completed so far;
    ``flush()`` -> the rest, the input taken as zeros after its end (and before its start).

    Parameters
    ----------
    ppm : float
        The receiver's sample period is 1 + ppm x 1e-6 times the transmitter's.
    half_len : int
        K, the margin on each side of a block's window.
    block : int
        Outputs per window.
    """

    def __init__(self, ppm: float, *, half_len: int = DEFAULT_HALF_LEN, block: int = 1 << 15):
        if not (math.isfinite(ppm) and abs(ppm) < 1e4):
            raise ValueError(f"ppm must be finite and under 1e4 in size, got {ppm!r}")
        if half_len < 1 or block < 1:
            raise ValueError(f"half_len and block must be positive, got {half_len}, {block}")
        self.epsilon = ppm * 1e-6
        self.half_len, self.block = int(half_len), int(block)
        self.window = int(math.ceil(self.block * (1 + abs(self.epsilon)))) + 2 * self.half_len + 2
        self._scale = TimeScale(self.window, 1 + self.epsilon, dtype=np.complex64)
        self._buffer = np.zeros(self.half_len, np.complex64)    # input from w0 = -K on
        self._start = -self.half_len                            # stream index of _buffer[0]
        self._m = 0                                             # next output sample
        self._n_in = 0

    def _position(self, m: int) -> float:
        return m + self.epsilon * m

    def _blocks(self, end: float) -> list:
        """Every full block whose window ends at or before input index ``end``."""
        out = []
        while True:
            p0 = self._position(self._m)
            w0 = math.floor(p0) - self.half_len
            if w0 + self.window > end:
                return out
            lo = w0 - self._start
            y = self._scale(self._buffer[lo:lo + self.window], p0 - w0)[:self.block]
            out.append(y)
            self._m += self.block
            keep = math.floor(self._position(self._m)) - self.half_len - self._start
            self._buffer, self._start = self._buffer[keep:], self._start + keep

    def process(self, chunk: np.ndarray) -> np.ndarray:
        """complex64 [n] -> complex64 [k] resampled samples (k may be 0)."""
        chunk = np.asarray(chunk, dtype=np.complex64).reshape(-1)
        self._buffer = np.concatenate([self._buffer, chunk])
        self._n_in += chunk.size
        out = self._blocks(self._start + self._buffer.size)
        return np.concatenate(out) if out else np.zeros(0, np.complex64)

    def flush(self) -> np.ndarray:
        """The outputs up to the last input sample's instant, zeros read after the end."""
        first = self._m
        last = math.floor((self._n_in - 1) / (1 + self.epsilon)) + 1 if self._n_in else 0
        out = []
        while self._m < last:
            out.append(self.process(np.zeros(self.block + self.window, np.complex64)))
        return np.concatenate(out)[:last - first] if out else np.zeros(0, np.complex64)
