"""Where every protocol's decoded reports enter the system.

Protocol servers (OsmAnd HTTP, watch TCP, tag readers, carrier feeds)
decode their wire format into ``Report``s and hand each one here; this is
the one place that validates, checks the registry, drops exact duplicates,
counts every outcome by protocol and reason, and batches what it accepts
into ``fix.batch`` messages. A decoder never decides what is accepted.

Nothing is acknowledged before it is durable: protocols ask ``durable()``
for a future and answer their devices when it resolves. Whatever waits is
written to the gateway's journal in one group commit (a few milliseconds
after the first report) and only then published; a journal that refuses
resolves the futures False, and the devices are told to send again.

An alarm (SOS, fall, watch removed) never waits for that: it takes the fast
lane (``_send_alarm``), committed at once and published first, in a batch of
its own a few rows long: not after the commit window, not on the 50 ms tick,
and never inside (or behind) a 5,000-fix routine batch the engine must apply
before it reaches the SOS. That batch also carries the reports its own
device sent before it that were still queued, so a device's reports reach
the journal in the order it sent them.

An alarm is also refused its acknowledgement while the engine is down:
the journal keeps it, but a child whose SOS nobody can raise must see "not
received" and call for help another way. Either way its resend is let
through (not treated as a duplicate), and the engine folds the repeat.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass

from console.gateway.batcher import Batcher, build_batch
from console.gateway.dedup import RecentFixes
from console.journal import Journal, JournalError
from models.fixes import Rejected, Report, validate
from models.messages import FixBatch

log = logging.getLogger(__name__)

UNREGISTERED = "unregistered_device"
NO_CONSENT = "no_consent"  # registered, but no consent in force for the child
DUPLICATE = "duplicate"
ENGINE_DOWN = "engine_down"  # an alarm journaled but not acknowledged: the engine is down
COMMIT_WINDOW_S = 0.005  # reports wait at most this long to share a journal commit
MAX_UNREGISTERED_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class Verdict:
    accepted: bool
    reason: str = ""  # a counter key when refused, or ENGINE_DOWN when accepted unacknowledged

    @property
    def unregistered(self) -> bool:
        return self.reason == UNREGISTERED

    @property
    def acknowledge(self) -> bool:
        """May the device be told its report is received (once durable)?"""
        return self.accepted and self.reason != ENGINE_DOWN


ACCEPTED = Verdict(True)
NOT_ACKNOWLEDGED = Verdict(True, ENGINE_DOWN)


class Intake:
    def __init__(self, publish: Callable[[FixBatch], object],
                 journal: Journal | None = None) -> None:
        self.publish = publish
        self.journal = journal
        self.engine_up = True  # the gateway sets it from the engine's heartbeat
        self.journal_failures = 0  # group commits the journal refused
        self.alarms_unacknowledged = 0  # alarms journaled while the engine was down
        self._group: asyncio.Future[bool] | None = None  # what the next commit resolves
        self._commit_at: asyncio.TimerHandle | None = None
        self._refused_unanswered = False  # a refused commit no waiter has heard of
        self.registered: set[str] = set()
        self.untracked: frozenset[str] = frozenset()  # registered, refused: NO_CONSENT
        self.accepted: Counter[str] = Counter()  # protocol
        self.rejected: Counter[str] = Counter()  # "protocol:reason"
        self.unregistered_seen: dict[str, tuple[str, float, float, int]] = {}
        self.unregistered_dirty: set[str] = set()
        self.recent = RecentFixes()  # exact duplicates, per device, bounded
        self._batchers: dict[str, Batcher] = {}

    def reject(self, protocol: str, reason: str, detail: str = "") -> Verdict:
        """Count and log a refusal (decoders call this for frames that never
        became a report)."""
        self.rejected[f"{protocol}:{reason}"] += 1
        log.warning("rejected %s input (%s): %s", protocol, reason, detail[:200])
        return Verdict(False, reason)

    def check_device(self, device_id: str, protocol: str, now: float | None = None) -> Verdict:
        """Is the id registered? An unknown one is counted and noted for the
        admin. Protocols call this for frames that carry no report (a watch's
        ``LK`` heartbeat), so a device that only ever says hello still shows
        up in "unregistered devices seen"."""
        if device_id in self.registered:
            if device_id in self.untracked:
                return self.reject(protocol, NO_CONSENT, device_id)
            return ACCEPTED
        self._note_unregistered(device_id, protocol, time.time() if now is None else now)
        return self.reject(protocol, UNREGISTERED, device_id)

    def note_if_unregistered(self, device_id: str, protocol: str,
                             now: float | None = None) -> None:
        """Note an unknown id from input already refused (and counted) for
        another reason, e.g. a watch frame that did not decode."""
        if device_id not in self.registered:
            self._note_unregistered(device_id, protocol, time.time() if now is None else now)

    def accept(self, report: Report, protocol: str, now: float | None = None,
               reader: str = "") -> Verdict:
        """Validate, dedupe, count and batch one report; ``reader`` names the
        tag reader a tag read came through (it travels with the fix)."""
        now = time.time() if now is None else now
        if report.device_id not in self.registered or report.device_id in self.untracked:
            return self.check_device(report.device_id, protocol, now)
        try:
            validate(report, now)
        except Rejected as exc:
            return self.reject(protocol, exc.reason, f"{report.device_id}: {exc.detail}")
        if self.recent.seen(report.device_id, report.t, report.lat, report.lon, report.sos):
            return self.reject(protocol, DUPLICATE, report.device_id)
        batcher = self._batchers.get(protocol)
        if batcher is None:
            batcher = self._batchers[protocol] = Batcher(protocol)
        self.accepted[protocol] += 1
        alarm = report.urgent
        if alarm:
            self._send_alarm(batcher, report, reader)
        else:
            batcher.add(report, reader)
            if len(batcher) >= batcher.max_fixes:
                self.flush()
        if alarm and not self.engine_up:
            self.alarms_unacknowledged += 1
            self.recent.forget({report.device_id})  # its resend must get through
            log.warning("%s alarm from %s journaled but not acknowledged: engine down",
                        protocol, report.device_id)
            return NOT_ACKNOWLEDGED
        return ACCEPTED

    def _note_unregistered(self, device_id: str, protocol: str, now: float) -> None:
        """Remember refused ids for the admin, but only so many: a client
        inventing ids must not grow the gateway's memory."""
        seen = self.unregistered_seen.get(device_id)
        if seen is None and len(self.unregistered_seen) >= MAX_UNREGISTERED_KEPT:
            self.rejected[f"{protocol}:unregistered_not_kept"] += 1
            return
        _, first, _, n = seen or (protocol, now, now, 0)
        self.unregistered_seen[device_id] = (protocol, first, now, n + 1)
        self.unregistered_dirty.add(device_id)

    def take_unregistered(self) -> dict[str, tuple[str, float, float, int]]:
        """The refused ids seen since the last call, for the store."""
        dirty, self.unregistered_dirty = self.unregistered_dirty, set()
        return {d: self.unregistered_seen[d] for d in dirty}

    def _send_alarm(self, batcher: Batcher, report: Report, reader: str) -> None:
        """The fast lane: this alarm goes now, in a batch of its own (with its
        device's still-queued earlier reports ahead of it), first into the
        journal and first onto the bus.

        It is one group commit with whatever routine reports wait, so
        acknowledgements keep their one rule (a refused commit is told to
        everyone in it, ``flush``); the routine batches are numbered and
        published after the alarm's, never ahead of it. What they cost the
        alarm is building and writing them: the commit window's worth (about
        250 reports at 50,000/s, well under a millisecond), at worst a
        5,000-report batch filling from a reader feed (a few milliseconds)."""
        reports, readers = batcher.take_device(report.device_id)
        reports.append(report)
        readers.append(reader)
        self.flush(first=build_batch(batcher.protocol, reports, readers))

    def durable(self) -> asyncio.Future[bool]:
        """A future that resolves once everything accepted so far is in the
        journal (True) or the journal refused it (False). Call it in the same
        step as the ``accept`` calls it covers. Everyone waiting for the same
        commit shares one future (one object per group, not per request)."""
        if self._group is None:
            loop = asyncio.get_running_loop()
            self._group = loop.create_future()
            if self._commit_at is None:
                self._commit_at = loop.call_later(COMMIT_WINDOW_S, self.flush)
        return self._group

    def flush(self, first: FixBatch | None = None) -> bool:
        """Journal, then publish, whatever is waiting, and resolve the
        waiting futures; called by ``durable``'s timer, on a short tick, and
        by an alarm, whose batch is ``first`` (numbered and published first)."""
        if self._commit_at is not None:
            self._commit_at.cancel()
            self._commit_at = None
        batches = [b for b in (batcher.take() for batcher in self._batchers.values())
                   if b is not None]
        if first is not None:
            batches.insert(0, first)
        ok = True
        if batches and self.journal is not None:
            try:
                batches = self.journal.append(batches)
            except JournalError as exc:
                ok = False
                self.journal_failures += 1
                for b in batches:  # not durable: the resends must not look like duplicates
                    self.recent.forget(set(b.device_ids))
                log.error("journal refused %d batches (%s): devices are told to resend",
                          len(batches), exc)
        for batch in batches:  # published even unjournaled: an SOS is never held back
            self.publish(batch)
        # An alarm is committed inside ``accept``, before its protocol asks
        # ``durable()``: a refusal is also told to the next group of waiters
        # (some of them needlessly: a resend costs less than a false ack).
        refused_now = not ok
        group, self._group = self._group, None
        if group is not None and not group.done():
            group.set_result(not (refused_now or self._refused_unanswered))
        self._refused_unanswered = refused_now or (self._refused_unanswered and group is None)
        return ok

    def stats(self) -> dict[str, float]:
        out: dict[str, float] = {f"accepted.{k}": v for k, v in self.accepted.items()}
        out.update({f"rejected.{k}": v for k, v in self.rejected.items()})
        out["unregistered_devices"] = len(self.unregistered_seen)
        out["engine_up"] = 1.0 if self.engine_up else 0.0
        out["alarms_unacknowledged"] = self.alarms_unacknowledged
        out["journal_failures"] = self.journal_failures
        if self.journal is not None:
            out["journal_seq"] = self.journal.seq
            out["journal_ok"] = 0.0 if self.journal.last_error else 1.0
        return out
