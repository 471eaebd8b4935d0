"""One CCTV tile: a libvlc player drawing into a native child window, with the
camera's name, its rank, a status badge and a snapshot button.

Why it looks like this:

- libvlc draws straight into an X window (``set_xwindow``), so the video
  surface is a native child window.  Nothing Qt paints can sit on top of it,
  so the name, status and handover cue live in a header row above the
  video, and the handover flash is the tile's frame around it.
- libvlc is touched only from the GUI thread.  No libvlc event callbacks
  (they run on libvlc's threads): the grid's timer calls ``poll()``, which
  reads ``get_state()`` and the decoder counters.
- The state shown is the worse of what the player sees and what the media
  relay reported (``set_relay_state``): the relay knows a camera is down
  before a player's buffer runs dry, the player knows when this console's
  own connection is the problem.
- A tile never writes anything but its snapshot file; it emits signals and
  the window turns them into commands.

A tile can also stand in for video it will not get (``set_placeholder``:
a training session has no relay): it keeps the camera's name and rank and
says why there is no picture, instead of a black surface that looks broken.

Colours are in QSS: the tile exposes dynamic properties ``state`` (on the
tile and on ``QLabel#cctvState``), ``handover``, ``flash`` and
``placeholder`` (on the tile).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import NamedTuple

import vlc
from PySide6.QtCore import QSize, Qt, QTimer, Signal
from PySide6.QtGui import QGuiApplication, QPainter, QPaintEvent, QResizeEvent
from PySide6.QtWidgets import (
    QFrame,
    QHBoxLayout,
    QLabel,
    QPushButton,
    QSizePolicy,
    QStyle,
    QStyleOption,
    QVBoxLayout,
    QWidget,
)

from models.cameras import short_title

log = logging.getLogger(__name__)

# Shown states, mildest first: the badge shows the worse of player and relay.
STATES = ("idle", "live", "connecting", "stalled", "offline")
_RANK = {s: i for i, s in enumerate(STATES)}
STATE_TEXT = {"idle": "", "live": "LIVE", "connecting": "CONNECTING", "stalled": "STALLED",
              "offline": "OFFLINE"}

STALL_S = 2.5  # no picture decoded for this long while playing: stalled
STALL_RESTART_S = 10.0  # ...and for this long: reconnect
RETRY_S = (2.0, 4.0, 8.0, 15.0)  # reconnect back-off after an error or end of stream
CUE_S = 3.0  # how long the handover cue stays up
FLASHES = 6  # on/off toggles of the handover flash (three blinks)
FLASH_MS = 220
# What the title and the handover cue keep at least when the tile is narrow:
# enough for "#12 동…" and "⇄".  More would make the grid's minimum width
# exceed its panel, and a handover cue appearing would then widen the panel
# and shift the map.
NAME_KEEP_PX = 56
CUE_KEEP_PX = 14


class CameraFeed(NamedTuple):
    """A camera as the grid shows it: id, display name, MPEG-TS URL (from the relay)."""

    camera_id: int
    name: str
    url: str


def tile_title(camera_id: int, name: str) -> str:
    """The tile's title: `models.cameras.short_title` (the camera's id and the
    parts of its name that tell it apart first); the full name is the
    tooltip."""
    return short_title(camera_id, name)


def worse(a: str, b: str | None) -> str:
    """The worse of two states (``b`` may be None: no opinion)."""
    if b is None or b not in _RANK:
        return a
    return a if _RANK[a] >= _RANK[b] else b


class VideoSurface(QWidget):
    """The native child window libvlc draws into.

    ``WA_NativeWindow`` gives it its own X window; ``WA_DontCreateNativeAncestors``
    keeps the rest of the tile (and window) alien, which Qt needs to stay
    fast; ``WA_OpaquePaintEvent`` stops Qt from clearing over the video.
    The paint event only draws the QSS background, seen before the first
    picture and around a picture of another aspect ratio.
    """

    def __init__(self, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("cctvVideo")
        self.setAttribute(Qt.WidgetAttribute.WA_NativeWindow)
        self.setAttribute(Qt.WidgetAttribute.WA_DontCreateNativeAncestors)
        self.setAttribute(Qt.WidgetAttribute.WA_OpaquePaintEvent)
        self.setAttribute(Qt.WidgetAttribute.WA_StyledBackground)
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Expanding)
        self.setMinimumSize(96, 72)

    def paintEvent(self, event: QPaintEvent) -> None:
        opt = QStyleOption()
        opt.initFrom(self)
        painter = QPainter(self)
        self.style().drawPrimitive(QStyle.PrimitiveElement.PE_Widget, opt, painter, self)
        painter.end()


class ElidedLabel(QLabel):
    """A one-line label that shrinks to "…" instead of pushing its neighbours out.

    In a 3×3 grid the header is narrow; the camera's name (and the handover
    cue) must give way gracefully to the status badge and snapshot button
    rather than clip them.  ``keep`` is the width it asks to keep at least.
    """

    def __init__(self, text: str = "", keep: int = 40, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self._full = ""
        self._keep = keep
        self.setText(text)

    def setText(self, text: str) -> None:
        self._full = text
        self._elide()
        self.updateGeometry()

    def full_text(self) -> str:
        return self._full

    def sizeHint(self) -> QSize:
        hint = super().sizeHint()
        margins = self.contentsMargins()
        width = self.fontMetrics().horizontalAdvance(self._full) + margins.left() + margins.right()
        return QSize(width + 2, hint.height())

    def minimumSizeHint(self) -> QSize:
        return QSize(min(self._keep, self.sizeHint().width()), super().minimumSizeHint().height())

    def resizeEvent(self, event: QResizeEvent) -> None:
        super().resizeEvent(event)
        self._elide()

    def _elide(self) -> None:
        width = max(self.contentsRect().width(), 0)
        shown = self.fontMetrics().elidedText(self._full, Qt.TextElideMode.ElideRight, width)
        super().setText(shown)


def _restyle(widget: QWidget) -> None:
    """Re-apply QSS after a dynamic property changed."""
    widget.style().unpolish(widget)
    widget.style().polish(widget)


class CctvTile(QFrame):
    """A tile of the CCTV grid; see the module docstring."""

    snapshot_taken = Signal(int, str)  # camera_id, PNG path
    state_changed = Signal(int, str)  # camera_id, shown state

    def __init__(self, instance: vlc.Instance, index: int = 0,
                 snapshot_dir: Path | None = None, parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("cctvTile")
        self.index = index
        self.snapshot_dir = snapshot_dir or Path("snapshots")
        self.alert_id: int | None = None  # set by the grid; names evidence files
        self.feed: CameraFeed | None = None
        self.starts = 0  # play() calls for a new camera (tests: handovers restart only these)
        self.reconnects = 0  # play() calls to recover the same camera
        self._instance = instance
        self._player: vlc.MediaPlayer | None = None
        self._bound_window = 0
        self._relay_state: str | None = None
        self._relay_detail = ""
        self._state = "idle"
        self._detail = ""
        self._failures = 0
        self._retry_at: float | None = None
        self._decoded = 0
        self._last_progress = 0.0
        self._started_at = 0.0
        self._flashes_left = 0
        self._placeholder = ""  # said instead of playing, when set

        self.rank = QLabel("")
        self.rank.setObjectName("cctvRank")
        self.name = ElidedLabel("No camera", keep=NAME_KEEP_PX)
        self.name.setObjectName("cctvName")
        self.name.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Preferred)
        self.cue = ElidedLabel("", keep=CUE_KEEP_PX)
        self.cue.setObjectName("cctvCue")
        self.cue.setSizePolicy(QSizePolicy.Policy.Maximum, QSizePolicy.Policy.Preferred)
        self.cue.hide()
        self.badge = QLabel("")
        self.badge.setObjectName("cctvState")
        self.badge.setProperty("state", "idle")
        self.badge.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.snap = QPushButton("Snapshot")
        self.snap.setObjectName("cctvSnapshot")
        self.snap.setToolTip("Save this frame as evidence for the open alert")
        self.snap.setFocusPolicy(Qt.FocusPolicy.NoFocus)
        self.snap.setEnabled(False)
        self.snap.clicked.connect(self.take_snapshot)

        header = QWidget()
        header.setObjectName("cctvHeader")
        row = QHBoxLayout(header)
        row.setContentsMargins(4, 2, 2, 2)
        row.setSpacing(6)
        row.addWidget(self.rank)
        row.addWidget(self.name, 1)
        row.addWidget(self.cue)
        row.addWidget(self.badge)
        row.addWidget(self.snap)
        self.video = VideoSurface()
        self.no_video = QLabel("")
        self.no_video.setObjectName("cctvNoVideo")
        self.no_video.setAlignment(Qt.AlignmentFlag.AlignCenter)
        self.no_video.setWordWrap(True)
        self.no_video.setSizePolicy(QSizePolicy.Policy.Ignored, QSizePolicy.Policy.Ignored)
        self.no_video.hide()
        box = QVBoxLayout(self)
        box.setContentsMargins(3, 3, 3, 3)
        box.setSpacing(2)
        box.addWidget(header)
        box.addWidget(self.video, 1)
        box.addWidget(self.no_video, 1)
        self.setProperty("state", "idle")
        self.setProperty("placeholder", "false")
        self.setProperty("handover", "false")
        self.setProperty("flash", "false")

        self._cue_timer = QTimer(self)
        self._cue_timer.setSingleShot(True)
        self._cue_timer.timeout.connect(self._end_cue)
        self._flash_timer = QTimer(self)
        self._flash_timer.setInterval(FLASH_MS)
        self._flash_timer.timeout.connect(self._flash_step)

    # ------------------------------------------------------------------ queries

    @property
    def camera_id(self) -> int | None:
        return self.feed.camera_id if self.feed is not None else None

    @property
    def state(self) -> str:
        return self._state

    @property
    def detail(self) -> str:
        return self._detail

    @property
    def no_video_text(self) -> str:
        """What the tile says instead of playing ("" when it plays)."""
        return self._placeholder

    @property
    def in_handover(self) -> bool:
        return bool(self.property("handover") == "true")

    def player(self) -> vlc.MediaPlayer | None:
        """The libvlc player (None until the tile first plays)."""
        return self._player

    # ------------------------------------------------------------------ commands

    def set_camera(self, feed: CameraFeed | None, *, rank: int = 0,
                   relay_state: str | None = None, handover: bool = False) -> bool:
        """Show ``feed`` (None: empty tile); return True if the player restarted.

        The same camera again only updates the rank and name: a handover must
        not interrupt a picture the operator is watching.  ``handover`` puts
        up the cue (frame flash and "⇄ from …") when another camera was shown.
        """
        self.set_rank(rank)
        if feed is not None and self.feed is not None and feed.camera_id == self.feed.camera_id:
            if feed.name != self.feed.name:
                self._show_name(feed)
            if feed.url == self.feed.url or self._placeholder:
                self.feed = feed
                self._say_placeholder()
                return False
        previous = self.feed
        self.feed = feed
        self._relay_state = relay_state
        self._relay_detail = ""
        if feed is None:
            self._stop()
            self.name.setText("No camera")
            self.name.setToolTip("")
            self._end_cue()
            self._show("idle", "")
            self._say_placeholder()
            return False
        self._show_name(feed)
        self._failures = 0
        if self._placeholder:
            self._show("idle", "")
            self._say_placeholder()
        else:
            self._start(feed)
            self.starts += 1
            self._show(worse("connecting", relay_state), "")  # never the old camera's state
        if handover and previous is not None:
            self._begin_cue(tile_title(previous.camera_id, previous.name))
        return True

    def _show_name(self, feed: CameraFeed) -> None:
        self.name.setText(tile_title(feed.camera_id, feed.name))
        # Without the query: it holds the session's relay token, not for the screen.
        where = feed.url.split("?", 1)[0]
        self.name.setToolTip(f"{feed.name}\ncamera {feed.camera_id} · {where}")

    def set_placeholder(self, text: str) -> None:
        """Say ``text`` (with the camera's name) where the video would be, and
        play nothing; "" plays the tile's camera again."""
        if text == self._placeholder:
            return
        self._placeholder = text
        self.video.setVisible(not text)
        self.no_video.setVisible(bool(text))
        self.setProperty("placeholder", "true" if text else "false")
        _restyle(self)
        if text:
            self._stop()
            self._show("idle", "")
            self._say_placeholder()
        elif self.feed is not None:
            self._start(self.feed)
            self.starts += 1
            self._show(worse("connecting", self._relay_state), "")

    def _say_placeholder(self) -> None:
        if not self._placeholder:
            return
        feed = self.feed
        self.no_video.setText(self._placeholder if feed is None else
                              f"{feed.name}\ncamera {feed.camera_id}\n\n{self._placeholder}")

    def set_rank(self, rank: int) -> None:
        """Rank of the camera in the current ranking (1 = nearest); 0 hides it."""
        self.rank.setText(str(rank) if rank > 0 else "")
        self.rank.setVisible(rank > 0)

    def set_relay_state(self, state: str | None, detail: str = "") -> None:
        """What the media relay says about this tile's camera (``cam.status``).

        A camera the relay reports live again is reconnected at once instead
        of waiting out the back-off.
        """
        self._relay_state = state
        self._relay_detail = detail
        if state == "live" and self._retry_at is not None:
            self._retry_at = time.monotonic()
        self.poll()

    def take_snapshot(self) -> Path | None:
        """Save the current frame as PNG under ``snapshot_dir``; emit ``snapshot_taken``.

        libvlc writes the file from the picture on screen (waiting up to half a
        second for it), in the stream's own resolution.  The file name carries
        the alert, camera and time, so a frame stays traceable even if the
        evidence command that links it is lost.
        """
        if self._player is None or self.feed is None or self._placeholder:
            return None
        self.snapshot_dir.mkdir(parents=True, exist_ok=True)
        stamp = time.strftime("%Y%m%d-%H%M%S") + f"-{int(time.time() * 1000) % 1000:03d}"
        prefix = f"alert{self.alert_id}-" if self.alert_id is not None else ""
        path = self.snapshot_dir / f"{prefix}cam{self.feed.camera_id}-{stamp}.png"
        rc = self._player.video_take_snapshot(0, str(path), 0, 0)
        if rc != 0 or not path.exists():
            log.warning("snapshot of camera %s failed (libvlc returned %s)",
                        self.feed.camera_id, rc)
            return None
        self.snapshot_taken.emit(self.feed.camera_id, str(path))
        return path

    def rebind_window(self) -> None:
        """Point the player at the video surface's window again if Qt recreated it
        (after a reparent); libvlc picks a new window up only when it restarts."""
        if (self._player is None or self.feed is None or not self._bound_window
                or self._placeholder):
            return
        wid = int(self.video.winId())
        if wid != self._bound_window:
            log.info("tile %d: video window changed, restarting its player", self.index)
            self._start(self.feed)

    def release(self) -> None:
        """Stop and free the player; the tile is unusable afterwards."""
        self._cue_timer.stop()
        self._flash_timer.stop()
        self._stop()
        if self._player is not None:
            self._player.release()
            self._player = None

    # ------------------------------------------------------------------ polling

    def poll(self, now: float | None = None) -> None:
        """Read the player's state (GUI thread only); reconnect when due."""
        now = time.monotonic() if now is None else now
        if self.feed is None or self._player is None or self._placeholder:
            return
        if self._retry_at is not None and now >= self._retry_at:
            self._retry_at = None
            self.reconnects += 1
            self._start(self.feed)
        vstate = self._player.get_state()
        mine, detail = self._player_state(vstate, now)
        state = worse(mine, self._relay_state)
        if state != mine and self._relay_detail:
            detail = f"relay: {self._relay_detail}"
        elif state != mine:
            detail = f"relay reports {state}"
        self._show(state, detail)

    def _player_state(self, vstate: vlc.State, now: float) -> tuple[str, str]:
        """Map libvlc's state and decoder progress to a shown state."""
        assert self._player is not None
        # A refused connection ends like a stream that ended; a Stopped seen
        # right after play() is libvlc not having started yet.
        if vstate in (vlc.State.Ended, vlc.State.Error) or (
                vstate == vlc.State.Stopped and now - self._started_at > 1.0):
            if self._retry_at is None:
                self._failures += 1
                delay = RETRY_S[min(self._failures, len(RETRY_S)) - 1]
                self._retry_at = now + delay
            why = "stream error" if vstate == vlc.State.Error else "no stream (ended or refused)"
            return "offline", f"{why}; retrying in {max(self._retry_at - now, 0):.0f} s"
        decoded = self._decoded_count()
        if decoded > self._decoded:
            self._decoded = decoded
            self._last_progress = now
        if vstate == vlc.State.Playing and self._decoded > 0:
            idle = now - self._last_progress
            if idle >= STALL_RESTART_S:
                self._failures += 1
                self.reconnects += 1
                self._start(self.feed)  # type: ignore[arg-type]
                return "stalled", "no picture; reconnecting"
            if idle >= STALL_S:
                return "stalled", f"no picture for {idle:.0f} s"
            self._failures = 0
            return "live", ""
        if self._failures:  # still failing: do not pretend to be connecting
            return "offline", f"reconnecting (attempt {self._failures + 1})"
        if now - self._started_at > STALL_RESTART_S:
            self._failures += 1
            self.reconnects += 1
            self._start(self.feed)  # type: ignore[arg-type]
        return "connecting", ""

    def _decoded_count(self) -> int:
        media = self._player.get_media() if self._player is not None else None
        if media is None:
            return 0
        stats = vlc.MediaStats()
        if not media.get_stats(stats):
            return 0
        return int(stats.decoded_video)

    # ------------------------------------------------------------------ internals

    def _start(self, feed: CameraFeed) -> None:
        if self._player is None:
            self._player = self._instance.media_player_new()
            # Clicks and keys go to Qt, not to libvlc's window.
            self._player.video_set_mouse_input(False)
            self._player.video_set_key_input(False)
        elif self._player.get_media() is not None:
            # stop() also ends the video output; set_media() alone would keep
            # the previous camera's last picture up under the new name.
            self._player.stop()
            self.video.update()
        if QGuiApplication.platformName() == "xcb":
            wid = int(self.video.winId())
            if wid != self._bound_window:
                self._player.set_xwindow(wid)
                self._bound_window = wid
        media = self._instance.media_new(feed.url)
        self._player.set_media(media)
        media.release()  # the player holds its own reference
        self._decoded = 0
        self._retry_at = None
        self._started_at = self._last_progress = time.monotonic()
        self._player.play()

    def _stop(self) -> None:
        self._retry_at = None
        if self._player is not None:
            self._player.stop()
        self.video.update()

    def _show(self, state: str, detail: str) -> None:
        self._detail = detail
        tip = f"{STATE_TEXT.get(state, state)}: {detail}" if detail else STATE_TEXT.get(state, "")
        if self.badge.toolTip() != tip:
            self.badge.setToolTip(tip)
        if state == self._state:
            return
        self._state = state
        self.badge.setText(STATE_TEXT.get(state, state))
        for w in (self, self.badge):
            w.setProperty("state", state)
            _restyle(w)
        self.snap.setEnabled(state in ("live", "stalled"))
        if self.feed is not None:
            self.state_changed.emit(self.feed.camera_id, state)

    def _begin_cue(self, from_name: str) -> None:
        self.cue.setText(f"⇄ from {from_name}")
        self.cue.setToolTip(f"Handed over from {from_name}")
        self.cue.show()
        self.setProperty("handover", "true")
        _restyle(self)
        self._flashes_left = FLASHES
        self._flash_timer.start()
        self._cue_timer.start(int(CUE_S * 1000))

    def _flash_step(self) -> None:
        self._flashes_left -= 1
        on = self._flashes_left % 2 == 1
        self.setProperty("flash", "true" if on else "false")
        _restyle(self)
        if self._flashes_left <= 0:
            self._flash_timer.stop()

    def _end_cue(self) -> None:
        self._flash_timer.stop()
        self._flashes_left = 0
        self.cue.hide()
        if self.property("handover") != "false" or self.property("flash") != "false":
            self.setProperty("handover", "false")
            self.setProperty("flash", "false")
            _restyle(self)
