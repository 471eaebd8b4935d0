"""The operator console's window: live map, alert queue and status bar.

The window owns no bus socket: ``LiveFeed`` does all I/O in its worker
thread, and a timer on the GUI thread takes one coalesced frame per tick
(30 per second) and hands it to the widgets.
"""

from __future__ import annotations

import signal
import sys

import numpy as np
from PySide6.QtCore import Qt, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import QApplication, QMainWindow, QSplitter, QTabWidget, QWidget

from console.admin_controller import CameraAdmin
from console.config import Config
from console.feed import Frame, LiveFeed
from console.theme import apply_theme
from models.cameras import CameraIndex
from models.geo import to_map
from models.messages import AckAlert, AlertView, CameraView, RecordEvidence
from widgets.alert_queue import AlertQueue
from widgets.camera_admin import CameraAdminPanel
from widgets.cctv_grid import CctvGrid
from widgets.gateway_panel import GatewayPanel
from widgets.import_dialog import ImportDialog
from widgets.map_view import MapView
from widgets.status_strip import StatusStrip

FRAME_MS = 33


class ConsoleWindow(QMainWindow):
    def __init__(self, config: Config, feed: LiveFeed | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.config = config
        self.feed = feed if feed is not None else LiveFeed(config)
        self.setWindowTitle(f"Child Safety Control Console — {config.operator}")
        self.map = MapView()
        self.alerts = AlertQueue()
        self.gateway = GatewayPanel()
        self.status = StatusStrip()
        self.side = QTabWidget()
        self.side.addTab(self.alerts, "Alerts")
        self.side.addTab(self.gateway, "Gateway")
        self.camera_panel = CameraAdminPanel()
        self.side.addTab(self.camera_panel, "Cameras")
        self.camera_admin = CameraAdmin(self.feed, config, self.camera_panel, ImportDialog(self),
                                        parent=self)
        self.cctv = CctvGrid(tiles=4, snapshot_dir=config.data_dir / "evidence" / "snapshots")
        right = QSplitter(Qt.Orientation.Vertical)
        right.addWidget(self.side)
        right.addWidget(self.cctv)
        right.setSizes([380, 560])
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.map)
        split.addWidget(right)
        split.setStretchFactor(0, 3)
        split.setStretchFactor(1, 2)
        split.setSizes([1000, 600])
        self.setCentralWidget(split)
        self.setStatusBar(self.status)
        self.alerts.acknowledge_requested.connect(self.acknowledge)
        self.alerts.locate_requested.connect(self.locate)
        self.cctv.snapshot_taken.connect(self.file_snapshot)
        self.cameras = CameraIndex.from_cameras([])
        self.camera_names: dict[int, str] = {}
        self._camera_states: dict[int, tuple[str, str]] = {}
        self._camera_list: list[CameraView] = []
        self._followed_xy: tuple[float, float] | None = None
        self.followed_slot = -1
        self._x = np.empty(0)
        self._y = np.empty(0)
        self.open_alerts = 0
        self.frames = 0
        self.timer = QTimer(self)
        self.timer.setInterval(FRAME_MS)
        self.timer.timeout.connect(self.apply_frame)

    def start(self) -> None:
        self.feed.start()
        self.timer.start()

    # --------------------------------------------------------------- frames
    def apply_frame(self) -> None:
        frame: Frame = self.feed.take()
        self.frames += 1
        if frame.zones is not None:
            self.map.set_zones([(z.name, z.lat, z.lon, z.radius_m) for z in frame.zones])
        if frame.readers is not None:
            self.map.set_readers([(r.name, r.lat, r.lon, r.range_m) for r in frame.readers])
        if frame.cameras is not None:
            self._camera_list = frame.cameras
            self.cameras = CameraIndex.from_cameras(frame.cameras)
            self.camera_names = {c.id: c.name for c in frame.cameras}
            self.camera_admin.registry_changed()
        if frame.camera_states is not None:
            for camera_id, (state, detail) in frame.camera_states.items():
                if self._camera_states.get(camera_id) != (state, detail):
                    self.cctv.set_camera_state(camera_id, state, detail)
            self._camera_states = frame.camera_states
        if frame.cameras is not None or frame.camera_states is not None:
            self._draw_cameras()
        if frame.x is not None and frame.y is not None and frame.status is not None:
            self._x, self._y = frame.x, frame.y
            self.map.set_positions(frame.x, frame.y, frame.status)
            self._follow()
        if frame.alerts is not None:
            rows: list[AlertView] = frame.alerts  # type: ignore[assignment]
            self.alerts.set_alerts(rows)
            self.open_alerts = sum(1 for a in rows if a.state == "open")
        if self.side.currentWidget() is self.gateway:
            self.gateway.show_stats(frame.gateway_stats)
            self.gateway.show_unregistered(frame.unregistered)
        for reply in frame.replies:
            if reply.ok and reply.alert is not None:
                self.status.say(f"Alert {reply.alert.id} {reply.alert.state}")
            elif not reply.ok:
                self.status.say(f"Command refused: {reply.error}")
        self.status.show_state(frame.state.value, frame.fixes_per_s, frame.children,
                               self.open_alerts)

    # ------------------------------------------------------------- commands
    def acknowledge(self, alert_id: int) -> None:
        self.feed.send(AckAlert(alert_id=alert_id, operator=self.config.operator))
        self.status.say(f"Acknowledging alert {alert_id}…")

    def locate(self, alert: AlertView) -> None:
        """Centre on the alert's child — where it is now if we know, else
        where the alert was raised — and keep it highlighted as it moves."""
        self.followed_slot = alert.child_slot
        x, y = self._child_xy(alert.child_slot)
        if not np.isfinite(x):
            ax, ay = to_map(np.array([alert.lat]), np.array([alert.lon]), allow_nan=True)
            x, y = float(ax[0]), float(ay[0])
        if np.isfinite(x):
            self.map.center_on(x, y)
            self.map.highlight(x, y)
            self.status.say(f"Following {alert.child_token} ({alert.place})")
            self._followed_xy = (x, y)
            self.cctv.show_cameras(self._ranked_feeds(x, y, None), alert_id=alert.id)

    def _child_xy(self, slot: int) -> tuple[float, float]:
        if 0 <= slot < len(self._x):
            return float(self._x[slot]), float(self._y[slot])
        return float("nan"), float("nan")

    def _follow(self) -> None:
        """Keep the followed child ringed, and its cameras re-ranked as it
        moves, preferring cameras it walks toward (the grid hands over)."""
        x, y = self._child_xy(self.followed_slot)
        if not np.isfinite(x):
            return
        self.map.highlight(x, y)
        last = self._followed_xy
        if last is not None and (x, y) != last:
            heading = float(np.degrees(np.arctan2(x - last[0], y - last[1])) % 360)
            self.cctv.follow_cameras(self._ranked_feeds(x, y, heading))
        self._followed_xy = (x, y)

    def _ranked_feeds(self, x: float, y: float,
                      heading: float | None) -> list[tuple[int, str, str]]:
        ranked = self.cameras.rank_xy(x, y, heading, k=self.cctv.tile_count)
        return [(r.camera_id, self.camera_names.get(r.camera_id, str(r.camera_id)),
                 self.relay_url(r.camera_id)) for r in ranked]

    def relay_url(self, camera_id: int) -> str:
        return f"http://{self.config.relay_host}:{self.config.relay_port}/cam/{camera_id}.ts"

    def _draw_cameras(self) -> None:
        if not self._camera_list:
            return
        x, y = to_map(np.array([c.lat for c in self._camera_list]),
                      np.array([c.lon for c in self._camera_list]))
        offline = np.array([self._camera_states.get(c.id, ("unknown", ""))[0] == "offline"
                            for c in self._camera_list])
        self.map.set_cameras(x, y, list(self.cameras.cone_rings()), offline)

    def file_snapshot(self, camera_id: int, path: str) -> None:
        """A frame the operator saved becomes evidence through the engine."""
        self.feed.send(RecordEvidence(alert_id=self.cctv.alert_id, camera_id=camera_id,
                                      path=path, operator=self.config.operator))
        self.status.say(f"Snapshot of camera {camera_id} saved as evidence")

    def closeEvent(self, event: QCloseEvent) -> None:
        self.timer.stop()
        self.feed.stop()
        super().closeEvent(event)


def run_console(config: Config) -> int:
    """Open the console window; returns when it is closed or on SIGINT/SIGTERM."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("childsafe")
    apply_theme(app)
    window = ConsoleWindow(config)
    window.resize(1600, 960)
    window.show()
    window.map.fit_seoul()
    window.start()

    def _quit(*_: object) -> None:
        window.close()
        app.quit()

    signal.signal(signal.SIGINT, _quit)
    signal.signal(signal.SIGTERM, _quit)
    # Let the interpreter run signal handlers while Qt's loop is in C++.
    wake = QTimer()
    wake.start(200)
    wake.timeout.connect(lambda: None)
    app.exec()
    wake.stop()
    return 0
