"""Today's timetable as a strip: each expected slot's planned window against
the arrival and departure actually seen, for the child card
(``widgets.child_card``). Its own module because it paints itself and is
tested by its geometry, apart from the card's layout.
"""

from __future__ import annotations

from collections.abc import Sequence

from PySide6.QtCore import QPointF, QRectF, QSize, Qt
from PySide6.QtGui import QBrush, QColor, QFontMetrics, QPainter, QPaintEvent, QPen, QPolygonF
from PySide6.QtWidgets import QSizePolicy, QWidget

from models.messages import CardSlot

FIRST_HOUR, LAST_HOUR = 6, 22  # the strip's axis, local time
STATE_COLOUR = {"pending": "pendingColor", "arrived": "arrivedColor",
                "departed": "departedColor"}


class TimetableStrip(QWidget):
    """Today's expected slots on a 06:00–22:00 axis, one lane each.

    A lane's outlined bar is the planned window; the solid band inside it
    is where the child actually was (arrival seen to departure seen, or to
    now while inside); ticks mark the arrival and departure; an open alert
    outlines the lane's bar in the alert colour. Geometry is public
    (``x_of``, ``bar_rect``, ``band_rect``) so tests can check where things
    are without reading pixels.
    """

    LABEL_W = 168  # zone names on the left
    RIGHT = 24  # half an hour label
    AXIS_H = 20  # hour labels on top
    LANE_H = 24
    BAR_H = 16

    def __init__(self, colours: dict[str, QColor], parent: QWidget | None = None) -> None:
        super().__init__(parent)
        self.setObjectName("childTimetable")
        self._colours = colours
        self._day_t0 = 0.0
        self._slots: list[CardSlot] = []
        self._now = 0.0
        self.setSizePolicy(QSizePolicy.Policy.Expanding, QSizePolicy.Policy.Fixed)
        self.setMinimumWidth(self.LABEL_W + 240)
        self.setToolTip(self.tr("Today's timetable: planned window (outline), where the "
                                "child was (solid), arrival and departure seen (ticks); red "
                                "outline: an alert is open on it"))

    def set_day(self, day_t0: float, slots: Sequence[CardSlot], now: float) -> None:
        self._day_t0, self._slots, self._now = day_t0, list(slots), now
        self.setFixedHeight(self._height())
        self.update()

    def set_now(self, now: float) -> None:
        self._now = now
        self.update()

    def _height(self) -> int:
        return self.AXIS_H + max(len(self._slots), 1) * self.LANE_H + 6

    def sizeHint(self) -> QSize:
        return QSize(self.LABEL_W + 480, self._height())

    # --- geometry ------------------------------------------------------------
    def _span(self) -> tuple[float, float]:
        return float(self.LABEL_W), float(max(self.width() - self.RIGHT, self.LABEL_W + 1))

    def x_of(self, t: float) -> float:
        """Pixel x of epoch ``t`` on the axis (clamped to its ends)."""
        x0, x1 = self._span()
        hours = (t - self._day_t0) / 3600.0
        f = (hours - FIRST_HOUR) / (LAST_HOUR - FIRST_HOUR)
        return x0 + min(max(f, 0.0), 1.0) * (x1 - x0)

    def lane_y(self, i: int) -> float:
        return float(self.AXIS_H + i * self.LANE_H + (self.LANE_H - self.BAR_H) / 2)

    def bar_rect(self, i: int) -> QRectF:
        """The planned window of slot ``i``."""
        s = self._slots[i]
        x0, x1 = self.x_of(s.start_t), self.x_of(s.end_t)
        return QRectF(x0, self.lane_y(i), max(x1 - x0, 2.0), float(self.BAR_H))

    def band_rect(self, i: int) -> QRectF | None:
        """Where the child was in slot ``i`` (None: not seen arriving)."""
        s = self._slots[i]
        if not s.arrived_at:
            return None
        end = s.departed_at or (self._now if s.inside else s.end_t)
        x0, x1 = self.x_of(s.arrived_at), self.x_of(max(end, s.arrived_at))
        inset = 4.0
        return QRectF(x0, self.lane_y(i) + inset, max(x1 - x0, 2.0), self.BAR_H - 2 * inset)

    def bar_color(self, i: int) -> QColor:
        return QColor(self._colours[STATE_COLOUR.get(self._slots[i].state, "pendingColor")])

    def alerted(self, i: int) -> bool:
        s = self._slots[i]
        return bool(s.alerted or s.alert_ids)

    @property
    def slots(self) -> list[CardSlot]:
        return self._slots

    # --- painting ------------------------------------------------------------
    def paintEvent(self, event: QPaintEvent) -> None:
        c = self._colours
        p = QPainter(self)
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.fillRect(self.rect(), c["stripBackground"])
        x0, x1 = self._span()
        fm = QFontMetrics(self.font())
        p.setPen(QPen(c["axisColor"], 1.0))
        bottom = float(self.height() - 4)
        for hour in range(FIRST_HOUR, LAST_HOUR + 1, 2):
            x = self.x_of(self._day_t0 + hour * 3600.0)
            p.setPen(QPen(c["axisColor"], 1.0, Qt.PenStyle.DotLine))
            p.drawLine(QPointF(x, self.AXIS_H - 2), QPointF(x, bottom))
            p.setPen(c["textColor"])
            text = f"{hour:02d}:00"
            w = fm.horizontalAdvance(text)
            p.drawText(QPointF(min(max(x - w / 2, x0 - w / 2), x1 - w / 2),
                               self.AXIS_H - 6), text)
        if self._day_t0 + FIRST_HOUR * 3600 <= self._now <= self._day_t0 + LAST_HOUR * 3600:
            x = self.x_of(self._now)
            p.setPen(QPen(c["nowColor"], 2.0))
            p.drawLine(QPointF(x, self.AXIS_H - 2), QPointF(x, bottom))
        if not self._slots:
            text = self.tr("No timetable today")
            w = fm.horizontalAdvance(text) + 12
            where = QRectF(4, self.AXIS_H + 2, w, self.LANE_H - 4)
            p.fillRect(where, c["stripBackground"])
            p.setPen(c["textColor"])
            p.drawText(where, Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft, text)
        for i, s in enumerate(self._slots):
            self._paint_lane(p, fm, i, s)
        p.end()

    def _paint_lane(self, p: QPainter, fm: QFontMetrics, i: int, s: CardSlot) -> None:
        c = self._colours
        colour = self.bar_color(i)
        y = self.lane_y(i)
        p.setPen(c["textColor"])
        p.drawText(QRectF(4, y - 4, self.LABEL_W - 10, self.BAR_H + 8),
                   Qt.AlignmentFlag.AlignVCenter | Qt.AlignmentFlag.AlignLeft,
                   fm.elidedText(s.zone, Qt.TextElideMode.ElideRight, self.LABEL_W - 10))
        bar = self.bar_rect(i)
        fill = QColor(colour)
        fill.setAlpha(70)
        outline = QColor(c["alertColor"]) if self.alerted(i) else colour
        p.setPen(QPen(outline, 2.5 if self.alerted(i) else 1.2))
        p.setBrush(QBrush(fill))
        p.drawRoundedRect(bar, 3, 3)
        band = self.band_rect(i)
        if band is not None:
            p.setPen(Qt.PenStyle.NoPen)
            p.setBrush(QBrush(colour))
            p.drawRoundedRect(band, 2, 2)
        p.setBrush(QBrush(c["markColor"]))
        for at, down in ((s.arrived_at, True), (s.departed_at, False)):
            if not at:
                continue
            x = self.x_of(at)
            p.setPen(QPen(c["markColor"], 2.0))
            p.drawLine(QPointF(x, y - 3), QPointF(x, y + self.BAR_H + 3))
            tip = y - 3 if down else y + self.BAR_H + 3
            d = 4.0 if down else -4.0
            p.setPen(Qt.PenStyle.NoPen)
            p.drawPolygon(QPolygonF([QPointF(x - 4, tip - d), QPointF(x + 4, tip - d),
                                     QPointF(x, tip)]))
        # The planned window in words, beside the bar (inside it when it fits).
        text = f"{s.kind} {self._hm(s.start_t)}–{self._hm(s.end_t)}"
        w = fm.horizontalAdvance(text) + 6
        x0, x1 = self._span()
        marks = [self.x_of(t) for t in (s.arrived_at, s.departed_at) if t]
        right = max([bar.right(), *marks]) + 8
        left = min([bar.left(), *marks]) - 8
        if right + w <= x1:
            where = QRectF(right, y - 1, w, self.BAR_H + 2)
        elif left - w >= x0:
            where = QRectF(left - w, y - 1, w, self.BAR_H + 2)
        else:
            return
        p.fillRect(where, c["stripBackground"])  # readable over the grid and the now line
        p.setPen(c["textColor"])
        p.drawText(where, Qt.AlignmentFlag.AlignCenter, text)

    def _hm(self, t: float) -> str:
        """Clock time on the engine's day (not this console's time zone)."""
        minutes = round((t - self._day_t0) / 60.0)
        return f"{minutes // 60:02d}:{minutes % 60:02d}"
