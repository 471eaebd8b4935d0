"""The tape (``db.tape``): what goes in comes out byte for byte, by period
and by topic, and damage (a torn tail, flipped bytes, a lost index) costs
only the damaged block, counted and logged, never an exception."""

from __future__ import annotations

import calendar
import logging
import os
import zlib
from collections.abc import Callable
from pathlib import Path

import pytest

from db import tape
from db.tape import TapeReader, TapeRecord, TapeWriter, index_path, purge, segments, tape_dir

T = float(calendar.timegm((2026, 12, 6, 4, 59, 50)))  # ten seconds before 05:00 UTC
Rec = tuple[float, bytes, bytes]
TOPICS = (b"fix.batch", b"pos.batch", b"zone.counts", b"alert.opened", b"alert.updated")


def _traffic(n: int, start: float = T, step: float = 0.5) -> list[Rec]:
    """``n`` frames of mixed topics; bodies of every byte value and size
    (empty included), an alert every fifth frame."""
    out = []
    for i in range(n):
        topic = TOPICS[i % len(TOPICS)]
        body = bytes((i * 7 + k) % 256 for k in range(i * 13 % 400))
        out.append((start + i * step, topic, body))
    return out


def _write(directory: Path, records: list[Rec], **kw: object) -> TapeWriter:
    w = TapeWriter(directory, **kw)  # type: ignore[arg-type]
    for r in records:
        w.append(*r)
    w.close()
    return w


def _read(reader: TapeReader, t0: float = 0.0, t1: float = 2e10,
          prefixes: tuple[bytes, ...] | None = None) -> list[Rec]:
    return [(r.recv_ts, r.raw_topic, r.body) for r in reader.read(t0, t1, prefixes)]


def _segment(directory: Path, hour: str = "05") -> Path:
    return directory / "2026-12-06" / f"{hour}.tape"


def test_tape_dir_is_under_the_data_dir(tmp_path: Path) -> None:
    assert tape_dir(tmp_path) == tmp_path / "tape"


@pytest.mark.parametrize("compress", [False, True])
def test_records_round_trip_exactly(tmp_path: Path, compress: bool) -> None:
    records = [*_traffic(30), (T + 20, b"odd.\xff\x00topic", b"\x00" * 3), (T + 21, b"x", b"")]
    w = _write(tmp_path, records, compress=compress)
    reader = TapeReader(tmp_path)
    assert _read(reader) == records
    got = list(reader.read(0, 2e10))
    assert isinstance(got[0], TapeRecord) and got[0].topic == "fix.batch"
    assert got[-2].topic.encode("ascii", "surrogateescape") == b"odd.\xff\x00topic"
    assert reader.skipped == 0
    assert (w.records, w.lost) == (len(records), 0)
    assert w.bytes == sum(p.stat().st_size for p in tmp_path.rglob("*") if p.is_file())


def test_compression_is_per_section_and_only_where_it_shrinks(tmp_path: Path) -> None:
    records = [(T, b"fix.batch", os.urandom(3000))]  # noise: zlib cannot shrink it
    records += [(T + 1 + i, b"zone.counts", b"\x01" * 300) for i in range(5)]
    plain = _write(tmp_path / "plain", records)
    packed = _write(tmp_path / "packed", records, compress=True)
    assert plain.bytes > plain.raw_bytes  # stored as is, plus headers and index
    assert packed.bytes < plain.bytes
    assert len(_blocks(tmp_path / "packed", "04")) == 1
    raw = _segment(tmp_path / "packed", "04").read_bytes()
    table = tape._parse_header(raw, 0)[1]  # type: ignore[index]
    assert [(fam, codec) for fam, codec, *_ in table] == [
        (tape.FAMILY_IDS[b"fix"], tape.CODEC_NONE), (tape.FAMILY_IDS[b"zone"], tape.CODEC_ZLIB)]
    assert _read(TapeReader(tmp_path / "packed")) == records


def test_ranges_across_hours_and_blocks(tmp_path: Path) -> None:
    records = _traffic(80)  # 04:59:50 to 05:00:29.5, in blocks of a few records
    w = _write(tmp_path, records, block_bytes=600)
    assert w.blocks > 20
    assert [h % 24 for h, _ in segments(tmp_path)] == [4, 5]
    reader = TapeReader(tmp_path)
    hour = T + 10  # 05:00:00, where the segments meet
    for t0, t1 in [(T, hour), (hour, T + 100), (T + 3.2, T + 17.5), (hour - 1, hour + 1),
                   (T + 5.0, T + 5.0), (T + 40, T + 50), (0.0, T)]:
        want = [r for r in records if t0 <= r[0] < t1]
        assert _read(reader, t0, t1) == want, (t0 - T, t1 - T)
        assert reader.count(t0, t1) == len(want)
    assert reader.skipped == 0


def test_the_prefix_filter_reads_only_the_families_asked(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    records = _traffic(60)
    _write(tmp_path, records, block_bytes=2000, compress=True)
    inflated: list[bytes] = []
    real = zlib.decompress

    def spy(data: bytes, *args: int, **kw: int) -> bytes:
        out = real(data, *args, **kw)
        inflated.append(out)
        return out

    monkeypatch.setattr(zlib, "decompress", spy)
    reader = TapeReader(tmp_path)
    alerts = [r for r in records if r[1].startswith(b"alert.")]
    assert _read(reader, prefixes=(b"alert.",)) == alerts
    assert inflated and not any(b"fix.batch" in b or b"pos.batch" in b for b in inflated)
    assert _read(reader, prefixes=(b"alert.up", b"zone.")) == [
        r for r in records if r[1].startswith((b"alert.up", b"zone."))]
    assert _read(reader, prefixes=(b"al",)) == alerts
    assert _read(reader, prefixes=(b"nothing.",)) == []
    inflated.clear()
    assert reader.count(0, 2e10, (b"alert.",)) == len(alerts)  # from the block tables
    assert inflated == []
    assert reader.count(T, T + 7, (b"alert.opened",)) == sum(
        1 for r in records if T <= r[0] < T + 7 and r[1] == b"alert.opened")


def test_span(tmp_path: Path) -> None:
    reader = TapeReader(tmp_path)
    assert reader.span() is None
    records = _traffic(50)
    _write(tmp_path, records, block_bytes=500)
    assert reader.span() == (records[0][0], records[-1][0])


def test_a_torn_tail_is_skipped_and_the_writer_resumes_after_the_good_blocks(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    first = _traffic(20, start=T + 20)  # all in 05:00
    _write(tmp_path, first, block_bytes=800)
    seg = _segment(tmp_path)
    entries = index_path(seg).read_bytes()
    last_block = tape.ENTRY.unpack_from(entries, len(entries) - tape.ENTRY_SIZE)
    offset, length, count = last_block[2], last_block[3], last_block[4]
    os.truncate(seg, offset + length // 2)  # the crash came mid-write
    with caplog.at_level(logging.WARNING, "db.tape"):
        reader = TapeReader(tmp_path)
        assert _read(reader) == first[:-count]
    assert reader.skipped == 1 and "torn block at the end" in caplog.text

    more = _traffic(10, start=T + 40)
    _write(tmp_path, more, block_bytes=800)
    assert "cutting" in caplog.text
    # what the reader counts is damage it still has to skip: none now
    assert _read(reader) == first[:-count] + more and reader.skipped == 0
    fresh = TapeReader(tmp_path)
    assert _read(fresh) == first[:-count] + more
    assert fresh.skipped == 0


def test_a_torn_tail_of_an_earlier_hour_is_cut_by_the_next_writer(tmp_path: Path) -> None:
    early = _traffic(8, start=T, step=1.0)  # 04:59:50 to 04:59:57
    _write(tmp_path, early, block_bytes=500)
    seg = _segment(tmp_path, "04")
    last = _blocks(tmp_path, "04")[-1]
    os.truncate(seg, last.offset + 30)
    later = _traffic(3, start=T + 30)
    _write(tmp_path, later)
    assert seg.stat().st_size == last.offset
    reader = TapeReader(tmp_path)
    assert _read(reader) == [r for r in early if r[0] < last.first] + later
    assert reader.skipped == 0


def test_a_block_being_written_while_a_reader_looks_is_not_damage(tmp_path: Path) -> None:
    records = _traffic(12, start=T + 20)
    _write(tmp_path, records, block_bytes=800)
    seg = _segment(tmp_path)
    whole = seg.read_bytes()
    last = _blocks(tmp_path)[-1]
    seg.write_bytes(whole[: last.offset + 10])  # the writer is mid-write
    reader = TapeReader(tmp_path)
    assert _read(reader) == [r for r in records if r[0] < last.first]
    assert reader.skipped == 1
    seg.write_bytes(whole)  # and now it is done
    assert _read(reader) == records and reader.skipped == 0


def test_a_torn_index_entry_and_a_lost_index_are_rebuilt_from_the_segment(
        tmp_path: Path) -> None:
    records = _traffic(30, start=T + 20)
    _write(tmp_path, records, block_bytes=700)
    idx = index_path(_segment(tmp_path))
    raw = idx.read_bytes()
    idx.write_bytes(raw[: len(raw) - tape.ENTRY_SIZE // 2])  # half an entry
    assert _read(TapeReader(tmp_path)) == records
    idx.unlink()
    reader = TapeReader(tmp_path)
    assert _read(reader) == records and reader.skipped == 0
    _write(tmp_path, [], block_bytes=700)  # a writer that wrote nothing leaves it alone
    w = TapeWriter(tmp_path)
    w.append(T + 50, b"fix.batch", b"more")
    w.close()
    assert idx.read_bytes()[: len(raw)] == raw  # the writer rebuilt it before appending


def _flip(path: Path, at: int, n: int = 4) -> None:
    with open(path, "r+b") as f:
        f.seek(at)
        data = f.read(n)
        f.seek(at)
        f.write(bytes(b ^ 0xFF for b in data))


def _blocks(directory: Path, hour: str = "05") -> list[tape.BlockInfo]:
    blocks, _ = tape.load_segment(_segment(directory, hour), lambda _at, _why: None)
    return blocks


@pytest.mark.parametrize("where", ["section", "header"])
def test_a_corrupt_block_is_skipped_and_counted(
        tmp_path: Path, caplog: pytest.LogCaptureFixture, where: str) -> None:
    records = _traffic(40, start=T + 20)
    _write(tmp_path, records, block_bytes=900)
    blocks = _blocks(tmp_path)
    victim = blocks[len(blocks) // 2]
    inside = [r for r in records if victim.first <= r[0] <= victim.last]
    if where == "header":
        _flip(_segment(tmp_path), victim.offset + 20)  # its first time: the checksum fails
        lost = inside
    else:  # the last bytes of its last section: only that family's records go
        _flip(_segment(tmp_path), victim.offset + victim.length - 6)
        table = tape._parse_header(
            _segment(tmp_path).read_bytes()[victim.offset:], victim.offset)[1]  # type: ignore[index]
        family = table[-1][0]
        lost = [r for r in inside if tape.family_of(r[1]) == family]
    with caplog.at_level(logging.WARNING, "db.tape"):
        reader = TapeReader(tmp_path)
        got = _read(reader)
        assert _read(reader) == got  # the same damage is counted once
    assert got == [r for r in records if r not in lost] and lost
    assert reader.skipped == 1
    assert "checksum" in caplog.text


def test_garbage_between_blocks_is_skipped_and_the_reader_resyncs(tmp_path: Path) -> None:
    records = _traffic(30, start=T + 20)
    _write(tmp_path, records, block_bytes=700)
    seg = _segment(tmp_path)
    index_path(seg).unlink()  # only the walk can find the blocks after the damage
    victim = _blocks(tmp_path)[3]
    _flip(seg, victim.offset, 2)  # its magic
    reader = TapeReader(tmp_path)
    got = _read(reader)
    assert got == [r for r in records if not victim.first <= r[0] <= victim.last]
    assert reader.skipped == 1


def test_purge_removes_whole_old_segments_and_empty_days(tmp_path: Path) -> None:
    day = 86400.0
    old = [(T - 2 * day, b"fix.batch", b"a" * 100), (T - 2 * day + 3600, b"fix.batch", b"b")]
    recent = [(T - 1800, b"fix.batch", b"c"), (T + 20, b"fix.batch", b"d")]
    _write(tmp_path, old + recent)
    sizes = {p: p.stat().st_size for p in tmp_path.rglob("*") if p.is_file()}
    old_bytes = sum(s for p, s in sizes.items() if "2026-12-04" in str(p))
    assert purge(tmp_path, T - day) == old_bytes
    assert not (tmp_path / "2026-12-04").exists()
    assert _read(TapeReader(tmp_path)) == recent
    # the hour of ``before`` goes only when its last record is older
    assert purge(tmp_path, T - 1800) == 0  # its record is at T - 1800 exactly
    assert purge(tmp_path, T - 1000) > 0
    assert _read(TapeReader(tmp_path)) == recent[1:]
    assert purge(tmp_path / "nothing", T) == 0


def test_a_block_is_written_once_its_oldest_record_is_a_second_old(tmp_path: Path) -> None:
    now = [T + 20]
    clock: Callable[[], float] = lambda: now[0]  # noqa: E731
    w = TapeWriter(tmp_path, clock=clock)
    reader = TapeReader(tmp_path)
    w.append(now[0], b"alert.opened", b"sos")
    now[0] += 0.6
    w.append(now[0], b"fix.batch", b"fixes")
    assert w.maybe_flush() is False and _read(reader) == []
    now[0] += 0.4  # the first record is 1 s old now
    assert w.maybe_flush() is True and w.pending == 0
    assert _read(reader) == [(T + 20, b"alert.opened", b"sos"), (T + 20.6, b"fix.batch", b"fixes")]
    assert w.maybe_flush(now[0] + 5) is False  # nothing pending
    w.append(now[0], b"fix.batch", b"x")
    assert w.maybe_flush(now[0] + 0.99) is False and w.maybe_flush(now[0] + 1.0) is True
    w.close()


def test_a_full_block_is_written_at_once(tmp_path: Path) -> None:
    w = TapeWriter(tmp_path, block_bytes=1000, clock=lambda: T)
    w.append(T + 20, b"fix.batch", b"x" * 600)
    assert w.blocks == 0
    w.append(T + 20, b"fix.batch", b"x" * 600)
    assert (w.blocks, w.pending) == (1, 0)
    w.close()


def test_times_never_go_back_even_across_a_restart(tmp_path: Path) -> None:
    _write(tmp_path, [(T + 30, b"fix.batch", b"a"), (T + 29, b"fix.batch", b"b")])
    _write(tmp_path, [(T + 25, b"fix.batch", b"c"), (T + 31, b"fix.batch", b"d")])
    assert _read(TapeReader(tmp_path)) == [(T + 30, b"fix.batch", b"a"),
                                          (T + 30, b"fix.batch", b"b"),
                                          (T + 30, b"fix.batch", b"c"),
                                          (T + 31, b"fix.batch", b"d")]


def test_a_failed_write_loses_only_its_block(tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    w = TapeWriter(tmp_path)
    w.append(T + 20, b"fix.batch", b"kept")
    w.flush()
    real = os.write

    def full(fd: int, data: bytes) -> int:
        real(fd, bytes(data)[:5])  # a partial write, then the disk is full
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "write", full)
    w.append(T + 21, b"fix.batch", b"lost")
    with pytest.raises(OSError):
        w.flush()
    monkeypatch.setattr(os, "write", real)
    w.append(T + 22, b"fix.batch", b"after")
    w.close()
    assert w.lost == 1 and w.records == 2
    reader = TapeReader(tmp_path)
    assert _read(reader) == [(T + 20, b"fix.batch", b"kept"), (T + 22, b"fix.batch", b"after")]
    assert reader.skipped == 0


def test_bad_times_are_refused(tmp_path: Path) -> None:
    w = TapeWriter(tmp_path)
    for bad in (float("nan"), -1.0, float("inf")):
        with pytest.raises(ValueError):
            w.append(bad, b"fix.batch", b"")
