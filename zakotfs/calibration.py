"""The front end's offsets read off the acquired frames: the sample clock from the frames'
period (``zakotfs.sco.clock_offset_ppm``) and the carrier from the preambles' coarse
estimates, and the rules for when they matter enough to retune the receiver.

A meta is the acquirer's per-frame dict (``streaming.acquisition.FrameAcquirer``): ``seq``
(the sender's frame number), ``start`` (stream index of the frame's start) and ``cfo_hz``
(the preamble's carrier offset estimate, Hz).
"""
from __future__ import annotations

import queue
from dataclasses import dataclass, field

import numpy as np

from .config import FrameConfig
from .sco import clock_offset_ppm

__all__ = ["CALIBRATION_DRIFT", "OffsetEstimate", "estimate_offsets", "calibrate", "Recalibrator"]

CALIBRATION_DRIFT = 0.1
"""Samples of drift across a frame (epsilon M N) from which the sample clock is undone."""


@dataclass(frozen=True)
class OffsetEstimate:
    """``sample_clock_ppm``: from the frames' period (None under 3 frames);
    ``preamble_cfo_hz``: the preambles' median (None without frames); ``changes``:
    {``sample_clock_ppm`` | ``cfo_offset_hz``: value} of those that differ from the applied
    ones enough to matter."""

    sample_clock_ppm: float | None
    preamble_cfo_hz: float | None
    changes: dict = field(default_factory=dict)


def estimate_offsets(config: FrameConfig, metas: list[dict], *, sample_clock_ppm: float = 0.0,
                     cfo_offset_hz: float = 0.0) -> OffsetEstimate:
    """The offsets of consecutive frames' ``metas`` against the applied ``sample_clock_ppm`` and
    ``cfo_offset_hz``. A change matters for the clock where it drifts a frame by more than
    ``CALIBRATION_DRIFT`` samples more (rounded to 0.01 ppm), for the carrier where it moved
    by more than half the pilot's range of +-nu_p / 2, the pilot taking the rest (rounded to
    100 Hz)."""
    ppm = clock_offset_ppm([m["seq"] for m in metas], [m["start"] for m in metas], config.samples_per_frame)
    cfo = float(np.median([m["cfo_hz"] for m in metas])) if metas else None
    changes = {}
    if ppm is not None and abs(ppm - sample_clock_ppm) * 1e-6 * config.MN > CALIBRATION_DRIFT:
        changes["sample_clock_ppm"] = round(ppm, 2)
    if cfo is not None and abs(cfo - cfo_offset_hz) > config.nu_p / 4:
        changes["cfo_offset_hz"] = round(cfo, -2)
    return OffsetEstimate(ppm, cfo, changes)


def calibrate(config: FrameConfig, metas: list[dict], *, sample_clock_ppm: float = 0.0,
              cfo_offset_hz: float = 0.0) -> dict:
    """One calibration on the first frames' ``metas``: {``frames``, ``sample_clock_ppm``,
    ``preamble_cfo_hz``, ``applied``}, where ``applied`` holds the offsets that matter
    (:func:`estimate_offsets` against none) among those not already given (a given offset,
    non-zero, stays)."""
    estimate = estimate_offsets(config, metas)
    given = {"sample_clock_ppm": sample_clock_ppm, "cfo_offset_hz": cfo_offset_hz}
    applied = {name: value for name, value in estimate.changes.items() if not given[name]}
    return {"frames": len(metas), "sample_clock_ppm": estimate.sample_clock_ppm,
            "preamble_cfo_hz": estimate.preamble_cfo_hz, "applied": applied}


class Recalibrator:
    """The recalibration policy of a long stream: the offsets read again off every ``every``
    frames (:func:`estimate_offsets` against those applied); where they moved enough to
    matter, a retune from the frame after the window on.

    ``observe(metas)`` takes the acquired frames' metas in order (the ingest thread);
    ``due(last_seq)`` returns the changes of the retunes due by frame ``last_seq``, merged,
    for the caller to apply before that frame (the compute thread), and ``next_seq()`` the
    frame the next one is due from, so that frames queued before a retune keep the old
    offsets. ``retunes``: [{``seq`` (the first frame retuned),
    the changed offsets}] in order.
    """

    def __init__(self, config: FrameConfig, every: int, *, sample_clock_ppm: float = 0.0,
                 cfo_offset_hz: float = 0.0):
        if not isinstance(every, int) or every < 3:
            raise ValueError(f"every must be an int >= 3 frames (the clock is read off their period), got {every!r}")
        self.config, self.every = config, every
        self.applied = {"sample_clock_ppm": sample_clock_ppm, "cfo_offset_hz": cfo_offset_hz}
        self.retunes: list[dict] = []
        self._metas: list[dict] = []
        self._due: queue.SimpleQueue = queue.SimpleQueue()       # retunes not yet handed out, in order
        self._next: dict | None = None

    def observe(self, metas: list[dict]) -> None:
        self._metas += metas
        while len(self._metas) >= self.every:
            window, self._metas = self._metas[:self.every], self._metas[self.every:]
            changes = estimate_offsets(self.config, window, **self.applied).changes
            if changes:
                self.applied.update(changes)
                retune = {"seq": int(window[-1]["seq"]) + 1, **changes}
                self.retunes.append(retune)
                self._due.put(retune)

    def due(self, last_seq: int) -> dict:
        changes: dict = {}
        while (following := self.next_seq()) is not None and following <= last_seq:
            changes.update({k: v for k, v in self._next.items() if k != "seq"})
            self._next = None
        return changes

    def next_seq(self) -> int | None:
        """The first frame of the next retune not yet handed out by ``due``, None if none is known."""
        if self._next is None and not self._due.empty():
            self._next = self._due.get()
        return None if self._next is None else self._next["seq"]
