"""Reveals, disclosures and the usage log's reading: the engine's privacy commands.

The rules are ``models.privacy``'s; this module adds the store around them.
The command table has checked the session and the role
(``models.accounts.PERMISSIONS``) before a handler runs. Each request uses
one store session: the reveal or disclosure row and the usage record it
calls for (``db.usage_log``) commit together before the reply, so nobody is
shown a child whose showing was not recorded, and a store that refuses
leaves nothing half-written (answered ``store``, like the alert commands).

Who a usage record names as its ``actor`` is who answers for that use: the
person who saw the child for a reveal (an approval records the approver in
``detail``), the supervisor who authorised a disclosure, the auditor who
exported the log. Records carry counts and time windows, never positions.
"""

from __future__ import annotations

import logging
import math
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Protocol

from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from console.engine.commands import Entry
from console.engine.desk import AlertDesk
from console.engine.sessions import SessionBook
from console.services.runtime import Runtime
from db import alerts as db_alerts
from db import consent as db_consent
from db import repositories as repo
from db import usage_log
from db.tables import Alert, Child, Device, Disclosure, Guardian, Guardianship, Reveal
from models.alerts import SUPERVISOR, Actor, Refused
from models.consent import SERVICES
from models.messages import (
    ChildDetail,
    ChildRequest,
    DiscloseRequest,
    DisclosureDecision,
    DisclosureList,
    DisclosureReply,
    DisclosuresRequest,
    DisclosureView,
    GuardianView,
    HistoryEntry,
    Reply,
    RevealDecision,
    RevealList,
    RevealReply,
    RevealRequest,
    RevealsRequest,
    RevealView,
    UsageRequest,
    UsageRows,
    pack,
)
from models.privacy import (
    MAX_TOKEN,
    check_child_token,
    check_decider,
    check_disclosable,
    check_notice,
    check_reason,
    reveal_grant,
    reveal_state,
    trail_window,
)
from models.usage import FIELD_LIMITS

log = logging.getLogger(__name__)

MAX_LIST = 200  # reveals or disclosures one list carries, newest first
MAX_TRAIL_POINTS = 50_000  # a day of fixes every 6 s from three devices
VERIFY_EVERY_S = 60.0  # a full walk of a big log is not done per page
MAX_ID = 2**31  # ids above this are nobody's (and would overflow the column)
# The usage action for a child's past positions shown under a reveal:
# ``models.usage`` calls that "history" ("trail" is an alert panel's).
HISTORY_ACTION = "history"


class PrivacyHost(Protocol):
    """What the handlers use of ``console.services.engine.Engine``."""

    rt: Runtime
    sessions: sessionmaker[Session]
    users: SessionBook
    desk: AlertDesk


def privacy_entries(engine: PrivacyHost) -> dict[type, Entry]:
    """The command-table entries for reveals, disclosures and the usage log."""
    c = PrivacyCommands(engine)
    return {
        RevealRequest: Entry(c.reveal),
        RevealDecision: Entry(c.decide_reveal),
        RevealsRequest: Entry(c.reveals),
        ChildRequest: Entry(c.child),
        DiscloseRequest: Entry(c.disclose),
        DisclosureDecision: Entry(c.decide_disclosure),
        DisclosuresRequest: Entry(c.disclosures),
        UsageRequest: Entry(c.usage),
    }


def iso(at: float) -> str:
    return datetime.fromtimestamp(at, UTC).isoformat(timespec="seconds")


def clip(text: str, field: str = "detail") -> str:
    limit = FIELD_LIMITS[field]
    return text if len(text) <= limit else text[:limit - 1] + "…"


def one_line(text: str, limit: int = 200) -> str:
    """A free-text note as a record may quote it: printable, one line, bounded."""
    return "".join(ch if ch.isprintable() else " " for ch in text).strip()[:limit]


def check_id(value: int, what: str) -> int:
    if not 0 < value < MAX_ID:
        raise Refused("unknown", f"no {what} {value}")
    return value


def reveal_view(row: Reveal, child: str, now: float) -> RevealView:
    return RevealView(id=row.id, child=child, user=row.user, reason=row.reason,
                      alert_id=row.alert_id or 0,
                      state=reveal_state(row.state, row.expires_at, now, row.requested_at),
                      requested_at=row.requested_at, decided_by=row.decided_by,
                      decided_at=row.decided_at, expires_at=row.expires_at)


def disclosure_view(row: Disclosure, child: str) -> DisclosureView:
    return DisclosureView(id=row.id, alert_id=row.alert_id, child=child, agency=row.agency,
                          reason=row.reason, requested_by=row.requested_by,
                          requested_at=row.requested_at,
                          state=row.state,  # type: ignore[arg-type]
                          decided_by=row.decided_by, decided_at=row.decided_at,
                          guardian_notice=row.guardian_notice,
                          guardian_notified_at=row.guardian_notified_at)


class PrivacyCommands:
    def __init__(self, engine: PrivacyHost, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        self.reveal_s = float(engine.rt.config.reveal_s)
        self._verified: tuple[float, bool, str] | None = None  # (monotonic, ok, problem)
        self._checking: threading.Thread | None = None
        self._lock = threading.Lock()
        with self._lock:
            self._start_check()  # ready before the first auditor asks

    @contextmanager
    def _store(self, what: str) -> Iterator[Session]:
        """One session, committed when the block ends without an exception;
        a store failure becomes ``Refused("store")`` and nothing is kept."""
        try:
            with self.engine.sessions() as s:
                yield s
                s.commit()
        except (SQLAlchemyError, usage_log.ChainBroken) as exc:
            log.exception("the store refused %s", what)
            raise Refused("store", f"the store refused {what} ({type(exc).__name__}); "
                                   "nothing was recorded, try again") from None

    @staticmethod
    def _child(s: Session, token: str) -> Child:
        child = s.scalar(select(Child).where(Child.token == check_child_token(token)))
        if child is None:
            raise Refused("unknown", f"no child {token}")
        return child

    # ------------------------------------------------------------- reveals
    def reveal(self, req: RevealRequest, actor: Actor | None) -> Reply:
        assert actor is not None
        reason = check_reason(req.reason)
        token = check_child_token(req.child)
        alert = self.engine.desk.find(req.alert_id) if req.alert_id else None
        now = self.clock()
        decision, expires_at = reveal_grant(actor.user, actor.roles, token, alert, now,
                                            self.reveal_s)
        with self._store("the reveal") as s:
            child = self._child(s, token)
            if decision == "pending":  # asking again while one waits adds nothing
                waiting = s.scalar(select(Reveal).where(
                    Reveal.child_id == child.id, Reveal.user == actor.user,
                    Reveal.state == "pending").order_by(Reveal.id.desc()).limit(1))
                if waiting is not None:
                    return RevealReply(reveal=reveal_view(waiting, token, now))
            row = Reveal(child_id=child.id, user=actor.user, reason=reason,
                         alert_id=alert.id if alert else None, state=decision,
                         requested_at=now, decided_by="engine" if expires_at else "",
                         decided_at=now if expires_at else 0.0, expires_at=expires_at)
            s.add(row)
            s.flush()
            if decision == "granted":
                assert alert is not None
                usage_log.append(
                    s, at=now, actor=actor.user, subject=token, action="reveal",
                    purpose=reason, alert_id=alert.id,
                    detail=clip(f"reveal {row.id} granted until {iso(expires_at)}: "
                                f"{actor.user} owns the open {alert.kind} alert {alert.id}"))
            view = reveal_view(row, token, now)
        log.info("reveal %d of %s for %s: %s", view.id, token, actor.user, view.state)
        return RevealReply(reveal=view)

    def decide_reveal(self, req: RevealDecision, actor: Actor | None) -> Reply:
        assert actor is not None
        check_id(req.reveal_id, "reveal")
        now = self.clock()
        note = one_line(req.note)
        with self._store("the decision") as s:
            row = s.get(Reveal, req.reveal_id)
            if row is None:
                raise Refused("unknown", f"no reveal {req.reveal_id}")
            check_decider(actor.user, actor.roles, row.user,
                          reveal_state(row.state, row.expires_at, now, row.requested_at),
                          f"reveal {row.id}")
            token = s.scalar(select(Child.token).where(Child.id == row.child_id)) or "?"
            row.decided_by, row.decided_at = actor.user, now
            if req.approve:
                row.state, row.expires_at = "granted", now + self.reveal_s
                usage_log.append(
                    s, at=now, actor=row.user, subject=token, action="reveal",
                    purpose=row.reason, alert_id=row.alert_id,
                    detail=clip(f"reveal {row.id} approved by {actor.user} for {row.user} "
                                f"until {iso(row.expires_at)}" + (f"; {note}" if note else "")))
            else:
                row.state = "refused"
            view = reveal_view(row, token, now)
        what = "approved" if req.approve else "refused"
        self.engine.users.record(actor.user, "cmd.decide_reveal", True,
                                 f"reveal {view.id} of {token} for {view.user} {what}"
                                 + (f": {note}" if note else ""))
        log.info("reveal %d of %s for %s %s by %s", view.id, token, view.user, what, actor.user)
        return RevealReply(reveal=view)

    def reveals(self, req: RevealsRequest, actor: Actor | None) -> Reply:
        """A supervisor sees everyone's (the approval queue when
        ``pending_only``); anyone else only their own."""
        assert actor is not None
        now = self.clock()
        q = select(Reveal, Child.token).join(Child, Child.id == Reveal.child_id)
        if req.pending_only:
            q = q.where(Reveal.state == "pending")
        if SUPERVISOR not in actor.roles:
            q = q.where(Reveal.user == actor.user)
        with self._store("the list of reveals") as s:
            rows = s.execute(q.order_by(Reveal.id.desc()).limit(MAX_LIST)).all()
            return RevealList(reveals=[reveal_view(r, token, now) for r, token in rows])

    def child(self, req: ChildRequest, actor: Actor | None) -> Reply:
        """The child's identity under the requester's live reveal, and with
        ``trail_s`` their positions of that long ago until now."""
        assert actor is not None
        trail_s = trail_window(req.trail_s)
        now = self.clock()
        with self._store("the reveal's record") as s:
            child = self._child(s, req.child)
            grant = s.scalar(select(Reveal).where(
                Reveal.child_id == child.id, Reveal.user == actor.user,
                Reveal.state == "granted", Reveal.expires_at > now)
                .order_by(Reveal.expires_at.desc()).limit(1))
            if grant is None:
                raise Refused("no_reveal", f"no reveal of {child.token} is in force for "
                                           f"{actor.user}: give a reason first (an open alert "
                                           "you own, or a supervisor's approval)")
            if (grant.decided_by == "engine" and grant.alert_id
                    and grant.alert_id not in self.engine.desk.alerts):
                # granted for an open alert: it ends when the alert is resolved
                raise Refused("no_reveal", f"alert {grant.alert_id} is resolved, and the reveal "
                                           "it gave with it: ask a supervisor to see more")
            guardians = [GuardianView(name=g.name, relation=relation, phone=g.phone,
                                      email=g.email)
                         for g, relation in s.execute(
                             select(Guardian, Guardianship.relation)
                             .join(Guardianship, Guardianship.guardian_id == Guardian.id)
                             .where(Guardianship.child_id == child.id).order_by(Guardian.id))]
            in_force = db_consent.services_in_force(s, child.token)
            services = [name for name in SERVICES if name in in_force]
            usage_log.append(
                s, at=now, actor=actor.user, subject=child.token, action="reveal",
                purpose=grant.reason, alert_id=grant.alert_id,
                detail=clip(f"identity shown under reveal {grant.id}: name, "
                            f"{len(guardians)} guardian(s), services"))
            detail = ChildDetail(child=child.token, name=child.name, guardians=guardians,
                                 services=services, reveal_id=grant.id,
                                 expires_at=grant.expires_at)
            if trail_s > 0:
                devices = list(s.scalars(select(Device.id).where(Device.child_id == child.id)))
                t, lat, lon = repo.trail(s, devices, now - trail_s, now, MAX_TRAIL_POINTS)
                usage_log.append(
                    s, at=now, actor=actor.user, subject=child.token, action=HISTORY_ACTION,
                    purpose=grant.reason, alert_id=grant.alert_id,
                    detail=clip(f"{len(t)} positions of {len(devices)} device(s) from "
                                f"{iso(now - trail_s)} to {iso(now)} ({trail_s:.0f} s) "
                                f"under reveal {grant.id}"))
                detail = ChildDetail(child=detail.child, name=detail.name,
                                     guardians=guardians, services=services,
                                     reveal_id=grant.id, expires_at=grant.expires_at,
                                     trail_t=pack("t", t), trail_lat=pack("lat", lat),
                                     trail_lon=pack("lon", lon))
        return detail

    # --------------------------------------------------------- disclosures
    def disclose(self, req: DiscloseRequest, actor: Actor | None) -> Reply:
        """Ask for a disclosure: it waits for a supervisor, and nothing is
        disclosed (nor logged as used) until one approves."""
        assert actor is not None
        reason = check_reason(req.reason)
        alert = self.engine.desk.find(check_id(req.alert_id, "alert"))
        check_disclosable(alert)
        if not alert.saved:
            raise Refused("busy", f"alert {alert.id} is not in the store yet; try again in a "
                                  "moment")
        now = self.clock()
        with self._store("the disclosure request") as s:
            waiting = s.scalar(select(Disclosure.id).where(
                Disclosure.alert_id == alert.id, Disclosure.agency == req.agency,
                Disclosure.state == "pending"))
            if waiting is not None:
                raise Refused("illegal", f"disclosure {waiting} of alert {alert.id} to "
                                         f"{req.agency} already waits for a supervisor")
            row = Disclosure(alert_id=alert.id, agency=req.agency, reason=reason,
                             requested_by=actor.user, requested_at=now, state="pending")
            s.add(row)
            s.flush()
            view = disclosure_view(row, self._alert_child(s, alert.id))
        log.info("disclosure %d of alert %d to %s asked by %s", view.id, alert.id, req.agency,
                 actor.user)
        return DisclosureReply(disclosure=view)

    def decide_disclosure(self, req: DisclosureDecision, actor: Actor | None) -> Reply:
        """Approve (with how the guardian was told) or refuse; an approval
        needs the alert still to be an unresolved emergency, and writes the
        usage record and a line in the alert's history (which names no
        guardian: the notice itself stays with the disclosure and the log)."""
        assert actor is not None
        check_id(req.disclosure_id, "disclosure")
        now = self.clock()
        with self._store("the decision") as s:
            row = s.get(Disclosure, req.disclosure_id)
            if row is None:
                raise Refused("unknown", f"no disclosure {req.disclosure_id}")
            check_decider(actor.user, actor.roles, row.requested_by, row.state,
                          f"disclosure {row.id}")
            token = self._alert_child(s, row.alert_id)
            row.decided_by, row.decided_at = actor.user, now
            if req.approve:
                notice = check_notice(req.guardian_notice)
                alert = self.engine.desk.alerts.get(row.alert_id)
                if alert is None:
                    raise Refused("illegal", f"alert {row.alert_id} is resolved: a closed case "
                                             "is not disclosed (refuse this one)")
                check_disclosable(alert)
                row.state, row.guardian_notice, row.guardian_notified_at = (
                    "approved", notice, now)
                usage_log.append(
                    s, at=now, actor=actor.user, subject=token, action="disclosure",
                    purpose=row.reason, alert_id=row.alert_id,
                    detail=clip(f"disclosure {row.id} to {row.agency}, asked by "
                                f"{row.requested_by}, approved by {actor.user}; guardian "
                                f"notice: {notice}"))
                db_alerts.append(s, row.alert_id, HistoryEntry(
                    "disclosure", actor.user, now,
                    detail=f"to {row.agency} (disclosure {row.id}, asked by "
                           f"{row.requested_by}); guardian notified"[:200]))
            else:
                row.state = "refused"
            view = disclosure_view(row, token)
        what = "approved" if req.approve else "refused"
        self.engine.users.record(actor.user, "cmd.decide_disclosure", True,
                                 f"disclosure {view.id} of alert {view.alert_id} to "
                                 f"{view.agency} {what}")
        log.info("disclosure %d of alert %d to %s %s by %s", view.id, view.alert_id,
                 view.agency, what, actor.user)
        return DisclosureReply(disclosure=view)

    def disclosures(self, req: DisclosuresRequest, actor: Actor | None) -> Reply:
        """Supervisors and auditors see every disclosure; anyone else their own."""
        assert actor is not None
        q = (select(Disclosure, Child.token).join(Alert, Alert.id == Disclosure.alert_id)
             .join(Child, Child.id == Alert.child_id))
        if req.pending_only:
            q = q.where(Disclosure.state == "pending")
        if not actor.roles & {"supervisor", "auditor"}:
            q = q.where(Disclosure.requested_by == actor.user)
        with self._store("the list of disclosures") as s:
            rows = s.execute(q.order_by(Disclosure.id.desc()).limit(MAX_LIST)).all()
            return DisclosureList(disclosures=[disclosure_view(r, t) for r, t in rows])

    @staticmethod
    def _alert_child(s: Session, alert_id: int) -> str:
        token = s.scalar(select(Child.token).join(Alert, Alert.child_id == Child.id)
                         .where(Alert.id == alert_id))
        if token is None:
            raise Refused("unknown", f"alert {alert_id} is not in the store")
        return token

    # ----------------------------------------------------------- usage log
    def usage(self, req: UsageRequest, actor: Actor | None) -> Reply:
        """A page of the usage log with whether its chain verified (checked
        at most once a minute); an export is itself logged."""
        assert actor is not None
        f = req.filter
        for name in ("since", "until"):
            value = getattr(f, name)
            if value is not None and not math.isfinite(value):
                raise Refused("bad_value", f"{name} must be a time")
        if f.subject is not None and len(f.subject) > MAX_TOKEN:
            raise Refused("bad_value", "subject must be a child's token")
        now = self.clock()
        with self._store("the usage log's reading") as s:
            rows = usage_log.query(s, f)
            ok, problem = self._verify()
            if req.export:
                usage_log.append(s, at=now, actor=actor.user, subject=f.subject or "",
                                 action="export", purpose="usage log export",
                                 detail=usage_log.export_detail(f, len(rows)))
        return UsageRows(rows=rows, verified=ok, problem=problem)

    def _verify(self) -> tuple[bool, str]:
        """The chain's last verdict. The walk (seconds for a million
        records) runs in a thread of its own, never in the engine's loop;
        only a request before the first walk has finished waits for it."""
        with self._lock:
            cached = self._verified
            if cached is None or time.monotonic() - cached[0] >= VERIFY_EVERY_S:
                self._start_check()
            checking = self._checking
        if cached is None and checking is not None:
            checking.join()
            cached = self._verified
        assert cached is not None
        return cached[1], cached[2]

    def _start_check(self) -> None:
        if self._checking is None or not self._checking.is_alive():
            self._checking = threading.Thread(target=self._check, name="usage-verify",
                                              daemon=True)
            self._checking.start()

    def _check(self) -> None:
        try:
            with self.engine.sessions() as s:
                result = usage_log.verify(s)
            ok, problem = result.ok, result.reason
        except Exception as exc:  # the store is busy: say so, try again next time
            ok, problem = False, f"the chain could not be checked ({type(exc).__name__})"
        if not ok:
            log.error("the usage log does not verify: %s", problem)
        with self._lock:
            self._verified = (time.monotonic(), ok, problem)
