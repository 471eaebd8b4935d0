"""Devices are acknowledged only once what they sent is in the gateway's journal.

Why: DESIGN.md (Delivery) says a device hears "received" only when its
report survives the death of any one process, and otherwise hears an error
and resends; an SOS is never held back, and an alarm nobody can raise now
(engine down) is not acknowledged. These tests run the real OsmAnd HTTP
server and the watch server in process, on 127.0.0.1, with the intake
writing to a real SQLite journal in tmp_path; a refusal is produced for
real, by another connection holding the journal's write lock.
"""

from __future__ import annotations

import asyncio
import functools
import sqlite3
import time
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager, contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from console.gateway import intake as intake_mod
from console.gateway.feeds import OSMAND, handle_osmand
from console.gateway.http import RETRY_AFTER_S, HttpServer
from console.gateway.intake import Intake
from console.gateway.osmand import may_hold_alarm
from console.gateway.watch import encode
from console.gateway.watch_server import WatchServer
from console.journal import Journal, JournalReader, journal_path
from models.messages import FLAG_SOS, FixBatch, unpack

WATCH = "3900512807"
PHONES = ("101", "102", "103")
SOS_PHONE = "7"
LAT, LON = 37.5444, 127.0374
WAIT_S = 10.0  # an upper bound for a condition, never a measured time


@dataclass
class Gateway:
    """The pieces of a gateway that decide acknowledgements, and what left them."""

    intake: Intake
    journal: Journal
    published: list[FixBatch] = field(default_factory=list)
    journal_at_publish: list[int] = field(default_factory=list)  # journal seqs on disk

    def journaled(self) -> list[FixBatch]:
        reader = JournalReader(self.journal.path)
        try:
            return reader.read(0)
        finally:
            reader.close()

    def journaled_devices(self) -> list[str]:
        return [d for b in self.journaled() for d in b.device_ids]

    def published_devices(self) -> list[str]:
        return [d for b in self.published for d in b.device_ids]


@pytest.fixture
def gw(tmp_path: Path) -> Iterator[Gateway]:
    journal = Journal(journal_path(tmp_path))
    gateway = Gateway(Intake(lambda b: None, journal), journal)

    def publish(batch: FixBatch) -> None:
        gateway.published.append(batch)
        gateway.journal_at_publish.append(
            max((b.journal_seq for b in gateway.journaled()), default=0))

    gateway.intake.publish = publish
    gateway.intake.registered = {*PHONES, SOS_PHONE, WATCH}
    yield gateway
    journal.close()


@contextmanager
def journal_locked(gw: Gateway) -> Iterator[None]:
    """Another writer holds the journal: appends fail after their 1 s timeout."""
    holder = sqlite3.connect(gw.journal.path, isolation_level=None, timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        yield
    finally:
        holder.execute("ROLLBACK")
        holder.close()


async def until(predicate: Callable[[], object]) -> None:
    """Wait for a condition the server reaches (bounded, so a bug fails, not hangs)."""
    deadline = time.monotonic() + WAIT_S
    while not predicate():
        assert time.monotonic() < deadline, "condition not reached"
        await asyncio.sleep(0.005)


# ------------------------------------------------------------------ OsmAnd HTTP


NOW = int(time.time())


def fix_query(device: str, t: int = NOW, sos: bool = False) -> str:
    alarm = "&alarm=sos" if sos else ""
    return f"id={device}&lat={LAT}&lon={LON}&timestamp={t}{alarm}"


def get(query: str) -> bytes:
    return f"GET /?{query} HTTP/1.1\r\nHost: gw\r\n\r\n".encode()


def post_form(query: str) -> bytes:
    body = query.encode()
    return (b"POST / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


@dataclass(frozen=True)
class Reply:
    status: int
    headers: dict[str, str]
    body: str


async def read_reply(reader: asyncio.StreamReader) -> Reply:
    head = await asyncio.wait_for(reader.readuntil(b"\r\n\r\n"), WAIT_S)
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:] if ln)}
    body = await reader.readexactly(int(headers["content-length"]))
    return Reply(int(lines[0].split(" ")[1]), headers, body.decode())


@asynccontextmanager
async def osmand_server(gw: Gateway, **kw: float) -> AsyncIterator[int]:
    """The OsmAnd port as the gateway builds it (services/gateway.py)."""
    server = HttpServer(functools.partial(handle_osmand, gw.intake),
                        on_error=functools.partial(gw.intake.reject, OSMAND),
                        durable=gw.intake.durable, urgent=may_hold_alarm,
                        **kw)  # type: ignore[arg-type]
    port = await server.start("127.0.0.1", 0)
    try:
        yield port
    finally:
        await server.close()


@asynccontextmanager
async def connection(port: int) -> AsyncIterator[tuple[asyncio.StreamReader,
                                                        asyncio.StreamWriter]]:
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        yield reader, writer
    finally:
        writer.close()


async def exchange(port: int, raw: bytes, n: int) -> list[Reply]:
    """Send ``raw`` in one write and read ``n`` replies off the same connection."""
    async with connection(port) as (reader, writer):
        writer.write(raw)
        return [await read_reply(reader) for _ in range(n)]


def test_200_only_once_the_fix_is_in_the_journal(gw: Gateway) -> None:
    async def main() -> list[Reply]:
        async with osmand_server(gw) as port:
            return await exchange(port, get(fix_query("101")), 1)

    (reply,) = asyncio.run(main())
    assert (reply.status, reply.body) == (200, "OK")
    (stored,) = gw.journaled()
    assert stored.device_ids == ["101"] and stored.protocol == OSMAND
    assert (stored.journal, stored.journal_seq) == (gw.journal.epoch, 1)
    assert gw.published == [stored]  # published as journaled, numbered
    assert gw.journal_at_publish == [1]  # on disk before it was published
    assert gw.intake.journal_failures == 0 and gw.intake.alarms_unacknowledged == 0


def test_pipelined_requests_are_answered_in_order(gw: Gateway) -> None:
    """Phone apps pipeline; a reply out of order acknowledges the wrong fix."""
    raw = b"".join([get(fix_query("101")), get(fix_query("999")), get("id=101&lat=abc&lon=1"),
                    get(fix_query("101")), post_form(fix_query("102")),
                    get(fix_query("103", NOW - 60))])

    async def main() -> list[Reply]:
        async with osmand_server(gw) as port:
            return await exchange(port, raw, 6)

    replies = asyncio.run(main())
    assert [(r.status, r.body) for r in replies] == [
        (200, "OK"), (403, "unregistered device"), (400, "bad_number"),
        (200, "OK (duplicate)"), (200, "OK"), (200, "OK")]
    assert sorted(gw.journaled_devices()) == ["101", "102", "103"]
    assert gw.intake.accepted[OSMAND] == 3


def test_replies_keep_request_order_across_group_commits(gw: Gateway) -> None:
    """A later read whose answer needs no commit (403) must not overtake an
    earlier read still waiting for its commit."""
    gate = asyncio.Event()
    hooks = 0

    def gated() -> asyncio.Future[bool]:
        nonlocal hooks
        hooks += 1
        inner = gw.intake.durable()

        async def after_gate() -> bool:
            await gate.wait()
            return await inner

        return asyncio.ensure_future(after_gate())

    async def main() -> tuple[list[Reply], bytes]:
        server = HttpServer(functools.partial(handle_osmand, gw.intake), durable=gated,
                            urgent=may_hold_alarm)
        port = await server.start("127.0.0.1", 0)
        try:
            async with connection(port) as (reader, writer):
                writer.write(get(fix_query("101")))
                await until(lambda: gw.journal.seq == 1)  # first group committed
                writer.write(get(fix_query("999")) + get(fix_query("102")))
                await until(lambda: gw.journal.seq == 2)  # second group committed
                try:
                    early = await asyncio.wait_for(reader.read(1), 0.3)
                except TimeoutError:
                    early = b""
                gate.set()
                return [await read_reply(reader) for _ in range(3)], early
        finally:
            await server.close()

    replies, early = asyncio.run(main())
    assert early == b""  # nothing left before the first read's commit was known
    assert [(r.status, r.body) for r in replies] == [
        (200, "OK"), (403, "unregistered device"), (200, "OK")]
    assert hooks == 2 and [b.journal_seq for b in gw.journaled()] == [1, 2]


def test_journal_refusal_gives_503_but_publishes_and_the_resend_is_taken(gw: Gateway) -> None:
    """Not durable: the device must resend, yet the engine sees the SOS now."""
    raw = get(fix_query("101")) + get(fix_query(SOS_PHONE, sos=True))

    async def main() -> tuple[list[Reply], list[Reply]]:
        async with osmand_server(gw) as port:
            with journal_locked(gw):
                refused = await exchange(port, raw, 2)
            return refused, await exchange(port, raw, 2)

    refused, resent = asyncio.run(main())
    assert [r.status for r in refused] == [503, 503]
    assert all(r.headers.get("retry-after") == str(RETRY_AFTER_S) for r in refused)
    assert gw.intake.journal_failures == 1  # one group commit, the SOS's batch first in it
    (loose_sos, loose, taken_sos, taken) = gw.published
    assert loose_sos.device_ids == [SOS_PHONE] and loose_sos.journal_seq == 0
    assert unpack("flags", loose_sos.flags)[0] & FLAG_SOS  # the SOS left at once, on its own
    assert loose.device_ids == ["101"] and loose.journal_seq == 0
    assert [(r.status, r.body) for r in resent] == [(200, "OK"), (200, "OK")]  # no "duplicate"
    assert gw.journaled() == [taken_sos, taken]
    assert [taken_sos.device_ids, taken.device_ids] == [[SOS_PHONE], ["101"]]
    assert gw.intake.rejected == {}


def test_sos_while_the_engine_is_down_is_not_acknowledged(gw: Gateway) -> None:
    """A child whose SOS nobody can raise must see 'not received'."""
    sos = get(fix_query(SOS_PHONE, sos=True))

    async def main() -> tuple[list[Reply], list[Reply]]:
        async with osmand_server(gw) as port:
            gw.intake.engine_up = False
            down = await exchange(port, sos + get(fix_query("101")), 2)
            gw.intake.engine_up = True
            return down, await exchange(port, sos, 1)

    (refused, plain), (resent,) = asyncio.run(main())
    assert refused.status == 503 and refused.headers.get("retry-after") == str(RETRY_AFTER_S)
    assert "engine is down" in refused.body
    assert (plain.status, plain.body) == (200, "OK")  # plain fixes are still acknowledged
    assert gw.intake.alarms_unacknowledged == 1 and gw.intake.stats()["alarms_unacknowledged"] == 1
    assert (resent.status, resent.body) == (200, "OK")
    assert gw.journaled_devices().count(SOS_PHONE) == 2  # journaled both times, acked once
    assert gw.intake.alarms_unacknowledged == 1


def test_refused_sos_is_not_acknowledged_when_another_device_was_waiting(
        gw: Gateway, monkeypatch: pytest.MonkeyPatch) -> None:
    """Two phones in one commit window: the journal refuses the SOS's
    immediate commit; the SOS must still hear 503, not 200."""
    monkeypatch.setattr(intake_mod, "COMMIT_WINDOW_S", 0.5)  # phone 101 is still waiting

    async def main() -> tuple[Reply, Reply]:
        async with osmand_server(gw) as port, connection(port) as (r1, w1), \
                connection(port) as (r2, w2):
            w1.write(get(fix_query("101")))
            await until(lambda: gw.intake.accepted[OSMAND] == 1)
            with journal_locked(gw):
                w2.write(get(fix_query(SOS_PHONE, sos=True)))
                await until(lambda: gw.intake.journal_failures == 1)
            return await read_reply(r1), await read_reply(r2)

    first, sos = asyncio.run(main())
    assert first.status == 503
    assert SOS_PHONE not in gw.journaled_devices()
    assert sos.status == 503  # fails: 200 "OK" for an SOS that is not durable


def test_head_not_finished_in_time_gets_408(gw: Gateway) -> None:
    """One byte at a time must not hold a connection open for ever."""
    async def main() -> tuple[bytes, list[Reply]]:
        async with osmand_server(gw, header_deadline_s=0.3) as port:
            async with connection(port) as (reader, writer):
                trickle = get(fix_query("101"))[:-4]  # never finishes the head
                got = b""
                for i in range(len(trickle)):
                    writer.write(trickle[i:i + 1])
                    try:
                        got = await asyncio.wait_for(reader.read(), 0.05)
                    except TimeoutError:
                        continue
                    break
                assert got, "the server let the head trickle on"
            return got, await exchange(port, get(fix_query("102")), 1)

    got, (after,) = asyncio.run(main())
    assert got.startswith(b"HTTP/1.1 408 ") and b"Connection: close" in got
    assert after.status == 200  # other clients are unaffected
    assert gw.intake.rejected["osmand:http_header_timeout"] == 1
    assert gw.published_devices() == ["102"]


@pytest.mark.parametrize(("head", "status", "reason"), [
    (b"POST / HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n\r\n",
     411, "http_length_missing"),
    (b"POST / HTTP/1.1\r\nContent-Length: -5\r\n\r\n", 400, "http_malformed"),
])
def test_post_length_must_be_declared_and_sane(gw: Gateway, head: bytes, status: int,
                                               reason: str) -> None:
    """Without a usable length the body would be read as the next request."""
    raw = head + fix_query("101").encode() + b"\r\n\r\n"

    async def main() -> tuple[Reply, bytes]:
        async with osmand_server(gw) as port, connection(port) as (reader, writer):
            writer.write(raw)
            reply = await read_reply(reader)
            return reply, await asyncio.wait_for(reader.read(), WAIT_S)

    reply, rest = asyncio.run(main())
    assert reply.status == status and reply.headers["connection"] == "close"
    assert rest == b""  # closed, and nothing of the body was taken as a request
    assert gw.intake.rejected == {f"osmand:{reason}": 1}
    assert gw.published == [] and gw.journaled() == []


# ----------------------------------------------------------------- watch TCP


def watch_frame(content: str) -> bytes:
    return encode("3G", WATCH, content)


def sos_frame(t: float) -> bytes:
    when = time.strftime("%d%m%y,%H%M%S", time.gmtime(t))
    return watch_frame(f"AL,{when},A,{LAT:.6f},N,{LON:.6f},E,4.0,90.0,30.0,8,90,71,"
                       "120,0,00010000,1,1,450,5,8801,40561,150,0")


AL_REPLY = watch_frame("AL")
LK = watch_frame("LK")  # its reply is the same frame, and needs no commit


@asynccontextmanager
async def watch_server(gw: Gateway) -> AsyncIterator[tuple[WatchServer, int]]:
    server = WatchServer(gw.intake)
    port = await server.start("127.0.0.1", 0)
    try:
        yield server, port
    finally:
        await server.close()


async def watch_exchange(port: int, raw: bytes) -> bytes:
    """Send frames, then read until the heartbeat's reply, which always comes
    last: what came before it is every reply the server chose to send."""
    async with connection(port) as (reader, writer):
        writer.write(raw)
        return await asyncio.wait_for(reader.readuntil(LK), WAIT_S)


def test_watch_alarm_acknowledged_once_durable_and_not_while_engine_down(gw: Gateway) -> None:
    """The watch repeats its alarm until it hears AL: AL means 'someone will see it'."""
    first, second = sos_frame(time.time() - 20), sos_frame(time.time() - 10)

    async def main() -> tuple[list[bytes], dict[str, float]]:
        async with watch_server(gw) as (server, port):
            up = await watch_exchange(port, first + LK)
            journaled_when_up = len(gw.journaled())
            gw.intake.engine_up = False
            down = await watch_exchange(port, second + LK)
            stats = server.stats()
            gw.intake.engine_up = True
            again = await watch_exchange(port, second + LK)
            assert journaled_when_up == 1
            return [up, down, again], stats

    (up, down, again), stats = asyncio.run(main())
    assert up == AL_REPLY + LK
    assert down == LK  # no AL for an alarm nobody can raise
    assert stats["unacknowledged.watch"] == 1 and gw.intake.alarms_unacknowledged == 1
    assert again == AL_REPLY + LK  # the resend was not swallowed as a duplicate
    batches = gw.journaled()
    assert [b.device_ids for b in batches] == [[WATCH]] * 3  # journaled every time
    assert all(unpack("flags", b.flags)[0] & FLAG_SOS for b in batches)
    assert gw.intake.rejected == {}


def test_watch_alarm_not_acknowledged_while_the_journal_refuses(gw: Gateway) -> None:
    alarm = sos_frame(time.time())

    async def main() -> tuple[bytes, bytes, float]:
        async with watch_server(gw) as (server, port):
            with journal_locked(gw):
                refused = await watch_exchange(port, alarm + LK)
            unacked = server.stats()["unacknowledged.watch"]
            return refused, await watch_exchange(port, alarm + LK), unacked

    refused, resent, unacked = asyncio.run(main())
    assert refused == LK and unacked == 1
    assert [b.journal_seq for b in gw.published] == [0, 1]  # published at once, then journaled
    assert resent == AL_REPLY + LK
    assert [b.device_ids for b in gw.journaled()] == [[WATCH]]
