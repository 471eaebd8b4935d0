"""An SOS never waits behind routine fixes (issue 14).

Why: at city scale the gateway and the engine carry tens of thousands of
routine fixes a second; a child's SOS must not queue behind them. Two
halves, each checked where it happens, by order and never by time:

- the engine, in-process on a seeded store: a drain turn that holds a
  routine backlog and an SOS opens the alert (the desk triggered and
  ``alert.opened`` published) before it applies the backlog, also when the
  SOS comes in while the backlog is being applied and when both are read
  back from the journal; and the alarm's own child keeps its order (its
  queued fixes go first, an older fix after the SOS never moves it back);
- a real gateway process, watched from a bus tap: an SOS over OsmAnd (GET
  and JSON POST) and over the watch protocol leaves in a ``fix.batch`` of
  its own, published and journaled ahead of the routine fixes that were
  waiting when it came. (Tag-reader and carrier feeds carry no alarms: a
  read or an LBS fix has no SOS field, so they have no fast lane to test.)
"""

from __future__ import annotations

import json
import math
import socket
import time
from collections import deque
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import msgspec
import numpy as np
import pytest
import zmq

from console.bus import Subscriber
from console.gateway.watch import encode as watch_frame
from console.journal import Journal, journal_path
from console.security import Security
from console.services.engine import Engine
from console.services.runtime import Runtime
from db import repositories as repo
from db.seed import seed_demo
from db.store import open_store
from models.messages import (
    FLAG_BAD_POSITION,
    FLAG_SOS,
    FixBatch,
    Heartbeat,
    ReplayClock,
    encode,
    pack,
    topic_of,
    unpack,
)
from tests.console.conftest import (
    SEOUL_FOREST,
    make_config,
    running_backend,
    watch_connection,
)

WAIT_S = 10.0  # an upper bound for a condition, never a measured time
BACKLOG_BATCHES = 40


# ------------------------------------------------------------------ the engine
def fix_batch(rows: list[tuple[str, float, float, float]], flags: list[int] | None = None
              ) -> FixBatch:
    """A gateway batch of (device, t, lat, lon) rows."""
    n = len(rows)
    return FixBatch(device_ids=[r[0] for r in rows], t=pack("t", [r[1] for r in rows]),
                    lat=pack("lat", [r[2] for r in rows]), lon=pack("lon", [r[3] for r in rows]),
                    speed=pack("speed", np.zeros(n)), bearing=pack("bearing", np.zeros(n)),
                    accuracy=pack("accuracy", np.full(n, 8.0)),
                    battery=pack("battery", np.full(n, 80)),
                    flags=pack("flags", flags or [0] * n))


class BusInbox:
    """Stands in for the engine's SUB socket: frames as the bus delivers them,
    one ``recv_multipart`` at a time, ``zmq.Again`` when none is waiting."""

    def __init__(self) -> None:
        self.frames: deque[list[bytes]] = deque()
        self.later: list[FixBatch] = []  # what comes while the engine waits (``poll``)

    def put(self, batch: FixBatch | ReplayClock) -> None:
        self.frames.append([topic_of(batch), encode(batch)])

    def recv_multipart(self, flags: int = 0) -> list[bytes]:
        if not self.frames:
            raise zmq.Again()
        return self.frames.popleft()

    def poll(self, timeout: int = 0, flags: int = zmq.POLLIN) -> int:
        """``later`` comes now; else nothing will, and the wait runs out."""
        if not self.frames and self.later:
            for batch in self.later:
                self.put(batch)
            self.later = []
        elif not self.frames:
            time.sleep(timeout / 1000)
        return zmq.POLLIN if self.frames else 0


@dataclass
class Watched:
    """An engine whose input is scripted and whose work is written down in order."""

    engine: Engine
    devices: list[str]  # one device per child, in roster order
    places: dict[str, tuple[float, float]]
    inbox: BusInbox
    events: list[tuple[str, Any]] = field(default_factory=list)  # ("step", ids) | (topic, msg)
    after_steps: dict[int, list[FixBatch]] = field(default_factory=dict)

    def steps(self) -> list[list[str]]:
        return [ids for kind, ids in self.events if kind == "step"]

    def index(self, kind: str, pred: Any = lambda _x: True) -> int:
        return next(i for i, (k, x) in enumerate(self.events) if k == kind and pred(x))

    def sos_opened(self, device: str) -> int:
        return self.index("alert.opened", lambda m: m.alert.device_id == device
                          and m.alert.kind == "sos")

    def backlog(self, devices: list[str], t0: float) -> list[FixBatch]:
        """``BACKLOG_BATCHES`` routine batches, each moving every one of
        ``devices`` a little, device time rising batch by batch."""
        out = []
        for k in range(BACKLOG_BATCHES):
            rows = [(d, t0 + k, self.places[d][0] + k * 1e-6, self.places[d][1])
                    for d in devices]
            out.append(fix_batch(rows))
        return out


@pytest.fixture
def watched(data_dir: Path) -> Iterator[Watched]:
    yield from watch_engine(data_dir)


@pytest.fixture
def watched_training(data_dir: Path) -> Iterator[Watched]:
    """The same, as a training installation's engine on the replayed clock."""
    yield from watch_engine(data_dir, training=True, replay_start=time.time() - 100)


def watch_engine(data_dir: Path, **kw: Any) -> Iterator[Watched]:
    cfg = make_config(data_dir, children=40, bus_security="off", **kw)
    store, sessions = open_store(cfg.db_url)
    with sessions() as s:
        seed_demo(s, cfg.children)
        s.commit()
        zones = {z.id: (z.lat, z.lon) for z in repo.zones(s)}
        roster = repo.roster(s)
    store.dispose()
    first: dict[int, str] = {}
    places: dict[str, tuple[float, float]] = {}
    for r in roster:
        first.setdefault(r.child_id, r.device_id)
        places[r.device_id] = zones.get(r.zone_id, SEOUL_FOREST) if r.zone_id else SEOUL_FOREST
    engine = Engine(Runtime("engine", cfg))
    real_sock = engine.sub.sock
    w = Watched(engine, list(first.values()), places, BusInbox())
    engine.sub.sock = w.inbox  # type: ignore[assignment]
    send, step = engine.pub.send, engine.state.tracker.step

    def noted_send(msg: Any, stamped: bool = False) -> Any:
        w.events.append((topic_of(msg).decode(), msg))
        return send(msg, stamped)

    def noted_step(ids: list[str], cols: Any, readers: Any = None, slots: Any = None) -> Any:
        w.events.append(("step", list(ids)))
        for batch in w.after_steps.pop(len(w.steps()), []):  # comes in meanwhile
            w.inbox.put(batch)
        return step(ids, cols, readers, slots)

    tick = engine.routine.tick

    def noted_tick() -> None:
        w.events.append(("tick", engine.now()))
        tick()

    engine.routine.tick = noted_tick  # type: ignore[method-assign]
    engine.pub.send = noted_send  # type: ignore[method-assign]
    engine.state.tracker.step = noted_step  # type: ignore[method-assign]
    engine._drain_fixes()  # no journal yet: the follower trusts the bus from now on
    try:
        yield w
    finally:
        engine.sub.sock = real_sock
        engine.close()


def test_an_sos_read_with_a_backlog_is_opened_before_the_backlog_is_applied(
        watched: Watched) -> None:
    w, now = watched, time.time()
    routine, sos = w.devices[:30], w.devices[30]
    for batch in w.backlog(routine, now - 60):
        w.inbox.put(batch)
    lat, lon = w.places[sos]
    w.inbox.put(fix_batch([(sos, now, lat, lon)], [FLAG_SOS]))

    taken = w.engine._drain_fixes()

    assert taken == BACKLOG_BATCHES * len(routine) + 1
    assert w.steps()[0] == [sos]  # the alarm's step came first, then the backlog in order
    assert w.steps()[1:] == [routine] * BACKLOG_BATCHES
    opened = w.sos_opened(sos)
    assert opened < w.index("step", lambda ids: ids == routine)
    (positions,) = [m for kind, m in w.events if kind == "pos.batch"]  # one, at the end
    assert w.events.index(("pos.batch", positions)) > opened
    moved = set(unpack("slots", positions.slots).tolist())
    slots = w.engine.state.tracker.device_slots
    assert {slots[d] for d in [*routine, sos]} <= moved  # every fix read was applied
    assert not w.inbox.frames


def test_an_sos_that_comes_in_while_the_backlog_is_applied_goes_next(watched: Watched) -> None:
    w, now = watched, time.time()
    routine, sos = w.devices[:30], w.devices[30]
    for batch in w.backlog(routine, now - 60):
        w.inbox.put(batch)
    lat, lon = w.places[sos]
    w.after_steps[3] = [fix_batch([(sos, now, lat, lon)], [FLAG_SOS])]  # during the 3rd

    w.engine._drain_fixes()

    steps = w.steps()
    assert steps[3] == [sos]  # right after the routine batch it came in during
    assert len(steps) == BACKLOG_BATCHES + 1
    routine_steps = [i for i, (kind, ids) in enumerate(w.events)
                     if kind == "step" and ids == routine]
    assert routine_steps[2] < w.sos_opened(sos) < routine_steps[3]  # opened, then the rest


def test_the_alarms_own_child_keeps_its_order(watched: Watched) -> None:
    """The rule: an alarm overtakes other children's fixes, never its own
    child's. Its queued fixes are applied first (so an SOS without a position
    is raised where the child was last seen), and an older fix that comes
    after the SOS never moves the child back."""
    w, now = watched, time.time()
    routine, walker, lost = w.devices[:30], w.devices[31], w.devices[32]
    batches = w.backlog(routine, now - 60)
    (wl, wo), (ll, lo) = w.places[walker], w.places[lost]
    at = {"walker_then": (wl + 0.001, wo), "walker_sos": (wl + 0.002, wo),
          "walker_late": (wl + 0.003, wo), "lost_then": (ll + 0.001, lo)}
    # Both children's routine fixes sit in the backlog, read before their alarms.
    batches[5] = fix_batch([*((d, now - 55, *w.places[d]) for d in routine),
                            (walker, now - 30, *at["walker_then"]),
                            (lost, now - 30, *at["lost_then"])])
    for batch in batches:
        w.inbox.put(batch)
    w.inbox.put(fix_batch([(walker, now - 10, *at["walker_sos"]),
                           (lost, now - 10, math.nan, math.nan)],
                          [FLAG_SOS, FLAG_SOS | FLAG_BAD_POSITION]))
    # An older fix of the walker, read after the SOS (another protocol's batch).
    w.inbox.put(fix_batch([(walker, now - 20, *at["walker_late"])]))

    w.engine._drain_fixes()

    steps = w.steps()
    assert steps[0] == [walker, lost]  # their queued fixes, split off the 6th batch
    assert steps[1] == [walker, lost]  # then their alarms
    assert steps[2:7] == [routine] * 5 and steps[7] == routine  # the 6th, without them
    opened = {m.alert.device_id: m.alert for kind, m in w.events
              if kind == "alert.opened" and m.alert.kind == "sos"}
    assert (opened[walker].lat, opened[walker].lon) == pytest.approx(at["walker_sos"])
    assert not opened[walker].position_is_last_known
    # raised where the queued fix put the child, not where it was before the turn
    assert (opened[lost].lat, opened[lost].lon) == pytest.approx(at["lost_then"])
    assert opened[lost].position_is_last_known
    tr, slots = w.engine.state.tracker, w.engine.state.tracker.device_slots
    here = (float(tr.lat[slots[walker]]), float(tr.lon[slots[walker]]))
    assert here == pytest.approx(at["walker_sos"])  # the newest, not the late older fix
    assert tr.rejected["out_of_order_or_duplicate"] >= 1


def test_from_the_journal_the_sos_is_opened_first_and_the_cursor_covers_the_turn(
        watched: Watched) -> None:
    """After a gap or a restart the engine reads the gateway's journal: the
    fast lane holds there too, and everything read is applied in the turn
    (the cursor, saved between turns, never passes a batch not applied)."""
    w, now = watched, time.time()
    routine, sos = w.devices[:30], w.devices[30]
    lat, lon = w.places[sos]
    journal = Journal(journal_path(w.engine.rt.config.data_dir))
    try:
        journal.append([*w.backlog(routine, now - 60),
                        fix_batch([(sos, now, lat, lon)], [FLAG_SOS])])
        w.engine.follow.behind = True  # as after a gap
        w.engine._drain_fixes()
        assert w.engine.follow.seq == journal.seq == BACKLOG_BATCHES + 1
        assert w.engine.follow.epoch == journal.epoch
    finally:
        journal.close()
    assert w.steps()[0] == [sos] and len(w.steps()) == BACKLOG_BATCHES + 1
    assert w.sos_opened(sos) < w.index("step", lambda ids: ids == routine)


# ----------------------------------------------------------------- the gateway
class BusTap:
    """``fix.batch`` as any subscriber sees it, in publication order."""

    def __init__(self, cfg: Any) -> None:
        self.ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self.sub = Subscriber(self.ctx, cfg.bus_sub, ("fix.batch", "sys.heartbeat"),
                              security=Security.console(cfg))
        self.batches: list[FixBatch] = []
        # Subscribed once a gateway heartbeat (once a second) comes through.
        self.until(lambda: False, lambda msg: isinstance(msg, Heartbeat)
                   and msg.origin.startswith("gateway"))

    def until(self, done: Any, stop_on: Any = lambda _m: False) -> None:
        deadline = time.monotonic() + WAIT_S
        while not done():
            assert time.monotonic() < deadline, "not seen on the bus"
            got = self.sub.recv(100)
            if got is None:
                continue
            if isinstance(got[1], FixBatch):
                self.batches.append(got[1])
            if stop_on(got[1]):
                return

    def holding(self, device: str) -> FixBatch:
        """The first batch that carried ``device``, once it has come."""
        self.until(lambda: any(device in b.device_ids for b in self.batches))
        return next(b for b in self.batches if device in b.device_ids)

    def close(self) -> None:
        self.sub.close()
        self.ctx.term()


def osmand_get(device: str, lat: float, lon: float, sos: bool = False) -> bytes:
    q = (f"id={device}&lat={lat:.6f}&lon={lon:.6f}&timestamp={time.time():.3f}&accuracy=8"
         + ("&alarm=sos" if sos else ""))
    return f"GET /?{q} HTTP/1.1\r\nHost: gw\r\n\r\n".encode()


def osmand_json(device: str, lat: float, lon: float, sos: bool = False) -> bytes:
    loc: dict[str, Any] = {"timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
                           "coords": {"latitude": lat, "longitude": lon, "accuracy": 8}}
    if sos:
        loc["extras"] = {"alarm": "sos"}
    body = json.dumps({"device_id": device, "location": loc}).encode()
    return (b"POST / HTTP/1.1\r\nHost: gw\r\nContent-Type: application/json\r\n"
            b"Content-Length: %d\r\n\r\n%s" % (len(body), body))


def watch_location(device: str, kind: str, status: str, lat: float, lon: float) -> bytes:
    when = time.strftime("%d%m%y,%H%M%S", time.gmtime())
    return watch_frame("3G", device, f"{kind},{when},A,{lat:.6f},N,{lon:.6f},E,4.0,90.0,30.0,"
                                     f"8,90,71,120,0,{status},1,1,450,5,8801,40561,150,0")


def read_http_replies(s: socket.socket, n: int) -> list[int]:
    """The status of each of the next ``n`` replies on a keep-alive connection."""
    buf = b""
    statuses: list[int] = []
    deadline = time.monotonic() + WAIT_S
    while len(statuses) < n:
        head_end = buf.find(b"\r\n\r\n")
        if head_end >= 0:
            head = buf[:head_end].decode("latin-1").split("\r\n")
            length = next((int(h.split(":", 1)[1]) for h in head[1:]
                           if h.lower().startswith("content-length:")), 0)
            if len(buf) >= head_end + 4 + length:
                statuses.append(int(head[0].split()[1]))
                buf = buf[head_end + 4 + length:]
                continue
        assert time.monotonic() < deadline, buf
        chunk = s.recv(4096)
        assert chunk, "the gateway closed the connection"
        buf += chunk
    return statuses


def assert_alone_and_first(tap: BusTap, sos: str, routine: list[str]) -> None:
    """The SOS left in a batch of its own, journaled and published before the
    routine fixes that were waiting for their group commit when it came."""
    alarm = tap.holding(sos)
    assert alarm.device_ids == [sos]
    assert unpack("flags", alarm.flags)[0] & FLAG_SOS
    for device in routine:
        batch = tap.holding(device)
        assert sos not in batch.device_ids
        assert tap.batches.index(batch) > tap.batches.index(alarm)
        assert batch.journal_seq > alarm.journal_seq > 0


def test_the_gateway_sends_each_protocols_sos_in_a_batch_of_its_own(data_dir: Path) -> None:
    cfg = make_config(data_dir, children=30)
    with running_backend(cfg, ("bus", "engine", "gateway"),
                         ports=("osmand_port", "watch_port")) as backend:
        phones = [r.device_id for r in backend.roster if r.kind == "phone"]
        watches = [r.device_id for r in backend.roster if r.kind == "watch"]
        assert len(phones) >= 6 and len(watches) >= 3, "the demo seed changed"
        lat, lon = SEOUL_FOREST
        tap = BusTap(cfg)
        try:
            # OsmAnd: two phones' fixes and a third phone's SOS, pipelined in
            # one write (decoded in one go: the fixes are still waiting).
            with socket.create_connection(("127.0.0.1", cfg.osmand_port), 5) as s:
                s.sendall(osmand_get(phones[0], lat, lon) + osmand_get(phones[1], lat, lon)
                          + osmand_get(phones[2], lat, lon, sos=True))
                assert read_http_replies(s, 3) == [200, 200, 200]
            assert_alone_and_first(tap, phones[2], phones[:2])

            # OsmAnd JSON POST, the same way.
            with socket.create_connection(("127.0.0.1", cfg.osmand_port), 5) as s:
                s.sendall(osmand_json(phones[3], lat, lon) + osmand_json(phones[4], lat, lon)
                          + osmand_json(phones[5], lat, lon, sos=True))
                assert read_http_replies(s, 3) == [200, 200, 200]
            assert_alone_and_first(tap, phones[5], phones[3:5])

            # Watch TCP: two watches' locations and a third's AL with the SOS
            # bit, in one write on one connection (as a concentrator sends).
            with watch_connection(cfg.watch_port) as s:
                s.sendall(watch_location(watches[0], "UD", "00000000", lat, lon)
                          + watch_location(watches[1], "UD", "00000000", lat, lon)
                          + watch_location(watches[2], "AL", "00010000", lat, lon))
                reply = b""
                deadline = time.monotonic() + WAIT_S
                while not reply.endswith(b"AL]"):
                    assert time.monotonic() < deadline, reply
                    reply += s.recv(200)
                assert reply == watch_frame("3G", watches[2], "AL")
            assert_alone_and_first(tap, watches[2], watches[:2])
        finally:
            tap.close()


def test_a_phone_report_still_queued_goes_with_its_own_sos(data_dir: Path) -> None:
    """The gateway's half of the order rule: a device's earlier report that
    is still waiting travels in its alarm's batch, ahead of the alarm, never
    after it."""
    cfg = make_config(data_dir, children=30)
    with running_backend(cfg, ("bus", "engine", "gateway")) as backend:
        phones = [r.device_id for r in backend.roster if r.kind == "phone"]
        lat, lon = SEOUL_FOREST
        tap = BusTap(cfg)
        try:
            with socket.create_connection(("127.0.0.1", cfg.osmand_port), 5) as s:
                s.sendall(osmand_get(phones[0], lat, lon) + osmand_get(phones[1], lat, lon)
                          + osmand_get(phones[0], lat + 0.001, lon, sos=True))
                assert read_http_replies(s, 3) == [200, 200, 200]
            alarm = tap.holding(phones[0])
            assert alarm.device_ids == [phones[0], phones[0]]
            assert unpack("flags", alarm.flags).tolist() == [0, FLAG_SOS]
            other = tap.holding(phones[1])
            assert other.device_ids == [phones[1]] and other.journal_seq > alarm.journal_seq
        finally:
            tap.close()


def test_a_training_engine_takes_the_replayed_clock_in_order_with_the_fixes(
        watched_training: Watched) -> None:
    """A replay's deadlines must see every fix played before the clock moved
    past them (a child arriving at 09:10 is no "not arrived" at 09:15), and
    its alarms keep the taped order (no fast lane on a training bus)."""
    w = watched_training
    t0 = w.engine.now()
    put = w.inbox.put
    w.inbox.put = lambda b: put(msgspec.structs.replace(b, source="replay"))  # type: ignore[method-assign]
    routine, sos = w.devices[:5], w.devices[5]
    before = w.backlog(routine, t0)[:3]
    for batch in before:
        w.inbox.put(batch)
    lat, lon = w.places[sos]
    w.inbox.put(fix_batch([(sos, t0 + 3, lat, lon)], [FLAG_SOS]))
    w.inbox.put(ReplayClock(source="replay", t=t0 + 10, speed=0.0))
    w.inbox.put(w.backlog(routine, t0 + 11)[0])

    w.engine._drain_fixes()

    kinds = [k for k, _ in w.events if k in ("step", "tick")]
    assert kinds == ["step", "step", "step", "tick", "step"], kinds
    # the taped order: no fast lane (the SOS joins the last batch's step)
    assert w.steps()[:3] == [routine, routine, [*routine, sos]]
    assert w.events[w.index("tick")][1] == pytest.approx(t0 + 10)
    assert not w.inbox.frames


def test_batches_of_other_children_that_come_close_together_are_applied_together(
        watched: Watched) -> None:
    """The tracker's and the zones' numpy steps cost per batch nearly what
    they cost per fix, so the engine waits up to ``LINGER_S`` for more before
    it applies a few routine fixes; a lone batch on a quiet bus is still
    applied in its turn."""
    w, now = watched, time.time()
    first, second, third = w.devices[:15], w.devices[15:30], w.devices[30:33]
    w.inbox.put(fix_batch([(d, now - 5, *w.places[d]) for d in first]))
    w.inbox.later = [fix_batch([(d, now - 5, *w.places[d]) for d in second])]
    w.engine._drain_fixes()
    assert w.steps() == [first + second]  # the second came while the engine waited
    w.inbox.put(fix_batch([(d, now - 5, *w.places[d]) for d in third]))
    w.engine._drain_fixes()
    assert w.steps() == [first + second, third]
    assert not w.inbox.frames


def test_a_childs_fixes_from_separate_batches_are_never_one_step(watched: Watched) -> None:
    """A step keeps a child's newest fix only: a child in two batches read
    together is stepped once per batch (it arrived at the first fix inside,
    not the last), and the batches after join the second step."""
    w, now = watched, time.time()
    a, b, c, d = w.devices[:4]
    rows = {k: (k, now - 30 + i, *w.places[k]) for i, k in enumerate((a, b, c, d))}
    w.inbox.put(fix_batch([rows[a], rows[b]]))
    w.inbox.put(fix_batch([(a, now - 20, *w.places[a]), rows[c]]))
    w.inbox.put(fix_batch([rows[d]]))
    w.engine._drain_fixes()
    assert w.steps() == [[a, b], [a, c, d]]


def test_rows_dropped_before_the_tracker_keep_every_other_child_on_its_own_fix(
        watched: Watched) -> None:
    """The engine looks each row's child up once and carries that through the
    rows it drops (an impossible time here): every child kept moves to its
    own fix, not to a neighbour's."""
    w, now = watched, time.time()
    a, b, c = w.devices[:3]
    tr = w.engine.state.tracker
    rows = [(a, now - 5, 37.51, 127.01), (b, now + 86_400, 37.52, 127.02),
            (c, now - 5, 37.53, 127.03)]
    w.inbox.put(fix_batch(rows))
    w.engine._drain_fixes()
    slot_a, slot_b, slot_c = (tr.device_slots[d] for d in (a, b, c))
    assert (tr.lat[slot_a], tr.lon[slot_a]) == (37.51, 127.01)
    assert (tr.lat[slot_c], tr.lon[slot_c]) == (37.53, 127.03)
    assert tr.lat[slot_b] != 37.52  # the day-ahead fix moved nobody
    assert w.engine.sub.rejected["time_impossible"] == 1
