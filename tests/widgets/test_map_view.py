"""widgets.map_view: the live map, rendered offscreen and read back as pixels."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import numpy.typing as npt
import pytest
from PySide6.QtCore import QPointF, Qt
from PySide6.QtGui import QColor, QImage
from pytestqt.qtbot import QtBot

from models.basemap import Basemap, load_basemap
from models.geo import to_map
from widgets.map_view import DEFAULTS, DEMO_ZONES, MapView

# Pure, distinct colours so pixels can be told apart exactly.
TEST_QSS = """
MapView {
    qproperty-backgroundColor: #000000;
    qproperty-dongColor: #000040;
    qproperty-districtColor: #4080c0;
    qproperty-outsideColor: #ff00ff;
    qproperty-insideColor: #00ff00;
    qproperty-alertColor: #ff0000;
    qproperty-highlightColor: #ffff00;
    qproperty-zoneColor: #00ffff;
    qproperty-zoneFillColor: rgba(0, 0, 255, 255);
    qproperty-markerSize: 5;
    qproperty-alertMarkerSize: 9;
}
"""


@pytest.fixture(scope="module")
def seoul() -> Basemap:
    return load_basemap()


@pytest.fixture
def view(qtbot: QtBot, seoul: Basemap, caplog: pytest.LogCaptureFixture) -> Iterator[MapView]:
    w = MapView(basemap=seoul)
    qtbot.addWidget(w)
    w.setStyleSheet(TEST_QSS)
    w.resize(800, 600)
    w.show()
    qtbot.waitExposed(w)
    w.fit_seoul()
    yield w
    # paint() logs instead of raising (an exception there would crash PySide6).
    errors = [r for r in caplog.records
              if r.name.startswith("widgets.map_") and r.levelname == "ERROR"]
    assert errors == []


def pixels(view: MapView, logical: bool = True) -> npt.NDArray[np.uint32]:
    """The widget as (h, w) 0xRRGGBB values, one per logical pixel.

    On a HiDPI screen (QT_SCALE_FACTOR=2) every other device pixel is kept,
    which loses half of a 1-device-pixel line: count those with ``logical=False``.
    """
    pixmap = view.grab()
    step = round(pixmap.devicePixelRatio()) if logical else 1
    image = pixmap.toImage().convertToFormat(QImage.Format.Format_RGB32)
    buf = np.frombuffer(image.constBits(), dtype=np.uint32, count=image.height() * image.width())
    return (buf.reshape(image.height(), image.width())[::step, ::step] & 0xFFFFFF).copy()


def rgb(name: str) -> int:
    return QColor(name).rgb() & 0xFFFFFF


def at(px: npt.NDArray[np.uint32], view: MapView, x: float, y: float) -> int:
    p = view.to_widget(x, y)
    return int(px[round(p.y()), round(p.x())])


def grid_inside_seoul(seoul: Basemap, n: int) -> tuple[npt.NDArray[np.float64], ...]:
    """Points on a grid over Seoul, clear of the district labels (drawn above markers)."""
    min_x, min_y, max_x, max_y = seoul.bounds
    gx, gy = np.meshgrid(
        np.linspace(min_x + 8000, max_x - 8000, n), np.linspace(min_y + 6000, max_y - 6000, n)
    )
    gx, gy = gx.ravel(), gy.ravel()
    labels = np.array([d.label_point for d in seoul.districts])
    d2 = (gx[:, None] - labels[None, :, 0]) ** 2 + (gy[:, None] - labels[None, :, 1]) ** 2
    clear = d2.min(axis=1) > 2000.0**2
    return gx[clear], gy[clear]


def test_qss_properties_set_colours(view: MapView) -> None:
    assert view.insideColor == QColor("#00ff00")
    assert view.outsideColor == QColor("#ff00ff")
    assert view.zoneFillColor == QColor(0, 0, 255, 255)
    assert view.markerSize == 5
    assert view.alertMarkerSize == 9
    view.insideColor = QColor("#123456")
    assert view.property("insideColor") == QColor("#123456")


def test_defaults_without_a_theme(qtbot: QtBot, seoul: Basemap) -> None:
    w = MapView(basemap=seoul)
    qtbot.addWidget(w)
    for name, value in DEFAULTS.items():
        assert w.property(name) == QColor(value), name


def test_boundaries_are_drawn(view: MapView) -> None:
    px = pixels(view, logical=False)
    district = np.count_nonzero(px == rgb("#4080c0"))
    dong = np.count_nonzero(px == rgb("#000040"))
    assert district > 2000, district
    assert dong > 2000, dong
    assert np.count_nonzero(px == 0) > 0.3 * px.size  # background around the city


@pytest.mark.parametrize("raster", [True, False], ids=["raster", "drawPoints"])
def test_markers_are_drawn_where_the_children_are(
    view: MapView, seoul: Basemap, raster: bool
) -> None:
    view.markers.raster = raster
    x, y = grid_inside_seoul(seoul, 6)
    status = (np.arange(len(x)) % 3).astype(np.uint8)
    view.set_positions(x, y, status)
    px = pixels(view)
    expected = {0: rgb("#ff00ff"), 1: rgb("#00ff00"), 2: rgb("#ff0000")}
    for xi, yi, s in zip(x, y, status, strict=True):
        assert at(px, view, xi, yi) == expected[int(s)], (xi, yi, s)
    # Fixed pixel size: a 5 px square, a 9 px disc.
    n_outside, _, n_alert = view.markers.counts
    assert len(x) >= 12 and n_alert >= 3
    assert np.count_nonzero(px == expected[0]) == n_outside * 25
    assert n_alert * 45 < np.count_nonzero(px == expected[2]) < n_alert * 81


def test_markers_keep_their_pixel_size_when_zooming(view: MapView, qtbot: QtBot) -> None:
    x0, y0 = to_map(37.5444, 127.0374)
    view.set_positions(np.array([x0]), np.array([y0]), np.array([0], dtype=np.uint8))
    before = np.count_nonzero(pixels(view) == rgb("#ff00ff"))
    view.center_on(x0, y0, 300)
    after = np.count_nonzero(pixels(view) == rgb("#ff00ff"))
    assert before == after == 25


def test_nan_positions_are_not_drawn(view: MapView, seoul: Basemap) -> None:
    x, y = grid_inside_seoul(seoul, 4)
    x[::2] = np.nan
    y[1::4] = np.nan
    status = np.zeros(len(x), dtype=np.uint8)
    view.set_positions(x, y, status)
    finite = np.isfinite(x) & np.isfinite(y)
    assert view.markers.counts == (int(finite.sum()), 0, 0)
    px = pixels(view)
    assert np.count_nonzero(px == rgb("#ff00ff")) == 25 * int(finite.sum())
    view.set_positions(np.full(5, np.nan), np.full(5, np.nan), np.zeros(5, dtype=np.uint8))
    assert np.count_nonzero(pixels(view) == rgb("#ff00ff")) == 0
    view.set_positions(np.empty(0), np.empty(0), np.empty(0, dtype=np.uint8))
    pixels(view)


def test_bad_marker_input_is_rejected(view: MapView) -> None:
    with pytest.raises(ValueError):
        view.set_positions(np.zeros(3), np.zeros(2), np.zeros(3, dtype=np.uint8))
    with pytest.raises(ValueError):
        view.set_positions(np.zeros(3), np.zeros(3), np.array([0, 1, 7], dtype=np.uint8))
    with pytest.raises(ValueError):
        view.set_positions(np.zeros((2, 2)), np.zeros((2, 2)), np.zeros((2, 2), dtype=np.uint8))


def test_center_on_changes_the_view(view: MapView) -> None:
    (ax, bx), _ = view.view_range()
    assert bx - ax > 30_000  # the whole city
    x, y = to_map(37.5085, 126.8875)
    view.center_on(x, y)
    (cx0, cx1), (cy0, cy1) = view.view_range()
    assert (cx0 + cx1) / 2 == pytest.approx(x, abs=1)
    assert (cy0 + cy1) / 2 == pytest.approx(y, abs=1)
    assert 800 <= min(cx1 - cx0, cy1 - cy0) < 1000
    with pytest.raises(ValueError):
        view.center_on(np.nan, y)
    view.center_on(np.float64(x), np.float64(y), np.float64(300.0))  # numpy scalars too
    (cx0, cx1), _ = view.view_range()
    assert cx1 - cx0 < 800  # street zoom: the camera layers switched without an error
    view.fit_seoul()
    (fx0, fx1), (fy0, fy1) = view.view_range()
    min_x, min_y, max_x, max_y = view.basemap.bounds
    assert fx0 <= min_x and fx1 >= max_x and fy0 <= min_y and fy1 >= max_y


def test_zones_are_filled_circles(view: MapView) -> None:
    view.set_zones(DEMO_ZONES)
    x, y = to_map(37.5444, 127.0374)
    view.center_on(x, y, 2000)
    px = pixels(view)
    assert at(px, view, x, y) == rgb("#0000ff")
    assert np.count_nonzero(px == rgb("#0000ff")) > 10_000
    full = pixels(view, logical=False)
    r, g = (full >> 16) & 0xFF, (full >> 8) & 0xFF
    assert np.count_nonzero((g > 150) & (r < 100)) > 200  # the (antialiased) cyan outline
    # 500 m east of the centre is the edge; 600 m is outside.
    assert at(px, view, x + 600, y) != rgb("#0000ff")
    with pytest.raises(ValueError):
        view.set_zones([("bad", 37.5, 127.0, -5.0)])
    view.set_zones([])
    assert at(pixels(view), view, x, y) != rgb("#0000ff")


def yellowish(px: npt.NDArray[np.uint32]) -> npt.NDArray[np.bool_]:
    """Pixels mostly of the (antialiased) yellow highlight."""
    r, g, b = (px >> 16) & 0xFF, (px >> 8) & 0xFF, px & 0xFF
    return (r > 160) & (g > 160) & (b < 90)


def test_highlight_ring_keeps_its_size(view: MapView) -> None:
    x, y = to_map(37.6655, 127.0420)
    view.highlight(x, y)
    n_city = np.count_nonzero(yellowish(pixels(view)))
    view.center_on(x, y, 500)
    px = pixels(view)
    n_close = np.count_nonzero(yellowish(px))
    assert n_city > 100
    assert n_close == pytest.approx(n_city, rel=0.15)
    p = view.to_widget(x, y)
    ring = px[round(p.y()) - 25 : round(p.y()) + 26, round(p.x()) - 25 : round(p.x()) + 26]
    assert np.count_nonzero(yellowish(ring)) == n_close  # all of it around the point
    assert not yellowish(
        px[round(p.y()) - 3 : round(p.y()) + 4, round(p.x()) - 3 : round(p.x()) + 4]
    ).any()
    view.clear_highlight()
    assert np.count_nonzero(yellowish(pixels(view))) == 0


def test_click_reports_map_metres(view: MapView, qtbot: QtBot) -> None:
    x, y = to_map(37.5444, 127.0374)
    p = view.to_widget(x, y)
    with qtbot.waitSignal(view.clicked, timeout=2000) as blocker:
        qtbot.mouseClick(view._gv.viewport(), Qt.MouseButton.LeftButton, pos=p.toPoint())
    cx, cy = blocker.args
    metres_per_px = view.view_box.viewPixelSize()[0]
    assert abs(cx - x) < 2 * metres_per_px and abs(cy - y) < 2 * metres_per_px
    assert view.from_widget(p) == pytest.approx((x, y), abs=2 * metres_per_px)


def test_korean_labels_use_a_hangul_font(view: MapView) -> None:
    from PySide6.QtGui import QFontDatabase, QFontMetrics

    # The bootstrap installs fonts-nanum; without a Hangul font the labels are boxes.
    assert "NanumGothic" in QFontDatabase.families(), "no Hangul font: apt-get install fonts-nanum"
    assert view._font.family() == "NanumGothic"
    assert QFontMetrics(view._font).inFontUcs4(ord("도"))
    names = [label.textItem.toPlainText() for label in view._district_labels]
    assert "도봉구" in names and len(names) == 25


def test_label_point(view: MapView) -> None:
    d = view.basemap.district("성동구")
    assert isinstance(view.to_widget(*d.label_point), QPointF)


def test_many_zones_are_named_only_when_zoomed_in(view: MapView) -> None:
    zones = [
        (f"학교{i}", 37.45 + 0.01 * (i % 20), 126.9 + 0.01 * (i // 20), 300.0) for i in range(40)
    ]
    view.set_zones(zones)
    labels = view._zone_labels
    assert len(labels) == 40
    assert not any(label.isVisible() for label in labels)  # 300 m is a few pixels city-wide
    x, y = to_map(zones[0][1], zones[0][2])
    view.center_on(x, y, 3000)
    assert labels[0].isVisible()
    view.set_zones(DEMO_ZONES)
    view.fit_seoul()
    assert all(label.isVisible() for label in view._zone_labels)  # a few: always named


def test_a_city_of_markers(view: MapView, seoul: Basemap) -> None:
    rng = np.random.default_rng(5)
    min_x, min_y, max_x, max_y = seoul.bounds
    n = 100_000
    x, y = rng.uniform(min_x, max_x, n), rng.uniform(min_y, max_y, n)
    status = rng.integers(0, 3, n).astype(np.uint8)
    x[rng.choice(n, 1000, replace=False)] = np.nan
    view.set_positions(x, y, status)
    assert sum(view.markers.counts) == int(np.isfinite(x).sum())
    px = pixels(view)
    assert np.count_nonzero(px == rgb("#ff0000")) > 50_000  # big alert discs cover the map


def test_readers_and_camera_cones_and_density(qtbot) -> None:  # type: ignore[no-untyped-def]
    import numpy as np

    from models.geo import to_map
    from widgets.map_view import MapView

    view = MapView()
    qtbot.addWidget(view)
    view.resize(800, 600)
    view.show()
    view.set_readers([("gate", 37.5444, 127.0374, 50.0)])
    cx, cy = to_map(np.array([37.5444, 37.5450]), np.array([127.0374, 127.0380]))
    cone = np.array([[cx[0], cy[0]], [cx[0] + 60, cy[0] + 40], [cx[0] + 60, cy[0] - 40]])
    view.set_cameras(cx, cy, [cone, cone + 5], np.array([False, True]))
    view.fit_seoul()
    assert view.camera_mode() == "density"
    view.center_on(float(cx[0]), float(cy[0]), 300)
    assert view.camera_mode() == "cones"
    img = view.grab().toImage()
    centre = view.to_widget(float(cx[0]) + 40, float(cy[0]))
    colour = img.pixelColor(int(centre.x()), int(centre.y()))
    assert colour.red() > colour.blue()  # the amber cone fill, not the navy background


def test_a_city_of_zones_is_named_only_where_few_are_in_view(view: MapView,
                                                             qtbot: QtBot) -> None:
    """1,000 zones: at city zoom none is named (too many to read), zoomed in
    only those in view are, placed without covering each other; a pan at the
    same zoom with the same names in view does not place them again."""
    rng = np.random.default_rng(2)
    zones = [(f"학교{i}", float(lat), float(lon), 300.0)
             for i, (lat, lon) in enumerate(zip(rng.uniform(37.45, 37.65, 1000),
                                                rng.uniform(126.85, 127.15, 1000),
                                                strict=True))]
    view.set_zones(zones)
    view.fit_seoul()
    qtbot.wait(20)
    labels = view._zone_labels
    assert not any(label.isVisible() for label in labels)
    x, y = to_map(zones[0][1], zones[0][2])
    view.center_on(x, y, 4000)
    qtbot.wait(50)
    shown = [label for label in labels if label.isVisible()]
    assert 0 < len(shown) <= MapView.ZONE_LABELS_MAX_SHOWN
    (x0, x1), (y0, y1) = view._vb.viewRange()
    for label, (cx, cy) in zip(labels, view._zone_centres.tolist(), strict=True):
        if label.isVisible():
            assert x0 - 300 <= cx <= x1 + 300 and y0 - 300 <= cy <= y1 + 300
    rects = [label.sceneBoundingRect() for label in shown]
    overlapping = sum(a.intersects(b) for i, a in enumerate(rects) for b in rects[i + 1:])
    assert overlapping <= len(rects) // 4  # where no free spot is left, the least covering
    placings: list[int] = []
    place = view._place_zone_labels
    view._place_zone_labels = lambda: (placings.append(1), place())  # type: ignore[method-assign]
    view._vb.translateBy(x=1.0)  # (the view may still settle its size once)
    qtbot.wait(50)
    placings.clear()
    view._vb.translateBy(x=1.0)  # a metre: the same names stay in view
    qtbot.wait(20)
    assert placings == []
    view.set_zone_counts([(3, 0)] * len(zones))  # new texts: placed again
    assert placings == [1]


def test_zone_names_hide_no_district_name(view: MapView, qtbot: QtBot) -> None:
    """City-wide, Seoul Forest Park sits on 성동구's label point and the other
    two zones beside 노원구 and 양천구: each zone's name moves beside its
    circle to where it covers no district name."""
    view.set_zones(DEMO_ZONES)
    view.fit_seoul()
    qtbot.wait(50)
    districts = [lb.sceneBoundingRect() for lb in view._district_labels]
    zones = [lb.sceneBoundingRect() for lb in view._zone_labels]
    assert len(zones) == 3 and all(z.width() > 20 for z in zones)
    overlaps = [(view._zone_labels[i].toPlainText(), view._district_labels[j].toPlainText())
                for i, z in enumerate(zones) for j, d in enumerate(districts) if z.intersects(d)]
    assert overlaps == []
    # Zoomed in, the preferred spot (above the circle) is free again.
    x, y = to_map(DEMO_ZONES[0][1], DEMO_ZONES[0][2])
    view.center_on(x, y, 3000)
    qtbot.wait(50)
    assert tuple(view._zone_labels[0].anchor) == (0.5, 1.0)


def _wheel(view: MapView, steps: int) -> None:
    from PySide6.QtCore import QPoint
    from PySide6.QtGui import QWheelEvent
    from PySide6.QtWidgets import QApplication

    vp = view._gv.viewport()
    pos = QPointF(vp.width() / 2, vp.height() / 2)
    event = QWheelEvent(pos, vp.mapToGlobal(pos), QPoint(0, 0), QPoint(0, 120 * steps),
                        Qt.MouseButton.NoButton, Qt.KeyboardModifier.NoModifier,
                        Qt.ScrollPhase.NoScrollPhase, False)
    QApplication.sendEvent(vp, event)


def test_mouse_wheel_zooms_drag_pans_and_the_scale_bar_follows(view: MapView,
                                                               qtbot: QtBot) -> None:
    (x0, x1), (y0, y1) = view.view_range()
    city_bar = view._scale_bar.text.toPlainText()
    assert city_bar.endswith("km")
    for _ in range(6):
        _wheel(view, 1)
    qtbot.wait(50)
    (zx0, zx1), (zy0, zy1) = view.view_range()
    assert (zx1 - zx0) < 0.5 * (x1 - x0)  # zoomed in around the cursor
    assert x0 < (zx0 + zx1) / 2 < x1 and y0 < (zy0 + zy1) / 2 < y1
    street_bar = view._scale_bar.text.toPlainText()
    assert street_bar != city_bar

    vp = view._gv.viewport()
    start = vp.rect().center()
    end = start + QPointF(200, 0).toPoint()
    qtbot.mousePress(vp, Qt.MouseButton.LeftButton, pos=start)
    for i in range(1, 11):
        qtbot.mouseMove(vp, start + QPointF(20 * i, 0).toPoint())
    qtbot.mouseRelease(vp, Qt.MouseButton.LeftButton, pos=end)
    qtbot.wait(50)
    (px0, px1), _ = view.view_range()
    assert px0 < zx0 and px1 < zx1  # dragging right shows what lies west
    assert px1 - px0 == pytest.approx(zx1 - zx0, rel=1e-6)


def _city_of_children(seoul: Basemap, n: int, seed: int) -> tuple[npt.NDArray[np.float64], ...]:
    rng = np.random.default_rng(seed)
    min_x, min_y, max_x, max_y = seoul.bounds
    x, y = rng.uniform(min_x, max_x, n), rng.uniform(min_y, max_y, n)
    status = rng.choice(3, n, p=[0.6, 0.3, 0.1]).astype(np.uint8)
    return x, y, status


@pytest.mark.parametrize("span_m", [None, 3000.0], ids=["city", "street"])
def test_markers_stamped_as_image_shifts_look_as_stamped_one_by_one(
    view: MapView, seoul: Basemap, span_m: float | None
) -> None:
    """Many markers of a status are stamped by shifting a map of their
    centres (``MarkerLayer.dense_at``): the same pixels, overlaps (alerts
    on top) and the view's edges included."""
    x, y, status = _city_of_children(seoul, 20_000, seed=11)
    view.markerSize, view.alertMarkerSize = 4, 8  # even sizes: stencils off centre
    if span_m is not None:
        min_x, min_y, max_x, max_y = seoul.bounds
        view.center_on((min_x + max_x) / 2, (min_y + max_y) / 2, span_m)
    images = []
    for dense_at in (0.0, np.inf):  # every status by shifts, then none
        view.markers.dense_at = dense_at
        view.set_positions(x, y, status)
        images.append(pixels(view, logical=False))
    dense, one_by_one = images
    assert np.count_nonzero(dense == rgb("#ff0000")) > 100
    assert np.count_nonzero(dense == rgb("#00ff00")) > 100
    assert np.array_equal(dense, one_by_one)


def test_markers_off_the_view_leave_no_trace_at_its_edges(view: MapView, seoul: Basemap) -> None:
    x, y, status = _city_of_children(seoul, 50_000, seed=12)
    min_x, min_y, max_x, max_y = seoul.bounds
    view.center_on((min_x + max_x) / 2, (min_y + max_y) / 2, 2500)
    view.set_positions(x, y, status)
    everyone = pixels(view, logical=False)
    (vx0, vx1), (vy0, vy1) = view.view_range()
    pad = 20 * view.view_box.viewPixelSize()[0]  # wider than half the largest marker
    near = (x > vx0 - pad) & (x < vx1 + pad) & (y > vy0 - pad) & (y < vy1 + pad)
    assert 0 < near.sum() < len(x) // 10
    view.set_positions(x[near], y[near], status[near])
    assert np.array_equal(pixels(view, logical=False), everyone)


def test_a_repaint_with_nothing_changed_reuses_the_markers_image(
    view: MapView, seoul: Basemap, qtbot: QtBot
) -> None:
    x, y, status = _city_of_children(seoul, 5_000, seed=13)
    view.set_positions(x, y, status)
    before = pixels(view)
    rendered, drawn = view.markers.frames_rendered, view.markers.frames_drawn
    view.highlight(x[0], y[0])  # another item repaints the view
    view.clear_highlight()
    assert np.array_equal(pixels(view), before)
    assert view.markers.frames_drawn > drawn
    assert view.markers.frames_rendered == rendered
    view.set_positions(x + 500.0, y, status)
    assert not np.array_equal(pixels(view), before)
    assert view.markers.frames_rendered == rendered + 1
    view.set_positions(x, y, status)  # back: nothing of the moved frame stays
    assert np.array_equal(pixels(view), before)
