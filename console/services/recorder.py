"""The recorder: persists fixes in batches and notices in the event log (for
audit and replay), and applies the retention schedule. (The engine logs
its own alert messages, with the changes they announce.)

It drains whatever is waiting and writes it in one transaction, so its
write rate follows the load instead of one commit per message.

It never discards what it was given. Fixes come in journal order
(``console.journal``): the recorder's cursor commits in the same
transaction as the fixes, so after a crash, a gap on the bus or a store
that refused, it reads back from the gateway's journal exactly what it has
not stored. Events (alerts, notices) are not journaled: while the store
refuses they wait in memory, then in a spool file, and are written in
order when it returns; the heartbeat reports the backlog.

It also keeps the tape (``db.tape``): the bus traffic a replay needs, raw
and undecoded, with its receive time, for replay and training: devices'
fixes (by device id, so a consent's withdrawal can purge them from the
tape too) and what the system made of them (alerts, camera states, zones,
notices), but not the engine's position batches: those are by slot, which
only the engine can tie to a child, and a replay recomputes them from the
fixes anyway. A second SUB socket takes those topics; it is drained a
bounded amount per loop turn,
after the fixes, and the tape writes a block about once a second, so it
never holds back the store. A disk error on the tape is logged and counted
(``tape_errors``), never fatal, and costs only the tape's frames. The
hourly retention run also removes tape files older than ``tape_keep_days``.
"""

from __future__ import annotations

import math
import sys
import time
from collections import Counter

import zmq
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from console.bus import Publisher, Subscriber, socket
from console.journal import Follower, JournalReader, journal_path
from console.security import Security
from console.services.runtime import Runtime, start
from console.spool import Spool
from db import cursors, retention, tape
from db import repositories as repo
from db.store import open_store, session_factory
from models import health
from models.messages import AnyMessage, BadMessage, FixBatch, Heartbeat, encode, fix_columns
from models.retention import RetentionPolicy

RETENTION_EVERY_S = 3600.0
RETENTION_RETRY_S = 300.0  # after the store refused a purge
MAX_DRAIN = 200
RETRY_S = 1.0  # a store that refused is tried again this often
MEMORY_BACKLOG = 10_000  # events kept in memory before they go to the spool file
TAPE_DRAIN = 200  # tape frames taken per loop turn, at most
# Frames the tape socket buffers while the loop is busy (a few minutes of a
# city's traffic); beyond, the tape loses frames rather than the recorder
# its memory (a replay sees the gap in the publishers' seq).
TAPE_HWM = 20_000
TAPE_LOG_EVERY_S = 60.0  # a failing disk is logged once a minute, with a count
TAPE_TOPICS = (b"fix.", b"alert.", b"cam.", b"zone.", b"roster.", b"notice.", b"gw.")

Item = tuple[str, AnyMessage]


class Recorder:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.engine, _ = open_store(rt.config.db_url)
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        # Alert messages are not taken here: the engine logs each in the
        # transaction that stores its change (exactly once, whoever is down).
        security = Security.of(rt.config, "recorder")
        self.sub = Subscriber(self.ctx, rt.config.bus_sub, ("fix.batch", "notice."),
                              sources=rt.config.bus_sources,
                              security=security)
        self.pub = Publisher(self.ctx, rt.config.bus_pub, origin="recorder",
                             source=rt.config.bus_source, security=security)
        # The tape takes every frame as it came: the bus admitted it, and
        # the replay decodes it (and rejects what is bad) when it plays.
        self.tape_sub = socket(self.ctx, zmq.SUB)
        self.tape_sub.setsockopt(zmq.RCVHWM, TAPE_HWM)
        security.client(self.tape_sub, "bus")
        for prefix in TAPE_TOPICS:
            self.tape_sub.setsockopt(zmq.SUBSCRIBE, prefix)
        self.tape_sub.connect(rt.config.bus_sub)
        self.tape = tape.TapeWriter(tape.tape_dir(rt.config.data_dir))
        self.tape_errors = 0
        self.tape_malformed = 0  # frames that were not exactly topic and body
        self._tape_unlogged = 0
        self._tape_logged_at = -math.inf
        self.poller = zmq.Poller()
        self.poller.register(self.sub.sock, zmq.POLLIN)
        self.poller.register(self.tape_sub, zmq.POLLIN)
        with self.engine.connect() as conn:
            epoch, seq = cursors.load(conn, "recorder")
        self.follow = Follower(JournalReader(journal_path(rt.config.data_dir)), epoch, seq)
        self.stored = (epoch, seq)  # the cursor as committed
        self.backlog: list[Item] = []  # events (and unjournaled fixes) not yet stored
        self.spool = Spool(rt.config.data_dir / "spool" / "recorder.spool")
        self.usage_chain_broken = False  # the last purge found the usage log tampered with
        self.retry_at = 0.0
        self.store_failures = 0
        self.store_error = ""
        self.fixes_written = 0
        self.events_written = 0
        self.failed: Counter[str] = Counter()

    def run(self) -> None:
        next_retention = time.monotonic() + 5.0
        next_poll = 0.0
        while not self.rt.should_stop():
            now = time.monotonic()
            catching_up = self.follow.behind and now >= self.retry_at
            ready = dict(self.poller.poll(0 if catching_up else 200))
            if self.sub.sock in ready or catching_up:
                self.take(self.drain())
            elif (self.backlog or len(self.spool)) and now >= self.retry_at:
                self.take([])
            if self.tape_sub in ready:
                self.record_tape()
            self.flush_tape()
            if now >= next_poll:
                next_poll = now + 1.0
                self.follow.poll()
                self.pub.heartbeat(self.stats())
            if now >= next_retention:
                done = self.apply_retention()
                next_retention = time.monotonic() + (RETENTION_EVERY_S if done
                                                     else RETENTION_RETRY_S)
        self.take(self.drain())  # whatever arrived before the stop
        self.record_tape()
        self.close_tape()
        self.sub.close()
        self.tape_sub.close(0)
        self.pub.close()
        self.ctx.term()
        self.rt.log.info("wrote %d fixes, %d events; %d waiting", self.fixes_written,
                         self.events_written, self.waiting())

    def waiting(self) -> int:
        return len(self.backlog) + len(self.spool)

    def stats(self) -> dict[str, float]:
        """What the recorder's owner (and a test) reads: its backlog and place."""
        return {"backlog": self.waiting(), "spooled": len(self.spool),
                "store_failures": self.store_failures,
                "store_state": health.store_state(self.store_error), "journal_seq": self.follow.seq,
                "journal_lost": self.follow.lost, "fixes_written": self.fixes_written,
                "events_written": self.events_written,
                "retention_failures": self.failed["retention"],
                "usage_chain_broken": float(self.usage_chain_broken),
                "tape_records": self.tape.records, "tape_bytes": self.tape.bytes,
                "tape_errors": self.tape_errors, "tape_malformed": self.tape_malformed}

    # ----------------------------------------------------------------- tape
    def record_tape(self) -> None:
        """Up to ``TAPE_DRAIN`` frames onto the tape, with their receive
        time (only ``TAPE_TOPICS`` come); malformed frames are counted."""
        for _ in range(TAPE_DRAIN):
            try:
                frames = self.tape_sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return
            if len(frames) != 2:
                self.tape_malformed += 1
                continue
            try:
                self.tape.append(time.time(), frames[0], frames[1])
            except (OSError, ValueError) as exc:  # a full disk; a clock gone wrong
                self._tape_failed(exc)

    def flush_tape(self) -> None:
        """Write the tape's block once it is a second old."""
        try:
            self.tape.maybe_flush()
        except OSError as exc:
            self._tape_failed(exc)

    def close_tape(self) -> None:
        try:
            self.tape.close()
        except OSError as exc:
            self._tape_failed(exc)

    def _tape_failed(self, exc: Exception) -> None:
        """Counted each time; logged at most once a minute (a full disk
        fails every second), with how many since the last line."""
        self.tape_errors += 1
        self._tape_unlogged += 1
        now = time.monotonic()
        if now - self._tape_logged_at >= TAPE_LOG_EVERY_S:
            self.rt.log.error("tape not written (%s; %d failures since the last report, "
                              "%d frames lost in all); fixes and events are still stored",
                              exc, self._tape_unlogged, self.tape.lost)
            self._tape_unlogged = 0
            self._tape_logged_at = now

    def drain(self) -> list[Item]:
        """What to store next: journal batches when behind (unless the store
        is refusing: then they stay in the journal), then the bus."""
        out: list[Item] = []
        if time.monotonic() >= self.retry_at:
            out = [("fix.batch", b) for b in self.follow.catch_up()]
        while len(out) < MAX_DRAIN:
            try:
                frames = self.sub.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            parsed = self.sub.parse(frames)
            if parsed is None or isinstance(parsed[1], Heartbeat):
                continue
            if isinstance(parsed[1], FixBatch) and not self.follow.admit(parsed[1]):
                continue  # a repeat, or the journal will bring it
            out.append(parsed)
        return out

    def take(self, items: list[Item]) -> None:
        """Store ``items`` after whatever waits; on a refusal, keep them."""
        events = [(t, m) for t, m in items if not (isinstance(m, FixBatch) and m.journal_seq)]
        self.backlog += events
        if len(self.backlog) > MEMORY_BACKLOG:
            try:
                self.spool.push(self.backlog)
                self.backlog = []
            except OSError as exc:  # the disk is full too: memory it is
                self.rt.log.error("cannot spool %d events (%s); kept in memory",
                                  len(self.backlog), exc)
        journaled = [(t, m) for t, m in items if isinstance(m, FixBatch) and m.journal_seq]
        if time.monotonic() < self.retry_at:
            self._unwind()
            return
        waiting = self.spool.peek() + self.backlog
        if self.write(waiting + journaled):
            self.store_error = ""
            self.spool.clear()
            self.backlog = []
            self.stored = (self.follow.epoch, self.follow.seq)
        else:
            self.store_failures += 1
            self.retry_at = time.monotonic() + RETRY_S
            self._unwind()

    def _unwind(self) -> None:
        """Forget journal batches not stored: they are read back later."""
        self.follow.epoch, self.follow.seq = self.stored
        self.follow.behind = True

    def write(self, items: list[Item]) -> bool:
        """One transaction for everything, the cursor included. False when
        the store refused (locked, full, gone): nothing of it was stored.
        A message the store rejects for its content is written alone, so
        one bad message loses only itself (logged and counted)."""
        if not items:
            return True
        fixes, events = self.fixes_written, self.events_written
        try:
            with self.engine.begin() as conn:
                for topic, msg in items:
                    self._write_one(conn, topic, msg)
                cursors.save(conn, "recorder", self.follow.epoch, self.follow.seq)
            return True
        except OperationalError as exc:  # locked, disk full: the store will come back
            self.store_error = str(exc.orig)
            self.fixes_written, self.events_written = fixes, events  # none of it counted
            self.rt.log.warning("store refused %d messages (%s); keeping them", len(items),
                                exc.orig)
            return False
        except Exception:
            self.fixes_written, self.events_written = fixes, events
            self.rt.log.exception("batch of %d messages refused; writing one by one",
                                  len(items))
        try:
            for topic, msg in items:
                try:
                    with self.engine.begin() as conn:
                        self._write_one(conn, topic, msg)
                except OperationalError:
                    raise
                except Exception as exc:
                    self.failed[type(msg).__name__] += 1
                    self.rt.log.error("could not store %s seq %d from %s: %s", topic, msg.seq,
                                      msg.origin, exc)
            with self.engine.begin() as conn:
                cursors.save(conn, "recorder", self.follow.epoch, self.follow.seq)
        except OperationalError as exc:
            self.store_error = str(exc.orig)
            self.rt.log.warning("store refused (%s); keeping the rest", exc.orig)
            return False
        return True

    def _write_one(self, conn: Connection, topic: str, msg: AnyMessage) -> None:
        if isinstance(msg, FixBatch):
            try:
                cols = fix_columns(msg)
            except BadMessage as exc:
                self.sub.rejected["bad_columns"] += 1
                self.rt.log.warning("rejected fix batch: %s", exc)
                return
            # readers: the tag reader behind each fix (fix_columns checked its length)
            self.fixes_written += repo.insert_fixes(conn, msg.device_ids, cols, msg.readers)
        else:
            repo.append_events(conn, [(topic, msg.origin, msg.seq, msg.ts, encode(msg))])
            self.events_written += 1

    def apply_retention(self) -> bool:
        """Purge what the retention schedule no longer allows to keep
        (``db.retention``); False when it has to be tried again soon. A
        failure is logged and counted (``failed["retention"]``), never fatal:
        the recorder's job is storing, and a purge missed now is done next."""
        try:
            policy = RetentionPolicy.from_config(self.rt.config)
        except ValueError as exc:
            self.failed["retention"] += 1
            self.rt.log.error("retention not applied: %s", exc)
            return True  # the settings will not change until a restart
        for concern in policy.concerns():
            self.rt.log.warning("retention: %s", concern)
        _purge_tape(self.rt, policy, self.failed)  # whatever the store says
        try:
            with session_factory(self.engine)() as session:
                report = retention.purge(session, time.time(), policy)
        except OperationalError as exc:  # locked, disk full: the store will come back
            self.failed["retention"] += 1
            self.rt.log.warning("retention postponed: %s", exc.orig)
            return False
        except Exception:
            self.failed["retention"] += 1
            self.rt.log.exception("retention failed; trying again later")
            return False
        # a tampered usage log is never purged, and every console says so
        self.usage_chain_broken = bool(report.usage_error)
        if report.usage_error:
            self.rt.log.error("retention: %s", report.usage_error)
        if report.removed:
            self.rt.log.info("retention removed %s", report.detail())
        return True


def _purge_tape(rt: Runtime, policy: RetentionPolicy, failed: Counter[str]) -> None:
    """Remove the tape's hourly files older than ``policy.tape_s``; a
    failure is logged and counted with the retention's, never raised."""
    try:
        freed = tape.purge(tape.tape_dir(rt.config.data_dir), time.time() - policy.tape_s)
    except Exception:
        failed["retention"] += 1
        rt.log.exception("tape retention failed; trying again later")
        return
    if freed:
        rt.log.info("retention removed %.1f MB of bus tape", freed / 1e6)


def main(argv: list[str] | None = None) -> int:
    rt = start("recorder", argv)
    Recorder(rt).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
