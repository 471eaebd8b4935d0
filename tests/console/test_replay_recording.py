"""A recorded stretch of the demo, replayed on the training bus.

The live system runs the demo's simulated children for a while (real
gateway, engine, recorder, simulator); the recorder's tape keeps the bus
traffic. A training session then replays that period at 8x: its engine,
fed the recorded fixes on the replayed clock, must open the same alerts in
the same order. Seeking back to the middle must land on the recorded
state there: every child where the live engine had it, and the alerts that
were open then.
"""

from __future__ import annotations

import math
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from console.engine_client import EngineClient
from console.security import Security
from console.supervisor import Supervisor
from console.training.session import Plan, TrainingSession
from db import accounts
from db import alerts as db_alerts
from db import repositories as repo
from db.seed import seed_demo
from db.seed_readers import seed_readers
from db.store import open_store
from db.tape import TapeReader, tape_dir
from models.messages import (
    AlertList,
    AlertOpened,
    AlertsRequest,
    FixBatch,
    ReplayControl,
    ReplayStatus,
    Snapshot,
    SnapshotRequest,
    decode,
    fix_columns,
    position_columns,
)
from tests.console.conftest import TEST_PASSWORD, make_config, wait_for

LIVE = ("bus", "engine", "recorder", "gateway", "simulator")
RECORD_S = 20.0


@dataclass
class Recorded:
    live: object
    t0: float
    t1: float
    opened: list[tuple[float, str, str]]  # (time, kind, child token) as the live bus carried
    devices: dict[str, str]  # device id -> child token


@pytest.fixture
def recorded(data_dir: Path) -> Iterator[Recorded]:
    """RECORD_S seconds of the demo: 60 children reporting every 2 s, an SOS
    every 8 s and a child leaving its zone before each."""
    live = make_config(data_dir, children=60, sim_interval_s=2.0, sim_first_incident_s=3.0,
                       sim_incident_every_s=8.0, sim_carrier_share=0.0)
    engine, sessions = open_store(live.db_url)
    with sessions() as s:
        seed_demo(s, live.children)
        seed_readers(s)
        accounts.add_user(s, "trainer1", ["trainer"], TEST_PASSWORD)
        s.commit()
    engine.dispose()
    t0 = time.time()
    with Supervisor(live, LIVE):
        time.sleep(RECORD_S)
        time.sleep(1.5)  # the tape's last block reaches the disk
    t1 = t0 + RECORD_S
    opened = []
    for rec in TapeReader(tape_dir(live.data_dir)).read(t0, t1, (b"alert.opened",)):
        msg = decode(rec.body)
        assert isinstance(msg, AlertOpened)
        opened.append((rec.recv_ts, msg.alert.kind, msg.alert.child_token))
    engine, sessions = open_store(live.db_url)
    with sessions() as s:
        devices = {r.device_id: r.token for r in repo.roster(s)}
    engine.dispose()
    yield Recorded(live, t0, t1, opened, devices)


def recorded_positions(live: object, devices: dict[str, str], at: float
                       ) -> dict[str, tuple[float, float, float]]:
    """Each child's newest fix the live bus carried by ``at`` (device time),
    and when it was received: where the live engine had the child then."""
    out: dict[str, tuple[float, float, float, float]] = {}
    for rec in TapeReader(tape_dir(live.data_dir)).read(0.0, at, (b"fix.batch",)):  # type: ignore[attr-defined]
        msg = decode(rec.body)
        assert isinstance(msg, FixBatch)
        cols = fix_columns(msg)
        for dev, t, lat, lon in zip(msg.device_ids, cols["t"], cols["lat"], cols["lon"],
                                    strict=True):
            token = devices.get(dev)
            if token and math.isfinite(lat) and (token not in out or t >= out[token][3]):
                out[token] = (float(lat), float(lon), rec.recv_ts, float(t))
    return {k: v[:3] for k, v in out.items()}


def training_positions(eng: EngineClient) -> dict[str, tuple[float, float]]:
    snap = eng.call(SnapshotRequest(), Snapshot)
    cols = position_columns(snap.positions)
    return {snap.children[int(s)]: (float(a), float(o))
            for s, a, o in zip(cols["slots"], cols["lat"], cols["lon"], strict=True)
            if math.isfinite(a)}


def test_a_recorded_demo_replays_its_alerts_in_order_and_a_seek_lands_on_the_recorded_state(
        recorded: Recorded) -> None:
    r = recorded
    kinds = [k for _, k, _ in r.opened]
    assert "sos" in kinds and "zone_exit" in kinds, r.opened  # the demo's incidents were taped

    sess = TrainingSession(r.live, Plan(t0=r.t0, t1=r.t1, by="trainer1"))  # type: ignore[arg-type]
    sess.start()
    player = threading.Thread(target=sess.run, kwargs={"speed": 8.0}, daemon=True)
    player.start()
    try:
        train = sess.train
        with EngineClient(train.engine_rpc, security=Security.console(train)) as eng, \
                EngineClient(train.replay_rpc, security=Security.console(train),
                             server="replayer") as ctl:
            eng.sign_in("trainer1", TEST_PASSWORD)

            def status() -> ReplayStatus:
                return ctl.call(ReplayControl(token=eng.token, action="status"), ReplayStatus)

            first = status()
            assert [(m.kind, m.label.split()[-1]) for m in first.marks] == \
                [(k, tok) for _, k, tok in r.opened]
            wait_for(lambda: status().t >= r.t1 and not status().playing, 30, "the end")
            # the same alerts, in the same order, on the replayed clock
            with sess.sessions() as s:
                replayed = sorted(db_alerts.since(s, 0.0, 1000), key=lambda row: row[0].id)
            assert [(a.kind, tok) for a, tok in replayed] == \
                [(k, tok) for _, k, tok in r.opened]
            for (a, _), (at, _, _) in zip(replayed, r.opened, strict=True):
                assert abs(a.opened_at - at) < 2.0  # 8x: a turn of the player is 0.4 s

            # seek back to a moment between alerts: the state the live engine had
            gaps = [t for t in (r.t0 + RECORD_S * f for f in (0.5, 0.55, 0.6, 0.45, 0.65))
                    if all(abs(t - at) > 1.5 for at, _, _ in r.opened)]
            mid = gaps[0]
            back = ctl.call(ReplayControl(token=eng.token, action="seek", t=mid), ReplayStatus)
            assert back.ok, back.error
            wait_for(lambda: not status().seeking, 30, "the seek")
            assert abs(status().t - mid) < 0.5 and not status().playing
            expected_open = sorted((k, tok) for at, k, tok in r.opened if at <= mid)
            eng.sign_in("trainer1", TEST_PASSWORD)
            wait_for(lambda: sorted((a.kind, a.child_token) for a in eng.call(
                AlertsRequest(token=eng.token), AlertList).alerts) == expected_open, 15,
                "the alerts open at the seek's moment")
            want = recorded_positions(r.live, r.devices, mid)
            assert len(want) > 40

            def landed() -> bool:
                got = training_positions(eng)
                # a child whose fix was on its way at ``mid`` may be either side of it
                settled = {k: v for k, v in want.items() if v[2] < mid - 0.5}
                return len(got) >= len(settled) and all(
                    got.get(k) == (lat, lon) for k, (lat, lon, _) in settled.items())

            wait_for(landed, 15, "every child where the live engine had it")
    finally:
        sess.close()
