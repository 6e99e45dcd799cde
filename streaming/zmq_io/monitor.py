"""Who connects to a socket: libzmq's socket monitor read without blocking, the peers that
connected, completed the ZMTP handshake, or dropped without one.

A peer of an incompatible pattern (a PUSH sender into a SUB socket, a PUB sender into a
PULL socket) or with other CurveZMQ keys connects and is dropped at the handshake, again at
every reconnect: on the connecting side the monitor sees CONNECTED then DISCONNECTED with
no HANDSHAKE_SUCCEEDED between them, on the binding side ACCEPTED then HANDSHAKE_FAILED_*.
"""
from __future__ import annotations

from dataclasses import dataclass

import zmq
from zmq.utils.monitor import recv_monitor_message

__all__ = ["PeerMonitor", "PeerCounts"]

_OPENED = zmq.EVENT_CONNECTED | zmq.EVENT_ACCEPTED
_FAILED = (zmq.EVENT_HANDSHAKE_FAILED_NO_DETAIL | zmq.EVENT_HANDSHAKE_FAILED_PROTOCOL
           | zmq.EVENT_HANDSHAKE_FAILED_AUTH)
_EVENTS = _OPENED | _FAILED | zmq.EVENT_HANDSHAKE_SUCCEEDED | zmq.EVENT_DISCONNECTED


@dataclass
class PeerCounts:
    """connected: connections opened (either side); handshakes: completed; failed: dropped
    before a handshake (an incompatible pattern or other keys); dropped: peers that left
    after a handshake."""

    connected: int = 0
    handshakes: int = 0
    failed: int = 0
    dropped: int = 0


class PeerMonitor:
    """The connection events of ``socket``, counted in :attr:`counts` by :meth:`poll`.
    Made before the socket binds or connects, so that the first connection is seen;
    :meth:`close` before the socket closes."""

    def __init__(self, socket: zmq.Socket):
        self._socket = socket
        self._events = socket.get_monitor_socket(_EVENTS)
        self.counts = PeerCounts()
        self._opening = 0           # connections waiting for their handshake
        self._live = 0

    def poll(self) -> PeerCounts:
        """Read the events that have come (never waits); returns :attr:`counts`."""
        c = self.counts
        while self._events is not None and self._events.poll(0):
            event = recv_monitor_message(self._events)["event"]
            if event & _OPENED:
                c.connected += 1
                self._opening += 1
            elif event == zmq.EVENT_HANDSHAKE_SUCCEEDED and self._opening:
                self._opening -= 1
                self._live += 1
                c.handshakes += 1
            elif event & _FAILED and self._opening:
                self._opening -= 1
                c.failed += 1
            elif event == zmq.EVENT_DISCONNECTED:
                if self._opening:
                    self._opening -= 1
                    c.failed += 1
                elif self._live:
                    self._live -= 1
                    c.dropped += 1
        return c

    def close(self) -> None:
        if self._events is not None:
            self._socket.disable_monitor()
            self._events.close(0)
            self._events = None
