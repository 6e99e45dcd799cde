"""This tree against an earlier commit, side by side in one run: ``zakotfs bench`` on the same
frames, alternating between the two checkouts round after round, so that both see the
same machine (its load and clock drift) and the ratios are measured, not recalled.

The earlier commit is checked out with ``git worktree`` into a temporary folder and run
with that folder first on PYTHONPATH (its own zakotfs, dsp_kernels, channel_models and
streaming; the installed packages are shared). Each round runs every ``--batches`` value
on both sides; the result keeps every run's JSON, and for each side the median
throughput and the latency percentiles, the ratio of this tree's best throughput to the
earlier commit's best, and whether the BERs agree (the same seed makes the same frames).

    python -m bench.versus_commit --base 66454ca --preset demo --frames 40 --rounds 3 \\
        --json bench/results/cpu_demo_versus_66454ca.json
"""
from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

from zakotfs.benchmark import run_metadata, write_json

ROOT = Path(__file__).resolve().parents[1]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def bench(tree: Path, args, batch: int, out: Path) -> dict:
    """One ``zakotfs bench`` run from ``tree``; its JSON."""
    command = [sys.executable, "-m", "zakotfs.cli", "bench", "--backend", "cpu", "--frames", str(args.frames),
               "--batch", str(batch), "--snr", str(args.snr), "--json", str(out), "--quiet", *args.frame_options]
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run(command, cwd=tree, env=env, capture_output=True, text=True)
    if done.returncode != 0:
        raise RuntimeError(f"bench in {tree} failed ({done.returncode}): {done.stderr.strip()[-2000:]}")
    return json.loads(out.read_text())


def summary(runs: list[dict]) -> dict:
    """Median throughput and latency percentiles of one side's runs at one batch."""
    pick = lambda key: float(np.median([r["latency_us"][key] for r in runs]))   # noqa: E731
    return {"runs": len(runs), "throughput_mbps": float(np.median([r["throughput_mbps"] for r in runs])),
            "latency_us": {k: pick(k) for k in ("p50", "p99", "p999", "max")},
            "deadline_us": runs[0]["deadline_us"], "ber": runs[0]["ber"], "bit_errors": runs[0]["bit_errors"],
            "cpu_workers": runs[0].get("realtime", {}).get("cpu_workers", 0)}


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.versus_commit", description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--base", required=True, help="the earlier commit")
    ap.add_argument("--frames", type=int, default=40)
    ap.add_argument("--batches", default="1,8", help="comma-separated batch sizes, run on both sides")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--snr", type=float, default=20.0)
    ap.add_argument("--json", required=True)
    args, frame_options = ap.parse_known_args(argv)
    args.frame_options = frame_options or ["--preset", "demo"]
    batches = [int(b) for b in args.batches.split(",")]
    base = subprocess.run(["git", "rev-parse", args.base], cwd=ROOT, capture_output=True, text=True, check=True).stdout.strip()
    runs: dict = {"base": {b: [] for b in batches}, "head": {b: [] for b in batches}}
    with tempfile.TemporaryDirectory() as tmp:
        tree = Path(tmp) / "base"
        subprocess.run(["git", "worktree", "add", "--detach", str(tree), base], cwd=ROOT, check=True,
                       capture_output=True)
        try:
            for r in range(args.rounds):
                for b in batches:
                    for side, where in (("base", tree), ("head", ROOT)):
                        result = bench(where, args, b, Path(tmp) / f"{side}_{b}_{r}.json")
                        runs[side][b].append(result)
                        log(f"round {r + 1}/{args.rounds}, batch {b}, {side}: {result['throughput_mbps']:.3f} Mbps, "
                            f"p50 {result['latency_us']['p50'] / 1e3:.1f} ms, BER {result['ber']:.3e}")
        finally:
            subprocess.run(["git", "worktree", "remove", "--force", str(tree)], cwd=ROOT, capture_output=True)
    sides = {side: {b: summary(v) for b, v in by_batch.items()} for side, by_batch in runs.items()}
    best = {side: max(s.values(), key=lambda x: x["throughput_mbps"]) for side, s in sides.items()}
    out = {
        "what": "zakotfs bench --backend cpu, this tree against an earlier commit, alternating in one run",
        "base_commit": base, "frame_options": args.frame_options, "frames": args.frames, "rounds": args.rounds,
        "summary": sides,
        "throughput_ratio_best": best["head"]["throughput_mbps"] / best["base"]["throughput_mbps"],
        "ber_ratio": best["head"]["ber"] / best["base"]["ber"] if best["base"]["ber"] else None,
        "runs": runs,
        **run_metadata(sys.argv if argv is None else ["bench.versus_commit", *argv]),
    }
    write_json(args.json, out)
    for side in ("base", "head"):
        for b, s in sides[side].items():
            print(f"{side:4s} batch {b:3d}: {s['throughput_mbps']:8.3f} Mbps, latency p50 {s['latency_us']['p50'] / 1e3:8.1f} "
                  f"p99.9 {s['latency_us']['p999'] / 1e3:8.1f} ms (deadline {s['deadline_us'] / 1e3:.2f} ms), "
                  f"BER {s['ber']:.3e}")
    print(f"throughput, best batch against best batch: {out['throughput_ratio_best']:.1f}x; BER ratio {out['ber_ratio']:.4f}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
