"""The alert panel beside the queue: one alert, its procedure, its history,
and every action an operator or supervisor takes on it.

It only presents and asks. Each action leaves as ``command_requested`` with
a ready message (``token=""``: the window stamps its session token) naming
the alert version the operator saw, so the engine refuses a stale action
instead of overwriting someone's work; its refusal comes back through
``show_refusal``. The panel offers what the rules would allow (state,
role, ownership: ``why_not``), but the engine is the gate.

When a new alert is shown, or the shown one changes, ``detail_needed``
asks the window for its ``AlertDetail``; ``show_detail`` fills the history
and the step notes and hands the child's trail to the map (``trail_ready``).

The child stays a token and the device shows only its tail
(``models.privacy_view.mask_device``: the id is the device's credential).
"Reveal identity…" and "Disclose to police/fire…" only ask
(``reveal_requested`` / ``disclose_requested``): the privacy controller
asks for the reason and the engine decides; a disclosure's state comes
back through ``show_disclosure``.

The procedure checklist's rows are in ``widgets.procedure_steps`` and the
inline action forms in ``widgets.alert_forms``; their names are still
importable from here, and the forms' fields are attributes of the panel.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Iterable
from datetime import datetime

import msgspec
import numpy as np
from PySide6.QtCore import QT_TRANSLATE_NOOP, QCoreApplication, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QAbstractItemView,
    QComboBox,
    QFormLayout,
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

from models.accounts import may
from models.alerts import ALLOWED_FROM, DISPATCH_TARGETS, MAX_NOTE, OWNED
from models.messages import (
    AckAlert,
    AddNote,
    AlertCommand,
    AlertDetail,
    AlertView,
    AssignAlert,
    DisclosureView,
    DispatchAlert,
    HistoryEntry,
    HoldAlert,
    MarkStep,
    ReopenAlert,
    ResolveAlert,
    ResumeAlert,
    TakeAlert,
    pack,
    unpack,
)
from models.privacy_view import mask_device, may_disclose
from models.procedures import Procedures
from models.qt.alert_table import (
    clock,
    kind_text,
    next_deadline,
    place_text,
    severity,
    state_text,
)
from widgets.alert_forms import FORMS, OUTCOME_TEXT, TARGET_TEXT, AlertForms
from widgets.procedure_steps import StepRow, build_checklist, step_records

__all__ = [
    "ACTIONS",
    "ACTION_TEXT",
    "FORMS",
    "HISTORY_COLUMNS",
    "OUTCOME_TEXT",
    "TARGET_TEXT",
    "WORKING_ROLES",
    "AlertPanel",
    "StepRow",
    "fake_detail",
    "main",
    "step_records",
    "why_not",
]

_CTX = "AlertPanel"

WORKING_ROLES = frozenset({"operator", "supervisor"})

ACTION_TEXT = {
    "open": QT_TRANSLATE_NOOP("AlertPanel", "Opened"),
    "repeat": QT_TRANSLATE_NOOP("AlertPanel", "Triggered again"),
    "escalate": QT_TRANSLATE_NOOP("AlertPanel", "Escalated"),
    "hold_expired": QT_TRANSLATE_NOOP("AlertPanel", "Hold expired"),
    "cleared": QT_TRANSLATE_NOOP("AlertPanel", "Condition cleared"),
    "ack": QT_TRANSLATE_NOOP("AlertPanel", "Acknowledged"),
    "take": QT_TRANSLATE_NOOP("AlertPanel", "Taken"),
    "assign": QT_TRANSLATE_NOOP("AlertPanel", "Assigned"),
    "hold": QT_TRANSLATE_NOOP("AlertPanel", "Put on hold"),
    "resume": QT_TRANSLATE_NOOP("AlertPanel", "Resumed"),
    "dispatch": QT_TRANSLATE_NOOP("AlertPanel", "Dispatched"),
    "resolve": QT_TRANSLATE_NOOP("AlertPanel", "Resolved"),
    "reopen": QT_TRANSLATE_NOOP("AlertPanel", "Reopened"),
    "step": QT_TRANSLATE_NOOP("AlertPanel", "Procedure step"),
    "note": QT_TRANSLATE_NOOP("AlertPanel", "Note"),
    "disclosure": QT_TRANSLATE_NOOP("AlertPanel", "Disclosed"),
}
DISCLOSURE_STATE = {
    "pending": QT_TRANSLATE_NOOP("AlertPanel", "waiting for a supervisor's approval"),
    "approved": QT_TRANSLATE_NOOP("AlertPanel", "approved by %1 at %2; guardian told: %3"),
    "refused": QT_TRANSLATE_NOOP("AlertPanel", "refused by %1 at %2"),
}
HISTORY_COLUMNS = ("Time", "Actor", "Action", "Detail", "Note")
# (key, label, command, shortcut, what it does): the action buttons, in order.
ACTIONS: tuple[tuple[str, str, type[AlertCommand] | None, str, str], ...] = (
    ("ack", QT_TRANSLATE_NOOP("AlertPanel", "Acknowledge"), AckAlert, "F4",
     QT_TRANSLATE_NOOP("AlertPanel", "Acknowledge: you have seen it")),
    ("take", QT_TRANSLATE_NOOP("AlertPanel", "Take"), TakeAlert, "F6",
     QT_TRANSLATE_NOOP("AlertPanel", "Make the alert yours")),
    ("hold", QT_TRANSLATE_NOOP("AlertPanel", "Hold…"), HoldAlert, "F7",
     QT_TRANSLATE_NOOP("AlertPanel", "Put on hold, with a reason, for some minutes")),
    ("resume", QT_TRANSLATE_NOOP("AlertPanel", "Resume"), ResumeAlert, "",
     QT_TRANSLATE_NOOP("AlertPanel", "Back to work from hold")),
    ("dispatch", QT_TRANSLATE_NOOP("AlertPanel", "Dispatch…"), DispatchAlert, "F9",
     QT_TRANSLATE_NOOP("AlertPanel", "Hand over to police 112 or fire 119, with their reference")),
    ("resolve", QT_TRANSLATE_NOOP("AlertPanel", "Resolve…"), ResolveAlert, "F10",
     QT_TRANSLATE_NOOP("AlertPanel", "Close with an outcome and a note")),
    ("reopen", QT_TRANSLATE_NOOP("AlertPanel", "Reopen…"), ReopenAlert, "",
     QT_TRANSLATE_NOOP("AlertPanel", "Supervisors: reopen a resolved alert, saying why")),
    ("assign", QT_TRANSLATE_NOOP("AlertPanel", "Assign…"), AssignAlert, "",
     QT_TRANSLATE_NOOP("AlertPanel", "Supervisors: give the alert to an operator")),
    ("cameras", QT_TRANSLATE_NOOP("AlertPanel", "Cameras"), None, "F11",
     QT_TRANSLATE_NOOP("AlertPanel", "Show the nearest cameras")),
)


def _tr(text: str) -> str:
    return QCoreApplication.translate(_CTX, text)


def _hms(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%H:%M:%S")


def _until(due: float, now: float) -> str:
    left = due - now
    word = _tr("overdue %1") if left < 0 else _tr("in %1")
    return f"{_hms(due)} ({word.replace('%1', clock(left))})"


def why_not(cmd: type[AlertCommand], alert: AlertView, user: str,
            roles: frozenset[str]) -> str:
    """Why the panel does not offer ``cmd`` on ``alert`` to ``user``; "" if it does.
    The same checks as the engine's, minus what only the engine knows."""
    tag = cmd.__struct_config__.tag
    if not may(roles, str(tag)):
        return _tr("Your role does not allow this")
    if alert.state not in ALLOWED_FROM[cmd]:
        return _tr("Not while the alert is %1").replace("%1", state_text(alert.state).lower())
    boss = "supervisor" in roles
    if cmd is TakeAlert and alert.owner == user:
        return _tr("It is already yours")
    if (cmd in OWNED or cmd is TakeAlert) and alert.owner and alert.owner != user and not boss:
        return _tr("It is %1's: ask them or a supervisor").replace("%1", alert.owner)
    return ""


class AlertPanel(QWidget):
    """One alert in full, with its actions. Present-only: it emits, never sends."""

    command_requested = Signal(object)  # an AlertCommand with token ""
    detail_needed = Signal(int)  # alert id
    cameras_requested = Signal(object)  # AlertView
    trail_ready = Signal(object, object)  # lat, lon: np.ndarray, oldest first
    reveal_requested = Signal(object)  # AlertView: its child's identity, with a reason
    disclose_requested = Signal(object)  # AlertView: to police or fire, with a reason

    def __init__(self, parent: QWidget | None = None, *, procedures: Procedures | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(parent)
        self.setObjectName("alertPanel")
        self.procedures = procedures if procedures is not None else Procedures.load()
        self._clock = clock
        self._now = 0.0
        self._alert: AlertView | None = None
        self._detail: AlertDetail | None = None
        self._user = ""
        self._roles: frozenset[str] = frozenset()
        self._assignable: list[str] = []
        self._steps_kind = ""
        self.step_rows: dict[str, StepRow] = {}
        # The newest disclosure per (alert, agency), as the engine last said.
        self._disclosures: dict[tuple[int, str], DisclosureView] = {}

        self.header = QLabel(self.tr("No alert selected"))
        self.header.setObjectName("alertHeader")
        self.meta = QLabel(self.tr("Select an alert in the queue (N for the next new one)."))
        self.meta.setObjectName("alertMeta")
        self.meta.setWordWrap(True)
        self.meta.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)

        self.facts = QFormLayout()
        self.facts.setHorizontalSpacing(10)
        self.facts.setVerticalSpacing(3)
        self.fact: dict[str, QLabel] = {}
        names = {"place": self.tr("Place"), "position": self.tr("Position"),
                 "battery": self.tr("Battery"), "sla": self.tr("SLA"), "hold": self.tr("Hold"),
                 "dispatch": self.tr("Dispatch"), "disclosure": self.tr("Disclosure"),
                 "outcome": self.tr("Outcome"), "note": self.tr("Last note")}
        for key, name in names.items():
            value = QLabel()
            value.setObjectName("alertFact")
            value.setWordWrap(True)
            value.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
            caption = QLabel(name)
            caption.setObjectName("alertFactName")
            self.facts.addRow(caption, value)
            self.fact[key] = value

        self.refusal = QLabel()
        self.refusal.setObjectName("alertRefusal")
        self.refusal.setWordWrap(True)
        self.refusal.hide()

        self.buttons: dict[str, QPushButton] = {}
        actions = QGridLayout()
        actions.setSpacing(4)
        handlers: dict[str, Callable[[], None]] = {
            "ack": lambda: self._send(AckAlert), "take": lambda: self._send(TakeAlert),
            "resume": lambda: self._send(ResumeAlert), "cameras": self._cameras,
        }
        for i, (key, label, _cmd, shortcut, _tip) in enumerate(ACTIONS):
            button = QPushButton(self.tr(label))
            button.setObjectName(f"{key}Button")
            button.setProperty("action", key)
            button.clicked.connect(handlers.get(key, lambda _=False, k=key: self.open_form(k)))
            if shortcut:
                QShortcut(QKeySequence(shortcut), self, button.click,
                          context=Qt.ShortcutContext.WindowShortcut)
            self.buttons[key] = button
            actions.addWidget(button, i // 5, i % 5)

        self.reveal_button = QPushButton(self.tr("Reveal identity…"))
        self.reveal_button.setObjectName("revealButton")
        self.reveal_button.clicked.connect(self._reveal)
        self.disclose_button = QPushButton(self.tr("Disclose to police/fire…"))
        self.disclose_button.setObjectName("discloseButton")
        self.disclose_button.clicked.connect(self._disclose)
        privacy_row = QHBoxLayout()
        privacy_row.setSpacing(4)
        privacy_row.addWidget(self.reveal_button)
        privacy_row.addWidget(self.disclose_button)
        privacy_row.addStretch(1)

        self.forms = AlertForms(clock=clock)
        self.forms.submitted.connect(lambda cmd, fields: self._send(cmd, **fields))
        # The forms' pages and fields, by the names the panel has always had.
        forms = self.forms
        self.form_pages = forms.form_pages
        self.hold_reason, self.hold_minutes, self.hold_ok = (
            forms.hold_reason, forms.hold_minutes, forms.hold_ok)
        self.dispatch_target, self.dispatch_ref, self.dispatch_ok = (
            forms.dispatch_target, forms.dispatch_ref, forms.dispatch_ok)
        self.outcome, self.resolve_note, self.resolve_ok = (
            forms.outcome, forms.resolve_note, forms.resolve_ok)
        self.reopen_note, self.reopen_ok = forms.reopen_note, forms.reopen_ok
        self.assignee, self.assign_ok = forms.assignee, forms.assign_ok
        self.skip_label, self.skip_reason, self.skip_ok = (
            forms.skip_label, forms.skip_reason, forms.skip_ok)

        self.note = QLineEdit()
        self.note.setObjectName("noteEdit")
        self.note.setMaxLength(MAX_NOTE)
        self.note.setPlaceholderText(self.tr("Note: goes with your next action, or Add note"))
        self.note.textChanged.connect(self._update_buttons)
        self.note.returnPressed.connect(lambda: self.note_button.click())
        self.note_button = QPushButton(self.tr("Add note"))
        self.note_button.setObjectName("noteButton")
        self.note_button.clicked.connect(lambda: self._send(AddNote))
        note_row = QHBoxLayout()
        note_row.addWidget(self.note, 1)
        note_row.addWidget(self.note_button)

        self.steps_title = QLabel(self.tr("Procedure"))
        self.steps_title.setObjectName("sectionTitle")
        self.steps_area = QVBoxLayout()
        self.steps_area.setContentsMargins(0, 0, 0, 0)
        self.steps_box = QWidget()

        history_title = QLabel(self.tr("History"))
        history_title.setObjectName("sectionTitle")
        self.history = QTableWidget(0, len(HISTORY_COLUMNS))
        self.history.setObjectName("alertHistory")
        self.history.setHorizontalHeaderLabels([self.tr(c) for c in HISTORY_COLUMNS])
        self.history.setEditTriggers(QAbstractItemView.EditTrigger.NoEditTriggers)
        self.history.setSelectionMode(QAbstractItemView.SelectionMode.NoSelection)
        self.history.verticalHeader().hide()
        self.history.setShowGrid(False)
        self.history.setWordWrap(True)
        self.history.verticalHeader().setSectionResizeMode(
            QHeaderView.ResizeMode.ResizeToContents)
        head = self.history.horizontalHeader()
        head.setSectionResizeMode(QHeaderView.ResizeMode.ResizeToContents)
        head.setSectionResizeMode(3, QHeaderView.ResizeMode.Stretch)
        head.setSectionResizeMode(4, QHeaderView.ResizeMode.Stretch)

        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 0, 8, 4)
        layout.setSpacing(6)
        layout.addWidget(self.header)
        layout.addWidget(self.meta)
        layout.addLayout(self.facts)
        layout.addWidget(self.refusal)
        layout.addLayout(actions)
        layout.addLayout(privacy_row)
        layout.addWidget(self.forms)
        layout.addLayout(note_row)
        layout.addWidget(self.steps_title)
        layout.addLayout(self.steps_area)
        layout.addWidget(history_title)
        layout.addWidget(self.history, 1)
        self._render()

    # ------------------------------------------------------------ forms

    def open_form(self, key: str) -> None:
        """Show the inline form of an action that needs more than a click."""
        a = self._alert
        if a is None or (key in self.buttons and not self.buttons[key].isEnabled()):
            return
        if key == "skip" and why_not(MarkStep, a, self._user, self._roles):
            return
        self.forms.open_form(key, self.note.text().strip(),
                             [n for n in self._assignable if n != a.owner])

    def close_form(self) -> None:
        self.forms.close_form()

    def current_form(self) -> str:
        """The open form's key, or ""."""
        return self.forms.current_form()

    # ------------------------------------------------------------ inputs

    def set_user(self, name: str, roles: Iterable[str]) -> None:
        self._user = name
        self._roles = frozenset(roles)
        self._render()

    def set_assignable(self, names: list[str]) -> None:
        """Who a supervisor may assign alerts to (operators and supervisors on shift)."""
        self._assignable = list(names)
        self._update_buttons()

    def show_alert(self, alert: AlertView | None) -> None:
        """Show ``alert`` (None: nothing). A new alert, or a new version of the
        shown one, asks for its detail and clears a refusal."""
        old = self._alert
        if alert is None:
            self._alert = self._detail = None
            self.history.setRowCount(0)
            self.close_form()
            self.note.clear()
            self.refusal.hide()
            self._render()
            return
        other = old is None or old.id != alert.id
        if not other and old is not None and alert.version < old.version:
            return  # a late copy never replaces a newer one
        if not other and alert == old:
            return
        self._alert = alert
        if other:
            self._detail = None
            self.history.setRowCount(0)
            self.close_form()
            self.note.clear()
            self.forms.clear_fields()
        elif self.note.text().strip() and self.note.text().strip() == alert.last_note:
            self.note.clear()  # the note went out with the action that made this version
        self.refusal.hide()
        self._render()
        if other or old is None or alert.version != old.version:
            self.detail_needed.emit(alert.id)

    def show_detail(self, detail: AlertDetail) -> None:
        """The history and trail of the shown alert (others are ignored)."""
        if self._alert is None or detail.alert.id != self._alert.id:
            return
        self._detail = detail
        if detail.alert.version > self._alert.version:
            self._alert = detail.alert
        self._render()
        self._fill_history(detail.history)
        self.trail_ready.emit(np.array(unpack("lat", detail.trail_lat)),
                              np.array(unpack("lon", detail.trail_lon)))

    def show_disclosure(self, d: DisclosureView) -> None:
        """A disclosure's state as the engine said it (the newest per agency
        is kept, for whichever alert it is about)."""
        key = (d.alert_id, d.agency)
        old = self._disclosures.get(key)
        if old is None or d.id >= old.id:
            self._disclosures[key] = d
        if self._alert is not None and self._alert.id == d.alert_id:
            self._render_facts(self._alert)

    def clear_disclosures(self) -> None:
        """Forget every disclosure state (the session ended)."""
        self._disclosures.clear()
        if self._alert is not None:
            self._render_facts(self._alert)

    def show_refusal(self, text: str) -> None:
        """The engine's refusal, shown until the alert next changes."""
        self.refusal.setText(text)
        self.refusal.show()

    def tick(self, now: float) -> None:
        """Recount the SLA and hold countdowns."""
        self._now = now
        if self._alert is not None:
            self._render_facts(self._alert)

    # ------------------------------------------------------------ reading

    @property
    def alert(self) -> AlertView | None:
        return self._alert

    def refusal_text(self) -> str:
        return self.refusal.text() if not self.refusal.isHidden() else ""

    # ------------------------------------------------------------ rendering

    def _now_or_clock(self) -> float:
        return self._now or self._clock()

    def _render(self) -> None:
        a = self._alert
        if a is None:
            self.header.setText(self.tr("No alert selected"))
            self.meta.setText(self.tr("Select an alert in the queue (N for the next new one)."))
            for label in self.fact.values():
                self.facts.setRowVisible(label, False)
            sev = "none"
        else:
            count = f"  ×{a.count}" if a.count > 1 else ""
            self.header.setText(f"{kind_text(a.kind)} · P{a.priority} · "
                                f"{state_text(a.state)}{count}")
            device = mask_device(a.device_id)
            if a.device_kind:
                device += f" ({a.device_kind})"
            owner = a.owner or self.tr("nobody")
            self.meta.setText(self.tr("Alert %1 · child %2 · device %3 · owner %4")
                              .replace("%1", str(a.id)).replace("%2", a.child_token)
                              .replace("%3", device).replace("%4", owner))
            self._render_facts(a)
            sev = severity(a)
        self.header.setProperty("severity", sev)
        self.header.style().unpolish(self.header)
        self.header.style().polish(self.header)
        self._render_steps()
        self._update_buttons()

    def _render_facts(self, a: AlertView) -> None:
        now = self._now_or_clock()
        f = self.fact
        zone = f" · {a.zone}" if a.zone else ""
        f["place"].setText(place_text(a) + zone)
        pos = f"{a.lat:.5f}, {a.lon:.5f}"
        if a.position_is_last_known:
            pos += "  ⚠ " + self.tr("last known position, not a live fix")
        if a.last_reader:
            pos += "\n" + self.tr("last seen by reader %1 at %2").replace(
                "%1", a.last_reader).replace("%2", _hms(a.last_reader_at))
        f["position"].setText(pos)
        f["position"].setProperty("lastKnown", "true" if a.position_is_last_known else "false")
        battery = ""
        if a.battery >= 0:
            battery = f"{a.battery} %"
            if a.battery_trend:
                battery += " · " + self.tr("%1 %/h").replace("%1", f"{a.battery_trend:+.1f}")
                if a.battery_trend < 0:
                    left = a.battery / -a.battery_trend * 3600
                    battery += " · " + self.tr("empty in ≈%1").replace("%1", clock(left))
        f["battery"].setText(battery)
        f["battery"].setProperty("low", "true" if 0 <= a.battery < 20 else "false")
        sla: list[str] = []
        if a.state == "new" and a.ack_due:
            sla.append(self.tr("acknowledge by %1").replace("%1", _until(a.ack_due, now)))
        if a.state not in ("dispatched", "resolved") and a.close_due:
            sla.append(self.tr("resolve or dispatch by %1").replace("%1",
                                                                    _until(a.close_due, now)))
        if a.breaches:
            sla.append(self.tr("escalated: an SLA was missed"))
        f["sla"].setText("\n".join(sla))
        due = next_deadline(a)
        late = bool(a.breaches) or (due is not None and due < now)
        f["sla"].setProperty("overdue", "true" if late else "false")
        hold = ""
        if a.state == "on_hold":
            hold = a.hold_reason
            if a.hold_until:
                hold += " · " + self.tr("until %1").replace("%1", _until(a.hold_until, now))
        f["hold"].setText(hold)
        dispatch = ""
        if a.dispatched_to:
            number = DISPATCH_TARGETS.get(a.dispatched_to, "")
            name = _tr(TARGET_TEXT.get(a.dispatched_to, a.dispatched_to))
            dispatch = f"{name} {number} · " + self.tr("ref %1").replace("%1", a.dispatch_ref)
        f["dispatch"].setText(dispatch)
        f["disclosure"].setText(self._disclosure_text(a.id))
        outcome = _tr(OUTCOME_TEXT[a.outcome]) if a.outcome in OUTCOME_TEXT else a.outcome
        if outcome and a.resolved_at:
            outcome += " · " + _hms(a.resolved_at)
        f["outcome"].setText(outcome)
        note = f"{a.last_note} ({a.last_actor})" if a.last_note and a.last_actor else a.last_note
        f["note"].setText(note)
        for label in f.values():
            self.facts.setRowVisible(label, bool(label.text()))
            label.style().unpolish(label)
            label.style().polish(label)

    def _disclosure_text(self, alert_id: int) -> str:
        lines = []
        for (aid, agency), d in sorted(self._disclosures.items()):
            if aid != alert_id:
                continue
            number = DISPATCH_TARGETS.get(agency, "")
            name = _tr(TARGET_TEXT.get(agency, agency))
            state = _tr(DISCLOSURE_STATE.get(d.state, d.state))
            state = (state.replace("%1", d.decided_by).replace("%2", _hms(d.decided_at))
                     .replace("%3", d.guardian_notice))
            asked = self.tr("asked by %1 at %2").replace("%1", d.requested_by).replace(
                "%2", _hms(d.requested_at))
            lines.append(f"{name} {number}: {state} ({asked})")
        return "\n".join(lines)

    def _render_steps(self) -> None:
        a = self._alert
        kind = a.kind if a is not None else ""
        if kind != self._steps_kind:
            self.steps_box.deleteLater()
            self.steps_box, self.step_rows = build_checklist(
                self.steps_area, self.procedures.steps(kind), self.mark_step, self.ask_skip)
            self._steps_kind = kind
        self.steps_title.setVisible(bool(self.step_rows))
        self.steps_box.setVisible(bool(self.step_rows))
        if a is None:
            return
        records = step_records(self._detail.history) if self._detail else {}
        allowed = why_not(MarkStep, a, self._user, self._roles)
        for sid, row in self.step_rows.items():
            row.show_state(sid in a.steps, records.get(sid), allowed)

    def _fill_history(self, history: list[HistoryEntry]) -> None:
        # Newest first; lines with the same time keep the order they were written.
        order = sorted(range(len(history)), key=lambda i: (history[i].at, i), reverse=True)
        rows = [history[i] for i in order]
        self.history.setRowCount(len(rows))
        kind = self._alert.kind if self._alert else ""
        for r, h in enumerate(rows):
            detail, action = h.detail, _tr(ACTION_TEXT.get(h.action, h.action))
            if h.action == "step" and " " in detail:
                sid, how = detail.rsplit(" ", 1)
                step = self.procedures.step(kind, sid)
                detail = step.text if step else sid
                action = self.tr("Step skipped") if how == "skipped" else self.tr("Step done")
            elif h.action == "resolve" and h.detail in OUTCOME_TEXT:
                detail = _tr(OUTCOME_TEXT[h.detail])
            elif h.action == "open":
                detail = kind_text(h.detail)
            values = (_hms(h.at), h.actor, action, detail, h.note)
            for c, value in enumerate(values):
                item = QTableWidgetItem(value)
                if c >= 3 and value:
                    item.setToolTip(value)
                self.history.setItem(r, c, item)

    def _update_buttons(self) -> None:
        a = self._alert
        for key, _label, cmd, shortcut, tip in ACTIONS:
            button = self.buttons[key]
            reason = self.tr("No alert selected") if a is None else ""
            if a is not None and cmd is not None:
                reason = why_not(cmd, a, self._user, self._roles)
            elif a is not None and not self._roles & WORKING_ROLES:
                reason = self.tr("Your role does not allow this")
            if not reason and a is not None and cmd is AssignAlert and not [
                    n for n in self._assignable if n != a.owner]:
                reason = self.tr("Nobody to assign to")
            if not reason and a is not None and cmd is ResolveAlert:
                missing = self.procedures.missing_mandatory(a.kind, a.steps)
                if missing:
                    texts = [s.text for s in self.procedures.steps(a.kind) if s.id in missing]
                    reason = self.tr("Tick or skip these steps first:") + "\n• " + "\n• ".join(
                        texts)
            button.setEnabled(not reason)
            keys = f" — {shortcut}" if shortcut else ""
            button.setToolTip(_tr(tip) + keys + (f"\n{reason}" if reason else ""))
            if reason and self.current_form() == key:
                self.close_form()
        if self.current_form() == "skip" and (a is None or why_not(MarkStep, a, self._user,
                                                                    self._roles)):
            self.close_form()
        self._update_privacy_buttons()
        can_note = a is not None and not why_not(AddNote, a, self._user, self._roles)
        self.note.setEnabled(a is not None and bool(self._roles & WORKING_ROLES))
        self.note_button.setEnabled(can_note and bool(self.note.text().strip()))

    # ------------------------------------------------------------ commands

    def _send(self, cmd: type[AlertCommand], **fields: object) -> None:
        a = self._alert
        if a is None:
            return
        fields.setdefault("note", self.note.text().strip())
        message = cmd(token="", alert_id=a.id, alert_version=a.version, **fields)
        self.close_form()
        self.command_requested.emit(message)

    def mark_step(self, step_id: str) -> None:
        """Tick a procedure step (the note, if any, goes with it)."""
        self._send(MarkStep, step=step_id)

    def ask_skip(self, step_id: str) -> None:
        """Open the skip form for a step: skipping needs a reason."""
        step = self.procedures.step(self._alert.kind if self._alert else "", step_id)
        if step is None:
            return
        self.forms.prepare_skip(step_id, step.text)
        self.open_form("skip")

    def _update_privacy_buttons(self) -> None:
        a = self._alert
        reveal = disclose = self.tr("No alert selected") if a is None else ""
        if a is not None:
            if not may(self._roles, "cmd.reveal"):
                reveal = self.tr("Your role does not allow this")
            if not may(self._roles, "cmd.disclose"):
                disclose = self.tr("Your role does not allow this")
            elif not may_disclose(a):
                disclose = (self.tr("Not for a resolved alert") if a.state == "resolved"
                            else self.tr("Only for emergency alerts"))
        self.reveal_button.setEnabled(not reveal)
        self.reveal_button.setToolTip(
            self.tr("Show the child's name and guardians, with a reason: at once for an "
                    "open alert you own, else after a supervisor's approval")
            + (f"\n{reveal}" if reveal else ""))
        self.disclose_button.setEnabled(not disclose)
        self.disclose_button.setToolTip(
            self.tr("Give the child's data to police or fire for this emergency, after a "
                    "supervisor's approval and with the guardian told")
            + (f"\n{disclose}" if disclose else ""))

    def _reveal(self) -> None:
        if self._alert is not None and self.reveal_button.isEnabled():
            self.reveal_requested.emit(self._alert)

    def _disclose(self) -> None:
        if self._alert is not None and self.disclose_button.isEnabled():
            self.disclose_requested.emit(self._alert)

    def _cameras(self) -> None:
        if self._alert is not None:
            self.cameras_requested.emit(self._alert)


# ------------------------------------------------------------------ fake data


def fake_detail(alert: AlertView, now: float | None = None) -> AlertDetail:
    """A plausible history and 15-minute trail for ``alert`` (standalone runs)."""
    now = time.time() if now is None else now
    t0 = alert.opened_at
    h = [HistoryEntry(action="open", actor="engine", at=t0, detail=alert.kind,
                      lat=alert.lat, lon=alert.lon)]
    h += [HistoryEntry(action="repeat", actor="device", at=t0 + 5 * i, detail=f"trigger {i + 1}")
          for i in range(1, alert.count)]
    if alert.breaches & 1:
        h.append(HistoryEntry(action="escalate", actor="engine", at=alert.ack_due + 1,
                              detail="not acknowledged in time"))
    if alert.acked_by:
        h.append(HistoryEntry(action="ack", actor=alert.acked_by, at=alert.acked_at))
    if alert.owner:
        h.append(HistoryEntry(action="take", actor=alert.owner, at=alert.acked_at + 5))
    for i, sid in enumerate(alert.steps):
        skipped = sid == "cctv" and alert.kind == "fall"
        h.append(HistoryEntry(action="step", actor=alert.owner or "kim.op",
                              at=alert.acked_at + 30 + 20 * i,
                              detail=f"{sid} {'skipped' if skipped else 'done'}",
                              note="no camera covers the spot" if skipped else ""))
    if alert.state == "on_hold":
        h.append(HistoryEntry(action="hold", actor=alert.owner, at=now - 120,
                              detail=alert.hold_reason))
    if alert.dispatched_to:
        h.append(HistoryEntry(action="dispatch", actor=alert.owner, at=now - 200,
                              detail=f"{alert.dispatched_to} ref {alert.dispatch_ref}",
                              note="ambulance on the way"))
    if alert.state == "resolved":
        h.append(HistoryEntry(action="resolve", actor=alert.owner, at=alert.resolved_at,
                              detail=alert.outcome, note="guardian confirmed child is home"))
    t = np.linspace(now - 900, now, 60)
    lat = alert.lat - 0.002 * (now - t) / 900
    lon = alert.lon + 0.0015 * np.sin((now - t) / 300)
    return AlertDetail(alert=alert, history=h, trail_t=pack("t", t), trail_lat=pack("lat", lat),
                       trail_lon=pack("lon", lon))


def main() -> int:
    """The panel on generated alerts: pick one and a role; actions run
    through the real rules (``models.alerts.transition``) locally."""
    from PySide6.QtWidgets import QApplication

    from console.theme import apply_theme
    from models.alerts import Actor, Policy, Refused, transition
    from widgets.alert_queue import fake_alerts

    app = QApplication(sys.argv)
    apply_theme(app)
    alerts = {a.id: a for a in fake_alerts()}
    details = {i: fake_detail(a) for i, a in alerts.items()}
    policy = Policy()
    window = QWidget()
    window.setObjectName("alertPanelDemo")
    picker, who = QComboBox(), QComboBox()
    who.addItems(["kim.op:operator", "park.sv:supervisor", "choi.au:auditor"])
    panel = AlertPanel()
    staff = ["kim.op", "lee.op", "park.sv"]
    panel.set_assignable(staff)

    def refill() -> None:
        picker.blockSignals(True)
        current = picker.currentData()
        picker.clear()
        for a in alerts.values():
            picker.addItem(f"{a.id} · {kind_text(a.kind)} P{a.priority} · "
                           f"{state_text(a.state)}", a.id)
        picker.setCurrentIndex(max(0, picker.findData(current)))
        picker.blockSignals(False)

    def pick() -> None:
        panel.show_alert(alerts[picker.currentData()])

    def role() -> None:
        name, r = who.currentText().split(":")
        panel.set_user(name, [r])

    def command(cmd: AlertCommand) -> None:
        name, r = who.currentText().split(":")
        old = alerts[cmd.alert_id]
        try:
            new, line = transition(old, cmd, Actor(name, frozenset({r})),  # type: ignore[arg-type]
                                   time.time(), policy, frozenset(staff))
        except Refused as exc:
            panel.show_refusal(str(exc))
            return
        alerts[new.id] = new
        entry = HistoryEntry(**{k: getattr(line, k) for k in HistoryEntry.__struct_fields__})
        d = details[new.id]
        details[new.id] = msgspec.structs.replace(d, alert=new, history=[*d.history, entry])
        refill()
        panel.show_alert(new)

    panel.command_requested.connect(command)
    panel.detail_needed.connect(lambda i: panel.show_detail(details[i]))
    panel.cameras_requested.connect(lambda a: print("cameras for alert", a.id))
    picker.currentIndexChanged.connect(pick)
    who.currentIndexChanged.connect(role)
    top = QHBoxLayout()
    top.addWidget(picker, 1)
    top.addWidget(who)
    layout = QVBoxLayout(window)
    layout.addLayout(top)
    layout.addWidget(panel, 1)
    refill()
    role()
    pick()
    window.resize(720, 820)
    window.setWindowTitle(panel.tr("Alert panel (fake data)"))
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
