"""The trainer's Training tab, offscreen: it lists the scenarios, keeps a
period inside the recorded tape (in the control room's local time), and
emits what the trainer asked for, nothing else."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from pathlib import Path

import pytest
from PySide6.QtCore import QDateTime
from pytestqt.qtbot import QtBot

from console.training.player import SPEEDS
from models.scenario import Scenario, load_scenarios
from widgets.training_panel import StartChoice, TrainingPanel

KST = 9 * 3600
# 2026-12-06 08:00:00 KST, and an hour of tape from there
FIRST = dt.datetime(2026, 12, 6, 8, 0, tzinfo=dt.timezone(dt.timedelta(hours=9))).timestamp()
LAST = FIRST + 3600.0


@dataclass
class FakeReport:
    folder: Path
    name: str
    when: float
    html: Path | None
    csv: Path | None


@pytest.fixture(scope="module")
def scenarios() -> list[Scenario]:
    return load_scenarios()


def panel_for(qtbot: QtBot) -> TrainingPanel:
    panel = TrainingPanel(speeds=SPEEDS)
    qtbot.addWidget(panel)
    panel.resize(760, 900)
    panel.show()
    qtbot.waitExposed(panel)
    return panel


def test_scenarios_are_listed_and_the_selected_ones_description_shown(
        qtbot: QtBot, scenarios: list[Scenario]) -> None:
    panel = panel_for(qtbot)
    assert not panel.start_button.isEnabled()  # nothing to start yet
    panel.set_scenarios(scenarios)
    table = panel.scenario_table
    assert table.rowCount() == len(scenarios) >= 3
    for row, s in enumerate(scenarios):
        assert table.item(row, 0).text() == s.title
        assert table.item(row, 1).text() == s.site
        assert table.item(row, 2).text() == f"{round(s.duration_s / 60, 1):g} min"
        assert table.item(row, 3).text() == str(len(s.incidents))
    assert panel.selected_scenario() == scenarios[0].id  # the first, ready to start
    last = scenarios[-1]
    table.selectRow(len(scenarios) - 1)
    assert panel.selected_scenario() == last.id
    assert panel.description.text() == " ".join(last.description.split())
    assert panel.start_button.isEnabled()
    # a reload keeps the trainer's choice, by id, wherever it lands
    panel.set_scenarios(list(reversed(scenarios)))
    assert panel.selected_scenario() == last.id and table.currentRow() == 0
    panel.set_scenarios([], "the scenarios cannot be read: bad.toml: duration_s: missing")
    assert panel.selected_scenario() == "" and not panel.start_button.isEnabled()
    assert "duration_s: missing" in panel.message.text() and panel.message.isVisibleTo(panel)
    assert "list is empty" in panel.description.text()


def test_the_period_stays_inside_the_tape_and_reads_in_local_time(qtbot: QtBot) -> None:
    panel = panel_for(qtbot)
    panel.use_period.setChecked(True)
    panel.set_span(None, KST)
    assert not panel.period_from.isEnabled() and not panel.start_button.isEnabled()
    assert not panel.period_from.isVisibleTo(panel)  # no made-up time shown
    assert "Nothing has been recorded" in panel.span_label.text()

    panel.set_span((FIRST, LAST), KST)
    for edit in (panel.period_from, panel.period_to):
        assert edit.isEnabled() and edit.isVisibleTo(panel)
        assert edit.minimumDateTime().toMSecsSinceEpoch() == FIRST * 1000
        assert edit.maximumDateTime().toMSecsSinceEpoch() == LAST * 1000
    # the last quarter hour by default, shown as the control room's clock
    assert panel.period() == (LAST - 900, LAST)
    assert panel.period_from.text() == "2026-12-06 08:45:00"
    assert panel.period_to.text() == "2026-12-06 09:00:00"
    assert panel.span_label.text() == ("Recorded: 2026-12-06 08:00:00 to 2026-12-06 "
                                       "09:00:00 (UTC+09:00)")
    # nothing outside the tape can be typed in: the editors clamp
    panel.period_from.setDateTime(QDateTime.fromSecsSinceEpoch(int(FIRST - 7200)))
    panel.period_to.setDateTime(QDateTime.fromSecsSinceEpoch(int(LAST + 7200)))
    assert panel.period() == (FIRST, LAST)
    # the tape grows: the limit moves, the choice stays
    panel.period_to.setDateTime(QDateTime.fromSecsSinceEpoch(int(FIRST + 1800)))
    panel.set_span((FIRST, LAST + 600), KST)
    assert panel.period_to.maximumDateTime().toMSecsSinceEpoch() == (LAST + 600) * 1000
    assert panel.period() == (FIRST, FIRST + 1800)
    # from after to: no start
    panel.period_from.setDateTime(QDateTime.fromSecsSinceEpoch(int(FIRST + 2400)))
    assert panel.choice_now() is None and not panel.start_button.isEnabled()
    # another offset (a workstation's own zone never matters)
    panel.set_span((FIRST, LAST), 0)
    assert panel.period_to.maximumDateTime().toString("HH:mm") == "00:00"
    assert panel.span_label.text().endswith("(UTC+00:00)")


def test_start_console_and_end_are_signals_following_the_session(
        qtbot: QtBot, scenarios: list[Scenario]) -> None:
    panel = panel_for(qtbot)
    panel.set_scenarios(scenarios)
    panel.set_span((FIRST, LAST), KST)
    assert not panel.console_button.isEnabled() and not panel.stop_button.isEnabled()
    panel.speed.setCurrentIndex(panel.speed.findData(0.25))
    panel.paused.setChecked(True)
    assert not panel.speed.isEnabled()  # paused, it plays at the replay bar's speed
    panel.scenario_table.selectRow(1)
    with qtbot.waitSignal(panel.start_requested) as asked:
        panel.start_button.click()
    assert asked.args == [StartChoice(scenarios[1].id, 0.0, 0.0, 0.25, True)]

    panel.use_period.setChecked(True)
    panel.speed.setCurrentIndex(panel.speed.findData(16.0))
    assert not panel.scenario_table.isEnabled()
    with qtbot.waitSignal(panel.start_requested) as asked:
        panel.start_button.click()
    assert asked.args == [StartChoice("", LAST - 900, LAST, 16.0, True)]
    assert [panel.speed.itemText(i) for i in range(panel.speed.count())] == \
        ["0.25×", "0.5×", "1×", "2×", "4×", "8×", "16×"]

    panel.set_busy(True)  # the launcher is at it: no second start
    assert not panel.start_button.isEnabled()
    panel.set_busy(False)
    panel.show_state("running", "School morning: SOS at the gate", pid=4242,
                     started_at=FIRST)
    assert "Running: “School morning: SOS at the gate” since 08:00 (pid 4242)" in \
        panel.state_label.text()
    assert panel.state_label.property("state") == "running"
    assert not panel.start_button.isEnabled()  # one session at a time
    assert panel.console_button.isEnabled() and panel.stop_button.isEnabled()
    with qtbot.waitSignal(panel.console_requested):
        panel.console_button.click()
    panel.confirm = lambda: False  # the trainer thought better of it
    with qtbot.assertNotEmitted(panel.stop_requested):
        panel.stop_button.click()
    panel.confirm = lambda: True
    with qtbot.waitSignal(panel.stop_requested):
        panel.stop_button.click()

    panel.show_state("ending", "School morning: SOS at the gate", pid=4242)
    assert not panel.stop_button.isEnabled() and not panel.start_button.isEnabled()
    assert "scoring the trainees" in panel.state_label.text()
    panel.show_state("ended", "School morning: SOS at the gate",
                     "report: /data/training-reports/x/training.html")
    assert panel.start_button.isEnabled() and not panel.console_button.isEnabled()
    assert "report: /data/training-reports/x" in panel.state_label.text()
    panel.show_state("running", ours=False)
    assert "started elsewhere" in panel.state_label.text()
    assert not panel.start_button.isEnabled()


def test_reports_are_listed_and_opened_by_signal(qtbot: QtBot, tmp_path: Path) -> None:
    panel = panel_for(qtbot)
    assert panel.report_empty.isVisibleTo(panel) and not panel.open_button.isEnabled()
    new = FakeReport(tmp_path / "school-morning-sos-20261206-090000", "school-morning-sos-"
                     "20261206-090000", LAST, tmp_path / "a.html", tmp_path / "a.csv")
    old = FakeReport(tmp_path / "park-zone-exit-20261206-080000", "park-zone-exit-"
                     "20261206-080000", FIRST, None, None)
    panel.show_reports([new, old])
    t = panel.report_table
    assert t.rowCount() == 2 and not panel.report_empty.isVisibleTo(panel)
    assert [t.item(r, 1).text() for r in range(2)] == [new.name, old.name]
    assert t.item(0, 0).text() == "2026-12-06 09:00" and t.item(0, 2).text() == "HTML + CSV"
    assert t.item(1, 2).text() == "(empty)"
    assert not panel.open_button.isEnabled()  # nothing chosen
    t.selectRow(0)
    with qtbot.waitSignal(panel.report_requested) as asked:
        panel.open_button.click()
    assert asked.args == [new.html]
    t.selectRow(1)  # no page in it: its folder
    with qtbot.waitSignal(panel.report_requested) as asked:
        panel.open_button.click()
    assert asked.args == [old.folder]
    panel.show_reports([old, new])  # refreshed: the selection follows the folder
    assert panel.selected_report() is old
    # with the scenarios known, a session reads as its scenario and time
    panel.set_scenarios(load_scenarios())
    panel.show_reports([new, old])
    assert t.item(0, 1).text() == "School morning: SOS at the gate · 2026-12-06 09:00"
    assert t.item(0, 1).toolTip() == str(new.folder)
