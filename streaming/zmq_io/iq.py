"""IQ samples over ZeroMQ: :class:`IQSource` and :class:`IQSink` (wire format and socket
choices in :mod:`streaming.zmq_io`)."""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass, field
from typing import Iterable

import numpy as np
import zmq

from ..pmt import PmtError
from ..sample_format import (SAMPLE_FORMATS, LevelMeter, SampleEncoder, SampleFormat, count_unusable,
                             sample_format as _sample_format)
from ..security import CurveConfig
from .sockets import DEFAULT_IQ_ENDPOINT, ZmqSocketBase, _as_key, _hwm, _RateLimitedWarning, logger
from .tags import Tag, decode_tag_header, encode_tag_header, looks_like_tag_header

__all__ = ["IQSource", "IQSink", "IQChunk", "SourceStats", "SinkStats"]


@dataclass
class SourceStats:
    """Counters of an :class:`IQSource`.

    ``gaps``/``samples_lost``: pass_tags offsets that jumped forward (samples the sender
    produced that never arrived); ``offset_resets``: offsets that went back (sender restart).
    ``nonfinite_samples``: samples with a NaN or Inf component, or of a magnitude above
    :data:`~streaming.sample_format.MAX_MAGNITUDE`, passed through (the acquisition drops
    the frames they fall in). ``size_mismatches``: messages whose size is not a whole number
    of samples of the source's format; ``sizes_fit``: the other formats every one of them
    fits (a hint at the ``--in-format`` the sender uses). ``peers_connected``,
    ``handshakes``, ``handshake_failures``: the socket monitor's counts
    (:class:`~streaming.zmq_io.monitor.PeerCounts`); ``diagnosis``: what the connections
    say about the wiring: a peer of the wrong pattern, or, once :meth:`IQSource.silence`
    was asked, why nothing came; else None.
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
    size_mismatches: int = 0
    sizes_fit: list = field(default_factory=list)
    tags: int = 0
    peers_connected: int = 0
    handshakes: int = 0
    handshake_failures: int = 0
    diagnosis: str | None = None

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
        (default): decided per message, never latched: a message carries a header when it
        starts with the magic and version and the header parses completely and consistently
        (a whole number of samples after it, every tag's offset inside the message); else
        it is raw samples, and the stream offset is unknown until the next header.
    check_finite : bool
        Count NaN/Inf samples, and those of a magnitude above ``MAX_MAGNITUDE``, in
        ``stats.nonfinite_samples`` (they are passed through; a fixed-point format has none).
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
                         options=options, monitor=True)
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
                    self.check_peers()
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

    def check_peers(self) -> str | None:
        """Read the socket monitor into the stats (``recv`` does on every timeout); returns
        the wiring diagnosis, logged the first time: a peer that connected and dropped
        without a handshake is of the wrong pattern (or has other CurveZMQ keys)."""
        counts = self.peers.poll()
        s = self.stats
        s.peers_connected, s.handshakes = counts.connected, counts.handshakes
        if counts.failed > s.handshake_failures:
            s.handshake_failures = counts.failed
            wanted, fix = (("PUB", "a PUSH sender (gr-zeromq push_sink) needs --pattern pull")
                           if self.pattern == "sub" else
                           ("PUSH", "a PUB sender (gr-zeromq pub_sink) needs --pattern sub"))
            first = s.diagnosis is None
            s.diagnosis = (f"the peer at {self.endpoint} connected and dropped without a handshake "
                           f"{counts.failed} times: it is not a {wanted} socket (or its CurveZMQ keys "
                           f"differ); {fix}")
            if first:
                logger.warning("%s", s.diagnosis)
        return s.diagnosis

    def silence(self) -> str:
        """What the connections say about a source that received nothing (kept in
        ``stats.diagnosis``)."""
        s = self.stats
        if self.check_peers():
            return s.diagnosis
        if not s.peers_connected:
            s.diagnosis = f"no peer connected to {self.endpoint} (is the sender running, at this address?)"
        elif s.messages:
            s.diagnosis = f"{s.messages} messages came, none of them usable samples ({s.bad_messages} malformed)"
        else:
            s.diagnosis = (f"{s.handshakes} peer(s) connected to {self.endpoint} but sent nothing"
                           + (" (a PUB sender's messages before a subscriber joins are lost)"
                              if self.pattern == "sub" else ""))
        return s.diagnosis

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
        if self.pass_tags is not False and looks_like_tag_header(buf):
            try:
                offset, tags, header_len, order = self._parse_header(buf)
            except PmtError as exc:
                if self.pass_tags:
                    self._bad(f"pass_tags header: {exc}")
                    return None
                offset, tags, header_len, order = None, (), 0, "<"   # raw data that looks alike
        elif self.pass_tags:
            self._bad("no pass_tags header (magic 0x5FF0, version 1)")
            return None
        if offset is None:
            self._next_offset = None          # raw samples: the stream offset is unknown
        n_bytes = len(buf) - header_len
        fmt = self.sample_format
        if n_bytes % fmt.itemsize:
            self._size_mismatch(n_bytes)
            return None
        samples = fmt.decode(buf, header_len, order)
        self.level(samples)
        n = samples.size
        self.stats.samples += n
        self.stats.tags += len(tags)
        if offset is not None:
            self._track_offset(offset, n)
        if self.check_finite and fmt.is_float and n:
            bad = count_unusable(samples)
            if bad:
                self.stats.nonfinite_samples += bad
                self._warn("%s: %d non-finite or out-of-range samples passed through", self.endpoint, bad)
        if not n:
            return None
        chunk, self._missing = IQChunk(samples, offset, tags, self._missing), 0
        return chunk

    def _parse_header(self, buf) -> tuple[int, tuple[Tag, ...], int, str]:
        """``decode_tag_header(buf)``, checked for consistency: a whole number of samples
        after the header and every tag inside the message; else :class:`PmtError`."""
        offset, tags, header_len, order = decode_tag_header(buf)
        n_bytes = len(buf) - header_len
        if n_bytes % self.sample_format.itemsize:
            raise PmtError(f"{n_bytes} payload bytes after the header, not a multiple of "
                           f"{self.sample_format.itemsize}")
        end = offset + n_bytes // self.sample_format.itemsize
        outside = [tag.offset for tag in tags if not offset <= tag.offset < max(end, offset + 1)]
        if outside:
            raise PmtError(f"tag offset {outside[0]} outside the message's samples [{offset}, {end})")
        return offset, tags, header_len, order

    def _size_mismatch(self, n_bytes: int) -> None:
        """A message of ``n_bytes`` that is not whole samples: counted, with the formats
        that all such messages so far fit."""
        fmt = self.sample_format
        fits = [name for name, other in SAMPLE_FORMATS.items() if name != fmt.name and n_bytes % other.itemsize == 0]
        s = self.stats
        s.sizes_fit = fits if not s.size_mismatches else [name for name in s.sizes_fit if name in fits]
        s.size_mismatches += 1
        self._bad(f"{n_bytes} bytes is not a whole number of {fmt.name} samples ({fmt.itemsize} bytes each)"
                  + (f"; the sender may send {' or '.join(fits)}" if fits else ""))

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
                         context=context, options=_send_options(pattern, hwm, send_timeout_ms, nodrop),
                         monitor=True)
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

    def receivers(self) -> int:
        """Peers connected now that completed the handshake (the socket monitor's count)."""
        counts = self.peers.poll()
        return counts.handshakes - counts.dropped
