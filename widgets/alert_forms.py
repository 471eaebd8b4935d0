"""The alert panel's inline forms: the actions that need more than a click
(hold, dispatch, resolve, reopen, assign, skip a step) ask for their fields
here, one page at a time under the action buttons.

It lives apart from ``widgets.alert_panel`` so the panel module holds the
alert and its actions, not every field of every form. The forms only ask:
a page's confirm button is enabled once its required fields are filled, and
a confirmed page leaves as ``submitted`` (the command type and its fields).
The panel decides when a form may open and turns ``submitted`` into the
command it sends, so the alert version and the shared note stay its own.
"""

from __future__ import annotations

import time
from collections.abc import Callable

from PySide6.QtCore import QT_TRANSLATE_NOOP, QCoreApplication, Qt, Signal
from PySide6.QtGui import QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QComboBox,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QSpinBox,
    QStackedWidget,
    QWidget,
)

from models.alerts import DISPATCH_TARGETS, MAX_NOTE, MAX_REFERENCE, OUTCOMES
from models.messages import (
    AlertCommand,
    AssignAlert,
    DispatchAlert,
    HoldAlert,
    MarkStep,
    ReopenAlert,
    ResolveAlert,
)

_CTX = "AlertPanel"  # the panel's words, in the panel's translation context

OUTCOME_TEXT = {
    "child_safe": QT_TRANSLATE_NOOP("AlertPanel", "Child safe"),
    "false_alarm": QT_TRANSLATE_NOOP("AlertPanel", "False alarm"),
    "handed_to_police": QT_TRANSLATE_NOOP("AlertPanel", "Handed to police"),
    "handed_to_fire": QT_TRANSLATE_NOOP("AlertPanel", "Handed to fire"),
    "device_fault": QT_TRANSLATE_NOOP("AlertPanel", "Device fault"),
    "other": QT_TRANSLATE_NOOP("AlertPanel", "Other"),
    "cleared": QT_TRANSLATE_NOOP("AlertPanel", "Cleared by itself"),
}
TARGET_TEXT = {"police": QT_TRANSLATE_NOOP("AlertPanel", "Police"),
               "fire": QT_TRANSLATE_NOOP("AlertPanel", "Fire")}
FORMS = ("hold", "dispatch", "resolve", "reopen", "assign", "skip")


def _tr(text: str) -> str:
    return QCoreApplication.translate(_CTX, text)


class AlertForms(QStackedWidget):
    """The form pages, one per key in ``FORMS``; hidden while none is open."""

    submitted = Signal(object, object)  # type[AlertCommand], dict of its fields (no note: ask)

    def __init__(self, parent: QWidget | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(parent)
        self.setObjectName("alertForms")
        self._clock = clock
        self._skip_step = ""
        self.form_pages: dict[str, QWidget] = {}

        self.hold_reason = self._field(self.tr("Reason (required)"), 200)
        self.hold_minutes = QSpinBox()
        self.hold_minutes.setRange(1, 24 * 60)
        self.hold_minutes.setValue(15)
        self.hold_minutes.setSuffix(self.tr(" min"))
        self.hold_ok = self._page("hold", [self.hold_reason, self.hold_minutes],
                                  self.tr("Hold"), self._hold)
        self.dispatch_target = QComboBox()
        for target, number in DISPATCH_TARGETS.items():
            self.dispatch_target.addItem(f"{_tr(TARGET_TEXT[target])} {number}", target)
        self.dispatch_ref = self._field(self.tr("Their reference (required)"), MAX_REFERENCE)
        self.dispatch_ok = self._page("dispatch", [self.dispatch_target, self.dispatch_ref],
                                      self.tr("Dispatch"), self._dispatch)
        self.outcome = QComboBox()
        for code in OUTCOMES:
            self.outcome.addItem(_tr(OUTCOME_TEXT[code]), code)
        self.resolve_note = self._field(self.tr("What happened (required)"), MAX_NOTE)
        self.resolve_ok = self._page("resolve", [self.outcome, self.resolve_note],
                                     self.tr("Resolve"), self._resolve)
        self.reopen_note = self._field(self.tr("Why reopen (required)"), MAX_NOTE)
        self.reopen_ok = self._page("reopen", [self.reopen_note], self.tr("Reopen"),
                                    self._reopen)
        self.assignee = QComboBox()
        self.assignee.setMinimumContentsLength(12)
        self.assign_ok = self._page("assign", [QLabel(self.tr("Give to")), self.assignee],
                                    self.tr("Assign"), self._assign)
        self.skip_label = QLabel()
        self.skip_label.setObjectName("skipStep")
        self.skip_reason = self._field(self.tr("Why skip it (required)"), MAX_NOTE)
        self.skip_ok = self._page("skip", [self.skip_label, self.skip_reason],
                                  self.tr("Skip step"), self._skip)
        self.hide()

    def _field(self, placeholder: str, limit: int) -> QLineEdit:
        edit = QLineEdit()
        edit.setPlaceholderText(placeholder)
        edit.setMaxLength(limit)
        edit.textChanged.connect(self._update)
        return edit

    def _page(self, key: str, fields: list[QWidget], confirm: str,
              action: Callable[[], None]) -> QPushButton:
        page = QWidget()
        row = QHBoxLayout(page)
        row.setContentsMargins(0, 0, 0, 0)
        for w in fields:
            row.addWidget(w, 1 if isinstance(w, QLineEdit) else 0)
        ok = QPushButton(confirm)
        ok.setObjectName("confirmButton")
        ok.clicked.connect(action)
        cancel = QPushButton(self.tr("Cancel"))
        cancel.clicked.connect(self.close_form)
        row.addWidget(ok)
        row.addWidget(cancel)
        for w in fields:
            if isinstance(w, QLineEdit):
                w.returnPressed.connect(ok.click)
        QShortcut(QKeySequence(Qt.Key.Key_Escape), page, self.close_form,
                  context=Qt.ShortcutContext.WidgetWithChildrenShortcut)
        self.addWidget(page)
        self.form_pages[key] = page
        return ok

    # ------------------------------------------------------------ opening and closing

    def open_form(self, key: str, note: str, assignees: list[str]) -> None:
        """Show page ``key``: ``note`` (the panel's) starts an empty resolve or
        reopen note; ``assignees`` fill the assign page."""
        if key == "assign":
            self.assignee.clear()
            self.assignee.addItems(assignees)
        for edit in (self.resolve_note, self.reopen_note):
            if key in ("resolve", "reopen") and not edit.text():
                edit.setText(note)
        self.setCurrentWidget(self.form_pages[key])
        self.show()
        first = {"hold": self.hold_reason, "dispatch": self.dispatch_ref,
                 "resolve": self.outcome, "reopen": self.reopen_note,
                 "assign": self.assignee, "skip": self.skip_reason}[key]
        first.setFocus()
        self._update()

    def prepare_skip(self, step_id: str, text: str) -> None:
        """Ready the skip page for one step (``text`` is shown): skipping needs a reason."""
        self._skip_step = step_id
        self.skip_label.setText(self.tr("Skip “%1”:").replace("%1", text[:40]))
        self.skip_reason.clear()

    def close_form(self) -> None:
        self.hide()

    def current_form(self) -> str:
        """The open form's key, or ""."""
        if self.isHidden():
            return ""
        return next((k for k, p in self.form_pages.items() if p is self.currentWidget()), "")

    def clear_fields(self) -> None:
        """Empty the typed fields (another alert is shown)."""
        for edit in (self.hold_reason, self.dispatch_ref, self.resolve_note, self.reopen_note,
                     self.skip_reason):
            edit.clear()

    def _update(self) -> None:
        self.hold_ok.setEnabled(bool(self.hold_reason.text().strip()))
        self.dispatch_ok.setEnabled(bool(self.dispatch_ref.text().strip()))
        self.resolve_ok.setEnabled(bool(self.resolve_note.text().strip()))
        self.reopen_ok.setEnabled(bool(self.reopen_note.text().strip()))
        self.assign_ok.setEnabled(self.assignee.count() > 0)
        self.skip_ok.setEnabled(bool(self.skip_reason.text().strip()))

    # ------------------------------------------------------------ confirming

    def _submit(self, cmd: type[AlertCommand], **fields: object) -> None:
        self.submitted.emit(cmd, fields)

    def _hold(self) -> None:
        until = self._clock() + self.hold_minutes.value() * 60.0
        self._submit(HoldAlert, reason=self.hold_reason.text().strip(), until=until)

    def _dispatch(self) -> None:
        self._submit(DispatchAlert, target=self.dispatch_target.currentData(),
                     reference=self.dispatch_ref.text().strip())

    def _resolve(self) -> None:
        self._submit(ResolveAlert, outcome=self.outcome.currentData(),
                     note=self.resolve_note.text().strip())

    def _reopen(self) -> None:
        self._submit(ReopenAlert, note=self.reopen_note.text().strip())

    def _assign(self) -> None:
        if self.assignee.currentText():
            self._submit(AssignAlert, user=self.assignee.currentText())

    def _skip(self) -> None:
        self._submit(MarkStep, step=self._skip_step, skipped=True,
                     note=self.skip_reason.text().strip())
