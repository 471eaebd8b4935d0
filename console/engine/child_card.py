"""The operator's child card: one child's day, notices, device and trail.

An operator on the phone with a worried guardian needs, in one answer:
where the timetable expected the child today and what happened (arrived,
left, alerts open on it), whether the guardians' notices went out, whether
the device is alive (last fix, battery and its trend, lost signal, speed),
and where the child went lately. The live part is the engine's own memory
(geofence, expectations, watches, tracker); the rest is read from the
store in one session, together with the usage record the answer calls for.

Why a usage record: a trail or a list of notices is the child's location
history (notices say when the child arrived where), so every card that
carries either is written to the location-usage log (action "history")
in the same transaction as it is read. A store that refuses the record
refuses the card: nobody sees history whose showing was not recorded.

The card stays pseudonymous (a token, never a name or a guardian's
address), which is why an operator gets it without a reveal. The command
table checks the role (``models.accounts.PERMISSIONS["req.child_card"]``);
the handler checks it again because a card is history, which only the
people who work alerts may see (not admins, auditors or trainers).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Protocol

import msgspec
import numpy as np
from sqlalchemy import select
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.orm import Session, sessionmaker

from console.engine.commands import Entry
from console.engine.consent_gate import ConsentGate
from console.engine.desk import AlertDesk
from console.engine.routine import Routine
from console.engine.state import EngineState
from console.services.runtime import Runtime
from db import outbox, usage_log
from db import repositories as repo
from db.tables import Child, Device, Notice
from models.alerts import Actor, Refused
from models.messages import (
    CARD_NOTICES,
    MAX_CARD_TRAIL_S,
    AlertView,
    CardNotice,
    CardNoticeState,
    CardSlot,
    ChildCard,
    ChildCardRequest,
    Reply,
    pack,
)
from models.privacy import check_child_token
from models.timetable import local_midnight
from models.usage import FIELD_LIMITS

log = logging.getLogger(__name__)

WORKERS = frozenset({"operator", "supervisor"})  # who may see a child's history
PURPOSE = "child card"
LOG_AGAIN_S = 15 * 60.0  # one viewing of a card is one use; a new one after this
MAX_TRAIL_POINTS = 5000  # an hour of fixes every second from one device, with room
# Alert kinds that are about one zone of the timetable (``AlertView.zone``).
SLOT_ALERTS = frozenset({"not_arrived", "not_departed", "zone_exit"})
ARRIVALS = frozenset({"school_arrival", "academy_arrival"})
DEPARTURES = frozenset({"school_departure", "academy_departure"})


class CardHost(Protocol):
    """What the handler uses of ``console.services.engine.Engine``."""

    rt: Runtime
    sessions: sessionmaker[Session]
    state: EngineState
    routine: Routine
    desk: AlertDesk
    consent: ConsentGate
    now: Callable[[], float]


def child_card_entries(engine: CardHost) -> dict[type, Entry]:
    """The command-table entry for the child card (on the engine's clock:
    a trainee's card shows the replayed day)."""
    return {ChildCardRequest: Entry(ChildCards(engine, engine.now).card)}


def card_window(trail_s: float) -> float:
    """Seconds of trail a card carries: 0 for none, at most an hour;
    Refused for a value that is not a number."""
    if isinstance(trail_s, bool) or not isinstance(trail_s, (int, float)) \
            or math.isnan(trail_s):
        raise Refused("bad_value", "trail_s must be a number of seconds")
    return float(min(max(trail_s, 0.0), MAX_CARD_TRAIL_S))


_STATES: dict[str, CardNoticeState] = {"pending": "pending", "sent": "sent", "dead": "dead"}


def notice_state(row: Notice) -> CardNoticeState:
    """A pending row that failed before is "retrying" (``db.outbox``)."""
    if row.state == "pending" and row.attempts > 0:
        return "retrying"
    return _STATES.get(row.state, "pending")


def seen_times(keys: list[tuple[str, float]], token: str) -> dict[tuple[str, int, int], float]:
    """(arrival|departure, zone id, start) -> when it was seen, from the
    day's notice keys.

    The engine keys a notice ``{kind}:{token}:{zone id}:{start}`` plus the
    guardian (``console.engine.routine``), so the key names the very
    expectation it was about; the earliest event of a key wins (every
    guardian's copy has the same one)."""
    out: dict[tuple[str, int, int], float] = {}
    for key, at in keys:
        kind, _, rest = key.partition(":")
        parts = rest.rsplit(":", 3)
        if len(parts) != 4 or parts[0] != token:
            continue
        try:
            zone, start = int(parts[1]), int(parts[2])
        except ValueError:
            continue
        what = "arrival" if kind in ARRIVALS else "departure" if kind in DEPARTURES else ""
        if what:
            k = (what, zone, start)
            out[k] = min(at, out.get(k, at))
    return out


def clip(text: str, field: str = "detail") -> str:
    limit = FIELD_LIMITS[field]
    return text if len(text) <= limit else text[:limit - 1] + "…"


class ChildCards:
    def __init__(self, engine: CardHost, clock: Callable[[], float] = time.time) -> None:
        self.engine = engine
        self.clock = clock
        # (user, child) -> when their looking at the card was last logged: an
        # open card refreshes every 10 s, and one viewing is one use, not 360
        # records an hour.
        self.logged: dict[tuple[str, str], float] = {}

    @contextmanager
    def _store(self) -> Iterator[Session]:
        """One session, committed when the card is made; a store failure is
        ``Refused("store")`` and nothing is shown or recorded."""
        try:
            with self.engine.sessions() as s:
                yield s
                s.commit()
        except (SQLAlchemyError, usage_log.ChainBroken) as exc:
            log.exception("the store refused a child card")
            raise Refused("store", f"the store refused the child card "
                                   f"({type(exc).__name__}); try again") from None

    def card(self, req: ChildCardRequest, actor: Actor | None) -> Reply:
        assert actor is not None
        if not actor.roles & WORKERS:
            raise Refused("forbidden", f"{actor.user} may not see a child's card: it is "
                                       "for operators and supervisors")
        token = check_child_token(req.child)
        trail_s = card_window(req.trail_s)
        e = self.engine
        now = self.clock()
        day_t0 = local_midnight(e.routine.day, e.rt.config.local_utc_offset_s)
        with self._store() as s:
            child = s.scalar(select(Child).where(Child.token == token))
            if child is None:
                raise Refused("unknown", f"no child {token}: check the token")
            if child.removed_at is not None:
                raise Refused("unknown", f"{token} was removed from the service; "
                                         "nothing of the child is tracked any more")
            slot = e.state.slot_of_child.get(child.id, -1)
            tracked = slot >= 0 and slot not in e.consent.untracked_slots
            rows = list(outbox.for_child(s, child.id, CARD_NOTICES))
            notices = [CardNotice(id=n.id, kind=n.kind, zone=n.zone, event_at=n.event_at,
                                  channel=n.channel, state=notice_state(n),
                                  attempts=n.attempts, sent_at=n.sent_at or 0.0,
                                  next_at=n.next_at if n.state == "pending" else 0.0,
                                  error=n.last_error)
                       for n in rows]
            todays = list(s.execute(select(Notice.key, Notice.event_at).where(
                Notice.child_id == child.id, Notice.event_at >= day_t0)).tuples())
            slots = self._slots(slot, seen_times(todays, token)) if slot >= 0 else []
            devices: list[str] = []
            t = lat = lon = np.empty(0)
            if tracked and trail_s > 0:
                devices = list(s.scalars(select(Device.id).where(Device.child_id == child.id)))
                t, lat, lon = repo.trail(s, devices, now - trail_s, now, MAX_TRAIL_POINTS)
            last = self.logged.get((actor.user, token), -math.inf)
            logging_use = bool(len(t) or notices) and now - last >= LOG_AGAIN_S
            if logging_use:
                usage_log.append(
                    s, at=now, actor=actor.user, subject=token, action="history",
                    purpose=PURPOSE,
                    detail=clip(f"child card: {len(t)} positions of {len(devices)} device(s) "
                                f"over the last {trail_s:.0f} s, {len(notices)} notice(s), "
                                f"{len(slots)} timetable slot(s) today"))
            card = ChildCard(child=token, profile=child.profile, at=now, day_t0=day_t0,
                             tracked=tracked, slots=slots, notices=notices,
                             alert_ids=[a.id for a in self._open_alerts(slot)],
                             trail_s=trail_s if tracked else 0.0, trail_t=pack("t", t),
                             trail_lat=pack("lat", lat), trail_lon=pack("lon", lon))
        if logging_use:  # committed with the card
            self.logged[(actor.user, token)] = now
        if tracked:
            card = self._live(card, slot)
        log.debug("child card of %s for %s: %d slots, %d notices, %d trail points", token,
                 actor.user, len(slots), len(notices), len(t))
        return card

    def _open_alerts(self, slot: int) -> list[AlertView]:
        if slot < 0:
            return []
        return sorted((a for a in self.engine.desk.alerts.values()
                       if a.child_slot == slot and a.state != "resolved"), key=lambda a: a.id)

    def _slots(self, slot: int, seen: dict[tuple[str, int, int], float]) -> list[CardSlot]:
        """Today's expectations of the child as the evaluator holds them,
        with when each arrival and departure was seen and the open alerts
        about its zone."""
        names = self.engine.state.zone_names
        open_alerts = [a for a in self._open_alerts(slot) if a.kind in SLOT_ALERTS]
        out = []
        for r in self.engine.routine.expect.rows_of(slot):
            zone = names.get(r.zone_id, f"zone {r.zone_id}")
            start = int(r.start_t)
            out.append(CardSlot(
                zone=zone, kind=r.kind, start_t=r.start_t, end_t=r.end_t,
                state=r.state,  # type: ignore[arg-type]
                inside=r.inside, arrived_at=seen.get(("arrival", r.zone_id, start), 0.0),
                departed_at=seen.get(("departure", r.zone_id, start), 0.0),
                alerted=list(r.alerted),
                alert_ids=[a.id for a in open_alerts if a.zone == zone]))
        return out

    def _live(self, card: ChildCard, slot: int) -> ChildCard:
        """The engine's memory of the child: zones, device, watches."""
        e = self.engine
        tr, fence, routine = e.state.tracker, e.routine.fence, e.routine
        last = float(tr.t[slot]) if slot < len(tr.t) else -math.inf
        lost, speed = routine.lost.lost, routine.speed.speed_kmh
        return msgspec.structs.replace(
            card, zones=[fence.zones[z].name for z in fence.zones_of(slot)],
            uncertain=[fence.zones[z].name for z in fence.uncertain_of(slot)],
            last_fix_t=last if math.isfinite(last) else 0.0, battery=int(tr.battery[slot]),
            battery_trend=tr.battery_trend(slot),
            lost_signal=bool(slot < len(lost) and lost[slot]),
            speed_kmh=float(speed[slot]) if slot < len(speed) else 0.0)
