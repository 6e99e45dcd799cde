"""Scale-out over ZeroMQ: worker processes, fan-out, order restored by the collector."""
import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pytest
import zmq

from streaming.scaleout import (FrameCollector, FrameFanout, decode_frame, encode_frame,
                                run_worker)
from streaming.zmq_io import encode_result

pytestmark = pytest.mark.timeout(60)

REPO = Path(__file__).resolve().parents[2]
LOOPBACK = "tcp://127.0.0.1:*"
FRAME_LEN = 1000
BITS = 32


class StubResult:
    def __init__(self, bits, llr):
        self.bits, self.llr = bits, llr


def stub_factory(config):
    """Worker process factory for the tests: frame k (all samples = k) -> bits of k, after a
    pseudo-random delay of 0-24 ms so that results come back out of order."""
    assert config is None

    def process(frames):
        seqs = frames[:, 0].real.astype(np.int64)
        time.sleep(float(np.sum((seqs * 7919) % 5)) * 0.006)
        bits = np.unpackbits(seqs.astype(">u4").view(np.uint8)).reshape(len(seqs), BITS)
        return StubResult(bits, bits.astype(np.float32) * 2 - 1)

    return process


def seq_bits(seq):
    return np.unpackbits(np.array([seq], ">u4").view(np.uint8))


def start_worker(fanout, collector, name):
    return subprocess.Popen(
        [sys.executable, "-m", "streaming.scaleout", "worker", "--in", fanout, "--out", collector,
         "--process", "tests.streaming.test_scaleout:stub_factory", "--name", name,
         "--payload", "both"],
        cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        env=dict(os.environ, PYTHONPATH=os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")]))))


def test_order_restored_across_worker_processes():
    n_frames = 60
    with FrameCollector(LOOPBACK, max_wait_s=5.0, timeout_ms=200) as collector, \
            FrameFanout(LOOPBACK, send_timeout_ms=10_000) as fanout:
        workers = [start_worker(fanout.endpoint, collector.endpoint, f"w{i}") for i in range(3)]
        try:
            assert fanout.wait_for_workers(3, timeout_s=30), "workers did not connect"
            for seq in range(n_frames):
                assert fanout.send(seq, np.full(FRAME_LEN, seq, np.complex64), {"seq": seq})
            results = []
            deadline = time.monotonic() + 30
            while len(results) < n_frames and time.monotonic() < deadline:
                result = collector.recv()
                if result is not None:
                    results.append(result)
        finally:
            for proc in workers:
                proc.send_signal(signal.SIGTERM)
            outputs = [proc.communicate(timeout=15) for proc in workers]
    assert [r.seq for r in results] == list(range(n_frames))
    for r in results:
        np.testing.assert_array_equal(r.bits, seq_bits(r.seq))
        np.testing.assert_array_equal(r.llr, seq_bits(r.seq) * 2.0 - 1)
    used = {r.header["metrics"]["worker"] for r in results}
    assert len(used) >= 2, f"one worker took everything: {used}"
    assert collector.stats.missing == 0 and collector.stats.emitted == n_frames
    assert collector.stats.reordered > 0            # the delays did shuffle the arrivals
    assert [proc.returncode for proc in workers] == [0, 0, 0], [err for _, err in outputs]
    frames_done = sum(json.loads(out.strip().splitlines()[-1])["frames"] for out, _ in outputs)
    assert frames_done == n_frames


def _push(endpoint):
    ctx = zmq.Context()
    sock = ctx.socket(zmq.PUSH)
    sock.setsockopt(zmq.LINGER, 1000)
    sock.connect(endpoint)
    return ctx, sock


def test_collector_skips_missing_seq_after_bounded_wait_and_drops_late_ones():
    bits = np.ones(5, np.uint8)
    with FrameCollector(LOOPBACK, max_wait_s=0.2, timeout_ms=50) as collector:
        ctx, push = _push(collector.endpoint)
        for seq in (0, 2, 1, 4, 5):                     # 3 never comes (in time)
            push.send_multipart(encode_result(seq, bits=bits))
        got = []
        deadline = time.monotonic() + 5
        while len(got) < 5 and time.monotonic() < deadline:
            if (r := collector.recv()) is not None:
                got.append(r.seq)
        t_gap = time.monotonic()
        push.send(b"garbage")
        push.send_multipart(encode_result(3, bits=bits))            # too late now
        push.send_multipart(encode_result(6, bits=bits))
        assert collector.recv().seq == 6
        push.close()
        ctx.term()
    assert got == [0, 1, 2, 4, 5]
    stats = collector.stats
    assert (stats.missing, stats.late, stats.bad_messages) == (1, 1, 1)
    assert time.monotonic() - t_gap < 2


def test_collector_window_bounds_the_wait_and_flush_returns_the_rest():
    with FrameCollector(LOOPBACK, max_wait_s=60, window=3, timeout_ms=50) as collector:
        ctx, push = _push(collector.endpoint)
        for seq in (1, 2, 3, 5):                          # 0 missing: the full window gives up
            push.send_multipart(encode_result(seq, llr=np.zeros(2)))
        first = None
        deadline = time.monotonic() + 5
        while first is None and time.monotonic() < deadline:
            first = collector.recv()
        while collector.stats.received < 4 and time.monotonic() < deadline:
            collector.recv()
        rest = collector.flush()
        push.close()
        ctx.term()
    assert first.seq == 1
    assert [r.seq for r in rest] == [3, 5] or [r.seq for r in rest] == [5]
    assert collector.stats.missing == 2                  # 0 and 4


def test_run_worker_in_a_thread_skips_malformed_frames():
    stop = threading.Event()
    with FrameCollector(LOOPBACK, timeout_ms=2000) as collector, \
            FrameFanout(LOOPBACK) as fanout:
        stats_box = []
        thread = threading.Thread(target=lambda: stats_box.append(run_worker(
            fanout.endpoint, collector.endpoint, stub_factory(None), batch_frames=4, stop=stop)))
        thread.start()
        assert fanout.wait_for_workers(1, timeout_s=10)
        fanout._socket.send_multipart([b"{}", b"x"])        # malformed frame message
        assert fanout.send(0, np.zeros(FRAME_LEN, np.complex64))
        result = collector.recv()
        stop.set()
        thread.join(10)
    assert result.seq == 0 and result.llr is None
    np.testing.assert_array_equal(result.bits, seq_bits(0))
    assert stats_box[0].frames == 1 and stats_box[0].bad_messages == 1


def test_frame_message_round_trip_and_validation():
    frame = (np.arange(10) * (1 + 2j)).astype(np.complex64)
    parts = [bytes(p) for p in encode_frame(7, frame, {"cfo_hz": np.float64(12.5)})]
    seq, got, meta = decode_frame(parts)
    assert seq == 7 and meta == {"cfo_hz": 12.5}
    np.testing.assert_array_equal(got, frame)
    with pytest.raises(ValueError, match="payload bytes"):
        decode_frame([parts[0], parts[1][:-4]])
    with pytest.raises(ValueError, match="expected 2"):
        decode_frame(parts[:1])
    with pytest.raises(ValueError, match="JSON"):
        decode_frame([b"{", parts[1]])


def test_fanout_without_workers_counts_a_drop():
    with FrameFanout(LOOPBACK, send_timeout_ms=50) as fanout:
        assert fanout.connected_workers == 0
        assert not fanout.send(0, np.zeros(4, np.complex64))
        assert (fanout.sent, fanout.dropped) == (0, 1)


@pytest.mark.parametrize("text", ["[1, 2]", "{not json"])
def test_worker_options_must_be_a_json_object(text, capsys):
    from streaming.scaleout import main

    with pytest.raises(SystemExit) as exc:
        main(["worker", "--in", "ipc://nowhere", "--out", "ipc://nowhere", "--process", "a:b",
              "--options", text])
    assert exc.value.code == 2
    assert "--options" in capsys.readouterr().err
