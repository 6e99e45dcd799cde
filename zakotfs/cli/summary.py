"""What the commands print: the report's summary with its warnings
(``streaming.diagnostics``), progress (a tqdm bar on a terminal, plain lines in a log) and
setup phases, and the sample writers' encoding note."""
from __future__ import annotations

import json
import sys
import time
from pathlib import Path

from tqdm import tqdm

from streaming.diagnostics import (carrier_out_of_range, cg_not_converged, clock_drift, delay_fit_edge, input_level,
                                   pilot_echoes, unmatched_frames)
from streaming.link_stats import LinkStats

def _warn(check, report: dict) -> list[str]:
    """The summary line of ``check``'s warning (``streaming.diagnostics``), if it has one."""
    message = check(report)
    return [] if message is None else [f"  warning: {message}"]


def _input_level_lines(report: dict) -> list[str]:
    """The fixed-point input's peak and clipping, and a warning where the gain is off."""
    source = report.get("source") or {}
    if source.get("peak_dbfs") is None:
        return []
    return ([f"  input {source['sample_format']}: peak {source['peak_dbfs']:.1f} dBFS, "
             f"{source['clipped_components']} components at full scale"] + _warn(input_level, report))


def _matching_note(report: dict) -> str:
    """How the frames were told apart, where a truth was given (``frames_matched_by``)."""
    kinds = report.get("frames_matched_by") or {}
    if not (kinds.get("content") or kinds.get("unmatched")):
        return ""
    return (f"; {kinds['content']} matched to the sent frames by their bits"
            + (f", {kinds['unmatched']} to none" if kinds["unmatched"] else ""))


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
           if report.get("frames_missing_vs_truth") else "")
        + _matching_note(report),
        f"  BER {ber}" + (f"; perfect-CSI LMMSE bound on the same frames {report['perfect_csi_ber']:.3e}"
                          if report.get("perfect_csi_ber") is not None else ""),
        f"  latency per frame (us): p50 {lat['p50']:.0f}  p99 {lat['p99']:.0f}  p99.9 {lat['p999']:.0f}  "
        f"max {lat['max']:.0f}  (deadline {report['deadline_us']:.0f}, missed {report['deadline_misses']})"
        if lat["p50"] is not None else "  latency: no frames",
        f"  throughput {report['throughput_mbps']:.2f} Mbps decoded over wall time "
        f"(the link carries {report.get('link_mbps', float('nan')):.2f} Mbps)",
    ]
    lines[2:2] = _warn(unmatched_frames, report)
    residual = (report.get("cg_residual") or {}).get("p50")
    if residual is not None:
        lines.append(f"  CG relative residual p50 {residual:.1e}, max {report['cg_residual']['max']:.1e}")
        lines += _warn(cg_not_converged, report)
    lines += _cfo_lines(report)
    lines += _input_level_lines(report)
    if "channel" in report:
        ch = report["channel"]
        lines.insert(1, f"  channel {ch['profile']}, nu_max {ch['nu_max_hz']:.0f} Hz "
                        f"({ch['doppler_bins']:.2f} Doppler bins), Es/N0 {ch['snr_db']:g} dB")
    print("\n".join(lines), file=file or sys.stdout)


def _clock_lines(report: dict) -> list[str]:
    """The sample-clock offset measured from the frame timing, and a suggestion where the
    drift it leaves inside a frame costs errors."""
    measured, removed = report.get("sample_clock_ppm"), report.get("sample_clock_ppm_removed") or 0.0
    if measured is None:
        return []
    return ([f"  sample clock {round(measured, 2) + 0.0:+.2f} ppm from the frame timing"
             + (f" ({removed:g} removed)" if removed else "")] + _warn(clock_drift, report))


def _cfo_lines(report: dict) -> list[str]:
    """The CFO the receiver removed, the clock, the channel's delays, the DC offset, and the
    warnings on each."""
    removed, offset = report.get("cfo_hz"), report.get("cfo_offset_hz") or 0.0
    lines = []
    if removed is not None:
        lines.append(f"  CFO removed p50 {removed['p50']:.0f} Hz, min {removed['min']:.0f}, max {removed['max']:.0f}"
                     + (f" (--cfo-offset {offset:g} included)" if offset else ""))
    lines += _warn(carrier_out_of_range, report)
    lines += _clock_lines(report)
    delay = report.get("channel_delay")
    if delay is not None:
        lo, hi = delay["fit_range"]
        lines.append(f"  channel delays (samples): first p50 {delay['first']['p50']:.1f}, last p50 "
                     f"{delay['last']['p50']:.1f}, max {delay['last']['max']:.1f} (the fit covers {lo:g} to {hi:g})")
        lines += _warn(delay_fit_edge, report)
    lines += _warn(pilot_echoes, report)
    dc = report.get("dc_removed") or {}
    if dc.get("frames"):
        lines.append(f"  DC offset removed in {dc['frames']} of {report['frames']} frames "
                     f"(|c|^2 up to {dc['max_db_over_noise']:+.1f} dB against the noise per sample)")
    return lines


class ProgressBar:
    """Progress of a long run on stderr: a tqdm bar on a terminal; elsewhere (a log file) a
    plain line when the count has moved and ``interval_s`` has passed since the last one,
    and one at the end.

    ``update(n, **fields)`` sets the count to ``n`` with ``fields`` shown beside it;
    ``close()`` ends the bar (or writes the last line)."""

    def __init__(self, total: int | None, unit: str, desc: str, file=None, interval_s: float = 10.0):
        self.file = file or sys.stderr
        self.total, self.unit, self.desc, self.interval_s = total, unit, desc, interval_s
        self.bar = tqdm(total=total, unit=f" {unit}", desc=desc, file=self.file, dynamic_ncols=True,
                        mininterval=0.5) if self.file.isatty() else None
        self.started = self._last_t = time.perf_counter()
        self.n, self._last_n, self.fields = 0, 0, {}

    def update(self, n: int, **fields) -> None:
        self.n, self.fields = n, fields
        if self.bar is not None:
            self.bar.set_postfix(fields, refresh=False)
            self.bar.update(n - self.bar.n)
            return
        now = time.perf_counter()
        if n != self._last_n and now - self._last_t >= self.interval_s:
            self._line(now)

    def _line(self, now: float) -> None:
        self._last_t, self._last_n = now, self.n
        rate = self.n / max(now - self.started, 1e-9)
        extra = "".join(f", {k} {v}" for k, v in self.fields.items())
        print(f"{self.desc}: {self.n}{f'/{self.total}' if self.total else ''} {self.unit}, {rate:.1f} {self.unit}/s"
              f"{extra}", file=self.file, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        elif self.n != self._last_n:
            self._line(time.perf_counter())


def frame_progress(total: int | None, desc: str):
    """``progress(session)`` for a receiver's run (a :class:`ProgressBar` of the frames
    decoded, with the frames lost and the BER so far) and ``close()``."""
    bar = ProgressBar(total, "frames", desc)

    def progress(session: LinkStats) -> None:
        bar.update(session.frames, lost=session.lost,
                   BER=f"{session.errors / session.bits:.2e}" if session.bits else "-")
    progress.close = bar.close
    return progress


def phase(command: str, text: str) -> None:
    """A setup phase of ``command`` on stderr ("zakotfs rx: building the receiver")."""
    print(f"zakotfs {command}: {text}", file=sys.stderr, flush=True)


def emit(report: dict, args, show: bool = True) -> None:
    """The report to ``--report`` (JSON file), then (``show``) as JSON (``--json``) or the
    summary on stdout."""
    if getattr(args, "report", None):
        Path(args.report).write_text(json.dumps(report, indent=2, default=float) + "\n")
    if not show:
        return
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
