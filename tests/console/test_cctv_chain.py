"""The CCTV chain end to end, with every part real: GStreamer RTSP cameras,
the media relay, the engine, the store, and the console window playing
through the relay with libvlc under Xvfb.

1. An SOS cuts evidence clips of the nearest cameras, with pre-alarm video
   when the relay was already holding them: for another SOS nearby, or for
   the same child's zone exit just before; the engine holds every open
   alert's cameras again after it (or the relay) restarts.
2. Locating an alert in the console plays its cameras: tiles go live and
   the screen shows moving pictures.
3. A camera that dies is reported offline on the bus and on its tile, and
   comes back live by itself when it is revived.

The GUI runs in a subprocess (``tests/console/cctv_chain_gui.py``) on the
session's Xvfb and reports JSON lines; the tests assert on them.
"""

from __future__ import annotations

import http.client
import json
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest
import zmq
from sqlalchemy import select

from console.bus import Subscriber
from console.config import Config
from console.media.holds import HOLD_RENEW_S
from console.security import Security
from console.services.democams import stream_url
from console.supervisor import BACKEND
from db.seed_cameras import seed_cameras
from db.store import open_store
from db.tables import Evidence
from models.geo import to_map, to_wgs84
from models.messages import (
    AckAlert,
    AlertView,
    CamStatus,
    CommandReply,
    MarkStep,
    ResolveAlert,
    SignedIn,
    SignIn,
    SignOut,
    TakeAlert,
)
from models.procedures import Procedures
from tests.console.conftest import (
    SEOUL_FOREST,
    TEST_PASSWORD,
    Backend,
    make_config,
    port_open,
    wait_for,
)
from tests.console.conftest import running_backend as backend_running
from tests.media.conftest import RtspServer, _check_gstreamer, relay_token, view_answer
from tests.services import free_tcp_port

ROOT = Path(__file__).resolve().parents[2]
PREALARM_S = 3.0  # relay_prealarm_s: seconds kept before, and recorded after, an SOS
FPS = 10  # the RTSP test server's default frame rate
TS_SYNC = 0x47


# --------------------------------------------------------------------------- helpers


@contextmanager
def running_backend(data_dir: Path, rtsp_port: int, services: tuple[str, ...],
                    **settings: object) -> Iterator[Backend]:
    """BACKEND (plus e.g. democams) on a seeded store whose demo cameras
    stream from ``rtsp://127.0.0.1:<rtsp_port>/camN``."""
    cfg = make_config(data_dir, children=30, demo_rtsp_port=rtsp_port, **settings)
    with backend_running(cfg, services,
                         seed=lambda s: seed_cameras(s, lambda i: stream_url(rtsp_port, i)),
                         ports=("osmand_port", "relay_port"), timeout_s=20) as b:
        yield b


def relay_status(cfg: Config) -> dict[int, dict[str, Any]]:
    conn = http.client.HTTPConnection("127.0.0.1", cfg.relay_port, timeout=5)
    try:
        conn.request("GET", "/status",
                     headers={"Authorization": f"Bearer {relay_token(cfg, 'view')}"})
        cams = json.loads(conn.getresponse().read())["cameras"]
        return {c["camera_id"]: c for c in cams}
    finally:
        conn.close()


def relay_post(cfg: Config, path: str, payload: object) -> int:
    """A control request as the engine makes it (with a control token)."""
    conn = http.client.HTTPConnection("127.0.0.1", cfg.relay_port, timeout=5)
    try:
        conn.request("POST", path, json.dumps(payload),
                     {"Content-Type": "application/json",
                      "Authorization": f"Bearer {relay_token(cfg, 'control')}"})
        resp = conn.getresponse()
        resp.read()
        return resp.status
    finally:
        conn.close()


def sos(b: Backend, child: int) -> AlertView:
    """An OsmAnd ``alarm=sos`` from the ``child``-th child's device at Seoul
    Forest (distinct children: the engine keeps one SOS case per child);
    the alert as the engine opened it."""
    children = list(dict.fromkeys(r.child_id for r in b.roster))
    device = next(r.device_id for r in b.roster if r.child_id == children[child])
    status, _ = b.fix(device, *SEOUL_FOREST, alarm="sos")
    assert status == 200
    found: list[AlertView] = []

    def opened() -> bool:
        found[:] = [a for a in b.snapshot().alerts if a.kind == "sos" and a.device_id == device]
        return bool(found)

    wait_for(opened, 10, f"the SOS of {device}")
    return found[0]


def clips_of(cfg: Config, alert_id: int) -> list[Evidence]:
    engine, sessions = open_store(cfg.db_url)
    try:
        with sessions() as s:
            rows = s.scalars(select(Evidence).where(Evidence.alert_id == alert_id,
                                                    Evidence.kind == "clip")).all()
            s.expunge_all()
            return list(rows)
    finally:
        engine.dispose()


def decode_clip(path: Path) -> dict[str, Any]:
    """What PyAV makes of a clip file."""
    data = path.read_bytes()
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        frames = 0
        first_key: bool | None = None
        size = (0, 0)
        for frame in container.decode(stream):
            if first_key is None:
                first_key = bool(frame.key_frame)
                size = (frame.width, frame.height)
            frames += 1
    return {"bytes": len(data), "frames": frames, "first_key": first_key, "size": size,
            "codec": stream.codec_context.name,
            "sync_ok": len(data) >= 188 and all(data[i] == TS_SYNC
                                                for i in range(0, len(data), 188))}


class BusTap:
    """``cam.status`` events from the bus, with the wall time they arrived."""

    def __init__(self, cfg: Config) -> None:
        self.events: list[tuple[float, int, str, str]] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        self._sub = Subscriber(self._ctx, cfg.bus_sub, ("cam.status",),
                               security=Security.console(cfg))
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            got = self._sub.recv(timeout_ms=100)
            if got is None or not isinstance(got[1], CamStatus):
                continue
            msg = got[1]
            with self._cond:
                self.events.append((time.time(), msg.camera_id, msg.state, msg.detail))
                self._cond.notify_all()

    def wait(self, camera_id: int, state: str, since: float, timeout_s: float) -> float:
        """Wall time of the first ``state`` of the camera at or after ``since``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for t, cid, st, _ in self.events:
                    if t >= since and cid == camera_id and st == state:
                        return t
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"no cam.status {state} for camera {camera_id} "
                                         f"within {timeout_s} s; seen {self.events}")
                self._cond.wait(left)

    def close(self) -> None:
        self._stop.set()
        self._thread.join(5)
        self._sub.close()
        self._ctx.term()


class GuiRun:
    """``tests/console/cctv_chain_gui.py`` in a subprocess on the Xvfb display."""

    def __init__(self, cfg: Config, display: str, out: Path, mode: str,
                 timeout_s: float = 60.0) -> None:
        env = {"DISPLAY": display, "QT_QPA_PLATFORM": "xcb", "PATH": "/usr/bin:/bin",
               "HOME": str(out), "PYTHONPATH": str(ROOT)}
        self.events: list[dict[str, Any]] = []
        self.stderr: list[str] = []
        self._cond = threading.Condition()
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "tests.console.cctv_chain_gui", "--mode", mode,
             "--config", str(cfg.run_dir / "config.json"), "--out", str(out),
             "--timeout", str(timeout_s)],
            cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
            stderr=subprocess.PIPE, text=True, bufsize=1)
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith("{"):
                with self._cond:
                    self.events.append(json.loads(line))
                    self._cond.notify_all()
        with self._cond:
            self.events.append({"event": "exit", "t": time.time()})
            self._cond.notify_all()

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line.rstrip())

    def wait(self, pred: Callable[[dict[str, Any]], bool], timeout_s: float, what: str,
             since: float = 0.0) -> dict[str, Any]:
        """The first event at or after ``since`` matching ``pred``."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for ev in self.events:
                    if ev["t"] >= since and pred(ev):
                        return ev
                    if ev["event"] in ("error", "exit"):
                        raise AssertionError(f"GUI ended waiting for {what}: {ev}\n"
                                             + "\n".join(self.stderr[-30:]))
                left = deadline - time.monotonic()
                if left <= 0:
                    raise AssertionError(f"GUI: no {what} within {timeout_s} s; "
                                         f"events {self.events[-10:]}")
                self._cond.wait(left)

    def tile(self, camera_id: int, state: str, since: float, timeout_s: float) -> float:
        ev = self.wait(lambda e: e["event"] == "tile" and e["camera"] == camera_id
                       and e["state"] == state, timeout_s,
                       f"tile of camera {camera_id} {state}", since)
        return float(ev["t"])

    def send(self, command: str) -> None:
        if self.proc.poll() is None and self.proc.stdin is not None:
            with suppress(BrokenPipeError):
                self.proc.stdin.write(command + "\n")
                self.proc.stdin.flush()

    def finish(self, timeout_s: float = 20.0) -> dict[str, Any]:
        """Ask it to quit; its summary."""
        self.send("quit")
        return self.wait(lambda e: e["event"] == "summary", timeout_s, "summary")

    def close(self) -> None:
        if self.proc.poll() is None:
            if self.proc.stdin is not None:
                with suppress(BrokenPipeError):
                    self.proc.stdin.close()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


# --------------------------------------------------------------------------- 1. clips


@pytest.mark.slow
def test_sos_saves_clips_with_the_prealarm_seconds_the_relay_held(data_dir: Path) -> None:
    """The relay buffers only cameras it holds, and the engine holds them
    when an alert opens, immediately followed by the clip request of an SOS.
    So the first SOS at a place gets clips from the moment the cameras
    connect (no pre-alarm: nothing was held), while a second SOS nearby,
    with the cameras already held by the first alert, gets the N seconds
    before it too."""
    _check_gstreamer()
    rtsp_port = free_tcp_port()
    with running_backend(data_dir, rtsp_port, ("democams", *BACKEND),
                         relay_prealarm_s=PREALARM_S) as b:
        wait_for(lambda: port_open(rtsp_port), 15, "the demo cameras")
        cfg = b.config
        first = sos(b, 3)
        wait_for(lambda: len(clips_of(cfg, first.id)) == 4, PREALARM_S + 15,
                 "the first SOS's 4 clips")
        held = relay_status(cfg)
        held_ids = sorted(cid for cid, c in held.items() if first.id in c["held_for"])
        assert len(held_ids) == 4, held
        # The ring fills while the first alert holds the cameras.
        wait_for(lambda: all(relay_status(cfg)[c]["buffer_s"] >= PREALARM_S
                             for c in held_ids), 10, "N seconds in every held ring")

        second = sos(b, 4)
        wait_for(lambda: len(clips_of(cfg, second.id)) == 4, PREALARM_S + 15,
                 "the second SOS's 4 clips")

        facts: dict[str, list[dict[str, Any]]] = {}
        for alert in (first, second):
            rows = clips_of(cfg, alert.id)
            assert sorted(r.camera_id for r in rows) == held_ids
            facts[str(alert.id)] = []
            for row in rows:
                path = Path(row.path)
                assert path.is_file() and path.parent == cfg.data_dir / "evidence" / (
                    f"alert-{alert.id}")
                info = decode_clip(path)
                assert info["sync_ok"], f"{path} is not MPEG-TS"
                assert info["codec"] == "h264" and info["first_key"], info
                assert info["size"] == (320, 240), info
                assert row.actor == "engine"
                facts[str(alert.id)].append({
                    "camera": row.camera_id, "pre_s": round(alert.opened_at - row.t_start, 2),
                    "span_s": round(row.t_end - row.t_start, 2),
                    "end_s": round(row.t_end - alert.opened_at, 2), **info})
        print(json.dumps(facts))

        for clip in facts[str(first.id)]:
            # Nothing held before: the clip starts when the camera's first
            # keyframe arrives after the alert, and ends N seconds after it.
            assert clip["pre_s"] <= 0, clip
            assert clip["end_s"] >= PREALARM_S - 0.5, clip
            assert clip["frames"] >= FPS, clip
        for clip in facts[str(second.id)]:
            # Held for N seconds: the clip starts at the GOP at or before
            # "clip requested - N" (requested within a second of the alert)
            # and runs N seconds after the request.
            assert clip["pre_s"] >= PREALARM_S - 1.0, clip
            assert clip["end_s"] >= PREALARM_S - 0.5, clip
            assert clip["span_s"] >= 2 * PREALARM_S - 0.5, clip
            assert clip["frames"] >= (2 * PREALARM_S - 0.5) * FPS, clip


def alert_of(b: Backend, device: str, kind: str) -> AlertView:
    """The device's alert of that kind, once the engine has opened it."""
    found: list[AlertView] = []

    def opened() -> bool:
        found[:] = [a for a in b.snapshot().alerts if a.kind == kind and a.device_id == device]
        return bool(found)

    wait_for(opened, 10, f"the {kind} of {device}")
    return found[0]


def ack(b: Backend, alert_id: int) -> None:
    """Acknowledge as an operator would (the alert stays unresolved)."""
    alert = next(a for a in b.snapshot().alerts if a.id == alert_id)
    reply = b.command(AckAlert(token=b.sign_in("operator1"), alert_id=alert_id,
                               alert_version=alert.version))
    assert isinstance(reply, CommandReply) and reply.ok, reply


def north_of_forest(metres: float) -> tuple[float, float]:
    x, y = to_map(*SEOUL_FOREST)
    lat, lon = to_wgs84(np.array([x]), np.array([y + metres]))
    return float(lat[0]), float(lon[0])


def resolve(b: Backend, alert_id: int) -> None:
    """Take the alert, tick its mandatory steps and resolve it, as an operator."""
    token = b.sign_in("operator1")
    alert = next(a for a in b.snapshot().alerts if a.id == alert_id)
    commands = [lambda v: TakeAlert(token=token, alert_id=alert_id, alert_version=v)]
    commands += [lambda v, step=step.id: MarkStep(token=token, alert_id=alert_id,
                                                  alert_version=v, step=step)
                 for step in Procedures.load().steps(alert.kind) if step.mandatory]
    commands.append(lambda v: ResolveAlert(token=token, alert_id=alert_id, alert_version=v,
                                           outcome="child_safe", note="back home"))
    version = alert.version
    for make in commands:
        reply = b.command(make(version))
        assert isinstance(reply, CommandReply) and reply.ok and reply.alert, reply
        version = reply.alert.version


def held_for(cfg: Config, alert_id: int) -> list[int]:
    return sorted(c for c, st in relay_status(cfg).items() if alert_id in st["held_for"])


@pytest.mark.slow
def test_an_sos_after_a_zone_exit_has_prealarm_video_and_holds_survive_restarts(
        data_dir: Path) -> None:
    """A child leaves Seoul Forest (zone exit: its cameras are held from
    then on), then presses SOS where it stands: the SOS's clips start
    before the SOS.  The holds are leases the engine keeps: killed, it
    asserts them again when it restarts (for the open SOS and for the
    acknowledged exit alike), and a restarted relay gets them back too."""
    _check_gstreamer()
    rtsp_port = free_tcp_port()
    with running_backend(data_dir, rtsp_port, ("democams", *BACKEND),
                         relay_prealarm_s=PREALARM_S) as b:
        wait_for(lambda: port_open(rtsp_port), 15, "the demo cameras")
        cfg = b.config
        forest = next(z.id for z in b.snapshot().zones if z.name == "Seoul Forest Park")
        device = next(r.device_id for r in b.roster if r.zone_id == forest)
        t0 = time.time()
        assert b.fix(device, *SEOUL_FOREST, t=t0)[0] == 200
        time.sleep(0.3)  # its own gateway batch: the engine keeps a device's latest fix
        outside = north_of_forest(580)
        assert b.fix(device, *outside, t=t0 + 1)[0] == 200
        exit_alert = alert_of(b, device, "zone_exit")
        wait_for(lambda: len(held_for(cfg, exit_alert.id)) == 4, 10, "the exit's 4 holds")
        held = held_for(cfg, exit_alert.id)
        wait_for(lambda: all(relay_status(cfg)[c]["buffer_s"] >= PREALARM_S for c in held), 15,
                 "N seconds buffered for the zone exit")

        assert b.fix(device, *outside, t=time.time(), alarm="sos")[0] == 200
        sos_alert = alert_of(b, device, "sos")
        wait_for(lambda: len(clips_of(cfg, sos_alert.id)) == 4, PREALARM_S + 15,
                 "the SOS's 4 clips")
        clips = {r.camera_id: r for r in clips_of(cfg, sos_alert.id)}
        pre = {cid: round(sos_alert.opened_at - r.t_start, 2) for cid, r in clips.items()}
        print(json.dumps({"held": held, "pre_s": pre}))
        assert sorted(clips) == held  # the cameras the exit alert had been holding
        for cid, row in clips.items():
            assert pre[cid] > 0, pre  # video from before the SOS
            assert pre[cid] >= PREALARM_S - 1.0, pre
            assert decode_clip(Path(row.path))["frames"] >= (2 * PREALARM_S - 0.5) * FPS

        # The operator acknowledges the exit: still unresolved, still held.
        ack(b, exit_alert.id)
        wanted = {exit_alert.id: held, sos_alert.id: held_for(cfg, sos_alert.id)}
        assert wanted[sos_alert.id] == held

        # Engine restart: its holds are gone at the relay (lapsed, say); the
        # new engine asserts them again from the store's unresolved alerts.
        old_engine = b.supervisor.pid("engine")
        os.kill(old_engine, signal.SIGKILL)
        for alert_id in wanted:
            assert relay_post(cfg, "/release", {"alert_id": alert_id}) == 200
        assert all(held_for(cfg, a) == [] for a in wanted)
        wait_for(lambda: b.supervisor.pid("engine") != old_engine, 15, "the engine's restart")
        wait_for(lambda: all(held_for(cfg, a) == cams for a, cams in wanted.items()), 20,
                 "the holds asserted by the restarted engine")

        # A session that ended before the relay restarts: its view token is refused.
        signed = b.request(SignIn(user="operator1", password=TEST_PASSWORD, console="x"))
        assert isinstance(signed, SignedIn) and signed.media_token
        assert view_answer(cfg.relay_port, signed.media_token) == (200, "")
        out = b.request(SignOut(token=signed.token))
        assert isinstance(out, CommandReply) and out.ok
        wait_for(lambda: view_answer(cfg.relay_port, signed.media_token)
                 == (401, "token_revoked"), 5, "the signed-out token refused")

        # Relay restart: it comes back with nothing held and no list of ended
        # sessions; the engine's next renewal (every HOLD_RENEW_S) or retry
        # holds everything again, and its next re-read of the sessions
        # (every few seconds) posts the list again.
        old_relay = b.supervisor.pid("relay")
        os.kill(old_relay, signal.SIGKILL)
        wait_for(lambda: b.supervisor.pid("relay") != old_relay and port_open(cfg.relay_port),
                 20, "the relay's restart")
        wait_for(lambda: view_answer(cfg.relay_port, signed.media_token)
                 == (401, "token_revoked"), 10, "the ended session refused again")
        wait_for(lambda: all(held_for(cfg, a) == cams for a, cams in wanted.items()),
                 HOLD_RENEW_S + 15, "the holds renewed at the restarted relay")

        # Resolving the exit releases its holds at once; the SOS keeps its own,
        # and a restarted engine does not hold the resolved alert's again.
        resolve(b, exit_alert.id)
        wait_for(lambda: held_for(cfg, exit_alert.id) == [], 10, "the exit's holds released")
        assert held_for(cfg, sos_alert.id) == wanted[sos_alert.id]
        old_engine = b.supervisor.pid("engine")
        os.kill(old_engine, signal.SIGKILL)
        wait_for(lambda: b.supervisor.pid("engine") != old_engine, 15, "the engine's restart")
        wait_for(lambda: b.snapshot().alerts != [], 15, "the restarted engine")
        time.sleep(2.0)
        assert held_for(cfg, exit_alert.id) == []
        assert held_for(cfg, sos_alert.id) == wanted[sos_alert.id]


# --------------------------------------------------------------------------- 2. playing


@pytest.mark.xvfb
@pytest.mark.slow
def test_console_plays_the_alerts_cameras_through_the_relay(
        xvfb_display: str, data_dir: Path, tmp_path: Path) -> None:
    _check_gstreamer()
    rtsp_port = free_tcp_port()
    with running_backend(data_dir, rtsp_port, ("democams", *BACKEND)) as b:
        wait_for(lambda: port_open(rtsp_port), 15, "the demo cameras")
        alert = sos(b, 3)
        gui = GuiRun(b.config, xvfb_display, tmp_path, "play")
        try:
            summary = gui.wait(lambda e: e["event"] == "summary", 60, "summary")
            located = gui.wait(lambda e: e["event"] == "located", 1, "located")
        finally:
            gui.close()
        status = relay_status(b.config)
    print(json.dumps(summary))
    assert gui.proc.returncode == 0
    assert located["cameras"] and None not in located["cameras"]
    tiles = summary["tiles"]
    live = [t for t in tiles if t["state"] == "live"]
    assert len(live) >= 2, tiles
    for t in live:
        what = f"tile {t['index']} (camera {t['camera']})"
        assert t["badge"] == "LIVE"
        assert t["bright_px"] > 200, f"{what} is black: {t}"
        assert t["changed_px"] > 50, f"{what} is frozen: {t}"
        # The relay pulled the camera for this console (a viewer) and the alert.
        assert status[t["camera"]]["state"] == "live"
        assert alert.id in status[t["camera"]]["held_for"]
    assert summary["first_live_s"] < 15


# --------------------------------------------------------------------------- 3. death


@pytest.mark.xvfb
@pytest.mark.slow
def test_a_dead_camera_goes_offline_and_comes_back_by_itself(
        xvfb_display: str, data_dir: Path, tmp_path: Path) -> None:
    # A long outage, with the puller's retries at their back-off cap, is
    # tested at the relay (tests/media/test_relay.py); here the whole chain.
    _check_gstreamer()
    cams = RtspServer(mounts=4)
    cams.start()
    tap: BusTap | None = None
    gui: GuiRun | None = None
    try:
        with running_backend(data_dir, cams.port, BACKEND) as b:
            tap = BusTap(b.config)
            sos(b, 3)
            gui = GuiRun(b.config, xvfb_display, tmp_path, "watch")
            located = gui.wait(lambda e: e["event"] == "located", 30, "located")
            first_live = gui.wait(lambda e: e["event"] == "tile" and e["state"] == "live",
                                  30, "a live tile")
            victim = int(first_live["camera"])
            mount = (victim - 1) % 4 + 1
            tap.wait(victim, "live", 0, 10)

            killed = time.time()
            cams.command(f"kill cam{mount}")
            bus_offline = tap.wait(victim, "offline", killed, 20)
            tile_offline = gui.tile(victim, "offline", killed, 20)
            revived = time.time()
            cams.command(f"revive cam{mount}")
            bus_live = tap.wait(victim, "live", revived, 30)
            tile_live = gui.tile(victim, "live", revived, 30)
            # The picture moving again may take a few frames after "live"
            # (the first keyframe shows, then the decoder catches up): grab
            # until it moves, a few seconds at most.
            for _ in range(5):
                asked = time.time()
                gui.send("grab")
                grabbed = gui.wait(lambda e: e["event"] == "grabbed", 15, "grabbed", asked)
                seen = next(t for t in grabbed["tiles"] if t["camera"] == victim)
                if seen["bright_px"] > 200 and seen["changed_px"] > 50:
                    break
                time.sleep(1.0)
            summary = gui.finish()
    finally:
        if gui is not None:
            gui.close()
        if tap is not None:
            tap.close()
        cams.stop()
    measured = {
        "camera": victim, "mount": mount, "cameras": located["cameras"],
        "first_live_s": round(first_live["t"] - located["t"], 2),
        "kill_to_bus_offline_s": round(bus_offline - killed, 2),
        "kill_to_tile_offline_s": round(tile_offline - killed, 2),
        "revive_to_bus_live_s": round(bus_live - revived, 2),
        "revive_to_tile_live_s": round(tile_live - revived, 2),
        "victim_states": [(e["state"], round(e["t"] - killed, 2)) for e in gui.events
                          if e["event"] == "tile" and e["camera"] == victim and e["t"] >= killed],
        "bus": [(round(t - killed, 2), cid, st, detail) for t, cid, st, detail in tap.events
                if t >= killed],
        "tiles": summary["tiles"],
    }
    print(json.dumps(measured))
    assert gui.proc.returncode == 0
    # Offline: the puller sees the stream end at once, then relay_debounce_s.
    debounce = b.config.relay_debounce_s
    assert measured["kill_to_bus_offline_s"] < debounce + 3
    assert measured["kill_to_tile_offline_s"] < debounce + 4
    # Live again: the puller's next retry (its back-off still short), a
    # keyframe, then the debounce.
    assert measured["revive_to_bus_live_s"] < 8.0 + debounce + 4
    assert measured["revive_to_tile_live_s"] < 8.0 + debounce + 6
    # Cameras on other mounts never went down.
    others = {c for c in located["cameras"] if (c - 1) % 4 + 1 != mount}
    assert others and not [e for e in tap.events if e[1] in others and e[2] != "live"]
    assert all(t["state"] == "live" for t in summary["tiles"] if t["camera"] in others)
    final = next(t for t in summary["tiles"] if t["camera"] == victim)
    assert final["state"] == "live" and final["starts"] == 1  # nobody re-opened it
    # The picture is back and moving, not a frozen last frame.
    assert seen["bright_px"] > 200 and seen["changed_px"] > 50, json.dumps(grabbed)
