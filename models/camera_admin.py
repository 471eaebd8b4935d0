"""What an admin edits about a camera, and what the camera table shows: plain
data for the admin panel (Qt-free), and its conversion to and from the
engine's messages (``CameraEditRecord`` out, ``CameraRecord`` back)."""

from __future__ import annotations

from dataclasses import asdict, dataclass

import msgspec

from models.messages import CameraEditRecord, CameraRecord

CAMERA_STATUSES = ("unknown", "active", "maintenance", "retired")


@dataclass(frozen=True, slots=True)
class CameraEdit:
    """What the admin wants a camera to be; ``id`` None adds a camera."""

    id: int | None
    name: str
    lat: float
    lon: float
    agency: str
    purpose: str
    address: str
    direction_deg: float | None  # None: unknown, ranked as omnidirectional
    fov_deg: float
    range_m: float
    ptz: bool
    stream_url: str
    status: str


@dataclass(frozen=True, slots=True)
class CameraRow:
    """A camera as stored."""

    id: int
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
    stream_url: str
    status: str

    def as_edit(self) -> CameraEdit:
        return CameraEdit(self.id, self.name, self.lat, self.lon, self.agency, self.purpose,
                          self.address, self.direction_deg, self.fov_deg, self.range_m,
                          self.ptz, self.stream_url, self.status)


def edit_record(edit: CameraEdit) -> CameraEditRecord:
    """The edit as ``SaveCamera`` carries it."""
    return CameraEditRecord(**asdict(edit))


def row_of_record(record: CameraRecord) -> CameraRow:
    """A camera from ``CameraRows`` or ``CameraSaved`` as the table shows it."""
    return CameraRow(**msgspec.structs.asdict(record))
