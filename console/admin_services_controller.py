"""Glue between the admin's Zones and Enrolment tabs, the map's zone editor
and the engine, owned by the window.

The console never touches the store: every save, delete, import, export,
listing and enrolment is a request to the engine (``console.engine.
admin_services``), sent through the session (which stamps the admin's
token and routes the reply back here by ``ref``); the engine checks the
role and every field, writes, and the change reaches every console on its
own: zones as ``ZoneRegistry`` (the map and this table redraw), children as
``RosterChanged``.

Zones are not asked for: every console already receives the registry and
the per-zone counts, and ``on_frame`` hands them to the tab. The children's
table is asked for when the tab is shown (most consoles never open it, and
names are only sent to whoever looks).

A request the engine has not answered in time is reported and the form
becomes usable again; if its answer still comes, it is shown then. Import
files are read here, on the GUI thread: bounded (``MAX_IMPORT_BYTES``) and
local; the engine does the slow part.
"""

from __future__ import annotations

import itertools
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any, Literal, Protocol

from PySide6.QtCore import QEvent, QObject, QTimer
from PySide6.QtWidgets import QComboBox, QTabWidget, QWidget
from shapely.geometry import Point

from models.geo import to_wgs84
from models.messages import (
    MAX_IMPORT_BYTES,
    AddDevice,
    AnyMessage,
    ChildRemoved,
    ChildrenRequest,
    ChildRows,
    ChildSaved,
    CommandReply,
    EnrolChild,
    ExportZones,
    ImportRoster,
    ImportZones,
    RemoveChild,
    RemoveDevice,
    RemoveZone,
    RosterImportResult,
    SaveZone,
    ZoneExport,
    ZoneImportResult,
    ZoneSaved,
    ZoneView,
)
from widgets.enrolment_admin import EnrolDraft, EnrolmentAdminPanel
from widgets.file_import_dialog import FileImportDialog
from widgets.map_view import MapView
from widgets.zone_admin import ZoneAdminPanel, ZoneDraft
from widgets.zone_editor import ZoneEditor, ZoneShape

log = logging.getLogger(__name__)

Kind = Literal["save_zone", "remove_zone", "import_zones", "export_zones", "list",
               "enrol", "unenrol", "device", "import_roster"]
# How long to wait for the engine before telling the admin: imports are
# one transaction of up to a few thousand rows, the rest one row.
ANSWER_S: dict[Kind, float] = {"save_zone": 15.0, "remove_zone": 15.0, "import_zones": 120.0,
                               "export_zones": 30.0, "list": 30.0, "enrol": 15.0,
                               "unenrol": 15.0, "device": 15.0, "import_roster": 180.0}
NEW_CIRCLE_M = 300.0  # a new circle's radius (the u-Seoul zones are 300-500 m)
WAITING = "The engine is checking the file and writing it in one transaction…"


class CommandSender(Protocol):
    """``console.session.Session`` as far as sending goes."""

    def send(self, command: AnyMessage, on_reply: Callable[[Any], None] | None = None
             ) -> int: ...

    def may(self, schema: str) -> bool: ...


class FrameLike(Protocol):
    zones: list[ZoneView] | None
    zone_counts: dict[int, tuple[int, int]] | None


@dataclass
class _Pending:
    kind: Kind
    sent_at: float
    context: object = None  # what the answer needs (an export's path, a zone id)
    overdue: bool = False


class AdminServices(QObject):
    """Connects the Zones and Enrolment tabs and the zone editor to the engine."""

    def __init__(self, session: CommandSender, zones: ZoneAdminPanel,
                 enrolment: EnrolmentAdminPanel, editor: ZoneEditor | None,
                 zone_import: FileImportDialog, roster_import: FileImportDialog,
                 roster_school: QComboBox, parent: QObject | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(parent)
        self.session = session
        self.zones = zones
        self.enrolment = enrolment
        self.editor = editor
        self.zone_import = zone_import
        self.roster_import = roster_import
        self.roster_school = roster_school
        self.clock = clock
        self.views: list[ZoneView] = []
        self.children_loaded = False
        self.pending: dict[int, _Pending] = {}
        self.tabs: QTabWidget | None = None  # set by ``attach``: whose tabs to show or hide
        self._relist: tuple[str, str] | None = None  # a listing asked while one was out
        self._keys = itertools.count(1)
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self.check_overdue)
        zones.save_requested.connect(self.save_zone)
        zones.delete_requested.connect(self.remove_zone)
        zones.import_requested.connect(lambda: _open(zone_import))
        zones.export_requested.connect(self.export_zones)
        zones.draw_requested.connect(self.draw)
        zones.new_circle_requested.connect(self.new_circle)
        zones.edit_on_map_requested.connect(self.edit_on_map)
        zones.selected.connect(self._zone_selected)
        zone_import.import_requested.connect(self.import_zones)
        enrolment.load_requested.connect(self.load_children)
        enrolment.enrol_requested.connect(self.enrol)
        enrolment.remove_requested.connect(self.remove_child)
        enrolment.add_device_requested.connect(self.add_device)
        enrolment.remove_device_requested.connect(self.remove_device)
        enrolment.import_requested.connect(lambda: _open(roster_import))
        roster_import.import_requested.connect(self.import_roster)
        if editor is not None:
            editor.drawn.connect(zones.new_zone)
            editor.apply_requested.connect(self._apply_from_map)
            editor.delete_requested.connect(self._delete_from_map)
            editor.cancelled.connect(self._editor_cancelled)
        enrolment.installEventFilter(self)

    @classmethod
    def attach(cls, session: CommandSender, tabs: QTabWidget, map_view: MapView | None,
               parent: QWidget) -> AdminServices:
        """Build the two tabs (shown to admins only), the import dialogs and
        the map's editor, and follow the session (``Session.changed``)."""
        zones, enrolment = ZoneAdminPanel(), EnrolmentAdminPanel()
        tabs.addTab(zones, zones.tr("Zones"))
        tabs.addTab(enrolment, enrolment.tr("Enrolment"))
        school = QComboBox()
        zone_import = FileImportDialog(zones.tr("Import zones"),
                                       zones.tr("A GeoJSON FeatureCollection, WGS84 [lon, lat]"),
                                       "GeoJSON (*.geojson *.json);;All files (*)", parent)
        roster_import = FileImportDialog(
            enrolment.tr("Import roster"), enrolment.tr("A school roster CSV (UTF-8 or CP949)"),
            "CSV (*.csv *.txt);;All files (*)", parent,
            [(enrolment.tr("Default school"), school)])
        editor = ZoneEditor(map_view, parent) if map_view is not None else None
        admin = cls(session, zones, enrolment, editor, zone_import, roster_import, school,
                    parent)
        admin.tabs = tabs
        changed = getattr(session, "changed", None)
        if changed is not None:
            changed.connect(lambda _who: admin.session_changed())
        admin.session_changed()
        return admin

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """List the children when the tab is first shown, not at start-up:
        most consoles never open it, and names go only to whoever looks."""
        if (watched is self.enrolment and event.type() == QEvent.Type.Show
                and not self.children_loaded and not self._waiting_for("list")):
            self.enrolment.reload()
        return False

    # ------------------------------------------------------------ window API
    def on_frame(self, frame: FrameLike) -> None:
        """The registry and counts every console receives (None: unchanged)."""
        if frame.zones is not None:
            self.views = list(frame.zones)
            self.zones.show_zones(self.views)
            names = schools_first(self.views)
            self.enrolment.set_schools(names)
            current = self.roster_school.currentText()
            self.roster_school.clear()
            self.roster_school.addItem(self.zones.tr("(the file's school column)"), "")
            for n in names:
                self.roster_school.addItem(n, n)
            self.roster_school.setCurrentIndex(max(self.roster_school.findText(current), 0))
        if frame.zone_counts is not None:
            self.zones.show_counts(frame.zone_counts)

    def session_changed(self) -> None:
        """Signed in, out, or as someone else: show the tabs to admins only,
        and forget what the last user asked and was shown (names included)."""
        admin = self.session.may("cmd.save_zone")
        if self.tabs is not None:
            for panel, schema in ((self.zones, "cmd.save_zone"),
                                  (self.enrolment, "req.enrolled")):
                self.tabs.setTabVisible(self.tabs.indexOf(panel), self.session.may(schema))
        busy = {p.kind for p in self.pending.values() if not p.overdue}
        self.pending.clear()
        self._timer.stop()
        if busy & {"save_zone", "remove_zone"}:
            self.zones.show_error("The session ended before the engine answered: check the "
                                  "zone in the table.")
        if busy & {"enrol", "unenrol", "device"}:
            self.enrolment.show_error("The session ended before the engine answered: check "
                                      "the child once the table is loaded again.")
        for dialog in (self.zone_import, self.roster_import):
            if dialog.busy:
                dialog.show_error("The session ended before the engine answered; the "
                                  "import may still finish: check the table.")
        if self.editor is not None:
            self.editor.clear()
        self.children_loaded = False
        self.enrolment.show_children([], 0)
        self.enrolment.show_status("")
        if admin and self.enrolment.isVisible():
            self.enrolment.reload()

    def check_overdue(self) -> None:
        now = self.clock()
        for p in self.pending.values():
            if p.overdue or now - p.sent_at < ANSWER_S[p.kind]:
                continue
            p.overdue = True
            silent = f"the engine has not answered in {ANSWER_S[p.kind]:.0f} s"
            if p.kind in ("save_zone", "remove_zone", "export_zones"):
                self.zones.show_error(f"No answer yet: {silent}. If it still answers, the "
                                      "result is shown here.")
            elif p.kind == "list":
                self.enrolment.show_status(f"Could not load children: {silent}.")
            elif p.kind in ("enrol", "unenrol", "device"):
                self.enrolment.show_error(f"No answer yet: {silent}. If it still answers, "
                                          "the result is shown here.")
            else:
                dialog = self.zone_import if p.kind == "import_zones" else self.roster_import
                dialog.show_error(f"No answer yet: {silent}. The import may still finish; "
                                  "if it does, its report is shown here.")

    # ----------------------------------------------------------------- zones
    def save_zone(self, draft: ZoneDraft) -> None:
        editor = self.editor
        if editor is not None and editor.mode == "editing" and editor.zone_id == draft.zone_id:
            shape = editor.shape()  # dragged but not applied yet: what the map shows wins
            if shape is not None:
                draft = replace(draft, shape=shape)
        self._send("save_zone", zone_request(draft), draft.zone_id)

    def remove_zone(self, zone_id: int, version: int) -> None:
        self._send("remove_zone", RemoveZone(token="", zone_id=zone_id, zone_version=version),
                   zone_id)

    def export_zones(self, path: str) -> None:
        self.zones.show_status(self.zones.tr("Exporting…"), "busy")
        self._send("export_zones", ExportZones(token=""), path)

    def import_zones(self, path: str) -> None:
        data = self._read(path, self.zone_import)
        if data is not None:
            self._send("import_zones", ImportZones(token="", filename=Path(path).name,
                                                   data=data))
            self.zone_import.show_phase(WAITING)

    def draw(self) -> None:
        if self.editor is not None:
            self.editor.start_drawing()

    def new_circle(self) -> None:
        """A circle at the map's centre, editable at once (drag it into place)."""
        if self.editor is None:
            shape = ZoneShape(Point(126.9780, 37.5665), NEW_CIRCLE_M)  # Seoul City Hall
        else:
            (x0, x1), (y0, y1) = self.editor.map.view_range()
            lat, lon = to_wgs84((x0 + x1) / 2, (y0 + y1) / 2)
            shape = ZoneShape(Point(round(lon, 7), round(lat, 7)), NEW_CIRCLE_M)
            self.editor.edit(None, shape)
        self.zones.new_zone(shape)

    def edit_on_map(self, zone_id: int) -> None:
        view = next((z for z in self.views if z.id == zone_id), None)
        if view is None or self.editor is None:
            return
        if not self.editor.edit(zone_id, ZoneShape.of(view)):
            self.zones.show_error("This zone has holes: edit it in a GeoJSON file and import "
                                  "it (moving the outline alone would misplace them).")

    def _apply_from_map(self, zone_id: int | None, shape: ZoneShape) -> None:
        """Enter on the map: the shape goes into the form, and the form is saved."""
        self.zones.shape_edited(zone_id, shape)
        self.zones.save()

    def _delete_from_map(self, zone_id: int) -> None:
        if self.zones.select_zone(zone_id):
            self.zones.delete_selected()

    def _editor_cancelled(self) -> None:
        self.zones.shape_cancelled()

    def _zone_selected(self, zone_id: object) -> None:
        editor = self.editor
        if editor is not None and editor.mode != "idle" and editor.zone_id != zone_id:
            editor.clear()

    # ------------------------------------------------------------- enrolment
    def load_children(self, school: str, search: str) -> None:
        if self._waiting_for("list"):
            self._relist = (school, search)
            return
        self._relist = None
        self.enrolment.show_status(self.enrolment.tr("Loading…"))
        self._send("list", ChildrenRequest(token="", school=school, search=search))

    def enrol(self, draft: EnrolDraft) -> None:
        self._send("enrol", EnrolChild(token="", name=draft.name, school=draft.school,
                                       profile=draft.profile, device_id=draft.device_id,
                                       device_kind=draft.device_kind))

    def remove_child(self, token: str) -> None:
        self._send("unenrol", RemoveChild(token="", child=token))

    def add_device(self, child: str, device_id: str, kind: str) -> None:
        self._send("device", AddDevice(token="", child=child, device_id=device_id, kind=kind))

    def remove_device(self, device_id: str) -> None:
        self._send("device", RemoveDevice(token="", device_id=device_id))

    def import_roster(self, path: str) -> None:
        data = self._read(path, self.roster_import)
        if data is not None:
            school = str(self.roster_school.currentData() or "")
            self._send("import_roster", ImportRoster(token="", filename=Path(path).name,
                                                     data=data, school=school))
            self.roster_import.show_phase(WAITING)

    # ------------------------------------------------------------- internals
    def _send(self, kind: Kind, request: AnyMessage, context: object = None) -> None:
        key = next(self._keys)
        self.pending[key] = _Pending(kind, self.clock(), context)
        self.session.send(request, partial(self._answered, key))
        if not self._timer.isActive():
            self._timer.start()

    def _waiting_for(self, kind: Kind) -> bool:
        return any(p.kind == kind and not p.overdue for p in self.pending.values())

    def _read(self, path: str, dialog: FileImportDialog) -> bytes | None:
        name = Path(path).name
        try:
            size = Path(path).stat().st_size
            if size <= MAX_IMPORT_BYTES:
                with open(path, "rb") as f:
                    data = f.read(MAX_IMPORT_BYTES + 1)
                size = len(data)
        except OSError as exc:
            dialog.show_error(f"Cannot read {name}: {exc.strerror or exc}. Nothing was "
                              "written.")
            return None
        if size > MAX_IMPORT_BYTES:
            dialog.show_error(f"{name} is {size / 2**20:.1f} MiB; an import takes at most "
                              f"{MAX_IMPORT_BYTES // 2**20} MiB. Split the file. Nothing was "
                              "written.")
            return None
        return data

    def _answered(self, key: int, reply: object) -> None:
        pending = self.pending.pop(key, None)
        if pending is None:
            return  # asked by a session that has ended
        if not self.pending:
            self._timer.stop()
        handler = getattr(self, f"_on_{pending.kind}")
        handler(reply, pending.context)

    def _on_save_zone(self, reply: object, _zone_id: object) -> None:
        if isinstance(reply, ZoneSaved):
            if self.editor is not None:
                self.editor.clear()  # the registry brings the saved shape within a second
            self.zones.show_saved(reply.zone, reply.changed)
        else:
            self.zones.show_error(f"Not saved: {_error(reply)}.")

    def _on_remove_zone(self, reply: object, zone_id: object) -> None:
        if isinstance(reply, CommandReply) and reply.ok:
            if self.editor is not None and self.editor.zone_id == zone_id:
                self.editor.clear()
            self.zones.show_removed(int(str(zone_id)))
        else:
            self.zones.show_error(f"Not deleted: {_error(reply)}.")

    def _on_export_zones(self, reply: object, path: object) -> None:
        if not isinstance(reply, ZoneExport):
            self.zones.show_error(f"Not exported: {_error(reply)}.")
            return
        try:
            Path(str(path)).write_text(reply.geojson, encoding="utf-8")
        except OSError as exc:
            self.zones.show_error(f"Cannot write {path}: {exc.strerror or exc}.")
            return
        self.zones.show_status(f"{reply.zones:,} zones exported to {path}.", "saved")

    def _on_import_zones(self, reply: object, _context: object) -> None:
        if isinstance(reply, ZoneImportResult):
            self.zone_import.show_result(reply.committed, reply.message, reply.problems,
                                         reply.problem_count)
        else:
            self.zone_import.show_error(f"Not imported: {_error(reply)}. Nothing was written.")

    def _on_list(self, reply: object, _context: object) -> None:
        if isinstance(reply, ChildRows):
            self.children_loaded = True
            self.enrolment.show_children(reply.rows, reply.total)
        else:
            self.enrolment.show_status(f"Could not load children: {_error(reply)}.")
        if self._relist is not None:
            self.load_children(*self._relist)

    def _on_enrol(self, reply: object, _context: object) -> None:
        if isinstance(reply, ChildSaved):
            self.enrolment.show_saved(reply.child, reply.message)
        else:
            self.enrolment.show_error(f"Not enrolled: {_error(reply)}.")

    def _on_device(self, reply: object, _context: object) -> None:
        if isinstance(reply, ChildSaved):
            self.enrolment.show_saved(reply.child, reply.message)
        elif isinstance(reply, CommandReply) and reply.ok:
            self.enrolment.show_error("")
            self.enrolment.reload()
        else:
            self.enrolment.show_error(f"Device not changed: {_error(reply)}.")

    def _on_unenrol(self, reply: object, _context: object) -> None:
        if isinstance(reply, ChildRemoved):
            self.enrolment.show_removed(reply.child, reply.message)
        else:
            self.enrolment.show_error(f"Not removed: {_error(reply)}.")

    def _on_import_roster(self, reply: object, _context: object) -> None:
        if isinstance(reply, RosterImportResult):
            self.roster_import.show_result(reply.committed, reply.message, reply.problems,
                                           reply.problem_count)
            if reply.committed:
                self.enrolment.reload()
        else:
            self.roster_import.show_error(f"Not imported: {_error(reply)}. Nothing was "
                                          "written.")


def zone_request(draft: ZoneDraft) -> SaveZone:
    """The engine's command for a draft: a circle as centre and radius, a
    polygon as GeoJSON, no shape to keep the stored one."""
    shape = draft.shape
    fields: dict[str, Any] = {}
    if shape is not None and isinstance(shape.geometry, Point):
        fields = {"lat": shape.geometry.y, "lon": shape.geometry.x, "radius_m": shape.radius_m}
    elif shape is not None:
        fields = {"geometry": shape.geojson()}
    return SaveZone(token="", zone_id=draft.zone_id, name=draft.name, kind=draft.kind,
                    hours=draft.hours, district=draft.district, zone_version=draft.version,
                    **fields)


def schools_first(zones: list[ZoneView]) -> list[str]:
    """Zone names a child may be enrolled at, schools first, then by name."""
    return [z.name for z in sorted(zones, key=lambda z: (z.kind != "school", z.name))]


def _open(dialog: FileImportDialog) -> None:
    dialog.show()
    dialog.raise_()
    dialog.activateWindow()


def _error(reply: object) -> str:
    if isinstance(reply, CommandReply):
        return reply.error.rstrip(".") or f"refused ({reply.code})"
    log.warning("unexpected admin reply %s", type(reply).__name__)
    return f"unexpected answer {type(reply).__name__}"
