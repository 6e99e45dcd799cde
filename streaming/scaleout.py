"""Scale-out: receiver workers fed acquired frames over ZeroMQ, results restored to frame order.

::

    acquire ─► FrameFanout (PUSH, binds) ─┬─► worker 1 (PULL ... PUSH) ─┐
                                          ├─► worker 2                  ├─► FrameCollector
                                          └─► worker k                  ┘   (PULL, binds)

* Frame message: ``[JSON header {"seq", "n", "meta"}, complex64 [n] little-endian bytes]``.
* Result message: :func:`streaming.zmq_io.encode_result` (JSON header, packed bits and/or
  float32 LLRs); a worker adds ``metrics.worker`` and ``timing.worker_us``.
* PUSH hands frames round-robin to the workers whose pipes have room; the small high-water
  marks on both ends (``hwm``, default 2 frames) make a busy worker's pipe fill up so that
  frames go to the idle ones instead of queueing behind it.
* The collector keeps a reorder buffer: results come out in ``seq`` order; a missing ``seq``
  is waited for at most ``max_wait_s`` after a later result arrived (or until ``window``
  results are buffered), then counted in ``stats.missing`` and skipped. Results arriving
  after their turn are counted as ``late`` and dropped.
* Workers run as separate processes::

      python -m streaming.scaleout worker --in tcp://127.0.0.1:6000 --out tcp://127.0.0.1:6001 \\
          --process zakotfs.some_module:make_process --config frame.json [--options JSON]

  where ``make_process(config, **options) -> process`` (``options``: the keywords of the
  ``--options`` JSON object, none by default) and ``process(frames complex64 [F, L])``
  returns an object with ``.bits`` uint8 [F, B] and ``.llr`` float32 [F, B]. SIGTERM or
  Ctrl-C stops a worker after its current batch; it prints its statistics as JSON on exit.
"""
from __future__ import annotations

import argparse
import importlib
import json
import logging
import math
import os
import signal
import sys
import threading
import time
from dataclasses import asdict, dataclass
from typing import Callable

import numpy as np
import zmq
from zmq.utils.monitor import recv_monitor_message

from .security import CurveConfig
from .zmq_io import FrameResult, ResultPublisher, ZmqSocketBase, decode_result, frame_metrics

__all__ = ["encode_frame", "decode_frame", "FrameFanout", "FrameCollector", "CollectorStats",
           "WorkerStats", "run_worker", "main"]

logger = logging.getLogger(__name__)


def encode_frame(seq: int, frame: np.ndarray, meta: dict | None = None) -> list:
    """complex [L] frame -> multipart [JSON header, complex64 little-endian payload]."""
    data = np.ascontiguousarray(frame, dtype="<c8")
    if data.ndim != 1:
        raise ValueError(f"frame must be 1-D, got shape {data.shape}")
    header = {"seq": int(seq), "n": int(data.size), "meta": meta or {}}
    return [json.dumps(header, default=_json_default).encode("utf-8"), data]


def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


def decode_frame(parts: list) -> tuple[int, np.ndarray, dict]:
    """Inverse of :func:`encode_frame` -> (seq, complex64 [n] view, meta); ValueError if malformed."""
    if len(parts) != 2:
        raise ValueError(f"frame message has {len(parts)} parts, expected 2 (header, samples)")
    try:
        header = json.loads(bytes(parts[0]))
        seq, n, meta = int(header["seq"]), int(header["n"]), dict(header.get("meta") or {})
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"frame header is not the expected JSON ({exc})") from None
    payload = memoryview(parts[1])
    if len(payload) != 8 * n:
        raise ValueError(f"frame {seq}: {len(payload)} payload bytes for n={n} complex64 samples")
    return seq, np.frombuffer(payload, dtype="<c8"), meta


class FrameFanout(ZmqSocketBase):
    """Hand acquired frames to the workers (PUSH; binds by default).

    ``send`` waits up to ``send_timeout_ms`` for a worker with room, else counts the frame
    in ``dropped`` and returns False. ``connected_workers`` / :meth:`wait_for_workers` tell
    how many workers are connected (from a socket monitor).
    """

    def __init__(self, endpoint: str, *, bind: bool = True, hwm: int = 2,
                 send_timeout_ms: int = 1000, linger_ms: int = 1000,
                 curve: CurveConfig | None = None, allow_remote: bool = False,
                 context: zmq.Context | None = None):
        if not isinstance(hwm, int) or hwm < 1:
            raise ValueError(f"hwm must be an int >= 1 (frames a worker pipe holds), got {hwm!r}")
        if not isinstance(send_timeout_ms, int) or send_timeout_ms < 0:
            raise ValueError(f"send_timeout_ms must be an int >= 0, got {send_timeout_ms!r}")
        self.sent = 0
        self.dropped = 0
        self._peers = 0
        self._monitor = None
        super().__init__(zmq.PUSH, endpoint, bind=bind, allow_remote=allow_remote, curve=curve,
                         linger_ms=linger_ms, context=context,
                         options={zmq.SNDHWM: hwm, zmq.SNDTIMEO: send_timeout_ms})
        self._monitor = self._socket.get_monitor_socket(
            zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED)

    def send(self, seq: int, frame: np.ndarray, meta: dict | None = None) -> bool:
        """Send complex [L] ``frame`` numbered ``seq``; False if no worker took it in time."""
        try:
            self._socket.send_multipart(encode_frame(seq, frame, meta), copy=True)
        except zmq.Again:
            self.dropped += 1
            return False
        self.sent += 1
        return True

    @property
    def connected_workers(self) -> int:
        while self._monitor.poll(0):
            event = recv_monitor_message(self._monitor)["event"]
            self._peers += 1 if event == zmq.EVENT_HANDSHAKE_SUCCEEDED else -1
        return self._peers

    def wait_for_workers(self, n: int, timeout_s: float) -> bool:
        """Wait until at least ``n`` workers are connected; False on timeout."""
        deadline = time.monotonic() + timeout_s
        while self.connected_workers < n:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                return False
            self._monitor.poll(math.ceil(min(remaining, 0.1) * 1e3))
        return True

    def close(self) -> None:
        if self._monitor is not None:
            self._socket.disable_monitor()
            self._monitor.close(0)
            self._monitor = None
        super().close()


@dataclass
class CollectorStats:
    received: int = 0
    emitted: int = 0
    missing: int = 0
    late: int = 0
    duplicates: int = 0
    bad_messages: int = 0
    reordered: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class FrameCollector(ZmqSocketBase):
    """Gather worker results (PULL; binds by default) and return them in ``seq`` order.

    Parameters
    ----------
    endpoint : str
    timeout_ms : int
        Longest wait in one :meth:`recv`.
    max_wait_s : float
        How long a missing ``seq`` is waited for once a later one has arrived.
    window : int
        Most results held back; a full buffer gives up on the missing ``seq`` at once.
    start_seq : int or None
        First expected ``seq``; None takes the lowest seen within ``max_wait_s`` of the
        first arrival.
    """

    def __init__(self, endpoint: str, *, bind: bool = True, timeout_ms: int = 100,
                 max_wait_s: float = 0.5, window: int = 256, start_seq: int | None = 0,
                 hwm: int | None = None, curve: CurveConfig | None = None,
                 allow_remote: bool = False, context: zmq.Context | None = None):
        if not isinstance(timeout_ms, int) or timeout_ms < 0:
            raise ValueError(f"timeout_ms must be an int >= 0, got {timeout_ms!r}")
        if not max_wait_s >= 0:
            raise ValueError(f"max_wait_s must be >= 0, got {max_wait_s!r}")
        if not isinstance(window, int) or window < 1:
            raise ValueError(f"window must be an int >= 1, got {window!r}")
        self.timeout_ms, self.max_wait_s, self.window = timeout_ms, float(max_wait_s), window
        self.next_seq = start_seq
        self.stats = CollectorStats()
        self._buffer: dict[int, tuple[float, FrameResult]] = {}
        self._first_arrival: float | None = None
        options = {} if hwm is None else {zmq.RCVHWM: hwm}
        super().__init__(zmq.PULL, endpoint, bind=bind, allow_remote=allow_remote, curve=curve,
                         linger_ms=0, context=context, options=options)

    def recv(self) -> FrameResult | None:
        """The next result in ``seq`` order, or None when none is due within ``timeout_ms``."""
        deadline = time.monotonic() + self.timeout_ms / 1e3
        while True:
            ready = self._pop_ready(time.monotonic())
            if ready is not None:
                return ready
            give_up = self._give_up_at()
            wake = deadline if give_up is None else min(deadline, give_up)
            wait_ms = max(0, math.ceil((wake - time.monotonic()) * 1e3))
            if self._socket.poll(wait_ms, zmq.POLLIN):
                self._take(self._socket.recv_multipart(copy=False))
            elif time.monotonic() >= deadline:
                return None

    def flush(self) -> list[FrameResult]:
        """All held results in ``seq`` order (end of stream); gaps count as missing."""
        out = []
        for seq in sorted(self._buffer):
            if self.next_seq is not None and seq > self.next_seq:
                self.stats.missing += seq - self.next_seq
            out.append(self._buffer.pop(seq)[1])
            self.next_seq = seq + 1
        self.stats.emitted += len(out)
        return out

    def _take(self, parts: list) -> None:
        try:
            result = decode_result([p.buffer for p in parts])
        except ValueError as exc:
            self.stats.bad_messages += 1
            logger.warning("%s: skipped a malformed result message: %s", self.endpoint, exc)
            return
        self.stats.received += 1
        now = time.monotonic()
        if self._first_arrival is None:
            self._first_arrival = now
        if self.next_seq is not None and result.seq < self.next_seq:
            self.stats.late += 1
            logger.warning("%s: result %d arrived after its turn (next is %d); dropped",
                           self.endpoint, result.seq, self.next_seq)
        elif result.seq in self._buffer:
            self.stats.duplicates += 1
        else:
            self._buffer[result.seq] = (now, result)

    def _give_up_at(self) -> float | None:
        """When waiting for the missing ``next_seq`` ends (None: nothing is waiting)."""
        if not self._buffer:
            return None
        if self.next_seq is None:
            return self._first_arrival + self.max_wait_s
        if self.next_seq in self._buffer:
            return None
        return min(t for t, _ in self._buffer.values()) + self.max_wait_s

    def _pop_ready(self, now: float) -> FrameResult | None:
        if not self._buffer:
            return None
        if self.next_seq is None:
            if now < self._give_up_at() and len(self._buffer) < self.window:
                return None
            self.next_seq = min(self._buffer)
        if self.next_seq not in self._buffer:
            if now < self._give_up_at() and len(self._buffer) < self.window:
                return None
            first = min(self._buffer)
            self.stats.missing += first - self.next_seq
            logger.warning("%s: results %d..%d missing, skipped", self.endpoint,
                           self.next_seq, first - 1)
            self.next_seq = first
        arrived, result = self._buffer.pop(self.next_seq)
        if any(t < arrived for t, _ in self._buffer.values()):
            self.stats.reordered += 1
        self.next_seq += 1
        self.stats.emitted += 1
        return result


@dataclass
class WorkerStats:
    frames: int = 0
    batches: int = 0
    bad_messages: int = 0
    results_dropped: int = 0
    busy_s: float = 0.0
    wall_s: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)


def run_worker(in_endpoint: str, out_endpoint: str, process: Callable, *, batch_frames: int = 1,
               payload: str = "bits", name: str | None = None, hwm: int = 2,
               timeout_ms: int = 100, stop: threading.Event | None = None,
               max_idle_s: float | None = None, curve_in: CurveConfig | None = None,
               curve_out: CurveConfig | None = None) -> WorkerStats:
    """Pull frames from ``in_endpoint``, ``process`` them in batches, push results out.

    Parameters
    ----------
    in_endpoint, out_endpoint : str
        Fan-out and collector addresses (the worker connects to both).
    process : callable(complex64 [F, L]) -> result with ``.bits``/``.llr`` [F, B]
    batch_frames : int
        Most frames per call (takes what is queued, without waiting for more).
    payload : {"bits", "llr", "both"}
    name : str or None
        Reported as ``metrics.worker`` (default ``worker-PID``).
    stop : threading.Event or None
        Set to stop after the current batch.
    max_idle_s : float or None
        Stop after this long without frames.
    """
    if not isinstance(batch_frames, int) or batch_frames < 1:
        raise ValueError(f"batch_frames must be an int >= 1, got {batch_frames!r}")
    name = name or f"worker-{os.getpid()}"
    stop = stop or threading.Event()
    stats = WorkerStats()
    t_start = time.perf_counter()
    context = zmq.Context()
    pull = context.socket(zmq.PULL)
    try:
        pull.setsockopt(zmq.RCVHWM, hwm)
        pull.setsockopt(zmq.LINGER, 0)
        if curve_in is not None:
            curve_in.apply(pull)
        pull.connect(in_endpoint)
        with ResultPublisher(out_endpoint, "push", bind=False, payload=payload,
                             send_timeout_ms=5000, curve=curve_out, context=context) as out:
            idle_since = time.monotonic()
            while not stop.is_set():
                if not pull.poll(timeout_ms, zmq.POLLIN):
                    if max_idle_s is not None and time.monotonic() - idle_since > max_idle_s:
                        logger.info("%s: idle for %.1f s, stopping", name, max_idle_s)
                        break
                    continue
                idle_since = time.monotonic()
                frames = []
                while len(frames) < batch_frames:
                    try:
                        parts = pull.recv_multipart(flags=zmq.NOBLOCK, copy=False)
                    except zmq.Again:
                        break
                    try:
                        frames.append(decode_frame([p.buffer for p in parts]))
                    except ValueError as exc:
                        stats.bad_messages += 1
                        logger.warning("%s: skipped a malformed frame message: %s", name, exc)
                if not frames:
                    continue
                lengths = {f.size for _, f, _ in frames}
                if len(lengths) != 1:
                    stats.bad_messages += len(frames)
                    logger.warning("%s: frames of different lengths %s in one batch, skipped",
                                   name, sorted(lengths))
                    continue
                t0 = time.perf_counter()
                result = process(np.stack([f for _, f, _ in frames]))
                busy = time.perf_counter() - t0
                stats.busy_s += busy
                stats.batches += 1
                stats.frames += len(frames)
                for i, (seq, _, _) in enumerate(frames):
                    ok = out.publish(seq, bits=result.bits[i] if payload != "llr" else None,
                                     llr=result.llr[i] if payload != "bits" else None,
                                     timing={"worker_us": busy * 1e6 / len(frames)},
                                     metrics={**frame_metrics(result, i), "worker": name},
                                     llr_step=getattr(result, "llr_step", None))
                    stats.results_dropped += not ok
    finally:
        pull.close(0)
        context.term()
        stats.wall_s = time.perf_counter() - t_start
    return stats


def _load_factory(spec: str) -> Callable:
    module_name, sep, attr = spec.partition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--process must look like package.module:factory, got {spec!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attr)
    except (ImportError, AttributeError) as exc:
        raise ValueError(f"--process {spec!r}: {exc}") from None
    if not callable(factory):
        raise ValueError(f"--process {spec!r} is not callable")
    return factory


def _json_object(text: str) -> dict:
    """argparse type: the JSON text of an object -> dict; ArgumentTypeError otherwise."""
    try:
        value = json.loads(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not JSON ({exc})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object, got {text!r}")
    return value


def main(argv: list[str] | None = None) -> int:
    """Command line: ``python -m streaming.scaleout worker --in EP --out EP --process M:F``."""
    parser = argparse.ArgumentParser(prog="python -m streaming.scaleout",
                                     description="zakotfs scale-out receiver worker")
    commands = parser.add_subparsers(dest="command", required=True)
    worker = commands.add_parser("worker", help="pull frames, process them, push results")
    worker.add_argument("--in", dest="in_endpoint", required=True, help="fan-out endpoint")
    worker.add_argument("--out", dest="out_endpoint", required=True, help="collector endpoint")
    worker.add_argument("--process", required=True,
                        help="package.module:factory; factory(config, **options) returns process(frames)")
    worker.add_argument("--options", type=_json_object, default={},
                        help="JSON object of keyword options for the factory, "
                             "e.g. '{\"estimator\": \"paper\"}' (default none)")
    group = worker.add_mutually_exclusive_group()
    group.add_argument("--config", help="frame configuration JSON file (FrameConfig.to_json)")
    group.add_argument("--preset", help="named frame configuration (zakotfs.config.PRESETS)")
    worker.add_argument("--batch", type=int, default=1, help="frames per process call")
    worker.add_argument("--payload", choices=("bits", "llr", "both"), default="bits")
    worker.add_argument("--name", help="worker name in the results (default worker-PID)")
    worker.add_argument("--idle-exit", type=float, default=None,
                        help="stop after this many seconds without frames")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")

    from zakotfs.config import FrameConfig, preset

    config = None
    if args.config:
        with open(args.config, encoding="utf-8") as fh:
            config = FrameConfig.from_json(fh.read())
    elif args.preset:
        config = preset(args.preset)
    process = _load_factory(args.process)(config, **args.options)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        stats = run_worker(args.in_endpoint, args.out_endpoint, process, batch_frames=args.batch,
                           payload=args.payload, name=args.name, stop=stop,
                           max_idle_s=args.idle_exit)
    except KeyboardInterrupt:
        return 130
    print(json.dumps(stats.to_dict()), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
