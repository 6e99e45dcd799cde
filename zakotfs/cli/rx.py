"""``zakotfs rx``: the receiver on a file or a ZeroMQ stream: ingest and acquisition,
compute and output on their own threads (``streaming.runner``), or compute in ``--workers``
processes (``streaming.workers``); optionally calibrated on the first frames and
recalibrated during the stream (``streaming.calibration``)."""
from __future__ import annotations

import sys

from dsp_kernels import get_backend
from streaming.acquisition import FrameAcquirer
from streaming.calibration import Recalibration, held_first, hold_frames
from streaming.io import RecordingSource, open_sink
from streaming.link_stats import LinkStats, stop_reason
from streaming.read_loop import InputWatch
from streaming.result_file import ResultFileWriter
from streaming.runner import PipelineRunner
from streaming.workers import WorkersNotConnected, run_workers
from streaming.zmq_io import ResultPublisher, is_endpoint

from ..calibration import Recalibrator, calibrate
from ..config import FrameConfig
from ..modulation import LLR_INT8_STEP
from ..pipelined import stream_process
from .exit_status import rx_outcome
from .options import (UsageError, backend_option, count, default_batch, frame_options, make_receiver, open_input,
                      output_path, positive_int, receiver_option_group, receiver_options, resolve_config,
                      sample_format_options, start_timeout_option)
from .summary import emit, frame_progress, phase


def add_parser(sub) -> None:
    p = sub.add_parser("rx", help="the receiver on a file or a ZeroMQ stream")
    frame_options(p, default_preset=None)
    backend_option(p)
    receiver_option_group(p)
    p.add_argument("--in", dest="input", required=True)
    p.add_argument("--truth", help="FILE.h5 with /truth/bits, for BER (read once it exists)")
    p.add_argument("--report", type=output_path, help="JSON report file")
    p.add_argument("--frames", type=positive_int, help="stop after N frames")
    p.add_argument("--out", type=output_path, help="decoded bits and LLRs: FILE.h5 or a ZeroMQ endpoint")
    p.add_argument("--pattern", default="sub", choices=["sub", "pull"], help="ZeroMQ input pattern")
    p.add_argument("--record", type=output_path,
                   help="also record the incoming samples, by suffix: FILE.h5, FILE.sigmf-meta or a raw FILE.cfile / "
                        "FILE.sc16 (replayable with --in)")
    p.add_argument("--realtime", action="store_true", help="files: replay paced at the sample rate")
    p.add_argument("--calibrate", type=count, default=0, metavar="N",
                   help="hold the first N frames (of a file or a live stream), read the sample clock and the "
                        "carrier offset off them, set --sample-clock-ppm / --cfo-offset where they matter "
                        "(those given stay), then decode them and the rest")
    p.add_argument("--recalibrate", type=count, default=0, metavar="K",
                   help="read the sample clock and the carrier offset again off every K frames and retune the "
                        "receiver where they moved enough to matter (a clock or a carrier that drifts)")
    p.add_argument("--idle-timeout", type=float, default=5.0,
                   help="seconds without samples, once they have started, before stopping")
    start_timeout_option(p)
    p.add_argument("--queue", type=positive_int, default=64, help="frames queued between ingest and compute")
    p.add_argument("--policy", default="drop-oldest", choices=["drop-oldest", "drop-newest", "block"],
                   help="when compute falls behind (drops are counted in the report)")
    p.add_argument("--workers", type=count, default=0, help="receiver processes fed over ZeroMQ (scale-out)")
    p.add_argument("--fanout", help="with --workers: frame endpoint for workers on other machines")
    p.add_argument("--collect", help="with --workers: result endpoint for workers on other machines")
    p.add_argument("--json", action="store_true")
    sample_format_options(p, read=True, write=False)
    p.set_defaults(func=run)


def run(args) -> int:
    if args.recalibrate and args.recalibrate < 3:
        raise UsageError(f"--recalibrate K needs K >= 3 frames (the clock is read off their period), got {args.recalibrate}")
    if args.recalibrate and args.workers:
        raise UsageError("--recalibrate retunes the receiver in this process: not with --workers")
    source = open_input(args.input, args, args.pattern)
    config = resolve_config(args, None if getattr(source, "config_given", False) else source.config)
    truth = None if args.truth else getattr(source, "truth_bits", None)
    if args.record:
        source = RecordingSource(source, _recording(args.record, config))
    acquirer = FrameAcquirer(config)
    options = receiver_options(args)
    calibration, held = None, []
    if args.calibrate:
        held = hold_frames(source, acquirer, args.calibrate, InputWatch(args.start_timeout, args.idle_timeout))
        calibration = calibrate(config, [meta for _, meta in held[:args.calibrate]],
                                sample_clock_ppm=args.sample_clock_ppm, cfo_offset_hz=args.cfo_offset)
        options.update(calibration["applied"])
        if not args.json:
            _print_calibration(calibration)
    acquirer = held_first(acquirer, held)
    if not args.workers and not args.json:
        phase("rx", f"{config.summary()}; building the receiver (compiling and warming up)")
    receiver = None if args.workers else make_receiver(config, options, args.batch)
    backend = receiver.backend if receiver else get_backend(args.backend, quiet=True)
    args.batch = args.batch or (default_batch(backend.name) if receiver else 1)
    sink, close_sink = _result_sink(args.out, config, LLR_INT8_STEP if args.llr == "int8" else None,
                                    command=args.command_line)
    session = LinkStats(config, backend, args.estimator, truth_bits=truth, sink=sink, truth_path=args.truth,
                        command=args.command_line,
                        cfo_offset_hz=options["cfo_offset_hz"], sample_clock_ppm=options["sample_clock_ppm"])
    extra: dict = {}
    process = None
    progress = None if args.json else frame_progress(args.frames, "zakotfs rx")
    if progress is not None and not args.workers:
        phase("rx", f"decoding {args.input}")
    try:
        if args.workers:
            extra["scaleout"], extra["stopped_by"] = _run_workers(args, config, source, acquirer, session, options)
        else:
            process, allocate = stream_process(receiver, args.batch)
            if args.recalibrate:
                recalibrator = Recalibrator(config, args.recalibrate, sample_clock_ppm=receiver.sample_clock_ppm,
                                            cfo_offset_hz=receiver.cfo_offset_hz)
                acquirer = Recalibration(acquirer, recalibrator, getattr(process, "retune", receiver.retune))
            runner = PipelineRunner(
                source, acquirer.push, process, session.consume, acquire_flush=acquirer.flush, acquire_gap=acquirer.skip,
                before_batch=getattr(acquirer, "before_batch", None),
                allocate=allocate, queue_frames=args.queue, policy=args.policy, batch_frames=args.batch,
                max_frames=args.frames, stall_timeout_s=args.idle_timeout, stall_action="exit",
                start_timeout_s=args.start_timeout,
                progress=None if progress is None else lambda _: progress(session))
            extra["runner"] = runner.run().to_dict()
            session.lost = max(session.lost, extra["runner"].pop("frames_lost")) + extra["runner"]["frames_dropped"]
            del extra["runner"]["source"]                         # the report's "source"
            extra["stopped_by"] = stop_reason(extra["runner"].pop("stopped_by"))
            if args.recalibrate:
                extra["recalibration"] = {"every": args.recalibrate, "retunes": recalibrator.retunes}
    finally:
        if hasattr(process, "close"):
            process.close()
        close_sink()
        source.close()
    if progress is not None:
        progress(session)
        progress.close()
    report = session.report({"acquisition": acquirer.stats, "source": source.stats(),
                             "link_mbps": config.throughput_wire_bps / 1e6, "calibration": calibration, **extra})
    emit(report, args)
    status, reason = rx_outcome(report, args.input)
    if reason:
        print(f"zakotfs rx: {reason} (exit status {int(status)})", file=sys.stderr)
    return status


def _print_calibration(calibration: dict) -> None:
    ppm, cfo, applied = calibration["sample_clock_ppm"], calibration["preamble_cfo_hz"], calibration["applied"]
    print(f"zakotfs rx: calibrated on {calibration['frames']} frames: sample clock "
          + ("unknown" if ppm is None else f"{ppm:+.2f} ppm") + ", preamble CFO "
          + ("unknown" if cfo is None else f"{cfo:.0f} Hz")
          + f"; set {', '.join(f'{k} {v:g}' for k, v in applied.items()) or 'nothing'}", file=sys.stderr)


def _recording(target: str, config: FrameConfig):
    """The ``--record`` writer: a sample file by suffix (``streaming.io.open_sink``)."""
    if is_endpoint(target):
        raise UsageError(f"--record {target!r}: expected a file (FILE.h5, FILE.sigmf-meta, FILE.cfile, ...)")
    try:
        return open_sink(target, config)
    except ValueError as exc:
        raise UsageError(f"--record: {exc}") from None


def _result_sink(target: str | None, config: FrameConfig, llr_step: float | None = None, command: str | None = None):
    """(sink(result, metas), close()) for ``--out``: a ZeroMQ result publisher or an HDF5
    result file (storing ``command``); (None, a no-op) without one."""
    if target is None:
        return None, lambda: None
    if is_endpoint(target):
        sink = ResultPublisher(target, "pub", payload="both")
    elif target.endswith((".h5", ".hdf5")):
        sink = ResultFileWriter(target, config, llr_step, command=command)
    else:
        raise UsageError(f"--out {target!r}: expected FILE.h5 or a tcp:// / ipc:// endpoint")
    return sink, sink.close


def _run_workers(args, config: FrameConfig, source, acquirer, session: LinkStats, options: dict) -> tuple[dict, str]:
    """``--workers``: the frames decoded by worker processes with this command's receiver
    ``options`` (``--fanout``/``--collect`` for workers on other machines; ``--out`` has
    them send LLRs too). Returns (the scale-out's statistics, why the input stopped)."""
    watch = InputWatch(args.start_timeout, args.idle_timeout)
    try:
        stats = run_workers(source, acquirer, session.consume, config, options, workers=args.workers,
                            fanout=args.fanout, collect=args.collect, payload="both" if args.out else "bits",
                            batch=args.batch, max_frames=args.frames, watch=watch, on_lost=session.add_lost)
    except WorkersNotConnected as exc:
        raise UsageError(str(exc)) from None
    return stats, stop_reason(watch.stopped_by or ("max_frames" if args.frames is not None else None))
