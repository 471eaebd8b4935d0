"""The location-usage log on SQLite and PostgreSQL: the chain holds for
honest writers (also two at once), and every kind of tampering is named."""

from __future__ import annotations

import csv
import io
import os
import stat
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine, func, select, text
from sqlalchemy.orm import Session, sessionmaker

from db import usage_log
from db.store import open_store
from db.tables import UsageHead, UsageRecord
from models.usage import GENESIS, UsageFilter, record_hash

T0 = 1_790_000_000.0
DAY = 86400.0


@pytest.fixture
def store(store_url: str) -> Iterator[tuple[Engine, sessionmaker[Session]]]:
    engine, sessions = open_store(store_url)
    yield engine, sessions
    engine.dispose()


def _fill(sessions: sessionmaker[Session], n: int, start: float = T0,
          step: float = 60.0) -> None:
    """n records, one a minute, rotating actors, subjects and actions."""
    with sessions() as s:
        for i in range(n):
            usage_log.append(s, at=start + i * step, actor=f"operator{i % 3}",
                             subject=f"C-{i % 4:07d}", action=("reveal", "trail", "history")[i % 3],
                             purpose=f"alert {i}", alert_id=i if i % 2 else None,
                             detail=f"record {i + 1}")
        s.commit()


def _raw(engine: Engine, sql: str, **params: object) -> None:
    """What someone with the database's password could do behind our back."""
    with engine.begin() as conn:
        conn.execute(text(sql), params)


def _verify(sessions: sessionmaker[Session], **kw: int) -> usage_log.VerifyResult:
    with sessions() as s:
        return usage_log.verify(s, **kw)


def test_append_chains_records_and_verifies(store: tuple[Engine, sessionmaker[Session]]
                                            ) -> None:
    _, sessions = store
    assert _verify(sessions) == usage_log.VerifyResult(True, 0)
    with sessions() as s:
        assert usage_log.append(s, at=T0, actor="operator1", subject="C-0000001",
                                action="reveal", purpose="open alert 3", alert_id=3) == 1
        assert usage_log.append(s, at=T0 + 1, actor="operator1", subject="C-0000001",
                                action="trail", alert_id=3, detail="last 30 min") == 2
        s.commit()
        rows = s.execute(select(UsageRecord).order_by(UsageRecord.seq)).scalars().all()
        head = s.get(UsageHead, 1)
    assert rows[0].prev_hash == GENESIS
    assert rows[1].prev_hash == rows[0].hash
    assert rows[0].hash == record_hash(GENESIS, seq=1, at=T0, actor="operator1",
                                       subject="C-0000001", action="reveal",
                                       purpose="open alert 3", alert_id=3, detail="")
    assert head is not None and (head.seq, head.hash) == (2, rows[1].hash)
    assert (head.base_seq, head.base_hash) == (0, GENESIS)
    assert _verify(sessions) == usage_log.VerifyResult(True, 2)
    with sessions() as s:
        assert usage_log.head_of(s) == (2, rows[1].hash)


def test_a_record_rolls_back_with_what_it_records(
        store: tuple[Engine, sessionmaker[Session]]) -> None:
    _, sessions = store
    with sessions() as s:
        usage_log.append(s, at=T0, actor="a", subject="C-1", action="reveal")
        s.rollback()
    with sessions() as s:
        assert usage_log.append(s, at=T0, actor="a", subject="C-1", action="reveal") == 1
        s.commit()
    assert _verify(sessions) == usage_log.VerifyResult(True, 1)


def test_a_bad_record_is_refused_and_nothing_written(
        store: tuple[Engine, sessionmaker[Session]]) -> None:
    _, sessions = store
    _fill(sessions, 2)
    with sessions() as s:
        with pytest.raises(ValueError, match="unknown usage action"):
            usage_log.append(s, at=T0, actor="a", subject="C-1", action="delete")
        with pytest.raises(ValueError, match="subject is longer"):
            usage_log.append(s, at=T0, actor="a", subject="C" * 40, action="reveal")
        s.commit()
        assert s.scalar(select(func.count()).select_from(UsageRecord)) == 2
    assert _verify(sessions).ok


def test_an_edited_record_is_named(store: tuple[Engine, sessionmaker[Session]]) -> None:
    engine, sessions = store
    _fill(sessions, 30)
    _raw(engine, "UPDATE usage_log SET detail = 'nothing to see' WHERE seq = 17")
    got = _verify(sessions)
    assert got == usage_log.VerifyResult(False, 16, 17,
                                         "record 17 was edited (its hash does not match)")


@pytest.mark.parametrize("column, value", [
    ("at", T0 + 5.5), ("actor", "someone.else"), ("alert_id", None), ("action", "history")])
def test_any_edited_field_is_named(store: tuple[Engine, sessionmaker[Session]],
                                   column: str, value: object) -> None:
    engine, sessions = store
    _fill(sessions, 5)
    _raw(engine, f"UPDATE usage_log SET {column} = :v WHERE seq = 4", v=value)
    got = _verify(sessions)
    assert (got.ok, got.first_broken, got.checked) == (False, 4, 3)


def test_an_edit_with_a_recomputed_hash_breaks_the_next_link(
        store: tuple[Engine, sessionmaker[Session]]) -> None:
    """Whoever knows the algorithm can rehash the record they edit; the
    record after it still names the old hash."""
    engine, sessions = store
    _fill(sessions, 5)
    with sessions() as s:
        r = s.get(UsageRecord, 3)
        assert r is not None
        forged = record_hash(r.prev_hash, seq=3, at=r.at, actor=r.actor, subject=r.subject,
                             action=r.action, purpose=r.purpose, alert_id=r.alert_id,
                             detail="forged")
    _raw(engine, "UPDATE usage_log SET detail = 'forged', hash = :h WHERE seq = 3", h=forged)
    got = _verify(sessions)
    assert (got.ok, got.first_broken, got.checked) == (False, 4, 3)
    assert got.reason == ("record 4 does not follow record 3 (its prev_hash does not match: "
                          "one of them was rewritten)")


def test_a_deleted_record_is_named(store: tuple[Engine, sessionmaker[Session]]) -> None:
    engine, sessions = store
    _fill(sessions, 30)
    _raw(engine, "DELETE FROM usage_log WHERE seq = 18")
    assert _verify(sessions) == usage_log.VerifyResult(
        False, 17, 18, "record 18 is missing (the chain jumps from record 17 to 19)")
    _raw(engine, "DELETE FROM usage_log WHERE seq IN (19, 20)")
    assert _verify(sessions).reason == ("records 18 to 20 are missing (the chain jumps "
                                        "from record 17 to 21)")
    _raw(engine, "DELETE FROM usage_log WHERE seq = 1")
    assert _verify(sessions) == usage_log.VerifyResult(
        False, 0, 1, "record 1 is missing (the chain jumps from the start to 2)")


def test_deleting_the_newest_records_is_detected_through_the_head(
        store: tuple[Engine, sessionmaker[Session]]) -> None:
    engine, sessions = store
    _fill(sessions, 43)
    _raw(engine, "DELETE FROM usage_log WHERE seq > 41")
    assert _verify(sessions) == usage_log.VerifyResult(
        False, 41, 42, "the newest records after 41 were deleted (the head says 43)")
    _raw(engine, "DELETE FROM usage_log")
    assert _verify(sessions).reason == ("the newest records after 0 were deleted "
                                        "(the head says 43)")


def test_a_rewritten_head_or_a_missing_head_is_detected(
        store: tuple[Engine, sessionmaker[Session]]) -> None:
    engine, sessions = store
    _fill(sessions, 5)
    _raw(engine, "UPDATE usage_head SET hash = :h", h="f" * 64)
    got = _verify(sessions)
    assert (got.ok, got.first_broken) == (False, 5)
    assert "does not match the head's hash" in got.reason
    _raw(engine, "DELETE FROM usage_head")
    got = _verify(sessions)
    assert (got.ok, got.first_broken) == (False, 1)
    assert "head is missing" in got.reason
    with sessions() as s, pytest.raises(usage_log.ChainBroken, match="head is missing"):
        usage_log.append(s, at=T0, actor="a", subject="", action="purge")


def test_a_consistent_rewrite_of_the_tail_needs_the_noted_head(
        store: tuple[Engine, sessionmaker[Session]]) -> None:
    """Deleting the newest record and rolling the head back with it leaves a
    valid chain: only a head noted down earlier (``audit verify`` prints
    it) shows the difference. This is what a hash chain cannot do alone."""
    engine, sessions = store
    _fill(sessions, 5)
    with sessions() as s:
        noted = usage_log.head_of(s)
        four = s.get(UsageRecord, 4)
        assert four is not None
        _raw(engine, "DELETE FROM usage_log WHERE seq = 5")
        _raw(engine, "UPDATE usage_head SET seq = 4, hash = :h", h=four.hash)
    assert _verify(sessions) == usage_log.VerifyResult(True, 4)
    with sessions() as s:
        assert usage_log.head_of(s) != noted


def test_records_outside_the_chain_are_detected(
        store: tuple[Engine, sessionmaker[Session]]) -> None:
    engine, sessions = store
    _fill(sessions, 3)
    _raw(engine, "INSERT INTO usage_log (seq, at, actor, subject, action, purpose, detail, "
                 "prev_hash, hash) VALUES (9, 1, 'x', '', 'purge', '', '', :g, :g)", g=GENESIS)
    got = _verify(sessions)
    assert (got.ok, got.first_broken) == (False, 9)
    assert got.reason.startswith("record 9 is past the head (record 3)")
    _raw(engine, "DELETE FROM usage_log WHERE seq = 9")
    assert _verify(sessions).ok


def test_verify_walks_in_chunks(store: tuple[Engine, sessionmaker[Session]]) -> None:
    engine, sessions = store
    _fill(sessions, 300)
    for chunk in (1, 7, 100, 300, 5000):
        assert _verify(sessions, chunk=chunk) == usage_log.VerifyResult(True, 300)
    _raw(engine, "UPDATE usage_log SET purpose = 'x' WHERE seq = 211")
    for chunk in (1, 7, 210, 211):
        got = _verify(sessions, chunk=chunk)
        assert (got.ok, got.checked, got.first_broken) == (False, 210, 211)


def test_purge_moves_the_anchor_and_says_how_many(
        store: tuple[Engine, sessionmaker[Session]]) -> None:
    engine, sessions = store
    _fill(sessions, 50, step=DAY)  # records 1..50, a day apart
    with sessions() as s:
        removed = usage_log.purge_before(s, T0 + 20 * DAY, now=T0 + 60 * DAY, chunk=7)
    assert removed == 20
    with sessions() as s:
        seqs = s.scalars(select(UsageRecord.seq).order_by(UsageRecord.seq)).all()
        head = s.get(UsageHead, 1)
        purge = usage_log.query(s, UsageFilter(action="purge"))
    assert seqs == list(range(21, 52))
    assert head is not None and (head.base_seq, head.seq) == (20, 51)
    assert [(p.seq, p.actor, p.subject, p.at) for p in purge] == [
        (51, "retention", "", T0 + 60 * DAY)]
    assert purge[0].detail.startswith("usage log: 20 records older than ")
    assert _verify(sessions) == usage_log.VerifyResult(True, 31)

    with sessions() as s:  # the repeat: nothing older left, nothing written
        assert usage_log.purge_before(s, T0 + 20 * DAY, now=T0 + 61 * DAY) == 0
        assert s.scalar(select(func.max(UsageRecord.seq))) == 51
    _raw(engine, "UPDATE usage_log SET detail = 'x' WHERE seq = 21")
    got = _verify(sessions)
    assert (got.first_broken, got.reason) == (21, "record 21 was edited (its hash does not "
                                                  "match)")
    _raw(engine, "UPDATE usage_log SET detail = 'record 21' WHERE seq = 21")
    _raw(engine, "DELETE FROM usage_log WHERE seq = 21")
    assert _verify(sessions).reason == ("record 21 is missing (the chain jumps from the last "
                                        "purge (record 20) to 22)")


def test_purge_of_everything_and_appending_after_it(
        store: tuple[Engine, sessionmaker[Session]]) -> None:
    _, sessions = store
    _fill(sessions, 10)
    with sessions() as s:
        assert usage_log.purge_before(s, T0 + DAY, now=T0 + DAY, record=False) == 10
        assert s.scalar(select(func.count()).select_from(UsageRecord)) == 0
    assert _verify(sessions) == usage_log.VerifyResult(True, 0)
    with sessions() as s:
        assert usage_log.append(s, at=T0 + DAY, actor="a", subject="C-1",
                                action="history") == 11
        s.commit()
    assert _verify(sessions) == usage_log.VerifyResult(True, 1)


def test_purge_removes_only_a_prefix_when_clocks_disagree(
        store: tuple[Engine, sessionmaker[Session]]) -> None:
    """A record stamped earlier than the one before it (another process's
    clock) stays until everything before it may go: a hole would break the
    chain."""
    _, sessions = store
    with sessions() as s:
        for at in (T0, T0 + 10, T0 + 100, T0 + 5, T0 + 200):
            usage_log.append(s, at=at, actor="a", subject="", action="history")
        s.commit()
        assert usage_log.purge_before(s, T0 + 50, record=False) == 2
        assert s.scalars(select(UsageRecord.seq).order_by(UsageRecord.seq)).all() == [3, 4, 5]
    assert _verify(sessions).ok


def test_purge_refuses_to_remove_tampered_records(
        store: tuple[Engine, sessionmaker[Session]]) -> None:
    engine, sessions = store
    _fill(sessions, 10, step=DAY)
    _raw(engine, "UPDATE usage_log SET actor = 'nobody' WHERE seq = 3")
    with sessions() as s, pytest.raises(usage_log.ChainBroken, match="record 3 was edited"):
        usage_log.purge_before(s, T0 + 5 * DAY)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(UsageRecord)) == 10
    assert _verify(sessions).first_broken == 3
    _raw(engine, "UPDATE usage_log SET actor = 'operator2' WHERE seq = 3")
    _raw(engine, "DELETE FROM usage_log WHERE seq = 6")  # the first record kept
    with sessions() as s, pytest.raises(usage_log.ChainBroken):
        usage_log.purge_before(s, T0 + 5 * DAY)
    with sessions() as s:
        assert s.scalar(select(func.count()).select_from(UsageRecord)) == 9


def test_two_sessions_appending_alternately(
        store: tuple[Engine, sessionmaker[Session]]) -> None:
    _, sessions = store
    a, b = sessions(), sessions()
    try:
        for i in range(10):
            s = (a, b)[i % 2]
            assert usage_log.append(s, at=T0 + i, actor=f"s{i % 2}", subject="C-1",
                                    action="trail") == i + 1
            s.commit()
    finally:
        a.close()
        b.close()
    assert _verify(sessions) == usage_log.VerifyResult(True, 10)


def test_two_writers_at_once_never_fork_the_chain(
        store: tuple[Engine, sessionmaker[Session]]) -> None:
    """Threads with their own sessions append as fast as they can: the head
    lock serializes them, so every number is used once and the chain holds."""
    _, sessions = store
    errors: list[BaseException] = []
    seqs: list[int] = []
    lock = threading.Lock()

    def writer(name: str) -> None:
        try:
            for i in range(40):
                with sessions() as s:
                    seq = usage_log.append(s, at=T0 + i, actor=name, subject="C-1",
                                           action="location_check")
                    s.commit()
                with lock:
                    seqs.append(seq)
        except BaseException as exc:
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{n}",)) for n in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(120)
    assert not errors
    assert sorted(seqs) == list(range(1, 121))
    assert _verify(sessions) == usage_log.VerifyResult(True, 120)


def test_query_filters_newest_first(store: tuple[Engine, sessionmaker[Session]]) -> None:
    _, sessions = store
    _fill(sessions, 24)  # at T0 + 60*i, actor operator{i%3}, subject C-{i%4}
    with sessions() as s:
        everything = usage_log.query(s, UsageFilter())
        assert [e.seq for e in everything] == list(range(24, 0, -1))
        mine = usage_log.query(s, UsageFilter(subject="C-0000001", actor="operator1"))
        assert [e.seq for e in mine] == [14, 2]
        assert {e.action for e in usage_log.query(s, UsageFilter(action="trail"))} == {"trail"}
        window = usage_log.query(s, UsageFilter(since=T0 + 60 * 5, until=T0 + 60 * 8))
        assert [e.seq for e in window] == [8, 7, 6]
        assert [e.seq for e in usage_log.query(s, UsageFilter(limit=2))] == [24, 23]
        assert usage_log.query(s, UsageFilter(limit=0)) == []
        assert usage_log.query(s, UsageFilter(subject="C-nobody")) == []
        first = everything[-1]
    assert (first.actor, first.subject, first.action, first.alert_id, first.detail) == (
        "operator0", "C-0000000", "reveal", None, "record 1")


def test_export_csv_has_a_header_the_rows_and_their_hashes(
        store: tuple[Engine, sessionmaker[Session]], tmp_path: Path) -> None:
    _, sessions = store
    _fill(sessions, 12)
    with sessions() as s:
        usage_log.append(s, at=T0 + 9999, actor="operator1", subject="C-0000001",
                         action="history", purpose='=HYPERLINK("http://x","y")',
                         detail="a, \"quoted\"\nline")
        s.commit()
        out = tmp_path / "usage.csv"
        assert usage_log.export_csv(s, UsageFilter(subject="C-0000001", limit=None), out) == 4
        buf = io.StringIO()
        assert usage_log.export_csv(s, UsageFilter(limit=2), buf) == 2
        hashes = {seq: h for seq, h in s.execute(select(UsageRecord.seq, UsageRecord.hash))}
    assert stat.S_IMODE(os.stat(out).st_mode) == 0o600
    with out.open(newline="", encoding="utf-8") as fh:
        rows = list(csv.reader(fh))
    assert tuple(rows[0]) == usage_log.CSV_HEADER
    assert [r[0] for r in rows[1:]] == ["2", "6", "10", "13"]  # oldest first
    last = dict(zip(rows[0], rows[-1], strict=True))
    assert last["purpose"] == "'=HYPERLINK(\"http://x\",\"y\")"
    assert last["detail"] == "a, \"quoted\"\nline"
    assert last["hash"] == hashes[13] and last["alert_id"] == ""
    assert float(last["at"]) == T0 + 9999 and last["at_utc"].endswith("+00:00")
    assert rows[1][7] == "1"  # alert_id of record 2
    assert [r[0] for r in csv.reader(io.StringIO(buf.getvalue()))][1:] == ["12", "13"]
    with sessions() as s:
        assert usage_log.export_csv(s, UsageFilter(limit=0), io.StringIO()) == 0
