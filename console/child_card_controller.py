"""Glue between the child card, the map and the engine, owned by the window.

Which child: the one an operator clicks on the map (the marker nearest the
click, within ``PICK_PX``), or the child of the alert selected in the
queue. The card (``widgets.child_card.ChildCardPanel``) is asked for when
the child changes and the card is shown, again every ``REFRESH_S`` while it
is shown, on the Refresh button, and within a second of a ``NoticeStatus``
about that child (a guardian's notice went, or failed): what the card says
about delivery is never more than a second behind the notifier.

A card hidden is not asked for: every card with history is a use the
engine writes to the location-usage log, so none is fetched for nobody to
read. Its trail is drawn on the map (``TrailLayer``, fading from old to new)
only while the card is shown, and goes with the card (closed, another child,
a sign-out). Answers from before a sign-out or a change of child are
dropped, like ``console.privacy_controller`` does.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

import numpy as np
from PySide6.QtCore import QObject, Signal

from models.geo import to_map
from models.messages import (
    AlertView,
    AnyMessage,
    ChildCard,
    ChildCardRequest,
    CommandReply,
    NoticeStatus,
    unpack,
)
from widgets.child_card import ChildCardPanel
from widgets.map_view import MapView
from widgets.trail_layer import TrailLayer

log = logging.getLogger(__name__)

SCHEMA = "req.child_card"
REFRESH_S = 10.0  # the card is asked for again this often while shown
TRAIL_S = 15 * 60.0  # the trail it asks for (the alert panel's too)
PICK_PX = 12.0  # a click this close to a marker picks its child
ANSWER_S = 10.0  # a request unanswered this long is given up (asked again)
TRAIL_Z = 3.5  # above the children's markers, under the labels and the ring

OnReply = Callable[[Any], None]


class SessionLike(Protocol):
    """``console.session.Session`` as far as the controller needs it."""

    @property
    def user(self) -> str: ...

    def may(self, schema: str) -> bool: ...

    def send(self, command: AnyMessage, on_reply: OnReply | None = None) -> int: ...


def nearest(x: np.ndarray, y: np.ndarray, px: float, py: float, radius: float) -> int:
    """The slot whose position is nearest (px, py) within ``radius`` (map
    metres), or -1. Positions without a fix (NaN) are never picked."""
    if not len(x):
        return -1
    with np.errstate(invalid="ignore"):
        d2 = (x - px) ** 2 + (y - py) ** 2
    d2 = np.where(np.isfinite(d2), d2, np.inf)
    slot = int(np.argmin(d2))
    return slot if d2[slot] <= radius * radius else -1


class ChildCardController(QObject):
    """Asks for the selected child's card, shows it and draws its trail."""

    card_wanted = Signal()  # the operator picked a child on the map: show the card
    status = Signal(str)  # a line for the status bar

    def __init__(self, session: SessionLike, card: ChildCardPanel, map_view: MapView, *,
                 positions: Callable[[], tuple[np.ndarray, np.ndarray]],
                 token_of: Callable[[int], str], parent: QObject | None = None,
                 clock: Callable[[], float] = time.time) -> None:
        super().__init__(parent)
        self.session = session
        self.card = card
        self.map = map_view
        self.positions = positions
        self.token_of = token_of
        self.clock = clock
        self.child = ""  # the selected child's token
        self.asked_at = 0.0  # when the card in hand (or on its way) was asked for
        self.waiting = False  # a request is out
        self.stale = False  # something changed since it was asked: ask at the next tick
        self._generation = 0
        self.trail = TrailLayer()
        self.trail.setZValue(TRAIL_Z)
        self.trail.set_color(card.trailColor)
        map_view.view_box.addItem(self.trail, ignoreBounds=True)
        map_view.clicked.connect(self.map_clicked)
        card.refresh_requested.connect(self.refresh)
        card.close_requested.connect(self.close_card)
        card.shown_changed.connect(self._shown)

    # ------------------------------------------------------------ window API
    def reset(self) -> None:
        """The session changed: forget the child, its card and trail, and
        drop answers still on their way."""
        self._generation += 1
        self.child = ""
        self.waiting = self.stale = False
        self.asked_at = 0.0
        self.card.clear()
        self.trail.clear()

    def show_child(self, token: str) -> None:
        """Make ``token`` the card's child and ask for its card now (if shown)."""
        if not token or not self.session.may(SCHEMA):
            return
        if token != self.child:
            self._generation += 1
            self.child = token
            self.waiting = False
            self.trail.clear()
            self.card.asking(token)
        self.stale = True
        self._ask_if_due()

    def alert_selected(self, alert: AlertView | None) -> None:
        """The queue's selection: its child's card (nothing changes on none)."""
        if alert is not None:
            self.show_child(alert.child_token)

    def map_clicked(self, x: float, y: float) -> None:
        """A plain click on the map: the child under it, if any."""
        if not self.session.may(SCHEMA):
            return
        xs, ys = self.positions()
        (x0, x1), _ = self.map.view_range()
        metres_per_px = (x1 - x0) / max(self.map.width(), 1)
        slot = nearest(np.asarray(xs), np.asarray(ys), x, y, PICK_PX * metres_per_px)
        if slot < 0:
            return
        token = self.token_of(slot)
        if not token:
            return
        self.map.highlight(float(xs[slot]), float(ys[slot]))
        self.show_child(token)
        self.card_wanted.emit()
        self.status.emit(f"Child card of {token}")

    def on_notices(self, notices: Sequence[NoticeStatus]) -> None:
        """Delivery changed for some notices: the card's child's is asked again."""
        if self.child and any(n.child_token == self.child for n in notices):
            self.stale = True

    def tick(self, now: float) -> None:
        """Every second: ages on the card, and the refresh when due."""
        if self.card.card is not None:
            self.card.tick(now)
        self._ask_if_due(now)

    def refresh(self) -> None:
        self.stale = True
        self._ask_if_due()

    def close_card(self) -> None:
        """The operator closed the card: it and its trail go."""
        self._generation += 1
        self.child = ""
        self.waiting = self.stale = False
        self.card.clear()
        self.trail.clear()

    # ------------------------------------------------------------- internals
    def _shown(self, shown: bool) -> None:
        self.trail.setVisible(shown)
        if shown:
            self._ask_if_due()

    def _ask_if_due(self, now: float | None = None) -> None:
        now = self.clock() if now is None else now
        if not self.child or not self.card.isVisible() or not self.session.may(SCHEMA):
            return
        if self.waiting and now - self.asked_at < ANSWER_S:
            return  # one at a time: the answer on its way will do
        if not self.stale and now - self.asked_at < REFRESH_S:
            return
        self.asked_at, self.waiting, self.stale = now, True, False
        generation, child = self._generation, self.child
        self.session.send(ChildCardRequest(token="", child=child, trail_s=TRAIL_S),
                          lambda reply: self._answered(reply, generation, child))

    def _answered(self, reply: object, generation: int, child: str) -> None:
        if generation != self._generation or child != self.child:
            return  # asked before a sign-out, a close or another child
        self.waiting = False
        if isinstance(reply, ChildCard):
            self.card.show_card(reply)
            self._draw_trail(reply)
            return
        error = reply.error if isinstance(reply, CommandReply) else \
            f"unexpected answer {type(reply).__name__}"
        log.info("child card of %s refused: %s", child, error)
        self.card.show_error(f"Refused: {error}")
        self.status.emit(f"Child card of {child} refused: {error}")

    def _draw_trail(self, card: ChildCard) -> None:
        lat, lon, t = (unpack(n, getattr(card, f"trail_{n}")) for n in ("lat", "lon", "t"))
        if not len(t):
            self.trail.clear()
            return
        x, y = to_map(np.asarray(lat), np.asarray(lon))
        self.trail.set_color(self.card.trailColor)
        self.trail.set_trail(x, y, t, card.at, card.trail_s)
