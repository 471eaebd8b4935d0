"""Drawing and editing a safety zone on the live map, for the admin.

A mode the admin enters on purpose (the Zones tab's "Draw polygon" or
"Edit on map"), never a side effect of clicking around the map: a fence
moved by a stray drag would silently change who counts as "at school".

- **Draw**: click the corners; double-click or Enter closes the polygon
  (at least three corners), Backspace takes back the last corner, Esc
  cancels. Dragging still pans the map, so a long fence can be drawn
  across the screen edge.
- **Edit**: the zone's outline gets handles: drag inside it to move the
  whole zone, drag a corner to reshape (a circle: its handle sets the
  radius), click an edge to add a corner, right-click a corner to remove
  it. Enter applies, Delete asks to delete the zone, Esc puts it back.

The editor only produces a shape (``ZoneShape``, WGS84 like the store and
the wire); the console's controller sends it to the engine, and the zone
comes back to every console through ``ZoneRegistry``. It attaches to a
``MapView`` through its public API: the ViewBox (``view_box``) for overlay
items and coordinates, and the scene's click and move signals. Map metres
are EPSG:5179 and become longitude/latitude through ``models.geo``.

Run ``python -m widgets.zone_editor [--shot PATH]`` to draw on the map alone.
"""

from __future__ import annotations

import math
import sys
from dataclasses import dataclass
from typing import ClassVar, Literal

import numpy as np
import numpy.typing as npt
import pyqtgraph as pg
import shapely
from PySide6.QtCore import QEvent, QObject, QPointF, Qt, Signal
from PySide6.QtGui import QColor, QKeyEvent
from PySide6.QtWidgets import QLabel, QWidget
from shapely.geometry import Point, Polygon

from models.geo import lonlat_to_map, to_map, to_wgs84
from models.messages import ZoneView
from models.zones import spec_of
from widgets.map_layers import _Z_HIGHLIGHT
from widgets.map_view import MapView

__all__ = ["ZoneEditor", "ZoneShape", "circle_from_map", "polygon_from_map"]

Mode = Literal["idle", "drawing", "editing"]
DECIMALS = 7  # degrees: about a centimetre, finer than any fence needs
_Z_EDIT = _Z_HIGHLIGHT + 1


@dataclass(frozen=True)
class ZoneShape:
    """A zone's shape in WGS84 lon/lat: a ``Polygon``, or a ``Point``
    centre with ``radius_m``."""

    geometry: Point | Polygon
    radius_m: float = 0.0

    @property
    def is_circle(self) -> bool:
        return isinstance(self.geometry, Point)

    def geojson(self) -> str:
        """The geometry as GeoJSON text (what ``SaveZone.geometry`` carries)."""
        return str(shapely.to_geojson(self.geometry))

    @classmethod
    def of(cls, view: ZoneView) -> ZoneShape:
        spec = spec_of(view)
        return cls(spec.geometry, spec.radius_m)

    def describe(self) -> str:
        """In words, for the form: "circle, 300 m" or "polygon, 6 corners, 8.2 ha"."""
        if isinstance(self.geometry, Point):
            return f"circle, radius {self.radius_m:,.0f} m"
        corners = len(self.geometry.exterior.coords) - 1
        area = float(shapely.transform(self.geometry, lonlat_to_map).area)
        return f"polygon, {corners} corners, {area / 1e4:,.1f} ha"


def polygon_from_map(xy: npt.ArrayLike) -> ZoneShape:
    """A polygon from its corners in map metres ((k, 2), open or closed)."""
    pts = np.asarray(xy, dtype=np.float64).reshape(-1, 2)
    if len(pts) > 1 and np.array_equal(pts[0], pts[-1]):
        pts = pts[:-1]
    lat, lon = to_wgs84(pts[:, 0], pts[:, 1])
    ring = np.column_stack([np.round(lon, DECIMALS), np.round(lat, DECIMALS)])
    return ZoneShape(Polygon(ring))


def circle_from_map(x: float, y: float, radius_m: float) -> ZoneShape:
    """A circle from its centre in map metres; the radius to the decimetre."""
    lat, lon = to_wgs84(float(x), float(y))
    return ZoneShape(Point(round(lon, DECIMALS), round(lat, DECIMALS)),
                     round(float(radius_m), 1))


class ZoneEditor(QObject):
    """Draws a new polygon zone or edits one zone's shape on ``map_view``."""

    drawn = Signal(object)  # ZoneShape: a new polygon was closed (now editable)
    apply_requested = Signal(object, object)  # zone id (None: the new one), ZoneShape
    delete_requested = Signal(int)  # zone id
    cancelled = Signal()
    mode_changed = Signal(str)

    HINTS: ClassVar[dict[str, str]] = {
        "drawing": ("Draw a zone: click each corner · double-click or Enter to finish · "
                    "Backspace removes the last corner · Esc cancels"),
        "editing": ("Drag inside the zone to move it · drag a corner to reshape · click an "
                    "edge to add a corner · Enter applies · Esc puts it back"),
        "editing_existing": ("Drag inside the zone to move it · drag a corner to reshape · "
                             "click an edge to add a corner · Enter saves · Delete deletes "
                             "the zone · Esc puts it back"),
    }

    def __init__(self, map_view: MapView, parent: QObject | None = None) -> None:
        super().__init__(parent)
        self.map = map_view
        self.vb: pg.ViewBox = map_view.view_box
        scene = self.vb.scene()
        self.view = scene.views()[0]  # the GraphicsView: where keys and clicks arrive
        self._mode: Mode = "idle"
        self._zone_id: int | None = None
        self._vertices: list[tuple[float, float]] = []  # map metres, while drawing
        self._cursor: tuple[float, float] | None = None
        self._roi: pg.ROI | None = None
        self._line = pg.PlotCurveItem(antialias=True)
        self._rubber = pg.PlotCurveItem(antialias=True)
        self._corners = pg.ScatterPlotItem(pxMode=True, size=8)
        for item in (self._line, self._rubber, self._corners):
            item.setZValue(_Z_EDIT)
            item.hide()
            self.vb.addItem(item, ignoreBounds=True)
        self.hint = QLabel("", map_view)
        self.hint.setObjectName("mapEditHint")
        self.hint.setWordWrap(True)
        self.hint.setAutoFillBackground(True)
        self.hint.setMargin(6)
        self.hint.hide()
        scene.sigMouseClicked.connect(self._clicked)
        scene.sigMouseMoved.connect(self._moved)
        self.view.installEventFilter(self)
        map_view.installEventFilter(self)

    # ------------------------------------------------------------ state
    @property
    def mode(self) -> Mode:
        return self._mode

    @property
    def zone_id(self) -> int | None:
        """The zone being edited (None: a new one, or nothing)."""
        return self._zone_id

    def vertices(self) -> npt.NDArray[np.float64]:
        """The corners placed so far (drawing) or the edited outline, in map metres."""
        if self._mode == "drawing":
            return np.array(self._vertices, dtype=np.float64).reshape(-1, 2)
        if isinstance(self._roi, pg.PolyLineROI):
            return self._roi_corners(self._roi)
        return np.empty((0, 2))

    def shape(self) -> ZoneShape | None:
        """The shape as it stands in the editor (None: nothing, or fewer
        than three corners drawn)."""
        if self._mode == "drawing":
            return polygon_from_map(self._vertices) if len(self._vertices) >= 3 else None
        if isinstance(self._roi, pg.PolyLineROI):
            return polygon_from_map(self._roi_corners(self._roi))
        if isinstance(self._roi, pg.CircleROI):
            return circle_from_map(*self._circle(self._roi))
        return None

    # ---------------------------------------------------------- actions
    def start_drawing(self) -> None:
        """Start a new polygon (whatever was being edited is dropped)."""
        self._reset()
        self._set_mode("drawing")
        self._style()
        self.view.setFocus(Qt.FocusReason.OtherFocusReason)

    def edit(self, zone_id: int | None, shape: ZoneShape, centre: bool = True) -> bool:
        """Make ``shape`` editable on the map (``zone_id`` None: a new zone
        not stored yet). False for a polygon with holes: those are edited
        in a GeoJSON file, as moving the outline alone would misplace them."""
        geom = shape.geometry
        if isinstance(geom, Polygon) and len(geom.interiors):
            return False
        self._reset()
        self._zone_id = zone_id
        pen = pg.mkPen(self._color("highlightColor"), width=2)
        hover = pg.mkPen(self._color("trailColor"), width=3)
        handle = pg.mkPen(self._color("highlightColor"), width=1.5)
        if isinstance(geom, Point):
            x, y = to_map(geom.y, geom.x)
            r = shape.radius_m
            roi: pg.ROI = pg.CircleROI((x - r, y - r), radius=r, pen=pen, hoverPen=hover,
                                       handlePen=handle, movable=True)
            span = 3 * r
        else:
            ring = np.asarray(shapely.transform(geom, lonlat_to_map).exterior.coords)[:-1]
            origin = ring.mean(axis=0)
            roi = pg.PolyLineROI((ring - origin).tolist(), closed=True,
                                 pos=tuple(origin.tolist()), pen=pen, hoverPen=hover,
                                 handlePen=handle, movable=True)
            x, y = float(origin[0]), float(origin[1])
            span = 1.6 * float(np.ptp(ring, axis=0).max())
        # pyqtgraph's own z (10) is above every map layer; ROI.setZValue would
        # lift the handles but not a polygon's edges, which would then catch
        # every drag meant for a corner.
        self.vb.addItem(roi, ignoreBounds=True)
        self._roi = roi
        self._set_mode("editing")
        if centre:
            self.map.center_on(x, y, max(span, 300.0))
        self.view.setFocus(Qt.FocusReason.OtherFocusReason)
        return True

    def finish(self) -> bool:
        """Drawing: close the polygon (three corners at least), which stays
        editable, and say so (``drawn``). Editing: ask to apply it."""
        if self._mode == "drawing":
            if len(self._vertices) < 3:
                self._say("A zone needs at least three corners: keep clicking, or Esc.")
                return False
            shape = polygon_from_map(self._vertices)
            if not self.edit(None, shape, centre=False):
                return False
            self.drawn.emit(shape)
            return True
        if self._mode == "editing":
            current = self.shape()
            if current is not None:
                self.apply_requested.emit(self._zone_id, current)
                return True
        return False

    def cancel(self) -> None:
        """Drop what was drawn or put the edited zone back as it was."""
        if self._mode == "idle":
            return
        self._reset()
        self._set_mode("idle")
        self.cancelled.emit()

    def clear(self) -> None:
        """Back to idle without a word (the zone was saved, or the admin
        signed out)."""
        self._reset()
        self._set_mode("idle")

    def undo_vertex(self) -> None:
        if self._mode == "drawing" and self._vertices:
            self._vertices.pop()
            self._redraw()

    def add_vertex(self, x: float, y: float) -> None:
        """A corner at map metres (x, y), as a click puts it."""
        if self._mode != "drawing" or not (math.isfinite(x) and math.isfinite(y)):
            return
        if self._vertices and self._vertices[-1] == (x, y):
            return  # the second click of a double-click lands on the same point
        self._vertices.append((x, y))
        self._redraw()

    # --------------------------------------------------------- events
    def eventFilter(self, watched: QObject, event: QEvent) -> bool:
        if self._mode != "idle" and event.type() == QEvent.Type.KeyPress:
            assert isinstance(event, QKeyEvent)
            return self._key(event.key())
        if watched is self.map and event.type() == QEvent.Type.Resize:
            self._place_hint()
        return False

    def _key(self, key: int) -> bool:
        if key in (Qt.Key.Key_Return, Qt.Key.Key_Enter):
            self.finish()
        elif key == Qt.Key.Key_Escape:
            self.cancel()
        elif key == Qt.Key.Key_Backspace and self._mode == "drawing":
            self.undo_vertex()
        elif key == Qt.Key.Key_Delete and self._mode == "editing" and self._zone_id is not None:
            self.delete_requested.emit(self._zone_id)
        else:
            return False
        return True

    def _clicked(self, event: object) -> None:
        if self._mode != "drawing":
            return
        if event.button() != Qt.MouseButton.LeftButton:  # type: ignore[attr-defined]
            return
        if event.double():  # type: ignore[attr-defined]
            self.finish()
            return
        p = self.vb.mapSceneToView(event.scenePos())  # type: ignore[attr-defined]
        self.add_vertex(float(p.x()), float(p.y()))

    def _moved(self, scene_pos: QPointF) -> None:
        if self._mode != "drawing" or not self._vertices:
            return
        p = self.vb.mapSceneToView(scene_pos)
        self._cursor = (float(p.x()), float(p.y()))
        self._redraw_rubber()

    # -------------------------------------------------------- internals
    def _set_mode(self, mode: Mode) -> None:
        self._mode = mode
        key = "editing_existing" if mode == "editing" and self._zone_id is not None else mode
        self._say(self.tr(self.HINTS[key]) if key in self.HINTS else "")
        self.mode_changed.emit(mode)

    def _say(self, text: str) -> None:
        self.hint.setText(text)
        self.hint.setVisible(bool(text))
        self._place_hint()

    def _place_hint(self) -> None:
        width = max(200, min(self.map.width() - 16, 760))
        self.hint.setFixedWidth(width)
        self.hint.adjustSize()
        self.hint.move(8, 8)
        self.hint.raise_()

    def _reset(self) -> None:
        if self._roi is not None:
            self._drop(self._roi)
            self._roi = None
        self._vertices = []
        self._cursor = None
        self._zone_id = None
        for item in (self._line, self._rubber, self._corners):
            item.hide()

    def _drop(self, roi: pg.ROI) -> None:
        """Take an ROI off the map for good. Its handles and edges go first:
        an ROI left to the garbage collector with them (they refer to each
        other) crashes PySide when the cycle is freed."""
        if isinstance(roi, pg.PolyLineROI):
            roi.clearPoints()
        else:
            for handle in roi.getHandles():
                roi.removeHandle(handle)
        self.vb.removeItem(roi)
        roi.deleteLater()

    def _color(self, name: str) -> QColor:
        value = self.map.property(name)
        return QColor(value) if isinstance(value, QColor) else QColor("#ffffff")

    def _style(self) -> None:
        line = self._color("highlightColor")
        self._line.setPen(pg.mkPen(line, width=2))
        rubber = pg.mkPen(line, width=1.5)
        rubber.setStyle(Qt.PenStyle.DashLine)
        self._rubber.setPen(rubber)
        self._corners.setPen(pg.mkPen(line, width=1.5))
        self._corners.setBrush(pg.mkBrush(self._color("zoneColor")))

    def _redraw(self) -> None:
        xy = self.vertices()
        self._line.setData(xy[:, 0], xy[:, 1])
        self._corners.setData(xy[:, 0], xy[:, 1])
        for item in (self._line, self._corners):
            item.setVisible(len(xy) > 0)
        self._redraw_rubber()

    def _redraw_rubber(self) -> None:
        """The dashed edges from the last corner to the cursor and back to
        the first: the polygon as it would close."""
        if not self._vertices or self._cursor is None:
            self._rubber.hide()
            return
        pts = [self._vertices[-1], self._cursor, self._vertices[0]]
        xs, ys = zip(*pts, strict=True)
        self._rubber.setData(list(xs), list(ys))
        self._rubber.show()

    @staticmethod
    def _roi_corners(roi: pg.PolyLineROI) -> npt.NDArray[np.float64]:
        pts = [roi.mapToParent(h.pos()) for h in roi.getHandles()]
        return np.array([(p.x(), p.y()) for p in pts], dtype=np.float64).reshape(-1, 2)

    @staticmethod
    def _circle(roi: pg.CircleROI) -> tuple[float, float, float]:
        pos, size = roi.pos(), roi.size()
        r = float(size.x()) / 2.0
        return float(pos.x()) + r, float(pos.y()) + r, r


# --------------------------------------------------------------- standalone

def main(argv: list[str] | None = None) -> int:
    """Draw on the real map: a polygon is drawn near Seoul Forest by script
    (as clicks would place it), then edited; ``--shot`` saves a picture."""
    import argparse

    from PySide6.QtCore import QTimer
    from PySide6.QtWidgets import QApplication, QVBoxLayout

    from console.theme import apply_theme

    parser = argparse.ArgumentParser(description="The zone editor on the live map")
    parser.add_argument("--shot", help="save a PNG of the window and quit")
    parser.add_argument("--mode", choices=("drawing", "editing"), default="drawing")
    args = parser.parse_args(argv)
    app = QApplication.instance() or QApplication(sys.argv[:1])
    apply_theme(app)  # type: ignore[arg-type]
    window = QWidget()
    window.setWindowTitle("childsafe — zone editor (demo)")
    map_view = MapView()
    QVBoxLayout(window).addWidget(map_view)
    window.resize(1100, 760)
    editor = ZoneEditor(map_view, window)
    cx, cy = to_map(37.5444, 127.0374)
    map_view.set_zones([("서울숲", 37.5444, 127.0374, 500.0)])
    map_view.center_on(cx, cy, 1600.0)
    editor.drawn.connect(lambda s: print("drawn:", s.geojson()))
    editor.apply_requested.connect(lambda z, s: print("apply:", z, s.geojson()))
    window.show()
    corners = [(-300.0, -250.0), (250.0, -320.0), (380.0, 150.0), (-100.0, 380.0),
               (-420.0, 90.0)]
    editor.start_drawing()
    for dx, dy in corners[:4 if args.mode == "drawing" else 5]:
        editor.add_vertex(cx + dx, cy + dy)
    if args.mode == "drawing":
        editor._moved(map_view.view_box.mapViewToScene(QPointF(cx - 420.0, cy + 90.0)))
    else:
        editor.finish()
    if args.shot:
        def shoot() -> None:
            window.grab().save(args.shot)
            app.quit()
        QTimer.singleShot(400, shoot)
    return app.exec()


if __name__ == "__main__":
    sys.exit(main())
