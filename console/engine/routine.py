"""The services beyond a device's own alarms, as the engine runs them: safety
zones (the geofence), timetables (arrival and departure notices, not
arrived and not departed alerts), lost signal and unusual movement.

Why one place: a zone exit means different things at different times. At
dismissal it is a child going home (a notice to the guardians); during
class it is an alert; outside any timetable it is an alert only when the
zone is the child's own safety zone and it is watched at that hour (the
u-Seoul zone service); anywhere else it is nothing. Deciding that needs
the geofence, the timetable and the consent book together.

What it never does: raise an alert or send a notice the child's consent
does not cover (emergency for alerts about danger, routine for notices and
timetable alerts), or hold back the alerting loop on the store (notices
wait in memory until the store takes them; the outbox folds repeats).
"""

from __future__ import annotations

import logging
import math
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable
from datetime import date

import numpy as np
from sqlalchemy.orm import Session, sessionmaker

from console.config import Config
from console.engine.consent_gate import ConsentGate
from console.engine.desk import AlertDesk
from console.engine.state import EngineState
from db import changes, outbox
from db import repositories as repo
from db.timetables import load_plans
from db.zones import zone_views
from models.alerts import Trigger
from models.corridor import Corridor
from models.expectations import Expectations, Outcome, Windows
from models.geo import to_map
from models.geofence import Geofence, rules_from_config
from models.lost_signal import LostSignal, limits_by_slot
from models.messages import Message, ZoneCounts, ZoneRegistry, ZoneView
from models.movement import SpeedWatch
from models.notices import NOTICE_KINDS
from models.timetable import Expected, local_day, local_midnight
from models.tracking import StepResult
from models.zones import hours_active

log = logging.getLogger(__name__)

COUNTS_EVERY_S = 1.0
HISTORY_S = 14 * 86400.0  # the history a usual corridor is learned from (at most what is kept)
CORRIDOR_ACCURACY_M = 100.0  # coarser fixes teach nothing about routes
# What each timetable outcome does to an alert: open it, or clear it.
OPENS = {"not_arrived": "not_arrived", "not_departed": "not_departed",
         "unexpected_exit": "zone_exit"}
CLEARS = {"clear_not_arrived": ("not_arrived", "the child arrived"),
          "clear_not_departed": ("not_departed", "the child left")}
DEPARTURES = frozenset({"school_departure", "academy_departure", "unexpected_exit"})
ARRIVAL_CLEARS = {"school_arrival": CLEARS["clear_not_arrived"],
                  "academy_arrival": CLEARS["clear_not_arrived"],
                  "school_departure": CLEARS["clear_not_departed"],
                  "academy_departure": CLEARS["clear_not_departed"]}


class Routine:
    def __init__(self, sessions: sessionmaker[Session], cfg: Config, state: EngineState,
                 desk: AlertDesk, consent: ConsentGate, publish: Callable[[Message], object],
                 clock: Callable[[], float] = time.time) -> None:
        self.sessions = sessions
        self.cfg = cfg
        self.state = state
        self.desk = desk
        self.consent = consent
        self.publish = publish
        self.clock = clock
        now = clock()
        self.started_at = now
        tr = state.tracker
        self.fence = Geofence(state.zones, rules_from_config(cfg.fence_dwell_s))
        self.windows = Windows(arrival_grace_s=cfg.arrival_grace_s,
                               departure_grace_s=cfg.departure_grace_s,
                               dismissal_window_s=cfg.dismissal_window_s)
        self.lost = LostSignal(len(tr), now)
        self.speed = SpeedWatch(len(tr))
        self.corridor = Corridor(len(tr))
        self.away = np.zeros(len(tr), dtype=bool)  # far off the usual corridor now
        # The corridors are learned from the stored history in a thread of
        # its own (a scan of days of fixes), then handed to the loop.
        self.history: queue.Queue[list[tuple[str, float, float, float]]] = queue.Queue()
        threading.Thread(target=self._read_history, args=(now - HISTORY_S,),
                         name="corridor-history", daemon=True).start()
        self.limit_kmh = np.zeros(0)
        self.device_of: dict[int, str] = {}
        self.profiles: dict[int, str] = {}
        with sessions() as s:
            self.versions = changes.versions(s)
        self.day = local_day(now, cfg.local_utc_offset_s)
        # Deadlines that passed while the engine was down are not raised
        # afterwards (nobody can say now whether the child arrived then).
        self.expect = Expectations.build(self._plans(self.day), len(tr), self.windows,
                                         checked_until=now)
        self.notices: list[tuple[int, str, str, float, str]] = []
        self.stats: Counter[str] = Counter()
        self.counts_at = 0.0
        self.last_counts: tuple[list[int], list[int]] = ([], [])
        self.roster_changed()
        self._resume(desk)

    def _resume(self, desk: AlertDesk) -> None:
        """After a restart the watches start blank, but alerts they raised
        are still open: mark them, so a fix clears a lost signal and a normal
        pace or the usual routes are written on unusual movement, as if the
        engine had never stopped."""
        for a in desk.alerts.values():
            if not 0 <= a.child_slot < len(self.lost.lost) or a.state == "resolved":
                continue
            if a.kind == "lost_signal":
                self.lost.lost[a.child_slot] = True
            elif a.kind == "unusual_movement":
                self.speed.raised[a.child_slot] = True

    # ------------------------------------------------------------- loading
    def _plans(self, day: date) -> dict[int, list[Expected]]:
        with self.sessions() as s:
            plans = load_plans(s, day, self.cfg.local_utc_offset_s)
        slot_of = self.state.slot_of_child
        return {slot_of[c]: p for c, p in plans.items() if c in slot_of}

    def _read_history(self, since: float) -> None:
        try:
            with self.sessions() as s:
                self.history.put(repo.places_visited(s, since))
        except Exception as exc:  # corridors then start from live fixes alone
            log.warning("could not read the fix history for corridors: %s", exc)

    def _learn_history(self) -> None:
        try:
            rows = self.history.get_nowait()
        except queue.Empty:
            return
        self.stats["corridors_learned"] += 1
        slots = self.state.tracker.device_slots
        known = [(slots[d], t, lat, lon) for d, t, lat, lon in rows if d in slots]
        if known:
            arr = np.array(known, dtype=np.float64)
            x, y = to_map(arr[:, 2], arr[:, 3])
            self.corridor.learn(arr[:, 0].astype(np.int64), x, y, arr[:, 1])
        log.info("usual corridors learned from %d places of %d devices", len(known),
                 len({d for d, *_ in rows}))

    def roster_changed(self) -> None:
        """New slots or devices: size every per-slot watch to the roster."""
        tr = self.state.tracker
        grow = len(tr) - len(self.lost.lost)
        if grow > 0:
            self.lost.grow(grow)
            self.speed.grow(grow)
            self.corridor.grow(grow)
            self.away = np.concatenate([self.away, np.zeros(grow, dtype=bool)])
        self.device_of = {}
        for device, slot in sorted(tr.device_slots.items()):
            self.device_of.setdefault(slot, device)
        self.lost.set_limits(limits_by_slot(tr.device_slots, self.state.device_kinds,
                                            self.cfg.lost_signal_s))
        with self.sessions() as s:
            self.profiles = repo.profiles(s)
        limits = self.cfg.speed_limit_kmh
        walking = limits.get("walking", 15.0)
        self.limit_kmh = np.array([limits.get(self.profiles.get(c, "walking"), walking)
                                   for c in self.state.child_ids], dtype=np.float64)
        if grow > 0:
            self.expect = self.expect.rebuild(self._plans(self.day), len(tr))

    def _reload(self, now: float) -> None:
        """Zones, timetables and the calendar, when an admin changed them,
        and a new local day at midnight: no restart, within a second."""
        day = local_day(now, self.cfg.local_utc_offset_s)
        try:
            with self.sessions() as s:
                versions = changes.versions(s)
                zones = zone_views(s) if versions["zones"] != self.versions["zones"] else None
        except Exception as exc:  # the store is busy: next second
            log.warning("could not read the change log: %s", exc)
            return
        if zones is not None:
            self._zones_changed(zones)
        tr = self.state.tracker
        if day != self.day:
            self.day = day
            self.expect = Expectations.build(self._plans(day), len(tr), self.windows,
                                             checked_until=local_midnight(
                                                 day, self.cfg.local_utc_offset_s))
            log.info("a new day (%s): %d expectations", day, len(self.expect))
        elif (versions["timetables"], versions["calendar"]) != (
                self.versions["timetables"], self.versions["calendar"]):
            self.expect = self.expect.rebuild(self._plans(day), len(tr))
            log.info("timetables reloaded: %d expectations today", len(self.expect))
        self.versions = versions

    def _zones_changed(self, zones: list[ZoneView]) -> None:
        self.fence.rebuild(zones)
        self.state.zones[:] = zones
        self.state.zone_names.clear()
        self.state.zone_names.update({z.id: z.name for z in zones})
        tr = self.state.tracker
        known = tr.known_slots()
        tr.inside[known] = self.fence.inside_any(known)
        self.publish(ZoneRegistry(zones=list(zones)))
        self.counts_at = 0.0
        log.info("zones reloaded: %d zones", len(zones))

    # ---------------------------------------------------------------- fixes
    def on_fixes(self, r: StepResult) -> None:
        """A batch moved these children: zones, timetable, speed."""
        if not len(r.slots):
            return
        tr = self.state.tracker
        events = self.fence.step(r.slots, r.x, r.y, r.accuracy, r.t)
        tr.inside[r.slots] = self.fence.inside_any(r.slots)
        # A child first seen inside a zone may be arriving (a tag read at the
        # gate is the first fix of the day); after a restart the notice it
        # makes again folds into the one already in the outbox.
        first = np.flatnonzero(r.first)
        rows, inside = self.fence.inside_pairs(r.slots[first])
        for i, z in zip(first[rows].tolist(), inside.tolist(), strict=True):
            self._act(self.expect.on_enter(int(r.slots[i]), self.fence.zones[z].id,
                                           float(r.t[i])))
        for e in events:
            zone = self.fence.zones[e.zone]
            self.stats[f"zone_{e.kind}s"] += 1
            if e.kind == "enter":
                self._act(self.expect.on_enter(e.slot, zone.id, e.since))
                continue
            out = self.expect.on_exit(e.slot, zone.id, e.since)
            self._act(out, zone)
            if not any(o.kind in DEPARTURES for o in out):
                self._exit_outside_timetable(e.slot, zone, e.since)
        unusual, calm = self.speed.step(r.slots, r.x, r.y, r.t, r.accuracy,
                                        self.limit_kmh[r.slots])
        for slot in unusual:
            self._raise("unusual_movement", slot, float(tr.t[slot]), emergency=True,
                        why=f"{self.speed.speed_kmh[slot]:.0f} km/h for minutes")
        for slot in calm:  # written on the alert, never resolving it: the child may
            # be walking slowly somewhere they should not be (the corridor's alert)
            self.desk.clear(slot, "unusual_movement", "moving at a normal pace again",
                            resolve=False)
        self._corridors(r)

    def _corridors(self, r: StepResult) -> None:
        """Far off the usual corridor: an alert when the child gets there,
        a note when they are back. Far places are not learned (an abductor's
        route must not become usual)."""
        far = self.corridor.far(r.slots, r.x, r.y)
        went = r.slots[far & ~self.away[r.slots]]
        back = r.slots[~far & self.away[r.slots]]
        self.away[r.slots] = far
        for slot in went.tolist():
            self._raise("unusual_movement", slot, float(self.state.tracker.t[slot]),
                        emergency=True, why="far from the child's usual routes")
        for slot in back.tolist():
            self.desk.clear(slot, "unusual_movement", "back on the usual routes", resolve=False)
        good = ~far & ~(r.accuracy > CORRIDOR_ACCURACY_M)  # NaN: a watch's GPS, kept
        self.corridor.learn(r.slots[good], r.x[good], r.y[good], r.t[good])

    def _exit_outside_timetable(self, slot: int, zone: ZoneView, t: float) -> None:
        """An exit the timetable says nothing about: an alert only from the
        child's own safety zone, in its watched hours, on a day without a
        plan there."""
        if zone.id != int(self.state.tracker.home[slot]):
            return
        if any(row.zone_id == zone.id for row in self.expect.rows_of(slot)):
            return  # before school started, or after the day's departure
        minute = int((t + self.cfg.local_utc_offset_s) % 86400 // 60)
        if hours_active(zone.hours, minute):
            self._raise("zone_exit", slot, t, zone=zone.name, emergency=True)

    # ---------------------------------------------------------------- clock
    def tick(self) -> None:
        """Once a second: admin changes, deadlines, silences, notices, counts."""
        now = self.clock()
        self._learn_history()
        self._reload(now)
        if now - self.started_at >= self.cfg.deadline_settle_s:
            self._act(self.expect.due(now))
        tr = self.state.tracker
        expected = self.expect.expected_somewhere(np.arange(len(tr)), now)
        lost, back = self.lost.check(tr.t, expected, now)
        for slot in lost:
            self._raise("lost_signal", slot, now, emergency=True)
        for slot in back:
            self.desk.clear(slot, "lost_signal", "the device reports again")
        self._flush_notices(now)
        if now - self.counts_at >= COUNTS_EVERY_S:
            self._publish_counts(now)

    def _publish_counts(self, now: float) -> None:
        inside, uncertain = self.fence.counts()
        counts = (inside.tolist(), uncertain.tolist())
        if counts == self.last_counts:
            return
        self.counts_at, self.last_counts = now, counts
        self.publish(ZoneCounts(zone_ids=[z.id for z in self.fence.zones], inside=counts[0],
                                uncertain=counts[1]))

    # ------------------------------------------------------------ outcomes
    def _act(self, outcomes: list[Outcome], zone: ZoneView | None = None) -> None:
        cleared: set[tuple[int, str]] = set()  # one clear per alert, however many say so
        for o in outcomes:
            name = zone.name if zone is not None and zone.id == o.zone_id \
                else self.state.zone_names.get(o.zone_id, "")
            self.stats[f"outcome_{o.kind}"] += 1
            if o.kind in NOTICE_KINDS:
                self._notice(o, name)
                # an arrival (departure) ends a "not arrived" ("not departed")
                # even one raised before a restart, which the day's rows forgot
                kind, why = ARRIVAL_CLEARS[o.kind]
                if (o.slot, kind) not in cleared:
                    cleared.add((o.slot, kind))
                    self.desk.clear(o.slot, kind, f"{why} ({name})")
            elif o.kind in OPENS:
                self._raise(OPENS[o.kind], o.slot, o.t, zone=name,
                            emergency=o.kind == "unexpected_exit")
            elif o.kind in CLEARS and (o.slot, CLEARS[o.kind][0]) not in cleared:
                kind, why = CLEARS[o.kind]
                cleared.add((o.slot, kind))
                self.desk.clear(o.slot, kind, f"{why} ({name})")
            elif o.kind == "returned":
                self.desk.clear(o.slot, "zone_exit", f"back in {name}", resolve=False)

    def _raise(self, kind: str, slot: int, at: float, zone: str = "",
               emergency: bool = False, why: str = "") -> None:
        if not self.consent.allows(slot, "emergency" if emergency else "routine"):
            return
        tr = self.state.tracker
        lat, lon = float(tr.lat[slot]), float(tr.lon[slot])
        self.desk.trigger(Trigger(kind, slot, self.device_of.get(slot, ""),  # type: ignore[arg-type]
                                  lat, lon, kind != "zone_exit" or not math.isfinite(lat), at,
                                  zone=zone, why=why))

    def _notice(self, o: Outcome, zone: str) -> None:
        if not 0 <= o.slot < len(self.state.child_ids):
            return
        token = self.state.tracker.tokens[o.slot]
        key = f"{o.kind}:{token}:{o.zone_id}:{int(o.start_t)}"
        self.notices.append((self.state.child_ids[o.slot], o.kind, zone, o.t, key))

    def _flush_notices(self, now: float) -> None:
        """Hand waiting notices to the outbox in one transaction; on a store
        fault they wait for the next second (the key folds any repeat)."""
        if not self.notices:
            return
        batch = self.notices[:500]
        try:
            with self.sessions() as s:
                skipped: Counter[str] = Counter()
                for child_id, kind, zone, at, key in batch:
                    done = outbox.enqueue(s, child_id=child_id, kind=kind, zone=zone,
                                          event_at=at, key=key, now=now,
                                          offset_s=self.cfg.local_utc_offset_s)
                    skipped[done.skipped or "queued"] += 1
                s.commit()
        except Exception as exc:
            self.stats["notice_store_failures"] += 1
            log.warning("notices wait for the store (%d): %s", len(self.notices),
                        str(exc).splitlines()[0][:200])
            return
        del self.notices[:len(batch)]
        for reason, n in skipped.items():
            self.stats[f"notices_{reason}"] += n

    # --------------------------------------------------------------- consent
    def forget(self, slots: list[int]) -> None:
        self.fence.forget(slots)
        self.corridor.forget(slots)
        self.away[slots] = False
        self.lost.forget(slots)
        self.speed.forget(slots)

    def heartbeat(self) -> dict[str, float]:
        return {**{k: float(v) for k, v in self.stats.items()},
                "expectations": float(len(self.expect)), "zone_pairs": float(self.fence.pairs),
                "notices_waiting": float(len(self.notices)),
                "lost_signal": float(self.lost.lost.sum())}
