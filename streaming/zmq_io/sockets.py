"""The endpoint policy (loopback by default, ``allow_remote`` to expose a socket) and
:class:`ZmqSocketBase`, the one socket every ZeroMQ endpoint here opens and closes safely."""
from __future__ import annotations

import ipaddress
import logging
from typing import Any

import numpy as np
import zmq

from ..security import CurveConfig
from .monitor import PeerMonitor

__all__ = ["DEFAULT_IQ_ENDPOINT", "DEFAULT_RESULT_ENDPOINT", "ENDPOINT_SCHEMES", "is_endpoint", "check_endpoint",
           "ZmqSocketBase"]

logger = logging.getLogger("streaming.zmq_io")

DEFAULT_IQ_ENDPOINT = "tcp://127.0.0.1:5555"
DEFAULT_RESULT_ENDPOINT = "tcp://127.0.0.1:5556"


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
    monitor : bool
        Watch the connections (``self.peers``, a :class:`~streaming.zmq_io.monitor.PeerMonitor`;
        None without).

    Whatever fails on the way closes what was already opened: a port in use raises OSError,
    any other bind or connect failure ValueError. Subclasses send and receive on
    ``self._socket`` (from one thread at a time) and extend :meth:`close` for resources of
    their own. An instance is a context manager that closes on exit.
    """

    def __init__(self, socket_type: int, endpoint: str, *, bind: bool, allow_remote: bool,
                 curve: CurveConfig | None, linger_ms: int, context: zmq.Context | None,
                 options: dict[int, Any], monitor: bool = False):
        check_endpoint(endpoint, bind=bind, allow_remote=allow_remote)
        if curve is not None and not isinstance(curve, CurveConfig):
            raise TypeError(f"curve must be a CurveConfig or None, got {type(curve).__name__}")
        if linger_ms < 0:
            raise ValueError(f"linger_ms must be >= 0, got {linger_ms}")
        self._own_context = context is None
        self._context = zmq.Context() if context is None else context
        self._auth = None
        self._socket = None
        self.peers: PeerMonitor | None = None
        try:
            if curve is not None:
                self._auth = curve.start_authenticator(self._context)
            self._socket = self._context.socket(socket_type)
            self._socket.setsockopt(zmq.LINGER, linger_ms)
            for option, value in options.items():
                self._socket.setsockopt(option, value)
            if curve is not None:
                curve.apply(self._socket)
            if monitor:
                self.peers = PeerMonitor(self._socket)
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
        if self.peers is not None:
            self.peers.close()
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
