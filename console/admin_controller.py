"""Glue between the camera admin widgets and the engine, owned by the window.

The console never touches the camera table: listing, saving and importing
are requests to the engine (``CameraListRequest``, ``SaveCamera``,
``ImportCameras``), sent through the bus worker's feed with the admin's
session token; the engine checks the role and every field, writes, and
publishes the new registry (``cam.registry``) to every console.

``LiveFeed.send`` returns a number the reply carries as ``ref``; the window
hands each reply of a frame to ``on_reply``, which takes the ones it is
waiting for.  A request the engine has not answered in time is reported
(the panel or dialog becomes usable again); if its answer still comes, it
is shown then.

The import file is read here, on the GUI thread: it is bounded
(``MAX_IMPORT_BYTES``) and local, and the engine does the slow part.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, Protocol

from PySide6.QtCore import QEvent, QObject, QTimer

from models.camera_admin import CameraEdit, edit_record, row_of_record
from models.messages import (
    MAX_IMPORT_BYTES,
    AnyMessage,
    CameraImportResult,
    CameraListRequest,
    CameraRows,
    CameraSaved,
    CommandReply,
    ImportCameras,
    SaveCamera,
)
from widgets.camera_admin import CameraAdminPanel
from widgets.import_dialog import ImportDialog

log = logging.getLogger(__name__)

Kind = Literal["load", "save", "import"]
# How long to wait for the engine before telling the admin; an import of a
# city registry takes the engine seconds, not minutes.
ANSWER_S: dict[Kind, float] = {"load": 15.0, "save": 15.0, "import": 180.0}
WAITING = "The engine is checking and writing the rows (one transaction)…"


class CommandSink(Protocol):
    """``console.feed.LiveFeed`` as far as the controller needs it."""

    def send(self, command: AnyMessage) -> int: ...


@dataclass
class _Pending:
    kind: Kind
    sent_at: float
    overdue: bool = False  # reported as unanswered; still shown if it comes


class CameraAdmin(QObject):
    """Connects ``CameraAdminPanel`` and ``ImportDialog`` to the engine."""

    def __init__(self, feed: CommandSink, token: Callable[[], str],
                 panel: CameraAdminPanel, dialog: ImportDialog,
                 parent: QObject | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        super().__init__(parent)
        self.feed = feed
        self.token = token
        self.panel = panel
        self.dialog = dialog
        self.clock = clock
        self.loaded_once = False
        self.pending: dict[int, _Pending] = {}  # ref -> what it asked
        self._stale = False  # the registry changed since the table was loaded
        self._timer = QTimer(self)
        self._timer.setInterval(1000)
        self._timer.timeout.connect(self.check_overdue)
        panel.save_requested.connect(self.save)
        panel.reload_requested.connect(self.refresh)
        panel.import_requested.connect(self.open_import)
        dialog.import_requested.connect(self.start_import)
        panel.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Load the table when the panel is shown and it is not (or no longer)
        current, not at start-up: most operators never open it, and a
        console must start fast."""
        if (watched is self.panel and event.type() == QEvent.Type.Show
                and (not self.loaded_once or self._stale) and not self._waiting_for("load")):
            self.refresh()
        return False

    # ------------------------------------------------------------ window API
    def refresh(self) -> None:
        """Ask the engine for the table (one request at a time: a change seen
        while one is out asks again when it is answered)."""
        if self._waiting_for("load"):
            self._stale = True
            return
        self._stale = False
        self._send("load", CameraListRequest(token=self.token()))

    def registry_changed(self) -> None:
        """The engine published a new registry (a save, an import, another
        admin): reload a table that has been loaded, now if it is shown,
        else when it is shown next."""
        if not self.loaded_once:
            return
        if self.panel.isVisible():
            self.refresh()
        else:
            self._stale = True

    def reset(self) -> None:
        """The session changed (signed out, another user): forget the table
        and what was asked, so the next user sees only what the engine
        gives them; it is asked again when the panel is shown."""
        kinds = {p.kind for p in self.pending.values() if not p.overdue}
        self.pending.clear()
        if "save" in kinds:
            self.panel.show_error("The session ended before the engine answered: check the "
                                  "camera once the table is loaded again.")
        if "import" in kinds:
            self.dialog.show_error("The session ended before the engine answered; the "
                                   "import may still finish: check the camera table.")
        self._timer.stop()
        self.loaded_once = False
        self._stale = False
        self.panel.show_cameras([])
        self.panel.show_status("")
        if self.panel.isVisible():
            self.refresh()

    def open_import(self) -> None:
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()

    def on_reply(self, reply: object) -> bool:
        """Take ``reply`` if it answers one of this controller's requests
        (True), else leave it to the window (False)."""
        ref = getattr(reply, "ref", 0)
        pending = self.pending.pop(ref, None) if ref else None
        if pending is None:
            return False
        if not self.pending:
            self._timer.stop()
        if pending.kind == "load":
            self._loaded(reply)
        elif pending.kind == "save":
            self._saved(reply)
        else:
            self._imported(reply)
        return True

    # --------------------------------------------------------------- actions
    def save(self, edit: CameraEdit) -> None:
        self._send("save", SaveCamera(token=self.token(), edit=edit_record(edit)))

    def start_import(self, path: str, allow_partial: bool) -> None:
        name = Path(path).name
        try:
            size = Path(path).stat().st_size
            if size > MAX_IMPORT_BYTES:
                self._too_large(name, size)
                return
            with open(path, "rb") as f:
                data = f.read(MAX_IMPORT_BYTES + 1)
        except OSError as exc:
            self.dialog.show_error(f"Cannot read {name}: {exc.strerror or exc}. "
                                   "Nothing was written.")
            return
        if len(data) > MAX_IMPORT_BYTES:  # grew since it was measured
            self._too_large(name, len(data))
            return
        self._send("import", ImportCameras(token=self.token(), filename=name, data=data,
                                           allow_partial=allow_partial))
        self.dialog.show_phase(WAITING)

    def check_overdue(self) -> None:
        """Tell the admin about requests the engine has not answered in time."""
        now = self.clock()
        for p in self.pending.values():
            if p.overdue or now - p.sent_at < ANSWER_S[p.kind]:
                continue
            p.overdue = True
            silent = f"the engine has not answered in {ANSWER_S[p.kind]:.0f} s"
            if p.kind == "load":
                self.panel.show_status(f"Could not load cameras: {silent}.")
            elif p.kind == "save":
                self.panel.show_error(f"Not saved yet: {silent}. If it still answers, "
                                      "the result is shown here.")
            else:
                self.dialog.show_error(f"No answer yet: {silent}. The import may still "
                                       "finish; if it does, its report is shown here.")

    # -------------------------------------------------------------- internals
    def _send(self, kind: Kind, request: AnyMessage) -> None:
        ref = self.feed.send(request)
        self.pending[ref] = _Pending(kind, self.clock())
        if not self._timer.isActive():
            self._timer.start()

    def _waiting_for(self, kind: Kind) -> bool:
        return any(p.kind == kind and not p.overdue for p in self.pending.values())

    def _too_large(self, name: str, size: int) -> None:
        self.dialog.show_error(f"{name} is {size / 2**20:.1f} MiB; an import takes at most "
                               f"{MAX_IMPORT_BYTES // 2**20} MiB. Split the file. "
                               "Nothing was written.")

    def _loaded(self, reply: object) -> None:
        if isinstance(reply, CameraRows):
            self.loaded_once = True
            self.panel.show_cameras([row_of_record(r) for r in reply.rows])
        else:
            self.panel.show_status(f"Could not load cameras: {_error(reply)}")
        if self._stale and self.panel.isVisible():
            self.refresh()

    def _saved(self, reply: object) -> None:
        if isinstance(reply, CameraSaved):
            self.panel.show_saved(row_of_record(reply.row))
        else:
            self.panel.show_error(f"Not saved: {_error(reply)}.")

    def _imported(self, reply: object) -> None:
        if isinstance(reply, CameraImportResult):
            if reply.unreadable:
                self.dialog.show_error(reply.message)
            else:
                self.dialog.show_report(reply)
        else:
            self.dialog.show_error(f"Not imported: {_error(reply)}. Nothing was written.")


def _error(reply: object) -> str:
    if isinstance(reply, CommandReply):
        return reply.error.rstrip(".") or f"refused ({reply.code})"
    log.warning("unexpected camera admin reply %s", type(reply).__name__)
    return f"unexpected answer {type(reply).__name__}"
