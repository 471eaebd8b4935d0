"""Map benchmark: the live map with N children, in three phases, plus the
console's cold start from an N-child snapshot.

- **redraw**: every child moves every frame.  The frames are a small ring of
  position arrays made by ``FakeChildren`` before the clock starts, so the
  timed loop holds only what the console does per frame: hand the arrays
  to ``MapView.set_positions`` and let Qt process events, which repaints
  the view once (``MarkerLayer.frames_drawn`` counts the paints, so
  coalesced frames are not counted twice).  Budget: 30 fps (DESIGN.md,
  "100,000 live markers redrawn at 30 fps or more").
- **pan/zoom**: the children stand still and the view pans and zooms a
  little every frame, as under an operator's mouse.  Budget: 60 fps
  (issue 14).
- **memory**: the process's resident set (``VmRSS``) before the view is
  made and once the markers are drawn, less what the benchmark's own ring
  of frames occupies.
- **cold start** (`cold_start`): a snapshot built as the engine builds one
  (``models.messages.Snapshot`` with every child's token and position,
  open alerts, zones, readers and cameras), encoded before the clock
  starts; then timed: decoding it, the console's state from it
  (``ConsoleState.apply_snapshot``), the GUI's frame (``LiveFeed.take``)
  and the map's zones, markers and first paint.  Budget: 2 s (DESIGN.md).
  Also the snapshot's size, and with zlib level 1.

The view is 1280x900 at the whole-city zoom, every child inside it, with
Seoul's dong and district boundaries: the worst case for the markers.
Besides frames per second (wall clock), each phase reports the CPU time
of a frame: on a machine shared with other work that is the steadier
figure.  Offscreen by default (``QT_QPA_PLATFORM=offscreen``); set
DISPLAY and ``QT_QPA_PLATFORM=xcb`` to include pushing pixels to an X
server.  Nothing is asserted: these are numbers to compare with the budgets.

``python -m tests.bench.bench_map [--markers 10000 100000 580000] [--seconds 5]``
"""

from __future__ import annotations

import argparse
import json
import math
import os
import sys
import time
import zlib
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")

if TYPE_CHECKING:
    from PySide6.QtWidgets import QApplication

    from models.basemap import Basemap
    from widgets.map_view import MapView

BUDGET_REDRAW_FPS = 30.0
BUDGET_PAN_FPS = 60.0
BUDGET_COLD_START_S = 2.0
MARKERS = (10_000, 100_000, 580_000)
VIEW_SIZE = (1280, 900)
RING = 8  # precomputed frames the redraw phase cycles through
PAN_STEPS = 30  # frames per leg of the pan/zoom walk: right, in, left, out
# What a city-wide snapshot carries besides the children: safety zones in
# proportion to them (bench_zones' smaller count, 1,000, at 580,000: some
# 580 children a school), the city's cameras (bench_cameras' smaller
# registry) and tag readers whatever the number of children.
CHILDREN_PER_ZONE = 580
SNAPSHOT_CAMERAS = 6_600
SNAPSHOT_READERS = 200
SNAPSHOT_ALERTS = 25

Positions = tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.uint8]]


def rss_mb() -> float:
    """This process's resident set in MB (VmRSS), NaN where /proc has none."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024.0
    except OSError:
        pass
    return math.nan


def _app() -> QApplication:
    from PySide6.QtWidgets import QApplication

    app = QApplication.instance() or QApplication(sys.argv[:1])
    assert isinstance(app, QApplication)
    return app


def _view(basemap: Basemap | None = None) -> MapView:
    from widgets.map_view import DEMO_ZONES, MapView

    view = MapView(basemap=basemap)
    view.resize(*VIEW_SIZE)
    view.set_zones(DEMO_ZONES)
    view.show()
    view.fit_seoul()
    return view


def _close(view: MapView) -> None:
    view.close()
    view.deleteLater()
    _app().processEvents()


def ring_of_frames(markers: int, basemap: Basemap, frames: int = RING) -> list[Positions]:
    """``frames`` successive positions of ``markers`` wandering children."""
    from widgets.map_view import DEMO_ZONES, FakeChildren

    kids = FakeChildren(markers, basemap, DEMO_ZONES, seed=1)
    ring = []
    for _ in range(frames):
        kids.step()
        ring.append((kids.x.copy(), kids.y.copy(), kids.status.copy()))
    return ring


def _paint_now(view: MapView) -> None:
    """Process events until the markers have been painted once more (once,
    when there are none: an empty layer is never painted)."""
    app = _app()
    before = view.markers.frames_drawn
    app.processEvents()
    deadline = time.perf_counter() + 5.0
    while (sum(view.markers.counts) and view.markers.frames_drawn == before
           and time.perf_counter() < deadline):
        app.processEvents()


def redraw(view: MapView, ring: list[Positions], seconds: float) -> dict[str, float]:
    """Every child moves every frame: set_positions, then let Qt repaint."""
    app = _app()
    for x, y, status in ring[:3]:
        view.set_positions(x, y, status)
        app.processEvents()
    frames = 0
    set_s = 0.0
    paints0 = view.markers.frames_drawn
    cpu0 = time.process_time()
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        x, y, status = ring[frames % len(ring)]
        t0 = time.perf_counter()
        view.set_positions(x, y, status)
        set_s += time.perf_counter() - t0
        app.processEvents()
        frames += 1
    cpu = time.process_time() - cpu0
    paints = view.markers.frames_drawn - paints0
    return {
        "redraw_seconds": elapsed,
        "redraw_frames": float(frames),
        "redraw_paints": float(paints),
        "redraw_fps": paints / elapsed,
        "redraw_ms_per_frame": 1000.0 * elapsed / max(paints, 1),
        "redraw_ms_set_positions": 1000.0 * set_s / max(frames, 1),
        "redraw_cpu_ms_per_frame": 1000.0 * cpu / max(paints, 1),
    }


def pan_zoom(view: MapView, seconds: float) -> dict[str, float]:
    """The children stand still; the view pans right, zooms in, pans left and
    zooms out, a small step per frame, around the whole city."""
    app = _app()
    vb = view.view_box
    view.fit_seoul()
    app.processEvents()
    frames = 0
    paints0 = view.markers.frames_drawn
    renders0 = view.markers.frames_rendered
    cpu0 = time.process_time()
    start = time.perf_counter()
    while (elapsed := time.perf_counter() - start) < seconds:
        leg = (frames // PAN_STEPS) % 4
        (x0, x1), _ = vb.viewRange()
        if leg in (0, 2):
            vb.translateBy(x=(0.004 if leg == 0 else -0.004) * (x1 - x0))
        else:
            f = 0.98 if leg == 1 else 1 / 0.98
            vb.scaleBy((f, f))
        app.processEvents()
        frames += 1
    cpu = time.process_time() - cpu0
    paints = view.markers.frames_drawn - paints0
    view.fit_seoul()
    return {
        "pan_seconds": elapsed,
        "pan_frames": float(frames),
        "pan_paints": float(paints),
        "pan_renders": float(view.markers.frames_rendered - renders0),
        "pan_fps": paints / elapsed,
        "pan_ms_per_frame": 1000.0 * elapsed / max(paints, 1),
        "pan_cpu_ms_per_frame": 1000.0 * cpu / max(paints, 1),
    }


def run(markers: int, seconds: float) -> dict[str, float]:
    """The redraw, pan/zoom and memory phases with ``markers`` children,
    ``seconds`` for each timed phase."""
    from models.basemap import load_basemap

    _app()
    rss_start = rss_mb()
    view = _view(load_basemap())
    try:
        _paint_now(view)
        rss_view = rss_mb()
        ring = ring_of_frames(markers, view.basemap)
        rss_data = rss_mb()
        x, y, status = ring[0]
        view.set_positions(x, y, status)
        _paint_now(view)
        rss_markers = rss_mb()
        result = {
            "markers": float(markers),
            "drawn": float(sum(view.markers.counts)),
            "rss_before_view_mb": rss_start,
            "rss_view_mb": rss_view,
            "bench_data_mb": rss_data - rss_view,
            "markers_mb": rss_markers - rss_data,
            # What a console would hold: all of it but the benchmark's ring.
            "rss_mb": rss_markers - (rss_data - rss_view),
        }
        result |= redraw(view, ring, seconds)
        result |= pan_zoom(view, seconds)
        return result
    finally:
        _close(view)


# --------------------------------------------------------------- cold start


def snapshot_body(markers: int, basemap: Basemap, *, zones: int | None = None,
                  cameras: int = SNAPSHOT_CAMERAS, readers: int = SNAPSHOT_READERS,
                  alerts: int = SNAPSHOT_ALERTS, seed: int = 3) -> bytes:
    """An encoded ``Snapshot`` of ``markers`` children, made the way the
    engine makes its own (``console.services.engine``: the tracker's known
    slots as one ``PositionBatch``, its tokens, open alerts, zones, readers
    and cameras, breadcrumbs for the children a reader saw)."""
    from models.geo import to_wgs84
    from models.messages import (
        AlertView,
        CameraView,
        PositionBatch,
        ReaderView,
        Snapshot,
        ZoneView,
        encode,
        pack,
    )
    from widgets.map_view import DEMO_ZONES, FakeChildren

    zones = max(3, markers // CHILDREN_PER_ZONE) if zones is None else zones
    rng = np.random.default_rng(seed)
    kids = FakeChildren(markers, basemap, DEMO_ZONES, seed=seed)
    kids.step()
    known = np.flatnonzero(np.isfinite(kids.x) & np.isfinite(kids.y))
    lat = np.full(markers, np.nan)
    lon = np.full(markers, np.nan)
    lat[known], lon[known] = to_wgs84(kids.x[known], kids.y[known])
    now = time.time()
    tokens = [f"C-{v:07X}" for v in rng.choice(1 << 28, markers, replace=False).tolist()]
    positions = PositionBatch(
        slots=pack("slots", known), t=pack("t", now - rng.uniform(0, 12, len(known))),
        lat=pack("lat", lat[known]), lon=pack("lon", lon[known]),
        inside=pack("inside", (kids.status[known] == 1).astype(np.uint8)),
        flags=pack("flags", np.zeros(len(known), dtype=np.uint8)),
    )
    alert_slots = [int(s) for s in known[rng.choice(len(known), min(alerts, len(known)),
                                                    replace=False)]]
    open_alerts = [
        AlertView(id=i + 1, kind="sos", priority=1, state="new", child_token=tokens[s],
                  child_slot=s, device_id=f"W-{s:09d}", lat=float(lat[s]),
                  lon=float(lon[s]), place="서울특별시", opened_at=now - 30.0 * i,
                  zone="", updated_at=now, ack_due=now + 60.0, close_due=now + 900.0)
        for i, s in enumerate(alert_slots)
    ]
    zlat, zlon = rng.uniform(37.45, 37.68, zones), rng.uniform(126.80, 127.17, zones)
    zone_views = [
        ZoneView(id=i + 1, name=f"학교 {i + 1}", kind="school", lat=float(a), lon=float(o),
                 radius_m=float(r), hours="07:00-20:00")
        for i, (a, o, r) in enumerate(zip(zlat.tolist(), zlon.tolist(),
                                          rng.uniform(300, 500, zones).tolist(), strict=True))
    ]
    rlat, rlon = rng.uniform(37.45, 37.68, readers), rng.uniform(126.80, 127.17, readers)
    reader_views = [ReaderView(id=f"R-{i:04d}", name=f"리더 {i}", lat=float(a), lon=float(o),
                               range_m=50.0)
                    for i, (a, o) in enumerate(zip(rlat.tolist(), rlon.tolist(), strict=True))]
    clat, clon = rng.uniform(37.45, 37.68, cameras), rng.uniform(126.80, 127.17, cameras)
    camera_views = [
        CameraView(id=i + 1, name=f"CCTV-{i + 1:05d}", lat=float(a), lon=float(o),
                   direction_deg=float(d), fov_deg=60.0, range_m=60.0, ptz=bool(i % 7 == 0),
                   status="online")
        for i, (a, o, d) in enumerate(zip(clat.tolist(), clon.tolist(),
                                          rng.uniform(0, 360, cameras).tolist(), strict=True))
    ]
    seen = rng.choice(known, len(known) // 20, replace=False).tolist() if readers else []
    last_readers = {int(s): f"R-{int(r):04d}"
                    for s, r in zip(seen, rng.integers(0, max(readers, 1), len(seen)).tolist(),
                                    strict=True)}
    snap = Snapshot(seq=123_456, ts=now, origin="engine:bench", children=tokens,
                    positions=positions, alerts=open_alerts, zones=zone_views,
                    readers=reader_views, cameras=camera_views, last_readers=last_readers)
    return encode(snap)


def cold_start(markers: int, **snapshot: int) -> dict[str, float]:
    """From the snapshot's bytes to its children on the map, timed in steps;
    the window and map are up before (a console shows them while it asks)."""
    from console.config import Config
    from console.feed import LiveFeed
    from models.basemap import load_basemap
    from models.messages import MAX_BODY_BYTES, Snapshot, decode
    from models.zones import zone_outline

    _app()
    t0 = time.perf_counter()
    basemap = load_basemap()
    view = _view(basemap)
    _paint_now(view)
    view_s = time.perf_counter() - t0
    body = snapshot_body(markers, basemap, **snapshot)
    t0 = time.perf_counter()
    packed = zlib.compress(body, 1)
    zlib_s = time.perf_counter() - t0
    t0 = time.perf_counter()
    zlib.decompress(packed)
    unzlib_s = time.perf_counter() - t0
    feed = LiveFeed(Config())  # its worker thread is never started
    try:
        rss0 = rss_mb()
        t0 = time.perf_counter()
        snap = decode(body)
        t1 = time.perf_counter()
        assert isinstance(snap, Snapshot)
        feed.state.apply_snapshot(snap)
        t2 = time.perf_counter()
        frame = feed.take()
        t3 = time.perf_counter()
        assert frame.zones is not None and frame.x is not None
        assert frame.y is not None and frame.status is not None
        view.set_zones([(z.name, z.lat, z.lon, z.radius_m, zone_outline(z))
                        for z in frame.zones])
        t4 = time.perf_counter()
        view.set_positions(frame.x, frame.y, frame.status)
        t5 = time.perf_counter()
        _paint_now(view)
        t6 = time.perf_counter()
        rss1 = rss_mb()
        return {
            "markers": float(markers),
            "drawn": float(sum(view.markers.counts)),
            "zones": float(len(frame.zones)),
            "cameras": float(len(snap.cameras)),
            "snapshot_bytes": float(len(body)),
            "snapshot_zlib1_bytes": float(len(packed)),
            "snapshot_max_body_bytes": float(MAX_BODY_BYTES),
            "zlib1_compress_s": zlib_s,
            "zlib1_decompress_s": unzlib_s,
            "view_s": view_s,
            "decode_s": t1 - t0,
            "state_s": t2 - t1,
            "take_s": t3 - t2,
            "zones_s": t4 - t3,
            "set_positions_s": t5 - t4,
            "first_paint_s": t6 - t5,
            "cold_start_s": t6 - t0,
            "cold_start_rss_mb": rss1 - rss0,
        }
    finally:
        _close(view)


# --------------------------------------------------------------- reporting


def _vs_budget(value: float, budget: float, unit: str, higher_is_better: bool = True) -> str:
    if not math.isfinite(value):
        return f"n/a (budget {budget:g} {unit})"
    ok = value >= budget if higher_is_better else value <= budget
    return (f"{value:,.{2 if unit == 's' else 1}f} {unit} = {value / budget:.2f}× the "
            f"{budget:g} {unit} budget ({'within' if ok else 'outside'})")


def headline(r: dict[str, float], cold: dict[str, float] | None = None) -> list[str]:
    """One line for the map's phases and one for the cold start, against their budgets."""
    lines = [
        f"map {int(r['markers']):,} markers: redraw "
        f"{_vs_budget(r['redraw_fps'], BUDGET_REDRAW_FPS, 'fps')} "
        f"({r['redraw_ms_per_frame']:.1f} ms/frame, {r['redraw_cpu_ms_per_frame']:.1f} ms CPU, "
        f"set_positions {r['redraw_ms_set_positions']:.1f} ms); pan/zoom "
        f"{_vs_budget(r['pan_fps'], BUDGET_PAN_FPS, 'fps')} ({r['pan_ms_per_frame']:.1f} ms/frame, "
        f"{r['pan_cpu_ms_per_frame']:.1f} ms CPU); RSS {r['rss_view_mb']:,.0f} MB with the "
        f"empty map, {r['rss_mb']:,.0f} MB with the markers (+{r['markers_mb']:,.0f} MB)",
    ]
    if cold is not None:
        lines.append(cold_line(cold))
    return lines


def cold_line(c: dict[str, float]) -> str:
    return (
        f"map {int(c['markers']):,} cold start: "
        f"{_vs_budget(c['cold_start_s'], BUDGET_COLD_START_S, 's', higher_is_better=False)} "
        f"(decode {c['decode_s']:.2f}, state {c['state_s']:.2f}, frame {c['take_s']:.2f}, "
        f"{int(c['zones']):,} zones {c['zones_s']:.2f}, set_positions {c['set_positions_s']:.2f}, "
        f"first paint {c['first_paint_s']:.2f} s); snapshot "
        f"{c['snapshot_bytes'] / 1e6:,.1f} MB, {c['snapshot_zlib1_bytes'] / 1e6:,.1f} MB "
        f"with zlib 1 ({c['zlib1_compress_s']:.2f} s to pack, "
        f"{c['zlib1_decompress_s']:.2f} s to unpack)"
    )


def details(r: dict[str, float], cold: dict[str, float] | None = None) -> str:
    """Every figure, for the report's detail block."""
    items = {**r, **{f"cold.{k}": v for k, v in (cold or {}).items()}}
    return f"map {int(r['markers']):,} markers: " + ", ".join(
        f"{k}={v:,.0f}" if float(v).is_integer() else f"{k}={v:,.3g}"
        for k, v in items.items())


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--markers", type=int, nargs="+", default=list(MARKERS))
    parser.add_argument("--seconds", type=float, default=5.0,
                        help="length of the redraw and of the pan/zoom phase")
    parser.add_argument("--no-cold-start", action="store_true",
                        help="skip the snapshot-to-map phase")
    parser.add_argument("--json", action="store_true", help="one JSON line per run")
    args = parser.parse_args(argv)
    for n in args.markers:
        result = run(n, args.seconds)
        cold = None if args.no_cold_start else cold_start(n)
        if args.json:
            print(json.dumps({**result, **({"cold": cold} if cold else {})}), flush=True)
        else:
            for line in headline(result, cold):
                print(line, flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
