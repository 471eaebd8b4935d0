"""Redaction of the tape (``db.tape_redaction``): a withdrawn device's fixes
leave every batch on the tape (but those its open cases need), every other
fix and every other record stays exactly as it was, the tape still reads
by time, a second run changes nothing, and a crash at any point leaves a
readable tape that the next run finishes."""

from __future__ import annotations

import calendar
import itertools
import math
import os
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from sqlalchemy.orm import Session, sessionmaker

from db import consent as db_consent
from db import tape_redaction
from db.store import open_store
from db.tables import Alert, Child, Device, Fix
from db.tape import (
    ENTRY_SIZE,
    TapeReader,
    TapeRecord,
    TapeWriter,
    index_path,
    load_segment,
    segments,
)
from db.tape_redaction import RedactionInterrupted, redact, remove_stale_temps
from models.consent import CASE_LEAD_S, SERVICES
from models.messages import FixBatch, decode, encode, fix_columns, pack

T = float(calendar.timegm((2026, 12, 6, 4, 58, 0)))  # two minutes before 05:00 UTC
GONE, OTHER, THIRD = "8800000001", "8800000002", "E200000000AA"
Fixes = dict[str, list[tuple[float, ...]]]  # device -> its fixes' column values


def _batch(ids: list[str], t: float, seq: int, readers: bool = False) -> FixBatch:
    """A batch with values that differ per fix, so a shifted column shows."""
    n = len(ids)
    return FixBatch(device_ids=ids, t=pack("t", [t - 0.25 * i for i in range(n)]),
                    lat=pack("lat", [37.5 + seq * 1e-4 + i * 1e-6 for i in range(n)]),
                    lon=pack("lon", [127.0 + i * 1e-5 for i in range(n)]),
                    speed=pack("speed", [float(i) for i in range(n)]),
                    bearing=pack("bearing", [float(seq % 360)] * n),
                    accuracy=pack("accuracy", [5.0 + i for i in range(n)]),
                    battery=pack("battery", [(seq + i) % 100 for i in range(n)]),
                    flags=pack("flags", [i % 4 for i in range(n)]), protocol="watch",
                    readers=[f"R{i}" if i % 2 else "" for i in range(n)] if readers else [],
                    seq=seq, ts=t, origin="gateway-1", journal="e1", journal_seq=seq)


def _traffic(n: int = 120, step: float = 2.0) -> list[tuple[float, bytes, bytes]]:
    """Four minutes across the 05:00 hour: batches mixing the devices (and
    some of the withdrawn device alone, and of the others alone), alerts
    and zone counts between them."""
    out = []
    for i in range(n):
        t = T + i * step
        ids = ([GONE] if i % 7 == 0 else [OTHER, THIRD] if i % 5 == 0
               else [OTHER, GONE, THIRD] if i % 2 else [GONE, OTHER])
        out.append((t, b"fix.batch", encode(_batch(ids, t, i, readers=i % 3 == 0))))
        if i % 4 == 0:
            out.append((t, b"alert.updated", f"alert {i} about {GONE}".encode()))
        if i % 6 == 0:
            out.append((t, b"zone.counts", bytes(range(i % 200))))
    return out


def _write(directory: Path, compress: bool = False) -> list[tuple[float, bytes, bytes]]:
    records = _traffic()
    w = TapeWriter(directory, block_bytes=1500, compress=compress)  # a few records a block
    for r in records:
        w.append(*r)
    w.close()
    return records


def _records(directory: Path, t0: float = 0.0, t1: float = math.inf) -> list[TapeRecord]:
    reader = TapeReader(directory)
    out = list(reader.read(t0, t1))
    assert reader.skipped == 0, reader.damage
    return out


def _fixes(records: list[TapeRecord] | list[tuple[float, bytes, bytes]]) -> Fixes:
    """Every fix on the tape, per device, all columns and its batch's envelope."""
    out: Fixes = {}
    for rec in records:
        recv, topic, body = rec[0], rec[1], rec[2]
        if topic not in ("fix.batch", b"fix.batch"):
            continue
        msg = decode(body)
        assert isinstance(msg, FixBatch)
        cols = fix_columns(msg)
        for i, device in enumerate(msg.device_ids):
            row = (recv, msg.seq, msg.ts, msg.journal_seq,
                   *(float(cols[c][i]) for c in cols),
                   msg.readers[i] if msg.readers else "-")
            out.setdefault(device, []).append(row)  # type: ignore[arg-type]
    return out


def _others(records: list[TapeRecord] | list[tuple[float, bytes, bytes]]) -> list[tuple]:
    return [(r[0], r[1] if isinstance(r[1], bytes) else r[1].encode(), r[2])
            for r in records if r[1] not in ("fix.batch", b"fix.batch")]


def _files(directory: Path) -> dict[str, bytes]:
    return {str(p.relative_to(directory)): p.read_bytes()
            for p in sorted(directory.rglob("*")) if p.is_file()}


@pytest.mark.parametrize("compress", [False, True])
def test_a_device_leaves_every_batch_and_nothing_else_changes(tmp_path: Path,
                                                              compress: bool) -> None:
    sent = _write(tmp_path, compress)
    assert len(segments(tmp_path)) == 2  # 04:00 and 05:00
    blocks = sum(len(load_segment(p, lambda *_: None)[0]) for _, p in segments(tmp_path))
    assert blocks > 20
    before = _fixes(sent)

    report = redact(tmp_path, {GONE})

    got = _records(tmp_path)
    after = _fixes(got)
    assert GONE not in after
    assert after == {d: before[d] for d in (OTHER, THIRD)}  # every column, every envelope
    assert _others(got) == _others(sent)  # alerts and counts byte for byte, in order
    alone = sum(1 for i in range(120) if i % 7 == 0)
    assert sum(r.topic == "fix.batch" for r in got) == 120 - alone  # emptied batches went
    assert [r.recv_ts for r in got] == sorted(r.recv_ts for r in got)
    assert report.fixes_removed == len(before[GONE]) and report.fixes_kept == 0
    assert report.batches_dropped == alone and report.records_dropped == 0
    assert report.segments_scanned == report.segments_rewritten == 2
    assert 0 < report.bytes_after < report.bytes_before
    assert report.bytes_after == sum(len(b) for b in _files(tmp_path).values())
    assert "fixes removed" in report.summary()


def test_the_index_still_reads_by_time(tmp_path: Path) -> None:
    sent = _write(tmp_path)
    redact(tmp_path, {GONE})
    notes: list[str] = []
    for _, seg in segments(tmp_path):
        blocks, size = load_segment(seg, lambda _at, why: notes.append(why))
        # the index lists exactly the blocks, back to back
        assert index_path(seg).stat().st_size == len(blocks) * ENTRY_SIZE
        assert blocks[0].offset == 0 and blocks[-1].offset + blocks[-1].length == size
        assert all(a.offset + a.length == b.offset for a, b in itertools.pairwise(blocks))
    assert not notes
    reader = TapeReader(tmp_path)
    t0, t1 = T + 100, T + 140  # across the hour
    want = [(ts, topic, body) for ts, topic, body in sent if t0 <= ts < t1]
    got = [(r.recv_ts, r.raw_topic, r.body) for r in reader.read(t0, t1)]
    assert _others(got) == _others(want)
    assert _fixes(got) == {d: f for d, f in _fixes(want).items() if d != GONE}
    assert reader.count(t0, t1, (b"alert.",)) == sum(1 for r in want if r[1] == b"alert.updated")
    assert reader.count(t0, t1, (b"fix.",)) == sum(1 for r in got if r[1] == b"fix.batch")
    span = reader.span()
    assert span is not None and span[0] <= T and span[1] >= sent[-1][0]
    assert reader.skipped == 0


def test_a_second_redaction_changes_nothing(tmp_path: Path) -> None:
    _write(tmp_path)
    redact(tmp_path, {GONE}, keep=[(T + 50, T + 60)])
    files = _files(tmp_path)
    stamps = {p: p.stat().st_ino for p in tmp_path.rglob("*.tape")}
    again = redact(tmp_path, {GONE}, keep=[(T + 50, T + 60)])
    assert again.segments_rewritten == again.fixes_removed == 0
    assert again.fixes_kept > 0  # still there, still kept
    assert _files(tmp_path) == files
    assert {p: p.stat().st_ino for p in tmp_path.rglob("*.tape")} == stamps  # not rewritten


def test_the_case_windows_are_kept(tmp_path: Path) -> None:
    sent = _write(tmp_path)
    windows = [(T + 30.0, T + 60.0), (T + 200.0, T + 210.0)]

    report = redact(tmp_path, {GONE}, keep=windows)

    def in_case(t: float) -> bool:
        return any(lo <= t <= hi for lo, hi in windows)

    before, after = _fixes(sent), _fixes(_records(tmp_path))
    kept = [f for f in before[GONE] if in_case(f[4])]  # f[4]: the fix's device time
    assert kept and after[GONE] == kept
    assert report.fixes_kept == len(kept)
    assert report.fixes_removed == len(before[GONE]) - len(kept)
    assert after[OTHER] == before[OTHER] and after[THIRD] == before[THIRD]


def test_only_records_received_in_the_period_are_looked_at(tmp_path: Path) -> None:
    sent = _write(tmp_path)
    cut = T + 150.0  # a new consent given then (05:00:30): what came after it stays
    redact(tmp_path, {GONE}, before=cut)
    after = _fixes(_records(tmp_path))
    assert after[GONE] == [f for f in _fixes(sent)[GONE] if f[0] >= cut]
    # and the rest in two passes, as the recorder does (closed hours, then the open one)
    hour = float(calendar.timegm((2026, 12, 6, 5, 0, 0)))
    first = redact(tmp_path, {GONE}, before=hour)
    assert first.segments_rewritten == 0  # 04:00 was done already
    second = redact(tmp_path, {GONE}, since=hour)
    assert second.segments_scanned == 1 and second.segments_rewritten == 1
    assert GONE not in _fixes(_records(tmp_path))


def test_blocks_without_fixes_are_not_read(tmp_path: Path,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    w = TapeWriter(tmp_path, block_bytes=1)  # a block per record
    for i in range(10):
        w.append(T + i, b"alert.opened", GONE.encode() * 3)
    w.append(T + 20, b"fix.batch", encode(_batch([GONE, OTHER], T + 20, 1)))
    w.close()
    looked: list[int] = []
    real = tape_redaction._redact_block
    monkeypatch.setattr(tape_redaction, "_redact_block",
                        lambda fd, b, *a: looked.append(b.offset) or real(fd, b, *a))
    report = redact(tmp_path, {GONE})
    assert len(looked) == 1 and report.fixes_removed == 1
    assert [r.body for r in _records(tmp_path) if r.topic == "alert.opened"] == [
        GONE.encode() * 3] * 10


def test_a_segment_left_empty_is_removed(tmp_path: Path) -> None:
    w = TapeWriter(tmp_path)
    w.append(T, b"fix.batch", encode(_batch([GONE], T, 1)))
    w.append(T + 3600, b"fix.batch", encode(_batch([OTHER], T + 3600, 2)))
    w.close()
    report = redact(tmp_path, {GONE})
    assert report.segments_rewritten == 1 and report.bytes_after == 0
    [(_, left)] = segments(tmp_path)
    assert left.stem == "05" and sorted(p.name for p in left.parent.iterdir()) == [
        "05.idx", "05.tape"]
    assert list(_fixes(_records(tmp_path))) == [OTHER]


def test_a_batch_naming_the_device_that_does_not_decode_goes(tmp_path: Path) -> None:
    w = TapeWriter(tmp_path)
    w.append(T, b"fix.batch", b"\x93not msgpack of a batch " + GONE.encode())
    w.append(T + 1, b"fix.batch", b"\x93not msgpack either " + OTHER.encode())
    # another device whose reader happens to carry the id: left exactly as it was
    odd = msgspec.structs.replace(_batch([OTHER], T + 2, 3), readers=[GONE])
    w.append(T + 2, b"fix.batch", encode(odd))
    w.close()
    report = redact(tmp_path, {GONE})
    assert report.records_dropped == 1 and report.fixes_removed == 0
    assert [r.body for r in _records(tmp_path)] == [
        b"\x93not msgpack either " + OTHER.encode(), encode(odd)]


def test_damage_naming_the_device_is_not_carried_over(tmp_path: Path) -> None:
    w = TapeWriter(tmp_path, block_bytes=1)
    for i in range(3):
        w.append(T + i, b"fix.batch", encode(_batch([OTHER], T + i, i)))
    w.close()
    [(_, seg)] = segments(tmp_path)
    blocks, _ = load_segment(seg, lambda *_: None)
    raw = bytearray(seg.read_bytes())
    at = blocks[1].offset + 30  # the middle block's header no longer holds
    raw[at:at + len(GONE)] = GONE.encode()
    seg.write_bytes(bytes(raw))
    index_path(seg).unlink()  # readers walk the segment; they skip the damage
    assert len(list(TapeReader(tmp_path).read(0.0, math.inf))) == 2
    report = redact(tmp_path, {GONE})
    assert report.segments_rewritten == 1 and report.damage_dropped == blocks[1].length
    assert len(_records(tmp_path)) == 2  # and no damage left to skip
    assert GONE.encode() not in seg.read_bytes()


def _kill_at_rename(directory: Path, nth: int) -> None:
    """Run a redaction in a child process killed at its ``nth`` rename (as
    a power cut or SIGKILL would: no cleanup runs)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        calls = 0
        real = os.replace

        def dying(src: object, dst: object) -> None:
            nonlocal calls
            calls += 1
            if calls == nth:
                os._exit(0)
            real(src, dst)  # type: ignore[arg-type]

        os.replace = dying  # type: ignore[assignment]
        try:
            redact(directory, {GONE})
        finally:
            os._exit(3)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0, "the child was not killed where meant"


@pytest.mark.parametrize(("nth", "state"), [(1, "old"), (2, "new"), (3, "new")])
def test_a_crash_leaves_a_readable_tape_that_the_next_run_finishes(
        tmp_path: Path, nth: int, state: str) -> None:
    """Killed before the first segment's rename (old segment, no index),
    between its segment and index renames (new segment, no index), and at
    the second segment's rename (first new, second old)."""
    sent = _write(tmp_path)
    _kill_at_rename(tmp_path, nth)
    temps = sorted(p.name for p in tmp_path.rglob(f"*{tape_redaction.TEMP_SUFFIX}"))
    assert temps  # left behind, as a crash does
    first = segments(tmp_path)[0][1]
    got = _records(tmp_path)  # readable, nothing skipped
    assert _others(got) == _others(sent)
    fixes = _fixes(got)
    assert fixes[OTHER] == _fixes(sent)[OTHER]
    first_hour = [f for f in fixes.get(GONE, []) if f[0] < T + 120]
    assert bool(first_hour) == (state == "old")
    if state == "new" and nth == 2:
        assert not index_path(first).exists()  # the scan stands in for it

    report = redact(tmp_path, {GONE})
    assert report.segments_rewritten == (2 if state == "old" else 1)
    assert not list(tmp_path.rglob(f"*{tape_redaction.TEMP_SUFFIX}"))
    assert GONE not in _fixes(_records(tmp_path))
    assert all(index_path(p).exists() for _, p in segments(tmp_path))


def test_stale_temps_are_removed_and_a_stop_leaves_the_segment_as_it_was(
        tmp_path: Path) -> None:
    _write(tmp_path)
    day = segments(tmp_path)[0][1].parent
    (day / "04.tape.redact").write_bytes(b"half a copy")
    (day / "03.idx.redact").write_bytes(b"of a segment since purged")
    files = _files(tmp_path)
    asked = 0

    def stop() -> bool:
        nonlocal asked
        asked += 1
        return asked > 5  # midway through the first segment

    with pytest.raises(RedactionInterrupted):
        redact(tmp_path, {GONE}, stop=stop)
    assert _files(tmp_path) == {k: v for k, v in files.items() if not k.endswith(".redact")}
    assert remove_stale_temps(tmp_path) == 0


def test_the_writer_frontier(tmp_path: Path) -> None:
    assert TapeWriter(tmp_path).frontier() == -math.inf  # an empty tape
    _write(tmp_path)
    hour = float(calendar.timegm((2026, 12, 6, 5, 0, 0)))
    w = TapeWriter(tmp_path)
    assert w.frontier() == hour  # the newest record on the tape is in 05:00
    w.append(hour - 3600, b"zone.counts", b"late")  # a clock gone back: clamped
    assert w.frontier() == hour
    w.append(hour + 3600.5, b"zone.counts", b"")
    assert w.frontier() == hour + 3600
    w.close()


# ------------------------------------------------------------- consent scope


NOW = 1_800_000_000.0


@pytest.fixture
def sessions(store_url: str) -> Iterator[sessionmaker[Session]]:
    engine, factory = open_store(store_url)
    with factory() as s:
        s.add(Child(id=1, token="C-AAAA001", name="홍길동", zone_id=None))
        s.flush()
        s.add_all([Device(id=GONE, kind="watch", child_id=1, registered_at=NOW),
                   Device(id=THIRD, kind="tag", child_id=1, registered_at=NOW)])
        s.commit()
    yield factory
    engine.dispose()


def test_the_scope_is_what_withdraw_deletes_and_keeps(
        sessions: sessionmaker[Session]) -> None:
    """The recorder redacts the tape with ``withdrawal_scope``: the same
    devices and case windows ``withdraw`` applies to the store."""
    times = [NOW - 7200 + 60 * i for i in range(120)]
    with sessions() as s:
        g = db_consent.add_guardian(s, "보호자", "010-0000-1234", "", NOW - 9000)
        db_consent.link(s, "C-AAAA001", g.id, "mother")
        db_consent.give(s, "C-AAAA001", g.id, ",".join(SERVICES), "under14", "admin",
                        NOW - 9000)
        s.add(Alert(kind="sos", priority=1, state="acknowledged", child_id=1, device_id=GONE,
                    lat=37.5, lon=127.0, place="성동구", opened_at=NOW - 600))
        s.add_all([Fix(device_id=d, t=t, lat=37.5, lon=127.0, speed=0.0, bearing=0.0,
                       accuracy=5.0, battery=50, flags=0, reader_id=None)
                   for d in (GONE, THIRD) for t in times])
        s.commit()
        scope = db_consent.withdrawal_scope(s, "C-AAAA001", NOW)
        report = db_consent.withdraw(s, "C-AAAA001", "admin", NOW)
        s.commit()
    assert scope.device_ids == (GONE, THIRD) and len(scope.open_alerts) == 1
    assert scope.windows == ((NOW - 600 - CASE_LEAD_S, NOW),)
    kept = [t for t in times for lo, hi in scope.windows if lo <= t <= hi]
    assert report.kept == 2 * len(kept) and report.deleted == 2 * (len(times) - len(kept))
