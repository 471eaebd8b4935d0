"""The gateway's journal, a consumer's cursor in it, and the recorder's spool.

Why: a device is acknowledged only once its report is in the journal, and
consumers recover gaps from it (DESIGN.md, Delivery). If numbering skips,
restarts, or a follower accepts a gap or a repeat, an acknowledged SOS can
vanish without anybody seeing a gap. No processes here: files in tmp_path.
"""

from __future__ import annotations

import sqlite3
import tempfile
from collections.abc import Iterator
from pathlib import Path

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from console.journal import Follower, Journal, JournalError, JournalReader, journal_path
from console.spool import Spool
from models.messages import FixBatch, Heartbeat, pack

T0 = 1_790_000_000.0


def batch(n: int) -> FixBatch:
    """A one-fix batch whose device id names it, so order is visible."""
    return FixBatch(device_ids=[f"d{n}"], t=pack("t", [T0 + n]), lat=pack("lat", [37.5]),
                    lon=pack("lon", [127.0]), speed=pack("speed", [0.0]),
                    bearing=pack("bearing", [0.0]), accuracy=pack("accuracy", [5.0]),
                    battery=pack("battery", [80]), flags=pack("flags", [0]))


def seqs(batches: list[FixBatch]) -> list[int]:
    return [b.journal_seq for b in batches]


@pytest.fixture
def path(tmp_path: Path) -> Path:
    return journal_path(tmp_path)


@pytest.fixture
def journal(path: Path) -> Iterator[Journal]:
    j = Journal(path)
    yield j
    j.close()


def follower(path: Path, epoch: str = "", seq: int = 0) -> Follower:
    return Follower(JournalReader(path), epoch, seq)


def remove_journal_files(path: Path) -> None:
    for suffix in ("", "-wal", "-shm"):
        Path(f"{path}{suffix}").unlink(missing_ok=True)


# ------------------------------------------------------------------ Journal


def test_append_numbers_batches_gap_free_and_stamps_the_epoch(journal: Journal,
                                                              path: Path) -> None:
    """Consumers detect loss by gaps in journal_seq, so numbering must be dense."""
    first = journal.append([batch(1), batch(2)], now=T0)
    second = journal.append([batch(3)], now=T0)
    assert seqs(first + second) == [1, 2, 3] and journal.seq == 3
    assert {b.journal for b in first + second} == {journal.epoch} and journal.epoch
    reader = JournalReader(path)
    stored = reader.read(0)
    assert [b.device_ids for b in stored] == [["d1"], ["d2"], ["d3"]]
    assert stored == first + second  # exactly what was handed to publish
    assert reader.bounds() == (1, 3) and reader.epoch() == journal.epoch
    reader.close()


def test_reopen_keeps_seq_and_epoch(path: Path) -> None:
    """A gateway restart must continue the numbering: consumers' cursors
    would otherwise drop the new batches as repeats."""
    j = Journal(path)
    j.append([batch(1), batch(2)], now=T0)
    epoch = j.epoch
    j.close()
    j = Journal(path)
    assert (j.epoch, j.seq) == (epoch, 2)
    assert seqs(j.append([batch(3)], now=T0)) == [3]
    j.close()


def test_a_new_file_gets_a_new_epoch(tmp_path: Path) -> None:
    """The epoch tells consumers their cursor belongs to another file."""
    a = Journal(journal_path(tmp_path / "a"))
    b = Journal(journal_path(tmp_path / "b"))
    assert a.epoch and b.epoch and a.epoch != b.epoch
    a.close()
    b.close()
    path = journal_path(tmp_path / "a")
    remove_journal_files(path)
    c = Journal(path)
    assert c.epoch != a.epoch and c.seq == 0
    c.close()


def test_trim_removes_only_batches_older_than_keep(path: Path) -> None:
    j = Journal(path, keep_s=100.0)
    j.append([batch(1), batch(2)], now=T0)
    j.append([batch(3)], now=T0 + 150)
    assert j.trim(now=T0 + 200) == 2
    assert j.trim(now=T0 + 200) == 0
    reader = JournalReader(path)
    assert seqs(reader.read(0)) == [3] and reader.bounds() == (3, 3)
    assert seqs(j.append([batch(4)], now=T0 + 200)) == [4]  # numbering goes on
    reader.close()
    j.close()


def test_reopen_after_trim_emptied_the_journal_keeps_numbering(path: Path) -> None:
    """A quiet hour (or a gateway down for longer than keep_s, then trimmed at
    start) empties the table; the next restart must still not reuse numbers."""
    j = Journal(path, keep_s=10.0)
    j.append([batch(1), batch(2), batch(3)], now=T0)
    consumer = follower(path)
    assert seqs(consumer.catch_up()) == [1, 2, 3]
    assert j.trim(now=T0 + 100) == 2  # the newest stays, so numbering survives
    j.close()
    j = Journal(path, keep_s=10.0)
    new = j.append([batch(4)], now=T0 + 100)
    j.close()
    # What a consumer sees: the new batch must be applied, not dropped as a repeat.
    assert consumer.admit(new[0]) or seqs(consumer.catch_up()) == [new[0].journal_seq]
    assert consumer.duplicates == 0
    assert new[0].journal_seq == 4


def test_append_refused_while_the_file_is_locked_then_taken(journal: Journal,
                                                            path: Path) -> None:
    """A real refusal (another writer holds the lock past the 1 s timeout):
    nothing of the group lands and the sequence does not move."""
    journal.append([batch(1)], now=T0)
    holder = sqlite3.connect(path, isolation_level=None, timeout=0)
    holder.execute("BEGIN EXCLUSIVE")
    try:
        with pytest.raises(JournalError):
            journal.append([batch(2), batch(3)], now=T0)
        assert journal.seq == 1 and journal.failures == 1 and journal.last_error
    finally:
        holder.execute("ROLLBACK")
        holder.close()
    taken = journal.append([batch(2), batch(3)], now=T0)
    assert seqs(taken) == [2, 3] and journal.seq == 3 and journal.last_error == ""
    reader = JournalReader(path)
    assert seqs(reader.read(0)) == [1, 2, 3]
    assert [b.device_ids[0] for b in reader.read(0)] == ["d1", "d2", "d3"]
    reader.close()


def test_reader_of_a_missing_journal_is_empty(tmp_path: Path) -> None:
    """Consumers may start before the gateway ever wrote anything."""
    reader = JournalReader(journal_path(tmp_path))
    assert (reader.epoch(), reader.bounds(), reader.read(0)) == ("", (0, 0), [])
    f = Follower(reader)
    assert f.catch_up() == [] and not f.behind


# ----------------------------------------------------------------- Follower


def test_follower_starts_behind_and_reads_what_it_missed(journal: Journal,
                                                         path: Path) -> None:
    """At start-up the journal, not the bus, says where the consumer is."""
    published = journal.append([batch(1), batch(2), batch(3)], now=T0)
    f = follower(path)
    assert f.behind and not f.admit(published[0])  # not trusted before reading
    assert seqs(f.catch_up()) == [1, 2, 3]
    assert not f.behind and f.seq == 3 and f.recovered == 3 and f.epoch == journal.epoch


def test_follower_admits_in_order_and_drops_counted_duplicates(journal: Journal,
                                                               path: Path) -> None:
    f = follower(path)
    assert f.catch_up() == [] and not f.behind  # journal empty: up to date
    b1, b2 = journal.append([batch(1), batch(2)], now=T0)
    assert f.admit(b1) and f.admit(b2) and f.seq == 2
    assert not f.admit(b1) and not f.admit(b2)
    assert f.duplicates == 2 and not f.behind and f.gaps == 0


def test_gap_puts_the_follower_behind_and_catch_up_fills_it_in_order(journal: Journal,
                                                                     path: Path) -> None:
    f = follower(path)
    f.catch_up()
    b1, b2, b3, b4, b5 = journal.append([batch(n) for n in range(1, 6)], now=T0)
    assert f.admit(b1)
    assert not f.admit(b3) and f.behind and f.gaps == 1
    assert not f.admit(b4)  # while behind, live batches wait for the journal
    assert seqs(f.catch_up()) == [2, 3, 4, 5] and not f.behind and f.seq == 5
    assert not f.admit(b2) and not f.admit(b5) and f.duplicates == 2  # late arrivals
    b6 = journal.append([batch(6)], now=T0)[0]
    assert f.admit(b6)


def test_catch_up_reads_in_chunks_and_stays_behind_until_done(journal: Journal,
                                                              path: Path) -> None:
    journal.append([batch(n) for n in range(1, 6)], now=T0)
    f = follower(path)
    assert seqs(f.catch_up(limit=2)) == [1, 2] and f.behind
    assert seqs(f.catch_up(limit=2)) == [3, 4] and f.behind
    assert seqs(f.catch_up(limit=2)) == [5] and not f.behind
    assert f.catch_up(limit=2) == []


def test_poll_notices_batches_the_bus_never_brought(journal: Journal, path: Path) -> None:
    """A gateway that died between commit and publish leaves the last batch
    only in the journal; no later live batch will reveal the gap."""
    f = follower(path)
    f.catch_up()
    f.poll()
    assert not f.behind
    journal.append([batch(1)], now=T0)  # never published
    f.poll()
    assert not f.behind  # journaled a moment ago: the bus may still bring it
    f.poll()  # a second later it has not: read it back
    assert f.behind and seqs(f.catch_up()) == [1] and not f.behind


def test_unjournaled_batch_is_always_admitted(journal: Journal, path: Path) -> None:
    """journal_seq 0 means the disk refused it: the live copy is the only one."""
    f = follower(path)
    loose = batch(9)
    assert f.behind and f.admit(loose)
    f.catch_up()
    assert f.admit(loose) and f.admit(loose)
    assert f.duplicates == 0 and f.seq == 0


def test_new_epoch_is_read_from_the_start_by_a_restarted_consumer(path: Path) -> None:
    """A cursor saved against an old journal must not skip a new one's batches."""
    old = Journal(path)
    old.append([batch(n) for n in range(1, 6)], now=T0)
    old_epoch = old.epoch
    old.close()
    remove_journal_files(path)
    new = Journal(path)
    new.append([batch(10), batch(11)], now=T0)
    f = follower(path, old_epoch, 5)  # the cursor as stored
    got = f.catch_up()
    assert seqs(got) == [1, 2] and [b.device_ids[0] for b in got] == ["d10", "d11"]
    assert f.epoch == new.epoch and f.seq == 2 and f.lost == 0
    new.close()


def test_live_batch_of_a_new_epoch_puts_the_follower_behind(journal: Journal,
                                                            path: Path) -> None:
    f = follower(path)
    journal.append([batch(1)], now=T0)
    f.catch_up()
    stranger = msgspec.structs.replace(batch(2), journal="other", journal_seq=2)
    assert not f.admit(stranger) and f.behind


def test_new_epoch_is_seen_by_a_running_consumer(path: Path) -> None:
    """Follower.poll promises to notice 'a new journal' while running."""
    old = Journal(path)
    old.append([batch(1), batch(2)], now=T0)
    old.close()
    f = follower(path)
    assert seqs(f.catch_up()) == [1, 2]
    remove_journal_files(path)
    new = Journal(path)
    live = new.append([batch(10)], now=T0)[0]
    new.close()
    assert not f.admit(live)  # other epoch: behind, read it from the journal
    got = f.catch_up()
    assert [b.device_ids[0] for b in got] == ["d10"] and f.epoch == new.epoch


def test_trimmed_away_batches_are_counted_lost(path: Path) -> None:
    """A consumer down longer than keep_s loses batches, and must say how many."""
    j = Journal(path, keep_s=100.0)
    j.append([batch(n) for n in range(1, 4)], now=T0)
    j.append([batch(4), batch(5)], now=T0 + 150)
    assert j.trim(now=T0 + 200) == 3
    f = follower(path, j.epoch, 1)  # applied 1, then went down
    assert seqs(f.catch_up()) == [4, 5] and f.lost == 2
    fresh = follower(path)  # never ran: nothing was owed to it
    assert seqs(fresh.catch_up()) == [4, 5] and fresh.lost == 0
    j.close()


# --------------------------------------------------------- property: no loss


OPS = st.lists(st.one_of(
    st.tuples(st.just("append"), st.integers(1, 3)),  # one group commit of k batches, published
    st.tuples(st.just("deliver"), st.integers(0, 99)),  # any in-flight batch: reordering
    st.tuples(st.just("duplicate"), st.integers(0, 99)),  # delivered, and stays in flight
    st.tuples(st.just("drop"), st.integers(0, 99)),  # the bus lost it
    st.tuples(st.just("catch_up"), st.integers(1, 4)),  # with this chunk size
    st.tuples(st.just("poll"), st.just(0)),
), max_size=60)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(OPS)
def test_follower_yields_every_batch_once_in_order(ops: list[tuple[str, int]]) -> None:
    """Whatever the bus does (drops, repeats, reorders), and whenever the
    consumer reads back, it applies 1..N exactly once each, in order."""
    with tempfile.TemporaryDirectory() as tmp:
        path = journal_path(Path(tmp))
        journal = Journal(path)
        f = follower(path)
        in_flight: list[FixBatch] = []
        applied: list[int] = []
        for op, arg in ops:
            if op == "append":
                in_flight += journal.append([batch(0)] * arg, now=T0)
            elif op == "catch_up":
                applied += seqs(f.catch_up(limit=arg))
            elif op == "poll":
                f.poll()
            elif in_flight:
                i = arg % len(in_flight)
                b = in_flight[i] if op == "duplicate" else in_flight.pop(i)
                if op != "drop" and f.admit(b):
                    applied.append(b.journal_seq)
        # Quiet bus: two once-a-second polls, then read back until up to date.
        f.poll()
        f.poll()
        for _ in range(journal.seq + 2):
            if not f.behind:
                break
            applied += seqs(f.catch_up(limit=3))
        for b in in_flight:  # stragglers arriving late are repeats
            assert not f.admit(b)
        assert applied == list(range(1, journal.seq + 1))
        assert not f.behind and f.lost == 0
        f.reader.close()
        journal.close()


# -------------------------------------------------------------------- Spool


def beats(*ns: int) -> list[tuple[str, Heartbeat]]:
    return [("sys.heartbeat", Heartbeat(last_seq=n, origin="recorder")) for n in ns]


def spooled(spool: Spool) -> list[int]:
    return [m.last_seq for _, m in spool.peek() if isinstance(m, Heartbeat)]


def test_spool_round_trip_in_order(tmp_path: Path) -> None:
    spool = Spool(tmp_path / "spool" / "r.spool")
    assert len(spool) == 0 and spool.peek() == []
    spool.push(beats(1, 2))
    spool.push(beats(3))
    assert len(spool) == 3 and spool.peek() == beats(1, 2, 3)
    assert spool.peek() == beats(1, 2, 3)  # peek leaves them
    spool.clear()
    assert len(spool) == 0 and spool.peek() == [] and not spool.path.exists()


def test_spool_survives_a_restart(tmp_path: Path) -> None:
    """The recorder may die with events spooled; the next one must store them."""
    path = tmp_path / "r.spool"
    Spool(path).push(beats(1, 2, 3))
    again = Spool(path)
    assert len(again) == 3 and spooled(again) == [1, 2, 3]


def test_spool_drops_a_torn_last_record(tmp_path: Path) -> None:
    path = tmp_path / "r.spool"
    Spool(path).push(beats(1, 2, 3))
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size - 3)  # died mid-write
    again = Spool(path)
    assert len(again) == 2 and spooled(again) == [1, 2]


def test_spool_records_pushed_after_a_torn_tail_are_kept(tmp_path: Path) -> None:
    """After a crash mid-write the recorder restarts and spools more events."""
    path = tmp_path / "r.spool"
    Spool(path).push(beats(1, 2, 3))
    with path.open("r+b") as f:
        f.truncate(path.stat().st_size - 3)
    again = Spool(path)
    again.push(beats(4, 5))
    assert spooled(again) == [1, 2, 4, 5] and len(again) == 4
