"""The guardians' notification outbox (``db.tables.Notice``).

Why an outbox: the engine decides that a notice is due, the notifier
delivers it, and either may die at any moment. The row is written in the
engine's transaction and survives both; the notifier claims due rows,
sends them and writes the outcome. Delivery is at least once: a notice
marked sent is never sent again, a notice in flight when the notifier died
is sent again once its claim lapses (the e-mail's Message-ID lets a mail
system fold the copy).

One notifier runs per installation (the supervisor starts one). Claims
are still safe if two ever run: a claim moves the row's ``next_at`` past a
lease with a compare-and-set, so only one of them wins a row.

A row's ``state`` is pending, sent or dead; a pending row that failed
before (``attempts`` > 0) is "retrying" to operators and on the bus.

Every function leaves the commit to the caller.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal

from sqlalchemy import func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from db.tables import Child, Consent, Guardian, Guardianship, Notice
from models.consent import parse_services
from models.messages import NoticeState
from models.notices import (
    Channel,
    Outgoing,
    after_failure,
    check_kind,
    render,
    retry_delay,
)

# A claimed row comes back due after this long if the notifier never said
# how its sending went (it died): the notifier gives up on a batch well
# before, so a live notifier never has its own rows taken back.
LEASE_S = 120.0
KEY_LIMIT = 160  # db.tables.Notice.key

Skipped = Literal["", "no_consent", "no_guardian", "removed", "repeat"]


class Enqueued(list[Notice]):
    """The rows ``enqueue`` added (a list), and ``skipped``: why there are
    none ("" when there are some), so the engine can count what it did not
    send instead of losing it in silence."""

    __slots__ = ("skipped",)

    def __init__(self, rows: Iterable[Notice] = (), skipped: Skipped = "") -> None:
        super().__init__(rows)
        self.skipped: Skipped = skipped


def _routine(session: Session, child_ids: Iterable[int]) -> set[int]:
    """Of ``child_ids``, those with a routine consent in force."""
    ids = sorted(set(child_ids))
    if not ids:
        return set()
    rows = session.execute(select(Consent.child_id, Consent.services).where(
        Consent.child_id.in_(ids), Consent.withdrawn_at.is_(None)))
    return {child for child, services in rows if "routine" in parse_services(services)}


def _channel(guardian: Guardian) -> tuple[Channel, str]:
    """E-mail when the guardian has one; else the phone (SMS); else the
    record file, so that no notice is dropped for want of an address."""
    if guardian.email:
        return "email", guardian.email
    if guardian.phone:
        return "sms", guardian.phone
    return "record", ""


def enqueue(session: Session, *, child_id: int, kind: str, zone: str, event_at: float,
            key: str, now: float, offset_s: float) -> Enqueued:
    """One pending row per guardian of the child, due at once, when the child
    has routine consent in force.

    ``key`` names the event (e.g. the engine's "arrival:C-AB12:zone 3:day");
    each row's key is ``{key}:g{guardian id}``, unique in the table, so an
    event enqueued again (the engine replaying its journal after a restart)
    adds nothing. Concurrent enqueues of one key are folded by the store
    (an insert that ignores the conflict), not by luck.
    """
    check_kind(kind)
    key = key.strip()
    if not key or len(key) > KEY_LIMIT - 12:
        raise ValueError(f"key: 1 to {KEY_LIMIT - 12} characters (got {len(key)})")
    child = session.get(Child, child_id)
    if child is None:
        raise ValueError(f"child: no child {child_id}")
    if child.removed_at is not None:
        return Enqueued(skipped="removed")
    if child_id not in _routine(session, [child_id]):
        return Enqueued(skipped="no_consent")
    people = list(session.scalars(
        select(Guardian).join(Guardianship, Guardianship.guardian_id == Guardian.id)
        .where(Guardianship.child_id == child_id).order_by(Guardian.id)))
    if not people:
        return Enqueued(skipped="no_guardian")
    text = render(kind, child.name, zone, event_at, offset_s)
    rows: list[dict[str, Any]] = []
    for guardian in people:
        channel, address = _channel(guardian)
        rows.append(dict(key=f"{key}:g{guardian.id}", child_id=child_id,
                         guardian_id=guardian.id, kind=kind, zone=zone[:120],
                         event_at=event_at, channel=channel, address=address[:120],
                         subject=text.subject, body=text.body, created_at=now,
                         state="pending", attempts=0, next_at=now, sent_at=None,
                         last_error=""))
    ids = _insert_new(session, rows)
    if not ids:
        return Enqueued(skipped="repeat")
    return Enqueued(session.scalars(select(Notice).where(Notice.id.in_(ids))
                                    .order_by(Notice.id)))


def _insert_new(session: Session, rows: list[dict[str, Any]]) -> list[int]:
    """Insert the rows whose key is new; the ids of those inserted."""
    dialect = session.get_bind().dialect.name
    if dialect in ("sqlite", "postgresql"):
        insert = sqlite.insert if dialect == "sqlite" else postgresql.insert
        stmt = (insert(Notice).values(rows).on_conflict_do_nothing(index_elements=["key"])
                .returning(Notice.id))
        return list(session.scalars(stmt))
    # Any other store: select, then insert in this transaction; a concurrent
    # enqueue of the same key then fails on the unique key, never doubles.
    known = set(session.scalars(select(Notice.key).where(
        Notice.key.in_([r["key"] for r in rows]))))
    fresh = [Notice(**r) for r in rows if r["key"] not in known]
    session.add_all(fresh)
    session.flush()
    return [n.id for n in fresh]


def claim_due(session: Session, now: float, limit: int,
              lease_s: float = LEASE_S) -> list[Notice]:
    """Pending rows due by ``now``, oldest first, claimed for ``lease_s``.

    A row whose child's routine consent was withdrawn (or whose child left)
    since it was queued is not sent: it comes back already dead, its
    ``last_error`` saying why, so the caller can tell the consoles.
    """
    candidates = list(session.scalars(
        select(Notice).where(Notice.state == "pending", Notice.next_at <= now)
        .order_by(Notice.next_at, Notice.id).limit(max(0, limit))))
    claimed: list[Notice] = []
    for row in candidates:
        won = session.execute(
            update(Notice)
            .where(Notice.id == row.id, Notice.state == "pending",
                   Notice.next_at == row.next_at)
            .values(next_at=now + lease_s)
            .execution_options(synchronize_session=False))
        if won.rowcount == 1:  # type: ignore[attr-defined]
            row.next_at = now + lease_s
            claimed.append(row)
    if claimed:
        session.flush()
        gone = set(session.scalars(select(Child.id).where(
            Child.id.in_({r.child_id for r in claimed}), Child.removed_at.is_not(None))))
        allowed = _routine(session, (r.child_id for r in claimed))
        for row in claimed:
            if row.child_id in gone or row.child_id not in allowed:
                row.state, row.next_at = "dead", now
                row.last_error = ("child no longer enrolled" if row.child_id in gone
                                  else "routine consent withdrawn before sending")
    return claimed


def release(session: Session, ids: Iterable[int], now: float) -> int:
    """Give claimed rows that were never tried back (the notifier is
    stopping): due at once, no attempt counted."""
    ids = sorted(set(ids))
    if not ids:
        return 0
    result = session.execute(
        update(Notice).where(Notice.id.in_(ids), Notice.state == "pending")
        .values(next_at=now).execution_options(synchronize_session=False))
    return int(result.rowcount or 0)  # type: ignore[attr-defined]


def by_ids(session: Session, ids: Iterable[int]) -> dict[int, Notice]:
    """Rows by id (the notifier writes a batch's outcomes in one go)."""
    ids = sorted(set(ids))
    if not ids:
        return {}
    return {n.id: n for n in session.scalars(select(Notice).where(Notice.id.in_(ids)))}


def mark_sent(notice: Notice, now: float) -> None:
    """Delivered: never sent again. Marking twice changes nothing."""
    if notice.state == "sent":
        return
    notice.state = "sent"
    notice.attempts += 1
    notice.sent_at = now
    notice.next_at = now


def mark_failed(notice: Notice, error: str, permanent: bool, now: float,
                max_attempts: int) -> NoticeState:
    """Record a failed attempt: due again after the retry schedule's delay
    ("retrying"), or dead when the failure is permanent or the attempts are
    used up. A sent notice stays sent (a late failure report of a copy)."""
    if notice.state == "sent":
        return "sent"
    notice.attempts += 1
    notice.last_error = error[:300]
    outcome = after_failure(notice.attempts, permanent, max_attempts)
    if outcome == "dead":
        notice.state, notice.next_at = "dead", now
    else:
        notice.state, notice.next_at = "pending", now + retry_delay(notice.attempts)
    return outcome


def requeue(session: Session, notice_id: int, actor: str, now: float) -> Notice:
    """An operator tries a notice again now, with a fresh set of attempts:
    a dead one (after the address was fixed, say) or one waiting to retry.
    The row keeps who asked and the error it had."""
    actor = actor.strip()
    if not actor:
        raise ValueError("actor: must not be empty")
    notice = session.get(Notice, notice_id)
    if notice is None:
        raise ValueError(f"notice: no notice {notice_id}")
    if notice.state == "sent":
        raise ValueError(f"notice {notice_id} was sent already; nothing to retry")
    before = notice.last_error
    notice.state, notice.attempts, notice.next_at = "pending", 0, now
    notice.last_error = (f"requeued by {actor}" + (f"; was: {before}" if before else ""))[:300]
    session.flush()
    return notice


def for_child(session: Session, child_id: int, limit: int = 50) -> list[Notice]:
    """The child's notices, newest event first: what an operator reads on the
    child card to answer "did my child's notice go?"."""
    return list(session.scalars(
        select(Notice).where(Notice.child_id == child_id)
        .order_by(Notice.event_at.desc(), Notice.id.desc()).limit(max(0, limit))))


def counts(session: Session) -> dict[str, int]:
    """Rows per state, with pending split into "pending" (never tried) and
    "retrying" (failed before); every key present, zero or not."""
    out = {"pending": 0, "retrying": 0, "sent": 0, "dead": 0}
    rows = session.execute(select(Notice.state, Notice.attempts, func.count())
                           .group_by(Notice.state, Notice.attempts))
    for state, attempts, n in rows:  # a few groups: attempts are capped
        shown = "retrying" if state == "pending" and attempts > 0 else str(state)
        out[shown] = out.get(shown, 0) + int(n)
    return out


def pending_count(session: Session) -> int:
    """Rows still to deliver (the notifier's heartbeat): an index range on
    ``(state, next_at)``, cheap at any table size, unlike ``counts``."""
    return int(session.scalar(select(func.count()).select_from(Notice)
                              .where(Notice.state == "pending")) or 0)


def outgoing(session: Session, rows: Sequence[Notice]) -> list[Outgoing]:
    """The rows as adapters take them, with their children's tokens."""
    ids = {r.child_id for r in rows}
    tokens = dict(session.execute(select(Child.id, Child.token).where(Child.id.in_(ids))).all()
                  ) if ids else {}
    return [Outgoing(id=r.id, key=r.key, child_token=tokens.get(r.child_id, ""), kind=r.kind,
                     zone=r.zone, channel=r.channel, address=r.address, subject=r.subject,
                     body=r.body, event_at=r.event_at, attempts=r.attempts) for r in rows]
