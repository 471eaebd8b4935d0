"""The backend processes on PostgreSQL (`--db URL`): the same code paths as
the embedded default, against a real server, end to end."""

from __future__ import annotations

import json
import os
import signal
import time

import numpy as np
import pytest
from sqlalchemy import func, select

from db.store import open_store
from db.tables import Alert, AlertAction, Fix
from models.messages import AckAlert, CommandReply, position_columns
from tests.console.conftest import SEOUL_FOREST, Backend, wait_for
from tests.console.test_system import start_tap

pytestmark = [pytest.mark.postgres, pytest.mark.slow]


def test_fixes_alerts_and_acks_reach_postgres(pg_backend: Backend) -> None:
    b = pg_backend
    assert b.config.db_url.startswith("postgresql")
    tap = start_tap(b, "alert.", 2)
    devices = [r.device_id for r in b.roster[:10]]
    t0 = time.time() - 60
    for i, device in enumerate(devices):
        assert b.fix(device, 37.5444 + i * 1e-4, 127.0374, t=t0 + i)[0] == 200
    assert b.fix(devices[2], *SEOUL_FOREST, alarm="sos")[0] == 200
    wait_for(lambda: any(a.kind == "sos" for a in b.snapshot().alerts), 10, "the SOS")
    sos = next(a for a in b.snapshot().alerts if a.kind == "sos")
    assert sos.place == "성동구 성수동1가" and sos.device_id == devices[2]

    reply = b.command(AckAlert(token=b.sign_in("operator1"), alert_id=sos.id,
                               alert_version=sos.version))
    assert isinstance(reply, CommandReply) and reply.ok, reply
    out, _ = tap.communicate(timeout=10)
    assert [json.loads(line)["schema"] for line in out.splitlines()] == [
        "alert.opened", "alert.updated"]

    engine, sessions = open_store(b.config.db_url)
    try:
        # The recorder writes with COPY on PostgreSQL: every fix arrives.
        def stored() -> int:
            with sessions() as s:
                return int(s.scalar(select(func.count()).select_from(Fix)) or 0)

        wait_for(lambda: stored() == len(devices) + 1, 15, "all fixes in PostgreSQL")
        with sessions() as s:
            row = s.get(Alert, sos.id)
            assert row is not None and row.state == "acknowledged"
            actions = s.execute(select(AlertAction.action, AlertAction.actor)
                                .where(AlertAction.alert_id == sos.id)
                                .order_by(AlertAction.id)).all()
            assert [tuple(a) for a in actions] == [("open", "engine"), ("ack", "operator1")]
    finally:
        engine.dispose()


def test_a_restarted_engine_reloads_its_alerts_from_postgres(pg_backend: Backend) -> None:
    b = pg_backend
    assert b.fix(b.roster[4].device_id, *SEOUL_FOREST, alarm="sos")[0] == 200
    wait_for(lambda: len(b.snapshot().alerts) == 1, 10, "the SOS")
    before = b.snapshot().alerts[0]
    old = b.supervisor.pid("engine")
    os.kill(old, signal.SIGKILL)
    wait_for(lambda: b.supervisor.pid("engine") != old, 10, "engine restart")
    wait_for(lambda: len(b.snapshot(timeout_s=10).alerts) == 1, 15, "alerts reloaded")
    after = b.snapshot().alerts[0]
    assert (after.id, after.kind, after.state, after.child_token, after.place) == (
        before.id, before.kind, before.state, before.child_token, before.place)

    def reported() -> bool:
        b.fix(b.roster[1].device_id, *SEOUL_FOREST)
        cols = position_columns(b.snapshot().positions)
        return bool(np.isin(1, cols["slots"]))

    wait_for(reported, 10, "a fix through the restarted engine")
