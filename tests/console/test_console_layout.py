"""The window's layout as an operator and an admin use it (no backend needed:
the feed is never started): nothing an operator works with may be squeezed
to uselessness by another panel."""

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from console.app import ConsoleWindow
from tests.console.conftest import make_config


def test_queue_panel_map_and_cctv_each_get_room_at_the_demo_size(data_dir: Path,
                                                                 qtbot: QtBot) -> None:
    window = ConsoleWindow(make_config(data_dir))
    qtbot.addWidget(window)
    window.resize(1600, 960)
    window.show()
    qtbot.waitExposed(window)
    qtbot.wait(50)
    table = window.alerts.table
    rows_visible = table.viewport().height() // max(table.verticalHeader().defaultSectionSize(),
                                                    1)
    assert rows_visible >= 6, rows_visible
    assert window.panel.height() >= 450
    assert window.map.width() >= 700 and window.map.height() >= 400
    grid = window.cctv.geometry()
    assert grid.width() >= 700 and grid.height() >= 300, grid
    # Another tab (the admin's registry) has the whole right column.
    window.side.setCurrentWidget(window.camera_panel)
    assert window.camera_panel.height() >= 800
    window.close()
