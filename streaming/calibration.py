"""Calibration on a stream: the first frames held back and read for the front end's offsets
(``zakotfs.calibration.calibrate``), then decoded first; and recalibration during a long
stream (``zakotfs.calibration.Recalibrator``) with the receiver retuned between batches.

An acquirer here is anything with ``push(samples)``, ``skip(n)`` and ``flush()`` returning
lists of (frame complex64 [L], meta dict), and ``stats`` (``FrameAcquirer``).
"""
from __future__ import annotations

from typing import Callable

from zakotfs.calibration import Recalibrator

from .read_loop import InputWatch, acquire_read, read_samples

__all__ = ["ObservedAcquirer", "hold_frames", "held_first", "Recalibration"]


class ObservedAcquirer:
    """``acquirer`` whose ``push``, ``skip`` and ``flush`` pass their frames through
    ``observe(frames) -> frames`` (``stats`` passes through as it is)."""

    def __init__(self, acquirer, observe: Callable[[list], list]):
        self.acquirer, self.observe = acquirer, observe

    @property
    def stats(self) -> dict:
        return self.acquirer.stats

    def push(self, samples) -> list:
        return self.observe(self.acquirer.push(samples))

    def skip(self, n: int) -> list:
        return self.observe(self.acquirer.skip(n))

    def flush(self) -> list:
        return self.observe(self.acquirer.flush())


def hold_frames(source, acquirer, n: int, watch: InputWatch | None = None) -> list:
    """The first ``n`` frames ``acquirer`` finds in ``source`` (fewer where the source ends or
    ``watch`` expires first): [(frame, meta)], for the caller to decode after calibrating
    on them (:func:`held_first`)."""
    held: list = []
    if n <= 0:
        return held
    for samples in read_samples(source, watch or InputWatch()):
        if samples is not None:
            held += acquire_read(source, acquirer, samples)
            if len(held) >= n:
                break
    return held


def held_first(acquirer, held: list) -> ObservedAcquirer:
    """``acquirer`` with the ``held`` frames emitted first, by whichever of ``push``, ``skip``
    and ``flush`` is called first (a file may have ended meanwhile)."""
    pending = list(held)

    def observe(frames: list) -> list:
        out = pending + frames
        pending.clear()
        return out
    return ObservedAcquirer(acquirer, observe)


class Recalibration(ObservedAcquirer):
    """``acquirer`` watched by ``recalibrator`` (its frames' metas, on the ingest thread);
    ``before_batch(metas)`` (the compute thread, ``PipelineRunner``'s ``before_batch``)
    calls ``retune(**changes)`` with the retunes due by the batch's first frame and keeps in
    the batch only the frames before the next retune, so that every frame is decoded with
    the offsets due at it. ``retune``: ``Receiver.retune``, or its pipeline's."""

    def __init__(self, acquirer, recalibrator: Recalibrator, retune: Callable):
        super().__init__(acquirer, self._observe)
        self.recalibrator, self.retune = recalibrator, retune

    def _observe(self, frames: list) -> list:
        self.recalibrator.observe([meta for _, meta in frames])
        return frames

    def before_batch(self, metas: list[dict]) -> int:
        """Retune for the batch's first frame; the number of leading frames that share its
        offsets."""
        changes = self.recalibrator.due(int(metas[0]["seq"]))
        if changes:
            self.retune(**changes)
        following = self.recalibrator.next_seq()
        return len(metas) if following is None else sum(int(m["seq"]) < following for m in metas)
