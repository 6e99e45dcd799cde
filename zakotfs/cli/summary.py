"""What the commands print: the report's summary with its warnings, the progress line, and
the sample writers' encoding note."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

import numpy as np

from streaming.link_stats import LinkStats

from ..sco import DRIFT_WARNING

CFO_RANGE_WARNING = 0.8
"""Fraction of the pilot CFO estimator's range (+-nu_p / 2) beyond which the summary warns:
an offset there (plus the channel's Doppler centroid) aliases by nu_p, and the frame fails."""

CG_RESIDUAL_WARNING = 5e-3
"""Median CG residual above which the summary warns that the equaliser has not converged
(``python -m bench.cg_tuning residual`` relates the residual to the bit errors)."""

CI8_QUIET_DBFS = -6.0
"""An 8-bit input whose peak stays under this level loses to its own quantisation noise
(``python -m bench.impairment_sweep adc``)."""


def _input_level_lines(source: dict) -> list[str]:
    """The fixed-point input's peak and clipping (``streaming.sample_format.LevelMeter``),
    with a warning where the gain is off: clipping cuts the DD pilot's pulses (the frame's
    peaks), and 8-bit samples far under full scale drown in quantisation noise."""
    if source.get("peak_dbfs") is None:
        return []
    fmt, peak, clipped = source["sample_format"], source["peak_dbfs"], source["clipped_components"]
    lines = [f"  input {fmt}: peak {peak:.1f} dBFS, {clipped} components at full scale"]
    if clipped:
        lines.append("  warning: the input clips: lower the receive gain (clipping cuts the pilot's pulses, "
                     "the frame's peaks, and the channel estimate with them)")
    elif fmt == "ci8" and peak < CI8_QUIET_DBFS:
        lines.append(f"  warning: 8-bit input with its peak at {peak:.1f} dBFS: raise the receive gain until the "
                     f"peaks sit 0 to 3 dB under full scale (quantisation noise costs errors below "
                     f"{CI8_QUIET_DBFS:g} dBFS)")
    return lines


def print_summary(report: dict, file=None) -> None:
    """The report of ``demo`` or ``rx`` (``streaming.link_stats.LinkStats.report``) as a few
    lines, with a warning and a suggested option where a statistic says something is off."""
    c = report["config"]
    lat = report["latency_us"]
    ber = "n/a (no truth)" if report["ber"] is None else f"{report['ber']:.3e} ({report['bit_errors']} / {report['bits']} bits)"
    lines = [
        f"zakotfs: {c['name']} grid {c['M']}x{c['N']}, {c['bandwidth'] / 1e6:g} MHz, {c['modulation']}, "
        f"estimator {report['estimator']}, backend {report['backend']} ({report['device']})",
        f"  frames {report['frames']} decoded, {report['frames_lost']} lost, {report.get('frames_invalid', 0)} invalid"
        + (f", {report['frames_missing_vs_truth']} of the transmitted frames not decoded"
           if report.get("frames_missing_vs_truth") else ""),
        f"  BER {ber}" + (f"; perfect-CSI LMMSE bound on the same frames {report['perfect_csi_ber']:.3e}"
                          if report.get("perfect_csi_ber") is not None else ""),
        f"  latency per frame (us): p50 {lat['p50']:.0f}  p99 {lat['p99']:.0f}  p99.9 {lat['p999']:.0f}  "
        f"max {lat['max']:.0f}  (deadline {report['deadline_us']:.0f}, missed {report['deadline_misses']})"
        if lat["p50"] is not None else "  latency: no frames",
        f"  throughput {report['throughput_mbps']:.2f} Mbps decoded over wall time "
        f"(the link carries {report.get('link_mbps', float('nan')):.2f} Mbps)",
    ]
    residual = (report.get("cg_residual") or {}).get("p50")
    if residual is not None:
        lines.append(f"  CG relative residual p50 {residual:.1e}, max {report['cg_residual']['max']:.1e}")
        if residual > CG_RESIDUAL_WARNING:
            lines.append(f"  warning: the equaliser has not converged (median residual above {CG_RESIDUAL_WARNING:g}): "
                         "the BER is likely limited by CG rather than the channel; raise --cg-iterations")
    lines += _cfo_lines(report)
    lines += _input_level_lines(report.get("source") or {})
    if "channel" in report:
        ch = report["channel"]
        lines.insert(1, f"  channel {ch['profile']}, nu_max {ch['nu_max_hz']:.0f} Hz "
                        f"({ch['doppler_bins']:.2f} Doppler bins), Es/N0 {ch['snr_db']:g} dB")
    print("\n".join(lines), file=file or sys.stdout)


def _clock_lines(report: dict) -> list[str]:
    """The sample-clock offset measured from the frame timing, and a suggestion where the
    drift it leaves inside a frame costs errors (``zakotfs.sco``)."""
    measured, removed, c = report.get("sample_clock_ppm"), report.get("sample_clock_ppm_removed") or 0.0, report["config"]
    if measured is None:
        return []
    lines = [f"  sample clock {round(measured, 2) + 0.0:+.2f} ppm from the frame timing"
             + (f" ({removed:g} removed)" if removed else "")]
    drift = abs(measured - removed) * 1e-6 * c["M"] * c["N"]
    if drift > DRIFT_WARNING:
        lines.append(f"  warning: that drifts the channel by {drift:.2f} samples across a frame: run with "
                     f"--sample-clock-ppm {measured:.2f}")
    return lines


def _cfo_lines(report: dict) -> list[str]:
    """The CFO the receiver removed, and a warning where the preamble sees an offset near or
    beyond what the pilot estimate can take."""
    removed, coarse, limit = report.get("cfo_hz"), report.get("preamble_cfo_hz"), report.get("cfo_range_hz")
    offset = report.get("cfo_offset_hz") or 0.0
    lines = []
    if removed is not None:
        lines.append(f"  CFO removed p50 {removed['p50']:.0f} Hz, min {removed['min']:.0f}, max {removed['max']:.0f}"
                     + (f" (--cfo-offset {offset:g} included)" if offset else ""))
    if coarse is not None and limit and abs(coarse["p50"] - offset) > CFO_RANGE_WARNING * limit:
        lines.append(f"  warning: the preamble sees a carrier offset of {coarse['p50']:.0f} Hz, near or beyond the "
                     f"+-{limit:.0f} Hz the pilot corrects around {offset:g} Hz: run with --cfo-offset "
                     f"{coarse['p50']:.0f}, or shift the stream by {-coarse['p50']:.0f} Hz before the receiver")
    lines += _clock_lines(report)
    delay = report.get("channel_delay")
    if delay is not None:
        lo, hi = delay["fit_range"]
        lines.append(f"  channel delays (samples): first p50 {delay['first']['p50']:.1f}, last p50 "
                     f"{delay['last']['p50']:.1f}, max {delay['last']['max']:.1f} (the fit covers {lo:g} to {hi:g})")
        if delay["frames_at_edge"]:
            lines.append(f"  warning: the channel estimate reaches the end of the delay fit in {delay['frames_at_edge']} "
                         f"of {report['frames']} frames: paths at or beyond the tap window (a delay spread or a timing "
                         "the guard does not hold) are not modelled; use a frame configuration with a larger guard "
                         "(--delay-spread, at the transmitter and the receiver alike)")
    echoes = report.get("pilot_echoes") or {}
    if echoes.get("frames"):
        spread_us = np.ceil(abs(echoes["farthest_delay_us"]) * 10) / 10
        lines.append(f"  warning: pilot echoes beyond the tap window in {echoes['frames']} of {echoes['of_frames']} "
                     f"frames, up to {echoes['farthest_delay']:.0f} samples ({echoes['farthest_delay_us']:.2f} us), "
                     f"the strongest {-echoes['strongest_db']:.1f} dB under the channel: the channel is longer than "
                     "the guard holds, and those paths are not modelled; use a frame configuration with a larger "
                     f"guard (--delay-spread {spread_us:g} or more, at the transmitter and the receiver alike)")
    dc = report.get("dc_removed") or {}
    if dc.get("frames"):
        lines.append(f"  DC offset removed in {dc['frames']} of {report['frames']} frames "
                     f"(|c|^2 up to {dc['max_db_over_noise']:+.1f} dB against the noise per sample)")
    return lines


def progress(session: LinkStats, total: int | None) -> None:
    """frames/s, lost, BER so far: one refreshed line on a terminal, every 50 frames otherwise."""
    tty = sys.stderr.isatty()
    if not tty and session.frames % 50:
        return
    elapsed = time.perf_counter() - session.started
    ber = f"{session.errors / session.bits:.2e}" if session.bits else "-"
    of = f"/{total}" if total else ""
    print(f"{chr(13) if tty else ''}  {session.frames}{of} frames, {session.frames / max(elapsed, 1e-9):.1f} "
          f"frames/s, lost {session.lost}, BER so far {ber}   ", end="" if tty else "\n",
          file=sys.stderr, flush=True)


def emit(report: dict, args) -> None:
    """The report to ``--report`` (JSON file), then as JSON (``--json``) or the summary on stdout."""
    if getattr(args, "report", None):
        Path(args.report).write_text(json.dumps(report, indent=2, default=float) + "\n")
    if getattr(args, "json", False):
        print(json.dumps(report, indent=2, default=float))
    else:
        print_summary(report)


def encoding_note(obj) -> str:
    """', ci16_le at full scale F, K components clipped' for a fixed-point sample writer."""
    encoder = getattr(obj, "encoder", None)
    if encoder is None or encoder.format.is_float:
        return ""
    return f", {encoder.format.name} at full scale {encoder.full_scale or 1.0:.4g}, {encoder.clipped} components clipped"
