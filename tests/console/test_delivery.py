"""Delivery end to end on a real backend: what a device is told matches what
survives (DESIGN.md, Delivery). The engine is frozen (SIGSTOP) or killed
while SOS arrive; counts are asserted, never times."""

from __future__ import annotations

import http.client
import os
import signal
import time
from urllib.parse import urlencode

from sqlalchemy import select

from db.store import open_store
from db.tables import Alert, Event
from tests.console.conftest import SEOUL_FOREST, Backend, wait_for, wait_for_heartbeat


def sos(backend: Backend, device: str, t: float) -> tuple[int, str, str]:
    """One OsmAnd SOS; (status, body, Retry-After header)."""
    conn = http.client.HTTPConnection("127.0.0.1", backend.config.osmand_port, timeout=10)
    try:
        conn.request("GET", "/?" + urlencode({"id": device, "lat": SEOUL_FOREST[0],
                                              "lon": SEOUL_FOREST[1], "timestamp": t,
                                              "accuracy": 8, "alarm": "sos"}))
        resp = conn.getresponse()
        return resp.status, resp.read().decode(), resp.getheader("Retry-After") or ""
    finally:
        conn.close()


def sos_alerts(backend: Backend, device: str) -> list[Alert]:
    engine, sessions = open_store(backend.config.db_url)
    try:
        with sessions() as s:
            return list(s.scalars(select(Alert).where(Alert.device_id == device,
                                                      Alert.kind == "sos")))
    finally:
        engine.dispose()


def test_sos_is_not_acknowledged_while_the_engine_is_silent(backend: Backend) -> None:
    """A frozen engine: the gateway stops acknowledging alarms (503 with
    Retry-After, and says so in its stats) but still takes plain fixes; once
    the engine is heard again the resent SOS is acknowledged, and the press
    is one alert counted once, not one per send."""
    device = backend.roster[3].device_id
    engine_pid = backend.supervisor.pid("engine")
    assert engine_pid is not None
    pressed = time.time() - 1
    os.kill(engine_pid, signal.SIGSTOP)
    try:
        stats = wait_for_heartbeat(backend.config, "gateway", "engine_up", 0.0)
        status, text, retry = sos(backend, device, pressed)
        assert (status, retry) == (503, "5"), text
        assert backend.fix(backend.roster[4].device_id, *SEOUL_FOREST)[0] == 200
        assert sos(backend, device, pressed)[0] == 503  # the device's resend: still not
        stats = wait_for_heartbeat(backend.config, "gateway", "alarms_unacknowledged", 2.0)
        assert stats["engine_up"] == 0.0
    finally:
        os.kill(engine_pid, signal.SIGCONT)
    wait_for_heartbeat(backend.config, "gateway", "engine_up", 1.0)
    assert sos(backend, device, pressed)[:2] == (200, "OK")
    wait_for(lambda: len(sos_alerts(backend, device)) == 1, 15, "the SOS alert")
    time.sleep(1.0)  # let any repeat that would wrongly count reach the store
    (alert,) = sos_alerts(backend, device)
    assert alert.count == 1 and alert.first_trigger_at == pressed


def test_an_acknowledged_sos_survives_the_engine_dying_before_it_saw_it(
        backend: Backend) -> None:
    """The SOS is acknowledged (journaled) while the engine is frozen but
    still counted as heard; the engine is then killed with the SOS unread in
    its socket. The restarted engine reads it back from the journal: one
    alert, and its message is in the event log exactly once."""
    device = backend.roster[5].device_id
    old = backend.supervisor.pid("engine")
    assert old is not None
    os.kill(old, signal.SIGSTOP)
    try:
        status, text, _ = sos(backend, device, time.time() - 1)
        assert status == 200, text  # within the gateway's grace: journaled, then acknowledged
    finally:
        os.kill(old, signal.SIGKILL)
    wait_for(lambda: backend.supervisor.pid("engine") not in (None, old), 20, "engine restart")
    wait_for(lambda: len(sos_alerts(backend, device)) == 1, 20, "the SOS read back")
    stats = wait_for_heartbeat(backend.config, "engine")
    assert stats["journal_lost"] == 0
    engine, sessions = open_store(backend.config.db_url)
    try:
        with sessions() as s:
            bodies = s.scalars(select(Event.body).where(Event.topic == "alert.opened")).all()
    finally:
        engine.dispose()
    assert sum(device.encode() in body for body in bodies) == 1
