"""Shift KPIs, the escalation list and the hand-over, as pure functions.

The supervisor's panel shows what one ``ShiftReport`` says about a shift:
how fast alerts were acknowledged and closed, how many came in per hour
(by kind, by district), how often the acknowledgement SLA was met, which
unresolved alerts need a supervisor now, who carries how much, and what the
next shift inherits. Everything here is a function of the alerts and a
``now`` the caller passes in, so tests pin the clock and the panel can
recount every second without asking the engine again; no Qt, so the same
numbers can go into a report script or a benchmark.

Reason codes and column keys are plain identifiers: the Qt side turns them
into translatable words.
"""

from __future__ import annotations

import csv
import html
import io
import math
import zlib
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime

from models.alerts import (
    BREACH_ACK,
    BREACH_CLOSE,
    KINDS,
    WORKERS,
    acked_in_time,
    district,
    sort_key,
)
from models.messages import AlertView, StaffLoad

HOUR_S = 3600.0
PRIORITIES = (1, 2, 3, 4)
#: An alert is SLA-critical when less than this share of its time budget is left.
CRITICAL_SHARE = 0.25
#: Compliance at or above TARGET is good, at or above WARN needs watching.
SLA_TARGET = 0.95
SLA_WARN = 0.80
UNKNOWN_DISTRICT = "?"
#: Histogram bin widths a person reads without arithmetic (seconds).
NICE_STEPS_S = (1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 14400, 28800)

REASON_TEXT: dict[str, str] = {
    "ack_missed": "ack SLA missed",
    "close_missed": "close SLA missed",
    "ack_overdue": "ack overdue",
    "close_overdue": "close overdue",
    "ack_at_risk": "ack due soon",
    "close_at_risk": "close due soon",
}
KIND_TEXT: dict[str, str] = {"sos": "SOS", "fall": "Fall", "removed": "Removed",
                             "zone_exit": "Zone exit", "low_battery": "Low battery",
                             "not_arrived": "Not arrived", "not_departed": "Not departed",
                             "lost_signal": "Lost signal", "unusual_movement": "Unusual movement"}


# ------------------------------------------------------------------ durations


def ack_times(alerts: Iterable[AlertView]) -> list[float]:
    """Seconds from opening to acknowledgement, one per acknowledged alert."""
    return [max(0.0, a.acked_at - a.opened_at) for a in alerts if a.acked_at > 0]


def resolve_time(a: AlertView) -> float | None:
    """Seconds from opening until the alert left the operators' hands: resolved,
    or handed to police/fire (the last update of a dispatched alert is its
    dispatch, since nothing but a reopen follows it). None while still open."""
    if a.state == "resolved" and a.resolved_at > 0:
        return max(0.0, a.resolved_at - a.opened_at)
    if a.state == "dispatched" and a.updated_at > 0:
        return max(0.0, a.updated_at - a.opened_at)
    return None


def resolve_times(alerts: Iterable[AlertView]) -> list[float]:
    """``resolve_time`` of every alert that has one."""
    return [t for a in alerts if (t := resolve_time(a)) is not None]


@dataclass(frozen=True, slots=True)
class Histogram:
    """Counts of samples in uniform bins ``[edges[i], edges[i + 1])`` from 0,
    and ``overflow``: how many samples lie at or beyond ``edges[-1]``."""

    edges: list[float]
    counts: list[int]
    overflow: int = 0

    @property
    def step(self) -> float:
        return self.edges[1] - self.edges[0] if len(self.edges) > 1 else 0.0

    @property
    def total(self) -> int:
        return sum(self.counts) + self.overflow


def histogram(samples: Sequence[float], max_bins: int = 12, cover: float = 0.95) -> Histogram:
    """Bins of a round width (10 s, 1 min, 15 min, …), at most ``max_bins`` of
    them, spanning the ``cover`` quantile of the samples; the few beyond are
    counted in ``overflow`` rather than squeezing every other bar into one
    (one alert left open for hours must not hide how the rest went)."""
    values = sorted(max(0.0, s) for s in samples if math.isfinite(s))
    if not values:
        return Histogram([], [])
    top = values[min(len(values) - 1, max(0, math.ceil(cover * len(values)) - 1))]
    step = next((float(s) for s in NICE_STEPS_S if math.floor(top / s) + 1 <= max_bins),
                float(NICE_STEPS_S[-1]))
    n = math.floor(top / step) + 1
    counts = [0] * n
    overflow = 0
    for v in values:
        i = math.floor(v / step)
        if i < n:
            counts[i] += 1
        else:
            overflow += 1
    return Histogram([i * step for i in range(n + 1)], counts, overflow)


def clock(seconds: float) -> str:
    """A duration as a countdown shows it: "0:45", "12:05", "1:02:03" (sign dropped)."""
    s = round(abs(seconds))
    h, rest = divmod(s, 3600)
    m, sec = divmod(rest, 60)
    return f"{h}:{m:02d}:{sec:02d}" if h else f"{m}:{sec:02d}"


def duration_label(seconds: float) -> str:
    """A short axis label: "30s", "2m", "1h30m"."""
    s = round(seconds)
    if s < 60:
        return f"{s}s"
    if s < 3600:
        m, sec = divmod(s, 60)
        return f"{m}m{sec:02d}s" if sec else f"{m}m"
    h, rest = divmod(s, 3600)
    return f"{h}h{rest // 60:02d}m" if rest // 60 else f"{h}h"


# ------------------------------------------------------------------ per hour


@dataclass(frozen=True, slots=True)
class HourlyCounts:
    """Alerts opened per hour of the shift, by some key (kind, district).

    ``starts[i]`` is the epoch second bin ``i`` starts at; every list in
    ``counts`` has one number per bin. Keys with no alert are left out.
    """

    starts: list[float]
    counts: dict[str, list[int]]

    def totals(self) -> list[tuple[str, int]]:
        """(key, alerts over the whole shift), most first, then by key."""
        return sorted(((k, sum(v)) for k, v in self.counts.items()), key=lambda kv: (-kv[1], kv[0]))


def hour_starts(since: float, now: float) -> list[float]:
    """One bin per started hour from ``since`` to ``now`` (at least one)."""
    n = max(1, math.ceil((now - since) / HOUR_S))
    return [since + i * HOUR_S for i in range(n)]


def per_hour(alerts: Iterable[AlertView], since: float, now: float,
             key: Callable[[AlertView], str], order: Sequence[str] = ()) -> HourlyCounts:
    """Alerts opened in ``[since, now]`` counted per hour bin and ``key``.
    Keys named in ``order`` come first in that order, the rest sorted."""
    starts = hour_starts(since, now)
    counts: dict[str, list[int]] = {}
    for a in alerts:
        if not since <= a.opened_at <= now:
            continue
        i = min(len(starts) - 1, int((a.opened_at - since) // HOUR_S))
        counts.setdefault(key(a), [0] * len(starts))[i] += 1
    rank = {k: i for i, k in enumerate(order)}
    ordered = sorted(counts, key=lambda k: (rank.get(k, len(rank)), k))
    return HourlyCounts(starts, {k: counts[k] for k in ordered})


def per_hour_by_kind(alerts: Iterable[AlertView], since: float, now: float) -> HourlyCounts:
    return per_hour(alerts, since, now, lambda a: a.kind, KINDS)


def per_hour_by_district(alerts: Iterable[AlertView], since: float, now: float) -> HourlyCounts:
    return per_hour(alerts, since, now, lambda a: district(a) or UNKNOWN_DISTRICT)


# ------------------------------------------------------------------ SLA


@dataclass(frozen=True, slots=True)
class Compliance:
    """Acknowledged-in-time among decided alerts; ``pending`` are neither
    acknowledged nor late yet and count for nothing (as control rooms count)."""

    met: int = 0
    decided: int = 0
    pending: int = 0

    @property
    def rate(self) -> float | None:
        return self.met / self.decided if self.decided else None

    @property
    def level(self) -> str:
        """"good", "warn", "bad", or "none" with nothing decided: a style, not a colour."""
        rate = self.rate
        if rate is None:
            return "none"
        return "good" if rate >= SLA_TARGET else "warn" if rate >= SLA_WARN else "bad"


def sla_compliance(alerts: Iterable[AlertView]) -> Compliance:
    met = decided = pending = 0
    for a in alerts:
        verdict = acked_in_time(a)
        if verdict is None:
            pending += 1
        else:
            decided += 1
            met += verdict
    return Compliance(met, decided, pending)


def sla_by_priority(alerts: Iterable[AlertView]) -> dict[int, Compliance]:
    """``sla_compliance`` per priority, every priority 1–4 present."""
    groups: dict[int, list[AlertView]] = {p: [] for p in PRIORITIES}
    for a in alerts:
        groups.setdefault(a.priority, []).append(a)
    return {p: sla_compliance(groups[p]) for p in sorted(groups)}


# ------------------------------------------------------------------ escalation


@dataclass(frozen=True, slots=True)
class Escalation:
    """An unresolved alert a supervisor should look at, and why.

    ``due`` names the deadline that is running ("ack" while nobody has
    acknowledged it, then "close"; "" once dispatched: help is on its way
    and no SLA runs), ``deadline`` is it in epoch seconds (0 when none), and
    ``seconds_left`` is measured from the ``now`` the list was made at
    (negative: overdue). ``left_at`` recounts it for a later ``now``.
    """

    alert: AlertView
    reasons: tuple[str, ...]
    due: str
    deadline: float
    seconds_left: float | None

    @property
    def id(self) -> int:
        return self.alert.id

    @property
    def overdue(self) -> bool:
        return bool(self.alert.breaches) or (self.seconds_left is not None
                                             and self.seconds_left < 0)

    def left_at(self, now: float) -> float | None:
        return self.deadline - now if self.deadline else None


def _running(a: AlertView) -> list[tuple[str, float, int]]:
    """The SLA deadlines still running for ``a``: (name, deadline, breach bit)."""
    out = []
    if a.state == "new" and a.ack_due:
        out.append(("ack", a.ack_due, BREACH_ACK))
    if a.state not in ("dispatched", "resolved") and a.close_due:
        out.append(("close", a.close_due, BREACH_CLOSE))
    return out


def escalation(a: AlertView, now: float) -> Escalation | None:
    """``a`` as an escalation, or None when it is resolved or comfortably in time.

    The time budget of a deadline is counted from ``opened_at``: after a
    reopen that overstates it, so a reopened alert turns critical a little
    early, never late.
    """
    if a.state == "resolved":
        return None
    reasons = []
    if a.breaches & BREACH_ACK:
        reasons.append("ack_missed")
    if a.breaches & BREACH_CLOSE:
        reasons.append("close_missed")
    running = _running(a)
    for name, deadline, bit in running:
        if a.breaches & bit:
            continue
        left = deadline - now
        if left < 0:
            reasons.append(f"{name}_overdue")
        elif left <= CRITICAL_SHARE * max(0.0, deadline - a.opened_at):
            reasons.append(f"{name}_at_risk")
    if not reasons:
        return None
    due, deadline = (running[0][0], running[0][1]) if running else ("", 0.0)
    return Escalation(a, tuple(reasons), due, deadline, deadline - now if deadline else None)


def urgency(e: Escalation) -> tuple[int, int, int, float, float]:
    """Overdue before at risk; within each, alerts whose clock still runs
    before those already handed to police/fire (help is on its way); then
    priority; then least time left (most overdue first); then the oldest."""
    running = e.seconds_left is not None
    left = e.seconds_left if e.seconds_left is not None else 0.0
    return (0 if e.overdue else 1, 0 if running else 1, e.alert.priority, left,
            e.alert.opened_at)


def escalations(alerts: Iterable[AlertView], now: float) -> list[Escalation]:
    """Every escalated or SLA-critical unresolved alert, most urgent first."""
    return sorted((e for a in alerts if (e := escalation(a, now)) is not None), key=urgency)


# ------------------------------------------------------------------ staff


@dataclass(frozen=True, slots=True)
class OperatorLoad:
    """One person's share of the open work. ``signed_in_at`` is 0 for an owner
    of open alerts who is not signed in: their alerts need a new owner."""

    user: str
    roles: tuple[str, ...]
    signed_in_at: float
    open_alerts: int
    escalated: int

    @property
    def id(self) -> int:
        """A stable number for table views that keep a selection by id."""
        return zlib.crc32(self.user.encode())

    @property
    def signed_in(self) -> bool:
        return self.signed_in_at > 0


def operator_load(staff: Iterable[StaffLoad], alerts: Sequence[AlertView],
                  now: float) -> list[OperatorLoad]:
    """Who is on and how much each carries (the engine's count), most loaded
    first; owners of unresolved alerts who are not signed in are listed too,
    with the count from the alerts."""
    escalated = Counter(e.alert.owner for e in escalations(alerts, now) if e.alert.owner)
    rows = [OperatorLoad(s.user, tuple(s.roles), s.signed_in_at, s.open_alerts,
                         escalated[s.user]) for s in staff]
    present = {r.user for r in rows}
    orphaned = Counter(a.owner for a in alerts
                       if a.state != "resolved" and a.owner and a.owner not in present)
    rows += [OperatorLoad(user, (), 0.0, n, escalated[user]) for user, n in orphaned.items()]
    return sorted(rows, key=lambda r: (-r.open_alerts, -r.escalated, r.user))


def assignable(staff: Iterable[StaffLoad]) -> list[str]:
    """Signed-in people who work the queue, least loaded first: the default
    choice when reassigning is whoever has the most room."""
    people = [s for s in staff if set(s.roles) & WORKERS]
    return [s.user for s in sorted(people, key=lambda s: (s.open_alerts, s.user))]


# ------------------------------------------------------------------ hand-over

HANDOVER_COLUMNS = ("id", "priority", "kind", "state", "owner", "child", "place", "opened",
                    "hold_reason", "hold_until", "sla", "last_note")
HANDOVER_HEADERS = ("Alert", "P", "Kind", "State", "Owner", "Child", "Place", "Opened",
                    "Hold reason", "Hold until", "SLA", "Last note")
#: Spreadsheets run a cell that starts with one of these as a formula.
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


@dataclass(frozen=True, slots=True)
class HandoverRow:
    """One unresolved alert the next shift inherits."""

    id: int
    priority: int
    kind: str
    state: str
    owner: str
    child_token: str
    place: str
    opened_at: float
    hold_reason: str
    hold_until: float
    sla: str  # missed SLAs in words, "" when none
    last_note: str

    def values(self) -> tuple[str, ...]:
        """The row as text, in ``HANDOVER_COLUMNS`` order."""
        return (str(self.id), f"P{self.priority}", self.kind, self.state, self.owner,
                self.child_token, self.place, stamp(self.opened_at), self.hold_reason,
                stamp(self.hold_until), self.sla, self.last_note)


def stamp(t: float) -> str:
    """Local date and time for a person, "" for no time (0)."""
    return datetime.fromtimestamp(t).strftime("%Y-%m-%d %H:%M") if t > 0 else ""


def handover_rows(alerts: Iterable[AlertView]) -> list[HandoverRow]:
    """Every unresolved alert (open, on hold, dispatched), in queue order."""
    rows = []
    for a in sorted((a for a in alerts if a.state != "resolved"), key=sort_key):
        missed = [REASON_TEXT[code] for bit, code in ((BREACH_ACK, "ack_missed"),
                                                      (BREACH_CLOSE, "close_missed"))
                  if a.breaches & bit]
        rows.append(HandoverRow(a.id, a.priority, a.kind, a.state, a.owner, a.child_token,
                                a.place, a.opened_at, a.hold_reason, a.hold_until,
                                "; ".join(missed), a.last_note))
    return rows


def _cell(value: str) -> str:
    """A value a spreadsheet shows as text: a leading quote defuses formulas
    (OWASP's advice for CSV injection); notes are free text."""
    return "'" + value if value.startswith(_FORMULA_START) else value


def handover_csv(rows: Iterable[HandoverRow]) -> str:
    """The hand-over as CSV with a header row (``HANDOVER_COLUMNS``)."""
    out = io.StringIO()
    writer = csv.writer(out)
    writer.writerow(HANDOVER_COLUMNS)
    writer.writerows([_cell(v) for v in r.values()] for r in rows)
    return out.getvalue()


_PAGE_CSS = """
body { font-family: "NanumGothic", "Noto Sans CJK KR", sans-serif; font-size: 10pt;
       color: #000; background: #fff; margin: 1.5em; }
h1 { font-size: 15pt; margin: 0 0 .2em; }
p.meta { margin: 0 0 1em; color: #333; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 1px solid #888; padding: 3px 5px; text-align: left; vertical-align: top; }
th { background: #e5e5e5; }
tr { page-break-inside: avoid; }
td.note { white-space: pre-wrap; max-width: 30em; }
tr.sla td { font-weight: bold; }
@page { size: A4 landscape; margin: 12mm; }
"""


def handover_html(rows: Sequence[HandoverRow], shift_start: float, now: float,
                  who: str) -> str:
    """A printable, self-contained page: title, shift times, who handed over,
    and the table. Every value is escaped: notes are typed by people."""
    esc = html.escape
    head = "".join(f"<th>{esc(h)}</th>" for h in HANDOVER_HEADERS)
    body = []
    for r in rows:
        cells = "".join(f'<td class="note">{esc(v)}</td>' if name == "last_note"
                        else f"<td>{esc(v)}</td>"
                        for name, v in zip(HANDOVER_COLUMNS, r.values(), strict=True))
        body.append(f'<tr class="sla">{cells}</tr>' if r.sla else f"<tr>{cells}</tr>")
    table = (f"<table><thead><tr>{head}</tr></thead><tbody>{''.join(body)}</tbody></table>"
             if rows else "<p>No open alerts.</p>")
    title = "Shift hand-over: open alerts"
    return (
        "<!DOCTYPE html>\n<html><head><meta charset=\"utf-8\">"
        f"<title>{esc(title)}</title><style>{_PAGE_CSS}</style></head><body>"
        f"<h1>{esc(title)}</h1>"
        f"<p class=\"meta\">Shift {esc(stamp(shift_start))} – {esc(stamp(now))} · "
        f"handed over by {esc(who)} · {len(rows)} open alert(s)</p>"
        f"{table}</body></html>\n"
    )
