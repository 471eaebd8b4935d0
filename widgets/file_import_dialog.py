"""The file import dialog the admin tabs share: GeoJSON zones in the Zones
tab (``widgets.zone_admin``), the roster CSV in the Enrolment tab
(``widgets.enrolment_admin``). Its own module because both tabs use it and
neither owns it; it lists every problem the engine found, by feature or by
line.
"""

from __future__ import annotations

from pathlib import Path

from PySide6.QtCore import Signal
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QDialog,
    QDialogButtonBox,
    QFileDialog,
    QFormLayout,
    QHBoxLayout,
    QHeaderView,
    QLabel,
    QLineEdit,
    QProgressBar,
    QPushButton,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from widgets.import_dialog import RejectedRowsModel, split_problem
from widgets.tables import read_only


class FileImportDialog(QDialog):
    """Choose a file, import it all or nothing, and see every problem.

    ``extra`` rows (e.g. the roster's default school) go under the file.
    While the engine works the dialog cannot be closed: the import is one
    transaction, and its answer says what was written."""

    import_requested = Signal(str)  # path

    def __init__(self, title: str, placeholder: str, filters: str,
                 parent: QWidget | None = None,
                 extra: list[tuple[str, QWidget]] | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("importDialog")
        self.setWindowTitle(title)
        self.filters = filters
        self.busy = False
        self.path = QLineEdit()
        self.path.setPlaceholderText(placeholder)
        self.browse_button = QPushButton(self.tr("Choose…"))
        self.progress = QProgressBar()
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self.progress.setTextVisible(False)
        self.outcome = QLabel("")
        self.outcome.setObjectName("importOutcome")
        self.outcome.setWordWrap(True)
        self.problems = RejectedRowsModel()
        self.table = QTableView()
        self.table.setModel(self.problems)
        read_only(self.table, stretch=1)
        self.table.setAlternatingRowColors(True)
        self.table.setWordWrap(True)  # a problem quotes its feature or cells: read it whole
        self.table.verticalHeader().setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        self.buttons = QDialogButtonBox()
        self.import_button = self.buttons.addButton(self.tr("Import"),
                                                    QDialogButtonBox.ButtonRole.AcceptRole)
        self.close_button = self.buttons.addButton(QDialogButtonBox.StandardButton.Close)
        form = QFormLayout()
        row = QHBoxLayout()
        row.addWidget(self.path, 1)
        row.addWidget(self.browse_button)
        form.addRow(self.tr("File"), row)
        self.extra = [w for _, w in extra or []]
        for label, widget in extra or []:
            form.addRow(label, widget)
        layout = QVBoxLayout(self)
        layout.addLayout(form)
        layout.addWidget(QLabel(self.tr("All or nothing: with any problem, nothing is "
                                        "written.")))
        layout.addWidget(self.progress)
        layout.addWidget(self.outcome)
        layout.addWidget(self.table, 1)
        layout.addWidget(self.buttons)
        self.browse_button.clicked.connect(self.browse)
        self.import_button.clicked.connect(self.start)
        self.close_button.clicked.connect(self.reject)
        self.path.textChanged.connect(self._update_buttons)
        self.table.hide()
        self.outcome.hide()
        self._update_buttons()
        self.resize(720, 240)

    def set_path(self, path: str | Path) -> None:
        self.path.setText(str(path))

    def browse(self) -> None:
        start = str(Path(self.path.text()).parent) if self.path.text() else str(Path.home())
        chosen, _ = QFileDialog.getOpenFileName(self, self.windowTitle(), start, self.filters)
        if chosen:
            self.set_path(chosen)

    def start(self) -> None:
        path = self.path.text().strip()
        if self.busy or not path:
            return
        self.busy = True
        self.problems.set_rows([])
        self.table.hide()
        self._set_outcome("", self.tr("Reading the file…"))
        self.progress.setRange(0, 0)
        self._update_buttons()
        self.import_requested.emit(path)

    # ------------------------------------------------------------ controller API
    def show_phase(self, text: str) -> None:
        self._set_outcome("", text)

    def show_result(self, committed: bool, message: str, problems: list[str],
                    problem_count: int) -> None:
        self.busy = False
        self.progress.setRange(0, 1)
        self.progress.setValue(1 if committed else 0)
        listed = [split_problem(p) for p in problems]
        text = message
        if len(listed) < problem_count:
            text += " " + self.tr("The first {0} of {1} problems are listed.").format(
                len(listed), problem_count)
        self._set_outcome("committed" if committed else "rejected", text)
        self.problems.set_rows(listed)
        self.table.setColumnHidden(0, not any(line for line, _ in listed))
        self.table.setVisible(bool(listed))
        if listed:
            self.resize(max(self.width(), 760), max(self.height(), 480))
        self._update_buttons()

    def show_error(self, text: str) -> None:
        self.busy = False
        self.progress.setRange(0, 1)
        self.progress.setValue(0)
        self._set_outcome("error", text)
        self._update_buttons()

    def reject(self) -> None:
        if not self.busy:
            super().reject()

    def closeEvent(self, event: QCloseEvent) -> None:
        if self.busy:
            event.ignore()
        else:
            super().closeEvent(event)

    def _set_outcome(self, kind: str, text: str) -> None:
        self.outcome.setText(text)
        self.outcome.setVisible(bool(text))
        self.outcome.setProperty("outcome", kind)
        self.outcome.style().unpolish(self.outcome)
        self.outcome.style().polish(self.outcome)

    def _update_buttons(self) -> None:
        idle = not self.busy
        self.import_button.setEnabled(idle and bool(self.path.text().strip()))
        self.close_button.setEnabled(idle)
        for w in (self.path, self.browse_button, *self.extra):
            w.setEnabled(idle)
