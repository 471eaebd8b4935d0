"""The console's "Import cameras…" dialog: the same import as
``childsafe import cameras FILE``, with the full report.

It only presents and asks: Import emits ``import_requested(path,
allow_partial)``; the controller sends the file to the engine, which checks
and writes it, and answers with ``show_phase`` while it waits, then
``show_report`` or ``show_error``.  Every rejected row is listed with its
line number and reason (the first 200 of them), so the admin fixes the file
in one pass.  While the import runs the dialog cannot be cancelled or
closed: the import is one transaction, and a half-seen result would leave
the admin guessing what was written.

Run alone with a made-up report: ``python -m widgets.import_dialog``.
"""

from __future__ import annotations

import re
import sys
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QAbstractTableModel, QModelIndex, QPersistentModelIndex, Qt, Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QAbstractItemView,
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QRadioButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

Index = QModelIndex | QPersistentModelIndex


class ReportLike(Protocol):
    """What the dialog reads of the engine's ``CameraImportResult``."""

    filename: str
    encoding: str
    rows_read: int
    accepted: int
    rejected: int  # every rejected row, listed or not
    problems: list[str]  # "line N: reason", the first ones
    imported: int
    updated: int
    unknown_headers: list[str]
    missing_headers: list[str]
    committed: bool
    allow_partial: bool


_LINE = re.compile(r"line (\d+): (.*)", re.DOTALL)


def split_problem(text: str) -> tuple[int, str]:
    """("line 8: reason") -> (8, "reason"); a problem without a line -> (0, text)."""
    m = _LINE.fullmatch(text)
    return (int(m[1]), m[2]) if m else (0, text)


class RejectedRowsModel(QAbstractTableModel):
    """(line, reason) pairs; a model because a bad export can reject every row."""

    HEADERS = ("Line", "Reason")

    def __init__(self) -> None:
        super().__init__()
        self.rows: list[tuple[int, str]] = []

    def set_rows(self, rows: list[tuple[int, str]]) -> None:
        self.beginResetModel()
        self.rows = list(rows)
        self.endResetModel()

    def rowCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else len(self.rows)

    def columnCount(self, parent: Index = QModelIndex()) -> int:  # noqa: B008
        return 0 if parent.isValid() else 2

    def data(self, index: Index, role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if not index.isValid() or index.row() >= len(self.rows):
            return None
        line, reason = self.rows[index.row()]
        if role in (Qt.ItemDataRole.DisplayRole, Qt.ItemDataRole.ToolTipRole):
            if index.column() == 0:
                return str(line) if line else ""
            return reason
        if role == Qt.ItemDataRole.TextAlignmentRole and index.column() == 0:
            return Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter
        return None

    def headerData(self, section: int, orientation: Qt.Orientation,
                   role: int = Qt.ItemDataRole.DisplayRole) -> object:
        if orientation == Qt.Orientation.Horizontal and role == Qt.ItemDataRole.DisplayRole:
            return self.HEADERS[section]
        return None


def outcome_text(r: ReportLike) -> tuple[str, str]:
    """(outcome property, sentence) for the report's headline."""
    n_rejected = r.rejected
    if not r.committed:
        return "rejected", (f"Nothing imported: {n_rejected:,} rejected "
                            f"row{'s' if n_rejected != 1 else ''}. Fix the file and import "
                            "again, or choose “Import the valid rows”.")
    written = f"{r.imported:,} new cameras, {r.updated:,} updated"
    if n_rejected:
        return "partial", (f"Imported the valid rows ({written}); {n_rejected:,} rejected "
                           f"row{'s' if n_rejected != 1 else ''} skipped.")
    return "committed", f"Imported: {written}."


class ImportDialog(QDialog):
    import_requested = Signal(str, bool)  # path, allow_partial

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("importDialog")
        self.setWindowTitle("Import cameras")
        self.busy = False
        self.path = QLineEdit()
        self.path.setPlaceholderText("A CSV in the national CCTV standard layout (UTF-8 or CP949)")
        self.browse_button = QPushButton("Choose…")
        self.all_or_nothing = QRadioButton(
            "Import all or nothing: any rejected row and nothing is written")
        self.partial = QRadioButton("Import the valid rows and skip the rejected ones")
        self.all_or_nothing.setChecked(True)
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.phase = QLabel("")
        self.outcome = QLabel("")
        self.outcome.setObjectName("importOutcome")
        self.outcome.setWordWrap(True)
        self.summary = QLabel("")
        self.summary.setWordWrap(True)
        self.headers = QLabel("")
        self.headers.setWordWrap(True)
        self.rejected_title = QLabel("Rejected rows")
        self.rejected_title.setObjectName("panelTitle")
        self.rejected_rows = RejectedRowsModel()
        self.table = self._make_table()
        self.buttons = QDialogButtonBox()
        self.import_button = self.buttons.addButton(
            "Import", QDialogButtonBox.ButtonRole.AcceptRole)
        self.import_button.setObjectName("importButton")
        self.cancel_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Cancel)
        self._layout()
        self.browse_button.clicked.connect(self.browse)
        self.import_button.clicked.connect(self.start)
        self.cancel_button.clicked.connect(self.reject)
        self.path.textChanged.connect(self._update_buttons)
        self._show_report_widgets(False)
        self._update_buttons()
        self.resize(760, 280)  # grows when there are rejected rows to list

    def _make_table(self) -> QTableView:
        t = QTableView()
        t.setModel(self.rejected_rows)
        t.verticalHeader().hide()
        t.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        t.setSelectionBehavior(QAbstractItemView.SelectionBehavior.SelectRows)
        t.setAlternatingRowColors(True)
        t.setWordWrap(False)
        t.horizontalHeader().setSectionResizeMode(0, QHeaderView.ResizeMode.ResizeToContents)
        t.horizontalHeader().setStretchLastSection(True)
        return t

    def _layout(self) -> None:
        file_row = QHBoxLayout()
        file_row.addWidget(QLabel("File"))
        file_row.addWidget(self.path, 1)
        file_row.addWidget(self.browse_button)
        layout = QVBoxLayout(self)
        layout.addLayout(file_row)
        layout.addWidget(self.all_or_nothing)
        layout.addWidget(self.partial)
        layout.addWidget(self.progress)
        layout.addWidget(self.phase)
        layout.addWidget(self.outcome)
        layout.addWidget(self.summary)
        layout.addWidget(self.headers)
        layout.addWidget(self.rejected_title)
        layout.addWidget(self.table, 1)
        layout.addStretch(0)
        layout.addWidget(self.buttons)

    # ------------------------------------------------------------------ actions
    def set_path(self, path: str | Path) -> None:
        self.path.setText(str(path))

    def browse(self) -> None:
        start = str(Path(self.path.text()).parent) if self.path.text() else str(Path.home())
        chosen, _ = QFileDialog.getOpenFileName(
            self, "Import cameras", start, "CSV files (*.csv *.txt);;All files (*)")
        if chosen:
            self.set_path(chosen)

    def start(self) -> None:
        path = self.path.text().strip()
        if self.busy or not path:
            return
        self.busy = True
        self._clear_report()
        self.progress.setRange(0, 0)  # busy until the answer
        self.progress.setFormat("")
        self.phase.setText("Reading the file…")
        self.phase.show()
        self._update_buttons()
        self.import_requested.emit(path, self.partial.isChecked())

    # ------------------------------------------------------------ controller API
    def show_phase(self, text: str) -> None:
        """What the import is waiting for (the bar stays busy)."""
        self.phase.setText(text)

    def show_report(self, report: ReportLike) -> None:
        self.busy = False
        kind, text = outcome_text(report)
        self._set_outcome(kind, text)
        self.phase.hide()
        self.progress.setRange(0, 1)
        self.progress.setValue(1)
        self.progress.setFormat(f"{report.rows_read:,} rows checked")
        self.summary.setText(
            f"{report.filename} · {report.encoding} · {report.rows_read:,} rows read · "
            f"{report.accepted:,} valid · {report.rejected:,} rejected")
        notes = []
        if report.unknown_headers:
            notes.append("Ignored unknown columns: " + ", ".join(report.unknown_headers))
        if report.missing_headers:
            notes.append("Absent optional columns (defaults used): "
                         + ", ".join(report.missing_headers))
        self.headers.setText("\n".join(notes))
        self.headers.setVisible(bool(notes))
        listed = [split_problem(p) for p in report.problems]
        self.rejected_rows.set_rows(listed)
        title = f"Rejected rows ({report.rejected:,})"
        if len(listed) < report.rejected:
            title = f"Rejected rows ({report.rejected:,}; the first {len(listed):,} listed)"
        self.rejected_title.setText(title)
        self._show_report_widgets(True)
        self.rejected_title.setVisible(bool(listed))
        self.table.setVisible(bool(listed))
        if listed:
            self.resize(self.width(), max(self.height(), 560))
        self._update_buttons()

    def show_error(self, text: str) -> None:
        """The file as a whole could not be imported; nothing was written."""
        self.busy = False
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setFormat("")
        self.phase.hide()
        self._set_outcome("error", text)
        self.outcome.setVisible(True)
        self._update_buttons()

    # ----------------------------------------------------------------- closing
    def reject(self) -> None:
        if not self.busy:  # the import is one transaction: let it finish
            super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.busy:
            event.ignore()
        else:
            super().closeEvent(event)

    # ---------------------------------------------------------------- internals
    def _set_outcome(self, kind: str, text: str) -> None:
        """``outcome`` (committed / partial / rejected / error) is styled by the theme."""
        self.outcome.setText(text)
        self.outcome.setProperty("outcome", kind)
        self.outcome.style().unpolish(self.outcome)
        self.outcome.style().polish(self.outcome)

    def _clear_report(self) -> None:
        self.rejected_rows.set_rows([])
        self._set_outcome("", "")
        self._show_report_widgets(False)

    def _show_report_widgets(self, visible: bool) -> None:
        for w in (self.outcome, self.summary, self.headers, self.rejected_title, self.table):
            w.setVisible(visible)

    def _update_buttons(self) -> None:
        idle = not self.busy
        self.import_button.setEnabled(idle and bool(self.path.text().strip()))
        self.cancel_button.setEnabled(idle)
        self.cancel_button.setText("Close" if self.outcome.text() else "Cancel")
        for w in (self.path, self.browse_button, self.all_or_nothing, self.partial):
            w.setEnabled(idle)


def main() -> int:
    from dataclasses import dataclass, field

    from PySide6.QtWidgets import QApplication

    from console.theme import apply_theme

    @dataclass
    class FakeReport:
        filename: str = "cctv_seongdong.csv"
        encoding: str = "cp949"
        rows_read: int = 1_204
        accepted: int = 1_201
        rejected: int = 3
        imported: int = 0
        updated: int = 0
        problems: list[str] = field(default_factory=lambda: [
            "line 17: WGS84위도 127.0374 and WGS84경도 37.5444 look swapped",
            "line 388: position 0.0, 0.0 is outside South Korea",
            "line 1022: 설치연월 '2015-13' is not a year and month (e.g. 2015-03 or 201503)"])
        unknown_headers: list[str] = field(default_factory=lambda: ["제공기관코드"])
        missing_headers: list[str] = field(default_factory=list)
        committed: bool = False
        allow_partial: bool = False

    app = QApplication(sys.argv)
    apply_theme(app)
    dialog = ImportDialog()
    dialog.set_path("/tmp/" + FakeReport.filename)
    dialog.import_requested.connect(lambda *_: dialog.show_report(FakeReport()))
    dialog.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
