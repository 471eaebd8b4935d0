"""The auditor's view of the location-usage log: read-only, nothing live.

Every reveal, history, disclosure, export, consent and purge leaves a
record in a hash chain the engine verifies. An auditor filters it (child
token, actor, action, dates), reads it here and exports it. The banner says
whether the chain checked out when the page was read, and where it broke
if it did not; a page cut at its limit says so. Nothing is cut silently:
columns resize, long purposes and details are whole in their tooltips.

It only presents and asks: ``query_requested`` / ``export_requested``
carry a ``UsageFilter``; the controller sends ``UsageRequest`` and hands
the ``UsageRows`` to ``show_rows`` (or writes the export).
"""

from __future__ import annotations

import sys
import time
from datetime import date, datetime, timedelta

from PySide6.QtCore import QDate, Qt, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QCheckBox,
    QComboBox,
    QDateEdit,
    QGridLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from models.messages import UsageRows
from models.privacy_view import USAGE_COLUMNS, usage_cells
from models.usage import ACTIONS, UsageEntry, UsageFilter

PAGE = 1000  # records one search shows (newest first); an export takes them all
HEADERS = ("Seq", "Time", "Actor", "Child", "Action", "Purpose", "Alert", "Detail")
SEQ, TIME, ACTOR, CHILD, ACTION, PURPOSE, ALERT, DETAIL = range(len(USAGE_COLUMNS))
# Widths the text columns start at (then the auditor's, by dragging).
START_WIDTH = {PURPOSE: 260, DETAIL: 420}


def day_start(d: date) -> float:
    """Local midnight at the start of ``d``, as epoch seconds."""
    return datetime(d.year, d.month, d.day).timestamp()


class UsageLogView(QWidget):
    """Filters, the records and the chain's state. Present-only."""

    query_requested = Signal(object)  # UsageFilter
    export_requested = Signal(object)  # UsageFilter, limit None: every matching record

    def __init__(self, parent: QWidget | None = None, *, today: date | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("usageLog")
        self._rows: list[UsageEntry] = []
        self._asked: UsageFilter | None = None
        self._loaded_once = False
        today = today or date.today()

        title = QLabel(self.tr("Location-usage log"))
        title.setObjectName("panelTitle")
        readonly = QLabel(self.tr("read-only · no live positions"))
        readonly.setObjectName("usageReadonly")

        self.child = QLineEdit()
        self.child.setObjectName("usageChild")
        self.child.setPlaceholderText(self.tr("any child (token, e.g. C-9D396A5)"))
        self.child.setMaxLength(32)
        self.actor = QLineEdit()
        self.actor.setObjectName("usageActor")
        self.actor.setPlaceholderText(self.tr("anyone (user name)"))
        self.actor.setMaxLength(64)
        self.action = QComboBox()
        self.action.setObjectName("usageAction")
        self.action.addItem(self.tr("any action"), None)
        for name in ACTIONS:
            self.action.addItem(name, name)
        self.since_on = QCheckBox(self.tr("From"))
        self.since_on.setObjectName("usageSinceOn")
        self.since = QDateEdit(QDate(today.year, today.month, today.day).addDays(-7))
        self.until_on = QCheckBox(self.tr("to (inclusive)"))
        self.until_on.setObjectName("usageUntilOn")
        self.until = QDateEdit(QDate(today.year, today.month, today.day))
        for check, edit in ((self.since_on, self.since), (self.until_on, self.until)):
            edit.setCalendarPopup(True)
            edit.setDisplayFormat("yyyy-MM-dd")
            edit.setEnabled(False)
            check.toggled.connect(edit.setEnabled)
        self.search_button = QPushButton(self.tr("Search"))
        self.search_button.setObjectName("usageSearch")
        self.search_button.clicked.connect(self.search)
        self.export_button = QPushButton(self.tr("Export CSV…"))
        self.export_button.setObjectName("usageExport")
        self.export_button.setToolTip(self.tr("Every record matching the filter, to a CSV "
                                              "file (the export is itself recorded)"))
        self.export_button.clicked.connect(self.export)
        for edit in (self.child, self.actor):
            edit.returnPressed.connect(self.search)

        self.banner = QLabel()
        self.banner.setObjectName("chainBanner")
        self.banner.setWordWrap(True)
        self.banner.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.count = QLabel()
        self.count.setObjectName("usageCount")
        self.count.setWordWrap(True)

        self.table = QTableWidget(0, len(HEADERS))
        self.table.setObjectName("usageTable")
        self.table.setHorizontalHeaderLabels([self.tr(h) for h in HEADERS])
        self.table.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.table.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        self.table.verticalHeader().hide()
        self.table.setWordWrap(False)
        self.table.setTextElideMode(Qt.TextElideMode.ElideRight)
        self.table.setHorizontalScrollMode(QAbstractItemView.ScrollMode.ScrollPerPixel)
        head = self.table.horizontalHeader()
        head.setSectionResizeMode(QHeaderView.ResizeMode.Interactive)
        head.setStretchLastSection(True)
        head.setMinimumSectionSize(40)

        filters = QGridLayout()
        filters.setHorizontalSpacing(6)
        filters.addWidget(QLabel(self.tr("Child")), 0, 0)
        filters.addWidget(self.child, 0, 1)
        filters.addWidget(QLabel(self.tr("Actor")), 0, 2)
        filters.addWidget(self.actor, 0, 3)
        filters.addWidget(QLabel(self.tr("Action")), 0, 4)
        filters.addWidget(self.action, 0, 5)
        dates = QHBoxLayout()
        dates.addWidget(self.since_on)
        dates.addWidget(self.since)
        dates.addWidget(self.until_on)
        dates.addWidget(self.until)
        dates.addStretch(1)
        dates.addWidget(self.search_button)
        dates.addWidget(self.export_button)
        filters.addLayout(dates, 1, 0, 1, 6)
        filters.setColumnStretch(1, 2)
        filters.setColumnStretch(3, 1)

        top = QHBoxLayout()
        top.addWidget(title)
        top.addWidget(readonly)
        top.addStretch(1)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 0, 8, 4)
        layout.setSpacing(6)
        layout.addLayout(top)
        layout.addLayout(filters)
        layout.addWidget(self.banner)
        layout.addWidget(self.count)
        layout.addWidget(self.table, 1)
        self._say_chain(None, "")
        self.count.setText(self.tr("Search to read the log."))

    # ------------------------------------------------------------ reading

    def current_filter(self, limit: int | None = PAGE) -> UsageFilter:
        """The filter as the fields say (empty = any; the "to" day included)."""
        since = until = None
        if self.since_on.isChecked():
            since = day_start(self.since.date().toPython())  # type: ignore[arg-type]
        if self.until_on.isChecked():
            day = self.until.date().toPython() + timedelta(days=1)  # type: ignore[operator]
            until = day_start(day)
        return UsageFilter(subject=self.child.text().strip() or None,
                           actor=self.actor.text().strip() or None,
                           action=self.action.currentData(), since=since, until=until,
                           limit=limit)

    def rows(self) -> list[UsageEntry]:
        return list(self._rows)

    def cell_text(self, row: int, column: int) -> str:
        item = self.table.item(row, column)
        return item.text() if item is not None else ""

    @property
    def loaded_once(self) -> bool:
        return self._loaded_once

    # ------------------------------------------------------------ actions

    def search(self) -> None:
        self._asked = self.current_filter()
        self.count.setText(self.tr("Reading the log…"))
        self.query_requested.emit(self._asked)

    def export(self) -> None:
        self.export_requested.emit(self.current_filter(limit=None))

    # ------------------------------------------------------------ inputs

    def show_rows(self, reply: UsageRows) -> None:
        """A page of records (newest first) and the chain's state."""
        self._loaded_once = True
        self._rows = list(reply.rows)
        self._say_chain(reply.verified, reply.problem)
        self.table.setRowCount(len(self._rows))
        for r, e in enumerate(self._rows):
            for c, value in enumerate(usage_cells(e)):
                item = QTableWidgetItem(value)
                if c in (SEQ, ALERT):
                    item.setTextAlignment(Qt.AlignmentFlag.AlignRight
                                          | Qt.AlignmentFlag.AlignVCenter)
                if value:
                    item.setToolTip(value)
                self.table.setItem(r, c, item)
        self._size_columns()
        limit = self._asked.limit if self._asked is not None else PAGE
        n = len(self._rows)
        if limit is not None and n >= limit:
            self.count.setText(self.tr("Showing the newest %1 records: there may be more. "
                                       "Narrow the filter, or export them all.")
                               .replace("%1", f"{n:,}"))
            self.count.setProperty("cut", "true")
        else:
            self.count.setText(self.tr("%1 records").replace("%1", f"{n:,}") if n != 1
                               else self.tr("1 record"))
            self.count.setProperty("cut", "false")
        self.count.style().unpolish(self.count)
        self.count.style().polish(self.count)

    def show_message(self, text: str) -> None:
        """An outcome in words (an export written, a refusal)."""
        self.count.setText(text)

    def clear(self) -> None:
        """Forget what was shown (the session ended)."""
        self._rows = []
        self._loaded_once = False
        self.table.setRowCount(0)
        self._say_chain(None, "")
        self.count.setText(self.tr("Search to read the log."))

    # ------------------------------------------------------------ internals

    def _say_chain(self, verified: bool | None, problem: str) -> None:
        if verified is None:
            text, state = self.tr("Chain not checked yet"), "unknown"
        elif verified:
            text, state = self.tr("Chain verified: no record was changed or removed"), "verified"
        else:
            text = self.tr("Chain BROKEN: %1. Records may have been changed or removed; "
                           "report it.").replace("%1", problem or self.tr("no detail given"))
            state = "broken"
        self.banner.setText(text)
        self.banner.setProperty("chain", state)
        self.banner.style().unpolish(self.banner)
        self.banner.style().polish(self.banner)

    def _size_columns(self) -> None:
        """Fit the short columns to their contents; the text columns start
        wide and are the auditor's to drag (tooltips hold the whole text)."""
        head = self.table.horizontalHeader()
        for c in range(len(HEADERS)):
            if c in START_WIDTH:
                continue
            self.table.resizeColumnToContents(c)
        for c, width in START_WIDTH.items():
            if c != DETAIL:
                head.resizeSection(c, width)


# ------------------------------------------------------------------ fake data


def fake_rows(now: float, n: int = 40) -> list[UsageEntry]:
    """Plausible records, newest first, for running the view alone."""
    out: list[UsageEntry] = []
    actors = ("kim.op", "lee.op", "park.sv", "engine", "choi.au")
    for i in range(n):
        seq = 1000 + n - i
        action = ACTIONS[i % len(ACTIONS)]
        child = f"C-{0xA13F00 + (i % 5) * 7919:06X}" if action != "purge" else ""
        alert = 100 + i if action in ("reveal", "trail", "disclosure") else None
        purpose = {"reveal": "SOS at Seoul Forest, child not answering the watch",
                   "disclosure": "Missing after zone exit; patrol asks for name and photo",
                   "export": "usage log export", "consent": "guardian consent form 2024-03",
                   }.get(action, "")
        detail = {"reveal": f"reveal {seq} granted until 2024-05-02T14:32:00+09:00: kim.op "
                            "owns the open sos alert",
                  "history": "240 positions of 1 device(s) from 13:30 to 14:30 (3600 s)",
                  "export": "usage log, 512 rows; filter: action reveal, since "
                            "2024-05-01T00:00:00+00:00",
                  "purge": "retention removed 48,211 fixes older than 30 days",
                  "disclosure": "disclosure 7 to police, asked by lee.op, approved by park.sv; "
                                "guardian notice: phoned the mother at 14:20, she is on her "
                                "way to the police box at the park's east gate",
                  }.get(action, "")
        out.append(UsageEntry(seq=seq, at=now - 90 * i, actor=actors[i % len(actors)],
                              subject=child, action=action, purpose=purpose, alert_id=alert,
                              detail=detail))
    return out


def main() -> int:
    """The view on fake records; "Search" filters them locally."""
    from PySide6.QtWidgets import QApplication

    from console.theme import apply_theme

    app = QApplication(sys.argv)
    apply_theme(app)
    view = UsageLogView()
    records = fake_rows(time.time())

    def query(f: UsageFilter) -> None:
        rows = [r for r in records if (f.subject is None or r.subject == f.subject)
                and (f.actor is None or r.actor == f.actor)
                and (f.action is None or r.action == f.action)
                and (f.since is None or r.at >= f.since) and (f.until is None or r.at < f.until)]
        view.show_rows(UsageRows(rows=rows[:f.limit], verified=True))

    view.query_requested.connect(query)
    view.export_requested.connect(lambda f: print("export", f))
    view.search()
    view.resize(1200, 640)
    view.setWindowTitle(view.tr("Location-usage log (fake data)"))
    view.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
