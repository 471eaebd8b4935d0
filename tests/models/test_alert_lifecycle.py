"""The alert lifecycle (``models.alerts``): the state machine, folding, SLAs, the queue.

Two layers:

- a hypothesis ``RuleBasedStateMachine`` that plays a small "engine": random
  triggers (folded into the child's unresolved alert of that kind, or opening
  a new one), random commands from random actors with current or stale
  versions, a clock that only moves forward, SLA escalation and hold expiry.
  Every command is checked against an independent statement of the rules
  (which refusal code, if any) and every accepted one against a frame
  condition (exactly which fields it may change, and to what);
- example tests for each command's happy path and each refusal, the SLA
  arithmetic with a controlled clock, ``Policy`` and ``AlertBook``.
"""

from __future__ import annotations

import math

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from models.alerts import (
    BREACH_ACK,
    BREACH_CLOSE,
    DEFAULT_HOLD_S,
    DEFAULT_PRIORITY,
    DEFAULT_SLA,
    KINDS,
    MAX_HOLD_S,
    MAX_NOTE,
    MAX_REFERENCE,
    OUTCOMES,
    STATES,
    Actor,
    AlertBook,
    HistoryEntry,
    Policy,
    Refused,
    Sla,
    Trigger,
    acked_in_time,
    breaches,
    district,
    escalate,
    fold,
    folds_into,
    hold_expired,
    sort_key,
    transition,
)
from models.messages import (
    AckAlert,
    AddNote,
    AlertCommand,
    AlertView,
    AssignAlert,
    DispatchAlert,
    HoldAlert,
    MarkStep,
    ReopenAlert,
    ResolveAlert,
    ResumeAlert,
    TakeAlert,
)

T0 = 1_700_000_000.0
POLICY = Policy()
ASSIGNABLE = frozenset({"op1", "op2", "sup1"})

OP1 = Actor("op1", frozenset({"operator"}))
OP2 = Actor("op2", frozenset({"operator"}))
SUP = Actor("sup1", frozenset({"supervisor"}))
AUD = Actor("aud1", frozenset({"auditor"}))
ADM = Actor("adm1", frozenset({"admin"}))
ACTORS = {a.user: a for a in (OP1, OP2, SUP, AUD, ADM)}
WORKER_ROLES = frozenset({"operator", "supervisor"})

UNRESOLVED = frozenset(STATES) - {"resolved"}
# The rules as the product states them, written out independently of the code.
SPEC_FROM: dict[type[AlertCommand], frozenset[str]] = {
    AckAlert: frozenset({"new"}),
    TakeAlert: UNRESOLVED,
    AssignAlert: UNRESOLVED,
    HoldAlert: frozenset({"acknowledged", "in_progress"}),
    ResumeAlert: frozenset({"on_hold"}),
    DispatchAlert: frozenset({"acknowledged", "in_progress", "on_hold"}),
    ResolveAlert: frozenset({"acknowledged", "in_progress", "on_hold", "dispatched"}),
    ReopenAlert: frozenset({"resolved"}),
    MarkStep: frozenset({"acknowledged", "in_progress", "on_hold", "dispatched"}),
    AddNote: frozenset(STATES),
}
SUPERVISOR_ONLY = (AssignAlert, ReopenAlert)
OWNED = (HoldAlert, ResumeAlert, DispatchAlert, ResolveAlert, MarkStep)
ACTION = {AckAlert: "ack", TakeAlert: "take", AssignAlert: "assign", HoldAlert: "hold",
          ResumeAlert: "resume", DispatchAlert: "dispatch", ResolveAlert: "resolve",
          ReopenAlert: "reopen", MarkStep: "step", AddNote: "note"}
# Fields each command may change besides version / last_actor / updated_at / last_note.
MAY_CHANGE: dict[type[AlertCommand], frozenset[str]] = {
    AckAlert: frozenset({"state", "acked_by", "acked_at"}),
    TakeAlert: frozenset({"state", "owner", "acked_by", "acked_at"}),
    AssignAlert: frozenset({"state", "owner", "acked_by", "acked_at"}),
    HoldAlert: frozenset({"state", "hold_reason", "hold_until", "owner"}),
    ResumeAlert: frozenset({"state", "hold_reason", "hold_until", "owner"}),
    DispatchAlert: frozenset({"state", "dispatched_to", "dispatch_ref", "hold_reason",
                              "hold_until", "owner"}),
    ResolveAlert: frozenset({"state", "outcome", "resolved_at", "hold_reason", "hold_until",
                             "owner"}),
    ReopenAlert: frozenset({"state", "outcome", "resolved_at", "owner", "breaches", "ack_due",
                            "close_due"}),
    MarkStep: frozenset({"steps", "owner"}),
    AddNote: frozenset(),
}
ALWAYS_MAY_CHANGE = frozenset({"version", "last_actor", "updated_at", "last_note"})


# ------------------------------------------------------------------ helpers


def make_alert(kind: str = "sos", *, alert_id: int = 1, slot: int = 0,
               opened_at: float = T0, priority: int | None = None,
               place: str = "성동구 성수동1가", **fields: object) -> AlertView:
    """A freshly opened alert, with its deadlines from the default policy."""
    prio = priority if priority is not None else POLICY.priority_of(kind)
    ack_due, close_due = POLICY.deadlines(prio, opened_at)
    base: dict[str, object] = dict(
        id=alert_id, kind=kind, priority=prio, state="new", child_token=f"child-{slot}",
        child_slot=slot, device_id=f"dev-{slot}", lat=37.544, lon=127.056, place=place,
        opened_at=opened_at, last_trigger_at=opened_at, updated_at=opened_at,
        ack_due=ack_due, close_due=close_due)
    base.update(fields)
    return AlertView(**base)  # type: ignore[arg-type]


def command(cls: type[AlertCommand], alert: AlertView, **fields: object) -> AlertCommand:
    fields.setdefault("alert_version", alert.version)
    return cls(token="session-token", alert_id=alert.id, **fields)  # type: ignore[call-arg]


def do(alert: AlertView, cls: type[AlertCommand], actor: Actor, now: float = T0 + 10,
       **fields: object) -> tuple[AlertView, HistoryEntry]:
    return transition(alert, command(cls, alert, **fields), actor, now, POLICY, ASSIGNABLE)


def go(alert: AlertView, cls: type[AlertCommand], actor: Actor, now: float = T0 + 10,
       **fields: object) -> AlertView:
    return do(alert, cls, actor, now, **fields)[0]


def refused(alert: AlertView, cls: type[AlertCommand], actor: Actor, now: float = T0 + 10,
            **fields: object) -> Refused:
    before = msgspec.json.encode(alert)
    with pytest.raises(Refused) as info:
        do(alert, cls, actor, now, **fields)
    assert msgspec.json.encode(alert) == before
    return info.value


def mandatory(kind: str) -> list[str]:
    return [s.id for s in POLICY.procedures.steps(kind) if s.mandatory]


def owned(kind: str = "sos", owner: Actor = OP1, **fields: object) -> AlertView:
    """An alert ``owner`` took (state in_progress)."""
    return go(make_alert(kind, **fields), TakeAlert, owner)


def ready(kind: str = "sos", owner: Actor = OP1) -> AlertView:
    """An owned alert with every mandatory step ticked."""
    alert = owned(kind, owner)
    for step in mandatory(kind):
        alert = go(alert, MarkStep, owner, step=step)
    return alert


def resolved(kind: str = "sos", owner: Actor = OP1, now: float = T0 + 60) -> AlertView:
    return go(ready(kind, owner), ResolveAlert, owner, now, outcome="child_safe",
              note="child is with the guardian")


def changed_fields(before: AlertView, after: AlertView) -> set[str]:
    a, b = msgspec.structs.asdict(before), msgspec.structs.asdict(after)
    return {k for k in a if a[k] != b[k]}


# ------------------------------------------------------------------ the oracle


def expected_refusal(alert: AlertView, cmd: AlertCommand, actor: Actor,
                     now: float) -> str | None:
    """The refusal code the rules call for, or None when the command must pass."""
    kind = type(cmd)
    sup = "supervisor" in actor.roles
    if not actor.roles & WORKER_ROLES:
        return "forbidden"
    if isinstance(cmd, SUPERVISOR_ONLY) and not sup:
        return "forbidden"
    if cmd.alert_version != alert.version:
        return "stale"
    if alert.state not in SPEC_FROM[kind]:
        return "illegal"
    if isinstance(cmd, OWNED) and alert.owner not in ("", actor.user) and not sup:
        return "not_owner"
    note = cmd.note.strip()
    if len(note) > MAX_NOTE:
        return "bad_value"
    match cmd:
        case TakeAlert():
            if alert.owner == actor.user:
                return "illegal"
            if alert.owner and not sup:
                return "not_owner"
        case AssignAlert(user=user):
            if user not in ASSIGNABLE:
                return "bad_value"
            if user == alert.owner:
                return "illegal"
        case HoldAlert(reason=reason, until=until):
            if not reason.strip() or len(reason.strip()) > 200:
                return "bad_value"
            until = now + DEFAULT_HOLD_S if until == 0.0 else until
            if not (math.isfinite(until) and now < until <= now + MAX_HOLD_S):
                return "bad_value"
        case DispatchAlert(target=target, reference=reference):
            if target not in ("police", "fire"):
                return "bad_value"
            if not reference.strip() or len(reference.strip()) > MAX_REFERENCE:
                return "bad_value"
        case ResolveAlert(outcome=outcome):
            if outcome not in OUTCOMES or not note:
                return "bad_value"
            if set(mandatory(alert.kind)) - set(alert.steps):
                return "procedure"
        case ReopenAlert():
            if not note:
                return "bad_value"
        case MarkStep(step=step, skipped=skipped):
            if step not in {s.id for s in POLICY.procedures.steps(alert.kind)}:
                return "bad_value"
            if step in alert.steps:
                return "illegal"
            if skipped and not note:
                return "bad_value"
        case AddNote():
            if not note:
                return "bad_value"
    return None


def check_accepted(before: AlertView, after: AlertView, line: HistoryEntry,
                   cmd: AlertCommand, actor: Actor, now: float) -> None:
    """What an accepted command must have done, and nothing else."""
    kind = type(cmd)
    note = cmd.note.strip()
    # (c) one version, one history line by the actor
    assert after.version == before.version + 1
    assert line == HistoryEntry(ACTION[kind], actor.user, now, note, line.detail)
    assert (after.last_actor, after.updated_at) == (actor.user, now)
    assert after.state in STATES
    assert after.last_note == (note or before.last_note)
    extra = changed_fields(before, after) - ALWAYS_MAY_CHANGE - MAY_CHANGE[kind]
    assert not extra, f"{ACTION[kind]} changed {extra}"
    # (e) a new alert is never held, dispatched or resolved directly
    if before.state == "new":
        assert after.state in ("new", "acknowledged", "in_progress")
    # (f) after resolve only a supervisor's reopen, or a note
    if before.state == "resolved":
        assert isinstance(cmd, ReopenAlert | AddNote)
        assert isinstance(cmd, AddNote) or actor.is_supervisor()
    # (g) only the owner or a supervisor works an owned alert
    if isinstance(cmd, OWNED) and before.owner and before.owner != actor.user:
        assert actor.is_supervisor()
    # whoever works an unowned alert becomes its owner
    took = before.owner or actor.user
    acked_by = before.acked_by or actor.user
    match cmd:
        case AckAlert():
            assert (after.state, after.acked_by, after.acked_at) == ("acknowledged",
                                                                     actor.user, now)
            assert after.owner == before.owner
        case TakeAlert() | AssignAlert():
            owner = cmd.user if isinstance(cmd, AssignAlert) else actor.user
            assert after.owner == owner != before.owner
            assert after.acked_by == acked_by
            promoted = before.state in ("new", "acknowledged")
            assert after.state == ("in_progress" if promoted else before.state)
        case HoldAlert(reason=reason, until=until):
            assert after.state == "on_hold"
            assert after.hold_reason == reason.strip() == line.detail
            assert after.hold_until == (now + DEFAULT_HOLD_S if until == 0.0 else until)
            assert now < after.hold_until <= now + MAX_HOLD_S
            assert after.owner == took
        case ResumeAlert():
            assert (after.state, after.hold_reason, after.hold_until) == ("in_progress", "", 0)
            assert after.owner == took
        case DispatchAlert(target=target, reference=reference):
            assert after.state == "dispatched"
            assert (after.dispatched_to, after.dispatch_ref) == (target, reference.strip())
            assert (after.hold_reason, after.hold_until) == ("", 0.0)
            assert after.owner == took
        case ResolveAlert(outcome=outcome):
            # (d) resolved only with every mandatory step done and a note
            assert after.state == "resolved"
            assert not POLICY.procedures.missing_mandatory(after.kind, after.steps)
            assert note and after.last_note == note
            assert (after.outcome, after.resolved_at) == (outcome, now)
            assert (after.hold_reason, after.hold_until) == ("", 0.0)
            assert after.owner == took
        case ReopenAlert():
            assert (after.state, after.owner, after.outcome, after.resolved_at) == (
                "acknowledged", "", "", 0.0)
            assert after.breaches == 0
            assert (after.ack_due, after.close_due) == POLICY.deadlines(after.priority, now)
        case MarkStep(step=step):
            assert after.steps == [*before.steps, step]
            assert after.owner == took
        case AddNote():
            assert (after.state, after.owner) == (before.state, before.owner)


# ------------------------------------------------------------------ the state machine

NOTES = ("child found at the school gate", "", "guardian called back", "   ",
         "x" * (MAX_NOTE + 1))
COMMANDS = (AckAlert, TakeAlert, AssignAlert, HoldAlert, ResumeAlert, DispatchAlert,
            ResolveAlert, ReopenAlert, MarkStep, AddNote)
TRIGGER_KINDS = ("sos", "removed", "low_battery")  # 4, 1 and 1 mandatory steps
# Workers more often than the roles that are always refused.
RANDOM_ACTORS = (OP1, OP2, SUP, OP1, OP2, SUP, AUD, ADM)
HOLD_OFFSETS = (None, 600.0, 1.0, MAX_HOLD_S, MAX_HOLD_S + 1, 0.0, -60.0, math.inf, math.nan)


def draw_command(data: st.DataObject, alert: AlertView, now: float) -> AlertCommand:
    cls = data.draw(st.sampled_from(COMMANDS), label="command")
    if data.draw(st.integers(0, 5), label="stale?") == 0:
        version = alert.version + data.draw(st.sampled_from((-1, 1, 9)), label="off by")
    else:
        version = alert.version
    fields: dict[str, object] = {
        "alert_version": version,
        "note": data.draw(st.sampled_from(NOTES), label="note"),
    }
    if cls is AssignAlert:
        fields["user"] = data.draw(st.sampled_from(("op2", "op1", "sup1", "aud1", "ghost")))
    elif cls is HoldAlert:
        fields["reason"] = data.draw(st.sampled_from(
            ("waiting for the guardian to call back", "", "  ", "r" * 201)))
        offset = data.draw(st.sampled_from(HOLD_OFFSETS), label="hold until now +")
        fields["until"] = 0.0 if offset is None else now + offset
    elif cls is DispatchAlert:
        fields["target"] = data.draw(st.sampled_from(("police", "fire", "ambulance", "",
                                                      "POLICE")))
        fields["reference"] = data.draw(st.sampled_from(("KNPA-2024-0042", "", " ",
                                                         "r" * (MAX_REFERENCE + 1))))
    elif cls is ResolveAlert:
        fields["outcome"] = data.draw(st.sampled_from((*OUTCOMES, "lost", "")))
    elif cls is MarkStep:
        own = [s.id for s in POLICY.procedures.steps(alert.kind)]
        fields["step"] = data.draw(st.sampled_from((*own, "check_trail", "bogus")))
        fields["skipped"] = data.draw(st.booleans())
    return command(cls, alert, **fields)


class AlertEngine(RuleBasedStateMachine):
    """A miniature engine: alerts per child and kind, commands, clock, SLA."""

    def __init__(self) -> None:
        super().__init__()
        self.now = T0
        self.alerts: list[AlertView] = []
        self.history: dict[int, list[HistoryEntry]] = {}
        self.triggers = 0
        self.accepted = 0

    # -- the engine's moves

    def apply(self, index: int, cmd: AlertCommand, actor: Actor) -> bool:
        before = self.alerts[index]
        frozen = msgspec.json.encode(before)
        expected = expected_refusal(before, cmd, actor, self.now)
        try:
            after, line = transition(before, cmd, actor, self.now, POLICY, ASSIGNABLE)
        except Refused as refusal:
            # (b) a refusal changes nothing, and says which rule and why
            assert msgspec.json.encode(before) == frozen
            assert refusal.code == expected, (refusal.code, str(refusal), before.state, cmd)
            assert str(refusal).strip()
            # (h) auditors (and anyone else outside the queue) are always forbidden
            if not actor.roles & WORKER_ROLES:
                assert refusal.code == "forbidden"
            # (i) a stale version is always refused as stale (for a command the
            # role may give at all)
            elif (cmd.alert_version != before.version
                  and not (isinstance(cmd, SUPERVISOR_ONLY) and not actor.is_supervisor())):
                assert refusal.code == "stale"
            # (e) a new alert is never held, dispatched or resolved directly
            if before.state == "new" and isinstance(cmd, HoldAlert | DispatchAlert
                                                    | ResolveAlert):
                assert refusal.code in ("forbidden", "stale", "illegal")
            return False
        assert expected is None, f"accepted, but the rules say {expected}: {cmd}"
        assert msgspec.json.encode(before) == frozen  # the input alert is untouched
        check_accepted(before, after, line, cmd, actor, self.now)
        self.alerts[index] = after
        self.history[after.id].append(line)
        self.accepted += 1
        return True

    @initialize(kind=st.sampled_from(TRIGGER_KINDS), slot=st.integers(0, 1))
    def first_trigger(self, kind: str, slot: int) -> None:
        self.trigger(kind, slot, 0, True, -1)

    @rule(kind=st.sampled_from(TRIGGER_KINDS), slot=st.integers(0, 1), dt=st.integers(0, 30),
          has_fix=st.booleans(), battery=st.integers(-1, 100))
    def trigger(self, kind: str, slot: int, dt: int, has_fix: bool, battery: int) -> None:
        self.now += dt
        self.triggers += 1
        lat, lon = 37.54 + self.triggers * 1e-4, 127.05
        t = Trigger(kind, slot, f"dev-{slot}", lat, lon, position_is_last_known=not has_fix,
                    at=self.now, battery=battery)  # type: ignore[arg-type]
        for a in self.alerts:
            assert folds_into(a, t) == (a.child_slot == slot and a.kind == kind
                                        and a.state != "resolved")
        into = [i for i, a in enumerate(self.alerts) if folds_into(a, t)]
        if not into:
            alert = make_alert(kind, alert_id=len(self.alerts) + 1, slot=slot,
                               opened_at=self.now, lat=lat, lon=lon,
                               position_is_last_known=not has_fix)
            self.alerts.append(alert)
            self.history[alert.id] = []
            return
        i = into[-1]  # a reopened alert can make two: the newest takes it
        before = self.alerts[i]
        after, line = fold(before, t)
        kept = ("state", "owner", "acked_by", "steps", "breaches", "priority", "kind",
                "child_slot", "opened_at", "ack_due", "close_due", "hold_until")
        for name in kept:
            assert getattr(after, name) == getattr(before, name), name
        assert (after.count, after.version) == (before.count + 1, before.version + 1)
        assert (after.last_trigger_at, after.updated_at, after.last_actor) == (
            self.now, self.now, "device")
        assert line == HistoryEntry("repeat", "device", self.now,
                                   detail=f"trigger {after.count}",
                                   lat=lat if has_fix else None, lon=lon if has_fix else None)
        if has_fix:
            assert (after.lat, after.lon, after.position_is_last_known) == (lat, lon, False)
        else:
            assert (after.lat, after.lon) == (before.lat, before.lon)
        assert after.battery == (battery if battery >= 0 else before.battery)
        self.alerts[i] = after
        self.history[after.id].append(line)

    @rule(data=st.data(), dt=st.integers(0, 90))
    def any_command(self, data: st.DataObject, dt: int) -> None:
        self.now += dt
        index = data.draw(st.integers(0, len(self.alerts) - 1), label="alert")
        actor = data.draw(st.sampled_from(RANDOM_ACTORS), label="actor")
        self.apply(index, draw_command(data, self.alerts[index], self.now), actor)

    @precondition(lambda self: any(a.state == "resolved" for a in self.alerts))
    @rule(data=st.data())
    def command_on_resolved(self, data: st.DataObject) -> None:
        done = [i for i, a in enumerate(self.alerts) if a.state == "resolved"]
        index = data.draw(st.sampled_from(done), label="resolved alert")
        actor = data.draw(st.sampled_from(RANDOM_ACTORS), label="actor")
        self.apply(index, draw_command(data, self.alerts[index], self.now), actor)

    @rule(data=st.data(), dt=st.integers(0, 90))
    def make_progress(self, data: st.DataObject, dt: int) -> None:
        """A sensible move by someone entitled to it: it must be accepted.

        Random commands are mostly refused; these walk alerts through every
        state (hold, resume, dispatch, resolve, reopen) so that the random
        ones meet alerts in all of them."""
        self.now += dt
        index = data.draw(st.integers(0, len(self.alerts) - 1), label="alert")
        a = self.alerts[index]
        worker = ACTORS[a.owner] if a.owner else data.draw(st.sampled_from((OP1, OP2, SUP)))
        other = next(u for u in ("op1", "op2", "sup1") if u != a.owner)
        left = POLICY.procedures.missing_mandatory(a.kind, a.steps)
        todo = [s.id for s in POLICY.procedures.steps(a.kind) if s.id not in a.steps]
        moves: list[tuple[type[AlertCommand], Actor, dict[str, object]]] = []
        if a.state == "new":
            moves += [(AckAlert, worker, {}), (TakeAlert, worker, {})]
        if a.state != "resolved":
            moves.append((AssignAlert, SUP, {"user": other}))
        if a.state in ("acknowledged", "in_progress"):
            moves.append((HoldAlert, worker, {"reason": "guardian calling back",
                                              "until": data.draw(st.sampled_from(
                                                  (0.0, self.now + 60)))}))
        if a.state == "on_hold":
            moves.append((ResumeAlert, worker, {}))
        if a.state in ("acknowledged", "in_progress", "on_hold"):
            moves.append((DispatchAlert, worker, {"target": data.draw(st.sampled_from(
                ("police", "fire"))), "reference": "KNPA-0042"}))
        if a.state not in ("new", "resolved") and todo:
            moves.append((MarkStep, worker, {"step": (left or todo)[0], "note": "done"}))
        if a.state not in ("new", "resolved") and not left:
            moves.append((ResolveAlert, worker, {"outcome": data.draw(st.sampled_from(
                OUTCOMES)), "note": "child is home; guardian confirmed"}))
        if a.state == "resolved":
            moves.append((ReopenAlert, SUP, {"note": "guardian says the child is not home"}))
        cls, actor, fields = data.draw(st.sampled_from(moves), label="move")
        assert self.apply(index, command(cls, a, **fields), actor)

    @rule(dt=st.sampled_from((0, 31, 121, 601, 1801, 4 * 3600)))
    def clock_escalation_and_holds(self, dt: int) -> None:
        self.now += dt
        for i, a in enumerate(self.alerts):
            bits, reason = breaches(a, self.now)
            want = 0
            if a.state != "resolved":
                if a.state == "new" and self.now > a.ack_due and not a.breaches & BREACH_ACK:
                    want |= BREACH_ACK
                if (a.state != "dispatched" and self.now > a.close_due
                        and not a.breaches & BREACH_CLOSE):
                    want |= BREACH_CLOSE
            assert bits == want
            assert bool(reason) == bool(bits)
            if bits:
                a2, line = escalate(a, bits, reason, self.now)
                assert a2.breaches == a.breaches | bits
                assert (a2.state, a2.owner, a2.version) == (a.state, a.owner, a.version + 1)
                assert line == HistoryEntry("escalate", "engine", self.now, detail=reason)
                assert breaches(a2, self.now) == (0, "")  # escalated once
                self.history[a.id].append(line)
                a = self.alerts[i] = a2
            expired = hold_expired(a, self.now)
            if a.state != "on_hold" or self.now < a.hold_until:
                assert expired is None
                continue
            assert expired is not None
            a2, line = expired
            assert (a2.state, a2.hold_reason, a2.hold_until) == ("in_progress", "", 0.0)
            assert (a2.owner, a2.version) == (a.owner, a.version + 1)
            assert line == HistoryEntry("hold_expired", "engine", self.now, detail=a.hold_reason)
            self.history[a.id].append(line)
            self.alerts[i] = a2

    # -- what must hold after every move

    @invariant()
    def every_alert_is_coherent(self) -> None:
        for a in self.alerts:
            lines = self.history[a.id]
            assert a.state in STATES  # (a)
            assert len(lines) == a.version - 1  # (c) one line per change
            assert a.count == 1 + sum(line.action == "repeat" for line in lines)
            if a.state == "resolved":  # (d)
                assert not POLICY.procedures.missing_mandatory(a.kind, a.steps)
                assert a.last_note and a.outcome in OUTCOMES and a.resolved_at
            if a.state == "new":  # (e) nobody has touched it yet
                assert (a.owner, a.acked_by) == ("", "")
            else:
                assert a.acked_by in ASSIGNABLE
            if a.state == "on_hold":
                assert a.hold_reason and a.hold_until > 0
            else:
                assert (a.hold_reason, a.hold_until) == ("", 0.0)
            if a.state == "dispatched":
                assert a.dispatched_to in ("police", "fire") and a.dispatch_ref
            assert a.owner in ("", *ASSIGNABLE)
            assert len(set(a.steps)) == len(a.steps)
            assert set(a.steps) <= {s.id for s in POLICY.procedures.steps(a.kind)}

    @invariant()
    def no_trigger_is_dropped(self) -> None:
        assert sum(a.count for a in self.alerts) == self.triggers


AlertEngine.TestCase.settings = settings(
    max_examples=200, stateful_step_count=30, deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much])
TestAlertEngine = AlertEngine.TestCase


# ------------------------------------------------------------------ examples: each command


def test_ack_happy_path() -> None:
    alert = make_alert()
    after, line = do(alert, AckAlert, OP1, T0 + 5)
    assert (after.state, after.acked_by, after.acked_at, after.owner) == (
        "acknowledged", "op1", T0 + 5, "")
    assert (after.version, after.last_actor) == (2, "op1")
    assert line == HistoryEntry("ack", "op1", T0 + 5)


def test_ack_twice_is_illegal_and_says_the_state() -> None:
    alert = go(make_alert(), AckAlert, OP1)
    r = refused(alert, AckAlert, OP2)
    assert r.code == "illegal"
    assert "cannot ack alert 1" in str(r) and "acknowledged" in str(r)


def test_stale_version_is_refused_naming_both_versions_and_who_changed_it() -> None:
    alert = go(make_alert(), AckAlert, OP1)
    r = refused(alert, TakeAlert, OP2, alert_version=1)
    assert r.code == "stale"
    assert "by op1" in str(r) and "version 2" in str(r) and "you had 1" in str(r)


@pytest.mark.parametrize("cls", COMMANDS)
@pytest.mark.parametrize("actor", [AUD, ADM, Actor("trn1", frozenset({"trainer"}))])
def test_roles_outside_the_queue_are_forbidden_any_command(cls: type[AlertCommand],
                                                           actor: Actor) -> None:
    for alert in (make_alert(), ready(), resolved()):
        r = refused(alert, cls, actor, **valid_fields(cls))
        assert r.code == "forbidden"
        assert actor.user in str(r) and "cannot work alerts" in str(r)


def valid_fields(cls: type[AlertCommand]) -> dict[str, object]:
    return {AssignAlert: {"user": "op2"}, HoldAlert: {"reason": "waiting"},
            DispatchAlert: {"target": "police", "reference": "R-1"},
            ResolveAlert: {"outcome": "child_safe", "note": "ok"},
            ReopenAlert: {"note": "guardian called again"},
            MarkStep: {"step": "cctv"}, AddNote: {"note": "n"}}.get(cls, {})


def test_auditor_is_forbidden_even_with_a_stale_version() -> None:
    r = refused(go(make_alert(), AckAlert, OP1), AddNote, AUD, alert_version=1, note="x")
    assert r.code == "forbidden"


def test_take_a_new_alert_acknowledges_it_and_starts_work() -> None:
    after, line = do(make_alert(), TakeAlert, OP1, T0 + 7)
    assert (after.state, after.owner, after.acked_by, after.acked_at) == (
        "in_progress", "op1", "op1", T0 + 7)
    assert (line.action, line.detail) == ("take", "")


def test_take_keeps_the_first_acknowledger() -> None:
    alert = go(make_alert(), AckAlert, OP2, T0 + 3)
    after = go(alert, TakeAlert, OP1, T0 + 9)
    assert (after.owner, after.acked_by, after.acked_at) == ("op1", "op2", T0 + 3)


def test_take_own_alert_is_illegal() -> None:
    r = refused(owned(owner=OP1), TakeAlert, OP1)
    assert r.code == "illegal" and "already yours" in str(r)


def test_take_someone_elses_alert_refused_for_an_operator_allowed_for_a_supervisor() -> None:
    alert = owned(owner=OP1)
    r = refused(alert, TakeAlert, OP2)
    assert r.code == "not_owner"
    assert "op1's" in str(r) and "supervisor" in str(r)
    on_hold = go(alert, HoldAlert, OP1, reason="waiting for the guardian")
    after, line = do(on_hold, TakeAlert, SUP)
    assert (after.owner, after.state, line.detail) == ("sup1", "on_hold", "from op1")


def test_assign_by_a_supervisor() -> None:
    after, line = do(make_alert(), AssignAlert, SUP, T0 + 4, user="op2")
    assert (after.owner, after.state, after.acked_by, after.acked_at) == (
        "op2", "in_progress", "sup1", T0 + 4)
    assert line.detail == "to op2"
    again, line = do(after, AssignAlert, SUP, user="op1")
    assert (again.owner, line.detail) == ("op1", "to op1 from op2")
    assert again.acked_by == "sup1"


def test_assign_is_supervisor_only() -> None:
    r = refused(make_alert(), AssignAlert, OP1, user="op2")
    assert r.code == "forbidden" and "only a supervisor may assign" in str(r)


@pytest.mark.parametrize("user", ["ghost", "aud1", ""])
def test_assign_refused_for_a_user_who_cannot_take_alerts(user: str) -> None:
    r = refused(make_alert(), AssignAlert, SUP, user=user)
    assert r.code == "bad_value" and repr(user) in str(r)


def test_assign_to_the_current_owner_is_illegal() -> None:
    r = refused(owned(owner=OP1), AssignAlert, SUP, user="op1")
    assert r.code == "illegal" and "already op1's" in str(r)


def test_hold_default_is_fifteen_minutes_and_takes_ownership() -> None:
    alert = go(make_alert(), AckAlert, OP1)
    after, line = do(alert, HoldAlert, OP2, T0 + 20, reason="  guardian calling back ")
    assert after.state == "on_hold"
    assert after.hold_until == T0 + 20 + DEFAULT_HOLD_S == T0 + 20 + 900
    assert (after.hold_reason, line.detail, after.owner) == (
        "guardian calling back", "guardian calling back", "op2")


@pytest.mark.parametrize("offset", [1.0, 3600.0, MAX_HOLD_S])
def test_hold_until_within_the_next_24_hours(offset: float) -> None:
    after = go(owned(), HoldAlert, OP1, T0 + 20, reason="r", until=T0 + 20 + offset)
    assert after.hold_until == T0 + 20 + offset


@pytest.mark.parametrize("offset", [0.0, -1.0, MAX_HOLD_S + 1, math.inf, math.nan, -math.inf])
def test_hold_until_out_of_bounds_is_refused(offset: float) -> None:
    r = refused(owned(), HoldAlert, OP1, T0 + 20, reason="r", until=T0 + 20 + offset)
    assert r.code == "bad_value" and "24 h" in str(r)


@pytest.mark.parametrize("reason", ["", "   "])
def test_hold_needs_a_reason(reason: str) -> None:
    r = refused(owned(), HoldAlert, OP1, reason=reason)
    assert r.code == "bad_value" and "needs a reason" in str(r)


def test_hold_reason_is_bounded() -> None:
    r = refused(owned(), HoldAlert, OP1, reason="r" * 201)
    assert r.code == "bad_value" and "reason" in str(r) and "200" in str(r)


@pytest.mark.parametrize("cls", [HoldAlert, DispatchAlert, ResolveAlert, ResumeAlert,
                                 MarkStep])
def test_a_new_alert_cannot_be_worked_before_it_is_acknowledged(
        cls: type[AlertCommand]) -> None:
    r = refused(make_alert(), cls, SUP, **valid_fields(cls))
    assert r.code == "illegal" and "it is new" in str(r)


def test_hold_of_an_on_hold_or_dispatched_alert_is_illegal() -> None:
    on_hold = go(owned(), HoldAlert, OP1, reason="r")
    assert refused(on_hold, HoldAlert, OP1, reason="r").code == "illegal"
    sent = go(owned(), DispatchAlert, OP1, target="fire", reference="F-9")
    r = refused(sent, HoldAlert, OP1, reason="r")
    assert r.code == "illegal" and "dispatched" in str(r)


def test_resume_clears_the_hold() -> None:
    on_hold = go(owned(), HoldAlert, OP1, reason="r")
    after, line = do(on_hold, ResumeAlert, OP1, T0 + 30)
    assert (after.state, after.hold_reason, after.hold_until) == ("in_progress", "", 0.0)
    assert line.action == "resume"
    r = refused(after, ResumeAlert, OP1)
    assert r.code == "illegal" and "in progress" in str(r)


@pytest.mark.parametrize(("target", "number"), [("police", "112"), ("fire", "119")])
def test_dispatch_happy_path(target: str, number: str) -> None:
    on_hold = go(owned(), HoldAlert, OP1, reason="r")
    after, line = do(on_hold, DispatchAlert, OP1, target=target, reference=" KNPA-7 ")
    assert (after.state, after.dispatched_to, after.dispatch_ref) == (
        "dispatched", target, "KNPA-7")
    assert (after.hold_reason, after.hold_until) == ("", 0.0)
    assert line.detail == f"{target} {number} ref KNPA-7"


@pytest.mark.parametrize("target", ["ambulance", "", "Police", "112"])
def test_dispatch_needs_police_or_fire(target: str) -> None:
    r = refused(owned(), DispatchAlert, OP1, target=target, reference="R-1")
    assert r.code == "bad_value"
    assert "police or fire" in str(r) and repr(target) in str(r)


@pytest.mark.parametrize("reference", ["", "   "])
def test_dispatch_needs_a_reference(reference: str) -> None:
    r = refused(owned(), DispatchAlert, OP1, target="fire", reference=reference)
    assert r.code == "bad_value" and "fire (119) needs its reference" in str(r)


def test_dispatch_reference_is_bounded() -> None:
    ok = go(owned(), DispatchAlert, OP1, target="police", reference="r" * MAX_REFERENCE)
    assert ok.dispatch_ref == "r" * MAX_REFERENCE
    r = refused(owned(), DispatchAlert, OP1, target="police",
                reference="r" * (MAX_REFERENCE + 1))
    assert r.code == "bad_value" and f"longer than {MAX_REFERENCE}" in str(r)


@pytest.mark.parametrize("cls", [HoldAlert, DispatchAlert, ResolveAlert, MarkStep])
def test_an_owned_alert_is_worked_by_its_owner_or_a_supervisor(
        cls: type[AlertCommand]) -> None:
    alert = ready(owner=OP1) if cls is not MarkStep else owned(owner=OP1)
    fields = valid_fields(cls)
    r = refused(alert, cls, OP2, **fields)
    assert r.code == "not_owner" and "op1's" in str(r)
    mine = go(alert, cls, OP1, **fields)
    theirs = go(alert, cls, SUP, **fields)
    assert mine.state == theirs.state != "new"
    assert mine.owner == theirs.owner == "op1"  # a supervisor acting does not take it


def test_resume_of_someone_elses_hold_is_refused() -> None:
    on_hold = go(owned(owner=OP1), HoldAlert, OP1, reason="r")
    assert refused(on_hold, ResumeAlert, OP2).code == "not_owner"
    assert go(on_hold, ResumeAlert, SUP).state == "in_progress"


def test_resolve_needs_every_mandatory_step_and_lists_the_missing_ones() -> None:
    alert = go(owned(), MarkStep, OP1, step="cctv")
    alert = go(alert, MarkStep, OP1, step="log_outcome")  # optional: does not count
    r = refused(alert, ResolveAlert, OP1, outcome="child_safe", note="found")
    assert r.code == "procedure"
    assert "call_device, call_guardian, decide_dispatch" in str(r)
    assert "cctv" not in str(r) and "log_outcome" not in str(r)


@pytest.mark.parametrize("note", ["", "  \n "])
def test_resolve_needs_a_note(note: str) -> None:
    r = refused(ready(), ResolveAlert, OP1, outcome="child_safe", note=note)
    assert r.code == "bad_value" and "needs a note" in str(r)


def test_resolve_needs_a_known_outcome() -> None:
    r = refused(ready(), ResolveAlert, OP1, outcome="lost", note="n")
    assert r.code == "bad_value"
    assert all(o in str(r) for o in OUTCOMES)


@pytest.mark.parametrize("outcome", OUTCOMES)
def test_resolve_happy_path(outcome: str) -> None:
    after, line = do(ready(), ResolveAlert, OP1, T0 + 300, outcome=outcome,
                     note=" child at home ")
    assert (after.state, after.outcome, after.resolved_at, after.last_note) == (
        "resolved", outcome, T0 + 300, "child at home")
    assert (line.action, line.detail, line.note) == ("resolve", outcome, "child at home")


def test_resolve_after_dispatch() -> None:
    sent = go(ready(), DispatchAlert, OP1, target="police", reference="R-1")
    after = go(sent, ResolveAlert, OP1, outcome="handed_to_police", note="police took over")
    assert (after.state, after.dispatched_to) == ("resolved", "police")


def test_skipping_a_step_counts_and_needs_a_reason() -> None:
    alert = owned("removed")
    r = refused(alert, MarkStep, OP1, step="call_guardian", skipped=True)
    assert r.code == "bad_value" and "needs a reason" in str(r)
    after, line = do(alert, MarkStep, OP1, step="call_guardian", skipped=True,
                     note="guardian has no phone on record")
    assert (after.steps, line.detail, after.last_note) == (
        ["call_guardian"], "call_guardian skipped", "guardian has no phone on record")
    assert go(after, ResolveAlert, OP1, outcome="other", note="n").state == "resolved"


def test_mark_step_happy_path_takes_an_unowned_alert() -> None:
    alert = go(make_alert("zone_exit"), AckAlert, OP1)
    after, line = do(alert, MarkStep, OP2, step="check_trail")
    assert (after.steps, after.owner, line.detail) == (["check_trail"], "op2",
                                                       "check_trail done")


def test_mark_step_unknown_for_the_kind_or_twice() -> None:
    alert = owned("low_battery")
    r = refused(alert, MarkStep, OP1, step="cctv")  # an sos step, not a low_battery one
    assert r.code == "bad_value" and "low_battery" in str(r) and "'cctv'" in str(r)
    done = go(alert, MarkStep, OP1, step="notify_guardian")
    r = refused(done, MarkStep, OP1, step="notify_guardian")
    assert r.code == "illegal" and "already done" in str(r)


def test_notes_anywhere_but_never_empty_or_too_long() -> None:
    for alert in (make_alert(), owned(), resolved()):
        after, line = do(alert, AddNote, OP2, note=" guardian phoned ")
        assert (after.state, after.owner, after.last_note) == (alert.state, alert.owner,
                                                               "guardian phoned")
        assert (line.action, line.note) == ("note", "guardian phoned")
        r = refused(alert, AddNote, OP2, note="   ")
        assert r.code == "bad_value" and "cannot be empty" in str(r)
    r = refused(make_alert(), AddNote, OP1, note="n" * (MAX_NOTE + 1))
    assert r.code == "bad_value" and f"longer than {MAX_NOTE}" in str(r)
    assert go(make_alert(), AddNote, OP1, note="n" * MAX_NOTE).last_note == "n" * MAX_NOTE


def test_after_resolve_only_a_supervisor_reopens() -> None:
    done = resolved()
    for cls in COMMANDS:
        if cls in (AddNote, ReopenAlert):
            continue
        for actor in (OP1, SUP) if cls is not AssignAlert else (SUP,):
            r = refused(done, cls, actor, **valid_fields(cls))
            assert r.code == "illegal" and "resolved" in str(r)
    r = refused(done, ReopenAlert, OP1, note="why")
    assert r.code == "forbidden" and "only a supervisor may reopen" in str(r)


def test_reopen_needs_a_note() -> None:
    r = refused(resolved(), ReopenAlert, SUP)
    assert r.code == "bad_value" and "saying why" in str(r)


def test_reopen_resets_breaches_and_sets_new_deadlines() -> None:
    late = T0 + 3 * 3600
    done = resolved(now=late)
    done = msgspec.structs.replace(done, breaches=BREACH_ACK | BREACH_CLOSE)
    now = late + 100
    after, line = do(done, ReopenAlert, SUP, now, note="child not home after all")
    assert (after.state, after.owner, after.outcome, after.resolved_at, after.breaches) == (
        "acknowledged", "", "", 0.0, 0)
    assert (after.ack_due, after.close_due) == (now + 30, now + 600)
    assert (after.ack_due, after.close_due) == POLICY.deadlines(1, now)
    assert after.steps == done.steps  # the checklist already done stays done
    assert (line.action, line.note) == ("reopen", "child not home after all")
    assert breaches(after, now + 599) == (0, "")
    assert breaches(after, now + 601)[0] == BREACH_CLOSE
    # and it can be worked and resolved again
    again = go(go(after, TakeAlert, OP2, now + 5), ResolveAlert, OP2, now + 9,
               outcome="child_safe", note="found")
    assert again.state == "resolved"


# ------------------------------------------------------------------ fold


def trigger_for(alert: AlertView, at: float, **fields: object) -> Trigger:
    base: dict[str, object] = dict(kind=alert.kind, slot=alert.child_slot,
                                   device_id=alert.device_id, lat=37.55, lon=127.06,
                                   position_is_last_known=False, at=at)
    base.update(fields)
    return Trigger(**base)  # type: ignore[arg-type]


def test_fold_counts_and_moves_but_never_changes_state_or_owner() -> None:
    alert = go(owned(owner=OP1), HoldAlert, OP1, reason="r")
    after, line = fold(alert, trigger_for(alert, T0 + 50, battery=40))
    assert (after.state, after.owner, after.hold_until) == ("on_hold", "op1",
                                                            alert.hold_until)
    assert (after.count, after.version, after.last_actor) == (2, alert.version + 1, "device")
    assert (after.lat, after.lon, after.battery, after.last_trigger_at) == (
        37.55, 127.06, 40, T0 + 50)
    assert line == HistoryEntry("repeat", "device", T0 + 50, detail="trigger 2",
                               lat=37.55, lon=127.06)


def test_fold_with_a_last_known_position_does_not_move_the_alert() -> None:
    alert = make_alert()
    after, line = fold(alert, trigger_for(alert, T0 + 5, position_is_last_known=True))
    assert (after.lat, after.lon) == (alert.lat, alert.lon)
    assert (line.lat, line.lon, after.battery) == (None, None, -1)
    nan_fix = trigger_for(alert, T0 + 6, lat=math.nan, lon=math.nan)
    assert fold(alert, nan_fix)[0].lat == alert.lat


def test_folds_into_only_the_same_child_and_kind_while_unresolved() -> None:
    alert = owned(slot=3)
    assert folds_into(alert, trigger_for(alert, T0))
    assert not folds_into(alert, trigger_for(alert, T0, slot=4))
    assert not folds_into(alert, trigger_for(alert, T0, kind="fall"))
    for state in ("new", "acknowledged", "in_progress", "on_hold", "dispatched"):
        assert folds_into(msgspec.structs.replace(alert, state=state), trigger_for(alert, T0))
    done = resolved()
    assert not folds_into(done, trigger_for(done, T0 + 100))


# ------------------------------------------------------------------ SLA


def test_p1_not_acknowledged_in_31_s_breaches_once() -> None:
    alert = make_alert("sos")
    assert alert.ack_due == T0 + 30
    assert breaches(alert, T0 + 30) == (0, "")
    bits, reason = breaches(alert, T0 + 31)
    assert bits == BREACH_ACK and "not acknowledged in time" in reason
    escalated, line = escalate(alert, bits, reason, T0 + 31)
    assert (escalated.breaches, escalated.escalated_at, escalated.version) == (
        BREACH_ACK, T0 + 31, 2)
    assert (escalated.state, escalated.last_actor) == ("new", "engine")
    assert line == HistoryEntry("escalate", "engine", T0 + 31, detail=reason)
    assert breaches(escalated, T0 + 32) == (0, "")
    assert acked_in_time(escalated) is False


def test_acknowledged_alert_past_close_due_breaches_close() -> None:
    alert = go(make_alert("sos"), AckAlert, OP1, T0 + 5)
    assert breaches(alert, T0 + 600) == (0, "")
    bits, reason = breaches(alert, T0 + 601)
    assert bits == BREACH_CLOSE and "not resolved or dispatched in time" in reason
    assert breaches(escalate(alert, bits, reason, T0 + 601)[0], T0 + 9999) == (0, "")


def test_new_alert_past_both_deadlines_breaches_both() -> None:
    bits, reason = breaches(make_alert("sos"), T0 + 601)
    assert bits == BREACH_ACK | BREACH_CLOSE
    assert "acknowledged" in reason and "resolved" in reason


def test_on_hold_still_counts_toward_close() -> None:
    on_hold = go(owned(), HoldAlert, OP1, reason="r", until=T0 + MAX_HOLD_S)
    assert breaches(on_hold, T0 + 601)[0] == BREACH_CLOSE


def test_dispatched_alert_never_breaches_close() -> None:
    sent = go(owned(), DispatchAlert, OP1, target="police", reference="R-1")
    for later in (T0 + 601, T0 + 86400, T0 + 10**7):
        assert breaches(sent, later) == (0, "")


def test_resolved_alert_never_breaches() -> None:
    done = resolved()
    assert breaches(done, T0 + 10**7) == (0, "")
    # even one that was never acknowledged on time and was resolved from a raw state
    raw = make_alert(state="resolved", outcome="other", last_note="n")
    assert breaches(raw, T0 + 10**7) == (0, "")


@given(prio=st.integers(1, 4), dt=st.floats(0, 10 * 86400, allow_nan=False))
@settings(max_examples=200, deadline=None)
def test_breach_bits_follow_the_deadlines(prio: int, dt: float) -> None:
    sla = DEFAULT_SLA[prio]
    alert = make_alert(priority=prio)
    bits, reason = breaches(alert, T0 + dt)
    assert bits == (BREACH_ACK * (dt > sla.ack_s)) | (BREACH_CLOSE * (dt > sla.close_s))
    assert bool(reason) == bool(bits)


def test_hold_expired_brings_the_alert_back() -> None:
    on_hold = go(owned(), HoldAlert, OP1, T0 + 10, reason="waiting for call back")
    until = on_hold.hold_until
    assert hold_expired(on_hold, until - 0.001) is None
    back, line = hold_expired(on_hold, until) or (None, None)
    assert back is not None and line is not None
    assert (back.state, back.hold_reason, back.hold_until, back.owner) == (
        "in_progress", "", 0.0, "op1")
    assert (back.version, back.last_actor, back.updated_at) == (on_hold.version + 1,
                                                                "engine", until)
    assert line == HistoryEntry("hold_expired", "engine", until,
                               detail="waiting for call back")
    assert hold_expired(back, until + 1) is None
    assert hold_expired(owned(), T0 + 10**6) is None


def test_acked_in_time() -> None:
    alert = make_alert("sos")
    assert acked_in_time(alert) is None  # undecided while not late
    assert acked_in_time(go(alert, AckAlert, OP1, T0 + 30)) is True
    assert acked_in_time(go(alert, AckAlert, OP1, T0 + 31)) is False
    assert acked_in_time(go(alert, TakeAlert, OP1, T0 + 29)) is True
    late = msgspec.structs.replace(alert, breaches=BREACH_ACK)
    assert acked_in_time(late) is False
    assert acked_in_time(msgspec.structs.replace(alert, breaches=BREACH_CLOSE)) is None
    no_deadline = msgspec.structs.replace(alert, ack_due=0.0, acked_at=T0 + 10**6,
                                          acked_by="op1")
    assert acked_in_time(no_deadline) is True


# ------------------------------------------------------------------ Policy


def test_policy_deadlines() -> None:
    policy = Policy()
    assert policy.deadlines(1, 100.0) == (130.0, 700.0)
    assert policy.deadlines(2, 100.0) == (220.0, 1900.0)
    assert policy.deadlines(3, 0.0) == (300.0, 7200.0)
    assert policy.deadlines(4, 0.0) == (900.0, 28800.0)
    assert policy.deadlines(9, 0.0) == (900.0, 28800.0)  # unknown priority: the laxest
    assert {k: policy.priority_of(k) for k in KINDS} == DEFAULT_PRIORITY


def test_policy_from_settings_overrides() -> None:
    policy = Policy.from_settings({"low_battery": 3}, {"P1": [10, 60.5], "P3": (1, 2)})
    assert policy.priority_of("low_battery") == 3
    assert policy.priority_of("sos") == 1
    assert policy.sla[1] == Sla(10.0, 60.5) and policy.sla[3] == Sla(1.0, 2.0)
    assert policy.sla[2] == DEFAULT_SLA[2]
    assert policy.deadlines(1, 0.0) == (10.0, 60.5)
    assert Policy.from_settings({}, {}).priority == DEFAULT_PRIORITY


@pytest.mark.parametrize(("priorities", "sla", "names"), [
    ({"fire": 1}, {}, ["alert_priorities", "'fire'"]),
    ({"sos": 0}, {}, ["alert_priorities.sos", "1 to 4", "0"]),
    ({"sos": 5}, {}, ["alert_priorities.sos", "5"]),
    ({"fall": 1.0}, {}, ["alert_priorities.fall", "1.0"]),
    ({"fall": "1"}, {}, ["alert_priorities.fall", "'1'"]),
    ({}, {"P5": [1, 2]}, ["alert_sla", "'P5'", "P1..P4"]),
    ({}, {"p1": [1, 2]}, ["alert_sla", "'p1'"]),
    ({}, {"P1": [1]}, ["alert_sla.P1", "[1]"]),
    ({}, {"P2": [1, 2, 3]}, ["alert_sla.P2"]),
    ({}, {"P2": [0, 60]}, ["alert_sla.P2", "positive"]),
    ({}, {"P3": [-1, 60]}, ["alert_sla.P3"]),
    ({}, {"P4": [30, math.inf]}, ["alert_sla.P4"]),
    ({}, {"P4": [math.nan, 60]}, ["alert_sla.P4"]),
    ({}, {"P1": ["30", 60]}, ["alert_sla.P1"]),
    ({}, {"P1": "ab"}, ["alert_sla.P1"]),
])
def test_policy_from_settings_errors_name_the_key(priorities: dict, sla: dict,
                                                  names: list[str]) -> None:
    with pytest.raises(ValueError) as info:
        Policy.from_settings(priorities, sla)
    for name in names:
        assert name in str(info.value)


# ------------------------------------------------------------------ the queue


def test_book_orders_unresolved_first_then_priority_then_oldest() -> None:
    book = AlertBook()
    rows = [
        make_alert("low_battery", alert_id=1, opened_at=T0),          # new P4
        make_alert("sos", alert_id=2, opened_at=T0 + 20),             # new P1, younger
        make_alert("sos", alert_id=3, opened_at=T0 + 10),             # new P1, older
        make_alert("zone_exit", alert_id=4, opened_at=T0 + 5),        # new P2
        msgspec.structs.replace(make_alert("sos", alert_id=5, opened_at=T0 - 100),
                                state="resolved"),                     # resolved P1 oldest
        msgspec.structs.replace(make_alert("low_battery", alert_id=6, opened_at=T0 + 1),
                                state="resolved"),
    ]
    book.reset(rows)
    assert [a.id for a in book.rows] == [3, 2, 4, 1, 5, 6]
    assert len(book) == 6 and book.get(4) is rows[3] and book.get(99) is None
    assert book.unresolved_slots() == [0, 0, 0, 0]


alert_rows = st.builds(
    lambda i, kind, state, prio, dt: msgspec.structs.replace(
        make_alert(kind, alert_id=i, slot=i, opened_at=T0 + dt, priority=prio), state=state),
    st.integers(0, 10**6), st.sampled_from(KINDS), st.sampled_from(STATES),
    st.integers(1, 4), st.integers(0, 10**5))


@given(st.lists(alert_rows, max_size=30, unique_by=lambda a: a.id))
@settings(max_examples=200, deadline=None)
def test_book_order_properties(rows: list[AlertView]) -> None:
    book = AlertBook()
    book.reset(rows)
    assert sorted(a.id for a in book.rows) == sorted(a.id for a in rows)
    ranks = [a.state == "resolved" for a in book.rows]
    assert ranks == sorted(ranks), "a resolved alert above an unresolved one"
    for state in STATES:
        same = [(a.priority, a.opened_at) for a in book.rows if a.state == state]
        assert same == sorted(same), f"{state}: not by priority, then oldest first"
    assert book.unresolved_slots() == [a.child_slot for a in book.rows
                                       if a.state != "resolved"]
    assert [sort_key(a) for a in book.rows] == sorted(sort_key(a) for a in rows)


def test_book_new_above_worked_at_equal_priority() -> None:
    worked = go(make_alert("sos", alert_id=1, opened_at=T0), TakeAlert, OP1)
    fresh = make_alert("sos", alert_id=2, opened_at=T0 + 50)
    book = AlertBook()
    book.reset([worked, fresh])
    assert [a.id for a in book.rows] == [2, 1]


@given(st.lists(st.tuples(st.integers(1, 4), st.integers(1, 20), st.sampled_from(STATES)),
                max_size=60))
@settings(max_examples=200, deadline=None)
def test_book_never_replaces_a_newer_version(updates: list[tuple[int, int, str]]) -> None:
    book = AlertBook()
    newest: dict[int, AlertView] = {}
    for alert_id, version, state in updates:
        row = msgspec.structs.replace(make_alert(alert_id=alert_id), version=version,
                                      state=state)
        book.upsert(row)
        if alert_id not in newest or newest[alert_id].version <= version:
            newest[alert_id] = row
    assert {a.id: a for a in book.rows} == newest
    assert all(book.get(i) == a for i, a in newest.items())
    assert [sort_key(a) for a in book.rows] == sorted(sort_key(a) for a in newest.values())


def test_book_upsert_keeps_the_newer_copy_against_a_late_reply() -> None:
    book = AlertBook()
    v1 = make_alert()
    v2 = go(v1, AckAlert, OP1)
    book.upsert(v2)
    book.upsert(v1)
    assert book.get(1) is v2 and book.rows == [v2]
    v3 = go(v2, TakeAlert, OP1)
    book.upsert(v3)
    assert book.rows == [v3]


@pytest.mark.parametrize(("place", "gu"), [
    ("성동구 성수동1가", "성동구"), ("강남구", "강남구"), ("서울 성동구", ""),
    ("Seongdong-gu Seongsu", ""), ("", ""), ("수원시 영통구", ""),
])
def test_district(place: str, gu: str) -> None:
    assert district(make_alert(place=place)) == gu
