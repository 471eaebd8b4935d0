"""Live positions of every tracked child and their safety-zone state.

The engine's fix pipeline, one ordered list of stages over a whole batch
(Traccar's handler chain, vectorized with numpy):

1. map device ids to child slots (unknown devices are counted, not applied);
2. pull out alarms (SOS, fall, watch removed) — they raise an alert even
   with no usable position — and low battery as it starts;
3. drop fixes with no usable position, then out-of-order and duplicate ones
   (they are stored by the recorder but never move the live position);
4. keep the newest fix per child and apply it (the engine hands these to
   the geofence, ``models.geofence``, for zone enters and exits);
5. keep each child's breadcrumb: the tag reader that last saw them (by read
   time, even when a GPS fix has moved them since), and whether their live
   position is that reader's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from models.fixes import MAX_FUTURE_S
from models.geo import to_map
from models.messages import (
    FLAG_BAD_POSITION,
    FLAG_FALL,
    FLAG_LOW_BATTERY,
    FLAG_REMOVED,
    FLAG_SOS,
)

# Alarm flags and the alert kind each raises, in the order they are raised.
ALARM_KINDS = ((FLAG_SOS, "sos"), (FLAG_FALL, "fall"), (FLAG_REMOVED, "removed"))
# The alarms that take the fast lane (the gateway's ``Report.urgent``): a
# person must see them now, so the engine opens them before routine work.
URGENT_FLAGS = FLAG_SOS | FLAG_FALL | FLAG_REMOVED
TREND_MIN_S = 600.0  # a battery trend needs at least this much history


@dataclass(frozen=True, slots=True)
class DeviceAlarm:
    """A device event that must reach an operator (SOS, fall, removed, low
    battery), at its own position or, when it had none, the last known one."""

    kind: str
    slot: int
    device_id: str
    lat: float
    lon: float
    position_is_last_known: bool
    t: float
    battery: int = -1


@dataclass(slots=True)
class StepResult:
    """What one batch changed."""

    slots: np.ndarray  # slots whose live position moved
    alarms: list[DeviceAlarm] = field(default_factory=list)
    # The applied fix of each of ``slots``: where (map metres), how accurate, when.
    x: np.ndarray = field(default_factory=lambda: np.empty(0))
    y: np.ndarray = field(default_factory=lambda: np.empty(0))
    accuracy: np.ndarray = field(default_factory=lambda: np.empty(0))
    t: np.ndarray = field(default_factory=lambda: np.empty(0))
    first: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=bool))  # first fix seen


MAX_DEVICE_ID = 64  # the store's column

# Each per-slot column of the Tracker and what a new slot starts with (``grow``).
SLOT_COLUMNS: dict[str, float | int | bool] = {
    "t": -np.inf, "lat": np.nan, "lon": np.nan, "x": np.nan, "y": np.nan, "inside": 0,
    "flags": 0, "at_reader": False, "battery": -1,
    "battery_since": np.nan, "battery_from": -1, "battery_t": np.nan, "low_battery": False}


def check_batch(device_ids: list[str], cols: dict[str, np.ndarray], readers: list[str],
                now: float) -> tuple[list[str], dict[str, np.ndarray], list[str], Counter[str],
                                     np.ndarray | None]:
    """Stage 0: what the engine takes from the bus, checked before use.

    The gateway validates, but the engine trusts nothing it did not check: a
    fix with an impossible time or an over-long id is dropped (counted by
    reason); a fix whose coordinates are not a position keeps only its
    alarm, at the last known position (``FLAG_BAD_POSITION``), so one bad
    value can neither take the engine down nor silence an SOS. Returns the
    kept ids, writable columns and readers, what was dropped or mended, and
    the rows kept (None: all of them).
    """
    dropped: Counter[str] = Counter()
    t = cols["t"]
    keep = np.isfinite(t) & (t <= now + MAX_FUTURE_S) & (t >= 0)
    if not keep.all():
        dropped["time_impossible"] += int((~keep).sum())
    long_id = np.fromiter((len(d) > MAX_DEVICE_ID for d in device_ids), dtype=bool,
                          count=len(device_ids))
    if long_id.any():
        dropped["device_id_too_long"] += int(long_id.sum())
        keep &= ~long_id
    out = {name: np.array(col[keep]) for name, col in cols.items()}
    if not keep.all():
        rows = np.flatnonzero(keep).tolist()
        device_ids = [device_ids[i] for i in rows]
        readers = [readers[i] for i in rows] if readers else readers
    lat, lon, flags = out["lat"], out["lon"], out["flags"]
    bad_pos = ~(np.isfinite(lat) & np.isfinite(lon) & (np.abs(lat) <= 90) & (np.abs(lon) <= 180))
    mended = bad_pos & ((flags & FLAG_BAD_POSITION) == 0)
    if mended.any():
        dropped["position_not_a_position"] += int(mended.sum())
    lat[bad_pos], lon[bad_pos] = np.nan, np.nan
    flags[bad_pos] |= FLAG_BAD_POSITION
    return device_ids, out, readers, dropped, None if keep.all() else keep


def urgent_rows(flags: np.ndarray) -> np.ndarray:
    """Which rows of a batch's ``flags`` column carry an alarm that must
    not wait behind routine fixes (SOS, fall, watch removed)."""
    return (np.asarray(flags) & URGENT_FLAGS) != 0


def slots_of(device_ids: list[str], device_slots: dict[str, int]) -> np.ndarray:
    """Each device's child slot, -1 for a device not tracked (stage 1)."""
    return np.fromiter((device_slots.get(d, -1) for d in device_ids), dtype=np.int64,
                       count=len(device_ids))


class Tracker:
    """Columnar live state, one row ("slot") per child."""

    def __init__(self, tokens: list[str], device_slots: dict[str, int],
                 home_zone: list[int]) -> None:
        n = len(tokens)
        self.tokens = tokens
        self.device_slots = device_slots
        # each child's own safety zone (the store's zone id, -1 none): where
        # an exit outside any timetable still raises an alert
        self.home = np.array(home_zone, dtype=np.int64)
        self.t = np.full(n, -np.inf)
        self.lat = np.full(n, np.nan)
        self.lon = np.full(n, np.nan)
        self.x = np.full(n, np.nan)
        self.y = np.full(n, np.nan)
        self.inside = np.zeros(n, dtype=np.uint8)  # inside any zone (the geofence says)
        self.flags = np.zeros(n, dtype=np.uint8)
        self.at_reader = np.zeros(n, dtype=bool)  # the live position is a tag read's
        self.breadcrumbs: dict[int, tuple[str, float]] = {}  # slot -> (reader, read time)
        self.battery = np.full(n, -1, dtype=np.int16)  # last known %, -1 unknown
        self.battery_since = np.full(n, np.nan)  # when the current discharge was first seen
        self.battery_from = np.full(n, -1, dtype=np.int16)  # ... and at what level
        self.battery_t = np.full(n, np.nan)
        self.low_battery = np.zeros(n, dtype=bool)
        self.rejected: Counter[str] = Counter()
        self.applied = 0

    def __len__(self) -> int:
        return len(self.tokens)

    def grow(self, tokens: list[str], home_zone: list[int]) -> range:
        """Append slots for children enrolled while the engine runs (slots
        are never reused: consoles and alerts refer to children by slot)."""
        first = len(self.tokens)
        self.tokens.extend(tokens)
        k = len(tokens)
        for name, fill in SLOT_COLUMNS.items():
            col = getattr(self, name)
            setattr(self, name, np.concatenate([col, np.full(k, fill, dtype=col.dtype)]))
        self.home = np.concatenate([self.home, np.array(home_zone, dtype=np.int64)])
        return range(first, first + k)

    def step(self, device_ids: list[str], cols: dict[str, np.ndarray],
             readers: list[str] | None = None, slots: np.ndarray | None = None) -> StepResult:
        """Apply one batch; ``readers`` is ``FixBatch.readers`` (empty, or the
        tag reader per fix, "" for fixes from anything else); ``slots`` is
        ``slots_of`` the ids when the caller looked them up already."""
        if slots is None:
            slots = slots_of(device_ids, self.device_slots)
        known = slots >= 0
        if not known.all():
            self.rejected["unknown_device"] += int((~known).sum())
        flags = cols["flags"]
        lat, lon, t = cols["lat"], cols["lon"], cols["t"]

        battery = cols.get("battery")
        if battery is None:  # a caller without the column (tests, replays of old batches)
            battery = np.full(len(device_ids), -1, dtype=np.int8)
        alarms = [self._alarm(kind, int(slots[i]), device_ids[i], lat[i], lon[i], flags[i],
                              float(t[i]), int(battery[i]))
                  for flag, kind in ALARM_KINDS
                  for i in np.flatnonzero(known & ((flags & flag) != 0))]
        alarms += self._batteries(np.flatnonzero(known), slots, device_ids,
                                  {**cols, "battery": battery})

        usable = known & ((flags & FLAG_BAD_POSITION) == 0) & np.isfinite(lat) & np.isfinite(lon)
        idx = np.flatnonzero(usable)
        if len(idx) == 0:
            return StepResult(slots=np.empty(0, dtype=np.int64), alarms=alarms)
        # Newest fix per slot: sort by (slot, t) and keep each slot's last row.
        order = idx[np.lexsort((t[idx], slots[idx]))]
        s_sorted = slots[order]
        last = np.ones(len(order), dtype=bool)
        last[:-1] = s_sorted[1:] != s_sorted[:-1]
        stale = int((t[idx] <= self.t[slots[idx]]).sum())
        if stale:
            self.rejected["out_of_order_or_duplicate"] += stale
        pick = order[last]
        newer = t[pick] > self.t[slots[pick]]
        pick = pick[newer]
        s = slots[pick]
        first = ~np.isfinite(self.t[s])
        self.t[s] = t[pick]
        self.lat[s] = lat[pick]
        self.lon[s] = lon[pick]
        x, y = to_map(lat[pick], lon[pick])
        self.x[s] = x
        self.y[s] = y
        self.flags[s] = flags[pick]
        self.applied += len(s)
        self._breadcrumbs(idx, slots, t, pick, readers or None)
        return StepResult(slots=s, alarms=alarms, x=x, y=y,
                          accuracy=np.asarray(cols["accuracy"][pick], dtype=np.float64),
                          t=t[pick], first=first)

    def _breadcrumbs(self, usable: np.ndarray, slots: np.ndarray, t: np.ndarray,
                     applied: np.ndarray, readers: list[str] | None) -> None:
        """Mark which applied positions are tag reads, and move each child's
        breadcrumb to its newest read (a late, older read never moves it back)."""
        if readers is None:
            self.at_reader[slots[applied]] = False
            return
        from_reader = np.array([readers[i] != "" for i in applied.tolist()], dtype=bool)
        self.at_reader[slots[applied]] = from_reader
        for i in usable.tolist():
            reader = readers[i]
            if not reader:
                continue
            slot, when = int(slots[i]), float(t[i])
            crumb = self.breadcrumbs.get(slot)
            if crumb is None or when >= crumb[1]:
                self.breadcrumbs[slot] = (reader, when)

    def breadcrumb(self, slot: int) -> tuple[str, float] | None:
        """(reader id, read time) of the tag reader that last saw the child."""
        return self.breadcrumbs.get(slot)

    def located_by_reader(self, slot: int, lat: float, lon: float) -> bool:
        """Is (lat, lon) the child's live position, and that position a tag
        read's? (An SOS at its own GPS fix is not; one raised at the last
        known position, which a reader gave, is.)"""
        return bool(self.at_reader[slot] and lat == self.lat[slot] and lon == self.lon[slot])

    def last_readers(self) -> dict[int, str]:
        """Slot -> breadcrumb reader, for the snapshot."""
        return {slot: reader for slot, (reader, _) in self.breadcrumbs.items()}

    def _alarm(self, kind: str, slot: int, device_id: str, lat: float, lon: float, flags: int,
               t: float, battery: int) -> DeviceAlarm:
        bad = bool(flags & FLAG_BAD_POSITION) or not (np.isfinite(lat) and np.isfinite(lon))
        if bad:
            return DeviceAlarm(kind, slot, device_id, float(self.lat[slot]),
                               float(self.lon[slot]), True, t, battery)
        return DeviceAlarm(kind, slot, device_id, float(lat), float(lon), False, t, battery)

    def _batteries(self, rows: np.ndarray, slots: np.ndarray, device_ids: list[str],
                   cols: dict[str, np.ndarray]) -> list[DeviceAlarm]:
        """Keep each child's battery and its trend; a low battery is raised
        when it starts (the flag was off), not on every fix while it lasts.

        A child with one such fix in the batch (nearly all of them) is done
        in whole-array steps; a child with several keeps their order in a
        loop (a Python loop over every fix was a tenth of the engine's CPU)."""
        battery, flags = cols["battery"], cols["flags"]
        rows = rows[(battery[rows] >= 0) | ((flags[rows] & FLAG_LOW_BATTERY) != 0)]
        if not len(rows):
            return []
        _, where, count = np.unique(slots[rows], return_index=True, return_counts=True)
        once = np.sort(where[count == 1])
        several = np.ones(len(rows), dtype=bool)
        several[once] = False
        raised = self._batteries_once(rows[once], slots, cols)
        raised += [i for i in rows[several].tolist() if self._battery_row(i, slots, cols)]
        return [self._alarm("low_battery", int(slots[i]), device_ids[i], cols["lat"][i],
                            cols["lon"][i], flags[i], float(cols["t"][i]), int(battery[i]))
                for i in sorted(raised)]

    def _batteries_once(self, rows: np.ndarray, slots: np.ndarray,
                        cols: dict[str, np.ndarray]) -> list[int]:
        """``_battery_row`` for rows of distinct children, at once."""
        s, level, when = slots[rows], cols["battery"][rows].astype(np.int64), cols["t"][rows]
        late = np.isfinite(self.battery_t[s]) & (when < self.battery_t[s])
        rows, s, level, when = rows[~late], s[~late], level[~late], when[~late]
        has = level >= 0
        charged = has & ((self.battery_from[s] < 0) | (level > self.battery[s]))
        self.battery_since[s[charged]] = when[charged]
        self.battery_from[s[charged]] = level[charged]
        self.battery[s[has]] = level[has]
        self.battery_t[s[has]] = when[has]
        low = (cols["flags"][rows] & FLAG_LOW_BATTERY) != 0
        starts = low & ~self.low_battery[s]
        self.low_battery[s] = low
        return rows[starts].tolist()

    def _battery_row(self, i: int, slots: np.ndarray, cols: dict[str, np.ndarray]) -> bool:
        """One fix's battery; True when it starts a low battery."""
        slot, level, when = int(slots[i]), int(cols["battery"][i]), float(cols["t"][i])
        if np.isfinite(self.battery_t[slot]) and when < self.battery_t[slot]:
            return False  # a late fix says nothing about the battery now
        if level >= 0:
            if self.battery_from[slot] < 0 or level > self.battery[slot]:
                self.battery_since[slot], self.battery_from[slot] = when, level  # charged
            self.battery[slot] = level
            self.battery_t[slot] = when
        low = bool(cols["flags"][i] & FLAG_LOW_BATTERY)
        starts = low and not self.low_battery[slot]
        self.low_battery[slot] = low
        return starts

    def battery_trend(self, slot: int) -> float:
        """Percent per hour over the current discharge (negative: draining);
        0 until there is enough history to say."""
        span = self.battery_t[slot] - self.battery_since[slot]
        if not np.isfinite(span) or span < TREND_MIN_S:
            return 0.0
        return float((self.battery[slot] - self.battery_from[slot]) / span * 3600.0)

    def forget(self, slots: np.ndarray | list[int]) -> None:
        """Drop what is known of these children's whereabouts (their
        consent ended): they leave the snapshot and the map until a consent
        and a new fix bring them back."""
        s = np.asarray(slots, dtype=np.int64)
        self.t[s] = -np.inf
        for col in (self.lat, self.lon, self.x, self.y, self.battery_since, self.battery_t):
            col[s] = np.nan
        self.inside[s] = 0
        self.flags[s] = 0
        self.at_reader[s] = False
        self.battery[s] = -1
        self.battery_from[s] = -1
        self.low_battery[s] = False
        for slot in s.tolist():
            self.breadcrumbs.pop(slot, None)

    def known_slots(self) -> np.ndarray:
        return np.flatnonzero(np.isfinite(self.lat))
