"""The bus and the engine's command socket admit only the installation's
keys, fail closed, and forward only what each key may say.

One backend runs with the bus on TCP on 127.0.0.1 (keys are the only trust
between hosts); peers with an unknown key, no key at all, or a known key
saying what its role may not, try to read, forge and command.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import zmq
from sqlalchemy import select

from console import keys
from console.bus import Publisher, Subscriber, role_of
from console.bus import socket as zsocket
from console.engine_client import EngineClient
from console.security import Security
from db.store import open_store
from db.tables import Event
from models.messages import (
    AlertOpened,
    AlertUpdated,
    AlertView,
    FixBatch,
    Heartbeat,
    SignIn,
    SnapshotRequest,
    encode,
    pack,
)
from tests.console.conftest import (
    TEST_PASSWORD,
    Backend,
    make_config,
    running_backend,
)
from tests.services import free_tcp_port

LISTEN_S = 2.5  # how long a refused peer is given to receive anything


@pytest.fixture(scope="module")
def tcp_backend(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Backend]:
    cfg = make_config(tmp_path_factory.mktemp("secure"), children=20, bus_transport="tcp",
                      bus_pub_port=free_tcp_port(), bus_sub_port=free_tcp_port(),
                      engine_port=free_tcp_port())
    assert cfg.bus_security == "curve" and cfg.bus_sub.startswith("tcp://127.0.0.1:")
    with running_backend(cfg) as b:
        yield b


def stranger(ctx: zmq.Context[zmq.Socket[bytes]], kind: int, server_key: bytes | None,
             endpoint: str) -> zmq.Socket[bytes]:
    """A socket with a key the installation never made (or, with no server
    key, plain ZeroMQ)."""
    sock = zsocket(ctx, kind)
    if server_key is not None:
        public, secret = zmq.curve_keypair()
        sock.curve_publickey, sock.curve_secretkey = public, secret
        sock.curve_serverkey = server_key
    sock.connect(endpoint)
    return sock


def forged_alert() -> AlertView:
    """A real alert's twin marked resolved: what a forger would want shown."""
    return AlertView(id=1, kind="sos", priority=1, state="resolved", child_token="C-FORGED",
                     child_slot=0, device_id="x", lat=37.5, lon=127.0, place="",
                     opened_at=0.0)


def received(sock: zmq.Socket[bytes], seconds: float) -> int:
    count, end = 0, time.monotonic() + seconds
    while (left := end - time.monotonic()) > 0:
        if sock.poll(int(left * 1000)):
            sock.recv_multipart()
            count += 1
    return count


def bus_stats(cfg: object, want: str, timeout_s: float = 10.0,
              role: str = "bus") -> dict[str, float]:
    """A process's heartbeat stats (the bus's own by default), once ``want``
    is among them."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = Subscriber(ctx, cfg.bus_sub, ("sys.heartbeat",),  # type: ignore[attr-defined]
                     security=Security.console(cfg))  # type: ignore[arg-type]
    last: dict[str, float] = {}
    try:
        end = time.monotonic() + timeout_s
        while time.monotonic() < end:
            got = sub.recv(200)
            if got and isinstance(got[1], Heartbeat) and role_of(got[1].origin) == role:
                last = dict(got[1].stats)
                if want in last:
                    return last
    finally:
        sub.close()
        ctx.term()
    raise AssertionError(f"no {role} heartbeat with {want}; last {last}")


def test_a_known_console_reads_the_bus_and_signs_in_over_tcp(tcp_backend: Backend) -> None:
    cfg = tcp_backend.config
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = Subscriber(ctx, cfg.bus_sub, ("sys.heartbeat",), security=Security.console(cfg))
    try:
        roles: set[str] = set()
        end = time.monotonic() + 10
        while time.monotonic() < end and not {"engine", "gateway", "bus"} <= roles:
            got = sub.recv(200)
            if got:
                roles.add(role_of(got[1].origin))
        assert {"engine", "gateway", "bus"} <= roles
    finally:
        sub.close()
        ctx.term()
    assert tcp_backend.sign_in("operator1")


def test_an_sos_crosses_the_tcp_bus_to_the_console(tcp_backend: Backend) -> None:
    cfg = tcp_backend.config
    device = tcp_backend.roster[3].device_id
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = Subscriber(ctx, cfg.bus_sub, ("alert.opened",), security=Security.console(cfg))
    try:
        time.sleep(0.5)
        status, _ = tcp_backend.fix(device, 37.5444, 127.0374, alarm="sos")
        assert status == 200
        got = sub.recv(10_000)
        assert got is not None and isinstance(got[1], AlertOpened)
        assert got[1].alert.device_id == device and got[1].alert.kind == "sos"
    finally:
        sub.close()
        ctx.term()


@pytest.mark.parametrize("peer", ["unknown key", "no key"])
def test_a_stranger_reads_nothing_and_forges_nothing(tcp_backend: Backend, peer: str) -> None:
    cfg = tcp_backend.config
    server_key = keys.public(cfg.data_dir, "bus") if peer == "unknown key" else None
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    spy = stranger(ctx, zmq.SUB, server_key, cfg.bus_sub)
    spy.setsockopt(zmq.SUBSCRIBE, b"")
    forger = stranger(ctx, zmq.PUB, server_key, cfg.bus_pub)
    witness = Subscriber(ctx, cfg.bus_sub, ("alert.", "sys.heartbeat"),
                         security=Security.console(cfg))
    try:
        forged = AlertUpdated(alert=forged_alert(), action="resolve", actor="x",
                              origin="engine:1", seq=1)
        heartbeats = 0
        end = time.monotonic() + LISTEN_S
        while time.monotonic() < end:
            forger.send_multipart([b"alert.updated", encode(forged)])
            got = witness.recv(100)
            if got:
                assert not (isinstance(got[1], AlertUpdated)
                            and got[1].alert.child_token == "C-FORGED"), "a forgery was forwarded"
                heartbeats += isinstance(got[1], Heartbeat)
        assert heartbeats > 0, "the witness heard nothing: the test proves nothing"
        assert received(spy, 0.5) == 0
    finally:
        for s in (spy, forger):
            s.close(0)
        witness.close()
        ctx.term()


@pytest.mark.parametrize("peer", ["unknown key", "no key", "gateway key"])
def test_only_console_keys_reach_the_engine(tcp_backend: Backend, peer: str) -> None:
    cfg = tcp_backend.config
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    if peer == "gateway key":
        req = zsocket(ctx, zmq.REQ)
        Security.of(cfg, "gateway").client(req, "engine")
        req.connect(cfg.engine_rpc)
    else:
        server_key = keys.public(cfg.data_dir, "engine") if peer == "unknown key" else None
        req = stranger(ctx, zmq.REQ, server_key, cfg.engine_rpc)
    try:
        req.send(encode(SnapshotRequest()))
        assert not req.poll(int(LISTEN_S * 1000)), f"the engine answered a peer with {peer}"
        req.close(0)
        req = stranger(ctx, zmq.REQ, keys.public(cfg.data_dir, "engine"), cfg.engine_rpc)
        req.send(encode(SignIn(user="operator1", password=TEST_PASSWORD)))
        assert not req.poll(1000), "a sign-in from an unknown key was answered"
    finally:
        req.close(0)
        ctx.term()
    assert tcp_backend.sign_in("operator2")  # the engine still serves its consoles
    if peer != "no key":  # a plain peer fails the handshake before ZAP is asked
        assert bus_stats(cfg, "peers_refused", role="engine")["peers_refused"] >= 1


def test_known_keys_saying_what_their_role_may_not_are_dropped(tcp_backend: Backend) -> None:
    cfg = tcp_backend.config
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    console_pub = Publisher(ctx, cfg.bus_pub, origin="console", security=Security.console(cfg))
    # a gateway key claiming to be the engine, on a topic it may publish
    liar = Publisher(ctx, cfg.bus_pub, origin="engine", security=Security.of(cfg, "gateway"))
    witness = Subscriber(ctx, cfg.bus_sub, ("alert.", "fix.batch"),
                         security=Security.console(cfg))
    device = tcp_backend.roster[5].device_id
    batch = FixBatch(device_ids=[device], t=pack("t", [time.time()]),
                     lat=pack("lat", [37.5]), lon=pack("lon", [127.0]),
                     speed=pack("speed", [0.0]), bearing=pack("bearing", [0.0]),
                     accuracy=pack("accuracy", [5.0]), battery=pack("battery", [90]),
                     flags=pack("flags", [1]))
    try:
        time.sleep(0.5)
        for _ in range(5):
            console_pub.send(AlertUpdated(alert=forged_alert(), action="resolve", actor="x"))
            liar.send(batch)
            got = witness.recv(200)
            assert got is None, f"forwarded: {got}"
        stats = bus_stats(cfg, "dropped_origin")
        assert stats["dropped_topic"] >= 5 and stats["dropped_origin"] >= 5
    finally:
        console_pub.close()
        liar.close()
        witness.close()
        ctx.term()
    # nothing of it became fact: no alert for the SOS flag the liar sent, and
    # the event log holds no forged body
    engine, sessions = open_store(cfg.db_url)
    try:
        with sessions() as s:
            origins = set(s.scalars(select(Event.origin)))
        assert not any(o.startswith("console") for o in origins)
    finally:
        engine.dispose()
    snap = tcp_backend.snapshot()
    assert not any(a.device_id == device and a.kind == "sos" for a in snap.alerts)


def test_a_console_key_added_while_running_is_admitted(tcp_backend: Backend) -> None:
    cfg = tcp_backend.config
    assert keys.create(cfg.data_dir, "console-ws2")
    ws2 = Security(cfg.data_dir, "console-ws2")
    with EngineClient(cfg.engine_rpc, timeout_s=5, security=ws2) as client:
        assert client.sign_in("operator1", TEST_PASSWORD)
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = Subscriber(ctx, cfg.bus_sub, ("sys.heartbeat",), security=ws2)
    try:
        assert sub.recv(5000) is not None
    finally:
        sub.close()
        ctx.term()


def test_with_its_authenticator_stopped_a_server_admits_no_one(tmp_path: Path) -> None:
    """libzmq lets CURVE clients in when no ZAP handler answers, unless the
    server enforces its domain: ours do."""
    keys.init(tmp_path)
    endpoint = f"ipc://{tmp_path}/s.sock"
    server_ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    client_ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    bus = Security(tmp_path, "bus")
    guard = bus.guard(server_ctx, {"bus": frozenset({"console"})})
    assert guard is not None
    pull = zsocket(server_ctx, zmq.PULL)
    bus.server(pull, "bus")
    pull.bind(endpoint)

    def push_one() -> zmq.Socket[bytes]:
        push = zsocket(client_ctx, zmq.PUSH)
        Security(tmp_path, "console").client(push, "bus")
        push.connect(endpoint)
        push.send(b"hello", zmq.NOBLOCK) if push.poll(500, zmq.POLLOUT) else None
        return push

    first = push_one()
    try:
        assert pull.poll(3000), "with its authenticator the server admits a known key"
        assert pull.recv() == b"hello"
        guard.stop()
        second = push_one()
        assert not pull.poll(int(LISTEN_S * 1000)), "admitted with no authenticator"
        second.close(0)
    finally:
        first.close(0)
        pull.close(0)
        server_ctx.term()
        client_ctx.term()


def test_secret_keys_are_private_and_never_replaced(tmp_path: Path) -> None:
    made = keys.init(tmp_path)
    assert "engine" in made and "console" in made and keys.init(tmp_path) == []
    folder = keys.keys_dir(tmp_path)
    assert folder.stat().st_mode & 0o777 == 0o700
    assert all(p.stat().st_mode & 0o777 == 0o600 for p in folder.glob("*.key_secret"))
    assert keys.check_private(tmp_path) == []
    (folder / "relay.key_secret").chmod(0o644)
    assert [p for p in keys.check_private(tmp_path) if "relay.key_secret" in p]
    with pytest.raises(ValueError):
        keys.create(tmp_path, "intruder")  # a name with no role is no key
    assert set(keys.known(tmp_path).values()) >= {"bus", "engine", "gateway", "console"}



def test_a_known_key_sending_an_oversized_frame_is_cut_off_and_the_bus_goes_on(
        tcp_backend: Backend) -> None:
    """libzmq disconnects a peer whose frame exceeds MAXMSGSIZE: 70 MB never
    reach the proxy's memory, and everyone else keeps the bus."""
    from console.bus import MAX_FRAME_BYTES

    cfg = tcp_backend.config
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    big = zsocket(ctx, zmq.PUB)
    Security.of(cfg, "gateway").client(big, "bus")
    big.connect(cfg.bus_pub)
    witness = Subscriber(ctx, cfg.bus_sub, ("fix.", "sys.heartbeat"),
                         security=Security.console(cfg))
    try:
        time.sleep(0.5)
        malformed = bus_stats(cfg, "forwarded").get("dropped_malformed", 0)
        big.send_multipart([b"fix.batch", b"\x00" * (MAX_FRAME_BYTES + 1)])
        heartbeats, end = 0, time.monotonic() + 3
        while time.monotonic() < end:
            got = witness.recv(200)
            assert got is None or isinstance(got[1], Heartbeat), got
            heartbeats += got is not None
        assert heartbeats > 0
        assert witness.rejected["bad_body"] == 0
        # the proxy never received it (had it, it would have dropped it as malformed)
        assert bus_stats(cfg, "forwarded").get("dropped_malformed", 0) == malformed
    finally:
        big.close(0)
        witness.close()
        ctx.term()
    assert tcp_backend.sign_in("operator1")


def _init_and_read(data_dir: str) -> dict[str, str]:
    keys.init(Path(data_dir))
    return {name: public.decode() for public, name in keys.known(Path(data_dir)).items()}


def test_commands_starting_together_make_one_set_of_keys(tmp_path: Path) -> None:
    """A demo and its console (or ``tap``) started at once both make the
    installation's keys: one set comes out, and everyone reads the same."""
    from concurrent.futures import ProcessPoolExecutor

    with ProcessPoolExecutor(4) as pool:
        seen = list(pool.map(_init_and_read, [str(tmp_path)] * 8))
    assert all(s == seen[0] for s in seen) and len(seen[0]) >= 7
    for name, public in seen[0].items():
        assert keys.load(tmp_path, name).public.decode() == public


def test_a_second_workstation_with_only_its_copied_keys_runs_a_console_over_tcp(
        tcp_backend: Backend, tmp_path: Path) -> None:
    """Another host: its own data dir holding only what ``keys add`` says to
    copy (its key pair, the bus's and the engine's public keys) and a config
    naming the backend's host and ports. Its console's bus worker syncs,
    signs in, and sees an SOS raised at the backend. (The key is made a
    moment before the console starts: if the engine refuses the first
    handshake, before it admits the key, the console connects afresh.)"""
    import shutil

    from console.config import Config
    from console.feed import LiveFeed
    from models.console_state import BusState
    from models.messages import SignedIn

    cfg = tcp_backend.config
    keys.create(cfg.data_dir, "console-ws3")
    ws = Config(data_dir=tmp_path / "ws3", bus_transport="tcp", bus_host="127.0.0.1",
                bus_pub_port=cfg.bus_pub_port, bus_sub_port=cfg.bus_sub_port,
                engine_port=cfg.engine_port, console_key="console-ws3")
    folder = keys.keys_dir(ws.data_dir)
    folder.mkdir(parents=True)
    for name in ("console-ws3.key_secret", "console-ws3.key", "bus.key", "engine.key"):
        shutil.copy(keys.keys_dir(cfg.data_dir) / name, folder / name)
    assert not (ws.data_dir / "childsafe.sqlite3").exists()  # no store on a workstation
    feed = LiveFeed(ws)
    feed.start()
    try:
        deadline = time.monotonic() + 15
        frame = feed.take()
        while frame.state not in (BusState.LIVE, BusState.DEGRADED) or not frame.children:
            assert time.monotonic() < deadline, \
                f"the workstation never synced: {frame.state} {feed.received} {feed.rejected}"
            time.sleep(0.1)
            frame = feed.take()
        ref = feed.send(SignIn(user="operator2", password=TEST_PASSWORD, console="ws3"))
        device = tcp_backend.roster[7].device_id
        status, _ = tcp_backend.fix(device, 37.5444, 127.0374, alarm="sos")
        assert status == 200
        signed = sos = False
        while not (signed and sos):
            assert time.monotonic() < deadline + 10, (signed, sos)
            frame = feed.take()
            signed = signed or any(isinstance(r, SignedIn) and r.ref == ref
                                   for r in frame.replies)
            sos = sos or any(getattr(a, "device_id", "") == device
                             for a in (frame.alerts or []))
            time.sleep(0.05)
    finally:
        feed.stop()
    assert not (ws.data_dir / "childsafe.sqlite3").exists()
