"""``childsafe guardians …`` and ``childsafe consent …``: the consent
registry from the server's command line.

Why a command line: consent arrives on paper forms at the district office
and is entered by an administrator on the server; a withdrawal must take
effect (and delete the child's history) the day it is received, without a
console. Every change goes to the location-usage log under the OS user who
typed it (``cli:<user>``).
"""

from __future__ import annotations

import argparse
import getpass
import sys
import time
from typing import TYPE_CHECKING

from console.cli import AddCommand, SubParsers, _sessions
from models.consent import AGE_BANDS, SERVICES

if TYPE_CHECKING:
    from db.tables import Consent


def _actor() -> str:
    return "cli:" + getpass.getuser()


def _when(at: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M:%S", time.localtime(at))


def _token_note(guardian_id: int) -> None:
    print(f"guardian {guardian_id}'s location-check token is shown only this once: hand it "
          f"to the guardian; 'childsafe guardians token {guardian_id}' issues a new one and "
          "ends this one", file=sys.stderr)


def cmd_guardians_add(args: argparse.Namespace) -> int:
    """Prints "<id>\t<token>": the token is stored only as a hash, so this
    is the one time anyone sees it."""
    from db import consent as db_consent
    from db import guardian_tokens

    if args.relation and not args.child:
        raise ValueError("relation: give the child it is a relation to with --child")
    with _sessions(args)() as s:
        guardian = db_consent.add_guardian(s, args.name, args.phone, args.email, time.time())
        if args.child:
            db_consent.link(s, args.child, guardian.id, args.relation)
        token = guardian_tokens.issue(s, guardian.id)
        s.commit()
        print(f"{guardian.id}\t{token}")
    _token_note(guardian.id)
    return 0


def cmd_guardians_token(args: argparse.Namespace) -> int:
    """A new location-check token for a guardian who lost theirs (or whose
    phone changed hands): the old one stops working when this commits."""
    from db import guardian_tokens

    with _sessions(args)() as s:
        token = guardian_tokens.issue(s, args.guardian_id)
        s.commit()
        print(token)
    _token_note(args.guardian_id)
    return 0


def cmd_guardians_list(args: argparse.Namespace) -> int:
    from db import consent as db_consent

    with _sessions(args)() as s:
        for g in db_consent.guardians(s, args.child):
            children = ",".join(f"{token}:{relation}" if relation else token
                                for token, relation in g.children)
            print(f"{g.id}\t{g.name}\t{g.phone}\t{g.email}\t{children}")
    return 0


def cmd_consent_give(args: argparse.Namespace) -> int:
    from db import consent as db_consent

    with _sessions(args)() as s:
        consent = db_consent.give(s, args.child, args.guardian, args.services, args.age_band,
                                  _actor(), time.time())
        s.commit()
        who = f"guardian {args.guardian}" if args.guardian is not None else "the child"
        print(f"consent {consent.id} for {args.child}: {consent.services} "
              f"({consent.age_band}, by {who})")
    return 0


def cmd_consent_withdraw(args: argparse.Namespace) -> int:
    from db import consent as db_consent

    with _sessions(args)() as s:
        report = db_consent.withdraw(s, args.child, _actor(), time.time())
        s.commit()
    print(f"{args.child}: {report.summary()}")
    return 0


def _consent_line(c: Consent) -> str:
    state = ("in force" if c.withdrawn_at is None
             else f"withdrawn {_when(c.withdrawn_at)} by {c.withdrawn_by}")
    who = f"guardian {c.guardian_id}" if c.guardian_id is not None else "the child"
    return (f"{c.id}\t{c.services}\t{c.age_band}\t{who}\tgiven {_when(c.given_at)} "
            f"by {c.recorded_by}\t{state}")


def cmd_consent_show(args: argparse.Namespace) -> int:
    from db import consent as db_consent

    with _sessions(args)() as s:
        rows = db_consent.consents(s, args.child)
        services = db_consent.services_in_force(s, args.child)
    if services:
        print(f"{args.child}: tracked for {','.join(x for x in SERVICES if x in services)}")
    else:
        print(f"{args.child}: not tracked (no consent in force)")
    for c in rows:
        print(_consent_line(c))
    return 0


def add_privacy(sub: SubParsers, add: AddCommand) -> None:
    """The ``guardians`` and ``consent`` command groups, next to ``users``."""
    guardians = sub.add_parser("guardians", help="parents and legal guardians (in the store)")
    guardians_sub = guardians.add_subparsers(dest="guardians_command", required=True)
    ga = add("add", cmd_guardians_add, "add a guardian; prints the new guardian's id and "
             "location-check token (tab-separated; the token is shown only once)",
             guardians_sub)
    ga.add_argument("--name", required=True)
    ga.add_argument("--phone", default="", help="digits, '+', '-' and spaces")
    ga.add_argument("--email", default="")
    ga.add_argument("--child", default=None, metavar="TOKEN",
                    help="the child they answer for, e.g. C-9D396A5")
    ga.add_argument("--relation", default="", help="with --child: mother, father, ...")
    gl = add("list", cmd_guardians_list, "guardians: id, name, phone, e-mail, children "
             "(tab-separated)", guardians_sub)
    gl.add_argument("--child", default=None, metavar="TOKEN", help="only this child's")
    gt = add("token", cmd_guardians_token, "issue a new location-check token (the old one "
             "stops working); prints it, once", guardians_sub)
    gt.add_argument("guardian_id", type=int, metavar="GUARDIAN_ID")

    consent = sub.add_parser("consent", help="consent to locate a child (Location "
                             "Information Act §15, §25)")
    consent_sub = consent.add_subparsers(dest="consent_command", required=True)
    cg = add("give", cmd_consent_give, "record a consent (it replaces the same guardian's "
             "earlier one)", consent_sub)
    cg.add_argument("child", metavar="CHILD_TOKEN")
    cg.add_argument("--guardian", type=int, default=None, metavar="ID",
                    help="who consents; required under 14")
    cg.add_argument("--services", required=True, help=f"comma-separated: {','.join(SERVICES)}")
    cg.add_argument("--age-band", required=True, choices=AGE_BANDS)
    cw = add("withdraw", cmd_consent_withdraw, "withdraw every consent of the child and "
             "delete its location history now (an open alert's case keeps its fixes)",
             consent_sub)
    cw.add_argument("child", metavar="CHILD_TOKEN")
    cs = add("show", cmd_consent_show, "the child's consents, in force and withdrawn",
             consent_sub)
    cs.add_argument("child", metavar="CHILD_TOKEN")
    for sp in (ga, gl, gt, cg, cw, cs):
        sp.add_argument("--db", default=None, help="database URL (default: SQLite in the "
                        "data dir)")
