"""``zakotfs rx``: the receiver on a file or a ZeroMQ stream: ingest and acquisition,
compute and output on their own threads (``streaming.runner``), compute in this process or,
with ``--workers``/``--cluster``, in receiver actors on Ray (``streaming.actor_pool``);
optionally calibrated on the first frames and recalibrated during the stream
(``streaming.calibration``)."""
from __future__ import annotations

import argparse
import json
import sys

import numpy as np

from dsp_kernels import get_backend
from streaming.acquisition import FrameAcquirer
from streaming.calibration import Recalibration, held_first, hold_frames
from streaming.io import RecordingSource, open_sink
from streaming.link_stats import LinkStats, stop_reason
from streaming.read_loop import InputWatch
from streaming.result_file import ResultFileWriter
from streaming.runner import PipelineRunner
from streaming.zmq_io import ResultPublisher, is_endpoint

from ..calibration import Recalibrator, calibrate
from ..config import FrameConfig
from ..modulation import LLR_INT8_STEP
from ..pipelined import stream_process
from .exit_status import rx_outcome
from .options import (UsageError, backend_option, count, default_batch, default_queue, frame_options, make_receiver,
                      open_input, output_path, positive_int, resources, receiver_option_group, receiver_options,
                      resolve_config, sample_format_options, start_timeout_option)
from .summary import emit, frame_progress, phase


def add_parser(sub) -> None:
    p = sub.add_parser("rx", help="the receiver on a file or a ZeroMQ stream")
    frame_options(p, default_preset=None)
    backend_option(p)
    receiver_option_group(p)
    p.add_argument("--in", dest="input", action="append", required=True,
                   help="a file or a ZeroMQ endpoint; given several times (with --workers/--cluster), one stream "
                        "each on the same receiver actors, each with its own acquisition and report, and its own "
                        "--out, --report, --truth and --record where given (once per --in, in its order)")
    p.add_argument("--truth", action="append", help="FILE.h5 with /truth/bits, for BER (read once it exists)")
    p.add_argument("--report", type=output_path, action="append", help="JSON report file")
    p.add_argument("--frames", type=positive_int, help="stop after N frames")
    p.add_argument("--out", type=output_path, action="append",
                   help="decoded bits and LLRs: FILE.h5 or a ZeroMQ endpoint")
    p.add_argument("--pattern", default="sub", choices=["sub", "pull"], help="ZeroMQ input pattern")
    p.add_argument("--record", type=output_path, action="append",
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
    p.add_argument("--queue", type=positive_int,
                   help="frames queued between ingest and compute (default: 4 batches, at least 64, and "
                        "half a second of frames where that takes under 256 MiB)")
    p.add_argument("--policy", default="drop-oldest", choices=["drop-oldest", "drop-newest", "block"],
                   help="when compute falls behind (drops are counted in the report)")
    p.add_argument("--workers", type=count, default=0,
                   help="scale out: K receiver actors on Ray, one a GPU (or one a CPU core where there is no GPU), "
                        "on a local Ray instance or on --cluster's; 0: the receiver in this process")
    p.add_argument("--cluster", metavar="ADDRESS",
                   help="join the Ray cluster whose head is at HOST:PORT (or auto) and place the receiver actors "
                        "on it (default --workers: one a GPU of the cluster, else one a CPU)")
    p.add_argument("--actor-resources", type=resources, metavar="JSON",
                   help="custom Ray resources each receiver actor needs, e.g. '{\"cell3\": 1}' to place them on "
                        "the nodes started with ray start --resources '{\"cell3\": 4}' (the node that ingests)")
    p.add_argument("--json", action="store_true")
    sample_format_options(p, read=True, write=False)
    p.set_defaults(func=run)


PER_STREAM = ("input", "out", "report", "truth", "record")
"""The options that each input (``--in``) has its own of."""


def run(args) -> int:
    if args.recalibrate and args.recalibrate < 3:
        raise UsageError(f"--recalibrate K needs K >= 3 frames (the clock is read off their period), got {args.recalibrate}")
    scaleout = bool(args.workers or args.cluster)
    if args.actor_resources and not scaleout:
        raise UsageError("--actor-resources places receiver actors: only with --workers/--cluster")
    if args.recalibrate and scaleout:
        raise UsageError("--recalibrate retunes the receiver in this process: not with --workers/--cluster")
    streams = _per_stream(args)
    if len(streams) > 1 and not scaleout:
        raise UsageError(f"{len(streams)} inputs (--in) share one pool of receiver actors: give --workers K or --cluster")
    if len(streams) > 1 and args.calibrate:
        raise UsageError("--calibrate tunes the receiver to one input: not with several --in")
    inputs = [_Input(stream) for stream in streams]
    config, options = inputs[0].config, inputs[0].options
    if any(i.config != config for i in inputs[1:]):
        raise UsageError("the inputs (--in) carry different frame configurations: one pool of receivers decodes one")
    if not args.json:
        phase("rx", f"{config.summary()}; " + ("starting the receiver actors on Ray" if scaleout
                                                else "building the receiver (compiling and warming up)"))
    receiver = None if scaleout else make_receiver(config, options, args.batch)
    backend = receiver.backend if receiver else get_backend(args.backend, quiet=True)
    args.batch = args.batch or (default_batch(backend.name) if receiver else 1)
    for i in inputs:
        i.args.batch = args.batch
    process = None
    try:
        if scaleout:
            process, allocate = _actor_pool(args, config, options), np.empty
        else:
            process, allocate = stream_process(receiver, args.batch)
        lanes = [process] + [process.stream(i.args.input) for i in inputs[1:]]
        if len(inputs) > 1:
            process.streams[0].name = inputs[0].args.input
        progress = None if args.json or len(inputs) > 1 else frame_progress(args.frames, "zakotfs rx")
        for i, lane in zip(inputs, lanes):
            i.start(lane, allocate, backend, receiver, progress)
        if not args.json:
            phase("rx", f"decoding {', '.join(i.args.input for i in inputs)}")
        for i in inputs:
            if i.run() == "interrupt":
                for other in inputs:
                    other.runner.stop(reason="interrupt")
        if scaleout:
            scaleout_stats = process.stats()
            for k, i in enumerate(inputs):
                i.extra["scaleout"] = ({**{key: v for key, v in scaleout_stats.items() if key != "streams"},
                                        **scaleout_stats["streams"][k]} if len(inputs) > 1 else scaleout_stats)
    finally:
        if hasattr(process, "close"):
            process.close()
        for i in inputs:
            i.close()
    if progress is not None:
        progress(inputs[0].session)
        progress.close()
    reports = [i.report() for i in inputs]
    several = len(inputs) > 1
    for i, report in zip(inputs, reports):
        if several and not args.json:
            print(f"zakotfs rx: {i.args.input}")
        emit(report, i.args, show=not (several and args.json))
    if several and args.json:
        print(json.dumps({"streams": reports}, indent=2, default=float))
    return max(i.outcome(report) for i, report in zip(inputs, reports))


def _per_stream(args) -> list:
    """One namespace of ``args`` per ``--in``, each with its own value of ``PER_STREAM`` (None
    where not given); UsageError where one of those is given, but not once per ``--in``."""
    n = len(args.input)
    for name in PER_STREAM[1:]:
        given = getattr(args, name) or []
        if len(given) > 1 and len(given) != n or (n > 1 and len(given) == 1):
            raise UsageError(f"--{name}: {len(given)} given for {n} inputs (--in); give one per --in")
    return [argparse.Namespace(**{**vars(args), **{name: (getattr(args, name) or [None] * n)[k] for name in PER_STREAM}})
            for k in range(n)]


class _Input:
    """One input of ``rx``: its source (recorded with ``--record``), configuration, truth,
    acquisition and calibration; then (:meth:`start`) its link statistics, ``--out`` and
    runner on a receiver or a stream of the actor pool; its report and exit status."""

    def __init__(self, args):
        self.args = args
        source = self.source = open_input(args.input, args, args.pattern)
        config = self.config = resolve_config(args, None if getattr(source, "config_given", False) else source.config)
        self.truth = None if args.truth else getattr(source, "truth_bits", None)
        if args.record:
            self.source = RecordingSource(source, _recording(args.record, config))
        acquirer = FrameAcquirer(config)
        self.options = receiver_options(args)
        self.calibration, held = None, []
        if args.calibrate:
            held = hold_frames(self.source, acquirer, args.calibrate, InputWatch(args.start_timeout, args.idle_timeout))
            self.calibration = calibrate(config, [meta for _, meta in held[:args.calibrate]],
                                         sample_clock_ppm=args.sample_clock_ppm, cfo_offset_hz=args.cfo_offset)
            self.options.update(self.calibration["applied"])
            if not args.json:
                _print_calibration(self.calibration)
        self.acquirer = held_first(acquirer, held)
        self.extra: dict = {}
        self.session = self.runner = self.recalibrator = None
        self.close_sink = lambda: None

    def start(self, process, allocate, backend, receiver, progress) -> None:
        """Open ``--out`` and make the runner of this input on ``process`` (a receiver, a
        pipeline or a stream of the actor pool)."""
        args, config = self.args, self.config
        sink, self.close_sink = _result_sink(args.out, config, LLR_INT8_STEP if args.llr == "int8" else None,
                                             command=args.command_line)
        session = self.session = LinkStats(config, backend, args.estimator, truth_bits=self.truth, sink=sink,
                                           truth_path=args.truth, command=args.command_line,
                                           cfo_offset_hz=self.options["cfo_offset_hz"],
                                           sample_clock_ppm=self.options["sample_clock_ppm"])
        acquirer = self.acquirer
        if args.recalibrate:
            self.recalibrator = Recalibrator(config, args.recalibrate, sample_clock_ppm=receiver.sample_clock_ppm,
                                             cfo_offset_hz=receiver.cfo_offset_hz)
            acquirer = Recalibration(acquirer, self.recalibrator, getattr(process, "retune", receiver.retune))
        self.runner = PipelineRunner(
            self.source, acquirer.push, process, session.consume, acquire_flush=acquirer.flush,
            acquire_gap=acquirer.skip, before_batch=getattr(acquirer, "before_batch", None),
            allocate=allocate, queue_frames=args.queue or default_queue(config, args.batch),
            policy=args.policy, batch_frames=args.batch,
            max_frames=args.frames, stall_timeout_s=args.idle_timeout, stall_action="exit",
            start_timeout_s=args.start_timeout,
            progress=None if progress is None else lambda _: progress(session))
        self.runner.start()

    def run(self) -> str:
        """Wait for the runner's end and take its counts; why it stopped."""
        stats = self.runner.run().to_dict()
        stopped_by = stats.pop("stopped_by")
        self.session.lost = (max(self.session.lost, stats.pop("frames_lost")) + stats["frames_dropped"]
                             + stats["frames_failed"])
        del stats["source"]                                   # the report's "source"
        self.extra.update(runner=stats, stopped_by=stop_reason(stopped_by))
        if self.recalibrator is not None:
            self.extra["recalibration"] = {"every": self.args.recalibrate, "retunes": self.recalibrator.retunes}
        return stopped_by

    def close(self) -> None:
        self.close_sink()
        self.source.close()

    def report(self) -> dict:
        return self.session.report({"acquisition": self.acquirer.stats, "source": self.source.stats(),
                                    "link_mbps": self.config.throughput_wire_bps / 1e6,
                                    "calibration": self.calibration, **self.extra})

    def outcome(self, report: dict) -> int:
        """The exit status of this input's ``report`` (with its line on stderr)."""
        status, reason = rx_outcome(report, self.args.input)
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


def _actor_pool(args, config: FrameConfig, options: dict):
    """``--workers``/``--cluster``: the receiver actors on Ray (``streaming.actor_pool``,
    imported here only, so that the other commands do not pay Ray's import), started with
    this command's receiver ``options`` and ``--batch``; their results carry LLRs where an
    ``--out`` writes them."""
    from streaming.actor_pool import ActorPool

    return ActorPool.start(config, options, address=args.cluster, actors=args.workers or None, batch=args.batch,
                           resources=args.actor_resources, llr=any(args.out or []))
