"""The map's drawing layers: each one QGraphicsObject that paints a whole
layer (all boundaries, all zones, all children) from numpy arrays, so the
map stays fluid at city scale. `widgets.map_view.MapView` composes them;
the children's layer is `widgets.map_markers.MarkerLayer`."""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
import pyqtgraph.functions as fn
from PySide6.QtCore import QPointF, QRectF, Qt
from PySide6.QtGui import (
    QColor,
    QPainter,
    QPainterPath,
    QPen,
    QTransform,
)

STATUS_OUTSIDE, STATUS_INSIDE, STATUS_ALERT = 0, 1, 2

DEFAULT_MARKER_SIZE = 3
DEFAULT_ALERT_MARKER_SIZE = 8

_FONT_FAMILY = "NanumGothic"

_log = logging.getLogger(__name__)

_PaintFn = TypeVar("_PaintFn", bound=Callable[..., None])


def _guarded(paint: _PaintFn) -> _PaintFn:
    """Log an exception raised in paint(): escaping into Qt's paint event crashes PySide6."""

    @functools.wraps(paint)
    def wrapper(*args: object) -> None:
        try:
            paint(*args)
        except Exception:
            _log.exception("painting %s failed", type(args[0]).__name__)

    return wrapper  # type: ignore[return-value]


# Z order of the layers, bottom to top.
_Z_DONG, _Z_DISTRICT, _Z_ZONE, _Z_MARKER, _Z_LABEL, _Z_HIGHLIGHT = range(6)


def _cosmetic_pen(
    color: QColor, width: float, cap: Qt.PenCapStyle = Qt.PenCapStyle.SquareCap
) -> QPen:
    pen = QPen(color, width)
    pen.setCosmetic(True)
    pen.setCapStyle(cap)
    pen.setJoinStyle(Qt.PenJoinStyle.RoundJoin)
    return pen


class _PixelPaddedItem(pg.GraphicsObject):
    """A GraphicsObject whose bounding rect grows by a fixed number of pixels."""

    _pad_px = 0.0

    def _data_rect(self) -> QRectF:
        raise NotImplementedError

    def boundingRect(self) -> QRectF:
        rect = self._data_rect()
        if rect.isNull():
            return rect
        px, py = self.pixelVectors()
        pad_x = 0.0 if px is None else px.length() * self._pad_px
        pad_y = 0.0 if py is None else py.length() * self._pad_px
        return rect.adjusted(-pad_x, -pad_y, pad_x, pad_y)

    def viewTransformChanged(self) -> None:
        self.prepareGeometryChange()
        super().viewTransformChanged()


class PathLayer(pg.GraphicsObject):
    """One QPainterPath stroked with a cosmetic pen: a whole boundary layer.

    Qt strokes wide pens slowly (an antialiased 1.6 px pen over the district
    layer took ~160 ms a frame), so a bolder line is the 1 px stroke drawn
    again shifted by fractions of a device pixel: ~1 ms a pass.
    """

    BOLD_OFFSETS = ((0.0, 0.0), (0.8, 0.0), (0.0, 0.8))

    def __init__(self, xy: npt.NDArray[np.float64], antialias: bool, bold: bool = False) -> None:
        super().__init__()
        if len(xy):
            self._path = fn.arrayToQPath(xy[:, 0], xy[:, 1], connect="finite")
        else:
            self._path = QPainterPath()
        self._rect = self._path.boundingRect()
        self._pen = QPen()
        self._antialias = antialias
        self._offsets = self.BOLD_OFFSETS if bold else ((0.0, 0.0),)

    def set_pen(self, pen: QPen) -> None:
        self._pen = pen
        self.update()

    def boundingRect(self) -> QRectF:
        return self._rect

    @_guarded
    def paint(self, p: QPainter, *args: object) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing, self._antialias)
        p.setPen(self._pen)
        transform = p.transform()
        for dx, dy in self._offsets:
            p.setTransform(transform * QTransform.fromTranslate(dx, dy))
            p.drawPath(self._path)
        p.setTransform(transform)


class FilledPathLayer(pg.GraphicsObject):
    """One filled and stroked QPainterPath: a whole layer of areas."""

    def __init__(self) -> None:
        super().__init__()
        self._path = QPainterPath()
        self._pen = QPen()
        self._brush = pg.mkBrush(None)

    def _set_path(self, path: QPainterPath) -> None:
        self.prepareGeometryChange()
        self._path = path
        self.update()

    def set_style(self, pen: QPen, fill: QColor) -> None:
        self._pen = pen
        self._brush = pg.mkBrush(fill)
        self.update()

    def boundingRect(self) -> QRectF:
        return self._path.boundingRect()

    @_guarded
    def paint(self, p: QPainter, *args: object) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.fillPath(self._path, self._brush)
        p.strokePath(self._path, self._pen)


class ZoneLayer(FilledPathLayer):
    """Circles and polygons (safety zones, reader ranges): translucent fill and outline."""

    def set_circles(
        self, cx: npt.NDArray[np.float64], cy: npt.NDArray[np.float64], r: npt.NDArray[np.float64],
        rings: list[npt.NDArray[np.float64] | None] | None = None,
    ) -> None:
        """``rings[i]``, when given, is zone i's outline ((k, 2) metres), drawn
        instead of its circle."""
        path = QPainterPath()
        path.setFillRule(Qt.FillRule.WindingFill)
        shapes = rings or [None] * len(cx)
        for x, y, radius, ring in zip(cx.tolist(), cy.tolist(), r.tolist(), shapes, strict=True):
            if ring is not None and len(ring) >= 3:
                path.addPolygon(fn.arrayToQPolygonF(ring[:, 0], ring[:, 1]))
                path.closeSubpath()
            else:
                path.addEllipse(QPointF(x, y), radius, radius)
        self._set_path(path)


class PolygonLayer(FilledPathLayer):
    """Many small polygons (camera view cones) as one path."""

    def set_rings(self, rings: list[npt.NDArray[np.float64]]) -> None:
        """Each ring an (k, 2) array of metres; drawn closed."""
        path = QPainterPath()
        for ring in rings:
            if len(ring) >= 3:
                path.addPolygon(fn.arrayToQPolygonF(ring[:, 0], ring[:, 1]))
                path.closeSubpath()
        self._set_path(path)


class HighlightRing(_PixelPaddedItem):
    """A fixed-pixel-size ring around one point, dark halo under a bright ring."""

    RADIUS_PX = 14.0

    def __init__(self) -> None:
        super().__init__()
        self._pos: QPointF | None = None
        self._color = QColor("white")
        self._pad_px = self.RADIUS_PX + 6.0

    def set_point(self, pos: QPointF | None) -> None:
        self.prepareGeometryChange()
        self._pos = pos
        self.update()

    def set_color(self, color: QColor) -> None:
        self._color = QColor(color)
        self.update()

    @property
    def point(self) -> QPointF | None:
        return self._pos

    def _data_rect(self) -> QRectF:
        if self._pos is None:
            return QRectF()
        # Non-null rect around the point; the pixel padding does the rest.
        return QRectF(self._pos.x() - 0.5, self._pos.y() - 0.5, 1.0, 1.0)

    @_guarded
    def paint(self, p: QPainter, *args: object) -> None:
        if self._pos is None:
            return
        center = p.transform().map(self._pos)
        p.save()
        p.resetTransform()
        p.setRenderHint(QPainter.RenderHint.Antialiasing, True)
        p.setBrush(Qt.BrushStyle.NoBrush)
        r = self.RADIUS_PX
        p.setPen(_cosmetic_pen(QColor(0, 0, 0, 170), 6.0))
        p.drawEllipse(center, r, r)
        p.setPen(_cosmetic_pen(self._color, 2.5))
        p.drawEllipse(center, r, r)
        tick = 6.0
        for dx, dy in ((1, 0), (-1, 0), (0, 1), (0, -1)):
            a = QPointF(center.x() + dx * (r + 2), center.y() + dy * (r + 2))
            b = QPointF(center.x() + dx * (r + 2 + tick), center.y() + dy * (r + 2 + tick))
            p.drawLine(a, b)
        p.restore()


class MetricScaleBar(pg.ScaleBar):
    """A scale bar that re-picks a round length (1, 2, 5 x 10^n m) as you zoom."""

    TARGET_PX = 110.0

    def __init__(self, color: QColor) -> None:
        super().__init__(size=1000.0, width=4, brush=color, pen=None, suffix="m", offset=(16, -14))
        self.set_color(color)

    def set_color(self, color: QColor) -> None:
        self.bar.setBrush(pg.mkBrush(color))
        self.bar.setPen(pg.mkPen(None))
        self.text.setColor(color)

    @staticmethod
    def nice_length(metres: float) -> float:
        if not np.isfinite(metres) or metres <= 0:
            return 1000.0
        exp = np.floor(np.log10(metres))
        for step in (5.0, 2.0, 1.0):
            if step * 10**exp <= metres:
                return float(step * 10**exp)
        return float(10**exp)

    def updateBar(self) -> None:
        view = self.parentItem()
        if view is None:
            return
        px_w, _ = view.viewPixelSize()
        self.size = self.nice_length(px_w * self.TARGET_PX)
        self.text.setText(f"{self.size / 1000:g} km" if self.size >= 1000 else f"{self.size:g} m")
        p1 = view.mapFromViewToItem(self, QPointF(0, 0))
        p2 = view.mapFromViewToItem(self, QPointF(self.size, 0))
        w = (p2 - p1).x()
        self.bar.setRect(QRectF(0, 0, w, self._width))
        self.text.setPos(w / 2.0, 0)


class DensityLayer(pg.ImageItem):
    """Cameras per cell at city zoom, where 6,600 cones would be noise."""

    CELL_M = 250.0

    def __init__(self) -> None:
        super().__init__()
        self._color = QColor("#f59e0b")

    def set_points(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64],
                   bounds: tuple[float, float, float, float]) -> None:
        x0, y0, x1, y1 = bounds
        nx = max(1, int((x1 - x0) / self.CELL_M))
        ny = max(1, int((y1 - y0) / self.CELL_M))
        counts, _, _ = np.histogram2d(x, y, bins=(nx, ny), range=((x0, x1), (y0, y1)))
        self._counts = counts
        self._render()
        self.setRect(QRectF(x0, y0, x1 - x0, y1 - y0))

    def set_color(self, color: QColor) -> None:
        self._color = QColor(color)
        if hasattr(self, "_counts"):
            self._render()

    def _render(self) -> None:
        counts = self._counts
        peak = max(float(counts.max()), 1.0)
        rgba = np.zeros((*counts.shape, 4), dtype=np.uint8)
        rgba[..., 0] = self._color.red()
        rgba[..., 1] = self._color.green()
        rgba[..., 2] = self._color.blue()
        rgba[..., 3] = np.where(counts > 0, 60 + 180 * np.sqrt(counts / peak), 0).astype(np.uint8)
        self.setImage(rgba, autoLevels=False)
