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
awaited, one request at a time per connection, in order). A handler whose
answer depends on durability returns ``Durable(text)``: the server asks its
``durable`` hook for a future (one group commit for every connection that
read in the same moment), and answers 200 once it resolves True, or 503
with ``Retry-After`` so the device sends again. Replies on a connection
always leave in request order.

A client gets ``HEADER_DEADLINE_S`` to finish a request's head, however
slowly it trickles bytes (idle timeouts alone let one byte every minute
hold a connection for ever).

With an ``urgent`` test (for OsmAnd: the bytes mention ``alarm``), a read
that passes it is worked at once and any other waits its turn in a
``Slicer`` (``console.gateway.slices``): an SOS no longer waits for every
connection's pipelined requests.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import logging
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import cast

from console.gateway.slices import PacedProtocol, Slicer, UrgentTest

log = logging.getLogger(__name__)

MAX_HEAD = 8 * 1024
MAX_BODY = 64 * 1024
HEADER_DEADLINE_S = 10.0
RETRY_AFTER_S = 5  # what a device is told to wait before sending again
REASONS = {200: "OK", 400: "Bad Request", 401: "Unauthorized", 403: "Forbidden",
           404: "Not Found", 405: "Method Not Allowed", 408: "Request Timeout",
           411: "Length Required", 413: "Payload Too Large", 429: "Too Many Requests",
           501: "Not Implemented", 503: "Service Unavailable"}
BODY_METHODS = frozenset({"POST", "PUT", "PATCH"})


@dataclass(slots=True)
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    peer: str


@dataclass(frozen=True, slots=True)
class Durable:
    """200 with ``text`` once what the request brought is durable; 503 with
    ``refused`` and ``Retry-After`` if it could not be made so."""

    text: str
    refused: str = "not stored: send again"


Headers = tuple[tuple[str, str], ...]
# (status, text), or (status, text, headers) from a handler that sets its own
# (Retry-After on a 429, WWW-Authenticate on a 401: console.gateway.location).
Reply = tuple[int, str] | tuple[int, str, Headers]
Answer = Reply | Durable
Handler = Callable[[Request], Answer] | Callable[[Request], Awaitable[Answer]]
ErrorHook = Callable[[str, str], object]  # (reason, detail), e.g. Intake.reject for a protocol
DurableHook = Callable[[], "asyncio.Future[bool]"]


def response(status: int, text: str, keep_alive: bool,
             content_type: str = "text/plain; charset=utf-8", headers: Headers = ()) -> bytes:
    """The bytes of a reply."""
    body = text.encode("utf-8")
    return _head(status, len(body), keep_alive, content_type, headers) + body


@functools.lru_cache(maxsize=512)
def _head(status: int, length: int, keep_alive: bool, content_type: str,
          headers: Headers) -> bytes:
    """A reply's head. Devices get the same few answers again and again
    ("OK"), so heads are made once and kept (a small LRU); bodies are not
    kept: a guardian's answer says where a child is."""
    own = "".join(f"{name}: {value}\r\n" for name, value in headers)
    retry = (f"Retry-After: {RETRY_AFTER_S}\r\n" if status == 503
             and not any(name.lower() == "retry-after" for name, _ in headers) else "")
    return (f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: {content_type}\r\nContent-Length: {length}\r\n{retry}{own}"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n"
            ).encode("ascii")


def settle(answer: Answer, durable: bool) -> Reply:
    """The status and text of an answer once durability is known."""
    if isinstance(answer, Durable):
        return (200, answer.text) if durable else (503, answer.refused)
    return answer


def _reply_bytes(reply: Reply, keep_alive: bool, content_type: str) -> bytes:
    status, text, *own = reply
    return response(status, text, keep_alive, content_type, own[0] if own else ())


# A connection's replies waiting for a group commit: the answers of one read
# (with their keep-alive), and the future they wait for (None: none needed).
_Pending = tuple[list[tuple[Answer, bool]], "asyncio.Future[bool] | None"]


class _Connection(PacedProtocol):
    def __init__(self, server: HttpServer) -> None:
        self.server = server
        self.buf = bytearray()
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.last_active = time.monotonic()
        self.closing = False
        self.queue: asyncio.Queue[Request | None] | None = None
        self.head_since = 0.0  # when the unfinished head in ``buf`` began (0: none)
        self.unsent: deque[_Pending] = deque()
        self.tail: list[bytes] = []
        self.queued = False  # waiting in the server's routine queue, not being read

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # a TCP transport (uvloop's is not a subclass of asyncio's: no isinstance)
        self.transport = cast(asyncio.Transport, transport)
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

    def waiting_turn(self) -> bool:
        return self.queued

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        self.last_active = time.monotonic()
        self.buf += data
        urgent = self.server.urgent
        if urgent is None or self.queue is not None or urgent(data):
            self.work()
        elif not self.queued:
            self.queued = True
            if self.transport is not None:
                self.transport.pause_reading()
            self.server.slicer.defer(self.work)

    def work(self) -> None:
        """Parse and answer every complete request in the buffer."""
        if self.queued:
            self.queued = False
            self.resume_reading()
        if self.closing:
            return
        out: list[bytes] = []
        answers: list[tuple[Answer, bool]] = []
        while not self.closing:
            request = self._parse(out)
            if request is None:
                break
            keep_alive = request.headers.get("connection", "").lower() != "close"
            if self.queue is not None:
                self.queue.put_nowait(request)
                continue
            answers.append((self.server.handler(request), keep_alive))  # type: ignore[arg-type]
            if not keep_alive:
                self.closing = True
        if b"\r\n\r\n" in self.buf or not self.buf:
            self.head_since = 0.0
        elif not self.head_since:
            self.head_since = self.last_active
        needs = any(isinstance(a, Durable) for a, _ in answers)
        fut = self.server.durable() if needs and self.server.durable is not None else None
        if answers:
            self.unsent.append((answers, fut))
        if fut is not None:
            fut.add_done_callback(lambda _f: self._write_ready())
        self.tail += out
        self._write_ready()

    def _write_ready(self) -> None:
        """Write, in request order, every read's replies whose commit is known
        (then ``tail``: a protocol error's reply), and close when asked."""
        out: list[bytes] = []
        while self.unsent and (self.unsent[0][1] is None or self.unsent[0][1].done()):
            answers, fut = self.unsent.popleft()
            ok = fut is None or (not fut.cancelled() and fut.result())
            for answer, keep_alive in answers:
                out.append(_reply_bytes(settle(answer, ok), keep_alive,
                                        self.server.content_type))
        if self.tail and not self.unsent:
            out += self.tail
            self.tail = []
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if out:
            transport.write(b"".join(out))
        if self.closing and not self.unsent and self.queue is None:
            transport.close()

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
                key = k.strip().lower()
                if key == "content-length" and key in headers and headers[key] != v.strip():
                    raise ValueError("two different Content-Length headers")
                headers[key] = v.strip()
            declared = headers.get("content-length")
            if declared is not None and not (declared.isascii() and declared.isdigit()):
                raise ValueError(f"Content-Length {declared[:20]!r} is not digits")
            length = int(declared) if declared is not None else 0
        except ValueError:
            self._fail(out, 400, "malformed request", "http_malformed")
            return None
        if "transfer-encoding" in headers:
            self._refuse_coding(out, headers["transfer-encoding"])
            return None
        if declared is None and method in BODY_METHODS:
            self._fail(out, 411, f"{method} needs a Content-Length", "http_length_missing")
            return None
        if length > self.server.max_body:
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
            answer = await self.server.handler(request)  # type: ignore[misc]
            durable = True
            if isinstance(answer, Durable) and self.server.durable is not None:
                durable = await self.server.durable()
            reply = settle(answer, durable)
            if self.transport is None or self.transport.is_closing():
                return
            self.transport.write(_reply_bytes(reply, keep_alive, self.server.content_type))
            if not keep_alive:
                self.transport.close()
                return
        if self.closing and self.transport is not None:
            self.transport.close()


class HttpServer:
    def __init__(self, handler: Handler, max_connections: int = 20_000,
                 idle_timeout_s: float = 120.0, max_body: int = MAX_BODY,
                 content_type: str = "text/plain; charset=utf-8",
                 on_error: ErrorHook | None = None, durable: DurableHook | None = None,
                 header_deadline_s: float = HEADER_DEADLINE_S,
                 urgent: UrgentTest | None = None) -> None:
        self.handler = handler
        self.urgent = urgent
        self.slicer = Slicer()
        self.durable = durable
        self.header_deadline_s = header_deadline_s
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
        """One timer for all connections instead of one per request: closes
        idle ones, and answers 408 to heads not finished in time."""
        while True:
            await asyncio.sleep(min(1.0, self.idle_timeout_s / 2, self.header_deadline_s / 2))
            now = time.monotonic()
            cutoff = now - self.idle_timeout_s
            for conn in [c for c in self.live if c.last_active < cutoff]:
                if conn.transport is not None:
                    conn.transport.close()
            late = now - self.header_deadline_s
            for conn in [c for c in self.live if c.head_since and c.head_since < late]:
                conn._fail(conn.tail, 408, "request head not finished in time",
                           "http_header_timeout")
                conn._write_ready()

    async def close(self) -> None:
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.server is not None:
            self.server.close()
            for conn in list(self.live):
                if conn.transport is not None:
                    conn.transport.close()
            await self.server.wait_closed()
