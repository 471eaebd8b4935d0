"""The window's layout as an operator and an admin use it (no backend needed:
the feed is never started)."""

from __future__ import annotations

from pathlib import Path

from pytestqt.qtbot import QtBot

from console.app import ConsoleWindow
from tests.console.conftest import make_config


def test_the_cameras_tab_takes_the_height_the_grid_gives_back(data_dir: Path,
                                                              qtbot: QtBot) -> None:
    window = ConsoleWindow(make_config(data_dir))
    qtbot.addWidget(window)
    window.resize(1600, 960)
    window.show()
    qtbot.waitExposed(window)
    qtbot.wait(50)
    watching = window.right_split.sizes()
    window.side.setCurrentWidget(window.camera_panel)
    side, grid = window.right_split.sizes()
    assert side > 2 * grid and side + grid == sum(watching)
    window.side.setCurrentWidget(window.gateway)
    assert window.right_split.sizes() == watching
    window.close()
