"""Service 5 over HTTP: a guardian asks where their child is.

    GET /v1/location[?child=TOKEN]
    Authorization: Bearer <the guardian's token>

    200 {"children": [{"child": "C-9D396A5", "name": "길동", "outcome": "answered",
                       "lat": 37.5085, "lon": 126.8875, "place": "구로구 신도림동",
                       "fix_age_s": 42.0, "accuracy_m": 12.0}]}

``outcome`` is "answered", "no_fix" (nothing stored yet) or "no_consent"
(no location consent in force: nothing located). A ``child`` that is not
the guardian's is 404, exactly like one that does not exist. A missing or
wrong token is 401, more than ``per_min`` checks by one guardian in a
minute 429 with Retry-After; every refusal is counted by reason for the
gateway's heartbeat (``rejected.location:<reason>``), every answer in
``accepted.location``.

It is served on the feeds port, by the gateway's ``HttpServer``, whose
event loop also takes the devices' positions: the store work (token
lookup, fixes, the answer's two records) runs on a small thread pool of its
own, with a session per request, and past ``max_pending`` waiting checks
the answer is 503 at once, so a burst of guardians never holds back a
device's acknowledgement nor the registry refresh on the loop's default
pool.
"""

from __future__ import annotations

import asyncio
import json
import logging
import math
import threading
import time
from collections import Counter, deque
from collections.abc import Awaitable, Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import parse_qs

from sqlalchemy.orm import Session, sessionmaker

from console.gateway.http import Request
from db.guardian_tokens import guardian_of
from db.location_checks import Answer, answer

log = logging.getLogger(__name__)

LOCATION_PATH = "/v1/location"
PROTOCOL = "location"  # the counters' protocol name in the gateway's stats
WINDOW_S = 60.0
WORKERS = 2
MAX_PENDING = 64  # checks waiting for the store; more are answered 503 at once
MAX_CHILD_TOKEN = 32
REALM = 'Bearer realm="childsafe"'

Headers = tuple[tuple[str, str], ...]


class HttpReply(NamedTuple):
    status: int
    headers: Headers
    body: str


class RateLimit:
    """At most ``per_window`` checks per guardian in any ``window_s``
    (a sliding window: a guardian who waits gets the next check as soon as
    their oldest one ages out, which is what Retry-After says). Only checks
    that were answered count. Thread-safe: the store's threads take it."""

    def __init__(self, per_window: int, window_s: float = WINDOW_S) -> None:
        if per_window < 1:
            raise ValueError(f"location checks per minute must be at least 1, not {per_window}")
        self.per_window = per_window
        self.window_s = window_s
        self._lock = threading.Lock()
        self._taken: dict[int, deque[float]] = {}
        self._sweep_at = 0.0

    def take(self, key: int, now: float) -> float:
        """0.0 when a check may run now (and is counted), else seconds to wait."""
        with self._lock:
            if now >= self._sweep_at:  # forget guardians who stopped asking
                self._sweep_at = now + self.window_s
                for k in [k for k, d in self._taken.items() if d[-1] <= now - self.window_s]:
                    del self._taken[k]
            times = self._taken.setdefault(key, deque())
            while times and times[0] <= now - self.window_s:
                times.popleft()
            if len(times) >= self.per_window:
                return max(times[0] + self.window_s - now, 0.001)
            times.append(now)
            return 0.0


@dataclass(frozen=True, slots=True)
class _Outcome:
    """What the store's thread found: a refusal reason, or the answers."""

    refused: str = ""  # token_wrong | rate_limited
    wait_s: float = 0.0
    answers: tuple[Answer, ...] = ()


def _json(status: int, doc: object, headers: Headers = ()) -> HttpReply:
    body = json.dumps(doc, ensure_ascii=True, separators=(",", ":"))
    return HttpReply(status, (("Cache-Control", "no-store"), *headers), body)


class LocationService:
    """The ``/v1/location`` handler. ``handle`` is a coroutine the HTTP
    server awaits; ``stats`` goes into the gateway's heartbeat; ``close``
    when the gateway stops."""

    def __init__(self, sessions: sessionmaker[Session], per_min: int = 6, *,
                 workers: int = WORKERS, max_pending: int = MAX_PENDING,
                 clock: Callable[[], float] = time.monotonic,
                 wall: Callable[[], float] = time.time) -> None:
        self.sessions = sessions
        self.limit = RateLimit(per_min)
        self.max_pending = max_pending
        self.clock = clock
        self.wall = wall
        self.pending = 0
        self.accepted = 0
        self.rejected: Counter[str] = Counter()
        self._pool = ThreadPoolExecutor(max_workers=workers, thread_name_prefix="location")

    # ------------------------------------------------------------ the request

    async def handle(self, method: str, path: str, query: str,
                     headers: Mapping[str, str]) -> HttpReply:
        """``headers`` with lower-case names, as ``HttpServer`` parses them."""
        if path != LOCATION_PATH:
            return self._refuse(404, "unknown_path", f"only {LOCATION_PATH}")
        if method != "GET":
            return self._refuse(405, "bad_method", "GET only", (("Allow", "GET"),))
        try:
            child = _child_param(query)
        except ValueError as exc:
            return self._refuse(400, "bad_query", str(exc))
        scheme, _, token = headers.get("authorization", "").strip().partition(" ")
        token = token.strip()
        if scheme.lower() != "bearer" or not token:
            return self._refuse(401, "token_missing", "Authorization: Bearer <token> needed",
                                (("WWW-Authenticate", REALM),))
        if self.pending >= self.max_pending:
            return self._refuse(503, "busy", "too many checks waiting; ask again shortly",
                                (("Retry-After", "1"),))
        self.pending += 1
        try:
            loop = asyncio.get_running_loop()
            outcome = await loop.run_in_executor(self._pool, self._check, token, child)
        except Exception:
            log.exception("location check failed in the store")
            return self._refuse(503, "store_error", "the store did not answer; ask again",
                                (("Retry-After", "5"),))
        finally:
            self.pending -= 1
        if outcome.refused == "token_wrong":
            return self._refuse(401, "token_wrong", "unknown or replaced token", ((
                "WWW-Authenticate", REALM + ', error="invalid_token"'),))
        if outcome.refused == "rate_limited":
            wait = max(1, math.ceil(outcome.wait_s))
            return self._refuse(429, "rate_limited", f"at most {self.limit.per_window} "
                                f"checks a minute; ask again in {wait} s",
                                (("Retry-After", str(wait)),))
        if child is not None and not outcome.answers:
            return self._refuse(404, "not_found", "no child of yours with that token")
        self.accepted += 1
        return _json(200, {"children": [a.to_json() for a in outcome.answers]})

    def _check(self, token: str, child: str | None) -> _Outcome:
        """On a store thread, with a session of its own: who is asking, may
        they ask now, and the answers with their records, committed."""
        with self.sessions() as s:
            guardian = guardian_of(s, token)
            if guardian is None:
                return _Outcome("token_wrong")
            wait = self.limit.take(guardian.id, self.clock())
            if wait:
                return _Outcome("rate_limited", wait)
            answers = answer(s, guardian, self.wall(), child)
            s.commit()
            return _Outcome(answers=tuple(answers))

    def _refuse(self, status: int, reason: str, detail: str,
                headers: Headers = ()) -> HttpReply:
        self.rejected[reason] += 1
        return _json(status, {"error": reason, "detail": detail}, headers)

    # ---------------------------------------------- the gateway's HTTP server

    async def serve(self, req: Request) -> tuple[int, str, Headers]:
        """``handle`` in ``HttpServer``'s handler shape (status, text, headers)."""
        path, _, query = req.target.partition("?")
        reply = await self.handle(req.method, path, query, req.headers)
        return reply.status, reply.body, reply.headers

    def in_front_of(self, other: Callable[[Request], Awaitable[object]]
                    ) -> Callable[[Request], Awaitable[object]]:
        """One handler for the feeds port: ``/v1/location`` here, the rest to
        ``other`` (the feeds)."""
        async def route(req: Request) -> object:
            if req.target.partition("?")[0] == LOCATION_PATH:
                return await self.serve(req)
            return await other(req)
        return route

    def stats(self) -> dict[str, float]:
        """For the heartbeat, in the gateway's counter names."""
        out: dict[str, float] = {f"accepted.{PROTOCOL}": self.accepted}
        out.update({f"rejected.{PROTOCOL}:{k}": v for k, v in self.rejected.items()})
        return out

    def close(self) -> None:
        """Stop the store threads (a check under way finishes on its own)."""
        self._pool.shutdown(wait=False, cancel_futures=True)


def _child_param(query: str) -> str | None:
    """The ``child`` token asked for, if any; ValueError for a query that
    is not one (two children, an empty or oversized token)."""
    try:
        params = parse_qs(query, keep_blank_values=True, max_num_fields=8)
    except ValueError:
        raise ValueError("too many query fields") from None
    values = params.get("child")
    if values is None:
        return None
    if len(values) != 1:
        raise ValueError("one child at a time, or none for all of yours")
    child = values[0].strip()
    if not child or len(child) > MAX_CHILD_TOKEN or not child.isprintable():
        raise ValueError("child: a child token like C-9D396A5")
    return child
