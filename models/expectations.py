"""Today's expectations for every child, evaluated as columns: the routine
services (arrival and departure notices) and the timetable alerts (not
arrived, not departed, an exit while expected).

Why columns: at city scale 580,000 children have some 750,000 expectations
a school day. They are built once per local day (and again when an
administrator changes a timetable or the calendar) into numpy arrays sorted
by child slot; a zone enter or exit then looks at that child's few rows, and
the clock (``due``) only looks at rows whose deadline passed since the last
tick, found by binary search in arrays pre-sorted by deadline. Nothing walks
every child on a tick.

A row's life: pending → arrived (an enter in its window, ``start -
early_s`` .. ``end``) → departed (an exit from ``end - dismissal_window_s``
on). Alerts are flags, each raised at most once per row: not arrived (at
``start + arrival_grace_s`` still pending, or arrived early and gone again
before the start) and not departed (arrived and still inside at ``end +
departure_grace_s``); an arrival or departure afterwards clears it. A child
inside before the window opens gets the arrival notice when it opens.

The engine's part:

- ``build`` at start-up and at local midnight (``models.timetable.local_day``
  of the clock changed), from ``db.timetables.load_plans`` mapped from child
  ids to tracker slots; ``rebuild`` when the ``timetables`` or ``calendar``
  change version moves (state of unchanged rows is kept).
- At start-up, before the first ``due``, feed every child the geofence has
  inside a zone through ``on_enter`` (their arrival notices fold into the
  outbox by key); otherwise the first ``due`` reports every child whose
  deadline passed before the start as not arrived. ``build(checked_until=
  now)`` instead skips the deadlines before now.
- ``on_enter``/``on_exit`` for every zone enter and exit of a child;
  ``due(now)`` on every tick; ``expected_somewhere`` for lost signal.
- A not-arrived deadline found only after its row is over (an engine that
  was down all morning) raises nothing: the day has moved on.

``Outcome.kind`` and what the engine does with it:

===================== =====================================================
school_arrival,       a guardian notice (services 1-4): the notice key is
academy_arrival,      (kind, child, zone, ``start_t``), stable across
school_departure,     rebuilds and restarts, so a repeat folds into the
academy_departure     outbox row already there
not_arrived           open a ``not_arrived`` alert
not_departed          open a ``not_departed`` alert
clear_not_arrived     the child arrived: close (or note on) that alert
clear_not_departed    the child left: close (or note on) that alert
unexpected_exit       left the zone while expected there: a ``zone_exit``
                      alert (with the nearest CCTV)
returned              back in the zone after an unexpected exit: note it
                      on that ``zone_exit`` alert (the operator closes it)
===================== =====================================================

An exit or enter with no expectation of that zone today gives no outcome:
the engine then applies its own rule (``has_plan_today`` tells it whether
the child has a timetable today at all).
"""

from __future__ import annotations

import heapq
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass

import numpy as np

from models.timetable import SLOT_KINDS, Expected

PENDING, ARRIVED, DEPARTED = 0, 1, 2
STATE_NAMES = ("pending", "arrived", "departed")
# Row flags.
ALERTED_NOT_ARRIVED = 1
ALERTED_NOT_DEPARTED = 2
INSIDE = 4  # in the zone now (as far as the enters and exits said)
LEFT = 8  # left while expected; cleared by the return

_KIND_CODE = {k: i for i, k in enumerate(SLOT_KINDS)}


@dataclass(frozen=True, slots=True)
class Windows:
    """The timings (console.config has the deployed ones)."""

    early_s: float = 3600.0  # an enter this long before the start is an arrival
    arrival_grace_s: float = 900.0
    departure_grace_s: float = 1800.0
    dismissal_window_s: float = 1200.0
    transit_s: float = 3600.0  # on the way, before the start and after the end


@dataclass(frozen=True, slots=True)
class Outcome:
    kind: str
    slot: int
    zone_id: int
    row: int  # valid until the next rebuild only
    t: float
    start_t: float  # with slot and zone, names the expectation across rebuilds


@dataclass(frozen=True, slots=True)
class RowView:
    """One expectation as the child card shows it (``alerted``: the alerts
    open on it, as far as this evaluator knows)."""

    zone_id: int
    kind: str
    start_t: float
    end_t: float
    state: str
    inside: bool
    alerted: tuple[str, ...]


class Expectations:
    """One local day's expectations. Build it with ``build`` (or
    ``from_columns``); replace it with ``rebuild`` when the day or a
    timetable changes; feed it every zone enter and exit of a child and call
    ``due`` on every tick."""

    def __init__(self, slot: np.ndarray, zone: np.ndarray, kind: np.ndarray,
                 start: np.ndarray, end: np.ndarray, n_slots: int,
                 windows: Windows = Windows(), checked_until: float = -math.inf) -> None:
        """Columns must be sorted by (slot, start) and hold no repeated
        (slot, zone, start); ``from_columns`` sorts and folds them."""
        self.windows = windows
        self.n_slots = int(n_slots)
        self.slot = slot
        self.zone = zone
        self.kind = kind
        self.start = start
        self.end = end
        n = len(slot)
        self.state = np.zeros(n, np.int8)
        self.flags = np.zeros(n, np.uint8)
        self._offsets = np.searchsorted(slot, np.arange(self.n_slots + 1)).astype(np.int64)
        na = start + windows.arrival_grace_s
        self._na_order = np.argsort(na, kind="stable")
        self._na_deadline = na[self._na_order]
        nd = end + windows.departure_grace_s
        self._nd_order = np.argsort(nd, kind="stable")
        self._nd_deadline = nd[self._nd_order]
        # Deadlines up to here were evaluated (by this day's or an earlier
        # instance); those after it are evaluated by the next ``due``.
        self.checked_until = checked_until
        # Rows inside before their window opened: (window opens, row).
        self._early: list[tuple[float, int]] = []

    # ------------------------------------------------------------------ building

    @classmethod
    def from_columns(cls, slot: np.ndarray, zone: np.ndarray, kind: np.ndarray,
                     start: np.ndarray, end: np.ndarray, n_slots: int | None = None,
                     windows: Windows = Windows(),
                     checked_until: float = -math.inf) -> Expectations:
        """From unsorted columns (``kind``: indexes into SLOT_KINDS); a
        repeated (slot, zone, start) is kept once."""
        slot = np.asarray(slot, np.int64)
        zone = np.asarray(zone, np.int64)
        kind = np.asarray(kind, np.int8)
        start = np.asarray(start, np.float64)
        end = np.asarray(end, np.float64)
        order = np.lexsort((zone, start, slot))
        slot, zone, kind, start, end = (a[order] for a in (slot, zone, kind, start, end))
        if len(slot) > 1:
            keep = np.ones(len(slot), bool)
            keep[1:] = ((slot[1:] != slot[:-1]) | (start[1:] != start[:-1])
                        | (zone[1:] != zone[:-1]))
            slot, zone, kind, start, end = (a[keep] for a in (slot, zone, kind, start, end))
        if n_slots is None:
            n_slots = int(slot[-1]) + 1 if len(slot) else 0
        elif len(slot) and (slot[0] < 0 or slot[-1] >= n_slots):
            raise ValueError(f"child slots must be 0..{n_slots - 1}")
        return cls(slot, zone, kind, start, end, n_slots, windows, checked_until)

    @classmethod
    def build(cls, day_plans: Mapping[int, Iterable[Expected]], n_slots: int | None = None,
              windows: Windows = Windows(), checked_until: float = -math.inf) -> Expectations:
        """From day plans keyed by the engine's child slot (not the store's
        child id). ``checked_until``: deadlines at or before it are taken as
        evaluated already; the default evaluates every deadline of the day at
        the first ``due`` (an engine restarted at 10:00 raises the 08:55
        not-arrived alerts it may have missed; pass the start time to skip
        them)."""
        slot: list[int] = []
        zone: list[int] = []
        kind: list[int] = []
        start: list[float] = []
        end: list[float] = []
        for s, plan in day_plans.items():
            for e in plan:
                slot.append(s)
                zone.append(e.zone_id)
                kind.append(_KIND_CODE[e.kind])
                start.append(e.start_t)
                end.append(e.end_t)
        return cls.from_columns(np.array(slot, np.int64), np.array(zone, np.int64),
                                np.array(kind, np.int8), np.array(start, np.float64),
                                np.array(end, np.float64), n_slots, windows, checked_until)

    def rebuild(self, day_plans: Mapping[int, Iterable[Expected]],
                n_slots: int | None = None) -> Expectations:
        """A new instance from new plans that keeps the state of every row
        still there (same child, zone and start): arrived, alerted, inside.
        Deadlines this one already evaluated are not evaluated again, so a
        slot added at 10:00 for today raises no retroactive not-arrived
        alert."""
        new = self.build(day_plans, self.n_slots if n_slots is None else n_slots,
                         self.windows, self.checked_until)
        new._adopt(self)
        return new

    def _adopt(self, old: Expectations) -> None:
        if not len(self.slot) or not len(old.slot):
            return
        dtype = [("slot", np.int64), ("zone", np.int64), ("start", np.float64)]

        def keys(x: Expectations) -> np.ndarray:
            k = np.empty(len(x.slot), dtype)
            k["slot"], k["zone"], k["start"] = x.slot, x.zone, x.start
            return k

        _, mine, theirs = np.intersect1d(keys(self), keys(old), assume_unique=True,
                                         return_indices=True)
        self.state[mine] = old.state[theirs]
        self.flags[mine] = old.flags[theirs]
        for row in mine[(self.state[mine] == PENDING) & ((self.flags[mine] & INSIDE) > 0)]:
            self._push_early(int(row))

    # ------------------------------------------------------------------ queries

    def __len__(self) -> int:
        return len(self.slot)

    def _rows(self, slot: int) -> range:
        if not 0 <= slot < self.n_slots:
            return range(0)
        return range(int(self._offsets[slot]), int(self._offsets[slot + 1]))

    def has_plan_today(self, slot: int) -> bool:
        return len(self._rows(slot)) > 0

    def expected_somewhere(self, slots: np.ndarray | Iterable[int], now: float) -> np.ndarray:
        """Per slot: expected at a school or academy, or on the way there or
        back (``transit_s`` either side of any row today). The lost-signal
        rule asks this: a watch silent at 03:00 is charging, at 08:30 it is
        a child nobody can see."""
        margin = self.windows.transit_s
        active = (self.start - margin <= now) & (now <= self.end + margin)
        per_slot = np.zeros(self.n_slots, bool)
        per_slot[self.slot[active]] = True
        q = np.asarray(slots if isinstance(slots, np.ndarray) else list(slots), np.int64)
        out = np.zeros(len(q), bool)
        valid = (q >= 0) & (q < self.n_slots)
        out[valid] = per_slot[q[valid]]
        return out

    def rows_of(self, slot: int) -> list[RowView]:
        views = []
        for r in self._rows(slot):
            f = int(self.flags[r])
            alerted = tuple(name for bit, name in ((ALERTED_NOT_ARRIVED, "not_arrived"),
                                                   (ALERTED_NOT_DEPARTED, "not_departed"))
                            if f & bit)
            views.append(RowView(int(self.zone[r]), SLOT_KINDS[self.kind[r]],
                                 float(self.start[r]), float(self.end[r]),
                                 STATE_NAMES[self.state[r]], bool(f & INSIDE), alerted))
        return views

    # ------------------------------------------------------------------ events

    def _outcome(self, kind: str, row: int, t: float) -> Outcome:
        return Outcome(kind, int(self.slot[row]), int(self.zone[row]), row, t,
                       float(self.start[row]))

    def _push_early(self, row: int) -> None:
        heapq.heappush(self._early, (float(self.start[row]) - self.windows.early_s, row))

    def _arrive(self, row: int, t: float) -> list[Outcome]:
        self.state[row] = ARRIVED
        out = [self._outcome(f"{SLOT_KINDS[self.kind[row]]}_arrival", row, t)]
        return out + self._clear(row, ALERTED_NOT_ARRIVED, "clear_not_arrived", t)

    def _clear(self, row: int, flag: int, kind: str, t: float) -> list[Outcome]:
        """Close the row's open alert; its deadline is behind the clock, so
        it cannot be raised again."""
        if not self.flags[row] & flag:
            return []
        self.flags[row] &= np.uint8(~flag & 0xFF)
        return [self._outcome(kind, row, t)]

    def _promote(self, t: float) -> list[Outcome]:
        """Arrival notices for children who were inside before the window opened."""
        out: list[Outcome] = []
        while self._early and self._early[0][0] <= t:
            _, row = heapq.heappop(self._early)
            if self.state[row] != PENDING or not self.flags[row] & INSIDE:
                continue  # arrived already, or left before the window opened
            if t <= self.end[row]:
                out.extend(self._arrive(row, t))
        return out

    def on_enter(self, slot: int, zone_id: int, t: float) -> list[Outcome]:
        """The child entered ``zone_id`` at ``t``: an arrival in the window;
        a re-entry after a brief exit sends no second notice."""
        out = self._promote(t)
        for r in self._rows(slot):
            if self.zone[r] != zone_id or self.state[r] == DEPARTED or t > self.end[r]:
                continue
            self.flags[r] |= INSIDE
            if self.state[r] == ARRIVED:
                if self.flags[r] & LEFT:
                    self.flags[r] &= np.uint8(~LEFT & 0xFF)
                    out.append(self._outcome("returned", r, t))
                # Arrived, left before the start, reported missing, back now.
                out.extend(self._clear(r, ALERTED_NOT_ARRIVED, "clear_not_arrived", t))
            elif t >= self.start[r] - self.windows.early_s:
                out.extend(self._arrive(r, t))
            else:
                self._push_early(r)
            break
        return out

    def on_exit(self, slot: int, zone_id: int, t: float) -> list[Outcome]:
        """The child left ``zone_id`` at ``t``: going home from the dismissal
        window on, an alert while expected, nothing before the start."""
        out = self._promote(t)
        w = self.windows
        candidates: list[tuple[bool, int]] = []
        for r in self._rows(slot):
            if self.zone[r] != zone_id:
                continue
            was_inside = bool(self.flags[r] & INSIDE)
            self.flags[r] &= np.uint8(~INSIDE & 0xFF)
            if self.state[r] != DEPARTED and t >= self.start[r] - w.early_s:
                candidates.append((not was_inside, r))  # the row it was inside first
        if not candidates:
            return out
        r = min(candidates)[1]
        if t >= self.end[r] - w.dismissal_window_s:
            self.state[r] = DEPARTED
            out.append(self._outcome(f"{SLOT_KINDS[self.kind[r]]}_departure", r, t))
            out.extend(self._clear(r, ALERTED_NOT_DEPARTED, "clear_not_departed", t))
        elif t >= self.start[r] and not self.flags[r] & LEFT:
            self.flags[r] |= LEFT
            out.append(self._outcome("unexpected_exit", r, t))
        return out

    # ------------------------------------------------------------------ the clock

    def due(self, now: float) -> list[Outcome]:
        """Alerts whose deadline passed since the last call, each once."""
        out = self._promote(now)
        if now <= self.checked_until:
            return out
        lo = self.checked_until
        i0, i1 = np.searchsorted(self._na_deadline, [lo, now], side="right")
        rows = self._na_order[i0:i1]
        f = self.flags[rows]
        # Pending, or arrived early and gone again before the start.
        missing = (self.state[rows] == PENDING) | (
            (self.state[rows] == ARRIVED) & ((f & (INSIDE | LEFT)) == 0))
        live = now <= np.maximum(self.end[rows], self.start[rows] + self.windows.arrival_grace_s)
        rows = rows[missing & live & ((f & ALERTED_NOT_ARRIVED) == 0)]
        self.flags[rows] |= ALERTED_NOT_ARRIVED
        out.extend(self._outcome("not_arrived", int(r), now) for r in rows)
        j0, j1 = np.searchsorted(self._nd_deadline, [lo, now], side="right")
        rows = self._nd_order[j0:j1]
        f = self.flags[rows]
        rows = rows[(self.state[rows] == ARRIVED) & ((f & INSIDE) > 0)
                    & ((f & ALERTED_NOT_DEPARTED) == 0)]
        for r in rows:
            if not self._hand_over(int(r), now):
                self.flags[r] |= ALERTED_NOT_DEPARTED
                out.append(self._outcome("not_departed", int(r), now))
        self.checked_until = now
        return out

    def _hand_over(self, row: int, now: float) -> bool:
        """Still inside at the end because the next session in the same zone
        (two academy classes back to back) has begun its window: the child
        stays, no alert, no notices; the next row is arrived and inside."""
        for r in self._rows(int(self.slot[row])):
            if (r > row and self.zone[r] == self.zone[row] and self.state[r] == PENDING
                    and self.start[r] - self.windows.early_s <= now):
                self.state[row] = DEPARTED
                self.flags[row] &= np.uint8(~INSIDE & 0xFF)
                self.state[r] = ARRIVED
                self.flags[r] |= INSIDE
                return True
        return False
