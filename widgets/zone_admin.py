"""The admin's Zones tab: every safety zone with the children inside it, a
form to edit one, and the ways in and out (draw on the map, import and
export GeoJSON).

It only presents and asks. Save emits ``save_requested(ZoneDraft)``, Delete
``delete_requested(id, version)``, and so on; the console's controller
sends them to the engine (``console.admin_services_controller``), which
checks every field and writes, and answers through ``show_saved`` or
``show_error``. The form turns text into numbers and nothing more: the
rules (hours, in Korea, a valid polygon, a free name) are the store's, so
there is one set whatever writes a zone.

The table follows the zone registry every console receives, so an edit by
another admin (or the CLI) shows here within a second; an unsaved edit in
the form is kept meanwhile.

``FileImportDialog`` (GeoJSON here, the roster CSV in the Enrolment tab;
``widgets.file_import_dialog``) lists every problem the engine found, by
feature or by line.

Run alone on made-up zones: ``python -m widgets.zone_admin [--shot PATH]``.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from pathlib import Path

from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtWidgets import (
    QComboBox,
    QFileDialog,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QMessageBox,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)
from shapely.geometry import Point

from models.messages import ZoneView
from models.zones import ZONE_KINDS
from widgets.tables import read_only
from widgets.zone_editor import ZoneShape

Index = QModelIndex | QPersistentModelIndex
SortRole = Qt.ItemDataRole.UserRole + 1


@dataclass(frozen=True)
class ZoneDraft:
    """What the admin wants a zone to be. ``zone_id`` None adds one;
    ``shape`` None keeps the stored shape; ``version`` is the one edited."""

    zone_id: int | None
    name: str
    kind: str
    hours: str
    district: str
    shape: ZoneShape | None
    version: int = 0


def count_text(count: tuple[int, int] | None) -> str:
    if count is None:
        return "—"
    inside, uncertain = count
    return f"{inside:,}" + (f" · {uncertain:,} ?" if uncertain else "")


class ZoneTableModel(QAbstractTableModel):
    """Zones as the registry has them, with the engine's latest counts."""

    HEADERS = ("Name", "Kind", "Hours", "District", "Shape", "Version", "Inside")

    def __init__(self) -> None:
        super().__init__()
        self.zones: list[ZoneView] = []
        self.counts: dict[int, tuple[int, int]] = {}

    def set_zones(self, zones: list[ZoneView]) -> None:
        self.beginResetModel()
        self.zones = list(zones)
        self.endResetModel()

    def set_counts(self, counts: dict[int, tuple[int, int]]) -> None:
        self.counts = dict(counts)
        if self.zones:
            col = self.HEADERS.index("Inside")
            self.dataChanged.emit(self.index(0, col), self.index(len(self.zones) - 1, col))

    def row_of(self, zone_id: int) -> int:
        return next((i for i, z in enumerate(self.zones) if z.id == zone_id), -1)

    def zone_at(self, row: int) -> ZoneView | None:
        return self.zones[row] if 0 <= row < len(self.zones) else None

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.zones)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        z = self.zone_at(index.row()) if index.isValid() else None
        if z is None:
            return None
        col = index.column()
        count = self.counts.get(z.id)
        if role == SortRole:
            keys: list[object] = [z.name, z.kind, z.hours, z.district, bool(z.shape),
                                  z.version, -1 if count is None else count[0]]
            return keys[col]
        if role == Qt.ItemDataRole.DisplayRole:
            shape = "polygon" if z.shape else f"circle {z.radius_m:,.0f} m"
            texts = [z.name, z.kind, z.hours or "all day", z.district, shape,
                     str(z.version), count_text(count)]
            return texts[col]
        if role == Qt.ItemDataRole.ToolTipRole and col == 6:
            return "Children inside now · uncertain (their fix's accuracy crosses the fence)"
        if role == Qt.ItemDataRole.TextAlignmentRole and col in (5, 6):
            return Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None


class ZoneForm(QGroupBox):
    """One zone's fields; a circle's centre and radius can be typed, a
    polygon is drawn on the map."""

    edited = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("zoneForm")
        self.name, self.hours, self.district = QLineEdit(), QLineEdit(), QLineEdit()
        self.hours.setPlaceholderText(self.tr("07:00-20:00 · empty: watched all day"))
        self.district.setPlaceholderText(self.tr("empty: the gu it lies in"))
        self.kind = QComboBox()
        self.kind.addItems(list(ZONE_KINDS))
        self.shape_text = QLabel("")
        self.shape_text.setWordWrap(True)
        self.lat, self.lon, self.radius = QLineEdit(), QLineEdit(), QLineEdit()
        grid = QGridLayout(self)
        rows: list[list[tuple[str, QWidget]]] = [
            [(self.tr("Name"), self.name)],
            [(self.tr("Kind"), self.kind), (self.tr("Hours"), self.hours)],
            [(self.tr("District"), self.district)],
            [(self.tr("Shape"), self.shape_text)],
            [(self.tr("Latitude"), self.lat), (self.tr("Longitude"), self.lon)],
            [(self.tr("Radius m"), self.radius)],
        ]
        for r, pairs in enumerate(rows):
            for c, (label, widget) in enumerate(pairs):
                grid.addWidget(QLabel(label), r, 2 * c)
                grid.addWidget(widget, r, 2 * c + 1, 1, 3 if len(pairs) == 1 else 1)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        grid.setRowStretch(len(rows), 1)
        for edit in (self.name, self.hours, self.district, self.lat, self.lon, self.radius):
            edit.textEdited.connect(self.edited)
        self.kind.activated.connect(self.edited)
        self.shape: ZoneShape | None = None

    def load(self, title: str, view: ZoneView | None, shape: ZoneShape | None) -> None:
        """Show a zone (``view``: its fields, None: empty) with ``shape``."""
        self.setTitle(title)
        self.setEnabled(view is not None or shape is not None)
        self.name.setText(view.name if view else "")
        self.kind.setCurrentText(view.kind if view else "school")
        self.hours.setText(view.hours if view else "")
        self.district.setText(view.district if view else "")
        self.set_shape(shape)

    def set_shape(self, shape: ZoneShape | None) -> None:
        self.shape = shape
        circle = shape is not None and isinstance(shape.geometry, Point)
        self.shape_text.setText(shape.describe() if shape else "")
        for w in (self.lat, self.lon, self.radius):
            w.setEnabled(circle)
            w.clear()
        if shape is not None and isinstance(shape.geometry, Point):
            self.lat.setText(f"{shape.geometry.y:.6f}")
            self.lon.setText(f"{shape.geometry.x:.6f}")
            self.radius.setText(f"{shape.radius_m:g}")

    def read(self, zone_id: int | None, version: int, shape_changed: bool) -> ZoneDraft:
        """The form as a draft; ValueError naming a field that is not a number."""
        shape = self.shape
        if shape is not None and isinstance(shape.geometry, Point):
            def number(w: QLineEdit, label: str) -> float:
                text = w.text().strip().replace(",", ".")
                try:
                    value = float(text)
                except ValueError:
                    raise ValueError(f"{label} {text!r} is not a number") from None
                if not math.isfinite(value):
                    raise ValueError(f"{label} {text!r} is not a number")
                return value
            typed = ZoneShape(Point(number(self.lon, "longitude"), number(self.lat, "latitude")),
                              number(self.radius, "radius"))
            if (typed.geometry.x, typed.geometry.y, typed.radius_m) != (
                    round(shape.geometry.x, 6), round(shape.geometry.y, 6), shape.radius_m):
                shape, shape_changed = typed, True
        return ZoneDraft(zone_id, self.name.text().strip(), self.kind.currentText(),
                         self.hours.text().strip(), self.district.text().strip(),
                         shape if shape_changed or zone_id is None else None, version)


class ZoneAdminPanel(QWidget):
    save_requested = Signal(object)  # ZoneDraft
    delete_requested = Signal(int, int)  # zone id, version
    draw_requested = Signal()
    new_circle_requested = Signal()
    edit_on_map_requested = Signal(int)  # zone id
    import_requested = Signal()
    export_requested = Signal(str)  # path
    selected = Signal(object)  # zone id or None

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("zoneAdmin")
        self.model = ZoneTableModel()
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setSortRole(SortRole)
        self.filter = QLineEdit()
        self.filter.setPlaceholderText(self.tr("Filter: name, kind, district…"))
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self._filter)
        self.count = QLabel(self.tr("Waiting for the zone registry…"))
        self.table = QTableView()
        self.table.setModel(self.proxy)  # before read_only: it sizes the model's columns
        read_only(self.table, stretch=0)
        self.table.setSortingEnabled(True)
        self.table.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        self.table.setAlternatingRowColors(True)
        self.table.selectionModel().currentRowChanged.connect(self._current_changed)
        self.form = ZoneForm()
        self.message = QLabel("")
        self.message.setObjectName("adminMessage")
        self.message.setWordWrap(True)
        b = self._button
        self.draw_button = b(self.tr("Draw polygon"), self.draw_requested,
                             self.tr("Click the corners on the map; double-click or Enter "
                                     "finishes"))
        self.circle_button = b(self.tr("New circle"), self.new_circle_requested,
                               self.tr("A circle at the map's centre, to drag into place"))
        self.map_button = b(self.tr("Edit on map"), self._edit_on_map,
                            self.tr("Move or reshape the selected zone by dragging it"))
        self.delete_button = b(self.tr("Delete…"), self.delete_selected)
        self.import_button = b(self.tr("Import GeoJSON…"), self.import_requested)
        self.export_button = b(self.tr("Export GeoJSON…"), self.export)
        self.save_button = b(self.tr("Save"), self.save)
        self.save_button.setObjectName("saveZone")
        self.revert_button = b(self.tr("Revert"), self.revert)
        self.form.edited.connect(self._edited)
        self.form.name.returnPressed.connect(self.save)
        self._current: ZoneView | None = None  # as stored; None with a shape: a new zone
        self._new_shape: ZoneShape | None = None
        self._shape_changed = False
        self._dirty = False
        self._saving = False
        self._layout()
        self._show(None)

    def _button(self, text: str, slot: object, tip: str = "") -> QPushButton:
        button = QPushButton(text)
        button.setToolTip(tip)
        button.clicked.connect(slot)
        return button

    def _layout(self) -> None:
        title = QLabel(self.tr("Zones"))
        title.setObjectName("panelTitle")
        top = QHBoxLayout()
        top.addWidget(title)
        top.addWidget(self.filter, 1)
        top.addWidget(self.import_button)
        top.addWidget(self.export_button)
        upper = QWidget()
        column = QVBoxLayout(upper)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(top)
        column.addWidget(self.table, 1)
        column.addWidget(self.count)
        tools = QHBoxLayout()
        for w in (self.draw_button, self.circle_button, self.map_button, self.delete_button):
            tools.addWidget(w)
        tools.addStretch(1)
        column.addLayout(tools)
        buttons = QHBoxLayout()
        buttons.addWidget(self.message, 1)
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.save_button)
        lower = QWidget()
        below = QVBoxLayout(lower)
        below.setContentsMargins(0, 0, 0, 0)
        below.addWidget(self.form, 1)
        below.addLayout(buttons)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(upper)
        split.addWidget(lower)
        split.setChildrenCollapsible(False)
        split.setSizes([520, 330])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

    # ------------------------------------------------------------ controller API
    def show_zones(self, zones: list[ZoneView]) -> None:
        """The registry as the engine published it; an unsaved edit is kept."""
        self.model.set_zones(zones)
        self._count()
        current = self._current
        if current is None:
            return
        i = self.model.row_of(current.id)
        if i < 0:
            if not self._dirty:
                self._show(None)
            return
        self._select(i)
        if not self._dirty:
            self._show(self.model.zone_at(i))

    def show_counts(self, counts: dict[int, tuple[int, int]]) -> None:
        self.model.set_counts(counts)

    def show_saved(self, view: ZoneView, changed: bool = True) -> None:
        self._saving = False
        i = self.model.row_of(view.id)
        if i >= 0:
            self.model.zones[i] = view
            self.model.dataChanged.emit(self.model.index(i, 0),
                                        self.model.index(i, self.model.columnCount() - 1))
        else:
            self.model.set_zones([*self.model.zones, view])
            i = len(self.model.zones) - 1
        self._count()
        self._show(view)
        self._select(i)
        self._say(self.tr("Zone {0} saved (version {1}); the map follows within a second.")
                  .format(view.name, view.version) if changed
                  else self.tr("No change to save."), "saved")

    def show_removed(self, zone_id: int) -> None:
        i = self.model.row_of(zone_id)
        name = self.model.zones[i].name if i >= 0 else str(zone_id)
        if i >= 0:
            self.model.set_zones([z for z in self.model.zones if z.id != zone_id])
        self._count()
        self._show(None)
        self._say(self.tr("Zone {0} deleted.").format(name), "saved")

    def show_error(self, text: str) -> None:
        """Saving or deleting failed; the form keeps the admin's edits."""
        self._saving = False
        self._say(text, "error")
        self._update_buttons()

    def show_status(self, text: str, kind: str = "") -> None:
        self._say(text, kind)

    def new_zone(self, shape: ZoneShape) -> None:
        """A new zone of ``shape`` (drawn, or a circle to drag), waiting for a name."""
        self.table.selectionModel().clear()
        self._current, self._new_shape = None, shape
        self.form.load(self.tr("New zone"), None, shape)
        self._shape_changed = True
        self._dirty = True
        self._update_buttons()
        self._say(self.tr("Name the new zone and save (Enter on the map saves too)."), "")
        self.form.name.setFocus()

    def shape_edited(self, zone_id: int | None, shape: ZoneShape) -> None:
        """The map editor moved or reshaped the zone in the form."""
        if zone_id is None:
            self._new_shape = shape
        elif self._current is None or self._current.id != zone_id:
            return
        self.form.set_shape(shape)
        self._shape_changed = True
        self._dirty = True
        self._update_buttons()

    def shape_cancelled(self) -> None:
        """The map editor was cancelled: a new zone goes, an edited one gets
        its stored shape back (other unsaved fields stay)."""
        if self._current is None:
            self._show(None)
            self._say("", "")
            return
        self.form.set_shape(ZoneShape.of(self._current))
        self._shape_changed = False

    def current_zone(self) -> ZoneView | None:
        return self._current

    def confirm(self, text: str) -> bool:
        """Ask before a delete (tests replace it)."""
        answer = QMessageBox.question(self, self.tr("Delete zone"), text)
        return answer == QMessageBox.StandardButton.Yes

    def ask_export_path(self) -> str:
        path, _ = QFileDialog.getSaveFileName(self, self.tr("Export zones"),
                                              str(Path.home() / "zones.geojson"),
                                              "GeoJSON (*.geojson *.json)")
        return path

    # ----------------------------------------------------------------- actions
    def save(self) -> None:
        if self._saving or (self._current is None and self._new_shape is None):
            return
        zone_id = self._current.id if self._current else None
        version = self._current.version if self._current else 0
        try:
            draft = self.form.read(zone_id, version, self._shape_changed)
        except ValueError as exc:
            self._say(str(exc).capitalize(), "error")
            return
        self._saving = True
        self._say(self.tr("Saving…"), "busy")
        self._update_buttons()
        self.save_requested.emit(draft)

    def revert(self) -> None:
        self._show(self._current)
        self._say("", "")

    def delete_selected(self) -> None:
        z = self._current
        if z is None:
            return
        if self.confirm(self.tr("Delete zone {0}? Children, readers and timetables must "
                                "use another zone first.").format(z.name)):
            self.delete_requested.emit(z.id, z.version)

    def export(self) -> None:
        path = self.ask_export_path()
        if path:
            self.export_requested.emit(path)

    def select_zone(self, zone_id: int) -> bool:
        i = self.model.row_of(zone_id)
        if i < 0:
            return False
        if not self.proxy.mapFromSource(self.model.index(i, 0)).isValid():
            self.filter.clear()
        self._select(i)
        return True

    # ---------------------------------------------------------------- internals
    def _edit_on_map(self) -> None:
        if self._current is not None:
            self.edit_on_map_requested.emit(self._current.id)

    def _select(self, source_row: int) -> None:
        index = self.proxy.mapFromSource(self.model.index(source_row, 0))
        if index.isValid():
            self.table.selectionModel().setCurrentIndex(
                index, QItemSelectionModel.SelectionFlag.ClearAndSelect
                | QItemSelectionModel.SelectionFlag.Rows)
            self.table.scrollTo(index)

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid():
            return
        z = self.model.zone_at(self.proxy.mapToSource(current).row())
        if z is not None and (self._current is None or z.id != self._current.id):
            self._show(z)
            self._say("", "")
            self.selected.emit(z.id)

    def _show(self, view: ZoneView | None) -> None:
        self._current, self._new_shape = view, None
        self._shape_changed = self._dirty = False
        if view is None:
            self.form.load(self.tr("No zone selected"), None, None)
        else:
            self.form.load(self.tr("Zone {0} · version {1}").format(view.id, view.version),
                           view, ZoneShape.of(view))
        self._update_buttons()

    def _edited(self) -> None:
        self._dirty = True
        self._update_buttons()

    def _update_buttons(self) -> None:
        idle = not self._saving
        self.save_button.setEnabled(self._dirty and idle)
        self.revert_button.setEnabled(self._dirty and idle and self._current is not None)
        for w in (self.map_button, self.delete_button):
            w.setEnabled(self._current is not None and idle)

    def _filter(self, text: str) -> None:
        self.proxy.setFilterFixedString(text.strip())
        self._count()

    def _count(self) -> None:
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        self.count.setText(self.tr("{0} zones").format(f"{total:,}") if shown == total
                           else self.tr("{0} of {1} zones").format(f"{shown:,}", f"{total:,}"))

    def _say(self, text: str, kind: str) -> None:
        """``kind`` (error / saved / busy / "") is a property the theme styles."""
        self.message.setText(text)
        self.message.setProperty("kind", kind)
        self.message.style().unpolish(self.message)
        self.message.style().polish(self.message)


# --------------------------------------------------------------- standalone

def fake_zones() -> list[ZoneView]:
    """The three demo sites and a drawn park, for running the panel alone."""
    park = ('{"type":"Polygon","coordinates":[[[127.0340,37.5421],[127.0402,37.5415],'
            '[127.0417,37.5458],[127.0362,37.5478],[127.0340,37.5421]]]}')
    return [
        ZoneView(id=1, name="서울숲", kind="park", lat=37.5444, lon=127.0374, radius_m=500.0,
                 hours="06:00-22:00", district="성동구", version=3),
        ZoneView(id=2, name="신도림초등학교", kind="school", lat=37.5085, lon=126.8875,
                 radius_m=300.0, hours="07:30-18:00", district="구로구"),
        ZoneView(id=3, name="신학초등학교", kind="school", lat=37.6655, lon=127.0420,
                 radius_m=300.0, hours="07:30-18:00", district="도봉구", version=2),
        ZoneView(id=4, name="서울숲 놀이터", kind="park", lat=37.5446, lon=127.0378,
                 radius_m=260.0, shape=park, district="성동구"),
    ]


def main(argv: list[str] | None = None) -> int:
    import argparse

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from console.theme import apply_theme
    from widgets.file_import_dialog import FileImportDialog

    parser = argparse.ArgumentParser(description="The Zones admin tab on made-up zones")
    parser.add_argument("--shot", help="save a PNG of the panel and quit")
    parser.add_argument("--dialog-shot", help="also save the import dialog with problems")
    args = parser.parse_args(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    apply_theme(app)  # type: ignore[arg-type]
    panel = ZoneAdminPanel()
    zones = fake_zones()
    panel.show_zones(zones)
    panel.show_counts({1: (412, 9), 2: (118, 0), 3: (96, 2), 4: (37, 1)})

    def fake_save(d: ZoneDraft) -> None:
        if not d.name:
            panel.show_error("Not saved: zone '': no name")
            return
        old = next((z for z in zones if z.id == d.zone_id), None)
        panel.show_saved(ZoneView(id=d.zone_id or 99, name=d.name, kind=d.kind,
                                  lat=old.lat if old else 37.55, lon=old.lon if old else 127.0,
                                  radius_m=old.radius_m if old else 300.0, hours=d.hours,
                                  district=d.district, version=(old.version + 1) if old else 1))

    panel.save_requested.connect(fake_save)
    panel.resize(780, 860)
    panel.show()
    panel.select_zone(1)
    panel.form.hours.setText("06:00-23:00")
    panel._edited()
    panel.show_error("Not saved: zone '서울숲': hours '06:00-23:00x': write them as "
                     "HH:MM-HH:MM, e.g. 07:00-20:00")
    dialog = FileImportDialog("Import zones", "A GeoJSON FeatureCollection (WGS84)",
                              "GeoJSON (*.geojson *.json)", panel)
    dialog.set_path("/tmp/seongdong_zones.geojson")
    dialog.show_result(False, "seongdong_zones.geojson: 2 problems; nothing was imported.",
                       ["features[3] '성수초': not a valid polygon: Self-intersection at "
                        "lon 127.0531, lat 37.5447",
                        "features[7] '뚝섬공원': latitude and longitude are swapped: "
                        "[37.531, 127.067] should be [127.067, 37.531] (GeoJSON is [lon, lat])"],
                       2)
    if args.shot:
        def shoot() -> None:
            panel.grab().save(args.shot)
            if args.dialog_shot:
                dialog.show()
                QTimer.singleShot(200, lambda: (dialog.grab().save(args.dialog_shot),
                                                app.quit()))
            else:
                app.quit()
        QTimer.singleShot(300, shoot)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
