"""The system health strip: every process, the store and what is held back,
readable at a glance from across the room.

One pill per process (state, restarts, heartbeat age, what is wrong with
it), then the store's state, unsaved alerts, sequence gaps and refused
device reports. It only presents what ``models.health`` worked out from
the heartbeats (``ConsoleState.health``), the same inputs as the status
bar's DEGRADED reasons, so the two never disagree. Colours are the
theme's: the pills carry ``state`` and ``trouble`` properties.
"""

from __future__ import annotations

import sys

from PySide6.QtWidgets import QHBoxLayout, QLabel, QSizePolicy, QWidget

from models.health import HealthSummary, ProcessHealth

# The store's states as a severity the theme colours.
STORE_LEVEL = {"writable": "ok", "locked": "warn", "full": "bad", "failing": "bad",
               "unknown": "unknown"}


def age_text(age_s: float | None) -> str:
    """A heartbeat age short enough for a pill: "0.4 s", "12 s", "3 min"."""
    if age_s is None:
        return "—"
    if age_s < 10:
        return f"{age_s:.1f} s"
    if age_s < 100:
        return f"{age_s:.0f} s"
    if age_s < 3600:
        return f"{age_s / 60:.0f} min"
    return f"{age_s / 3600:.0f} h"


def _restyle(label: QLabel, **props: object) -> None:
    """Set style properties; re-polish only when one changed (every frame
    calls this, and a polish is not free)."""
    changed = False
    for key, value in props.items():
        if label.property(key) != value:
            label.setProperty(key, value)
            changed = True
    if changed:
        label.style().unpolish(label)
        label.style().polish(label)


def _put(label: QLabel, text: str, tip: str) -> None:
    if label.text() != text:
        label.setText(text)
    if label.toolTip() != tip:
        label.setToolTip(tip)


class HealthStrip(QWidget):
    """A thin row under the console's work area; fed once per frame."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("healthStrip")
        # Never widens the window: when short of room, running processes'
        # pills drop their ages (``compact``), then fold into one "N up" pill.
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self._row = QHBoxLayout(self)
        self._row.setContentsMargins(6, 2, 6, 2)
        self._row.setSpacing(4)
        self.title = QLabel(self.tr("System"))
        self.title.setObjectName("healthTitle")
        self.title.setToolTip(self.tr(
            "System health: each process, the store, and what is held back. Anything "
            "not healthy also turns the status DEGRADED, with the reason in words."))
        self._row.addWidget(self.title)
        self.quiet = QLabel("")  # the folded running processes, when short of room
        self.quiet.setObjectName("healthProcess")
        self.quiet.setProperty("state", "up")
        self.quiet.hide()
        self._row.addWidget(self.quiet)
        self.processes: dict[str, QLabel] = {}
        self.compact = False
        self.folded: list[str] = []
        self.store = self._figure()
        self.unsaved = self._figure()
        self.gaps = self._figure()
        self.refused = self._figure()
        self.unregistered = self._figure()
        self._row.addStretch(1)
        self.show_health([], HealthSummary())

    def _figure(self) -> QLabel:
        label = QLabel("")
        label.setObjectName("healthFigure")
        self._row.addWidget(label)
        return label

    # --------------------------------------------------------------- feed
    def show_health(self, processes: list[ProcessHealth], summary: HealthSummary) -> None:
        """Show ``ConsoleState.health()``'s answer. (Not ``show``: that is
        QWidget's own, and layouts and tests rely on it.)"""
        if [p.name for p in processes] != list(self.processes):
            self._rebuild([p.name for p in processes])
        self._show_summary(summary)
        for p in processes:
            _restyle(self.processes[p.name], state=p.state,
                     trouble=p.state == "up" and bool(p.detail))
        full = {p.name: self._pill_text(p, compact=False) for p in processes}
        short = {p.name: self._pill_text(p, compact=True) for p in processes}
        quiet = [p.name for p in processes if p.state == "up" and not p.detail]
        fold = self.tr("● {0} up").format(len(quiet))
        room = self.width()
        if self._needs(full) <= room:
            texts, self.folded = full, []
        elif self._needs(short) <= room or len(quiet) < 2:
            texts, self.folded = short, []
        else:
            texts = {n: t for n, t in short.items() if n not in quiet}
            self.folded = quiet
        self.compact = texts is not full
        for p in processes:
            label = self.processes[p.name]
            label.setHidden(p.name not in texts)
            if p.name in texts:
                _put(label, texts[p.name], self._pill_tip(p, summary))
        self.quiet.setHidden(not self.folded)
        if self.folded:
            _put(self.quiet, fold, self.tr("Running, nothing wrong: {0}.").format(
                ", ".join(self.folded)))

    def _needs(self, texts: dict[str, str]) -> int:
        """The width the row needs with these pills: each label's width now,
        less its text's, plus the new text's (its styled font and box)."""
        row = self._row
        fixed = [self.title, *(f for f in (self.store, self.unsaved, self.gaps, self.refused,
                                           self.unregistered) if not f.isHidden())]
        pills = []
        for name, text in texts.items():
            label = self.processes[name]
            label.ensurePolished()
            fm = label.fontMetrics()
            pills.append(label.sizeHint().width() - fm.size(0, label.text()).width()
                         + fm.size(0, text).width())
        margins = row.contentsMargins()
        return (sum(pills) + sum(w.sizeHint().width() for w in fixed)
                + row.spacing() * (len(pills) + len(fixed) - 1) + margins.left()
                + margins.right())

    def _rebuild(self, names: list[str]) -> None:
        """New pills when the set of processes changes (a demo's extra
        processes, a supervisor heard for the first time)."""
        for label in self.processes.values():
            self._row.removeWidget(label)
            label.deleteLater()
        self.processes = {}
        for i, name in enumerate(names):
            label = QLabel(name)
            label.setObjectName("healthProcess")
            self._row.insertWidget(2 + i, label)
            self.processes[name] = label

    def _pill_text(self, p: ProcessHealth, *, compact: bool) -> str:
        """"● engine 0.4 s ↻2"; ``compact`` leaves out a running process's
        age and restarts (its tooltip keeps them), never what is wrong."""
        restarts = f" ↻{p.restarts}" if p.restarts else ""
        if p.state == "down":
            return self.tr("● {0} down ↻{1}").format(p.name, p.restarts)
        if p.state == "silent":
            return self.tr("● {0} silent {1}{2}").format(p.name, age_text(p.age_s), restarts)
        if p.state == "unknown":
            return f"○ {p.name}"
        age = f" {age_text(p.age_s)}" if p.age_s is not None else ""
        detail = f" · {p.detail}" if p.detail else ""
        if compact:
            return f"● {p.name}{detail}"
        return f"● {p.name}{age}{restarts}{detail}"

    def _pill_tip(self, p: ProcessHealth, summary: HealthSummary) -> str:
        restarted = self.tr("restarted {0} times by the supervisor").format(p.restarts)
        if p.state == "down":
            tip = self.tr("{0} is down. The supervisor keeps starting it again ({1}); the "
                          "status says DEGRADED meanwhile.").format(p.name, restarted)
        elif p.state == "silent":
            tip = self.tr("{0} has sent no heartbeat for {1}: hung, or cut off from this "
                          "console. The supervisor kills a hung process and starts it "
                          "again ({2}).").format(p.name, age_text(p.age_s), restarted)
        elif p.state == "unknown":
            tip = self.tr("{0}: not heard from yet (no heartbeat, no word from the "
                          "supervisor).").format(p.name)
        elif p.age_s is None:
            tip = self.tr("{0} is running, says the supervisor; it sends no heartbeat of "
                          "its own ({1}).").format(p.name, restarted)
        else:
            tip = self.tr("{0} is up: last heartbeat {1} ago; {2}.").format(
                p.name, age_text(p.age_s), restarted)
        if p.detail:
            tip += " " + self.tr("Now: {0}.").format(p.detail)
        if p.name == "bus":
            tip += " " + self.tr("The bus carries every message and sends no heartbeat: it "
                                 "counts as up while heartbeats arrive through it.")
        if p.name == "supervisor":
            tip += " " + self.tr("It starts every process and has killed {0} hung ones so "
                                 "far.").format(summary.hung_kills)
        return tip

    def _show_summary(self, s: HealthSummary) -> None:
        writers = ", ".join(f"{who} {state}" for who, state in s.store_by)
        _put(self.store, self.tr("store {0}").format(s.store), self.tr(
            "The store as its writers found it at their last try ({0}); {1} failed writes "
            "so far. Locked or full: alerts are kept and shown unsaved, and saved when it "
            "frees.").format(writers or self.tr("none heard yet"), s.store_failures))
        _restyle(self.store, state=STORE_LEVEL.get(s.store, "bad"))
        _put(self.unsaved, self.tr("{0} unsaved").format(s.unsaved_alerts), self.tr(
            "Alerts raised and shown but not yet in the store; never dropped, saved as soon "
            "as the store allows."))
        _restyle(self.unsaved, state="warn" if s.unsaved_alerts else "ok")
        lost = self.tr(" ({0} lost)").format(s.lost) if s.lost else ""
        _put(self.gaps, self.tr("gaps {0}{1}").format(s.gaps, lost), self.tr(
            "Sequence gaps in the devices' reports the engine saw: {0} recovered from the "
            "journal, {1} no longer there to recover.").format(s.gaps - s.lost, s.lost))
        _restyle(self.gaps, state="bad" if s.lost else "ok")
        _put(self.refused, self.tr("refused {0:,}").format(s.refused), self.tr(
            "Device reports the gateway refused, for every reason (bad values, unknown "
            "devices, repeats); the Gateway tab lists them by reason."))
        _restyle(self.refused, state="ok")
        _put(self.unregistered, self.tr("{0} unregistered").format(s.unregistered_devices),
             self.tr("Devices that sent reports but are not registered: register them, or "
                     "find out who is sending (Gateway tab)."))
        _restyle(self.unregistered, state="warn")
        self.unregistered.setVisible(s.unregistered_devices > 0)


def demo() -> QWidget:
    """Two strips on generated heartbeats, live: a healthy system, and one
    with a process down, one silent, the store locked and alerts unsaved
    (for ``main`` and for screenshots; needs a QApplication)."""
    import time

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QVBoxLayout

    from models.console_state import ConsoleState
    from models.messages import Heartbeat

    start = time.monotonic()
    procs = ("bus", "engine", "recorder", "gateway", "relay", "democams", "simulator")

    def beats(st: ConsoleState, faults: bool, now: float) -> None:
        sup = {f"up.{p}": 1.0 for p in procs} | {"restarts.engine": 1.0}
        engine = {"store_state": 0.0, "journal_gaps": 2.0}
        roles = ["engine", "recorder", "gateway", "relay"]
        gateway = {"rejected.osmand:duplicate": 40.0, "rejected.watch:bad_length": 3.0}
        if faults:
            sup |= {"up.recorder": 0.0, "restarts.recorder": 3.0, "hung_kills": 1.0}
            engine |= {"store_state": 1.0, "unsaved_alerts": 3.0, "journal_lost": 1.0}
            roles = ["engine", "relay"]  # the gateway went quiet 12 s before the start
        stats = {"engine": engine, "gateway": gateway, "recorder": {"store_state": 0.0},
                 "relay": {"evidence_full": 1.0 if faults else 0.0}}
        for role in roles:
            st.apply(Heartbeat(origin=f"{role}:1", last_seq=0, stats=stats[role]), now=now)
        st.apply(Heartbeat(origin="supervisor:1", last_seq=0, stats=sup), now=now)

    window = QWidget()
    column = QVBoxLayout(window)
    states = [ConsoleState(), ConsoleState()]
    strips = [HealthStrip(), HealthStrip()]
    states[1].apply(Heartbeat(origin="gateway:1", last_seq=0, stats={
        "rejected.osmand:duplicate": 40.0, "unregistered_devices": 2.0}), now=start - 12.0)
    for faults, (st, strip) in enumerate(zip(states, strips, strict=True)):
        st.synced, st.origin = True, "engine:1"
        beats(st, bool(faults), start)
        column.addWidget(strip)

    def tick() -> None:
        now = time.monotonic()
        for faults, (st, strip) in enumerate(zip(states, strips, strict=True)):
            if now - st.last_heartbeat >= 1.0:
                beats(st, bool(faults), now)
            strip.show_health(*st.health(now))

    timer = QTimer(window)
    timer.timeout.connect(tick)
    timer.start(100)
    tick()
    window.setWindowTitle("System health strip")
    window.resize(1500, 80)
    return window


def main() -> int:
    from PySide6.QtWidgets import QApplication

    from console.theme import apply_theme

    app = QApplication(sys.argv)
    apply_theme(app)
    window = demo()
    window.show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
