"""Stand-in cameras for the media tests: a real GStreamer RTSP server.

Fixture ``rtsp_server`` (function scope): an ``RtspServer`` with mounts
``cam1``/``cam2`` on a free port of 127.0.0.1, already answering. It runs
``console/media/rtsp_test_server.py`` under Debian's ``/usr/bin/python3`` (the
GStreamer bindings are Debian packages, not in the venv) and records the
events the script prints, so tests can count RTSP sessions (``plays``),
kill or revive one mount, or stop and restart the whole server on the same
port (a camera that died and came back).

``relay_token(cfg, scope)`` is a token the relay of that installation
accepts (as the engine would issue it: ``view`` to a console, ``control``
to itself).
"""

from __future__ import annotations

import http.client
import json
import socket
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from console import keys
from console.config import Config
from console.media import tokens
from tests.services import free_tcp_port

SYSTEM_PYTHON = "/usr/bin/python3"
SCRIPT = Path(__file__).resolve().parents[2] / "console" / "media" / "rtsp_test_server.py"
DEBIAN_PACKAGES = ("gir1.2-gst-rtsp-server-1.0 python3-gi gstreamer1.0-plugins-base "
                   "gstreamer1.0-x gstreamer1.0-plugins-good gstreamer1.0-plugins-ugly")


def relay_token(cfg: Config, scope: str, ttl_s: float = 600.0,
                subject: str = "tester", session: str = "") -> str:
    """A ``scope`` token signed with the installation's media secret (made
    by the supervisor's ``keys.init``), valid for ``ttl_s``, of ``session``
    (a ``tokens.session_id``) if given."""
    return tokens.issue(keys.media_secret(cfg.data_dir), subject, scope, time.time() + ttl_s,
                        session)


def view_answer(port: int, token: str) -> tuple[int, str]:
    """The relay's answer to ``GET /status`` with this view token: (200, "")
    or (the refusal's status, its counted reason); (0, "no answer") while
    the relay is not listening."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/status", headers={"Authorization": f"Bearer {token}"})
        resp = conn.getresponse()
        body = json.loads(resp.read() or b"{}")
    except OSError:
        return 0, "no answer"
    finally:
        conn.close()
    return resp.status, "" if resp.status == 200 else str(body.get("reason", ""))


class RtspServer:
    """The stand-in camera server; see ``console/media/rtsp_test_server.py``."""

    def __init__(self, mounts: int = 2, fps: int = 10, size: tuple[int, int] = (320, 240),
                 kbps: int = 300) -> None:
        self.mounts = mounts
        self.fps = fps
        self.size = size
        self.kbps = kbps
        self.port = free_tcp_port()
        self.proc: subprocess.Popen[str] | None = None
        self.events: list[str] = []  # every line printed, over restarts
        self._cond = threading.Condition()

    def url(self, mount: str = "cam1") -> str:
        return f"rtsp://127.0.0.1:{self.port}/{mount}"

    # ------------------------------------------------------------ lifecycle
    def start(self, timeout_s: float = 15.0) -> None:
        mark = len(self.events)
        self.proc = subprocess.Popen(
            [SYSTEM_PYTHON, str(SCRIPT), "--port", str(self.port),
             "--mounts", str(self.mounts), "--fps", str(self.fps),
             "--width", str(self.size[0]), "--height", str(self.size[1]),
             "--kbps", str(self.kbps)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
            text=True, bufsize=1,
        )
        threading.Thread(target=self._read, args=(self.proc,), daemon=True).start()
        try:
            self.wait_for(lambda lines: any(ln.startswith("READY") for ln in lines),
                          timeout_s, "READY", since=mark)
            self._wait_port(timeout_s)
        except AssertionError:
            self.stop()
            raise

    def _read(self, proc: subprocess.Popen[str]) -> None:
        assert proc.stdout is not None
        for line in proc.stdout:
            with self._cond:
                self.events.append(line.rstrip("\n"))
                self._cond.notify_all()

    def _wait_port(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=1):
                    return
            except OSError:
                if time.monotonic() > deadline:
                    raise AssertionError(f"RTSP server not answering on {self.port}") from None
                time.sleep(0.05)

    def stop(self) -> None:
        """Stop the whole server (every camera goes dark)."""
        proc, self.proc = self.proc, None
        if proc is None:
            return
        if proc.poll() is None:
            proc.terminate()
            try:
                proc.wait(5)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
        if proc.stdin is not None:
            proc.stdin.close()

    def restart(self) -> None:
        """Start again on the same port (the cameras came back)."""
        self.stop()
        self.start()

    # ------------------------------------------------------------- control
    def command(self, line: str, timeout_s: float = 5.0) -> None:
        """``kill camN`` / ``revive camN`` / ``stall camN`` / ``unstall camN``."""
        assert self.proc is not None and self.proc.stdin is not None, "server not running"
        mark = len(self.events)
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()
        self.wait_for(lambda lines: f"OK {line}" in lines, timeout_s, f"OK {line}", since=mark)

    def players(self, mount: str = "cam1") -> list[str]:
        """Peers (``ip:port``) of every RTSP session that played ``mount``,
        over restarts."""
        prefix = f"PLAY /{mount} "
        with self._cond:
            return [ln[len(prefix):] for ln in self.events if ln.startswith(prefix)]

    def plays(self, mount: str = "cam1") -> int:
        """How many RTSP sessions played ``mount``."""
        return len(self.players(mount))

    def closed(self, peer: str) -> bool:
        with self._cond:
            return f"CLOSED {peer}" in self.events

    def wait_for(self, predicate: Callable[[list[str]], bool], timeout_s: float,
                 what: str, since: int = 0) -> None:
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while not predicate(self.events[since:]):
                left = deadline - time.monotonic()
                if left <= 0:
                    tail = "\n".join(self.events[-15:])
                    raise AssertionError(f"RTSP server: no {what} within {timeout_s} s;\n{tail}")
                self._cond.wait(left)


def _check_gstreamer() -> None:
    probe = subprocess.run([SYSTEM_PYTHON, str(SCRIPT), "--check"],
                           capture_output=True, text=True, check=False)
    if probe.returncode != 0:
        pytest.fail(f"the GStreamer RTSP test server cannot run under {SYSTEM_PYTHON}; "
                    f"apt-get install {DEBIAN_PACKAGES} (or run "
                    f"'python3 -m console.bootstrap test')\n{probe.stderr[-500:]}",
                    pytrace=False)


@pytest.fixture
def rtsp_server() -> Iterator[RtspServer]:
    _check_gstreamer()
    server = RtspServer()
    server.start()
    try:
        yield server
    finally:
        server.stop()
