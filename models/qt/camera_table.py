"""The camera registry as a Qt table model: presents ``CameraRow`` rows.

A model, not items, because a city has 6,600+ cameras. ``SortRole`` gives
numbers for the numeric columns so a proxy sorts 90° after 9°. What an admin
says about a camera (its ``status``) is shown here; the relay's live states
(live, offline…) travel separately as ``cam.status``.
"""

from __future__ import annotations

from PySide6.QtCore import Qt

from models.camera_admin import CameraRow
from models.qt.row_table import RowTableModel

COLUMNS = ("ID", "Name", "Agency", "Purpose", "Direction", "FOV", "Range", "PTZ", "Status",
           "Stream URL")
SortRole = Qt.ItemDataRole.UserRole + 1


def number_text(value: float) -> str:
    return f"{value:g}"


def cell(r: CameraRow, column: int) -> str:
    match column:
        case 0:
            return str(r.id)
        case 1:
            return r.name
        case 2:
            return r.agency
        case 3:
            return r.purpose
        case 4:
            return "unknown" if r.direction_deg is None else f"{number_text(r.direction_deg)}°"
        case 5:
            return f"{number_text(r.fov_deg)}°"
        case 6:
            return f"{number_text(r.range_m)} m"
        case 7:
            return "PTZ" if r.ptz else ""
        case 8:
            return r.status
        case 9:
            return r.stream_url
    return ""


def sort_key(r: CameraRow, column: int) -> object:
    numbers = {0: r.id, 4: -1.0 if r.direction_deg is None else r.direction_deg,
               5: r.fov_deg, 6: r.range_m, 7: int(r.ptz)}
    return numbers.get(column, cell(r, column))


class CameraTableModel(RowTableModel[CameraRow]):
    COLUMNS = COLUMNS

    def cell(self, row: CameraRow, column: int) -> str:
        return cell(row, column)

    def role_data(self, row: CameraRow, column: int, role: int) -> object:
        if role == SortRole:
            return sort_key(row, column)
        if role == Qt.ItemDataRole.ToolTipRole:
            return f"{row.name}\n{row.address}\n{row.lat:.6f}, {row.lon:.6f}"
        return None
