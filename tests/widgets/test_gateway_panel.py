"""widgets.gateway_panel: a real panel offscreen, fed gateway heartbeats."""

from __future__ import annotations

from pytestqt.qtbot import QtBot

from widgets.gateway_panel import GatewayPanel

BASE = {"accepted.osmand": 10.0, "accepted.watch": 4.0, "rejected.osmand:duplicate": 2.0,
        "connections.watch": 7.0, "unregistered_devices": 1.0, "journal_seq": 42.0}


def test_panel_says_when_devices_are_told_to_resend(qtbot: QtBot) -> None:
    """An admin reads from the panel whether alarms are acknowledged; the
    words turn to the DEGRADED style while they are not, and back."""
    panel = GatewayPanel()
    qtbot.addWidget(panel)
    panel.show_stats({**BASE, "engine_up": 1.0, "journal_ok": 1.0})
    assert panel.delivery.text().splitlines()[0] == "alarms: acknowledged (engine heard)"
    assert panel.delivery.property("degraded") is False
    assert panel.protocols.item(1, 1).text() == "10"  # osmand accepted
    panel.show_stats({**BASE, "engine_up": 0.0, "journal_ok": 1.0,
                      "alarms_unacknowledged": 3.0})
    assert "NOT acknowledged" in panel.delivery.text()
    assert "alarms not acknowledged: 3" in panel.delivery.text()
    assert panel.delivery.property("degraded") is True
    panel.show_stats({**BASE, "engine_up": 1.0, "journal_ok": 1.0})
    assert panel.delivery.property("degraded") is False
