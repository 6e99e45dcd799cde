"""Receiving with worker processes: acquired frames fanned out to receiver processes over
ZeroMQ (``streaming.scaleout``), their results collected back in frame order.

The workers build ``zakotfs.receiver.Receiver(config, **options)`` with
:func:`receiver_worker` (``RECEIVER_WORKER``, the ``--process`` of
``python -m streaming.scaleout worker``); ``options`` are the receiver's keyword options as
a JSON object.
"""
from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Callable

import numpy as np

from zakotfs.config import FrameConfig
from zakotfs.receiver import Receiver

from .read_loop import InputWatch, acquire_read, read_samples
from .scaleout import FrameCollector, FrameFanout
from .zmq_io import FRAME_METRICS, FrameResult

__all__ = ["RECEIVER_WORKER", "receiver_worker", "WorkerResult", "WorkersNotConnected", "start_workers",
           "wait_for_workers", "run_workers"]

RECEIVER_WORKER = "streaming.workers:receiver_worker"
"""The ``--process`` of a scale-out worker that runs :func:`receiver_worker`."""


class WorkersNotConnected(RuntimeError):
    """The workers did not all connect: time ran out, or a local one exited first."""


def receiver_worker(config: FrameConfig, **options) -> Callable:
    """The ``process`` of ``Receiver(config, **options)``, built without printing the backend
    it took; no options give the default receiver."""
    return Receiver(config, quiet=True, **options).process


class WorkerResult:
    """One collected frame as a batch of one: ``bits`` uint8 [1, B], ``llr`` [1, B] or None,
    ``llr_step``, and each per-frame statistic of ``FRAME_METRICS`` the worker sent, float [1]."""

    def __init__(self, frame: FrameResult):
        self.bits = frame.bits[None, :]
        self.llr = None if frame.llr is None else frame.llr[None, :]
        self.llr_step = frame.llr_step
        metrics = frame.header.get("metrics") or {}
        for name in FRAME_METRICS:
            if name in metrics:
                setattr(self, name, np.array([metrics[name]], float))


def start_workers(n: int, fanout: str, collect: str, config: FrameConfig, options: dict, *,
                  payload: str = "bits", batch: int = 1) -> list[subprocess.Popen]:
    """Start ``n`` local worker processes of :func:`receiver_worker` with the receiver
    ``options`` (JSON-serialisable), reading frames from ``fanout`` and sending results to
    ``collect``; ``payload``: ``bits``, ``llr`` or ``both``."""
    folder = Path(tempfile.mkdtemp(prefix="zakotfs-"))
    (folder / "config.json").write_text(config.to_json())
    return [subprocess.Popen([sys.executable, "-m", "streaming.scaleout", "worker", "--in", fanout,
                              "--out", collect, "--process", RECEIVER_WORKER, "--options", json.dumps(options),
                              "--config", str(folder / "config.json"), "--payload", payload,
                              "--batch", str(batch)], stdout=subprocess.DEVNULL)
            for _ in range(n)]


def wait_for_workers(fanout: FrameFanout, workers: list, n: int, timeout_s: float = 60.0) -> None:
    """Wait until ``n`` workers are connected to ``fanout``; raises when time runs
    out or one of the local ``workers`` (``subprocess.Popen``) exits first, as one with a bad
    receiver option does: :class:`WorkersNotConnected`."""
    deadline = time.monotonic() + timeout_s
    while not fanout.wait_for_workers(n, timeout_s=min(1.0, max(0.0, deadline - time.monotonic()))):
        exited = [w.returncode for w in workers if w.poll() is not None]
        if exited:
            raise WorkersNotConnected(f"--workers {n}: a worker process exited with status {exited[0]} "
                               f"before connecting (its error is above)")
        if time.monotonic() >= deadline:
            raise WorkersNotConnected(f"--workers {n}: only {fanout.connected_workers} connected within {timeout_s:g} s")


def run_workers(source, acquirer, consume: Callable, config: FrameConfig, options: dict, *, workers: int,
                fanout: str | None = None, collect: str | None = None, payload: str = "bits", batch: int = 1,
                max_frames: int | None = None, watch: InputWatch | None = None,
                on_lost: Callable[[int], None] = lambda n: None) -> dict:
    """Read ``source``, acquire frames with ``acquirer`` (``push``/``skip``/``flush``), fan them
    out to ``workers`` receiver processes and ``consume(result, metas)`` their results in
    frame order, each meta with ``seq``, ``latency_us`` (sent to collected) and the
    acquirer's ``cfo_hz`` and ``start``; ``on_lost(n)`` is told of the frames the acquirer
    found lost before each one sent.

    Endpoints: ipc in a private temporary folder by default; with ``fanout``/``collect``
    (tcp) the workers run elsewhere, started there with ``python -m streaming.scaleout worker
    --in FANOUT --out COLLECT --process streaming.workers:receiver_worker --config F --options
    JSON``, and none is started here. The input ends as ``watch`` says (its timeouts), at
    ``max_frames`` or with Ctrl-C. Returns the run's counts: {workers, frames_sent,
    frames_not_sent, collector}."""
    watch = watch or InputWatch()
    folder = Path(tempfile.mkdtemp(prefix="zakotfs-"))
    fan_ep, col_ep = fanout or f"ipc://{folder}/frames", collect or f"ipc://{folder}/results"
    fan, collector = FrameFanout(fan_ep), FrameCollector(col_ep, timeout_ms=0, max_wait_s=5.0)
    procs = [] if (fanout or collect) else start_workers(workers, fan_ep, col_ep, config, options,
                                                         payload=payload, batch=batch)
    sent: dict[int, tuple[float, dict]] = {}        # seq: (time sent, the acquirer's meta)

    def collected(results) -> None:
        for res in results:
            t_sent, meta = sent.pop(res.seq, (time.perf_counter(), {}))
            acquired = {key: meta[key] for key in ("cfo_hz", "start") if key in meta}
            consume(WorkerResult(res), [{"seq": res.seq, "latency_us": (time.perf_counter() - t_sent) * 1e6,
                                         **acquired}])

    def send(frames) -> None:
        for frame, meta in frames:
            sent[meta["seq"]] = (time.perf_counter(), meta)
            if collector.next_seq is None:
                collector.next_seq = meta["seq"]
            fan.send(meta["seq"], frame, {"lost_before": meta.get("lost_before", 0)})
            on_lost(int(meta.get("lost_before", 0)))

    try:
        wait_for_workers(fan, procs, workers)
        for samples in read_samples(source, watch):
            if samples is not None:
                send(acquire_read(source, acquirer, samples))
            while (res := collector.recv()) is not None:
                collected([res])
            if max_frames is not None and fan.sent >= max_frames:
                break
        send(acquirer.flush())
        deadline = time.monotonic() + (watch.idle_timeout_s or 0.0) + 10
        while sent and time.monotonic() < deadline:
            res = collector.recv()
            if res is None:
                time.sleep(0.01)
            else:
                collected([res])
        collected(collector.flush())
    except KeyboardInterrupt:
        print("\ninterrupted: writing the report", file=sys.stderr)
    finally:
        for w in procs:
            w.terminate()
        for w in procs:
            w.wait(timeout=30)
        fan.close()
        collector.close()
    return {"workers": workers, "frames_sent": fan.sent, "frames_not_sent": fan.dropped,
            "collector": collector.stats.to_dict()}
