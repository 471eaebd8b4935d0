"""widgets.camera_admin, widgets.import_dialog and console.admin_controller:
real widgets offscreen, a real SQLite store, the controller's real worker
thread.  Only the bus feed is a stub that records the commands sent.

Every SQL statement is watched (SQLAlchemy's ``before_cursor_execute`` on
all engines): none may run on the GUI thread."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QInputMethodEvent
from PySide6.QtWidgets import QApplication, QLineEdit
from pytestqt.qtbot import QtBot
from sqlalchemy import Engine, event

from console.admin_controller import CameraAdmin
from db.seed import seed_demo
from db.seed_cameras import seed_cameras
from db.store import open_store, sqlite_url
from models.messages import AnyMessage, ReloadCameras
from models.qt.camera_table import COLUMNS
from widgets.camera_admin import (
    CameraAdminPanel,
    CameraEdit,
    CameraRow,
    fake_cameras,
)
from widgets.import_dialog import ImportDialog

LEFT = Qt.MouseButton.LeftButton
HEADER = ("관리기관명,소재지도로명주소,소재지지번주소,설치목적구분,카메라대수,카메라화소수,"
          "촬영방면정보,보관일수,설치연월,관리기관전화번호,WGS84위도,WGS84경도,데이터기준일자")


def camera_csv(n: int, bad: dict[int, str]) -> str:
    """``n`` valid rows near Sinhak Elementary; row i (1-based) gets latitude
    ``bad[i]`` instead.  Row i is on line i + 1."""
    lines = [HEADER]
    for i in range(1, n + 1):
        lat = bad.get(i, f"{37.6400 + i * 0.00001:.6f}")
        lines.append(f"서울특별시 도봉구청,서울특별시 도봉구 방학로 {i},,생활방범,1,200,"
                     f"남측,30,2019-04,02-2091-1234,{lat},127.0420,2024-06-30")
    return "\n".join(lines) + "\n"


# ------------------------------------------------------------------------ panel


@pytest.fixture
def panel(qtbot: QtBot) -> CameraAdminPanel:
    p = CameraAdminPanel()
    qtbot.addWidget(p)
    p.resize(900, 700)
    p.show()
    p.show_cameras(fake_cameras(60))
    return p


def type_text(edit: QLineEdit, text: str) -> None:
    """Replace ``edit``'s text as a Korean input method commits it (QTest's
    key clicks are ASCII only)."""
    edit.setFocus()
    edit.selectAll()
    commit = QInputMethodEvent()
    commit.setCommitString(text)
    QApplication.sendEvent(edit, commit)


def select(panel: CameraAdminPanel, camera_id: int) -> None:
    assert panel.select_camera(camera_id)
    assert panel._current is not None and panel._current.id == camera_id


def test_panel_shows_every_camera_with_its_columns(panel: CameraAdminPanel) -> None:
    assert panel.proxy.rowCount() == 60 and panel.proxy.columnCount() == len(COLUMNS)
    assert panel.count.text() == "60 cameras"
    first = [panel.proxy.index(0, c).data() for c in range(len(COLUMNS))]
    cam = panel.model.row_at(0)
    assert cam is not None
    assert first[0] == "1" and first[1] == cam.name and first[2] == cam.agency
    assert first[6] == ("100 m" if cam.ptz else "80 m")


def test_filter_narrows_the_table(panel: CameraAdminPanel, qtbot: QtBot) -> None:
    type_text(panel.filter, "신도림")
    shown = panel.proxy.rowCount()
    assert 0 < shown < 60
    assert all("신도림" in str(panel.proxy.index(r, 1).data()) for r in range(shown))
    assert panel.count.text() == f"{shown} of 60 cameras"
    panel.filter.clear()
    assert panel.proxy.rowCount() == 60


def test_editing_emits_the_edit(panel: CameraAdminPanel, qtbot: QtBot) -> None:
    select(panel, 7)
    assert not panel.save_button.isEnabled()
    type_text(panel.form.name, "방학로 정문")
    panel.form.direction.clear()
    qtbot.keyClicks(panel.form.direction, "225")
    panel.form.range.selectAll()
    qtbot.keyClicks(panel.form.range, "150")
    assert panel.save_button.isEnabled() and panel.revert_button.isEnabled()
    with qtbot.waitSignal(panel.save_requested, timeout=1000) as got:
        qtbot.mouseClick(panel.save_button, LEFT)
    edit = got.args[0]
    assert isinstance(edit, CameraEdit)
    before = panel.model.row_at(panel.model.row_of(7))
    assert before is not None
    assert edit == CameraEdit(7, "방학로 정문", round(before.lat, 6), round(before.lon, 6),
                              before.agency, before.purpose, before.address, 225.0,
                              before.fov_deg, 150.0, before.ptz, before.stream_url,
                              before.status)
    assert not panel.save_button.isEnabled()  # until the controller answers
    panel.show_error("Not saved: range 150.0 must be 1–100 m.")
    assert panel.message.property("kind") == "error"
    assert panel.form.name.text() == "방학로 정문" and panel.save_button.isEnabled()
    panel.show_saved(CameraRow(**{**asdict(edit), "lat": before.lat, "lon": before.lon}))
    assert panel.message.property("kind") == "saved"
    assert panel.proxy.index(panel.proxy.mapFromSource(
        panel.model.index(panel.model.row_of(7), 1)).row(), 1).data() == "방학로 정문"
    assert not panel.save_button.isEnabled()


def test_a_field_that_is_not_a_number_is_not_sent(panel: CameraAdminPanel,
                                                  qtbot: QtBot) -> None:
    select(panel, 3)
    panel.form.lat.selectAll()
    qtbot.keyClicks(panel.form.lat, "north")
    with qtbot.assertNotEmitted(panel.save_requested):
        panel.save()
    assert panel.message.text() == "Latitude 'north' is not a number"
    assert panel.message.property("kind") == "error"
    panel.revert()
    assert panel.form.lat.text() != "north" and not panel.save_button.isEnabled()


def test_new_camera_is_sent_without_an_id(panel: CameraAdminPanel, qtbot: QtBot) -> None:
    qtbot.mouseClick(panel.new_button, LEFT)
    type_text(panel.form.name, "신학초 후문")
    type_text(panel.form.agency, "서울특별시 도봉구청")
    with qtbot.waitSignal(panel.save_requested, timeout=1000) as got:
        panel.save()
    assert got.args[0].id is None and got.args[0].name == "신학초 후문"


# ------------------------------------------------------------------- controller


@dataclass
class StubFeed:
    """Records commands instead of sending them to the engine."""

    sent: list[AnyMessage] = field(default_factory=list)

    def send(self, command: AnyMessage) -> None:
        self.sent.append(command)


@dataclass
class StubConfig:
    db_url: str
    operator: str = "admin7"


@dataclass
class QueryThreads:
    """The thread of every SQL statement run while the test watches."""

    names: list[str] = field(default_factory=list)
    on_main: int = 0

    def __call__(self, *_: object) -> None:
        self.names.append(threading.current_thread().name)
        self.on_main += threading.current_thread() is threading.main_thread()


@pytest.fixture
def queries() -> Iterator[QueryThreads]:
    seen = QueryThreads()
    event.listen(Engine, "before_cursor_execute", seen)
    try:
        yield seen
    finally:
        event.remove(Engine, "before_cursor_execute", seen)


@pytest.fixture
def admin(data_dir: Path, qtbot: QtBot, queries: QueryThreads) -> Iterator[CameraAdmin]:
    url = sqlite_url(data_dir)
    engine, sessions = open_store(url)
    with sessions() as s:
        seed_demo(s, 10)
        seed_cameras(s, lambda i: "rtsp://127.0.0.1:1/x")
    engine.dispose()
    queries.names.clear()
    queries.on_main = 0
    panel = CameraAdminPanel()
    dialog = ImportDialog()
    qtbot.addWidget(panel)
    qtbot.addWidget(dialog)
    controller = CameraAdmin(StubFeed(), StubConfig(url), panel, dialog)
    assert not controller.runner.busy()  # nothing is loaded before the panel is shown
    panel.show()
    try:
        yield controller
    finally:
        assert controller.runner.join(30)
        assert not any(t.name == "camera-admin" for t in threading.enumerate())
        assert queries.on_main == 0, "a query ran on the GUI thread"


def feed(admin: CameraAdmin) -> StubFeed:
    assert isinstance(admin.feed, StubFeed)
    return admin.feed


def test_controller_loads_and_saves_off_the_gui_thread(admin: CameraAdmin, qtbot: QtBot,
                                                       queries: QueryThreads) -> None:
    panel = admin.panel  # shown by the fixture: the first show loads the table
    qtbot.waitUntil(lambda: panel.model.rowCount() == 24, timeout=10_000)
    assert queries.names and set(queries.names) == {"camera-admin"}
    select(panel, 5)
    panel.form.fov.selectAll()
    qtbot.keyClicks(panel.form.fov, "0")
    panel.save()
    qtbot.waitUntil(lambda: panel.message.property("kind") == "error", timeout=10_000)
    assert "field of view 0.0 must be 1–360°" in panel.message.text()
    assert feed(admin).sent == []
    panel.form.fov.selectAll()
    qtbot.keyClicks(panel.form.fov, "45")
    panel.form.stream_url.selectAll()
    qtbot.keyClicks(panel.form.stream_url, "rtsp://10.1.2.3:554/cam5")
    panel.save()
    qtbot.waitUntil(lambda: panel.message.property("kind") == "saved", timeout=10_000)
    assert feed(admin).sent == [ReloadCameras(operator="admin7")]
    row = panel.model.row_at(panel.model.row_of(5))
    assert row is not None and (row.fov_deg, row.stream_url) == (45.0, "rtsp://10.1.2.3:554/cam5")
    admin.registry_changed()  # the engine's cam.registry arrives: the table reloads
    qtbot.waitUntil(lambda: not admin.runner.busy(), timeout=10_000)
    assert queries.on_main == 0


def test_import_dialog_runs_the_import_and_lists_rejected_rows(
        admin: CameraAdmin, qtbot: QtBot, data_dir: Path, queries: QueryThreads) -> None:
    dialog, panel = admin.dialog, admin.panel
    path = data_dir / "dobong.csv"
    path.write_bytes(camera_csv(2500, {7: "abc", 1500: "0"}).encode("cp949"))
    progress: list[tuple[int, int]] = []
    dialog.progress.valueChanged.connect(
        lambda v: progress.append((v, dialog.progress.maximum())))
    admin.open_import()
    dialog.set_path(path)
    qtbot.mouseClick(dialog.import_button, LEFT)
    assert dialog.busy and not dialog.cancel_button.isEnabled()
    dialog.reject()  # Esc while writing: ignored
    assert dialog.isVisible()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=30_000)
    assert any(0 < done < 2500 for done, total in progress if total == 2500), progress
    assert (2500, 2500) in progress
    assert dialog.rejected_rows.rows == [(8, "WGS84위도 'abc' is not a number"),
                                    (1501, "position 0.0, 127.042 is outside South Korea")]
    assert dialog.table.isVisibleTo(dialog) and dialog.rejected_rows.rowCount() == 2
    assert dialog.table.model().index(1, 0).data() == "1501"
    assert dialog.outcome.property("outcome") == "rejected"
    assert "2,500 rows read · 2,498 valid · 2 rejected" in dialog.summary.text()
    assert "cp949" in dialog.summary.text()
    assert dialog.cancel_button.isEnabled() and dialog.cancel_button.text() == "Close"
    assert feed(admin).sent == []  # nothing written, nothing to reload

    dialog.partial.setChecked(True)
    qtbot.mouseClick(dialog.import_button, LEFT)
    qtbot.waitUntil(lambda: not dialog.busy, timeout=30_000)
    assert dialog.outcome.property("outcome") == "partial"
    assert "2,498 new cameras, 0 updated" in dialog.outcome.text()
    assert feed(admin).sent == [ReloadCameras(operator="admin7")]
    qtbot.waitUntil(lambda: panel.model.rowCount() == 24 + 2498, timeout=30_000)
    assert set(queries.names) == {"camera-admin"}


def test_import_dialog_names_the_unknown_columns(admin: CameraAdmin, qtbot: QtBot,
                                                data_dir: Path) -> None:
    """A portal's extra columns (제공기관코드, …) are not fatal, but the admin
    is told they were ignored, beside a successful import."""
    dialog = admin.dialog
    lines = camera_csv(3, {}).splitlines()
    lines = [f"제공기관코드,{lines[0]},비고"] + [f"3100000,{ln},-" for ln in lines[1:]]
    path = data_dir / "portal.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    admin.open_import()
    dialog.set_path(path)
    qtbot.mouseClick(dialog.import_button, LEFT)
    qtbot.waitUntil(lambda: not dialog.busy, timeout=30_000)
    assert dialog.outcome.property("outcome") == "committed"
    assert dialog.headers.isVisibleTo(dialog)
    assert dialog.headers.text() == "Ignored unknown columns: 제공기관코드, 비고"
    assert "3 rows read · 3 valid · 0 rejected" in dialog.summary.text()
    assert feed(admin).sent == [ReloadCameras(operator="admin7")]


def test_import_of_an_unreadable_file_says_why(admin: CameraAdmin, qtbot: QtBot,
                                               data_dir: Path) -> None:
    dialog = admin.dialog
    path = data_dir / "wrong.csv"
    path.write_text("이름,주소\n가,나\n", encoding="utf-8")
    dialog.set_path(path)
    dialog.start()
    qtbot.waitUntil(lambda: not dialog.busy, timeout=10_000)
    assert dialog.outcome.property("outcome") == "error"
    assert "missing required columns" in dialog.outcome.text()
    assert "Nothing was written" in dialog.outcome.text()
    assert feed(admin).sent == []
