"""Every kernel of the real-time chain on the GPU, with its device time: the graph replays of
``RealtimeReceiver`` recorded by CUPTI (through PyTorch's profiler, which records the
kernels of any library in the process, graph nodes included), summed by kernel name.

    python -m bench.kernel_trace --preset paper --cg-iterations 8 --json out/kernels.json

Where ``bench.gpu_profile`` times the chain's pieces one by one, this says which kernels
take the time inside the whole chain, as the receiver runs it. It needs a GPU and PyTorch
(the GPU machines have both); elsewhere it says so and exits with status 2.
"""
from __future__ import annotations

import argparse
import importlib.util
import sys

from dsp_kernels import get_backend
from zakotfs.benchmark import make_frames, run_metadata, write_json
from zakotfs.config import preset
from zakotfs.realtime import RealtimeReceiver
from zakotfs.receiver import Receiver


def trace(preset_name: str, batch: int, cg_iterations: int | None, replays: int) -> list[dict]:
    """[{kernel, calls_per_replay, us_per_replay, share}], the longest first."""
    from torch.profiler import ProfilerActivity, profile

    config = preset(preset_name)
    options = {} if cg_iterations is None else {"cg_iterations": cg_iterations}
    rt = RealtimeReceiver(Receiver(config, backend="gpu", quiet=True, **options), batch)
    frames = rt.pinned_frames(make_frames(config, batch).frames)
    for _ in range(3):
        rt.process(frames)
    with profile(activities=[ProfilerActivity.CUDA]) as prof:
        for _ in range(replays):
            rt.process(frames)
    rows = []
    for event in prof.key_averages():
        us = getattr(event, "device_time_total", None)
        us = event.cuda_time_total if us is None else us
        if us > 0:
            rows.append({"kernel": event.key, "calls_per_replay": event.count / replays, "us_per_replay": us / replays})
    rows.sort(key=lambda row: -row["us_per_replay"])
    total = sum(row["us_per_replay"] for row in rows)
    for row in rows:
        row["share"] = row["us_per_replay"] / total
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--preset", default="paper")
    parser.add_argument("--batch", type=int, default=1)
    parser.add_argument("--cg-iterations", type=int, default=None)
    parser.add_argument("--replays", type=int, default=20)
    parser.add_argument("--top", type=int, default=40, help="kernels printed (all go to the JSON)")
    parser.add_argument("--json", default=None)
    args = parser.parse_args(argv)
    try:
        import cupy

        cupy.cuda.runtime.getDeviceCount()
        if importlib.util.find_spec("torch") is None:
            raise ModuleNotFoundError("No module named 'torch'")
    except Exception as exc:
        print(f"kernel_trace needs a GPU, CuPy and PyTorch: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 2
    rows = trace(args.preset, args.batch, args.cg_iterations, args.replays)
    total = sum(row["us_per_replay"] for row in rows)
    print(f"{args.preset}, batch {args.batch}: {total:.1f} us of kernels a replay, {len(rows)} kernels")
    for row in rows[:args.top]:
        print(f"  {row['us_per_replay']:8.1f} us {100 * row['share']:5.1f} %  x{row['calls_per_replay']:5.1f}  "
              f"{row['kernel'][:110]}")
    if args.json:
        write_json(args.json, {"preset": args.preset, "batch": args.batch, "cg_iterations": args.cg_iterations,
                               "replays": args.replays, "kernel_us_per_replay": total, "kernels": rows,
                               **run_metadata(sys.argv, get_backend("gpu"))})
    return 0


if __name__ == "__main__":
    sys.exit(main())
