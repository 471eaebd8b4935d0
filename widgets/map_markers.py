"""Every child on the map as one layer: `MarkerLayer` draws hundreds of
thousands of fixed-size markers, coloured by status, without a Python loop
per child.  `widgets.map_view.MapView` holds one; the other layers are in
`widgets.map_layers`."""

from __future__ import annotations

import functools

import numpy as np
import numpy.typing as npt
import pyqtgraph.functions as fn
from PySide6.QtCore import QRectF, Qt
from PySide6.QtGui import QColor, QImage, QPaintEngine, QPainter, QTransform

from widgets.map_layers import _cosmetic_pen, _guarded, _PixelPaddedItem


@functools.cache
def _stencil(size_px: int, round_: bool) -> npt.NDArray[np.int64]:
    """(k, 2) pixel offsets covering a marker of ``size_px`` centred on 0
    (kept: a pan asks for the same few every frame; never modified)."""
    lo = -(size_px // 2)
    d = np.arange(lo, lo + size_px)
    dx, dy = (a.ravel() for a in np.meshgrid(d, d))
    if round_ and size_px > 2:
        c = (size_px - 1) / 2.0 + lo
        keep = (dx - c) ** 2 + (dy - c) ** 2 <= (size_px / 2.0) ** 2
        dx, dy = dx[keep], dy[keep]
    offsets = np.column_stack([dx, dy]).astype(np.int64)
    offsets.setflags(write=False)
    return offsets


def _shift_max(dst: npt.NDArray[np.uint8], src: npt.NDArray[np.uint8], offset: int) -> None:
    """dst[i + offset] = max(dst[i + offset], src[i]) wherever both exist."""
    n = len(src)
    if offset >= 0:
        np.maximum(dst[offset:], src[: n - offset], out=dst[offset:])
    else:
        np.maximum(dst[:offset], src[-offset:], out=dst[:offset])


def _dilate_into(
    levels: npt.NDArray[np.uint8], centres: npt.NDArray[np.uint8],
    stencil: npt.NDArray[np.int64], width: int,
) -> None:
    """Stamp ``stencil`` at every non-zero pixel of ``centres`` into ``levels``
    (keeping the higher level), as whole-image shifts: a row of offsets once
    per distinct row of the stencil, then each row moved to its place.  The
    cost follows the image size, not the number of markers, which is what
    makes 580,000 children on a 1280x900 view cheap."""
    rows: dict[int, list[int]] = {}
    for dx, dy in stencil.tolist():
        rows.setdefault(dy, []).append(dx)
    stamped: dict[tuple[int, ...], npt.NDArray[np.uint8]] = {}
    for dy, dxs in rows.items():
        key = tuple(sorted(dxs))
        row = stamped.get(key)
        if row is None:
            row = np.zeros_like(centres)
            for dx in key:
                _shift_max(row, centres, dx)
            stamped[key] = row
        _shift_max(levels, row, dy * width)


class MarkerLayer(_PixelPaddedItem):
    """Every child as a fixed-size point, in one item, with no per-child Python.

    Two paint paths.  On screen (raster engine, no rotation) the markers are
    stamped into a one-byte-per-pixel numpy image of the view, holding each
    pixel's topmost status, then coloured through a palette into an ARGB
    image drawn at once.  A status with many markers is stamped as whole
    image shifts of a map of their centre pixels (`_dilate_into`), so the
    cost stops growing with the number of children once they outnumber the
    pixels: 580,000 children on the 1280x900 city view fall on about 200,000.
    A status with few markers (alerts) is stamped point by point.  The
    finished image is kept and drawn again while neither the data, the
    style nor the view changed (a highlight ring moving, a label).

    Elsewhere (SVG/print export, rotated views) the points go to
    ``QPainter.drawPoints`` from QPolygonF buffers filled through numpy views.
    Either way alerts are drawn last, on top, and markers keep their pixel
    size at any zoom.

    Positions are kept as float32 offsets from an origin near the data: half
    the memory of float64 and half the bytes to read each frame, and still
    exact to 2 mm 20 km from the origin.
    """

    N_STATUS = 3
    # A status is stamped by whole-image shifts once its markers times their
    # stencil's pixels pass this share of the image's pixels (measured: the
    # two ways cost the same at ~30,000 3-px markers on a 1280x900 view).
    # Tests move it to force a path.
    DENSE_AT = 1 / 5
    # Re-centre the float32 offsets once the data spans farther than this
    # from the origin (float32 steps are 8 mm at 100 km).
    ORIGIN_RANGE_M = 100_000.0

    def __init__(self) -> None:
        super().__init__()
        empty = np.empty(0, dtype=np.float32)
        self._xy: list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]] = [
            (empty, empty) for _ in range(self.N_STATUS)
        ]
        self._origin: tuple[float, float] | None = None
        self._colors = [QColor("white")] * self.N_STATUS
        self._sizes = [3] * self.N_STATUS
        self._round = [False, False, True]
        self._rect = QRectF()
        self._generation = 0  # bumped by every data or style change
        self._cache_key: tuple[object, ...] | None = None
        self._levels = np.zeros(0, dtype=np.uint8)
        self._image: QImage | None = None
        self.raster = True  # False forces drawPoints (tests, comparisons)
        self.dense_at = self.DENSE_AT
        self.frames_drawn = 0  # paints so far; benchmarks count frames with it
        self.frames_rendered = 0  # paints that had to stamp the markers again

    def set_style(self, colors: list[QColor], sizes_px: list[int], round_: list[bool]) -> None:
        """Colour, size in pixels and round/square shape per status (outside, inside, alert)."""
        self._colors = [QColor(c) for c in colors]
        self._sizes = [max(1, int(s)) for s in sizes_px]
        self._round = list(round_)
        self._pad_px = max(self._sizes) / 2.0 + 2.0
        self._generation += 1
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
        finite = np.isfinite(xs)
        finite &= np.isfinite(ys)
        masks = [(st == k) & finite for k in range(self.N_STATUS)]
        origin = self._origin
        if origin is None:  # centred on any finite point; re-centred below if far
            first = int(np.argmax(finite)) if finite.size else 0
            origin = ((float(xs[first]), float(ys[first])) if finite.size and finite[first]
                      else (0.0, 0.0))
        parts, bounds = self._split(xs, ys, masks, origin)
        if bounds is not None and max(map(abs, bounds)) > self.ORIGIN_RANGE_M:
            x0, x1, y0, y1 = bounds
            origin = (origin[0] + (x0 + x1) / 2.0, origin[1] + (y0 + y1) / 2.0)
            parts, bounds = self._split(xs, ys, masks, origin)
        if bounds is not None:
            x0, x1, y0, y1 = bounds
            # Widen by a metre so one point (or a line of them) still has an area.
            rect = QRectF(origin[0] + x0 - 1.0, origin[1] + y0 - 1.0, x1 - x0 + 2.0,
                          y1 - y0 + 2.0)
            self._origin = origin
        else:
            rect = QRectF()
        self._xy = parts
        self._generation += 1
        if rect != self._rect:
            self.prepareGeometryChange()
            self._rect = rect
        self.update()

    @staticmethod
    def _split(
        xs: npt.NDArray[np.float64], ys: npt.NDArray[np.float64],
        masks: list[npt.NDArray[np.bool_]], origin: tuple[float, float],
    ) -> tuple[
        list[tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]],
        tuple[float, float, float, float] | None,
    ]:
        """Offsets from ``origin`` per status and their (x0, x1, y0, y1)
        bounds, None when no point is drawn.  The whole arrays are narrowed
        to float32 first (the subtraction itself is in float64), so the
        copies per status move half the bytes."""
        rx = np.empty(len(xs), dtype=np.float32)
        ry = np.empty(len(ys), dtype=np.float32)
        np.subtract(xs, origin[0], out=rx, casting="same_kind")
        np.subtract(ys, origin[1], out=ry, casting="same_kind")
        parts = [(rx[m], ry[m]) for m in masks]
        drawn = [(px, py) for px, py in parts if len(px)]
        if not drawn:
            return parts, None
        return parts, (min(float(px.min()) for px, _ in drawn),
                       max(float(px.max()) for px, _ in drawn),
                       min(float(py.min()) for _, py in drawn),
                       max(float(py.max()) for _, py in drawn))

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
        ox, oy = self._origin or (0.0, 0.0)
        for (xs, ys), color, size, round_ in zip(
            self._xy, self._colors, self._sizes, self._round, strict=True
        ):
            if not len(xs):
                continue
            cap = Qt.PenCapStyle.RoundCap if round_ else Qt.PenCapStyle.SquareCap
            p.setPen(_cosmetic_pen(color, float(size) * dpr, cap))
            poly = fn.create_qpolygonf(len(xs))
            buf = fn.ndarray_from_qpolygonf(poly)
            np.add(xs, ox, out=buf[:, 0], dtype=np.float64)
            np.add(ys, oy, out=buf[:, 1], dtype=np.float64)
            p.drawPoints(poly)

    def _paint_raster(self, p: QPainter, transform: QTransform) -> None:
        view = self.viewRect()
        if view is None or not any(len(x) for x, _ in self._xy):
            return
        dpr = p.device().devicePixelRatioF() if p.device() is not None else 1.0
        target = transform.mapRect(view).toAlignedRect()
        width = min(int(np.ceil(target.width() * dpr)), 16384)
        height = min(int(np.ceil(target.height() * dpr)), 16384)
        if width <= 0 or height <= 0:
            return
        stencils = [
            _stencil(max(1, round(s * dpr)), r)
            for s, r in zip(self._sizes, self._round, strict=True)
        ]
        reach = int(max(np.abs(st).max() for st in stencils))
        # A gutter round the view: markers off the view are clamped to its
        # outer edge, where their stamps cannot reach the view (no per-marker
        # "is it visible" test and no compaction of the arrays).
        gutter = 2 * reach + 1
        # Rows of a whole number of 32-bit words, as QImage wants them.
        w, h = (width + 2 * gutter + 3) // 4 * 4, height + 2 * gutter
        sx, sy = transform.m11() * dpr, transform.m22() * dpr
        ox, oy = self._origin or (0.0, 0.0)
        # Device pixel column and row of the origin, in the gutter-framed image.
        cx = (ox * transform.m11() + transform.dx() - target.left()) * dpr + gutter
        cy = (oy * transform.m22() + transform.dy() - target.top()) * dpr + gutter
        key = (self._generation, sx, sy, cx, cy, w, h, dpr)
        if key != self._cache_key or self._image is None:
            self._render(stencils, sx, sy, cx, cy, w, h, reach, gutter)
            self._cache_key = key
        p.save()
        p.resetTransform()
        p.drawImage(
            QRectF(target.left(), target.top(), width / dpr, height / dpr),
            self._image,
            QRectF(gutter, gutter, width, height),
        )
        p.restore()

    def _render(
        self, stencils: list[npt.NDArray[np.int64]], sx: float, sy: float, cx: float, cy: float,
        w: int, h: int, reach: int, gutter: int,
    ) -> None:
        self.frames_rendered += 1
        n = w * h
        if self._levels.size < n:
            self._levels = np.zeros(n, dtype=np.uint8)
        levels = self._levels[:n]
        levels.fill(0)
        lo_x, hi_x = gutter - reach - 1, w - gutter + reach
        lo_y, hi_y = gutter - reach - 1, h - gutter + reach
        # Statuses in drawing order; a pixel keeps the highest (alerts on top).
        for level, ((xs, ys), stencil) in enumerate(zip(self._xy, stencils, strict=True), 1):
            if not len(xs):
                continue
            idx = self._pixel_index(xs, ys, (sx, cx, lo_x, hi_x), (sy, cy, lo_y, hi_y), w,
                                    exact=n >= 1 << 24)
            if len(xs) * (len(stencil) - 1) > self.dense_at * n:
                centres = np.zeros(n, dtype=np.uint8)
                centres[idx] = level
                _dilate_into(levels, centres, stencil, w)
            else:
                for dx, dy in stencil.tolist():
                    levels[idx + (dy * w + dx)] = level
        # The palette as an indexed image: Qt's conversion to ARGB is about
        # twice as fast as a numpy lookup table, and the result owns its pixels.
        indexed = QImage(levels.data, w, h, w, QImage.Format.Format_Indexed8)
        indexed.setColorTable([0, *(c.rgba() for c in self._colors)])
        self._image = indexed.convertToFormat(QImage.Format.Format_ARGB32_Premultiplied)

    @staticmethod
    def _pixel_index(
        xs: npt.NDArray[np.float32], ys: npt.NDArray[np.float32],
        x_map: tuple[float, float, int, int], y_map: tuple[float, float, int, int],
        width: int, exact: bool,
    ) -> npt.NDArray[np.intp]:
        """Flat pixel index of each marker's centre; ``*_map`` is (scale,
        offset, lowest, highest pixel) per axis.  In float32 (half the bytes
        of float64 each pass), unless ``exact`` because the image has more
        pixels than float32 counts exactly."""
        dtype = np.float64 if exact else np.float32
        sx, cx, lo_x, hi_x = x_map
        sy, cy, lo_y, hi_y = y_map
        index = np.multiply(ys, sy, dtype=dtype)
        index += cy + 0.5
        np.floor(index, out=index)  # whole rows before they are multiplied by the width
        np.clip(index, lo_y, hi_y, out=index)
        index *= width
        col = np.multiply(xs, sx, dtype=dtype)
        col += cx + 0.5
        np.clip(col, lo_x, hi_x, out=col)
        index += col
        # Every value is positive here, so the cast floors the column.
        return index.astype(np.intp)
