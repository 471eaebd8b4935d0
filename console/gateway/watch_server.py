"""TCP listener for child GPS watches (the "3G" protocol in ``watch``).

Watches keep one long-lived connection each, send a heartbeat every few
minutes and wait for replies (``LK``, ``AL``…), so the server answers
every frame that expects it, in order, and hands every report to the
shared ``Intake``. Hard limits keep a city's worth of connections cheap and
a hostile client harmless: a connection cap, an idle timeout, a maximum
frame size, and a cut-off for clients that send garbage or nothing but
undecodable frames. Each connection's memory is bounded by
``max_frame`` plus one read.

A connection is an ``asyncio.Protocol``, not a stream-reading coroutine:
10,000 watches each sending a frame every few seconds made every read a
task, a ``wait_for`` timer and a drain, and those, not decoding, were most
of the gateway's time. Idle connections are found by one sweep a second
for all of them; a watch that does not read its replies stops being read
(transport flow control) until it does, or until it idles out.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter, deque
from typing import cast

from console.gateway.intake import ACCEPTED, Intake
from console.gateway.slices import PacedProtocol, Slicer
from console.gateway.watch import (
    MAX_FRAME,
    FrameSplitter,
    decode,
    decode_plain_uds,
    frame_device_id,
)
from models.fixes import Rejected, Report

log = logging.getLogger(__name__)

PROTOCOL = "watch"
MAX_BAD_FRAMES = 32  # undecodable frames in a row tolerated; the next one cuts a client off


def may_hold_alarm(data: bytes) -> bool:
    """Does this read hold an ``AL`` frame (SOS, fall, removed, low battery)?
    ``[3G*id*len*AL,...]``: a plain ``*AL`` elsewhere costs nothing but that
    read's place in line. (A ``UD`` whose status word carries an alarm bit,
    as some firmware sends besides ``AL``, is only found by decoding: it
    waits its turn, as every frame did before.)"""
    return b"*AL" in data


class _WatchConnection(PacedProtocol):
    """One watch's connection: frames in, replies out in frame order, each
    reply that acknowledges reports only once they are durable."""

    def __init__(self, server: WatchServer) -> None:
        self.server = server
        self.splitter = FrameSplitter(server.max_frame)
        self.transport: asyncio.Transport | None = None
        self.peer = ""
        self.last_active = time.monotonic()
        self.counted = False
        self.closing = False
        self.bad_in_row = 0
        self.garbage_mark = 0  # splitter.garbage after the last good frame
        self.pending = bytearray()  # read, waiting its turn in the server's slicer
        # one read's (reply, acknowledges reports) and the commit they wait for
        self.unsent: deque[tuple[list[tuple[bytes, bool]], asyncio.Future[bool] | None]] = \
            deque()

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)
        self.peer = str(transport.get_extra_info("peername"))
        server = self.server
        if server.connections >= server.max_connections:
            server.intake.reject(PROTOCOL, "too_many_connections", self.peer)
            self.closing = True
            transport.close()
            return
        server.connections += 1
        server.live.add(self)
        self.counted = True

    def connection_lost(self, exc: Exception | None) -> None:
        if self.counted:
            self.counted = False
            self.server.connections -= 1
            self.server.live.discard(self)

    def waiting_turn(self) -> bool:
        return bool(self.pending)

    def data_received(self, data: bytes) -> None:
        """An alarm's read (``AL``) is worked at once, any other waits its
        turn (``console.gateway.slices``); the connection is not read while
        it waits, so the watch's own earlier frames always go first."""
        if self.closing:
            return
        if self.pending or not may_hold_alarm(data):
            if not self.pending and self.transport is not None:
                self.transport.pause_reading()
                self.server.slicer.defer(self.work)
            self.pending += data
            return
        self._safely(data)

    def work(self) -> None:
        data, self.pending = bytes(self.pending), bytearray()
        self.resume_reading()
        if not self.closing:
            self._safely(data)

    def _safely(self, data: bytes) -> None:
        try:
            self._read(data)
        except Exception:  # one bad connection must never take the listener down
            log.exception("watch connection %s failed", self.peer)
            self.closing = True
            if self.transport is not None:
                self.transport.close()

    def _read(self, data: bytes) -> None:
        server, splitter = self.server, self.splitter
        self.last_active = time.monotonic()
        server.bytes_in += len(data)
        if not splitter.buffered:
            reports, used = decode_plain_uds(data, server.utc_offset_s)
            if reports:
                splitter.frames += len(reports)
                for report in reports:
                    server.handle_plain(report)
                self.bad_in_row, self.garbage_mark = 0, splitter.garbage
                if used == len(data):
                    return
                data = data[used:]
        oversized = splitter.oversized
        replies: list[tuple[bytes, bool]] = []
        for frame in splitter.feed(data):
            reply, good, acks = server._handle(frame)
            if reply is not None:
                replies.append((reply, acks))
            if good:
                self.bad_in_row, self.garbage_mark = 0, splitter.garbage
            else:
                self.bad_in_row += 1
                if self.bad_in_row > server.max_bad_frames:
                    break  # cut off now: the rest of the read is not decoded
        for _ in range(splitter.oversized - oversized):
            server.intake.reject(PROTOCOL, "frame_too_large", self.peer)
        fut = server.intake.durable() if any(acks for _, acks in replies) else None
        if replies:
            self.unsent.append((replies, fut))
            if fut is not None:
                fut.add_done_callback(lambda _f: self._write_ready())
        if (splitter.garbage - self.garbage_mark > server.max_garbage
                or self.bad_in_row > server.max_bad_frames):
            server.cut_off += 1
            server.intake.reject(PROTOCOL, "garbage_stream",
                                 f"{self.peer}: {splitter.garbage} bytes of garbage, "
                                 f"{self.bad_in_row} bad frames in a row")
            self.closing = True  # after the replies already due
        self._write_ready()

    def _write_ready(self) -> None:
        """Write, in order, every read's replies whose commit is known; an
        acknowledgement whose reports could not be made durable is left out
        (the watch sends them again)."""
        out: list[bytes] = []
        while self.unsent and (self.unsent[0][1] is None or self.unsent[0][1].done()):
            replies, fut = self.unsent.popleft()
            if fut is not None and (fut.cancelled() or not fut.result()):
                self.server.unacknowledged += sum(acks for _, acks in replies)
                replies = [(r, acks) for r, acks in replies if not acks]
            out += [r for r, _ in replies]
        transport = self.transport
        if transport is None or transport.is_closing():
            return
        if out:
            transport.write(b"".join(out))
        if self.closing and not self.unsent:
            transport.close()


class WatchServer:
    def __init__(self, intake: Intake, max_connections: int = 20_000,
                 idle_timeout_s: float = 300.0, max_frame: int = MAX_FRAME,
                 utc_offset_s: float = 0.0, max_bad_frames: int = MAX_BAD_FRAMES,
                 max_garbage: int | None = None) -> None:
        self.intake = intake
        self.max_connections = max_connections
        self.idle_timeout_s = idle_timeout_s
        self.max_frame = max_frame
        self.utc_offset_s = utc_offset_s  # the watches' clock offset from UTC
        self.max_bad_frames = max_bad_frames
        # Bytes that were no frame, since the last good one: enough to let one
        # oversized frame or a burst of line noise pass, not a stream of it.
        self.max_garbage = 4 * max_frame if max_garbage is None else max_garbage
        self.connections = 0
        self.frames = 0
        self.bytes_in = 0
        self.cut_off = 0  # connections closed for garbage
        self.timed_out = 0
        self.unacknowledged = 0  # frames not acknowledged: not durable, or an alarm, engine down
        self.ignored: Counter[str] = Counter()  # valid frames of types we do not use
        self.server: asyncio.Server | None = None
        self.live: set[_WatchConnection] = set()
        self.slicer = Slicer()
        self._sweeper: asyncio.Task[None] | None = None

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the bound port (useful with port 0)."""
        loop = asyncio.get_running_loop()
        self.server = await loop.create_server(lambda: _WatchConnection(self), host, port,
                                               backlog=1024)
        self._sweeper = loop.create_task(self._sweep_idle())
        return int(self.server.sockets[0].getsockname()[1])

    async def _sweep_idle(self) -> None:
        """One timer for every connection: a watch silent for
        ``idle_timeout_s`` (or not reading its replies that long) is dropped."""
        while True:
            await asyncio.sleep(min(1.0, self.idle_timeout_s / 2))
            cutoff = time.monotonic() - self.idle_timeout_s
            for conn in [c for c in self.live if c.last_active < cutoff]:
                self.timed_out += 1
                self.live.discard(conn)  # counted once, even if closing takes a while
                conn.closing = True
                if conn.transport is not None:
                    conn.transport.abort()  # close() would wait to flush to a deaf peer

    async def close(self) -> None:
        """Stop listening and drop every connection (watches reconnect)."""
        if self._sweeper is not None:
            self._sweeper.cancel()
        if self.server is not None:
            self.server.close()
        for conn in list(self.live):
            if conn.transport is not None:
                conn.transport.close()
        if self.server is not None:
            await self.server.wait_closed()
        for _ in range(200):  # let the connections finish their bookkeeping
            if not self.connections:
                break
            await asyncio.sleep(0.01)

    def stats(self) -> dict[str, float]:
        return {"connections.watch": self.connections, "frames.watch": self.frames,
                "bytes_in.watch": self.bytes_in,
                "cut_off.watch": self.cut_off, "timed_out.watch": self.timed_out,
                "unacknowledged.watch": self.unacknowledged}

    def handle_plain(self, report: Report) -> None:
        """``_handle`` for the report of a plain UD frame (``decode_plain_uds``):
        a UD has no reply, so there is nothing to send or wait for."""
        self.frames += 1
        verdict = self.intake.accept(report, PROTOCOL, time.time())
        if verdict is not ACCEPTED and verdict.accepted and not verdict.acknowledge:
            self.unacknowledged += 1

    def _handle(self, frame: bytes) -> tuple[bytes | None, bool, bool]:
        """Decode one frame and hand its reports to the intake; returns the
        reply to send (None: none, or no acknowledgement for an alarm the
        engine cannot raise now), whether the frame was decodable, and
        whether the reply acknowledges reports (so waits until durable)."""
        self.frames += 1
        now = time.time()
        try:
            msg = decode(frame, now, self.utc_offset_s)
        except Rejected as exc:
            self.intake.reject(PROTOCOL, exc.reason, exc.detail)
            device_id = frame_device_id(frame)
            if device_id is not None:
                self.intake.note_if_unregistered(device_id, PROTOCOL, now)
            return getattr(exc, "reply", None), False, False
        verdicts = [self.intake.accept(report, PROTOCOL, now) for report in msg.reports]
        if not msg.reports:
            # LK, INIT, TKQ, voice…: no report, but an unknown id is still seen.
            self.intake.check_device(msg.device_id, PROTOCOL, now)
            if msg.reply is None:
                self.ignored[msg.type] += 1
            return msg.reply, True, False
        if any(v.accepted and not v.acknowledge for v in verdicts):
            self.unacknowledged += 1  # the watch repeats its alarm until it hears AL
            return None, True, False
        return msg.reply, True, msg.reply is not None
