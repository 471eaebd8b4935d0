"""Zones and enrolment through the engine (``console.engine.admin_services``):
a real bus, engine and gateway as processes on a demo store, requests over
the engine's socket as a console sends them, and fixes over OsmAnd.

The engine is the only writer: it checks the role (admin only) and every
field (all the problems at once), and what it writes reaches the live
system by itself within a second: a zone is in the next snapshot and the
geofence counts children inside it; an enrolled child's device is taken by
the gateway and the engine. The rules themselves are tested on the store
(``tests/db``); here, that the console's way in keeps them.

One backend serves the module (starting one costs seconds); each test
names its own zones, children and devices.
"""

from __future__ import annotations

import json
import shutil
import tempfile
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import zmq
from sqlalchemy import select

from console.bus import Subscriber
from console.security import Security
from db.store import open_store
from db.tables import AccessRecord, Change
from models.messages import (
    AddDevice,
    ChildRemoved,
    ChildrenRequest,
    ChildRows,
    ChildSaved,
    CommandReply,
    EnrolChild,
    ExportZones,
    ImportRoster,
    ImportZones,
    RemoveChild,
    RemoveDevice,
    RemoveZone,
    RosterImportResult,
    SaveZone,
    ZoneCounts,
    ZoneExport,
    ZoneImportResult,
    ZoneSaved,
)
from tests.console.conftest import Backend, make_config, running_backend, wait_for

# Gwanghwamun Square: no demo zone there.
PLAZA = (37.5725, 126.9769)
ROSTER_HEADER = ("name,school,device_id,device_kind,guardian_name,guardian_phone,"
                 "guardian_email,relation,consent,age_band")


def square(lat: float, lon: float, half_m: float = 120.0) -> str:
    """A GeoJSON square around (lat, lon), ``half_m`` metres each way."""
    dlat = half_m / 111_000.0
    dlon = half_m / 88_000.0
    ring = [[lon - dlon, lat - dlat], [lon + dlon, lat - dlat], [lon + dlon, lat + dlat],
            [lon - dlon, lat + dlat], [lon - dlon, lat - dlat]]
    return json.dumps({"type": "Polygon", "coordinates": [ring]})


@pytest.fixture(scope="module")
def backend() -> Iterator[Backend]:
    """Bus, engine and gateway: fixes come in over OsmAnd."""
    data_dir = Path(tempfile.mkdtemp(prefix="cs-", dir="/tmp"))
    cfg = make_config(data_dir, children=10)
    try:
        with running_backend(cfg, ("bus", "engine", "gateway")) as b:
            yield b
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


@pytest.fixture(scope="module")
def admin(backend: Backend) -> str:
    return backend.sign_in("admin1")


def refused(reply: object, code: str) -> str:
    assert isinstance(reply, CommandReply) and not reply.ok, reply
    assert reply.code == code, reply
    return reply.error


def rows_of(b: Backend, token: str, **filters: str) -> ChildRows:
    reply = b.command(ChildrenRequest(token=token, **filters))
    assert isinstance(reply, ChildRows), reply
    return reply


def roster(*rows: str) -> bytes:
    return ("\ufeff" + "\r\n".join([ROSTER_HEADER, *rows]) + "\r\n").encode()


def access(b: Backend, action: str) -> list[AccessRecord]:
    engine, sessions = open_store(b.config.db_url)
    try:
        with sessions() as s:
            return list(s.scalars(select(AccessRecord).where(AccessRecord.action == action)
                                  .order_by(AccessRecord.id)))
    finally:
        engine.dispose()


def counts_of(b: Backend, zone_id: int, wanted: Callable[[tuple[int, int]], bool],
              send: Callable[[], object], timeout_s: float = 10.0) -> tuple[int, int]:
    """The first (inside, uncertain) of ``zone_id`` on the bus that is
    ``wanted``, calling ``send`` (a fix) twice a second meanwhile: the engine
    takes a new device within a second of the gateway, and publishes counts
    only when they change, so the subscription comes first."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = Subscriber(ctx, b.config.bus_sub, ("zone.counts",),
                     security=Security.console(b.config))
    deadline = time.monotonic() + timeout_s
    next_send = time.monotonic() + 0.3  # let the subscription reach the bus first
    try:
        while time.monotonic() < deadline:
            if time.monotonic() >= next_send:
                send()
                next_send = time.monotonic() + 0.5
            got = sub.recv(100)
            if got is None or not isinstance(got[1], ZoneCounts):
                continue
            msg = got[1]
            if zone_id in msg.zone_ids:
                i = msg.zone_ids.index(zone_id)
                pair = (msg.inside[i], msg.uncertain[i])
                if wanted(pair):
                    return pair
    finally:
        sub.close()
        ctx.term()
    raise AssertionError(f"no zone.counts for zone {zone_id} as expected in {timeout_s} s")


def test_a_drawn_zone_goes_live_and_counts_the_child_inside(backend: Backend,
                                                            admin: str) -> None:
    saved = backend.command(SaveZone(token=admin, name="광화문광장 안전지대", kind="park",
                                     hours="07:00-20:00", geometry=square(*PLAZA)))
    assert isinstance(saved, ZoneSaved) and saved.changed, saved
    zone = saved.zone
    assert zone.shape and zone.version == 1 and zone.district == "종로구"  # derived
    wait_for(lambda: any(z.id == zone.id for z in backend.snapshot().zones), 5,
             "the zone in the next snapshot")
    assert [r.user for r in access(backend, "cmd.save_zone")][-1:] == ["admin1"]

    # A child enrolled there through the engine, with a guardian's consent:
    # the gateway takes its phone within a second, and a fix inside counts.
    imported = backend.command(ImportRoster(
        token=admin, filename="plaza.csv", data=roster(
            "이광화,광화문광장 안전지대,adm-phone-1,phone,이부모,010-5555-0001,,mother,"
            '"routine,location,emergency",under14')))
    assert isinstance(imported, RosterImportResult) and imported.committed, imported
    assert imported.enrolled == 1 and imported.encoding == "utf-8"
    child = rows_of(backend, admin, search="이광화").rows
    assert [(c.name, c.school, c.devices, c.consent) for c in child] == [
        ("이광화", "광화문광장 안전지대", ["adm-phone-1"], "routine,location,emergency")]
    wait_for(lambda: backend.fix("adm-phone-1", *PLAZA)[0] == 200, 6,
             "the new child's phone accepted")
    assert counts_of(backend, zone.id, lambda c: c[0] >= 1,
                     lambda: backend.fix("adm-phone-1", *PLAZA)) == (1, 0)

    # Reshaped away from the child: a new version, and the fence follows.
    moved = backend.command(SaveZone(token=admin, zone_id=zone.id, name=zone.name,
                                     kind=zone.kind, hours=zone.hours,
                                     district=zone.district, zone_version=zone.version,
                                     geometry=square(PLAZA[0] + 0.01, PLAZA[1])))
    assert isinstance(moved, ZoneSaved) and moved.zone.version == 2, moved
    assert counts_of(backend, zone.id, lambda c: c[0] == 0,
                     lambda: backend.fix("adm-phone-1", *PLAZA)) == (0, 0)
    stale = backend.command(SaveZone(token=admin, zone_id=zone.id, name=zone.name,
                                     kind="park", zone_version=1))
    assert "changed since you opened it" in refused(stale, "stale")


def test_an_invalid_zone_is_refused_with_every_problem(backend: Backend, admin: str) -> None:
    before = backend.snapshot().zones
    bowtie = {"type": "Polygon", "coordinates": [[
        [126.970, 37.560], [126.972, 37.562], [126.972, 37.560], [126.970, 37.562],
        [126.970, 37.560]]]}
    error = refused(backend.command(SaveZone(token=admin, name="꼬인 구역", kind="school",
                                             hours="8시-17시", geometry=json.dumps(bowtie))),
                    "bad_value")
    assert "not a valid polygon: Self-intersection at lon 126.971, lat 37.561" in error
    assert "hours '8시-17시': write them as HH:MM-HH:MM" in error
    # a shape that cannot even be read still has the other fields checked
    error = refused(backend.command(SaveZone(token=admin, name="", kind="mall",
                                             geometry='{"type": "LineString"}')), "bad_value")
    assert "geometry must be a GeoJSON Polygon or Point, not 'LineString'" in error
    assert "no name" in error and "kind 'mall' is not one of" in error
    error = refused(backend.command(SaveZone(token=admin, name="거꾸로", kind="park",
                                             lat=126.97, lon=37.56, radius_m=200.0)),
                    "bad_value")
    assert "latitude and longitude are swapped" in error
    assert backend.snapshot().zones == before
    assert access(backend, "cmd.save_zone")[-1].ok is False  # refusals are on record


def test_zone_import_is_all_or_nothing_and_export_reads_back(backend: Backend,
                                                             admin: str) -> None:
    def feature(name: str, geometry: dict[str, object], **props: object) -> dict[str, object]:
        return {"type": "Feature", "geometry": geometry,
                "properties": {"name": name, "kind": "school", **props}}

    good = feature("청운초 안전지대", {"type": "Point", "coordinates": [126.9685, 37.5870]},
                   radius_m=300)
    swapped = feature("경복초 안전지대", {"type": "Point", "coordinates": [37.58, 126.97]},
                      radius_m=300)
    doc = {"type": "FeatureCollection", "features": [good, swapped]}
    result = backend.command(ImportZones(token=admin, filename="../jongno.geojson",
                                         data=json.dumps(doc).encode()))
    assert isinstance(result, ZoneImportResult) and not result.committed, result
    assert result.filename == "jongno.geojson" and result.problem_count == 1
    assert result.problems[0].startswith("features[1] '경복초 안전지대': latitude and "
                                         "longitude are swapped")
    names = {z.name for z in backend.snapshot().zones}
    assert "청운초 안전지대" not in names

    doc["features"] = [good]
    result = backend.command(ImportZones(token=admin, filename="jongno.geojson",
                                         data=json.dumps(doc).encode()))
    assert isinstance(result, ZoneImportResult) and result.committed, result
    assert (result.added, result.updated) == (1, 0)
    exported = backend.command(ExportZones(token=admin))
    assert isinstance(exported, ZoneExport)
    features = json.loads(exported.geojson)["features"]
    assert exported.zones == len(features) >= 4
    mine = next(f for f in features if f["properties"]["name"] == "청운초 안전지대")
    assert mine["properties"]["radius_m"] == 300
    wait_for(lambda: "청운초 안전지대" in {z.name for z in backend.snapshot().zones}, 5,
             "the imported zone live")

    # A zone in use is not deleted (the refusal says by what); a free one is.
    school = next(z for z in backend.snapshot().zones if z.name == "Sindorim Elementary")
    error = refused(backend.command(RemoveZone(token=admin, zone_id=school.id)), "in_use")
    assert "still used by" in error and "child(ren)" in error
    zone_id = next(z.id for z in backend.snapshot().zones if z.name == "청운초 안전지대")
    reply = backend.command(RemoveZone(token=admin, zone_id=zone_id))
    assert isinstance(reply, CommandReply) and reply.ok, reply
    wait_for(lambda: all(z.id != zone_id for z in backend.snapshot().zones), 5,
             "the deleted zone gone from the snapshot")


def test_a_roster_with_one_bad_line_imports_nothing_and_names_it(backend: Backend,
                                                                 admin: str) -> None:
    lines = [
        "정하나,Sinhak Elementary,adm-watch-1,watch,정부모,010-5555-0002,,father,"
        '"routine,location",under14',
        "정두리,Sinhak Elementary,adm-watch-2,band,정부모,010-5555-0002,,father,"
        "location,under14",
        "정세나,Sinhak Elementary,adm-watch-3,watch,정부모,010-5555-0002,,father,"
        "location,under14",
    ]
    result = backend.command(ImportRoster(token=admin, filename="sinhak.csv",
                                          data=roster(*lines)))
    assert isinstance(result, RosterImportResult) and not result.committed, result
    assert result.problems == ["line 3: device_kind: must be one of watch, phone, tag, "
                               "not 'band'"]
    assert rows_of(backend, admin, search="adm-watch-").total == 0

    lines[1] = lines[1].replace(",band,", ",watch,")
    # CP949, as Korean Excel saves it; the school given for the import
    data = roster(*lines).decode("utf-8").removeprefix("\ufeff").encode("cp949")
    result = backend.command(ImportRoster(token=admin, filename="sinhak.csv", data=data,
                                          school="Sinhak Elementary"))
    assert isinstance(result, RosterImportResult) and result.committed, result
    assert (result.enrolled, result.guardians_added, result.encoding) == (3, 1, "cp949")
    listed = rows_of(backend, admin, school="Sinhak Elementary", search="adm-watch-")
    assert [c.name for c in listed.rows] == ["정하나", "정두리", "정세나"]
    assert listed.rows[0].consent == "routine,location" and listed.rows[0].guardians == [
        "father"]
    detail = access(backend, "cmd.import_roster")[-1].detail
    assert "정" not in detail  # the access log is read where children are pseudonymous


def test_enrol_devices_and_removal(backend: Backend, admin: str) -> None:
    error = refused(backend.command(EnrolChild(token=admin, name="", school="No Such School",
                                               profile="skate", device_id="x" * 70,
                                               device_kind="pager")), "bad_value")
    for part in ("name: missing", "school: no zone named 'No Such School'",
                 "profile: must be one of walking, bus", "1-64 printable characters",
                 "device kind must be one of watch, phone, tag"):
        assert part in error
    saved = backend.command(EnrolChild(token=admin, name="한새봄", school="Seoul Forest Park",
                                       device_id="adm-tag-1", device_kind="tag"))
    assert isinstance(saved, ChildSaved), saved
    child = saved.child
    assert (child.name, child.devices, child.consent) == ("한새봄", ["adm-tag-1"],
                                                          "no consent")
    again = backend.command(AddDevice(token=admin, child=child.token, device_id="adm-tag-1",
                                      kind="tag"))
    assert "already registered" in refused(again, "bad_value")
    added = backend.command(AddDevice(token=admin, child=child.token, device_id="adm-watch-9",
                                      kind="watch"))
    assert isinstance(added, ChildSaved) and added.child.devices == ["adm-tag-1",
                                                                     "adm-watch-9"]
    dropped = backend.command(RemoveDevice(token=admin, device_id="adm-tag-1"))
    assert isinstance(dropped, ChildSaved) and dropped.child.devices == ["adm-watch-9"]
    removed = backend.command(RemoveChild(token=admin, child=child.token))
    assert isinstance(removed, ChildRemoved) and removed.devices == ["adm-watch-9"], removed
    assert rows_of(backend, admin, search=child.token).total == 0
    refused(backend.command(RemoveChild(token=admin, child=child.token)), "bad_value")
    engine, sessions = open_store(backend.config.db_url)
    try:
        with sessions() as s:
            logged = list(s.scalars(select(Change.action).where(Change.key == child.token)
                                    .order_by(Change.id)))
    finally:
        engine.dispose()
    assert logged == ["add", "add_device", "add_device", "remove_device", "remove_device",
                      "remove"]


def test_an_operator_is_refused(backend: Backend) -> None:
    operator = backend.sign_in("operator1")
    zones = backend.snapshot().zones
    for request in (SaveZone(token=operator, name="몰래", kind="park", lat=37.56, lon=126.97,
                             radius_m=200.0),
                    RemoveZone(token=operator, zone_id=zones[0].id),
                    ImportZones(token=operator, filename="z.geojson", data=b"{}"),
                    ExportZones(token=operator),
                    ChildrenRequest(token=operator),
                    EnrolChild(token=operator, name="몰래", school=zones[0].name),
                    ImportRoster(token=operator, filename="r.csv", data=b""),
                    AddDevice(token=operator, child="C-0000000", device_id="d", kind="tag"),
                    RemoveDevice(token=operator, device_id="d"),
                    RemoveChild(token=operator, child="C-0000000")):
        error = refused(backend.command(request), "forbidden")
        assert error.startswith("operator1 (operator) may not do")
    assert backend.snapshot().zones == zones
    signed_out = refused(backend.command(ChildrenRequest(token="")), "unauthenticated")
    assert "sign in" in signed_out
