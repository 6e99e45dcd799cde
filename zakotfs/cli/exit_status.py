"""The exit statuses of the ``zakotfs`` commands, and the one ``rx`` ends with.

======  ==============================================================================
status  meaning
======  ==============================================================================
0       done: frames were decoded (``rx``), or the command did its work
1       a runtime error once the work had started (a stage failed, a file could not be
        written); one line on stderr, the traceback with ``-v``
2       a bad argument or configuration, found before any work (one line on stderr)
3       ``rx``: nothing received (no sample before ``--start-timeout`` or the input's end)
4       ``rx``: samples came but no frame was decoded
5       ``rx``: messages came but none was whole samples of ``--in-format`` (the line says
        which format their sizes fit)
6       ``rx``: the input file is damaged (truncated, cut inside a sample, or not matching
        its SigMF checksum): the frames of its intact part were decoded, the line says
        what is wrong
130     interrupted outside the stream (Ctrl-C, SIGTERM or SIGHUP while starting up); a
        signal during the stream drains it and ends with 0, 3, 4 or 5 like any other stop
======  ==============================================================================
"""
from __future__ import annotations

from enum import IntEnum

__all__ = ["ExitStatus", "rx_outcome"]


class ExitStatus(IntEnum):
    OK = 0
    ERROR = 1
    USAGE = 2
    NO_INPUT = 3
    NO_FRAMES = 4
    FORMAT_MISMATCH = 5
    DAMAGED_INPUT = 6
    INTERRUPTED = 130


def rx_outcome(report: dict, input_name: str) -> tuple[ExitStatus, str | None]:
    """The exit status of an ``rx`` run from its ``report`` (``LinkStats.report``), and the
    line that explains a non-zero one (None for 0)."""
    source = report.get("source") or {}
    received = (report.get("acquisition") or {}).get("samples_in", 0)
    if not received:
        mismatched = source.get("size_mismatches", 0)
        if mismatched:
            fits = source.get("sizes_fit") or []
            hint = (f"; their sizes fit {' or '.join(fits)}: try --in-format {fits[0]}" if fits
                    else "")
            return ExitStatus.FORMAT_MISMATCH, (
                f"{mismatched} messages from {input_name}, none a whole number of "
                f"{source.get('sample_format', 'cf32_le')} samples{hint}")
        diagnosis = source.get("diagnosis")
        return ExitStatus.NO_INPUT, f"nothing received from {input_name}" + (f": {diagnosis}" if diagnosis else "")
    if source.get("damage"):
        return ExitStatus.DAMAGED_INPUT, (f"{input_name} is damaged ({source['damage']}): "
                                          f"{report.get('frames', 0)} frames of its intact part decoded")
    if not report.get("frames"):
        return ExitStatus.NO_FRAMES, f"{received} samples received from {input_name}, no frame decoded"
    return ExitStatus.OK, None
