"""``childsafe serve`` under systemd's notify protocol: READY=1 once the
services run, WATCHDOG=1 while the supervisor lives, STOPPING=1 at the end;
and the unit shipped in resources/ restarts the whole control group."""

from __future__ import annotations

import configparser
import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from tests.console.conftest import make_config

ROOT = Path(__file__).resolve().parents[2]


def test_serve_says_ready_then_feeds_the_watchdog_then_stopping(data_dir: Path) -> None:
    cfg = make_config(data_dir, children=20)
    conf = data_dir / "serve.json"
    conf.write_text(cfg.to_json(), encoding="utf-8")
    address = str(data_dir / "notify.sock")
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    sock.bind(address)
    sock.settimeout(1.0)
    env = {**os.environ, "NOTIFY_SOCKET": address, "WATCHDOG_USEC": "1000000"}
    serve = subprocess.Popen([sys.executable, "-m", "console", "serve", "--config", str(conf),
                              "--data-dir", str(data_dir)], cwd=ROOT, env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    said: list[str] = []
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and said.count("WATCHDOG=1") < 3:
            try:
                said.append(sock.recv(100).decode())
            except TimeoutError:
                assert serve.poll() is None, serve.stderr.read().decode()[-2000:]  # type: ignore[union-attr]
        serve.send_signal(signal.SIGTERM)
        while time.monotonic() < deadline and "STOPPING=1" not in said:
            with contextlib.suppress(TimeoutError):
                said.append(sock.recv(100).decode())
        assert serve.wait(30) == 0
    finally:
        if serve.poll() is None:
            serve.kill()
        sock.close()
    assert said[0] == "READY=1"
    assert said.count("WATCHDOG=1") >= 3 and said[-1] == "STOPPING=1"


def test_the_shipped_unit_restarts_the_whole_group_on_a_watchdog() -> None:
    unit = configparser.ConfigParser(strict=False, interpolation=None)
    unit.read(ROOT / "resources" / "systemd" / "childsafe.service")
    service = unit["Service"]
    assert service["Type"] == "notify" and service["Restart"] == "always"
    assert service["KillMode"] == "control-group" and int(service["WatchdogSec"]) > 0
    assert " serve " in service["ExecStart"]
