"""Scoring trainees against a training scenario: pure, deterministic, Qt-free.

The training engine plays a ``models.scenario.Scenario`` on an isolated bus
and hands over what it injected (``Injected``), the training store's alerts
and each alert's history. From those alone this module says, per trainee and
per expected response, what was done, when, by whom, and whether it passed.

The rules (a trainer must be able to explain every line of a report):

- **Matching.** An incident's alert is the earliest alert of the same
  device and of the kind the incident raises (``scenario.RAISES``) opened no
  earlier than 2 s before the injection (clocks on one machine, a frame
  stamped a moment early) and within ``MATCH_WINDOW_S`` of it; an alert
  answers one incident only. A second SOS press has no alert of its own: it
  maps to its ``of`` incident's alert, which it folded into.
- **Times** are seconds from the incident's injection (``Injected.at``), so
  a zone exit's include the geofence's dwell, as the scenario's deadlines do.
- **What counts as done.** Acknowledged: the first ``ack``, ``take`` or
  ``assign`` line (each acknowledges an unacknowledged alert). Cameras: the
  first ``cameras`` line. Steps: ``step`` lines, ticked or skipped. Outcome:
  for "dispatched" the first ``dispatch`` (and its target); for a resolve
  outcome the first ``resolve`` (and its outcome); a dispatch before it is
  wrong unless the outcome is a hand-over (``handed_to_*``). Noted: the first
  line with a note written at or after the second press. Lines by the
  system (``engine``, ``device``) are nobody's work: an alert the engine
  cleared by itself was not resolved by anyone.
- **Credit.** A trainee is credited only with lines whose actor is that
  trainee. A response done by someone else is ``other`` (shown with who and
  when) and is neither passed nor failed for this trainee. An incident whose
  alert this trainee never touched while someone else did is "worked by" them:
  not missed, and not counted in this trainee's score, even if they left part
  of it undone (that is their miss).
- **Missed** means an expected response never done, by anyone, by the end of
  the session (no alert raised counts too). A missed response counts against
  every trainee who did not leave the incident to someone else, because
  nobody on the desk did it.
- **Not run**: an incident the engine never injected (the session stopped
  early) is scored for nobody.
- The overall percentage is passed rows over scored rows (``pass``, ``fail``
  and ``missed`` rows of incidents not worked by others); None when there
  is nothing of this trainee's to score.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Literal

from models.messages import AlertView, HistoryEntry
from models.scenario import DISPATCHED, RAISES, Expect, Scenario

MATCH_SLACK_S = 2.0
DEFAULT_MATCH_WINDOW_S = 120.0
# A zone exit is raised only after the child is seen outside for the zone
# kind's dwell (30-60 s by default) and the simulated child has run past the
# fence's hysteresis: give it longer.
MATCH_WINDOW_S: dict[str, float] = {"zone_exit": 300.0}

SYSTEM_ACTORS = frozenset({"", "engine", "device"})
ACK_ACTIONS = frozenset({"ack", "take", "assign"})
CAMERAS_ACTION = "cameras"  # written by the training engine when a console opens cameras

Measure = Literal["ack", "cameras", "steps", "outcome", "noted"]
RowStatus = Literal["pass", "fail", "other", "missed", "not_run"]
IncidentStatus = Literal["passed", "failed", "worked_by", "missed", "not_run"]
SCORED: frozenset[str] = frozenset({"pass", "fail", "missed"})


@dataclass(frozen=True, slots=True)
class Injected:
    """One incident as the training engine injected it."""

    incident: str  # the scenario incident id
    kind: str  # its kind (sos, second_sos, ...)
    at: float  # epoch seconds on the session's (replay) clock
    device_id: str  # "" for camera_offline
    camera: int = 0


@dataclass(frozen=True, slots=True)
class Row:
    """One expected response as one trainee is scored on it.

    ``seconds`` is from the incident to when it was done (by ``by``, who may
    be someone else for an ``other`` row); None when nobody did it.
    ``deadline_s`` is None for "by the end of the session".
    """

    incident: str
    alert_id: int | None
    measure: Measure
    expected: str  # the expectation in words
    deadline_s: float | None
    seconds: float | None
    by: str
    status: RowStatus
    reason: str
    action: str = ""  # the history action that did it (ack, take, dispatch, resolve, ...)
    correct: bool | None = None  # outcome rows: the right outcome, in time or not
    done: int = 0  # steps rows: required steps this trainee did
    required: int = 0  # steps rows: required steps

    @property
    def passed(self) -> bool:
        return self.status == "pass"

    @property
    def scored(self) -> bool:
        return self.status in SCORED


@dataclass(frozen=True, slots=True)
class IncidentScore:
    incident: str
    kind: str
    alert_id: int | None
    status: IncidentStatus
    reason: str
    worked_by: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Totals:
    """One trainee's figures; times in seconds, None when there were none."""

    ack_mean_s: float | None
    ack_worst_s: float | None
    cameras_mean_s: float | None
    cameras_worst_s: float | None
    steps_done: int
    steps_required: int
    dispatch_mean_s: float | None
    dispatch_worst_s: float | None
    outcomes_correct: int
    outcomes_expected: int
    missed: tuple[str, ...]  # incident ids
    worked_by_others: tuple[str, ...]  # incident ids
    rows_passed: int
    rows_scored: int
    percent: float | None


@dataclass(frozen=True, slots=True)
class TraineeScore:
    trainee: str
    scenario: str  # the scenario id
    rows: tuple[Row, ...]
    incidents: tuple[IncidentScore, ...]
    totals: Totals


# ------------------------------------------------------------------ matching


def match(injected: Sequence[Injected], alerts: Sequence[AlertView],
          scenario: Scenario | None = None) -> dict[str, int | None]:
    """The alert each injected incident raised (None: none, or it raises none).

    A second press maps to its ``of`` incident's alert when ``scenario`` is
    given, else to that of the latest SOS injected before it on the same
    device (the same thing for any valid scenario without a third SOS of
    that child in between).
    """
    found: dict[str, int | None] = {}
    claimed: set[int] = set()
    presses = [i for i in injected if i.kind == "second_sos"]
    for inc in sorted((i for i in injected if i.kind != "second_sos"),
                      key=lambda i: (i.at, i.incident)):
        alert = _first_alert(inc, alerts, claimed)
        found[inc.incident] = alert.id if alert is not None else None
        if alert is not None:
            claimed.add(alert.id)
    for press in presses:
        found[press.incident] = found.get(_first_press(press, injected, scenario))
    return found


def _first_alert(inc: Injected, alerts: Sequence[AlertView], claimed: set[int]
                 ) -> AlertView | None:
    kind = RAISES.get(inc.kind)  # type: ignore[call-overload]  # any str may come in
    if kind is None or not inc.device_id:
        return None
    window = MATCH_WINDOW_S.get(kind, DEFAULT_MATCH_WINDOW_S)
    fits = [a for a in alerts
            if a.device_id == inc.device_id and a.kind == kind and a.id not in claimed
            and inc.at - MATCH_SLACK_S <= a.opened_at <= inc.at + window]
    return min(fits, key=lambda a: (a.opened_at, a.id), default=None)


def _first_press(press: Injected, injected: Sequence[Injected],
                 scenario: Scenario | None) -> str:
    if scenario is not None:
        try:
            return scenario.incident(press.incident).of or ""
        except KeyError:
            pass
    earlier = [i for i in injected if i.kind == "sos" and i.device_id == press.device_id
               and i.at <= press.at]
    return max(earlier, key=lambda i: i.at).incident if earlier else ""


# ------------------------------------------------------------------ scoring


def score(scenario: Scenario, injected: Sequence[Injected], alerts: Sequence[AlertView],
          histories: Mapping[int, Sequence[HistoryEntry]], trainee: str) -> TraineeScore:
    """Score ``trainee`` on every expectation of ``scenario`` (rules: module doc)."""
    by_incident = {i.incident: i for i in injected}
    matched = match(injected, alerts, scenario)
    alerts_by_id = {a.id: a for a in alerts}
    rows: list[Row] = []
    incidents: list[IncidentScore] = []
    for expect in scenario.expects:
        inc = by_incident.get(expect.incident)
        alert_id = matched.get(expect.incident)
        lines = _ordered(histories.get(alert_id, ())) if alert_id is not None else []
        alert = alerts_by_id.get(alert_id) if alert_id is not None else None
        ctx = _Context(trainee, inc, alert_id, alert, lines)
        own = [_row(ctx, expect, m) for m in _measures(expect)]
        rows += own
        incidents.append(_incident(ctx, expect, scenario, own))
    return TraineeScore(trainee, scenario.id, tuple(rows), tuple(incidents),
                        _totals(rows, incidents))


def score_all(scenario: Scenario, injected: Sequence[Injected], alerts: Sequence[AlertView],
              histories: Mapping[int, Sequence[HistoryEntry]],
              trainees: Iterable[str] | None = None) -> list[TraineeScore]:
    """Every trainee's score; by default everyone who acted on any alert."""
    names = sorted(trainees) if trainees is not None else people(histories)
    return [score(scenario, injected, alerts, histories, t) for t in names]


def people(histories: Mapping[int, Sequence[HistoryEntry]]) -> list[str]:
    """Everyone (not the system) with a line in any history, sorted."""
    return sorted({h.actor for lines in histories.values() for h in lines
                   if h.actor not in SYSTEM_ACTORS})


@dataclass(frozen=True, slots=True)
class _Context:
    """What every measure of one expectation needs."""

    trainee: str
    injected: Injected | None
    alert_id: int | None
    alert: AlertView | None
    lines: list[HistoryEntry]

    @property
    def at(self) -> float:
        return self.injected.at if self.injected is not None else 0.0

    def since(self, t: float) -> float:
        """Seconds from the incident; never negative (the matching slack)."""
        return round(max(0.0, t - self.at), 3)

    def human(self) -> list[HistoryEntry]:
        return [h for h in self.lines if h.actor not in SYSTEM_ACTORS]

    def touched_by(self) -> tuple[bool, tuple[str, ...]]:
        """(whether the trainee has any line on the alert, who else has)."""
        actors = [h.actor for h in self.human()]
        others = tuple(dict.fromkeys(a for a in actors if a != self.trainee))
        return self.trainee in actors, others


def _ordered(lines: Iterable[HistoryEntry]) -> list[HistoryEntry]:
    return sorted(lines, key=lambda h: h.at)


def _measures(expect: Expect) -> list[Measure]:
    out: list[Measure] = []
    if expect.ack_within_s is not None:
        out.append("ack")
    if expect.cameras_within_s is not None:
        out.append("cameras")
    if expect.steps:
        out.append("steps")
    if expect.outcome is not None:
        out.append("outcome")
    if expect.noted_within_s is not None:
        out.append("noted")
    return out


def _secs(v: float | None) -> str:
    if v is None:
        return "by the end of the session"
    return f"within {v:.0f} s"


def _expected(expect: Expect, measure: Measure) -> str:
    match measure:
        case "ack":
            return f"acknowledge {_secs(expect.ack_within_s)}"
        case "cameras":
            return f"open cameras {_secs(expect.cameras_within_s)}"
        case "steps":
            return "SOP steps: " + ", ".join(expect.steps)
        case "outcome":
            what = (f"dispatch to {expect.dispatch_to or 'police or fire'}"
                    if expect.outcome == DISPATCHED else f"resolve as {expect.outcome}")
            return f"{what} {_secs(expect.outcome_within_s)}"
        case "noted":
            return f"note the second press {_secs(expect.noted_within_s)}"


def _row(ctx: _Context, expect: Expect, measure: Measure) -> Row:
    expected = _expected(expect, measure)
    deadline = {"ack": expect.ack_within_s, "cameras": expect.cameras_within_s,
                "steps": None, "outcome": expect.outcome_within_s,
                "noted": expect.noted_within_s}[measure]
    base = Row(expect.incident, ctx.alert_id, measure, expected, deadline, None, "",
               "missed", "")
    if ctx.injected is None:
        return replace(base, status="not_run",
                        reason="never injected (the session stopped before it?)")
    if ctx.alert_id is None:
        return replace(base, reason="no alert was raised for it")
    if measure == "steps":
        return _steps_row(ctx, expect, base)
    if measure == "outcome":
        return _outcome_row(ctx, expect, base)
    line = _first_line(ctx, measure)
    if line is None:
        return replace(base, reason=_never(measure))
    return _judge(ctx, base, line, wrong="")


def _never(measure: Measure) -> str:
    return {"ack": "never acknowledged", "cameras": "no cameras were opened for it",
            "noted": "no note after the second press", "steps": "no steps done",
            "outcome": "never resolved or dispatched"}[measure]


def _first_line(ctx: _Context, measure: Measure) -> HistoryEntry | None:
    """The trainee's own first line for ``measure``, else anyone's."""
    if measure == "ack":
        # only one acknowledgement exists: whoever gave it first
        return next((h for h in ctx.human() if h.action in ACK_ACTIONS), None)
    if measure == "cameras":
        lines = [h for h in ctx.human() if h.action == CAMERAS_ACTION]
    else:  # noted: any line with a note, from the second press on
        lines = [h for h in ctx.human() if h.note.strip() and h.at >= ctx.at]
    mine = [h for h in lines if h.actor == ctx.trainee]
    return (mine or lines or [None])[0]


def _judge(ctx: _Context, base: Row, line: HistoryEntry, wrong: str) -> Row:
    """A row for a response done by ``line``: other, fail (late or ``wrong``), pass."""
    seconds = ctx.since(line.at)
    row = replace(base, seconds=seconds, by=line.actor, action=line.action)
    if base.measure == "outcome":
        row = replace(row, correct=not wrong)
    when = f"at {seconds:.0f} s"
    if line.actor != ctx.trainee:
        return replace(row, status="other",
                        reason=f"done by {line.actor} {when}" + (f" ({wrong})" if wrong else ""))
    if wrong:
        return replace(row, status="fail", reason=f"{wrong} {when}")
    if base.deadline_s is not None and seconds > base.deadline_s:
        return replace(row, status="fail",
                        reason=f"late: {seconds:.0f} s, the deadline was {base.deadline_s:.0f} s")
    return replace(row, status="pass", reason=f"done {when}")


def _steps_row(ctx: _Context, expect: Expect, base: Row) -> Row:
    """Steps pass when every required step is done and all by this trainee."""
    done: dict[str, HistoryEntry] = {}
    for h in ctx.human():
        if h.action == "step":
            step = h.detail.rsplit(" ", 1)[0] if " " in h.detail else h.detail
            done.setdefault(step, h)
    required = expect.steps
    mine = [s for s in required if s in done and done[s].actor == ctx.trainee]
    theirs = [s for s in required if s in done and done[s].actor != ctx.trainee]
    undone = [s for s in required if s not in done]
    base = replace(base, done=len(mine), required=len(required))
    if not mine and not theirs:
        return replace(base, reason="none of the steps was done")
    last = max((done[s] for s in required if s in done), key=lambda h: h.at)
    by = ", ".join(dict.fromkeys(done[s].actor for s in required if s in done))
    row = replace(base, seconds=ctx.since(last.at) if not undone else None, by=by)
    parts = [f"{len(mine)} of {len(required)} by the trainee"]
    if theirs:
        parts.append("by others: " + ", ".join(f"{s} ({done[s].actor})" for s in theirs))
    if undone:
        parts.append("not done: " + ", ".join(undone))
    reason = "; ".join(parts)
    if not mine:
        return replace(row, status="other", reason=reason)
    return replace(row, status="fail" if theirs or undone else "pass", reason=reason)


def _outcome_row(ctx: _Context, expect: Expect, base: Row) -> Row:
    human = ctx.human()
    dispatch = next((h for h in human if h.action == "dispatch"), None)
    resolve = next((h for h in human if h.action == "resolve"), None)
    if expect.outcome == DISPATCHED:
        if dispatch is not None:
            target = _target(dispatch, ctx.alert)
            wrong = (f"dispatched to {target}, expected {expect.dispatch_to}"
                     if expect.dispatch_to and target != expect.dispatch_to else "")
            return _judge(ctx, base, dispatch, wrong)
        if resolve is not None:
            return _judge(ctx, base, resolve,
                          f"resolved as {resolve.detail or '?'} without a dispatch")
        return replace(base, reason=_never_closed(ctx))
    hand_over = (expect.outcome or "").startswith("handed_to_")
    if dispatch is not None and not hand_over and (resolve is None or dispatch.at <= resolve.at):
        return _judge(ctx, base, dispatch, f"dispatched to {_target(dispatch, ctx.alert)}, "
                                           f"expected resolved as {expect.outcome}")
    if resolve is not None:
        wrong = ("" if resolve.detail == expect.outcome
                 else f"resolved as {resolve.detail or '?'}, expected {expect.outcome}")
        return _judge(ctx, base, resolve, wrong)
    return replace(base, reason=_never_closed(ctx))


def _never_closed(ctx: _Context) -> str:
    cleared = any(h.action == "resolve" and h.actor == "engine" for h in ctx.lines)
    return _never("outcome") + ("; the engine cleared it by itself" if cleared else "")


def _target(line: HistoryEntry, alert: AlertView | None) -> str:
    """police | fire from a dispatch line ("police 112 ref ..."), else the alert's."""
    word = line.detail.split(" ", 1)[0] if line.detail else ""
    return word or (alert.dispatched_to if alert is not None else "") or "?"


# ------------------------------------------------------------------ incidents and totals


def _incident(ctx: _Context, expect: Expect, scenario: Scenario, rows: list[Row]
              ) -> IncidentScore:
    kind = scenario.incident(expect.incident).kind
    mine, others = ctx.touched_by()
    status, reason = _incident_status(ctx.injected is not None, mine, others, rows)
    return IncidentScore(expect.incident, kind, ctx.alert_id, status, reason, others)


def _incident_status(injected: bool, mine: bool, others: tuple[str, ...], rows: list[Row]
                     ) -> tuple[IncidentStatus, str]:
    """The incident's verdict for the trainee, in the order of the module doc."""
    if not injected:
        return "not_run", "never injected"
    if not mine and others:
        return "worked_by", "worked by " + ", ".join(others)
    missed = [r for r in rows if r.status == "missed"]
    if missed:
        return "missed", (f"not done by anyone: {', '.join(r.measure for r in missed)} "
                          f"({missed[0].reason})")
    failed = [r.measure for r in rows if r.status == "fail"]
    if failed:
        return "failed", "failed: " + ", ".join(failed)
    return "passed", "every response of the trainee's passed"


def _times(rows: Iterable[Row]) -> tuple[float | None, float | None]:
    values = [r.seconds for r in rows if r.seconds is not None]
    if not values:
        return None, None
    return round(statistics.fmean(values), 1), max(values)


def _totals(rows: list[Row], incidents: list[IncidentScore]) -> Totals:
    """The trainee's figures over the rows they are scored on."""
    away = {i.incident for i in incidents if i.status == "worked_by"}
    scored = [r for r in rows if r.scored and r.incident not in away]
    done = [r for r in scored if r.status in ("pass", "fail")]  # the trainee's own
    ack = _times(r for r in done if r.measure == "ack")
    cams = _times(r for r in done if r.measure == "cameras")
    disp = _times(r for r in done if r.measure == "outcome" and r.action == "dispatch"
                  and r.correct)
    steps = [r for r in scored if r.measure == "steps"]
    outcomes = [r for r in scored if r.measure == "outcome"]
    correct = [r for r in outcomes if r.correct]
    passed = sum(r.passed for r in scored)
    return Totals(
        ack_mean_s=ack[0], ack_worst_s=ack[1], cameras_mean_s=cams[0],
        cameras_worst_s=cams[1], steps_done=sum(r.done for r in steps),
        steps_required=sum(r.required for r in steps), dispatch_mean_s=disp[0],
        dispatch_worst_s=disp[1], outcomes_correct=len(correct),
        outcomes_expected=len(outcomes),
        missed=tuple(i.incident for i in incidents if i.status == "missed"),
        worked_by_others=tuple(sorted(away)), rows_passed=passed, rows_scored=len(scored),
        percent=round(100.0 * passed / len(scored), 1) if scored else None)
