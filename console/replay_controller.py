"""The trainer's side of a training session: the replay bar to the session,
and every child's trail on the map.

The bar (``widgets.replay_bar``) only says what the trainer asked; this
turns it into ``ReplayControl`` commands through the console's session
(``console.session``: it stamps the trainer's token, and the feed's worker
sends them to the session's control socket), and shows each answer: the
session answers every command with where it stands. Between commands it
asks once a second, so the bar follows a session that others (the command
line, the end of the period) change too. One question at a time: a
session that stopped answering is not sent a pile of them.

The trails are ``models.trails`` fed from the console's frames, drawn as
one curve a few times a second at most; a replay whose time goes back
(a seek back restarts the training engine) starts them again.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from typing import Any, Protocol

import numpy as np
from PySide6.QtCore import QObject, QTimer, Signal

from models.messages import AnyMessage, CommandReply, ReplayAction, ReplayControl, ReplayStatus
from models.trails import Trails
from widgets.map_view import MapView
from widgets.replay_bar import ReplayBar

log = logging.getLogger(__name__)

POLL_MS = 1000
ANSWER_S = 5.0  # a question unanswered this long is asked again
DRAW_S = 0.25  # the trails are redrawn at most this often (wall time)

OnReply = Callable[[Any], None]


class SessionLike(Protocol):
    """``console.session.Session`` as far as the controller needs it."""

    def send(self, command: AnyMessage, on_reply: OnReply | None = None) -> int: ...


class ReplayController(QObject):
    said = Signal(str)  # for the status bar: a refusal, the session ending
    status_changed = Signal(object)  # the latest ReplayStatus

    def __init__(self, session: SessionLike, bar: ReplayBar, map_view: MapView,
                 now: Callable[[], float], parent: QObject | None = None,
                 trails: Trails | None = None) -> None:
        super().__init__(parent)
        self.session = session
        self.bar = bar
        self.map = map_view
        self.now = now
        self.trails = trails if trails is not None else Trails()
        self.status: ReplayStatus | None = None
        self.active = False
        self.ended = False
        self._asked_at: float | None = None  # monotonic, while a status question is out
        self._drawn_at = 0.0
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.poll)
        bar.play_requested.connect(lambda: self.send("play", speed=self._speed()))
        bar.pause_requested.connect(lambda: self.send("pause"))
        bar.step_requested.connect(lambda: self.send("step"))
        bar.speed_requested.connect(lambda s: self.send("speed", speed=s))
        bar.seek_requested.connect(lambda t: self.send("seek", t=t))
        bar.stop_requested.connect(lambda: self.send("stop"))

    # ----------------------------------------------------------- lifecycle
    def start(self) -> None:
        """A trainer signed in: follow the session."""
        self.active = True
        self.ended = False
        self._asked_at = None
        self.bar.clear()
        self._timer.start()
        self.poll()

    def stop(self) -> None:
        """Nobody to drive it (signed out, another role, the window closing)."""
        self.active = False
        self._timer.stop()
        self.status = None
        self.bar.clear()
        self.trails.reset()
        self.map.clear_trails()

    # ------------------------------------------------------------ commands
    def poll(self) -> None:
        """Ask where the session stands, unless a question is still out."""
        now = time.monotonic()
        if not self.active or self.ended or (
                self._asked_at is not None and now - self._asked_at < ANSWER_S):
            return
        self._asked_at = now
        self.session.send(ReplayControl(token="", action="status"), self._answered)

    def send(self, action: ReplayAction, speed: float = 1.0, t: float = 0.0) -> None:
        """One of the trainer's controls; the answer updates the bar."""
        if not self.active:
            return
        self.session.send(ReplayControl(token="", action=action, speed=speed, t=t),
                          self._answered)
        if action == "stop":
            self.ended = True
            self.said.emit(self.tr("Training session ended; trainees are being scored"))

    def _speed(self) -> float:
        """"play" sets the speed too: keep the one the session has."""
        if self.status is not None:
            return self.status.speed
        return float(self.bar.speed.currentData() or 1.0)

    def _answered(self, reply: object) -> None:
        self._asked_at = None
        if isinstance(reply, CommandReply) and not reply.ok:
            self.said.emit(self.tr("Replay refused: {0}").format(reply.error))
            return
        if not isinstance(reply, ReplayStatus) or not self.active:
            return
        if reply.error:
            self.said.emit(self.tr("Replay: {0}").format(reply.error))
        if self.status is not None and reply.t < self.status.t:
            self.rewound()
        self.status = reply
        self.bar.show_status(reply)
        if self.ended:
            self.bar.clear()
            self.bar.progress.setText(self.tr("session ended"))
        self.status_changed.emit(reply)

    # -------------------------------------------------------------- trails
    def on_positions(self, x: np.ndarray, y: np.ndarray) -> None:
        """A frame's positions (map metres): into the trails, and on the map
        when it is time to redraw."""
        if not self.active:
            return
        self.trails.add(self.now(), x, y)
        mono = time.monotonic()
        if mono - self._drawn_at >= DRAW_S:
            self._drawn_at = mono
            self.map.set_trails(*self.trails.segments())

    def rewound(self) -> None:
        """The replay went back in time: the trails so far are of another run."""
        self.trails.reset()
        self.map.clear_trails()
