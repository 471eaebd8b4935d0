"""Map benchmark: MapView redraws per second with N moving children.

Each frame moves every child a few metres (vectorized), recomputes nothing
else, hands the arrays to ``MapView.set_positions`` and lets Qt process
events, which repaints the view once (``MarkerLayer.frames_drawn`` counts
the paints, so coalesced frames are not counted twice).  The view is
1280x900 at the whole-city zoom, every child inside it, with the three demo
zones and Seoul's dong and district boundaries: the worst case the budget
in DESIGN.md ("100,000 live markers redrawn at 30 fps or more") speaks of.

Offscreen by default (``QT_QPA_PLATFORM=offscreen``); set DISPLAY and
``QT_QPA_PLATFORM=xcb`` to include pushing pixels to an X server.  Nothing
is asserted: these are numbers to compare with the budget.

``python -m tests.bench.bench_map [--markers 10000 100000] [--seconds 5]``
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")


def run(markers: int, seconds: float) -> dict[str, float]:
    """Redraw the map with ``markers`` moving children for ``seconds``; return the rates."""
    from PySide6.QtWidgets import QApplication

    from widgets.map_view import DEMO_ZONES, FakeChildren, MapView

    app = QApplication.instance() or QApplication(sys.argv[:1])
    view = MapView()
    try:
        view.resize(1280, 900)
        view.set_zones(DEMO_ZONES)
        view.show()
        view.fit_seoul()
        kids = FakeChildren(markers, view.basemap, DEMO_ZONES, seed=1)
        kids.step()
        for _ in range(5):
            view.set_positions(kids.x, kids.y, kids.status)
            app.processEvents()

        frames = 0
        paints0 = view.markers.frames_drawn
        update_s = 0.0
        start = time.perf_counter()
        while (elapsed := time.perf_counter() - start) < seconds:
            t0 = time.perf_counter()
            kids.step()
            view.set_positions(kids.x, kids.y, kids.status)
            update_s += time.perf_counter() - t0
            app.processEvents()
            frames += 1
        paints = view.markers.frames_drawn - paints0
        return {
            "markers": float(markers),
            "seconds": elapsed,
            "frames": float(frames),
            "paints": float(paints),
            "fps": paints / elapsed,
            "ms_per_frame": 1000.0 * elapsed / max(paints, 1),
            "ms_data_per_frame": 1000.0 * update_s / max(frames, 1),
        }
    finally:
        view.close()
        view.deleteLater()
        app.processEvents()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--markers", type=int, nargs="+", default=[10_000, 100_000])
    parser.add_argument("--seconds", type=float, default=5.0)
    parser.add_argument("--json", action="store_true", help="one JSON line per run")
    args = parser.parse_args(argv)
    for n in args.markers:
        result = run(n, args.seconds)
        if args.json:
            print(json.dumps(result), flush=True)
        else:
            print(
                f"{n:>8,} markers: {result['fps']:6.1f} frames/s "
                f"({result['ms_per_frame']:.1f} ms/frame, of which moving the fake children "
                f"and set_positions {result['ms_data_per_frame']:.1f} ms)",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
