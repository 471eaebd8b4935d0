"""The CCTV grid: 1, 2×2 or 3×3 live tiles of the cameras nearest an alert,
with follow mode and a detachable video wall.

Why it works this way:

- Opening an alert calls ``show_cameras`` with the ranked cameras; tiles
  are filled in rank order.  Later rankings (``follow_cameras``, while the
  child moves) keep every camera that is still wanted in the tile where it
  already plays, and put new cameras only into tiles whose camera dropped
  out: restarting a stream costs a second of black, so a handover restarts
  only the tiles that change, and those show a cue.
- Follow updates are coalesced to one per ``FOLLOW_MIN_INTERVAL_S``: a
  ranking that flaps as the child walks along a street must not thrash
  libvlc.
- One timer polls every tile's player on the GUI thread (libvlc is never
  touched from another thread); it runs only while a tile shows a camera.
- ``detach()`` moves the tile area into a ``VideoWall`` top-level window
  (on the second screen when there is one); closing the wall docks it back.
  The native video windows are reparented, not recreated; if Qt ever hands
  out a new window id, the affected players are re-pointed at it.

- ``set_placeholder(text)`` plays nothing and says ``text`` in each tile
  under its camera's name (a training session has no video relay): the
  ranking and the tiles' names stay, so a trainee still sees which cameras
  they opened.

``python -m widgets.cctv_grid URL [URL …]`` runs the grid alone.
"""

from __future__ import annotations

import logging
import math
import re
import sys
import tempfile
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

import vlc
from PySide6.QtCore import QCoreApplication, Qt, QTimer, Signal
from PySide6.QtGui import QCloseEvent, QGuiApplication, QKeySequence, QShortcut
from PySide6.QtWidgets import (
    QButtonGroup,
    QGridLayout,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QVBoxLayout,
    QWidget,
)

from widgets.cctv_tile import CameraFeed, CctvTile, ElidedLabel

log = logging.getLogger(__name__)

LAYOUTS = (1, 4, 9)
LAYOUT_TEXT = {1: "1", 4: "2×2", 9: "3×3"}
POLL_MS = 250
FOLLOW_MIN_INTERVAL_S = 2.0

# libvlc options for many small live streams in one process.  No audio, no
# on-screen title or snapshot preview drawn over the evidence picture, no
# Xlib (Qt owns the X connection; libvlc uses its own xcb one), and a short
# network cache: an operator wants the picture now, not smooth.
VLC_ARGS: tuple[str, ...] = (
    "--no-xlib",
    "--quiet",
    "--no-audio",
    "--network-caching=300",
    "--no-video-title-show",
    "--no-snapshot-preview",
    "--snapshot-format=png",
    "--no-osd",
    "--no-spu",
    "--stats",  # decoder counters drive stall detection
    # Without XVideo or GL (Xvfb, thin clients) libvlc scales each picture
    # to the tile in software; fast bilinear instead of bicubic costs a third
    # less CPU for a 1-up tile, and snapshots keep the stream's resolution.
    "--swscale-mode=0",
)


def embeds_video() -> bool:
    """libvlc can draw into Qt's windows only on X11 (``set_xwindow``).

    On other platforms (offscreen tests, Wayland) the players still connect
    and decode, so states and snapshots work, but show no picture.
    """
    return QGuiApplication.platformName() == "xcb"


def plan_tiles(current: Sequence[int | None], wanted: Iterable[int], count: int
               ) -> list[int | None]:
    """Which camera each of the first ``count`` tiles should show.

    ``current[i]`` is tile i's camera now, ``wanted`` the ranking (best
    first).  Cameras of the top ``count`` that already play stay in their
    tile; the others fill the freed tiles in rank order, lowest tile first.
    Pure, so the handover rule is tested without a display.
    """
    top: list[int] = []
    for cam in wanted:
        if cam not in top:
            top.append(cam)
        if len(top) == count:
            break
    keep = set(top)
    plan: list[int | None] = [
        cam if cam in keep else None
        for cam in list(current[:count]) + [None] * max(count - len(current), 0)
    ]
    placed = {cam for cam in plan if cam is not None}
    incoming = iter(cam for cam in top if cam not in placed)
    return [cam if cam is not None else next(incoming, None) for cam in plan]


class VideoWall(QWidget):
    """A top-level window for the tiles, meant for a second monitor.

    Closing it docks the tiles back into the grid (``closed``).
    """

    closed = Signal()

    def __init__(self) -> None:
        super().__init__(None, Qt.WindowType.Window)
        self.setObjectName("videoWall")
        self.setWindowTitle("childsafe — CCTV video wall")
        self.box = QVBoxLayout(self)
        self.box.setContentsMargins(0, 0, 0, 0)
        QShortcut(QKeySequence("Escape"), self, self.close)

    def show_on_best_screen(self) -> None:
        """Full screen on the second monitor if there is one, else a large window."""
        screens = QGuiApplication.screens()
        primary = QGuiApplication.primaryScreen()
        others = [s for s in screens if s is not primary]
        if others:
            self.setGeometry(others[0].geometry())
            self.showFullScreen()
        else:
            self.resize(1280, 760)
            self.show()

    def closeEvent(self, event: QCloseEvent) -> None:
        self.closed.emit()
        super().closeEvent(event)


class CctvGrid(QWidget):
    """The CCTV panel; see the module docstring.

    Signals: ``snapshot_taken(camera_id, path)`` (evidence for ``alert_id``),
    ``state_changed(camera_id, state)``, ``follow_changed(bool)``,
    ``layout_changed(tiles)``, ``detached_changed(bool)``.
    """

    snapshot_taken = Signal(int, str)
    state_changed = Signal(int, str)
    follow_changed = Signal(bool)
    layout_changed = Signal(int)
    detached_changed = Signal(bool)

    def __init__(self, parent: QWidget | None = None, *, tiles: int = 4,
                 vlc_args: Sequence[str] = VLC_ARGS, snapshot_dir: Path | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("cctvGrid")
        if tiles not in LAYOUTS:
            raise ValueError(f"tiles must be one of {LAYOUTS}")
        self.alert_id: int | None = None
        self.snapshot_dir = snapshot_dir or Path(tempfile.gettempdir()) / "childsafe-evidence"
        args = list(vlc_args)
        if not embeds_video():  # nothing to draw into: decode only, never open a window
            args.append("--vout=dummy")
        self._instance = vlc.Instance(args)
        if self._instance is None:
            raise RuntimeError("libvlc could not start (is vlc-plugin-base installed?)")
        self._count = tiles
        self._ranking: list[CameraFeed] = []
        self._pending: list[CameraFeed] | None = None
        self._last_follow = -math.inf
        self._relay: dict[int, tuple[str, str]] = {}
        self.tiles: list[CctvTile] = []
        self._wall: VideoWall | None = None
        self._released = False
        self._placeholder = ""

        # toolbar
        self.title = ElidedLabel("CCTV", keep=40)
        self.title.setObjectName("panelTitle")
        self.title.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.layout_buttons = QButtonGroup(self)
        bar = QHBoxLayout()
        bar.setContentsMargins(0, 0, 0, 0)
        bar.addWidget(self.title, 1)
        for n in LAYOUTS:
            b = QPushButton(LAYOUT_TEXT[n])
            b.setObjectName("cctvLayoutButton")
            b.setCheckable(True)
            b.setToolTip(f"Show {n} camera{'s' if n > 1 else ''}")
            b.setFocusPolicy(Qt.FocusPolicy.NoFocus)
            self.layout_buttons.addButton(b, n)
            bar.addWidget(b)
        self.layout_buttons.idClicked.connect(self.set_layout)
        self.follow_button = QPushButton("Follow")
        self.follow_button.setObjectName("cctvFollowButton")
        self.follow_button.setCheckable(True)
        self.follow_button.setChecked(True)
        self.follow_button.setToolTip("Re-rank the cameras as the child moves and hand over")
        self.follow_button.toggled.connect(self._follow_toggled)
        self.detach_button = QPushButton("Detach")
        self.detach_button.setObjectName("cctvDetachButton")
        self.detach_button.setToolTip("Move the video to its own window (second monitor)")
        self.detach_button.clicked.connect(self.toggle_detached)
        bar.addWidget(self.follow_button)
        bar.addWidget(self.detach_button)

        # tile area (what moves to the video wall)
        self.area = QWidget()
        self.area.setObjectName("cctvArea")
        self.grid = QGridLayout(self.area)
        self.grid.setContentsMargins(0, 0, 0, 0)
        self.grid.setSpacing(4)
        self.placeholder = QLabel("Video is on the video wall.")
        self.placeholder.setObjectName("cctvPlaceholder")
        self.placeholder.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.placeholder.hide()

        self.box = QVBoxLayout(self)
        self.box.setContentsMargins(4, 4, 4, 4)
        self.box.setSpacing(4)
        self.box.addLayout(bar)
        self.box.addWidget(self.area, 1)
        self.box.addWidget(self.placeholder, 1)

        self._poll = QTimer(self)
        self._poll.setInterval(POLL_MS)
        self._poll.timeout.connect(self.poll)
        self._follow_timer = QTimer(self)
        self._follow_timer.setSingleShot(True)
        self._follow_timer.timeout.connect(self._apply_pending)
        app = QCoreApplication.instance()
        if app is not None:  # stop libvlc before the X windows go away
            app.aboutToQuit.connect(self.release)
        self._arrange(tiles)

    # ------------------------------------------------------------------ queries

    @property
    def tile_count(self) -> int:
        return self._count

    @property
    def follow(self) -> bool:
        return self.follow_button.isChecked()

    @property
    def is_detached(self) -> bool:
        return self._wall is not None

    @property
    def wall(self) -> VideoWall | None:
        return self._wall

    def visible_tiles(self) -> list[CctvTile]:
        return self.tiles[: self._count]

    def cameras_shown(self) -> list[int | None]:
        return [t.camera_id for t in self.visible_tiles()]

    # ------------------------------------------------------------------ cameras

    def show_cameras(self, cameras: Iterable[tuple[int, str, str]], *,
                     alert_id: int | None = None) -> list[int]:
        """Show the ranked cameras ``(camera_id, name, url)``, best first; return
        the indices of tiles whose player (re)started.

        Call it when an alert opens or to replace the cameras outright; it
        applies whatever the follow mode.  ``alert_id`` is the alert the
        snapshots are evidence for (None: no alert), in file names and in
        ``self.alert_id`` for the window that files them.
        """
        self._pending = None
        self._follow_timer.stop()
        self.alert_id = alert_id
        for tile in self.tiles:
            tile.alert_id = self.alert_id
        self._ranking = [CameraFeed(*c) for c in cameras]
        return self._apply(handover=True)

    def follow_cameras(self, cameras: Iterable[tuple[int, str, str]]) -> bool:
        """A new ranking as the child moves: applied only in follow mode, at most
        once per ``FOLLOW_MIN_INTERVAL_S`` (the latest wins).  Returns True if
        it was applied now, False if it waits or follow mode is off."""
        self._pending = [CameraFeed(*c) for c in cameras]
        if not self.follow:
            return False
        wait = self._last_follow + FOLLOW_MIN_INTERVAL_S - time.monotonic()
        if wait > 0:
            if not self._follow_timer.isActive():
                self._follow_timer.start(int(wait * 1000) + 1)
            return False
        self._apply_pending()
        return True

    def clear(self) -> None:
        """Stop every tile (the alert closed)."""
        self._ranking = []
        self._pending = None
        self.alert_id = None
        self._apply(handover=False)

    def set_camera_state(self, camera_id: int, state: str, detail: str = "") -> None:
        """Apply a ``cam.status`` from the media relay to the tile showing that camera
        (remembered for cameras shown later)."""
        self._relay[camera_id] = (state, detail)
        for tile in self.visible_tiles():
            if tile.camera_id == camera_id:
                tile.set_relay_state(state, detail)

    def set_source(self, text: str, tooltip: str = "") -> None:
        """Say in the title what the tiles show (which alert, which point)."""
        self.title.setText(f"CCTV · {text}" if text else "CCTV")
        self.title.setToolTip(tooltip or text)

    def source(self) -> str:
        """What the title says the tiles show ("" when nothing in particular)."""
        full = self.title.full_text()
        return full.removeprefix("CCTV · ") if full != "CCTV" else ""

    def set_placeholder(self, text: str) -> None:
        """Play nothing; each tile says ``text`` under its camera's name ("":
        play again)."""
        self._placeholder = text
        for tile in self.tiles:
            tile.set_placeholder(text)
        self._apply(handover=False)

    @property
    def no_video_text(self) -> str:
        """What the tiles say instead of playing ("" when they play)."""
        return self._placeholder

    def take_snapshot(self, tile_index: int) -> Path | None:
        """Snapshot of one tile (the buttons do the same)."""
        return self.tiles[tile_index].take_snapshot()

    # ------------------------------------------------------------------ layout

    def set_layout(self, tiles: int) -> None:
        """1, 4 or 9 tiles.  Cameras already playing in the kept tiles continue."""
        if tiles not in LAYOUTS:
            raise ValueError(f"tiles must be one of {LAYOUTS}")
        self._arrange(tiles)
        self._apply(handover=False)
        self.layout_changed.emit(tiles)

    def _arrange(self, count: int) -> None:
        while len(self.tiles) < count:
            tile = CctvTile(self._instance, len(self.tiles), self.snapshot_dir)
            tile.alert_id = self.alert_id
            tile.set_placeholder(self._placeholder)
            tile.snapshot_taken.connect(self.snapshot_taken)
            tile.state_changed.connect(self.state_changed)
            self.tiles.append(tile)
        for tile in self.tiles[count:]:
            tile.set_camera(None)
            tile.hide()
        for tile in self.tiles:
            self.grid.removeWidget(tile)
        cols = math.isqrt(count)
        for i, tile in enumerate(self.tiles[:count]):
            self.grid.addWidget(tile, i // cols, i % cols)
            tile.show()
        for r in range(3):
            self.grid.setRowStretch(r, 1 if r < cols else 0)
            self.grid.setColumnStretch(r, 1 if r < cols else 0)
        self._count = count
        button = self.layout_buttons.button(count)
        if button is not None and not button.isChecked():
            button.setChecked(True)

    def _apply(self, *, handover: bool) -> list[int]:
        feeds = {f.camera_id: f for f in self._ranking}
        ranks = {f.camera_id: i + 1 for i, f in enumerate(self._ranking)}
        plan = plan_tiles(self.cameras_shown(), (f.camera_id for f in self._ranking),
                          self._count)
        restarted = []
        for i, (tile, cam) in enumerate(zip(self.visible_tiles(), plan, strict=True)):
            feed = feeds.get(cam) if cam is not None else None
            relay = self._relay.get(cam) if cam is not None else None
            if tile.set_camera(feed, rank=ranks.get(cam, 0) if cam is not None else 0,
                               relay_state=relay[0] if relay else None, handover=handover):
                restarted.append(i)
        if any(t.feed is not None for t in self.tiles) and not self._placeholder:
            if not self._poll.isActive():
                self._poll.start()
        else:
            self._poll.stop()
        if restarted:
            log.info("cctv: tiles %s restarted; showing %s", restarted, self.cameras_shown())
        return restarted

    def _apply_pending(self) -> None:
        if self._pending is None or not self.follow:
            return
        self._ranking, self._pending = self._pending, None
        self._last_follow = time.monotonic()
        self._apply(handover=True)

    def _follow_toggled(self, on: bool) -> None:
        if on:
            self._last_follow = -math.inf
            self._apply_pending()
        else:
            self._follow_timer.stop()
        self.follow_changed.emit(on)

    def poll(self) -> None:
        """Read every visible player's state (the timer calls this)."""
        now = time.monotonic()
        for tile in self.visible_tiles():
            tile.poll(now)

    # ------------------------------------------------------------------ video wall

    def toggle_detached(self) -> None:
        if self.is_detached:
            self.attach()
        else:
            self.detach()

    def detach(self) -> VideoWall:
        """Move the tiles into a ``VideoWall`` window; the grid keeps its toolbar."""
        if self._wall is not None:
            return self._wall
        wall = VideoWall()
        self.box.removeWidget(self.area)
        wall.box.addWidget(self.area)
        self.area.show()
        self.placeholder.show()
        self._wall = wall
        wall.closed.connect(self.attach)
        wall.show_on_best_screen()
        self.detach_button.setText("Dock")
        self._rebind()
        self.detached_changed.emit(True)
        return wall

    def attach(self) -> None:
        """Bring the tiles back from the video wall and close it."""
        wall, self._wall = self._wall, None
        if wall is None:
            return
        wall.closed.disconnect(self.attach)
        wall.box.removeWidget(self.area)
        self.placeholder.hide()
        self.box.insertWidget(1, self.area, 1)
        self.area.show()
        wall.close()
        wall.deleteLater()
        self.detach_button.setText("Detach")
        self._rebind()
        self.detached_changed.emit(False)

    def _rebind(self) -> None:
        for tile in self.visible_tiles():
            tile.rebind_window()

    # ------------------------------------------------------------------ teardown

    def release(self) -> None:
        """Stop every player and free libvlc; call before the window closes.

        Connected to ``aboutToQuit``, so an application that quits normally
        does not leave libvlc drawing into destroyed X windows.
        """
        if self._released:
            return
        self._released = True
        self._poll.stop()
        self._follow_timer.stop()
        for tile in self.tiles:
            tile.release()
        self._instance.release()
        if self._wall is not None:
            self.attach()


def _name_from_url(url: str, index: int) -> tuple[int, str]:
    match = re.search(r"/cam/(\d+)\.ts", url)
    cam = int(match.group(1)) if match else index + 1
    return cam, f"Camera {cam}"


def main(argv: list[str] | None = None) -> int:
    """Run the grid alone on the given MPEG-TS URLs (e.g. from the media relay
    or ``python -m tests.widgets.ts_source``)."""
    import argparse
    import os

    from PySide6.QtWidgets import QApplication

    parser = argparse.ArgumentParser(description="CCTV grid on MPEG-TS URLs")
    parser.add_argument("urls", nargs="+", metavar="URL")
    parser.add_argument("--tiles", type=int, choices=LAYOUTS, default=4)
    parser.add_argument("--rotate", type=float, default=0.0, metavar="S",
                        help="hand over every S seconds (rotates the ranking), to see follow mode")
    parser.add_argument("--detach", action="store_true", help="start on the video wall")
    parser.add_argument("--snapshots", type=Path, default=None, help="snapshot directory")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    if sys.platform.startswith("linux") and not os.environ.get("QT_QPA_PLATFORM"):
        os.environ["QT_QPA_PLATFORM"] = "xcb"  # libvlc needs real X windows

    app = QApplication(sys.argv[:1])
    from console.theme import apply_theme
    from resources import path as resource_path

    apply_theme(app)
    extra = resource_path("cctv.qss")
    if extra.exists():
        app.setStyleSheet(app.styleSheet() + "\n" + extra.read_text(encoding="utf-8"))
    grid = CctvGrid(tiles=args.tiles, snapshot_dir=args.snapshots)
    grid.setWindowTitle("childsafe — CCTV")
    grid.resize(1000, 720)
    cams = [(*_name_from_url(u, i), u) for i, u in enumerate(args.urls)]
    grid.snapshot_taken.connect(lambda cam, p: print(f"snapshot camera {cam}: {p}", flush=True))
    grid.state_changed.connect(lambda cam, s: print(f"camera {cam}: {s}", flush=True))
    grid.show()
    grid.show_cameras(cams, alert_id=1)
    if args.detach:
        grid.detach()
    rotate = QTimer(grid)
    if args.rotate > 0:
        def step() -> None:
            cams.append(cams.pop(0))
            grid.follow_cameras(cams)
        rotate.timeout.connect(step)
        rotate.start(int(args.rotate * 1000))
    code = app.exec()
    grid.release()
    return code


if __name__ == "__main__":
    sys.exit(main())
