"""A real backend for integration tests: bus, engine, recorder and gateway
as separate processes on a seeded SQLite store, OsmAnd on a free port of
127.0.0.1."""

from __future__ import annotations

import functools
import http.client
import json
import socket
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlencode

import pytest
import zmq
from argon2 import PasswordHasher
from sqlalchemy import create_engine, text
from sqlalchemy.engine import make_url
from sqlalchemy.orm import Session

from console.bus import Subscriber, role_of
from console.bus import socket as zsocket
from console.config import Config
from console.security import Security
from console.supervisor import BACKEND, Supervisor
from db import accounts
from db import repositories as repo
from db.repositories import RosterEntry
from db.seed import seed_demo
from db.seed_readers import seed_readers
from db.store import open_store
from db.tables import User
from models.messages import (
    Heartbeat,
    SignedIn,
    SignIn,
    Snapshot,
    SnapshotRequest,
    decode,
    encode,
)
from models.zones import ZONE_KINDS
from tests.services import free_tcp_port

SEOUL_FOREST = (37.5444, 127.0374)
# Accounts every test backend has (argon2 makes each ~50 ms to create).
TEST_PASSWORD = "test-password-1"
TEST_USERS = {"operator1": ["operator"], "operator2": ["operator"],
              "supervisor1": ["supervisor", "operator"], "auditor1": ["auditor"],
              "admin1": ["admin"]}


@dataclass
class Backend:
    config: Config
    supervisor: Supervisor
    roster: list[RosterEntry]

    def send(self, **params: object) -> tuple[int, str]:
        """One OsmAnd GET, as a phone app sends it."""
        conn = http.client.HTTPConnection("127.0.0.1", self.config.osmand_port, timeout=5)
        try:
            conn.request("GET", "/?" + urlencode(params))
            resp = conn.getresponse()
            return resp.status, resp.read().decode()
        finally:
            conn.close()

    def fix(self, device: str, lat: float, lon: float, t: float | None = None,
            **extra: object) -> tuple[int, str]:
        return self.send(id=device, lat=lat, lon=lon, timestamp=t or time.time(),
                         accuracy=8, **extra)

    def post_json(self, port: int, path: str, payload: object) -> tuple[int, object]:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
        try:
            conn.request("POST", path, json.dumps(payload),
                         {"Content-Type": "application/json"})
            resp = conn.getresponse()
            return resp.status, json.loads(resp.read())
        finally:
            conn.close()

    def request(self, body: object, timeout_s: float = 5.0) -> object:
        """One request to the engine over its REQ/ROUTER socket, as a console
        sends it; returns the decoded reply."""
        ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
        req = zsocket(ctx, zmq.REQ)
        try:
            Security.console(self.config).client(req, "engine")
            req.connect(self.config.engine_rpc)
            req.send(encode(body))  # type: ignore[arg-type]
            assert req.poll(int(timeout_s * 1000)), "engine did not answer"
            return decode(req.recv())
        finally:
            req.close(0)
            ctx.term()

    def snapshot(self, timeout_s: float = 5.0) -> Snapshot:
        snap = self.request(SnapshotRequest(), timeout_s)
        assert isinstance(snap, Snapshot)
        return snap

    def command(self, cmd: object, timeout_s: float = 5.0) -> object:
        return self.request(cmd, timeout_s)

    def sign_in(self, user: str, password: str = TEST_PASSWORD) -> str:
        """A session token for ``user`` (one of TEST_USERS)."""
        reply = self.request(SignIn(user=user, password=password, console="test"))
        assert isinstance(reply, SignedIn), reply
        return reply.token


@functools.cache
def shared_password_hash() -> str:
    """The test accounts' one argon2 hash: the hash is slow on purpose (about
    0.1 s), and every backend a test starts seeds seven accounts."""
    return PasswordHasher().hash(TEST_PASSWORD)


def wait_for(predicate: Callable[[], object], timeout_s: float = 10.0,
             what: str = "condition") -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.05)
    raise AssertionError(f"timed out after {timeout_s} s waiting for {what}")


def watch_connection(port: int, timeout_s: float = 10.0) -> socket.socket:
    """A TCP connection to the gateway's watch port, which it opens a moment
    after the OsmAnd port the backend fixtures wait for."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            return socket.create_connection(("127.0.0.1", port), 5)
        except ConnectionRefusedError:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def wait_for_heartbeat(cfg: Config, role: str, stat: str = "", value: float = 1.0,
                       timeout_s: float = 15.0) -> dict[str, float]:
    """The first heartbeat of ``role`` (whose ``stat`` equals ``value``, if
    given) heard on the installation's bus; its stats."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    sub = Subscriber(ctx, cfg.bus_sub, ("sys.heartbeat",), security=Security.console(cfg))
    deadline = time.monotonic() + timeout_s
    try:
        while time.monotonic() < deadline:
            got = sub.recv(200)
            if got is None or not isinstance(got[1], Heartbeat):
                continue
            hb = got[1]
            if role_of(hb.origin) == role and (not stat or hb.stats.get(stat) == value):
                return dict(hb.stats)
    finally:
        sub.close()
        ctx.term()
    raise AssertionError(f"no {role} heartbeat{f' with {stat}={value}' if stat else ''} "
                         f"within {timeout_s} s")


def make_config(data_dir: Path, **kw: object) -> Config:
    """A test installation on free ports. Zones count an exit at the first
    fix out (no dwell) unless a test sets ``fence_dwell_s``: the geofence's
    own tests hold its dwell; these hold what an exit leads to."""
    kw.setdefault("fence_dwell_s", dict.fromkeys(ZONE_KINDS, 0.0))
    ports = {name: free_tcp_port() for name in ("osmand_port", "watch_port", "feeds_port",
                                                 "relay_port")}
    cfg = Config(data_dir=data_dir, **ports, **kw)  # type: ignore[arg-type]
    cfg.ensure_dirs()
    return cfg


def port_open(port: int) -> bool:
    try:
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=1)
        conn.connect()
        conn.close()
        return True
    except OSError:
        return False


@contextmanager
def running_backend(cfg: Config, services: tuple[str, ...] = BACKEND,
                    seed: Callable[[Session], None] | None = None,
                    ports: tuple[str, ...] = ("osmand_port",),
                    timeout_s: float = 15.0) -> Iterator[Backend]:
    """Seed the demo store at ``cfg.db_url`` (and whatever ``seed`` adds),
    start ``services``, and yield once the config's ``ports`` listen and the
    engine answers a snapshot."""
    engine, sessions = open_store(cfg.db_url)
    with sessions() as s:
        seed_demo(s, cfg.children)
        seed_readers(s)
        known = {u.name for u in accounts.users(s)}
        s.add_all(User(name=name, roles=",".join(sorted(roles)), created_at=time.time(),
                       password_hash=shared_password_hash())
                  for name, roles in TEST_USERS.items() if name not in known)
        s.commit()
        if seed is not None:
            seed(s)
            s.commit()
        roster = repo.roster(s)
    engine.dispose()
    sup = Supervisor(cfg, services)
    sup.start()
    try:
        b = Backend(cfg, sup, roster)
        for name in ports:
            port = getattr(cfg, name)
            wait_for(lambda p=port: port_open(p), timeout_s, f"the {name.removesuffix('_port')}")
        b.snapshot(timeout_s=timeout_s)
        if "gateway" in services and "engine" in services:
            # the gateway acknowledges alarms only once it hears the engine
            wait_for_heartbeat(cfg, "gateway", "engine_up", 1.0, timeout_s)
        yield b
    finally:
        sup.stop()


@pytest.fixture
def backend(data_dir: Path) -> Iterator[Backend]:
    with running_backend(make_config(data_dir, children=30)) as b:
        yield b


@pytest.fixture
def pg_backend(data_dir: Path, postgres_url: str) -> Iterator[Backend]:
    """The same backend on the session's PostgreSQL server, in a database of
    its own that is dropped afterwards."""
    name = f"backend_{uuid.uuid4().hex[:12]}"
    admin = create_engine(postgres_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(text(f'CREATE DATABASE "{name}"'))
    url = make_url(postgres_url).set(database=name).render_as_string(hide_password=False)
    try:
        with running_backend(make_config(data_dir, children=30, db_url=url)) as b:
            yield b
    finally:
        with admin.connect() as conn:
            conn.execute(text(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))
        admin.dispose()
