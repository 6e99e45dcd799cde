"""Result messages: one multipart message a frame, a UTF-8 JSON header (``seq``,
``payload``, ``n``, ``timing``, ``metrics``) then one frame per payload: ``np.packbits`` of the
bits (MSB first) and/or the LLRs as float32 little-endian (int8 codes with ``llr_step``)."""
from __future__ import annotations

import json
import time
from dataclasses import dataclass

import numpy as np
import zmq

from zakotfs.frame_stats import FRAME_STATISTICS

from ..security import CurveConfig
from .sockets import DEFAULT_RESULT_ENDPOINT, ZmqSocketBase, _hwm, _RateLimitedWarning
from .iq import _send_options

__all__ = ["FrameResult", "FRAME_METRICS", "frame_metrics", "encode_result", "decode_result", "ResultPublisher",
           "ResultSubscriber"]


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
