"""Feeds end to end over real sockets: a tag read, a phone's JSON POST and a
carrier fix travel HTTP -> FeedsHandler / handle_osmand -> Intake -> the real
bus -> the real engine, and show up in the engine's snapshot.

The HTTP servers run in the test process (the gateway service wires them up
the same way); the engine, bus and recorder are the backend's processes.
"""

from __future__ import annotations

import asyncio
import functools
import http.client
import json
import time
from collections.abc import Iterator

import numpy as np
import pytest
import zmq

from console.bus import Publisher
from console.gateway.feeds import (
    CARRIER_PATH,
    TAG_PATH,
    FeedsHandler,
    handle_osmand,
    reader_positions,
)
from console.gateway.http import HttpServer
from console.gateway.intake import Intake
from console.security import Security
from db import repositories as repo
from db.seed_readers import seed_readers
from db.store import open_store
from models.messages import position_columns
from tests.console.conftest import Backend, wait_for

JSON = "application/json"


def _post(port: int, path: str, body: object) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("POST", path, json.dumps(body).encode(), {"Content-Type": JSON})
        resp = conn.getresponse()
        return resp.status, resp.read().decode()
    finally:
        conn.close()


def _position(backend: Backend, token: str) -> tuple[float, float] | None:
    snap = backend.snapshot()
    cols = position_columns(snap.positions)
    hit = np.flatnonzero(cols["slots"] == snap.children.index(token))
    return (float(cols["lat"][hit[0]]), float(cols["lon"][hit[0]])) if hit.size else None


@pytest.fixture
def intake(backend: Backend) -> Iterator[Intake]:
    """A real Intake publishing on the backend's bus, as the gateway's does."""
    ctx: zmq.Context[zmq.Socket[bytes]] = zmq.Context()
    pub = Publisher(ctx, backend.config.bus_pub, origin="gateway",
                    security=Security.of(backend.config, "gateway"))
    intake = Intake(pub.send)
    intake.registered = {e.device_id for e in backend.roster}
    time.sleep(0.5)  # PUB drops until the proxy has passed on the engine's subscription
    try:
        yield intake
    finally:
        pub.close()
        ctx.term()


def test_tag_read_json_post_and_carrier_fix_become_fixes(backend: Backend,
                                                         intake: Intake) -> None:
    engine, sessions = open_store(backend.config.db_url)
    with sessions() as s:
        seed_readers(s)
        rows = repo.readers(s)
    engine.dispose()
    # The engine knows devices from its roster at start, so the "tag" here is
    # a seeded device id; to the intake a tag is any registered device.
    tagged, phone, lbs = backend.roster[1], backend.roster[2], backend.roster[3]
    reader = next(r for r in rows if r.zone_id == tagged.zone_id)
    feeds = FeedsHandler(intake, reader_positions(rows))
    now = time.time()
    phone_fix = (37.66561, 127.04187)
    lbs_fix = (37.50912, 126.88644)

    async def exchange() -> list[tuple[int, str]]:
        feeds_http = HttpServer(feeds.handle)
        osmand_http = HttpServer(functools.partial(handle_osmand, intake))
        feeds_port = await feeds_http.start("127.0.0.1", 0)
        osmand_port = await osmand_http.start("127.0.0.1", 0)
        try:
            return list(await asyncio.gather(
                asyncio.to_thread(_post, feeds_port, TAG_PATH, {"reads": [
                    {"reader_id": reader.id, "tag_id": tagged.device_id, "rssi": -58,
                     "t": now - 2}]}),
                asyncio.to_thread(_post, osmand_port, "/", {
                    "device_id": phone.device_id, "location": {
                        "timestamp": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(now - 1)),
                        "coords": {"latitude": phone_fix[0], "longitude": phone_fix[1],
                                   "accuracy": 6.0, "speed": 1.1, "heading": 80.0},
                        "is_moving": True, "battery": {"level": 0.8}}}),
                asyncio.to_thread(_post, feeds_port, CARRIER_PATH, {"fixes": [
                    {"device_id": lbs.device_id, "lat": lbs_fix[0], "lon": lbs_fix[1],
                     "accuracy_m": 250, "t": now - 3, "method": "cell"}]}),
            ))
        finally:
            await feeds_http.close()
            await osmand_http.close()

    tag_reply, phone_reply, lbs_reply = asyncio.run(exchange())
    assert tag_reply[0] == 200 and json.loads(tag_reply[1]) == {"accepted": 1, "rejected": []}
    assert phone_reply == (200, "OK")
    assert lbs_reply[0] == 200 and json.loads(lbs_reply[1])["accepted"] == 1
    assert feeds.last_reader(tagged.device_id) == (reader.id, now - 2)
    intake.flush()

    expected = {tagged.token: (reader.lat, reader.lon), phone.token: phone_fix,
                lbs.token: lbs_fix}
    seen: dict[str, tuple[float, float] | None] = {}

    def all_placed() -> bool:
        seen.update({token: _position(backend, token) for token in expected})
        return all((at := seen[k]) is not None and np.allclose(at, v)
                   for k, v in expected.items())

    try:
        wait_for(all_placed, 10, "the three fixes in the engine's snapshot")
    except AssertionError:
        raise AssertionError(f"expected {expected}, engine has {seen}") from None
