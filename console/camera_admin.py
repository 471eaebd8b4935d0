"""The camera admin's jobs: list, edit and import cameras in the store.

These are plain functions so they can be tested without Qt and run on a
worker thread (``console.admin_controller``): the GUI thread never queries
the store.  Each job opens its own engine and session and disposes of them,
because a session must never be shared across threads and jobs are rare
(an admin's click), so a pooled connection would buy nothing.

The console does not migrate the schema (the backend owns ``db upgrade``),
so the jobs use ``make_engine`` rather than ``open_store``.

Edits are validated here, not in the form, so every path that writes a
camera (the panel today, a command tomorrow) gets the same checks, and all
the problems of one edit are reported at once.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from db import repositories as repo
from db.importers.cameras import KOREA_LAT, KOREA_LON, ImportReport, import_cameras
from db.store import make_engine, session_factory
from db.tables import Camera
from models.camera_admin import CAMERA_STATUSES, CameraEdit, CameraRow

__all__ = ["CameraEditError", "import_file", "load_cameras", "save_camera", "validate"]

Progress = Callable[[int, int], None]

# Column lengths of db.tables.Camera (PostgreSQL refuses longer values).
_MAX_LEN = {"name": 200, "agency": 120, "purpose": 60, "address": 300, "stream_url": 500}
_LABEL = {"name": "name", "agency": "managing agency", "purpose": "purpose",
          "address": "address", "stream_url": "stream URL"}
STREAM_SCHEMES = ("rtsp", "http", "https")


class CameraEditError(ValueError):
    """An edit that cannot be saved; ``problems`` lists every reason."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems


@contextmanager
def _session(db_url: str) -> Iterator[Session]:
    engine = make_engine(db_url)
    try:
        with session_factory(engine)() as session:
            yield session
    finally:
        engine.dispose()


def row_of(c: Camera) -> CameraRow:
    return CameraRow(id=c.id, name=c.name, lat=c.lat, lon=c.lon, agency=c.agency,
                     purpose=c.purpose, address=c.address, direction_deg=c.direction_deg,
                     fov_deg=c.fov_deg, range_m=c.range_m, ptz=c.ptz,
                     stream_url=c.stream_url, status=c.status)


def load_cameras(db_url: str) -> list[CameraRow]:
    """Every camera in the store, by id."""
    with _session(db_url) as s:
        return [row_of(c) for c in repo.cameras(s)]


def _in(value: float, low: float, high: float) -> bool:
    return math.isfinite(value) and low <= value <= high


def validate(edit: CameraEdit, current_status: str | None = None) -> list[str]:
    """Every reason ``edit`` cannot be stored; empty when it can.

    ``current_status`` is the stored status, kept valid even if it is not
    one the form offers (set by an older version or by hand)."""
    problems: list[str] = []
    texts = {"name": edit.name, "agency": edit.agency, "purpose": edit.purpose,
             "address": edit.address, "stream_url": edit.stream_url}
    if not edit.name.strip():
        problems.append("the name is empty")
    if not edit.agency.strip():
        problems.append("the managing agency is empty")
    for key, text in texts.items():
        if len(text) > _MAX_LEN[key]:
            problems.append(f"the {_LABEL[key]} is longer than {_MAX_LEN[key]} characters")
    lat_ok = _in(edit.lat, *KOREA_LAT)
    lon_ok = _in(edit.lon, *KOREA_LON)
    if _in(edit.lat, *KOREA_LON) and _in(edit.lon, *KOREA_LAT):
        problems.append(f"latitude {edit.lat} and longitude {edit.lon} look swapped")
    else:
        if not lat_ok:
            problems.append(f"latitude {edit.lat} is not in South Korea "
                            f"({KOREA_LAT[0]}–{KOREA_LAT[1]})")
        if not lon_ok:
            problems.append(f"longitude {edit.lon} is not in South Korea "
                            f"({KOREA_LON[0]}–{KOREA_LON[1]})")
    if edit.direction_deg is not None and not _in(edit.direction_deg, 0, 360):
        problems.append(f"view direction {edit.direction_deg} must be 0–360° "
                        "(or empty when unknown)")
    if not _in(edit.fov_deg, 1, 360):
        problems.append(f"field of view {edit.fov_deg} must be 1–360°")
    if not _in(edit.range_m, 1, 1000):
        problems.append(f"range {edit.range_m} must be 1–1000 m")
    problems += _stream_url_problems(edit.stream_url)
    if edit.status not in CAMERA_STATUSES and edit.status != current_status:
        problems.append(f"status {edit.status!r} must be one of {', '.join(CAMERA_STATUSES)}")
    return problems


def _stream_url_problems(url: str) -> list[str]:
    if not url:
        return []
    if any(ch.isspace() for ch in url):
        return ["the stream URL contains spaces"]
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018 -- raises on a bad port
    except ValueError as exc:
        return [f"the stream URL is malformed ({exc})"]
    if parts.scheme.lower() not in STREAM_SCHEMES:
        return ["the stream URL must start with rtsp://, http:// or https://"]
    if not parts.hostname:
        return ["the stream URL has no host"]
    return []


def save_camera(db_url: str, edit: CameraEdit) -> CameraRow:
    """Store ``edit`` (a new camera when ``edit.id`` is None); commits.

    Raises `CameraEditError` with every problem when it cannot be stored.
    Unknown fields of the national layout (pixels, phone, …) are kept."""
    with _session(db_url) as s:
        camera = None if edit.id is None else s.get(Camera, edit.id)
        if edit.id is not None and camera is None:
            raise CameraEditError([f"camera {edit.id} is no longer in the store"])
        problems = validate(edit, camera.status if camera is not None else None)
        if problems:
            raise CameraEditError(problems)
        if camera is None:
            camera = Camera()
            s.add(camera)
        camera.name = edit.name.strip()
        camera.lat, camera.lon = edit.lat, edit.lon
        camera.agency = edit.agency.strip()
        camera.purpose = edit.purpose.strip()
        camera.address = edit.address.strip()
        camera.direction_deg = edit.direction_deg
        camera.fov_deg, camera.range_m, camera.ptz = edit.fov_deg, edit.range_m, edit.ptz
        camera.stream_url, camera.status = edit.stream_url, edit.status
        s.commit()
        return row_of(camera)


def import_file(db_url: str, path: str | Path, progress: Progress | None,
                allow_partial: bool) -> ImportReport:
    """``childsafe import cameras`` from the console: the same importer, so
    the same checks and the same all-or-nothing transaction.

    Raises ``db.importers.cameras.CameraCsvError`` when the file as a whole
    cannot be read."""
    with _session(db_url) as s:
        return import_cameras(s, path, progress, allow_partial=allow_partial)
