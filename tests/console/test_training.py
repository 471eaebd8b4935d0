"""Trainer mode end to end: a scenario played on a real training bus and
engine (``console.training``), worked by a trainee through the engine's
commands, scored; then a seek back restarts it and a trainee who misses an
incident is scored as missing it. All the while a live backend runs beside
it and never sees any of it.

Real processes, real sockets (ipc under the test's data dir), the real
store; the clock is the replayed one at 16x, so every deadline below is in
replayed seconds (the trainee answers within a fraction of a wall second).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from sqlalchemy import func, select

from console.bus import Subscriber
from console.engine_client import EngineClient, EngineRefused
from console.security import Security
from console.training.session import Plan, TrainingSession
from db import accounts, tables
from db.store import open_store
from models.messages import (
    AckAlert,
    AlertDetail,
    AlertDetailRequest,
    AlertList,
    AlertsRequest,
    AlertView,
    CamerasViewed,
    CommandReply,
    DispatchAlert,
    MarkStep,
    ReplayControl,
    ReplayStatus,
    ResolveAlert,
    Snapshot,
    SnapshotRequest,
)
from models.scenario import load_scenario
from models.scoring import score
from tests.console.conftest import TEST_PASSWORD, make_config, running_backend, wait_for

SCENARIO = """
title = "Test: an SOS and a zone exit"
description = "Two incidents a minute apart at one school."
site = "Sindorim Elementary"
duration_s = 240

[population]
children = 120
seed = 11
zones = ["Sindorim Elementary"]

[[incident]]
id = "sos"
at_s = 10
kind = "sos"
child = 1

[[incident]]
id = "out"
at_s = 20
kind = "leave_zone"
child = 21

[[expect]]
incident = "sos"
ack_within_s = 60
cameras_within_s = 90
steps = ["cctv", "call_device", "call_guardian", "decide_dispatch"]
outcome = "dispatched"
dispatch_to = "police"
outcome_within_s = 120

[[expect]]
incident = "out"
ack_within_s = 200
steps = ["check_trail", "call_guardian"]
outcome = "child_safe"
outcome_within_s = 210
"""
SOS_STEPS = ("cctv", "call_device", "call_guardian", "decide_dispatch")
EXIT_STEPS = ("check_trail", "call_guardian")


@pytest.fixture
def session(data_dir: Path, tmp_path: Path) -> Iterator[TrainingSession]:
    """A live backend (bus, engine, recorder) and, beside it, a training
    session of SCENARIO playing at 16x in a thread of its own."""
    live = make_config(data_dir, children=30)

    def trainees(s: object) -> None:
        accounts.add_user(s, "trainer1", ["trainer"], TEST_PASSWORD)  # type: ignore[arg-type]

    with running_backend(live, ("bus", "engine", "recorder"), seed=trainees, ports=()):
        path = tmp_path / "test-two-incidents.toml"
        path.write_text(SCENARIO, encoding="utf-8")
        sess = TrainingSession(live, Plan(scenario=load_scenario(path)))
        sess.start()
        player = threading.Thread(target=sess.run, kwargs={"speed": 16.0}, daemon=True)
        player.start()
        try:
            yield sess
        finally:
            sess.stop_event.set()
            player.join(20)
            sess.close()


def client(sess: TrainingSession, user: str, server: str = "engine") -> EngineClient:
    train = sess.train
    c = EngineClient(train.replay_rpc if server == "replayer" else train.engine_rpc,
                     security=Security.console(train), server=server)
    return c


def open_alert(eng: EngineClient, kind: str, timeout_s: float = 30.0) -> AlertView:
    found: list[AlertView] = []

    def there() -> bool:
        found[:] = [a for a in eng.call(AlertsRequest(token=eng.token), AlertList).alerts
                    if a.kind == kind]
        return bool(found)

    wait_for(there, timeout_s, f"a {kind} alert in the training engine")
    return found[0]


def work(eng: EngineClient, alert: AlertView, steps: tuple[str, ...],
         finish: str, cameras: list[int] | None = None) -> None:
    """Everything a trainee should do, as fast as a script can."""
    a = eng.call(AckAlert(token=eng.token, alert_id=alert.id, alert_version=alert.version),
                 CommandReply).alert
    assert a is not None
    if cameras:
        eng.call(CamerasViewed(token=eng.token, alert_id=a.id, camera_ids=cameras),
                 CommandReply)
    for step in steps:
        a = eng.call(MarkStep(token=eng.token, alert_id=a.id, alert_version=a.version,
                              step=step), CommandReply).alert
        assert a is not None
    if finish == "dispatch":
        eng.call(DispatchAlert(token=eng.token, alert_id=a.id, alert_version=a.version,
                               target="police", reference="112-training"), CommandReply)
    else:
        eng.call(ResolveAlert(token=eng.token, alert_id=a.id, alert_version=a.version,
                              outcome=finish, note="walking to her aunt's flat"),
                 CommandReply)


def scores_now(sess: TrainingSession, trainee: str) -> object:
    alerts, histories = sess.alerts()
    assert sess.plan.scenario is not None
    return score(sess.plan.scenario, sess.source.injected, alerts, histories,  # type: ignore[attr-defined]
                 trainee)


def live_alerts(sess: TrainingSession) -> int:
    engine, sessions = open_store(sess.live.db_url)
    try:
        with sessions() as s:
            return int(s.scalar(select(func.count()).select_from(tables.Alert)) or 0)
    finally:
        engine.dispose()


def test_a_scenario_is_scored_for_a_trainee_who_does_all_and_one_who_misses_an_incident(
        session: TrainingSession) -> None:
    sess = session
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    # the live side, listening to everything its bus carries, of any source
    tap = Subscriber(ctx, sess.live.bus_sub, ("",), security=Security.console(sess.live),
                     sources=("live", "sim", "replay"))
    seen: list[tuple[str, str]] = []
    try:
        with client(sess, "operator1") as eng, client(sess, "trainer1") as boss, \
                client(sess, "trainer1", "replayer") as ctl:
            eng.sign_in("operator1", TEST_PASSWORD)
            boss.sign_in("trainer1", TEST_PASSWORD)
            snap = eng.call(SnapshotRequest(), Snapshot)
            cameras = [c.id for c in snap.cameras[:2]]
            assert cameras, "the scenario's store has the demo cameras"
            status = ctl.call(ReplayControl(token=boss.token, action="status"), ReplayStatus)
            assert [m.label for m in status.marks] == ["sos", "out"]
            assert status.playing and status.t0 < status.t <= status.t1

            # an operator may not drive the replay: only a trainer
            with pytest.raises(EngineRefused) as refused:
                ctl.call(ReplayControl(token=eng.token, action="pause"), ReplayStatus)
            assert refused.value.code == "forbidden"

            # pass 1: everything right
            work(eng, open_alert(eng, "sos"), SOS_STEPS, "dispatch", cameras)
            work(eng, open_alert(eng, "zone_exit"), EXIT_STEPS, "child_safe")
            first = scores_now(sess, "operator1")
            assert first.totals.missed == ()  # type: ignore[attr-defined]
            assert first.totals.percent == 100.0, first  # type: ignore[attr-defined]
            cams = [r for r in first.rows if r.measure == "cameras"]  # type: ignore[attr-defined]
            assert cams and cams[0].status == "pass" and 0 <= cams[0].seconds <= 90

            # the history says who opened which cameras, on the replayed clock
            alerts, _ = sess.alerts()
            sos_id = next(a.id for a in alerts if a.kind == "sos")
            detail = eng.call(AlertDetailRequest(token=eng.token, alert_id=sos_id),
                              AlertDetail)
            line = next(h for h in detail.history if h.action == "cameras")
            assert line.actor == "operator1"
            assert line.detail == ", ".join(str(c) for c in sorted(cameras))
            assert sess.source.t0 <= line.at <= sess.source.t1  # type: ignore[attr-defined]

            # pass 2: the trainer seeks back to the start; the engine starts
            # again with nothing of pass 1, and this time the exit is missed
            back = ctl.call(ReplayControl(token=boss.token, action="seek",
                                          t=status.t0), ReplayStatus)
            assert back.ok and back.t <= status.t0 + 5
            assert sess.alerts()[0] == [] or all(
                a.opened_at >= status.t0 for a in sess.alerts()[0])
            eng.sign_in("operator1", TEST_PASSWORD)  # a fresh session is fine too
            work(eng, open_alert(eng, "sos"), SOS_STEPS, "dispatch", cameras)
            open_alert(eng, "zone_exit")  # raised, never touched
            ctl.call(ReplayControl(token=boss.token, action="seek", t=status.t1),
                     ReplayStatus)
            wait_for(lambda: ctl.call(ReplayControl(token=boss.token, action="status"),
                                      ReplayStatus).t >= status.t1, 30, "the end")
            second = scores_now(sess, "operator1")
            assert second.totals.missed == ("out",)  # type: ignore[attr-defined]
            assert second.totals.percent < 100.0  # type: ignore[attr-defined]
            sos_rows = [r for r in second.rows if r.incident == "sos"]  # type: ignore[attr-defined]
            assert sos_rows and all(r.status == "pass" for r in sos_rows)

            # the live system saw none of it: no alert in its store, nothing
            # replayed on its bus, no training origin
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline:
                got = tap.recv(timeout_ms=100)
                if got is not None:
                    seen.append((got[0], got[1].source))
            assert live_alerts(sess) == 0
            assert seen and all(src == "live" for _, src in seen)
            assert not any(topic.startswith(("alert.", "replay.", "fix.")) for topic, _ in seen)
    finally:
        tap.close()
        ctx.term()
    outcome = sess.finish()
    assert outcome.report is not None and outcome.report.is_file()
    assert "operator1" in outcome.report.read_text(encoding="utf-8")
