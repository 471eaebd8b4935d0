"""A child's identity under a granted reveal, and the dialogs that ask for
a reveal or a disclosure.

Children are tokens on every screen. This card is the one place a name,
the guardians' contacts and the services they consented to appear, and
only while the engine's grant runs: it counts down to the end ("shown
until 14:32 (12:41 left)") and then clears every field and drops the
``ChildDetail`` it was given, so nothing is left on screen or in memory
for the next person at the desk (the engine has logged the use).

It only presents and asks: the controller (``console.privacy_controller``)
sends the requests and hands the answers to ``show_reveal`` /
``show_detail``; ``tick(now)`` runs the countdown from an injected clock.
``ReasonDialog`` asks why (a reason an auditor can read later, at least
``MIN_REASON`` characters) and, for a disclosure, to whom.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable

import numpy as np
from PySide6.QtCore import QT_TRANSLATE_NOOP, Qt, Signal
from PySide6.QtWidgets import (
    QComboBox,
    QDialog,
    QDialogButtonBox,
    QFormLayout,
    QHBoxLayout,
    QLabel,
    QLineEdit,
    QPushButton,
    QTableWidget,
    QTableWidgetItem,
    QVBoxLayout,
    QWidget,
)

from models.alerts import DISPATCH_TARGETS
from models.kpi import clock as countdown
from models.messages import ChildDetail, GuardianView, pack, unpack
from models.messages import RevealView as RevealState
from models.privacy_view import MAX_REASON, MIN_REASON, local_time, reason_ok
from widgets.tables import read_only

GUARDIAN_COLUMNS = ("Guardian", "Relation", "Phone", "E-mail")
HISTORY_S = 3600.0  # the trail the "last hour" button asks for
ENDING_S = 60.0  # the countdown turns to a warning this close to the end
SERVICE_TEXT = {"routine": QT_TRANSLATE_NOOP("RevealView", "arrival and departure notices"),
                "location": QT_TRANSLATE_NOOP("RevealView", "location checks by a guardian"),
                "emergency": QT_TRANSLATE_NOOP("RevealView", "emergency alerts")}


def _hm(t: float) -> str:
    return local_time(t, with_date=False)[:5]


class RevealView(QWidget):
    """The identity card. Present-only: it emits, never sends."""

    history_requested = Signal(str, float)  # child token, seconds of trail
    forget_requested = Signal()  # the operator closed the card before the end
    trail_ready = Signal(object, object)  # lat, lon (np.ndarray), oldest first
    forgotten = Signal(str)  # child token: the card was cleared (expiry or by hand)
    active_changed = Signal(bool)  # something to show (the window makes room)

    def __init__(self, parent: QWidget | None = None, *,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(parent)
        self.setObjectName("revealView")
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground, True)  # the theme frames it
        self._clock = clock
        self._child = ""
        self._detail: ChildDetail | None = None
        self._expires = 0.0
        self._active = False

        self.title = QLabel()
        self.title.setObjectName("panelTitle")
        self.state = QLabel()
        self.state.setObjectName("revealState")
        self.state.setWordWrap(True)
        self.countdown = QLabel()
        self.countdown.setObjectName("revealCountdown")
        self.name = QLabel()
        self.name.setObjectName("revealName")
        self.name.setTextInteractionFlags(Qt.TextInteractionFlag.TextSelectableByMouse)
        self.services = QLabel()
        self.services.setObjectName("revealFact")
        self.services.setWordWrap(True)
        self.trail = QLabel()
        self.trail.setObjectName("revealFact")
        self.trail.setWordWrap(True)

        self.guardians = QTableWidget(0, len(GUARDIAN_COLUMNS))
        self.guardians.setObjectName("revealGuardians")
        self.guardians.setHorizontalHeaderLabels([self.tr(c) for c in GUARDIAN_COLUMNS])
        read_only(self.guardians, single=False)

        self.history_button = QPushButton(self.tr("Last hour's trail"))
        self.history_button.setObjectName("revealHistory")
        self.history_button.setToolTip(self.tr("Draw where the child was in the last hour "
                                               "(recorded in the location-usage log)"))
        self.history_button.clicked.connect(
            lambda: self.history_requested.emit(self._child, HISTORY_S))
        self.forget_button = QPushButton(self.tr("Forget now"))
        self.forget_button.setObjectName("revealForget")
        self.forget_button.setToolTip(self.tr("Clear the identity from this console now"))
        self.forget_button.clicked.connect(self._forget_clicked)

        facts = QFormLayout()
        facts.setHorizontalSpacing(10)
        facts.setVerticalSpacing(3)
        self._captions: list[QLabel] = []
        for caption, value in ((self.tr("Name"), self.name),
                               (self.tr("Services"), self.services),
                               (self.tr("History"), self.trail)):
            label = QLabel(caption)
            label.setObjectName("alertFactName")
            self._captions.append(label)
            facts.addRow(label, value)
        self._facts = facts

        top = QHBoxLayout()
        top.addWidget(self.title, 1)
        top.addWidget(self.countdown)
        buttons = QHBoxLayout()
        buttons.addStretch(1)
        buttons.addWidget(self.history_button)
        buttons.addWidget(self.forget_button)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(8, 4, 8, 4)
        layout.setSpacing(4)
        layout.addLayout(top)
        layout.addWidget(self.state)
        layout.addLayout(facts)
        layout.addWidget(self.guardians, 10)
        layout.addStretch(1)  # the room goes here while the card is empty
        layout.addLayout(buttons)
        self._clear_fields()
        self._say(self.tr("No identity shown. Children are tokens; “Reveal identity…” in "
                          "the alert panel asks for one, with a reason."), "idle")

    # ------------------------------------------------------------ reading

    @property
    def detail(self) -> ChildDetail | None:
        """The identity shown now (None once it has expired or been forgotten)."""
        return self._detail

    @property
    def child(self) -> str:
        return self._child

    @property
    def expires_at(self) -> float:
        return self._expires

    def shown_text(self) -> str:
        """Every word on the card, for tests and for checking what is left."""
        parts = [w.text() for w in (self.title, self.state, self.countdown, self.name,
                                     self.services, self.trail)]
        for r in range(self.guardians.rowCount()):
            for c in range(self.guardians.columnCount()):
                item = self.guardians.item(r, c)
                if item is not None:
                    parts += [item.text(), item.toolTip()]
        return "\n".join(p for p in parts if p)

    # ------------------------------------------------------------ inputs

    def show_asking(self, child: str) -> None:
        """A request went out for ``child``; nothing is known yet."""
        self._switch(child)
        self._say(self.tr("Asking the engine to reveal %1…").replace("%1", child), "asking")

    def show_reveal(self, reveal: RevealState) -> None:
        """What became of a reveal: pending, granted (the identity follows),
        refused or expired."""
        self._switch(reveal.child)
        reason = self.tr("“%1”").replace("%1", reveal.reason)
        if reveal.state == "pending":
            self._say(self.tr("Asked at %1 for %2: waiting for a supervisor's approval. "
                              "The card fills once it is granted.")
                      .replace("%1", _hm(reveal.requested_at)).replace("%2", reason), "pending")
        elif reveal.state == "granted":
            if self._detail is None:
                by = reveal.decided_by or self.tr("your open alert")
                self._say(self.tr("Granted (%1) until %2: loading the identity…")
                          .replace("%1", by).replace("%2", _hm(reveal.expires_at)), "granted")
        elif reveal.state == "refused":
            self._clear_fields()
            who = reveal.decided_by or self.tr("a supervisor")
            self._say(self.tr("Refused by %1 at %2. Ask again with a reason if it is still "
                              "needed.").replace("%1", who)
                      .replace("%2", _hm(reveal.decided_at or reveal.requested_at)), "refused")
        else:
            self.forget(expired=True)

    def show_detail(self, detail: ChildDetail, now: float | None = None) -> None:
        """Fill the card; an identity whose time is already up is not shown."""
        now = self._clock() if now is None else now
        if detail.expires_at <= now:
            self._switch(detail.child)
            self._detail = None
            self._say(self.tr("The reveal of %1 had already expired; nothing is shown.")
                      .replace("%1", detail.child), "expired")
            return
        self._switch(detail.child)
        self._detail = detail
        self._expires = detail.expires_at
        self.name.setText(detail.name)
        self._fill_guardians(detail.guardians)
        named = [self.tr(SERVICE_TEXT.get(s, s)) for s in detail.services]
        self.services.setText(", ".join(named) if named else self.tr("none in force"))
        lat = np.array(unpack("lat", detail.trail_lat))
        lon = np.array(unpack("lon", detail.trail_lon))
        t = unpack("t", detail.trail_t)
        if len(t):
            self.trail.setText(self.tr("%1 positions, %2–%3 (drawn on the map)")
                               .replace("%1", str(len(t))).replace("%2", _hm(float(t[0])))
                               .replace("%3", _hm(float(t[-1]))))
        else:
            self.trail.setText(self.tr("not asked (“Last hour's trail” draws it)"))
        for label in self._captions:
            label.show()
        for w in (self.name, self.services, self.trail, self.guardians):
            w.show()
        self.history_button.setEnabled(True)
        self.forget_button.setEnabled(True)
        self._say(self.tr("Shown under reveal %1. Use it for this case only; it is "
                          "recorded in the location-usage log.")
                  .replace("%1", str(detail.reveal_id)), "granted")
        self.tick(now)
        if len(t):
            self.trail_ready.emit(lat, lon)

    def show_error(self, text: str) -> None:
        """The engine refused a request (no reveal, not allowed, ...)."""
        self._say(text, "error")

    def tick(self, now: float) -> None:
        """Recount; at the end of the grant, forget."""
        if self._detail is None:
            return
        left = self._expires - now
        if left <= 0:
            self.forget(expired=True)
            return
        self.countdown.setText(self.tr("shown until %1 (%2 left)")
                               .replace("%1", _hm(self._expires)).replace("%2", countdown(left)))
        self.countdown.show()
        self._set_prop(self.countdown, "ending", "true" if left <= ENDING_S else "false")

    def forget(self, *, expired: bool = False) -> None:
        """Clear every field and drop the identity. Safe to call twice."""
        had = self._detail is not None
        until = self._expires
        child = self._child
        self._detail = None
        self._expires = 0.0
        self._clear_fields()
        if had and expired:
            self._say(self.tr("Shown until %1; the time is up and this console has "
                              "forgotten it.").replace("%1", _hm(until)), "expired")
        elif had:
            self._say(self.tr("Cleared from this console."), "expired")
        elif expired:
            self._say(self.tr("The reveal has expired; nothing is shown."), "expired")
        if had:
            self.forgotten.emit(child)

    def reset(self) -> None:
        """Back to nothing at all (the session ended)."""
        self.forget()
        self._child = ""
        self.title.setText("")
        self._say(self.tr("No identity shown."), "idle")
        self._set_active(False)

    # ------------------------------------------------------------ internals

    def _switch(self, child: str) -> None:
        """Another child: the previous one's identity goes first."""
        if child != self._child and self._detail is not None:
            self.forget()
        self._child = child
        self.title.setText(self.tr("Identity of %1").replace("%1", child))
        self._set_active(True)

    def _forget_clicked(self) -> None:
        self.forget()
        self.forget_requested.emit()

    def _clear_fields(self) -> None:
        for label in (self.name, self.services, self.trail, self.countdown):
            label.setText("")
            label.setToolTip("")
        self.guardians.clearContents()
        self.guardians.setRowCount(0)
        for w in (*self._captions, self.name, self.services, self.trail, self.guardians,
                  self.countdown):
            w.hide()
        self.history_button.setEnabled(False)
        self.forget_button.setEnabled(False)

    def _fill_guardians(self, guardians: list[GuardianView]) -> None:
        self.guardians.setRowCount(len(guardians))
        for r, g in enumerate(guardians):
            for c, value in enumerate((g.name, g.relation, g.phone, g.email)):
                item = QTableWidgetItem(value)
                item.setToolTip(value)
                self.guardians.setItem(r, c, item)
        # Every guardian in view: the card never hides one behind a scroll bar.
        rows = sum(self.guardians.rowHeight(r) for r in range(len(guardians)))
        self.guardians.setMinimumHeight(min(rows + self.guardians.horizontalHeader().height()
                                            + 6, 200))

    def _say(self, text: str, state: str) -> None:
        self.state.setText(text)
        self._set_prop(self.state, "state", state)

    def _set_active(self, active: bool) -> None:
        if active != self._active:
            self._active = active
            self.active_changed.emit(active)

    @staticmethod
    def _set_prop(w: QWidget, name: str, value: str) -> None:
        if w.property(name) != value:
            w.setProperty(name, value)
            w.style().unpolish(w)
            w.style().polish(w)


class ReasonDialog(QDialog):
    """Asks why (and, for a disclosure, to whom). OK stays disabled until
    the reason says something; nothing leaves on Cancel."""

    submitted = Signal(str, str)  # agency ("" for a reveal), reason

    def __init__(self, parent: QWidget | None = None, *, agencies: bool = False) -> None:
        super().__init__(parent)
        self.setObjectName("reasonDialog")
        self.setModal(True)
        self.intro = QLabel()
        self.intro.setObjectName("reasonIntro")
        self.intro.setWordWrap(True)
        self.agency = QComboBox()
        self.agency.setObjectName("agencyCombo")
        for key, number in DISPATCH_TARGETS.items():
            name = self.tr("Police") if key == "police" else self.tr("Fire")
            self.agency.addItem(f"{name} {number}", key)
        self.reason = QLineEdit()
        self.reason.setObjectName("reasonEdit")
        self.reason.setMaxLength(MAX_REASON)
        self.reason.setMinimumWidth(420)
        self.reason.textChanged.connect(self._check)
        self.hint = QLabel()
        self.hint.setObjectName("reasonHint")
        self.buttons = QDialogButtonBox(QDialogButtonBox.StandardButton.Ok
                                        | QDialogButtonBox.StandardButton.Cancel)
        self.ok = self.buttons.button(QDialogButtonBox.StandardButton.Ok)
        self.ok.setObjectName("confirmButton")
        self.buttons.accepted.connect(self.accept)
        self.buttons.rejected.connect(self.reject)
        form = QFormLayout()
        if agencies:
            form.addRow(self.tr("Agency"), self.agency)
        else:
            self.agency.hide()
        form.addRow(self.tr("Reason"), self.reason)
        layout = QVBoxLayout(self)
        layout.addWidget(self.intro)
        layout.addLayout(form)
        layout.addWidget(self.hint)
        layout.addWidget(self.buttons)
        self._agencies = agencies
        self._check()

    def ask(self, title: str, intro: str, placeholder: str = "") -> None:
        """Open, empty, over the window (not blocking the GUI thread)."""
        self.setWindowTitle(title)
        self.intro.setText(intro)
        self.reason.clear()
        self.reason.setPlaceholderText(placeholder)
        self.agency.setCurrentIndex(0)
        self._check()
        self.open()
        self.reason.setFocus()

    def _check(self) -> None:
        n = len(self.reason.text().strip())
        self.ok.setEnabled(reason_ok(self.reason.text()))
        if n < MIN_REASON:
            self.hint.setText(self.tr("A reason of at least %1 characters: it is recorded, "
                                      "and an auditor reads it later.")
                              .replace("%1", str(MIN_REASON)))
        else:
            self.hint.setText(self.tr("%1 of %2 characters").replace("%1", str(n))
                              .replace("%2", str(MAX_REASON)))

    def accept(self) -> None:
        if not reason_ok(self.reason.text()):
            return
        agency = str(self.agency.currentData()) if self._agencies else ""
        self.submitted.emit(agency, self.reason.text().strip())
        super().accept()


# ------------------------------------------------------------------ fake data


def fake_child_detail(now: float, child: str = "C-A13F00", ttl: float = 15 * 60.0,
                      trail: bool = False) -> ChildDetail:
    """A plausible identity for running the card alone (and for tests)."""
    t = np.linspace(now - 3600, now, 120) if trail else np.empty(0)
    lat = 37.5444 - 0.002 * (now - t) / 3600
    lon = 127.0374 + 0.0015 * np.sin((now - t) / 600)
    return ChildDetail(child=child, name="김하늘 (Kim Haneul)", guardians=[
        GuardianView(name="박지영 (Park Jiyoung)", relation="mother", phone="010-2345-6789",
                     email="jiyoung.park@example.kr"),
        GuardianView(name="김민수 (Kim Minsu)", relation="father", phone="010-9876-5432",
                     email="minsu.kim.family.account@example.kr"),
    ], services=["routine", "location", "emergency"], reveal_id=42, expires_at=now + ttl,
        trail_t=pack("t", t), trail_lat=pack("lat", lat), trail_lon=pack("lon", lon))


def main() -> int:
    """The card alone: pending, then granted with a two-minute grant."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    from console.theme import apply_theme

    app = QApplication(sys.argv)
    apply_theme(app)
    view = RevealView()
    now = time.time()
    view.show_reveal(RevealState(id=42, child="C-A13F00", user="kim.op", reason="SOS, child "
                                 "not answering", alert_id=7, state="pending",
                                 requested_at=now - 40))
    QTimer.singleShot(3000, lambda: view.show_detail(fake_child_detail(time.time(), ttl=120)))
    timer = QTimer(view)
    timer.timeout.connect(lambda: view.tick(time.time()))
    timer.start(1000)
    view.history_requested.connect(
        lambda c, s: view.show_detail(fake_child_detail(time.time(), c, 120, trail=True)))
    view.resize(640, 360)
    view.setWindowTitle(view.tr("Identity card (fake data)"))
    view.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
