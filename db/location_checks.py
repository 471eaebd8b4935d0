"""A guardian's current-location check (service 5), answered from the store.

Why every answer is written twice: ``location_checks`` is the service's own
record (who asked about whom, when, what they were told), and the
location-usage log is the legal one (Location Information Act §16(2)) an
auditor verifies; both go in the caller's transaction, so no answer leaves
without its records. A refusal is recorded too ("no_consent", "no_fix").

What a guardian may learn is only about children they answer for
(guardianships), while enrolled, with location consent in force: a child
who is not theirs is answered exactly like a token that does not exist,
and recorded ("not_found") so that an auditor sees someone probing.

The position is the newest fix with a position of any device registered to
the child, taken since that device was registered to it: a device passed
on from another child must not reveal where that child was. PostgreSQL
reads it from ``latest_positions``, which the recorder keeps in step with
the fixes; SQLite (which keeps no such table) from the fixes' index.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal

from sqlalchemy import select
from sqlalchemy.orm import Session

from db import usage_log
from db.tables import (
    Child,
    Consent,
    Device,
    Fix,
    Guardian,
    Guardianship,
    LatestPosition,
    LocationCheck,
)
from models.consent import parse_services
from models.geo import place_name

Outcome = Literal["answered", "no_fix", "no_consent"]
NOT_FOUND = "not_found"  # recorded only: the guardian is told nothing about the child
PURPOSE = "guardian's location check"
# Korean family names of two syllables (most are one: 김, 이, 박…).
_TWO_SYLLABLE_FAMILY = frozenset({"남궁", "황보", "제갈", "선우", "독고", "사공", "서문",
                                  "동방", "어금", "망절"})


@dataclass(frozen=True, slots=True)
class Answer:
    """What a guardian is told about one child."""

    child: str  # the token
    name: str  # the given name: enough to tell siblings apart
    outcome: Outcome
    lat: float | None = None
    lon: float | None = None
    place: str = ""
    fix_age_s: float | None = None
    accuracy_m: float | None = None

    def to_json(self) -> dict[str, object]:
        out: dict[str, object] = {"child": self.child, "name": self.name,
                                  "outcome": self.outcome}
        if self.outcome == "answered":
            out.update(lat=self.lat, lon=self.lon, place=self.place,
                       fix_age_s=self.fix_age_s, accuracy_m=self.accuracy_m)
        return out

    def detail(self) -> str:
        """The usage record's words: what was revealed, never the name."""
        if self.outcome == "no_consent":
            return "no_consent: no location consent in force; nothing located"
        if self.outcome == "no_fix":
            return "no_fix: no position stored for the child's devices"
        accuracy = "unknown" if self.accuracy_m is None else f"±{self.accuracy_m:.0f} m"
        return (f"answered: {self.place or 'outside Korea'} ({self.lat:.5f}, {self.lon:.5f}), "
                f"accuracy {accuracy}, fix {self.fix_age_s:.0f} s old")


def given_name(name: str) -> str:
    """The given name of a stored name: "홍길동" and "홍 길동" → "길동",
    "남궁민수" → "민수"; a name in Latin letters → its first word."""
    words = name.split()
    if not words:
        return ""
    if all("가" <= c <= "힣" for w in words for c in w):
        if len(words) > 1:
            return "".join(words[1:])
        word = words[0]
        if len(word) < 2:
            return word
        return word[2:] if len(word) >= 4 and word[:2] in _TWO_SYLLABLE_FAMILY else word[1:]
    return words[0]


def _newest_fix(session: Session, child_id: int) -> LatestPosition | Fix | None:
    """One key lookup per device (a child has one to three), whatever the
    days of fixes behind it: in ``latest_positions`` on PostgreSQL, on the
    fixes' (device, time) index on SQLite. A device's newest located fix
    from before it was the child's means nothing newer came since, so the
    device has nothing to say about this child."""
    if session.get_bind().dialect.name == "postgresql":
        return session.scalar(
            select(LatestPosition).join(Device, Device.id == LatestPosition.device_id)
            .where(Device.child_id == child_id, LatestPosition.t >= Device.registered_at)
            .order_by(LatestPosition.t.desc()).limit(1))
    best: Fix | None = None
    for device_id, registered_at in session.execute(
            select(Device.id, Device.registered_at).where(Device.child_id == child_id)):
        fix = session.scalar(
            select(Fix).where(Fix.device_id == device_id, Fix.t >= registered_at,
                              Fix.lat.is_not(None), Fix.lon.is_not(None))
            .order_by(Fix.t.desc()).limit(1))
        if fix is not None and (best is None or fix.t > best.t):
            best = fix
    return best


def _place(lat: float, lon: float) -> str:
    try:
        return place_name(lat, lon)
    except ValueError:  # a stored position out of range: say nothing rather than fail
        return ""


def _locate(session: Session, child: Child, consented: bool, now: float) -> Answer:
    name = given_name(child.name)
    if not consented:
        return Answer(child.token, name, "no_consent")
    fix = _newest_fix(session, child.id)
    if fix is None:
        return Answer(child.token, name, "no_fix")
    age = max(0.0, now - fix.t)  # a device clock ahead of ours is "just now"
    accuracy = None if fix.accuracy is None or not math.isfinite(fix.accuracy) \
        else float(fix.accuracy)
    return Answer(child.token, name, "answered", float(fix.lat), float(fix.lon),
                  _place(fix.lat, fix.lon), round(age, 1), accuracy)


def answer(session: Session, guardian: Guardian, now: float,
           child_token: str | None = None) -> list[Answer]:
    """Where the guardian's enrolled children are (only ``child_token`` when
    given; an empty list when it is not theirs), each answer recorded. The
    caller commits."""
    q = (select(Child).join(Guardianship, Guardianship.child_id == Child.id)
         .where(Guardianship.guardian_id == guardian.id, Child.removed_at.is_(None))
         .order_by(Child.id))
    if child_token is not None:
        q = q.where(Child.token == child_token)
    children = list(session.scalars(q))
    if child_token is not None and not children:
        probed = session.scalar(select(Child.id).where(Child.token == child_token))
        session.add(LocationCheck(at=now, guardian_id=guardian.id, child_id=probed,
                                  outcome=NOT_FOUND))
        session.flush()
        return []
    located: set[int] = set()
    if children:
        for child_id, services in session.execute(
                select(Consent.child_id, Consent.services).where(
                    Consent.child_id.in_([c.id for c in children]),
                    Consent.withdrawn_at.is_(None))):
            if "location" in parse_services(services):
                located.add(child_id)
    answers = []
    actor = f"guardian:{guardian.id}"
    for child in children:
        a = _locate(session, child, child.id in located, now)
        session.add(LocationCheck(at=now, guardian_id=guardian.id, child_id=child.id,
                                  outcome=a.outcome, lat=a.lat, lon=a.lon, place=a.place[:80],
                                  fix_age_s=a.fix_age_s, accuracy_m=a.accuracy_m))
        usage_log.append(session, at=now, actor=actor, subject=child.token,
                         action="location_check", purpose=PURPOSE, detail=a.detail())
        answers.append(a)
    session.flush()
    return answers
