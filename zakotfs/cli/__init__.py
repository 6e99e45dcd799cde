"""``zakotfs``: demo, tx, channel, rx, bench, one module a command (each ``add_parser`` and
``run``), the shared options in ``options``, what they print in ``summary``.

Every command prints one clear line and exits with status 2 on a bad argument or
configuration; Ctrl-C stops cleanly and still writes the report and flushes files.
"""
from __future__ import annotations

import argparse
import logging
import sys

import numpy as np

from dsp_kernels import BackendError

from . import bench, channel, demo, rx, tx
from .options import UsageError

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    ap = argparse.ArgumentParser(prog="zakotfs", description="Real-time Zak-OTFS receiver (GPU or CPU).")
    ap.add_argument("-v", "--verbose", action="store_true")
    sub = ap.add_subparsers(dest="command", required=True)
    for command in (demo, tx, channel, rx, bench):
        command.add_parser(sub)
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

