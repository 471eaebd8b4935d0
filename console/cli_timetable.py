"""``childsafe timetable …``, ``childsafe calendar …`` and ``childsafe
exception …``: children's weeks, the school calendar and one-off changes
from the server's command line.

Why a command line: timetables come from the schools each term and sick
days from guardians by phone; an administrator enters them on the server,
and every change lands in the change log under the OS user who typed it
(``cli:<user>``), which is also what makes the running engine reload the
day's expectations.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from datetime import date

from console.cli import AddCommand, SubParsers, _sessions
from models.timetable import (
    EXCEPTION_KINDS,
    SLOT_KINDS,
    WEEKDAYS,
    format_hhmm,
    parse_day,
    parse_hhmm,
    parse_weekday,
    parse_weekdays,
)


def _actor() -> str:
    return "cli:" + getpass.getuser()


def cmd_timetable_set(args: argparse.Namespace) -> int:
    """Every day of ``--day`` (``mon-fri`` for a school week) or none: one
    transaction."""
    from db import timetables as tt

    days = parse_weekdays(args.day)
    start, end = parse_hhmm(args.start), parse_hhmm(args.end)
    with _sessions(args)() as s:
        rows = [tt.set_slot(s, args.child, d, args.zone, args.kind, start, end, _actor())
                for d in days]
        s.commit()
    for row in rows:
        print(f"{args.child}: {WEEKDAYS[row.weekday]} {row.kind} {format_hhmm(row.start_min)}-"
              f"{format_hhmm(row.end_min)} at {args.zone}")
    return 0


def cmd_timetable_show(args: argparse.Namespace) -> int:
    from db import timetables as tt

    with _sessions(args)() as s:
        week = tt.timetable(s, args.child)
    if not week:
        print(f"{args.child}: no timetable (expected nowhere)")
    for e in week:
        print(f"{WEEKDAYS[e.slot.weekday]}\t{e.slot.kind}\t{format_hhmm(e.slot.start_min)}-"
              f"{format_hhmm(e.slot.end_min)}\t{e.zone}")
    return 0


def cmd_timetable_clear(args: argparse.Namespace) -> int:
    from db import timetables as tt

    weekday = parse_weekday(args.day) if args.day else None
    with _sessions(args)() as s:
        count = tt.clear(s, args.child, _actor(), weekday, args.kind)
        s.commit()
    print(f"{args.child}: {count} slot{'s' if count != 1 else ''} deleted")
    return 0


def cmd_calendar_add(args: argparse.Namespace) -> int:
    from db import timetables as tt

    day = parse_day(args.day)
    with _sessions(args)() as s:
        tt.add_day(s, day, args.name, _actor(), args.zone)
        s.commit()
    print(f"{day.isoformat()}\t{args.zone or 'city-wide'}\t{args.name.strip()}")
    return 0


def cmd_calendar_remove(args: argparse.Namespace) -> int:
    from db import timetables as tt

    day = parse_day(args.day)
    with _sessions(args)() as s:
        name = tt.remove_day(s, day, _actor(), args.zone)
        s.commit()
    print(f"removed {day.isoformat()}\t{args.zone or 'city-wide'}\t{name}")
    return 0


def cmd_calendar_list(args: argparse.Namespace) -> int:
    """Days without school in a year: public holidays (built in) and the
    days administrators added, by date."""
    from db import timetables as tt
    from models.holidays import covered

    year = args.year if args.year is not None else date.today().year
    if not covered(year):
        print(f"calendar: no built-in public holidays for {year}; add them with "
              "'childsafe calendar add'", file=sys.stderr)
    with _sessions(args)() as s:
        entries = tt.calendar(s, year)
    for e in entries:
        what = "public holiday" if e.builtin else "closure" if e.zone else "city-wide day"
        print(f"{e.day.isoformat()}\t{e.day.strftime('%a').lower()}\t{e.zone or 'city-wide'}\t"
              f"{e.name}\t{what}")
    return 0


def cmd_exception_add(args: argparse.Namespace) -> int:
    """Prints the new exception's id first (``exception remove ID``)."""
    from db import timetables as tt

    day = parse_day(args.day)
    start = parse_hhmm(args.start) if args.start else None
    end = parse_hhmm(args.end) if args.end else None
    with _sessions(args)() as s:
        row = tt.add_exception(s, args.child, day, args.kind, _actor(), args.zone, start, end,
                               args.note)
        s.commit()
        entry = next(e for e in tt.exceptions(s, args.child, since=day) if e.id == row.id)
    print(f"{entry.id}\t{args.child}\t{entry.describe()}")
    return 0


def cmd_exception_list(args: argparse.Namespace) -> int:
    from db import timetables as tt

    since = parse_day(args.since) if args.since else None
    with _sessions(args)() as s:
        entries = tt.exceptions(s, args.child, since)
    for e in entries:
        print(f"{e.id}\t{e.describe()}")
    return 0


def cmd_exception_remove(args: argparse.Namespace) -> int:
    from db import timetables as tt

    with _sessions(args)() as s:
        what = tt.remove_exception(s, args.id, _actor())
        s.commit()
    print(f"removed {args.id}\t{what}")
    return 0


def add_timetable(sub: SubParsers, add: AddCommand) -> None:
    """The ``timetable``, ``calendar`` and ``exception`` command groups."""
    days = "a day (mon..sun, 월..일), a list or a range: mon, mon,wed,fri, mon-fri"
    timetable = sub.add_parser("timetable", help="children's weekly timetables (in the store)")
    t_sub = timetable.add_subparsers(dest="timetable_command", required=True)
    ts = add("set", cmd_timetable_set, "expect a child at a zone on weekdays; a school slot "
             "replaces that day's school slot, an academy slot that academy's", t_sub)
    ts.add_argument("child", metavar="CHILD_TOKEN")
    ts.add_argument("--day", required=True, help=days)
    ts.add_argument("--zone", required=True, metavar="ZONE_NAME")
    ts.add_argument("--kind", required=True, choices=SLOT_KINDS)
    ts.add_argument("--from", dest="start", required=True, metavar="HH:MM")
    ts.add_argument("--to", dest="end", required=True, metavar="HH:MM")
    tw = add("show", cmd_timetable_show, "the child's week: day, kind, hours, zone "
             "(tab-separated)", t_sub)
    tw.add_argument("child", metavar="CHILD_TOKEN")
    tc = add("clear", cmd_timetable_clear, "delete the child's slots (of one day, one kind)",
             t_sub)
    tc.add_argument("child", metavar="CHILD_TOKEN")
    tc.add_argument("--day", default=None, help="only this day (mon..sun)")
    tc.add_argument("--kind", default=None, choices=SLOT_KINDS, help="only this kind")

    cal = sub.add_parser("calendar", help="days without school: public holidays are built "
                         "in; add vacations, temporary holidays and closures")
    c_sub = cal.add_subparsers(dest="calendar_command", required=True)
    ca = add("add", cmd_calendar_add, "a day without school, city-wide or at one zone", c_sub)
    ca.add_argument("day", metavar="YYYY-MM-DD")
    ca.add_argument("name", help="what the day is, e.g. 개교기념일")
    ca.add_argument("--zone", default=None, metavar="ZONE_NAME",
                    help="only this zone closes (default: city-wide; academies stay open)")
    cr = add("remove", cmd_calendar_remove, "remove a day added with calendar add", c_sub)
    cr.add_argument("day", metavar="YYYY-MM-DD")
    cr.add_argument("--zone", default=None, metavar="ZONE_NAME")
    cl = add("list", cmd_calendar_list, "a year's days without school: date, weekday, zone, "
             "name, what (tab-separated)", c_sub)
    cl.add_argument("--year", type=int, default=None, help="default: this year")

    exc = sub.add_parser("exception", help="one-off changes to a child's day: absent, trip")
    e_sub = exc.add_subparsers(dest="exception_command", required=True)
    ea = add("add", cmd_exception_add, "absent: expected nowhere that day; trip: not at "
             "school, and with --zone --from --to expected there; prints the id first", e_sub)
    ea.add_argument("child", metavar="CHILD_TOKEN")
    ea.add_argument("day", metavar="YYYY-MM-DD")
    ea.add_argument("kind", choices=EXCEPTION_KINDS)
    ea.add_argument("--zone", default=None, metavar="ZONE_NAME", help="trip: where")
    ea.add_argument("--from", dest="start", default=None, metavar="HH:MM")
    ea.add_argument("--to", dest="end", default=None, metavar="HH:MM")
    ea.add_argument("--note", default="", help="e.g. 독감, 과학관 견학")
    el = add("list", cmd_exception_list, "the child's exceptions: id, what (tab-separated)",
             e_sub)
    el.add_argument("child", metavar="CHILD_TOKEN")
    el.add_argument("--since", default=None, metavar="YYYY-MM-DD")
    er = add("remove", cmd_exception_remove, "remove an exception by id", e_sub)
    er.add_argument("id", type=int, metavar="ID")
    for sp in (ts, tw, tc, ca, cr, cl, ea, el, er):
        sp.add_argument("--db", default=None, help="database URL (default: SQLite in the "
                        "data dir)")
