"""Glue between the camera admin widgets and the store, owned by the window.

Every job (load, save, import) runs on a worker thread, never the GUI
thread: a city registry import takes seconds and even one query can stall
behind a busy SQLite writer.  Jobs run one at a time, in order, so a reload
queued after a save sees the save.  The worker is a plain thread that lives
only while jobs are queued, so an idle console holds no extra thread.
Results and progress come back as Qt signals of a bridge object that lives
on the GUI thread, so they are delivered there (queued connections).

After anything that changed the camera table the controller sends
``ReloadCameras``: the engine re-reads the registry and publishes
``cam.registry`` to every console, so maps and rankings follow.
"""

from __future__ import annotations

import logging
import threading
from collections import deque
from collections.abc import Callable
from pathlib import Path
from typing import Protocol

from PySide6.QtCore import QEvent, QObject, Qt, Signal

from console import camera_admin as jobs
from db.importers.cameras import CameraCsvError, ImportReport
from models.camera_admin import CameraEdit, CameraRow
from models.messages import AnyMessage, ReloadCameras
from widgets.camera_admin import CameraAdminPanel
from widgets.import_dialog import ImportDialog

log = logging.getLogger(__name__)


class CommandSink(Protocol):
    """``console.feed.LiveFeed`` as far as the controller needs it."""

    def send(self, command: AnyMessage) -> None: ...


class StoreConfig(Protocol):
    db_url: str
    operator: str


class JobRunner:
    """Runs callables one at a time on a short-lived worker thread."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._jobs: deque[Callable[[], None]] = deque()
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None

    def submit(self, job: Callable[[], None]) -> None:
        with self._lock:
            self._jobs.append(job)
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()

    def _run(self) -> None:
        while True:
            with self._lock:
                if not self._jobs:
                    self._thread = None
                    return
                job = self._jobs.popleft()
            try:
                job()
            except Exception:  # a job reports its own errors; this is a last resort
                log.exception("camera admin job failed")

    def busy(self) -> bool:
        with self._lock:
            return self._thread is not None

    def join(self, timeout_s: float = 30.0) -> bool:
        """Wait for queued jobs (an import must finish its transaction); True when idle."""
        with self._lock:
            thread = self._thread
        if thread is not None:
            thread.join(timeout_s)
            return not thread.is_alive()
        return True


class _Bridge(QObject):
    """Lives on the GUI thread; the worker emits, the GUI thread receives."""

    loaded = Signal(object)  # list[CameraRow]
    saved = Signal(object)  # CameraRow
    save_failed = Signal(str)
    progress = Signal(int, int)
    imported = Signal(object)  # ImportReport
    import_failed = Signal(str)
    load_failed = Signal(str)


class CameraAdmin(QObject):
    """Connects ``CameraAdminPanel`` and ``ImportDialog`` to the store jobs."""

    def __init__(self, window_feed: CommandSink, config: StoreConfig,
                 panel: CameraAdminPanel, dialog: ImportDialog,
                 parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.feed = window_feed
        self.config = config
        self.panel = panel
        self.dialog = dialog
        self.runner = JobRunner("camera-admin")
        self.loaded_once = False
        self._first_load_asked = False
        self._bridge = _Bridge(self)
        queued = Qt.ConnectionType.QueuedConnection
        self._bridge.loaded.connect(self._loaded, queued)
        self._bridge.load_failed.connect(panel.show_status, queued)
        self._bridge.saved.connect(self._saved, queued)
        self._bridge.save_failed.connect(panel.show_error, queued)
        self._bridge.progress.connect(dialog.set_progress, queued)
        self._bridge.imported.connect(self._imported, queued)
        self._bridge.import_failed.connect(dialog.show_error, queued)
        panel.save_requested.connect(self.save)
        panel.reload_requested.connect(self.refresh)
        panel.import_requested.connect(self.open_import)
        dialog.import_requested.connect(self.start_import)
        panel.installEventFilter(self)

    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        """Load the table the first time the panel is shown, not at start-up:
        most operators never open it, and a console must start fast."""
        if (watched is self.panel and event.type() == QEvent.Type.Show
                and not self.loaded_once and not self._first_load_asked):
            self._first_load_asked = True
            self.refresh()
        return False

    # ------------------------------------------------------------ window API
    def refresh(self) -> None:
        """Reload the table from the store (off the GUI thread)."""
        self.runner.submit(self._load_job)

    def registry_changed(self) -> None:
        """The engine published a new registry (another admin, an import):
        reload if the table has been shown, so it never looks stale."""
        if self.loaded_once:
            self.refresh()

    def open_import(self) -> None:
        self.dialog.show()
        self.dialog.raise_()
        self.dialog.activateWindow()

    def close(self) -> None:
        """Let a running import finish its transaction before the window goes."""
        if not self.runner.join():
            log.warning("camera admin job still running at shutdown")

    # ------------------------------------------------------------------ jobs
    def save(self, edit: CameraEdit) -> None:
        self.runner.submit(lambda: self._save_job(edit))

    def start_import(self, path: str, allow_partial: bool) -> None:
        self.runner.submit(lambda: self._import_job(path, allow_partial))

    def _load_job(self) -> None:
        try:
            rows = jobs.load_cameras(self.config.db_url)
        except Exception as exc:
            log.exception("loading cameras failed")
            self._bridge.load_failed.emit(f"Could not load cameras: {exc}")
            return
        self._bridge.loaded.emit(rows)

    def _save_job(self, edit: CameraEdit) -> None:
        try:
            row = jobs.save_camera(self.config.db_url, edit)
        except jobs.CameraEditError as exc:
            self._bridge.save_failed.emit("Not saved: " + "; ".join(exc.problems) + ".")
            return
        except Exception as exc:
            log.exception("saving camera %s failed", edit.id)
            self._bridge.save_failed.emit(f"Not saved: the store refused ({exc}).")
            return
        self._bridge.saved.emit(row)

    def _import_job(self, path: str, allow_partial: bool) -> None:
        try:
            report = jobs.import_file(self.config.db_url, Path(path),
                                      self._bridge.progress.emit, allow_partial)
        except CameraCsvError as exc:
            self._bridge.import_failed.emit(f"{Path(path).name}: {exc}. Nothing was written.")
            return
        except Exception as exc:
            log.exception("importing %s failed", path)
            self._bridge.import_failed.emit(f"The import failed and was rolled back: {exc}")
            return
        self._bridge.imported.emit(report)

    # --------------------------------------------------- results (GUI thread)
    def _loaded(self, rows: list[CameraRow]) -> None:
        self.loaded_once = True
        self.panel.show_cameras(rows)

    def _saved(self, row: CameraRow) -> None:
        self.panel.show_saved(row)
        self._registry_changed_here()

    def _imported(self, report: ImportReport) -> None:
        self.dialog.show_report(report)
        if report.committed:
            self._registry_changed_here()
            self.refresh()

    def _registry_changed_here(self) -> None:
        self.feed.send(ReloadCameras(operator=self.config.operator))
