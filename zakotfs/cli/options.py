"""The command line's shared options and what they build: the frame configuration, the
receiver, the channel and the sample source."""
from __future__ import annotations

import argparse
import json
import logging
import math
import os

import numpy as np

from channel_models.channel_stage import ChannelStage
from channel_models.paths import draw_paths
from channel_models.profiles import doppler_from_speed, load_profile
from streaming.files import MissingConfigError
from streaming.io import open_source
from streaming.sample_format import SAMPLE_FORMATS
from streaming.zmq_io import is_endpoint

from ..config import PRESETS, FrameConfig, design, parse_grid, preset
from ..modulation import LLR_FORMATS
from ..equalizer import PRIORS
from ..receiver import ESTIMATORS, Receiver, modelled_delays

log = logging.getLogger("zakotfs")


class UsageError(Exception):
    """A bad argument: printed as one line, exit status 2."""


class HelpFormatter(argparse.HelpFormatter):
    """Help that ends each option's line with its default, where it has one and the help
    text does not already say it."""

    def _get_help_string(self, action) -> str:
        text = action.help or ""
        if action.default in (None, False, argparse.SUPPRESS) or "default" in text or not action.option_strings:
            return text
        return f"{text} (default: %(default)s)" if text else "default: %(default)s"


class Parser(argparse.ArgumentParser):
    """An argument parser that reports a bad argument as one line (``zakotfs rx: error:
    argument --mod: invalid choice: '1024qam' (choose from ...)``) and exits with status 2,
    with no usage dump; its subcommands' parsers are of this class too."""

    def __init__(self, *args, **kwargs):
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str):
        self.exit(2, f"{self.prog}: error: {message}\n")


def common_options(p: argparse.ArgumentParser, *, top: bool) -> None:
    """-v/--verbose and --log-level, accepted before the subcommand (``top``) and after it
    (where they default to what was given before)."""
    default = (lambda value: value) if top else (lambda value: argparse.SUPPRESS)
    p.add_argument("-v", "--verbose", action="store_true", default=default(False),
                   help="log at INFO and show the traceback of an error")
    p.add_argument("--log-level", choices=["debug", "info", "warning", "error"], default=default(None),
                   help="logging level (default: warning, info with -v)")


def positive_int(text: str) -> int:
    """An argparse type: an integer >= 1."""
    return _int_at_least(text, 1)


def count(text: str) -> int:
    """An argparse type: an integer >= 0."""
    return _int_at_least(text, 0)


def _int_at_least(text: str, low: int) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
    if value < low:
        raise argparse.ArgumentTypeError(f"must be >= {low}, got {value}")
    return value


def resources(text: str) -> dict:
    """An argparse type: a JSON object of Ray resource names and positive amounts."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc})") from None
    if not (isinstance(value, dict) and value and all(
            isinstance(k, str) and isinstance(v, (int, float)) and not isinstance(v, bool) and v > 0
            for k, v in value.items())):
        raise argparse.ArgumentTypeError(f"expected a JSON object of names and positive amounts, got {text!r}")
    return value


def grid(text: str) -> str:
    """An argparse type: ``MxN`` with positive M and N (kept as text)."""
    try:
        parse_grid(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None
    return text


def output_path(text: str) -> str:
    """An argparse type: a file that can be written (its folder exists and is writable, and
    the file, if it exists, is a writable file), or a ZeroMQ endpoint; checked when the
    arguments are parsed, before any work."""
    if is_endpoint(text):
        return text
    path = os.path.abspath(text)
    folder = os.path.dirname(path)
    if not os.path.isdir(folder):
        raise argparse.ArgumentTypeError(f"cannot write {text}: no folder {folder}")
    if os.path.isdir(path):
        raise argparse.ArgumentTypeError(f"cannot write {text}: it is a folder")
    if not os.access(path if os.path.exists(path) else folder, os.W_OK):
        raise argparse.ArgumentTypeError(f"cannot write {text}: permission denied")
    return text


def frame_options(p: argparse.ArgumentParser, *, default_preset: str | None = "demo") -> None:
    g = p.add_argument_group("frame configuration")
    g.add_argument("--preset", default=default_preset, choices=sorted(PRESETS),
                   help=f"named configuration (default {default_preset})")
    g.add_argument("--grid", type=grid, help="MxN, e.g. 16384x32 (guard, CP and preamble sized for Veh-A)")
    g.add_argument("--bandwidth", type=float, help="Hz (default with --grid: M x 15 kHz)")
    g.add_argument("--mod", choices=["qpsk", "16qam", "64qam", "256qam"])
    g.add_argument("--delay-spread", type=float, metavar="US",
                   help="size the guard, CP and preamble for this delay spread in microseconds "
                        "(default: Veh-A's 2.51)")


def sample_format_options(p: argparse.ArgumentParser, *, read: bool, write: bool) -> None:
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


def backend_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--backend", default="auto", choices=["auto", "cpu", "gpu"],
                   help="auto = GPU when one works, else CPU (and say which)")


def receiver_option_group(p: argparse.ArgumentParser) -> None:
    g = p.add_argument_group("receiver")
    g.add_argument("--estimator", default="accurate", choices=[e for e in ESTIMATORS if e != "perfect"])
    g.add_argument("--prior", choices=PRIORS,
                   help="the equaliser's prior on guard and pilot samples: data = zero variance, the exact LMMSE "
                        "(default where the guard is a tenth of the delay bins or more); unit = unit variance, "
                        "which converges faster")
    g.add_argument("--cg-iterations", type=int, help="fixed CG iterations (default by modulation: 8/12/24/32)")
    g.add_argument("--max-doppler-hz", type=float, default=1000.0)
    g.add_argument("--operator-window", type=int,
                   help="apply the channel per window of this many samples (0: the exact frame-long "
                        "operator; default: the shortest window under -40 dB predicted error, if any)")
    g.add_argument("--batch", type=positive_int,
                   help="frames per receiver call (default: 1 on the GPU; on the CPU 16 a core, each call split "
                        "between a worker process a core)")
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


def start_timeout_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--start-timeout", type=float,
                   help="seconds to wait for the first sample before stopping (default: wait for the sender)")


def channel_options(p: argparse.ArgumentParser) -> None:
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
    (``--estimator``, ``--prior``, ``--cg-iterations``, ``--max-doppler-hz``, ``--operator-window``, ``--llr``, ``--cfo``,
    ``--cfo-offset``, ``--dc``, ``--sample-clock-ppm``):
    picklable, so that the scale-out actors get them too (``streaming.actor_pool``)."""
    return {"backend": args.backend, "estimator": args.estimator, "prior": args.prior,
            "cg_iterations": args.cg_iterations,
            "max_doppler_hz": args.max_doppler_hz, "operator_window": args.operator_window,
            "llr_format": args.llr, "cfo_correction": args.cfo == "pilot", "cfo_offset_hz": args.cfo_offset,
            "dc_removal": args.dc == "detect", "sample_clock_ppm": args.sample_clock_ppm}


def make_receiver(config: FrameConfig, options: dict, batch: int | None = 1) -> Receiver:
    """The receiver for ``config`` with the keyword ``options`` (:func:`receiver_options`),
    warmed up on ``batch`` frames (None: :func:`default_batch`'s) so that one-time costs stay
    out of the first frame's latency."""
    receiver = Receiver(config, **options)
    receiver.warm_up(batch or default_batch(receiver.backend.name))
    return receiver


def default_batch(backend: str) -> int:
    """Frames per receiver call where ``--batch`` is not given: 1 on the GPU (the lowest
    latency; the CUDA graph is made for it); on the CPU 16 a core, so that each call keeps
    every worker process busy (``zakotfs.cpu_workers``) and pays the hand-over to them once
    for 16 frames."""
    return 1 if backend == "gpu" else 16 * (os.cpu_count() or 1)


QUEUE_SECONDS = 0.5
"""Seconds of frames rx's queue holds by default, so that a stall of the compute that long
(another process, the VM's host) costs no frame on a live link."""

QUEUE_BYTES = 256 * 2 ** 20
"""The most memory the default queue takes (complex64 samples)."""


def default_queue(config: FrameConfig, batch: int) -> int:
    """Frames rx queues between ingest and compute where ``--queue`` is not given: 4
    batches, at least 64, and at least ``QUEUE_SECONDS`` of frames where those fit in
    ``QUEUE_BYTES``."""
    frame_bytes = 8 * (config.cp_len + config.MN)
    timed = min(int(QUEUE_SECONDS / config.wire_time), QUEUE_BYTES // frame_bytes)
    return max(64, 4 * batch, timed)


def _check_delay_spread(profile, config: FrameConfig) -> None:
    """Warn where the profile's last path lies beyond what the frame's guard holds (the
    accurate estimator's delay fit from the frame's placement, ``receiver.modelled_delays``):
    the receiver would not model it."""
    last_s = max(profile.delays_s)
    held = modelled_delays(config)[1]
    if last_s * config.bandwidth > held:
        log.warning("the %s profile's last path is at %.1f samples (%.2f us), beyond the %g that this frame's "
                    "guard holds: the receiver will not model it; run with --delay-spread %.3g",
                    profile.name, last_s * config.bandwidth, last_s * 1e6, held, last_s * 1e6)


def make_channel(args, config: FrameConfig, xp=np) -> tuple[ChannelStage, float]:
    """The channel stage the channel options describe, and its nu_max in Hz."""
    nu_max = args.doppler_hz if args.doppler_hz is not None else doppler_from_speed(args.speed_kmh, args.fc)
    if nu_max < 0:
        raise UsageError(f"--doppler-hz must be >= 0, got {nu_max}")
    profile = load_profile(args.profile)
    _check_delay_spread(profile, config)
    paths = draw_paths(profile, nu_max, np.random.default_rng(args.seed),
                       doppler_model=args.doppler_model, gain_model=args.gain_model)
    stage = ChannelStage.from_paths(paths, config.bandwidth, snr_db=args.snr, seed=args.seed, cfo_hz=args.cfo_hz,
                                    sco_ppm=args.sco_ppm, timing_offset=args.timing_offset,
                                    dc_offset=args.dc_offset, xp=xp)
    return stage, nu_max


def open_input(target: str, args, pattern: str = "sub"):
    """The sample source ``--in`` names, in ``--in-format``. A file without a frame
    configuration (raw IQ, SigMF from another tool) takes the one the frame options give."""
    if is_endpoint(target):
        return open_source(target, pattern=pattern, sample_format=args.in_format, timeout_ms=100)
    try:
        return open_source(target, realtime=getattr(args, "realtime", False), sample_format=args.in_format)
    except MissingConfigError as exc:
        if not (args.preset or args.grid or args.bandwidth or args.mod or getattr(args, "delay_spread", None)):
            raise UsageError(f"{exc}") from None
        return open_source(target, config=resolve_config(args), realtime=getattr(args, "realtime", False),
                           sample_format=args.in_format)
