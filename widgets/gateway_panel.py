"""The gateway status panel: what each device protocol delivered and what
was refused, by reason — the admin's first stop when a device "vanishes"."""

from __future__ import annotations

import sys
import time

from PySide6.QtCore import Qt
from PySide6.QtWidgets import (
    QAbstractItemView,
    QHeaderView,
    QLabel,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from models.gateway_stats import GatewayCounters
from models.messages import UnregisteredView


def _table(headers: list[str]) -> QTableWidget:
    t = QTableWidget(0, len(headers))
    t.setHorizontalHeaderLabels(headers)
    t.verticalHeader().hide()
    t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
    t.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
    t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Stretch)
    return t


def _fill(table: QTableWidget, rows: list[list[str]]) -> None:
    table.setRowCount(len(rows))
    for r, values in enumerate(rows):
        for c, value in enumerate(values):
            item = QTableWidgetItem(value)
            if c > 0 and value.replace(",", "").isdigit():
                item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
            table.setItem(r, c, item)


class GatewayPanel(QWidget):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("gatewayPanel")
        self.protocols = _table(["Protocol", "Accepted", "Rejected", "Connections"])
        self.reasons = _table(["Protocol", "Reason", "Count"])
        self.unregistered = QLabel("Unregistered devices seen: 0")
        self.unregistered_table = _table(["Device id", "Protocol", "Attempts", "Last seen"])
        self.empty = QLabel("Waiting for the gateway's heartbeat…")
        # What devices are being told: acknowledged, or asked to send again.
        self.delivery = QLabel("")
        self.delivery.setObjectName("gatewayDelivery")
        self.delivery.setWordWrap(True)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        title = QLabel("Device intake")
        title.setObjectName("panelTitle")
        layout.addWidget(title)
        layout.addWidget(self.empty)
        layout.addWidget(self.delivery)
        # Room for every protocol (watch, osmand, tag, carrier) without scrolling.
        self.protocols.setMinimumHeight(self.protocols.horizontalHeader().sizeHint().height()
                                        + 5 * self.protocols.verticalHeader().defaultSectionSize())
        layout.addWidget(self.protocols, 0)
        reasons_title = QLabel("Refused input by reason")
        reasons_title.setObjectName("panelTitle")
        layout.addWidget(reasons_title)
        layout.addWidget(self.reasons, 2)
        layout.addWidget(self.unregistered)
        layout.addWidget(self.unregistered_table, 2)
        self._last: dict[str, float] | None = None
        self._last_unregistered: list[UnregisteredView] | None = None

    def show_stats(self, stats: dict[str, float]) -> None:
        if stats is self._last or not stats:
            return
        self._last = stats
        c = GatewayCounters.from_stats(stats)
        self.empty.hide()
        _fill(self.protocols, [
            [p, f"{c.accepted.get(p, 0):,}", f"{c.rejected_total(p):,}",
             f"{c.connections.get(p, 0):,}"] for p in c.protocols()])
        _fill(self.reasons, [[p, reason, f"{n:,}"] for (p, reason), n in
                             sorted(c.rejected.items(), key=lambda kv: -kv[1])])
        self.unregistered.setText(f"Unregistered devices seen: {c.unregistered_devices:,}")
        self.delivery.setText("\n".join(c.delivery()))
        self.delivery.setProperty("degraded", not (c.engine_up and c.journal_ok))
        self.delivery.style().unpolish(self.delivery)
        self.delivery.style().polish(self.delivery)

    def show_unregistered(self, devices: list[UnregisteredView]) -> None:
        """Refused ids, most recent first: register them with
        ``childsafe devices add`` or find out who is sending them."""
        if devices is self._last_unregistered:
            return
        self._last_unregistered = devices
        _fill(self.unregistered_table, [
            [d.device_id, d.protocol, f"{d.attempts:,}",
             time.strftime("%H:%M:%S", time.localtime(d.last_seen))] for d in devices])


def main() -> int:
    from PySide6.QtWidgets import QApplication

    from console.theme import apply_theme

    app = QApplication(sys.argv)
    apply_theme(app)
    panel = GatewayPanel()
    panel.show_stats({
        "accepted.osmand": 120_431, "accepted.watch": 88_002, "accepted.tag": 1_203,
        "rejected.osmand:unregistered_device": 12, "rejected.watch:bad_length": 3,
        "rejected.osmand:coordinate_null_island": 41, "connections.osmand": 4,
        "connections.watch": 1_840, "unregistered_devices": 2,
    })
    panel.show_unregistered([UnregisteredView(device_id="8800000015", protocol="watch",
                                              first_seen=time.time() - 60,
                                              last_seen=time.time(), attempts=4)])
    panel.resize(600, 500)
    panel.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
