"""The supervisor's approvals: reveals and disclosures waiting for a
second pair of eyes.

A reveal without an open alert of one's own, and every disclosure to
police or fire, waits here for a supervisor who is not the requester. A
supervisor's own request is listed too (so they see it is waiting) with
its buttons disabled; the engine refuses it anyway. Approving a
disclosure needs the guardian notice the law asks for ("phoned the mother
at 14:20"), which is recorded on it.

It only presents and asks: the controller polls ``RevealsRequest`` and
``DisclosuresRequest`` while the panel is shown (``refresh_wanted`` when
it appears) and hands the lists to ``show_reveals`` / ``show_disclosures``;
a decision leaves as ``reveal_decided`` / ``disclosure_decided``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

from PySide6.QtCore import QT_TRANSLATE_NOOP, Qt, Signal
from PySide6.QtGui import QShowEvent
from PySide6.QtWidgets import (
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from models.kpi import clock as duration
from models.messages import DisclosureView
from models.messages import RevealView as RevealState
from models.privacy_view import MAX_NOTICE, MAX_REASON, MIN_NOTICE, reason_ok
from widgets.tables import read_only

REVEAL_COLUMNS = (
    QT_TRANSLATE_NOOP("ApprovalsPanel", "Asked by"), QT_TRANSLATE_NOOP("ApprovalsPanel", "Child"),
    QT_TRANSLATE_NOOP("ApprovalsPanel", "Reason"), QT_TRANSLATE_NOOP("ApprovalsPanel", "Alert"),
    QT_TRANSLATE_NOOP("ApprovalsPanel", "Waiting"),
)
DISCLOSURE_COLUMNS = (
    QT_TRANSLATE_NOOP("ApprovalsPanel", "Asked by"), QT_TRANSLATE_NOOP("ApprovalsPanel", "Alert"),
    QT_TRANSLATE_NOOP("ApprovalsPanel", "Child"), QT_TRANSLATE_NOOP("ApprovalsPanel", "Agency"),
    QT_TRANSLATE_NOOP("ApprovalsPanel", "Reason"),
    QT_TRANSLATE_NOOP("ApprovalsPanel", "Waiting"),
)
AGENCY_TEXT = {"police": QT_TRANSLATE_NOOP("ApprovalsPanel", "Police 112"),
               "fire": QT_TRANSLATE_NOOP("ApprovalsPanel", "Fire 119")}
IdRole = Qt.ItemDataRole.UserRole + 1


def _table(columns: Sequence[str], stretch: int, tr: Callable[[str], str]) -> QTableWidget:
    t = QTableWidget(0, len(columns))
    t.setHorizontalHeaderLabels([tr(c) for c in columns])
    read_only(t, stretch)
    return t


class ApprovalsPanel(QWidget):
    """Pending reveals and disclosures with Approve / Refuse. Present-only."""

    reveal_decided = Signal(int, bool, str)  # reveal id, approve, note
    disclosure_decided = Signal(int, bool, str)  # disclosure id, approve, guardian notice
    refresh_wanted = Signal()  # shown: fetch the lists now
    pending_changed = Signal(int)  # requests waiting for this user's decision

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("approvalsPanel")
        self._user = ""
        self._now = 0.0
        self._reveals: list[RevealState] = []
        self._disclosures: list[DisclosureView] = []
        self._waiting = -1

        title = QLabel(self.tr("Approvals"))
        title.setObjectName("panelTitle")
        self.summary = QLabel()
        self.summary.setObjectName("approvalsSummary")
        self.message = QLabel()
        self.message.setObjectName("approvalsMessage")
        self.message.setWordWrap(True)
        self.message.hide()

        reveals_title = QLabel(self.tr("Identity reveals waiting"))
        reveals_title.setObjectName("sectionTitle")
        self.reveal_table = _table(REVEAL_COLUMNS, 2, self.tr)
        self.reveal_table.setObjectName("revealApprovals")
        self.reveal_table.itemSelectionChanged.connect(self._update_buttons)
        self.reveal_empty = QLabel(self.tr("No reveal is waiting."))
        self.reveal_empty.setObjectName("approvalsEmpty")
        self.reveal_note = QLineEdit()
        self.reveal_note.setObjectName("revealNote")
        self.reveal_note.setMaxLength(MAX_REASON)
        self.reveal_note.setPlaceholderText(self.tr("Note (optional): why you decided so"))
        self.approve_reveal = QPushButton(self.tr("Approve"))
        self.approve_reveal.setObjectName("approveButton")
        self.approve_reveal.clicked.connect(lambda: self._decide_reveal(True))
        self.refuse_reveal = QPushButton(self.tr("Refuse"))
        self.refuse_reveal.setObjectName("refuseButton")
        self.refuse_reveal.clicked.connect(lambda: self._decide_reveal(False))

        disclosures_title = QLabel(self.tr("Disclosures to police or fire waiting"))
        disclosures_title.setObjectName("sectionTitle")
        self.disclosure_table = _table(DISCLOSURE_COLUMNS, 4, self.tr)
        self.disclosure_table.setObjectName("disclosureApprovals")
        self.disclosure_table.itemSelectionChanged.connect(self._update_buttons)
        self.disclosure_empty = QLabel(self.tr("No disclosure is waiting."))
        self.disclosure_empty.setObjectName("approvalsEmpty")
        self.notice = QLineEdit()
        self.notice.setObjectName("guardianNotice")
        self.notice.setMaxLength(MAX_NOTICE)
        self.notice.setPlaceholderText(self.tr("How the guardian was told, e.g. “phoned the "
                                               "mother at 14:20”"))
        self.notice.textChanged.connect(self._update_buttons)
        self.approve_disclosure = QPushButton(self.tr("Approve"))
        self.approve_disclosure.setObjectName("approveButton")
        self.approve_disclosure.clicked.connect(lambda: self._decide_disclosure(True))
        self.refuse_disclosure = QPushButton(self.tr("Refuse"))
        self.refuse_disclosure.setObjectName("refuseButton")
        self.refuse_disclosure.clicked.connect(lambda: self._decide_disclosure(False))

        head = QHBoxLayout()
        head.addWidget(title)
        head.addWidget(self.summary, 1)
        # Why the buttons are off for a supervisor's own request, in words.
        self.reveal_hint = QLabel()
        self.disclosure_hint = QLabel()
        for hint in (self.reveal_hint, self.disclosure_hint):
            hint.setObjectName("approvalsHint")
            hint.hide()
        reveal_row = QHBoxLayout()
        reveal_row.addWidget(self.reveal_note, 1)
        reveal_row.addWidget(self.approve_reveal)
        reveal_row.addWidget(self.refuse_reveal)
        notice_caption = QLabel(self.tr("Guardian notice"))
        notice_caption.setObjectName("alertFactName")
        disclosure_row = QHBoxLayout()
        disclosure_row.addWidget(notice_caption)
        disclosure_row.addWidget(self.notice, 1)
        disclosure_row.addWidget(self.approve_disclosure)
        disclosure_row.addWidget(self.refuse_disclosure)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 0, 8, 4)
        layout.setSpacing(6)
        layout.addLayout(head)
        layout.addWidget(self.message)
        layout.addWidget(reveals_title)
        layout.addWidget(self.reveal_table, 1)
        layout.addWidget(self.reveal_empty)
        layout.addWidget(self.reveal_hint)
        layout.addLayout(reveal_row)
        layout.addWidget(disclosures_title)
        layout.addWidget(self.disclosure_table, 1)
        layout.addWidget(self.disclosure_empty)
        layout.addWidget(self.disclosure_hint)
        layout.addLayout(disclosure_row)
        self._refill()

    # ------------------------------------------------------------ inputs

    def set_user(self, name: str) -> None:
        """The signed-in supervisor: their own requests are not theirs to decide."""
        self._user = name
        self._refill()

    def show_reveals(self, reveals: Sequence[RevealState], now: float | None = None) -> None:
        """The pending reveals (others in the list are left out), oldest first."""
        if now is not None:
            self._now = now
        self._reveals = sorted((r for r in reveals if r.state == "pending"),
                               key=lambda r: (r.requested_at, r.id))
        self._refill()

    def show_disclosures(self, disclosures: Sequence[DisclosureView],
                         now: float | None = None) -> None:
        if now is not None:
            self._now = now
        self._disclosures = sorted((d for d in disclosures if d.state == "pending"),
                                   key=lambda d: (d.requested_at, d.id))
        self._refill()

    def show_message(self, text: str, kind: str = "ok") -> None:
        """The outcome of the last decision ("ok") or the engine's refusal ("error")."""
        self.message.setText(text)
        self.message.setProperty("kind", kind)
        self.message.style().unpolish(self.message)
        self.message.style().polish(self.message)
        self.message.setVisible(bool(text))

    def tick(self, now: float) -> None:
        """Recount the Waiting column."""
        self._now = now
        for table, rows, col in ((self.reveal_table, self._reveals, len(REVEAL_COLUMNS) - 1),
                                 (self.disclosure_table, self._disclosures,
                                  len(DISCLOSURE_COLUMNS) - 1)):
            for r, row in enumerate(rows):
                item = table.item(r, col)
                if item is not None:
                    item.setText(duration(now - row.requested_at))

    def clear(self) -> None:
        """Forget both lists (the session ended)."""
        self._reveals, self._disclosures = [], []
        self.reveal_note.clear()
        self.notice.clear()
        self.show_message("")
        self._refill()

    # ------------------------------------------------------------ reading

    def selected_reveal(self) -> RevealState | None:
        return self._selected(self.reveal_table, self._reveals)  # type: ignore[return-value]

    def selected_disclosure(self) -> DisclosureView | None:
        return self._selected(self.disclosure_table, self._disclosures)  # type: ignore[return-value]

    def select_reveal(self, reveal_id: int) -> bool:
        return self._select(self.reveal_table, reveal_id)

    def select_disclosure(self, disclosure_id: int) -> bool:
        return self._select(self.disclosure_table, disclosure_id)

    @property
    def waiting(self) -> int:
        """Requests this user may decide (their own are not counted)."""
        return (sum(1 for r in self._reveals if r.user != self._user)
                + sum(1 for d in self._disclosures if d.requested_by != self._user))

    # ------------------------------------------------------------ internals

    def _refill(self) -> None:
        keep_r = self.selected_reveal()
        keep_d = self.selected_disclosure()
        now = self._now or time.time()
        self._fill(self.reveal_table, [
            (r.id, r.user, (r.user,
                            r.child,
                            r.reason,
                            str(r.alert_id) if r.alert_id else self.tr("none"),
                            duration(now - r.requested_at)))
            for r in self._reveals])
        self._fill(self.disclosure_table, [
            (d.id, d.requested_by, (d.requested_by,
                                    str(d.alert_id),
                                    d.child,
                                    self.tr(AGENCY_TEXT.get(d.agency, d.agency)),
                                    d.reason,
                                    duration(now - d.requested_at)))
            for d in self._disclosures])
        if keep_r is not None:
            self._select(self.reveal_table, keep_r.id)
        if keep_d is not None:
            self._select(self.disclosure_table, keep_d.id)
        self.reveal_empty.setVisible(not self._reveals)
        self.disclosure_empty.setVisible(not self._disclosures)
        waiting = self.waiting
        self.summary.setText(self.tr("%1 waiting for you").replace("%1", str(waiting))
                             if waiting else self.tr("nothing waits for you"))
        self.summary.setProperty("waiting", "true" if waiting else "false")
        self.summary.style().unpolish(self.summary)
        self.summary.style().polish(self.summary)
        if waiting != self._waiting:
            self._waiting = waiting
            self.pending_changed.emit(waiting)
        self._update_buttons()

    def _fill(self, table: QTableWidget,
              rows: list[tuple[int, str, tuple[str, ...]]]) -> None:
        table.blockSignals(True)
        table.setRowCount(len(rows))
        for r, (row_id, who, cells) in enumerate(rows):
            own = bool(self._user) and who == self._user
            for c, value in enumerate(cells):
                text = self.tr("%1 (you)").replace("%1", value) if own and c == 0 else value
                item = QTableWidgetItem(text)
                tip = value
                if own:
                    tip = self.tr("Your own request: another supervisor decides it "
                                  "(four eyes).")
                item.setToolTip(tip)
                if c == 0:
                    item.setData(IdRole, row_id)
                    item.setData(Qt.ItemDataRole.UserRole, own)
                table.setItem(r, c, item)
        table.blockSignals(False)
        table.clearSelection()

    def _selected(self, table: QTableWidget, rows: Sequence[object]) -> object | None:
        picked = table.selectionModel().selectedRows()
        if not picked:
            return None
        item = table.item(picked[0].row(), 0)
        row_id = item.data(IdRole) if item is not None else None
        return next((r for r in rows if getattr(r, "id", None) == row_id), None)

    def _select(self, table: QTableWidget, row_id: int) -> bool:
        for r in range(table.rowCount()):
            item = table.item(r, 0)
            if item is not None and item.data(IdRole) == row_id:
                table.selectRow(r)
                return True
        return False

    def _update_buttons(self) -> None:
        four_eyes = self.tr("Your own request: another supervisor must decide it (four eyes).")
        r = self.selected_reveal()
        own_r = r is not None and r.user == self._user
        self.reveal_hint.setText(four_eyes if own_r else "")
        self.reveal_hint.setVisible(own_r)
        d = self.selected_disclosure()
        own_d = d is not None and d.requested_by == self._user
        self.disclosure_hint.setText(four_eyes if own_d else "")
        self.disclosure_hint.setVisible(own_d)
        reason = (self.tr("Select a request") if r is None
                  else four_eyes if r.user == self._user else "")
        for b in (self.approve_reveal, self.refuse_reveal):
            b.setEnabled(not reason)
            b.setToolTip(reason)
        reason = (self.tr("Select a request") if d is None
                  else four_eyes if d.requested_by == self._user else "")
        self.refuse_disclosure.setEnabled(not reason)
        self.refuse_disclosure.setToolTip(reason)
        if not reason and not reason_ok(self.notice.text(), MIN_NOTICE, MAX_NOTICE):
            reason = self.tr("Say how the guardian was told (at least %1 characters)"
                             ).replace("%1", str(MIN_NOTICE))
        self.approve_disclosure.setEnabled(not reason)
        self.approve_disclosure.setToolTip(reason)

    def _decide_reveal(self, approve: bool) -> None:
        r = self.selected_reveal()
        if r is None or r.user == self._user:
            return
        self.reveal_decided.emit(r.id, approve, self.reveal_note.text().strip())
        self.reveal_note.clear()

    def _decide_disclosure(self, approve: bool) -> None:
        d = self.selected_disclosure()
        if d is None or d.requested_by == self._user:
            return
        notice = self.notice.text().strip()
        if approve and not reason_ok(notice, MIN_NOTICE, MAX_NOTICE):
            return
        self.disclosure_decided.emit(d.id, approve, notice if approve else "")
        if approve:
            self.notice.clear()

    def showEvent(self, event: QShowEvent) -> None:
        super().showEvent(event)
        self.refresh_wanted.emit()


# ------------------------------------------------------------------ fake data


def fake_requests(now: float) -> tuple[list[RevealState], list[DisclosureView]]:
    """Pending requests for running the panel alone: one of them the
    supervisor's own (park.sv), one with a long reason."""
    reveals = [
        RevealState(id=31, child="C-A13F00", user="kim.op", reason="SOS resolved as child safe; "
                    "guardian asks who phoned", alert_id=0, state="pending",
                    requested_at=now - 95),
        RevealState(id=32, child="C-A2B117", user="lee.op", reason="Zone exit at dusk, "
                    "child not answering the watch; school asks for the guardian's "
                    "number to confirm pick-up arrangements today", alert_id=118,
                    state="pending", requested_at=now - 40),
        RevealState(id=33, child="C-A31E2D", user="park.sv", reason="Follow-up of "
                    "yesterday's fall alert", alert_id=0, state="pending",
                    requested_at=now - 12),
    ]
    disclosures = [
        DisclosureView(id=7, alert_id=118, child="C-A2B117", agency="police",
                       reason="Missing after zone exit; patrol needs name and photo",
                       requested_by="lee.op", requested_at=now - 70, state="pending"),
        DisclosureView(id=8, alert_id=121, child="C-A40F3B", agency="fire",
                       reason="Fall alarm, no answer; ambulance crew needs the guardian",
                       requested_by="park.sv", requested_at=now - 20, state="pending"),
    ]
    return reveals, disclosures


def main() -> int:
    """The panel on fake requests as park.sv; decisions remove rows locally."""
    import msgspec
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from console.theme import apply_theme

    app = QApplication(sys.argv)
    apply_theme(app)
    panel = ApprovalsPanel()
    panel.set_user("park.sv")
    reveals, disclosures = fake_requests(time.time())
    panel.show_reveals(reveals, time.time())
    panel.show_disclosures(disclosures, time.time())

    def reveal(rid: int, approve: bool, note: str) -> None:
        nonlocal reveals
        reveals = [msgspec.structs.replace(r, state="granted" if approve else "refused")
                   if r.id == rid else r for r in reveals]
        panel.show_reveals(reveals)
        panel.show_message(f"Reveal {rid} {'approved' if approve else 'refused'} {note}")

    def disclosure(did: int, approve: bool, notice: str) -> None:
        nonlocal disclosures
        disclosures = [msgspec.structs.replace(d, state="approved" if approve else "refused")
                       if d.id == did else d for d in disclosures]
        panel.show_disclosures(disclosures)
        panel.show_message(f"Disclosure {did} {'approved' if approve else 'refused'} {notice}")

    panel.reveal_decided.connect(reveal)
    panel.disclosure_decided.connect(disclosure)
    timer = QTimer(panel)
    timer.timeout.connect(lambda: panel.tick(time.time()))
    timer.start(1000)
    panel.resize(900, 620)
    panel.setWindowTitle(panel.tr("Approvals (fake data)"))
    panel.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
