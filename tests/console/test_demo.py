"""`childsafe demo` as a user runs it: whole system, simulated incidents,
clean stop; and the window as it looks on a real (virtual) screen."""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PySide6.QtGui import QImage

from tests.services import free_tcp_port

ROOT = Path(__file__).resolve().parents[2]


def free_ports_toml() -> str:
    names = ("osmand_port", "watch_port", "feeds_port", "relay_port", "demo_rtsp_port")
    return "".join(f"{name} = {free_tcp_port()}\n" for name in names)


def _processes_mentioning(text: str) -> list[int]:
    pids = []
    for proc in Path("/proc").iterdir():
        if proc.name.isdigit():
            try:
                cmd = (proc / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            except OSError:
                continue
            if text in cmd:
                pids.append(int(proc.name))
    return pids


@pytest.mark.slow
def test_headless_demo_raises_simulated_incidents_and_stops_cleanly(data_dir: Path) -> None:
    config = data_dir / "demo.toml"
    # zones count an exit 5 s out (the default dwell, 30 s, only makes the test wait)
    config.write_text(free_ports_toml() + "sim_first_incident_s = 12.0\nsim_interval_s = 5.0\n"
                      "fence_dwell_s = { school = 5.0, park = 5.0 }\n")
    common = ["--data-dir", str(data_dir), "--config", str(config)]
    demo = subprocess.Popen([sys.executable, "-m", "console", "demo", "--headless",
                             "--children", "260", *common], cwd=ROOT,
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        tap = subprocess.run([sys.executable, "-m", "console", "tap", "alert.opened",
                              "--count", "2", *common], cwd=ROOT, capture_output=True,
                             text=True, timeout=90)
        alerts = [json.loads(line)["alert"] for line in tap.stdout.splitlines()]
        assert {a["kind"] for a in alerts} == {"sos", "zone_exit"}
        for a in alerts:
            # the demo zones' districts, or a neighbour's for a child that ran off
            assert a["place"].split()[0] in {"성동구", "구로구", "도봉구", "영등포구", "광진구",
                                             "동대문구", "노원구", "강북구"}
            assert a["child_token"].startswith("C-")
        assert _processes_mentioning(str(data_dir / "run" / "config.json"))
    finally:
        demo.send_signal(signal.SIGTERM)
        out, _ = demo.communicate(timeout=30)
    assert demo.returncode == 0, out[-3000:]
    assert "stopped bus" in out
    assert _processes_mentioning(str(data_dir / "run" / "config.json")) == []
    assert not list((data_dir / "run").glob("*.sock"))


def _near(img: np.ndarray, rgb: tuple[int, int, int], tol: int = 12) -> int:
    diff = np.abs(img[:, :, :3].astype(int) - np.array(rgb)[None, None, :])
    return int((diff.max(axis=2) <= tol).sum())


@pytest.mark.xvfb
@pytest.mark.slow
def test_screenshot_under_xvfb_shows_districts_markers_and_alerts(
        xvfb_display: str, tmp_path: Path) -> None:
    env = {"DISPLAY": xvfb_display, "QT_QPA_PLATFORM": "xcb", "PATH": "/usr/bin:/bin",
           "HOME": str(tmp_path)}
    out = subprocess.run(
        [sys.executable, "-m", "console.screenshots", "--out", str(tmp_path), "--children",
         "600", "--timeout", "90", "--console-only"],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=180,
    )
    assert out.returncode == 0, out.stderr[-3000:]
    summary = json.loads(out.stdout.strip().splitlines()[-1])
    assert summary["bus"] == "LIVE"
    # The demo's SOS and zone exit, and the alarms the script staged, in every state.
    assert {"sos", "zone_exit", "fall", "removed", "low_battery"} <= set(summary["alert_kinds"])
    assert set(summary["alert_states"]) == {"new", "acknowledged", "in_progress", "on_hold",
                                            "dispatched", "resolved"}

    image = QImage(str(tmp_path / "console.png")).convertToFormat(QImage.Format.Format_RGB888)
    assert (image.width(), image.height()) == (1600, 960)
    ptr = image.constBits()
    rgb = np.frombuffer(ptr, np.uint8).reshape(image.height(), image.bytesPerLine())
    rgb = rgb[:, : image.width() * 3].reshape(image.height(), image.width(), 3)
    map_part = rgb[:900, :950]
    # Colours from resources/theme.qss: district outlines, children inside
    # zones, alert markers, and the severity rows of the queue.
    assert _near(map_part, (0x5B, 0x72, 0x91), tol=20) > 3000, "district outlines missing"
    assert _near(map_part, (0x3F, 0xBF, 0x7F), tol=30) > 30, "no child markers"
    assert _near(map_part, (0xFF, 0x4D, 0x4F), tol=40) > 3, "no alert marker"
    # (the queue's first rows: the staged P1s fill it, P2s are below the fold)
    assert _near(rgb[:, 1000:], (0x7F, 0x1D, 0x1D), tol=10) > 500, "no new P1 alert row"
    # The map is not a blank canvas: many distinct colours are drawn.
    assert len(np.unique(map_part.reshape(-1, 3)[::7], axis=0)) > 50


@pytest.mark.xvfb
def test_demo_window_stops_everything_on_ctrl_c(xvfb_display: str, data_dir: Path) -> None:
    config = data_dir / "demo.toml"
    config.write_text(free_ports_toml())
    common = ["--data-dir", str(data_dir), "--config", str(config)]
    env = {"DISPLAY": xvfb_display, "QT_QPA_PLATFORM": "xcb", "PATH": "/usr/bin:/bin",
           "HOME": str(data_dir)}
    demo = subprocess.Popen([sys.executable, "-m", "console", "demo", "--children", "50",
                             *common], cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    try:
        assert demo.stdout is not None
        for line in demo.stdout:  # the window's bus worker got its snapshot
            if "console.feed: snapshot" in line:
                break
        else:
            pytest.fail("the console never synced")
    finally:
        demo.send_signal(signal.SIGINT)
        out, _ = demo.communicate(timeout=30)
    assert demo.returncode == 0, out[-3000:]
    assert "stopped bus" in out
    assert _processes_mentioning(str(data_dir / "run" / "config.json")) == []
    assert not list((data_dir / "run").glob("*.sock"))
