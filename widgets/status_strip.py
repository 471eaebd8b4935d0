"""The console's status bar: bus state, fix rate, children, open alerts."""

from __future__ import annotations

from PySide6.QtWidgets import QLabel, QStatusBar, QWidget


class StatusStrip(QStatusBar):
    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.bus = QLabel("DISCONNECTED")
        self.bus.setObjectName("busState")
        self.bus.setProperty("state", "DISCONNECTED")
        self.bus.setToolTip("LIVE: in step with the engine · DEGRADED: in step, but something "
                            "is held back or down (the reason follows) · STALE: resyncing or "
                            "late heartbeat · DISCONNECTED: no engine heartbeat")
        self.reason = QLabel("")
        self.reason.setObjectName("degradedReason")
        self.reason.hide()
        self.rate = QLabel("0 fixes/s")
        self.children = QLabel("0 children")
        self.alerts = QLabel("0 open alerts")
        self.message = QLabel("")
        self.addWidget(self.bus)
        self.addWidget(self.reason)
        self.addWidget(self.rate)
        self.addWidget(self.children)
        self.addWidget(self.alerts)
        self.addWidget(self.message, 1)

    def show_state(self, state: str, fixes_per_s: float, children: int, open_alerts: int,
                   degraded: list[str] | None = None) -> None:
        why = "; ".join(degraded or []) if state == "DEGRADED" else ""
        if self.reason.text() != why:
            self.reason.setText(why)
            self.reason.setVisible(bool(why))
        if self.bus.property("state") != state:
            self.bus.setText(state)
            self.bus.setProperty("state", state)
            self.bus.style().unpolish(self.bus)
            self.bus.style().polish(self.bus)
        self.rate.setText(f"{fixes_per_s:,.0f} fixes/s")
        self.children.setText(f"{children:,} children")
        self.alerts.setText(f"{open_alerts} open alert{'s' if open_alerts != 1 else ''}")

    def say(self, text: str) -> None:
        self.message.setText(text)
