"""What an operator would have seen, and what the store really holds.

Why both: the issue's worst findings were a console showing LIVE while SOS
were held back, and acknowledgements that meant nothing. ``HealthWatch``
is a headless console (the GUI's own bus worker, ``console.feed.LiveFeed``)
whose status is sampled ten times a second, so "time to DEGRADED or STALE"
and "time back to LIVE" are what a console shows, not what a log says.
``store_counts`` reads the store after the system settles: SOS alerts per
child, fixes by (device, device time), and the event log's ``alert.opened``
records.
"""

from __future__ import annotations

import threading
import time
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field

from console.config import Config

SAMPLE_S = 0.1
LIVE = "LIVE"


@dataclass(frozen=True)
class Sample:
    at: float  # monotonic
    state: str  # LIVE | DEGRADED | STALE | DISCONNECTED
    reasons: tuple[str, ...]


class HealthWatch:
    """A console without a window: its state timeline, and its alert queue."""

    def __init__(self, config: Config) -> None:
        from console.feed import LiveFeed

        self.feed = LiveFeed(config)
        self.samples: list[Sample] = []
        self._alerts: list[object] = []  # the console's queue, as last handed over
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._run, name="chaos-health", daemon=True)

    def start(self) -> None:
        self.feed.start()
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(5)
        self.feed.stop()

    def _run(self) -> None:
        while not self._stop.wait(SAMPLE_S):
            frame = self.feed.take()
            sample = Sample(time.monotonic(), frame.state.value, tuple(frame.degraded))
            with self._lock:
                self.samples.append(sample)
                if frame.alerts is not None:
                    self._alerts = list(frame.alerts)

    def _copy(self) -> list[Sample]:
        with self._lock:
            return list(self.samples)

    def last_state(self) -> str:
        samples = self._copy()
        return samples[-1].state if samples else "no sample yet"

    def is_live(self) -> bool:
        return self.last_state() == LIVE

    def first_not_live(self, since: float) -> Sample | None:
        """The first sample after ``since`` that was not LIVE."""
        return next((s for s in self._copy() if s.at >= since and s.state != LIVE), None)

    def worst_since(self, since: float) -> str:
        """The worst state shown after ``since`` (DISCONNECTED worst)."""
        order = ("DISCONNECTED", "STALE", "DEGRADED", LIVE)
        seen = {s.state for s in self._copy() if s.at >= since}
        return next((st for st in order if st in seen), "")

    def live_again(self, since: float) -> float | None:
        """When the final LIVE stretch after ``since`` began: None when the
        console is not LIVE now; ``since`` itself if it never left LIVE."""
        samples = [s for s in self._copy() if s.at >= since]
        if not samples or samples[-1].state != LIVE:
            return None
        at = samples[-1].at
        for s in reversed(samples):
            if s.state != LIVE:
                break
            at = s.at
        return at

    def sos_rows(self, children: set[str]) -> int:
        """SOS alerts of these children in the console's own queue (what an
        operator would be working)."""
        from models.messages import AlertView

        with self._lock:
            rows = list(self._alerts)
        return sum(1 for a in rows if isinstance(a, AlertView) and a.kind == "sos"
                   and a.child_token in children)


@dataclass
class StoreCounts:
    """What the store holds for the devices the run used."""

    sos_alerts: dict[str, list[int]] = field(default_factory=dict)  # child -> alert ids
    trigger_counts: dict[int, int] = field(default_factory=dict)  # alert id -> presses folded
    fixes: set[tuple[str, int]] = field(default_factory=set)  # (device, device time in ms)
    alert_ids: set[int] = field(default_factory=set)  # every alert, any kind
    opened_events: set[int] = field(default_factory=set)  # alert ids with an alert.opened


def fix_key(device_id: str, t: float) -> tuple[str, int]:
    """Fixes are matched by device and device time to the millisecond (the
    simulated devices send times with three decimals)."""
    return device_id, round(t * 1000)


def store_counts(db_url: str, fix_devices: Iterable[str]) -> StoreCounts:
    """Read the store once. Raises the driver's error while the store is
    locked; the caller retries."""
    from sqlalchemy import select

    from db.store import make_engine
    from db.tables import Alert, Child, Event, Fix

    out = StoreCounts()
    engine = make_engine(db_url)
    try:
        with engine.connect() as conn:
            by_child: dict[str, list[int]] = defaultdict(list)
            for alert_id, kind, token, count in conn.execute(
                    select(Alert.id, Alert.kind, Child.token, Alert.count)
                    .join(Child, Alert.child_id == Child.id)):
                out.alert_ids.add(alert_id)
                if kind == "sos":
                    by_child[token].append(alert_id)
                    out.trigger_counts[alert_id] = count
            out.sos_alerts = dict(by_child)
            devices = sorted(set(fix_devices))
            for i in range(0, len(devices), 500):
                rows = conn.execute(select(Fix.device_id, Fix.t)
                                    .where(Fix.device_id.in_(devices[i:i + 500])))
                out.fixes.update(fix_key(d, t) for d, t in rows)
            for (body,) in conn.execute(select(Event.body).where(Event.topic == "alert.opened")):
                alert_id = _opened_alert_id(body)
                if alert_id is not None:
                    out.opened_events.add(alert_id)
    finally:
        engine.dispose()
    return out


def _opened_alert_id(body: bytes) -> int | None:
    """The alert id of a stored ``alert.opened`` body, read as plain
    MessagePack: a record is counted even when its schema has grown fields
    since this process started (the product changes under a long run)."""
    import msgspec

    try:
        raw = msgspec.msgpack.decode(body)
    except msgspec.DecodeError:
        return None
    alert = raw.get("alert") if isinstance(raw, dict) else None
    alert_id = alert.get("id") if isinstance(alert, dict) else None
    return alert_id if isinstance(alert_id, int) else None
