"""The alert lifecycle: kinds, priorities, states, who may do what, and SLAs.

One pure, Qt-free place for every rule about an alert, so the engine, the
consoles, the command line and the tests agree by construction:

- ``transition(alert, command, actor, now)`` is the whole state machine: it
  returns the changed alert and the history line to append, or raises
  ``Refused`` with a sentence an operator can act on. The engine adds the
  session and store around it; nothing else changes an alert's state.
- ``fold`` is the rule that nothing is ever dropped: a repeated trigger of an
  unresolved alert (same child, same kind) becomes a counter and a history
  line on it, and the first trigger after it was resolved opens a new one.
- ``breaches`` decides SLA escalation from a clock the caller passes in.

The console's ordering of the queue (``AlertBook``) lives here too.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import msgspec

from models.accounts import Role
from models.messages import (
    AckAlert,
    AddNote,
    AlertCommand,
    AlertKind,
    AlertState,
    AlertView,
    AssignAlert,
    DispatchAlert,
    HistoryEntry,
    HoldAlert,
    MarkStep,
    ReopenAlert,
    ResolveAlert,
    ResumeAlert,
    TakeAlert,
)
from models.procedures import Procedures

KINDS: tuple[AlertKind, ...] = ("sos", "fall", "removed", "zone_exit", "low_battery",
                                "not_arrived", "not_departed", "lost_signal",
                                "unusual_movement")
DEFAULT_PRIORITY: dict[str, int] = {"sos": 1, "fall": 1, "removed": 2, "zone_exit": 2,
                                    "low_battery": 4, "not_arrived": 2, "not_departed": 3,
                                    "lost_signal": 2, "unusual_movement": 2}
STATES: tuple[AlertState, ...] = ("new", "acknowledged", "in_progress", "on_hold",
                                  "dispatched", "resolved")
OUTCOMES = ("child_safe", "false_alarm", "handed_to_police", "handed_to_fire",
            "device_fault", "other")
# The engine's own outcome: the condition ended before anyone acted (the child
# arrived, the signal came back). Never an operator's choice.
CLEARED = "cleared"
DISPATCH_TARGETS = {"police": "112", "fire": "119"}
DEFAULT_HOLD_S = 15 * 60.0
MAX_HOLD_S = 24 * 3600.0
MAX_NOTE = 2000
MAX_REFERENCE = 60

WORKERS = frozenset({"operator", "supervisor"})  # roles that work the queue
SUPERVISOR = "supervisor"

# SLA bits on ``AlertView.breaches``: which deadlines an alert has missed.
BREACH_ACK = 1
BREACH_CLOSE = 2


@dataclass(frozen=True, slots=True)
class Sla:
    """Seconds from opening (or reopening) to acknowledgement and to being
    resolved or dispatched."""

    ack_s: float
    close_s: float


DEFAULT_SLA: dict[int, Sla] = {
    1: Sla(30.0, 10 * 60.0),
    2: Sla(120.0, 30 * 60.0),
    3: Sla(300.0, 2 * 3600.0),
    4: Sla(900.0, 8 * 3600.0),
}


@dataclass(frozen=True, slots=True)
class Policy:
    """The configurable part of the rules (priorities per kind, SLA per priority)."""

    priority: Mapping[str, int] = field(default_factory=lambda: dict(DEFAULT_PRIORITY))
    sla: Mapping[int, Sla] = field(default_factory=lambda: dict(DEFAULT_SLA))
    procedures: Procedures = field(default_factory=Procedures.load)

    @classmethod
    def from_settings(cls, priorities: Mapping[str, int],
                      sla: Mapping[str, tuple[float, float] | list[float]]) -> Policy:
        """From the config's ``alert_priorities`` and ``alert_sla`` ("P1" -> [ack, close])."""
        prio = dict(DEFAULT_PRIORITY)
        for kind, p in priorities.items():
            if kind not in DEFAULT_PRIORITY:
                raise ValueError(f"alert_priorities: unknown alert kind {kind!r}")
            if isinstance(p, bool) or not isinstance(p, int) or not 1 <= p <= 4:
                raise ValueError(f"alert_priorities.{kind}: a priority is 1 to 4, not {p!r}")
            prio[kind] = p
        slas = dict(DEFAULT_SLA)
        for name, pair in sla.items():
            if name not in ("P1", "P2", "P3", "P4"):
                raise ValueError(f"alert_sla: {name!r} is not P1..P4")
            if (not isinstance(pair, list | tuple) or len(pair) != 2
                    or not all(isinstance(v, int | float) and not isinstance(v, bool)
                               and math.isfinite(v) and v > 0 for v in pair)
                    or pair[0] > pair[1]):
                raise ValueError(f"alert_sla.{name}: give [ack seconds, close seconds], "
                                 f"both positive, ack first, not {pair!r}")
            slas[int(name[1])] = Sla(float(pair[0]), float(pair[1]))
        return cls(priority=prio, sla=slas)

    def priority_of(self, kind: str) -> int:
        return self.priority[kind]

    def deadlines(self, priority: int, since: float) -> tuple[float, float]:
        """(acknowledge by, resolve or dispatch by) for an alert (re)opened at ``since``."""
        sla = self.sla.get(priority) or self.sla[max(self.sla)]
        return since + sla.ack_s, since + sla.close_s


class Refused(Exception):
    """A command the rules refuse; ``code`` says which rule, the message why."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True, slots=True)
class Actor:
    """Who sends a command, as the engine's session check established it."""

    user: str
    roles: frozenset[Role]

    def is_supervisor(self) -> bool:
        return SUPERVISOR in self.roles


@dataclass(frozen=True, slots=True)
class Trigger:
    """A device event that opens an alert or folds into the child's open one."""

    kind: AlertKind
    slot: int
    device_id: str
    lat: float
    lon: float
    position_is_last_known: bool
    at: float
    battery: int = -1
    zone: str = ""  # the zone it is about (an expectation's school or academy)
    why: str = ""  # what the engine saw, for the history (52 km/h for 2 min, 3 km off route)


# ------------------------------------------------------------------ transitions

# Which states each command may start from (the alert panel enables its
# buttons from the same table).
ALLOWED_FROM: dict[type[AlertCommand], frozenset[str]] = {
    AckAlert: frozenset({"new"}),
    TakeAlert: frozenset({"new", "acknowledged", "in_progress", "on_hold", "dispatched"}),
    AssignAlert: frozenset({"new", "acknowledged", "in_progress", "on_hold", "dispatched"}),
    HoldAlert: frozenset({"acknowledged", "in_progress"}),
    ResumeAlert: frozenset({"on_hold"}),
    DispatchAlert: frozenset({"acknowledged", "in_progress", "on_hold"}),
    ResolveAlert: frozenset({"acknowledged", "in_progress", "on_hold", "dispatched"}),
    ReopenAlert: frozenset({"resolved"}),
    MarkStep: frozenset({"acknowledged", "in_progress", "on_hold", "dispatched"}),
    AddNote: frozenset({"new", "acknowledged", "in_progress", "on_hold", "dispatched",
                        "resolved"}),
}
# Commands only a supervisor may give.
SUPERVISOR_ONLY = frozenset({AssignAlert, ReopenAlert})
# Commands that make the actor the owner when nobody owns the alert, and that
# only its owner (or a supervisor) may give once somebody does.
OWNED = frozenset({HoldAlert, ResumeAlert, DispatchAlert, ResolveAlert, MarkStep})

ACTION_NAME: dict[type[AlertCommand], str] = {
    AckAlert: "ack", TakeAlert: "take", AssignAlert: "assign", HoldAlert: "hold",
    ResumeAlert: "resume", DispatchAlert: "dispatch", ResolveAlert: "resolve",
    ReopenAlert: "reopen", MarkStep: "step", AddNote: "note",
}


def check_actor(cmd: AlertCommand, alert: AlertView, actor: Actor) -> None:
    """Role, state, version and ownership: the checks common to every command."""
    kind = type(cmd)
    if not actor.roles & WORKERS:
        raise Refused("forbidden", f"{actor.user} ({', '.join(sorted(actor.roles))}) "
                                   "cannot work alerts")
    if kind in SUPERVISOR_ONLY and not actor.is_supervisor():
        raise Refused("forbidden", f"only a supervisor may {ACTION_NAME[kind]} an alert")
    if cmd.alert_version != alert.version:
        who = f" by {alert.last_actor}" if alert.last_actor else ""
        raise Refused("stale", f"alert {alert.id} changed{who} since you saw it (version "
                               f"{alert.version}, you had {cmd.alert_version}): look again")
    if alert.state not in ALLOWED_FROM[kind]:
        raise Refused("illegal", f"cannot {ACTION_NAME[kind]} alert {alert.id}: it is "
                                 f"{alert.state.replace('_', ' ')}")
    if (kind in OWNED and alert.owner and alert.owner != actor.user
            and not actor.is_supervisor()):
        raise Refused("not_owner", f"alert {alert.id} is {alert.owner}'s; ask them or a "
                                   "supervisor")


def transition(alert: AlertView, cmd: AlertCommand, actor: Actor, now: float,
               policy: Policy, assignable: frozenset[str] = frozenset()
               ) -> tuple[AlertView, HistoryEntry]:
    """Apply ``cmd`` to ``alert``; returns the new alert and its history line.

    ``assignable`` names the users an alert may be assigned to (enabled
    accounts that work the queue): the engine knows them, the rule does not.
    Raises ``Refused`` and changes nothing when the command is not allowed.
    """
    check_actor(cmd, alert, actor)
    note = _text(getattr(cmd, "note", ""), "note", MAX_NOTE)
    changes: dict[str, object] = {}
    detail = ""
    own = {"owner": actor.user} if not alert.owner else {}
    acked = ({"acked_by": actor.user, "acked_at": now} if not alert.acked_by else {})
    match cmd:
        case AckAlert():
            changes = {"state": "acknowledged", **acked}
        case TakeAlert():
            if alert.owner == actor.user:
                raise Refused("illegal", f"alert {alert.id} is already yours")
            if alert.owner and not actor.is_supervisor():
                raise Refused("not_owner", f"alert {alert.id} is {alert.owner}'s; ask a "
                                           "supervisor to reassign it")
            changes = {"owner": actor.user, **acked}
            if alert.state in ("new", "acknowledged"):
                changes["state"] = "in_progress"
            detail = f"from {alert.owner}" if alert.owner else ""
        case AssignAlert(user=user):
            if user not in assignable:
                raise Refused("bad_value", f"{user[:40]!r} is not a signed-up operator or "
                                           "supervisor who can take alerts")
            if user == alert.owner:
                raise Refused("illegal", f"alert {alert.id} is already {user}'s")
            changes = {"owner": user}
            if alert.state in ("new", "acknowledged"):
                changes["state"] = "in_progress"
            if not alert.acked_by:
                changes.update(acked_by=actor.user, acked_at=now)
            detail = f"to {user}" + (f" from {alert.owner}" if alert.owner else "")
        case HoldAlert(reason=reason, until=until):
            reason = _text(reason, "reason", 200)
            if not reason:
                raise Refused("bad_value", "a hold needs a reason")
            if until == 0.0:
                until = now + DEFAULT_HOLD_S
            if not math.isfinite(until) or not now < until <= now + MAX_HOLD_S:
                raise Refused("bad_value", "a hold lasts until a time within the next 24 h")
            changes = {"state": "on_hold", "hold_reason": reason, "hold_until": until, **own}
            detail = reason
        case ResumeAlert():
            changes = {"state": "in_progress", "hold_reason": "", "hold_until": 0.0, **own}
        case DispatchAlert(target=target, reference=reference):
            if target not in DISPATCH_TARGETS:
                raise Refused("bad_value", f"dispatch to police or fire, not {target[:20]!r}")
            reference = _text(reference, "reference", MAX_REFERENCE)
            if not reference:
                raise Refused("bad_value", f"a dispatch to {target} "
                                           f"({DISPATCH_TARGETS[target]}) needs its reference")
            changes = {"state": "dispatched", "dispatched_to": target,
                       "dispatch_ref": reference, "hold_reason": "", "hold_until": 0.0, **own}
            detail = f"{target} {DISPATCH_TARGETS[target]} ref {reference}"
        case ResolveAlert(outcome=outcome):
            if outcome not in OUTCOMES:
                raise Refused("bad_value", f"outcome must be one of {', '.join(OUTCOMES)}")
            if not note:
                raise Refused("bad_value", "resolving needs a note saying what happened")
            missing = policy.procedures.missing_mandatory(alert.kind, alert.steps)
            if missing:
                raise Refused("procedure", "tick or skip (with a reason) the mandatory "
                                           f"steps first: {', '.join(missing)}")
            changes = {"state": "resolved", "outcome": outcome, "resolved_at": now,
                       "hold_reason": "", "hold_until": 0.0, **own}
            detail = outcome
        case ReopenAlert():
            if not note:
                raise Refused("bad_value", "reopening needs a note saying why")
            ack_by, close_by = policy.deadlines(alert.priority, now)
            changes = {"state": "acknowledged", "outcome": "", "resolved_at": 0.0,
                       "owner": "", "breaches": 0, "ack_due": ack_by, "close_due": close_by}
        case MarkStep(step=step, skipped=skipped):
            if policy.procedures.step(alert.kind, step) is None:
                raise Refused("bad_value", f"the {alert.kind} procedure has no step {step[:40]!r}")
            if step in alert.steps:
                raise Refused("illegal", f"step {step} is already done")
            if skipped and not note:
                raise Refused("bad_value", "skipping a step needs a reason")
            changes = {"steps": [*alert.steps, step], **own}
            detail = f"{step} skipped" if skipped else f"{step} done"
        case AddNote():
            if not note:
                raise Refused("bad_value", "a note cannot be empty")
        case _:
            raise Refused("unsupported", f"unknown alert command {type(cmd).__name__}")
    if note:
        changes["last_note"] = note
    new = msgspec.structs.replace(alert, version=alert.version + 1, last_actor=actor.user,
                                  updated_at=now, **changes)
    return new, HistoryEntry(ACTION_NAME[type(cmd)], actor.user, now, note, detail)


def _text(value: str, name: str, limit: int) -> str:
    value = value.strip()
    if len(value) > limit:
        raise Refused("bad_value", f"the {name} is longer than {limit} characters")
    return value


# ------------------------------------------------------------------ triggers


def fold(alert: AlertView, trigger: Trigger) -> tuple[AlertView, HistoryEntry]:
    """A repeated trigger of an unresolved alert: count it, move the alert to
    the newest position (when the device gave one), and say so in the history."""
    has_fix = not trigger.position_is_last_known and math.isfinite(trigger.lat)
    moved: dict[str, object] = {}
    if has_fix:
        moved = {"lat": trigger.lat, "lon": trigger.lon, "position_is_last_known": False}
    if trigger.battery >= 0:
        moved["battery"] = trigger.battery
    new = msgspec.structs.replace(alert, count=alert.count + 1, last_trigger_at=trigger.at,
                                  version=alert.version + 1, updated_at=trigger.at,
                                  last_actor="device", **moved)
    line = HistoryEntry("repeat", "device", trigger.at,
                        detail=f"trigger {new.count}" + (f": {trigger.why}" if trigger.why else ""),
                       lat=trigger.lat if has_fix else None,
                       lon=trigger.lon if has_fix else None)
    return new, line


def folds_into(alert: AlertView, trigger: Trigger) -> bool:
    return (alert.child_slot == trigger.slot and alert.kind == trigger.kind
            and alert.state != "resolved")


# ------------------------------------------------------------------ escalation


def breaches(alert: AlertView, now: float) -> tuple[int, str]:
    """The SLA bits ``alert`` has newly missed at ``now``, and why in words."""
    if alert.state == "resolved":
        return 0, ""
    new = 0
    reasons: list[str] = []
    if (alert.state == "new" and alert.ack_due and now > alert.ack_due
            and not alert.breaches & BREACH_ACK):
        new |= BREACH_ACK
        reasons.append("not acknowledged in time")
    if (alert.state != "dispatched" and alert.close_due and now > alert.close_due
            and not alert.breaches & BREACH_CLOSE):
        new |= BREACH_CLOSE
        reasons.append("not resolved or dispatched in time")
    return new, "; ".join(reasons)


def escalate(alert: AlertView, bits: int, reason: str, now: float
             ) -> tuple[AlertView, HistoryEntry]:
    new = msgspec.structs.replace(alert, breaches=alert.breaches | bits, escalated_at=now,
                                  version=alert.version + 1, updated_at=now,
                                  last_actor="engine")
    return new, HistoryEntry("escalate", "engine", now, detail=reason)


def clear(alert: AlertView, reason: str, now: float, resolve: bool = True
          ) -> tuple[AlertView, HistoryEntry]:
    """The condition behind an alert ended by itself (the child arrived, the
    signal came back). Untouched, the alert resolves itself as ``cleared``
    (unless ``resolve`` is False: a child back in school after running off is
    still the operator's to judge); once an operator works it, it stays
    theirs and the history says it cleared, so nobody's work is taken from
    under them."""
    if resolve and alert.state == "new":
        new = msgspec.structs.replace(alert, state="resolved", outcome=CLEARED,
                                      resolved_at=now, version=alert.version + 1,
                                      updated_at=now, last_actor="engine", last_note=reason)
        return new, HistoryEntry("resolve", "engine", now, note=reason, detail=CLEARED)
    new = msgspec.structs.replace(alert, version=alert.version + 1, updated_at=now,
                                  last_actor="engine", last_note=reason)
    return new, HistoryEntry("cleared", "engine", now, note=reason)


def hold_expired(alert: AlertView, now: float) -> tuple[AlertView, HistoryEntry] | None:
    """An on-hold alert whose time is up comes back to its owner's work."""
    if alert.state != "on_hold" or not alert.hold_until or now < alert.hold_until:
        return None
    new = msgspec.structs.replace(alert, state="in_progress", hold_reason="", hold_until=0.0,
                                  version=alert.version + 1, updated_at=now,
                                  last_actor="engine")
    return new, HistoryEntry("hold_expired", "engine", now, detail=alert.hold_reason)


def acked_in_time(alert: AlertView) -> bool | None:
    """Acknowledged before its deadline? None while it has not been, and is
    not yet late (control rooms count only decided cases)."""
    if alert.acked_at:
        return not alert.ack_due or alert.acked_at <= alert.ack_due
    return False if alert.breaches & BREACH_ACK else None


# ------------------------------------------------------------------ the queue

def sort_key(a: AlertView) -> tuple[bool, int, bool, float]:
    """Unresolved before resolved, then priority, then (within a priority)
    unacknowledged first, then oldest first: the longest-waiting urgent alert
    is on top, and a new P4 never sits above a P1 someone is working."""
    return (a.state == "resolved", a.priority, a.state != "new", a.opened_at)


def district(a: AlertView) -> str:
    """The 구 of the alert's place ("성동구 성수동1가" -> "성동구"), or ""."""
    first = a.place.split(" ", 1)[0]
    return first if first.endswith("구") else ""


class AlertBook:
    """The alert queue as a console holds it, in the order operators work it."""

    def __init__(self) -> None:
        self._by_id: dict[int, AlertView] = {}
        self.rows: list[AlertView] = []

    def __len__(self) -> int:
        return len(self.rows)

    def get(self, alert_id: int) -> AlertView | None:
        return self._by_id.get(alert_id)

    def reset(self, alerts: list[AlertView]) -> None:
        self._by_id = {a.id: a for a in alerts}
        self._sort()

    def upsert(self, alert: AlertView) -> None:
        old = self._by_id.get(alert.id)
        if old is not None and old.version > alert.version:
            return  # an older copy (a late reply) never replaces a newer one
        self._by_id[alert.id] = alert
        self._sort()

    def _sort(self) -> None:
        self.rows = sorted(self._by_id.values(), key=sort_key)

    def unresolved_slots(self) -> list[int]:
        return [a.child_slot for a in self.rows if a.state != "resolved" and a.child_slot >= 0]
