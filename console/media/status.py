"""Debouncing raw camera states into ``cam.status`` events.

Why: a camera on a flaky link can drop and come back several times a
second; publishing every flap would flood the bus and make tiles and map
markers flicker. A state is published only once it has held for
``delay_s`` and differs from what was last published, so a blip shorter
than that is never seen by operators, while a real outage is reported
within ``delay_s``.

Pullers report from their own threads; ``due()`` is called by the one
thread that owns the bus publisher (ZeroMQ sockets are not thread-safe).
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass


@dataclass
class _Cam:
    state: str
    detail: str
    since: float
    published: str = ""


class Debouncer:
    def __init__(self, delay_s: float = 2.0) -> None:
        self.delay_s = delay_s
        self._cams: dict[int, _Cam] = {}
        self._lock = threading.Lock()

    def report(self, camera_id: int, state: str, detail: str = "",
               now: float | None = None) -> None:
        """A puller's raw state; cheap, any thread."""
        now = time.monotonic() if now is None else now
        with self._lock:
            cam = self._cams.get(camera_id)
            if cam is None:
                self._cams[camera_id] = _Cam(state, detail, now)
            elif cam.state != state:
                cam.state, cam.detail, cam.since = state, detail, now
            else:
                cam.detail = detail  # same state, fresher reason: no restart of the clock

    def due(self, now: float | None = None) -> list[tuple[int, str, str]]:
        """(camera_id, state, detail) for every state now stable and unpublished;
        marks them published."""
        now = time.monotonic() if now is None else now
        out: list[tuple[int, str, str]] = []
        with self._lock:
            for camera_id, cam in self._cams.items():
                if cam.state != cam.published and now - cam.since >= self.delay_s:
                    cam.published = cam.state
                    out.append((camera_id, cam.state, cam.detail))
        return out

    def current(self) -> dict[int, str]:
        """Last published state per camera (for ``GET /status``)."""
        with self._lock:
            return {cid: cam.published for cid, cam in self._cams.items() if cam.published}
