"""The alert desk: every alert the engine holds, and every change to one.

Three things change an alert, each through ``models.alerts``:

- a device trigger (``trigger``): opens a new alert, or folds into the
  child's unresolved alert of the same kind — nothing is ever dropped, but
  the same alarm twice (a device's resend, a batch replayed from the
  journal after a restart: same device, kind and device time) counts once;
- an operator's command (``apply``): checked by ``transition``, written
  with its history line in one transaction, then published;
- the clock (``tick``): SLA breaches escalate, holds run out.

A store fault never holds back an alert. The desk numbers alerts itself
and tries the store without waiting for its lock (SQLite has one writer at
a time, and under load the recorder holds it most of the time; a wait
there froze the loop while other alarms queued behind it). While the lock
is busy the alert waits in ``pending`` and is tried again every few
milliseconds, between fix batches, while the loop goes on opening other
alarms. Once it has waited ``ANNOUNCE_WAIT_S`` it is published marked
unsaved; a refusal (disk full, schema) is retried once a second. When the
store takes it, the alert is published (again) as saved.
Changes the engine makes itself (folds, escalations, holds running out) are
published at once and wait in ``outbox`` the same way. An operator's
command is different: it is stored first and refused if the store will not
take it, so nobody is told a change happened that did not (the engine holds
its answer while the lock is busy, ``Engine._answer_parked``).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import msgspec
from sqlalchemy.orm import Session, sessionmaker

from db import alerts as db_alerts
from db import repositories as repo
from db.store import is_busy
from db.tables import Alert
from models.alerts import (
    WORKERS,
    Actor,
    HistoryEntry,
    Policy,
    Refused,
    Trigger,
    breaches,
    clear,
    escalate,
    fold,
    folds_into,
    hold_expired,
    transition,
)
from models.geo import place_name
from models.messages import (
    AlertCommand,
    AlertOpened,
    AlertUpdated,
    AlertView,
    AssignAlert,
    Message,
    ReopenAlert,
    encode,
    topic_of,
)
from models.tracking import Tracker

log = logging.getLogger(__name__)

STORE_RETRY_S = 1.0
BUSY_RETRY_S = 0.003  # the engine's own changes try a busy lock again this soon
# A new alert waits this long for a busy store before consoles are shown it
# unsaved: about one of the recorder's write groups, inside the SOS budget
# (DESIGN.md: frame in to console under 100 ms at p99).
ANNOUNCE_WAIT_S = 0.06
LOCKED_AFTER_S = 0.5  # a lock busy this long is reported: the store is locked


KEEP_TIMES = 256  # device times remembered per (device, kind) to recognise a repeat
VIEW_FOLD_S = 300.0  # the same cameras reopened by the same person within this: one line
MAX_VIEWED = 16  # cameras one view may name (the grid's most)


class StoreBusy(Exception):
    """Another writer holds SQLite's lock: a command that may not wait for it
    changed nothing and is tried again (``Engine._answer_parked``)."""


@dataclass
class PendingAlert:
    """A trigger whose alert the store has not taken yet, with any repeats
    and the messages already published about it (logged once it is stored)."""

    view: AlertView
    child_id: int
    first_at: float  # the device time of the trigger that opened it
    lines: list[HistoryEntry] = field(default_factory=list)
    sent: list[Message] = field(default_factory=list)
    since: float = field(default_factory=time.monotonic)  # when it began to wait


class AlertDesk:
    def __init__(self, sessions: sessionmaker[Session], policy: Policy, tracker: Tracker,
                 alerts: dict[int, AlertView], child_ids: list[int],
                 zone_names: dict[int, str], device_kinds: dict[str, str],
                 publish: Callable[[Message], object],
                 opened: Callable[[AlertView], None] = lambda _a: None,
                 clock: Callable[[], float] = time.time,
                 seen: dict[tuple[str, str], set[float]] | None = None,
                 last_id: int = 0,
                 stamp: Callable[[Message], Message] = lambda m: m,
                 unstamp: Callable[[Message], object] = lambda m: None,
                 try_sessions: sessionmaker[Session] | None = None) -> None:
        self.sessions = sessions
        # the same store, failing at once while its lock is busy (``db.store.no_wait_sessions``)
        self.try_sessions = try_sessions or sessions
        self.policy = policy
        self.tracker = tracker
        self.alerts = alerts  # unresolved, by id
        self.child_ids = child_ids
        self.zone_names = zone_names
        self.device_kinds = device_kinds
        # ``stamp`` numbers a message for the bus; ``publish`` sends a stamped
        # one. Every alert message is also written to the event log in the
        # transaction that stores its change, so the audit trail has each
        # one exactly once whoever was down.
        self.stamp = stamp
        self.unstamp = unstamp  # gives back a number never sent (the bus stays gap-free)
        self.publish = publish
        self.opened = opened  # called once an alert is stored and published
        self.clock = clock
        self.pending: list[PendingAlert] = []
        self.outbox: list[tuple[AlertView, HistoryEntry, Message]] = []
        self.outbox_since = 0.0  # monotonic: when the outbox's first change began to wait
        # (device, kind) -> device times already raised or folded
        self.seen = {k: set(v) for k, v in (seen or {}).items()}
        self.duplicates = 0
        self.last_id = last_id  # the engine is the only writer of alerts
        self.retry_at = 0.0  # monotonic: the store refused; not tried again before
        self.store_failures = 0
        self.store_error = ""  # the last refusal's text; "" once the store took a write
        self._views: dict[tuple[int, str], tuple[list[int], float]] = {}  # last camera line

    # ----------------------------------------------------------- triggers
    def trigger(self, t: Trigger) -> None:
        times = self.seen.setdefault((t.device_id, t.kind), set())
        if t.at in times:
            self.duplicates += 1
            log.info("%s from %s at %.3f already raised: a repeat, not counted", t.kind,
                     t.device_id, t.at)
            return
        times.add(t.at)
        if len(times) > KEEP_TIMES:
            times.difference_update(sorted(times)[:KEEP_TIMES // 2])
        current = next((a for a in self.alerts.values() if a.saved and folds_into(a, t)), None)
        if current is not None:
            new, line = fold(current, t)
            self.alerts[new.id] = new
            self._write_later(new, line)
            return
        waiting = next((p for p in self.pending if folds_into(p.view, t)), None)
        if waiting is not None:
            waiting.view, line = fold(waiting.view, t)
            waiting.lines.append(line)
            if waiting.view.id in self.alerts:  # consoles were shown it unsaved
                self.alerts[waiting.view.id] = waiting.view
                waiting.sent.append(self._send(AlertUpdated(
                    alert=waiting.view, action=line.action, actor=line.actor)))
            return  # (not shown yet: it opens with the repeat folded in)
        self.pending.append(self._new(t))
        self.flush()

    def _new(self, t: Trigger) -> PendingAlert:
        tr = self.tracker
        known = math.isfinite(t.lat) and math.isfinite(t.lon)
        reader, read_at = tr.breadcrumb(t.slot) or ("", 0.0)
        now = self.clock()
        priority = self.policy.priority_of(t.kind)
        ack_due, close_due = self.policy.deadlines(priority, now)
        battery = t.battery if t.battery >= 0 else int(tr.battery[t.slot])
        self.last_id += 1
        view = AlertView(
            id=self.last_id, saved=False, kind=t.kind, priority=priority, state="new",
            child_token=tr.tokens[t.slot], child_slot=t.slot, device_id=t.device_id,
            lat=t.lat if known else math.nan, lon=t.lon if known else math.nan,
            place=place_name(t.lat, t.lon) if known else "위치 미상", opened_at=now,
            position_is_last_known=t.position_is_last_known,
            zone=t.zone or self.zone_names.get(int(tr.home[t.slot]), ""),
            last_reader=reader, last_reader_at=read_at,
            position_from_reader=known and tr.located_by_reader(t.slot, t.lat, t.lon),
            last_trigger_at=t.at, updated_at=now, last_actor="device",
            ack_due=ack_due, close_due=close_due, battery=battery,
            battery_trend=tr.battery_trend(t.slot) if t.kind == "low_battery" else 0.0,
            device_kind=self.device_kinds.get(t.device_id, ""),
        )
        return PendingAlert(view, self.child_ids[t.slot], t.at,
                            [HistoryEntry("open", "engine", now, detail=t.why or t.kind,
                                         lat=t.lat if known else None,
                                         lon=t.lon if known else None)])

    # -------------------------------------------------------------- store
    def flush(self) -> None:
        """Store what waits (new alerts first, in order); stop at the first
        refusal. A busy lock is tried again ``BUSY_RETRY_S`` later, a
        refusal a second later; an alert still waiting ``ANNOUNCE_WAIT_S``
        after it opened is shown unsaved meanwhile."""
        now = time.monotonic()
        if now < self.retry_at:
            return
        while self.pending:
            p = self.pending[0]
            if now - p.since >= ANNOUNCE_WAIT_S:
                self._announce_waiting()
            view = msgspec.structs.replace(p.view, saved=True)
            announced = view.id in self.alerts
            msg = self.stamp(AlertUpdated(alert=view, action="saved", actor="engine")
                             if announced else AlertOpened(alert=view))
            stored = self._store(f"the {view.kind} alert {view.id}", lambda s, p=p, v=view: (
                db_alerts.insert(s, v, p.child_id, p.lines[0], p.first_at),
                [db_alerts.append(s, v.id, line) for line in p.lines[1:]]),
                [*p.sent, msg], waiting_since=p.since)
            if not stored:
                self.unstamp(msg)
                if stored is not None:  # refused, not busy: consoles see it now
                    self._announce_waiting()
                return
            self.pending.pop(0)
            self.alerts[view.id] = view
            self.publish(msg)
            if announced:  # consoles showed it unsaved
                log.info("alert %d saved at last", view.id)
            else:
                self._opened(view)
        while self.outbox:
            view, line, sent = self.outbox[0]
            if not self._store(f"{line.action} of alert {view.id}",
                               lambda s, v=view, ln=line: db_alerts.save(s, v, ln), [sent],
                               waiting_since=self.outbox_since):
                return
            self.outbox.pop(0)
            self.outbox_since = now

    def waiting(self) -> bool:
        """Something waits for the store and is due another try now."""
        return bool(self.pending or self.outbox) and time.monotonic() >= self.retry_at

    def _announce_waiting(self) -> None:
        """Show consoles every alert still waiting for the store, unsaved."""
        for p in self.pending:
            if p.view.id not in self.alerts:
                self.alerts[p.view.id] = p.view
                p.sent.append(self._announce(p.view))

    def _store(self, what: str, write: Callable[[Session], object],
               events: list[Message], waiting_since: float | None = None) -> bool | None:
        """Write a change and its bus messages (event log) in one transaction.

        An operator's change (``waiting_since`` None) waits the store's busy
        timeout for the lock. The engine's own changes never wait: None
        means another writer holds the lock and the change has waited since
        ``waiting_since``; past ``LOCKED_AFTER_S`` the store is reported
        locked (heartbeat, health strip), once per spell."""
        try:
            with (self.sessions if waiting_since is None else self.try_sessions)() as s:
                write(s)
                repo.append_events(s.connection(), [
                    (topic_of(m).decode(), m.origin, m.seq, m.ts, encode(m)) for m in events])
                s.commit()
        except Exception as exc:
            now = time.monotonic()
            error = str(exc).splitlines()[0][:200]
            if waiting_since is not None and is_busy(exc):
                self.retry_at = now + BUSY_RETRY_S
                if now - waiting_since >= LOCKED_AFTER_S and not self.store_error:
                    self.store_error = error
                    self.store_failures += 1
                    log.error("the store has been locked for %.1f s; %s waits and is "
                              "retried", now - waiting_since, what)
                return None
            self.store_error = error
            self.store_failures += 1
            self.retry_at = now + STORE_RETRY_S
            log.error("the store did not take %s (%s); kept, retried in %.0f s", what,
                      self.store_error, STORE_RETRY_S)
            return False
        self.store_error = ""
        return True

    def _send(self, msg: Message) -> Message:
        stamped = self.stamp(msg)
        self.publish(stamped)
        return stamped

    def _announce(self, view: AlertView) -> Message:
        """Publish an alert not yet stored."""
        msg = self._send(AlertOpened(alert=view))
        self._opened(view)
        return msg

    def _opened(self, view: AlertView) -> None:
        log.info("alert %d opened%s: %s %s at %s", view.id, "" if view.saved else " (unsaved)",
                 view.kind, view.child_token, view.place)
        self.opened(view)

    def _write_later(self, view: AlertView, line: HistoryEntry) -> None:
        """A change the engine made: on the bus now, in the store when it can."""
        sent = self._send(AlertUpdated(alert=view, action=line.action, actor=line.actor))
        if not self.outbox:
            self.outbox_since = time.monotonic()
        self.outbox.append((view, line, sent))
        self.flush()

    # ----------------------------------------------------------- commands
    def find(self, alert_id: int) -> AlertView:
        """The live alert, or a resolved one from the store (to reopen or annotate)."""
        if alert_id in self.alerts:
            return self.alerts[alert_id]
        if not 0 < alert_id < 2**31:
            raise Refused("unknown", f"no alert {alert_id}")
        with self.sessions() as s:
            row = s.get(Alert, alert_id)
            if row is None:
                raise Refused("unknown", f"no alert {alert_id}")
            slot = self._slot_of(row.child_id)
            return db_alerts.view_of(row, slot, self.tracker.tokens[slot] if slot >= 0 else "?",
                                     self.device_kinds.get(row.device_id, ""))

    def _slot_of(self, child_id: int) -> int:
        try:
            return self.child_ids.index(child_id)
        except ValueError:
            return -1

    def apply(self, cmd: AlertCommand, actor: Actor, assignable: Callable[[], frozenset[str]],
              waiting_since: float | None = None) -> AlertView:
        """Check, store, publish; raises ``Refused`` and changes nothing when not allowed.
        With ``waiting_since`` (when the command came) the store's lock is not
        waited for: ``StoreBusy``, nothing changed, and the caller tries again."""
        alert = self.find(cmd.alert_id)
        if not alert.saved or any(v.id == alert.id for v, _, _ in self.outbox):
            raise Refused("busy", f"alert {alert.id} has a change the store has not taken "
                                  "yet; try again in a moment")
        if isinstance(cmd, ReopenAlert):
            newer = next((a for a in self.alerts.values() if a.id != alert.id
                          and a.child_slot == alert.child_slot and a.kind == alert.kind), None)
            if newer is not None:  # one open alert per child and kind: repeats fold into it
                raise Refused("illegal", f"alert {newer.id} for this child's {alert.kind} is "
                                         "open: work that one (a note can still go here)")
        users = assignable() if isinstance(cmd, AssignAlert) else frozenset()
        new, line = transition(alert, cmd, actor, self.clock(), self.policy, users)
        msg = self.stamp(AlertUpdated(alert=new, action=line.action, actor=actor.user))
        retry_at = self.retry_at  # an operator's refusal must not delay the engine's retries
        stored = self._store(f"{line.action} of alert {alert.id}",
                             lambda s: db_alerts.save(s, new, line), [msg], waiting_since)
        if not stored:
            self.retry_at = retry_at
            self.unstamp(msg)
            if stored is None:
                raise StoreBusy(f"{line.action} of alert {alert.id}")
            raise Refused("store", "the store did not take the change; nothing changed, try "
                                   "again")
        if new.state == "resolved":
            self.alerts.pop(new.id, None)
        else:
            self.alerts[new.id] = new
        self.publish(msg)
        log.info("alert %d %s by %s -> %s", new.id, line.action, actor.user, new.state)
        return new

    def viewed(self, alert_id: int, camera_ids: list[int], known: set[int],
               actor: Actor) -> bool:
        """Write in the alert's history that ``actor`` opened these cameras
        for it (what CCTV was used for which case, and when). The same
        person opening the same cameras again within VIEW_FOLD_S adds no
        line; returns whether one was written. Only for whoever works
        alerts; cameras must be in the registry (``known``)."""
        if not actor.roles & WORKERS:
            raise Refused("forbidden", f"{actor.user} cannot work alerts")
        ids = sorted(set(camera_ids))
        if not ids or len(ids) > MAX_VIEWED or not set(ids) <= known:
            raise Refused("bad_value", f"name 1 to {MAX_VIEWED} cameras of the registry")
        alert = self.find(alert_id)
        now = self.clock()
        last = self._views.get((alert.id, actor.user))
        if last is not None and last[0] == ids and now - last[1] < VIEW_FOLD_S:
            return False
        line = HistoryEntry("cameras", actor.user, now,
                            detail=", ".join(str(i) for i in ids))
        if not self._store(f"the camera view of alert {alert.id}",
                           lambda s: db_alerts.append(s, alert.id, line), []):
            raise Refused("store", "the store did not take it; try again")
        self._views[(alert.id, actor.user)] = (ids, now)
        return True

    def clear(self, slot: int, kind: str, reason: str, resolve: bool = True) -> bool:
        """The condition behind the child's open ``kind`` alert ended (see
        ``models.alerts.clear``; ``resolve`` False only notes it). False if
        there is none to clear, or its last change is not stored yet."""
        alert = self.open_alert(slot, kind)
        if alert is None or not alert.saved or any(v.id == alert.id for v, _, _ in self.outbox):
            return False
        new, line = clear(alert, reason, self.clock(), resolve)
        if new.state == "resolved":
            self.alerts.pop(new.id, None)
        else:
            self.alerts[new.id] = new
        log.info("alert %d: %s (%s)", new.id, reason, new.state)
        self._write_later(new, line)
        return True

    def open_alert(self, slot: int, kind: str) -> AlertView | None:
        return next((a for a in self.alerts.values() if a.child_slot == slot
                     and a.kind == kind and a.state != "resolved"), None)

    # -------------------------------------------------------------- clock
    def tick(self) -> None:
        """Escalate SLA breaches and end holds whose time is up."""
        now = self.clock()
        for alert in list(self.alerts.values()):
            if not alert.saved or any(v.id == alert.id for v, _, _ in self.outbox):
                continue  # escalated once the store has it
            expired = hold_expired(alert, now)
            if expired is not None:
                alert = expired[0]
                self.alerts[alert.id] = alert
                self._write_later(*expired)
            bits, reason = breaches(alert, now)
            if bits:
                new, line = escalate(alert, bits, reason, now)
                self.alerts[new.id] = new
                log.warning("alert %d escalated: %s", new.id, reason)
                self._write_later(new, line)

    def unsaved(self) -> int:
        return len(self.pending) + len(self.outbox)

    def all_open(self) -> list[AlertView]:
        return sorted(self.alerts.values(), key=lambda a: a.id)
