"""The child card's trail on the map, fading from old to new so which way
the child went reads at a glance. Its own module because it is a pyqtgraph
item on the map (``console.child_card_controller`` adds it there), not part
of the card's widgets.
"""

from __future__ import annotations

from itertools import pairwise

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import QBrush, QColor, QPainter, QPen, QPolygonF

DEFAULT_TRAIL_COLOUR = "#22d3ee"  # until the card's trailColor (the theme's) is set


class TrailLayer(pg.GraphicsObject):
    """A trail on the map (EPSG:5179 metres) fading from old to new: each
    segment's opacity grows with the time of its newer end across the
    window, and a dot marks the newest point. It is drawn as ``LEVELS``
    polylines of one opacity each (a dozen calls, not one per point), with
    cosmetic pens so widths stay in pixels."""

    LEVELS = 12
    MIN_ALPHA = 35
    WIDTH_PX = 3.0
    HEAD_PX = 5.0

    def __init__(self) -> None:
        super().__init__()
        self._x = np.empty(0)
        self._y = np.empty(0)
        self._alpha = np.empty(0, dtype=np.int64)
        self._colour = QColor(DEFAULT_TRAIL_COLOUR)
        self._rect = QRectF()

    def set_trail(self, x: npt.ArrayLike, y: npt.ArrayLike, t: npt.ArrayLike, now: float,
                  window_s: float) -> None:
        """Points oldest first; opacity by age within ``window_s`` before ``now``."""
        xa, ya, ta = (np.asarray(a, dtype=float) for a in (x, y, t))
        keep = np.isfinite(xa) & np.isfinite(ya) & np.isfinite(ta)
        xa, ya, ta = xa[keep], ya[keep], ta[keep]
        self.prepareGeometryChange()
        self._x, self._y = xa, ya
        self._alpha = self.alpha_of(ta, now, window_s)
        self._rect = (QRectF(float(xa.min()), float(ya.min()), float(np.ptp(xa)) or 1.0,
                             float(np.ptp(ya)) or 1.0) if len(xa) else QRectF())
        self.update()

    @classmethod
    def alpha_of(cls, t: npt.NDArray[np.float64], now: float, window_s: float
                 ) -> npt.NDArray[np.int64]:
        """Opacity 0–255 per point: ``MIN_ALPHA`` at the window's start, 255 now."""
        if not len(t):
            return np.empty(0, dtype=np.int64)
        span = window_s if window_s > 0 else max(float(now - t.min()), 1.0)
        f = np.clip(1.0 - (now - t) / span, 0.0, 1.0)
        return np.round(cls.MIN_ALPHA + f * (255 - cls.MIN_ALPHA)).astype(np.int64)

    def clear(self) -> None:
        self.set_trail([], [], [], 0.0, 0.0)

    def set_color(self, colour: QColor) -> None:
        self._colour = QColor(colour)
        self.update()

    @property
    def alphas(self) -> npt.NDArray[np.int64]:
        return self._alpha

    def __len__(self) -> int:
        return len(self._x)

    def boundingRect(self) -> QRectF:
        if self._rect.isNull():
            return QRectF()
        px, py = self.pixelVectors()
        pad = self.HEAD_PX + self.WIDTH_PX
        dx = 0.0 if px is None else px.length() * pad
        dy = 0.0 if py is None else py.length() * pad
        return self._rect.adjusted(-dx, -dy, dx, dy)

    def viewTransformChanged(self) -> None:
        self.prepareGeometryChange()
        super().viewTransformChanged()

    def paint(self, p: QPainter, *args: object) -> None:
        n = len(self._x)
        if not n:
            return
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        x, y = self._x.tolist(), self._y.tolist()
        if n > 1:
            # Times are oldest first, so each opacity is one run of the trail:
            # a polyline per run keeps joins smooth (no darker dots at overlaps).
            level = (self._alpha[1:] - self.MIN_ALPHA) * self.LEVELS // (256 - self.MIN_ALPHA)
            cuts = [0, *(np.flatnonzero(np.diff(level)) + 1).tolist(), len(level)]
            for a, b in pairwise(cuts):
                colour = QColor(self._colour)
                colour.setAlpha(int(self.MIN_ALPHA + (int(level[a]) + 0.5)
                                    * (255 - self.MIN_ALPHA) / self.LEVELS))
                pen = QPen(colour, self.WIDTH_PX)
                pen.setCosmetic(True)
                pen.setCapStyle(Qt.PenCapStyle.FlatCap)
                pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
                p.setPen(pen)
                p.drawPolyline(QPolygonF([QPointF(x[i], y[i]) for i in range(a, b + 1)]))
        head = p.transform().map(QPointF(x[-1], y[-1]))
        p.save()
        p.resetTransform()
        p.setPen(QPen(QColor(0, 0, 0, 180), 2.0))
        p.setBrush(QBrush(self._colour))
        p.drawEllipse(head, self.HEAD_PX, self.HEAD_PX)
        p.restore()
