"""The alert queue as a Qt table model: presents ``AlertView`` rows.

It exposes a *severity name* (``SeverityRole``), never a colour: the view
maps severities to colours taken from the QSS theme. When a child's latest
fix was a tag read, the place names the reader: it is where to start
looking (a reader's range is tens of metres, a district is kilometres).

Age and SLA count from the ``now`` the model was last given (``tick``), so
a test pins the clock and the window refreshes those two columns once a
second without resetting the model (the selection and scroll stay).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from datetime import datetime

from PySide6.QtCore import QT_TRANSLATE_NOOP, QCoreApplication, Qt

from models.alerts import district
from models.kpi import clock
from models.messages import AlertView
from models.qt.row_table import RowTableModel

SeverityRole = Qt.ItemDataRole.UserRole + 1
AlertIdRole = Qt.ItemDataRole.UserRole + 2

_CONTEXT = "AlertTable"

KIND_LABEL: dict[str, str] = {
    "sos": QT_TRANSLATE_NOOP("AlertTable", "SOS"),
    "fall": QT_TRANSLATE_NOOP("AlertTable", "Fall"),
    "removed": QT_TRANSLATE_NOOP("AlertTable", "Watch off"),
    "zone_exit": QT_TRANSLATE_NOOP("AlertTable", "Zone exit"),
    "low_battery": QT_TRANSLATE_NOOP("AlertTable", "Low battery"),
    "lost_signal": QT_TRANSLATE_NOOP("AlertTable", "Lost signal"),
    "not_arrived": QT_TRANSLATE_NOOP("AlertTable", "Not arrived"),
    "not_departed": QT_TRANSLATE_NOOP("AlertTable", "Not departed"),
    "unusual_movement": QT_TRANSLATE_NOOP("AlertTable", "Unusual movement"),
}
STATE_LABEL: dict[str, str] = {
    "new": QT_TRANSLATE_NOOP("AlertTable", "New"),
    "acknowledged": QT_TRANSLATE_NOOP("AlertTable", "Acknowledged"),
    "in_progress": QT_TRANSLATE_NOOP("AlertTable", "In progress"),
    "on_hold": QT_TRANSLATE_NOOP("AlertTable", "On hold"),
    "dispatched": QT_TRANSLATE_NOOP("AlertTable", "Dispatched"),
    "resolved": QT_TRANSLATE_NOOP("AlertTable", "Resolved"),
}
COLUMNS = ("Age", "P", "Kind", "Child", "Place", "State", "Owner", "Count", "SLA", "Device")
_HEADERS = (
    QT_TRANSLATE_NOOP("AlertTable", "Age"), QT_TRANSLATE_NOOP("AlertTable", "P"),
    QT_TRANSLATE_NOOP("AlertTable", "Kind"), QT_TRANSLATE_NOOP("AlertTable", "Child"),
    QT_TRANSLATE_NOOP("AlertTable", "Place"), QT_TRANSLATE_NOOP("AlertTable", "State"),
    QT_TRANSLATE_NOOP("AlertTable", "Owner"), QT_TRANSLATE_NOOP("AlertTable", "Count"),
    QT_TRANSLATE_NOOP("AlertTable", "SLA"), QT_TRANSLATE_NOOP("AlertTable", "Device"),
)
AGE, PRIORITY, KIND, CHILD, PLACE, STATE, OWNER, COUNT, SLA, DEVICE = range(len(COLUMNS))

# Queue filters (the toggle buttons above the table).
FILTERS = ("all", "mine", "unassigned", "urgent")
PRIORITY_SEVERITY = {1: "critical", 2: "high", 3: "medium", 4: "low"}
# Severity names the delegate looks up on the palette (widgets.alert_queue.QueuePalette).
SEVERITIES = ("critical", "high", "medium", "low", "acknowledged", "onHold", "dispatched",
              "resolved", "escalated")


def tr(text: str) -> str:
    return QCoreApplication.translate(_CONTEXT, text)


def kind_text(kind: str) -> str:
    return tr(KIND_LABEL[kind]) if kind in KIND_LABEL else kind


def state_text(state: str) -> str:
    return tr(STATE_LABEL[state]) if state in STATE_LABEL else state


def age_text(seconds: float) -> str:
    """How long an alert has waited: "m:ss" under an hour, then "h:mm h"."""
    s = max(0, round(seconds))
    if s < 3600:
        return f"{s // 60}:{s % 60:02d}"
    h, rest = divmod(s, 3600)
    return tr("%1 h").replace("%1", f"{h}:{rest // 60:02d}")


def next_deadline(a: AlertView) -> float | None:
    """The SLA deadline the alert runs against now: acknowledging while it is
    new, resolving (or dispatching) until it is dispatched or resolved."""
    if a.state == "new" and a.ack_due:
        return a.ack_due
    if a.state not in ("dispatched", "resolved") and a.close_due:
        return a.close_due
    return None


def sla_text(a: AlertView, now: float) -> str:
    due = next_deadline(a)
    if due is None:
        return "—"
    left = due - now
    if left < 0:
        return tr("overdue %1").replace("%1", clock(left))
    return clock(left)


def severity(a: AlertView) -> str:
    """The row's severity name: open new alerts by priority, escalated ones
    (an SLA missed) above any other state but resolved."""
    if a.state == "resolved":
        return "resolved"
    if a.breaches:
        return "escalated"
    if a.state == "new":
        return PRIORITY_SEVERITY.get(a.priority, "low")
    if a.state == "on_hold":
        return "onHold"
    if a.state == "dispatched":
        return "dispatched"
    return "acknowledged"


def place_text(a: AlertView) -> str:
    """The Place column, e.g. "성동구 성수동1가 · reader R001-1 (last known)":
    the reader only when the alert's position is that reader's."""
    text = a.place
    if a.position_from_reader and a.last_reader:
        text += " · " + tr("reader %1").replace("%1", a.last_reader)
    return text + " " + tr("(last known)") if a.position_is_last_known else text


def tooltip(a: AlertView) -> str:
    head = f"{tr('Alert')} {a.id} · {kind_text(a.kind)}"
    lines = [f"{head} · {a.zone}" if a.zone else head, f"{a.lat:.5f}, {a.lon:.5f}"]
    if a.last_reader:
        seen = datetime.fromtimestamp(a.last_reader_at).strftime("%H:%M:%S")
        lines.append(tr("last seen by reader %1 at %2").replace("%1", a.last_reader)
                     .replace("%2", seen))
    if a.last_note:
        lines.append(tr("Note: %1").replace("%1", a.last_note))
    return "\n".join(lines)


def cell(a: AlertView, column: int, now: float | None = None) -> str:
    now = time.time() if now is None else now
    match column:
        case 0:
            return age_text(now - a.opened_at)
        case 1:
            return f"P{a.priority}"
        case 2:
            return kind_text(a.kind)
        case 3:
            return a.child_token
        case 4:
            return place_text(a)
        case 5:
            return state_text(a.state) + ("" if a.saved else " · " + tr("unsaved"))
        case 6:
            return a.owner
        case 7:
            return f"×{a.count}" if a.count > 1 else ""
        case 8:
            return sla_text(a, now)
        case 9:
            return a.device_id
    return ""


def passes(a: AlertView, mode: str, user: str = "", in_district: str = "") -> bool:
    """Whether ``a`` shows under the queue filter ``mode`` (one of ``FILTERS``)
    and the district filter ("" = every district)."""
    if in_district and district(a) != in_district:
        return False
    match mode:
        case "mine":
            return bool(user) and a.owner == user
        case "unassigned":
            return not a.owner and a.state != "resolved"
        case "urgent":
            return a.priority <= 2 and a.state != "resolved"
    return True


class AlertTableModel(RowTableModel[AlertView]):
    COLUMNS = COLUMNS

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0  # 0: the wall clock at each paint, until ``tick`` pins it

    def alert_at(self, row: int) -> AlertView | None:
        return self.row_at(row)

    def rows(self) -> list[AlertView]:
        return list(self._rows)

    def replace_rows(self, rows: Sequence[AlertView]) -> bool:
        """Show ``rows``: in place when the same ids come in the same order
        (views keep selection and scroll), else by a reset. True on a reset."""
        if [r.id for r in rows] != [r.id for r in self._rows]:
            self.set_rows(list(rows))
            return True
        changed = [i for i, (old, new) in enumerate(zip(self._rows, rows, strict=True))
                   if old is not new and old != new]
        self._rows = list(rows)
        if changed:
            self.dataChanged.emit(self.index(min(changed), 0),
                                  self.index(max(changed), len(COLUMNS) - 1))
        return False

    def tick(self, now: float) -> None:
        """Recount Age and SLA from ``now``: only those two columns repaint."""
        self.now = now
        if self._rows:
            last = len(self._rows) - 1
            for column in (AGE, SLA):
                self.dataChanged.emit(self.index(0, column), self.index(last, column))

    def cell(self, row: AlertView, column: int) -> str:
        return cell(row, column, self.now or time.time())

    def role_data(self, row: AlertView, column: int, role: int) -> object:
        if role == SeverityRole:
            if column == PRIORITY and row.state != "resolved":
                return PRIORITY_SEVERITY.get(row.priority, "low")
            if column == SLA and row.state != "resolved":
                due = next_deadline(row)
                if due is not None and due < (self.now or time.time()):
                    return "escalated"
            return severity(row)
        if role == AlertIdRole:
            return row.id
        if role == Qt.ItemDataRole.ToolTipRole:
            return tooltip(row)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (AGE, PRIORITY, COUNT, SLA):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if (orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole
                and 0 <= section < len(_HEADERS)):
            return tr(_HEADERS[section])
        return super().headerData(section, orientation, role)

