"""No consent, no service, at the gateway and the engine: a withdrawal stops
tracking within a second or two, a child consented for routine notices only
raises no emergency alert, and a new consent brings the child back."""

from __future__ import annotations

import time

import zmq

from console.bus import Subscriber, role_of
from console.security import Security
from db import consent
from db.store import open_store
from models.messages import Heartbeat, unpack
from tests.console.conftest import Backend, wait_for

PLACE = (37.5444, 127.0374)


def engine_stat(b: Backend, name: str, timeout_s: float = 5.0) -> float:
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = Subscriber(ctx, b.config.bus_sub, ("sys.heartbeat",),
                     security=Security.console(b.config))
    try:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            got = sub.recv(200)
            if got and isinstance(got[1], Heartbeat) and role_of(got[1].origin) == "engine" \
                    and name in got[1].stats:
                return got[1].stats[name]
    finally:
        sub.close()
        ctx.term()
    return 0.0


def located(b: Backend, token: str) -> bool:
    snap = b.snapshot()
    return snap.children.index(token) in unpack("slots", snap.positions.slots).tolist()


def sos_alerts(b: Backend, device: str) -> int:
    return sum(1 for a in b.snapshot().alerts if a.device_id == device and a.kind == "sos")


def test_withdrawal_stops_tracking_and_a_new_consent_restores_it(backend: Backend) -> None:
    entry = backend.roster[2]
    device, token = entry.device_id, entry.token
    assert backend.fix(device, *PLACE)[0] == 200
    wait_for(lambda: located(backend, token), 10, "the child on the map")

    engine, sessions = open_store(backend.config.db_url)
    try:
        with sessions() as s:
            report = consent.withdraw(s, token, "test", time.time())
            s.commit()
        assert report.withdrawn >= 1
        wait_for(lambda: not located(backend, token), 5, "the engine forgetting the child")
        # the gateway refuses the device (within its one-second registry refresh)
        wait_for(lambda: backend.fix(device, PLACE[0] + 0.001, PLACE[1])[0] == 403, 5,
                 "the gateway refusing the device")
        status, text = backend.fix(device, *PLACE, alarm="sos")
        assert status == 403 and "consent" in text
        time.sleep(1.0)
        assert sos_alerts(backend, device) == 0 and not located(backend, token)

        with sessions() as s:
            guardian = consent.guardians(s, token)[0]
            consent.give(s, token, guardian.id, ["routine", "location", "emergency"],
                         "under14", "test", time.time())
            s.commit()
        # the gateway and the engine each re-read consents within a second:
        # the phone keeps reporting until both take it
        wait_for(lambda: backend.fix(device, *PLACE, t=time.time())[0] == 200
                 and located(backend, token), 5, "the child back on the map")
        assert backend.fix(device, *PLACE, alarm="sos")[0] == 200
        wait_for(lambda: sos_alerts(backend, device) == 1, 10, "the SOS alert")
    finally:
        engine.dispose()


def test_a_child_consented_for_routine_only_raises_no_emergency_alert(backend: Backend) -> None:
    entry = backend.roster[4]
    device, token = entry.device_id, entry.token
    engine, sessions = open_store(backend.config.db_url)
    try:
        with sessions() as s:
            guardian = consent.guardians(s, token)[0]
            consent.withdraw(s, token, "test", time.time())
            consent.give(s, token, guardian.id, ["routine"], "under14", "test", time.time())
            s.commit()
    finally:
        engine.dispose()
    time.sleep(2.5)  # both re-read the registry within a second
    assert backend.fix(device, *PLACE)[0] == 200
    wait_for(lambda: located(backend, token), 10, "a routine-only child is still tracked")
    assert backend.fix(device, *PLACE, alarm="sos")[0] == 200
    wait_for(lambda: engine_stat(backend, "no_consent_alarms") >= 1, 10,
             "the engine counting the alarm it may not raise")
    assert sos_alerts(backend, device) == 0
