"""The gateway's journal: what devices were told is received, on disk first.

Why: a device is acknowledged only once what it sent survives the death of
any one process (DESIGN.md, Delivery). PUB/SUB keeps nothing, and the
store can be locked or full for minutes, so the gateway writes each group
of accepted fixes to a journal of its own (an SQLite file in WAL mode under
the data dir: one small transaction per group commit, measured by ``bench
ingest``) before it answers the devices, and only then publishes them.
Every batch carries the journal's ``epoch`` (a random id, new with each
journal file) and its ``journal_seq``.

Consumers (engine, recorder) keep a cursor in the journal. A live batch
that follows on is applied at once; one they have already applied is a
duplicate and dropped; after a gap, or at start-up, or when the journal
holds more than they have heard (the bus was down, a gateway died between
its commit and its publish), they read the missing batches from the file
itself, in order (zguide's Clone pattern, with the journal as the state).
Reading the file needs no live gateway: a consumer recovers while the
gateway restarts. The cost is that the journal's host runs the consumers
(one machine, as every installation is today); several hosts would serve
the same reads over a request socket.
"""

from __future__ import annotations

import contextlib
import logging
import sqlite3
import time
import uuid
from pathlib import Path

import msgspec

from models.messages import BadMessage, FixBatch, decode, encode

log = logging.getLogger(__name__)

KEEP_S = 3600.0  # how long batches stay in the journal (a consumer down longer loses them)
READ_CHUNK = 200  # batches a consumer reads per turn while catching up

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS batches (seq INTEGER PRIMARY KEY, ts REAL NOT NULL,
                                    body BLOB NOT NULL);
"""


def journal_path(data_dir: Path) -> Path:
    return Path(data_dir) / "journal" / "gateway.sqlite3"


def _connect(path: Path, timeout_s: float) -> sqlite3.Connection:
    conn = sqlite3.connect(path, timeout=timeout_s, isolation_level=None,
                           check_same_thread=False)
    conn.execute("PRAGMA journal_mode=WAL")
    # NORMAL: a commit is in the OS's page cache before it returns, so it
    # survives the death of any process; only a power cut can take the
    # last commits (the fsync happens at each checkpoint).
    conn.execute("PRAGMA synchronous=NORMAL")
    return conn


class JournalError(RuntimeError):
    """The journal did not take a group (disk full, I/O error): not durable."""


class Journal:
    """The gateway's writing end."""

    def __init__(self, path: Path, keep_s: float = KEEP_S) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        self.path = path
        self.keep_s = keep_s
        self.conn = _connect(path, timeout_s=1.0)
        self.conn.executescript(_SCHEMA)
        row = self.conn.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
        if row is None:
            self.epoch = uuid.uuid4().hex[:16]
            self.conn.execute("INSERT INTO meta VALUES ('epoch', ?)", (self.epoch,))
        else:
            self.epoch = str(row[0])
        self.seq = int(self.conn.execute("SELECT coalesce(max(seq), 0) FROM batches")
                       .fetchone()[0])
        self.failures = 0
        self.last_error = ""

    def append(self, batches: list[FixBatch], now: float | None = None) -> list[FixBatch]:
        """Write ``batches`` in one transaction and return them numbered.

        Raises ``JournalError`` when the disk refuses; nothing of the group
        is then in the journal and the sequence does not move."""
        now = time.time() if now is None else now
        numbered = [msgspec.structs.replace(b, journal=self.epoch, journal_seq=self.seq + i + 1)
                    for i, b in enumerate(batches)]
        try:
            self.conn.execute("BEGIN IMMEDIATE")
            self.conn.executemany("INSERT INTO batches VALUES (?, ?, ?)",
                                  [(b.journal_seq, now, encode(b)) for b in numbered])
            self.conn.execute("COMMIT")
        except sqlite3.Error as exc:
            self.failures += 1
            self.last_error = str(exc)
            if self.conn.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    self.conn.execute("ROLLBACK")
            raise JournalError(str(exc)) from exc
        self.seq += len(numbered)
        self.last_error = ""
        return numbered

    def trim(self, now: float | None = None) -> int:
        """Forget batches older than ``keep_s``; returns how many went. The
        newest batch always stays: a reopened journal numbers on from it (an
        emptied one would start again at 1, and consumers would take the new
        batches for repeats)."""
        cutoff = (time.time() if now is None else now) - self.keep_s
        try:
            # seq and ts grow together: walk from the oldest to the first batch
            # to keep (only the rows going are read), then cut by rowid range.
            row = self.conn.execute("SELECT seq FROM batches WHERE ts >= ? ORDER BY seq LIMIT 1",
                                    (cutoff,)).fetchone()
            keep_from = min(int(row[0]) if row else self.seq, self.seq)
            cur = self.conn.execute("DELETE FROM batches WHERE seq < ?", (keep_from,))
        except sqlite3.Error as exc:
            log.warning("journal trim failed: %s", exc)
            return 0
        return int(cur.rowcount)

    def close(self) -> None:
        self.conn.close()


class JournalReader:
    """A consumer's read-only view of the journal file (it may not exist yet)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._conn: sqlite3.Connection | None = None
        self._inode = 0

    def _db(self) -> sqlite3.Connection | None:
        """The open journal; reopened when the file was replaced (a new
        journal: a new epoch a running consumer must see)."""
        try:
            inode = self.path.stat().st_ino
        except OSError:
            inode = 0
        if self._conn is not None and inode != self._inode:
            self.close()
        self._inode = inode
        if self._conn is None and inode:
            try:
                self._conn = _connect(self.path, timeout_s=0.2)
            except sqlite3.Error as exc:
                log.warning("cannot open the journal %s: %s", self.path, exc)
        return self._conn

    def epoch(self) -> str:
        db = self._db()
        if db is None:
            return ""
        try:
            row = db.execute("SELECT value FROM meta WHERE key = 'epoch'").fetchone()
        except sqlite3.Error:
            return ""
        return str(row[0]) if row else ""

    def bounds(self) -> tuple[int, int]:
        """(first, last) seq held; (0, 0) when empty or unreadable."""
        db = self._db()
        if db is None:
            return 0, 0
        try:
            row = db.execute("SELECT coalesce(min(seq), 0), coalesce(max(seq), 0) "
                             "FROM batches").fetchone()
        except sqlite3.Error:
            return 0, 0
        return int(row[0]), int(row[1])

    def read(self, after: int, limit: int = READ_CHUNK) -> list[FixBatch]:
        db = self._db()
        if db is None:
            return []
        try:
            rows = db.execute("SELECT seq, body FROM batches WHERE seq > ? ORDER BY seq LIMIT ?",
                              (after, limit)).fetchall()
        except sqlite3.Error as exc:
            log.warning("journal read failed: %s", exc)
            return []
        out: list[FixBatch] = []
        for seq, body in rows:
            try:
                msg = decode(body)
            except BadMessage as exc:  # a journal we wrote ourselves; say so, go on
                log.error("journal batch %d does not decode: %s", seq, exc)
                continue
            if isinstance(msg, FixBatch):
                out.append(msg)
        return out

    def close(self) -> None:
        if self._conn is not None:
            self._conn.close()
            self._conn = None


class Follower:
    """A consumer's place in the journal: which live batches to apply now,
    which to drop as repeats, and what to read back after a gap.

    ``seq`` is the last batch applied in ``epoch``. The owner persists both
    (``db.cursors``) when what it applied is safe, and starts from them.
    """

    def __init__(self, reader: JournalReader, epoch: str = "", seq: int = 0) -> None:
        self.reader = reader
        self.epoch = epoch
        self.seq = seq
        self.behind = True  # read the journal before trusting live batches
        self.duplicates = 0
        self.gaps = 0  # gaps seen live (each recovered from the journal)
        self.recovered = 0  # batches read back from the journal
        self.lost = 0  # batches the journal no longer held when they were needed
        self._last_polled = 0  # the journal's newest batch at the previous poll

    def admit(self, batch: FixBatch) -> bool:
        """Apply this live batch now? A batch the journal did not take
        (``journal_seq`` 0: the disk refused) is applied as it comes."""
        if not batch.journal_seq:
            return True
        if self.behind or batch.journal != self.epoch:
            self.behind = True
            return False
        if batch.journal_seq <= self.seq:
            self.duplicates += 1
            return False
        if batch.journal_seq == self.seq + 1:
            self.seq = batch.journal_seq
            return True
        self.gaps += 1
        self.behind = True
        log.warning("journal gap: batch %d after %d; reading back", batch.journal_seq, self.seq)
        return False

    def poll(self) -> None:
        """Look at the journal itself (once a second): a new journal, or a
        batch it already held at the previous poll that the bus has still
        not brought, puts the follower behind. (A batch journaled a moment
        ago is usually on its way: the gateway publishes right after.)"""
        epoch = self.reader.epoch()
        if not epoch:
            return
        if epoch != self.epoch:
            self.behind = True
            return
        if self._last_polled > self.seq:
            self.behind = True
        self._last_polled = self.reader.bounds()[1]

    def catch_up(self, limit: int = READ_CHUNK) -> list[FixBatch]:
        """The next batches to apply from the journal, in order; clears
        ``behind`` once nothing is left."""
        if not self.behind:
            return []
        epoch = self.reader.epoch()
        if not epoch:
            self.behind = False  # no journal yet: nothing was ever acknowledged
            return []
        if epoch != self.epoch:
            log.warning("journal %s replaces %s: reading it from the start", epoch,
                        self.epoch or "(none)")
            self.epoch, self.seq = epoch, 0
        first, _ = self.reader.bounds()
        if first > self.seq + 1 and self.seq:
            self.lost += first - self.seq - 1
            log.error("journal no longer holds batches %d..%d: lost to this consumer",
                      self.seq + 1, first - 1)
        batches = self.reader.read(self.seq, limit)
        if batches:
            self.seq = batches[-1].journal_seq
            self.recovered += len(batches)
        if len(batches) < limit:
            self.behind = False
        return batches
