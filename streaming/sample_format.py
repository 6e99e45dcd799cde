"""IQ sample formats on the wire and on disk: complex float32, and interleaved fixed point.

Named as SigMF's ``core:datatype``:

* ``cf32_le``: interleaved float32 I/Q (numpy complex64), GNU Radio's complex stream and
  gr-zeromq's default, UHD's fc32;
* ``ci16_le``: interleaved int16 I/Q, UHD's sc16 (a USRP's wire format), GNU Radio's
  ``short`` with vlen 2 (Complex To IShort); half the bytes of cf32;
* ``ci8``: interleaved int8 I/Q, UHD's sc8 and a HackRF's samples; a quarter of the bytes.

One item is one complex sample (a gr-zeromq pass_tags offset counts them). Fixed point is
read as complex64 by x = code / 2^(b-1), the full scale [-1, 1), as the ``sigmf`` package
reads it (the receiver does not depend on the scale). Written, an amplitude ``full_scale``
maps to the largest code:

    code = clip(round(x (2^(b-1) - 1) / full_scale), -(2^(b-1) - 1), 2^(b-1) - 1),

applied to I and Q; the components that clip are counted. Non-finite components are
written as 0 and counted as clipped. A writer that is not told the full scale
(:class:`SampleEncoder`) ranges its gain: the full scale is RANGING_HEADROOM (3 dB) over
the largest I or Q written so far, raised before any samples that would clip and never
lowered; nothing clips, and a frame during which it rises sees one gain step. (3 dB: 8-bit
samples lose to quantisation noise further down: 23 % more bit errors than float at 3 dB
and 50 % at 6 dB on the demo grid, ``bench/results/adc_sweep_demo.json``.)
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

__all__ = ["SampleFormat", "SampleEncoder", "LevelMeter", "SAMPLE_FORMATS", "RANGING_HEADROOM", "MAX_MAGNITUDE",
           "sample_format", "unusable", "count_unusable"]

RANGING_HEADROOM = float(np.sqrt(2.0))
"""Full scale over the largest I or Q so far, when a writer ranges its gain (3 dB)."""

MAX_MAGNITUDE = 1e6
"""The largest I or Q a usable sample has: far above any plausible full scale (fixed point
reads within [-1, 1)); beyond it a sample is garbage (random bytes read as float32 reach
1e38) and is treated like NaN, so that its square cannot overflow a power sum."""


def unusable(samples: np.ndarray) -> np.ndarray | None:
    """bool [n]: the complex64 [n] ``samples`` with a component that is not finite or whose
    magnitude exceeds :data:`MAX_MAGNITUDE`; None when there is none (checked first in one
    pass over the components' extremes, which NaN fails too)."""
    parts = samples.view(np.float32) if samples.dtype == np.complex64 else samples.view(samples.real.dtype)
    if parts.size == 0 or (parts.max() <= MAX_MAGNITUDE and parts.min() >= -MAX_MAGNITUDE):
        return None
    bad = ~(np.abs(parts) <= MAX_MAGNITUDE)
    return bad.reshape(-1, 2).any(axis=1)


def count_unusable(samples: np.ndarray) -> int:
    """How many of the complex ``samples`` are :func:`unusable`."""
    bad = unusable(samples)
    return 0 if bad is None else int(np.count_nonzero(bad))


@dataclass(frozen=True)
class SampleFormat:
    """One complex sample format.

    name : SigMF ``core:datatype``; bits : bits per component (0: float32);
    itemsize : bytes per complex sample.
    """

    name: str
    bits: int
    itemsize: int

    @property
    def is_float(self) -> bool:
        return self.bits == 0

    def decode(self, buf, offset: int = 0, byteorder: str = "<") -> np.ndarray:
        """complex64 [n]: the samples in ``buf`` from byte ``offset`` (a whole number of
        items; ``byteorder`` "<" or ">"). cf32 in little-endian order is a view of ``buf``
        (no copy); anything else is converted in one pass."""
        if self.is_float:
            samples = np.frombuffer(buf, dtype=byteorder + "c8", offset=offset)
            return samples if byteorder == "<" else samples.astype(np.complex64)
        codes = np.frombuffer(buf, dtype=f"{byteorder}i{self.bits // 8}", offset=offset)
        out = np.empty(codes.size // 2, dtype=np.complex64)
        np.multiply(codes, np.float32(2.0 ** (1 - self.bits)), out=out.view(np.float32))
        return out

    def encode(self, samples: np.ndarray, full_scale: float = 1.0) -> tuple[np.ndarray, int]:
        """(little-endian items as a 1-D array, components clipped) for complex [n] samples;
        fixed point by the module's rule with ``full_scale`` (> 0)."""
        if self.is_float:
            return np.ascontiguousarray(samples, dtype="<c8").reshape(-1), 0
        if not full_scale > 0:
            raise ValueError(f"full_scale must be > 0, got {full_scale!r}")
        top = 2 ** (self.bits - 1) - 1
        scaled = np.ascontiguousarray(samples, dtype=np.complex64).reshape(-1).view(np.float32) * np.float32(top / full_scale)
        finite = np.isfinite(scaled)
        clipped = int(np.count_nonzero(~finite))
        if clipped:
            scaled[~finite] = 0.0
        clipped += int(np.count_nonzero(np.abs(scaled) > top + 0.5))
        np.clip(np.rint(scaled, out=scaled), -top, top, out=scaled)
        return scaled.astype(f"<i{self.bits // 8}"), clipped


SAMPLE_FORMATS = {f.name: f for f in (SampleFormat("cf32_le", 0, 8), SampleFormat("ci16_le", 16, 4),
                                       SampleFormat("ci8", 8, 2))}
"""The formats by SigMF name."""


def sample_format(name: str | SampleFormat) -> SampleFormat:
    """The :class:`SampleFormat` called ``name`` (one of ``SAMPLE_FORMATS``)."""
    if isinstance(name, SampleFormat):
        return name
    try:
        return SAMPLE_FORMATS[name]
    except (KeyError, TypeError):
        raise ValueError(f"sample format {name!r}: expected one of {', '.join(SAMPLE_FORMATS)}") from None


class SampleEncoder:
    """Complex samples -> the items of a format, for a writer (a ZeroMQ sink, a file).

    ``full_scale``: the amplitude of the largest code (fixed point), or None to range the
    gain (module doc). ``clipped``: components clipped so far.
    """

    def __init__(self, fmt: str | SampleFormat = "cf32_le", full_scale: float | None = None):
        if full_scale is not None and not full_scale > 0:
            raise ValueError(f"full_scale must be > 0 or None (gain ranging), got {full_scale!r}")
        self.format = sample_format(fmt)
        self.full_scale = full_scale
        self.ranging = full_scale is None and not self.format.is_float
        self.clipped = 0

    def __call__(self, samples: np.ndarray) -> np.ndarray:
        """1-D little-endian items of complex [n] ``samples``."""
        if self.ranging and np.size(samples):
            with np.errstate(invalid="ignore"):
                peak = float(np.nanmax(np.abs(np.ascontiguousarray(samples, dtype=np.complex64).view(np.float32))))
            if np.isfinite(peak) and peak > 0 and peak > (self.full_scale or 0.0):
                self.full_scale = RANGING_HEADROOM * peak
        items, clipped = self.format.encode(samples, self.full_scale or 1.0)
        self.clipped += clipped
        return items


class LevelMeter:
    """The level of fixed-point input, in units of the full scale (a code c reads c / 2^(b-1)):
    the largest I or Q so far (``peak``) and the components at the largest code or the
    smallest (``clipped``: the ADC clipped there, or the sender did). Float input has no
    full scale and is not metered."""

    def __init__(self, fmt: str | SampleFormat):
        self.format = sample_format(fmt)
        self.peak = 0.0
        self.clipped = 0
        self._clip = (2 ** (self.format.bits - 1) - 1) / 2 ** (self.format.bits - 1) if self.format.bits else None

    def __call__(self, samples: np.ndarray) -> None:
        """Meter complex64 [n] samples as decoded from this format."""
        if self._clip is None or not np.size(samples):
            return
        parts = np.ascontiguousarray(samples, dtype=np.complex64).view(np.float32)
        peak = max(float(parts.max()), -float(parts.min()))          # no |x| array on the ingest path
        self.peak = max(self.peak, peak)
        if peak >= self._clip:
            self.clipped += int(np.count_nonzero(np.abs(parts) >= self._clip))

    def to_dict(self) -> dict:
        """{"sample_format", "peak_dbfs" (None for float input or silence), "clipped_components"}."""
        metered = self._clip is not None and self.peak > 0
        return {"sample_format": self.format.name,
                "peak_dbfs": float(20 * np.log10(self.peak)) if metered else None,
                "clipped_components": self.clipped}
