"""The operator's alert queue: a table of alerts and the actions on them.

It only presents and asks: acknowledging emits ``acknowledge_requested``
for the window to send as a command; nothing here writes state.
"""

from __future__ import annotations

import sys
import time

from PySide6.QtCore import QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from models.messages import AlertView
from models.qt.alert_table import COLUMNS, AlertTableModel, SeverityRole
from widgets.severity import SeverityPalette

ACK_SHORTCUT = "F4"


class SeverityDelegate(QStyledItemDelegate):
    def __init__(self, palette: SeverityPalette, parent: QWidget) -> None:
        super().__init__(parent)
        self.palette = palette

    def initStyleOption(self, option: QStyleOptionViewItem,
                        index: QModelIndex | QPersistentModelIndex) -> None:
        super().initStyleOption(option, index)
        sev = index.data(SeverityRole)
        if sev:
            option.backgroundBrush = self.palette.colour(str(sev))
            option.palette.setColor(option.palette.ColorRole.Text, self.palette.colour("text"))


class AlertQueue(QWidget):
    acknowledge_requested = Signal(int)
    locate_requested = Signal(object)  # AlertView

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("alertQueue")
        self.model = AlertTableModel()
        self.severity = SeverityPalette(self)
        self.title = QLabel("Alerts")
        self.title.setObjectName("panelTitle")
        self.table = QTableView()
        self.table.setModel(self.model)
        self.table.setItemDelegate(SeverityDelegate(self.severity, self.table))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        header.setSectionResizeMode(COLUMNS.index("Place"), QHeaderView.ResizeMode.Stretch)
        self.table.doubleClicked.connect(lambda idx: self._locate(idx.row()))
        self.ack_button = QPushButton(f"Acknowledge ({ACK_SHORTCUT})")
        self.ack_button.setObjectName("ackButton")
        self.ack_button.clicked.connect(self.acknowledge_selected)
        self.locate_button = QPushButton("Show on map (Enter)")
        self.locate_button.clicked.connect(lambda: self._locate(self._selected_row()))
        QShortcut(QKeySequence(ACK_SHORTCUT), self, self.acknowledge_selected,
                  context=Qt.ShortcutContext.WindowShortcut)
        QShortcut(QKeySequence(Qt.Key.Key_Return), self.table,
                  lambda: self._locate(self._selected_row()))
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)

        buttons = QHBoxLayout()
        buttons.addWidget(self.title)
        buttons.addStretch(1)
        buttons.addWidget(self.locate_button)
        buttons.addWidget(self.ack_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(buttons)
        layout.addWidget(self.table)
        self._update_buttons()

    def set_alerts(self, rows: list[AlertView]) -> None:
        """Show ``rows`` (already in queue order), keeping the selection."""
        selected = self.selected_alert()
        self.model.set_rows(rows)
        open_count = sum(1 for a in rows if a.state == "open")
        self.title.setText(f"Alerts · {open_count} open" if open_count else "Alerts")
        if selected is not None and (row := self.model.row_of(selected.id)) >= 0:
            self.table.selectRow(row)
        elif rows and selected is None and rows[0].state == "open":
            self.table.selectRow(0)
        self._update_buttons()

    def _selected_row(self) -> int:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else -1

    def selected_alert(self) -> AlertView | None:
        return self.model.alert_at(self._selected_row())

    def acknowledge_selected(self) -> None:
        alert = self.selected_alert()
        if alert is not None and alert.state == "open":
            self.acknowledge_requested.emit(alert.id)

    def _locate(self, row: int) -> None:
        alert = self.model.alert_at(row)
        if alert is not None:
            self.locate_requested.emit(alert)

    def _update_buttons(self) -> None:
        alert = self.selected_alert()
        self.ack_button.setEnabled(alert is not None and alert.state == "open")
        self.locate_button.setEnabled(alert is not None)


def fake_alerts(n: int = 12) -> list[AlertView]:
    """Plausible alerts for running the panel alone."""
    now = time.time()
    places = ["성동구 성수동1가", "구로구 신도림동", "도봉구 방학동"]
    kinds = ["sos", "zone_exit"]
    return [
        AlertView(id=i + 1, kind=kinds[i % 2], priority=1 + i % 2,  # type: ignore[arg-type]
                  state=("open", "acknowledged", "resolved")[i % 3],  # type: ignore[arg-type]
                  child_token=f"C-{0xA13F00 + i * 7919:07X}", child_slot=i,
                  device_id=f"86{i:012d}", lat=37.54, lon=127.03, place=places[i % 3],
                  opened_at=now - i * 97, acked_by="operator1" if i % 3 == 1 else "")
        for i in range(n)
    ]


def main() -> int:
    from PySide6.QtWidgets import QApplication

    from console.theme import apply_theme

    app = QApplication(sys.argv)
    apply_theme(app)
    w = AlertQueue()
    w.set_alerts(fake_alerts())
    w.acknowledge_requested.connect(lambda i: print("acknowledge", i))
    w.resize(900, 400)
    w.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
