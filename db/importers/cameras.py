"""``childsafe import cameras FILE.csv``: the national CCTV standard data.

Municipalities publish their CCTV registry in one layout (전국CCTV표준데이터):
관리기관명, 소재지도로명주소, 소재지지번주소, 설치목적구분, 카메라대수,
카메라화소수, 촬영방면정보, 보관일수, 설치연월, 관리기관전화번호, WGS84위도,
WGS84경도, 데이터기준일자.  Files come as UTF-8 (with or without a BOM) or,
from older portals and Excel, CP949; columns are matched by name in any
order, and columns we do not use (제공기관코드, …) are reported, not fatal.

Every row is checked, and every rejected row is listed with its line
number and reason, so an administrator fixes the file once instead of once
per error.  The import is all or nothing by default: a
registry with holes would silently leave streets without "nearest CCTV".
``allow_partial=True`` (``--partial``) writes the good rows when the
operator has decided the bad ones can wait.

Re-importing is safe: a camera is identified by its agency, position and
name (address, purpose, 촬영방면정보), and a known camera is updated in
place, keeping the stream URL and status an administrator set.

촬영방면정보 is free text ("북측", "남동방향", "45도", "360도", "정면"):
`parse_view_direction` reads compass words and degrees; what it cannot read
becomes "direction unknown", which the ranking treats as omnidirectional
with a reduced preference (see `models.cameras`).
"""

from __future__ import annotations

import csv
import datetime as dt
import io
import math
import re
import sys
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import TextIO

from sqlalchemy import insert, select, update
from sqlalchemy.orm import Session

from db.tables import Camera
from models.cameras import parse_view_direction

__all__ = [
    "COLUMNS",
    "CameraCsvError",
    "CameraRow",
    "ImportReport",
    "import_cameras",
    "read_camera_csv",
    "run_import_cli",
]

Progress = Callable[[int, int], None]

# Header (spaces removed) -> field.  위도/경도: older releases of the layout.
COLUMNS: dict[str, str] = {
    "관리기관명": "agency",
    "소재지도로명주소": "road_address",
    "소재지지번주소": "lot_address",
    "설치목적구분": "purpose",
    "카메라대수": "camera_count",
    "카메라화소수": "pixels",
    "촬영방면정보": "direction",
    "보관일수": "retention_days",
    "설치연월": "installed",
    "관리기관전화번호": "phone",
    "WGS84위도": "lat",
    "WGS84경도": "lon",
    "데이터기준일자": "data_date",
    "위도": "lat",
    "경도": "lon",
}
_HEADER_OF = {
    "agency": "관리기관명", "road_address": "소재지도로명주소", "lot_address": "소재지지번주소",
    "purpose": "설치목적구분", "camera_count": "카메라대수", "pixels": "카메라화소수",
    "direction": "촬영방면정보", "retention_days": "보관일수", "installed": "설치연월",
    "phone": "관리기관전화번호", "lat": "WGS84위도", "lon": "WGS84경도",
    "data_date": "데이터기준일자",
}
REQUIRED = ("agency", "lat", "lon")
# Column lengths of db.tables.Camera: PostgreSQL refuses longer values, SQLite
# would keep them, so check here and reject with a reason on both.
_MAX_LEN = {"agency": 120, "purpose": 60, "address": 300, "pixels": 40, "phone": 40}
_NAME_LEN = 200

# Mainland, Jeju, Ulleungdo and Dokdo, with a margin.
KOREA_LAT = (33.0, 38.9)
KOREA_LON = (124.5, 132.0)

DEFAULT_RANGE_M = 80.0  # faces recognizable at 2 MP; the table's default
PTZ_RANGE_M = 100.0  # a zoom lens reaches further
_CHUNK = 1000
_CAMERAS = Camera.metadata.tables[Camera.__tablename__]


class CameraCsvError(ValueError):
    """The file as a whole cannot be read: encoding, header, CSV syntax."""


@dataclass(frozen=True, slots=True)
class CameraRow:
    """One accepted row, already in the store's units (``db.tables.Camera``)."""

    line: int
    name: str
    lat: float
    lon: float
    agency: str
    purpose: str
    address: str
    direction_deg: float | None
    fov_deg: float
    range_m: float
    ptz: bool
    camera_count: int
    pixels: str
    retention_days: int | None
    installed: str
    phone: str
    data_date: str

    def key(self) -> tuple[str, float, float, str]:
        """Identity across imports: who runs it, where it is, what it is."""
        return camera_key(self.agency, self.lat, self.lon, self.name)

    def values(self) -> dict[str, object]:
        """Column values for ``db.tables.Camera`` (no id, stream URL or status)."""
        return {name: getattr(self, name) for name in _VALUE_FIELDS}


_VALUE_FIELDS = tuple(f.name for f in fields(CameraRow) if f.name != "line")


def camera_key(agency: str, lat: float, lon: float, name: str) -> tuple[str, float, float, str]:
    return (agency, round(lat, 6), round(lon, 6), name)


@dataclass
class ImportReport:
    """What an import did, for the CLI and the admin panel."""

    path: str
    encoding: str = ""
    rows_read: int = 0
    valid: int = 0
    imported: int = 0  # new cameras written
    updated: int = 0  # known cameras refreshed
    rejected: list[tuple[int, str]] = field(default_factory=list)
    unknown_headers: list[str] = field(default_factory=list)
    missing_headers: list[str] = field(default_factory=list)  # optional ones: defaults used
    committed: bool = False
    allow_partial: bool = False

    def lines(self) -> list[str]:
        """A summary an operator reads top to bottom; rejected rows last, each on a line."""
        out = [f"{self.path}: {self.rows_read:,} rows ({self.encoding}), "
               f"{self.valid:,} valid, {len(self.rejected):,} rejected"]
        if self.unknown_headers:
            out.append("ignored unknown columns: " + ", ".join(self.unknown_headers))
        if self.missing_headers:
            out.append("absent optional columns (defaults used): "
                       + ", ".join(self.missing_headers))
        if self.committed:
            out.append(f"imported {self.imported:,} new cameras, updated {self.updated:,}")
        else:
            out.append("nothing imported: fix the rejected rows, or import the valid rows "
                       "with --partial")
        out += [f"line {line}: {reason}" for line, reason in self.rejected]
        return out


# -- reading -----------------------------------------------------------------------


def decode(data: bytes) -> tuple[str, str]:
    """(text, encoding name): UTF-8 with or without BOM, UTF-16 with a BOM
    (Excel's "Unicode text"), else CP949 (EUC-KR and its extension)."""
    candidates: tuple[str, ...]
    if data.startswith(b"\xef\xbb\xbf"):
        candidates = ("utf-8-sig",)
    elif data.startswith((b"\xff\xfe", b"\xfe\xff")):
        candidates = ("utf-16",)
    else:
        candidates = ("utf-8", "cp949")
    errors = []
    for enc in candidates:
        try:
            return unicodedata.normalize("NFC", data.decode(enc)), enc
        except UnicodeDecodeError as exc:
            errors.append(f"{enc}: undecodable bytes at offset {exc.start}")
    raise CameraCsvError("the file is neither UTF-8 nor CP949 (" + "; ".join(errors) + ")")


@dataclass
class _Parsed:
    encoding: str
    columns: dict[str, int]  # field -> column index
    width: int
    records: list[tuple[int, list[str]]]  # (first line number, fields)
    unknown_headers: list[str]
    missing_headers: list[str]


def _header_key(name: str) -> str:
    return re.sub(r"\s+", "", name.strip().strip('"').lstrip("\ufeff"))


def _parse(path: str | Path, data: bytes | None = None) -> _Parsed:
    if data is None:
        try:
            data = Path(path).read_bytes()
        except OSError as exc:
            raise CameraCsvError(f"cannot read {path}: {exc.strerror or exc}") from None
    text, encoding = decode(data)
    first = text.split("\n", 1)[0]
    delimiter = "\t" if first.count("\t") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter)
    records: list[tuple[int, list[str]]] = []
    try:
        header = next(reader, None)
        while header is not None and not any(h.strip() for h in header):
            header = next(reader, None)
        if header is None:
            raise CameraCsvError("the file is empty: no header row")
        header_line = reader.line_num
        start = reader.line_num + 1
        for fields in reader:
            records.append((start, fields))
            start = reader.line_num + 1
    except csv.Error as exc:
        raise CameraCsvError(f"line {reader.line_num}: not valid CSV ({exc})") from None

    columns: dict[str, int] = {}
    unknown: list[str] = []
    for i, raw in enumerate(header):
        key = _header_key(raw)
        name = COLUMNS.get(key) or COLUMNS.get(key.upper())
        if name is None:
            if key:
                unknown.append(raw.strip())
            continue
        if name in columns:
            raise CameraCsvError(f"line {header_line}: column {_HEADER_OF[name]} appears twice "
                                 f"(columns {columns[name] + 1} and {i + 1})")
        columns[name] = i
    missing = [_HEADER_OF[f] for f in REQUIRED if f not in columns]
    if "road_address" not in columns and "lot_address" not in columns:
        missing.append("소재지도로명주소 or 소재지지번주소")
    if missing:
        raise CameraCsvError(f"line {header_line}: missing required columns: "
                             + ", ".join(missing) + " (header: " + ", ".join(header) + ")")
    optional = [h for f, h in _HEADER_OF.items() if f not in columns and f not in REQUIRED
                and f not in ("road_address", "lot_address")]
    return _Parsed(encoding, columns, len(header), records, unknown, optional)


class _Reject(Exception):
    pass


def _int(value: str, header: str, minimum: int) -> int:
    v = value.replace(",", "").removesuffix("대").removesuffix("일").strip()
    if not v.isdigit():
        raise _Reject(f"{header} {value!r} is not a whole number")
    n = int(v)
    if n < minimum:
        raise _Reject(f"{header} {value!r} must be at least {minimum}")
    return n


def _coordinate(value: str, header: str) -> float:
    if not value:
        raise _Reject(f"{header} is empty")
    try:
        v = float(value)
    except ValueError:
        raise _Reject(f"{header} {value!r} is not a number") from None
    if not math.isfinite(v):
        raise _Reject(f"{header} {value!r} is not a number")
    return v


_YM = (re.compile(r"(\d{4})(\d{2})(?:\d{2})?"),
       re.compile(r"(\d{4})\s*[-./년]\s*(\d{1,2})\s*월?(?:\s*[-./]?\s*\d{1,2}\s*일?)?\.?"))
_YMD = re.compile(r"(\d{4})\s*[-./년]?\s*(\d{1,2})\s*[-./월]?\s*(\d{1,2})\s*일?")


def _installed(value: str) -> str:
    """설치연월 as "YYYY-MM" (or "YYYY" when only the year is known)."""
    if not value:
        return ""
    if re.fullmatch(r"\d{4}", value) and 1950 <= int(value) <= 2100:
        return value
    for pattern in _YM:
        m = pattern.fullmatch(value)
        if m and 1950 <= int(m[1]) <= 2100 and 1 <= int(m[2]) <= 12:
            return f"{m[1]}-{int(m[2]):02d}"
    raise _Reject(f"설치연월 {value!r} is not a year and month (e.g. 2015-03 or 201503)")


def _data_date(value: str) -> str:
    """데이터기준일자 as ISO "YYYY-MM-DD"."""
    if not value:
        return ""
    m = _YMD.fullmatch(value)
    try:
        if m is None:
            raise ValueError
        return dt.date(int(m[1]), int(m[2]), int(m[3])).isoformat()
    except ValueError:
        raise _Reject(f"데이터기준일자 {value!r} is not a date (e.g. 2024-05-31)") from None


_SIDO = re.compile(r"^\S+(?:특별시|광역시|특별자치시|특별자치도|도)\s+")


def _row(line: int, fields: list[str], p: _Parsed) -> CameraRow:
    if len(fields) < p.width and len(fields) <= max(p.columns.values()):
        raise _Reject(f"has {len(fields)} of the header's {p.width} columns")
    if len(fields) > p.width and any(f.strip() for f in fields[p.width:]):
        raise _Reject(f"has {len(fields)} values for the header's {p.width} columns")

    def get(name: str) -> str:
        i = p.columns.get(name)
        return fields[i].strip() if i is not None and i < len(fields) else ""

    lat = _coordinate(get("lat"), "WGS84위도")
    lon = _coordinate(get("lon"), "WGS84경도")
    if KOREA_LAT[0] <= lon <= KOREA_LAT[1] and KOREA_LON[0] <= lat <= KOREA_LON[1]:
        raise _Reject(f"WGS84위도 {lat} and WGS84경도 {lon} look swapped")
    if not (KOREA_LAT[0] <= lat <= KOREA_LAT[1] and KOREA_LON[0] <= lon <= KOREA_LON[1]):
        raise _Reject(f"position {lat}, {lon} is outside South Korea")
    agency = get("agency")
    if not agency:
        raise _Reject("관리기관명 is empty")
    road, lot = get("road_address"), get("lot_address")
    address = road or lot
    purpose = get("purpose")
    values = {"agency": agency, "purpose": purpose, "address": address,
              "pixels": get("pixels"), "phone": get("phone")}
    for name, limit in _MAX_LEN.items():
        if len(values[name]) > limit:
            header = _HEADER_OF.get(name, "소재지도로명주소" if road else "소재지지번주소")
            raise _Reject(f"{header} is longer than {limit} characters")
    count_text = get("camera_count")
    camera_count = _int(count_text, "카메라대수", 1) if count_text else 1
    days_text = get("retention_days")
    retention = _int(days_text, "보관일수", 0) if days_text else None
    raw_direction = get("direction")
    view = parse_view_direction(raw_direction)
    label = _SIDO.sub("", address) or f"{lat:.5f}, {lon:.5f}"
    name = " · ".join(s for s in (label, purpose, raw_direction) if s)[:_NAME_LEN]
    return CameraRow(
        line=line, name=name, lat=lat, lon=lon, agency=agency, purpose=purpose,
        address=address, direction_deg=view.deg, fov_deg=view.fov_deg,
        range_m=PTZ_RANGE_M if view.ptz else DEFAULT_RANGE_M, ptz=view.ptz,
        camera_count=camera_count, pixels=values["pixels"], retention_days=retention,
        installed=_installed(get("installed")), phone=values["phone"],
        data_date=_data_date(get("data_date")),
    )


def _rows(p: _Parsed) -> Iterator[CameraRow | tuple[int, str]]:
    """Each record as a CameraRow or a (line, reason) reject; blank lines skipped,
    a camera listed twice rejected the second time."""
    seen: dict[tuple[str, float, float, str], int] = {}
    for line, cells in p.records:
        if not any(c.strip() for c in cells):
            continue
        try:
            row = _row(line, cells, p)
        except _Reject as exc:
            yield (line, str(exc))
            continue
        first = seen.setdefault(row.key(), line)
        if first != line:
            yield (line, f"the same camera as line {first} (agency, position, address, "
                         "purpose and direction)")
            continue
        yield row


def read_camera_csv(
    path: str | Path,
) -> tuple[list[CameraRow], list[tuple[int, str]], list[str]]:
    """Read and check a national-layout CSV without touching the store.

    Returns (accepted rows, rejected (line, reason), unknown headers).
    Raises `CameraCsvError` when the file as a whole is unusable.
    """
    p = _parse(path)
    rows: list[CameraRow] = []
    rejects: list[tuple[int, str]] = []
    for r in _rows(p):
        if isinstance(r, CameraRow):
            rows.append(r)
        else:
            rejects.append(r)
    return rows, rejects, p.unknown_headers


# -- writing -----------------------------------------------------------------------


def import_cameras(
    session: Session,
    path: str | Path,
    progress: Progress | None = None,
    *,
    allow_partial: bool = False,
    data: bytes | None = None,
) -> ImportReport:
    """Check every row of ``path`` and write the cameras in one transaction.

    ``data``, when given, is the file's content (sent by a console to the
    engine); ``path`` then only names it in the report.

    New cameras are inserted, known ones (same agency, position and name)
    updated; stream URL and status are left as an administrator set them.
    Any rejected row means nothing is written (the session is rolled back)
    unless ``allow_partial``.  On success the session is committed.
    ``progress(done, total)`` is called as rows are checked and staged.
    Raises `CameraCsvError` when the file as a whole is unusable.
    """
    p = _parse(path, data)
    report = ImportReport(path=str(path), encoding=p.encoding,
                          unknown_headers=p.unknown_headers, missing_headers=p.missing_headers,
                          allow_partial=allow_partial)
    total = len(p.records)
    existing = {
        camera_key(agency, lat, lon, name): cid
        for cid, agency, lat, lon, name in session.execute(
            select(Camera.id, Camera.agency, Camera.lat, Camera.lon, Camera.name))
    }
    pending: list[CameraRow] = []

    def flush() -> None:
        if report.rejected and not allow_partial:
            pending.clear()  # nothing will be written: stop staging, keep checking
            return
        new = [r.values() for r in pending if r.key() not in existing]
        known = [{"id": existing[r.key()], **r.values()} for r in pending if r.key() in existing]
        if new:
            session.execute(insert(_CAMERAS), [  # Core executemany: no ORM overhead per row
                {**v, "status": "unknown", "stream_url": ""} for v in new])
        if known:
            session.execute(update(Camera), known)
        report.imported += len(new)
        report.updated += len(known)
        pending.clear()

    try:
        done = 0
        if progress is not None:
            progress(0, total)
        for r in _rows(p):
            report.rows_read += 1
            if isinstance(r, CameraRow):
                report.valid += 1
                pending.append(r)
            else:
                report.rejected.append(r)
            done = report.rows_read
            if len(pending) >= _CHUNK:
                flush()
                if progress is not None:
                    progress(done, total)
        flush()
        if report.rejected and not allow_partial:
            session.rollback()
            report.imported = report.updated = 0
        else:
            session.commit()
            report.committed = True
        if progress is not None:
            progress(total, total)
    except BaseException:
        session.rollback()
        raise
    return report


def run_import_cli(
    db_url: str,
    path: str | Path,
    *,
    allow_partial: bool = False,
    out: TextIO | None = None,
    err: TextIO | None = None,
) -> int:
    """The whole ``childsafe import cameras FILE`` command: exit status 0 when
    imported, 1 when rows were rejected and nothing written, 2 when the file
    cannot be read.  Progress goes to ``err``, the report to ``out``."""
    from db.store import open_store

    out = out or sys.stdout
    err = err or sys.stderr
    live = err.isatty()
    shown = [-1]

    def progress(done: int, total: int) -> None:
        pct = 100 * done // total if total else 100
        if pct == shown[0] or (not live and pct // 10 == shown[0] // 10 and done != total):
            return
        shown[0] = pct
        text = f"checking and importing cameras: {done:,}/{total:,} rows ({pct}%)"
        print("\r" + text if live else text, end="" if live else "\n", file=err, flush=True)

    engine, sessions = open_store(db_url)
    try:
        with sessions() as session:
            report = import_cameras(session, path, progress, allow_partial=allow_partial)
    except CameraCsvError as exc:
        print(f"{path}: {exc}", file=err)
        return 2
    finally:
        engine.dispose()
    if live:
        print(file=err)
    print("\n".join(report.lines()), file=out)
    return 0 if report.committed else 1

