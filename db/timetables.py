"""Children's timetables, the school calendar and one-off exceptions, as the
administrator edits them, and the day plans the engine loads from them.

Every edit is checked (an unknown child token or zone name is a
``TimetableError`` naming it, so the CLI can say what to fix) and writes its
change-log row in the caller's transaction: the engine reloads the day's
plans when the ``timetables`` or ``calendar`` scope moves, and the rows are
the history an auditor reads. The caller commits.

``set_slot`` replaces rather than adds where a second slot would be a
mistake: a child attends one school, so a new school slot replaces that
weekday's school slot (a change of school or hours), and a slot at the same
academy replaces that academy's slot of the day. Anything else it would
overlap is refused. Zone kinds are not checked: a school slot at a park (a
vacation day camp) or an academy slot at a custom zone are both real.
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Collection, Iterable
from dataclasses import dataclass
from datetime import date

from sqlalchemy import case, delete, func, insert, literal, select
from sqlalchemy.orm import Session

from db import changes
from db.tables import CalendarDay, Child, TimetableException, TimetableSlot, Zone
from models.holidays import holiday, holidays_in
from models.timetable import (
    WEEKDAYS,
    DayException,
    DayRules,
    ExceptionKind,
    Expected,
    Slot,
    SlotKind,
    TimetableError,
    day_plan,
    format_hhmm,
)

__all__ = ["TimetableError", "add_day", "add_exception", "calendar", "clear", "demo_timetables",
           "exceptions", "load_plans", "remove_day", "remove_exception", "set_slot", "timetable"]

NAME_MAX = 80  # CalendarDay.name
NOTE_MAX = 200  # TimetableException.note


@dataclass(frozen=True, slots=True)
class SlotEntry:
    slot: Slot
    zone: str

    def describe(self) -> str:
        return f"{self.slot.describe()} at {self.zone}"


@dataclass(frozen=True, slots=True)
class CalendarEntry:
    """A day without school: ``zone`` None is city-wide; ``builtin`` is a
    public holiday from ``models.holidays`` (not in the store, not removable)."""

    day: date
    name: str
    zone: str | None
    builtin: bool = False


@dataclass(frozen=True, slots=True)
class ExceptionEntry:
    id: int
    exception: DayException
    zone: str | None

    def describe(self) -> str:
        e = self.exception
        text = f"{e.day.isoformat()} {e.kind}"
        if e.start_min is not None and e.end_min is not None:
            text += f" at {self.zone} {format_hhmm(e.start_min)}-{format_hhmm(e.end_min)}"
        return text + (f" ({e.note})" if e.note else "")


def _child(session: Session, token: str) -> Child:
    child = session.scalar(select(Child).where(Child.token == token))
    if child is None:
        raise TimetableError(f"child: no child with token {token!r}")
    if child.removed_at is not None:
        raise TimetableError(f"child: {token} was removed; nothing is expected of it any more")
    return child


def _zone(session: Session, name: str) -> Zone:
    zone = session.scalar(select(Zone).where(Zone.name == name))
    if zone is None:
        raise TimetableError(f"zone: no zone named {name!r}")
    return zone


def _zone_names(session: Session, ids: Iterable[int | None]) -> dict[int, str]:
    wanted = {i for i in ids if i is not None}
    if not wanted:
        return {}
    return dict(session.execute(select(Zone.id, Zone.name).where(Zone.id.in_(wanted))).all())


# ------------------------------------------------------------ timetables


def set_slot(session: Session, token: str, weekday: int, zone_name: str, kind: SlotKind,
             start_min: int, end_min: int, actor: str) -> TimetableSlot:
    """Expect the child at ``zone_name`` on ``weekday`` (replacing as the
    module docstring says)."""
    child = _child(session, token)
    zone = _zone(session, zone_name)
    new = Slot(weekday, zone.id, kind, start_min, end_min)
    rows = list(session.scalars(select(TimetableSlot).where(
        TimetableSlot.child_id == child.id, TimetableSlot.weekday == weekday)))
    replaced = [r for r in rows if (r.kind == kind == "school")
                or (r.kind == kind and r.zone_id == zone.id)]
    names = _zone_names(session, (r.zone_id for r in rows))
    for r in rows:
        if r in replaced:
            continue
        other = Slot(r.weekday, r.zone_id, r.kind, r.start_min, r.end_min)  # type: ignore[arg-type]
        if new.overlaps(other):
            raise TimetableError(f"{token}: {new.describe()} at {zone.name} overlaps "
                                 f"{other.describe()} at {names.get(r.zone_id, r.zone_id)}")
    for r in replaced:
        session.delete(r)
    row = TimetableSlot(child_id=child.id, weekday=weekday, zone_id=zone.id, kind=kind,
                        start_min=start_min, end_min=end_min)
    session.add(row)
    detail = f"{new.describe()} at {zone.name}"
    if replaced:
        detail += " (was " + ", ".join(
            f"{format_hhmm(r.start_min)}-{format_hhmm(r.end_min)} at "
            f"{names.get(r.zone_id, r.zone_id)}" for r in replaced) + ")"
    changes.record(session, "timetables", token, "update" if replaced else "add", actor, detail)
    return row


def clear(session: Session, token: str, actor: str, weekday: int | None = None,
          kind: SlotKind | None = None) -> int:
    """Delete the child's slots (of one weekday, of one kind); how many went."""
    child = _child(session, token)
    q = delete(TimetableSlot).where(TimetableSlot.child_id == child.id)
    if weekday is not None:
        q = q.where(TimetableSlot.weekday == weekday)
    if kind is not None:
        q = q.where(TimetableSlot.kind == kind)
    count = int(session.execute(q, execution_options={"synchronize_session": "fetch"})
                .rowcount or 0)  # type: ignore[attr-defined]
    if count:
        which = " ".join(x for x in (WEEKDAYS[weekday] if weekday is not None else "",
                                     kind or "") if x) or "all"
        changes.record(session, "timetables", token, "remove", actor,
                       f"{count} slots ({which})")
    return count


def timetable(session: Session, token: str) -> list[SlotEntry]:
    """The child's week, by weekday and start."""
    child = _child(session, token)
    rows = session.execute(
        select(TimetableSlot.weekday, TimetableSlot.zone_id, TimetableSlot.kind,
               TimetableSlot.start_min, TimetableSlot.end_min, Zone.name)
        .join(Zone, Zone.id == TimetableSlot.zone_id)
        .where(TimetableSlot.child_id == child.id)
        .order_by(TimetableSlot.weekday, TimetableSlot.start_min)).all()
    return [SlotEntry(Slot(wd, zid, kind, s, e), name) for wd, zid, kind, s, e, name in rows]


# ------------------------------------------------------------ the calendar


def _day_key(day: date, zone: Zone | None) -> str:
    return day.isoformat() if zone is None else f"{day.isoformat()} {zone.name}"[:64]


def add_day(session: Session, day: date, name: str, actor: str,
            zone_name: str | None = None) -> CalendarDay:
    """No school on ``day``: city-wide (``zone_name`` None: a temporary
    holiday, a vacation day) or at one zone (a closure)."""
    name = name.strip()
    if not name or len(name) > NAME_MAX or not name.isprintable():
        raise TimetableError(f"name {name!r} must be 1-{NAME_MAX} printable characters")
    zone = _zone(session, zone_name) if zone_name is not None else None
    zone_id = zone.id if zone is not None else None
    if zone is None and (h := holiday(day)) is not None:
        raise TimetableError(f"{day.isoformat()} is already a public holiday ({h.label})")
    dup = session.scalar(select(CalendarDay).where(
        CalendarDay.day == day.isoformat(),
        CalendarDay.zone_id.is_(None) if zone_id is None else CalendarDay.zone_id == zone_id))
    if dup is not None:
        where = "city-wide" if zone is None else f"at {zone.name}"
        raise TimetableError(f"{day.isoformat()} is already a day without school {where} "
                             f"({dup.name})")
    row = CalendarDay(day=day.isoformat(), zone_id=zone_id, name=name)
    session.add(row)
    changes.record(session, "calendar", _day_key(day, zone), "add", actor, name)
    return row


def remove_day(session: Session, day: date, actor: str, zone_name: str | None = None) -> str:
    """Remove a day the administrator added; returns its name."""
    zone = _zone(session, zone_name) if zone_name is not None else None
    row = session.scalar(select(CalendarDay).where(
        CalendarDay.day == day.isoformat(),
        CalendarDay.zone_id.is_(None) if zone is None else CalendarDay.zone_id == zone.id))
    if row is None:
        where = "city-wide" if zone is None else f"at {zone.name}"
        builtin = " (public holidays are built in and stay)" if holiday(day) else ""
        raise TimetableError(f"no calendar day {day.isoformat()} {where}{builtin}")
    name = row.name
    session.delete(row)
    changes.record(session, "calendar", _day_key(day, zone), "remove", actor, name)
    return name


def calendar(session: Session, year: int | None = None,
             with_holidays: bool = True) -> list[CalendarEntry]:
    """Days without school by date: the store's, and for ``year`` the public
    holidays too (``with_holidays``; with no year, none: the table is per year)."""
    q = select(CalendarDay.day, CalendarDay.name, Zone.name).outerjoin(
        Zone, Zone.id == CalendarDay.zone_id)
    if year is not None:
        q = q.where(CalendarDay.day >= f"{year:04d}-01-01", CalendarDay.day <= f"{year:04d}-12-31")
    entries = [CalendarEntry(date.fromisoformat(d), name, zone)
               for d, name, zone in session.execute(q).all()]
    if with_holidays and year is not None:
        entries += [CalendarEntry(h.day, h.label, None, True) for h in holidays_in(year)]
    entries.sort(key=lambda e: (e.day, not e.builtin, e.zone or ""))
    return entries


# ------------------------------------------------------------ exceptions


def add_exception(session: Session, token: str, day: date, kind: ExceptionKind, actor: str,
                  zone_name: str | None = None, start_min: int | None = None,
                  end_min: int | None = None, note: str = "") -> TimetableException:
    """A one-off change to the child's ``day`` (``models.timetable.DayException``)."""
    child = _child(session, token)
    note = note.strip()
    if len(note) > NOTE_MAX or not note.isprintable():
        raise TimetableError(f"note must be at most {NOTE_MAX} printable characters")
    zone = _zone(session, zone_name) if zone_name is not None else None
    e = DayException(day, kind, zone.id if zone else None, start_min, end_min, note)
    same = session.scalar(select(func.count()).select_from(TimetableException).where(
        TimetableException.child_id == child.id, TimetableException.day == day.isoformat(),
        TimetableException.kind == kind,
        TimetableException.zone_id.is_(None) if zone is None
        else TimetableException.zone_id == zone.id,
        TimetableException.start_min.is_(None) if start_min is None
        else TimetableException.start_min == start_min))
    if same:
        raise TimetableError(f"{token} already has that exception on {day.isoformat()}")
    row = TimetableException(child_id=child.id, day=day.isoformat(), kind=kind,
                             zone_id=e.zone_id, start_min=start_min, end_min=end_min, note=note)
    session.add(row)
    session.flush()
    entry = ExceptionEntry(row.id, e, zone.name if zone else None)
    changes.record(session, "timetables", token, "add", actor, f"exception {entry.describe()}")
    return row


def exceptions(session: Session, token: str, since: date | None = None) -> list[ExceptionEntry]:
    """The child's exceptions by day (from ``since`` on)."""
    child = _child(session, token)
    q = (select(TimetableException, Zone.name)
         .outerjoin(Zone, Zone.id == TimetableException.zone_id)
         .where(TimetableException.child_id == child.id))
    if since is not None:
        q = q.where(TimetableException.day >= since.isoformat())
    rows = session.execute(q.order_by(TimetableException.day, TimetableException.id)).all()
    return [ExceptionEntry(r.id, DayException(date.fromisoformat(r.day), r.kind,  # type: ignore[arg-type]
                                              r.zone_id, r.start_min, r.end_min, r.note), zone)
            for r, zone in rows]


def remove_exception(session: Session, exception_id: int, actor: str) -> str:
    """Remove one exception by id; returns what it was."""
    row = session.get(TimetableException, exception_id)
    if row is None:
        raise TimetableError(f"no exception {exception_id}")
    token = session.scalar(select(Child.token).where(Child.id == row.child_id)) or ""
    zone = _zone_names(session, [row.zone_id]).get(row.zone_id or 0)
    entry = ExceptionEntry(row.id, DayException(date.fromisoformat(row.day), row.kind,  # type: ignore[arg-type]
                                                row.zone_id, row.start_min, row.end_min,
                                                row.note), zone)
    session.delete(row)
    changes.record(session, "timetables", token, "remove", actor,
                   f"exception {entry.describe()}")
    return entry.describe()


# ------------------------------------------------------------ the engine's load


def _by_start(e: Expected) -> tuple[float, int]:
    return e.start_t, e.zone_id


def load_plans(session: Session, day: date, offset_s: float,
               child_ids: Collection[int] | None = None) -> dict[int, list[Expected]]:
    """Every enrolled child's expectations on local ``day``, by child id,
    each by start (children expected nowhere are left out).

    One query per table, so the engine can call it at start-up, at local
    midnight and whenever the ``calendar`` change version moves (a few
    seconds at city scale: run it off the engine's loop). ``child_ids``
    loads only those children, for a ``timetables`` change naming them; each
    of them is then in the answer, with an empty plan if expected nowhere.
    """
    iso = day.isoformat()
    weekday = day.weekday()
    only = (lambda col: col.in_(child_ids)) if child_ids is not None else None
    city: dict[date, str] = {}
    closures: dict[tuple[date, int], str] = {}
    for zone_id, name in session.execute(
            select(CalendarDay.zone_id, CalendarDay.name).where(CalendarDay.day == iso)):
        if zone_id is None:
            city[day] = name
        else:
            closures[(day, zone_id)] = name
    h = holiday(day)
    if h is not None:
        city[day] = h.label
    rules = DayRules.of(day, city, closures, offset_s, (day,) if h is not None and h.family else ())
    q = (select(TimetableException.child_id, TimetableException.kind,
                TimetableException.zone_id, TimetableException.start_min,
                TimetableException.end_min)
         .join(Child, Child.id == TimetableException.child_id)
         .where(TimetableException.day == iso, Child.removed_at.is_(None)))
    todays: dict[int, list[DayException]] = defaultdict(list)
    for child_id, kind, zone_id, start_min, end_min in session.execute(
            q if only is None else q.where(only(TimetableException.child_id))):
        todays[child_id].append(DayException(day, kind, zone_id, start_min, end_min))
    q = (select(TimetableSlot.child_id, TimetableSlot.zone_id, TimetableSlot.kind,
                TimetableSlot.start_min, TimetableSlot.end_min)
         .join(Child, Child.id == TimetableSlot.child_id)
         .where(TimetableSlot.weekday == weekday, Child.removed_at.is_(None)))
    plans: dict[int, list[Expected]] = {}
    special: dict[int, list[Slot]] = defaultdict(list)  # children with an exception today
    midnight, closed = rules.midnight, rules.closed
    kept = rules.kinds_kept
    # The hot loop of a city's day (750,000 rows): Core rows, no Slot objects,
    # the rules of ``DayRules.keeps`` inlined.
    for child_id, zone_id, kind, start_min, end_min in session.connection().execute(
            q if only is None else q.where(only(TimetableSlot.child_id))):
        if child_id in todays:
            special[child_id].append(Slot(weekday, zone_id, kind, start_min, end_min))
        elif kind in kept and zone_id not in closed:
            e = Expected(zone_id, kind, midnight + start_min * 60.0, midnight + end_min * 60.0)
            plan = plans.get(child_id)
            if plan is None:
                plans[child_id] = [e]
            else:
                plan.append(e)
                if plan[-2].start_t > e.start_t:
                    plan.sort(key=_by_start)
    for child_id, exs in todays.items():
        plan = day_plan(day, special.get(child_id, ()), city, closures, exs, rules=rules)
        if plan:
            plans[child_id] = plan
    if child_ids is not None:
        return {cid: plans.get(cid, []) for cid in child_ids}
    return plans


# ------------------------------------------------------------ the demo


def _nearest(points: dict[int, tuple[float, float]],
             targets: dict[int, tuple[float, float]]) -> dict[int, int]:
    """For each point, the nearest target (equirectangular: zones a city apart)."""
    out = {}
    for pid, (lat, lon) in points.items():
        k = math.cos(math.radians(lat))
        out[pid] = min(targets, key=lambda t: (targets[t][0] - lat) ** 2
                       + ((targets[t][1] - lon) * k) ** 2)
    return out


def demo_timetables(session: Session, actor: str = "seed") -> int:
    """Give every demo child at a school zone a Monday-Friday school slot
    (08:30, 08:40 or 08:50 to 12:40 .. 14:40 by child, as grades differ),
    and every third of them a Monday/Wednesday/Friday academy class
    (15:30-17:00) at the academy zone nearest their school, if there is
    one. Children of other zones (the park's) get none: they are not
    expected anywhere. Done once: an installation with any slot is left
    alone, so an administrator's edits survive restarts. Bulk statements,
    copied inside the store: a city-scale demo seeds in seconds. Returns the
    number of children given a timetable; the caller commits."""
    if session.scalar(select(func.count()).select_from(TimetableSlot)):
        return 0
    zones = session.execute(select(Zone.id, Zone.kind, Zone.lat, Zone.lon)).all()
    schools = {z.id: (z.lat, z.lon) for z in zones if z.kind == "school"}
    academies = {z.id: (z.lat, z.lon) for z in zones if z.kind == "academy"}
    if not schools:
        return 0
    enrolled = (Child.zone_id.in_(schools), Child.removed_at.is_(None))
    start = 510 + (Child.id % 3) * 10
    end = 760 + (Child.id % 4) * 40
    columns = ["child_id", "weekday", "zone_id", "kind", "start_min", "end_min"]
    for weekday in range(5):
        session.execute(insert(TimetableSlot).from_select(columns, select(
            Child.id, literal(weekday), Child.zone_id, literal("school"), start, end)
            .where(*enrolled)))
    if academies:
        nearest = _nearest(schools, academies)
        academy = case(nearest, value=Child.zone_id)
        for weekday in (0, 2, 4):
            session.execute(insert(TimetableSlot).from_select(columns, select(
                Child.id, literal(weekday), academy, literal("academy"), literal(930),
                literal(1020)).where(*enrolled, Child.id % 3 == 0)))
    count = int(session.scalar(select(func.count()).select_from(Child).where(*enrolled)) or 0)
    changes.record(session, "timetables", "demo", "add", actor,
                   f"{count} children: Monday-Friday school slots"
                   + (", academy classes for every third" if academies else ""))
    return count
