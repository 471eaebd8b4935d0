"""Importing the national CCTV standard data: encodings, headers, rejected
rows, all or nothing, re-import, the demo cameras; on SQLite and PostgreSQL
where the store is involved."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db.importers.cameras import (
    CameraCsvError,
    import_cameras,
    read_camera_csv,
    run_import_cli,
)
from db.seed import demo_zones
from db.seed_cameras import DEMO_CAMERAS, seed_cameras
from db.store import open_store, sqlite_url
from db.tables import Camera
from models.geo import to_map

HEADERS = ["관리기관명", "소재지도로명주소", "소재지지번주소", "설치목적구분", "카메라대수",
           "카메라화소수", "촬영방면정보", "보관일수", "설치연월", "관리기관전화번호", "WGS84위도",
           "WGS84경도", "데이터기준일자"]


def row(**over: str) -> dict[str, str]:
    base = {
        "관리기관명": "서울특별시 성동구청", "소재지도로명주소": "서울특별시 성동구 뚝섬로 273",
        "소재지지번주소": "서울특별시 성동구 성수동1가 678-1", "설치목적구분": "어린이보호",
        "카메라대수": "2", "카메라화소수": "200", "촬영방면정보": "남동방향", "보관일수": "30",
        "설치연월": "201503", "관리기관전화번호": "02-2286-5114", "WGS84위도": "37.5444",
        "WGS84경도": "127.0374", "데이터기준일자": "2024-06-30",
    }
    base.update(over)
    return base


GOOD = [
    row(),
    row(**{"소재지도로명주소": "", "촬영방면정보": "360도", "설치연월": "2015-03",
           "WGS84위도": "37.5085", "WGS84경도": "126.8875", "관리기관명": "서울특별시 구로구청"}),
    row(**{"촬영방면정보": "정면", "WGS84위도": "37.6655", "WGS84경도": "127.0420",
           "보관일수": "", "카메라대수": "", "데이터기준일자": "20240630"}),
]


def write_csv(path: Path, rows: list[dict[str, str]], headers: list[str] = HEADERS,
              encoding: str = "utf-8") -> Path:
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=headers, lineterminator="\r\n", extrasaction="ignore")
    w.writeheader()
    w.writerows(rows)
    path.write_bytes(buf.getvalue().encode(encoding))
    return path


def count(sessions: object) -> int:
    with sessions() as s:  # type: ignore[operator]
        return int(s.scalar(select(func.count()).select_from(Camera)))


# -- reading (no store) --------------------------------------------------------------


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "cp949"])
def test_reads_utf8_bom_and_cp949_alike(tmp_path: Path, encoding: str) -> None:
    f = write_csv(tmp_path / "cctv.csv", GOOD, encoding=encoding)
    if encoding == "cp949":
        with pytest.raises(UnicodeDecodeError):
            f.read_bytes().decode("utf-8")  # a real CP949 file, not UTF-8 in disguise
    rows, rejects, unknown = read_camera_csv(f)
    assert rejects == [] and unknown == []
    assert [r.line for r in rows] == [2, 3, 4]
    first, second, third = rows
    assert first.agency == "서울특별시 성동구청"
    assert first.address == "서울특별시 성동구 뚝섬로 273"
    assert (first.direction_deg, first.fov_deg, first.ptz) == (135.0, 90.0, False)
    assert (first.camera_count, first.retention_days, first.installed) == (2, 30, "2015-03")
    assert first.name == "성동구 뚝섬로 273 · 어린이보호 · 남동방향"
    assert second.address == "서울특별시 성동구 성수동1가 678-1"  # road address empty: lot
    assert (second.direction_deg, second.fov_deg, second.ptz) == (None, 360.0, True)
    assert (third.direction_deg, third.ptz) == (None, False)  # "정면": unknown
    assert (third.camera_count, third.retention_days, third.data_date) == (1, None, "2024-06-30")


def test_headers_by_name_in_any_order_and_unknown_ones_reported(tmp_path: Path) -> None:
    headers = ["제공기관코드", *reversed(HEADERS), "제공기관명"]
    headers[headers.index("WGS84위도")] = "WGS84 위도"  # spacing varies between portals
    rows = [{**r, "WGS84 위도": r["WGS84위도"], "제공기관코드": "3030000",
             "제공기관명": "서울특별시 성동구"} for r in GOOD]
    got, rejects, unknown = read_camera_csv(write_csv(tmp_path / "c.csv", rows, headers))
    assert rejects == []
    assert unknown == ["제공기관코드", "제공기관명"]
    assert [(r.lat, r.lon) for r in got] == [(37.5444, 127.0374), (37.5085, 126.8875),
                                             (37.6655, 127.042)]


def test_missing_required_columns_reject_the_file(tmp_path: Path) -> None:
    headers = [h for h in HEADERS if h not in ("WGS84위도", "관리기관명")]
    f = write_csv(tmp_path / "c.csv", GOOD, headers)
    with pytest.raises(CameraCsvError, match=r"missing required columns: 관리기관명, WGS84위도"):
        read_camera_csv(f)
    no_address = [h for h in HEADERS if "주소" not in h]
    with pytest.raises(CameraCsvError, match="소재지도로명주소 or 소재지지번주소"):
        read_camera_csv(write_csv(tmp_path / "d.csv", GOOD, no_address))


def test_optional_columns_may_be_absent(tmp_path: Path) -> None:
    headers = ["관리기관명", "소재지지번주소", "WGS84위도", "WGS84경도"]
    rows, rejects, _ = read_camera_csv(write_csv(tmp_path / "c.csv", GOOD, headers))
    assert rejects == [] and len(rows) == 3
    assert (rows[0].direction_deg, rows[0].camera_count, rows[0].purpose) == (None, 1, "")


def test_every_bad_row_is_listed_with_its_line_and_reason(tmp_path: Path) -> None:
    bad = [
        row(**{"WGS84위도": "abc"}),                                   # line 3
        row(**{"WGS84경도": ""}),                                      # 4
        row(**{"WGS84위도": "0", "WGS84경도": "0"}),                   # 5
        row(**{"WGS84위도": "127.0374", "WGS84경도": "37.5444"}),      # 6
        row(**{"WGS84위도": "nan"}),                                   # 7
        row(**{"카메라대수": "two"}),                                  # 8
        row(**{"설치연월": "03/2015"}),                                # 9
        row(**{"데이터기준일자": "2024-02-30"}),                       # 10
        row(**{"관리기관명": ""}),                                     # 11
        row(**{"설치목적구분": "가" * 61}),                            # 12
    ]
    f = write_csv(tmp_path / "c.csv", [GOOD[0], *bad, GOOD[1]])
    with f.open("a", encoding="utf-8", newline="") as fh:
        fh.write("서울특별시 성동구청,서울특별시 성동구 뚝섬로 1,,생활방범\r\n")  # 14: too short
        fh.write("\r\n")  # a blank line is no row
    f.write_bytes(f.read_bytes() + "\r\n".join([
        ",".join(GOOD[0].values()),   # 16: GOOD[0] again
        ",".join(GOOD[2].values()) + ",extra",  # 17
    ]).encode() + b"\r\n")
    rows, rejects, _ = read_camera_csv(f)
    assert [r.line for r in rows] == [2, 13]
    reasons = dict(rejects)
    assert list(reasons) == [3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 14, 16, 17]
    assert reasons[3] == "WGS84위도 'abc' is not a number"
    assert reasons[4] == "WGS84경도 is empty"
    assert reasons[5] == "position 0.0, 0.0 is outside South Korea"
    assert "look swapped" in reasons[6]
    assert reasons[7] == "WGS84위도 'nan' is not a number"
    assert reasons[8] == "카메라대수 'two' is not a whole number"
    assert reasons[9].startswith("설치연월 '03/2015'")
    assert reasons[10].startswith("데이터기준일자 '2024-02-30'")
    assert reasons[11] == "관리기관명 is empty"
    assert reasons[12] == "설치목적구분 is longer than 60 characters"
    assert reasons[14] == "has 4 of the header's 13 columns"
    assert reasons[16] == "the same camera as line 2 (agency, position, address, purpose " \
                          "and direction)"
    assert reasons[17] == "has 14 values for the header's 13 columns"


def test_line_numbers_count_physical_lines(tmp_path: Path) -> None:
    multi = row(**{"소재지지번주소": "서울특별시 성동구\n성수동1가 678-1"})  # quoted newline
    f = write_csv(tmp_path / "c.csv", [multi, row(**{"WGS84위도": "x"})])
    rows, rejects, _ = read_camera_csv(f)
    assert [r.line for r in rows] == [2]
    assert [line for line, _ in rejects] == [4]


def test_unreadable_files(tmp_path: Path) -> None:
    f = tmp_path / "c.csv"
    f.write_bytes(b"")
    with pytest.raises(CameraCsvError, match="empty"):
        read_camera_csv(f)
    f.write_bytes(b"\xff\xfea\x00b")  # a UTF-16 BOM, then an odd number of bytes
    with pytest.raises(CameraCsvError, match="neither UTF-8 nor CP949"):
        read_camera_csv(f)
    f.write_bytes(b"\xff\xff,\xff\n")
    with pytest.raises(CameraCsvError, match="neither UTF-8 nor CP949"):
        read_camera_csv(f)
    with pytest.raises(CameraCsvError, match="cannot read"):
        read_camera_csv(tmp_path / "missing.csv")
    f.write_text("관리기관명,WGS84위도,WGS84경도,WGS84위도,소재지지번주소\n", encoding="utf-8")
    with pytest.raises(CameraCsvError, match="WGS84위도 appears twice"):
        read_camera_csv(f)


# -- writing to the store ------------------------------------------------------------


def test_import_writes_every_row_and_reports_progress(store_url: str, tmp_path: Path) -> None:
    engine, sessions = open_store(store_url)
    more = [row(**{"WGS84경도": f"{126.5 + i * 1e-4:.4f}"}) for i in range(2500)]
    f = write_csv(tmp_path / "c.csv", GOOD + more)
    calls: list[tuple[int, int]] = []
    with sessions() as s:
        report = import_cameras(s, f, lambda done, total: calls.append((done, total)))
    assert report.committed and report.rejected == []
    assert (report.rows_read, report.valid, report.imported, report.updated) == (2503,) * 3 + (0,)
    assert report.encoding == "utf-8"
    assert calls[0] == (0, 2503) and calls[-1] == (2503, 2503) and len(calls) >= 4
    assert [d for d, _ in calls] == sorted(d for d, _ in calls)
    with sessions() as s:
        cams = list(s.scalars(select(Camera).order_by(Camera.id).limit(3)))
    assert [c.agency for c in cams] == ["서울특별시 성동구청", "서울특별시 구로구청",
                                        "서울특별시 성동구청"]
    assert (cams[0].direction_deg, cams[0].installed, cams[0].status) == (135.0, "2015-03",
                                                                          "unknown")
    assert (cams[1].ptz, cams[1].fov_deg, cams[1].range_m) == (True, 360.0, 100.0)
    assert cams[2].direction_deg is None and cams[2].retention_days is None
    engine.dispose()


def test_all_or_nothing_and_partial(store_url: str, tmp_path: Path) -> None:
    engine, sessions = open_store(store_url)
    rows = [*GOOD, row(**{"WGS84경도": "127,0374"})]
    f = write_csv(tmp_path / "c.csv", rows * 600)  # rejects in every chunk
    with sessions() as s:
        report = import_cameras(s, f)
    assert not report.committed
    assert report.imported == 0 and count(sessions) == 0
    assert report.rejected[0] == (5, "WGS84경도 '127,0374' is not a number")
    assert len(report.rejected) == 2397  # 600 bad coordinates, 1797 repeats of earlier rows
    assert "nothing imported" in "\n".join(report.lines())

    with sessions() as s:
        partial = import_cameras(s, f, allow_partial=True)
    assert partial.committed and partial.imported == 3 and count(sessions) == 3
    engine.dispose()


def test_reimport_updates_in_place_and_keeps_stream_urls(store_url: str,
                                                         tmp_path: Path) -> None:
    engine, sessions = open_store(store_url)
    f = write_csv(tmp_path / "c.csv", GOOD)
    with sessions() as s:
        import_cameras(s, f)
        cam = s.scalars(select(Camera).order_by(Camera.id)).first()
        assert cam is not None
        cam.stream_url, cam.status = "rtsp://127.0.0.1:8554/cam1", "online"
        s.commit()
    f = write_csv(tmp_path / "c.csv", [row(**{"보관일수": "60"}), *GOOD[1:],
                                       row(**{"WGS84위도": "37.55"})])
    with sessions() as s:
        report = import_cameras(s, f)
    assert (report.imported, report.updated) == (1, 3)
    assert count(sessions) == 4
    with sessions() as s:
        cam = s.scalars(select(Camera).order_by(Camera.id)).first()
    assert cam is not None
    assert (cam.retention_days, cam.stream_url, cam.status) == (
        60, "rtsp://127.0.0.1:8554/cam1", "online")
    engine.dispose()


def test_cli_exit_codes_and_report(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'store.sqlite3'}"
    good = write_csv(tmp_path / "good.csv", GOOD, encoding="cp949")
    bad = write_csv(tmp_path / "bad.csv", [*GOOD, row(**{"WGS84위도": ""})])
    out, err = io.StringIO(), io.StringIO()
    assert run_import_cli(url, bad, out=out, err=err) == 1
    assert "line 5: WGS84위도 is empty" in out.getvalue()
    assert "(100%)" in err.getvalue()
    out = io.StringIO()
    assert run_import_cli(url, good, out=out, err=err) == 0
    assert "imported 3 new cameras" in out.getvalue() and "(cp949)" in out.getvalue()
    assert run_import_cli(url, tmp_path / "nope.csv", out=out, err=err) == 2
    assert run_import_cli(url, bad, allow_partial=True, out=out, err=err) == 0


def test_childsafe_import_cameras_reports_unknown_columns(tmp_path: Path) -> None:
    """The real command line (argparse, a process of its own): columns the
    layout does not have are named in the report, and the file still imports."""
    import subprocess
    import sys

    headers = ["제공기관코드", *HEADERS, "비고"]
    rows = [{**r, "제공기관코드": "3030000", "비고": "test"} for r in GOOD]
    path = write_csv(tmp_path / "extra.csv", rows, headers, encoding="cp949")
    root = Path(__file__).resolve().parents[2]
    done = subprocess.run([sys.executable, "-m", "console", "import", "cameras", str(path),
                           "--data-dir", str(tmp_path / "data")], cwd=root,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert lines[0] == f"{path}: 3 rows (cp949), 3 valid, 0 rejected"
    assert "ignored unknown columns: 제공기관코드, 비고" in lines
    assert "imported 3 new cameras, updated 0" in lines
    assert "(100%)" in done.stderr  # progress on stderr, the report on stdout
    engine, sessions = open_store(sqlite_url(tmp_path / "data"))
    try:
        assert count(sessions) == 3
    finally:
        engine.dispose()


def test_demo_cameras_surround_each_zone_and_seed_is_idempotent(store_url: str) -> None:
    rows, rejects, unknown = read_camera_csv(DEMO_CAMERAS)
    assert rejects == [] and unknown == []
    engine, sessions = open_store(store_url)
    with sessions() as s:
        assert seed_cameras(s, lambda i: f"rtsp://127.0.0.1:8554/demo{i}") == len(rows)
        assert seed_cameras(s, lambda i: f"rtsp://127.0.0.1:9554/cam{i}") == 0
        cams = list(s.scalars(select(Camera).order_by(Camera.id)))
    assert len(cams) == len(rows) == 24
    assert all(c.stream_url == f"rtsp://127.0.0.1:9554/cam{c.id}" for c in cams)
    for zone in demo_zones():
        zx, zy = to_map(zone.lat, zone.lon)
        near = [c for c in cams
                if ((to_map(c.lat, c.lon)[0] - zx) ** 2 + (to_map(c.lat, c.lon)[1] - zy) ** 2)
                ** 0.5 <= zone.radius_m]
        assert len(near) == 8, zone.name
        assert any(c.purpose == "어린이보호" for c in near)
        assert any(c.ptz for c in near) and any(c.direction_deg is not None for c in near)
    engine.dispose()
