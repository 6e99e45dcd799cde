"""ZeroMQ I/O compatible with GNU Radio's gr-zeromq: IQ sources and sinks, result messages.

Wire format
-----------
* IQ: each message is interleaved float32 I/Q, i.e. numpy ``complex64`` little-endian, any
  length; message boundaries say nothing about frames. ``sample_format`` (on both ends)
  takes interleaved int16 or int8 I/Q instead (``ci16_le``, ``ci8``; UHD's sc16 / sc8,
  :mod:`streaming.sample_format`): half or a quarter of the bytes.
* A PUB sink with a non-empty key sends the key as a first frame (SNDMORE), then the payload.
* gr-zeromq ``pass_tags``: the payload frame starts with a header, host-endian (little-endian
  on every machine GNU Radio runs on today; a big-endian header is recognised by its magic
  and decoded too): ``uint16 magic 0x5FF0, uint8 version 1, uint64 offset`` (absolute index
  of the message's first sample), ``uint64 ntags``, then per tag ``uint64 offset`` and the
  PMT-serialised key, value and srcid (:mod:`streaming.pmt`, byte-identical to GNU Radio's
  ``pmt_serialize.cc``).
* Results: one multipart message a frame, a UTF-8 JSON header (``seq``, ``payload``, ``n``,
  ``timing``, ``metrics``) then one frame per payload: ``np.packbits`` of the bits (MSB first)
  and/or the LLRs as float32 little-endian.

Socket choices
--------------
* Like gr-zeromq, sinks bind and sources connect by default; ``bind`` switches either.
* Endpoints default to loopback (:data:`DEFAULT_IQ_ENDPOINT` ``tcp://127.0.0.1:5555`` for
  IQ, :data:`DEFAULT_RESULT_ENDPOINT` ``tcp://127.0.0.1:5556`` for results). Binding any
  other interface (``tcp://*:5555``, ``tcp://0.0.0.0:5555``, an interface name) exposes
  unauthenticated raw samples to the network, so it needs ``allow_remote=True``; pair it
  with ``curve=`` (:mod:`.security`). ``tcp://127.0.0.1:*`` binds a free port; read it back
  from ``.endpoint``.
* ``timeout_ms`` (default 100, gr-zeromq's) bounds every receive: ``recv()`` returns None
  when nothing came, it never blocks forever. A connect to an endpoint where nobody listens
  is not an error in ZeroMQ (it retries in the background): it shows as timeouts.
* ``hwm``: None keeps ZeroMQ's default of 1000 messages a pipe (gr-zeromq's -1). At 8191
  samples a message that is 64 MiB, about 0.27 s of the 245.76 Msps stream, enough to ride
  out a scheduling hiccup without hiding a receiver that cannot keep up.
* PUB drops whole messages silently when a subscriber's pipe reaches the HWM (ZeroMQ's PUB
  semantics; the gap then shows at a pass_tags receiver as an offset jump). ``nodrop=True``
  sets ``ZMQ_XPUB_NODROP`` so a full pipe makes the send fail after ``send_timeout_ms``
  instead, and the sink counts the message in ``stats.dropped_messages``.
* PUSH blocks when no peer has room (backpressure); here that block is bounded by
  ``send_timeout_ms`` (default 100) and a message that could not go is counted as dropped
  rather than hanging the transmitter.
* ``linger_ms`` (default 1000, gr-zeromq's): how long ``close()`` may wait to deliver queued
  messages; sources use 0 (nothing to deliver).
* Each object owns its ZeroMQ context unless one is passed (``context=``), so there is no
  process-wide state; pass a ``zmq.Context(io_threads=k)`` for more I/O threads. A socket is
  used from one thread at a time. A CURVE server starts its context's ZAP handler, so at
  most one CURVE server socket may share a context.

Receiving
---------
* Zero copy: sources receive with ``copy=False`` and return ``np.frombuffer`` views of the
  ZeroMQ frame (no copy for little-endian cf32; fixed point is converted in one pass); the
  array keeps the frame alive. After a pass_tags header the view may be unaligned; copy it
  if a consumer needs alignment.
* ``pass_tags=None`` detects the header (magic, version, a parse that leaves a whole number
  of samples) and then requires it on every later message; raw data that merely starts
  like a header before that is taken as samples. Pass True/False to remove the guess.
* Malformed messages are counted (``stats.bad_messages``) and skipped with a rate-limited
  warning; ``recv`` never raises on input data. NaN/Inf samples are passed through and
  counted: one BLAS pass over the message (about 10 us per 64 KiB message coming from
  DRAM, see ``bench/zmq_ingest.py``; ``check_finite=False`` skips it).
"""
from __future__ import annotations

import ipaddress
import json
import logging
import math
import struct
import time
from dataclasses import asdict, dataclass
from typing import Any, Iterable

import numpy as np
import zmq

from zakotfs.frame_stats import FRAME_STATISTICS

from .pmt import PmtError, PmtPair, PmtReader, pmt_deserialize, pmt_serialize
from .sample_format import LevelMeter, SampleEncoder, SampleFormat, sample_format as _sample_format
from .security import CurveConfig

__all__ = [
    "DEFAULT_IQ_ENDPOINT", "DEFAULT_RESULT_ENDPOINT", "ENDPOINT_SCHEMES", "is_endpoint",
    "IQSource", "IQSink", "IQChunk", "SourceStats", "SinkStats",
    "ResultPublisher", "ResultSubscriber", "FrameResult", "encode_result", "decode_result", "FRAME_METRICS",
    "frame_metrics",
    "Tag", "encode_tag_header", "decode_tag_header", "check_endpoint", "ZmqSocketBase",
    # re-exported from .pmt, where the codec lives (tag keys and values are PMTs)
    "PmtPair", "PmtError", "pmt_serialize", "pmt_deserialize",
]

logger = logging.getLogger(__name__)

DEFAULT_IQ_ENDPOINT = "tcp://127.0.0.1:5555"
DEFAULT_RESULT_ENDPOINT = "tcp://127.0.0.1:5556"
TAG_HEADER_MAGIC = 0x5FF0
TAG_HEADER_VERSION = 1
_HEADER_LE = struct.Struct("<HBQQ")
_HEADER_BE = struct.Struct(">HBQQ")
_MAGIC_LE = struct.pack("<H", TAG_HEADER_MAGIC)
_MAGIC_BE = struct.pack(">H", TAG_HEADER_MAGIC)


# ---------------------------------------------------------------------------------------------
# gr-zeromq pass_tags header
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Tag:
    """A GNU Radio stream tag. ``offset`` is absolute (stream index of the tagged sample)."""

    offset: int
    key: Any
    value: Any
    srcid: Any = False


def encode_tag_header(offset: int, tags: Iterable[Tag] = ()) -> bytes:
    """The gr-zeromq pass_tags header (little-endian) for a message starting at ``offset``."""
    tags = list(tags)
    out = bytearray(_HEADER_LE.pack(TAG_HEADER_MAGIC, TAG_HEADER_VERSION, int(offset), len(tags)))
    for tag in tags:
        out += struct.pack("<Q", int(tag.offset))
        for part in (tag.key, tag.value, tag.srcid):
            out += pmt_serialize(part)
    return bytes(out)


def decode_tag_header(buf) -> tuple[int, tuple[Tag, ...], int, str]:
    """Parse a pass_tags header at the start of ``buf``.

    Returns
    -------
    offset : int
        Absolute stream index of the first sample of the message.
    tags : tuple of Tag
    header_len : int
        Bytes the header occupies; the samples follow.
    byteorder : str
        ``"<"`` or ``">"``, the host order of the sender (read from the magic).

    Raises :class:`PmtError` (a ValueError) on a bad magic, version or truncated header.
    """
    view = memoryview(buf).cast("B")
    if len(view) < _HEADER_LE.size:
        raise PmtError(f"message of {len(view)} bytes is shorter than a pass_tags header "
                       f"({_HEADER_LE.size} bytes)")
    if view[:2] == _MAGIC_LE:
        order, header, u64 = "<", _HEADER_LE, struct.Struct("<Q")
    elif view[:2] == _MAGIC_BE:
        order, header, u64 = ">", _HEADER_BE, struct.Struct(">Q")
    else:
        raise PmtError(f"bad pass_tags magic {bytes(view[:2]).hex()}")
    _, version, offset, ntags = header.unpack_from(view)
    if version != TAG_HEADER_VERSION:
        raise PmtError(f"pass_tags header version {version}, expected {TAG_HEADER_VERSION}")
    reader = PmtReader(view, header.size)
    if ntags * (u64.size + 3) > len(view) - reader.pos:
        raise PmtError(f"truncated: {ntags} tags announced in {len(view) - reader.pos} bytes")
    tags = []
    for _ in range(ntags):
        (tag_offset,) = u64.unpack(reader.take(u64.size))
        key, value, srcid = reader.read(), reader.read(), reader.read()
        tags.append(Tag(tag_offset, key, value, srcid))
    return offset, tuple(tags), reader.pos, order


# ---------------------------------------------------------------------------------------------
# sockets
# ---------------------------------------------------------------------------------------------
def _is_loopback(host: str) -> bool:
    host = host.strip("[]")
    if host in ("localhost", "lo"):
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


ENDPOINT_SCHEMES = ("tcp://", "ipc://", "inproc://")


def is_endpoint(text: str) -> bool:
    """Whether ``text`` names a ZeroMQ endpoint (``tcp://``, ``ipc://``, ``inproc://``) rather
    than a file."""
    return str(text).startswith(ENDPOINT_SCHEMES)


def check_endpoint(endpoint: str, *, bind: bool, allow_remote: bool = False) -> str:
    """Validate a ZeroMQ address; binding a non-loopback TCP interface needs ``allow_remote``.

    Accepts ``tcp://HOST:PORT`` (PORT may be ``*`` when binding), ``ipc://PATH`` and
    ``inproc://NAME``. Returns ``endpoint`` unchanged.
    """
    if not isinstance(endpoint, str):
        raise TypeError(f"endpoint must be a str such as 'tcp://127.0.0.1:5555', "
                        f"got {type(endpoint).__name__}")
    scheme, sep, rest = endpoint.partition("://")
    if not sep or scheme not in ("tcp", "ipc", "inproc") or not rest:
        raise ValueError(f"endpoint must look like tcp://HOST:PORT, ipc://PATH or inproc://NAME, "
                         f"got {endpoint!r}")
    if scheme == "tcp":
        host, colon, port = rest.rpartition(":")
        if not colon or not host or not (port.isdigit() or (bind and port == "*")):
            raise ValueError(f"endpoint {endpoint!r}: expected tcp://HOST:PORT"
                             f"{' (PORT may be * to pick a free one)' if bind else ''}")
        if bind and not allow_remote and not _is_loopback(host):
            raise ValueError(
                f"endpoint {endpoint!r} binds the non-loopback interface {host!r}, which exposes "
                f"the socket (raw samples, no authentication) to the network; bind "
                f"tcp://127.0.0.1:PORT, or pass allow_remote=True (with curve=) to mean it")
    return endpoint


class ZmqSocketBase:
    """Base class of the ZeroMQ endpoints here: one socket, opened and closed safely.

    Parameters
    ----------
    socket_type : int
        ``zmq.PUSH``, ``zmq.PULL``, ``zmq.PUB``, ``zmq.SUB``, ...
    endpoint : str
        Checked by :func:`check_endpoint` (binding off loopback needs ``allow_remote``).
    bind : bool
        Bind (True) or connect (False).
    allow_remote : bool
    curve : CurveConfig or None
        Applied to the socket; a CURVE server also starts its context's ZAP handler.
    linger_ms : int
        ``ZMQ_LINGER``, >= 0: how long :meth:`close` may wait to deliver queued messages.
    context : zmq.Context or None
        Shared context; None creates one that :meth:`close` terminates.
    options : dict
        ``{zmq socket option: value}`` set before binding or connecting.

    Whatever fails on the way closes what was already opened: a port in use raises OSError,
    any other bind or connect failure ValueError. Subclasses send and receive on
    ``self._socket`` (from one thread at a time) and extend :meth:`close` for resources of
    their own. An instance is a context manager that closes on exit.
    """

    def __init__(self, socket_type: int, endpoint: str, *, bind: bool, allow_remote: bool,
                 curve: CurveConfig | None, linger_ms: int, context: zmq.Context | None,
                 options: dict[int, Any]):
        check_endpoint(endpoint, bind=bind, allow_remote=allow_remote)
        if curve is not None and not isinstance(curve, CurveConfig):
            raise TypeError(f"curve must be a CurveConfig or None, got {type(curve).__name__}")
        if linger_ms < 0:
            raise ValueError(f"linger_ms must be >= 0, got {linger_ms}")
        self._own_context = context is None
        self._context = zmq.Context() if context is None else context
        self._auth = None
        self._socket = None
        try:
            if curve is not None:
                self._auth = curve.start_authenticator(self._context)
            self._socket = self._context.socket(socket_type)
            self._socket.setsockopt(zmq.LINGER, linger_ms)
            for option, value in options.items():
                self._socket.setsockopt(option, value)
            if curve is not None:
                curve.apply(self._socket)
            try:
                (self._socket.bind if bind else self._socket.connect)(endpoint)
            except zmq.ZMQError as exc:
                verb = "bind" if bind else "connect"
                if exc.errno == zmq.EADDRINUSE:
                    raise OSError(exc.errno, f"cannot bind {endpoint}: address already in use") from None
                raise ValueError(f"endpoint {endpoint!r}: cannot {verb} ({exc})") from None
        except BaseException:
            self.close()
            raise

    @property
    def endpoint(self) -> str:
        """The address in use (a bound ``*`` port resolved)."""
        return self._socket.getsockopt_string(zmq.LAST_ENDPOINT)

    def close(self) -> None:
        """Close the socket (waiting up to linger for queued messages) and own context."""
        if self._socket is not None:
            self._socket.close()
            self._socket = None
        if self._auth is not None:
            self._auth.stop()
            self._auth = None
        if self._own_context and self._context is not None:
            self._context.term()
        self._context = None

    @property
    def closed(self) -> bool:
        """True once :meth:`close` ran."""
        return self._socket is None

    def __enter__(self):
        return self

    def __exit__(self, *exc_info) -> None:
        self.close()


def _hwm(hwm: int | None, name: str = "hwm") -> int | None:
    if hwm is not None and (not isinstance(hwm, (int, np.integer)) or hwm < 0):
        raise ValueError(f"{name} must be None (ZeroMQ default, 1000) or an int >= 0 "
                         f"(0 = unlimited), got {hwm!r}")
    return hwm


def _as_key(key: bytes | str) -> bytes:
    if isinstance(key, str):
        return key.encode("utf-8")
    if not isinstance(key, (bytes, bytearray)):
        raise TypeError(f"key must be bytes or str, got {type(key).__name__}")
    return bytes(key)


class _RateLimitedWarning:
    """Log the first ``first`` occurrences, then every ``every``-th, with the running count."""

    def __init__(self, first: int = 10, every: int = 1000):
        self.first, self.every, self.count = first, every, 0

    def __call__(self, message: str, *args) -> None:
        self.count += 1
        if self.count <= self.first or self.count % self.every == 0:
            logger.warning(message + " (%d so far)", *args, self.count)


# ---------------------------------------------------------------------------------------------
# IQ source
# ---------------------------------------------------------------------------------------------
@dataclass
class SourceStats:
    """Counters of an :class:`IQSource`.

    ``gaps``/``samples_lost``: pass_tags offsets that jumped forward (samples the sender
    produced that never arrived); ``offset_resets``: offsets that went back (sender restart).
    ``nonfinite_samples``: samples with a NaN or Inf component, passed through.
    """

    messages: int = 0
    samples: int = 0
    bytes: int = 0
    bad_messages: int = 0
    timeouts: int = 0
    gaps: int = 0
    samples_lost: int = 0
    offset_resets: int = 0
    nonfinite_samples: int = 0
    tags: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class IQChunk:
    """One received message.

    samples : complex64 [n] (a view of the ZeroMQ frame where possible)
    offset : int or None — pass_tags stream index of ``samples[0]`` (None without a header)
    tags : tuple of Tag — absolute offsets; ``tag.offset - offset`` indexes ``samples``
    missing : int — samples the sender made before ``samples[0]`` that never arrived (the
    pass_tags offset jumped since the previous message; 0 without a header)
    """

    samples: np.ndarray
    offset: int | None = None
    tags: tuple[Tag, ...] = ()
    missing: int = 0


class IQSource(ZmqSocketBase):
    """Receive samples, as complex64, from a gr-zeromq (or :class:`IQSink`) sender.

    Parameters
    ----------
    endpoint : str
        ZeroMQ address, e.g. ``tcp://127.0.0.1:5555``.
    pattern : {"sub", "pull"}
    bind : bool
        Bind instead of connect (default connect, as gr-zeromq sources do).
    timeout_ms : int
        Longest wait in one :meth:`recv` (>= 0).
    hwm : int or None
        Receive high-water mark in messages (None: ZeroMQ's 1000).
    key : bytes or str
        SUB: topic filter (prefix of the sender's key frame); non-empty means messages are
        expected as key frame + payload. PULL: non-empty also expects a key frame.
    pass_tags : bool or None
        True: every message carries a pass_tags header; False: never (raw samples); None
        (default): detect the header by magic and version and lock in once one parsed.
    check_finite : bool
        Count NaN/Inf samples in ``stats.nonfinite_samples`` (they are passed through; a
        fixed-point format has none).
    sample_format : str or SampleFormat
        ``cf32_le`` (default), ``ci16_le`` or ``ci8``: samples arrive as complex64 either way;
        fixed point is metered (``level``: peak in dBFS, components clipped).
    curve : CurveConfig or None
    allow_remote : bool
        Allow binding a non-loopback interface.
    context : zmq.Context or None

    Malformed messages (payload not a whole number of samples, bad or truncated
    header or tag, unexpected frame count) are counted in ``stats.bad_messages``, logged
    (rate-limited) and skipped; ``recv`` never raises on input data.
    """

    def __init__(self, endpoint: str = DEFAULT_IQ_ENDPOINT, pattern: str = "sub", *,
                 bind: bool = False, timeout_ms: int = 100, hwm: int | None = None,
                 key: bytes | str = b"", pass_tags: bool | None = None, check_finite: bool = True,
                 sample_format: str | SampleFormat = "cf32_le",
                 curve: CurveConfig | None = None, allow_remote: bool = False,
                 context: zmq.Context | None = None):
        self.sample_format = _sample_format(sample_format)
        self.level = LevelMeter(self.sample_format)
        if pattern not in ("sub", "pull"):
            raise ValueError(f"pattern must be 'sub' or 'pull', got {pattern!r}")
        if not isinstance(timeout_ms, (int, np.integer)) or timeout_ms < 0:
            raise ValueError(f"timeout_ms must be an int >= 0 (recv never blocks forever), "
                             f"got {timeout_ms!r}")
        if pass_tags not in (None, True, False):
            raise ValueError(f"pass_tags must be True, False or None (detect), got {pass_tags!r}")
        self.key = _as_key(key)
        self.timeout_ms = int(timeout_ms)
        self.pass_tags = pass_tags
        self.check_finite = check_finite
        self.stats = SourceStats()
        self._tags_seen = False
        self._next_offset: int | None = None
        self._missing = 0           # samples lost since the last chunk returned
        self._warn = _RateLimitedWarning()
        options = {}
        if _hwm(hwm) is not None:
            options[zmq.RCVHWM] = hwm
        if pattern == "sub":
            options[zmq.SUBSCRIBE] = self.key
        super().__init__(zmq.SUB if pattern == "sub" else zmq.PULL, endpoint, bind=bind,
                         allow_remote=allow_remote, curve=curve, linger_ms=0, context=context,
                         options=options)
        self.pattern = pattern

    def recv(self) -> np.ndarray | None:
        """complex64 [n] samples of the next message, or None after ``timeout_ms``."""
        chunk = self.recv_chunk()
        return None if chunk is None else chunk.samples

    def recv_chunk(self) -> IQChunk | None:
        """The next well-formed message as an :class:`IQChunk`, or None after ``timeout_ms``."""
        deadline = None
        while True:
            try:                      # a message is usually waiting at speed: no poll then
                parts = self._socket.recv_multipart(flags=zmq.NOBLOCK, copy=False)
            except zmq.Again:
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.timeout_ms / 1e3
                if now >= deadline or not self._socket.poll(
                        max(1, math.ceil((deadline - now) * 1e3)), zmq.POLLIN):
                    self.stats.timeouts += 1
                    return None
                continue
            chunk = self._decode(parts)
            if chunk is not None:
                return chunk
            now = time.monotonic()            # skipped: a flood of bad messages still times out
            if deadline is None:
                deadline = now + self.timeout_ms / 1e3
            elif now >= deadline:
                self.stats.timeouts += 1
                return None

    def _bad(self, reason: str) -> None:
        self.stats.bad_messages += 1
        self._warn("%s: skipped a malformed message: %s", self.endpoint, reason)

    def _decode(self, parts: list) -> IQChunk | None:
        self.stats.messages += 1
        if len(parts) == 1 and not self.key:
            payload = parts[0]
        elif len(parts) == 2:
            payload = parts[1]
        else:
            self._bad(f"{len(parts)} frames, expected "
                      f"{'key frame + payload' if self.key else 'payload (or key frame + payload)'}")
            return None
        buf = payload.buffer
        self.stats.bytes += len(buf)
        offset, tags, header_len, order = None, (), 0, "<"
        looks_tagged = (self.pass_tags is not False and len(buf) >= 3 and buf[2] == TAG_HEADER_VERSION
                        and buf[:2] in (_MAGIC_LE, _MAGIC_BE))
        strict = self.pass_tags is True or self._tags_seen
        if looks_tagged:
            try:
                offset, tags, header_len, order = decode_tag_header(buf)
                if (len(buf) - header_len) % self.sample_format.itemsize:
                    raise PmtError(f"{len(buf) - header_len} payload bytes after the header, "
                                   f"not a multiple of {self.sample_format.itemsize}")
            except PmtError as exc:
                if strict:
                    self._bad(f"pass_tags header: {exc}")
                    return None
                offset, tags, header_len, order = None, (), 0, "<"   # raw data that looks alike
            else:
                self._tags_seen = True
        elif strict:
            self._bad("no pass_tags header (magic 0x5FF0, version 1)")
            return None
        n_bytes = len(buf) - header_len
        fmt = self.sample_format
        if n_bytes % fmt.itemsize:
            self._bad(f"{n_bytes} bytes is not a whole number of {fmt.name} samples ({fmt.itemsize} bytes each)")
            return None
        samples = fmt.decode(buf, header_len, order)
        self.level(samples)
        n = samples.size
        self.stats.samples += n
        self.stats.tags += len(tags)
        if offset is not None:
            self._track_offset(offset, n)
        if self.check_finite and fmt.is_float and n:
            # one fast pass (BLAS dot, a sum of squares): NaN/Inf, or an overflow of
            # float32, make it non-finite; only then are the samples counted one by one
            parts = samples.view(samples.real.dtype)
            with np.errstate(invalid="ignore", over="ignore"):
                energy = np.dot(parts, parts)
            if not np.isfinite(energy):
                bad = int(np.count_nonzero(~np.isfinite(samples)))
                self.stats.nonfinite_samples += bad
                if bad:
                    self._warn("%s: %d non-finite samples passed through", self.endpoint, bad)
        if not n:
            return None
        chunk, self._missing = IQChunk(samples, offset, tags, self._missing), 0
        return chunk

    def _track_offset(self, offset: int, n: int) -> None:
        expected = self._next_offset
        if expected is not None and offset != expected:
            if offset > expected:
                self.stats.gaps += 1
                self.stats.samples_lost += offset - expected
                self._missing += offset - expected
                self._warn("%s: %d samples lost before stream offset %d",
                           self.endpoint, offset - expected, offset)
            else:
                self.stats.offset_resets += 1
                logger.info("%s: stream offset went back from %d to %d (sender restarted?)",
                            self.endpoint, expected, offset)
        self._next_offset = offset + n


# ---------------------------------------------------------------------------------------------
# IQ sink
# ---------------------------------------------------------------------------------------------
@dataclass
class SinkStats:
    """Counters of an :class:`IQSink`; dropped = could not be queued within the send timeout;
    clipped = I or Q components beyond a fixed-point format's full scale."""

    messages: int = 0
    samples: int = 0
    bytes: int = 0
    dropped_messages: int = 0
    dropped_samples: int = 0
    clipped_components: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


def _send_options(pattern: str, hwm: int | None, send_timeout_ms: int, nodrop: bool) -> dict:
    if not isinstance(send_timeout_ms, (int, np.integer)) or send_timeout_ms < 0:
        raise ValueError(f"send_timeout_ms must be an int >= 0, got {send_timeout_ms!r}")
    if nodrop and pattern != "pub":
        raise ValueError("nodrop applies to pattern='pub' only (PUSH never drops silently)")
    options = {zmq.SNDTIMEO: int(send_timeout_ms)}
    if _hwm(hwm) is not None:
        options[zmq.SNDHWM] = hwm
    if nodrop:
        options[zmq.XPUB_NODROP] = 1
    return options


class IQSink(ZmqSocketBase):
    """Send samples the way gr-zeromq's pub_sink / push_sink do (complex64, or fixed point).

    Parameters
    ----------
    endpoint : str
    pattern : {"pub", "push"}
    bind : bool
        Bind (default, as gr-zeromq sinks do) or connect.
    hwm : int or None
        Send high-water mark in messages (None: ZeroMQ's 1000).
    linger_ms : int
        How long ``close`` may wait to deliver queued messages.
    send_timeout_ms : int
        PUSH (and PUB with ``nodrop``): how long one send may wait for room before the
        message is counted as dropped.
    nodrop : bool
        PUB only: count messages at the HWM as dropped instead of ZeroMQ dropping them
        silently (``ZMQ_XPUB_NODROP``).
    pass_tags : bool
        Prefix each message with a gr-zeromq pass_tags header carrying the stream offset.
    key : bytes or str
        Non-empty: sent as a first frame (PUB topic), as gr-zeromq does.
    sample_format : str or SampleFormat
        ``cf32_le`` (default), ``ci16_le`` or ``ci8`` on the wire.
    full_scale : float or None
        Fixed point: the amplitude of the largest code (I and Q beyond it clip, counted in
        ``stats.clipped_components``). None: gain ranging, 3 dB over the largest I or Q sent
        so far, raised before a message that would clip (:mod:`streaming.sample_format`);
        read it back from ``.encoder.full_scale``.
    """

    def __init__(self, endpoint: str = DEFAULT_IQ_ENDPOINT, pattern: str = "pub", *,
                 bind: bool = True, hwm: int | None = None, linger_ms: int = 1000,
                 send_timeout_ms: int = 100, nodrop: bool = False, pass_tags: bool = False,
                 key: bytes | str = b"", sample_format: str | SampleFormat = "cf32_le",
                 full_scale: float | None = None,
                 curve: CurveConfig | None = None, allow_remote: bool = False,
                 context: zmq.Context | None = None):
        if pattern not in ("pub", "push"):
            raise ValueError(f"pattern must be 'pub' or 'push', got {pattern!r}")
        self.encoder = SampleEncoder(sample_format, full_scale)
        self.key = _as_key(key)
        self.pass_tags = bool(pass_tags)
        self.offset = 0
        self.stats = SinkStats()
        super().__init__(zmq.PUB if pattern == "pub" else zmq.PUSH, endpoint, bind=bind,
                         allow_remote=allow_remote, curve=curve, linger_ms=linger_ms,
                         context=context, options=_send_options(pattern, hwm, send_timeout_ms, nodrop))
        self.pattern = pattern

    def send(self, samples: np.ndarray, *, tags: Iterable[Tag] = (),
             offset: int | None = None) -> bool:
        """Send complex [n] samples as one message; False if it was dropped (and counted).

        The stream offset advances by n whether or not the message went out, so a pass_tags
        receiver sees a dropped message as a gap. ``offset`` overrides the running offset;
        ``tags`` (absolute offsets) are sent only with ``pass_tags``.
        """
        samples = np.asarray(samples)
        if samples.ndim != 1:
            raise ValueError(f"samples must be 1-D, got shape {samples.shape}")
        data = self.encoder(samples)
        n = samples.size
        start = self.offset if offset is None else int(offset)
        payload = (encode_tag_header(start, tags) + data.tobytes()) if self.pass_tags else data
        parts = [self.key, payload] if self.key else [payload]
        self.offset = start + n
        self.stats.clipped_components = self.encoder.clipped
        try:
            self._socket.send_multipart(parts, copy=True)
        except zmq.Again:
            self.stats.dropped_messages += 1
            self.stats.dropped_samples += n
            return False
        self.stats.messages += 1
        self.stats.samples += n
        self.stats.bytes += data.nbytes
        return True

    def write(self, samples: np.ndarray) -> None:
        """:meth:`send` with the running offset and no tags: the sample writer's ``write``."""
        self.send(samples)


# ---------------------------------------------------------------------------------------------
# results
# ---------------------------------------------------------------------------------------------
def _json_default(obj):
    if isinstance(obj, np.generic):
        return obj.item()
    if isinstance(obj, np.ndarray):
        return obj.tolist()
    raise TypeError(f"{type(obj).__name__} is not JSON serialisable")


_PAYLOADS = {"bits": ("bits",), "llr": ("llr",), "both": ("bits", "llr")}


@dataclass(frozen=True)
class FrameResult:
    """One frame's result message.

    seq : int
    header : dict — the decoded JSON header (``seq``, ``payload``, ``n``, ``timing``, ``metrics``,
        and ``llr_step`` with int8 LLRs)
    bits : uint8 [n] or None
    llr : float32 [n], int8 [n] codes (LLR = code x ``llr_step``) or None
    llr_step : float or None
    """

    seq: int
    header: dict
    bits: np.ndarray | None = None
    llr: np.ndarray | None = None
    llr_step: float | None = None


FRAME_METRICS = tuple(s.name for s in FRAME_STATISTICS if s.message)
"""Per-frame statistics of a receiver result that a result message carries in ``metrics``
(``zakotfs.frame_stats.FRAME_STATISTICS`` with ``message`` set)."""


def frame_metrics(result, i: int) -> dict:
    """{name: float} of frame ``i`` of ``result`` for each of ``FRAME_METRICS`` it has with a
    finite value (a delay not estimated, NaN, is left out: JSON has no NaN)."""
    return {name: float(values[i]) for name in FRAME_METRICS
            if (values := getattr(result, name, None)) is not None and np.isfinite(values[i])}


def encode_result(seq: int, *, bits: np.ndarray | None = None, llr: np.ndarray | None = None,
                  timing: dict | None = None, metrics: dict | None = None,
                  llr_step: float | None = None) -> list[bytes]:
    """One frame's result -> multipart message [JSON header, packed bits?, LLRs?].

    bits : uint8 [n] of 0/1; llr : float [n], sent as little-endian float32, or with
    ``llr_step`` int8 [n] codes, sent as bytes with ``llr_step`` in the header. At least one
    is required; both must have the same n.
    """
    if bits is None and llr is None:
        raise ValueError("encode_result needs bits, llr or both")
    kinds, parts, n = [], [], None
    if bits is not None:
        bits = np.asarray(bits).reshape(-1)
        kinds.append("bits")
        parts.append(np.packbits(bits.astype(np.uint8, copy=False)).tobytes())
        n = bits.size
    if llr is not None:
        llr = np.asarray(llr).reshape(-1)
        if n is not None and llr.size != n:
            raise ValueError(f"llr has {llr.size} values, bits {n}")
        kinds.append("llr")
        if llr_step is None:
            parts.append(llr.astype("<f4", copy=False).tobytes())
        elif llr.dtype == np.int8:
            parts.append(llr.tobytes())
        else:
            raise ValueError(f"llr_step is given, so llr must be int8 codes, got {llr.dtype}")
        n = llr.size
    header = {"seq": int(seq), "payload": kinds, "n": int(n),
              "timing": timing or {}, "metrics": metrics or {}}
    if llr is not None and llr_step is not None:
        header["llr_step"] = float(llr_step)
    return [json.dumps(header, default=_json_default).encode("utf-8")] + parts


def decode_result(parts: list) -> FrameResult:
    """Inverse of :func:`encode_result`; raises ValueError on a malformed message."""
    if not parts:
        raise ValueError("empty result message")
    try:
        header = json.loads(bytes(parts[0]))
        seq, kinds, n = int(header["seq"]), list(header["payload"]), int(header["n"])
        step = None if header.get("llr_step") is None else float(header["llr_step"])
    except (ValueError, KeyError, TypeError) as exc:
        raise ValueError(f"result header is not the expected JSON ({exc})") from None
    if len(parts) != 1 + len(kinds) or not set(kinds) <= {"bits", "llr"} or n < 0:
        raise ValueError(f"result header announces payload {kinds} with n={n}, "
                         f"message has {len(parts) - 1} payload frames")
    values = {}
    for kind, part in zip(kinds, parts[1:]):
        raw = memoryview(part)
        if kind == "bits":
            if len(raw) != (n + 7) // 8:
                raise ValueError(f"packed bits: {len(raw)} bytes for n={n}")
            values["bits"] = np.unpackbits(np.frombuffer(raw, np.uint8), count=n)
        else:
            width = 4 if step is None else 1
            if len(raw) != width * n:
                raise ValueError(f"llr: {len(raw)} bytes for n={n} {'float32' if step is None else 'int8'} values")
            values["llr"] = np.frombuffer(raw, "<f4" if step is None else np.int8).copy()
    return FrameResult(seq, header, values.get("bits"), values.get("llr"), step)


class ResultPublisher(ZmqSocketBase):
    """Publish decoded frames: one multipart message a frame (see :func:`encode_result`).

    Parameters
    ----------
    endpoint : str
    pattern : {"pub", "push"}
    bind : bool
    payload : {"bits", "llr", "both"}
        What :meth:`__call__` sends from a receiver result.
    hwm, linger_ms, send_timeout_ms, nodrop, curve, allow_remote, context
        As for :class:`IQSink`.

    An instance is a runner sink: ``publisher(result, frame_meta)`` sends one message per
    frame of ``result`` (``.bits`` uint8 [F, B], ``.llr`` float32 [F, B] or int8 with
    ``.llr_step``); ``seq`` comes from
    ``meta["seq"]`` (else a running count), timing from the ``t_*``/``latency_us`` keys and
    metrics from the result's ``FRAME_METRICS`` (post-equalisation SINR in dB, N0, the CFO
    removed in Hz, the DC offset's power removed, the CG residual) and ``meta["metrics"]``.
    """

    def __init__(self, endpoint: str = DEFAULT_RESULT_ENDPOINT, pattern: str = "pub", *,
                 bind: bool = True, payload: str = "bits", hwm: int | None = None, linger_ms: int = 1000,
                 send_timeout_ms: int = 100, nodrop: bool = False,
                 curve: CurveConfig | None = None, allow_remote: bool = False,
                 context: zmq.Context | None = None):
        if pattern not in ("pub", "push"):
            raise ValueError(f"pattern must be 'pub' or 'push', got {pattern!r}")
        if payload not in _PAYLOADS:
            raise ValueError(f"payload must be one of {', '.join(_PAYLOADS)}, got {payload!r}")
        self.payload = payload
        self.sent = 0
        self.dropped = 0
        self._seq = 0
        super().__init__(zmq.PUB if pattern == "pub" else zmq.PUSH, endpoint, bind=bind,
                         allow_remote=allow_remote, curve=curve, linger_ms=linger_ms,
                         context=context, options=_send_options(pattern, hwm, send_timeout_ms, nodrop))

    def publish(self, seq: int, *, bits: np.ndarray | None = None, llr: np.ndarray | None = None,
                timing: dict | None = None, metrics: dict | None = None, llr_step: float | None = None) -> bool:
        """Send one frame's result; False if it was dropped (counted in ``dropped``)."""
        parts = encode_result(seq, bits=bits, llr=llr, timing=timing, metrics=metrics, llr_step=llr_step)
        try:
            self._socket.send_multipart(parts, copy=True)
        except zmq.Again:
            self.dropped += 1
            return False
        self.sent += 1
        return True

    def __call__(self, result, frame_meta: list[dict]) -> None:
        kinds = _PAYLOADS[self.payload]
        for i, meta in enumerate(frame_meta):
            seq = meta.get("seq", self._seq)
            self._seq = int(seq) + 1
            timing = {k: v for k, v in meta.items() if k.startswith("t_") or k == "latency_us"}
            self.publish(seq, bits=result.bits[i] if "bits" in kinds else None,
                         llr=result.llr[i] if "llr" in kinds else None,
                         timing=timing, metrics={**frame_metrics(result, i), **(meta.get("metrics") or {})},
                         llr_step=getattr(result, "llr_step", None))


class ResultSubscriber(ZmqSocketBase):
    """Receive :class:`ResultPublisher` messages; ``recv()`` -> FrameResult or None on timeout.

    Malformed messages are counted in ``bad_messages`` and skipped.
    """

    def __init__(self, endpoint: str = DEFAULT_RESULT_ENDPOINT, pattern: str = "sub", *,
                 bind: bool = False, timeout_ms: int = 100, hwm: int | None = None,
                 curve: CurveConfig | None = None, allow_remote: bool = False,
                 context: zmq.Context | None = None):
        if pattern not in ("sub", "pull"):
            raise ValueError(f"pattern must be 'sub' or 'pull', got {pattern!r}")
        if not isinstance(timeout_ms, (int, np.integer)) or timeout_ms < 0:
            raise ValueError(f"timeout_ms must be an int >= 0, got {timeout_ms!r}")
        self.timeout_ms = int(timeout_ms)
        self.received = 0
        self.bad_messages = 0
        self._warn = _RateLimitedWarning()
        options = {zmq.SUBSCRIBE: b""} if pattern == "sub" else {}
        if _hwm(hwm) is not None:
            options[zmq.RCVHWM] = hwm
        super().__init__(zmq.SUB if pattern == "sub" else zmq.PULL, endpoint, bind=bind,
                         allow_remote=allow_remote, curve=curve, linger_ms=0, context=context,
                         options=options)

    def recv(self) -> FrameResult | None:
        deadline = time.monotonic() + self.timeout_ms / 1e3
        while True:
            wait_ms = max(0, round((deadline - time.monotonic()) * 1e3))
            if not self._socket.poll(wait_ms, zmq.POLLIN):
                return None
            parts = self._socket.recv_multipart(copy=False)
            try:
                result = decode_result([p.buffer for p in parts])
            except ValueError as exc:
                self.bad_messages += 1
                self._warn("%s: skipped a malformed result message: %s", self.endpoint, exc)
                continue
            self.received += 1
            return result
