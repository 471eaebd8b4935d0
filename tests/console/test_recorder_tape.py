"""The recorder keeps the tape: a real bus and recorder, real publishers
with their own keys; what they publish comes back from ``TapeReader`` byte
for byte, in order, heartbeats stay off the tape, and the fixes are stored
as before."""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace

import pytest
import zmq
from sqlalchemy import select

from console import tape_keeper as keeper_mod
from console.bus import Publisher, Subscriber
from console.config import Config
from console.security import Security
from console.services.recorder import Recorder
from console.supervisor import Supervisor
from console.tape_keeper import (
    REDACT_CURSOR,
    REDACT_SETTLE_S,
    RedactionGroup,
    TapeKeeper,
    new_withdrawals,
    purge_tape,
    redaction_groups,
)
from db import consent as db_consent
from db import cursors
from db.registry import add_device, remove_device
from db.seed import seed_demo
from db.store import open_store
from db.tables import Alert, Child, Device
from db.tape import TapeReader, TapeWriter, tape_dir
from models.consent import CASE_LEAD_S
from models.messages import (
    AlertOpened,
    AlertView,
    FixBatch,
    PositionBatch,
    decode,
    encode,
    fix_columns,
    pack,
)
from models.retention import DAY_S, RetentionPolicy
from tests.console.conftest import make_config, wait_for, wait_for_heartbeat


def _fixes(n: int, ids: list[str] | None = None) -> FixBatch:
    now = time.time()
    ids = [f"88{i:08d}" for i in range(n)] if ids is None else ids
    n = len(ids)
    return FixBatch(device_ids=ids, t=pack("t", [now] * n),
                    lat=pack("lat", [37.5444 + i * 1e-4 for i in range(n)]),
                    lon=pack("lon", [127.0374] * n), speed=pack("speed", [1.2] * n),
                    bearing=pack("bearing", [90.0] * n), accuracy=pack("accuracy", [8.0] * n),
                    battery=pack("battery", [80] * n), flags=pack("flags", [0] * n),
                    protocol="watch")


def _alert() -> AlertOpened:
    now = time.time()
    return AlertOpened(alert=AlertView(
        id=1, kind="sos", priority=1, state="new", child_token="c0ffee01", child_slot=3,
        device_id="8800000003", lat=37.5444, lon=127.0374, place="성동구 성수동1가",
        opened_at=now, ack_due=now + 30, close_due=now + 600))


def test_published_frames_come_back_from_the_tape(data_dir: Path) -> None:
    cfg = make_config(data_dir)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    with Supervisor(cfg, ("bus", "recorder")):
        wait_for_heartbeat(cfg, "recorder")  # its sockets are connected
        gateway = Publisher(ctx, cfg.bus_pub, "gateway", security=Security.of(cfg, "gateway"))
        engine = Publisher(ctx, cfg.bus_pub, "engine", security=Security.of(cfg, "engine"))
        watcher = Subscriber(ctx, cfg.bus_sub, ("fix.batch",), security=Security.console(cfg))
        try:
            # a publisher's first frames are lost until its connection is
            # up (ZeroMQ's slow joiner): send probes until one comes through
            deadline = time.monotonic() + 10
            while watcher.recv(100) is None:
                assert time.monotonic() < deadline, "the bus never passed a probe"
                gateway.send(_fixes(1))
            sent = [(b"fix.batch", encode(gateway.send(_fixes(50)))),
                    (b"alert.opened", encode(engine.send(_alert())))]
            # positions by slot stay off the tape (only the engine can tie a
            # slot to a child, so a withdrawal could not purge them)
            positions = engine.send(PositionBatch(
                slots=pack("slots", [3]), t=pack("t", [time.time()]), lat=pack("lat", [37.5]),
                lon=pack("lon", [127.0]), inside=pack("inside", [1]), flags=pack("flags", [0])))
            sent.append((b"fix.batch", encode(gateway.send(_fixes(3)))))
            reader = TapeReader(tape_dir(cfg.data_dir))

            def taped() -> list[tuple[bytes, bytes]]:
                return [(r.raw_topic, r.body) for r in reader.read(0.0, math.inf)]

            def all_there() -> bool:
                got = taped()
                return all(frame in got for frame in sent)

            wait_for(all_there, 10.0, "the published frames on the tape")
            records = list(reader.read(0.0, math.inf))
            got = [(r.raw_topic, r.body) for r in records]
            # in order per publisher (across two, the bus promises no order)
            fixes = [f for f in sent if f[0] == b"fix.batch"]
            assert [got.index(f) for f in fixes] == sorted(got.index(f) for f in fixes)
            assert all(r.topic != "sys.heartbeat" for r in records)
            assert encode(positions) not in [r.body for r in records]
            assert [r.recv_ts for r in records] == sorted(r.recv_ts for r in records)
            assert abs(records[-1].recv_ts - time.time()) < 10
            assert reader.skipped == 0
            alerts = [r.body for r in reader.read(0.0, math.inf, (b"alert.",))]
            assert alerts == [sent[1][1]]
            # the fix path went on as before: the batches are in the store too
            beats: list[dict[str, float]] = []
            wait_for(lambda: beats.append(wait_for_heartbeat(cfg, "recorder"))
                     or beats[-1]["fixes_written"] >= 53, 10.0, "the fixes stored")
            stats = beats[-1]
            assert stats["tape_records"] >= len(sent) and stats["tape_bytes"] > 0
            assert stats["tape_errors"] == 0 and stats["tape_malformed"] == 0
        finally:
            gateway.close()
            engine.close()
            watcher.close()
            ctx.term()


def _bare_keeper(directory: Path) -> TapeKeeper:
    """A recorder's tape keeper alone, without its store and socket."""
    rec = TapeKeeper.__new__(TapeKeeper)
    rec.rt = SimpleNamespace(log=logging.getLogger("t.recorder"))  # type: ignore[assignment]
    rec.tape = TapeWriter(directory)
    rec.tape_errors = rec._tape_unlogged = 0
    rec._tape_logged_at = -math.inf
    return rec


def test_a_disk_error_on_the_tape_is_counted_and_logged_never_raised(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "tape").write_text("a file where the tape's folder should be")
    rec = _bare_keeper(tmp_path / "tape")
    with caplog.at_level(logging.ERROR, "t.recorder"):
        for i in range(3):
            rec.tape.append(time.time(), b"fix.batch", b"x")
            rec.tape.append(time.time(), b"alert.opened", b"y")
            rec.flush_tape()  # not yet a second old: nothing to write
            assert rec.tape_errors == i
            rec.tape.max_age_s = 0.0
            rec.flush_tape()
            rec.tape.max_age_s = 60.0
        rec.close_tape()
    assert rec.tape_errors == 3 and rec.tape.lost == 6
    [line] = [r.getMessage() for r in caplog.records]  # once a minute, however many
    assert line.startswith("tape not written (") and "fixes and events are still stored" in line


def test_retention_removes_old_tape_files(tmp_path: Path,
                                          caplog: pytest.LogCaptureFixture) -> None:
    cfg = Config(data_dir=tmp_path, tape_keep_days=2.0)
    now = time.time()
    writer = TapeWriter(tape_dir(cfg.data_dir))
    writer.append(now - 3 * DAY_S, b"fix.batch", b"old" * 1000)
    writer.append(now - 60, b"fix.batch", b"new")
    writer.close()
    failed: Counter[str] = Counter()
    rt = SimpleNamespace(config=cfg, log=logging.getLogger("t.recorder"))
    with caplog.at_level(logging.INFO, "t.recorder"):
        purge_tape(rt, RetentionPolicy.from_config(cfg), failed)  # type: ignore[arg-type]
    assert [r.body for r in TapeReader(tape_dir(cfg.data_dir)).read(0.0, math.inf)] == [b"new"]
    assert "MB of bus tape" in caplog.text and not failed
    assert len(list(tape_dir(cfg.data_dir).iterdir())) == 1  # the old day's folder went too


# ------------------------------------------------------------------ withdrawal


def _two_children(cfg: Config) -> tuple[tuple[str, str], tuple[str, str]]:
    """Seed the demo store with a few children (each with a device and its
    guardian's consent); (token, device) of two of them."""
    engine, sessions = open_store(cfg.db_url)
    with sessions() as s:
        seed_demo(s, 4)
        s.commit()
        rows = s.execute(select(Child.token, Device.id).join(Device, Device.child_id == Child.id)
                         .order_by(Child.id).limit(2)).all()
    engine.dispose()
    (first, its), (second, theirs) = rows
    return (first, its), (second, theirs)


def _withdraw(cfg: Config, token: str, at: float) -> int:
    """A guardian withdraws consent (as ``childsafe consent withdraw``
    does); the number of its usage record."""
    engine, sessions = open_store(cfg.db_url)
    with sessions() as s:
        report = db_consent.withdraw(s, token, "admin1", at)
        s.commit()
    engine.dispose()
    assert report.usage_seq is not None
    return report.usage_seq


def _taped_fixes(cfg: Config) -> dict[str, list[tuple[float, ...]]]:
    """Every fix on the tape by device: its batch's seq and all its values."""
    out: dict[str, list[tuple[float, ...]]] = {}
    for r in TapeReader(tape_dir(cfg.data_dir)).read(0.0, math.inf, (b"fix.",)):
        msg = decode(r.body)
        assert isinstance(msg, FixBatch)
        cols = fix_columns(msg)
        for i, device in enumerate(msg.device_ids):
            out.setdefault(device, []).append(
                (msg.seq, *(float(c[i]) for c in cols.values())))
    return out


def test_a_withdrawal_takes_the_childs_fixes_off_the_tape(data_dir: Path) -> None:
    """A real bus and recorder: the fixes of two children's devices are on
    the tape; one child's consent is withdrawn; soon the tape holds none of
    that child's fixes and every one of the other's, it goes on recording,
    and the heartbeat counts the redaction."""
    cfg = make_config(data_dir)
    (child, gone), (_, other) = _two_children(cfg)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    with Supervisor(cfg, ("bus", "recorder")):
        wait_for_heartbeat(cfg, "recorder")
        gateway = Publisher(ctx, cfg.bus_pub, "gateway", security=Security.of(cfg, "gateway"))
        watcher = Subscriber(ctx, cfg.bus_sub, ("fix.batch",), security=Security.console(cfg))
        try:
            deadline = time.monotonic() + 10
            while watcher.recv(100) is None:  # the slow joiner, as above
                assert time.monotonic() < deadline, "the bus never passed a probe"
                gateway.send(_fixes(1))
            for ids in ([gone, other], [other], [gone], [other, gone, other]):
                gateway.send(_fixes(0, ids))
            wait_for(lambda: len(_taped_fixes(cfg).get(gone, [])) == 3
                     and len(_taped_fixes(cfg).get(other, [])) == 4, 10.0, "the fixes taped")
            theirs = _taped_fixes(cfg)[other]

            # made REDACT_SETTLE_S ago, so it is due at once (the wait is held below)
            _withdraw(cfg, child, time.time() - REDACT_SETTLE_S)

            stats = wait_for_heartbeat(cfg, "recorder", "tape_redactions", 1.0, 10.0)
            assert stats["tape_fixes_redacted"] == 3
            assert gone not in _taped_fixes(cfg)
            assert _taped_fixes(cfg)[other] == theirs  # to the last bit, the batch's seq too
            assert stats["tape_redaction_failures"] == 0 and stats["tape_errors"] == 0
            # the tape records on after the redaction paused it
            later = gateway.send(_fixes(0, [other]))
            wait_for(lambda: any(f[0] == later.seq for f in _taped_fixes(cfg)[other]), 10.0,
                     "a batch taped after the redaction")
        finally:
            gateway.close()
            watcher.close()
            ctx.term()


def _store_cursor(cfg: Config) -> int:
    engine, sessions = open_store(cfg.db_url)
    with sessions() as s:
        _, seq = cursors.load(s, REDACT_CURSOR)
    engine.dispose()
    return seq


def _step_until(rec: TapeKeeper, done: Callable[[], bool], what: str) -> None:
    """Drive the recorder's redaction as its loop does, until ``done``."""
    deadline = time.monotonic() + 10
    while not done():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        rec.redact_tape()
        time.sleep(0.01)


def _close(rec: Recorder) -> None:
    rec.tape_keeper.close()
    rec.sub.close()
    rec.pub.close()
    rec.ctx.term()
    rec.engine.dispose()


def test_a_failed_redaction_is_counted_retried_and_not_repeated_after_a_restart(
        data_dir: Path, monkeypatch: pytest.MonkeyPatch,
        caplog: pytest.LogCaptureFixture) -> None:
    cfg = make_config(data_dir, bus_security="off")
    (child, gone), (_, other) = _two_children(cfg)
    writer = TapeWriter(tape_dir(cfg.data_dir))
    now = time.time()
    for i, ids in enumerate(([gone, other], [other], [gone])):
        writer.append(now - 7200 + i, b"fix.batch", encode(_fixes(0, ids)))  # a closed hour
        writer.append(now - 1 + i * 0.1, b"fix.batch", encode(_fixes(0, ids)))  # the open one
    writer.close()
    seq = _withdraw(cfg, child, now)
    rt = SimpleNamespace(config=cfg, log=logging.getLogger("t.recorder"))

    def full_disk(*_a: object, **_k: object) -> None:
        raise OSError(28, "No space left on device")

    real_redact = keeper_mod.redact
    monkeypatch.setattr(keeper_mod, "redact", full_disk)
    monkeypatch.setattr(keeper_mod, "REDACT_SETTLE_S", 0.3)
    recorder = Recorder(rt)  # type: ignore[arg-type]
    rec = recorder.tape_keeper
    try:
        # the gateway may still pass the child's fixes for a moment: it waits
        rec.redact_tape()
        assert rec.redaction is None and rec.redact_cursor == seq - 1
        time.sleep(0.3)
        with caplog.at_level(logging.ERROR, "t.recorder"):
            _step_until(rec, lambda: rec.tape_redaction_failures == 1, "the failure")
        assert rec.redaction is None and not rec.tape_paused
        assert "tape redaction failed (OSError" in caplog.text
        assert gone in _taped_fixes(cfg) and _store_cursor(cfg) < seq  # not moved

        monkeypatch.setattr(keeper_mod, "redact", real_redact)
        rec.redact_at = 0.0  # rather than REDACT_RETRY_S later
        _step_until(rec, lambda: rec.tape_redactions == 1, "the redaction")
        assert rec.tape_fixes_redacted == 4 and not rec.tape_paused
        assert gone not in _taped_fixes(cfg) and len(_taped_fixes(cfg)[other]) == 4
        assert _store_cursor(cfg) >= seq
    finally:
        _close(recorder)

    restarted = Recorder(rt)  # type: ignore[arg-type]
    again = restarted.tape_keeper
    try:
        again.redact_tape()
        assert again.redaction is None and again.redact_cursor is not None
        assert again.redact_cursor >= seq
    finally:
        _close(restarted)


def test_what_is_redacted_follows_the_withdrawal_and_a_new_consent(data_dir: Path) -> None:
    """Each child's devices and case windows as the store's deletion took
    them; what came after a new consent stays; children alike share a pass."""
    cfg = make_config(data_dir, bus_security="off")
    engine, sessions = open_store(cfg.db_url)
    t = 1_800_000_000.0
    with sessions() as s:
        seed_demo(s, 4)
        rows = s.execute(select(Child.id, Child.token, Device.id).join(
            Device, Device.child_id == Child.id).order_by(Child.id)).all()
        (_, a, da), (_, b, db), (c_id, c, dc), (_, d, dd) = rows
        s.add(Alert(kind="sos", priority=1, state="new", child_id=c_id, device_id=dc,
                    lat=37.5, lon=127.0, place="성동구", opened_at=t - 60))
        for token, at in ((a, t), (b, t + 1), (c, t + 2), (d, t + 3)):
            db_consent.withdraw(s, token, "admin1", at)
        [guardian] = db_consent.guardians(s, a)
        db_consent.give(s, a, guardian.id, "location", "under14", "admin1", t + 100)
        s.commit()
        head, found = new_withdrawals(s, 0)
        assert [w.child for w in found] == [a, b, c, d] and head == found[-1].seq + 1
        groups = redaction_groups(s, found, logging.getLogger("t.recorder"))
        assert new_withdrawals(s, head) == (head, [])
    engine.dispose()
    assert len(groups) == 3 and set(groups) == {
        RedactionGroup(frozenset({da}), (), t + 100),
        RedactionGroup(frozenset({db, dd}), (), math.inf),
        RedactionGroup(frozenset({dc}), ((t - 60 - CASE_LEAD_S, t + 2),), math.inf)}


def test_a_device_passed_on_is_redacted_only_over_the_withdrawn_childs_time(
        data_dir: Path) -> None:
    """Child a's watch went to child b at ``t + 50``; a's withdrawal takes
    it off the tape up to then, b's from then on."""
    cfg = make_config(data_dir, bus_security="off")
    engine, sessions = open_store(cfg.db_url)
    t = 1_800_000_000.0
    with sessions() as s:
        seed_demo(s, 2)
        (a, da), (b, db) = s.execute(select(Child.token, Device.id).join(
            Device, Device.child_id == Child.id).order_by(Child.id)).all()
        remove_device(s, db, now=t - 10)  # b's own device goes, a's goes to b
        remove_device(s, da, now=t + 50)
        add_device(s, da, "watch", b, now=t + 60)
        db_consent.withdraw(s, a, "admin1", t + 100)
        db_consent.withdraw(s, b, "admin1", t + 200)
        s.commit()
        _, found = new_withdrawals(s, 0)
        groups = redaction_groups(s, found, logging.getLogger("t.recorder"))
    engine.dispose()
    assert set(groups) == {RedactionGroup(frozenset({da}), (), t + 50),
                           RedactionGroup(frozenset({db}), (), math.inf),
                           RedactionGroup(frozenset({da}), (), math.inf, t + 60)}
