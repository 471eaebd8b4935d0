"""The operator's alert queue: every alert in the order operators work it.

It only presents: new alerts first, then by priority, oldest first
(``models.alerts.sort_key``); rows coloured by a severity name the theme
maps to colours (``QueuePalette``); Age and SLA recounted by ``tick(now)``
once a second without resetting the model. Filters narrow what is shown
(all, mine, unassigned, P1–P2, one district); the selection follows the
alert, not the row. The selected alert goes out as ``selected`` for the
alert panel beside it, which holds every action; Enter (or a double click)
asks the window to show it on the map.

Keys: Up/Down move, N or F8 selects the most urgent new alert (clearing a
filter that hides it), Enter locates.

The Device column shows only the id's tail ("•••• 4821",
``models.privacy_view.mask_device``): a device id is the device's only
credential, and a queue is on screen all shift long.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Iterable

from PySide6.QtCore import (
    Property,
    QItemSelection,
    QModelIndex,
    QPersistentModelIndex,
    Qt,
    Signal,
)
from PySide6.QtGui import QColor, QKeySequence, QShortcut, QShowEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QComboBox,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QPushButton,
    QStyledItemDelegate,
    QStyleOptionViewItem,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from models.alerts import DEFAULT_SLA, district, sort_key
from models.messages import AlertView
from models.privacy_view import mask_device
from models.qt.alert_table import (
    COLUMNS,
    DEVICE,
    FILTERS,
    KIND_LABEL,
    PLACE,
    STATE_LABEL,
    AlertTableModel,
    SeverityRole,
    passes,
    tr,
)
from widgets.severity import SeverityPalette

NEXT_SHORTCUTS = ("N", "F8")


class SeverityDelegate(QStyledItemDelegate):
    """Paints each cell's background in the colour of its severity name."""

    def __init__(self, palette: SeverityPalette, parent: QWidget,
                 elide_left: frozenset[int] = frozenset()) -> None:
        super().__init__(parent)
        self.palette = palette
        self.elide_left = elide_left  # columns whose tail matters (device ids)

    def initStyleOption(self, option: QStyleOptionViewItem,
                        index: QModelIndex | QPersistentModelIndex) -> None:
        super().initStyleOption(option, index)
        if index.column() in self.elide_left:
            option.textElideMode = Qt.TextElideMode.ElideLeft
        sev = index.data(SeverityRole)
        if sev:
            option.backgroundBrush = self.palette.colour(str(sev))
            option.palette.setColor(option.palette.ColorRole.Text, self.palette.colour("text"))


def _colour(name: str, default: str) -> Property:
    attr = f"_{name}"

    def getter(self: QueuePalette) -> QColor:
        return getattr(self, attr, QColor(default))

    def setter(self: QueuePalette, value: QColor) -> None:
        setattr(self, attr, QColor(value))

    return Property(QColor, getter, setter)


class QueuePalette(SeverityPalette):
    """The queue's severities beyond ``SeverityPalette``'s, set by the theme
    (``QueuePalette { qproperty-medium: …; }``); defaults are a fallback only."""

    medium = _colour("medium", "#5b4a0e")
    low = _colour("low", "#1f3b2d")
    onHold = _colour("onHold", "#3b2f5c")  # camelCase: a Qt property named for QSS
    dispatched = _colour("dispatched", "#134e4a")
    escalated = _colour("escalated", "#9f1239")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("queuePalette")


class MaskedAlertTableModel(AlertTableModel):
    """The queue's model with the device id masked in every role it is read
    through (display, copy, accessibility): the full id never reaches the view."""

    def cell(self, row: AlertView, column: int) -> str:
        text = super().cell(row, column)
        return mask_device(text) if column == DEVICE else text


class AlertQueue(QWidget):
    """The queue table with its filters. Present-only: it emits, never sends."""

    selected = Signal(object)  # AlertView | None: selection changed, or the selected alert did
    locate_requested = Signal(object)  # AlertView

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("alertQueue")
        self._all: list[AlertView] = []
        self._user = ""
        self._roles: frozenset[str] = frozenset()
        self._mode = "all"
        self._district = ""
        self._current: AlertView | None = None
        self._updating = False
        self._sized = False

        self.model = MaskedAlertTableModel()
        self.severity = QueuePalette(self)
        self.title = QLabel(self.tr("Alerts"))
        self.title.setObjectName("panelTitle")

        self.filter_group = QButtonGroup(self)
        self.filter_group.setExclusive(True)
        self.filter_buttons: dict[str, QPushButton] = {}
        texts = {"all": self.tr("All"), "mine": self.tr("Mine"),
                 "unassigned": self.tr("Unassigned"), "urgent": self.tr("P1–P2")}
        tips = {"all": self.tr("Every alert"),
                "mine": self.tr("Alerts you own"),
                "unassigned": self.tr("Open alerts nobody owns yet"),
                "urgent": self.tr("Open alerts of priority 1 or 2")}
        for mode in FILTERS:
            button = QPushButton(texts[mode])
            button.setObjectName("queueFilter")
            button.setCheckable(True)
            button.setToolTip(tips[mode])
            button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            self.filter_group.addButton(button)
            self.filter_buttons[mode] = button
            button.clicked.connect(lambda _=False, m=mode: self.set_filter(m))
        self.filter_buttons["all"].setChecked(True)
        self.filter_buttons["mine"].setEnabled(False)
        self.district_combo = QComboBox()
        self.district_combo.setObjectName("districtFilter")
        self.district_combo.setToolTip(self.tr("Only alerts in one district (구)"))
        self.district_combo.setMinimumContentsLength(8)
        self.district_combo.setSizeAdjustPolicy(
            QComboBox.SizeAdjustPolicy.AdjustToMinimumContentsLengthWithIcon)
        self.district_combo.addItem(self.tr("All districts"), "")
        self.district_combo.currentIndexChanged.connect(self._district_changed)

        self.table = QTableView()
        self.table.setObjectName("alertTable")
        self.table.setModel(self.model)
        self.table.setItemDelegate(SeverityDelegate(self.severity, self.table,
                                                    elide_left=frozenset({DEVICE})))
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.verticalHeader().hide()
        self.table.setShowGrid(False)
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        header = self.table.horizontalHeader()
        header.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        header.setSectionResizeMode(PLACE, QHeaderView.ResizeMode.Stretch)
        header.setMinimumSectionSize(24)
        self.table.doubleClicked.connect(lambda idx: self._locate(idx.row()))
        self.table.selectionModel().selectionChanged.connect(self._selection_changed)
        self.setFocusProxy(self.table)

        next_tip = self.tr("Select the most urgent new alert")
        for key in NEXT_SHORTCUTS:
            context = (Qt.ShortcutContext.WindowShortcut if key.startswith("F")
                       else Qt.ShortcutContext.WidgetWithChildrenShortcut)
            QShortcut(QKeySequence(key), self, self.next_alert, context=context)
        for key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            QShortcut(QKeySequence(key), self.table, self.locate_selected,
                      context=Qt.ShortcutContext.WidgetShortcut)
        self.next_button = QPushButton(self.tr("Next (N)"))
        self.next_button.setObjectName("nextAlertButton")
        self.next_button.setToolTip(f"{next_tip} — N / F8")
        self.next_button.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.next_button.clicked.connect(self.next_alert)

        head = QHBoxLayout()
        head.addWidget(self.title)
        head.addStretch(1)
        head.addWidget(self.next_button)
        filters = QHBoxLayout()
        filters.setSpacing(4)
        for button in self.filter_buttons.values():
            filters.addWidget(button)
        filters.addStretch(1)
        filters.addWidget(self.district_combo)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addLayout(head)
        layout.addLayout(filters)
        layout.addWidget(self.table, 1)

    # ------------------------------------------------------------ inputs

    def set_alerts(self, rows: Iterable[AlertView], now: float | None = None) -> None:
        """Show ``rows`` (any order: the queue's order is ``sort_key``),
        keeping the selected alert selected while it is shown."""
        self._all = sorted(rows, key=sort_key)
        if now is not None:
            self.model.now = now
        self._refill_districts()
        self._apply()

    def tick(self, now: float) -> None:
        """Recount Age and SLA (the window calls this once a second)."""
        self.model.tick(now)

    def set_user(self, name: str, roles: Iterable[str] = ()) -> None:
        """The signed-in user: "Mine" shows the alerts they own."""
        self._user = name
        self._roles = frozenset(roles)
        self.filter_buttons["mine"].setEnabled(bool(name))
        if not name and self._mode == "mine":
            self.set_filter("all")
        else:
            self._apply()

    def set_filter(self, mode: str) -> None:
        """One of ``models.qt.alert_table.FILTERS``."""
        if mode not in FILTERS:
            raise ValueError(f"unknown queue filter {mode!r}")
        self._mode = mode
        self.filter_buttons[mode].setChecked(True)
        self._apply()

    def set_district(self, name: str) -> None:
        """Show one district's alerts ("" = all)."""
        i = self.district_combo.findData(name)
        self.district_combo.setCurrentIndex(max(i, 0))

    # ------------------------------------------------------------ reading

    @property
    def filter(self) -> str:
        return self._mode

    @property
    def district(self) -> str:
        return self._district

    def alerts(self) -> list[AlertView]:
        """Every alert the queue holds, in queue order (filtered or not)."""
        return list(self._all)

    def visible_alerts(self) -> list[AlertView]:
        return self.model.rows()

    def districts(self) -> list[str]:
        return [self.district_combo.itemData(i) for i in range(1, self.district_combo.count())]

    def selected_alert(self) -> AlertView | None:
        return self.model.alert_at(self._selected_row())

    # ------------------------------------------------------------ actions

    def select_alert(self, alert_id: int) -> bool:
        """Select the alert with ``alert_id`` if it is shown."""
        row = self.model.row_of(alert_id)
        if row < 0:
            return False
        self.table.selectRow(row)
        self.table.scrollTo(self.model.index(row, 0))
        return True

    def next_alert(self) -> AlertView | None:
        """Select the most urgent new alert (lowest priority number, then the
        oldest), clearing the filters if they hide it."""
        target = next((a for a in self._all if a.state == "new"), None)
        if target is None:
            return None
        if self.model.row_of(target.id) < 0:
            self._mode, self._district = "all", ""
            self.filter_buttons["all"].setChecked(True)
            self.district_combo.blockSignals(True)
            self.district_combo.setCurrentIndex(0)
            self.district_combo.blockSignals(False)
            self._apply()
        self.select_alert(target.id)
        self.table.setFocus()
        return target

    def locate_selected(self) -> None:
        self._locate(self._selected_row())

    # ------------------------------------------------------------ internals

    def _apply(self) -> None:
        visible = [a for a in self._all if passes(a, self._mode, self._user, self._district)]
        keep = self._current.id if self._current is not None else None
        self._updating = True
        try:
            reset = self.model.replace_rows(visible)
            row = self.model.row_of(keep) if keep is not None else -1
            if row < 0 and visible and visible[0].state == "new":
                row = 0
            if row < 0:
                self.table.clearSelection()
            elif reset or self._selected_row() != row:
                self.table.selectRow(row)
        finally:
            self._updating = False
        self._update_title()
        self._announce()

    def _refill_districts(self) -> None:
        names = sorted({d for a in self._all if (d := district(a))})
        if names == self.districts():
            return
        keep = self._district
        self.district_combo.blockSignals(True)
        while self.district_combo.count() > 1:
            self.district_combo.removeItem(1)
        for name in names:
            self.district_combo.addItem(name, name)
        i = self.district_combo.findData(keep)
        self.district_combo.setCurrentIndex(max(i, 0))
        self.district_combo.blockSignals(False)
        self._district = self.district_combo.currentData() or ""

    def _district_changed(self, _index: int) -> None:
        self._district = self.district_combo.currentData() or ""
        self._apply()

    def _update_title(self) -> None:
        new = sum(1 for a in self._all if a.state == "new")
        open_ = sum(1 for a in self._all if a.state != "resolved")
        text = self.tr("Alerts")
        if open_:
            text += " · " + self.tr("%1 new · %2 open").replace("%1", str(new)).replace(
                "%2", str(open_))
        self.title.setText(text)
        self.title.setProperty("alarm", "true" if new else "false")
        self.title.style().unpolish(self.title)
        self.title.style().polish(self.title)

    def _selected_row(self) -> int:
        rows = self.table.selectionModel().selectedRows()
        return rows[0].row() if rows else -1

    def _selection_changed(self, _sel: QItemSelection, _desel: QItemSelection) -> None:
        if not self._updating:
            self._announce()

    def _announce(self) -> None:
        """Emit ``selected`` when the selected alert is another one, or changed."""
        alert = self.selected_alert()
        old = self._current
        same = (alert is None and old is None) or (
            alert is not None and old is not None and alert.id == old.id
            and alert.version == old.version and alert == old)
        self._current = alert
        if not same:
            self.selected.emit(alert)

    def _locate(self, row: int) -> None:
        alert = self.model.alert_at(row)
        if alert is not None:
            self.locate_requested.emit(alert)

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if not self._sized:
            self._sized = True
            self.size_columns()

    def size_columns(self) -> None:
        """Column widths from the font, once (not per tick: ResizeToContents
        would measure every row each second)."""
        fm = self.table.fontMetrics()
        samples = {
            "Age": "9:59 h", "P": "P4", "Kind": max(KIND_LABEL.values(), key=len),
            "Child": "C-A13F00X", "State": max(STATE_LABEL.values(), key=len),
            "Owner": "operator1", "Count": "×99", "SLA": tr("overdue %1").replace("%1", "10:00"),
            "Device": mask_device("86045925926"),
        }
        header = self.table.horizontalHeader()
        for i, name in enumerate(COLUMNS):
            if i == PLACE:
                continue
            text = samples.get(name, name)
            head = str(self.model.headerData(i, Qt.Orientation.Horizontal))
            width = max(fm.horizontalAdvance(tr(text)), fm.horizontalAdvance(head) + 6)
            header.resizeSection(i, width + 10)


# ------------------------------------------------------------------ fake data

_PLACES = ("성동구 성수동1가", "구로구 신도림동", "도봉구 방학동")
_SITES = ((37.5444, 127.0374), (37.5085, 126.8875), (37.6655, 127.0420))
_ZONES = ("Seoul Forest Park", "Sindorim Elementary", "Sinhak Elementary")


def fake_alerts(now: float | None = None) -> list[AlertView]:
    """Plausible alerts for running a panel alone: every priority, every
    state, owned and not, folded, escalated, on hold, dispatched, resolved."""
    now = time.time() if now is None else now
    specs: list[tuple[str, int, str, dict[str, object]]] = [
        ("sos", 1, "new", {"count": 3, "age": 25}),
        ("fall", 1, "new", {"age": 75, "breaches": 1}),
        ("zone_exit", 2, "new", {"age": 50}),
        ("removed", 2, "acknowledged", {"age": 300, "acked_by": "kim.op"}),
        ("zone_exit", 3, "new", {"age": 140, "position_is_last_known": True}),
        ("low_battery", 4, "new", {"age": 600, "battery": 9, "battery_trend": -6.5}),
        ("sos", 1, "in_progress", {"age": 420, "owner": "kim.op",
                                   "steps": ["cctv", "call_device"]}),
        ("zone_exit", 2, "on_hold", {"age": 900, "owner": "lee.op",
                                     "hold_reason": "guardian calling back",
                                     "hold_until": now + 600}),
        ("fall", 1, "dispatched", {"age": 1300, "owner": "kim.op", "dispatched_to": "fire",
                                   "dispatch_ref": "119-2231",
                                   "steps": ["call_device", "cctv", "call_guardian",
                                             "decide_dispatch"]}),
        ("zone_exit", 3, "in_progress", {"age": 8000, "owner": "park.sv", "breaches": 2}),
        ("removed", 4, "acknowledged", {"age": 2000}),
        ("sos", 2, "resolved", {"age": 4000, "owner": "lee.op", "outcome": "false_alarm",
                                "steps": ["cctv", "call_device", "call_guardian",
                                          "decide_dispatch"]}),
        ("low_battery", 4, "resolved", {"age": 9000, "owner": "kim.op",
                                        "outcome": "child_safe", "battery": 4,
                                        "steps": ["notify_guardian"]}),
    ]
    out: list[AlertView] = []
    for i, (kind, prio, state, extra) in enumerate(specs):
        opened = now - float(extra.pop("age"))  # type: ignore[arg-type]
        sla = DEFAULT_SLA[prio]
        site = i % 3
        owner = str(extra.get("owner", ""))
        acked = state != "new"
        fields: dict[str, object] = {
            "id": 101 + i, "kind": kind, "priority": prio, "state": state,
            "child_token": f"C-{0xA13F00 + i * 7919:06X}", "child_slot": i,
            "device_id": f"86{(i * 7_654_321) % 10**12:012d}",
            "lat": _SITES[site][0] + 0.001 * (i % 4), "lon": _SITES[site][1] - 0.001 * (i % 3),
            "place": _PLACES[site], "zone": _ZONES[site], "opened_at": opened,
            "ack_due": opened + sla.ack_s, "close_due": opened + sla.close_s,
            "acked_by": (owner or "kim.op") if acked else "",
            "acked_at": opened + 20 if acked else 0.0,
            "version": 1 + 2 * i % 7, "updated_at": now - 10,
            "last_reader": "R001-1" if site == 0 else "",
            "last_reader_at": opened - 120 if site == 0 else 0.0,
            "battery": 62 - 3 * i, "resolved_at": now - 60 if state == "resolved" else 0.0,
        }
        fields.update(extra)
        out.append(AlertView(**fields))  # type: ignore[arg-type]
    return out


def main() -> int:
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from console.theme import apply_theme

    app = QApplication(sys.argv)
    apply_theme(app)
    w = AlertQueue()
    w.set_user("kim.op", ["operator"])
    w.set_alerts(fake_alerts())
    w.selected.connect(lambda a: print("selected", a.id if a else None))
    w.locate_requested.connect(lambda a: print("locate", a.id))
    timer = QTimer(w)
    timer.timeout.connect(lambda: w.tick(time.time()))
    timer.start(1000)
    w.resize(1000, 460)
    w.setWindowTitle(w.tr("Alert queue (fake data)"))
    w.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
