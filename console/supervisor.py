"""Starts the backend processes in a fixed order, restarts one that dies
(within a budget), and stops them all in reverse order.

Each service is its own OS process (``python -m console.services.<name>``)
in its own session, so a Ctrl+C at the terminal reaches only the
supervisor, which then stops the others in order: nothing is left behind.
"""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from console.config import Config

log = logging.getLogger(__name__)

BACKEND = ("bus", "engine", "recorder", "gateway", "relay")
DEMO = ("democams", *BACKEND, "simulator")
RESTART_BUDGET = 5  # restarts ...
RESTART_WINDOW_S = 60.0  # ... within this many seconds, then give up on it
STOP_TIMEOUT_S = 8.0


@dataclass
class Child:
    name: str
    proc: subprocess.Popen[bytes] | None = None
    restarts: deque[float] = field(default_factory=deque)
    gave_up: bool = False


class Supervisor:
    def __init__(self, config: Config, services: tuple[str, ...] = DEMO,
                 package: str = "console.services") -> None:
        self.config = config
        self.package = package
        self.children = [Child(name) for name in services]
        self._stopping = threading.Event()
        self._watch: threading.Thread | None = None
        self._lock = threading.Lock()
        config.ensure_dirs()
        self.config_file: Path = config.run_dir / "config.json"

    def _spawn(self, child: Child) -> None:
        out = open(self.config.log_dir / f"{child.name}.out", "ab")  # noqa: SIM115
        child.proc = subprocess.Popen(
            [sys.executable, "-m", f"{self.package}.{child.name}",
             "--config", str(self.config_file)],
            stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            cwd=Path(__file__).resolve().parent.parent,
        )
        out.close()
        log.info("started %s (pid %d)", child.name, child.proc.pid)

    def start(self) -> None:
        self.config_file.write_text(self.config.to_json(), encoding="utf-8")
        for child in self.children:
            self._spawn(child)
            if child.name == "bus":
                self._wait_for_bus()
        self._watch = threading.Thread(target=self._watchdog, name="supervisor", daemon=True)
        self._watch.start()

    def _wait_for_bus(self, timeout: float = 10.0) -> None:
        """Publishers may connect before the bus binds (ZeroMQ reconnects), but
        waiting here makes a broken bus fail the start, not later."""
        deadline = time.monotonic() + timeout
        paths = self.config.ipc_paths()[:2]
        while paths and not all(p.exists() for p in paths):
            if time.monotonic() > deadline:
                raise RuntimeError("the bus did not come up; see logs/bus.log")
            time.sleep(0.02)

    def _watchdog(self) -> None:
        while not self._stopping.wait(0.25):
            with self._lock:
                for child in self.children:
                    if child.proc is None or child.proc.poll() is None or child.gave_up:
                        continue
                    now = time.monotonic()
                    while child.restarts and now - child.restarts[0] > RESTART_WINDOW_S:
                        child.restarts.popleft()
                    code = child.proc.returncode
                    if len(child.restarts) >= RESTART_BUDGET:
                        child.gave_up = True
                        log.error("%s died (exit %s) %d times in %.0f s; not restarting",
                                  child.name, code, RESTART_BUDGET, RESTART_WINDOW_S)
                        continue
                    child.restarts.append(now)
                    log.warning("%s died (exit %s); restarting", child.name, code)
                    self._spawn(child)

    def status(self) -> dict[str, str]:
        with self._lock:
            return {
                c.name: ("gave up" if c.gave_up else "running" if c.proc and c.proc.poll() is None
                         else "stopped")
                for c in self.children
            }

    def pid(self, name: str) -> int:
        with self._lock:
            child = next(c for c in self.children if c.name == name)
            assert child.proc is not None
            return child.proc.pid

    def stop(self) -> None:
        """Stop in reverse start order: producers first, the bus last."""
        self._stopping.set()
        if self._watch is not None:
            self._watch.join()
        with self._lock:
            for child in reversed(self.children):
                proc = child.proc
                if proc is None or proc.poll() is not None:
                    continue
                proc.send_signal(signal.SIGTERM)
                try:
                    proc.wait(STOP_TIMEOUT_S)
                except subprocess.TimeoutExpired:
                    log.error("%s ignored SIGTERM; killing it", child.name)
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
                log.info("stopped %s (exit %s)", child.name, proc.returncode)
        for path in self.config.ipc_paths():
            path.unlink(missing_ok=True)

    def __enter__(self) -> Supervisor:
        self.start()
        return self

    def __exit__(self, *_exc: object) -> None:
        self.stop()
