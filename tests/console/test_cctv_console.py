"""The console window's CCTV behaviour against a real backend (bus, engine,
recorder, gateway, media relay as processes) whose demo cameras stream
from a real GStreamer RTSP server, with the real window under qtbot
(offscreen: libvlc decodes and snapshots without drawing).

- a new alert fills the grid by itself (P1 first), the map stays put, and
  an alert the operator located is not taken away from them;
- Ctrl+click and "Cameras here" rank the cameras around any point;
- follow mode re-ranks from the heading of the child's successive fixes;
- cameras that cannot play never take a tile but stay on the map;
- a camera that dies is drawn offline on the map, and live again after;
- the snapshot button files an Evidence row linked to the alert;
- video plays with the session's relay token only: signed out, no tile
  plays and the grid says to sign in.

One backend serves the whole module (starting one costs seconds of both
cores); each test opens its own window and uses its own children.  The
tests run in file order: the first needs a store without open alerts.
"""

from __future__ import annotations

import http.client
import math
import shutil
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import urlsplit

import numpy as np
import pytest
from PySide6.QtCore import Qt
from pytestqt.qtbot import QtBot
from sqlalchemy import select, update
from sqlalchemy.orm import Session

from console import keys
from console.app import ConsoleWindow
from console.cctv_focus import GridFocus, alert_label, has_position, pick_alert
from console.media import tokens
from console.services.democams import stream_url
from console.supervisor import BACKEND
from db import accounts
from db.seed_cameras import seed_cameras
from db.store import open_store
from db.tables import Camera, Evidence, Zone
from models.cameras import CameraIndex
from models.geo import to_map, to_wgs84
from models.messages import (
    AlertKind,
    AlertState,
    AlertView,
    CommandReply,
    SignedIn,
    SignIn,
    SignOut,
)
from tests.console.conftest import (
    SEOUL_FOREST,
    TEST_PASSWORD,
    Backend,
    make_config,
    running_backend,
    wait_for,
)
from tests.media.conftest import RtspServer, _check_gstreamer, view_answer
from tests.media.test_relay import TsClient

FX, FY = to_map(*SEOUL_FOREST)
TILES = 4


# --------------------------------------------------------------------------- backend


@pytest.fixture(scope="module")
def cams() -> Iterator[RtspServer]:
    """One RTSP mount per demo camera (a mount encodes only while pulled)."""
    _check_gstreamer()
    server = RtspServer(mounts=24)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def cctv(cams: RtspServer) -> Iterator[Backend]:
    """The backend on a demo store whose Seoul Forest centre camera has no
    stream URL (as if just imported) and whose second camera is retired."""
    data_dir = Path(tempfile.mkdtemp(prefix="cs-", dir="/tmp"))
    cfg = make_config(data_dir, children=40, demo_rtsp_port=cams.port)

    def seed(s: Session) -> None:
        seed_cameras(s, lambda i: stream_url(cams.port, i))
        first, second = s.scalars(select(Camera.id).order_by(Camera.id).limit(2)).all()
        s.execute(update(Camera).where(Camera.id == first).values(stream_url=""))
        s.execute(update(Camera).where(Camera.id == second).values(status="retired"))

    try:
        with running_backend(cfg, BACKEND, seed=seed, ports=("osmand_port", "relay_port"),
                             timeout_s=20) as b:
            yield b
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)


def store_index(b: Backend) -> tuple[CameraIndex, set[int]]:
    """The ranking the console should reach, from the store's own rows, and
    the ids that cannot play."""
    engine, sessions = open_store(b.config.db_url)
    try:
        with sessions() as s:
            rows = list(s.scalars(select(Camera).order_by(Camera.id)))
            index = CameraIndex.from_cameras(rows)
            dead = {c.id for c in rows if not c.stream_url or c.status == "retired"}
    finally:
        engine.dispose()
    return index, dead


class Children:
    """Children homed at Seoul Forest, handed out one per use, with a clock
    for their fixes (the engine drops fixes older than the last one)."""

    def __init__(self, b: Backend) -> None:
        engine, sessions = open_store(b.config.db_url)
        try:
            with sessions() as s:
                forest = s.scalars(select(Zone.id).where(Zone.name == "Seoul Forest Park")).one()
        finally:
            engine.dispose()
        seen: dict[int, str] = {}
        for r in b.roster:
            if r.zone_id == forest:
                seen.setdefault(r.child_id, r.device_id)
        self.devices = list(seen.values())
        self.b = b

    def take(self) -> str:
        return self.devices.pop()


_clock = [0.0]


def fix(b: Backend, device: str, east: float, north: float, **extra: object) -> None:
    """One OsmAnd fix ``east``/``north`` metres from Seoul Forest's centre,
    later than every fix before it."""
    _clock[0] = max(_clock[0] + 0.01, time.time())
    lat, lon = to_wgs84(np.array([FX + east]), np.array([FY + north]))
    status, body = b.fix(device, float(lat[0]), float(lon[0]), t=_clock[0], **extra)
    assert status == 200, body
    # The gateway batches fixes every 50 ms and the engine keeps a device's
    # latest fix of a batch: let each fix be a step of the walk of its own.
    time.sleep(0.25)


def alert_of(b: Backend, device: str, kind: str) -> AlertView:
    found: list[AlertView] = []

    def opened() -> bool:
        found[:] = [a for a in b.snapshot().alerts if a.kind == kind and a.device_id == device]
        return bool(found)

    wait_for(opened, 15, f"the {kind} of {device}")
    return found[0]


@pytest.fixture(scope="module")
def children(cctv: Backend) -> Children:
    return Children(cctv)


def open_window(qtbot: QtBot, b: Backend, user: str = "operator1") -> ConsoleWindow:
    window = ConsoleWindow(b.config)
    qtbot.addWidget(window)
    window.resize(1600, 960)  # as run_console opens it
    window.show()
    window.start((user, TEST_PASSWORD))
    qtbot.waitUntil(lambda: window.status.bus.text() == "LIVE", timeout=15_000)
    qtbot.waitUntil(lambda: window.session.user == user, timeout=10_000)
    qtbot.waitUntil(lambda: len(window.cameras) > 0, timeout=5000)
    return window


def close(window: ConsoleWindow) -> None:
    window.cctv.release()
    window.close()


def top(index: CameraIndex, east: float, north: float, heading: float | None = None,
        offline: set[int] | None = None) -> list[int]:
    return [r.camera_id for r in index.rank_xy(FX + east, FY + north, heading, TILES,
                                               offline or set())]


# --------------------------------------------------------------------------- the rule


def view(alert_id: int, kind: AlertKind = "sos", state: AlertState = "new",
         opened_at: float = 0.0, lat: float = SEOUL_FOREST[0]) -> AlertView:
    return AlertView(id=alert_id, kind=kind, priority=1 if kind == "sos" else 2, state=state,
                     child_token=f"C-{alert_id}", child_slot=alert_id, device_id=str(alert_id),
                     lat=lat, lon=SEOUL_FOREST[1], place="성동구 성수동1가", opened_at=opened_at)


def test_which_new_alert_takes_the_grid() -> None:
    exit1, exit2 = view(1, "zone_exit", opened_at=1.0), view(2, "zone_exit", opened_at=2.0)
    sos3, sos4 = view(3, opened_at=3.0), view(4, opened_at=1.5)
    known = {a.id: a for a in (exit1, exit2, sos3, sos4)}
    assert pick_alert([], None, known) is None
    assert pick_alert([exit1, exit2], None, known) is exit2  # the newest of the same priority
    assert pick_alert([exit2, sos4, sos3], None, known) is sos3  # P1 first, then the newest
    auto_exit = GridFocus("alert", 1, 2, located=False)
    auto_sos = GridFocus("alert", 3, 1, located=False)
    assert pick_alert([sos4], auto_exit, known) is sos4  # more urgent than what it shows
    assert pick_alert([exit2], auto_exit, known) is None  # as urgent: no thrashing
    assert pick_alert([sos4], auto_sos, known) is None
    working = GridFocus("alert", 1, 2, located=True)
    assert pick_alert([sos4], working, known) is None  # the operator's alert stays
    resolved = {**known, 1: view(1, "zone_exit", state="resolved")}
    assert pick_alert([sos4], working, resolved) is sos4  # ...until it is resolved
    acked = {**known, 3: view(3, state="acknowledged")}
    assert pick_alert([exit2], auto_sos, acked) is exit2  # someone took the SOS shown
    assert pick_alert([exit2], GridFocus("point"), known) is exit2  # a look around gives way
    near_working = GridFocus("point", 1, located=True)
    assert pick_alert([sos4], near_working, known) is None  # a look around the worked alert
    assert pick_alert([sos4], GridFocus("alert", 99, 1), known) is sos4  # shown alert gone


def test_an_alert_needs_a_position_to_rank_cameras() -> None:
    nowhere = view(5, lat=math.nan)
    assert not has_position(nowhere, (math.nan, math.nan))
    assert has_position(nowhere, (FX, FY))  # its child is on the map
    assert has_position(view(6), (math.nan, math.nan))
    assert alert_label(view(7)) == "alert 7 · P1 SOS · C-7 · 성동구 성수동1가"


# --------------------------------------------------------------------------- tests


@pytest.mark.slow
def test_a_new_alert_fills_the_grid_without_a_click(cctv: Backend, children: Children,
                                                    qtbot: QtBot) -> None:
    index, dead = store_index(cctv)
    window = open_window(qtbot, cctv)
    try:
        assert window.cctv.cameras_shown() == [None] * TILES
        assert "Ctrl+click" in window.cctv.source()  # the gesture, said where the video is
        window.map.fit_seoul()
        view = window.map.view_range()

        # A zone exit (P2): its child leaves Seoul Forest to the north.
        walker = children.take()
        fix(cctv, walker, 0, 0)
        fix(cctv, walker, 0, 580)
        exit_alert = alert_of(cctv, walker, "zone_exit")
        qtbot.waitUntil(lambda: window.cctv.alert_id == exit_alert.id, timeout=10_000)
        assert set(window.cctv.cameras_shown()) == set(top(index, 0, 580))
        assert window.map.view_range() == view  # the map did not jump

        # An SOS (P1) elsewhere takes the grid from an alert nobody located.
        child = children.take()
        fix(cctv, child, 0, 0)
        fix(cctv, child, 0, 0, alarm="sos")
        sos = alert_of(cctv, child, "sos")
        qtbot.waitUntil(lambda: window.cctv.alert_id == sos.id, timeout=10_000)
        shown = window.cctv.cameras_shown()
        # Cameras wanted again keep their tile (no restart): compare as sets.
        assert set(shown) == set(top(index, 0, 0))
        assert not dead & set(shown)  # the stream-less and the retired cameras never play
        assert window.map.view_range() == view
        assert f"alert {sos.id} · P1 SOS" in window.cctv.source()
        assert window.cctv_source.text().startswith(f"CCTV: alert {sos.id} · P1 SOS")
        assert f"alert {sos.id}" in window.status.message.text()
        # ...but they stay on the map, drawn as unplayable.
        assert dead <= set(window.map.camera_ids("unplayable"))
        assert not dead & set(window.map.camera_ids("live"))

        # A later zone exit (P2) does not take the grid from an SOS.
        third = children.take()
        fix(cctv, third, 0, 0)
        fix(cctv, third, 0, -580)
        alert_of(cctv, third, "zone_exit")
        qtbot.wait(1500)
        assert window.cctv.alert_id == sos.id

        # The operator works the first zone exit: no new SOS takes it away.
        window.locate(exit_alert)
        assert window.cctv.alert_id == exit_alert.id
        assert set(window.cctv.cameras_shown()) == set(top(index, 0, 580))
        fourth = children.take()
        fix(cctv, fourth, 300, 0)
        fix(cctv, fourth, 300, 0, alarm="sos")
        alert_of(cctv, fourth, "sos")
        qtbot.wait(1500)
        assert window.cctv.alert_id == exit_alert.id
        assert window.cctv_source.text().startswith(f"CCTV: alert {exit_alert.id}")
    finally:
        close(window)


@pytest.mark.slow
def test_ctrl_click_and_cameras_here_rank_around_any_point(cctv: Backend,
                                                           qtbot: QtBot) -> None:
    index, _ = store_index(cctv)
    window = open_window(qtbot, cctv)
    try:
        window.map.center_on(FX, FY, span_m=1200)
        qtbot.wait(100)
        # Ctrl+click 120 m east, 100 m south of the centre.
        at = window.map.to_widget(FX + 120, FY - 100)
        viewport = window.map._gv.viewport()
        local = viewport.mapFrom(window.map, at.toPoint())
        qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton,
                         Qt.KeyboardModifier.ControlModifier, local)
        qtbot.waitUntil(lambda: window.grid_focus is not None
                        and window.grid_focus.kind == "point", timeout=5000)
        x, y = window.map.highlighted() or (math.nan, math.nan)
        assert abs(x - (FX + 120)) < 15 and abs(y - (FY - 100)) < 15  # the ring marks it
        assert set(window.cctv.cameras_shown()) == {
            r.camera_id for r in index.rank_xy(x, y, None, TILES, window._offline)}
        assert window.cctv.alert_id is None
        assert window.cctv.source().startswith("cameras around 성동구")
        assert window.cctv_source.text().startswith("CCTV: cameras around 성동구")

        # A plain click does not change the grid; a right-click offers "Cameras here".
        before = window.cctv.cameras_shown()
        far = viewport.mapFrom(window.map, window.map.to_widget(FX - 400, FY + 300).toPoint())
        qtbot.mouseClick(viewport, Qt.MouseButton.LeftButton, pos=far)
        qtbot.wait(100)
        assert window.cctv.cameras_shown() == before
        qtbot.mouseClick(viewport, Qt.MouseButton.RightButton, pos=far)
        menu = window.map.context_menu
        assert menu is not None
        action = next(a for a in menu.actions() if a.objectName() == "camerasHere")
        assert action.text().startswith("Cameras here") and "Ctrl+click" in action.text()
        menu.close()
        action.trigger()
        qtbot.waitUntil(lambda: window.cctv.cameras_shown() != before, timeout=5000)
        x, y = window.map.highlighted() or (math.nan, math.nan)
        assert abs(x - (FX - 400)) < 15 and abs(y - (FY + 300)) < 15
        assert set(window.cctv.cameras_shown()) == {
            r.camera_id for r in index.rank_xy(x, y, None, TILES, window._offline)}
    finally:
        close(window)


@pytest.mark.slow
def test_follow_mode_reranks_by_the_heading_of_successive_fixes(
        cctv: Backend, children: Children, qtbot: QtBot) -> None:
    index, _ = store_index(cctv)
    # Walking south through the centre sees other cameras than standing there.
    standing, walking = top(index, 0, 40), top(index, 0, 0, heading=180.0)
    assert set(standing) != set(walking)
    window = open_window(qtbot, cctv)
    try:
        child = children.take()
        fix(cctv, child, 0, 40)
        fix(cctv, child, 0, 40, alarm="sos")
        alert = alert_of(cctv, child, "sos")
        qtbot.waitUntil(lambda: window.alerts.model.rowCount() > 0
                        and any(a.id == alert.id for a in window._alerts_by_id.values()),
                        timeout=5000)
        window.locate(alert)
        assert set(window.cctv.cameras_shown()) == set(standing)
        assert window.cctv.follow

        fix(cctv, child, 0, 20)
        fix(cctv, child, 0, 0)
        # The grid hands over (at most every 2 s) to the cameras ahead of the child.
        qtbot.waitUntil(lambda: set(window.cctv.cameras_shown()) == set(walking),
                        timeout=10_000)
        ring = window.map.highlighted()
        assert ring is not None and abs(ring[0] - FX) < 2 and abs(ring[1] - FY) < 2
        assert any(t.in_handover for t in window.cctv.visible_tiles())
    finally:
        close(window)


@pytest.mark.slow
def test_snapshot_button_files_evidence_for_the_alert(cctv: Backend, children: Children,
                                                     qtbot: QtBot) -> None:
    window = open_window(qtbot, cctv)
    try:
        child = children.take()
        fix(cctv, child, -200, 100)
        fix(cctv, child, -200, 100, alarm="sos")
        alert = alert_of(cctv, child, "sos")
        qtbot.waitUntil(lambda: alert.id in window._alerts_by_id, timeout=5000)
        window.locate(alert)
        qtbot.waitUntil(lambda: any(t.state == "live" for t in window.cctv.visible_tiles()),
                        timeout=30_000)
        tile = next(t for t in window.cctv.visible_tiles() if t.state == "live")
        assert tile.snap.isEnabled()
        with qtbot.waitSignal(window.cctv.snapshot_taken, timeout=5000) as taken:
            qtbot.mouseClick(tile.snap, Qt.MouseButton.LeftButton)
        camera_id, path = taken.args
        assert camera_id == tile.camera_id and Path(path).is_file()
        qtbot.waitUntil(lambda: "saved as evidence" in window.status.message.text(),
                        timeout=2000)

        rows: list[Evidence] = []

        def filed() -> bool:
            engine, sessions = open_store(cctv.config.db_url)
            try:
                with sessions() as s:
                    rows[:] = s.scalars(select(Evidence).where(
                        Evidence.alert_id == alert.id, Evidence.kind == "snapshot")).all()
                    s.expunge_all()
            finally:
                engine.dispose()
            return bool(rows)

        wait_for(filed, 10, "the snapshot's Evidence row")
        (row,) = rows
        assert (row.camera_id, row.path, row.actor) == (camera_id, path,
                                                        "operator1")
    finally:
        close(window)


@pytest.mark.slow
def test_a_dead_camera_is_drawn_offline_on_the_map(cctv: Backend, cams: RtspServer,
                                                   children: Children, qtbot: QtBot) -> None:
    window = open_window(qtbot, cctv)
    try:
        child = children.take()
        fix(cctv, child, 150, 150)
        fix(cctv, child, 150, 150, alarm="sos")
        alert = alert_of(cctv, child, "sos")
        qtbot.waitUntil(lambda: alert.id in window._alerts_by_id, timeout=5000)
        window.locate(alert)
        qtbot.waitUntil(lambda: any(t.state == "live" for t in window.cctv.visible_tiles()),
                        timeout=30_000)
        victim = next(t.camera_id for t in window.cctv.visible_tiles() if t.state == "live")
        assert victim is not None
        assert victim in window.map.camera_ids("live")
        mount = f"cam{(victim - 1) % 32 + 1}"
        cams.command(f"kill {mount}")
        try:
            qtbot.waitUntil(lambda: victim in window.map.camera_ids("offline"), timeout=20_000)
            assert victim not in window.map.camera_ids("live")
            others = [c for c in window.cctv.cameras_shown() if c is not None and c != victim]
            assert others and not set(others) & set(window.map.camera_ids("offline"))
        finally:
            cams.command(f"revive {mount}")
        qtbot.waitUntil(lambda: victim in window.map.camera_ids("live"), timeout=40_000)
        assert victim not in window.map.camera_ids("offline")
    finally:
        close(window)


def test_video_plays_with_the_sessions_token_only(cctv: Backend, qtbot: QtBot) -> None:
    """The engine hands the console a view token at sign-in that ends with
    the session; tiles play with it, the relay refuses the bare URL, and a
    signed-out console plays nothing until someone signs in again."""
    # Everyone who works or runs the system gets one; an auditor reads logs.
    for user, gets in (("auditor1", False), ("admin1", True), ("supervisor1", True)):
        reply = cctv.request(SignIn(user=user, password=TEST_PASSWORD, console="test"))
        assert isinstance(reply, SignedIn) and bool(reply.media_token) is gets, user
    window = open_window(qtbot, cctv)
    try:
        signed = window.session.current
        assert signed is not None and signed.media_token == window.media_token()
        grant = tokens.grant(keys.media_secret(cctv.config.data_dir), signed.media_token,
                             "view")
        assert grant.subject == "operator1"
        assert grant.expires_at == float(int(signed.expires_at))  # ends with the session

        window.cameras_here(FX + 120, FY - 100)
        qtbot.waitUntil(lambda: any(t.state == "live" for t in window.cctv.visible_tiles()),
                        timeout=30_000)
        feeds = [t.feed for t in window.cctv.visible_tiles() if t.feed is not None]
        assert feeds and all(f.url.endswith(f".ts?t={signed.media_token}") for f in feeds)
        assert all(signed.media_token not in t.name.toolTip()  # not for the screen
                   for t in window.cctv.visible_tiles())
        conn = http.client.HTTPConnection("127.0.0.1", cctv.config.relay_port, timeout=5)
        try:
            conn.request("GET", urlsplit(feeds[0].url).path)  # the URL without its token
            assert conn.getresponse().status == 401
        finally:
            conn.close()

        # Signed out: every tile stops, the grid says why, a new point plays nothing.
        window.session.sign_out()
        assert window.media_token() == "" and not window.may_view_video()
        assert window.cctv.cameras_shown() == [None] * TILES
        assert window.cctv.source() == "Sign in to view cameras"
        window.cameras_here(FX - 150, FY + 100)
        assert window.cctv.cameras_shown() == [None] * TILES
        assert window.cctv.source() == "Sign in to view cameras"

        # Signed in again: the grid's point plays, with the new session's token.
        window.session.sign_in("operator1", TEST_PASSWORD)
        qtbot.waitUntil(lambda: window.session.current is not None, timeout=10_000)
        again = window.session.current
        assert again is not None and again.media_token
        assert window.cctv.cameras_shown() != [None] * TILES
        assert window.cctv.source().startswith("cameras around")
        assert all(t.feed.url.endswith(f"?t={again.media_token}")
                   for t in window.cctv.visible_tiles() if t.feed is not None)
        qtbot.waitUntil(lambda: any(t.state == "live" for t in window.cctv.visible_tiles()),
                        timeout=30_000)
    finally:
        close(window)


def test_a_copied_video_link_stops_when_its_session_ends(cctv: Backend) -> None:
    """A view token is video for whoever holds the link. Signing out, or an
    account disabled from the command line, ends its session's video at the
    relay (streams cut, new requests refused) long before the token would
    expire; another session plays on; a restarted relay learns the list
    again from the engine."""
    index, dead = store_index(cctv)
    camera = min(int(i) for i in index.ids if int(i) not in dead and (int(i) - 1) % 32 < 24)
    engine, sessions = open_store(cctv.config.db_url)
    try:
        with sessions() as s:
            accounts.add_user(s, "viewer9", ["operator"], TEST_PASSWORD)
            s.commit()
        desk, laptop = (cctv.request(SignIn(user="viewer9", password=TEST_PASSWORD,
                                            console=name)) for name in ("desk", "laptop"))
        assert isinstance(desk, SignedIn) and isinstance(laptop, SignedIn)
        other = cctv.request(SignIn(user="supervisor1", password=TEST_PASSWORD, console="x"))
        assert isinstance(other, SignedIn)
        port = cctv.config.relay_port
        streams = {name: TsClient(port, camera, token) for name, token in (
            ("desk", desk.media_token), ("laptop", laptop.media_token),
            ("other", other.media_token))}
        for stream in streams.values():
            stream.start()
        try:
            wait_for(lambda: all(len(t.data) > 20_000 for t in streams.values()), 30,
                     "three sessions playing")
            # Signed out at the desk: the desk's link dies, the laptop plays on.
            reply = cctv.request(SignOut(token=desk.token))
            assert isinstance(reply, CommandReply) and reply.ok, reply
            assert streams["desk"].ended.wait(5), "a signed-out session's video played on"
            size = len(streams["laptop"].data)
            wait_for(lambda: len(streams["laptop"].data) > size + 10_000, 10,
                     "the laptop playing on")
            assert view_answer(port, desk.media_token) == (401, "token_revoked")
            assert view_answer(port, laptop.media_token) == (200, "")

            # The account disabled from the command line: within the engine's
            # re-read of the sessions, the laptop's video ends too.
            with sessions() as s:
                accounts.disable(s, "viewer9")
                s.commit()
            assert streams["laptop"].ended.wait(15), "a disabled account's video played on"
            assert view_answer(port, laptop.media_token) == (401, "token_revoked")
            assert not streams["other"].ended.is_set()
        finally:
            for stream in streams.values():
                stream.stop()

    finally:
        engine.dispose()


def test_a_console_whose_video_is_cut_signs_out_at_once(cctv: Backend, qtbot: QtBot) -> None:
    """The account of the operator at this console is disabled while its
    tiles play: the relay cuts them, a tile going offline makes the console
    ask the engine at once (not at its next periodic check), and it signs
    out with every tile stopped."""
    engine, sessions = open_store(cctv.config.db_url)
    try:
        with sessions() as s:
            accounts.add_user(s, "watcher8", ["operator"], TEST_PASSWORD)
            s.commit()
        window = open_window(qtbot, cctv, "watcher8")
        try:
            window.session.check_timer.setInterval(600_000)  # only the tiles can tell it
            window.cameras_here(FX + 120, FY - 100)
            qtbot.waitUntil(lambda: any(t.state == "live" for t in window.cctv.visible_tiles()),
                            timeout=30_000)
            with sessions() as s:
                accounts.disable(s, "watcher8")
                s.commit()
            qtbot.waitUntil(window.sign_in_dialog.isVisible, timeout=20_000)
            assert window.session.current is None and window.media_token() == ""
            assert window.cctv.cameras_shown() == [None] * TILES
            assert window.cctv.source() == "Sign in to view cameras"
        finally:
            close(window)
    finally:
        engine.dispose()
