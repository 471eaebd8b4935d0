"""The tag-reader breadcrumb, end to end: a reader's upload to the gateway
becomes a fix that names the reader, on the bus and in the store; the engine
keeps the last reader per child, and an alert (and the snapshot) carries it
to the console's alert queue."""

from __future__ import annotations

import math
import time
from collections import Counter

import numpy as np
import pytest
from pytestqt.qtbot import QtBot
from sqlalchemy import select

from db import repositories as repo
from db.repositories import RosterEntry
from db.store import open_store
from db.tables import Alert, Fix, Reader
from models.messages import AlertView, position_columns
from models.qt.alert_table import AlertTableModel, cell, place_text, tooltip
from tests.console.conftest import Backend, wait_for


def _view(**kw: object) -> AlertView:
    base: dict[str, object] = dict(id=7, kind="sos", priority=1, state="new",
                                   child_token="C-1", child_slot=0, device_id="E200",
                                   lat=37.5444, lon=127.0374, place="성동구 성수동1가",
                                   opened_at=1_790_000_000.0)
    base.update(kw)
    return AlertView(**base)  # type: ignore[arg-type]


def test_the_place_names_the_reader_only_when_it_gave_the_position() -> None:
    located = _view(last_reader="R001-1", last_reader_at=1_789_999_990.0,
                    position_from_reader=True)
    assert place_text(located) == "성동구 성수동1가 · reader R001-1"
    assert place_text(_view(last_reader="R001-1", position_from_reader=True,
                            position_is_last_known=True)) == (
        "성동구 성수동1가 · reader R001-1 (last known)")
    # A GPS fix since: the reader is history, not where the child is.
    assert place_text(_view(last_reader="R001-1")) == "성동구 성수동1가"
    assert place_text(_view()) == "성동구 성수동1가"
    assert cell(located, 4) == place_text(located)
    assert "last seen by reader R001-1 at" in tooltip(located)
    assert "reader" not in tooltip(_view())


def test_the_alert_table_model_shows_it(qtbot: QtBot) -> None:
    model = AlertTableModel()
    model.set_rows([_view(last_reader="R003-2", position_from_reader=True)])
    assert model.index(0, 4).data() == "성동구 성수동1가 · reader R003-2"


def _readers_in(backend: Backend, child: RosterEntry) -> list[Reader]:
    engine, sessions = open_store(backend.config.db_url)
    try:
        with sessions() as s:
            return [r for r in repo.readers(s) if r.zone_id == child.zone_id]
    finally:
        engine.dispose()


def _slot(backend: Backend, child: RosterEntry) -> int:
    return backend.snapshot().children.index(child.token)


def _at(backend: Backend, slot: int) -> tuple[float, float] | None:
    snap = backend.snapshot()
    cols = position_columns(snap.positions)
    hit = np.flatnonzero(cols["slots"] == slot)
    return (float(cols["lat"][hit[0]]), float(cols["lon"][hit[0]])) if hit.size else None


def _sos_alert(backend: Backend, device_id: str) -> AlertView | None:
    return next((a for a in backend.snapshot().alerts
                 if a.kind == "sos" and a.device_id == device_id), None)


@pytest.mark.parametrize("store", ["backend", pytest.param("pg_backend",
                                                           marks=pytest.mark.postgres)])
def test_a_tag_read_then_an_sos_carries_the_reader(store: str,
                                                   request: pytest.FixtureRequest) -> None:
    """Two children who wear tags pass a reader; then each one's device sends
    an SOS (a tag has no button; to the gateway any registered id may send
    one, here as a phone app's OsmAnd alarm). The first SOS has no position,
    so it is raised where the reader saw the child, and says so; the second
    has its own GPS fix, so the reader is only the breadcrumb."""
    backend: Backend = request.getfixturevalue(store)
    blind, located = [r for r in backend.roster if r.kind == "tag"][:2]
    reader = _readers_in(backend, blind)[1]
    other = _readers_in(backend, located)[0]
    now = time.time()
    status, reply = backend.post_json(backend.config.feeds_port, "/v1/tag-reads", {"reads": [
        {"reader_id": reader.id, "tag_id": blind.device_id, "rssi": -58, "t": now - 5},
        {"reader_id": other.id, "tag_id": located.device_id, "rssi": -66, "t": now - 5},
    ]})
    assert (status, reply) == (200, {"accepted": 2, "rejected": []})
    slot, slot2 = _slot(backend, blind), _slot(backend, located)

    def breadcrumbs_in_snapshot() -> bool:
        crumbs = backend.snapshot().last_readers
        return crumbs.get(slot) == reader.id and crumbs.get(slot2) == other.id

    wait_for(breadcrumbs_in_snapshot, 10, "both breadcrumbs in the engine's snapshot")
    assert _at(backend, slot) == pytest.approx((reader.lat, reader.lon))

    assert backend.send(id=blind.device_id, alarm="sos", timestamp=now)[0] == 200
    gps = (37.5450, 127.0390)
    assert backend.fix(located.device_id, *gps, t=now, alarm="sos")[0] == 200
    wait_for(lambda: _sos_alert(backend, blind.device_id) and _sos_alert(
        backend, located.device_id), 10, "both SOS alerts")

    alert = _sos_alert(backend, blind.device_id)
    assert alert is not None
    assert alert.position_is_last_known and alert.position_from_reader
    assert alert.last_reader == reader.id
    assert alert.last_reader_at == pytest.approx(now - 5)
    assert (alert.lat, alert.lon) == pytest.approx((reader.lat, reader.lon))
    assert place_text(alert) == f"{alert.place} · reader {reader.id} (last known)"
    assert alert.place.endswith(("동", "가")) and "위치 미상" not in alert.place

    alert2 = _sos_alert(backend, located.device_id)
    assert alert2 is not None
    assert alert2.last_reader == other.id and not alert2.position_from_reader
    assert not alert2.position_is_last_known
    assert (alert2.lat, alert2.lon) == pytest.approx(gps)
    assert "reader" not in place_text(alert2)

    engine, _ = open_store(backend.config.db_url)
    try:
        def stored() -> list[tuple[str, str | None, bool]]:
            with engine.connect() as conn:
                rows = conn.execute(select(Fix.device_id, Fix.reader_id, Fix.lat)
                                    .where(Fix.device_id.in_([blind.device_id,
                                                              located.device_id]))
                                    .order_by(Fix.device_id, Fix.t)).all()
            return [(d, r, lat is not None and math.isfinite(lat)) for d, r, lat in rows]

        # (device, reader_id, has a position): each read with its reader, each
        # SOS without one, and nothing stored twice.
        expected = Counter([(blind.device_id, reader.id, True), (blind.device_id, None, False),
                            (located.device_id, other.id, True),
                            (located.device_id, None, True)])
        wait_for(lambda: Counter(stored()) == expected, 10,
                 "the reads with their readers and the SOS fixes without, in the store")
        with engine.connect() as conn:
            row = conn.execute(select(Alert.last_reader, Alert.position_from_reader)
                               .where(Alert.id == alert.id)).one()
        assert tuple(row) == (reader.id, True)  # the case keeps its breadcrumb
    finally:
        engine.dispose()
