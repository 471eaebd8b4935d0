"""A small, strict HTTP/1.1 server for device uploads.

Devices send tiny requests over keep-alive connections at high rates; this
server parses only what they need (request line, Content-Length body,
keep-alive), with hard limits on header and body size, connection count
and idle time, so a client streaming garbage is cut off without memory
growth.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass

log = logging.getLogger(__name__)

MAX_HEAD = 8 * 1024
MAX_BODY = 64 * 1024
REASONS = {200: "OK", 400: "Bad Request", 403: "Forbidden", 404: "Not Found",
           405: "Method Not Allowed", 413: "Payload Too Large", 503: "Service Unavailable"}


@dataclass(slots=True)
class Request:
    method: str
    target: str
    headers: dict[str, str]
    body: bytes
    peer: str


Handler = Callable[[Request], Awaitable[tuple[int, str]]]


class HttpServer:
    def __init__(self, handler: Handler, max_connections: int = 20_000,
                 idle_timeout_s: float = 120.0) -> None:
        self.handler = handler
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.connections = 0
        self.protocol_errors = 0
        self.server: asyncio.Server | None = None

    async def start(self, host: str, port: int) -> int:
        self.server = await asyncio.start_server(self._serve, host, port, backlog=1024,
                                                 limit=MAX_HEAD)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        if self.server is not None:
            self.server.close()
            await self.server.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = str(writer.get_extra_info("peername"))
        if self.connections >= self.max_connections:
            await self._reply(writer, 503, "too many connections", keep_alive=False)
            return
        self.connections += 1
        try:
            while await self._one(reader, writer, peer):
                pass
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            self.connections -= 1
            writer.close()

    async def _one(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                   peer: str) -> bool:
        try:
            head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), self.idle_timeout_s)
        except TimeoutError:
            return False
        except asyncio.LimitOverrunError:
            return await self._bad(writer, 413, "header too large")
        except asyncio.IncompleteReadError:
            return False
        try:
            lines = head.decode("latin-1").split("\r\n")
            method, target, version = lines[0].split(" ")
            headers = {}
            for line in lines[1:]:
                if line:
                    k, _, v = line.partition(":")
                    headers[k.strip().lower()] = v.strip()
            length = int(headers.get("content-length", "0"))
        except ValueError:
            return await self._bad(writer, 400, "malformed request")
        if length < 0 or length > MAX_BODY:
            return await self._bad(writer, 413, "body too large")
        body = await asyncio.wait_for(reader.readexactly(length), 30) if length else b""
        keep_alive = (version == "HTTP/1.1" and headers.get("connection", "").lower() != "close")
        status, text = await self.handler(Request(method, target, headers, body, peer))
        await self._reply(writer, status, text, keep_alive)
        return keep_alive

    async def _bad(self, writer: asyncio.StreamWriter, status: int, text: str) -> bool:
        self.protocol_errors += 1
        await self._reply(writer, status, text, keep_alive=False)
        return False

    @staticmethod
    async def _reply(writer: asyncio.StreamWriter, status: int, text: str,
                     keep_alive: bool) -> None:
        body = text.encode("utf-8")
        writer.write(
            f"HTTP/1.1 {status} {REASONS.get(status, 'Error')}\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\nContent-Length: {len(body)}\r\n"
            f"Connection: {'keep-alive' if keep_alive else 'close'}\r\n\r\n".encode("ascii")
            + body
        )
        await writer.drain()
