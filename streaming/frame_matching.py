"""Which transmitted frame each decoded frame is: matched by its bits against the truth rows.

The acquirer numbers frames from their timing (``FrameAcquirer``: ``seq``, frame slots
counted since the last lock). Samples inserted into or removed from the stream move that
count by a frame or more, and a numbering lined up with the truth once then compares every
later frame with its neighbour's bits (BER near 0.5, frames counted lost that were not).
Here each decoded frame is matched by content instead: the truth row nearest to its hard
bits in Hamming distance, looked for first in the row where its timing puts it (re-anchored
on every match), then within ``WINDOW`` rows of it, then among all rows. The payload of a frame is random
bits, so its own row lies at about the frame's BER and every other row at about half its
bits (binomial, standard deviation sqrt(B) / 2): a row is accepted when it lies
``MATCH_SIGMAS`` standard deviations or more under B / 2 (for B = 4000 bits: below a
distance of 0.437 B; a false match has a probability under 1e-15 a row). A frame no row is
that close to (decoded too wrong to tell which frame it was, erased, or not in the truth)
is unmatched, and counted.

Kinds (``MATCH_KINDS``): ``content`` (numbered by the truth row its bits matched),
``position`` (numbered from its timing: no truth to match against) and ``unmatched`` (with a
truth, matched no row).
"""
from __future__ import annotations

import numpy as np

__all__ = ["TruthMatcher", "MATCH_KINDS", "MATCH_SIGMAS", "WINDOW", "UNMATCHED"]

MATCH_KINDS = ("content", "position", "unmatched")
MATCH_SIGMAS = 8.0
"""A row matches when its distance lies this many binomial standard deviations under B / 2."""
WINDOW = 4
"""Rows each side of the row the frame's timing predicts, searched before all rows."""
UNMATCHED = -1
"""The row (``seq``) of a frame that matched none."""


class TruthMatcher:
    """The decoded frames of one stream against ``truth`` uint8 [K, B] (0/1, the sent
    frames' payload bits in order).

    ``match(seq, bits)``: ``seq`` the frame's number from its timing, ``bits`` uint8 [B] its
    hard decisions -> (row, bit errors against it), or (``UNMATCHED``, None). Counters:
    ``frames_matched`` and ``frames_unmatched``; ``rows_seen`` the rows matched at least
    once, ``lost`` the frames sent but not matched: the rows between the first and the last
    row matched that none matched (destroyed, dropped, erased or decoded past recognition),
    and the frames before the first one matched that its timing counts (``seq``, from the
    first frame acquired: dropped or destroyed before any was decoded; at most its row)."""

    def __init__(self, truth: np.ndarray):
        truth = np.asarray(truth, np.uint8)
        if truth.ndim != 2 or not truth.shape[0]:
            raise ValueError(f"truth must be a [frames, bits] array with a frame, got shape {truth.shape}")
        self.bits_per_frame = truth.shape[1]
        self._packed = _words(truth)
        self.threshold = self.bits_per_frame / 2 - MATCH_SIGMAS * np.sqrt(self.bits_per_frame) / 2
        self._offset = 0                            # row - seq of the last frame matched
        self._seen = np.zeros(truth.shape[0], bool)
        self._before_first: int | None = None      # frames lost before the first match
        self.frames_matched = self.frames_unmatched = 0

    def match(self, seq: int, bits: np.ndarray) -> tuple[int, int | None]:
        """(row, bit errors) of the truth row ``bits`` matches, (``UNMATCHED``, None) where none."""
        bits = np.asarray(bits, np.uint8)
        if bits.shape != (self.bits_per_frame,):
            raise ValueError(f"a frame of {bits.size} bits against truth rows of {self.bits_per_frame}")
        packed = _words(bits)
        expected = int(seq) + self._offset
        K = self._seen.size
        for lo, hi in ((expected, expected + 1), (expected - WINDOW, expected + WINDOW + 1), (0, K)):
            lo, hi = max(0, lo), min(K, hi)
            if lo >= hi:
                continue
            distance = np.bitwise_count(self._packed[lo:hi] ^ packed).sum(axis=1, dtype=np.int64)
            rows = np.arange(lo, hi)
            best = np.lexsort((np.abs(rows - expected), distance))[0]   # nearest, then nearest in place
            if distance[best] <= self.threshold:
                row = int(rows[best])
                self._offset = row - int(seq)
                if self._before_first is None:
                    self._before_first = max(0, min(row, int(seq)))
                self._seen[row] = True
                self.frames_matched += 1
                return row, int(distance[best])
        self.frames_unmatched += 1
        return UNMATCHED, None

    @property
    def rows_seen(self) -> int:
        return int(np.count_nonzero(self._seen))

    @property
    def lost(self) -> int:
        """Frames sent but not matched, from the first frame acquired to the last matched."""
        seen = np.flatnonzero(self._seen)
        return 0 if not seen.size else int(seen[-1] - seen[0] + 1 - seen.size) + self._before_first


def _words(bits: np.ndarray) -> np.ndarray:
    """uint8 0/1 [..., B] -> the bits packed into uint64 [..., ceil(B / 64)] (zero-padded), for
    a Hamming distance by XOR and popcount."""
    packed = np.packbits(bits, axis=-1)
    padded = np.zeros(packed.shape[:-1] + (-(-packed.shape[-1] // 8) * 8,), np.uint8)
    padded[..., :packed.shape[-1]] = packed
    return padded.view(np.uint64)
