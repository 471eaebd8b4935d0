"""console.media.holds: what the engine holds at the relay, renews and releases
(the relay itself is faked here; tests/console/test_cctv_chain.py runs it real)."""

from __future__ import annotations

from collections import Counter
from types import SimpleNamespace

import numpy as np

from console.media.holds import HoldKeeper, HoldTarget
from models.cameras import CameraIndex
from models.geo import to_map, to_wgs84

POINT = (37.5444, 127.0374)
PX, PY = to_map(*POINT)


class FakeRelay:
    def __init__(self) -> None:
        self.calls: list[tuple[str, object, ...]] = []  # type: ignore[misc]
        self.failed: Counter[str] = Counter()

    def hold(self, camera_ids: list[int], alert_id: int, ttl_s: float | None = None) -> None:
        self.calls.append(("hold", alert_id, tuple(camera_ids), ttl_s))

    def release(self, alert_id: int) -> None:
        self.calls.append(("release", alert_id))


def wgs(east: float, north: float) -> tuple[float, float]:
    lat, lon = to_wgs84(np.array([PX + east]), np.array([PY + north]))
    return float(lat[0]), float(lon[0])


def registry() -> tuple[CameraIndex, list[SimpleNamespace]]:
    """Cameras every 100 m along a street going east; camera 3 has no stream."""
    rows = []
    for i in range(1, 9):
        lat, lon = wgs(100.0 * (i - 1), 0.0)
        rows.append(SimpleNamespace(id=i, lat=lat, lon=lon, direction_deg=None, fov_deg=360.0,
                                    range_m=60.0, ptz=False, status="unknown",
                                    stream_url="" if i == 3 else f"rtsp://cam/{i}"))
    return CameraIndex.from_cameras(rows), rows


def keeper(relay: FakeRelay) -> HoldKeeper:
    k = HoldKeeper(relay, cameras_per_point=2, ttl_s=90.0, renew_s=10.0, retry_s=3.0)
    k.use_index(registry()[0])
    return k


def test_a_new_alert_is_held_at_once_with_playable_cameras_only() -> None:
    relay = FakeRelay()
    k = keeper(relay)
    got = k.hold_now(HoldTarget(7, [wgs(190.0, 0.0)]))  # between cameras 2 and 3
    assert got == [2, 4]  # 3 has no stream URL: it cannot be buffered
    assert relay.calls == [("hold", 7, (2, 4), 90.0)]
    assert k.hold_now(HoldTarget(8, [(float("nan"), float("nan"))])) == []  # no position
    assert len(relay.calls) == 1


def test_holds_are_asserted_at_start_renewed_and_released() -> None:
    relay = FakeRelay()
    k = keeper(relay)
    exit_alert = HoldTarget(1, [wgs(0.0, 0.0)])
    assert k.due(now=0.0)  # a fresh keeper (engine start) syncs at once
    k.sync([exit_alert], now=0.0)
    assert relay.calls == [("hold", 1, (1, 2), 90.0)]
    assert not k.due(now=9.9) and k.due(now=10.0)  # renewed well inside the TTL
    # The child walks east: where it is now is held too, the alert's place still is.
    walked = HoldTarget(1, [wgs(0.0, 0.0), wgs(630.0, 0.0)])
    sos = HoldTarget(2, [wgs(630.0, 0.0)])
    k.sync([walked, sos], now=10.0)
    assert relay.calls[1:] == [("hold", 1, (1, 2, 7, 8), 90.0), ("hold", 2, (7, 8), 90.0)]
    # Alert 1 resolved: released; alert 2 (acknowledged, still unresolved) renewed.
    k.sync([sos], now=20.0)
    assert relay.calls[3:] == [("hold", 2, (7, 8), 90.0), ("release", 1)]
    assert k.held == {2: [7, 8]}
    k.sync([], now=30.0)
    assert relay.calls[-1] == ("release", 2) and k.held == {}


def test_a_failed_hold_is_retried_soon() -> None:
    relay = FakeRelay()
    k = keeper(relay)
    k.sync([HoldTarget(1, [wgs(0.0, 0.0)])], now=0.0)
    assert not k.due(now=3.5)
    relay.failed["/hold"] += 1  # the relay was not up yet (it starts after the engine)
    assert not k.due(now=2.9) and k.due(now=3.0)
    k.sync([HoldTarget(1, [wgs(0.0, 0.0)])], now=3.0)
    assert not k.due(now=6.5)  # no new failure: back to the renewal period
    assert [c[0] for c in relay.calls] == ["hold", "hold"]


def test_a_resolved_alert_is_released_at_once_and_the_others_are_left_alone() -> None:
    relay = FakeRelay()
    k = keeper(relay)
    k.sync([HoldTarget(1, [wgs(0.0, 0.0)]), HoldTarget(2, [wgs(630.0, 0.0)])], now=0.0)
    del relay.calls[:]
    k.release(1)
    assert relay.calls == [("release", 1)] and k.held == {2: [7, 8]}
    k.release(1)  # a second resolve (reopened, resolved again) of nothing held
    k.release(99)
    assert relay.calls == [("release", 1)]
    assert not k.due(now=9.9)  # the others are renewed on their own schedule
