"""Reading a sample source until it ends or falls silent: the start and idle timeouts.

A source (``streaming.io.SampleSource``) returns ``complex64 [n]`` from ``read()``, or None
(or no samples) when nothing has come yet; ``eof`` is True once no more will come. Before
the first samples the reader waits ``start_timeout_s`` for the sender (None: however late it
starts); once samples have come, ``idle_timeout_s`` without any ends the input (a stall).
"""
from __future__ import annotations

import time
from typing import Iterator

import numpy as np

__all__ = ["InputWatch", "read_samples", "acquire_read"]

_SPIN_S = 0.01          # a read that returned at once with nothing: wait this long before the next


class InputWatch:
    """The start and idle timeouts of one input, on ``time.perf_counter`` seconds.

    ``arrived()`` when samples come (returns the seconds without any before them);
    ``expired()`` -> ``"no_input"`` (nothing within ``start_timeout_s`` of the start),
    ``"stall"`` (nothing for ``idle_timeout_s`` once samples have come) or None.
    A timeout of None never expires."""

    def __init__(self, start_timeout_s: float | None = None, idle_timeout_s: float | None = None):
        self.start_timeout_s, self.idle_timeout_s = start_timeout_s, idle_timeout_s
        self.started = False
        self.last = time.perf_counter()
        self.stopped_by: str | None = None

    def idle_s(self, now: float | None = None) -> float:
        """Seconds since the last samples (since the start, before any)."""
        return (time.perf_counter() if now is None else now) - self.last

    def arrived(self, now: float | None = None) -> float:
        now = time.perf_counter() if now is None else now
        idle, self.last, self.started = now - self.last, now, True
        return idle

    def expired(self, now: float | None = None) -> str | None:
        timeout = self.idle_timeout_s if self.started else self.start_timeout_s
        if timeout is None or self.idle_s(now) < timeout:
            return None
        return "stall" if self.started else "no_input"


def read_samples(source, watch: InputWatch) -> Iterator[np.ndarray | None]:
    """Read ``source`` until it ends (``eof``) or ``watch`` expires: yields each read's
    samples, or None after a read that brought none (the caller may do other work between
    reads). ``watch.stopped_by`` is then ``"eof"``, ``"no_input"`` or ``"stall"``; a
    caller that stops iterating first leaves it None."""
    watch.stopped_by = None
    while True:
        t_read = time.perf_counter()
        samples = source.read()
        if samples is not None and samples.size:
            watch.arrived()
            yield samples
            continue
        if source.eof:
            watch.stopped_by = "eof"
            return
        expired = watch.expired()
        if expired is not None:
            watch.stopped_by = expired
            return
        if time.perf_counter() - t_read < 1e-3:          # a source that does not wait: do not spin
            time.sleep(_SPIN_S)
        yield None


def acquire_read(source, acquirer, samples: np.ndarray) -> list:
    """The frames ``acquirer`` completes with ``samples``, just read from ``source``, told
    first of the samples lost in transport before them (``source.missing()``, where the
    source knows: pass_tags offsets)."""
    missing = source.missing() if hasattr(source, "missing") else 0
    return (acquirer.skip(missing) if missing else []) + acquirer.push(samples)
