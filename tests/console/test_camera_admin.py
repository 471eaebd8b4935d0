"""console.camera_admin: the camera admin's jobs against a real SQLite store
(migrated, demo-seeded, demo cameras imported), without Qt's event loop."""

from __future__ import annotations

import math
from dataclasses import replace
from pathlib import Path

import pytest
from sqlalchemy import func, select

from console.camera_admin import (
    CameraEditError,
    import_file,
    load_cameras,
    save_camera,
    validate,
)
from db.importers.cameras import CameraCsvError
from db.seed import seed_demo
from db.seed_cameras import seed_cameras
from db.store import open_store, sqlite_url
from db.tables import Camera
from models.camera_admin import CameraEdit

HEADER = ("관리기관명,소재지도로명주소,소재지지번주소,설치목적구분,카메라대수,카메라화소수,"
          "촬영방면정보,보관일수,설치연월,관리기관전화번호,WGS84위도,WGS84경도,데이터기준일자")


def csv_text(rows: list[str]) -> str:
    return "\n".join([HEADER, *rows]) + "\n"


def row(n: int, lat: str = "", lon: str = "127.0420") -> str:
    """A valid row around Sinhak Elementary, distinct by its address number."""
    lat = lat or f"{37.6600 + n * 0.0001:.6f}"
    return (f"서울특별시 도봉구청,서울특별시 도봉구 방학로 {n},,어린이보호,1,200,북측,30,"
            f"2019-04,02-2091-1234,{lat},{lon},2024-06-30")


def make_store(data_dir: Path) -> str:
    url = sqlite_url(data_dir)
    engine, sessions = open_store(url)
    with sessions() as s:
        seed_demo(s, 10)
        seed_cameras(s, lambda i: "rtsp://127.0.0.1:1/x")
    engine.dispose()
    return url


def count_cameras(url: str) -> int:
    engine, sessions = open_store(url)
    try:
        with sessions() as s:
            return int(s.scalar(select(func.count()).select_from(Camera)) or 0)
    finally:
        engine.dispose()


@pytest.fixture
def store(data_dir: Path) -> str:
    return make_store(data_dir)


def test_load_lists_the_demo_cameras_by_id(store: str) -> None:
    rows = load_cameras(store)
    assert len(rows) == 24
    assert [r.id for r in rows] == sorted(r.id for r in rows)
    assert all(r.stream_url == "rtsp://127.0.0.1:1/x" for r in rows)
    assert rows[0].agency == "서울특별시 동부공원여가센터"


def national_fields(url: str, camera_id: int) -> tuple[object, ...]:
    engine, sessions = open_store(url)
    try:
        with sessions() as s:
            cam = s.get(Camera, camera_id)
            assert cam is not None
            return (cam.phone, cam.installed, cam.pixels, cam.camera_count, cam.data_date)
    finally:
        engine.dispose()


def test_save_edits_a_camera_and_keeps_the_national_fields(store: str) -> None:
    before = load_cameras(store)[3]
    national = national_fields(store, before.id)
    assert national[0] == "02-460-2905"
    edit = replace(before.as_edit(), name="뚝섬로 정문", direction_deg=135.0, fov_deg=60.0,
                   range_m=120.0, ptz=True, stream_url="https://relay.example:8443/cam/4",
                   status="maintenance")
    saved = save_camera(store, edit)
    assert (saved.id, saved.name, saved.direction_deg, saved.fov_deg, saved.range_m,
            saved.ptz, saved.status) == (before.id, "뚝섬로 정문", 135.0, 60.0, 120.0, True,
                                         "maintenance")
    assert load_cameras(store)[3] == saved
    assert national_fields(store, before.id) == national


def test_save_clears_direction_and_stream_url(store: str) -> None:
    before = load_cameras(store)[1]
    saved = save_camera(store, replace(before.as_edit(), direction_deg=None, stream_url=""))
    assert saved.direction_deg is None and saved.stream_url == ""


def test_save_adds_a_new_camera(store: str) -> None:
    edit = CameraEdit(None, "신학초 후문", 37.6650, 127.0425, "서울특별시 도봉구청", "어린이보호",
                      "서울특별시 도봉구 방학동 123", 270.0, 90.0, 80.0, False,
                      "rtsp://10.0.0.5:554/live", "active")
    saved = save_camera(store, edit)
    assert saved.id > 24 and count_cameras(store) == 25
    assert load_cameras(store)[-1] == saved


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
def test_invalid_edits_are_refused_with_the_reason(store: str, changes: dict[str, object],
                                                   reason: str) -> None:
    before = load_cameras(store)[0]
    with pytest.raises(CameraEditError) as err:
        save_camera(store, replace(before.as_edit(), **changes))  # type: ignore[arg-type]
    assert any(reason in p for p in err.value.problems), err.value.problems
    assert load_cameras(store)[0] == before


def test_every_problem_of_an_edit_is_reported_at_once(store: str) -> None:
    edit = replace(load_cameras(store)[0].as_edit(), lat=0.0, fov_deg=0.0, range_m=0.0,
                   stream_url="file:///etc/passwd")
    problems = validate(edit)
    assert len(problems) == 4, problems
    assert "South Korea" in str(CameraEditError(problems))


def test_boundaries_and_unknown_camera(store: str) -> None:
    base = load_cameras(store)[0].as_edit()
    for ok in (replace(base, direction_deg=0.0), replace(base, direction_deg=360.0),
               replace(base, fov_deg=1.0), replace(base, fov_deg=360.0),
               replace(base, range_m=1.0), replace(base, range_m=1000.0),
               replace(base, stream_url="http://127.0.0.1:8560/cam/1.ts")):
        assert validate(ok) == [], ok
    with pytest.raises(CameraEditError, match="camera 999 is no longer in the store"):
        save_camera(store, replace(base, id=999))


def test_import_all_or_nothing_reports_the_rejected_row(store: str, data_dir: Path) -> None:
    path = data_dir / "dobong.csv"
    path.write_text(csv_text([row(1), row(2, lat="abc"), row(3)]), encoding="utf-8")
    seen: list[tuple[int, int]] = []
    report = import_file(store, path, lambda d, t: seen.append((d, t)), allow_partial=False)
    assert not report.committed and report.encoding == "utf-8"
    assert (report.rows_read, report.valid, report.imported) == (3, 2, 0)
    assert report.rejected == [(3, "WGS84위도 'abc' is not a number")]
    assert "line 3: WGS84위도 'abc' is not a number" in report.lines()
    assert seen[0] == (0, 3) and seen[-1] == (3, 3)
    assert count_cameras(store) == 24


def test_import_valid_rows_of_a_cp949_file(store: str, data_dir: Path) -> None:
    path = data_dir / "dobong-cp949.csv"
    path.write_bytes(csv_text([row(1), row(2, lat="37.0", lon="140.0"), row(3)])
                     .encode("cp949"))
    report = import_file(store, path, None, allow_partial=True)
    assert report.committed and report.encoding == "cp949"
    assert report.imported == 2 and report.rejected == [
        (3, "position 37.0, 140.0 is outside South Korea")]
    assert count_cameras(store) == 26
    added = load_cameras(store)[-2:]
    assert [c.agency for c in added] == ["서울특별시 도봉구청"] * 2
    assert added[0].name.startswith("도봉구 방학로 1")


def test_an_unreadable_file_raises(store: str, data_dir: Path) -> None:
    path = data_dir / "bad.csv"
    path.write_text("이름,주소\n가,나\n", encoding="utf-8")
    with pytest.raises(CameraCsvError, match="missing required columns"):
        import_file(store, path, None, allow_partial=False)
    with pytest.raises(CameraCsvError, match="cannot read"):
        import_file(store, data_dir / "absent.csv", None, allow_partial=False)
