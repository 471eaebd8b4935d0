"""widgets.cctv_grid / cctv_tile: real libvlc playing live MPEG-TS over HTTP
into native X windows under Xvfb, judged from screen grabs.

Video can only be checked on a real X server: libvlc draws into the tiles'
own X windows, which ``QWidget.grab`` never sees, so the driver below grabs
the screen (``QScreen.grabWindow``).  Each scenario runs in a subprocess
(``python -m tests.widgets.test_cctv_grid SCENARIO --out DIR``) with DISPLAY
set to the session's Xvfb; it serves its own test streams
(``tests/widgets/ts_source.py``), drives the grid, writes the grabs as PNG
and prints one JSON line of facts.  The tests here assert on those facts
and on the pixels.  The assignment rule of handovers is also tested as a
pure function, without a display.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
import traceback
from collections.abc import Callable
from pathlib import Path
from typing import Any, cast

import numpy as np
import numpy.typing as npt
import pytest

ROOT = Path(__file__).resolve().parents[2]
Rect = tuple[int, int, int, int]  # x, y, w, h in screen pixels

# Qt messages a grid may print that say nothing about it.
BENIGN_QT = ("propagateSizeHints", "QStandardPaths", "This plugin does not support")


# --------------------------------------------------------------------------- helpers


def run_scenario(name: str, display: str, out: Path, timeout: float = 150) -> dict[str, Any]:
    """Run one driver scenario under ``display``; return its JSON facts."""
    out.mkdir(parents=True, exist_ok=True)
    env = {"DISPLAY": display, "QT_QPA_PLATFORM": "xcb", "PATH": "/usr/bin:/bin",
           "HOME": str(out), "PYTHONPATH": str(ROOT)}
    proc = subprocess.run([sys.executable, "-m", "tests.widgets.test_cctv_grid", name,
                           "--out", str(out)], cwd=ROOT, env=env, capture_output=True,
                          text=True, timeout=timeout)
    lines = [ln for ln in proc.stdout.splitlines() if ln.startswith("{")]
    assert proc.returncode == 0 and lines, (
        f"driver {name} failed ({proc.returncode}):\n{proc.stdout[-3000:]}\n{proc.stderr[-3000:]}"
    )
    facts: dict[str, Any] = json.loads(lines[-1])
    assert not facts.get("error"), facts["error"]
    facts["out"] = str(out)
    return facts


def load_rgb(path: str | Path) -> npt.NDArray[np.uint8]:
    from PySide6.QtGui import QImage

    image = QImage(str(path)).convertToFormat(QImage.Format.Format_RGB888)
    assert not image.isNull(), f"cannot read {path}"
    raw = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(), image.bytesPerLine())
    return raw[:, : image.width() * 3].reshape(image.height(), image.width(), 3).copy()


def crop(img: npt.NDArray[np.uint8], rect: Rect) -> npt.NDArray[np.float32]:
    x, y, w, h = rect
    return img[y : y + h, x : x + w].astype(np.float32)


def assert_video(first: npt.NDArray[np.uint8], second: npt.NDArray[np.uint8], rect: Rect,
                 what: str) -> None:
    """The region shows a picture (bright, varied) that moved between the grabs."""
    a, b = crop(first, rect), crop(second, rect)
    assert a.size > 0, f"{what}: empty region {rect}"
    assert a.mean() > 40, f"{what}: black (mean {a.mean():.1f})"
    assert a.std() > 15, f"{what}: flat, no picture (std {a.std():.1f})"
    moved = float(np.abs(a - b).mean())
    assert moved > 4, f"{what}: frozen between grabs (mean |diff| {moved:.2f})"


# --------------------------------------------------------------------------- pure rule


def test_plan_keeps_playing_cameras_in_their_tiles() -> None:
    from widgets.cctv_grid import plan_tiles

    assert plan_tiles([None] * 4, [5, 6, 7], 4) == [5, 6, 7, None]
    # 7 dropped out, 8 came in: only tile 2 changes, nobody moves.
    assert plan_tiles([5, 6, 7, 9], [6, 5, 8, 9], 4) == [5, 6, 8, 9]
    # Re-ranking alone restarts nothing.
    assert plan_tiles([5, 6, 7, 9], [9, 7, 6, 5], 4) == [5, 6, 7, 9]
    # Shrinking to one tile shows the best camera even if it played elsewhere.
    assert plan_tiles([5, 6, 7, 9], [7, 5], 1) == [7]
    assert plan_tiles([7], [7, 5, 6], 4) == [7, 5, 6, None]
    assert plan_tiles([1, 2], [2, 2, 3], 4) == [3, 2, None, None]  # duplicates ignored


def test_tile_titles_lead_with_what_tells_cameras_apart() -> None:
    """Cameras around one place share the address that starts their registry
    name; the title leads with the short id and the most specific parts."""
    from widgets.cctv_tile import tile_title

    assert (tile_title(12, "성동구 뚝섬로 273 · 공원관리 · 동측")
            == "#12 동측 · 공원관리 · 성동구 뚝섬로 273")
    assert tile_title(3, "성동구 뚝섬로 273 · 공원관리") == "#3 공원관리 · 성동구 뚝섬로 273"
    assert tile_title(7, "서울숲 정문") == "#7 서울숲 정문"
    assert tile_title(7, "") == "#7"
    titles = {tile_title(i, f"성동구 뚝섬로 273 · 공원관리 · {d}")[:6]
              for i, d in ((1, "360도"), (2, "동측"), (3, "북서방향"), (4, "정면"))}
    assert len(titles) == 4  # distinct within the first characters a narrow tile shows


def test_tile_shows_the_title_and_the_full_name_on_hover(qtbot: Any) -> None:
    import vlc

    from widgets.cctv_tile import CameraFeed, CctvTile

    instance = vlc.Instance(["--quiet", "--vout=dummy", "--no-audio"])
    tile = CctvTile(instance)
    qtbot.addWidget(tile)
    try:
        tile.resize(240, 180)
        name = "성동구 뚝섬로 273 · 공원관리 · 북서방향"
        tile.set_camera(CameraFeed(5, name, "http://127.0.0.1:9/cam/5.ts"))
        assert tile.name.full_text() == "#5 북서방향 · 공원관리 · 성동구 뚝섬로 273"
        assert tile.name.toolTip().startswith(name) and "camera 5" in tile.name.toolTip()
        shown = tile.name.text()
        assert shown.startswith("#5") and (shown == tile.name.full_text() or
                                           shown.endswith("…"))
    finally:
        tile.release()
        instance.release()


# --------------------------------------------------------------------------- under Xvfb


@pytest.fixture(scope="module")
def played(xvfb_display: str, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """One run of the "play" scenario, shared by the tests that read it."""
    return run_scenario("play", xvfb_display, tmp_path_factory.mktemp("cctv-play"))


@pytest.mark.xvfb
def test_four_streams_play_live_and_move(played: dict[str, Any]) -> None:
    out = Path(played["out"])
    first, second = load_rgb(out / "grid-1.png"), load_rgb(out / "grid-2.png")
    assert played["live_after_s"] < 15
    assert [t["state"] for t in played["tiles"]] == ["live"] * 4
    assert [t["badge"] for t in played["tiles"]] == ["LIVE"] * 4
    for i, t in enumerate(played["tiles"]):
        assert_video(first, second, t["rect"], f"tile {i}")
    # Tiles show different cameras (the test pattern's hue differs per camera).
    means = [crop(first, t["rect"]).reshape(-1, 3).mean(axis=0) for t in played["tiles"]]
    assert min(np.abs(means[i] - means[j]).max()
               for i in range(4) for j in range(i + 1, 4)) > 8
    assert played["warnings"] == []


@pytest.mark.xvfb
def test_snapshot_writes_evidence_png(played: dict[str, Any]) -> None:
    from PySide6.QtGui import QImage

    snap = played["snapshot"]
    assert snap["signal"] == [1, snap["path"]]
    path = Path(snap["path"])
    assert path.name.startswith("alert7-cam1-") and path.suffix == ".png"
    image = QImage(str(path))
    assert (image.width(), image.height()) == (320, 240)
    assert load_rgb(path).astype(np.float32).std() > 15


@pytest.mark.xvfb
def test_handover_restarts_only_the_changed_tile(played: dict[str, Any]) -> None:
    h = played["handover"]
    assert h["restarted"] == [2]
    assert h["shown"] == [1, 2, 5, 4]
    assert h["starts_delta"] == [0, 0, 1, 0]
    assert h["connections"] == {"1": 1, "2": 1, "3": 1, "4": 1, "5": 1}
    assert h["cue"] == {"handover": "true", "text": "⇄ from #3 Camera 3", "visible": True}
    assert h["cue_after"] == {"handover": "false", "visible": False}
    assert h["ranks"] == ["1", "2", "3", "4"]
    out = Path(played["out"])
    assert_video(load_rgb(out / "handover-1.png"), load_rgb(out / "handover-2.png"),
                 h["rect"], "handed-over tile")
    # Follow mode: a burst of rankings is coalesced, the latest applied later.
    f = played["follow"]
    assert f["applied_now"] is False
    assert f["shown_before"] == [1, 2, 5, 4]
    assert f["shown_after"] == [1, 2, 5, 6]
    assert 0.5 < f["applied_after_s"] < 3.5
    assert f["off_applied"] is False and f["off_shown"] == [1, 2, 5, 6]
    assert f["on_shown"] == [1, 2, 3, 6]


@pytest.mark.xvfb
def test_layouts_switch_without_restarting_kept_tiles(played: dict[str, Any]) -> None:
    lay = played["layouts"]
    by = {int(k): v for k, v in lay.items()}
    assert by[9]["visible"] == 9 and by[9]["shown"][:4] == [1, 2, 3, 6]
    assert by[9]["shown"][4:] == [None] * 5
    assert by[9]["starts_delta"][:4] == [0, 0, 0, 0]  # tiles 4-8 did not exist before
    assert by[1]["visible"] == 1 and by[1]["shown"] == [1] and by[1]["starts_delta"][0] == 0
    assert by[1]["tile0_share"] > 0.8  # one tile fills the area
    assert by[4]["visible"] == 4 and by[4]["shown"] == [1, 2, 3, 6]
    assert by[4]["starts_delta"] == [0, 1, 1, 1, 0, 0, 0, 0, 0]
    assert by[4]["live"] == 4


@pytest.mark.xvfb
def test_video_wall_detaches_and_docks_back(played: dict[str, Any]) -> None:
    wall = played["wall"]
    out = Path(played["out"])
    assert wall["detached"] is True and wall["wall_visible"] is True
    assert wall["placeholder_visible"] is True
    assert wall["restarted_on_detach"] == [0, 0, 0, 0]
    assert_video(load_rgb(out / "wall-1.png"), load_rgb(out / "wall-2.png"), wall["rect"],
                 "tile on the video wall")
    assert wall["docked"] is True and wall["placeholder_after"] is False
    assert_video(load_rgb(out / "docked-1.png"), load_rgb(out / "docked-2.png"),
                 wall["docked_rect"], "tile docked back")
    assert played["released"] is True


@pytest.mark.xvfb
def test_offline_stalled_and_recovery(xvfb_display: str, tmp_path: Path) -> None:
    facts = run_scenario("offline", xvfb_display, tmp_path)
    assert facts["refused"]["state"] == "offline"
    assert facts["refused"]["after_s"] < 5
    assert facts["refused"]["badge"] == "OFFLINE"
    assert facts["refused"]["snapshot_enabled"] is False
    relay = facts["relay"]
    assert relay["stalled"] == "stalled" and relay["offline"] == "offline"
    assert relay["live_again"] == "live"
    assert "relay" in relay["detail"]
    lost = facts["source_lost"]
    assert lost["state"] in ("offline", "stalled") and lost["after_s"] < 8
    assert facts["recovered"]["state"] == "live" and facts["recovered"]["after_s"] < 20
    assert facts["recovered"]["reconnects"] >= 1
    assert facts["warnings"] == []


# --------------------------------------------------------------------------- driver
# Runs in the subprocess: a real QApplication on xcb, libvlc, test streams.


class Driver:
    """Drives a grid and records facts; every wait pumps the Qt event loop."""

    def __init__(self, out: Path) -> None:
        from PySide6.QtCore import QtMsgType, qInstallMessageHandler
        from PySide6.QtWidgets import QApplication

        self.out = out
        self.warnings: list[str] = []

        def on_message(kind: QtMsgType, _ctx: object, text: str) -> None:
            if kind != QtMsgType.QtDebugMsg and not any(b in text for b in BENIGN_QT):
                self.warnings.append(text)

        qInstallMessageHandler(on_message)
        self.app = cast(QApplication, QApplication.instance() or QApplication(sys.argv[:1]))
        from console.theme import apply_theme
        from resources import path as resource_path

        apply_theme(self.app)
        extra = resource_path("cctv.qss")
        if extra.exists():
            self.app.setStyleSheet(self.app.styleSheet() + extra.read_text(encoding="utf-8"))

    def pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            self.app.processEvents()
            time.sleep(0.01)

    def wait(self, pred: Callable[[], bool], timeout: float) -> float:
        """Seconds until ``pred()`` held; raises after ``timeout``."""
        start = time.monotonic()
        while not pred():
            if time.monotonic() - start > timeout:
                raise TimeoutError(f"condition not met within {timeout} s")
            self.app.processEvents()
            time.sleep(0.02)
        return time.monotonic() - start

    def grab(self, name: str) -> None:
        from PySide6.QtGui import QGuiApplication

        self.app.processEvents()
        pixmap = QGuiApplication.primaryScreen().grabWindow(0)
        pixmap.save(str(self.out / f"{name}.png"))

    @staticmethod
    def rect(widget: Any) -> Rect:
        """The middle of a video surface in screen pixels (clear of letterbox bars)."""
        from PySide6.QtCore import QPoint

        top_left = widget.mapToGlobal(QPoint(0, 0))
        w, h = widget.width(), widget.height()
        return (top_left.x() + w // 4, top_left.y() + h // 4, w // 2, h // 2)


def scenario_play(d: Driver) -> dict[str, Any]:
    from tests.widgets.ts_source import TsServer
    from widgets.cctv_grid import CctvGrid

    facts: dict[str, Any] = {}
    with TsServer() as src:
        def feed(cam: int) -> tuple[int, str, str]:
            return cam, f"Camera {cam}", src.url(cam)

        grid = CctvGrid(tiles=4, snapshot_dir=d.out / "evidence")
        grid.resize(900, 700)
        grid.move(0, 0)
        grid.show()
        snaps: list[list[Any]] = []
        grid.snapshot_taken.connect(lambda cam, path: snaps.append([cam, path]))
        facts["restarted"] = grid.show_cameras([feed(c) for c in (1, 2, 3, 4)], alert_id=7)

        def all_live() -> bool:
            return all(t.state == "live" for t in grid.visible_tiles())

        facts["live_after_s"] = d.wait(all_live, 20)
        d.pump(0.5)
        d.grab("grid-1")
        d.pump(1.0)
        d.grab("grid-2")
        facts["tiles"] = [{"state": t.state, "badge": t.badge.text(), "rect": d.rect(t.video)}
                          for t in grid.visible_tiles()]

        grid.tiles[0].snap.click()  # the operator's button
        path = snaps[0][1] if snaps else None
        facts["snapshot"] = {"path": str(path), "signal": snaps[0] if snaps else None}

        # Handover: camera 3 leaves, 5 comes in.
        starts = [t.starts for t in grid.tiles]
        restarted = grid.show_cameras([feed(c) for c in (1, 2, 5, 4)], alert_id=7)
        tile = grid.tiles[2]
        cue = {"handover": tile.property("handover"), "text": tile.cue.full_text(),
               "visible": tile.cue.isVisible()}
        d.wait(lambda: tile.state == "live", 15)
        d.pump(0.3)
        d.grab("handover-1")
        d.pump(1.0)
        d.grab("handover-2")
        d.wait(lambda: not tile.in_handover, 5)
        facts["handover"] = {
            "restarted": restarted, "shown": grid.cameras_shown(), "cue": cue,
            "starts_delta": [t.starts - s for t, s in zip(grid.tiles, starts, strict=True)],
            "connections": {str(k): v for k, v in sorted(src.connections.items())},
            "cue_after": {"handover": tile.property("handover"), "visible": tile.cue.isVisible()},
            "ranks": [t.rank.text() for t in grid.visible_tiles()], "rect": d.rect(tile.video),
        }

        # Follow mode: the first re-rank applies at once, a second one is held
        # back and the latest of a burst wins; follow off ignores re-ranks.
        grid.follow_cameras([feed(c) for c in (1, 2, 5, 4)])
        before = grid.cameras_shown()
        applied_now = grid.follow_cameras([feed(c) for c in (1, 2, 5, 3)])
        grid.follow_cameras([feed(c) for c in (1, 2, 5, 6)])
        t_applied = d.wait(lambda: grid.cameras_shown()[3] == 6, 5)
        after = grid.cameras_shown()
        grid.follow_button.setChecked(False)
        off_applied = grid.follow_cameras([feed(c) for c in (1, 2, 3, 6)])
        d.pump(2.5)
        off_shown = grid.cameras_shown()
        grid.follow_button.setChecked(True)  # the held-back ranking applies now
        facts["follow"] = {"applied_now": applied_now, "shown_before": before,
                           "shown_after": after,
                           "applied_after_s": t_applied, "off_applied": off_applied,
                           "off_shown": off_shown, "on_shown": grid.cameras_shown()}
        d.wait(all_live, 15)

        # Layouts 9 → 1 → 4.
        layouts: dict[int, Any] = {}
        for n in (9, 1, 4):
            starts = [t.starts for t in grid.tiles]
            grid.layout_buttons.button(n).click()
            d.pump(0.3)
            info: dict[str, Any] = {
                "visible": sum(t.isVisible() for t in grid.tiles),
                "shown": grid.cameras_shown(),
                "starts_delta": [t.starts - s for t, s in zip(grid.tiles, starts, strict=False)],
            }
            if n == 1:
                t0 = grid.tiles[0]
                info["tile0_share"] = (t0.width() * t0.height()) / (
                    grid.area.width() * grid.area.height())
            if n == 4:
                d.wait(all_live, 15)
                info["live"] = sum(t.state == "live" for t in grid.visible_tiles())
            layouts[n] = info
        facts["layouts"] = layouts

        # Video wall and back.
        starts = [t.starts + t.reconnects for t in grid.tiles[:4]]
        wins = [int(t.video.winId()) for t in grid.tiles[:4]]
        wall = grid.detach()
        wall.move(0, 0)
        d.pump(1.5)
        d.wait(all_live, 10)
        d.grab("wall-1")
        d.pump(1.0)
        d.grab("wall-2")
        facts["wall"] = {
            "detached": grid.is_detached, "wall_visible": wall.isVisible(),
            "placeholder_visible": grid.placeholder.isVisible(),
            "same_windows": wins == [int(t.video.winId()) for t in grid.tiles[:4]],
            "restarted_on_detach": [t.starts + t.reconnects - s
                                    for t, s in zip(grid.tiles[:4], starts, strict=True)],
            "rect": d.rect(grid.tiles[0].video),
        }
        wall.close()  # closing the window docks the tiles back
        d.pump(1.5)
        d.wait(all_live, 10)
        d.grab("docked-1")
        d.pump(1.0)
        d.grab("docked-2")
        facts["wall"].update(docked=not grid.is_detached,
                             placeholder_after=grid.placeholder.isVisible(),
                             docked_rect=d.rect(grid.tiles[0].video))
        grid.release()
        facts["released"] = all(t.player() is None for t in grid.tiles)
        grid.close()
        d.pump(0.2)
    return facts


def scenario_offline(d: Driver) -> dict[str, Any]:
    from tests.services import free_tcp_port
    from tests.widgets.ts_source import TsServer
    from widgets.cctv_grid import CctvGrid

    facts: dict[str, Any] = {}
    grid = CctvGrid(tiles=1, snapshot_dir=d.out / "evidence")
    grid.resize(480, 400)
    grid.show()
    tile = grid.tiles[0]
    dead = free_tcp_port()
    grid.show_cameras([(99, "Refused", f"http://127.0.0.1:{dead}/cam/99.ts")], alert_id=1)
    after = d.wait(lambda: tile.state == "offline", 10)
    facts["refused"] = {"state": tile.state, "after_s": after, "badge": tile.badge.text(),
                        "snapshot_enabled": tile.snap.isEnabled(), "detail": tile.detail}

    port = free_tcp_port()
    src = TsServer(port).start()
    try:
        grid.show_cameras([(3, "Camera 3", src.url(3))])
        d.wait(lambda: tile.state == "live", 15)
        relay: dict[str, str] = {}
        grid.set_camera_state(3, "stalled", "no packets from camera")
        relay["stalled"] = tile.state
        relay["detail"] = tile.detail
        grid.set_camera_state(3, "offline")
        relay["offline"] = tile.state
        grid.set_camera_state(3, "live")
        d.wait(lambda: tile.state == "live", 5)
        relay["live_again"] = tile.state
        facts["relay"] = relay
    finally:
        src.stop()  # the source goes away mid-stream
    lost_after = d.wait(lambda: tile.state in ("offline", "stalled"), 15)
    facts["source_lost"] = {"state": tile.state, "after_s": lost_after, "detail": tile.detail}
    reconnects = tile.reconnects
    with TsServer(port):  # and comes back on the same address
        back = d.wait(lambda: tile.state == "live", 30)
        facts["recovered"] = {"state": tile.state, "after_s": back,
                              "reconnects": tile.reconnects - reconnects}
    grid.release()
    grid.close()
    d.pump(0.2)
    return facts


SCENARIOS: dict[str, Callable[[Driver], dict[str, Any]]] = {
    "play": scenario_play, "offline": scenario_offline,
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="CCTV grid test driver (run under X)")
    parser.add_argument("scenario", choices=sorted(SCENARIOS))
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    os.environ.setdefault("QT_QPA_PLATFORM", "xcb")
    driver = Driver(args.out)
    try:
        facts = SCENARIOS[args.scenario](driver)
    except Exception:
        facts = {"error": traceback.format_exc()}
    facts["warnings"] = driver.warnings
    print(json.dumps(facts, default=str), flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
