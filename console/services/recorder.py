"""The recorder: persists fixes in batches and every other bus message in
the event log (for audit and replay), and applies the retention schedule.

It drains whatever is waiting and writes it in one transaction, so its
write rate follows the load instead of one commit per message.
"""

from __future__ import annotations

import sys
import time
from collections import Counter

import zmq
from sqlalchemy import Connection
from sqlalchemy.exc import OperationalError

from console.bus import SequenceTracker, Subscriber
from console.services.runtime import Runtime, start
from db import repositories as repo
from db.store import open_store
from models.messages import AnyMessage, BadMessage, FixBatch, Heartbeat, encode, fix_columns

RETENTION_EVERY_S = 3600.0
MAX_DRAIN = 200


class Recorder:
    def __init__(self, rt: Runtime) -> None:
        self.rt = rt
        self.engine, _ = open_store(rt.config.db_url)
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.sub = Subscriber(self.ctx, rt.config.bus_sub, ("fix.batch", "alert.", "notice."))
        self.seqs = SequenceTracker()
        self.fixes_written = 0
        self.events_written = 0
        self.failed: Counter[str] = Counter()

    def run(self) -> None:
        next_retention = time.monotonic() + 5.0
        while not self.rt.should_stop():
            if self.sub.sock.poll(200):
                self.write(self.drain())
            if time.monotonic() >= next_retention:
                self.apply_retention()
                next_retention = time.monotonic() + RETENTION_EVERY_S
        self.write(self.drain())  # whatever arrived before the stop
        self.sub.close()
        self.ctx.term()
        self.rt.log.info("wrote %d fixes, %d events", self.fixes_written, self.events_written)

    def drain(self) -> list[tuple[str, AnyMessage]]:
        out: list[tuple[str, AnyMessage]] = []
        while len(out) < MAX_DRAIN:
            try:
                frames = self.sub.sock.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                break
            parsed = self.sub.parse(frames)
            if parsed is not None:
                out.append(parsed)
        return out

    def write(self, items: list[tuple[str, AnyMessage]]) -> None:
        """One transaction for everything drained. A busy store is waited
        for; if it still refuses, each message is written alone, so one bad
        message loses only itself (logged and counted), never its neighbours."""
        items = [(t, m) for t, m in items if not isinstance(m, Heartbeat)]
        if not items:
            return
        for _, msg in items:
            if not self.seqs.check(msg.origin, msg.seq):
                self.rt.log.warning("gap in %s before seq %d", msg.origin, msg.seq)
        for attempt in range(3):
            try:
                with self.engine.begin() as conn:
                    for topic, msg in items:
                        self._write_one(conn, topic, msg)
                return
            except OperationalError as exc:  # e.g. locked: worth waiting for
                self.rt.log.warning("store busy (%s); retrying", exc.orig)
                time.sleep(0.5 * (attempt + 1))
            except Exception:
                self.rt.log.exception("batch of %d messages refused", len(items))
                break
        for topic, msg in items:
            try:
                with self.engine.begin() as conn:
                    self._write_one(conn, topic, msg)
            except Exception as exc:
                self.failed[type(msg).__name__] += 1
                self.rt.log.error("could not store %s seq %d from %s: %s", topic, msg.seq,
                                  msg.origin, exc)

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

    def apply_retention(self) -> None:
        cutoff = time.time() - self.rt.config.fix_retention_days * 86400.0
        with self.engine.begin() as conn:
            removed = repo.expire_fixes(conn, cutoff)
        if removed:
            self.rt.log.info("retention: removed %d fixes older than %.0f days",
                             removed, self.rt.config.fix_retention_days)


def main(argv: list[str] | None = None) -> int:
    rt = start("recorder", argv)
    Recorder(rt).run()
    return 0


if __name__ == "__main__":
    sys.exit(main())
