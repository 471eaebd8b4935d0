"""The camera registry as an admin edits it: list, check, save, import.

The engine runs these for the admin's console (``console.engine.cameras``):
it is the only writer, so these are the only rules.  Every problem of an
edit is reported at once, so the admin fixes the form in one pass.  Each
function works in the caller's session and commits what it writes.
"""

from __future__ import annotations

import math
from urllib.parse import urlsplit

from sqlalchemy.orm import Session

from db import repositories as repo
from db.importers.cameras import KOREA_LAT, KOREA_LON, ImportReport, import_cameras
from db.tables import Camera
from models.camera_admin import CAMERA_STATUSES
from models.messages import CameraEditRecord, CameraRecord

__all__ = ["STREAM_SCHEMES", "CameraEditError", "import_data", "load_cameras", "record_of",
           "save_camera", "validate"]

# Column lengths of db.tables.Camera (PostgreSQL refuses longer values).
_MAX_LEN = {"name": 200, "agency": 120, "purpose": 60, "address": 300, "stream_url": 500}
_LABEL = {"name": "name", "agency": "managing agency", "purpose": "purpose",
          "address": "address", "stream_url": "stream URL"}
STREAM_SCHEMES = ("rtsp", "http", "https")


class CameraEditError(ValueError):
    """An edit that cannot be saved; ``problems`` lists every reason."""

    def __init__(self, problems: list[str], *, missing: bool = False) -> None:
        super().__init__("; ".join(problems))
        self.problems = problems
        self.missing = missing  # the camera edited is no longer in the store


def record_of(c: Camera) -> CameraRecord:
    return CameraRecord(id=c.id, name=c.name, lat=c.lat, lon=c.lon, agency=c.agency,
                        purpose=c.purpose, address=c.address, direction_deg=c.direction_deg,
                        fov_deg=c.fov_deg, range_m=c.range_m, ptz=c.ptz,
                        stream_url=c.stream_url, status=c.status)


def load_cameras(session: Session) -> list[CameraRecord]:
    """Every camera in the store, by id."""
    return [record_of(c) for c in repo.cameras(session)]


def _in(value: float, low: float, high: float) -> bool:
    return math.isfinite(value) and low <= value <= high


def validate(edit: CameraEditRecord, current_status: str | None = None) -> list[str]:
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
        shown = edit.status if len(edit.status) <= 40 else edit.status[:40] + "…"
        problems.append(f"status {shown!r} must be one of {', '.join(CAMERA_STATUSES)}")
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


def save_camera(session: Session, edit: CameraEditRecord) -> CameraRecord:
    """Store ``edit`` (a new camera when ``edit.id`` is None); commits.

    Raises `CameraEditError` with every problem when it cannot be stored.
    Fields of the national layout the form does not show (pixels, phone, …)
    are kept."""
    camera = None if edit.id is None else session.get(Camera, edit.id)
    if edit.id is not None and camera is None:
        raise CameraEditError([f"camera {edit.id} is no longer in the store"], missing=True)
    problems = validate(edit, camera.status if camera is not None else None)
    if problems:
        raise CameraEditError(problems)
    if camera is None:
        camera = Camera()
        session.add(camera)
    camera.name = edit.name.strip()
    camera.lat, camera.lon = edit.lat, edit.lon
    camera.agency = edit.agency.strip()
    camera.purpose = edit.purpose.strip()
    camera.address = edit.address.strip()
    camera.direction_deg = edit.direction_deg
    camera.fov_deg, camera.range_m, camera.ptz = edit.fov_deg, edit.range_m, edit.ptz
    camera.stream_url, camera.status = edit.stream_url, edit.status
    session.commit()
    return record_of(camera)


def import_data(session: Session, filename: str, data: bytes,
                allow_partial: bool) -> ImportReport:
    """``childsafe import cameras`` on a file's content: the same importer,
    so the same checks and the same all-or-nothing transaction.

    Raises ``db.importers.cameras.CameraCsvError`` when the file as a whole
    cannot be read."""
    return import_cameras(session, filename, allow_partial=allow_partial, data=data)
