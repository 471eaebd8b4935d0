"""The camera admin panel: the camera registry as a filterable table, and a
form to edit the selected camera (or add one).

It only presents and asks: Save emits ``save_requested(CameraEdit)``; the
console's controller sends it to the engine and answers with
``show_saved`` or ``show_error``.  The form only turns text into numbers;
the ranges (in Korea, 1–360°, …) are checked by the engine when it stores
the edit (``db.camera_admin.validate``), so there is one set of rules
whatever writes a camera.

``CameraRow`` and ``CameraEdit`` are plain data, free of Qt
(``models.camera_admin``).

Run alone on generated cameras: ``python -m widgets.camera_admin``.
"""

from __future__ import annotations

import math
import sys
from dataclasses import asdict

from PySide6.QtCore import (
    QItemSelectionModel,
    QModelIndex,
    QSortFilterProxyModel,
    Qt,
    Signal,
)
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QFrame,
    QGridLayout,
    QGroupBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QScrollArea,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from models.camera_admin import CAMERA_STATUSES, CameraEdit, CameraRow
from models.qt.camera_table import CameraTableModel, SortRole, number_text


class CameraForm(QGroupBox):
    """The fields of one camera, two columns wide to fit the side panel."""

    edited = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__("No camera selected", parent)
        self.setObjectName("cameraForm")
        self.name, self.agency, self.purpose = QLineEdit(), QLineEdit(), QLineEdit()
        self.address, self.lat, self.lon = QLineEdit(), QLineEdit(), QLineEdit()
        self.direction, self.fov, self.range = QLineEdit(), QLineEdit(), QLineEdit()
        self.stream_url = QLineEdit()
        self.direction.setPlaceholderText("empty: unknown")
        self.stream_url.setPlaceholderText("rtsp://… or http(s)://…, empty: none")
        self.ptz = QCheckBox("Pan-tilt-zoom")
        self.status = QComboBox()
        grid = QGridLayout(self)
        rows: list[list[tuple[str, QWidget]]] = [
            [("Name", self.name)], [("Agency", self.agency), ("Purpose", self.purpose)],
            [("Address", self.address)], [("Latitude", self.lat), ("Longitude", self.lon)],
            [("Direction °", self.direction), ("Field of view °", self.fov)],
            [("Range m", self.range), ("Status", self.status)], [("", self.ptz)],
            [("Stream URL", self.stream_url)],
        ]
        for r, pairs in enumerate(rows):
            for c, (label, widget) in enumerate(pairs):
                grid.addWidget(QLabel(label), r, 2 * c)
                grid.addWidget(widget, r, 2 * c + 1, 1, 3 if len(pairs) == 1 else 1)
        for edit in self._texts():
            edit.textEdited.connect(self.edited)
        self.ptz.clicked.connect(self.edited)
        self.status.activated.connect(self.edited)

    def _texts(self) -> list[QLineEdit]:
        return [self.name, self.agency, self.purpose, self.address, self.lat, self.lon,
                self.direction, self.fov, self.range, self.stream_url]

    def load(self, edit: CameraEdit | None, title: str) -> None:
        """Show ``edit`` (None: empty and disabled) without signalling an edit."""
        self.setTitle(title)
        self.setEnabled(edit is not None)
        if edit is None:
            for w in self._texts():
                w.clear()
            return
        values = [edit.name, edit.agency, edit.purpose, edit.address, f"{edit.lat:.6f}",
                  f"{edit.lon:.6f}",
                  "" if edit.direction_deg is None else number_text(edit.direction_deg),
                  number_text(edit.fov_deg), number_text(edit.range_m), edit.stream_url]
        for w, text in zip(self._texts(), values, strict=True):
            w.setText(text)
            w.setCursorPosition(0)
        self.ptz.setChecked(edit.ptz)
        self.status.clear()
        statuses = list(CAMERA_STATUSES)
        if edit.status not in statuses:  # keep a value set outside this form
            statuses.append(edit.status)
        self.status.addItems(statuses)
        self.status.setCurrentText(edit.status)

    def read(self, camera_id: int | None) -> CameraEdit:
        """The form as an edit; raises ValueError naming a field that is not a number."""

        def number(w: QLineEdit, label: str) -> float:
            text = w.text().strip().replace(",", ".")
            try:
                value = float(text)
            except ValueError:
                raise ValueError(f"{label} {text!r} is not a number") from None
            if not math.isfinite(value):
                raise ValueError(f"{label} {text!r} is not a number")
            return value

        direction = self.direction.text().strip()
        return CameraEdit(
            id=camera_id, name=self.name.text().strip(), lat=number(self.lat, "latitude"),
            lon=number(self.lon, "longitude"), agency=self.agency.text().strip(),
            purpose=self.purpose.text().strip(), address=self.address.text().strip(),
            direction_deg=number(self.direction, "view direction") if direction else None,
            fov_deg=number(self.fov, "field of view"), range_m=number(self.range, "range"),
            ptz=self.ptz.isChecked(), stream_url=self.stream_url.text().strip(),
            status=self.status.currentText(),
        )


NEW_CAMERA = CameraEdit(None, "", 37.5665, 126.9780, "", "", "", None, 90.0, 80.0, False,
                        "", "unknown")


class CameraAdminPanel(QWidget):
    save_requested = Signal(object)  # CameraEdit
    reload_requested = Signal()
    import_requested = Signal()  # open the import dialog

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("cameraAdmin")
        self.model = CameraTableModel()
        self.proxy = QSortFilterProxyModel(self)
        self.proxy.setSourceModel(self.model)
        self.proxy.setFilterKeyColumn(-1)
        self.proxy.setFilterCaseSensitivity(Qt.CaseSensitivity.CaseInsensitive)
        self.proxy.setSortRole(SortRole)
        self.filter = QLineEdit()
        self.filter.setObjectName("cameraFilter")
        self.filter.setPlaceholderText("Filter: id, name, agency, purpose, status, URL…")
        self.filter.setClearButtonEnabled(True)
        self.filter.textChanged.connect(self._filter)
        self.count = QLabel("Loading cameras…")
        self.reload_button = QPushButton("Reload")
        self.import_button = QPushButton("Import cameras…")
        self.new_button = QPushButton("New camera")
        self.table = self._make_table()
        self.form = CameraForm()
        self.message = QLabel("")
        self.message.setObjectName("cameraMessage")
        self.message.setWordWrap(True)
        self.save_button = QPushButton("Save")
        self.save_button.setObjectName("saveCamera")
        self.revert_button = QPushButton("Revert")
        self._layout()
        self.reload_button.clicked.connect(self.reload_requested)
        self.import_button.clicked.connect(self.import_requested)
        self.new_button.clicked.connect(self.new_camera)
        self.save_button.clicked.connect(self.save)
        self.revert_button.clicked.connect(self.revert)
        self.form.edited.connect(self._edited)
        self._current: CameraEdit | None = None  # as stored; id None for a new camera
        self._dirty = False
        self._saving = False
        self.form.load(None, "No camera selected")
        self._update_buttons()

    def _make_table(self) -> QTableView:
        t = QTableView()
        t.setModel(self.proxy)
        t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        t.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        t.setAlternatingRowColors(True)
        t.setSortingEnabled(True)
        t.sortByColumn(0, Qt.SortOrder.AscendingOrder)
        t.verticalHeader().hide()
        t.horizontalHeader().setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        t.horizontalHeader().setStretchLastSection(True)
        for column, width in enumerate((48, 200, 150, 80, 70, 50, 60, 40, 90)):
            t.setColumnWidth(column, width)
        t.selectionModel().currentRowChanged.connect(self._current_changed)
        return t

    def _layout(self) -> None:
        title = QLabel("Cameras")
        title.setObjectName("panelTitle")
        top = QHBoxLayout()
        top.addWidget(title)
        top.addWidget(self.filter, 1)
        top.addWidget(self.reload_button)
        top.addWidget(self.import_button)
        upper = QWidget()
        upper_layout = QVBoxLayout(upper)
        upper_layout.setContentsMargins(0, 0, 0, 0)
        upper_layout.addLayout(top)
        upper_layout.addWidget(self.table, 1)
        upper_layout.addWidget(self.count)
        buttons = QHBoxLayout()
        buttons.addWidget(self.new_button)
        buttons.addWidget(self.message, 1)
        buttons.addWidget(self.revert_button)
        buttons.addWidget(self.save_button)
        # The side panel is short (it shares the column with the CCTV grid):
        # the form scrolls rather than squeezing the table to one row.
        scroll = QScrollArea()
        scroll.setWidgetResizable(True)
        scroll.setFrameShape(QFrame.Shape.NoFrame)
        scroll.setWidget(self.form)
        lower = QWidget()
        lower_layout = QVBoxLayout(lower)
        lower_layout.setContentsMargins(0, 0, 0, 0)
        lower_layout.addWidget(scroll, 1)
        lower_layout.addLayout(buttons)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(upper)
        split.addWidget(lower)
        split.setChildrenCollapsible(False)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([600, 400])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

    # ------------------------------------------------------------ controller API
    def show_cameras(self, rows: list[CameraRow]) -> None:
        """The registry as stored; unsaved edits in the form are kept."""
        self.model.set_rows(rows)
        self._count()
        current = self._current
        if current is None or current.id is None:
            return
        i = self.model.row_of(current.id)
        if i >= 0:
            self._select(i)
            if not self._dirty:
                self._show(self.model.row_at(i))
        elif not self._dirty:
            self._show(None)

    def show_status(self, text: str) -> None:
        """A line under the table (e.g. the store could not be read)."""
        self.count.setText(text)

    def show_error(self, text: str) -> None:
        """Saving failed; the form keeps the admin's edits."""
        self._saving = False
        self._say(text, "error")
        self._update_buttons()

    def show_saved(self, row: CameraRow) -> None:
        self._saving = False
        i = self.model.put(row)
        self._count()
        self._show(row)
        self._select(i)
        self._say(f"Camera {row.id} saved.", "saved")

    # ----------------------------------------------------------------- actions
    def save(self) -> None:
        if self._current is None or self._saving:
            return
        try:
            edit = self.form.read(self._current.id)
        except ValueError as exc:
            self._say(str(exc).capitalize(), "error")
            return
        self._saving = True
        self._say("Saving…", "busy")
        self._update_buttons()
        self.save_requested.emit(edit)

    def revert(self) -> None:
        if self._current is not None:
            self._load_form(self._current)
            self._say("", "")

    def new_camera(self) -> None:
        self.table.selectionModel().clear()  # the current index too: reselecting it must load
        self._current = NEW_CAMERA
        self._load_form(NEW_CAMERA)
        self._say("Fill in the new camera and save.", "")

    def select_camera(self, camera_id: int) -> bool:
        """Select a camera by id (clearing a filter that hides it)."""
        i = self.model.row_of(camera_id)
        if i < 0:
            return False
        if not self.proxy.mapFromSource(self.model.index(i, 0)).isValid():
            self.filter.clear()
        self._select(i)
        return True

    # ---------------------------------------------------------------- internals
    def _select(self, source_row: int) -> None:
        index = self.proxy.mapFromSource(self.model.index(source_row, 0))
        if not index.isValid():
            return
        # Selecting the camera the form already shows does not reload it
        # (``_current_changed`` compares ids), so unsaved edits survive.
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows)
        self.table.scrollTo(index)

    def _current_changed(self, current: QModelIndex, _previous: QModelIndex) -> None:
        if not current.isValid():
            return
        row = self.model.row_at(self.proxy.mapToSource(current).row())
        if row is not None and (self._current is None or row.id != self._current.id):
            self._show(row)
            self._say("", "")

    def _show(self, row: CameraRow | None) -> None:
        self._current = None if row is None else row.as_edit()
        if self._current is None:
            self.form.load(None, "No camera selected")
            self._dirty = False
            self._update_buttons()
        else:
            self._load_form(self._current)

    def _load_form(self, edit: CameraEdit) -> None:
        title = "New camera" if edit.id is None else f"Camera {edit.id}"
        self.form.load(edit, title)
        self._dirty = edit.id is None
        self._update_buttons()

    def _edited(self) -> None:
        self._dirty = True
        self._update_buttons()

    def _update_buttons(self) -> None:
        self.save_button.setEnabled(self._dirty and not self._saving)
        self.revert_button.setEnabled(self._dirty and not self._saving
                                      and self._current is not None)

    def _filter(self, text: str) -> None:
        self.proxy.setFilterFixedString(text.strip())
        self._count()

    def _count(self) -> None:
        shown, total = self.proxy.rowCount(), self.model.rowCount()
        self.count.setText(f"{total:,} cameras" if shown == total
                           else f"{shown:,} of {total:,} cameras")

    def _say(self, text: str, kind: str) -> None:
        """``kind`` (error / saved / busy / "") is a property the theme styles."""
        self.message.setText(text)
        self.message.setProperty("kind", kind)
        self.message.style().unpolish(self.message)
        self.message.style().polish(self.message)


def fake_cameras(n: int = 60) -> list[CameraRow]:
    """Cameras around the three demo sites, for running the panel alone."""
    import random

    rng = random.Random(4)
    sites = [("서울숲", 37.5444, 127.0374, "서울특별시 성동구청"),
             ("신도림초", 37.5085, 126.8875, "서울특별시 구로구청"),
             ("신학초", 37.6655, 127.0420, "서울특별시 도봉구청")]
    rows = []
    for i in range(1, n + 1):
        place, lat, lon, agency = sites[i % 3]
        ptz = rng.random() < 0.3
        rows.append(CameraRow(
            id=i, name=f"{place} {i}번 · 어린이보호", lat=lat + rng.uniform(-0.003, 0.003),
            lon=lon + rng.uniform(-0.003, 0.003), agency=agency,
            purpose=rng.choice(["어린이보호", "생활방범", "공원관리"]),
            address=f"서울특별시 {place} 일대", direction_deg=None if ptz else rng.choice(
                [0.0, 45.0, 90.0, 180.0, 270.0]), fov_deg=360.0 if ptz else 90.0,
            range_m=100.0 if ptz else 80.0, ptz=ptz,
            stream_url=f"rtsp://10.20.{i // 250}.{i % 250}:554/live" if i % 7 else "",
            status=rng.choice(CAMERA_STATUSES[:3])))
    return rows


def main() -> int:
    from PySide6.QtWidgets import QApplication

    from console.theme import apply_theme

    app = QApplication(sys.argv)
    apply_theme(app)
    panel = CameraAdminPanel()
    rows = fake_cameras()
    panel.show_cameras(rows)
    next_id = [len(rows) + 1]

    def fake_save(edit: CameraEdit) -> None:
        if not 33.0 <= edit.lat <= 38.9:
            panel.show_error(f"latitude {edit.lat} is not in South Korea")
            return
        camera_id = edit.id if edit.id is not None else next_id[0]
        next_id[0] += edit.id is None
        panel.show_saved(CameraRow(**{**asdict(edit), "id": camera_id}))

    panel.save_requested.connect(fake_save)
    panel.reload_requested.connect(lambda: panel.show_cameras(rows))
    panel.resize(900, 700)
    panel.show()
    if rows:
        panel.select_camera(rows[0].id)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
