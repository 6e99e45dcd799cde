"""PipelineRunner with stub stages: drop policies, stop, Ctrl-C, stalls, errors, batching."""
import _thread
import json
import signal
import threading
import time

import numpy as np
import pytest

from streaming.runner import PipelineError, PipelineRunner, Progress

pytestmark = pytest.mark.timeout(30)

L = 64          # frame length of the stub framing


class ListSource:
    """Yields the given chunks, then eof; ``on_empty`` is called when it runs dry."""

    def __init__(self, chunks, on_empty=None):
        self.chunks = list(chunks)
        self.on_empty = on_empty
        self.eof = False

    def read(self):
        if self.chunks:
            return self.chunks.pop(0)
        if self.on_empty is not None:
            self.on_empty()
        self.eof = True
        return None

    def stats(self):
        return {"left": len(self.chunks)}


class EndlessSource:
    """A live stream: a chunk every call, never eof."""

    eof = False

    def __init__(self, n=L * 2):
        self.n = n

    def read(self):
        time.sleep(0.001)
        return np.zeros(self.n, np.complex64)


class FixedFramer:
    """Stub acquisition: back-to-back frames of L samples; frame k is filled with k;
    ``flush`` emits a last, shorter remainder zero-padded to L."""

    def __init__(self, frames_lost_every=None):
        self.buffer = np.zeros(0, np.complex64)
        self.count = 0
        self.frames_lost_every = frames_lost_every

    def __call__(self, samples):
        self.buffer = np.concatenate([self.buffer, samples])
        out = []
        while self.buffer.size >= L:
            frame, self.buffer = self.buffer[:L], self.buffer[L:]
            meta = {"seq": self.count}
            if self.frames_lost_every and self.count % self.frames_lost_every == 0:
                meta["lost_before"] = 1
            out.append((np.full(L, self.count, np.complex64) + 0 * frame, meta))
            self.count += 1
        return out

    def flush(self):
        if not self.buffer.size:
            return []
        self.buffer = np.zeros(0, np.complex64)
        self.count += 1
        return [(np.full(L, self.count - 1, np.complex64), {"seq": self.count - 1})]


class Result:
    def __init__(self, frames):
        self.bits = (frames.real[:, :8] > -1).astype(np.uint8)
        self.llr = frames.real[:, :8].astype(np.float32)


class Process:
    """Stub receiver: records batch shapes and frame numbers; optionally waits on a gate."""

    def __init__(self, gate=None, delay_s=0.0):
        self.gate, self.delay_s = gate, delay_s
        self.shapes, self.seen = [], []

    def __call__(self, frames):
        if self.gate is not None:
            assert self.gate.wait(10)
        time.sleep(self.delay_s)
        self.shapes.append(frames.shape)
        self.seen.extend(int(v) for v in frames[:, 0].real)
        return Result(frames)


class Sink:
    def __init__(self, notify_after=None):
        self.seqs = []
        self.event = threading.Event()
        self.notify_after = notify_after

    def __call__(self, result, metas):
        assert result.bits.shape[0] == len(metas)
        for meta in metas:
            assert meta["t_done"] >= meta["t_ingest"] and meta["latency_us"] >= 0
        self.seqs.extend(m["seq"] for m in metas)
        if self.notify_after is not None and len(self.seqs) >= self.notify_after:
            self.event.set()


def chunks_for(n_frames, seed=0):
    rng = np.random.default_rng(seed)
    stream = np.zeros(n_frames * L, np.complex64)
    return np.split(stream, np.sort(rng.choice(np.arange(1, stream.size), 40, replace=False)))


def test_block_policy_processes_every_frame_in_order(tmp_path):
    sink, process, framer = Sink(), Process(), FixedFramer(frames_lost_every=10)
    chunks = chunks_for(100) + [np.zeros(L // 2, np.complex64)]      # a last partial frame
    runner = PipelineRunner(ListSource(chunks), framer, process, sink,
                            acquire_flush=framer.flush, queue_frames=4, policy="block",
                            stats_file=tmp_path / "stats.json")
    stats = runner.run()
    assert sink.seqs == list(range(101)) and process.seen == list(range(101))
    assert (stats.frames_in, stats.frames_processed, stats.frames_out) == (101, 101, 101)
    assert stats.frames_dropped == 0 and stats.frames_lost == 10
    assert stats.stopped_by == "eof" and stats.samples_in == 100 * L + L // 2
    assert set(stats.latency_us) == {"p50", "p99", "p999", "max"}
    assert stats.source == {"left": 0}
    assert json.loads((tmp_path / "stats.json").read_text())["frames_out"] == 101


def test_drop_newest_keeps_the_backlog_and_counts_drops():
    gate = threading.Event()
    process, sink = Process(gate=gate), Sink()
    runner = PipelineRunner(ListSource(chunks_for(50), on_empty=gate.set), FixedFramer(),
                            process, sink, queue_frames=4, policy="drop-newest")
    stats = runner.run()
    kept = stats.frames_processed
    assert kept in (4, 5)                      # the queue, plus the frame compute had taken
    assert stats.frames_dropped == 50 - kept
    assert sink.seqs == list(range(kept))


def test_drop_oldest_keeps_the_freshest_frames_and_counts_drops():
    gate = threading.Event()
    process, sink = Process(gate=gate), Sink()
    runner = PipelineRunner(ListSource(chunks_for(50), on_empty=gate.set), FixedFramer(),
                            process, sink, queue_frames=4, policy="drop-oldest")
    stats = runner.run()
    assert stats.frames_processed in (4, 5)
    assert stats.frames_dropped + stats.frames_processed == stats.frames_in == 50
    assert sink.seqs[-4:] == [46, 47, 48, 49]


def test_batches_take_what_is_queued():
    gate = threading.Event()
    process, sink = Process(gate=gate), Sink()
    runner = PipelineRunner(ListSource(chunks_for(30), on_empty=gate.set), FixedFramer(),
                            process, sink, queue_frames=64, policy="block", batch_frames=8)
    stats = runner.run()
    assert sink.seqs == list(range(30))
    assert all(f <= 8 and l == L for f, l in process.shapes)
    assert max(f for f, _ in process.shapes) == 8
    assert stats.batches == len(process.shapes) < 30


class LosingPipeline:
    """A pipeline (submit/collect, 2 deep) whose batches holding frame 7 or 8 are lost:
    collect returns None for them, as a scale-out pool does for a batch it cannot re-run."""

    depth = 2

    def __init__(self):
        self.pending = []

    def submit(self, frames):
        self.pending.append(np.array(frames))

    def collect(self):
        frames = self.pending.pop(0)
        return None if {7, 8} & {int(v) for v in frames[:, 0].real} else Result(frames)


def test_a_batch_the_pipeline_lost_is_counted_failed_not_output():
    sink = Sink()
    stats = PipelineRunner(ListSource(chunks_for(20)), FixedFramer(), LosingPipeline(), sink, policy="block",
                           batch_frames=1).run()
    assert sink.seqs == [k for k in range(20) if k not in (7, 8)]
    assert (stats.frames_failed, stats.frames_out, stats.frames_in) == (2, 18, 20)


def test_before_batch_sees_each_batchs_metas_before_its_frames_are_processed():
    """The hook runs on the compute thread, in order, before the batch reaches ``process``:
    what it changes holds from the batch's first frame on (rx --recalibrate)."""
    gate = threading.Event()
    process, sink, calls = Process(gate=gate), Sink(), []

    def before_batch(metas):
        calls.append(([m["seq"] for m in metas], len(process.seen)))

    runner = PipelineRunner(ListSource(chunks_for(30), on_empty=gate.set), FixedFramer(), process, sink,
                            queue_frames=64, policy="block", batch_frames=8, before_batch=before_batch)
    runner.run()
    assert [seq for seqs, _ in calls for seq in seqs] == list(range(30))
    assert all(seen == seqs[0] for seqs, seen in calls)        # every earlier frame processed, none of these


class GappySource(ListSource):
    """``ListSource`` whose chunks are (samples, samples lost before them)."""

    def read(self):
        if not self.chunks:
            self.eof = True
            return None
        samples, self._missing = self.chunks.pop(0)
        return samples

    def missing(self):
        return self._missing


def test_samples_lost_in_transport_reach_the_acquisition_before_the_samples_after_them():
    """A source's ``missing()`` after each read goes to ``acquire_gap`` (FrameAcquirer.skip),
    before that read's samples go to ``acquire``; a frame the gap completes is queued in order."""
    events = []
    framer = FixedFramer()

    def acquire(samples):
        events.append(("samples", samples.size))
        return framer(samples)

    def acquire_gap(n):
        events.append(("gap", n))
        framer.count += 1                                   # the frame the gap took
        return [(np.full(L, -1, np.complex64), {"seq": framer.count - 1, "lost_before": 0})]

    source = GappySource([(np.zeros(L, np.complex64), 0), (np.zeros(L, np.complex64), 300),
                          (np.zeros(2 * L, np.complex64), 0)])
    process, sink = Process(), Sink()
    PipelineRunner(source, acquire, process, sink, acquire_gap=acquire_gap, policy="block").run()
    assert events == [("samples", L), ("gap", 300), ("samples", L), ("samples", 2 * L)]
    assert sink.seqs == [0, 1, 2, 3, 4] and process.seen == [0, -1, 2, 3, 4]


def test_stop_from_another_thread_drains_and_writes_stats(tmp_path):
    sink = Sink(notify_after=5)
    runner = PipelineRunner(EndlessSource(), FixedFramer(), Process(delay_s=0.002), sink,
                            queue_frames=8, stats_file=tmp_path / "s.json")
    threading.Thread(target=lambda: sink.event.wait(10) and runner.stop(), daemon=True).start()
    stats = runner.run()
    assert stats.stopped_by == "stop"
    assert stats.frames_in == stats.frames_processed + stats.frames_dropped
    assert stats.frames_out == stats.frames_processed >= 5
    assert json.loads((tmp_path / "s.json").read_text())["stopped_by"] == "stop"


@pytest.fixture
def default_sigint():
    """SIGINT handled as Python does by default (KeyboardInterrupt) for the test, then as
    before: where the process ignores SIGINT, ``interrupt_main`` raises nothing."""
    previous = signal.signal(signal.SIGINT, signal.default_int_handler)
    yield
    signal.signal(signal.SIGINT, previous)


def test_ctrl_c_stops_cleanly_and_writes_stats(tmp_path, default_sigint):
    sink = Sink(notify_after=3)
    runner = PipelineRunner(EndlessSource(), FixedFramer(), Process(delay_s=0.002), sink, queue_frames=8,
                            stats_file=tmp_path / "s.json")
    threading.Thread(target=lambda: (sink.event.wait(20), _thread.interrupt_main()), daemon=True).start()
    stats = runner.run()
    assert stats.stopped_by == "interrupt" and stats.error is None
    assert stats.frames_in == stats.frames_processed + stats.frames_dropped
    saved = json.loads((tmp_path / "s.json").read_text())
    assert saved["stopped_by"] == "interrupt" and saved["frames_out"] == stats.frames_out >= 3


class StallingSource:
    """Data, then silence for ``silence_s``, then data again (or silence forever)."""

    eof = False

    def __init__(self, silence_s=None):
        self.silence_s = silence_s
        self.t_silent = None
        self.resumed = 0

    def read(self):
        time.sleep(0.005)
        now = time.monotonic()
        if self.t_silent is None:
            self.t_silent = now
            return np.zeros(L, np.complex64)
        if self.silence_s is not None and now - self.t_silent > self.silence_s:
            self.resumed += 1
            if self.resumed > 3:
                self.eof = True
                return None
            return np.zeros(L, np.complex64)
        return None


def test_stall_is_counted_and_exits_when_asked():
    runner = PipelineRunner(StallingSource(), FixedFramer(), Process(), Sink(),
                            stall_timeout_s=0.2, stall_action="exit")
    stats = runner.run()
    assert stats.stalls == 1 and stats.stopped_by == "stall" and stats.frames_out == 1


class LateSource:
    """A sender that starts ``late_s`` after the receiver, then sends two frames and ends;
    with ``late_s=None`` it never starts."""

    eof = False

    def __init__(self, late_s):
        self.t0, self.late_s, self.chunks = time.monotonic(), late_s, [np.zeros(2 * L, np.complex64)]

    def read(self):
        time.sleep(0.005)
        if self.late_s is None or time.monotonic() - self.t0 < self.late_s:
            return None
        if self.chunks:
            return self.chunks.pop()
        self.eof = True
        return None


def test_a_late_sender_is_waited_for_and_is_not_a_stall():
    stats = PipelineRunner(LateSource(0.5), FixedFramer(), Process(), Sink(), stall_timeout_s=0.2,
                           stall_action="exit").run()
    assert stats.stopped_by == "eof" and stats.stalls == 0 and stats.frames_out == 2


def test_start_timeout_stops_a_runner_whose_sender_never_comes():
    t0 = time.monotonic()
    stats = PipelineRunner(LateSource(None), FixedFramer(), Process(), Sink(), start_timeout_s=0.3).run()
    assert stats.stopped_by == "no_input" and stats.frames_in == 0 and time.monotonic() - t0 < 5


def test_stall_is_counted_and_waited_out():
    runner = PipelineRunner(StallingSource(silence_s=0.4), FixedFramer(), Process(), Sink(),
                            stall_timeout_s=0.2, stall_action="wait")
    stats = runner.run()
    assert stats.stalls == 1 and stats.stall_s >= 0.35
    assert stats.stopped_by == "eof" and stats.frames_out == 4


def test_stage_error_stops_the_pipeline_and_is_raised():
    def process(frames):
        raise ValueError("receiver bug")

    runner = PipelineRunner(EndlessSource(), FixedFramer(), process, Sink())
    with pytest.raises(PipelineError, match="receiver bug") as info:
        runner.run()
    assert isinstance(info.value.__cause__, ValueError)
    assert runner.stats.stopped_by == "error" and "receiver bug" in runner.stats.error


def test_progress_callback_and_max_frames():
    reports = []
    runner = PipelineRunner(EndlessSource(), FixedFramer(), Process(delay_s=0.01), Sink(),
                            max_frames=30, progress=reports.append, progress_interval_s=0.05)
    stats = runner.run()
    assert stats.stopped_by == "max_frames" and stats.frames_in == 30
    assert stats.frames_out + stats.frames_dropped == 30
    assert reports and all(isinstance(r, Progress) for r in reports)
    assert reports[-1].frames_out <= stats.frames_out


def test_pinned_style_allocator_is_used_for_batches():
    shapes = []

    def allocate(shape, dtype):
        shapes.append(shape)
        return np.empty(shape, dtype)

    runner = PipelineRunner(ListSource(chunks_for(5)), FixedFramer(), Process(), Sink(),
                            batch_frames=3, allocate=allocate, n_buffers=2)
    runner.run()
    assert shapes == [(3, L), (3, L)]


class Pipeline:
    """Stub pipeline (submit / collect, ``depth`` batches in flight). It keeps the submitted
    batches as views of the runner's buffers, as a GPU's asynchronous upload reads them, and
    checks at collect that nobody wrote them meanwhile."""

    def __init__(self, depth, collect_s=0.0):
        self.depth, self.collect_s = depth, collect_s
        self.pending, self.max_in_flight = [], 0

    def submit(self, frames):
        assert len(self.pending) < self.depth
        self.pending.append((frames, frames.copy()))
        self.max_in_flight = max(self.max_in_flight, len(self.pending))

    def collect(self):
        time.sleep(self.collect_s)
        frames, submitted = self.pending.pop(0)
        np.testing.assert_array_equal(frames, submitted)          # buffer not reused in flight
        return Result(frames)


def test_pipeline_keeps_batches_in_flight_in_order_without_reusing_their_buffers():
    pipeline, sink, shapes = Pipeline(depth=3, collect_s=0.002), Sink(), []

    def allocate(shape, dtype):
        shapes.append(shape)
        return np.empty(shape, dtype)

    stats = PipelineRunner(ListSource(chunks_for(40)), FixedFramer(), pipeline, sink, policy="block",
                           batch_frames=2, allocate=allocate).run()
    assert sink.seqs == list(range(40)) and stats.frames_out == stats.frames_processed == 40
    assert pipeline.max_in_flight == 3 and len(shapes) == 4      # depth + 1 buffers
    assert stats.frames_dropped == 0 and not pipeline.pending


def test_pipeline_hands_a_batch_back_at_once_when_no_more_frames_wait():
    """An idle link does not hold results back waiting to fill the pipeline."""
    sink = Sink(notify_after=1)
    got_it = []
    source = ListSource([np.zeros(L, np.complex64)], on_empty=lambda: got_it.append(sink.event.wait(5)))
    PipelineRunner(source, FixedFramer(), Pipeline(depth=4), sink).run()
    assert got_it == [True] and sink.seqs == [0]


def test_stop_without_drain_counts_queued_and_in_flight_frames_as_dropped():
    sink = Sink(notify_after=6)
    runner = PipelineRunner(EndlessSource(), FixedFramer(), Pipeline(depth=2, collect_s=0.005), sink,
                            policy="block", batch_frames=2)
    threading.Thread(target=lambda: sink.event.wait(10) and runner.stop(drain=False), daemon=True).start()
    stats = runner.run()
    assert stats.frames_out >= 6 and stats.frames_dropped > 0
    assert stats.frames_in == stats.frames_out + stats.frames_dropped


@pytest.mark.parametrize("kwargs, message", [
    ({"policy": "random"}, "policy"), ({"queue_frames": 0}, "queue_frames"),
    ({"stall_action": "panic"}, "stall_action"), ({"batch_frames": 0}, "batch_frames"),
    ({"start_timeout_s": 0}, "start_timeout_s"),
])
def test_parameter_validation(kwargs, message):
    with pytest.raises(ValueError, match=message):
        PipelineRunner(EndlessSource(), FixedFramer(), Process(), Sink(), **kwargs)


def test_before_batch_ends_a_batch_where_a_change_is_due():
    """A hook that keeps only the frames before a change (rx --recalibrate at frames 5 and
    17): no batch spans a change, the held frames lead the next batch, and every frame is
    processed once, in order."""
    gate = threading.Event()
    process, sink, batches = Process(gate=gate), Sink(), []
    changes = [5, 17]

    def before_batch(metas):
        seqs = [m["seq"] for m in metas]
        following = next((c for c in changes if c > seqs[0]), None)
        take = len(seqs) if following is None else sum(s < following for s in seqs)
        batches.append(seqs[:take])
        return take

    runner = PipelineRunner(ListSource(chunks_for(30), on_empty=gate.set), FixedFramer(), process, sink,
                            queue_frames=64, policy="block", batch_frames=8, before_batch=before_batch)
    runner.run()
    assert [seq for seqs in batches for seq in seqs] == list(range(30))
    assert not any(seqs[0] < c <= seqs[-1] for seqs in batches for c in changes)
    assert any(seqs[-1] == 4 for seqs in batches) and any(seqs[-1] == 16 for seqs in batches)
