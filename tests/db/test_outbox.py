"""The notification outbox on SQLite and PostgreSQL: one row per guardian,
nothing without routine consent, repeats folded by key, the retry schedule
up to the dead letter, claims that lapse, and an operator's requeue."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db import consent as db_consent
from db import outbox
from db.store import open_store
from db.tables import Child, Notice
from models.notices import RETRY_DELAYS_S

NOW = 1_741_044_720.0  # 2025-03-04 08:32 KST
KST = 32400.0
ARRIVAL = dict(kind="school_arrival", zone="신도림초등학교", event_at=NOW, offset_s=KST)


@pytest.fixture
def sessions(store_url: str) -> Iterator[sessionmaker[Session]]:
    """Child 1 has routine consent and two guardians (one with e-mail, one
    with a phone only); child 2 only emergency consent; child 3 (14 and
    over) consented alone and has no guardian."""
    engine, factory = open_store(store_url)
    with factory() as s:
        s.add_all([Child(id=1, token="C-AAAA001", name="김민준", zone_id=None),
                   Child(id=2, token="C-BBBB002", name="이서연", zone_id=None),
                   Child(id=3, token="C-CCCC003", name="박지호", zone_id=None)])
        s.flush()
        mother = db_consent.add_guardian(s, "김엄마", "", "mother@example.kr", NOW)
        father = db_consent.add_guardian(s, "김아빠", "010-1234-5678", "", NOW)
        other = db_consent.add_guardian(s, "이보호자", "010-2222-3333", "", NOW)
        db_consent.link(s, "C-AAAA001", mother.id, "mother")
        db_consent.link(s, "C-AAAA001", father.id, "father")
        db_consent.link(s, "C-BBBB002", other.id, "mother")
        db_consent.give(s, "C-AAAA001", mother.id, "routine,emergency", "under14", "admin", NOW)
        db_consent.give(s, "C-BBBB002", other.id, "emergency", "under14", "admin", NOW)
        db_consent.give(s, "C-CCCC003", None, "routine", "14plus", "admin", NOW)
        s.commit()
    yield factory
    engine.dispose()


def _enqueue(s: Session, child_id: int = 1, key: str = "arr:1:2025-03-04",
             now: float = NOW) -> outbox.Enqueued:
    return outbox.enqueue(s, child_id=child_id, key=key, now=now, **ARRIVAL)  # type: ignore[arg-type]


def _rows(s: Session) -> int:
    return int(s.scalar(select(func.count()).select_from(Notice)) or 0)


def test_one_row_per_guardian_in_their_channel(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        rows = _enqueue(s)
        s.commit()
        assert rows.skipped == ""
        assert [(r.channel, r.address) for r in rows] == [
            ("email", "mother@example.kr"), ("sms", "010-1234-5678")]
        assert {r.key for r in rows} == {f"arr:1:2025-03-04:g{r.guardian_id}" for r in rows}
        first = rows[0]
        assert first.subject == ("[서울 아동안전] 김민준 학생이 신도림초등학교에 "
                                 "도착했습니다 (08:32)")
        assert "arrived at 신도림초등학교 at 08:32" in first.body
        assert (first.state, first.attempts, first.next_at) == ("pending", 0, NOW)


def test_no_routine_consent_no_notice(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        assert _enqueue(s, child_id=2).skipped == "no_consent"
        assert _enqueue(s, child_id=3).skipped == "no_guardian"
        db_consent.withdraw(s, "C-AAAA001", "admin", NOW + 1)
        skipped = _enqueue(s)
        assert (list(skipped), skipped.skipped) == ([], "no_consent")
        assert _rows(s) == 0


def test_the_same_event_twice_is_one_notice_per_guardian(
        sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        assert len(_enqueue(s)) == 2
        s.commit()
    with sessions() as s:  # the engine again, after a restart
        again = _enqueue(s, now=NOW + 60)
        s.commit()
        assert (list(again), again.skipped) == ([], "repeat")
        assert _rows(s) == 2
        assert len(_enqueue(s, key="dep:1:2025-03-04")) == 2  # another event is another notice


def test_retries_on_the_schedule_then_dead(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        _enqueue(s)
        s.commit()
    now = NOW
    for failures in (1, 2):
        with sessions() as s:
            claimed = outbox.claim_due(s, now, 10)
            assert len(claimed) == 2
            for row in claimed:
                assert outbox.mark_failed(row, "451 4.3.0 busy", False, now, 3) == "retrying"
            s.commit()
            assert all(r.next_at == now + RETRY_DELAYS_S[failures - 1] for r in claimed)
            assert outbox.counts(s)["retrying"] == 2
            assert outbox.claim_due(s, now + RETRY_DELAYS_S[failures - 1] - 1, 10) == []
        now += RETRY_DELAYS_S[failures - 1]
    with sessions() as s:
        claimed = outbox.claim_due(s, now, 10)
        assert [outbox.mark_failed(r, "451 again", False, now, 3) for r in claimed] == [
            "dead", "dead"]
        s.commit()
        assert outbox.counts(s) == {"pending": 0, "retrying": 0, "sent": 0, "dead": 2}
        assert outbox.claim_due(s, now + 1e6, 10) == []
        assert {(r.attempts, r.last_error) for r in outbox.for_child(s, 1)} == {(3, "451 again")}


def test_permanent_failure_is_dead_at_once_and_sent_is_final(
        sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        _enqueue(s)
        s.commit()
        mail, sms = outbox.claim_due(s, NOW, 10)
        assert outbox.mark_failed(mail, "550 5.1.1 no such user", True, NOW, 6) == "dead"
        outbox.mark_sent(sms, NOW)
        assert outbox.mark_failed(sms, "late report of a copy", False, NOW, 6) == "sent"
        s.commit()
        assert (sms.state, sms.attempts, sms.sent_at) == ("sent", 1, NOW)
        assert outbox.counts(s) == {"pending": 0, "retrying": 0, "sent": 1, "dead": 1}
        assert outbox.claim_due(s, NOW + 1e6, 10) == []


def test_a_claim_lapses_when_the_notifier_never_answers(
        sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        _enqueue(s)
        s.commit()
        assert len(outbox.claim_due(s, NOW, 10)) == 2
        s.commit()
    with sessions() as s:  # another notifier, or this one restarted at once
        assert outbox.claim_due(s, NOW + 1, 10) == []
        assert len(outbox.claim_due(s, NOW + outbox.LEASE_S, 10)) == 2
        s.commit()
        assert outbox.release(s, [r.id for r in outbox.for_child(s, 1)], NOW + 200) == 2
        assert len(outbox.claim_due(s, NOW + 200, 1)) == 1  # released: due at once, by limit


def test_withdrawn_consent_stops_what_was_queued(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        _enqueue(s)
        db_consent.withdraw(s, "C-AAAA001", "admin", NOW + 1)
        s.commit()
        claimed = outbox.claim_due(s, NOW + 2, 10)
        s.commit()
        assert {(r.state, r.last_error) for r in claimed} == {
            ("dead", "routine consent withdrawn before sending")}


def test_requeue_by_an_operator(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        _enqueue(s)
        s.commit()
        mail, sms = outbox.claim_due(s, NOW, 10)
        outbox.mark_failed(mail, "550 no such user", True, NOW, 6)
        outbox.mark_sent(sms, NOW)
        s.commit()
        again = outbox.requeue(s, mail.id, "operator1", NOW + 600)
        s.commit()
        assert (again.state, again.attempts, again.next_at) == ("pending", 0, NOW + 600)
        assert again.last_error == "requeued by operator1; was: 550 no such user"
        assert [r.id for r in outbox.claim_due(s, NOW + 600, 10)] == [mail.id]
        with pytest.raises(ValueError, match="sent already"):
            outbox.requeue(s, sms.id, "operator1", NOW)
        with pytest.raises(ValueError, match="no notice"):
            outbox.requeue(s, 999_999, "operator1", NOW)


def test_for_child_newest_first(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        _enqueue(s, key="arr:1:d1")
        outbox.enqueue(s, child_id=1, kind="academy_departure", zone="해법수학학원",
                       event_at=NOW + 3600, key="dep:1:d1", now=NOW + 3600, offset_s=KST)
        s.commit()
        rows = outbox.for_child(s, 1, limit=3)
        assert [r.kind for r in rows] == ["academy_departure"] * 2 + ["school_arrival"]
        assert rows[0].subject.endswith("해법수학학원에서 출발했습니다 (09:32)")
        assert outbox.for_child(s, 2) == []
