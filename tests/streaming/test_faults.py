"""Fault injection into ``zakotfs rx``: each test streams intact frames of a small grid over
ZeroMQ (ipc) with a fault among them, and asserts the intact frames decoded (bits against
the truth, by ``seq``), the counts, the exit status, the time to exit and that no traceback
was printed. rx runs in this process (its receiver warmed up once for all) except where a
signal must reach it."""
from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
import warnings

import h5py
import numpy as np
import pytest
import zmq

from streaming.files import IQWriter
from streaming.zmq_io import IQSink, encode_tag_header
from streaming.zmq_io.iq import IQSource
from zakotfs.cli import ExitStatus, build_parser, main
from zakotfs.cli.options import resolve_config
from zakotfs.frame import FrameBuilder, random_bits

GRID = ["--grid", "64x32", "--bandwidth", "0.96e6", "--mod", "qpsk"]
CONFIG = resolve_config(build_parser().parse_args(["rx", "--in", "x", *GRID]))
L = CONFIG.samples_per_frame


def _frames(n: int, seed: int = 0) -> tuple[np.ndarray, list[np.ndarray]]:
    """(truth bits [n, B], n frames of complex64 [L], one a message)."""
    bits = random_bits(CONFIG, n, np.random.default_rng(seed))
    stream = FrameBuilder(CONFIG).stream(bits)
    return bits, [stream[i * L:(i + 1) * L] for i in range(n)]


class _Sender(threading.Thread):
    """Bind a PUSH (or ``pattern``) socket at ``endpoint`` and send ``messages`` (bytes, or
    complex64 arrays), pausing ``pause_s`` after each, until one cannot go within 60 s; with
    ``hold``, keep the socket open until ``release`` is set (a PUSH socket that closes while
    its peer's queue is full loses what it still holds)."""

    def __init__(self, endpoint: str, messages, *, pattern: int = zmq.PUSH, pause_s: float = 0.0,
                 hold: bool = True):
        super().__init__(daemon=True)
        self.endpoint, self.messages, self.pattern, self.pause_s = endpoint, list(messages), pattern, pause_s
        self.ready, self.release = threading.Event(), threading.Event()
        if not hold:
            self.release.set()

    def run(self) -> None:
        ctx = zmq.Context()
        sock = ctx.socket(self.pattern)
        sock.setsockopt(zmq.LINGER, 5000)
        sock.setsockopt(zmq.SNDTIMEO, 60_000)
        sock.bind(self.endpoint)
        self.ready.set()
        try:
            for message in self.messages:
                sock.send(message if isinstance(message, bytes) else np.ascontiguousarray(message).tobytes())
                if self.pause_s:
                    time.sleep(self.pause_s)
        except zmq.Again:          # the receiver stopped before the end (a signal): the rest is not wanted
            pass
        self.release.wait(120)
        sock.close()
        ctx.term()


def _rx(tmp_path, endpoint: str, *extra: str, pattern: str = "pull") -> tuple[int, dict | None, float]:
    """Run ``zakotfs rx`` here on ``endpoint``: (exit status, report or None, the time it
    returned)."""
    report = tmp_path / "report.json"
    argv = ["rx", "--in", endpoint, "--pattern", pattern, *GRID, "--backend", "cpu", "--batch", "1",
            "--report", str(report), "--json", *extra]
    return main(argv), (json.loads(report.read_text()) if report.exists() else None), time.perf_counter()


def _check_rows(out, truth: np.ndarray) -> int:
    """Every row of the --out file equals the truth row its seq names; returns the rows."""
    with h5py.File(out, "r", swmr=True) as f:
        bits, seq = f["bits"][:], f["seq"][:]
    assert len(seq) == len(set(seq.tolist()))
    for row, s in zip(bits, seq):
        assert np.array_equal(row, truth[s]), f"frame {s} decoded wrong"
    return len(seq)


@pytest.fixture
def endpoint(tmp_path):
    return f"ipc://{tmp_path}/iq"


def _run_stream(tmp_path, endpoint, messages, capsys, *extra, pause_s=0.0):
    """Send ``messages`` to rx (idle timeout 1 s, --out): (exit status, report, seconds rx
    streamed, from its receiver's start to its exit, the --out path, stderr)."""
    sender = _Sender(endpoint, messages, pause_s=pause_s)
    sender.start()
    sender.ready.wait(10)
    out = tmp_path / "out.h5"
    with warnings.catch_warnings():
        warnings.simplefilter("error", RuntimeWarning)
        status, report, _ = _rx(tmp_path, endpoint, "--out", str(out), "--idle-timeout", "1", *extra)
    sender.release.set()
    sender.join(5)
    err = capsys.readouterr().err
    assert "Traceback" not in err and "RuntimeWarning" not in err
    return status, report, report and report["runner"]["wall_s"], out, err


def test_an_idle_stop_decodes_the_last_frame(tmp_path, endpoint, capsys):
    """Item 4: the stream stops on the idle timeout: the frame detector is flushed, 20 of 20."""
    truth, frames = _frames(20)
    status, report, exit_s, out, _ = _run_stream(tmp_path, endpoint, frames, capsys)
    assert status == ExitStatus.OK and report["frames"] == 20 and report["frames_lost"] == 0
    assert _check_rows(out, truth) == 20 and exit_s < 1 + 4


def test_a_tag_header_in_a_raw_stream_latches_nothing(tmp_path, endpoint, capsys):
    """Item 5: a message shaped like a pass_tags header (a header alone) among raw ones, and a
    sender that restarts without pass_tags (raw after a whole tagged message): every frame."""
    truth, frames = _frames(20, seed=1)
    tagged = encode_tag_header(10 * L) + frames[10].tobytes()
    messages = frames[:5] + [encode_tag_header(0)] + frames[5:10] + [tagged] + frames[11:]
    status, report, _, out, _ = _run_stream(tmp_path, endpoint, messages, capsys)
    assert status == ExitStatus.OK and report["frames"] == 20 and _check_rows(out, truth) == 20


def test_garbage_between_intact_messages(tmp_path, endpoint, capsys):
    """Item 6: 1000 garbage messages (random bytes, not whole samples) between 35 frames, two
    of which carry 200 random bytes read as float32 (up to ~1e38, NaN) in place of samples:
    the 33 intact frames decoded, the two dropped, the garbage counted, no RuntimeWarning from
    the detector's power sums."""
    truth, frames = _frames(35, seed=2)
    rng = np.random.default_rng(3)
    damaged = (10, 20)
    messages = []
    for i, frame in enumerate(frames):
        if i in damaged:
            frame = frame.copy()
            frame[L // 2:L // 2 + 200] = np.frombuffer(rng.bytes(1600), np.complex64)
        messages.append(frame)
        messages += [rng.bytes(8 * int(rng.integers(0, 40)) + int(rng.integers(1, 8)))
                     for _ in range(29 if i < 34 else 14)]
    status, report, _, out, _ = _run_stream(tmp_path, endpoint, messages, capsys)
    source, acquisition = report["source"], report["acquisition"]
    assert status == ExitStatus.OK and report["frames"] == 33 and _check_rows(out, truth) == 33
    assert acquisition["frames_bad"] == 2 and 0 < acquisition["nonfinite_samples"] <= 400
    assert source["messages"] == 35 + 1000 and source["bad_messages"] == 1000


def test_a_sender_killed_and_restarted_after_a_stall(tmp_path, endpoint, capsys):
    """The sender dies after 10 frames; 0.6 s later (under the idle timeout) another binds
    the same address and sends 10 more; a 64 MiB message that is not whole samples comes
    between: 20 of 20, the message counted."""
    truth, frames = _frames(20, seed=4)
    first = _Sender(endpoint, frames[:10], hold=False)
    second = _Sender(endpoint, [b"\x01" * (64 * 2 ** 20 + 3)] + frames[10:])
    first.start()
    first.ready.wait(10)

    def restart():
        first.join(60)
        time.sleep(0.6)
        second.start()

    threading.Thread(target=restart, daemon=True).start()
    out = tmp_path / "out.h5"
    status, report, _ = _rx(tmp_path, endpoint, "--out", str(out), "--idle-timeout", "2")
    second.release.set()
    assert "Traceback" not in capsys.readouterr().err
    assert status == ExitStatus.OK and report["frames"] == 20 and _check_rows(out, truth) == 20
    assert report["source"]["size_mismatches"] == 1


@pytest.mark.parametrize("sender,pattern,fix", [(zmq.PUSH, "sub", "--pattern pull"),
                                                (zmq.PUB, "pull", "--pattern sub")])
def test_a_peer_of_the_wrong_pattern_is_diagnosed_within_2_s(endpoint, sender, pattern, fix):
    """Item 2: the socket monitor sees the peer connect and drop without a handshake."""
    ctx = zmq.Context()
    peer = ctx.socket(sender)
    peer.bind(endpoint)
    try:
        with IQSource(endpoint, pattern, timeout_ms=100) as source:
            t0 = time.perf_counter()
            while source.stats.diagnosis is None and time.perf_counter() - t0 < 2:
                assert source.recv() is None
        assert source.stats.diagnosis is not None and fix in source.stats.diagnosis
        assert source.stats.handshake_failures >= 1 and source.stats.handshakes == 0
    finally:
        peer.close(0)
        ctx.term()


def test_start_timeout_says_what_was_seen(tmp_path, endpoint, capsys):
    """Items 2 and 3: a PUSH sender into rx's default SUB: exit 3 (nothing received) with the
    cause and the flag that fixes it; no sender at all: exit 3, no peer connected."""
    ctx = zmq.Context()
    peer = ctx.socket(zmq.PUSH)
    peer.bind(endpoint)
    try:
        status, report, _ = _rx(tmp_path, endpoint, "--start-timeout", "1.5", pattern="sub")
    finally:
        peer.close(0)
        ctx.term()
    err = capsys.readouterr().err
    assert status == ExitStatus.NO_INPUT and report["frames"] == 0
    assert "--pattern pull" in err.splitlines()[-1] and "Traceback" not in err
    t0 = time.perf_counter()
    status, _, t_end = _rx(tmp_path, f"ipc://{tmp_path}/nobody", "--start-timeout", "0.5")
    err = capsys.readouterr().err
    assert status == ExitStatus.NO_INPUT and "no peer connected" in err and t_end - t0 < 0.5 + 3


def test_a_fixed_point_stream_read_as_float_is_a_format_mismatch(tmp_path, endpoint, capsys):
    """Item 3: ci16 samples (8191 a message) sent to rx without --in-format: exit 5, and the
    line names the format their sizes fit."""
    _, frames = _frames(6, seed=5)
    stream = np.concatenate(frames)
    sink_ready = threading.Event()

    def send():
        with IQSink(endpoint, "push", sample_format="ci16_le", send_timeout_ms=60_000, linger_ms=120_000) as sink:
            sink_ready.set()
            for start in range(0, stream.size, 8191):
                sink.send(stream[start:start + 8191])

    thread = threading.Thread(target=send, daemon=True)
    thread.start()
    sink_ready.wait(10)
    status, report, _ = _rx(tmp_path, endpoint, "--idle-timeout", "1", "--start-timeout", "1.5")
    thread.join(5)
    last = capsys.readouterr().err.strip().splitlines()[-1]
    assert status == ExitStatus.FORMAT_MISMATCH and report["frames"] == 0
    assert "--in-format ci16_le" in last


def test_a_runtime_error_is_one_line_and_status_1(tmp_path, endpoint, capsys, monkeypatch):
    """Item 8: a stage that fails once the stream runs (the result file cannot be written)
    is exit status 1, one line, no traceback, the file still closed."""
    from streaming.result_file import ResultFileWriter

    def disk_full(self, result, metas):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(ResultFileWriter, "__call__", disk_full)
    _, frames = _frames(4, seed=6)
    status, _, _, out, err = _run_stream(tmp_path, endpoint, frames, capsys)
    assert status == ExitStatus.ERROR and "No space left on device" in err.strip().splitlines()[-1]
    with h5py.File(out, "r") as f:
        assert f["bits"].shape[0] == 0


@pytest.mark.parametrize("argv,message", [
    (["rx", "--in", "x.h5", "--mod", "1024qam"], "argument --mod: invalid choice: '1024qam'"),
    (["rx", "--in", "x.h5", "--grid", "abc"], "argument --grid: grid must look like MxN"),
    (["tx", "--out", "x.h5", "--frames", "-1"], "argument --frames: must be >= 1, got -1"),
    (["rx", "--in", "x.h5", "--frames", "0"], "argument --frames: must be >= 1, got 0"),
    (["rx", "--in", "x.h5", "--report", "/missing/dir/r.json"], "cannot write /missing/dir/r.json"),
    (["rx", "--in", "x.h5", "--out", "/missing/dir/o.h5"], "cannot write /missing/dir/o.h5"),
    (["rx", "--in", "x.h5", "--record", "/"], "cannot write /: it is a folder"),
    (["rx", "--in", "x.h5", "--frames", "many"], "argument --frames: expected an integer, got 'many'"),
    (["rx"], "the following arguments are required: --in"),
    (["frobnicate"], "invalid choice: 'frobnicate'"),
])
def test_a_bad_argument_is_one_line_and_status_2(argv, message, capsys):
    """Item 8: one line (no usage dump), exit status 2, before any work, no internal names."""
    t0 = time.perf_counter()
    assert main(argv) == ExitStatus.USAGE and time.perf_counter() - t0 < 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("zakotfs") and message in err[0], err
    assert "max_frames" not in err[0] and "usage:" not in err[0]


@pytest.mark.parametrize("name,content", [("damaged.h5", b"\x89HDF\r\n\x1a\n" + bytes(100)),
                                          ("damaged.sigmf-meta", b'{"global": {"core:datatype": "cf32_le", "core:')],
                         ids=["hdf5", "sigmf-json"])
def test_an_unreadable_input_file_is_one_line(tmp_path, capsys, name, content):
    """A file with nothing readable (HDF5 without its metadata, SigMF metadata cut inside its
    JSON): one line naming it, exit status 2, before any work."""
    damaged = tmp_path / name
    damaged.write_bytes(content)
    damaged.with_suffix(".sigmf-data").write_bytes(bytes(800))
    t0 = time.perf_counter()
    assert main(["rx", "--in", str(damaged), *GRID]) == ExitStatus.USAGE and time.perf_counter() - t0 < 1
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and name in err[0] and "Traceback" not in err[0]


@pytest.mark.parametrize("suffix", [".sigmf-meta", ".cfile"])
def test_a_damaged_recording_decodes_its_intact_frames(tmp_path, capsys, suffix):
    """tx writes 10 frames, the data file is cut 3 bytes past the middle of frame 6 (a SigMF
    recording then no longer matches its core:sha512; a raw one ends inside a sample): the 6
    intact frames decoded, each right, exit status 6 with one line that says what is wrong."""
    recording, truth_path = tmp_path / f"rec{suffix}", tmp_path / "truth.h5"
    assert main(["tx", "--out", str(recording), "--truth", str(truth_path), *GRID, "--frames", "10"]) == 0
    data = recording.with_suffix(".sigmf-data") if suffix == ".sigmf-meta" else recording
    os.truncate(data, (6 * L + L // 2) * 8 + 3)
    with h5py.File(truth_path, "r") as f:
        truth = f["truth/bits"][()]
    capsys.readouterr()
    out, report_path = tmp_path / "out.h5", tmp_path / "report.json"
    t0 = time.perf_counter()
    status = main(["rx", "--in", str(recording), *GRID, "--truth", str(truth_path), "--backend", "cpu",
                   "--out", str(out), "--report", str(report_path), "--json"])
    exit_s = time.perf_counter() - t0
    err = capsys.readouterr().err
    report = json.loads(report_path.read_text())
    assert status == ExitStatus.DAMAGED_INPUT and "Traceback" not in err and exit_s < 60
    assert "is damaged" in err.strip().splitlines()[-1] and "6 frames of its intact part" in err
    assert report["frames"] == 6 and _check_rows(out, truth) == 6 and report["ber"] == 0


def test_common_options_after_the_subcommand_and_version(capsys):
    parsed = build_parser().parse_args(["rx", "--in", "x", "-v", "--log-level", "debug", "--backend", "cpu"])
    assert parsed.verbose and parsed.log_level == "debug" and parsed.backend == "cpu"
    assert not build_parser().parse_args(["rx", "--in", "x"]).verbose
    assert main(["--version"]) == 0 and capsys.readouterr().out.startswith("zakotfs ")
    with pytest.raises(SystemExit):
        build_parser().parse_args(["rx", "--help"])
    assert "(default: drop-oldest)" in capsys.readouterr().out


# ---- rx as its own process: signals, memory ----------------------------------------------------
def _rx_process(tmp_path, name: str, endpoint: str, *extra: str) -> tuple[subprocess.Popen, dict]:
    paths = {k: tmp_path / f"{name}.{k}" for k in ("h5", "json")}
    proc = subprocess.Popen([sys.executable, "-m", "zakotfs.cli", "rx", "--in", endpoint, "--pattern", "pull", *GRID,
                             "--backend", "cpu", "--batch", "1", "--queue", "8", "--out", str(paths["h5"]),
                             "--report", str(paths["json"]), "--json", *extra],
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=dict(os.environ, PYTHONUNBUFFERED="1"))
    return proc, paths


@pytest.mark.timeout(150)
def test_a_64_mib_message_of_whole_samples(tmp_path, endpoint):
    """One 64 MiB message holding 3799 whole frames (and 1216 zero samples after them), then
    10 frames one a message: rx decodes what its queue of 8 holds and counts the rest
    dropped, the last frame decoded, every row right and matched by content, the frames
    dropped counted lost (the zeros in the stream move the timing's count by one, not the
    report's); it exits within the idle timeout and its peak memory stays under 1 GiB
    (about 260 MB without the message)."""
    big = 64 * 2 ** 20 // 8
    n_big = big // L
    truth, frames = _frames(n_big + 10, seed=9)
    with IQWriter(tmp_path / "truth.h5", CONFIG) as writer:
        writer.write_truth_bits(truth)
    message = np.zeros(big, np.complex64)
    message[:n_big * L] = np.concatenate(frames[:n_big])
    sender = _Sender(endpoint, [message] + frames[n_big:])
    sender.start()
    sender.ready.wait(10)
    t0 = time.perf_counter()
    proc, paths = _rx_process(tmp_path, "big", endpoint, "--idle-timeout", "1", "--truth", str(tmp_path / "truth.h5"))
    peak = _peak_memory(proc)
    exit_s = time.perf_counter() - t0
    sender.release.set()
    err = proc.stderr.read().decode()
    report = json.loads(paths["json"].read_text())
    assert proc.wait() == ExitStatus.OK and "Traceback" not in err, err
    rows = _check_rows(paths["h5"], truth)
    with h5py.File(paths["h5"], "r") as f:
        assert f["seq"][-1] == n_big + 9                               # the last frame, after the message
    dropped = report["runner"]["frames_dropped"]
    assert rows == report["frames"] == n_big + 10 - dropped and dropped > 0
    assert report["frames_matched_by"]["content"] == rows and report["frames_lost"] == dropped
    assert 0 < peak < 2 ** 30 and exit_s < 60


def _peak_memory(proc: subprocess.Popen) -> int:
    """The peak resident memory (bytes) of ``proc``'s program, read off /proc until it exits
    (its high-water mark: the rusage of a child counts the forking process's too)."""
    peak = 0
    while proc.poll() is None:
        try:
            with open(f"/proc/{proc.pid}/status") as status:
                peak = max([peak] + [int(line.split()[1]) * 1024 for line in status if line.startswith("VmHWM:")])
        except OSError:
            pass
        time.sleep(0.05)
    return peak


def _rows(path) -> int:
    try:
        with h5py.File(path, "r", swmr=True) as f:
            return f["bits"].shape[0]
    except (OSError, KeyError):
        return 0


@pytest.mark.timeout(150)
def test_sigterm_drains_and_sigkill_keeps_the_flushed_rows(tmp_path):
    """Item 1: three rx processes writing --out mid-stream. SIGTERM to one: it drains,
    closes the file, writes the report and exits 0 within seconds. SIGHUP twice to another:
    the queued frames abandoned (counted dropped), the file closed, the report written.
    SIGKILL to the third: every row it flushed reads back right."""
    truth, frames = _frames(400, seed=7)
    runs = {}
    for name, sig in (("term", signal.SIGTERM), ("hup", signal.SIGHUP), ("kill", signal.SIGKILL)):
        endpoint = f"ipc://{tmp_path}/{name}"
        sender = _Sender(endpoint, frames, pause_s=0 if sig == signal.SIGHUP else 0.02)   # HUP: a backlog
        sender.start()
        sender.ready.wait(10)
        runs[name] = (sig, sender, *_rx_process(tmp_path, name, endpoint))
    deadline = time.monotonic() + 120
    for name, (sig, _, proc, paths) in runs.items():
        while _rows(paths["h5"]) < 3:
            assert proc.poll() is None and time.monotonic() < deadline, proc.stderr.read().decode()
            time.sleep(0.05)
        runs[name] += (time.perf_counter(),)
        proc.send_signal(sig)
        if sig == signal.SIGHUP:
            time.sleep(0.05)
            proc.send_signal(sig)
    for name, (sig, sender, proc, paths, t_signal) in runs.items():
        status = proc.wait(30)
        sender.release.set()
        exit_s = time.perf_counter() - t_signal
        err = proc.stderr.read().decode()
        assert "Traceback" not in err, err
        rows = _check_rows(paths["h5"], truth)
        if sig != signal.SIGKILL:
            report = json.loads(paths["json"].read_text())
            assert status == ExitStatus.OK and exit_s < 10, err
            assert rows == report["frames"] >= 3 and report["stopped_by"] == "signal"
            assert f"interrupted ({signal.Signals(sig).name})" in err
            assert (sig == signal.SIGHUP) == ("abandoning queued frames" in err)
        else:
            assert status == -signal.SIGKILL and rows >= 3 and not paths["json"].exists()


def test_tx_over_pub_says_when_no_subscriber_is_there(tmp_path, capsys):
    """Item 2: tx over PUB with nobody subscribed warns (its frames are dropped); with a
    subscriber connected it does not."""
    endpoint = f"ipc://{tmp_path}/pub"
    argv = ["tx", "--out", endpoint, *GRID, "--frames", "2", "--connect-wait", "0.3"]
    assert main(argv) == ExitStatus.OK
    assert "no subscriber connected" in capsys.readouterr().err
    ctx = zmq.Context()
    sub = ctx.socket(zmq.SUB)
    sub.setsockopt(zmq.SUBSCRIBE, b"")
    sub.connect(endpoint)                  # connects once tx binds (ZeroMQ retries)
    try:
        assert main(argv) == ExitStatus.OK
    finally:
        sub.close(0)
        ctx.term()
    assert "no subscriber connected" not in capsys.readouterr().err
