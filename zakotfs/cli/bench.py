"""``zakotfs bench``: the latency-deadline benchmark on one configuration
(``zakotfs.benchmark``; ``bench/latency_sweep.py`` for sweeps)."""
from __future__ import annotations

import sys

from ..benchmark import (make_frames, real_time_verdict, run_metadata, time_receiver, time_sparse_baseline,
                         timed_path, work_per_frame, write_json)
from ..pipelined import DEPTH, PipelinedReceiver
from ..realtime import RealtimeReceiver
from ..receiver import Receiver
from .options import (backend_option, default_batch, frame_options, make_receiver, output_path, positive_int,
                      receiver_option_group, receiver_options, resolve_config)
from .summary import ProgressBar


def add_parser(sub) -> None:
    p = sub.add_parser("bench", help="latency-deadline benchmark")
    frame_options(p, default_preset="demo")
    backend_option(p)
    receiver_option_group(p)
    p.add_argument("--frames", type=positive_int, default=100)
    p.add_argument("--snr", type=float, default=20.0)
    p.add_argument("--doppler-hz", type=float, default=815.0)
    p.add_argument("--baseline", type=int, default=0, metavar="FRAMES",
                   help="also time the sparse-matrix CG baselines on this many frames")
    p.add_argument("--depth", type=int, default=DEPTH,
                   help="on the GPU, batches in flight for the pipelined throughput run (transfers "
                        "overlapped with compute); below 2 skips it")
    p.add_argument("--json", type=output_path, help="write the JSON result here")
    p.add_argument("--quiet", action="store_true")
    p.set_defaults(func=run)


def run(args) -> int:
    """The latency-deadline benchmark on one configuration (``bench/latency_sweep.py`` for sweeps).

    The headline is the real-time path (``zakotfs.benchmark.timed_path``: on the GPU one CUDA
    graph per batch, one batch at a time; on the CPU each batch split between a worker
    process a core), and its verdict: real time when the p99.9 latency is within the batch's
    deadline and the throughput at least the link's rate. On the GPU the same run also times, side by side on up to
    200 batches each: ``depth`` batches in flight (``PipelinedReceiver``, the sustained
    throughput with transfers overlapped with compute), the same chain launched op by op (no
    graph) and the staged receiver (each stage synchronised, which gives the stage
    breakdown). With a windowed operator, the exact operator is timed too, on both backends.
    """
    config = resolve_config(args)

    def say(text: str) -> None:
        if not args.quiet:
            print(f"zakotfs bench: {text}", file=sys.stderr, flush=True)
    say(f"{config.summary()}; building the receiver")
    receiver = make_receiver(config, receiver_options(args), args.batch)
    args.batch = args.batch or min(default_batch(receiver.backend.name), args.frames)
    say(f"preparing {min(args.frames, 8)} distinct frames (Veh-A, {args.doppler_hz:g} Hz, {args.snr:g} dB)")
    data = make_frames(config, min(args.frames, 8), snr_db=args.snr, nu_max_hz=args.doppler_hz)
    say(f"starting the real-time path, batch {args.batch}")
    realtime = timed_path(receiver, args.batch)
    bar = None if args.quiet else ProgressBar(-(-args.frames // args.batch), "batches", "zakotfs bench")
    try:
        result = time_receiver(realtime, data, args.frames, batch=args.batch,
                               progress=None if bar is None else lambda i, n, _: bar.update(i))
    finally:
        if bar is not None:
            bar.close()
        if hasattr(realtime, "close"):
            realtime.close()
    result.update(backend=receiver.backend.name, device=receiver.backend.device, config=config.to_dict(),
                  estimator=receiver.estimator_name, path_fit=receiver.path_fit, prior=receiver.prior,
                  cg_iterations=receiver.cg_iterations,
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
    result.update(run_metadata(args.command_line, receiver.backend))
    if args.json:
        write_json(args.json, result)
    lat = result["latency_us"]
    path = (f"CUDA graph {realtime.graph is not None}" if receiver.backend.name == "gpu"
            else f"{realtime.describe().get('cpu_workers') or 1} CPU worker process(es)")
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
