"""db.camera_admin: the one set of rules for camera edits, and the store
functions the engine runs for an admin's console, on a real store
(migrated, demo-seeded, demo cameras imported) on SQLite and PostgreSQL."""

from __future__ import annotations

import math
from collections.abc import Iterator

import msgspec
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from db.camera_admin import CameraEditError, import_data, load_cameras, save_camera, validate
from db.importers.cameras import CameraCsvError
from db.seed import seed_demo
from db.seed_cameras import seed_cameras
from db.store import open_store
from db.tables import Camera
from models.camera_admin import CameraEdit, edit_record, row_of_record
from models.messages import CameraEditRecord, CameraRecord

HEADER = ("관리기관명,소재지도로명주소,소재지지번주소,설치목적구분,카메라대수,카메라화소수,"
          "촬영방면정보,보관일수,설치연월,관리기관전화번호,WGS84위도,WGS84경도,데이터기준일자")


def csv_bytes(rows: list[str], encoding: str = "utf-8") -> bytes:
    return ("\n".join([HEADER, *rows]) + "\n").encode(encoding)


def row(n: int, lat: str = "", lon: str = "127.0420") -> str:
    """A valid row around Sinhak Elementary, distinct by its address number."""
    lat = lat or f"{37.6600 + n * 0.0001:.6f}"
    return (f"서울특별시 도봉구청,서울특별시 도봉구 방학로 {n},,어린이보호,1,200,북측,30,"
            f"2019-04,02-2091-1234,{lat},{lon},2024-06-30")


@pytest.fixture
def sessions(store_url: str) -> Iterator[sessionmaker[Session]]:
    engine, factory = open_store(store_url)
    with factory() as s:
        seed_demo(s, 10)
        seed_cameras(s, lambda i: "rtsp://127.0.0.1:1/x")
    try:
        yield factory
    finally:
        engine.dispose()


def load(sessions: sessionmaker[Session]) -> list[CameraRecord]:
    with sessions() as s:
        return load_cameras(s)


def save(sessions: sessionmaker[Session], edit: CameraEditRecord) -> CameraRecord:
    with sessions() as s:
        return save_camera(s, edit)


def as_edit(r: CameraRecord, **changes: object) -> CameraEditRecord:
    return msgspec.structs.replace(edit_record(row_of_record(r).as_edit()), **changes)


def count_cameras(sessions: sessionmaker[Session]) -> int:
    with sessions() as s:
        return int(s.scalar(select(func.count()).select_from(Camera)) or 0)


def national_fields(sessions: sessionmaker[Session], camera_id: int) -> tuple[object, ...]:
    with sessions() as s:
        cam = s.get(Camera, camera_id)
        assert cam is not None
        return (cam.phone, cam.installed, cam.pixels, cam.camera_count, cam.data_date)


def test_load_lists_the_demo_cameras_by_id(sessions: sessionmaker[Session]) -> None:
    rows = load(sessions)
    assert len(rows) == 24
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert all(r.stream_url == "rtsp://127.0.0.1:1/x" for r in rows)
    assert rows[0].agency == "서울특별시 동부공원여가센터"


def test_save_edits_a_camera_and_keeps_the_national_fields(
        sessions: sessionmaker[Session]) -> None:
    before = load(sessions)[3]
    national = national_fields(sessions, before.id)
    assert national[0] == "02-460-2905"
    saved = save(sessions, as_edit(before, name="뚝섬로 정문", direction_deg=135.0, fov_deg=60.0,
                                   range_m=120.0, ptz=True,
                                   stream_url="https://relay.example:8443/cam/4",
                                   status="maintenance"))
    assert (saved.id, saved.name, saved.direction_deg, saved.fov_deg, saved.range_m,
            saved.ptz, saved.status) == (before.id, "뚝섬로 정문", 135.0, 60.0, 120.0, True,
                                         "maintenance")
    assert load(sessions)[3] == saved
    assert national_fields(sessions, before.id) == national


def test_save_clears_direction_and_stream_url(sessions: sessionmaker[Session]) -> None:
    saved = save(sessions, as_edit(load(sessions)[1], direction_deg=None, stream_url=""))
    assert saved.direction_deg is None and saved.stream_url == ""


def test_save_adds_a_new_camera(sessions: sessionmaker[Session]) -> None:
    edit = CameraEdit(None, "신학초 후문", 37.6650, 127.0425, "서울특별시 도봉구청", "어린이보호",
                      "서울특별시 도봉구 방학동 123", 270.0, 90.0, 80.0, False,
                      "rtsp://10.0.0.5:554/live", "active")
    saved = save(sessions, edit_record(edit))
    assert saved.id > 24 and count_cameras(sessions) == 25
    assert load(sessions)[-1] == saved
    assert row_of_record(saved).as_edit() == CameraEdit(saved.id, *list(
        msgspec.structs.astuple(edit_record(edit)))[1:])


@pytest.mark.parametrize(("changes", "reason"), [
    ({"lat": math.nan}, "latitude nan is not in South Korea"),
    ({"lat": 35.0, "lon": 140.0}, "longitude 140.0 is not in South Korea"),
    ({"lat": 127.03, "lon": 37.54}, "look swapped"),
    ({"direction_deg": 400.0}, "view direction 400.0 must be 0–360°"),
    ({"direction_deg": -1.0}, "view direction -1.0 must be 0–360°"),
    ({"fov_deg": 0.0}, "field of view 0.0 must be 1–360°"),
    ({"range_m": 1500.0}, "range 1500.0 must be 1–1000 m"),
    ({"range_m": math.inf}, "range inf must be 1–1000 m"),
    ({"stream_url": "ftp://10.0.0.1/cam"}, "must start with rtsp://, http:// or https://"),
    ({"stream_url": "rtsp://"}, "the stream URL has no host"),
    ({"stream_url": "rtsp://host:99999/x"}, "the stream URL is malformed"),
    ({"stream_url": "rtsp://a b/x"}, "contains spaces"),
    ({"name": "  "}, "the name is empty"),
    ({"agency": ""}, "the managing agency is empty"),
    ({"address": "가" * 301}, "the address is longer than 300 characters"),
    ({"status": "broken"}, "status 'broken' must be one of"),
])
def test_invalid_edits_are_refused_with_the_reason(sessions: sessionmaker[Session],
                                                   changes: dict[str, object],
                                                   reason: str) -> None:
    before = load(sessions)[0]
    with pytest.raises(CameraEditError) as err:
        save(sessions, as_edit(before, **changes))
    assert any(reason in p for p in err.value.problems), err.value.problems
    assert not err.value.missing
    assert load(sessions)[0] == before


def test_every_problem_of_an_edit_is_reported_at_once(sessions: sessionmaker[Session]) -> None:
    edit = as_edit(load(sessions)[0], lat=0.0, fov_deg=0.0, range_m=0.0,
                   stream_url="file:///etc/passwd")
    problems = validate(edit)
    assert len(problems) == 4, problems
    assert "South Korea" in str(CameraEditError(problems))


def test_a_status_set_outside_the_form_is_kept(sessions: sessionmaker[Session]) -> None:
    edit = as_edit(load(sessions)[0], status="vandalised")
    assert validate(edit, current_status="vandalised") == []
    assert validate(edit, current_status="active") != []


def test_boundaries_and_unknown_camera(sessions: sessionmaker[Session]) -> None:
    base = load(sessions)[0]
    for changes in ({"direction_deg": 0.0}, {"direction_deg": 360.0}, {"fov_deg": 1.0},
                    {"fov_deg": 360.0}, {"range_m": 1.0}, {"range_m": 1000.0},
                    {"stream_url": "http://127.0.0.1:8560/cam/1.ts"}):
        assert validate(as_edit(base, **changes)) == [], changes
    with pytest.raises(CameraEditError, match="camera 999 is no longer in the store") as err:
        save(sessions, as_edit(base, id=999))
    assert err.value.missing


def test_import_all_or_nothing_reports_the_rejected_row(
        sessions: sessionmaker[Session]) -> None:
    with sessions() as s:
        report = import_data(s, "dobong.csv", csv_bytes([row(1), row(2, lat="abc"), row(3)]),
                             allow_partial=False)
    assert not report.committed and report.encoding == "utf-8"
    assert report.path == "dobong.csv"
    assert (report.rows_read, report.valid, report.imported) == (3, 2, 0)
    assert report.rejected == [(3, "WGS84위도 'abc' is not a number")]
    assert count_cameras(sessions) == 24


def test_import_valid_rows_of_a_cp949_file(sessions: sessionmaker[Session]) -> None:
    data = csv_bytes([row(1), row(2, lat="37.0", lon="140.0"), row(3)], "cp949")
    with sessions() as s:
        report = import_data(s, "dobong-cp949.csv", data, allow_partial=True)
    assert report.committed and report.encoding == "cp949"
    assert report.imported == 2 and report.rejected == [
        (3, "position 37.0, 140.0 is outside South Korea")]
    assert count_cameras(sessions) == 26
    added = load(sessions)[-2:]
    assert [c.agency for c in added] == ["서울특별시 도봉구청"] * 2
    assert added[0].name.startswith("도봉구 방학로 1")


def test_an_unreadable_file_raises(sessions: sessionmaker[Session]) -> None:
    with sessions() as s, pytest.raises(CameraCsvError, match="missing required columns"):
        import_data(s, "bad.csv", "이름,주소\n가,나\n".encode(), allow_partial=False)
    with sessions() as s, pytest.raises(CameraCsvError, match="the file is empty"):
        import_data(s, "empty.csv", b"", allow_partial=False)
