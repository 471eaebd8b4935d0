"""The gateway's registry sync keeps every ZeroMQ socket on one thread.

Why: a ZeroMQ socket is not thread-safe; it belongs to the thread that uses
it. The gateway reads the device registry on a worker thread (the store may
be slow) while its event loop publishes fix batches on the same ``PUB``
socket, so the worker must only read the store and hand back what it found;
the loop applies it and publishes ``unregistered.seen`` itself. This runs a
real ``Gateway`` in-process on its own event loop thread, with every bus
socket wrapped to note the thread of each call, and checks that a device
registered while it runs is still accepted within the refresh period.
"""

from __future__ import annotations

import asyncio
import http.client
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, ClassVar
from urllib.parse import urlencode

import pytest
import zmq

from console import bus
from console.services import gateway as gateway_service
from console.services.gateway import Gateway
from console.services.runtime import Runtime
from db import consent, registry
from db.seed import seed_demo
from db.store import open_store
from db.tables import Child, UnregisteredDevice
from tests.console.conftest import make_config, port_open, wait_for

PLACE = (37.5085, 126.8875)  # Sindorim Elementary
WAIT_S = 10.0  # an upper bound for a condition, never a measured time


class ThreadNotingSocket:
    """A ZeroMQ socket that notes which thread made each call on it."""

    def __init__(self, sock: zmq.Socket[bytes], name: str,
                 calls: list[tuple[str, str, int]]) -> None:
        self._sock = sock
        self._name = name
        self._calls = calls

    def __getattr__(self, attr: str) -> Any:
        value = getattr(self._sock, attr)
        if not callable(value):
            return value

        def noted(*args: Any, **kw: Any) -> Any:
            self._calls.append((self._name, attr, threading.get_ident()))
            return value(*args, **kw)

        return noted


def noting(cls: type[Any], name: str, calls: list[tuple[str, str, int]]) -> type[Any]:
    """``cls`` (Publisher or Subscriber) whose socket notes its callers."""

    class Noting(cls):  # type: ignore[misc, valid-type]
        def __init__(self, *args: Any, **kw: Any) -> None:
            super().__init__(*args, **kw)
            self.sock = ThreadNotingSocket(self.sock, name, calls)

    return Noting


class RecordingPublisher(bus.Publisher):
    """The gateway's publisher, noting each message type with its thread."""

    sent: ClassVar[list[tuple[str, int]]] = []  # the one gateway's, reset per test

    def send(self, msg: Any, stamped: bool = False) -> Any:
        RecordingPublisher.sent.append((type(msg).__name__, threading.get_ident()))
        return super().send(msg, stamped)


def osmand_fix(port: int, device: str) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", "/?" + urlencode(dict(id=device, lat=PLACE[0], lon=PLACE[1],
                                                  timestamp=time.time(), accuracy=8)))
        return conn.getresponse().status
    finally:
        conn.close()


def enrol(db_url: str, token: str, device: str) -> None:
    """A child with consent and a phone, registered as the admin would."""
    engine, sessions = open_store(db_url)
    try:
        with sessions() as s:
            s.add(Child(token=token, name="New Child", zone_id=None))
            s.flush()
            guardian = consent.add_guardian(s, "Guardian", "010-1234-5678", "", time.time())
            consent.link(s, token, guardian.id, "mother")
            consent.give(s, token, guardian.id, ["routine", "location", "emergency"],
                         "under14", "test", time.time())
            registry.add_device(s, device, "phone", token, actor="test")
            s.commit()
    finally:
        engine.dispose()


def stored_unregistered(db_url: str) -> set[str]:
    engine, sessions = open_store(db_url)
    try:
        with sessions() as s:
            return {row.id for row in s.query(UnregisteredDevice)}
    finally:
        engine.dispose()


@pytest.fixture
def running_gateway(data_dir: Path, monkeypatch: pytest.MonkeyPatch
                    ) -> Iterator[tuple[Gateway, threading.Thread,
                                        list[tuple[str, str, int]]]]:
    """A real Gateway on its own event loop thread; its sockets note callers."""
    cfg = make_config(data_dir, children=5, bus_security="off")
    engine, sessions = open_store(cfg.db_url)
    with sessions() as s:
        seed_demo(s, cfg.children)
        s.commit()
    engine.dispose()
    calls: list[tuple[str, str, int]] = []
    RecordingPublisher.sent = []
    monkeypatch.setattr(gateway_service, "Publisher", noting(RecordingPublisher, "pub", calls))
    monkeypatch.setattr(gateway_service, "Subscriber", noting(bus.Subscriber, "beats", calls))
    gw = Gateway(Runtime("gateway", cfg))
    failed: list[BaseException] = []

    def serve() -> None:
        try:
            asyncio.run(gw.run())
        except BaseException as exc:  # shown by the test, not lost in the thread
            failed.append(exc)

    thread = threading.Thread(target=serve, name="gateway-loop", daemon=True)
    thread.start()
    try:
        wait_for(lambda: port_open(cfg.osmand_port) or bool(failed), WAIT_S, "the OsmAnd port")
        assert not failed, failed
        yield gw, thread, calls
    finally:
        gw.rt.stop.set()
        thread.join(WAIT_S)
        assert not thread.is_alive(), "the gateway did not stop"
        assert not failed, failed


def test_registry_sync_publishes_on_the_loop_thread_and_takes_new_devices(
        running_gateway: tuple[Gateway, threading.Thread, list[tuple[str, str, int]]]) -> None:
    gw, loop_thread, calls = running_gateway
    cfg = gw.rt.config
    unknown = "never-registered-1"
    assert osmand_fix(cfg.osmand_port, unknown) == 403

    # A phone registered while the gateway runs is taken at the next refresh.
    token, device = "C-SYNC-001", "sync-phone-1"
    enrol(cfg.db_url, token, device)
    wait_for(lambda: osmand_fix(cfg.osmand_port, device) == 200, WAIT_S,
             "the new phone accepted")

    # The refused id reached the store, and the admin's list went out on the bus.
    wait_for(lambda: unknown in stored_unregistered(cfg.db_url), WAIT_S, "the refused id stored")
    wait_for(lambda: any(kind == "UnregisteredSeen" for kind, _ in RecordingPublisher.sent),
             WAIT_S, "unregistered.seen published")

    gw.rt.stop.set()
    loop_thread.join(WAIT_S)
    assert calls, "the wrapped sockets were never used"
    loop = loop_thread.ident
    off_loop = sorted({(name, method) for name, method, who in calls if who != loop})
    assert off_loop == [], f"ZeroMQ socket calls off the event loop's thread: {off_loop}"
    assert {who for _, who in RecordingPublisher.sent} == {loop}
    assert {"FixBatch", "UnregisteredSeen"} <= {kind for kind, _ in RecordingPublisher.sent}
