"""Produces the README's screenshots from a real running demo.

``python -m console.screenshots --out resources/screenshots`` starts the
demo backend (simulated children, first incidents after a few seconds),
opens the console window on the current display, waits until an SOS and a
zone exit are in the queue, and saves what the screen shows. It needs a
real display (Xvfb works; ``python3 -m console.bootstrap demo`` starts one),
because only a screen grab shows what an operator would see.
"""

from __future__ import annotations

import argparse
import json
import shutil
import socket
import sys
import tempfile
import time
from pathlib import Path

from PySide6.QtCore import QCoreApplication
from PySide6.QtWidgets import QApplication

from console.app import ConsoleWindow
from console.config import Config
from console.supervisor import DEMO, Supervisor
from console.theme import apply_theme


def free_port() -> int:
    """A free port on 127.0.0.1, so a run never collides with a live demo."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def pump(seconds: float) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        QCoreApplication.processEvents()
        time.sleep(0.01)


def grab(window: ConsoleWindow, out: Path) -> Path:
    pump(0.3)
    screen = window.screen()
    pixmap = screen.grabWindow(0, window.x(), window.y(), window.width(), window.height())
    if pixmap.isNull() or not pixmap.save(str(out)):
        raise RuntimeError(f"could not grab the screen into {out}")
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m console.screenshots", description=__doc__)
    p.add_argument("--out", type=Path, default=Path("resources/screenshots"))
    p.add_argument("--children", type=int, default=None)
    p.add_argument("--timeout", type=float, default=90.0)
    args = p.parse_args(argv)
    args.out.mkdir(parents=True, exist_ok=True)

    from console.cli import _prepare_store

    data_dir = Path(tempfile.mkdtemp(prefix="cs-shot-"))
    try:
        ports = {name: free_port() for name in ("osmand_port", "watch_port", "feeds_port",
                                                 "relay_port", "demo_rtsp_port")}
        cfg = Config(data_dir=data_dir, children=args.children, sim_first_incident_s=12.0,
                     sim_incident_every_s=600.0, **ports)  # type: ignore[arg-type]
        cfg.ensure_dirs()
        _prepare_store(cfg)
        app = QApplication(sys.argv[:1])
        apply_theme(app)
        summary: dict[str, object] = {}
        with Supervisor(cfg, DEMO):
            window = ConsoleWindow(cfg)
            window.resize(1600, 960)
            window.move(0, 0)
            window.show()
            window.map.fit_seoul()
            window.start()
            deadline = time.monotonic() + args.timeout
            kinds: set[str] = set()
            while time.monotonic() < deadline and not {"sos", "zone_exit"} <= kinds:
                pump(0.2)
                model = window.alerts.model
                kinds = {a.kind for r in range(model.rowCount()) if (a := model.alert_at(r))}
            pump(1.0)
            shots = [grab(window, args.out / "console.png")]
            model = window.alerts.model
            sos_row = next((r for r in range(model.rowCount())
                            if (a := model.alert_at(r)) and a.kind == "sos"), 0)
            window.alerts.table.selectRow(sos_row)
            alert = model.alert_at(sos_row)
            if alert is not None:
                window.locate(alert)
            # The CCTV tiles of the alert's nearest cameras start playing.
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and any(
                    t.state != "live" for t in window.cctv.visible_tiles() if t.feed is not None):
                pump(0.2)
            pump(2.0)
            shots.append(grab(window, args.out / "alert-located.png"))
            tiles = [t.state for t in window.cctv.visible_tiles()]
            window.side.setCurrentWidget(window.gateway)
            pump(2.5)
            shots.append(grab(window, args.out / "gateway.png"))
            window.side.setCurrentWidget(window.camera_panel)
            pump(3.0)
            shots.append(grab(window, args.out / "cameras.png"))
            summary = {
                "shots": [str(s) for s in shots],
                "alert_kinds": sorted(kinds),
                "alert_rows": model.rowCount(),
                "children": window.status.children.text(),
                "bus": window.status.bus.text(),
                "tiles": tiles,
                "camera_states": {k: v[0] for k, v in window._camera_states.items()},
                "shown": window.cctv.cameras_shown(),
            }
            window.close()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)  # the run's store, sockets and logs
    print(json.dumps(summary, ensure_ascii=False))
    return 0 if {"sos", "zone_exit"} <= kinds else 1


if __name__ == "__main__":
    sys.exit(main())
