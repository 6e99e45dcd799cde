"""``zakotfs``: demo, tx, channel, rx, bench (see ``shared/spec/interfaces.md``).

Every command prints one clear line and exits with status 2 on a bad argument or
configuration; Ctrl-C stops cleanly and still writes the report and flushes files.
"""
from __future__ import annotations

import argparse
import json
import logging
import math
import queue
import sys
import time

import numpy as np

from dsp_kernels import BackendError, get_backend
from streaming.sample_format import SAMPLE_FORMATS

from .config import PRESETS, FrameConfig, design, parse_grid, preset
from .frame import FrameBuilder, random_bits
from .modulation import LLR_FORMATS, LLR_INT8_STEP
from .pipelined import DEPTH, PipelinedReceiver
from .receiver import ESTIMATORS, Receiver
from .sco import DRIFT_WARNING, clock_offset_ppm

__all__ = ["main", "make_worker_process"]

log = logging.getLogger("zakotfs")


class UsageError(Exception):
    """A bad argument: printed as one line, exit status 2."""


# ---------------------------------------------------------------------------------------
# options
def _frame_options(p: argparse.ArgumentParser, *, default_preset: str | None = "demo") -> None:
    g = p.add_argument_group("frame configuration")
    g.add_argument("--preset", default=default_preset, choices=sorted(PRESETS),
                   help=f"named configuration (default {default_preset})")
    g.add_argument("--grid", help="MxN, e.g. 16384x32 (guard, CP and preamble sized for Veh-A)")
    g.add_argument("--bandwidth", type=float, help="Hz (default with --grid: M x 15 kHz)")
    g.add_argument("--mod", choices=["qpsk", "16qam", "64qam", "256qam"])
    g.add_argument("--delay-spread", type=float, metavar="US",
                   help="size the guard, CP and preamble for this delay spread in microseconds "
                        "(default: Veh-A's 2.51)")


def _sample_format_options(p: argparse.ArgumentParser, *, read: bool, write: bool) -> None:
    """--in-format (ZeroMQ and raw IQ input), --out-format and --full-scale (ZeroMQ and SigMF
    output): cf32_le, or interleaved int16 / int8 I/Q (streaming.sample_format)."""
    g = p.add_argument_group("sample format")
    if read:
        g.add_argument("--in-format", choices=list(SAMPLE_FORMATS),
                       help="ZeroMQ or raw IQ file input: cf32_le (default; complex float32), ci16_le (interleaved "
                            "int16, UHD's sc16) or ci8 (int8, UHD's sc8); a raw file's suffix (.cfile, .sc16, "
                            ".sc8, ...) says it too")
    if write:
        g.add_argument("--out-format", default="cf32_le", choices=list(SAMPLE_FORMATS),
                       help="ZeroMQ or SigMF output: cf32_le (default), ci16_le or ci8 (fixed point, an ADC's "
                            "codes)")
        g.add_argument("--full-scale", type=float,
                       help="fixed-point output: the amplitude of the largest code, beyond which I and Q clip "
                            "(counted); default: 3 dB over the largest I or Q so far, raised before anything clips")


def _backend_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="auto", choices=["auto", "cpu", "gpu"],
                   help="auto = GPU when one works, else CPU (and say which)")


def _receiver_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("receiver")
    g.add_argument("--estimator", default="accurate", choices=[e for e in ESTIMATORS if e != "perfect"])
    g.add_argument("--cg-iterations", type=int, help="fixed CG iterations (default by modulation: 8/12/24/32)")
    g.add_argument("--max-doppler-hz", type=float, default=1000.0)
    g.add_argument("--operator-window", type=int,
                   help="apply the channel per window of this many samples (0: the exact frame-long "
                        "operator; default: the shortest window under -40 dB predicted error, if any)")
    g.add_argument("--batch", type=int, default=1, help="frames per receiver call")
    g.add_argument("--cfo", default="pilot", choices=["pilot", "off"],
                   help="carrier-frequency offset: estimated from the pilot per frame and removed "
                        "(offset + Doppler centroid within +-nu_p/2, 7.5 kHz at nu_p = 15 kHz), or off")
    g.add_argument("--cfo-offset", type=float, default=0.0, metavar="HZ",
                   help="a known carrier offset, removed first; the pilot's estimate then covers +-nu_p/2 "
                        "around it (the rx summary suggests one when the preamble sees more)")
    g.add_argument("--sample-clock-ppm", type=float, default=0.0, metavar="PPM",
                   help="a known sample-clock offset (the receiver's sample period is 1 + PPM x 1e-6 times "
                        "the transmitter's), undone by resampling each frame; the rx summary measures it")
    g.add_argument("--dc", default="detect", choices=["detect", "off"],
                   help="DC offset: detected in the pilot's guard and removed where found, or off")
    g.add_argument("--llr", default="float32", choices=LLR_FORMATS,
                   help="LLR output: float32, or int8 codes of step 16/127 (quantised on the device; "
                        "a quarter of the bytes)")


def _start_timeout_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start-timeout", type=float,
                   help="seconds to wait for the first sample before stopping (default: wait for the sender)")


def _channel_options(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("channel")
    g.add_argument("--profile", default="veh-a", help="veh-a, veh-b, ped-a, ped-b, epa, eva, etu or a JSON file")
    g.add_argument("--speed-kmh", type=float, default=220.0)
    g.add_argument("--fc", type=float, default=4e9, help="carrier frequency in Hz")
    g.add_argument("--doppler-hz", type=float, help="nu_max directly (overrides speed and fc)")
    g.add_argument("--doppler-model", default="single", choices=["single", "jakes"])
    g.add_argument("--gain-model", default="rayleigh", choices=["rayleigh", "fixed"])
    g.add_argument("--snr", type=float, default=25.0, help="data Es/N0 in dB")
    g.add_argument("--cfo-hz", type=float, default=0.0)
    g.add_argument("--sco-ppm", type=float, default=0.0,
                   help="the receiver's sample clock: its period is 1 + ppm x 1e-6 times the transmitter's")
    g.add_argument("--dc-offset", type=float, default=0.0,
                   help="a zero-IF receiver's DC offset, relative to the signal's amplitude (0.1: -20 dB)")
    g.add_argument("--timing-offset", type=float, default=0.0, help="samples (fractional)")
    g.add_argument("--seed", type=int, default=1)


def resolve_config(args, stored: FrameConfig | None = None) -> FrameConfig:
    """The frame configuration from --preset/--grid/--bandwidth/--mod/--delay-spread (a file's
    own wins)."""
    if stored is not None:
        if args.grid or args.bandwidth or args.mod or getattr(args, "delay_spread", None):
            log.warning("the input carries its frame configuration; --grid/--bandwidth/--mod/--delay-spread ignored")
        return stored
    mod, spread = args.mod, getattr(args, "delay_spread", None)
    if spread is not None and not (math.isfinite(spread) and spread > 0):
        raise UsageError(f"--delay-spread must be a positive number of microseconds, got {spread}")
    if args.grid or args.bandwidth or spread is not None:
        base = preset(args.preset) if args.preset else None
        M, N = parse_grid(args.grid) if args.grid else (base.M, base.N)
        bandwidth = args.bandwidth or (None if args.grid or base is None else base.bandwidth)
        try:
            return design(M, N, bandwidth, mod or (base.modulation if base else "16qam"),
                          delay_spread_s=2.51e-6 if spread is None else spread * 1e-6)
        except ValueError as exc:
            raise UsageError(str(exc)) from None
    config = preset(args.preset or "demo")
    return config.replace(modulation=mod) if mod else config


def receiver_options(args) -> dict:
    """The :class:`Receiver` keyword options given by ``--backend`` and the receiver options
    (``--estimator``, ``--cg-iterations``, ``--max-doppler-hz``, ``--operator-window``, ``--llr``, ``--cfo``,
    ``--cfo-offset``, ``--dc``, ``--sample-clock-ppm``):
    JSON-serialisable, so that scale-out workers get them too (:func:`make_worker_process`)."""
    return {"backend": args.backend, "estimator": args.estimator, "cg_iterations": args.cg_iterations,
            "max_doppler_hz": args.max_doppler_hz, "operator_window": args.operator_window,
            "llr_format": args.llr, "cfo_correction": args.cfo == "pilot", "cfo_offset_hz": args.cfo_offset,
            "dc_removal": args.dc == "detect", "sample_clock_ppm": args.sample_clock_ppm}


def make_receiver(args, config: FrameConfig) -> Receiver:
    """The receiver for ``config`` with the command line's receiver options."""
    receiver = Receiver(config, **receiver_options(args))
    receiver.warm_up(getattr(args, "batch", 1))        # one-time costs out of the first frame's latency
    return receiver


class ChannelStage:
    """The emulator, then the receiver's sample clock where ``--sco-ppm`` is given
    (``channel_models.sample_clock``): ``process(samples)`` and ``flush()`` as the emulator's.

    With a clock offset the carrier offset is applied here, after the clock: the receiver's
    mixer turns the analogue signal, x(t) e^{j2pi nu t}, which its ADC samples at (1 + eps) m,
    so the samples are x((1 + eps) m) turned by nu (1 + eps) per sample. Turning before the
    resampling would read the part of the band the offset pushes past B/2 as if it were at
    the other edge, and resample it there (+32 % bit errors at 20 kHz and 150 ppm on demo)."""

    def __init__(self, emulator, sco_ppm: float, cfo_hz: float = 0.0):
        from channel_models.sample_clock import SampleClock

        self.emulator = emulator
        self.clock = SampleClock(sco_ppm) if sco_ppm else None
        self._turns = cfo_hz * (1 + sco_ppm * 1e-6) / emulator.sample_rate     # per output sample
        self._n_out = 0

    def _turn(self, out):
        """The clock's output turned by the carrier offset, the phase carried across calls."""
        if self._turns:
            m = np.arange(self._n_out, self._n_out + out.size, dtype=np.float64)
            out = out * np.exp(2j * np.pi * np.mod(self._turns * m, 1.0)).astype(np.complex64)
        self._n_out += out.size
        return out

    def process(self, samples):
        out = self.emulator.process(samples)
        return out if self.clock is None else self._turn(self.clock.process(out))

    def flush(self):
        out = self.emulator.flush()
        if self.clock is None:
            return out
        return self._turn(np.concatenate([self.clock.process(out), self.clock.flush()]))


def _check_delay_spread(profile, config: FrameConfig) -> None:
    """Warn where the profile's last path lies beyond what the frame's guard holds (the
    accurate estimator's delay fit, ``estimation.fit_range``): the receiver would not model
    it (demo grid, Veh-B: BER 0.14 against 0.026 with perfect CSI)."""
    from .estimation import fit_range

    last_s = max(profile.delays_s)
    held = fit_range(config)[1]
    if last_s * config.bandwidth > held:
        log.warning("the %s profile's last path is at %.1f samples (%.2f us), beyond the %g that this frame's "
                    "guard holds: the receiver will not model it; run with --delay-spread %.3g",
                    profile.name, last_s * config.bandwidth, last_s * 1e6, held, last_s * 1e6)


def make_channel(args, config: FrameConfig, xp=np):
    from channel_models.emulator import ChannelEmulator
    from channel_models.paths import draw_paths
    from channel_models.profiles import doppler_from_speed, load_profile

    nu_max = args.doppler_hz if args.doppler_hz is not None else doppler_from_speed(args.speed_kmh, args.fc)
    if nu_max < 0:
        raise UsageError(f"--doppler-hz must be >= 0, got {nu_max}")
    profile = load_profile(args.profile)
    _check_delay_spread(profile, config)
    paths = draw_paths(profile, nu_max, np.random.default_rng(args.seed),
                       doppler_model=args.doppler_model, gain_model=args.gain_model)
    after_clock = bool(args.sco_ppm)           # the carrier offset goes after the clock (ChannelStage)
    emulator = ChannelEmulator(paths, config.bandwidth, snr_db=args.snr, seed=args.seed,
                               cfo_hz=0.0 if after_clock else args.cfo_hz, timing_offset=args.timing_offset,
                               dc_offset=args.dc_offset, xp=xp)
    return ChannelStage(emulator, args.sco_ppm, args.cfo_hz if after_clock else 0.0), nu_max


# ---------------------------------------------------------------------------------------
# the receiving loop shared by demo and rx
class RxSession:
    """The receiver's output side: BER against truth (aligned on the first frame), results to
    a sink, the report. ``consume(result, metas)`` takes one batch; every meta carries ``seq``
    and ``latency_us`` (per frame, ingest to bits)."""

    def __init__(self, config: FrameConfig, backend, estimator: str, truth_bits=None, sink=None,
                 truth_path=None, cfo_offset_hz: float = 0.0, sample_clock_ppm: float = 0.0):
        self.config, self.backend, self.estimator = config, backend, estimator
        self.cfo_offset_hz, self.sample_clock_ppm = cfo_offset_hz, sample_clock_ppm
        self.truth, self.sink, self.truth_path = truth_bits, sink, truth_path
        self.latency, self.frames, self.lost, self.bits, self.errors = [], 0, 0, 0, 0
        self.invalid = 0
        self.cg_residual: list[float] = []
        self.cfo_hz: list[float] = []              # removed by the receiver, valid frames
        self.preamble_cfo_hz: list[float] = []     # the acquirer's coarse estimate
        self.dc_over_noise_db: list[float] = []    # frames whose DC offset was removed
        self.delay_span: list[tuple[float, float]] = []   # first and last delay of the estimate, valid frames
        self.echoes: list[tuple[float, float]] = []       # (delay, dB) of pilot echoes beyond the tap window
        self.echo_frames = 0                              # valid frames that were scanned for them
        self.frame_starts: list[tuple[int, int]] = []  # (seq, stream index) from the acquirer
        self.truth_rows: set[int] = set()
        self.truth_offset = None
        self.stage_s: dict = {}
        self.started = time.perf_counter()

    def _load_truth(self) -> None:
        """Read /truth/bits from ``truth_path`` once it exists (a transmitter started after the
        receiver writes it only then)."""
        from pathlib import Path

        from streaming.files import IQReader

        if self.truth is not None or self.truth_path is None or not Path(self.truth_path).exists():
            return
        try:
            reader = IQReader(self.truth_path)
        except OSError:                           # still being written
            return
        self.truth = reader.truth_bits
        reader.close()
        if self.truth is None:
            raise UsageError(f"--truth {self.truth_path}: the file has no /truth/bits")

    def _align(self, seq: int, bits: np.ndarray) -> None:
        """Truth row of the first decoded frame: the closest in Hamming distance."""
        distance = np.count_nonzero(self.truth != bits[None, :], axis=1)
        self.truth_offset = int(np.argmin(distance)) - seq

    def consume(self, result, metas: list[dict]) -> None:
        """result: ``.bits`` uint8 [F, B], optional ``.valid`` bool [F] and ``.stage_s``."""
        self._load_truth()
        valid = getattr(result, "valid", None)
        residual = getattr(result, "cg_residual", None)
        if residual is not None:
            ok = np.ones(len(residual), bool) if valid is None else np.asarray(valid, bool)
            self.cg_residual += np.asarray(residual, float)[ok].tolist()
            if getattr(result, "cfo_hz", None) is not None:
                self.cfo_hz += np.asarray(result.cfo_hz, float)[ok].tolist()
            if getattr(result, "delay_first", None) is not None:
                span = np.stack([np.asarray(result.delay_first, float), np.asarray(result.delay_last, float)], -1)[ok]
                self.delay_span += [tuple(d) for d in span if np.all(np.isfinite(d))]
            self.echo_frames += int(np.count_nonzero(ok))        # every receiver scans for echoes; a
            if getattr(result, "echo_delay", None) is not None:    # worker's message omits none found
                echo = np.stack([np.asarray(result.echo_delay, float), np.asarray(result.echo_db, float)], -1)[ok]
                self.echoes += [tuple(e) for e in echo if np.all(np.isfinite(e))]
            if getattr(result, "dc_power", None) is not None and getattr(result, "noise_var", None) is not None:
                dc, n0 = np.asarray(result.dc_power, float)[ok], np.asarray(result.noise_var, float)[ok]
                self.dc_over_noise_db += (10 * np.log10(dc[dc > 0] / n0[dc > 0])).tolist()
        for name, seconds in (getattr(result, "stage_s", None) or {}).items():
            self.stage_s.setdefault(name, []).append(seconds / len(metas))
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
            if self.truth is not None and ok:
                if self.truth_offset is None:
                    self._align(meta["seq"], result.bits[i])
                row = meta["seq"] + self.truth_offset
                if 0 <= row < self.truth.shape[0]:
                    self.truth_rows.add(row)
                    self.bits += result.bits.shape[1]
                    self.errors += int(np.count_nonzero(result.bits[i] != self.truth[row]))
        if self.sink is not None:
            self.sink(result, metas)

    def run_receiver(self, receiver: Receiver, frames: list[tuple[np.ndarray, dict]]) -> None:
        """Synchronous path (the demo): process one batch, time it, consume it."""
        if not frames:
            return
        t0 = time.perf_counter()
        result = receiver.process(np.stack([f for f, _ in frames]))
        per_frame_us = (time.perf_counter() - t0) / len(frames) * 1e6
        self.consume(result, [dict(m, latency_us=per_frame_us) for _, m in frames])

    def report(self, extra: dict | None = None) -> dict:
        from .benchmark import percentiles

        deadline = self.config.wire_time
        wall = time.perf_counter() - self.started
        out = {
            "frames": self.frames, "frames_lost": self.lost, "frames_invalid": self.invalid,
            "truth": self.truth is not None,
            # transmitted frames never decoded, lost ones before the first acquisition included
            "frames_missing_vs_truth": (self.truth.shape[0] - len(self.truth_rows)) if self.truth is not None else None,
            "bits": self.bits if self.truth is not None else self.frames * self.config.bits_per_frame,
            "bit_errors": self.errors if self.truth is not None else None,
            "ber": (self.errors / self.bits if self.bits else None) if self.truth is not None else None,
            "latency_us": percentiles(self.latency),
            "deadline_us": deadline * 1e6,
            "deadline_misses": int(np.count_nonzero(np.asarray(self.latency) > deadline)),
            "throughput_mbps": self.frames * self.config.bits_per_frame / max(wall, 1e-9) / 1e6,
            "stages": {k: percentiles(v) for k, v in self.stage_s.items()},
            "cg_residual": ({"p50": float(np.median(self.cg_residual)), "max": float(np.max(self.cg_residual))}
                            if self.cg_residual else None),
            "cfo_hz": _spread(self.cfo_hz), "preamble_cfo_hz": _spread(self.preamble_cfo_hz),
            "cfo_range_hz": self.config.nu_p / 2, "cfo_offset_hz": self.cfo_offset_hz,
            "sample_clock_ppm": clock_offset_ppm(*zip(*self.frame_starts), self.config.samples_per_frame)
            if len(self.frame_starts) >= 3 else None,
            "sample_clock_ppm_removed": self.sample_clock_ppm,
            "dc_removed": {"frames": len(self.dc_over_noise_db),
                           "max_db_over_noise": max(self.dc_over_noise_db, default=None)},
            "channel_delay": self._channel_delay(),
            "pilot_echoes": self._pilot_echoes(),
            "backend": self.backend.name, "device": self.backend.device, "estimator": self.estimator,
            "config": self.config.to_dict(),
        }
        out.update(extra or {})
        return out

    def _channel_delay(self) -> dict | None:
        """The estimated channel's first and last delays (samples) against the delay fit's
        range; a frame whose estimate comes within EDGE_WARNING samples of the range's ends
        has paths at or beyond the tap window (a delay spread or a timing the guard does
        not hold). None without estimated delays."""
        if not self.delay_span:
            return None
        from .estimation import fit_range

        lo, hi = fit_range(self.config)
        first, last = np.asarray(self.delay_span).T
        return {"first": _spread(first.tolist()), "last": _spread(last.tolist()), "fit_range": [lo, hi],
                "frames_at_edge": int(np.count_nonzero((first <= lo + EDGE_WARNING) | (last >= hi - EDGE_WARNING)))}

    def _pilot_echoes(self) -> dict | None:
        """Frames with pilot echoes beyond the tap window (``zakotfs.echo``: paths the guard
        does not hold), the strongest one's power (dB against the channel in the window) and
        the farthest one's delay; None where no frame was scanned."""
        if not self.echo_frames:
            return None
        out = {"frames": len(self.echoes), "of_frames": self.echo_frames}
        if self.echoes:
            delay, power_db = np.asarray(self.echoes).T
            farthest = float(delay[np.argmax(np.abs(delay))])
            out.update(strongest_db=float(power_db.max()), farthest_delay=farthest,
                       farthest_delay_us=farthest / self.config.bandwidth * 1e6)
        return out


EDGE_WARNING = 0.5
"""Samples from the delay fit's ends within which an estimated delay marks the frame as at
the edge: a path beyond the range is fitted at its end (``AccurateEstimator.fit_delays``)."""


def _spread(values: list[float]) -> dict | None:
    """{p50, min, max} of a per-frame quantity, None without frames."""
    if not values:
        return None
    return {"p50": float(np.median(values)), "min": float(np.min(values)), "max": float(np.max(values))}


CFO_RANGE_WARNING = 0.8
"""Fraction of the pilot CFO estimator's range (+-nu_p / 2) beyond which the summary warns:
an offset there (plus the channel's Doppler centroid) aliases by nu_p, and the frame fails."""


CG_RESIDUAL_WARNING = 5e-3
"""Median CG residual above which the summary warns. Measured at the paper grid, 16QAM, with
``python -m bench.cg_tuning residual``: 4e-4 after the default 12 iterations at 20 dB and
1.74 Doppler bins, where more iterations change the BER by a few percent; 2e-2 at 28 dB
and 3.5 bins, where 32 iterations (residual 1e-3) lower the BER from 1e-2 to 2e-5."""


CI8_QUIET_DBFS = -6.0
"""An 8-bit input whose peak stays under this level loses to its own quantisation noise:
on the demo grid at 25 dB, 50 % more bit errors at -6 dBFS and 4x at -12
(``bench/results/adc_sweep_demo.json``)."""


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


# ---------------------------------------------------------------------------------------
# commands
def cmd_demo(args) -> int:
    """Transmitter -> Vehicular-A sample-level channel -> acquisition -> receiver, in one process."""
    from streaming.acquisition import FrameAcquirer

    config = resolve_config(args)
    emulator, nu_max = make_channel(args, config)
    receiver = make_receiver(args, config)
    rng = np.random.default_rng(args.seed)
    bits = random_bits(config, args.frames, rng)
    stream = FrameBuilder(config).stream(bits)
    lead = rng.integers(0, config.samples_per_frame)            # the receiver starts mid-stream
    stream = np.concatenate([np.zeros(lead, np.complex64), stream])
    acquirer = FrameAcquirer(config)
    session = RxSession(config, receiver.backend, receiver.estimator_name, truth_bits=bits,
                        cfo_offset_hz=receiver.cfo_offset_hz, sample_clock_ppm=receiver.sample_clock_ppm)
    chunk = 8191                                                  # gr-zeromq's typical message size
    pending: list = []
    received = []
    try:
        for start in range(0, stream.size + chunk, chunk):
            rx = emulator.process(stream[start:start + chunk]) if start < stream.size else emulator.flush()
            received.append(rx)
            pending += acquirer.push(rx)
            if start >= stream.size:
                pending += acquirer.flush()
            while len(pending) >= args.batch or (pending and start >= stream.size):
                session.run_receiver(receiver, pending[:args.batch])
                pending = pending[args.batch:]
                if not args.json:
                    _progress(session, args.frames)
    except KeyboardInterrupt:
        print("\ninterrupted: reporting what was decoded", file=sys.stderr)
    if not args.json:
        print(file=sys.stderr)
    # with an emulated clock offset the frames no longer sit where the emulator's truth is: no bound
    bound = None if args.sco_ppm else _perfect_csi_ber(config, receiver, emulator.emulator,
                                                        np.concatenate(received), int(lead), bits, args.snr)
    report = session.report({
        "perfect_csi_ber": bound,
        "channel": {"profile": args.profile, "nu_max_hz": nu_max, "doppler_bins": nu_max * config.frame_time,
                    "snr_db": args.snr, "doppler_model": args.doppler_model, "seed": args.seed},
        "acquisition": acquirer.stats,
        "link_mbps": config.throughput_wire_bps / 1e6,
    })
    report["frames_lost"] = args.frames - report["frames"]            # sent but not decoded
    _emit(report, args)
    return 0


def _perfect_csi_ber(config, receiver, emulator, received, lead: int, bits, snr_db: float) -> float:
    """BER of the LMMSE receiver given the emulator's exact channel (its CFO included),
    noise variance and DC offset (removed), on the same received frames (aligned by the known
    transmit timing): the bound the estimated-CSI receiver is measured against."""
    from channel_models.paths import FramePaths

    perfect = Receiver(config, backend=receiver.backend, estimator="perfect",
                       cg_iterations=receiver.cg_iterations, operator_window=receiver.operator_window)
    spf, skip = config.samples_per_frame, config.preamble_len
    errors = 0
    for f in range(bits.shape[0]):
        start = lead + f * spf + skip
        t0 = start + config.cp_len
        fp = FramePaths.stack([emulator.frame_paths(t0)])
        op = fp.operator(config.MN)
        frame = received[None, start:start + config.cp_len + config.MN] - np.complex64(emulator.dc_offset)
        result = perfect.process(frame, operator=op, noise_var=10 ** (-snr_db / 10))
        errors += int(np.count_nonzero(result.bits[0] != bits[f]))
    return errors / bits.size


def _progress(session: RxSession, total: int | None) -> None:
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


def _emit(report: dict, args) -> None:
    if getattr(args, "report", None):
        from pathlib import Path

        Path(args.report).write_text(json.dumps(report, indent=2, default=float) + "\n")
    if getattr(args, "json", False):
        print(json.dumps(report, indent=2, default=float))
    else:
        print_summary(report)


def _is_endpoint(text: str) -> bool:
    return text.startswith(("tcp://", "ipc://", "inproc://"))


def _sample_sink(target: str, config: FrameConfig, args, pattern: str = "pub"):
    """(write(samples), close(), object) for an .h5 / .sigmf-meta file or a ZeroMQ endpoint,
    in ``--out-format`` at ``--full-scale``."""
    if args.full_scale is not None and not (math.isfinite(args.full_scale) and args.full_scale > 0):
        raise UsageError(f"--full-scale must be a positive amplitude, got {args.full_scale}")
    encoding = {"sample_format": args.out_format, "full_scale": args.full_scale}
    if _is_endpoint(target):
        from streaming.zmq_io import IQSink

        sink = IQSink(target, pattern, bind=True, pass_tags=args.pass_tags, **encoding)
        return sink.send, sink.close, sink
    if target.endswith((".h5", ".hdf5")):
        from streaming.files import IQWriter

        if args.out_format != "cf32_le":
            raise UsageError(f"--out {target}: an HDF5 sample file holds complex64; --out-format {args.out_format} "
                             f"needs a ZeroMQ endpoint or FILE.sigmf-meta")
        writer = IQWriter(target, config)
        return writer.write, writer.close, writer
    if target.endswith((".sigmf-meta", ".sigmf-data")):
        from streaming.files import SigMFWriter

        writer = SigMFWriter(target, config, **encoding)
        return writer.write, writer.close, writer
    raise UsageError(f"--out {target!r}: expected FILE.h5, FILE.sigmf-meta or a tcp:// / ipc:// endpoint")


def _encoding_note(obj) -> str:
    """', ci16_le at full scale F, K components clipped' for a fixed-point sample writer."""
    encoder = getattr(obj, "encoder", None)
    if encoder is None or encoder.format.is_float:
        return ""
    return f", {encoder.format.name} at full scale {encoder.full_scale or 1.0:.4g}, {encoder.clipped} components clipped"


def cmd_tx(args) -> int:
    """Random payload frames to a file or a ZeroMQ endpoint; payload bits to /truth."""
    config = resolve_config(args)
    bits = random_bits(config, args.frames, np.random.default_rng(args.seed))
    stream = FrameBuilder(config).stream(bits)
    if args.lead_samples:                   # the receiver then starts at an arbitrary sample
        lead_rng = np.random.default_rng(args.seed + 2)
        lead = 0.03 * (lead_rng.standard_normal(args.lead_samples) + 1j * lead_rng.standard_normal(args.lead_samples))
        stream = np.concatenate([lead.astype(np.complex64), stream])
    write, close, obj = _sample_sink(args.out, config, args, args.pattern)
    if hasattr(obj, "write_truth_bits"):
        obj.write_truth_bits(bits)
    elif args.truth:
        from streaming.files import IQWriter

        with IQWriter(args.truth, config) as truth:
            truth.write_truth_bits(bits)
    if _is_endpoint(args.out):
        time.sleep(args.connect_wait)                          # let subscribers connect (PUB)
    rng = np.random.default_rng(args.seed + 1)
    period = args.message_size / config.bandwidth
    t_next = time.perf_counter()
    try:
        start = 0
        while start < stream.size:
            n = int(rng.integers(1, 2 * args.message_size)) if args.random_sizes else args.message_size
            write(stream[start:start + n])
            start += n
            if args.realtime:
                t_next += n / config.bandwidth
                time.sleep(max(0.0, t_next - time.perf_counter()))
            elif _is_endpoint(args.out) and args.rate_limit:
                time.sleep(period * args.rate_limit)
    except KeyboardInterrupt:
        print("interrupted: closing the output", file=sys.stderr)
    finally:
        close()
    print(f"zakotfs tx: {args.frames} frames ({stream.size} samples, {config.summary()}) -> {args.out}"
          f"{_encoding_note(obj)}", file=sys.stderr)
    return 0


def _open_input(target: str, args, pattern: str = "sub"):
    """The sample source ``--in`` names, in ``--in-format``. A file without a frame
    configuration (raw IQ, SigMF from another tool) takes the one the frame options give."""
    from streaming.files import MissingConfigError, open_source

    if _is_endpoint(target):
        return open_source(target, pattern=pattern, sample_format=args.in_format, timeout_ms=100)
    try:
        return open_source(target, realtime=getattr(args, "realtime", False), sample_format=args.in_format)
    except MissingConfigError as exc:
        if not (args.preset or args.grid or args.bandwidth or args.mod or getattr(args, "delay_spread", None)):
            raise UsageError(f"{exc}") from None
        return open_source(target, config=resolve_config(args), realtime=getattr(args, "realtime", False),
                           sample_format=args.in_format)


def cmd_channel(args) -> int:
    """The channel emulator as a stage: file or ZeroMQ in, file or ZeroMQ out."""
    source = _open_input(args.input, args, args.in_pattern)
    config = source.config if source.config is not None else resolve_config(args)
    emulator, nu_max = make_channel(args, config)
    write, close, obj = _sample_sink(args.out, config, args, args.out_pattern)
    idle_since = time.monotonic()
    n_in = 0
    try:
        while True:
            samples = source.read()
            if samples is None:
                timeout = args.idle_timeout if n_in else args.start_timeout
                if source.eof or (timeout is not None and time.monotonic() - idle_since > timeout):
                    break
                continue
            idle_since = time.monotonic()
            n_in += samples.size
            out = emulator.process(samples)
            if out.size:
                write(out)
        write(emulator.flush())
    except KeyboardInterrupt:
        print("interrupted: flushing the output", file=sys.stderr)
    finally:
        truth = getattr(source, "truth_bits", None)
        if truth is not None and hasattr(obj, "write_truth_bits"):
            obj.write_truth_bits(truth)
        if hasattr(obj, "write_channel_truth"):         # perfect CSI per frame (stream from frame 0)
            spf = config.samples_per_frame
            obj.write_channel_truth([emulator.emulator.frame_paths(f * spf + config.preamble_len + config.cp_len).to_dict()
                                     for f in range(n_in // spf)])
        close()
        source.close()
    print(f"zakotfs channel: {args.profile}, nu_max {nu_max:.0f} Hz, Es/N0 {args.snr:g} dB -> {args.out}"
          f"{_encoding_note(obj)}", file=sys.stderr)
    return 0


def _result_sink(target: str | None, config: FrameConfig, llr_step: float | None = None):
    if target is None:
        return None, lambda: None
    if _is_endpoint(target):
        from streaming.zmq_io import ResultPublisher

        pub = ResultPublisher(target, "pub", payload="both")
        return pub, pub.close
    if target.endswith((".h5", ".hdf5")):
        import h5py

        f = h5py.File(target, "w")
        f.attrs["zakotfs_config"] = config.to_json()
        B = config.bits_per_frame
        bits = f.create_dataset("bits", (0, B), maxshape=(None, B), dtype=np.uint8, chunks=(1, B))
        seq = f.create_dataset("seq", (0,), maxshape=(None,), dtype=np.int64)
        llr = f.create_dataset("llr", (0, B), maxshape=(None, B), dtype=np.float32 if llr_step is None else np.int8,
                               chunks=(1, B))
        if llr_step is not None:
            llr.attrs["llr_step"] = llr_step        # int8 codes: LLR = code x llr_step

        def write(result, metas):
            if result.llr is None:
                raise UsageError(f"--out {target}: the results carry no LLRs (start remote workers "
                                 "with --payload both)")
            n = bits.shape[0]
            for dset, rows in ((bits, result.bits), (llr, result.llr), (seq, [m["seq"] for m in metas])):
                dset.resize(n + len(rows), axis=0)
                dset[n:] = rows
        return write, f.close
    raise UsageError(f"--out {target!r}: expected FILE.h5 or a tcp:// / ipc:// endpoint")


def cmd_rx(args) -> int:
    """The receiver on a file or a ZeroMQ stream: ingest + acquisition, compute and output on
    their own threads (``streaming.runner``), or compute in ``--workers`` processes."""
    from streaming.acquisition import FrameAcquirer
    from streaming.runner import PipelineRunner

    if args.recalibrate and args.recalibrate < 3:
        raise UsageError(f"--recalibrate K needs K >= 3 frames (the clock is read off their period), got {args.recalibrate}")
    if args.recalibrate and args.workers:
        raise UsageError("--recalibrate retunes the receiver in this process: not with --workers")
    source = _open_input(args.input, args, args.pattern)
    config = resolve_config(args, source.config)
    truth = None if args.truth else getattr(source, "truth_bits", None)
    if args.record:
        from streaming.files import IQWriter

        record = IQWriter(args.record, config)
        source = _Recorded(source, record)
    acquirer = FrameAcquirer(config)
    calibration, held = _calibrate(args, config, source, acquirer) if args.calibrate else (None, [])
    acquirer = _HeldFirst(acquirer, held)
    receiver = None if args.workers else make_receiver(args, config)
    backend = receiver.backend if receiver else get_backend(args.backend, quiet=True)
    sink, close_sink = _result_sink(args.out, config, LLR_INT8_STEP if args.llr == "int8" else None)
    session = RxSession(config, backend, args.estimator, truth_bits=truth, sink=sink, truth_path=args.truth,
                        cfo_offset_hz=args.cfo_offset, sample_clock_ppm=args.sample_clock_ppm)
    extra: dict = {}
    try:
        if args.workers:
            extra["scaleout"] = _run_workers(args, config, source, acquirer, session)
        else:
            process, allocate = _fast_process(receiver, args.batch)
            if args.recalibrate:
                acquirer = _Recalibration(acquirer, getattr(process, "retune", receiver.retune), receiver,
                                          args.recalibrate)
            runner = PipelineRunner(
                source, acquirer.push, process, session.consume, acquire_flush=acquirer.flush, acquire_gap=acquirer.skip,
                before_batch=acquirer.before_batch if isinstance(acquirer, _Recalibration) else None,
                allocate=allocate, queue_frames=args.queue, policy=args.policy, batch_frames=args.batch,
                max_frames=args.frames, stall_timeout_s=args.idle_timeout, stall_action="exit",
                start_timeout_s=args.start_timeout,
                progress=None if args.json else lambda p: _progress(session, args.frames))
            extra["runner"] = runner.run().to_dict()
            session.lost = max(session.lost, extra["runner"]["frames_lost"]) + extra["runner"]["frames_dropped"]
    finally:
        close_sink()
        source.close()
    if not args.json:
        print(file=sys.stderr)
    if isinstance(acquirer, _Recalibration):
        extra["recalibration"] = {"every": args.recalibrate, "retunes": acquirer.retunes}
    report = session.report({"acquisition": acquirer.stats, "source": source.stats(),
                             "link_mbps": config.throughput_wire_bps / 1e6, "calibration": calibration, **extra})
    _emit(report, args)
    return 0


def _acquire(source, acquirer, samples) -> list:
    """The frames ``acquirer`` completes with ``samples``, just read from ``source``, told
    first of the samples lost in transport before them (``source.missing()``, where the
    source knows: pass_tags offsets). ``PipelineRunner`` does the same with ``acquire_gap``."""
    missing = source.missing() if hasattr(source, "missing") else 0
    return (acquirer.skip(missing) if missing else []) + acquirer.push(samples)


CALIBRATION_DRIFT = 0.1
"""Samples of drift across a frame from which ``--calibrate`` undoes the sample clock."""


def _calibrate(args, config: FrameConfig, source, acquirer) -> tuple[dict, list]:
    """``rx --calibrate N``: the first N frames the acquirer finds in ``source``, held back;
    the sample clock from their period (``zakotfs.sco.clock_offset_ppm``) and the carrier
    offset from the preamble's median. Sets ``args.sample_clock_ppm`` where it drifts a frame
    by more than ``CALIBRATION_DRIFT`` samples and ``args.cfo_offset`` where the offset passes
    half the pilot's range (the pilot takes the rest), unless the command line gave them.
    Returns the calibration and the held (frame, meta) pairs, which the receiver, built
    after this with the calibration, decodes first: one pass over a file, and a live stream
    alike. A source that ends or stalls (--start-timeout, --idle-timeout) before N frames
    calibrates on those that came."""
    held, idle_since, started = [], time.monotonic(), False
    while len(held) < args.calibrate and not source.eof:
        samples = source.read()
        if samples is None:
            timeout = args.idle_timeout if started else args.start_timeout
            if timeout is not None and time.monotonic() - idle_since > timeout:
                break
            continue
        idle_since, started = time.monotonic(), True
        held += _acquire(source, acquirer, samples)
    metas = [meta for _, meta in held[:args.calibrate]]
    ppm, cfo, changes = _offsets(config, metas, 0.0, 0.0)
    applied = {}
    if "sample_clock_ppm" in changes and not args.sample_clock_ppm:
        args.sample_clock_ppm = applied["sample_clock_ppm"] = changes["sample_clock_ppm"]
    if "cfo_offset_hz" in changes and not args.cfo_offset:
        args.cfo_offset = applied["cfo_offset_hz"] = changes["cfo_offset_hz"]
    if not args.json:
        print(f"zakotfs rx: calibrated on {len(metas)} frames: sample clock "
              + ("unknown" if ppm is None else f"{ppm:+.2f} ppm") + ", preamble CFO "
              + ("unknown" if cfo is None else f"{cfo:.0f} Hz")
              + f"; set {', '.join(f'{k} {v:g}' for k, v in applied.items()) or 'nothing'}", file=sys.stderr)
    return {"frames": len(metas), "sample_clock_ppm": ppm, "preamble_cfo_hz": cfo, "applied": applied}, held


def _offsets(config: FrameConfig, metas: list[dict], sample_clock_ppm: float, cfo_offset_hz: float):
    """The acquirer's metas of consecutive frames -> (the sample clock in ppm from their
    period, the preamble's median carrier offset, {option: value} of those that differ from
    the ones applied enough to matter): the clock where it drifts a frame by more than
    ``CALIBRATION_DRIFT`` samples more, the carrier where it moved by more than half the
    pilot's range of +-nu_p / 2 (the pilot takes the rest; rounded to 100 Hz)."""
    ppm = clock_offset_ppm([m["seq"] for m in metas], [m["start"] for m in metas], config.samples_per_frame)
    cfo = float(np.median([m["cfo_hz"] for m in metas])) if metas else None
    changes = {}
    if ppm is not None and abs(ppm - sample_clock_ppm) * 1e-6 * config.MN > CALIBRATION_DRIFT:
        changes["sample_clock_ppm"] = round(ppm, 2)
    if cfo is not None and abs(cfo - cfo_offset_hz) > config.nu_p / 4:
        changes["cfo_offset_hz"] = round(cfo, -2)
    return ppm, cfo, changes


class _WatchedAcquirer:
    """An acquirer whose ``push``, ``skip`` and ``flush`` pass their frames through
    ``_after`` (``stats`` passes through as it is)."""

    def __init__(self, acquirer):
        self.acquirer = acquirer

    @property
    def stats(self) -> dict:
        return self.acquirer.stats

    def push(self, samples) -> list:
        return self._after(self.acquirer.push(samples))

    def skip(self, n: int) -> list:
        return self._after(self.acquirer.skip(n))

    def flush(self) -> list:
        return self._after(self.acquirer.flush())

    def _after(self, frames: list) -> list:
        raise NotImplementedError


class _Recalibration(_WatchedAcquirer):
    """``rx --recalibrate K``: the sample clock and the carrier offset read again off every K
    frames' timing and preambles (``_offsets``, the rules of ``--calibrate``); where they
    moved enough to matter, the receiver is retuned (``retune``: ``Receiver.retune``, or its
    real-time pipeline's) from the next frame on: a clock or a carrier that drifts during a
    long stream. The acquirer's ``push``/``flush`` pass through, watched (the ingest
    thread); ``before_batch`` applies the retunes due by a batch's frames (the compute
    thread, ``PipelineRunner``), so frames queued before a retune keep the old offsets.
    ``retunes``: [{seq (the first frame retuned), the options changed}] in order."""

    def __init__(self, acquirer, retune, receiver: Receiver, every: int):
        super().__init__(acquirer)
        self.retune, self.config, self.every = retune, receiver.config, every
        self.applied = {"sample_clock_ppm": receiver.sample_clock_ppm, "cfo_offset_hz": receiver.cfo_offset_hz}
        self.metas: list[dict] = []
        self.retunes: list[dict] = []
        self._due: queue.SimpleQueue = queue.SimpleQueue()       # retunes not yet applied, in order
        self._next = None

    def _after(self, frames: list) -> list:
        self.metas += [meta for _, meta in frames]
        while len(self.metas) >= self.every:
            window, self.metas = self.metas[:self.every], self.metas[self.every:]
            _, _, changes = _offsets(self.config, window, **self.applied)
            if changes:
                self.applied.update(changes)
                retune = {"seq": int(window[-1]["seq"]) + 1, **changes}
                self.retunes.append(retune)
                self._due.put(retune)
        return frames

    def before_batch(self, metas: list[dict]) -> None:
        last = max(int(m["seq"]) for m in metas)
        changes: dict = {}
        while True:
            if self._next is None:
                if self._due.empty():
                    break
                self._next = self._due.get()
            if self._next["seq"] > last:
                break
            changes.update({k: v for k, v in self._next.items() if k != "seq"})
            self._next = None
        if changes:
            self.retune(**changes)


class _HeldFirst(_WatchedAcquirer):
    """The acquirer, with the frames ``held`` by the calibration emitted first (by whichever
    of ``push``, ``skip`` and ``flush`` is called first: a file may have ended meanwhile)."""

    def __init__(self, acquirer, held: list):
        super().__init__(acquirer)
        self.held = list(held)

    def _after(self, frames: list) -> list:
        out, self.held = self.held + frames, []
        return out


class _Recorded:
    """A sample source that also writes what it reads to an HDF5 recording."""

    def __init__(self, source, writer):
        self.source, self.writer = source, writer
        self.config = source.config

    @property
    def eof(self) -> bool:
        return self.source.eof

    def read(self):
        samples = self.source.read()
        if samples is not None:
            self.writer.write(samples)
        return samples

    def missing(self) -> int:
        """The source's samples lost in transport before the last read's (not in the
        recording, which holds what came)."""
        return self.source.missing() if hasattr(self.source, "missing") else 0

    def stats(self) -> dict:
        return self.source.stats()

    def close(self) -> None:
        self.writer.close()
        self.source.close()


class _WorkerResult:
    """One collected frame as the session's batch interface (``bits`` [1, B], and the
    worker's per-frame metrics, e.g. ``cfo_hz`` [1])."""

    def __init__(self, frame_result):
        from streaming.zmq_io import FRAME_METRICS

        self.bits = frame_result.bits[None, :]
        self.llr = None if frame_result.llr is None else frame_result.llr[None, :]
        self.llr_step = frame_result.llr_step
        metrics = frame_result.header.get("metrics") or {}
        for name in FRAME_METRICS:
            if name in metrics:
                setattr(self, name, np.array([metrics[name]], float))


def _fast_process(receiver: Receiver, batch: int):
    """(process, allocate) for the pipeline runner: on the GPU the CUDA-graph path with
    batches in flight (``PipelinedReceiver``, transfers overlapped with compute; results
    copied out of its pinned buffers because the output thread reads them later) fed from
    pinned batch buffers; elsewhere ``receiver.process``."""
    if receiver.backend.name != "gpu" or receiver.estimator is None:
        return receiver.process, np.empty
    pipeline = PipelinedReceiver(receiver, batch, copy=True)
    return pipeline, pipeline.pinned


def make_worker_process(config: FrameConfig, **options):
    """Scale-out worker factory (``python -m streaming.scaleout worker --process
    zakotfs.cli:make_worker_process --options JSON``): the ``process`` of
    ``Receiver(config, **options)``, built without printing the backend it took.
    ``options`` are :func:`receiver_options`; none gives the default receiver."""
    return Receiver(config, quiet=True, **options).process


def _wait_for_workers(fanout, workers: list, n: int, timeout_s: float = 60.0) -> None:
    """Wait until ``n`` workers are connected to ``fanout``. UsageError when time runs out or
    one of the local worker processes (``subprocess.Popen``) exits first, as one with a bad
    receiver option does."""
    deadline = time.monotonic() + timeout_s
    while not fanout.wait_for_workers(n, timeout_s=min(1.0, max(0.0, deadline - time.monotonic()))):
        exited = [w.returncode for w in workers if w.poll() is not None]
        if exited:
            raise UsageError(f"--workers {n}: a worker process exited with status {exited[0]} "
                             f"before connecting (its error is above)")
        if time.monotonic() >= deadline:
            raise UsageError(f"--workers {n}: only {fanout.connected_workers} connected within {timeout_s:g} s")


def _run_workers(args, config: FrameConfig, source, acquirer, session: RxSession) -> dict:
    """Fan acquired frames out to ``--workers`` receiver processes over ZeroMQ and collect the
    results in frame order; the workers build their receivers with this command's receiver
    options. Endpoints: ipc in a private temporary folder by default, or ``--fanout``/``--collect``
    (tcp) for workers on other machines, started there with ``python -m streaming.scaleout worker
    --in FANOUT --out COLLECT --process zakotfs.cli:make_worker_process --config F --options JSON``
    (JSON: :func:`receiver_options`; add ``--payload both`` where ``--out`` keeps LLRs)."""
    import subprocess
    import tempfile
    from pathlib import Path

    from streaming.scaleout import FrameCollector, FrameFanout

    folder = Path(tempfile.mkdtemp(prefix="zakotfs-"))
    fan_ep = args.fanout or f"ipc://{folder}/frames"
    col_ep = args.collect or f"ipc://{folder}/results"
    (folder / "config.json").write_text(config.to_json())
    fanout, collector = FrameFanout(fan_ep), FrameCollector(col_ep, timeout_ms=0, max_wait_s=5.0)
    workers = [subprocess.Popen([sys.executable, "-m", "streaming.scaleout", "worker", "--in", fan_ep,
                                 "--out", col_ep, "--process", "zakotfs.cli:make_worker_process",
                                 "--options", json.dumps(receiver_options(args)),
                                 "--config", str(folder / "config.json"),
                                 "--payload", "both" if args.out else "bits",          # --out keeps LLRs
                                 "--batch", str(args.batch)], stdout=subprocess.DEVNULL)
               for _ in range(0 if (args.fanout or args.collect) else args.workers)]
    sent: dict[int, tuple[float, dict]] = {}        # seq: (time sent, the acquirer's meta)

    def collect(results) -> None:
        for res in results:
            t_sent, meta = sent.pop(res.seq, (time.perf_counter(), {}))
            acquired = {key: meta[key] for key in ("cfo_hz", "start") if key in meta}
            session.consume(_WorkerResult(res), [{"seq": res.seq, "latency_us": (time.perf_counter() - t_sent) * 1e6,
                                                  **acquired}])

    def send(frames) -> None:
        for frame, meta in frames:
            sent[meta["seq"]] = (time.perf_counter(), meta)
            collector.next_seq = meta["seq"] if collector.next_seq is None else collector.next_seq
            fanout.send(meta["seq"], frame, {"lost_before": meta.get("lost_before", 0)})
            session.lost += int(meta.get("lost_before", 0))

    idle_since, started = time.monotonic(), False
    first = True
    try:
        _wait_for_workers(fanout, workers, args.workers)
        while args.frames is None or fanout.sent < args.frames:
            samples = source.read()
            if samples is None:
                timeout = args.idle_timeout if started else args.start_timeout
                if source.eof or (timeout is not None and time.monotonic() - idle_since > timeout):
                    break
            else:
                idle_since, started = time.monotonic(), True
                frames = _acquire(source, acquirer, samples)
                if first and frames:
                    collector.next_seq, first = frames[0][1]["seq"], False
                send(frames)
            while (res := collector.recv()) is not None:
                collect([res])
        send(acquirer.flush())
        deadline = time.monotonic() + args.idle_timeout + 10
        while sent and time.monotonic() < deadline:
            res = collector.recv()
            if res is None:
                time.sleep(0.01)
            else:
                collect([res])
        collect(collector.flush())
    except KeyboardInterrupt:
        print("\ninterrupted: writing the report", file=sys.stderr)
    finally:
        for w in workers:
            w.terminate()
        for w in workers:
            w.wait(timeout=30)
        fanout.close()
        collector.close()
    return {"workers": args.workers, "frames_sent": fanout.sent, "frames_not_sent": fanout.dropped,
            "collector": collector.stats.to_dict()}


def cmd_bench(args) -> int:
    """The latency-deadline benchmark on one configuration (``bench/latency_sweep.py`` for sweeps).

    The headline is the real-time path (``RealtimeReceiver``: on the GPU one CUDA graph per
    batch, one batch at a time). On the GPU the same run also times, side by side on up to
    200 batches each: ``depth`` batches in flight (``PipelinedReceiver``, the sustained
    throughput with transfers overlapped with compute), the same chain launched op by op (no
    graph) and the staged receiver (each stage synchronised, which gives the stage
    breakdown). With a windowed operator, the exact operator is timed too, on both backends.
    """
    from .benchmark import (make_frames, real_time_verdict, run_metadata, time_receiver, time_sparse_baseline,
                            timed_path, work_per_frame, write_json)
    from .realtime import RealtimeReceiver

    config = resolve_config(args)
    receiver = make_receiver(args, config)
    data = make_frames(config, min(args.frames, 8), snr_db=args.snr, nu_max_hz=args.doppler_hz)
    done = [0]

    def progress(i, n, _latency_s):
        if not args.quiet and (i == n or i - done[0] >= max(1, n // 20)):
            done[0] = i
            print(f"\r  {i}/{n} batches", end="", file=sys.stderr, flush=True)
    realtime = timed_path(receiver, args.batch)
    try:
        result = time_receiver(realtime, data, args.frames, batch=args.batch, progress=progress)
    finally:
        if hasattr(realtime, "close"):
            realtime.close()
    if not args.quiet:
        print(file=sys.stderr)
    result.update(backend=receiver.backend.name, device=receiver.backend.device, config=config.to_dict(),
                  estimator=receiver.estimator_name, cg_iterations=receiver.cg_iterations,
                  operator_window=receiver.operator_window, operator_overlap=receiver.operator_overlap,
                  llr_format=receiver.llr_format,
                  realtime=realtime.describe(), frames_lost=0, work_per_frame=work_per_frame(receiver),
                  **real_time_verdict(result, config),
                  channel={"profile": "veh-a", "nu_max_hz": args.doppler_hz, "snr_db": args.snr})
    side = min(args.frames, 200 * args.batch)          # frames for each comparison below
    if args.depth >= 2 and receiver.backend.name == "gpu":
        pipelined = PipelinedReceiver(receiver, args.batch, args.depth)
        result["pipelined"] = {**time_receiver(pipelined, data, side, batch=args.batch),
                               "realtime": pipelined.describe()}
    compare = {}
    if receiver.backend.name == "gpu":
        compare["no_graph"] = time_receiver(RealtimeReceiver(receiver, args.batch, graph=False), data, side,
                                            batch=args.batch)
        compare["staged"] = time_receiver(receiver, data, side, batch=args.batch)
    if receiver.operator_window:
        exact = Receiver(config, **{**receiver_options(args), "operator_window": 0}, quiet=True)
        compare["exact_operator"] = time_receiver(RealtimeReceiver(exact, args.batch), data, side, batch=args.batch)
    if compare:
        result["compare"] = compare
    if args.baseline:
        result["baselines"] = {"scipy-sparse-cg": time_sparse_baseline(config, data, args.baseline)}
        if receiver.backend.name == "gpu":
            result["baselines"]["cusparse-cg"] = time_sparse_baseline(config, data, args.baseline, gpu=True)
        ours = result["latency_us"]["p50"]
        result["speedup_p50"] = {k: v["latency_us"]["p50"] / ours for k, v in result["baselines"].items()}
    result.update(run_metadata(sys.argv, receiver.backend))
    if args.json:
        write_json(args.json, result)
    lat = result["latency_us"]
    path = (f"CUDA graph {realtime.graph is not None}" if receiver.backend.name == "gpu"
            else f"{realtime.describe().get('cpu_workers') or 1} CPU worker(s)")
    print(f"zakotfs bench: {config.summary()}\n  backend {result['backend']} ({result['device']}), "
          f"batch {args.batch}, {path}: latency p50 {lat['p50']:.0f} us, "
          f"p99 {lat['p99']:.0f}, p99.9 {lat['p999']:.0f}, max {lat['max']:.0f}; deadline "
          f"{result['deadline_us']:.0f} us, missed {result['deadline_misses']}/{result['frames'] // args.batch}; "
          f"{result['throughput_mbps']:.2f} Mbps; BER {result['ber']:.2e}")
    print(f"  real time: {'yes' if result['real_time'] else 'no'} (throughput {result['throughput_over_link']:.2f}x "
          f"the link's {result['link_mbps']:.2f} Mbps, p99.9 {result['p999_over_deadline']:.2f}x the batch deadline)")
    if getattr(realtime, "capture_error", None):
        print(f"  CUDA graph capture failed, ran op by op: {realtime.capture_error}")
    if "pipelined" in result:
        piped = result["pipelined"]
        print(f"  pipelined, {args.depth} batches in flight: {piped['throughput_mbps']:.2f} Mbps "
              f"({piped['throughput_mbps'] / result['throughput_mbps']:.2f}x one at a time), latency p50 "
              f"{piped['latency_us']['p50']:.0f} us, p99.9 {piped['latency_us']['p999']:.0f} us")
    for name, other in result.get("compare", {}).items():
        print(f"  {name}: p50 {other['latency_us']['p50']:.0f} us, p99.9 {other['latency_us']['p999']:.0f} us "
              f"({other['latency_us']['p50'] / lat['p50']:.2f}x ours)")
    for name, b in result.get("baselines", {}).items():
        print(f"  baseline {name}: p50 {b['latency_us']['p50']:.0f} us "
              f"({result['speedup_p50'][name]:.1f}x ours), CG iterations {b['cg_iterations']['mean']:.1f}")
    return 0


# ---------------------------------------------------------------------------------------
def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="zakotfs", description="Real-time Zak-OTFS receiver (GPU or CPU).")
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command", required=True)

    p = sub.add_parser("demo", help="tx -> Vehicular-A channel -> rx in one process, on the embedded default")
    _frame_options(p)
    _backend_option(p)
    _receiver_options(p)
    _channel_options(p)
    p.add_argument("--frames", type=int, default=20)
    p.add_argument("--json", action="store_true", help="print the JSON report instead of the summary")
    p.add_argument("--report", help="also write the JSON report to this file")
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("tx", help="generate frames to a file or a ZeroMQ endpoint")
    _frame_options(p)
    p.add_argument("--out", required=True, help="FILE.h5, FILE.sigmf-meta or tcp://HOST:PORT")
    p.add_argument("--frames", type=int, default=10)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--truth", help="with a non-HDF5 --out: write /truth/bits to this FILE.h5")
    p.add_argument("--pattern", default="pub", choices=["pub", "push"])
    p.add_argument("--pass-tags", action="store_true", help="gr-zeromq pass_tags headers (stream offset)")
    p.add_argument("--message-size", type=int, default=8191)
    p.add_argument("--random-sizes", action="store_true", help="message sizes uniform in [1, 2 x message-size)")
    p.add_argument("--realtime", action="store_true", help="pace at the sample rate")
    p.add_argument("--rate-limit", type=float, default=0.0,
                   help="ZeroMQ: sleep this fraction of each message's air time (0: as fast as possible)")
    p.add_argument("--connect-wait", type=float, default=0.5, help="seconds to wait for ZeroMQ peers")
    p.add_argument("--lead-samples", type=int, default=0, help="low-level noise samples before the first frame")
    _sample_format_options(p, read=False, write=True)
    p.set_defaults(func=cmd_tx)

    p = sub.add_parser("channel", help="the channel emulator as a stage")
    _frame_options(p, default_preset=None)
    _channel_options(p)
    p.add_argument("--in", dest="input", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--in-pattern", default="sub", choices=["sub", "pull"], help="ZeroMQ input pattern")
    p.add_argument("--out-pattern", default="pub", choices=["pub", "push"], help="ZeroMQ output pattern")
    p.add_argument("--pass-tags", action="store_true", help="gr-zeromq pass_tags headers on the output")
    p.add_argument("--idle-timeout", type=float, default=2.0,
                   help="seconds without input, once it has started, before flushing the held samples and "
                        "stopping (default 2, under rx's 5, so that a receiver downstream still gets the last "
                        "frames)")
    _start_timeout_option(p)
    _sample_format_options(p, read=True, write=True)
    p.set_defaults(func=cmd_channel)

    p = sub.add_parser("rx", help="the receiver on a file or a ZeroMQ stream")
    _frame_options(p, default_preset=None)
    _backend_option(p)
    _receiver_options(p)
    p.add_argument("--in", dest="input", required=True)
    p.add_argument("--truth", help="FILE.h5 with /truth/bits, for BER (read once it exists)")
    p.add_argument("--report", help="JSON report file")
    p.add_argument("--frames", type=int, help="stop after N frames")
    p.add_argument("--out", help="decoded bits and LLRs: FILE.h5 or a ZeroMQ endpoint")
    p.add_argument("--pattern", default="sub", choices=["sub", "pull"], help="ZeroMQ input pattern")
    p.add_argument("--record", help="also record the incoming samples to FILE.h5 (replayable with --in)")
    p.add_argument("--realtime", action="store_true", help="files: replay paced at the sample rate")
    p.add_argument("--calibrate", type=int, default=0, metavar="N",
                   help="hold the first N frames (of a file or a live stream), read the sample clock and the "
                        "carrier offset off them, set --sample-clock-ppm / --cfo-offset where they matter "
                        "(those given stay), then decode them and the rest")
    p.add_argument("--recalibrate", type=int, default=0, metavar="K",
                   help="read the sample clock and the carrier offset again off every K frames and retune the "
                        "receiver where they moved enough to matter (a clock or a carrier that drifts)")
    p.add_argument("--idle-timeout", type=float, default=5.0,
                   help="seconds without samples, once they have started, before stopping")
    _start_timeout_option(p)
    p.add_argument("--queue", type=int, default=64, help="frames queued between ingest and compute")
    p.add_argument("--policy", default="drop-oldest", choices=["drop-oldest", "drop-newest", "block"],
                   help="when compute falls behind (drops are counted in the report)")
    p.add_argument("--workers", type=int, default=0, help="receiver processes fed over ZeroMQ (scale-out)")
    p.add_argument("--fanout", help="with --workers: frame endpoint for workers on other machines")
    p.add_argument("--collect", help="with --workers: result endpoint for workers on other machines")
    p.add_argument("--json", action="store_true")
    _sample_format_options(p, read=True, write=False)
    p.set_defaults(func=cmd_rx)

    p = sub.add_parser("bench", help="latency-deadline benchmark")
    _frame_options(p, default_preset="demo")
    _backend_option(p)
    _receiver_options(p)
    p.add_argument("--frames", type=int, default=100)
    p.add_argument("--snr", type=float, default=20.0)
    p.add_argument("--doppler-hz", type=float, default=815.0)
    p.add_argument("--baseline", type=int, default=0, metavar="FRAMES",
                   help="also time the sparse-matrix CG baselines on this many frames")
    p.add_argument("--depth", type=int, default=DEPTH,
                   help="on the GPU, batches in flight for the pipelined throughput run (transfers "
                        "overlapped with compute); below 2 skips it")
    p.add_argument("--json", help="write the JSON result here")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=cmd_bench)
    return ap


def main(argv=None) -> int:
    args = build_parser().parse_args(argv)
    logging.basicConfig(level=logging.INFO if args.verbose else logging.WARNING,
                        format="zakotfs: %(levelname)s %(name)s: %(message)s")
    try:
        for name, value in vars(args).items():   # before any work: NaN, and inf but for a timeout
            if isinstance(value, float) and not (np.isfinite(value) or (name.endswith("timeout") and value > 0)):
                raise UsageError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
        return args.func(args)
    except (UsageError, ValueError, TypeError, BackendError, OSError) as exc:
        if args.verbose:
            raise
        print(f"zakotfs {args.command}: error: {exc}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    raise SystemExit(main())
