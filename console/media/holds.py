"""Which cameras the engine keeps held at the media relay, and for which alert.

Why: the relay buffers pre-alarm video only for held cameras, and a hold
is the engine's promise that an open alert may still need that video.  An
SOS by a child who already has an open zone-exit alert must find the
cameras around that child *already buffering*, so every unresolved alert
(open or acknowledged: an operator working a case still needs its video)
holds the cameras nearest where it was raised and nearest where its child
is now.  Holds are leases (``ttl_s``), so a crashed engine's holds lapse
on their own; the keeper therefore:

- asserts every wanted hold as soon as it runs (engine start: the alerts
  come from the store, the relay may have restarted meanwhile),
- renews them every ``renew_s``, well inside ``ttl_s`` (which also
  re-holds within ``renew_s`` after a relay restart lost them), retrying
  after ``retry_s`` when the relay refused or was unreachable (it starts
  after the engine),
- releases an alert's holds once it is resolved or gone.  Cameras an
  alert no longer wants (its child walked on) are simply not renewed: they
  lapse after ``ttl_s``, so the last minute near the child stays buffered.

The keeper is plain Python over a `HoldControl` (``RelayControl``), so it
is tested without a relay; the engine calls it from its own loop.
"""

from __future__ import annotations

import math
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Protocol

from models.cameras import CameraIndex

HOLD_TTL_S = 90.0  # a hold the engine stops renewing lapses after this
HOLD_RENEW_S = 10.0  # renewal period: several renewals fit in one TTL
HOLD_RETRY_S = 3.0  # after a failed hold (relay not up yet, restarting)


class HoldControl(Protocol):
    """What the keeper needs of ``console.media.control.RelayControl``."""

    @property
    def failed(self) -> Mapping[str, int]: ...

    def hold(self, camera_ids: list[int], alert_id: int, ttl_s: float | None = None) -> None: ...

    def release(self, alert_id: int) -> None: ...


@dataclass(frozen=True)
class HoldTarget:
    """An unresolved alert and the WGS84 points whose cameras it needs
    (where it was raised, where its child is now)."""

    alert_id: int
    points: Sequence[tuple[float, float]]


@dataclass
class HoldKeeper:
    relay: HoldControl
    cameras_per_point: int = 4
    ttl_s: float = HOLD_TTL_S
    renew_s: float = HOLD_RENEW_S
    retry_s: float = HOLD_RETRY_S
    index: CameraIndex = field(default_factory=lambda: CameraIndex.from_cameras([]))
    held: dict[int, list[int]] = field(default_factory=dict)  # alert id -> cameras last held
    _next_at: float = 0.0
    _failed_seen: int = 0
    _synced_at: float = -math.inf

    # ---------------------------------------------------------------- index
    def use_index(self, index: CameraIndex) -> None:
        """Rank holds over ``index`` (it leaves out cameras that cannot play:
        the relay cannot buffer a camera without a stream)."""
        self.index = index

    def cameras_for(self, target: HoldTarget) -> list[int]:
        """The nearest cameras of each point, best first, without repeats."""
        out: list[int] = []
        for lat, lon in target.points:
            if not (math.isfinite(lat) and math.isfinite(lon)):
                continue
            for r in self.index.rank(lat, lon, None, k=self.cameras_per_point):
                if r.camera_id not in out:
                    out.append(r.camera_id)
        return out

    # ---------------------------------------------------------------- holds
    def hold_now(self, target: HoldTarget) -> list[int]:
        """Hold a new alert's cameras at once (not at the next renewal);
        returns them, e.g. for the SOS clips that follow."""
        cameras = self.cameras_for(target)
        if cameras:
            self.relay.hold(cameras, target.alert_id, self.ttl_s)
            self.held[target.alert_id] = cameras
        return cameras

    def release(self, alert_id: int) -> None:
        """An alert was resolved: let its cameras go now, without re-ranking
        and renewing every other alert's (``sync`` at the next renewal)."""
        if self.held.pop(alert_id, None) is not None:
            self.relay.release(alert_id)

    def due(self, now: float | None = None) -> bool:
        """Time to sync: the renewal period passed, or a hold failed since the
        last sync and ``retry_s`` passed."""
        now = time.monotonic() if now is None else now
        if now >= self._next_at:
            return True
        failed = self.relay.failed.get("/hold", 0) > self._failed_seen
        return failed and now >= self._synced_at + self.retry_s

    def sync(self, targets: Iterable[HoldTarget], now: float | None = None) -> None:
        """Hold (or renew) what every target needs; release alerts no longer
        among the targets."""
        now = time.monotonic() if now is None else now
        self._failed_seen = self.relay.failed.get("/hold", 0)
        wanted: dict[int, list[int]] = {}
        for target in targets:
            cameras = self.cameras_for(target)
            if cameras:
                wanted[target.alert_id] = cameras
                self.relay.hold(cameras, target.alert_id, self.ttl_s)
        for alert_id in [a for a in self.held if a not in wanted]:
            self.relay.release(alert_id)
        self.held = wanted
        self._synced_at = now
        self._next_at = now + self.renew_s
