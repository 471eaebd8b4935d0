"""The admin's Enrolment tab: enrolled children (with their names: the
admin enrols them), their devices, guardians and consent; enrol one, end an
enrolment, register or unregister a device, import a school's roster.

It only presents and asks: every action is a signal the console's
controller sends to the engine (``console.admin_services_controller``),
which checks and writes and answers through ``show_saved``,
``show_removed`` or ``show_error``. Search and the school filter run in the
engine (a city roster is too large to send whole): the tab shows the first
``MAX_LISTED_CHILDREN`` that match and says how many match in all.

Names shown here stay here: the rest of the console is pseudonymous, and
the tab is only there for admins (the engine refuses anyone else).

Run alone on made-up children: ``python -m widgets.enrolment_admin [--shot PATH]``.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass

from PySide6.QtCore import (
    QAbstractTableModel,
    QItemSelectionModel,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    QTimer,
    Signal,
)
from PySide6.QtWidgets import (
    QComboBox,
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

from models.enrolment import DEVICE_KINDS, PROFILES
from models.messages import EnrolledChild
from widgets.tables import read_only

Index = QModelIndex | QPersistentModelIndex
SEARCH_DELAY_MS = 350  # typing pauses this long before the engine is asked


@dataclass(frozen=True)
class EnrolDraft:
    name: str
    school: str
    profile: str
    device_id: str
    device_kind: str


def devices_text(c: EnrolledChild) -> str:
    return ", ".join(f"{d} ({k})" for d, k in zip(c.devices, c.device_kinds, strict=False)) \
        or "none"


def guardians_text(c: EnrolledChild) -> str:
    if not c.guardians:
        return "none"
    named = [g for g in c.guardians if g]
    return ", ".join(named) if len(named) == len(c.guardians) else f"{len(c.guardians)}"


class ChildTableModel(QAbstractTableModel):
    HEADERS = ("Token", "Name", "School", "Profile", "Devices", "Guardians", "Consent")

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[EnrolledChild] = []

    def set_rows(self, rows: list[EnrolledChild]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def put(self, row: EnrolledChild) -> int:
        """Replace the child's row (by token) or add it; its index."""
        for i, r in enumerate(self.rows):
            if r.token == row.token:
                self.rows[i] = row
                self.dataChanged.emit(self.index(i, 0), self.index(i, len(self.HEADERS) - 1))
                return i
        self.beginInsertRows(QModelIndex(), len(self.rows), len(self.rows))
        self.rows.append(row)
        self.endInsertRows()
        return len(self.rows) - 1

    def drop(self, token: str) -> None:
        for i, r in enumerate(self.rows):
            if r.token == token:
                self.beginRemoveRows(QModelIndex(), i, i)
                del self.rows[i]
                self.endRemoveRows()
                return

    def row_of(self, token: str) -> int:
        return next((i for i, r in enumerate(self.rows) if r.token == token), -1)

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.HEADERS)

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        c = self.rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            return [c.token, c.name, c.school, c.profile, devices_text(c), guardians_text(c),
                    c.consent][index.column()]
        if role == Qt.ItemDataRole.UserRole:
            return c.token
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None


class EnrolmentAdminPanel(QWidget):
    load_requested = Signal(str, str)  # school ("" all), search
    enrol_requested = Signal(object)  # EnrolDraft
    remove_requested = Signal(str)  # child token
    add_device_requested = Signal(str, str, str)  # child token, device id, kind
    remove_device_requested = Signal(str)  # device id
    import_requested = Signal()

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("enrolmentAdmin")
        self.model = ChildTableModel()
        self.search = QLineEdit()
        self.search.setPlaceholderText(self.tr("Search: token, name or device id"))
        self.search.setClearButtonEnabled(True)
        self.school_filter = QComboBox()
        self.school_filter.setMinimumContentsLength(10)
        self.school_filter.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.reload_button = QPushButton(self.tr("Reload"))
        self.import_button = QPushButton(self.tr("Import roster…"))
        self.table = QTableView()
        self.table.setModel(self.model)
        read_only(self.table, stretch=4)  # after setModel: it sizes the model's columns
        self.table.setAlternatingRowColors(True)
        self.table.selectionModel().currentRowChanged.connect(self._current_changed)
        self.count = QLabel(self.tr("Not loaded yet"))
        self.message = QLabel("")
        self.message.setObjectName("adminMessage")
        self.message.setWordWrap(True)
        # Enrol a child.
        self.name = QLineEdit()
        self.school = QComboBox()
        self.profile = QComboBox()
        self.profile.addItems(list(PROFILES))
        self.device_id = QLineEdit()
        self.device_id.setPlaceholderText(self.tr("optional"))
        self.device_kind = QComboBox()
        self.device_kind.addItems(list(DEVICE_KINDS))
        self.enrol_button = QPushButton(self.tr("Enrol"))
        self.enrol_button.setObjectName("enrolChild")
        # The selected child.
        self.selected_title = QLabel(self.tr("No child selected"))
        self.new_device = QLineEdit()
        self.new_device.setPlaceholderText(self.tr("device id"))
        self.new_kind = QComboBox()
        self.new_kind.addItems(list(DEVICE_KINDS))
        self.add_device_button = QPushButton(self.tr("Add device"))
        self.devices = QComboBox()
        self.remove_device_button = QPushButton(self.tr("Remove device…"))
        self.remove_button = QPushButton(self.tr("Remove child…"))
        self._layout()
        self._timer = QTimer(self)
        self._timer.setSingleShot(True)
        self._timer.setInterval(SEARCH_DELAY_MS)
        self._timer.timeout.connect(self.reload)
        self.search.textChanged.connect(lambda _t: self._timer.start())
        self.school_filter.activated.connect(lambda _i: self.reload())
        self.reload_button.clicked.connect(self.reload)
        self.import_button.clicked.connect(self.import_requested)
        self.enrol_button.clicked.connect(self.enrol)
        self.add_device_button.clicked.connect(self.add_device)
        self.remove_device_button.clicked.connect(self.remove_device)
        self.remove_button.clicked.connect(self.remove_child)
        self.busy = False
        self.set_schools([])
        self._update_buttons()

    def _layout(self) -> None:
        title = QLabel(self.tr("Enrolment"))
        title.setObjectName("panelTitle")
        top = QHBoxLayout()
        top.addWidget(title)
        top.addWidget(self.search, 1)
        top.addWidget(self.school_filter)
        top.addWidget(self.reload_button)
        top.addWidget(self.import_button)
        upper = QWidget()
        column = QVBoxLayout(upper)
        column.setContentsMargins(0, 0, 0, 0)
        column.addLayout(top)
        column.addWidget(self.table, 1)
        column.addWidget(self.count)
        enrol = QGroupBox(self.tr("Enrol a child"))
        grid = QGridLayout(enrol)
        grid.addWidget(QLabel(self.tr("Name")), 0, 0)
        grid.addWidget(self.name, 0, 1)
        grid.addWidget(QLabel(self.tr("School")), 0, 2)
        grid.addWidget(self.school, 0, 3)
        grid.addWidget(QLabel(self.tr("Profile")), 1, 0)
        grid.addWidget(self.profile, 1, 1)
        grid.addWidget(QLabel(self.tr("Device")), 1, 2)
        device = QHBoxLayout()
        device.addWidget(self.device_id, 1)
        device.addWidget(self.device_kind)
        grid.addLayout(device, 1, 3)
        grid.addWidget(self.enrol_button, 2, 3, Qt.AlignmentFlag.AlignRight)
        grid.setColumnStretch(1, 1)
        grid.setColumnStretch(3, 1)
        chosen = QGroupBox(self.tr("Selected child"))
        box = QGridLayout(chosen)
        box.addWidget(self.selected_title, 0, 0, 1, 4)
        box.addWidget(self.new_device, 1, 0, 1, 2)
        box.addWidget(self.new_kind, 1, 2)
        box.addWidget(self.add_device_button, 1, 3)
        box.addWidget(self.devices, 2, 0, 1, 3)
        box.addWidget(self.remove_device_button, 2, 3)
        box.addWidget(self.remove_button, 3, 3)
        box.setColumnStretch(0, 1)
        lower = QWidget()
        below = QVBoxLayout(lower)
        below.setContentsMargins(0, 0, 0, 0)
        below.addWidget(enrol)
        below.addWidget(chosen)
        below.addWidget(self.message)
        below.addStretch(1)
        split = QSplitter(Qt.Orientation.Vertical)
        split.addWidget(upper)
        split.addWidget(lower)
        split.setChildrenCollapsible(False)
        split.setSizes([520, 360])
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(split)

    # ------------------------------------------------------------ controller API
    def set_schools(self, names: list[str]) -> None:
        """The zones a child may be enrolled at (the registry's names)."""
        current, chosen = self.school_filter.currentData(), self.school.currentText()
        self.school_filter.clear()
        self.school_filter.addItem(self.tr("All schools"), "")
        for n in names:
            self.school_filter.addItem(n, n)
        i = self.school_filter.findData(current)
        self.school_filter.setCurrentIndex(max(i, 0))
        self.school.clear()
        self.school.addItems(names)
        if chosen in names:
            self.school.setCurrentText(chosen)

    def show_children(self, rows: list[EnrolledChild], total: int) -> None:
        token = self.selected_token()
        self.model.set_rows(rows)
        shown = len(rows)
        self.count.setText(self.tr("{0} children").format(f"{total:,}") if shown == total
                           else self.tr("{0} children match; the first {1} are listed "
                                        "(search to narrow)").format(f"{total:,}",
                                                                     f"{shown:,}"))
        if token:
            self._select(self.model.row_of(token))
        self._show_selected()

    def show_saved(self, child: EnrolledChild, message: str) -> None:
        self.busy = False
        self._select(self.model.put(child))
        self._show_selected()
        self.name.clear()
        self.device_id.clear()
        self.new_device.clear()
        self._say(message, "saved")

    def show_removed(self, token: str, message: str) -> None:
        self.busy = False
        self.model.drop(token)
        self._show_selected()
        self._say(message, "saved")

    def show_error(self, text: str) -> None:
        self.busy = False
        self._say(text, "error")
        self._update_buttons()

    def show_status(self, text: str) -> None:
        self.count.setText(text)

    def selected_token(self) -> str:
        i = self.table.selectionModel().currentIndex()
        return str(self.model.data(self.model.index(i.row(), 0), Qt.ItemDataRole.UserRole)
                   or "") if i.isValid() else ""

    def selected_child(self) -> EnrolledChild | None:
        i = self.model.row_of(self.selected_token())
        return self.model.rows[i] if i >= 0 else None

    def confirm(self, title: str, text: str) -> bool:
        """Ask before removing (tests replace it)."""
        return QMessageBox.question(self, title, text) == QMessageBox.StandardButton.Yes

    # ----------------------------------------------------------------- actions
    def reload(self) -> None:
        self._timer.stop()
        self.load_requested.emit(str(self.school_filter.currentData() or ""),
                                 self.search.text().strip())

    def enrol(self) -> None:
        if self.busy:
            return
        device = self.device_id.text().strip()
        self._busy(self.tr("Enrolling…"))
        self.enrol_requested.emit(EnrolDraft(self.name.text().strip(),
                                             self.school.currentText(),
                                             self.profile.currentText(), device,
                                             self.device_kind.currentText() if device else ""))

    def add_device(self) -> None:
        token = self.selected_token()
        if token and not self.busy:
            self._busy(self.tr("Registering the device…"))
            self.add_device_requested.emit(token, self.new_device.text().strip(),
                                           self.new_kind.currentText())

    def remove_device(self) -> None:
        device = self.devices.currentText()
        if device and not self.busy and self.confirm(
                self.tr("Remove device"),
                self.tr("Unregister {0}? The gateway refuses it from then on; its stored "
                        "fixes stay.").format(device)):
            self._busy(self.tr("Unregistering…"))
            self.remove_device_requested.emit(device)

    def remove_child(self) -> None:
        child = self.selected_child()
        if child is None or self.busy:
            return
        if self.confirm(self.tr("Remove child"),
                        self.tr("End the enrolment of {0} ({1})? Their devices are "
                                "unregistered and their timetable deleted; history stays "
                                "under retention.").format(child.token, child.name)):
            self._busy(self.tr("Removing…"))
            self.remove_requested.emit(child.token)

    # ---------------------------------------------------------------- internals
    def _busy(self, text: str) -> None:
        self.busy = True
        self._say(text, "busy")
        self._update_buttons()

    def _select(self, row: int) -> None:
        if row < 0:
            return
        index = self.model.index(row, 0)
        self.table.selectionModel().setCurrentIndex(
            index, QItemSelectionModel.SelectionFlag.ClearAndSelect
            | QItemSelectionModel.SelectionFlag.Rows)
        self.table.scrollTo(index)

    def _current_changed(self, _current: QModelIndex, _previous: QModelIndex) -> None:
        self._show_selected()

    def _show_selected(self) -> None:
        c = self.selected_child()
        self.selected_title.setText(
            self.tr("No child selected") if c is None
            else f"{c.token} · {c.name} · {c.school or '—'} · {c.consent}")
        self.devices.clear()
        if c is not None:
            self.devices.addItems(c.devices)
        self._update_buttons()

    def _update_buttons(self) -> None:
        idle = not self.busy
        chosen = self.selected_child() is not None
        self.enrol_button.setEnabled(idle)
        self.add_device_button.setEnabled(idle and chosen)
        self.remove_device_button.setEnabled(idle and chosen and self.devices.count() > 0)
        self.remove_button.setEnabled(idle and chosen)

    def _say(self, text: str, kind: str) -> None:
        """``kind`` (error / saved / busy / "") is a property the theme styles."""
        self.message.setText(text)
        self.message.setProperty("kind", kind)
        self.message.style().unpolish(self.message)
        self.message.style().polish(self.message)


# --------------------------------------------------------------- standalone

def fake_children(n: int = 40) -> list[EnrolledChild]:
    """Made-up children at the demo schools, for running the panel alone."""
    family = "김이박최정강조윤장임"
    given = ["민준", "서연", "도윤", "하은", "시우", "지유", "예준", "서윤", "주원", "지아"]
    schools = ["신도림초등학교", "신학초등학교", "서울숲"]
    rows = []
    for i in range(n):
        kinds = ["watch"] if i % 3 else ["watch", "phone"]
        rows.append(EnrolledChild(
            token=f"C-{0x3A0F00 + i * 7919:07X}", name=family[i % 10] + given[(i * 3) % 10],
            school=schools[i % 3], profile="bus" if i % 7 == 0 else "walking",
            devices=[f"W-{10240 + i}", f"P-{5550 + i}"][:len(kinds)], device_kinds=kinds,
            guardians=["mother"] if i % 4 else ["mother", "father"],
            consent="no consent" if i % 11 == 5 else "routine,location,emergency"))
    return rows


def main(argv: list[str] | None = None) -> int:
    import argparse

    from PySide6.QtWidgets import QApplication

    from console.theme import apply_theme
    from widgets.file_import_dialog import FileImportDialog

    parser = argparse.ArgumentParser(description="The Enrolment admin tab on made-up children")
    parser.add_argument("--shot", help="save a PNG of the panel and quit")
    parser.add_argument("--dialog-shot", help="also save the roster import with problems")
    args = parser.parse_args(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    apply_theme(app)  # type: ignore[arg-type]
    panel = EnrolmentAdminPanel()
    rows = fake_children()
    panel.set_schools(["서울숲", "신도림초등학교", "신학초등학교"])
    panel.show_children(rows, 812)
    panel.load_requested.connect(lambda school, text: panel.show_children(
        [r for r in rows if (not school or r.school == school)
         and (text in r.token or text in r.name)], 812))
    panel.resize(770, 860)
    panel.show()
    panel._select(2)
    panel._show_selected()
    panel.show_error("Not enrolled: name: missing; school: no zone named '신도림초' "
                     "(zones: 서울숲, 신도림초등학교, 신학초등학교)")
    school = QComboBox()
    school.addItems(["(from the file)", "신도림초등학교"])
    dialog = FileImportDialog("Import roster", "A school roster CSV (UTF-8 or CP949)",
                              "CSV (*.csv *.txt)", panel, [("Default school", school)])
    dialog.set_path("/tmp/sindorim_2026.csv")
    dialog.show_result(False, "sindorim_2026.csv: 3 problems; nothing was imported.",
                       ["line 4: device_kind: must be one of watch, phone, tag, not 'band'",
                        "line 9: consent: missing (no child is tracked without consent)",
                        "line 12: device_id: W-10244 is also on line 6"], 3)
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
