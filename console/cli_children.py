"""``childsafe children …`` and ``childsafe import roster``: enrolment from
the server's command line.

Why a command line: schools hand the district office a roster each term and
leave mid-year lists on paper; an administrator enrols them on the server,
without a console, and every change lands in the change log under the OS
user who typed it (``cli:<user>``), which is also what makes the running
engine and gateway pick the roster up.
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from pathlib import Path

from console.cli import AddCommand, SubParsers, _sessions


def _actor() -> str:
    return "cli:" + getpass.getuser()


def cmd_children_add(args: argparse.Namespace) -> int:
    """Prints the new child's token alone, for scripts (``devices add --child``)."""
    from db.enrolment import add_child

    with _sessions(args)() as s:
        child = add_child(s, name=args.name, school_zone=args.school, profile=args.profile,
                          actor=_actor())
        s.commit()
        print(child.token)
    return 0


def _pairs(items: tuple[tuple[object, str], ...]) -> str:
    return ",".join(f"{a}:{b}" if b else str(a) for a, b in items) or "-"


def cmd_children_list(args: argparse.Namespace) -> int:
    from db.enrolment import list_children

    with _sessions(args)() as s:
        entries = list_children(s, include_removed=args.removed)
    for c in entries:
        line = (f"{c.token}\t{c.name}\t{c.school or '-'}\t{c.profile}\t{_pairs(c.devices)}\t"
                f"{_pairs(c.guardians)}\t{c.consent_summary()}")
        if c.removed_at is not None:
            line += "\tremoved " + time.strftime("%Y-%m-%d %H:%M", time.localtime(c.removed_at))
        print(line)
    return 0


def cmd_children_remove(args: argparse.Namespace) -> int:
    from db.enrolment import remove_child

    with _sessions(args)() as s:
        removal = remove_child(s, args.token, _actor())
        s.commit()
    devices = ", ".join(removal.devices) or "none"
    print(f"removed {removal.token}: devices unregistered: {devices}; timetable slots "
          f"deleted: {removal.slots}; history, consents and alerts kept")
    return 0


def cmd_import_roster(args: argparse.Namespace) -> int:
    """Exit 2 with every problem on stderr, and nothing imported, when the
    file has any; else one line per child enrolled (token first)."""
    from db.enrolment import EnrolmentError, import_roster

    path: Path = args.file
    try:
        text = path.read_bytes().decode("utf-8-sig")
    except OSError as exc:
        print(f"{path}: cannot read: {exc.strerror}", file=sys.stderr)
        return 2
    except UnicodeDecodeError as exc:
        print(f"{path}: not UTF-8 (byte {exc.start}): save it as \"CSV UTF-8\"",
              file=sys.stderr)
        return 2
    with _sessions(args)() as s:
        try:
            result = import_roster(s, text, _actor(), school=args.school)
        except EnrolmentError as exc:  # an unknown --school
            print(f"{exc}\nnothing imported", file=sys.stderr)
            return 2
        if not result.ok:
            s.rollback()
            for problem in result.problems:
                print(f"{path}: {problem}", file=sys.stderr)
            n = len(result.problems)
            print(f"nothing imported: {n} problem{'s' if n > 1 else ''}", file=sys.stderr)
            return 2
        s.commit()
    for e in result.enrolled:
        print(f"{e.token}\tline {e.line}\t{e.name}\t{e.device_id}")
    n = len(result.enrolled)
    print(f"imported {n} {'child' if n == 1 else 'children'} with their devices and consent; "
          f"guardians: {result.guardians_added} new, {result.guardians_known} already known")
    return 0


def add_children(sub: SubParsers, add: AddCommand) -> None:
    """The ``children`` command group, next to ``devices``."""
    from models.enrolment import PROFILES

    children = sub.add_parser("children", help="enrolled children (in the store)")
    children_sub = children.add_subparsers(dest="children_command", required=True)
    ca = add("add", cmd_children_add, "enrol a child; prints the new child's token",
             children_sub)
    ca.add_argument("name")
    ca.add_argument("--school", required=True, metavar="ZONE", help="the school's zone name")
    ca.add_argument("--profile", default="walking", choices=PROFILES,
                    help="how the child travels (default walking)")
    cl = add("list", cmd_children_list, "children, token first: name, school, profile, "
             "devices, guardians, consent (tab-separated)", children_sub)
    cl.add_argument("--removed", action="store_true", help="include removed children")
    cr = add("remove", cmd_children_remove, "end a child's enrolment: unregister its devices, "
             "delete its timetable (refused while an alert is unresolved)", children_sub)
    cr.add_argument("token", metavar="TOKEN")
    for sp in (ca, cl, cr):
        sp.add_argument("--db", default=None, help="database URL (default: SQLite in the "
                        "data dir)")


def add_import_roster(imp_sub: SubParsers, add: AddCommand) -> None:
    """``import roster``, under the ``import`` group ``build_parser`` makes."""
    ir = add("roster", cmd_import_roster, "a school's roster CSV (UTF-8): children, devices, "
             "guardians, consent; all or nothing", imp_sub)
    ir.add_argument("file", type=Path, metavar="FILE.csv")
    ir.add_argument("--school", default=None, metavar="ZONE",
                    help="the school's zone name, for rows without a school column")
    ir.add_argument("--db", default=None, help="database URL (default: SQLite in the "
                    "data dir)")
