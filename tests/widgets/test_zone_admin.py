"""widgets.zone_admin, widgets.enrolment_admin, widgets.zone_editor and
console.admin_services_controller: real widgets offscreen on made-up data.

The controller talks to the engine only: the session is a stub that records
each request and hands the tests its reply callback, as ``Session.send``
routes the engine's answer by ``ref``
(``tests/console/test_zone_enrolment_admin.py`` runs the real engine). The
zone editor is driven by real mouse and key events on a real ``MapView``,
zoomed in so that a pixel is well under a metre."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import shapely
from PySide6.QtCore import QPoint, QPointF, Qt
from PySide6.QtWidgets import QApplication, QTabWidget, QWidget
from pytestqt.qtbot import QtBot
from shapely.geometry import Point, Polygon
from sqlalchemy import Engine, event

from console.admin_services_controller import ANSWER_S, AdminServices, zone_request
from models.accounts import may
from models.basemap import Basemap, load_basemap
from models.geo import lonlat_to_map, to_map
from models.messages import (
    AddDevice,
    AnyMessage,
    ChildrenRequest,
    ChildRows,
    ChildSaved,
    CommandReply,
    EnrolChild,
    ExportZones,
    ImportRoster,
    ImportZones,
    RemoveZone,
    RosterImportResult,
    SaveZone,
    ZoneExport,
    ZoneImportResult,
    ZoneSaved,
    ZoneView,
)
from widgets.enrolment_admin import EnrolmentAdminPanel, fake_children
from widgets.map_view import MapView
from widgets.zone_admin import ZoneAdminPanel, ZoneDraft, fake_zones
from widgets.zone_editor import ZoneEditor, ZoneShape

LEFT = Qt.MouseButton.LeftButton
FOREST = (37.5444, 127.0374)  # Seoul Forest


# ------------------------------------------------------------------ fixtures

@pytest.fixture(scope="module")
def seoul() -> Basemap:
    return load_basemap()


@pytest.fixture
def map_view(qtbot: QtBot, seoul: Basemap) -> MapView:
    view = MapView(basemap=seoul)
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    qtbot.waitExposed(view)
    x, y = to_map(*FOREST)
    view.center_on(x, y, 400.0)  # about half a metre a pixel
    return view


@pytest.fixture
def editor(map_view: MapView) -> Iterator[ZoneEditor]:
    editor = ZoneEditor(map_view, map_view)
    yield editor
    editor.clear()


@pytest.fixture(autouse=True)
def no_sql() -> Iterator[list[str]]:
    """The console runs no SQL at all: everything goes through the engine."""
    seen: list[str] = []

    def record(*args: object) -> None:
        seen.append(str(args[2]))

    event.listen(Engine, "before_cursor_execute", record)
    yield seen
    event.remove(Engine, "before_cursor_execute", record)
    assert seen == []


@dataclass
class StubSession:
    """``console.session.Session`` as the controller uses it."""

    roles: frozenset[str] = frozenset({"admin"})
    sent: list[AnyMessage] = field(default_factory=list)
    callbacks: list[Callable[[Any], None] | None] = field(default_factory=list)

    def send(self, command: AnyMessage, on_reply: Callable[[Any], None] | None = None) -> int:
        self.sent.append(command)
        self.callbacks.append(on_reply)
        return len(self.sent)

    def may(self, schema: str) -> bool:
        return may(self.roles, schema)

    def answer(self, reply: object, index: int = -1) -> None:
        callback = self.callbacks[index]
        assert callback is not None
        callback(reply)


@pytest.fixture
def admin(qtbot: QtBot, map_view: MapView
          ) -> Iterator[tuple[AdminServices, StubSession, QTabWidget]]:
    window = QWidget()  # held here: qtbot only keeps a weak reference
    qtbot.addWidget(window)
    tabs = QTabWidget(window)
    session = StubSession()
    services = AdminServices.attach(session, tabs, map_view, window)
    yield services, session, tabs
    services.editor.clear()  # type: ignore[union-attr]
    window.close()


def zone_frame(zones: list[ZoneView], counts: dict[int, tuple[int, int]] | None = None
               ) -> Any:
    @dataclass
    class Frame:
        zones: list[ZoneView] | None
        zone_counts: dict[int, tuple[int, int]] | None
    return Frame(zones, counts)


def click(qtbot: QtBot, view: MapView, x: float, y: float) -> None:
    qtbot.mouseClick(view._gv.viewport(), LEFT, pos=widget_point(view, x, y))


def widget_point(view: MapView, x: float, y: float) -> QPoint:
    p = view.to_widget(x, y) - QPointF(view._gv.viewport().pos())
    return QPoint(round(p.x()), round(p.y()))


def drag(qtbot: QtBot, view: MapView, start: QPoint, end: QPoint, steps: int = 8) -> None:
    """A real drag on the map (pyqtgraph rate-limits moves: they are spaced)."""
    vp = view._gv.viewport()
    qtbot.mouseMove(vp, start)
    qtbot.wait(20)
    qtbot.mousePress(vp, LEFT, pos=start)
    for i in range(1, steps + 1):
        qtbot.wait(20)
        qtbot.mouseMove(vp, start + (end - start) * i / steps)
    qtbot.wait(20)
    qtbot.mouseRelease(vp, LEFT, pos=end)


def metres(shape: ZoneShape) -> np.ndarray:
    """The polygon's corners back on the map grid (open ring)."""
    assert isinstance(shape.geometry, Polygon)
    ring = np.asarray(shape.geometry.exterior.coords)[:-1]
    return lonlat_to_map(ring)


# ------------------------------------------------------------------ the editor

def test_clicked_corners_make_the_polygon_in_wgs84_within_a_metre(
        qtbot: QtBot, map_view: MapView, editor: ZoneEditor) -> None:
    assert map_view.view_box.viewPixelSize()[0] < 0.7
    cx, cy = to_map(*FOREST)
    corners = [(cx - 120.0, cy - 90.0), (cx + 110.0, cy - 100.0), (cx + 130.0, cy + 80.0),
               (cx - 60.0, cy + 120.0)]
    editor.start_drawing()
    assert editor.mode == "drawing" and editor.hint.isVisible()
    for x, y in corners:
        click(qtbot, map_view, x, y)
    assert len(editor.vertices()) == 4
    with qtbot.waitSignal(editor.drawn, timeout=2000) as drawn:
        qtbot.keyClick(map_view._gv, Qt.Key.Key_Return)
    shape: ZoneShape = drawn.args[0]
    assert editor.mode == "editing" and editor.zone_id is None
    assert isinstance(shape.geometry, Polygon) and shape.geometry.is_valid
    got = metres(shape)
    assert np.hypot(*(got - np.array(corners)).T).max() < 1.0
    lon, lat = shape.geometry.exterior.coords[0]
    assert abs(lat - FOREST[0]) < 0.002 and abs(lon - FOREST[1]) < 0.002
    assert json.loads(shape.geojson())["type"] == "Polygon"
    # Enter again asks to store it (the form names it)
    with qtbot.waitSignal(editor.apply_requested, timeout=2000) as applied:
        qtbot.keyClick(map_view._gv, Qt.Key.Key_Return)
    assert applied.args[0] is None and applied.args[1] == shape


def test_a_double_click_finishes_and_backspace_takes_a_corner_back(
        qtbot: QtBot, map_view: MapView, editor: ZoneEditor) -> None:
    cx, cy = to_map(*FOREST)
    editor.start_drawing()
    for dx, dy in ((-100, -100), (100, -100), (150, 150), (0, 50)):
        click(qtbot, map_view, cx + dx, cy + dy)
    qtbot.keyClick(map_view._gv, Qt.Key.Key_Backspace)
    assert len(editor.vertices()) == 3
    with qtbot.waitSignal(editor.drawn, timeout=2000) as drawn:
        # as a mouse sends it: press, release, double-click, release
        # (QTest's double-click alone is the third event only)
        vp, at = map_view._gv.viewport(), widget_point(map_view, cx - 100, cy + 100)
        qtbot.mouseClick(vp, LEFT, pos=at)
        qtbot.mouseDClick(vp, LEFT, pos=at)
        qtbot.mouseRelease(vp, LEFT, pos=at)
    assert len(metres(drawn.args[0])) == 4


def test_escape_cancels_drawing_and_too_few_corners_do_not_close(
        qtbot: QtBot, map_view: MapView, editor: ZoneEditor) -> None:
    cx, cy = to_map(*FOREST)
    editor.start_drawing()
    click(qtbot, map_view, cx, cy)
    click(qtbot, map_view, cx + 100, cy)
    assert not editor.finish()  # two corners are no zone
    assert "three corners" in editor.hint.text()
    with qtbot.waitSignal(editor.cancelled, timeout=2000):
        qtbot.keyClick(map_view._gv, Qt.Key.Key_Escape)
    assert editor.mode == "idle" and editor.shape() is None
    assert not editor.hint.isVisible() and not editor._line.isVisible()
    click(qtbot, map_view, cx, cy)  # idle: clicks draw nothing
    assert len(editor.vertices()) == 0


def test_dragging_a_corner_reshapes_and_dragging_inside_moves(
        qtbot: QtBot, map_view: MapView, editor: ZoneEditor) -> None:
    cx, cy = to_map(*FOREST)
    square = np.array([(cx - 100, cy - 100), (cx + 100, cy - 100), (cx + 100, cy + 100),
                       (cx - 100, cy + 100)])
    from widgets.zone_editor import polygon_from_map
    assert editor.edit(7, polygon_from_map(square), centre=False)
    assert editor.mode == "editing" and editor.zone_id == 7
    start = widget_point(map_view, *square[2])
    drag(qtbot, map_view, start, start + QPoint(40, -30))
    shape = editor.shape()
    assert shape is not None
    moved = metres(shape)
    want = map_view.from_widget(QPointF(start + QPoint(40, -30))
                                + QPointF(map_view._gv.viewport().pos()))
    assert np.hypot(*(moved[2] - want)) < 1.0
    assert np.hypot(*(moved[[0, 1, 3]] - square[[0, 1, 3]]).T).max() < 0.05
    # drag from inside: every corner moves by the same offset
    before = metres(shape)
    inside = widget_point(map_view, cx - 20, cy - 20)
    drag(qtbot, map_view, inside, inside + QPoint(-50, 0))
    after = metres(editor.shape())  # type: ignore[arg-type]
    shift = after - before
    assert np.allclose(shift, shift[0], atol=0.05)
    px = map_view.view_box.viewPixelSize()[0]
    assert shift[0][0] == pytest.approx(-50 * px, abs=1.0) and abs(shift[0][1]) < 0.05
    with qtbot.waitSignal(editor.delete_requested, timeout=2000) as deleted:
        qtbot.keyClick(map_view._gv, Qt.Key.Key_Delete)
    assert deleted.args == [7]
    qtbot.keyClick(map_view._gv, Qt.Key.Key_Escape)
    assert editor.mode == "idle" and editor.vertices().shape == (0, 2)


def test_a_circle_moves_by_dragging_it(qtbot: QtBot, map_view: MapView,
                                       editor: ZoneEditor) -> None:
    shape = ZoneShape(Point(FOREST[1], FOREST[0]), 120.0)
    assert editor.edit(3, shape, centre=False)
    cx, cy = to_map(*FOREST)
    start = widget_point(map_view, cx + 30, cy + 30)
    drag(qtbot, map_view, start, start + QPoint(0, 60))
    moved = editor.shape()
    assert moved is not None and isinstance(moved.geometry, Point)
    assert moved.radius_m == pytest.approx(120.0, abs=0.1)
    x, y = to_map(moved.geometry.y, moved.geometry.x)
    px = map_view.view_box.viewPixelSize()[1]
    assert x == pytest.approx(cx, abs=0.5) and y == pytest.approx(cy - 60 * px, abs=1.0)


def test_a_polygon_with_holes_is_not_edited_on_the_map(editor: ZoneEditor) -> None:
    outer = Point(FOREST[1], FOREST[0]).buffer(0.003)
    holed = Polygon(outer.exterior.coords, [Point(FOREST[1], FOREST[0]).buffer(0.001)
                                            .exterior.coords])
    assert not editor.edit(1, ZoneShape(holed))
    assert editor.mode == "idle"


# ------------------------------------------------------------------- the panel

@pytest.fixture
def zones(qtbot: QtBot) -> ZoneAdminPanel:
    panel = ZoneAdminPanel()
    qtbot.addWidget(panel)
    panel.resize(780, 860)
    panel.show()
    panel.show_zones(fake_zones())
    panel.show_counts({1: (412, 9), 2: (118, 0)})
    return panel


def cell(panel: ZoneAdminPanel, row: int, column: str) -> str:
    model = panel.proxy
    return str(model.data(model.index(row, panel.model.HEADERS.index(column))))


def test_the_zone_table_shows_the_registry_and_counts(zones: ZoneAdminPanel) -> None:
    assert zones.proxy.rowCount() == 4 and zones.count.text() == "4 zones"
    names = [cell(zones, r, "Name") for r in range(4)]
    assert names == sorted(names)
    forest = names.index("서울숲")
    assert cell(zones, forest, "Inside") == "412 · 9 ?"
    assert cell(zones, forest, "Shape") == "circle 500 m"
    assert cell(zones, names.index("서울숲 놀이터"), "Shape") == "polygon"
    assert cell(zones, names.index("신학초등학교"), "Inside") == "—"
    zones.filter.setText("school")
    assert zones.proxy.rowCount() == 2 and zones.count.text() == "2 of 4 zones"


def test_an_edit_is_a_draft_and_keeps_the_shape_unless_changed(
        qtbot: QtBot, zones: ZoneAdminPanel) -> None:
    assert zones.select_zone(1)
    assert zones.form.name.text() == "서울숲" and zones.form.radius.text() == "500"
    assert not zones.save_button.isEnabled()
    zones.form.hours.setText("06:00-23:00")
    zones.form.hours.textEdited.emit("06:00-23:00")
    with qtbot.waitSignal(zones.save_requested) as saved:
        zones.save_button.click()
    draft: ZoneDraft = saved.args[0]
    assert (draft.zone_id, draft.hours, draft.shape, draft.version) == (1, "06:00-23:00",
                                                                        None, 3)
    request = zone_request(draft)
    assert request.zone_version == 3 and request.geometry == "" and request.lat is None
    zones.show_error("Not saved: zone '서울숲': hours: nope")
    assert zones.form.hours.text() == "06:00-23:00" and zones.save_button.isEnabled()
    assert zones.message.property("kind") == "error"
    # a typed radius is a new circle
    zones.form.radius.setText("450")
    zones.form.radius.textEdited.emit("450")
    with qtbot.waitSignal(zones.save_requested) as saved:
        zones.save()
    draft = saved.args[0]
    assert draft.shape is not None and draft.shape.radius_m == 450.0
    request = zone_request(draft)
    assert (request.lat, request.lon, request.radius_m) == pytest.approx(
        (37.5444, 127.0374, 450.0))
    zones.form.radius.setText("four")
    zones.save_button.setEnabled(True)
    zones._saving = False
    zones.save()
    assert "Radius 'four' is not a number" in zones.message.text()


def test_delete_asks_first(qtbot: QtBot, zones: ZoneAdminPanel) -> None:
    zones.select_zone(3)
    asked: list[str] = []
    zones.confirm = lambda text: asked.append(text) or False  # type: ignore[method-assign]
    with qtbot.assertNotEmitted(zones.delete_requested):
        zones.delete_button.click()
    zones.confirm = lambda text: True  # type: ignore[method-assign]
    with qtbot.waitSignal(zones.delete_requested) as deleted:
        zones.delete_button.click()
    assert deleted.args == [3, 2] and "신학초등학교" in asked[0]
    zones.show_removed(3)
    assert zones.model.row_of(3) == -1 and "deleted" in zones.message.text()


# --------------------------------------------------------------- the controller

def test_a_drawn_zone_is_named_saved_and_comes_back_through_the_registry(
        qtbot: QtBot, admin: tuple[AdminServices, StubSession, QTabWidget],
        map_view: MapView) -> None:
    services, session, tabs = admin
    assert all(tabs.isTabVisible(i) for i in range(tabs.count()))
    services.on_frame(zone_frame(fake_zones(), {1: (3, 0)}))
    panel, editor = services.zones, services.editor
    assert editor is not None
    panel.draw_button.click()
    assert editor.mode == "drawing"
    cx, cy = to_map(*FOREST)
    for dx, dy in ((-80, -80), (90, -70), (60, 100)):
        click(qtbot, map_view, cx + dx, cy + dy)
    qtbot.keyClick(map_view._gv, Qt.Key.Key_Return)
    assert panel.form.title() == "New zone" and "3 corners" in panel.form.shape_text.text()
    panel.form.name.setText("성수 놀이터")
    panel.form.kind.setCurrentText("park")
    qtbot.keyClick(map_view._gv, Qt.Key.Key_Return)  # Enter on the map saves
    request = session.sent[-1]
    assert isinstance(request, SaveZone) and request.zone_id is None
    assert request.name == "성수 놀이터" and request.kind == "park"
    assert json.loads(request.geometry)["type"] == "Polygon"
    assert not panel.save_button.isEnabled()  # saving
    session.answer(CommandReply(ok=False, code="bad_value",
                                error="zone '성수 놀이터': area 80 m² is smaller than 100 m²"))
    assert "smaller than 100 m²" in panel.message.text()
    assert editor.mode == "editing"  # still there to fix
    view = ZoneView(id=9, name="성수 놀이터", kind="park", lat=37.5444, lon=127.0374,
                    radius_m=120.0, shape=request.geometry, district="성동구")
    panel.save()
    session.answer(ZoneSaved(zone=view))
    assert editor.mode == "idle"
    assert panel.current_zone() == view and "saved" in panel.message.text()
    services.on_frame(zone_frame([*fake_zones(), view]))
    assert panel.model.row_of(9) >= 0 and panel.current_zone() == view


def test_edit_on_map_then_enter_saves_the_moved_zone(
        qtbot: QtBot, admin: tuple[AdminServices, StubSession, QTabWidget],
        map_view: MapView) -> None:
    services, session, _ = admin
    services.on_frame(zone_frame(fake_zones()))
    panel, editor = services.zones, services.editor
    assert editor is not None
    panel.select_zone(4)
    panel.map_button.click()
    assert editor.mode == "editing" and editor.zone_id == 4
    ring = editor.vertices()
    start = widget_point(map_view, *ring.mean(axis=0))
    drag(qtbot, map_view, start, start + QPoint(30, 0))
    qtbot.keyClick(map_view._gv, Qt.Key.Key_Return)
    request = session.sent[-1]
    assert isinstance(request, SaveZone) and request.zone_id == 4 and request.zone_version == 1
    moved = np.asarray(json.loads(request.geometry)["coordinates"][0])
    old = np.asarray(json.loads(fake_zones()[3].shape)["coordinates"][0])
    shift = lonlat_to_map(moved[:-1]) - lonlat_to_map(old[:-1])
    assert np.allclose(shift[:, 1], 0.0, atol=0.05) and (shift[:, 0] > 5).all()
    # Esc while another zone's shape is edited puts it back
    panel.select_zone(1)
    panel.map_button.click()
    qtbot.keyClick(map_view._gv, Qt.Key.Key_Escape)
    assert editor.mode == "idle" and not panel.save_button.isEnabled()


def test_delete_export_and_import_go_through_the_engine(
        qtbot: QtBot, admin: tuple[AdminServices, StubSession, QTabWidget],
        tmp_path: Path) -> None:
    services, session, _ = admin
    services.on_frame(zone_frame(fake_zones()))
    panel = services.zones
    panel.confirm = lambda text: True  # type: ignore[method-assign]
    panel.select_zone(2)
    panel.delete_button.click()
    assert session.sent[-1] == RemoveZone(token="", zone_id=2, zone_version=1)
    session.answer(CommandReply(ok=False, code="in_use", error="zone '신도림초등학교' is "
                                "still used by 10 child(ren): move them to another zone first"))
    assert "Not deleted: zone '신도림초등학교' is still used by 10 child(ren)" in \
        panel.message.text()

    out = tmp_path / "zones.geojson"
    panel.ask_export_path = lambda: str(out)  # type: ignore[method-assign]
    panel.export_button.click()
    assert isinstance(session.sent[-1], ExportZones)
    session.answer(ZoneExport(geojson='{"type": "FeatureCollection", "features": []}',
                              zones=0))
    assert json.loads(out.read_text())["type"] == "FeatureCollection"
    assert str(out) in panel.message.text()

    source = tmp_path / "in.geojson"
    source.write_text('{"type": "FeatureCollection", "features": []}')
    dialog = services.zone_import
    panel.import_button.click()
    assert dialog.isVisible()
    dialog.set_path(source)
    dialog.import_button.click()
    request = session.sent[-1]
    assert isinstance(request, ImportZones) and request.filename == "in.geojson"
    assert dialog.busy and not dialog.close_button.isEnabled()
    session.answer(ZoneImportResult(committed=False, message="in.geojson: 2 problems; "
                                    "nothing was imported.", problem_count=2, problems=[
                                        "features[0] 'A': no geometry",
                                        "features[1] 'B': kind 'mall' is not one of school"]))
    assert not dialog.busy and dialog.table.isVisible()
    assert dialog.problems.rows == [(0, "features[0] 'A': no geometry"),
                                    (0, "features[1] 'B': kind 'mall' is not one of school")]
    assert dialog.table.isColumnHidden(0)  # no line numbers to show
    dialog.set_path(tmp_path / "missing.geojson")
    dialog.import_button.click()
    assert "Cannot read missing.geojson" in dialog.outcome.text()
    dialog.close()


def test_enrolment_lists_on_show_and_enrols(
        qtbot: QtBot, admin: tuple[AdminServices, StubSession, QTabWidget]) -> None:
    services, session, tabs = admin
    services.on_frame(zone_frame(fake_zones()))
    panel = services.enrolment
    assert [panel.school.itemText(i) for i in range(panel.school.count())][:2] == [
        "신도림초등학교", "신학초등학교"]  # schools first
    assert not any(isinstance(m, ChildrenRequest) for m in session.sent)  # not at start
    tabs.window().show()
    tabs.setCurrentWidget(panel)
    qtbot.waitUntil(lambda: any(isinstance(m, ChildrenRequest) for m in session.sent))
    rows = fake_children(12)
    session.answer(ChildRows(rows=rows, total=12))
    assert panel.model.rowCount() == 12 and panel.count.text() == "12 children"
    panel.name.setText("김새싹")
    panel.school.setCurrentText("신학초등학교")
    panel.device_id.setText("W-777")
    panel.device_kind.setCurrentText("watch")
    panel.enrol_button.click()
    request = session.sent[-1]
    assert request == EnrolChild(token="", name="김새싹", school="신학초등학교",
                                 profile="walking", device_id="W-777", device_kind="watch")
    assert not panel.enrol_button.isEnabled()
    new = rows[0].__class__(token="C-1234567", name="김새싹", school="신학초등학교",
                            profile="walking", devices=["W-777"], device_kinds=["watch"],
                            guardians=[], consent="no consent")
    session.answer(ChildSaved(child=new, message="Enrolled C-1234567 at 신학초등학교."))
    assert panel.selected_token() == "C-1234567" and panel.enrol_button.isEnabled()
    panel.new_device.setText("P-1")
    panel.new_kind.setCurrentText("phone")
    panel.add_device_button.click()
    assert session.sent[-1] == AddDevice(token="", child="C-1234567", device_id="P-1",
                                         kind="phone")
    session.answer(CommandReply(ok=False, code="bad_value",
                                error="device P-1 is already registered"))
    assert "Device not changed: device P-1 is already registered" in panel.message.text()
    panel.search.setText("김")
    qtbot.waitUntil(lambda: session.sent[-1] == ChildrenRequest(token="", search="김"))


def test_a_roster_import_shows_its_problems_by_line(
        qtbot: QtBot, admin: tuple[AdminServices, StubSession, QTabWidget],
        tmp_path: Path) -> None:
    services, session, _ = admin
    services.on_frame(zone_frame(fake_zones()))
    csv = tmp_path / "roster.csv"
    csv.write_text("name,school\n", encoding="utf-8")
    dialog = services.roster_import
    services.enrolment.import_button.click()
    services.roster_school.setCurrentText("신학초등학교")
    dialog.set_path(csv)
    dialog.import_button.click()
    request = session.sent[-1]
    assert isinstance(request, ImportRoster) and request.school == "신학초등학교"
    assert request.data == b"name,school\n"
    session.answer(RosterImportResult(
        committed=False, message="roster.csv: 2 problems; nothing was imported.",
        problem_count=2, problems=["line 3: device_kind: must be one of watch, phone, tag, "
                                   "not 'band'", "line 7: consent: missing"]))
    assert dialog.problems.rows == [
        (3, "device_kind: must be one of watch, phone, tag, not 'band'"),
        (7, "consent: missing")]
    assert not dialog.table.isColumnHidden(0)
    assert dialog.outcome.property("outcome") == "rejected"
    dialog.start()
    session.answer(RosterImportResult(committed=True, message="roster.csv: 3 children "
                                      "enrolled.", enrolled=3))
    assert dialog.outcome.property("outcome") == "committed"
    assert isinstance(session.sent[-1], ChildrenRequest)  # the table is read again
    dialog.close()


def test_a_new_session_forgets_names_and_hides_the_tabs(
        qtbot: QtBot, admin: tuple[AdminServices, StubSession, QTabWidget]) -> None:
    services, session, tabs = admin
    services.load_children("", "")
    session.answer(ChildRows(rows=fake_children(5), total=5))
    assert services.enrolment.model.rowCount() == 5
    services.enrolment.enrol()
    session.roles = frozenset({"operator"})
    services.session_changed()
    assert services.enrolment.model.rowCount() == 0
    assert not any(tabs.isTabVisible(i) for i in range(tabs.count()))
    assert "session ended" in services.enrolment.message.text()
    session.answer(ChildRows(rows=fake_children(5), total=5), index=0)  # late: ignored
    assert services.enrolment.model.rowCount() == 0


def test_an_unanswered_request_is_reported(
        qtbot: QtBot, admin: tuple[AdminServices, StubSession, QTabWidget]) -> None:
    services, session, _ = admin
    now = [0.0]
    services.clock = lambda: now[0]
    services.save_zone(ZoneDraft(None, "x", "park", "", "", ZoneShape(Point(127.0, 37.5),
                                                                       200.0)))
    now[0] = ANSWER_S["save_zone"] + 1
    services.check_overdue()
    assert "has not answered in 15 s" in services.zones.message.text()
    session.answer(ZoneSaved(zone=ZoneView(id=5, name="x", kind="park", lat=37.5, lon=127.0,
                                           radius_m=200.0)))
    assert services.zones.current_zone() is not None


def test_the_panels_run_alone(qtbot: QtBot) -> None:
    enrol = EnrolmentAdminPanel()
    qtbot.addWidget(enrol)
    enrol.show_children(fake_children(40), 812)
    assert "812 children match; the first 40" in enrol.count.text()
    QApplication.processEvents()
    assert shapely.is_valid(ZoneShape.of(fake_zones()[3]).geometry)
