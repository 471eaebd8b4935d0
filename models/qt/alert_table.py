"""The alert queue as a Qt table model: presents ``AlertView`` rows.

It exposes a *severity name* (``SeverityRole``), never a colour: the view
maps severities to colours taken from the QSS theme. When a child's latest
fix was a tag read, the place names the reader: it is where to start
looking (a reader's range is tens of metres, a district is kilometres).
"""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import Qt

from models.messages import AlertView
from models.qt.row_table import RowTableModel

SeverityRole = Qt.ItemDataRole.UserRole + 1
AlertIdRole = Qt.ItemDataRole.UserRole + 2

KIND_LABEL = {"sos": "SOS", "zone_exit": "Zone exit", "lost_signal": "Lost signal",
              "not_arrived": "Not arrived", "not_departed": "Not departed"}
COLUMNS = ("Time", "Priority", "Kind", "Child", "Place", "Device", "State")


def severity(a: AlertView) -> str:
    if a.state == "resolved":
        return "resolved"
    if a.state == "acknowledged":
        return "acknowledged"
    return "critical" if a.priority <= 1 else "high"


def place_text(a: AlertView) -> str:
    """The Place column, e.g. "성동구 성수동1가 · reader R001-1 (last known)":
    the reader only when the alert's position is that reader's."""
    text = a.place
    if a.position_from_reader and a.last_reader:
        text += f" · reader {a.last_reader}"
    return f"{text} (last known)" if a.position_is_last_known else text


def tooltip(a: AlertView) -> str:
    lines = [f"Alert {a.id} · {KIND_LABEL.get(a.kind, a.kind)} · {a.zone}",
             f"{a.lat:.5f}, {a.lon:.5f}"]
    if a.last_reader:
        seen = datetime.fromtimestamp(a.last_reader_at).strftime("%H:%M:%S")
        lines.append(f"last seen by reader {a.last_reader} at {seen}")
    return "\n".join(lines)


def cell(a: AlertView, column: int) -> str:
    match column:
        case 0:
            return datetime.fromtimestamp(a.opened_at).strftime("%H:%M:%S")
        case 1:
            return f"P{a.priority}"
        case 2:
            return KIND_LABEL.get(a.kind, a.kind)
        case 3:
            return a.child_token
        case 4:
            return place_text(a)
        case 5:
            return a.device_id
        case 6:
            return f"{a.state} · {a.acked_by}" if a.acked_by else a.state
    return ""


class AlertTableModel(RowTableModel[AlertView]):
    COLUMNS = COLUMNS

    def alert_at(self, row: int) -> AlertView | None:
        return self.row_at(row)

    def cell(self, row: AlertView, column: int) -> str:
        return cell(row, column)

    def role_data(self, row: AlertView, column: int, role: int) -> object:
        if role == SeverityRole:
            return severity(row)
        if role == AlertIdRole:
            return row.id
        if role == Qt.ItemDataRole.ToolTipRole:
            return tooltip(row)
        return None
