"""What the console's CCTV grid shows, and why: the alert or map point it
is focused on, and which new alert takes it over.

- A new alert must put its cameras in front of the operator without a
  click, but must not pull the grid away from an alert the operator is
  working (one they located).  `pick_alert` is that rule, pure, so it is
  tested without Qt.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

from models.messages import AlertView

log = logging.getLogger(__name__)

KIND_TEXT = {"sos": "SOS", "zone_exit": "zone exit", "lost_signal": "lost signal",
             "not_arrived": "not arrived", "not_departed": "not departed"}


@dataclass(frozen=True)
class GridFocus:
    """What the grid shows: an alert's cameras (``located``: the operator
    chose it, not the console) or the cameras around a map point."""

    kind: Literal["alert", "point"]
    alert_id: int | None = None
    priority: int = 99
    located: bool = False
    label: str = ""


def alert_label(alert: AlertView) -> str:
    """"alert 12 · P1 SOS · C-78D5545 · 성동구 성수동1가": for the grid title
    and the status bar."""
    kind = KIND_TEXT.get(alert.kind, alert.kind)
    return f"alert {alert.id} · P{alert.priority} {kind} · {alert.child_token} · {alert.place}"


def has_position(alert: AlertView, child_xy: tuple[float, float]) -> bool:
    """Can cameras be ranked for it: the child's position or the alert's is known."""
    return all(math.isfinite(v) for v in child_xy) or (
        math.isfinite(alert.lat) and math.isfinite(alert.lon))


def pick_alert(new: Iterable[AlertView], focus: GridFocus | None,
               alerts: Mapping[int, AlertView]) -> AlertView | None:
    """The new alert whose cameras should fill the grid now, or None.

    ``new``: alerts this console has just learnt of that are new and have
    a position; ``alerts``: every alert it knows, by id.  The most urgent
    new one (P1 SOS first, then the newest) wins, unless the operator is
    working an unresolved alert they located (its cameras, or cameras around
    a point they asked for while on it), or the grid already shows an open
    alert at least as urgent that the console chose itself.  Other cameras
    around a map point give way to any new alert: a child in trouble
    outranks a look around.
    """
    candidates = sorted(new, key=lambda a: (a.priority, -a.opened_at, -a.id))
    if not candidates:
        return None
    best = candidates[0]
    if focus is None or focus.alert_id is None:
        return best
    current = alerts.get(focus.alert_id)
    if current is None or current.state == "resolved":
        return best
    if focus.located:
        return None
    if focus.kind == "point" or current.state != "new":  # acknowledged: someone is on it
        return best
    return best if best.priority < current.priority else None
