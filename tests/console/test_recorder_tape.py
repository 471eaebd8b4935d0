"""The recorder keeps the tape: a real bus and recorder, real publishers
with their own keys; what they publish comes back from ``TapeReader`` byte
for byte, in order, heartbeats stay off the tape, and the fixes are stored
as before."""

from __future__ import annotations

import logging
import math
import time
from collections import Counter
from pathlib import Path
from types import SimpleNamespace

import pytest
import zmq

from console.bus import Publisher, Subscriber
from console.config import Config
from console.security import Security
from console.services.recorder import Recorder, _purge_tape
from console.supervisor import Supervisor
from db.tape import TapeReader, TapeWriter, tape_dir
from models.messages import AlertOpened, AlertView, FixBatch, PositionBatch, encode, pack
from models.retention import DAY_S, RetentionPolicy
from tests.console.conftest import make_config, wait_for, wait_for_heartbeat


def _fixes(n: int) -> FixBatch:
    now = time.time()
    return FixBatch(device_ids=[f"88{i:08d}" for i in range(n)], t=pack("t", [now] * n),
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
            assert [got.index(f) for f in sent] == sorted(got.index(f) for f in sent)
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


def _bare_recorder(directory: Path) -> Recorder:
    """A Recorder's tape half alone, without its store and sockets."""
    rec = Recorder.__new__(Recorder)
    rec.rt = SimpleNamespace(log=logging.getLogger("t.recorder"))  # type: ignore[assignment]
    rec.tape = TapeWriter(directory)
    rec.tape_errors = rec._tape_unlogged = 0
    rec._tape_logged_at = -math.inf
    return rec


def test_a_disk_error_on_the_tape_is_counted_and_logged_never_raised(
        tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    (tmp_path / "tape").write_text("a file where the tape's folder should be")
    rec = _bare_recorder(tmp_path / "tape")
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
        _purge_tape(rt, RetentionPolicy.from_config(cfg), failed)  # type: ignore[arg-type]
    assert [r.body for r in TapeReader(tape_dir(cfg.data_dir)).read(0.0, math.inf)] == [b"new"]
    assert "MB of bus tape" in caplog.text and not failed
    assert len(list(tape_dir(cfg.data_dir).iterdir())) == 1  # the old day's folder went too
