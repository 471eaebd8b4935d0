"""The alert queue as a Qt table model: presents ``AlertView`` rows.

It exposes a *severity name* (``SeverityRole``), never a colour: the view
maps severities to colours taken from the QSS theme.
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
            return f"{a.place} (last known)" if a.position_is_last_known else a.place
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
            return (f"Alert {row.id} · {KIND_LABEL.get(row.kind, row.kind)} · {row.zone}\n"
                    f"{row.lat:.5f}, {row.lon:.5f}")
        return None
