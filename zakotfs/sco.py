"""Sample-clock offset (SCO): the receiver's ADC runs at a rate that differs from the
transmitter's by epsilon = ppm x 1e-6.

With a sample period (1 + epsilon) times the transmitter's, the receiver's sample q of a
frame is taken at instant (1 + epsilon) q: the frame's delays drift by epsilon M N samples
from its start to its end (0.5 samples at 1 ppm on the paper grid, 245.76 MHz), a Doppler
of epsilon f at frequency f, up to epsilon B / 2 at the band edge. The channel estimate has
no model for a drifting delay: on the paper grid at 20 dB (``bench/results/sco_sweep_paper``),
0.5 ppm cost 10 % more bit errors, 1 ppm 40 %, 2 ppm 2.8x, 5 ppm 6x, 20 ppm all (the
acquirer re-finds every frame's start, so the drift does not build up across frames).

A known offset is undone before anything else: the CP-removed frame, one period of a
circular channel's output, is read at the instants q / (1 + epsilon) (``TimeScale``, an
exact band-limited resampling). The offset is measured from the acquirer's frame starts:
their period is S / (1 + epsilon) samples for S samples a frame on the wire
(``clock_offset_ppm``).
"""
from __future__ import annotations

import numpy as np

from dsp_kernels.resample import TimeScale

__all__ = ["compensation", "clock_offset_ppm", "DRIFT_WARNING"]

DRIFT_WARNING = 0.25
"""Samples of delay drift across one frame (epsilon M N) above which the rx summary suggests
compensating: 0.26 samples (0.5 ppm on the paper grid) cost 10 % more errors, 0.52 (1 ppm)
40 %, 0.33 (20 ppm on the demo grid) 15 %."""


def compensation(L: int, ppm: float, xp=np, dtype=np.complex64) -> TimeScale:
    """The resampling that undoes an offset of ``ppm`` on frames of L samples: read at
    q / (1 + epsilon)."""
    return TimeScale(L, 1 / (1 + ppm * 1e-6), xp, dtype)


def clock_offset_ppm(seqs, starts, samples_per_frame: int) -> float | None:
    """Sender frame numbers [n] and the stream indices where those frames start [n] ->
    epsilon in ppm, from the least-squares period P of the starts: P = S / (1 + epsilon).
    None with fewer than 3 frames or a single sequence number."""
    seqs, starts = np.asarray(seqs, float), np.asarray(starts, float)
    if seqs.size < 3 or np.ptp(seqs) == 0:
        return None
    period = np.polyfit(seqs, starts, 1)[0]
    return (samples_per_frame / period - 1) * 1e6
