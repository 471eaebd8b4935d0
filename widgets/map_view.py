"""The live map: Seoul's districts and dongs, safety zones and every child.

`MapView` is a pyqtgraph ViewBox in EPSG:5179 metres (aspect locked, mouse
pan and zoom, no axes).  It is built for city scale: each boundary layer is
one path, and all children are one `MarkerLayer` (`widgets.map_markers`)
that stamps them into one image with whole-array numpy steps (no Python
loop per child).

Public API (positions in EPSG:5179 metres; see `models.geo.to_map`):

- ``MapView(parent=None, *, basemap=None)``: ``basemap`` defaults to
  `models.basemap.load_basemap()`; pass one loaded off the GUI thread or
  from a cache dir to keep start-up instant.
- ``set_positions(x, y, status)``: float arrays and a uint8 array of one
  length; status 0 = outside every zone, 1 = inside a zone, 2 = alert.
  NaN x or y means "no position": not drawn.
- ``set_zones([(name, lat, lon, radius_m), ...])``: WGS84 centres.
- ``set_trails(x, y)``: every child's trail as one curve with NaN breaks
  (the trainer's map; ``models.trails``), ``clear_trails()``.
- ``center_on(x, y, span_m=800.0)``, ``fit_seoul()``,
  ``highlight(x, y)``, ``clear_highlight()``.
- ``set_cameras(x, y, cones, offline, unplayable=None, ids=None)``: camera
  positions and view cones; offline ones greyed, unplayable ones (retired,
  in maintenance, no stream) as a dashed grey outline. ``camera_ids(kind)``
  says which ids are drawn as "live", "offline" or "unplayable".
- signal ``clicked(x, y)``: a left click (not a drag) on the map, in metres.
- signal ``cameras_requested(x, y)``: the operator asked for the cameras
  around a point: Ctrl+click, or "Cameras here" in the right-click menu
  (a plain click stays free for selecting; ``MapView.HINT`` says so, for
  the panel that shows the cameras).

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

from collections.abc import Sequence

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
from PySide6.QtCore import Property, QPoint, QPointF, QRectF, Qt, Signal
from PySide6.QtGui import (
    QColor,
    QFont,
    QFontDatabase,
)
from PySide6.QtWidgets import QMenu, QVBoxLayout, QWidget

from models.basemap import Basemap, load_basemap
from models.geo import to_map
from widgets.map_layers import (
    _FONT_FAMILY,
    _Z_DISTRICT,
    _Z_DONG,
    _Z_HIGHLIGHT,
    _Z_LABEL,
    _Z_MARKER,
    _Z_ZONE,
    DEFAULT_ALERT_MARKER_SIZE,
    DEFAULT_MARKER_SIZE,
    STATUS_ALERT,
    STATUS_INSIDE,
    STATUS_OUTSIDE,
    DensityLayer,
    HighlightRing,
    MetricScaleBar,
    PathLayer,
    PolygonLayer,
    ZoneLayer,
    _cosmetic_pen,
)
from widgets.map_markers import MarkerLayer

__all__ = ["DEFAULTS", "MapView", "MarkerLayer"]

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
    "readerColor": "#a78bfa",
    "readerFillColor": "#33a78bfa",
    "cameraColor": "#f59e0b",
    "cameraFillColor": "#40f59e0b",
    "cameraOfflineColor": "#9ca3af",
    "trailColor": "#fbbf24",
    "trailsColor": "#80c4b5fd",  # every child's trail (the trainer's map)
}
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
    cameras_requested = Signal(float, float)

    CAMERAS_HERE_TEXT = "Cameras here\tCtrl+click"
    HINT = "Ctrl+click or right-click → Cameras here: show the cameras around a point"

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
    trailColor = _color_property("trailColor")
    trailsColor = _color_property("trailsColor")
    readerColor = _color_property("readerColor")
    readerFillColor = _color_property("readerFillColor")
    cameraColor = _color_property("cameraColor")
    cameraFillColor = _color_property("cameraFillColor")
    cameraOfflineColor = _color_property("cameraOfflineColor")

    #: Below this view width (metres) cameras show as view cones, above it
    #: as a density layer.
    STREET_ZOOM_M = 5000.0

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
        self._reader_layer = ZoneLayer()
        self._cone_layer = PolygonLayer()
        self._offline_cone_layer = PolygonLayer()
        self._unplayable_cone_layer = PolygonLayer()
        self._camera_ids = np.empty(0, dtype=np.int64)
        self._camera_kind = np.empty(0, dtype=np.uint8)  # 0 live, 1 offline, 2 unplayable
        self.context_menu: QMenu | None = None  # the last right-click menu (tests drive it)
        self._density_layer = DensityLayer()
        self._markers = MarkerLayer()
        self._highlight = HighlightRing()
        self._trail = pg.PlotCurveItem(antialias=True)
        # Every child's trail in one curve, NaN between children (models.trails).
        self._trails = pg.PlotCurveItem(connect="finite", antialias=False)
        for item, z in (
            (self._dong_layer, _Z_DONG),
            (self._district_layer, _Z_DISTRICT),
            (self._zone_layer, _Z_ZONE),
            (self._density_layer, _Z_ZONE),
            (self._cone_layer, _Z_ZONE),
            (self._offline_cone_layer, _Z_ZONE),
            (self._unplayable_cone_layer, _Z_ZONE),
            (self._reader_layer, _Z_ZONE),
            (self._trails, _Z_ZONE + 0.5),  # under the markers it leads to
            (self._markers, _Z_MARKER),
            (self._trail, _Z_MARKER),
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
        self._zone_names: list[str] = []
        self._zone_radii = np.empty(0)
        self._zone_centres = np.empty((0, 2))
        self._label_texts = 0  # bumped when a zone label's text changes (its size)
        self._labels_placed_for: object = None  # what the labels were last placed for

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
        self._vb.sigRangeChanged.connect(self._update_camera_layers)
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

    def set_zones(self, zones: Sequence[tuple[object, ...]]) -> None:
        """Show these safety zones: (name, lat, lon, radius in metres[, outline]),
        replacing the old set; an outline ((k, 2) metres on the map grid) is
        drawn instead of the circle (a polygon zone; the circle bounds it)."""
        names = [str(z[0]) for z in zones]
        rings = [np.asarray(z[4], dtype=np.float64) if len(z) > 4 and z[4] is not None
                 else None for z in zones]
        lat = np.array([z[1] for z in zones], dtype=np.float64)
        lon = np.array([z[2] for z in zones], dtype=np.float64)
        radius = np.array([z[3] for z in zones], dtype=np.float64)
        if not np.all(np.isfinite(radius) & (radius > 0)):
            raise ValueError("zone radius must be a positive number of metres")
        cx, cy = to_map(lat, lon)
        self._zone_layer.set_circles(cx, cy, radius, rings)
        self._zone_names = names
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
        self._zone_centres = np.column_stack([cx, cy]) if len(cx) else np.empty((0, 2))
        self._label_texts += 1
        self._apply_style()
        self._update_zone_labels()

    def set_readers(self, readers: list[tuple[str, float, float, float]]) -> None:
        """Tag readers: (name, lat, lon, range in metres), drawn as their range."""
        lat = np.array([r[1] for r in readers], dtype=np.float64)
        lon = np.array([r[2] for r in readers], dtype=np.float64)
        rng = np.array([r[3] for r in readers], dtype=np.float64)
        cx, cy = to_map(lat, lon)
        self._reader_layer.set_circles(cx, cy, rng)

    CAMERA_KINDS = ("live", "offline", "unplayable")

    def set_cameras(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64],
                    cones: list[npt.NDArray[np.float64]],
                    offline: npt.NDArray[np.bool_],
                    unplayable: npt.NDArray[np.bool_] | None = None,
                    ids: npt.ArrayLike | None = None) -> None:
        """Cameras at (x, y) metres with their view cones (one (k, 2) ring
        each, metres).  Offline cameras are drawn in the offline colour;
        ``unplayable`` ones (nothing to show: retired, in maintenance, no
        stream) as a dashed offline-colour outline, so an operator sees the
        street is covered on paper only.  ``ids`` (default 0..n-1) name
        them for ``camera_ids``."""
        n = len(cones)
        off = np.asarray(offline, dtype=bool).reshape(-1)
        dead = (np.zeros(n, dtype=bool) if unplayable is None
                else np.asarray(unplayable, dtype=bool).reshape(-1))
        if off.shape[0] != n or dead.shape[0] != n:
            raise ValueError(f"{n} cones need {n} offline and unplayable flags")
        kind = np.where(dead, 2, np.where(off, 1, 0)).astype(np.uint8)
        for layer, k in ((self._cone_layer, 0), (self._offline_cone_layer, 1),
                         (self._unplayable_cone_layer, 2)):
            layer.set_rings([c for c, ck in zip(cones, kind.tolist(), strict=True) if ck == k])
        self._camera_ids = (np.arange(n, dtype=np.int64) if ids is None
                            else np.asarray(ids, dtype=np.int64).reshape(-1))
        self._camera_kind = kind
        self._density_layer.set_points(np.asarray(x), np.asarray(y), self._basemap.bounds)
        self._update_camera_layers()

    def camera_ids(self, kind: str) -> list[int]:
        """Ids of the cameras drawn as ``kind`` ("live", "offline", "unplayable")."""
        code = self.CAMERA_KINDS.index(kind)
        return self._camera_ids[self._camera_kind == code].tolist()

    def camera_mode(self) -> str:
        """"cones" at street zoom, "density" at city zoom."""
        return "cones" if self._cone_layer.isVisible() else "density"

    def _update_camera_layers(self, *args: object) -> None:
        (x0, x1), _ = self._vb.viewRange()
        street = bool((x1 - x0) < self.STREET_ZOOM_M)
        self._cone_layer.setVisible(street)
        self._offline_cone_layer.setVisible(street)
        self._unplayable_cone_layer.setVisible(street)
        self._density_layer.setVisible(not street)

    def center_on(self, x: float, y: float, span_m: float = 800.0) -> None:
        """Centre the view on (x, y) metres, showing at least ``span_m`` each way."""
        if not (np.isfinite(x) and np.isfinite(y) and np.isfinite(span_m) and span_m > 0):
            raise ValueError(
                f"center_on needs finite x, y and a positive span, got {x}, {y}, {span_m}"
            )
        x, y, half = float(x), float(y), float(span_m) / 2.0  # numpy scalars reach Qt as floats
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

    def set_trail(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> None:
        """Draw the selected alert's child's recent path (map metres, oldest first)."""
        keep = np.isfinite(x) & np.isfinite(y)
        self._trail.setData(np.asarray(x)[keep], np.asarray(y)[keep])

    def clear_trail(self) -> None:
        self._trail.setData([], [])

    def trail_points(self) -> int:
        """How many points the trail has (what tests and the status bar read)."""
        data = self._trail.getData()
        return 0 if data[0] is None else len(data[0])

    def set_trails(self, x: npt.NDArray[np.float64], y: npt.NDArray[np.float64]) -> None:
        """Draw every child's trail at once: one polyline per child, NaN
        between children (``models.trails.Trails.segments``)."""
        self._trails.setData(np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64),
                             connect="finite")

    def clear_trails(self) -> None:
        self._trails.setData([], [])

    def trails_points(self) -> int:
        """Points in every child's trails, breaks included (what tests read)."""
        data = self._trails.getData()
        return 0 if data[0] is None else len(data[0])

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
        self._labels_placed_for = None  # a restyle may change what a label covers
        self._gv.setBackground(c["backgroundColor"])
        self._dong_layer.set_pen(_cosmetic_pen(c["dongColor"], 1.0))
        self._district_layer.set_pen(_cosmetic_pen(c["districtColor"], 1.0))
        self._zone_layer.set_style(_cosmetic_pen(c["zoneColor"], 1.0), c["zoneFillColor"])
        self._reader_layer.set_style(_cosmetic_pen(c["readerColor"], 1.0), c["readerFillColor"])
        self._cone_layer.set_style(_cosmetic_pen(c["cameraColor"], 1.0), c["cameraFillColor"])
        offline_fill = QColor(c["cameraOfflineColor"])
        offline_fill.setAlpha(50)
        self._offline_cone_layer.set_style(_cosmetic_pen(c["cameraOfflineColor"], 1.0),
                                           offline_fill)
        dashed = _cosmetic_pen(c["cameraOfflineColor"], 1.0)
        dashed.setStyle(Qt.PenStyle.DashLine)
        self._unplayable_cone_layer.set_style(dashed, QColor(0, 0, 0, 0))
        self._density_layer.set_color(c["cameraColor"])
        self._markers.set_style(
            [c["outsideColor"], c["insideColor"], c["alertColor"]],
            [self._marker_size, self._marker_size, self._alert_marker_size],
            [False, False, True],
        )
        self._highlight.set_color(c["highlightColor"])
        self._trail.setPen(pg.mkPen(c["trailColor"], width=2.5))
        self._trails.setPen(pg.mkPen(c["trailsColor"], width=1.5))
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

    def set_zone_counts(self, counts: Sequence[tuple[int, int] | None]) -> None:
        """Per zone (in ``set_zones`` order): children inside and uncertain
        (their fix's accuracy circle crosses the fence), shown under the name."""
        changed = False
        for label, name, count in zip(self._zone_labels, self._zone_names, counts,
                                      strict=False):
            text = name if count is None else (
                f"{name}\n{count[0]:,} in" + (f" · {count[1]:,} ?" if count[1] else ""))
            if label.toPlainText() != text:
                label.setText(text)
                changed = True
        if changed:
            self._label_texts += 1
            self._update_zone_labels()

    ZONE_LABEL_MIN_RADIUS_PX = 6.0
    ZONE_LABELS_ALWAYS_UP_TO = 12
    # More names than this in view cannot be read (a city's 1,000 zones at
    # city zoom): none is shown until the operator zooms in.
    ZONE_LABELS_MAX_SHOWN = 80
    _LABEL_CELL_PX = 128.0  # the grid that finds a label's neighbours

    def _update_zone_labels(self, *args: object) -> None:
        """Name zones only once their circles are big enough and few enough
        are in view, when there are many. Runs on every pan and zoom frame:
        the labels are placed again only when the zoom, the labels shown or
        their texts changed (a pan moves them all alike)."""
        n = len(self._zone_labels)
        if n <= self.ZONE_LABELS_ALWAYS_UP_TO:
            show = np.ones(n, dtype=bool)
        else:
            metres_per_px = self._vb.viewPixelSize()[0] or 1.0
            (x0, x1), (y0, y1) = self._vb.viewRange()
            cx, cy, r = self._zone_centres[:, 0], self._zone_centres[:, 1], self._zone_radii
            show = ((r / metres_per_px >= self.ZONE_LABEL_MIN_RADIUS_PX)
                    & (cx + r >= x0) & (cx - r <= x1) & (cy + r >= y0) & (cy - r <= y1))
            if show.sum() > self.ZONE_LABELS_MAX_SHOWN:
                show[:] = False
        zoom = tuple(f"{v:.6g}" for v in self._vb.viewPixelSize())  # a pan's rounding aside
        key = (zoom, show.tobytes(), self._label_texts)
        if key == self._labels_placed_for:
            return
        self._labels_placed_for = key
        for label, visible in zip(self._zone_labels, show.tolist(), strict=True):
            if label.isVisible() != visible:
                label.setVisible(visible)
        self._place_zone_labels()

    # Where a zone's name may go, in order of preference: above, below, right
    # and left of its circle, then at its four diagonals, as (anchor, direction
    # from the centre in radii).
    _ZONE_LABEL_SPOTS = (((0.5, 1.0), (0.0, 1.0)), ((0.5, 0.0), (0.0, -1.0)),
                         ((0.0, 0.5), (1.0, 0.0)), ((1.0, 0.5), (-1.0, 0.0)),
                         ((1.0, 1.0), (-0.7, 0.7)), ((0.0, 1.0), (0.7, 0.7)),
                         ((1.0, 0.0), (-0.7, -0.7)), ((0.0, 0.0), (0.7, -0.7)))

    def _place_zone_labels(self) -> None:
        """Put each shown zone name beside its circle where it hides no district
        name nor another zone's (Seoul Forest sits on 성동구's label point).
        Each candidate spot is checked against the labels in its grid cells
        only (checking it against every label placed was quadratic: seconds
        for a city's zones)."""
        pw, ph = self._vb.viewPixelSize()
        if not pw or not ph:
            return
        taken = _RectGrid(self._LABEL_CELL_PX)
        for label in self._district_labels:
            if label.isVisible():
                taken.add(_text_rect_px(label, label.pos().x(), label.pos().y(), (0.5, 0.5),
                                        pw, ph))
        for label, (x, y), r in zip(self._zone_labels, self._zone_centres.tolist(),
                                    self._zone_radii.tolist(), strict=True):
            if not label.isVisible():
                continue
            spots = [(anchor, x + dx * r, y + dy * r)
                     for anchor, (dx, dy) in self._ZONE_LABEL_SPOTS]
            rects = [_text_rect_px(label, px, py, anchor, pw, ph) for anchor, px, py in spots]
            covered = [taken.covered(rect) for rect in rects]
            best = covered.index(min(covered))  # the first free spot, or the least covering
            anchor, px, py = spots[best]
            label.setAnchor(anchor)
            label.setPos(px, py)
            taken.add(rects[best])

    def _on_scene_click(self, event: object) -> None:
        button = getattr(event, "button", lambda: None)()
        if button not in (Qt.MouseButton.LeftButton, Qt.MouseButton.RightButton):
            return
        scene_pos = event.scenePos()  # type: ignore[attr-defined]
        if not self._vb.sceneBoundingRect().contains(scene_pos):
            return
        pos = self._vb.mapSceneToView(scene_pos)
        x, y = float(pos.x()), float(pos.y())
        if button == Qt.MouseButton.RightButton:
            screen = event.screenPos()  # type: ignore[attr-defined]
            self.show_context_menu(x, y, QPoint(int(screen.x()), int(screen.y())))
        elif event.modifiers() & Qt.KeyboardModifier.ControlModifier:  # type: ignore[attr-defined]
            self.cameras_requested.emit(x, y)
        else:
            self.clicked.emit(x, y)

    def show_context_menu(self, x: float, y: float, at: QPoint | None = None) -> QMenu:
        """The right-click menu for map point (x, y) metres, popped up at
        screen point ``at`` (not shown when None); returned for tests."""
        if self.context_menu is not None:
            self.context_menu.deleteLater()
        # No parent: the map is a native child window (beside the video's),
        # and a popup parented to one makes Qt try to grab it.
        menu = QMenu()
        menu.setObjectName("mapMenu")
        action = menu.addAction(self.CAMERAS_HERE_TEXT)
        action.setObjectName("camerasHere")
        action.setToolTip("Rank the cameras around this point and show them in the CCTV grid")
        action.triggered.connect(lambda: self.cameras_requested.emit(x, y))
        self.context_menu = menu
        if at is not None:
            menu.popup(at)
        return menu


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


def _area(rect: QRectF) -> float:
    return max(0.0, rect.width()) * max(0.0, rect.height())


class _RectGrid:
    """Screen rectangles bucketed by grid cell: what a new one overlaps is
    found among its neighbours, not among all of them."""

    def __init__(self, cell: float) -> None:
        self.cell = cell
        self.cells: dict[tuple[int, int], list[QRectF]] = {}

    def _keys(self, rect: QRectF) -> list[tuple[int, int]]:
        c = self.cell
        return [(i, j) for i in range(int(rect.left() // c), int(rect.right() // c) + 1)
                for j in range(int(rect.top() // c), int(rect.bottom() // c) + 1)]

    def add(self, rect: QRectF) -> None:
        for key in self._keys(rect):
            self.cells.setdefault(key, []).append(rect)

    def covered(self, rect: QRectF) -> float:
        """The area of ``rect`` the rectangles added cover (each counted once)."""
        near = {id(t): t for key in self._keys(rect) for t in self.cells.get(key, ())}
        return sum(_area(rect.intersected(t)) for t in near.values())


def _text_rect_px(label: pg.TextItem, x: float, y: float, anchor: tuple[float, float],
                  pw: float, ph: float) -> QRectF:
    """The screen rectangle a label would cover at map point (x, y) with
    ``anchor``, in pixels (y up, like the map), with a small margin."""
    size = label.textItem.boundingRect().size()  # the text with its document margin
    w, h = size.width() + 4.0, size.height() + 2.0
    left = x / pw - anchor[0] * w
    bottom = y / ph - (1.0 - anchor[1]) * h
    return QRectF(left, bottom, w, h)
