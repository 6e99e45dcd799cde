"""ZeroMQ ingest benchmark: sustained loopback receive rate of ``IQSource`` (no decoding).

A sender process (a bound PUSH or PUB socket sending one message, already in its sample
format, over and over, as gr-zeromq sends an SDR's items) streams for ``--duration``
seconds; this process receives with ``IQSource`` (zero-copy views, NaN/Inf check on, as the
receiver runs it) and counts samples. For each pattern (PUSH/PULL, PUB/SUB), transport
(tcp, ipc) and message size (8191 and 65536 samples) of complex64 it reports the received
samples/s between the first and the last message (median of ``--repeat`` runs), the
sender's rate and, for PUB, the fraction the subscriber never got (PUB drops at the
high-water mark). One more case repeats PUSH/PULL ipc 65536 without the NaN/Inf check, and
PUSH/PULL over both transports repeats with interleaved int16 and int8 I/Q (``ci16_le``,
``ci8``: half and a quarter of the bytes, converted to complex64 on receipt).
``receive_path`` times ``IQSource.recv()`` alone on messages queued in advance (inproc, one
core, no sender competing). The reference is the paper's 245.76 Msps.

Writes ``bench/results/zmq_ingest.json`` (date, commit, machine, results).

Usage: ``python -m bench.zmq_ingest [--duration S] [--repeat K] [--out PATH]``.
"""
from __future__ import annotations

import argparse
import json
import multiprocessing as mp
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import zmq

from streaming.sample_format import sample_format
from streaming.zmq_io import IQSource
from zakotfs.benchmark import run_metadata

ROOT = Path(__file__).resolve().parents[1]
TARGET_SPS = 245.76e6
SIZES = (8191, 65536)


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def _sender(endpoint: str, pattern: str, n: int, fmt: str, warmup_s: float, duration_s: float, report) -> None:
    """Child process: bind, wait for the receiver, send one message (encoded once) over and over."""
    message, _ = sample_format(fmt).encode((np.arange(n) % 97 * (1 - 1j)).astype(np.complex64), full_scale=128.0)
    message = message.tobytes()
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH if pattern == "push" else zmq.PUB)
    sock.setsockopt(zmq.SNDTIMEO, 2000)
    sock.setsockopt(zmq.LINGER, 2000)
    sock.bind(endpoint)
    report.put(sock.getsockopt_string(zmq.LAST_ENDPOINT))
    time.sleep(warmup_s)                          # connection (and subscription) set up
    sent = dropped = 0
    t0 = time.perf_counter()
    t_end = t0 + duration_s
    while time.perf_counter() < t_end:
        try:
            sock.send(message)
            sent += 1
        except zmq.Again:
            dropped += 1
    elapsed = time.perf_counter() - t0
    sock.close()
    ctx.term()
    report.put({"messages": sent, "dropped": dropped, "samples": sent * n, "elapsed_s": elapsed})


def measure(pattern: str, transport: str, n: int, duration_s: float, check_finite: bool = True,
            warmup_s: float = 0.5, fmt: str = "cf32_le") -> dict:
    """One configuration: received samples/s and what the sender managed."""
    sink_pattern = {"pull": "push", "sub": "pub"}[pattern]
    if transport == "tcp":
        endpoint = "tcp://127.0.0.1:*"
    else:
        endpoint = f"ipc://{tempfile.gettempdir()}/zakotfs-bench-{os.getpid()}-{pattern}-{n}"
    ctx = mp.get_context("spawn")
    report = ctx.Queue()
    proc = ctx.Process(target=_sender, args=(endpoint, sink_pattern, n, fmt, warmup_s, duration_s, report))
    proc.start()
    endpoint = report.get(timeout=30)
    received = messages = 0
    t_first = t_last = None
    first_size = 0
    with IQSource(endpoint, pattern, timeout_ms=int(1000 * (warmup_s + 1)),
                  check_finite=check_finite, sample_format=fmt) as source:
        while True:
            x = source.recv()
            if x is None:
                break
            now = time.perf_counter()
            if t_first is None:
                t_first, first_size = now, x.size
            t_last = now
            received += x.size
            messages += 1
            source.timeout_ms = 500
        stats = source.stats.to_dict()
    sent = report.get(timeout=30)
    proc.join(30)
    span = (t_last - t_first) if messages > 1 else float("nan")
    sps = (received - first_size) / span if messages > 1 else 0.0
    return {
        "pattern": f"{sink_pattern}/{pattern}", "transport": transport, "msg_samples": n, "sample_format": fmt,
        "check_finite": check_finite, "received_samples": received, "received_messages": messages,
        "span_s": span, "samples_per_s": sps, "bytes_per_s": sample_format(fmt).itemsize * sps,
        "x_target": sps / TARGET_SPS,
        "sender_samples_per_s": sent["samples"] / sent["elapsed_s"],
        "sender_dropped_messages": sent["dropped"],
        "lost_fraction": 1 - messages / sent["messages"] if sent["messages"] else None,
        "bad_messages": stats["bad_messages"],
    }


def receive_path(n: int, total_samples: int = 50_000_000, check_finite: bool = True, fmt: str = "cf32_le") -> dict:
    """IQSource.recv() alone: messages queued in advance over inproc (no I/O thread, no sender
    running), so this is the per-message cost of the receive path on one core."""
    ctx = zmq.Context()
    count = max(1, total_samples // n)
    with IQSource("inproc://zmq-ingest-bench", "pull", bind=True, context=ctx,
                  check_finite=check_finite, sample_format=fmt) as source:
        push = ctx.socket(zmq.PUSH)
        push.setsockopt(zmq.SNDHWM, 0)
        push.connect("inproc://zmq-ingest-bench")
        message = sample_format(fmt).encode(np.ones(n, np.complex64), full_scale=2.0)[0].tobytes()
        for _ in range(count):
            push.send(message)
        t0 = time.perf_counter()
        for _ in range(count):
            source.recv()
        elapsed = time.perf_counter() - t0
        push.close(0)
    ctx.term()
    return {"msg_samples": n, "sample_format": fmt, "check_finite": check_finite, "messages": count,
            "us_per_message": elapsed / count * 1e6, "samples_per_s": count * n / elapsed,
            "x_target": count * n / elapsed / TARGET_SPS}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=float, default=2.0, help="seconds of sending per run")
    parser.add_argument("--repeat", type=int, default=3, help="runs per case (the median is reported)")
    parser.add_argument("--out", type=Path, default=ROOT / "bench" / "results" / "zmq_ingest.json")
    args = parser.parse_args(argv)

    cases = [(p, t, n, True, "cf32_le") for p in ("pull", "sub") for t in ("tcp", "ipc") for n in SIZES]
    cases.append(("pull", "ipc", SIZES[-1], False, "cf32_le"))
    cases += [("pull", t, n, True, fmt) for fmt in ("ci16_le", "ci8") for t in ("tcp", "ipc") for n in SIZES]
    results = []
    for pattern, transport, n, check, fmt in cases:
        runs = [measure(pattern, transport, n, args.duration, check, fmt=fmt) for _ in range(args.repeat)]
        runs.sort(key=lambda r: r["samples_per_s"])
        row = dict(runs[len(runs) // 2])
        row["runs_samples_per_s"] = [r["samples_per_s"] for r in runs]
        results.append(row)
        low, high = runs[0]["samples_per_s"] / 1e6, runs[-1]["samples_per_s"] / 1e6
        print(f"{row['pattern']:9s} {transport:3s} {n:6d} {fmt:7s}{'' if check else ' (no NaN check)'}: "
              f"{row['samples_per_s'] / 1e6:7.1f} Msps median ({low:.0f}-{high:.0f}), "
              f"{row['x_target']:.2f}x 245.76; sender {row['sender_samples_per_s'] / 1e6:7.1f} Msps, "
              f"lost {row['lost_fraction']:.3f}", flush=True)

    path = [receive_path(n, check_finite=check) for n in SIZES for check in (True, False)]
    path += [receive_path(n, fmt=fmt) for fmt in ("ci16_le", "ci8") for n in SIZES]
    for row in path:
        check = "" if row["check_finite"] else " (no NaN check)"
        print(f"receive path alone, {row['msg_samples']:6d} {row['sample_format']:7s}{check}: {row['us_per_message']:6.1f} "
              f"us/message, {row['samples_per_s'] / 1e6:7.1f} Msps", flush=True)

    report = {
        "benchmark": "zmq_ingest",
        **run_metadata(sys.argv),
        "cpu": _cpu_model(), "pyzmq": zmq.__version__, "libzmq": zmq.zmq_version(),
        "target_samples_per_s": TARGET_SPS,
        "duration_s": args.duration,
        "repeat": args.repeat,
        "notes": "Loopback on one host: the sender process and this receiver share its cores. "
                 "samples_per_s counts what IQSource.recv() returned between the first and last "
                 "message (zero-copy views for cf32_le, one conversion pass for ci16_le and ci8; "
                 "NaN/Inf check on unless check_finite is false; fixed point has none). "
                 "PUB/SUB: lost_fraction is what the subscriber never got (PUB drops at the HWM).",
        "results": results,
        "receive_path": path,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
