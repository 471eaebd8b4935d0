"""The trainer's Training tab on the live console: what to play, start it,
end it, and the reports of past sessions.

A trainer picks a saved scenario (its title, site, length and incidents in a
list, the selected one's description below) or a recorded period of the
live tape (two date-time editors that cannot leave the recorded span,
shown in the control room's local time, ``local_utc_offset_s``, not the
workstation's), a start speed and whether to start paused; then Start
session. Open training console gives a console on the training bus (the
trainer drives the replay bar there; trainees use their own workstations),
End session scores the trainees and writes the report, listed below with
Open report.

It only presents and asks: ``console.training_panel_controller`` feeds it
(``set_scenarios``, ``set_span``, ``show_state``, ``show_reports``) and
acts on its signals. ``python -m widgets.training_panel`` runs it alone.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QT_TRANSLATE_NOOP, QDateTime, Qt, QTimeZone, Signal
from PySide6.QtWidgets import (
    QAbstractItemView,
    QButtonGroup,
    QCheckBox,
    QComboBox,
    QDateTimeEdit,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QRadioButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from models.scenario import Scenario
from widgets.replay_bar import ask_to_end_session
from widgets.tables import read_only

DEFAULT_SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)  # console.training.player.SPEEDS
DEFAULT_PERIOD_S = 15 * 60.0  # a period starts as the tape's last quarter hour
TIME_FORMAT = "yyyy-MM-dd HH:mm:ss"
MAX_WIDTH = 1100
SCENARIO_COLUMNS = (
    QT_TRANSLATE_NOOP("TrainingPanel", "Scenario"), QT_TRANSLATE_NOOP("TrainingPanel", "Site"),
    QT_TRANSLATE_NOOP("TrainingPanel", "Length"),
    QT_TRANSLATE_NOOP("TrainingPanel", "Incidents"),
)
REPORT_COLUMNS = (
    QT_TRANSLATE_NOOP("TrainingPanel", "Written"), QT_TRANSLATE_NOOP("TrainingPanel", "Session"),
    QT_TRANSLATE_NOOP("TrainingPanel", "Files"),
)
IdRole = Qt.ItemDataRole.UserRole + 1


@dataclass(frozen=True, slots=True)
class StartChoice:
    """What the trainer asked to start: a scenario id, or ("", t0, t1)."""

    scenario: str
    t0: float
    t1: float
    speed: float
    paused: bool


class ReportLike(Protocol):
    """A past session's report (``console.training_launcher.Report``)."""

    @property
    def folder(self) -> Path: ...
    @property
    def name(self) -> str: ...
    @property
    def when(self) -> float: ...
    @property
    def html(self) -> Path | None: ...
    @property
    def csv(self) -> Path | None: ...


def _table(columns: Sequence[str], stretch: int, tr: Callable[[str], str]) -> QTableWidget:
    t = QTableWidget(0, len(columns))
    t.setHorizontalHeaderLabels([tr(c) for c in columns])
    read_only(t, stretch)
    return t


def _item(text: str, align_right: bool = False) -> QTableWidgetItem:
    item = QTableWidgetItem(text)
    if align_right:
        item.setTextAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
    return item


class TrainingPanel(QWidget):
    """Pick, start and end a training session; open past reports. Present-only."""

    start_requested = Signal(object)  # StartChoice
    console_requested = Signal()
    stop_requested = Signal()
    report_requested = Signal(object)  # Path of a report's page (or its folder)
    refresh_requested = Signal()

    def __init__(self, speeds: Sequence[float] = DEFAULT_SPEEDS,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trainingPanel")
        self.scenarios: list[Scenario] = []
        self.span: tuple[float, float] | None = None
        self.utc_offset_s = 32400  # the control room's (Config.local_utc_offset_s)
        self.zone = QTimeZone.fromSecondsAheadOfUtc(self.utc_offset_s)
        self.phase = "idle"
        self.busy = False
        self.reports: list[ReportLike] = []
        # Asked before ending the session (a dialog; tests put an answer here).
        self.confirm: Callable[[], bool] = self._ask_to_end

        title = QLabel(self.tr("Training sessions"))
        title.setObjectName("panelTitle")
        intro = QLabel(self.tr("Sessions play on the isolated training bus: nothing reaches "
                               "live operations."))
        intro.setObjectName("trainingIntro")
        intro.setWordWrap(True)

        self.use_scenario = QRadioButton(self.tr("A scenario"))
        self.use_scenario.setObjectName("useScenario")
        self.use_period = QRadioButton(self.tr("A recorded period of the live tape"))
        self.use_period.setObjectName("usePeriod")
        self.choice = QButtonGroup(self)
        self.choice.addButton(self.use_scenario)
        self.choice.addButton(self.use_period)
        self.use_scenario.setChecked(True)
        self.choice.buttonToggled.connect(lambda *_: self._update())

        self.scenario_table = _table(SCENARIO_COLUMNS, 0, self.tr)
        self.scenario_table.setObjectName("scenarioList")
        self.scenario_table.itemSelectionChanged.connect(self._scenario_selected)
        self.scenario_table.setMinimumHeight(120)
        self.description = QLabel()
        self.description.setObjectName("scenarioDescription")
        self.description.setWordWrap(True)
        self.description.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.description.setAlignment(Qt.AlignmentFlag.AlignTop | Qt.AlignmentFlag.AlignLeft)

        self.period_from = QDateTimeEdit()
        self.period_from.setObjectName("periodFrom")
        self.period_to = QDateTimeEdit()
        self.period_to.setObjectName("periodTo")
        for edit in (self.period_from, self.period_to):
            edit.setDisplayFormat(TIME_FORMAT)
            edit.setCalendarPopup(True)
            edit.setTimeZone(self.zone)
            edit.dateTimeChanged.connect(lambda *_: self._update())
        self.span_label = QLabel()
        self.span_label.setObjectName("tapeSpan")
        self.span_label.setWordWrap(True)

        self.speed = QComboBox()
        self.speed.setObjectName("startSpeed")
        for s in speeds:
            self.speed.addItem(f"{s:g}×", s)
        self.speed.setCurrentIndex(max(self.speed.findData(1.0), 0))
        self.speed.setToolTip(self.tr("The speed it plays at once started; the replay bar "
                                      "changes it during the session"))
        self.paused = QCheckBox(self.tr("Start paused"))
        self.paused.setObjectName("startPaused")
        self.paused.setToolTip(self.tr("Wait for Play on the replay bar (trainees sign in "
                                       "first); it plays at the bar's speed"))
        self.paused.toggled.connect(lambda *_: self._update())

        self.start_button = QPushButton(self.tr("Start session"))
        self.start_button.setObjectName("startSession")
        self.start_button.clicked.connect(self._start_clicked)
        self.console_button = QPushButton(self.tr("Open training console"))
        self.console_button.setObjectName("openTrainingConsole")
        self.console_button.setToolTip(self.tr("A console on the training bus, with the "
                                               "replay bar for a trainer"))
        self.console_button.clicked.connect(self.console_requested)
        self.stop_button = QPushButton(self.tr("End session"))
        self.stop_button.setObjectName("endSession")
        self.stop_button.setToolTip(self.tr("Score the trainees, write the report and stop "
                                            "the training bus"))
        self.stop_button.clicked.connect(self._end_clicked)
        self.refresh_button = QPushButton(self.tr("Refresh"))
        self.refresh_button.setObjectName("trainingRefresh")
        self.refresh_button.setToolTip(self.tr("Read the scenarios, the recorded period and "
                                               "the reports again"))
        self.refresh_button.clicked.connect(self.refresh_requested)

        self.state_label = QLabel()
        self.state_label.setObjectName("trainingState")
        self.state_label.setWordWrap(True)
        self.message = QLabel()
        self.message.setObjectName("trainingMessage")
        self.message.setWordWrap(True)
        self.message.hide()

        reports_title = QLabel(self.tr("Reports of past sessions"))
        reports_title.setObjectName("sectionTitle")
        self.report_table = _table(REPORT_COLUMNS, 1, self.tr)
        self.report_table.setObjectName("trainingReports")
        self.report_table.setSelectionMode(QAbstractItemView.SelectionMode.SingleSelection)
        self.report_table.itemSelectionChanged.connect(self._update)
        self.report_table.itemDoubleClicked.connect(lambda _item: self._open_clicked())
        self.report_empty = QLabel(self.tr("No report yet: a scenario's report is written "
                                           "when its session ends."))
        self.report_empty.setObjectName("trainingReportsEmpty")
        self.report_empty.setWordWrap(True)
        self.open_button = QPushButton(self.tr("Open report"))
        self.open_button.setObjectName("openReport")
        self.open_button.clicked.connect(self._open_clicked)

        period = QGridLayout()
        period.setContentsMargins(24, 0, 0, 0)
        self.period_labels = (QLabel(self.tr("From")), QLabel(self.tr("To")))
        period.addWidget(self.period_labels[0], 0, 0)
        period.addWidget(self.period_from, 0, 1)
        period.addWidget(self.period_labels[1], 0, 2)
        period.addWidget(self.period_to, 0, 3)
        period.setColumnStretch(4, 1)
        period.addWidget(self.span_label, 1, 0, 1, 5)
        options = QHBoxLayout()
        options.addWidget(QLabel(self.tr("Start at")))
        options.addWidget(self.speed)
        options.addSpacing(12)
        options.addWidget(self.paused)
        options.addStretch(1)
        buttons = QHBoxLayout()
        for b in (self.start_button, self.console_button, self.stop_button):
            buttons.addWidget(b)
        buttons.addStretch(1)
        buttons.addWidget(self.refresh_button)
        report_buttons = QHBoxLayout()
        report_buttons.addWidget(self.report_empty)
        report_buttons.addStretch(1)
        report_buttons.addWidget(self.open_button)

        scenario_box = QVBoxLayout()
        scenario_box.setContentsMargins(24, 0, 0, 0)
        scenario_box.addWidget(self.scenario_table, 1)
        scenario_box.addWidget(self.description)
        # A form, not a wall: on a console that shows nothing else (a trainer
        # has no live picture) it keeps a readable width, centred.
        body = QWidget()
        body.setObjectName("trainingBody")
        body.setMaximumWidth(MAX_WIDTH)
        outer = QHBoxLayout(self)
        outer.setContentsMargins(0, 0, 0, 0)
        outer.addWidget(body)
        layout = QVBoxLayout(body)
        layout.addWidget(title)
        layout.addWidget(intro)
        layout.addWidget(self.use_scenario)
        layout.addLayout(scenario_box, 3)
        layout.addWidget(self.use_period)
        layout.addLayout(period)
        layout.addLayout(options)
        layout.addLayout(buttons)
        layout.addWidget(self.state_label)
        layout.addWidget(self.message)
        layout.addWidget(reports_title)
        layout.addWidget(self.report_table, 2)
        layout.addLayout(report_buttons)
        self.set_span(None)
        self.show_state("idle")
        self.show_reports([])

    # ------------------------------------------------------------ filling
    def set_scenarios(self, scenarios: Sequence[Scenario], error: str = "") -> None:
        """The scenarios to offer (the selection kept by id); ``error`` when
        they could not be read."""
        keep = self.selected_scenario()
        self.scenarios = list(scenarios)
        t = self.scenario_table
        t.setRowCount(len(self.scenarios))
        for row, s in enumerate(self.scenarios):
            name = _item(s.title)
            name.setData(IdRole, s.id)
            name.setToolTip(s.id)
            t.setItem(row, 0, name)
            t.setItem(row, 1, _item(s.site))
            t.setItem(row, 2, _item(self.tr("{0:g} min").format(round(s.duration_s / 60, 1)),
                                    True))
            t.setItem(row, 3, _item(str(len(s.incidents)), True))
        ids = [s.id for s in self.scenarios]
        if ids:
            t.selectRow(ids.index(keep) if keep in ids else 0)
        if error:
            self.show_message(error)
        self._scenario_selected()

    def set_span(self, span: tuple[float, float] | None, utc_offset_s: float | None = None
                 ) -> None:
        """The live tape's recorded period (None: nothing recorded); the
        editors cannot leave it. ``utc_offset_s``: the control room's time."""
        if utc_offset_s is not None:
            self.utc_offset_s = int(utc_offset_s)
            self.zone = QTimeZone.fromSecondsAheadOfUtc(self.utc_offset_s)
            for edit in (self.period_from, self.period_to):
                edit.setTimeZone(self.zone)
        old = self.span
        self.span = span
        # no editors without a tape: they would show a made-up time
        for w in (self.period_from, self.period_to, *self.period_labels):
            w.setVisible(span is not None)
        if span is None:
            self.span_label.setText(self.tr("Nothing has been recorded yet: the recorder "
                                            "keeps the live bus as it runs."))
            self._update()
            return
        first, last = (self._qt(t) for t in span)
        was = (self.period_from.dateTime(), self.period_to.dateTime())
        for edit in (self.period_from, self.period_to):
            edit.setDateTimeRange(first, last)
        if old is None:  # the first span: the last quarter hour
            self.period_from.setDateTime(self._qt(max(span[0], span[1] - DEFAULT_PERIOD_S)))
            self.period_to.setDateTime(last)
        else:  # the tape grew: keep the choice (inside the range)
            self.period_from.setDateTime(was[0])
            self.period_to.setDateTime(was[1])
        self.span_label.setText(self.tr("Recorded: {0} to {1} (UTC{2})").format(
            first.toString(TIME_FORMAT), last.toString(TIME_FORMAT), self._offset_text()))
        self._update()

    def show_state(self, phase: str, title: str = "", detail: str = "", pid: int | None = None,
                   started_at: float | None = None, ours: bool = True) -> None:
        """Where the session stands, in words; the buttons follow it."""
        self.phase = phase
        quoted = f"“{title}”" if title else self.tr("the session")
        since = "" if started_at is None else self.tr(" since {0}").format(
            self._qt(started_at).toString("HH:mm"))
        where = self.tr(" (pid {0})").format(pid) if pid else ""
        texts = {
            "idle": self.tr("No training session is running."),
            "starting": self.tr("Starting {0}{1}: the training bus, engine and scratch "
                                "store…").format(quoted, where),
            "running": self.tr("Running: {0}{1}{2}. Trainees join with a training "
                               "console.").format(quoted, since, where) if ours else
            self.tr("A session started elsewhere is running on the training bus{0}.")
            .format(where),
            "ending": self.tr("Ending {0}: scoring the trainees and writing the "
                              "report…").format(quoted),
            "ended": self.tr("Ended: {0}. {1}").format(quoted, detail),
            "failed": self.tr("Failed: {0}. {1}").format(quoted, detail),
        }
        self.state_label.setText(texts.get(phase, phase))
        self.state_label.setProperty("state", phase)
        self.state_label.style().unpolish(self.state_label)
        self.state_label.style().polish(self.state_label)
        self._update()

    def show_reports(self, reports: Sequence[ReportLike]) -> None:
        """Past sessions' reports, newest first (the selection kept)."""
        keep = self.selected_report()
        self.reports = list(reports)
        t = self.report_table
        t.setRowCount(len(self.reports))
        for row, r in enumerate(self.reports):
            when = _item(self._qt(r.when).toString("yyyy-MM-dd HH:mm"))
            when.setData(IdRole, str(r.folder))
            t.setItem(row, 0, when)
            name = _item(self._report_title(r.name))
            name.setToolTip(str(r.folder))
            t.setItem(row, 1, name)
            files = [self.tr("HTML") if r.html else "", self.tr("CSV") if r.csv else ""]
            t.setItem(row, 2, _item(" + ".join(f for f in files if f) or self.tr("(empty)")))
        folders = [r.folder for r in self.reports]
        if keep is not None and keep.folder in folders:
            t.selectRow(folders.index(keep.folder))
        self.report_empty.setVisible(not self.reports)
        self._update()

    def set_busy(self, busy: bool) -> None:
        """A request is being carried out (starting, ending): no second one."""
        self.busy = busy
        self._update()

    def show_message(self, text: str) -> None:
        """A refusal or an error, in words, until the next one (empty hides it)."""
        self.message.setText(text[:1].upper() + text[1:])  # the launcher's are lower case
        self.message.setVisible(bool(text))

    # ------------------------------------------------------------ reading
    def selected_scenario(self) -> str:
        rows = self.scenario_table.selectionModel().selectedRows()
        if not rows:
            return ""
        item = self.scenario_table.item(rows[0].row(), 0)
        return str(item.data(IdRole)) if item is not None else ""

    def selected_report(self) -> ReportLike | None:
        rows = self.report_table.selectionModel().selectedRows()
        return self.reports[rows[0].row()] if rows and rows[0].row() < len(self.reports) \
            else None

    def period(self) -> tuple[float, float]:
        """The chosen period, epoch seconds."""
        return (self.period_from.dateTime().toMSecsSinceEpoch() / 1000.0,
                self.period_to.dateTime().toMSecsSinceEpoch() / 1000.0)

    def choice_now(self) -> StartChoice | None:
        """What Start would ask for; None while nothing valid is chosen."""
        speed = float(self.speed.currentData())
        paused = self.paused.isChecked()
        if self.use_scenario.isChecked():
            sid = self.selected_scenario()
            return StartChoice(sid, 0.0, 0.0, speed, paused) if sid else None
        if self.span is None:
            return None
        t0, t1 = self.period()
        return StartChoice("", t0, t1, speed, paused) if t0 < t1 else None

    # ----------------------------------------------------------- internal
    def _qt(self, t: float) -> QDateTime:
        return QDateTime.fromMSecsSinceEpoch(round(t * 1000), self.zone)

    def _offset_text(self) -> str:
        s = self.utc_offset_s
        sign = "+" if s >= 0 else "−"
        return f"{sign}{abs(s) // 3600:02d}:{abs(s) % 3600 // 60:02d}"

    def _report_title(self, name: str) -> str:
        """A report folder's name (``<scenario id>-<YYYYmmdd-HHMMSS>``, the
        session's local start) as its scenario's title and time; else as is."""
        for s in sorted(self.scenarios, key=lambda s: -len(s.id)):
            stamp = name.removeprefix(f"{s.id}-")
            if stamp != name:
                try:
                    when = datetime.strptime(stamp, "%Y%m%d-%H%M%S")
                except ValueError:
                    continue
                return f"{s.title} · {when:%Y-%m-%d %H:%M}"
        return name

    def _scenario_selected(self) -> None:
        sid = self.selected_scenario()
        s = next((s for s in self.scenarios if s.id == sid), None)
        if s is None:
            self.description.setText(self.tr("No scenario: the list is empty.")
                                     if not self.scenarios else "")
        else:
            self.description.setText(" ".join(s.description.split()))
        self._update()

    def _update(self) -> None:
        """Enable what makes sense now: one session at a time, and a period
        only while something is recorded."""
        active = self.phase in ("starting", "running", "ending")
        period = self.use_period.isChecked()
        self.scenario_table.setEnabled(not period)
        self.description.setEnabled(not period)
        for w in (self.period_from, self.period_to):
            w.setEnabled(period and self.span is not None)
        self.use_period.setEnabled(self.span is not None or period)
        self.speed.setEnabled(not self.paused.isChecked())  # paused, the bar's speed plays
        self.start_button.setEnabled(not active and not self.busy
                                     and self.choice_now() is not None)
        self.console_button.setEnabled(self.phase in ("starting", "running"))
        self.stop_button.setEnabled(self.phase in ("starting", "running") and not self.busy)
        self.open_button.setEnabled(self.selected_report() is not None)

    def _start_clicked(self) -> None:
        choice = self.choice_now()
        if choice is not None:
            self.show_message("")
            self.start_requested.emit(choice)

    def _end_clicked(self) -> None:
        if self.confirm():
            self.stop_requested.emit()

    def _open_clicked(self) -> None:
        report = self.selected_report()
        if report is not None:
            self.report_requested.emit(report.html or report.folder)

    def _ask_to_end(self) -> bool:
        return ask_to_end_session(self)


def main() -> int:
    """The panel alone on the authored scenarios and a made-up tape span;
    Start and End only change the words shown."""
    from PySide6.QtWidgets import QApplication

    from console.theme import apply_theme
    from models.scenario import load_scenarios

    app = QApplication(sys.argv)
    apply_theme(app)
    panel = TrainingPanel()
    panel.set_scenarios(load_scenarios())
    now = time.time()
    panel.set_span((now - 3 * 3600, now - 60), 32400)

    @dataclass
    class FakeReport:
        folder: Path
        name: str
        when: float
        html: Path | None
        csv: Path | None

    panel.show_reports([FakeReport(Path("/tmp/school-morning-sos-20261206-081000"),
                                   "school-morning-sos-20261206-081000", now - 600,
                                   Path("/tmp/x.html"), Path("/tmp/x.csv"))])
    panel.start_requested.connect(lambda c: panel.show_state(
        "running", c.scenario or "a recorded period", pid=4242, started_at=time.time()))
    panel.stop_requested.connect(lambda: panel.show_state("ended", "the session",
                                                          "report: (none in this demo)"))
    panel.report_requested.connect(lambda p: panel.show_message(f"would open {p}"))
    panel.resize(760, 900)
    panel.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
