"""CurveZMQ for the streaming sockets: encryption plus a list of authorised client keys.

CurveZMQ (RFC 26) gives each socket a long-term key pair. The *server* side holds a secret
key and publishes its public key; a *client* knows the server's public key and has a key
pair of its own. With an authorised-keys directory, the server's ZAP handler
(``zmq.auth.thread.ThreadAuthenticator``, one per context) lets in only clients whose public
certificate lies in that directory: others complete no handshake and receive nothing.

Which side is the CURVE server does not depend on who binds: in zakotfs the binding side
(IQ sink, result publisher) is normally the server and the connecting side the
client.

Certificates are the ZeroMQ text files written by ``zmq.auth.create_certificates``
(``NAME.key`` public, ``NAME.key_secret`` public + secret); keep the secret ones private.

Examples
--------
>>> server_pub, server_sec = generate_certificates(keys_dir, "server")    # doctest: +SKIP
>>> client_pub, client_sec = generate_certificates(allowed_dir, "rx1")     # doctest: +SKIP
>>> sink = IQSink(ep, curve=CurveConfig.server(server_sec, allowed_dir))   # doctest: +SKIP
>>> src = IQSource(ep, curve=CurveConfig.client(client_sec, server_pub))   # doctest: +SKIP
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass
from pathlib import Path

import zmq
import zmq.auth
from zmq.auth.thread import ThreadAuthenticator

__all__ = ["CurveConfig", "generate_certificates"]

logger = logging.getLogger(__name__)


def generate_certificates(directory: str | os.PathLike, name: str) -> tuple[Path, Path]:
    """Create a CURVE key pair as ``directory/NAME.key`` and ``directory/NAME.key_secret``.

    Returns
    -------
    (public_file, secret_file) : tuple of Path
    """
    if not name or os.sep in name:
        raise ValueError(f"name must be a plain file name, got {name!r}")
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    public_file, secret_file = zmq.auth.create_certificates(directory, name)
    os.chmod(secret_file, 0o600)
    return Path(public_file), Path(secret_file)


def _load(path: Path, *, need_secret: bool, what: str) -> tuple[bytes, bytes | None]:
    if not path.is_file():
        raise ValueError(f"{what}: no certificate file at {path}")
    try:
        public, secret = zmq.auth.load_certificate(path)
    except (ValueError, OSError) as exc:
        raise ValueError(f"{what}: {path} is not a ZeroMQ certificate ({exc})") from None
    if need_secret and not secret:
        raise ValueError(f"{what}: {path} holds no secret key (use the NAME.key_secret file)")
    return public, secret


@dataclass(frozen=True)
class CurveConfig:
    """CurveZMQ settings of one socket. Build with :meth:`server` or :meth:`client`.

    Parameters
    ----------
    secret_file : Path
        This socket's own certificate with its secret key (``NAME.key_secret``).
    server_public_file : Path or None
        Client only: the server's public certificate. None makes this socket the server.
    authorized_keys_dir : Path or None
        Server only: directory of the public certificates of the clients let in. None lets
        in any client that knows the server's public key (encryption without client
        authentication).
    """

    secret_file: Path
    server_public_file: Path | None = None
    authorized_keys_dir: Path | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "secret_file", Path(self.secret_file))
        _load(self.secret_file, need_secret=True, what="secret_file")
        if self.server_public_file is not None:
            object.__setattr__(self, "server_public_file", Path(self.server_public_file))
            _load(self.server_public_file, need_secret=False, what="server_public_file")
            if self.authorized_keys_dir is not None:
                raise ValueError("authorized_keys_dir applies to the server side only; "
                                 "a client config (server_public_file given) cannot have one")
        if self.authorized_keys_dir is not None:
            object.__setattr__(self, "authorized_keys_dir", Path(self.authorized_keys_dir))
            if not self.authorized_keys_dir.is_dir():
                raise ValueError(f"authorized_keys_dir: {self.authorized_keys_dir} is not a directory")

    @classmethod
    def server(cls, secret_file: str | os.PathLike,
               authorized_keys_dir: str | os.PathLike | None = None) -> "CurveConfig":
        """The CURVE server side: own secret certificate, optional authorised client keys."""
        return cls(Path(secret_file), None,
                   None if authorized_keys_dir is None else Path(authorized_keys_dir))

    @classmethod
    def client(cls, secret_file: str | os.PathLike,
               server_public_file: str | os.PathLike) -> "CurveConfig":
        """The CURVE client side: own secret certificate and the server's public one."""
        return cls(Path(secret_file), Path(server_public_file))

    @property
    def is_server(self) -> bool:
        return self.server_public_file is None

    def apply(self, socket: zmq.Socket) -> None:
        """Set the CURVE options on ``socket``; call before bind/connect."""
        public, secret = _load(self.secret_file, need_secret=True, what="secret_file")
        socket.curve_publickey = public
        socket.curve_secretkey = secret
        if self.is_server:
            socket.curve_server = True
        else:
            server_public, _ = _load(self.server_public_file, need_secret=False,
                                     what="server_public_file")
            socket.curve_serverkey = server_public

    def start_authenticator(self, context: zmq.Context) -> ThreadAuthenticator | None:
        """Server side: start the ZAP handler of ``context`` (None on a client).

        The caller stops it (``.stop()``) when it closes the socket.
        """
        if not self.is_server:
            return None
        auth = ThreadAuthenticator(context, log=logger)
        auth.start()
        location = (zmq.auth.CURVE_ALLOW_ANY if self.authorized_keys_dir is None
                    else str(self.authorized_keys_dir))
        auth.configure_curve(domain="*", location=location)
        return auth
