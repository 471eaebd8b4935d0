"""The recorder's tape keeper: it keeps the tape (``db.tape``), the bus
traffic a replay needs, raw and undecoded, with its receive time, for replay
and training: devices' fixes (by device id, so a consent's withdrawal can
purge them from the tape too) and what the system made of them (alerts,
camera states, zones, notices), but not the engine's position batches:
those are by slot, which only the engine can tie to a child, and a replay
recomputes them from the fixes anyway. A second SUB socket (besides the
recorder's own) takes those topics; it is drained a bounded amount per
loop turn, after the fixes, and the tape writes a block about once a
second, so it never holds back the store. A disk error on the tape is
logged and counted (``tape_errors``), never fatal, and costs only the
tape's frames. The recorder's hourly retention run also removes tape files
older than ``tape_keep_days`` (``purge_tape``).

A guardian's withdrawal deletes the child's fixes from the store at once
(``db.consent.withdraw``, §24); the keeper then takes them off the tape
too (``db.tape_redaction``), keeping the same case windows. It watches the
location-usage log for "withdrawal" records (numbered without gaps, in
commit order, only for a real withdrawal, not a consent replaced by a new
one), behind a cursor in the ``cursors`` table, so a restart neither
repeats nor misses one. A withdrawal waits ``REDACT_SETTLE_S`` (the
gateway stops passing the child's fixes within ``REGISTRY_REFRESH_S``, so
none reach the tape after its redaction), then a worker thread rewrites
the closed hours while the tape goes on recording (a city's tape is
hundreds of gigabytes: the recorder's loop must go on storing and sending
heartbeats), then the open hour with the tape writer closed and its socket
left to buffer. A failure is logged and counted
(``tape_redaction_failures``) and tried again later; the cursor moves only
once a redaction succeeded.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections import Counter
from collections.abc import Container
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import zmq
from sqlalchemy import Engine, func, or_, select
from sqlalchemy.orm import Session

from console.bus import socket
from console.security import Security
from console.services.runtime import Runtime
from db import consent, cursors, tape
from db.store import session_factory
from db.tables import Consent, UsageRecord
from db.tape_redaction import RedactionReport, redact
from models.retention import RetentionPolicy

TAPE_DRAIN = 200  # tape frames taken per loop turn, at most
# Frames the tape socket buffers while the loop is busy (a few minutes of a
# city's traffic); beyond, the tape loses frames rather than the recorder
# its memory (a replay sees the gap in the publishers' seq).
TAPE_HWM = 20_000
TAPE_LOG_EVERY_S = 60.0  # a failing disk is logged once a minute, with a count
TAPE_TOPICS = (b"fix.", b"alert.", b"cam.", b"zone.", b"roster.", b"notice.", b"gw.")
REDACT_POLL_S = 1.0  # the usage log is asked for new withdrawals this often
# A withdrawal is redacted this long after it was made (or first seen): by
# then the gateway refuses the child's devices (it reloads consent every
# REGISTRY_REFRESH_S), so no fix of theirs reaches the tape after it.
REDACT_SETTLE_S = 3.0
REDACT_RETRY_S = 30.0  # after a failed redaction
REDACT_CURSOR = "tape_redaction"  # in the cursors table: the usage-log number done
REDACT_EPOCH = "usage_log"


class TapeKeeper:
    """The tape's socket, writer, counters and redaction thread, driven by
    the recorder's loop: ``step`` every turn (after the store's), ``stats``
    into the heartbeat, ``close`` at the stop; no retention run while
    ``redacting`` (never both on the tape). Its socket joins the recorder's
    ``poller`` (a redaction takes it off while the open hour is rewritten)."""

    def __init__(self, rt: Runtime, ctx: zmq.Context[zmq.Socket[bytes]], security: Security,
                 engine: Engine, poller: zmq.Poller) -> None:
        self.rt = rt
        self.engine = engine  # the recorder's: the usage log and the redaction cursor
        # The tape takes every frame as it came: the bus admitted it, and
        # the replay decodes it (and rejects what is bad) when it plays.
        self.tape_sub = socket(ctx, zmq.SUB)
        self.tape_sub.setsockopt(zmq.RCVHWM, TAPE_HWM)
        security.client(self.tape_sub, "bus")
        for prefix in TAPE_TOPICS:
            self.tape_sub.setsockopt(zmq.SUBSCRIBE, prefix)
        self.tape_sub.connect(rt.config.bus_sub)
        self.tape = tape.TapeWriter(tape.tape_dir(rt.config.data_dir))
        self.poller = poller
        poller.register(self.tape_sub, zmq.POLLIN)
        self.tape_errors = 0
        self.tape_malformed = 0  # frames that were not exactly topic and body
        self.tape_paused = False  # while a redaction rewrites the open hour
        self.redaction: Redaction | None = None  # the one under way
        self.redact_cursor: int | None = None  # usage-log number done (None: not read yet)
        self.redact_cursor_saved = True
        self.redact_at = 0.0  # monotonic time of the next look at the usage log
        self.redact_seen: dict[int, float] = {}  # withdrawal record -> wall time first seen
        self.tape_redactions = 0  # withdrawals taken off the tape
        self.tape_fixes_redacted = 0
        self.tape_redaction_failures = 0
        self._tape_unlogged = 0
        self._tape_logged_at = -math.inf

    def step(self, ready: Container[Any]) -> None:
        """One turn of the recorder's loop, after the store's: the frames
        waiting (when the poll found the socket in ``ready``), a block once
        due, a step of the redaction."""
        if self.tape_sub in ready:
            self.record_tape()
        self.flush_tape()
        self.redact_tape()

    @property
    def redacting(self) -> bool:
        return self.redaction is not None

    def stats(self) -> dict[str, float]:
        """The tape's part of the recorder's heartbeat."""
        return {"tape_records": self.tape.records, "tape_bytes": self.tape.bytes,
                "tape_errors": self.tape_errors, "tape_malformed": self.tape_malformed,
                "tape_redactions": self.tape_redactions,
                "tape_fixes_redacted": self.tape_fixes_redacted,
                "tape_redaction_failures": self.tape_redaction_failures}

    def close(self) -> None:
        """At the stop: the redaction interrupted, what was heard written."""
        self.stop_redaction()
        self.record_tape()
        self.close_tape()
        self.tape_sub.close(0)

    # ----------------------------------------------------------------- tape
    def record_tape(self) -> int:
        """Up to ``TAPE_DRAIN`` frames onto the tape, with their receive
        time (only ``TAPE_TOPICS`` come); malformed frames are counted.
        How many frames it took."""
        for taken in range(TAPE_DRAIN):
            try:
                frames = self.tape_sub.recv_multipart(zmq.NOBLOCK)
            except zmq.Again:
                return taken
            if len(frames) != 2:
                self.tape_malformed += 1
                continue
            try:
                self.tape.append(time.time(), frames[0], frames[1])
            except (OSError, ValueError) as exc:  # a full disk; a clock gone wrong
                self._tape_failed(exc)
        return TAPE_DRAIN

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

    # ------------------------------------------------------------ redaction
    def redact_tape(self) -> None:
        """One step of taking withdrawn children's fixes off the tape (see
        the module notes): look for new withdrawals every ``REDACT_POLL_S``,
        start a redaction, or move the one under way to its next phase.
        Never raises: a failure is counted and tried again later."""
        run = self.redaction
        if run is not None:
            if not run.job.is_alive():
                self._redaction_done(run)
            return
        now = time.monotonic()
        if now < self.redact_at:
            return
        self.redact_at = now + REDACT_POLL_S
        try:
            run = self._plan_redaction()
            if run is None:
                return
            run.frontier = self.tape.frontier()  # the writer stays at or after it
        except Exception as exc:  # the store refused; the tape could not be read
            self._redaction_failed(exc)
            return
        self.redaction = run
        if not run.groups:  # no device to take off (a child that never had one)
            run.phase = 2
            self._redaction_done(run)
            return
        # the hours before the writer's, while it goes on recording
        run.start(self.tape.dir, -math.inf, run.frontier)

    def _plan_redaction(self) -> Redaction | None:
        """The withdrawals to redact now (those settled, after the cursor),
        or None; moves the cursor past usage records that are none."""
        with session_factory(self.engine)() as s:
            if self.redact_cursor is None:
                epoch, seq = cursors.load(s, REDACT_CURSOR)
                self.redact_cursor = seq if epoch == REDACT_EPOCH else 0
            if not self.redact_cursor_saved:
                self._save_redact_cursor(s)
            head, found = new_withdrawals(s, self.redact_cursor)
            if head <= self.redact_cursor:
                return None
            wall = time.time()
            ready: list[Withdrawal] = []
            for w in found:
                seen = self.redact_seen.setdefault(w.seq, wall)
                if wall < min(w.at, seen) + REDACT_SETTLE_S:
                    head = w.seq - 1  # the gateway may still pass its fixes: later
                    break
                ready.append(w)
            if not ready:
                if head > self.redact_cursor:
                    self.redact_cursor = head
                    self._save_redact_cursor(s)
                return None
            return Redaction(ready, head, redaction_groups(s, ready, self.rt.log))

    def _save_redact_cursor(self, s: Session) -> None:
        assert self.redact_cursor is not None
        cursors.save(s, REDACT_CURSOR, REDACT_EPOCH, self.redact_cursor)
        s.commit()
        self.redact_cursor_saved = True

    def _redaction_done(self, run: Redaction) -> None:
        """The worker finished a phase: start the next, or account for all."""
        if run.error is not None:
            self.redaction = None
            self._resume_tape()
            self._redaction_failed(run.error)
            return
        if run.phase == 1:
            # the open hour (and any after it): nothing may append meanwhile,
            # so what was heard goes to disk and the socket buffers the rest
            for _ in range(TAPE_HWM // TAPE_DRAIN):
                if self.record_tape() < TAPE_DRAIN:
                    break
            self.close_tape()
            self._pause_tape()
            run.start(self.tape.dir, run.frontier, math.inf)
            return
        self._resume_tape()
        self.redaction = None
        for w in run.withdrawals:
            self.redact_seen.pop(w.seq, None)
        self.tape_redactions += len(run.withdrawals)
        self.tape_fixes_redacted += run.report.fixes_removed
        children = ", ".join(f"{w.child} (usage record {w.seq})" for w in run.withdrawals[:10])
        if len(run.withdrawals) > 10:
            children += f" and {len(run.withdrawals) - 10} more"
        self.rt.log.info("tape redacted for the withdrawal of %s in %.1f s: %s", children,
                         time.monotonic() - run.started, run.report.summary())
        self.redact_cursor = run.head
        self.redact_cursor_saved = False
        self.redact_at = 0.0  # the cursor goes to the store at the next look
        try:
            with session_factory(self.engine)() as s:
                self._save_redact_cursor(s)
        except Exception as exc:  # done is done: the next look saves it
            self.rt.log.warning("tape redaction cursor not saved yet (%s)", exc)

    def _redaction_failed(self, exc: BaseException) -> None:
        self.tape_redaction_failures += 1
        self.redact_at = time.monotonic() + REDACT_RETRY_S
        self.rt.log.error("tape redaction failed (%s: %s); the withdrawn children's fixes "
                          "stay on the tape until it is tried again in %.0f s",
                          type(exc).__name__, exc, REDACT_RETRY_S)

    def _pause_tape(self) -> None:
        if not self.tape_paused:
            self.poller.unregister(self.tape_sub)
            self.tape_paused = True

    def _resume_tape(self) -> None:
        if self.tape_paused:
            self.poller.register(self.tape_sub, zmq.POLLIN)
            self.tape_paused = False

    def stop_redaction(self) -> None:
        """At the stop: interrupt the redaction under way (the segment being
        rewritten stays as it was; the next start does it all again)."""
        run, self.redaction = self.redaction, None
        if run is not None:
            run.stop.set()
            run.job.join()
            self._resume_tape()


@dataclass(frozen=True, slots=True)
class Withdrawal:
    """A withdrawal, by its record in the location-usage log."""

    seq: int
    child: str  # token
    at: float  # when it was made: the end of its case windows


@dataclass(frozen=True, slots=True)
class RedactionGroup:
    """Devices redacted in one pass over the tape: same windows, same start
    and end."""

    device_ids: frozenset[str]
    windows: tuple[tuple[float, float], ...]
    # receive time a new consent was given at, or the device went to
    # another child (inf: neither)
    before: float
    since: float = -math.inf  # receive time the device came from another child (-inf: it did not)


@dataclass(eq=False)
class Redaction:
    """One redaction of the tape for some withdrawals, run by a worker
    thread in two phases: the closed hours, then the open one."""

    withdrawals: list[Withdrawal]
    head: int  # the usage-log number the cursor moves to once it is done
    groups: list[RedactionGroup]
    frontier: float = -math.inf  # the writer's first hour when it began
    phase: int = 0
    report: RedactionReport = field(default_factory=RedactionReport)
    error: BaseException | None = None
    started: float = field(default_factory=time.monotonic)
    stop: threading.Event = field(default_factory=threading.Event)
    job: threading.Thread = field(default_factory=threading.Thread)

    def start(self, directory: Path, since: float, before: float) -> None:
        """Run the next phase over records received in [since, before)."""
        self.phase += 1
        self.job = threading.Thread(target=self._work, args=(directory, since, before),
                                    name=f"tape-redaction-{self.phase}", daemon=True)
        self.job.start()

    def _work(self, directory: Path, since: float, before: float) -> None:
        try:
            for g in self.groups:
                self.report.add(redact(directory, g.device_ids, g.windows, min(g.before, before),
                                       since=max(since, g.since), stop=self.stop.is_set))
        except Exception as exc:  # the loop reports it (RedactionInterrupted: at the stop)
            self.error = exc


def new_withdrawals(s: Session, after: int) -> tuple[int, list[Withdrawal]]:
    """(the usage log's last number, the withdrawals recorded after
    ``after``): a look at its primary key, then at the records since."""
    head = int(s.scalar(select(func.max(UsageRecord.seq))) or 0)
    if head <= after:
        return head, []
    rows = s.execute(select(UsageRecord.seq, UsageRecord.subject, UsageRecord.at)
                     .where(UsageRecord.seq > after, UsageRecord.seq <= head,
                            UsageRecord.action == consent.WITHDRAWAL)
                     .order_by(UsageRecord.seq)).all()
    return head, [Withdrawal(int(seq), str(child), float(at)) for seq, child, at in rows]


def redaction_groups(s: Session, withdrawals: list[Withdrawal],
                     log: logging.Logger) -> list[RedactionGroup]:
    """What to take off the tape for these withdrawals: each child's devices
    and case windows as ``db.consent.withdraw`` took them from the store
    (``withdrawal_scope``), up to a consent given since, if any (what came
    after it was collected with consent), and within the spans the child
    held each device (``db.holdings``). Children with the same windows,
    start and end share a pass: most have no open case, no new consent,
    and devices nobody else held."""
    groups: dict[tuple[tuple[tuple[float, float], ...], float, float], set[str]] = {}
    for w in withdrawals:
        try:
            scope = consent.withdrawal_scope(s, w.child, w.at)
        except ValueError as exc:  # a child record gone: nothing ties devices to it
            log.warning("tape redaction: withdrawal %d: %s", w.seq, exc)
            continue
        regiven = s.scalar(select(func.min(Consent.given_at)).where(
            Consent.child_id == scope.child_id, Consent.given_at >= w.at,
            or_(Consent.withdrawn_at.is_(None), Consent.withdrawn_at != w.at)))  # not its own
        before = math.inf if regiven is None else float(regiven)
        for device_id, spans in scope.spans.items():
            for lo, hi in spans:
                groups.setdefault((scope.windows, min(before, hi), lo), set()).add(device_id)
    return [RedactionGroup(frozenset(ids), windows, before, since)
            for (windows, before, since), ids in groups.items() if ids]


def purge_tape(rt: Runtime, policy: RetentionPolicy, failed: Counter[str]) -> None:
    """Remove the tape's hourly files older than ``policy.tape_s``; a
    failure is logged and counted with the retention's, never raised.
    (A function, not a method: the retention run needs only the folder.)"""
    try:
        freed = tape.purge(tape.tape_dir(rt.config.data_dir), time.time() - policy.tape_s)
    except Exception:
        failed["retention"] += 1
        rt.log.exception("tape retention failed; trying again later")
        return
    if freed:
        rt.log.info("retention removed %.1f MB of bus tape", freed / 1e6)
