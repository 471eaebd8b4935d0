"""The recorder: persists fixes in batches and notices in the event log (for
audit and replay), and applies the retention schedule. (The engine logs
its own alert messages, with the changes they announce.)

It drains whatever is waiting and writes it in one transaction, so its
write rate follows the load instead of one commit per message. On SQLite
the fixes are a file of their own (``db.store``): their writes never hold
the lock the engine needs to store an alert, so they can be as large as
the load makes them.

It never discards what it was given. Fixes come in journal order
(``console.journal``): the recorder's cursor commits in the same
transaction as the fixes, so after a crash, a gap on the bus or a store
that refused, it reads back from the gateway's journal exactly what it has
not stored. Events (alerts, notices) are not journaled: while the store
refuses they wait in memory, then in a spool file, and are written in
order when it returns; the heartbeat reports the backlog.

It also keeps the bus tape, and takes a withdrawn child's fixes off it,
through ``console.tape_keeper`` (whose notes say how): each loop turn, after
the fixes; the hourly retention run removes tape files older than
``tape_keep_days`` too.
"""

from __future__ import annotations

import sys
import time
from collections import Counter

import zmq
from sqlalchemy import Connection
from sqlalchemy.exc import DBAPIError, OperationalError

from console.bus import Publisher, Subscriber
from console.journal import READ_CHUNK, Follower, JournalReader, journal_path
from console.security import Security
from console.services.runtime import Runtime, settle_heap, start
from console.spool import Spool
from console.tape_keeper import TapeKeeper, purge_tape
from db import cursors, partitions, retention
from db import repositories as repo
from db.store import open_store, session_factory
from models import health
from models.messages import AnyMessage, FixBatch, Heartbeat, encode
from models.retention import RetentionPolicy

RETENTION_EVERY_S = 3600.0
RETENTION_RETRY_S = 300.0  # after the store refused a purge
MAX_DRAIN = 200
# Under load, batches arrive every few milliseconds; a transaction for each
# spent a third of the recorder's time committing. Waiting this long after a
# write lets the next one carry several (nothing waits on the recorder: an
# alarm is the engine's, and the journal holds every fix until stored).
GROUP_S = 0.05
RETRY_S = 1.0  # a store that refused is tried again this often
MEMORY_BACKLOG = 10_000  # events kept in memory before they go to the spool file

Item = tuple[str, AnyMessage]


class Recorder:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.engine, _ = open_store(rt.config.db_url)
        self.days_ahead()
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        # Alert messages are not taken here: the engine logs each in the
        # transaction that stores its change (exactly once, whoever is down).
        security = Security.of(rt.config, "recorder")
        self.sub = Subscriber(self.ctx, rt.config.bus_sub, ("fix.batch", "notice."),
                              sources=rt.config.bus_sources,
                              security=security)
        self.pub = Publisher(self.ctx, rt.config.bus_pub, origin="recorder",
                             source=rt.config.bus_source, security=security)
        self.poller = zmq.Poller()
        self.poller.register(self.sub.sock, zmq.POLLIN)
        self.tape_keeper = TapeKeeper(rt, self.ctx, security, self.engine, self.poller)
        with self.engine.connect() as conn:
            epoch, seq = cursors.load(conn, "recorder")
        self.follow = Follower(JournalReader(journal_path(rt.config.data_dir)), epoch, seq)
        self.stored = (epoch, seq)  # the cursor as committed
        self.backlog: list[Item] = []  # events (and unjournaled fixes) not yet stored
        self.spool = Spool(rt.config.data_dir / "spool" / "recorder.spool")
        self.usage_chain_broken = False  # the last purge found the usage log tampered with
        self.retry_at = 0.0
        self.written_at = 0.0  # when the last take from the bus ended (monotonic)
        self.store_failures = 0
        self.store_error = ""
        self.fixes_written = 0
        self.events_written = 0
        self.failed: Counter[str] = Counter()

    def run(self) -> None:
        settle_heap()
        next_retention = time.monotonic() + 5.0
        next_poll = 0.0
        while not self.rt.should_stop():
            now = time.monotonic()
            catching_up = self.follow.behind and now >= self.retry_at
            ready = dict(self.poller.poll(0 if catching_up else 200))
            if self.sub.sock in ready or catching_up:
                if (early := self.written_at + GROUP_S - time.monotonic()) > 0:
                    time.sleep(early)
                self.take(self.drain())
                self.written_at = time.monotonic()
            elif (self.backlog or len(self.spool)) and now >= self.retry_at:
                self.take([])
            self.tape_keeper.step(ready)
            if now >= next_poll:
                next_poll = now + 1.0
                self.follow.poll()
                self.pub.heartbeat(self.stats())
            if now >= next_retention and not self.tape_keeper.redacting:  # never both on the tape
                done = self.apply_retention()
                next_retention = time.monotonic() + (RETENTION_EVERY_S if done
                                                     else RETENTION_RETRY_S)
        self.take(self.drain())  # whatever arrived before the stop
        self.tape_keeper.close()
        self.sub.close()
        self.pub.close()
        self.ctx.term()
        self.rt.log.info("wrote %d fixes, %d events; %d waiting", self.fixes_written,
                         self.events_written, self.waiting())

    def days_ahead(self) -> None:
        """The coming days' fix partitions (PostgreSQL), before the first
        batch needs them. A refusal is only logged: fixes wait in the
        default partition, and the hourly retention run tries again."""
        try:
            with self.engine.begin() as conn:
                created = partitions.ensure(conn, time.time())
        except DBAPIError as exc:  # busy, or made meanwhile by someone else
            self.rt.log.warning("fix partitions not created: %s", exc.orig)
            return
        if created:
            self.rt.log.info("fix partitions created: %s", ", ".join(created))

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
                **self.tape_keeper.stats()}

    def drain(self) -> list[Item]:
        """What to store next: journal batches when behind (unless the store
        is refusing: then they stay in the journal), then the bus."""
        out: list[Item] = []
        if time.monotonic() >= self.retry_at:
            out = [("fix.batch", b) for b in self.follow.catch_up(READ_CHUNK)]
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
        # The events first, then the fixes with the cursor: on SQLite they
        # are two files (``db.store``), each committed apart, and this order
        # never loses an event nor stores one twice (a fix not stored is
        # read back from the journal). Neither write holds the other's lock.
        waiting = self.spool.peek() + self.backlog
        if waiting:
            if not self.write(waiting, cursor=False):
                self._refused()
                return
            self.spool.clear()
            self.backlog = []
        if self.write(journaled, cursor=True):
            self.store_error = ""
            self.stored = (self.follow.epoch, self.follow.seq)
        else:
            self._refused()

    def _refused(self) -> None:
        self.store_failures += 1
        self.retry_at = time.monotonic() + RETRY_S
        self._unwind()

    def _unwind(self) -> None:
        """Forget journal batches not stored: they are read back later."""
        self.follow.epoch, self.follow.seq = self.stored
        self.follow.behind = True

    def write(self, items: list[Item], cursor: bool) -> bool:
        """One transaction for ``items`` (and the journal cursor if asked).
        False when the store refused (locked, full, gone): nothing of it was
        stored. A message the store rejects for its content is written
        alone, so one bad message loses only itself (logged and counted)."""
        if not items:
            return True
        fixes, events = self.fixes_written, self.events_written
        # rows built before the transaction: it holds SQLite's write lock
        prepared = [(topic, msg, self._rows(msg)) for topic, msg in items]
        try:
            with self.engine.begin() as conn:
                for topic, msg, rows in prepared:
                    self._write_one(conn, topic, msg, rows)
                if cursor:
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
            for topic, msg, rows in prepared:
                try:
                    with self.engine.begin() as conn:
                        self._write_one(conn, topic, msg, rows)
                except OperationalError:
                    raise
                except Exception as exc:
                    self.failed[type(msg).__name__] += 1
                    self.rt.log.error("could not store %s seq %d from %s: %s", topic, msg.seq,
                                      msg.origin, exc)
            if cursor:
                with self.engine.begin() as conn:
                    cursors.save(conn, "recorder", self.follow.epoch, self.follow.seq)
        except OperationalError as exc:
            self.store_error = str(exc.orig)
            self.rt.log.warning("store refused (%s); keeping the rest", exc.orig)
            return False
        return True

    def _rows(self, msg: AnyMessage) -> repo.FixRows | None:
        """A fix batch's rows; None for other messages and for a batch whose
        columns do not decode (counted and logged here, once)."""
        if not isinstance(msg, FixBatch):
            return None
        cols = self.sub.columns(msg)
        if cols is None:
            return None
        # readers: the tag reader behind each fix (fix_columns checked its length)
        return repo.fix_rows(msg.device_ids, cols, msg.readers)

    def _write_one(self, conn: Connection, topic: str, msg: AnyMessage,
                   rows: repo.FixRows | None) -> None:
        if isinstance(msg, FixBatch):
            if rows is not None:
                self.fixes_written += repo.insert_fix_rows(conn, rows)
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
        purge_tape(self.rt, policy, self.failed)  # whatever the store says
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


def main(argv: list[str] | None = None) -> int:
    rt = start("recorder", argv)
    Recorder(rt).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
