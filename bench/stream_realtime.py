"""Does ``zakotfs rx`` keep up with a live stream? ``zakotfs tx --realtime`` paces frames at the
sample rate into ZeroMQ (PUSH/PULL on loopback, lossless), ``zakotfs rx`` decodes them as
they come; the result is rx's report: frames decoded against frames sent, frames dropped by
its queue policy (``drop-oldest``: the receiver fell behind), frames lost in acquisition,
the bit errors against the transmitted bits, and the runner's statistics.

    python -m bench.stream_realtime --grid 128x16 --bandwidth 1.92e6 --frames 2000 --batch 16 \\
        --queue 256 --json bench/results/stream_realtime_128x16.json
"""
from __future__ import annotations

import argparse
import json
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from zakotfs.benchmark import run_metadata, write_json


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.stream_realtime", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--grid", default="256x16")
    ap.add_argument("--bandwidth", type=float, default=3.84e6)
    ap.add_argument("--mod", default="16qam")
    ap.add_argument("--frames", type=int, default=2000)
    ap.add_argument("--batch", type=int, help="rx --batch (default: rx's)")
    ap.add_argument("--queue", type=int, help="rx --queue (default: rx's)")
    ap.add_argument("--json", required=True)
    args = ap.parse_args(argv)
    frame = ["--grid", args.grid, "--bandwidth", str(args.bandwidth), "--mod", args.mod]
    with tempfile.TemporaryDirectory() as tmp:
        endpoint, truth, report = f"tcp://127.0.0.1:{free_port()}", Path(tmp) / "truth.h5", Path(tmp) / "report.json"
        rx_cmd = [sys.executable, "-m", "zakotfs.cli", "rx", "--backend", "cpu", "--in", endpoint, "--pattern", "pull",
                  *frame, "--truth", str(truth), "--report", str(report), "--json", "--idle-timeout", "3",
                  *(["--batch", str(args.batch)] if args.batch else []),
                  *(["--queue", str(args.queue)] if args.queue else [])]
        tx_cmd = [sys.executable, "-m", "zakotfs.cli", "tx", "--out", endpoint, "--pattern", "push", *frame,
                  "--frames", str(args.frames), "--truth", str(truth), "--realtime", "--seed", "1"]
        print("rx:", " ".join(rx_cmd[2:]), file=sys.stderr)
        rx = subprocess.Popen(rx_cmd, stdout=subprocess.DEVNULL)
        time.sleep(1.0)
        started = time.perf_counter()
        tx = subprocess.run(tx_cmd, capture_output=True, text=True)
        sent_s = time.perf_counter() - started
        if tx.returncode != 0:
            rx.kill()
            raise SystemExit(f"tx failed: {tx.stderr.strip()[-500:]}")
        rx_status = rx.wait(timeout=600)
        result = json.loads(report.read_text())
    runner = result.get("runner", {})
    out = {
        "what": "zakotfs tx --realtime -> ZeroMQ PUSH/PULL loopback -> zakotfs rx (CPU); rx's report",
        "grid": args.grid, "bandwidth_hz": args.bandwidth, "modulation": args.mod,
        "frames_sent": args.frames, "frames_decoded": result["frames"],
        "frames_dropped": runner.get("frames_dropped"), "frames_lost": result["frames_lost"],
        "frames_missing_vs_truth": result["frames_missing_vs_truth"], "ber": result["ber"],
        "link_mbps": result.get("link_mbps"), "stream_seconds": sent_s,
        "rx_exit_status": rx_status, "kept_up": result["frames"] == args.frames and not runner.get("frames_dropped"),
        "commands": {"rx": " ".join(rx_cmd[2:]), "tx": " ".join(tx_cmd[2:])},
        "report": result,
        **run_metadata(sys.argv if argv is None else ["bench.stream_realtime", *argv]),
    }
    write_json(args.json, out)
    print(f"{args.grid} at {args.bandwidth / 1e6:g} MHz: {out['frames_decoded']}/{args.frames} frames decoded, "
          f"{out['frames_dropped']} dropped, {out['frames_lost']} lost, BER {out['ber']}; kept up: {out['kept_up']}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
