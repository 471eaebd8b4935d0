"""The alert queue as a Qt table model: presents ``AlertView`` rows.

It exposes a *severity name* (``SeverityRole``), never a colour: the view
maps severities to colours taken from the QSS theme.
"""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt

from models.messages import AlertView

SeverityRole = Qt.ItemDataRole.UserRole + 1
AlertIdRole = Qt.ItemDataRole.UserRole + 2

KIND_LABEL = {"sos": "SOS", "zone_exit": "Zone exit", "lost_signal": "Lost signal",
              "not_arrived": "Not arrived", "not_departed": "Not departed"}
COLUMNS = ("Time", "Priority", "Kind", "Child", "Place", "Device", "State")

Index = QModelIndex | QPersistentModelIndex


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


class AlertTableModel(QAbstractTableModel):
    def __init__(self) -> None:
        super().__init__()
        self._rows: list[AlertView] = []

    def set_rows(self, rows: list[AlertView]) -> None:
        self.beginResetModel()
        self._rows = list(rows)
        self.endResetModel()

    def alert_at(self, row: int) -> AlertView | None:
        return self._rows[row] if 0 <= row < len(self._rows) else None

    def row_of(self, alert_id: int) -> int:
        return next((i for i, a in enumerate(self._rows) if a.id == alert_id), -1)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self._rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(COLUMNS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        a = self.alert_at(index.row())
        if a is None:
            return None
        if role == Qt.ItemDataRole.DisplayRole:
            return cell(a, index.column())
        if role == SeverityRole:
            return severity(a)
        if role == AlertIdRole:
            return a.id
        if role == Qt.ItemDataRole.ToolTipRole:
            return (f"Alert {a.id} · {KIND_LABEL.get(a.kind, a.kind)} · {a.zone}\n"
                    f"{a.lat:.5f}, {a.lon:.5f}")
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return COLUMNS[section]
        return None
