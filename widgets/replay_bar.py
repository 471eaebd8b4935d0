"""The trainer's replay bar and the training banner.

``ReplayBar`` is what a trainer drives a training session with: play or
pause, step, the speed, the replayed clock and period, and a timeline of
the session with a mark for each incident or alert (coloured by kind, the
label as a tooltip); a click or a drag released on it seeks there. It only
presents a ``ReplayStatus`` and emits what the trainer asked for
(``console.replay_controller`` sends it to the session): no I/O.

``TrainingBanner`` runs across the top of every console in a training
session, so nobody takes replayed data for live operations.

Colours are the theme's: the timeline's are Qt properties
(``ReplayTimeline { qproperty-sosColor: …; }``); the banner and bar are
styled by object name.

``python -m widgets.replay_bar`` runs the bar alone on a fake session.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable, Sequence

from PySide6.QtCore import Property, QEvent, QPointF, QRectF, QSize, Qt, Signal
from PySide6.QtGui import QColor, QHelpEvent, QMouseEvent, QPainter, QPaintEvent, QPen
from PySide6.QtWidgets import (
    QComboBox,
    QFrame,
    QHBoxLayout,
    QLabel,
    QMessageBox,
    QPushButton,
    QSizePolicy,
    QToolTip,
    QWidget,
)

from models.messages import ReplayMark, ReplayStatus

DEFAULT_SPEEDS = (0.25, 0.5, 1.0, 2.0, 4.0, 8.0, 16.0)  # console.training.player.SPEEDS
DEFAULT_STEP_S = 5.0
# Mark kinds (scenario incidents and alert kinds) by the colour they take.
MARK_GROUPS: dict[str, str] = {
    "sos": "sos", "second_sos": "sos", "fall": "sos", "removed": "sos",
    "leave_zone": "zone", "zone_exit": "zone", "not_arrived": "zone", "not_departed": "zone",
    "unusual_movement": "zone",
    "battery_dies": "device", "low_battery": "device", "lost_signal": "device",
    "camera_offline": "camera",
}
COLOURS: dict[str, str] = {  # fallbacks without a theme
    "trackColor": "#334155", "playedColor": "#7c3aed", "positionColor": "#f8fafc",
    "dragColor": "#fbbf24", "sosColor": "#ef4444", "zoneColor": "#3b82f6",
    "deviceColor": "#94a3b8", "cameraColor": "#f59e0b", "otherColor": "#e2e8f0",
}


def clock_text(t: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(t))


def span_text(seconds: float) -> str:
    """Minutes and seconds into the session: "+02:30"."""
    s = max(int(seconds), 0)
    return f"{s // 60:02d}:{s % 60:02d}"


def speed_text(speed: float) -> str:
    return f"{speed:g}×"


def _colour(key: str) -> Property:
    def getter(self: ReplayTimeline) -> QColor:
        return QColor(self._colours[key])

    def setter(self: ReplayTimeline, value: QColor) -> None:
        self._colours[key] = QColor(value)
        self.update()

    return Property(QColor, getter, setter)


class ReplayTimeline(QWidget):
    """The session from t0 to t1: played part, marks, where it is now.
    Press and drag to choose a time; the release seeks there."""

    seek_requested = Signal(float)

    MARGIN = 8  # px each side, so the ends can be clicked
    MARK_PX = 3
    HIT_PX = 5  # how near a mark the pointer must be for its tooltip

    trackColor = _colour("trackColor")
    playedColor = _colour("playedColor")
    positionColor = _colour("positionColor")
    dragColor = _colour("dragColor")
    sosColor = _colour("sosColor")
    zoneColor = _colour("zoneColor")
    deviceColor = _colour("deviceColor")
    cameraColor = _colour("cameraColor")
    otherColor = _colour("otherColor")

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("replayTimeline")
        self._colours = {k: QColor(v) for k, v in COLOURS.items()}
        self.t0 = 0.0
        self.t1 = 0.0
        self.t = 0.0
        self.marks: list[ReplayMark] = []
        self.dragging: float | None = None  # the time under the pointer while pressed
        self.setMinimumWidth(160)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setCursor(Qt.CursorShape.PointingHandCursor)
        self.setMouseTracking(False)

    def sizeHint(self) -> QSize:
        return QSize(480, 30)

    # ------------------------------------------------------------- inputs
    def set_range(self, t0: float, t1: float) -> None:
        if (t0, t1) != (self.t0, self.t1):
            self.t0, self.t1 = t0, t1
            self.update()

    def set_marks(self, marks: Sequence[ReplayMark]) -> None:
        if list(marks) != self.marks:
            self.marks = list(marks)
            self.update()

    def set_position(self, t: float) -> None:
        if t != self.t:
            self.t = t
            self.update()

    # ------------------------------------------------------------ geometry
    def x_of(self, t: float) -> float:
        """The x (widget px) of session time ``t``."""
        width = max(self.width() - 2 * self.MARGIN, 1)
        span = self.t1 - self.t0
        f = 0.0 if span <= 0 else min(max((t - self.t0) / span, 0.0), 1.0)
        return self.MARGIN + f * width

    def t_of(self, x: float) -> float:
        """The session time at x (widget px), inside t0..t1."""
        width = max(self.width() - 2 * self.MARGIN, 1)
        f = min(max((x - self.MARGIN) / width, 0.0), 1.0)
        return self.t0 + f * (self.t1 - self.t0)

    def mark_at(self, x: float) -> ReplayMark | None:
        """The mark nearest x, if within ``HIT_PX``."""
        near = [(abs(self.x_of(m.t) - x), i) for i, m in enumerate(self.marks)]
        best = min(near, default=None)
        return self.marks[best[1]] if best is not None and best[0] <= self.HIT_PX else None

    def mark_colour(self, kind: str) -> QColor:
        return QColor(self._colours[f"{MARK_GROUPS.get(kind, 'other')}Color"])

    # -------------------------------------------------------------- events
    def mousePressEvent(self, event: QMouseEvent) -> None:
        if event.button() == Qt.MouseButton.LeftButton and self.t1 > self.t0:
            self.dragging = self.t_of(event.position().x())
            self.update()

    def mouseMoveEvent(self, event: QMouseEvent) -> None:
        if self.dragging is not None:
            self.dragging = self.t_of(event.position().x())
            tip = f"{clock_text(self.dragging)} · +{span_text(self.dragging - self.t0)}"
            QToolTip.showText(event.globalPosition().toPoint(), tip, self)
            self.update()

    def mouseReleaseEvent(self, event: QMouseEvent) -> None:
        if self.dragging is not None and event.button() == Qt.MouseButton.LeftButton:
            target = self.t_of(event.position().x())
            self.dragging = None
            self.update()
            self.seek_requested.emit(target)

    def event(self, event: QEvent) -> bool:
        if event.type() == QEvent.Type.ToolTip and isinstance(event, QHelpEvent):
            mark = self.mark_at(event.pos().x())
            if mark is not None:
                QToolTip.showText(event.globalPos(), self.mark_tip(mark), self)
            else:
                QToolTip.showText(event.globalPos(), self.tr(
                    "Click or drag to seek (back in time restarts the training engine)"), self)
            return True
        return super().event(event)

    def mark_tip(self, mark: ReplayMark) -> str:
        return (f"{mark.label or mark.kind} · {mark.kind.replace('_', ' ')}\n"
                f"{clock_text(mark.t)} · +{span_text(mark.t - self.t0)}")

    def paintEvent(self, event: QPaintEvent) -> None:
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        mid = self.height() / 2
        left, right = self.x_of(self.t0), self.x_of(self.t1)
        p.setPen(Qt.PenStyle.NoPen)
        p.setBrush(self._colours["trackColor"])
        p.drawRoundedRect(QRectF(left, mid - 3, right - left, 6), 3, 3)
        if self.t1 > self.t0:
            now = self.x_of(self.t)
            p.setBrush(self._colours["playedColor"])
            p.drawRoundedRect(QRectF(left, mid - 3, now - left, 6), 3, 3)
            for mark in self.marks:
                x = self.x_of(mark.t)
                p.setBrush(self.mark_colour(mark.kind))
                p.drawRect(QRectF(x - self.MARK_PX / 2, 3, self.MARK_PX, self.height() - 6))
            if self.dragging is not None:
                pen = QPen(self._colours["dragColor"], 2)
                p.setPen(pen)
                x = self.x_of(self.dragging)
                p.drawLine(QPointF(x, 1), QPointF(x, self.height() - 1))
                p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(self._colours["positionColor"])
            p.setPen(QPen(self._colours["playedColor"], 2))
            p.drawEllipse(QPointF(now, mid), 6, 6)
        p.end()


class ReplayBar(QFrame):
    """The trainer's controls; see the module docstring."""

    play_requested = Signal()
    pause_requested = Signal()
    step_requested = Signal()
    speed_requested = Signal(float)
    seek_requested = Signal(float)
    stop_requested = Signal()

    def __init__(self, parent: QWidget | None = None, *,
                 speeds: Sequence[float] = DEFAULT_SPEEDS,
                 step_s: float = DEFAULT_STEP_S) -> None:
        super().__init__(parent)
        self.setObjectName("replayBar")
        self.status: ReplayStatus | None = None
        # Asked before ending the session (a dialog; tests put an answer here).
        self.confirm: Callable[[], bool] = self._ask_to_end
        self.play_button = QPushButton(self.tr("▶ Play"))
        self.play_button.setObjectName("replayPlay")
        self.play_button.setToolTip(self.tr("Play or pause the session"))
        self.play_button.clicked.connect(self._play_clicked)
        self.step_button = QPushButton(self.tr("Step +{0:g} s").format(step_s))
        self.step_button.setObjectName("replayStep")
        self.step_button.setToolTip(self.tr("Paused: advance {0:g} s").format(step_s))
        self.step_button.clicked.connect(self.step_requested)
        self.speed = QComboBox()
        self.speed.setObjectName("replaySpeed")
        self.speed.setToolTip(self.tr("Replay speed"))
        for s in speeds:
            self.speed.addItem(speed_text(s), s)
        self.speed.setCurrentIndex(max(self.speed.findData(1.0), 0))
        self.speed.activated.connect(lambda i: self.speed_requested.emit(
            float(self.speed.itemData(i))))
        self.clock = QLabel("--:--:--")
        self.clock.setObjectName("replayClock")
        self.clock.setToolTip(self.tr("The replayed time"))
        self.progress = QLabel("")
        self.progress.setObjectName("replayProgress")
        self.timeline = ReplayTimeline()
        self.timeline.seek_requested.connect(self.seek_requested)
        self.period = QLabel("")
        self.period.setObjectName("replayPeriod")
        self.end_button = QPushButton(self.tr("End session"))
        self.end_button.setObjectName("replayEnd")
        self.end_button.setToolTip(self.tr("Stop the session; trainees are scored"))
        self.end_button.clicked.connect(self._end_clicked)
        row = QHBoxLayout(self)
        row.setContentsMargins(8, 3, 8, 3)
        row.setSpacing(8)
        for w in (self.play_button, self.step_button, self.speed, self.clock, self.progress):
            row.addWidget(w)
        row.addWidget(self.timeline, 1)
        row.addWidget(self.period)
        row.addWidget(self.end_button)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)
        self._enable(False)

    # ------------------------------------------------------------- inputs
    def show_status(self, status: ReplayStatus) -> None:
        """Where the session stands (every answer of the session)."""
        self.status = status
        running = status.playing or status.seeking
        self.play_button.setText(self.tr("❚❚ Pause") if running else self.tr("▶ Play"))
        self._enable(True)
        self.play_button.setEnabled(running or status.t < status.t1)
        self.step_button.setEnabled(not running and status.t < status.t1)
        i = self.speed.findData(status.speed)
        if i >= 0 and i != self.speed.currentIndex():
            self.speed.setCurrentIndex(i)
        self.clock.setText(clock_text(status.t))
        pace = (self.tr("seeking…") if status.seeking else
                speed_text(status.speed) if status.playing else
                self.tr("ended") if status.t >= status.t1 else self.tr("paused"))
        self.progress.setText(f"+{span_text(status.t - status.t0)} / "
                              f"{span_text(status.t1 - status.t0)} · {pace}")
        self.period.setText(f"{time.strftime('%H:%M', time.localtime(status.t0))}–"
                            f"{time.strftime('%H:%M', time.localtime(status.t1))}")
        self.period.setToolTip(status.title)
        self.timeline.set_range(status.t0, status.t1)
        self.timeline.set_marks(status.marks)
        if self.timeline.dragging is None:
            self.timeline.set_position(status.t)

    def clear(self) -> None:
        """No session answers (yet, or any more)."""
        self.status = None
        self._enable(False)
        self.clock.setText("--:--:--")
        self.progress.setText(self.tr("waiting for the session…"))

    # ------------------------------------------------------------ internals
    def _enable(self, on: bool) -> None:
        for w in (self.play_button, self.step_button, self.speed, self.timeline,
                  self.end_button):
            w.setEnabled(on)

    def _play_clicked(self) -> None:
        s = self.status
        if s is not None and (s.playing or s.seeking):
            self.pause_requested.emit()
        else:
            self.play_requested.emit()

    def _end_clicked(self) -> None:
        if self.confirm():
            self.stop_requested.emit()

    def _ask_to_end(self) -> bool:
        return ask_to_end_session(self)


def ask_to_end_session(parent: QWidget) -> bool:
    """The trainer's confirmation before a session ends (the bar's and the
    Training tab's "End session" alike): ending scores it for good."""
    answer = QMessageBox.question(
        parent, parent.tr("End the training session"),
        parent.tr("End the session for every trainee? It is scored and cannot be resumed."),
        QMessageBox.StandardButton.Yes | QMessageBox.StandardButton.Cancel,
        QMessageBox.StandardButton.Cancel)
    return answer == QMessageBox.StandardButton.Yes


class TrainingBanner(QFrame):
    """TRAINING across the window: what this console shows is a replay."""

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("trainingBanner")
        self.word = QLabel(self.tr("TRAINING"))
        self.word.setObjectName("trainingWord")
        self.text = QLabel(self.tr("— replayed data, not live operations"))
        self.text.setObjectName("trainingText")
        self.session = QLabel("")
        self.session.setObjectName("trainingSession")
        self.session.setAlignment(Qt.AlignmentFlag.AlignRight | Qt.AlignmentFlag.AlignVCenter)
        self.session.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Preferred)
        row = QHBoxLayout(self)
        row.setContentsMargins(12, 4, 12, 4)
        row.setSpacing(10)
        row.addWidget(self.word)
        row.addWidget(self.text)
        row.addWidget(self.session, 1)
        self.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Fixed)

    def full_text(self) -> str:
        """All the banner says, in one line (what tests read)."""
        return " ".join(x for x in (self.word.text(), self.text.text(), self.session.text()) if x)

    def show_session(self, title: str, t: float | None, speed: float | None = None) -> None:
        """The session's title ("" if unknown) and replayed time (None: not heard yet)."""
        parts = [title] if title else []
        if t is not None:
            pace = "" if speed is None else (
                self.tr(" (paused)") if speed == 0 else f" ({speed_text(speed)})")
            parts.append(self.tr("replayed clock {0}").format(clock_text(t)) + pace)
        text = "  ·  ".join(parts)
        if self.session.text() != text:
            self.session.setText(text)
            self.session.setToolTip(text)


def fake_status(t0: float, t: float, playing: bool = True, speed: float = 4.0) -> ReplayStatus:
    """A session 18 minutes long with four incidents (standalone runs, tests)."""
    marks = [ReplayMark(t=t0 + s, kind=k, label=lab) for s, k, lab in (
        (150, "sos", "followed-sos"), (195, "sos", "lost-friends-sos"),
        (210, "leave_zone", "heads-away"), (260, "battery_dies", "dying-watch"))]
    return ReplayStatus(title="After-school rush: overlapping incidents",
                        scenario="after-school-rush", t0=t0, t1=t0 + 1080, t=t, speed=speed,
                        playing=playing, marks=marks)


def main() -> int:
    """The bar alone on a fake session that follows its own controls."""
    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QVBoxLayout

    from console.theme import apply_theme

    app = QApplication(sys.argv[:1])
    apply_theme(app)
    host = QWidget()
    box = QVBoxLayout(host)
    banner = TrainingBanner()
    bar = ReplayBar()
    box.addWidget(banner)
    box.addWidget(bar)
    box.addStretch(1)
    t0 = time.time()
    state = {"t": t0, "playing": True, "speed": 4.0}

    def show() -> None:
        s = fake_status(t0, state["t"], bool(state["playing"]), float(state["speed"]))
        bar.show_status(s)
        banner.show_session(s.title, s.t, s.speed if s.playing else 0.0)

    def tick() -> None:
        if state["playing"]:
            state["t"] = min(state["t"] + 0.5 * float(state["speed"]), t0 + 1080)
        show()

    bar.play_requested.connect(lambda: (state.update(playing=True), show()))
    bar.pause_requested.connect(lambda: (state.update(playing=False), show()))
    bar.step_requested.connect(lambda: (state.update(t=state["t"] + DEFAULT_STEP_S), show()))
    bar.speed_requested.connect(lambda s: (state.update(speed=s), show()))
    bar.seek_requested.connect(lambda t: (state.update(t=t), show()))
    bar.stop_requested.connect(app.quit)
    timer = QTimer(host)
    timer.timeout.connect(tick)
    timer.start(500)
    host.resize(1400, 160)
    host.show()
    show()
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
