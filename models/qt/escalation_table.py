"""The supervisor's tables as Qt models: escalations with a live countdown,
and the operators' load.

The escalation model keeps the ``now`` it was last given and counts each
row's time left from its deadline, so a tick with the same alerts in the
same order only repaints (the selection stays). Severity is a name
(``SeverityRole``, as in the alert queue), never a colour.
"""

from __future__ import annotations

from datetime import datetime

from PySide6.QtCore import QCoreApplication, Qt

from models.kpi import KIND_TEXT, REASON_TEXT, Escalation, OperatorLoad, clock
from models.qt.alert_table import AlertIdRole, SeverityRole
from models.qt.row_table import RowT, RowTableModel

ESCALATION_COLUMNS = ("Time left", "P", "Kind", "State", "Owner", "Reason", "Place")
LOAD_COLUMNS = ("Operator", "Open alerts", "Escalated", "Signed in since")
COUNTDOWN = ESCALATION_COLUMNS.index("Time left")
_CONTEXT = "EscalationTable"


def _tr(text: str) -> str:
    return QCoreApplication.translate(_CONTEXT, text)


def reason_text(codes: tuple[str, ...]) -> str:
    """The reasons in words (``models.kpi.REASON_TEXT``), translated."""
    return "; ".join(_tr(REASON_TEXT.get(c, c)) for c in codes)


def countdown_text(e: Escalation, now: float) -> str:
    left = e.left_at(now)
    if left is None:
        return _tr("dispatched") if e.alert.state == "dispatched" else "—"
    if left < 0:
        return _tr("%1 overdue").replace("%1", clock(left))
    return _tr("%1 left").replace("%1", clock(left))


def escalation_severity(e: Escalation, now: float) -> str:
    """"critical" for missed or overdue, "high" for at risk (the queue's palette)."""
    left = e.left_at(now)
    return "critical" if e.alert.breaches or (left is not None and left < 0) else "high"


class _KeepingRowModel(RowTableModel[RowT]):
    """Rows recomputed every second: replaced in place when the same ids come
    in the same order, so a view keeps its selection and scroll position."""

    def rows(self) -> list[RowT]:
        return list(self._rows)

    def replace_rows(self, rows: list[RowT]) -> bool:
        """Show ``rows``; returns True when the model had to be reset."""
        if [r.id for r in rows] != [r.id for r in self._rows]:
            self.set_rows(rows)
            return True
        self._rows = list(rows)
        if rows:
            self.dataChanged.emit(self.index(0, 0),
                                  self.index(len(rows) - 1, len(self.COLUMNS) - 1))
        return False


class EscalationTableModel(_KeepingRowModel[Escalation]):
    COLUMNS = ESCALATION_COLUMNS

    def __init__(self) -> None:
        super().__init__()
        self.now = 0.0

    def escalation_at(self, row: int) -> Escalation | None:
        return self.row_at(row)

    def update_rows(self, rows: list[Escalation], now: float) -> bool:
        """Show ``rows`` counted at ``now``; True when the model was reset."""
        self.now = now
        return self.replace_rows(rows)

    def cell(self, row: Escalation, column: int) -> str:
        a = row.alert
        match column:
            case 0:
                return countdown_text(row, self.now)
            case 1:
                return f"P{a.priority}"
            case 2:
                return _tr(KIND_TEXT.get(a.kind, a.kind))
            case 3:
                return _tr(a.state.replace("_", " "))
            case 4:
                return a.owner or _tr("(nobody)")
            case 5:
                return reason_text(row.reasons)
            case 6:
                return a.place
        return ""

    def role_data(self, row: Escalation, column: int, role: int) -> object:
        if role == SeverityRole:
            return escalation_severity(row, self.now)
        if role == AlertIdRole:
            return row.id
        if role == Qt.ItemDataRole.ToolTipRole:
            a = row.alert
            due = {"ack": _tr("acknowledge by"), "close": _tr("resolve or dispatch by")}
            opened = datetime.fromtimestamp(a.opened_at).strftime("%H:%M:%S")
            lines = [f"Alert {a.id} · v{a.version} · {a.child_token}",
                     f"{_tr('opened')} {opened}"]
            if row.due:
                lines.append(f"{due[row.due]} "
                             f"{datetime.fromtimestamp(row.deadline).strftime('%H:%M:%S')}")
            if a.last_note:
                lines.append(a.last_note)
            return "\n".join(lines)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (0, 1):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None


class OperatorLoadModel(_KeepingRowModel[OperatorLoad]):
    COLUMNS = LOAD_COLUMNS

    def load_at(self, row: int) -> OperatorLoad | None:
        return self.row_at(row)

    def cell(self, row: OperatorLoad, column: int) -> str:
        match column:
            case 0:
                return row.user
            case 1:
                return str(row.open_alerts)
            case 2:
                return str(row.escalated)
            case 3:
                if not row.signed_in:
                    return _tr("not signed in")
                return datetime.fromtimestamp(row.signed_in_at).strftime("%H:%M")
        return ""

    def role_data(self, row: OperatorLoad, column: int, role: int) -> object:
        if role == SeverityRole:
            # Open work nobody signed in can do is a supervisor's problem.
            return "critical" if not row.signed_in and row.open_alerts else None
        if role == Qt.ItemDataRole.ToolTipRole:
            return ", ".join(row.roles)
        if role == Qt.ItemDataRole.TextAlignmentRole and column in (1, 2):
            return int(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        return None
