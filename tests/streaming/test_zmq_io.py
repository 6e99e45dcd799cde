"""gr-zeromq compatible IQ source/sink, pass_tags/PMT, results, endpoint rules, CurveZMQ."""
import json
import shutil
import signal
import subprocess
import sys
import textwrap
import time

import numpy as np
import pytest
import zmq

from streaming.security import CurveConfig, generate_certificates
from streaming.zmq_io import (FrameResult, IQSink, IQSource, ResultPublisher, ResultSubscriber,
                              Tag, check_endpoint, decode_result, decode_tag_header, encode_result,
                              encode_tag_header)

pytestmark = pytest.mark.timeout(60)

LOOPBACK = "tcp://127.0.0.1:*"

# One message from GNU Radio 3.10.5 zeromq.push_sink(pass_tags=True): 6 samples
# arange(6) * (1 - 0.5j), tags at 1 (rx_time, (1700000000, 0.25), srcid "src") and
# 4 (rx_freq, 2.4e9).
GNURADIO_MESSAGE = (
    "f05f0100000000000000000200000000000000010000000000000002000772785f74696d650c000000020b"
    "000000006553f100043fd0000000000000020003737263040000000000000002000772785f66726571044"
    "1e1e1a3000000000100000000000000000000803f000000bf00000040000080bf000040400000c0bf0000"
    "8040000000c00000a040000020c0")


def wait_for(predicate, timeout_s=5.0, interval_s=0.01):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return True
        time.sleep(interval_s)
    return predicate()


def receive_all(source, n_samples, timeout_s=10.0):
    """Concatenate received samples until n_samples arrived (or time runs out)."""
    got, total = [], 0
    deadline = time.monotonic() + timeout_s
    while total < n_samples and time.monotonic() < deadline:
        x = source.recv()
        if x is not None:
            got.append(x.copy())
            total += x.size
    return np.concatenate(got) if got else np.zeros(0, np.complex64)


def sync_pub_sub(sink, *sources, timeout_s=5.0):
    """Wait until every SUB receives from the PUB (ZeroMQ's slow joiner), then drain."""
    marker = np.array([1234.5 + 0j], np.complex64)
    pending = set(range(len(sources)))
    deadline = time.monotonic() + timeout_s
    while pending and time.monotonic() < deadline:
        sink.send(marker)
        for i in list(pending):
            x = sources[i].recv()
            if x is not None and x.size == 1 and x[0] == marker[0]:
                pending.discard(i)
    assert not pending, "subscribers never received the publisher"
    end = np.array([-1.0 + 0j], np.complex64)
    pending = set(range(len(sources)))
    while pending and time.monotonic() < deadline:
        sink.send(end)
        for i in list(pending):
            while (x := sources[i].recv()) is not None:
                if x.size == 1 and x[0] == end[0]:
                    pending.discard(i)
                    break
    assert not pending, "subscribers never saw the end of the synchronisation"
    for source in sources:                      # nothing is sent any more: drain what is left
        while source.recv() is not None:
            pass
        source.stats.messages = source.stats.samples = source.stats.bytes = 0
    sink.stats.messages = sink.stats.dropped_messages = 0


def random_stream(rng, n):
    return (rng.standard_normal(n) + 1j * rng.standard_normal(n)).astype(np.complex64)


# ---- the pass_tags header ----------------------------------------------------------------------
def test_gnuradio_pass_tags_message_decodes():
    raw = bytes.fromhex(GNURADIO_MESSAGE)
    offset, tags, header_len, order = decode_tag_header(raw)
    assert (offset, order) == (0, "<")
    assert tags == (Tag(1, "rx_time", (1700000000, 0.25), "src"), Tag(4, "rx_freq", 2.4e9, False))
    samples = np.frombuffer(raw, "<c8", offset=header_len)
    np.testing.assert_array_equal(samples, (np.arange(6) * (1 - 0.5j)).astype(np.complex64))
    assert isinstance(tags[0].value[0], np.uint64)                 # uint64 stays uint64
    assert encode_tag_header(offset, tags) == raw[:header_len]


# ---- IQ streams --------------------------------------------------------------------------------
def test_raw_messages_of_random_lengths_reassemble_exactly():
    rng = np.random.default_rng(1)
    stream = random_stream(rng, 200_000)
    cuts = np.sort(rng.choice(np.arange(1, stream.size), size=150, replace=False))
    pieces = np.split(stream, cuts)
    with IQSource(LOOPBACK, "pull", bind=True, timeout_ms=200) as source, \
            IQSink(source.endpoint, "push", bind=False, send_timeout_ms=5000) as sink:
        for piece in pieces:
            assert sink.send(piece)
        got = receive_all(source, stream.size)
        np.testing.assert_array_equal(got, stream)
        assert source.stats.messages == len(pieces)
        assert source.stats.samples == stream.size
        assert source.stats.bad_messages == 0


def test_ipc_transport(tmp_path):
    endpoint = f"ipc://{tmp_path}/iq"
    stream = random_stream(np.random.default_rng(2), 8191 * 3)
    with IQSink(endpoint, "push", send_timeout_ms=5000) as sink, \
            IQSource(endpoint, "pull", timeout_ms=200) as source:
        for piece in np.split(stream, 3):
            sink.send(piece)
        np.testing.assert_array_equal(receive_all(source, stream.size), stream)


def test_pub_key_frames_and_topic_filter():
    stream = random_stream(np.random.default_rng(3), 4096)
    with IQSink(LOOPBACK, "pub", key="zak") as sink, \
            IQSource(sink.endpoint, "sub", key="zak", timeout_ms=50) as keyed, \
            IQSource(sink.endpoint, "sub", timeout_ms=50) as unfiltered, \
            IQSource(sink.endpoint, "sub", key="other", timeout_ms=50) as other:
        sync_pub_sub(sink, keyed, unfiltered)
        for piece in np.split(stream, 4):
            sink.send(piece)
        np.testing.assert_array_equal(receive_all(keyed, stream.size), stream)
        np.testing.assert_array_equal(receive_all(unfiltered, stream.size), stream)
        assert other.recv() is None and other.stats.messages == 0


def test_pass_tags_round_trip_gap_and_reset():
    rng = np.random.default_rng(4)
    a, b, c = random_stream(rng, 1000), random_stream(rng, 500), random_stream(rng, 300)
    tags = [Tag(10, "rx_time", (np.uint64(1700000000), 0.125), "usrp"),
            Tag(999, "burst", {"len": 3, "iq": np.array([1 + 1j], np.complex64)}, False)]
    with IQSource(LOOPBACK, "pull", bind=True, timeout_ms=200) as source, \
            IQSink(source.endpoint, "push", bind=False, pass_tags=True, send_timeout_ms=5000) as sink:
        sink.send(a, tags=tags)
        sink.offset += 700                     # 700 samples never sent: a gap
        sink.send(b)
        sink.send(c, offset=0)                 # sender restarted
        chunks = [source.recv_chunk() for _ in range(3)]
    assert [ch.offset for ch in chunks] == [0, 1700, 0]
    assert [ch.missing for ch in chunks] == [0, 700, 0]
    np.testing.assert_array_equal(chunks[0].samples, a)
    np.testing.assert_array_equal(chunks[1].samples, b)
    assert chunks[0].tags[0] == Tag(10, "rx_time", (1700000000, 0.125), "usrp")
    assert chunks[0].tags[1].value["len"] == 3
    np.testing.assert_array_equal(chunks[0].tags[1].value["iq"], [1 + 1j])
    assert chunks[1].tags == ()
    stats = source.stats
    assert (stats.gaps, stats.samples_lost, stats.offset_resets, stats.tags) == (1, 700, 1, 2)


def test_a_gap_before_an_empty_message_is_carried_to_the_next_samples():
    """pass_tags offsets: 50 samples lost before a message with no samples (a header alone),
    which returns nothing: the next chunk carries them in ``missing``."""
    rng = np.random.default_rng(6)
    a, b = random_stream(rng, 100), random_stream(rng, 80)
    with IQSource(LOOPBACK, "pull", bind=True, timeout_ms=200) as source, \
            IQSink(source.endpoint, "push", bind=False, pass_tags=True, send_timeout_ms=5000) as sink:
        sink.send(a)
        sink.offset += 50
        sink.send(np.zeros(0, np.complex64))
        sink.send(b)
        chunks = [source.recv_chunk() for _ in range(2)]
    assert [(ch.offset, ch.missing) for ch in chunks] == [(0, 0), (150, 50)]
    np.testing.assert_array_equal(chunks[1].samples, b)


def test_gnuradio_message_over_the_socket():
    with IQSource(LOOPBACK, "pull", bind=True, timeout_ms=500) as source:
        ctx = zmq.Context()
        push = ctx.socket(zmq.PUSH)
        push.connect(source.endpoint)
        push.send(bytes.fromhex(GNURADIO_MESSAGE))
        chunk = source.recv_chunk()
        push.close(0)
        ctx.term()
    assert chunk.offset == 0 and len(chunk.tags) == 2
    np.testing.assert_array_equal(chunk.samples, (np.arange(6) * (1 - 0.5j)).astype(np.complex64))


def _raw_push(endpoint):
    ctx = zmq.Context()
    push = ctx.socket(zmq.PUSH)
    push.setsockopt(zmq.LINGER, 1000)
    push.connect(endpoint)
    return ctx, push


def test_malformed_messages_are_counted_and_skipped(caplog):
    good = np.arange(4, dtype=np.complex64)
    header = encode_tag_header(0, [Tag(0, "key", "value", False)])
    with IQSource(LOOPBACK, "pull", bind=True, timeout_ms=300, pass_tags=True) as source:
        ctx, push = _raw_push(source.endpoint)
        push.send(header[:12])                                   # truncated fixed header
        push.send(header[:-3])                                   # truncated tag
        push.send(b"\x00" * 24)                                  # no header at all
        push.send(header + b"\x00" * 12)                         # 12 payload bytes: 1.5 samples
        push.send_multipart([b"a", b"b", b"c"])                  # three frames
        push.send(encode_tag_header(0) + good.tobytes())         # finally a good one
        got = source.recv()
        push.close()
        ctx.term()
    np.testing.assert_array_equal(got, good)
    assert source.stats.bad_messages == 5
    assert source.stats.messages == 6
    assert "malformed" in caplog.text


def test_raw_odd_lengths_and_pass_tags_decided_per_message():
    """Detection is per message and never latched: raw samples after a header (a sender
    restarted without pass_tags) are samples; a header that does not parse consistently
    (a tag outside its message) is raw data that looks alike; odd sizes are counted with
    the formats they fit."""
    samples = np.arange(3, dtype=np.complex64)
    with IQSource(LOOPBACK, "pull", bind=True, timeout_ms=300) as source:
        ctx, push = _raw_push(source.endpoint)
        push.send(b"\x01" * 12)                                  # not a multiple of 8: ci16 fits
        push.send(samples.tobytes())                             # raw
        push.send(encode_tag_header(5) + samples.tobytes())      # header
        push.send(samples.tobytes())                             # raw again: samples, offset unknown
        push.send(encode_tag_header(8) + samples.tobytes())
        key = "k" * (1 + (-len(encode_tag_header(20, [Tag(99, "k", 1)]))) % 8)   # header of whole samples
        push.send(encode_tag_header(20, [Tag(99, key, 1)]) + samples.tobytes())   # tag outside: raw
        chunks = [source.recv_chunk() for _ in range(5)]
        push.close()
        ctx.term()
    assert [c.offset for c in chunks] == [None, 5, None, 8, None]
    assert chunks[4].samples.size > samples.size                  # the header bytes read as samples
    assert source.stats.bad_messages == 1 and source.stats.size_mismatches == 1
    assert source.stats.sizes_fit == ["ci16_le", "ci8"]


def test_nonfinite_samples_pass_through_and_are_counted():
    x = np.ones(100, np.complex64)
    x[3] = np.nan
    x[50] = complex(np.inf, 0)
    x[60] = complex(0, -np.inf)
    big = np.full(10, 3e38 + 3e38j, np.complex64)                # finite, but far beyond any full scale
    with IQSource(LOOPBACK, "pull", bind=True, timeout_ms=300) as source, \
            IQSink(source.endpoint, "push", bind=False, send_timeout_ms=5000) as sink:
        sink.send(x)
        sink.send(big)
        got = source.recv()
        got_big = source.recv()
    assert np.isnan(got[3]) and np.isinf(got[50].real) and np.isinf(got[60].imag)
    np.testing.assert_array_equal(got_big, big)
    assert source.stats.nonfinite_samples == 3 + 10


_SENDER = textwrap.dedent("""
    import sys, time, numpy as np, zmq
    ctx = zmq.Context(); s = ctx.socket(zmq.PUSH); s.setsockopt(zmq.LINGER, 0)
    s.bind(sys.argv[1]); print(s.getsockopt_string(zmq.LAST_ENDPOINT), flush=True)
    msg = np.full(1000, float(sys.argv[2]), np.complex64).tobytes()
    while True:
        s.send(msg); time.sleep(0.005)
""")


def _start_sender(endpoint, value):
    proc = subprocess.Popen([sys.executable, "-c", _SENDER, endpoint, str(value)],
                            stdout=subprocess.PIPE, text=True)
    return proc, proc.stdout.readline().strip()


def test_sender_killed_and_restarted_source_keeps_receiving():
    first, endpoint = _start_sender(LOOPBACK, 1.0)
    second = None
    try:
        with IQSource(endpoint, "pull", timeout_ms=100) as source:
            assert wait_for(lambda: (x := source.recv()) is not None and x[0] == 1.0)
            first.send_signal(signal.SIGKILL)
            first.wait(5)
            second, endpoint2 = _start_sender(endpoint, 2.0)
            assert endpoint2 == endpoint
            seen = set()
            assert wait_for(lambda: seen.add(float(x[0].real)) or 2.0 in seen
                            if (x := source.recv()) is not None else False, timeout_s=10)
            assert source.stats.bad_messages == 0
    finally:
        for proc in (first, second):
            if proc is not None and proc.poll() is None:
                proc.kill()
                proc.wait(5)


def test_unreachable_endpoint_times_out_without_hanging():
    probe = zmq.Context().socket(zmq.REP)                 # find a port nobody listens on
    port = probe.bind_to_random_port("tcp://127.0.0.1")
    probe.close(0)
    with IQSource(f"tcp://127.0.0.1:{port}", "sub", timeout_ms=100) as source:
        t0 = time.monotonic()
        assert source.recv() is None
        assert time.monotonic() - t0 < 1.0
        assert source.stats.timeouts == 1


def test_push_without_receiver_counts_a_drop_instead_of_hanging():
    with IQSink(LOOPBACK, "push", send_timeout_ms=50) as sink:
        t0 = time.monotonic()
        assert sink.send(np.ones(10, np.complex64)) is False
        assert time.monotonic() - t0 < 1.0
        assert (sink.stats.dropped_messages, sink.stats.dropped_samples) == (1, 10)
        assert sink.offset == 10


def test_pub_nodrop_counts_what_zeromq_would_drop_silently():
    payload = np.zeros(8192, np.complex64)
    with IQSink(LOOPBACK, "pub", hwm=1, nodrop=True, send_timeout_ms=0, linger_ms=0) as sink, \
            IQSource(sink.endpoint, "sub", hwm=1, timeout_ms=50) as source:
        sync_pub_sub(sink, source)
        for _ in range(2000):
            sink.send(payload)
        assert sink.stats.dropped_messages > 0
        received = 0
        while source.recv() is not None:
            received += 1
        assert received == sink.stats.messages
        assert received + sink.stats.dropped_messages == 2000


@pytest.mark.parametrize("endpoint, bind, message", [
    ("tcp://127.0.0.1", False, "tcp://HOST:PORT"),
    ("udp://127.0.0.1:5000", False, "tcp://HOST:PORT"),
    ("tcp://127.0.0.1:*", False, "tcp://HOST:PORT"),
    ("tcp://*:5555", True, "allow_remote"),
    ("tcp://0.0.0.0:*", True, "allow_remote"),
    ("tcp://eth0:5555", True, "allow_remote"),
])
def test_endpoint_rules(endpoint, bind, message):
    with pytest.raises(ValueError, match=message):
        check_endpoint(endpoint, bind=bind)
    with pytest.raises(ValueError, match=message):
        (IQSink if bind else IQSource)(endpoint, bind=bind)


def test_endpoint_rules_accept_loopback_and_remote_connect():
    for endpoint in ("tcp://127.0.0.1:*", "tcp://localhost:5555", "tcp://[::1]:5555", "tcp://lo:1"):
        check_endpoint(endpoint, bind=True)
    check_endpoint("tcp://192.0.2.1:5555", bind=False)
    check_endpoint("tcp://*:5555", bind=True, allow_remote=True)


def test_address_in_use_is_an_oserror():
    with IQSink(LOOPBACK, "push") as sink:
        with pytest.raises(OSError, match="in use"):
            IQSink(sink.endpoint, "push")


def test_parameter_validation():
    with pytest.raises(ValueError, match="pattern"):
        IQSource(LOOPBACK, "push", bind=True)
    with pytest.raises(ValueError, match="timeout_ms"):
        IQSource(LOOPBACK, bind=True, timeout_ms=-1)
    with pytest.raises(ValueError, match="nodrop"):
        IQSink(LOOPBACK, "push", nodrop=True)
    with pytest.raises(ValueError, match="hwm"):
        IQSink(LOOPBACK, hwm=-1)


# ---- results -----------------------------------------------------------------------------------
class _Result:
    def __init__(self, bits, llr):
        self.bits, self.llr = bits, llr


def test_results_round_trip_one_message_per_frame():
    rng = np.random.default_rng(5)
    bits = rng.integers(0, 2, (3, 13), dtype=np.uint8)
    llr = rng.standard_normal((3, 13)).astype(np.float32)
    with ResultSubscriber(LOOPBACK, "pull", bind=True, timeout_ms=1000) as sub, \
            ResultPublisher(sub.endpoint, "push", bind=False, payload="both") as pub:
        pub(_Result(bits, llr), [{"seq": 7, "t_ingest": 1.0, "metrics": {"snr_db": np.float32(12.5)}},
                                 {"seq": 8}, {"seq": 9}])
        assert pub.publish(42, llr=llr[0], timing={"total_us": 3})
        got = [sub.recv() for _ in range(4)]
    assert [r.seq for r in got] == [7, 8, 9, 42]
    for i in range(3):
        np.testing.assert_array_equal(got[i].bits, bits[i])
        np.testing.assert_array_equal(got[i].llr, llr[i])
    assert got[0].header["timing"] == {"t_ingest": 1.0}
    assert got[0].header["metrics"] == {"snr_db": 12.5}
    assert got[3].bits is None and got[3].header["timing"] == {"total_us": 3}
    np.testing.assert_array_equal(got[3].llr, llr[0])


def test_result_messages_carry_the_receivers_per_frame_metrics():
    """A receiver result's SINR, N0, CFO, CG residual and pilot echo of each frame go into
    its message's ``metrics``, beside what the frame's meta adds; a frame with no echo (NaN)
    carries none."""
    result = _Result(np.zeros((2, 8), np.uint8), None)
    result.sinr_db, result.noise_var = np.array([18.5, 3.25]), np.array([1e-3, 2e-3])
    result.cfo_hz, result.cg_residual = np.array([-612.0, 2400.5]), np.float32([1e-4, 2e-4])
    result.echo_delay, result.echo_db = np.array([np.nan, 198.0]), np.array([np.nan, -12.5])
    with ResultSubscriber(LOOPBACK, "pull", bind=True, timeout_ms=1000) as sub, \
            ResultPublisher(sub.endpoint, "push", bind=False) as pub:
        pub(result, [{"seq": 0, "metrics": {"worker": "w1"}}, {"seq": 1}])
        got = [sub.recv() for _ in range(2)]
    assert got[0].header["metrics"] == {"sinr_db": 18.5, "noise_var": 1e-3, "cfo_hz": -612.0,
                                        "cg_residual": pytest.approx(1e-4), "worker": "w1"}
    assert got[1].header["metrics"]["cfo_hz"] == 2400.5
    assert (got[1].header["metrics"]["echo_delay"], got[1].header["metrics"]["echo_db"]) == (198.0, -12.5)


def test_int8_llrs_travel_as_one_byte_each_with_their_step():
    codes = np.array([-127, -3, 0, 5, 127], np.int8)
    parts = encode_result(4, bits=(codes < 0).astype(np.uint8), llr=codes, llr_step=0.125)
    assert len(parts[2]) == codes.size and json.loads(parts[0])["llr_step"] == 0.125
    got = decode_result(parts)
    assert got.llr.dtype == np.int8 and got.llr_step == 0.125
    np.testing.assert_array_equal(got.llr, codes)
    assert decode_result(encode_result(5, llr=np.ones(3, np.float32))).llr_step is None
    with pytest.raises(ValueError, match="int8 codes"):
        encode_result(6, llr=np.ones(3, np.float32), llr_step=0.125)
    with pytest.raises(ValueError, match="int8 values"):
        decode_result(parts[:2] + [parts[2][:-1]])                 # one byte short


def test_malformed_result_messages_are_skipped():
    with ResultSubscriber(LOOPBACK, "pull", bind=True, timeout_ms=500) as sub:
        ctx, push = _raw_push(sub.endpoint)
        push.send(b"not json")
        push.send_multipart(encode_result(1, bits=np.ones(9, np.uint8))[:1])   # payload missing
        push.send_multipart(encode_result(2, bits=np.ones(9, np.uint8)))
        got = sub.recv()
        push.close()
        ctx.term()
    assert isinstance(got, FrameResult) and got.seq == 2 and sub.bad_messages == 2


# ---- CurveZMQ ----------------------------------------------------------------------------------
def test_curve_unauthorised_client_receives_nothing(tmp_path):
    server_public, server_secret = generate_certificates(tmp_path / "server", "server")
    good_public, good_secret = generate_certificates(tmp_path / "clients", "good")
    _, bad_secret = generate_certificates(tmp_path / "clients", "bad")
    allowed = tmp_path / "allowed"
    allowed.mkdir()
    shutil.copy(good_public, allowed)                          # only "good" is authorised

    payload = np.arange(16, dtype=np.complex64)
    server = CurveConfig.server(server_secret, allowed)
    with IQSink(LOOPBACK, "pub", curve=server) as sink, \
            IQSource(sink.endpoint, curve=CurveConfig.client(good_secret, server_public),
                     timeout_ms=20) as good, \
            IQSource(sink.endpoint, curve=CurveConfig.client(bad_secret, server_public),
                     timeout_ms=20) as bad:
        received = None
        deadline = time.monotonic() + 10
        while received is None and time.monotonic() < deadline:
            sink.send(payload)
            received = good.recv()
            assert bad.recv() is None
        np.testing.assert_array_equal(received, payload)
        for _ in range(10):
            sink.send(payload)
            assert bad.recv() is None
        assert bad.stats.messages == 0


def test_curve_config_validation(tmp_path):
    public, secret = generate_certificates(tmp_path, "a")
    with pytest.raises(ValueError, match="secret"):
        CurveConfig.server(public)
    with pytest.raises(ValueError, match="no certificate"):
        CurveConfig.client(secret, tmp_path / "missing.key")
    with pytest.raises(ValueError, match="authorized_keys_dir"):
        CurveConfig(secret, public, tmp_path)
