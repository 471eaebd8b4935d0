"""Asking the media relay to keep pre-alarm video, to cut clips, and to
refuse the tokens of sessions that ended.

The engine calls this for its open alerts (``console.media.holds`` decides
what to hold, renew and release). Requests go out from one
background thread, so a slow or restarting relay never delays an alert;
failures are logged and counted, and the alert stands without its video.

Each request carries a ``control`` token (``console.media.tokens``) from
the ``token`` provider the engine passes in, as ``Authorization: Bearer``;
no provider means the relay runs open (``bus_security`` off).
"""

from __future__ import annotations

import http.client
import json
import logging
import queue
import threading
from collections import Counter
from collections.abc import Callable

log = logging.getLogger(__name__)


TokenProvider = Callable[[], str]


class RelayControl:
    def __init__(self, host: str, port: int, timeout_s: float = 3.0,
                 token: TokenProvider | None = None) -> None:
        self.host, self.port, self.timeout_s = host, port, timeout_s
        self.token = token  # asked once per request, on the sending thread
        self.sent: Counter[str] = Counter()
        self.failed: Counter[str] = Counter()
        self._queue: queue.Queue[tuple[str, dict[str, object]] | None] = queue.Queue(1000)
        self._thread = threading.Thread(target=self._run, name="relay-control", daemon=True)
        self._thread.start()

    def hold(self, camera_ids: list[int], alert_id: int, ttl_s: float | None = None) -> None:
        """Keep these cameras' last seconds in memory for this alert, for
        ``ttl_s`` (the relay's default when None) unless renewed."""
        body: dict[str, object] = {"camera_ids": camera_ids, "alert_id": alert_id}
        if ttl_s is not None:
            body["ttl_s"] = ttl_s
        self._post("/hold", body)

    def clip(self, camera_id: int, alert_id: int, actor: str) -> None:
        """Save the pre-alarm seconds plus as many after as evidence."""
        self._post("/clip", {"camera_id": camera_id, "alert_id": alert_id, "actor": actor})

    def release(self, alert_id: int) -> None:
        self._post("/release", {"alert_id": alert_id})

    def revoke(self, sessions: dict[str, float]) -> None:
        """Make these sessions (session id -> their tokens' expiry) the
        relay's whole list of ended ones."""
        self._post("/revoke", {"sessions": sessions})

    def close(self) -> None:
        self._queue.put(None)
        self._thread.join(5)

    def _post(self, path: str, body: dict[str, object]) -> None:
        try:
            self._queue.put_nowait((path, body))
        except queue.Full:
            self.failed[path] += 1
            log.error("relay control queue full; dropped %s %s", path, body)

    def _run(self) -> None:
        while (item := self._queue.get()) is not None:
            path, body = item
            conn = http.client.HTTPConnection(self.host, self.port, timeout=self.timeout_s)
            headers = {"Content-Type": "application/json"}
            try:
                if self.token is not None:
                    headers["Authorization"] = f"Bearer {self.token()}"
                conn.request("POST", path, json.dumps(body), headers)
                resp = conn.getresponse()
                reply = resp.read()[:300]
                if resp.status >= 300:
                    raise OSError(f"HTTP {resp.status}: {reply!r}")
                self.sent[path] += 1
            except (OSError, http.client.HTTPException, ValueError) as exc:
                self.failed[path] += 1
                log.warning("relay %s %s failed: %s", path, body, exc)
            finally:
                conn.close()
