"""TCP listener for child GPS watches (the "3G" protocol in ``watch``).

Watches keep one long-lived connection each, send a heartbeat every few
minutes and wait for replies (``LK``, ``AL``…), so the server answers
every frame that expects it, in order, and hands every report to the
shared ``Intake``. Hard limits keep a city's worth of connections cheap and
a hostile client harmless: a connection cap, an idle timeout, a maximum
frame size, and a cut-off for clients that send garbage or nothing but
undecodable frames. Each connection's memory is bounded by
``max_frame`` plus one read.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections import Counter

from console.gateway.intake import Intake
from console.gateway.watch import MAX_FRAME, FrameSplitter, decode, frame_device_id
from models.fixes import Rejected

log = logging.getLogger(__name__)

PROTOCOL = "watch"
READ_CHUNK = 16 * 1024
MAX_BAD_FRAMES = 32  # undecodable frames in a row tolerated; the next one cuts a client off


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
        self._writers: set[asyncio.StreamWriter] = set()

    async def start(self, host: str, port: int) -> int:
        """Listen; returns the bound port (useful with port 0)."""
        self.server = await asyncio.start_server(self._serve, host, port, backlog=1024,
                                                 limit=READ_CHUNK)
        return int(self.server.sockets[0].getsockname()[1])

    async def close(self) -> None:
        """Stop listening and drop every connection (watches reconnect)."""
        if self.server is not None:
            self.server.close()
        for writer in list(self._writers):
            writer.close()
        if self.server is not None:
            await self.server.wait_closed()
        for _ in range(200):  # let the sessions finish their bookkeeping
            if not self.connections:
                break
            await asyncio.sleep(0.01)

    def stats(self) -> dict[str, float]:
        return {"connections.watch": self.connections, "frames.watch": self.frames,
                "bytes_in.watch": self.bytes_in,
                "cut_off.watch": self.cut_off, "timed_out.watch": self.timed_out,
                "unacknowledged.watch": self.unacknowledged}

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = str(writer.get_extra_info("peername"))
        if self.connections >= self.max_connections:
            self.intake.reject(PROTOCOL, "too_many_connections", peer)
            writer.close()
            return
        self.connections += 1
        self._writers.add(writer)
        try:
            await self._session(reader, writer, peer)
        except (ConnectionError, TimeoutError, asyncio.IncompleteReadError):
            pass
        except Exception:  # one bad connection must never take the listener down
            log.exception("watch connection %s failed", peer)
        finally:
            self.connections -= 1
            self._writers.discard(writer)
            writer.close()
            with contextlib.suppress(Exception):
                await writer.wait_closed()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                       peer: str) -> None:
        splitter = FrameSplitter(self.max_frame)
        bad_in_row = 0
        garbage_mark = 0  # splitter.garbage after the last good frame
        while True:
            try:
                data = await asyncio.wait_for(reader.read(READ_CHUNK), self.idle_timeout_s)
            except TimeoutError:
                self.timed_out += 1
                return
            if not data:
                return
            self.bytes_in += len(data)
            oversized = splitter.oversized
            # (reply, acknowledges reports): those wait until the reports are durable
            replies: list[tuple[bytes, bool]] = []
            for frame in splitter.feed(data):
                reply, good, acks = self._handle(frame)
                if reply is not None:
                    replies.append((reply, acks))
                if good:
                    bad_in_row, garbage_mark = 0, splitter.garbage
                else:
                    bad_in_row += 1
                    if bad_in_row > self.max_bad_frames:
                        break  # cut off now: the rest of the read is not decoded
            for _ in range(splitter.oversized - oversized):
                self.intake.reject(PROTOCOL, "frame_too_large", peer)
            if any(acks for _, acks in replies) and not await self.intake.durable():
                self.unacknowledged += sum(acks for _, acks in replies)
                replies = [(r, acks) for r, acks in replies if not acks]
            if replies:
                writer.write(b"".join(r for r, _ in replies))
                await asyncio.wait_for(writer.drain(), self.idle_timeout_s)
            if (splitter.garbage - garbage_mark > self.max_garbage
                    or bad_in_row > self.max_bad_frames):
                self.cut_off += 1
                self.intake.reject(PROTOCOL, "garbage_stream",
                                   f"{peer}: {splitter.garbage} bytes of garbage, "
                                   f"{bad_in_row} bad frames in a row")
                return

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
