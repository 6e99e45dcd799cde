"""Pipeline runner: ingest -> acquire -> (bounded queue) -> batched compute -> output.

Three threads joined by bounded queues::

    ingest:  source.read() -> acquire(samples) -> frames ──► frame queue (queue_frames)
    compute: up to batch_frames frames -> process(batch [F, L]) ──► result queue
    output:  sink(result, frame_meta)

* Compute takes what is queued, up to ``batch_frames``, without waiting for more while
  nothing is in flight (the lowest latency at a light load); while a batch is in flight it
  submits the next one only once ``batch_frames`` are queued (under load, batches fill, so
  the per-call cost is paid once a full batch).
* Ingest never waits on compute while the frame queue has room. When it is full, the
  ``policy`` decides: ``"drop-oldest"`` (default: keep the freshest frames, the right choice
  for a live link), ``"drop-newest"`` (keep the backlog), or ``"block"`` (lossless for files;
  on a live stream the loss then moves upstream to the socket's high-water mark). Every
  dropped frame is counted in ``stats.frames_dropped``, never dropped silently.
* Frames reported lost upstream by the acquisition (``meta["lost_before"]``, frames missed
  before this one) are summed in ``stats.frames_lost``.
* ``stop()`` (any thread), Ctrl-C in the thread running :meth:`run`, end of a file source,
  ``max_frames`` or a stall with ``stall_action="exit"`` stop the ingest; frames already
  queued are still processed and output (``stop(drain=False)`` discards them, counted as
  dropped), then :meth:`run` returns the statistics (and writes them to ``stats_file``).
* No samples for ``stall_timeout_s`` once samples have come: logged and counted
  (``stats.stalls``); the runner keeps waiting (``stall_action="wait"``) or stops
  (``"exit"``). Before the first sample it waits for the sender, however late it starts,
  unless ``start_timeout_s`` is given (then it stops, ``stopped_by="no_input"``, and logs
  what ``source.silence()`` says about it, where the source has that method).
* Progress: ``progress(Progress)`` is called about every ``progress_interval_s`` from the
  thread running :meth:`run`.
* An exception in acquire, process or sink stops the pipeline; :meth:`run` re-raises it as
  :class:`PipelineError` after the threads have stopped (``stats.error`` holds it).

Contracts of the stages (the acquisition and the receiver come from their own modules):

* ``source.read() -> complex64 [n] | None`` (None: nothing yet), ``source.eof`` (True when no
  more samples will come), optionally ``source.stats() -> dict`` and ``source.missing() ->
  int`` (samples lost in transport just before the last read's, e.g. a pass_tags offset
  jump), which goes to ``acquire_gap(n)`` before those samples go to ``acquire``.
* ``acquire(samples: complex64 [n]) -> list[(frame: complex64 [L], meta: dict)]`` with
  ``L = cp_len + M N``; acquisition state lives inside the callable (e.g.
  ``FrameAcquirer(config).push``, with ``acquire_flush=acquirer.flush`` to emit the last
  frame whenever the ingest stops: a file's end, a stall, ``stop()``, an interrupt).
* ``process(frames: complex64 [F, L]) -> result`` with ``result.bits`` uint8 [F, B] and
  ``result.llr`` float32 [F, B] (B = bits_per_frame); F <= ``batch_frames``. Or a pipeline
  (``zakotfs.pipelined.PipelinedReceiver``): ``submit(frames)`` starts a batch,
  ``collect() -> result`` waits for the oldest, up to ``depth`` batches in flight (None:
  the batch could not be computed, its frames counted in ``stats.frames_failed``). Compute
  collects when the pipeline is full or fewer than ``batch_frames`` frames wait (a partial
  batch goes only into an idle pipeline), so an idle link still gets each batch's results
  at once. The sink reads a
  result on its own thread while later batches run: ``collect`` must return arrays it does
  not overwrite (``PipelinedReceiver(copy=True)``).
* ``sink(result, frame_meta: list[dict])``; each meta gets ``seq`` (if absent), ``t_ingest``,
  ``t_done`` (``time.perf_counter`` seconds) and ``latency_us`` (ingest to done).

GPU note: batches are assembled in ``max(n_buffers, depth + 1)`` preallocated host buffers
made by ``allocate(shape, dtype)`` (default ``np.empty``). A GPU backend passes a
pinned-memory allocator (e.g. ``cupyx.empty_pinned``), so that a pipeline's asynchronous
host-to-device copy of batch k+1 runs at full rate while batch k computes. A buffer is
reused only after the batch that received it was collected (or, for ``process``, returned).
"""
from __future__ import annotations

import json
import logging
import queue
import threading
import time
from collections import deque
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

import numpy as np

from zakotfs.pipelined import SerialPipeline

from .read_loop import InputWatch

__all__ = ["PipelineRunner", "RunnerStats", "Progress", "PipelineError", "POLICIES"]

logger = logging.getLogger(__name__)

POLICIES = ("drop-oldest", "drop-newest", "block")
_POLL_S = 0.05
_LATENCY_WINDOW = 1_000_000     # latency percentiles cover the most recent frames


class PipelineError(RuntimeError):
    """A stage raised; the original exception is the ``__cause__``."""


@dataclass
class RunnerStats:
    """Counters of one run (``to_dict()`` for JSON).

    frames_in: frames the acquisition produced; frames_dropped: discarded by the queue
    policy (or by ``stop(drain=False)``); frames_processed: went through ``process``;
    frames_out: handed to the sink; frames_lost: reported lost by the acquisition
    (``meta["lost_before"]``); frames_failed: submitted to a pipeline that could not compute
    them (its ``collect`` returned None: a scale-out actor died and the batch could not be
    re-run).
    latency_us: per-frame ingest-to-done percentiles (over the last million frames).
    """

    samples_in: int = 0
    reads: int = 0
    frames_in: int = 0
    frames_dropped: int = 0
    frames_processed: int = 0
    frames_out: int = 0
    frames_lost: int = 0
    frames_failed: int = 0
    batches: int = 0
    stalls: int = 0
    stall_s: float = 0.0
    wall_s: float = 0.0
    stopped_by: str | None = None
    error: str | None = None
    latency_us: dict = field(default_factory=dict)
    source: dict = field(default_factory=dict)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class Progress:
    """Snapshot passed to the progress callback."""

    elapsed_s: float
    frames_out: int
    frames_per_s: float
    samples_per_s: float
    frames_dropped: int
    frames_lost: int
    queued: int


class PipelineRunner:
    """Run source -> acquire -> process -> sink on three threads (see the module docstring).

    Parameters
    ----------
    source, acquire, process, sink
        The stages (``process``: a callable or a pipeline, module doc).
    acquire_flush : callable() -> list[(frame, meta)] or None
        Called once when the ingest stops, for the frames the acquisition still holds: at a
        file's end, a stall, no input, ``stop()`` or an interrupt that drains (not after
        ``max_frames`` or an abort).
    acquire_gap : callable(int) -> list[(frame, meta)] or None
        Told of the samples a source's ``missing()`` reports lost (``FrameAcquirer.skip``).
    queue_frames : int
        Capacity of the frame queue between ingest and compute.
    policy : {"drop-oldest", "drop-newest", "block"}
        What ingest does with a frame when the queue is full.
    batch_frames : int
        Most frames per ``process`` call (module doc: a partial batch only into an idle
        pipeline).
    frame_len : int or None
        L, samples per frame; None takes it from the first frame.
    result_queue : int
        Batches that may wait for the sink.
    max_frames : int or None
        Stop after this many acquired frames.
    stall_timeout_s : float
    stall_action : {"wait", "exit"}
    start_timeout_s : float or None
        Stop when no sample has come this long after the start (None: wait).
    progress : callable(Progress) or None
    progress_interval_s : float
    stats_file : path or None
        Where :meth:`run` writes the final statistics as JSON.
    allocate : callable(shape, dtype) -> array
        Host batch buffer allocator (pinned memory for a GPU backend).
    n_buffers : int
        Batch buffers in rotation (2: double buffering), at least the pipeline's depth + 1.
    before_batch : callable(list[dict]) -> int or None, or None
        Called on the compute thread with a batch's metas, in order, just before the batch
        is submitted (a change to ``process`` that must hold from a given frame on). It
        returns how many leading frames go into this batch (at least 1; the rest lead the
        next one), or None for all: a change due from a frame in the middle of the batch
        then starts the next batch.
    """

    def __init__(self, source, acquire: Callable, process: Callable, sink: Callable, *,
                 acquire_flush: Callable | None = None, acquire_gap: Callable | None = None, queue_frames: int = 64,
                 policy: str = "drop-oldest", batch_frames: int = 1,
                 frame_len: int | None = None, result_queue: int = 4,
                 max_frames: int | None = None, stall_timeout_s: float = 5.0,
                 stall_action: str = "wait", start_timeout_s: float | None = None,
                 progress: Callable[[Progress], Any] | None = None,
                 progress_interval_s: float = 1.0, stats_file: str | Path | None = None,
                 allocate: Callable = np.empty, n_buffers: int = 2, before_batch: Callable | None = None):
        for name, value in (("queue_frames", queue_frames), ("batch_frames", batch_frames),
                            ("result_queue", result_queue), ("n_buffers", n_buffers)):
            if not isinstance(value, (int, np.integer)) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if policy not in POLICIES:
            raise ValueError(f"policy must be one of {', '.join(POLICIES)}, got {policy!r}")
        if stall_action not in ("wait", "exit"):
            raise ValueError(f"stall_action must be 'wait' or 'exit', got {stall_action!r}")
        if not stall_timeout_s > 0:
            raise ValueError(f"stall_timeout_s must be > 0, got {stall_timeout_s!r}")
        if start_timeout_s is not None and not start_timeout_s > 0:
            raise ValueError(f"start_timeout_s must be None or > 0, got {start_timeout_s!r}")
        if not progress_interval_s > 0:
            raise ValueError(f"progress_interval_s must be > 0, got {progress_interval_s!r}")
        if max_frames is not None and max_frames < 1:
            raise ValueError(f"max_frames must be None or >= 1, got {max_frames!r}")
        if frame_len is not None and frame_len < 1:
            raise ValueError(f"frame_len must be None or >= 1, got {frame_len!r}")
        self.source, self.acquire, self.process, self.sink = source, acquire, process, sink
        self.acquire_flush = acquire_flush
        self._missing = getattr(source, "missing", None) if acquire_gap is not None else None
        self.acquire_gap = acquire_gap
        self.policy = policy
        self.batch_frames = int(batch_frames)
        self.frame_len = frame_len
        self.max_frames = max_frames
        self.stall_timeout_s = float(stall_timeout_s)
        self.stall_action = stall_action
        self.start_timeout_s = start_timeout_s
        self.progress = progress
        self.progress_interval_s = float(progress_interval_s)
        self.stats_file = None if stats_file is None else Path(stats_file)
        self._allocate = allocate
        self.before_batch = before_batch
        self._n_buffers = int(n_buffers)
        self.stats = RunnerStats()
        self._frames: queue.Queue = queue.Queue(maxsize=int(queue_frames))
        self._results: queue.Queue = queue.Queue(maxsize=int(result_queue))
        self._stop = threading.Event()          # stop ingesting
        self._abort = threading.Event()         # stop everything now
        self._ingest_done = threading.Event()
        self._compute_done = threading.Event()
        self._output_done = threading.Event()
        self._lock = threading.Lock()           # stats counters written by several threads
        self._latencies: deque[float] = deque(maxlen=_LATENCY_WINDOW)
        self._error: BaseException | None = None
        self._threads: list[threading.Thread] = []
        self._t0 = 0.0

    # ---- control ---------------------------------------------------------------------------
    def start(self) -> None:
        """Start the three threads and return."""
        if self._threads:
            raise RuntimeError("a PipelineRunner runs once; make a new one")
        self._t0 = time.perf_counter()
        stages = (("ingest", self._ingest, self._ingest_done),
                  ("compute", self._compute, self._compute_done),
                  ("output", self._output, self._output_done))
        self._threads = [threading.Thread(target=self._guard, args=(fn, done), daemon=True,
                                          name=f"zakotfs-{name}") for name, fn, done in stages]
        for thread in self._threads:
            thread.start()

    def stop(self, *, drain: bool = True, reason: str = "stop") -> None:
        """Stop ingesting (thread-safe); ``drain=False`` also discards queued frames."""
        with self._lock:
            if self.stats.stopped_by is None:
                self.stats.stopped_by = reason
        self._stop.set()
        if not drain:
            self._abort.set()

    def run(self) -> RunnerStats:
        """Start (if needed), wait for the end, return the statistics.

        Ctrl-C (KeyboardInterrupt, or a signal handler that raises it) here stops the ingest
        and drains; a second one abandons the queued frames.
        """
        if not self._threads:
            self.start()
        next_progress = time.perf_counter() + self.progress_interval_s
        interrupts, pending = 0, None
        while True:
            try:            # an interrupt is handled inside the try: one during the handling is caught too
                if pending is not None:
                    interrupts, exc, pending = interrupts + 1, pending, None
                    self.stop(drain=interrupts == 1, reason="interrupt")
                    logger.warning("interrupted (%s): %s", exc or "SIGINT",
                                   "draining queued frames (a second signal abandons them)"
                                   if interrupts == 1 else "abandoning queued frames")
                # each stage's event, not Thread.join: a signal that interrupts join() can mark
                # a live thread stopped (CPython 3.11's Thread._wait_for_tstate_lock releases
                # the lock the running thread holds), and the files would close under it
                while not all(done.is_set() for done in (self._ingest_done, self._compute_done, self._output_done)):
                    self._output_done.wait(_POLL_S)
                    if self.progress is not None and time.perf_counter() >= next_progress:
                        next_progress += self.progress_interval_s
                        self.progress(self.snapshot())
                break
            except KeyboardInterrupt as exc:        # Ctrl-C, or a signal handler raising it (SIGTERM)
                pending = exc
        self._finish()
        if self._error is not None:
            raise PipelineError(f"pipeline stage failed: {self.stats.error}") from self._error
        return self.stats

    def snapshot(self) -> Progress:
        elapsed = max(time.perf_counter() - self._t0, 1e-9)
        with self._lock:
            s = self.stats
            return Progress(elapsed, s.frames_out, s.frames_out / elapsed, s.samples_in / elapsed,
                            s.frames_dropped, s.frames_lost, self._frames.qsize())

    def _finish(self) -> None:
        self._discard_queued()         # what ingest queued after compute stopped (abort), counted
        s = self.stats
        s.wall_s = time.perf_counter() - self._t0
        if self._latencies:
            lat = np.asarray(self._latencies)
            s.latency_us = {"p50": float(np.percentile(lat, 50)), "p99": float(np.percentile(lat, 99)),
                            "p999": float(np.percentile(lat, 99.9)), "max": float(lat.max())}
        source_stats = getattr(self.source, "stats", None)
        if callable(source_stats):
            s.source = dict(source_stats())
        elif source_stats is not None and hasattr(source_stats, "to_dict"):
            s.source = source_stats.to_dict()
        if self.stats_file is not None:
            self.stats_file.write_text(json.dumps(s.to_dict(), indent=2, default=str))
        logger.info("pipeline stopped (%s): %d frames out, %d dropped, %d lost, %.2f s",
                    s.stopped_by, s.frames_out, s.frames_dropped, s.frames_lost, s.wall_s)

    def _guard(self, body: Callable[[], None], done: threading.Event) -> None:
        try:
            body()
        except BaseException as exc:       # noqa: BLE001 - reported by run()
            logger.exception("pipeline stage %s failed", threading.current_thread().name)
            with self._lock:
                if self._error is None:
                    self._error = exc
                    self.stats.error = f"{type(exc).__name__}: {exc}"
                    self.stats.stopped_by = "error"
            self._stop.set()
            self._abort.set()
        finally:
            done.set()

    # ---- ingest ----------------------------------------------------------------------------
    def _ingest(self) -> None:
        watch = InputWatch(self.start_timeout_s, self.stall_timeout_s)
        stalled = False
        while not self._stop.is_set():
            t_read = time.perf_counter()
            samples = self.source.read()
            now = time.perf_counter()
            if samples is None or samples.size == 0:
                if getattr(self.source, "eof", False):
                    self.stop(reason="eof")
                    break
                if now - t_read < 1e-3:          # a source that does not wait: do not spin
                    time.sleep(_POLL_S / 5)
                expired = watch.expired(now)
                if expired == "no_input":
                    silence = self.source.silence() if hasattr(self.source, "silence") else ""
                    logger.warning("no samples within %.1f s of the start%s; stopping", watch.idle_s(now),
                                   f": {silence}" if silence else "")
                    self.stop(reason="no_input")
                elif expired == "stall" and not stalled:
                    stalled = True
                    with self._lock:
                        self.stats.stalls += 1
                    logger.warning("no samples for %.1f s (stall %d)%s", watch.idle_s(now), self.stats.stalls,
                                   "; stopping" if self.stall_action == "exit" else "")
                    if self.stall_action == "exit":
                        self.stop(reason="stall")
                continue
            idle = watch.arrived(now)
            if stalled:
                stalled = False
                with self._lock:
                    self.stats.stall_s += idle
                logger.info("samples again after %.1f s", idle)
            with self._lock:
                self.stats.reads += 1
                self.stats.samples_in += samples.size
            missing = self._missing() if self._missing is not None else 0
            self._enqueue_all((self.acquire_gap(missing) if missing else []) + self.acquire(samples))
        if stalled:
            with self._lock:
                self.stats.stall_s += watch.idle_s()
        if self.acquire_flush is not None and not self._abort.is_set() and self.stats.stopped_by != "max_frames":
            self._enqueue_all(self.acquire_flush())

    def _enqueue_all(self, found) -> None:
        """Queue the frames ``found`` in order, up to ``max_frames``."""
        for frame, meta in found:
            if self._enqueue(frame, meta):
                break

    def _enqueue(self, frame: np.ndarray, meta: dict) -> bool:
        """Queue one frame by the policy; True when max_frames is reached."""
        with self._lock:
            meta.setdefault("seq", self.stats.frames_in)
            meta["t_ingest"] = time.perf_counter()
            self.stats.frames_in += 1
            self.stats.frames_lost += int(meta.get("lost_before", 0))
            limit_reached = self.max_frames is not None and self.stats.frames_in >= self.max_frames
        item = (frame, meta)
        if self.policy == "block":
            while not self._abort.is_set():
                try:
                    self._frames.put(item, timeout=_POLL_S)
                    break
                except queue.Full:
                    continue
            else:
                self._count_dropped(1)
        else:
            try:
                self._frames.put_nowait(item)
            except queue.Full:
                if self.policy == "drop-newest":
                    self._count_dropped(1)
                else:
                    try:                               # single producer: room after one get
                        self._frames.get_nowait()
                        self._count_dropped(1)
                    except queue.Empty:
                        pass
                    self._frames.put_nowait(item)
        if limit_reached:
            self.stop(reason="max_frames")
        return limit_reached

    def _count_dropped(self, n: int) -> None:
        with self._lock:
            self.stats.frames_dropped += n

    # ---- compute ---------------------------------------------------------------------------
    def _compute(self) -> None:
        pipeline = self.process if hasattr(self.process, "submit") else SerialPipeline(self.process)
        n_buffers = max(self._n_buffers, pipeline.depth + 1)      # one filling, depth in flight
        buffers: list[np.ndarray] = []
        in_flight: deque[list[dict]] = deque()                     # metas per batch, oldest first
        held: list = []                                             # frames that lead the next batch
        turn = 0
        while True:
            if self._abort.is_set():
                self._count_dropped(sum(map(len, in_flight)) + len(held))
                self._discard_queued()
                return
            # a partial batch only into an idle pipeline: while one computes, frames gather
            if in_flight and (len(in_flight) == pipeline.depth
                              or len(held) + self._frames.qsize() < self.batch_frames):
                self._emit(pipeline.collect(), in_flight.popleft())
                continue
            if held:
                items, held = held, []
            else:
                try:
                    items = [self._frames.get(timeout=_POLL_S)]
                except queue.Empty:
                    if self._ingest_done.is_set() and self._frames.empty():
                        return
                    continue
            first = items[0]
            while len(items) < self.batch_frames:
                try:
                    items.append(self._frames.get_nowait())
                except queue.Empty:
                    break
            if self.frame_len is None:
                self.frame_len = int(np.asarray(first[0]).shape[-1])
            if not buffers:
                buffers = [self._allocate((self.batch_frames, self.frame_len), np.complex64)
                           for _ in range(n_buffers)]
            batch = buffers[turn % n_buffers]
            turn += 1
            for i, (frame, _) in enumerate(items):
                if np.shape(frame) != (self.frame_len,):
                    raise ValueError(f"acquire returned a frame of shape {np.shape(frame)}, "
                                     f"expected ({self.frame_len},)")
                batch[i] = frame
            metas = [meta for _, meta in items]
            take = None if self.before_batch is None else self.before_batch(metas)
            if take is not None and take < len(items):
                items, held, metas = items[:take], items[take:], metas[:take]
            pipeline.submit(batch[:len(items)])
            in_flight.append(metas)

    def _emit(self, result, metas: list[dict]) -> None:
        """Stamp a processed batch's metas and queue it for the sink (on abort: count it
        dropped; a None ``result``: count it failed)."""
        if result is None:
            with self._lock:
                self.stats.frames_failed += len(metas)
            return
        t_done = time.perf_counter()
        for meta in metas:
            meta["t_done"] = t_done
            meta["latency_us"] = (t_done - meta["t_ingest"]) * 1e6
        with self._lock:
            self.stats.frames_processed += len(metas)
            self.stats.batches += 1
            self._latencies.extend(m["latency_us"] for m in metas)
        while not self._abort.is_set():
            try:
                self._results.put((result, metas), timeout=_POLL_S)
                return
            except queue.Full:
                continue
        self._count_dropped(len(metas))

    def _discard_queued(self) -> None:
        n = 0
        while True:
            try:
                self._frames.get_nowait()
                n += 1
            except queue.Empty:
                break
        if n:
            self._count_dropped(n)

    # ---- output ----------------------------------------------------------------------------
    def _output(self) -> None:
        while not self._abort.is_set() or not self._results.empty():
            try:
                result, metas = self._results.get(timeout=_POLL_S)
            except queue.Empty:
                if self._compute_done.is_set() and self._results.empty():
                    return
                continue
            self.sink(result, metas)
            with self._lock:
                self.stats.frames_out += len(metas)
