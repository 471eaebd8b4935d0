"""The real console window on a real (virtual) X screen, for
``tests/console/test_cctv_chain.py``.

``python -m tests.console.cctv_chain_gui --config RUN/config.json --out DIR
--mode play|watch`` opens ``console.app.ConsoleWindow`` against a running
backend, waits for the first SOS in its alert queue and locates it as an
operator would, which fills the CCTV grid with the alert's nearest cameras
playing through the media relay. Everything it sees goes to stdout as one
JSON object per line, each with ``event`` and wall-clock ``t``:

- ``alert`` (the SOS arrived), ``located`` (``cameras`` shown),
- ``tile`` (``index``, ``camera``, ``state``) on every change of a visible
  tile's shown state,
- ``play`` mode: once two tiles are live, it grabs the screen
  (``QScreen.grabWindow``: libvlc draws into native X windows that
  ``QWidget.grab`` never sees) twice one second apart, measures each tile's
  video area and prints ``summary``, then exits;
- ``watch`` mode: keeps running and reporting until ``quit`` arrives on
  stdin (or ``--timeout``), then prints ``summary``; ``grab`` on stdin makes
  the same two grabs and measurements as ``play`` and prints ``grabbed``.

An ``error`` event (and exit status 1) says what did not happen in time.
"""

from __future__ import annotations

import argparse
import json
import queue
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from PySide6.QtCore import QPoint
from PySide6.QtWidgets import QApplication

from console.app import ConsoleWindow
from console.config import Config
from console.theme import apply_theme
from models.messages import AlertView

BRIGHT = 160  # a channel value the black tile background never reaches


def emit(event: str, **facts: Any) -> None:
    print(json.dumps({"event": event, "t": time.time(), **facts}), flush=True)


class Gui:
    def __init__(self, cfg: Config, out: Path) -> None:
        self.out = out
        self.app = QApplication.instance() or QApplication(sys.argv[:1])
        apply_theme(self.app)  # type: ignore[arg-type]
        self.window = ConsoleWindow(cfg)
        self.window.resize(1600, 960)
        self.window.move(0, 0)
        self.window.show()
        self.window.map.fit_seoul()
        self.window.start(("operator1", "test-password-1"))  # conftest.TEST_PASSWORD
        self.shown: dict[int, tuple[int | None, str]] = {}

    def pump(self, seconds: float) -> None:
        end = time.monotonic() + seconds
        while True:
            self.app.processEvents()
            self.report_tiles()
            if time.monotonic() >= end:
                return
            time.sleep(0.01)

    def wait(self, pred: Callable[[], object], timeout_s: float, what: str) -> None:
        end = time.monotonic() + timeout_s
        while not pred():
            if time.monotonic() > end:
                raise TimeoutError(f"no {what} within {timeout_s} s")
            self.pump(0.02)

    def report_tiles(self) -> None:
        for i, tile in enumerate(self.window.cctv.visible_tiles()):
            now = (tile.camera_id, tile.state)
            if self.shown.get(i) != now:
                self.shown[i] = now
                emit("tile", index=i, camera=tile.camera_id, state=tile.state,
                     detail=tile.detail)

    def first_sos(self) -> AlertView | None:
        model = self.window.alerts.model
        for row in range(model.rowCount()):
            alert = model.alert_at(row)
            if alert is not None and alert.kind == "sos":
                return alert
        return None

    def live_tiles(self) -> int:
        return sum(t.state == "live" for t in self.window.cctv.visible_tiles())

    def grab(self, name: str) -> np.ndarray:
        from PySide6.QtGui import QImage

        self.app.processEvents()
        pixmap = self.window.screen().grabWindow(0)
        path = self.out / f"{name}.png"
        pixmap.save(str(path))
        image = pixmap.toImage().convertToFormat(QImage.Format.Format_RGB888)
        raw = np.frombuffer(image.constBits(), np.uint8).reshape(image.height(),
                                                                  image.bytesPerLine())
        return raw[:, : image.width() * 3].reshape(image.height(), image.width(), 3).copy()

    def tile_facts(self, first: np.ndarray, second: np.ndarray) -> list[dict[str, Any]]:
        facts = []
        for i, tile in enumerate(self.window.cctv.visible_tiles()):
            top_left = tile.video.mapToGlobal(QPoint(0, 0))
            x, y, w, h = top_left.x(), top_left.y(), tile.video.width(), tile.video.height()
            a = first[y:y + h, x:x + w].astype(np.int16)
            b = second[y:y + h, x:x + w].astype(np.int16)
            changed = np.abs(a - b).max(axis=2) > 40
            facts.append({
                "index": i, "camera": tile.camera_id, "state": tile.state,
                "badge": tile.badge.text(), "rect": [x, y, w, h],
                "mean": round(float(a.mean()), 2),
                "bright_px": int((a.max(axis=2) >= BRIGHT).sum()),
                "changed_px": int(changed.sum()),
                "mean_abs_diff": round(float(np.abs(a - b).mean()), 3),
                "reconnects": tile.reconnects,
            })
        return facts


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser()
    p.add_argument("--config", type=Path, required=True)
    p.add_argument("--out", type=Path, required=True)
    p.add_argument("--mode", choices=("play", "watch"), default="play")
    p.add_argument("--timeout", type=float, default=60.0)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)
    gui = Gui(Config.load(args.config), args.out)
    commands: queue.Queue[str] = queue.Queue()

    def read_stdin() -> None:
        for line in sys.stdin:
            commands.put(line.strip())
        commands.put("quit")

    threading.Thread(target=read_stdin, daemon=True).start()
    deadline = time.monotonic() + args.timeout
    summary: dict[str, Any] = {}
    try:
        # Video needs the session's relay token: an operator signs in first.
        gui.wait(lambda: gui.window.session.current is not None, 20, "the sign-in")
        gui.wait(gui.first_sos, 20, "SOS in the alert queue")
        alert = gui.first_sos()
        assert alert is not None
        emit("alert", id=alert.id, child=alert.child_token)
        located = time.time()
        gui.window.locate(alert)
        emit("located", cameras=gui.window.cctv.cameras_shown())
        gui.wait(lambda: gui.live_tiles() >= 1, 30, "live tile")
        summary["first_live_s"] = round(time.time() - located, 3)
        gui.wait(lambda: gui.live_tiles() >= 2, 30, "second live tile")
        summary["two_live_s"] = round(time.time() - located, 3)
        if args.mode == "play":
            gui.pump(1.0)  # a few pictures past the first
            first = gui.grab("grab-1")
            gui.pump(1.0)
            second = gui.grab("grab-2")
            summary["tiles"] = gui.tile_facts(first, second)
        else:
            while time.monotonic() < deadline:
                try:
                    command = commands.get_nowait()
                except queue.Empty:
                    gui.pump(0.05)
                    continue
                if command == "quit":
                    break
                if command == "grab":
                    first = gui.grab("grab-1")
                    gui.pump(1.0)
                    emit("grabbed", tiles=gui.tile_facts(first, gui.grab("grab-2")))
            summary["tiles"] = [{"index": i, "camera": t.camera_id, "state": t.state,
                                 "reconnects": t.reconnects, "starts": t.starts}
                                for i, t in enumerate(gui.window.cctv.visible_tiles())]
    except (TimeoutError, AssertionError) as exc:
        emit("error", error=str(exc),
             tiles=[[t.camera_id, t.state, t.detail] for t in gui.window.cctv.visible_tiles()])
        return 1
    finally:
        gui.window.cctv.release()
        gui.window.close()
    emit("summary", **summary)
    return 0


if __name__ == "__main__":
    sys.exit(main())
