"""Guardians and the consent registry in the store.

Why here and not in the engine alone: consent is the legal ground for
collecting a child's location (Location Information Act §15, a guardian's
under 14, §25), and its withdrawal obliges us to delete what was collected
at once (§24). The registry keeps every consent ever given as evidence (a
withdrawal is written on the row); the location history is what goes.

Every function leaves the commit to the caller, so a consent and its usage
record, or a withdrawal, its deletions and its usage record, land together
or not at all.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

from sqlalchemy import delete, false, func, not_, or_, select
from sqlalchemy.orm import Session

from db import holdings, latest, usage_log
from db.tables import Alert, Child, Consent, Fix, Guardian, Guardianship
from models.consent import (
    CASE_LEAD_S,
    ConsentBook,
    Service,
    check_consent,
    format_services,
    parse_services,
)

# Digits, "+", "-" and spaces, as people write them (010-1234-5678,
# +82 10 1234 5678); 7 to 15 digits (E.164's longest) in all.
_PHONE = re.compile(r"\+?[0-9 -]+")
_EMAIL = re.compile(r"[^@\s]+@[^@\s.]+(\.[^@\s.]+)+")
WITHDRAWAL = "withdrawal"  # the usage-log action of a withdrawal (the recorder watches for it)


@dataclass(frozen=True, slots=True)
class GuardianEntry:
    """A guardian and the children they answer for: ``(token, relation)``."""

    id: int
    name: str
    phone: str
    email: str
    children: tuple[tuple[str, str], ...]


@dataclass(frozen=True, slots=True)
class WithdrawalReport:
    """What a withdrawal did, in counts (the usage log holds the same words,
    never the deleted positions)."""

    child_token: str
    withdrawn: int  # consents that were in force
    deleted: int  # fixes deleted
    kept: int  # fixes kept because an open alert's case needs them
    open_alerts: tuple[int, ...]
    usage_seq: int | None  # the "withdrawal" usage record, None when nothing happened

    def summary(self) -> str:
        """E.g. "consents 1 withdrawn; fixes 812 deleted, 40 kept for open alert 12"."""
        head = (f"consents {self.withdrawn} withdrawn" if self.withdrawn
                else "no consent was in force")
        text = f"{head}; fixes {self.deleted} deleted"
        if self.open_alerts:
            ids = ", ".join(str(a) for a in self.open_alerts[:10])
            more = f" and {len(self.open_alerts) - 10} more" if len(self.open_alerts) > 10 else ""
            plural = "s" if len(self.open_alerts) > 1 else ""
            text += f", {self.kept} kept for open alert{plural} {ids}{more}"
        return text


class WithdrawalScope(NamedTuple):
    """The child's fixes a withdrawal removes (``withdrawal_scope``)."""

    child_id: int
    device_ids: tuple[str, ...]  # sorted
    # (from, to) device time, both included: an open alert's case needs
    # the fixes from CASE_LEAD_S before it opened until the withdrawal
    windows: tuple[tuple[float, float], ...]
    open_alerts: tuple[int, ...]  # their ids, by id
    # per device, the spans of fix time that are the child's (db.holdings)
    spans: holdings.Spans


def _text(field: str, value: str, limit: int, required: bool = True) -> str:
    value = value.strip()
    if required and not value:
        raise ValueError(f"{field}: must not be empty")
    if len(value) > limit:
        raise ValueError(f"{field}: at most {limit} characters")
    if not value.isprintable():
        raise ValueError(f"{field}: control characters are not allowed")
    return value


def _time(now: float) -> float:
    if isinstance(now, bool) or not isinstance(now, (int, float)) or not math.isfinite(now):
        raise ValueError(f"time: must be a finite number of seconds, not {now!r}")
    return float(now)


def check_phone(phone: str) -> str:
    """A phone number as given, or "" for none; ValueError naming the field."""
    phone = phone.strip()
    if not phone:
        return ""
    digits = sum(c.isdigit() for c in phone)
    if len(phone) > 40 or not _PHONE.fullmatch(phone) or not 7 <= digits <= 15:
        raise ValueError(f"phone {phone!r}: digits, '+', '-' and spaces only, "
                         "7 to 15 digits, '+' only first")
    return phone


def check_email(email: str) -> str:
    """An e-mail address of the usual shape, or "" for none."""
    email = email.strip()
    if not email:
        return ""
    if len(email) > 120 or not _EMAIL.fullmatch(email) or not email.isprintable():
        raise ValueError(f"email {email!r}: not an address like name@example.kr")
    return email


def _child(session: Session, token: str) -> Child:
    child = session.scalar(select(Child).where(Child.token == token))
    if child is None:
        raise ValueError(f"child: no child with token {token!r}")
    return child


def _guardian(session: Session, guardian_id: int) -> Guardian:
    guardian = session.get(Guardian, guardian_id)
    if guardian is None:
        raise ValueError(f"guardian: no guardian {guardian_id}")
    return guardian


def add_guardian(session: Session, name: str, phone: str, email: str, now: float) -> Guardian:
    """A new guardian. A phone or an e-mail is required: a guardian must be
    told when the child's data is provided or disclosed (§19(3))."""
    guardian = Guardian(name=_text("name", name, 80), phone=check_phone(phone),
                        email=check_email(email), created_at=_time(now))
    if not guardian.phone and not guardian.email:
        raise ValueError("phone: a guardian needs a phone or an e-mail to be told of "
                         "disclosures")
    session.add(guardian)
    session.flush()
    return guardian


def link(session: Session, child_token: str, guardian_id: int, relation: str) -> Guardianship:
    """Make the guardian answer for the child. Linking again is harmless and
    only changes the relation when a new one is given."""
    relation = _text("relation", relation, 20, required=False)
    child = _child(session, child_token)
    _guardian(session, guardian_id)
    row = session.get(Guardianship, (child.id, guardian_id))
    if row is None:
        row = Guardianship(child_id=child.id, guardian_id=guardian_id, relation=relation)
        session.add(row)
    elif relation:
        row.relation = relation
    session.flush()
    return row


def give(session: Session, child_token: str, guardian_id: int | None,
         services: str | Iterable[str], age_band: str, by: str, now: float) -> Consent:
    """Record a consent and its usage record.

    A guardian consents only for a child they are linked to. A new consent
    from the same guardian (or from the child, for ``14plus`` without one)
    replaces that one's consent in force, so narrowing the services works
    rather than adding to what was given before.
    """
    chosen = check_consent(services, age_band, guardian_id)
    by = _text("by", by, 64)
    now = _time(now)
    child = _child(session, child_token)
    if guardian_id is not None:
        _guardian(session, guardian_id)
        if session.get(Guardianship, (child.id, guardian_id)) is None:
            raise ValueError(f"guardian: guardian {guardian_id} does not answer for "
                             f"{child_token}; link them first")
    same = (Consent.guardian_id.is_(None) if guardian_id is None
            else Consent.guardian_id == guardian_id)
    replaced = session.scalars(select(Consent).where(
        Consent.child_id == child.id, Consent.withdrawn_at.is_(None), same)).all()
    for old in replaced:
        old.withdrawn_at = now
        old.withdrawn_by = by
    consent = Consent(child_id=child.id, guardian_id=guardian_id,
                      services=format_services(chosen), age_band=age_band, given_at=now,
                      recorded_by=by, withdrawn_at=None, withdrawn_by="")
    session.add(consent)
    session.flush()
    who = f"guardian {guardian_id}" if guardian_id is not None else "the child"
    detail = f"consent {consent.id}: services {consent.services}; age band {age_band}; by {who}"
    if replaced:
        detail += "; replaces consent " + ", ".join(str(c.id) for c in replaced)
    usage_log.append(session, at=now, actor=by, subject=child.token, action="consent",
                     detail=detail)
    return consent


def withdraw(session: Session, child_token: str, by: str, now: float) -> WithdrawalReport:
    """Withdraw every consent of the child and delete its location history.

    The fixes of all its devices (``withdrawal_scope``) go at once (§24),
    except those an open alert's case needs: from ``CASE_LEAD_S`` before it
    opened until now. Those stay with the case; retention deletes them when
    it closes. The devices' latest positions go with their fixes (or fall
    back to the newest fix a case keeps).
    Withdrawing again is harmless: nothing in force, nothing left to delete,
    no second usage record.
    """
    by = _text("by", by, 64)
    now = _time(now)
    child = _child(session, child_token)
    in_force = session.scalars(select(Consent).where(
        Consent.child_id == child.id, Consent.withdrawn_at.is_(None))).all()
    for consent in in_force:
        consent.withdrawn_at = now
        consent.withdrawn_by = by
    scope = _scope(session, child, now)
    windows = [Fix.t.between(lo, hi) for lo, hi in scope.windows]
    in_case = or_(*windows) if windows else false()
    deleted = kept = 0
    if scope.device_ids:
        mine = holdings.fixes_within(scope.spans)
        result = session.execute(delete(Fix).where(mine, not_(in_case)),
                                 execution_options={"synchronize_session": False})
        deleted = int(result.rowcount or 0)  # type: ignore[attr-defined]
        latest.refresh(session.connection(), scope.device_ids)
        kept = int(session.scalar(select(func.count()).select_from(Fix)
                                  .where(mine, in_case)) or 0)
    report = WithdrawalReport(child.token, len(in_force), deleted, kept, scope.open_alerts,
                              None)
    if not in_force and not deleted:
        return report
    seq = usage_log.append(session, at=now, actor=by, subject=child.token,
                           action=WITHDRAWAL,
                           alert_id=scope.open_alerts[0] if len(scope.open_alerts) == 1 else None,
                           detail=report.summary()[:500])
    return WithdrawalReport(report.child_token, report.withdrawn, deleted, kept,
                            report.open_alerts, seq)


def withdrawal_scope(session: Session, child_token: str, now: float) -> WithdrawalScope:
    """What a withdrawal of the child at ``now`` removes: the fixes of
    these devices within the spans the child held them, except those whose
    device time falls in one of these case windows. ``withdraw`` deletes
    that from the store; the recorder
    takes the same off the tape (``db.tape_redaction``), so both keep
    exactly what an open case needs."""
    return _scope(session, _child(session, child_token), _time(now))


def _scope(session: Session, child: Child, now: float) -> WithdrawalScope:
    open_alerts = session.execute(
        select(Alert.id, Alert.opened_at)
        .where(Alert.child_id == child.id, Alert.state != "resolved")
        .order_by(Alert.id)).all()
    spans = holdings.spans_of(session, [child.id])
    return WithdrawalScope(
        child.id, tuple(spans),
        tuple((opened_at - CASE_LEAD_S, now) for _, opened_at in open_alerts),
        tuple(alert_id for alert_id, _ in open_alerts), spans)


def book(session: Session) -> ConsentBook:
    """Every consent in force, for the engine and the gateway to hold in memory."""
    rows = session.execute(select(Consent.child_id, Consent.services)
                           .where(Consent.withdrawn_at.is_(None)))
    return ConsentBook.from_rows((child_id, services) for child_id, services in rows)


def services_in_force(session: Session, child_token: str) -> frozenset[Service]:
    """The union of the child's consents in force (``ConsentBook.updated``
    takes it to apply one change without reloading the whole book)."""
    child = _child(session, child_token)
    rows = session.scalars(select(Consent.services).where(
        Consent.child_id == child.id, Consent.withdrawn_at.is_(None)))
    out: frozenset[Service] = frozenset()
    for services in rows:
        out |= parse_services(services)
    return out


def consents(session: Session, child_token: str) -> list[Consent]:
    """Every consent of the child, in force or not, oldest first."""
    child = _child(session, child_token)
    return list(session.scalars(select(Consent).where(Consent.child_id == child.id)
                                .order_by(Consent.given_at, Consent.id)))


def children_without_consent(session: Session) -> list[str]:
    """Tokens of children with no consent in force, by child id: the ones the
    gateway refuses and an administrator has to follow up."""
    in_force = select(Consent.id).where(Consent.child_id == Child.id,
                                        Consent.withdrawn_at.is_(None)).exists()
    return list(session.scalars(select(Child.token).where(~in_force).order_by(Child.id)))


def guardians(session: Session, child_token: str | None = None) -> list[GuardianEntry]:
    """Guardians by id with the children they answer for; only the child's
    guardians when ``child_token`` is given."""
    query = select(Guardian).order_by(Guardian.id)
    if child_token is not None:
        child = _child(session, child_token)
        query = query.join(Guardianship, Guardianship.guardian_id == Guardian.id).where(
            Guardianship.child_id == child.id)
    people = list(session.scalars(query))
    links: dict[int, list[tuple[str, str]]] = {g.id: [] for g in people}
    if people:
        rows = (select(Guardianship.guardian_id, Child.token, Guardianship.relation)
                .join(Child, Child.id == Guardianship.child_id)
                .order_by(Guardianship.guardian_id, Child.id))
        if child_token is not None:  # a few ids; all of them would pass SQLite's limit
            rows = rows.where(Guardianship.guardian_id.in_(list(links)))
        for guardian_id, token, relation in session.execute(rows):
            if guardian_id in links:
                links[guardian_id].append((token, relation))
    return [GuardianEntry(g.id, g.name, g.phone, g.email, tuple(links[g.id])) for g in people]
