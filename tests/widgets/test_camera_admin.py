"""widgets.camera_admin, widgets.import_dialog and console.admin_controller:
real widgets offscreen.  The controller talks to the engine only: the feed
is a stub that records the requests sent and numbers them as
``LiveFeed.send`` does, and the tests hand it the engine's answers
(``tests/console/test_camera_admin.py`` runs the real engine).

Every SQL statement is watched (SQLAlchemy's ``before_cursor_execute`` on
all engines): the console runs none at all."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path

import msgspec
import pytest
from PySide6.QtCore import Qt
from PySide6.QtGui import QInputMethodEvent
from PySide6.QtWidgets import QApplication, QLineEdit
from pytestqt.qtbot import QtBot
from sqlalchemy import Engine, event

from console.admin_controller import ANSWER_S, WAITING, CameraAdmin
from models.messages import (
    MAX_IMPORT_BYTES,
    AnyMessage,
    CameraEditRecord,
    CameraImportResult,
    CameraListRequest,
    CameraRecord,
    CameraRows,
    CameraSaved,
    CommandReply,
    ImportCameras,
    SaveCamera,
)
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
    """Records requests instead of sending them; numbers them like ``LiveFeed``."""

    sent: list[AnyMessage] = field(default_factory=list)
    refs: list[int] = field(default_factory=list)

    def send(self, command: AnyMessage) -> int:
        self.sent.append(command)
        self.refs.append(100 + len(self.refs))
        return self.refs[-1]


@dataclass
class QueryThreads:
    """Every SQL statement run while the test watches."""

    count: int = 0

    def __call__(self, *_: object) -> None:
        self.count += 1


@dataclass
class Clock:
    now: float = 1000.0

    def __call__(self) -> float:
        return self.now


TOKEN = "token-of-admin7"


@pytest.fixture
def admin(qtbot: QtBot) -> Iterator[CameraAdmin]:
    queries = QueryThreads()
    event.listen(Engine, "before_cursor_execute", queries)
    panel = CameraAdminPanel()
    dialog = ImportDialog()
    qtbot.addWidget(panel)
    qtbot.addWidget(dialog)
    controller = CameraAdmin(StubFeed(), lambda: TOKEN, panel, dialog, clock=Clock())
    try:
        assert feed(controller).sent == []  # nothing is asked before the panel is shown
        yield controller
    finally:
        event.remove(Engine, "before_cursor_execute", queries)
        assert queries.count == 0, "the console queried the store"


def feed(admin: CameraAdmin) -> StubFeed:
    assert isinstance(admin.feed, StubFeed)
    return admin.feed


def clock(admin: CameraAdmin) -> Clock:
    assert isinstance(admin.clock, Clock)
    return admin.clock


def answer(admin: CameraAdmin, reply: object, nth: int = -1) -> None:
    """The engine's answer to the ``nth`` request sent, as the window hands it on."""
    ref = feed(admin).refs[nth]
    assert admin.on_reply(msgspec.structs.replace(reply, ref=ref))  # type: ignore[type-var]


def records(n: int = 24) -> list[CameraRecord]:
    return [CameraRecord(**asdict(r)) for r in fake_cameras(n)]


def shown_and_loaded(admin: CameraAdmin, rows: list[CameraRecord]) -> CameraAdminPanel:
    admin.panel.show()
    assert feed(admin).sent == [CameraListRequest(token=TOKEN)]
    answer(admin, CameraRows(rows=rows))
    assert admin.panel.model.rowCount() == len(rows) and admin.loaded_once
    return admin.panel


def test_showing_the_panel_asks_the_engine_once(admin: CameraAdmin) -> None:
    panel = admin.panel
    panel.show()
    panel.hide()
    panel.show()  # a second show while the first request is out asks nothing more
    assert feed(admin).sent == [CameraListRequest(token=TOKEN)]
    assert panel.count.text() == "Loading cameras…"
    # Replies that are not the controller's stay with the window.
    assert not admin.on_reply(CommandReply(ok=True, ref=999))
    assert not admin.on_reply(CommandReply(ok=True))
    answer(admin, CameraRows(rows=records()))
    assert panel.count.text() == "24 cameras"
    assert not admin.on_reply(CameraRows(rows=[], ref=feed(admin).refs[0]))  # answered once
    panel.hide()
    panel.show()
    assert len(feed(admin).sent) == 1  # loaded and unchanged: no new request


def test_a_refused_load_says_why_and_showing_again_retries(admin: CameraAdmin) -> None:
    panel = admin.panel
    panel.show()
    answer(admin, CommandReply(ok=False, code="forbidden",
                               error="operator1 (operator) may not do req.cameras"))
    assert panel.count.text() == ("Could not load cameras: operator1 (operator) may not do "
                                  "req.cameras")
    panel.hide()
    panel.show()
    assert feed(admin).sent == [CameraListRequest(token=TOKEN)] * 2


def test_save_sends_the_edit_and_shows_the_engines_answer(admin: CameraAdmin,
                                                          qtbot: QtBot) -> None:
    rows = records()
    panel = shown_and_loaded(admin, rows)
    select(panel, 5)
    panel.form.fov.selectAll()
    qtbot.keyClicks(panel.form.fov, "0")
    panel.save()
    sent = feed(admin).sent[-1]
    assert isinstance(sent, SaveCamera) and sent.token == TOKEN
    assert (sent.edit.id, sent.edit.fov_deg) == (5, 0.0)
    assert panel.message.property("kind") == "busy" and not panel.save_button.isEnabled()
    answer(admin, CommandReply(ok=False, code="bad_value",
                               error="field of view 0.0 must be 1–360°; the stream URL has "
                                     "no host"))
    assert panel.message.property("kind") == "error"
    assert panel.message.text() == ("Not saved: field of view 0.0 must be 1–360°; the stream "
                                    "URL has no host.")
    assert panel.form.fov.text() == "0" and panel.save_button.isEnabled()  # edits kept

    panel.form.fov.selectAll()
    qtbot.keyClicks(panel.form.fov, "45")
    panel.form.stream_url.selectAll()
    qtbot.keyClicks(panel.form.stream_url, "rtsp://10.1.2.3:554/cam5")
    panel.save()
    edit = feed(admin).sent[-1]
    assert isinstance(edit, SaveCamera)
    assert (edit.edit.fov_deg, edit.edit.stream_url) == (45.0, "rtsp://10.1.2.3:554/cam5")
    answer(admin, CameraSaved(row=CameraRecord(**msgspec.structs.asdict(edit.edit))))
    assert panel.message.property("kind") == "saved"
    row = panel.model.row_at(panel.model.row_of(5))
    assert row is not None and (row.fov_deg, row.stream_url) == (45.0, "rtsp://10.1.2.3:554/cam5")
    # The engine reloads its registry itself: the console sends nothing else.
    assert [type(m) for m in feed(admin).sent] == [CameraListRequest, SaveCamera, SaveCamera]
    # The engine publishes the new registry: the shown table asks again, once.
    admin.registry_changed()
    admin.registry_changed()
    assert feed(admin).sent[-1] == CameraListRequest(token=TOKEN)
    assert sum(isinstance(m, CameraListRequest) for m in feed(admin).sent) == 2
    # The change arrived while that request was out: ask again when it is answered.
    answer(admin, CameraRows(rows=rows))
    assert sum(isinstance(m, CameraListRequest) for m in feed(admin).sent) == 3


def test_a_new_camera_is_sent_without_an_id(admin: CameraAdmin, qtbot: QtBot) -> None:
    panel = shown_and_loaded(admin, records())
    qtbot.mouseClick(panel.new_button, LEFT)
    type_text(panel.form.name, "신학초 후문")
    type_text(panel.form.agency, "서울특별시 도봉구청")
    panel.save()
    sent = feed(admin).sent[-1]
    assert isinstance(sent, SaveCamera) and isinstance(sent.edit, CameraEditRecord)
    assert sent.edit.id is None and sent.edit.name == "신학초 후문"
    saved = CameraRecord(**{**msgspec.structs.asdict(sent.edit), "id": 25})
    answer(admin, CameraSaved(row=saved))
    assert panel.model.rowCount() == 25 and panel.message.text() == "Camera 25 saved."


def test_a_registry_change_while_hidden_reloads_when_shown(admin: CameraAdmin) -> None:
    panel = shown_and_loaded(admin, records())
    panel.hide()
    admin.registry_changed()
    assert len(feed(admin).sent) == 1
    panel.show()
    assert feed(admin).sent == [CameraListRequest(token=TOKEN)] * 2


def test_an_unanswered_request_is_reported_and_a_late_answer_shown(admin: CameraAdmin,
                                                                   qtbot: QtBot) -> None:
    panel = shown_and_loaded(admin, records())
    select(panel, 3)
    type_text(panel.form.name, "늦은 답")
    panel.save()
    clock(admin).now += ANSWER_S["save"] - 1
    admin.check_overdue()
    assert panel.message.property("kind") == "busy"
    clock(admin).now += 2
    admin.check_overdue()
    assert panel.message.property("kind") == "error"
    assert "the engine has not answered in 15 s" in panel.message.text()
    assert panel.save_button.isEnabled()
    sent = feed(admin).sent[-1]
    assert isinstance(sent, SaveCamera)
    answer(admin, CameraSaved(row=CameraRecord(**msgspec.structs.asdict(sent.edit))))
    assert panel.message.property("kind") == "saved" and not admin.pending


def camera_result(**over: object) -> CameraImportResult:
    base: dict[str, object] = dict(
        committed=False, accepted=2498, rejected=2, rows_read=2500, encoding="cp949",
        filename="dobong.csv", message="dobong.csv: …; nothing imported.",
        problems=["line 8: WGS84위도 'abc' is not a number",
                  "line 1501: position 0.0, 127.042 is outside South Korea"])
    return CameraImportResult(**{**base, **over})  # type: ignore[arg-type]


def test_import_dialog_sends_the_file_and_lists_rejected_rows(
        admin: CameraAdmin, qtbot: QtBot, data_dir: Path) -> None:
    dialog = admin.dialog
    path = data_dir / "dobong.csv"
    data = camera_csv(2500, {7: "abc", 1500: "0"}).encode("cp949")
    path.write_bytes(data)
    admin.open_import()
    dialog.set_path(path)
    qtbot.mouseClick(dialog.import_button, LEFT)
    assert feed(admin).sent == [ImportCameras(token=TOKEN, filename="dobong.csv", data=data,
                                              allow_partial=False)]
    assert dialog.busy and not dialog.cancel_button.isEnabled()
    assert dialog.progress.maximum() == 0  # busy: the engine gives no count
    assert dialog.phase.text() == WAITING
    dialog.reject()  # Esc while the engine writes: ignored
    assert dialog.isVisible()
    answer(admin, camera_result())
    assert not dialog.busy
    assert dialog.rejected_rows.rows == [(8, "WGS84위도 'abc' is not a number"),
                                         (1501, "position 0.0, 127.042 is outside South Korea")]
    assert dialog.table.isVisibleTo(dialog) and dialog.rejected_rows.rowCount() == 2
    assert dialog.table.model().index(1, 0).data() == "1501"
    assert dialog.rejected_title.text() == "Rejected rows (2)"
    assert dialog.outcome.property("outcome") == "rejected"
    assert dialog.summary.text() == ("dobong.csv · cp949 · 2,500 rows read · 2,498 valid · "
                                     "2 rejected")
    assert dialog.cancel_button.isEnabled() and dialog.cancel_button.text() == "Close"

    dialog.partial.setChecked(True)
    qtbot.mouseClick(dialog.import_button, LEFT)
    sent = feed(admin).sent[-1]
    assert isinstance(sent, ImportCameras) and sent.allow_partial
    answer(admin, camera_result(committed=True, imported=2498, allow_partial=True))
    assert dialog.outcome.property("outcome") == "partial"
    assert "2,498 new cameras, 0 updated" in dialog.outcome.text()


def test_import_dialog_says_when_only_the_first_problems_are_listed(
        admin: CameraAdmin, qtbot: QtBot, data_dir: Path) -> None:
    dialog = admin.dialog
    path = data_dir / "portal.csv"
    path.write_text(camera_csv(3, {}), encoding="utf-8")
    dialog.set_path(path)
    dialog.start()
    answer(admin, camera_result(
        rejected=250, problems=[f"line {n}: bad" for n in range(2, 202)],
        unknown_headers=["제공기관코드", "비고"]))
    assert dialog.rejected_title.text() == "Rejected rows (250; the first 200 listed)"
    assert dialog.rejected_rows.rowCount() == 200
    assert dialog.headers.isVisibleTo(dialog)
    assert dialog.headers.text() == "Ignored unknown columns: 제공기관코드, 비고"


def test_import_of_an_unreadable_file_says_why(admin: CameraAdmin, data_dir: Path) -> None:
    dialog = admin.dialog
    path = data_dir / "wrong.csv"
    path.write_text("이름,주소\n가,나\n", encoding="utf-8")
    dialog.set_path(path)
    dialog.start()
    answer(admin, CameraImportResult(
        committed=False, accepted=0, rejected=0, unreadable=True, filename="wrong.csv",
        problems=["line 1: missing required columns: 관리기관명"],
        message="wrong.csv: line 1: missing required columns: 관리기관명. Nothing was written."))
    assert not dialog.busy and dialog.outcome.property("outcome") == "error"
    assert dialog.outcome.text() == ("wrong.csv: line 1: missing required columns: 관리기관명. "
                                     "Nothing was written.")


def test_import_refusals_are_shown(admin: CameraAdmin, data_dir: Path) -> None:
    dialog = admin.dialog
    path = data_dir / "dobong.csv"
    path.write_text(camera_csv(3, {}), encoding="utf-8")
    dialog.set_path(path)
    dialog.start()
    answer(admin, CommandReply(ok=False, code="forbidden",
                               error="operator1 (operator) may not do cmd.import_cameras"))
    assert dialog.outcome.property("outcome") == "error" and not dialog.busy
    assert dialog.outcome.text() == ("Not imported: operator1 (operator) may not do "
                                     "cmd.import_cameras. Nothing was written.")
    # Too large to send: refused here, nothing goes to the engine.
    huge = data_dir / "huge.csv"
    with open(huge, "wb") as f:
        f.truncate(MAX_IMPORT_BYTES + 1)
    dialog.set_path(huge)
    dialog.start()
    assert not dialog.busy and "huge.csv is 32.0 MiB" in dialog.outcome.text()
    assert "at most 32 MiB" in dialog.outcome.text()
    dialog.set_path(data_dir / "absent.csv")
    dialog.start()
    assert not dialog.busy and dialog.outcome.text().startswith("Cannot read absent.csv")
    assert len(feed(admin).sent) == 1
    # An import the engine does not answer in time.
    dialog.set_path(path)
    dialog.start()
    clock(admin).now += ANSWER_S["import"] + 1
    admin.check_overdue()
    assert not dialog.busy and "has not answered" in dialog.outcome.text()


def test_a_new_session_forgets_the_table(admin: CameraAdmin, data_dir: Path) -> None:
    panel = shown_and_loaded(admin, records())
    panel.hide()
    admin.reset()
    assert panel.model.rowCount() == 0 and not admin.loaded_once
    assert len(feed(admin).sent) == 1
    panel.show()  # the next user's token asks again
    assert feed(admin).sent == [CameraListRequest(token=TOKEN)] * 2
    assert not admin.on_reply(CameraRows(rows=records(), ref=feed(admin).refs[0]))
    # An import out when the session ends leaves no dialog stuck busy.
    path = data_dir / "dobong.csv"
    path.write_text(camera_csv(3, {}), encoding="utf-8")
    admin.dialog.set_path(path)
    admin.dialog.start()
    assert admin.dialog.busy
    admin.reset()
    assert not admin.dialog.busy and "session ended" in admin.dialog.outcome.text()
