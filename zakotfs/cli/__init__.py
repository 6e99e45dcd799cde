"""``zakotfs``: demo, tx, channel, rx, bench, one module a command (each ``add_parser`` and
``run``), the shared options in ``options``, what they print in ``summary``, the exit
statuses in ``exit_status``.

Every bad argument or configuration is one line on stderr and exit status 2, found before
any work (output paths included). Ctrl-C, SIGTERM and SIGHUP stop a command the same way:
``rx`` drains what it queued, closes its files and writes its report and summary; a second
signal abandons the queued frames but still closes the files. ``-v``/``--verbose`` and
``--log-level`` go before or after the subcommand.
"""
from __future__ import annotations

import argparse
import logging
import shlex
import signal
import sys
import threading

import numpy as np

from dsp_kernels import BackendError

from .. import __version__
from . import bench, channel, demo, rx, tx
from .exit_status import ExitStatus
from .options import Parser, UsageError, common_options

__all__ = ["main", "entry", "build_parser", "ExitStatus"]

_STOP_SIGNALS = tuple(getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name))


def build_parser() -> argparse.ArgumentParser:
    ap = Parser(prog="zakotfs", description="Real-time Zak-OTFS receiver (GPU or CPU).",
                epilog="exit status: 0 done, 1 runtime error, 2 bad argument, 3 rx received nothing, "
                       "4 rx decoded nothing, 5 rx input not in --in-format, 6 rx input file damaged (its intact "
                       "part decoded), 130 interrupted outside the stream")
    ap.add_argument("--version", action="version", version=f"zakotfs {__version__}")
    common_options(ap, top=True)
    sub = ap.add_subparsers(dest="command", required=True)
    for command in (demo, tx, channel, rx, bench):
        command.add_parser(sub)
    for parser in sub.choices.values():
        common_options(parser, top=False)
    return ap


def main(argv=None, *, process: bool = False) -> int:
    """Run one command (``argv``: its arguments, default ``sys.argv[1:]``); returns its exit
    status (:class:`ExitStatus`). ``args.command_line``: the command as typed, ``zakotfs ...``
    shell-quoted (what the outputs store as ``command``). The stop signals' handlers are
    restored on return; with ``process`` (the ``zakotfs`` command itself, :func:`entry`),
    once a stop signal came, another one after the work is done is ignored, not fatal."""
    argv = sys.argv[1:] if argv is None else list(argv)
    try:
        args = build_parser().parse_args(argv)
    except SystemExit as exc:              # --help, --version, or a bad argument (one line printed)
        return int(exc.code or 0)
    args.command_line = shlex.join(["zakotfs", *argv])
    level = args.log_level or ("info" if args.verbose else "warning")
    logging.basicConfig(level=level.upper(), format="zakotfs: %(levelname)s %(name)s: %(message)s")
    received = []

    def interrupt(signum, frame):
        received.append(signum)
        raise KeyboardInterrupt(signal.Signals(signum).name)

    in_main_thread = threading.current_thread() is threading.main_thread()
    previous = {signum: signal.signal(signum, interrupt) for signum in _STOP_SIGNALS} if in_main_thread else {}
    try:
        for name, value in vars(args).items():   # before any work: NaN, and inf but for a timeout
            if isinstance(value, float) and not (np.isfinite(value) or (name.endswith("timeout") and value > 0)):
                raise UsageError(f"--{name.replace('_', '-')} must be a finite number, got {value}")
        return int(args.func(args))
    except (UsageError, ValueError, TypeError, BackendError, OSError) as exc:
        return _fail(args, exc, ExitStatus.USAGE)
    except KeyboardInterrupt as exc:
        print(f"zakotfs {args.command}: interrupted ({exc or 'SIGINT'})", file=sys.stderr)
        return ExitStatus.INTERRUPTED
    except Exception as exc:                # noqa: BLE001 - a runtime error: one line, exit status 1
        return _fail(args, exc, ExitStatus.ERROR)
    finally:
        for signum, handler in previous.items():
            signal.signal(signum, signal.SIG_IGN if received and process else handler)


def entry() -> None:
    """The ``zakotfs`` command: :func:`main` as the whole process, its status the exit status."""
    sys.exit(main(process=True))


def _fail(args, exc: BaseException, status: ExitStatus) -> int:
    """One line for ``exc`` on stderr (the traceback too with ``-v``); returns ``status``."""
    if args.verbose:
        logging.getLogger("zakotfs").exception("%s failed", args.command)
    cause = exc.__cause__ if status == ExitStatus.ERROR and exc.__cause__ is not None else exc
    print(f"zakotfs {args.command}: error: {cause}", file=sys.stderr)
    return status
