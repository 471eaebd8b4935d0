"""Zones in the store, on SQLite and PostgreSQL: versioned edits with their
change rows, all-or-nothing imports, exports that import back, and removals
refused while anything still uses the zone."""

from __future__ import annotations

import json

import pytest
from shapely.geometry import Point, Polygon
from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from db import changes
from db.seed import seed_demo
from db.store import open_store
from db.tables import CalendarDay, Change, Child, Reader, Zone
from db.zones import (
    add_zone,
    export_geojson,
    find_zone,
    import_geojson,
    remove_zone,
    update_zone,
    zone_views,
)
from models.messages import ZoneView
from models.zones import ZoneError, ZoneImportError, make_spec

FOREST_RING = [[127.0336, 37.5422], [127.0413, 37.5422], [127.0413, 37.5470],
               [127.0336, 37.5470], [127.0336, 37.5422]]
FILE = json.dumps({"type": "FeatureCollection", "features": [
    {"type": "Feature", "properties": {"name": "Seoul Forest Park", "kind": "park",
                                       "hours": "06:00-22:00"},
     "geometry": {"type": "Polygon", "coordinates": [FOREST_RING]}},
    {"type": "Feature", "properties": {"name": "Sindorim Elementary", "kind": "school",
                                       "radius_m": 300},
     "geometry": {"type": "Point", "coordinates": [126.8875, 37.5085]}},
]}, ensure_ascii=False)


def _count(session: Session, table: type[object]) -> int:
    return int(session.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore[arg-type]


def test_add_update_remove_with_versions(store_url: str) -> None:
    engine, sessions = open_store(store_url)
    with sessions() as s:
        v0 = changes.version(s, "zones")
        spec = make_spec("Sinhak Elementary", "school", Point(127.0420, 37.6655), 300.0)
        zone = add_zone(s, spec, "admin1")
        s.commit()
        v1 = changes.version(s, "zones")
        assert v1 > v0
        view = next(v for v in zone_views(s) if v.id == zone.id)
        assert (view.lat, view.lon, view.radius_m, view.shape) == (37.6655, 127.042, 300.0, "")
        assert view.district == "도봉구" and view.version == 1

        update_zone(s, zone.id, radius_m=350.0, hours="07:00-19:00", actor="admin1")
        s.commit()
        v2 = changes.version(s, "zones")
        assert v2 > v1
        # reshaped into a polygon: the store keeps its bounding circle as the centre
        square = [[127.0410, 37.6650], [127.0430, 37.6650], [127.0430, 37.6660],
                  [127.0410, 37.6660], [127.0410, 37.6650]]
        update_zone(s, zone.id, geometry=Polygon(square), actor="admin2")
        s.commit()
        view = next(v for v in zone_views(s) if v.id == zone.id)
        assert view.version == 3 and view.shape and view.hours == "07:00-19:00"
        assert abs(view.lat - 37.6655) < 1e-4 and abs(view.lon - 127.042) < 1e-4
        assert 100 < view.radius_m < 120  # half the square's diagonal
        v3 = changes.version(s, "zones")
        assert v3 > v2
        # nothing changed: no new version
        update_zone(s, zone.id, hours="07:00-19:00", actor="admin2")
        assert changes.version(s, "zones") == v3
        with pytest.raises(ZoneError, match="no radius_m"):
            update_zone(s, zone.id, radius_m=10.0, actor="admin2")
        with pytest.raises(ZoneError, match="kind 'mall'"):
            update_zone(s, zone.id, kind="mall", actor="admin2")
        with pytest.raises(ZoneError, match="exists already"):
            add_zone(s, spec, "admin1")

        history = changes.history(s, "zones", str(zone.id))
        assert [c.action for c in history] == ["update", "update", "add"]
        assert [c.actor for c in history] == ["admin2", "admin1", "admin1"]
        detail = json.loads(history[0].detail)
        assert detail["geometry"]["type"] == "Polygon"
        assert detail["properties"]["version"] == 3 and detail["properties"]["id"] == zone.id

        remove_zone(s, zone.id, "admin3")
        s.commit()
        assert changes.version(s, "zones") > v3
        assert zone.id not in [v.id for v in zone_views(s)]
        last = changes.history(s, "zones", str(zone.id))[0]
        assert (last.action, last.actor) == ("remove", "admin3")
        with pytest.raises(ZoneError, match="no zone"):
            remove_zone(s, zone.id, "admin3")
    engine.dispose()


def test_import_is_all_or_nothing(store_url: str) -> None:
    engine, sessions = open_store(store_url)
    doc = json.loads(FILE)
    doc["features"].append({"type": "Feature", "properties": {"name": "Broken", "kind": "park"},
                            "geometry": {"type": "Polygon",
                                         "coordinates": [FOREST_RING[:-1]]}})
    with sessions() as s:
        with pytest.raises(ZoneImportError) as caught:
            import_geojson(s, json.dumps(doc), "admin1")
        assert caught.value.problems == [
            "features[2] 'Broken': exterior ring is not closed: first position "
            "[127.0336, 37.5422] differs from last [127.0336, 37.547]"]
        s.rollback()
        assert _count(s, Zone) == 0
        assert _count(s, Change) == 0

        result = import_geojson(s, FILE, "admin1")
        s.commit()
        assert (result.added, result.updated, result.unchanged) == (2, 0, 0)
        forest = find_zone(s, "Seoul Forest Park")
        assert forest.version == 1 and forest.district == "성동구" and forest.shape
        v = changes.version(s, "zones")

        # the same file again changes nothing; an edited one updates by name
        assert import_geojson(s, FILE, "admin1").unchanged == 2
        assert changes.version(s, "zones") == v
        doc = json.loads(FILE)
        doc["features"][1]["properties"]["radius_m"] = 400
        result = import_geojson(s, json.dumps(doc), "admin2")
        s.commit()
        assert (result.added, result.updated, result.unchanged) == (0, 1, 1)
        school = find_zone(s, "Sindorim Elementary")
        assert school.version == 2 and school.radius_m == 400.0
        assert changes.version(s, "zones") > v
    engine.dispose()


def test_export_imports_back(store_url: str) -> None:
    engine, sessions = open_store(store_url)
    with sessions() as s:
        import_geojson(s, FILE, "admin")
        add_zone(s, make_spec("Sinhak Elementary", "school", Point(127.0420, 37.6655), 300.0,
                              hours="08:00-17:00"), "admin")
        s.commit()
        before = zone_views(s)
        exported = export_geojson(s)
        assert import_geojson(s, exported, "admin").unchanged == 3
        for view in before:
            remove_zone(s, view.id, "admin")
        s.commit()
        assert zone_views(s) == []
        assert import_geojson(s, exported, "admin").added == 3
        s.commit()
        after = zone_views(s)
    engine.dispose()

    def content(views: list[ZoneView]) -> list[tuple[object, ...]]:
        return [(v.name, v.kind, v.lat, v.lon, v.radius_m, v.shape, v.hours, v.district)
                for v in views]

    assert content(after) == content(before)


def test_removal_refused_while_in_use(store_url: str) -> None:
    engine, sessions = open_store(store_url)
    with sessions() as s:
        seed_demo(s, 30)
        zone = find_zone(s, "Sindorim Elementary")
        children = _count_where(s, Child, Child.zone_id == zone.id)
        assert children > 0
        s.add(Reader(id="R-SINDORIM-1", name="main gate", lat=zone.lat, lon=zone.lon,
                     range_m=30.0, zone_id=zone.id))
        s.add(CalendarDay(day="2026-05-12", zone_id=zone.id, name="개교기념일"))
        s.commit()
        v = changes.version(s, "zones")
        with pytest.raises(ZoneError) as caught:
            remove_zone(s, zone.id, "admin")
        assert str(caught.value) == (
            f"zone 'Sindorim Elementary' is still used by {children} child(ren), 1 tag "
            "reader(s), 1 calendar day(s): move them to another zone first")
        assert changes.version(s, "zones") == v
        assert find_zone(s, zone.id).name == "Sindorim Elementary"
    engine.dispose()


def _count_where(session: Session, table: type[object], where: ColumnElement[bool]) -> int:
    return int(session.scalar(select(func.count()).select_from(table).where(where)) or 0)  # type: ignore[arg-type]
