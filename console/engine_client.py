"""A small synchronous client of the engine, for scripts and the command line.

Why: the engine is the single writer of alerts, so a script that works an
alert must go through it like a console does (sign in, send a command
naming the version it saw, read the explicit reply) rather than write the
store. Every wait is bounded: a script against a stopped backend fails with
a sentence saying so instead of hanging.

    with EngineClient(cfg.engine_rpc) as engine:
        engine.sign_in("operator1", password)
        alerts = engine.call(AlertsRequest(token=engine.token), AlertList).alerts
"""

from __future__ import annotations

import socket as _socket
from types import TracebackType
from typing import TypeVar

import zmq

from console.bus import socket
from console.security import Security
from models.messages import (
    CommandReply,
    Reply,
    Request,
    SignedIn,
    SignIn,
    SignOut,
    decode,
    encode,
)

DEFAULT_TIMEOUT_S = 10.0
R = TypeVar("R")


class EngineUnavailable(RuntimeError):
    """The engine did not take or answer a request in time."""


class EngineRefused(Exception):
    """The engine answered with a refusal; ``code`` names the rule
    (forbidden, stale, illegal, signin, ...) and the message says why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


class EngineClient:
    """One REQ socket to the engine's ROUTER, and at most one session.

    A REQ socket that timed out waits for an answer forever, so it is
    dropped and the next request connects afresh.
    """

    def __init__(self, endpoint: str, timeout_s: float = DEFAULT_TIMEOUT_S,
                 console: str = "", security: Security | None = None,
                 server: str = "engine") -> None:
        """``server``: the key name of what answers at ``endpoint`` (the
        engine, or a training session's controls: "replayer")."""
        self.endpoint = endpoint
        self.server = server
        self.security = security
        self.timeout_s = timeout_s
        self.console = console or f"cli@{_socket.gethostname()}"
        self.token = ""
        self.user = ""
        self.roles: list[str] = []
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._sock: zmq.Socket[bytes] | None = None

    # ------------------------------------------------------------ transport
    def _socket(self) -> zmq.Socket[bytes]:
        if self._sock is None:
            ms = int(self.timeout_s * 1000)
            self._sock = socket(self._ctx, zmq.REQ)
            self._sock.setsockopt(zmq.SNDTIMEO, ms)
            self._sock.setsockopt(zmq.RCVTIMEO, ms)
            if self.security is not None:
                self.security.client(self._sock, self.server)
            self._sock.connect(self.endpoint)
        return self._sock

    def _drop_socket(self) -> None:
        if self._sock is not None:
            self._sock.close(0)
            self._sock = None

    def _unavailable(self) -> EngineUnavailable:
        return EngineUnavailable(f"the engine at {self.endpoint} did not answer within "
                                 f"{self.timeout_s:g} s; is the backend running?")

    def request(self, msg: Request) -> Reply:
        """Send one request and return the engine's reply, whatever it is."""
        sock = self._socket()
        try:
            sock.send(encode(msg))
            body = sock.recv()
        except zmq.Again:
            self._drop_socket()
            raise self._unavailable() from None
        return decode(body)  # type: ignore[return-value]

    def call(self, msg: Request, expect: type[R]) -> R:
        """``request``, raising ``EngineRefused`` for a refusal and a
        RuntimeError for an answer of another kind than ``expect``."""
        reply = self.request(msg)
        if isinstance(reply, CommandReply) and not reply.ok:
            raise EngineRefused(reply.code, reply.error)
        if not isinstance(reply, expect):
            raise RuntimeError(f"the engine answered {type(reply).__name__} to "
                               f"{type(msg).__name__}, expected {expect.__name__}")
        return reply

    # ------------------------------------------------------------- sessions
    def sign_in(self, user: str, password: str) -> str:
        """Open a session; returns its token (also kept for ``sign_out``)."""
        reply = self.call(SignIn(user=user, password=password, console=self.console),
                          SignedIn)
        self.token, self.user, self.roles = reply.token, reply.user, list(reply.roles)
        return reply.token

    def sign_out(self) -> None:
        """End the session, if any; the token is forgotten either way."""
        token, self.token = self.token, ""
        if token:
            self.call(SignOut(token=token), CommandReply)

    def close(self) -> None:
        self._drop_socket()
        self._ctx.term()

    def __enter__(self) -> EngineClient:
        return self

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        """Sign out and close; a failed sign-out must not hide the error
        that ended the block, and must not keep a session open silently."""
        try:
            if self.token:
                try:
                    self.sign_out()
                except (EngineUnavailable, EngineRefused):
                    if exc is None:
                        raise
        finally:
            self.close()
