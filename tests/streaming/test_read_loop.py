"""The one read loop: samples until the source ends, the sender's start waited for up to
the start timeout, a silence after samples ended by the idle timeout."""
import time

import numpy as np

from streaming.calibration import hold_frames
from streaming.read_loop import InputWatch, acquire_read, read_samples


class Source:
    """Reads ``script`` in order: an int n gives n samples, None nothing (a 20 ms wait);
    ``eof`` once the script is done and ``ends``."""

    def __init__(self, script, ends=True, missing=0):
        self.script, self.ends, self._missing = list(script), ends, missing

    @property
    def eof(self):
        return self.ends and not self.script

    def read(self):
        if not self.script:
            time.sleep(0.02)
            return None
        step = self.script.pop(0)
        if step is None:
            time.sleep(0.02)
            return None
        return np.ones(step, np.complex64)

    def missing(self):
        return self._missing


def test_the_loop_yields_each_read_and_stops_at_the_end():
    watch = InputWatch()
    got = [None if s is None else s.size for s in read_samples(Source([3, None, 4]), watch)]
    assert got == [3, None, 4] and watch.stopped_by == "eof"


def test_a_sender_that_never_starts_ends_the_loop_at_the_start_timeout():
    watch = InputWatch(start_timeout_s=0.1, idle_timeout_s=10.0)
    t0 = time.monotonic()
    assert all(s is None for s in read_samples(Source([], ends=False), watch))
    assert watch.stopped_by == "no_input" and 0.1 <= time.monotonic() - t0 < 2


def test_a_silence_after_samples_ends_the_loop_at_the_idle_timeout():
    watch = InputWatch(start_timeout_s=None, idle_timeout_s=0.1)
    sizes = [s.size for s in read_samples(Source([None, None, 5], ends=False), watch) if s is not None]
    assert sizes == [5] and watch.stopped_by == "stall" and watch.started


class Acquirer:
    """Every 4 samples make a frame; ``skip(n)`` counts what was lost."""

    def __init__(self):
        self.seq, self.buffered, self.skipped = 0, 0, 0

    def push(self, samples):
        self.buffered += samples.size
        frames = []
        while self.buffered >= 4:
            self.buffered -= 4
            frames.append((np.zeros(4, np.complex64), {"seq": self.seq}))
            self.seq += 1
        return frames

    def skip(self, n):
        self.skipped += n
        return []


def test_the_acquirer_hears_of_lost_samples_before_the_samples_after_them():
    acquirer = Acquirer()
    assert len(acquire_read(Source([], missing=7), acquirer, np.ones(8, np.complex64))) == 2
    assert acquirer.skipped == 7


def test_calibration_holds_the_first_frames_and_stops_reading_there():
    source = Source([8, 8, 8])
    held = hold_frames(source, Acquirer(), 3)
    assert [meta["seq"] for _, meta in held] == [0, 1, 2, 3] and source.script == [8]
