"""The live map: Seoul's districts and dongs, safety zones and every child.

`MapView` is a pyqtgraph ViewBox in EPSG:5179 metres (aspect locked, mouse
pan and zoom, no axes).  It is built for city scale: each boundary layer is
one path, and all children are one `MarkerLayer` that hands numpy-filled
QPolygonF buffers to ``QPainter.drawPoints`` (no Python loop per child).

Public API (positions in EPSG:5179 metres; see `models.geo.to_map`):

- ``MapView(parent=None, *, basemap=None)``: ``basemap`` defaults to
  `models.basemap.load_basemap()`; pass one loaded off the GUI thread or
  from a cache dir to keep start-up instant.
- ``set_positions(x, y, status)``: float arrays and a uint8 array of one
  length; status 0 = outside every zone, 1 = inside a zone, 2 = alert.
  NaN x or y means "no position": not drawn.
- ``set_zones([(name, lat, lon, radius_m), ...])``: WGS84 centres.
- ``center_on(x, y, span_m=800.0)``, ``fit_seoul()``,
  ``highlight(x, y)``, ``clear_highlight()``.
- signal ``clicked(x, y)``: a left click (not a drag) on the map, in metres.

Colours and marker sizes are Qt properties so the QSS theme owns them
(severity colours live in the theme only); the values in `DEFAULTS` are a
dark-theme fallback for running without a theme.  Example::

    MapView {
        qproperty-backgroundColor: #0b1424;
        qproperty-dongColor: #2a3b58;
        qproperty-districtColor: #5b7291;
        qproperty-labelColor: #d6deea;
        qproperty-zoneColor: #35a7d8;
        qproperty-zoneFillColor: rgba(53, 167, 216, 46);
        qproperty-outsideColor: rgba(143, 166, 196, 176);
        qproperty-insideColor: #3fd68a;
        qproperty-alertColor: #ff4d4f;
        qproperty-highlightColor: #ffffff;
        qproperty-markerSize: 3;
        qproperty-alertMarkerSize: 8;
    }

Run ``python -m widgets.map_view`` for a standalone demo: 100,000 moving
children and the three demo zones (click to highlight the nearest child).
"""

from __future__ import annotations

import functools
import logging
from collections.abc import Callable
from typing import TypeVar

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
import pyqtgraph.functions as fn
from PySide6.QtCore import Property, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
    QImage,
    QPaintEngine,
    QPainter,
    QPainterPath,
    QPen,
    QTransform,
)
from PySide6.QtWidgets import QVBoxLayout, QWidget

from models.basemap import Basemap, load_basemap
from models.geo import to_map

__all__ = ["DEFAULTS", "MapView", "MarkerLayer"]

STATUS_OUTSIDE, STATUS_INSIDE, STATUS_ALERT = 0, 1, 2

DEFAULTS: dict[str, str] = {
    "backgroundColor": "#0b1424",
    "dongColor": "#2a3b58",
    "districtColor": "#5b7291",
    "labelColor": "#d6deea",
    "zoneColor": "#35a7d8",
    "zoneFillColor": "#2e35a7d8",  # #AARRGGBB
    "outsideColor": "#b08fa6c4",  # #AARRGGBB: translucent, the boundaries show through
    "insideColor": "#3fd68a",
    "alertColor": "#ff4d4f",
    "highlightColor": "#ffffff",
}
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


class ZoneLayer(pg.GraphicsObject):
    """All safety zones as one path of circles: translucent fill and outline."""

    def __init__(self) -> None:
        super().__init__()
        self._path = QPainterPath()
        self._pen = QPen()
        self._brush = pg.mkBrush(None)

    def set_circles(
        self, cx: npt.NDArray[np.float64], cy: npt.NDArray[np.float64], r: npt.NDArray[np.float64]
    ) -> None:
        self.prepareGeometryChange()
        path = QPainterPath()
        path.setFillRule(Qt.FillRule.WindingFill)
        for x, y, radius in zip(cx.tolist(), cy.tolist(), r.tolist(), strict=True):
            path.addEllipse(QPointF(x, y), radius, radius)
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


def _stencil(size_px: int, round_: bool) -> npt.NDArray[np.int64]:
    """(k, 2) pixel offsets covering a marker of ``size_px`` centred on 0."""
    lo = -(size_px // 2)
    d = np.arange(lo, lo + size_px)
    dx, dy = (a.ravel() for a in np.meshgrid(d, d))
    if round_ and size_px > 2:
        c = (size_px - 1) / 2.0 + lo
        keep = (dx - c) ** 2 + (dy - c) ** 2 <= (size_px / 2.0) ** 2
        dx, dy = dx[keep], dy[keep]
    return np.column_stack([dx, dy]).astype(np.int64)


def _premultiplied_argb(color: QColor) -> np.uint32:
    a = color.alpha()
    r, g, b = (round(v * a / 255) for v in (color.red(), color.green(), color.blue()))
    return np.uint32((a << 24) | (r << 16) | (g << 8) | b)


class MarkerLayer(_PixelPaddedItem):
    """Every child as a fixed-size point, in one item, with no per-child Python.

    Two paint paths.  On screen (raster engine, no rotation) the points are
    stamped into a numpy ARGB buffer the size of the view and drawn as one
    image: about 9 ms for 100,000 3-px markers, where ``drawPoints`` with a
    pen wider than 1 px costs ~25 ms (Qt strokes each wide point as a tiny
    line).  Elsewhere (SVG/print export, rotated views) the points go to
    ``QPainter.drawPoints`` from QPolygonF buffers filled through numpy views.
    Either way alerts are drawn last, on top, and markers keep their pixel
    size at any zoom.
    """

    N_STATUS = 3

    def __init__(self) -> None:
        super().__init__()
        empty = np.empty(0, dtype=np.float64)
        self._xy: list[tuple[npt.NDArray[np.float64], npt.NDArray[np.float64]]] = [
            (empty, empty) for _ in range(self.N_STATUS)
        ]
        self._colors = [QColor("white")] * self.N_STATUS
        self._sizes = [3] * self.N_STATUS
        self._round = [False, False, True]
        self._rect = QRectF()
        self._buffer = np.zeros(0, dtype=np.uint32)
        self.raster = True  # False forces drawPoints (tests, comparisons)
        self.frames_drawn = 0  # paints so far; benchmarks count frames with it

    def set_style(self, colors: list[QColor], sizes_px: list[int], round_: list[bool]) -> None:
        """Colour, size in pixels and round/square shape per status (outside, inside, alert)."""
        self._colors = [QColor(c) for c in colors]
        self._sizes = [max(1, int(s)) for s in sizes_px]
        self._round = list(round_)
        self._pad_px = max(self._sizes) / 2.0 + 2.0
        self.prepareGeometryChange()
        self.update()

    @property
    def counts(self) -> tuple[int, ...]:
        """Points drawn per status (outside, inside, alert)."""
        return tuple(len(x) for x, _ in self._xy)

    def set_positions(self, x: npt.ArrayLike, y: npt.ArrayLike, status: npt.ArrayLike) -> None:
        xs = np.asarray(x, dtype=np.float64)
        ys = np.asarray(y, dtype=np.float64)
        st = np.asarray(status)
        if xs.ndim != 1 or xs.shape != ys.shape or xs.shape != st.shape:
            raise ValueError(
                f"x, y and status must be 1-D and of one length, got {xs.shape}, {ys.shape}, "
                f"{st.shape}"
            )
        if st.size and (st.min() < 0 or st.max() >= self.N_STATUS):
            raise ValueError(f"status must be 0 (outside), 1 (inside) or 2 (alert), got {st.max()}")
        finite = np.isfinite(xs) & np.isfinite(ys)
        for k in range(self.N_STATUS):
            mask = finite & (st == k)
            self._xy[k] = (xs[mask], ys[mask])
        if finite.any():
            fx, fy = xs[finite], ys[finite]
            x0, x1, y0, y1 = (float(v) for v in (fx.min(), fx.max(), fy.min(), fy.max()))
            # Widen by a metre so one point (or a line of them) still has an area.
            rect = QRectF(x0 - 1.0, y0 - 1.0, x1 - x0 + 2.0, y1 - y0 + 2.0)
        else:
            rect = QRectF()
        if rect != self._rect:
            self.prepareGeometryChange()
            self._rect = rect
        self.update()

    def _data_rect(self) -> QRectF:
        return self._rect

    @_guarded
    def paint(self, p: QPainter, *args: object) -> None:
        self.frames_drawn += 1
        transform = p.transform()
        engine = p.paintEngine()
        if (
            self.raster
            and transform.type().value <= QTransform.TransformationType.TxScale.value
            and engine is not None
            and engine.type() == QPaintEngine.Type.Raster
        ):
            self._paint_raster(p, transform)
        else:
            self._paint_points(p)

    def _paint_points(self, p: QPainter) -> None:
        p.setRenderHint(QPainter.RenderHint.Antialiasing, False)
        # Cosmetic widths are device pixels; sizes are logical ones, as on the raster path.
        dpr = p.device().devicePixelRatioF() if p.device() is not None else 1.0
        for (xs, ys), color, size, round_ in zip(
            self._xy, self._colors, self._sizes, self._round, strict=True
        ):
            if not len(xs):
                continue
            cap = Qt.PenCapStyle.RoundCap if round_ else Qt.PenCapStyle.SquareCap
            p.setPen(_cosmetic_pen(color, float(size) * dpr, cap))
            poly = fn.create_qpolygonf(len(xs))
            buf = fn.ndarray_from_qpolygonf(poly)
            buf[:, 0] = xs
            buf[:, 1] = ys
            p.drawPoints(poly)

    def _paint_raster(self, p: QPainter, transform: QTransform) -> None:
        view = self.viewRect()
        if view is None or not any(len(x) for x, _ in self._xy):
            return
        dpr = p.device().devicePixelRatioF() if p.device() is not None else 1.0
        target = transform.mapRect(view).toAlignedRect()
        width = min(int(np.ceil(target.width() * dpr)), 16384)
        height = min(int(np.ceil(target.height() * dpr)), 16384)
        stencils = [
            _stencil(max(1, round(s * dpr)), r)
            for s, r in zip(self._sizes, self._round, strict=True)
        ]
        margin = int(max(np.abs(st).max() for st in stencils)) + 1
        w, h = width + 2 * margin, height + 2 * margin
        if w <= 0 or h <= 0:
            return
        if self._buffer.size < w * h:
            self._buffer = np.zeros(w * h, dtype=np.uint32)
        flat = self._buffer[: w * h]
        flat.fill(0)
        sx, sy = transform.m11() * dpr, transform.m22() * dpr
        ox = (transform.dx() - target.left()) * dpr + margin
        oy = (transform.dy() - target.top()) * dpr + margin
        for (xs, ys), color, stencil in zip(self._xy, self._colors, stencils, strict=True):
            if not len(xs):
                continue
            ix = np.rint(xs * sx + ox)
            iy = np.rint(ys * sy + oy)
            inside = (
                (ix >= margin - 1) & (ix <= w - margin) & (iy >= margin - 1) & (iy <= h - margin)
            )
            idx = iy[inside].astype(np.int64) * w + ix[inside].astype(np.int64)
            value = _premultiplied_argb(color)
            for dx, dy in stencil.tolist():
                flat[idx + (dy * w + dx)] = value
        image = QImage(flat.data, w, h, w * 4, QImage.Format.Format_ARGB32_Premultiplied)
        image.setDevicePixelRatio(dpr)
        p.save()
        p.resetTransform()
        p.drawImage(QPointF(target.left() - margin / dpr, target.top() - margin / dpr), image)
        p.restore()


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


def _color_property(key: str) -> Property:
    def getter(self: MapView) -> QColor:
        return QColor(self._colors[key])

    def setter(self: MapView, value: QColor) -> None:
        color = QColor(value)
        if color.isValid() and color != self._colors[key]:
            self._colors[key] = color
            self._apply_style()

    return Property(QColor, getter, setter)


class MapView(QWidget):
    """The live map of Seoul: boundaries, zones and every child's position."""

    clicked = Signal(float, float)

    backgroundColor = _color_property("backgroundColor")
    dongColor = _color_property("dongColor")
    districtColor = _color_property("districtColor")
    labelColor = _color_property("labelColor")
    zoneColor = _color_property("zoneColor")
    zoneFillColor = _color_property("zoneFillColor")
    outsideColor = _color_property("outsideColor")
    insideColor = _color_property("insideColor")
    alertColor = _color_property("alertColor")
    highlightColor = _color_property("highlightColor")

    def __init__(self, parent: QWidget | None = None, *, basemap: Basemap | None = None) -> None:
        super().__init__(parent)
        self._colors: dict[str, QColor] = {k: QColor(v) for k, v in DEFAULTS.items()}
        self._marker_size = DEFAULT_MARKER_SIZE
        self._alert_marker_size = DEFAULT_ALERT_MARKER_SIZE
        self._basemap = basemap if basemap is not None else load_basemap()

        self._gv = pg.GraphicsView(self, background=self._colors["backgroundColor"])
        self._gv.setAntialiasing(False)
        self._gv.setFrameShape(self._gv.Shape.NoFrame)
        layout = QVBoxLayout(self)
        layout.setContentsMargins(0, 0, 0, 0)
        layout.addWidget(self._gv)

        self._vb = pg.ViewBox(lockAspect=True, enableMenu=False, defaultPadding=0.02)
        self._vb.disableAutoRange()
        self._gv.setCentralItem(self._vb)

        paths = self._basemap.boundary_paths()
        self._dong_layer = PathLayer(paths.dongs, antialias=False)
        self._district_layer = PathLayer(paths.districts, antialias=True, bold=True)
        self._zone_layer = ZoneLayer()
        self._markers = MarkerLayer()
        self._highlight = HighlightRing()
        for item, z in (
            (self._dong_layer, _Z_DONG),
            (self._district_layer, _Z_DISTRICT),
            (self._zone_layer, _Z_ZONE),
            (self._markers, _Z_MARKER),
            (self._highlight, _Z_HIGHLIGHT),
        ):
            item.setZValue(z)
            self._vb.addItem(item, ignoreBounds=True)

        self._font = QFont(_FONT_FAMILY if _FONT_FAMILY in QFontDatabase.families() else "")
        self._district_labels: list[pg.TextItem] = []
        for d in self._basemap.districts:
            label = pg.TextItem(d.name, anchor=(0.5, 0.5))
            label.setFont(self._label_font(10, bold=True))
            label.setPos(*d.label_point)
            label.setZValue(_Z_LABEL)
            self._vb.addItem(label, ignoreBounds=True)
            self._district_labels.append(label)
        self._zone_labels: list[pg.TextItem] = []
        self._zone_radii = np.empty(0)

        self._scale_bar = MetricScaleBar(self._colors["labelColor"])
        self._scale_bar.setParentItem(self._vb)

        x0, y0, x1, y1 = self._basemap.bounds
        w, h = x1 - x0, y1 - y0
        self._vb.setLimits(
            xMin=x0 - w,
            xMax=x1 + w,
            yMin=y0 - h,
            yMax=y1 + h,
            minXRange=100.0,
            minYRange=100.0,
            maxXRange=3 * w,
            maxYRange=3 * h,
        )
        self._gv.scene().sigMouseClicked.connect(self._on_scene_click)
        self._vb.sigRangeChanged.connect(self._update_zone_labels)
        self._apply_style()
        self.fit_seoul()

    # --- Qt properties that are not colours -------------------------------

    def _get_marker_size(self) -> int:
        return self._marker_size

    def _set_marker_size(self, px: int) -> None:
        self._marker_size = max(1, int(px))
        self._apply_style()

    def _get_alert_marker_size(self) -> int:
        return self._alert_marker_size

    def _set_alert_marker_size(self, px: int) -> None:
        self._alert_marker_size = max(1, int(px))
        self._apply_style()

    markerSize = Property(int, _get_marker_size, _set_marker_size)
    alertMarkerSize = Property(int, _get_alert_marker_size, _set_alert_marker_size)

    # --- public API -------------------------------------------------------

    @property
    def basemap(self) -> Basemap:
        return self._basemap

    @property
    def view_box(self) -> pg.ViewBox:
        """The ViewBox (for tests and for integrators adding overlay items)."""
        return self._vb

    @property
    def markers(self) -> MarkerLayer:
        return self._markers

    def set_positions(self, x: npt.ArrayLike, y: npt.ArrayLike, status: npt.ArrayLike) -> None:
        """Replace all children's positions (metres; NaN = not drawn) and statuses.

        Raises ValueError when the arrays differ in length or a status is not 0, 1, 2.
        """
        self._markers.set_positions(x, y, status)

    def set_zones(self, zones: list[tuple[str, float, float, float]]) -> None:
        """Show these safety zones: (name, lat, lon, radius in metres), replacing the old set."""
        names = [str(z[0]) for z in zones]
        lat = np.array([z[1] for z in zones], dtype=np.float64)
        lon = np.array([z[2] for z in zones], dtype=np.float64)
        radius = np.array([z[3] for z in zones], dtype=np.float64)
        if not np.all(np.isfinite(radius) & (radius > 0)):
            raise ValueError("zone radius must be a positive number of metres")
        cx, cy = to_map(lat, lon)
        self._zone_layer.set_circles(cx, cy, radius)
        for label in self._zone_labels:
            self._vb.removeItem(label)
        self._zone_labels = []
        for name, x, y, r in zip(names, cx.tolist(), cy.tolist(), radius.tolist(), strict=True):
            label = pg.TextItem(name, anchor=(0.5, 1.0))
            label.setFont(self._label_font(9, bold=False))
            label.setPos(x, y + r)
            label.setZValue(_Z_LABEL)
            self._vb.addItem(label, ignoreBounds=True)
            self._zone_labels.append(label)
        self._zone_radii = radius
        self._apply_style()
        self._update_zone_labels()

    def center_on(self, x: float, y: float, span_m: float = 800.0) -> None:
        """Centre the view on (x, y) metres, showing at least ``span_m`` each way."""
        if not (np.isfinite(x) and np.isfinite(y) and np.isfinite(span_m) and span_m > 0):
            raise ValueError(
                f"center_on needs finite x, y and a positive span, got {x}, {y}, {span_m}"
            )
        half = span_m / 2.0
        self._vb.setRange(xRange=(x - half, x + half), yRange=(y - half, y + half), padding=0.0)

    def fit_seoul(self) -> None:
        """Show the whole city."""
        x0, y0, x1, y1 = self._basemap.bounds
        self._vb.setRange(xRange=(x0, x1), yRange=(y0, y1), padding=0.02)

    def highlight(self, x: float, y: float) -> None:
        """Draw a conspicuous fixed-size ring around (x, y) metres."""
        if not (np.isfinite(x) and np.isfinite(y)):
            raise ValueError(f"highlight needs finite x, y, got {x}, {y}")
        self._highlight.set_point(QPointF(float(x), float(y)))

    def clear_highlight(self) -> None:
        self._highlight.set_point(None)

    def highlighted(self) -> tuple[float, float] | None:
        """The ringed point in metres, if any."""
        p = self._highlight.point
        return None if p is None else (p.x(), p.y())

    def to_widget(self, x: float, y: float) -> QPointF:
        """Where map point (x, y) metres is, in this widget's pixel coordinates."""
        scene = self._vb.mapViewToScene(QPointF(float(x), float(y)))
        return QPointF(self._gv.mapFromScene(scene)) + QPointF(self._gv.viewport().pos())

    def from_widget(self, pos: QPointF) -> tuple[float, float]:
        """The map point (x, y) metres under widget pixel ``pos``."""
        local = QPointF(pos) - QPointF(self._gv.viewport().pos())
        view = self._vb.mapSceneToView(self._gv.mapToScene(local.toPoint()))
        return float(view.x()), float(view.y())

    def view_range(self) -> tuple[tuple[float, float], tuple[float, float]]:
        """((x_min, x_max), (y_min, y_max)) currently shown, in metres."""
        (ax, bx), (ay, by) = self._vb.viewRange()
        return (float(ax), float(bx)), (float(ay), float(by))

    # --- internals ----------------------------------------------------------

    def _label_font(self, point_size: int, bold: bool) -> QFont:
        font = QFont(self._font)
        font.setPointSize(point_size)
        font.setBold(bold)
        return font

    def _apply_style(self) -> None:
        c = self._colors
        self._gv.setBackground(c["backgroundColor"])
        self._dong_layer.set_pen(_cosmetic_pen(c["dongColor"], 1.0))
        self._district_layer.set_pen(_cosmetic_pen(c["districtColor"], 1.0))
        self._zone_layer.set_style(_cosmetic_pen(c["zoneColor"], 1.0), c["zoneFillColor"])
        self._markers.set_style(
            [c["outsideColor"], c["insideColor"], c["alertColor"]],
            [self._marker_size, self._marker_size, self._alert_marker_size],
            [False, False, True],
        )
        self._highlight.set_color(c["highlightColor"])
        halo = QColor(c["backgroundColor"])
        halo.setAlpha(150)
        for label in self._district_labels:
            label.setColor(c["labelColor"])
            label.fill = pg.mkBrush(halo)
            label.update()
        for label in self._zone_labels:
            label.setColor(c["zoneColor"].lighter(140))
            label.fill = pg.mkBrush(halo)
            label.update()
        self._scale_bar.set_color(c["labelColor"])

    ZONE_LABEL_MIN_RADIUS_PX = 6.0
    ZONE_LABELS_ALWAYS_UP_TO = 12

    def _update_zone_labels(self, *args: object) -> None:
        """Name zones only once their circles are big enough, when there are many."""
        if len(self._zone_labels) <= self.ZONE_LABELS_ALWAYS_UP_TO:
            visible = [True] * len(self._zone_labels)
        else:
            metres_per_px = self._vb.viewPixelSize()[0] or 1.0
            visible = (self._zone_radii / metres_per_px >= self.ZONE_LABEL_MIN_RADIUS_PX).tolist()
        for label, show in zip(self._zone_labels, visible, strict=True):
            label.setVisible(show)

    def _on_scene_click(self, event: object) -> None:
        if getattr(event, "button", lambda: None)() != Qt.MouseButton.LeftButton:
            return
        pos = self._vb.mapSceneToView(event.scenePos())  # type: ignore[attr-defined]
        if self._vb.sceneBoundingRect().contains(event.scenePos()):  # type: ignore[attr-defined]
            self.clicked.emit(float(pos.x()), float(pos.y()))


# --- standalone demo ---------------------------------------------------------

DEMO_ZONES: list[tuple[str, float, float, float]] = [
    ("서울숲", 37.5444, 127.0374, 500.0),  # Seoul Forest Park
    ("신도림초등학교", 37.5085, 126.8875, 300.0),  # Sindorim Elementary
    ("신학초등학교", 37.6655, 127.0420, 300.0),  # Sinhak Elementary
]


class FakeChildren:
    """Random children wandering around Seoul: a stand-in for the live feed."""

    def __init__(
        self, n: int, basemap: Basemap, zones: list[tuple[str, float, float, float]], seed: int = 7
    ) -> None:
        rng = np.random.default_rng(seed)
        self._rng = rng
        centres = np.array([d.geometry.representative_point().coords[0] for d in basemap.dongs])
        area = np.array([d.geometry.area for d in basemap.dongs])
        pick = rng.choice(len(centres), n, p=area / area.sum())
        self.x = centres[pick, 0] + rng.normal(0.0, 300.0, n)
        self.y = centres[pick, 1] + rng.normal(0.0, 300.0, n)
        zx, zy = to_map(np.array([z[1] for z in zones]), np.array([z[2] for z in zones]))
        self._zones = np.column_stack([zx, zy, [z[3] for z in zones]])
        # A few hundred children at each zone, so "inside" shows.
        for i, (cx, cy, r) in enumerate(self._zones):
            sl = slice(i * 400, (i + 1) * 400)
            ang = rng.uniform(0, 2 * np.pi, 400)
            rad = r * np.sqrt(rng.uniform(0, 1.2, 400))
            self.x[sl] = cx + rad * np.cos(ang)
            self.y[sl] = cy + rad * np.sin(ang)
        self._heading = rng.uniform(0, 2 * np.pi, n)
        self._alert = np.zeros(n, dtype=bool)
        self._alert[rng.choice(n, 25, replace=False)] = True
        self.x[rng.choice(n, n // 200, replace=False)] = np.nan  # no fix yet
        self.status = np.zeros(n, dtype=np.uint8)

    def step(self, metres: float = 6.0) -> None:
        rng = self._rng
        self._heading += rng.normal(0.0, 0.35, self._heading.shape)
        self.x += metres * np.cos(self._heading)
        self.y += metres * np.sin(self._heading)
        inside = np.zeros(self.x.shape, dtype=bool)
        with np.errstate(invalid="ignore"):
            for cx, cy, r in self._zones:
                inside |= (self.x - cx) ** 2 + (self.y - cy) ** 2 <= r * r
        self.status[:] = np.where(
            self._alert, STATUS_ALERT, np.where(inside, STATUS_INSIDE, STATUS_OUTSIDE)
        )

    def nearest(self, x: float, y: float) -> int | None:
        d2 = (self.x - x) ** 2 + (self.y - y) ** 2
        if np.all(np.isnan(d2)):
            return None
        return int(np.nanargmin(d2))


def main(argv: list[str] | None = None) -> int:
    import argparse
    import sys
    import time

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication

    parser = argparse.ArgumentParser(description="Live map on fake data")
    parser.add_argument("--children", type=int, default=100_000)
    parser.add_argument("--fps", type=float, default=30.0)
    args = parser.parse_args(argv)

    app = QApplication.instance() or QApplication(sys.argv[:1])
    view = MapView()
    view.setWindowTitle("childsafe — live map (demo)")
    view.resize(1280, 900)
    view.set_zones(DEMO_ZONES)
    kids = FakeChildren(args.children, view.basemap, DEMO_ZONES)
    kids.step()
    view.set_positions(kids.x, kids.y, kids.status)

    frames = [0, time.perf_counter()]
    followed: list[int] = []

    def tick() -> None:
        kids.step()
        view.set_positions(kids.x, kids.y, kids.status)
        if followed and np.isfinite(kids.x[followed[0]]):
            view.highlight(kids.x[followed[0]], kids.y[followed[0]])
        frames[0] += 1
        now = time.perf_counter()
        if now - frames[1] >= 1.0:
            view.setWindowTitle(
                f"childsafe — live map (demo): {args.children:,} children, "
                f"{frames[0] / (now - frames[1]):.0f} updates/s"
            )
            frames[:] = [0, now]

    def on_click(x: float, y: float) -> None:
        i = kids.nearest(x, y)
        followed[:] = [] if i is None else [i]
        if i is not None:
            view.highlight(kids.x[i], kids.y[i])

    view.clicked.connect(on_click)
    timer = QTimer(view)
    timer.timeout.connect(tick)
    timer.start(int(1000 / args.fps))
    view.show()
    return app.exec()


if __name__ == "__main__":
    raise SystemExit(main())
