"""Guardians, consent and withdrawal in the store, on SQLite and PostgreSQL:
what is refused, what a withdrawal deletes and keeps, and what the usage log
says about it."""

from __future__ import annotations

import math
from collections.abc import Iterator

import pytest
from sqlalchemy import func, insert, select
from sqlalchemy.orm import Session, sessionmaker

from db import consent as db_consent
from db import usage_log
from db.holdings import WHOLE
from db.registry import add_device, remove_device
from db.retention import purge
from db.store import open_store
from db.tables import Alert, Child, Consent, Device, Fix, Guardian, Guardianship, UsageRecord
from models.consent import CASE_LEAD_S, SERVICES
from models.retention import RetentionPolicy

NOW = 1_800_000_000.0
ALL = ",".join(SERVICES)


@pytest.fixture
def sessions(store_url: str) -> Iterator[sessionmaker[Session]]:
    """A migrated store with two children of our own (no seed: these
    children start without any consent) and their devices."""
    engine, factory = open_store(store_url)
    with factory() as s:
        s.add_all([Child(id=1, token="C-AAAA001", name="홍길동", zone_id=None),
                   Child(id=2, token="C-BBBB002", name="김철수", zone_id=None)])
        s.flush()
        s.add_all([Device(id="8800000001", kind="watch", child_id=1, registered_at=NOW),
                   Device(id="E200000000AA", kind="tag", child_id=1, registered_at=NOW),
                   Device(id="8800000002", kind="watch", child_id=2, registered_at=NOW)])
        s.commit()
    yield factory
    engine.dispose()


def _guardian(s: Session, token: str = "C-AAAA001", name: str = "홍길동 보호자") -> int:
    g = db_consent.add_guardian(s, name, "010-0000-1234", "", NOW)
    db_consent.link(s, token, g.id, "mother")
    return g.id


def _fixes(s: Session, device_id: str, times: list[float]) -> None:
    s.execute(insert(Fix), [dict(device_id=device_id, t=t, lat=37.54, lon=127.04, speed=0.0,
                                 bearing=0.0, accuracy=10.0, battery=80, flags=0,
                                 reader_id=None) for t in times])


def _alert(s: Session, child_id: int, device_id: str, opened_at: float, state: str) -> int:
    alert = Alert(kind="sos", priority=1, state=state, child_id=child_id, device_id=device_id,
                  lat=37.54, lon=127.04, place="성동구", opened_at=opened_at)
    s.add(alert)
    s.flush()
    return alert.id


def _usage(s: Session, action: str | None = None) -> list[UsageRecord]:
    q = select(UsageRecord).order_by(UsageRecord.seq)
    if action is not None:
        q = q.where(UsageRecord.action == action)
    return list(s.scalars(q))


def _count(s: Session, table: type[object]) -> int:
    return int(s.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


# ------------------------------------------------------------------ guardians


@pytest.mark.parametrize(("phone", "email", "field"), [
    ("010-1234-567a", "", "phone"),
    ("++82 10 1234 5678", "", "phone"),
    ("82+10", "", "phone"),
    ("12-34", "", "phone"),  # too few digits to reach anyone
    ("0101234567890123", "", "phone"),  # more than E.164 allows
    ("010\n1234\n5678", "", "phone"),
    ("010-1234-5678; DROP TABLE guardians", "", "phone"),
    ("", "kim", "email"),
    ("", "kim@", "email"),
    ("", "@example.kr", "email"),
    ("", "kim lee@example.kr", "email"),
    ("", "kim@example", "email"),
    ("", "kim@@example.kr", "email"),
    ("", "", "phone"),  # no way to tell the guardian anything
])
def test_a_guardian_with_a_bad_contact_is_refused(sessions: sessionmaker[Session], phone: str,
                                                  email: str, field: str) -> None:
    with sessions() as s:
        with pytest.raises(ValueError, match=field):
            db_consent.add_guardian(s, "홍길동 보호자", phone, email, NOW)
        s.rollback()
        assert _count(s, Guardian) == 0


@pytest.mark.parametrize("name", ["", "   ", "x" * 81, "홍\x00길동"])
def test_a_guardian_needs_a_plain_name(sessions: sessionmaker[Session], name: str) -> None:
    with sessions() as s, pytest.raises(ValueError, match="name"):
        db_consent.add_guardian(s, name, "010-0000-1234", "", NOW)


def test_add_and_link_guardians(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        mother = db_consent.add_guardian(s, " 홍길동 어머니 ", "+82 10-0000-1234",
                                         "mother@example.kr", NOW)
        father = db_consent.add_guardian(s, "홍길동 아버지", "", "father@example.co.kr", NOW)
        assert mother.name == "홍길동 어머니" and mother.phone == "+82 10-0000-1234"
        db_consent.link(s, "C-AAAA001", mother.id, "mother")
        db_consent.link(s, "C-BBBB002", mother.id, "mother")  # siblings share guardians
        db_consent.link(s, "C-AAAA001", father.id, "")
        db_consent.link(s, "C-AAAA001", father.id, "father")  # again: only the relation
        db_consent.link(s, "C-AAAA001", father.id, "")  # no relation given: keeps it
        s.commit()
    with sessions() as s:
        assert _count(s, Guardianship) == 3
        everyone = db_consent.guardians(s)
        assert [(g.name, g.children) for g in everyone] == [
            ("홍길동 어머니", (("C-AAAA001", "mother"), ("C-BBBB002", "mother"))),
            ("홍길동 아버지", (("C-AAAA001", "father"),))]
        of_b = db_consent.guardians(s, "C-BBBB002")
        assert [g.id for g in of_b] == [mother.id]
        assert of_b[0].children == (("C-AAAA001", "mother"), ("C-BBBB002", "mother"))


def test_link_refuses_unknown_children_and_guardians(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        g = db_consent.add_guardian(s, "보호자", "010-0000-1234", "", NOW)
        with pytest.raises(ValueError, match="child"):
            db_consent.link(s, "C-1' OR '1'='1", g.id, "mother")
        with pytest.raises(ValueError, match="guardian"):
            db_consent.link(s, "C-AAAA001", g.id + 100, "mother")
        with pytest.raises(ValueError, match="relation"):
            db_consent.link(s, "C-AAAA001", g.id, "x" * 21)
        with pytest.raises(ValueError, match="child"):
            db_consent.guardians(s, "C-NOPE")


# -------------------------------------------------------------------- consent


def test_give_records_the_consent_and_a_usage_record(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        gid = _guardian(s)
        c = db_consent.give(s, "C-AAAA001", gid, ["emergency", "routine"], "under14",
                            "cli:kim", NOW)
        s.commit()
    with sessions() as s:
        row = s.get(Consent, c.id)
        assert row is not None
        assert (row.child_id, row.guardian_id, row.services, row.age_band, row.given_at,
                row.recorded_by, row.withdrawn_at) == (
            1, gid, "routine,emergency", "under14", NOW, "cli:kim", None)
        [rec] = _usage(s)
        assert (rec.action, rec.subject, rec.actor, rec.at) == ("consent", "C-AAAA001",
                                                                "cli:kim", NOW)
        assert "routine,emergency" in rec.detail and "under14" in rec.detail
        for contact in ("010-0000-1234", "홍길동", "보호자"):
            assert contact not in rec.detail
        book = db_consent.book(s)
        assert book.allows(1, "emergency") and book.allows(1, "routine")
        assert not book.allows(1, "location") and not book.tracked(2)
        assert db_consent.services_in_force(s, "C-AAAA001") == {"routine", "emergency"}
        assert db_consent.children_without_consent(s) == ["C-BBBB002"]
        assert usage_log.verify(s).ok


@pytest.mark.parametrize(("guardian", "services", "band", "field"), [
    (None, ALL, "under14", "guardian"),
    ("mine", "routine,tracking", "under14", "services"),
    ("mine", "", "under14", "services"),
    ("mine", ALL, "13", "age band"),
    ("other", ALL, "under14", "guardian"),  # a guardian of another child
    ("missing", ALL, "under14", "guardian"),
])
def test_give_refuses_and_writes_nothing(sessions: sessionmaker[Session], guardian: str,
                                         services: str, band: str, field: str) -> None:
    with sessions() as s:
        ids = {"mine": _guardian(s), "other": _guardian(s, "C-BBBB002", "김철수 보호자")}
        gid = None if guardian is None else ids.get(guardian, 999)
        s.commit()
        with pytest.raises(ValueError, match=field):
            db_consent.give(s, "C-AAAA001", gid, services, band, "cli:kim", NOW)
        s.rollback()
        assert _count(s, Consent) == 0
        assert _usage(s) == []
        assert not db_consent.book(s).tracked(1)


@pytest.mark.parametrize(("token", "by", "now", "field"), [
    ("C-NOPE", "cli:kim", NOW, "child"),
    ("C-AAAA001", "", NOW, "by"),
    ("C-AAAA001", "x" * 65, NOW, "by"),
    ("C-AAAA001", "cli:kim", float("nan"), "time"),
    ("C-AAAA001", "cli:kim", float("inf"), "time"),
])
def test_give_and_withdraw_refuse_bad_arguments(sessions: sessionmaker[Session], token: str,
                                                by: str, now: float, field: str) -> None:
    with sessions() as s:
        gid = _guardian(s)
        with pytest.raises(ValueError, match=field):
            db_consent.give(s, token, gid, ALL, "under14", by, now)
        with pytest.raises(ValueError, match=field):
            db_consent.withdraw(s, token, by, now)


def test_a_child_of_14_may_consent_alone_and_a_new_consent_replaces_its_own(
        sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        gid = _guardian(s)
        first = db_consent.give(s, "C-AAAA001", None, ALL, "14plus", "app", NOW)
        mine = db_consent.give(s, "C-AAAA001", gid, "location", "14plus", "cli:kim", NOW + 1)
        # The child narrows their own consent: it replaces, it does not add.
        second = db_consent.give(s, "C-AAAA001", None, "emergency", "14plus", "app", NOW + 2)
        s.commit()
        assert s.get(Consent, first.id).withdrawn_at == NOW + 2  # type: ignore[union-attr]
        assert s.get(Consent, mine.id).withdrawn_at is None  # type: ignore[union-attr]
        assert db_consent.services_in_force(s, "C-AAAA001") == {"location", "emergency"}
        assert not db_consent.book(s).allows(1, "routine")
        assert f"replaces consent {first.id}" in _usage(s, "consent")[-1].detail
        assert [c.id for c in db_consent.consents(s, "C-AAAA001")] == [first.id, mine.id,
                                                                         second.id]


# ----------------------------------------------------------------- withdrawal


def test_withdrawal_deletes_the_history_but_an_open_case_keeps_its_window(
        sessions: sessionmaker[Session]) -> None:
    opened = NOW - 600.0
    lead = opened - CASE_LEAD_S
    with sessions() as s:
        gid = _guardian(s)
        db_consent.give(s, "C-AAAA001", gid, ALL, "under14", "seed", NOW - 86400)
        db_consent.give(s, "C-BBBB002", _guardian(s, "C-BBBB002"), ALL, "under14", "seed",
                        NOW - 86400)
        old = [lead - 1.0 - i * 60.0 for i in range(800)]
        _fixes(s, "8800000001", [*old[:400], lead - 0.5])
        _fixes(s, "E200000000AA", [*old[400:], NOW + 5.0])  # a clock ahead: outside [.., now]
        in_case = [lead + i * (NOW - lead) / 39 for i in range(40)]  # both ends included
        _fixes(s, "8800000001", in_case[:25])
        _fixes(s, "E200000000AA", in_case[25:])
        # A resolved case does not hold anything back; another child is untouched.
        _alert(s, 1, "8800000001", NOW - 7200.0, "resolved")
        alert_id = _alert(s, 1, "8800000001", opened, "acknowledged")
        _fixes(s, "8800000002", [NOW - 3600.0 * i for i in range(30)])
        s.commit()

    with sessions() as s:
        report = db_consent.withdraw(s, "C-AAAA001", "cli:kim", NOW)
        s.commit()
    assert (report.withdrawn, report.deleted, report.kept, report.open_alerts) == (
        1, 802, 40, (alert_id,))
    assert report.summary() == ("consents 1 withdrawn; fixes 802 deleted, "
                                f"40 kept for open alert {alert_id}")

    with sessions() as s:
        left = sorted(s.scalars(select(Fix.t).where(Fix.device_id != "8800000002")))
        assert left == pytest.approx(sorted(in_case))
        assert _count(s, Fix) == 40 + 30
        assert not db_consent.book(s).tracked(1) and db_consent.book(s).tracked(2)
        rows = db_consent.consents(s, "C-AAAA001")
        assert [(c.withdrawn_at, c.withdrawn_by) for c in rows] == [(NOW, "cli:kim")]
        [rec] = _usage(s, "withdrawal")
        assert (rec.subject, rec.actor, rec.at, rec.alert_id, rec.seq) == (
            "C-AAAA001", "cli:kim", NOW, alert_id, report.usage_seq)
        assert "802 deleted" in rec.detail and f"40 kept for open alert {alert_id}" in rec.detail
        assert "37.54" not in rec.detail and "127.04" not in rec.detail  # counts, not content
        assert db_consent.children_without_consent(s) == ["C-AAAA001"]
        assert usage_log.verify(s).ok


def test_withdrawing_twice_is_harmless(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        db_consent.give(s, "C-AAAA001", _guardian(s), ALL, "under14", "seed", NOW - 10)
        _fixes(s, "8800000001", [NOW - 5.0, NOW - 4.0])
        s.commit()
        first = db_consent.withdraw(s, "C-AAAA001", "cli:kim", NOW)
        s.commit()
        again = db_consent.withdraw(s, "C-AAAA001", "cli:kim", NOW + 1)
        s.commit()
        assert (first.withdrawn, first.deleted) == (1, 2)
        assert (again.withdrawn, again.deleted, again.kept, again.usage_seq) == (0, 0, 0, None)
        assert again.summary().startswith("no consent was in force")
        assert len(_usage(s, "withdrawal")) == 1
        assert db_consent.consents(s, "C-AAAA001")[0].withdrawn_at == NOW  # not overwritten


def test_a_child_never_consented_for_is_purged_all_the_same(
        sessions: sessionmaker[Session]) -> None:
    """Fixes of a child with no consent should not exist; if some slipped in,
    a withdrawal removes them and says so."""
    with sessions() as s:
        _fixes(s, "8800000002", [NOW - 1.0])
        s.commit()
        report = db_consent.withdraw(s, "C-BBBB002", "cli:kim", NOW)
        s.commit()
        assert (report.withdrawn, report.deleted) == (0, 1)
        assert report.summary() == "no consent was in force; fixes 1 deleted"
        assert len(_usage(s, "withdrawal")) == 1


def test_several_open_alerts_each_keep_their_window(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        db_consent.give(s, "C-AAAA001", _guardian(s), ALL, "under14", "seed", NOW - 10)
        a = _alert(s, 1, "8800000001", NOW - 10_000.0, "on_hold")
        b = _alert(s, 1, "E200000000AA", NOW - 100.0, "new")
        _fixes(s, "8800000001", [NOW - 10_000.0 - CASE_LEAD_S - 10.0,  # before both windows
                                 NOW - 10_000.0 - 60.0, NOW - 50.0])
        s.commit()
        report = db_consent.withdraw(s, "C-AAAA001", "cli:kim", NOW)
        s.commit()
        assert (report.deleted, report.kept, report.open_alerts) == (1, 2, (a, b))
        [rec] = _usage(s, "withdrawal")
        assert rec.alert_id is None  # two cases: the detail names both
        assert f"kept for open alerts {a}, {b}" in rec.detail


def test_consent_again_after_withdrawal_tracks_again(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        gid = _guardian(s)
        db_consent.give(s, "C-AAAA001", gid, ALL, "under14", "seed", NOW - 10)
        db_consent.withdraw(s, "C-AAAA001", "cli:kim", NOW)
        s.commit()
        assert not db_consent.book(s).tracked(1)
        db_consent.give(s, "C-AAAA001", gid, "emergency", "under14", "cli:kim", NOW + 60)
        s.commit()
        book = db_consent.book(s)
        assert book.tracked(1) and book.allows(1, "emergency")
        assert not book.allows(1, "routine")
        assert [a.action for a in _usage(s)] == ["consent", "withdrawal", "consent"]
        assert usage_log.verify(s).ok


def test_the_seeded_registry_loads_as_a_book(sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        ga, gb = _guardian(s), _guardian(s, "C-BBBB002")
        db_consent.give(s, "C-AAAA001", ga, "routine", "under14", "seed", NOW)
        db_consent.give(s, "C-BBBB002", gb, "emergency", "under14", "seed", NOW)
        s.commit()
        book = db_consent.book(s)
        devices = {d.id: d.child_id for d in s.scalars(select(Device))}
        assert book.refused_devices(devices) == []
        assert book.refused_devices(devices, "emergency") == ["8800000001", "E200000000AA"]


def test_withdrawal_finds_a_removed_device_through_the_childs_alerts(
        sessions: sessionmaker[Session]) -> None:
    """An unregistered device keeps its fixes; an alert of the child still
    names it, so the withdrawal deletes them. A device the child's alert
    names but now registered to another child is that child's: untouched."""
    with sessions() as s:
        db_consent.give(s, "C-AAAA001", _guardian(s), ALL, "under14", "seed", NOW - 10)
        _alert(s, 1, "E200000000AA", NOW - 90_000.0, "resolved")
        _alert(s, 1, "8800000002", NOW - 90_000.0, "resolved")  # since given to child 2
        _fixes(s, "E200000000AA", [NOW - 5.0])
        _fixes(s, "8800000002", [NOW - 5.0])
        s.commit()
        remove_device(s, "E200000000AA")
        s.commit()
        report = db_consent.withdraw(s, "C-AAAA001", "cli:kim", NOW)
        s.commit()
        assert report.deleted == 1
        assert list(s.scalars(select(Fix.device_id))) == ["8800000002"]


def _device_times(s: Session, device_id: str) -> list[float]:
    return sorted(s.scalars(select(Fix.t).where(Fix.device_id == device_id)))


def test_a_device_passed_to_another_child_is_each_ones_while_they_held_it(
        sessions: sessionmaker[Session]) -> None:
    """A watch handed from child 1 to child 2: each withdrawal takes the
    fixes sent while that child held it, never the other's; and a fix of
    child 1's time that reaches the store after its withdrawal (a device
    sending its backlog late) is taken by the next retention run, while
    child 2's recent ones stay."""
    watch = "8800000001"
    with sessions() as s:
        db_consent.give(s, "C-AAAA001", _guardian(s), ALL, "under14", "seed", NOW - 10)
        db_consent.give(s, "C-BBBB002", _guardian(s, "C-BBBB002"), ALL, "under14", "seed",
                        NOW - 10)
        _fixes(s, watch, [NOW + 10, NOW + 20])
        remove_device(s, watch, now=NOW + 100)
        add_device(s, watch, "watch", "C-BBBB002", now=NOW + 200)
        _fixes(s, watch, [NOW + 300, NOW + 400])
        s.commit()
        first = db_consent.withdrawal_scope(s, "C-AAAA001", NOW + 500)
        second = db_consent.withdrawal_scope(s, "C-BBBB002", NOW + 500)
        assert first.spans == {watch: [(-math.inf, NOW + 100)], "E200000000AA": [WHOLE]}
        assert second.spans == {watch: [(NOW + 200, math.inf)], "8800000002": [WHOLE]}

        assert db_consent.withdraw(s, "C-AAAA001", "cli:kim", NOW + 500).deleted == 2
        s.commit()
        assert _device_times(s, watch) == [NOW + 300, NOW + 400]

        _fixes(s, watch, [NOW + 50, NOW + 450])  # late: one of each child's time
        s.commit()
        policy = RetentionPolicy(fix_s=30 * 86400.0, case_hold_s=90 * 86400.0,
                                 case_lead_s=600.0, usage_s=365 * 86400.0,
                                 access_s=365 * 86400.0)
        purge(s, NOW + 600, policy)
        assert _device_times(s, watch) == [NOW + 300, NOW + 400, NOW + 450]

        assert db_consent.withdraw(s, "C-BBBB002", "cli:kim", NOW + 700).deleted == 3
        s.commit()
        assert _device_times(s, watch) == []


def test_a_device_given_back_is_the_childs_again(sessions: sessionmaker[Session]) -> None:
    """Child 1, child 2, then child 1 again: child 1's withdrawal takes its
    two spans and leaves child 2's between them."""
    watch = "8800000001"
    with sessions() as s:
        db_consent.give(s, "C-AAAA001", _guardian(s), ALL, "under14", "seed", NOW - 10)
        _fixes(s, watch, [NOW + 10])
        remove_device(s, watch, now=NOW + 100)
        add_device(s, watch, "watch", "C-BBBB002", now=NOW + 200)
        _fixes(s, watch, [NOW + 300])
        remove_device(s, watch, now=NOW + 400)
        add_device(s, watch, "watch", "C-AAAA001", now=NOW + 500)
        _fixes(s, watch, [NOW + 600])
        s.commit()
        scope = db_consent.withdrawal_scope(s, "C-AAAA001", NOW + 700)
        assert scope.spans[watch] == [(-math.inf, NOW + 100), (NOW + 500, math.inf)]
        db_consent.withdraw(s, "C-AAAA001", "cli:kim", NOW + 700)
        s.commit()
        assert _device_times(s, watch) == [NOW + 300]


def test_withdrawal_also_deletes_fixes_of_a_device_removed_before(
        sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        db_consent.give(s, "C-AAAA001", _guardian(s), ALL, "under14", "seed", NOW - 10)
        _fixes(s, "E200000000AA", [NOW - 5.0])
        s.commit()
        remove_device(s, "E200000000AA")
        s.commit()
        db_consent.withdraw(s, "C-AAAA001", "cli:kim", NOW)
        s.commit()
        assert s.scalar(select(func.count()).select_from(Fix)
                        .where(Fix.device_id == "E200000000AA")) == 0
