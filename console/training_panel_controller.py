"""Glue between the trainer's Training tab and ``console.training_launcher``,
owned by the live console's window.

Only a live console has the tab (a training console is already inside a
session), and only a signed-in trainer sees it: it becomes their current
tab, since a trainer has nothing else to do on the live console. What the
tab shows is read when it is shown and after a session ends (the scenarios,
the live tape's recorded period, the past reports; Refresh reads them
again); the session's state is asked every ``POLL_MS`` while a trainer is
signed in (a few small reads: a pid file, ``/proc``, a socket connect).

Starting, ending (it waits for the session to score and write its report,
up to a minute) and the listings run on one worker thread, never the GUI
thread; their results come back through a queued signal. One request at a
time: the panel's buttons are disabled meanwhile. Closing the console does
not end a session (trainees may be working in it); an ending already under
way finishes before the process exits.

The session runs as the signed-in trainer (``--by``, for the live usage
log) on the settings this console runs with.
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import Any, Protocol

from PySide6.QtCore import QObject, QTimer, QUrl, Signal
from PySide6.QtGui import QDesktopServices
from PySide6.QtWidgets import QTabWidget

from console.config import Config
from console.training.player import SPEEDS
from console.training_launcher import Launch, LaunchError, SessionState, TrainingLauncher
from models.scenario import Scenario
from widgets.training_panel import StartChoice, TrainingPanel

log = logging.getLogger(__name__)

POLL_MS = 2000


class SessionLike(Protocol):
    """``console.session.Session`` as far as the tab needs it."""

    @property
    def user(self) -> str: ...
    @property
    def roles(self) -> frozenset[str]: ...


class TrainingPanelController(QObject):
    said = Signal(str)  # for the status bar
    _done = Signal(object, object)  # (what to do with it, the finished Future)

    def __init__(self, session: SessionLike, panel: TrainingPanel, launcher: TrainingLauncher,
                 parent: QObject | None = None,
                 open_url: Callable[[QUrl], bool] = QDesktopServices.openUrl) -> None:
        super().__init__(parent)
        self.session = session
        self.panel = panel
        self.launcher = launcher
        self.open_url = open_url
        self.tabs: QTabWidget | None = None
        self.state = SessionState()
        self._pool: ThreadPoolExecutor | None = None
        self._timer = QTimer(self)
        self._timer.setInterval(POLL_MS)
        self._timer.timeout.connect(self.poll)
        self._done.connect(self._finish)
        panel.start_requested.connect(self.start)
        panel.stop_requested.connect(self.stop)
        panel.console_requested.connect(self.open_console)
        panel.report_requested.connect(self.open_report)
        panel.refresh_requested.connect(self.refresh)

    @classmethod
    def attach(cls, session: Any, tabs: QTabWidget, config: Config,
               parent: QObject) -> TrainingPanelController | None:
        """The Training tab in ``tabs`` for a live console (None in training),
        following the session (``Session.changed``)."""
        if config.training:
            return None
        panel = TrainingPanel(speeds=SPEEDS)
        tabs.addTab(panel, panel.tr("Training"))
        controller = cls(session, panel, TrainingLauncher(config), parent)
        controller.tabs = tabs
        session.changed.connect(lambda _who: controller.session_changed())
        controller.session_changed()
        return controller

    # ------------------------------------------------------------ session
    def session_changed(self) -> None:
        """A trainer gets the tab (current) and its state followed; anyone
        else neither."""
        trainer = "trainer" in self.session.roles
        if self.tabs is not None:
            self.tabs.setTabVisible(self.tabs.indexOf(self.panel), trainer)
            if trainer:
                self.tabs.setCurrentWidget(self.panel)
        self.panel.show_message("")
        if trainer:
            self.poll()
            self.refresh()
            self._timer.start()
        else:
            self._timer.stop()

    def poll(self) -> None:
        """The session's state into the panel; after it ends, the reports again."""
        before = self.state
        try:
            now = self.launcher.state()
        except OSError as exc:  # a data dir gone or unreadable: say so, keep polling
            self.panel.show_message(f"Cannot read the training session's state: {exc}")
            return
        self._show(now)
        if before.active and not now.active:
            self.refresh()

    def _show(self, state: SessionState) -> None:
        self.state = state
        self.panel.show_state(state.phase, state.title, state.detail, state.pid,
                              state.started_at, state.ours)

    # ----------------------------------------------------------- requests
    def refresh(self) -> None:
        """Read the scenarios, the tape's period and the reports (off the GUI thread)."""
        def read() -> tuple[list[Scenario], str, tuple[float, float] | None, list[Any]]:
            try:
                scenarios, error = self.launcher.scenarios(), ""
            except LaunchError as exc:
                scenarios, error = [], str(exc)
            return scenarios, error, self.launcher.span(), self.launcher.reports()

        def show(got: tuple[list[Scenario], str, tuple[float, float] | None, list[Any]]
                 ) -> None:
            scenarios, error, span, reports = got
            self.panel.set_scenarios(scenarios, error)
            self.panel.set_span(span, self.launcher.config.local_utc_offset_s)
            self.panel.show_reports(reports)

        self._run(read, show, busy=False)

    def start(self, choice: StartChoice) -> None:
        launch = Launch(choice.scenario, choice.t0, choice.t1, choice.speed, choice.paused,
                        by=self.session.user)

        def started(state: SessionState) -> None:
            self._show(state)
            self.said.emit(f"Training session starting: {state.title}")

        self._run(lambda: self.launcher.start(launch), started)

    def stop(self) -> None:
        self._show(SessionState("ending", self.state.title, self.state.pid,
                                self.state.started_at, self.state.ours))

        def ended(state: SessionState) -> None:
            self._show(state)
            self.said.emit(f"Training session ended: {state.detail}")
            self.refresh()

        self._run(self.launcher.stop, ended)

    def open_console(self) -> None:
        self._run(self.launcher.open_console,
                  lambda pid: self.said.emit(f"Training console opened (pid {pid})"),
                  busy=False)

    def open_report(self, path: Path) -> None:
        if not self.open_url(QUrl.fromLocalFile(str(path))):
            self.panel.show_message(f"Nothing on this workstation opens {path}: open it "
                                    "from a file manager")

    # ------------------------------------------------------------- worker
    def _run(self, work: Callable[[], Any], then: Callable[[Any], None],
             busy: bool = True) -> None:
        """``work`` on the worker thread; ``then`` its result on the GUI thread."""
        if self._pool is None:
            self._pool = ThreadPoolExecutor(1, thread_name_prefix="training-launcher")
        if busy:
            self.panel.set_busy(True)
        future = self._pool.submit(work)
        future.add_done_callback(lambda f: self._emit_done((then, busy), f))

    def _emit_done(self, then: tuple[Callable[[Any], None], bool], future: Future[Any]) -> None:
        with contextlib.suppress(RuntimeError):  # the window is gone: nobody to tell
            self._done.emit(then, future)

    def _finish(self, then: tuple[Callable[[Any], None], bool], future: Future[Any]) -> None:
        handle, busy = then
        if busy:
            self.panel.set_busy(False)
        try:
            result = future.result()
        except LaunchError as exc:
            self.panel.show_message(str(exc))
            self.poll()
            return
        except Exception as exc:  # said on the panel, never lost
            log.exception("training launcher")
            self.panel.show_message(f"It did not work: {exc}")
            self.poll()
            return
        handle(result)

    def close(self) -> None:
        """Stop polling; a request under way finishes (an ending must not be
        cut short), then the worker goes."""
        self._timer.stop()
        if self._pool is not None:
            self._pool.shutdown(wait=False)
            self._pool = None
        self.launcher.close()
