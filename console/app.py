"""The operator console's window: live map, alert queue, CCTV grid and status bar.

The window owns no bus socket: ``LiveFeed`` does all I/O in its worker
thread, and a timer on the GUI thread takes one coalesced frame per tick
(30 per second) and hands it to the widgets.

The CCTV grid always shows something on purpose (``console.cctv_focus``):
a new alert fills it with its best cameras without a click (P1 SOS first)
unless the operator is working an alert they located; locating an alert
does the same and follows its child; Ctrl+click or "Cameras here" on the
map ranks the cameras around any point.  The grid's title and the status
bar say which alert or point it shows.

Video needs the ``view`` token the engine gave this console at sign-in
(``SignedIn.media_token``, sent to the relay as ``?t=``): signed out, no
tile plays and the grid says to sign in; signing in again plays the grid's
cameras with the new token. Cameras an operator opens for an alert (locating
it, or the cameras around a point while working it) are told to the engine
(``CamerasViewed``), which writes them in the alert's history: the audit
of CCTV use.

In a training session (``config.training``) the window says so at once: a
TRAINING banner, the theme's training colours (the ``training`` property),
"TRAINING ·" in the title, clocks on the session's replayed time
(``LiveFeed.now``), and CCTV tiles that say there is no video instead of
showing black. A trainer also gets the replay bar and every child's trail
(``console.replay_controller``). On the live console a trainer gets the
Training tab instead, to pick, start and end sessions
(``console.training_panel_controller``).
"""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path
from urllib.parse import quote

import numpy as np
from PySide6.QtCore import QCoreApplication, QEvent, Qt, QTimer
from PySide6.QtGui import QCloseEvent
from PySide6.QtWidgets import (
    QApplication,
    QFileDialog,
    QFrame,
    QMainWindow,
    QPushButton,
    QSplitter,
    QTabWidget,
    QVBoxLayout,
    QWidget,
)

from console.admin_controller import CameraAdmin
from console.admin_services_controller import AdminServices
from console.alarm import AlarmPlayer
from console.cctv_focus import GridFocus, alert_label, has_position, pick_alert
from console.child_card_controller import ChildCardController
from console.config import Config
from console.feed import Frame, LiveFeed
from console.privacy_controller import PrivacyController
from console.replay_controller import ReplayController
from console.session import Session
from console.theme import apply_theme
from console.training import player
from console.training_panel_controller import TrainingPanelController
from models.cameras import CameraIndex
from models.geo import place_name, to_map, to_wgs84
from models.messages import (
    AlertCommand,
    AlertDetail,
    AlertDetailRequest,
    AlertView,
    AssignAlert,
    CamerasViewed,
    CameraView,
    CommandReply,
    RecordEvidence,
    ShiftReport,
    ShiftRequest,
    SignedIn,
    ZoneView,
)
from models.zones import zone_outline
from widgets.alert_panel import AlertPanel
from widgets.alert_queue import AlertQueue
from widgets.approvals_panel import ApprovalsPanel
from widgets.camera_admin import CameraAdminPanel
from widgets.cctv_grid import CctvGrid
from widgets.cctv_tile import ElidedLabel
from widgets.child_card import ChildCardPanel
from widgets.escalation_panel import EscalationPanel
from widgets.gateway_panel import GatewayPanel
from widgets.health_strip import HealthStrip
from widgets.import_dialog import ImportDialog
from widgets.map_view import MapView
from widgets.replay_bar import ReplayBar, TrainingBanner
from widgets.reveal_view import RevealView
from widgets.sign_in import SignInDialog
from widgets.status_strip import StatusStrip
from widgets.usage_log_view import UsageLogView

FRAME_MS = 33
SHIFT_POLL_S = 10.0  # the supervisor's panel refreshes its shift figures this often
SHIFT_S = 12 * 3600.0  # ... over the last shift
IDLE_SOURCE = "Ctrl+click the map for the cameras there"


class ConsoleWindow(QMainWindow):
    def __init__(self, config: Config, feed: LiveFeed | None = None,
                 parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.config = config
        self.feed = feed if feed is not None else LiveFeed(config)
        # The theme's training colours hang on this ([training="true"]).
        self.setProperty("training", "true" if config.training else "false")
        self.setWindowTitle(self._title(self.tr("Child Safety Control Console")))
        self.sign_in_dialog = SignInDialog(self)
        self.session = Session(self.feed, self.sign_in_dialog, self, training=config.training)
        self.session.changed.connect(self._signed)
        self.session.otherwise = self._unclaimed
        self.map = MapView()
        self.alerts = AlertQueue()
        self.panel = AlertPanel(clock=self.feed.now)
        self.alarm = AlarmPlayer(self)
        # The supervisor's panel is a window of its own (a second screen in a
        # control room): its tables and charts need more room than a tab.
        self.escalation = EscalationPanel(clock=None)
        self.escalation_window = QWidget(self, Qt.WindowType.Window)
        self.escalation_window.setWindowTitle(self._title(self.tr("Escalation — supervisor")))
        box = QVBoxLayout(self.escalation_window)
        box.setContentsMargins(0, 0, 0, 0)
        box.setSpacing(0)
        if config.training:
            box.addWidget(TrainingBanner())
        box.addWidget(self.escalation)
        self.escalation_window.resize(1280, 820)
        self.escalation_button = QPushButton(self.tr("Escalation"))
        self.escalation_button.setObjectName("escalationButton")
        self.escalation_button.setToolTip(self.tr("The supervisor's escalation panel (Ctrl+E)"))
        self.escalation_button.setShortcut("Ctrl+E")
        self.escalation_button.clicked.connect(self.open_escalation)
        self.gateway = GatewayPanel()
        self.status = StatusStrip()
        self.health_strip = HealthStrip()
        self.user_button = QPushButton(self.tr("Signed out"))
        self.user_button.setObjectName("userButton")
        self.user_button.setToolTip(self.tr("Sign out, or switch user (Ctrl+Shift+L)"))
        self.user_button.setShortcut("Ctrl+Shift+L")
        self.user_button.clicked.connect(self.session.sign_out)
        self.mute_low = QPushButton(self.tr("Mute P3–P4"))
        self.mute_low.setObjectName("muteLow")
        self.mute_low.setCheckable(True)
        self.mute_low.setToolTip(self.tr("Silence P3 and P4 alert tones on this console; "
                                         "P1 and P2 always sound"))
        self.mute_low.toggled.connect(self.alarm.set_mute_low)
        self.status.addPermanentWidget(self.escalation_button)
        self.status.addPermanentWidget(self.mute_low)
        self.status.addPermanentWidget(self.user_button)
        # The right column is the work: the queue over the selected alert (or the
        # supervisor's, the gateway's or the admin's tab); the left column is
        # what the operator looks at: the map over the CCTV grid.
        self.work_split = QSplitter(Qt.Orientation.Vertical)
        self.work_split.addWidget(self.alerts)
        # The selected alert beside the child card: of a child clicked on the
        # map, or of the selected alert's child (console.child_card_controller).
        self.child_card = ChildCardPanel()
        self.detail_tabs = QTabWidget()
        self.detail_tabs.setObjectName("detailTabs")
        self.detail_tabs.addTab(self.panel, self.tr("Alert"))
        self.detail_tabs.addTab(self.child_card, self.tr("Child"))
        self.work_split.addWidget(self.detail_tabs)
        # A child's identity under a reveal, below the alert: shown only while
        # there is one to show (the card clears itself when the grant ends).
        self.reveal_view = RevealView()
        self.work_split.addWidget(self.reveal_view)
        self.reveal_view.hide()
        self.work_split.setSizes([330, 570, 0])
        self.side = QTabWidget()
        self.side.addTab(self.work_split, self.tr("Alerts"))
        self.side.addTab(self.gateway, self.tr("Gateway"))
        self.camera_panel = CameraAdminPanel()
        self.side.addTab(self.camera_panel, self.tr("Cameras"))
        # Privacy: the supervisor's approvals beside the queue; the auditor's
        # usage log (an auditor's console shows nothing live: see _signed).
        self.approvals = ApprovalsPanel()
        self.side.addTab(self.approvals, self.tr("Approvals"))
        self.usage_log = UsageLogView()
        self.side.addTab(self.usage_log, self.tr("Usage log"))
        self.privacy = PrivacyController(self.session, self.panel, self.reveal_view,
                                         self.approvals, self.usage_log, parent=self,
                                         dialog_parent=self, ask_path=self._usage_path)
        self.camera_admin = CameraAdmin(self.session, lambda: self.session.token,
                                        self.camera_panel, ImportDialog(self), parent=self)
        # The admin's Zones and Enrolment tabs (shown to admins only) and the
        # map's zone editor, which only the Zones tab starts.
        self.admin_services = AdminServices.attach(self.session, self.side, self.map, self)
        # A trainer's Training tab (live consoles only): start and end sessions.
        self.training = TrainingPanelController.attach(self.session, self.side, config, self)
        if self.training is not None:
            self.training.said.connect(self.status.say)
        self.cctv = CctvGrid(tiles=4, snapshot_dir=config.data_dir / "evidence" / "snapshots")
        self.left_split = QSplitter(Qt.Orientation.Vertical)
        self.left_split.addWidget(self.map)
        self.left_split.addWidget(self.cctv)
        self.left_split.setSizes([520, 400])
        split = QSplitter(Qt.Orientation.Horizontal)
        split.addWidget(self.left_split)
        split.addWidget(self.side)
        split.setStretchFactor(0, 1)
        split.setStretchFactor(1, 1)
        split.setSizes([830, 770])
        # The health strip is a thin row under the work, just above the status
        # bar: seen at a glance, no room taken from the map, CCTV or queue.
        central = QFrame()
        central.setObjectName("consoleCentral")
        column = QVBoxLayout(central)
        column.setContentsMargins(0, 0, 0, 0)
        column.setSpacing(0)
        # Training: the banner on every console, the replay bar for a trainer.
        self.banner: TrainingBanner | None = None
        self.replay_bar: ReplayBar | None = None
        self.replay: ReplayController | None = None
        if config.training:
            self.banner = TrainingBanner()
            self.replay_bar = ReplayBar(speeds=player.SPEEDS, step_s=player.STEP_S)
            self.replay_bar.hide()
            self.replay = ReplayController(self.session, self.replay_bar, self.map,
                                           self.feed.now, self)
            self.replay.said.connect(self.status.say)
            self.cctv.set_placeholder(self.tr("no video in training"))
            column.addWidget(self.banner)
            column.addWidget(self.replay_bar)
        column.addWidget(split, 1)
        column.addWidget(self.health_strip)
        self.setCentralWidget(central)
        self.setStatusBar(self.status)
        self.alerts.locate_requested.connect(self.locate)
        self.alerts.selected.connect(self._selected)
        self.child_cards = ChildCardController(self.session, self.child_card, self.map,
                                               positions=lambda: (self._x, self._y),
                                               token_of=self.feed.token_of, parent=self)
        self.alerts.selected.connect(self.child_cards.alert_selected)
        self.child_cards.card_wanted.connect(
            lambda: self.detail_tabs.setCurrentWidget(self.child_card))
        self.child_cards.status.connect(self.status.say)
        self.panel.command_requested.connect(self.command)
        self.panel.detail_needed.connect(self._ask_detail)
        self.panel.cameras_requested.connect(self.locate)
        self.panel.trail_ready.connect(self._draw_trail)
        self.reveal_view.trail_ready.connect(self._draw_trail)
        self.reveal_view.active_changed.connect(self._reveal_room)
        self.privacy.forgotten.connect(self._identity_forgotten)
        self.privacy.status.connect(self.status.say)
        self.approvals.pending_changed.connect(self._approvals_waiting)
        self.escalation.reassign_requested.connect(self._reassign)
        self.escalation.export_requested.connect(self._export_handover)
        self.cctv.snapshot_taken.connect(self.file_snapshot)
        self.cctv.state_changed.connect(self._tile_state)
        self.map.cameras_requested.connect(self.cameras_here)
        # Elided: a long place name must not widen the window (and shift the map).
        self.cctv_source = ElidedLabel("", keep=80)
        self.cctv_source.setObjectName("cctvSource")
        self.cctv_source.setMaximumWidth(520)
        self.status.addPermanentWidget(self.cctv_source)
        self.cctv.set_source(IDLE_SOURCE, MapView.HINT)
        self.cameras = CameraIndex.from_cameras([])
        self.camera_names: dict[int, str] = {}
        self._camera_states: dict[int, tuple[str, str]] = {}
        self._offline: set[int] = set()
        self._camera_list: list[CameraView] = []
        self._zones: list[ZoneView] = []
        self._zone_counts: dict[int, tuple[int, int]] = {}
        self.grid_focus: GridFocus | None = None
        self._focus_xy: tuple[float, float] | None = None  # a point's, for re-ranking
        self._alerts_by_id: dict[int, AlertView] = {}
        self._seen_alerts: set[int] = set()
        self._followed_xy: tuple[float, float] | None = None
        self.followed_slot = -1
        self._x = np.empty(0)
        self._y = np.empty(0)
        self._marker_status = np.empty(0, dtype=np.uint8)
        self._alert_rows: list[AlertView] = []
        self._live = True  # map, queue and cameras shown (not an auditor-only console)
        self.open_alerts = 0
        self.frames = 0
        self.timer = QTimer(self)
        self.timer.setInterval(FRAME_MS)
        self.timer.timeout.connect(self.apply_frame)
        self.second = QTimer(self)  # clocks on screen: ages, SLA countdowns, shift figures
        self.second.setInterval(1000)
        self.second.timeout.connect(self._each_second)
        self._shift_asked = 0.0
        self._last_state = ""
        self._signed(None)

    def start(self, sign_in: tuple[str, str] | None = None) -> None:
        """Start the bus worker and the clocks; sign in as ``sign_in`` (the
        demo's operator) or ask who is at the console."""
        self.feed.start()
        self.timer.start()
        self.second.start()
        if sign_in is not None:
            self.session.sign_in(*sign_in)
        else:
            self.sign_in_dialog.ask()

    # -------------------------------------------------------------- session
    def _signed(self, who: SignedIn | None) -> None:
        """Show what this user may do; the engine still checks every command."""
        s = self.session
        if who is None:
            self.user_button.setText(self.tr("Signed out"))
            self.setWindowTitle(self._title(self.tr("Child Safety Control Console")))
        else:
            self.user_button.setText(f"{who.user} · {', '.join(who.roles)}")
            self.setWindowTitle(self._title(
                self.tr("Child Safety Control Console — {0}").format(who.user)))
        roles = list(s.roles)
        self.alerts.set_user(s.user, roles)
        self.panel.set_user(s.user, roles)
        self.escalation_button.setVisible(s.may("req.shift"))
        if not s.may("req.shift"):
            self.escalation_window.hide()
        self.side.setTabVisible(self.side.indexOf(self.camera_panel), s.may("cmd.camera"))
        # An auditor reads the usage log and nothing live: no map, no cameras,
        # no queue of where children are, no device ids (the gateway's list).
        # Nor does a trainer on the live console (the Training tab is theirs);
        # in a session, the replayed picture is what they train with.
        withheld = {"auditor"} if self.config.training else {"auditor", "trainer"}
        self._set_live(who is None or bool(s.roles - withheld))
        self.side.setTabVisible(self.side.indexOf(self.gateway), self._live)
        self.side.setTabVisible(self.side.indexOf(self.approvals),
                                s.may("cmd.decide_reveal"))
        self.side.setTabVisible(self.side.indexOf(self.usage_log), s.may("req.usage"))
        # The queue for who works alerts; an admin's console opens on the
        # registry instead (the map still shows where alerts are).
        # A trainer in a session watches the trainees' queue (read-only: the
        # engine refuses a trainer's alert commands) and drives the replay.
        trainer = self.replay is not None and "trainer" in s.roles
        works = (s.may("req.alerts") and self._live) or who is None or trainer
        self.side.setTabVisible(self.side.indexOf(self.work_split), works)
        if not works:
            self.side.setCurrentWidget(self.camera_panel if s.may("cmd.camera")
                                       else self.usage_log if s.may("req.usage")
                                       else self.gateway)
        if self.replay is not None and self.replay_bar is not None:
            self.replay_bar.setVisible(trainer)
            if trainer:
                self.replay.start()
            else:
                self.replay.stop()
        self.camera_admin.reset()
        self.privacy.reset()
        self.child_cards.reset()
        self.detail_tabs.setTabVisible(self.detail_tabs.indexOf(self.child_card),
                                       s.may("req.child_card"))
        self._shift_asked = 0.0
        if not self.may_view_video():
            # A signed-out console plays no camera; the grid keeps its alert
            # (snapshots stay its evidence) for whoever signs in next.
            self.cctv.show_cameras([], alert_id=self.cctv.alert_id)
        else:
            self._refocus()  # the grid's cameras again, with this session's token
        self._say_source()
        if who is not None and self.panel.alert is not None:
            self._ask_detail(self.panel.alert.id)  # asked before the sign-in, refused then

    def _title(self, text: str) -> str:
        """A window's title; in training it says so first."""
        return self.tr("TRAINING · {0}").format(text) if self.config.training else text

    def _set_live(self, live: bool) -> None:
        """Show the live picture (map, CCTV, queue), or withhold it from an
        auditor-only console: the widgets are emptied, not just hidden, and
        get nothing until someone who works alerts signs in."""
        if live == self._live:
            return
        self._live = live
        self.left_split.setVisible(live)
        if live:
            if len(self._x) == len(self._marker_status):
                self.map.set_positions(self._x, self._y, self._marker_status)
            self.alerts.set_alerts(self._alert_rows)
            return
        empty = np.empty(0)
        self.map.set_positions(empty, empty, np.empty(0, dtype=np.uint8))
        self.map.clear_trail()
        self.map.clear_highlight()
        self.alerts.set_alerts([])
        self.panel.show_alert(None)
        self.followed_slot = -1
        self._followed_xy = None
        self.grid_focus = None
        self._focus_xy = None
        self.cctv.clear()
        self.status.say("")  # it may name a child or a place

    def _usage_path(self, name: str) -> str:
        """Where the auditor saves a usage-log export ("" if cancelled)."""
        path, _ = QFileDialog.getSaveFileName(self, self.tr("Export the location-usage log"),
                                              str(self.config.data_dir / name), "CSV (*.csv)")
        return path

    def _reveal_room(self, active: bool) -> None:
        """Make room for the identity card under the alert, or give it back."""
        self.reveal_view.setVisible(active)
        if active and self.work_split.sizes()[2] < 120:
            queue, panel, _ = self.work_split.sizes()
            self.work_split.setSizes([max(queue - 60, 150), max(panel - 200, 300), 260])

    def _identity_forgotten(self, _child: str) -> None:
        """The card cleared a child's identity: a trail it drew goes too (the
        shown alert's own trail is asked for again)."""
        self.map.clear_trail()
        if self.panel.alert is not None and self._live:
            self._ask_detail(self.panel.alert.id)

    def _approvals_waiting(self, count: int) -> None:
        index = self.side.indexOf(self.approvals)
        self.side.setTabText(index, self.tr("Approvals · {0}").format(count) if count
                             else self.tr("Approvals"))

    def command(self, cmd: AlertCommand) -> None:
        """An action from the alert panel: to the engine, the answer to the panel."""
        self.session.send(cmd, self._command_answered)

    def _command_answered(self, reply: object) -> None:
        if isinstance(reply, CommandReply) and not reply.ok:
            self.panel.show_refusal(reply.error)
        self._reply_said(reply)

    def _unclaimed(self, reply: object) -> None:
        if not self.camera_admin.on_reply(reply):
            self._reply_said(reply)

    def _reply_said(self, reply: object) -> None:
        if isinstance(reply, CommandReply):
            if reply.ok and reply.alert is not None:
                a = reply.alert
                self.status.say(f"Alert {a.id} {a.state.replace('_', ' ')}")
            elif not reply.ok:
                self.status.say(f"Refused: {reply.error}")

    def _selected(self, alert: AlertView | None) -> None:
        self.panel.show_alert(alert)
        if alert is None:
            self.map.clear_trail()

    def _ask_detail(self, alert_id: int) -> None:
        def show(reply: object) -> None:
            if isinstance(reply, AlertDetail):
                self.panel.show_detail(reply)
        self.session.send(AlertDetailRequest(token="", alert_id=alert_id), show)

    def _draw_trail(self, lat: np.ndarray, lon: np.ndarray) -> None:
        if len(lat):
            x, y = to_map(np.asarray(lat), np.asarray(lon))
            self.map.set_trail(x, y)
        else:
            self.map.clear_trail()

    def _reassign(self, alert_id: int, version: int, user: str) -> None:
        self.command(AssignAlert(token="", alert_id=alert_id, alert_version=version, user=user))

    def _each_second(self) -> None:
        now = self.feed.now()  # a training session's replayed time, else the wall's
        if self.banner is not None:
            clock = self.feed.replay_clock()
            if clock is None:
                self.banner.show_session("", None)
            else:
                t, speed, title = clock
                self.banner.show_session(title, t, speed)
        self.alerts.tick(now)
        self.panel.tick(now)
        if self.session.may("req.shift") and now - self._shift_asked >= SHIFT_POLL_S:
            self._shift_asked = now
            since = now - SHIFT_S
            self.session.send(ShiftRequest(token="", since=since),
                              lambda reply: self._shift(reply, since))
        self.escalation.tick(now)
        self.privacy.tick(now)
        self.child_cards.tick(now)

    def _shift(self, reply: object, since: float) -> None:
        """The shift report: who a supervisor may assign to, and the panel's figures."""
        if not isinstance(reply, ShiftReport):
            return
        self.panel.set_assignable([s.user for s in reply.staff if "operator" in s.roles
                                   or "supervisor" in s.roles])
        if self.escalation_window.isVisible():
            self.escalation.show_report(reply, since, self.feed.now())

    def open_escalation(self) -> None:
        """Show the supervisor's panel and fill it now."""
        self.escalation_window.show()
        self.escalation_window.raise_()
        self._shift_asked = 0.0
        self._each_second()

    def _export_handover(self, fmt: str) -> None:
        suffix = "csv" if fmt == "csv" else "html"
        default = self.config.data_dir / f"handover-{time.strftime('%Y%m%d-%H%M')}.{suffix}"
        path, _ = QFileDialog.getSaveFileName(self.escalation_window,
                                              self.tr("Save the hand-over report"),
                                              str(default), f"*.{suffix}")
        if path:
            rows = self.escalation.write_handover(Path(path), fmt, self.session.user)
            self.status.say(f"Hand-over report: {rows} open alerts written to {path}")

    # --------------------------------------------------------------- frames
    def apply_frame(self) -> None:
        frame: Frame = self.feed.take()
        self.frames += 1
        if frame.zones is not None:
            self._zones = frame.zones
            self.map.set_zones([(z.name, z.lat, z.lon, z.radius_m, zone_outline(z))
                                for z in frame.zones])
            frame.zone_counts = frame.zone_counts or self._zone_counts
        if frame.zone_counts is not None:
            self._zone_counts = frame.zone_counts
            self.map.set_zone_counts([frame.zone_counts.get(z.id) for z in self._zones])
        self.admin_services.on_frame(frame)
        if frame.readers is not None:
            self.map.set_readers([(r.name, r.lat, r.lon, r.range_m) for r in frame.readers])
        if frame.cameras is not None:
            self._camera_list = frame.cameras
            self._index_cameras()
            self.camera_names = {c.id: c.name for c in frame.cameras}
            self.camera_admin.registry_changed()
        if frame.camera_states is not None:
            for camera_id, (state, detail) in frame.camera_states.items():
                if self._camera_states.get(camera_id) != (state, detail):
                    self.cctv.set_camera_state(camera_id, state, detail)
            self._camera_states = frame.camera_states
            self._offline = {c for c, (state, _) in frame.camera_states.items()
                             if state == "offline"}
        if frame.cameras is not None or frame.camera_states is not None:
            self._draw_cameras()
        if frame.x is not None and frame.y is not None and frame.status is not None:
            self._x, self._y, self._marker_status = frame.x, frame.y, frame.status
            if self._live:
                self.map.set_positions(frame.x, frame.y, frame.status)
                self._follow()
                if self.replay is not None:
                    self.replay.on_positions(frame.x, frame.y)
        if frame.alerts is not None:
            rows: list[AlertView] = frame.alerts  # type: ignore[assignment]
            self._alert_rows = rows
            self.open_alerts = sum(1 for a in rows if a.state != "resolved")
            if self._live:
                self.alerts.set_alerts(rows)
                self.alarm.update(rows)
                self._alerts_arrived(rows)
        if self.side.currentWidget() is self.gateway:
            self.gateway.show_stats(frame.gateway_stats)
            self.gateway.show_unregistered(frame.unregistered)
        self.session.deliver(frame.replies)
        self.child_cards.on_notices(frame.notices)
        if frame.state.value == "DEGRADED" and self._last_state != "DEGRADED":
            self.alarm.cue(2)  # heard, not only seen: something is held back or down
        self._last_state = frame.state.value
        self.status.show_state(frame.state.value, frame.fixes_per_s, frame.children,
                               self.open_alerts, frame.degraded)
        self.health_strip.show_health(frame.health, frame.health_summary)

    # ------------------------------------------------------------- commands
    def locate(self, alert: AlertView) -> None:
        """Centre on the alert's child — where it is now if we know, else
        where the alert was raised — keep it highlighted as it moves, and
        show its cameras: the operator is working this alert now."""
        x, y = self._alert_xy(alert)
        if np.isfinite(x):
            self.map.center_on(x, y)
            self.status.say(f"Following {alert.child_token} ({alert.place})")
            self._show_alert(alert, located=True)

    def cameras_here(self, x: float, y: float) -> None:
        """The operator asked for the cameras around map point (x, y) metres
        (Ctrl+click or "Cameras here"): rank them there and fill the grid.

        Following stops (the ring marks the point instead).  Snapshots stay
        evidence of the alert the operator is working, if any, and a new
        alert does not take the grid from them meanwhile.
        """
        if not (np.isfinite(x) and np.isfinite(y)):
            return
        working = self.grid_focus if self.grid_focus and self.grid_focus.located else None
        self.followed_slot = -1
        self._followed_xy = None
        self.map.highlight(x, y)
        label = f"cameras around {self._place_at(x, y)}"
        self.grid_focus = GridFocus("point", working.alert_id if working else None,
                                    located=working is not None, label=label)
        self._focus_xy = (x, y)
        self.cctv.show_cameras(self._ranked_feeds(x, y, None),
                               alert_id=working.alert_id if working else None)
        if working is not None and working.alert_id is not None:
            self._viewed(working.alert_id)
        self._say_source()
        self.status.say("Showing the cameras around the point")

    def _place_at(self, x: float, y: float) -> str:
        lat, lon = to_wgs84(np.array([x]), np.array([y]))
        try:
            place = place_name(float(lat[0]), float(lon[0]))
        except ValueError:
            place = ""
        return place or f"{float(lat[0]):.5f}, {float(lon[0]):.5f}"

    def _alerts_arrived(self, rows: list[AlertView]) -> None:
        """Fill the grid with a new alert's cameras when `pick_alert` says so
        (the map stays where the operator left it)."""
        self._alerts_by_id = {a.id: a for a in rows}
        new = [a for a in rows if a.id not in self._seen_alerts and a.state == "new"
               and has_position(a, self._child_xy(a.child_slot))]
        self._seen_alerts.update(self._alerts_by_id)
        chosen = pick_alert(new, self.grid_focus, self._alerts_by_id)
        if chosen is not None:
            self._show_alert(chosen, located=False)
            self.status.say(f"New P{chosen.priority} alert {chosen.id}: its cameras are shown")

    def _show_alert(self, alert: AlertView, *, located: bool) -> None:
        """Fill the grid with the alert's cameras and follow its child."""
        x, y = self._alert_xy(alert)
        if not np.isfinite(x):
            return
        self.followed_slot = alert.child_slot
        self._followed_xy = (x, y)
        self._focus_xy = None
        self.map.highlight(x, y)
        self.grid_focus = GridFocus("alert", alert.id, alert.priority, located,
                                    alert_label(alert))
        self.cctv.show_cameras(self._ranked_feeds(x, y, None), alert_id=alert.id)
        if located:  # the operator's choice, not the console filling the grid by itself
            self._viewed(alert.id)
        self._say_source()

    def _viewed(self, alert_id: int) -> None:
        """Tell the engine which cameras were opened for the alert (its
        history keeps who looked at what: the audit of CCTV use)."""
        shown = [c for c in self.cctv.cameras_shown() if c is not None]
        if shown and self.session.may("cmd.viewed"):
            self.session.send(CamerasViewed(token="", alert_id=alert_id, camera_ids=shown),
                              self._reply_said)

    def _say_source(self) -> None:
        label = self.grid_focus.label if self.grid_focus else ""
        if not self.may_view_video():
            text = self.tr("Sign in to view cameras")
            self.cctv.set_source(text, text)
        else:
            self.cctv.set_source(label or IDLE_SOURCE, label or MapView.HINT)
        self.cctv_source.setText(f"CCTV: {label}" if label else "")

    def _refocus(self) -> None:
        """Rank the grid's alert or point again (the registry changed)."""
        focus = self.grid_focus
        if focus is None:
            return
        if focus.kind == "point" and self._focus_xy is not None:
            x, y = self._focus_xy
        elif focus.alert_id in self._alerts_by_id:
            x, y = self._alert_xy(self._alerts_by_id[focus.alert_id])
        else:
            return
        if np.isfinite(x):
            self.cctv.show_cameras(self._ranked_feeds(x, y, None), alert_id=self.cctv.alert_id)

    def _alert_xy(self, alert: AlertView) -> tuple[float, float]:
        """Where the alert's child is now if we know, else where it was raised."""
        x, y = self._child_xy(alert.child_slot)
        if not np.isfinite(x):
            ax, ay = to_map(np.array([alert.lat]), np.array([alert.lon]), allow_nan=True)
            x, y = float(ax[0]), float(ay[0])
        return x, y

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
        """The grid's cameras for a point: playable ones only, live preferred;
        none while this console may not view video (signed out)."""
        if not self.may_view_video():
            return []
        ranked = self.cameras.rank_xy(x, y, heading, k=self.cctv.tile_count,
                                      offline=self._offline)
        return [(r.camera_id, self.camera_names.get(r.camera_id, str(r.camera_id)),
                 self.relay_url(r.camera_id)) for r in ranked]

    def _tile_state(self, _camera_id: int, state: str) -> None:
        """A tile that lost its stream may have lost it to the relay cutting
        a session that ended (``console.media.tokens``): ask the engine now,
        not at the next periodic check, so the console signs out at once."""
        if state == "offline":
            self.session.check_soon()

    def media_token(self) -> str:
        """This session's relay token ("" when signed out, or when the engine
        runs without security and issues none)."""
        current = self.session.current
        return current.media_token if current is not None else ""

    def may_view_video(self) -> bool:
        """Whether the relay will play for this console: it holds a token, or
        security is off (the relay then asks for none)."""
        return self.config.bus_security != "curve" or bool(self.media_token())

    def relay_url(self, camera_id: int) -> str:
        """The camera's MPEG-TS URL at the relay, with this session's token
        (libvlc can be given nothing but a URL)."""
        url = f"http://{self.config.relay_host}:{self.config.relay_port}/cam/{camera_id}.ts"
        token = self.media_token()
        return f"{url}?t={quote(token, safe='')}" if token else url

    def _index_cameras(self) -> None:
        self.cameras = CameraIndex.from_cameras(self._camera_list)

    def _draw_cameras(self) -> None:
        if not self._camera_list:
            return
        x, y = to_map(np.array([c.lat for c in self._camera_list]),
                      np.array([c.lon for c in self._camera_list]))
        offline = np.array([self._camera_states.get(c.id, ("unknown", ""))[0] == "offline"
                            for c in self._camera_list])
        self.map.set_cameras(x, y, list(self.cameras.cone_rings()), offline,
                             ~self.cameras.playable, self.cameras.ids)

    def file_snapshot(self, camera_id: int, path: str) -> None:
        """A frame the operator saved becomes evidence through the engine."""
        self.session.send(RecordEvidence(token="", alert_id=self.cctv.alert_id,
                                         camera_id=camera_id, path=path))
        self.status.say(f"Snapshot of camera {camera_id} saved as evidence")

    def closeEvent(self, event: QCloseEvent) -> None:
        self.escalation_window.close()
        self.sign_in_dialog.close()  # a dialog left open would keep the keyboard
        self.timer.stop()
        self.second.stop()
        if self.replay is not None:
            self.replay.stop()
        if self.training is not None:
            self.training.close()
        self.alarm.close()
        if self.session.current is not None:
            self.session.sign_out_quietly()
        self.feed.stop()
        super().closeEvent(event)


def run_console(config: Config, sign_in: tuple[str, str] | None = None) -> int:
    """Open the console window; returns when it is closed or on SIGINT/SIGTERM.
    ``sign_in`` (user, password) signs in without the dialog (the demo)."""
    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    app.setApplicationName("childsafe")
    apply_theme(app)
    window = ConsoleWindow(config)
    window.resize(1600, 960)
    window.show()
    window.map.fit_seoul()
    window.start(sign_in)

    def _quit(*_: object) -> None:
        window.close()
        app.exit(0)

    signal.signal(signal.SIGINT, _quit)
    signal.signal(signal.SIGTERM, _quit)
    # Let the interpreter run signal handlers while Qt's loop is in C++; and
    # end when this window is closed, even if another top-level window is
    # still open (a detached video wall, a sign-in dialog). exit(), not
    # quit(): Qt 6's quit() asks every window to close and gives up when one
    # declines, which left the loop running with the console closed.
    wake = QTimer()
    wake.start(200)
    wake.timeout.connect(lambda: None if window.isVisible() else app.exit(0))
    app.exec()
    wake.stop()
    # gone for good: nothing of it (a dialog, an active window) outlives it
    for widget in (window.sign_in_dialog, window.escalation_window, window):
        widget.close()
        widget.deleteLater()
    QCoreApplication.sendPostedEvents(None, QEvent.Type.DeferredDelete)
    return 0
