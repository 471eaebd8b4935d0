"""The procedure checklist on the alert panel: one row per step of the alert
kind's procedure, drawn as pending, done or skipped (by whom, when, why),
with Done and Skip… while it is pending.

It lives apart from ``widgets.alert_panel`` so the panel module holds the
alert and its actions; the rows only draw and offer. The panel decides
whether their buttons are allowed and turns a click into ``MarkStep``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from datetime import datetime

from PySide6.QtCore import QCoreApplication, Qt
from PySide6.QtWidgets import QGridLayout, QLabel, QPushButton, QVBoxLayout, QWidget

from models.messages import HistoryEntry
from models.procedures import Step

_CTX = "AlertPanel"  # the panel's words, in the panel's translation context


def _tr(text: str) -> str:
    return QCoreApplication.translate(_CTX, text)


def _hms(t: float) -> str:
    return datetime.fromtimestamp(t).strftime("%H:%M:%S")


def step_records(history: Iterable[HistoryEntry]) -> dict[str, HistoryEntry]:
    """The history line that ticked or skipped each step, by step id."""
    out: dict[str, HistoryEntry] = {}
    for h in history:
        if h.action == "step" and " " in h.detail:
            step, _ = h.detail.rsplit(" ", 1)
            out[step] = h
    return out


class StepRow:
    """One procedure step's widgets (kept for the panel and its tests)."""

    def __init__(self, step: Step, grid: QGridLayout, row: int, parent: QWidget) -> None:
        self.step = step
        self.mark = QLabel(parent)
        self.mark.setObjectName("stepMark")
        self.text = QLabel(step.text, parent)
        self.text.setObjectName("stepText")
        self.text.setWordWrap(True)
        self.mandatory = QLabel(_tr("required") if step.mandatory else "", parent)
        self.mandatory.setObjectName("stepMandatory")
        self.status = QLabel(parent)
        self.status.setObjectName("stepStatus")
        self.status.setWordWrap(True)
        self.done = QPushButton(_tr("Done"), parent)
        self.done.setObjectName("stepDone")
        self.skip = QPushButton(_tr("Skip…"), parent)
        self.skip.setObjectName("stepSkip")
        text = QVBoxLayout()
        text.setSpacing(0)
        text.addWidget(self.text)
        text.addWidget(self.status)
        grid.addWidget(self.mark, row, 0, Qt.AlignmentFlag.AlignTop)
        grid.addLayout(text, row, 1)
        grid.addWidget(self.mandatory, row, 2, Qt.AlignmentFlag.AlignTop)
        grid.addWidget(self.done, row, 3, Qt.AlignmentFlag.AlignTop)
        grid.addWidget(self.skip, row, 4, Qt.AlignmentFlag.AlignTop)

    def widgets(self) -> list[QWidget]:
        return [self.mark, self.text, self.mandatory, self.status, self.done, self.skip]

    def show_state(self, ticked: bool, record: HistoryEntry | None, allowed: str) -> str:
        """Draw the step's state; returns it (pending | done | skipped)."""
        state = "pending"
        if ticked:
            state = "skipped" if record and record.detail.endswith(" skipped") else "done"
        self.mark.setText({"pending": "○", "done": "✓", "skipped": "⤼"}[state])
        for w in (self.mark, self.text):
            w.setProperty("state", state)
            w.style().unpolish(w)
            w.style().polish(w)
        words = {"done": _tr("done"), "skipped": _tr("skipped"), "pending": ""}[state]
        if record is not None:
            words = f"{words} · {record.actor} {_hms(record.at)[:5]}"
            if record.note:
                words += f" — {record.note}"
        self.status.setText(words)
        self.status.setVisible(bool(words))
        for button in (self.done, self.skip):
            button.setVisible(state == "pending")
            button.setEnabled(not allowed)
            button.setToolTip(allowed)
        return state


def build_checklist(area: QVBoxLayout, steps: Iterable[Step], on_done: Callable[[str], None],
                    on_skip: Callable[[str], None]) -> tuple[QWidget, dict[str, StepRow]]:
    """A new checklist box in ``area``, one row per step; Done and Skip… call
    ``on_done`` / ``on_skip`` with the step id. Returns the box and its rows."""
    box = QWidget()
    box.setObjectName("procedure")
    grid = QGridLayout(box)
    grid.setContentsMargins(0, 0, 0, 0)
    grid.setHorizontalSpacing(8)
    grid.setVerticalSpacing(4)
    grid.setColumnStretch(1, 1)
    area.addWidget(box)
    rows: dict[str, StepRow] = {}
    for i, step in enumerate(steps):
        row = StepRow(step, grid, i, box)
        row.done.clicked.connect(lambda _=False, s=step.id: on_done(s))
        row.skip.clicked.connect(lambda _=False, s=step.id: on_skip(s))
        rows[step.id] = row
    return box, rows
