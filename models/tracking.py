"""Live positions of every tracked child and their safety-zone state.

The engine's fix pipeline, one ordered list of stages over a whole batch
(Traccar's handler chain, vectorized with numpy):

1. map device ids to child slots (unknown devices are counted, not applied);
2. pull out SOS presses — they raise an alert even with no usable position;
3. drop fixes with no usable position, then out-of-order and duplicate ones
   (they are stored by the recorder but never move the live position);
4. keep the newest fix per child and apply it;
5. diff each child's old and new home-zone state into enter/exit, with
   accuracy-aware hysteresis so a fix jittering on the boundary does not
   flap (a fix too coarse for any hysteresis cannot change the state);
6. keep each child's breadcrumb: the tag reader that last saw them (by read
   time, even when a GPS fix has moved them since), and whether their live
   position is that reader's.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field

import numpy as np

from models.geo import to_map
from models.messages import FLAG_BAD_POSITION, FLAG_SOS, ZoneView

UNKNOWN, OUTSIDE, INSIDE = -1, 0, 1
MIN_HYSTERESIS_M = 15.0
MAX_HYSTERESIS_M = 100.0


@dataclass(frozen=True, slots=True)
class SosPress:
    slot: int
    device_id: str
    lat: float
    lon: float
    position_is_last_known: bool


@dataclass(slots=True)
class StepResult:
    """What one batch changed."""

    slots: np.ndarray  # slots whose live position moved
    sos: list[SosPress] = field(default_factory=list)
    exits: list[int] = field(default_factory=list)  # slots that left their home zone
    enters: list[int] = field(default_factory=list)


class Tracker:
    """Columnar live state, one row ("slot") per child."""

    def __init__(self, tokens: list[str], device_slots: dict[str, int],
                 home_zone: list[int], zones: list[ZoneView]) -> None:
        n = len(tokens)
        self.tokens = tokens
        self.device_slots = device_slots
        self.zones = zones
        self.zone_index = {z.id: i for i, z in enumerate(zones)}
        self.home = np.array([self.zone_index.get(z, -1) for z in home_zone], dtype=np.int32)
        zlat = np.array([z.lat for z in zones], dtype=float)
        zlon = np.array([z.lon for z in zones], dtype=float)
        self.zx, self.zy = to_map(zlat, zlon) if zones else (np.empty(0), np.empty(0))
        self.zr = np.array([z.radius_m for z in zones], dtype=float)
        self.t = np.full(n, -np.inf)
        self.lat = np.full(n, np.nan)
        self.lon = np.full(n, np.nan)
        self.x = np.full(n, np.nan)
        self.y = np.full(n, np.nan)
        self.inside = np.zeros(n, dtype=np.uint8)  # inside any zone (for the map)
        self.home_state = np.full(n, UNKNOWN, dtype=np.int8)
        self.flags = np.zeros(n, dtype=np.uint8)
        self.at_reader = np.zeros(n, dtype=bool)  # the live position is a tag read's
        self.breadcrumbs: dict[int, tuple[str, float]] = {}  # slot -> (reader, read time)
        self.rejected: Counter[str] = Counter()
        self.applied = 0

    def __len__(self) -> int:
        return len(self.tokens)

    def step(self, device_ids: list[str], cols: dict[str, np.ndarray],
             readers: list[str] | None = None) -> StepResult:
        """Apply one batch; ``readers`` is ``FixBatch.readers`` (empty, or the
        tag reader per fix, "" for fixes from anything else)."""
        slots = np.fromiter((self.device_slots.get(d, -1) for d in device_ids),
                            dtype=np.int64, count=len(device_ids))
        known = slots >= 0
        if not known.all():
            self.rejected["unknown_device"] += int((~known).sum())
        flags = cols["flags"]
        lat, lon, t = cols["lat"], cols["lon"], cols["t"]

        sos = [self._sos(int(slots[i]), device_ids[i], lat[i], lon[i], flags[i])
               for i in np.flatnonzero(known & ((flags & FLAG_SOS) != 0))]

        usable = known & ((flags & FLAG_BAD_POSITION) == 0) & np.isfinite(lat) & np.isfinite(lon)
        idx = np.flatnonzero(usable)
        if len(idx) == 0:
            return StepResult(slots=np.empty(0, dtype=np.int64), sos=sos)
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
        self.t[s] = t[pick]
        self.lat[s] = lat[pick]
        self.lon[s] = lon[pick]
        x, y = to_map(lat[pick], lon[pick])
        self.x[s] = x
        self.y[s] = y
        self.flags[s] = flags[pick]
        self.applied += len(s)
        self._breadcrumbs(idx, slots, t, pick, readers or None)
        exits, enters = self._zones(s, x, y, cols["accuracy"][pick])
        return StepResult(slots=s, sos=sos, exits=exits, enters=enters)

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
        return bool(self.at_reader[slot]) and lat == self.lat[slot] and lon == self.lon[slot]

    def last_readers(self) -> dict[int, str]:
        """Slot -> breadcrumb reader, for the snapshot."""
        return {slot: reader for slot, (reader, _) in self.breadcrumbs.items()}

    def _sos(self, slot: int, device_id: str, lat: float, lon: float, flags: int) -> SosPress:
        bad = bool(flags & FLAG_BAD_POSITION) or not (np.isfinite(lat) and np.isfinite(lon))
        if bad:
            return SosPress(slot, device_id, float(self.lat[slot]), float(self.lon[slot]), True)
        return SosPress(slot, device_id, float(lat), float(lon), False)

    def _zones(self, s: np.ndarray, x: np.ndarray, y: np.ndarray,
               accuracy: np.ndarray) -> tuple[list[int], list[int]]:
        if len(self.zr) == 0:
            return [], []
        # Distance to every zone (few zones per batch region; an STRtree takes
        # over when the registry grows to the city's 588 schools).
        d = np.hypot(x[:, None] - self.zx[None, :], y[:, None] - self.zy[None, :])
        self.inside[s] = (d <= self.zr[None, :]).any(axis=1)
        home = self.home[s]
        has_home = home >= 0
        hd = np.where(has_home, d[np.arange(len(s)), np.maximum(home, 0)], np.nan)
        hr = np.where(has_home, self.zr[np.maximum(home, 0)], np.nan)
        h = np.clip(np.nan_to_num(accuracy, nan=MAX_HYSTERESIS_M),
                    MIN_HYSTERESIS_M, MAX_HYSTERESIS_M)
        old = self.home_state[s]
        new = old.copy()
        new[has_home & (old == UNKNOWN)] = np.where(
            hd <= hr, INSIDE, OUTSIDE)[has_home & (old == UNKNOWN)]
        new[(old == INSIDE) & (hd > hr + h)] = OUTSIDE
        new[(old == OUTSIDE) & (hd < hr - h)] = INSIDE
        # A fix coarser than the widest hysteresis (a carrier's cell fix is off
        # by 150-800 m) moves the child on the map but cannot decide that it
        # left or entered its zone: that would be a false alarm or a false
        # all-clear.
        coarse = accuracy > MAX_HYSTERESIS_M
        new[coarse] = old[coarse]
        self.home_state[s] = new
        exits = s[(old == INSIDE) & (new == OUTSIDE)].tolist()
        enters = s[(old == OUTSIDE) & (new == INSIDE)].tolist()
        return exits, enters

    def known_slots(self) -> np.ndarray:
        return np.flatnonzero(np.isfinite(self.lat))
