"""Enrolment while the system runs: a child and device registered now are
tracked now and their SOS raises an alert now (no restart); a second device
for the same child lands on the same slot; an unregistered device stops
moving its child, who leaves the map."""

from __future__ import annotations

import time

from db import consent, registry
from db.store import open_store
from db.tables import Child
from models.messages import unpack
from tests.console.conftest import Backend, wait_for

PLACE = (37.5085, 126.8875)  # Sindorim Elementary


def slot_of(b: Backend, token: str) -> int:
    snap = b.snapshot()
    return snap.children.index(token) if token in snap.children else -1


def located(b: Backend, token: str) -> bool:
    snap = b.snapshot()
    if token not in snap.children:
        return False
    return snap.children.index(token) in unpack("slots", snap.positions.slots).tolist()


def alerts_of(b: Backend, device: str, kind: str = "sos") -> list[int]:
    return [a.count for a in b.snapshot().alerts if a.device_id == device and a.kind == kind]


def enrol(b: Backend, token: str, device: str) -> None:
    engine, sessions = open_store(b.config.db_url)
    try:
        with sessions() as s:
            s.add(Child(token=token, name="New Child", zone_id=None))
            s.flush()
            guardian = consent.add_guardian(s, "Guardian", "010-1234-5678", "", time.time())
            consent.link(s, token, guardian.id, "mother")
            consent.give(s, token, guardian.id, ["routine", "location", "emergency"],
                         "under14", "test", time.time())
            registry.add_device(s, device, "phone", token, actor="test")
            s.commit()
    finally:
        engine.dispose()


def test_a_child_enrolled_while_running_is_tracked_and_raises_alerts(backend: Backend) -> None:
    before = len(backend.snapshot().children)
    token, device = "C-LIVE-001", "live-phone-1"
    assert backend.fix(device, *PLACE)[0] == 403  # not registered yet

    enrol(backend, token, device)
    # the gateway and the engine each take the change within a second
    wait_for(lambda: backend.fix(device, *PLACE)[0] == 200 and located(backend, token), 6,
             "the new child on the map")
    assert slot_of(backend, token) == before  # appended; no slot reused

    assert backend.fix(device, *PLACE, alarm="sos")[0] == 200
    wait_for(lambda: alerts_of(backend, device) == [1], 10, "the new child's SOS alert")

    # a second device for the same child, added now: same child, same slot
    engine, sessions = open_store(backend.config.db_url)
    try:
        with sessions() as s:
            registry.add_device(s, "live-watch-2", "watch", token, actor="test")
            s.commit()
        wait_for(lambda: backend.fix("live-watch-2", PLACE[0] + 0.001, PLACE[1])[0] == 200,
                 6, "the second device accepted")
        assert slot_of(backend, token) == before
        assert len(backend.snapshot().children) == before + 1

        # unregistered: the child leaves the map and the device is refused
        with sessions() as s:
            registry.remove_device(s, device, actor="test")
            registry.remove_device(s, "live-watch-2", actor="test")
            s.commit()
        wait_for(lambda: not located(backend, token), 6, "the child leaving the map")
        wait_for(lambda: backend.fix(device, *PLACE)[0] == 403, 6, "the device refused")
        # the open alert stays with its child: it is the operator's to resolve
        assert alerts_of(backend, device) == [1]
    finally:
        engine.dispose()
