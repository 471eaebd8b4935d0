"""The media relay on real streams: a GStreamer RTSP server as the cameras,
the relay's HTTP port as consoles see it, a real bus for ``cam.status``,
and a real SQLite store for cameras and evidence.

The relay runs in-process (``RelayService.run`` in a thread) with short
timings, so drops and clips take seconds; one test runs it as the
supervised process with its defaults.
"""

from __future__ import annotations

import http.client
import io
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import av
import pytest
import zmq
from sqlalchemy import select

from console.bus import Subscriber
from console.config import Config
from console.media.hub import RelaySettings
from console.media.pull import PullSettings
from console.security import Security
from console.services.relay import RelayService
from console.supervisor import Supervisor
from db.store import open_store
from db.tables import Alert, Camera, Child, Evidence
from models.messages import CamStatus
from tests.media.conftest import RtspServer, relay_token
from tests.services import free_tcp_port

FAST = RelaySettings(
    prealarm_s=3.0, debounce_s=0.5, idle_s=1.0,
    pull=PullSettings(backoff_initial_s=0.3, backoff_max_s=1.0, read_timeout_s=2.0),
)
TS_SYNC = 0x47


# ----------------------------------------------------------------- helpers


def wait_for(predicate: Callable[[], object], timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(0.05)


def request(port: int, method: str, path: str, body: dict[str, Any] | None = None,
            token: str | None = None) -> tuple[int, dict[str, Any]]:
    """One request; ``token`` goes as ``Authorization: Bearer`` when given."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        data = json.dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if data else {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        conn.request(method, path, body=data, headers=headers)
        resp = conn.getresponse()
        return resp.status, json.loads(resp.read() or b"{}")
    finally:
        conn.close()


class TsClient(threading.Thread):
    """A console's view of one tile: reads ``/cam/<id>.ts?t=<token>`` (as
    libvlc is given it) until told to stop; ``token`` None sends none."""

    def __init__(self, port: int, camera_id: int, token: str | None) -> None:
        super().__init__(daemon=True)
        self.port = port
        self.camera_id = camera_id
        self.token = token
        self.data = bytearray()
        self.status = 0
        self.headers: dict[str, str] = {}
        self.halt = threading.Event()
        self.ended = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=10)
        try:
            query = f"?t={self.token}" if self.token is not None else ""
            conn.request("GET", f"/cam/{self.camera_id}.ts{query}")
            resp = conn.getresponse()
            self.status = resp.status
            self.headers = dict(resp.getheaders())
            while not self.halt.is_set():
                block = resp.read1(65536)
                if not block:
                    break
                self.data += block
        except OSError:
            pass
        finally:
            conn.close()
            self.ended.set()

    def stop(self) -> None:
        self.halt.set()
        self.join(15)


def assert_ts(data: bytes) -> None:
    """Whole 188-byte packets, each starting with the sync byte."""
    assert len(data) >= 188 * 10, f"only {len(data)} bytes"
    usable = len(data) - len(data) % 188
    bad = [i for i in range(0, usable, 188) if data[i] != TS_SYNC]
    assert not bad, f"{len(bad)} packets without sync byte, first at offset {bad[0]}"


def decode_frames(data: bytes) -> list[av.VideoFrame]:
    usable = len(data) - len(data) % 188
    with av.open(io.BytesIO(data[:usable]), "r", format="mpegts") as container:
        return list(container.decode(video=0))


@dataclass
class StatusWatch:
    """``cam.status`` events from the bus, collected by a thread."""

    config: Config
    events: list[CamStatus] = field(default_factory=list)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        ready = threading.Event()
        self._thread = threading.Thread(target=self._run, args=(ready,), daemon=True)
        self._thread.start()
        ready.wait(5)

    def _run(self, ready: threading.Event) -> None:
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        sub = Subscriber(ctx, self.config.bus_sub, ("cam.status",),
                         security=Security.console(self.config))
        ready.set()
        try:
            while not self._stop.is_set():
                got = sub.recv(timeout_ms=100)
                if got is not None and isinstance(got[1], CamStatus):
                    self.events.append(got[1])
        finally:
            sub.close()
            ctx.term()

    def states(self, camera_id: int) -> list[str]:
        return [e.state for e in list(self.events) if e.camera_id == camera_id]

    def wait_state(self, camera_id: int, state: str, timeout_s: float, after: int = 0) -> None:
        wait_for(lambda: state in self.states(camera_id)[after:], timeout_s,
                 f"cam.status {state} for camera {camera_id} (saw {self.states(camera_id)})")

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)


@dataclass
class RelayEnv:
    config: Config
    cameras: RtspServer
    status: StatusWatch
    alert_id: int

    @property
    def port(self) -> int:
        return self.config.relay_port

    def token(self, scope: str) -> str:
        return relay_token(self.config, scope)

    def request(self, method: str, path: str,
                body: dict[str, Any] | None = None) -> tuple[int, dict[str, Any]]:
        """As the engine (POST, a control token) or a console (GET, view)."""
        return request(self.port, method, path, body,
                       self.token("control" if method == "POST" else "view"))

    def viewer(self, camera_id: int) -> TsClient:
        return TsClient(self.port, camera_id, self.token("view"))


def seed_store(cfg: Config, cameras: RtspServer) -> int:
    """Two cameras on the stand-in server and one open SOS alert; returns its id."""
    engine, sessions = open_store(cfg.db_url)
    with sessions() as s:
        for cid in (1, 2):
            s.add(Camera(id=cid, name=f"test camera {cid}", lat=37.5444, lon=127.0374,
                         stream_url=cameras.url(f"cam{cid}")))
        s.add(Camera(id=3, name="no stream", lat=37.5, lon=127.0, stream_url=""))
        child = Child(token="T-0001", name="test child")
        s.add(child)
        s.flush()
        alert = Alert(kind="sos", priority=1, state="new", child_id=child.id,
                      device_id="dev-1", lat=37.5444, lon=127.0374, place="성동구 성수동1가",
                      opened_at=time.time())
        s.add(alert)
        s.commit()
        alert_id = alert.id
    engine.dispose()
    return alert_id


def make_config(data_dir: Path, **settings: Any) -> Config:
    cfg = Config(data_dir=data_dir, relay_port=free_tcp_port(), **settings)
    cfg.ensure_dirs()
    return cfg


@pytest.fixture
def relay(data_dir: Path, rtsp_server: RtspServer) -> Iterator[RelayEnv]:
    """Bus (supervised process) + relay (in-process, FAST settings) + a
    ``cam.status`` listener, on a seeded store."""
    cfg = make_config(data_dir)
    alert_id = seed_store(cfg, rtsp_server)
    with Supervisor(cfg, ("bus",)):
        watch = StatusWatch(cfg)
        watch.start()
        service = RelayService(cfg, FAST)
        stop = threading.Event()
        runner = threading.Thread(target=service.run, args=(stop,), name="relay-owner")
        runner.start()
        try:
            yield RelayEnv(cfg, rtsp_server, watch, alert_id)
        finally:
            stop.set()
            runner.join(15)
            watch.stop()
            assert not runner.is_alive(), "the relay did not stop"


# ------------------------------------------------------------------- tests


def test_two_consoles_one_camera_session_decodable_ts(relay: RelayEnv) -> None:
    a, b = relay.viewer(1), relay.viewer(1)
    a.start()
    wait_for(lambda: len(a.data) > 20_000, 15, "the first console's stream")
    b.start()
    wait_for(lambda: len(b.data) > 20_000, 10, "the second console's stream")
    _, status = relay.request("GET", "/status")
    cam = next(c for c in status["cameras"] if c["camera_id"] == 1)
    assert cam["viewers"] == 2
    a.stop()
    b.stop()

    assert a.status == b.status == 200
    # The camera saw one RTSP session for both consoles.
    assert relay.cameras.plays("cam1") == 1
    for client in (a, b):
        assert_ts(bytes(client.data))
        frames = decode_frames(bytes(client.data))
        assert len(frames) >= 5
        assert (frames[0].width, frames[0].height) == (320, 240)
    # A late joiner starts at a keyframe (GOP cache): its first frame decodes.
    assert decode_frames(bytes(b.data))[0].key_frame

    # Nobody watches any more: after idle_s the relay hangs up on the camera.
    wait_for(lambda: not relay.request("GET", "/status")[1]["cameras"][0]["pulling"],
             10, "the idle camera to be released")
    (session,) = relay.cameras.players("cam1")
    wait_for(lambda: relay.cameras.closed(session), 10, "the relay's RTSP session to close")


def test_unknown_camera_and_bad_requests(relay: RelayEnv) -> None:
    for path in ("/cam/99.ts", "/cam/3.ts", "/nothing"):
        assert relay.request("GET", path)[0] == 404
    assert relay.request("POST", "/hold", {"camera_ids": "1", "alert_id": 1})[0] == 400
    assert relay.request("POST", "/clip", {"camera_id": 99, "alert_id": None})[0] == 404
    status, body = relay.request("POST", "/hold",
                                 {"camera_ids": [1, 99], "alert_id": relay.alert_id})
    assert (status, body) == (200, {"held": [1], "unknown": [99]})
    assert relay.request("POST", "/release", {"alert_id": relay.alert_id})[1] == {
        "released": [1]}


def test_camera_drop_goes_offline_on_the_bus_and_comes_back_live(relay: RelayEnv) -> None:
    viewer = relay.viewer(1)
    viewer.start()
    try:
        relay.status.wait_state(1, "live", 15)
        seen = len(relay.status.states(1))

        relay.cameras.stop()  # the camera dies
        relay.status.wait_state(1, "offline", 10, after=seen)
        offline = next(e for e in reversed(relay.status.events) if e.state == "offline")
        assert offline.detail  # says why
        seen = len(relay.status.states(1))

        relay.cameras.start()  # ... and comes back: no operator action
        relay.status.wait_state(1, "live", 20, after=seen)
        # The console's connection survived the outage and gets video again.
        size = len(viewer.data)
        wait_for(lambda: len(viewer.data) > size + 20_000, 10, "video after the camera returned")
        assert not viewer.ended.is_set()
    finally:
        viewer.stop()
    # Debounced: one event per real change, no flapping in between.
    changes = [s for s in relay.status.states(1) if s != "connecting"]
    assert changes == ["live", "offline", "live"]
    assert relay.cameras.plays("cam1") == 2


def test_one_mount_killed_goes_offline_and_revived_goes_live(relay: RelayEnv) -> None:
    assert relay.request("POST", "/hold",
                         {"camera_ids": [2], "alert_id": relay.alert_id})[0] == 200
    relay.status.wait_state(2, "live", 15)
    relay.cameras.command("kill cam2")
    relay.status.wait_state(2, "offline", 10)
    seen = len(relay.status.states(2))
    # Dead for a while: the puller's retries back off to their cap (1 s here,
    # 15 s by default) and it still finds the camera once it returns.
    time.sleep(3 * FAST.pull.backoff_max_s)
    assert relay.status.states(2)[seen:] == []  # no flapping while it is dead
    relay.cameras.command("revive cam2")
    relay.status.wait_state(2, "live", 15, after=seen)
    assert relay.status.states(1) == []  # the other camera was never pulled


def test_sos_clip_keeps_prealarm_seconds(relay: RelayEnv) -> None:
    status, body = relay.request("POST", "/hold",
                                 {"camera_ids": [1], "alert_id": relay.alert_id})
    assert (status, body["held"]) == (200, [1])
    # Fill the pre-alarm ring (N = 3 s) with nobody watching.
    wait_for(lambda: relay.request("GET", "/status")[1]["cameras"][0]["buffer_s"] >= 3.0,
             20, "3 s in the pre-alarm buffer")

    status, clip = relay.request("POST", "/clip", {
        "camera_id": 1, "alert_id": relay.alert_id, "actor": "operator1", "post_s": 2})
    assert status == 202
    assert clip["state"] == "recording"
    assert clip["pre_s"] >= 2.9

    def saved() -> bool:
        info = relay.request("GET", f"/clip/{clip['clip']}")[1]
        assert info["state"] != "failed", info
        return bool(info["state"] == "saved")

    wait_for(saved, 15, "the clip to be saved")
    info = relay.request("GET", f"/clip/{clip['clip']}")[1]
    path = Path(info["path"])
    assert path.is_file() and path.parent.parent == relay.config.data_dir / "evidence"

    engine, sessions = open_store(relay.config.db_url)
    with sessions() as s:
        row = s.scalars(select(Evidence)).one()
    engine.dispose()
    assert (row.id, row.alert_id, row.camera_id, row.kind, row.actor, row.path) == (
        info["evidence_id"], relay.alert_id, 1, "clip", "operator1", str(path))
    assert row.t_end - row.t_start >= 4.5  # >= 3 s before the SOS + ~2 s after

    data = path.read_bytes()
    assert_ts(data)
    frames = decode_frames(data)
    assert frames[0].key_frame
    assert len(frames) >= 45  # 10 fps x >= 4.5 s
    first, last, unit = frames[0].pts, frames[-1].pts, frames[0].time_base
    assert first is not None and last is not None and unit is not None
    span = float((last - first) * unit)
    assert span >= 4.4


def test_supervised_relay_process_serves_and_stops(data_dir: Path,
                                                   rtsp_server: RtspServer) -> None:
    """``python -m console.services.relay`` as the supervisor starts it,
    with its default settings."""
    cfg = make_config(data_dir)
    seed_store(cfg, rtsp_server)
    with Supervisor(cfg, ("bus", "relay")) as sup:
        watch = StatusWatch(cfg)
        watch.start()
        try:
            wait_for(lambda: _answers(cfg), 20, "the relay's HTTP port")
            # The process read the installation's media secret: no token, no video.
            assert request(cfg.relay_port, "GET", "/cam/2.ts")[0] == 401
            viewer = TsClient(cfg.relay_port, 2, relay_token(cfg, "view"))
            viewer.start()
            wait_for(lambda: len(viewer.data) > 20_000, 20, "video from the relay process")
            viewer.stop()
            assert_ts(bytes(viewer.data))
            watch.wait_state(2, "live", 10)
            assert sup.status() == {"bus": "running", "relay": "running"}
        finally:
            watch.stop()
    # SIGTERM from the supervisor ended it cleanly, not by a kill.
    assert "stopped" in (cfg.log_dir / "relay.log").read_text(encoding="utf-8")


def _answers(cfg: Config) -> bool:
    try:
        return request(cfg.relay_port, "GET", "/status", token=relay_token(cfg, "view"))[0] == 200
    except OSError:
        return False
