"""The device HTTP server: pipelining, limits, garbage, idle clients."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable

import pytest

from console.gateway.http import MAX_HEAD, HttpServer, Request

Test = Callable[[int, HttpServer], Awaitable[None]]
URGENT: list[object] = [None]  # what ``serve`` passes as ``urgent`` (set per test below)


@pytest.fixture(autouse=True, params=["worked at once", "queued for slices"])
def reads(request: pytest.FixtureRequest) -> None:
    """Every test here runs twice: reads worked as they arrive, and every
    read queued as routine and worked in slices (the OsmAnd port's way for
    all but alarms). Both must behave the same to a client."""
    URGENT[0] = None if request.param == "worked at once" else (lambda _data: False)


def serve(test: Test, handler: object = None, **kw: object) -> None:
    def echo(req: Request) -> tuple[int, str]:
        return 200, f"{req.method} {req.target} {len(req.body)}"

    kw.setdefault("urgent", URGENT[0])

    async def main() -> None:
        server = HttpServer(handler or echo, **kw)  # type: ignore[arg-type]
        port = await server.start("127.0.0.1", 0)
        try:
            await asyncio.wait_for(test(port, server), 10)
        finally:
            await server.close()

    asyncio.run(main())


async def read_replies(reader: asyncio.StreamReader, n: int) -> list[str]:
    out = []
    for _ in range(n):
        head = await reader.readuntil(b"\r\n\r\n")
        length = int(head.split(b"Content-Length: ")[1].split(b"\r\n")[0])
        out.append(head.split(b" ", 2)[1].decode() + " " + (await reader.readexactly(length))
                   .decode())
    return out


@pytest.mark.parametrize("handler_kind", ["sync", "async"])
def test_pipelined_requests_are_answered_in_order(handler_kind: str) -> None:
    async def ahandler(req: Request) -> tuple[int, str]:
        await asyncio.sleep(0)
        return 200, req.target

    async def test(port: int, server: HttpServer) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        gets = b"".join(f"GET /{i} HTTP/1.1\r\nHost: x\r\n\r\n".encode() for i in range(50))
        writer.write(gets + b"POST /p HTTP/1.1\r\nContent-Length: 3\r\n\r\nabc")
        replies = await read_replies(reader, 51)
        if handler_kind == "sync":
            assert replies[0] == "200 GET /0 0" and replies[-1] == "200 POST /p 3"
        else:
            assert replies[:2] == ["200 /0", "200 /1"] and replies[-1] == "200 /p"
        assert server.connections == 1
        writer.close()

    serve(test, ahandler if handler_kind == "async" else None)


def test_a_body_split_across_reads_is_reassembled() -> None:
    async def test(port: int, server: HttpServer) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        for part in (b"POST /x HTTP/1.1\r\nContent-Le", b"ngth: 5\r\n\r\nab", b"cde"):
            writer.write(part)
            await writer.drain()
            await asyncio.sleep(0.01)
        assert await read_replies(reader, 1) == ["200 POST /x 5"]
        writer.close()

    serve(test)


@pytest.mark.parametrize(("payload", "status"), [
    (b"GARBAGE\r\n\r\n", "400"),
    (b"GET / HTTP/1.1\r\nContent-Length: nine\r\n\r\n", "400"),
    (b"POST / HTTP/1.1\r\nContent-Length: 999999999\r\n\r\n", "413"),
    (b"GET /" + b"a" * (MAX_HEAD + 10), "413"),
])
def test_malformed_input_is_refused_and_the_connection_closed(payload: bytes,
                                                               status: str) -> None:
    async def test(port: int, server: HttpServer) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(payload)
        reply = await reader.read()  # until the server closes
        assert reply.split(b" ")[1].decode() == status
        assert server.protocol_errors == 1
        writer.close()

    serve(test)


def test_a_client_streaming_garbage_is_cut_off() -> None:
    async def test(port: int, server: HttpServer) -> None:
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        with pytest.raises((ConnectionError, OSError)):
            for _ in range(10_000):  # bounded: at most 10 MB
                writer.write(b"x" * 1024)
                await writer.drain()
        assert server.connections == 0

    serve(test)


def test_idle_and_surplus_connections_are_closed() -> None:
    async def test(port: int, server: HttpServer) -> None:
        r1, w1 = await asyncio.open_connection("127.0.0.1", port)
        await asyncio.sleep(0.05)
        r2, w2 = await asyncio.open_connection("127.0.0.1", port)
        assert b"503" in await r2.read()  # over the limit of one
        assert await asyncio.wait_for(r1.read(), 5) == b""  # idle past 0.5 s
        w1.close()
        w2.close()

    serve(test, max_connections=1, idle_timeout_s=0.5)




@pytest.mark.parametrize(("coding", "status", "reason"), [
    ("chunked", "411", "http_chunked_unsupported"),
    ("gzip, chunked", "411", "http_chunked_unsupported"),
    ("Chunked", "411", "http_chunked_unsupported"),
    ("gzip", "501", "http_transfer_encoding_unsupported"),
])
def test_transfer_encoding_is_refused_not_misparsed(coding: str, status: str,
                                                    reason: str) -> None:
    """A chunked body must not be read as the next request: the chunk below
    is itself a well-formed GET, which must never reach the handler."""
    seen: list[str] = []
    errors: list[tuple[str, str]] = []

    def handler(req: Request) -> tuple[int, str]:
        seen.append(req.target)
        return 200, "OK"

    smuggled = b"GET /smuggled HTTP/1.1\r\n\r\n"
    chunk = b"%x\r\n%s\r\n0\r\n\r\n" % (len(smuggled), smuggled)

    async def test(port: int, server: HttpServer) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.write(f"POST /x HTTP/1.1\r\nTransfer-Encoding: {coding}\r\n"
                     f"Content-Length: 4\r\n\r\n".encode() + chunk)
        reply = await reader.read()  # until the server closes
        head, _, body = reply.partition(b"\r\n\r\n")
        assert head.split(b" ")[1].decode() == status
        assert b"Connection: close" in head
        assert (b"Content-Length" in body) if status == "411" else (b"not supported" in body)
        assert server.protocol_errors == 1 and server.errors == {reason: 1}
        writer.close()

    serve(test, handler, on_error=lambda r, d: errors.append((r, d)))
    assert seen == []
    assert [r for r, _ in errors] == [reason]


def test_every_protocol_error_is_counted_by_reason() -> None:
    async def test(port: int, server: HttpServer) -> None:
        for payload in (b"GARBAGE\r\n\r\n", b"POST / HTTP/1.1\r\nContent-Length: 99999999\r\n\r\n",
                        b"GET /" + b"a" * (MAX_HEAD + 10)):
            reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(payload)
            await reader.read()
            writer.close()
        assert server.errors == {"http_malformed": 1, "http_body_too_large": 1,
                                 "http_header_too_large": 1}

    serve(test)

