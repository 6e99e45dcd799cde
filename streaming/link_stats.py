"""Link statistics of a receiver's output: bit errors against the transmitted bits, frames
lost and invalid, latency against the deadline, and the per-frame statistics (residual,
carrier offset, sample clock, DC offset, channel delays, pilot echoes) summarised into the
report that ``zakotfs rx`` and ``zakotfs demo`` print.

The report (a JSON object) says what it is: ``schema`` (``REPORT_SCHEMA``),
``schema_version``, ``software_version``, ``command`` (the command as typed: ``zakotfs rx ...``), ``created`` (ISO 8601 UTC) and
``units``: the unit of every quantity that has one, keyed by its field (a dotted path;
``stages`` applies to every stage's percentiles). ``stopped_by`` says why the stream ended
(``STOP_REASONS``). ``frames_matched_by`` counts the frames of each kind of
``streaming.frame_matching.MATCH_KINDS``: ``content`` (matched to a ``--truth`` row by their
bits), ``position`` (no truth: numbered from their timing), ``unmatched``; where frames were
matched by content, ``frames_lost`` counts the sent frames that none matched, from the first
acquired to the last matched (``TruthMatcher.lost``), else the frames the acquirer's timing
says it lost and the frames dropped."""
from __future__ import annotations

import datetime
import time
from pathlib import Path

import numpy as np

import zakotfs
from zakotfs.benchmark import percentiles
from zakotfs.config import FrameConfig
from zakotfs.receiver import modelled_delays
from zakotfs.frame_stats import FRAME_STATISTICS, present
from zakotfs.sco import clock_offset_ppm

from .diagnostics import diagnose
from .files import IQReader
from .frame_matching import MATCH_KINDS, UNMATCHED, TruthMatcher

__all__ = ["LinkStats", "EDGE_WARNING", "SUMMARISED", "REPORT_SCHEMA", "REPORT_SCHEMA_VERSION", "REPORT_UNITS",
           "STOP_REASONS", "stop_reason"]

REPORT_SCHEMA = "zakotfs-link-report"
REPORT_SCHEMA_VERSION = 3
"""Version of the report's fields (2: no ``frames_matched_by``, frames lined up with the
truth once by their timing, ``frames_lost`` from the timing; 1: no schema, units, command or
date; ``stopped_by`` in the runner's words)."""

REPORT_UNITS = {
    "latency_us": "us", "deadline_us": "us", "throughput_mbps": "Mbit/s", "link_mbps": "Mbit/s",
    "stages": "us per frame", "cg_residual": "relative residual (|r| / |b|)",
    "cfo_hz": "Hz", "preamble_cfo_hz": "Hz", "cfo_range_hz": "Hz", "cfo_offset_hz": "Hz",
    "sample_clock_ppm": "ppm", "sample_clock_ppm_removed": "ppm",
    "dc_removed.max_db_over_noise": "dB against the noise power per sample",
    "channel_delay.first": "samples", "channel_delay.last": "samples", "channel_delay.fit_range": "samples",
    "pilot_echoes.strongest_db": "dB against the channel in the tap window",
    "pilot_echoes.farthest_delay": "samples", "pilot_echoes.farthest_delay_us": "us",
    "runner.wall_s": "s", "runner.stall_s": "s", "runner.latency_us": "us (ingest to result)",
    "config.bandwidth": "Hz (the sample rate)", "config.cp_len": "samples", "config.preamble_len": "samples",
    "config.max_delay": "delay bins (samples)", "config.guard_neg": "delay bins", "config.guard_pos": "delay bins",
    "frame_statistics": "each statistic's own 'unit'",
}
"""The unit of each report field that has one (dotted paths into the report)."""

STOP_REASONS = {"eof": "end of stream", "stall": "idle timeout", "no_input": "start timeout",
                "interrupt": "signal", "max_frames": "frame limit", "stop": "stopped by the caller",
                "error": "error"}
"""The report's ``stopped_by`` for each of the runner's reasons (``streaming.runner``)."""


def stop_reason(reason: str | None) -> str | None:
    """``STOP_REASONS[reason]``: why the stream ended, in words (None: not stopped)."""
    return None if reason is None else STOP_REASONS.get(reason, reason)

SUMMARISED = tuple(s for s in FRAME_STATISTICS if s.dtype is float)
"""The per-frame statistics the report summarises (``valid`` counts the invalid frames)."""


class LinkStats:
    """The receiver's output side: the bit errors against the transmitted bits, results
    passed on to a sink, per-frame statistics and the report.

    ``consume(result, metas)`` takes one batch: ``result.bits`` uint8 [F, B], optional
    ``valid`` bool [F], ``stage_s`` {stage: seconds} and per-frame statistics [F]; every meta
    carries ``seq`` (the frame's number from its timing) and ``latency_us`` (per frame,
    ingest to bits), optionally ``lost_before``, ``cfo_hz`` and ``start`` (the acquirer's).
    ``truth_bits`` uint8 [K, B], or ``truth_path``: an HDF5 file whose /truth/bits is read
    once it exists. ``command``: the command line the report stores (``zakotfs rx ...``;
    None where the statistics were not gathered by a command).

    With a truth, each valid frame is matched to the truth row its bits are
    (``streaming.frame_matching``): the sink's metas then carry that row as ``seq``
    (``UNMATCHED`` where none: an erased frame or one decoded past recognition) and
    ``matched_by`` ``"content"`` or ``"unmatched"``; without one, ``seq`` stays the timing's
    and ``matched_by`` is ``"position"``. The report's ``frames_matched_by`` counts each kind;
    with a truth ``frames_lost`` is ``TruthMatcher.lost`` and ``ber`` is over the matched
    frames."""

    def __init__(self, config: FrameConfig, backend, estimator: str, truth_bits=None, sink=None,
                 truth_path=None, cfo_offset_hz: float = 0.0, sample_clock_ppm: float = 0.0,
                 command: str | None = None):
        self.config, self.backend, self.estimator, self.command = config, backend, estimator, command
        self.cfo_offset_hz, self.sample_clock_ppm = cfo_offset_hz, sample_clock_ppm
        self.truth, self.sink, self.truth_path = truth_bits, sink, truth_path
        self.latency, self.frames, self.lost, self.bits, self.errors = [], 0, 0, 0, 0
        self.invalid = 0
        self.per_frame: dict[str, list[np.ndarray]] = {s.name: [] for s in SUMMARISED}   # valid frames, per batch
        self.preamble_cfo_hz: list[float] = []     # the acquirer's coarse estimate
        self.frame_starts: list[tuple[int, int]] = []  # (seq, stream index) from the acquirer
        self.matcher: TruthMatcher | None = None
        self.matched_by = dict.fromkeys(MATCH_KINDS, 0)
        self.stage_s: dict = {}
        self.started = time.perf_counter()

    def _load_truth(self) -> None:
        """Read /truth/bits from ``truth_path`` once it exists (a transmitter started after the
        receiver writes it only then)."""
        if self.truth is not None or self.truth_path is None or not Path(self.truth_path).exists():
            return
        try:
            reader = IQReader(self.truth_path)
        except OSError:                           # still being written
            return
        self.truth = reader.truth_bits
        reader.close()
        if self.truth is None:
            raise ValueError(f"--truth {self.truth_path}: the file has no /truth/bits")

    def _match(self, meta: dict, bits: np.ndarray, valid: bool) -> dict:
        """``meta`` numbered by the truth row ``bits`` match (with ``matched_by``), the
        errors against it counted; numbered by position without a truth."""
        if self.truth is None:
            kind, row = "position", meta["seq"]
        else:
            if self.matcher is None:
                self.matcher = TruthMatcher(self.truth)
            row, errors = self.matcher.match(meta["seq"], bits) if valid else (UNMATCHED, None)
            kind = "unmatched" if errors is None else "content"
            if errors is not None:
                self.bits += bits.size
                self.errors += errors
        self.matched_by[kind] += 1
        return dict(meta, seq=row, matched_by=kind)

    def consume(self, result, metas: list[dict]) -> None:
        """result: ``.bits`` uint8 [F, B], optional ``.valid`` bool [F] and ``.stage_s``."""
        self._load_truth()
        valid = getattr(result, "valid", None)
        carried = present(result)
        if set(carried) - {"valid"}:
            ok = np.ones(len(result.bits), bool) if valid is None else np.asarray(valid, bool)
            for stat in SUMMARISED:               # NaN where the result does not carry it
                values = carried.get(stat.name)
                self.per_frame[stat.name].append(np.full(int(np.count_nonzero(ok)), np.nan) if values is None
                                                 else np.asarray(values, float)[ok])
        for name, seconds in (getattr(result, "stage_s", None) or {}).items():
            self.stage_s.setdefault(name, []).append(seconds / len(metas))
        numbered = []
        for i, meta in enumerate(metas):
            self.latency.append(meta["latency_us"] * 1e-6)
            self.frames += 1
            self.lost += int(meta.get("lost_before", 0))
            if "cfo_hz" in meta:
                self.preamble_cfo_hz.append(float(meta["cfo_hz"]))
            if "start" in meta:
                self.frame_starts.append((int(meta["seq"]), int(meta["start"])))
            ok = True if valid is None else bool(valid[i])
            self.invalid += int(not ok)
            numbered.append(self._match(meta, result.bits[i], ok))
        if self.sink is not None:
            self.sink(result, numbered)

    def add_lost(self, n: int) -> None:
        """Count ``n`` frames lost before the acquirer found the next one (where the metas
        that reach :meth:`consume` do not carry ``lost_before``)."""
        self.lost += int(n)

    def run_receiver(self, receiver, frames: list[tuple[np.ndarray, dict]]) -> None:
        """Process one batch of (frame, meta) with ``receiver.process``, time it and consume it."""
        if not frames:
            return
        t0 = time.perf_counter()
        result = receiver.process(np.stack([f for f, _ in frames]))
        per_frame_us = (time.perf_counter() - t0) / len(frames) * 1e6
        self.consume(result, [dict(m, latency_us=per_frame_us) for _, m in frames])

    def report(self, extra: dict | None = None) -> dict:
        """The link's report: frames, bit errors, latency against the deadline, throughput and
        every per-frame statistic summarised (with the views of them the summary warns on),
        updated with ``extra``; then ``warnings``, the diagnostics of all that
        (``streaming.diagnostics.diagnose``)."""
        deadline = self.config.wire_time
        wall = time.perf_counter() - self.started
        residual = self._finite("cg_residual")
        matcher = self.matcher
        out = {
            "frames": self.frames, "frames_lost": self.lost if matcher is None else matcher.lost,
            "frames_invalid": self.invalid, "frames_matched_by": dict(self.matched_by),
            "truth": self.truth is not None,
            # transmitted frames never decoded, lost ones before the first acquisition included
            "frames_missing_vs_truth": None if self.truth is None else self.truth.shape[0] - (
                0 if matcher is None else matcher.rows_seen),
            "bits": self.bits if self.truth is not None else self.frames * self.config.bits_per_frame,
            "bit_errors": self.errors if self.truth is not None else None,
            "ber": (self.errors / self.bits if self.bits else None) if self.truth is not None else None,
            "latency_us": percentiles(self.latency),
            "deadline_us": deadline * 1e6,
            "deadline_misses": int(np.count_nonzero(np.asarray(self.latency) > deadline)),
            "throughput_mbps": self.frames * self.config.bits_per_frame / max(wall, 1e-9) / 1e6,
            "stages": {k: percentiles(v) for k, v in self.stage_s.items()},
            "cg_residual": ({"p50": float(np.median(residual)), "max": float(np.max(residual))}
                            if residual.size else None),
            "cfo_hz": _spread(self._finite("cfo_hz")), "preamble_cfo_hz": _spread(self.preamble_cfo_hz),
            "cfo_range_hz": self.config.nu_p / 2, "cfo_offset_hz": self.cfo_offset_hz,
            "sample_clock_ppm": clock_offset_ppm(*zip(*self.frame_starts), self.config.samples_per_frame)
            if len(self.frame_starts) >= 3 else None,
            "sample_clock_ppm_removed": self.sample_clock_ppm,
            "dc_removed": self._dc_removed(),
            "channel_delay": self._channel_delay(),
            "pilot_echoes": self._pilot_echoes(),
            "frame_statistics": {stat.name: self._summary(stat) for stat in SUMMARISED},
            "backend": self.backend.name, "device": self.backend.device, "estimator": self.estimator,
            "config": self.config.to_dict(),
        }
        out.update(extra or {})
        out["warnings"] = diagnose(out)
        return {"schema": REPORT_SCHEMA, "schema_version": REPORT_SCHEMA_VERSION,
                "software_version": zakotfs.__version__, "command": self.command,
                "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
                "units": REPORT_UNITS, **out}

    def _column(self, name: str) -> np.ndarray:
        """float64 [n]: statistic ``name`` of every valid frame consumed (NaN: not carried)."""
        return np.concatenate(self.per_frame[name]) if self.per_frame[name] else np.empty(0)

    def _finite(self, name: str) -> np.ndarray:
        values = self._column(name)
        return values[np.isfinite(values)]

    def _pairs(self, a: str, b: str) -> np.ndarray:
        """float64 [n, 2]: statistics ``a`` and ``b`` of the valid frames where both are finite."""
        pairs = np.stack([self._column(a), self._column(b)], -1)
        return pairs[np.all(np.isfinite(pairs), axis=-1)]

    def _summary(self, stat) -> dict | None:
        """{unit, p50, min, max} of a statistic's finite values; None where no frame has one."""
        spread = _spread(self._finite(stat.name))
        return None if spread is None else {"unit": stat.unit, **spread}

    def _dc_removed(self) -> dict:
        """Frames whose DC offset was removed and the largest one's |c|^2 against N0 in dB."""
        dc, n0 = self._column("dc_power"), self._column("noise_var")
        removed = dc > 0
        db = 10 * np.log10(dc[removed] / n0[removed])
        return {"frames": int(db.size), "max_db_over_noise": float(db.max()) if db.size else None}

    def _channel_delay(self) -> dict | None:
        """The estimated channel's first and last delays (samples) against the delay fit's
        range from the frame's placement (``receiver.modelled_delays``); a frame whose estimate comes within
        EDGE_WARNING samples of the range's ends
        has paths at or beyond the tap window (a delay spread or a timing the guard does
        not hold). None without estimated delays."""
        span = self._pairs("delay_first", "delay_last")
        if not span.size:
            return None
        lo, hi = modelled_delays(self.config)
        first, last = span.T
        return {"first": _spread(first), "last": _spread(last), "fit_range": [float(lo), float(hi)],
                "frames_at_edge": int(np.count_nonzero((first <= lo + EDGE_WARNING) | (last >= hi - EDGE_WARNING)))}

    def _pilot_echoes(self) -> dict | None:
        """Frames with pilot echoes beyond the tap window (``zakotfs.echo``: paths the guard
        does not hold), the strongest one's power (dB against the channel in the window) and
        the farthest one's delay; None where no frame was scanned."""
        scanned = self._column("echo_delay").size
        if not scanned:
            return None
        echoes = self._pairs("echo_delay", "echo_db")
        out = {"frames": len(echoes), "of_frames": scanned}
        if len(echoes):
            delay, power_db = echoes.T
            farthest = float(delay[np.argmax(np.abs(delay))])
            out.update(strongest_db=float(power_db.max()), farthest_delay=farthest,
                       farthest_delay_us=farthest / self.config.bandwidth * 1e6)
        return out


EDGE_WARNING = 0.5
"""Samples from the delay fit's ends within which an estimated delay marks the frame as at
the edge: a path beyond the range is fitted at its end (``AccurateEstimator.fit_delays``)."""


def _spread(values) -> dict | None:
    """{p50, min, max} of a per-frame quantity, None without frames."""
    if not len(values):
        return None
    return {"p50": float(np.median(values)), "min": float(np.min(values)), "max": float(np.max(values))}
