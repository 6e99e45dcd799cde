"""Diagnostics of a link report (``streaming.link_stats.LinkStats.report``): where a
statistic says the link is off, a warning that names the cause and the option that fixes
it (``zakotfs rx`` option names; the receiver's keyword of the same name in Python).

Each check takes the report and returns its warning, or None; :func:`diagnose` runs them
all, and the report carries the result as ``warnings``: [{``code``, ``message``}].
"""
from __future__ import annotations

import numpy as np

from zakotfs.sco import DRIFT_WARNING

__all__ = ["CFO_RANGE_WARNING", "CG_RESIDUAL_WARNING", "CI8_QUIET_DBFS", "CHECKS", "diagnose"]

CFO_RANGE_WARNING = 0.8
"""Fraction of the pilot CFO estimator's range (+-nu_p / 2) beyond which the preamble's
carrier offset is flagged: an offset there (plus the channel's Doppler centroid) aliases by
nu_p, and the frame fails."""

CG_RESIDUAL_WARNING = 5e-3
"""Median CG residual above which the equaliser is flagged as not converged
(``python -m bench.cg_tuning residual`` relates the residual to the bit errors)."""

CI8_QUIET_DBFS = -6.0
"""An 8-bit input whose peak stays under this level loses to its own quantisation noise
(``python -m bench.impairment_sweep adc``)."""


def cg_not_converged(report: dict) -> str | None:
    residual = (report.get("cg_residual") or {}).get("p50")
    if residual is None or residual <= CG_RESIDUAL_WARNING:
        return None
    return (f"the equaliser has not converged (median residual above {CG_RESIDUAL_WARNING:g}): "
            "the BER is likely limited by CG rather than the channel; raise --cg-iterations")


def carrier_out_of_range(report: dict) -> str | None:
    """The preamble sees a carrier offset near or beyond what the pilot estimate takes."""
    coarse, limit = report.get("preamble_cfo_hz"), report.get("cfo_range_hz")
    offset = report.get("cfo_offset_hz") or 0.0
    if coarse is None or not limit or abs(coarse["p50"] - offset) <= CFO_RANGE_WARNING * limit:
        return None
    return (f"the preamble sees a carrier offset of {coarse['p50']:.0f} Hz, near or beyond the "
            f"+-{limit:.0f} Hz the pilot corrects around {offset:g} Hz: run with --cfo-offset "
            f"{coarse['p50']:.0f}, or shift the stream by {-coarse['p50']:.0f} Hz before the receiver")


def clock_drift(report: dict) -> str | None:
    """The sample clock measured from the frame timing, less the one removed, drifts the
    channel by more than ``DRIFT_WARNING`` samples across a frame (``zakotfs.sco``)."""
    measured, removed = report.get("sample_clock_ppm"), report.get("sample_clock_ppm_removed") or 0.0
    if measured is None:
        return None
    drift = abs(measured - removed) * 1e-6 * report["config"]["M"] * report["config"]["N"]
    if drift <= DRIFT_WARNING:
        return None
    return f"that drifts the channel by {drift:.2f} samples across a frame: run with --sample-clock-ppm {measured:.2f}"


def delay_fit_edge(report: dict) -> str | None:
    """The channel estimate reaches the end of the delay fit in some frames."""
    delay = report.get("channel_delay")
    if delay is None or not delay["frames_at_edge"]:
        return None
    return (f"the channel estimate reaches the end of the delay fit in {delay['frames_at_edge']} "
            f"of {report['frames']} frames: paths at or beyond the tap window (a delay spread or a timing "
            "the guard does not hold) are not modelled; use a frame configuration with a larger guard "
            "(--delay-spread, at the transmitter and the receiver alike)")


def pilot_echoes(report: dict) -> str | None:
    """Pilot echoes beyond the tap window (``zakotfs.echo``): a channel longer than the guard."""
    echoes = report.get("pilot_echoes") or {}
    if not echoes.get("frames"):
        return None
    spread_us = np.ceil(abs(echoes["farthest_delay_us"]) * 10) / 10
    return (f"pilot echoes beyond the tap window in {echoes['frames']} of {echoes['of_frames']} "
            f"frames, up to {echoes['farthest_delay']:.0f} samples ({echoes['farthest_delay_us']:.2f} us), "
            f"the strongest {-echoes['strongest_db']:.1f} dB under the channel: the channel is longer than "
            "the guard holds, and those paths are not modelled; use a frame configuration with a larger "
            f"guard (--delay-spread {spread_us:g} or more, at the transmitter and the receiver alike)")


def input_level(report: dict) -> str | None:
    """A fixed-point input whose gain is off (``streaming.sample_format.LevelMeter``): clipping
    cuts the DD pilot's pulses (the frame's peaks), and 8-bit samples far under full scale
    drown in quantisation noise."""
    source = report.get("source") or {}
    if source.get("peak_dbfs") is None:
        return None
    fmt, peak = source["sample_format"], source["peak_dbfs"]
    if source["clipped_components"]:
        return ("the input clips: lower the receive gain (clipping cuts the pilot's pulses, "
                "the frame's peaks, and the channel estimate with them)")
    if fmt == "ci8" and peak < CI8_QUIET_DBFS:
        return (f"8-bit input with its peak at {peak:.1f} dBFS: raise the receive gain until the "
                f"peaks sit 0 to 3 dB under full scale (quantisation noise costs errors below "
                f"{CI8_QUIET_DBFS:g} dBFS)")
    return None


def unmatched_frames(report: dict) -> str | None:
    """Valid frames whose bits matched no truth row (``streaming.frame_matching``): decoded
    past recognition, or not sent by the transmitter whose bits ``--truth`` holds."""
    unmatched = (report.get("frames_matched_by") or {}).get("unmatched", 0) - report.get("frames_invalid", 0)
    if unmatched <= 0:
        return None
    return (f"{unmatched} of {report['frames']} decoded frames matched no frame of the truth (their bits "
            "are as far from every row as random bits): decoded past recognition, or --truth holds another "
            "transmission's bits; the BER counts the matched frames only")


CHECKS = (cg_not_converged, carrier_out_of_range, clock_drift, delay_fit_edge, pilot_echoes, input_level,
          unmatched_frames)
"""Every check, in the order the summary prints them."""


def diagnose(report: dict) -> list[dict]:
    """[{``code`` (the check's name), ``message``}] of every check that finds something."""
    return [{"code": check.__name__, "message": message} for check in CHECKS
            if (message := check(report)) is not None]
