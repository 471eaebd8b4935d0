"""The supervisor's escalation panel: what needs a supervisor now, who
carries what, how the shift is going, and the hand-over to the next shift.

It only presents and asks. The window sends ``ShiftRequest`` and hands the
``ShiftReport`` to ``show_report``; a reassignment leaves as
``reassign_requested`` (alert id, the version the supervisor saw, user) for
the window to send as ``AssignAlert``, so a stale view is refused by the
engine rather than overwriting someone's work; the export buttons ask the
window for a path (``export_requested``) and ``write_handover`` writes the
file. The countdowns recount every second from the deadlines in the report
(its own timer, stopped whenever the panel is hidden or closed); all the
numbers come from ``models.kpi``.
"""

from __future__ import annotations

import random
import sys
import time
from collections.abc import Callable
from pathlib import Path

from PySide6.QtCore import QModelIndex, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QHideEvent, QShowEvent
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSplitter,
    QTableView,
    QVBoxLayout,
    QWidget,
)

from models import kpi
from models.alerts import BREACH_ACK, BREACH_CLOSE, DEFAULT_PRIORITY, DEFAULT_SLA, KINDS
from models.messages import AlertView, ShiftReport, StaffLoad
from models.qt.escalation_table import (
    ESCALATION_COLUMNS,
    LOAD_COLUMNS,
    EscalationTableModel,
    OperatorLoadModel,
)
from widgets.alert_queue import SeverityDelegate
from widgets.kpi_charts import KpiCharts
from widgets.severity import SeverityPalette
from widgets.tables import read_only

FORMATS = ("csv", "html")
TICK_MS = 1000


def _table(model: EscalationTableModel | OperatorLoadModel, stretch: int) -> QTableView:
    view = QTableView()
    view.setModel(model)
    return read_only(view, stretch)


class EscalationPanel(QWidget):
    """Escalations with countdowns, operator load, reassign, KPIs and hand-over."""

    reassign_requested = Signal(int, int, str)  # alert id, alert version, user
    export_requested = Signal(str)  # "csv" | "html"

    def __init__(self, parent: QWidget | None = None, *,
                 clock: Callable[[], float] | None = time.time) -> None:
        """``clock`` drives the countdown each second while the panel is shown;
        None leaves it to whoever calls ``tick`` (tests, a window with its own
        clock)."""
        super().__init__(parent)
        self.setObjectName("escalationPanel")
        self._clock = clock
        self._report: ShiftReport | None = None
        self._since = 0.0
        self._now = 0.0
        self.severity = SeverityPalette(self)

        self.title = QLabel(self.tr("Escalations"))
        self.title.setObjectName("panelTitle")
        self.shift_label = QLabel(self.tr("Waiting for the shift report…"))
        self.shift_label.setObjectName("shiftSummary")

        self.model = EscalationTableModel()
        self.table = _table(self.model, ESCALATION_COLUMNS.index("Reason"))
        self.table.setItemDelegate(SeverityDelegate(self.severity, self.table))
        self.table.selectionModel().selectionChanged.connect(self._update_buttons)
        self.empty_label = QLabel(self.tr("No alert is escalated or close to its SLA."))
        self.empty_label.setObjectName("escalationEmpty")

        self.assignee = QComboBox()
        self.assignee.setObjectName("assigneeCombo")
        self.assignee.setMinimumContentsLength(12)
        self.assignee.currentIndexChanged.connect(self._update_buttons)
        self.reassign_button = QPushButton(self.tr("Reassign…"))
        self.reassign_button.setObjectName("reassignButton")
        self.reassign_button.clicked.connect(self.reassign_selected)

        self.load_model = OperatorLoadModel()
        self.load_table = _table(self.load_model, LOAD_COLUMNS.index("Operator"))
        self.load_table.setItemDelegate(SeverityDelegate(self.severity, self.load_table))
        self.load_table.doubleClicked.connect(self._pick_assignee)

        self.csv_button = QPushButton(self.tr("Export hand-over (CSV)…"))
        self.csv_button.clicked.connect(lambda: self.export_requested.emit("csv"))
        self.html_button = QPushButton(self.tr("Print hand-over (HTML)…"))
        self.html_button.clicked.connect(lambda: self.export_requested.emit("html"))

        self.charts = KpiCharts()

        head = QHBoxLayout()
        head.addWidget(self.title)
        head.addWidget(self.shift_label, 1)
        head.addWidget(self.csv_button)
        head.addWidget(self.html_button)

        reassign = QHBoxLayout()
        reassign.addWidget(QLabel(self.tr("Selected alert to:")))
        reassign.addWidget(self.assignee, 1)
        reassign.addWidget(self.reassign_button)

        left = QWidget()
        left_layout = QVBoxLayout(left)
        left_layout.setContentsMargins(0, 0, 0, 0)
        left_layout.addWidget(self.table, 3)
        left_layout.addWidget(self.empty_label)
        left_layout.addLayout(reassign)
        load_title = QLabel(self.tr("Operator load"))
        load_title.setObjectName("panelTitle")
        left_layout.addWidget(load_title)
        left_layout.addWidget(self.load_table, 2)

        self.splitter = QSplitter()
        self.splitter.addWidget(left)
        self.splitter.addWidget(self.charts)
        self.splitter.setStretchFactor(0, 1)
        self.splitter.setStretchFactor(1, 1)
        self.splitter.setSizes([1, 1])  # half each, whatever the first width
        self.splitter.setChildrenCollapsible(False)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(4, 4, 4, 4)
        layout.addLayout(head)
        layout.addWidget(self.splitter, 1)

        self.timer = QTimer(self)
        self.timer.setInterval(TICK_MS)
        self.timer.timeout.connect(self._on_timer)
        self._update_buttons()

    # ------------------------------------------------------------ showing

    def show_report(self, report: ShiftReport, since: float, now: float) -> None:
        """Show a shift from ``since`` as it stood at ``now`` (the engine's time)."""
        self._report = report
        self._since = since
        alerts = report.alerts
        self.charts.show_kpis(
            kpi.histogram(kpi.ack_times(alerts)),
            kpi.histogram(kpi.resolve_times(alerts)),
            kpi.per_hour_by_kind(alerts, since, now),
            kpi.per_hour_by_district(alerts, since, now).totals(),
            kpi.sla_compliance(alerts), kpi.sla_by_priority(alerts))
        self._fill_assignees(report.staff)
        self.tick(now)

    def tick(self, now: float) -> None:
        """Recount countdowns, escalations and load for ``now``; keeps the selection."""
        self._now = now
        if self._report is None:
            return
        alerts = self._report.alerts
        selected = self.selected_escalation()
        rows = kpi.escalations(alerts, now)
        if self.model.update_rows(rows, now) and selected is not None:
            row = self.model.row_of(selected.id)
            if row >= 0:
                self.table.selectRow(row)
        self.empty_label.setVisible(not rows)
        picked = self.selected_load()
        if (self.load_model.replace_rows(kpi.operator_load(self._report.staff, alerts, now))
                and picked is not None and (row := self.load_model.row_of(picked.id)) >= 0):
            self.load_table.selectRow(row)
        unresolved = sum(1 for a in alerts if a.state != "resolved")
        self.shift_label.setText(
            self.tr("Shift since %1 · %2 alerts · %3 unresolved · %4 need a supervisor")
            .replace("%1", time.strftime("%H:%M", time.localtime(self._since)))
            .replace("%2", str(len(alerts))).replace("%3", str(unresolved))
            .replace("%4", str(len(rows))))
        self._update_buttons()

    def _fill_assignees(self, staff: list[StaffLoad]) -> None:
        """Signed-in people who work the queue, least loaded first; the choice
        made before survives a new report when that person is still on."""
        current = self.assignee_user()
        load = {s.user: s.open_alerts for s in staff}
        self.assignee.blockSignals(True)
        self.assignee.clear()
        for user in kpi.assignable(staff):
            self.assignee.addItem(self.tr("%1 (%2 open)").replace("%1", user)
                                  .replace("%2", str(load[user])), user)
        self.assignee.setCurrentIndex(max(self.assignee.findData(current), 0)
                                      if self.assignee.count() else -1)
        self.assignee.blockSignals(False)

    # ------------------------------------------------------------ actions

    def selected_escalation(self) -> kpi.Escalation | None:
        rows = self.table.selectionModel().selectedRows()
        return self.model.escalation_at(rows[0].row()) if rows else None

    def selected_load(self) -> kpi.OperatorLoad | None:
        rows = self.load_table.selectionModel().selectedRows()
        return self.load_model.load_at(rows[0].row()) if rows else None

    def assignee_user(self) -> str:
        data = self.assignee.currentData()
        return data if isinstance(data, str) else ""

    def reassign_selected(self) -> None:
        """Ask for the selected alert to go to the chosen operator, naming the
        version shown so the engine refuses it if the alert moved meanwhile."""
        e = self.selected_escalation()
        user = self.assignee_user()
        if e is not None and user and user != e.alert.owner:
            self.reassign_requested.emit(e.alert.id, e.alert.version, user)

    def _pick_assignee(self, index: QModelIndex) -> None:
        load = self.load_model.load_at(index.row())
        if load is not None and (i := self.assignee.findData(load.user)) >= 0:
            self.assignee.setCurrentIndex(i)

    def _update_buttons(self) -> None:
        e = self.selected_escalation()
        user = self.assignee_user()
        self.reassign_button.setEnabled(e is not None and bool(user) and user != e.alert.owner)
        has_report = self._report is not None
        self.csv_button.setEnabled(has_report)
        self.html_button.setEnabled(has_report)

    def write_handover(self, path: str | Path, fmt: str, who: str) -> int:
        """Write the hand-over of the last report to ``path`` as ``fmt`` ("csv"
        or "html"); returns how many open alerts it lists. CSV gets a UTF-8
        byte-order mark so spreadsheet programs read the Hangul right."""
        if fmt not in FORMATS:
            raise ValueError(f"hand-over format is csv or html, not {fmt!r}")
        rows = kpi.handover_rows(self._report.alerts if self._report else [])
        if fmt == "csv":
            Path(path).write_text(kpi.handover_csv(rows), encoding="utf-8-sig", newline="")
        else:
            Path(path).write_text(kpi.handover_html(rows, self._since, self._now, who),
                                  encoding="utf-8")
        return len(rows)

    # ------------------------------------------------------------ the clock

    def _on_timer(self) -> None:
        if self._clock is not None:
            self.tick(self._clock())

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        if self._clock is not None:
            self.timer.start()

    def hideEvent(self, event: QHideEvent) -> None:
        self.timer.stop()
        super().hideEvent(event)

    def closeEvent(self, event: QCloseEvent) -> None:
        self.timer.stop()
        super().closeEvent(event)


# ------------------------------------------------------------------ fake shift

OPERATORS = ("kim.operator", "lee.operator", "park.operator")
SIGNED_OUT = "jung.operator"  # owns a few open alerts but has gone home
PLACES = ("성동구 성수동1가", "성동구 행당동", "구로구 신도림동", "구로구 구로동",
          "도봉구 방학동", "도봉구 창동", "강남구 역삼동", "마포구 망원동", "노원구 상계동")
NOTES = ("", "", "called guardian", "CCTV checked, child seen near the gate",
         "device moving with bus 6211", "guardian not answering, trying school")


def fake_shift(now: float, hours: float = 8.0, n: int = 80, seed: int = 7
               ) -> tuple[ShiftReport, float]:
    """A plausible shift for running the panel alone: ``n`` alerts over
    ``hours``; most old ones closed, the latest still being worked, a few
    acknowledged late or left open too long (escalated), four live ones
    close to their deadlines, one owner signed out, and three operators and
    a supervisor on."""
    rng = random.Random(seed)
    since = now - hours * 3600
    alerts: list[AlertView] = []
    for i in range(n - 4):
        kind = rng.choices(KINDS, (3, 1, 2, 4, 2, 2, 1, 1, 1))[0]
        prio = DEFAULT_PRIORITY[kind]
        sla = DEFAULT_SLA[prio]
        opened = min(now - 15, since + hours * 3600 * rng.random() ** 0.9)
        age = now - opened
        ack_due, close_due = opened + sla.ack_s, opened + sla.close_s
        if age < sla.ack_s * rng.uniform(0.5, 2.0):
            state = "new"
        elif rng.random() < min(0.985, 0.2 + 0.9 * age / sla.close_s):
            state = rng.choices(("resolved", "dispatched"), (10, 1))[0]
        else:
            state = rng.choices(("acknowledged", "in_progress", "on_hold"), (1, 4, 1))[0]
        owner = "" if state == "new" else rng.choices((*OPERATORS, SIGNED_OUT),
                                                      (4, 4, 4, 1))[0]
        acked_at = 0.0
        if state != "new":
            acked_at = opened + min(age * 0.9, sla.ack_s * rng.lognormvariate(-0.8, 0.6))
        done = opened + min(age, max(acked_at - opened + 30, sla.close_s * rng.uniform(0.1, 1.1)))
        breaches = 0
        if (state == "new" and now > ack_due) or acked_at > ack_due:
            breaches |= BREACH_ACK
        end = done if state in ("dispatched", "resolved") else now
        if end > close_due:
            breaches |= BREACH_CLOSE
        hold = state == "on_hold"
        alerts.append(AlertView(
            id=1000 + i, kind=kind, priority=prio, state=state,
            child_token=f"C-{rng.randrange(16**6):06X}", child_slot=i,
            device_id=f"86{rng.randrange(10**12):012d}", lat=37.5 + rng.random() / 10,
            lon=127.0 + rng.random() / 10, place=rng.choice(PLACES), opened_at=opened,
            acked_by=owner, acked_at=acked_at, owner=owner, version=rng.randint(2, 6),
            ack_due=ack_due, close_due=close_due, breaches=breaches,
            escalated_at=min(now, ack_due if breaches & BREACH_ACK else close_due)
            if breaches else 0.0,
            resolved_at=done if state == "resolved" else 0.0,
            updated_at=done if state in ("dispatched", "resolved") else now - 30,
            dispatched_to="police" if state == "dispatched" else "",
            hold_reason="guardian on the way" if hold else "",
            hold_until=now + 600 if hold else 0.0, last_note=rng.choice(NOTES)))
    # What a supervisor sees at a glance: an SOS nobody has picked up for 25 s,
    # a zone exit and a fall running out of time, a removal not acknowledged.
    live = (("sos", "new", 25, ""), ("zone_exit", "in_progress", 26 * 60, "lee.operator"),
            ("fall", "on_hold", 8 * 60, "kim.operator"), ("removed", "new", 190, ""))
    for k, (kind, state, age, owner) in enumerate(live):
        prio = DEFAULT_PRIORITY[kind]
        opened = now - age
        sla = DEFAULT_SLA[prio]
        late = not owner and age > sla.ack_s
        alerts.append(AlertView(
            id=1000 + n + k, kind=kind, priority=prio, state=state,  # type: ignore[arg-type]
            child_token=f"C-{rng.randrange(16**6):06X}", child_slot=n + k,
            device_id=f"86{rng.randrange(10**12):012d}", lat=37.5444, lon=127.0374,
            place=PLACES[k], opened_at=opened, owner=owner, acked_by=owner,
            acked_at=opened + 20 if owner else 0.0, ack_due=opened + sla.ack_s,
            close_due=opened + sla.close_s, breaches=late * BREACH_ACK,
            escalated_at=opened + sla.ack_s if late else 0.0, updated_at=now - 5,
            hold_reason="waiting for guardian's call back" if state == "on_hold" else "",
            hold_until=now + 300 if state == "on_hold" else 0.0,
            last_note="guardian: child may be at <Happy Math> 학원" if k == 3 else ""))
    alerts.sort(key=lambda a: a.opened_at)
    unresolved = [a.owner for a in alerts if a.state != "resolved"]
    staff = [StaffLoad(user=u, roles=["operator"], signed_in_at=since + 60 * k,
                       open_alerts=unresolved.count(u)) for k, u in enumerate(OPERATORS)]
    staff.append(StaffLoad(user="han.supervisor", roles=["supervisor"], signed_in_at=since,
                           open_alerts=unresolved.count("han.supervisor")))
    return ShiftReport(alerts=alerts, staff=staff), since


def main() -> int:
    from PySide6.QtWidgets import QApplication, QFileDialog

    from console.theme import apply_theme

    app = QApplication(sys.argv)
    apply_theme(app)
    now = time.time()
    report, since = fake_shift(now)
    panel = EscalationPanel()
    panel.reassign_requested.connect(
        lambda a, v, u: print(f"reassign alert {a} (v{v}) to {u}"))

    def export(fmt: str) -> None:
        kind = "CSV (*.csv)" if fmt == "csv" else "HTML (*.html)"
        path, _ = QFileDialog.getSaveFileName(panel, panel.tr("Save the hand-over"),
                                              f"handover.{fmt}", kind)
        if path:
            print(f"wrote {panel.write_handover(path, fmt, 'demo')} open alerts to {path}")

    panel.export_requested.connect(export)
    panel.show_report(report, since, now)
    panel.resize(1400, 860)
    panel.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
