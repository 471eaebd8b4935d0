"""``GET /v1/location`` through real HTTP on 127.0.0.1, on a SQLite store.

The service runs here behind a minimal asyncio HTTP/1.1 server of the
test's own that calls ``LocationService.handle`` the way the gateway does
(on an event loop, with lower-case header names), so that its edge cases
run without a whole backend; tests/console/test_location_gateway.py holds
it through the running gateway.
"""

from __future__ import annotations

import asyncio
import http.client
import json
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from console.gateway.http import Request
from console.gateway.location import LOCATION_PATH, LocationService, RateLimit
from db import consent as db_consent
from db import guardian_tokens
from db import repositories as repo
from db.store import open_store, sqlite_url
from db.tables import Child, Device, LocationCheck, UsageRecord, Zone

SINDORIM = (37.5085, 126.8875)


@dataclass
class Site:
    port: int
    service: LocationService
    sessions: sessionmaker[Session]
    mother: str  # token of the guardian of C-AAAA001 (located) and C-AAAA002 (no consent)
    other: str  # token of the guardian of C-BBBB001


async def _serve_connection(service: LocationService, reader: asyncio.StreamReader,
                            writer: asyncio.StreamWriter) -> None:
    try:
        while True:
            try:
                head = await reader.readuntil(b"\r\n\r\n")
            except (asyncio.IncompleteReadError, ConnectionError):
                return
            request_line, *lines = head.decode("latin-1").rstrip("\r\n").split("\r\n")
            method, target, _ = request_line.split(" ")
            headers = {k.strip().lower(): v.strip()
                       for k, _, v in (line.partition(":") for line in lines)}
            path, _, query = target.partition("?")
            reply = await service.handle(method, path, query, headers)
            body = reply.body.encode()
            extra = "".join(f"{k}: {v}\r\n" for k, v in reply.headers)
            writer.write(f"HTTP/1.1 {reply.status} -\r\nContent-Type: application/json\r\n"
                         f"Content-Length: {len(body)}\r\n{extra}\r\n".encode() + body)
            await writer.drain()
    finally:
        writer.close()


@pytest.fixture
def site(data_dir: Path) -> Iterator[Site]:
    engine, sessions = open_store(sqlite_url(data_dir))
    now = time.time()
    with sessions() as s:
        s.add(Zone(id=1, name="Sindorim Elementary", kind="school", lat=SINDORIM[0],
                   lon=SINDORIM[1], radius_m=300))
        s.flush()
        s.add_all([Child(id=1, token="C-AAAA001", name="홍길동", zone_id=1),
                   Child(id=2, token="C-AAAA002", name="홍길순", zone_id=1),
                   Child(id=3, token="C-BBBB001", name="김철수", zone_id=1)])
        s.flush()
        s.add_all([Device(id=f"880000000{i}", kind="watch", child_id=i,
                          registered_at=now - 3600) for i in (1, 2, 3)])
        repo.insert_fixes(s.connection(), ["8800000001", "8800000003"], {
            "t": np.full(2, now - 42), "lat": np.full(2, SINDORIM[0]),
            "lon": np.full(2, SINDORIM[1]), "speed": np.zeros(2), "bearing": np.zeros(2),
            "accuracy": np.full(2, 12.0), "battery": np.full(2, 80), "flags": np.zeros(2)})
        mother = db_consent.add_guardian(s, "홍길동 어머니", "010-0000-1111", "", now)
        other = db_consent.add_guardian(s, "김철수 아버지", "010-0000-2222", "", now)
        for token, g in (("C-AAAA001", mother), ("C-AAAA002", mother), ("C-BBBB001", other)):
            db_consent.link(s, token, g.id, "parent")
        db_consent.give(s, "C-AAAA001", mother.id, "location", "under14", "t", now)
        db_consent.give(s, "C-AAAA002", mother.id, "routine", "under14", "t", now)
        db_consent.give(s, "C-BBBB001", other.id, "location", "under14", "t", now)
        mother_token = guardian_tokens.issue(s, mother.id)
        other_token = guardian_tokens.issue(s, other.id)
        s.commit()

    service = LocationService(sessions, per_min=3)
    loop = asyncio.new_event_loop()
    started = threading.Event()
    port = 0

    async def start() -> asyncio.Server:
        nonlocal port
        server = await asyncio.start_server(
            lambda r, w: _serve_connection(service, r, w), "127.0.0.1", 0)
        port = server.sockets[0].getsockname()[1]
        started.set()
        return server

    server = loop.run_until_complete(start())
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()
    started.wait(5)
    try:
        yield Site(port, service, sessions, mother_token, other_token)
    finally:
        async def stop() -> None:
            server.close()
            await server.wait_closed()
        asyncio.run_coroutine_threadsafe(stop(), loop).result(5)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(5)
        loop.close()
        service.close()
        engine.dispose()


def get(site: Site, target: str = LOCATION_PATH, token: str | None = None,
        auth: str | None = None) -> tuple[int, dict[str, str], dict[str, object]]:
    conn = http.client.HTTPConnection("127.0.0.1", site.port, timeout=10)
    try:
        headers = {}
        if token is not None:
            headers["Authorization"] = f"Bearer {token}"
        if auth is not None:
            headers["Authorization"] = auth
        conn.request("GET", target, headers=headers)
        resp = conn.getresponse()
        body = json.loads(resp.read())
        return resp.status, {k.lower(): v for k, v in resp.getheaders()}, body
    finally:
        conn.close()


def _count(site: Site, table: type[object]) -> int:
    with site.sessions() as s:
        return int(s.scalar(select(func.count()).select_from(table)) or 0)  # type: ignore


def test_a_guardian_gets_their_childrens_place(site: Site) -> None:
    status, headers, body = get(site, token=site.mother)
    assert status == 200 and headers["cache-control"] == "no-store"
    first, second = body["children"]  # type: ignore[misc]
    assert first["child"] == "C-AAAA001" and first["name"] == "길동"
    assert first["outcome"] == "answered" and first["place"] == "구로구 신도림동"
    assert (first["lat"], first["lon"], first["accuracy_m"]) == (*SINDORIM, 12.0)
    assert 42.0 <= first["fix_age_s"] < 60.0
    assert second == {"child": "C-AAAA002", "name": "길순", "outcome": "no_consent"}
    status, _, body = get(site, f"{LOCATION_PATH}?child=C-AAAA001", token=site.mother)
    assert status == 200 and [c["child"] for c in body["children"]] == ["C-AAAA001"]  # type: ignore
    assert _count(site, LocationCheck) == 3
    with site.sessions() as s:
        actions = s.scalars(select(UsageRecord.action).where(
            UsageRecord.action == "location_check")).all()
    assert len(actions) == 3
    assert site.service.stats()["accepted.location"] == 2


def test_missing_or_wrong_token_is_401(site: Site) -> None:
    for auth in (None, "Basic dXNlcjpwYXNz", "Bearer ", "Bearer"):
        status, headers, body = get(site, auth=auth)
        assert (status, body["error"]) == (401, "token_missing"), auth
        assert headers["www-authenticate"].startswith("Bearer")
    for token in ("wrong", site.mother + "x", "x" * 300):
        status, headers, body = get(site, token=token)
        assert (status, body["error"]) == (401, "token_wrong")
        assert 'error="invalid_token"' in headers["www-authenticate"]
    assert get(site, token=site.mother)[0] == 200
    with site.sessions() as s:  # a re-issued token ends the old one at once
        guardian = guardian_tokens.guardian_of(s, site.mother)
        assert guardian is not None
        fresh = guardian_tokens.issue(s, guardian.id)
        s.commit()
    assert get(site, token=site.mother)[0] == 401
    assert get(site, token=fresh)[0] == 200
    stats = site.service.stats()
    assert (stats["rejected.location:token_missing"], stats["rejected.location:token_wrong"]
            ) == (4, 4)
    assert _count(site, LocationCheck) == 4  # two answers each time, refusals not recorded


def test_more_than_the_limit_is_429_with_retry_after(site: Site) -> None:
    for _ in range(3):
        assert get(site, token=site.mother)[0] == 200
    status, headers, body = get(site, token=site.mother)
    assert (status, body["error"]) == (429, "rate_limited")
    assert 1 <= int(headers["retry-after"]) <= 60
    assert get(site, token=site.other)[0] == 200  # per guardian, not per server
    assert site.service.stats()["rejected.location:rate_limited"] == 1
    assert _count(site, LocationCheck) == 7  # 3 × 2 children + 1


def test_another_guardians_child_is_answered_like_an_unknown_one(site: Site) -> None:
    status, _, theirs = get(site, f"{LOCATION_PATH}?child=C-BBBB001", token=site.mother)
    _, _, unknown = get(site, f"{LOCATION_PATH}?child=C-ZZZZ999", token=site.mother)
    assert status == 404 and theirs == unknown == {
        "error": "not_found", "detail": "no child of yours with that token"}
    with site.sessions() as s:
        subjects = set(s.scalars(select(UsageRecord.subject).where(
            UsageRecord.action == "location_check")))
    assert "C-BBBB001" not in subjects
    status, _, body = get(site, f"{LOCATION_PATH}?child=C-BBBB001", token=site.other)
    assert status == 200 and body["children"][0]["outcome"] == "answered"  # type: ignore
    for query in ("child=", "child=a&child=b", "child=" + "x" * 40):
        status, _, body = get(site, f"{LOCATION_PATH}?{query}", token=site.mother)
        assert (status, body["error"]) == (400, "bad_query"), query


def test_the_store_runs_off_the_event_loop(data_dir: Path) -> None:
    """A slow store (a lock held elsewhere) delays the answer, never the loop
    that also serves the devices."""
    engine, sessions = open_store(sqlite_url(data_dir))

    class Slow:
        def __call__(self) -> Session:
            time.sleep(0.3)
            return sessions()

    service = LocationService(Slow(), per_min=6)  # type: ignore[arg-type]

    async def main() -> float:
        gaps: list[float] = []

        async def tick() -> None:
            last = time.monotonic()
            while True:
                await asyncio.sleep(0.01)
                now = time.monotonic()
                gaps.append(now - last)
                last = now

        ticker = asyncio.create_task(tick())
        reply = await service.handle("GET", LOCATION_PATH, "", {"authorization": "Bearer x"})
        ticker.cancel()
        assert reply.status == 401
        return max(gaps)

    try:
        assert asyncio.run(main()) < 0.15
    finally:
        service.close()
        engine.dispose()


def test_routing_and_the_server_shape(data_dir: Path) -> None:
    """``in_front_of`` sends /v1/location here and the rest to the feeds;
    ``serve`` answers in HttpServer's (status, text, headers) shape."""
    engine, sessions = open_store(sqlite_url(data_dir))
    service = LocationService(sessions)

    async def feeds(req: Request) -> tuple[int, str]:
        return 200, "feeds " + req.target

    route = service.in_front_of(feeds)

    async def main() -> tuple[object, object]:
        other = await route(Request("POST", "/v1/tag-reads", {}, b"", "peer"))
        mine = await route(Request("POST", LOCATION_PATH + "?child=C-1", {}, b"", "peer"))
        return other, mine

    try:
        other, mine = asyncio.run(main())
        assert other == (200, "feeds /v1/tag-reads")
        assert isinstance(mine, tuple) and mine[0] == 405 and ("Allow", "GET") in mine[2]
        assert service.stats() == {"accepted.location": 0, "rejected.location:bad_method": 1}
    finally:
        service.close()
        engine.dispose()


def test_rate_limit_window_slides() -> None:
    limit = RateLimit(2, window_s=60.0)
    assert limit.take(1, 0.0) == 0.0 and limit.take(1, 10.0) == 0.0
    assert limit.take(1, 20.0) == pytest.approx(40.0)
    assert limit.take(2, 20.0) == 0.0  # another guardian
    assert limit.take(1, 60.5) == 0.0  # the first check aged out
    assert limit.take(1, 61.0) == pytest.approx(9.0)
    assert limit.take(1, 200.0) == 0.0
    assert set(limit._taken) == {1}  # guardians who stopped asking are forgotten
    with pytest.raises(ValueError):
        RateLimit(0)
