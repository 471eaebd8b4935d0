"""widgets.escalation_panel: a real panel offscreen, fed hand-made shift
reports with a pinned clock (``clock=None``: the test ticks)."""

from __future__ import annotations

import csv
import io
import time
from pathlib import Path

import pytest
from PySide6.QtCore import Qt
from PySide6.QtWidgets import QApplication
from pytestqt.qtbot import QtBot

from models.kpi import HANDOVER_COLUMNS
from models.messages import ShiftReport, StaffLoad
from models.qt.escalation_table import ESCALATION_COLUMNS, LOAD_COLUMNS
from tests.models.test_kpi import NOW, T0, alert, escalation_shift
from widgets.escalation_panel import EscalationPanel, fake_shift

LEFT = Qt.MouseButton.LeftButton
COUNTDOWN = ESCALATION_COLUMNS.index("Time left")


def staff() -> list[StaffLoad]:
    return [StaffLoad(user="kim", roles=["operator"], signed_in_at=T0, open_alerts=2),
            StaffLoad(user="lee", roles=["operator"], signed_in_at=T0 + 60, open_alerts=2),
            StaffLoad(user="han", roles=["supervisor"], signed_in_at=T0, open_alerts=0),
            StaffLoad(user="audit", roles=["auditor"], signed_in_at=T0, open_alerts=0)]


def report() -> ShiftReport:
    # The escalation cases plus a hostile note on an open alert.
    hostile = alert(9, state="on_hold", owner="kim", opened_at=T0 + 120,
                    hold_reason="guardian <b>calling</b>", hold_until=NOW + 600,
                    last_note="<script>alert(1)</script>", place="도봉구 방학동")
    return ShiftReport(alerts=[*escalation_shift(), hostile], staff=staff())


@pytest.fixture
def panel(qtbot: QtBot) -> EscalationPanel:
    p = EscalationPanel(clock=None)
    qtbot.addWidget(p)
    p.resize(1200, 800)
    p.show()
    qtbot.waitExposed(p)
    return p


def cell(p: EscalationPanel, alert_id: int, column: int) -> str:
    row = p.model.row_of(alert_id)
    assert row >= 0, f"alert {alert_id} not listed"
    return str(p.model.index(row, column).data())


def test_show_report_fills_both_tables(panel: EscalationPanel) -> None:
    panel.show_report(report(), T0, NOW)
    ids = [panel.model.row_at(i).id for i in range(panel.model.rowCount())]  # type: ignore[union-attr]
    assert ids == [4, 1, 5, 3, 2, 8]
    assert cell(panel, 4, COUNTDOWN) == "3:20 overdue"
    assert cell(panel, 3, COUNTDOWN) == "0:05 left"
    assert cell(panel, 5, COUNTDOWN) == "dispatched"
    assert cell(panel, 1, ESCALATION_COLUMNS.index("Reason")) == "ack SLA missed"
    assert cell(panel, 1, ESCALATION_COLUMNS.index("Owner")) == "(nobody)"
    assert cell(panel, 2, ESCALATION_COLUMNS.index("Owner")) == "lee"
    assert cell(panel, 2, ESCALATION_COLUMNS.index("Kind")) == "SOS"
    loads = [[panel.load_model.index(r, c).data() for c in range(len(LOAD_COLUMNS))]
             for r in range(panel.load_model.rowCount())]
    assert [row[:3] for row in loads] == [["lee", "2", "2"], ["kim", "2", "1"],
                                          ["old", "1", "1"], ["audit", "0", "0"],
                                          ["han", "0", "0"]]
    assert loads[2][3] == "not signed in"
    assert [panel.assignee.itemData(i) for i in range(panel.assignee.count())] == [
        "han", "kim", "lee"]
    assert not panel.empty_label.isVisible()
    assert "6 need a supervisor" in panel.shift_label.text()


def test_countdown_changes_after_tick_and_keeps_the_selection(panel: EscalationPanel) -> None:
    panel.show_report(report(), T0, NOW)
    panel.table.selectRow(panel.model.row_of(2))
    before = cell(panel, 2, COUNTDOWN)
    panel.tick(NOW + 10)
    assert before == "2:00 left" and cell(panel, 2, COUNTDOWN) == "1:50 left"
    # C ran out of time: it is overdue now and heads the list.
    assert panel.model.row_at(0).id == 3  # type: ignore[union-attr]
    assert cell(panel, 3, COUNTDOWN) == "0:05 overdue"
    selected = panel.selected_escalation()
    assert selected is not None and selected.id == 2


def test_reassign_emits_alert_version_and_user(panel: EscalationPanel, qtbot: QtBot) -> None:
    panel.show_report(report(), T0, NOW)
    assert not panel.reassign_button.isEnabled()  # nothing selected
    panel.table.selectRow(panel.model.row_of(2))  # lee's alert
    panel.assignee.setCurrentIndex(panel.assignee.findData("lee"))
    assert not panel.reassign_button.isEnabled()  # already lee's
    panel.assignee.setCurrentIndex(panel.assignee.findData("kim"))
    assert panel.reassign_button.isEnabled()
    version = panel.selected_escalation().alert.version  # type: ignore[union-attr]
    with qtbot.waitSignal(panel.reassign_requested, timeout=1000) as blocker:
        qtbot.mouseClick(panel.reassign_button, LEFT)
    assert blocker.args == [2, version, "kim"]


def test_double_clicking_an_operator_picks_them(panel: EscalationPanel, qtbot: QtBot) -> None:
    panel.show_report(report(), T0, NOW)
    row = next(r for r in range(panel.load_model.rowCount())
               if panel.load_model.index(r, 0).data() == "lee")
    panel.load_table.doubleClicked.emit(panel.load_model.index(row, 0))
    assert panel.assignee_user() == "lee"


def test_export_buttons_ask_for_a_path(panel: EscalationPanel, qtbot: QtBot) -> None:
    assert not panel.csv_button.isEnabled()  # no report yet
    panel.show_report(report(), T0, NOW)
    for button, fmt in ((panel.csv_button, "csv"), (panel.html_button, "html")):
        with qtbot.waitSignal(panel.export_requested, timeout=1000) as blocker:
            qtbot.mouseClick(button, LEFT)
        assert blocker.args == [fmt]


def test_write_handover_csv_and_html(panel: EscalationPanel, tmp_path: Path) -> None:
    panel.show_report(report(), T0, NOW)
    assert panel.write_handover(tmp_path / "h.csv", "csv", "han") == 8
    text = (tmp_path / "h.csv").read_bytes()
    assert text.startswith(b"\xef\xbb\xbf")  # BOM: spreadsheets read the Hangul right
    rows = list(csv.reader(io.StringIO(text.decode("utf-8-sig"), newline="")))
    assert tuple(rows[0]) == HANDOVER_COLUMNS
    assert sorted(int(r[0]) for r in rows[1:]) == [1, 2, 3, 4, 5, 6, 8, 9]
    held = next(r for r in rows if r[0] == "9")
    assert held[HANDOVER_COLUMNS.index("place")] == "도봉구 방학동"
    assert held[HANDOVER_COLUMNS.index("last_note")] == "<script>alert(1)</script>"

    assert panel.write_handover(tmp_path / "h.html", "html", "han") == 8
    page = (tmp_path / "h.html").read_text(encoding="utf-8")
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page
    assert "guardian &lt;b&gt;calling&lt;/b&gt;" in page
    assert page.count("<tr") == 9 and "handed over by han" in page
    with pytest.raises(ValueError, match="csv or html"):
        panel.write_handover(tmp_path / "h.pdf", "pdf", "han")


def test_charts_hold_the_shift(panel: EscalationPanel) -> None:
    panel.show_report(report(), T0, NOW)
    charts = panel.charts
    # Acknowledged: B, D, E, F and H (A, C, G and the on-hold one never were).
    assert charts.ack_bars is not None
    assert sum(charts.ack_bars.opts["height"]) == 5
    # Resolved G and dispatched E.
    assert charts.resolve_bars is not None
    assert sum(charts.resolve_bars.opts["height"]) == 2
    # Opened in the shift (T0 to NOW): all but H (opened before T0), by kind,
    # stacked per hour.
    heights = {k: list(b.opts["height"]) for k, b in charts.kind_bars.items()}
    assert set(heights) == {"sos", "removed", "zone_exit"}
    assert sum(sum(h) for h in heights.values()) == 8
    assert all(len(h) == 3 for h in heights.values())  # 10,000 s: three hour bins
    assert list(charts.kind_bars["sos"].opts["y0"]) == [0, 0, 0]
    assert list(charts.district_bars.opts["width"]) == [7, 1]  # type: ignore[union-attr]
    sla = list(charts.sla_bars.opts["height"])  # type: ignore[union-attr]
    assert len(sla) == 4 and len(charts.sla_texts) == 4
    assert charts.sla_label.property("level") in ("good", "warn", "bad")


def test_chart_colours_come_from_the_theme(qtbot: QtBot) -> None:
    p = EscalationPanel(clock=None)
    qtbot.addWidget(p)
    p.setStyleSheet("ChartPalette { qproperty-sosColor: #123456; }")
    assert p.charts.palette_.colour("sosColor").name() == "#123456"
    p.show_report(report(), T0, NOW)
    brush = p.charts.kind_bars["sos"].opts["brush"]
    assert brush.color().name() == "#123456"


def test_timer_runs_only_while_shown(qtbot: QtBot) -> None:
    ticks: list[float] = []
    p = EscalationPanel(clock=lambda: ticks.append(1.0) or NOW)  # type: ignore[func-returns-value]
    qtbot.addWidget(p)
    assert not p.timer.isActive()
    p.show()
    qtbot.waitExposed(p)
    assert p.timer.isActive()
    p.timer.setInterval(10)
    qtbot.waitUntil(lambda: len(ticks) >= 2, timeout=2000)
    p.close()
    assert not p.timer.isActive()


def test_fake_shift_runs_the_panel_alone(panel: EscalationPanel) -> None:
    now = time.time()
    rep, since = fake_shift(now)
    assert len(rep.alerts) == 80
    assert {"new", "in_progress", "on_hold", "dispatched", "resolved"} <= {
        a.state for a in rep.alerts}
    assert any(a.breaches for a in rep.alerts)
    panel.show_report(rep, since, now)
    assert panel.model.rowCount() > 0 and panel.load_model.rowCount() >= 4
    QApplication.processEvents()
