"""The watch server over real sockets: replies, limits, and an SOS that
travels from a watch's TCP frame to an alert in the engine."""

from __future__ import annotations

import asyncio
import math
import random
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import zmq

from console.bus import Publisher, Subscriber
from console.config import Config
from console.gateway.intake import Intake
from console.gateway.watch import encode
from console.gateway.watch_server import WatchServer
from console.security import Security
from models.messages import FLAG_SOS, AlertOpened, AlertView, FixBatch, Heartbeat, unpack
from tests.console.conftest import SEOUL_FOREST, Backend, wait_for

WATCH = "3900512807"


def now_fields() -> str:
    return time.strftime("%d%m%y,%H%M%S", time.gmtime())


def location(kind: str, status: str, lat: float = SEOUL_FOREST[0],
             lon: float = SEOUL_FOREST[1], validity: str = "A") -> str:
    return (f"{kind},{now_fields()},{validity},{lat:.6f},N,{lon:.6f},E,4.0,90.0,30.0,8,90,71,"
            f"120,0,{status},1,1,450,5,8801,40561,150,0")


@contextmanager
def serving(intake: Intake, **kw: Any) -> Iterator[tuple[WatchServer, int]]:
    """A WatchServer on its own event loop thread, as the gateway runs it."""
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    server = WatchServer(intake, **kw)
    port = asyncio.run_coroutine_threadsafe(server.start("127.0.0.1", 0), loop).result(5)
    try:
        yield server, port
    finally:
        asyncio.run_coroutine_threadsafe(server.close(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()


def connect(port: int) -> socket.socket:
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    return s


def read_until(s: socket.socket, expected: bytes, timeout_s: float = 5.0) -> bytes:
    got = b""
    deadline = time.monotonic() + timeout_s
    while not got.endswith(expected) and time.monotonic() < deadline:
        chunk = s.recv(4096)
        if not chunk:
            break
        got += chunk
    return got


def closed_by_server(s: socket.socket, timeout_s: float = 5.0) -> bool:
    s.settimeout(timeout_s)
    try:
        return s.recv(1) == b""
    except ConnectionResetError:
        return True


def local_intake() -> tuple[Intake, list[FixBatch]]:
    batches: list[FixBatch] = []
    intake = Intake(batches.append)
    intake.registered = {WATCH}
    return intake, batches


def test_replies_in_order_for_split_and_merged_writes() -> None:
    intake, batches = local_intake()
    with serving(intake) as (server, port), connect(port) as s:
        lk = encode("3G", WATCH, "LK,50,1,71")
        s.sendall(lk[:9])
        time.sleep(0.05)  # two reads on the server
        s.sendall(lk[9:])
        assert read_until(s, b"LK]") == encode("3G", WATCH, "LK")
        merged = (encode("3G", WATCH, location("UD", "00000000"))
                  + encode("3G", WATCH, location("AL", "00010000"))
                  + b"[CS*" + WATCH.encode() + b"*0008*TK,#!AMR]" + encode("3G", WATCH, "TKQ"))
        s.sendall(merged)
        expected = (encode("3G", WATCH, "AL") + encode("CS", WATCH, "TK,1")
                    + encode("3G", WATCH, "TKQ"))
        assert read_until(s, b"TKQ]") == expected
        assert server.connections == 1 and server.frames == 5
    assert intake.accepted["watch"] == 2
    (batch,) = batches  # the SOS flushed at once, with the fix before it
    assert list(unpack("flags", batch.flags)) == [0, FLAG_SOS] and batch.protocol == "watch"


def test_an_unregistered_watch_that_only_says_hello_is_seen() -> None:
    """LK heartbeats carry no report, yet the admin must see the watch in
    "unregistered devices seen"; so must one whose frames do not decode."""
    intake, batches = local_intake()
    stranger, garbled = "8800000777", "8800000778"
    with serving(intake) as (_, port), connect(port) as s:
        s.sendall(encode("3G", stranger, "LK,0,0,80") + encode("3G", stranger, "LK"))
        hello = encode("3G", stranger, "LK") * 2
        assert read_until(s, hello) == hello
        s.sendall(encode("3G", garbled, "UD,1,2,3") + encode("3G", WATCH, "LK"))
        assert read_until(s, b"LK]") == encode("3G", WATCH, "LK")
    seen = intake.take_unregistered()
    assert set(seen) == {stranger, garbled}
    protocol, first, last, attempts = seen[stranger]
    assert (protocol, attempts) == ("watch", 2) and first <= last
    assert seen[garbled][0] == "watch"
    assert intake.rejected["watch:unregistered_device"] == 2  # the two hellos
    assert intake.rejected["watch:missing_fields"] == 1  # counted once, for what it is
    assert intake.stats()["unregistered_devices"] == 2
    assert batches == [] and intake.accepted["watch"] == 0  # the registered LK is no fix


def test_index_is_mirrored_over_the_wire() -> None:
    intake, _ = local_intake()
    with serving(intake) as (_, port), connect(port) as s:
        s.sendall(encode("ZJ", WATCH, "LK", index="0007"))
        assert read_until(s, b"LK]") == f"[ZJ*{WATCH}*0007*0002*LK]".encode()


def test_connection_cap() -> None:
    intake, _ = local_intake()
    with serving(intake, max_connections=2) as (server, port):
        a, b = connect(port), connect(port)
        wait_for(lambda: server.connections == 2, 5, "two connections")
        c = connect(port)
        assert closed_by_server(c)
        assert intake.rejected["watch:too_many_connections"] == 1
        a.close()
        wait_for(lambda: server.connections == 1, 5, "the first to go")
        with connect(port) as d:
            d.sendall(encode("3G", WATCH, "LK"))
            assert read_until(d, b"LK]").endswith(b"LK]")
        for x in (b, c):
            x.close()


def test_idle_connection_is_closed() -> None:
    intake, _ = local_intake()
    with serving(intake, idle_timeout_s=0.3) as (server, port), connect(port) as s:
        started = time.monotonic()
        assert closed_by_server(s)
        # The lower bound proves the timeout; the upper one only that it fired
        # at all (a shared, loaded machine may be slow to get round to it).
        assert 0.25 < time.monotonic() - started < 20
        wait_for(lambda: server.connections == 0, 5, "the connection to be dropped")
        assert server.timed_out == 1


def test_garbage_stream_is_cut_off() -> None:
    intake, _ = local_intake()
    rng = random.Random(3)
    garbage = bytes(rng.choice(b"abc]*,0123\x00\xff") for _ in range(4096))
    with serving(intake, max_frame=4096) as (server, port), connect(port) as s:
        deadline = time.monotonic() + 20
        try:
            while time.monotonic() < deadline:
                s.sendall(garbage)
        except OSError:  # reset or broken pipe: the server hung up
            pass
        assert time.monotonic() < deadline, "the server kept reading garbage"
        wait_for(lambda: server.cut_off == 1, 5, "the cut-off")
        # it read no further than the read that crossed the line (asyncio's
        # largest read is 256 KiB)
        assert server.bytes_in <= server.max_garbage + 256 * 1024
    assert intake.rejected["watch:garbage_stream"] == 1


def test_endless_undecodable_frames_are_cut_off() -> None:
    """The 11th bad frame in a row cuts the client off, however the frames
    are split into reads: the server decodes none after it."""
    intake, _ = local_intake()
    bad = encode("3G", WATCH, "UD,1,2,3")
    with serving(intake, max_bad_frames=10) as (server, port), connect(port) as s:
        try:
            s.sendall(bad * 5)  # a good frame between resets the count
            s.sendall(encode("3G", WATCH, "LK"))
            assert read_until(s, b"LK]").endswith(encode("3G", WATCH, "LK"))
            for n in range(200):
                s.sendall(bad * (n % 4 + 1))  # reads of one to four frames, and merged ones
        except (BrokenPipeError, ConnectionResetError):
            pass
        assert closed_by_server(s)
        assert server.cut_off == 1
    assert intake.rejected["watch:missing_fields"] == 5 + 11
    assert intake.rejected["watch:garbage_stream"] == 1


def test_oversized_frame_is_refused_and_the_next_frame_answered() -> None:
    intake, _ = local_intake()
    with serving(intake, max_frame=2048) as (_, port), connect(port) as s:
        s.sendall(b"[3G*" + WATCH.encode() + b"*FFFF*UD," + b"1" * 1500)
        time.sleep(0.05)
        s.sendall(b"1" * 1000)
        time.sleep(0.05)
        s.sendall(encode("3G", WATCH, "LK"))
        assert read_until(s, b"LK]").endswith(encode("3G", WATCH, "LK"))
    assert intake.rejected["watch:frame_too_large"] == 1


# --------------------------------------------------------------------- the whole way

def bus_ready(pub: Publisher, cfg: Config) -> None:
    """PUB drops until the proxy's subscription arrives: wait until our own
    heartbeat comes back through the bus before sending anything that counts."""
    ctx = zmq.Context.instance()
    sub = Subscriber(ctx, cfg.bus_sub, ("sys.heartbeat",), security=Security.console(cfg))
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            pub.heartbeat()
            got = sub.recv(timeout_ms=100)
            if got is not None and isinstance(got[1], Heartbeat) and got[1].origin == pub.origin:
                return
        raise AssertionError("our publisher never reached the bus")
    finally:
        sub.close()


def engine_reaches(sub: Subscriber) -> None:
    """Our subscription has reached the engine's publisher once one of the
    engine's heartbeats (sent every second) comes through it."""
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        got = sub.recv(timeout_ms=200)
        if got is not None and isinstance(got[1], Heartbeat) and got[1].origin.startswith(
                "engine:"):
            return
    raise AssertionError("no engine heartbeat on the bus")


def alerts_opened(sub: Subscriber, devices: set[str], timeout_s: float = 10.0,
                  ) -> dict[str, AlertView]:
    """The ``alert.opened`` bodies on the bus for ``devices``, by device."""
    found: dict[str, AlertView] = {}
    deadline = time.monotonic() + timeout_s
    while not devices <= set(found) and time.monotonic() < deadline:
        got = sub.recv(timeout_ms=200)
        if got is not None and got[0] == "alert.opened" and isinstance(got[1], AlertOpened):
            found[got[1].alert.device_id] = got[1].alert
    return found


def test_watch_sos_becomes_an_alert(backend: Backend) -> None:
    """A child's watch presses SOS (AL, status bit 16); another sends SOS with
    no GPS fix ('V' at 0,0). Both become SOS alerts in the engine and are
    published on the bus as ``alert.opened``."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = Publisher(ctx, backend.config.bus_pub, origin="gateway",
                    security=Security.of(backend.config, "gateway"))
    bus = Subscriber(ctx, backend.config.bus_sub, ("alert.opened", "sys.heartbeat"),
                     security=Security.console(backend.config))
    try:
        bus_ready(pub, backend.config)
        engine_reaches(bus)
        intake = Intake(pub.send)
        intake.registered = {r.device_id for r in backend.roster}
        good, blind = backend.roster[2].device_id, backend.roster[5].device_id
        with serving(intake) as (_, port), connect(port) as s:
            sos = encode("3G", good, location("AL", "00010000"))
            s.sendall(sos[:40])
            time.sleep(0.05)
            s.sendall(sos[40:] + encode("SG", blind, location("AL", "00010008", 0, 0, "V")))
            replies = encode("3G", good, "AL") + encode("SG", blind, "AL")
            assert read_until(s, replies) == replies

            def sos_alerts() -> dict[str, Any]:
                return {a.device_id: a for a in backend.snapshot().alerts if a.kind == "sos"}

            wait_for(lambda: {good, blind} <= set(sos_alerts()), 10, "both SOS alerts")
        alerts = sos_alerts()
        assert math.isclose(alerts[good].lat, SEOUL_FOREST[0], abs_tol=1e-5)
        assert math.isclose(alerts[good].lon, SEOUL_FOREST[1], abs_tol=1e-5)
        assert not alerts[good].position_is_last_known
        assert alerts[blind].position_is_last_known
        assert intake.accepted["watch"] == 2
        published = alerts_opened(bus, {good, blind})
        assert set(published) == {good, blind}, "alert.opened missing on the bus"
        for device in (good, blind):  # what the bus carried is what the engine holds
            assert published[device].kind == "sos"
            assert published[device].id == alerts[device].id
        assert published[blind].position_is_last_known
    finally:
        bus.close()
        pub.close()
        ctx.term()


def test_a_watch_that_never_reads_its_replies_is_paused_then_dropped() -> None:
    """Replies pile up in the kernel, then in the transport; past its limit
    the server stops reading that watch (its frames wait in the socket, the
    server's memory does not grow) and drops it once it has been idle."""
    intake, _ = local_intake()
    lk = encode("3G", WATCH, "LK") * 2000
    with serving(intake, idle_timeout_s=1.0) as (server, port), connect(port) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.settimeout(0.2)
        sent = 0
        try:
            for _ in range(400):  # bounded: stops when the server stops reading
                sent += s.send(lk)
        except (TimeoutError, BlockingIOError):
            pass
        frames = server.frames
        assert 0 < frames < sent // len(encode("3G", WATCH, "LK"))  # reading paused
        wait_for(lambda: server.connections == 0, 10, "the idle watch to be dropped")
        assert server.timed_out == 1
        s.settimeout(5)
        try:  # the replies it was owed, then the end
            while s.recv(65536):
                pass
        except ConnectionResetError:
            pass


def slow_intake(watches: list[str]) -> tuple[Intake, list[tuple[str, bool]]]:
    """An intake that takes 2 ms per routine report (a saturated gateway),
    and the (device, sos) of every report in the order it took them."""
    intake = Intake(lambda _b: None)
    intake.registered = set(watches)
    taken: list[tuple[str, bool]] = []
    accept = intake.accept

    def slow_accept(report: Any, protocol: str, now: float | None = None,
                    reader: str = "") -> Any:
        taken.append((report.device_id, report.sos))
        if not report.sos:
            time.sleep(0.002)
        return accept(report, protocol, now, reader)

    intake.accept = slow_accept  # type: ignore[method-assign]
    return intake, taken


def test_an_al_frame_is_worked_before_routine_frames_read_ahead_of_it() -> None:
    """Saturated (a slow intake, 20 watches' eight UD frames each already
    read), an AL alarm from another watch is taken before most of them:
    routine reads wait in the server's slicer, an alarm's read does not.
    Every watch still gets its replies in order (here: its AL's)."""
    watches = [f"39005{n:05d}" for n in range(21)]
    intake, taken = slow_intake(watches)
    with serving(intake) as (server, port):
        conns = [connect(port) for _ in range(20)]
        for n, s in enumerate(conns):
            s.sendall(b"".join(encode("3G", watches[n], location("UD", "00000000"))
                               for _ in range(8)))
        time.sleep(0.05)  # read, and being worked
        with connect(port) as sos:
            sos.sendall(encode("3G", watches[20], location("AL", "00010000")))
            assert read_until(sos, b"*AL]").endswith(b"*AL]")
        wait_for(lambda: len(taken) == 161, 10, "every frame to be taken")
        for s in conns:
            s.close()
        slices = server.slicer.slices
    assert taken.index((watches[20], True)) < len(taken) // 2
    assert [d for d, _ in taken[:8]] == [watches[0]] * 8  # a watch's frames stay together
    assert slices > 1
