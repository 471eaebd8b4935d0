"""Alert handling end to end: real gateway, engine, store and sockets.

The second time is what these tests are about: the same child pressing SOS
again, two operators acting at once, a command from nobody or from the
wrong role, an engine restarted mid-shift.
"""

from __future__ import annotations

import os
import signal
import sqlite3
import threading
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from console.gateway.watch import encode as watch_frame
from db import accounts
from db.store import open_store
from db.tables import AccessRecord, Alert, AlertAction, User
from models.alerts import BREACH_ACK, BREACH_CLOSE
from models.messages import (
    AckAlert,
    AddNote,
    AlertDetail,
    AlertDetailRequest,
    AlertView,
    CommandReply,
    DispatchAlert,
    HoldAlert,
    MarkStep,
    ReloadCameras,
    ReopenAlert,
    ResolveAlert,
    ShiftReport,
    ShiftRequest,
    SignIn,
    SignOut,
    TakeAlert,
)
from models.procedures import Procedures
from tests.console.conftest import (
    SEOUL_FOREST,
    TEST_PASSWORD,
    Backend,
    make_config,
    running_backend,
    wait_for,
    watch_connection,
)


def open_alerts(b: Backend, kind: str, device: str) -> list[AlertView]:
    return [a for a in b.snapshot().alerts if a.kind == kind and a.device_id == device]


def ok(reply: object) -> AlertView:
    assert isinstance(reply, CommandReply) and reply.ok, reply
    assert reply.alert is not None
    return reply.alert


def refused(reply: object, code: str) -> str:
    assert isinstance(reply, CommandReply) and not reply.ok, reply
    assert reply.code == code, reply
    return reply.error


def resolve_fully(b: Backend, token: str, alert: AlertView) -> AlertView:
    """Take it, tick every mandatory step of its procedure, resolve it."""
    if alert.state == "new":
        alert = ok(b.command(AckAlert(token=token, alert_id=alert.id,
                                      alert_version=alert.version)))
    if not alert.owner:
        alert = ok(b.command(TakeAlert(token=token, alert_id=alert.id,
                                       alert_version=alert.version)))
    for step in Procedures.load().steps(alert.kind):
        if step.mandatory:
            alert = ok(b.command(MarkStep(token=token, alert_id=alert.id,
                                          alert_version=alert.version, step=step.id)))
    return ok(b.command(ResolveAlert(token=token, alert_id=alert.id,
                                     alert_version=alert.version, outcome="false_alarm",
                                     note="child pressed it while playing")))


BOTH_STORES = pytest.mark.parametrize(
    "store", ["backend", pytest.param("pg_backend", marks=pytest.mark.postgres)])


@BOTH_STORES
def test_the_same_child_pressing_sos_three_times_is_one_alert_then_a_new_one(
        store: str, request: pytest.FixtureRequest) -> None:
    backend: Backend = request.getfixturevalue(store)
    device = backend.roster[0].device_id
    lat, lon = SEOUL_FOREST
    for i in range(3):
        status, _ = backend.fix(device, lat + i * 1e-4, lon, t=time.time() + i * 0.01,
                                alarm="sos")
        assert status == 200
    wait_for(lambda: [a.count for a in open_alerts(backend, "sos", device)] == [3], 10,
             "one SOS alert with count 3")
    alert = open_alerts(backend, "sos", device)[0]
    assert alert.lat == pytest.approx(lat + 2e-4)  # the newest position
    token = backend.sign_in("operator1")
    detail = backend.command(AlertDetailRequest(token=token, alert_id=alert.id))
    assert isinstance(detail, AlertDetail)
    assert [h.action for h in detail.history] == ["open", "repeat", "repeat"]
    assert detail.history[-1].lat == pytest.approx(lat + 2e-4)

    done = resolve_fully(backend, token, alert)
    assert done.state == "resolved" and done.outcome == "false_alarm"
    assert not open_alerts(backend, "sos", device)
    assert backend.fix(device, lat, lon, t=time.time() + 1, alarm="sos")[0] == 200
    wait_for(lambda: len(open_alerts(backend, "sos", device)) == 1, 10, "a new SOS alert")
    again = open_alerts(backend, "sos", device)[0]
    assert again.id != alert.id and again.count == 1 and again.state == "new"


def test_an_operators_command_never_holds_an_sos_behind_a_busy_store(backend: Backend) -> None:
    """While another writer holds SQLite's lock (the recorder, under load),
    an operator's acknowledgement waits for it without freezing the engine:
    another child's SOS is opened meanwhile, before the acknowledgement is
    answered (stored once the lock goes, or refused "store" if it never
    does). The engine used to wait the lock out inside its loop, and every
    alarm waited with it."""
    first, second = backend.roster[0].device_id, backend.roster[1].device_id
    assert backend.fix(first, *SEOUL_FOREST, alarm="sos")[0] == 200
    wait_for(lambda: len(open_alerts(backend, "sos", first)) == 1, 10, "the first SOS")
    alert = open_alerts(backend, "sos", first)[0]
    token = backend.sign_in("operator1")
    lock = sqlite3.connect(backend.config.db_url.removeprefix("sqlite:///"),
                           isolation_level=None)
    answered: list[tuple[float, object]] = []
    try:
        lock.execute("BEGIN IMMEDIATE")

        def ack() -> None:
            reply = backend.command(AckAlert(token=token, alert_id=alert.id,
                                             alert_version=alert.version))
            answered.append((time.monotonic(), reply))

        acking = threading.Thread(target=ack)
        acking.start()
        time.sleep(0.05)  # the ack is with the engine, waiting for the lock
        assert backend.fix(second, *SEOUL_FOREST, alarm="sos")[0] == 200
        wait_for(lambda: len(open_alerts(backend, "sos", second)) == 1, 10, "the second SOS")
        opened_at = time.monotonic()
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    acking.join(10)
    ((replied_at, reply),) = answered
    assert opened_at < replied_at, "the SOS waited behind the operator's command"
    assert isinstance(reply, CommandReply)
    assert reply.ok or reply.code == "store", reply
    if reply.ok:  # stored: the engine and the store agree
        wait_for(lambda: open_alerts(backend, "sos", first)[0].state == "acknowledged", 10,
                 "the acknowledgement")


def test_an_sos_waiting_for_a_busy_store_survives_the_engine_killed_meanwhile(
        backend: Backend) -> None:
    """The device was told its SOS is received (the journal has it) and
    consoles were shown it unsaved, but the engine died before the store took
    it. The restarted engine reads it back from the journal: one alert, stored."""
    device = backend.roster[2].device_id
    lock = sqlite3.connect(backend.config.db_url.removeprefix("sqlite:///"),
                           isolation_level=None)
    old = backend.supervisor.pid("engine")
    assert old is not None
    try:
        lock.execute("BEGIN IMMEDIATE")
        assert backend.fix(device, *SEOUL_FOREST, alarm="sos")[0] == 200
        wait_for(lambda: open_alerts(backend, "sos", device), 10, "the SOS, shown unsaved")
        assert not open_alerts(backend, "sos", device)[0].saved
        os.kill(old, signal.SIGKILL)
    finally:
        lock.execute("ROLLBACK")
        lock.close()
    wait_for(lambda: backend.supervisor.pid("engine") not in (None, old), 15, "engine restart")
    wait_for(lambda: [a.saved for a in open_alerts(backend, "sos", device)] == [True], 15,
             "the SOS stored, once, after the restart")
    _, sessions = open_store(backend.config.db_url)
    with sessions() as s:
        rows = s.scalars(select(AlertAction.action).join(
            Alert, Alert.id == AlertAction.alert_id).where(Alert.device_id == device)).all()
    assert list(rows) == ["open"]


def _watch(b: Backend, device: str, status: str) -> None:
    when = time.strftime("%d%m%y,%H%M%S", time.gmtime())
    content = (f"AL,{when},A,{SEOUL_FOREST[0]:.6f},N,{SEOUL_FOREST[1]:.6f},E,0.0,0.0,30.0,"
               f"8,90,{12 if status == '00000001' else 71},120,0,{status},0")
    with watch_connection(b.config.watch_port) as s:
        s.sendall(watch_frame("3G", device, content))
        assert s.recv(200) == f"[3G*{device}*0002*AL]".encode()


def test_a_watch_fall_removed_and_low_battery_become_alerts(backend: Backend) -> None:
    watches = [r.device_id for r in backend.roster if r.kind == "watch"][:3]
    assert len(watches) == 3
    fall, removed, low = watches
    _watch(backend, fall, "00200000")
    _watch(backend, removed, "00100000")
    _watch(backend, low, "00000001")

    def kinds() -> dict[str, AlertView]:
        return {a.device_id: a for a in backend.snapshot().alerts}

    wait_for(lambda: {fall, removed, low} <= set(kinds()), 10, "three watch alerts")
    got = kinds()
    assert (got[fall].kind, got[fall].priority) == ("fall", 1)
    assert (got[removed].kind, got[removed].priority) == ("removed", 2)
    assert (got[low].kind, got[low].priority) == ("low_battery", 4)
    assert got[low].battery == 12
    # A low battery is raised as it starts, not again on the next report.
    _watch(backend, low, "00000001")
    time.sleep(0.5)
    assert kinds()[low].count == 1


@BOTH_STORES
def test_two_operators_racing_one_wins_and_both_see_it(store: str,
                                                      request: pytest.FixtureRequest) -> None:
    backend: Backend = request.getfixturevalue(store)
    device = backend.roster[1].device_id
    backend.fix(device, *SEOUL_FOREST, alarm="sos")
    wait_for(lambda: open_alerts(backend, "sos", device), 10, "the SOS")
    alert = open_alerts(backend, "sos", device)[0]
    one, two = backend.sign_in("operator1"), backend.sign_in("operator2")
    first = backend.command(TakeAlert(token=one, alert_id=alert.id,
                                      alert_version=alert.version))
    second = backend.command(TakeAlert(token=two, alert_id=alert.id,
                                       alert_version=alert.version))
    won = ok(first)
    assert won.owner == "operator1" and won.state == "in_progress"
    assert "changed by operator1" in refused(second, "stale")
    assert open_alerts(backend, "sos", device)[0].owner == "operator1"
    # The loser looks again: now it is operator1's, and only they may hold it.
    assert "operator1's" in refused(backend.command(HoldAlert(
        token=two, alert_id=alert.id, alert_version=won.version, reason="waiting")),
        "not_owner")


def test_commands_without_a_session_or_from_the_wrong_role_are_refused_and_recorded(
        backend: Backend) -> None:
    device = backend.roster[2].device_id
    backend.fix(device, *SEOUL_FOREST, alarm="sos")
    wait_for(lambda: open_alerts(backend, "sos", device), 10, "the SOS")
    alert = open_alerts(backend, "sos", device)[0]
    ack = AckAlert(token="", alert_id=alert.id, alert_version=alert.version)
    refused(backend.command(ack), "unauthenticated")
    refused(backend.command(AckAlert(token="forged-token", alert_id=alert.id,
                                     alert_version=alert.version)), "unauthenticated")
    auditor = backend.sign_in("auditor1")
    refused(backend.command(AckAlert(token=auditor, alert_id=alert.id,
                                      alert_version=alert.version)), "forbidden")
    operator = backend.sign_in("operator1")
    refused(backend.command(ReloadCameras(token=operator)), "forbidden")
    refused(backend.command(ShiftRequest(token=operator, since=0.0)), "forbidden")
    assert isinstance(backend.command(ShiftRequest(token=auditor, since=0.0)), ShiftReport)
    # Signed out: the token is dead.
    assert backend.command(SignOut(token=operator)) == CommandReply(ok=True)
    refused(backend.command(AckAlert(token=operator, alert_id=alert.id,
                                     alert_version=alert.version)), "unauthenticated")
    # Expired: the store says so (the engine re-reads sessions every few seconds).
    late = backend.sign_in("operator2")
    _, sessions = open_store(backend.config.db_url)
    with sessions() as s:
        from db.tables import UserSession
        row = s.get(UserSession, accounts.token_hash(late))
        assert row is not None
        row.expires_at = time.time() - 1
        s.commit()
    wait_for(lambda: not isinstance(backend.command(AlertDetailRequest(
        token=late, alert_id=alert.id)), AlertDetail), 10, "the expired session refused")
    refused(backend.command(AckAlert(token=late, alert_id=alert.id,
                                     alert_version=alert.version)), "unauthenticated")
    assert open_alerts(backend, "sos", device)[0].state == "new"
    with sessions() as s:
        log = s.scalars(select(AccessRecord).where(AccessRecord.ok.is_(False))).all()
    refusals = [(r.user, r.action, r.detail.split(":")[0]) for r in log]
    assert ("?", "cmd.ack", "unauthenticated") in refusals
    assert ("auditor1", "cmd.ack", "forbidden") in refusals
    assert ("operator1", "cmd.cameras", "forbidden") in refusals


def test_wrong_passwords_lock_the_account_and_disabled_users_cannot_sign_in(
        backend: Backend) -> None:
    for _ in range(5):
        reply = backend.command(SignIn(user="operator2", password="wrong-password"))
        assert "wrong user name or password" in refused(reply, "signin")
    assert "locked" in refused(backend.command(SignIn(user="operator2",
                                                      password=TEST_PASSWORD)), "signin")
    _, sessions = open_store(backend.config.db_url)
    token = backend.sign_in("operator1")
    with sessions() as s:
        assert accounts.disable(s, "operator1") == 1
        s.commit()
    assert "disabled" in refused(backend.command(SignIn(user="operator1",
                                                        password=TEST_PASSWORD)), "signin")
    device = backend.roster[3].device_id
    backend.fix(device, *SEOUL_FOREST, alarm="sos")
    wait_for(lambda: open_alerts(backend, "sos", device), 10, "the SOS")
    alert = open_alerts(backend, "sos", device)[0]
    wait_for(lambda: not isinstance(backend.command(AlertDetailRequest(
        token=token, alert_id=alert.id)), AlertDetail), 10, "the disabled user's session refused")
    refused(backend.command(AckAlert(token=token, alert_id=alert.id,
                                     alert_version=alert.version)), "unauthenticated")
    assert open_alerts(backend, "sos", device)[0].state == "new"
    with sessions() as s:
        user = s.scalar(select(User).where(User.name == "operator2"))
        assert user is not None and user.locked_until > time.time()


@BOTH_STORES
def test_an_engine_restarted_mid_shift_keeps_alerts_owners_history_and_sessions(
        store: str, request: pytest.FixtureRequest) -> None:
    backend: Backend = request.getfixturevalue(store)
    device = backend.roster[4].device_id
    backend.fix(device, *SEOUL_FOREST, alarm="sos")
    wait_for(lambda: open_alerts(backend, "sos", device), 10, "the SOS")
    alert = open_alerts(backend, "sos", device)[0]
    token = backend.sign_in("operator1")
    alert = ok(backend.command(TakeAlert(token=token, alert_id=alert.id,
                                         alert_version=alert.version)))
    alert = ok(backend.command(HoldAlert(token=token, alert_id=alert.id,
                                         alert_version=alert.version,
                                         reason="guardian calling back")))
    alert = ok(backend.command(AddNote(token=token, alert_id=alert.id,
                                       alert_version=alert.version,
                                       note="guardian says she is at the academy")))
    old = backend.supervisor.pid("engine")
    assert old is not None
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: backend.supervisor.pid("engine") not in (None, old), 15, "engine restart")
    wait_for(lambda: open_alerts(backend, "sos", device), 15, "the alert after the restart")
    back = open_alerts(backend, "sos", device)[0]
    assert (back.id, back.state, back.owner, back.version, back.hold_reason) == (
        alert.id, "on_hold", "operator1", alert.version, "guardian calling back")
    assert back.last_note == "guardian says she is at the academy"
    # The same session goes on working the alert, and the history is whole.
    dispatched = ok(backend.command(DispatchAlert(
        token=token, alert_id=back.id, alert_version=back.version, target="police",
        reference="112-2026-1202-0042")))
    assert dispatched.dispatched_to == "police"
    detail = backend.command(AlertDetailRequest(token=token, alert_id=alert.id))
    assert isinstance(detail, AlertDetail)
    assert [h.action for h in detail.history] == ["open", "take", "hold", "note", "dispatch"]
    assert all(h.actor == "operator1" for h in detail.history[1:])


def test_resolve_needs_the_procedure_and_a_supervisor_reopens(backend: Backend) -> None:
    device = backend.roster[5].device_id
    backend.fix(device, *SEOUL_FOREST, alarm="sos")
    wait_for(lambda: open_alerts(backend, "sos", device), 10, "the SOS")
    alert = open_alerts(backend, "sos", device)[0]
    op = backend.sign_in("operator1")
    alert = ok(backend.command(TakeAlert(token=op, alert_id=alert.id,
                                         alert_version=alert.version)))
    early = ResolveAlert(token=op, alert_id=alert.id, alert_version=alert.version,
                         outcome="child_safe", note="home")
    assert "call_device" in refused(backend.command(early), "procedure")
    resolved = resolve_fully(backend, op, alert)
    refused(backend.command(ReopenAlert(token=op, alert_id=resolved.id,
                                        alert_version=resolved.version, note="x")),
            "forbidden")
    sup = backend.sign_in("supervisor1")
    reopened = ok(backend.command(ReopenAlert(token=sup, alert_id=resolved.id,
                                              alert_version=resolved.version,
                                              note="guardian says the child is not home")))
    assert reopened.state == "acknowledged" and reopened.owner == ""
    assert open_alerts(backend, "sos", device)[0].id == alert.id
    _, sessions = open_store(backend.config.db_url)
    with sessions() as s:
        actions = s.scalars(select(AlertAction.action).where(AlertAction.alert_id == alert.id)
                            .order_by(AlertAction.id)).all()
    assert actions[-2:] == ["resolve", "reopen"]


def test_a_resolved_alert_is_not_reopened_beside_a_newer_one(backend: Backend) -> None:
    """The same child presses SOS again after the first alert was resolved:
    a new alert opens. Reopening the old one then would leave two open
    alerts for one child and kind (repeats would fold into either), so it is
    refused with the newer alert's id; a note on the old one still goes."""
    device = backend.roster[6].device_id
    backend.fix(device, *SEOUL_FOREST, alarm="sos")
    wait_for(lambda: open_alerts(backend, "sos", device), 10, "the first SOS")
    op = backend.sign_in("operator1")
    first = resolve_fully(backend, op, open_alerts(backend, "sos", device)[0])
    backend.fix(device, *SEOUL_FOREST, alarm="sos", t=time.time() + 1)
    wait_for(lambda: open_alerts(backend, "sos", device), 10, "the second SOS")
    second = open_alerts(backend, "sos", device)[0]
    assert second.id != first.id
    sup = backend.sign_in("supervisor1")
    why = refused(backend.command(ReopenAlert(token=sup, alert_id=first.id,
                                              alert_version=first.version,
                                              note="guardian called again")), "illegal")
    assert str(second.id) in why
    ok(backend.command(AddNote(token=sup, alert_id=first.id, alert_version=first.version,
                               note="see the newer alert")))
    assert [a.id for a in open_alerts(backend, "sos", device)] == [second.id]


def test_a_missed_sla_escalates_once_each_and_is_in_the_history(data_dir: Path) -> None:
    """P1 with a 1 s acknowledgement SLA and a 3 s resolution SLA: the engine's
    clock escalates the alert twice, publishes each, and writes who (the
    engine) and why in the history; a dispatched alert is not escalated again."""
    cfg = make_config(data_dir, children=30, alert_sla={"P1": [1.0, 3.0]})
    with running_backend(cfg) as b:
        device = b.roster[0].device_id
        b.fix(device, *SEOUL_FOREST, alarm="sos")
        wait_for(lambda: open_alerts(b, "sos", device), 10, "the SOS")
        first = open_alerts(b, "sos", device)[0]
        assert first.close_due - first.ack_due == pytest.approx(2.0)
        wait_for(lambda: open_alerts(b, "sos", device)[0].breaches == BREACH_ACK, 10,
                 "the acknowledgement SLA missed")
        wait_for(lambda: open_alerts(b, "sos", device)[0].breaches
                 == BREACH_ACK | BREACH_CLOSE, 10, "the resolution SLA missed")
        token = b.sign_in("operator1")
        alert = open_alerts(b, "sos", device)[0]
        detail = b.command(AlertDetailRequest(token=token, alert_id=alert.id))
        assert isinstance(detail, AlertDetail)
        escalations = [h for h in detail.history if h.action == "escalate"]
        assert [h.detail for h in escalations] == ["not acknowledged in time",
                                                   "not resolved or dispatched in time"]
        assert all(h.actor == "engine" for h in escalations)
        time.sleep(1.5)
        assert open_alerts(b, "sos", device)[0].version == alert.version  # nothing more
        report = b.command(ShiftRequest(token=b.sign_in("supervisor1"), since=0.0))
        assert isinstance(report, ShiftReport)
        assert [a.breaches for a in report.alerts if a.id == alert.id] == [3]
